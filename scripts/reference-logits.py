#!/usr/bin/env python3
"""Reference logits of a llama-family GGUF model, computed independently of our engine.

Weights are read and dequantized by the `gguf` Python package (llama.cpp's own reader); the
forward pass is plain numpy in float64, written from the architecture's definition. Prints a
JSON fixture with the logits after the last prompt token: the top 20 (ids and values) and
statistics of the whole vector, which `crates/infer/tests/reference_logits.rs` compares with.
With `--greedy N` it also decodes greedily (argmax, the whole sequence recomputed each step)
for up to N tokens, stopping after any `--stop` id, and records the ids in `greedy_ids`.

Usage: scripts/reference-logits [--prompt TEXT] [--greedy N [--stop ID]...] MODEL.gguf TOKEN_ID...
(run through scripts/reference-logits, which installs gguf and numpy into the tools venv)
"""

import argparse
import hashlib
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(reader, key):
    f = reader.fields[key]
    value = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(value).decode()
    return value[0].item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompt", help="the text the ids encode (recorded in the fixture)")
    parser.add_argument("--greedy", type=int, default=0, help="greedy steps to record")
    parser.add_argument("--stop", type=int, action="append", default=[], help="end-of-generation id")
    parser.add_argument("model")
    parser.add_argument("tokens", type=int, nargs="+")
    args = parser.parse_args()
    path, tokens = args.model, args.tokens
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture")
    if arch not in ("llama", "qwen2"):
        sys.exit(f"unsupported architecture {arch}")
    key = lambda k: field(reader, f"{arch}.{k}")
    layers = key("block_count")
    hidden = key("embedding_length")
    heads = key("attention.head_count")
    kv_heads = key("attention.head_count_kv")
    eps = key("attention.layer_norm_rms_epsilon")
    try:
        theta = key("rope.freq_base")
    except KeyError:
        theta = 10000.0
    head_dim = hidden // heads

    tensors = {t.name: t for t in reader.tensors}

    cache = {}

    def weight(name):
        if name in cache:
            return cache[name]
        t = tensors[name]
        # numpy shape is the reverse of GGUF dims: [out, in] for matrices.
        cache[name] = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(d) for d in reversed(t.shape)]
        )
        return cache[name]

    def rms_norm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    half = head_dim // 2
    freqs = theta ** (-np.arange(0, half, dtype=np.float64) * 2.0 / head_dim)

    def forward(tokens):
        """Logits after the last of `tokens`, the whole sequence computed from scratch."""
        pos = np.arange(len(tokens), dtype=np.float64)
        angles = np.outer(pos, freqs)  # [t, half]
        cos, sin = np.cos(angles), np.sin(angles)

        def rope(x):  # x: [t, heads, head_dim]
            if arch == "llama":
                # llama.cpp's converter permutes Q/K rows: pairs are adjacent elements.
                a, b = x[..., 0::2], x[..., 1::2]
                c, s = cos[:, None, :], sin[:, None, :]
                out = np.empty_like(x)
                out[..., 0::2] = a * c - b * s
                out[..., 1::2] = a * s + b * c
                return out
            a, b = x[..., :half], x[..., half:]
            c, s = cos[:, None, :], sin[:, None, :]
            return np.concatenate([a * c - b * s, a * s + b * c], axis=-1)

        embd = weight("token_embd.weight")
        x = embd[tokens]
        t = len(tokens)
        mask = np.triu(np.full((t, t), -np.inf), k=1)
        group = heads // kv_heads
        for i in range(layers):
            w = lambda n: weight(f"blk.{i}.{n}.weight")
            h = rms_norm(x, w("attn_norm"))
            q, k, v = h @ w("attn_q").T, h @ w("attn_k").T, h @ w("attn_v").T
            if f"blk.{i}.attn_q.bias" in tensors:
                q = q + weight(f"blk.{i}.attn_q.bias")
                k = k + weight(f"blk.{i}.attn_k.bias")
                v = v + weight(f"blk.{i}.attn_v.bias")
            q = rope(q.reshape(t, heads, head_dim))
            k = rope(k.reshape(t, kv_heads, head_dim))
            v = v.reshape(t, kv_heads, head_dim)
            out = np.empty((t, heads, head_dim))
            for hd in range(heads):
                g = hd // group
                scores = q[:, hd, :] @ k[:, g, :].T / np.sqrt(head_dim) + mask
                scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
                scores /= scores.sum(axis=-1, keepdims=True)
                out[:, hd, :] = scores @ v[:, g, :]
            x = x + out.reshape(t, hidden) @ w("attn_output").T
            h = rms_norm(x, w("ffn_norm"))
            gate, up = h @ w("ffn_gate").T, h @ w("ffn_up").T
            x = x + (gate / (1.0 + np.exp(-gate)) * up) @ w("ffn_down").T
        head = weight("output.weight") if "output.weight" in tensors else embd
        return rms_norm(x[-1], weight("output_norm.weight")) @ head.T

    logits = forward(tokens)
    top = np.argsort(-logits, kind="stable")[:20]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    fixture = {
        "model_sha256": digest.hexdigest(),
        "prompt": args.prompt,
        "generator": "scripts/reference-logits (gguf + numpy, float64)",
        "tokens": tokens,
        "vocab": int(logits.shape[0]),
        "top_ids": [int(i) for i in top],
        "top_logits": [float(logits[i]) for i in top],
        "mean": float(logits.mean()),
        "std": float(logits.std()),
        "min": float(logits.min()),
        "max": float(logits.max()),
        "sample_ids": [int(i) for i in range(0, logits.shape[0], logits.shape[0] // 64)],
    }
    fixture["sample_logits"] = [float(logits[i]) for i in fixture["sample_ids"]]
    if args.greedy:
        generated, best = [], int(top[0])
        while True:
            generated.append(best)
            print(f"greedy step {len(generated)}: {best}", file=sys.stderr)
            if best in args.stop or len(generated) == args.greedy:
                break
            best = int(np.argmax(forward(tokens + generated)))
        fixture["greedy_ids"] = generated
    json.dump(fixture, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
