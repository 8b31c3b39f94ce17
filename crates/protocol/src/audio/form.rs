//! The `multipart/form-data` body of a transcription request, parsed once into a
//! [`TranscriptionForm`] under [`FormLimits`] and written back canonically
//! ([`TranscriptionForm::to_multipart`]) for the engine.
//!
//! The parser is bounded: at most [`MAX_PARTS`] parts, [`MAX_PART_HEADER_BYTES`] of headers per
//! part, [`MAX_TEXT_FIELD_BYTES`] per text field and the configured size for the audio; every
//! field appears once; fields OpenAI does not define are refused by name.

use bytes::Bytes;
use memchr::memmem::find;

use crate::Error;

/// Most parts a form may have.
pub const MAX_PARTS: usize = 16;
/// Most bytes of headers one part may have.
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Most bytes of a text field (`prompt` is the longest in practice).
pub const MAX_TEXT_FIELD_BYTES: usize = 64 * 1024;
/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// How large a form may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Most bytes of audio (`file`).
    pub max_file_bytes: usize,
}

/// How the transcript is written back (`response_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// `{"text": …}` (the default).
    #[default]
    Json,
    /// The transcript as plain text.
    Text,
    /// JSON with language, duration and segments.
    VerboseJson,
    /// SubRip subtitles.
    Srt,
    /// WebVTT subtitles.
    Vtt,
}

impl ResponseFormat {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Text => "text",
            Self::VerboseJson => "verbose_json",
            Self::Srt => "srt",
            Self::Vtt => "vtt",
        }
    }

    /// The format named `value`, if it is one.
    pub fn from_name(value: &str) -> Option<Self> {
        [
            Self::Json,
            Self::Text,
            Self::VerboseJson,
            Self::Srt,
            Self::Vtt,
        ]
        .into_iter()
        .find(|f| f.as_str() == value)
    }

    /// The content type of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json | Self::VerboseJson => "application/json",
            Self::Text => "text/plain; charset=utf-8",
            Self::Srt => "application/x-subrip",
            Self::Vtt => "text/vtt",
        }
    }
}

/// The audio of a form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFile {
    /// The file name the caller gave (engines guess containers from it).
    pub filename: String,
    /// The part's content type, if any.
    pub content_type: Option<String>,
    /// The audio bytes.
    pub data: Bytes,
}

/// A checked transcription request.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscriptionForm {
    /// `model`.
    pub model: String,
    /// `file`.
    pub file: AudioFile,
    /// `language` (ISO-639-1), if given.
    pub language: Option<String>,
    /// `prompt`, if given.
    pub prompt: Option<String>,
    /// `temperature` in `[0, 1]`, if given.
    pub temperature: Option<f64>,
    /// `response_format`.
    pub response_format: ResponseFormat,
    /// `timestamp_granularities[]` (`word`, `segment`), in order given.
    pub timestamp_granularities: Vec<String>,
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Result<&str, Error> {
    let mut params = content_type.split(';');
    let media = params.next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("multipart/form-data") {
        return Err(Error::MalformedForm(
            "the content type must be multipart/form-data",
        ));
    }
    for param in params {
        let Some((name, value)) = param.split_once('=') else {
            continue;
        };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            if value.is_empty() || value.len() > MAX_BOUNDARY {
                return Err(Error::MalformedForm(
                    "the boundary must be 1 to 70 characters",
                ));
            }
            return Ok(value);
        }
    }
    Err(Error::MalformedForm("the content type names no boundary"))
}

/// A part's `name` and `filename` from its headers, and its content type.
struct PartHead {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
}

fn part_head(headers: &[u8]) -> Result<PartHead, Error> {
    let text = std::str::from_utf8(headers)
        .map_err(|_| Error::MalformedForm("part headers are not UTF-8"))?;
    let mut disposition = None;
    let mut content_type = None;
    for line in text.split("\r\n") {
        let Some((name, value)) = line.split_once(':') else {
            return Err(Error::MalformedForm("a part header line without a colon"));
        };
        if name.trim().eq_ignore_ascii_case("content-disposition") {
            disposition = Some(value.trim());
        } else if name.trim().eq_ignore_ascii_case("content-type") {
            content_type = Some(value.trim().to_owned());
        }
    }
    let disposition =
        disposition.ok_or(Error::MalformedForm("a part without Content-Disposition"))?;
    let mut items = split_params(disposition);
    let kind = items.next().unwrap_or_default();
    if !kind.trim().eq_ignore_ascii_case("form-data") {
        return Err(Error::MalformedForm("a part that is not form-data"));
    }
    let (mut name, mut filename) = (None, None);
    for item in items {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        let value = unquote(value.trim())?;
        match key.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(value),
            "filename" => filename = Some(value),
            _ => {}
        }
    }
    Ok(PartHead {
        name: name.ok_or(Error::MalformedForm("a part without a name"))?,
        filename,
        content_type,
    })
}

