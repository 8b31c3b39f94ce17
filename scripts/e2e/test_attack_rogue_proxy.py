"""Attacks by a proxy whose software cheats, run against the real client and worker binaries.

`cocoon-rogue-proxy` is a real proxy behind relays that rewrite what it sends, as a dishonest
proxy's software would (simulated evidence, so only local-mode nodes accept it). The proxy's own
books behind it are honest; what is shown is what the client and the worker catch on their own
from what reaches them.

- A proxy pays its worker at the worker's coefficient (1.0×) and charges the client twice that,
  reporting 2.0× (within the request's `max_coefficient` of 4.0×). The worker's receipt signs
  the coefficient it served at: the client bounds the charge at that, finds the overcharge, and
  sends the proxy nothing more.
- The same proxy withholds the worker's receipts, so that only its word on the coefficient is
  left: a sealed request's worker signs every end that bills usage, so a charge without its
  receipt is backed by nothing, and caught whole.
- A proxy names a contract the client cannot read, so that the client would have no prices to
  hold its charges to: the client opens no session with it.
- Or it rewrites the coefficient the receipts sign (it cannot sign them again): the client
  verifies each receipt as it arrives, and one that does not verify backs nothing.
- A proxy offers the worker a coefficient below its own: the worker refuses the request (409)
  and never runs it; the client is charged nothing. Above its own (so that the receipt would
  sign the higher coefficient the client is charged at): refused too.
- A proxy answers the worker's handshake with protocol version 2, as a reference proxy does,
  so that the worker would hold neither its coefficients nor its payments to account: a worker
  with `require_audited_proxies` refuses the session.
- A proxy sends a second request under the first one's id, so that one payment could cover
  both: the worker refuses it (409).
- A proxy notifies the worker of each payment in full but never credits it in its books: the
  committed total it shows (which its vouchers sign) stays where it was. The worker holds the
  total to the notices and serves that proxy no more; behind the same relays, an honest proxy's
  totals keep up with concurrent requests and it is served on.
- A proxy takes the work and pays nothing, without a word (no notice, a total that never
  grows): the worker holds its total to its own account of the work it completed, and holds
  the proxy; with honest books and lost notices, the proxy is served on.
- A proxy names a worker contract other than the worker's own, so that the vouchers it signs
  would pay the worker nothing: the worker derives its own from the chain and refuses. Naming
  no proxy contract at all to a worker that settles on chain: refused too.
- A proxy that settles on chain anchors its ledger but hands the worker no payout voucher, so
  that the worker serves on credit that is never settled: once a total it showed has waited
  unsigned past `voucher_lag_limit`, the worker holds it (serves it nothing until a voucher
  signs what it showed).
"""

import json
import os
import re
import select
import threading
import time
import urllib.error

import pytest

from chain import NEEDS_CHAIN, proxy_voucher_key, run_op, write_key
from conftest import BIN_DIR, MODEL_HASH, SIMULATED_IMAGE_HASH, Emulator, Network, free_port, wait_for
from conftest import chat_status as chat


