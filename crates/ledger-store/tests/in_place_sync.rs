//! An unsynced batch commits in place, on the async thread, on the promise that its `COMMIT`
//! never waits for the disk. SQLite syncs in two cases even at `synchronous = NORMAL`: a
//! checkpoint, and the first commit after a checkpoint that emptied the WAL (it restarts the WAL
//! and syncs the new header). The writer keeps both on the blocking pool.
//!
//! The test runs on a current-thread runtime, where only in-place commits run (the blocking
//! pool and sqlx's workers are other threads), and has `strace` watch that one thread's
//! `fsync`/`fdatasync` calls while it reserves and releases (skipped without `strace`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cocoon_ledger_store::{LedgerStore, LedgerWrite, LedgerWritten};
use cocoon_market::{ClientId, PricingParams, RequestId};

#[tokio::test(flavor = "current_thread")]
async fn an_unsynced_commit_in_place_never_syncs_on_the_async_thread() {
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("ledger.db").to_string_lossy().into_owned();
    let store = LedgerStore::connect(&url, PricingParams::default())
        .await
        .unwrap();
    let client = ClientId("0:client-001".into());
    store
        .fund_new_client(&client, 1_000_000_000_000)
        .await
        .unwrap();
    let tid = std::fs::read_link("/proc/thread-self").unwrap();
    let tid = tid.file_name().unwrap().to_string_lossy().into_owned();
    let trace = dir.path().join("syncs.txt");
    let Ok(mut strace) = std::process::Command::new("strace")
        .args(["-y", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&trace)
        .args(["-p", &tid])
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("skipped: no strace");
        return;
    };
    // Let it attach (a blocking sleep: this thread must not run anything else meanwhile).
    std::thread::sleep(Duration::from_secs(2));
    for n in 0u64..3000 {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&n.to_le_bytes());
        let request_id = RequestId(id);
        let reserved = store
            .write_batch(&[LedgerWrite::Reserve {
                client: client.clone(),
                request_id,
                tokens: 1,
            }])
            .await;
        let Ok(LedgerWritten::Reserved(reservation)) = reserved[0].clone() else {
            panic!("{reserved:?}");
        };
        let released = store
            .write_batch(&[LedgerWrite::Release {
                client: client.clone(),
                reservation,
            }])
            .await;
        assert!(released[0].is_ok(), "{released:?}");
    }
    // One sync of our own on this thread, to know that strace saw the thread at all.
    let probe = dir.path().join("probe");
    std::fs::write(&probe, b"x").unwrap();
    std::fs::File::open(&probe).unwrap().sync_all().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    strace.kill().unwrap();
    let _ = strace.wait();
    let seen = std::fs::read_to_string(&trace).unwrap_or_default();
    if !seen
        .lines()
        .any(|l| l.contains("sync(") && l.contains("probe"))
    {
        eprintln!("skipped: strace could not watch this thread");
        return;
    }
    let syncs: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("sync(") && !l.contains("probe"))
        .collect();
    assert!(
        syncs.is_empty(),
        "unsynced commits in place synced on the async thread {} times: {:?}",
        syncs.len(),
        syncs.iter().take(3).collect::<Vec<_>>()
    );
}
