//! RA-TLS on a stream that has passed the proof-of-work gate: every hop of the network runs
//! mutually authenticated TLS 1.3 in which each side's certificate carries TEE evidence, and
//! the session layer only ever sees a stream whose peer was verified against policy.
//!
//! [`LocalIdentity`] is this node's certificate (made by a [`CertificateIssuer`] and replaced
//! before it expires); a [`TlsEndpoint`] pairs it with the policy applied to peers on one
//! port or one outgoing link. A handshake that fails verification ends with
//! [`NetError::PeerRefused`] naming the reason, and no byte reaches role code.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use cocoon_attest::ratls::{CertificateIssuer, IssuedCertificate, RaTlsIdentity};
use cocoon_attest::{
    AttestError, Clock, EvidenceKind, EvidenceVerifier, ImageHash, Policy, RaTlsVerifier, Receipt,
    ReceiptClaims, VerifiedPeer,
};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::NetError;

/// A TLS stream of either direction; both implement `AsyncRead + AsyncWrite`, so a
/// [`Connection`](crate::Connection) runs over either.
pub type TlsStream<S> = tokio_rustls::TlsStream<S>;

/// How long a TLS handshake (evidence verification included) may take by default.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);

/// How often [`LocalIdentity::keep_fresh`] checks whether a new certificate is due.
pub const REFRESH_CHECK_PERIOD: Duration = Duration::from_secs(60);

/// This node's RA-TLS certificate and key, shared by all its endpoints.
#[derive(Debug)]
pub struct LocalIdentity {
    issuer: CertificateIssuer,
    identity: Arc<RaTlsIdentity>,
    clock: Arc<dyn Clock>,
    image_hash: Option<ImageHash>,
    /// Counts certificate renewals, for those who must pass the new certificate on.
    renewals: tokio::sync::watch::Sender<u64>,
    /// How often [`LocalIdentity::keep_fresh`] checks whether a renewal is due.
    check_period: Duration,
}

impl LocalIdentity {
    /// Issues the first certificate at the clock's current time.
    pub fn new(issuer: CertificateIssuer, clock: Arc<dyn Clock>) -> Result<Self, NetError> {
        let identity = issuer.identity(clock.now_unix())?;
        let kind = issuer.evidence_kind();
        if kind == EvidenceKind::Simulated {
            tracing::warn!(
                "this node presents SIMULATED attestation: it runs in no TEE, and production peers refuse it"
            );
        }
        let image_hash = own_image_hash(&identity.issued(), clock.now_unix());
        Ok(Self {
            issuer,
            identity,
            clock,
            image_hash,
            renewals: tokio::sync::watch::Sender::new(0),
            check_period: REFRESH_CHECK_PERIOD,
        })
    }

    /// Checks for a due renewal every `period` instead of [`REFRESH_CHECK_PERIOD`].
    #[must_use]
    pub fn with_check_period(mut self, period: Duration) -> Self {
        self.check_period = period.max(Duration::from_millis(10));
        self
    }

    /// A receiver that sees each certificate renewal (the value counts them): a worker passes
    /// the new certificate, with its sealing key, to its proxies before the old one expires.
    pub fn renewals(&self) -> tokio::sync::watch::Receiver<u64> {
        self.renewals.subscribe()
    }

    /// The image hash our own evidence measures (none without evidence, or when our TDX
    /// quote carries no collateral to check it with).
    pub fn image_hash(&self) -> Option<ImageHash> {
        self.image_hash
    }

    /// Signs a receipt for a request this node served, with its attested TLS key; the receipt
    /// carries the current certificate and this node's image hash.
    pub fn sign_receipt(&self, mut claims: ReceiptClaims) -> Result<Receipt, NetError> {
        let image = self.image_hash.ok_or_else(|| {
            NetError::Config("this node has no verifiable evidence to sign receipts with".into())
        })?;
        claims.worker_image_hash = *image.as_bytes();
        Ok(Receipt::sign(
            claims,
            self.issuer.key(),
            self.identity.issued().der.to_vec(),
        )?)
    }

