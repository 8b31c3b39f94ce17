//! Intel TDX sealing keys through a key helper: TDX has no instruction that derives a sealing key,
//! so a TD asks a local helper service, proving with a TD quote which code it runs, and the helper
//! answers with a key bound to that measurement. This module is the TD's side of the exchange and
//! the message codec both sides share.
//!
//! # The exchange
//!
//! 1. The TD makes a fresh X25519 reply key pair and a 16-byte nonce, and obtains a TD quote whose
//!    REPORTDATA is [`KeyRequest::report_data`]: SHA-512 over the purpose, the reply public key
//!    and the nonce. The quote thereby vouches for exactly this request.
//! 2. It sends a [`KeyRequest`] to the helper over a Unix stream socket (one length-prefixed frame
//!    each way; see `docs/sealing.md` for the byte layout).
//! 3. The helper verifies the quote (DCAP, against collateral and its policy of acceptable TDs),
//!    checks that REPORTDATA matches the request, derives a 32-byte key from its own long-term
//!    secret, the TD's measurement and the purpose, and answers with a [`KeyResponse`] that seals
//!    the key with HPKE **auth mode**: to the TD's reply key, from the helper's static X25519 key,
//!    with the hash of the request as HPKE `info`.
//! 4. The TD opens the response with the helper public key it pins ([`TdxHelperKeySource::new`])
//!    and mixes the purpose in ([`super::mix_purpose`]), like every hardware source.
//!
//! Auth mode and the pinned helper key are what stop a host that controls the socket (or the
//! vsock link behind it) from answering with a key of its own choosing; the request hash in
//! `info` stops it from replaying an answer meant for another request. The helper key must
//! therefore come from the TD's measured configuration, never from the host.
//!
//! The helper itself (quote verification and its key policy) is outside this crate; its
//! measurement selection is described in `docs/sealing.md`. A vsock-reachable helper can be used
//! through a Unix socket forwarded into the TD, since the frames are the same.

use core::fmt;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand_core::TryCryptoRng;
use sha2::{Digest, Sha256, Sha512};
use zeroize::Zeroizing;

use crate::error::{Result, SealError};
use crate::hpke::{ENC_LEN, RecipientMode, SUITE_X25519_SHA256_AES256GCM, SenderMode, TAG_LEN};
use crate::key_source::{
    DERIVED_KEY_LEN, DerivedKey, KeyPurpose, KeySource, KeySourceKind, MAX_PURPOSE_LEN, mix_purpose,
};
use crate::keys::{KEY_LEN, SealingKeyPair, SealingPublicKey};
use crate::random::SystemRng;

/// First four bytes of a request.
pub const REQUEST_MAGIC: [u8; 4] = *b"CKRQ";
/// First four bytes of a response.
pub const RESPONSE_MAGIC: [u8; 4] = *b"CKRS";
/// Version byte of both messages.
pub const PROTOCOL_VERSION: u8 = 1;
/// Length of the request nonce.
pub const REQUEST_NONCE_LEN: usize = 16;
/// Largest quote a request may carry (a TD quote with its certification data is a few KiB).
pub const MAX_QUOTE_LEN: usize = 32 * 1024;
/// Largest request frame.
pub const MAX_REQUEST_LEN: usize =
    4 + 1 + 1 + MAX_PURPOSE_LEN + KEY_LEN + REQUEST_NONCE_LEN + 4 + MAX_QUOTE_LEN;
/// Longest refusal message.
pub const MAX_REFUSAL_MESSAGE_LEN: usize = 1024;
/// Largest response frame.
pub const MAX_RESPONSE_LEN: usize = 6 + 2 + MAX_REFUSAL_MESSAGE_LEN;
/// Default time allowed for each read and write on the socket.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

const REPORT_DATA_LABEL: &[u8] = b"cocoon-seal/v1/tdx-key-request";
const RESPONSE_INFO_LABEL: &[u8] = b"cocoon-seal/v1/tdx-key-response";
const SEALED_KEY_LEN: usize = DERIVED_KEY_LEN + TAG_LEN;
const RESPONSE_HEADER_LEN: usize = 6;
const GRANTED_LEN: usize = RESPONSE_HEADER_LEN + ENC_LEN + SEALED_KEY_LEN;

