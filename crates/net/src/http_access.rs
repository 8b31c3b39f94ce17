//! Who may call an HTTP port. A role's HTTP API listens on loopback, and loopback is not a
//! boundary against the web browser on the same machine: any page it opens can send a
//! `text/plain` POST to `http://127.0.0.1:10000` (no CORS preflight), or rebind a name it owns
//! to 127.0.0.1 and read the answers. So a request is refused when
//!
//! 1. its `Host` is a name other than `localhost` and the configured ones (an IP literal is
//!    fine: DNS rebinding needs a name) → 421;
//! 2. it comes from a browser page: an `Origin` not on the allow-list, or no `Origin` with
//!    `Sec-Fetch-Site: cross-site`/`same-site` → 403;
//! 3. an API key is configured and the request lacks `Authorization: Bearer <key>` → 401. The
//!    key is compared through SHA-256 digests in constant time, so neither its content nor its
//!    length leaks through timing.
//!
//! [`AccessRules::check`] is the rule, a pure function of the request's headers.

use http::HeaderMap;
use http::header::{AUTHORIZATION, HOST, ORIGIN};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Denial {
    /// `Host` names a host this port does not answer for (DNS rebinding).
    #[error(
        "host `{0}` is not served here; use the address the API listens on, or list the name in allowed_hosts"
    )]
    ForeignHost(String),
    /// `Origin` is a web page not on the allow-list.
    #[error(
        "requests from the web page origin `{0}` are refused; list it in allowed_origins to allow them"
    )]
    ForeignOrigin(String),
    /// A browser sent the request for another site without saying which.
    #[error("cross-site browser requests are refused")]
    CrossSite,
    /// An API key is configured and the request carries none.
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    MissingApiKey,
    /// The request carries a key other than the configured one.
    #[error("incorrect API key provided")]
    WrongApiKey,
}

impl Denial {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Self::ForeignHost(_) => 421,
            Self::ForeignOrigin(_) | Self::CrossSite => 403,
            Self::MissingApiKey | Self::WrongApiKey => 401,
        }
    }

    /// The OpenAI-style error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::ForeignHost(_) => "host_not_allowed",
            Self::ForeignOrigin(_) | Self::CrossSite => "origin_not_allowed",
            Self::MissingApiKey => "missing_api_key",
            Self::WrongApiKey => "invalid_api_key",
        }
    }

    /// The OpenAI-style error type.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::MissingApiKey | Self::WrongApiKey => "invalid_request_error",
            _ => "permission_error",
        }
    }

    /// The whole error body, `{"error":{"message","type","code"}}`.
    pub fn json_body(&self) -> String {
        serde_json::json!({
            "error": { "message": self.to_string(), "type": self.kind(), "code": self.code() }
        })
        .to_string()
    }
}

/// The rules of one HTTP port.
#[derive(Clone, Default)]
pub struct AccessRules {
    allowed_origins: Vec<String>,
    allowed_hosts: Vec<String>,
    api_key: Option<[u8; 32]>,
}

impl std::fmt::Debug for AccessRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessRules")
            .field("allowed_origins", &self.allowed_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("api_key", &self.api_key.map(|_| "<set>"))
            .finish()
    }
}

impl AccessRules {
    /// Rules allowing IP-literal and `localhost` hosts only, no browser origin, no key.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also answers for these host names (as sent in `Host`, with or without a port).
    pub fn allow_hosts<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, hosts: I) -> Self {
        self.allowed_hosts.extend(
            hosts
                .into_iter()
                .map(|h| strip_port(h.as_ref().trim()).to_ascii_lowercase()),
        );
        self
    }

    /// Accepts requests from these web page origins (`scheme://host[:port]`).
    pub fn allow_origins<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, origins: I) -> Self {
        self.allowed_origins
            .extend(origins.into_iter().map(|o| normalize_origin(o.as_ref())));
        self
    }

    /// Requires `Authorization: Bearer <key>`.
    pub fn require_key(mut self, key: &str) -> Self {
        self.api_key = Some(Sha256::digest(key.as_bytes()).into());
        self
    }

    /// Whether a key is required.
    pub fn has_key(&self) -> bool {
        self.api_key.is_some()
    }

    /// Checks a request's headers; `needs_key` is false for paths open without a key (the
    /// health probe).
    pub fn check(&self, headers: &HeaderMap, needs_key: bool) -> Result<(), Denial> {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        if let Some(host) = headers.get(HOST) {
            let host = host.to_str().unwrap_or("<not text>");
            if !self.host_allowed(host) {
                return Err(Denial::ForeignHost(host.to_owned()));
            }
        }
        match headers.get(ORIGIN) {
            Some(origin) => {
                let origin = origin.to_str().unwrap_or("<not text>");
                if !self.allowed_origins.contains(&normalize_origin(origin)) {
                    return Err(Denial::ForeignOrigin(origin.to_owned()));
                }
            }
            None => {
                if matches!(text("sec-fetch-site"), Some("cross-site" | "same-site")) {
                    return Err(Denial::CrossSite);
                }
            }
        }
        if let (Some(expected), true) = (&self.api_key, needs_key) {
            let given = headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    let (scheme, key) = v.trim().split_once(' ')?;
                    scheme.eq_ignore_ascii_case("bearer").then(|| key.trim())
                })
                .ok_or(Denial::MissingApiKey)?;
            let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
            if !bool::from(digest.ct_eq(expected)) {
                return Err(Denial::WrongApiKey);
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = strip_port(host.trim());
        if name.is_empty() {
            return false;
        }
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        name == "localhost" || self.allowed_hosts.contains(&name)
    }
}

