//! The emulated chain: a Node.js sidecar (`contracts/sidecar/server.mjs`) runs `@ton/sandbox`
//! with the real compiled contracts, and this module drives it over JSON lines on the child's
//! stdin/stdout. Used by local mode and by tests; contract logic is never re-implemented in Rust.
//!
//! The child is killed when the [`EmulatedChain`] is dropped. Every request has a timeout, a
//! dead sidecar fails every pending and later request with [`ChainError::SidecarExited`], and
//! its stderr goes to `tracing` (target `cocoon_chain::sidecar`).
//!
//! One chain for several processes: a sidecar started with [`SidecarOptions::listen`] also
//! serves the protocol on a loopback TCP port ([`EmulatedChain::listen_addr`]), and
//! [`EmulatedChain::connect`] gives another process (or another handle in the same one) a
//! client of that same chain. The `cocoon-chain-emulator` binary runs such a service.

mod wire;

use crate::ChainError;
use crate::chain::{Chain, ChainFuture};
use crate::contracts::ContractsDir;
use crate::stack::GetMethodResult;
use crate::types::{AccountState, ChainStatus, ExternalLog, Nanotons, SendReceipt, Transaction};
use cocoon_ton::contracts::StackValue;
use cocoon_ton::{Address, Cell, InternalMessage, StateInit};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Environment variable naming the `node` executable (default: `node` on `PATH`).
pub const NODE_ENV: &str = "COCOON_NODE";

const STDERR_TAIL_LINES: usize = 20;
const PROTOCOL_VERSION: u32 = 1;

/// How to start the sidecar.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// The `node` executable; default `$COCOON_NODE` or `node`.
    pub node: Option<PathBuf>,
    /// The `contracts/` directory; default [`ContractsDir::locate`].
    pub contracts_dir: Option<PathBuf>,
    /// The chain's unix time at start; default the wall clock.
    pub start_time: Option<u64>,
    /// How long the sidecar may take to say it is ready.
    pub start_timeout: Duration,
    /// How long any one request may take.
    pub request_timeout: Duration,
    /// Also serve the protocol on this TCP address (`127.0.0.1:0` picks a free port), so
    /// other processes can [`EmulatedChain::connect`] to the same chain.
    pub listen: Option<String>,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        Self {
            node: None,
            contracts_dir: None,
            start_time: None,
            start_timeout: Duration::from_secs(60),
            request_timeout: Duration::from_secs(60),
            listen: None,
        }
    }
}

/// A saved chain state to go back to with [`EmulatedChain::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SnapshotId(u64);

/// A contract deployed on the emulated chain.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// Its address (hash of its `StateInit` in workchain 0).
    pub address: Address,
    /// The deploying transfer's transactions.
    pub receipt: SendReceipt,
}

type Reply = Result<Value, wire::WireError>;

/// Where requests go: the child's stdin, or a TCP connection to a serving sidecar.
#[derive(Debug)]
enum Writer {
    Stdin(ChildStdin),
    Tcp(tokio::net::tcp::OwnedWriteHalf),
}

impl Writer {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Self::Stdin(w) => {
                w.write_all(bytes).await?;
                w.flush().await
            }
            Self::Tcp(w) => {
                w.write_all(bytes).await?;
                w.flush().await
            }
        }
    }
}

/// State shared with the reader tasks.
#[derive(Debug, Default)]
struct Shared {
    pending: Mutex<HashMap<u64, oneshot::Sender<Reply>>>,
    /// Why the sidecar is gone, once it is.
    dead: Mutex<Option<String>>,
    stderr_tail: Mutex<VecDeque<String>>,
}

impl Shared {
    fn stderr_tail(&self) -> String {
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default();
        if tail.is_empty() {
            String::new()
        } else {
            format!("; stderr:\n{tail}")
        }
    }

    fn mark_dead(&self, reason: String) {
        if let Ok(mut dead) = self.dead.lock()
            && dead.is_none()
        {
            *dead = Some(reason);
        }
        // Dropping the senders wakes every waiter with "sidecar gone".
        if let Ok(mut pending) = self.pending.lock() {
            pending.clear();
        }
    }

    fn death(&self) -> Option<String> {
        self.dead.lock().ok().and_then(|d| d.clone())
    }
}

/// A running emulated chain (see the module docs).
#[derive(Debug)]
pub struct EmulatedChain {
    shared: Arc<Shared>,
    writer: tokio::sync::Mutex<Writer>,
    /// The sidecar process, when this handle started it (none for [`Self::connect`]).
    child: Mutex<Option<Child>>,
    /// The TCP address the sidecar serves, when it does.
    listen: Option<String>,
    next_id: AtomicU64,
    request_timeout: Duration,
    tasks: Vec<JoinHandle<()>>,
    startup: Duration,
}

