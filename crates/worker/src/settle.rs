//! The worker's side of the payment channel: it keeps the latest `payout_signed` voucher each
//! proxy hands over (checked against the proxy key from the handshake and the worker contract
//! the proxy named), stores it under `<data dir>/vouchers/` for `cocoon-worker payout`, and,
//! with a chain and the owner's wallet configured, submits it on chain once the unpaid
//! earnings reach the payout threshold.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cocoon_chain::operator::ChainWallet;
use cocoon_protocol::messages::proxy;
use cocoon_ton::{Address, Voucher, VoucherKind};
use serde::{Deserialize, Serialize};

use crate::WorkerError;
use crate::state::{WorkerState, lock};

/// The `[settlement]` section of the worker's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PayoutSettings {
    /// `emulated=HOST:PORT` (local mode) or `toncenter=URL`: where payouts are submitted.
    /// `None`: vouchers are only stored (submit them with `cocoon-worker payout`).
    pub chain: Option<String>,
    /// Toncenter API key.
    pub api_key: Option<String>,
    /// The worker owner's wallet key file (hex Ed25519 seed, mode 0600): its V5R1 wallet must
    /// be `owner_address`, and pays the payout's gas.
    pub wallet_key_file: Option<PathBuf>,
    /// Submit the latest voucher once it carries at least this many adjusted tokens more than
    /// the worker contract has paid.
    pub payout_threshold_tokens: u64,
    /// How long a proxy that settles on chain may leave a committed total it showed unsigned
    /// by its vouchers (they lag by its anchor interval, a minute by default) before it is
    /// served no more. Zero: no limit.
    #[serde(with = "cocoon_net::secs")]
    pub voucher_lag_limit: Duration,
}

impl Default for PayoutSettings {
    fn default() -> Self {
        Self {
            chain: None,
            api_key: None,
            wallet_key_file: None,
            payout_threshold_tokens: 1_000_000,
            voucher_lag_limit: Duration::from_secs(600),
        }
    }
}

/// What `/jsonstats` shows of one proxy's payment channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PayoutChannel {
    /// The proxy (as dialed).
    pub proxy: String,
    /// The proxy contract it named.
    pub proxy_contract: String,
    /// This worker's contract at that proxy.
    pub worker_contract: String,
    /// Tokens in the latest valid voucher.
    pub voucher_tokens: u64,
    /// Tokens the worker contract is known to have paid.
    pub paid_tokens: u64,
    /// Payouts submitted by this process.
    pub payouts: u64,
    /// Vouchers refused (bad signature, wrong contract, not a payout).
    pub refused_vouchers: u64,
    /// The last payout failure.
    pub payout_error: Option<String>,
}

#[derive(Default)]
struct Channel {
    view: PayoutChannel,
    proxy_key: [u8; 32],
    worker_contract: Option<Address>,
    proxy_contract: Option<Address>,
    latest: Option<Voucher>,
    submitting: bool,
}

/// The payout vouchers of every proxy this worker serves.
pub(crate) struct Payouts {
    dir: Option<PathBuf>,
    submitter: Option<ChainWallet>,
    threshold: u64,
    /// `voucher_lag_limit`, unless zero.
    lag_limit: Option<Duration>,
    channels: std::sync::Mutex<HashMap<String, Channel>>,
    rollback: std::sync::Mutex<Option<String>>,
    submitted: AtomicU64,
}

impl Payouts {
    /// Reads the wallet key when a chain is configured (the chain is opened at each
    /// submission: they are rare).
    pub(crate) fn open(
        settings: &PayoutSettings,
        data_dir: Option<&Path>,
    ) -> Result<Self, WorkerError> {
        let submitter = ChainWallet::from_settings(
            settings.chain.as_deref(),
            settings.api_key.as_deref(),
            settings.wallet_key_file.as_deref(),
        )
        .map_err(|e| WorkerError::Config(format!("[settlement] {e}")))?;
        if let Some(chain) = submitter.as_ref().and(settings.chain.as_deref()) {
            tracing::info!(
                %chain,
                threshold_tokens = settings.payout_threshold_tokens,
                "payouts are submitted on chain at the threshold"
            );
        }
        Ok(Self {
            dir: data_dir.map(|d| d.join("vouchers")),
            submitter,
            threshold: settings.payout_threshold_tokens,
            lag_limit: (!settings.voucher_lag_limit.is_zero())
                .then_some(settings.voucher_lag_limit),
            channels: std::sync::Mutex::new(HashMap::new()),
            rollback: std::sync::Mutex::new(None),
            submitted: AtomicU64::new(0),
        })
    }

