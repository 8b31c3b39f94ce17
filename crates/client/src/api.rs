//! The client as a library: send OpenAI-style requests through the proxy without HTTP.
//!
//! [`Client::request`] returns an [`AnswerStream`] once the first answer arrives: the response
//! head, then body chunks, then usage and cost. Dropping the stream before its end cancels the
//! request at the proxy and the worker. [`Client::chat`] is the one-call convenience.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use cocoon_market::{Coefficient, TokenCounts};
use cocoon_protocol::audio::{FormLimits, TranscriptionForm, WavAudio};
use cocoon_protocol::messages::{client, ext, http};
use cocoon_protocol::tl::{Int256, TlConstructor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::config::{ClientConfig, ClientError};
use crate::link::{ProxyEvent, ProxyLink, Session, lock};

/// Per-request options beyond the OpenAI body (the reference's extra fields).
#[derive(Debug, Clone, Default)]
pub struct RequestOptions {
    /// Highest worker coefficient accepted (1000 = 1.0×).
    pub max_coefficient: Option<i32>,
    /// Time the whole request may take.
    pub timeout: Option<Duration>,
    /// Ask workers and proxy for debug information.
    pub enable_debug: bool,
    /// How the proxy should choose among the workers within `max_coefficient` (default: the
    /// configured `worker_preference`).
    pub preference: Option<cocoon_market::Preference>,
}

/// A model the network serves, with its workers.
#[derive(Debug, Clone, Serialize)]
pub struct ModelWorkers {
    /// Model name.
    pub id: String,
    /// One entry per worker.
    pub workers: Vec<WorkerLoad>,
    /// The SHA-256 of the weights (hex) named by the attested certificates of this model's
    /// workers that this client verified: what a receipt's model hash must be.
    pub weights: Vec<String>,
    /// Number of workers, their load and the price distribution, from the same figures.
    pub market: cocoon_market::MarketSignals,
}

/// One worker's price and load.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerLoad {
    /// Coefficient (1000 = 1.0×).
    pub coefficient: i32,
    /// Requests it runs now.
    pub running_requests: i32,
    /// Requests it may run at once.
    pub max_running_requests: i32,
}

/// Token usage and what it cost, in nanoTON.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostedUsage {
    /// Prompt tokens (cached included).
    pub prompt_tokens: i64,
    /// Cached prompt tokens.
    pub cached_tokens: i64,
    /// Completion tokens (reasoning included).
    pub completion_tokens: i64,
    /// Reasoning tokens.
    pub reasoning_tokens: i64,
    /// All tokens.
    pub total_tokens: i64,
    /// NanoTON for prompt and cached tokens.
    pub prompt_total_cost: i64,
    /// NanoTON for completion and reasoning tokens.
    pub completion_total_cost: i64,
    /// NanoTON in all.
    pub total_cost: i64,
}

/// Times the request passed each hop, in Unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HopTimes {
    /// Client received the request.
    pub client_start: f64,
    /// Client finished the answer.
    pub client_end: f64,
    /// Proxy received it.
    pub proxy_start: Option<f64>,
    /// Proxy finished.
    pub proxy_end: Option<f64>,
    /// Worker received it.
    pub worker_start: Option<f64>,
    /// Worker finished.
    pub worker_end: Option<f64>,
}

#[derive(Default)]
pub(crate) struct ClientCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) succeeded: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    /// Receipts refused: not verifying, or issued for another request.
    pub(crate) receipts_refused: AtomicU64,
    /// Receipts whose worker signature and request binding checked out.
    pub(crate) receipts_verified: AtomicU64,
    pub(crate) tokens: AtomicU64,
    pub(crate) spent_nanoton: AtomicU64,
    /// Time each answered request spent in this client, less the proxy's time on it.
    pub(crate) overhead: cocoon_node::histogram::Histogram,
}

/// What the proxy answered to [`Client::request_refund`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundOutcome {
    /// The account is frozen. On a chain, the checked `grant_refund_signed` voucher
    /// (`cocoon_ton::Voucher` bytes) to submit to the client contract; `None` without a chain.
    Granted {
        /// The voucher's bytes.
        voucher: Option<Vec<u8>>,
    },
    /// Requests of this client are still running: ask again when they are done.
    Busy {
        /// How many (at least).
        active_queries: i64,
    },
}

/// A client of the COCOON network.
#[derive(Clone)]
pub struct Client {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) link: Arc<ProxyLink>,
    pub(crate) counters: Arc<ClientCounters>,
    pub(crate) started: Instant,
    /// Verified worker sealing keys and sealing counters.
    pub(crate) sealing: Arc<crate::sealed::Sealing>,
}

impl Client {
    /// Starts a client: it connects to the proxy in the background and keeps reconnecting.
    pub fn start(mut config: ClientConfig) -> Result<Self, ClientError> {
        config.validate()?;
        if let Some(path) = &config.secret_file {
            config.secret = Some(crate::secret::ClientSecret::from_file(path)?);
        }
        let config = Arc::new(config);
        let identity = config
            .attestation
            .identity(cocoon_attest::ratls::ClaimsFormat::Reference)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let tls = config
            .attestation
            .endpoint(identity)
            .map_err(|e| ClientError::Config(e.to_string()))?;
        let charges = Arc::new(crate::settle::Charges::open(&config.settlement)?);
        let sealing = Arc::new(crate::sealed::Sealing::default());
        let link = ProxyLink::start(config.clone(), tls, charges, sealing.clone());
        Ok(Self {
            config,
            link,
            counters: Arc::new(ClientCounters::default()),
            started: Instant::now(),
            sealing,
        })
    }

