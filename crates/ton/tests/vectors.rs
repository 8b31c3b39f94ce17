//! Checks every vector of `tests/data/vectors.json`, generated with `@ton/core`, `@ton/crypto`
//! and the contracts running in `@ton/sandbox` by `contracts/scripts/vectors.mjs`: cell hashes
//! and BOCs, address forms, contract codes, parameters, initial data and addresses, every
//! message body, vouchers and their signatures, wallet addresses and signed transfers, and the
//! data cells, get-method stacks and messages of contracts that ran.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::HashMap, str::FromStr};

use cocoon_ton::{
    Address, Cell, CellBuilder, FriendlyFlags, InternalMessage, LedgerAnchor, OutgoingMessage,
    SendMode, SignedMessage, SigningKey, Transfer, Voucher, VoucherKind, VoucherPayload,
    WalletV4R2, WalletV5R1,
    boc::{self, BocOptions},
    contracts::{
        self, ClientData, ClientState, ContractKind, Lifecycle, Params, ParamsCore, ProxyData,
        ProxyState, RootState, StackValue, WorkerData, WorkerState,
    },
    messages::{
        ClientMessage, ClientProxyRequest, ClientRegisteredLog, ClientRequestKind, ContractMessage,
        Notification, ProxyMessage, RequestFlags, RootMessage, WorkerMessage, WorkerProxyRequest,
        WorkerRequestKind,
    },
};
use num_bigint::BigInt;
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/vectors.json")).unwrap()
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} is not a string in {v}"))
}

/// A number given as a JSON number or a decimal string.
fn n(v: &Value, key: &str) -> u128 {
    match &v[key] {
        Value::Number(x) => u128::from(x.as_u64().unwrap()),
        Value::String(t) => t.parse().unwrap(),
        other => panic!("{key} is not a number: {other}"),
    }
}

fn addr(v: &Value, key: &str) -> Address {
    Address::from_str(s(v, key)).unwrap()
}

fn hex32(text: &str) -> [u8; 32] {
    let t = text.trim_start_matches("0x");
    let mut out = [0u8; 32];
    hex::decode_to_slice(t, &mut out).unwrap();
    out
}

/// A 256-bit value given as a decimal string.
fn dec32(v: &Value, key: &str) -> [u8; 32] {
    let big = BigInt::from_str(s(v, key)).unwrap();
    let (_, bytes) = big.to_bytes_be();
    let mut out = [0u8; 32];
    out[32 - bytes.len()..].copy_from_slice(&bytes);
    out
}

fn b64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn cell(text: &str) -> Cell {
    Cell::from_boc_base64(text).unwrap()
}

fn params_core(v: &Value) -> ParamsCore {
    ParamsCore {
        struct_version: n(v, "structVersion") as u8,
        params_version: n(v, "paramsVersion") as u32,
        unique_id: n(v, "uniqueId") as u32,
        is_test: v["isTest"].as_bool().unwrap(),
        price_per_token: n(v, "pricePerToken"),
        worker_fee_per_token: n(v, "workerFeePerToken"),
        prompt_multiplier: n(v, "promptMultiplier") as u32,
        cached_multiplier: n(v, "cachedMultiplier") as u32,
        completion_multiplier: n(v, "completionMultiplier") as u32,
        reasoning_multiplier: n(v, "reasoningMultiplier") as u32,
        proxy_delay_before_close: n(v, "proxyDelayBeforeClose") as u32,
        client_delay_before_close: n(v, "clientDelayBeforeClose") as u32,
        min_proxy_stake: n(v, "minProxyStake"),
        min_client_stake: n(v, "minClientStake"),
    }
}

fn proxy_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

