//! The client role: OpenAI-compatible API in front of a COCOON proxy.