    /// The kind of evidence this node presents.
    pub fn evidence_kind(&self) -> EvidenceKind {
        self.issuer.evidence_kind()
    }

    /// Whether this node presents SIMULATED evidence (and must say so to its users).
    pub fn is_simulated(&self) -> bool {
        self.evidence_kind() == EvidenceKind::Simulated
    }

    /// The certificate presented now.
    pub fn certificate(&self) -> IssuedCertificate {
        self.identity.issued()
    }

    /// The Ed25519 TLS public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.issuer.key().public_key()
    }

    /// The clock certificates and peers are judged by.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Names other model weights in this node's claims: issues a new certificate at once
    /// (counted as a renewal, so a worker announces it to its proxies). A node with
    /// reference-format claims carries no model and is left as it is.
    pub fn reissue_with_model_hash(
        &self,
        model_hash: Option<cocoon_attest::digest::Digest32>,
    ) -> Result<(), NetError> {
        let previous = self
            .identity
            .issued()
            .claims
            .extended
            .and_then(|e| e.model_hash);
        if !self.issuer.set_model_hash(model_hash) {
            return Ok(());
        }
        if let Err(e) = self.issuer.reissue(&self.identity, self.clock.now_unix()) {
            // Later renewals must keep naming the weights still served.
            self.issuer.set_model_hash(previous);
            return Err(e.into());
        }
        tracing::info!(
            model_hash = ?model_hash.map(|h| hex::encode(h.as_bytes())),
            "RA-TLS certificate reissued for other model weights"
        );
        self.renewals.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Replaces the certificate if its refresh time has come; returns whether it did. New
    /// handshakes use the new certificate; open connections are unaffected.
    pub fn refresh_if_due(&self) -> Result<bool, NetError> {
        let refreshed = self
            .issuer
            .refresh_if_due(&self.identity, self.clock.now_unix())?;
        if refreshed {
            let issued = self.identity.issued();
            tracing::info!(not_after = issued.not_after, "RA-TLS certificate refreshed");
            self.renewals.send_modify(|n| *n += 1);
        }
        Ok(refreshed)
    }

    /// Refreshes the certificate before it expires until `stop` resolves. A failed refresh is
    /// logged and retried at the next check; the old certificate stays valid meanwhile.
    pub async fn keep_fresh(self: Arc<Self>, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.check_period) => {}
                () = &mut stop => return,
            }
            if let Err(e) = self.refresh_if_due() {
                tracing::error!("cannot refresh the RA-TLS certificate: {e}");
            }
        }
    }

    fn rustls_identity(&self) -> Arc<RaTlsIdentity> {
        self.identity.clone()
    }
}