    /// Asks the proxy to close this client's account (`client.requestRefund`). Granted, the
    /// proxy freezes the account (it accepts no more requests from this client) and, when it
    /// settles on a chain, hands over a `grant_refund_signed` voucher, checked here against
    /// the proxy's key and this client's contract; submitting it closes the contract at once
    /// and returns the rest of the balance. Refused while requests are running.
    pub async fn request_refund(&self) -> Result<RefundOutcome, ClientError> {
        use cocoon_protocol::messages::client;
        use cocoon_protocol::tl::TlConstructor;
        let session = self.link.session(Duration::from_secs(5)).await?;
        let answer = session
            .conn
            .query_with_timeout(
                Bytes::from(client::RequestRefund {}.to_boxed_bytes()),
                Duration::from_secs(180),
            )
            .await
            .map_err(|e| ClientError::ProxyUnavailable(format!("client.requestRefund: {e}")))?;
        let refund: client::AnyRefund = cocoon_protocol::tl::from_bytes(answer)
            .map_err(|e| ClientError::ProxyUnavailable(format!("bad client.Refund: {e}")))?;
        match refund {
            client::AnyRefund::RefundRejected(r) => Ok(RefundOutcome::Busy {
                active_queries: r.active_queries,
            }),
            client::AnyRefund::Refund(r) if r.data.is_empty() => {
                Ok(RefundOutcome::Granted { voucher: None })
            }
            client::AnyRefund::Refund(r) => {
                let voucher = self.link.charges.check_refund(&r.data).map_err(|e| {
                    ClientError::ProxyUnavailable(format!("the proxy's refund voucher: {e}"))
                })?;
                Ok(RefundOutcome::Granted {
                    voucher: Some(voucher.to_bytes().to_vec()),
                })
            }
            other => Err(ClientError::ProxyUnavailable(format!(
                "unexpected answer to client.requestRefund: {}",
                other.constructor_name()
            ))),
        }
    }

    /// The payment channel: the latest charge voucher and its submissions on chain.
    pub fn settlement(&self) -> crate::settle::ChargeStats {
        self.link.charges.stats()
    }

    /// The root registry this client follows, as last read (`None` without `[registry] root`).
    pub fn registry(&self) -> Option<cocoon_chain::RegistryStatus> {
        self.link.registry_status()
    }

    /// The kind of the connected proxy's TEE evidence (`Simulated` in local mode), if a
    /// session is up. It was verified against the configured policy before the session
    /// opened.
    pub fn proxy_attestation(&self) -> Option<cocoon_attest::EvidenceKind> {
        self.link.proxy_attestation()
    }

    /// Waits until the proxy session is up.
    pub async fn wait_ready(&self, wait: Duration) -> Result<(), ClientError> {
        self.link.session(wait).await.map(|_| ())
    }

    /// Whether the proxy session is up now.
    pub fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// The client's configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Stops the background session.
    pub fn shutdown(&self) {
        self.link.shutdown.cancel();
    }

    /// The models the network serves now, with their workers and the weights their attested
    /// certificates name.
    pub async fn models(&self) -> Result<Vec<ModelWorkers>, ClientError> {
        let types = self.link.worker_types().await?;
        let session = self.link.session(Duration::from_secs(5)).await.ok();
        let mut models = Vec::with_capacity(types.types.len());
        for t in &types.types {
            let weights = match &session {
                Some(session) => {
                    self.sealing
                        .attested_weights(&self.config, &self.link, session, &t.name)
                        .await
                }
                None => Vec::new(),
            };
            models.push(ModelWorkers {
                market: cocoon_market::MarketSignals::from_workers(t.workers.iter().map(|w| {
                    let n = |v: i32| u32::try_from(v).unwrap_or(0);
                    (
                        n(w.coefficient),
                        n(w.active_requests),
                        n(w.max_active_requests),
                    )
                })),
                id: t.name.clone(),
                workers: t
                    .workers
                    .iter()
                    .map(|w| WorkerLoad {
                        coefficient: w.coefficient,
                        running_requests: w.active_requests,
                        max_running_requests: w.max_active_requests,
                    })
                    .collect(),
                weights,
            });
        }
        Ok(models)
    }

    /// Whether some worker serves `model` (its base name, before any `@`).
    pub async fn has_model(&self, model: &str) -> Result<bool, ClientError> {
        let base = model.split('@').next().unwrap_or(model);
        let known = |types: &client::WorkerTypesV2| {
            types
                .types
                .iter()
                .any(|t| t.name.split('@').next() == Some(base))
        };
        if known(&*self.link.worker_types().await?) {
            return Ok(true);
        }
        // A worker may have joined since the list was fetched.
        self.link.invalidate_models();
        Ok(known(&*self.link.worker_types().await?))
    }