#[test]
fn cells_hashes_and_bocs() {
    let v = vectors();
    let mut built: HashMap<String, Cell> = HashMap::new();
    for c in v["cells"].as_array().unwrap() {
        let name = s(c, "name");
        let decoded = cell(s(c, "boc"));
        assert_eq!(hex::encode(decoded.hash()), s(c, "hash"), "{name}: hash");
        // our BOCs are byte for byte @ton/core's, with and without index and checksum
        assert_eq!(decoded.to_boc(), b64(s(c, "boc")), "{name}: boc bytes");
        let with_index = boc::encode(
            &decoded,
            BocOptions {
                crc32c: false,
                index: true,
            },
        );
        assert_eq!(with_index, b64(s(c, "bocIdx")), "{name}: indexed boc bytes");
        assert_eq!(boc::decode_single(&with_index).unwrap(), decoded);
        if let Some(ops) = c["ops"].as_array() {
            let mut b = CellBuilder::new();
            for op in ops {
                let op = op.as_array().unwrap();
                let arg = |i: usize| op[i].as_str().unwrap();
                match op[0].as_str().unwrap() {
                    "bit" => {
                        b.store_bit(op[1].as_u64().unwrap() == 1).unwrap();
                    }
                    "uint" => {
                        let bits = op[1].as_u64().unwrap() as usize;
                        b.store_uint(arg(2).parse().unwrap(), bits).unwrap();
                    }
                    "int" => {
                        let bits = op[1].as_u64().unwrap() as usize;
                        b.store_int(arg(2).parse().unwrap(), bits).unwrap();
                    }
                    "coins" => {
                        b.store_coins(arg(1).parse().unwrap()).unwrap();
                    }
                    "address" => {
                        b.store_address(&Address::from_raw(arg(1)).unwrap())
                            .unwrap();
                    }
                    "address_none" => {
                        b.store_address_none().unwrap();
                    }
                    "bytes" => {
                        b.store_bytes(&hex::decode(arg(1)).unwrap()).unwrap();
                    }
                    "bits" => {
                        let len = op[2].as_u64().unwrap() as usize;
                        b.store_bits(&hex::decode(arg(1)).unwrap(), len).unwrap();
                    }
                    "ref" => {
                        b.store_ref(built[arg(1)].clone()).unwrap();
                    }
                    "text" => {
                        b.store_text_tail(arg(1)).unwrap();
                    }
                    other => panic!("unknown op {other}"),
                }
            }
            let ours = b.build().unwrap();
            assert_eq!(hex::encode(ours.hash()), s(c, "hash"), "{name}: built hash");
            built.insert(name.to_owned(), ours);
        }
    }
}

#[test]
fn addresses_in_every_form() {
    let v = vectors();
    for a in v["addresses"].as_array().unwrap() {
        let address = Address::from_raw(s(a, "raw")).unwrap();
        assert_eq!(address.to_raw(), s(a, "raw"));
        for (key, form) in a["forms"].as_object().unwrap() {
            let flags = FriendlyFlags {
                bounceable: key.starts_with("bounceable"),
                testnet: key.ends_with("testnet"),
            };
            assert_eq!(address.to_friendly(flags), s(form, "url"), "{key}");
            assert_eq!(address.to_friendly_std(flags), s(form, "std"), "{key}");
            for text in [s(form, "url"), s(form, "std")] {
                assert_eq!(Address::from_friendly(text).unwrap(), (address, flags));
            }
        }
    }
}

