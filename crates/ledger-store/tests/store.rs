//! The persistent ledger's public behaviour, run against SQLite (a temporary file) and against a
//! real PostgreSQL server: the same cases, generated for both backends at the bottom.
//!
//! PostgreSQL cases read `COCOON_TEST_POSTGRES_URL` (a server where the user may create
//! databases; each case gets its own database). Without it they print a skip line and pass,
//! unless `COCOON_TEST_POSTGRES=required`, when they fail. `scripts/with-postgres` provides both.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cocoon_ledger_store::{
    BackendKind, ClientState, CommitQueue, LedgerStore, LedgerWrite, LedgerWritten, RequestEntry,
    StoreError,
};
use cocoon_market::ledger::ChargeOutcome;
use cocoon_market::{
    ChainClientState, Charge, ClientId, Coefficient, Ledger, MarketError, PricingParams, RequestId,
    TokenCounts, WorkerAccountId,
};
use sqlx::Connection as _;

// ----- harness -----

/// One case's database: a temporary SQLite file, or a fresh PostgreSQL database.
struct Harness {
    url: String,
    backend: BackendKind,
    _dir: Option<tempfile::TempDir>,
    /// The admin URL and the database to drop when the case passed.
    postgres: Option<(String, String)>,
}

static DATABASES: AtomicU64 = AtomicU64::new(0);

impl Harness {
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("ledger.db").to_string_lossy().into_owned();
        Self {
            url,
            backend: BackendKind::Sqlite,
            _dir: Some(dir),
            postgres: None,
        }
    }

    async fn postgres(case: &str) -> Option<Self> {
        let Ok(admin) = std::env::var("COCOON_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var("COCOON_TEST_POSTGRES").as_deref() != Ok("required"),
                "COCOON_TEST_POSTGRES=required but COCOON_TEST_POSTGRES_URL is not set"
            );
            // Straight to stderr, past the test harness's output capture, so the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "skipping PostgreSQL case {case}: COCOON_TEST_POSTGRES_URL is not set \
                 (run under scripts/with-postgres)"
            );
            return None;
        };
        let name = format!(
            "cocoon_{case}_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let (base, params) = match admin.split_once('?') {
            Some((b, p)) => (b, format!("?{p}")),
            None => (admin.as_str(), String::new()),
        };
        let (server, _) = base.rsplit_once('/').unwrap();
        Some(Self {
            url: format!("{server}/{name}{params}"),
            backend: BackendKind::Postgres,
            _dir: None,
            postgres: Some((admin.clone(), name)),
        })
    }

    async fn open(&self) -> LedgerStore {
        self.open_with(PricingParams::default()).await.unwrap()
    }

    async fn open_with(&self, pricing: PricingParams) -> Result<LedgerStore, StoreError> {
        let clock = Arc::new(AtomicU64::new(1_700_000_000_000));
        let store = LedgerStore::connect(&self.url, pricing).await?;
        assert_eq!(store.backend(), self.backend);
        Ok(store.with_clock(move || clock.fetch_add(1, Ordering::Relaxed)))
    }

    async fn finish(self) {
        if let Some((admin, name)) = &self.postgres {
            let mut conn = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

fn client(n: usize) -> ClientId {
    ClientId(format!("0:client-{n:03}"))
}

fn worker(n: usize) -> WorkerAccountId {
    WorkerAccountId(format!("0:worker-{n:03}"))
}

fn rid(n: u64) -> RequestId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[31] = 0xa5;
    RequestId(id)
}

fn charge(prompt: u64, completion: u64) -> Charge {
    PricingParams::default()
        .charge(
            &TokenCounts {
                prompt,
                cached: prompt / 4,
                completion,
                reasoning: completion / 3,
            },
            Coefficient::ONE,
        )
        .unwrap()
}

fn funded(balance: u64) -> ChainClientState {
    ChainClientState {
        balance,
        stake: balance / 2,
        tokens_used: 0,
    }
}

// ----- cases -----

async fn charge_is_idempotent_and_recorded(h: Harness) {
    let store = h.open().await;
    let alice = client(1);
    let gpu = worker(1);
    store.sync_client(&alice, funded(1_000_000)).await.unwrap();
    let id = rid(7);
    let r = store
        .reserve_for_request(&alice, id, Coefficient::ONE, 100, 50)
        .await
        .unwrap();
    assert_eq!(r.tokens(), 50 + 400);
    let a = store.client(&alice).await.unwrap().unwrap();
    assert_eq!((a.reserved_tokens, a.available_tokens), (450, 50_000 - 450));
    assert!(matches!(
        store.request(id).await.unwrap(),
        Some(RequestEntry::Reserved(ref res)) if res.tokens == 450 && res.client == alice
    ));

    let c = PricingParams::default()
        .charge(
            &TokenCounts {
                prompt: 40,
                cached: 0,
                completion: 90,
                reasoning: 0,
            },
            Coefficient::ONE,
        )
        .unwrap();
    let first = store.charge_request(&alice, &gpu, id, &c).await.unwrap();
    assert!(!first.replayed);
    let rec = &first.request.record;
    assert_eq!(
        (
            rec.adjusted_tokens,
            rec.client_cost,
            rec.worker_credit,
            rec.proxy_commission
        ),
        (400, 8000, 6400, 1600)
    );
    assert_eq!(
        (rec.client_tokens_used, rec.worker_tokens_earned),
        (400, 400)
    );
    assert_eq!(first.request.shortfall_nanoton, 0);

    let before = (
        store.client(&alice).await.unwrap(),
        store.worker(&gpu).await.unwrap(),
        store.totals().await.unwrap(),
    );
    // A replay, even with other counts, answers the first charge and changes nothing.
    let again = store
        .charge_request(&alice, &gpu, id, &charge(1000, 1000))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.request, first.request);
    let after = (
        store.client(&alice).await.unwrap(),
        store.worker(&gpu).await.unwrap(),
        store.totals().await.unwrap(),
    );
    assert_eq!(before, after);

    let a = after.0.unwrap();
    assert_eq!((a.tokens_used, a.reserved_tokens, a.requests), (400, 0, 1));
    assert_eq!(a.charged_nanoton, 8000);
    assert_eq!(after.1.unwrap().tokens_earned, 400);
    let t = after.2;
    assert_eq!(
        (
            t.requests,
            t.client_charged,
            t.worker_credited,
            t.proxy_commission
        ),
        (1, 8000, 6400, 1600)
    );
    assert!(t.is_balanced());
    assert_eq!(
        store.reserve(&alice, id, 1).await,
        Err(StoreError::Market(MarketError::RequestAlreadyCharged(id)))
    );
    match store.request(id).await.unwrap() {
        Some(RequestEntry::Charged(c)) => assert_eq!(c, first.request),
        other => panic!("expected a charged request, got {other:?}"),
    }

    // A reservation released frees its request id.
    let id2 = rid(8);
    let r2 = store.reserve(&alice, id2, 1000).await.unwrap();
    store.release(&alice, r2).await.unwrap();
    assert_eq!(
        store.release(&alice, r2).await,
        Err(StoreError::Market(MarketError::UnknownReservation(id2)))
    );
    assert_eq!(store.request(id2).await.unwrap(), None);
    assert_eq!(
        store.client(&alice).await.unwrap().unwrap().reserved_tokens,
        0
    );

    // Listings page by seq.
    for n in 10..15u64 {
        let _ = store
            .charge_request(
                &alice,
                &worker(usize::from(n % 2 == 1)),
                rid(n),
                &charge(n, n),
            )
            .await
            .unwrap();
    }
    let all = store.charged_requests(0, 100).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    let page = store.charged_requests(all[2].seq, 2).await.unwrap();
    assert_eq!(page, all[3..5].to_vec());
    assert_eq!(store.client_requests(&alice, 0, 100).await.unwrap(), all);
    let w0 = store.worker_requests(&worker(0), 0, 100).await.unwrap();
    assert_eq!(
        w0.iter().map(|c| c.record.request_id).collect::<Vec<_>>(),
        vec![rid(10), rid(12), rid(14)]
    );
    let workers = store.workers().await.unwrap();
    assert_eq!(
        workers.iter().map(|w| w.worker.clone()).collect::<Vec<_>>(),
        vec![worker(0), worker(1)]
    );
    assert_eq!(store.audit().await.unwrap(), store.totals().await.unwrap());
    store.close().await;
    h.finish().await;
}