/// Produces TD quotes; implemented by the caller (the `attest` crate holds the TDX quote
/// plumbing, this crate does not).
pub trait TdQuoteSource {
    /// A TD quote whose REPORTDATA field is exactly `report_data`.
    ///
    /// # Errors
    /// Whatever prevented the quote; it is reported as [`SealError::QuoteUnavailable`].
    fn td_quote(
        &self,
        report_data: &[u8; 64],
    ) -> core::result::Result<Vec<u8>, Box<dyn std::error::Error + Send + Sync>>;
}

/// A request for the key of one purpose, as the TD sends it.
///
/// ```text
/// offset      size  field
/// 0           4     magic "CKRQ"
/// 4           1     version = 1
/// 5           1     P = purpose label length, 1 ..= 64
/// 6           P     purpose label (see KeyPurpose)
/// 6+P         32    reply public key (X25519)
/// 38+P        16    nonce
/// 54+P        4     Q = quote length, 1 ..= 32768, big-endian
/// 58+P        Q     TD quote; its REPORTDATA must equal report_data()
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRequest {
    purpose: String,
    reply_key: SealingPublicKey,
    nonce: [u8; REQUEST_NONCE_LEN],
    quote: Vec<u8>,
}

impl KeyRequest {
    /// A request carrying `quote`, which must have been made over
    /// [`KeyRequest::report_data_for`] of the same purpose, reply key and nonce.
    ///
    /// # Errors
    /// [`SealError::TooLong`] for a quote above [`MAX_QUOTE_LEN`], [`SealError::Truncated`] for
    /// an empty one.
    pub fn new(
        purpose: KeyPurpose<'_>,
        reply_key: SealingPublicKey,
        nonce: [u8; REQUEST_NONCE_LEN],
        quote: Vec<u8>,
    ) -> Result<Self> {
        check_quote_len(quote.len())?;
        Ok(Self {
            purpose: purpose.label().to_owned(),
            reply_key,
            nonce,
            quote,
        })
    }

    /// `SHA-512("cocoon-seal/v1/tdx-key-request" || u8(P) || purpose || reply key || nonce)`:
    /// what the quote's REPORTDATA must hold.
    #[must_use]
    pub fn report_data_for(
        purpose: KeyPurpose<'_>,
        reply_key: &SealingPublicKey,
        nonce: &[u8; REQUEST_NONCE_LEN],
    ) -> [u8; 64] {
        let label = purpose.label().as_bytes();
        // Labels are at most 64 bytes (checked by KeyPurpose), so the length fits a byte.
        let label_len = u8::try_from(label.len()).unwrap_or(u8::MAX);
        let digest = Sha512::new()
            .chain_update(REPORT_DATA_LABEL)
            .chain_update([label_len])
            .chain_update(label)
            .chain_update(reply_key.as_bytes())
            .chain_update(nonce)
            .finalize();
        let mut out = [0u8; 64];
        out.copy_from_slice(&digest);
        out
    }

    /// The REPORTDATA this request's quote must carry; a helper compares it with the verified
    /// quote's field before granting anything.
    #[must_use]
    pub fn report_data(&self) -> [u8; 64] {
        Self::report_data_for(self.purpose(), &self.reply_key, &self.nonce)
    }

