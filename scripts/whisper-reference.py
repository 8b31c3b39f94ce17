#!/usr/bin/env python3
"""Reference transcription of a WAV file by Whisper, computed independently of our engine.

The model is the CTranslate2 Whisper directory that `scripts/lib.sh` (`fetch_whisper_tiny_en`)
caches; CTranslate2 runs it (float32, CPU) and faster-whisper's numpy feature extractor makes the
log-mel input. Prints a JSON fixture that `crates/infer/tests/whisper.rs` compares with:

- `mel`: statistics and the first values of the 80x3000 log-mel input;
- `encoder`: statistics and the first values of the encoder output (1500x384);
- `greedy_ids`: the tokens of greedy decoding without timestamps (the model's default token
  suppression), and `greedy_text`, faster-whisper's tokenizer's decoding of them;
- `first_step`: the logits of the first decoded token with no suppression (top 20
  and statistics of the whole vector);
- `timestamped_ids`: greedy decoding with timestamps (prompt `<|startoftranscript|>` alone);
- `segments`: faster-whisper's `transcribe` with timestamps (greedy, temperature 0). Its input
  differs slightly: it pads the log-mel frames of the audio with zeros where Whisper (and the
  rest of this fixture) computes the log-mel of the audio followed by 30 s of silence.

Usage: scripts/whisper-reference MODEL_DIR AUDIO.wav > fixture.json
(run through scripts/whisper-reference, which installs faster-whisper into its own venv)
"""

import hashlib
import json
import sys
import wave

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.feature_extractor import FeatureExtractor
from faster_whisper.tokenizer import Tokenizer

SAMPLES_30S = 480_000


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def stats(a):
    a = np.asarray(a, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max())}


def main():
    model_dir, wav_path = sys.argv[1], sys.argv[2]
    with wave.open(wav_path) as w:
        assert w.getsampwidth() == 2 and w.getnchannels() == 1 and w.getframerate() == 16000
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768.0

    # Zero-padded to 30 s, 3001 STFT frames of which the extractor drops the last.
    mel = FeatureExtractor(feature_size=80)(pcm, padding=SAMPLES_30S - len(pcm))[:, :3000]
    model = ctranslate2.models.Whisper(model_dir, device="cpu", compute_type="float32")
    features = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
    encoded = np.array(model.encode(features, to_cpu=True))[0]

    prompt = [50257, 50362]  # <|startoftranscript|> <|notimestamps|> (English-only model)
    greedy = model.generate(features, [prompt], beam_size=1)[0].sequences_ids[0]
    # With timestamps: CTranslate2's timestamp rules (first timestamp within 1 s).
    timestamped = model.generate(features, [[50257]], beam_size=1)[0].sequences_ids[0]
    raw = model.generate(
        features, [prompt], beam_size=1, max_length=3, suppress_blank=False, suppress_tokens=[],
        return_logits_vocab=True,
    )[0]
    first = np.array(raw.logits[0][0], dtype=np.float64)
    top = np.argsort(-first)[:20]

    fw = WhisperModel(model_dir, device="cpu", compute_type="float32")
    tokenizer = Tokenizer(fw.hf_tokenizer, multilingual=False)
    segments, info = fw.transcribe(
        wav_path, beam_size=1, temperature=0.0, language="en", vad_filter=False,
        condition_on_previous_text=True,
    )
    segments = [{"start": s.start, "end": s.end, "text": s.text, "tokens": s.tokens} for s in segments]

    json.dump({
        "model_sha256": sha256(f"{model_dir}/model.bin"),
        "audio_sha256": sha256(wav_path),
        "implementation": f"ctranslate2 {ctranslate2.__version__}, faster-whisper feature extractor",
        "samples": len(pcm),
        "mel": {"shape": list(mel.shape), **stats(mel), "frame0": mel[:8, 0].tolist(),
                "frame100": mel[:8, 100].tolist()},
        "encoder": {"shape": list(encoded.shape), **stats(encoded), "row0": encoded[0, :8].tolist(),
                    "row100": encoded[100, :8].tolist()},
        "prompt": prompt,
        "greedy_ids": greedy,
        "greedy_text": tokenizer.decode(greedy),
        "timestamped_ids": timestamped,
        "first_step": {"top_ids": top.tolist(), "top_logits": first[top].tolist(), **stats(first)},
        "duration_s": info.duration,
        "segments": segments,
    }, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
