//! Hybrid Public Key Encryption (RFC 9180) for the one KEM and KDF this project uses.
//!
//! KEM: DHKEM(X25519, HKDF-SHA256) (`0x0020`); KDF: HKDF-SHA256 (`0x0001`); AEAD: AES-256-GCM
//! (`0x0002`) in production, AES-128-GCM (`0x0001`) as well so that the RFC's appendix A.1
//! known-answer vectors can be checked against the same code. All four modes (base, psk, auth,
//! auth_psk) and the secret export interface are implemented; the envelope uses base mode and
//! the export interface.
//!
//! The module is written from the RFC's pseudocode: `LabeledExtract` / `LabeledExpand` feed the
//! labels to HKDF piecewise instead of concatenating into a buffer, and sequence numbers are
//! 64-bit (the RFC allows a shorter counter as long as overflow is an error).

use hkdf::{Hkdf, HkdfExtract};
use rand_core::TryCryptoRng;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::aead::AesGcmKey;
use crate::error::{Result, SealError};
use crate::keys::{KEY_LEN, SealingKeyPair, SealingPublicKey};

/// KEM id of DHKEM(X25519, HKDF-SHA256).
pub const KEM_X25519_HKDF_SHA256: u16 = 0x0020;
/// KDF id of HKDF-SHA256.
pub const KDF_HKDF_SHA256: u16 = 0x0001;
/// Length of the encapsulated key `enc` (an X25519 public key).
pub const ENC_LEN: usize = 32;
/// Length of an AEAD tag (both AES-GCM variants).
pub const TAG_LEN: usize = 16;
/// Length of an AEAD nonce (both AES-GCM variants).
pub const NONCE_LEN: usize = 12;
/// Hash output length of SHA-256 (`Nh`).
const NH: usize = 32;
/// Longest output HKDF-SHA256 can expand to.
pub const MAX_EXPORT_LEN: usize = 255 * NH;

const VERSION_LABEL: &[u8] = b"HPKE-v1";
const KEM_SUITE_ID: [u8; 5] = [b'K', b'E', b'M', 0x00, 0x20];

/// The AEAD half of a suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aead {
    /// AES-128-GCM (`0x0001`); only used to run the RFC's published vectors.
    Aes128Gcm,
    /// AES-256-GCM (`0x0002`); what envelopes use.
    Aes256Gcm,
}

impl Aead {
    /// The IANA AEAD id.
    #[must_use]
    pub const fn id(self) -> u16 {
        match self {
            Self::Aes128Gcm => 0x0001,
            Self::Aes256Gcm => 0x0002,
        }
    }

    /// Key length `Nk`.
    #[must_use]
    pub const fn key_len(self) -> usize {
        match self {
            Self::Aes128Gcm => 16,
            Self::Aes256Gcm => 32,
        }
    }
}

/// A ciphersuite: DHKEM(X25519, HKDF-SHA256) and HKDF-SHA256 with the chosen AEAD.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Suite {
    aead: Aead,
}

/// The suite envelopes use: X25519 / HKDF-SHA256 / AES-256-GCM.
pub const SUITE_X25519_SHA256_AES256GCM: Suite = Suite::new(Aead::Aes256Gcm);

/// A pre-shared key and its identifier (psk and auth_psk modes).
#[derive(Clone, Copy, Debug)]
pub struct Psk<'a> {
    /// The key; RFC 9180 requires at least 32 bytes of entropy, so shorter keys are refused.
    pub psk: &'a [u8],
    /// Identifier of the key; must not be empty.
    pub psk_id: &'a [u8],
}

