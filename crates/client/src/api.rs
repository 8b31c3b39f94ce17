//! The client as a library: send OpenAI-style requests through the proxy without HTTP.
//!
//! [`Client::request`] returns an [`AnswerStream`] once the first answer arrives: the response
//! head, then body chunks, then usage and cost. Dropping the stream before its end cancels the
//! request at the proxy and the worker. [`Client::chat`] is the one-call convenience.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_protocol::audio::{FormLimits, TranscriptionForm, WavAudio};
use cocoon_protocol::messages::{client, http};
use cocoon_protocol::model_name::{ModelName, base_name};
use cocoon_protocol::tl::{Int256, TlConstructor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::{ClientConfig, ClientError};
use crate::link::{ProxyLink, lock};
use crate::stream::machine::{AnswerMachine, Ask, ReceiptBinding};
pub use crate::stream::{AnswerReceipt, AnswerStream};
use crate::stream::{RouteGuard, Wiring};

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
        let base = base_name(model);
        let known =
            |types: &client::WorkerTypesV2| types.types.iter().any(|t| base_name(&t.name) == base);
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
            .ok_or_else(|| ClientError::InvalidRequest("`model` must be a string".into()))?;
        let model = ModelName::parse(model)
            .map_err(|e| ClientError::InvalidRequest(format!("`model`: {e}")))?;
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
        let model = ModelName::parse(&form.model)
            .map_err(|e| ClientError::InvalidRequest(format!("`model`: {e}")))?;
        if !self.has_model(model.as_str()).await? {
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
            model,
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
        if let Some(overcharge) = self.link.charges.overcharge() {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(ClientError::ProxyOvercharged(overcharge));
        }
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
                    .prepare(&self.config, &self.link, &session, model.as_str(), &query)
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
        let pinned_weights = match self.config.pinned_weights_for(sealed_model.as_str()) {
            Ok(w) => w,
            Err(e) => {
                self.counters.failed.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
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
        };
        let max_coefficient = options
            .max_coefficient
            .unwrap_or(self.config.default_max_coefficient);
        if max_coefficient <= 0 {
            self.counters.failed.fetch_add(1, Ordering::Relaxed);
            return Err(ClientError::InvalidRequest(
                "`max_coefficient` must be a positive integer".into(),
            ));
        }
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
                model.into_string(),
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
                model_name: model.into_string(),
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
        // The most the proxy may charge the request when it ends without its usage: what it
        // reserves, with every byte sent counted as a prompt token (the proxy counts fewer).
        let pricing = session.audit_pricing.unwrap_or(self.config.pricing);
        let audited = session.audit_pricing.is_some();
        let max_charge = cocoon_market::Coefficient::try_from(max_coefficient)
            .and_then(|c| {
                cocoon_market::reservation::required_tokens(
                    &pricing,
                    c,
                    u64::try_from(max_tokens).unwrap_or(0),
                    msg.len() as u64,
                )
            })
            .unwrap_or(u64::MAX);
        if audited {
            // Before the request leaves: a charge for it may come back at once.
            self.link.charges.sent(
                request_id.0,
                cocoon_market::audit::Bound {
                    tokens: max_charge,
                    basis: cocoon_market::audit::Basis::Reserved,
                },
            );
        }
        if let Err(e) = session.conn.send_packet(Bytes::from(msg)).await {
            if audited {
                // Never sent: nothing may be charged for it.
                self.link.charges.expect(
                    request_id.0,
                    cocoon_market::audit::Bound {
                        tokens: 0,
                        basis: cocoon_market::audit::Basis::NotSent,
                    },
                );
            }
            return Err(ClientError::ProxyUnavailable(e.to_string()));
        }

        let machine = AnswerMachine::new(Ask {
            started,
            timeout,
            sealed: sealed.is_some(),
            pricing,
            max_coefficient: cocoon_market::Coefficient::try_from(max_coefficient)
                .unwrap_or(cocoon_market::Coefficient::MAX),
            max_charge,
            binding: ReceiptBinding {
                client_request_id: request_id.0,
                envelope_hash: sealed
                    .as_ref()
                    .map(crate::sealed::SealedQuery::envelope_hash),
                request_hash,
                weights: pinned_weights,
            },
            reference: reference.map(|(cipher, _)| cipher),
        });
        let wiring = Wiring {
            rx,
            guard,
            counters: self.counters.clone(),
            workers: self.link.workers.clone(),
            clock: self.link.config.attestation.clock.clone(),
            sealing: sealed
                .is_some()
                .then(|| (self.sealing.clone(), sealed_model.into_string())),
            max_answer_bytes: self.config.max_answer_bytes,
            charges: audited.then(|| self.link.charges.clone()),
        };
        let times = HopTimes {
            client_start,
            ..HopTimes::default()
        };
        AnswerStream::open(machine, wiring, sealed.is_some(), times).await
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
                param: json
                    .pointer("/error/param")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
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

/// A request ready for the proxy.
struct Outgoing {
    model: ModelName,
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
