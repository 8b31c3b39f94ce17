"""Proxy-blind requests through the real binaries: on the local network (simulated evidence,
which the local client accepts) the client seals requests to the worker's attested key, says so
with `X-Cocoon-Sealed: true`, and the proxy counts sealed requests it still charges for."""

import json
import time
import urllib.request

from conftest import MODEL, http_get


def chat(network, stream=False):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "sealed hello across the proxy"}],
        "max_tokens": 16,
        "stream": stream,
    }
    req = urllib.request.Request(
        f"{network.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers, r.read().decode()


def client_stats(network):
    _, body = http_get(f"http://127.0.0.1:{network.ports['client']}/jsonstats")
    return json.loads(body)


def wait_for_sealing_key(network, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if network.proxy_stats().get("sealing_workers", 0) >= 1:
            return
        time.sleep(0.1)
    raise AssertionError("the worker's sealing key never reached the proxy:\n" + network.log("proxy"))


def test_local_network_answers_sealed(network):
    wait_for_sealing_key(network)
    before = network.proxy_stats()
    worker_before = network.worker_stats()
    headers, text = chat(network)
    assert headers["X-Cocoon-Sealed"] == "true", dict(headers)
    answer = json.loads(text)
    assert "sealed" in answer["choices"][0]["message"]["content"]
    assert answer["usage"]["total_cost"] > 0
    assert answer["cocoon_receipt"]["verified"] is True

    headers, text = chat(network, stream=True)
    assert headers["X-Cocoon-Sealed"] == "true"
    assert "data: [DONE]" in text

    after = network.proxy_stats()
    assert after["sealed_requests"] - before["sealed_requests"] == 2, after
    assert after["ledger"]["requests"] - before["ledger"]["requests"] == 2, after
    worker_after = network.worker_stats()
    assert worker_after["sealed_requests"] - worker_before["sealed_requests"] == 2, worker_after
    stats = client_stats(network)
    assert stats["sealed_requests"] >= 2, stats
    assert stats["require_sealed"] is False