/// `host[:port]` without the port (`[v6]:port` keeps its brackets).
fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn normalize_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                http::HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn loopback_callers_pass_and_rebound_names_do_not() {
        let rules = AccessRules::new().allow_hosts(["api.internal"]);
        for host in [
            "127.0.0.1:10000",
            "127.0.0.1",
            "[::1]:10000",
            "localhost:10000",
            "LOCALHOST",
            "10.1.2.3:80",
            "api.internal:10000",
        ] {
            assert_eq!(
                rules.check(&headers(&[("host", host)]), true),
                Ok(()),
                "{host}"
            );
        }
        assert_eq!(rules.check(&HeaderMap::new(), true), Ok(()));
        for host in [
            "evil.example:10000",
            "evil.example",
            "localhost.evil.example",
            "",
        ] {
            let denied = rules.check(&headers(&[("host", host)]), true);
            assert!(
                matches!(&denied, Err(Denial::ForeignHost(h)) if h == host),
                "{host}: {denied:?}"
            );
            assert_eq!(denied.unwrap_err().status(), 421);
        }
    }

    #[test]
    fn browser_pages_are_refused_unless_listed() {
        let rules = AccessRules::new().allow_origins(["https://app.example/"]);
        let evil = rules.check(
            &headers(&[
                ("host", "127.0.0.1:10000"),
                ("origin", "http://evil.example"),
                ("content-type", "text/plain"),
            ]),
            true,
        );
        assert_eq!(
            evil,
            Err(Denial::ForeignOrigin("http://evil.example".into()))
        );
        assert_eq!(evil.unwrap_err().status(), 403);
        assert_eq!(
            rules.check(&headers(&[("origin", "null")]), true),
            Err(Denial::ForeignOrigin("null".into()))
        );
        assert_eq!(
            rules.check(&headers(&[("sec-fetch-site", "cross-site")]), true),
            Err(Denial::CrossSite)
        );
        assert_eq!(
            rules.check(&headers(&[("origin", "https://APP.example")]), true),
            Ok(())
        );
        assert_eq!(
            rules.check(&headers(&[("sec-fetch-site", "none")]), true),
            Ok(())
        );
    }

    #[test]
    fn the_api_key_is_required_where_configured() {
        let rules = AccessRules::new().require_key("s3cret-key");
        assert_eq!(rules.check(&headers(&[]), true), Err(Denial::MissingApiKey));
        assert_eq!(rules.check(&headers(&[]), false), Ok(()));
        assert_eq!(
            rules.check(&headers(&[("authorization", "Bearer s3cret-key")]), true),
            Ok(())
        );
        assert_eq!(
            rules.check(&headers(&[("authorization", "bearer  s3cret-key ")]), true),
            Ok(())
        );
        for wrong in ["Bearer s3cret-ke", "Bearer s3cret-key2", "Bearer "] {
            let got = rules.check(&headers(&[("authorization", wrong)]), true);
            assert!(
                matches!(got, Err(Denial::WrongApiKey | Denial::MissingApiKey)),
                "{wrong}: {got:?}"
            );
        }
        assert_eq!(
            rules.check(&headers(&[("authorization", "Basic czNjcmV0")]), true),
            Err(Denial::MissingApiKey)
        );
        let body = Denial::WrongApiKey.json_body();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["code"], "invalid_api_key");
        assert_eq!(Denial::WrongApiKey.status(), 401);
        // Without a key configured, any Authorization header is ignored.
        assert_eq!(
            AccessRules::new().check(&headers(&[("authorization", "Bearer unused")]), true),
            Ok(())
        );
    }
}
