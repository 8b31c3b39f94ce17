//! Settlement on chain: the proxy's side of the payment channels.
//!
//! With a `[chain]` section (an emulated chain in local mode, or toncenter) the proxy
//!
//! - takes each client's balance from its client contract (`get_client_data`) when the client
//!   authorizes and when it asks for its payment status, and books it in the ledger with
//!   `sync_client`: the chain's balance and charged count replace the ledger's view, so reading
//!   the same top-up twice credits it once;
//! - anchors its ledger on chain every `anchor_interval` (`save_state`: seqno and state hash,
//!   signed with the voucher key and sent from the proxy's wallet), and commits the anchor in the
//!   ledger once the proxy contract holds it;
//! - signs cumulative vouchers for the totals an anchor covers (never more): `charge_signed` for
//!   the client contract, `payout_signed` for the worker contract, handed over in the protocol's
//!   `proxy.signedPayment` (the voucher's bytes, [`Voucher::to_bytes`]);
//! - checks at start that the chain holds no anchor newer than its ledger: a ledger restored
//!   from an old copy is reported (log, `/stats`) and signs nothing more.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cocoon_chain::operator::{ChainSpec, Operator, read_proxy_state, read_wallet_key};
use cocoon_chain::{Chain, ChainError};
use cocoon_ledger_store::{LedgerStore, RefundGrant, StoreError};
use cocoon_market::reservation::ChainClientState;
use cocoon_market::{ClientId, MarketError, WorkerAccountId};
use cocoon_protocol::messages::proxy;
use cocoon_ton::contracts::{ClientData, Params, client_address, worker_address};
use cocoon_ton::{Address, LedgerAnchor, SigningKey, Voucher, VoucherKind, VoucherPayload};
use serde::{Deserialize, Serialize};

use crate::config::{ProxyConfig, ProxyError};
use crate::state::lock;

/// The `[chain]` section of the proxy's configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainSettings {
    /// `emulated=HOST:PORT` (local mode: a `cocoon-chain-emulator`) or `toncenter=URL`; `None`
    /// runs without a chain (local deposits, no vouchers).
    pub endpoint: Option<String>,
    /// Toncenter API key.
    pub api_key: Option<String>,
    /// The proxy contract's address (its proxy key must be this proxy's voucher key).
    pub proxy_contract: Option<String>,
    /// The wallet that pays for anchors: a file holding its Ed25519 seed in hex (mode 0600).
    /// Without it the ledger is not anchored and no voucher is signed.
    pub wallet_key_file: Option<PathBuf>,
    /// How often the ledger is anchored on chain (when it changed).
    #[serde(with = "cocoon_net::secs")]
    pub anchor_interval: Duration,
}

impl Default for ChainSettings {
    fn default() -> Self {
        Self {
            endpoint: None,
            api_key: None,
            proxy_contract: None,
            wallet_key_file: None,
            anchor_interval: Duration::from_secs(60),
        }
    }
}

/// What `/stats` shows of settlement.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SettlementStats {
    /// `local (emulated chain)` or `toncenter`.
    pub mode: String,
    /// The proxy contract.
    pub proxy_contract: String,
    /// The last anchor the proxy contract holds.
    pub chain_anchor_seqno: u32,
    /// The last anchor of the ledger that the chain was seen to hold.
    pub ledger_anchor_seqno: u32,
    /// Anchors sent by this process.
    pub anchors_sent: u64,
    /// Vouchers signed by this process.
    pub vouchers_signed: u64,
    /// Client balances read from the chain by this process.
    pub client_syncs: u64,
    /// The last anchoring failure, if the last attempt failed.
    pub anchor_error: Option<String>,
    /// Set when the chain holds a newer anchor than the ledger: the ledger was rolled back
    /// (restored from an old copy) and the proxy signs nothing.
    pub rolled_back: Option<String>,
}

/// The proxy's connection to the chain and its voucher key.
pub(crate) struct Settlement {
    pub(crate) chain: Arc<dyn Chain>,
    /// The root registry the proxy contract belongs to.
    pub(crate) root: Address,
    proxy_contract: Address,
    proxy_public_key: [u8; 32],
    params: Params,
    /// The anchor the proxy contract held at start: seqno and state hash.
    chain_anchor: (u32, [u8; 32]),
    key: SigningKey,
    anchorer: Option<Operator>,
    interval: Duration,
    stats: Mutex<SettlementStats>,
    vouchers_signed: AtomicU64,
    client_syncs: AtomicU64,
}

