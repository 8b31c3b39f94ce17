//! The client's side of the payment channel: it keeps the latest `charge_signed` voucher the
//! proxy hands over (checked against the proxy key from the handshake and the client contract
//! the proxy named), asks for its payment status now and then so that the last voucher also
//! arrives after the last request, and, with a chain and a wallet configured, submits the
//! voucher on chain once the charges it carries reach a fraction of the stake (about half by
//! default): the proxy then holds the client to the stake it really has left.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cocoon_chain::operator::{ChainWallet, read_proxy_state};
use cocoon_net::Connection;
use cocoon_protocol::messages::{client, proxy};
use cocoon_protocol::tl::TlConstructor;
use cocoon_ton::contracts::ClientData;
use cocoon_ton::{Address, Voucher, VoucherKind};
use serde::{Deserialize, Serialize};

use crate::config::ClientError;
use cocoon_market::RequestId;
use cocoon_market::audit::{AuditCounts, Bound, Direction, Discrepancy, PaymentAudit};

/// Why a charge voucher was not submitted on chain this time (logged and shown in the stats;
/// the next voucher tries again).
#[derive(Debug, thiserror::Error)]
enum SubmitFailure {
    /// The chain did not answer, or refused the message.
    #[error(transparent)]
    Chain(#[from] cocoon_chain::ChainError),
    /// The client contract's data does not decode.
    #[error("client contract data: {0}")]
    Contract(cocoon_ton::Error),
}
use crate::link::lock;

/// The `[settlement]` section of the client's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChargeSettings {
    /// `emulated=HOST:PORT` (local mode) or `toncenter=URL`: where charge vouchers are
    /// submitted. `None`: they are only kept.
    pub chain: Option<String>,
    /// Toncenter API key.
    pub api_key: Option<String>,
    /// The wallet that pays the submission's gas (hex Ed25519 seed file, mode 0600).
    pub wallet_key_file: Option<PathBuf>,
    /// Submit the latest voucher once the charges it adds on chain reach this fraction of the
    /// stake.
    pub submit_stake_fraction: f64,
    /// How often the client asks the proxy for its payment status (and latest voucher).
    #[serde(with = "cocoon_net::secs")]
    pub payment_status_interval: Duration,
}

impl Default for ChargeSettings {
    fn default() -> Self {
        Self {
            chain: None,
            api_key: None,
            wallet_key_file: None,
            submit_stake_fraction: 0.5,
            payment_status_interval: Duration::from_secs(10),
        }
    }
}

/// What `/jsonstats` shows of the payment channel.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChargeStats {
    /// Whether charges are submitted on chain by this process.
    pub submits_on_chain: bool,
    /// The client contract the proxy named.
    pub client_contract: String,
    /// The proxy contract.
    pub proxy_contract: String,
    /// Tokens in the latest valid voucher.
    pub voucher_tokens: u64,
    /// The latest voucher (hex of its bytes), to submit by hand.
    pub voucher: Option<String>,
    /// Tokens the client contract was last seen charged.
    pub tokens_on_chain: u64,
    /// Charges submitted by this process.
    pub submissions: u64,
    /// Vouchers refused.
    pub refused_vouchers: u64,
    /// The last submission failure.
    pub submit_error: Option<String>,
    /// Tokens the proxy has booked against this client (its last `client.paymentStatus`).
    pub proxy_tokens_used: Option<i64>,
    /// Tokens the proxy lets this client use in all (its stake, as the proxy sees it).
    pub proxy_tokens_allowed: Option<i64>,
    /// The client contract's stake in nanoTON, when read from the chain (saturating).
    pub stake_nanoton: Option<u64>,
    /// Each charge held against the client's own account of the request
    /// (`cocoon_market::audit`).
    pub audit: AuditCounts,
    /// Vouchers not kept because their total is above what this client's own account of its
    /// requests allows (another client process on the same contract also causes this).
    pub vouchers_above_account: u64,
}