impl EmulatedChain {
    /// Starts the sidecar with default options.
    ///
    /// # Errors
    /// See [`Self::spawn_with`].
    pub async fn spawn() -> Result<Self, ChainError> {
        Self::spawn_with(SidecarOptions::default()).await
    }

    /// Starts the sidecar and waits until it is ready.
    ///
    /// # Errors
    /// [`ChainError::ContractsDirMissing`] / [`ChainError::NodeModulesMissing`] when the
    /// contracts directory is incomplete, [`ChainError::NodeNotFound`] when `node` cannot be
    /// run, [`ChainError::SidecarStartTimeout`] / [`ChainError::SidecarExited`] /
    /// [`ChainError::SidecarProtocol`] when it does not come up properly.
    pub async fn spawn_with(options: SidecarOptions) -> Result<Self, ChainError> {
        let began = Instant::now();
        let dir = ContractsDir::locate(options.contracts_dir.as_deref());
        let script = dir.sidecar_script()?;
        dir.check_node_modules()?;
        let node = options.node.clone().unwrap_or_else(|| {
            std::env::var_os(NODE_ENV).map_or_else(|| PathBuf::from("node"), PathBuf::from)
        });

        let mut command = Command::new(&node);
        command
            .arg(&script)
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = options.start_time {
            command.env("COCOON_SIDECAR_START_TIME", t.to_string());
        }
        if let Some(listen) = &options.listen {
            command.env("COCOON_SIDECAR_LISTEN", listen);
        }
        let mut child = command.spawn().map_err(|e| ChainError::NodeNotFound {
            program: node.display().to_string(),
            detail: e.to_string(),
        })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(ChainError::SidecarProtocol {
                detail: "child pipes were not created".to_owned(),
            });
        };

        let shared = Arc::new(Shared::default());
        let stderr_task = tokio::spawn(forward_stderr(stderr, Arc::clone(&shared)));
        let mut lines = BufReader::new(stdout).lines();

        let first = match tokio::time::timeout(options.start_timeout, lines.next_line()).await {
            Err(_) => {
                stderr_task.abort();
                return Err(ChainError::SidecarStartTimeout {
                    seconds: options.start_timeout.as_secs(),
                    stderr: shared.stderr_tail(),
                });
            }
            Ok(Err(e)) => {
                return Err(ChainError::SidecarExited {
                    detail: format!("reading its output: {e}"),
                });
            }
            Ok(Ok(None)) => {
                // Give the stderr reader a moment to collect why it died.
                let status = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                let status = match status {
                    Ok(Ok(s)) => s.to_string(),
                    _ => "unknown status".to_owned(),
                };
                return Err(ChainError::SidecarExited {
                    detail: format!("before it was ready ({status}){}", shared.stderr_tail()),
                });
            }
            Ok(Ok(Some(line))) => line,
        };
        let ready = check_ready(&first)?;
        if options.listen.is_some() && ready.listen.is_none() {
            return Err(ChainError::SidecarProtocol {
                detail: format!("asked to listen, the ready line names no address: {first}"),
            });
        }

