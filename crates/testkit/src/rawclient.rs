//! A client that speaks the protocol by hand, for hostile tests: it dials a proxy's client port
//! over the real transport (proof of work, RA-TLS accepting simulated evidence), sends the
//! owner address exactly as given, authorizes the way it is told (even the way the proxy did
//! not ask for), optionally registers the session's nonce on an emulated chain from any
//! wallet, and runs requests that it may drop or cancel part way. It reports every step as one
//! JSON object per line on standard output, so a test can read what the proxy did.
//!
//! Events: `connected`, `connect_failed` (exit 3), `registered` / `register_failed`,
//! `authorized`, `auth_failed` (exit 3), `status`, and one `request` per request. Every wait
//! has a deadline (`--deadline`, 60 s by default).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use cocoon_net::{Connection, ConnectionConfig, Inbound, Incoming};
use cocoon_protocol::Message;
use cocoon_protocol::messages::{client, ext, http};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use cocoon_protocol::version;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::TestkitError;

/// Exit status when the proxy refused the connection or the authorization.
pub const EXIT_REFUSED: u8 = 3;

/// How long a cancelled request is read after `ext.cancelQuery` for its end.
const CANCEL_READ: Duration = Duration::from_secs(10);

/// `cocoon-raw-client`: a protocol-level client that misbehaves only as told.
#[derive(Debug, Clone, Parser)]
#[command(name = "cocoon-raw-client", version)]
pub struct RawClientArgs {
    /// The proxy's client port, HOST:PORT.
    #[arg(long)]
    pub proxy: String,
    /// The owner address, sent verbatim (any spelling, spaces included).
    #[arg(long, allow_hyphen_values = true)]
    pub owner: String,
    /// The authorization to send; by default the one the proxy asks for.
    #[arg(long, value_enum)]
    pub auth: Option<AuthKind>,
    /// File holding the short-auth secret (its bytes, one trailing newline dropped).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Send `register` with the session's nonce to the client contract the proxy named,
    /// from --wallet-key-file's wallet (the owner's, or a stranger's), before authorizing.
    #[arg(long, requires_all = ["chain", "wallet_key_file"])]
    pub register: bool,
    /// The chain to register on: emulated=HOST:PORT.
    #[arg(long)]
    pub chain: Option<String>,
    /// The wallet key file (hex Ed25519 seed, mode 0600) the `register` is sent from.
    #[arg(long)]
    pub wallet_key_file: Option<PathBuf>,
    /// Highest protocol version offered (default: the highest this build speaks).
    #[arg(long, default_value_t = version::MAX_VERSION, allow_hyphen_values = true)]
    pub protocol_version: i32,
    /// Longest wait for any one step, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub deadline: f64,
    /// What to do once authorized.
    #[command(subcommand)]
    pub command: RawCommand,
}

/// The authorization variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// `client.authorizeWithProxyLong` (proof by on-chain registration).
    Long,
    /// `client.authorizeWithProxyShort` with the secret.
    Short,
}

impl AuthKind {
    fn name(self) -> &'static str {
        match self {
            Self::Long => "long",
            Self::Short => "short",
        }
    }
}

/// What runs after authorization.
#[derive(Debug, Clone, Subcommand)]
pub enum RawCommand {
    /// `client.updatePaymentStatus`: the account's tokens used and limit.
    Status,
    /// Requests (`client.runQueryEx`), one after another.
    Run(RunArgs),
}

/// `run`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// The model name put in `client.runQueryEx`.
    #[arg(long)]
    pub model: String,
    /// The request body (JSON for /v1/chat/completions).
    #[arg(
        long,
        conflicts_with = "body_file",
        required_unless_present = "body_file"
    )]
    pub body: Option<String>,
    /// A file holding the request body.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// The raw `max_tokens` of `client.runQueryEx` (may be 0 or negative); default: the
    /// body's `max_tokens` (or `max_completion_tokens`), else 1024.
    #[arg(long, allow_hyphen_values = true)]
    pub max_tokens: Option<i32>,
    /// The request's `timeout`, in seconds.
    #[arg(long, default_value_t = 60.0)]
    pub timeout: f64,
    /// How many requests to send, one after another.
    #[arg(long, default_value_t = 1)]
    pub requests: u32,
    /// After N answer messages (the first answer counts as 1), drop the whole session
    /// abruptly, without a cancel.
    #[arg(long, conflicts_with = "cancel_after_parts")]
    pub close_after_parts: Option<u32>,
    /// After N answer messages, send `ext.cancelQuery` and read on until the request ends
    /// (or 10 s pass).
    #[arg(long)]
    pub cancel_after_parts: Option<u32>,
    /// After N answer messages, stop reading the socket (the session stays open) for
    /// `--stall-secs`, then report: a slow reader.
    #[arg(long, conflicts_with_all = ["cancel_after_parts", "close_after_parts"])]
    pub stall_after_parts: Option<u32>,
    /// How long a stalled reader stays silent.
    #[arg(long, default_value_t = 20.0)]
    pub stall_secs: f64,
    /// The request's `max_coefficient` (1000 = 1.0×).
    #[arg(long, default_value_t = 4000, allow_hyphen_values = true)]
    pub max_coefficient: i32,
}

