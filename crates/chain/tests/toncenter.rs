//! The toncenter client against a loopback server that replays toncenter-shaped answers from
//! tests/data/toncenter/ (see the README there): account states, get-methods (the root registry
//! included), transactions, the masterchain head, sending; 429 and 5xx retries, give-up, bad
//! bodies, the API key header and the client-side rate limit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use cocoon_chain::{
    AccountStatus, Address, Cell, Chain, ChainError, ComputePhase, InternalMessage, MessageKind,
    StackValue, Toncenter, ToncenterConfig, arg, parse_address, read_registry,
};
use common::op;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/toncenter")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(data_dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Addresses the fixtures were generated with (see `regenerate_fixtures`).
fn fixture_addresses() -> serde_json::Value {
    serde_json::from_str(&fixture("addresses.json")).unwrap()
}

fn fixture_address(name: &str) -> Address {
    parse_address(fixture_addresses()[name].as_str().unwrap()).unwrap()
}

#[derive(Debug, Clone)]
struct Seen {
    method: Method,
    path: String,
    query: String,
    api_key: Option<String>,
    body: String,
    at: Instant,
}

#[derive(Debug, Clone)]
struct Canned {
    status: u16,
    retry_after: Option<&'static str>,
    body: String,
}

fn ok(body: String) -> Canned {
    Canned {
        status: 200,
        retry_after: None,
        body,
    }
}

fn status(status: u16, body: String) -> Canned {
    Canned {
        status,
        retry_after: None,
        body,
    }
}

/// A loopback toncenter: per path, a queue of answers (the last one repeats).
#[derive(Debug, Default)]
struct Replay {
    script: Mutex<HashMap<String, VecDeque<Canned>>>,
    seen: Mutex<Vec<Seen>>,
}

impl Replay {
    fn on(&self, path: &str, answers: Vec<Canned>) {
        self.script
            .lock()
            .unwrap()
            .insert(path.to_owned(), answers.into());
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn answer(
    State(replay): State<Arc<Replay>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    replay.seen.lock().unwrap().push(Seen {
        method,
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        api_key: headers
            .get("x-api-key")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: String::from_utf8_lossy(&body).into_owned(),
        at: Instant::now(),
    });
    let canned = {
        let mut script = replay.script.lock().unwrap();
        match script.get_mut(uri.path()) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    let Some(c) = canned else {
        return (StatusCode::NOT_FOUND, "{\"detail\":\"Not Found\"}").into_response();
    };
    let mut response = (
        StatusCode::from_u16(c.status).unwrap(),
        [("content-type", "application/json")],
        c.body,
    )
        .into_response();
    if let Some(ra) = c.retry_after {
        response
            .headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    response
}

async fn serve() -> (Arc<Replay>, String) {
    let replay = Arc::new(Replay::default());
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&replay));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (replay, format!("http://{addr}"))
}

/// Fast retries and no rate limit, so tests run in milliseconds.
fn quick(base: &str) -> ToncenterConfig {
    ToncenterConfig {
        requests_per_second: Some(1000.0),
        max_retries: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(5),
        ..ToncenterConfig::new(base)
    }
}

#[tokio::test]
async fn account_states_from_api_v2() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    let root = fixture_address("root");

    replay.on(
        "/api/v2/getAddressInformation",
        vec![ok(fixture("getAddressInformation_active.json"))],
    );
    let state = client.account(&root).await.unwrap();
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(state.balance, 987_654_321);
    let code_hash = state.code.as_ref().unwrap().hash();
    assert_eq!(
        code_hash,
        common::contracts().compiled("root").unwrap().code_hash
    );
    let root_state =
        cocoon_ton::contracts::RootState::from_data_cell(&state.data.unwrap()).unwrap();
    assert_eq!(root_state.owner, fixture_address("root_owner"));
    assert_eq!(state.last_transaction.unwrap().lt, 27_000_003);
    let seen = replay.seen();
    assert_eq!(seen[0].method, Method::GET);
    assert_eq!(
        seen[0].query,
        format!("address={}", root.to_raw().replace(':', "%3A"))
    );
    assert_eq!(seen[0].api_key, None);

    replay.on(
        "/api/v2/getAddressInformation",
        vec![ok(fixture("getAddressInformation_uninit.json"))],
    );
    let state = client.account(&root).await.unwrap();
    assert_eq!(state.status, AccountStatus::Nonexistent);
    assert_eq!(state.balance, 0);
    assert!(state.code.is_none() && state.data.is_none() && state.last_transaction.is_none());
}

#[tokio::test]
async fn root_registry_through_toncenter() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/getAddressInformation",
        vec![ok(fixture("getAddressInformation_active.json"))],
    );
    let root = fixture_address("root");
    let registry = read_registry(&client, &root).await.unwrap();
    assert_eq!(registry.root, root);
    assert_eq!(registry.owner, fixture_address("root_owner"));
    assert_eq!(registry.version, 4);
    assert!(registry.is_proxy_image_allowed(&[0x11; 32]));
    assert!(registry.is_worker_image_allowed(&[0x22; 32]));
    assert!(registry.is_model_allowed(&[0x33; 32]));
    assert_eq!(
        registry.proxy_endpoints().collect::<Vec<_>>(),
        vec![(0, vec!["203.0.113.7:11002", "203.0.113.7:11001"])]
    );
    assert_eq!(registry.params(), &common::params());
    assert_eq!(registry.last_transaction.unwrap().lt, 27_000_003);
    let seen = replay.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/api/v2/getAddressInformation");

    // the root's own get-method, read over toncenter, agrees
    replay.on(
        "/api/v2/runGetMethod",
        vec![ok(fixture("runGetMethod_get_root_data.json"))],
    );
    let data = client
        .run_get_method(&root, "get_root_data", &[])
        .await
        .unwrap();
    let mut r = data.reader();
    assert_eq!(r.read_address().unwrap(), registry.owner);
    assert_eq!(r.read_u32().unwrap(), registry.version);
    assert_eq!(r.read_u32().unwrap(), registry.next_proxy_seqno);
    assert_eq!(r.read_cell().unwrap(), registry.params().to_cell().unwrap());
    for _ in 0..4 {
        assert!(
            r.read_cell_opt().unwrap().is_some(),
            "four non-empty dictionaries"
        );
    }
    r.expect_end().unwrap();

    let seen = replay.seen();
    assert_eq!(seen[1].method, Method::POST);
    assert_eq!(seen[1].path, "/api/v2/runGetMethod");
    let sent: serde_json::Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(sent["method"], "get_root_data");
    assert_eq!(sent["address"], root.to_raw());
    assert_eq!(sent["stack"], serde_json::json!([]));
}

