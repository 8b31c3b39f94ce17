"""The client's OpenAI-compatible API, driven by the official `openai` package, through a real
proxy and worker to the fake upstream."""

import json
import re
import time
import urllib.error
import urllib.request

import openai
import pytest

from conftest import MODEL, http_get

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "relay these words intact"},
]


def api(network):
    return openai.OpenAI(base_url=network.base_url, api_key="unused", max_retries=0, timeout=30)


def post_raw(network, path, body: bytes, content_type="application/json"):
    req = urllib.request.Request(
        network.base_url + path, data=body, method="POST", headers={"Content-Type": content_type}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def assert_openai_error(body, kind=None):
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert "type" in err and "code" in err
    if kind:
        assert err["type"] == kind, err


def test_models_lists_model_with_workers(network):
    models = api(network).models.list()
    ids = [m.id for m in models.data]
    assert MODEL in ids
    raw = models.data[ids.index(MODEL)].model_dump()
    assert raw["workers"][0]["max_running_requests"] == 60
    assert raw["workers"][0]["coefficient"] == 1000


def test_non_streamed_chat_completion(network):
    raw = api(network).chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    completion = raw.parse()
    text = completion.choices[0].message.content
    assert "relay these words intact" in text
    usage = completion.usage.model_dump()
    assert usage["completion_tokens"] == 20
    assert usage["prompt_tokens"] > 0
    assert usage["total_cost"] > 0
    assert usage["total_cost"] == usage["prompt_total_cost"] + usage["completion_total_cost"]
    for hop in ("Client", "Proxy", "Worker"):
        start = float(raw.headers[f"X-Cocoon-{hop}-Start"])
        end = float(raw.headers[f"X-Cocoon-{hop}-End"])
        assert 0 < start <= end
    assert float(raw.headers["X-Cocoon-Client-Start"]) <= float(raw.headers["X-Cocoon-Proxy-Start"])


def test_streamed_chat_completion(network):
    stream = api(network).chat.completions.create(
        model=MODEL, messages=MESSAGES, max_tokens=50, stream=True, stream_options={"include_usage": True}
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
        if chunk.usage:
            usage = chunk.usage.model_dump()
    text = "".join(pieces)
    assert "relay these words intact" in text
    assert len(pieces) >= 50
    assert usage and usage["completion_tokens"] == 50 and usage["total_cost"] > 0


def test_completions_endpoint(network):
    out = api(network).completions.create(model=MODEL, prompt="echo this prompt", max_tokens=5)
    assert "echo this prompt" in out.choices[0].text
    assert out.usage.completion_tokens == 5


def test_bad_json_gets_openai_error(network):
    status, body = post_raw(network, "/chat/completions", b"{not json")
    assert status == 400
    assert_openai_error(body, "invalid_request_error")
    status, body = post_raw(network, "/chat/completions", b"[1,2]")
    assert status == 400
    assert_openai_error(body, "invalid_request_error")


def test_unknown_model_gets_404_promptly(network):
    started = time.time()
    with pytest.raises(openai.NotFoundError) as e:
        api(network).chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert time.time() - started < 5
    assert e.value.status_code == 404
    assert_openai_error(e.value.body if "error" in (e.value.body or {}) else {"error": e.value.body})


def test_oversized_body_gets_413(network):
    big = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "x" * (5 << 20)}]}).encode()
    status, body = post_raw(network, "/chat/completions", big)
    assert status == 413
    assert_openai_error(body, "invalid_request_error")


def test_invalid_fields_rejected_by_worker_with_400(network):
    status, body = post_raw(network, "/chat/completions", json.dumps({"model": MODEL, "messages": [], "bogus": 1}).encode())
    assert status == 400
    assert_openai_error(body)
    assert body["error"]["param"] == "bogus", body
    # A known field with a bad value: the worker names it in `param`, as OpenAI does.
    for field, value in [("max_tokens", 0), ("temperature", 3), ("stop", 5)]:
        req = {"model": MODEL, "messages": MESSAGES, field: value}
        status, body = post_raw(network, "/chat/completions", json.dumps(req).encode())
        assert status == 400, body
        assert_openai_error(body, "invalid_request_error")
        assert body["error"]["param"] == field, body
        assert f"`{field}`" in body["error"]["message"] and not body["error"]["message"].startswith("{"), body


