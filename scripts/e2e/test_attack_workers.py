"""Hostile workers against the money rules, end to end: `cocoon-rogue-worker` (a worker that
cheats only as told) connected to a real proxy, with a real client in front, and a real worker
whose old payout vouchers are replayed on the emulated chain.

- A worker that reports 100 times the tokens it used is charged at most the bound (the token
  limit for completion tokens, what the request body can hold for prompt tokens); the proxy
  records a metering violation against it and lowers its standing.
- A worker that sends the receipt it signed for one request again for an identical request:
  the client refuses the second receipt.
- A worker whose answer is larger than the client gathers whole (`max_answer_bytes`): the
  client stops it and answers 502 `answer_too_large`.
- A worker that signs fewer tokens in its receipt than it reports: the client shows the usage
  billed and marks the receipt as not covering it (`receipt_below_usage`).
- A worker that signs a coefficient below the one it was offered in its receipt (so that the
  client would take its honest proxy for an overcharger): charged and paid at what it signs, a
  metering violation.
- A worker that ignores the cancel sent when the HTTP caller goes away mid-stream: the request
  is charged once, for what the worker metered within the bound, and no reservation is left
  (beside it, the honest case: an acknowledged cancel is charged for the usage it carries).
- A worker owner who submits an older payout voucher (or the same one again) after a newer one
  was paid: refused, the chain unchanged, the chain equal to the ledger to the nanoTON.

Beside them, the tool itself: a version-2 rogue is served the reference way and honestly
billed, and a version-3 one is told the token limit and the client's request id.

After each attack the books must balance (see books.py).
"""

import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chain import NEEDS_CHAIN, PRICE, TON, WORKER_FEE, proxy_voucher_key, run_op, write_key
from books import assert_books_balance, ledger_accounts, ledger_requests
from conftest import BIN_DIR, MODEL, MODEL_HASH, SIMULATED_IMAGE_HASH, Emulator, Network, wait_for

ROGUE_OWNER = "rogue-worker-owner"

class RogueNetwork(Network):
    """A network whose only worker is `cocoon-rogue-worker` with `rogue_args`; its stats are on
    the worker stats port and its per-request JSON lines in rogue.out."""

    def __init__(self, tmp: Path, rogue_args=(), model=MODEL, **kwargs):
        super().__init__(tmp, **kwargs)
        self.rogue_args = list(rogue_args)
        self.rogue_model = model

    def start_worker(self):
        p = self.ports
        self.rogue_out = self.tmp / f"rogue-{p['worker_stats']}.out"
        log = open(self.tmp / "worker.log", "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"))
        self.procs["worker"] = subprocess.Popen(
            [
                str(BIN_DIR / "cocoon-rogue-worker"),
                "--proxy", f"127.0.0.1:{p['proxy_workers']}",
                "--model", self.rogue_model,
                "--owner", ROGUE_OWNER,
                "--stats-listen", f"127.0.0.1:{p['worker_stats']}",
            ]
            + self.rogue_args,
            stdout=open(self.rogue_out, "ab"),
            stderr=log,
            env=env,
        )
        self.wait_http(f"http://127.0.0.1:{p['worker_stats']}/health", "worker")

    def rogue_lines(self):
        """The JSON line the rogue worker printed for each request that ended."""
        return [json.loads(l) for l in self.rogue_out.read_text().splitlines() if l.strip()]

    def logs(self):
        return "\n".join(f"--- {n}\n{self.log(n)[-5000:]}" for n in ("proxy", "worker", "client"))


@pytest.fixture
def rogue(tmp_path):
    nets = []

    def make(*rogue_args, **kwargs):
        net = RogueNetwork(tmp_path / f"net{len(nets)}", rogue_args, **kwargs)
        net.tmp.mkdir()
        nets.append(net)
        return net.start()

    yield make
    for n in nets:
        n.stop()