/// The store applies exactly the in-memory ledger's rules (chain syncs, deposits, reservations,
/// shortfalls) to a long pseudo-random sequence of operations.
async fn same_books_as_the_in_memory_ledger(h: Harness) {
    let store = h.open().await;
    let mut ledger = Ledger::new(PricingParams::default()).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    let mut open = Vec::new();
    for step in 0..400u64 {
        let c = client(usize::try_from(next(5)).unwrap());
        match next(10) {
            0 => {
                let state = ChainClientState {
                    balance: next(400_000),
                    stake: 1000,
                    tokens_used: next(3000),
                };
                let _ = ledger.sync_client(&c, state).unwrap();
                store.sync_client(&c, state).await.unwrap();
            }
            1 => {
                let n = next(100_000);
                let _ = ledger.deposit(&c, n).unwrap();
                store.deposit(&c, n).await.unwrap();
            }
            2 | 3 => {
                let id = rid(step);
                let tokens = next(4000);
                let a = ledger.reserve(&c, id, tokens).map_err(StoreError::Market);
                let b = store.reserve(&c, id, tokens).await;
                assert_eq!(a, b, "step {step}");
                if let Ok(r) = a {
                    open.push((c, r));
                }
            }
            4 if !open.is_empty() => {
                let (c, r) = open.swap_remove(usize::try_from(next(open.len() as u64)).unwrap());
                ledger.release(&c, r).unwrap();
                store.release(&c, r).await.unwrap();
            }
            _ => {
                // Settle an open reservation, or charge without one.
                let (c, id) = if !open.is_empty() && next(2) == 0 {
                    let (c, r) =
                        open.swap_remove(usize::try_from(next(open.len() as u64)).unwrap());
                    (c, r.request_id())
                } else {
                    (c, rid(step))
                };
                let w = worker(usize::try_from(next(3)).unwrap());
                let ch = charge(next(2000), next(1500));
                let a = ledger.charge_request(&c, &w, id, &ch);
                let b = store.charge_request(&c, &w, id, &ch).await;
                match (a, b) {
                    (Ok(ChargeOutcome::Charged(x)), Ok(y)) => {
                        assert!(!y.replayed);
                        assert_eq!(x, y.request.record, "step {step}");
                    }
                    (Err(x), Err(y)) => assert_eq!(StoreError::Market(x), y, "step {step}"),
                    (a, b) => panic!("step {step}: ledger {a:?}, store {b:?}"),
                }
            }
        }
    }
    for (id, account) in ledger.clients() {
        let s = store.client(id).await.unwrap().unwrap();
        assert_eq!(
            (
                s.balance,
                s.stake,
                s.tokens_on_chain,
                s.tokens_used,
                s.reserved_tokens,
                s.available_tokens,
                s.shortfall_tokens
            ),
            (
                account.balance(),
                account.stake(),
                account.tokens_on_chain(),
                account.tokens_used(),
                account.reserved(),
                account.available_tokens(),
                account.shortfall_tokens()
            ),
            "client {id}"
        );
    }
    for (id, w) in ledger.workers() {
        let s = store.worker(id).await.unwrap().unwrap();
        assert_eq!((s.tokens_earned, s.requests), (w.tokens_earned, w.requests));
    }
    let totals = store.totals().await.unwrap();
    assert_eq!(totals, ledger.totals());
    assert!(
        totals.shortfall > 0,
        "the sequence should exercise shortfalls"
    );
    assert_eq!(store.audit().await.unwrap(), totals);
    store.close().await;
    h.finish().await;
}

