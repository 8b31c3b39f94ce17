"""Attacks on client identity and authorization, end to end on the emulated chain.

One proxy settles on a `cocoon-chain-emulator` running the real compiled contracts; a worker
and the real `cocoon-client` (the owner, who registers its sessions itself) run beside it.
Hostile sessions come from `cocoon-raw-client`, which speaks the protocol by hand:

- (a) the owner connecting with other spellings of its address (raw upper case with a
  leading space, bounceable and non-bounceable friendly forms) reaches the one account: same
  tokens used and limit, a request made under one spelling shows under another, and the books
  hold one account for it; an unparsable owner is refused at connect;
- (b) a stranger naming the funded owner cannot authorize: without registering it is told
  "not yet registered", registering from its own wallet is refused by the owner's contract;
  the owner's account is untouched;
- (c) an owner with a short-auth secret at the proxy cannot authorize by long authorization,
  even with its own registration; its secret works under any spelling of its address;
- (d) the real client registers on chain, authorizes and answers a prompt; a secret too short
  to resist offline guessing is refused by the client, from a file or the environment, and
  no secret flag exists.

After each, the books balance (`cocoon-proxy ledger audit`). Needs `npm ci --prefix contracts`.
"""

import base64
import hashlib
import json
import os
import re
import subprocess
import urllib.request

import pytest

from chain import NEEDS_CHAIN, proxy_voucher_key, run_op, write_key
from conftest import (
    MODEL_HASH,
    BIN_DIR,
    MODEL,
    SIMULATED_IMAGE_HASH,
    Emulator,
    Network,
    free_port,
)

NOT_YET_REGISTERED = 425
SHORT_AUTH_REQUIRED = 403

pytestmark = NEEDS_CHAIN


def crc16_xmodem(data: bytes) -> int:
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
            crc &= 0xFFFF
    return crc


def friendly(raw: str, bounceable: bool) -> str:
    """The user-friendly form of a raw address (mainnet, URL-safe alphabet)."""
    wc, account = raw.split(":")
    data = bytes([0x11 if bounceable else 0x51, int(wc) & 0xFF]) + bytes.fromhex(account)
    return base64.urlsafe_b64encode(data + crc16_xmodem(data).to_bytes(2, "big")).decode()


def books_balance(net: Network):
    audit = json.loads(net.ledger("audit"))
    assert audit["balanced"] is True and audit["error"] is None, audit
    assert audit["reservations"] == 0, audit
    return audit


def client_accounts(net: Network):
    return json.loads(net.ledger("accounts"))["clients"]


def account_of(net: Network, owner: str):
    found = [c for c in client_accounts(net) if c["client"] == owner]
    return found[0] if found else None


def chat_body(i: int) -> str:
    return json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"attack {i}: " + "word " * (4 + i)}],
            "max_tokens": 8,
        }
    )


class Ctx:
    pass