    /// Sends an OpenAI-style request (`path` is `/v1/chat/completions` or `/v1/completions`)
    /// and returns once the first answer arrives.
    pub async fn request(
        &self,
        path: &str,
        body: Map<String, Value>,
        options: RequestOptions,
    ) -> Result<AnswerStream, ClientError> {
        let client_start = cocoon_net::unix_time();
        let started = Instant::now();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .ok_or_else(|| ClientError::InvalidRequest("`model` must be a string".into()))?
            .to_owned();
        let max_tokens = body
            .get("max_completion_tokens")
            .or_else(|| body.get("max_tokens"))
            .and_then(Value::as_i64)
            .filter(|v| *v > 0)
            .unwrap_or(self.config.default_max_tokens);
        // The reference's own encryption, when configured: the body's strings are encrypted to
        // the receiver key, and the answer is opened with the same request's keys.
        let (body, reference) = match self.config.reference_receiver()? {
            None => (Value::Object(body), None),
            Some(receiver) => {
                // The worker is handed no token limit on this path: the body declares the one
                // the balance is held for (the scheme leaves it in clear; proxies require it).
                let mut body = body;
                if !body.contains_key("max_tokens") && !body.contains_key("max_completion_tokens") {
                    body.insert("max_tokens".into(), Value::from(max_tokens));
                }
                let mut rng = cocoon_seal::SystemRng;
                let opened = (|| {
                    let sender = cocoon_refv1::Ed25519Seed::generate(&mut rng)?;
                    let nonce: [u8; 32] = rand::random();
                    let sent = cocoon_refv1::encrypt_request(
                        Value::Object(body),
                        &sender,
                        &receiver,
                        &nonce,
                        &mut rng,
                    )?;
                    Ok::<_, cocoon_refv1::RefV1Error>((sent, sender.public()))
                })()
                .map_err(|e| ClientError::InvalidRequest(format!("cannot encrypt: {e}")))?;
                let (sent, sender) = opened;
                (sent.body, Some((sent.answers, sender)))
            }
        };
        let payload =
            serde_json::to_vec(&body).map_err(|e| ClientError::InvalidRequest(e.to_string()))?;
        let request_hash = cocoon_attest::receipt::body_hash(&payload);
        let query =
            Bytes::from(http::Request::json_post(path, Bytes::from(payload)).to_boxed_bytes());
        let outgoing = Outgoing {
            model,
            query,
            request_hash,
            max_tokens,
            audio: false,
            reference,
        };
        self.send(outgoing, options, client_start, started).await
    }

    /// Sends a transcription (`/v1/audio/transcriptions`): its form (`content_type`, `body`)
    /// is checked, its audio measured, and it goes as it came, sealed like any request,
    /// declaring the audio's units at this client's `audio_tokens_per_second` as the most it
    /// may be charged. Returns once the first answer arrives.
    ///
    /// # Errors
    /// [`ClientError::InvalidForm`] for a form or audio refused (naming the field),
    /// [`ClientError::UnknownModel`], and the errors of [`Self::request`].
    pub async fn transcribe(
        &self,
        content_type: &str,
        body: Bytes,
        options: RequestOptions,
    ) -> Result<AnswerStream, ClientError> {
        let client_start = cocoon_net::unix_time();
        let started = Instant::now();
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let (form, audio) = check_transcription(&self.config, content_type, &body)?;
        if !self.has_model(&form.model).await? {
            return Err(ClientError::UnknownModel(form.model));
        }
        if self.config.reference_receiver()?.is_some() {
            return Err(ClientError::InvalidRequest(
                "transcriptions need a COCOON proxy (reference_receiver_key is set)".into(),
            ));
        }
        let units = audio.units(self.config.audio_tokens_per_second);
        let request_hash = cocoon_attest::receipt::body_hash(&body);
        let query = http::Request {
            method: "POST".into(),
            url: cocoon_protocol::audio::TRANSCRIPTIONS_PATH.into(),
            http_version: "HTTP/1.1".into(),
            headers: vec![http::Header {
                name: "Content-Type".into(),
                value: content_type.to_owned(),
            }],
            payload: body,
        };
        let outgoing = Outgoing {
            model: form.model,
            query: Bytes::from(query.to_boxed_bytes()),
            request_hash,
            max_tokens: i64::try_from(units).unwrap_or(i64::MAX),
            audio: true,
            reference: None,
        };
        self.send(outgoing, options, client_start, started).await
    }

