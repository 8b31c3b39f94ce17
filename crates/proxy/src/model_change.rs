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
    if model.trim().is_empty() {
        return Err(refused("the model name is empty".into()));
    }
    // The same allow-list as at the worker's handshake.
    if let Some(Err(refusal)) = state.registry.as_ref().map(|r| r.check_model(model)) {
        return Err(refused(refusal));
    }
    let query = worker::ChangeModel {
        new_model: model.to_owned(),
    };
    let answer = conn
        .query_with_timeout(Bytes::from(query.to_boxed_bytes()), CHANGE_TIMEOUT)
        .await
        .map_err(|e| refused(e.to_string()))?;
    worker::ChangedModel::from_boxed_bytes(answer)
        .map_err(|e| refused(format!("bad answer: {e}")))?;
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
