//! Writes the chain-derived toncenter fixtures of tests/data/toncenter/ (addresses, account
//! state, `get_root_data`, a get-method with nested results, transactions): the real contracts
//! run on the emulated chain, and their results are written in toncenter's documented API v2 /
//! v3 shapes. Ignored by default; run it after a contract change:
//!
//! ```sh
//! cargo test -p cocoon-chain --test toncenter_fixtures -- --ignored
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use cocoon_chain::{
    Cell, Chain, ComputePhase, MessageKind, MessageSummary, StackValue, TON, Transaction, arg,
};
use cocoon_ton::FriendlyFlags;
use cocoon_ton::messages::RootMessage;
use common::*;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn raw(a: &cocoon_chain::Address) -> String {
    // toncenter writes raw addresses with upper-case hex
    format!("{}:{}", a.workchain(), hex::encode_upper(a.hash()))
}

fn v2_entry(e: &StackValue) -> Value {
    match e {
        StackValue::Int(v) => {
            let (sign, mag) = if v.sign() == num_bigint::Sign::Minus {
                ("-", -v)
            } else {
                ("", v.clone())
            };
            json!(["num", format!("{sign}0x{}", mag.to_str_radix(16))])
        }
        StackValue::Null => json!(["null", null]),
        // tonlib renders slices as cells
        StackValue::Cell(c) | StackValue::Slice(c) => {
            json!(["cell", {"bytes": c.to_boc_base64()}])
        }
        other => panic!("not in the fixtures: {other:?}"),
    }
}

fn v3_message(m: &MessageSummary, created_lt: u64, now: u32) -> Value {
    let body = m.body.clone().unwrap_or_else(Cell::empty);
    json!({
        "hash": b64(&sha(&[&body.hash()[..], &created_lt.to_be_bytes()].concat())),
        "source": m.source.as_ref().map(raw),
        "destination": m.destination.as_ref().map(raw),
        "value": if m.kind == MessageKind::Internal { Value::String(m.value.to_string()) } else { Value::Null },
        "value_extra_currencies": {},
        "fwd_fee": if m.kind == MessageKind::Internal { json!("266669") } else { Value::Null },
        "ihr_fee": if m.kind == MessageKind::Internal { json!("0") } else { Value::Null },
        "created_lt": created_lt.to_string(),
        "created_at": now.to_string(),
        "opcode": m.op.map(|op| format!("0x{op:08x}")),
        "ihr_disabled": m.kind == MessageKind::Internal,
        "bounce": m.bounce,
        "bounced": m.bounced,
        "import_fee": null,
        "message_content": {
            "hash": b64(&body.hash()),
            "body": body.to_boc_base64(),
            "decoded": null
        },
        "init_state": null
    })
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

fn v3_transaction(t: &Transaction, mc_seqno: u64) -> Value {
    let (success, exit_code, gas_used) = match t.compute {
        ComputePhase::Vm {
            success,
            exit_code,
            gas_used,
        } => (success, exit_code, gas_used),
        _ => panic!("fixture transactions run the VM"),
    };
    let now = t.now;
    json!({
        "account": raw(&t.account),
        "hash": b64(&t.id.hash),
        "lt": t.id.lt.to_string(),
        "now": now,
        "mc_block_seqno": mc_seqno,
        "trace_id": b64(&sha(&t.id.hash)),
        "prev_trans_hash": b64(&sha(&t.id.lt.to_be_bytes())),
        "prev_trans_lt": (t.id.lt - 1_000_000).to_string(),
        "orig_status": "active",
        "end_status": "active",
        "total_fees": t.total_fees.to_string(),
        "total_fees_extra_currencies": {},
        "description": {
            "type": "ord",
            "aborted": t.aborted,
            "destroyed": false,
            "credit_first": false,
            "storage_ph": {"storage_fees_collected": "31", "status_change": "unchanged"},
            "credit_ph": {"credit": t.in_message.as_ref().map(|m| m.value.to_string())},
            "compute_ph": {
                "skipped": false,
                "success": success,
                "msg_state_used": false,
                "account_activated": false,
                "gas_fees": (u128::from(gas_used) * 400).to_string(),
                "gas_used": gas_used.to_string(),
                "gas_limit": "1000000",
                "mode": 0,
                "exit_code": exit_code,
                "vm_steps": 117,
                "vm_init_state_hash": b64(&[0u8; 32]),
                "vm_final_state_hash": b64(&[0u8; 32])
            },
            "action": if success {
                json!({
                    "success": t.action_success.unwrap_or(true),
                    "valid": true,
                    "no_funds": false,
                    "status_change": "unchanged",
                    "result_code": 0,
                    "tot_actions": t.out_messages.len(),
                    "spec_actions": 0,
                    "skipped_actions": 0,
                    "msgs_created": t.out_messages.len(),
                    "action_list_hash": b64(&sha(b"actions")),
                    "tot_msg_size": {"cells": "1", "bits": "705"}
                })
            } else {
                Value::Null
            },
            "bounce": if success { Value::Null } else {
                json!({"type": "ok", "msg_size": {"cells": "1", "bits": "705"}, "req_fwd_fees": "266669", "msg_fees": "88890", "fwd_fees": "177779"})
            }
        },
        "block_ref": {"workchain": 0, "shard": "8000000000000000", "seqno": mc_seqno + 3_020_000},
        "in_msg": t.in_message.as_ref().map(|m| v3_message(m, t.id.lt - 1, now)),
        "out_msgs": t.out_messages.iter().map(|m| v3_message(m, t.id.lt + 1, now)).collect::<Vec<_>>(),
        "account_state_before": null,
        "account_state_after": null,
        "emulated": false
    })
}

fn write(name: &str, value: &Value) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/toncenter")
        .join(name);
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    println!("wrote {}", path.display());
}