    /// Sends a prepared request to the proxy, sealed when it can be, and waits for its first
    /// answer.
    async fn send(
        &self,
        outgoing: Outgoing,
        options: RequestOptions,
        client_start: f64,
        started: Instant,
    ) -> Result<AnswerStream, ClientError> {
        let Outgoing {
            model,
            query,
            request_hash,
            max_tokens,
            audio,
            reference,
        } = outgoing;
        let timeout = options.timeout.unwrap_or(self.config.default_timeout);
        let deadline = started + timeout;
        let audio_flag = if audio {
            cocoon_protocol::messages::AUDIO_UNITS_FLAG
        } else {
            0
        };
        let session = self
            .link
            .session(Duration::from_secs(5).min(timeout))
            .await?;
        if audio && session.version < cocoon_protocol::version::SEALED_VERSION {
            // Only our proxies read the audio flag and bound the charge by the declared units.
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(ClientError::InvalidRequest(format!(
                "transcriptions need a proxy of protocol version {} or later (this one speaks {}), \
                 which bounds their charge by the audio's duration",
                cocoon_protocol::version::SEALED_VERSION,
                session.version
            )));
        }
        let prepared = match reference {
            // A reference proxy does not seal: the request goes in the reference's encryption.
            Some(_) => Ok(None),
            None => {
                self.sealing
                    .prepare(&self.config, &self.link, &session, &model, &query)
                    .await
            }
        };
        let sealed = match prepared {
            Ok(s) => s,
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        let sealed_model = model.clone();
        let request_id = Int256(rand::random());
        let (tx, rx) = crate::route::route_queue(self.config.answer_queue_bytes);
        let route = match &sealed {
            Some(s) => s.unsealing_route(tx, self.config.answer_queue_bytes),
            None => tx,
        };
        lock(&session.routes).insert(request_id, route);
        let guard = RouteGuard {
            session: session.clone(),
            request_id,
            finished: false,
        };
        let max_coefficient = options
            .max_coefficient
            .unwrap_or(self.config.default_max_coefficient);
        let max_tokens = i32::try_from(max_tokens).unwrap_or(i32::MAX);
        // Our extension of the flags word: only our proxies (version 3 and later) know it, so a
        // reference proxy never meets bits it has no meaning for.
        let preference = options
            .preference
            .or(self.config.worker_preference)
            .filter(|_| session.version >= cocoon_protocol::version::SEALED_VERSION)
            .map_or(0, cocoon_market::Preference::to_query_flags);
        let msg = match &sealed {
            Some(s) => s.message(
                model,
                max_coefficient,
                max_tokens,
                timeout.as_secs_f64(),
                request_id,
                crate::sealed::QueryFlags {
                    enable_debug: options.enable_debug,
                    preference: preference | audio_flag,
                },
            ),
            None => client::RunQueryEx {
                model_name: model,
                query,
                max_coefficient,
                max_tokens,
                timeout: timeout.as_secs_f64(),
                request_id,
                min_config_version: 0,
                flags: 1 | preference | audio_flag,
                enable_debug: Some(options.enable_debug),
                public_key: reference.as_ref().map(|(_, sender)| Int256(sender.0)),
            }
            .to_boxed_bytes(),
        };
        session
            .conn
            .send_packet(Bytes::from(msg))
            .await
            .map_err(|e| ClientError::ProxyUnavailable(e.to_string()))?;

        let mut stream = AnswerStream {
            status: 0,
            headers: Vec::new(),
            rx,
            guard,
            pending: None,
            started,
            deadline,
            timeout,
            cost: None,
            final_info: None,
            payment_tokens: None,
            stashed: None,
            done: false,
            times: HopTimes {
                client_start,
                ..HopTimes::default()
            },
            pricing: self.config.pricing,
            counters: self.counters.clone(),
            receipt: None,
            checked_receipt: std::sync::OnceLock::new(),
            request_hash,
            client_request_id: request_id.0,
            envelope_hash: sealed
                .as_ref()
                .map(crate::sealed::SealedQuery::envelope_hash),
            answer_hash: Sha256::new(),
            workers: self.link.workers.clone(),
            clock: self.link.config.attestation.clock.clone(),
            pinned_weights: self.config.pinned_weights_for(&sealed_model)?,
            sealed: sealed.is_some(),
            reference: reference.map(|(cipher, _)| ReferenceAnswer {
                cipher,
                decryptor: None,
            }),
        };
        let first = loop {
            match stream.recv().await {
                Ok(ProxyEvent::Cost(c)) => stream.cost = Some(c),
                Ok(ProxyEvent::Receipt(r)) => stream.receipt = Some(r),
                Ok(ProxyEvent::Payment { request_tokens }) => {
                    stream.payment_tokens = Some(request_tokens)
                }
                other => break other,
            }
        };
        match first {
            Ok(ProxyEvent::Answer { answer, final_info }) => {
                let (head, rest) = cocoon_protocol::http::split_response(&answer).map_err(|e| {
                    ClientError::Interrupted(format!("bad response head from the worker: {e}"))
                })?;
                stream.status = u16::try_from(head.status_code).unwrap_or(502);
                stream.headers = head
                    .headers
                    .iter()
                    .map(|h| (h.name.clone(), h.value.clone()))
                    .collect();
                if let Some(reference) = &mut stream.reference {
                    let content_type = stream
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                        .map(|(_, v)| v.as_str());
                    reference.decryptor = Some(cocoon_refv1::AnswerDecryptor::new(
                        reference.cipher.clone(),
                        cocoon_refv1::AnswerFraming::from_content_type(content_type),
                    ));
                }
                let mut first_bytes = BytesMut::from(&head.payload[..]);
                first_bytes.extend_from_slice(&rest);
                stream.pending = Some(first_bytes.freeze());
                if final_info.is_some() {
                    stream.finish(final_info);
                }
                Ok(stream)
            }
            Ok(ProxyEvent::Error { code, message, .. }) => {
                stream.guard.finished = true;
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                if stream.sealed {
                    // The candidates may be gone: ask the proxy again next time.
                    self.sealing.invalidate(&sealed_model);
                }
                Err(ClientError::Remote { code, message })
            }
            Ok(_) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(ClientError::Interrupted(
                    "unexpected message before the first answer".into(),
                ))
            }
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Runs a chat completion and returns the whole answer.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatAnswer, ClientError> {
        let mut body = Map::new();
        body.insert("model".into(), Value::String(request.model));
        body.insert(
            "messages".into(),
            serde_json::to_value(&request.messages)
                .map_err(|e| ClientError::InvalidRequest(e.to_string()))?,
        );
        if let Some(m) = request.max_tokens {
            body.insert("max_tokens".into(), Value::from(m));
        }
        if let Some(t) = request.temperature {
            body.insert("temperature".into(), Value::from(t));
        }
        if let Some(s) = request.seed {
            body.insert("seed".into(), Value::from(s));
        }
        let mut stream = self
            .request("/v1/chat/completions", body, request.options)
            .await?;
        let status = stream.status;
        let body = stream.collect_body().await?;
        let json: Value = serde_json::from_slice(&body)
            .map_err(|e| ClientError::Interrupted(format!("answer is not JSON: {e}")))?;
        if status >= 400 {
            let message = json
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("worker error")
                .to_owned();
            return Err(ClientError::Remote {
                code: i32::from(status),
                message,
            });
        }
        let content = json
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(ChatAnswer {
            content,
            usage: stream.usage(),
            times: stream.times,
            raw: json,
            receipt: stream.receipt(),
        })
    }
}

/// A chat message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role` and `content`.
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A chat completion request for [`Client::chat`].
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<ChatMessage>,
    /// Longest answer in tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature (0 = greedy).
    pub temperature: Option<f64>,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Price, time and debug options.
    pub options: RequestOptions,
}

/// A finished chat completion.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    /// The assistant's text.
    pub content: String,
    /// Tokens and cost.
    pub usage: CostedUsage,
    /// Hop times.
    pub times: HopTimes,
    /// The whole OpenAI JSON answer.
    pub raw: Value,
    /// The worker's signed receipt, when it sent one.
    pub receipt: Option<AnswerReceipt>,
}

