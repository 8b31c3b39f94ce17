//! The rogue worker's I/O: one connection to the proxy at a time (redialled when it drops),
//! the worker handshake, and one task per request that sends the frames [`AnswerPlan`] cut,
//! misbehaving where the configuration says so.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cocoon_attest::ratls::ClaimsFormat;
use cocoon_net::{Connection, ConnectionConfig, Inbound, TlsEndpoint};
use cocoon_node::AttestationConfig;
use cocoon_protocol::Message;
use cocoon_protocol::messages::{TokensUsed, ext, http, proxy, worker};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::answer::{AnswerPlan, ChatView, Refusal, TokenCounts};
use super::receipt::{Served, sign_receipt};
use super::record::{Records, RequestKind, RequestOutcome, RequestRecord};
use super::{RogueConfig, UsageReport};
use crate::TestkitError;

/// Highest proof-of-work difficulty the worker solves (the real worker's default).
const MAX_POW_DIFFICULTY: i32 = 24;
/// How often the worker asks for its payment status, as a real worker does.
const PAYMENT_STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// Pause before redialling, doubled up to [`REDIAL_MAX`].
const REDIAL_MIN: Duration = Duration::from_millis(200);
const REDIAL_MAX: Duration = Duration::from_secs(5);

/// A running rogue worker.
pub struct RogueWorker {
    config: RogueConfig,
    tls: TlsEndpoint,
    records: Arc<Records>,
    /// The `created` time of every answer (fixed, so answers repeat byte for byte).
    created: u64,
    active: AtomicU32,
    in_flight: Mutex<HashMap<Int256, CancellationToken>>,
    /// The first receipt signed, for `replay_receipt`.
    first_receipt: Mutex<Option<Bytes>>,
    finished: mpsc::UnboundedSender<RequestRecord>,
}

impl std::fmt::Debug for RogueWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RogueWorker")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// One request as it came from the proxy.
struct Incoming {
    kind: RequestKind,
    request_id: Int256,
    client_request_id: Option<Int256>,
    token_limit: Option<i64>,
    /// The `http.request` in clear; `None` for a sealed request.
    query: Option<Bytes>,
    /// The coefficient the proxy offered, which receipts sign.
    coefficient: i64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RogueWorker {
    /// Makes the worker's SIMULATED RA-TLS identity; answers the worker and the stream of the
    /// records of requests as they end.
    ///
    /// # Errors
    /// [`TestkitError::Identity`] when the identity cannot be made.
    pub fn new(
        config: RogueConfig,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<RequestRecord>), TestkitError> {
        let attestation = AttestationConfig::local_simulated();
        let format = if config.announce_unusable_sealing_key {
            ClaimsFormat::V1 {
                sealing_public_key: Some(cocoon_attest::digest::Digest32::from(rand::random::<
                    [u8; 32],
                >(
                ))),
                gpu_evidence_digest: None,
                model_hash: None,
            }
        } else {
            ClaimsFormat::Reference
        };
        let identity = attestation
            .identity(format)
            .map_err(TestkitError::Identity)?;
        let tls = attestation
            .endpoint(identity)
            .map_err(TestkitError::Identity)?;
        let (finished, records_out) = mpsc::unbounded_channel();
        let worker = Arc::new(Self {
            records: Arc::new(Records::new(&config.model)),
            created: cocoon_net::unix_time() as u64,
            config,
            tls,
            active: AtomicU32::new(0),
            in_flight: Mutex::new(HashMap::new()),
            first_receipt: Mutex::new(None),
            finished,
        });
        Ok((worker, records_out))
    }

    /// The records, shared with the stats endpoint.
    #[must_use]
    pub fn records(&self) -> Arc<Records> {
        self.records.clone()
    }

    /// Serves the proxy until `stop`, redialling whenever the connection drops.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut delay = REDIAL_MIN;
        loop {
            let (ended, served) = tokio::select! {
                r = self.session() => r,
                () = stop.cancelled() => return,
            };
            self.records.update(|s| s.connected = false);
            tracing::warn!(proxy = %self.config.proxy, "proxy session ended: {ended}");
            if served {
                delay = REDIAL_MIN;
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stop.cancelled() => return,
            }
            delay = (delay * 2).min(REDIAL_MAX);
        }
    }

