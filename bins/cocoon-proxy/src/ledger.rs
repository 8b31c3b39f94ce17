//! `cocoon-proxy ledger …`: reads a proxy's books — an audit, the accounts, the request
//! records — through a store opened for inspection, so it may run beside the proxy that owns
//! them and changes nothing. Also where the default ledger file lives.

use std::io::Write as _;

use clap::Subcommand;
use cocoon_ledger_store::{
    BackendKind, ChargedRequest, LedgerStore, MAX_PAGE, StoredClient, StoredWorker, redact_url,
};
use cocoon_proxy::ProxyConfig;
use serde_json::{Value, json};

/// What to read.
#[derive(Subcommand, Debug)]
pub(crate) enum Action {
    /// Recomputes every total from the request records, checks them against the accounts and
    /// checks that client charges + shortfall = worker credits + commission; exits with status
    /// 1 when anything disagrees.
    Audit {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every client and worker account.
    Accounts {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The ledger's anchors (seqno, state hash, when the chain was seen to hold them).
    Anchors {
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Charged requests, oldest first.
    Requests {
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
        /// Only requests after this position (`seq`) in the table.
        #[arg(long, default_value_t = 0)]
        after: u64,
        /// At most this many requests.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// The ledger file used when no `ledger_url` is configured: `ledger.sqlite` in the data
/// directory, or `local-ledger.sqlite` in local mode so that play money never mixes with a real
/// ledger.
pub(crate) fn default_file(config: &ProxyConfig, local: bool) -> Result<String, String> {
    let dir = match &config.data_dir {
        Some(d) => d.clone(),
        None => cocoon_cli::Role::Proxy.default_data_dir().ok_or(
            "no data directory: set XDG_DATA_HOME or HOME, or give --data-dir or --ledger-url",
        )?,
    };
    let name = if local {
        "local-ledger.sqlite"
    } else {
        "ledger.sqlite"
    };
    dir.join(name)
        .into_os_string()
        .into_string()
        .map_err(|p| format!("the ledger path {p:?} is not UTF-8: give --ledger-url"))
}

/// Creates the directory of a ledger given as a plain file path, so a first start needs no
/// preparation.
pub(crate) fn prepare(url: &str) -> Result<(), String> {
    if url.contains("://") || url.starts_with("sqlite:") {
        return Ok(());
    }
    match std::path::Path::new(url).parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the ledger directory {}: {e}", dir.display())),
        _ => Ok(()),
    }
}

/// Runs one `ledger` action against the store at `url`.
pub(crate) async fn run(url: &str, action: &Action) -> Result<(), String> {
    let store = LedgerStore::inspect(url)
        .await
        .map_err(|e| format!("{}: {e}", redact_url(url)))?;
    let result = match action {
        Action::Audit { json } => audit(&store, url, *json).await,
        Action::Accounts { json } => accounts(&store, *json).await,
        Action::Anchors { json } => anchors(&store, *json).await,
        Action::Requests { json, after, limit } => requests(&store, *json, *after, *limit).await,
    };
    store.close().await;
    result
}

fn backend_name(kind: BackendKind) -> &'static str {
    match kind {
        BackendKind::Sqlite => "sqlite",
        BackendKind::Postgres => "postgres",
    }
}

fn out(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| format!("cannot write the output: {e}"))
}

fn err(e: cocoon_ledger_store::StoreError) -> String {
    e.to_string()
}

async fn audit(store: &LedgerStore, url: &str, as_json: bool) -> Result<(), String> {
    let audited = store.audit().await;
    let clients = store.clients().await.map_err(err)?.len();
    let workers = store.workers().await.map_err(err)?.len();
    let reservations = store.reservations().await.map_err(err)?.len();
    let anchor = store.latest_committed_anchor().await.map_err(err)?;
    let (totals, error) = match &audited {
        Ok(t) => (Some(*t), None),
        Err(e) => (None, Some(e.to_string())),
    };
    if as_json {
        let report = json!({
            "ledger": redact_url(url),
            "backend": backend_name(store.backend()),
            "pricing": store.pricing(),
            "balanced": totals.is_some(),
            "error": error,
            "totals": totals,
            "clients": clients,
            "workers": workers,
            "reservations": reservations,
            "latest_committed_anchor": anchor.map(|a| a.seqno),
        });
        out(&report.to_string())?;
    } else {
        out(&format!(
            "ledger {} ({})\naccounts: {clients} clients, {workers} workers; {reservations} \
             requests in flight\nlatest committed anchor: {}",
            redact_url(url),
            backend_name(store.backend()),
            anchor.map_or("none".into(), |a| a.seqno.to_string()),
        ))?;
        if let Some(t) = totals {
            out(&format!(
                "requests charged: {}\nadjusted tokens: {}\nclients charged: {} nanoTON\n\
                 shortfall: {} nanoTON\nworkers credited: {} nanoTON\ncommission: {} nanoTON\n\
                 balanced: client charges + shortfall = worker credits + commission",
                t.requests,
                t.adjusted_tokens,
                t.client_charged,
                t.shortfall,
                t.worker_credited,
                t.proxy_commission
            ))?;
        }
    }
    audited
        .map(|_| ())
        .map_err(|e| format!("the books do not add up: {e}"))
}

fn client_json(c: &StoredClient) -> Value {
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

fn worker_json(w: &StoredWorker) -> Value {
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

async fn anchors(store: &LedgerStore, as_json: bool) -> Result<(), String> {
    let anchors = store.anchors().await.map_err(err)?;
    if as_json {
        let list: Vec<_> = anchors
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
        return out(&json!({ "anchors": list }).to_string());
    }
    out(&format!("{} anchors", anchors.len()))?;
    for a in &anchors {
        out(&format!(
            "  #{} {} over {} requests{}",
            a.seqno,
            hex::encode(a.state_hash),
            a.requests,
            if a.committed_at_ms.is_some() {
                ", on chain"
            } else {
                ", not seen on chain"
            },
        ))?;
    }
    Ok(())
}

async fn accounts(store: &LedgerStore, as_json: bool) -> Result<(), String> {
    let clients = store.clients().await.map_err(err)?;
    let workers = store.workers().await.map_err(err)?;
    if as_json {
        let report = json!({
            "clients": clients.iter().map(client_json).collect::<Vec<_>>(),
            "workers": workers.iter().map(worker_json).collect::<Vec<_>>(),
        });
        return out(&report.to_string());
    }
    out(&format!("{} clients", clients.len()))?;
    for c in &clients {
        out(&format!(
            "  {}: balance {} nanoTON, used {} of {} tokens, reserved {}, charged {} nanoTON in \
             {} requests{}",
            c.client,
            c.balance,
            c.tokens_used,
            c.token_limit,
            c.reserved_tokens,
            c.charged_nanoton,
            c.requests,
            if c.refund.is_some() { ", closing" } else { "" },
        ))?;
    }
    out(&format!("{} workers", workers.len()))?;
    for w in &workers {
        out(&format!(
            "  {}: earned {} tokens ({} paid), credited {} nanoTON, commission {} nanoTON in {} \
             requests",
            w.worker,
            w.tokens_earned,
            w.tokens_paid,
            w.credited_nanoton,
            w.commission_nanoton,
            w.requests
        ))?;
    }
    Ok(())
}

fn request_json(r: &ChargedRequest) -> Value {
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

async fn requests(
    store: &LedgerStore,
    as_json: bool,
    after: u64,
    limit: Option<u64>,
) -> Result<(), String> {
    let mut after = after;
    let mut left = limit.unwrap_or(u64::MAX);
    while left > 0 {
        let page = u32::try_from(left.min(u64::from(MAX_PAGE))).unwrap_or(MAX_PAGE);
        let rows = store.charged_requests(after, page).await.map_err(err)?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        left = left.saturating_sub(rows.len() as u64);
        for r in &rows {
            if as_json {
                out(&request_json(r).to_string())?;
            } else {
                let c = &r.record;
                out(&format!(
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
                ))?;
            }
        }
    }
    Ok(())
}
