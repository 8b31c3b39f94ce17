//! One emulated chain shared over TCP (two connected handles see the same state) and the
//! operator commands against it: client top-up, withdraw and close, a worker payout voucher,
//! a proxy owner close; each checked against what the contracts report afterwards, and the
//! typed errors for what the contracts refuse. Needs `node` and `npm ci --prefix contracts`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cocoon_chain::emulator::{LocalNetwork, LocalNetworkSpec, ProxySpec, v5r1_address};
use cocoon_chain::operator::{ChainSpec, ContractView, OperationReport, Operator};
use cocoon_chain::{Chain, ChainError, EmulatedChain, SidecarOptions, StackValue, TON};
use cocoon_ton::contracts::{Lifecycle, ProxyData, worker_address};
use cocoon_ton::messages::ClientRegisteredLog;
use cocoon_ton::{SigningKey, Voucher, VoucherKind, VoucherPayload};
use std::time::Duration;

async fn serving_chain() -> EmulatedChain {
    EmulatedChain::spawn_with(SidecarOptions {
        start_time: Some(1_700_000_000),
        listen: Some("127.0.0.1:0".to_owned()),
        ..SidecarOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("cannot start the emulated chain: {e}"))
}

fn json_roundtrip(report: &OperationReport) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(&report.to_json().unwrap()).unwrap();
    assert_eq!(v["operation"], report.operation);
    assert_eq!(v["message_hash"].as_str().unwrap().len(), 64);
    v
}

#[tokio::test]
async fn two_connected_handles_see_one_chain() {
    let host = serving_chain().await;
    let addr = host.listen_addr().unwrap().to_owned();
    let a = EmulatedChain::connect(&addr, Duration::from_secs(30))
        .await
        .unwrap();
    let b = EmulatedChain::connect(&addr, Duration::from_secs(30))
        .await
        .unwrap();
    assert!(!a.owns_sidecar() && host.owns_sidecar());

    let wallet = a.create_wallet("shared", 7 * TON).await.unwrap();
    let seen = b.account(&wallet).await.unwrap();
    assert_eq!(seen.balance, 7 * TON, "b sees the wallet a created");
    b.advance_time(3600).await.unwrap();
    assert_eq!(a.status().await.unwrap().now, 1_700_000_000 + 3600);
    assert_eq!(
        host.status().await.unwrap().seqno,
        b.status().await.unwrap().seqno
    );

    // a connected handle's shutdown leaves the shared chain up
    a.shutdown().await.unwrap();
    assert_eq!(b.account(&wallet).await.unwrap().balance, 7 * TON);
    assert!(matches!(
        EmulatedChain::connect("127.0.0.1:1", Duration::from_secs(5)).await,
        Err(ChainError::Transport { .. })
    ));
}