    /// The purpose asked for.
    #[must_use]
    pub fn purpose(&self) -> KeyPurpose<'_> {
        // Validated when the request was built or parsed.
        KeyPurpose(&self.purpose)
    }

    /// The key the response must be sealed to.
    #[must_use]
    pub fn reply_key(&self) -> &SealingPublicKey {
        &self.reply_key
    }

    /// The request nonce.
    #[must_use]
    pub fn nonce(&self) -> &[u8; REQUEST_NONCE_LEN] {
        &self.nonce
    }

    /// The TD quote.
    #[must_use]
    pub fn quote(&self) -> &[u8] {
        &self.quote
    }

    /// The wire form.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let label = self.purpose.as_bytes();
        let mut out = Vec::with_capacity(58 + label.len() + self.quote.len());
        out.extend_from_slice(&REQUEST_MAGIC);
        out.push(PROTOCOL_VERSION);
        out.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(label);
        out.extend_from_slice(self.reply_key.as_bytes());
        out.extend_from_slice(&self.nonce);
        let quote_len = u32::try_from(self.quote.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&quote_len.to_be_bytes());
        out.extend_from_slice(&self.quote);
        out
    }

    /// Parses exactly one request.
    ///
    /// # Errors
    /// [`SealError::BadMagic`], [`SealError::UnsupportedVersion`], [`SealError::Truncated`],
    /// [`SealError::TrailingBytes`], [`SealError::InvalidKeyPurpose`], [`SealError::TooLong`].
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "TDX key request");
        if r.take("magic", 4)? != REQUEST_MAGIC {
            return Err(SealError::BadMagic {
                structure: "TDX key request",
            });
        }
        let version = r.byte("version")?;
        if version != PROTOCOL_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "TDX key request",
                found: version,
            });
        }
        let label_len = usize::from(r.byte("purpose length")?);
        let label = r.take("purpose", label_len)?;
        let label = core::str::from_utf8(label)
            .map_err(|_| SealError::InvalidKeyPurpose("label is not ASCII"))?;
        let purpose = KeyPurpose::new(label)?;
        let reply_key = SealingPublicKey(r.array("reply key")?);
        let nonce = r.array("nonce")?;
        let quote_len =
            usize::try_from(u32::from_be_bytes(r.array("quote length")?)).unwrap_or(usize::MAX);
        check_quote_len(quote_len)?;
        let quote = r.take("quote", quote_len)?.to_vec();
        r.finish()?;
        Ok(Self {
            purpose: purpose.label().to_owned(),
            reply_key,
            nonce,
            quote,
        })
    }
}

impl fmt::Debug for KeyRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRequest")
            .field("purpose", &self.purpose)
            .field("reply_key", &self.reply_key)
            .field("quote_len", &self.quote.len())
            .finish_non_exhaustive()
    }
}

fn check_quote_len(len: usize) -> Result<()> {
    if len == 0 {
        return Err(SealError::Truncated {
            field: "TD quote",
            needed: 1,
            available: 0,
        });
    }
    if len > MAX_QUOTE_LEN {
        return Err(SealError::TooLong {
            what: "TD quote",
            len,
            max: MAX_QUOTE_LEN,
        });
    }
    Ok(())
}

/// Why a helper refused; carried as the response's status byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefusalCode {
    /// 1: the request did not parse.
    MalformedRequest,
    /// 2: the quote did not verify, or its REPORTDATA does not match the request.
    QuoteRejected,
    /// 3: the quote verified but the helper's policy does not accept this TD's measurement.
    MeasurementNotAllowed,
    /// 4: the helper does not hand out keys for this purpose.
    PurposeNotAllowed,
    /// 5: the helper failed internally (for example, no current collateral).
    Internal,
    /// A status this build does not know.
    Unknown(u8),
}

impl RefusalCode {
    /// The status byte.
    #[must_use]
    pub const fn status(self) -> u8 {
        match self {
            Self::MalformedRequest => 1,
            Self::QuoteRejected => 2,
            Self::MeasurementNotAllowed => 3,
            Self::PurposeNotAllowed => 4,
            Self::Internal => 5,
            Self::Unknown(status) => status,
        }
    }

    /// The code for a non-zero status byte.
    #[must_use]
    pub const fn from_status(status: u8) -> Self {
        match status {
            1 => Self::MalformedRequest,
            2 => Self::QuoteRejected,
            3 => Self::MeasurementNotAllowed,
            4 => Self::PurposeNotAllowed,
            5 => Self::Internal,
            other => Self::Unknown(other),
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedRequest => f.write_str("malformed request"),
            Self::QuoteRejected => f.write_str("quote rejected"),
            Self::MeasurementNotAllowed => f.write_str("measurement not allowed"),
            Self::PurposeNotAllowed => f.write_str("purpose not allowed"),
            Self::Internal => f.write_str("helper internal error"),
            Self::Unknown(status) => write!(f, "unknown status {status}"),
        }
    }
}