#[tokio::test]
async fn get_method_arguments_and_nested_results() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/runGetMethod",
        vec![ok(fixture("runGetMethod_tuple.json"))],
    );
    let owner = fixture_address("client_owner");
    let args = [
        arg::int(-5),
        arg::address(&owner).unwrap(),
        arg::uint256([0x01; 32]),
    ];
    let contract = fixture_address("proxy");
    let result = client
        .run_get_method(&contract, "get_client_address", &args)
        .await
        .unwrap();
    assert_eq!(result.gas_used, 2471);
    let mut r = result.reader();
    assert_eq!(r.read_address().unwrap(), fixture_address("client"));
    assert_eq!(r.read_i64().unwrap(), -1);
    assert_eq!(r.read_cell_opt().unwrap(), None);
    match r.next_value().unwrap() {
        StackValue::Tuple(items) => {
            assert_eq!(items.len(), 3);
            assert_eq!(items[0], arg::int(42));
            assert!(matches!(items[1], StackValue::Cell(_)));
            assert_eq!(items[2], StackValue::Tuple(vec![arg::int(7)]));
        }
        other => panic!("expected a tuple, got {other:?}"),
    }
    assert_eq!(r.next_value().unwrap(), &StackValue::Tuple(vec![]));
    r.expect_end().unwrap();

    let sent: serde_json::Value = serde_json::from_str(&replay.seen()[0].body).unwrap();
    assert_eq!(sent["stack"][0], serde_json::json!(["num", "-5"]));
    assert_eq!(sent["stack"][1][0], "tvm.Slice");
    let slice = Cell::from_boc_base64(sent["stack"][1][1].as_str().unwrap()).unwrap();
    assert_eq!(slice.parse_fully(|s| s.load_address()).unwrap(), owner);
    assert_eq!(
        sent["stack"][2],
        serde_json::json!([
            "num",
            "454086624460063511464984254936031011189294057512315937409637584344757371137"
        ])
    );

    // tuples cannot be sent to toncenter
    let refused = client
        .run_get_method(&contract, "x", &[StackValue::Tuple(vec![])])
        .await;
    assert!(matches!(refused, Err(ChainError::Config(_))), "{refused:?}");
}