/// One side of RA-TLS with a given peer policy: the proxy's worker port, its client port, a
/// worker's link to its proxies, a client's link to its proxy.
#[derive(Clone)]
pub struct TlsEndpoint {
    identity: Arc<LocalIdentity>,
    verifier: Arc<RaTlsVerifier>,
    connector: TlsConnector,
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsEndpoint")
            .field("identity", &self.identity)
            .field("policy", &self.verifier.policy())
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsEndpoint {
    /// An endpoint presenting `identity` and accepting peers that satisfy `policy`, with
    /// evidence checked (and cached) by `evidence`.
    pub fn new(
        identity: Arc<LocalIdentity>,
        policy: Policy,
        evidence: Arc<EvidenceVerifier>,
    ) -> Result<Self, NetError> {
        let verifier = Arc::new(RaTlsVerifier::new(policy, evidence));
        let clock = identity.clock().clone();
        let client = cocoon_attest::ratls::client_config(
            identity.rustls_identity(),
            verifier.clone(),
            clock.clone(),
        )?;
        let server = cocoon_attest::ratls::server_config(
            identity.rustls_identity(),
            verifier.clone(),
            clock,
        )?;
        Ok(Self {
            identity,
            verifier,
            connector: TlsConnector::from(client),
            acceptor: TlsAcceptor::from(server),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Sets the handshake time limit.
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// This node's identity.
    pub fn identity(&self) -> &Arc<LocalIdentity> {
        &self.identity
    }

    /// The policy peers must satisfy now.
    pub fn policy(&self) -> Arc<Policy> {
        self.verifier.policy()
    }

    /// Replaces the policy peers must satisfy (for example when the root registry's
    /// allow-lists change): every clone of this endpoint applies it to handshakes that start
    /// from now on.
    pub fn set_policy(&self, policy: Policy) {
        self.verifier.set_policy(policy);
    }

    /// The evidence verifier (and its cache statistics).
    pub fn evidence_verifier(&self) -> &Arc<EvidenceVerifier> {
        self.verifier.evidence_verifier()
    }

    /// Runs the client side of the handshake on `stream` and returns the verified peer.
    pub async fn dial<S>(&self, stream: S) -> Result<(TlsStream<S>, VerifiedPeer), NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        // The peer's identity is its attestation, not a host name; the name only fills SNI.
        let name = ServerName::try_from("cocoon").map_err(|e| NetError::Tls(e.to_string()))?;
        let tls =
            tokio::time::timeout(self.handshake_timeout, self.connector.connect(name, stream))
                .await
                .map_err(|_| self.timed_out())?
                .map_err(handshake_error)?;
        let peer = self.peer_of(tls.get_ref().1)?;
        Ok((TlsStream::Client(tls), peer))
    }

    /// Runs the server side of the handshake on `stream` and returns the verified peer.
    pub async fn accept<S>(&self, stream: S) -> Result<(TlsStream<S>, VerifiedPeer), NetError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let tls = tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(stream))
            .await
            .map_err(|_| self.timed_out())?
            .map_err(handshake_error)?;
        let peer = self.peer_of(tls.get_ref().1)?;
        Ok((TlsStream::Server(tls), peer))
    }

    fn peer_of(&self, state: &rustls::CommonState) -> Result<VerifiedPeer, NetError> {
        let certificates = state
            .peer_certificates()
            .ok_or_else(|| NetError::PeerRefused(AttestError::NoPeerCertificate.to_string()))?;
        // The handshake already verified the certificate; this second pass (an evidence cache
        // hit) turns it into a typed description of the peer.
        self.verifier
            .verify_peer(certificates, self.identity.clock().now_unix())
            .map_err(|e| NetError::PeerRefused(e.to_string()))
    }

    fn timed_out(&self) -> NetError {
        NetError::Tls(format!(
            "TLS handshake not finished within {:?}",
            self.handshake_timeout
        ))
    }
}

/// Turns a failed handshake into the most precise error: our refusal of the peer (with the
/// attestation reason), the peer's refusal of us (the alert it sent), or a transport failure.
fn own_image_hash(issued: &IssuedCertificate, now: u64) -> Option<ImageHash> {
    let cert = cocoon_attest::ratls::parse_certificate(&issued.der, now).ok()?;
    let evidence = cert.evidence?;
    EvidenceVerifier::default()
        .verify(&evidence, now)
        .ok()
        .map(|v| v.measurements.image_hash())
}

fn handshake_error(err: std::io::Error) -> NetError {
    if let Some(reason) = AttestError::find_in(&err) {
        return NetError::PeerRefused(reason.to_string());
    }
    if let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return match tls {
            rustls::Error::AlertReceived(alert) => {
                NetError::Tls(format!("the peer refused the handshake (alert {alert:?})"))
            }
            other => NetError::Tls(other.to_string()),
        };
    }
    match err.kind() {
        std::io::ErrorKind::UnexpectedEof => NetError::Tls(
            "the peer closed the connection during the TLS handshake (it may have refused our certificate)"
                .into(),
        ),
        _ => NetError::Io(err),
    }
}