    /// Runs one session; answers why it ended and whether the handshake went through.
    async fn session(self: &Arc<Self>) -> (TestkitError, bool) {
        let proxy = &self.config.proxy;
        let dialled = cocoon_net::dial(
            proxy,
            MAX_POW_DIFFICULTY,
            &self.tls,
            ConnectionConfig::dialer(),
        )
        .await;
        let secured = match dialled {
            Ok(s) => s,
            Err(source) => {
                let what = "connect";
                return (TestkitError::Proxy { what, source }, false);
            }
        };
        let (conn, mut incoming) = (secured.conn, secured.incoming);
        let version = match self.handshake(&conn).await {
            Ok(v) => v,
            Err(e) => {
                conn.close();
                return (e, false);
            }
        };
        tracing::info!(%proxy, version, "connected to proxy");
        self.records.update(|s| {
            s.connected = true;
            s.sessions += 1;
            s.protocol_version = Some(version);
        });
        if version >= cocoon_protocol::version::SEALED_VERSION
            && self.config.announce_unusable_sealing_key
        {
            let certificate = self.tls.identity().certificate();
            let msg = ext::WorkerAttestation {
                certificate: Bytes::from(certificate.der.as_ref().to_vec()),
            };
            send(&conn, msg.to_boxed_bytes()).await;
        }
        let poller = tokio::spawn(poll_payment_status(self.records.clone(), conn.clone()));
        while let Some(item) = incoming.recv().await {
            match item {
                Inbound::Packet(data) => self.handle_packet(&conn, version, data),
                Inbound::Query(q) => {
                    let _ = q.fail(400, "workers answer no queries").await;
                }
            }
        }
        poller.abort();
        let reason = conn.close_reason().unwrap_or_else(|| "closed".into());
        (TestkitError::ProxyClosed { reason }, true)
    }

    async fn handshake(&self, conn: &Connection) -> Result<i32, TestkitError> {
        let c = &self.config;
        let params = worker::Params {
            flags: 0b11,
            worker_owner_address: c.owner.clone(),
            model: c.model.clone(),
            coefficient: c.coefficient,
            is_test: Some(true),
            proxy_cnt: Some(1),
            max_active_requests: Some(i32::try_from(c.max_active).unwrap_or(i32::MAX)),
            min_proto_version: Some(cocoon_protocol::version::MIN_VERSION),
            max_proto_version: Some(c.protocol_version),
            machine_description_json: c.machine_description.clone(),
        };
        let answer = query(
            conn,
            "worker.connectToProxy",
            worker::ConnectToProxy { params },
        )
        .await?;
        let connected = decode::<worker::ConnectedToProxy>("worker.connectedToProxy", answer)?;
        let version = connected.params.proto_version.unwrap_or(0);
        let compare = worker::CompareBalanceWithProxy {
            tokens_committed_to_blockchain: 0,
            tokens_committed_to_db: 0,
            max_tokens: 0,
        };
        let answer = query(conn, "worker.compareBalanceWithProxy", compare).await?;
        let result = decode::<worker::CompareBalanceWithProxyResult>(
            "worker.compareBalanceWithProxyResult",
            answer,
        )?;
        if result.error_code != 0 {
            return Err(TestkitError::ProxyRefused {
                what: "worker.compareBalanceWithProxy",
                code: result.error_code,
            });
        }
        self.records
            .update(|s| s.committed_tokens = result.tokens_committed_to_db);
        let complete = worker::ProxyHandshakeComplete { is_disabled: false };
        let answer = query(conn, "worker.proxyHandshakeComplete", complete).await?;
        decode::<worker::ProxyHandshakeCompleted>("worker.proxyHandshakeCompleted", answer)?;
        Ok(version)
    }

