"""`cocoon-worker estimate` as a GPU owner runs it: from figures given on the command line, and
with `--measure`, from the speed of the engine the worker would serve from (the built-in engine
on the embedded model here), both as JSON."""

import json
import subprocess

from conftest import BIN_DIR, EMBEDDED_GGUF, MODEL


def estimate(*args):
    out = subprocess.run(
        [str(BIN_DIR / "cocoon-worker"), "estimate", "--json", *args],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout), out.stderr


def test_given_figures_and_measured_speed_both_give_earnings():
    given, _ = estimate("--tokens-per-sec", "50", "--utilisation", "0.5")
    # Tokens served: the engine's speed for the share of time it is busy.
    assert given["completion_tokens_per_sec"] == 25
    assert given["worker_nanoton_per_hour"] > 0

    measured, log = estimate(
        "--measure", "--measure-concurrency", "2", "--measure-tokens", "4",
        "--model-path", str(EMBEDDED_GGUF), "--utilisation", "1",
    )
    assert "measured:" in log and "built-in engine" in log, log
    assert measured["completion_tokens_per_sec"] > 0
    assert measured["prompt_tokens_per_sec"] > 0
    assert measured["worker_nanoton_per_hour"] > 0

    # Asked neither for figures nor for a measurement: a usage error, not an estimate.
    out = subprocess.run([str(BIN_DIR / "cocoon-worker"), "estimate"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "--tokens-per-sec" in out.stderr


def test_the_current_market_is_read_from_a_clients_model_list(network):
    base = network.base_url.removesuffix("/v1")
    e, log = estimate("--market-from", base, "--model", MODEL, "--tokens-per-sec", "50")
    assert f"1 workers serve {MODEL}" in log, log
    assert e["market"]["workers"] == 1, e
    # The market's load stands in for --utilisation: idle here, so nothing is served.
    assert e["completion_tokens_per_sec"] == 0, e
    out = subprocess.run(
        [str(BIN_DIR / "cocoon-worker"), "estimate", "--market-from", base, "--model", "absent",
         "--tokens-per-sec", "50"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode != 0 and "not in the market" in out.stderr, out.stderr
