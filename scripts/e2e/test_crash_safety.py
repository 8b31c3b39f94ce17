"""Crash safety of the proxy's books: 500 concurrent requests through the real client, the proxy
killed with SIGKILL while they run, restarted on the same ledger file and ports; then the books,
read with `cocoon-proxy ledger`, are checked against what the client saw.

What must hold, to the nanoTON:
- every request the client saw complete (with its usage) is on the books exactly once, with the
  token counts and the cost the client was shown;
- no request is on the books twice;
- a request in flight at the kill is on the books once or not at all: once when its charge
  committed before the kill (the client may then have seen an error instead of the end of the
  answer: the proxy relays that end only after the commit, and the kill came in between), not
  at all otherwise (its reservation is dropped when the ledger is opened again);
- sum(client charges) = sum(worker credits) + sum(proxy commission), from the request records,
  from the accounts and from the audit alike;
- the emulated deposit was made once, not again at the restart.

Each request is told apart by its prompt: request i has i + 1 words, so its prompt token count
is unique, and max_tokens varies so that the answers end at different times and the kill finds
some requests done, some in flight.

The test runs on an SQLite ledger file, and again on a PostgreSQL database when
COCOON_TEST_POSTGRES_URL names a server (`scripts/with-postgres` starts one); without it the
PostgreSQL run is skipped, unless COCOON_TEST_POSTGRES=required.
"""

import json
import os
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import MODEL

REQUESTS = 500
AFTER_RESTART = 40
CHUNKS = 60  # completion tokens at most; max_tokens below caps them per request
DELAY_MS = 40  # between chunks: answers take 0 to 2.4 s
DEPOSIT = 1_000_000_000_000  # what --local credits a new client


def max_tokens_for(i: int) -> int:
    return 1 + (i * 37) % CHUNKS


def words_for(i: int) -> str:
    return " ".join(f"w{i}x{k}" for k in range(i + 1))


def post_chat(base_url: str, i: int, timeout: float = 60.0):
    """One non-streamed chat completion; answers (i, status, body or error text)."""
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": words_for(i)}],
            "max_tokens": max_tokens_for(i),
        }
    ).encode()
    req = urllib.request.Request(
        base_url + "/chat/completions", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return i, r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return i, e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError, OSError, ValueError) as e:
        return i, None, repr(e)


def postgres_tool(name):
    bin_dir = os.environ.get("COCOON_TEST_POSTGRES_BIN")
    path = str(Path(bin_dir) / name) if bin_dir else shutil.which(name)
    assert path, f"{name} not found: set COCOON_TEST_POSTGRES_BIN or put PostgreSQL's programs on PATH"
    return path


