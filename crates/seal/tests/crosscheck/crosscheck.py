#!/usr/bin/env python3
"""Cross-checks cocoon-seal against independent implementations and writes the fixture.

Independent side:
  * HPKE: pyhpke 0.6.5 (``pip install pyhpke==0.6.5``), suite DHKEM(X25519, HKDF-SHA256) /
    HKDF-SHA256 / AES-256-GCM, in all four modes.
  * Envelope and chunk stream: built and parsed here from the layout in docs/sealing.md, using
    pyhpke for the key wraps and reply-key export, the standard library's hmac for HKDF and
    ``cryptography``'s AESGCM (a pyhpke dependency) for the body and the chunks.

Both directions, with fixed keys:
  1. pyhpke seals; cocoon-seal opens (via ``cargo run --example crosscheck_vectors``);
  2. cocoon-seal seals; pyhpke (and the Python envelope parser) opens.

The result is committed as tests/fixtures/hpke-crosscheck.json; ``cargo test --test crosscheck``
replays both directions from it without Python.

Usage (from the repository root):
    python3 crates/seal/tests/crosscheck/crosscheck.py [--write]
Without --write it only checks that a fresh run matches the committed fixture.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pyhpke import AEADId, CipherSuite, KDFId, KEMId

HERE = Path(__file__).resolve().parent
CRATE = HERE.parent.parent
FIXTURE = CRATE / "tests" / "fixtures" / "hpke-crosscheck.json"

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.AES256_GCM)


def seeded(label: str, n: int) -> bytes:
    """Deterministic test bytes: SHA-256 in counter mode over a label."""
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(label.encode() + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:n]


def h(b: bytes) -> str:
    return b.hex()


def uh(s: str | None) -> bytes:
    return bytes.fromhex(s) if s is not None else b""


# ---------------------------------------------------------------- HPKE cases


def hpke_cases() -> list[dict]:
    psk = seeded("psk", 32)
    psk_id = b"cocoon psk id"
    lengths = [0, 1, 15, 16, 17, 64, 255, 1029]
    cases = []
    for mode, name in [(0, "base"), (1, "psk"), (2, "auth"), (3, "auth_psk")]:
        for variant, info in [("empty-info", b""), ("info", b"cocoon-seal cross-check " + name.encode())]:
            label = f"{name}/{variant}"
            msgs = lengths if mode == 0 else [0, 17, 300]
            cases.append(
                {
                    "name": label,
                    "mode": mode,
                    "ikmR": h(seeded(label + "/ikmR", 32)),
                    "ikmS": h(seeded(label + "/ikmS", 32)) if mode in (2, 3) else None,
                    "psk": h(psk) if mode in (1, 3) else None,
                    "psk_id": h(psk_id) if mode in (1, 3) else None,
                    "info": h(info),
                    "messages": [
                        {
                            "aad": h(b"" if i % 3 == 0 else seeded(f"{label}/aad{i}", 1 + 7 * i)),
                            "pt": h(seeded(f"{label}/pt{i}", n)),
                        }
                        for i, n in enumerate(msgs)
                    ],
                    "exports": [
                        {"context": "", "len": 32},
                        {"context": h(b"cocoon"), "len": 32},
                        {"context": h(b"long export"), "len": 100},
                    ],
                    "pyhpke_sealed": {"ikmE": h(seeded(label + "/ikmE-pyhpke", 32))},
                    "ours_sealed": {"ikmE": h(seeded(label + "/ikmE-ours", 32))},
                }
            )
    return cases


def case_keys(case: dict):
    rkp = SUITE.kem.derive_key_pair(uh(case["ikmR"]))
    skp = SUITE.kem.derive_key_pair(uh(case["ikmS"])) if case["ikmS"] else None
    return rkp, skp


def pyhpke_seal(case: dict) -> dict:
    rkp, skp = case_keys(case)
    eks = SUITE.kem.derive_key_pair(uh(case["pyhpke_sealed"]["ikmE"]))
    enc, ctx = SUITE.create_sender_context(
        rkp.public_key,
        uh(case["info"]),
        sks=skp.private_key if skp else None,
        psk=uh(case["psk"]),
        psk_id=uh(case["psk_id"]),
        eks=eks,
    )
    cts = [h(ctx.seal(uh(m["pt"]), uh(m["aad"]))) for m in case["messages"]]
    exports = [h(ctx.export(uh(e["context"]), e["len"])) for e in case["exports"]]
    return {"ikmE": case["pyhpke_sealed"]["ikmE"], "enc": h(enc), "cts": cts, "exports": exports}


def pyhpke_open(case: dict, sealed: dict) -> dict:
    rkp, skp = case_keys(case)
    ctx = SUITE.create_recipient_context(
        uh(sealed["enc"]),
        rkp.private_key,
        uh(case["info"]),
        pks=skp.public_key if skp else None,
        psk=uh(case["psk"]),
        psk_id=uh(case["psk_id"]),
    )
    pts = [h(ctx.open(uh(ct), uh(m["aad"]))) for m, ct in zip(case["messages"], sealed["cts"], strict=True)]
    exports = [h(ctx.export(uh(e["context"]), e["len"])) for e in case["exports"]]
    return {"pts": pts, "exports": exports}


# ------------------------------------------- envelope and chunks per docs/sealing.md


def hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


VERSION = 1
KEM_ID, KDF_ID, AEAD_ID = 0x0020, 0x0001, 0x0002
ENTRY_LEN = 8 + 32 + 48


def key_id(public: bytes) -> bytes:
    return hashlib.sha256(b"cocoon-seal/v1/key-id" + public).digest()[:8]


def content_keys(ck: bytes) -> tuple[bytes, bytes, bytes]:
    prk = hkdf_extract(b"cocoon-seal/v1/envelope", ck)
    return (
        hkdf_expand(prk, b"body key", 32),
        hkdf_expand(prk, b"body nonce", 12),
        hkdf_expand(prk, b"key commitment", 32),
    )


def stream_keys(reply_key: bytes, stream_id: bytes) -> tuple[bytes, bytes]:
    prk = hkdf_extract(stream_id, reply_key)
    return hkdf_expand(prk, b"cocoon-seal/v1/chunk-key", 32), hkdf_expand(prk, b"cocoon-seal/v1/chunk-nonce", 12)


def chunk_nonce(base: bytes, seq: int) -> bytes:
    return bytes(a ^ b for a, b in zip(base, (0).to_bytes(4, "big") + seq.to_bytes(8, "big"), strict=True))


def seal_chunks(reply_key: bytes, stream_id: bytes, pts: list[bytes]) -> list[bytes]:
    key, base = stream_keys(reply_key, stream_id)
    chunks = []
    for seq, pt in enumerate(pts):
        flags = 1 if seq == len(pts) - 1 else 0
        header = bytes([1, flags]) + stream_id + seq.to_bytes(8, "big") + (len(pt) + 16).to_bytes(4, "big")
        chunks.append(header + AESGCM(key).encrypt(chunk_nonce(base, seq), pt, header))
    return chunks


def open_chunks(reply_key: bytes, stream_id: bytes, chunks: list[bytes]) -> list[bytes]:
    key, base = stream_keys(reply_key, stream_id)
    pts = []
    for expected_seq, chunk in enumerate(chunks):
        header, ct = chunk[:30], chunk[30:]
        assert header[0] == 1, "chunk version"
        assert header[2:18] == stream_id, "stream id"
        seq = int.from_bytes(header[18:26], "big")
        assert seq == expected_seq, "sequence number"
        assert int.from_bytes(header[26:30], "big") == len(ct), "chunk length"
        is_final = header[1] == 1
        assert is_final == (expected_seq == len(chunks) - 1), "final flag"
        assert header[1] & ~1 == 0, "reserved flags"
        pts.append(AESGCM(key).decrypt(chunk_nonce(base, seq), ct, header))
    return pts


def build_envelope(recipients: list[bytes], aad: bytes, pt: bytes, ck: bytes, ikm_es: list[bytes]):
    """Seals an envelope exactly as docs/sealing.md describes. Returns (bytes, reply keys)."""
    body_key, body_nonce, commitment = content_keys(ck)
    prefix = (
        bytes([VERSION])
        + KEM_ID.to_bytes(2, "big")
        + KDF_ID.to_bytes(2, "big")
        + AEAD_ID.to_bytes(2, "big")
        + bytes([len(recipients)])
        + commitment
    )
    entries, replies = b"", []
    for public, ikm_e in zip(recipients, ikm_es, strict=True):
        kid = key_id(public)
        enc, ctx = SUITE.create_sender_context(
            SUITE.kem.deserialize_public_key(public),
            b"cocoon-seal/v1/wrap" + kid,
            eks=SUITE.kem.derive_key_pair(ikm_e),
        )
        wrapped = ctx.seal(ck, prefix)
        replies.append(ctx.export(b"cocoon-seal/v1/reply" + commitment, 32))
        entries += kid + enc + wrapped
    header = prefix + entries + (len(pt) + 16).to_bytes(4, "big")
    body = AESGCM(body_key).encrypt(body_nonce, pt, header + aad)
    return header + body, replies


def open_envelope(envelope: bytes, skr, public: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """Parses and opens an envelope per docs/sealing.md. Returns (plaintext, reply key)."""
    assert envelope[0] == VERSION, "version"
    assert int.from_bytes(envelope[1:3], "big") == KEM_ID
    assert int.from_bytes(envelope[3:5], "big") == KDF_ID
    assert int.from_bytes(envelope[5:7], "big") == AEAD_ID
    n = envelope[7]
    assert 1 <= n <= 64
    commitment = envelope[8:40]
    prefix = envelope[:40]
    entries = [envelope[40 + i * ENTRY_LEN : 40 + (i + 1) * ENTRY_LEN] for i in range(n)]
    body_len_at = 40 + n * ENTRY_LEN
    body_len = int.from_bytes(envelope[body_len_at : body_len_at + 4], "big")
    header = envelope[: body_len_at + 4]
    body = envelope[body_len_at + 4 :]
    assert len(body) == body_len, "body length"
    kid = key_id(public)
    (entry,) = [e for e in entries if e[:8] == kid]
    ctx = SUITE.create_recipient_context(entry[8:40], skr, b"cocoon-seal/v1/wrap" + kid)
    ck = ctx.open(entry[40:], prefix)
    body_key, body_nonce, expected_commitment = content_keys(ck)
    assert expected_commitment == commitment, "key commitment"
    pt = AESGCM(body_key).decrypt(body_nonce, body, header + aad)
    return pt, ctx.export(b"cocoon-seal/v1/reply" + commitment, 32)


def envelope_case() -> dict:
    return {
        "recipients_ikm": [h(seeded(f"envelope/recipient{i}", 32)) for i in range(3)],
        "answering": 1,
        "aad": h(b"model=demo;max_tokens=64"),
        "pt": h(seeded("envelope/pt", 777)),
        "stream_id": h(seeded("envelope/stream-id", 16)),
        "answer_chunks": [h(seeded(f"envelope/answer{i}", n)) for i, n in enumerate([5, 0, 300, 64])],
        "ours": {"rng_seed": 20250101},
        "python": {
            "content_key": h(seeded("envelope/content-key", 32)),
            "ephemeral_ikm": [h(seeded(f"envelope/ikmE{i}", 32)) for i in range(3)],
        },
    }


def python_envelope(env: dict) -> dict:
    kps = [SUITE.kem.derive_key_pair(uh(i)) for i in env["recipients_ikm"]]
    publics = [kp.public_key.to_public_bytes() for kp in kps]
    py = env["python"]
    envelope, replies = build_envelope(
        publics, uh(env["aad"]), uh(env["pt"]), uh(py["content_key"]), [uh(i) for i in py["ephemeral_ikm"]]
    )
    chunks = seal_chunks(replies[env["answering"]], uh(env["stream_id"]), [uh(c) for c in env["answer_chunks"]])
    return {**py, "envelope": h(envelope), "chunks": [h(c) for c in chunks]}


def python_opens_ours(env: dict) -> None:
    kps = [SUITE.kem.derive_key_pair(uh(i)) for i in env["recipients_ikm"]]
    envelope = uh(env["ours"]["envelope"])
    replies = []
    for kp in kps:
        pt, reply = open_envelope(envelope, kp.private_key, kp.public_key.to_public_bytes(), uh(env["aad"]))
        assert pt == uh(env["pt"]), "envelope plaintext"
        replies.append(reply)
    answer = open_chunks(replies[env["answering"]], uh(env["stream_id"]), [uh(c) for c in env["ours"]["chunks"]])
    assert [h(a) for a in answer] == env["answer_chunks"], "answer chunks"


# ---------------------------------------------------------------- driver


def run_ours(doc: dict) -> dict:
    out = subprocess.run(
        ["cargo", "run", "--quiet", "-p", "cocoon-seal", "--example", "crosscheck_vectors"],
        input=json.dumps(doc).encode(),
        capture_output=True,
        check=False,
        env={**os.environ},
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr.decode())
        raise SystemExit("crosscheck_vectors example failed")
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the committed fixture")
    args = parser.parse_args()

    doc = {
        "description": "cocoon-seal vs pyhpke 0.6.5 and a Python envelope/chunk implementation of "
        "docs/sealing.md; generated by tests/crosscheck/crosscheck.py",
        "suite": {"kem_id": KEM_ID, "kdf_id": KDF_ID, "aead_id": AEAD_ID},
        "hpke": hpke_cases(),
        "envelope": envelope_case(),
    }
    # Direction 1, producer side: pyhpke seals, Python builds an envelope and answer stream.
    for case in doc["hpke"]:
        case["pyhpke_sealed"] = pyhpke_seal(case)
    doc["envelope"]["python"] = python_envelope(doc["envelope"])

    # Our side: seal with our ephemeral keys, and open everything Python produced.
    doc = run_ours(doc)
    for case in doc["hpke"]:
        opened = case.pop("ours_opened")
        assert "error" not in opened, f"{case['name']}: cocoon-seal failed to open pyhpke: {opened}"
        assert opened["pts"] == [m["pt"] for m in case["messages"]], case["name"]
        assert opened["exports"] == case["pyhpke_sealed"]["exports"], case["name"]
    opened = doc["envelope"].pop("ours_opened")
    assert "error" not in opened, f"cocoon-seal failed to open the Python envelope: {opened}"
    assert opened["pts"] == [doc["envelope"]["pt"]] * 3
    assert opened["answer"] == doc["envelope"]["answer_chunks"]
    print(f"cocoon-seal opened {len(doc['hpke'])} pyhpke cases and the Python envelope + stream")

    # Direction 2: pyhpke opens ours, the Python parser opens our envelope and stream.
    for case in doc["hpke"]:
        opened = pyhpke_open(case, case["ours_sealed"])
        assert opened["pts"] == [m["pt"] for m in case["messages"]], case["name"]
        assert opened["exports"] == case["ours_sealed"]["exports"], case["name"]
    python_opens_ours(doc["envelope"])
    print(f"pyhpke opened {len(doc['hpke'])} cocoon-seal cases; Python opened the cocoon-seal envelope + stream")

    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    if args.write:
        FIXTURE.write_text(text)
        print(f"wrote {FIXTURE.relative_to(CRATE.parent.parent)}")
    elif FIXTURE.exists() and FIXTURE.read_text() != text:
        raise SystemExit(f"{FIXTURE} differs from a fresh run; rerun with --write")
    else:
        print("fixture matches a fresh run")


if __name__ == "__main__":
    main()
