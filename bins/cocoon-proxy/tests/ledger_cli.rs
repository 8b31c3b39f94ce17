//! `cocoon-proxy ledger …` on a real ledger file: the audit, the accounts and the request
//! listing agree with the store, the store is left untouched (reservations of a running proxy
//! included), and books that do not add up make the audit fail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use cocoon_ledger_store::LedgerStore;
use cocoon_market::{
    ClientId, Coefficient, PricingParams, RequestId, TokenCounts, WorkerAccountId,
};
use serde_json::Value;

fn ledger(url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cocoon-proxy"))
        .arg("ledger")
        .args(args)
        .args(["--ledger-url", url])
        .env_remove("COCOON_PROXY_CONFIG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn rid(n: u8) -> RequestId {
    RequestId([n; 32])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_accounts_and_requests_read_the_books() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir
        .path()
        .join("ledger.sqlite")
        .to_string_lossy()
        .into_owned();
    let store = LedgerStore::connect(&url, PricingParams::default())
        .await
        .unwrap();
    let (alice, gpu) = (ClientId("alice".into()), WorkerAccountId("gpu".into()));
    let _ = store.fund_new_client(&alice, 10_000_000).await.unwrap();
    let mut charged = 0u64;
    for n in 1..=3u8 {
        let counts = TokenCounts {
            prompt: u64::from(n) * 10,
            cached: 0,
            completion: 5,
            reasoning: 0,
        };
        let charge = store.pricing().charge(&counts, Coefficient::ONE).unwrap();
        let receipt = store
            .charge_request(&alice, &gpu, rid(n), &charge)
            .await
            .unwrap();
        charged += receipt.request.record.client_cost;
    }
    // A request in flight in the "running proxy": the inspection must leave it alone.
    let _ = store.reserve(&alice, rid(9), 100).await.unwrap();

    let (ok, out, err) = ledger(&url, &["audit", "--json"]);
    assert!(ok, "{err}");
    let audit: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(audit["balanced"], true);
    assert_eq!(audit["backend"], "sqlite");
    assert_eq!(audit["reservations"], 1);
    assert_eq!(audit["totals"]["requests"], 3);
    assert_eq!(audit["totals"]["client_charged"], charged);
    assert_eq!(
        audit["totals"]["worker_credited"].as_u64().unwrap()
            + audit["totals"]["proxy_commission"].as_u64().unwrap(),
        charged
    );

    let (ok, out, err) = ledger(&url, &["accounts", "--json"]);
    assert!(ok, "{err}");
    let accounts: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(accounts["clients"][0]["client"], "alice");
    assert_eq!(accounts["clients"][0]["deposited"], 10_000_000);
    assert_eq!(accounts["clients"][0]["charged"], charged);
    assert_eq!(accounts["clients"][0]["reserved_tokens"], 100);
    assert_eq!(accounts["workers"][0]["worker"], "gpu");

    let (ok, out, err) = ledger(&url, &["requests", "--json", "--after", "0"]);
    assert!(ok, "{err}");
    let records: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_eq!(records[1]["uncached_prompt_tokens"], 20);
    assert_eq!(records[1]["request_id"], RequestId([2; 32]).to_string());
    let after_first = records[0]["seq"].as_u64().unwrap().to_string();
    let (ok, out, _) = ledger(
        &url,
        &[
            "requests",
            "--json",
            "--after",
            &after_first,
            "--limit",
            "1",
        ],
    );
    assert!(ok);
    assert_eq!(out.lines().count(), 1);
    assert!(out.contains(&RequestId([2; 32]).to_string()));

    // Nothing was changed: the reservation is still there and settles.
    assert_eq!(store.reservations().await.unwrap().len(), 1);
    let (ok, text, _) = ledger(&url, &["audit"]);
    assert!(ok && text.contains("requests charged: 3"), "{text}");
    assert!(text.starts_with("ledger "), "{text}");
    let (ok, text, _) = ledger(&url, &["accounts"]);
    assert!(ok, "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1 clients", "{text}");
    assert!(lines[1].starts_with("  alice: balance "), "{text}");
    assert_eq!(lines[2], "1 workers", "{text}");
    assert!(lines[3].starts_with("  gpu: earned "), "{text}");
    let (ok, text, _) = ledger(&url, &["anchors"]);
    assert!(ok && text == "0 anchors\n", "{text}");
    let (ok, text, _) = ledger(&url, &["requests"]);
    assert!(ok, "{text}");
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.lines().all(|l| l.contains(" adjusted: charge ")),
        "{text}"
    );

    // Books that do not add up: the audit says so and fails.
    store.close().await;
    let tampered = std::process::Command::new("sqlite3")
        .arg(&url)
        .arg("UPDATE client_accounts SET charged_nanoton = charged_nanoton + 1")
        .status();
    match tampered {
        Ok(status) if status.success() => {
            let (ok, out, err) = ledger(&url, &["audit", "--json"]);
            assert!(!ok);
            assert!(err.contains("do not add up"), "{err}");
            let audit: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(audit["balanced"], false);
            assert!(
                audit["error"].as_str().unwrap().contains("client"),
                "{audit}"
            );
        }
        _ => eprintln!("sqlite3 not found: the tampering case is skipped"),
    }
}

#[test]
fn a_missing_ledger_is_an_error_and_is_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.sqlite");
    let (ok, _, err) = ledger(path.to_str().unwrap(), &["audit"]);
    assert!(!ok);
    assert!(err.contains("no ledger"), "{err}");
    assert!(!path.exists());
}
