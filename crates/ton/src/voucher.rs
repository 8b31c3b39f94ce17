//! Signed vouchers: the payment channel between a proxy and its clients and workers. The
//! proxy's key signs the representation hash of `op:32 | query_id:64 | tokens:64 | target
//! address`; the holder submits `op | query_id | send_excesses_to | signature:512 | ^payload`
//! to the target contract, which checks exactly what [`Voucher::check`] checks here (the
//! signature over the payload hash, the op, the target). Ledger anchors (`save_state`) are
//! signed the same way and live here too.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::{
    address::Address,
    cell::{Cell, CellBuilder, CellSlice},
    contracts::{ContractKind, op},
    error::{Error, Result},
};

/// What a voucher authorizes; the op of the message that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoucherKind {
    /// Charge a client up to a cumulative token count (`charge_signed`).
    ClientCharge,
    /// A client's final count: refund the rest and close (`grant_refund_signed`).
    ClientGrantRefund,
    /// Pay a worker up to a cumulative token count (`payout_signed`).
    WorkerPayout,
    /// A worker's final count: pay and close (`last_payout_signed`).
    WorkerLastPayout,
    /// Start closing the proxy contract (`close_signed`, tokens 0).
    ProxyClose,
    /// Complete the proxy contract's close (`close_complete_signed`, tokens 0).
    ProxyCloseComplete,
}

impl VoucherKind {
    /// All kinds.
    pub const ALL: [Self; 6] = [
        Self::ClientCharge,
        Self::ClientGrantRefund,
        Self::WorkerPayout,
        Self::WorkerLastPayout,
        Self::ProxyClose,
        Self::ProxyCloseComplete,
    ];

    /// The op code (of both the payload and the message).
    pub fn op(self) -> u32 {
        match self {
            Self::ClientCharge => op::CLIENT_CHARGE_SIGNED,
            Self::ClientGrantRefund => op::CLIENT_GRANT_REFUND_SIGNED,
            Self::WorkerPayout => op::WORKER_PAYOUT_SIGNED,
            Self::WorkerLastPayout => op::WORKER_LAST_PAYOUT_SIGNED,
            Self::ProxyClose => op::PROXY_CLOSE_SIGNED,
            Self::ProxyCloseComplete => op::PROXY_CLOSE_COMPLETE_SIGNED,
        }
    }

    /// The kind with this op code.
    pub fn from_op(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.op() == code)
    }

    /// The contract that accepts it.
    pub fn target_contract(self) -> ContractKind {
        match self {
            Self::ClientCharge | Self::ClientGrantRefund => ContractKind::Client,
            Self::WorkerPayout | Self::WorkerLastPayout => ContractKind::Worker,
            Self::ProxyClose | Self::ProxyCloseComplete => ContractKind::Proxy,
        }
    }

    /// Whether the contract accepts a count equal to the recorded one (final counts), not only
    /// a strictly greater one.
    pub fn accepts_equal_count(self) -> bool {
        matches!(self, Self::ClientGrantRefund | Self::WorkerLastPayout)
    }
}

/// The signed part of a voucher (`VoucherPayload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VoucherPayload {
    /// Op code; one of [`VoucherKind`]'s for a voucher the contracts accept.
    pub op: u32,
    /// Query id, echoed in the excess notification.
    pub query_id: u64,
    /// Cumulative adjusted tokens (0 for the close vouchers).
    pub tokens: u64,
    /// The contract the voucher is for.
    pub target: Address,
}

impl VoucherPayload {
    /// A payload of a known kind.
    pub fn new(kind: VoucherKind, query_id: u64, tokens: u64, target: Address) -> Self {
        Self {
            op: kind.op(),
            query_id,
            tokens,
            target,
        }
    }

    /// The kind, if the op is one the contracts accept.
    pub fn kind(&self) -> Option<VoucherKind> {
        VoucherKind::from_op(self.op)
    }

    /// The payload cell.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_u32(self.op)?
            .store_u64(self.query_id)?
            .store_u64(self.tokens)?
            .store_address(&self.target)?;
        b.build()
    }

    /// Parses a payload cell (all of it).
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            Ok(Self {
                op: s.load_u32()?,
                query_id: s.load_u64()?,
                tokens: s.load_u64()?,
                target: s.load_address()?,
            })
        })
    }

    /// The representation hash the proxy key signs.
    pub fn signing_hash(&self) -> Result<[u8; 32]> {
        Ok(self.to_cell()?.hash())
    }
}

/// Length of [`Voucher::to_bytes`]: op, query id, tokens, workchain, account id, signature.
pub const VOUCHER_BYTES: usize = 4 + 8 + 8 + 1 + 32 + 64;

/// A payload with the proxy key's signature over its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Voucher {
    payload: VoucherPayload,
    signature: [u8; 64],
}

fn verifying_key(public_key: &[u8; 32]) -> Result<VerifyingKey> {
    VerifyingKey::from_bytes(public_key).map_err(|_| Error::InvalidPublicKey)
}