@pytest.fixture
def postgres_ledger():
    """A fresh PostgreSQL database on the server COCOON_TEST_POSTGRES_URL names, dropped after."""
    admin = os.environ.get("COCOON_TEST_POSTGRES_URL")
    if not admin:
        if os.environ.get("COCOON_TEST_POSTGRES") == "required":
            pytest.fail("COCOON_TEST_POSTGRES=required but COCOON_TEST_POSTGRES_URL is not set")
        pytest.skip("COCOON_TEST_POSTGRES_URL is not set (run under scripts/with-postgres)")
    url = urllib.parse.urlsplit(admin)
    name = f"cocoon_crash_{os.getpid()}_{time.monotonic_ns()}"
    server = ["-h", url.hostname or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres"]
    env = dict(os.environ, PGPASSWORD=urllib.parse.unquote(url.password or ""))
    subprocess.run([postgres_tool("createdb"), *server, name], check=True, env=env, timeout=60)
    yield urllib.parse.urlunsplit((url.scheme, url.netloc, "/" + name, url.query, ""))
    subprocess.run([postgres_tool("dropdb"), "--force", *server, name], env=env, timeout=60)


@pytest.fixture(params=["sqlite", "postgres"])
def crash_network(request, tmp_path):
    ledger_url = str(tmp_path / "crash-ledger.sqlite")
    if request.param == "postgres":
        ledger_url = request.getfixturevalue("postgres_ledger")
    # Asked for after the database, so the network stops before the database is dropped.
    make_network = request.getfixturevalue("make_network")
    return make_network(
        upstream_args=["--chunks", str(CHUNKS), "--delay-ms", str(DELAY_MS), "--chunk-bytes", "8"],
        worker_args=["--max-active-requests", str(2 * REQUESTS)],
        ledger_url=ledger_url,
    )


def test_sigkill_under_load_loses_and_doubles_nothing(crash_network):
    net = crash_network
    base = net.base_url

    # 1. 500 requests at once; kill the proxy when about a third are answered.
    results = {}
    lock = threading.Lock()
    pool = ThreadPoolExecutor(max_workers=REQUESTS)
    start = threading.Event()

    def run(i):
        start.wait()
        out = post_chat(base, i)
        with lock:
            results[i] = out
        return out

    futures = [pool.submit(run, i) for i in range(REQUESTS)]
    start.set()
    deadline = time.time() + 120
    while time.time() < deadline:
        with lock:
            done_ok = sum(1 for _, status, _ in results.values() if status == 200)
        if done_ok >= REQUESTS // 3:
            net.kill("proxy")
            break
        time.sleep(0.01)
    else:
        pytest.fail(f"only {len(results)} requests ended in 120 s:\n{net.log('proxy')[-3000:]}")
    killed_at = time.time()
    with lock:
        answered_before_kill = {i for i, (_, status, _) in results.items() if status == 200}

    # 2. Restart on the same ledger file and ports; the worker and the client reconnect.
    net.start_proxy()
    restarted_after = time.time() - killed_at
    for f in futures:
        f.result(timeout=180)
    pool.shutdown()

    ok = {i: body for i, (_, status, body) in results.items() if status == 200}
    failed = {i: (status, body) for i, (_, status, body) in results.items() if status != 200}
    assert len(results) == REQUESTS
    assert answered_before_kill and failed, (
        f"the kill must find requests both done and in flight: {len(answered_before_kill)} done, "
        f"{len(failed)} failed"
    )

    # 3. The restarted proxy serves on the same books (the worker accepts it: its totals did not
    # go back) — more requests, told apart from the first 500 by their prompt length.
    probe_deadline = time.time() + 60
    while True:
        i, status, body = post_chat(base, REQUESTS, timeout=30)
        if status == 200:
            ok[i] = body
            break
        assert time.time() < probe_deadline, f"no answer after the restart: {status} {body}\n{net.log('proxy')[-3000:]}"
        time.sleep(0.2)
    with ThreadPoolExecutor(max_workers=AFTER_RESTART) as after:
        for i, status, body in after.map(lambda i: post_chat(base, i), range(REQUESTS + 1, REQUESTS + 1 + AFTER_RESTART)):
            assert status == 200, (i, status, body)
            ok[i] = body

    # 4. The books, read beside the running proxy.
    audit = json.loads(net.ledger("audit"))
    records = [json.loads(line) for line in net.ledger("requests").splitlines() if line.strip()]
    accounts = json.loads(net.ledger("accounts"))
    stats = net.proxy_stats()

    assert audit["balanced"] is True and audit["error"] is None, audit
    assert audit["reservations"] == 0, audit
    totals = audit["totals"]

    # No request booked twice: unique ids, and at most one record per client request.
    assert len({r["request_id"] for r in records}) == len(records)
    by_prompt = {}
    for r in records:
        prompt = r["uncached_prompt_tokens"] + r["cached_tokens"]
        assert prompt not in by_prompt, f"two records for one request: {by_prompt[prompt]} and {r}"
        by_prompt[prompt] = r

    # The prompt token count of request i, as the client saw it, is what keys its record.
    prompt_of = {i: body["usage"]["prompt_tokens"] for i, body in ok.items()}
    assert len(set(prompt_of.values())) == len(prompt_of), "prompt token counts must tell requests apart"

    # Every answer the client saw is booked once, with the same counts and cost.
    for i, body in ok.items():
        usage = body["usage"]
        r = by_prompt.get(usage["prompt_tokens"])
        assert r is not None, f"request {i} was answered with usage {usage} but is not on the books"
        assert usage["completion_tokens"] == max_tokens_for(i)
        assert r["visible_completion_tokens"] + r["reasoning_tokens"] == usage["completion_tokens"], (usage, r)
        assert r["client_charge"] == usage["total_cost"], (usage, r)
        assert r["shortfall"] == 0 and r["shortfall_tokens"] == 0

    # The rest of the books: requests the kill interrupted after their charge committed. Each
    # matches a request the client saw fail, with the counts that request would have had.
    seen = {usage_prompt for usage_prompt in (b["usage"]["prompt_tokens"] for b in ok.values())}
    extra = [r for r in records if r["uncached_prompt_tokens"] + r["cached_tokens"] not in seen]
    # Prompt tokens grow by one word per request: the offset is the same for every request.
    offset = {prompt_of[i] - (i + 1) for i in prompt_of}
    assert len(offset) == 1, offset
    offset = offset.pop()
    for r in extra:
        i = r["uncached_prompt_tokens"] + r["cached_tokens"] - offset - 1
        assert i in failed, f"record {r} matches no request the client saw fail"
        assert r["visible_completion_tokens"] + r["reasoning_tokens"] == max_tokens_for(i), r
    assert len(records) == len(ok) + len(extra)

    # Money: from the records, the audit, the accounts and /jsonstats, to the nanoTON.
    charged = sum(r["client_charge"] for r in records)
    credited = sum(r["worker_credit"] for r in records)
    commission = sum(r["commission"] for r in records)
    assert charged > 0
    assert charged == credited + commission
    assert (totals["requests"], totals["client_charged"], totals["worker_credited"], totals["proxy_commission"]) == (
        len(records),
        charged,
        credited,
        commission,
    )
    assert totals["shortfall"] == 0
    (client,) = accounts["clients"]
    assert client["charged"] == charged and client["requests"] == len(records)
    assert client["reserved_tokens"] == 0
    assert sum(w["credited"] for w in accounts["workers"]) == credited
    assert sum(w["commission"] for w in accounts["workers"]) == commission
    assert stats["ledger"] == totals, (stats["ledger"], totals)

    # The emulated deposit was made once, not again when the client authorized after the restart.
    assert client["deposited"] == DEPOSIT and client["balance"] == DEPOSIT, client

    # The proxy's books came back from the file: the restarted proxy's log says what it found.
    log = net.log("proxy")
    assert log.count("ledger open") == 2, log[-3000:]
    print(
        f"\n{len(answered_before_kill)} answered before the kill, "
        f"{len(failed)} interrupted, {len(extra)} of those charged before the kill, "
        f"{len(ok) - len(answered_before_kill)} answered after the restart "
        f"(proxy back {restarted_after:.1f} s after the kill); {len(records)} records, "
        f"{charged} nanoTON charged = {credited} credited + {commission} commission"
    )
