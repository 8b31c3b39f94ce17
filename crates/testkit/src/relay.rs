//! Relays for tests: one sits between a node and a proxy, terminates RA-TLS on both sides with a
//! SIMULATED identity of its own, and hands every frame crossing it, in each direction, to a
//! [`FrameHook`] that answers the frame to forward.
//!
//! [`RecordingRelay`] records the frames: it exists to look at what crosses a hop in the clear,
//! which messages a node sends in what order (to compare with the reference's transcripts), and
//! what a proxy would see of prompts and answers. `crate::tamper` rewrites them, to stand in
//! for a proxy whose software misbehaves. Only peers that accept simulated evidence talk
//! through a relay; under a production policy both sides refuse it, which is the point of
//! attestation.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cocoon_attest::Policy;
use cocoon_attest::ratls::ClaimsFormat;
use cocoon_net::TlsEndpoint;
use cocoon_node::AttestationConfig;
use cocoon_protocol::{FrameDecoder, FrameEncoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::error::TestkitError;

/// Everything that crossed the relay, in the clear.
#[derive(Debug, Default, Clone)]
pub struct Recording {
    /// Frame bodies the node sent towards the proxy, in order.
    pub to_proxy: Vec<Vec<u8>>,
    /// Frame bodies the proxy sent towards the node, in order.
    pub from_proxy: Vec<Vec<u8>>,
}

impl Recording {
    /// All application bytes in both directions, concatenated (for searching).
    pub fn all_bytes(&self) -> Vec<u8> {
        self.to_proxy
            .iter()
            .chain(self.from_proxy.iter())
            .flatten()
            .copied()
            .collect()
    }
}

/// Which way a frame crosses a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Towards {
    /// From the node (client or worker) to the proxy.
    Proxy,
    /// From the proxy to the node.
    Node,
}

/// What a relay does with each frame it passes.
pub trait FrameHook: Send + Sync + 'static {
    /// Answers the frame body to forward in place of `body`, which goes `towards` (`None`:
    /// the frame is dropped; the frames after it are numbered on).
    fn frame(&self, towards: Towards, body: Bytes) -> Option<Bytes>;
}

/// A running relay; it accepts any number of connections until dropped.
#[derive(Debug)]
pub struct Relay {
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Starts a relay on `listen` (port 0: a free one) forwarding to `target` (a proxy port),
    /// every frame passed through `hook`.
    ///
    /// # Errors
    /// [`TestkitError::Bind`] when `listen` cannot be bound; [`TestkitError::Relay`] when the
    /// simulated identity cannot be made.
    pub async fn start(
        listen: SocketAddr,
        target: String,
        hook: Arc<dyn FrameHook>,
    ) -> Result<Self, TestkitError> {
        Self::start_with_claims(listen, target, hook, ClaimsFormat::Reference).await
    }

