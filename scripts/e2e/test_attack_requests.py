"""Attacks on what a request costs, run against the real binaries: a client that cancels or
drops its session after content has been relayed, an HTTP caller that hangs up right after the
last token, limits declared at zero or below, a body asking for more than was reserved, several
choices, and a ledger that cannot write mid-run. After each, the attack failed with a typed
error and the books balance: client charges = worker credits + proxy commission, to the
nanoTON.

The raw-protocol client (`cocoon-raw-client`, crates/testkit) speaks TL over the real RA-TLS
transport and misbehaves only as told.
"""

import json
import socket
import subprocess
import time

import pytest

from conftest import BIN_DIR, MODEL

# Slow enough that a cancel lands mid-answer: 40 chunks (= completion tokens), 50 ms apart.
SLOW_UPSTREAM = ["--chunks", "40", "--delay-ms", "50", "--always-usage"]


def body(max_tokens=None, stream=True, **extra):
    b = {"model": MODEL, "messages": [{"role": "user", "content": "count to forty"}], "stream": stream}
    if max_tokens is not None:
        b["max_tokens"] = max_tokens
    b.update(extra)
    return json.dumps(b)


def raw_client(net, *run_args, timeout=90):
    """Runs `cocoon-raw-client ... run ARGS` against the network's proxy; answers its JSON events."""
    out = subprocess.run(
        [
            str(BIN_DIR / "cocoon-raw-client"),
            "--proxy", f"127.0.0.1:{net.ports['proxy_clients']}",
            "--owner", net.client_owner,
            "run", "--model", MODEL, *run_args,
        ],
        capture_output=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]


def requests_of(events):
    return [e for e in events if e["event"] == "request"]


def books(net):
    """The audit, the request records and the totals, checked to balance."""
    audit = json.loads(net.ledger("audit"))
    records = [json.loads(line) for line in net.ledger("requests").splitlines() if line.strip()]
    assert audit["balanced"] is True and audit["error"] is None, audit
    charged = sum(r["client_charge"] for r in records)
    credited = sum(r["worker_credit"] for r in records)
    commission = sum(r["commission"] for r in records)
    assert charged == credited + commission, (charged, credited, commission)
    t = audit["totals"]
    assert (t["requests"], t["client_charged"], t["worker_credited"], t["proxy_commission"]) == (
        len(records), charged, credited, commission,
    ), (t, len(records))
    return audit, records


def wait_records(net, n, timeout=20.0):
    deadline = time.time() + timeout
    while True:
        audit, records = books(net)
        if len(records) >= n and audit["reservations"] == 0:
            return audit, records
        assert time.time() < deadline, f"{len(records)} records, {audit['reservations']} reservations, wanted {n}:\n{net.log('proxy')[-3000:]}"
        time.sleep(0.2)


def completion(record):
    return record["visible_completion_tokens"] + record["reasoning_tokens"]


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    from conftest import Network

    net = Network(tmp_path_factory.mktemp("slow"), upstream_args=SLOW_UPSTREAM).start()
    yield net
    net.stop()


def test_a_cancel_after_content_is_charged_for_what_the_worker_produced(slow):
    _, before = books(slow)
    events = raw_client(slow, "--body", body(), "--cancel-after-parts", "3")
    (r,) = requests_of(events)
    assert r["error_code"] == 499, r
    assert r["usage"] is not None and 0 < r["usage"]["completion"] < 40, r
    _, records = wait_records(slow, len(before) + 1)
    new = records[len(before):]
    assert len(new) == 1 and completion(new[0]) == r["usage"]["completion"], (new, r)
    assert slow.worker_stats()["cancelled"] >= 1


def test_a_session_dropped_after_content_is_still_charged(slow):
    _, before = books(slow)
    events = raw_client(slow, "--body", body(), "--close-after-parts", "3")
    (r,) = requests_of(events)
    assert r["closed_early"] is True, r
    _, records = wait_records(slow, len(before) + 1)
    new = records[len(before):]
    # The worker was stopped mid-answer and reported what it had produced.
    assert len(new) == 1 and 0 < completion(new[0]) < 40, new


def test_a_request_dropped_before_any_byte_is_free(tmp_path):
    from conftest import Network

    net = Network(tmp_path, upstream_args=["--ttft-ms", "3000"]).start()
    try:
        events = raw_client(net, "--body", body(), "--close-after-parts", "0", "--timeout", "1")
        assert len(requests_of(events)) == 1
        time.sleep(4)
        audit, records = books(net)
        assert records == [] and audit["reservations"] == 0, (records, audit)
    finally:
        net.stop()