/// Why an anchor or a refund voucher could not be made now: logged and shown in `/stats`, or
/// sent to the client that asked for its refund.
#[derive(Debug, thiserror::Error)]
pub(crate) enum VoucherFailure {
    /// The client's contract address could not be worked out.
    #[error("{0}")]
    Contract(SyncFailure),
    /// No anchoring wallet, or the ledger was rolled back.
    #[error(
        "this proxy signs no voucher now (no anchoring wallet, or its ledger was rolled back): \
         see its /stats"
    )]
    NotSigning,
    /// The ledger store failed.
    #[error("ledger: {0}")]
    Ledger(#[from] StoreError),
    /// The refund's count is not yet covered by an anchor on chain.
    #[error(
        "the refund is granted for {0} tokens, but no anchor on chain covers them yet: ask again \
         later"
    )]
    NotAnchoredYet(u64),
    /// Signing failed.
    #[error("cannot sign {what}: {source}")]
    Sign {
        what: &'static str,
        source: cocoon_ton::Error,
    },
    /// The chain refused or did not take the anchor.
    #[error("save_state {seqno}: {source}")]
    SaveState { seqno: u32, source: ChainError },
}

/// Why a client could not be synced from the chain.
#[derive(Debug)]
pub(crate) enum SyncFailure {
    /// The owner is not a TON address.
    BadOwner(String),
    /// No client contract yet: the client must top up first.
    NotToppedUp(String),
    /// The client contract is closing or closed: its channel takes no new requests.
    Closing(String),
    /// The chain did not answer or answered nonsense.
    Chain(ChainError),
    /// The ledger refused.
    Ledger(StoreError),
}

impl SyncFailure {
    /// The `error_code` a client is answered with.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Self::BadOwner(_) => 400,
            Self::NotToppedUp(_) | Self::Closing(_) => 402,
            Self::Chain(_) | Self::Ledger(_) => 503,
        }
    }
}

impl std::fmt::Display for SyncFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadOwner(o) => write!(f, "the client owner {o} is not a TON address"),
            Self::NotToppedUp(c) => write!(
                f,
                "no client contract at {c} yet: top it up first (cocoon-client topup)"
            ),
            Self::Closing(c) => write!(
                f,
                "the client contract {c} is closing or closed: it takes no new requests"
            ),
            Self::Chain(e) => write!(f, "chain: {e}"),
            Self::Ledger(e) => write!(f, "ledger: {e}"),
        }
    }
}

