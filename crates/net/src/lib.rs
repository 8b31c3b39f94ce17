//! Tokio transport for the COCOON protocol.
