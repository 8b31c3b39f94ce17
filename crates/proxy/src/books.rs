//! What a proxy's books say, read for its operator: the audit, the accounts, the anchors and
//! the charged requests, each as text and as JSON. `cocoon-proxy ledger …` prints them; they
//! live in the library so that any tool reading a ledger store (a dashboard, a script embedding
//! the proxy) shows the same figures in the same form.

use std::fmt;

use cocoon_ledger_store::{
    Anchor, BackendKind, ChargedRequest, LedgerStore, MAX_PAGE, StoreError, StoredClient,
    StoredWorker, redact_url,
};
use cocoon_market::LedgerTotals;
use cocoon_market::PricingParams;
use serde_json::{Value, json};

use crate::ProxyError;

/// The backend's name as reports show it.
fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Sqlite => "sqlite",
        BackendKind::Postgres => "postgres",
    }
}

/// The books audited: every total recomputed from the request records and checked against the
/// accounts, beside how many accounts and requests in flight there are.
#[derive(Debug)]
pub struct Audit {
    /// The ledger, its password hidden.
    pub ledger: String,
    /// Its backend.
    pub backend: BackendKind,
    /// The prices it was created with.
    pub pricing: PricingParams,
    /// The totals when the books add up, else why not.
    pub totals: Result<LedgerTotals, StoreError>,
    /// Client accounts.
    pub clients: usize,
    /// Worker accounts.
    pub workers: usize,
    /// Requests in flight holding a reservation.
    pub reservations: usize,
    /// The seqno of the latest anchor seen on chain.
    pub latest_committed_anchor: Option<u32>,
}

impl Audit {
    /// Audits the books of `store`, opened from `url`.
    ///
    /// # Errors
    /// [`ProxyError::Ledger`] when the accounts cannot be read (the audit's own verdict is in
    /// [`Audit::totals`]).
    pub async fn read(store: &LedgerStore, url: &str) -> Result<Self, ProxyError> {
        let totals = store.audit().await;
        Ok(Self {
            ledger: redact_url(url),
            backend: store.backend(),
            pricing: *store.pricing(),
            totals,
            clients: store.clients().await?.len(),
            workers: store.workers().await?.len(),
            reservations: store.reservations().await?.len(),
            latest_committed_anchor: store.latest_committed_anchor().await?.map(|a| a.seqno),
        })
    }

    /// The report as one JSON object.
    pub fn to_json(&self) -> Value {
        let (totals, error) = match &self.totals {
            Ok(t) => (Some(*t), None),
            Err(e) => (None, Some(e.to_string())),
        };
        json!({
            "ledger": self.ledger,
            "backend": backend_name(self.backend),
            "pricing": self.pricing,
            "balanced": totals.is_some(),
            "error": error,
            "totals": totals,
            "clients": self.clients,
            "workers": self.workers,
            "reservations": self.reservations,
            "latest_committed_anchor": self.latest_committed_anchor,
        })
    }

    /// The verdict: the totals when the books add up.
    ///
    /// # Errors
    /// [`ProxyError::Unbalanced`] when they do not.
    pub fn verdict(self) -> Result<LedgerTotals, ProxyError> {
        self.totals.map_err(ProxyError::Unbalanced)
    }
}

impl fmt::Display for Audit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ledger {} ({})\naccounts: {} clients, {} workers; {} requests in flight\n\
             latest committed anchor: {}",
            self.ledger,
            backend_name(self.backend),
            self.clients,
            self.workers,
            self.reservations,
            self.latest_committed_anchor
                .map_or("none".into(), |s| s.to_string()),
        )?;
        if let Ok(t) = &self.totals {
            write!(
                f,
                "\nrequests charged: {}\nadjusted tokens: {}\nclients charged: {} nanoTON\n\
                 shortfall: {} nanoTON\nworkers credited: {} nanoTON\ncommission: {} nanoTON\n\
                 balanced: client charges + shortfall = worker credits + commission",
                t.requests,
                t.adjusted_tokens,
                t.client_charged,
                t.shortfall,
                t.worker_credited,
                t.proxy_commission
            )?;
        }
        Ok(())
    }
}

