//! The COCOON wire protocol, sans-IO: TL codec, every message type, the frame codec, the
//! proof-of-work gate and version negotiation.
//!
//! We speak the reference protocol (Telegram's COCOON) byte for byte, so that our nodes and the
//! reference's can talk to each other, and extend it from protocol version 3.
//!
//! # Layers
//!
//! A connection is a stack; each layer has a module, outside in:
//!
//! 1. [`pow`]: before TLS, the accepting side sends a [`pow::PowChallenge`] and the dialer answers
//!    with a [`pow::PowAnswer`] whose hash has the demanded number of leading zero bits.
//! 2. TLS 1.3 with attested certificates (not here: `cocoon-net` and `cocoon-attest`).
//! 3. [`frame`]: the TLS byte stream is cut into `u32 length | i32 seqno | body` frames.
//!    [`FrameDecoder`] checks the length bounds and that seqnos count up from 0;
//!    [`FrameEncoder`] numbers outgoing frames.
//! 4. Each frame body is one boxed [`messages::tcp::AnyPacket`]: connect / connected,
//!    ping / pong, a one-way `tcp.packet`, or a `tcp.query` answered by `tcp.queryAnswer` or
//!    `tcp.queryError`.
//! 5. A packet's `data` is one boxed [`Message`] (for example `client.runQueryEx`), and some
//!    messages carry a serialized [`messages::http::Request`] or
//!    [`messages::http::Response`] ([`http`] has helpers).
//!
//! [`version`] agrees on the protocol version both sides speak once the handshake messages have
//! been exchanged.
//!
//! # Sans-IO
//!
//! Nothing here touches sockets, clocks or random number generators. Decoders consume bytes the
//! caller has read into a buffer and say "need more" with `Ok(None)`; encoders append to a buffer
//! the caller writes out; the caller supplies salts, nonces and ids. Every rule of the protocol
//! is therefore testable with plain bytes, and `cocoon-net` wraps these types with tokio.
//!
//! Decoding is strict, so anything that decodes re-encodes to the same bytes: canonical lengths,
//! zero padding, valid UTF-8 in strings, `Bool` exactly `boolTrue` or `boolFalse`, no flag bit
//! that no field of its constructor uses ([`Error::UnknownFlagBits`]), no trailing bytes. Malformed input from a peer is an [`Error`] with a precise variant, never a panic, and
//! vector counts are checked against the bytes left before anything is allocated.
//!
//! # TL encoding
//!
//! [`tl`] holds the primitives of TON's TL dialect: [`TlWrite`] / [`TlRead`] encode a value
//! *bare* (its fields only); a type with a constructor id implements [`TlConstructor`] and can
//! also be written *boxed* (the id first). A TL boxed type with several constructors (such as
//! `proxy.SignedPayment`) is a Rust enum that always carries the id.
//!
//! # Declaring a message
//!
//! Messages are declared in `src/messages.rs` with two internal macros, one schema line each, so
//! the wire layout, the Rust type and the id come from one place:
//!
//! ```text
//! tl_struct! {
//!     /// Constructor `tcp.queryError` of `tcp.Packet`.
//!     QueryError = 0x4cd2f602, "tcp.queryError id:long code:int message:string = tcp.Packet" {
//!         /// `id`.
//!         id: i64,
//!         /// `code`.
//!         code: i32,
//!         /// `message`.
//!         message: String,
//!     }
//! }
//! ```
//!
//! Fields are listed in wire order with their Rust types (`int` → `i32`, `long` → `i64`,
//! `double` → `f64`, `Bool` → `bool`, `int256` → [`Int256`], `bytes` → [`bytes::Bytes`],
//! `string` → `String`, `vector t` → `Vec<T>`, another constructor → its struct, a boxed type →
//! its enum). A field `flags: u32` is the `flags:#` word, and `name: T => N` declares
//! `name:flags.N?T` as an `Option<T>`: on encode the bits of present optional fields are added
//! to `flags`, on decode a field is present exactly when its bit is set. The schema line is the
//! declaration with single spaces and `(vector X)` written `vector X`; the id is its CRC32
//! ([`tl::schema_crc32`]), which the tests check for every constructor against the reference's
//! table.
//!
//! `tl_enum!` then groups constructors into a boxed type (`AnyPacket, "tcp.Packet" { Ping(Ping),
//! … }`). A new message also needs a variant in [`Message`], which dispatches on every
//! constructor; the round-trip property tests pick it up from there.
//!
//! # Example
//!
//! ```
//! use bytes::{Bytes, BytesMut};
//! use cocoon_protocol::messages::{Message, tcp, worker};
//! use cocoon_protocol::{FrameDecoder, FrameEncoder, tl};
//!
//! // Sender: message → packet → frame.
//! let message = Message::WorkerNewCoefficient(worker::NewCoefficient { new_coefficient: 1500 });
//! let packet = tcp::AnyPacket::Packet(tcp::Packet { data: Bytes::from(tl::to_bytes(&message)) });
//! let mut wire = BytesMut::new();
//! FrameEncoder::new().encode(&tl::to_bytes(&packet), &mut wire)?;
//!
//! // Receiver: frame → packet → message.
//! let frame = FrameDecoder::default().decode(&mut wire)?.expect("a whole frame");
//! let tcp::AnyPacket::Packet(received) = tl::from_bytes(frame.body)? else { unreachable!() };
//! assert_eq!(tl::from_bytes::<Message>(received.data)?, message);
//! # Ok::<(), cocoon_protocol::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[macro_use]
mod macros;

pub mod audio;
mod error;
pub mod frame;
pub mod http;
pub mod messages;
pub mod model_name;
pub mod pow;
pub mod refusal;
#[cfg(any(test, feature = "sample"))]
#[doc(hidden)]
pub mod sample;
pub mod tl;
pub mod version;

pub use error::Error;
pub use frame::{Frame, FrameDecoder, FrameEncoder};
pub use messages::Message;
pub use model_name::{ModelName, ModelNameError};
pub use tl::{Int256, TlConstructor, TlRead, TlWrite};
