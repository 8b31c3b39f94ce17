//! Who may spend a client account: the one identity every spelling of an owner address
//! reduces to, and the rules that decide a client's authorization. No I/O and no clock of its
//! own: the connect and authorize handlers in `clients.rs` read the chain and pass the time.
//!
//! The rules:
//!
//! 1. An account belongs to an owner, and an owner is its canonical address (`0:<hex>`,
//!    [`Address::to_raw`]). The raw form in either hex case, both user-friendly forms and
//!    surrounding spaces all reach the same account, the same secret and the same limit.
//!    With a chain, an owner that is not a TON address is refused at connect. Without one
//!    (local mode, tests), a plain local name (letters, digits, `-_.@`) is its own identity;
//!    anything else that is no address is refused.
//! 2. An owner with a short-auth secret at this proxy authorizes only with that secret.
//! 3. Long authorization proves control of the owner wallet: on a chain, the owner's client
//!    contract must have logged `register` with the nonce this session was given, naming the
//!    owner, before the session's registration deadline. Until it is seen the answer is
//!    "not yet registered" ([`client::NOT_YET_REGISTERED_ERROR_CODE`]) and the client may ask
//!    again; the chain is read at most once per [`LOOKUP_INTERVAL`] per session. Without a
//!    chain, only a proxy configured for emulated registration (local mode) accepts long
//!    authorization, at once; any proxy with a chain requires the proof, whatever else it is
//!    configured for.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use cocoon_protocol::messages::client;
use cocoon_ton::Address;
use cocoon_ton::messages::ClientRegisteredLog;
use sha2::{Digest, Sha256};

/// Shortest time between two chain reads for one session's registration: a client asking
/// faster is told "not yet registered" without a read, so a session cannot make the proxy
/// spend its chain API quota.
pub(crate) const LOOKUP_INTERVAL: Duration = Duration::from_millis(500);

/// Longest local owner name (without a chain).
const MAX_LOCAL_NAME: usize = 128;

/// How this proxy lets a client prove it speaks for its owner in long authorization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistrationProof {
    /// The client contract's `register` log on the proxy's chain.
    OnChain,
    /// Local mode without a chain: every long authorization is accepted (emulated
    /// registration). Never with a chain.
    Emulated,
    /// Neither: only short authorization works.
    Unavailable,
}

impl RegistrationProof {
    /// The proof a proxy asks for: its chain's whenever it has one.
    pub(crate) fn of(has_chain: bool, emulated_registration: bool) -> Self {
        match (has_chain, emulated_registration) {
            (true, _) => Self::OnChain,
            (false, true) => Self::Emulated,
            (false, false) => Self::Unavailable,
        }
    }
}

/// A client owner as the proxy identifies it: its account key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The canonical text: the raw address, or a local name.
    pub(crate) id: String,
    /// The address, when the owner is one.
    pub(crate) address: Option<Address>,
}

/// Why an owner address was refused at connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnerRefusal {
    /// Empty (or only spaces).
    Empty,
    /// Not a TON address, and this proxy settles on a chain.
    NotAnAddress {
        /// The text as sent.
        text: String,
        /// What the address parser said.
        detail: String,
    },
    /// Not a TON address and not a plain local name.
    BadLocalName {
        /// The text as sent.
        text: String,
        /// What the address parser said.
        detail: String,
    },
}

impl fmt::Display for OwnerRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("the owner address is empty"),
            Self::NotAnAddress { text, detail } => write!(
                f,
                "the owner address {text:?} is not a TON address ({detail}); give the raw \
                 (0:<hex>) or user-friendly form"
            ),
            Self::BadLocalName { text, detail } => write!(
                f,
                "the owner {text:?} is neither a TON address ({detail}) nor a local name (up \
                 to {MAX_LOCAL_NAME} letters, digits and -_.@)"
            ),
        }
    }
}