/// The helper's answer.
///
/// ```text
/// offset  size  field
/// 0       4     magic "CKRS"
/// 4       1     version = 1
/// 5       1     status: 0 = granted, otherwise a RefusalCode
/// granted (total 86 bytes):
/// 6       32    enc, the HPKE encapsulated key
/// 38      48    HPKE ciphertext of the 32-byte key, with its tag
/// refused:
/// 6       2     M = message length, 0 ..= 1024, big-endian
/// 8       M     UTF-8 message for the operator's logs
/// ```
///
/// The granted key is sealed with HPKE mode_auth, suite X25519 / HKDF-SHA256 / AES-256-GCM:
/// sender = the helper's static key, recipient = the request's reply key,
/// `info = "cocoon-seal/v1/tdx-key-response" || SHA-256(request bytes)`, `aad = bytes[0..6]`.
#[derive(Clone, PartialEq, Eq)]
pub enum KeyResponse {
    /// The helper sealed a key to the reply key.
    Granted {
        /// HPKE encapsulated key.
        enc: [u8; ENC_LEN],
        /// The sealed 32-byte key and its tag.
        sealed_key: [u8; SEALED_KEY_LEN],
    },
    /// The helper refused.
    Refused {
        /// Why.
        code: RefusalCode,
        /// Human-readable detail.
        message: String,
    },
}

/// The longest prefix of `message` that fits [`MAX_REFUSAL_MESSAGE_LEN`] without splitting a
/// character.
fn cut_message(message: &str) -> &str {
    let mut end = message.len().min(MAX_REFUSAL_MESSAGE_LEN);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

fn response_info(request_bytes: &[u8]) -> Vec<u8> {
    let mut info = Vec::with_capacity(RESPONSE_INFO_LABEL.len() + 32);
    info.extend_from_slice(RESPONSE_INFO_LABEL);
    info.extend_from_slice(&Sha256::digest(request_bytes));
    info
}

fn response_header(status: u8) -> [u8; RESPONSE_HEADER_LEN] {
    let mut header = [0u8; RESPONSE_HEADER_LEN];
    header[..4].copy_from_slice(&RESPONSE_MAGIC);
    header[4] = PROTOCOL_VERSION;
    header[5] = status;
    header
}

impl KeyResponse {
    /// Helper side: seals `key` for the request whose wire form is `request_bytes`, from the
    /// helper's static key pair.
    ///
    /// # Errors
    /// Any error of [`KeyRequest::parse`] on `request_bytes`; [`SealError::RandomSource`];
    /// [`SealError::NonContributoryKey`] for a low-order reply key.
    pub fn grant<R: TryCryptoRng + ?Sized>(
        helper: &SealingKeyPair,
        request_bytes: &[u8],
        key: &[u8; DERIVED_KEY_LEN],
        rng: &mut R,
    ) -> Result<Self> {
        let request = KeyRequest::parse(request_bytes)?;
        let (enc, mut context) = SUITE_X25519_SHA256_AES256GCM.setup_sender(
            request.reply_key(),
            &response_info(request_bytes),
            SenderMode::Auth(helper),
            rng,
        )?;
        let sealed = context.seal(&response_header(0), key)?;
        let sealed_key = <[u8; SEALED_KEY_LEN]>::try_from(sealed.as_slice())
            .map_err(|_| SealError::KeyHelperProtocol("sealed key has the wrong length"))?;
        Ok(Self::Granted { enc, sealed_key })
    }

    /// Helper side: a refusal; the message is cut to [`MAX_REFUSAL_MESSAGE_LEN`] bytes at a
    /// character boundary.
    #[must_use]
    pub fn refuse(code: RefusalCode, message: &str) -> Self {
        // Status 0 means "granted", so a refusal can never carry it.
        let code = match code {
            RefusalCode::Unknown(0) => RefusalCode::Internal,
            other => other,
        };
        Self::Refused {
            code,
            message: cut_message(message).to_owned(),
        }
    }

    /// The wire form.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Granted { enc, sealed_key } => {
                let mut out = Vec::with_capacity(GRANTED_LEN);
                out.extend_from_slice(&response_header(0));
                out.extend_from_slice(enc);
                out.extend_from_slice(sealed_key);
                out
            }
            Self::Refused { code, message } => {
                let message = cut_message(message).as_bytes();
                let mut out = Vec::with_capacity(8 + message.len());
                out.extend_from_slice(&response_header(code.status()));
                let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(message);
                out
            }
        }
    }

    /// Parses exactly one response.
    ///
    /// # Errors
    /// [`SealError::BadMagic`], [`SealError::UnsupportedVersion`], [`SealError::Truncated`],
    /// [`SealError::TrailingBytes`], [`SealError::TooLong`], or
    /// [`SealError::KeyHelperProtocol`] for a message that is not UTF-8.
    pub fn parse(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "TDX key response");
        if r.take("magic", 4)? != RESPONSE_MAGIC {
            return Err(SealError::BadMagic {
                structure: "TDX key response",
            });
        }
        let version = r.byte("version")?;
        if version != PROTOCOL_VERSION {
            return Err(SealError::UnsupportedVersion {
                structure: "TDX key response",
                found: version,
            });
        }
        let status = r.byte("status")?;
        let response = if status == 0 {
            Self::Granted {
                enc: r.array("enc")?,
                sealed_key: r.array("sealed key")?,
            }
        } else {
            let len = usize::from(u16::from_be_bytes(r.array("message length")?));
            if len > MAX_REFUSAL_MESSAGE_LEN {
                return Err(SealError::TooLong {
                    what: "key helper refusal message",
                    len,
                    max: MAX_REFUSAL_MESSAGE_LEN,
                });
            }
            let message = core::str::from_utf8(r.take("message", len)?)
                .map_err(|_| SealError::KeyHelperProtocol("refusal message is not UTF-8"))?;
            Self::Refused {
                code: RefusalCode::from_status(status),
                message: message.to_owned(),
            }
        };
        r.finish()?;
        Ok(response)
    }

    /// TD side: the key inside a granted response to the request `request_bytes`, which was sent
    /// with `reply`'s public key, checked to come from `helper_key`.
    ///
    /// # Errors
    /// [`SealError::KeySourceRefused`] for a refusal; [`SealError::KeyHelperAuthentication`]
    /// when the key was not sealed by `helper_key` for this very request and reply key;
    /// [`SealError::NonContributoryKey`] for a low-order `enc` or helper key.
    pub fn open(
        &self,
        helper_key: &SealingPublicKey,
        reply: &SealingKeyPair,
        request_bytes: &[u8],
    ) -> Result<Zeroizing<[u8; DERIVED_KEY_LEN]>> {
        let (enc, sealed_key) = match self {
            Self::Granted { enc, sealed_key } => (enc, sealed_key),
            Self::Refused { code, message } => {
                return Err(SealError::KeySourceRefused {
                    kind: KeySourceKind::TdxHelper,
                    reason: format!("{code}: {message}"),
                });
            }
        };
        let mut context = SUITE_X25519_SHA256_AES256GCM.setup_recipient(
            enc,
            reply,
            &response_info(request_bytes),
            RecipientMode::Auth(helper_key),
        )?;
        let key = Zeroizing::new(
            context
                .open(&response_header(0), sealed_key)
                .map_err(|_| SealError::KeyHelperAuthentication)?,
        );
        let mut out = Zeroizing::new([0u8; DERIVED_KEY_LEN]);
        if key.len() != DERIVED_KEY_LEN {
            return Err(SealError::KeyHelperProtocol("granted key is not 32 bytes"));
        }
        out.copy_from_slice(&key);
        Ok(out)
    }
}

