//! The emulated chain running the real compiled contracts: deploys, registry reads, a client
//! top-up through the proxy contract, a real V5R1 wallet signing with cocoon-ton,
//! time-dependent refunds, snapshots, and the errors callers see when the sidecar cannot start
//! or dies. Needs `node` and `npm ci --prefix contracts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cocoon_chain::{
    AccountStatus, Address, Chain, ChainError, EmulatedChain, InternalMessage, MessageKind,
    SidecarOptions, StackValue, TON, arg, read_registry,
};
use cocoon_ton::contracts::{ClientData, ProxyData};
use cocoon_ton::messages::RootMessage;
use cocoon_ton::wallet::{OutgoingMessage, Transfer, WalletV5R1};
use common::*;
use std::path::PathBuf;

#[tokio::test]
async fn root_registry_reads_back_what_the_owner_registered() {
    let net = network().await;
    let chain = &net.chain;

    let registry = read_registry(chain, &net.root).await.unwrap();
    assert_eq!(registry.root, net.root);
    assert_eq!(registry.owner, net.root_owner);
    assert_eq!(registry.version, 0);
    assert!(registry.proxy_image_hashes.is_empty() && registry.registered_proxies.is_empty());
    assert_eq!(registry.params(), &net.params);
    let core = registry.params().core();
    assert_eq!(core.price_per_token, 1000);
    assert_eq!(core.worker_fee_per_token, 800);
    assert_eq!(core.client_delay_before_close, 86_400);
    let dir = contracts();
    assert_eq!(
        registry.params().client_code().hash(),
        dir.compiled("client").unwrap().code_hash
    );
    let first_read = registry.last_transaction;
    assert!(first_read.is_some());

    let proxy_image = [0x11; 32];
    let worker_images = [[0x22; 32], [0x23; 32], [0x01; 32]];
    let model = [0x33; 32];
    let mut bodies = vec![RootMessage::AddProxyImage {
        query_id: 1,
        hash: proxy_image,
    }];
    bodies.extend(worker_images.iter().map(|h| RootMessage::AddWorkerImage {
        query_id: 2,
        hash: *h,
    }));
    bodies.push(RootMessage::AddModel {
        query_id: 3,
        hash: model,
    });
    bodies.push(RootMessage::RegisterProxy {
        query_id: 4,
        endpoint: "10.0.0.1:11002 10.0.0.1:11001".to_owned(),
    });
    bodies.push(RootMessage::RegisterProxy {
        query_id: 5,
        endpoint: "10.0.0.2:11002".to_owned(),
    });
    for body in bodies {
        let r = send(
            chain,
            net.root_owner,
            net.root,
            TON / 20,
            root_message(body),
            None,
        )
        .await;
        assert!(r.transaction_on(&net.root).unwrap().succeeded(), "{r:#?}");
    }

    let registry = read_registry(chain, &net.root).await.unwrap();
    assert_ne!(
        registry.last_transaction, first_read,
        "a change shows in the last transaction"
    );
    assert_eq!(registry.version, 7);
    assert_eq!(registry.next_proxy_seqno, 2);
    assert!(registry.is_proxy_image_allowed(&proxy_image));
    assert!(!registry.is_proxy_image_allowed(&[0x22; 32]));
    assert_eq!(
        registry.worker_image_hashes,
        vec![[0x01; 32], [0x22; 32], [0x23; 32]],
        "all keys, in order"
    );
    assert!(registry.is_model_allowed(&model));
    let endpoints: Vec<_> = registry.proxy_endpoints().collect();
    assert_eq!(
        endpoints,
        vec![
            (0, vec!["10.0.0.1:11002", "10.0.0.1:11001"]),
            (1, vec!["10.0.0.2:11002"])
        ]
    );

    // the root's own get-methods agree with what was parsed from its data
    let data = chain
        .run_get_method(&net.root, "get_root_data", &[])
        .await
        .unwrap();
    let mut r = data.reader();
    assert_eq!(r.read_address().unwrap(), registry.owner);
    assert_eq!(r.read_u32().unwrap(), registry.version);
    assert_eq!(r.read_u32().unwrap(), registry.next_proxy_seqno);
    assert_eq!(r.read_cell().unwrap(), registry.params().to_cell().unwrap());
    let allowed = chain
        .run_get_method(&net.root, "is_model_allowed", &[arg::uint256(model)])
        .await
        .unwrap();
    assert!(allowed.reader().read_bool().unwrap());
    let refused = chain
        .run_get_method(&net.root, "is_model_allowed", &[arg::uint256([9; 32])])
        .await
        .unwrap();
    assert!(!refused.reader().read_bool().unwrap());
}

