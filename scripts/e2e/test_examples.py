"""The use-case examples (`examples/`: chat, translate a message, summarise a long post) run
through the client library against a network whose worker runs the built-in engine, as a user
runs them against `scripts/local-network`; `transcribe` runs against the fake upstream, which
answers transcriptions with a simulated transcript."""

import subprocess

from test_audio import wav

from conftest import BIN_DIR, MODEL

POST = """The city council met on Tuesday to discuss the new tram line. After three hours of
debate, members voted to extend the line to the northern districts, where thousands of new homes
are being built. Construction will start next spring and should last two years. The council also
agreed to plant trees along the route and to keep the old bus service running until the trams
arrive. Residents who spoke at the meeting welcomed the decision but asked for quieter night
works and clear information about road closures."""


def run_example(name, *args, stdin=None):
    out = subprocess.run(
        [str(BIN_DIR / "examples" / name), *args],
        input=stdin,
        capture_output=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    lines = out.stdout.decode().strip().splitlines()
    assert len(lines) >= 2, lines
    # The answer, then what it cost.
    assert lines[-1].startswith("tokens: ") and "nanoTON" in lines[-1], lines
    assert "".join(lines[:-1]).strip(), lines
    return lines


def test_the_use_case_examples_answer_through_the_network(builtin_network):
    proxy = f"127.0.0.1:{builtin_network.ports['proxy_clients']}"
    run_example("chat", proxy, MODEL)
    run_example("translate", proxy, MODEL, "French", "Good morning! See you at the station at eight.")
    run_example("summarize", "-", proxy, MODEL, stdin=POST.encode())


def test_the_transcribe_example_is_charged_by_duration(network, tmp_path):
    audio = tmp_path / "speech.wav"
    audio.write_bytes(wav(2.0))
    proxy = f"127.0.0.1:{network.ports['proxy_clients']}"
    lines = run_example("transcribe", str(audio), proxy, MODEL)
    assert lines[0] == "simulated transcript of 2.000 seconds of 1-channel 16000 Hz audio", lines
    # 2 s at 10 units a second.
    assert lines[-1].startswith("tokens: 20 prompt + 0 completion; cost: "), lines