    fn handle_packet(self: &Arc<Self>, conn: &Connection, version: i32, data: Bytes) {
        let message: Message = match tl::from_bytes(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("undecodable packet from the proxy: {e}");
                return;
            }
        };
        let request = match message {
            Message::ProxyRunQueryEx(q) => Incoming {
                kind: RequestKind::RunQueryEx,
                request_id: q.request_id,
                client_request_id: None,
                token_limit: None,
                query: Some(q.query),
                coefficient: q.coefficient,
            },
            Message::ProxyRunQuery(q) => Incoming {
                kind: RequestKind::RunQueryEx,
                request_id: q.request_id,
                client_request_id: None,
                token_limit: None,
                query: Some(q.query),
                coefficient: q.coefficient,
            },
            Message::ExtWorkerRunQuery(q) => Incoming {
                kind: RequestKind::WorkerRunQuery,
                request_id: q.request_id,
                client_request_id: Some(q.client_request_id),
                token_limit: Some(q.token_limit),
                query: Some(q.query),
                coefficient: q.coefficient,
            },
            Message::ExtWorkerRunSealedQuery(q) => Incoming {
                kind: RequestKind::WorkerRunSealedQuery,
                request_id: q.request_id,
                client_request_id: Some(q.client_request_id),
                token_limit: Some(q.token_limit),
                query: None,
                coefficient: q.coefficient,
            },
            Message::ExtCancelQuery(c) => {
                self.records.note_cancel(&c.request_id.to_string());
                if self.config.ignore_cancel {
                    tracing::info!(request = %c.request_id, "ignoring a cancel");
                } else if let Some(token) = lock(&self.in_flight).get(&c.request_id) {
                    token.cancel();
                }
                return;
            }
            Message::ProxyWorkerRequestPayment(p) => {
                self.records
                    .update(|s| s.committed_tokens = s.committed_tokens.max(p.db_tokens));
                return;
            }
            other => {
                tracing::warn!("unexpected packet from proxy: {}", other.constructor_name());
                return;
            }
        };
        tokio::spawn(self.clone().serve(conn.clone(), version, request));
    }

    async fn serve(self: Arc<Self>, conn: Connection, version: i32, request: Incoming) {
        let index = self.records.begin(RequestRecord::new(
            request.kind,
            request.request_id.to_string(),
            request.client_request_id.map(|id| id.to_string()),
            request.token_limit,
        ));
        let cancel = CancellationToken::new();
        lock(&self.in_flight).insert(request.request_id, cancel.clone());
        let reply = Reply {
            conn: &conn,
            version,
            request_id: request.request_id,
            client_request_id: request.client_request_id.unwrap_or_default(),
            coefficient: u32::try_from(request.coefficient).ok(),
            start: cocoon_net::unix_time(),
        };
        let outcome = if self.active.fetch_add(1, Ordering::AcqRel) >= self.config.max_active {
            reply
                .refuse(Refusal {
                    code: 429,
                    message: "worker is at --max-active".into(),
                })
                .await
        } else {
            self.answer(&reply, &request, index, &cancel).await
        };
        self.active.fetch_sub(1, Ordering::AcqRel);
        lock(&self.in_flight).remove(&request.request_id);
        if let Some(record) = self.records.finish(index, outcome) {
            let _ = self.finished.send(record);
        }
    }

    async fn answer(
        &self,
        reply: &Reply<'_>,
        request: &Incoming,
        index: usize,
        cancel: &CancellationToken,
    ) -> RequestOutcome {
        let Some(query) = &request.query else {
            return reply
                .refuse(Refusal {
                    code: 400,
                    message: "this worker opens no sealed requests".into(),
                })
                .await;
        };
        let http_request = match http::Request::from_boxed_bytes(query.clone()) {
            Ok(r) => r,
            Err(e) => {
                return reply
                    .refuse(Refusal {
                        code: 400,
                        message: format!("bad http.request: {e}"),
                    })
                    .await;
            }
        };
        self.records
            .request(index, |r| r.body_bytes = Some(http_request.payload.len()));
        let view = match ChatView::from_request(&http_request, &self.config.model) {
            Ok(v) => v,
            Err(refusal) => return reply.refuse(refusal).await,
        };
        let token_limit = request
            .token_limit
            .and_then(|l| u64::try_from(l).ok())
            .filter(|l| *l > 0);
        let plan = AnswerPlan::new(&self.config, &view, token_limit, self.created);
        self.records.request(index, |r| {
            r.stream = Some(view.stream);
            r.honest = Some(plan.honest);
        });
        let usage = self.config.usage;
        let last = plan.parts.len() - 1;
        for (i, part) in plan.parts.iter().enumerate() {
            let wait = if i == 0 {
                Duration::ZERO
            } else {
                self.config.part_delay
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => {
                    return self.acknowledge_cancel(reply, &plan, i, usage, index).await;
                }
                () = reply.conn.closed() => return RequestOutcome::ConnectionLost,
            }
            let ends = i == last && !self.config.no_final;
            if ends && reply.version >= cocoon_protocol::version::SEALED_VERSION {
                let kind = self.send_receipt(reply, &http_request.payload, &plan).await;
                self.records.request(index, |r| r.receipt = kind);
            }
            let final_info = ends.then(|| reply.final_info(plan.reported));
            let sent = if i == 0 {
                let head = http::Response {
                    http_version: "HTTP/1.1".into(),
                    status_code: 200,
                    reason: "OK".into(),
                    headers: vec![http::Header {
                        name: "content-type".into(),
                        value: plan.content_type.into(),
                    }],
                    payload: part.clone(),
                };
                let msg = proxy::QueryAnswerEx {
                    request_id: reply.request_id,
                    answer: Bytes::from(head.to_boxed_bytes()),
                    flags: 0,
                    final_info,
                };
                reply
                    .conn
                    .send_packet(Bytes::from(msg.to_boxed_bytes()))
                    .await
            } else {
                let msg = proxy::QueryAnswerPartEx {
                    request_id: reply.request_id,
                    answer: part.clone(),
                    flags: 0,
                    final_info,
                };
                reply
                    .conn
                    .send_packet(Bytes::from(msg.to_boxed_bytes()))
                    .await
            };
            if sent.is_err() {
                return RequestOutcome::ConnectionLost;
            }
            self.records.request(index, |r| {
                r.frames_sent = i + 1;
                if ends {
                    r.reported = Some(plan.reported);
                }
            });
        }
        if !self.config.no_final {
            return RequestOutcome::Completed;
        }
        // Everything but the end was sent: hold the request open until a cancel or the end of
        // the connection.
        tokio::select! {
            () = cancel.cancelled() => {
                self.acknowledge_cancel(reply, &plan, plan.parts.len(), usage, index).await
            }
            () = reply.conn.closed() => RequestOutcome::ConnectionLost,
        }
    }

    async fn acknowledge_cancel(
        &self,
        reply: &Reply<'_>,
        plan: &AnswerPlan,
        frames_sent: usize,
        usage: UsageReport,
        index: usize,
    ) -> RequestOutcome {
        let reported = plan.reported_after(frames_sent, usage);
        let msg = proxy::QueryAnswerErrorEx {
            request_id: reply.request_id,
            error_code: ext::CANCELLED_ERROR_CODE,
            error: "cancelled".into(),
            flags: 0,
            final_info: Some(reply.final_info(reported)),
        };
        send(reply.conn, msg.to_boxed_bytes()).await;
        self.records.request(index, |r| r.reported = Some(reported));
        RequestOutcome::Cancelled
    }

    /// Sends the receipt for `plan` (a fresh one, or the first one again when replaying);
    /// answers what was sent.
    async fn send_receipt(
        &self,
        reply: &Reply<'_>,
        request_body: &[u8],
        plan: &AnswerPlan,
    ) -> Option<&'static str> {
        let replayed = if self.config.replay_receipt {
            lock(&self.first_receipt).clone()
        } else {
            None
        };
        let (receipt, kind) = match replayed {
            Some(r) => (r, "replayed"),
            None => {
                let served = Served {
                    client_request_id: reply.client_request_id.0,
                    request_hash: cocoon_attest::receipt::body_hash(request_body),
                    answer_hash: Sha256::digest(plan.body()).into(),
                    coefficient: self.config.receipt_coefficient.or(reply.coefficient),
                };
                let signed = sign_receipt(
                    self.tls.identity(),
                    &self.config.model,
                    served,
                    self.config.receipt_signs.unwrap_or(plan.reported),
                    cocoon_net::unix_time() as u64,
                );
                match signed {
                    Ok(r) => {
                        lock(&self.first_receipt).get_or_insert_with(|| r.clone());
                        (r, "signed")
                    }
                    Err(e) => {
                        tracing::warn!("no receipt: {e}");
                        return None;
                    }
                }
            }
        };
        let msg = ext::QueryReceipt {
            request_id: reply.request_id,
            receipt,
        };
        send(reply.conn, msg.to_boxed_bytes()).await;
        Some(kind)
    }
}

