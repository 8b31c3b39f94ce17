"""What the end-to-end tests on the emulated chain share: the local prices, the skip marker for
a checkout without the contracts' npm packages, wallet key files, operator commands and the
proxy's voucher key."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import BIN_DIR, ROOT

TON = 1_000_000_000
PRICE = 20  # nanoTON per adjusted token, local parameters
WORKER_FEE = 16

NEEDS_CHAIN = pytest.mark.skipif(
    not (ROOT / "contracts" / "node_modules" / "@ton" / "sandbox").exists(),
    reason="the emulated chain needs `npm ci --prefix contracts`",
)


def write_key(path: Path) -> Path:
    """A fresh wallet key (32-byte Ed25519 seed in hex) in a 0600 file."""
    path.write_text(os.urandom(32).hex() + "\n")
    os.chmod(path, 0o600)
    return path


def run_op(binary: str, *args, ok=True):
    """Runs an operator command with --json; answers its JSON report (or error object)."""
    out = subprocess.run([str(BIN_DIR / binary), *args, "--json"], capture_output=True, timeout=120)
    text = out.stdout.decode().strip()
    if ok:
        assert out.returncode == 0, f"{binary} {args}: {out.stderr.decode()}\n{text}"
    else:
        assert out.returncode != 0, f"{binary} {args} should fail:\n{text}"
    return json.loads(text)


def proxy_voucher_key(net) -> str:
    """The public voucher key (hex) of the proxy `net` will start, made in its data directory."""
    proxy_data = net.tmp / f"proxy-data-{net.ports['proxy_clients']}"
    out = subprocess.run(
        [str(BIN_DIR / "cocoon-proxy"), "--local", "--data-dir", str(proxy_data), "voucher-key"],
        capture_output=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode().strip()
