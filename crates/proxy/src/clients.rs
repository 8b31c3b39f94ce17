//! The proxy's client port: proof of work, the client handshake and authorization, the
//! client's queries (worker types, payment status, refund) and its requests.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use cocoon_market::ClientId;
use cocoon_net::{Connection, Inbound, InboundQuery};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{client, proxy};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::version;
use cocoon_ton::messages::ClientRegisteredLog;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::auth::{self, AuthRefusal, Challenge};
use crate::refusal::SessionEnd;
use crate::state::{ProxyState, lock};

/// One client session's state.
pub(crate) struct ClientSession {
    /// What the session was asked to prove at connect (its owner, nonce, secret hash).
    challenge: Option<Challenge>,
    pub(crate) version: i32,
    pub(crate) authorized: bool,
    /// Requests running for this client: client request id → cancellation.
    pub(crate) requests: Arc<Mutex<HashMap<Int256, CancellationToken>>>,
}

pub(crate) async fn accept_loop(state: Arc<ProxyState>, listener: TcpListener) {
    let admission = state.client_admission.clone();
    crate::state::accept_forever(listener, "client", admission, move |tcp| {
        let state = state.clone();
        async move {
            state.clients_connected.fetch_add(1, Ordering::Relaxed);
            let result = serve_client(&state, tcp).await;
            state.clients_connected.fetch_sub(1, Ordering::Relaxed);
            result
        }
    })
    .await;
}

async fn serve_client(state: &Arc<ProxyState>, tcp: TcpStream) -> Result<(), SessionEnd> {
    let secured = cocoon_net::accept_gated(
        tcp,
        state.config.client_pow_difficulty,
        &state.client_tls,
        state.config.client_port.acceptor(),
    )
    .await?;
    let (conn, mut incoming) = (secured.conn, secured.incoming);
    let mut session = ClientSession {
        challenge: None,
        version: 0,
        authorized: false,
        requests: Arc::new(Mutex::new(HashMap::new())),
    };
    // A session that has not authorized in time is closed: until then it costs the proxy a
    // connection and proves nothing.
    let authorize_within = state.config.client_port.authorize_timeout;
    let authorize_by = tokio::time::Instant::now() + authorize_within;
    let mut unauthorized = None;
    loop {
        let item = tokio::select! {
            item = incoming.recv() => item,
            () = state.shutdown.cancelled() => None,
            () = tokio::time::sleep_until(authorize_by), if !session.authorized => {
                unauthorized = Some(SessionEnd::Timeout {
                    what: "authorization",
                    within: authorize_within,
                });
                None
            }
        };
        let Some(item) = item else { break };
        match item {
            Inbound::Query(q) => handle_query(state, q, &mut session).await,
            Inbound::Packet(data) => handle_packet(state, &conn, &session, data).await,
        }
    }
    // The client is gone (or the proxy stops): nobody will read the answers of its running
    // requests.
    for (_, token) in lock(&session.requests).drain() {
        token.cancel();
    }
    if state.shutdown.is_cancelled() {
        conn.close();
        return Err(SessionEnd::Stopping);
    }
    if let Some(why) = unauthorized {
        conn.close();
        return Err(why);
    }
    Err(SessionEnd::Closed(conn.close_reason()))
}