async fn errors_are_typed(h: Harness) {
    let store = h.open().await;
    let (alice, bob, gpu) = (client(1), client(2), worker(1));
    let id = rid(1);
    assert_eq!(
        store.reserve(&alice, id, 1).await,
        Err(StoreError::Market(MarketError::UnknownClient(
            alice.clone()
        )))
    );
    assert_eq!(
        store.charge_request(&alice, &gpu, id, &charge(1, 1)).await,
        Err(StoreError::Market(MarketError::UnknownClient(
            alice.clone()
        )))
    );
    store.deposit(&alice, 20_000).await.unwrap();
    store.deposit(&bob, 20_000).await.unwrap();
    assert_eq!(
        store.reserve(&alice, id, 1001).await,
        Err(StoreError::Market(MarketError::InsufficientBalance {
            needed_tokens: 1001,
            available_tokens: 1000
        }))
    );
    let r = store.reserve(&alice, id, 10).await.unwrap();
    assert_eq!(
        store.reserve(&alice, id, 10).await,
        Err(StoreError::Market(MarketError::DuplicateReservation(id)))
    );
    assert_eq!(
        store.charge_request(&bob, &gpu, id, &charge(1, 1)).await,
        Err(StoreError::Market(MarketError::ReservationClientMismatch {
            request: id,
            reserved_for: alice.clone(),
            charged_to: bob.clone(),
        }))
    );
    assert_eq!(
        store.release(&bob, r).await,
        Err(StoreError::Market(MarketError::UnknownReservation(id)))
    );
    let dear = PricingParams {
        price_per_token: 25,
        ..PricingParams::default()
    }
    .charge(&TokenCounts::default(), Coefficient::ONE)
    .unwrap();
    assert!(matches!(
        store.charge_request(&alice, &gpu, id, &dear).await,
        Err(StoreError::Market(MarketError::PriceMismatch {
            charge_price: 25,
            ledger_price: 20,
            ..
        }))
    ));
    // A refused charge changed nothing: the reservation still holds.
    assert_eq!(
        store.client(&alice).await.unwrap().unwrap().reserved_tokens,
        10
    );
    assert_eq!(
        store.deposit(&alice, u64::MAX / 2).await,
        Err(StoreError::StorageRange("client balance"))
    );
    assert_eq!(
        store.deposit(&alice, u64::MAX).await,
        Err(StoreError::Market(MarketError::Overflow("client balance")))
    );
    assert_eq!(
        store.record_worker_payout(&gpu, 1).await,
        Err(StoreError::Market(MarketError::UnknownWorker(gpu.clone())))
    );
    assert_eq!(
        store.commit_anchor(3).await,
        Err(StoreError::UnknownAnchor(3))
    );
    store.close().await;

    // The store keeps the prices it was created with.
    let other = PricingParams {
        worker_fee_per_token: 15,
        ..PricingParams::default()
    };
    assert!(matches!(
        h.open_with(other).await,
        Err(StoreError::StoredPricingMismatch { .. })
    ));
    h.finish().await;
}

async fn refund_freezes_the_client(h: Harness) {
    let store = h.open().await;
    let (alice, gpu) = (client(1), worker(1));
    store.sync_client(&alice, funded(100_000)).await.unwrap();
    let _ = store
        .charge_request(&alice, &gpu, rid(1), &charge(100, 100))
        .await
        .unwrap();
    let r = store.reserve(&alice, rid(2), 100).await.unwrap();
    assert_eq!(
        store.grant_refund(&alice).await,
        Err(StoreError::Market(MarketError::ReservationsOpen {
            client: alice.clone(),
            reserved_tokens: 100
        }))
    );
    store.release(&alice, r).await.unwrap();
    let a = store.client(&alice).await.unwrap().unwrap();
    let grant = store.grant_refund(&alice).await.unwrap();
    assert_eq!(grant.tokens_used, a.tokens_used);
    assert_eq!(grant.refund_nanoton, 100_000 - a.tokens_used * 20);
    assert_eq!(store.grant_refund(&alice).await.unwrap(), grant);
    let a = store.client(&alice).await.unwrap().unwrap();
    assert_eq!(a.state, ClientState::Closing);
    assert_eq!(a.refund, Some(grant));
    assert_eq!(
        store.reserve(&alice, rid(3), 1).await,
        Err(StoreError::Market(MarketError::ClientClosed(alice.clone())))
    );
    assert_eq!(
        store
            .charge_request(&alice, &gpu, rid(3), &charge(1, 1))
            .await,
        Err(StoreError::Market(MarketError::ClientClosed(alice.clone())))
    );
    // The request charged before the grant still replays.
    assert!(
        store
            .charge_request(&alice, &gpu, rid(1), &charge(100, 100))
            .await
            .unwrap()
            .replayed
    );
    store.close().await;
    h.finish().await;
}