def chat(net, body):
    """POSTs a chat completion through the client; answers (headers, parsed JSON body)."""
    req = urllib.request.Request(
        f"{net.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return r.headers, json.loads(r.read())


def rogue_worker_view(net):
    """The proxy's `/jsonstats` entry of the rogue worker."""
    views = [w for w in net.proxy_stats()["workers"] if w["owner"] == ROGUE_OWNER]
    assert len(views) == 1, net.proxy_stats()["workers"]
    return views[0]


def worker_stat(view, name):
    """A per-worker figure, from the worker's stats or from its entry itself."""
    stats = view.get("stats") or {}
    return stats[name] if name in stats else view[name]


def test_an_over_reporting_worker_is_charged_at_most_the_bound(rogue):
    net = rogue("--over-report", "100")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "how many tokens is this"}],
        "max_tokens": 6,
    }
    _, answer = chat(net, body)
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    # The attack happened: the worker reported 100 times what it produced.
    assert seen["outcome"]["state"] == "completed", seen
    honest, reported = seen["honest"], seen["reported"]
    assert honest["completion"] == 6 and honest["prompt"] == 5, seen
    assert reported == {"prompt": 500, "completion": 600}, seen
    completion_bound = min(body["max_tokens"], seen["token_limit"] or body["max_tokens"])
    prompt_bound = seen["body_bytes"]

    [charged] = [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER]
    assert charged["visible_completion_tokens"] + charged["reasoning_tokens"] <= completion_bound, charged
    assert charged["uncached_prompt_tokens"] + charged["cached_tokens"] <= prompt_bound, charged
    assert answer["usage"]["completion_tokens"] <= completion_bound, answer["usage"]
    assert answer["usage"]["prompt_tokens"] <= prompt_bound, answer["usage"]
    assert_books_balance(net)

    view = rogue_worker_view(net)
    assert worker_stat(view, "metering_violations") >= 1, view
    # Its standing fell: the reputation the proxy selects workers by (success rate) is below a
    # spotless worker's.
    assert worker_stat(view, "success_rate") < 1.0, view


@pytest.mark.parametrize(
    "model",
    ["two words", "model@", "@fp8", "tab\there", "m" * 257],
    ids=["space", "empty-variant", "empty-base", "control", "too-long"],
)
def test_a_worker_announcing_a_malformed_model_name_is_refused(tmp_path, model):
    """A model name the network's `ModelName` refuses never reaches the books or the routing
    table: the proxy answers the worker's params with a 400 naming the fault and lists no worker
    for it, so no client can be routed to a name that other nodes read differently."""
    net = RogueNetwork(tmp_path / "net", model=model)
    net.tmp.mkdir()
    try:
        net.start_fake_upstream()
        net.start_proxy()
        net.start_worker()
        wait_for(
            "the proxy's refusal",
            lambda: "invalid worker params" in net.log("proxy") + net.log("worker"),
            logs=net.logs,
        )
        assert net.proxy_stats()["workers"] == [], net.logs()
        assert model not in json.dumps(net.proxy_stats()), net.logs()
    finally:
        net.stop()


def test_a_version_2_rogue_is_served_the_reference_way(rogue):
    """The tool itself, honest: a version-2 session gets `proxy.runQueryEx` (no token limit, no
    client request id), signs no receipt, and its answer and usage reach the caller intact."""
    net = rogue("--protocol-version", "2", "--answer-text", "one two three four five")
    headers, answer = chat(
        net,
        {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4},
    )
    assert answer["choices"][0]["message"]["content"] == "one two three four"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]) == (2, 4)
    assert "X-Cocoon-Receipt" not in headers
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    assert seen["kind"] == "run_query_ex" and seen["outcome"]["state"] == "completed", seen
    assert seen["token_limit"] is None and seen["client_request_id"] is None, seen
    assert seen["receipt"] is None, seen
    [charged] = [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER]
    assert (charged["uncached_prompt_tokens"], charged["visible_completion_tokens"]) == (2, 4)
    assert_books_balance(net)


def test_a_version_3_worker_is_told_the_token_limit_and_the_clients_request_id(rogue):
    net = rogue()
    chat(net, {"model": MODEL, "messages": [{"role": "user", "content": "limits"}], "max_tokens": 7})
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    assert seen["kind"] == "worker_run_query", seen
    assert seen["token_limit"] == 7, seen
    assert len(seen["client_request_id"]) == 64 and seen["client_request_id"] != seen["request_id"], seen
    assert_books_balance(net)