impl RunArgs {
    /// The request body's bytes.
    fn body(&self) -> Result<Vec<u8>, TestkitError> {
        match (&self.body, &self.body_file) {
            (Some(body), _) => Ok(body.clone().into_bytes()),
            (None, Some(path)) => std::fs::read(path).map_err(|source| TestkitError::ReadFile {
                path: path.clone(),
                source,
            }),
            (None, None) => Err(TestkitError::RawClient {
                step: "arguments",
                detail: "run needs --body or --body-file".into(),
            }),
        }
    }

    /// `max_tokens` as sent: the flag, else the body's, else 1024.
    pub fn max_tokens_for(&self, body: &[u8]) -> i32 {
        if let Some(v) = self.max_tokens {
            return v;
        }
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|b| {
                b.get("max_tokens")
                    .or_else(|| b.get("max_completion_tokens"))
                    .and_then(Value::as_i64)
            })
            .map_or(1024, |v| {
                i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX })
            })
    }
}

/// What one request did, as the `request` event reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestOutcome {
    /// Answer messages received (first answer, parts, error).
    pub messages: u32,
    /// Bytes of answer payloads as received (the first holds the encoded HTTP head).
    pub answer_bytes: u64,
    /// Whether the request ended: a message with final info, or an error.
    pub finished: bool,
    /// The error's code, when the request ended with one.
    pub error_code: Option<i32>,
    /// The error's text.
    pub error: Option<String>,
    /// The tokens the final info reported.
    pub usage: Option<client::QueryFinalInfo>,
    /// Whether the session was dropped on purpose before the end.
    pub closed_early: bool,
    /// Whether the client stopped reading on purpose before the end.
    pub stalled: bool,
}

impl RequestOutcome {
    /// The `request` event.
    pub fn event(&self, index: u32) -> Value {
        let usage = self.usage.as_ref().map(|f| {
            let t = &f.tokens_used;
            json!({
                "prompt": t.prompt_tokens_used,
                "cached": t.cached_tokens_used,
                "completion": t.completion_tokens_used,
                "reasoning": t.reasoning_tokens_used,
                "total": t.total_tokens_used,
            })
        });
        json!({
            "event": "request",
            "index": index,
            "messages": self.messages,
            "answer_bytes": self.answer_bytes,
            "final": self.finished,
            "error_code": self.error_code,
            "error": self.error,
            "usage": usage,
            "closed_early": self.closed_early,
            "stalled": self.stalled,
        })
    }

    /// Counts one message for this request; true when it ended the request.
    fn take(&mut self, message: Message) -> bool {
        let (answer, final_info, error) = match message {
            Message::ClientQueryAnswerEx(a) => (a.answer, a.final_info, None),
            Message::ClientQueryAnswerPartEx(a) => (a.answer, a.final_info, None),
            Message::ClientQueryAnswerErrorEx(a) => {
                (Bytes::new(), a.final_info, Some((a.error_code, a.error)))
            }
            Message::ClientQueryAnswerError(a) => {
                (Bytes::new(), None, Some((a.error_code, a.error)))
            }
            Message::ClientQueryAnswerPartError(a) => {
                (Bytes::new(), None, Some((a.error_code, a.error)))
            }
            _ => return false,
        };
        self.messages += 1;
        self.answer_bytes += answer.len() as u64;
        if final_info.is_some() {
            self.usage = final_info;
        }
        if let Some((code, text)) = error {
            self.error_code = Some(code);
            self.error = Some(text);
            self.finished = true;
        } else if self.usage.is_some() {
            self.finished = true;
        }
        self.finished
    }
}

