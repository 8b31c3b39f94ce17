//! Whether the ledger can record what requests owe, and the charges that wait for it.
//!
//! A charge that cannot be written (read-only file, full disk, lost database) is not dropped:
//! the charge waits here and is retried, and no new request is admitted (503, with the reason)
//! until every waiting charge is booked. So a ledger that cannot write never serves free
//! answers, and the books balance once it can write again.
//!
//! Waiting charges are also appended, synced, to a record in the proxy's data directory
//! (`deferred-charges.jsonl`: client, worker, request, metered counts and coefficient), which a
//! proxy that restarts books before it admits anything. The request's reservation cannot serve
//! for that: it holds the request's worst case, not what the worker metered.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cocoon_ledger_store::StoreError;
use cocoon_market::pricing::{Charge, Coefficient, PricingParams, TokenCounts};
use cocoon_market::{ClientId, MarketError, RequestId, WorkerAccountId};
use serde::{Deserialize, Serialize};

use crate::config::ProxyError;

/// Why a line of the deferred-charges file is not a charge.
#[derive(Debug, thiserror::Error)]
enum BadRecord {
    /// Not a JSON record (a torn or altered line).
    #[error("{0}")]
    Json(serde_json::Error),
    /// The request id is not 32 hex bytes.
    #[error("bad request id {0:?}")]
    RequestId(String),
    /// The counts cannot be priced.
    #[error("{0}")]
    Price(#[from] MarketError),
}
use crate::state::{ProxyState, lock};

/// The record's file name in the data directory.
const RECORD_FILE: &str = "deferred-charges.jsonl";

/// How often waiting charges are tried again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A charge waiting to be booked.
#[derive(Debug, Clone)]
pub(crate) struct DeferredCharge {
    pub(crate) client: ClientId,
    pub(crate) worker: WorkerAccountId,
    pub(crate) request_id: RequestId,
    pub(crate) counts: TokenCounts,
    pub(crate) coefficient: Coefficient,
    pub(crate) charge: Charge,
}

/// One line of the record.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    client: String,
    worker: String,
    request_id: String,
    counts: TokenCounts,
    coefficient: Coefficient,
}

impl DeferredCharge {
    fn record(&self) -> Record {
        Record {
            client: self.client.0.clone(),
            worker: self.worker.0.clone(),
            request_id: hex::encode(self.request_id.0),
            counts: self.counts,
            coefficient: self.coefficient,
        }
    }

    fn from_record(r: Record, pricing: &PricingParams) -> Result<Self, BadRecord> {
        let id: [u8; 32] = hex::decode(&r.request_id)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| BadRecord::RequestId(r.request_id.clone()))?;
        let charge = pricing.charge(&r.counts, r.coefficient)?;
        Ok(Self {
            client: ClientId(r.client),
            worker: WorkerAccountId(r.worker),
            request_id: RequestId(id),
            counts: r.counts,
            coefficient: r.coefficient,
            charge,
        })
    }
}

#[derive(Debug, Default)]
struct Inner {
    last_error: Option<String>,
    deferred: Vec<DeferredCharge>,
}

/// The ledger's health as requests see it.
#[derive(Debug, Default)]
pub(crate) struct LedgerHealth {
    inner: Mutex<Inner>,
    /// Where waiting charges are recorded (`None`: no data directory, memory only).
    record: Option<PathBuf>,
}

/// The ledger's health in `/jsonstats`.
#[derive(Debug, Clone, Serialize)]
pub struct LedgerHealthStats {
    /// Whether the last write succeeded and no charge waits.
    pub writable: bool,
    /// Why the last write failed.
    pub last_error: Option<String>,
    /// Charges waiting to be booked (no request is admitted while there are any).
    pub deferred_charges: usize,
}