def test_a_replayed_receipt_is_dropped_by_the_proxy(rogue):
    """The receipt signed for one request is sent again for an identical one. It names the
    first request's id: the proxy relays no receipt that does not name its request (the client
    would refuse it too), so the second answer arrives without one."""
    net = rogue("--replay-receipt")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "the same question twice"}],
        "max_tokens": 8,
    }
    first_headers, first = chat(net, body)
    second_headers, second = chat(net, body)
    lines = wait_for("two request lines", lambda: len(net.rogue_lines()) == 2 and net.rogue_lines(), logs=net.logs)
    # The attack happened: one receipt signed, then the same bytes sent for the second request.
    assert [l["receipt"] for l in lines] == ["signed", "replayed"], lines
    assert first_headers["X-Cocoon-Sealed"] == "false", "the rogue announces no sealing key"
    assert first_headers["X-Cocoon-Receipt-Verified"] == "true", first.get("cocoon_receipt")
    # The proxy drops it; the client holds no receipt for the second answer.
    assert "dropping a receipt of another request" in net.log("proxy"), net.logs()
    assert second_headers["X-Cocoon-Receipt"] is None, second_headers["X-Cocoon-Receipt"]
    assert second_headers["X-Cocoon-Receipt-Verified"] is None
    assert second.get("cocoon_receipt") is None, second["cocoon_receipt"]
    assert_books_balance(net)


def test_a_usage_above_what_the_receipt_signs_is_charged_at_what_it_signs(rogue):
    """The worker signs fewer tokens than it reports (to be paid for more): the proxy charges
    the client, and credits the worker, no more than the receipt signs, relays that usage,
    and counts a metering violation against the worker; the client's receipt check then holds
    (it would refuse a usage above the receipt, `receipt_below_usage`, as a proxy inflating the
    usage would show it)."""
    net = rogue("--receipt-signs", "1,1")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "count my tokens"}],
        "max_tokens": 16,
    }
    headers, answer = chat(net, body)
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    assert seen["receipt"] == "signed", seen
    # The attack happened: the worker reported more than its receipt's one prompt and one
    # completion token.
    assert seen["reported"]["completion"] > 1, seen
    assert (answer["usage"]["prompt_tokens"], answer["usage"]["completion_tokens"]) == (1, 1), answer
    assert headers["X-Cocoon-Receipt-Verified"] == "true", answer.get("cocoon_receipt")
    [charged] = [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER]
    assert charged["uncached_prompt_tokens"] + charged["cached_tokens"] == 1, charged
    assert charged["visible_completion_tokens"] + charged["reasoning_tokens"] == 1, charged
    assert worker_stat(rogue_worker_view(net), "metering_violations") >= 1
    assert_books_balance(net)


def test_a_receipt_signing_a_coefficient_below_the_offer_is_charged_at_what_it_signs(rogue):
    """The worker signs 0.5x in its receipt where the proxy offered its 1.0x, so that the
    client, which prices its bound at the signed coefficient, would take its honest proxy's
    charge at 1.0x for an overcharge and stop using it. The proxy charges the client, and pays
    the worker, at the coefficient signed, reports that one, and counts a metering violation
    against the worker; the client's audit passes."""
    net = rogue("--receipt-coefficient", "500")
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "price my tokens"}],
        "max_tokens": 16,
    }
    headers, answer = chat(net, body)
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    assert seen["receipt"] == "signed", seen
    assert headers["X-Cocoon-Receipt-Verified"] == "true", answer.get("cocoon_receipt")
    [charged] = [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER]
    assert charged["coefficient"] == 500, charged
    assert worker_stat(rogue_worker_view(net), "metering_violations") >= 1
    audit = wait_for(
        "the client's audit of the charge",
        lambda: (a := net.client_stats()["settlement"]["audit"])["audited"] >= 1 and a,
        logs=net.logs,
    )
    assert audit["discrepancies"] == 0, audit
    assert_books_balance(net)


def test_an_answer_too_large_to_gather_is_stopped_not_held(rogue, tmp_path):
    """A worker answering far more than the client gathers whole for a non-streamed request:
    the client stops at its `max_answer_bytes`, answers 502 `answer_too_large`, and the books
    still balance (what was relayed is charged, once)."""
    config = tmp_path / "client.toml"
    config.write_text("max_answer_bytes = 1024\n")
    net = rogue("--answer-text", " ".join(["overlong"] * 400), client_args=["--config", str(config)])
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "say a lot"}],
        "max_tokens": 1000,
    }
    req = urllib.request.Request(
        f"{net.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=60)
    assert refused.value.code == 502, refused.value
    error = json.loads(refused.value.read())["error"]
    assert error["code"] == "answer_too_large", error
    assert "1024 bytes" in error["message"], error
    # The client is still fine: a small answer goes through.
    small = rogue("--answer-text", "short", client_args=["--config", str(config)])
    _, answer = chat(small, body)
    assert answer["choices"][0]["message"]["content"], answer
    assert_books_balance(net)


def stream_then_hang_up(net, body, after_events=1):
    """Sends a streamed chat request straight over a socket, reads until `after_events` SSE data
    events arrived, then closes the connection (the HTTP caller going away mid-stream)."""
    payload = json.dumps(body).encode()
    port = net.ports["client"]
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(payload)).encode()
        + b"\r\n\r\n"
        + payload
    )
    received = b""
    while received.count(b"data: {") < after_events:
        chunk = sock.recv(65536)
        assert chunk, f"the answer ended before {after_events} events: {received!r}"
        received += chunk
    sock.close()
    return received