impl fmt::Debug for KeyResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Granted { .. } => f.write_str("KeyResponse::Granted(<sealed>)"),
            Self::Refused { code, message } => f
                .debug_struct("KeyResponse::Refused")
                .field("code", code)
                .field("message", message)
                .finish(),
        }
    }
}

/// Keys for a TD from a key helper on a Unix socket; see the module documentation.
pub struct TdxHelperKeySource<Q> {
    socket: PathBuf,
    helper_key: SealingPublicKey,
    quotes: Q,
    timeout: Duration,
}

impl<Q: TdQuoteSource> TdxHelperKeySource<Q> {
    /// A source that asks the helper listening on `socket`, accepts only answers sealed by
    /// `helper_key`, and proves itself with quotes from `quotes`. Nothing is contacted until a
    /// key is derived.
    #[must_use]
    pub fn new(socket: impl Into<PathBuf>, helper_key: SealingPublicKey, quotes: Q) -> Self {
        Self {
            socket: socket.into(),
            helper_key,
            quotes,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the time allowed for each read and write on the socket (default 30 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The helper's socket.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The pinned helper key.
    #[must_use]
    pub fn helper_key(&self) -> &SealingPublicKey {
        &self.helper_key
    }

    /// One full exchange: the helper's key for `purpose`, before the purpose is mixed in locally.
    fn platform_key(&self, purpose: KeyPurpose<'_>) -> Result<Zeroizing<[u8; DERIVED_KEY_LEN]>> {
        let mut rng = SystemRng;
        let reply = SealingKeyPair::generate(&mut rng)?;
        let mut nonce = [0u8; REQUEST_NONCE_LEN];
        crate::random::fill(&mut rng, &mut nonce)?;
        let report_data = KeyRequest::report_data_for(purpose, &reply.public(), &nonce);
        let quote = self
            .quotes
            .td_quote(&report_data)
            .map_err(|e| SealError::QuoteUnavailable(e.to_string()))?;
        let request = KeyRequest::new(purpose, reply.public(), nonce, quote)?.encode();
        let response = KeyResponse::parse(&self.exchange(&request)?)?;
        response.open(&self.helper_key, &reply, &request)
    }

    /// Sends one frame and reads one back.
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>> {
        let endpoint = || self.socket.display().to_string();
        let io = |operation: &'static str| {
            move |e: std::io::Error| SealError::KeySourceIo {
                kind: KeySourceKind::TdxHelper,
                endpoint: endpoint(),
                operation,
                error: e.kind(),
            }
        };
        let mut stream = UnixStream::connect(&self.socket).map_err(|e| match e.kind() {
            // No socket file, or a stale one nobody listens on: there is no helper here.
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                SealError::KeySourceAbsent {
                    kind: KeySourceKind::TdxHelper,
                    endpoint: endpoint(),
                }
            }
            _ => io("connect")(e),
        })?;
        stream
            .set_read_timeout(Some(self.timeout))
            .map_err(io("set timeout"))?;
        stream
            .set_write_timeout(Some(self.timeout))
            .map_err(io("set timeout"))?;
        write_frame(&mut stream, request).map_err(io("send request"))?;
        match read_frame_checked(&mut stream, MAX_RESPONSE_LEN) {
            Ok(frame) => Ok(frame),
            Err(FrameError::Closed) => Err(SealError::KeyHelperProtocol(
                "helper closed the connection without a response",
            )),
            Err(FrameError::TooLong(len)) => Err(SealError::TooLong {
                what: "key helper response",
                len,
                max: MAX_RESPONSE_LEN,
            }),
            Err(FrameError::Io(e)) => Err(io("read response")(e)),
        }
    }
}

impl<Q: TdQuoteSource> KeySource for TdxHelperKeySource<Q> {
    fn kind(&self) -> KeySourceKind {
        KeySourceKind::TdxHelper
    }

