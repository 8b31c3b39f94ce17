//! The fake upstream's `POST /v1/audio/transcriptions`: a transcript made from the audio's WAV
//! header, so that every hop of a transcription can be checked against numbers the test knows
//! (the duration, the sample rate, the channels), in each `response_format`. Simulated: no
//! speech is recognised.

use cocoon_protocol::audio::{FormLimits, TimedText, TranscriptText, TranscriptionForm, WavAudio};

/// Most audio bytes the fake accepts.
pub(crate) const MAX_AUDIO_BYTES: usize = 16 << 20;

/// A transcription answer: content type and body.
pub(crate) struct Transcript {
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
}

/// Why a form is refused, and which field it names.
pub(crate) struct Refusal {
    pub(crate) message: String,
    pub(crate) param: Option<&'static str>,
}

/// The fake transcript of `body`, a form sent with `content_type`.
pub(crate) fn transcribe(content_type: &str, body: &bytes::Bytes) -> Result<Transcript, Refusal> {
    let limits = FormLimits {
        max_file_bytes: MAX_AUDIO_BYTES,
    };
    let form = TranscriptionForm::parse(content_type, body, limits).map_err(|e| Refusal {
        param: e
            .form_field()
            .and_then(|f| FIELDS.iter().copied().find(|k| *k == f)),
        message: e.to_string(),
    })?;
    let audio = WavAudio::parse(&form.file.data).map_err(|e| Refusal {
        message: e.to_string(),
        param: Some("file"),
    })?;
    let seconds = audio.seconds();
    let text = format!(
        "simulated transcript of {seconds:.3} seconds of {}-channel {} Hz audio",
        audio.channels, audio.sample_rate
    );
    let transcript = TranscriptText {
        text: text.clone(),
        language: form.language.clone().unwrap_or_else(|| "english".into()),
        duration: seconds,
        segments: vec![TimedText {
            start: 0.0,
            end: seconds,
            text,
        }],
    };
    let body = transcript.render(form.response_format);
    Ok(Transcript {
        content_type: form.response_format.content_type(),
        body,
    })
}

const FIELDS: &[&str] = &[
    "file",
    "model",
    "language",
    "prompt",
    "temperature",
    "response_format",
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form(format: &str) -> (String, bytes::Bytes) {
        let wav = WavAudio::silence(16_000, 1, 24_000);
        let mut body =
            b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n".to_vec();
        body.extend_from_slice(
            format!("--b\r\nContent-Disposition: form-data; name=\"response_format\"\r\n\r\n{format}\r\n").as_bytes(),
        );
        body.extend_from_slice(
            b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n",
        );
        body.extend_from_slice(&wav);
        body.extend_from_slice(b"\r\n--b--\r\n");
        (
            "multipart/form-data; boundary=b".into(),
            bytes::Bytes::from(body),
        )
    }

    #[test]
    fn each_format_tells_the_duration() {
        let text = |f: &str| {
            let (ct, body) = form(f);
            String::from_utf8(transcribe(&ct, &body).ok().unwrap().body).unwrap()
        };
        assert!(text("json").contains(
            "\"text\":\"simulated transcript of 1.500 seconds of 1-channel 16000 Hz audio\""
        ));
        assert_eq!(
            text("text"),
            "simulated transcript of 1.500 seconds of 1-channel 16000 Hz audio\n"
        );
        assert!(text("verbose_json").contains("\"duration\":1.5"));
        assert!(text("srt").starts_with("1\n00:00:00,000 --> 00:00:01,500\n"));
        assert!(text("vtt").starts_with("WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n"));
        let (ct, body) = form("mp3");
        assert_eq!(
            transcribe(&ct, &body).err().unwrap().param,
            Some("response_format")
        );
    }
}