/// How the sender authenticates, which selects the HPKE mode.
#[derive(Clone, Copy, Debug)]
pub enum SenderMode<'a> {
    /// mode_base: no sender authentication.
    Base,
    /// mode_psk: proves possession of a pre-shared key.
    Psk(Psk<'a>),
    /// mode_auth: proves possession of the sender's X25519 private key.
    Auth(&'a SealingKeyPair),
    /// mode_auth_psk: both.
    AuthPsk(&'a SealingKeyPair, Psk<'a>),
}

/// What the recipient checks, mirroring [`SenderMode`].
#[derive(Clone, Copy, Debug)]
pub enum RecipientMode<'a> {
    /// mode_base.
    Base,
    /// mode_psk.
    Psk(Psk<'a>),
    /// mode_auth: the sender's public key.
    Auth(&'a SealingPublicKey),
    /// mode_auth_psk.
    AuthPsk(&'a SealingPublicKey, Psk<'a>),
}

const MODE_BASE: u8 = 0x00;
const MODE_PSK: u8 = 0x01;
const MODE_AUTH: u8 = 0x02;
const MODE_AUTH_PSK: u8 = 0x03;

/// Derives a key pair deterministically from input keying material (`DeriveKeyPair`, RFC 9180
/// section 7.1.3). `ikm` should carry at least 32 bytes of entropy.
///
/// # Errors
/// Never in practice (the expansion length is fixed); the `Result` carries HKDF's length check.
pub fn derive_key_pair(ikm: &[u8]) -> Result<SealingKeyPair> {
    let dkp_prk = labeled_extract(&KEM_SUITE_ID, b"", b"dkp_prk", ikm);
    let mut sk = Zeroizing::new([0u8; KEY_LEN]);
    labeled_expand(&KEM_SUITE_ID, &dkp_prk, b"sk", b"", sk.as_mut_slice())?;
    Ok(SealingKeyPair::from_secret_bytes(*sk))
}

impl Suite {
    /// A suite with the given AEAD.
    #[must_use]
    pub const fn new(aead: Aead) -> Self {
        Self { aead }
    }

    /// The AEAD of this suite.
    #[must_use]
    pub const fn aead(self) -> Aead {
        self.aead
    }

    /// `suite_id = concat("HPKE", kem_id, kdf_id, aead_id)`.
    fn suite_id(self) -> [u8; 10] {
        let kem = KEM_X25519_HKDF_SHA256.to_be_bytes();
        let kdf = KDF_HKDF_SHA256.to_be_bytes();
        let aead = self.aead.id().to_be_bytes();
        [
            b'H', b'P', b'K', b'E', kem[0], kem[1], kdf[0], kdf[1], aead[0], aead[1],
        ]
    }

    /// Sets up a sender context to `recipient` with a fresh ephemeral key from `rng`
    /// (`SetupBaseS` and friends). Returns the encapsulated key to send along with the context.
    ///
    /// # Errors
    /// [`SealError::RandomSource`], [`SealError::NonContributoryKey`] for a low-order recipient
    /// key, [`SealError::InvalidPsk`] for bad PSK inputs.
    pub fn setup_sender<R: TryCryptoRng + ?Sized>(
        self,
        recipient: &SealingPublicKey,
        info: &[u8],
        mode: SenderMode<'_>,
        rng: &mut R,
    ) -> Result<([u8; ENC_LEN], SenderContext)> {
        let ephemeral = SealingKeyPair::generate(rng)?;
        self.setup_sender_with_ephemeral(recipient, info, mode, &ephemeral)
    }

    /// Like [`Suite::setup_sender`] with a caller-chosen ephemeral key pair. Only for known-answer
    /// tests and cross-implementation checks: reusing an ephemeral key across messages destroys
    /// the security HPKE provides.
    ///
    /// # Errors
    /// As [`Suite::setup_sender`], without the RNG failure.
    pub fn setup_sender_with_ephemeral(
        self,
        recipient: &SealingPublicKey,
        info: &[u8],
        mode: SenderMode<'_>,
        ephemeral: &SealingKeyPair,
    ) -> Result<([u8; ENC_LEN], SenderContext)> {
        let enc = ephemeral.public().0;
        let (mode_byte, sender, psk) = match mode {
            SenderMode::Base => (MODE_BASE, None, None),
            SenderMode::Psk(psk) => (MODE_PSK, None, Some(psk)),
            SenderMode::Auth(sender) => (MODE_AUTH, Some(sender), None),
            SenderMode::AuthPsk(sender, psk) => (MODE_AUTH_PSK, Some(sender), Some(psk)),
        };
        // Check PSK inputs before doing any public-key work.
        verify_psk_inputs(mode_byte, psk)?;
        let dh_e = ephemeral.diffie_hellman(recipient)?;
        let shared_secret = match sender {
            None => encap_secret(&dh_e, None, &enc, recipient, None)?,
            Some(sender) => {
                let dh_s = sender.diffie_hellman(recipient)?;
                encap_secret(&dh_e, Some(&dh_s), &enc, recipient, Some(&sender.public()))?
            }
        };
        let context = self.key_schedule(mode_byte, &shared_secret, info, psk)?;
        Ok((enc, SenderContext(context)))
    }

    /// Sets up a recipient context from the encapsulated key (`SetupBaseR` and friends).
    ///
    /// # Errors
    /// [`SealError::NonContributoryKey`] for a low-order `enc` or sender key,
    /// [`SealError::InvalidPsk`] for bad PSK inputs. A wrong key or wrong `info` is only noticed
    /// when [`RecipientContext::open`] fails.
    pub fn setup_recipient(
        self,
        enc: &[u8; ENC_LEN],
        recipient: &SealingKeyPair,
        info: &[u8],
        mode: RecipientMode<'_>,
    ) -> Result<RecipientContext> {
        let (mode_byte, sender, psk) = match mode {
            RecipientMode::Base => (MODE_BASE, None, None),
            RecipientMode::Psk(psk) => (MODE_PSK, None, Some(psk)),
            RecipientMode::Auth(sender) => (MODE_AUTH, Some(sender), None),
            RecipientMode::AuthPsk(sender, psk) => (MODE_AUTH_PSK, Some(sender), Some(psk)),
        };
        verify_psk_inputs(mode_byte, psk)?;
        let ephemeral = SealingPublicKey(*enc);
        let dh_e = recipient.diffie_hellman(&ephemeral)?;
        let recipient_public = recipient.public();
        let shared_secret = match sender {
            None => encap_secret(&dh_e, None, enc, &recipient_public, None)?,
            Some(sender) => {
                let dh_s = recipient.diffie_hellman(sender)?;
                encap_secret(&dh_e, Some(&dh_s), enc, &recipient_public, Some(sender))?
            }
        };
        let context = self.key_schedule(mode_byte, &shared_secret, info, psk)?;
        Ok(RecipientContext(context))
    }

    /// `KeySchedule<ROLE>` of RFC 9180 section 5.1.
    fn key_schedule(
        self,
        mode: u8,
        shared_secret: &[u8; NH],
        info: &[u8],
        psk: Option<Psk<'_>>,
    ) -> Result<Context> {
        let suite_id = self.suite_id();
        let (psk, psk_id) = psk.map_or((&[][..], &[][..]), |p| (p.psk, p.psk_id));

        let psk_id_hash = labeled_extract(&suite_id, b"", b"psk_id_hash", psk_id);
        let info_hash = labeled_extract(&suite_id, b"", b"info_hash", info);
        let mut context = [0u8; 1 + 2 * NH];
        context[0] = mode;
        context[1..=NH].copy_from_slice(psk_id_hash.as_slice());
        context[1 + NH..].copy_from_slice(info_hash.as_slice());

        let secret = labeled_extract(&suite_id, shared_secret, b"secret", psk);

        let cipher = match self.aead {
            Aead::Aes128Gcm => {
                let mut key = Zeroizing::new([0u8; 16]);
                labeled_expand(&suite_id, &secret, b"key", &context, key.as_mut_slice())?;
                AesGcmKey::aes128(&key).map_err(|_| SealError::CipherSetup)?
            }
            Aead::Aes256Gcm => {
                let mut key = Zeroizing::new([0u8; 32]);
                labeled_expand(&suite_id, &secret, b"key", &context, key.as_mut_slice())?;
                AesGcmKey::aes256(&key).map_err(|_| SealError::CipherSetup)?
            }
        };
        let mut base_nonce = Zeroizing::new([0u8; NONCE_LEN]);
        labeled_expand(
            &suite_id,
            &secret,
            b"base_nonce",
            &context,
            base_nonce.as_mut_slice(),
        )?;
        let mut exporter_secret = Zeroizing::new([0u8; NH]);
        labeled_expand(
            &suite_id,
            &secret,
            b"exp",
            &context,
            exporter_secret.as_mut_slice(),
        )?;

        Ok(Context {
            suite_id,
            cipher,
            base_nonce,
            seq: 0,
            exporter_secret,
        })
    }
}

/// `VerifyPSKInputs` plus the RFC's 32-byte minimum on the PSK itself.
fn verify_psk_inputs(mode: u8, psk: Option<Psk<'_>>) -> Result<()> {
    let wants_psk = matches!(mode, MODE_PSK | MODE_AUTH_PSK);
    match psk {
        None if wants_psk => Err(SealError::InvalidPsk("missing pre-shared key")),
        None => Ok(()),
        Some(_) if !wants_psk => Err(SealError::InvalidPsk(
            "pre-shared key given in a mode without one",
        )),
        Some(p) if p.psk.is_empty() || p.psk_id.is_empty() => Err(SealError::InvalidPsk(
            "psk and psk_id must both be non-empty",
        )),
        Some(p) if p.psk.len() < 32 => Err(SealError::InvalidPsk("psk shorter than 32 bytes")),
        Some(_) => Ok(()),
    }
}

/// `ExtractAndExpand` over the DH output(s) and the KEM context `enc || pkRm [|| pkSm]`.
fn encap_secret(
    dh_e: &[u8; KEY_LEN],
    dh_s: Option<&Zeroizing<[u8; KEY_LEN]>>,
    enc: &[u8; ENC_LEN],
    recipient: &SealingPublicKey,
    sender: Option<&SealingPublicKey>,
) -> Result<Zeroizing<[u8; NH]>> {
    let mut dh = Zeroizing::new([0u8; 2 * KEY_LEN]);
    dh[..KEY_LEN].copy_from_slice(dh_e);
    let dh_len = match dh_s {
        Some(dh_s) => {
            dh[KEY_LEN..].copy_from_slice(dh_s.as_slice());
            2 * KEY_LEN
        }
        None => KEY_LEN,
    };
    let mut kem_context = [0u8; 3 * KEY_LEN];
    kem_context[..KEY_LEN].copy_from_slice(enc);
    kem_context[KEY_LEN..2 * KEY_LEN].copy_from_slice(&recipient.0);
    let context_len = match sender {
        Some(sender) => {
            kem_context[2 * KEY_LEN..].copy_from_slice(&sender.0);
            3 * KEY_LEN
        }
        None => 2 * KEY_LEN,
    };
    let eae_prk = labeled_extract(&KEM_SUITE_ID, b"", b"eae_prk", &dh[..dh_len]);
    let mut shared_secret = Zeroizing::new([0u8; NH]);
    labeled_expand(
        &KEM_SUITE_ID,
        &eae_prk,
        b"shared_secret",
        &kem_context[..context_len],
        shared_secret.as_mut_slice(),
    )?;
    Ok(shared_secret)
}

/// `LabeledExtract(salt, label, ikm)`; the labelled input is streamed into HMAC piecewise.
fn labeled_extract(suite_id: &[u8], salt: &[u8], label: &[u8], ikm: &[u8]) -> Zeroizing<[u8; NH]> {
    let mut extract = HkdfExtract::<Sha256>::new(Some(salt));
    extract.input_ikm(VERSION_LABEL);
    extract.input_ikm(suite_id);
    extract.input_ikm(label);
    extract.input_ikm(ikm);
    let (prk, _) = extract.finalize();
    let mut out = Zeroizing::new([0u8; NH]);
    out.copy_from_slice(&prk);
    out
}

/// `LabeledExpand(prk, label, info, L)` with `L = out.len()`.
fn labeled_expand(
    suite_id: &[u8],
    prk: &[u8; NH],
    label: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let too_long = SealError::ExportTooLong {
        requested: out.len(),
        max: MAX_EXPORT_LEN,
    };
    let length = u16::try_from(out.len())
        .map_err(|_| too_long.clone())?
        .to_be_bytes();
    // `from_prk` only refuses keys shorter than the hash output, which a `[u8; 32]` cannot be.
    let hkdf = Hkdf::<Sha256>::from_prk(prk).map_err(|_| too_long.clone())?;
    hkdf.expand_multi_info(&[&length, VERSION_LABEL, suite_id, label, info], out)
        .map_err(|_| too_long)
}

/// State shared by both roles: the AEAD key, base nonce, sequence number and exporter secret.
struct Context {
    suite_id: [u8; 10],
    /// The AEAD key; AWS-LC wipes its expanded key when it is dropped.
    cipher: AesGcmKey,
    base_nonce: Zeroizing<[u8; NONCE_LEN]>,
    seq: u64,
    exporter_secret: Zeroizing<[u8; NH]>,
}

impl Context {
    /// `ComputeNonce(seq)`: the big-endian sequence number XORed into the low bytes.
    fn nonce(&self) -> [u8; NONCE_LEN] {
        let mut nonce = *self.base_nonce;
        for (n, s) in nonce[NONCE_LEN - 8..]
            .iter_mut()
            .zip(self.seq.to_be_bytes())
        {
            *n ^= s;
        }
        nonce
    }

    fn check_limit(&self) -> Result<()> {
        // The counter may not wrap: the last value is reserved so that incrementing never does.
        if self.seq == u64::MAX {
            return Err(SealError::MessageLimitReached);
        }
        Ok(())
    }

    fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.check_limit()?;
        let nonce = self.nonce();
        let mut out = Vec::with_capacity(plaintext.len() + TAG_LEN);
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .seal_in_place(nonce, aad, &mut out)
            .map_err(|_| SealError::TooLong {
                what: "HPKE plaintext",
                len: plaintext.len(),
                // AES-GCM's limit: 2^32 - 2 blocks of 16 bytes.
                max: usize::try_from((1u64 << 36) - 32).unwrap_or(usize::MAX),
            })?;
        out.extend_from_slice(&tag);
        self.seq += 1;
        Ok(out)
    }

    fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.check_limit()?;
        let body_len = ciphertext
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(SealError::HpkeOpen)?;
        let (body, tag) = ciphertext.split_at(body_len);
        let tag = <[u8; TAG_LEN]>::try_from(tag).map_err(|_| SealError::HpkeOpen)?;
        let nonce = self.nonce();
        let mut out = Zeroizing::new(body.to_vec());
        self.cipher
            .open_in_place(nonce, aad, &tag, &mut out)
            .map_err(|_| SealError::HpkeOpen)?;
        self.seq += 1;
        Ok(core::mem::take(&mut *out))
    }

    fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        if out.len() > MAX_EXPORT_LEN {
            return Err(SealError::ExportTooLong {
                requested: out.len(),
                max: MAX_EXPORT_LEN,
            });
        }
        labeled_expand(
            &self.suite_id,
            &self.exporter_secret,
            b"sec",
            exporter_context,
            out,
        )
    }
}

