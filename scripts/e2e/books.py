"""Checks that a network's books balance after an attack: the proxy's own audit of its ledger
(every total recomputed from the request records), money in = money out to the nanoTON, the
request records adding up to the totals, and the proxy's live view agreeing with its store."""

import json


def ledger_requests(net):
    """Every charged request of the network's ledger, oldest first (`cocoon-proxy ledger
    requests --json`)."""
    return [json.loads(line) for line in net.ledger("requests").splitlines() if line.strip()]


def ledger_accounts(net):
    return json.loads(net.ledger("accounts"))


def assert_books_balance(net):
    """Asserts that client charges = worker credits + proxy commission, with no shortfall, in
    the audit, in the sum of the request records and in the proxy's `/jsonstats`; answers the
    audited totals."""
    audit = json.loads(net.ledger("audit"))  # exits 1 (and fails here) when anything disagrees
    assert audit["balanced"] and audit["error"] is None, audit
    totals = audit["totals"]
    assert totals["shortfall"] == 0, totals
    assert totals["client_charged"] == totals["worker_credited"] + totals["proxy_commission"], totals

    records = ledger_requests(net)
    assert len(records) == totals["requests"], (records, totals)
    assert sum(r["client_charge"] for r in records) == totals["client_charged"]
    assert sum(r["worker_credit"] for r in records) == totals["worker_credited"]
    assert sum(r["commission"] for r in records) == totals["proxy_commission"]
    for r in records:
        assert r["client_charge"] == r["worker_credit"] + r["commission"], r

    accounts = ledger_accounts(net)
    assert sum(c["charged"] for c in accounts["clients"]) == totals["client_charged"]
    assert sum(w["credited"] for w in accounts["workers"]) == totals["worker_credited"]
    assert sum(w["commission"] for w in accounts["workers"]) == totals["proxy_commission"]

    live = net.proxy_stats()["ledger"]
    for key in ("requests", "client_charged", "worker_credited", "proxy_commission", "shortfall"):
        assert live[key] == totals[key], (key, live, totals)
    return totals
