//! Speech-to-text requests (`POST /v1/audio/transcriptions`): the one parser of their
//! `multipart/form-data` body ([`TranscriptionForm::parse`]), the measure of their audio
//! ([`WavAudio`]) and the rule that turns a duration into billable units ([`billable_units`]).
//!
//! It lives here, sans IO, because both ends of a request need the same answer: the client
//! checks a form and declares the audio's units before sending it, and the worker checks the
//! same bytes again (it trusts no client) and refuses audio longer than the client declared.
//! The proxy cannot read a sealed form; it holds the worker's charge to the client's
//! declaration instead (see [`AUDIO_UNITS_FLAG`](crate::messages::AUDIO_UNITS_FLAG)).

mod form;
mod transcript;
mod wav;

pub use form::{
    AudioFile, FormLimits, MAX_PART_HEADER_BYTES, MAX_PARTS, MAX_TEXT_FIELD_BYTES, ResponseFormat,
    TranscriptionForm,
};
pub use transcript::{TimedText, TranscriptText};
pub use wav::WavAudio;

/// The transcription endpoint's path.
pub const TRANSCRIPTIONS_PATH: &str = "/v1/audio/transcriptions";

/// Largest audio file a transcription may carry by default, and at most: OpenAI takes 25 MiB,
/// but a request travels in one frame of at most [`crate::frame::MAX_FRAME_LEN`] (16 MiB),
/// which must also hold the form's other fields and, for a sealed request, the envelope.
pub const MAX_AUDIO_BYTES: usize = 15 << 20;

/// Default billable units per second of audio (counted as prompt tokens): a minute of audio
/// costs what 600 prompt tokens cost.
pub const DEFAULT_AUDIO_TOKENS_PER_SECOND: u32 = 10;

/// The units a client is charged for `frames` sample frames at `sample_rate` Hz, at
/// `tokens_per_second`: `ceil(frames × tokens_per_second / sample_rate)`, computed exactly in
/// integers (both ends must get the same number from the same audio), and at least 1 so that
/// no request is free. A zero sample rate (which [`WavAudio::parse`] never returns) counts 1.
pub fn billable_units(frames: u64, sample_rate: u32, tokens_per_second: u32) -> u64 {
    if sample_rate == 0 {
        return 1;
    }
    let numerator = u128::from(frames) * u128::from(tokens_per_second);
    let units = numerator.div_ceil(u128::from(sample_rate));
    u64::try_from(units).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_round_up_and_are_never_zero() {
        // One second at 16 kHz, 10 units per second.
        assert_eq!(billable_units(16_000, 16_000, 10), 10);
        // One frame more is a started unit.
        assert_eq!(billable_units(16_001, 16_000, 10), 11);
        assert_eq!(billable_units(0, 16_000, 10), 1);
        assert_eq!(billable_units(5, 0, 10), 1);
        // 90 minutes at 48 kHz do not overflow.
        assert_eq!(billable_units(48_000 * 5_400, 48_000, 10), 54_000);
        assert_eq!(billable_units(u64::MAX, 1, u32::MAX), u64::MAX);
    }
}
