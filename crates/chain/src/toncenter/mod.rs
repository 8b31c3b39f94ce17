//! The toncenter backend: TON testnet and mainnet through toncenter's HTTP API, with the API key
//! in the `X-API-Key` header, a client-side rate limiter (toncenter allows about one request a
//! second without a key and ten with one) and retries with exponential backoff on 429, 5xx and
//! connection failures (honouring `Retry-After`).

mod json;

use crate::ChainError;
use crate::chain::{Chain, ChainFuture};
use crate::stack::GetMethodResult;
use crate::types::{AccountState, ChainStatus, ExternalLog, SendReceipt, Transaction};
use cocoon_ton::contracts::StackValue;
use cocoon_ton::{Address, Cell, InternalMessage};
use json::Decoder;
use reqwest::{Method, StatusCode, Url};
use serde_json::json;
use std::time::Duration;
use tokio::time::Instant;

/// Largest answer body read (transactions pages with bodies can be large, never this large).
const MAX_BODY: usize = 16 << 20;

/// How to reach toncenter.
#[derive(Debug, Clone)]
pub struct ToncenterConfig {
    /// Where the API lives, without `/api/v2` (e.g. `https://toncenter.com`).
    pub base_url: String,
    /// API key, sent as `X-API-Key`.
    pub api_key: Option<String>,
    /// Requests per second this client allows itself; `None`: 1 without a key, 10 with one.
    pub requests_per_second: Option<f64>,
    /// Retries after the first attempt on 429, 5xx and connection failures.
    pub max_retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub initial_backoff: Duration,
    /// Longest wait between attempts (also caps `Retry-After`).
    pub max_backoff: Duration,
    /// Limit for one HTTP request.
    pub request_timeout: Duration,
}

impl ToncenterConfig {
    /// Mainnet (`https://toncenter.com`).
    #[must_use]
    pub fn mainnet() -> Self {
        Self::new("https://toncenter.com")
    }

    /// Testnet (`https://testnet.toncenter.com`).
    #[must_use]
    pub fn testnet() -> Self {
        Self::new("https://testnet.toncenter.com")
    }

    /// Any toncenter-compatible server (a self-hosted one, a test server).
    #[must_use]
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            api_key: None,
            requests_per_second: None,
            max_retries: 4,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The same, with an API key.
    #[must_use]
    pub fn with_api_key(mut self, key: impl Into<String>) -> Self {
        self.api_key = Some(key.into());
        self
    }

    fn rate(&self) -> f64 {
        self.requests_per_second
            .unwrap_or(if self.api_key.is_some() { 10.0 } else { 1.0 })
    }
}

/// Spaces requests evenly: each takes the next free slot, `1 / rate` after the previous one.
#[derive(Debug)]
struct RateLimiter {
    interval: Duration,
    next_slot: tokio::sync::Mutex<Instant>,
}

