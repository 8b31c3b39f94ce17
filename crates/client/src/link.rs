//! The client's session with its proxy: dial, proof of work, handshake and authorization, then
//! dispatch of answers to the requests waiting for them; redials with backoff when it drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cocoon_net::{Connection, ConnectionConfig, Inbound};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{client, ext};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::version;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{ClientConfig, ClientError};

/// What the proxy sent about one request.
#[derive(Debug)]
pub(crate) enum ProxyEvent {
    Answer {
        answer: Bytes,
        final_info: Option<client::QueryFinalInfo>,
    },
    Part {
        answer: Bytes,
        final_info: Option<client::QueryFinalInfo>,
    },
    Error {
        code: i32,
        message: String,
        final_info: Option<client::QueryFinalInfo>,
    },
    Cost(ext::QueryCost),
    /// The worker's signed receipt, relayed by the proxy.
    Receipt(Bytes),
    Payment {
        request_tokens: i64,
    },
    Lost,
}

pub(crate) type Routes = Arc<Mutex<HashMap<Int256, crate::route::RouteSender>>>;

/// An authorized session.
pub(crate) struct Session {
    /// The proxy's client port this session went to.
    pub(crate) address: String,
    pub(crate) conn: Connection,
    pub(crate) version: i32,
    pub(crate) routes: Routes,
    /// What the proxy's RA-TLS certificate proved.
    pub(crate) proxy: cocoon_attest::VerifiedPeer,
    /// The prices this session's charges are held against (`cocoon_market::audit`); `None`
    /// when they are not audited: a proxy before version 3, or a proxy contract whose prices
    /// could not be read.
    pub(crate) audit_pricing: Option<cocoon_market::PricingParams>,
}