def http_stream_until_finish(net, text):
    """Posts a streamed chat completion to the client's HTTP port on a raw socket, reads until
    the chunk carrying finish_reason, and hangs up at once."""
    payload = body(stream=True).encode()
    port = net.ports["client"]
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, len(payload))
            + payload
        )
        seen = b""
        while b'"finish_reason":"' not in seen and b'"finish_reason": "' not in seen:
            chunk = s.recv(65536)
            assert chunk, f"stream ended before finish_reason: {seen[-500:]!r}"
            seen += chunk
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def test_an_http_caller_that_hangs_up_after_the_last_token_still_pays(slow):
    _, before = books(slow)
    for i in range(5):
        http_stream_until_finish(slow, f"request {i}")
    _, records = wait_records(slow, len(before) + 5, timeout=40)
    new = records[len(before):]
    assert len(new) == 5 and all(completion(r) > 0 for r in new), new


@pytest.mark.parametrize("declared", ["0", "-1", "-2147483648"])
def test_a_declared_limit_below_one_is_refused_not_rounded(slow, declared):
    _, before = books(slow)
    events = raw_client(slow, "--body", body(max_tokens=32000), "--max-tokens", declared)
    (r,) = requests_of(events)
    assert r["error_code"] == 400 and "max_tokens" in r["error"], r
    audit, records = books(slow)
    assert len(records) == len(before) and audit["reservations"] == 0


def test_a_body_asking_for_more_than_the_reservation_is_held_to_it(slow):
    _, before = books(slow)
    # 5 tokens reserved, 32,000 asked in the body: the worker clamps to what was reserved.
    events = raw_client(slow, "--body", body(max_tokens=32000), "--max-tokens", "5")
    (r,) = requests_of(events)
    assert r["error_code"] is None and r["usage"]["completion"] <= 5, r
    _, records = wait_records(slow, len(before) + 1)
    assert completion(records[-1]) <= 5


@pytest.mark.parametrize("extra", [{"n": 8}, {"best_of": 4}, {"max_tokens": -3}, {"max_completion_tokens": 1.5}])
def test_more_choices_or_bad_body_limits_are_refused(slow, extra):
    _, before = books(slow)
    b = json.loads(body())
    b.update(extra)
    events = raw_client(slow, "--body", json.dumps(b), "--max-tokens", "100")
    (r,) = requests_of(events)
    assert r["error_code"] == 400, r
    audit, records = books(slow)
    assert len(records) == len(before) and audit["reservations"] == 0


def _mount_small_tmpfs(path):
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], capture_output=True)
    return out.returncode == 0, out.stderr.decode(errors="replace")


def test_a_ledger_that_cannot_write_serves_no_free_answer(tmp_path):
    """The ledger's disk fills while an answer streams: the charge waits (the answer's end is
    withheld with a 503), no request is admitted while it waits, and once space is back the
    charge is booked and the books balance."""
    from conftest import Network

    disk = tmp_path / "ledger-disk"
    ok, why = _mount_small_tmpfs(disk)
    if not ok:
        pytest.skip(f"cannot mount a small tmpfs for the ledger: {why}")
    try:
        net = Network(
            tmp_path,
            upstream_args=["--chunks", "30", "--delay-ms", "100", "--always-usage"],
            ledger_url=str(disk / "ledger.sqlite"),
        ).start()
        try:
            # One request to open the account and warm the ledger.
            events = raw_client(net, "--body", body(stream=False))
            assert requests_of(events)[0]["error_code"] is None
            _, before = books(net)
            # Start a streamed request, fill the disk while it runs.
            proc = subprocess.Popen(
                [
                    str(BIN_DIR / "cocoon-raw-client"),
                    "--proxy", f"127.0.0.1:{net.ports['proxy_clients']}",
                    "--owner", net.client_owner,
                    "run", "--model", MODEL, "--body", body(),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            time.sleep(1.0)
            filler = disk / "filler"
            subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
            out, err = proc.communicate(timeout=60)
            (r,) = requests_of([json.loads(l) for l in out.decode().splitlines() if l.strip()])
            # The end that would show the usage is withheld: nobody booked it.
            assert r["error_code"] == 503 and "withheld" in r["error"], (r, err.decode())
            assert r["usage"] is None or r["usage"]["completion"] == 0, r
            stats = net.proxy_stats()
            health = stats["ledger_health"]
            assert health["writable"] is False and health["deferred_charges"] == 1, health
            # While the charge waits, nothing is admitted.
            refused = requests_of(raw_client(net, "--body", body(stream=False)))[0]
            assert refused["error_code"] == 503 and "wait to be booked" in refused["error"], refused
            assert "cannot book the charge" in net.log("proxy")
            # Space is back: the charge is booked, admission resumes, the books balance.
            filler.unlink()
            deadline = time.time() + 20
            while net.proxy_stats()["ledger_health"]["deferred_charges"] != 0:
                assert time.time() < deadline, net.log("proxy")[-3000:]
                time.sleep(0.2)
            _, records = wait_records(net, len(before) + 1)
            assert completion(records[-1]) > 0
            again = requests_of(raw_client(net, "--body", body(stream=False)))[0]
            assert again["error_code"] is None, again
        finally:
            net.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
