//! TEE evidence, attestation policy and RA-TLS certificates.