struct Channel {
    view: ChargeStats,
    proxy_key: [u8; 32],
    client_contract: Option<Address>,
    proxy_contract: Option<Address>,
    latest: Option<Voucher>,
    /// Stake and price from the chain, once read.
    stake_and_price: Option<(u128, u128)>,
    submitting: bool,
    audit: PaymentAudit,
    /// The client contract and what its vouchers held before the requests this process
    /// audits: the first voucher's total less the bounds of the requests sent by then. A
    /// voucher above it plus [`PaymentAudit::bounds_total`] is not kept.
    baseline: Option<(Address, u64)>,
    /// Whether the current session's charges are audited (and so its vouchers held to the
    /// account).
    audited: bool,
    /// The first charge found above its bound: no voucher is submitted and no request sent
    /// from then on.
    overcharge: Option<String>,
}

/// How long a request that ended is kept for the proxy's charge notice: an honest proxy sends
/// it at once, or within its `cancel_grace` (10 s) after a cancel.
const AUDIT_RETAIN: Duration = Duration::from_secs(120);

/// The client's charge vouchers.
pub(crate) struct Charges {
    submitter: Option<ChainWallet>,
    fraction: f64,
    pub(crate) interval: Duration,
    channel: std::sync::Mutex<Channel>,
    submissions: AtomicU64,
}

impl Charges {
    /// Reads the wallet key when a chain is configured.
    pub(crate) fn open(settings: &ChargeSettings) -> Result<Self, ClientError> {
        if !(settings.submit_stake_fraction > 0.0 && settings.submit_stake_fraction <= 1.0) {
            return Err(ClientError::Config(
                "[settlement] submit_stake_fraction must be in (0, 1]".into(),
            ));
        }
        let submitter = ChainWallet::from_settings(
            settings.chain.as_deref(),
            settings.api_key.as_deref(),
            settings.wallet_key_file.as_deref(),
        )
        .map_err(|e| ClientError::Config(format!("[settlement] {e}")))?;
        Ok(Self {
            submitter,
            fraction: settings.submit_stake_fraction,
            interval: settings
                .payment_status_interval
                .max(Duration::from_millis(100)),
            channel: std::sync::Mutex::new(Channel {
                audit: PaymentAudit::new(Direction::AtMost, AUDIT_RETAIN),
                baseline: None,
                audited: false,
                overcharge: None,
                view: ChargeStats::default(),
                proxy_key: [0; 32],
                client_contract: None,
                proxy_contract: None,
                latest: None,
                stake_and_price: None,
                submitting: false,
            }),
            submissions: AtomicU64::new(0),
        })
    }

    /// The `[settlement]` wallet, when one is configured (it also registers the client's
    /// sessions on chain).
    pub(crate) fn wallet(&self) -> Option<&ChainWallet> {
        self.submitter.as_ref()
    }

    /// Notes what the proxy said in `client.connectedToProxy`.
    pub(crate) fn connected(&self, params: &proxy::Params, client_contract: &str) {
        let mut ch = lock(&self.channel);
        ch.proxy_key = params.proxy_public_key.0;
        ch.proxy_contract = cocoon_chain::parse_address(&params.proxy_sc_address).ok();
        ch.client_contract = cocoon_chain::parse_address(client_contract).ok();
        ch.view.proxy_contract = params.proxy_sc_address.clone();
        ch.view.client_contract = client_contract.to_owned();
    }

    /// Takes a voucher the proxy handed over: keeps it when valid and newer, and submits it
    /// when the charges it adds reach the threshold.
    pub(crate) fn offer(self: &Arc<Self>, payment: &proxy::AnySignedPayment) {
        let proxy::AnySignedPayment::SignedPayment(p) = payment else {
            return;
        };
        let mut ch = lock(&self.channel);
        let checked = Voucher::from_bytes(&p.data).and_then(|v| {
            let target = ch.client_contract.ok_or(cocoon_ton::Error::WrongTarget)?;
            v.check(&ch.proxy_key, VoucherKind::ClientCharge, &target)?;
            Ok(v)
        });
        let voucher = match checked {
            Ok(v) => v,
            Err(e) => {
                ch.view.refused_vouchers += 1;
                tracing::warn!("refused a charge voucher: {e}");
                return;
            }
        };
        let tokens = voucher.payload().tokens;
        if ch.latest.is_some_and(|l| l.payload().tokens >= tokens) {
            return;
        }
        let contract = voucher.payload().target;
        let allowed = ch.audit.bounds_total();
        let baseline = match ch.baseline {
            Some((c, b)) if c == contract => b,
            _ => {
                let b = tokens.saturating_sub(allowed);
                ch.baseline = Some((contract, b));
                b
            }
        };
        if ch.audited && tokens > baseline.saturating_add(allowed) {
            ch.view.vouchers_above_account += 1;
            tracing::warn!(
                "not keeping a charge voucher of {tokens} tokens: this client's own account \
                 allows {} ({baseline} before its requests, {allowed} for them)",
                baseline.saturating_add(allowed)
            );
            return;
        }
        ch.latest = Some(voucher);
        ch.view.voucher_tokens = tokens;
        ch.view.voucher = Some(hex::encode(voucher.to_bytes()));
        self.maybe_submit(&mut ch);
    }

