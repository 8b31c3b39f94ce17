//! One client request's life at the proxy: the rules as a sans-IO state machine
//! ([`machine`]), the byte-bounded queue that carries a worker's answers to it ([`queue`]), and
//! the tokio task that drives it ([`driver`]).

mod driver;
pub(crate) mod machine;
mod queue;

use bytes::Bytes;
use cocoon_market::{ClientId, RequestId};
use cocoon_net::Connection;
use cocoon_protocol::messages::client;
use cocoon_protocol::tl::{Int256, TlConstructor};
use sha2::{Digest, Sha256};

pub(crate) use driver::run;
pub(crate) use queue::RouteSender;

/// Domain separation of [`ledger_request_id`].
const LEDGER_REQUEST_DOMAIN: &[u8] = b"cocoon-proxy/ledger-request/v1";

/// The id the ledger books a client's request under: SHA-256 over a domain tag, the client's
/// account and the client's own request id.
///
/// A client draws its request ids itself and another client may draw (or copy) the same one, so
/// the raw id cannot key the books; scoped to the account it is stable for the whole life of the
/// request (every attempt on every worker, every retried charge) and distinct between clients.
pub(crate) fn ledger_request_id(client: &ClientId, request_id: Int256) -> RequestId {
    let mut h = Sha256::new();
    h.update(LEDGER_REQUEST_DOMAIN);
    h.update((client.0.len() as u64).to_be_bytes());
    h.update(client.0.as_bytes());
    h.update(request_id.0);
    let mut id = [0u8; 32];
    id.copy_from_slice(&h.finalize());
    RequestId(id)
}

/// Sends a final error for a request that never reached a worker.
pub(crate) async fn refuse(conn: &Connection, request_id: Int256, code: i32, message: &str) {
    let msg = client::QueryAnswerErrorEx {
        request_id,
        error_code: code,
        error: message.to_owned(),
        flags: 0,
        final_info: Some(client::QueryFinalInfo::default()),
    };
    let _ = conn.send_packet(Bytes::from(msg.to_boxed_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_ids_are_stable_and_scoped_to_the_client() {
        let id = Int256([7; 32]);
        let alice = ClientId("alice".into());
        let a = ledger_request_id(&alice, id);
        assert_eq!(a, ledger_request_id(&alice, id));
        assert_ne!(a, ledger_request_id(&ClientId("bob".into()), id));
        assert_ne!(a, ledger_request_id(&alice, Int256([8; 32])));
        assert_ne!(a.0, id.0);
        // The account's length is part of the input: shifting bytes between the account and
        // the request id gives another id.
        let mut shifted = [7u8; 32];
        shifted[0] = b'e';
        assert_ne!(
            ledger_request_id(&ClientId("alic".into()), Int256(shifted)),
            a
        );
    }
}
