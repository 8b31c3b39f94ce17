//! The duration of WAV audio, read from its RIFF chunks (`fmt ` and `data`): the only container
//! whose length both ends can measure exactly without decoding, so the only one accepted.

use crate::Error;

/// What a WAV file says about its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WavAudio {
    /// `wFormatTag`: 1 PCM, 3 IEEE float, 6 A-law, 7 µ-law, 0xFFFE extensible.
    pub format: u16,
    /// Interleaved channels.
    pub channels: u16,
    /// Sample frames per second.
    pub sample_rate: u32,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Sample frames present: the `data` bytes actually there (a streamed file may announce
    /// more than it has) over the frame size.
    pub frames: u64,
}

/// Formats whose frames have a fixed size, so that bytes give the duration.
const FIXED_FRAME_FORMATS: &[u16] = &[1, 3, 6, 7];

/// `WAVE_FORMAT_EXTENSIBLE`: the real format is the first two bytes of its sub-format GUID.
const EXTENSIBLE: u16 = 0xFFFE;

/// Most chunks looked at before `data`; real files have a handful.
const MAX_CHUNKS: usize = 64;

impl WavAudio {
    /// Reads the header chunks of `bytes`, a whole WAV file.
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return Err(Error::UnmeasurableAudio(
                "not a RIFF/WAVE file (only WAV audio can be measured)",
            ));
        }
        let mut at = 12usize;
        let mut fmt: Option<(u16, u16, u32, u16, u16)> = None;
        for _ in 0..MAX_CHUNKS {
            let header = bytes
                .get(at..at.saturating_add(8))
                .filter(|h| h.len() == 8)
                .ok_or(Error::UnmeasurableAudio("no `data` chunk"))?;
            let id = &header[0..4];
            let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let body_start = at + 8;
            let available = bytes.len() - body_start;
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            match id {
                b"fmt " => {
                    // Decoders differ on which of two would count: none is measured.
                    if fmt.is_some() {
                        return Err(Error::UnmeasurableAudio("more than one `fmt ` chunk"));
                    }
                    let b = bytes
                        .get(body_start..body_start + 16)
                        .filter(|_| size >= 16)
                        .ok_or(Error::UnmeasurableAudio("`fmt ` chunk too short"))?;
                    let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
                    let sample_rate = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
                    let mut format = u16_at(0);
                    if format == EXTENSIBLE {
                        // The sub-format decides what the frames hold (ADPCM or MP3 may hide
                        // behind it): its first two bytes, 24 bytes into the chunk.
                        let sub = bytes
                            .get(body_start + 24..body_start + 26)
                            .filter(|_| size >= 40)
                            .ok_or(Error::UnmeasurableAudio(
                                "extensible `fmt ` chunk too short",
                            ))?;
                        format = u16::from_le_bytes([sub[0], sub[1]]);
                    }
                    fmt = Some((format, u16_at(2), sample_rate, u16_at(12), u16_at(14)));
                }
                b"data" => {
                    let (format, channels, sample_rate, block_align, bits) =
                        fmt.ok_or(Error::UnmeasurableAudio("`data` before `fmt `"))?;
                    if !FIXED_FRAME_FORMATS.contains(&format) {
                        return Err(Error::UnmeasurableAudio(
                            "compressed WAV encoding (only PCM, float, A-law and µ-law)",
                        ));
                    }
                    if channels == 0 || sample_rate == 0 || block_align == 0 || bits == 0 {
                        return Err(Error::UnmeasurableAudio(
                            "zero channels, sample rate, block size or sample size",
                        ));
                    }
                    // The block must be exactly one frame: a decoder that steps by the sample
                    // width would otherwise play more audio than the frames counted here (a
                    // header claiming 100-frame blocks would be billed a hundredth).
                    let frame_bytes = u32::from(channels) * u32::from(bits).div_ceil(8);
                    if u32::from(block_align) != frame_bytes {
                        return Err(Error::UnmeasurableAudio(
                            "block size differs from channels × sample width",
                        ));
                    }
                    let present = size.min(available);
                    // A zero size is how some writers say "to the end": decoders then play
                    // what follows, which this count would not see.
                    if size == 0 {
                        return Err(Error::UnmeasurableAudio("a `data` chunk of size 0"));
                    }
                    return Ok(Self {
                        format,
                        channels,
                        sample_rate,
                        bits_per_sample: bits,
                        frames: (present / usize::from(block_align)) as u64,
                    });
                }
                _ => {}
            }
            if size > available {
                return Err(Error::UnmeasurableAudio("a chunk runs past the end"));
            }
            // Chunks are padded to an even length.
            at = body_start + size + (size & 1);
        }
        Err(Error::UnmeasurableAudio("too many chunks before `data`"))
    }

    /// The duration in seconds (for display; billing uses [`super::billable_units`]).
    pub fn seconds(&self) -> f64 {
        self.frames as f64 / f64::from(self.sample_rate)
    }

    /// The billable units of this audio at `tokens_per_second`.
    pub fn units(&self, tokens_per_second: u32) -> u64 {
        super::billable_units(self.frames, self.sample_rate, tokens_per_second)
    }

    /// A PCM WAV file of `frames` frames of silence (test and example audio).
    pub fn silence(sample_rate: u32, channels: u16, frames: u32) -> Vec<u8> {
        let block = u32::from(channels) * 2;
        let data_len = frames.saturating_mul(block);
        let mut out = Vec::with_capacity(44 + data_len as usize);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36u32.saturating_add(data_len)).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&sample_rate.to_le_bytes());
        out.extend_from_slice(&(sample_rate.saturating_mul(block)).to_le_bytes());
        out.extend_from_slice(&(block as u16).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        out.resize(44 + data_len as usize, 0);
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_pcm_file_measures_its_frames() {
        let wav = WavAudio::silence(16_000, 1, 24_000);
        let a = WavAudio::parse(&wav).unwrap();
        assert_eq!(
            (a.format, a.channels, a.sample_rate, a.frames),
            (1, 1, 16_000, 24_000)
        );
        assert!((a.seconds() - 1.5).abs() < 1e-9);
        assert_eq!(a.units(10), 15);
        let stereo = WavAudio::parse(&WavAudio::silence(8_000, 2, 8_000)).unwrap();
        assert_eq!(stereo.frames, 8_000);
    }

    #[test]
    fn a_header_announcing_more_data_than_present_counts_only_what_is_there() {
        let mut wav = WavAudio::silence(16_000, 1, 16_000);
        // Announce ten times the data: a worker measuring this must not bill for it.
        wav[40..44].copy_from_slice(&320_000u32.to_le_bytes());
        assert_eq!(WavAudio::parse(&wav).unwrap().frames, 16_000);
        // Streamed files announce 0xFFFFFFFF.
        wav[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(WavAudio::parse(&wav).unwrap().frames, 16_000);
    }

    #[test]
    fn a_block_size_other_than_one_frame_is_refused_not_billed_short() {
        // The attack: 10 s of 16-bit mono audio whose header claims 100-frame blocks, to be
        // billed for 0.1 s while a decoder stepping by sample width plays all 10 s.
        let mut wav = WavAudio::silence(16_000, 1, 160_000);
        wav[32..34].copy_from_slice(&200u16.to_le_bytes());
        let err = WavAudio::parse(&wav).unwrap_err().to_string();
        assert!(err.contains("block size"), "{err}");
        // Too small a block is refused the same way.
        wav[32..34].copy_from_slice(&1u16.to_le_bytes());
        assert!(WavAudio::parse(&wav).is_err());
    }

    #[test]
    fn headers_decoders_read_differently_are_refused() {
        let wav = WavAudio::silence(16_000, 1, 16_000);
        // `data` of size 0 ("to the end" for some decoders).
        let mut zero = wav.clone();
        zero[40..44].copy_from_slice(&0u32.to_le_bytes());
        assert!(
            WavAudio::parse(&zero)
                .unwrap_err()
                .to_string()
                .contains("size 0")
        );
        // A second `fmt ` claiming another rate.
        let mut twice = wav[..36].to_vec();
        twice.extend_from_slice(&wav[12..36]);
        twice.extend_from_slice(&wav[36..]);
        assert!(
            WavAudio::parse(&twice)
                .unwrap_err()
                .to_string()
                .contains("more than one")
        );
        // Extensible with an ADPCM sub-format (2), then with PCM (1): refused, then measured.
        let extensible = |sub: u16| {
            let mut out = wav[..12].to_vec();
            out.extend_from_slice(b"fmt ");
            out.extend_from_slice(&40u32.to_le_bytes());
            out.extend_from_slice(&0xFFFEu16.to_le_bytes());
            out.extend_from_slice(&wav[22..36]);
            out.extend_from_slice(&22u16.to_le_bytes());
            out.extend_from_slice(&16u16.to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&sub.to_le_bytes());
            out.extend_from_slice(&[0u8; 14]);
            out.extend_from_slice(&wav[36..]);
            out
        };
        assert!(WavAudio::parse(&extensible(2)).is_err());
        assert_eq!(WavAudio::parse(&extensible(1)).unwrap().frames, 16_000);
    }

    #[test]
    fn chunks_before_data_are_skipped_with_their_padding() {
        let wav = WavAudio::silence(16_000, 1, 100);
        let mut with_list = wav[..36].to_vec();
        with_list.extend_from_slice(b"LIST");
        with_list.extend_from_slice(&3u32.to_le_bytes());
        with_list.extend_from_slice(b"abc\0");
        with_list.extend_from_slice(&wav[36..]);
        assert_eq!(WavAudio::parse(&with_list).unwrap().frames, 100);
    }

    #[test]
    fn what_cannot_be_measured_is_refused_by_name() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (b"ID3\x04 mp3 bytes".to_vec(), "not a RIFF/WAVE"),
            (WavAudio::silence(16_000, 1, 10)[..40].to_vec(), "no `data`"),
            (
                {
                    let mut w = WavAudio::silence(16_000, 1, 10);
                    w[20..22].copy_from_slice(&0x55u16.to_le_bytes());
                    w
                },
                "compressed",
            ),
            (
                {
                    let mut w = WavAudio::silence(16_000, 1, 10);
                    w[24..28].copy_from_slice(&0u32.to_le_bytes());
                    w
                },
                "zero",
            ),
            (
                {
                    let mut w = WavAudio::silence(16_000, 1, 10);
                    w[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
                    w
                },
                "past the end",
            ),
        ];
        for (bytes, why) in cases {
            let e = WavAudio::parse(&bytes).unwrap_err();
            assert!(e.to_string().contains(why), "{e} should say {why}");
            assert_eq!(e.form_field(), Some("file"));
        }
    }
}