class RogueProxyNetwork(Network):
    """A network whose nodes reach the real proxy through `cocoon-rogue-proxy ROGUE_ARGS`, on
    the ports they would use for the proxy itself; its rewrites are in `rewrites()`."""

    def __init__(self, tmp, rogue_args=(), wait_model=True, worker_front=False, **kwargs):
        super().__init__(tmp, **kwargs)
        # False: the client is not expected to open a session (and offer the model).
        self.wait_model = wait_model
        # False: the worker connects to the real proxy (the attacks on clients touch only what
        # the client is sent).
        self.worker_front = worker_front
        self.rogue_args = list(rogue_args)
        self.front = {"clients": self.ports["proxy_clients"], "workers": self.ports["proxy_workers"]}
        # The real proxy listens behind the front.
        self.ports["proxy_clients"] = free_port()
        if worker_front:
            self.ports["proxy_workers"] = free_port()
        self.rewrite_lines = []
        self.partial = b""

    def start_proxy(self):
        super().start_proxy()
        rogue = self._spawn(
            "rogue-proxy",
            [
                str(BIN_DIR / "cocoon-rogue-proxy"),
                "--client-listen", f"127.0.0.1:{self.front['clients']}",
                "--proxy-clients", f"127.0.0.1:{self.ports['proxy_clients']}",
            ]
            + (
                [
                    "--worker-listen", f"127.0.0.1:{self.front['workers']}",
                    "--proxy-workers", f"127.0.0.1:{self.ports['proxy_workers']}",
                ]
                if self.worker_front
                else []
            )
            + self.rogue_args,
        )
        line = rogue.stdout.readline().decode()
        assert line.startswith("listening"), f"cocoon-rogue-proxy did not start: {line!r}\n{self.log('rogue-proxy')}"
        # The worker and the client dial the front.
        self.ports["proxy_clients"], self.front["clients"] = self.front["clients"], self.ports["proxy_clients"]
        if self.worker_front:
            self.ports["proxy_workers"], self.front["workers"] = self.front["workers"], self.ports["proxy_workers"]

    def wait_for_model(self, timeout=30.0):
        if self.wait_model:
            super().wait_for_model(timeout)

    def wait_http(self, url, name, timeout=30.0):
        # A client without a session is not healthy: the test watches its log instead.
        if self.wait_model or name != "client":
            super().wait_http(url, name, timeout)

    def rewrites(self):
        """The rewrites so far (JSON lines on the front's stdout, read without blocking)."""
        out = self.procs["rogue-proxy"].stdout
        while select.select([out], [], [], 0)[0]:
            chunk = os.read(out.fileno(), 65536)
            if not chunk:
                break
            *lines, self.partial = (self.partial + chunk).split(b"\n")
            self.rewrite_lines.extend(json.loads(line) for line in lines if line.strip())
        return self.rewrite_lines


@pytest.fixture
def rogue_proxy_network(tmp_path):
    nets = []

    def make(rogue_args, **kwargs):
        net = RogueProxyNetwork(tmp_path, rogue_args=rogue_args, **kwargs).start()
        nets.append(net)
        return net

    yield make
    for n in nets:
        n.stop()


def answered(net):
    """A chat's status and body once the client listens (`None` before)."""
    try:
        return chat(net, 0)
    except urllib.error.URLError:
        return None


def rewritten(net, message):
    return [r for r in net.rewrites() if r["message"] == message]


def runs_rewritten(net):
    """Rewrites of the requests sent to the worker (sealed or in clear)."""
    return [r for r in net.rewrites() if r["message"].startswith("ext.workerRun")]


def test_a_proxy_charging_above_the_coefficient_it_paid_the_worker_is_caught(rogue_proxy_network):
    net = rogue_proxy_network(["--charge-factor", "2"])
    status, answer = chat(net, 0)
    assert status == 200, answer
    receipt = answer["cocoon_receipt"]
    assert receipt["verified"], receipt
    wait_for(
        "the client to judge the charge",
        lambda: net.client_stats()["settlement"]["audit"]["audited"] >= 1,
        logs=lambda: net.log("client") + net.log("rogue-proxy"),
    )
    # The attack happened: the cost report said 2.0x, the charge was twice the real one.
    assert [r["change"] for r in rewritten(net, "ext.queryCost")] == ["coefficient 1000 -> 2000"]
    assert rewritten(net, "proxy.clientRequestPayment"), net.rewrites()
    audit = wait_for(
        "the client to find the overcharge",
        lambda: (a := net.client_stats()["settlement"]["audit"])["discrepancies"] >= 1 and a,
        logs=lambda: net.log("client"),
    )
    # Charged twice the usage at 1.0x: the excess is that usage (1.0 per prompt token, 4.0 per
    # completion token).
    usage = answer["usage"]
    assert audit["discrepancy_tokens"] == usage["prompt_tokens"] + 4 * usage["completion_tokens"], (audit, usage)
    # From then on the proxy gets nothing more from this client.
    status, body = chat(net, 1)
    assert status == 502 and body["error"]["code"] == "proxy_overcharged", body