/// The request id an answer packet belongs to (`None` for other packets).
fn request_of(message: &Message) -> Option<Int256> {
    Some(match message {
        Message::ClientQueryAnswerEx(a) => a.request_id,
        Message::ClientQueryAnswerPartEx(a) => a.request_id,
        Message::ClientQueryAnswerErrorEx(a) => a.request_id,
        Message::ClientQueryAnswerError(a) => a.request_id,
        Message::ClientQueryAnswerPartError(a) => a.request_id,
        _ => return None,
    })
}

fn print(event: &Value) {
    println!("{event}");
}

fn transport(step: &'static str, e: impl std::fmt::Display) -> TestkitError {
    TestkitError::RawClient {
        step,
        detail: e.to_string(),
    }
}

/// Runs the scenario `args` describes; answers the exit status (0, or [`EXIT_REFUSED`]).
///
/// # Errors
/// [`TestkitError::RawClient`] and [`TestkitError::ReadFile`] when the scenario could not run
/// (unreachable proxy, broken transport, unreadable file).
pub async fn run(args: RawClientArgs) -> Result<u8, TestkitError> {
    let deadline = Duration::try_from_secs_f64(args.deadline)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            transport(
                "arguments",
                "--deadline must be a positive number of seconds",
            )
        })?;
    let secret = match &args.secret_file {
        Some(path) => {
            let mut bytes = std::fs::read(path).map_err(|source| TestkitError::ReadFile {
                path: path.clone(),
                source,
            })?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
            }
            Some(bytes)
        }
        None => None,
    };
    let attestation = cocoon_node::AttestationConfig::client_local();
    let identity = attestation
        .identity(cocoon_attest::ratls::ClaimsFormat::Reference)
        .map_err(|e| transport("attestation", e))?;
    let tls = attestation
        .endpoint(identity)
        .map_err(|e| transport("attestation", e))?;
    let secured = tokio::time::timeout(
        deadline,
        cocoon_net::dial(
            &args.proxy,
            cocoon_protocol::pow::MAX_CLIENT_DIFFICULTY,
            &tls,
            connection_config(&args),
        ),
    )
    .await
    .map_err(|_| transport("connect", "no session within the deadline"))?
    .map_err(|e| transport("connect", e))?;
    let (conn, mut incoming) = (secured.conn, secured.incoming);
    let result = session(&args, &conn, &mut incoming, secret, deadline).await;
    conn.close();
    result
}

async fn query(conn: &Connection, body: Vec<u8>, deadline: Duration) -> Result<Bytes, QueryError> {
    conn.query_with_timeout(Bytes::from(body), deadline)
        .await
        .map_err(|e| match e {
            cocoon_net::NetError::QueryFailed { code, message } => {
                QueryError::Refused(code, message)
            }
            other => QueryError::Transport(other.to_string()),
        })
}

enum QueryError {
    Refused(i32, String),
    Transport(String),
}

