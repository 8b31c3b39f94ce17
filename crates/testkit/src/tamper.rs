//! A proxy that cheats on demand, for attack tests: a real proxy behind two relays (one for
//! clients, one for workers) that rewrite what the proxy sends, as the software of a dishonest
//! proxy would send it. The clients and workers in front are real; so is the proxy's own
//! bookkeeping behind, which the relays do not touch, so what is shown is what the nodes catch
//! on their own, from what reaches them.
//!
//! The rewrites ([`TamperConfig`]):
//! - `charge_factor`: every charge a client is told of (`proxy.clientRequestPayment`'s
//!   `request_tokens`) and its cost report (`ext.queryCost`, coefficient and costs) are
//!   multiplied: a proxy that pays its worker at one coefficient and charges the client at a
//!   higher one.
//! - `offer_coefficient`: every request sent to a worker offers this coefficient.
//! - `reuse_request_ids`: every request sent to a worker carries the id of the first one (and
//!   the worker's answers are mapped back), so that one payment could cover several requests.
//! - `drop_receipts`: the workers' receipts (`ext.queryReceipt`) never reach the clients, so
//!   that only the proxy's word on the coefficient is left.
//! - `downgrade_workers`: the proxy answers workers' handshakes with protocol version 2, as a
//!   reference proxy does, so that they would hold neither its coefficients nor its payments
//!   to account.
//! - `forge_receipts`: the coefficient in the workers' receipts is multiplied by
//!   `charge_factor`, the signature left as it was (the proxy has no worker's key), so that the
//!   receipt would back the charge.
//! - `freeze_worker_totals`: every committed total a worker is shown (`db_tokens` of its payment
//!   notices and status answers, `tokens_committed_to_db` of its handshake) stays at the first
//!   one shown, while each notice still reports its request's payment in full: a proxy whose
//!   books, and so its vouchers, never credit the worker what it notifies.
//! - `withhold_worker_vouchers`: the payout vouchers in a worker's notices, status answers and
//!   handshake are taken out (its anchors on chain go on): a proxy that owes its worker more
//!   and more and never signs it.
//! - `silence_worker_payments`: no payment notice (`proxy.workerRequestPayment`) reaches a
//!   worker; with `freeze_worker_totals`, a proxy that takes the work and pays nothing, without
//!   a word.
//! - `worker_contract`: the proxy names this worker contract to workers
//!   (`worker.connectedToProxy`), so that the vouchers it signs for it would pay them nothing.
//! - `proxy_contract`: the proxy names this contract to clients and workers
//!   (`client.connectedToProxy`, `worker.connectedToProxy`), for example one that cannot be
//!   read, so that its prices, and the audits, would be off.
//!
//! Each rewrite is reported to a channel as a [`Rewrite`], so that a test can tell an attack
//! that was caught from one that never happened.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use cocoon_protocol::Message;
use cocoon_protocol::messages::{proxy, tcp};
use cocoon_protocol::tl::{self, Int256, TlConstructor};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::relay::{FrameHook, Towards};

/// What to rewrite.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TamperConfig {
    /// Multiply every charge and cost report sent to clients by this factor.
    #[arg(long)]
    pub charge_factor: Option<u32>,
    /// Offer every request to workers at this coefficient (1000 = 1.0×).
    #[arg(long, allow_negative_numbers = true)]
    pub offer_coefficient: Option<i64>,
    /// Send every request to workers under the first request's id.
    #[arg(long)]
    pub reuse_request_ids: bool,
    /// Withhold the workers' receipts from the clients.
    #[arg(long)]
    pub drop_receipts: bool,
    /// Name this proxy contract to clients in place of the proxy's own.
    #[arg(long, value_name = "ADDR")]
    pub proxy_contract: Option<String>,
    /// Multiply the coefficient the workers' receipts sign by `charge_factor`, keeping their
    /// signatures.
    #[arg(long)]
    pub forge_receipts: bool,
    /// Answer workers' handshakes with protocol version 2.
    #[arg(long)]
    pub downgrade_workers: bool,
    /// Show workers the first committed total shown, whatever they earn after.
    #[arg(long)]
    pub freeze_worker_totals: bool,
    /// Hand workers no payout voucher.
    #[arg(long)]
    pub withhold_worker_vouchers: bool,
    /// Send workers no payment notice.
    #[arg(long)]
    pub silence_worker_payments: bool,
    /// Name this worker contract to workers in place of their own.
    #[arg(long, value_name = "ADDR")]
    pub worker_contract: Option<String>,
}

