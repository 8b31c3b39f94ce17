"""Slow readers against the real binaries: a peer that starts a long answer and stops reading
loses its own request within its deadline, and nobody else is held up, neither the worker's
other requests at the proxy nor the other callers of the same client.
"""

import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import BIN_DIR, MODEL, Network

# A long answer: 4,000 chunks of 16 KiB (64 MiB), as fast as the worker can send them.
LONG = ["--chunks", "4000", "--chunk-bytes", "16384"]
WRITE_TIMEOUT = 3


def chat(stream, max_tokens, content="hi"):
    return json.dumps({
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "stream": stream,
        "max_tokens": max_tokens,
    })


def proxy_config(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(f"client_write_timeout = {WRITE_TIMEOUT}\nrequest_queue_bytes = 1048576\n")
    return ["--config", str(path)]


def raw(net, *args, timeout=90):
    return subprocess.Popen(
        [
            str(BIN_DIR / "cocoon-raw-client"),
            "--proxy", f"127.0.0.1:{net.ports['proxy_clients']}",
            "--owner", net.client_owner,
            "run", "--model", MODEL, *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def events(proc, timeout=90):
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode(errors="replace")
    return [json.loads(l) for l in out.decode().splitlines() if l.strip()]


def test_a_client_that_stops_reading_loses_only_its_own_request(tmp_path):
    net = Network(tmp_path, upstream_args=LONG, proxy_args=proxy_config(tmp_path)).start()
    try:
        # The stalled client: reads one message of a 64 MiB answer, then nothing for 20 s.
        stalled = raw(net, "--body", chat(True, 4000), "--stall-after-parts", "1", "--stall-secs", "20")
        time.sleep(1.0)
        # Meanwhile a second client uses the same worker: unaffected.
        t0 = time.time()
        for _ in range(3):
            (r,) = [e for e in events(raw(net, "--body", chat(False, 5))) if e["event"] == "request"]
            assert r["error_code"] is None and r["final"], r
        second = time.time() - t0
        assert second < 10, f"the second client took {second:.1f} s"
        # The stalled one is cut within its deadline (plus the time its buffers took to fill).
        deadline = time.time() + WRITE_TIMEOUT + 15
        while net.proxy_stats()["stalled_clients"] + net.proxy_stats()["cancelled"] == 0:
            assert time.time() < deadline, net.log("proxy")[-3000:]
            time.sleep(0.2)
        cut_after = time.time() - t0
        (r,) = [e for e in events(stalled) if e["event"] == "request"]
        assert r["final"] is False, r
        # What it had been sent is paid for; the books balance.
        audit = json.loads(net.ledger("audit"))
        assert audit["balanced"] is True and audit["reservations"] == 0, audit
        print(f"\nsecond client: 3 requests in {second:.2f} s; stalled client cut {cut_after:.1f} s after it stopped reading")
    finally:
        net.stop()


def test_an_http_caller_that_stops_reading_does_not_hold_up_the_others(tmp_path):
    client_config = tmp_path / "client.toml"
    client_config.write_text(f"[http]\nwrite_timeout = {WRITE_TIMEOUT}\n")
    net = Network(tmp_path, upstream_args=LONG, client_args=["--config", str(client_config)]).start()
    try:
        port = net.ports["client"]
        payload = chat(True, 4000).encode()
        slow = socket.create_connection(("127.0.0.1", port), timeout=30)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (port, len(payload))
            + payload
        )
        assert slow.recv(1024).startswith(b"HTTP/1.1 200"), "no answer head"
        # The slow caller reads nothing more. Three other callers of the same client:
        t0 = time.time()

        def small(i):
            import urllib.request

            req = urllib.request.Request(
                f"{net.base_url}/chat/completions",
                data=chat(False, 5, f"caller {i}").encode(),
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=20) as r:
                return r.status

        with ThreadPoolExecutor(3) as pool:
            assert list(pool.map(small, range(3))) == [200, 200, 200]
        took = time.time() - t0
        assert took < 20, took
        # The caller that reads nothing loses its request after the write deadline: the proxy
        # is told to stop it (and charges what was relayed).
        deadline = time.time() + WRITE_TIMEOUT + 15
        while net.proxy_stats()["cancelled"] == 0:
            assert time.time() < deadline, net.log("client")[-3000:]
            time.sleep(0.2)
        cut = time.time() - t0
        # Cut by whichever comes first: the write deadline, or its answer queue's byte budget
        # (8 MiB; this stream is 64 MiB).
        log = net.log("client")
        assert "took nothing of its streamed answer" in log or "does not read its answer" in log, log[-3000:]
        slow.close()
        audit = json.loads(net.ledger("audit"))
        assert audit["balanced"] is True and audit["reservations"] == 0, audit
        print(f"\nthree other callers answered in {took:.2f} s while one caller read nothing; it was cut after {cut:.1f} s")
    finally:
        net.stop()