/// The sender's side of an HPKE context: encrypts a sequence of messages and exports secrets.
pub struct SenderContext(Context);

impl SenderContext {
    /// Encrypts the next message (`ContextS.Seal`); the output is the ciphertext followed by the
    /// 16-byte tag.
    ///
    /// # Errors
    /// [`SealError::MessageLimitReached`] once 2^64 - 1 messages were sealed.
    pub fn seal(&mut self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        self.0.seal(aad, plaintext)
    }

    /// Derives `out.len()` bytes bound to this context and `exporter_context` (`Context.Export`).
    ///
    /// # Errors
    /// [`SealError::ExportTooLong`] above 8160 bytes.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        self.0.export(exporter_context, out)
    }

    /// How many messages this context has sealed.
    #[must_use]
    pub fn sequence_number(&self) -> u64 {
        self.0.seq
    }
}

/// The recipient's side of an HPKE context: decrypts messages in order and exports secrets.
pub struct RecipientContext(Context);

impl RecipientContext {
    /// Decrypts the next message (`ContextR.Open`). The sequence number advances only on success.
    ///
    /// # Errors
    /// [`SealError::HpkeOpen`] if the ciphertext does not authenticate under this context and
    /// `aad`; [`SealError::MessageLimitReached`] after 2^64 - 1 messages.
    pub fn open(&mut self, aad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>> {
        self.0.open(aad, ciphertext)
    }

    /// Derives `out.len()` bytes bound to this context and `exporter_context` (`Context.Export`).
    ///
    /// # Errors
    /// [`SealError::ExportTooLong`] above 8160 bytes.
    pub fn export(&self, exporter_context: &[u8], out: &mut [u8]) -> Result<()> {
        self.0.export(exporter_context, out)
    }

    /// How many messages this context has opened.
    #[must_use]
    pub fn sequence_number(&self) -> u64 {
        self.0.seq
    }
}

impl core::fmt::Debug for SenderContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SenderContext")
            .field("seq", &self.0.seq)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for RecipientContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RecipientContext")
            .field("seq", &self.0.seq)
            .finish_non_exhaustive()
    }
}