@pytest.fixture(scope="module")
def chain_net(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attack-auth")
    ctx = Ctx()
    ctx.tmp = tmp
    ctx.owner_key = write_key(tmp / "owner.key")
    ctx.stranger_key = write_key(tmp / "stranger.key")
    ctx.secret_owner_key = write_key(tmp / "secret-owner.key")
    worker_key = write_key(tmp / "worker.key")
    proxy_owner_key = write_key(tmp / "proxy-owner.key")
    anchor_key = write_key(tmp / "proxy-wallet.key")

    net = Network(tmp)
    emu = Emulator(
        tmp,
        [
            "--proxy-public-key", proxy_voucher_key(net),
            "--proxy-owner-key-file", str(proxy_owner_key),
            "--fund-key-file", f"{ctx.owner_key}=50",
            "--fund-key-file", f"{ctx.stranger_key}=50",
            "--fund-key-file", f"{ctx.secret_owner_key}=50",
            "--fund-key-file", f"{worker_key}=5",
            "--fund-key-file", f"{proxy_owner_key}=5",
            "--fund-key-file", f"{anchor_key}=5",
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
        ],
    )
    try:
        proxy = emu.info["proxy_contract"]
        addr = emu.info["key_files"]
        ctx.owner = addr[str(ctx.owner_key)]
        ctx.stranger = addr[str(ctx.stranger_key)]
        ctx.secret_owner = addr[str(ctx.secret_owner_key)]
        common = ["--chain", emu.spec, "--timeout-secs", "20", "--proxy-contract", proxy]
        for key in (ctx.owner_key, ctx.secret_owner_key):
            run_op("cocoon-client", "topup", *common, "--wallet-key-file", str(key), "--amount", "2")

        # The proxy knows the secret owner's secret hash, under its friendly spelling.
        ctx.secret = os.urandom(24).hex()
        ctx.secret_file = tmp / "secret"
        ctx.secret_file.write_text(ctx.secret + "\n")
        os.chmod(ctx.secret_file, 0o600)
        config = tmp / "proxy.toml"
        config.write_text(
            "[client_secret_hashes]\n"
            f'"{friendly(ctx.secret_owner, True)}" = "{hashlib.sha256(ctx.secret.encode()).hexdigest()}"\n'
        )
        net.proxy_args = [
            "--config", str(config),
            "--chain", emu.spec, "--proxy-contract", proxy,
            "--wallet-key-file", str(anchor_key), "--anchor-interval", "0.5",
        ]
        net.worker_args = [
            "--owner", addr[str(worker_key)], "--chain", emu.spec, "--wallet-key-file", str(worker_key),
        ]
        # The real client: the owner's wallet pays for its charges and registers its sessions.
        net.client_args = ["--chain", emu.spec, "--wallet-key-file", str(ctx.owner_key)]
        net.client_owner = ctx.owner
        net.start()
        ctx.net, ctx.emu = net, emu
        ctx.register = ["--register", "--chain", emu.spec]
        yield ctx
    finally:
        net.stop()
        emu.stop()


def raw_client(ctx, owner, *args, timeout=120):
    """Runs cocoon-raw-client as `owner` (sent verbatim); answers (exit status, events)."""
    out = subprocess.run(
        [
            str(BIN_DIR / "cocoon-raw-client"),
            "--proxy", f"127.0.0.1:{ctx.net.ports['proxy_clients']}",
            "--owner", owner, "--deadline", "60", *args,
        ],
        capture_output=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in out.stdout.decode().splitlines() if line.strip()]
    assert out.returncode in (0, 3), f"transport failure {out.returncode}: {out.stderr.decode()}\n{events}"
    return out.returncode, events


def event(events, name):
    found = [e for e in events if e["event"] == name]
    assert found, f"no {name} event in {events}"
    return found[-1]


def test_every_spelling_of_the_owner_reaches_one_account(chain_net):
    ctx = chain_net
    owner = ctx.owner
    spellings = [" " + owner.upper(), friendly(owner, True), friendly(owner, False)]
    as_owner = [*ctx.register, "--wallet-key-file", str(ctx.owner_key)]

    statuses = []
    for spelling in spellings:
        rc, events = raw_client(ctx, spelling, *as_owner, "status")
        assert rc == 0, events
        assert event(events, "connected")["auth"] == "long"
        assert event(events, "registered")["nonce"]
        statuses.append(event(events, "status"))
    assert all(s == statuses[0] for s in statuses), statuses
    assert statuses[0]["max_tokens"] > 0

    # A request made under one spelling is charged to the account all of them see.
    rc, events = raw_client(ctx, spellings[1], *as_owner, "run", "--model", MODEL, "--body", chat_body(1))
    assert rc == 0, events
    request = event(events, "request")
    assert request["final"] and request["error_code"] is None and request["usage"]["completion"] > 0, request
    after = []
    for spelling in (spellings[0], spellings[2], owner):
        rc, events = raw_client(ctx, spelling, *as_owner, "status")
        assert rc == 0, events
        after.append(event(events, "status"))
    assert all(s == after[0] for s in after), after
    assert after[0]["tokens_used"] > statuses[0]["tokens_used"], (statuses[0], after[0])

    # One account, under the canonical (raw, lower-case) address; no other spelling has one.
    clients = [c["client"] for c in client_accounts(ctx.net)]
    assert clients.count(owner) == 1, clients
    assert all(re.fullmatch(r"-?\d+:[0-9a-f]{64}", c) for c in clients), clients
    account = account_of(ctx.net, owner)
    assert account["tokens_used"] == after[0]["tokens_used"], account

    # An owner that is no address is refused at connect, with a typed 400.
    for bad in ("not-an-address", "0:1234", friendly(owner, True)[:-2] + "AA"):
        rc, events = raw_client(ctx, bad, "status")
        failed = event(events, "connect_failed")
        assert rc == 3 and failed["code"] == 400 and "not a TON address" in failed["error"], events
    books_balance(ctx.net)


def test_a_stranger_cannot_spend_a_funded_owners_balance(chain_net):
    ctx = chain_net
    before = account_of(ctx.net, ctx.owner)
    assert before is not None and before["balance"] > 0
    target = friendly(ctx.owner, True)

    # Naming the owner without any proof: not yet registered, and no request runs.
    rc, events = raw_client(ctx, target, "--auth", "long", "run", "--model", MODEL, "--body", chat_body(2))
    failed = event(events, "auth_failed")
    assert rc == 3 and failed["code"] == NOT_YET_REGISTERED, events
    assert "not yet registered" in failed["error"]
    assert not [e for e in events if e["event"] == "request"]

    # Registering the session's nonce from the stranger's wallet: the owner's contract refuses
    # it (exit code 401, not the owner), so the proxy never sees the nonce registered.
    rc, events = raw_client(
        ctx, target, "--auth", "long", *ctx.register, "--wallet-key-file", str(ctx.stranger_key), "status"
    )
    assert "exit code 401" in event(events, "register_failed")["error"], events
    assert rc == 3 and event(events, "auth_failed")["code"] == NOT_YET_REGISTERED, events

    after = account_of(ctx.net, ctx.owner)
    for field in ("balance", "tokens_used", "charged", "stake"):
        assert after[field] == before[field], (field, before, after)
    assert account_of(ctx.net, ctx.stranger) is None
    books_balance(ctx.net)


def test_an_owner_with_a_secret_cannot_use_long_auth(chain_net):
    ctx = chain_net
    so = ctx.secret_owner
    # The proxy asks this owner for its secret, whatever spelling it connects with.
    rc, events = raw_client(ctx, so, "--auth", "long", "status")
    failed = event(events, "auth_failed")
    assert rc == 3 and failed["code"] == SHORT_AUTH_REQUIRED, events
    # Even a registration the owner really made does not replace the secret.
    rc, events = raw_client(
        ctx, so, "--auth", "long", *ctx.register, "--wallet-key-file", str(ctx.secret_owner_key), "status"
    )
    assert event(events, "registered")
    assert rc == 3 and event(events, "auth_failed")["code"] == SHORT_AUTH_REQUIRED, events
    assert account_of(ctx.net, so) is None, "refused sessions opened no account"

    # The secret authorizes under any spelling (the proxy's entry uses the friendly form) ...
    for spelling in (" " + so.upper(), friendly(so, False)):
        rc, events = raw_client(ctx, spelling, "--secret-file", str(ctx.secret_file), "status")
        assert rc == 0, events
        assert event(events, "connected")["auth"] == "short"
        assert event(events, "status")["max_tokens"] > 0
    # ... and nothing else does.
    wrong = ctx.tmp / "wrong-secret"
    wrong.write_text(os.urandom(24).hex())
    rc, events = raw_client(ctx, so, "--secret-file", str(wrong), "status")
    assert rc == 3 and event(events, "auth_failed")["code"] == 401, events
    assert [c["client"] for c in client_accounts(ctx.net)].count(so) == 1
    books_balance(ctx.net)


def test_the_client_registers_and_refuses_weak_secrets(chain_net):
    ctx = chain_net
    net = ctx.net
    body = chat_body(3).encode()
    req = urllib.request.Request(
        f"{net.base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        answer = json.loads(r.read())
    assert answer["choices"][0]["message"]["content"] and answer["usage"]["completion_tokens"] > 0
    assert "session nonce registered on chain" in net.log("client")

    def client(*args, env=None):
        return subprocess.run(
            [
                str(BIN_DIR / "cocoon-client"), "--local",
                "--listen", f"127.0.0.1:{free_port()}",
                "--proxy", f"127.0.0.1:{net.ports['proxy_clients']}",
                "--owner", ctx.secret_owner, *args,
            ],
            capture_output=True, timeout=60, env=dict(os.environ, **(env or {})),
        )

    short = ctx.tmp / "short-secret"
    short.write_text("hunter2\n")
    os.chmod(short, 0o600)
    out = client("--secret-file", str(short))
    assert out.returncode != 0 and "too weak" in out.stderr.decode(), out.stderr.decode()
    out = client(env={"COCOON_CLIENT_SECRET": "aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert out.returncode != 0 and "too weak" in out.stderr.decode(), out.stderr.decode()
    out = client("--secret", ctx.secret)
    assert out.returncode != 0 and "--secret" in out.stderr.decode(), out.stderr.decode()
    books_balance(net)