def test_a_proxy_withholding_the_receipt_of_a_sealed_answer_is_caught(rogue_proxy_network):
    net = rogue_proxy_network(["--charge-factor", "2", "--drop-receipts"])
    status, answer = chat(net, 0)
    assert status == 200, answer
    assert answer["cocoon_receipt"]["verified"] is False, answer["cocoon_receipt"]
    # The attack happened: the request went sealed, its receipt was withheld, the charge doubled.
    assert rewritten(net, "ext.queryReceipt"), net.rewrites()
    assert rewritten(net, "proxy.clientRequestPayment"), net.rewrites()
    assert answer["cocoon_receipt"]["envelope_sha256"], "the request went in clear"
    audit = wait_for(
        "the client to find the unbacked charge",
        lambda: (a := net.client_stats()["settlement"]["audit"])["discrepancies"] >= 1 and a,
        logs=lambda: net.log("client") + net.log("rogue-proxy"),
    )
    # Nothing the worker signed backs any of it: the whole charge is the discrepancy.
    usage = answer["usage"]
    assert audit["discrepancy_tokens"] == 2 * (usage["prompt_tokens"] + 4 * usage["completion_tokens"]), (audit, usage)
    status, body = chat(net, 1)
    assert status == 502 and body["error"]["code"] == "proxy_overcharged", body


def test_a_proxy_raising_the_coefficient_its_receipts_sign_is_caught(rogue_proxy_network):
    """The receipt is rewritten to sign 2.0x, its signature left as it was (the proxy holds no
    worker's key): the client verifies receipts as they arrive, and one that does not verify
    backs nothing."""
    net = rogue_proxy_network(["--charge-factor", "2", "--forge-receipts"])
    status, answer = chat(net, 0)
    assert status == 200, answer
    assert answer["cocoon_receipt"]["verified"] is False, answer["cocoon_receipt"]
    # Sealed: in clear a receipt that does not verify leaves the reported coefficient standing.
    assert answer["cocoon_receipt"]["envelope_sha256"], "the request went in clear"
    assert [r["change"] for r in rewritten(net, "ext.queryReceipt")] == ["coefficient Some(1000) -> Some(2000)"]
    audit = wait_for(
        "the client to find the unbacked charge",
        lambda: (a := net.client_stats()["settlement"]["audit"])["discrepancies"] >= 1 and a,
        logs=lambda: net.log("client") + net.log("rogue-proxy"),
    )
    usage = answer["usage"]
    assert audit["discrepancy_tokens"] == 2 * (usage["prompt_tokens"] + 4 * usage["completion_tokens"]), (audit, usage)


def test_an_honest_proxy_behind_the_same_relays_passes_the_audit(rogue_proxy_network):
    """The relays alone change nothing: without a rewrite the charges pass."""
    net = rogue_proxy_network([])
    for i in range(3):
        status, answer = chat(net, i)
        assert status == 200, answer
    audit = wait_for(
        "the client to judge three charges",
        lambda: (a := net.client_stats()["settlement"]["audit"])["audited"] >= 3 and a,
        logs=lambda: net.log("client"),
    )
    assert audit["discrepancies"] == 0, audit
    assert net.rewrites() == []


def test_a_worker_offered_a_coefficient_below_its_own_refuses(rogue_proxy_network):
    net = rogue_proxy_network(["--offer-coefficient", "1"], worker_front=True)
    status, body = chat(net, 0)
    assert status != 200, body
    assert [r["change"] for r in runs_rewritten(net)][:1] == ["coefficient 1000 -> 1"]
    assert re.search(r"offers coefficient 1, below this worker's 1000", net.log("worker") + json.dumps(body)), (
        net.log("worker")
    )
    # Nothing was charged: the client's audit saw no charge above nothing.
    assert net.client_stats()["settlement"]["audit"]["discrepancies"] == 0