/// Splits header parameters on `;` outside quotes.
fn split_params(value: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in value.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' if quoted => {
                current.push(c);
                escaped = true;
            }
            '"' => {
                current.push(c);
                quoted = !quoted;
            }
            ';' if !quoted => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    out.push(current);
    out.into_iter()
}

fn unquote(value: &str) -> Result<String, Error> {
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_owned());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or(Error::MalformedForm("an unterminated quoted parameter"))?;
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped || c != '\\' {
            out.push(c);
            escaped = false;
        } else {
            escaped = true;
        }
    }
    Ok(out)
}

fn text_field(name: &str, data: &[u8]) -> Result<String, Error> {
    if data.len() > MAX_TEXT_FIELD_BYTES {
        return Err(Error::FormFieldTooLarge {
            field: name.to_owned(),
            size: data.len(),
            limit: MAX_TEXT_FIELD_BYTES,
        });
    }
    String::from_utf8(data.to_vec()).map_err(|_| Error::FormInvalidField {
        field: name.to_owned(),
        reason: "not UTF-8 text",
    })
}

/// The fields OpenAI defines for a transcription that are carried (anything else is refused).
const FIELDS: &[&str] = &[
    "file",
    "model",
    "language",
    "prompt",
    "temperature",
    "response_format",
    "timestamp_granularities[]",
];

