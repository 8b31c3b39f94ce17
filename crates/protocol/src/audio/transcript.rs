//! A transcript written in the `response_format` a transcription asked for: `json`, `text`,
//! `verbose_json`, `srt` or `vtt`, in OpenAI's shapes. One writer for every engine that
//! produces its own transcript (the built-in speech model, the test upstream), so the shapes
//! cannot drift apart.

use serde_json::json;

use super::ResponseFormat;

/// A stretch of the transcript with its time in the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedText {
    /// Start, seconds from the beginning of the audio.
    pub start: f64,
    /// End, seconds from the beginning of the audio.
    pub end: f64,
    /// The words.
    pub text: String,
}

/// What a transcript says.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptText {
    /// The whole text.
    pub text: String,
    /// The language, as the engine names it (`"en"`, `"english"`).
    pub language: String,
    /// The audio's length in seconds.
    pub duration: f64,
    /// The timed stretches, in order (at least one for a non-empty transcript).
    pub segments: Vec<TimedText>,
}

impl TranscriptText {
    /// The transcript in `format`: the body bytes (their content type is
    /// [`ResponseFormat::content_type`]).
    pub fn render(&self, format: ResponseFormat) -> Vec<u8> {
        match format {
            ResponseFormat::Json => json!({
                "text": self.text,
                "usage": {"type": "duration", "seconds": self.duration.ceil() as u64},
            })
            .to_string()
            .into_bytes(),
            ResponseFormat::Text => format!("{}\n", self.text).into_bytes(),
            ResponseFormat::VerboseJson => {
                let segments: Vec<_> = self
                    .segments
                    .iter()
                    .enumerate()
                    .map(
                        |(id, s)| json!({"id": id, "start": s.start, "end": s.end, "text": s.text}),
                    )
                    .collect();
                json!({
                    "task": "transcribe",
                    "language": self.language,
                    "duration": self.duration,
                    "text": self.text,
                    "segments": segments,
                })
                .to_string()
                .into_bytes()
            }
            ResponseFormat::Srt => {
                let mut out = String::new();
                for (i, s) in self.segments.iter().enumerate() {
                    out.push_str(&format!(
                        "{}\n{} --> {}\n{}\n\n",
                        i + 1,
                        timestamp(s.start, ','),
                        timestamp(s.end, ','),
                        s.text.trim()
                    ));
                }
                out.into_bytes()
            }
            ResponseFormat::Vtt => {
                let mut out = String::from("WEBVTT\n\n");
                for s in &self.segments {
                    out.push_str(&format!(
                        "{} --> {}\n{}\n\n",
                        timestamp(s.start, '.'),
                        timestamp(s.end, '.'),
                        s.text.trim()
                    ));
                }
                out.into_bytes()
            }
        }
    }
}

/// `HH:MM:SS,mmm` (SRT) or `HH:MM:SS.mmm` (WebVTT).
fn timestamp(seconds: f64, separator: char) -> String {
    let millis = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        millis / 3_600_000,
        millis / 60_000 % 60,
        millis / 1000 % 60,
        millis % 1000
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn two() -> TranscriptText {
        TranscriptText {
            text: "Hello there. General Kenobi.".into(),
            language: "en".into(),
            duration: 3661.5,
            segments: vec![
                TimedText {
                    start: 0.0,
                    end: 1.25,
                    text: " Hello there.".into(),
                },
                TimedText {
                    start: 3600.0,
                    end: 3661.5,
                    text: " General Kenobi.".into(),
                },
            ],
        }
    }

    #[test]
    fn every_format_in_openais_shape() {
        let t = two();
        let text = |f| String::from_utf8(t.render(f)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text(ResponseFormat::Json)).unwrap();
        assert_eq!(json["text"], "Hello there. General Kenobi.");
        assert_eq!(json["usage"]["seconds"], 3662);
        assert_eq!(text(ResponseFormat::Text), "Hello there. General Kenobi.\n");
        let verbose: serde_json::Value =
            serde_json::from_str(&text(ResponseFormat::VerboseJson)).unwrap();
        assert_eq!(verbose["segments"][1]["start"], 3600.0);
        assert_eq!(verbose["language"], "en");
        assert_eq!(
            text(ResponseFormat::Srt),
            "1\n00:00:00,000 --> 00:00:01,250\nHello there.\n\n\
             2\n01:00:00,000 --> 01:01:01,500\nGeneral Kenobi.\n\n"
        );
        assert_eq!(
            text(ResponseFormat::Vtt),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.250\nHello there.\n\n\
             01:00:00.000 --> 01:01:01.500\nGeneral Kenobi.\n\n"
        );
    }
}
