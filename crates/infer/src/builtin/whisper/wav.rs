//! WAV decoding for the speech model: RIFF/WAVE bytes (PCM 8/16/24/32-bit integer or 32/64-bit
//! float, any channel count, any sample rate) to the 16 kHz mono samples Whisper listens to.
//!
//! Sans-IO: it takes the file's bytes and returns samples, or a typed [`AudioError`] for
//! anything malformed; it never panics on outside input. Channels are averaged; other rates
//! are resampled by linear interpolation after a moving-average low-pass when downsampling.

use super::error::AudioError;

/// The sample rate Whisper's front end expects.
pub const SAMPLE_RATE: u32 = 16_000;

/// Longest audio accepted: one hour at 16 kHz. Longer inputs are refused before any
/// allocation proportional to their length.
pub const MAX_SECONDS: u64 = 3600;

/// Mono audio at 16 kHz, samples in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Pcm16k {
    samples: Vec<f32>,
}

impl Pcm16k {
    /// Wraps samples already at 16 kHz mono.
    pub fn from_samples(samples: Vec<f32>) -> Self {
        Self { samples }
    }

    /// The samples.
    pub fn samples(&self) -> &[f32] {
        &self.samples
    }

    /// The length in seconds.
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }

    /// Decodes a WAV file's bytes (see the module documentation for what is accepted).
    pub fn from_wav(bytes: &[u8]) -> Result<Self, AudioError> {
        let wav = WavData::parse(bytes)?;
        let mono = wav.mono()?;
        Ok(Self {
            samples: resample(&mono, wav.format.sample_rate, SAMPLE_RATE),
        })
    }
}

/// How the samples of a `fmt ` chunk are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// Integer PCM (8-bit unsigned, 16/24/32-bit signed little-endian).
    Int,
    /// IEEE float, 32 or 64 bits.
    Float,
}

/// The `fmt ` chunk of a WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavFormat {
    /// Integer or float samples.
    pub sample_format: SampleFormat,
    /// Interleaved channels per frame.
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
    /// Bits of one sample of one channel.
    pub bits_per_sample: u16,
}

/// A parsed WAV file: its format and the bytes of its `data` chunk.
#[derive(Debug, Clone, Copy)]
pub struct WavData<'a> {
    /// The `fmt ` chunk.
    pub format: WavFormat,
    /// The sample bytes, a whole number of frames.
    pub data: &'a [u8],
}