/// The owner `text` names: every spelling of one address gives the same [`Owner`].
pub(crate) fn canonical_owner(text: &str, on_chain: bool) -> Result<Owner, OwnerRefusal> {
    if text.trim().is_empty() {
        return Err(OwnerRefusal::Empty);
    }
    let detail = match text.parse::<Address>() {
        Ok(address) => {
            return Ok(Owner {
                id: address.to_raw(),
                address: Some(address),
            });
        }
        Err(e) => e.to_string(),
    };
    let text = text.to_owned();
    if on_chain {
        return Err(OwnerRefusal::NotAnAddress { text, detail });
    }
    let plain = text.len() <= MAX_LOCAL_NAME
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b));
    if !plain {
        return Err(OwnerRefusal::BadLocalName { text, detail });
    }
    Ok(Owner {
        id: text,
        address: None,
    })
}

/// The short-auth secret hash configured for `owner`, whatever spelling the configuration
/// used for it (`client_secret_hashes`; [`check_secret_owners`] made sure no two spellings
/// of one owner are there).
pub(crate) fn secret_hash_for(
    hashes: &BTreeMap<String, String>,
    owner: &Owner,
) -> Option<[u8; 32]> {
    hashes
        .iter()
        .find(|(name, _)| canonical_owner(name, false).is_ok_and(|o| o.id == owner.id))
        .and_then(|(_, hash)| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(hash, &mut out).ok()?;
            Some(out)
        })
}

/// Checks the owners of `client_secret_hashes`: each is an address or a local name, and no
/// owner appears twice under two spellings. Answers why not.
pub(crate) fn check_secret_owners(hashes: &BTreeMap<String, String>) -> Result<(), SecretOwners> {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for name in hashes.keys() {
        let owner = canonical_owner(name, false).map_err(SecretOwners::Refused)?;
        if let Some(first) = seen.insert(owner.id.clone(), name) {
            return Err(SecretOwners::Twice {
                owner: owner.id,
                first: first.to_owned(),
                second: name.clone(),
            });
        }
    }
    Ok(())
}

/// Why the owners of `client_secret_hashes` are not acceptable.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SecretOwners {
    /// An owner is neither an address nor a local name.
    #[error("client_secret_hashes: {0}")]
    Refused(OwnerRefusal),
    /// One owner under two spellings.
    #[error("client_secret_hashes names the owner {owner} twice ({first:?} and {second:?})")]
    Twice {
        owner: String,
        first: String,
        second: String,
    },
}

/// Why a client was not authorized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthRefusal {
    /// No `client.connectToProxy` on this session yet.
    NotConnected,
    /// Long authorization for an owner that has a short-auth secret.
    ShortAuthRequired,
    /// Short authorization for an owner without a secret at this proxy.
    NoSecret,
    /// The secret's hash is not the configured one.
    WrongSecret,
    /// Long authorization, and this proxy has neither a chain nor emulated registration.
    RegistrationUnavailable,
    /// The session's nonce is not (yet) registered by the owner's client contract.
    NotYetRegistered {
        /// Whether the chain was read for this answer (false: asked again too soon).
        looked: bool,
    },
    /// The registration deadline of the session's nonce passed.
    Expired {
        /// The deadline, counted from connect.
        timeout: Duration,
    },
}

impl AuthRefusal {
    /// The `error_code` of `client.authorizationWithProxyFailed`.
    pub(crate) fn code(&self) -> i32 {
        match self {
            Self::ShortAuthRequired => client::SHORT_AUTH_REQUIRED_ERROR_CODE,
            Self::NotYetRegistered { .. } => client::NOT_YET_REGISTERED_ERROR_CODE,
            Self::Expired { .. } => client::REGISTRATION_EXPIRED_ERROR_CODE,
            Self::NotConnected
            | Self::NoSecret
            | Self::WrongSecret
            | Self::RegistrationUnavailable => 401,
        }
    }
}