async fn worker_payouts_are_marked(h: Harness) {
    let store = h.open().await;
    let (alice, gpu) = (client(1), worker(1));
    store.sync_client(&alice, funded(1_000_000)).await.unwrap();
    let receipt = store
        .charge_request(&alice, &gpu, rid(1), &charge(300, 200))
        .await
        .unwrap();
    let earned = receipt.request.record.adjusted_tokens;
    assert_eq!(
        store.record_worker_payout(&gpu, earned + 1).await,
        Err(StoreError::Market(MarketError::PayoutExceedsEarnings {
            worker: gpu.clone(),
            paid_tokens: earned + 1,
            earned_tokens: earned
        }))
    );
    let w = store.record_worker_payout(&gpu, earned - 10).await.unwrap();
    assert_eq!(
        (w.tokens_paid, w.paid_nanoton),
        (earned - 10, (earned - 10) * 16)
    );
    assert_eq!(w.unpaid_tokens(), 10);
    // A stale chain read changes nothing.
    let stale = store.record_worker_payout(&gpu, 5).await.unwrap();
    assert_eq!(stale.tokens_paid, earned - 10);
    assert_eq!(store.worker(&gpu).await.unwrap().unwrap(), stale);
    store.close().await;
    h.finish().await;
}

async fn anchors_make_totals_signable(h: Harness) {
    let store = h.open().await;
    let (alice, gpu) = (client(1), worker(1));
    let empty = store.prepare_anchor().await.unwrap();
    assert_eq!((empty.seqno, empty.previous_hash), (1, [0; 32]));
    store.sync_client(&alice, funded(1_000_000)).await.unwrap();
    let first = store
        .charge_request(&alice, &gpu, rid(1), &charge(100, 100))
        .await
        .unwrap()
        .request
        .record;
    let a2 = store.prepare_anchor().await.unwrap();
    assert_eq!((a2.seqno, a2.previous_hash), (2, empty.state_hash));
    assert_eq!((a2.clients, a2.workers, a2.requests), (1, 1, 1));
    assert_ne!(a2.state_hash, empty.state_hash);
    // Charged after the anchor was prepared: not covered by it.
    let _ = store
        .charge_request(&alice, &gpu, rid(2), &charge(50, 50))
        .await
        .unwrap();
    assert_eq!(
        store.client(&alice).await.unwrap().unwrap().anchored_tokens,
        0
    );
    assert_eq!(store.latest_committed_anchor().await.unwrap(), None);

    let committed = store.commit_anchor(2).await.unwrap();
    assert!(committed.committed_at_ms.is_some());
    assert_eq!(store.commit_anchor(2).await.unwrap(), committed);
    let a = store.client(&alice).await.unwrap().unwrap();
    assert_eq!(a.anchored_tokens, first.client_tokens_used);
    assert!(a.tokens_used > a.anchored_tokens);
    let w = store.worker(&gpu).await.unwrap().unwrap();
    assert_eq!(w.anchored_tokens, first.worker_tokens_earned);
    assert_eq!(
        store.latest_committed_anchor().await.unwrap(),
        Some(committed)
    );

    // Committing the older, superseded anchor does not move the signable totals back.
    let _ = store.commit_anchor(1).await.unwrap();
    assert_eq!(
        store.client(&alice).await.unwrap().unwrap().anchored_tokens,
        first.client_tokens_used
    );
    let all = store.anchors().await.unwrap();
    assert_eq!(all.iter().map(|a| a.seqno).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(
        store
            .latest_committed_anchor()
            .await
            .unwrap()
            .unwrap()
            .seqno,
        2
    );
    store.close().await;
    h.finish().await;
}

/// The state hash of a fixed history is the same on every backend (pinned here) and does not
/// depend on the times records were written at.
async fn state_hash_is_backend_independent(h: Harness) {
    let store = h.open().await;
    for n in 0..4 {
        store
            .sync_client(&client(n), funded(50_000 + n as u64))
            .await
            .unwrap();
    }
    store.deposit(&client(2), 777).await.unwrap();
    for n in 0..12u64 {
        let c = client(usize::try_from(n % 4).unwrap());
        let w = worker(usize::try_from(n % 3).unwrap());
        let _ = store
            .charge_request(&c, &w, rid(n), &charge(n * 37, n * 11))
            .await
            .unwrap();
    }
    let _ = store.record_worker_payout(&worker(1), 10).await.unwrap();
    let _ = store.grant_refund(&client(3)).await.unwrap();
    let a1 = store.prepare_anchor().await.unwrap();
    let a2 = store.prepare_anchor().await.unwrap();
    assert_eq!(a2.previous_hash, a1.state_hash);
    assert_eq!(
        hex(&a1.state_hash),
        "3d7f8a40a8cbc75c9679f78b3cee0c399ed4fcfd3ecae674bccb4895863c7059",
        "the state hash layout or the accounting changed"
    );
    assert_eq!(
        hex(&a2.state_hash),
        "838788d1c94532a97096554e941f4b5085f8a64631e8340db2cf8125a1aa17a6"
    );
    store.close().await;
    h.finish().await;
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Many tasks charge at once, every request id three times (some after reserving), and the books
/// still add up to the nanoTON.
async fn concurrent_charges_with_duplicates(h: Harness) {
    let store = h.open().await;
    const CLIENTS: usize = 8;
    const REQUESTS: u64 = 240;
    for n in 0..CLIENTS {
        // The last client is poor: its charges run into shortfall while others race.
        let balance = if n == CLIENTS - 1 { 30_000 } else { 50_000_000 };
        store
            .sync_client(&client(n), funded(balance))
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for copy in 0..3u64 {
        for n in 0..REQUESTS {
            let store = store.clone();
            tasks.spawn(async move {
                let c = client(usize::try_from(n % CLIENTS as u64).unwrap());
                let w = worker(usize::try_from(n % 3).unwrap());
                let id = rid(n);
                if copy == 0 && n % 2 == 0 {
                    match store.reserve(&c, id, 100).await {
                        Ok(_)
                        | Err(StoreError::Market(MarketError::RequestAlreadyCharged(_)))
                        | Err(StoreError::Market(MarketError::InsufficientBalance { .. })) => {}
                        Err(e) => panic!("reserve {n}: {e}"),
                    }
                }
                let receipt = store
                    .charge_request(&c, &w, id, &charge(n * 7 + 10, n * 3 + 5))
                    .await
                    .unwrap();
                (n, receipt)
            });
        }
    }
    let mut by_request: HashMap<u64, Vec<_>> = HashMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (n, receipt) = joined.unwrap();
        by_request.entry(n).or_default().push(receipt);
    }
    assert_eq!(by_request.len(), REQUESTS as usize);
    let mut client_charged: BTreeMap<ClientId, (u64, u64)> = BTreeMap::new();
    let mut worker_earned: BTreeMap<WorkerAccountId, u64> = BTreeMap::new();
    let (mut charged, mut shortfall, mut credited, mut commission) = (0u128, 0u128, 0u128, 0u128);
    for (n, receipts) in &by_request {
        assert_eq!(receipts.len(), 3);
        let firsts: Vec<_> = receipts.iter().filter(|r| !r.replayed).collect();
        assert_eq!(
            firsts.len(),
            1,
            "request {n} was booked {} times",
            firsts.len()
        );
        assert!(receipts.iter().all(|r| r.request == firsts[0].request));
        let r = &firsts[0].request;
        charged += u128::from(r.record.client_cost);
        shortfall += u128::from(r.shortfall_nanoton);
        credited += u128::from(r.record.worker_credit);
        commission += u128::from(r.record.proxy_commission);
        let e = client_charged.entry(r.record.client.clone()).or_default();
        e.0 += r.record.charged_tokens;
        e.1 += 1;
        *worker_earned.entry(r.record.worker.clone()).or_default() += r.record.adjusted_tokens;
    }
    let totals = store.totals().await.unwrap();
    assert_eq!(totals.requests, REQUESTS);
    assert_eq!(
        (
            totals.client_charged,
            totals.shortfall,
            totals.worker_credited,
            totals.proxy_commission
        ),
        (charged, shortfall, credited, commission)
    );
    assert!(totals.shortfall > 0);
    assert_eq!(
        totals.client_charged + totals.shortfall,
        credited + commission
    );
    for (c, (tokens, requests)) in &client_charged {
        let s = store.client(c).await.unwrap().unwrap();
        assert_eq!(
            (s.tokens_used, s.requests, s.reserved_tokens),
            (*tokens, *requests, 0)
        );
    }
    for (w, earned) in &worker_earned {
        assert_eq!(
            store.worker(w).await.unwrap().unwrap().tokens_earned,
            *earned
        );
    }
    // Each client's cumulative count after each of its charges is distinct and increasing in
    // charge order: no two charges read the same balance.
    for c in client_charged.keys() {
        let rows = store.client_requests(c, 0, 10_000).await.unwrap();
        let mut used: Vec<_> = rows.iter().map(|r| r.record.client_tokens_used).collect();
        let n = used.len();
        used.sort_unstable();
        used.dedup();
        let poor = c == &client(CLIENTS - 1);
        assert!(poor || used.len() == n, "client {c} has repeated totals");
    }
    assert_eq!(store.audit().await.unwrap(), totals);
    store.close().await;
    h.finish().await;
}

/// Anchors prepared and committed while many tasks charge: nothing deadlocks or fails, every
/// anchor covers a consistent state (its request count only grows, its signable totals never
/// exceed the real ones), and the books still audit.
async fn anchoring_while_charging(h: Harness) {
    let store = h.open().await;
    for n in 0..4 {
        store
            .sync_client(&client(n), funded(1 << 40))
            .await
            .unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8u64 {
        let store = store.clone();
        tasks.spawn(async move {
            for k in 0..30u64 {
                let n = t * 1000 + k;
                let c = client(usize::try_from(n % 4).unwrap());
                let w = worker(usize::try_from(k % 3).unwrap());
                let _ = store
                    .charge_request(&c, &w, rid(n), &charge(n % 500 + 1, 20))
                    .await
                    .unwrap();
            }
        });
    }
    let mut anchors = Vec::new();
    for _ in 0..6 {
        let a = store.prepare_anchor().await.unwrap();
        let _ = store.commit_anchor(a.seqno).await.unwrap();
        anchors.push(a);
        tokio::task::yield_now().await;
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    assert!(
        anchors
            .windows(2)
            .all(|w| w[0].requests <= w[1].requests && w[1].previous_hash == w[0].state_hash)
    );
    for c in store.clients().await.unwrap() {
        assert!(c.anchored_tokens <= c.tokens_used);
    }
    let last = store.prepare_anchor().await.unwrap();
    assert_eq!(last.requests, 240);
    let _ = store.commit_anchor(last.seqno).await.unwrap();
    for c in store.clients().await.unwrap() {
        assert_eq!(c.anchored_tokens, c.tokens_used);
    }
    for w in store.workers().await.unwrap() {
        assert_eq!(w.anchored_tokens, w.tokens_earned);
    }
    assert_eq!(store.audit().await.unwrap().requests, 240);
    store.close().await;
    h.finish().await;
}

async fn reopen_keeps_the_books(h: Harness) {
    let store = h.open().await;
    let (alice, gpu) = (client(1), worker(1));
    store.sync_client(&alice, funded(5_000_000)).await.unwrap();
    let mut receipts = Vec::new();
    for n in 0..20 {
        receipts.push(
            store
                .charge_request(
                    &alice,
                    &worker(n % 2),
                    rid(n as u64),
                    &charge(n as u64 * 10, 40),
                )
                .await
                .unwrap(),
        );
    }
    let _ = store.record_worker_payout(&worker(0), 5).await.unwrap();
    let anchor = store.prepare_anchor().await.unwrap();
    let _ = store.commit_anchor(anchor.seqno).await.unwrap();
    // In flight when the process stops.
    let _ = store.reserve(&alice, rid(100), 2000).await.unwrap();
    let _ = store.reserve(&alice, rid(101), 3000).await.unwrap();
    assert_eq!(store.reservations().await.unwrap().len(), 2);
    let before = (
        store.totals().await.unwrap(),
        store.clients().await.unwrap(),
        store.workers().await.unwrap(),
        store.charged_requests(0, 1000).await.unwrap(),
        store.anchors().await.unwrap(),
    );
    assert_eq!(store.reservations_cleared_at_open(), 0);
    store.close().await;
    drop(store);

    let store = h.open().await;
    assert_eq!(store.reservations_cleared_at_open(), 2);
    assert!(store.reservations().await.unwrap().is_empty());
    let mut clients = before.1.clone();
    clients[0].reserved_tokens = 0;
    clients[0].available_tokens += 5000;
    assert_eq!(store.totals().await.unwrap(), before.0);
    assert_eq!(store.clients().await.unwrap(), clients);
    assert_eq!(store.workers().await.unwrap(), before.2);
    assert_eq!(store.charged_requests(0, 1000).await.unwrap(), before.3);
    assert_eq!(store.anchors().await.unwrap(), before.4);
    assert_eq!(store.audit().await.unwrap(), before.0);
    // Replays still answer the first charge; the dropped reservations' ids are free.
    let again = store
        .charge_request(&alice, &gpu, rid(3), &charge(1, 1))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.request, receipts[3].request);
    let _ = store.reserve(&alice, rid(100), 2000).await.unwrap();
    let next = store.prepare_anchor().await.unwrap();
    assert_eq!(
        (next.seqno, next.previous_hash),
        (anchor.seqno + 1, anchor.state_hash)
    );
    store.close().await;
    h.finish().await;
}

async fn inspection_leaves_the_running_books_alone(h: Harness) {
    let store = h.open().await;
    let alice = client(1);
    let (opened, fresh) = store.fund_new_client(&alice, 1_000_000).await.unwrap();
    assert!(fresh);
    assert_eq!(
        (opened.balance, opened.deposited_nanoton, opened.token_limit),
        (1_000_000, 1_000_000, 50_000)
    );
    // Many first sessions of one client at once: one deposit.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.fund_new_client(&client(2), 500).await.unwrap().1
        }));
    }
    let mut opened_now = 0;
    for t in tasks {
        opened_now += usize::from(t.await.unwrap());
    }
    assert_eq!(opened_now, 1);
    assert_eq!(
        store.client(&client(2)).await.unwrap().unwrap().balance,
        500
    );
    let receipt = store
        .charge_request(&alice, &worker(1), rid(1), &charge(100, 50))
        .await
        .unwrap();
    let (again, fresh) = store.fund_new_client(&alice, 1_000_000).await.unwrap();
    assert!(!fresh);
    assert_eq!(again.balance, 1_000_000);
    assert_eq!(again.tokens_used, receipt.request.record.client_tokens_used);
    // A request in flight while someone inspects the store.
    let held = store.reserve(&alice, rid(2), 1000).await.unwrap();

    let inspector = LedgerStore::inspect(&h.url).await.unwrap();
    assert!(inspector.is_read_only() && !store.is_read_only());
    assert_eq!(inspector.backend(), h.backend);
    assert_eq!(*inspector.pricing(), PricingParams::default());
    assert_eq!(inspector.reservations_cleared_at_open(), 0);
    assert_eq!(inspector.reservations().await.unwrap().len(), 1);
    assert_eq!(
        inspector.audit().await.unwrap(),
        store.audit().await.unwrap()
    );
    assert_eq!(
        inspector.charged_requests(0, 10).await.unwrap(),
        vec![receipt.request.clone()]
    );
    assert_eq!(
        inspector.deposit(&alice, 1).await,
        Err(StoreError::ReadOnlyStore)
    );
    assert_eq!(
        inspector.fund_new_client(&client(3), 1).await,
        Err(StoreError::ReadOnlyStore)
    );
    assert_eq!(
        inspector
            .charge_request(&alice, &worker(1), rid(3), &charge(1, 1))
            .await,
        Err(StoreError::ReadOnlyStore)
    );
    assert_eq!(
        inspector.prepare_anchor().await,
        Err(StoreError::ReadOnlyStore)
    );
    inspector.close().await;

    // The reservation survived the inspection and settles as usual.
    let settled = store
        .charge_request(&alice, &worker(1), held.request_id(), &charge(10, 10))
        .await
        .unwrap();
    assert!(!settled.replayed);
    let alice_now = store.client(&alice).await.unwrap().unwrap();
    assert_eq!(alice_now.reserved_tokens, 0);
    assert_eq!(alice_now.requests, 2);
    assert!(store.audit().await.unwrap().is_balanced());
    store.close().await;
    h.finish().await;
}