    /// Whether the session just opened has its charges audited: its vouchers are then kept
    /// only within this client's own account of its requests.
    pub(crate) fn audit_session(&self, audited: bool) {
        lock(&self.channel).audited = audited;
    }

    /// A request was sent: the proxy may charge it at most `reserved` until it ends.
    pub(crate) fn sent(&self, request_id: [u8; 32], reserved: Bound) {
        lock(&self.channel)
            .audit
            .open(RequestId(request_id), reserved, std::time::Instant::now());
    }

    /// The request `request_id` ended at this client: the proxy may charge it at most `bound`.
    pub(crate) fn expect(&self, request_id: [u8; 32], bound: Bound) {
        let mut ch = lock(&self.channel);
        let verdict = ch
            .audit
            .end(RequestId(request_id), bound, std::time::Instant::now());
        Self::judged(&mut ch, verdict);
    }

    /// The proxy charged `request_tokens` adjusted tokens for `request_id` and handed over the
    /// voucher `payment` (`proxy.clientRequestPayment`).
    pub(crate) fn charged(
        self: &Arc<Self>,
        request_id: [u8; 32],
        request_tokens: i64,
        payment: &proxy::AnySignedPayment,
    ) {
        {
            let mut ch = lock(&self.channel);
            let verdict = ch.audit.booked(
                RequestId(request_id),
                request_tokens,
                std::time::Instant::now(),
            );
            Self::judged(&mut ch, verdict);
        }
        self.offer(payment);
    }

    fn judged(ch: &mut Channel, verdict: Result<(), Discrepancy>) {
        ch.view.audit = ch.audit.counts().clone();
        if let Err(over) = verdict {
            tracing::error!("{over}: no voucher is submitted and no request sent from now on");
            ch.overcharge.get_or_insert_with(|| over.to_string());
        }
    }

    /// Why no request may be sent to the proxy: it charged one above its bound.
    pub(crate) fn overcharge(&self) -> Option<String> {
        lock(&self.channel).overcharge.clone()
    }

    /// Checks a `grant_refund_signed` voucher from this client's proxy for this client's
    /// contract.
    pub(crate) fn check_refund(&self, data: &[u8]) -> Result<Voucher, cocoon_ton::Error> {
        let ch = lock(&self.channel);
        let voucher = Voucher::from_bytes(data)?;
        let target = ch.client_contract.ok_or(cocoon_ton::Error::WrongTarget)?;
        voucher.check(&ch.proxy_key, VoucherKind::ClientGrantRefund, &target)?;
        Ok(voucher)
    }

    /// Starts a submission of the latest voucher when one is due and none is running.
    fn maybe_submit(self: &Arc<Self>, ch: &mut Channel) {
        let Some(voucher) = ch.latest else {
            return;
        };
        let tokens = voucher.payload().tokens;
        // Kept while requests ran, it must also be within what they came to once ended.
        let within_account = !ch.audited
            || ch
                .baseline
                .is_some_and(|(_, b)| tokens <= b.saturating_add(ch.audit.bounds_total()));
        if self.submitter.is_none()
            || ch.submitting
            || ch.overcharge.is_some()
            || !within_account
            || tokens <= ch.view.tokens_on_chain
        {
            return;
        }
        let due = match ch.stake_and_price {
            Some((stake, price)) => {
                let added = u128::from(tokens.saturating_sub(ch.view.tokens_on_chain)) * price;
                added as f64 >= stake as f64 * self.fraction
            }
            // Not read yet: let the submission task read it and decide.
            None => true,
        };
        if due {
            ch.submitting = true;
            tokio::spawn(self.clone().submit(voucher, ch.proxy_contract));
        }
    }