impl fmt::Display for AuthRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str("connectToProxy first"),
            Self::ShortAuthRequired => f.write_str(
                "this owner has a short-auth secret at this proxy: authorize with the secret",
            ),
            Self::NoSecret => f.write_str(
                "this owner has no short-auth secret at this proxy: use long authorization",
            ),
            Self::WrongSecret => f.write_str("secret does not match the registered hash"),
            Self::RegistrationUnavailable => {
                f.write_str("on-chain registration is not available on this proxy")
            }
            Self::NotYetRegistered { looked: true } => f.write_str(
                "not yet registered: the client contract has not logged `register` with this \
                 session's nonce; send it from the owner wallet and authorize again",
            ),
            Self::NotYetRegistered { looked: false } => f.write_str(
                "not yet registered (asked again too soon; the chain was not read again)",
            ),
            Self::Expired { timeout } => write!(
                f,
                "the nonce was not registered within {} s of connecting: connect again",
                timeout.as_secs()
            ),
        }
    }
}

/// What long authorization needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LongStep {
    /// Authorized: emulated registration.
    Authorized,
    /// Read the client contract's logs and pass them to [`Challenge::check_logs`].
    ReadLogs,
    /// Refused.
    Refused(AuthRefusal),
}

/// What a session was asked to prove at connect, and how its proof goes.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    /// Whose account the session claims.
    pub(crate) owner: Owner,
    /// The nonce handed out (the protocol's `long`; the contract logs it as `uint64`).
    pub(crate) nonce: u64,
    /// The owner's short-auth secret hash, when it has one.
    pub(crate) secret_hash: Option<[u8; 32]>,
    issued_at: Instant,
    timeout: Duration,
    last_lookup: Option<Instant>,
}

impl Challenge {
    /// The challenge of a session that connected at `now`; its nonce must be registered
    /// within `timeout`.
    pub(crate) fn new(
        owner: Owner,
        nonce: u64,
        secret_hash: Option<[u8; 32]>,
        now: Instant,
        timeout: Duration,
    ) -> Self {
        Self {
            owner,
            nonce,
            secret_hash,
            issued_at: now,
            timeout,
            last_lookup: None,
        }
    }