/// Every client and worker account.
#[derive(Debug, Clone)]
pub struct Accounts {
    /// The clients' accounts.
    pub clients: Vec<StoredClient>,
    /// The workers' accounts.
    pub workers: Vec<StoredWorker>,
}

impl Accounts {
    /// Reads every account of `store`.
    ///
    /// # Errors
    /// [`ProxyError::Ledger`] when they cannot be read.
    pub async fn read(store: &LedgerStore) -> Result<Self, ProxyError> {
        Ok(Self {
            clients: store.clients().await?,
            workers: store.workers().await?,
        })
    }

    /// The accounts as one JSON object (`clients`, `workers`).
    pub fn to_json(&self) -> Value {
        json!({
            "clients": self.clients.iter().map(client_json).collect::<Vec<_>>(),
            "workers": self.workers.iter().map(worker_json).collect::<Vec<_>>(),
        })
    }
}

impl fmt::Display for Accounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} clients", self.clients.len())?;
        for c in &self.clients {
            write!(
                f,
                "\n  {}: balance {} nanoTON, used {} of {} tokens, reserved {}, charged {} \
                 nanoTON in {} requests{}",
                c.client,
                c.balance,
                c.tokens_used,
                c.token_limit,
                c.reserved_tokens,
                c.charged_nanoton,
                c.requests,
                if c.refund.is_some() { ", closing" } else { "" },
            )?;
        }
        write!(f, "\n{} workers", self.workers.len())?;
        for w in &self.workers {
            write!(
                f,
                "\n  {}: earned {} tokens ({} paid), credited {} nanoTON, commission {} nanoTON \
                 in {} requests",
                w.worker,
                w.tokens_earned,
                w.tokens_paid,
                w.credited_nanoton,
                w.commission_nanoton,
                w.requests
            )?;
        }
        Ok(())
    }
}

/// One client account as JSON.
pub fn client_json(c: &StoredClient) -> Value {
    json!({
        "client": c.client.0,
        "closing": c.refund.is_some(),
        "balance": c.balance,
        "stake": c.stake,
        "tokens_on_chain": c.tokens_on_chain,
        "tokens_used": c.tokens_used,
        "anchored_tokens": c.anchored_tokens,
        "reserved_tokens": c.reserved_tokens,
        "token_limit": c.token_limit,
        "available_tokens": c.available_tokens,
        "shortfall_tokens": c.shortfall_tokens,
        "deposited": c.deposited_nanoton,
        "charged": c.charged_nanoton,
        "shortfall": c.shortfall_nanoton,
        "requests": c.requests,
        "updated_at_ms": c.updated_at_ms,
    })
}

/// One worker account as JSON.
pub fn worker_json(w: &StoredWorker) -> Value {
    json!({
        "worker": w.worker.0,
        "tokens_earned": w.tokens_earned,
        "anchored_tokens": w.anchored_tokens,
        "tokens_paid": w.tokens_paid,
        "credited": w.credited_nanoton,
        "commission": w.commission_nanoton,
        "paid": w.paid_nanoton,
        "requests": w.requests,
        "updated_at_ms": w.updated_at_ms,
    })
}

/// The ledger's anchors: seqno, state hash, and when the chain was seen to hold them.
#[derive(Debug, Clone)]
pub struct Anchors(pub Vec<Anchor>);

impl Anchors {
    /// Reads every anchor of `store`.
    ///
    /// # Errors
    /// [`ProxyError::Ledger`] when they cannot be read.
    pub async fn read(store: &LedgerStore) -> Result<Self, ProxyError> {
        Ok(Self(store.anchors().await?))
    }

