//! A recording relay for tests: it sits between a node and a proxy, terminates RA-TLS on both
//! sides with a SIMULATED identity of its own, and records every application byte in each
//! direction, decoded into frames.
//!
//! It exists to look at what crosses a hop in the clear: which messages a node sends in what
//! order (to compare with the reference's transcripts), and what a proxy would see of prompts
//! and answers. Only peers that accept simulated evidence talk through it; under a production
//! policy both sides refuse it, which is the point of attestation.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use cocoon_attest::Policy;
use cocoon_attest::ratls::ClaimsFormat;
use cocoon_net::TlsEndpoint;
use cocoon_node::AttestationConfig;
use cocoon_protocol::FrameDecoder;
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

/// A running relay; it accepts any number of connections until dropped.
#[derive(Debug)]
pub struct RecordingRelay {
    addr: String,
    recording: Arc<Mutex<Recording>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RecordingRelay {
    /// Starts a relay on a free loopback port forwarding to `target` (a proxy port).
    pub async fn start(target: String) -> Result<Self, TestkitError> {
        let listener =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| TestkitError::Bind {
                    addr: ([127, 0, 0, 1], 0).into(),
                    source,
                })?;
        let addr = listener
            .local_addr()
            .map_err(|source| TestkitError::Bind {
                addr: ([127, 0, 0, 1], 0).into(),
                source,
            })?
            .to_string();
        let config = AttestationConfig::local_simulated();
        let identity = config
            .identity(ClaimsFormat::Reference)
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        // Towards the node: accept anything (clients present no evidence); towards the proxy:
        // the local policy.
        let inward = config
            .endpoint_with_policy(identity.clone(), Policy::any())
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        let outward = config
            .endpoint(identity)
            .map_err(|e| TestkitError::Relay(e.to_string()))?;
        let recording = Arc::new(Mutex::new(Recording::default()));
        let shared = recording.clone();
        let task = tokio::spawn(async move {
            while let Ok((node, _)) = listener.accept().await {
                let (inward, outward, target, shared) = (
                    inward.clone(),
                    outward.clone(),
                    target.clone(),
                    shared.clone(),
                );
                tokio::spawn(async move {
                    if let Err(e) = relay_one(node, &inward, &outward, &target, shared).await {
                        tracing::debug!("relay connection ended: {e}");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            recording,
            task,
        })
    }

    /// Where nodes connect instead of the proxy.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What crossed so far.
    pub fn recording(&self) -> Recording {
        self.recording
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
    recording: Arc<Mutex<Recording>>,
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
    let up = pump(node_rd, proxy_wr, recording.clone(), true);
    let down = pump(proxy_rd, node_wr, recording, false);
    let _ = tokio::join!(up, down);
    Ok(())
}

async fn pump<R, W>(mut rd: R, mut wr: W, recording: Arc<Mutex<Recording>>, to_proxy: bool)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut decoder = FrameDecoder::default();
    let mut pending = BytesMut::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if wr.write_all(&buf[..n]).await.is_err() {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        while let Ok(Some(frame)) = decoder.decode(&mut pending) {
            let mut r = recording
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let side = if to_proxy {
                &mut r.to_proxy
            } else {
                &mut r.from_proxy
            };
            side.push(frame.body.to_vec());
        }
    }
    let _ = wr.shutdown().await;
}
