//! `cocoon-proxy ledger …`: prints a proxy's books — an audit, the accounts, the anchors, the
//! request records, as `cocoon_proxy::books` reports them — from a store opened for
//! inspection, so it may run beside the proxy that owns them and changes nothing.

use std::io::Write as _;

use clap::Subcommand;
use cocoon_ledger_store::{LedgerStore, redact_url};
use cocoon_proxy::books::{self, Accounts, Anchors, Audit, RequestPages};
use serde_json::Value;

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

/// Runs one `ledger` action against the store at `url`, printing the matching report of
/// `cocoon_proxy::books`.
pub(crate) async fn run(url: &str, action: &Action) -> Result<(), String> {
    let store = LedgerStore::inspect(url)
        .await
        .map_err(|e| format!("{}: {e}", redact_url(url)))?;
    let result = print(&store, url, action).await;
    store.close().await;
    result
}

async fn print(store: &LedgerStore, url: &str, action: &Action) -> Result<(), String> {
    let text =
        |json: bool, report: Value, text: String| if json { report.to_string() } else { text };
    match action {
        Action::Audit { json } => {
            let audit = Audit::read(store, url).await.map_err(|e| e.to_string())?;
            out(&text(*json, audit.to_json(), audit.to_string()))?;
            audit.verdict().map(drop).map_err(|e| e.to_string())
        }
        Action::Accounts { json } => {
            let accounts = Accounts::read(store).await.map_err(|e| e.to_string())?;
            out(&text(*json, accounts.to_json(), accounts.to_string()))
        }
        Action::Anchors { json } => {
            let anchors = Anchors::read(store).await.map_err(|e| e.to_string())?;
            out(&text(*json, anchors.to_json(), anchors.to_string()))
        }
        Action::Requests { json, after, limit } => {
            let mut pages = RequestPages::new(*after, *limit);
            loop {
                let rows = pages.next(store).await.map_err(|e| e.to_string())?;
                if rows.is_empty() {
                    return Ok(());
                }
                for r in &rows {
                    out(&text(*json, books::request_json(r), books::request_line(r)))?;
                }
            }
        }
    }
}

fn out(text: &str) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}").map_err(|e| format!("cannot write the output: {e}"))
}
