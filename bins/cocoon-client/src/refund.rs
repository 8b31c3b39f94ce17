//! `cocoon-client refund`: closes the client's account through its proxy. The client connects
//! with its usual configuration, asks the proxy for its refund (`client.requestRefund`): the
//! proxy freezes the account and, when it settles on a chain, hands over a
//! `grant_refund_signed` voucher, which is checked and then submitted to the client contract
//! with the `[settlement]` wallet, so the contract closes at once and returns the rest of the
//! balance instead of waiting for the close delay. Prints one JSON object.

use std::time::Duration;

use cocoon_chain::operator::ChainWallet;
use cocoon_client::{Client, ClientConfig, RefundOutcome};
use cocoon_ton::Voucher;
use serde_json::json;

/// How long to wait for the proxy session.
const CONNECT_WAIT: Duration = Duration::from_secs(30);

/// Runs the refund with `config` and answers the JSON report.
pub(crate) async fn run(mut config: ClientConfig) -> Result<String, String> {
    config.listen = None;
    let settlement = config.settlement.clone();
    let client = Client::start(config).map_err(|e| e.to_string())?;
    client
        .wait_ready(CONNECT_WAIT)
        .await
        .map_err(|e| format!("cannot reach the proxy: {e}"))?;
    let outcome = client.request_refund().await.map_err(|e| e.to_string());
    client.shutdown();
    let report = match outcome? {
        RefundOutcome::Busy { active_queries } => json!({
            "outcome": "refused",
            "active_queries": active_queries,
            "detail": "requests of this client are still running: ask again when they are done",
        }),
        RefundOutcome::Granted { voucher: None } => json!({
            "outcome": "granted",
            "voucher": null,
            "detail": "the proxy froze the account; it settles on no chain, so there is no voucher",
        }),
        RefundOutcome::Granted {
            voucher: Some(bytes),
        } => {
            let wallet = ChainWallet::from_settings(
                settlement.chain.as_deref(),
                settlement.api_key.as_deref(),
                settlement.wallet_key_file.as_deref(),
            )
            .map_err(|e| format!("[settlement] {e}"))?;
            let submitted = match wallet {
                Some(wallet) => {
                    let voucher = Voucher::from_bytes(&bytes).map_err(|e| e.to_string())?;
                    let operator = wallet.operator().await.map_err(|e| e.to_string())?;
                    let report = operator
                        .client_grant_refund(&voucher)
                        .await
                        .map_err(|e| format!("the refund voucher was not taken on chain: {e}"))?;
                    serde_json::to_value(&report).map_err(|e| e.to_string())?
                }
                None => serde_json::Value::Null,
            };
            json!({
                "outcome": "granted",
                "voucher": hex::encode(&bytes),
                "submitted": submitted,
            })
        }
    };
    Ok(report.to_string())
}