async fn batches_commit_together_and_refusals_stay_alone(h: Harness) {
    let store = h.open().await;
    let (alice, gpu) = (client(1), worker(1));
    let _ = store.fund_new_client(&alice, 200_000).await.unwrap(); // 10,000 tokens
    let c = charge(100, 50);
    let adjusted = c.adjusted_total();
    // A hold already given back: releasing it again is refused.
    let stale = store.reserve(&alice, rid(3), 5).await.unwrap();
    store.release(&alice, stale).await.unwrap();
    let writes = vec![
        LedgerWrite::Reserve {
            client: alice.clone(),
            request_id: rid(1),
            tokens: 1000,
        },
        LedgerWrite::Reserve {
            client: alice.clone(),
            request_id: rid(2),
            tokens: 9_500,
        },
        LedgerWrite::Charge {
            client: alice.clone(),
            worker: gpu.clone(),
            request_id: rid(1),
            charge: c,
        },
        LedgerWrite::Release {
            client: alice.clone(),
            reservation: stale,
        },
        LedgerWrite::Charge {
            client: alice.clone(),
            worker: gpu.clone(),
            request_id: rid(4),
            charge: c,
        },
        LedgerWrite::Reserve {
            client: alice.clone(),
            request_id: rid(1),
            tokens: 1,
        },
        LedgerWrite::Charge {
            client: alice.clone(),
            worker: gpu.clone(),
            request_id: rid(1),
            charge: c,
        },
        LedgerWrite::Reserve {
            client: client(9),
            request_id: rid(5),
            tokens: 1,
        },
    ];
    let answers = store.write_batch(&writes).await;
    assert_eq!(answers.len(), writes.len());
    let Ok(LedgerWritten::Reserved(held)) = &answers[0] else {
        panic!("{:?}", answers[0]);
    };
    assert_eq!((held.request_id(), held.tokens()), (rid(1), 1000));
    // 10,000 − 1,000 held: 9,500 does not fit.
    assert_eq!(
        answers[1],
        Err(StoreError::Market(MarketError::InsufficientBalance {
            needed_tokens: 9_500,
            available_tokens: 9_000
        }))
    );
    let Ok(LedgerWritten::Charged(first)) = &answers[2] else {
        panic!("{:?}", answers[2]);
    };
    assert!(!first.replayed);
    assert_eq!(first.request.record.client_tokens_used, adjusted);
    assert_eq!(
        answers[3],
        Err(StoreError::Market(MarketError::UnknownReservation(rid(3))))
    );
    let Ok(LedgerWritten::Charged(fourth)) = &answers[4] else {
        panic!("{:?}", answers[4]);
    };
    // The later write saw the earlier one.
    assert_eq!(fourth.request.record.client_tokens_used, 2 * adjusted);
    assert_eq!(
        answers[5],
        Err(StoreError::Market(MarketError::RequestAlreadyCharged(rid(
            1
        ))))
    );
    let Ok(LedgerWritten::Charged(again)) = &answers[6] else {
        panic!("{:?}", answers[6]);
    };
    assert!(again.replayed);
    assert_eq!(again.request, first.request);
    assert_eq!(
        answers[7],
        Err(StoreError::Market(MarketError::UnknownClient(client(9))))
    );

    let alice_now = store.client(&alice).await.unwrap().unwrap();
    assert_eq!(
        (
            alice_now.tokens_used,
            alice_now.reserved_tokens,
            alice_now.requests
        ),
        (2 * adjusted, 0, 2)
    );
    assert!(store.reservations().await.unwrap().is_empty());
    assert_eq!(store.audit().await.unwrap().requests, 2);
    assert!(store.write_batch(&[]).await.is_empty());
    store.close().await;
    h.finish().await;
}