async fn handle_query(state: &Arc<ProxyState>, q: InboundQuery, session: &mut ClientSession) {
    let message: Message = match tl::from_bytes(q.data.clone()) {
        Ok(m) => m,
        Err(e) => {
            let _ = q.fail(400, &format!("undecodable query: {e}")).await;
            return;
        }
    };
    let answer: Result<Vec<u8>, (i32, String)> = match message {
        Message::ClientConnectToProxy(c) => connect(state, session, c),
        Message::ClientAuthorizeWithProxyShort(a) => {
            Ok(authorize_short(state, session, &a.data).await)
        }
        Message::ClientAuthorizeWithProxyLong(_) => Ok(authorize_long(state, session).await),
        Message::ClientGetWorkerTypesV2(_) => Ok(worker_types_v2(state).to_boxed_bytes()),
        Message::ClientGetWorkerTypes(_) => Ok(worker_types(state).to_boxed_bytes()),
        Message::ExtGetWorkerKeys(g) if session.version >= version::SEALED_VERSION => {
            Ok(crate::sealed::worker_keys(state, &g.model_name).to_boxed_bytes())
        }
        Message::ClientUpdatePaymentStatus(_) => match session_client(session) {
            Some(client) => match crate::settle::client_status(state, &client).await {
                Ok((used, limit, signed_payment)) => Ok(client::PaymentStatus {
                    signed_payment,
                    db_tokens: used,
                    max_tokens: limit,
                }
                .to_boxed_bytes()),
                Err(e) => {
                    tracing::error!(%client, "cannot read the client's account: {e}");
                    Err((503, "the proxy's ledger is unavailable".into()))
                }
            },
            None => Err((401, "not authorized".into())),
        },
        Message::ClientRequestRefund(_) => match session_client(session) {
            None => Err((401, "not authorized".into())),
            Some(client) => {
                let active = lock(&session.requests).len() as u64;
                let answer = if active > 0 {
                    Ok(crate::settle::RefundAnswer::Busy(active))
                } else {
                    crate::settle::grant_refund(state, &client).await
                };
                answer.map(|a| {
                    tl::to_bytes(&match a {
                        crate::settle::RefundAnswer::Granted(data) => {
                            client::AnyRefund::Refund(client::Refund { data })
                        }
                        crate::settle::RefundAnswer::Busy(n) => {
                            client::AnyRefund::RefundRejected(client::RefundRejected {
                                active_queries: i64::try_from(n).unwrap_or(i64::MAX),
                            })
                        }
                    })
                })
            }
        },
        other => Err((
            400,
            format!("unexpected query {}", other.constructor_name()),
        )),
    };
    let _ = match answer {
        Ok(a) => q.answer(Bytes::from(a)).await,
        Err((code, msg)) => q.fail(code, &msg).await,
    };
}

fn session_client(session: &ClientSession) -> Option<ClientId> {
    if !session.authorized {
        return None;
    }
    session
        .challenge
        .as_ref()
        .map(|c| ClientId(c.owner.id.clone()))
}

/// Cumulative adjusted tokens charged to a client and the most it may use, from the ledger.
pub(crate) async fn client_tokens(
    state: &ProxyState,
    client: &ClientId,
) -> Result<(i64, i64), cocoon_ledger_store::StoreError> {
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(state
        .ledger
        .client(client)
        .await?
        .map_or((0, 0), |a| (i(a.tokens_used), i(a.token_limit))))
}

fn connect(
    state: &ProxyState,
    session: &mut ClientSession,
    c: client::ConnectToProxy,
) -> Result<Vec<u8>, (i32, String)> {
    let p = c.params;
    let (min, max) = (
        p.min_proto_version.unwrap_or(0),
        p.max_proto_version.unwrap_or(0),
    );
    let v = version::negotiate(1, state.config.max_protocol_version, min, max)
        .map_err(|e| (400, e.to_string()))?;
    // Every spelling of one address is one owner: the account, the secret and the contract
    // are all found from the canonical form.
    let owner = auth::canonical_owner(&p.client_owner_address, state.settle.is_some())
        .map_err(|e| (400, e.to_string()))?;
    let client_sc_address = match (&state.settle, owner.address) {
        (Some(settle), Some(address)) => settle
            .client_contract(&address.to_raw())
            .map_err(|e| (400, e.to_string()))?
            .to_raw(),
        _ => format!("local-client-contract:{}", owner.id),
    };
    let secret_hash = auth::secret_hash_for(&state.config.client_secret_hashes, &owner);
    let nonce: u64 = rand::random();
    session.version = v;
    session.authorized = false;
    session.challenge = Some(Challenge::new(
        owner,
        nonce,
        secret_hash,
        Instant::now(),
        state.config.registration_timeout,
    ));
    // The protocol's nonce is a `long`; the client contract logs it as `uint64`.
    let nonce = nonce.cast_signed();
    let auth = match secret_hash {
        Some(secret_hash) => client::AnyProxyConnectionAuth::ProxyConnectionAuthShort(
            client::ProxyConnectionAuthShort {
                secret_hash: Int256(secret_hash),
                nonce,
            },
        ),
        None => client::AnyProxyConnectionAuth::ProxyConnectionAuthLong(
            client::ProxyConnectionAuthLong { nonce },
        ),
    };
    let reply = client::ConnectedToProxy {
        params: crate::workers::proxy_params(state, v),
        client_sc_address,
        auth,
        signed_payment: proxy::AnySignedPayment::default(),
    };
    Ok(reply.to_boxed_bytes())
}

