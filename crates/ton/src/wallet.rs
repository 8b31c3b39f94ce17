//! Standard TON wallets V4R2 and V5R1: the accounts from which clients, workers and proxy
//! owners pay for top-ups, stakes and voucher submissions. From a public key this computes the
//! wallet's state init and address; from a signing key and a seqno it builds the signed
//! external message (`sendBoc`-ready) carrying one or more internal messages.
//!
//! The wallet code is the standard compiled code deployed on TON (code hashes `feb5ff68…` for
//! V4R2 and `20834b7b…` for V5R1, checked when loaded); only the code is embedded, every
//! message layout is built here.

use std::sync::OnceLock;

use ed25519_dalek::{Signer, SigningKey};

use crate::{
    address::{Address, BASECHAIN},
    cell::{Cell, CellBuilder},
    error::{Error, Result},
    message::{ExternalMessage, InternalMessage, SendMode, StateInit},
};

const V4R2_CODE_B64: &str = include_str!("wallet/v4r2.code.b64");
const V5R1_CODE_B64: &str = include_str!("wallet/v5r1.code.b64");
/// Representation hash of the V4R2 wallet code.
pub const V4R2_CODE_HASH: &str = "feb5ff6820e2ff0d9483e7e0d62c817d846789fb4ae580c878866d959dabd5c0";
/// Representation hash of the V5R1 wallet code.
pub const V5R1_CODE_HASH: &str = "20834b7b72b112147e1b2fb457b84e74d1a30f04f737d4f62a668e9552d2b72f";

fn load_code(b64: &str, hash: &str, name: &'static str) -> Result<Cell> {
    let code = Cell::from_boc_base64(b64).map_err(|_| Error::EmbeddedCode(name))?;
    if hex::encode(code.hash()) != hash {
        return Err(Error::EmbeddedCode(name));
    }
    Ok(code)
}

/// One internal message of a transfer, with its send mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMessage {
    /// The message.
    pub message: InternalMessage,
    /// How it pays fees; wallets usually use `PAY_FEES_SEPARATELY | IGNORE_ERRORS` (3).
    pub mode: SendMode,
}

impl OutgoingMessage {
    /// A message sent with mode 3 (fees paid separately, errors ignored).
    pub fn new(message: InternalMessage) -> Self {
        Self {
            message,
            mode: SendMode::PAY_FEES_SEPARATELY.with(SendMode::IGNORE_ERRORS),
        }
    }
}

/// What a wallet is asked to do in one signed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The wallet's current seqno (0 for a wallet not deployed yet).
    pub seqno: u32,
    /// Unix time after which the request is refused (replay window).
    pub valid_until: u32,
    /// The messages to send.
    pub messages: Vec<OutgoingMessage>,
}

/// A signed wallet request ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTransfer {
    /// The signed body.
    pub body: Cell,
    /// The external message (with the state init when the seqno is 0).
    pub message: ExternalMessage,
}

impl SignedTransfer {
    /// The BOC for `sendBoc`.
    pub fn to_boc(&self) -> Result<Vec<u8>> {
        self.message.to_boc()
    }

    /// The normalized hash (TEP-467) under which indexers find the transaction.
    pub fn normalized_hash(&self) -> Result<[u8; 32]> {
        self.message.normalized_hash()
    }
}

fn with_state_init(wallet: Address, init: StateInit, seqno: u32, body: Cell) -> ExternalMessage {
    ExternalMessage {
        dest: wallet,
        state_init: (seqno == 0).then_some(init),
        body,
    }
}

/// Wallet V4R2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalletV4R2 {
    public_key: [u8; 32],
    workchain: i8,
    wallet_id: u32,
}

impl WalletV4R2 {
    /// The default wallet id, plus the workchain (698983191 in the basechain).
    pub const DEFAULT_WALLET_ID: u32 = 698_983_191;
    /// Most messages in one request.
    pub const MAX_MESSAGES: usize = 4;

    /// The basechain wallet of `public_key` with the default wallet id.
    pub fn new(public_key: [u8; 32]) -> Self {
        Self {
            public_key,
            workchain: BASECHAIN,
            wallet_id: Self::DEFAULT_WALLET_ID,
        }
    }

    /// Another wallet of the same key (subwallet).
    pub fn with_wallet_id(mut self, wallet_id: u32) -> Self {
        self.wallet_id = wallet_id;
        self
    }

    /// The wallet id.
    pub fn wallet_id(&self) -> u32 {
        self.wallet_id
    }

