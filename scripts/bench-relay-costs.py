#!/usr/bin/env python3
"""Where a relayed request's time goes, for scripts/bench-relay.

`phase` runs one load generator phase and records, around it, each role's CPU time (utime +
stime from /proc/<pid>/stat, the process's own counters) and its `cocoon_<role>_overhead_seconds`
histogram (scraped from /metrics), plus the load generator's own CPU time; it appends one JSON
record to the phases file and prints the load generator's JSON line. `report` sums the records
of each phase over the rounds and prints CPU time per completed request by role, and the time
each hop added (mean from the histograms' _sum/_count, p50 estimated from their buckets).

    bench-relay-costs.py phase FILE NAME CLIENT_ROLE --pid ROLE=PID... --metrics ROLE=URL... -- CMD...
    bench-relay-costs.py report FILE
"""

import json
import os
import re
import resource
import subprocess
import sys
import urllib.request

TICK = os.sysconf("SC_CLK_TCK")
HOPS = ("client", "proxy", "worker")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may hold spaces or parentheses: fields are counted after its last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# The proxy's waits on its ledger, read beside its overhead: (table label, metric).
LEDGER_WAITS = (
    ("reserve", "cocoon_proxy_reserve_wait_seconds"),
    ("charge (durable)", "cocoon_proxy_charge_wait_seconds"),
)


def histogram(url: str, name: str):
    """[(le, cumulative)], sum and count of the histogram `name` at `url`."""
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    buckets = [
        (float(m.group(1)), int(m.group(2)))
        for m in re.finditer(rf'^{name}_bucket{{le="([0-9.e+-]+)"}} (\d+)$', text, re.M)
    ]
    total = re.search(rf"^{name}_sum (\S+)$", text, re.M)
    count = re.search(rf"^{name}_count (\d+)$", text, re.M)
    if not (buckets and total and count):
        raise SystemExit(f"{url} has no {name} histogram")
    return {"buckets": buckets, "sum": float(total.group(1)), "count": int(count.group(1))}


def snapshot(pids, urls):
    hist = {role: histogram(url, f"cocoon_{role.split('-')[0]}_overhead_seconds") for role, url in urls.items()}
    if "proxy" in urls:
        for label, name in LEDGER_WAITS:
            hist[label] = histogram(urls["proxy"], name)
    return {"cpu": {role: cpu_seconds(pid) for role, pid in pids.items()}, "hist": hist}


def pairs(args, flag):
    out = {}
    for i, a in enumerate(args):
        if a == flag:
            role, value = args[i + 1].split("=", 1)
            out[role] = value
    return out


def phase(argv):
    path, name, client_role = argv[:3]
    split = argv.index("--")
    opts, cmd = argv[3:split], argv[split + 1 :]
    pids = {k: int(v) for k, v in pairs(opts, "--pid").items()}
    urls = pairs(opts, "--metrics")
    before = snapshot(pids, urls)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    after = snapshot(pids, urls)
    line = run.stdout.strip().splitlines()[-1]
    load = json.loads(line)
    loadgen = (after_children.ru_utime - children.ru_utime) + (after_children.ru_stime - children.ru_stime)
    record = {
        "phase": name,
        "client": client_role,
        "requests": load["ok"],
        "cpu": {r: after["cpu"][r] - before["cpu"][r] for r in pids},
        "loadgen_cpu": loadgen,
        "hist": {r: diff(before["hist"][r], after["hist"][r]) for r in before["hist"]},
    }
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
    print(line)


def diff(a, b):
    return {
        "buckets": [(le, nb - na) for (le, na), (_, nb) in zip(a["buckets"], b["buckets"])],
        "sum": b["sum"] - a["sum"],
        "count": b["count"] - a["count"],
    }


def add(a, b):
    if a is None:
        return b
    return {
        "buckets": [(le, x + y) for (le, x), (_, y) in zip(a["buckets"], b["buckets"])],
        "sum": a["sum"] + b["sum"],
        "count": a["count"] + b["count"],
    }


def quantile(h, q):
    """As Prometheus's histogram_quantile: linear within the bucket holding rank q * count."""
    if h["count"] <= 0:
        return None
    rank, below, lower = q * h["count"], 0, 0.0
    for le, cum in h["buckets"]:
        if cum >= rank and cum > below:
            return lower + (le - lower) * (rank - below) / (cum - below)
        below, lower = cum, le
    return h["buckets"][-1][0] if h["buckets"] else None


def report(argv):
    phases = {}
    for line in open(argv[0]):
        r = json.loads(line)
        p = phases.setdefault(r["phase"], {"client": r["client"], "requests": 0, "cpu": {}, "loadgen": 0.0, "hist": {}})
        p["requests"] += r["requests"]
        p["loadgen"] += r["loadgen_cpu"]
        for role, s in r["cpu"].items():
            p["cpu"][role] = p["cpu"].get(role, 0.0) + s
        for role, h in r["hist"].items():
            p["hist"][role] = add(p["hist"].get(role), h)
    us = lambda s: f"{s * 1e6:8.0f}"
    print("CPU µs per completed request (utime+stime from /proc/<pid>/stat over the phase):")
    print(f"  {'phase':<22}{'requests':>9}  {'client':>8}{'proxy':>8}{'worker':>8}{'upstream':>9}{'sum':>9}   {'loadgen':>8}")
    for name, p in phases.items():
        n = max(p["requests"], 1)
        client = p["cpu"].get(p["client"]) if p["client"] != "-" else None
        cols = [client, p["cpu"].get("proxy"), p["cpu"].get("worker"), p["cpu"].get("upstream")]
        relay = sum(c for c in cols if c is not None)
        cells = "".join(us(c / n) if c is not None else f"{'-':>8}" for c in cols[:3])
        print(f"  {name:<22}{p['requests']:>9}  {cells}{us(cols[3] / n):>9}{us(relay / n):>9}   {us(p['loadgen'] / n)}")
    print("added per hop, mean / p50 µs (each role's time less the next hop's, from cocoon_<role>_overhead_seconds):")
    print(f"  {'phase':<22}{'answers':>9}  {'client':>15}{'proxy':>15}{'worker':>15}{'sum of means':>14}")
    for name, p in phases.items():
        if p["client"] == "-":  # direct to the upstream: no hops
            continue
        cells, total, count = "", 0.0, 0
        for role in HOPS:
            h = p["hist"].get(p["client"] if role == "client" else role)
            if not h or h["count"] <= 0:
                cells += f"{'-':>15}"
                continue
            mean = h["sum"] / h["count"]
            total += mean
            count = max(count, h["count"])
            cells += f"{mean * 1e6:>8.0f} /{(quantile(h, 0.5) or 0) * 1e6:>5.0f}"
        print(f"  {name:<22}{count:>9}  {cells}{total * 1e6:>14.0f}")
    print("the proxy's waits on its ledger, mean / p50 µs (queue, commit, and for a charge the sync to disk):")
    print(f"  {'phase':<22}" + "".join(f"{label:>20}" for label, _ in LEDGER_WAITS))
    for name, p in phases.items():
        if p["client"] == "-":
            continue
        cells = ""
        for label, _ in LEDGER_WAITS:
            h = p["hist"].get(label)
            if not h or h["count"] <= 0:
                cells += f"{'-':>20}"
                continue
            cells += f"{h['sum'] / h['count'] * 1e6:>12.0f} /{(quantile(h, 0.5) or 0) * 1e6:>6.0f}"
        print(f"  {name:<22}{cells}")


if __name__ == "__main__":
    {"phase": phase, "report": report}[sys.argv[1]](sys.argv[2:])