def test_a_worker_offered_twice_its_coefficient_refuses(rogue_proxy_network):
    """The other half of the coefficient skim: the proxy offers the worker 2.0x (so that its
    receipt signs 2.0x), charges the client 2.0x and pays the worker 1.0x. The worker takes no
    coefficient but its own."""
    net = rogue_proxy_network(["--offer-coefficient", "2000", "--charge-factor", "2"], worker_front=True)
    status, body = chat(net, 0)
    assert status != 200, body
    assert [r["change"] for r in runs_rewritten(net)][:1] == ["coefficient 1000 -> 2000"]
    assert "offers coefficient 2000, above this worker's 1000" in net.log("worker") + json.dumps(body), (
        net.log("worker")
    )


def test_a_second_request_under_the_first_ones_id_is_refused(rogue_proxy_network):
    net = rogue_proxy_network(["--reuse-request-ids"], worker_front=True)
    status, answer = chat(net, 0)
    assert status == 200, answer
    status, body = chat(net, 1)
    assert status != 200, body
    assert runs_rewritten(net), net.rewrites()
    assert "this request id is already in use" in net.log("worker") + json.dumps(body), net.log("worker")


@NEEDS_CHAIN
def test_a_proxy_naming_a_contract_that_cannot_be_read_gets_no_session(rogue_proxy_network, tmp_path):
    emu = Emulator(tmp_path, [])
    try:
        config = tmp_path / "client-on-chain.toml"
        config.write_text(f'[registry]\nchain = "{emu.spec}"\n')
        client_args = ["--config", str(config)]
        # Honest, in local mode: the proxy names its placeholder, settles on no chain, and the
        # client audits at its configured prices.
        honest = rogue_proxy_network([], client_args=client_args)
        status, answer = chat(honest, 0)
        assert status == 200, answer
        # Naming an address no contract lives at: no session, no request sent.
        unreadable = "0:" + "01" * 32
        net = rogue_proxy_network(["--proxy-contract", unreadable], client_args=client_args, wait_model=False)
        wait_for(
            "the client to refuse the session",
            lambda: "cannot be read" in net.log("client"),
            logs=lambda: net.log("client")[-4000:],
        )
        assert [r["change"] for r in rewritten(net, "client.connectedToProxy")][:1] == [
            f"proxy_sc_address local-proxy-contract -> {unreadable}"
        ], net.rewrites()
        status, body = wait_for("the client to answer", lambda: answered(net), logs=lambda: net.log("client"))
        assert status != 200, body
        assert net.proxy_stats()["requests"] == 0, "a request reached the proxy"
    finally:
        emu.stop()


def test_a_proxy_answering_as_a_reference_one_is_refused_when_audits_are_required(rogue_proxy_network, tmp_path):
    config = tmp_path / "worker-audited.toml"
    config.write_text("require_audited_proxies = true\n")
    net = rogue_proxy_network(
        ["--downgrade-workers"], worker_front=True, worker_args=["--config", str(config)], wait_model=False
    )
    wait_for(
        "the worker to refuse the session",
        lambda: "whose payments this worker cannot audit" in net.log("worker"),
        logs=lambda: net.log("worker")[-4000:],
    )
    assert [r["change"] for r in rewritten(net, "worker.connectedToProxy")][:1] == ["proto_version Some(3) -> Some(2)"]
    status, body = wait_for("the client to answer", lambda: answered(net), logs=lambda: net.log("client"))
    assert status != 200, body
    assert net.worker_stats()["requests"] == 0