/// Removes a request's route when its stream goes away, cancelling it if unfinished.
struct RouteGuard {
    session: Arc<Session>,
    request_id: Int256,
    finished: bool,
}

impl Drop for RouteGuard {
    fn drop(&mut self) {
        lock(&self.session.routes).remove(&self.request_id);
        if !self.finished && self.session.version >= cocoon_protocol::version::SEALED_VERSION {
            let conn = self.session.conn.clone();
            let msg = ext::CancelQuery {
                request_id: self.request_id,
            };
            tokio::spawn(async move {
                let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
            });
        }
    }
}

/// An answer arriving from the network.
pub struct AnswerStream {
    /// HTTP status the engine answered with.
    pub status: u16,
    /// Response headers from the engine.
    pub headers: Vec<(String, String)>,
    rx: crate::route::RouteReceiver,
    guard: RouteGuard,
    pending: Option<Bytes>,
    /// When this client took the request, for the time it adds.
    started: Instant,
    deadline: Instant,
    timeout: Duration,
    cost: Option<ext::QueryCost>,
    final_info: Option<client::QueryFinalInfo>,
    payment_tokens: Option<i64>,
    stashed: Option<ProxyEvent>,
    done: bool,
    /// Hop times, complete once the stream has ended.
    pub times: HopTimes,
    pricing: cocoon_market::PricingParams,
    counters: Arc<ClientCounters>,
    receipt: Option<Bytes>,
    /// The receipt's check, done once (and counted once) when first asked for.
    checked_receipt: std::sync::OnceLock<Option<AnswerReceipt>>,
    /// SHA-256 of the request body sent, as the worker's receipt must name it.
    request_hash: [u8; 32],
    /// This client's id of the request, as the worker's receipt must name it.
    client_request_id: [u8; 32],
    /// SHA-256 of the sealed envelope sent, for a sealed request.
    envelope_hash: Option<[u8; 32]>,
    /// SHA-256 over the answer body as the worker sent it, before any rewriting here.
    answer_hash: Sha256,
    /// The policy and evidence cache that workers' receipts are checked with.
    workers: Arc<cocoon_attest::RaTlsVerifier>,
    /// The time receipts are judged at.
    clock: cocoon_node::AttestationClock,
    /// The weights pinned for the model, which the receipt must name.
    pinned_weights: Option<[u8; 32]>,
    /// Whether the request went sealed (proxy-blind) rather than readable by the proxy.
    pub sealed: bool,
    /// For a request in the reference's encryption: what opens its answer.
    reference: Option<ReferenceAnswer>,
}

/// Opening the answer of a request sent in the reference's encryption.
struct ReferenceAnswer {
    cipher: cocoon_refv1::AnswerCipher,
    /// Made once the head tells the framing.
    decryptor: Option<cocoon_refv1::AnswerDecryptor>,
}

/// What a receipt must name for the answer it comes with.
pub(crate) struct ExpectedReceipt<'a> {
    /// This client's request id.
    pub(crate) client_request_id: &'a [u8; 32],
    /// SHA-256 of the sealed envelope sent; `None` for a request in clear.
    pub(crate) envelope_hash: Option<&'a [u8; 32]>,
    /// SHA-256 of the request body sent.
    pub(crate) request_hash: &'a [u8; 32],
    /// SHA-256 of the answer body received.
    pub(crate) answer_hash: &'a [u8; 32],
    /// The weights pinned for the model (`pinned_weights`), which the receipt must name.
    pub(crate) weights: Option<[u8; 32]>,
}

/// Oldest receipt accepted with an answer: a worker signs it just before its last part.
const RECEIPT_MAX_AGE_SECS: u64 = 300;

/// A request ready for the proxy.
struct Outgoing {
    model: String,
    /// The boxed `http.request`.
    query: Bytes,
    /// SHA-256 of its body, which the receipt names.
    request_hash: [u8; 32],
    /// The token limit declared (a transcription's audio units).
    max_tokens: i64,
    /// Whether it is a transcription whose `max_tokens` are its audio's units.
    audio: bool,
    /// The reference's encryption of the answer, when the request went in it.
    reference: Option<(cocoon_refv1::AnswerCipher, cocoon_refv1::Ed25519Public)>,
}

/// Checks a transcription form under the client's limits and measures its audio; refusals
/// name the field at fault.
pub(crate) fn check_transcription(
    config: &ClientConfig,
    content_type: &str,
    body: &Bytes,
) -> Result<(TranscriptionForm, WavAudio), ClientError> {
    let limits = FormLimits {
        max_file_bytes: config.max_audio_bytes,
    };
    let form =
        TranscriptionForm::parse(content_type, body, limits).map_err(ClientError::InvalidForm)?;
    let audio = WavAudio::parse(&form.file.data).map_err(ClientError::InvalidForm)?;
    Ok((form, audio))
}