impl TranscriptionForm {
    /// Parses `body`, sent with `content_type`, under `limits`.
    pub fn parse(content_type: &str, body: &Bytes, limits: FormLimits) -> Result<Self, Error> {
        let boundary = boundary(content_type)?;
        let delimiter = [b"--", boundary.as_bytes()].concat();
        let mut file = None;
        let (mut model, mut language, mut prompt, mut temperature, mut format) =
            (None, None, None, None, None);
        let mut granularities = Vec::new();
        // The first delimiter may follow a preamble.
        let first =
            find(body, &delimiter).ok_or(Error::MalformedForm("no boundary in the body"))?;
        if first != 0 && (first < 2 || &body[first - 2..first] != b"\r\n") {
            return Err(Error::MalformedForm(
                "the first boundary is not on its own line",
            ));
        }
        let next_delimiter = [b"\r\n", delimiter.as_slice()].concat();
        let mut at = first + delimiter.len();
        let mut parts = 0usize;
        loop {
            let rest = &body[at..];
            if rest.starts_with(b"--") {
                break;
            }
            if !rest.starts_with(b"\r\n") {
                return Err(Error::MalformedForm(
                    "a boundary not followed by a line break",
                ));
            }
            parts += 1;
            if parts > MAX_PARTS {
                return Err(Error::MalformedForm("more than 16 parts"));
            }
            let head_start = at + 2;
            let head_window =
                &body[head_start..body.len().min(head_start + MAX_PART_HEADER_BYTES + 4)];
            let head_len = find(head_window, b"\r\n\r\n").ok_or(Error::MalformedForm(
                "part headers too long or unterminated",
            ))?;
            let head = part_head(&body[head_start..head_start + head_len])?;
            let data_start = head_start + head_len + 4;
            let data_len = find(&body[data_start..], &next_delimiter)
                .ok_or(Error::MalformedForm("a part without a closing boundary"))?;
            let data = body.slice(data_start..data_start + data_len);
            at = data_start + data_len + next_delimiter.len();

            let name = head.name.as_str();
            if !FIELDS.contains(&name) {
                return Err(Error::FormInvalidField {
                    field: head.name,
                    reason: "not a field of a transcription request",
                });
            }
            let duplicate = || Error::FormInvalidField {
                field: name.to_owned(),
                reason: "given more than once",
            };
            match name {
                "file" => {
                    if file.is_some() {
                        return Err(duplicate());
                    }
                    if data.len() > limits.max_file_bytes {
                        return Err(Error::FormFieldTooLarge {
                            field: "file".into(),
                            size: data.len(),
                            limit: limits.max_file_bytes,
                        });
                    }
                    let filename = head.filename.ok_or(Error::FormInvalidField {
                        field: "file".into(),
                        reason: "must be a file upload (a part with a filename)",
                    })?;
                    file = Some(AudioFile {
                        filename,
                        content_type: head.content_type,
                        data,
                    });
                }
                "timestamp_granularities[]" => {
                    let value = text_field(name, &data)?;
                    if value != "word" && value != "segment" {
                        return Err(Error::FormInvalidField {
                            field: name.to_owned(),
                            reason: "must be `word` or `segment`",
                        });
                    }
                    if granularities.contains(&value) {
                        return Err(duplicate());
                    }
                    granularities.push(value);
                }
                _ => {
                    let slot = match name {
                        "model" => &mut model,
                        "language" => &mut language,
                        "prompt" => &mut prompt,
                        "temperature" => &mut temperature,
                        _ => &mut format,
                    };
                    if slot.is_some() {
                        return Err(duplicate());
                    }
                    *slot = Some(text_field(name, &data)?);
                }
            }
        }
        let file = file.ok_or(Error::FormMissingField("file"))?;
        let model = model
            .filter(|m| !m.trim().is_empty())
            .ok_or(Error::FormMissingField("model"))?;
        if let Some(l) = &language
            && (l.is_empty()
                || l.len() > 16
                || !l.chars().all(|c| c.is_ascii_alphabetic() || c == '-'))
        {
            return Err(Error::FormInvalidField {
                field: "language".into(),
                reason: "must be a language code such as `en`",
            });
        }
        let temperature = match temperature {
            None => None,
            Some(t) => Some(
                t.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|t| (0.0..=1.0).contains(t))
                    .ok_or(Error::FormInvalidField {
                        field: "temperature".into(),
                        reason: "must be a number from 0 to 1",
                    })?,
            ),
        };
        let response_format = match format {
            None => ResponseFormat::Json,
            Some(f) => ResponseFormat::from_name(f.trim()).ok_or(Error::FormInvalidField {
                field: "response_format".into(),
                reason: "must be json, text, verbose_json, srt or vtt",
            })?,
        };
        if !granularities.is_empty() && response_format != ResponseFormat::VerboseJson {
            return Err(Error::FormInvalidField {
                field: "timestamp_granularities[]".into(),
                reason: "needs response_format verbose_json",
            });
        }
        Ok(Self {
            model,
            file,
            language,
            prompt,
            temperature,
            response_format,
            timestamp_granularities: granularities,
        })
    }

    /// The form written as `multipart/form-data` with `boundary` (which must not occur in the
    /// audio; [`TranscriptionForm::boundary_for`] picks one that does not): the content type
    /// and the body.
    pub fn to_multipart(&self, boundary: &str) -> (String, Bytes) {
        let mut out = Vec::with_capacity(self.file.data.len() + 1024);
        let text = |out: &mut Vec<u8>, name: &str, value: &str| {
            out.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        };
        text(&mut out, "model", &self.model);
        if let Some(l) = &self.language {
            text(&mut out, "language", l);
        }
        if let Some(p) = &self.prompt {
            text(&mut out, "prompt", p);
        }
        if let Some(t) = self.temperature {
            text(&mut out, "temperature", &t.to_string());
        }
        text(&mut out, "response_format", self.response_format.as_str());
        for g in &self.timestamp_granularities {
            text(&mut out, "timestamp_granularities[]", g);
        }
        let filename: String = self
            .file
            .filename
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
            .collect();
        out.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\nContent-Type: {}\r\n\r\n",
                self.file
                    .content_type
                    .as_deref()
                    .filter(|c| !c.chars().any(char::is_control))
                    .unwrap_or("application/octet-stream")
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.file.data);
        out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        (
            format!("multipart/form-data; boundary={boundary}"),
            Bytes::from(out),
        )
    }

    /// A boundary that occurs in none of the form's values, made from `seed` (any bytes).
    pub fn boundary_for(&self, seed: u64) -> String {
        let mut n = seed;
        loop {
            let candidate = format!("cocoon-form-{n:016x}");
            let clash = |bytes: &[u8]| find(bytes, candidate.as_bytes()).is_some();
            let texts = [
                Some(&self.model),
                self.prompt.as_ref(),
                self.language.as_ref(),
            ];
            if !clash(&self.file.data) && !texts.into_iter().flatten().any(|t| clash(t.as_bytes()))
            {
                return candidate;
            }
            n = n.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const LIMITS: FormLimits = FormLimits {
        max_file_bytes: 1024,
    };
    const CT: &str = "multipart/form-data; boundary=XyZ";

    /// A form as the OpenAI SDK writes one: `(name, filename, value)` parts.
    fn body(parts: &[(&str, Option<&str>, &[u8])]) -> Bytes {
        let mut out = Vec::new();
        for (name, filename, value) in parts {
            out.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.push(b'"');
            if let Some(f) = filename {
                out.extend_from_slice(
                    format!("; filename=\"{f}\"\r\nContent-Type: audio/wav").as_bytes(),
                );
            }
            out.extend_from_slice(b"\r\n\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        Bytes::from(out)
    }

    fn error(parts: &[(&str, Option<&str>, &[u8])]) -> Error {
        TranscriptionForm::parse(CT, &body(parts), LIMITS).unwrap_err()
    }

    #[test]
    fn a_full_form_parses_and_writes_back_to_the_same_form() {
        // Audio containing CRLF and a near-boundary must survive.
        let audio: &[u8] = b"RIFF\r\n-\n--XyZ-not-quite\r\n\x00\x01\r\n";
        let b = body(&[
            ("model", None, b"whisper-1"),
            ("file", Some("a \\\"b\\\".wav"), audio),
            ("language", None, b"en"),
            ("prompt", None, b"names: Ada"),
            ("temperature", None, b"0.2"),
            ("response_format", None, b"verbose_json"),
            ("timestamp_granularities[]", None, b"segment"),
        ]);
        let form =
            TranscriptionForm::parse("Multipart/Form-Data; boundary=\"XyZ\"", &b, LIMITS).unwrap();
        assert_eq!(form.model, "whisper-1");
        assert_eq!(&form.file.data[..], audio);
        assert_eq!(form.file.filename, "a \"b\".wav");
        assert_eq!(form.file.content_type.as_deref(), Some("audio/wav"));
        assert_eq!(form.language.as_deref(), Some("en"));
        assert_eq!(form.temperature, Some(0.2));
        assert_eq!(form.response_format, ResponseFormat::VerboseJson);
        assert_eq!(form.timestamp_granularities, vec!["segment".to_owned()]);
        let boundary = form.boundary_for(7);
        let (ct, written) = form.to_multipart(&boundary);
        let again = TranscriptionForm::parse(&ct, &written, LIMITS).unwrap();
        // The quotes in the file name are dropped on the way out; the rest is unchanged.
        assert_eq!(again.file.filename, "a b.wav");
        assert_eq!(
            TranscriptionForm {
                file: AudioFile {
                    filename: form.file.filename.clone(),
                    ..again.file.clone()
                },
                ..again
            },
            form
        );
    }

    #[test]
    fn defaults_and_a_preamble() {
        let mut b = b"ignored preamble\r\n".to_vec();
        b.extend_from_slice(&body(&[
            ("file", Some("x.wav"), b"abc"),
            ("model", None, b"m"),
        ]));
        let form = TranscriptionForm::parse(CT, &Bytes::from(b), LIMITS).unwrap();
        assert_eq!(form.response_format, ResponseFormat::Json);
        assert_eq!(
            (form.language, form.prompt, form.temperature),
            (None, None, None)
        );
    }

    #[test]
    fn each_bad_field_is_named() {
        let file: (&str, Option<&str>, &[u8]) = ("file", Some("a.wav"), b"abc");
        let model: (&str, Option<&str>, &[u8]) = ("model", None, b"m");
        let cases: Vec<(Error, &str)> = vec![
            (error(&[model]), "file"),
            (error(&[file]), "model"),
            (error(&[file, ("model", None, b"  ")]), "model"),
            (
                error(&[file, model, ("response_format", None, b"mp3")]),
                "response_format",
            ),
            (
                error(&[file, model, ("temperature", None, b"3")]),
                "temperature",
            ),
            (
                error(&[file, model, ("temperature", None, b"hot")]),
                "temperature",
            ),
            (
                error(&[file, model, ("language", None, b"en; rm")]),
                "language",
            ),
            (error(&[file, model, ("stream", None, b"true")]), "stream"),
            (error(&[file, model, model]), "model"),
            (error(&[file, file, model]), "file"),
            (error(&[("file", None, b"abc"), model]), "file"),
            (
                error(&[("file", Some("big.wav"), &[0u8; 1025]), model]),
                "file",
            ),
            (
                error(&[file, model, ("prompt", None, &[0xff, 0xfe])]),
                "prompt",
            ),
            (
                error(&[file, model, ("timestamp_granularities[]", None, b"word")]),
                "timestamp_granularities[]",
            ),
        ];
        for (e, field) in cases {
            assert_eq!(e.form_field(), Some(field), "{e}");
        }
        let too_big = error(&[("file", Some("big.wav"), &[0u8; 1025]), model]);
        assert!(matches!(
            too_big,
            Error::FormFieldTooLarge {
                size: 1025,
                limit: 1024,
                ..
            }
        ));
    }

    #[test]
    fn broken_structure_is_refused_without_a_field() {
        let good = body(&[("file", Some("a.wav"), b"abc"), ("model", None, b"m")]);
        let malformed = |ct: &str, b: &[u8]| {
            let e = TranscriptionForm::parse(ct, &Bytes::copy_from_slice(b), LIMITS).unwrap_err();
            assert!(matches!(e, Error::MalformedForm(_)), "{e}");
            assert_eq!(e.form_field(), None);
        };
        malformed("application/json", &good);
        malformed("multipart/form-data", &good);
        malformed("multipart/form-data; boundary=", &good);
        malformed(CT, b"");
        malformed(CT, &good[..good.len() - 12]);
        malformed(
            CT,
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\nm",
        );
        malformed(CT, b"--XyZ\r\nno colon here\r\n\r\nm\r\n--XyZ--");
        malformed(
            CT,
            b"--XyZ\r\nContent-Disposition: attachment; name=\"model\"\r\n\r\nm\r\n--XyZ--",
        );
        malformed(CT, b"junk--XyZ\r\n");
        let mut many = Vec::new();
        for _ in 0..17 {
            many.extend_from_slice(
                b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n",
            );
        }
        many.extend_from_slice(b"--XyZ--");
        assert!(TranscriptionForm::parse(CT, &Bytes::from(many), LIMITS).is_err());
        let mut long_head =
            b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\nX-Pad: ".to_vec();
        long_head.resize(long_head.len() + MAX_PART_HEADER_BYTES, b'a');
        long_head.extend_from_slice(b"\r\n\r\nm\r\n--XyZ--");
        malformed(CT, &long_head);
    }

    proptest::proptest! {
        /// Any bytes, and any corruption of a good form, are refused or parsed, never a panic;
        /// what parses writes back to a form that parses to the same values.
        #[test]
        fn arbitrary_and_corrupted_forms_never_panic(
            noise in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            at in 0usize..400,
            cut in 0usize..400,
        ) {
            let _ = TranscriptionForm::parse(CT, &Bytes::from(noise.clone()), LIMITS);
            let good = body(&[
                ("model", None, b"m"),
                ("file", Some("a.wav"), b"RIFF data"),
                ("prompt", None, b"p"),
            ]);
            let mut corrupted = good.to_vec();
            let at = at % corrupted.len();
            corrupted.splice(at..at, noise.iter().copied().take(8));
            corrupted.truncate(corrupted.len() - cut.min(corrupted.len()));
            if let Ok(form) = TranscriptionForm::parse(CT, &Bytes::from(corrupted), LIMITS) {
                let (ct, written) = form.to_multipart(&form.boundary_for(3));
                let again = TranscriptionForm::parse(&ct, &written, LIMITS).unwrap();
                proptest::prop_assert_eq!(again.model, form.model);
                proptest::prop_assert_eq!(again.file.data, form.file.data);
                proptest::prop_assert_eq!(again.prompt, form.prompt);
            }
        }
    }
}