async fn session(
    args: &RawClientArgs,
    conn: &Connection,
    incoming: &mut Incoming,
    secret: Option<Vec<u8>>,
    deadline: Duration,
) -> Result<u8, TestkitError> {
    let max = args.protocol_version;
    let hello = client::ConnectToProxy {
        params: client::Params {
            flags: 0b11,
            client_owner_address: args.owner.clone(),
            is_test: Some(true),
            min_proto_version: Some(max.min(1)),
            max_proto_version: Some(max),
        },
        min_config_version: 0,
    };
    let connected = match query(conn, hello.to_boxed_bytes(), deadline).await {
        Ok(answer) => client::ConnectedToProxy::from_boxed_bytes(answer)
            .map_err(|e| transport("client.connectedToProxy", e))?,
        Err(QueryError::Refused(code, error)) => {
            print(&json!({"event": "connect_failed", "code": code, "error": error}));
            return Ok(EXIT_REFUSED);
        }
        Err(QueryError::Transport(e)) => return Err(transport("client.connectToProxy", e)),
    };
    let version = connected.params.proto_version.unwrap_or(0);
    let (asked, nonce) = match &connected.auth {
        client::AnyProxyConnectionAuth::ProxyConnectionAuthShort(s) => (AuthKind::Short, s.nonce),
        client::AnyProxyConnectionAuth::ProxyConnectionAuthLong(l) => (AuthKind::Long, l.nonce),
        _ => {
            return Err(transport(
                "client.connectedToProxy",
                "unknown authorization kind",
            ));
        }
    };
    let auth = args.auth.unwrap_or(asked);
    print(&json!({"event": "connected", "version": version, "auth": auth.name()}));

    let registered = if args.register {
        register(args, &connected.client_sc_address, nonce.cast_unsigned()).await
    } else {
        false
    };
    let authorize_query = match auth {
        AuthKind::Long => client::AuthorizeWithProxyLong {}.to_boxed_bytes(),
        AuthKind::Short => client::AuthorizeWithProxyShort {
            data: Bytes::from(secret.unwrap_or_default()),
        }
        .to_boxed_bytes(),
    };
    let give_up = Instant::now() + deadline;
    loop {
        let answer = match query(conn, authorize_query.clone(), deadline).await {
            Ok(answer) => answer,
            Err(QueryError::Refused(code, error)) => {
                print(&json!({"event": "auth_failed", "code": code, "error": error}));
                return Ok(EXIT_REFUSED);
            }
            Err(QueryError::Transport(e)) => return Err(transport("client.authorizeWithProxy", e)),
        };
        match tl::from_bytes::<client::AnyAuthorizationWithProxy>(answer)
            .map_err(|e| transport("authorization answer", e))?
        {
            client::AnyAuthorizationWithProxy::AuthorizationWithProxySuccess(s) => {
                print(&json!({
                    "event": "authorized",
                    "tokens_used": s.tokens_committed_to_db,
                    "max_tokens": s.max_tokens,
                }));
                break;
            }
            client::AnyAuthorizationWithProxy::AuthorizationWithProxyFailed(f) => {
                // Only a registration this client made may still land: wait for it.
                if registered
                    && f.error_code == client::NOT_YET_REGISTERED_ERROR_CODE
                    && Instant::now() < give_up
                {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    continue;
                }
                print(&json!({"event": "auth_failed", "code": f.error_code, "error": f.error}));
                return Ok(EXIT_REFUSED);
            }
            _ => return Err(transport("authorization answer", "unknown answer")),
        }
    }

    match &args.command {
        RawCommand::Status => {
            let answer = match query(
                conn,
                client::UpdatePaymentStatus {}.to_boxed_bytes(),
                deadline,
            )
            .await
            {
                Ok(answer) => answer,
                Err(QueryError::Refused(code, error)) => {
                    print(&json!({"event": "status_failed", "code": code, "error": error}));
                    return Ok(0);
                }
                Err(QueryError::Transport(e)) => {
                    return Err(transport("client.updatePaymentStatus", e));
                }
            };
            let status = client::PaymentStatus::from_boxed_bytes(answer)
                .map_err(|e| transport("client.paymentStatus", e))?;
            print(&json!({
                "event": "status",
                "tokens_used": status.db_tokens,
                "max_tokens": status.max_tokens,
            }));
        }
        RawCommand::Run(run) => {
            let body = run.body()?;
            for index in 0..run.requests {
                let outcome = request(conn, incoming, run, &body, deadline).await?;
                print(&outcome.event(index));
                if outcome.closed_early {
                    break;
                }
            }
        }
    }
    Ok(0)
}

/// Sends `register` with `nonce` from the wallet to the client contract the proxy named
/// (whoever owns it); reports it; true when its log is on chain.
async fn register(args: &RawClientArgs, client_contract: &str, nonce: u64) -> bool {
    let outcome = async {
        let chain = args.chain.as_deref().ok_or("--register needs --chain")?;
        let key_file = args
            .wallet_key_file
            .as_deref()
            .ok_or("--register needs --wallet-key-file")?;
        let spec: cocoon_chain::operator::ChainSpec = chain
            .parse()
            .map_err(|e: cocoon_chain::ChainError| e.to_string())?;
        let key = cocoon_chain::operator::read_wallet_key(key_file).map_err(|e| e.to_string())?;
        let contract = cocoon_chain::parse_address(client_contract)
            .map_err(|e| format!("the proxy named no client contract: {e}"))?;
        let chain = spec.open(None).await.map_err(|e| e.to_string())?;
        let operator =
            cocoon_chain::operator::Operator::new(chain, key, spec.default_confirm_timeout())
                .map_err(|e| e.to_string())?;
        let report = operator
            .client_register_to(&contract, nonce)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((operator.address(), report.contract))
    }
    .await;
    match outcome {
        Ok((wallet, contract)) => {
            print(&json!({
                "event": "registered",
                "wallet": wallet.to_raw(),
                "contract": contract,
                "nonce": nonce.to_string(),
            }));
            true
        }
        Err(error) => {
            print(&json!({"event": "register_failed", "error": error}));
            false
        }
    }
}

