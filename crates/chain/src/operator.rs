//! Operator commands: the on-chain actions a client owner, worker owner or proxy owner takes
//! by hand (top up, withdraw, close, submit a payout voucher, close a proxy). Each one signs a
//! V5R1 wallet transfer with the owner's key, sends it to whichever chain `--chain` names,
//! then reads the contract back (polling with a timeout) and reports what changed, or a typed
//! error saying why it did not. The three binaries only parse flags and print the report.

use crate::chain::Chain;
use crate::types::{AccountStatus, Nanotons, TON, Transaction};
use crate::{ChainError, EmulatedChain, Toncenter, ToncenterConfig};
use cocoon_ton::contracts::{
    ClientData, ExitCode, Lifecycle, ProxyData, ProxyState, WorkerData, client_state_init, gas,
    worker_state_init,
};
use cocoon_ton::messages::{ClientMessage, ClientRegisteredLog, ProxyMessage};
use cocoon_ton::{
    Address, InternalMessage, LedgerAnchor, OutgoingMessage, SigningKey, StateInit, Transfer,
    Voucher, VoucherKind, WalletV5R1,
};
use serde::Serialize;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which chain an operator command talks to (`--chain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainSpec {
    /// `emulated=HOST:PORT`: a shared emulated chain (`cocoon-chain-emulator`).
    Emulated(String),
    /// `toncenter=URL`: a toncenter HTTP API (testnet or mainnet).
    Toncenter(String),
}

impl FromStr for ChainSpec {
    type Err = ChainError;

    fn from_str(text: &str) -> Result<Self, ChainError> {
        let bad = |detail: &str| ChainError::ChainSpec {
            spec: text.to_owned(),
            detail: detail.to_owned(),
        };
        let (kind, value) = text
            .split_once('=')
            .ok_or_else(|| bad("expected emulated=HOST:PORT or toncenter=URL"))?;
        if value.is_empty() {
            return Err(bad("the value after = is empty"));
        }
        match kind {
            "emulated" => Ok(Self::Emulated(value.to_owned())),
            "toncenter" if value.starts_with("http://") || value.starts_with("https://") => {
                Ok(Self::Toncenter(value.to_owned()))
            }
            "toncenter" => Err(bad("the toncenter URL must start with http:// or https://")),
            _ => Err(bad("unknown backend; expected emulated or toncenter")),
        }
    }
}

impl ChainSpec {
    /// Opens the chain: connects to the emulator or builds the toncenter client.
    ///
    /// # Errors
    /// Connection failures ([`EmulatedChain::connect`], [`Toncenter::new`]).
    pub async fn open(&self, api_key: Option<&str>) -> Result<Arc<dyn Chain>, ChainError> {
        match self {
            Self::Emulated(addr) => Ok(Arc::new(
                EmulatedChain::connect(addr, Duration::from_secs(60)).await?,
            )),
            Self::Toncenter(url) => {
                let mut config = ToncenterConfig::new(url.clone());
                if let Some(key) = api_key {
                    config = config.with_api_key(key);
                }
                Ok(Arc::new(Toncenter::new(config)?))
            }
        }
    }

    /// How long to wait for a sent message to show up: the emulator processes it at once, a
    /// real network takes a few blocks.
    #[must_use]
    pub fn default_confirm_timeout(&self) -> Duration {
        match self {
            Self::Emulated(_) => Duration::from_secs(10),
            Self::Toncenter(_) => Duration::from_secs(120),
        }
    }
}

/// The wallet a role's `[settlement]` section names (chain, API key, wallet key file), for the
/// rare submissions it makes on its own (charge vouchers, payouts, refunds). The key is read
/// once; the chain is opened at each use.
#[derive(Clone)]
pub struct ChainWallet {
    spec: ChainSpec,
    api_key: Option<String>,
    key: SigningKey,
}

impl fmt::Debug for ChainWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainWallet")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl ChainWallet {
    /// The wallet of `key_file` on `chain`; `None` without a chain.
    ///
    /// # Errors
    /// [`ChainError::ChainSpec`] for a bad chain, [`ChainError::WalletKey`] for a bad key file,
    /// [`ChainError::Config`] for a chain without a key file.
    pub fn from_settings(
        chain: Option<&str>,
        api_key: Option<&str>,
        key_file: Option<&Path>,
    ) -> Result<Option<Self>, ChainError> {
        let Some(chain) = chain else {
            return Ok(None);
        };
        let key_file =
            key_file.ok_or_else(|| ChainError::Config("a chain needs wallet_key_file".into()))?;
        Ok(Some(Self {
            spec: chain.parse()?,
            api_key: api_key.map(str::to_owned),
            key: read_wallet_key(key_file)?,
        }))
    }

    /// Opens the chain and answers an operator signing from this wallet, waiting the chain's
    /// default time for confirmations.
    ///
    /// # Errors
    /// Connection failures.
    pub async fn operator(&self) -> Result<Operator, ChainError> {
        let chain = self.spec.open(self.api_key.as_deref()).await?;
        Operator::new(chain, self.key.clone(), self.spec.default_confirm_timeout())
    }
}

/// Reads a wallet key file: the 32-byte Ed25519 seed in hex (64 digits, surrounding
/// whitespace ignored). On Unix the file must not be readable by group or others (0600).
///
/// # Errors
/// [`ChainError::WalletKey`] when the file cannot be read, is too open or is not a seed.
pub fn read_wallet_key(path: &Path) -> Result<SigningKey, ChainError> {
    let bad = |detail: String| ChainError::WalletKey {
        path: path.to_path_buf(),
        detail,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(bad(format!(
                "mode {mode:o} lets others read it; chmod 600 it"
            )));
        }
    }
    if meta.len() > 1024 {
        return Err(bad("longer than a hex seed".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| bad("expected 64 hex digits (a 32-byte Ed25519 seed)".to_owned()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a voucher file: `cocoon_ton::Voucher`'s serde JSON (a quoted hex string).
///
/// # Errors
/// [`ChainError::Voucher`] when the file cannot be read or holds no voucher.
pub fn read_voucher_file(path: &Path) -> Result<Voucher, ChainError> {
    let bad = |detail: String| ChainError::Voucher {
        detail: format!("{}: {detail}", path.display()),
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > 4096 {
        return Err(bad("too long for a voucher".to_owned()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not a voucher: {e}")))
}

/// Parses a TON amount (`1.5`, `2`, `0.000000001`) into nanotons.
///
/// # Errors
/// [`ChainError::Amount`] for anything else (more than nine decimals, signs, overflow).
pub fn parse_ton(text: &str) -> Result<Nanotons, ChainError> {
    let bad = || ChainError::Amount {
        text: text.to_owned(),
    };
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty() && frac.is_empty()
        || frac.len() > 9
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac: u128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(TON)
        .and_then(|w| w.checked_add(frac))
        .ok_or_else(bad)
}

/// Formats nanotons as TON with nine decimals.
#[must_use]
pub fn format_ton(nanotons: Nanotons) -> String {
    format!("{}.{:09}", nanotons / TON, nanotons % TON)
}

/// A contract's state as the operator sees it, before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "contract", rename_all = "snake_case")]
pub enum ContractView {
    /// No code at the address yet (a client or worker contract before its first message).
    Absent {
        /// Balance of the account (nanotons), if it holds any.
        balance: String,
    },
    /// A client contract (`get_client_data`).
    Client {
        /// Normal, closing or closed.
        state: Lifecycle,
        /// Balance booked for the owner (nanotons).
        balance: String,
        /// Stake (nanotons).
        stake: String,
        /// Cumulative adjusted tokens charged.
        tokens_used: u64,
        /// When a closing client may take its stake back.
        unlock_time: u32,
    },
    /// A worker contract (`get_worker_data`).
    Worker {
        /// Normal or closed.
        state: Lifecycle,
        /// Cumulative adjusted tokens paid.
        tokens_paid: u64,
    },
    /// A proxy contract (`get_proxy_data`).
    Proxy {
        /// Normal, closing or closed.
        state: Lifecycle,
        /// Commission not yet paid to the owner (nanotons).
        earned: String,
        /// Stake (nanotons).
        stake: String,
        /// When a closing proxy may complete its close.
        unlock_time: u32,
        /// Active client contracts.
        active_clients: u32,
        /// Active worker contracts.
        active_workers: u32,
        /// The contract's account balance (nanotons): every client's funds.
        account_balance: String,
        /// The last ledger anchor's seqno (`save_state`).
        saved_seqno: u32,
        /// The last ledger anchor's state hash (hex).
        saved_state_hash: String,
    },
}

impl fmt::Display for ContractView {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ton = |s: &str| s.parse::<u128>().map(format_ton).unwrap_or_default();
        match self {
            Self::Absent { balance } => {
                write!(f, "not deployed (account balance {} TON)", ton(balance))
            }
            Self::Client {
                state,
                balance,
                stake,
                tokens_used,
                unlock_time,
            } => write!(
                f,
                "client {state:?}: balance {} TON, stake {} TON, tokens used {tokens_used}, unlock time {unlock_time}",
                ton(balance),
                ton(stake)
            ),
            Self::Worker { state, tokens_paid } => {
                write!(f, "worker {state:?}: tokens paid {tokens_paid}")
            }
            Self::Proxy {
                state,
                earned,
                stake,
                unlock_time,
                active_clients,
                active_workers,
                account_balance,
                saved_seqno,
                saved_state_hash,
            } => write!(
                f,
                "proxy {state:?}: earned {} TON, stake {} TON, unlock time {unlock_time}, active clients {active_clients}, active workers {active_workers}, account balance {} TON, ledger anchor {saved_seqno} ({saved_state_hash})",
                ton(earned),
                ton(stake),
                ton(account_balance)
            ),
        }
    }
}

impl ContractView {
    fn client(&self) -> Option<(Lifecycle, u128, u128)> {
        match self {
            Self::Client {
                state,
                balance,
                stake,
                ..
            } => Some((
                *state,
                balance.parse().unwrap_or_default(),
                stake.parse().unwrap_or_default(),
            )),
            _ => None,
        }
    }

    fn lifecycle(&self) -> Option<Lifecycle> {
        match self {
            Self::Client { state, .. } | Self::Worker { state, .. } | Self::Proxy { state, .. } => {
                Some(*state)
            }
            Self::Absent { .. } => None,
        }
    }
}

/// One transaction the command caused on the contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransactionLine {
    /// The account.
    pub account: String,
    /// Logical time.
    pub lt: u64,
    /// Transaction hash (hex).
    pub hash: String,
    /// TVM exit code, when the VM ran.
    pub exit_code: Option<i32>,
    /// Whether it succeeded.
    pub success: bool,
}

impl From<&Transaction> for TransactionLine {
    fn from(t: &Transaction) -> Self {
        Self {
            account: t.account.to_raw(),
            lt: t.id.lt,
            hash: hex::encode(t.id.hash),
            exit_code: t.exit_code(),
            success: t.succeeded(),
        }
    }
}

/// What an operator command did, for text or JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OperationReport {
    /// The command (`client_top_up`, `client_withdraw`, `client_close`, `worker_payout`,
    /// `proxy_close`).
    pub operation: &'static str,
    /// The chain backend.
    pub backend: &'static str,
    /// The owner's wallet (V5R1 of the key).
    pub wallet: String,
    /// The contract acted on.
    pub contract: String,
    /// Hash of the external message that entered the chain (hex).
    pub message_hash: String,
    /// Value the wallet attached (nanotons).
    pub value: String,
    /// The wallet's balance before and after (nanotons).
    pub wallet_balance_before: String,
    /// See `wallet_balance_before`.
    pub wallet_balance_after: String,
    /// The contract before the command.
    pub before: ContractView,
    /// The contract after it.
    pub after: ContractView,
    /// The contract's transactions since the command was sent, oldest first.
    pub transactions: Vec<TransactionLine>,
}

impl OperationReport {
    /// The report as one JSON object.
    ///
    /// # Errors
    /// Never in practice (every field serializes).
    pub fn to_json(&self) -> Result<String, ChainError> {
        serde_json::to_string_pretty(self)
            .map_err(|e| ChainError::bad_response("report", e.to_string()))
    }
}

impl fmt::Display for OperationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ton = |s: &str| s.parse::<u128>().map(format_ton).unwrap_or_default();
        writeln!(f, "{} on {} chain: done", self.operation, self.backend)?;
        writeln!(f, "  wallet:   {}", self.wallet)?;
        writeln!(f, "  contract: {}", self.contract)?;
        writeln!(
            f,
            "  message:  {} (value {} TON)",
            self.message_hash,
            ton(&self.value)
        )?;
        for t in &self.transactions {
            writeln!(
                f,
                "  tx {} lt {} on {}: {}",
                t.hash,
                t.lt,
                t.account,
                match (t.success, t.exit_code) {
                    (true, _) => "ok".to_owned(),
                    (false, Some(c)) => format!("failed, exit code {c}"),
                    (false, None) => "failed".to_owned(),
                }
            )?;
        }
        writeln!(
            f,
            "  wallet balance: {} TON -> {} TON",
            ton(&self.wallet_balance_before),
            ton(&self.wallet_balance_after)
        )?;
        writeln!(f, "  before: {}", self.before)?;
        write!(f, "  after:  {}", self.after)
    }
}

/// Which contract kind a command reads back.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Client,
    Worker,
    Proxy,
}

/// An owner's wallet on a chain: signs and sends, then checks.
#[derive(Debug, Clone)]
pub struct Operator {
    chain: Arc<dyn Chain>,
    key: SigningKey,
    wallet: WalletV5R1,
    address: Address,
    confirm_timeout: Duration,
    poll_interval: Duration,
}

impl Operator {
    /// The V5R1 wallet of `key` on `chain`; commands wait up to `confirm_timeout` for their
    /// effect.
    ///
    /// # Errors
    /// [`ChainError::Cell`] if the wallet address cannot be computed (never for a valid key).
    pub fn new(
        chain: Arc<dyn Chain>,
        key: SigningKey,
        confirm_timeout: Duration,
    ) -> Result<Self, ChainError> {
        let wallet = WalletV5R1::new(key.verifying_key().to_bytes());
        let address = wallet
            .address()
            .map_err(ChainError::cell("wallet address"))?;
        let poll_interval = if chain.backend() == "emulated" {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(2)
        };
        Ok(Self {
            chain,
            key,
            wallet,
            address,
            confirm_timeout,
            poll_interval,
        })
    }

    /// The wallet's address.
    #[must_use]
    pub fn address(&self) -> Address {
        self.address
    }

    /// The client contract of this wallet at `proxy_contract`, with its state init.
    ///
    /// # Errors
    /// [`ChainError::UnexpectedState`] when `proxy_contract` is not an active proxy contract.
    pub async fn client_contract(
        &self,
        proxy_contract: &Address,
    ) -> Result<(Address, StateInit), ChainError> {
        let proxy = self.proxy_state(proxy_contract).await?;
        let init = client_state_init(
            &self.address,
            proxy_contract,
            &proxy.identity.proxy_public_key,
            &proxy.identity.params,
        )
        .map_err(ChainError::cell("client state init"))?;
        let address = init
            .address(0)
            .map_err(ChainError::cell("client address"))?;
        Ok((address, init))
    }

    async fn proxy_state(&self, proxy_contract: &Address) -> Result<ProxyState, ChainError> {
        read_proxy_state(self.chain.as_ref(), proxy_contract).await
    }

    /// The chain this operator sends to.
    #[must_use]
    pub fn chain(&self) -> &Arc<dyn Chain> {
        &self.chain
    }

    /// Submits a client charge voucher (`charge_signed`) to the client contract it names
    /// (anyone may; this wallet pays the gas and gets the excess back).
    ///
    /// # Errors
    /// [`ChainError::Voucher`] for a voucher that is not a client charge, not signed by the
    /// client contract's proxy key, or not above the count already charged; otherwise see
    /// [`ChainError`].
    pub async fn client_charge(&self, voucher: &Voucher) -> Result<OperationReport, ChainError> {
        let payload = voucher.payload();
        let (client, before, data) = self
            .client_voucher_target(voucher, VoucherKind::ClientCharge, "a client charge")
            .await?;
        if payload.tokens <= data.tokens_used {
            return Err(ChainError::Voucher {
                detail: format!(
                    "the voucher's count {} is not above the {} tokens already charged",
                    payload.tokens, data.tokens_used
                ),
            });
        }
        let body = voucher
            .to_message_body(&self.address)
            .map_err(ChainError::cell("charge body"))?;
        let tokens = payload.tokens;
        self.execute(
            "client_charge",
            Kind::Client,
            client,
            owner_message(client, body),
            before,
            move |after| {
                matches!(after, ContractView::Client { tokens_used, .. } if *tokens_used == tokens)
            },
        )
        .await
    }

    /// The client contract a client voucher of `kind` names, its state before, and its data;
    /// checks the kind, that the contract exists, and the voucher's signature by the proxy key
    /// the contract holds.
    async fn client_voucher_target(
        &self,
        voucher: &Voucher,
        kind: VoucherKind,
        what: &str,
    ) -> Result<(Address, ContractView, ClientData), ChainError> {
        let payload = voucher.payload();
        if payload.kind() != Some(kind) {
            return Err(ChainError::Voucher {
                detail: format!("op {:08x} is not {what}", payload.op),
            });
        }
        let client = payload.target;
        let before = self.view(Kind::Client, &client).await?;
        if matches!(before, ContractView::Absent { .. }) {
            return Err(not_deployed(&client));
        }
        let r = self
            .chain
            .run_get_method(&client, "get_client_data", &[])
            .await?;
        let data = ClientData::from_stack(&r.stack).map_err(|e| ChainError::UnexpectedState {
            contract: client.to_raw(),
            detail: format!("get_client_data: {e}"),
        })?;
        voucher
            .check(&data.proxy_public_key, kind, &client)
            .map_err(|e| ChainError::Voucher {
                detail: format!("not valid for {}: {e}", client.to_raw()),
            })?;
        Ok((client, before, data))
    }

    /// Submits the proxy's `grant_refund_signed` voucher to the client contract it names: the
    /// contract takes the final count, returns the rest of the balance and closes (anyone may
    /// submit it; this wallet pays the gas).
    ///
    /// # Errors
    /// [`ChainError::Voucher`] for a voucher that is not a refund grant, not signed by the
    /// client contract's proxy key, or below the count already charged; otherwise see
    /// [`ChainError`].
    pub async fn client_grant_refund(
        &self,
        voucher: &Voucher,
    ) -> Result<OperationReport, ChainError> {
        let payload = voucher.payload();
        let (client, before, data) = self
            .client_voucher_target(voucher, VoucherKind::ClientGrantRefund, "a refund grant")
            .await?;
        if payload.tokens < data.tokens_used {
            return Err(ChainError::Voucher {
                detail: format!(
                    "the voucher's count {} is below the {} tokens already charged",
                    payload.tokens, data.tokens_used
                ),
            });
        }
        let body = voucher
            .to_message_body(&self.address)
            .map_err(ChainError::cell("grant_refund body"))?;
        self.execute(
            "client_grant_refund",
            Kind::Client,
            client,
            owner_message(client, body),
            before,
            |after| {
                matches!(
                    after,
                    ContractView::Absent { .. }
                        | ContractView::Client {
                            state: Lifecycle::Closed,
                            ..
                        }
                )
            },
        )
        .await
    }

    /// Anchors a proxy's ledger on chain (`save_state` inside `do_not_process`), signed by the
    /// proxy key so that this wallet (any wallet) may submit it; waits until the proxy
    /// contract holds the anchor.
    ///
    /// # Errors
    /// [`ChainError::Refused`] with exit code 413 when the contract already holds this seqno
    /// or a later one; otherwise see [`ChainError`].
    pub async fn save_state(
        &self,
        proxy_contract: &Address,
        anchor: &LedgerAnchor,
        signature: [u8; 64],
    ) -> Result<OperationReport, ChainError> {
        let proxy = *proxy_contract;
        let before = self.view(Kind::Proxy, &proxy).await?;
        let body = ProxyMessage::SaveState {
            query_id: query_id(),
            anchor: *anchor,
            signature: Some(signature),
        }
        .to_cell()
        .map_err(ChainError::cell("save_state body"))?;
        let seqno = anchor.seqno;
        let hash = hex::encode(anchor.state_hash);
        self.execute(
            "proxy_save_state",
            Kind::Proxy,
            proxy,
            owner_message(proxy, body),
            before,
            move |after| {
                matches!(after, ContractView::Proxy { saved_seqno, saved_state_hash, .. }
                    if *saved_seqno == seqno && *saved_state_hash == hash)
            },
        )
        .await
    }

    /// `top_up`: adds `amount` to this wallet's client balance at `proxy_contract`
    /// (deploying the client contract the first time).
    ///
    /// # Errors
    /// See [`ChainError`]: a refused transaction, a bounce, no confirmation in time, ...
    pub async fn client_top_up(
        &self,
        proxy_contract: &Address,
        amount: Nanotons,
    ) -> Result<OperationReport, ChainError> {
        if amount == 0 {
            return Err(ChainError::Amount {
                text: "0".to_owned(),
            });
        }
        let (client, init) = self.client_contract(proxy_contract).await?;
        let before = self.view(Kind::Client, &client).await?;
        let deploy = matches!(before, ContractView::Absent { .. });
        let body = ClientMessage::TopUp {
            query_id: query_id(),
            amount,
            send_excesses_to: self.address,
        }
        .to_cell()
        .map_err(ChainError::cell("top_up body"))?;
        let value = amount + gas::CHAIN_GAS + if deploy { gas::MIN_CHILD_BALANCE } else { 0 };
        let old_balance = before.client().map_or(0, |(_, b, _)| b);
        let message = InternalMessage {
            dest: client,
            value,
            bounce: !deploy,
            state_init: deploy.then_some(init),
            body: Some(body),
        };
        self.execute(
            "client_top_up",
            Kind::Client,
            client,
            message,
            before,
            |after| {
                after
                    .client()
                    .is_some_and(|(_, b, _)| b == old_balance + amount)
            },
        )
        .await
    }

    /// `withdraw`: takes the client balance above the stake back to the wallet.
    ///
    /// # Errors
    /// See [`ChainError`].
    pub async fn client_withdraw(
        &self,
        proxy_contract: &Address,
    ) -> Result<OperationReport, ChainError> {
        let (client, _) = self.client_contract(proxy_contract).await?;
        let before = self.view(Kind::Client, &client).await?;
        let Some((_, balance, stake)) = before.client() else {
            return Err(not_deployed(&client));
        };
        if balance <= stake {
            return Err(ChainError::UnexpectedState {
                contract: client.to_raw(),
                detail: format!(
                    "nothing to withdraw: balance {} TON is not above the stake {} TON",
                    format_ton(balance),
                    format_ton(stake)
                ),
            });
        }
        let body = ClientMessage::Withdraw {
            query_id: query_id(),
        }
        .to_cell()
        .map_err(ChainError::cell("withdraw body"))?;
        self.execute(
            "client_withdraw",
            Kind::Client,
            client,
            owner_message(client, body),
            before,
            move |after| after.client().is_some_and(|(_, b, s)| b == s),
        )
        .await
    }

    /// `request_refund`: the first call starts closing the client contract (the part above
    /// the stake comes back at once); a second call after the unlock time takes the rest.
    ///
    /// # Errors
    /// See [`ChainError`].
    pub async fn client_close(
        &self,
        proxy_contract: &Address,
    ) -> Result<OperationReport, ChainError> {
        let (client, _) = self.client_contract(proxy_contract).await?;
        let before = self.view(Kind::Client, &client).await?;
        let next = match before.lifecycle() {
            None => return Err(not_deployed(&client)),
            Some(Lifecycle::Normal) => Lifecycle::Closing,
            Some(Lifecycle::Closing) => Lifecycle::Closed,
            Some(Lifecycle::Closed) => {
                return Err(ChainError::UnexpectedState {
                    contract: client.to_raw(),
                    detail: "the client contract is already closed".to_owned(),
                });
            }
        };
        let body = ClientMessage::RequestRefund {
            query_id: query_id(),
        }
        .to_cell()
        .map_err(ChainError::cell("request_refund body"))?;
        self.execute(
            "client_close",
            Kind::Client,
            client,
            owner_message(client, body),
            before,
            move |after| after.lifecycle() == Some(next),
        )
        .await
    }

    /// `register`: acknowledges `nonce`, which a proxy handed to a session that claims this
    /// wallet as its owner (long authorization). The client contract at `proxy_contract`
    /// checks that the message comes from its owner and logs `nonce` with the owner's address
    /// (`cocoon_ton::messages::ClientRegisteredLog`); the proxy authorizes the session once it
    /// reads that log. Waits until the log is on chain.
    ///
    /// # Errors
    /// [`ChainError::UnexpectedState`] when the client contract is not deployed (top it up
    /// first) or not in its normal state; [`ChainError::Refused`] when the contract refuses
    /// (this wallet is not its owner); otherwise see [`ChainError`].
    pub async fn client_register(
        &self,
        proxy_contract: &Address,
        nonce: u64,
    ) -> Result<OperationReport, ChainError> {
        let (client, _) = self.client_contract(proxy_contract).await?;
        self.client_register_to(&client, nonce).await
    }

    /// [`Self::client_register`] sent to the client contract `client`, whoever owns it: the
    /// contract refuses ([`ChainError::Refused`], exit code 401) unless this wallet is its
    /// owner. For tests that play a stranger.
    ///
    /// # Errors
    /// As [`Self::client_register`].
    pub async fn client_register_to(
        &self,
        client: &Address,
        nonce: u64,
    ) -> Result<OperationReport, ChainError> {
        let client = *client;
        let before = self.view(Kind::Client, &client).await?;
        match before.lifecycle() {
            None => return Err(not_deployed(&client)),
            Some(Lifecycle::Normal) => {}
            Some(other) => {
                return Err(ChainError::UnexpectedState {
                    contract: client.to_raw(),
                    detail: format!(
                        "the client contract is {other:?}: it registers no new session"
                    ),
                });
            }
        }
        let body = ClientMessage::Register {
            query_id: query_id(),
            nonce,
        }
        .to_cell()
        .map_err(ChainError::cell("register body"))?;
        let owner = self.address;
        self.execute_until(
            "client_register",
            Kind::Client,
            client,
            owner_message(client, body),
            before,
            move |_, transactions| {
                crate::types::ExternalLog::from_transactions(&client, transactions)
                    .iter()
                    .filter_map(|log| ClientRegisteredLog::from_cell(&log.body).ok())
                    .any(|log| log.nonce == nonce && log.owner == owner)
            },
        )
        .await
    }

    /// Submits a worker payout voucher (`payout_signed` or `last_payout_signed`) to the
    /// worker contract it names. When that contract is not deployed yet, `proxy_contract`
    /// is needed to build its state init (and must give the voucher's target).
    ///
    /// # Errors
    /// [`ChainError::Voucher`] for a voucher that is not a worker payout, not for this
    /// wallet's worker contract, or not signed by the proxy key; otherwise see [`ChainError`].
    pub async fn worker_payout(
        &self,
        voucher: &Voucher,
        proxy_contract: Option<&Address>,
    ) -> Result<OperationReport, ChainError> {
        let payload = voucher.payload();
        let kind = payload
            .kind()
            .filter(|k| matches!(k, VoucherKind::WorkerPayout | VoucherKind::WorkerLastPayout));
        let Some(kind) = kind else {
            return Err(ChainError::Voucher {
                detail: format!("op {:08x} is not a worker payout", payload.op),
            });
        };
        let worker = payload.target;
        let before = self.view(Kind::Worker, &worker).await?;
        let (proxy_key, init) = match &before {
            ContractView::Absent { .. } => {
                let Some(proxy_contract) = proxy_contract else {
                    return Err(ChainError::Voucher {
                        detail: format!(
                            "worker contract {} is not deployed; pass the proxy contract so it can be deployed with the payout",
                            worker.to_raw()
                        ),
                    });
                };
                let proxy = self.proxy_state(proxy_contract).await?;
                let init = worker_state_init(
                    &self.address,
                    proxy_contract,
                    &proxy.identity.proxy_public_key,
                    &proxy.identity.params,
                )
                .map_err(ChainError::cell("worker state init"))?;
                if init
                    .address(0)
                    .map_err(ChainError::cell("worker address"))?
                    != worker
                {
                    return Err(ChainError::Voucher {
                        detail: format!(
                            "the voucher pays {}, not this wallet's worker contract at that proxy",
                            worker.to_raw()
                        ),
                    });
                }
                (proxy.identity.proxy_public_key, Some(init))
            }
            _ => {
                let r = self
                    .chain
                    .run_get_method(&worker, "get_worker_data", &[])
                    .await?;
                let data =
                    WorkerData::from_stack(&r.stack).map_err(|e| ChainError::UnexpectedState {
                        contract: worker.to_raw(),
                        detail: format!("get_worker_data: {e}"),
                    })?;
                if data.owner != self.address {
                    return Err(ChainError::Voucher {
                        detail: format!(
                            "worker contract {} belongs to {}, not this wallet",
                            worker.to_raw(),
                            data.owner.to_raw()
                        ),
                    });
                }
                let paid = data.tokens_paid;
                let newer = if kind.accepts_equal_count() {
                    payload.tokens >= paid
                } else {
                    payload.tokens > paid
                };
                if !newer {
                    return Err(ChainError::Voucher {
                        detail: format!(
                            "the voucher's count {} is not above the {paid} tokens already paid",
                            payload.tokens
                        ),
                    });
                }
                (data.proxy_public_key, None)
            }
        };
        voucher
            .check(&proxy_key, kind, &worker)
            .map_err(|e| ChainError::Voucher {
                detail: format!("not valid for {}: {e}", worker.to_raw()),
            })?;
        let body = voucher
            .to_message_body(&self.address)
            .map_err(ChainError::cell("payout body"))?;
        let deploy = init.is_some();
        let message = InternalMessage {
            dest: worker,
            value: gas::CHAIN_GAS + if deploy { gas::MIN_CHILD_BALANCE } else { 0 },
            bounce: !deploy,
            state_init: init,
            body: Some(body),
        };
        let tokens = payload.tokens;
        self.execute("worker_payout", Kind::Worker, worker, message, before, move |after| {
            matches!(after, ContractView::Worker { tokens_paid, .. } if *tokens_paid == tokens)
        })
        .await
    }

    /// `owner_close` on a proxy contract: the first call starts its close (clients and
    /// workers get their refunds and last payouts during the delay); a call after the unlock
    /// time, with no active client or worker left, completes it and pays everything to the
    /// owner.
    ///
    /// # Errors
    /// See [`ChainError`].
    pub async fn proxy_close(
        &self,
        proxy_contract: &Address,
    ) -> Result<OperationReport, ChainError> {
        let proxy = *proxy_contract;
        let before = self.view(Kind::Proxy, &proxy).await?;
        let next = match before.lifecycle() {
            None => return Err(not_deployed(&proxy)),
            Some(Lifecycle::Normal) => Lifecycle::Closing,
            Some(Lifecycle::Closing) => Lifecycle::Closed,
            Some(Lifecycle::Closed) => {
                return Err(ChainError::UnexpectedState {
                    contract: proxy.to_raw(),
                    detail: "the proxy contract is already closed".to_owned(),
                });
            }
        };
        let state = self.proxy_state(&proxy).await?;
        if state.identity.owner != self.address {
            return Err(ChainError::UnexpectedState {
                contract: proxy.to_raw(),
                detail: format!(
                    "owned by {}, not by this wallet {}",
                    state.identity.owner.to_raw(),
                    self.address.to_raw()
                ),
            });
        }
        let body = ProxyMessage::OwnerClose {
            query_id: query_id(),
        }
        .to_cell()
        .map_err(ChainError::cell("owner_close body"))?;
        self.execute(
            "proxy_close",
            Kind::Proxy,
            proxy,
            owner_message(proxy, body),
            before,
            move |after| after.lifecycle() == Some(next),
        )
        .await
    }

    async fn view(&self, kind: Kind, address: &Address) -> Result<ContractView, ChainError> {
        let account = self.chain.account(address).await?;
        if account.status != AccountStatus::Active {
            return Ok(ContractView::Absent {
                balance: account.balance.to_string(),
            });
        }
        let unexpected = |e: cocoon_ton::Error| ChainError::UnexpectedState {
            contract: address.to_raw(),
            detail: e.to_string(),
        };
        Ok(match kind {
            Kind::Client => {
                let r = self
                    .chain
                    .run_get_method(address, "get_client_data", &[])
                    .await?;
                let d = ClientData::from_stack(&r.stack).map_err(unexpected)?;
                ContractView::Client {
                    state: d.lifecycle,
                    balance: d.balance.to_string(),
                    stake: d.stake.to_string(),
                    tokens_used: d.tokens_used,
                    unlock_time: d.unlock_time,
                }
            }
            Kind::Worker => {
                let r = self
                    .chain
                    .run_get_method(address, "get_worker_data", &[])
                    .await?;
                let d = WorkerData::from_stack(&r.stack).map_err(unexpected)?;
                ContractView::Worker {
                    state: d.lifecycle,
                    tokens_paid: d.tokens_paid,
                }
            }
            Kind::Proxy => {
                let r = self
                    .chain
                    .run_get_method(address, "get_proxy_data", &[])
                    .await?;
                let d = ProxyData::from_stack(&r.stack).map_err(unexpected)?;
                ContractView::Proxy {
                    state: d.lifecycle,
                    earned: d.earned.to_string(),
                    stake: d.stake.to_string(),
                    unlock_time: d.unlock_time,
                    active_clients: d.active_clients,
                    active_workers: d.active_workers,
                    account_balance: account.balance.to_string(),
                    saved_seqno: d.saved_seqno,
                    saved_state_hash: hex::encode(d.saved_state_hash),
                }
            }
        })
    }

    /// Signs and sends `message` from the wallet, then polls until `done(after)` holds, a
    /// transaction on `contract` fails, or the timeout passes.
    async fn execute(
        &self,
        operation: &'static str,
        kind: Kind,
        contract: Address,
        message: InternalMessage,
        before: ContractView,
        done: impl Fn(&ContractView) -> bool,
    ) -> Result<OperationReport, ChainError> {
        self.execute_until(operation, kind, contract, message, before, |after, _| {
            done(after)
        })
        .await
    }

    /// [`Self::execute`], done when `done(after, transactions)` holds, `transactions` being
    /// those on `contract` since the message was sent, oldest first (for operations that
    /// change no state the view shows, such as a log).
    async fn execute_until(
        &self,
        operation: &'static str,
        kind: Kind,
        contract: Address,
        message: InternalMessage,
        before: ContractView,
        done: impl Fn(&ContractView, &[Transaction]) -> bool,
    ) -> Result<OperationReport, ChainError> {
        let mut message = message;
        let contract_before = self.chain.account(&contract).await?;
        if matches!(kind, Kind::Client)
            && contract_before.status == AccountStatus::Active
            && message.state_init.is_none()
        {
            // A client contract keeps MIN_CHILD_BALANCE for itself and forwards the rest of
            // what it is sent. Its own messages (each `register` log's forwarding fee) and
            // storage take from that reserve; a forwarding message that does not refill what
            // is missing is refused as too low (exit code 409).
            message.value += gas::MIN_CHILD_BALANCE.saturating_sub(contract_before.balance);
        }
        let wallet_before = self.chain.account(&self.address).await?;
        let fee_margin = TON / 20;
        if wallet_before.balance < message.value + fee_margin {
            return Err(ChainError::InsufficientFunds {
                wallet: self.address.to_raw(),
                balance: wallet_before.balance,
                needed: message.value + fee_margin,
            });
        }
        let seqno = match (&wallet_before.status, &wallet_before.data) {
            (AccountStatus::Active, Some(data)) => {
                WalletV5R1::seqno_from_data(data).map_err(|e| ChainError::UnexpectedState {
                    contract: self.address.to_raw(),
                    detail: format!("not a V5R1 wallet: {e}"),
                })?
            }
            _ => 0,
        };
        let contract_lt = contract_before.last_transaction.map_or(0, |t| t.lt);
        let now = u32::try_from(self.chain.status().await?.now).unwrap_or(u32::MAX);
        let value = message.value;
        let signed = self
            .wallet
            .sign_transfer(
                &self.key,
                &Transfer {
                    seqno,
                    valid_until: now.saturating_add(300),
                    messages: vec![OutgoingMessage::new(message)],
                },
            )
            .map_err(ChainError::cell("wallet transfer"))?;
        let external = signed
            .message
            .to_cell()
            .map_err(ChainError::cell("external message"))?;
        let receipt = self.chain.send_external(&external).await?;
        let message_hash = match receipt.message_hash {
            Some(h) => hex::encode(h),
            None => hex::encode(
                signed
                    .normalized_hash()
                    .map_err(ChainError::cell("message hash"))?,
            ),
        };

        let began = Instant::now();
        loop {
            let after = self.view(kind, &contract).await?;
            let mut txs: Vec<Transaction> = self
                .chain
                .transactions(&contract, 16)
                .await?
                .into_iter()
                .filter(|t| t.id.lt > contract_lt)
                .collect();
            txs.reverse();
            if done(&after, &txs) {
                let wallet_after = self.chain.account(&self.address).await?;
                return Ok(OperationReport {
                    operation,
                    backend: self.chain.backend(),
                    wallet: self.address.to_raw(),
                    contract: contract.to_raw(),
                    message_hash,
                    value: value.to_string(),
                    wallet_balance_before: wallet_before.balance.to_string(),
                    wallet_balance_after: wallet_after.balance.to_string(),
                    before,
                    after,
                    transactions: txs.iter().map(TransactionLine::from).collect(),
                });
            }
            if let Some(failed) = txs.iter().find(|t| !t.succeeded()) {
                let exit_code = failed.exit_code();
                return Err(ChainError::Refused {
                    operation,
                    contract: contract.to_raw(),
                    exit_code,
                    reason: exit_code
                        .and_then(ExitCode::from_code)
                        .map_or_else(String::new, |r| format!(" ({r:?})")),
                });
            }
            if txs
                .iter()
                .any(|t| t.in_message.as_ref().is_some_and(|m| m.bounced))
            {
                return Err(ChainError::Bounced {
                    operation,
                    contract: contract.to_raw(),
                });
            }
            if began.elapsed() >= self.confirm_timeout {
                return Err(ChainError::NotConfirmed {
                    operation,
                    contract: contract.to_raw(),
                    seconds: self.confirm_timeout.as_secs(),
                    state: after.to_string(),
                });
            }
            tokio::time::sleep(self.poll_interval).await;
        }
    }
}

/// Reads and parses a proxy contract's data (owner, proxy key, parameters, anchors, ...).
///
/// # Errors
/// [`ChainError::UnexpectedState`] when there is no active proxy contract at the address.
pub async fn read_proxy_state(
    chain: &dyn Chain,
    proxy_contract: &Address,
) -> Result<ProxyState, ChainError> {
    let account = chain.account(proxy_contract).await?;
    let data = match (account.status, account.data) {
        (AccountStatus::Active, Some(data)) => data,
        _ => {
            return Err(ChainError::UnexpectedState {
                contract: proxy_contract.to_raw(),
                detail: "no active proxy contract at this address".to_owned(),
            });
        }
    };
    ProxyState::from_data_cell(&data).map_err(|e| ChainError::UnexpectedState {
        contract: proxy_contract.to_raw(),
        detail: format!("not a proxy contract's data: {e}"),
    })
}

/// A message from the owner that only needs gas.
fn owner_message(dest: Address, body: cocoon_ton::Cell) -> InternalMessage {
    InternalMessage {
        dest,
        value: gas::CHAIN_GAS,
        bounce: true,
        state_init: None,
        body: Some(body),
    }
}

fn not_deployed(contract: &Address) -> ChainError {
    ChainError::UnexpectedState {
        contract: contract.to_raw(),
        detail: "not deployed".to_owned(),
    }
}

/// A query id from the clock (only used to match answers in logs).
fn query_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settlement_wallet_needs_a_key_and_a_valid_chain() {
        assert!(
            ChainWallet::from_settings(None, None, None)
                .unwrap()
                .is_none()
        );
        let no_key = ChainWallet::from_settings(Some("emulated=127.0.0.1:1"), None, None);
        assert!(matches!(no_key, Err(ChainError::Config(_))), "{no_key:?}");
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("wallet.key");
        std::fs::write(&key, "11".repeat(32)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let bad_chain = ChainWallet::from_settings(Some("ftp://x"), None, Some(&key));
        assert!(
            matches!(bad_chain, Err(ChainError::ChainSpec { .. })),
            "{bad_chain:?}"
        );
        let missing = ChainWallet::from_settings(
            Some("emulated=127.0.0.1:1"),
            None,
            Some(&dir.path().join("absent.key")),
        );
        assert!(
            matches!(missing, Err(ChainError::WalletKey { .. })),
            "{missing:?}"
        );
        assert!(
            ChainWallet::from_settings(Some("emulated=127.0.0.1:1"), Some("k"), Some(&key))
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn chain_specs_parse_and_refuse() {
        assert_eq!(
            "emulated=127.0.0.1:9000".parse::<ChainSpec>().unwrap(),
            ChainSpec::Emulated("127.0.0.1:9000".to_owned())
        );
        assert_eq!(
            "toncenter=https://testnet.toncenter.com/api"
                .parse::<ChainSpec>()
                .unwrap(),
            ChainSpec::Toncenter("https://testnet.toncenter.com/api".to_owned())
        );
        for bad in [
            "emulated",
            "emulated=",
            "toncenter=ftp://x",
            "liteserver=1.2.3.4",
        ] {
            assert!(
                matches!(bad.parse::<ChainSpec>(), Err(ChainError::ChainSpec { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn ton_amounts_parse_exactly() {
        assert_eq!(parse_ton("1").unwrap(), TON);
        assert_eq!(parse_ton("1.5").unwrap(), 1_500_000_000);
        assert_eq!(parse_ton("0.000000001").unwrap(), 1);
        assert_eq!(parse_ton(".25").unwrap(), 250_000_000);
        for bad in ["", ".", "-1", "1.0000000001", "1e9", "abc", "1.2.3"] {
            assert!(parse_ton(bad).is_err(), "{bad}");
        }
        assert_eq!(format_ton(1_500_000_000), "1.500000000");
    }

    #[test]
    fn wallet_keys_must_be_private_hex_seeds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, format!("{}\n", hex::encode([5u8; 32]))).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(matches!(
                read_wallet_key(&path),
                Err(ChainError::WalletKey { .. })
            ));
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(read_wallet_key(&path).unwrap().to_bytes(), [5u8; 32]);
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(
            read_wallet_key(&path),
            Err(ChainError::WalletKey { .. })
        ));
    }
}