impl LedgerHealth {
    /// Opens the record in `data_dir`, taking the charges a previous process left waiting.
    pub(crate) fn open(
        data_dir: Option<&Path>,
        pricing: &PricingParams,
    ) -> Result<Self, ProxyError> {
        let Some(dir) = data_dir else {
            return Ok(Self::default());
        };
        let path = dir.join(RECORD_FILE);
        let mut deferred = Vec::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for (n, line) in text
                    .lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                {
                    let parsed = serde_json::from_str::<Record>(line)
                        .map_err(BadRecord::Json)
                        .and_then(|r| DeferredCharge::from_record(r, pricing));
                    match parsed {
                        Ok(c) => deferred.push(c),
                        // A torn last line (the process died while appending) was never
                        // acknowledged to anyone; anything else is an altered record.
                        Err(e) if n + 1 == text.lines().count() => {
                            tracing::warn!("{}: torn last line skipped: {e}", path.display());
                        }
                        Err(e) => {
                            return Err(ProxyError::Config(format!(
                                "{} line {}: {e}",
                                path.display(),
                                n + 1
                            )));
                        }
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(ProxyError::Config(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        }
        if !deferred.is_empty() {
            tracing::warn!(
                charges = deferred.len(),
                "charges left waiting by the previous run: they are booked before any request \
                 is admitted"
            );
        }
        Ok(Self {
            inner: Mutex::new(Inner {
                last_error: (!deferred.is_empty())
                    .then(|| "charges left waiting by the previous run".to_owned()),
                deferred,
            }),
            record: Some(path),
        })
    }

    /// Why no request may start now, if so.
    pub(crate) fn refusal(&self) -> Option<String> {
        let inner = lock(&self.inner);
        (!inner.deferred.is_empty()).then(|| {
            format!(
                "the proxy's ledger cannot record charges ({}); {} charge(s) wait to be booked \
                 and no request is admitted until they are",
                inner.last_error.as_deref().unwrap_or("write failed"),
                inner.deferred.len()
            )
        })
    }

    pub(crate) fn write_failed(&self, e: &StoreError) {
        lock(&self.inner).last_error = Some(e.to_string());
    }

    pub(crate) fn write_succeeded(&self) {
        let mut inner = lock(&self.inner);
        if inner.deferred.is_empty() {
            inner.last_error = None;
        }
    }

    /// Keeps a charge that could not be written, to be booked later, and records it.
    pub(crate) fn defer(&self, charge: DeferredCharge) {
        if let Some(path) = &self.record
            && let Err(e) = append(path, &charge.record())
        {
            tracing::error!(
                request = %charge.request_id,
                "cannot record the waiting charge in {}: it is kept in memory only: {e}",
                path.display()
            );
        }
        lock(&self.inner).deferred.push(charge);
    }

    /// Rewrites the record with what still waits (removed when nothing does).
    fn rewrite_record(&self) {
        let Some(path) = &self.record else { return };
        let waiting: Vec<Record> = lock(&self.inner)
            .deferred
            .iter()
            .map(DeferredCharge::record)
            .collect();
        let result = if waiting.is_empty() {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            rewrite(path, &waiting)
        };
        if let Err(e) = result {
            tracing::warn!("cannot update {}: {e}", path.display());
        }
    }

    pub(crate) fn stats(&self) -> LedgerHealthStats {
        let inner = lock(&self.inner);
        LedgerHealthStats {
            writable: inner.last_error.is_none() && inner.deferred.is_empty(),
            last_error: inner.last_error.clone(),
            deferred_charges: inner.deferred.len(),
        }
    }

    fn take(&self) -> Vec<DeferredCharge> {
        std::mem::take(&mut lock(&self.inner).deferred)
    }

    fn put_back(&self, mut left: Vec<DeferredCharge>, error: Option<String>) {
        let mut inner = lock(&self.inner);
        left.append(&mut inner.deferred);
        inner.deferred = left;
        match error {
            Some(e) => inner.last_error = Some(e),
            None if inner.deferred.is_empty() => inner.last_error = None,
            None => {}
        }
    }
}

/// Books waiting charges as soon as the ledger takes them; runs until the proxy stops.
pub(crate) async fn retry_deferred(state: Arc<ProxyState>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RETRY_EVERY) => {}
            () = state.shutdown.cancelled() => break,
        }
        book_deferred(&state).await;
    }
    if state.ledger_health.stats().deferred_charges > 0 {
        book_deferred(&state).await;
        for c in state.ledger_health.take() {
            tracing::error!(
                client = %c.client,
                worker = %c.worker.0,
                request = %c.request_id,
                "charge still unbooked at shutdown"
            );
        }
    }
}

