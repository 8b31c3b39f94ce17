"""Settlement end to end in local mode: the emulated chain (`cocoon-chain-emulator`, the real
compiled contracts in @ton/sandbox), the operator commands, and a proxy, worker and client that
settle their payment channels on it.

`test_operator_commands` runs every owner command against the emulator and checks its JSON
report against the state the contracts report (top-up, withdraw, close, proxy close, and a
payout refused before anything is sent).

`test_settlement_end_to_end` runs the whole money flow: the client tops up its client
contract; the proxy reads that balance from the chain; paid requests; the proxy anchors its
ledger on chain and signs cumulative vouchers; the client and worker keep the latest one and
submit it on chain at their (low, in this test) thresholds; then the chain is compared with
the proxy's ledger to the nanoTON. Last, the proxy is stopped, an older copy of its ledger put
back and the proxy restarted: the worker refuses it and says why.

The emulator needs `npm ci` in contracts/ (scripts/test runs it); without contracts/node_modules
these tests are skipped.
"""

import json
import os
import shutil
import sqlite3
import subprocess
import urllib.request
from pathlib import Path

import pytest

from chain import NEEDS_CHAIN, PRICE, TON, WORKER_FEE, proxy_voucher_key, run_op, write_key
from conftest import (
    MODEL_HASH,
    wait_for,
    BIN_DIR,
    MODEL,
    SIMULATED_IMAGE_HASH,
    Emulator,
    Network,
    http_get,
)

PAYOUT_THRESHOLD = 100  # adjusted tokens; a request here is some tens of them

pytestmark = NEEDS_CHAIN