impl Voucher {
    /// Signs `payload` with the proxy key.
    pub fn sign(payload: VoucherPayload, key: &SigningKey) -> Result<Self> {
        let hash = payload.signing_hash()?;
        Ok(Self {
            payload,
            signature: key.sign(&hash).to_bytes(),
        })
    }

    /// A voucher from its parts (not checked: call [`Voucher::verify`]).
    pub fn from_parts(payload: VoucherPayload, signature: [u8; 64]) -> Self {
        Self { payload, signature }
    }

    /// The signed payload.
    pub fn payload(&self) -> &VoucherPayload {
        &self.payload
    }

    /// The Ed25519 signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Checks the signature against the proxy's public key, as `CHKSIGNU` does on chain
    /// (strict verification: malleable encodings are refused).
    pub fn verify(&self, proxy_public_key: &[u8; 32]) -> Result<()> {
        let key = verifying_key(proxy_public_key)?;
        let hash = self.payload.signing_hash()?;
        key.verify_strict(&hash, &Signature::from_bytes(&self.signature))
            .map_err(|_| Error::BadSignature)
    }

    /// Everything the target contract checks before looking at the count: the signature,
    /// the kind and the target address.
    pub fn check(
        &self,
        proxy_public_key: &[u8; 32],
        kind: VoucherKind,
        target: &Address,
    ) -> Result<()> {
        self.verify(proxy_public_key)?;
        if self.payload.op != kind.op() {
            return Err(Error::UnexpectedOp {
                expected: kind.op(),
                found: self.payload.op,
            });
        }
        if self.payload.target != *target {
            return Err(Error::WrongTarget);
        }
        Ok(())
    }

    /// The message body that submits this voucher: op and query id from the payload, left-over
    /// gas to `send_excesses_to`.
    pub fn to_message_body(&self, send_excesses_to: &Address) -> Result<Cell> {
        SignedMessage {
            op: self.payload.op,
            query_id: self.payload.query_id,
            send_excesses_to: *send_excesses_to,
            voucher: *self,
        }
        .to_cell()
    }

    /// Compact fixed-size form for handing vouchers over off chain.
    pub fn to_bytes(&self) -> [u8; VOUCHER_BYTES] {
        let mut out = [0u8; VOUCHER_BYTES];
        out[0..4].copy_from_slice(&self.payload.op.to_be_bytes());
        out[4..12].copy_from_slice(&self.payload.query_id.to_be_bytes());
        out[12..20].copy_from_slice(&self.payload.tokens.to_be_bytes());
        out[20] = self.payload.target.workchain() as u8;
        out[21..53].copy_from_slice(self.payload.target.hash());
        out[53..].copy_from_slice(&self.signature);
        out
    }

    /// Parses [`Voucher::to_bytes`] (not checked: call [`Voucher::verify`]).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let b: &[u8; VOUCHER_BYTES] = bytes.try_into().map_err(|_| Error::InvalidField {
            field: "voucher length",
            value: bytes.len() as u64,
        })?;
        let mut op = [0u8; 4];
        op.copy_from_slice(&b[0..4]);
        let mut qid = [0u8; 8];
        qid.copy_from_slice(&b[4..12]);
        let mut tokens = [0u8; 8];
        tokens.copy_from_slice(&b[12..20]);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&b[21..53]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[53..]);
        Ok(Self {
            payload: VoucherPayload {
                op: u32::from_be_bytes(op),
                query_id: u64::from_be_bytes(qid),
                tokens: u64::from_be_bytes(tokens),
                target: Address::new(b[20] as i8, hash),
            },
            signature,
        })
    }
}

impl serde::Serialize for Voucher {
    /// Hex of [`Voucher::to_bytes`].
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(self.to_bytes()))
    }
}

impl<'de> serde::Deserialize<'de> for Voucher {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> core::result::Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = hex::decode(text.as_bytes()).map_err(serde::de::Error::custom)?;
        Self::from_bytes(&bytes).map_err(serde::de::Error::custom)
    }
}

/// A voucher as submitted on chain: `op | query_id | send_excesses_to | signature | ^payload`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedMessage {
    /// Op of the message (the contract also requires the payload's op to equal it).
    pub op: u32,
    /// Query id of the message (echoed in the excess notification).
    pub query_id: u64,
    /// Receives the left-over gas.
    pub send_excesses_to: Address,
    /// The voucher.
    pub voucher: Voucher,
}

impl SignedMessage {
    /// Writes the body after the op code has been written.
    pub(crate) fn store_after_op(&self, b: &mut CellBuilder) -> Result<()> {
        b.store_u64(self.query_id)?
            .store_address(&self.send_excesses_to)?
            .store_bytes(&self.voucher.signature)?
            .store_ref(self.voucher.payload.to_cell()?)?;
        Ok(())
    }

    /// Reads the body after the op code has been read.
    pub(crate) fn load_after_op(op: u32, s: &mut CellSlice<'_>) -> Result<Self> {
        let query_id = s.load_u64()?;
        let send_excesses_to = s.load_address()?;
        let signature = s.load_array::<64>()?;
        let payload = VoucherPayload::from_cell(&s.load_ref()?)?;
        Ok(Self {
            op,
            query_id,
            send_excesses_to,
            voucher: Voucher { payload, signature },
        })
    }

