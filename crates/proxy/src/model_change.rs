//! Asking a worker to serve another model (`worker.changeModel`, reference 9060ce5), for the
//! operator (`POST /admin/change-model`, `cocoon-proxy change-model`).
//!
//! The invariant: the selector lists the worker under the new model only once the worker has
//! answered `worker.changedModel`, and the requests already running on it are left alone
//! (`WorkerSelector::upsert_worker` keeps their count, and they finish on the engine they
//! started on). A refusal or a timeout leaves everything as it was.

use std::time::Duration;

use bytes::Bytes;
use cocoon_market::WorkerId;
use cocoon_market::selection::WorkerInfo;
use cocoon_protocol::messages::worker;
use cocoon_protocol::tl::TlConstructor;

use crate::ProxyError;
use crate::refusal::WorkerRefusal;
use crate::state::{ProxyState, lock};

/// Longest a worker may take to switch (loading a model, or its operator's command).
pub(crate) const CHANGE_TIMEOUT: Duration = Duration::from_secs(900);

/// Asks worker `id` to serve `model`; on its `worker.changedModel`, lists it under `model`.
pub(crate) async fn change(state: &ProxyState, id: u64, model: &str) -> Result<(), ProxyError> {
    let refused = |reason: String| ProxyError::ModelChangeRefused {
        worker: id,
        model: model.to_owned(),
        reason,
    };
    let worker_id = WorkerId(id);
    let conn = lock(&state.workers)
        .get(&worker_id)
        .map(|w| w.conn.clone())
        .ok_or(ProxyError::UnknownWorker(id))?;
    if let Err(e) = cocoon_protocol::ModelName::parse(model) {
        return Err(refused(e.to_string()));
    }
    let announced_before = state.sealing.certificate(worker_id);
    let query = worker::ChangeModel {
        new_model: model.to_owned(),
    };
    let answer = conn
        .query_with_timeout(Bytes::from(query.to_boxed_bytes()), CHANGE_TIMEOUT)
        .await
        .map_err(|e| refused(e.to_string()))?;
    worker::ChangedModel::from_boxed_bytes(answer)
        .map_err(|e| refused(format!("bad answer: {e}")))?;
    if state.registry.is_some()
        && let Err(refusal) = admit_new_weights(state, worker_id, model, announced_before).await
    {
        // The registry allows models by their weights: a worker that now serves weights it does
        // not list (or cannot show which) is disconnected, as at its handshake.
        tracing::warn!(worker = id, %model, "disconnecting worker after its model change: {refusal}");
        if let Some(link) = lock(&state.workers).get(&worker_id) {
            link.conn.close();
        }
        return Err(refused(refusal.to_string()));
    }
    {
        let mut selector = lock(&state.selector);
        // A worker that left meanwhile stays gone.
        let Some(info) = selector.worker_info(worker_id).cloned() else {
            return Err(ProxyError::UnknownWorker(id));
        };
        selector.upsert_worker(
            worker_id,
            WorkerInfo {
                model: model.to_owned(),
                ..info
            },
        );
    }
    if let Some(link) = lock(&state.workers).get_mut(&worker_id) {
        link.model = model.to_owned();
    }
    tracing::info!(worker = id, %model, "worker changed its model");
    Ok(())
}

/// How long a worker has, after `worker.changedModel`, to announce the certificate that names
/// its new weights.
const NEW_CERTIFICATE_WAIT: Duration = Duration::from_secs(10);

/// Checks the weights a worker's new certificate names against the root registry: a worker
/// that changed its model reissues its certificate and announces it (`ext.workerAttestation`).
/// On success the worker's link takes the new certificate's identity (which later registry
/// changes are judged by).
async fn admit_new_weights(
    state: &ProxyState,
    worker: WorkerId,
    model: &str,
    before: Option<Bytes>,
) -> Result<(), WorkerRefusal> {
    let Some(registry) = &state.registry else {
        return Ok(());
    };
    let started = tokio::time::Instant::now();
    let certificate = loop {
        match state.sealing.certificate(worker) {
            Some(c) if Some(&c) != before.as_ref() => break c,
            _ if started.elapsed() >= NEW_CERTIFICATE_WAIT => {
                return Err(WorkerRefusal::NoNewCertificate {
                    model: model.to_owned(),
                    wait: NEW_CERTIFICATE_WAIT,
                });
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let der = rustls_pki_types::CertificateDer::from(certificate.as_ref());
    let now = state.worker_tls.identity().clock().now_unix();
    let peer = cocoon_attest::verified_peer(
        &[der],
        &state.worker_tls.policy(),
        state.worker_tls.evidence_verifier(),
        now,
    )
    .map_err(|source| WorkerRefusal::Certificate {
        what: "its new certificate",
        source,
    })?;
    // The worker's own certificate (same TLS key as its session), not one relayed from
    // elsewhere.
    let session_key = lock(&state.workers).get(&worker).map(|l| l.peer.public_key);
    if session_key != Some(peer.public_key) {
        return Err(WorkerRefusal::ForeignCertificate);
    }
    registry.check_model(&peer, model)?;
    if let Some(link) = lock(&state.workers).get_mut(&worker) {
        link.peer = peer;
    }
    Ok(())
}