    fn is_simulated(&self) -> bool {
        false
    }

    fn derive_key(&self, purpose: KeyPurpose<'_>) -> Result<DerivedKey> {
        let platform_key = self.platform_key(purpose)?;
        mix_purpose(KeySourceKind::TdxHelper, &platform_key, purpose)
    }
}

impl<Q> fmt::Debug for TdxHelperKeySource<Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TdxHelperKeySource")
            .field("socket", &self.socket)
            .field("helper_key", &self.helper_key)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Why a frame could not be read (kept inside the crate; [`read_frame`] speaks `std::io`).
#[derive(Debug)]
enum FrameError {
    /// The peer closed the connection before a whole frame arrived.
    Closed,
    /// The length prefix announces more than the limit.
    TooLong(usize),
    /// Any other I/O error.
    Io(std::io::Error),
}

/// Writes one frame: a 4-byte big-endian length, then the bytes. For helper implementations
/// and tests as well as the client.
///
/// # Errors
/// The I/O error, or `InvalidInput` for a frame longer than `u32::MAX`.
pub fn write_frame(stream: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(bytes.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    stream.write_all(&len.to_be_bytes())?;
    stream.write_all(bytes)?;
    stream.flush()
}

/// Reads one frame of at most `max` bytes; the length is checked before anything is allocated.
/// For helper implementations and tests as well as the client.
///
/// # Errors
/// `UnexpectedEof` when the peer closes before a whole frame arrived, `InvalidData` when the
/// length prefix exceeds `max`, or the I/O error.
pub fn read_frame(stream: &mut impl Read, max: usize) -> std::io::Result<Vec<u8>> {
    read_frame_checked(stream, max).map_err(|e| match e {
        FrameError::Closed => std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        FrameError::TooLong(len) => std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the limit of {max}"),
        ),
        FrameError::Io(e) => e,
    })
}

fn read_frame_checked(
    stream: &mut impl Read,
    max: usize,
) -> core::result::Result<Vec<u8>, FrameError> {
    let eof = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Closed
        } else {
            FrameError::Io(e)
        }
    };
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).map_err(eof)?;
    let len = usize::try_from(u32::from_be_bytes(len)).unwrap_or(usize::MAX);
    if len > max {
        return Err(FrameError::TooLong(len));
    }
    let mut frame = vec![0u8; len];
    stream.read_exact(&mut frame).map_err(eof)?;
    Ok(frame)
}