    /// The embedded V4R2 code.
    pub fn code() -> Result<Cell> {
        static CODE: OnceLock<Result<Cell>> = OnceLock::new();
        CODE.get_or_init(|| load_code(V4R2_CODE_B64, V4R2_CODE_HASH, "wallet v4r2"))
            .clone()
    }

    /// Initial data: seqno 0, wallet id, public key, no plugins.
    pub fn initial_data(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_u32(0)?
            .store_u32(self.wallet_id)?
            .store_bytes(&self.public_key)?
            .store_bit(false)?;
        b.build()
    }

    /// Code and initial data.
    pub fn state_init(&self) -> Result<StateInit> {
        Ok(StateInit::new(Self::code()?, self.initial_data()?))
    }

    /// The wallet's address.
    pub fn address(&self) -> Result<Address> {
        self.state_init()?.address(self.workchain)
    }

    /// The seqno stored in a deployed V4R2 wallet's data cell (what `seqno` returns), for
    /// backends that read account data instead of running the get-method.
    pub fn seqno_from_data(data: &Cell) -> Result<u32> {
        data.parser().load_u32()
    }

    /// Signs a request: `signature | wallet_id | valid_until | seqno | op 0 | (mode, ^msg)*`.
    pub fn sign_transfer(&self, key: &SigningKey, transfer: &Transfer) -> Result<SignedTransfer> {
        if transfer.messages.len() > Self::MAX_MESSAGES {
            return Err(Error::TooManyMessages {
                wallet: "V4R2",
                max: Self::MAX_MESSAGES,
            });
        }
        let mut unsigned = CellBuilder::new();
        unsigned
            .store_u32(self.wallet_id)?
            .store_u32(transfer.valid_until)?
            .store_u32(transfer.seqno)?
            .store_u8(0)?; // simple send
        for m in &transfer.messages {
            unsigned
                .store_u8(m.mode.0)?
                .store_ref(m.message.to_cell()?)?;
        }
        let unsigned = unsigned.build()?;
        let signature = key.sign(&unsigned.hash()).to_bytes();
        let mut body = CellBuilder::new();
        body.store_bytes(&signature)?
            .store_cell_contents(&unsigned)?;
        let body = body.build()?;
        Ok(SignedTransfer {
            message: with_state_init(
                self.address()?,
                self.state_init()?,
                transfer.seqno,
                body.clone(),
            ),
            body,
        })
    }
}

/// Wallet V5R1 (W5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WalletV5R1 {
    public_key: [u8; 32],
    workchain: i8,
    wallet_id: u32,
}

impl WalletV5R1 {
    /// Global id of the mainnet.
    pub const MAINNET_GLOBAL_ID: i32 = -239;
    /// Global id of the testnet.
    pub const TESTNET_GLOBAL_ID: i32 = -3;
    /// Most actions in one request.
    pub const MAX_MESSAGES: usize = 255;
    const OP_SIGNED_EXTERNAL: u32 = 0x7369_676e;
    const OP_SEND_MSG: u32 = 0x0ec3_c86d;

    /// The wallet id of a client context: `global_id XOR (1 | workchain:8 | version 0:8 |
    /// subwallet:15)`.
    pub fn client_wallet_id(network_global_id: i32, workchain: i8, subwallet: u16) -> u32 {
        let context =
            (1u32 << 31) | (u32::from(workchain as u8) << 23) | u32::from(subwallet & 0x7fff);
        (network_global_id as u32) ^ context
    }

    /// The mainnet basechain wallet of `public_key`, subwallet 0.
    pub fn new(public_key: [u8; 32]) -> Self {
        Self {
            public_key,
            workchain: BASECHAIN,
            wallet_id: Self::client_wallet_id(Self::MAINNET_GLOBAL_ID, BASECHAIN, 0),
        }
    }

    /// The basechain wallet of `public_key` on a network, for a subwallet number.
    pub fn for_network(public_key: [u8; 32], network_global_id: i32, subwallet: u16) -> Self {
        Self {
            public_key,
            workchain: BASECHAIN,
            wallet_id: Self::client_wallet_id(network_global_id, BASECHAIN, subwallet),
        }
    }

    /// The wallet id.
    pub fn wallet_id(&self) -> u32 {
        self.wallet_id
    }

    /// The embedded V5R1 code.
    pub fn code() -> Result<Cell> {
        static CODE: OnceLock<Result<Cell>> = OnceLock::new();
        CODE.get_or_init(|| load_code(V5R1_CODE_B64, V5R1_CODE_HASH, "wallet v5r1"))
            .clone()
    }

