#!/usr/bin/env bash
# Runs the `seal_open` criterion bench for 64 KiB chunks beside
# `openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3` and prints both in MiB/s.
#
# Usage (from anywhere inside the repository):
#   crates/seal/benches/compare-openssl.sh
# Honours CARGO_TARGET_DIR. Needs `openssl` and `python3` on PATH.
set -euo pipefail

repo=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
cd "$repo"
target=${CARGO_TARGET_DIR:-$repo/target}

echo "== CPU"
grep -m1 'model name' /proc/cpuinfo || true
for flag in aes pclmulqdq avx2 vaes vpclmulqdq avx512f; do
    if grep -qw "$flag" /proc/cpuinfo; then echo "  $flag: yes"; else echo "  $flag: no"; fi
done

echo "== cocoon-seal (criterion, 64 KiB chunks)"
cargo bench -p cocoon-seal --bench seal_open -- chunk_64KiB

echo "== openssl"
openssl version
openssl_out=$(openssl speed -evp aes-256-gcm -bytes 65536 -seconds 3 2>/dev/null)
echo "$openssl_out" | tail -n 3

python3 - "$target/criterion" "$openssl_out" <<'PY'
import json, re, sys
from pathlib import Path

root, openssl = Path(sys.argv[1]), sys.argv[2]
chunk = 65536
mib = 1024 * 1024

def ours(name):
    est = json.loads((root / "chunk_64KiB" / name / "new" / "estimates.json").read_text())
    ns = est["mean"]["point_estimate"]
    return chunk / (ns * 1e-9) / mib

# openssl prints "AES-256-GCM  <n>k" in thousands of bytes per second.
m = re.search(r"^aes-256-gcm\s+([\d.]+)k", openssl, re.I | re.M)
ssl = float(m.group(1)) * 1000 / mib if m else float("nan")

print(f"\n{'':34}{'MiB/s':>10}{'x openssl':>11}")
print(f"{'openssl speed -evp aes-256-gcm':34}{ssl:10.0f}{1.0:11.2f}")
for name in ("seal", "open", "aes_gcm_primitive_encrypt"):
    v = ours(name)
    print(f"{'cocoon-seal chunk ' + name:34}{v:10.0f}{v / ssl:11.2f}")
PY