    /// Notes what the proxy said in `worker.connectedToProxy`.
    pub(crate) fn connected(&self, proxy: &str, params: &proxy::Params, worker_contract: &str) {
        let mut channels = lock(&self.channels);
        let ch = channels.entry(proxy.to_owned()).or_default();
        let named = worker_contract;
        let worker_contract = cocoon_chain::parse_address(named).ok();
        if ch.worker_contract.is_some() && ch.worker_contract != worker_contract {
            // A voucher for another contract pays nothing here: it is not counted as signed.
            ch.latest = None;
            ch.view.voucher_tokens = 0;
        }
        ch.view.proxy = proxy.to_owned();
        ch.proxy_key = params.proxy_public_key.0;
        ch.proxy_contract = cocoon_chain::parse_address(&params.proxy_sc_address).ok();
        ch.worker_contract = worker_contract;
        ch.view.proxy_contract = params.proxy_sc_address.clone();
        ch.view.worker_contract = named.to_owned();
    }

    /// How long `proxy` may leave a total it showed unsigned: the limit when it named a proxy
    /// or worker contract address (it settles on chain; one naming a placeholder for either
    /// while it settles cannot hand over a voucher this worker keeps, and is held), `None` when
    /// it settles on no chain or there is no limit.
    pub(crate) fn lag_limit(&self, proxy: &str) -> Option<Duration> {
        let settles = lock(&self.channels)
            .get(proxy)
            .is_some_and(|ch| ch.proxy_contract.is_some() || ch.worker_contract.is_some());
        self.lag_limit.filter(|_| settles)
    }

    /// Takes a voucher the proxy handed over: keeps it when valid and newer, stores it, and
    /// submits it when the unpaid part reaches the threshold. Answers the count of the voucher
    /// kept (this one or a larger one) when it is valid.
    pub(crate) fn offer(
        self: &Arc<Self>,
        proxy: &str,
        payment: &proxy::AnySignedPayment,
    ) -> Option<u64> {
        let proxy::AnySignedPayment::SignedPayment(p) = payment else {
            return None;
        };
        let mut channels = lock(&self.channels);
        let ch = channels.get_mut(proxy)?;
        let checked = Voucher::from_bytes(&p.data).and_then(|v| {
            let target = ch.worker_contract.ok_or(cocoon_ton::Error::WrongTarget)?;
            v.check(&ch.proxy_key, VoucherKind::WorkerPayout, &target)?;
            Ok(v)
        });
        let voucher = match checked {
            Ok(v) => v,
            Err(e) => {
                ch.view.refused_vouchers += 1;
                tracing::warn!(%proxy, "refused a payout voucher: {e}");
                return None;
            }
        };
        let tokens = voucher.payload().tokens;
        if let Some(kept) = ch.latest
            && kept.payload().tokens >= tokens
        {
            return Some(kept.payload().tokens);
        }
        ch.latest = Some(voucher);
        ch.view.voucher_tokens = tokens;
        if let Err(e) = self.store(&voucher) {
            tracing::warn!("cannot store the payout voucher: {e}");
        }
        self.maybe_submit(proxy, ch);
        Some(tokens)
    }

    /// Starts a payout of the latest voucher when the unpaid part reaches the threshold and
    /// none is running.
    fn maybe_submit(self: &Arc<Self>, proxy: &str, ch: &mut Channel) {
        let Some(voucher) = ch.latest else {
            return;
        };
        let unpaid = voucher.payload().tokens.saturating_sub(ch.view.paid_tokens);
        if self.submitter.is_some() && !ch.submitting && unpaid > 0 && unpaid >= self.threshold {
            ch.submitting = true;
            tokio::spawn(
                self.clone()
                    .submit(proxy.to_owned(), voucher, ch.proxy_contract),
            );
        }
    }

