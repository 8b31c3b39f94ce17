//! Mutual RA-TLS handshakes per second between two processes: this benchmark re-runs itself
//! as the accepting process (`COCOON_BENCH_ROLE=acceptor`) and dials it over loopback. Each
//! connection runs the whole stack a node runs: proof of work (difficulty 0, so only its
//! round trip counts), TLS 1.3 with both certificates verified against the local policy
//! (simulated evidence), and the session's `tcp.connect` exchange.
//!
//! `cargo bench -p cocoon-node --bench ratls_handshake [-- CONNECTIONS CONCURRENCY]`
//! (defaults 2000 and 1,2,8).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Instant;

use cocoon_attest::ratls::ClaimsFormat;
use cocoon_attest::{EvidenceVerifier, Policy, VerificationCache};
use cocoon_net::{ConnectionConfig, TlsEndpoint, accept_gated, dial};
use cocoon_node::AttestationConfig;

fn endpoint(cache: bool) -> TlsEndpoint {
    let config = AttestationConfig::local_simulated();
    let identity = config.identity(ClaimsFormat::Reference).unwrap();
    let mut verifier = EvidenceVerifier::default();
    if !cache {
        verifier = verifier.with_cache(VerificationCache::new(0, 0));
    }
    TlsEndpoint::new(identity, Policy::local_simulated(), Arc::new(verifier)).unwrap()
}

fn acceptor() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("{}", listener.local_addr().unwrap());
        let cache = std::env::var("COCOON_BENCH_CACHE").as_deref() != Ok("off");
        let server = endpoint(cache);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let server = server.clone();
            tokio::spawn(async move {
                if let Ok(s) = accept_gated(tcp, 0, &server, ConnectionConfig::acceptor()).await {
                    // Hold the session until the dialer closes it.
                    s.conn.closed().await;
                }
            });
        }
    });
}

fn main() {
    if std::env::var("COCOON_BENCH_ROLE").as_deref() == Ok("acceptor") {
        acceptor();
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let concurrencies: Vec<usize> = args
        .get(1)
        .map(|a| a.split(',').filter_map(|c| c.parse().ok()).collect())
        .unwrap_or_else(|| vec![1, 2, 8]);

    for cache in [true, false] {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env("COCOON_BENCH_ROLE", "acceptor")
            .env("COCOON_BENCH_CACHE", if cache { "on" } else { "off" })
            .env("RUST_LOG", "off")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().to_owned();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        for &concurrency in &concurrencies {
            let client = endpoint(cache);
            let started = Instant::now();
            rt.block_on(async {
                let per_task = total / concurrency;
                let mut tasks = Vec::new();
                for _ in 0..concurrency {
                    let (client, addr) = (client.clone(), addr.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut lat = Vec::with_capacity(per_task);
                        for _ in 0..per_task {
                            let t = Instant::now();
                            let s = dial(&addr, 28, &client, ConnectionConfig::dialer())
                                .await
                                .unwrap();
                            lat.push(t.elapsed());
                            s.conn.close();
                        }
                        lat
                    }));
                }
                let mut all = Vec::new();
                for t in tasks {
                    all.extend(t.await.unwrap());
                }
                let secs = started.elapsed().as_secs_f64();
                all.sort();
                let p50 = all[all.len() / 2];
                let p99 = all[all.len() * 99 / 100];
                println!(
                    "ratls/mutual-handshake evidence-cache={} concurrency={concurrency}: {:.0} handshakes/s, p50 {:.2} ms, p99 {:.2} ms ({} connections)",
                    if cache { "on" } else { "off" },
                    all.len() as f64 / secs,
                    p50.as_secs_f64() * 1e3,
                    p99.as_secs_f64() * 1e3,
                    all.len()
                );
            });
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