impl RateLimiter {
    fn new(per_second: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / per_second),
            next_slot: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let slot = {
            let mut next = self.next_slot.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A toncenter client (see the module docs).
#[derive(Debug)]
pub struct Toncenter {
    http: reqwest::Client,
    base: Url,
    config: ToncenterConfig,
    limiter: RateLimiter,
}

/// A failure that may go away if the request is repeated.
struct Retryable {
    detail: String,
    retry_after: Option<Duration>,
}

impl Toncenter {
    /// A client for `config`.
    ///
    /// # Errors
    /// [`ChainError::Config`] for an unusable base URL or rate, [`ChainError::Transport`] when
    /// the HTTP client cannot be built.
    pub fn new(config: ToncenterConfig) -> Result<Self, ChainError> {
        let mut base_text = config.base_url.trim_end_matches('/').to_owned();
        base_text.push('/');
        let base = Url::parse(&base_text)
            .map_err(|e| ChainError::Config(format!("toncenter URL {:?}: {e}", config.base_url)))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(ChainError::Config(format!(
                "toncenter URL {:?} is not http(s)",
                config.base_url
            )));
        }
        let rate = config.rate();
        if !(rate.is_finite() && rate > 0.0 && rate <= 10_000.0) {
            return Err(ChainError::Config(format!(
                "requests per second must be in (0, 10000], not {rate}"
            )));
        }
        // reqwest is built without a bundled crypto provider; ring is the project's choice.
        // Installing fails harmlessly if the process already chose one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .user_agent(concat!("cocoon-chain/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .build()
            .map_err(|e| ChainError::Transport {
                url: base.to_string(),
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            base,
            limiter: RateLimiter::new(rate),
            config,
        })
    }

    /// Decodes an API v2 `runGetMethod` answer body (exit code not judged). Public for tools
    /// and the fuzz targets; [`Chain::run_get_method`] uses it.
    ///
    /// # Errors
    /// [`ChainError::BadResponse`] or [`ChainError::Api`] for anything but a well-formed answer.
    pub fn decode_get_method(body: &[u8]) -> Result<GetMethodResult, ChainError> {
        Decoder {
            url: "runGetMethod",
        }
        .get_method(body)
    }

    /// Decodes an API v2 `getAddressInformation` answer body.
    ///
    /// # Errors
    /// As [`Self::decode_get_method`].
    pub fn decode_account(address: Address, body: &[u8]) -> Result<AccountState, ChainError> {
        Decoder {
            url: "getAddressInformation",
        }
        .account(address, body)
    }

    /// Decodes an API v3 `transactions` answer body.
    ///
    /// # Errors
    /// As [`Self::decode_get_method`].
    pub fn decode_transactions(body: &[u8]) -> Result<Vec<Transaction>, ChainError> {
        Decoder {
            url: "transactions",
        }
        .transactions(body)
    }

    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, ChainError> {
        let mut url = self
            .base
            .join(path)
            .map_err(|e| ChainError::Config(format!("endpoint {path}: {e}")))?;
        if !query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// Sends a request with rate limiting and retries; returns the body of a 2xx answer.
    async fn fetch(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> Result<(String, Vec<u8>), ChainError> {
        let url = self.url(path, query)?;
        let shown = format!("{}{}", self.base.as_str().trim_end_matches('/'), url.path());
        let attempts = self.config.max_retries.saturating_add(1);
        let mut last = String::new();
        for attempt in 0..attempts {
            self.limiter.wait().await;
            match self.attempt(&method, &url, &shown, body).await {
                Ok(Ok(bytes)) => return Ok((shown, bytes)),
                Ok(Err(retryable)) => {
                    tracing::debug!(url = %shown, attempt, detail = %retryable.detail, "toncenter request failed, may retry");
                    last = retryable.detail;
                    if attempt + 1 < attempts {
                        let backoff = self
                            .config
                            .initial_backoff
                            .saturating_mul(1u32 << attempt.min(16));
                        let wait = retryable.retry_after.unwrap_or(backoff);
                        tokio::time::sleep(wait.min(self.config.max_backoff)).await;
                    }
                }
                Err(fatal) => return Err(fatal),
            }
        }
        Err(ChainError::RetriesExhausted {
            url: shown,
            attempts,
            last,
        })
    }

    async fn attempt(
        &self,
        method: &Method,
        url: &Url,
        shown: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Result<Vec<u8>, Retryable>, ChainError> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(key) = &self.config.api_key {
            request = request.header("X-API-Key", key);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string());
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() || e.is_connect() || e.is_request() => {
                return Ok(Err(Retryable {
                    detail: format!("transport: {e}"),
                    retry_after: None,
                }));
            }
            Err(e) => {
                return Err(ChainError::Transport {
                    url: shown.to_owned(),
                    detail: e.to_string(),
                });
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if bytes.len() + chunk.len() > MAX_BODY {
                        return Err(ChainError::bad_response(
                            shown,
                            format!("answer larger than {MAX_BODY} bytes"),
                        ));
                    }
                    bytes.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Ok(Err(Retryable {
                        detail: format!("reading the answer: {e}"),
                        retry_after: None,
                    }));
                }
            }
        }
        if status.is_success() {
            return Ok(Ok(bytes));
        }
        let snippet = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
        if status == StatusCode::TOO_MANY_REQUESTS
            || matches!(status.as_u16(), 500 | 502 | 503 | 504)
        {
            return Ok(Err(Retryable {
                detail: format!("HTTP {}: {snippet}", status.as_u16()),
                retry_after,
            }));
        }
        // API v2 explains refusals in its envelope; prefer that text.
        #[derive(serde::Deserialize)]
        struct Refusal {
            error: String,
            code: Option<i64>,
        }
        if let Ok(r) = serde_json::from_slice::<Refusal>(&bytes) {
            return Err(ChainError::Api {
                url: shown.to_owned(),
                code: r.code.or(Some(i64::from(status.as_u16()))),
                message: r.error,
            });
        }
        Err(ChainError::HttpStatus {
            url: shown.to_owned(),
            status: status.as_u16(),
            body: snippet,
        })
    }
}

impl Chain for Toncenter {
    fn backend(&self) -> &'static str {
        "toncenter"
    }