#[test]
fn contract_codes_params_and_addresses() {
    let v = vectors();
    let c = &v["contracts"];
    for kind in ContractKind::ALL {
        assert_eq!(
            hex::encode(kind.code().unwrap().hash()),
            s(&c["codeHashes"], kind.name())
        );
    }
    let core = params_core(&c["params"]);
    assert_eq!(
        hex::encode(core.to_cell().unwrap().hash()),
        s(c, "paramsCoreHash")
    );
    assert_eq!(core.to_cell().unwrap().to_boc(), b64(s(c, "paramsCoreBoc")));
    let params = Params::with_embedded_codes(core).unwrap();
    assert_eq!(
        hex::encode(params.to_cell().unwrap().hash()),
        s(c, "paramsHash")
    );

    let key = hex32(s(c, "proxyPublicKey"));
    assert_eq!(key, proxy_key().verifying_key().to_bytes());
    let root_owner = addr(&c["root"], "owner");
    let root_data = contracts::root_initial_data(&root_owner, &params).unwrap();
    assert_eq!(hex::encode(root_data.hash()), s(&c["root"], "dataHash"));
    let root = contracts::root_address(&root_owner, &params).unwrap();
    assert_eq!(root, addr(&c["root"], "address"));

    let proxy_owner = addr(&c["proxy"], "owner");
    let proxy_init = contracts::proxy_state_init(&proxy_owner, &key, &root, &params).unwrap();
    assert_eq!(
        hex::encode(proxy_init.data.hash()),
        s(&c["proxy"], "dataHash")
    );
    let proxy = contracts::proxy_address(&proxy_owner, &key, &root, &params).unwrap();
    assert_eq!(proxy, addr(&c["proxy"], "address"));

    let client_owner = addr(&c["client"], "owner");
    let client_init = contracts::client_state_init(&client_owner, &proxy, &key, &params).unwrap();
    assert_eq!(
        hex::encode(client_init.data.hash()),
        s(&c["client"], "dataHash")
    );
    assert_eq!(
        contracts::client_address(&client_owner, &proxy, &key, &params).unwrap(),
        addr(&c["client"], "address")
    );
    let worker_owner = addr(&c["worker"], "owner");
    let worker_init = contracts::worker_state_init(&worker_owner, &proxy, &key, &params).unwrap();
    assert_eq!(
        hex::encode(worker_init.data.hash()),
        s(&c["worker"], "dataHash")
    );
    assert_eq!(
        contracts::worker_address(&worker_owner, &proxy, &key, &params).unwrap(),
        addr(&c["worker"], "address")
    );
    let other_key = hex32(s(c, "otherKeyPublicKey"));
    assert_eq!(
        contracts::client_address(&client_owner, &proxy, &other_key, &params).unwrap(),
        addr(c, "otherKeyClient")
    );
}