/// A bounds-checked cursor whose errors name the field.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], structure: &'static str) -> Self {
        Self {
            bytes,
            pos: 0,
            structure,
        }
    }

    fn take(&mut self, field: &'static str, len: usize) -> Result<&'a [u8]> {
        let available = self.bytes.len() - self.pos;
        if available < len {
            return Err(SealError::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let out = &self.bytes[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    fn byte(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.take(field, 1)?[0])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(field, N)?);
        Ok(out)
    }

    fn finish(self) -> Result<()> {
        let extra = self.bytes.len() - self.pos;
        if extra != 0 {
            return Err(SealError::TrailingBytes {
                structure: self.structure,
                extra,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn request() -> (SealingKeyPair, Vec<u8>) {
        let reply = crate::hpke::derive_key_pair(&[3u8; 32]).unwrap();
        let request = KeyRequest::new(
            KeyPurpose::WALLET_KEY,
            reply.public(),
            [5u8; 16],
            vec![9u8; 100],
        )
        .unwrap();
        (reply, request.encode())
    }

    #[test]
    fn request_round_trips_and_binds_its_fields() {
        let (reply, bytes) = request();
        assert_eq!(bytes.len(), 58 + "cocoon/wallet-key".len() + 100);
        let parsed = KeyRequest::parse(&bytes).unwrap();
        assert_eq!(parsed.purpose(), KeyPurpose::WALLET_KEY);
        assert_eq!(parsed.reply_key(), &reply.public());
        assert_eq!(parsed.quote(), &[9u8; 100][..]);
        assert_eq!(parsed.encode(), bytes);

        let base = parsed.report_data();
        let other_nonce =
            KeyRequest::report_data_for(KeyPurpose::WALLET_KEY, &reply.public(), &[6u8; 16]);
        let other_purpose =
            KeyRequest::report_data_for(KeyPurpose::SEALING_KEY, &reply.public(), &[5u8; 16]);
        let other_key = KeyRequest::report_data_for(
            KeyPurpose::WALLET_KEY,
            &SealingPublicKey([1u8; 32]),
            &[5u8; 16],
        );
        assert_ne!(base, other_nonce);
        assert_ne!(base, other_purpose);
        assert_ne!(base, other_key);
    }

    #[test]
    fn malformed_requests_are_refused_precisely() {
        let (_, bytes) = request();
        assert!(matches!(
            KeyRequest::parse(&bytes[..bytes.len() - 1]),
            Err(SealError::Truncated { field: "quote", .. })
        ));
        let mut long = bytes.clone();
        long.push(0);
        assert!(matches!(
            KeyRequest::parse(&long),
            Err(SealError::TrailingBytes { extra: 1, .. })
        ));
        let mut magic = bytes.clone();
        magic[0] ^= 1;
        assert!(matches!(
            KeyRequest::parse(&magic),
            Err(SealError::BadMagic { .. })
        ));
        let mut version = bytes.clone();
        version[4] = 2;
        assert!(matches!(
            KeyRequest::parse(&version),
            Err(SealError::UnsupportedVersion { found: 2, .. })
        ));
        let mut purpose = bytes.clone();
        purpose[6] = b' ';
        assert!(matches!(
            KeyRequest::parse(&purpose),
            Err(SealError::InvalidKeyPurpose(_))
        ));
        let mut empty_purpose = bytes;
        empty_purpose[5] = 0;
        assert!(KeyRequest::parse(&empty_purpose).is_err());
        assert!(matches!(
            KeyRequest::new(
                KeyPurpose::WALLET_KEY,
                SealingPublicKey([1; 32]),
                [0; 16],
                vec![0; MAX_QUOTE_LEN + 1]
            ),
            Err(SealError::TooLong { .. })
        ));
    }

    #[test]
    fn grant_opens_only_for_its_request_and_helper() {
        let helper = crate::hpke::derive_key_pair(&[7u8; 32]).unwrap();
        let (reply, bytes) = request();
        let key = [0x42u8; 32];
        let response = KeyResponse::grant(&helper, &bytes, &key, &mut SystemRng).unwrap();
        let wire = response.encode();
        assert_eq!(wire.len(), GRANTED_LEN);
        let parsed = KeyResponse::parse(&wire).unwrap();
        assert_eq!(*parsed.open(&helper.public(), &reply, &bytes).unwrap(), key);

        let impostor = crate::hpke::derive_key_pair(&[8u8; 32]).unwrap();
        assert_eq!(
            parsed.open(&impostor.public(), &reply, &bytes),
            Err(SealError::KeyHelperAuthentication)
        );
        let mut other_request = bytes.clone();
        let last = other_request.len() - 1;
        other_request[last] ^= 1;
        assert_eq!(
            parsed.open(&helper.public(), &reply, &other_request),
            Err(SealError::KeyHelperAuthentication)
        );
        let mut altered = wire;
        altered[50] ^= 1;
        assert_eq!(
            KeyResponse::parse(&altered)
                .unwrap()
                .open(&helper.public(), &reply, &bytes),
            Err(SealError::KeyHelperAuthentication)
        );
    }

    #[test]
    fn refusals_round_trip_and_surface_as_typed_errors() {
        let (reply, bytes) = request();
        let long = "é".repeat(600);
        let refusal = KeyResponse::refuse(RefusalCode::MeasurementNotAllowed, &long);
        let parsed = KeyResponse::parse(&refusal.encode()).unwrap();
        match &parsed {
            KeyResponse::Refused { code, message } => {
                assert_eq!(*code, RefusalCode::MeasurementNotAllowed);
                assert_eq!(message.len(), MAX_REFUSAL_MESSAGE_LEN);
            }
            KeyResponse::Granted { .. } => panic!("expected a refusal"),
        }
        let helper = crate::hpke::derive_key_pair(&[7u8; 32]).unwrap();
        match parsed.open(&helper.public(), &reply, &bytes) {
            Err(SealError::KeySourceRefused {
                kind: KeySourceKind::TdxHelper,
                reason,
            }) => assert!(reason.starts_with("measurement not allowed")),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(RefusalCode::from_status(77), RefusalCode::Unknown(77));
        assert_eq!(RefusalCode::from_status(2).status(), 2);
    }

    #[test]
    fn malformed_responses_are_refused_precisely() {
        assert!(matches!(
            KeyResponse::parse(b"CKRS\x01\x00short"),
            Err(SealError::Truncated { field: "enc", .. })
        ));
        assert!(matches!(
            KeyResponse::parse(b"XXXX\x01\x00"),
            Err(SealError::BadMagic { .. })
        ));
        assert!(matches!(
            KeyResponse::parse(b"CKRS\x01\x02\x00\x02\xff\xfe"),
            Err(SealError::KeyHelperProtocol(_))
        ));
        assert!(matches!(
            KeyResponse::parse(b"CKRS\x01\x02\x10\x00"),
            Err(SealError::TooLong { .. })
        ));
        assert!(matches!(
            KeyResponse::parse(b"CKRS\x01\x02\x00\x00!"),
            Err(SealError::TrailingBytes { extra: 1, .. })
        ));
    }

    #[test]
    fn frames_are_length_checked_before_allocation() {
        use std::io::ErrorKind;
        let mut wire = Vec::new();
        write_frame(&mut wire, b"hello").unwrap();
        assert_eq!(read_frame(&mut wire.as_slice(), 5).unwrap(), b"hello");
        assert_eq!(
            read_frame(&mut wire.as_slice(), 4).unwrap_err().kind(),
            ErrorKind::InvalidData
        );
        assert_eq!(
            read_frame(&mut &wire[..6], 5).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        assert_eq!(
            read_frame(&mut &wire[..2], 5).unwrap_err().kind(),
            ErrorKind::UnexpectedEof
        );
        assert!(matches!(
            read_frame_checked(&mut wire.as_slice(), 4),
            Err(FrameError::TooLong(5))
        ));
    }
}
