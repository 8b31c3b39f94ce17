//! The crate's one error type: everything a chain backend, the sidecar, toncenter or a registry
//! read can fail with, in variants precise enough to act on (retry, fix the setup, give up).

use std::path::PathBuf;

/// Why a chain operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The backend cannot do this at all (e.g. sending from a local wallet on a real network).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// Which backend refused.
        backend: &'static str,
        /// What was asked.
        operation: &'static str,
    },

    /// The `node` executable could not be started.
    #[error("cannot start node ({program}): {detail}; install Node.js 20+ or set COCOON_NODE")]
    NodeNotFound {
        /// The program that was tried.
        program: String,
        /// The operating system's answer.
        detail: String,
    },

    /// The contracts directory or its sidecar script is missing.
    #[error(
        "contracts directory {dir} has no {missing}; set COCOON_CONTRACTS_DIR to the repository's contracts/"
    )]
    ContractsDirMissing {
        /// The directory that was searched.
        dir: PathBuf,
        /// The file that is not there.
        missing: &'static str,
    },

    /// `contracts/node_modules` lacks the sandbox: the npm packages were never installed.
    #[error("{dir} has no node_modules/@ton/sandbox: run `npm ci --prefix contracts` first")]
    NodeModulesMissing {
        /// The contracts directory.
        dir: PathBuf,
    },

    /// A compiled contract (`contracts/build/<name>.json`) is missing or malformed.
    #[error("compiled contract {path}: {detail}")]
    CompiledContract {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// The sidecar did not say it was ready in time.
    #[error("the chain sidecar did not start within {seconds} s{stderr}")]
    SidecarStartTimeout {
        /// The limit that passed.
        seconds: u64,
        /// The end of its stderr, if any (with a leading separator).
        stderr: String,
    },

    /// The sidecar process is gone (it crashed, was killed, or closed its output).
    #[error("the chain sidecar exited: {detail}")]
    SidecarExited {
        /// Exit status and the end of its stderr, when known.
        detail: String,
    },

    /// The sidecar did not answer a request in time.
    #[error("the chain sidecar did not answer {method} within {seconds} s")]
    SidecarTimeout {
        /// The request's method.
        method: &'static str,
        /// The limit that passed.
        seconds: u64,
    },

    /// The sidecar answered something that is not the protocol.
    #[error("chain sidecar protocol violation: {detail}")]
    SidecarProtocol {
        /// What was wrong.
        detail: String,
    },

    /// The sidecar refused or failed a request.
    #[error("chain sidecar: {method} failed ({code}): {message}")]
    Sidecar {
        /// The request's method.
        method: &'static str,
        /// The sidecar's error code (`bad_request`, `emulation_failed`, ...).
        code: String,
        /// Its explanation.
        message: String,
        /// The TVM exit code, when the failure came from a contract.
        exit_code: Option<i32>,
    },

    /// A get-method ran but exited with an error code.
    #[error("get-method {method} on {address} exited with code {exit_code}")]
    GetMethodFailed {
        /// The method's name.
        method: String,
        /// The contract.
        address: String,
        /// The TVM exit code.
        exit_code: i32,
    },

    /// The account exists but holds no code, so nothing can run on it.
    #[error("account {address} is not active")]
    AccountNotActive {
        /// The account.
        address: String,
    },

    /// A `--chain` value is not `emulated=HOST:PORT` or `toncenter=URL`.
    #[error("chain {spec:?}: {detail}")]
    ChainSpec {
        /// What was given.
        spec: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A wallet key file cannot be used.
    #[error("wallet key file {path}: {detail}")]
    WalletKey {
        /// The file.
        path: PathBuf,
        /// Why not.
        detail: String,
    },

    /// An amount of TON is not a positive decimal with at most nine decimals.
    #[error("{text:?} is not an amount of TON (a positive decimal, at most 9 decimals)")]
    Amount {
        /// What was given.
        text: String,
    },

    /// A contract is not in the state the command needs (not deployed, closed, not owned by
    /// this wallet, nothing to withdraw, ...).
    #[error("contract {contract}: {detail}")]
    UnexpectedState {
        /// The contract.
        contract: String,
        /// What is wrong.
        detail: String,
    },

    /// A voucher cannot be submitted (wrong kind, wrong contract, bad signature, old count).
    #[error("voucher: {detail}")]
    Voucher {
        /// Why not.
        detail: String,
    },

    /// The wallet cannot pay for the command.
    #[error("wallet {wallet} holds {balance} nanoTON, the command needs about {needed}")]
    InsufficientFunds {
        /// The wallet.
        wallet: String,
        /// Its balance.
        balance: u128,
        /// Value plus a fee margin.
        needed: u128,
    },

    /// The contract ran the command's message and refused it.
    #[error("{operation}: contract {contract} refused the message (exit code {}){reason}", exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string()))]
    Refused {
        /// The command.
        operation: &'static str,
        /// The contract.
        contract: String,
        /// The TVM exit code.
        exit_code: Option<i32>,
        /// The contract's reason for that code, when it is one of ours (with a leading space).
        reason: String,
    },

    /// The contract accepted the message but the proxy contract refused the follow-up, which
    /// bounced back (the contract undid its booking).
    #[error(
        "{operation}: the proxy contract refused the request of {contract}; it bounced back and was undone"
    )]
    Bounced {
        /// The command.
        operation: &'static str,
        /// The contract.
        contract: String,
    },

    /// The expected change did not show up on chain in time.
    #[error("{operation}: no confirmation on {contract} within {seconds} s (now: {state})")]
    NotConfirmed {
        /// The command.
        operation: &'static str,
        /// The contract.
        contract: String,
        /// The limit.
        seconds: u64,
        /// The contract's state at the last read.
        state: String,
    },

    /// The HTTP request could not be made or its answer not read.
    #[error("request to {url} failed: {detail}")]
    Transport {
        /// The endpoint (without the API key).
        url: String,
        /// The client's explanation.
        detail: String,
    },

    /// The server answered with a status that is not worth retrying.
    #[error("{url} answered HTTP {status}: {body}")]
    HttpStatus {
        /// The endpoint.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },

    /// Every retry of a retryable failure (429, 5xx, connection trouble) failed.
    #[error("{url}: gave up after {attempts} attempts; last failure: {last}")]
    RetriesExhausted {
        /// The endpoint.
        url: String,
        /// How many requests were made.
        attempts: u32,
        /// The last failure.
        last: String,
    },

    /// The API answered `ok: false` (or an error object) with a 2xx status.
    #[error("{url}: API error{}: {message}", code.map(|c| format!(" {c}")).unwrap_or_default())]
    Api {
        /// The endpoint.
        url: String,
        /// The error code the API gave, if any.
        code: Option<i64>,
        /// The API's explanation.
        message: String,
    },

    /// An answer was not in the expected shape (bad JSON, missing or malformed fields).
    #[error("malformed answer from {source_name}: {detail}")]
    BadResponse {
        /// Who answered (an endpoint or `sidecar`).
        source_name: String,
        /// What was wrong.
        detail: String,
    },

    /// A cell could not be built or read (`cocoon-ton`'s error, with what was being done).
    #[error("{context}: {source}")]
    Cell {
        /// What was being built or read.
        context: &'static str,
        /// The cell library's error.
        #[source]
        source: cocoon_ton::Error,
    },

    /// A get-method result did not have the expected entry.
    #[error("stack entry {index}: expected {expected}, found {found}")]
    Stack {
        /// Zero-based position in the result stack.
        index: usize,
        /// What was expected.
        expected: &'static str,
        /// What was there.
        found: String,
    },

    /// An address string could not be parsed.
    #[error("bad address {input:?}: {detail}")]
    Address {
        /// The text.
        input: String,
        /// Why it is not an address.
        detail: String,
    },

    /// A configuration value is unusable.
    #[error("bad configuration: {0}")]
    Config(String),

    /// A contract's prices cannot be used (out of range, or against the root's rules).
    #[error("the contract's prices: {0}")]
    Prices(String),

    /// The configured prices are not the contract's.
    #[error("the configured [pricing] differs from the proxy contract's parameters: {0}")]
    PricesDiffer(String),

    /// A `[registry]` root is set with no chain to read it from.
    #[error(
        "[registry] root needs a chain to read it from ([registry] chain or [settlement] chain)"
    )]
    RegistryWithoutChain,

    /// The `[registry]` root is not an address.
    #[error("[registry] root: {0}")]
    RegistryRoot(Box<ChainError>),

    /// Reading or writing a local file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl ChainError {
    pub(crate) fn cell(context: &'static str) -> impl FnOnce(cocoon_ton::Error) -> Self {
        move |source| Self::Cell { context, source }
    }

    pub(crate) fn bad_response(source_name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::BadResponse {
            source_name: source_name.into(),
            detail: detail.into(),
        }
    }
}