/// Runs one request to its end, or to the drop or cancel it was told to make.
async fn request(
    conn: &Connection,
    incoming: &mut Incoming,
    run: &RunArgs,
    body: &[u8],
    deadline: Duration,
) -> Result<RequestOutcome, TestkitError> {
    let request_id = Int256(rand::random());
    let message = client::RunQueryEx {
        model_name: run.model.clone(),
        query: Bytes::from(
            http::Request::json_post("/v1/chat/completions", Bytes::copy_from_slice(body))
                .to_boxed_bytes(),
        ),
        max_coefficient: run.max_coefficient,
        max_tokens: run.max_tokens_for(body),
        timeout: run.timeout,
        request_id,
        min_config_version: 0,
        flags: 0,
        enable_debug: None,
        public_key: None,
    };
    conn.send_packet(Bytes::from(message.to_boxed_bytes()))
        .await
        .map_err(|e| transport("client.runQueryEx", e))?;
    let mut outcome = RequestOutcome::default();
    let mut until = Instant::now() + deadline;
    let mut cancelled = false;
    while !outcome.finished {
        let item = match tokio::time::timeout_at(until, incoming.recv()).await {
            Err(_) if cancelled => break,
            Err(_) => {
                return Err(transport(
                    "answer",
                    "no end of the request within the deadline",
                ));
            }
            Ok(None) => {
                return Err(transport(
                    "answer",
                    conn.close_reason()
                        .unwrap_or_else(|| "connection closed".into()),
                ));
            }
            Ok(Some(item)) => item,
        };
        let data = match item {
            Inbound::Packet(data) => data,
            Inbound::Query(q) => {
                let _ = q.fail(400, "clients answer no queries").await;
                continue;
            }
        };
        let Ok(message) = tl::from_bytes::<Message>(data) else {
            continue;
        };
        if request_of(&message) != Some(request_id) {
            continue;
        }
        outcome.take(message);
        if outcome.finished {
            break;
        }
        if run.close_after_parts == Some(outcome.messages) {
            outcome.closed_early = true;
            conn.close();
            break;
        }
        if run.stall_after_parts == Some(outcome.messages) {
            // The session's receive queue is tiny in this mode: not reading it soon stops the
            // socket being read, so the proxy's writes back up.
            outcome.stalled = true;
            tokio::time::sleep(Duration::try_from_secs_f64(run.stall_secs).unwrap_or_default())
                .await;
            break;
        }
        if !cancelled && run.cancel_after_parts == Some(outcome.messages) {
            cancelled = true;
            conn.send_packet(Bytes::from(
                ext::CancelQuery { request_id }.to_boxed_bytes(),
            ))
            .await
            .map_err(|e| transport("ext.cancelQuery", e))?;
            until = Instant::now() + CANCEL_READ.min(deadline);
        }
    }
    Ok(outcome)
}

