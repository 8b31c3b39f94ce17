#!/usr/bin/env bash
# Compares 64 KiB chunk sealing and opening (the `seal_open` criterion bench) with
# `openssl speed -evp aes-256-gcm -bytes 65536` and prints MiB/s and the ratio to OpenSSL.
#
# Both sides are timed by the wall clock: criterion always is, so OpenSSL runs with `-elapsed`.
# (Without `-elapsed`, `openssl speed` divides by user CPU time; on a loaded machine that
# inflates its figure relative to any wall-clock measurement by the share of the CPU the process
# did not get, which was a factor of about two on our shared VM.) The plain CPU-time figure is
# printed too, for reference. On a shared machine the runs alternate: ROUNDS rounds of
# (openssl, criterion), ratios taken within a round, and the median ratio reported.
#
# Usage (from anywhere inside the repository):
#   crates/seal/benches/compare-openssl.sh            # ROUNDS=3 by default
#   ROUNDS=5 crates/seal/benches/compare-openssl.sh
# Honours CARGO_TARGET_DIR. Needs `openssl` and `python3` on PATH.
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$repo"
rounds=${ROUNDS:-3}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT

echo "== CPU"
grep -m1 'model name' /proc/cpuinfo || true
echo "  cores: $(nproc), load: $(cut -d' ' -f1-3 /proc/loadavg)"
for flag in aes pclmulqdq avx2 vaes vpclmulqdq avx512f; do
    if grep -qw "$flag" /proc/cpuinfo; then echo "  $flag: yes"; else echo "  $flag: no"; fi
done
openssl version

echo "== building the bench"
# Build once and run the executable itself, so that edits made while the rounds run cannot
# trigger a rebuild in the middle of the measurement.
exe=$(cargo bench -p cocoon-seal --bench seal_open --no-run --message-format=json \
    | python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "seal_open" and m.get("executable"):
        print(m["executable"])')
echo "  $exe"
export CRITERION_HOME="$results/criterion"

benches=(seal open aws_lc_rs_primitive_encrypt ring_primitive_encrypt aes_gcm_primitive_encrypt)
for round in $(seq 1 "$rounds"); do
    echo "== round $round/$rounds: openssl"
    openssl speed -elapsed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null \
        | grep -i '^aes-256-gcm' >"$results/openssl-elapsed-$round"
    openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null \
        | grep -i '^aes-256-gcm' >"$results/openssl-cpu-$round"
    echo "== round $round/$rounds: cocoon-seal (criterion, 64 KiB chunks)"
    "$exe" --bench chunk_64KiB --warm-up-time 1 --measurement-time 3 --noplot >/dev/null 2> >(grep -v '^Benchmarking' >&2)
    for name in "${benches[@]}"; do
        cp "$CRITERION_HOME/chunk_64KiB/$name/new/estimates.json" "$results/$name-$round.json"
    done
done

python3 - "$results" "$rounds" "${benches[@]}" <<'PY'
import json, re, statistics, sys
from pathlib import Path

results, rounds, names = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
chunk, mib = 65536, 1024 * 1024

def openssl(kind, r):
    # "AES-256-GCM  <n>k": thousands of bytes per second.
    m = re.search(r"([\d.]+)k", (results / f"openssl-{kind}-{r}").read_text())
    return float(m.group(1)) * 1000 / mib if m else float("nan")

def ours(name, r):
    est = json.loads((results / f"{name}-{r}.json").read_text())
    return chunk / (est["mean"]["point_estimate"] * 1e-9) / mib

rows = [("openssl speed -elapsed (wall clock)", [openssl("elapsed", r) for r in range(1, rounds + 1)])]
rows += [(f"cocoon-seal chunk {n}" if n in ("seal", "open") else n,
          [ours(n, r) for r in range(1, rounds + 1)]) for n in names]
base = rows[0][1]
print(f"\n{'median of ' + str(rounds) + ' rounds':38}{'MiB/s':>9}{'x openssl':>11}   per round (MiB/s)")
for label, values in rows:
    ratio = statistics.median(v / b for v, b in zip(values, base))
    per = " ".join(f"{v:.0f}" for v in values)
    print(f"{label:38}{statistics.median(values):9.0f}{ratio:11.2f}   {per}")
cpu = [openssl("cpu", r) for r in range(1, rounds + 1)]
print(f"{'(openssl speed, user CPU time)':38}{statistics.median(cpu):9.0f}{'':11}   "
      + " ".join(f"{v:.0f}" for v in cpu))
PY
