//! Speech to text on the CPU: OpenAI's Whisper run in-process, so a worker can answer
//! `/v1/audio/transcriptions` without a separate inference server.
//!
//! - [`wav`] decodes WAV bytes to 16 kHz mono samples ([`Pcm16k`]), sans-IO.
//! - [`ct2`] reads the model file (CTranslate2's `model.bin`, the form the weights we fetch
//!   come in); [`vocab`] its byte-level vocabulary.
//! - [`mel`] is the log-mel front end, `network` the encoder and decoder.
//! - [`WhisperModel::transcribe`] ties them: 30 s windows, greedy decoding with Whisper's
//!   special tokens, and segments from timestamp tokens.

pub mod ct2;
mod error;
mod math;
pub mod mel;
mod network;
pub mod vocab;
pub mod wav;

use std::path::Path;

pub use error::{AudioError, WhisperError};
pub use network::Dims;
pub use wav::Pcm16k;

use ct2::Ct2Model;
use network::Network;
use vocab::Vocabulary;

/// Seconds per timestamp token step.
const TIME_PRECISION: f64 = 0.02;
/// Mel frames per second.
const FRAMES_PER_SECOND: usize = 100;
/// The latest first timestamp allowed, in steps (1 s), as Whisper decodes.
const MAX_INITIAL_TIMESTAMP: u32 = 50;

/// How to transcribe.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// The spoken language (`"en"`); `None` detects it (multilingual models) or is English
    /// (English-only models).
    pub language: Option<String>,
    /// Most tokens decoded per 30 s window; `None` is half the decoder's context (224).
    pub max_tokens: Option<usize>,
    /// Predict timestamps and split the text into timed segments; without them each 30 s
    /// window is one segment.
    pub timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        Self {
            language: None,
            max_tokens: None,
            timestamps: true,
        }
    }
}

/// A timed piece of the transcript.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start, seconds from the beginning of the audio.
    pub start: f64,
    /// End, seconds from the beginning of the audio.
    pub end: f64,
    /// The text (with its leading space, as the model writes it).
    pub text: String,
    /// The decoded tokens, timestamps included.
    pub tokens: Vec<u32>,
}

/// A transcription.
#[derive(Debug, Clone, PartialEq)]
pub struct Transcript {
    /// The whole text, segments joined, trimmed.
    pub text: String,
    /// The segments in order.
    pub segments: Vec<Segment>,
    /// The language transcribed (`"en"`).
    pub language: String,
    /// The audio's length in seconds.
    pub duration_s: f64,
}

/// The ids of Whisper's special tokens in one model's vocabulary.
#[derive(Debug, Clone, Copy)]
struct Specials {
    eot: u32,
    sot: u32,
    translate: u32,
    transcribe: u32,
    no_timestamps: u32,
    timestamp_begin: u32,
}

/// A Whisper model ready to transcribe.
pub struct WhisperModel {
    network: Network,
    vocab: Vocabulary,
    specials: Specials,
    multilingual: bool,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
}

impl std::fmt::Debug for WhisperModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperModel")
            .field("dims", &self.network.dims())
            .field("multilingual", &self.multilingual)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, WhisperError> {
    std::fs::read(path).map_err(|source| WhisperError::Io {
        path: path.to_owned(),
        source,
    })
}

fn ids(config: &serde_json::Value, key: &str) -> Vec<u32> {
    config[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_u64().and_then(|v| u32::try_from(v).ok()))
                .collect()
        })
        .unwrap_or_default()
}

impl WhisperModel {
    /// Loads a CTranslate2 Whisper model directory: `model.bin`, `vocabulary.txt` and, if
    /// present, `config.json` (the tokens to suppress while decoding).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, WhisperError> {
        let dir = dir.as_ref();
        let bytes = read(&dir.join("model.bin"))?;
        let vocab_text = read(&dir.join("vocabulary.txt"))?;
        let vocab_text = String::from_utf8(vocab_text)
            .map_err(|_| WhisperError::Vocabulary("vocabulary.txt is not UTF-8".into()))?;
        let config = match std::fs::read(dir.join("config.json")) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| WhisperError::Format(format!("config.json: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Value::Null,
            Err(source) => {
                return Err(WhisperError::Io {
                    path: dir.join("config.json"),
                    source,
                });
            }
        };
        let network = Network::load(&Ct2Model::parse(&bytes)?)?;
        Self::new(network, Vocabulary::parse(&vocab_text)?, &config)
    }

