//! Standard internal addresses (workchain + 256-bit account id) and their two text forms:
//! raw `0:<hex>` and the 48-character user-friendly base64 with bounceable/testnet flags and a
//! CRC16. Operators paste addresses into configs and wallets show the friendly form, so both
//! are parsed strictly and printed exactly as other TON tools print them.

use std::{fmt, str::FromStr};

use base64::{
    Engine,
    engine::general_purpose::{STANDARD, URL_SAFE},
};
use crc::{CRC_16_XMODEM, Crc};

use crate::error::{Error, Result};

const CRC16: Crc<u16> = Crc::<u16>::new(&CRC_16_XMODEM);
const TAG_BOUNCEABLE: u8 = 0x11;
const TAG_NON_BOUNCEABLE: u8 = 0x51;
const TAG_TESTNET: u8 = 0x80;

/// The basechain, where every contract of the network lives.
pub const BASECHAIN: i8 = 0;
/// The masterchain.
pub const MASTERCHAIN: i8 = -1;

/// A standard internal address (`addr_std` without anycast).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address {
    workchain: i8,
    hash: [u8; 32],
}

/// Flags carried by the user-friendly form of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FriendlyFlags {
    /// Whether senders should set the bounce flag (contracts: yes; fresh wallets: no).
    pub bounceable: bool,
    /// Whether the address is meant for the testnet.
    pub testnet: bool,
}

impl Default for FriendlyFlags {
    /// Bounceable, mainnet: the form used for contracts.
    fn default() -> Self {
        Self {
            bounceable: true,
            testnet: false,
        }
    }
}

impl Address {
    /// An address from its workchain and account id.
    pub const fn new(workchain: i8, hash: [u8; 32]) -> Self {
        Self { workchain, hash }
    }

    /// The workchain.
    pub const fn workchain(&self) -> i8 {
        self.workchain
    }

    /// The 256-bit account id (the hash of the initial `StateInit` for contracts).
    pub const fn hash(&self) -> &[u8; 32] {
        &self.hash
    }

    /// The raw form, `workchain:hex` (lower-case hex).
    pub fn to_raw(&self) -> String {
        format!("{}:{}", self.workchain, hex::encode(self.hash))
    }

    /// Parses the raw form `workchain:hex` (64 hex digits, either case).
    pub fn from_raw(text: &str) -> Result<Self> {
        let (wc, hash_hex) = text
            .split_once(':')
            .ok_or(Error::InvalidAddress("raw form needs workchain:hex"))?;
        let workchain: i8 = wc
            .parse()
            .map_err(|_| Error::InvalidAddress("workchain is not an 8-bit integer"))?;
        if hash_hex.len() != 64 {
            return Err(Error::InvalidAddress("account id needs 64 hex digits"));
        }
        let mut hash = [0u8; 32];
        hex::decode_to_slice(hash_hex, &mut hash).map_err(|_| Error::Hex)?;
        Ok(Self { workchain, hash })
    }

