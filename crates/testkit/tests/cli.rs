//! The two binaries as end-to-end tests will run them: the fake upstream announces its address
//! on stdout, the load generator prints one JSON line.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// Kills the child process when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_upstream(extra: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cocoon-fake-upstream"))
        .args(["--port", "0", "--threads", "1"])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("announcement line")
        .to_owned();
    assert!(url.starts_with("http://127.0.0.1:"));
    (running, url)
}

fn loadgen(args: &[&str]) -> (bool, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_cocoon-loadgen"))
        .args(args)
        .args(["--json", "--fail-on-errors"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    (
        output.status.success(),
        serde_json::from_str(stdout.trim()).expect("one JSON line"),
    )
}

#[test]
fn loadgen_binary_drives_the_upstream_binary() {
    let (_upstream, url) = start_upstream(&[]);
    let target = format!("{url}/v1/chat/completions");
    let (success, report) = loadgen(&["--url", &target, "--reference-body", "-c", "3", "-n", "30"]);
    assert!(success, "{report}");
    assert_eq!(report["ok"], 30);
    assert_eq!(report["errors"], 0);
    assert_eq!(report["keepalive"], false);
}

#[test]
fn loadgen_binary_fails_when_requests_fail() {
    let (_upstream, url) = start_upstream(&["--fail-after", "10"]);
    let target = format!("{url}/v1/chat/completions");
    let (success, report) = loadgen(&["--url", &target, "--reference-body", "-c", "2", "-n", "4"]);
    assert!(!success);
    assert_eq!(report["failures"]["body"], 4);
}

#[test]
fn ndjson_flag_and_unknown_models_from_the_command_line() {
    let (_upstream, url) = start_upstream(&["--ndjson", "--model", "m1", "--chunks", "5"]);
    let target = format!("{url}/v1/chat/completions");
    let body = r#"{"model":"m1","messages":[{"role":"user","content":"x"}]}"#;
    let (success, report) = loadgen(&["--url", &target, "--body", body, "-n", "2", "-c", "1"]);
    assert!(success, "{report}");
    let wrong = r#"{"model":"m2","messages":[{"role":"user","content":"x"}]}"#;
    let (success, report) = loadgen(&["--url", &target, "--body", wrong, "-n", "2", "-c", "1"]);
    assert!(!success);
    assert_eq!(report["statuses"]["404"], 2);
}

#[test]
fn help_documents_the_request_headers() {
    let output = Command::new(env!("CARGO_BIN_EXE_cocoon-fake-upstream"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for header in [
        "x-fake-chunks",
        "x-fake-chunk-bytes",
        "x-fake-delay-ms",
        "x-fake-fail-after",
        "x-fake-format",
        "x-fake-status",
    ] {
        assert!(help.contains(header), "{header} missing from --help");
    }
}
