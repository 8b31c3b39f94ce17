"""Signed receipts through the whole network: the worker signs what it ran, the client checks
it and returns it with the answer (header and field), and `cocoon-client verify-receipt`
checks it offline; changing any byte fails."""

import base64
import json
import subprocess
import urllib.request

from conftest import BIN_DIR, MODEL


def chat(network, stream=False):
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "receipt please"}],
        "max_tokens": 16,
        "stream": stream,
    }
    req = urllib.request.Request(
        f"{network.base_url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.headers, r.read().decode()


def verify(*args):
    return subprocess.run(
        [str(BIN_DIR / "cocoon-client"), "verify-receipt", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_non_streamed_answer_carries_a_verified_receipt(network):
    headers, text = chat(network)
    answer = json.loads(text)
    field = answer["cocoon_receipt"]
    assert field["verified"] is True, field
    assert headers["X-Cocoon-Receipt"] == field["receipt"]
    assert headers["X-Cocoon-Receipt-Verified"] == "true"

    out = verify("--local", "--json", "--receipt", field["receipt"])
    assert out.returncode == 0, out.stderr
    checked = json.loads(out.stdout)
    assert checked["valid"] is True
    assert checked["attestation"] == "simulated"
    assert checked["prompt_tokens"] == answer["usage"]["prompt_tokens"]
    assert checked["completion_tokens"] == answer["usage"]["completion_tokens"]
    assert checked["model"] == MODEL


def test_streamed_answer_carries_a_verified_receipt(network):
    _, text = chat(network, stream=True)
    events = [json.loads(l[6:]) for l in text.splitlines() if l.startswith("data: {")]
    receipts = [e["cocoon_receipt"] for e in events if "cocoon_receipt" in e]
    assert len(receipts) == 1 and receipts[0]["verified"] is True, receipts
    out = verify("--local", "--receipt", receipts[0]["receipt"])
    assert out.returncode == 0, out.stderr
    assert "receipt valid" in out.stdout


def test_the_receipt_names_its_request_and_no_other(network):
    _, text = chat(network)
    field = json.loads(text)["cocoon_receipt"]
    assert field["verified"] is True, field
    binding = ["--request-id", field["request_id"]]
    if field["envelope_sha256"]:
        binding += ["--envelope-sha256", field["envelope_sha256"]]
    out = verify("--local", "--json", "--receipt", field["receipt"], *binding)
    assert out.returncode == 0, out.stderr
    checked = json.loads(out.stdout)
    assert checked["request_id"] == field["request_id"]
    assert checked["envelope_sha256"] == field["envelope_sha256"]
    assert checked["request_id_checked"] is True
    # Presented for another request, the same receipt is refused.
    other = ("00" if field["request_id"][:2] != "00" else "11") + field["request_id"][2:]
    out = verify("--local", "--receipt", field["receipt"], "--request-id", other)
    assert out.returncode != 0 and "names another request id" in out.stderr, out.stderr
    out = verify("--local", "--receipt", field["receipt"], "--envelope-sha256", "ab" * 32)
    assert out.returncode != 0 and "names another sealed envelope" in out.stderr, out.stderr


def test_any_changed_byte_or_a_production_policy_fails(network):
    headers, _ = chat(network)
    raw = base64.b64decode(headers["X-Cocoon-Receipt"])
    # Production policy: a simulated worker's receipt proves nothing.
    out = verify("--receipt", headers["X-Cocoon-Receipt"])
    assert out.returncode != 0 and "SIMULATED" in out.stderr, out.stderr
    # Every field: the fixed header, the request id, the flags and envelope hash, the hashes,
    # the token counts, the time, the model name, the certificate and the signature.
    for pos in list(range(0, 5 + 33 + 5 * 32 + 5 * 8 + 8, 7)) + [len(raw) - 200, len(raw) - 1]:
        changed = bytearray(raw)
        changed[pos] ^= 0x01
        out = verify("--local", "--receipt", base64.b64encode(bytes(changed)).decode())
        assert out.returncode != 0, f"changing byte {pos} went unnoticed"
        assert "receipt invalid" in out.stderr