def chat(base_url: str, i: int):
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": f"request {i}: " + "word " * (5 + i)}],
            "max_tokens": 8 + i % 5,
        }
    ).encode()
    req = urllib.request.Request(
        f"{base_url}/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_operator_commands(tmp_path):
    client_key = write_key(tmp_path / "client.key")
    worker_key = write_key(tmp_path / "worker.key")
    owner_key = write_key(tmp_path / "owner.key")
    proxy_public = os.urandom(32).hex()
    emu = Emulator(
        tmp_path,
        [
            "--proxy-public-key", proxy_public,
            "--proxy-owner-key-file", str(owner_key),
            "--fund-key-file", f"{client_key}=50",
            "--fund-key-file", f"{worker_key}=5",
            "--fund-key-file", f"{owner_key}=5",
        ],
    )
    try:
        proxy = emu.info["proxy_contract"]
        assert proxy and emu.info["price_per_token"] == PRICE
        common = ["--chain", emu.spec, "--timeout-secs", "20"]
        client = ["--wallet-key-file", str(client_key), "--proxy-contract", proxy]

        # top-up: deploys the client contract with the balance, stake inside it
        r = run_op("cocoon-client", "topup", *common, *client, "--amount", "3")
        assert r["operation"] == "client_top_up" and r["backend"] == "emulated"
        assert r["wallet"] == emu.info["key_files"][str(client_key)]
        assert r["before"]["contract"] == "absent"
        after = r["after"]
        assert (after["contract"], after["state"]) == ("client", "normal")
        assert (after["balance"], after["stake"], after["tokens_used"]) == (str(3 * TON), str(TON), 0)
        assert all(t["success"] for t in r["transactions"]) and r["transactions"]
        assert int(r["wallet_balance_before"]) - int(r["wallet_balance_after"]) >= 3 * TON
        client_contract = r["contract"]

        # a second top-up adds to the same contract
        r = run_op("cocoon-client", "topup", *common, *client, "--amount", "0.5")
        assert r["contract"] == client_contract
        assert r["before"]["balance"] == str(3 * TON)
        assert r["after"]["balance"] == str(3 * TON + TON // 2)

        # withdraw: everything above the stake comes back
        r = run_op("cocoon-client", "withdraw", *common, *client)
        assert r["operation"] == "client_withdraw"
        assert r["after"]["balance"] == r["after"]["stake"] == str(TON)
        assert int(r["wallet_balance_after"]) > int(r["wallet_balance_before"]) + 2 * TON

        # nothing more to withdraw: refused before sending, with a typed error
        r = run_op("cocoon-client", "withdraw", *common, *client, ok=False)
        assert "nothing to withdraw" in r["error"]

        # close: the first call starts closing
        r = run_op("cocoon-client", "close", *common, *client)
        assert r["operation"] == "client_close"
        assert (r["before"]["state"], r["after"]["state"]) == ("normal", "closing")
        assert r["after"]["unlock_time"] > 0

        # a payout voucher that is no voucher is refused before anything is sent
        bad = tmp_path / "bad-voucher.json"
        bad.write_text('"00"')
        r = run_op(
            "cocoon-worker", "payout", *common, "--wallet-key-file", str(worker_key),
            "--voucher", str(bad), ok=False,
        )
        assert "voucher" in r["error"]
        # and with no voucher at all, it says so
        r = run_op(
            "cocoon-worker", "payout", *common, "--wallet-key-file", str(worker_key),
            "--data-dir", str(tmp_path / "empty-worker-dir"), ok=False,
        )
        assert "no stored voucher" in r["error"]

        # proxy close by its owner: starts closing; not the owner: refused
        r = run_op(
            "cocoon-proxy", "close", *common, "--wallet-key-file", str(client_key),
            "--proxy-contract", proxy, ok=False,
        )
        assert "not by this wallet" in r["error"]
        r = run_op(
            "cocoon-proxy", "close", *common, "--wallet-key-file", str(owner_key),
            "--proxy-contract", proxy,
        )
        assert r["operation"] == "proxy_close"
        assert (r["before"]["state"], r["after"]["state"]) == ("normal", "closing")
        assert r["after"]["active_clients"] == 1
        # a second call before the delay is refused on chain (408: too early)
        r = run_op(
            "cocoon-proxy", "close", *common, "--wallet-key-file", str(owner_key),
            "--proxy-contract", proxy, ok=False,
        )
        assert "408" in r["error"] or "411" in r["error"], r
    finally:
        emu.stop()


def test_a_proxy_priced_above_its_contract_does_not_start(tmp_path):
    """Attack: the proxy's operator raises a token multiplier in its configuration, so that each
    request counts more adjusted tokens than the network's prices give; the contracts only see
    cumulative counts and would settle them. The proxy refuses to start, names the parameter,
    and leaves no ledger priced that way behind; at the contract's prices it starts."""
    owner_key = write_key(tmp_path / "owner.key")
    net = Network(tmp_path)
    emu = Emulator(
        tmp_path,
        ["--proxy-public-key", proxy_voucher_key(net), "--proxy-owner-key-file", str(owner_key)],
    )
    try:
        p = net.ports
        dear = tmp_path / "dear-proxy.toml"
        dear.write_text("[pricing]\ncompletion_multiplier = 400000\n")
        chain_args = ["--chain", emu.spec, "--proxy-contract", emu.info["proxy_contract"]]
        out = subprocess.run(
            [
                str(BIN_DIR / "cocoon-proxy"), "--local", "--config", str(dear),
                "--worker-listen", f"127.0.0.1:{p['proxy_workers']}",
                "--client-listen", f"127.0.0.1:{p['proxy_clients']}",
                "--stats-listen", f"127.0.0.1:{p['proxy_stats']}",
                "--ledger-url", net.ledger_url,
                "--data-dir", str(tmp_path / f"proxy-data-{p['proxy_clients']}"),
                *chain_args,
            ],
            capture_output=True, timeout=120,
        )
        err = out.stderr.decode(errors="replace")
        assert out.returncode != 0, err
        assert "completion_multiplier 400000 (the contract's: 40000)" in err, err
        assert not Path(net.ledger_url).exists(), "a ledger was created at the refused prices"

        # At the contract's prices (the default here) the same proxy starts.
        net.proxy_args = chain_args
        net.start_proxy()
        assert net.proxy_stats()["settlement"]["proxy_contract"] == emu.info["proxy_contract"]
    finally:
        net.stop()
        emu.stop()


def ledger_accounts(net: Network):
    return json.loads(net.ledger("accounts"))


def test_settlement_end_to_end(tmp_path):
    client_key = write_key(tmp_path / "client.key")
    worker_key = write_key(tmp_path / "worker.key")
    owner_key = write_key(tmp_path / "owner.key")
    anchor_key = write_key(tmp_path / "proxy-wallet.key")

    # The proxy contract holds the proxy's voucher key: read it from the proxy's data dir first.
    net = Network(tmp_path)  # ports and ledger path only; started below
    voucher_key = proxy_voucher_key(net)
    assert len(voucher_key) == 64

    emu = Emulator(
        tmp_path,
        [
            "--proxy-public-key", voucher_key,
            "--proxy-owner-key-file", str(owner_key),
            "--fund-key-file", f"{client_key}=50",
            "--fund-key-file", f"{worker_key}=5",
            "--fund-key-file", f"{owner_key}=5",
            "--fund-key-file", f"{anchor_key}=5",
            # The proxy follows its contract's root: it lists the (simulated) images and model.
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
        ],
    )
    try:
        run_end_to_end(tmp_path, net, emu, client_key, worker_key, owner_key, anchor_key)
    finally:
        net.stop()
        emu.stop()


def run_end_to_end(tmp_path, net, emu, client_key, worker_key, owner_key, anchor_key):
    proxy = emu.info["proxy_contract"]
    addr = emu.info["key_files"]
    client_owner, worker_owner = addr[str(client_key)], addr[str(worker_key)]
    common = ["--chain", emu.spec, "--timeout-secs", "20"]

    # The client tops up 2 TON (1 TON of it is the stake).
    r = run_op(
        "cocoon-client", "topup", *common, "--wallet-key-file", str(client_key),
        "--proxy-contract", proxy, "--amount", "2",
    )
    client_contract = r["contract"]
    assert r["after"]["balance"] == str(2 * TON)

    net.proxy_args = [
        "--chain", emu.spec, "--proxy-contract", proxy,
        "--wallet-key-file", str(anchor_key), "--anchor-interval", "0.5",
    ]
    # The proxy anchors every 0.5 s: a total left unsigned for 10 s would cut it off.
    lag = tmp_path / "worker-voucher-lag.toml"
    lag.write_text("[settlement]\nvoucher_lag_limit = 10\n")
    net.worker_args = [
        "--config", str(lag),
        "--owner", worker_owner, "--chain", emu.spec, "--wallet-key-file", str(worker_key),
        "--payout-threshold-tokens", str(PAYOUT_THRESHOLD), "--payment-status-interval", "0.5",
    ]
    net.client_args = [
        "--chain", emu.spec, "--wallet-key-file", str(client_key),
        # about half the stake in a real deployment; here every new voucher (1 nanoTON)
        "--submit-stake-fraction", "0.000000001", "--payment-status-interval", "0.5",
    ]
    net.client_owner = client_owner
    net.start()
    logs = lambda: "\n".join(f"--- {n}\n{net.log(n)[-6000:]}" for n in ("proxy", "worker", "client"))

    stats = net.proxy_stats()["settlement"]
    assert stats["mode"] == "local (emulated chain)" and stats["proxy_contract"] == proxy
    assert "emulated chain" in net.log("proxy")
    _, text = http_get(f"http://127.0.0.1:{net.ports['proxy_stats']}/stats")
    assert f"chain: local (emulated chain) proxy contract {proxy}" in text.decode()

    # The proxy booked the client's balance from its contract (not a local deposit).
    acc = ledger_accounts(net)
    [c] = [c for c in acc["clients"] if c["client"] == client_owner]
    assert c["balance"] == 2 * TON and c["stake"] == TON and c["deposited"] == 0

    # Paid requests; a copy of the ledger is taken halfway (for the rollback below).
    backup = tmp_path / "ledger-backup.sqlite"
    for i in range(12):
        chat(net.base_url, i)
        if i == 5:
            wait_for(
                "a first anchor",
                lambda: net.proxy_stats()["settlement"]["ledger_anchor_seqno"] >= 1,
                logs=logs,
            )
            src = sqlite3.connect(net.ledger_url)
            dst = sqlite3.connect(backup)
            src.backup(dst)
            dst.close()
            src.close()

    acc = ledger_accounts(net)
    [c] = [c for c in acc["clients"] if c["client"] == client_owner]
    [w] = [w for w in acc["workers"] if w["worker"] == worker_owner]
    used, earned = c["tokens_used"], w["tokens_earned"]
    assert used == earned > 0
    assert c["charged"] == used * PRICE and w["credited"] == earned * WORKER_FEE

    # The client held every charge against its own account, at the proxy contract's prices
    # (read from the chain), and kept its vouchers within it.
    wait_for(
        "the client's audit of twelve charges",
        lambda: net.client_stats()["settlement"]["audit"]["audited"] == 12,
        logs=logs,
    )
    s = net.client_stats()["settlement"]
    assert s["audit"]["discrepancies"] == 0 and s["vouchers_above_account"] == 0, s
    assert "charges are not audited" not in net.log("client")

    # Anchors cover everything, the vouchers carry the totals and were submitted on chain.
    wait_for(
        "the ledger anchored up to the last request",
        lambda: ledger_accounts(net)["workers"][0]["anchored_tokens"] == earned,
        logs=logs,
    )
    wait_for(
        "the client's last charge on chain",
        lambda: (s := net.client_stats()["settlement"])["tokens_on_chain"] == used and s,
        logs=logs,
    )
    # The worker pays itself out whenever PAYOUT_THRESHOLD tokens are unpaid; once less than
    # that is left, no payout is running or will start.
    wait_for(
        "the worker's payouts to settle below the threshold",
        lambda: (s := net.worker_stats()["settlement"]["channels"][0])["voucher_tokens"] == earned
        and earned - s["paid_tokens"] < PAYOUT_THRESHOLD
        and s,
        logs=logs,
    )
    client_settle = net.client_stats()["settlement"]
    assert client_settle["client_contract"] == client_contract
    assert client_settle["voucher_tokens"] == used and client_settle["submissions"] >= 1
    # The proxy's payment status tells the client its balance: what it booked and allows.
    assert client_settle["proxy_tokens_used"] >= client_settle["voucher_tokens"], client_settle
    assert client_settle["proxy_tokens_allowed"] > client_settle["proxy_tokens_used"], client_settle
    assert client_settle["stake_nanoton"] > 0, client_settle
    worker_settle = net.worker_stats()["settlement"]
    assert worker_settle["payouts"] >= 1, worker_settle
    # The proxy's totals kept up with its notices, and its vouchers with its totals.
    held = {k: net.worker_stats()[k] for k in ("underpaying_proxies", "unsettled_proxies")}
    assert held == {"underpaying_proxies": {}, "unsettled_proxies": {}}, held
    paid = worker_settle["channels"][0]["paid_tokens"]
    assert "payout submitted on chain" in net.log("worker")
    assert "charge voucher submitted on chain" in net.log("client")

    # The proxy's view of the client contract follows the chain: after the client's charges...
    def ledger_client():
        return [c for c in ledger_accounts(net)["clients"] if c["client"] == client_owner][0]

    wait_for(
        "the ledger to read the charged client contract",
        lambda: (c := ledger_client())["tokens_on_chain"] == used
        and c["balance"] == 2 * TON - used * PRICE,
        logs=logs,
    )
    # ... and after a second top-up, read many times (each payment status), credited once.
    run_op(
        "cocoon-client", "topup", *common, "--wallet-key-file", str(client_key),
        "--proxy-contract", proxy, "--amount", "1",
    )
    wait_for(
        "the ledger to read the second top-up",
        lambda: ledger_client()["balance"] == 3 * TON - used * PRICE,
        logs=logs,
    )
    syncs = net.proxy_stats()["settlement"]["client_syncs"]
    wait_for(
        "more payment status reads",
        lambda: net.proxy_stats()["settlement"]["client_syncs"] >= syncs + 3,
        logs=logs,
    )
    c = ledger_client()
    assert c["balance"] == 3 * TON - used * PRICE and c["deposited"] == 0
    assert c["tokens_used"] == used

    # The chain, read by the operator commands, equals the ledger to the nanoTON.
    # Worker contract: `cocoon-worker payout` with no --voucher submits the latest stored
    # voucher, paying the rest (or, when nothing is left, refuses it after reading tokens_paid
    # from the worker contract).
    worker_dir = tmp_path / f"worker-data-{net.ports['worker_stats']}"
    assert list((worker_dir / "vouchers").glob("payout-*.json"))
    payout = ["cocoon-worker", "payout", *common, "--wallet-key-file", str(worker_key),
              "--data-dir", str(worker_dir)]
    if paid < earned:
        r = run_op(*payout)
        assert r["operation"] == "worker_payout"
        assert (r["before"]["tokens_paid"], r["after"]["tokens_paid"]) == (paid, earned)
        r = run_op(*payout, ok=False)
    else:
        r = run_op(*payout, ok=False)
    assert f"not above the {earned} tokens already paid" in r["error"], r
    # Client contract: tokens_used and the balance (withdraw reports the state before).
    r = run_op(
        "cocoon-client", "withdraw", *common, "--wallet-key-file", str(client_key),
        "--proxy-contract", proxy,
    )
    assert r["before"]["tokens_used"] == used
    assert int(r["before"]["balance"]) == 3 * TON - used * PRICE
    assert r["after"]["balance"] == str(TON)

    # The client closes its account through the proxy (`cocoon-client refund`, its usual flags):
    # the proxy freezes the account, signs `grant_refund_signed` for the final count once an
    # anchor covers it, and the client submits it: the contract closes at once (no close delay).
    out = subprocess.run(
        [
            str(BIN_DIR / "cocoon-client"), "refund", "--local",
            "--proxy", f"127.0.0.1:{net.ports['proxy_clients']}", "--owner", client_owner,
            *net.client_args,
        ],
        capture_output=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace")[-4000:]
    refund = json.loads(out.stdout)
    assert refund["outcome"] == "granted" and refund["voucher"], refund
    submitted = refund["submitted"]
    assert submitted["operation"] == "client_grant_refund", submitted
    assert submitted["before"]["state"] == "normal" and submitted["before"]["tokens_used"] == used
    assert submitted["after"]["contract"] == "absent" or submitted["after"]["state"] == "closed", submitted
    assert int(submitted["wallet_balance_after"]) > int(submitted["wallet_balance_before"])
    [c] = [c for c in ledger_accounts(net)["clients"] if c["client"] == client_owner]
    assert c["closing"], c
    # A frozen account takes no more requests.
    with pytest.raises(Exception):
        chat(net.base_url, 99)

    # Proxy contract: earned = tokens × (price − fee); the anchor it holds is the ledger's.
    anchors = json.loads(net.ledger("anchors"))["anchors"]
    on_chain = [a for a in anchors if a["committed_at_ms"] is not None]
    assert on_chain, anchors
    last = max(on_chain, key=lambda a: a["seqno"])

    # Rollback: the proxy restarts on the older copy of its ledger.
    net.kill("proxy")
    for suffix in ("", "-wal", "-shm"):
        Path(net.ledger_url + suffix).unlink(missing_ok=True)
    shutil.copy(backup, net.ledger_url)
    net.start_proxy()
    wait_for(
        "the worker refusing the rolled-back proxy",
        lambda: "rolled back" in net.log("worker") and net.worker_stats()["settlement"]["proxy_rolled_back"],
        timeout=60,
        logs=logs,
    )
    why = net.worker_stats()["settlement"]["proxy_rolled_back"]
    assert f"we know of {earned}" in why, why
    restarted = net.proxy_stats()["settlement"]
    assert restarted["rolled_back"] and "rolled back" in restarted["rolled_back"]
    assert restarted["chain_anchor_seqno"] == last["seqno"]
    _, text = http_get(f"http://127.0.0.1:{net.ports['proxy_stats']}/stats")
    assert "ROLLED BACK" in text.decode()
    _, text = http_get(f"http://127.0.0.1:{net.ports['proxy_stats']}/metrics")
    assert "cocoon_proxy_ledger_rolled_back 1" in text.decode()
    net.kill("proxy")

    # The proxy owner closes the proxy contract: its report shows the commission and anchor.
    r = run_op(
        "cocoon-proxy", "close", *common, "--wallet-key-file", str(owner_key),
        "--proxy-contract", proxy,
    )
    before = r["before"]
    assert int(before["earned"]) == earned * (PRICE - WORKER_FEE)
    assert before["saved_seqno"] == last["seqno"]
    assert before["saved_state_hash"] == last["state_hash"]
    assert r["after"]["state"] == "closing"
