//! Proxy-blind requests at the proxy (protocol version 3): the proxy relays the attested
//! certificates that carry the workers' sealing keys to clients, and routes sealed requests to
//! one of the workers their envelope is addressed to without being able to read them.
//!
//! What the proxy handles in clear for a sealed request is only what routing and billing need:
//! the model, the candidate workers, the price limit, the token limit of the reservation, the
//! timeout, the sizes, and the token counts the worker reports at the end. The envelope goes to
//! the chosen worker as it came, and the answer bytes (a sealed chunk stream) go back as they
//! came.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use cocoon_market::WorkerId;
use cocoon_protocol::messages::{client, ext};
use cocoon_protocol::model_name::base_name as base_model;

use crate::refusal::WorkerRefusal;
use crate::state::{ProxyState, lock};

/// The workers' attested certificates that carry a sealing key, as the workers announced them
/// and the proxy checked them.
#[derive(Default)]
pub(crate) struct SealingDirectory {
    certificates: Mutex<HashMap<WorkerId, Bytes>>,
    /// Sealed requests received.
    pub(crate) requests: AtomicU64,
    /// Certificates accepted from workers: first announcements and renewals.
    pub(crate) announcements: AtomicU64,
}

/// The routing restriction of a sealed request: only these workers can open its envelope.
pub(crate) struct SealedRoute {
    candidates: Vec<WorkerId>,
}

impl SealingDirectory {
    /// Takes the certificate a worker announced (`ext.workerAttestation`) once it verified
    /// under the worker policy. It need not be the certificate of the worker's session (a
    /// TLS-terminating relay in between presents its own): what protects a request is the
    /// client's own verification of the certificate, and a worker that announced another's
    /// certificate would only be sent envelopes it cannot open.
    pub(crate) fn on_announcement(&self, state: &ProxyState, worker: WorkerId, certificate: Bytes) {
        match check_announcement(state, worker, &certificate) {
            Ok(peer) => {
                // A certificate names the weights served (a model change reissues it): under a
                // root registry, weights it does not list end the worker's session, as at its
                // handshake.
                if let Some(registry) = &state.registry {
                    let link = lock(&state.workers)
                        .get(&worker)
                        .map(|l| (l.model.clone(), l.conn.clone()));
                    if let Some((model, conn)) = link
                        && let Err(refusal) = registry.check_model(&peer, &model)
                    {
                        tracing::warn!(worker = worker.0, "disconnecting worker: {refusal}");
                        conn.close();
                        return;
                    }
                }
                tracing::debug!(worker = worker.0, "worker sealing key announced");
                lock(&self.certificates).insert(worker, certificate);
                self.announcements.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(worker = worker.0, "worker sealing key refused: {e}"),
        }
    }

    /// The certificate `worker` announced last, if any.
    pub(crate) fn certificate(&self, worker: WorkerId) -> Option<Bytes> {
        lock(&self.certificates).get(&worker).cloned()
    }

    /// Forgets a worker that went away.
    pub(crate) fn forget(&self, worker: WorkerId) {
        lock(&self.certificates).remove(&worker);
    }

    /// Number of workers whose sealing key the proxy can relay.
    pub(crate) fn workers(&self) -> usize {
        lock(&self.certificates).len()
    }
}

fn check_announcement(
    state: &ProxyState,
    worker: WorkerId,
    certificate: &[u8],
) -> Result<cocoon_attest::VerifiedPeer, WorkerRefusal> {
    if !lock(&state.workers).contains_key(&worker) {
        return Err(WorkerRefusal::NotRegistered);
    }
    let der = rustls_pki_types::CertificateDer::from(certificate);
    let now = state.worker_tls.identity().clock().now_unix();
    let verified = cocoon_attest::verified_peer(
        &[der],
        &state.worker_tls.policy(),
        state.worker_tls.evidence_verifier(),
        now,
    )
    .map_err(|source| WorkerRefusal::Certificate {
        what: "the certificate",
        source,
    })?;
    let has_key = verified
        .claims
        .as_ref()
        .and_then(|c| c.extended.as_ref())
        .is_some_and(|e| e.sealing_public_key.is_some());
    if !has_key {
        return Err(WorkerRefusal::NoSealingKey);
    }
    Ok(verified)
}

/// `ext.workerKeys`: the bundles of the version 3 workers serving `model`'s base model.
pub(crate) fn worker_keys(state: &ProxyState, model: &str) -> ext::WorkerKeys {
    let base = base_model(model);
    let serving: Vec<WorkerId> = lock(&state.workers)
        .iter()
        .filter(|(_, link)| {
            link.version >= cocoon_protocol::version::SEALED_VERSION
                && base_model(&link.model) == base
        })
        .map(|(id, _)| *id)
        .collect();
    let certificates = lock(&state.sealing.certificates);
    let keys = serving
        .into_iter()
        .filter_map(|id| {
            let certificate = certificates.get(&id)?.clone();
            Some(ext::WorkerKey {
                worker_id: i64::try_from(id.0).ok()?,
                certificate,
            })
        })
        .collect();
    ext::WorkerKeys { keys }
}

/// Splits `ext.runSealedQuery` into the request the router runs (the envelope in place of the
/// query, whose size the reservation counts) and its routing restriction.
pub(crate) fn accept(
    state: &ProxyState,
    q: ext::RunSealedQuery,
) -> (client::RunQueryEx, SealedRoute) {
    state.sealing.requests.fetch_add(1, Ordering::Relaxed);
    let candidates = q
        .candidates
        .iter()
        .filter_map(|c| u64::try_from(*c).ok().map(WorkerId))
        .collect();
    let request = client::RunQueryEx {
        model_name: q.model_name,
        query: q.envelope,
        max_coefficient: q.max_coefficient,
        max_tokens: q.max_tokens,
        timeout: q.timeout,
        request_id: q.request_id,
        min_config_version: 0,
        // Kept for the client's worker preference (bits 16-23, see `cocoon_market::Preference`).
        flags: q.flags,
        enable_debug: q.enable_debug,
        public_key: None,
    };
    (request, SealedRoute { candidates })
}

/// The workers the selector must pass over: those already tried and, for a sealed request,
/// every worker that is not one of its candidates.
pub(crate) fn excluded(
    state: &ProxyState,
    sealed: Option<&SealedRoute>,
    tried: &[WorkerId],
) -> Vec<WorkerId> {
    let mut out = tried.to_vec();
    if let Some(route) = sealed {
        out.extend(
            lock(&state.workers)
                .keys()
                .filter(|id| !route.candidates.contains(id) && !tried.contains(id)),
        );
    }
    out
}