    /// The message body.
    pub fn to_cell(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_u32(self.op)?;
        self.store_after_op(&mut b)?;
        b.build()
    }

    /// Parses a signed message body of any voucher op.
    pub fn from_cell(cell: &Cell) -> Result<Self> {
        cell.parse_fully(|s| {
            let code = s.load_u32()?;
            if VoucherKind::from_op(code).is_none() {
                return Err(Error::UnknownOp(code));
            }
            Self::load_after_op(code, s)
        })
    }
}

/// A ledger anchor: the proxy commits to its ledger state `state_hash` at `seqno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LedgerAnchor {
    /// Strictly increasing anchor number.
    pub seqno: u32,
    /// Hash of the proxy's ledger at that point.
    pub state_hash: [u8; 32],
}

impl LedgerAnchor {
    /// What the proxy key signs so that anyone may submit the anchor:
    /// `save_state#53109c0f proxy_contract:address seqno:uint32 state_hash:uint256`.
    pub fn signing_cell(&self, proxy_contract: &Address) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_u32(op::PROXY_SAVE_STATE)?
            .store_address(proxy_contract)?
            .store_u32(self.seqno)?
            .store_bytes(&self.state_hash)?;
        b.build()
    }

    /// Signs the anchor for `proxy_contract` with the proxy key.
    pub fn sign(&self, proxy_contract: &Address, key: &SigningKey) -> Result<[u8; 64]> {
        let hash = self.signing_cell(proxy_contract)?.hash();
        Ok(key.sign(&hash).to_bytes())
    }

    /// Checks an anchor signature as the proxy contract does.
    pub fn verify(
        &self,
        proxy_contract: &Address,
        proxy_public_key: &[u8; 32],
        signature: &[u8; 64],
    ) -> Result<()> {
        let key = verifying_key(proxy_public_key)?;
        let hash = self.signing_cell(proxy_contract)?.hash();
        key.verify_strict(&hash, &Signature::from_bytes(signature))
            .map_err(|_| Error::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7; 32])
    }

    fn target() -> Address {
        Address::new(0, [0x42; 32])
    }

    #[test]
    fn sign_verify_check() {
        let k = key();
        let pk = k.verifying_key().to_bytes();
        let v = Voucher::sign(
            VoucherPayload::new(VoucherKind::ClientCharge, 1, 1000, target()),
            &k,
        )
        .unwrap();
        v.verify(&pk).unwrap();
        v.check(&pk, VoucherKind::ClientCharge, &target()).unwrap();
        assert_eq!(
            v.check(&pk, VoucherKind::ClientCharge, &Address::new(0, [1; 32])),
            Err(Error::WrongTarget)
        );
        assert!(matches!(
            v.check(&pk, VoucherKind::WorkerPayout, &target()),
            Err(Error::UnexpectedOp { .. })
        ));
        let other = SigningKey::from_bytes(&[9; 32]).verifying_key().to_bytes();
        assert_eq!(v.verify(&other), Err(Error::BadSignature));
    }

    #[test]
    fn tampered_vouchers_fail() {
        let k = key();
        let pk = k.verifying_key().to_bytes();
        let v = Voucher::sign(
            VoucherPayload::new(VoucherKind::WorkerPayout, 3, 50, target()),
            &k,
        )
        .unwrap();
        let mut bytes = v.to_bytes();
        bytes[19] ^= 1; // tokens
        assert_eq!(
            Voucher::from_bytes(&bytes).unwrap().verify(&pk),
            Err(Error::BadSignature)
        );
    }

    #[test]
    fn bytes_message_and_serde_roundtrip() {
        let v = Voucher::sign(
            VoucherPayload::new(VoucherKind::ClientGrantRefund, u64::MAX, 9, target()),
            &key(),
        )
        .unwrap();
        assert_eq!(Voucher::from_bytes(&v.to_bytes()).unwrap(), v);
        assert!(Voucher::from_bytes(&v.to_bytes()[1..]).is_err());
        let excess = Address::new(0, [5; 32]);
        let body = v.to_message_body(&excess).unwrap();
        let m = SignedMessage::from_cell(&body).unwrap();
        assert_eq!(m.voucher, v);
        assert_eq!(m.send_excesses_to, excess);
        assert_eq!(m.op, VoucherKind::ClientGrantRefund.op());
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<Voucher>(&json).unwrap(), v);
    }

    #[test]
    fn anchor_signature() {
        let k = key();
        let pk = k.verifying_key().to_bytes();
        let proxy = Address::new(0, [3; 32]);
        let a = LedgerAnchor {
            seqno: 5,
            state_hash: [9; 32],
        };
        let sig = a.sign(&proxy, &k).unwrap();
        a.verify(&proxy, &pk, &sig).unwrap();
        assert_eq!(
            a.verify(&Address::new(0, [4; 32]), &pk, &sig),
            Err(Error::BadSignature)
        );
    }
}