async fn authorize_short(
    state: &ProxyState,
    session: &mut ClientSession,
    secret: &[u8],
) -> Vec<u8> {
    let verdict = match &session.challenge {
        None => Err(AuthRefusal::NotConnected),
        Some(challenge) => challenge.short(secret),
    };
    match verdict {
        Ok(()) => authorization(state, session).await,
        Err(refusal) => refused(session, &refusal),
    }
}

async fn authorize_long(state: &ProxyState, session: &mut ClientSession) -> Vec<u8> {
    let proof =
        auth::RegistrationProof::of(state.settle.is_some(), state.config.emulated_registration);
    let Some(challenge) = session.challenge.as_mut() else {
        return refused(session, &AuthRefusal::NotConnected);
    };
    let verdict = match challenge.long(proof, Instant::now()) {
        auth::LongStep::Authorized => Ok(()),
        auth::LongStep::Refused(refusal) => Err(refusal),
        auth::LongStep::ReadLogs => {
            let challenge = challenge.clone();
            match register_logs(state, &challenge).await {
                Ok(logs) => challenge.check_logs(logs, Instant::now()),
                Err(failure) => {
                    tracing::warn!(client = %challenge.owner.id, "cannot authorize: {failure}");
                    return authorization_failed(failure.code(), &failure.to_string());
                }
            }
        }
    };
    match verdict {
        Ok(()) => authorization(state, session).await,
        Err(refusal) => refused(session, &refusal),
    }
}

/// How many of the client contract's latest transactions are searched for the session's
/// `register` log.
const REGISTER_LOG_WINDOW: u32 = 64;

/// The `register` logs of the session owner's client contract (other logs passed over).
async fn register_logs(
    state: &ProxyState,
    challenge: &Challenge,
) -> Result<Vec<ClientRegisteredLog>, crate::settle::SyncFailure> {
    let (Some(settle), Some(owner)) = (&state.settle, challenge.owner.address) else {
        return Ok(Vec::new());
    };
    let contract = settle.client_contract(&owner.to_raw())?;
    let logs = settle
        .chain
        .external_logs(&contract, REGISTER_LOG_WINDOW)
        .await
        .map_err(crate::settle::SyncFailure::Chain)?;
    Ok(logs
        .iter()
        .filter_map(|log| ClientRegisteredLog::from_cell(&log.body).ok())
        .collect())
}

fn authorization_failed(code: i32, error: &str) -> Vec<u8> {
    tl::to_bytes(
        &client::AnyAuthorizationWithProxy::AuthorizationWithProxyFailed(
            client::AuthorizationWithProxyFailed {
                error_code: code,
                error: error.into(),
            },
        ),
    )
}

fn refused(session: &ClientSession, refusal: &AuthRefusal) -> Vec<u8> {
    let owner = session.challenge.as_ref().map(|c| c.owner.id.as_str());
    tracing::info!(
        client = owner.unwrap_or("-"),
        code = refusal.code(),
        "authorization refused: {refusal}"
    );
    authorization_failed(refusal.code(), &refusal.to_string())
}

/// Opens (or reads) the account of a session whose authorization was proven.
async fn authorization(state: &ProxyState, session: &mut ClientSession) -> Vec<u8> {
    let Some(challenge) = &session.challenge else {
        return refused(session, &AuthRefusal::NotConnected);
    };
    let id = ClientId(challenge.owner.id.clone());
    // The client's account: opened (and, on the emulated chain, funded with the configured
    // deposit) the first time the client authorizes, once for the life of the ledger.
    if let Some(settle) = &state.settle {
        // On a chain the balance is the client contract's: read it now.
        if let Err(e) = settle.sync_client(&state.ledger, &id).await {
            tracing::warn!(client = %id, "cannot authorize: {e}");
            return authorization_failed(e.code(), &e.to_string());
        }
    }
    let account = match state
        .ledger
        .fund_new_client(&id, state.config.emulated_client_deposit)
        .await
    {
        Ok((account, opened)) => {
            if opened {
                tracing::info!(client = %id, balance = account.balance, "client account opened");
            }
            account
        }
        Err(e) => {
            tracing::error!(client = %id, "cannot open the client's account: {e}");
            return authorization_failed(503, "the proxy's ledger is unavailable");
        }
    };
    session.authorized = true;
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (used, limit) = (i(account.tokens_used), i(account.token_limit));
    tl::to_bytes(
        &client::AnyAuthorizationWithProxy::AuthorizationWithProxySuccess(
            client::AuthorizationWithProxySuccess {
                signed_payment: crate::settle::client_voucher(state, &id).await,
                tokens_committed_to_db: used,
                max_tokens: limit,
            },
        ),
    )
}

