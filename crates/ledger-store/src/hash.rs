//! The ledger state hash a proxy anchors on chain (`save_state seqno state_hash`): a SHA-256 over
//! every account's settled totals in a fixed byte layout, so that the same books give the same
//! hash on any backend, machine or day.
//!
//! The layout is documented in the `store` module (`# State hash`).

use sha2::{Digest as _, Sha256};

/// Domain separation tag of the v1 layout.
pub const STATE_HASH_DOMAIN: &[u8] = b"cocoon-ledger-state/v1";

/// The hashed part of a client account.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct ClientEntry {
    pub(crate) id: String,
    pub(crate) state: u8,
    pub(crate) balance: u64,
    pub(crate) stake: u64,
    pub(crate) tokens_on_chain: u64,
    pub(crate) tokens_used: u64,
    pub(crate) shortfall_tokens: u64,
    pub(crate) deposited: u64,
    pub(crate) charged: u64,
    pub(crate) shortfall: u64,
    pub(crate) requests: u64,
}

/// The hashed part of a worker account.
#[derive(Clone, PartialEq, Eq, Debug)]
pub(crate) struct WorkerEntry {
    pub(crate) id: String,
    pub(crate) tokens_earned: u64,
    pub(crate) tokens_paid: u64,
    pub(crate) credited: u64,
    pub(crate) commission: u64,
    pub(crate) paid: u64,
    pub(crate) requests: u64,
}

/// Hashes the books in the documented layout. Sorts the accounts itself, so the order the
/// database returned them in (which depends on its collation) does not matter.
pub(crate) fn state_hash(
    seqno: u32,
    previous: &[u8; 32],
    price_per_token: u64,
    worker_fee_per_token: u64,
    clients: &mut [ClientEntry],
    workers: &mut [WorkerEntry],
) -> [u8; 32] {
    clients.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    workers.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    let mut h = Sha256::new();
    h.update(STATE_HASH_DOMAIN);
    h.update(seqno.to_be_bytes());
    h.update(previous);
    h.update(price_per_token.to_be_bytes());
    h.update(worker_fee_per_token.to_be_bytes());
    h.update((clients.len() as u64).to_be_bytes());
    for c in clients.iter() {
        text(&mut h, &c.id);
        h.update([c.state]);
        for v in [
            c.balance,
            c.stake,
            c.tokens_on_chain,
            c.tokens_used,
            c.shortfall_tokens,
            c.deposited,
            c.charged,
            c.shortfall,
            c.requests,
        ] {
            h.update(v.to_be_bytes());
        }
    }
    h.update((workers.len() as u64).to_be_bytes());
    for w in workers.iter() {
        text(&mut h, &w.id);
        for v in [
            w.tokens_earned,
            w.tokens_paid,
            w.credited,
            w.commission,
            w.paid,
            w.requests,
        ] {
            h.update(v.to_be_bytes());
        }
    }
    h.finalize().into()
}

fn text(h: &mut Sha256, s: &str) {
    // Ids are contract addresses (well under 4 GiB); saturate rather than wrap if one is not.
    let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
    h.update(len.to_be_bytes());
    h.update(s.as_bytes());
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn client(id: &str, tokens_used: u64) -> ClientEntry {
        ClientEntry {
            id: id.into(),
            state: 0,
            balance: 1000,
            stake: 100,
            tokens_on_chain: 0,
            tokens_used,
            shortfall_tokens: 0,
            deposited: 0,
            charged: tokens_used * 20,
            shortfall: 0,
            requests: 1,
        }
    }

    #[test]
    fn the_hash_ignores_row_order_and_sees_every_field() {
        let mut a = vec![client("b", 5), client("a", 7)];
        let mut b = vec![client("a", 7), client("b", 5)];
        let h1 = state_hash(1, &[0; 32], 20, 16, &mut a, &mut []);
        let h2 = state_hash(1, &[0; 32], 20, 16, &mut b, &mut []);
        assert_eq!(h1, h2);
        let mut c = vec![client("a", 7), client("b", 6)];
        assert_ne!(h1, state_hash(1, &[0; 32], 20, 16, &mut c, &mut []));
        assert_ne!(h1, state_hash(2, &[0; 32], 20, 16, &mut b, &mut []));
        assert_ne!(h1, state_hash(1, &[1; 32], 20, 16, &mut b, &mut []));
    }

    #[test]
    fn ids_are_length_prefixed() {
        // "ab" + "c" must not hash like "a" + "bc".
        let mut x = vec![client("ab", 1), client("c", 1)];
        let mut y = vec![client("a", 1), client("bc", 1)];
        assert_ne!(
            state_hash(1, &[0; 32], 20, 16, &mut x, &mut []),
            state_hash(1, &[0; 32], 20, 16, &mut y, &mut [])
        );
    }

    #[test]
    fn the_empty_ledger_has_a_fixed_hash() {
        // Pinned (and computed independently of this code) so that a change to the layout cannot
        // go unnoticed: anchors on chain depend on it.
        let h = state_hash(1, &[0; 32], 20, 16, &mut [], &mut []);
        let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "1d07258cbe3a38f96fb4fe2c3804b80eb0350ab3704310f53669a563081b99ef"
        );
    }
}