def test_a_worker_ignoring_a_cancel_is_charged_once_within_the_bound(rogue):
    words = " ".join(f"w{i}" for i in range(16))
    net = rogue("--ignore-cancel", "--parts", "8", "--part-delay-ms", "250", "--answer-text", words)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "stream a long answer"}],
        "max_tokens": 12,
        "stream": True,
    }
    received = stream_then_hang_up(net, body)
    assert b"data: [DONE]" not in received
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    # The attack happened: the cancel reached the worker, which kept streaming to the end.
    assert seen["cancel_received"] is True, seen
    assert seen["outcome"]["state"] == "completed", seen
    assert seen["frames_sent"] == 8
    metered = seen["reported"]["completion"]
    assert metered == 12, seen  # cut to max_tokens, honestly reported

    # Content reached the caller, so the request is charged: once, for what the worker metered,
    # never above the bound.
    charged = wait_for(
        "the cancelled request's charge",
        lambda: [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER],
        logs=net.logs,
    )
    assert len(charged) == 1, charged
    [charged] = charged
    completion = charged["visible_completion_tokens"] + charged["reasoning_tokens"]
    assert 1 <= completion <= min(metered, body["max_tokens"]), charged
    assert charged["uncached_prompt_tokens"] + charged["cached_tokens"] <= seen["body_bytes"], charged
    # No reservation is left behind.
    [client] = ledger_accounts(net)["clients"]
    assert client["reserved_tokens"] == 0, client
    assert_books_balance(net)


def test_an_acknowledged_cancel_is_charged_for_the_usage_it_carries(rogue):
    """The honest side of the cancel rule, for comparison: the worker stops and acknowledges with
    code 499 and its usage so far, and exactly that is charged."""
    words = " ".join(f"w{i}" for i in range(16))
    net = rogue("--parts", "8", "--part-delay-ms", "250", "--answer-text", words)
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "stream a long answer"}],
        "max_tokens": 12,
        "stream": True,
    }
    stream_then_hang_up(net, body)
    [seen] = wait_for("the rogue's request line", net.rogue_lines, logs=net.logs)
    assert seen["cancel_received"] is True and seen["outcome"]["state"] == "cancelled", seen
    acknowledged = seen["reported"]
    assert 1 <= acknowledged["completion"] < 12, seen
    charged = wait_for(
        "the cancelled request's charge",
        lambda: [r for r in ledger_requests(net) if r["worker"] == ROGUE_OWNER],
        logs=net.logs,
    )
    assert len(charged) == 1, charged
    [charged] = charged
    assert charged["visible_completion_tokens"] + charged["reasoning_tokens"] == acknowledged["completion"]
    assert charged["uncached_prompt_tokens"] + charged["cached_tokens"] == acknowledged["prompt"]
    [client] = ledger_accounts(net)["clients"]
    assert client["reserved_tokens"] == 0, client
    assert_books_balance(net)


# ---------------------------------------------------------------------------------------------
# Vouchers on the emulated chain.



def honest_chat(net, i):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"request {i}: " + "word " * (4 + i)}],
        "max_tokens": 8,
    }
    return chat(net, body)


@NEEDS_CHAIN
def test_an_old_or_replayed_payout_voucher_is_refused_and_changes_nothing(tmp_path):
    client_key = write_key(tmp_path / "client.key")
    worker_key = write_key(tmp_path / "worker.key")
    owner_key = write_key(tmp_path / "owner.key")
    anchor_key = write_key(tmp_path / "proxy-wallet.key")
    net = Network(tmp_path)
    emu = Emulator(
        tmp_path,
        [
            "--proxy-public-key", proxy_voucher_key(net),
            "--proxy-owner-key-file", str(owner_key),
            "--fund-key-file", f"{client_key}=50",
            "--fund-key-file", f"{worker_key}=5",
            "--fund-key-file", f"{anchor_key}=5",
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
        ],
    )
    try:
        replay_old_vouchers(tmp_path, net, emu, client_key, worker_key, anchor_key)
    finally:
        net.stop()
        emu.stop()