    fn new(
        network: Network,
        vocab: Vocabulary,
        config: &serde_json::Value,
    ) -> Result<Self, WhisperError> {
        let dims = network.dims();
        if vocab.len() != dims.vocab {
            return Err(WhisperError::Vocabulary(format!(
                "{} tokens for a model of {}",
                vocab.len(),
                dims.vocab
            )));
        }
        let no_timestamps = vocab.id("<|notimestamps|>")?;
        let specials = Specials {
            eot: vocab.id("<|endoftext|>")?,
            sot: vocab.id("<|startoftranscript|>")?,
            translate: vocab.id("<|translate|>")?,
            transcribe: vocab.id("<|transcribe|>")?,
            no_timestamps,
            timestamp_begin: no_timestamps + 1,
        };
        if vocab.token(specials.timestamp_begin) != Some("<|0.00|>") {
            return Err(WhisperError::Vocabulary(
                "<|0.00|> does not follow <|notimestamps|>".into(),
            ));
        }
        let mut suppress = ids(config, "suppress_ids");
        let mut suppress_begin = ids(config, "suppress_ids_begin");
        if suppress_begin.is_empty() {
            // Whisper's defaults: no blank (" ") and no end of text as the first token.
            suppress_begin = vec![vocab.id("Ġ")?, specials.eot];
        }
        // Special tokens other than the end of text and timestamps are never written.
        suppress.extend(specials.sot..specials.timestamp_begin);
        suppress.retain(|&id| (id as usize) < dims.vocab);
        suppress_begin.retain(|&id| (id as usize) < dims.vocab);
        Ok(Self {
            // English-only models have 51864 tokens (their vocabulary still spells the
            // language tokens), multilingual ones one more (51865, or 51866 from large-v3).
            multilingual: dims.vocab > 51_864,
            network,
            vocab,
            specials,
            suppress,
            suppress_begin,
        })
    }

    /// The model's dimensions.
    pub fn dims(&self) -> Dims {
        self.network.dims()
    }