impl Settlement {
    /// Connects to the configured chain, checks the proxy contract against the voucher key and
    /// the configured prices against the contract's, and fills in the proxy's contract and
    /// owner addresses in `config`. `None` without a `[chain]` endpoint. Runs before the ledger
    /// is opened, so that a configuration the chain refuses leaves no ledger behind priced
    /// with it; [`Settlement::reconcile_anchors`] follows once it is open.
    pub(crate) async fn open(
        config: &mut ProxyConfig,
        key: &SigningKey,
    ) -> Result<Option<Self>, ProxyError> {
        let settings = config.chain.clone();
        let Some(endpoint) = settings.endpoint.as_deref() else {
            return Ok(None);
        };
        let bad = |what: &str, e: &dyn std::fmt::Display| {
            ProxyError::Config(format!("[chain] {what}: {e}"))
        };
        let spec: ChainSpec = endpoint.parse().map_err(|e| bad("endpoint", &e))?;
        if settings.proxy_contract.is_none() && config.registry.root.is_some() {
            tracing::warn!(
                "[chain] has no proxy_contract: the chain is read for the root registry only; \
                 no settlement (local deposits, no vouchers)"
            );
            return Ok(None);
        }
        let contract = settings
            .proxy_contract
            .as_deref()
            .ok_or_else(|| ProxyError::Config("[chain] needs proxy_contract".into()))?;
        let proxy_contract =
            cocoon_chain::parse_address(contract).map_err(|e| bad("proxy_contract", &e))?;
        let chain = spec
            .open(settings.api_key.as_deref())
            .await
            .map_err(|e| bad("cannot open the chain", &e))?;
        let state = read_proxy_state(chain.as_ref(), &proxy_contract)
            .await
            .map_err(|e| bad("cannot read the proxy contract", &e))?;
        let public = key.verifying_key().to_bytes();
        if state.identity.proxy_public_key != public {
            return Err(ProxyError::Config(format!(
                "[chain] the proxy contract {} belongs to proxy key {}, not to this proxy's \
                 voucher key {}",
                proxy_contract.to_raw(),
                hex::encode(state.identity.proxy_public_key),
                hex::encode(public)
            )));
        }
        // The contract settles the adjusted tokens this proxy counts: they must be counted at
        // the contract's prices, whatever the configuration says.
        cocoon_chain::check_pricing(&config.pricing, state.identity.params.core())
            .map_err(|e| ProxyError::Config(e.to_string()))?;
        let anchorer = match &settings.wallet_key_file {
            Some(path) => {
                let wallet = read_wallet_key(path).map_err(|e| bad("wallet_key_file", &e))?;
                Some(
                    Operator::new(chain.clone(), wallet, spec.default_confirm_timeout())
                        .map_err(|e| bad("wallet", &e))?,
                )
            }
            None => {
                tracing::warn!(
                    "[chain] has no wallet_key_file: the ledger is not anchored and no voucher \
                     is signed"
                );
                None
            }
        };
        let mode = match spec {
            ChainSpec::Emulated(_) => "local (emulated chain)",
            ChainSpec::Toncenter(_) => "toncenter",
        };
        config.contract_address = proxy_contract.to_raw();
        config.owner_address = state.identity.owner.to_raw();
        let settlement = Self {
            chain,
            root: state.identity.root,
            proxy_contract,
            proxy_public_key: public,
            params: state.identity.params.clone(),
            chain_anchor: (state.saved_seqno, state.saved_state_hash),
            key: key.clone(),
            anchorer,
            interval: settings.anchor_interval.max(Duration::from_millis(100)),
            stats: Mutex::new(SettlementStats {
                mode: mode.into(),
                proxy_contract: proxy_contract.to_raw(),
                chain_anchor_seqno: state.saved_seqno,
                ..SettlementStats::default()
            }),
            vouchers_signed: AtomicU64::new(0),
            client_syncs: AtomicU64::new(0),
        };
        tracing::info!(
            mode,
            proxy_contract = %proxy_contract.to_raw(),
            price_per_token = %settlement.params.core().price_per_token,
            worker_fee_per_token = %settlement.params.core().worker_fee_per_token,
            chain_anchor = state.saved_seqno,
            "settlement on chain"
        );
        Ok(Some(settlement))
    }

    /// Compares the chain's last anchor with the ledger's: commits a prepared anchor the chain
    /// holds, and flags a ledger older than the chain's anchor.
    pub(crate) async fn reconcile_anchors(&self, ledger: &LedgerStore) -> Result<(), ProxyError> {
        let (chain_seqno, chain_hash) = self.chain_anchor;
        let anchors = ledger.anchors().await?;
        let newest = anchors.iter().map(|a| a.seqno).max().unwrap_or(0);
        if let Some(a) = anchors.iter().find(|a| a.seqno == chain_seqno)
            && a.state_hash == chain_hash
            && a.committed_at_ms.is_none()
        {
            ledger.commit_anchor(chain_seqno).await?;
            tracing::info!(
                seqno = chain_seqno,
                "committed an anchor the chain already held"
            );
        }
        let committed = ledger
            .latest_committed_anchor()
            .await?
            .map_or(0, |a| a.seqno);
        let mut stats = lock(&self.stats);
        stats.ledger_anchor_seqno = committed;
        if chain_seqno > newest {
            let why = format!(
                "the chain holds ledger anchor {chain_seqno} but this ledger's newest is \
                 {newest}: the ledger was rolled back (restored from an older copy); no voucher \
                 will be signed"
            );
            tracing::error!("{why}");
            stats.rolled_back = Some(why);
        }
        Ok(())
    }

    /// The client contract of `owner` at this proxy.
    pub(crate) fn client_contract(&self, owner: &str) -> Result<Address, SyncFailure> {
        let owner =
            cocoon_chain::parse_address(owner).map_err(|_| SyncFailure::BadOwner(owner.into()))?;
        client_address(
            &owner,
            &self.proxy_contract,
            &self.proxy_public_key,
            &self.params,
        )
        .map_err(|e| {
            SyncFailure::Chain(ChainError::UnexpectedState {
                contract: self.proxy_contract.to_raw(),
                detail: format!("client contract address of {owner:?}: {e}"),
            })
        })
    }

    /// The worker contract of `owner` at this proxy.
    pub(crate) fn worker_contract(&self, owner: &str) -> Option<Address> {
        let owner = cocoon_chain::parse_address(owner).ok()?;
        worker_address(
            &owner,
            &self.proxy_contract,
            &self.proxy_public_key,
            &self.params,
        )
        .ok()
    }