#[tokio::test]
#[ignore = "writes tests/data/toncenter; run by hand after a contract change"]
async fn regenerate_fixtures() {
    let net = network().await;
    let chain = &net.chain;
    for body in [
        RootMessage::AddProxyImage {
            query_id: 1,
            hash: [0x11; 32],
        },
        RootMessage::AddWorkerImage {
            query_id: 2,
            hash: [0x22; 32],
        },
        RootMessage::AddModel {
            query_id: 3,
            hash: [0x33; 32],
        },
        RootMessage::RegisterProxy {
            query_id: 4,
            endpoint: "203.0.113.7:11002 203.0.113.7:11001".to_owned(),
        },
    ] {
        let r = send(
            chain,
            net.root_owner,
            net.root,
            TON / 20,
            root_message(body),
            None,
        )
        .await;
        assert!(r.all_succeeded());
    }
    let client_code = net.params.client_code().clone();
    let (init, client) = net.client();
    let topped = send(
        chain,
        net.client_owner,
        client,
        3 * TON + GAS,
        top_up(3 * TON, net.client_owner),
        Some(init),
    )
    .await;
    let first = send(chain, net.client_owner, client, GAS, request_refund(), None).await;
    assert!(first.all_succeeded());
    let refused = send(chain, net.client_owner, client, GAS, request_refund(), None).await;

    write(
        "addresses.json",
        &json!({
            "root": raw(&net.root),
            "root_owner": raw(&net.root_owner),
            "proxy": raw(&net.proxy),
            "client": raw(&client),
            "client_owner": raw(&net.client_owner),
        }),
    );

    let root = chain.account(&net.root).await.unwrap();
    write(
        "getAddressInformation_active.json",
        &json!({
            "ok": true,
            "result": {
                "@type": "raw.fullAccountState",
                "balance": "987654321",
                "extra_currencies": [],
                "code": root.code.unwrap().to_boc_base64(),
                "data": root.data.unwrap().to_boc_base64(),
                "last_transaction_id": {
                    "@type": "internal.transactionId",
                    "lt": "27000003",
                    "hash": b64(&root.last_transaction.unwrap().hash)
                },
                "block_id": {
                    "@type": "ton.blockIdExt",
                    "workchain": -1,
                    "shard": "-9223372036854775808",
                    "seqno": 51148696,
                    "root_hash": b64(&sha(b"block root")),
                    "file_hash": b64(&sha(b"block file"))
                },
                "frozen_hash": "",
                "sync_utime": 1755812850,
                "@extra": "1755812851.2071805:4:0.5311497651829431",
                "state": "active"
            }
        }),
    );

    let root_data = chain
        .run_get_method(&net.root, "get_root_data", &[])
        .await
        .unwrap();
    write(
        "runGetMethod_get_root_data.json",
        &json!({
            "ok": true,
            "result": {
                "@type": "smc.runResult",
                "gas_used": root_data.gas_used,
                "stack": root_data.stack.iter().map(v2_entry).collect::<Vec<_>>(),
                "exit_code": 0,
                "@extra": "1755812852.9912064:0:0.7044590913416012",
                "block_id": {
                    "@type": "ton.blockIdExt",
                    "workchain": -1,
                    "shard": "-9223372036854775808",
                    "seqno": 51148696,
                    "root_hash": b64(&sha(b"block root")),
                    "file_hash": b64(&sha(b"block file"))
                },
                "last_transaction_id": {
                    "@type": "internal.transactionId",
                    "lt": "27000003",
                    "hash": b64(&sha(b"root last tx"))
                }
            }
        }),
    );

    let by_proxy = chain
        .run_get_method(
            &net.proxy,
            "get_client_address",
            &[arg::address(&net.client_owner).unwrap()],
        )
        .await
        .unwrap();
    let address_entry = v2_entry(&by_proxy.stack[0]);
    let code_cell = json!({"@type": "tvm.cell", "bytes": client_code.to_boc_base64()});
    write(
        "runGetMethod_tuple.json",
        &json!({
            "ok": true,
            "result": {
                "@type": "smc.runResult",
                "gas_used": 2471,
                "stack": [
                    address_entry,
                    ["num", "-0x1"],
                    ["null", null],
                    ["tuple", {"@type": "tvm.tuple", "elements": [
                        {"@type": "tvm.stackEntryNumber", "number": {"@type": "tvm.numberDecimal", "number": "42"}},
                        {"@type": "tvm.stackEntryCell", "cell": code_cell},
                        {"@type": "tvm.stackEntryTuple", "tuple": {"@type": "tvm.tuple", "elements": [
                            {"@type": "tvm.stackEntryNumber", "number": {"@type": "tvm.numberDecimal", "number": "7"}}
                        ]}}
                    ]}],
                    ["list", {"@type": "tvm.list", "elements": []}]
                ],
                "exit_code": 0,
                "@extra": "1755812853.1180327:2:0.3372106287164391"
            }
        }),
    );

    let top_up_tx = topped.transaction_on(&client).unwrap();
    let refused_tx = refused.transaction_on(&client).unwrap();
    assert_eq!(refused_tx.exit_code(), Some(408));
    let address_book: serde_json::Map<String, Value> = [
        net.root,
        net.proxy,
        client,
        net.client_owner,
    ]
    .iter()
    .map(|a| {
        (
            raw(a),
            json!({"user_friendly": a.to_friendly(FriendlyFlags::default()), "domain": null}),
        )
    })
    .collect();
    write(
        "transactions.json",
        &json!({
            "transactions": [v3_transaction(refused_tx, 51148700), v3_transaction(top_up_tx, 51148690)],
            "address_book": address_book
        }),
    );
}