/// The session's settings: a receive queue of two packets for a stalling reader, so that its
/// silence reaches the socket.
fn connection_config(args: &RawClientArgs) -> ConnectionConfig {
    let mut config = ConnectionConfig::dialer();
    if let RawCommand::Run(run) = &args.command
        && run.stall_after_parts.is_some()
    {
        config.recv_queue = 2;
    }
    config
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn parse(args: &[&str]) -> Result<RawClientArgs, clap::Error> {
        RawClientArgs::try_parse_from(
            std::iter::once("cocoon-raw-client").chain(args.iter().copied()),
        )
    }

    #[test]
    fn arguments_parse_as_documented() {
        let a = parse(&[
            "--proxy",
            "127.0.0.1:1",
            "--owner",
            " 0:AB",
            "--auth",
            "long",
            "status",
        ])
        .unwrap();
        assert_eq!(a.owner, " 0:AB");
        assert_eq!(a.auth, Some(AuthKind::Long));
        assert_eq!(a.protocol_version, version::MAX_VERSION);
        assert_eq!(a.deadline, 60.0);
        assert!(matches!(a.command, RawCommand::Status));

        let a = parse(&[
            "--proxy",
            "p:1",
            "--owner",
            "o",
            "--protocol-version",
            "2",
            "run",
            "--model",
            "m",
            "--body",
            "{\"max_tokens\": 7}",
            "--max-tokens",
            "-5",
            "--requests",
            "3",
            "--close-after-parts",
            "2",
            "--max-coefficient",
            "1500",
        ])
        .unwrap();
        assert_eq!(a.protocol_version, 2);
        let RawCommand::Run(run) = a.command else {
            panic!("run expected")
        };
        assert_eq!(run.max_tokens, Some(-5));
        assert_eq!(run.max_tokens_for(b"{\"max_tokens\": 7}"), -5);
        assert_eq!((run.requests, run.close_after_parts), (3, Some(2)));
        assert_eq!(run.max_coefficient, 1500);

        // --register needs a chain and a wallet; --close and --cancel exclude each other
        assert!(parse(&["--proxy", "p:1", "--owner", "o", "--register", "status"]).is_err());
        assert!(
            parse(&[
                "--proxy",
                "p:1",
                "--owner",
                "o",
                "run",
                "--model",
                "m",
                "--body",
                "{}",
                "--close-after-parts",
                "1",
                "--cancel-after-parts",
                "1",
            ])
            .is_err()
        );
        assert!(parse(&["--proxy", "p:1", "--owner", "o", "run", "--model", "m"]).is_err());
    }

    #[test]
    fn max_tokens_default_from_the_body() {
        let run = |body: &str| {
            let a = parse(&[
                "--proxy", "p:1", "--owner", "o", "run", "--model", "m", "--body", body,
            ])
            .unwrap();
            let RawCommand::Run(run) = a.command else {
                panic!("run expected")
            };
            run.max_tokens_for(body.as_bytes())
        };
        assert_eq!(run("{\"max_tokens\": 12}"), 12);
        assert_eq!(run("{\"max_completion_tokens\": 0}"), 0);
        assert_eq!(run("{\"max_tokens\": -3000000000}"), i32::MIN);
        assert_eq!(run("{}"), 1024);
        assert_eq!(run("not json"), 1024);
    }

    #[test]
    fn request_events_report_what_arrived() {
        let id = Int256([1; 32]);
        let mut outcome = RequestOutcome::default();
        assert!(
            !outcome.take(Message::ClientQueryAnswerEx(client::QueryAnswerEx {
                request_id: id,
                answer: Bytes::from_static(b"head"),
                flags: 0,
                final_info: None,
            }))
        );
        let final_info = client::QueryFinalInfo {
            flags: 0,
            tokens_used: cocoon_protocol::messages::TokensUsed {
                prompt_tokens_used: 5,
                cached_tokens_used: 0,
                completion_tokens_used: 7,
                reasoning_tokens_used: 0,
                total_tokens_used: 12,
            },
            worker_debug: None,
            proxy_debug: None,
            proxy_start_time: None,
            proxy_end_time: None,
            worker_start_time: None,
            worker_end_time: None,
        };
        assert!(outcome.take(Message::ClientQueryAnswerPartEx(
            client::QueryAnswerPartEx {
                request_id: id,
                answer: Bytes::from_static(b"tail"),
                flags: 1,
                final_info: Some(final_info),
            }
        )));
        let event = outcome.event(4);
        assert_eq!(
            event,
            json!({
                "event": "request", "index": 4, "messages": 2, "answer_bytes": 8, "final": true,
                "error_code": null, "error": null,
                "usage": {"prompt": 5, "cached": 0, "completion": 7, "reasoning": 0, "total": 12},
                "closed_early": false, "stalled": false,
            })
        );
        let mut refused = RequestOutcome::default();
        assert!(refused.take(Message::ClientQueryAnswerErrorEx(
            client::QueryAnswerErrorEx {
                request_id: id,
                error_code: 402,
                error: "no money".into(),
                flags: 0,
                final_info: None,
            }
        )));
        let event = refused.event(0);
        assert_eq!(event["error_code"], 402);
        assert_eq!(event["usage"], Value::Null);
        assert_eq!(event["final"], true);
    }
}