#[tokio::test]
async fn get_method_exit_codes_are_errors() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/runGetMethod",
        vec![ok(fixture("runGetMethod_exit_11.json"))],
    );
    let contract = fixture_address("root");
    match client
        .run_get_method(&contract, "no_such_method", &[])
        .await
    {
        Err(ChainError::GetMethodFailed {
            exit_code, method, ..
        }) => {
            assert_eq!(exit_code, 11);
            assert_eq!(method, "no_such_method");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn transactions_and_masterchain_head_from_api_v3() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v3/transactions",
        vec![ok(fixture("transactions.json"))],
    );
    replay.on(
        "/api/v3/masterchainInfo",
        vec![ok(fixture("masterchainInfo.json"))],
    );
    let client_contract = fixture_address("client");
    let proxy = fixture_address("proxy");
    let owner = fixture_address("client_owner");

    let txs = client.transactions(&client_contract, 5).await.unwrap();
    assert_eq!(txs.len(), 2);
    let (refused, top_up) = (&txs[0], &txs[1]);
    assert!(refused.id.lt > top_up.id.lt);
    assert_eq!(refused.account, client_contract);
    assert!(!refused.succeeded());
    assert_eq!(refused.exit_code(), Some(408));
    assert_eq!(refused.in_op(), Some(op::CLIENT_REQUEST_REFUND));
    assert!(refused.out_messages[0].bounced);
    assert_eq!(refused.out_messages[0].destination, Some(owner));

    assert!(top_up.succeeded());
    assert_eq!(top_up.in_op(), Some(op::CLIENT_TOP_UP));
    let inbound = top_up.in_message.as_ref().unwrap();
    assert_eq!(inbound.kind, MessageKind::Internal);
    assert_eq!(inbound.source, Some(owner));
    assert_eq!(inbound.value, 3_100_000_000);
    assert!(inbound.bounce);
    assert!(inbound.body.is_some());
    assert!(matches!(
        top_up.compute,
        ComputePhase::Vm { gas_used: 5630, .. }
    ));
    assert_eq!(top_up.out_messages[0].destination, Some(proxy));
    assert_eq!(top_up.out_messages[0].op, Some(0x6544_8ff4));
    assert_eq!(top_up.total_fees, 2_489_596);

    let q = &replay.seen()[0].query;
    assert!(
        q.contains("limit=5") && q.contains("sort=desc") && q.contains("account=0%3A"),
        "{q}"
    );

    let head = client.status().await.unwrap();
    assert_eq!(head.seqno, 51_148_696);
    assert_eq!(head.now, 1_755_812_850);
}

#[tokio::test]
async fn register_logs_from_api_v3() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v3/transactions",
        vec![ok(fixture("transactions_register.json"))],
    );
    let client_contract = fixture_address("client");
    let owner = fixture_address("client_owner");

    let logs = client.external_logs(&client_contract, 16).await.unwrap();
    // The stranger's register failed (exit code 401): it logged nothing.
    assert_eq!(logs.len(), 1, "{logs:?}");
    let log = &logs[0];
    assert_eq!(log.source, client_contract);
    assert_eq!(log.transaction.lt, 34_000_000);
    assert_eq!(log.now, 1_700_000_100);
    let registered = cocoon_ton::messages::ClientRegisteredLog::from_cell(&log.body).unwrap();
    assert_eq!(registered.nonce, 0x9e37_79b9_7f4a_7c15);
    assert_eq!(registered.owner, owner);
    let q = &replay.seen()[0].query;
    assert!(q.contains("limit=16") && q.contains("sort=desc"), "{q}");

    // The same page read as transactions: the log is the external-out message without a
    // destination, the refused register bounced back to the stranger.
    replay.on(
        "/api/v3/transactions",
        vec![ok(fixture("transactions_register.json"))],
    );
    let txs = client.transactions(&client_contract, 16).await.unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].in_op(), Some(op::CLIENT_REGISTER));
    assert_eq!(txs[0].out_messages[0].kind, MessageKind::ExternalOut);
    assert_eq!(txs[0].out_messages[0].destination, None);
    assert_eq!(txs[1].exit_code(), Some(401));
    assert!(!txs[1].succeeded());
}