@NEEDS_CHAIN
def test_a_worker_on_chain_refuses_a_proxy_naming_no_proxy_contract(rogue_proxy_network, tmp_path):
    """The proxy names an address where no proxy contract lives, so that the worker would audit
    it at prices that may not be its own, and never cut it off: the chain answers that no
    contract is there, and the worker refuses the session."""
    emu = Emulator(tmp_path, [])
    try:
        config = tmp_path / "worker-on-chain.toml"
        config.write_text(f'[registry]\nchain = "{emu.spec}"\n')
        unreadable = "0:" + "01" * 32
        net = rogue_proxy_network(
            ["--proxy-contract", unreadable],
            worker_front=True,
            worker_args=["--config", str(config)],
            wait_model=False,
        )
        wait_for(
            "the worker to refuse the session",
            lambda: "is not a proxy contract" in net.log("worker"),
            logs=lambda: net.log("worker")[-4000:],
        )
        assert any(
            f"proxy_sc_address local-proxy-contract -> {unreadable}" in r["change"]
            for r in rewritten(net, "worker.connectedToProxy")
        ), net.rewrites()
        assert net.worker_stats()["requests"] == 0
    finally:
        emu.stop()


def test_a_proxy_whose_total_for_the_worker_does_not_grow_is_cut_off(rogue_proxy_network):
    net = rogue_proxy_network(["--freeze-worker-totals"], worker_front=True)
    status, answer = chat(net, 0)
    assert status == 200, answer
    logs = lambda: net.log("worker")[-4000:] + net.log("rogue-proxy")[-2000:]
    wait_for("the worker to cut the proxy off", lambda: net.worker_stats()["underpaying_proxies"], logs=logs)
    # The attack happened: the notice paid the request in full and showed the old total.
    [notice] = rewritten(net, "proxy.workerRequestPayment")
    assert re.fullmatch(r"db_tokens \d+ -> \d+ \(request_tokens [1-9]\d*\)", notice["change"]), notice
    # Each notice on its own passed the worker's audit: only the total gives the proxy away.
    assert net.worker_stats()["payment_audit"]["discrepancies"] == 0
    [(proxy, why)] = net.worker_stats()["underpaying_proxies"].items()
    assert proxy.endswith(str(net.ports["proxy_workers"])) and "short of the" in why, (proxy, why)
    assert "this proxy is served no more" in net.log("worker"), logs()
    status, refused = chat(net, 1)
    assert status != 200, refused


def test_an_honest_proxys_totals_keep_up_with_concurrent_requests(rogue_proxy_network, tmp_path):
    """The rules' false-positive side: concurrent charges commit in one order and their notices
    may arrive in another, payment-status answers read the total at any time between, and the
    completed work must be in the total half a second after it ends."""
    config = tmp_path / "worker-grace.toml"
    config.write_text("payment_grace = 0.5\n")
    net = rogue_proxy_network(
        [], worker_front=True, worker_args=["--config", str(config), "--payment-status-interval", "0.2"]
    )
    answers = []
    threads = [threading.Thread(target=lambda i=i: answers.append(chat(net, i))) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in answers] == [200] * 8, answers
    wait_for(
        "the worker's audit of eight payments",
        lambda: net.worker_stats()["payment_audit"]["audited"] >= 8,
        logs=lambda: net.log("worker")[-4000:],
    )
    status, answer = chat(net, 8)
    assert status == 200, answer
    time.sleep(1.5)  # past the grace, and a few status answers
    held = {k: net.worker_stats()[k] for k in ("underpaying_proxies", "unsettled_proxies")}
    assert held == {"underpaying_proxies": {}, "unsettled_proxies": {}}, held
    assert net.rewrites() == []


