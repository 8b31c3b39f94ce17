#!/usr/bin/env python3
"""Reference tokenizations for the Llama 3 (`llama-bpe`) and Llama 2 (`llama`, SentencePiece)
vocabularies, made without our Rust code, for `crates/infer/tests/tokenizer.rs`.

    # llama.cpp's vocab GGUFs and test vectors into ~/.cache/cocoon/vocab
    bash -c 'source scripts/lib.sh && ensure_venv && fetch_llama_vocabs'
    ~/.cache/cocoon/venv/bin/pip install 'gguf==0.19.*' 'tokenizers==0.23.*' \\
        'sentencepiece==0.2.*' protobuf regex jinja2
    ~/.cache/cocoon/venv/bin/python scripts/tokenizer-fixtures.py

The vocabularies are llama.cpp's test vocabularies `ggml-vocab-llama-bpe.gguf` (Llama 3's
tokenizer) and `ggml-vocab-llama-spm.gguf` (Llama 2's), read with the `gguf` package. The
references:

* llama-bpe: (1) the Hugging Face `tokenizers` package configured as Llama 3's
  `tokenizer.json` is: byte-level BPE with `ignore_merges`, Split(Llama 3 regex, isolated),
  ByteLevel(no regex); (2) a pure-Python byte-level BPE following llama.cpp's procedure
  (its regex spelling, a pre-token found whole in the vocabulary is not merged, merges by
  rank). The two must agree on every string.
* llama-spm: the `sentencepiece` package (Google's C++ implementation) running a model proto
  built from the GGUF's pieces, scores and types: BPE, byte fallback, identity normalizer,
  a dummy prefix space, extra whitespace kept (Llama 2's `tokenizer.model` settings).

How they were validated: before writing anything, each reference must reproduce exactly the
token ids of llama.cpp's own test vectors for that vocabulary (`<vocab>.gguf.inp` /
`<vocab>.gguf.out`, made by llama.cpp from the original Hugging Face tokenizers), which are
fetched next to the vocabularies; the script stops if one differs.

Test strings: the ~300 of `crates/infer/tests/data/tokenizer/make_tokenizer_fixtures.py`
(ASCII, whitespace runs, digits, punctuation, contractions, CJK, emoji, accented Latin,
generated mixtures) plus code and digit-run cases below. Special-token text is tokenized as
plain text (the vocabularies' control tokens are not parsed), and no BOS is added.

Writes `crates/infer/tests/data/tokenizer/llama-bpe-cases.json` and `llama-spm-cases.json`.
"""

import argparse
import hashlib
import importlib.util
import json
from pathlib import Path

import gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as spm_pb2
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "crates/infer/tests/data/tokenizer"
SEPARATOR = "\n__ggml_vocab_test__\n"

# Llama 3's split pattern, as its tokenizer.json has it (for the Hugging Face reference) and
# as llama.cpp writes it (case-insensitivity spelled out; for the pure-Python reference).
HF_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
LLAMA_CPP_LLAMA3_PATTERN = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+"
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

EXTRA_STRINGS = [
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "fn main() {\n\tprintln!(\"{}\", 1 << 20);\n}",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "<div class=\"x\">&amp; &lt;tag&gt;</div>",
    "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "    indented four\n        indented eight",
    "x = y**2 // 3 % 4 != 5 and not z",
    "#include <stdio.h>\n#define MAX(a,b) ((a)>(b)?(a):(b))",
    "https://example.com/path?q=1&r=two#frag",
    "user@example.org, (555) 010-9999",
    "1",
    "12",
    "123",
    "1234",
    "12345678901234567890",
    "3.14 2.718 1e10 -0.001",
    "v1.2.3-rc.4+build.567",
    "2024年6月11日",
    "We're you'RE they'Ve I'd she'll it'S DON'T",
    "o'clock rock'n'roll y'all",
    "Ünïcödé Ťëxť wïth àccénts: ÀÉÎÕÜ àéîõü çñ",
    "Tiếng Việt có dấu",
    "Zażółć gęślą jaźń",
    "日本語のテキストと English mixed",
    "中文，标点。符号！",
    "emoji 👨‍👩‍👧‍👦 family 🏳️‍🌈 flag",
    "🤗🤗🤗",
    "a\u0301 combining accent",
    "tab\tseparated\tvalues\t",
    "   \n   \n",
    "\r\n\r\n",
    "!!!???...,,,;;;",
    "--- *** ___ ===",
    "(((nested)))",
    "\u00a0\u2003\u3000 odd spaces",
    "Hello",
    " Hello",
    "  Hello",
    "Hello world",
    "HELLO WORLD",
    "hello\nworld",
]