fn worker_types_v2(state: &ProxyState) -> client::WorkerTypesV2 {
    let selector = lock(&state.selector);
    let types = selector
        .model_summaries()
        .into_iter()
        .map(|m| client::WorkerTypeV2 {
            name: m.name.clone(),
            workers: m
                .workers
                .iter()
                .map(|w| client::WorkerInstanceV2 {
                    flags: 0,
                    coefficient: i32::try_from(w.coefficient.get()).unwrap_or(i32::MAX),
                    active_requests: i32::try_from(w.running).unwrap_or(i32::MAX),
                    max_active_requests: i32::try_from(w.max).unwrap_or(i32::MAX),
                })
                .collect(),
        })
        .collect();
    client::WorkerTypesV2 { types }
}

fn worker_types(state: &ProxyState) -> client::WorkerTypes {
    let selector = lock(&state.selector);
    let types = selector
        .model_summaries()
        .into_iter()
        .map(|m| client::WorkerType {
            name: m.name.clone(),
            active_workers: i32::try_from(m.active_workers).unwrap_or(i32::MAX),
            coefficient_min: i32::try_from(m.coefficient_min.get()).unwrap_or(i32::MAX),
            coefficient_bucket50: i32::try_from(m.coefficient_median.get()).unwrap_or(i32::MAX),
            coefficient_max: i32::try_from(m.coefficient_max.get()).unwrap_or(i32::MAX),
        })
        .collect();
    client::WorkerTypes { types }
}

async fn handle_packet(
    state: &Arc<ProxyState>,
    conn: &Connection,
    session: &ClientSession,
    data: Bytes,
) {
    let message: Message = match tl::from_bytes(data) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!("undecodable packet from client: {e}");
            return;
        }
    };
    let mut sealed = None;
    let q = match message {
        Message::ClientRunQueryEx(q) => q,
        Message::ExtRunSealedQuery(q) if session.version >= version::SEALED_VERSION => {
            let (q, route) = crate::sealed::accept(state, q);
            sealed = Some(route);
            q
        }
        Message::ClientRunQuery(q) => client::RunQueryEx {
            model_name: q.model_name,
            query: q.query,
            max_coefficient: q.max_coefficient,
            max_tokens: q.max_tokens,
            timeout: q.timeout,
            request_id: q.request_id,
            min_config_version: q.min_config_version,
            flags: 0,
            enable_debug: None,
            public_key: None,
        },
        Message::ExtCancelQuery(c) => {
            if let Some(token) = lock(&session.requests).get(&c.request_id) {
                token.cancel();
            }
            return;
        }
        other => {
            tracing::warn!(
                "unexpected packet from client: {}",
                other.constructor_name()
            );
            return;
        }
    };
    let Some(client) = session_client(session) else {
        crate::request::refuse(conn, q.request_id, 401, "not authorized").await;
        return;
    };
    let cancel = CancellationToken::new();
    let fresh = {
        let mut requests = lock(&session.requests);
        let fresh = !requests.contains_key(&q.request_id);
        if fresh {
            requests.insert(q.request_id, cancel.clone());
        }
        fresh
    };
    if !fresh {
        crate::request::refuse(conn, q.request_id, 409, "request id already in use").await;
        return;
    }
    let requests = session.requests.clone();
    let (state, conn, version) = (state.clone(), conn.clone(), session.version);
    tokio::spawn(async move {
        let id = q.request_id;
        crate::request::run(state, conn, client, version, q, sealed, cancel).await;
        lock(&requests).remove(&id);
    });
}