    /// Short authorization with `secret`.
    pub(crate) fn short(&self, secret: &[u8]) -> Result<(), AuthRefusal> {
        let expected = self.secret_hash.ok_or(AuthRefusal::NoSecret)?;
        if Sha256::digest(secret).as_slice() == expected {
            Ok(())
        } else {
            Err(AuthRefusal::WrongSecret)
        }
    }

    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.issued_at) > self.timeout
    }

    /// The first step of long authorization at `now` under `proof`.
    pub(crate) fn long(&mut self, proof: RegistrationProof, now: Instant) -> LongStep {
        if self.secret_hash.is_some() {
            return LongStep::Refused(AuthRefusal::ShortAuthRequired);
        }
        match proof {
            RegistrationProof::Unavailable => {
                LongStep::Refused(AuthRefusal::RegistrationUnavailable)
            }
            RegistrationProof::Emulated => LongStep::Authorized,
            RegistrationProof::OnChain if self.owner.address.is_none() => {
                // canonical_owner refuses names with a chain; kept closed all the same
                LongStep::Refused(AuthRefusal::RegistrationUnavailable)
            }
            RegistrationProof::OnChain if self.expired(now) => {
                LongStep::Refused(AuthRefusal::Expired {
                    timeout: self.timeout,
                })
            }
            RegistrationProof::OnChain => {
                if self
                    .last_lookup
                    .is_some_and(|at| now.saturating_duration_since(at) < LOOKUP_INTERVAL)
                {
                    return LongStep::Refused(AuthRefusal::NotYetRegistered { looked: false });
                }
                self.last_lookup = Some(now);
                LongStep::ReadLogs
            }
        }
    }

    /// The second step of long authorization: the `register` logs of the owner's client
    /// contract, read at `now` (bodies that are no register log are passed over by the
    /// caller). Authorized when one carries this session's nonce and names its owner.
    pub(crate) fn check_logs(
        &self,
        logs: impl IntoIterator<Item = ClientRegisteredLog>,
        now: Instant,
    ) -> Result<(), AuthRefusal> {
        let registered = logs
            .into_iter()
            .any(|log| log.nonce == self.nonce && Some(log.owner) == self.owner.address);
        if registered && !self.expired(now) {
            Ok(())
        } else if self.expired(now) {
            Err(AuthRefusal::Expired {
                timeout: self.timeout,
            })
        } else {
            Err(AuthRefusal::NotYetRegistered { looked: true })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use cocoon_ton::FriendlyFlags;

    fn address() -> Address {
        Address::new(0, [0xa7; 32])
    }

    fn spellings(a: &Address) -> Vec<String> {
        let raw = a.to_raw();
        let mut all = vec![
            raw.clone(),
            raw.to_uppercase(),
            format!(" {}", raw.to_uppercase()),
            format!("{raw}\n"),
        ];
        for bounceable in [true, false] {
            for testnet in [true, false] {
                let flags = FriendlyFlags {
                    bounceable,
                    testnet,
                };
                all.push(a.to_friendly(flags));
                all.push(a.to_friendly_std(flags));
                all.push(format!("  {}  ", a.to_friendly(flags)));
            }
        }
        all
    }

    #[test]
    fn every_spelling_of_an_address_is_one_owner() {
        let a = address();
        for on_chain in [true, false] {
            for text in spellings(&a) {
                let owner = canonical_owner(&text, on_chain).unwrap();
                assert_eq!(owner.id, a.to_raw(), "{text:?}");
                assert_eq!(owner.address, Some(a));
            }
        }
    }

    #[test]
    fn names_only_without_a_chain() {
        let local = canonical_owner("e2e-client", false).unwrap();
        assert_eq!((local.id.as_str(), local.address), ("e2e-client", None));
        assert!(matches!(
            canonical_owner("e2e-client", true),
            Err(OwnerRefusal::NotAnAddress { .. })
        ));
        for bad in [
            " e2e-client",
            "a b",
            "0:abcd",
            "x".repeat(129).as_str(),
            "é",
        ] {
            assert!(
                matches!(
                    canonical_owner(bad, false),
                    Err(OwnerRefusal::BadLocalName { .. })
                ),
                "{bad:?}"
            );
        }
        for empty in ["", "   "] {
            assert_eq!(canonical_owner(empty, false), Err(OwnerRefusal::Empty));
        }
        // a broken address is refused, never taken as a name, with a chain
        let mut friendly = address().to_friendly(FriendlyFlags::default());
        friendly.replace_range(5..6, if &friendly[5..6] == "A" { "B" } else { "A" });
        assert!(canonical_owner(&friendly, true).is_err());
    }

    #[test]
    fn secrets_are_found_under_any_spelling_and_configured_once() {
        let a = address();
        let hash = hex::encode([3u8; 32]);
        let hashes: BTreeMap<String, String> =
            [(a.to_friendly(FriendlyFlags::default()), hash.clone())].into();
        for text in spellings(&a) {
            let owner = canonical_owner(&text, true).unwrap();
            assert_eq!(
                secret_hash_for(&hashes, &owner),
                Some([3u8; 32]),
                "{text:?}"
            );
        }
        let other = canonical_owner(&Address::new(0, [1; 32]).to_raw(), true).unwrap();
        assert_eq!(secret_hash_for(&hashes, &other), None);
        check_secret_owners(&hashes).unwrap();

        let twice: BTreeMap<String, String> = [
            (a.to_raw(), hash.clone()),
            (a.to_raw().to_uppercase(), hash),
        ]
        .into();
        let why = check_secret_owners(&twice).unwrap_err().to_string();
        assert!(why.contains("twice"), "{why}");
        let bad: BTreeMap<String, String> = [("a b".to_owned(), hex::encode([0; 32]))].into();
        assert!(check_secret_owners(&bad).is_err());
    }

    fn challenge(secret: Option<&[u8]>, now: Instant) -> Challenge {
        let owner = canonical_owner(&address().to_raw(), true).unwrap();
        Challenge::new(
            owner,
            0xfeed_beef,
            secret.map(|s| Sha256::digest(s).into()),
            now,
            Duration::from_secs(60),
        )
    }

    fn log(nonce: u64, owner: Address) -> ClientRegisteredLog {
        ClientRegisteredLog { nonce, owner }
    }

    #[test]
    fn long_auth_on_chain_needs_the_sessions_registered_nonce() {
        let t0 = Instant::now();
        let mut c = challenge(None, t0);
        assert_eq!(c.long(RegistrationProof::OnChain, t0), LongStep::ReadLogs);
        // nothing logged, another nonce, another owner: not yet registered
        for logs in [
            vec![],
            vec![log(1, address())],
            vec![log(0xfeed_beef, Address::new(0, [9; 32]))],
        ] {
            assert_eq!(
                c.check_logs(logs, t0),
                Err(AuthRefusal::NotYetRegistered { looked: true })
            );
        }
        // asked again at once: answered without reading the chain
        let soon = t0 + LOOKUP_INTERVAL / 2;
        let step = c.long(RegistrationProof::OnChain, soon);
        assert_eq!(
            step,
            LongStep::Refused(AuthRefusal::NotYetRegistered { looked: false })
        );
        let later = t0 + LOOKUP_INTERVAL;
        assert_eq!(
            c.long(RegistrationProof::OnChain, later),
            LongStep::ReadLogs
        );
        assert_eq!(
            c.check_logs([log(1, address()), log(0xfeed_beef, address())], later),
            Ok(())
        );
        assert_eq!(
            AuthRefusal::NotYetRegistered { looked: true }.code(),
            client::NOT_YET_REGISTERED_ERROR_CODE
        );
    }

    #[test]
    fn registration_has_a_deadline() {
        let t0 = Instant::now();
        let mut c = challenge(None, t0);
        let late = t0 + Duration::from_secs(61);
        let expired = AuthRefusal::Expired {
            timeout: Duration::from_secs(60),
        };
        assert_eq!(
            c.long(RegistrationProof::OnChain, late),
            LongStep::Refused(expired.clone())
        );
        // a log seen only after the deadline does not count either
        assert_eq!(
            c.check_logs([log(0xfeed_beef, address())], late),
            Err(expired.clone())
        );
        assert_eq!(expired.code(), client::REGISTRATION_EXPIRED_ERROR_CODE);
    }

    #[test]
    fn modes_decide_long_auth_and_a_chain_always_needs_proof() {
        let t0 = Instant::now();
        assert_eq!(
            RegistrationProof::of(true, true),
            RegistrationProof::OnChain
        );
        assert_eq!(
            RegistrationProof::of(false, true),
            RegistrationProof::Emulated
        );
        assert_eq!(
            RegistrationProof::of(false, false),
            RegistrationProof::Unavailable
        );
        let mut c = challenge(None, t0);
        assert_eq!(
            c.long(RegistrationProof::Emulated, t0),
            LongStep::Authorized
        );
        assert_eq!(
            c.long(RegistrationProof::Unavailable, t0),
            LongStep::Refused(AuthRefusal::RegistrationUnavailable)
        );
        // a local name never authorizes long on a chain
        let mut named = Challenge::new(
            canonical_owner("local", false).unwrap(),
            1,
            None,
            t0,
            Duration::from_secs(60),
        );
        assert_eq!(
            named.long(RegistrationProof::OnChain, t0),
            LongStep::Refused(AuthRefusal::RegistrationUnavailable)
        );
    }

    #[test]
    fn an_owner_with_a_secret_authorizes_only_with_it() {
        let t0 = Instant::now();
        let secret = b"0123456789abcdef-correct";
        let mut c = challenge(Some(secret), t0);
        for proof in [
            RegistrationProof::OnChain,
            RegistrationProof::Emulated,
            RegistrationProof::Unavailable,
        ] {
            let step = c.long(proof, t0);
            assert_eq!(step, LongStep::Refused(AuthRefusal::ShortAuthRequired));
        }
        assert_eq!(
            AuthRefusal::ShortAuthRequired.code(),
            client::SHORT_AUTH_REQUIRED_ERROR_CODE
        );
        assert_eq!(c.short(secret), Ok(()));
        assert_eq!(c.short(b"wrong"), Err(AuthRefusal::WrongSecret));
        let without = challenge(None, t0);
        assert_eq!(without.short(secret), Err(AuthRefusal::NoSecret));
    }
}