    fn store(&self, voucher: &Voucher) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        std::fs::create_dir_all(dir)?;
        let name = format!(
            "payout-{}.json",
            hex::encode(voucher.payload().target.hash())
        );
        let tmp = dir.join(format!("{name}.tmp"));
        let text = serde_json::to_string(voucher).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, dir.join(name))
    }

    async fn submit(self: Arc<Self>, proxy: String, voucher: Voucher, contract: Option<Address>) {
        let Some(submitter) = &self.submitter else {
            return;
        };
        let tokens = voucher.payload().tokens;
        let result = match submitter.operator().await {
            Ok(op) => op.worker_payout(&voucher, contract.as_ref()).await,
            Err(e) => Err(e),
        };
        let mut channels = lock(&self.channels);
        let Some(ch) = channels.get_mut(&proxy) else {
            return;
        };
        ch.submitting = false;
        match result {
            Ok(report) => {
                ch.view.paid_tokens = ch.view.paid_tokens.max(tokens);
                ch.view.payouts += 1;
                ch.view.payout_error = None;
                self.submitted.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    %proxy,
                    tokens,
                    worker_contract = %report.contract,
                    message = %report.message_hash,
                    wallet_before = %report.wallet_balance_before,
                    wallet_after = %report.wallet_balance_after,
                    "payout submitted on chain"
                );
            }
            Err(e) => {
                tracing::warn!(%proxy, tokens, "payout failed: {e}");
                ch.view.payout_error = Some(e.to_string());
                return;
            }
        }
        // A newer voucher may have arrived meanwhile.
        self.maybe_submit(&proxy, ch);
    }

    /// Remembers why a proxy was dropped for a rollback.
    pub(crate) fn note_rollback(&self, why: String) {
        *lock(&self.rollback) = Some(why);
    }

    /// What `/jsonstats` shows.
    pub(crate) fn stats(&self) -> PayoutStats {
        let mut channels: Vec<PayoutChannel> = lock(&self.channels)
            .values()
            .map(|c| c.view.clone())
            .collect();
        channels.sort_by(|a, b| a.proxy.cmp(&b.proxy));
        PayoutStats {
            submits_on_chain: self.submitter.is_some(),
            threshold_tokens: self.threshold,
            payouts: self.submitted.load(Ordering::Relaxed),
            channels,
            proxy_rolled_back: lock(&self.rollback).clone(),
        }
    }
}

/// Settlement as `/jsonstats` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PayoutStats {
    /// Whether payouts are submitted on chain by this process.
    pub submits_on_chain: bool,
    /// The payout threshold (adjusted tokens).
    pub threshold_tokens: u64,
    /// Payouts submitted.
    pub payouts: u64,
    /// One entry per proxy.
    pub channels: Vec<PayoutChannel>,
    /// The last proxy refused for a rollback, and why.
    pub proxy_rolled_back: Option<String>,
}

/// Takes a voucher from `proxy` and counts it as committed (rollback detection); answers the
/// count of the voucher kept when this one is valid.
pub(crate) fn offer(
    state: &Arc<WorkerState>,
    proxy: &str,
    payment: &proxy::AnySignedPayment,
) -> Option<u64> {
    let tokens = state.payouts.offer(proxy, payment)?;
    let mut committed = lock(&state.committed);
    let known = committed.entry(proxy.to_owned()).or_insert(0);
    *known = (*known).max(i64::try_from(tokens).unwrap_or(i64::MAX));
    Some(tokens)
}