    /// The anchors as one JSON object (`anchors`).
    pub fn to_json(&self) -> Value {
        let list: Vec<_> = self
            .0
            .iter()
            .map(|a| {
                json!({
                    "seqno": a.seqno,
                    "state_hash": hex::encode(a.state_hash),
                    "previous_hash": hex::encode(a.previous_hash),
                    "clients": a.clients,
                    "workers": a.workers,
                    "requests": a.requests,
                    "prepared_at_ms": a.prepared_at_ms,
                    "committed_at_ms": a.committed_at_ms,
                })
            })
            .collect();
        json!({ "anchors": list })
    }
}

impl fmt::Display for Anchors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} anchors", self.0.len())?;
        for a in &self.0 {
            write!(
                f,
                "\n  #{} {} over {} requests{}",
                a.seqno,
                hex::encode(a.state_hash),
                a.requests,
                if a.committed_at_ms.is_some() {
                    ", on chain"
                } else {
                    ", not seen on chain"
                },
            )?;
        }
        Ok(())
    }
}

/// Charged requests, oldest first, read a page at a time.
#[derive(Debug, Clone)]
pub struct RequestPages {
    /// Only requests after this position (`seq`).
    after: u64,
    /// How many more to read at most.
    left: u64,
}

impl RequestPages {
    /// The requests after position `after`, at most `limit` of them (all without).
    pub fn new(after: u64, limit: Option<u64>) -> Self {
        Self {
            after,
            left: limit.unwrap_or(u64::MAX),
        }
    }

    /// The next page; empty when there is no more.
    ///
    /// # Errors
    /// [`ProxyError::Ledger`] when the requests cannot be read.
    pub async fn next(&mut self, store: &LedgerStore) -> Result<Vec<ChargedRequest>, ProxyError> {
        if self.left == 0 {
            return Ok(Vec::new());
        }
        let page = u32::try_from(self.left.min(u64::from(MAX_PAGE))).unwrap_or(MAX_PAGE);
        let rows = store.charged_requests(self.after, page).await?;
        match rows.last() {
            Some(last) => {
                self.after = last.seq;
                self.left = self.left.saturating_sub(rows.len() as u64);
            }
            None => self.left = 0,
        }
        Ok(rows)
    }
}

/// One charged request as JSON.
pub fn request_json(r: &ChargedRequest) -> Value {
    let c = &r.record;
    json!({
        "seq": r.seq,
        "request_id": c.request_id.to_string(),
        "client": c.client.0,
        "worker": c.worker.0,
        "coefficient": c.coefficient.get(),
        "uncached_prompt_tokens": c.tokens.prompt,
        "cached_tokens": c.tokens.cached,
        "visible_completion_tokens": c.tokens.completion,
        "reasoning_tokens": c.tokens.reasoning,
        "adjusted_tokens": c.adjusted_tokens,
        "charged_tokens": c.charged_tokens,
        "shortfall_tokens": c.shortfall_tokens,
        "client_charge": c.client_cost,
        "shortfall": r.shortfall_nanoton,
        "worker_credit": c.worker_credit,
        "commission": c.proxy_commission,
        "client_tokens_used": c.client_tokens_used,
        "worker_tokens_earned": c.worker_tokens_earned,
        "charged_at_ms": r.charged_at_ms,
    })
}

/// One charged request as a line of text.
pub fn request_line(r: &ChargedRequest) -> String {
    let c = &r.record;
    format!(
        "#{} {} client {} worker {} tokens {}+{} prompt {}+{} completion \
         → {} adjusted: charge {} + shortfall {} = credit {} + commission {}",
        r.seq,
        c.request_id,
        c.client,
        c.worker,
        c.tokens.prompt,
        c.tokens.cached,
        c.tokens.completion,
        c.tokens.reasoning,
        c.adjusted_tokens,
        c.client_cost,
        r.shortfall_nanoton,
        c.worker_credit,
        c.proxy_commission
    )
}
