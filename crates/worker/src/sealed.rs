//! Proxy-blind requests on the worker (protocol version 3): the worker tells the proxy which
//! attested certificate carries its sealing key, opens the envelopes clients seal to that key,
//! and seals its answer stream back under the reply key only it and the client know, so the
//! proxy relays a request and its answer without reading either.
//!
//! The answer stream is a `cocoon_seal` chunk stream: the first chunk holds the serialized
//! `http.response` (head and first body bytes), each further part one chunk of body bytes, and
//! the chunk in the message that ends the request (the part with the final info, or the error)
//! carries the final flag. An error's message is itself sealed, so that what a worker says about
//! a request (a refused field, an engine message) stays between it and the client; the message in
//! clear is then [`SEALED_ERROR_PREFIX`] and the hex of the final chunk. Token counts stay in
//! clear in the final info: the proxy meters and bills them as for any request.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use cocoon_net::Connection;
use cocoon_protocol::messages::{ext, proxy};
use cocoon_protocol::tl::TlConstructor;
use cocoon_seal::{ChunkSealer, Envelope, SealError, SystemRng};

use crate::state::WorkerState;

/// Start of an error message whose text is a sealed chunk, in hex.
pub(crate) const SEALED_ERROR_PREFIX: &str = "sealed:";

/// Seals the chunks of one answer stream.
pub(crate) struct AnswerSealer(Mutex<ChunkSealer>);

impl AnswerSealer {
    /// Seals `plaintext` as the next chunk; `is_final` on the last one.
    pub(crate) fn seal(&self, plaintext: &[u8], is_final: bool) -> Result<Bytes, SealError> {
        let mut sealer = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out = Vec::with_capacity(plaintext.len() + 64);
        sealer.seal_into(plaintext, is_final, &mut out)?;
        Ok(Bytes::from(out))
    }

    /// An error message for the proxy to relay: the message sealed as the final chunk.
    pub(crate) fn seal_error(&self, message: &str) -> Result<String, SealError> {
        let chunk = self.seal(message.as_bytes(), true)?;
        Ok(format!("{SEALED_ERROR_PREFIX}{}", hex::encode(chunk)))
    }
}

/// Tells the proxy of a version 3 session which certificate carries this worker's sealing key.
/// A worker whose certificate has no sealing key in its claims (no evidence) sends nothing and
/// is never offered for sealed requests.
pub(crate) async fn announce(state: &WorkerState, conn: &Connection, version: i32) {
    if version < cocoon_protocol::version::SEALED_VERSION {
        return;
    }
    let certificate = state.tls.identity().certificate();
    let has_key = certificate
        .claims
        .extended
        .as_ref()
        .is_some_and(|e| e.sealing_public_key.is_some());
    if !has_key {
        return;
    }
    let msg = ext::WorkerAttestation {
        certificate: Bytes::from(certificate.der.as_ref().to_vec()),
    };
    if let Err(e) = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await {
        tracing::debug!("cannot announce the sealing key: {e}");
    }
}

/// Announces each renewed certificate on `conn` until it closes, so that the proxy hands
/// clients a certificate (and sealing key) that has not expired: without it, sealed requests
/// would stop once the first certificate of the session expired.
pub(crate) async fn announce_renewals(state: Arc<WorkerState>, conn: Connection, version: i32) {
    if version < cocoon_protocol::version::SEALED_VERSION {
        return;
    }
    let mut renewals = state.tls.identity().renewals();
    loop {
        tokio::select! {
            changed = renewals.changed() => {
                if changed.is_err() {
                    return;
                }
                announce(&state, &conn, version).await;
                tracing::debug!("renewed certificate announced to the proxy");
            }
            () = conn.closed() => return,
        }
    }
}

/// Serves one `ext.workerRunSealedQuery`: opens the envelope with the sealing key and runs the
/// request inside like any other (token limit included), with its answer sealed and its receipt
/// naming the envelope's SHA-256.
pub(crate) async fn serve(
    state: Arc<WorkerState>,
    conn: Connection,
    version: i32,
    (payment_prices, proxy): (Option<cocoon_market::PricingParams>, Arc<str>),
    q: ext::WorkerRunSealedQuery,
) {
    let binding = crate::request::Binding {
        token_limit: Some(q.token_limit),
        client_request_id: Some(q.client_request_id),
        envelope_sha256: Some(cocoon_attest::receipt::body_hash(&q.envelope)),
        audio: q.flags & cocoon_protocol::messages::AUDIO_UNITS_FLAG != 0,
        payment_prices,
        proxy: Some(proxy),
        body_bytes: Some(q.envelope.len() as u64),
    };
    let opened = Envelope::open(
        &q.envelope,
        state.keys.sealing.key_id(),
        &state.keys.sealing,
        &[],
    );
    let opened = match opened {
        Ok(o) => {
            state
                .counters
                .sealed_requests
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            o
        }
        Err(e) => {
            // Nothing of the request can be read: say why in clear (it reveals nothing of it).
            state
                .counters
                .rejected
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let msg = proxy::QueryAnswerErrorEx {
                request_id: q.request_id,
                error_code: 400,
                error: format!("the sealed request does not open on this worker: {e}"),
                flags: 0,
                final_info: Some(proxy::QueryFinalInfo::default()),
            };
            let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
            return;
        }
    };
    let sealer = match opened.reply_key.sealer(&mut SystemRng) {
        Ok(s) => AnswerSealer(Mutex::new(s)),
        Err(e) => {
            tracing::error!("cannot start a sealed answer stream: {e}");
            let msg = proxy::QueryAnswerErrorEx {
                request_id: q.request_id,
                error_code: 500,
                error: "the worker cannot seal its answer".into(),
                flags: 0,
                final_info: Some(proxy::QueryFinalInfo::default()),
            };
            let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
            return;
        }
    };
    let inner = proxy::RunQueryEx {
        query: Bytes::from(opened.plaintext),
        signed_payment: proxy::AnySignedPayment::default(),
        coefficient: q.coefficient,
        timeout: q.timeout,
        request_id: q.request_id,
        flags: 0,
        enable_debug: q.enable_debug,
        private_key: None,
    };
    crate::request::serve(state, conn, version, inner, binding, Some(sealer)).await;
}
