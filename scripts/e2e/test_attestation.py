"""Attestation as users see it: a local network is attested end to end with SIMULATED
evidence and says so everywhere; a client under the production policy refuses it, and says
why, before sending a byte of a request."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

from conftest import BIN_DIR, free_port, http_get


def test_simulated_attestation_is_announced_by_every_node(network):
    # Client: every HTTP answer names the proxy's evidence.
    req = urllib.request.Request(f"{network.base_url}/models")
    with urllib.request.urlopen(req, timeout=5) as r:
        assert r.headers["X-Cocoon-Attestation"] == "simulated"
    _, body = http_get(f"{network.base_url.removesuffix('/v1')}/jsonstats")
    assert json.loads(body)["proxy_attestation"] == "simulated"

    # Proxy: header, /jsonstats (its own and each worker's evidence) and a warning in /stats.
    stats_url = f"http://127.0.0.1:{network.ports['proxy_stats']}"
    with urllib.request.urlopen(f"{stats_url}/stats", timeout=5) as r:
        assert r.headers["X-Cocoon-Attestation"] == "simulated"
        text = r.read().decode()
    assert "SIMULATED attestation" in text
    snap = network.proxy_stats()
    assert snap["attestation"] == "simulated"
    assert snap["workers"] and all(w["attestation"] == "simulated" for w in snap["workers"])
    assert all(w["image_hash"] for w in snap["workers"])

    # Worker: the same, and the proxy it verified.
    wurl = f"http://127.0.0.1:{network.ports['worker_stats']}"
    with urllib.request.urlopen(f"{wurl}/jsonstats", timeout=5) as r:
        assert r.headers["X-Cocoon-Attestation"] == "simulated"
        wsnap = json.loads(r.read())
    assert wsnap["attestation"] == "simulated"
    assert [p["attestation"] for p in wsnap["proxies"]] == ["simulated"]

    # Logs say it loudly.
    assert "SIMULATED" in network.log("proxy")
    assert "SIMULATED" in network.log("worker")


def test_production_client_refuses_a_simulated_proxy_and_says_why(network, tmp_path):
    requests_before = network.proxy_stats()["requests"]
    port = free_port()
    log = open(tmp_path / "strict-client.log", "wb")
    proc = subprocess.Popen(
        [
            str(BIN_DIR / "cocoon-client"),
            "--listen", f"127.0.0.1:{port}",
            "--proxy", f"127.0.0.1:{network.ports['proxy_clients']}",
            "--owner", "strict-client",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log,
        env=dict(os.environ, RUST_LOG="info"),
    )
    try:
        deadline = time.time() + 20
        status = None
        while time.time() < deadline:
            try:
                http_get(f"http://127.0.0.1:{port}/health")
            except urllib.error.HTTPError as e:
                status = e.code
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        assert status == 503, "a client refusing its proxy must not report healthy"

        body = json.dumps({"model": "Qwen/Qwen3-8B", "messages": [{"role": "user", "content": "secret prompt"}]})
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            data=body.encode(),
            headers={"content-type": "application/json"},
        )
        try:
            urllib.request.urlopen(req, timeout=30)
            raise AssertionError("the request must be refused")
        except urllib.error.HTTPError as e:
            err = json.loads(e.read())["error"]
            assert e.code in (502, 503), e.code
            assert "simulated" in err["message"].lower(), err
        assert "simulated" in (tmp_path / "strict-client.log").read_text().lower()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    # The proxy never got a session from it, so it never saw a request.
    assert network.proxy_stats()["requests"] == requests_before