    /// Reads the client contract of `client` and books its balance, stake and charged count
    /// (idempotent: the chain's values replace the ledger's view of them).
    pub(crate) async fn sync_client(
        &self,
        ledger: &LedgerStore,
        client: &ClientId,
    ) -> Result<cocoon_ledger_store::StoredClient, SyncFailure> {
        let contract = self.client_contract(&client.0)?;
        let account = self
            .chain
            .account(&contract)
            .await
            .map_err(SyncFailure::Chain)?;
        if account.status != cocoon_chain::AccountStatus::Active {
            return Err(SyncFailure::NotToppedUp(contract.to_raw()));
        }
        let r = self
            .chain
            .run_get_method(&contract, "get_client_data", &[])
            .await
            .map_err(SyncFailure::Chain)?;
        let data = ClientData::from_stack(&r.stack).map_err(|e| {
            SyncFailure::Chain(ChainError::UnexpectedState {
                contract: contract.to_raw(),
                detail: format!("get_client_data: {e}"),
            })
        })?;
        let closing = data.lifecycle != cocoon_ton::contracts::Lifecycle::Normal;
        let n = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
        let state = ChainClientState {
            balance: n(data.balance),
            stake: n(data.stake),
            tokens_used: data.tokens_used,
        };
        let before = ledger.client(client).await.map_err(SyncFailure::Ledger)?;
        let stored = ledger
            .sync_client(client, state)
            .await
            .map_err(SyncFailure::Ledger)?;
        self.client_syncs.fetch_add(1, Ordering::Relaxed);
        if before.as_ref().map(|b| (b.balance, b.tokens_on_chain))
            != Some((stored.balance, stored.tokens_on_chain))
        {
            tracing::info!(
                client = %client,
                contract = %contract.to_raw(),
                balance = stored.balance,
                stake = stored.stake,
                tokens_on_chain = stored.tokens_on_chain,
                "client balance from chain"
            );
        }
        if closing {
            return Err(SyncFailure::Closing(contract.to_raw()));
        }
        Ok(stored)
    }

    fn may_sign(&self) -> bool {
        self.anchorer.is_some() && lock(&self.stats).rolled_back.is_none()
    }

    fn sign(&self, kind: VoucherKind, tokens: u64, target: Address) -> proxy::AnySignedPayment {
        if tokens == 0 || !self.may_sign() {
            return proxy::AnySignedPayment::default();
        }
        let seqno = lock(&self.stats).ledger_anchor_seqno;
        match Voucher::sign(
            VoucherPayload::new(kind, u64::from(seqno), tokens, target),
            &self.key,
        ) {
            Ok(v) => {
                self.vouchers_signed.fetch_add(1, Ordering::Relaxed);
                proxy::AnySignedPayment::SignedPayment(proxy::SignedPayment {
                    data: Bytes::copy_from_slice(&v.to_bytes()),
                })
            }
            Err(e) => {
                tracing::error!("cannot sign a voucher: {e}");
                proxy::AnySignedPayment::default()
            }
        }
    }

    /// The client's `charge_signed` voucher for the anchored part of its charges.
    pub(crate) async fn client_voucher(
        &self,
        ledger: &LedgerStore,
        client: &ClientId,
    ) -> proxy::AnySignedPayment {
        let (Ok(contract), Ok(Some(account))) =
            (self.client_contract(&client.0), ledger.client(client).await)
        else {
            return proxy::AnySignedPayment::default();
        };
        self.sign(VoucherKind::ClientCharge, account.anchored_tokens, contract)
    }