def test_ledger_balances(network):
    stats = network.proxy_stats()
    ledger = stats["ledger"]
    assert ledger["requests"] >= 1
    assert ledger["client_charged"] + ledger["shortfall"] == ledger["worker_credited"] + ledger["proxy_commission"]


def test_worker_killed_mid_stream_ends_with_error_and_charges_only_metered(make_network):
    net = make_network(upstream_args=["--delay-ms", "100", "--chunks", "200"])
    client = api(net)
    before = net.proxy_stats()["ledger"]
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=200, stream=True)
    received, started = 0, None
    with pytest.raises(openai.APIError) as err:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
                if received == 5:
                    net.kill("worker")
                    started = time.time()
    assert started is not None and time.time() - started < 5, "the stream did not end promptly"
    assert received < 200
    assert "worker" in str(err.value).lower()
    after = net.proxy_stats()
    # The worker died before reporting usage: nothing was metered, so nothing is charged.
    assert after["ledger"]["client_charged"] == before["client_charged"]
    assert after["ledger"]["worker_credited"] == before["worker_credited"]
    assert after["failed"] >= 1


def test_caller_disconnect_cancels_at_the_worker(make_network):
    net = make_network(upstream_args=["--delay-ms", "100", "--chunks", "100"])
    stream = api(net).chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=100, stream=True)
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()  # the HTTP connection goes away mid-answer
    # The worker stops at once; the proxy ends the request once the worker's usage is charged.
    deadline = time.time() + 5
    worker, proxy = {}, {}
    while time.time() < deadline:
        with urllib.request.urlopen(f"http://127.0.0.1:{net.ports['worker_stats']}/jsonstats", timeout=2) as r:
            worker = json.loads(r.read())
        proxy = net.proxy_stats()
        if worker.get("cancelled") == 1 and proxy["cancelled"] == 1:
            break
        time.sleep(0.1)
    assert worker.get("cancelled") == 1, worker
    assert proxy["cancelled"] == 1, proxy


def overhead_histogram(text: str, name: str):
    """The buckets ({le: count}), sum and count of one histogram in a Prometheus text page."""
    assert f"# TYPE {name} histogram" in text, text
    buckets = {
        m.group(1): int(m.group(2))
        for m in re.finditer(rf'^{name}_bucket{{le="([^"]+)"}} (\d+)$', text, re.M)
    }
    total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
    count = re.search(rf"^{name}_count (\d+)$", text, re.M)
    assert buckets and total and count, text
    return buckets, float(total.group(1)), int(count.group(1))


def test_each_role_exports_the_time_it_adds(make_network):
    net = make_network()
    started = time.monotonic()
    client = api(net)
    client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20)
    for _ in range(2):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=20, stream=True)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    elapsed = time.monotonic() - started
    pages = {
        "client": (f"http://127.0.0.1:{net.ports['client']}/metrics", net.auth),
        "proxy": (f"http://127.0.0.1:{net.ports['proxy_stats']}/metrics", {}),
        "worker": (f"http://127.0.0.1:{net.ports['worker_stats']}/metrics", {}),
    }
    for role, (url, headers) in pages.items():
        _, text = http_get(url, headers=headers)
        buckets, total, count = overhead_histogram(text.decode(), f"cocoon_{role}_overhead_seconds")
        assert count == 3, (role, text)
        assert buckets["+Inf"] == count, (role, buckets)
        bounds = sorted((float(le), n) for le, n in buckets.items() if le != "+Inf")
        assert bounds[0][0] == 0.00005 and bounds[-1][0] == 1.0, (role, bounds)
        counts = [n for _, n in bounds]
        assert counts == sorted(counts), (role, buckets)
        # Some time, and less than the three requests took from outside.
        assert 0.0 < total < elapsed, (role, total, elapsed)
    # The proxy's waits on its ledger: three reservations, three charges made durable, each a
    # part of the proxy's time.
    _, text = http_get(pages["proxy"][0])
    for name in ("cocoon_proxy_reserve_wait_seconds", "cocoon_proxy_charge_wait_seconds"):
        buckets, total, count = overhead_histogram(text.decode(), name)
        assert count == 3 and buckets["+Inf"] == 3, (name, text)
        assert 0.0 < total < elapsed, (name, total, elapsed)