/// The typed message a vector describes.
fn message_of(name: &str, f: &Value) -> ContractMessage {
    let qid = || n(f, "queryId") as u64;
    let hash = || hex32(s(f, "hash"));
    use ContractMessage as M;
    match name {
        "client_top_up" => M::Client(ClientMessage::TopUp {
            query_id: qid(),
            amount: n(f, "amount"),
            send_excesses_to: addr(f, "sendExcessesTo"),
        }),
        "client_register" => M::Client(ClientMessage::Register {
            query_id: qid(),
            nonce: n(f, "nonce") as u64,
        }),
        "client_change_secret_hash" => M::Client(ClientMessage::ChangeSecretHash {
            query_id: qid(),
            secret_hash: hex32(s(f, "secretHash")),
        }),
        "client_increase_stake" => M::Client(ClientMessage::IncreaseStake {
            query_id: qid(),
            new_stake: n(f, "newStake"),
        }),
        "client_withdraw" => M::Client(ClientMessage::Withdraw { query_id: qid() }),
        "client_request_refund" => M::Client(ClientMessage::RequestRefund { query_id: qid() }),
        "worker_register" => M::Worker(WorkerMessage::Register { query_id: qid() }),
        "proxy_payout" => M::Proxy(ProxyMessage::Payout { query_id: qid() }),
        "proxy_increase_stake" => M::Proxy(ProxyMessage::IncreaseStake {
            query_id: qid(),
            amount: n(f, "amount"),
        }),
        "proxy_owner_close" => M::Proxy(ProxyMessage::OwnerClose { query_id: qid() }),
        "proxy_save_state" | "proxy_save_state_signed" => {
            let anchor = LedgerAnchor {
                seqno: n(f, "seqno") as u32,
                state_hash: hex32(s(f, "stateHash")),
            };
            let signature = f["signature"].as_str().map(|sig| {
                // the signature in the vector is the proxy key's over the anchor
                let ours = anchor
                    .sign(&addr(f, "proxyContract"), &proxy_key())
                    .unwrap();
                assert_eq!(hex::encode(ours), sig);
                anchor
                    .verify(
                        &addr(f, "proxyContract"),
                        &proxy_key().verifying_key().to_bytes(),
                        &ours,
                    )
                    .unwrap();
                ours
            });
            M::Proxy(ProxyMessage::SaveState {
                query_id: qid(),
                anchor,
                signature,
            })
        }
        "proxy_note" => {
            let bits = hex::decode(s(f, "restBits")).unwrap();
            let rest = Cell::new(&bits, n(f, "restLen") as usize, vec![]).unwrap();
            M::Proxy(ProxyMessage::Note {
                query_id: qid(),
                rest,
            })
        }
        "client_proxy_request" => M::Proxy(ProxyMessage::ClientRequest(ClientProxyRequest {
            query_id: qid(),
            kind: match n(f, "kind") {
                1 => ClientRequestKind::TopUp,
                2 => ClientRequestKind::PayOwner,
                _ => ClientRequestKind::FinalPay,
            },
            amount: n(f, "amount"),
            flags: RequestFlags(n(f, "flags") as u8),
            owner: addr(f, "owner"),
            send_excesses_to: addr(f, "sendExcessesTo"),
        })),
        "worker_proxy_request" => M::Proxy(ProxyMessage::WorkerRequest(WorkerProxyRequest {
            query_id: qid(),
            kind: match n(f, "kind") {
                1 => WorkerRequestKind::Register,
                2 => WorkerRequestKind::Payout,
                _ => WorkerRequestKind::LastPayout,
            },
            tokens: n(f, "tokens") as u64,
            flags: RequestFlags(n(f, "flags") as u8),
            owner: addr(f, "owner"),
            send_excesses_to: addr(f, "sendExcessesTo"),
        })),
        "excesses" => M::Notification(Notification::Excesses { query_id: qid() }),
        "payout" => M::Notification(Notification::Payout { query_id: qid() }),
        "root_add_proxy_image" => M::Root(RootMessage::AddProxyImage {
            query_id: qid(),
            hash: hash(),
        }),
        "root_remove_proxy_image" => M::Root(RootMessage::RemoveProxyImage {
            query_id: qid(),
            hash: hash(),
        }),
        "root_add_worker_image" => M::Root(RootMessage::AddWorkerImage {
            query_id: qid(),
            hash: hash(),
        }),
        "root_remove_worker_image" => M::Root(RootMessage::RemoveWorkerImage {
            query_id: qid(),
            hash: hash(),
        }),
        "root_add_model" => M::Root(RootMessage::AddModel {
            query_id: qid(),
            hash: hash(),
        }),
        "root_remove_model" => M::Root(RootMessage::RemoveModel {
            query_id: qid(),
            hash: hash(),
        }),
        "root_register_proxy" => M::Root(RootMessage::RegisterProxy {
            query_id: qid(),
            endpoint: s(f, "endpoint").to_owned(),
        }),
        "root_update_proxy" => M::Root(RootMessage::UpdateProxy {
            query_id: qid(),
            seqno: n(f, "seqno") as u32,
            endpoint: s(f, "endpoint").to_owned(),
        }),
        "root_remove_proxy" => M::Root(RootMessage::RemoveProxy {
            query_id: qid(),
            seqno: n(f, "seqno") as u32,
        }),
        "root_update_params" => M::Root(RootMessage::UpdateParams {
            query_id: qid(),
            params: Box::new(Params::with_embedded_codes(params_core(&f["params"])).unwrap()),
        }),
        "root_change_owner" => M::Root(RootMessage::ChangeOwner {
            query_id: qid(),
            new_owner: addr(f, "newOwner"),
        }),
        other => panic!("no builder for {other}"),
    }
}

#[test]
fn every_message_body() {
    let v = vectors();
    let mut seen = 0;
    for m in v["messages"].as_array().unwrap() {
        let name = s(m, "name");
        let fields = &m["fields"];
        let theirs = cell(s(m, "boc"));
        assert_eq!(hex::encode(theirs.hash()), s(m, "hash"));
        if name == "client_registered_log" {
            let log = ClientRegisteredLog {
                nonce: n(fields, "nonce") as u64,
                owner: addr(fields, "owner"),
            };
            assert_eq!(hex::encode(log.to_cell().unwrap().hash()), s(m, "hash"));
            assert_eq!(ClientRegisteredLog::from_cell(&theirs).unwrap(), log);
            seen += 1;
            continue;
        }
        let ours = message_of(name, fields);
        assert_eq!(
            hex::encode(ours.to_cell().unwrap().hash()),
            s(m, "hash"),
            "{name}"
        );
        assert_eq!(ContractMessage::parse(&theirs).unwrap(), ours, "{name}");
        seen += 1;
    }
    assert_eq!(seen, v["messages"].as_array().unwrap().len());
    assert!(seen >= 29);
}