async fn the_commit_queue_books_every_request_once(h: Harness) {
    let store = h.open().await;
    let queue = CommitQueue::start(store.clone(), 32);
    for n in 0..4 {
        let _ = store
            .fund_new_client(&client(n), 1_000_000_000)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for n in 0..400u64 {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            let who = client((n % 4) as usize);
            let held = queue
                .reserve_for_request(&who, rid(n), Coefficient::ONE, 50, 100)
                .await
                .unwrap();
            if n % 10 == 0 {
                queue.release(&who, held).await.unwrap();
                return 0;
            }
            let c = charge(n % 90 + 1, n % 40 + 1);
            let receipt = queue
                .charge_request(&who, &worker((n % 3) as usize), rid(n), &c)
                .await
                .unwrap();
            assert!(!receipt.replayed);
            // Charging again, as a retry would: booked once.
            let again = queue
                .charge_request(&who, &worker((n % 3) as usize), rid(n), &c)
                .await
                .unwrap();
            assert!(again.replayed);
            assert_eq!(again.request, receipt.request);
            receipt.request.record.client_cost
        }));
    }
    let mut charged = 0u128;
    for t in tasks {
        charged += u128::from(t.await.unwrap());
    }
    let totals = store.audit().await.unwrap();
    assert_eq!(totals.requests, 360);
    assert_eq!(totals.client_charged, charged);
    assert!(totals.is_balanced());
    assert!(store.reservations().await.unwrap().is_empty());
    assert_eq!(queue.store().backend(), h.backend);
    // Refusals come back through the queue as from the store.
    assert!(matches!(
        queue.reserve(&client(0), rid(1000), u64::MAX / 2).await,
        Err(StoreError::Market(MarketError::InsufficientBalance { .. }))
    ));
    let stale = queue.reserve(&client(0), rid(1001), 1).await.unwrap();
    queue.release(&client(0), stale).await.unwrap();
    assert_eq!(
        queue.release(&client(0), stale).await,
        Err(StoreError::Market(MarketError::UnknownReservation(rid(
            1001
        ))))
    );
    store.close().await;
    assert!(matches!(
        queue.reserve(&client(0), rid(1002), 1).await,
        Err(StoreError::Storage { .. })
    ));
    h.finish().await;
}