/// Verifies a receipt under `workers`' policy, at this client's time `now` (unix seconds) and
/// no older than [`RECEIPT_MAX_AGE_SECS`], and checks that it names exactly the request and
/// answer `expected` describes.
pub(crate) fn check_receipt(
    encoded: &[u8],
    workers: &cocoon_attest::RaTlsVerifier,
    expected: &ExpectedReceipt<'_>,
    now: u64,
) -> Result<(), ClientError> {
    let verified = cocoon_attest::Receipt::from_bytes(encoded)
        .and_then(|r| {
            r.verify_live(
                &workers.policy(),
                workers.evidence_verifier(),
                now,
                RECEIPT_MAX_AGE_SECS,
            )
        })
        .map_err(|e| ClientError::ReceiptInvalid(e.to_string()))?;
    let claims = &verified.claims;
    if &claims.client_request_id != expected.client_request_id {
        return Err(ClientError::ReceiptForAnotherRequest("request id"));
    }
    if claims.envelope_hash.as_ref() != expected.envelope_hash {
        return Err(ClientError::ReceiptForAnotherRequest("sealed envelope"));
    }
    if &claims.request_hash != expected.request_hash {
        return Err(ClientError::ReceiptForAnotherRequest("request body"));
    }
    if &claims.answer_hash != expected.answer_hash {
        return Err(ClientError::ReceiptForAnotherRequest("answer"));
    }
    if expected.weights.is_some_and(|w| w != claims.model_hash) {
        return Err(ClientError::ReceiptForAnotherRequest("model weights"));
    }
    Ok(())
}

/// The worker's signed receipt for an answer, and whether it checked out.
#[derive(Debug, Clone)]
pub struct AnswerReceipt {
    /// The receipt bytes (`cocoon_attest::Receipt`); `cocoon-client verify-receipt` checks
    /// them again offline.
    pub encoded: Bytes,
    /// `Ok` when the receipt's certificate satisfied this client's attestation policy, its
    /// signature verified, and it names exactly the request sent (its id, its sealed envelope,
    /// its body) and the answer received; otherwise [`ClientError::ReceiptInvalid`] or
    /// [`ClientError::ReceiptForAnotherRequest`]. A refused receipt is logged and counted in
    /// the client's stats, and the answer is marked as having no valid receipt.
    pub verified: Result<(), ClientError>,
    /// This client's id of the request, which a valid receipt names
    /// (`cocoon-client verify-receipt --request-id`).
    pub request_id: [u8; 32],
    /// SHA-256 of the sealed envelope sent, which a valid receipt names; `None` for a request
    /// sent in clear (`cocoon-client verify-receipt --envelope-sha256`).
    pub envelope_sha256: Option<[u8; 32]>,
}