#[test]
fn vouchers_match_the_js_signer() {
    let v = vectors();
    let key = proxy_key();
    let public = key.verifying_key().to_bytes();
    let kinds = [
        ("client_charge", VoucherKind::ClientCharge),
        ("client_grant_refund", VoucherKind::ClientGrantRefund),
        ("worker_payout", VoucherKind::WorkerPayout),
        ("worker_last_payout", VoucherKind::WorkerLastPayout),
        ("proxy_close", VoucherKind::ProxyClose),
        ("proxy_close_complete", VoucherKind::ProxyCloseComplete),
    ];
    let list = v["vouchers"].as_array().unwrap();
    assert_eq!(list.len(), kinds.len());
    for (x, (name, kind)) in list.iter().zip(kinds) {
        assert_eq!(s(x, "kind"), name);
        assert_eq!(s(x, "op"), format!("{:08x}", kind.op()));
        let target = addr(x, "target");
        let payload =
            VoucherPayload::new(kind, n(x, "queryId") as u64, n(x, "tokens") as u64, target);
        assert_eq!(
            hex::encode(payload.signing_hash().unwrap()),
            s(x, "payloadHash")
        );
        let voucher = Voucher::sign(payload, &key).unwrap();
        assert_eq!(hex::encode(voucher.signature()), s(x, "signature"));
        voucher.check(&public, kind, &target).unwrap();
        let excess = addr(x, "sendExcessesTo");
        let body = voucher.to_message_body(&excess).unwrap();
        assert_eq!(hex::encode(body.hash()), s(x, "bodyHash"));
        let parsed = SignedMessage::from_cell(&cell(s(x, "bodyBoc"))).unwrap();
        assert_eq!(parsed.voucher, voucher);
        assert_eq!(parsed.send_excesses_to, excess);
        parsed.voucher.verify(&public).unwrap();
    }
}

fn outgoing(
    m: &Value,
    messages: &[Value],
    state_inits: &HashMap<&str, cocoon_ton::StateInit>,
) -> OutgoingMessage {
    let body = m["body"].as_str().map(|name| {
        let found = messages.iter().find(|x| s(x, "name") == name).unwrap();
        cell(s(found, "boc"))
    });
    OutgoingMessage {
        message: InternalMessage {
            dest: addr(m, "dest"),
            value: n(m, "value"),
            bounce: m["bounce"].as_bool().unwrap(),
            state_init: m["stateInit"].as_str().map(|k| state_inits[k].clone()),
            body,
        },
        mode: SendMode(3),
    }
}