    /// [`start`](Self::start) with certificates carrying `format`'s claims: a relay in front
    /// of workers names their model weights (`ClaimsFormat::V1`'s `model_hash`), as a proxy
    /// following a root that lists models asks of every worker.
    ///
    /// # Errors
    /// As [`start`](Self::start).
    pub async fn start_with_claims(
        listen: SocketAddr,
        target: String,
        hook: Arc<dyn FrameHook>,
        format: ClaimsFormat,
    ) -> Result<Self, TestkitError> {
        let bind = |source| TestkitError::Bind {
            addr: listen,
            source,
        };
        let listener = TcpListener::bind(listen).await.map_err(bind)?;
        let addr = listener.local_addr().map_err(bind)?.to_string();
        let config = AttestationConfig::local_simulated();
        let identity = config
            .identity(format)
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        // Towards the node: accept anything (clients present no evidence); towards the proxy:
        // the local policy.
        let inward = config
            .endpoint_with_policy(identity.clone(), Policy::any())
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        let outward = config
            .endpoint(identity)
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        let task = tokio::spawn(async move {
            while let Ok((node, _)) = listener.accept().await {
                let (inward, outward, target, hook) = (
                    inward.clone(),
                    outward.clone(),
                    target.clone(),
                    hook.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = relay_one(node, &inward, &outward, &target, hook).await {
                        tracing::debug!("relay connection ended: {e}");
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }

    /// Where nodes connect instead of the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// A relay that records every frame and changes none.
#[derive(Debug)]
pub struct RecordingRelay {
    relay: Relay,
    recording: Arc<Recorder>,
}

/// The recording, as a hook.
#[derive(Debug, Default)]
struct Recorder(Mutex<Recording>);

impl FrameHook for Recorder {
    fn frame(&self, towards: Towards, body: Bytes) -> Option<Bytes> {
        let mut r = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match towards {
            Towards::Proxy => r.to_proxy.push(body.to_vec()),
            Towards::Node => r.from_proxy.push(body.to_vec()),
        }
        Some(body)
    }
}

impl RecordingRelay {
    /// Starts a relay on a free loopback port forwarding to `target` (a proxy port).
    ///
    /// # Errors
    /// As [`Relay::start`].
    pub async fn start(target: String) -> Result<Self, TestkitError> {
        let recording = Arc::new(Recorder::default());
        let relay = Relay::start(([127, 0, 0, 1], 0).into(), target, recording.clone()).await?;
        Ok(Self { relay, recording })
    }

    /// Where nodes connect instead of the proxy.
    pub fn addr(&self) -> &str {
        self.relay.addr()
    }

    /// What crossed so far.
    pub fn recording(&self) -> Recording {
        self.recording
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Why one relayed connection ended before its pumps started (logged only).
#[derive(Debug, thiserror::Error)]
enum RelayEnd {
    /// Proof of work or RA-TLS failed on one side.
    #[error(transparent)]
    Net(#[from] cocoon_net::NetError),
    /// The proxy could not be reached.
    #[error("cannot connect to the proxy: {0}")]
    Connect(std::io::Error),
}

async fn relay_one(
    mut node: TcpStream,
    inward: &TlsEndpoint,
    outward: &TlsEndpoint,
    target: &str,
    hook: Arc<dyn FrameHook>,
) -> Result<(), RelayEnd> {
    let _ = node.set_nodelay(true);
    cocoon_net::pow::challenge(&mut node, 0, Duration::from_secs(10)).await?;
    let (node_tls, _) = inward.accept(node).await?;
    let mut proxy = TcpStream::connect(target)
        .await
        .map_err(RelayEnd::Connect)?;
    let _ = proxy.set_nodelay(true);
    cocoon_net::pow::solve(&mut proxy, 28, Duration::from_secs(10)).await?;
    let (proxy_tls, _) = outward.dial(proxy).await?;
    let (node_rd, node_wr) = tokio::io::split(node_tls);
    let (proxy_rd, proxy_wr) = tokio::io::split(proxy_tls);
    let up = pump(node_rd, proxy_wr, hook.clone(), Towards::Proxy);
    let down = pump(proxy_rd, node_wr, hook, Towards::Node);
    let _ = tokio::join!(up, down);
    Ok(())
}

/// Moves frames from `rd` to `wr`, each through `hook`; stops at the end of either side or at
/// bytes that are not frames.
async fn pump<R, W>(mut rd: R, mut wr: W, hook: Arc<dyn FrameHook>, towards: Towards)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut decoder = FrameDecoder::default();
    let mut encoder = FrameEncoder::new();
    let mut pending = BytesMut::new();
    let mut out = BytesMut::new();
    let mut buf = vec![0u8; 64 * 1024];
    'read: loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        loop {
            match decoder.decode(&mut pending) {
                Ok(Some(frame)) => {
                    let Some(body) = hook.frame(towards, frame.body) else {
                        continue;
                    };
                    if encoder.encode(&body, &mut out).is_err() {
                        break 'read;
                    }
                }
                Ok(None) => break,
                Err(_) => break 'read,
            }
        }
        if !out.is_empty() && wr.write_all(&out.split()).await.is_err() {
            break;
        }
    }
    let _ = wr.shutdown().await;
}
