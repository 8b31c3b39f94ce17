//! The one error type of the crate: what can go wrong starting a tool or configuring a run.
//!
//! Failures of single requests during a load run are not errors of the run; they are counted in
//! the report (see [`crate::loadgen::FailureKind`]).

use std::net::SocketAddr;
use std::path::PathBuf;

/// Errors raised by the fake upstream and the load generator.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// The recording relay could not set up its RA-TLS identity.
    #[error("recording relay: {0}")]
    Relay(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// A load-generator URL is not a plain `http://host[:port]/path` URL.
    #[error("unusable URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The host of a URL did not resolve to any address.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The `host:port` looked up.
        host: String,
        /// The resolver's answer.
        reason: String,
    },
    /// A header given on the command line is not `Name: value`, or its name or value is invalid.
    #[error("invalid header {header:?}: expected `Name: value` with a valid name and value")]
    InvalidHeader {
        /// The header text as given.
        header: String,
    },
    /// A duration is not a number with an optional `ms`, `s`, `m` or `h` suffix.
    #[error("invalid duration {text:?}: expected e.g. 500ms, 5s, 2m, 1h or plain seconds")]
    InvalidDuration {
        /// The text as given.
        text: String,
    },
    /// A load run was configured with nothing to do or no one to do it.
    #[error("invalid load run: {reason}")]
    InvalidLoad {
        /// Which setting is out of range.
        reason: &'static str,
    },
    /// A fake upstream's default answer shape is out of range.
    #[error("invalid answer shape: {reason}")]
    InvalidShape {
        /// Which setting is out of range and what it must be.
        reason: String,
    },
    /// A file named on the command line could not be read.
    #[error("cannot read {path}: {source}")]
    ReadFile {
        /// The path given.
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The raw-protocol client could not run its scenario: the proxy unreachable, the
    /// transport broken, an answer that does not decode, a step past its deadline.
    #[error("{step}: {detail}")]
    RawClient {
        /// The step that failed (`connect`, `client.connectToProxy`, ...).
        step: &'static str,
        /// What went wrong.
        detail: String,
    },
    /// An answer could not be rendered as JSON.
    #[error("cannot render an answer as JSON: {0}")]
    Render(#[from] serde_json::Error),
    /// The fake upstream aborted an answer on purpose (`fail-after`), simulating a crashed engine.
    #[error("answer aborted on purpose after {chunks} chunks")]
    InjectedFailure {
        /// Content chunks sent before the abort.
        chunks: u32,
    },
    /// A rogue worker's setting is out of range.
    #[error("invalid rogue worker setting: {reason}")]
    InvalidRogue {
        /// Which setting and what it must be.
        reason: String,
    },
    /// A node's RA-TLS identity could not be made.
    #[error("cannot make an RA-TLS identity: {0}")]
    Identity(#[source] cocoon_node::NodeError),
    /// A receipt could not be signed.
    #[error("cannot sign a receipt: {0}")]
    Receipt(#[source] cocoon_net::NetError),
    /// The connection to a proxy failed at one step.
    #[error("{what}: {source}")]
    Proxy {
        /// The step (`connect` or the query sent).
        what: &'static str,
        /// The transport's reason.
        source: cocoon_net::NetError,
    },
    /// A proxy's answer could not be decoded.
    #[error("undecodable {what}: {source}")]
    ProxyAnswer {
        /// The message expected.
        what: &'static str,
        /// The decoder's reason.
        source: cocoon_protocol::Error,
    },
    /// A proxy refused a handshake step.
    #[error("the proxy refused {what}: error {code}")]
    ProxyRefused {
        /// The step.
        what: &'static str,
        /// The proxy's error code.
        code: i32,
    },
    /// A proxy session ended.
    #[error("connection to the proxy lost: {reason}")]
    ProxyClosed {
        /// The transport's reason.
        reason: String,
    },
}