    async fn submit(self: Arc<Self>, voucher: Voucher, proxy_contract: Option<Address>) {
        let result = self.try_submit(&voucher, proxy_contract).await;
        let mut ch = lock(&self.channel);
        ch.submitting = false;
        match result {
            Ok(Some(tokens_on_chain)) => {
                ch.view.tokens_on_chain = tokens_on_chain;
                ch.view.submissions += 1;
                ch.view.submit_error = None;
                self.submissions.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("charge voucher not submitted: {e}");
                ch.view.submit_error = Some(e.to_string());
                return;
            }
        }
        // A newer voucher may have arrived meanwhile.
        self.maybe_submit(&mut ch);
    }

    /// Reads the stake and price, then submits when due; `Some(count on chain)` when sent.
    async fn try_submit(
        &self,
        voucher: &Voucher,
        proxy_contract: Option<Address>,
    ) -> Result<Option<u64>, SubmitFailure> {
        let Some(wallet) = &self.submitter else {
            return Ok(None);
        };
        let op = wallet.operator().await?;
        let chain = op.chain();
        let contract = voucher.payload().target;
        let data = chain
            .run_get_method(&contract, "get_client_data", &[])
            .await?;
        let data = ClientData::from_stack(&data.stack).map_err(SubmitFailure::Contract)?;
        let proxy_contract = proxy_contract.unwrap_or(data.proxy_contract);
        let price = read_proxy_state(chain.as_ref(), &proxy_contract)
            .await?
            .identity
            .params
            .core()
            .price_per_token;
        {
            let mut ch = lock(&self.channel);
            ch.stake_and_price = Some((data.stake, price));
            ch.view.stake_nanoton = Some(u64::try_from(data.stake).unwrap_or(u64::MAX));
            ch.view.tokens_on_chain = data.tokens_used;
        }
        let tokens = voucher.payload().tokens;
        let added = u128::from(tokens.saturating_sub(data.tokens_used)) * price;
        if tokens <= data.tokens_used || (added as f64) < data.stake as f64 * self.fraction {
            return Ok(None);
        }
        let report = op.client_charge(voucher).await?;
        tracing::info!(
            tokens,
            client_contract = %report.contract,
            message = %report.message_hash,
            after = %report.after,
            "charge voucher submitted on chain"
        );
        Ok(Some(tokens))
    }

    /// What `/jsonstats` shows.
    pub(crate) fn stats(&self) -> ChargeStats {
        let mut s = lock(&self.channel).view.clone();
        s.submits_on_chain = self.submitter.is_some();
        s.submissions = self.submissions.load(Ordering::Relaxed);
        s
    }