    /// Whether the model knows languages other than English.
    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    /// The model's vocabulary.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocab
    }

    /// The log-mel spectrogram of the audio followed by 30 s of silence, time-major
    /// (`frames x n_mels`).
    pub fn log_mel(&self, pcm: &Pcm16k) -> Vec<f32> {
        mel::log_mel(pcm.samples(), self.network.dims().n_mels)
    }

    /// Encodes the 30 s window of `mel` (from [`Self::log_mel`]) starting at `frame`:
    /// `audio_ctx x d_model`.
    pub fn encode(&self, mel: &[f32], frame: usize) -> Vec<f32> {
        let n_mels = self.network.dims().n_mels;
        let start = (frame * n_mels).min(mel.len());
        let end = (start + mel::WINDOW_FRAMES * n_mels).min(mel.len());
        let mut window = mel[start..end].to_vec();
        // Past the padding (never with windows `transcribe` chooses): the silence floor.
        let floor = window.iter().copied().fold(f32::INFINITY, f32::min);
        window.resize(
            mel::WINDOW_FRAMES * n_mels,
            if floor.is_finite() { floor } else { -1.5 },
        );
        self.network.encode(&window)
    }

    /// The decoder's logits after `prompt` (unprocessed: no token suppressed), given an
    /// encoded window.
    pub fn logits_after(&self, encoded: &[f32], prompt: &[u32]) -> Result<Vec<f32>, WhisperError> {
        let mut state = self.network.start(encoded);
        let mut logits = None;
        for &t in prompt {
            logits = self.network.step(&mut state, t);
        }
        logits.ok_or_else(|| WhisperError::Format("prompt empty or too long".into()))
    }

    /// The language token for `options`, detecting it on `encoded` when asked to.
    fn language(
        &self,
        options: &TranscribeOptions,
        encoded: &[f32],
    ) -> Result<Option<(u32, String)>, WhisperError> {
        if !self.multilingual {
            return match options.language.as_deref() {
                None | Some("en") => Ok(None),
                Some(other) => Err(WhisperError::Language(other.to_owned())),
            };
        }
        if let Some(code) = &options.language {
            let id = self
                .vocab
                .id(&format!("<|{code}|>"))
                .ok()
                .filter(|&id| id > self.specials.sot && id < self.specials.translate)
                .ok_or_else(|| WhisperError::Language(code.clone()))?;
            return Ok(Some((id, code.clone())));
        }
        let logits = self.logits_after(encoded, &[self.specials.sot])?;
        let range = self.specials.sot + 1..self.specials.translate;
        let id = range
            .max_by(|&a, &b| logits[a as usize].total_cmp(&logits[b as usize]))
            .ok_or_else(|| WhisperError::Unsupported("no language tokens".into()))?;
        let code = self
            .vocab
            .token(id)
            .and_then(|t| t.strip_prefix("<|")?.strip_suffix("|>"))
            .unwrap_or("en")
            .to_owned();
        Ok(Some((id, code)))
    }

    /// The tokens that start decoding.
    fn prompt(&self, language: Option<u32>, timestamps: bool) -> Vec<u32> {
        let mut p = vec![self.specials.sot];
        if let Some(lang) = language {
            p.extend([lang, self.specials.transcribe]);
        }
        if !timestamps {
            p.push(self.specials.no_timestamps);
        }
        p
    }

    /// Transcribes the audio: 30 s windows in turn, each decoded greedily.
    pub fn transcribe(
        &self,
        pcm: &Pcm16k,
        options: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        let dims = self.network.dims();
        let mel = self.log_mel(pcm);
        let content = pcm.samples().len().div_ceil(mel::HOP);
        let max_tokens = options
            .max_tokens
            .unwrap_or(dims.text_ctx / 2)
            .clamp(1, dims.text_ctx / 2);
        let mut segments = Vec::new();
        let mut language = ("en".to_owned(), None);
        let mut seek = 0;
        while seek < content {
            let encoded = self.encode(&mel, seek);
            if seek == 0
                && let Some((id, code)) = self.language(options, &encoded)?
            {
                language = (code, Some(id));
            }
            let prompt = self.prompt(language.1, options.timestamps);
            let tokens = self.decode(&encoded, &prompt, max_tokens, options.timestamps);
            let offset = seek as f64 / FRAMES_PER_SECOND as f64;
            let window_end =
                (content.min(seek + mel::WINDOW_FRAMES)) as f64 / FRAMES_PER_SECOND as f64;
            let advance = if options.timestamps {
                self.timed_segments(&tokens, offset, window_end, &mut segments)
            } else {
                segments.push(Segment {
                    start: offset,
                    end: window_end,
                    text: self.vocab.decode(&tokens, self.specials.eot),
                    tokens,
                });
                mel::WINDOW_FRAMES
            };
            // At least a quarter window, so that no audio costs more than four windows per
            // 30 s however its timestamps fall.
            seek += advance.max(mel::WINDOW_FRAMES / 4);
        }
        segments.retain(|s| !s.text.trim().is_empty());
        let text = segments
            .iter()
            .map(|s| s.text.as_str())
            .collect::<String>()
            .trim()
            .to_owned();
        Ok(Transcript {
            text,
            segments,
            language: language.0,
            duration_s: pcm.duration_s(),
        })
    }

    /// Decodes a WAV file's bytes ([`Pcm16k::from_wav`]) and transcribes them.
    pub fn transcribe_wav(
        &self,
        wav: &[u8],
        options: &TranscribeOptions,
    ) -> Result<Transcript, WhisperError> {
        self.transcribe(&Pcm16k::from_wav(wav)?, options)
    }

    /// Splits a window's tokens at timestamp pairs into segments; returns the frames to
    /// advance (to the last closed segment's end, or the whole window).
    fn timed_segments(
        &self,
        tokens: &[u32],
        offset: f64,
        window_end: f64,
        out: &mut Vec<Segment>,
    ) -> usize {
        let tb = self.specials.timestamp_begin;
        let is_ts = |t: u32| t >= tb;
        let time = |t: u32| offset + f64::from(t - tb) * TIME_PRECISION;
        let single_ending = tokens.len() >= 2
            && is_ts(tokens[tokens.len() - 1])
            && !is_ts(tokens[tokens.len() - 2]);
        // Positions where a timestamp follows a timestamp: a segment ends before them.
        let cuts: Vec<usize> = (1..tokens.len())
            .filter(|&i| is_ts(tokens[i]) && is_ts(tokens[i - 1]))
            .collect();
        let segment = |piece: &[u32], end_default: f64| {
            let start = piece
                .first()
                .filter(|&&t| is_ts(t))
                .map_or(offset, |&t| time(t));
            let end = piece
                .iter()
                .rev()
                .find(|&&t| is_ts(t))
                .filter(|_| piece.len() > 1)
                .map_or(end_default, |&t| time(t));
            Segment {
                start,
                end: end.max(start),
                text: self.vocab.decode(piece, self.specials.eot),
                tokens: piece.to_vec(),
            }
        };
        if cuts.is_empty() {
            out.push(segment(tokens, window_end));
            return mel::WINDOW_FRAMES;
        }
        let mut last = 0;
        for &cut in &cuts {
            out.push(segment(&tokens[last..cut], window_end));
            last = cut;
        }
        if single_ending {
            out.push(segment(&tokens[last..], window_end));
            mel::WINDOW_FRAMES
        } else {
            // Resume at the last closed segment's end timestamp.
            let end = tokens[last - 1];
            ((end - tb) as usize * 2).min(mel::WINDOW_FRAMES)
        }
    }

    /// Greedy decoding of one window; returns the tokens after the prompt, without the end
    /// of text.
    fn decode(
        &self,
        encoded: &[f32],
        prompt: &[u32],
        max_tokens: usize,
        timestamps: bool,
    ) -> Vec<u32> {
        let mut state = self.network.start(encoded);
        let mut logits = None;
        for &t in prompt {
            logits = self.network.step(&mut state, t);
        }
        let mut out: Vec<u32> = Vec::new();
        while let Some(mut l) = logits {
            if out.len() >= max_tokens {
                break;
            }
            self.suppress(&mut l, &out, timestamps);
            let next = (0..l.len())
                .max_by(|&a, &b| l[a].total_cmp(&l[b]))
                .map_or(self.specials.eot, |i| i as u32);
            if next == self.specials.eot {
                break;
            }
            out.push(next);
            logits = self.network.step(&mut state, next);
        }
        out
    }

    /// Whisper's logit rules: suppressed tokens, no blank start, and (with timestamps) the
    /// timestamp grammar: timestamps come in pairs, never go back, the first comes first and
    /// within 1 s, and a timestamp wins when the timestamps are likelier than any text token.
    fn suppress(&self, l: &mut [f32], out: &[u32], timestamps: bool) {
        let tb = self.specials.timestamp_begin as usize;
        let eot = self.specials.eot as usize;
        let ban = |l: &mut [f32], r: std::ops::Range<usize>| {
            let n = l.len();
            for v in &mut l[r.start.min(n)..r.end.min(n)] {
                *v = f32::NEG_INFINITY;
            }
        };
        for &id in &self.suppress {
            l[id as usize] = f32::NEG_INFINITY;
        }
        if out.is_empty() {
            for &id in &self.suppress_begin {
                l[id as usize] = f32::NEG_INFINITY;
            }
        }
        if !timestamps {
            ban(l, tb..l.len());
            return;
        }
        let is_ts = |t: &u32| *t as usize >= tb;
        let last_ts = out.last().is_some_and(is_ts);
        let penultimate_ts = out.len() < 2 || is_ts(&out[out.len() - 2]);
        if last_ts {
            if penultimate_ts {
                ban(l, tb..l.len());
            } else {
                ban(l, 0..eot);
            }
        }
        if let Some(&last) = out.iter().rev().find(|t| is_ts(t)) {
            let floor = if last_ts && !penultimate_ts {
                last
            } else {
                last + 1
            };
            ban(l, tb..floor as usize);
        }
        if out.is_empty() {
            ban(l, 0..tb);
            ban(l, tb + MAX_INITIAL_TIMESTAMP as usize + 1..l.len());
        }
        // Log-softmax: if the timestamps together outweigh the best text token, take one.
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + l.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        let ts_mass = {
            let m = l[tb..].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            m + l[tb..].iter().map(|v| (v - m).exp()).sum::<f32>().ln() - lse
        };
        let best_text = l[..tb].iter().copied().fold(f32::NEG_INFINITY, f32::max) - lse;
        if ts_mass > best_text {
            ban(l, 0..tb);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// One loaded model serves concurrent requests from behind an `Arc`.
    #[test]
    fn the_model_is_shareable_between_threads() {
        fn shareable<T: Send + Sync>(_: std::marker::PhantomData<T>) -> bool {
            true
        }
        assert!(shareable::<WhisperModel>(std::marker::PhantomData));
    }

    #[test]
    fn options_default_to_timestamps_and_auto_language() {
        let o = TranscribeOptions::default();
        assert!(o.timestamps && o.language.is_none() && o.max_tokens.is_none());
    }
}