/// One message rewritten.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rewrite {
    /// The message's TL name.
    pub message: &'static str,
    /// The request it concerns, in hex.
    pub request_id: String,
    /// What was changed, in words.
    pub change: String,
}

/// The rewriting hook, shared by the clients' and the workers' relay.
#[derive(Debug)]
pub struct Tamper {
    config: TamperConfig,
    /// With `reuse_request_ids`: the first id sent to a worker, and the id of the latest
    /// request sent under it (where the worker's answers go back).
    ids: Mutex<Option<(Int256, Int256)>>,
    /// With `freeze_worker_totals`: the first committed total shown to a worker.
    frozen_total: Mutex<Option<i64>>,
    rewrites: mpsc::UnboundedSender<Rewrite>,
}

impl Tamper {
    /// A hook rewriting as `config` says; answers it and the stream of rewrites.
    pub fn new(config: TamperConfig) -> (Self, mpsc::UnboundedReceiver<Rewrite>) {
        let (rewrites, out) = mpsc::unbounded_channel();
        let tamper = Self {
            config,
            ids: Mutex::new(None),
            frozen_total: Mutex::new(None),
            rewrites,
        };
        (tamper, out)
    }

    fn report(&self, message: &'static str, request_id: &Int256, change: String) {
        let _ = self.rewrites.send(Rewrite {
            message,
            request_id: request_id.to_string(),
            change,
        });
    }

    /// The message to forward towards a node in place of `message`, if it is rewritten.
    fn to_node(&self, message: Message) -> Option<Message> {
        let c = &self.config;
        match message {
            Message::ProxyClientRequestPayment(mut p) if c.charge_factor.is_some() => {
                let k = i64::from(c.charge_factor.unwrap_or(1));
                let was = p.request_tokens;
                p.request_tokens = was.saturating_mul(k);
                let change = format!("request_tokens {was} -> {}", p.request_tokens);
                self.report("proxy.clientRequestPayment", &p.request_id, change);
                Some(Message::ProxyClientRequestPayment(p))
            }
            Message::ExtQueryCost(mut q) if c.charge_factor.is_some() => {
                let k = c.charge_factor.unwrap_or(1);
                let was = q.coefficient;
                q.coefficient = was.saturating_mul(i32::try_from(k).unwrap_or(i32::MAX));
                for cost in [
                    &mut q.prompt_cost,
                    &mut q.completion_cost,
                    &mut q.total_cost,
                ] {
                    *cost = cost.saturating_mul(i64::from(k));
                }
                let change = format!("coefficient {was} -> {}", q.coefficient);
                self.report("ext.queryCost", &q.request_id, change);
                Some(Message::ExtQueryCost(q))
            }
            Message::ProxyWorkerRequestPayment(mut p)
                if c.freeze_worker_totals || c.withhold_worker_vouchers =>
            {
                let changes =
                    self.worker_books(&mut p.db_tokens, &mut p.max_tokens, &mut p.signed_payment);
                if changes.is_empty() {
                    return None;
                }
                let change = format!("{changes} (request_tokens {})", p.request_tokens);
                self.report("proxy.workerRequestPayment", &p.request_id, change);
                Some(Message::ProxyWorkerRequestPayment(p))
            }
            Message::ExtWorkerRunQuery(mut q) => {
                let offered = self.offer(&mut q.coefficient, &q.request_id, "ext.workerRunQuery");
                let reused = self.reuse(&mut q.request_id, "ext.workerRunQuery");
                (offered || reused).then_some(Message::ExtWorkerRunQuery(q))
            }
            Message::ExtWorkerRunSealedQuery(mut q) => {
                let name = "ext.workerRunSealedQuery";
                let offered = self.offer(&mut q.coefficient, &q.request_id, name);
                let reused = self.reuse(&mut q.request_id, name);
                (offered || reused).then_some(Message::ExtWorkerRunSealedQuery(q))
            }
            Message::ProxyRunQueryEx(mut q) => {
                let offered = self.offer(&mut q.coefficient, &q.request_id, "proxy.runQueryEx");
                let reused = self.reuse(&mut q.request_id, "proxy.runQueryEx");
                (offered || reused).then_some(Message::ProxyRunQueryEx(q))
            }
            _ => None,
        }
    }