/// Where one request's answers go.
struct Reply<'a> {
    conn: &'a Connection,
    version: i32,
    request_id: Int256,
    /// The client's id of the request (zero when the proxy did not say), which receipts name.
    client_request_id: Int256,
    /// The coefficient offered, as receipts sign it (`None` when out of range).
    coefficient: Option<u32>,
    start: f64,
}

impl Reply<'_> {
    fn final_info(&self, usage: TokenCounts) -> proxy::QueryFinalInfo {
        let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let timings = self.version >= 2;
        proxy::QueryFinalInfo {
            flags: 0,
            tokens_used: TokensUsed {
                prompt_tokens_used: count(usage.prompt),
                cached_tokens_used: 0,
                completion_tokens_used: count(usage.completion),
                reasoning_tokens_used: 0,
                total_tokens_used: count(usage.total()),
            },
            worker_debug: None,
            worker_start_time: timings.then_some(self.start),
            worker_end_time: timings.then(cocoon_net::unix_time),
        }
    }

    async fn refuse(&self, refusal: Refusal) -> RequestOutcome {
        let msg = proxy::QueryAnswerErrorEx {
            request_id: self.request_id,
            error_code: refusal.code,
            error: refusal.message.clone(),
            flags: 0,
            final_info: Some(self.final_info(TokenCounts::default())),
        };
        send(self.conn, msg.to_boxed_bytes()).await;
        RequestOutcome::Refused {
            code: refusal.code,
            message: refusal.message,
        }
    }
}

