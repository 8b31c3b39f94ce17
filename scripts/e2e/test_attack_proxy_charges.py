"""Attacks by a proxy on what a client pays, run against the real binaries.

The proxy books every request in adjusted tokens and signs cumulative vouchers that the client
contract settles; the contract sees only the running total. Here the proxy's operator raises
the completion multiplier in the proxy's `[pricing]` (in local mode, where no contract pins
the prices), so that each request is charged ten times its completion tokens' weight. The
client holds each charge against its own account of the request (its usage, the coefficient
the proxy reported, at most the request's `max_coefficient`, the network's prices), finds the
overcharge, says so in `/jsonstats`, submits no voucher and sends the proxy nothing more.

The other way round, an operator lowers the multiplier so that its workers are paid less than
their usage gives (the client, charged less, has nothing to complain of): the worker holds each
payment against its own account (its usage at the coefficient the proxy offered, at the
network's prices), reports the request paid less and serves that proxy no more.
"""

from conftest import http_get, wait_for
from conftest import chat_status as chat


def audit(net):
    return net.client_stats()["settlement"]["audit"]


def test_an_honest_proxy_passes_every_audit(make_network):
    net = make_network()
    for i in range(3):
        status, answer = chat(net, i)
        assert status == 200, answer
    logs = lambda: net.log("client")[-4000:]
    wait_for("three audited charges", lambda: audit(net)["audited"] == 3, logs=logs)
    a = audit(net)
    assert a["discrepancies"] == 0 and a["last_discrepancy"] is None, a
    wait_for("three audited payments", lambda: net.worker_stats()["payment_audit"]["audited"] == 3, logs=logs)
    w = net.worker_stats()["payment_audit"]
    assert w["discrepancies"] == 0, w


def priced(make_network, tmp_path, completion_multiplier):
    """A network whose proxy's operator set `completion_multiplier` in its `[pricing]` (the
    network's is 40000, 4.0x)."""
    config = tmp_path / f"proxy-{completion_multiplier}.toml"
    config.write_text(f"[pricing]\ncompletion_multiplier = {completion_multiplier}\n")
    return make_network(proxy_args=["--config", str(config)])


def first_answer(net):
    """The completion tokens of a first request, answered in full."""
    status, answer = chat(net, 0)
    assert status == 200, answer
    assert answer["usage"]["completion_tokens"] > 0, answer
    return answer["usage"]["completion_tokens"]


def logs_of(net, *names):
    return lambda: "\n".join(f"--- {n}\n{net.log(n)[-4000:]}" for n in names)


def test_a_proxy_charging_above_the_network_prices_is_caught_and_dropped(make_network, tmp_path):
    net = priced(make_network, tmp_path, 400000)
    # The answer reaches the caller before its charge is booked and handed over.
    completion = first_answer(net)
    wait_for("the overcharge", lambda: audit(net)["discrepancies"] == 1, logs=logs_of(net, "proxy", "client"))
    a = audit(net)
    # Ten times the completion weight: 36 extra adjusted tokens per completion token.
    assert a["discrepancy_tokens"] == 36 * completion, a
    assert "where its usage at the network's prices gives" in a["last_discrepancy"], a
    assert "no voucher is submitted and no request sent" in net.log("client")

    # The client sends the cheating proxy nothing more.
    status, refused = chat(net, 1)
    assert status == 502, refused
    assert refused["error"]["code"] == "proxy_overcharged", refused
    assert "check the prices and restart" in refused["error"]["message"], refused
    assert net.proxy_stats()["requests"] == 1, "the refused request reached the proxy"


def test_a_proxy_paying_its_worker_below_the_network_prices_is_found(make_network, tmp_path):
    net = priced(make_network, tmp_path, 4000)
    completion = first_answer(net)
    logs = logs_of(net, "proxy", "worker")
    wait_for("the underpayment", lambda: net.worker_stats()["payment_audit"]["discrepancies"] == 1, logs=logs)
    w = net.worker_stats()["payment_audit"]
    # 4.0x against 0.4x per completion token, each floored.
    assert w["discrepancy_tokens"] == 4 * completion - (4 * completion) // 10, w
    assert w["last_discrepancy"].startswith("the proxy paid"), w
    # The client was charged less than its account allows: nothing to report there.
    wait_for("the client's audit", lambda: audit(net)["audited"] == 1, logs=logs)
    assert audit(net)["discrepancies"] == 0
    # The worker serves that proxy no more.
    status, refused = chat(net, 1)
    assert status != 200, refused
    assert "this proxy is served no more" in net.log("worker"), net.log("worker")[-4000:]
    # It told the proxy it is disabled there, so the proxy routes nothing more to it.
    wait_for(
        "the proxy to hold the worker disabled",
        lambda: net.proxy_stats()["workers"][0]["stats"]["enabled"] is False,
        logs=logs,
    )
    [(proxy, why)] = net.worker_stats()["underpaying_proxies"].items()
    assert proxy.endswith(str(net.ports["proxy_workers"])) and why.startswith("the proxy paid"), (proxy, why)
    _, page = http_get(f"http://127.0.0.1:{net.ports['worker_stats']}/stats")
    assert f"proxies served no more: {proxy}" in page.decode(), page.decode()