    /// What a worker is shown of its account, rewritten as `freeze_worker_totals` and
    /// `withhold_worker_vouchers` say; answers the changes made, in words (empty: none).
    fn worker_books(
        &self,
        total: &mut i64,
        max_tokens: &mut i64,
        voucher: &mut proxy::AnySignedPayment,
    ) -> String {
        let mut changes = Vec::new();
        if self.config.freeze_worker_totals {
            let frozen = self.frozen(*total);
            if frozen != *total {
                changes.push(format!("db_tokens {total} -> {frozen}"));
                *total = frozen;
                *max_tokens = frozen;
            }
        }
        if self.config.withhold_worker_vouchers
            && matches!(voucher, proxy::AnySignedPayment::SignedPayment(_))
        {
            *voucher = proxy::AnySignedPayment::default();
            changes.push("voucher withheld".to_owned());
        }
        changes.join(", ")
    }

    /// With `freeze_worker_totals`: the first total shown (`total`, if none was yet).
    fn frozen(&self, total: i64) -> i64 {
        *self
            .frozen_total
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert(total)
    }

    /// Sets an offered coefficient; answers whether it did.
    fn offer(&self, coefficient: &mut i64, request_id: &Int256, message: &'static str) -> bool {
        let Some(offer) = self.config.offer_coefficient else {
            return false;
        };
        let change = format!("coefficient {coefficient} -> {offer}");
        *coefficient = offer;
        self.report(message, request_id, change);
        true
    }

    /// Puts a request sent to a worker under the first request's id; answers whether it did.
    fn reuse(&self, request_id: &mut Int256, message: &'static str) -> bool {
        if !self.config.reuse_request_ids {
            return false;
        }
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        let first = match *ids {
            None => {
                *ids = Some((*request_id, *request_id));
                return false;
            }
            Some((first, _)) => first,
        };
        *ids = Some((first, *request_id));
        drop(ids);
        self.report(message, request_id, format!("request_id -> {first}"));
        *request_id = first;
        true
    }

    /// With `reuse_request_ids`: `(from, to)` to replace in a frame going `towards`: the
    /// latest request's id by the first one towards the worker (its cancels, its payments),
    /// the first by the latest towards the proxy (the worker's answers).
    fn id_swap(&self, towards: Towards) -> Option<(Int256, Int256)> {
        let (first, latest) = (*self.ids.lock().unwrap_or_else(PoisonError::into_inner))?;
        if first == latest {
            return None;
        }
        Some(match towards {
            Towards::Node => (latest, first),
            Towards::Proxy => (first, latest),
        })
    }
}

/// `bytes` with every occurrence of `from` replaced by `to`.
fn replace_all(bytes: &[u8], from: &[u8; 32], to: &[u8; 32]) -> Option<Vec<u8>> {
    let mut out = bytes.to_vec();
    let mut found = false;
    let mut i = 0;
    while i + 32 <= out.len() {
        if &out[i..i + 32] == from {
            out[i..i + 32].copy_from_slice(to);
            found = true;
            i += 32;
        } else {
            i += 1;
        }
    }
    found.then_some(out)
}