def test_a_proxy_that_takes_the_work_and_pays_nothing_is_held(rogue_proxy_network, tmp_path):
    """No payment notice reaches the worker and the total it is shown never grows: nothing is
    notified, so nothing is short of the notices; the worker's own account of the work it
    completed is what the total is held to."""
    config = tmp_path / "worker-grace.toml"
    config.write_text("payment_grace = 1\n")
    worker_args = ["--config", str(config), "--payment-status-interval", "0.2"]
    net = rogue_proxy_network(
        ["--silence-worker-payments", "--freeze-worker-totals"], worker_front=True, worker_args=worker_args
    )
    for i in range(4):
        status, answer = chat(net, i)
        assert status == 200, answer
    logs = lambda: net.log("worker")[-4000:] + net.log("rogue-proxy")[-2000:]
    [(proxy, why)] = wait_for(
        "the worker to hold the proxy", lambda: net.worker_stats()["unsettled_proxies"].items(), logs=logs
    )
    assert "does not pay for the work it takes" in why and "4 completed requests" in why, why
    # The attack happened: four notices withheld, and no payment judged.
    assert [r["change"] for r in rewritten(net, "proxy.workerRequestPayment")] == ["withheld"] * 4
    assert net.worker_stats()["payment_audit"]["audited"] == 0
    status, refused = chat(net, 4)
    assert status != 200, refused
    # After ten graces held, what it left unpaid is forgiven (an honest proxy's shortfall could
    # never be made up without work): served again, and judged afresh.
    wait_for(
        "the proxy to be served again",
        lambda: not net.worker_stats()["unsettled_proxies"],
        timeout=30,
        logs=logs,
    )
    assert "forgiven after" in net.log("worker"), logs()


def test_a_proxy_whose_notices_are_lost_but_whose_books_pay_is_served(rogue_proxy_network, tmp_path):
    """The same silence with honest books: the total the worker is shown grows by the work, and
    the worker serves on."""
    config = tmp_path / "worker-grace.toml"
    config.write_text("payment_grace = 0.5\n")
    worker_args = ["--config", str(config), "--payment-status-interval", "0.2"]
    net = rogue_proxy_network(["--silence-worker-payments"], worker_front=True, worker_args=worker_args)
    for i in range(4):
        status, answer = chat(net, i)
        assert status == 200, answer
    time.sleep(1.5)
    status, answer = chat(net, 4)
    assert status == 200, answer
    held = {k: net.worker_stats()[k] for k in ("underpaying_proxies", "unsettled_proxies")}
    assert held == {"underpaying_proxies": {}, "unsettled_proxies": {}}, held


def settling_network(tmp_path, rogue_args, worker_config, wait_model=True):
    """A rogue-fronted network (workers too) whose proxy settles on the emulated chain, the
    client topped up; answers it started, and the emulator (stop both)."""
    keys = {name: write_key(tmp_path / f"{name}.key") for name in ("client", "worker", "owner", "anchor")}
    net = RogueProxyNetwork(
        tmp_path,
        rogue_args=[*rogue_args, "--worker-model-hash", MODEL_HASH],
        worker_front=True,
        wait_model=wait_model,
    )
    emu = Emulator(
        tmp_path,
        [
            "--proxy-public-key", proxy_voucher_key(net),
            "--proxy-owner-key-file", str(keys["owner"]),
            "--fund-key-file", f"{keys['client']}=50",
            "--fund-key-file", f"{keys['worker']}=5",
            "--fund-key-file", f"{keys['anchor']}=5",
            "--allow-proxy-image", SIMULATED_IMAGE_HASH,
            "--allow-worker-image", SIMULATED_IMAGE_HASH,
            "--allow-model", MODEL_HASH,
        ],
    )
    try:
        proxy = emu.info["proxy_contract"]
        owners = emu.info["key_files"]
        run_op(
            "cocoon-client", "topup", "--chain", emu.spec, "--timeout-secs", "20",
            "--wallet-key-file", str(keys["client"]), "--proxy-contract", proxy, "--amount", "2",
        )
        config = tmp_path / "worker-settling.toml"
        config.write_text(worker_config)
        net.proxy_args = [
            "--chain", emu.spec, "--proxy-contract", proxy,
            "--wallet-key-file", str(keys["anchor"]), "--anchor-interval", "0.5",
        ]
        net.worker_args = [
            "--config", str(config), "--owner", owners[str(keys["worker"])], "--chain", emu.spec,
            "--wallet-key-file", str(keys["worker"]), "--payment-status-interval", "0.5",
        ]
        net.client_args = ["--chain", emu.spec, "--wallet-key-file", str(keys["client"])]
        net.client_owner = owners[str(keys["client"])]
        net.start()
    except BaseException:
        net.stop()
        emu.stop()
        raise
    return net, emu


