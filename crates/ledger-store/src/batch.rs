//! Group commit: the many requests a busy proxy runs at once write their reservations, releases
//! and charges through one queue, and a writer task commits whatever has gathered in one
//! transaction ([`LedgerStore::write_batch`]), so the disk is synced once per batch rather than
//! once per write. Under load batches grow by themselves; an idle queue commits a lone write at
//! once, so it adds no waiting.

use tokio::sync::{mpsc, oneshot};

use super::{ChargeReceipt, LedgerStore, LedgerWrite, LedgerWritten};
use crate::StoreError;
use cocoon_market::pricing::{Charge, Coefficient};
use cocoon_market::reservation::{Reservation, required_tokens};
use cocoon_market::{ClientId, RequestId, WorkerAccountId};

/// Writes committed together at most, unless [`CommitQueue::start`] is told otherwise.
pub const DEFAULT_MAX_BATCH: usize = 256;

/// Writes waiting for the writer before senders wait too.
const QUEUE_DEPTH: usize = 8192;

struct Job {
    write: LedgerWrite,
    reply: oneshot::Sender<Result<LedgerWritten, StoreError>>,
}

/// A handle on the writer task: the write methods of [`LedgerStore`], committed in batches. Each
/// answers once its batch is committed, with what the single call would have answered. Cheap to
/// clone; the writer stops when every handle is gone.
#[derive(Clone, Debug)]
pub struct CommitQueue {
    jobs: mpsc::Sender<Job>,
    store: LedgerStore,
}

impl CommitQueue {
    /// Starts the writer task on the current tokio runtime, committing up to `max_batch` writes
    /// (at least one) per transaction.
    pub fn start(store: LedgerStore, max_batch: usize) -> Self {
        let (jobs, queue) = mpsc::channel(QUEUE_DEPTH);
        tokio::spawn(write_loop(store.clone(), queue, max_batch.max(1)));
        Self { jobs, store }
    }

    /// The store written to.
    pub fn store(&self) -> &LedgerStore {
        &self.store
    }

    /// [`LedgerStore::reserve`], batched.
    pub async fn reserve(
        &self,
        client: &ClientId,
        request_id: RequestId,
        tokens: u64,
    ) -> Result<Reservation, StoreError> {
        let write = LedgerWrite::Reserve {
            client: client.clone(),
            request_id,
            tokens,
        };
        match self.submit(write).await? {
            LedgerWritten::Reserved(r) => Ok(r),
            other => Err(unexpected(&other)),
        }
    }

    /// [`LedgerStore::reserve_for_request`], batched.
    pub async fn reserve_for_request(
        &self,
        client: &ClientId,
        request_id: RequestId,
        max_coefficient: Coefficient,
        max_tokens: u64,
        body_bytes: u64,
    ) -> Result<Reservation, StoreError> {
        let tokens = required_tokens(
            self.store.pricing(),
            max_coefficient,
            max_tokens,
            body_bytes,
        )?;
        self.reserve(client, request_id, tokens).await
    }

    /// [`LedgerStore::release`], batched.
    pub async fn release(
        &self,
        client: &ClientId,
        reservation: Reservation,
    ) -> Result<(), StoreError> {
        let write = LedgerWrite::Release {
            client: client.clone(),
            reservation,
        };
        match self.submit(write).await? {
            LedgerWritten::Released => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// [`LedgerStore::charge_request`], batched.
    pub async fn charge_request(
        &self,
        client: &ClientId,
        worker: &WorkerAccountId,
        request_id: RequestId,
        charge: &Charge,
    ) -> Result<ChargeReceipt, StoreError> {
        let write = LedgerWrite::Charge {
            client: client.clone(),
            worker: worker.clone(),
            request_id,
            charge: *charge,
        };
        match self.submit(write).await? {
            LedgerWritten::Charged(receipt) => Ok(receipt),
            other => Err(unexpected(&other)),
        }
    }

    async fn submit(&self, write: LedgerWrite) -> Result<LedgerWritten, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { write, reply })
            .await
            .map_err(|_| writer_gone())?;
        answer.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Storage {
        context: "queueing a ledger write",
        detail: "the ledger writer stopped".into(),
    }
}

fn unexpected(written: &LedgerWritten) -> StoreError {
    StoreError::CorruptStore(format!("a batched write answered {written:?}"))
}

async fn write_loop(store: LedgerStore, mut queue: mpsc::Receiver<Job>, max_batch: usize) {
    let mut batch: Vec<Job> = Vec::with_capacity(max_batch);
    while queue.recv_many(&mut batch, max_batch).await > 0 {
        let writes: Vec<LedgerWrite> = batch.iter().map(|j| j.write.clone()).collect();
        let answers = store.write_batch(&writes).await;
        // A hold whose requester went away would stay until the next restart: give it back.
        let mut orphans = Vec::new();
        for (job, answer) in batch.drain(..).zip(answers) {
            if let Err(Ok(LedgerWritten::Reserved(reservation))) = job.reply.send(answer)
                && let LedgerWrite::Reserve { client, .. } = job.write
            {
                orphans.push(LedgerWrite::Release {
                    client,
                    reservation,
                });
            }
        }
        if !orphans.is_empty() {
            let _ = store.write_batch(&orphans).await;
        }
    }
}
