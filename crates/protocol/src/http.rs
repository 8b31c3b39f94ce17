//! The `http.request` / `http.response` envelope that carries OpenAI bodies through the network.
//!
//! A first answer is a serialized `http.response` head (its `payload` holding the first body
//! bytes) and further body bytes follow in answer parts.

use bytes::Bytes;

use crate::Error;
use crate::messages::http::{Header, Request, Response};
use crate::tl::{TlConstructor, TlRead, TlReader};

/// Decodes the `http.response` at the start of a first answer, returning it and any bytes after
/// it (the reference puts the whole first body chunk into `payload`; nothing should follow).
pub fn split_response(answer: &Bytes) -> Result<(Response, Bytes), Error> {
    let mut r = TlReader::new(answer.clone());
    let id = r.read_u32()?;
    if id != Response::ID {
        return Err(Error::UnexpectedConstructor {
            expected: Response::ID,
            found: id,
        });
    }
    let resp = Response::tl_read(&mut r)?;
    let rest = r.read_raw(r.remaining())?;
    Ok((resp, rest))
}

impl Request {
    /// A request carrying a JSON body for `url` (e.g. `/v1/chat/completions`).
    pub fn json_post(url: &str, body: Bytes) -> Self {
        Self {
            method: "POST".into(),
            url: url.into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![Header {
                name: "Content-Type".into(),
                value: "application/json".into(),
            }],
            payload: body,
        }
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [Header], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}