    /// The client's `grant_refund_signed` voucher for its frozen count, once an anchor on chain
    /// covers that count (the ledger changed when the refund was granted, so the next anchor
    /// does); waits for it up to two anchor intervals. A count of zero is signed too: it closes
    /// a contract that was never charged.
    async fn refund_voucher(
        &self,
        ledger: &LedgerStore,
        grant: &RefundGrant,
    ) -> Result<Bytes, VoucherFailure> {
        let contract = self
            .client_contract(&grant.client.0)
            .map_err(VoucherFailure::Contract)?;
        if !self.may_sign() {
            return Err(VoucherFailure::NotSigning);
        }
        let deadline = tokio::time::Instant::now() + 2 * self.interval + Duration::from_secs(5);
        loop {
            let anchored = ledger
                .client(&grant.client)
                .await?
                .map_or(0, |a| a.anchored_tokens);
            if anchored >= grant.tokens_used {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(VoucherFailure::NotAnchoredYet(grant.tokens_used));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let seqno = lock(&self.stats).ledger_anchor_seqno;
        let voucher = Voucher::sign(
            VoucherPayload::new(
                VoucherKind::ClientGrantRefund,
                u64::from(seqno),
                grant.tokens_used,
                contract,
            ),
            &self.key,
        )
        .map_err(|source| VoucherFailure::Sign {
            what: "the refund voucher",
            source,
        })?;
        self.vouchers_signed.fetch_add(1, Ordering::Relaxed);
        Ok(Bytes::copy_from_slice(&voucher.to_bytes()))
    }

    /// The worker's `payout_signed` voucher for the anchored part of its earnings.
    pub(crate) async fn worker_voucher(
        &self,
        ledger: &LedgerStore,
        owner: &str,
    ) -> proxy::AnySignedPayment {
        let (Some(contract), Ok(Some(account))) = (
            self.worker_contract(owner),
            ledger.worker(&WorkerAccountId(owner.to_owned())).await,
        ) else {
            return proxy::AnySignedPayment::default();
        };
        self.sign(VoucherKind::WorkerPayout, account.anchored_tokens, contract)
    }

    /// What `/stats` shows.
    pub(crate) fn stats(&self) -> SettlementStats {
        let mut s = lock(&self.stats).clone();
        s.vouchers_signed = self.vouchers_signed.load(Ordering::Relaxed);
        s.client_syncs = self.client_syncs.load(Ordering::Relaxed);
        s
    }

    /// Anchors the ledger every interval while it changes, until `shutdown`.
    pub(crate) async fn anchor_loop(
        self: Arc<Self>,
        ledger: LedgerStore,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let Some(anchorer) = self.anchorer.clone() else {
            return;
        };
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            if lock(&self.stats).rolled_back.is_some() {
                continue;
            }
            match self.anchor_once(&anchorer, &ledger).await {
                Ok(()) => lock(&self.stats).anchor_error = None,
                Err(e) => {
                    tracing::warn!("ledger anchor failed: {e}");
                    lock(&self.stats).anchor_error = Some(e.to_string());
                }
            }
        }
    }

    /// Commits `anchor`, which the chain holds (`how`: how that is known, for the log).
    async fn anchored(
        &self,
        ledger: &LedgerStore,
        anchor: &LedgerAnchor,
        how: &str,
    ) -> Result<(), VoucherFailure> {
        let committed = ledger.commit_anchor(anchor.seqno).await?;
        let mut stats = lock(&self.stats);
        stats.anchors_sent += 1;
        stats.chain_anchor_seqno = anchor.seqno;
        stats.ledger_anchor_seqno = committed.seqno;
        tracing::info!(
            seqno = anchor.seqno,
            state_hash = %hex::encode(anchor.state_hash),
            requests = committed.requests,
            "ledger anchored on chain ({how})"
        );
        Ok(())
    }

    /// One anchor, if the books changed since the last committed one.
    async fn anchor_once(
        &self,
        anchorer: &Operator,
        ledger: &LedgerStore,
    ) -> Result<(), VoucherFailure> {
        let totals = ledger.totals().await?;
        let last = ledger.latest_committed_anchor().await?;
        if last.as_ref().map(|a| a.requests) == Some(totals.requests) || totals.requests == 0 {
            return Ok(());
        }
        let prepared = ledger.prepare_anchor().await?;
        let anchor = LedgerAnchor {
            seqno: prepared.seqno,
            state_hash: prepared.state_hash,
        };
        let signature = anchor
            .sign(&self.proxy_contract, &self.key)
            .map_err(|source| VoucherFailure::Sign {
                what: "the ledger anchor",
                source,
            })?;
        match anchorer
            .save_state(&self.proxy_contract, &anchor, signature)
            .await
        {
            Ok(report) => {
                self.anchored(ledger, &anchor, &format!("message {}", report.message_hash))
                    .await
            }
            Err(e) => {
                let on_chain = read_proxy_state(self.chain.as_ref(), &self.proxy_contract)
                    .await
                    .ok();
                // The message landed although its confirmation did not come (a timeout): the
                // chain holds this very anchor, which is committed as if confirmed.
                if let Some(state) = &on_chain
                    && state.saved_seqno == anchor.seqno
                    && state.saved_state_hash == anchor.state_hash
                {
                    let how = format!("found there after the send failed: {e}");
                    return self.anchored(ledger, &anchor, &how).await;
                }
                // Another anchor at or beyond ours on chain means our books went back in time.
                if let Some(state) = on_chain
                    && state.saved_seqno >= anchor.seqno
                {
                    let why = format!(
                        "the chain holds ledger anchor {} but this ledger is at {}: the \
                         ledger was rolled back; no voucher will be signed",
                        state.saved_seqno, anchor.seqno
                    );
                    tracing::error!("{why}");
                    let mut stats = lock(&self.stats);
                    stats.chain_anchor_seqno = state.saved_seqno;
                    stats.rolled_back = Some(why);
                }
                Err(VoucherFailure::SaveState {
                    seqno: anchor.seqno,
                    source: e,
                })
            }
        }
    }
}

/// The client's payment status: its charged and allowed totals after reading its contract
/// (when there is a chain), and its latest voucher.
pub(crate) async fn client_status(
    state: &crate::state::ProxyState,
    client: &ClientId,
) -> Result<(i64, i64, proxy::AnySignedPayment), StoreError> {
    if let Some(settle) = &state.settle
        && let Err(e) = settle.sync_client(&state.ledger, client).await
    {
        tracing::warn!(client = %client, "cannot read the client's contract: {e}");
    }
    let (used, limit) = crate::clients::client_tokens(state, client).await?;
    Ok((used, limit, client_voucher(state, client).await))
}

/// What a client's `client.requestRefund` gets.
pub(crate) enum RefundAnswer {
    /// Granted: the `grant_refund_signed` voucher's bytes on a chain, empty without one.
    Granted(Bytes),
    /// Requests of the client are still running.
    Busy(u64),
}

/// Grants a client's refund: freezes its count in the ledger (no request is accepted from it
/// afterwards) and, on a chain, signs the `grant_refund_signed` voucher that lets its contract
/// close at once and return the rest of its balance.
pub(crate) async fn grant_refund(
    state: &crate::state::ProxyState,
    client: &ClientId,
) -> Result<RefundAnswer, (i32, String)> {
    if let Some(settle) = &state.settle
        && let Err(e) = settle.sync_client(&state.ledger, client).await
    {
        tracing::warn!(client = %client, "cannot read the client's contract: {e}");
    }
    let grant = match state.ledger.grant_refund(client).await {
        Ok(grant) => grant,
        Err(StoreError::Market(MarketError::ReservationsOpen {
            reserved_tokens, ..
        })) => {
            tracing::info!(%client, reserved_tokens, "refund refused: requests still running");
            return Ok(RefundAnswer::Busy(1));
        }
        Err(StoreError::Market(MarketError::UnknownClient(_))) => {
            return Err((404, "this client has no account at the proxy".into()));
        }
        Err(e) => {
            tracing::error!(%client, "cannot grant a refund: {e}");
            return Err((503, "the proxy's ledger is unavailable".into()));
        }
    };
    tracing::info!(
        %client,
        tokens_used = grant.tokens_used,
        refund_nanoton = grant.refund_nanoton,
        "refund granted: the client's account is frozen"
    );
    match &state.settle {
        None => Ok(RefundAnswer::Granted(Bytes::new())),
        Some(settle) => settle
            .refund_voucher(&state.ledger, &grant)
            .await
            .map(RefundAnswer::Granted)
            .map_err(|e| (503, e.to_string())),
    }
}

/// The client's latest `charge_signed` voucher (empty without a chain).
pub(crate) async fn client_voucher(
    state: &crate::state::ProxyState,
    client: &ClientId,
) -> proxy::AnySignedPayment {
    match &state.settle {
        Some(settle) => settle.client_voucher(&state.ledger, client).await,
        None => proxy::AnySignedPayment::default(),
    }
}

/// The worker owner's latest `payout_signed` voucher (empty without a chain).
pub(crate) async fn worker_voucher(
    state: &crate::state::ProxyState,
    owner: &str,
) -> proxy::AnySignedPayment {
    match &state.settle {
        Some(settle) => settle.worker_voucher(&state.ledger, owner).await,
        None => proxy::AnySignedPayment::default(),
    }
}

/// The worker contract's address to announce (a placeholder without a chain).
pub(crate) fn worker_contract_text(state: &crate::state::ProxyState, owner: &str) -> String {
    state
        .settle
        .as_ref()
        .and_then(|s| s.worker_contract(owner))
        .map_or_else(|| format!("local-worker-contract:{owner}"), |a| a.to_raw())
}
