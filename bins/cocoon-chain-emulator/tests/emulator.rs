//! The `cocoon-chain-emulator` executable end to end: started with a proxy key, a named wallet
//! and a funded key file, it prints its network as one JSON line, and the chain it serves holds
//! what that line says.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use cocoon_chain::emulator::v5r1_address;
use cocoon_chain::{Chain, EmulatedChain, TON};
use cocoon_ton::SigningKey;
use cocoon_ton::contracts::ProxyData;
use std::time::Duration;

#[tokio::test]
async fn the_emulator_binary_serves_a_funded_network() {
    use tokio::io::AsyncBufReadExt;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("client.key");
    std::fs::write(&key_file, hex::encode([11u8; 32])).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let proxy_public = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_cocoon-chain-emulator"))
        .args([
            "--proxy-public-key",
            &hex::encode(proxy_public),
            "--wallet",
            "alice=3",
            "--fund-key-file",
            &format!("{}=12.5", key_file.display()),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .unwrap()
    .unwrap()
    .expect("the emulator printed its network");
    let printed: serde_json::Value = serde_json::from_str(&line).unwrap();
    let listen = printed["listen"].as_str().unwrap();
    let chain = EmulatedChain::connect(listen, Duration::from_secs(30))
        .await
        .unwrap();
    let proxy = cocoon_chain::parse_address(printed["proxy_contract"].as_str().unwrap()).unwrap();
    let data = ProxyData::from_stack(
        &chain
            .run_get_method(&proxy, "get_proxy_data", &[])
            .await
            .unwrap()
            .stack,
    )
    .unwrap();
    assert_eq!(data.proxy_public_key, proxy_public);
    assert_eq!(data.stake, 10 * TON, "staked with the local minimum");
    let funded =
        v5r1_address(SigningKey::from_bytes(&[11; 32]).verifying_key().to_bytes()).unwrap();
    assert_eq!(
        printed["funded"][funded.to_raw()].as_str().unwrap(),
        "12500000000"
    );
    assert_eq!(
        chain.account(&funded).await.unwrap().balance,
        12_500_000_000
    );
    let alice = cocoon_chain::parse_address(printed["wallets"]["alice"].as_str().unwrap()).unwrap();
    assert_eq!(chain.account(&alice).await.unwrap().balance, 3 * TON);
    assert_eq!(
        printed["price_per_token"],
        "20".parse::<serde_json::Value>().unwrap()
    );
    child.start_kill().unwrap();
}