impl Tamper {
    /// A query's answer towards a node, when rewritten: the proxy's handshake answers (the
    /// contract it names, the version it speaks, the total it shows a worker) and a worker's
    /// payment status.
    fn answer_to_node(&self, answer: tcp::QueryAnswer) -> Option<Bytes> {
        let (message, name, change) = match tl::from_bytes::<Message>(answer.data).ok()? {
            Message::ClientConnectedToProxy(mut connected) => {
                let contract = self.config.proxy_contract.as_ref()?;
                let was =
                    std::mem::replace(&mut connected.params.proxy_sc_address, contract.clone());
                (
                    Message::ClientConnectedToProxy(connected),
                    "client.connectedToProxy",
                    format!("proxy_sc_address {was} -> {contract}"),
                )
            }
            Message::WorkerConnectedToProxy(mut connected)
                if self.config.downgrade_workers
                    || self.config.proxy_contract.is_some()
                    || self.config.worker_contract.is_some() =>
            {
                let mut changes = Vec::new();
                if self.config.downgrade_workers {
                    let was = connected.params.proto_version.replace(2);
                    changes.push(format!("proto_version {was:?} -> Some(2)"));
                }
                if let Some(contract) = &self.config.proxy_contract {
                    let was =
                        std::mem::replace(&mut connected.params.proxy_sc_address, contract.clone());
                    changes.push(format!("proxy_sc_address {was} -> {contract}"));
                }
                if let Some(contract) = &self.config.worker_contract {
                    let was = std::mem::replace(&mut connected.worker_sc_address, contract.clone());
                    changes.push(format!("worker_sc_address {was} -> {contract}"));
                }
                (
                    Message::WorkerConnectedToProxy(connected),
                    "worker.connectedToProxy",
                    changes.join(", "),
                )
            }
            Message::WorkerCompareBalanceWithProxyResult(mut r) => {
                let changes = self.worker_books(
                    &mut r.tokens_committed_to_db,
                    &mut r.max_tokens,
                    &mut r.signed_payment,
                );
                if changes.is_empty() {
                    return None;
                }
                (
                    Message::WorkerCompareBalanceWithProxyResult(r),
                    "worker.compareBalanceWithProxyResult",
                    changes,
                )
            }
            Message::WorkerPaymentStatus(mut status) => {
                let changes = self.worker_books(
                    &mut status.db_tokens,
                    &mut status.max_tokens,
                    &mut status.signed_payment,
                );
                if changes.is_empty() {
                    return None;
                }
                (
                    Message::WorkerPaymentStatus(status),
                    "worker.paymentStatus",
                    changes,
                )
            }
            _ => return None,
        };
        let _ = self.rewrites.send(Rewrite {
            message: name,
            request_id: String::new(),
            change,
        });
        let data = Bytes::from(tl::to_bytes(&message));
        Some(Bytes::from(
            tcp::QueryAnswer {
                id: answer.id,
                data,
            }
            .to_boxed_bytes(),
        ))
    }
}

