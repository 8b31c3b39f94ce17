#!/usr/bin/env python3
"""Known-answer vectors for the reference's "v1" request encryption, from an implementation
independent of ours: Python's `cryptography` package for Ed25519, X25519 and AES-CBC, the standard
library for HMAC and SHA-2, and the Ed25519 -> X25519 map done by hand in modular arithmetic.

Writes crates/refv1/tests/fixtures/refv1_vectors.json; `cargo test -p cocoon-refv1` reproduces
every value exactly and opens every ciphertext. Inputs are fixed (seeds, nonce, prefix bytes), so
rerunning gives the same file.

    ~/.cache/cocoon/venv/bin/python3 scripts/interop/refv1_vectors.py
"""

import base64
import hashlib
import hmac
import json
import pathlib
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

P = 2**255 - 19

EXEMPT = {
    "model", "max_completion_tokens", "max_tokens", "max_coefficient", "timeout", "debug",
    "enable_debug", "request_guid", "is_encrypted", "sender_public_key", "receiver_public_key",
    "encryption_nonce",
}


def ed25519_public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


def x25519_scalar(seed: bytes) -> bytes:
    h = bytearray(hashlib.sha512(seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    return bytes(h)


def ed_to_x_public(pub: bytes) -> bytes:
    y = int.from_bytes(pub, "little") & ((1 << 255) - 1)
    u = (1 + y) * pow((1 - y) % P, P - 2, P) % P
    return u.to_bytes(32, "little")


def shared_point(seed: bytes, peer_pub: bytes) -> bytes:
    priv = X25519PrivateKey.from_private_bytes(x25519_scalar(seed))
    return priv.exchange(X25519PublicKey.from_public_bytes(ed_to_x_public(peer_pub)))


def secret(point: bytes, nonce_text: str, direction: bytes) -> bytes:
    return hashlib.sha256(point + nonce_text.encode() + direction).digest()


def prefix_len(n: int) -> int:
    return ((16 + 15 + n) & ~15) - n


def encrypt_string(sec: bytes, plaintext: bytes, random31: bytes) -> bytes:
    k = hmac.new(sec, b"tde2e_encrypt_data", hashlib.sha512).digest()
    enc_key, mac_key = k[:32], k[32:]
    plen = prefix_len(len(plaintext))
    data = bytes([plen]) + random31[1:plen] + plaintext
    msg_key = hmac.new(mac_key, data + (0).to_bytes(4, "little"), hashlib.sha256).digest()[:16]
    h = hmac.new(enc_key, msg_key, hashlib.sha512).digest()
    enc = Cipher(algorithms.AES(h[:32]), modes.CBC(h[32:48])).encryptor()
    return msg_key + enc.update(data) + enc.finalize()


class Tape:
    """The deterministic "random" source of the body vectors: byte i of the tape is
    (7 * i + 3) mod 256, handed out 31 bytes per string in walk order."""

    def __init__(self):
        self.pos = 0

    def take(self, n: int) -> bytes:
        out = bytes((7 * (self.pos + i) + 3) % 256 for i in range(n))
        self.pos += n
        return out


def transform(value, sec: bytes, tape: Tape):
    # Keys are walked in sorted order, as the Rust side (serde_json's BTreeMap) walks them.
    if isinstance(value, str):
        return "ENC_" + encrypt_string(sec, value.encode(), tape.take(31)).hex()
    if isinstance(value, list):
        return [transform(v, sec, tape) for v in value]
    if isinstance(value, dict):
        return {k: (v if k in EXEMPT else transform(v, sec, tape))
                for k, v in sorted(value.items())}
    return value


def main() -> int:
    client_seed = bytes(range(0, 32))
    worker_seed = bytes(range(32, 64))
    nonce = bytes(range(100, 132))
    nonce_text = base64.b64encode(nonce).decode()
    client_pub = ed25519_public(client_seed)
    worker_pub = ed25519_public(worker_seed)
    point = shared_point(client_seed, worker_pub)
    assert point == shared_point(worker_seed, client_pub)
    sec_c = secret(point, nonce_text, b"c")
    sec_w = secret(point, nonce_text, b"w")

    strings = []
    for i, text in enumerate(["", "a", "fifteen bytes!!", "sixteen bytes!!!", "seventeen bytes!!",
                              "Привет, мир 🌍", "x" * 100]):
        random31 = hashlib.sha256(b"prefix" + bytes([i])).digest()[:31]
        for direction, sec in (("c", sec_c), ("w", sec_w)):
            strings.append({
                "direction": direction,
                "plaintext": text,
                "random_hex": random31.hex(),
                "ciphertext_hex": encrypt_string(sec, text.encode(), random31).hex(),
            })

    request = {
        "max_tokens": 64,
        "messages": [
            {"content": "You are terse.", "role": "system"},
            {"content": "Say hi", "role": "user"},
        ],
        "model": "Qwen/Qwen3-0.6B",
        "request_guid": "guid-1",
        "stream": True,
        "temperature": 0.5,
    }
    encrypted = transform(request, sec_c, Tape())
    encrypted.update({
        "is_encrypted": "v1",
        "sender_public_key": client_pub.hex(),
        "receiver_public_key": worker_pub.hex(),
        "encryption_nonce": nonce_text,
    })
    answer = {
        "choices": [{"delta": {"content": "Hi"}, "finish_reason": None, "index": 0}],
        "id": "chatcmpl-1",
        "model": "Qwen/Qwen3-0.6B",
        "object": "chat.completion.chunk",
    }
    encrypted_answer = transform(answer, sec_w, Tape())

    out = {
        "_comment": "generated by scripts/interop/refv1_vectors.py (Python cryptography); "
                    "do not edit by hand",
        "client_seed_hex": client_seed.hex(),
        "worker_seed_hex": worker_seed.hex(),
        "client_public_hex": client_pub.hex(),
        "worker_public_hex": worker_pub.hex(),
        "client_x25519_public_hex": ed_to_x_public(client_pub).hex(),
        "worker_x25519_public_hex": ed_to_x_public(worker_pub).hex(),
        "shared_point_hex": point.hex(),
        "nonce_hex": nonce.hex(),
        "nonce_text": nonce_text,
        "secret_c_hex": sec_c.hex(),
        "secret_w_hex": sec_w.hex(),
        "strings": strings,
        "request_plain": request,
        "request_encrypted": encrypted,
        "answer_plain": answer,
        "answer_encrypted": encrypted_answer,
    }
    path = pathlib.Path(__file__).resolve().parents[2] / "crates/refv1/tests/fixtures/refv1_vectors.json"
    path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
