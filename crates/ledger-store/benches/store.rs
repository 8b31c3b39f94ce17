//! Charges per second of the persistent ledger on SQLite (a temporary file, WAL, full syncs) and,
//! when `COCOON_TEST_POSTGRES_URL` is set (see `scripts/with-postgres`), on PostgreSQL: one task
//! charging in a loop, then many tasks at once, then replays of already charged ids; then whole
//! request lives (reserve, then charge) from 64 tasks, one transaction per write against the
//! group commit of a `CommitQueue`; then, from one task through the queue, whole requests and
//! reservations released at once (the writes that are not waited on to the disk).
//!
//! `cargo bench -p cocoon-ledger-store --bench store` (`COCOON_BENCH_CHARGES` sets the number of
//! charges per run, 2000 by default).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cocoon_ledger_store::{CommitQueue, LedgerStore};
use cocoon_market::{
    ChainClientState, Charge, ClientId, Coefficient, PricingParams, RequestId, TokenCounts,
    WorkerAccountId,
};
use sqlx::Connection as _;

const CLIENTS: u64 = 64;
const WORKERS: u64 = 8;

fn rid(n: u64) -> RequestId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    RequestId(id)
}

fn charge(n: u64) -> Charge {
    PricingParams::default()
        .charge(
            &TokenCounts {
                prompt: 500 + n % 100,
                cached: 100,
                completion: 200 + n % 50,
                reasoning: 20,
            },
            Coefficient::ONE,
        )
        .unwrap()
}

async fn fresh_store(url: &str) -> LedgerStore {
    let store = LedgerStore::connect(url, PricingParams::default())
        .await
        .unwrap();
    for c in 0..CLIENTS {
        store
            .sync_client(
                &ClientId(format!("client-{c}")),
                ChainClientState {
                    balance: 1 << 60,
                    stake: 0,
                    tokens_used: 0,
                },
            )
            .await
            .unwrap();
    }
    store
}

/// How one id is written.
#[derive(Clone, Copy)]
enum Mode {
    /// One charge, its own transaction.
    Charge,
    /// A reservation, then the charge, each its own transaction.
    Request,
    /// A reservation, then the charge, through a commit queue.
    QueuedRequest,
    /// A reservation, then its release (a request that failed), through a commit queue: the
    /// writes that are not waited on to the disk.
    QueuedHold,
}

/// Writes ids `first..first + count` from `tasks` tasks at once; answers the elapsed time.
async fn run(store: &LedgerStore, first: u64, count: u64, tasks: u64, mode: Mode) -> Duration {
    let queue = CommitQueue::start(store.clone(), cocoon_ledger_store::DEFAULT_MAX_BATCH);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let next = Arc::new(std::sync::atomic::AtomicU64::new(first));
    for _ in 0..tasks {
        let store = store.clone();
        let queue = queue.clone();
        let next = Arc::clone(&next);
        set.spawn(async move {
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if n >= first + count {
                    break;
                }
                let client = ClientId(format!("client-{}", n % CLIENTS));
                let worker = WorkerAccountId(format!("worker-{}", n % WORKERS));
                match mode {
                    Mode::Charge => {
                        let _ = store
                            .charge_request(&client, &worker, rid(n), &charge(n))
                            .await
                            .unwrap();
                    }
                    Mode::Request => {
                        let _ = store.reserve(&client, rid(n), 10_000).await.unwrap();
                        let _ = store
                            .charge_request(&client, &worker, rid(n), &charge(n))
                            .await
                            .unwrap();
                    }
                    Mode::QueuedHold => {
                        let held = queue.reserve(&client, rid(n), 10_000).await.unwrap();
                        queue.release(&client, held).await.unwrap();
                    }
                    Mode::QueuedRequest => {
                        let _ = queue.reserve(&client, rid(n), 10_000).await.unwrap();
                        let _ = queue
                            .charge_request(&client, &worker, rid(n), &charge(n))
                            .await
                            .unwrap();
                    }
                }
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    start.elapsed()
}

async fn bench_backend(name: &str, url: &str, count: u64) {
    let store = fresh_store(url).await;
    for (label, first, tasks) in [
        ("1 task", 0, 1),
        ("16 tasks", count, 16),
        ("64 tasks", 2 * count, 64),
    ] {
        let elapsed = run(&store, first, count, tasks, Mode::Charge).await;
        report(name, &format!("charge, {label}"), count, elapsed);
    }
    // Replays of ids already charged: the idempotent path.
    let elapsed = run(&store, 0, count, 16, Mode::Charge).await;
    report(name, "replayed charge, 16 tasks", count, elapsed);
    let elapsed = run(&store, 3 * count, count, 64, Mode::Request).await;
    report(name, "request, 64 tasks", count, elapsed);
    let elapsed = run(&store, 4 * count, count, 64, Mode::QueuedRequest).await;
    report(name, "request, 64 tasks, queued", count, elapsed);
    let elapsed = run(&store, 5 * count, count, 1, Mode::QueuedRequest).await;
    report(name, "request, 1 task, queued", count, elapsed);
    // Released ids leave no record.
    let elapsed = run(&store, 6 * count, count, 1, Mode::QueuedHold).await;
    report(name, "hold+release, 1 task, queued", count, elapsed);
    let audit = store.audit().await.unwrap();
    assert_eq!(audit.requests, 6 * count);
    store.close().await;
}

fn report(backend: &str, what: &str, count: u64, elapsed: Duration) {
    let per_second = count as f64 / elapsed.as_secs_f64();
    println!(
        "{backend:<10} {what:<28} {count:>6} in {:>7.3} s: {per_second:>9.0} per second",
        elapsed.as_secs_f64()
    );
}

fn main() {
    let count: u64 = std::env::var("COCOON_BENCH_CHARGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.db");
        bench_backend("sqlite", path.to_str().unwrap(), count).await;

        match std::env::var("COCOON_TEST_POSTGRES_URL") {
            Ok(admin) => {
                let name = format!("cocoon_bench_{}", std::process::id());
                let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                let (server, _) = admin.split('?').next().unwrap().rsplit_once('/').unwrap();
                bench_backend("postgres", &format!("{server}/{name}"), count).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE \"{name}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .unwrap();
            }
            Err(_) => println!(
                "postgres   skipped: COCOON_TEST_POSTGRES_URL is not set (run under \
                 scripts/with-postgres)"
            ),
        }
    });
}