    /// Initial data: signatures allowed, seqno 0, wallet id, public key, no extensions.
    pub fn initial_data(&self) -> Result<Cell> {
        let mut b = CellBuilder::new();
        b.store_bit(true)?
            .store_u32(0)?
            .store_u32(self.wallet_id)?
            .store_bytes(&self.public_key)?
            .store_bit(false)?;
        b.build()
    }

    /// Code and initial data.
    pub fn state_init(&self) -> Result<StateInit> {
        Ok(StateInit::new(Self::code()?, self.initial_data()?))
    }

    /// The wallet's address.
    pub fn address(&self) -> Result<Address> {
        self.state_init()?.address(self.workchain)
    }

    /// The seqno stored in a deployed V5R1 wallet's data cell (after the signature flag).
    pub fn seqno_from_data(data: &Cell) -> Result<u32> {
        let mut s = data.parser();
        s.load_bit()?;
        s.load_u32()
    }

    /// Signs an external request: `"sign" | wallet_id | valid_until | seqno | Maybe ^OutList |
    /// 0 (no extended actions) | signature`. The wallet refuses external requests whose
    /// actions lack `IGNORE_ERRORS`, so that bit is added to every mode.
    pub fn sign_transfer(&self, key: &SigningKey, transfer: &Transfer) -> Result<SignedTransfer> {
        if transfer.messages.len() > Self::MAX_MESSAGES {
            return Err(Error::TooManyMessages {
                wallet: "V5R1",
                max: Self::MAX_MESSAGES,
            });
        }
        // out_list: the first action is the deepest node
        let mut out_list: Option<Cell> = None;
        for m in &transfer.messages {
            let mut node = CellBuilder::new();
            node.store_ref(out_list.take().unwrap_or_default())?
                .store_u32(Self::OP_SEND_MSG)?
                .store_u8(m.mode.with(SendMode::IGNORE_ERRORS).0)?
                .store_ref(m.message.to_cell()?)?;
            out_list = Some(node.build()?);
        }
        let mut unsigned = CellBuilder::new();
        unsigned
            .store_u32(Self::OP_SIGNED_EXTERNAL)?
            .store_u32(self.wallet_id)?
            .store_u32(transfer.valid_until)?
            .store_u32(transfer.seqno)?
            .store_maybe_ref(out_list)?
            .store_bit(false)?; // no extended actions
        let unsigned_cell = unsigned.build()?;
        let signature = key.sign(&unsigned_cell.hash()).to_bytes();
        unsigned.store_bytes(&signature)?;
        let body = unsigned.build()?;
        Ok(SignedTransfer {
            message: with_state_init(
                self.address()?,
                self.state_init()?,
                transfer.seqno,
                body.clone(),
            ),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn codes_load() {
        WalletV4R2::code().unwrap();
        WalletV5R1::code().unwrap();
    }

    #[test]
    fn seqno_is_read_from_data() {
        let w4 = WalletV4R2::new([1; 32]);
        assert_eq!(
            WalletV4R2::seqno_from_data(&w4.initial_data().unwrap()).unwrap(),
            0
        );
        let mut b = CellBuilder::new();
        b.store_bit(true).unwrap().store_u32(41).unwrap();
        assert_eq!(
            WalletV5R1::seqno_from_data(&b.build().unwrap()).unwrap(),
            41
        );
        assert!(WalletV5R1::seqno_from_data(&Cell::empty()).is_err());
    }

    #[test]
    fn v5r1_default_wallet_id() {
        // the well-known id of mainnet basechain W5 wallets
        assert_eq!(WalletV5R1::new([0; 32]).wallet_id(), 2_147_483_409);
    }

    #[test]
    fn message_limits() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let w = WalletV4R2::new(key.verifying_key().to_bytes());
        let msg = OutgoingMessage::new(InternalMessage::new(
            Address::new(0, [2; 32]),
            1,
            Cell::empty(),
        ));
        let t = Transfer {
            seqno: 1,
            valid_until: 100,
            messages: vec![msg; 5],
        };
        assert!(matches!(
            w.sign_transfer(&key, &t),
            Err(Error::TooManyMessages { max: 4, .. })
        ));
    }

    #[test]
    fn state_init_only_with_seqno_zero() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let w = WalletV5R1::new(key.verifying_key().to_bytes());
        let mut t = Transfer {
            seqno: 0,
            valid_until: 100,
            messages: vec![],
        };
        assert!(
            w.sign_transfer(&key, &t)
                .unwrap()
                .message
                .state_init
                .is_some()
        );
        t.seqno = 1;
        assert!(
            w.sign_transfer(&key, &t)
                .unwrap()
                .message
                .state_init
                .is_none()
        );
    }
}
