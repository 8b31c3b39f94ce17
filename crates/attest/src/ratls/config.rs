//! rustls configurations for RA-TLS: TLS 1.3 only, AES-GCM suites only, ring provider, no
//! session tickets or resumption, mutual authentication with our verifiers, and time from the
//! injected clock.

use std::sync::Arc;

use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite::{TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384};
use rustls::server::NoServerSessionStorage;
use rustls::{ClientConfig, ServerConfig};

use crate::clock::{Clock, RustlsTime};
use crate::error::AttestError;
use crate::ratls::identity::RaTlsIdentity;
use crate::ratls::verifier::RaTlsVerifier;

/// The ring provider restricted to TLS_AES_256_GCM_SHA384 and TLS_AES_128_GCM_SHA256.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![TLS13_AES_256_GCM_SHA384, TLS13_AES_128_GCM_SHA256];
    Arc::new(provider)
}

/// Server side: presents `identity`, requires and verifies a client RA-TLS certificate with
/// `verifier`.
pub fn server_config(
    identity: Arc<RaTlsIdentity>,
    verifier: Arc<RaTlsVerifier>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<ServerConfig>, AttestError> {
    let mut config =
        ServerConfig::builder_with_details(crypto_provider(), Arc::new(RustlsTime(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| AttestError::TlsConfig(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(identity);
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(Arc::new(config))
}

/// Client side: verifies the server with `verifier`, presents `identity`.
pub fn client_config(
    identity: Arc<RaTlsIdentity>,
    verifier: Arc<RaTlsVerifier>,
    clock: Arc<dyn Clock>,
) -> Result<Arc<ClientConfig>, AttestError> {
    let mut config =
        ClientConfig::builder_with_details(crypto_provider(), Arc::new(RustlsTime(clock)))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| AttestError::TlsConfig(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(identity);
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(Arc::new(config))
}
