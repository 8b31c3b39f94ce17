//! An operator's configuration file, arbitrary text: the layer never panics, and a file that
//! reads on its own also reads with the role's defaults laid under it and a flag set over it.

#![no_main]

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use cocoon_cli::config::{ConfigLayers, Role};
use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};

/// A configuration of the shapes the roles' have: scalars, a list, nested tables, options.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Config {
    port: u16,
    name: String,
    peers: Vec<String>,
    ratio: f64,
    settlement: Settlement,
    limits: Limits,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Settlement {
    api_key: Option<String>,
    interval_secs: f64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Limits {
    max_connections: usize,
    inner: Settlement,
}

fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("cocoon-cli-fuzz-{}.toml", std::process::id()))
    })
}

fuzz_target!(|text: &[u8]| {
    let path = file();
    let Ok(mut f) = std::fs::File::create(path) else {
        return;
    };
    if f.write_all(text).is_err() {
        return;
    }
    drop(f);
    let Ok(mut layers) = ConfigLayers::read(Role::Proxy, Some(path)) else {
        return;
    };
    let alone = layers.file_config::<Config>();
    let layered = layers.load::<Config>();
    if alone.is_ok() {
        assert!(layered.is_ok(), "{layered:?}");
        let set = layers
            .set("settlement.api_key", "from-a-flag")
            .map(|l| l.load::<Config>());
        if let Ok(Ok(config)) = set {
            assert_eq!(config.settlement.api_key.as_deref(), Some("from-a-flag"));
        }
    }
});