    /// The 36 bytes of the user-friendly form: tag, workchain, account id, CRC16 (big endian).
    fn friendly_bytes(&self, flags: FriendlyFlags) -> [u8; 36] {
        let mut bytes = [0u8; 36];
        let mut tag = if flags.bounceable {
            TAG_BOUNCEABLE
        } else {
            TAG_NON_BOUNCEABLE
        };
        if flags.testnet {
            tag |= TAG_TESTNET;
        }
        bytes[0] = tag;
        bytes[1] = self.workchain as u8;
        bytes[2..34].copy_from_slice(&self.hash);
        let crc = CRC16.checksum(&bytes[..34]);
        bytes[34..].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    /// The user-friendly form in the URL-safe alphabet (`-`, `_`), as wallets show it.
    pub fn to_friendly(&self, flags: FriendlyFlags) -> String {
        URL_SAFE.encode(self.friendly_bytes(flags))
    }

    /// The user-friendly form in the standard base64 alphabet (`+`, `/`).
    pub fn to_friendly_std(&self, flags: FriendlyFlags) -> String {
        STANDARD.encode(self.friendly_bytes(flags))
    }

    /// Parses a user-friendly address (48 characters, either alphabet) and returns its flags.
    pub fn from_friendly(text: &str) -> Result<(Self, FriendlyFlags)> {
        if text.len() != 48 {
            return Err(Error::InvalidAddress(
                "user-friendly form has 48 characters",
            ));
        }
        let url = text.contains(['-', '_']);
        let std = text.contains(['+', '/']);
        if url && std {
            return Err(Error::InvalidAddress("mixed base64 alphabets"));
        }
        let engine = if url { &URL_SAFE } else { &STANDARD };
        let decoded = engine.decode(text).map_err(|_| Error::Base64)?;
        let bytes: [u8; 36] = decoded
            .try_into()
            .map_err(|_| Error::InvalidAddress("user-friendly form holds 36 bytes"))?;
        let crc = u16::from_be_bytes([bytes[34], bytes[35]]);
        if crc != CRC16.checksum(&bytes[..34]) {
            return Err(Error::AddressChecksum);
        }
        let testnet = bytes[0] & TAG_TESTNET != 0;
        let bounceable = match bytes[0] & !TAG_TESTNET {
            TAG_BOUNCEABLE => true,
            TAG_NON_BOUNCEABLE => false,
            _ => return Err(Error::InvalidAddress("unknown flags byte")),
        };
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&bytes[2..34]);
        Ok((
            Self {
                workchain: bytes[1] as i8,
                hash,
            },
            FriendlyFlags {
                bounceable,
                testnet,
            },
        ))
    }
}

impl fmt::Display for Address {
    /// The user-friendly form, bounceable, mainnet, URL-safe: what explorers and wallets print.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_friendly(FriendlyFlags::default()))
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_raw())
    }
}

impl FromStr for Address {
    type Err = Error;

    /// Accepts the raw and both user-friendly forms (the flags are dropped).
    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.contains(':') {
            Self::from_raw(text)
        } else {
            Self::from_friendly(text).map(|(a, _)| a)
        }
    }
}

impl serde::Serialize for Address {
    /// Serialized in the raw form, which has no flags to get wrong.
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_raw())
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    /// Deserialized from any text form.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn friendly_roundtrip_all_flags() {
        let a = Address::new(0, [0x5a; 32]);
        for bounceable in [true, false] {
            for testnet in [true, false] {
                let flags = FriendlyFlags {
                    bounceable,
                    testnet,
                };
                for text in [a.to_friendly(flags), a.to_friendly_std(flags)] {
                    assert_eq!(text.len(), 48);
                    assert_eq!(Address::from_friendly(&text).unwrap(), (a, flags));
                    assert_eq!(text.parse::<Address>().unwrap(), a);
                }
            }
        }
    }

    #[test]
    fn raw_roundtrip_and_errors() {
        let a = Address::new(-1, [0xab; 32]);
        assert_eq!(Address::from_raw(&a.to_raw()).unwrap(), a);
        assert_eq!(Address::from_raw(&a.to_raw().to_uppercase()).unwrap(), a);
        assert!(Address::from_raw("0:abcd").is_err());
        assert!(Address::from_raw(&format!("300:{}", "00".repeat(32))).is_err());
        assert!("nonsense".parse::<Address>().is_err());
    }

    #[test]
    fn checksum_is_checked() {
        let text = Address::new(0, [1; 32]).to_friendly(FriendlyFlags::default());
        let mut bytes = URL_SAFE.decode(&text).unwrap();
        bytes[5] ^= 1;
        let tampered = URL_SAFE.encode(bytes);
        assert_eq!(
            Address::from_friendly(&tampered).unwrap_err(),
            Error::AddressChecksum
        );
    }

    #[test]
    fn serde_uses_raw_form_and_reads_any() {
        let a = Address::new(0, [7; 32]);
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, format!("\"{}\"", a.to_raw()));
        let friendly = format!("\"{a}\"");
        assert_eq!(serde_json::from_str::<Address>(&friendly).unwrap(), a);
    }
}