pub(crate) struct ProxyLink {
    pub(crate) config: Arc<ClientConfig>,
    /// RA-TLS towards the proxy: its policy is the one the proxy must satisfy.
    pub(crate) tls: cocoon_net::TlsEndpoint,
    /// The policy workers must satisfy (their sealing keys, their receipts), sharing the
    /// evidence cache of `tls`.
    pub(crate) workers: Arc<cocoon_attest::RaTlsVerifier>,
    /// Verified worker keys, forgotten when the worker policy changes.
    pub(crate) sealing: Arc<crate::sealed::Sealing>,
    /// The root registry followed, when `[registry] root` is set.
    pub(crate) registry: Mutex<Option<Arc<Mutex<cocoon_chain::RegistryStatus>>>>,
    /// The client ports of the proxies the root registry lists (by seqno), and the index of the
    /// next one to try, with `proxy_from_registry`.
    pub(crate) registered: Mutex<(Vec<String>, usize)>,
    current: watch::Receiver<Option<Arc<Session>>>,
    last_error: Mutex<Option<String>>,
    models: Mutex<Option<(Instant, Arc<client::WorkerTypesV2>)>>,
    pub(crate) shutdown: CancellationToken,
    /// The charge vouchers the proxy hands over.
    pub(crate) charges: Arc<crate::settle::Charges>,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProxyLink {
    pub(crate) fn start(
        config: Arc<ClientConfig>,
        tls: cocoon_net::TlsEndpoint,
        charges: Arc<crate::settle::Charges>,
        sealing: Arc<crate::sealed::Sealing>,
    ) -> Arc<Self> {
        let (tx, rx) = watch::channel(None);
        let workers = Arc::new(cocoon_attest::RaTlsVerifier::new(
            tls.policy().as_ref().clone(),
            tls.evidence_verifier().clone(),
        ));
        let link = Arc::new(Self {
            config,
            workers,
            sealing,
            registry: Mutex::new(None),
            registered: Mutex::new((Vec::new(), 0)),
            tls,
            current: rx,
            last_error: Mutex::new(None),
            models: Mutex::new(None),
            shutdown: CancellationToken::new(),
            charges,
        });
        tokio::spawn(maintain(link.clone(), tx));
        link
    }

    /// The current session, waiting up to `wait` for one.
    pub(crate) async fn session(&self, wait: Duration) -> Result<Arc<Session>, ClientError> {
        let mut rx = self.current.clone();
        let found = tokio::time::timeout(wait, async {
            loop {
                if let Some(s) = rx.borrow_and_update().clone()
                    && !s.conn.is_closed()
                {
                    return Some(s);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match found {
            Ok(Some(s)) => Ok(s),
            _ => Err(ClientError::ProxyUnavailable(
                lock(&self.last_error)
                    .clone()
                    .unwrap_or_else(|| "not connected to the proxy yet".into()),
            )),
        }
    }

    /// The kind of the connected proxy's evidence (`tdx`, `sev-snp`, `simulated`), if a
    /// session is up.
    pub(crate) fn proxy_attestation(&self) -> Option<cocoon_attest::EvidenceKind> {
        self.current
            .borrow()
            .as_ref()
            .filter(|s| !s.conn.is_closed())
            .map(|s| s.proxy.evidence_kind)
    }

    /// Whether a session is up now.
    pub(crate) fn is_connected(&self) -> bool {
        self.current
            .borrow()
            .as_ref()
            .is_some_and(|s| !s.conn.is_closed())
    }

    /// The worker types the proxy reports, cached for `models_refresh`.
    pub(crate) async fn worker_types(&self) -> Result<Arc<client::WorkerTypesV2>, ClientError> {
        if let Some((at, types)) = lock(&self.models).clone()
            && at.elapsed() < self.config.models_refresh
        {
            return Ok(types);
        }
        let session = self.session(Duration::from_secs(5)).await?;
        let answer = session
            .conn
            .query_with_timeout(
                Bytes::from(client::GetWorkerTypesV2 {}.to_boxed_bytes()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|e| ClientError::ProxyUnavailable(format!("client.getWorkerTypesV2: {e}")))?;
        let types = Arc::new(
            client::WorkerTypesV2::from_boxed_bytes(answer).map_err(|e| {
                ClientError::ProxyUnavailable(format!("bad client.workerTypesV2: {e}"))
            })?,
        );
        *lock(&self.models) = Some((Instant::now(), types.clone()));
        Ok(types)
    }

    /// The proxy to dial next: the configured one, or with `proxy_from_registry` the root
    /// registry's proxies in turn (one attempt each, so an unreachable proxy is passed over).
    pub(crate) fn proxy_address(&self) -> Result<String, ClientError> {
        if !self.config.proxy_from_registry {
            return Ok(self.config.proxy.clone());
        }
        let mut registered = lock(&self.registered);
        let (list, next) = &mut *registered;
        if list.is_empty() {
            return Err(ClientError::ProxyUnavailable(
                "the root registry lists no proxy".into(),
            ));
        }
        let address = list[*next % list.len()].clone();
        *next = (*next + 1) % list.len();
        Ok(address)
    }

    /// The proxy of the current session (or the configured one when there is none).
    pub(crate) fn current_proxy(&self) -> String {
        match self.current.borrow().as_ref() {
            Some(s) if !s.conn.is_closed() => s.address.clone(),
            _ if self.config.proxy_from_registry => String::new(),
            _ => self.config.proxy.clone(),
        }
    }

    /// Records why no session can be opened now (shown with failed requests and in stats).
    pub(crate) fn set_error(&self, message: String) {
        *lock(&self.last_error) = Some(message);
    }

    /// The root registry followed, as last read.
    pub(crate) fn registry_status(&self) -> Option<cocoon_chain::RegistryStatus> {
        lock(&self.registry).as_ref().map(|s| lock(s).clone())
    }

    /// Forgets the cached worker types.
    pub(crate) fn invalidate_models(&self) {
        *lock(&self.models) = None;
    }
}

async fn maintain(link: Arc<ProxyLink>, tx: watch::Sender<Option<Arc<Session>>>) {
    // No byte goes to a proxy before the registry's allow-lists are known.
    let follower = tokio::select! {
        f = crate::registry::open(&link, &tx) => f,
        () = link.shutdown.cancelled() => return,
    };
    if let Some(follower) = follower {
        let shutdown = link.shutdown.clone();
        let follow = crate::registry::follow(link.clone(), tx.clone(), follower);
        tokio::spawn(async move {
            tokio::select! {
                () = follow => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
    let mut delay = link.config.reconnect_min;
    loop {
        if link.shutdown.is_cancelled() {
            return;
        }
        let started = Instant::now();
        let proxy = match link.proxy_address() {
            Ok(proxy) => proxy,
            Err(e) => {
                tracing::warn!("{e}");
                link.set_error(e.to_string());
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = link.shutdown.cancelled() => return,
                }
                delay = (delay * 2).min(Duration::from_secs(30));
                continue;
            }
        };
        // Every wait in `open` is bounded (connect, proof of work, TLS, handshake queries);
        // shutdown does not wait for them.
        let opened = tokio::select! {
            r = open(&link.config, &proxy, &link.tls, &link.charges) => r,
            () = link.shutdown.cancelled() => return,
        };
        match opened {
            Ok((session, incoming)) => {
                tracing::info!(
                    proxy = %proxy,
                    version = session.version,
                    attestation = %session.proxy.evidence_kind,
                    image_hash = ?session.proxy.image_hash,
                    "connected to proxy"
                );
                if session.proxy.is_simulated() {
                    tracing::warn!(
                        proxy = %proxy,
                        "the proxy presents SIMULATED attestation: it runs in no TEE and can read requests"
                    );
                }
                *lock(&link.last_error) = None;
                let session = Arc::new(session);
                let _ = tx.send(Some(session.clone()));
                let poller = tokio::spawn(link.charges.clone().poll(session.conn.clone()));
                tokio::select! {
                    () = dispatch(&session, incoming, &link.charges) => {}
                    () = link.shutdown.cancelled() => {
                        session.conn.close();
                    }
                }
                poller.abort();
                let reason = session
                    .conn
                    .close_reason()
                    .unwrap_or_else(|| "closed".into());
                tracing::warn!(proxy = %proxy, "proxy session lost: {reason}");
                *lock(&link.last_error) = Some(format!("proxy session lost: {reason}"));
                let _ = tx.send(None);
                let routes: Vec<_> = lock(&session.routes).drain().collect();
                for (_, route) in routes {
                    let _ = route.try_send(ProxyEvent::Lost);
                }
                link.invalidate_models();
            }
            Err(e) => {
                tracing::warn!(proxy = %proxy, "cannot connect to proxy: {e}");
                *lock(&link.last_error) = Some(e.to_string());
            }
        }
        if started.elapsed() > Duration::from_secs(30) {
            delay = link.config.reconnect_min;
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = link.shutdown.cancelled() => return,
        }
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

async fn open(
    config: &ClientConfig,
    address: &str,
    tls: &cocoon_net::TlsEndpoint,
    charges: &Arc<crate::settle::Charges>,
) -> Result<(Session, cocoon_net::Incoming), ClientError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::ProxyUnavailable(format!("{what}: {e}"))
    };
    let secured = cocoon_net::dial(
        address,
        config.max_pow_difficulty,
        tls,
        ConnectionConfig::dialer(),
    )
    .await
    .map_err(|e| fail(&format!("connect to {address}"), &e))?;
    let (conn, incoming, proxy) = (secured.conn, secured.incoming, secured.peer);
    let result = handshake(config, &conn, charges).await;
    match result {
        Ok((version, proxy_contract)) => {
            let audit_pricing = match audit_pricing(config, version, &proxy_contract).await {
                Ok(p) => p,
                Err(e) => {
                    conn.close();
                    return Err(e);
                }
            };
            charges.audit_session(audit_pricing.is_some());
            Ok((
                Session {
                    address: address.to_owned(),
                    conn,
                    version,
                    routes: Arc::new(Mutex::new(HashMap::new())),
                    proxy,
                    audit_pricing,
                },
                incoming,
            ))
        }
        Err(e) => {
            conn.close();
            Err(e)
        }
    }
}

/// The longest a session's start waits for the proxy contract's prices.
const CONTRACT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The prices a session's charges are held against: with a chain, those of the proxy contract
/// the proxy names (which it must charge by, and which stay its contract's when the root's
/// change); with none, or a proxy that names no contract address (it settles on no chain),
/// the configured ones. `None`: not audited (a proxy before version 3, whose rounding is its own).
///
/// # Errors
/// A contract named that cannot be read: the session is not opened (and is tried again), since
/// a proxy must not switch the audit off by naming one.
async fn audit_pricing(
    config: &ClientConfig,
    version: i32,
    proxy_contract: &str,
) -> Result<Option<cocoon_market::PricingParams>, ClientError> {
    if version < version::SEALED_VERSION {
        return Ok(None);
    }
    let (chain, api_key) = config.registry_chain();
    // A proxy that names no contract address settles on no chain (in local mode it names a
    // placeholder): the configured prices.
    let chain = chain.filter(|_| cocoon_chain::parse_address(proxy_contract).is_ok());
    cocoon_chain::booking_prices(
        chain,
        api_key,
        proxy_contract,
        config.pricing,
        CONTRACT_READ_TIMEOUT,
    )
    .await
    .map(Some)
    .map_err(|e| {
        ClientError::ProxyUnavailable(format!(
            "the prices of the proxy contract {proxy_contract:?} cannot be read: {e}"
        ))
    })
}

async fn handshake(
    config: &ClientConfig,
    conn: &Connection,
    charges: &Arc<crate::settle::Charges>,
) -> Result<(i32, String), ClientError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::ProxyUnavailable(format!("{what}: {e}"))
    };
    let hello = client::ConnectToProxy {
        params: client::Params {
            flags: 0b11,
            client_owner_address: config.owner_address.clone(),
            is_test: Some(config.is_test),
            min_proto_version: Some(1),
            max_proto_version: Some(version::MAX_VERSION),
        },
        min_config_version: 0,
    };
    let answer = conn
        .query(Bytes::from(hello.to_boxed_bytes()))
        .await
        .map_err(|e| fail("client.connectToProxy", &e))?;
    let connected = client::ConnectedToProxy::from_boxed_bytes(answer)
        .map_err(|e| fail("client.connectedToProxy", &e))?;
    let version = connected.params.proto_version.unwrap_or(0);
    charges.connected(&connected.params, &connected.client_sc_address);
    charges.offer(&connected.signed_payment);
    if version < 1 {
        return Err(ClientError::ProxyUnavailable(format!(
            "proxy speaks protocol version {version}; 1 or later is needed"
        )));
    }
    let granted = match connected.auth {
        client::AnyProxyConnectionAuth::ProxyConnectionAuthShort(short) => {
            let Some(secret) = &config.secret else {
                return Err(ClientError::ProxyUnavailable(
                    "the proxy asks for the client secret, and none is configured".into(),
                ));
            };
            if secret.hash() != short.secret_hash.0 {
                return Err(ClientError::ProxyUnavailable(
                    "the configured secret does not match the proxy's record".into(),
                ));
            }
            let query = client::AuthorizeWithProxyShort {
                data: Bytes::copy_from_slice(secret.as_bytes()),
            };
            match authorize(conn, query.to_boxed_bytes()).await? {
                Authorization::Granted(s) => s,
                Authorization::Refused { code, error } => {
                    return Err(ClientError::ProxyUnavailable(format!(
                        "authorization refused ({code}): {error}"
                    )));
                }
            }
        }
        client::AnyProxyConnectionAuth::ProxyConnectionAuthLong(long) => {
            authorize_long(config, conn, charges, &connected.params, long.nonce).await?
        }
        _ => {
            return Err(ClientError::ProxyUnavailable(
                "unknown authorization kind".into(),
            ));
        }
    };
    charges.offer(&granted.signed_payment);
    Ok((version, connected.params.proxy_sc_address.clone()))
}

/// How long the proxy is asked again, after the nonce was registered on chain, before the
/// client gives up on the session.
const REGISTERED_WAIT: Duration = Duration::from_secs(120);

/// Between two authorization attempts while the proxy has not seen the registration (the
/// proxy reads the chain at most every 500 ms per session).
const REGISTERED_POLL: Duration = Duration::from_millis(600);

/// The proxy's answer to an authorization query.
enum Authorization {
    Granted(client::AuthorizationWithProxySuccess),
    Refused { code: i32, error: String },
}

async fn authorize(conn: &Connection, query: Vec<u8>) -> Result<Authorization, ClientError> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        ClientError::ProxyUnavailable(format!("{what}: {e}"))
    };
    let answer = conn
        .query(Bytes::from(query))
        .await
        .map_err(|e| fail("client.authorizeWithProxy", &e))?;
    match tl::from_bytes::<client::AnyAuthorizationWithProxy>(answer)
        .map_err(|e| fail("authorization answer", &e))?
    {
        client::AnyAuthorizationWithProxy::AuthorizationWithProxySuccess(s) => {
            Ok(Authorization::Granted(s))
        }
        client::AnyAuthorizationWithProxy::AuthorizationWithProxyFailed(f) => {
            Ok(Authorization::Refused {
                code: f.error_code,
                error: f.error,
            })
        }
        _ => Err(ClientError::ProxyUnavailable(
            "unknown authorization answer".into(),
        )),
    }
}

/// Long authorization: accepted at once by a proxy without a chain (emulated registration);
/// a proxy with a chain answers "not yet registered" until the client contract logged
/// `register` with this session's nonce, which this client then sends from the owner wallet
/// (`[settlement]`), asking again until the proxy has seen it.
async fn authorize_long(
    config: &ClientConfig,
    conn: &Connection,
    charges: &Arc<crate::settle::Charges>,
    params: &cocoon_protocol::messages::proxy::Params,
    nonce: i64,
) -> Result<client::AuthorizationWithProxySuccess, ClientError> {
    let long = || client::AuthorizeWithProxyLong {}.to_boxed_bytes();
    let refused = |code: i32, error: String| {
        ClientError::ProxyUnavailable(format!("authorization refused ({code}): {error}"))
    };
    match authorize(conn, long()).await? {
        Authorization::Granted(s) => return Ok(s),
        Authorization::Refused { code, .. } if code == client::NOT_YET_REGISTERED_ERROR_CODE => {}
        Authorization::Refused { code, error } => return Err(refused(code, error)),
    }
    register(config, charges, params, nonce.cast_unsigned()).await?;
    let deadline = Instant::now() + REGISTERED_WAIT;
    loop {
        tokio::time::sleep(REGISTERED_POLL).await;
        match authorize(conn, long()).await? {
            Authorization::Granted(s) => return Ok(s),
            Authorization::Refused { code, error }
                if code == client::NOT_YET_REGISTERED_ERROR_CODE =>
            {
                if Instant::now() >= deadline {
                    return Err(ClientError::Registration(format!(
                        "the nonce is registered on chain, but the proxy has not seen it in \
                         {} s: {error}",
                        REGISTERED_WAIT.as_secs()
                    )));
                }
            }
            Authorization::Refused { code, error } => return Err(refused(code, error)),
        }
    }
}

/// Sends the client contract's `register` with `nonce` from the owner wallet and waits until
/// its log is on chain.
async fn register(
    config: &ClientConfig,
    charges: &Arc<crate::settle::Charges>,
    params: &cocoon_protocol::messages::proxy::Params,
    nonce: u64,
) -> Result<(), ClientError> {
    let Some(wallet) = charges.wallet() else {
        return Err(ClientError::Registration(
            "the proxy asks for proof that this client controls the owner wallet (the client \
             contract's `register` log): configure [settlement] chain and wallet_key_file with \
             the owner's wallet, or a short-auth secret the proxy knows"
                .into(),
        ));
    };
    let proxy_contract = cocoon_chain::parse_address(&params.proxy_sc_address)
        .map_err(|e| ClientError::Registration(format!("the proxy's contract: {e}")))?;
    let owner = cocoon_chain::parse_address(&config.owner_address)
        .map_err(|e| ClientError::Registration(format!("owner_address: {e}")))?;
    let operator = wallet
        .operator()
        .await
        .map_err(|e| ClientError::Registration(format!("cannot reach the chain: {e}")))?;
    if operator.address() != owner {
        return Err(ClientError::Registration(format!(
            "the [settlement] wallet {} is not the owner {}: only the owner's wallet can \
             register",
            operator.address().to_raw(),
            owner.to_raw()
        )));
    }
    let report = operator
        .client_register(&proxy_contract, nonce)
        .await
        .map_err(|e| ClientError::Registration(format!("register on chain: {e}")))?;
    tracing::info!(
        contract = %report.contract,
        message = %report.message_hash,
        "session nonce registered on chain"
    );
    Ok(())
}

async fn dispatch(
    session: &Session,
    mut incoming: cocoon_net::Incoming,
    charges: &Arc<crate::settle::Charges>,
) {
    while let Some(item) = incoming.recv().await {
        let data = match item {
            Inbound::Packet(data) => data,
            Inbound::Query(q) => {
                let _ = q.fail(400, "clients answer no queries").await;
                continue;
            }
        };
        let message: Message = match tl::from_bytes(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("undecodable packet from proxy: {e}");
                continue;
            }
        };
        let (id, event) = match message {
            Message::ClientQueryAnswerEx(a) => (
                a.request_id,
                ProxyEvent::Answer {
                    answer: a.answer,
                    final_info: a.final_info,
                },
            ),
            Message::ClientQueryAnswerPartEx(a) => (
                a.request_id,
                ProxyEvent::Part {
                    answer: a.answer,
                    final_info: a.final_info,
                },
            ),
            Message::ClientQueryAnswerErrorEx(a) => (
                a.request_id,
                ProxyEvent::Error {
                    code: a.error_code,
                    message: a.error,
                    final_info: a.final_info,
                },
            ),
            // Errors in the old shape, as reference proxies send for some refusals.
            Message::ClientQueryAnswerError(a) => (
                a.request_id,
                ProxyEvent::Error {
                    code: a.error_code,
                    message: a.error,
                    final_info: None,
                },
            ),
            Message::ClientQueryAnswerPartError(a) => (
                a.request_id,
                ProxyEvent::Error {
                    code: a.error_code,
                    message: a.error,
                    final_info: None,
                },
            ),
            Message::ExtQueryCost(c) => (c.request_id, ProxyEvent::Cost(c)),
            Message::ExtQueryReceipt(r) => (r.request_id, ProxyEvent::Receipt(r.receipt)),
            Message::ProxyClientRequestPayment(p) => (
                {
                    // Our proxies (version 3) charge by the rule the client audits; a reference
                    // proxy's rounding is its own, so its charges are only kept.
                    if session.audit_pricing.is_some() {
                        charges.charged(p.request_id.0, p.request_tokens, &p.signed_payment);
                    } else {
                        charges.offer(&p.signed_payment);
                    }
                    p.request_id
                },
                ProxyEvent::Payment {
                    request_tokens: p.request_tokens,
                },
            ),
            other => {
                tracing::debug!("ignoring {} from proxy", other.constructor_name());
                continue;
            }
        };
        let route = lock(&session.routes).get(&id).cloned();
        if let Some(route) = route {
            // Never waits: a caller that reads slower than its answer arrives fills its own
            // queue (bounded in bytes) and loses that request; the session's other requests
            // keep flowing.
            match route.try_send(event) {
                Ok(()) => {}
                Err(crate::route::Refused::Full) => {
                    lock(&session.routes).remove(&id);
                    tracing::warn!(request = %id, "the caller does not read its answer: request stopped");
                    if session.version >= cocoon_protocol::version::SEALED_VERSION {
                        let conn = session.conn.clone();
                        let cancel = ext::CancelQuery { request_id: id };
                        tokio::spawn(async move {
                            let _ = conn.send_packet(Bytes::from(cancel.to_boxed_bytes())).await;
                        });
                    }
                }
                Err(crate::route::Refused::Closed) => {
                    lock(&session.routes).remove(&id);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// Attack: a proxy names a contract the client cannot read, so that its charges would go
    /// unaudited. The session is not opened; a proxy that names no contract address (local
    /// mode's placeholder) is audited at the configured prices; a reference proxy is not.
    #[tokio::test]
    async fn a_contract_that_cannot_be_read_does_not_switch_the_audit_off() {
        let mut config = ClientConfig::default();
        config.settlement.chain = Some("toncenter=http://127.0.0.1:9".into());
        let contract = cocoon_ton::Address::new(0, [1; 32]).to_raw();
        let refused = audit_pricing(&config, version::SEALED_VERSION, &contract).await;
        assert!(
            matches!(&refused, Err(ClientError::ProxyUnavailable(m)) if m.contains("cannot be read")),
            "{refused:?}"
        );
        let local = audit_pricing(&config, version::SEALED_VERSION, "local-proxy-contract").await;
        assert_eq!(local.unwrap(), Some(config.pricing));
        assert_eq!(audit_pricing(&config, 2, &contract).await.unwrap(), None);
    }
}