        let reader_task = tokio::spawn(read_replies(lines, Arc::clone(&shared)));
        let startup = began.elapsed();
        tracing::debug!(?startup, script = %script.display(), listen = ?ready.listen, "chain sidecar ready");
        Ok(Self {
            shared,
            writer: tokio::sync::Mutex::new(Writer::Stdin(stdin)),
            child: Mutex::new(Some(child)),
            listen: ready.listen,
            next_id: AtomicU64::new(1),
            request_timeout: options.request_timeout,
            tasks: vec![stderr_task, reader_task],
            startup,
        })
    }

    /// Connects to a sidecar that serves the protocol on TCP (one started with
    /// [`SidecarOptions::listen`], e.g. by `cocoon-chain-emulator`): every handle connected to
    /// it sees the same chain. Dropping the handle only closes the connection.
    ///
    /// # Errors
    /// [`ChainError::Transport`] when nothing answers at `addr`,
    /// [`ChainError::SidecarStartTimeout`] when it does not send the ready line within
    /// `request_timeout`, [`ChainError::SidecarProtocol`] when it is not the sidecar.
    pub async fn connect(addr: &str, request_timeout: Duration) -> Result<Self, ChainError> {
        // A connection the sidecar resets before its ready line (it is busy accepting others)
        // is tried again, twice at most.
        let mut tries = 0;
        loop {
            match Self::connect_once(addr, request_timeout).await {
                Err(ChainError::Transport { detail, .. })
                    if tries < 2 && detail.starts_with("reading the ready line") =>
                {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
    }

    async fn connect_once(addr: &str, request_timeout: Duration) -> Result<Self, ChainError> {
        let began = Instant::now();
        let transport = |detail: String| ChainError::Transport {
            url: format!("tcp://{addr}"),
            detail,
        };
        let stream = tokio::time::timeout(request_timeout, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| {
                transport(format!(
                    "no connection within {} s",
                    request_timeout.as_secs()
                ))
            })?
            .map_err(|e| transport(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| transport(e.to_string()))?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = match tokio::time::timeout(request_timeout, lines.next_line()).await {
            Err(_) => {
                return Err(ChainError::SidecarStartTimeout {
                    seconds: request_timeout.as_secs(),
                    stderr: String::new(),
                });
            }
            Ok(Err(e)) => return Err(transport(format!("reading the ready line: {e}"))),
            Ok(Ok(None)) => return Err(transport("closed before the ready line".to_owned())),
            Ok(Ok(Some(line))) => line,
        };
        check_ready(&first)?;
        let shared = Arc::new(Shared::default());
        let reader_task = tokio::spawn(read_replies(lines, Arc::clone(&shared)));
        Ok(Self {
            shared,
            writer: tokio::sync::Mutex::new(Writer::Tcp(write)),
            child: Mutex::new(None),
            listen: Some(addr.to_owned()),
            next_id: AtomicU64::new(1),
            request_timeout,
            tasks: vec![reader_task],
            startup: began.elapsed(),
        })
    }

    /// The TCP address other processes can [`Self::connect`] to, when the sidecar serves
    /// one (for a connected handle: the address it connected to).
    #[must_use]
    pub fn listen_addr(&self) -> Option<&str> {
        self.listen.as_deref()
    }

    /// Whether this handle started (and owns) the sidecar process.
    #[must_use]
    pub fn owns_sidecar(&self) -> bool {
        self.child.lock().map(|c| c.is_some()).unwrap_or(false)
    }

    /// How long [`Self::spawn_with`] took, from locating the files to the ready line.
    #[must_use]
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: Value,
    ) -> Result<T, ChainError> {
        if let Some(reason) = self.shared.death() {
            return Err(ChainError::SidecarExited { detail: reason });
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.insert(id, tx);
        }
        let mut line = json!({ "id": id, "method": method, "params": params }).to_string();
        line.push('\n');
        let written = {
            let mut writer = self.writer.lock().await;
            writer.send(line.as_bytes()).await
        };
        if let Err(e) = written {
            self.forget(id);
            let detail = self
                .shared
                .death()
                .unwrap_or_else(|| format!("writing a request: {e}{}", self.shared.stderr_tail()));
            return Err(ChainError::SidecarExited { detail });
        }
        let reply = match tokio::time::timeout(self.request_timeout, rx).await {
            Err(_) => {
                self.forget(id);
                return Err(ChainError::SidecarTimeout {
                    method,
                    seconds: self.request_timeout.as_secs(),
                });
            }
            Ok(Err(_)) => {
                return Err(ChainError::SidecarExited {
                    detail: self
                        .shared
                        .death()
                        .unwrap_or_else(|| "it stopped answering".to_owned()),
                });
            }
            Ok(Ok(reply)) => reply,
        };
        match reply {
            Ok(value) => serde_json::from_value(value).map_err(|e| {
                ChainError::bad_response("sidecar", format!("answer to {method}: {e}"))
            }),
            Err(e) => Err(ChainError::Sidecar {
                method,
                code: e.code,
                message: e.message,
                exit_code: e.exit_code,
            }),
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut pending) = self.shared.pending.lock() {
            pending.remove(&id);
        }
    }

    /// Creates (or refills) a funded local wallet named `name` holding `balance` nanotons.
    /// The same name always gives the same address.
    ///
    /// # Errors
    /// Sidecar failures.
    pub async fn create_wallet(
        &self,
        name: &str,
        balance: Nanotons,
    ) -> Result<Address, ChainError> {
        let a: wire::WireAddress = self
            .call(
                "create_wallet",
                json!({ "name": name, "balance": balance.to_string() }),
            )
            .await?;
        wire::parse_address_field(&a.address)
    }

    /// Deploys `init` from wallet `from`, attaching `value` nanotons (empty body, no
    /// bounce). The address is the hash of the `StateInit` in workchain 0.
    ///
    /// # Errors
    /// Sidecar failures (an unknown wallet).
    pub async fn deploy(
        &self,
        from: &Address,
        init: &StateInit,
        value: Nanotons,
    ) -> Result<Deployment, ChainError> {
        let d: wire::WireDeployed = self
            .call(
                "deploy",
                json!({
                    "from": from.to_raw(),
                    "code": init.code.to_boc_base64(),
                    "data": init.data.to_boc_base64(),
                    "value": value.to_string(),
                }),
            )
            .await?;
        Ok(Deployment {
            address: wire::parse_address_field(&d.address)?,
            receipt: d.sent.into_receipt()?,
        })
    }

    /// Sets the chain's clock (it cannot go back).
    ///
    /// # Errors
    /// Sidecar failures, including a time before the current one.
    pub async fn set_time(&self, now: u64) -> Result<u64, ChainError> {
        let n: wire::WireNow = self.call("set_time", json!({ "now": now })).await?;
        Ok(n.now)
    }

    /// Moves the chain's clock forward and returns the new time.
    ///
    /// # Errors
    /// Sidecar failures.
    pub async fn advance_time(&self, seconds: u64) -> Result<u64, ChainError> {
        let n: wire::WireNow = self
            .call("advance_time", json!({ "seconds": seconds }))
            .await?;
        Ok(n.now)
    }

    /// Saves the whole chain state (accounts, clock, wallets, transaction history).
    ///
    /// # Errors
    /// Sidecar failures.
    pub async fn snapshot(&self) -> Result<SnapshotId, ChainError> {
        let s: wire::WireSnapshot = self.call("snapshot", json!({})).await?;
        Ok(SnapshotId(s.snapshot))
    }

    /// Goes back to a saved state.
    ///
    /// # Errors
    /// Sidecar failures (an unknown snapshot).
    pub async fn restore(&self, snapshot: SnapshotId) -> Result<(), ChainError> {
        let _: Value = self
            .call("restore", json!({ "snapshot": snapshot.0 }))
            .await?;
        Ok(())
    }

    /// Asks the sidecar to exit and waits for it (at most five seconds, then kills it). A
    /// handle from [`Self::connect`] only closes its connection: the shared chain stays up.
    ///
    /// # Errors
    /// Never fails for a sidecar that is already gone.
    pub async fn shutdown(self) -> Result<(), ChainError> {
        if !self.owns_sidecar() {
            return Ok(());
        }
        let _ = self.call::<Value>("shutdown", json!({})).await;
        let child = self.child.lock().ok().and_then(|mut c| c.take());
        if let Some(mut child) = child
            && tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
        {
            let _ = child.kill().await;
        }
        Ok(())
    }

    /// Kills the sidecar at once (for tests of what callers see when it dies).
    pub fn kill(&self) {
        if let Ok(mut child) = self.child.lock()
            && let Some(c) = child.as_mut()
        {
            let _ = c.start_kill();
        }
    }
}

impl Drop for EmulatedChain {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        // `kill_on_drop` kills the child when it is dropped with `self.child`.
    }
}

async fn forward_stderr(stderr: tokio::process::ChildStderr, shared: Arc<Shared>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::debug!(target: "cocoon_chain::sidecar", "{line}");
        if let Ok(mut tail) = shared.stderr_tail.lock() {
            if tail.len() == STDERR_TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// Checks the sidecar's first line: the ready event in this crate's protocol version.
fn check_ready(first: &str) -> Result<wire::WireLine, ChainError> {
    let ready: wire::WireLine =
        serde_json::from_str(first).map_err(|e| ChainError::SidecarProtocol {
            detail: format!("first line is not JSON ({e}): {first}"),
        })?;
    if ready.event.as_deref() != Some("ready") {
        return Err(ChainError::SidecarProtocol {
            detail: format!("expected the ready event, got: {first}"),
        });
    }
    if ready.protocol != Some(PROTOCOL_VERSION) {
        return Err(ChainError::SidecarProtocol {
            detail: format!(
                "sidecar speaks protocol {:?}, this crate {PROTOCOL_VERSION}",
                ready.protocol
            ),
        });
    }
    Ok(ready)
}

async fn read_replies<R: AsyncRead + Unpin>(
    mut lines: tokio::io::Lines<BufReader<R>>,
    shared: Arc<Shared>,
) {
    loop {
        match lines.next_line().await {
            Ok(Some(line)) => {
                let parsed: wire::WireLine = match serde_json::from_str(&line) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(target: "cocoon_chain::sidecar", error = %e, "ignoring a line that is not protocol: {line}");
                        continue;
                    }
                };
                let Some(id) = parsed.id else {
                    if let Some(err) = parsed.error {
                        tracing::warn!(target: "cocoon_chain::sidecar", code = %err.code, "sidecar could not read a request: {}", err.message);
                    }
                    continue;
                };
                let reply = match (parsed.result, parsed.error) {
                    (_, Some(e)) => Err(e),
                    (Some(v), None) => Ok(v),
                    (None, None) => Err(wire::WireError {
                        code: "protocol".to_owned(),
                        message: "answer has neither result nor error".to_owned(),
                        exit_code: None,
                    }),
                };
                let waiter = shared.pending.lock().ok().and_then(|mut p| p.remove(&id));
                if let Some(tx) = waiter {
                    let _ = tx.send(reply);
                }
            }
            Ok(None) => {
                // Let the stderr reader catch the last words.
                tokio::time::sleep(Duration::from_millis(50)).await;
                shared.mark_dead(format!("it closed its output{}", shared.stderr_tail()));
                return;
            }
            Err(e) => {
                shared.mark_dead(format!("reading its output failed: {e}"));
                return;
            }
        }
    }
}

impl Chain for EmulatedChain {
    fn backend(&self) -> &'static str {
        "emulated"
    }

    fn send_external<'a>(&'a self, message: &'a Cell) -> ChainFuture<'a, SendReceipt> {
        Box::pin(async move {
            let sent: wire::WireSent = self
                .call("send_external", json!({ "boc": message.to_boc_base64() }))
                .await?;
            sent.into_receipt()
        })
    }

    fn send_internal<'a>(
        &'a self,
        wallet: &'a Address,
        message: &'a InternalMessage,
    ) -> ChainFuture<'a, SendReceipt> {
        Box::pin(async move {
            let mut params = json!({
                "from": wallet.to_raw(),
                "to": message.dest.to_raw(),
                "value": message.value.to_string(),
                "bounce": message.bounce,
            });
            if let Some(body) = &message.body {
                params["body"] = Value::String(body.to_boc_base64());
            }
            if let Some(init) = &message.state_init {
                let cell = init.to_cell().map_err(ChainError::cell("state init"))?;
                params["state_init"] = Value::String(cell.to_boc_base64());
            }
            let sent: wire::WireSent = self.call("send_internal", params).await?;
            sent.into_receipt()
        })
    }

    fn account<'a>(&'a self, address: &'a Address) -> ChainFuture<'a, AccountState> {
        Box::pin(async move {
            let a: wire::WireAccount = self
                .call("account", json!({ "address": address.to_raw() }))
                .await?;
            a.into_state()
        })
    }

    fn run_get_method<'a>(
        &'a self,
        address: &'a Address,
        method: &'a str,
        args: &'a [StackValue],
    ) -> ChainFuture<'a, GetMethodResult> {
        Box::pin(async move {
            let stack: Vec<wire::WireStackEntry> =
                args.iter().map(wire::WireStackEntry::from_value).collect();
            let params = json!({ "address": address.to_raw(), "method": method, "stack": stack });
            match self
                .call::<wire::WireGetMethod>("run_get_method", params)
                .await
            {
                Ok(r) => r.into_result(),
                Err(ChainError::Sidecar {
                    code, exit_code, ..
                }) if code == "get_method_failed" => Err(ChainError::GetMethodFailed {
                    method: method.to_owned(),
                    address: address.to_raw(),
                    exit_code: exit_code.unwrap_or(-1),
                }),
                Err(ChainError::Sidecar { code, .. }) if code == "account_not_active" => {
                    Err(ChainError::AccountNotActive {
                        address: address.to_raw(),
                    })
                }
                Err(e) => Err(e),
            }
        })
    }

    fn transactions<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<Transaction>> {
        Box::pin(async move {
            let t: wire::WireTransactions = self
                .call(
                    "transactions",
                    json!({ "address": address.to_raw(), "limit": limit.clamp(1, 1000) }),
                )
                .await?;
            wire::transactions(t.transactions)
        })
    }

    fn external_logs<'a>(
        &'a self,
        address: &'a Address,
        limit: u32,
    ) -> ChainFuture<'a, Vec<ExternalLog>> {
        Box::pin(async move {
            let transactions = self.transactions(address, limit).await?;
            Ok(ExternalLog::from_transactions(address, &transactions))
        })
    }

    fn status(&self) -> ChainFuture<'_, ChainStatus> {
        Box::pin(async move {
            let s: wire::WireStatus = self.call("status", json!({})).await?;
            Ok(ChainStatus {
                now: s.now,
                seqno: s.seqno,
            })
        })
    }
}