async fn send(conn: &Connection, bytes: Vec<u8>) {
    if let Err(e) = conn.send_packet(Bytes::from(bytes)).await {
        tracing::debug!("cannot send to the proxy: {e}");
    }
}

async fn query<T: TlConstructor>(
    conn: &Connection,
    what: &'static str,
    msg: T,
) -> Result<Bytes, TestkitError> {
    conn.query(Bytes::from(msg.to_boxed_bytes()))
        .await
        .map_err(|source| TestkitError::Proxy { what, source })
}

fn decode<T: TlConstructor>(what: &'static str, bytes: Bytes) -> Result<T, TestkitError> {
    T::from_boxed_bytes(bytes).map_err(|source| TestkitError::ProxyAnswer { what, source })
}

async fn poll_payment_status(records: Arc<Records>, conn: Connection) {
    let mut tick = tokio::time::interval(PAYMENT_STATUS_INTERVAL);
    tick.tick().await;
    loop {
        tick.tick().await;
        let answer = match query(
            &conn,
            "worker.updatePaymentStatus",
            worker::UpdatePaymentStatus {},
        )
        .await
        {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!("payment status: {e}");
                continue;
            }
        };
        match decode::<worker::PaymentStatus>("worker.paymentStatus", answer) {
            Ok(status) => records.update(|s| s.committed_tokens = status.db_tokens),
            Err(e) => tracing::warn!("{e}"),
        }
    }
}