def replay_old_vouchers(tmp_path, net, emu, client_key, worker_key, anchor_key):
    proxy = emu.info["proxy_contract"]
    addr = emu.info["key_files"]
    client_owner, worker_owner = addr[str(client_key)], addr[str(worker_key)]
    common = ["--chain", emu.spec, "--timeout-secs", "20"]
    run_op(
        "cocoon-client", "topup", *common, "--wallet-key-file", str(client_key),
        "--proxy-contract", proxy, "--amount", "2",
    )
    net.proxy_args = [
        "--chain", emu.spec, "--proxy-contract", proxy,
        "--wallet-key-file", str(anchor_key), "--anchor-interval", "0.5",
    ]
    # Every new voucher is paid out at once (threshold 1 token).
    net.worker_args = [
        "--owner", worker_owner, "--chain", emu.spec, "--wallet-key-file", str(worker_key),
        "--payout-threshold-tokens", "1", "--payment-status-interval", "0.5",
    ]
    net.client_args = [
        "--chain", emu.spec, "--wallet-key-file", str(client_key),
        "--submit-stake-fraction", "0.000000001", "--payment-status-interval", "0.5",
    ]
    net.client_owner = client_owner
    net.start()
    logs = lambda: "\n".join(f"--- {n}\n{net.log(n)[-5000:]}" for n in ("proxy", "worker", "client"))
    worker_dir = tmp_path / f"worker-data-{net.ports['worker_stats']}"

    def earned():
        return [w for w in ledger_accounts(net)["workers"] if w["worker"] == worker_owner][0]["tokens_earned"]

    def paid_up_to(tokens):
        ch = net.worker_stats()["settlement"]["channels"]
        return ch and ch[0]["voucher_tokens"] == tokens and ch[0]["paid_tokens"] == tokens and ch[0]

    # Round 1: paid out, and the voucher that paid it kept aside.
    for i in range(3):
        honest_chat(net, i)
    old_tokens = earned()
    wait_for("the first payout", lambda: paid_up_to(old_tokens), timeout=60, logs=logs)
    [stored] = list((worker_dir / "vouchers").glob("payout-*.json"))
    old = tmp_path / "old-voucher.json"
    old.write_bytes(stored.read_bytes())

    # Round 2: a newer voucher is paid out.
    for i in range(3, 6):
        honest_chat(net, i)
    new_tokens = earned()
    assert new_tokens > old_tokens
    wait_for("the second payout", lambda: paid_up_to(new_tokens), timeout=60, logs=logs)
    newest = tmp_path / "newest-voucher.json"
    newest.write_bytes(stored.read_bytes())
    assert newest.read_bytes() != old.read_bytes()

    payout = ["cocoon-worker", "payout", *common, "--wallet-key-file", str(worker_key)]
    # The older voucher, and the paid one again: refused with the count the chain holds, which
    # stays the newest.
    for replayed in (old, newest, old):
        r = run_op(*payout, "--voucher", str(replayed), ok=False)
        assert f"not above the {new_tokens} tokens already paid" in r["error"], r
    assert net.worker_stats()["settlement"]["channels"][0]["paid_tokens"] == new_tokens

    # The chain equals the ledger to the nanoTON: the worker contract paid exactly the tokens the
    # ledger credited, the client contract holds exactly the balance the ledger says.
    totals = assert_books_balance(net)
    [w] = [w for w in ledger_accounts(net)["workers"] if w["worker"] == worker_owner]
    assert w["tokens_earned"] == new_tokens and w["credited"] == new_tokens * WORKER_FEE, w
    [c] = [c for c in ledger_accounts(net)["clients"] if c["client"] == client_owner]
    assert c["charged"] == totals["client_charged"] == c["tokens_used"] * PRICE, c
    wait_for(
        "the client's charges on chain",
        lambda: (s := net.client_stats()["settlement"])["tokens_on_chain"] == c["tokens_used"] and s,
        timeout=60,
        logs=logs,
    )
    r = run_op(
        "cocoon-client", "withdraw", *common, "--wallet-key-file", str(client_key),
        "--proxy-contract", proxy,
    )
    assert r["before"]["tokens_used"] == c["tokens_used"]
    assert int(r["before"]["balance"]) == 2 * TON - c["tokens_used"] * PRICE
