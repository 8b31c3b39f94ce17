//! The COCOON wire protocol, sans-IO: TL codec, every message type, the frame codec, the
//! proof-of-work gate and version negotiation.
//!
//! Nothing here touches sockets or clocks (the `cocoon-net` crate does the I/O), so every rule of
//! the protocol is testable with plain bytes. We speak the reference protocol byte for byte and
//! extend it from version 3.
//!
//! Layers, outside in: [`pow`] runs before TLS; [`frame`] splits the TLS stream into
//! `length | seqno | body` frames; each body is a boxed [`messages::tcp`] packet whose payload is
//! another boxed [`messages::Message`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

mod error;
pub mod frame;
pub mod http;
pub mod messages;
pub mod pow;
pub mod tl;
pub mod version;

pub use error::Error;
pub use frame::{Frame, FrameDecoder, FrameEncoder};
pub use messages::Message;
pub use tl::{Int256, TlConstructor, TlRead, TlWrite};