def load_make_tokenizer_fixtures():
    path = DATA / "make_tokenizer_fixtures.py"
    spec = importlib.util.spec_from_file_location("make_tokenizer_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strings(base) -> list[str]:
    return list(dict.fromkeys(base.test_strings() + EXTRA_STRINGS))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def llama_cpp_vectors(vocab: Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's test vectors for a vocabulary: (text, ids) pairs."""
    texts = Path(f"{vocab}.inp").read_text(encoding="utf-8").split(SEPARATOR)
    # The file ends with a separator: nothing follows the last one.
    assert texts[-1] == "", "unexpected end of the .inp file"
    lines = Path(f"{vocab}.out").read_text(encoding="utf-8").split("\n")
    pairs = [(text, [int(t) for t in lines[i].split()]) for i, text in enumerate(texts[:-1])]
    assert len(pairs) == len(lines) - 1, (len(pairs), len(lines))
    return pairs


def check_vectors(name: str, encode, vocab: Path) -> int:
    vectors = llama_cpp_vectors(vocab)
    for text, expected in vectors:
        got = encode(text)
        if got != expected:
            raise SystemExit(f"{name}: reference disagrees with llama.cpp on {text!r}: {got} vs {expected}")
    return len(vectors)


# ---------------------------------------------------------------------------
# llama-bpe


def llama_bpe_hf(v: dict) -> Tokenizer:
    vocab = {tok: i for i, tok in enumerate(v["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in v["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(HF_LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    return tok


def llama_bpe_python(base, v: dict):
    base.PRE_PATTERNS["llama-bpe"] = [LLAMA_CPP_LLAMA3_PATTERN]
    base.NFC["llama-bpe"] = False

    class IgnoreMerges(base.PyBpe):
        def bpe(self, word: str) -> list[int]:
            if word in self.ids:
                return [self.ids[word]]
            return super().bpe(word)

    return IgnoreMerges(v)


def make_llama_bpe(base, vocab: Path) -> None:
    v = base.read_vocab(vocab)
    assert v["model"] == "gpt2" and v["pre"] == "llama-bpe", (v["model"], v["pre"])
    hf, py = llama_bpe_hf(v), llama_bpe_python(base, v)
    hf_encode = lambda text: hf.encode(text, add_special_tokens=False).ids
    checked = check_vectors("llama-bpe (tokenizers)", hf_encode, vocab)
    check_vectors("llama-bpe (python)", lambda text: py.encode(text, False), vocab)
    cases = []
    for text in strings(base):
        ids = hf_encode(text)
        assert ids == py.encode(text, False), f"references disagree on {text!r}"
        cases.append({"text": text, "ids": ids})
    write("llama-bpe", vocab, ["tokenizers (Hugging Face, Python)", "pure-Python llama.cpp-style BPE"], checked, cases)


# ---------------------------------------------------------------------------
# llama-spm


def llama_spm_processor(vocab: Path) -> spm.SentencePieceProcessor:
    r = gguf.GGUFReader(str(vocab))
    f = lambda k: r.fields[k].contents()
    assert f("tokenizer.ggml.model") == "llama"
    proto = spm_pb2.ModelProto()
    proto.trainer_spec.model_type = spm_pb2.TrainerSpec.BPE
    proto.trainer_spec.vocab_size = len(f("tokenizer.ggml.tokens"))
    proto.trainer_spec.byte_fallback = True
    proto.trainer_spec.unk_id = 0
    proto.trainer_spec.bos_id = f("tokenizer.ggml.bos_token_id")
    proto.trainer_spec.eos_id = f("tokenizer.ggml.eos_token_id")
    proto.trainer_spec.pad_id = -1
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = True
    proto.normalizer_spec.remove_extra_whitespaces = False
    proto.normalizer_spec.escape_whitespaces = True
    for text, score, kind in zip(f("tokenizer.ggml.tokens"), f("tokenizer.ggml.scores"), f("tokenizer.ggml.token_type")):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = text, score, kind
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(proto.SerializeToString())
    return sp


def make_llama_spm(base, vocab: Path) -> None:
    sp = llama_spm_processor(vocab)
    encode = lambda text: sp.encode(text) if text else []
    checked = check_vectors("llama-spm (sentencepiece)", encode, vocab)
    cases = [{"text": text, "ids": encode(text)} for text in strings(base)]
    write("llama-spm", vocab, ["sentencepiece (Google, Python bindings)"], checked, cases)


def write(name: str, vocab: Path, references: list[str], checked: int, cases: list[dict]) -> None:
    assert len(cases) >= 200, len(cases)
    out = {
        "vocab": vocab.name,
        "vocab_sha256": sha256(vocab),
        "references": references,
        "validated_on_llama_cpp_vectors": checked,
        "cases": cases,
    }
    (DATA / f"{name}-cases.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    print(f"{name}: {len(cases)} strings; references agree with each other and with llama.cpp's {checked} vectors")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vocab-dir", type=Path, default=Path.home() / ".cache/cocoon/vocab")
    args = parser.parse_args()
    base = load_make_tokenizer_fixtures()
    make_llama_bpe(base, args.vocab_dir / "ggml-vocab-llama-bpe.gguf")
    make_llama_spm(base, args.vocab_dir / "ggml-vocab-llama-spm.gguf")


if __name__ == "__main__":
    main()