/// The newest stored payout voucher under `data_dir` (what `cocoon-worker payout` submits
/// without `--voucher`).
pub fn latest_stored_voucher(data_dir: &Path) -> Option<PathBuf> {
    let dir = data_dir.join("vouchers");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("payout-") && name.ends_with(".json")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cocoon_protocol::tl::Int256;
    use cocoon_ton::{SigningKey, VoucherPayload};

    const PROXY: &str = "127.0.0.1:11001";

    fn params(key: &SigningKey) -> proxy::Params {
        proxy::Params {
            flags: 0b11,
            proxy_public_key: Int256(key.verifying_key().to_bytes()),
            proxy_owner_address: "owner".into(),
            proxy_sc_address: Address::new(0, [1; 32]).to_raw(),
            is_test: Some(true),
            proto_version: Some(1),
        }
    }

    fn payment(
        kind: VoucherKind,
        tokens: u64,
        target: Address,
        key: &SigningKey,
    ) -> proxy::AnySignedPayment {
        let v = Voucher::sign(VoucherPayload::new(kind, 1, tokens, target), key).unwrap();
        proxy::AnySignedPayment::SignedPayment(proxy::SignedPayment {
            data: bytes::Bytes::copy_from_slice(&v.to_bytes()),
        })
    }

    #[test]
    fn keeps_the_largest_valid_payout_voucher_and_stores_it() {
        let dir = tempfile::tempdir().unwrap();
        let payouts =
            Arc::new(Payouts::open(&PayoutSettings::default(), Some(dir.path())).unwrap());
        let key = SigningKey::from_bytes(&[3; 32]);
        let mine = Address::new(0, [7; 32]);
        payouts.connected(PROXY, &params(&key), &mine.to_raw());

        assert_eq!(
            payouts.offer(PROXY, &payment(VoucherKind::WorkerPayout, 50, mine, &key)),
            Some(50)
        );
        // an older one changes nothing; a newer one replaces it
        assert_eq!(
            payouts.offer(PROXY, &payment(VoucherKind::WorkerPayout, 40, mine, &key)),
            Some(50)
        );
        assert_eq!(
            payouts.offer(PROXY, &payment(VoucherKind::WorkerPayout, 90, mine, &key)),
            Some(90)
        );
        // refused: another key, another contract, a client charge, garbage, an unknown proxy
        let other = SigningKey::from_bytes(&[4; 32]);
        assert_eq!(
            payouts.offer(
                PROXY,
                &payment(VoucherKind::WorkerPayout, 500, mine, &other)
            ),
            None
        );
        let theirs = Address::new(0, [8; 32]);
        assert_eq!(
            payouts.offer(
                PROXY,
                &payment(VoucherKind::WorkerPayout, 500, theirs, &key)
            ),
            None
        );
        assert_eq!(
            payouts.offer(PROXY, &payment(VoucherKind::ClientCharge, 500, mine, &key)),
            None
        );
        let garbage = proxy::AnySignedPayment::SignedPayment(proxy::SignedPayment {
            data: bytes::Bytes::from_static(b"not a voucher"),
        });
        assert_eq!(payouts.offer(PROXY, &garbage), None);
        assert_eq!(
            payouts.offer(
                "elsewhere:1",
                &payment(VoucherKind::WorkerPayout, 500, mine, &key)
            ),
            None
        );
        assert_eq!(
            payouts.offer(PROXY, &proxy::AnySignedPayment::default()),
            None
        );

        let stats = payouts.stats();
        assert!(!stats.submits_on_chain);
        assert_eq!(stats.channels[0].voucher_tokens, 90);
        assert_eq!(stats.channels[0].refused_vouchers, 4);

        // the stored file is the latest voucher, in the format `payout --voucher` reads
        let path = latest_stored_voucher(dir.path()).unwrap();
        let stored = cocoon_chain::operator::read_voucher_file(&path).unwrap();
        assert_eq!(stored.payload().tokens, 90);
        assert_eq!(stored.payload().target, mine);
        stored.verify(&key.verifying_key().to_bytes()).unwrap();
    }

    #[test]
    fn a_chain_without_a_wallet_is_refused() {
        let settings = PayoutSettings {
            chain: Some("emulated=127.0.0.1:1".into()),
            ..PayoutSettings::default()
        };
        assert!(matches!(
            Payouts::open(&settings, None),
            Err(WorkerError::Config(_))
        ));
        assert!(latest_stored_voucher(Path::new("/nonexistent")).is_none());
    }
}