#[tokio::test]
async fn sending_returns_the_message_hash() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/sendBocReturnHash",
        vec![ok(fixture("sendBocReturnHash.json"))],
    );
    let message = common::request_refund();
    let receipt = client.send_external(&message).await.unwrap();
    assert!(
        receipt.transactions.is_empty(),
        "a network answers before processing"
    );
    assert_eq!(
        hex::encode(receipt.message_hash.unwrap()),
        "3c5b57e2aa19c8b3e4f6e0bb1d8b1b3d5cbbf41a4f8f0d3e3f0c6a4d6e7b9a11"
    );
    let sent: serde_json::Value = serde_json::from_str(&replay.seen()[0].body).unwrap();
    assert_eq!(sent["boc"], message.to_boc_base64());

    let transfer = InternalMessage::new(fixture_address("client"), 1, Cell::empty());
    assert!(matches!(
        client
            .send_internal(&fixture_address("client_owner"), &transfer)
            .await,
        Err(ChainError::Unsupported {
            backend: "toncenter",
            ..
        })
    ));
}

#[tokio::test]
async fn rate_limited_then_served() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v3/masterchainInfo",
        vec![
            Canned {
                status: 429,
                retry_after: Some("0"),
                body: fixture("error_429.json"),
            },
            status(429, fixture("error_429.json")),
            ok(fixture("masterchainInfo.json")),
        ],
    );
    let head = client.status().await.unwrap();
    assert_eq!(head.seqno, 51_148_696);
    assert_eq!(replay.seen().len(), 3, "two refusals, then the answer");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/getAddressInformation",
        vec![
            status(500, fixture("error_500.json")),
            status(502, "<html>bad gateway</html>".to_owned()),
            ok(fixture("getAddressInformation_active.json")),
        ],
    );
    let state = client.account(&fixture_address("root")).await.unwrap();
    assert_eq!(state.status, AccountStatus::Active);
    assert_eq!(replay.seen().len(), 3);
}