@NEEDS_CHAIN
def test_a_proxy_whose_vouchers_never_sign_what_it_owes_is_held(tmp_path):
    net, emu = settling_network(tmp_path, ["--withhold-worker-vouchers"], "[settlement]\nvoucher_lag_limit = 2\n")
    try:
        logs = lambda: net.log("worker")[-4000:] + net.log("rogue-proxy")[-2000:]
        status, answer = chat(net, 0)
        assert status == 200, answer
        [(proxy_addr, why)] = wait_for(
            "the worker to hold the proxy",
            lambda: net.worker_stats()["unsettled_proxies"].items(),
            timeout=30,
            logs=logs,
        )
        assert "does not settle what it owes" in why, why
        # Held, not cut off: a slow chain leaves an honest proxy behind too.
        assert net.worker_stats()["underpaying_proxies"] == {}
        # The attack happened: the proxy signed vouchers (it anchored), the worker got none.
        wait_for(
            "a voucher withheld",
            lambda: any("voucher withheld" in r["change"] for r in net.rewrites()),
            logs=logs,
        )
        assert net.worker_stats()["settlement"]["channels"][0]["voucher_tokens"] == 0
        assert net.proxy_stats()["settlement"]["vouchers_signed"] >= 1
        status, refused = chat(net, 1)
        assert status != 200, refused
    finally:
        net.stop()
        emu.stop()


@NEEDS_CHAIN
def test_a_proxy_naming_another_worker_contract_gets_no_session(tmp_path):
    """The proxy names a worker contract that is not this worker's at its proxy contract, so
    that the vouchers it signs for it (which the worker would keep and count as signed) pay
    the worker nothing. The worker derives its own from the contract on chain and refuses."""
    other = "0:" + "02" * 32
    net, emu = settling_network(tmp_path, ["--worker-contract", other], "", wait_model=False)
    try:
        wait_for(
            "the worker to refuse the session",
            lambda: "as this worker's contract, but its contract's is" in net.log("worker"),
            logs=lambda: net.log("worker")[-4000:],
        )
        assert any(
            "worker_sc_address" in r["change"] and other in r["change"]
            for r in rewritten(net, "worker.connectedToProxy")
        ), net.rewrites()
        assert net.worker_stats()["requests"] == 0
    finally:
        net.stop()
        emu.stop()

@NEEDS_CHAIN
def test_a_proxy_naming_no_contract_to_a_worker_that_settles_on_chain_gets_no_session(tmp_path):
    """The proxy settles on chain but names the local-mode placeholder, so that the worker would
    take it for a proxy that settles nowhere: audited at the local prices, its vouchers never
    waited for. A worker with `[settlement] chain` is paid on chain or not at all: it refuses."""
    net, emu = settling_network(tmp_path, ["--proxy-contract", "local-proxy-contract"], "", wait_model=False)
    try:
        wait_for(
            "the worker to refuse the session",
            lambda: "names no proxy contract" in net.log("worker"),
            logs=lambda: net.log("worker")[-4000:],
        )
        assert any("proxy_sc_address" in r["change"] for r in rewritten(net, "worker.connectedToProxy")), net.rewrites()
        assert net.worker_stats()["requests"] == 0
    finally:
        net.stop()
        emu.stop()