impl std::fmt::Debug for AnswerStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnswerStream")
            .field("status", &self.status)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Drop for AnswerStream {
    fn drop(&mut self) {
        if !self.done {
            self.counters.cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl AnswerStream {
    async fn recv(&mut self) -> Result<ProxyEvent, ClientError> {
        if let Some(e) = self.stashed.take() {
            return Ok(e);
        }
        match tokio::time::timeout_at(self.deadline.into(), self.rx.recv()).await {
            Ok(Some(ProxyEvent::Lost)) | Ok(None) => Err(ClientError::Interrupted(
                "the proxy connection was lost".into(),
            )),
            Ok(Some(e)) => Ok(e),
            Err(_) => Err(ClientError::Timeout(self.timeout)),
        }
    }

    fn finish(&mut self, final_info: Option<client::QueryFinalInfo>) {
        self.done = true;
        self.guard.finished = true;
        if let Some(fi) = &final_info {
            self.times.proxy_start = fi.proxy_start_time;
            self.times.proxy_end = fi.proxy_end_time;
            self.times.worker_start = fi.worker_start_time;
            self.times.worker_end = fi.worker_end_time;
        }
        self.times.client_end = cocoon_net::unix_time();
        // What this client added: its time on the request less the proxy's, as the proxy
        // reported it (left out when it reported no times, at protocol version 1).
        if let (Some(start), Some(end)) = (self.times.proxy_start, self.times.proxy_end) {
            let proxy = cocoon_node::histogram::reported_span(start, end);
            self.counters
                .overhead
                .observe(self.started.elapsed().saturating_sub(proxy));
        }
        self.final_info = final_info;
        let usage = self.usage();
        self.counters.succeeded.fetch_add(1, Ordering::Relaxed);
        self.counters.tokens.fetch_add(
            u64::try_from(usage.total_tokens).unwrap_or(0),
            Ordering::Relaxed,
        );
        self.counters.spent_nanoton.fetch_add(
            u64::try_from(usage.total_cost).unwrap_or(0),
            Ordering::Relaxed,
        );
    }

    /// Whether the whole answer has arrived.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The next body chunk; `Ok(None)` once the answer is complete (usage is then final).
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        loop {
            let chunk = self.next_raw_chunk().await?;
            if let Some(c) = &chunk {
                self.answer_hash.update(c);
            }
            let Some(decryptor) = self.reference.as_mut().and_then(|r| r.decryptor.as_mut()) else {
                return Ok(chunk);
            };
            let opened = |e: cocoon_refv1::RefV1Error| {
                ClientError::Interrupted(format!("cannot open the encrypted answer: {e}"))
            };
            match chunk {
                Some(c) => {
                    let plain = decryptor.push(&c).map_err(opened)?;
                    if !plain.is_empty() {
                        return Ok(Some(Bytes::from(plain)));
                    }
                }
                None => {
                    let plain = decryptor.finish().map_err(opened)?;
                    self.reference = None;
                    return Ok((!plain.is_empty()).then(|| Bytes::from(plain)));
                }
            }
        }
    }

    /// The worker's receipt, once the answer is complete and when the worker sent one
    /// (version-3 workers and proxies), with this client's check of it.
    pub fn receipt(&self) -> Option<AnswerReceipt> {
        if !self.done {
            return None;
        }
        self.checked_receipt
            .get_or_init(|| {
                let encoded = self.receipt.clone()?;
                let answer_hash: [u8; 32] = self.answer_hash.clone().finalize().into();
                let expected = ExpectedReceipt {
                    client_request_id: &self.client_request_id,
                    envelope_hash: self.envelope_hash.as_ref(),
                    request_hash: &self.request_hash,
                    answer_hash: &answer_hash,
                    weights: self.pinned_weights,
                };
                let verified =
                    check_receipt(&encoded, &self.workers, &expected, self.clock.now_unix());
                if verified.is_ok() {
                    self.counters
                        .receipts_verified
                        .fetch_add(1, Ordering::Relaxed);
                }
                if let Err(e) = &verified {
                    self.counters
                        .receipts_refused
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        request_id = %hex::encode(self.client_request_id),
                        "refusing the worker's receipt: {e}"
                    );
                }
                Some(AnswerReceipt {
                    encoded,
                    verified,
                    request_id: self.client_request_id,
                    envelope_sha256: self.envelope_hash,
                })
            })
            .clone()
    }

    async fn next_raw_chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        if let Some(p) = self.pending.take()
            && !p.is_empty()
        {
            return Ok(Some(p));
        }
        loop {
            if self.done {
                return Ok(None);
            }
            let event = match self.recv().await {
                Ok(e) => e,
                Err(e) => {
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(e);
                }
            };
            match event {
                ProxyEvent::Part { answer, final_info } => {
                    if final_info.is_some() {
                        self.finish(final_info);
                        if !answer.is_empty() {
                            return Ok(Some(answer));
                        }
                        continue;
                    }
                    let answer = self.gather(answer);
                    if !answer.is_empty() {
                        return Ok(Some(answer));
                    }
                }
                ProxyEvent::Cost(c) => self.cost = Some(c),
                ProxyEvent::Receipt(r) => self.receipt = Some(r),
                ProxyEvent::Payment { request_tokens } => {
                    self.payment_tokens = Some(request_tokens)
                }
                ProxyEvent::Error {
                    code,
                    message,
                    final_info,
                } => {
                    self.guard.finished = true;
                    self.done = true;
                    self.final_info = final_info;
                    self.counters.failed.fetch_add(1, Ordering::Relaxed);
                    return Err(ClientError::Remote { code, message });
                }
                ProxyEvent::Answer { .. } => {
                    return Err(ClientError::Interrupted(
                        "a second first answer arrived".into(),
                    ));
                }
                ProxyEvent::Lost => {
                    return Err(ClientError::Interrupted(
                        "the proxy connection was lost".into(),
                    ));
                }
            }
        }
    }

    /// Joins the parts already queued behind `answer` (never waits), so a burst reaches the
    /// caller as one write. Other events met on the way are handled in place.
    fn gather(&mut self, answer: Bytes) -> Bytes {
        let mut joined: Option<BytesMut> = None;
        while joined.as_ref().map_or(answer.len(), |j| j.len()) < 256 * 1024 {
            match self.rx.try_recv() {
                Some(ProxyEvent::Part {
                    answer: more,
                    final_info,
                }) => {
                    joined
                        .get_or_insert_with(|| BytesMut::from(&answer[..]))
                        .extend_from_slice(&more);
                    if final_info.is_some() {
                        self.finish(final_info);
                        break;
                    }
                }
                Some(ProxyEvent::Cost(c)) => self.cost = Some(c),
                Some(ProxyEvent::Receipt(r)) => self.receipt = Some(r),
                Some(ProxyEvent::Payment { request_tokens }) => {
                    self.payment_tokens = Some(request_tokens)
                }
                Some(other) => {
                    self.stashed = Some(other);
                    break;
                }
                None => break,
            }
        }
        joined.map_or(answer, BytesMut::freeze)
    }

    /// Reads the rest of the body into one buffer.
    pub async fn collect_body(&mut self) -> Result<Bytes, ClientError> {
        let mut out = BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    /// Token usage and cost as far as known (final once the stream is done).
    pub fn usage(&self) -> CostedUsage {
        let Some(fi) = &self.final_info else {
            return CostedUsage::default();
        };
        let t = &fi.tokens_used;
        let mut u = CostedUsage {
            prompt_tokens: t.prompt_tokens_used,
            cached_tokens: t.cached_tokens_used,
            completion_tokens: t.completion_tokens_used,
            reasoning_tokens: t.reasoning_tokens_used,
            total_tokens: t.total_tokens_used,
            ..CostedUsage::default()
        };
        if let Some(c) = &self.cost {
            u.prompt_total_cost = c.prompt_cost;
            u.completion_total_cost = c.completion_cost;
            u.total_cost = c.total_cost;
        } else {
            // A reference proxy does not report the cost: price the metered tokens at the
            // network's prices and the worker's coefficient, if the payment notice told it.
            let counts = TokenCounts {
                prompt: u64::try_from(t.prompt_tokens_used).unwrap_or(0),
                cached: u64::try_from(t.cached_tokens_used).unwrap_or(0),
                completion: u64::try_from(t.completion_tokens_used).unwrap_or(0),
                reasoning: u64::try_from(t.reasoning_tokens_used).unwrap_or(0),
            };
            if let Ok(one) = Coefficient::new(1000)
                && let Ok(charge) = self.pricing.charge(&counts, one)
            {
                let costs = charge.usage_costs();
                let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                u.prompt_total_cost = i(costs.prompt_total_cost);
                u.completion_total_cost = i(costs.completion_total_cost);
                u.total_cost = i(costs.total_cost);
                if let Some(tokens) = self.payment_tokens {
                    u.total_cost = tokens
                        .saturating_mul(i64::try_from(self.pricing.price_per_token).unwrap_or(0));
                }
            }
        }
        u
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::sync::Arc;

    use cocoon_attest::ratls::{CertificateIssuer, RaTlsVerifier, TlsKeyPair};
    use cocoon_attest::receipt::body_hash;
    use cocoon_attest::{EvidenceVerifier, Policy, Receipt, ReceiptClaims, SimulatedAttester};

    use super::*;

    /// A simulated worker's receipt for request `id` (sealed when `envelope` is given).
    fn receipt(id: [u8; 32], envelope: Option<[u8; 32]>) -> Vec<u8> {
        let issuer = CertificateIssuer::new(
            TlsKeyPair::from_seed(&[5; 32]).unwrap(),
            Arc::new(SimulatedAttester::new()),
        );
        let now = cocoon_net::unix_time() as u64;
        let issued = issuer.issue(now).unwrap();
        let image = SimulatedAttester::new().measurements().image_hash();
        let claims = ReceiptClaims {
            client_request_id: id,
            envelope_hash: envelope,
            request_hash: body_hash(b"same prompt"),
            answer_hash: body_hash(b"same answer"),
            model: "m".into(),
            model_hash: cocoon_attest::receipt::body_hash(b"weights"),
            prompt_tokens: 3,
            cached_tokens: 0,
            completion_tokens: 5,
            reasoning_tokens: 0,
            worker_image_hash: *image.as_bytes(),
            issued_at: now,
        };
        Receipt::sign(claims, issuer.key(), issued.der.to_vec())
            .unwrap()
            .to_bytes()
    }

    fn workers() -> RaTlsVerifier {
        RaTlsVerifier::new(
            Policy::local_simulated(),
            Arc::new(EvidenceVerifier::default()),
        )
    }

    fn check(
        encoded: &[u8],
        id: &[u8; 32],
        envelope: Option<&[u8; 32]>,
    ) -> Result<(), ClientError> {
        let expected = ExpectedReceipt {
            client_request_id: id,
            envelope_hash: envelope,
            request_hash: &body_hash(b"same prompt"),
            answer_hash: &body_hash(b"same answer"),
            weights: None,
        };
        check_receipt(
            encoded,
            &workers(),
            &expected,
            cocoon_net::unix_time() as u64,
        )
    }

    #[test]
    fn a_receipt_for_this_request_is_accepted() {
        let envelope = body_hash(b"envelope A");
        check(
            &receipt([0xA; 32], Some(envelope)),
            &[0xA; 32],
            Some(&envelope),
        )
        .unwrap();
        check(&receipt([0xA; 32], None), &[0xA; 32], None).unwrap();
    }

    #[test]
    fn a_receipt_of_request_a_is_refused_for_request_b() {
        // Same body, same answer, same worker: only the request differs.
        let envelope_a = body_hash(b"envelope A");
        let envelope_b = body_hash(b"envelope B");
        let of_a = receipt([0xA; 32], Some(envelope_a));
        assert_eq!(
            check(&of_a, &[0xB; 32], Some(&envelope_a)),
            Err(ClientError::ReceiptForAnotherRequest("request id"))
        );
        assert_eq!(
            check(&of_a, &[0xA; 32], Some(&envelope_b)),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
        // A receipt for a request in clear does not cover a sealed one, nor the reverse.
        assert_eq!(
            check(&receipt([0xA; 32], None), &[0xA; 32], Some(&envelope_a)),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
        assert_eq!(
            check(&of_a, &[0xA; 32], None),
            Err(ClientError::ReceiptForAnotherRequest("sealed envelope"))
        );
    }

    #[test]
    fn another_body_or_answer_is_refused() {
        let encoded = receipt([0xA; 32], None);
        let expected = ExpectedReceipt {
            client_request_id: &[0xA; 32],
            envelope_hash: None,
            request_hash: &body_hash(b"another prompt"),
            answer_hash: &body_hash(b"same answer"),
            weights: None,
        };
        assert_eq!(
            check_receipt(
                &encoded,
                &workers(),
                &expected,
                cocoon_net::unix_time() as u64
            ),
            Err(ClientError::ReceiptForAnotherRequest("request body"))
        );
        let expected = ExpectedReceipt {
            request_hash: &body_hash(b"same prompt"),
            answer_hash: &body_hash(b"another answer"),
            ..expected
        };
        assert_eq!(
            check_receipt(
                &encoded,
                &workers(),
                &expected,
                cocoon_net::unix_time() as u64
            ),
            Err(ClientError::ReceiptForAnotherRequest("answer"))
        );
        // Weights pinned for the model: a receipt naming others is refused, the same accepted.
        let expected = ExpectedReceipt {
            answer_hash: &body_hash(b"same answer"),
            request_hash: &body_hash(b"same prompt"),
            ..expected
        };
        let now = cocoon_net::unix_time() as u64;
        assert_eq!(check_receipt(&encoded, &workers(), &expected, now), Ok(()));
        let named = ExpectedReceipt {
            weights: Some(body_hash(b"weights")),
            ..expected
        };
        let other = ExpectedReceipt {
            weights: Some(body_hash(b"other weights")),
            ..expected
        };
        assert_eq!(check_receipt(&encoded, &workers(), &named, now), Ok(()));
        assert_eq!(
            check_receipt(&encoded, &workers(), &other, now),
            Err(ClientError::ReceiptForAnotherRequest("model weights"))
        );
    }

    #[test]
    fn a_tampered_request_id_is_refused() {
        let mut encoded = receipt([0xA; 32], None);
        // The request id follows the magic and the version; rewrite it to this request's.
        encoded[5..37].copy_from_slice(&[0xB; 32]);
        assert!(matches!(
            check(&encoded, &[0xB; 32], None),
            Err(ClientError::ReceiptInvalid(_))
        ));
        assert!(matches!(
            check(b"CRCP\x01not a receipt", &[0xB; 32], None),
            Err(ClientError::ReceiptInvalid(_))
        ));
    }
}