// ----- both backends -----

macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    super::$case(super::Harness::sqlite()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if let Some(h) = super::Harness::postgres(stringify!($case)).await {
                        super::$case(h).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    charge_is_idempotent_and_recorded,
    same_books_as_the_in_memory_ledger,
    errors_are_typed,
    refund_freezes_the_client,
    worker_payouts_are_marked,
    anchors_make_totals_signable,
    state_hash_is_backend_independent,
    concurrent_charges_with_duplicates,
    anchoring_while_charging,
    reopen_keeps_the_books,
    inspection_leaves_the_running_books_alone,
    batches_commit_together_and_refusals_stay_alone,
    the_commit_queue_books_every_request_once,
);

#[tokio::test]
async fn an_in_memory_sqlite_store_works() {
    let store = LedgerStore::connect("sqlite::memory:", PricingParams::default())
        .await
        .unwrap();
    store.deposit(&client(1), 1000).await.unwrap();
    let receipt = store
        .charge_request(&client(1), &worker(1), rid(1), &charge(10, 10))
        .await
        .unwrap();
    assert_eq!(
        store.totals().await.unwrap().client_charged,
        u128::from(receipt.request.record.client_cost)
    );
}

#[tokio::test]
async fn bad_urls_are_refused() {
    assert!(matches!(
        LedgerStore::connect("mysql://localhost/x", PricingParams::default()).await,
        Err(StoreError::InvalidStoreUrl(_))
    ));
    assert!(matches!(
        LedgerStore::connect(
            "postgres://nobody@127.0.0.1:1/none",
            PricingParams::default()
        )
        .await,
        Err(StoreError::Storage { .. })
    ));
}

#[tokio::test]
async fn a_first_open_makes_the_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("proxy").join("books").join("ledger.sqlite");
    let url = file.to_string_lossy().into_owned();
    let store = LedgerStore::connect(&url, PricingParams::default())
        .await
        .unwrap();
    store.close().await;
    assert!(file.exists());
    // A path whose directory cannot be made (a file stands in its place) is a typed error.
    let blocked = dir
        .path()
        .join("proxy")
        .join("books")
        .join("ledger.sqlite")
        .join("x.db");
    assert!(matches!(
        LedgerStore::connect(&blocked.to_string_lossy(), PricingParams::default()).await,
        Err(StoreError::Storage { .. })
    ));
}

#[tokio::test]
async fn inspecting_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let url = missing.to_string_lossy().into_owned();
    assert!(matches!(
        LedgerStore::inspect(&url).await,
        Err(StoreError::StoreNotFound(_))
    ));
    assert!(!missing.exists());
    assert!(matches!(
        LedgerStore::inspect(&format!("sqlite:{url}")).await,
        Err(StoreError::Storage { .. })
    ));
    assert!(!missing.exists());
    assert!(matches!(
        LedgerStore::inspect("sqlite::memory:").await,
        Err(StoreError::StoreNotFound(_))
    ));
}

#[test]
fn passwords_are_masked_in_urls() {
    use cocoon_ledger_store::redact_url;
    assert_eq!(
        redact_url("postgres://cocoon:s3cret@db.internal:5432/ledger?sslmode=require"),
        "postgres://cocoon:***@db.internal:5432/ledger?sslmode=require"
    );
    assert_eq!(
        redact_url("postgres://cocoon@127.0.0.1/ledger"),
        "postgres://cocoon@127.0.0.1/ledger"
    );
    assert_eq!(
        redact_url("/var/lib/cocoon/ledger.sqlite"),
        "/var/lib/cocoon/ledger.sqlite"
    );
}