fn append(path: &Path, record: &Record) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(&line)?;
    f.sync_all()
}

fn rewrite(path: &Path, records: &[Record]) -> std::io::Result<()> {
    let tmp = path.with_extension("jsonl.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    for r in records {
        let mut line = serde_json::to_vec(r).map_err(std::io::Error::other)?;
        line.push(b'\n');
        f.write_all(&line)?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

async fn book_deferred(state: &ProxyState) {
    let waiting = state.ledger_health.take();
    if waiting.is_empty() {
        return;
    }
    let mut left = Vec::new();
    let mut error = None;
    for c in waiting {
        if error.is_some() {
            left.push(c);
            continue;
        }
        match state
            .writes
            .charge_request(&c.client, &c.worker, c.request_id, &c.charge)
            .await
        {
            Ok(_) | Err(StoreError::Market(MarketError::RequestAlreadyCharged(_))) => {
                tracing::info!(request = %c.request_id, "deferred charge booked");
            }
            Err(e) => {
                error = Some(e.to_string());
                left.push(c);
            }
        }
    }
    state.ledger_health.put_back(left, error);
    state.ledger_health.rewrite_record();
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn deferred(n: u8) -> DeferredCharge {
        let pricing = PricingParams::default();
        let counts = TokenCounts {
            prompt: 1,
            cached: 0,
            completion: u64::from(n),
            reasoning: 0,
        };
        let coefficient = Coefficient::new(1000).unwrap();
        DeferredCharge {
            client: ClientId("c".into()),
            worker: WorkerAccountId("w".into()),
            request_id: RequestId([n; 32]),
            counts,
            coefficient,
            charge: pricing.charge(&counts, coefficient).unwrap(),
        }
    }

    #[test]
    fn waiting_charges_survive_a_restart_in_the_record() {
        let dir = std::env::temp_dir().join(format!("cocoon-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pricing = PricingParams::default();
        let h = LedgerHealth::open(Some(&dir), &pricing).unwrap();
        assert!(h.refusal().is_none());
        h.defer(deferred(1));
        h.defer(deferred(2));
        // A torn last line (a crash while appending) is skipped.
        let path = dir.join(RECORD_FILE);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"client\":\"c\",\"wor").unwrap();
        let again = LedgerHealth::open(Some(&dir), &pricing).unwrap();
        assert!(again.refusal().is_some(), "admission waits for them");
        let waiting = again.take();
        assert_eq!(waiting.len(), 2);
        assert_eq!(waiting[1].request_id, RequestId([2; 32]));
        assert_eq!(waiting[1].charge, deferred(2).charge);
        // Booked: the record goes away.
        again.put_back(Vec::new(), None);
        again.rewrite_record();
        assert!(!path.exists());
        // An altered line in the middle is refused, not skipped.
        std::fs::write(&path, "garbage\n{}\n").unwrap();
        assert!(LedgerHealth::open(Some(&dir), &pricing).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn admission_stops_while_a_charge_waits_and_resumes_once_booked() {
        let h = LedgerHealth::default();
        assert!(h.refusal().is_none());
        h.write_failed(&StoreError::Market(MarketError::Overflow("disk full")));
        // A failed write alone refuses nothing: that request was refused on its own.
        assert!(h.refusal().is_none());
        assert!(!h.stats().writable);
        h.defer(deferred(1));
        let why = h.refusal().unwrap();
        assert!(why.contains("1 charge(s) wait"), "{why}");
        // A retry that fails keeps it; one that succeeds clears it.
        let taken = h.take();
        h.put_back(taken, Some("still read-only".into()));
        assert!(h.refusal().unwrap().contains("still read-only"));
        let _ = h.take();
        h.put_back(Vec::new(), None);
        assert!(h.refusal().is_none());
        assert!(h.stats().writable);
    }
}