#[test]
fn wallets_addresses_and_signed_transfers() {
    let v = vectors();
    let c = &v["contracts"];
    let params = Params::with_embedded_codes(params_core(&c["params"])).unwrap();
    let key = hex32(s(c, "proxyPublicKey"));
    let client_init = contracts::client_state_init(
        &addr(&c["client"], "owner"),
        &addr(&c["proxy"], "address"),
        &key,
        &params,
    )
    .unwrap();
    let inits = HashMap::from([("client", client_init)]);
    let messages = v["messages"].as_array().unwrap();
    for w in v["wallets"].as_array().unwrap() {
        let seed = hex32(s(w, "seed"));
        let signing = SigningKey::from_bytes(&seed);
        let public = signing.verifying_key().to_bytes();
        assert_eq!(hex::encode(public), s(w, "publicKey"));
        let wallet_id = n(w, "walletId") as u32;
        enum Wallet {
            V4(WalletV4R2),
            V5(WalletV5R1),
        }
        let wallet = match s(w, "version") {
            "v4r2" => Wallet::V4(WalletV4R2::new(public).with_wallet_id(wallet_id)),
            _ => {
                let wallet = WalletV5R1::for_network(
                    public,
                    w["network"].as_i64().unwrap() as i32,
                    w["subwallet"].as_u64().unwrap() as u16,
                );
                assert_eq!(wallet.wallet_id(), wallet_id);
                Wallet::V5(wallet)
            }
        };
        let (code, data, address) = match &wallet {
            Wallet::V4(x) => (WalletV4R2::code(), x.initial_data(), x.address()),
            Wallet::V5(x) => (WalletV5R1::code(), x.initial_data(), x.address()),
        };
        assert_eq!(hex::encode(code.unwrap().hash()), s(w, "codeHash"));
        assert_eq!(hex::encode(data.unwrap().hash()), s(w, "dataHash"));
        assert_eq!(address.unwrap(), addr(w, "address"));
        for t in w["transfers"].as_array().unwrap() {
            let transfer = Transfer {
                seqno: n(t, "seqno") as u32,
                valid_until: n(t, "validUntil") as u32,
                messages: t["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| outgoing(m, messages, &inits))
                    .collect(),
            };
            let signed = match &wallet {
                Wallet::V4(x) => x.sign_transfer(&signing, &transfer),
                Wallet::V5(x) => x.sign_transfer(&signing, &transfer),
            }
            .unwrap();
            let what = format!("{} seqno {}", s(w, "version"), transfer.seqno);
            assert_eq!(hex::encode(signed.body.hash()), s(t, "bodyHash"), "{what}");
            assert_eq!(
                hex::encode(signed.message.hash().unwrap()),
                s(t, "externalHash"),
                "{what}"
            );
            assert_eq!(
                hex::encode(signed.normalized_hash().unwrap()),
                s(t, "normalizedHash"),
                "{what}"
            );
            let theirs = cell(s(t, "externalBoc"));
            assert_eq!(hex::encode(theirs.hash()), s(t, "externalHash"));
            assert_eq!(signed.to_boc().unwrap(), b64(s(t, "externalBoc")), "{what}");
        }
    }
}

fn stack(v: &Value) -> Vec<StackValue> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|e| match s(e, "type") {
            "int" => StackValue::parse_int(s(e, "value")).unwrap(),
            "null" => StackValue::Null,
            "cell" => StackValue::Cell(cell(s(e, "boc"))),
            "slice" => StackValue::Slice(cell(s(e, "boc"))),
            other => panic!("stack type {other}"),
        })
        .collect()
}

fn lifecycle(v: &Value) -> Lifecycle {
    Lifecycle::from_u8(n(v, "state") as u8).unwrap()
}