    fn send_external<'a>(&'a self, message: &'a Cell) -> ChainFuture<'a, SendReceipt> {
        Box::pin(async move {
            let body = json!({ "boc": message.to_boc_base64() });
            let (url, bytes) = self
                .fetch(Method::POST, "api/v2/sendBocReturnHash", &[], Some(&body))
                .await?;
            let message_hash = Decoder { url: &url }
                .sent_hash(&bytes)?
                .or(Some(message.hash()));
            Ok(SendReceipt {
                message_hash,
                transactions: Vec::new(),
            })
        })
    }

    fn send_internal<'a>(
        &'a self,
        _wallet: &'a Address,
        _message: &'a InternalMessage,
    ) -> ChainFuture<'a, SendReceipt> {
        Box::pin(async move {
            Err(ChainError::Unsupported {
                backend: "toncenter",
                operation: "sending from a local wallet (sign a wallet message and send it as external)",
            })
        })
    }

    fn account<'a>(&'a self, address: &'a Address) -> ChainFuture<'a, AccountState> {
        Box::pin(async move {
            let (url, bytes) = self
                .fetch(
                    Method::GET,
                    "api/v2/getAddressInformation",
                    &[("address", address.to_raw())],
                    None,
                )
                .await?;
            Decoder { url: &url }.account(*address, &bytes)
        })
    }

    fn run_get_method<'a>(
        &'a self,
        address: &'a Address,
        method: &'a str,
        args: &'a [StackValue],
    ) -> ChainFuture<'a, GetMethodResult> {
        Box::pin(async move {
            let stack = args
                .iter()
                .map(json::stack_argument)
                .collect::<Result<Vec<_>, _>>()?;
            let body = json!({ "address": address.to_raw(), "method": method, "stack": stack });
            let (url, bytes) = self
                .fetch(Method::POST, "api/v2/runGetMethod", &[], Some(&body))
                .await?;
            let result = Decoder { url: &url }.get_method(&bytes)?;
            // tonlib reports running on an account without code as exit code -13 / -14
            if matches!(result.exit_code, -13 | -14) {
                return Err(ChainError::AccountNotActive {
                    address: address.to_raw(),
                });
            }
            if result.exit_code != 0 && result.exit_code != 1 {
                return Err(ChainError::GetMethodFailed {
                    method: method.to_owned(),
                    address: address.to_raw(),
                    exit_code: result.exit_code,
                });
            }
            Ok(result)
        })
    }

    fn transactions<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<Transaction>> {
        Box::pin(async move {
            let (url, bytes) = self
                .fetch(
                    Method::GET,
                    "api/v3/transactions",
                    &[
                        ("account", address.to_raw()),
                        ("limit", limit.clamp(1, 1000).to_string()),
                        ("offset", "0".to_owned()),
                        ("sort", "desc".to_owned()),
                    ],
                    None,
                )
                .await?;
            Decoder { url: &url }.transactions(&bytes)
        })
    }

    fn external_logs<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<ExternalLog>> {
        Box::pin(async move {
            let transactions = self.transactions(address, limit).await?;
            Ok(ExternalLog::from_transactions(address, &transactions))
        })
    }

    fn status(&self) -> ChainFuture<'_, ChainStatus> {
        Box::pin(async move {
            let (url, bytes) = self
                .fetch(Method::GET, "api/v3/masterchainInfo", &[], None)
                .await?;
            Decoder { url: &url }.masterchain_info(&bytes)
        })
    }
}