#[tokio::test]
async fn gives_up_after_the_last_retry() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v3/masterchainInfo",
        vec![status(503, fixture("error_500.json"))],
    );
    match client.status().await {
        Err(ChainError::RetriesExhausted { attempts, last, .. }) => {
            assert_eq!(attempts, 4);
            assert!(last.contains("503"), "{last}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(replay.seen().len(), 4);
}

#[tokio::test]
async fn refusals_are_not_retried() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    replay.on(
        "/api/v2/getAddressInformation",
        vec![status(422, fixture("error_422.json"))],
    );
    let refused = client.account(&fixture_address("root")).await;
    assert!(
        matches!(refused, Err(ChainError::HttpStatus { status: 422, .. })),
        "{refused:?}"
    );
    assert_eq!(replay.seen().len(), 1);

    // an API v2 refusal keeps the API's words
    replay.on(
        "/api/v2/runGetMethod",
        vec![status(416, fixture("error_416.json"))],
    );
    match client
        .run_get_method(&fixture_address("root"), "get_root_data", &[])
        .await
    {
        Err(ChainError::Api { code, message, .. }) => {
            assert_eq!(code, Some(416));
            assert!(message.contains("address"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn malformed_bodies_are_typed_errors() {
    let (replay, base) = serve().await;
    let client = Toncenter::new(quick(&base)).unwrap();
    let root = fixture_address("root");
    let cases = [
        ("/api/v2/getAddressInformation", fixture("bad_truncated.json")),
        ("/api/v2/getAddressInformation", "not json at all".to_owned()),
        ("/api/v2/getAddressInformation", "{\"ok\": true}".to_owned()),
        (
            "/api/v2/getAddressInformation",
            "{\"ok\":true,\"result\":{\"balance\":\"12\",\"state\":\"sleeping\"}}".to_owned(),
        ),
        (
            "/api/v2/getAddressInformation",
            "{\"ok\":true,\"result\":{\"balance\":\"12\",\"state\":\"active\",\"code\":\"te6cc!!\"}}"
                .to_owned(),
        ),
    ];
    for (path, body) in cases {
        replay.on(path, vec![ok(body.clone())]);
        let got = client.account(&root).await;
        assert!(
            matches!(got, Err(ChainError::BadResponse { .. })),
            "{body}: {got:?}"
        );
    }
    // a 200 with ok:false is the API's refusal
    replay.on(
        "/api/v2/getAddressInformation",
        vec![ok(
            "{\"ok\":false,\"error\":\"LITE_SERVER_UNKNOWN: cannot load account\",\"code\":500}"
                .to_owned(),
        )],
    );
    assert!(matches!(
        client.account(&root).await,
        Err(ChainError::Api {
            code: Some(500),
            ..
        })
    ));

    // a stack cell that is not a BOC, a stack with a broken BOC inside a valid envelope
    replay.on(
        "/api/v2/runGetMethod",
        vec![ok(fixture("runGetMethod_bad_cell.json"))],
    );
    let got = client.run_get_method(&root, "get_root_data", &[]).await;
    assert!(
        matches!(got, Err(ChainError::BadResponse { .. })),
        "{got:?}"
    );
    replay.on(
        "/api/v2/runGetMethod",
        vec![ok(fixture("runGetMethod_wrong_shape.json"))],
    );
    let got = client
        .run_get_method(&root, "get_root_data", &[])
        .await
        .unwrap();
    let mut r = got.reader();
    assert!(matches!(
        r.read_address(),
        Err(ChainError::Stack { index: 0, .. })
    ));
    assert!(cocoon_ton::contracts::ProxyData::from_stack(&got.stack).is_err());

    // an active account whose data is not a root registry
    let empty = Cell::empty().to_boc_base64();
    replay.on(
        "/api/v2/getAddressInformation",
        vec![ok(format!(
            "{{\"ok\":true,\"result\":{{\"balance\":\"5\",\"state\":\"active\",\"code\":\"{empty}\",\"data\":\"{empty}\"}}}}"
        ))],
    );
    let got = read_registry(&client, &root).await;
    assert!(matches!(got, Err(ChainError::Cell { .. })), "{got:?}");

    replay.on(
        "/api/v3/transactions",
        vec![ok("{\"transactions\":[{\"account\":\"nope\"}]}".to_owned())],
    );
    let got = client.transactions(&root, 1).await;
    assert!(
        matches!(got, Err(ChainError::BadResponse { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn api_key_header_and_client_side_rate_limit() {
    let (replay, base) = serve().await;
    replay.on(
        "/api/v3/masterchainInfo",
        vec![ok(fixture("masterchainInfo.json"))],
    );
    let config = ToncenterConfig {
        requests_per_second: Some(5.0),
        ..ToncenterConfig::new(&base).with_api_key("test-key-123")
    };
    let client = Arc::new(Toncenter::new(config).unwrap());
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let c = Arc::clone(&client);
            tokio::spawn(async move { c.status().await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let seen = replay.seen();
    assert_eq!(seen.len(), 4);
    assert!(
        seen.iter()
            .all(|s| s.api_key.as_deref() == Some("test-key-123"))
    );
    assert!(
        started.elapsed() >= Duration::from_millis(590),
        "4 requests at 5/s span at least 0.6 s, took {:?}",
        started.elapsed()
    );
    let mut times: Vec<_> = seen.iter().map(|s| s.at).collect();
    times.sort();
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(180),
            "{:?}",
            pair[1] - pair[0]
        );
    }

    // without a key the default is one request a second
    let (replay, base) = serve().await;
    replay.on(
        "/api/v3/masterchainInfo",
        vec![ok(fixture("masterchainInfo.json"))],
    );
    let client = Toncenter::new(ToncenterConfig::new(&base)).unwrap();
    let started = Instant::now();
    client.status().await.unwrap();
    client.status().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn unreachable_server_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = Toncenter::new(quick(&format!("http://127.0.0.1:{port}"))).unwrap();
    match client.status().await {
        Err(ChainError::RetriesExhausted { attempts, last, .. }) => {
            assert_eq!(attempts, 4);
            assert!(last.starts_with("transport"), "{last}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(matches!(
        Toncenter::new(ToncenterConfig::new("ftp://example.invalid")),
        Err(ChainError::Config(_))
    ));
    assert!(matches!(
        Toncenter::new(ToncenterConfig {
            requests_per_second: Some(0.0),
            ..ToncenterConfig::mainnet()
        }),
        Err(ChainError::Config(_))
    ));
}