#[tokio::test]
async fn operator_commands_change_the_chain_as_reported() {
    let host = serving_chain().await;
    let proxy_key = SigningKey::from_bytes(&[7; 32]);
    let client_key = SigningKey::from_bytes(&[11; 32]);
    let worker_key = SigningKey::from_bytes(&[12; 32]);
    let owner_key = SigningKey::from_bytes(&[13; 32]);
    let v5 = |k: &SigningKey| v5r1_address(k.verifying_key().to_bytes()).unwrap();
    let net = LocalNetwork::setup(
        &host,
        &LocalNetworkSpec {
            proxy: Some(ProxySpec {
                public_key: proxy_key.verifying_key().to_bytes(),
                owner: Some(v5(&owner_key)),
            }),
            fund: vec![
                (v5(&client_key), 100 * TON),
                (v5(&worker_key), 10 * TON),
                (v5(&owner_key), 10 * TON),
            ],
            ..LocalNetworkSpec::default()
        },
    )
    .await
    .unwrap();
    let proxy = net.proxy_contract.unwrap();
    assert_eq!(net.proxy_owner, Some(v5(&owner_key)));
    assert_eq!(
        net.funded[&v5(&client_key).to_raw()],
        (100 * TON).to_string()
    );

    let spec: ChainSpec = format!("emulated={}", net.listen.as_deref().unwrap())
        .parse()
        .unwrap();
    let chain = spec.open(None).await.unwrap();
    let timeout = spec.default_confirm_timeout();
    let client = Operator::new(chain.clone(), client_key, timeout).unwrap();
    let worker = Operator::new(chain.clone(), worker_key, timeout).unwrap();
    let owner = Operator::new(chain.clone(), owner_key, timeout).unwrap();

    // top-up: deploys the client contract, books the amount
    let r = client.client_top_up(&proxy, 5 * TON).await.unwrap();
    assert!(matches!(r.before, ContractView::Absent { .. }));
    let ContractView::Client {
        balance,
        stake,
        state,
        ..
    } = &r.after
    else {
        panic!("{r}")
    };
    assert_eq!(
        (balance.as_str(), *state),
        ("5000000000", Lifecycle::Normal)
    );
    let stake: u128 = stake.parse().unwrap();
    let v = json_roundtrip(&r);
    assert_eq!(v["after"]["contract"], "client");
    assert_eq!(v["after"]["balance"], "5000000000");
    let spent = r.wallet_balance_before.parse::<u128>().unwrap()
        - r.wallet_balance_after.parse::<u128>().unwrap();
    assert!(
        (5 * TON..5 * TON + TON / 10).contains(&spent),
        "spent {spent}"
    );
    let (client_contract, _) = client.client_contract(&proxy).await.unwrap();
    assert_eq!(r.contract, client_contract.to_raw());
    assert!(!r.transactions.is_empty() && r.transactions.iter().all(|t| t.success));
    assert!(r.to_string().contains("client_top_up"));

    // register: the owner's nonce is logged by its client contract, a stranger's refused
    let r = client.client_register(&proxy, 0xfeed).await.unwrap();
    assert_eq!(r.operation, "client_register");
    assert!(r.transactions.iter().all(|t| t.success), "{r}");
    let registered = |logs: &[cocoon_chain::ExternalLog]| {
        logs.iter()
            .filter_map(|l| ClientRegisteredLog::from_cell(&l.body).ok())
            .map(|l| (l.nonce, l.owner))
            .collect::<Vec<_>>()
    };
    let logs = chain.external_logs(&client_contract, 16).await.unwrap();
    assert_eq!(registered(&logs), vec![(0xfeed, client.address())]);
    assert!(logs.iter().all(|l| l.source == client_contract));
    match worker.client_register_to(&client_contract, 0xbad).await {
        Err(ChainError::Refused { exit_code, .. }) => assert_eq!(exit_code, Some(401)),
        other => panic!("a stranger's register: {other:?}"),
    }
    let logs = chain.external_logs(&client_contract, 16).await.unwrap();
    assert_eq!(registered(&logs), vec![(0xfeed, client.address())]);
    // the stranger's own contract does not exist: refused before sending
    assert!(matches!(
        worker.client_register(&proxy, 0xbad).await,
        Err(ChainError::UnexpectedState { .. })
    ));

    // a second top-up adds to the balance
    let r = client.client_top_up(&proxy, TON).await.unwrap();
    assert!(matches!(&r.after, ContractView::Client { balance, .. } if balance == "6000000000"));

    // withdraw: everything above the stake comes back to the wallet
    let r = client.client_withdraw(&proxy).await.unwrap();
    let ContractView::Client { balance, .. } = &r.after else {
        panic!("{r}")
    };
    assert_eq!(balance.parse::<u128>().unwrap(), stake);
    let gained = r.wallet_balance_after.parse::<u128>().unwrap()
        - r.wallet_balance_before.parse::<u128>().unwrap();
    assert!(gained > 6 * TON - stake - TON / 10, "gained {gained}");
    json_roundtrip(&r);
    // nothing left above the stake: refused before sending
    assert!(matches!(
        client.client_withdraw(&proxy).await,
        Err(ChainError::UnexpectedState { .. })
    ));

    // close (request_refund): the client contract starts closing
    let r = client.client_close(&proxy).await.unwrap();
    assert!(matches!(
        &r.after,
        ContractView::Client {
            state: Lifecycle::Closing,
            ..
        }
    ));
    // a second request before the unlock time is refused by the contract (408 too early)
    match client.client_close(&proxy).await {
        Err(ChainError::Refused { exit_code, .. }) => assert_eq!(exit_code, Some(408)),
        other => panic!("{other:?}"),
    }

    // worker payout: a voucher the proxy key signed deploys the worker contract and pays
    let params = cocoon_chain::read_registry(chain.as_ref(), &net.root)
        .await
        .unwrap()
        .params()
        .clone();
    let worker_contract = worker_address(
        &worker.address(),
        &proxy,
        &proxy_key.verifying_key().to_bytes(),
        &params,
    )
    .unwrap();
    let voucher = Voucher::sign(
        VoucherPayload::new(VoucherKind::WorkerPayout, 9, 1_000_000, worker_contract),
        &proxy_key,
    )
    .unwrap();
    // the file format is the voucher's serde JSON
    let voucher: Voucher = serde_json::from_str(&serde_json::to_string(&voucher).unwrap()).unwrap();
    assert!(matches!(
        worker.worker_payout(&voucher, None).await,
        Err(ChainError::Voucher { .. })
    ));
    let r = worker.worker_payout(&voucher, Some(&proxy)).await.unwrap();
    assert!(matches!(
        &r.after,
        ContractView::Worker {
            tokens_paid: 1_000_000,
            state: Lifecycle::Normal
        }
    ));
    json_roundtrip(&r);
    let proxy_data = ProxyData::from_stack(
        &chain
            .run_get_method(&proxy, "get_proxy_data", &[] as &[StackValue])
            .await
            .unwrap()
            .stack,
    )
    .unwrap();
    assert_eq!(
        proxy_data.earned,
        1_000_000 * (20 - 16),
        "commission credited"
    );
    // the same voucher again is worthless, and another wallet cannot use it
    assert!(matches!(
        worker.worker_payout(&voucher, Some(&proxy)).await,
        Err(ChainError::Voucher { .. })
    ));
    assert!(matches!(
        client.worker_payout(&voucher, Some(&proxy)).await,
        Err(ChainError::Voucher { .. })
    ));

    // proxy close: only the owner, then the close starts
    assert!(matches!(
        client.proxy_close(&proxy).await,
        Err(ChainError::UnexpectedState { .. })
    ));
    let r = owner.proxy_close(&proxy).await.unwrap();
    assert!(matches!(
        &r.before,
        ContractView::Proxy {
            state: Lifecycle::Normal,
            ..
        }
    ));
    assert!(matches!(
        &r.after,
        ContractView::Proxy {
            state: Lifecycle::Closing,
            ..
        }
    ));
    assert_eq!(json_roundtrip(&r)["after"]["state"], "closing");
    match owner.proxy_close(&proxy).await {
        Err(ChainError::Refused { exit_code, .. }) => assert_eq!(exit_code, Some(408)),
        other => panic!("{other:?}"),
    }
}
