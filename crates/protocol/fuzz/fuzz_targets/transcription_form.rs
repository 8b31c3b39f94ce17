//! Feeds arbitrary bytes to the transcription form parser and the WAV measure: the first line
//! is the content type, the rest the body. Nothing may panic; a form that parses must parse
//! again, unchanged but for the file name's quotes, from what it writes back; audio that
//! measures must bill at least one unit and no more frames than its bytes hold.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

use cocoon_protocol::audio::{FormLimits, TranscriptionForm, WavAudio, billable_units};

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"multipart/form-data; boundary=b"[..], data),
    };
    let content_type = String::from_utf8_lossy(head);
    let limits = FormLimits {
        max_file_bytes: 1 << 16,
    };
    if let Ok(form) = TranscriptionForm::parse(&content_type, &Bytes::copy_from_slice(body), limits) {
        let (ct, written) = form.to_multipart(&form.boundary_for(1));
        let again = TranscriptionForm::parse(&ct, &written, limits).expect("our own form parses");
        assert_eq!(again.model, form.model);
        assert_eq!(again.file.data, form.file.data);
        assert_eq!(again.prompt, form.prompt);
        assert_eq!(again.response_format, form.response_format);
        assert_eq!(again.temperature, form.temperature);
    }
    if let Ok(wav) = WavAudio::parse(body) {
        assert!(wav.frames <= body.len() as u64);
        assert!(billable_units(wav.frames, wav.sample_rate, 10) >= 1);
    }
});
