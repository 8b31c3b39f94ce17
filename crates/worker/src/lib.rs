//! The worker role: serves inference for proxies.