#[tokio::test]
async fn client_top_up_goes_through_the_proxy_contract() {
    let net = network().await;
    let chain = &net.chain;

    // The proxy contract computes its client's address; cocoon-ton must agree.
    let (init, client) = net.client();
    let by_proxy = chain
        .run_get_method(
            &net.proxy,
            "get_client_address",
            &[arg::address(&net.client_owner).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(by_proxy.reader().read_address().unwrap(), client);
    assert_eq!(
        chain.account(&client).await.unwrap().status,
        AccountStatus::Uninit,
        "nothing deployed yet"
    );

    let proxy_before = chain.account(&net.proxy).await.unwrap().balance;
    let status_before = chain.status().await.unwrap();
    let amount = 5 * TON;
    let receipt = send(
        chain,
        net.client_owner,
        client,
        amount + GAS,
        top_up(amount, net.client_owner),
        Some(init),
    )
    .await;
    assert!(receipt.all_succeeded(), "{receipt:#?}");
    let on_client = receipt.transaction_on(&client).unwrap();
    assert_eq!(on_client.in_op(), Some(op::CLIENT_TOP_UP));
    assert!(
        receipt.transaction_on(&net.proxy).is_some(),
        "forwarded to the proxy"
    );
    assert!(receipt.message_hash.is_some());
    assert_eq!(chain.status().await.unwrap().seqno, status_before.seqno + 1);

    // cocoon-ton's typed readers take the result stack as it comes
    let data = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    let client_data = ClientData::from_stack(&data.stack).unwrap();
    assert_eq!(client_data.balance, amount);
    assert_eq!(client_data.stake, net.params.core().min_client_stake);
    assert_eq!(client_data.tokens_used, 0);
    assert_eq!(client_data.owner, net.client_owner);
    assert_eq!(client_data.proxy_contract, net.proxy);
    assert_eq!(client_data.proxy_public_key, PROXY_KEY);
    assert!(client_data.announced, "announced to the proxy");
    // and so does the positional reader
    let mut r = data.reader();
    assert_eq!(r.read_u32().unwrap(), 0, "state normal");
    assert_eq!(r.read_nanotons().unwrap(), amount, "balance");

    let proxy_data = chain
        .run_get_method(&net.proxy, "get_proxy_data", &[])
        .await
        .unwrap();
    let proxy_data = ProxyData::from_stack(&proxy_data.stack).unwrap();
    assert_eq!(proxy_data.earned, 0);
    assert_eq!(proxy_data.stake, net.params.core().min_proxy_stake);
    assert_eq!(proxy_data.active_clients, 1);

    let proxy_after = chain.account(&net.proxy).await.unwrap();
    assert_eq!(proxy_after.status, AccountStatus::Active);
    assert!(proxy_after.balance >= proxy_before + amount - TON / 100);
    assert!(proxy_after.code.is_some() && proxy_after.data.is_some());

    // a second, smaller top-up; the history lists both, newest first
    let again = send(
        chain,
        net.client_owner,
        client,
        TON + GAS,
        top_up(TON, net.client_owner),
        None,
    )
    .await;
    assert!(again.all_succeeded(), "{again:#?}");
    let history = chain.transactions(&client, 10).await.unwrap();
    assert_eq!(history.len(), 2, "{history:#?}");
    assert!(history[0].id.lt > history[1].id.lt, "newest first");
    assert_eq!(history[0].in_message.as_ref().unwrap().value, TON + GAS);
    let first = &history[1];
    assert_eq!(first.in_op(), Some(op::CLIENT_TOP_UP));
    assert!(first.succeeded());
    let inbound = first.in_message.as_ref().unwrap();
    assert_eq!(inbound.kind, MessageKind::Internal);
    assert_eq!(inbound.source, Some(net.client_owner));
    assert_eq!(inbound.value, amount + GAS);
    assert_eq!(
        inbound.body.as_ref(),
        Some(&top_up(amount, net.client_owner))
    );
    assert!(
        first
            .out_messages
            .iter()
            .any(|m| m.destination == Some(net.proxy) && m.op == Some(op::CLIENT_PROXY_REQUEST))
    );
    assert_eq!(
        chain.transactions(&client, 1).await.unwrap().len(),
        1,
        "limit applies"
    );
    let d = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    assert_eq!(
        ClientData::from_stack(&d.stack).unwrap().balance,
        amount + TON,
        "both top-ups booked"
    );
}

#[tokio::test]
async fn a_signed_v5r1_wallet_tops_up_through_send_external() {
    let net = network().await;
    let chain = &net.chain;
    let key = cocoon_ton::SigningKey::from_bytes(&[42; 32]);
    let wallet = WalletV5R1::new(key.verifying_key().to_bytes());
    let wallet_address = wallet.address().unwrap();

    // fund the (not yet deployed) wallet from a local one
    let funding = chain
        .send_internal(
            &net.client_owner,
            &InternalMessage {
                dest: wallet_address,
                value: 20 * TON,
                bounce: false,
                state_init: None,
                body: None,
            },
        )
        .await
        .unwrap();
    // an account without code only takes the value (its compute phase is skipped)
    let credited = funding.transaction_on(&wallet_address).unwrap();
    assert!(matches!(
        credited.compute,
        cocoon_chain::ComputePhase::Skipped { .. }
    ));
    let state = chain.account(&wallet_address).await.unwrap();
    assert_eq!(state.status, AccountStatus::Uninit);
    assert_eq!(state.balance, 20 * TON);

    // the wallet owns a client contract at the proxy
    let init = cocoon_ton::contracts::client_state_init(
        &wallet_address,
        &net.proxy,
        &PROXY_KEY,
        &net.params,
    )
    .unwrap();
    let client = init.address(0).unwrap();
    let now = u32::try_from(chain.status().await.unwrap().now).unwrap();
    let signed = wallet
        .sign_transfer(
            &key,
            &Transfer {
                seqno: 0,
                valid_until: now + 600,
                messages: vec![OutgoingMessage::new(InternalMessage {
                    dest: client,
                    value: 2 * TON + GAS,
                    bounce: true,
                    state_init: Some(init),
                    body: Some(top_up(2 * TON, wallet_address)),
                })],
            },
        )
        .unwrap();
    let message = signed.message.to_cell().unwrap();
    let receipt = chain.send_external(&message).await.unwrap();
    assert_eq!(receipt.message_hash, Some(message.hash()));
    assert!(receipt.all_succeeded(), "{receipt:#?}");
    assert_eq!(receipt.transactions[0].account, wallet_address);
    assert_eq!(
        receipt.transactions[0].in_message.as_ref().unwrap().kind,
        MessageKind::ExternalIn
    );
    let client_data = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    assert_eq!(
        ClientData::from_stack(&client_data.stack).unwrap().balance,
        2 * TON
    );

    // the wallet is deployed and its seqno moved on; a replay is refused by the wallet
    let state = chain.account(&wallet_address).await.unwrap();
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(
        WalletV5R1::seqno_from_data(state.data.as_ref().unwrap()).unwrap(),
        1
    );
    let replay = chain.send_external(&message).await;
    assert!(
        matches!(replay, Err(ChainError::Sidecar { ref code, .. }) if code == "emulation_failed"),
        "{replay:?}"
    );
}

#[tokio::test]
async fn refund_waits_for_the_clients_delay_on_the_chain_clock() {
    let net = network().await;
    let chain = &net.chain;
    let (init, client) = net.client();
    let amount = 3 * TON;
    let r = send(
        chain,
        net.client_owner,
        client,
        amount + GAS,
        top_up(amount, net.client_owner),
        Some(init),
    )
    .await;
    assert!(r.all_succeeded());

    let start = chain.status().await.unwrap().now;
    assert_eq!(start, 1_700_000_000);
    let snapshot = chain.snapshot().await.unwrap();

    // first request: closing, everything above the stake back at once
    let r = send(chain, net.client_owner, client, GAS, request_refund(), None).await;
    assert!(r.transaction_on(&client).unwrap().succeeded(), "{r:#?}");
    let d = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    let data = ClientData::from_stack(&d.stack).unwrap();
    assert_eq!(u64::from(data.unlock_time), start + 86_400, "unlock time");
    let mut rd = d.reader();
    assert_eq!(rd.read_u32().unwrap(), 1, "closing");

    // second request before the unlock: refused by the contract with 408
    let r = send(chain, net.client_owner, client, GAS, request_refund(), None).await;
    let refused = r.transaction_on(&client).unwrap();
    assert!(!refused.succeeded());
    assert_eq!(refused.exit_code(), Some(ERR_TOO_EARLY));

    // after the delay: the rest is paid and the client is closed
    assert_eq!(chain.advance_time(86_400).await.unwrap(), start + 86_400);
    assert_eq!(chain.status().await.unwrap().now, start + 86_400);
    let owner_before = chain.account(&net.client_owner).await.unwrap().balance;
    let r = send(chain, net.client_owner, client, GAS, request_refund(), None).await;
    assert!(r.all_succeeded(), "{r:#?}");
    let d = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    assert_eq!(d.reader().read_u32().unwrap(), 2, "closed");
    let owner_after = chain.account(&net.client_owner).await.unwrap().balance;
    assert!(owner_after > owner_before + net.params.core().min_client_stake - GAS);

    // the clock cannot go back; a snapshot can
    assert!(matches!(
        chain.set_time(start).await,
        Err(ChainError::Sidecar { code, .. }) if code == "bad_request"
    ));
    chain.restore(snapshot).await.unwrap();
    assert_eq!(chain.status().await.unwrap().now, start);
    let d = chain
        .run_get_method(&client, "get_client_data", &[])
        .await
        .unwrap();
    let mut rd = d.reader();
    assert_eq!(rd.read_u32().unwrap(), 0, "normal again");
    assert_eq!(rd.read_nanotons().unwrap(), amount, "balance restored");
    assert_eq!(chain.set_time(start + 10).await.unwrap(), start + 10);
}

#[tokio::test]
async fn failures_are_typed() {
    let chain = chain().await;
    let nowhere = Address::new(0, [0xab; 32]);
    assert!(matches!(
        chain.run_get_method(&nowhere, "get_root_data", &[]).await,
        Err(ChainError::AccountNotActive { .. })
    ));
    assert!(matches!(
        read_registry(&chain, &nowhere).await,
        Err(ChainError::AccountNotActive { .. })
    ));
    let state = chain.account(&nowhere).await.unwrap();
    assert_eq!(state.balance, 0);
    assert!(state.code.is_none() && state.last_transaction.is_none());
    assert!(chain.transactions(&nowhere, 5).await.unwrap().is_empty());

    let owner = chain.create_wallet("owner", 100 * TON).await.unwrap();
    let root_init = cocoon_ton::contracts::root_state_init(&owner, &params()).unwrap();
    let root = chain.deploy(&owner, &root_init, TON).await.unwrap();
    match chain
        .run_get_method(&root.address, "no_such_method", &[])
        .await
    {
        Err(ChainError::GetMethodFailed { exit_code, .. }) => assert_eq!(exit_code, 11),
        other => panic!("unexpected {other:?}"),
    }
    // a wallet is not a registry
    assert!(matches!(
        read_registry(&chain, &owner).await,
        Err(ChainError::Cell { .. })
    ));

    // a wallet that was never created
    let refused = chain
        .send_internal(
            &nowhere,
            &InternalMessage::new(root.address, TON, cocoon_chain::Cell::empty()),
        )
        .await;
    assert!(
        matches!(refused, Err(ChainError::Sidecar { ref code, .. }) if code == "unknown_wallet"),
        "{refused:?}"
    );

    // a cell that is not a message
    let bad = chain.send_external(&cocoon_chain::Cell::empty()).await;
    assert!(matches!(bad, Err(ChainError::Sidecar { .. })), "{bad:?}");

    // tuples and nulls travel as arguments too
    let echoed = chain
        .run_get_method(
            &root.address,
            "get_version",
            &[StackValue::Tuple(vec![StackValue::Null])],
        )
        .await
        .unwrap();
    assert_eq!(echoed.stack.last(), Some(&arg::int(0)), "{echoed:?}");

    // the sidecar dies: pending and later calls fail with SidecarExited, no hang, no panic
    chain.kill();
    let after = chain.status().await;
    assert!(
        matches!(after, Err(ChainError::SidecarExited { .. })),
        "{after:?}"
    );
    let again = chain.account(&owner).await;
    assert!(
        matches!(again, Err(ChainError::SidecarExited { .. })),
        "{again:?}"
    );
}

#[tokio::test]
async fn start_failures_say_what_to_do() {
    let missing_node = EmulatedChain::spawn_with(SidecarOptions {
        node: Some(PathBuf::from("/nonexistent/bin/node")),
        ..SidecarOptions::default()
    })
    .await;
    assert!(
        matches!(missing_node, Err(ChainError::NodeNotFound { .. })),
        "{missing_node:?}"
    );

    let no_dir = EmulatedChain::spawn_with(SidecarOptions {
        contracts_dir: Some(PathBuf::from("/nonexistent/contracts")),
        ..SidecarOptions::default()
    })
    .await;
    assert!(
        matches!(no_dir, Err(ChainError::ContractsDirMissing { .. })),
        "{no_dir:?}"
    );

    // a contracts directory whose npm packages were never installed
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sidecar")).unwrap();
    std::fs::copy(
        contracts().path().join("sidecar/server.mjs"),
        dir.path().join("sidecar/server.mjs"),
    )
    .unwrap();
    let no_modules = EmulatedChain::spawn_with(SidecarOptions {
        contracts_dir: Some(dir.path().to_path_buf()),
        ..SidecarOptions::default()
    })
    .await;
    match no_modules {
        Err(e @ ChainError::NodeModulesMissing { .. }) => {
            assert!(e.to_string().contains("npm ci --prefix contracts"), "{e}");
        }
        other => panic!("unexpected {other:?}"),
    }

    // a script that dies at once
    std::fs::write(
        dir.path().join("sidecar/server.mjs"),
        "console.error('boom'); process.exit(3);\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("node_modules/@ton/sandbox")).unwrap();
    std::fs::write(
        dir.path().join("node_modules/@ton/sandbox/package.json"),
        "{}",
    )
    .unwrap();
    let dies = EmulatedChain::spawn_with(SidecarOptions {
        contracts_dir: Some(dir.path().to_path_buf()),
        ..SidecarOptions::default()
    })
    .await;
    match dies {
        Err(ChainError::SidecarExited { detail }) => assert!(detail.contains("boom"), "{detail}"),
        other => panic!("unexpected {other:?}"),
    }
}

fn summary(name: &str, mut samples: Vec<std::time::Duration>) {
    samples.sort();
    let n = samples.len();
    let mean = samples.iter().sum::<std::time::Duration>() / u32::try_from(n).unwrap();
    println!(
        "{name:<34} n={n:<4} mean {:>8.2} ms  p50 {:>8.2} ms  p90 {:>8.2} ms",
        mean.as_secs_f64() * 1e3,
        samples[n / 2].as_secs_f64() * 1e3,
        samples[n * 9 / 10].as_secs_f64() * 1e3,
    );
}

/// The figures quoted in docs/chain.md.
#[tokio::test]
#[ignore = "timing report: cargo test -p cocoon-chain --test emulated -- --ignored --nocapture"]
async fn sidecar_timings() {
    use std::time::Instant;
    let mut starts = Vec::new();
    for _ in 0..5 {
        let began = Instant::now();
        let c = chain().await;
        starts.push(began.elapsed());
        c.shutdown().await.unwrap();
    }
    summary("sidecar start (spawn to ready)", starts);

    let net = network().await;
    let chain = &net.chain;
    let (init, client) = net.client();
    let r = send(
        chain,
        net.client_owner,
        client,
        TON + GAS,
        top_up(TON, net.client_owner),
        Some(init),
    )
    .await;
    assert!(r.all_succeeded());

    let mut t = Vec::new();
    for _ in 0..300 {
        let began = Instant::now();
        chain.status().await.unwrap();
        t.push(began.elapsed());
    }
    summary("status (protocol round trip)", t);

    let mut t = Vec::new();
    for _ in 0..300 {
        let began = Instant::now();
        chain.account(&net.proxy).await.unwrap();
        t.push(began.elapsed());
    }
    summary("account state (proxy)", t);

    let mut t = Vec::new();
    for _ in 0..300 {
        let began = Instant::now();
        chain
            .run_get_method(&client, "get_client_data", &[])
            .await
            .unwrap();
        t.push(began.elapsed());
    }
    summary("get-method (get_client_data)", t);

    let mut t = Vec::new();
    for _ in 0..100 {
        let began = Instant::now();
        read_registry(chain, &net.root).await.unwrap();
        t.push(began.elapsed());
    }
    summary("registry read (account + parse)", t);

    let mut t = Vec::new();
    for _ in 0..200 {
        let began = Instant::now();
        let r = send(
            chain,
            net.client_owner,
            client,
            TON / 10 + GAS,
            top_up(TON / 10, net.client_owner),
            None,
        )
        .await;
        t.push(began.elapsed());
        assert_eq!(
            r.transactions.len(),
            4,
            "wallet, client, proxy, excess back"
        );
    }
    summary("top-up (4 transactions)", t);
}