    /// Asks for the payment status every interval until the connection closes.
    pub(crate) async fn poll(self: Arc<Self>, conn: Connection) {
        let mut tick = tokio::time::interval(self.interval);
        tick.tick().await;
        while !conn.is_closed() {
            tick.tick().await;
            let answer = match conn
                .query(Bytes::from(client::UpdatePaymentStatus {}.to_boxed_bytes()))
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    tracing::debug!("payment status query failed: {e}");
                    continue;
                }
            };
            match client::PaymentStatus::from_boxed_bytes(answer) {
                Ok(status) => {
                    {
                        let mut ch = lock(&self.channel);
                        ch.view.proxy_tokens_used = Some(status.db_tokens);
                        ch.view.proxy_tokens_allowed = Some(status.max_tokens);
                    }
                    self.offer(&status.signed_payment);
                }
                Err(e) => tracing::warn!("bad payment status: {e}"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cocoon_protocol::tl::Int256;
    use cocoon_ton::{SigningKey, VoucherPayload};

    fn payment(
        kind: VoucherKind,
        tokens: u64,
        target: Address,
        key: &SigningKey,
    ) -> proxy::AnySignedPayment {
        let v = Voucher::sign(VoucherPayload::new(kind, 1, tokens, target), key).unwrap();
        proxy::AnySignedPayment::SignedPayment(proxy::SignedPayment {
            data: Bytes::copy_from_slice(&v.to_bytes()),
        })
    }

    /// Charges connected to a proxy of protocol `version` (key `[5; 32]`) for the client
    /// contract it names; answers them, the proxy's key and that contract.
    fn connected(version: i32) -> (Arc<Charges>, SigningKey, Address) {
        let charges = Arc::new(Charges::open(&ChargeSettings::default()).unwrap());
        let key = SigningKey::from_bytes(&[5; 32]);
        let mine = Address::new(0, [9; 32]);
        charges.connected(
            &proxy::Params {
                flags: 0b11,
                proxy_public_key: Int256(key.verifying_key().to_bytes()),
                proxy_owner_address: "owner".into(),
                proxy_sc_address: Address::new(0, [1; 32]).to_raw(),
                is_test: Some(true),
                proto_version: Some(version),
            },
            &mine.to_raw(),
        );
        (charges, key, mine)
    }

    /// Attack: a proxy reports an honest charge for each request but signs a cumulative voucher
    /// far above them (the voucher is what the contract settles). A voucher is kept only up to
    /// what preceded this client's requests plus their bounds; a charge above its request's
    /// bound, or for a request never sent, stops the client.
    #[test]
    fn a_voucher_above_the_clients_own_account_is_not_kept() {
        let (charges, key, mine) = connected(3);
        charges.audit_session(true);
        let voucher = |tokens| payment(VoucherKind::ClientCharge, tokens, mine, &key);
        // The session's first voucher: 100 tokens before this client's requests.
        charges.offer(&voucher(100));
        let usage = |tokens| Bound {
            tokens,
            basis: cocoon_market::audit::Basis::Usage,
        };
        let reserved = Bound {
            tokens: 500,
            basis: cocoon_market::audit::Basis::Reserved,
        };
        charges.sent([1; 32], reserved);
        charges.expect([1; 32], usage(48));
        charges.charged([1; 32], 48, &voucher(100 + 48 + 1_000_000));
        let s = charges.stats();
        assert_eq!((s.voucher_tokens, s.vouchers_above_account), (100, 1));
        assert!(
            charges.overcharge().is_none(),
            "each charge was within its bound"
        );
        charges.offer(&voucher(148));
        assert_eq!(charges.stats().voucher_tokens, 148);
        // While a request runs its reservation counts; once it ends, its usage.
        charges.sent([2; 32], reserved);
        charges.offer(&voucher(148 + 500));
        assert_eq!(charges.stats().voucher_tokens, 648);
        charges.expect([2; 32], usage(10));
        charges.offer(&voucher(148 + 11));
        assert_eq!(charges.stats().vouchers_above_account, 1, "older: ignored");
        // A charge for a request never sent stops the client.
        charges.charged([3; 32], 5, &voucher(100));
        let over = charges.overcharge().unwrap();
        assert!(over.contains("no such request was sent"), "{over}");
        assert_eq!(charges.stats().audit.discrepancies, 1);
    }

    #[test]
    fn keeps_the_largest_valid_charge_voucher() {
        let (charges, key, mine) = connected(1);
        charges.offer(&payment(VoucherKind::ClientCharge, 70, mine, &key));
        charges.offer(&payment(VoucherKind::ClientCharge, 60, mine, &key));
        let other = SigningKey::from_bytes(&[6; 32]);
        charges.offer(&payment(VoucherKind::ClientCharge, 700, mine, &other));
        charges.offer(&payment(
            VoucherKind::ClientCharge,
            700,
            Address::new(0, [2; 32]),
            &key,
        ));
        charges.offer(&payment(VoucherKind::WorkerPayout, 700, mine, &key));
        let s = charges.stats();
        assert_eq!(s.voucher_tokens, 70);
        assert_eq!(s.refused_vouchers, 3);
        assert!(!s.submits_on_chain);
        let kept = Voucher::from_bytes(&hex::decode(s.voucher.unwrap()).unwrap()).unwrap();
        kept.check(
            &key.verifying_key().to_bytes(),
            VoucherKind::ClientCharge,
            &mine,
        )
        .unwrap();
        assert_eq!(s.client_contract, mine.to_raw());
    }

    #[test]
    fn settings_are_checked() {
        let bad_fraction = ChargeSettings {
            submit_stake_fraction: 0.0,
            ..ChargeSettings::default()
        };
        assert!(matches!(
            Charges::open(&bad_fraction),
            Err(ClientError::Config(_))
        ));
        let no_wallet = ChargeSettings {
            chain: Some("emulated=127.0.0.1:1".into()),
            ..ChargeSettings::default()
        };
        assert!(matches!(
            Charges::open(&no_wallet),
            Err(ClientError::Config(_))
        ));
    }
}