impl FrameHook for Tamper {
    fn frame(&self, towards: Towards, body: Bytes) -> Option<Bytes> {
        let packet = match tl::from_bytes::<tcp::AnyPacket>(body.clone()) {
            Ok(tcp::AnyPacket::Packet(packet)) => packet,
            Ok(tcp::AnyPacket::QueryAnswer(answer)) if towards == Towards::Node => {
                return Some(self.answer_to_node(answer).unwrap_or(body));
            }
            _ => return Some(body),
        };
        let mut data = packet.data;
        if towards == Towards::Node
            && let Ok(message) = tl::from_bytes::<Message>(data.clone())
        {
            if let Message::ProxyWorkerRequestPayment(p) = &message
                && self.config.silence_worker_payments
            {
                self.report(
                    "proxy.workerRequestPayment",
                    &p.request_id,
                    "withheld".into(),
                );
                return None;
            }
            if let Message::ExtQueryReceipt(r) = &message
                && self.config.drop_receipts
            {
                self.report("ext.queryReceipt", &r.request_id, "withheld".into());
                return None;
            }
            if let Message::ExtQueryReceipt(r) = &message
                && self.config.forge_receipts
                && let Ok(mut receipt) = cocoon_attest::Receipt::from_bytes(&r.receipt)
            {
                let k = self.config.charge_factor.unwrap_or(1);
                let was = receipt.claims.coefficient;
                receipt.claims.coefficient = was.map(|c| c.saturating_mul(k));
                let change = format!("coefficient {was:?} -> {:?}", receipt.claims.coefficient);
                self.report("ext.queryReceipt", &r.request_id, change);
                let forged =
                    Message::ExtQueryReceipt(cocoon_protocol::messages::ext::QueryReceipt {
                        request_id: r.request_id,
                        receipt: Bytes::from(receipt.to_bytes()),
                    });
                return Some(Bytes::from(
                    tcp::Packet {
                        data: Bytes::from(tl::to_bytes(&forged)),
                    }
                    .to_boxed_bytes(),
                ));
            }
            if let Some(rewritten) = self.to_node(message) {
                data = Bytes::from(tl::to_bytes(&rewritten));
            }
        }
        if let Some((from, to)) = self.id_swap(towards)
            && let Some(swapped) = replace_all(&data, &from.0, &to.0)
        {
            data = Bytes::from(swapped);
        }
        Some(Bytes::from(tcp::Packet { data }.to_boxed_bytes()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use cocoon_protocol::messages::ext;

    use super::*;

    fn packet(message: &Message) -> Bytes {
        Bytes::from(
            tcp::Packet {
                data: Bytes::from(tl::to_bytes(message)),
            }
            .to_boxed_bytes(),
        )
    }

    fn unpacked(body: Option<Bytes>) -> Message {
        let tcp::AnyPacket::Packet(p) = tl::from_bytes::<tcp::AnyPacket>(body.unwrap()).unwrap()
        else {
            panic!("not a packet");
        };
        tl::from_bytes::<Message>(p.data).unwrap()
    }

    fn run(id: u8, coefficient: i64) -> Message {
        Message::ExtWorkerRunQuery(ext::WorkerRunQuery {
            query: Bytes::from_static(b"q"),
            coefficient,
            timeout: 10.0,
            request_id: Int256([id; 32]),
            client_request_id: Int256([id ^ 0xFF; 32]),
            token_limit: 16,
            flags: 0,
            enable_debug: None,
        })
    }

    #[test]
    fn charges_and_costs_are_multiplied_towards_clients_only() {
        let (t, mut rewrites) = Tamper::new(TamperConfig {
            charge_factor: Some(3),
            ..TamperConfig::default()
        });
        let cost = Message::ExtQueryCost(ext::QueryCost {
            request_id: Int256([1; 32]),
            coefficient: 1000,
            prompt_cost: 10,
            completion_cost: 20,
            total_cost: 30,
        });
        let Message::ExtQueryCost(q) = unpacked(t.frame(Towards::Node, packet(&cost))) else {
            panic!("not a cost");
        };
        assert_eq!((q.coefficient, q.total_cost), (3000, 90));
        assert_eq!(rewrites.try_recv().unwrap().message, "ext.queryCost");
        // Going the other way, or not a packet: untouched.
        let body = packet(&cost);
        assert_eq!(t.frame(Towards::Proxy, body.clone()), Some(body));
        let ping = Bytes::from(tcp::Ping { id: 7 }.to_boxed_bytes());
        assert_eq!(t.frame(Towards::Node, ping.clone()), Some(ping));
        assert!(rewrites.try_recv().is_err());
        let payment = Message::ProxyClientRequestPayment(proxy::ClientRequestPayment {
            request_id: Int256([1; 32]),
            signed_payment: proxy::AnySignedPayment::SignedPaymentEmpty(
                proxy::SignedPaymentEmpty {},
            ),
            db_tokens: 100,
            max_tokens: 1000,
            request_tokens: 40,
        });
        let Message::ProxyClientRequestPayment(p) =
            unpacked(t.frame(Towards::Node, packet(&payment)))
        else {
            panic!("not a payment");
        };
        assert_eq!(p.request_tokens, 120);
    }

    #[test]
    fn a_worker_is_offered_the_coefficient_set() {
        let (t, _) = Tamper::new(TamperConfig {
            offer_coefficient: Some(1),
            ..TamperConfig::default()
        });
        let Message::ExtWorkerRunQuery(q) = unpacked(t.frame(Towards::Node, packet(&run(1, 1500))))
        else {
            panic!("not a run");
        };
        assert_eq!(q.coefficient, 1);
    }

    #[test]
    fn every_request_goes_under_the_first_id_and_answers_come_back_under_their_own() {
        let (t, _) = Tamper::new(TamperConfig {
            reuse_request_ids: true,
            ..TamperConfig::default()
        });
        let first = unpacked(t.frame(Towards::Node, packet(&run(1, 1000))));
        assert!(matches!(first, Message::ExtWorkerRunQuery(q) if q.request_id == Int256([1; 32])));
        let second = unpacked(t.frame(Towards::Node, packet(&run(2, 1000))));
        assert!(matches!(second, Message::ExtWorkerRunQuery(q) if q.request_id == Int256([1; 32])));
        // The worker's answer under the first id goes back to the proxy under the second.
        let receipt = Message::ExtQueryReceipt(ext::QueryReceipt {
            request_id: Int256([1; 32]),
            receipt: Bytes::from_static(b"r"),
        });
        let back = unpacked(t.frame(Towards::Proxy, packet(&receipt)));
        assert!(matches!(back, Message::ExtQueryReceipt(r) if r.request_id == Int256([2; 32])));
    }

    #[test]
    fn receipts_are_withheld_from_clients() {
        let (t, mut rewrites) = Tamper::new(TamperConfig {
            drop_receipts: true,
            ..TamperConfig::default()
        });
        let receipt = Message::ExtQueryReceipt(ext::QueryReceipt {
            request_id: Int256([1; 32]),
            receipt: Bytes::from_static(b"r"),
        });
        assert_eq!(t.frame(Towards::Node, packet(&receipt)), None);
        assert_eq!(rewrites.try_recv().unwrap().change, "withheld");
        // From a worker towards the proxy it passes.
        assert!(t.frame(Towards::Proxy, packet(&receipt)).is_some());
    }

    #[test]
    fn a_worker_is_shown_its_first_total_while_paid_in_full() {
        let (t, mut rewrites) = Tamper::new(TamperConfig {
            freeze_worker_totals: true,
            ..TamperConfig::default()
        });
        let answer = |message: &Message| {
            Bytes::from(
                tcp::QueryAnswer {
                    id: 7,
                    data: Bytes::from(tl::to_bytes(message)),
                }
                .to_boxed_bytes(),
            )
        };
        let handshake = Message::WorkerCompareBalanceWithProxyResult(
            cocoon_protocol::messages::worker::CompareBalanceWithProxyResult {
                signed_payment: proxy::AnySignedPayment::default(),
                tokens_committed_to_db: 100,
                max_tokens: 100,
                error_code: 0,
            },
        );
        // The first total shown passes as it is, and is the one kept.
        let shown = answer(&handshake);
        assert_eq!(t.frame(Towards::Node, shown.clone()), Some(shown));
        let paid = Message::ProxyWorkerRequestPayment(proxy::WorkerRequestPayment {
            request_id: Int256([2; 32]),
            signed_payment: proxy::AnySignedPayment::default(),
            db_tokens: 130,
            max_tokens: 130,
            request_tokens: 30,
            request_client_owner: String::new(),
        });
        let Message::ProxyWorkerRequestPayment(p) = unpacked(t.frame(Towards::Node, packet(&paid)))
        else {
            panic!("not a payment");
        };
        assert_eq!(
            (p.db_tokens, p.max_tokens, p.request_tokens),
            (100, 100, 30)
        );
        assert_eq!(
            rewrites.try_recv().unwrap().change,
            "db_tokens 130 -> 100 (request_tokens 30)"
        );
        let status =
            Message::WorkerPaymentStatus(cocoon_protocol::messages::worker::PaymentStatus {
                signed_payment: proxy::AnySignedPayment::default(),
                db_tokens: 130,
                max_tokens: 130,
            });
        let rewritten = t.frame(Towards::Node, answer(&status)).unwrap();
        let tcp::AnyPacket::QueryAnswer(a) = tl::from_bytes::<tcp::AnyPacket>(rewritten).unwrap()
        else {
            panic!("not an answer");
        };
        let Message::WorkerPaymentStatus(s) = tl::from_bytes::<Message>(a.data).unwrap() else {
            panic!("not a payment status");
        };
        assert_eq!((a.id, s.db_tokens), (7, 100));
    }

    #[test]
    fn a_worker_is_handed_no_voucher() {
        let (t, mut rewrites) = Tamper::new(TamperConfig {
            withhold_worker_vouchers: true,
            ..TamperConfig::default()
        });
        let paid = |signed_payment| {
            Message::ProxyWorkerRequestPayment(proxy::WorkerRequestPayment {
                request_id: Int256([2; 32]),
                signed_payment,
                db_tokens: 130,
                max_tokens: 130,
                request_tokens: 30,
                request_client_owner: String::new(),
            })
        };
        let voucher = proxy::AnySignedPayment::SignedPayment(proxy::SignedPayment {
            data: Bytes::from_static(b"voucher"),
        });
        let Message::ProxyWorkerRequestPayment(p) =
            unpacked(t.frame(Towards::Node, packet(&paid(voucher))))
        else {
            panic!("not a payment");
        };
        assert_eq!(p.signed_payment, proxy::AnySignedPayment::default());
        assert_eq!(p.db_tokens, 130, "the total is left as it was");
        assert_eq!(
            rewrites.try_recv().unwrap().change,
            "voucher withheld (request_tokens 30)"
        );
        // A notice without a voucher passes as it is.
        let plain = packet(&paid(proxy::AnySignedPayment::default()));
        assert_eq!(t.frame(Towards::Node, plain.clone()), Some(plain));
    }
}