#[test]
fn contracts_that_ran_in_the_sandbox() {
    let v = vectors();
    let sb = &v["sandbox"];
    let params = Params::with_embedded_codes(params_core(&sb["params"])).unwrap();
    let key = hex32(s(sb, "proxyPublicKey"));
    let root_owner = addr(sb, "rootOwner");
    let proxy_owner = addr(sb, "proxyOwner");

    // addresses: ours equal the deployed ones and the proxy contract's own computation
    let root = contracts::root_address(&root_owner, &params).unwrap();
    assert_eq!(root, addr(&sb["root"], "address"));
    let proxy = contracts::proxy_address(&proxy_owner, &key, &root, &params).unwrap();
    assert_eq!(proxy, addr(&sb["proxy"], "address"));
    let client_owner = addr(&sb["client"], "owner");
    assert_eq!(
        contracts::client_address(&client_owner, &proxy, &key, &params).unwrap(),
        addr(&sb["client"], "address")
    );
    let worker_owner = addr(&sb["worker"], "owner");
    assert_eq!(
        contracts::worker_address(&worker_owner, &proxy, &key, &params).unwrap(),
        addr(&sb["worker"], "address")
    );
    let newcomer = addr(&sb["proxy"], "newcomer");
    assert_eq!(
        contracts::client_address(&newcomer, &proxy, &key, &params).unwrap(),
        addr(&sb["proxy"], "clientAddressOfNewcomer")
    );
    assert_eq!(
        contracts::worker_address(&newcomer, &proxy, &key, &params).unwrap(),
        addr(&sb["proxy"], "workerAddressOfNewcomer")
    );

    // root data with entries in every list
    let r = RootState::from_data_cell(&cell(s(&sb["root"], "data"))).unwrap();
    assert_eq!(r.owner, root_owner);
    assert_eq!(u128::from(r.version), n(&sb["root"], "version"));
    assert_eq!(r.version, 8);
    assert_eq!(r.params, params);
    let mut seven = [0u8; 32];
    seven[31] = 7;
    assert_eq!(r.proxy_image_hashes, vec![seven, [0xab; 32]]);
    assert_eq!(r.worker_image_hashes, vec![[0xcd; 32]]);
    let mut model = [0u8; 32];
    model[30..].copy_from_slice(&[0x12, 0x34]);
    assert_eq!(r.model_hashes, vec![model]);
    assert!(r.is_model_allowed(&model) && !r.is_model_allowed(&seven));
    let proxies: Vec<(u32, &str)> = r
        .registered_proxies
        .iter()
        .map(|p| (p.seqno, p.endpoint.as_str()))
        .collect();
    let long = "e".repeat(150);
    assert_eq!(proxies, vec![(0, "10.0.0.1:11002"), (2, long.as_str())]);
    assert_eq!(r.next_proxy_seqno, 3);

    // proxy: data cell and getter agree with the values the JS helpers read
    let pv = &sb["proxy"]["values"];
    let p = ProxyState::from_data_cell(&cell(s(&sb["proxy"], "data"))).unwrap();
    let pd = ProxyData::from_stack(&stack(&sb["proxy"]["getter"])).unwrap();
    assert_eq!(p.lifecycle, lifecycle(pv));
    assert_eq!(p.earned, n(pv, "earned"));
    assert_eq!(p.earned, 40_000_000);
    assert_eq!(p.stake, n(pv, "stake"));
    assert_eq!(u128::from(p.active_clients), n(pv, "activeClients"));
    assert_eq!(u128::from(p.active_workers), n(pv, "activeWorkers"));
    assert_eq!(u128::from(p.saved_seqno), n(pv, "savedSeqno"));
    assert_eq!(p.saved_state_hash, dec32(pv, "savedStateHash"));
    assert_eq!(p.identity.owner, addr(pv, "owner"));
    assert_eq!(p.identity.proxy_public_key, dec32(pv, "proxyPublicKey"));
    assert_eq!(p.identity.root, addr(pv, "root"));
    assert_eq!(p.identity.params, params);
    assert_eq!(
        (pd.lifecycle, pd.earned, pd.stake, pd.unlock_time),
        (p.lifecycle, p.earned, p.stake, p.unlock_time)
    );
    assert_eq!(
        (
            pd.active_clients,
            pd.active_workers,
            pd.saved_seqno,
            pd.saved_state_hash
        ),
        (
            p.active_clients,
            p.active_workers,
            p.saved_seqno,
            p.saved_state_hash
        )
    );
    assert_eq!(
        (pd.owner, pd.proxy_public_key, pd.root),
        (
            p.identity.owner,
            p.identity.proxy_public_key,
            p.identity.root
        )
    );
    assert_eq!(
        ProxyState::from_data_cell(&p.to_data_cell().unwrap()).unwrap(),
        p
    );

    // client
    let cv = &sb["client"]["values"];
    let c = ClientState::from_data_cell(&cell(s(&sb["client"], "data"))).unwrap();
    let cd = ClientData::from_stack(&stack(&sb["client"]["getter"])).unwrap();
    assert_eq!(c.lifecycle, lifecycle(cv));
    assert_eq!(c.balance, n(cv, "balance"));
    assert_eq!(c.balance, 4_700_000_000);
    assert_eq!(c.stake, n(cv, "stake"));
    assert_eq!(u128::from(c.tokens_used), n(cv, "tokensUsed"));
    assert_eq!(c.secret_hash, dec32(cv, "secretHash"));
    assert_eq!(c.secret_hash, [0xab; 32]);
    assert_eq!(c.announced, cv["announced"].as_bool().unwrap());
    assert_eq!(c.identity.owner, client_owner);
    assert_eq!(c.identity.proxy_contract, proxy);
    assert_eq!(c.identity.params.cell(), params.stored_core().cell());
    assert_eq!(
        (
            cd.lifecycle,
            cd.balance,
            cd.stake,
            cd.tokens_used,
            cd.unlock_time
        ),
        (
            c.lifecycle,
            c.balance,
            c.stake,
            c.tokens_used,
            c.unlock_time
        )
    );
    assert_eq!(
        (
            cd.secret_hash,
            cd.owner,
            cd.proxy_contract,
            cd.proxy_public_key,
            cd.announced
        ),
        (
            c.secret_hash,
            c.identity.owner,
            c.identity.proxy_contract,
            c.identity.proxy_public_key,
            c.announced
        )
    );
    assert_eq!(c.to_data_cell().unwrap(), cell(s(&sb["client"], "data")));

    // worker
    let wv = &sb["worker"]["values"];
    let w = WorkerState::from_data_cell(&cell(s(&sb["worker"], "data"))).unwrap();
    let wd = WorkerData::from_stack(&stack(&sb["worker"]["getter"])).unwrap();
    assert_eq!(w.lifecycle, lifecycle(wv));
    assert_eq!(u128::from(w.tokens_paid), n(wv, "tokensPaid"));
    assert_eq!(w.tokens_paid, 200_000);
    assert_eq!(w.announced, wv["announced"].as_bool().unwrap());
    assert_eq!(w.identity.owner, worker_owner);
    assert_eq!(
        (
            wd.lifecycle,
            wd.tokens_paid,
            wd.owner,
            wd.proxy_contract,
            wd.announced
        ),
        (
            w.lifecycle,
            w.tokens_paid,
            w.identity.owner,
            w.identity.proxy_contract,
            w.announced
        )
    );
    assert_eq!(w.to_data_cell().unwrap(), cell(s(&sb["worker"], "data")));

    // messages the contracts sent
    let ob = &sb["observed"];
    let one = |key: &str| {
        let list = ob[key].as_array().unwrap();
        assert_eq!(list.len(), 1, "{key}");
        cell(list[0].as_str().unwrap())
    };
    match ProxyMessage::from_cell(&one("clientProxyRequests")).unwrap() {
        ProxyMessage::ClientRequest(req) => {
            assert_eq!(req.kind, ClientRequestKind::TopUp);
            assert_eq!(req.amount, 5_000_000_000);
            assert!(req.flags.announce() && !req.flags.close());
            assert_eq!(req.owner, client_owner);
            assert_eq!(req.send_excesses_to, client_owner);
        }
        other => panic!("unexpected {other:?}"),
    }
    match ProxyMessage::from_cell(&one("workerProxyRequests")).unwrap() {
        ProxyMessage::WorkerRequest(req) => {
            assert_eq!(req.kind, WorkerRequestKind::Payout);
            assert_eq!(req.tokens, 200_000);
            assert!(req.flags.announce());
            assert_eq!(req.owner, worker_owner);
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        Notification::from_cell(&one("payouts")).unwrap(),
        Notification::Payout { query_id: 1 }
    ));
    assert!(matches!(
        Notification::from_cell(&one("excesses")).unwrap(),
        Notification::Excesses { query_id: 0 }
    ));
    let log = &ob["registerLog"];
    let parsed = ClientRegisteredLog::from_cell(&cell(s(log, "body"))).unwrap();
    assert_eq!(parsed.nonce, 0xdead_beef);
    assert_eq!(parsed.owner, client_owner);
    let dest = s(log, "destination");
    let topic = BigInt::from_bytes_be(
        num_bigint::Sign::Plus,
        &ClientRegisteredLog::destination_bits(),
    );
    assert_eq!(dest, format!("External<256:{topic}>"));
}