const FORMAT_PCM: u16 = 1;
const FORMAT_FLOAT: u16 = 3;
const FORMAT_EXTENSIBLE: u16 = 0xFFFE;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl<'a> WavData<'a> {
    /// Parses the RIFF container: finds and checks `fmt `, finds `data`, skips other chunks.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, AudioError> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(AudioError::NotWav);
        }
        let mut format = None;
        let mut at = 12usize;
        while at < bytes.len() {
            let header = bytes
                .get(at..at + 8)
                .ok_or(AudioError::Truncated("chunk header"))?;
            let id = &header[0..4];
            let size = u32_at(header, 4).ok_or(AudioError::Truncated("chunk header"))? as usize;
            let body_start = at + 8;
            let body_end = body_start
                .checked_add(size)
                .ok_or(AudioError::Truncated("chunk"))?;
            match id {
                b"fmt " => {
                    let body = bytes
                        .get(body_start..body_end)
                        .ok_or(AudioError::Truncated("fmt chunk"))?;
                    format = Some(parse_fmt(body)?);
                }
                b"data" => {
                    let format = format.ok_or(AudioError::MissingChunk("fmt "))?;
                    // A streamed file may carry a data size past the end: take what is there.
                    let end = body_end.min(bytes.len());
                    let data = &bytes[body_start.min(end)..end];
                    let frame =
                        usize::from(format.channels) * usize::from(format.bits_per_sample / 8);
                    let whole = data.len() - data.len() % frame;
                    let frames = (whole / frame) as u64;
                    if frames > MAX_SECONDS * u64::from(format.sample_rate) {
                        return Err(AudioError::TooLong {
                            seconds: frames / u64::from(format.sample_rate),
                            max: MAX_SECONDS,
                        });
                    }
                    return Ok(Self {
                        format,
                        data: &data[..whole],
                    });
                }
                _ => {}
            }
            // Chunks are padded to an even length.
            at = body_end.saturating_add(size & 1);
        }
        Err(AudioError::MissingChunk(if format.is_some() {
            "data"
        } else {
            "fmt "
        }))
    }

    /// The frames as mono samples in [-1, 1] (channels averaged), at the file's own rate.
    pub fn mono(&self) -> Result<Vec<f32>, AudioError> {
        let f = self.format;
        let width = usize::from(f.bits_per_sample / 8);
        let channels = usize::from(f.channels);
        let decode: fn(&[u8]) -> f32 = match (f.sample_format, f.bits_per_sample) {
            (SampleFormat::Int, 8) => |b| (f32::from(b[0]) - 128.0) / 128.0,
            (SampleFormat::Int, 16) => |b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0,
            (SampleFormat::Int, 24) => {
                |b| (i32::from_le_bytes([0, b[0], b[1], b[2]]) >> 8) as f32 / 8_388_608.0
            }
            (SampleFormat::Int, 32) => {
                |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / 2_147_483_648.0
            }
            (SampleFormat::Float, 32) => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (SampleFormat::Float, 64) => {
                |b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
            }
            (_, bits) => return Err(AudioError::UnsupportedEncoding(format!("{bits}-bit"))),
        };
        let scale = 1.0 / channels as f32;
        Ok(self
            .data
            .chunks_exact(width * channels)
            .map(|frame| {
                let sum: f32 = frame.chunks_exact(width).map(decode).sum();
                let v = sum * scale;
                // NaN or infinite float samples become silence; the rest is clamped.
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect())
    }
}

fn parse_fmt(body: &[u8]) -> Result<WavFormat, AudioError> {
    let short = AudioError::Truncated("fmt chunk");
    let tag = u16_at(body, 0).ok_or(short.clone())?;
    let channels = u16_at(body, 2).ok_or(short.clone())?;
    let sample_rate = u32_at(body, 4).ok_or(short.clone())?;
    let block_align = u16_at(body, 12).ok_or(short.clone())?;
    let bits_per_sample = u16_at(body, 14).ok_or(short.clone())?;
    let tag = if tag == FORMAT_EXTENSIBLE {
        // WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the sub-format GUID.
        u16_at(body, 24).ok_or(short)?
    } else {
        tag
    };
    let sample_format = match tag {
        FORMAT_PCM => SampleFormat::Int,
        FORMAT_FLOAT => SampleFormat::Float,
        other => {
            return Err(AudioError::UnsupportedEncoding(format!(
                "format tag {other:#06x}"
            )));
        }
    };
    if channels == 0 {
        return Err(AudioError::BadFormat("zero channels"));
    }
    // Below 4 kHz a small file would expand many times over when resampled to 16 kHz.
    if !(4_000..=768_000).contains(&sample_rate) {
        return Err(AudioError::BadFormat("sample rate out of range"));
    }
    let supported = match sample_format {
        SampleFormat::Int => matches!(bits_per_sample, 8 | 16 | 24 | 32),
        SampleFormat::Float => matches!(bits_per_sample, 32 | 64),
    };
    if !supported {
        return Err(AudioError::UnsupportedEncoding(format!(
            "{bits_per_sample}-bit {sample_format:?}"
        )));
    }
    if u32::from(block_align) != u32::from(channels) * u32::from(bits_per_sample / 8) {
        return Err(AudioError::BadFormat(
            "block alignment differs from channels x sample width",
        ));
    }
    Ok(WavFormat {
        sample_format,
        channels,
        sample_rate,
        bits_per_sample,
    })
}

/// Resamples mono audio from `from` Hz to `to` Hz: a moving average over the source samples
/// one output period spans (a crude anti-aliasing filter) when downsampling, then linear
/// interpolation.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() {
        return samples.to_vec();
    }
    let ratio = f64::from(from) / f64::from(to);
    let filtered;
    let source = if ratio > 1.0 {
        let width = ratio.round().max(1.0) as usize;
        let mut prefix = Vec::with_capacity(samples.len() + 1);
        prefix.push(0.0f64);
        for &s in samples {
            let last = prefix.last().copied().unwrap_or(0.0);
            prefix.push(last + f64::from(s));
        }
        filtered = (0..samples.len())
            .map(|i| {
                let lo = i.saturating_sub(width / 2);
                let hi = (lo + width).min(samples.len());
                ((prefix[hi] - prefix[lo]) / (hi - lo) as f64) as f32
            })
            .collect::<Vec<f32>>();
        &filtered[..]
    } else {
        samples
    };
    let out_len = ((samples.len() as f64) / ratio).floor() as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * ratio;
            let j = pos.floor() as usize;
            let frac = (pos - j as f64) as f32;
            let a = source[j.min(source.len() - 1)];
            let b = source[(j + 1).min(source.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A WAV file of the given format and raw data bytes, with an extra chunk before `data`.
    fn wav(tag: u16, channels: u16, rate: u32, bits: u16, data: &[u8]) -> Vec<u8> {
        let mut fmt = Vec::new();
        fmt.extend_from_slice(&tag.to_le_bytes());
        fmt.extend_from_slice(&channels.to_le_bytes());
        fmt.extend_from_slice(&rate.to_le_bytes());
        let align = channels * (bits / 8);
        fmt.extend_from_slice(&(rate * u32::from(align)).to_le_bytes());
        fmt.extend_from_slice(&align.to_le_bytes());
        fmt.extend_from_slice(&bits.to_le_bytes());
        let mut body = b"WAVE".to_vec();
        for (id, chunk) in [(b"fmt ", &fmt[..]), (b"LIST", b"INFOabc"), (b"data", data)] {
            body.extend_from_slice(id);
            body.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
            body.extend_from_slice(chunk);
            if chunk.len() % 2 == 1 {
                body.push(0);
            }
        }
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    #[test]
    fn pcm16_mono_at_16k_passes_through() {
        let data: Vec<u8> = [0i16, 16384, -32768, 32767]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let pcm = Pcm16k::from_wav(&wav(1, 1, 16_000, 16, &data)).unwrap();
        assert_eq!(pcm.samples(), &[0.0, 0.5, -1.0, 32767.0 / 32768.0]);
    }

    #[test]
    fn float32_stereo_is_averaged() {
        let data: Vec<u8> = [0.5f32, -0.5, 1.0, 0.0]
            .iter()
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let pcm = Pcm16k::from_wav(&wav(3, 2, 16_000, 32, &data)).unwrap();
        assert_eq!(pcm.samples(), &[0.0, 0.5]);
    }

    #[test]
    fn other_rates_are_resampled_to_16k() {
        // One second of a 440 Hz sine at 44.1 kHz becomes one second at 16 kHz, same tone.
        let data: Vec<u8> = (0..44_100)
            .map(|i| {
                let t = f64::from(i) / 44_100.0;
                ((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 16_000.0) as i16
            })
            .flat_map(|s| s.to_le_bytes())
            .collect();
        let pcm = Pcm16k::from_wav(&wav(1, 1, 44_100, 16, &data)).unwrap();
        assert!((pcm.samples().len() as i64 - 16_000).abs() <= 1);
        for (i, &s) in pcm.samples().iter().enumerate().skip(10).take(1000) {
            let t = i as f64 / 16_000.0;
            let want = (2.0 * std::f64::consts::PI * 440.0 * t).sin() * 16_000.0 / 32768.0;
            assert!(
                (f64::from(s) - want).abs() < 0.02,
                "sample {i}: {s} vs {want}"
            );
        }
    }

    #[test]
    fn bad_headers_are_typed_errors() {
        let good = wav(1, 1, 16_000, 16, &[0, 0, 1, 0]);
        assert_eq!(Pcm16k::from_wav(b"RIFX"), Err(AudioError::NotWav));
        assert_eq!(Pcm16k::from_wav(b""), Err(AudioError::NotWav));
        let mut not_wave = good.clone();
        not_wave[8..12].copy_from_slice(b"AVI ");
        assert_eq!(Pcm16k::from_wav(&not_wave), Err(AudioError::NotWav));
        assert!(matches!(
            Pcm16k::from_wav(&wav(2, 1, 16_000, 16, &[])),
            Err(AudioError::UnsupportedEncoding(_))
        ));
        assert!(matches!(
            Pcm16k::from_wav(&wav(1, 1, 16_000, 12, &[])),
            Err(AudioError::UnsupportedEncoding(_))
        ));
        assert_eq!(
            Pcm16k::from_wav(&wav(1, 0, 16_000, 16, &[])),
            Err(AudioError::BadFormat("zero channels"))
        );
        for rate in [0, 1, 3_999, 768_001] {
            assert_eq!(
                Pcm16k::from_wav(&wav(1, 1, rate, 16, &[])),
                Err(AudioError::BadFormat("sample rate out of range"))
            );
        }
        // Only the RIFF header and part of a chunk header.
        assert_eq!(
            Pcm16k::from_wav(&good[..16]),
            Err(AudioError::Truncated("chunk header"))
        );
        // A `fmt ` chunk cut short.
        assert_eq!(
            Pcm16k::from_wav(&good[..24]),
            Err(AudioError::Truncated("fmt chunk"))
        );
        // No data chunk at all.
        let mut no_data = good[..12 + 8 + 16].to_vec();
        let riff_size = (no_data.len() - 8) as u32;
        no_data[4..8].copy_from_slice(&riff_size.to_le_bytes());
        assert_eq!(
            Pcm16k::from_wav(&no_data),
            Err(AudioError::MissingChunk("data"))
        );
    }

    #[test]
    fn truncated_data_keeps_whole_frames() {
        let mut file = wav(1, 2, 16_000, 16, &[0, 64, 0, 64, 0, 32]);
        file.truncate(file.len() - 1);
        let pcm = Pcm16k::from_wav(&file).unwrap();
        assert_eq!(pcm.samples(), &[0.5]);
    }

    #[test]
    fn every_prefix_of_a_file_is_an_answer_not_a_panic() {
        let file = wav(3, 2, 22_050, 32, &[0; 64]);
        // Decodable exactly once the `data` chunk's header is whole (the samples may be cut).
        let data_start = file.len() - 64;
        for n in 0..file.len() {
            assert_eq!(
                Pcm16k::from_wav(&file[..n]).is_ok(),
                n >= data_start,
                "prefix {n}"
            );
        }
    }

    proptest::proptest! {
        /// Any bytes, and any single-byte corruption of a valid file: samples in [-1, 1] or a
        /// typed error.
        #[test]
        fn arbitrary_and_corrupted_files_decode_or_are_refused(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
            at in 0usize..80,
            value in proptest::prelude::any::<u8>(),
        ) {
            let mut file = wav(1, 2, 8_000, 16, &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
            let at = at % file.len();
            file[at] = value;
            for input in [&bytes[..], &file[..]] {
                if let Ok(pcm) = Pcm16k::from_wav(input) {
                    proptest::prop_assert!(pcm.samples().iter().all(|s| s.is_finite() && s.abs() <= 1.0));
                }
            }
        }
    }
}
