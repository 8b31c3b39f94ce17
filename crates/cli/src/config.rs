//! The configuration layer the three roles' executables share. A role's settings come from its
//! TOML file, then its environment variables, then its flags, later sources winning. Clap
//! already folds each environment variable into its flag (`env = ...`), so what is left is the
//! same for every role: the file is read as a TOML table; the flags are serialized into values
//! addressed by dotted configuration keys (`settlement.api_key`), skipping those not given; each
//! value is written into the table at its key; and the table is deserialized into the role's
//! configuration type, whose serde defaults fill in the rest. One layer keeps that precedence
//! identical in the three binaries, and lets a library consumer build a configuration exactly
//! as they do. [`Role`] says where each role keeps its files unless told otherwise.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CliError;

/// The three roles of the network, each with its executable (`cocoon-<name>`) and its data
/// directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The client: an OpenAI-compatible API paying a proxy.
    Client,
    /// The proxy: routes clients' requests to workers and keeps the books.
    Proxy,
    /// The worker: serves inference to proxies.
    Worker,
}

impl Role {
    /// The role's name, as in `cocoon-<name>` and its data directory.
    pub fn name(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Proxy => "proxy",
            Self::Worker => "worker",
        }
    }

    /// `$XDG_DATA_HOME/cocoon/<role>`, else `$HOME/.local/share/cocoon/<role>`; `None` when
    /// neither variable holds an absolute path.
    pub fn default_data_dir(self) -> Option<PathBuf> {
        self.data_dir_under(std::env::var_os("XDG_DATA_HOME"), std::env::var_os("HOME"))
    }

    /// [`Role::default_data_dir`] for the given values of `XDG_DATA_HOME` and `HOME`. An empty
    /// or relative value counts as unset, as the XDG base directory specification asks.
    pub fn data_dir_under(
        self,
        xdg_data_home: Option<OsString>,
        home: Option<OsString>,
    ) -> Option<PathBuf> {
        let absolute = |v: Option<OsString>| v.map(PathBuf::from).filter(|p| p.is_absolute());
        let base = absolute(xdg_data_home)
            .or_else(|| absolute(home).map(|h| h.join(".local").join("share")))?;
        Some(base.join("cocoon").join(self.name()))
    }

    /// The configuration key of the directory that [`ConfigLayers::load`] sets to
    /// [`Role::default_data_dir`] when neither the file nor a flag sets it: the worker's
    /// `keys.data_dir` (its wallet, sealing keys and vouchers). The proxy's `data_dir` stays
    /// unset unless given (its voucher key then lives in memory; only its default ledger file
    /// goes under [`Role::default_data_dir`]), and the client keeps no files.
    pub fn data_dir_key(self) -> Option<&'static str> {
        match self {
            Self::Worker => Some("keys.data_dir"),
            Self::Client | Self::Proxy => None,
        }
    }
}

/// A role's configuration being assembled: its file, then the values set over it, in order.
#[derive(Debug, Clone)]
pub struct ConfigLayers {
    role: Role,
    /// The file and its text, against which the file's own mistakes are reported.
    file: Option<(PathBuf, String)>,
    /// The file's table (empty without a file).
    table: toml::Table,
    /// Values set over the file, by dotted key; a later one wins over an earlier one.
    overrides: Vec<(String, toml::Value)>,
}

impl ConfigLayers {
    /// Starts from the TOML file at `path`, or from the defaults when there is none.
    ///
    /// # Errors
    /// [`CliError::Read`] when the file cannot be read, [`CliError::Parse`] when it is not TOML.
    pub fn read(role: Role, path: Option<&Path>) -> Result<Self, CliError> {
        let mut layers = Self {
            role,
            file: None,
            table: toml::Table::new(),
            overrides: Vec::new(),
        };
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
                path: path.to_owned(),
                source,
            })?;
            layers.table = toml::from_str(&text).map_err(|source| CliError::Parse {
                path: path.to_owned(),
                source,
            })?;
            layers.file = Some((path.to_owned(), text));
        }
        Ok(layers)
    }

    /// The configuration the file alone describes (the role's defaults where it says nothing,
    /// as in [`ConfigLayers::load`]): what a preset whose values depend on the file's starts
    /// from.
    ///
    /// # Errors
    /// [`CliError::Parse`] when the file does not describe a `T` (an unknown key, a wrong type),
    /// with its line; [`CliError::Unrepresentable`] when the defaults have no TOML form.
    pub fn file_config<T: DeserializeOwned + Serialize + Default>(&self) -> Result<T, CliError> {
        let Some((path, _)) = &self.file else {
            return Ok(T::default());
        };
        self.file_alone::<T>()?;
        under(&defaults::<T>()?, &self.table)
            .try_into()
            .map_err(|source| CliError::Parse {
                path: path.clone(),
                source,
            })
    }

    /// Checks the file on its own against `T`, so that its mistakes are reported at their line.
    fn file_alone<T: DeserializeOwned>(&self) -> Result<(), CliError> {
        if let Some((path, text)) = &self.file {
            toml::from_str::<T>(text).map_err(|source| CliError::Parse {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Sets the setting at `key` (dotted: `chain.anchor_interval`) to `value`, over the file and
    /// over what was set before. `value` takes the form the configuration file would give it.
    ///
    /// # Errors
    /// [`CliError::Unrepresentable`] when `value` has no TOML form.
    pub fn set<V: Serialize + ?Sized>(
        &mut self,
        key: &str,
        value: &V,
    ) -> Result<&mut Self, CliError> {
        let value = toml::Value::try_from(value).map_err(|source| CliError::Unrepresentable {
            key: key.to_owned(),
            source,
        })?;
        self.overrides.push((key.to_owned(), value));
        Ok(self)
    }

    /// Sets every value `flags` carries. `flags` serializes to a map from dotted keys to values
    /// (`#[serde(rename = "settlement.api_key")]`, `#[serde(flatten)]` for a group of flags);
    /// a flag not given must serialize to nothing (`skip_serializing_if`: an unset option, a
    /// `false` switch, an empty list), so that it never hides the file's value.
    ///
    /// # Errors
    /// [`CliError::Unrepresentable`] when a value has no TOML form (an integer beyond `i64`, a
    /// path that is not UTF-8).
    pub fn flags<F: Serialize + ?Sized>(&mut self, flags: &F) -> Result<&mut Self, CliError> {
        let table = toml::Table::try_from(flags).map_err(|source| CliError::Unrepresentable {
            key: unrepresentable_key(flags).unwrap_or_else(|| "a flag".to_owned()),
            source,
        })?;
        self.overrides.extend(table);
        Ok(self)
    }

    /// The role's configuration: the file, each value set over it in order, and the role's
    /// default data directory ([`Role::data_dir_key`]) where neither gave one.
    ///
    /// Under the file lie the role's own defaults (`T::default()`), table by table: a key
    /// the file's table leaves out keeps the role's default rather than the default of the
    /// table's type, so a client's `[attestation]` holding only `policy_file` (or
    /// `--policy-file` alone) leaves the client's evidence as the client's defaults say. Lists
    /// and values the file gives replace the defaults whole.
    ///
    /// # Errors
    /// [`CliError::Parse`] when the file alone does not describe a `T`; [`CliError::Setting`]
    /// naming the key when a value set over it does not fit; [`CliError::Unrepresentable`] when
    /// the default data directory is not UTF-8.
    pub fn load<T: DeserializeOwned + Serialize + Default>(&self) -> Result<T, CliError> {
        // The file's own mistakes first, reported at their line.
        self.file_alone::<T>()?;
        let defaults = defaults::<T>()?;
        let mut layers = self.overrides.clone();
        let mut merged = under(&defaults, &self.table);
        for (key, value) in &layers {
            insert(&mut merged, &defaults, key, value.clone())?;
        }
        if let Some(key) = self.role.data_dir_key()
            && lookup(&merged, key).is_none()
            && let Some(dir) = self.role.default_data_dir()
        {
            let dir = toml::Value::try_from(&dir).map_err(|source| CliError::Unrepresentable {
                key: key.to_owned(),
                source,
            })?;
            insert(&mut merged, &defaults, key, dir.clone())?;
            layers.push((key.to_owned(), dir));
        }
        merged
            .try_into()
            .map_err(|error| self.blame::<T>(&defaults, &layers, &error))
    }

    /// Finds the value that makes the configuration unreadable. The file alone reads (it is
    /// checked first), so it is the first value whose addition breaks it.
    fn blame<T: DeserializeOwned>(
        &self,
        defaults: &toml::Table,
        layers: &[(String, toml::Value)],
        error: &toml::de::Error,
    ) -> CliError {
        let mut merged = under(defaults, &self.table);
        for (key, value) in layers {
            let added = insert(&mut merged, defaults, key, value.clone()).and_then(|()| {
                merged
                    .clone()
                    .try_into::<T>()
                    .map(drop)
                    .map_err(|e| CliError::Setting {
                        key: key.clone(),
                        value: value.to_string(),
                        reason: e.message().to_owned(),
                    })
            });
            if let Err(e) = added {
                return e;
            }
        }
        CliError::Setting {
            key: layers.last().map_or_else(String::new, |(k, _)| k.clone()),
            value: String::new(),
            reason: error.message().to_owned(),
        }
    }
}

/// The configuration the TOML file at `path` describes (the defaults without one), with the
/// values of `flags` over it and the role's default data directory: [`ConfigLayers`] in one
/// call, for a role whose flags all map one to one onto settings.
///
/// # Errors
/// As [`ConfigLayers::read`], [`ConfigLayers::flags`] and [`ConfigLayers::load`].
pub fn load_config<T, F>(role: Role, path: Option<&Path>, flags: &F) -> Result<T, CliError>
where
    T: DeserializeOwned + Serialize + Default,
    F: Serialize + ?Sized,
{
    ConfigLayers::read(role, path)?.flags(flags)?.load()
}

/// Writes `value` at the dotted `key` of `table`, making the tables on the way: a top-level
/// table the file lacks starts as `defaults` (the configuration type's defaults) has it, a
/// deeper one empty (its type's defaults).
/// `T::default()` as a TOML table.
fn defaults<T: Serialize + Default>() -> Result<toml::Table, CliError> {
    toml::Table::try_from(T::default()).map_err(|source| CliError::Unrepresentable {
        key: "the defaults".to_owned(),
        source,
    })
}

/// `file` laid over `defaults`: tables are merged key by key, any other value of `file`
/// replaces the default whole.
fn under(defaults: &toml::Table, file: &toml::Table) -> toml::Table {
    let mut merged = defaults.clone();
    for (key, value) in file {
        let value = match (merged.get(key), value) {
            (Some(toml::Value::Table(d)), toml::Value::Table(f)) => toml::Value::Table(under(d, f)),
            _ => value.clone(),
        };
        merged.insert(key.clone(), value);
    }
    merged
}

fn insert(
    table: &mut toml::Table,
    defaults: &toml::Table,
    key: &str,
    value: toml::Value,
) -> Result<(), CliError> {
    let not_a_table = |at: &str| CliError::Setting {
        key: key.to_owned(),
        value: value.to_string(),
        reason: format!("`{at}` is not a table"),
    };
    let mut parts = key.split('.').peekable();
    let mut at = table;
    let mut path = String::new();
    while let Some(part) = parts.next() {
        let top = path.is_empty();
        if !top {
            path.push('.');
        }
        path.push_str(part);
        if parts.peek().is_none() {
            at.insert(part.to_owned(), value);
            return Ok(());
        }
        let next = at
            .entry(part.to_owned())
            .or_insert_with(|| match defaults.get(part) {
                Some(toml::Value::Table(t)) if top => toml::Value::Table(t.clone()),
                _ => toml::Value::Table(toml::Table::new()),
            });
        at = match next {
            toml::Value::Table(t) => t,
            _ => return Err(not_a_table(&path)),
        };
    }
    Ok(())
}

/// The value at the dotted `key` of `table`, if any.
fn lookup<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let (parents, last) = match key.rsplit_once('.') {
        Some((parents, last)) => (Some(parents), last),
        None => (None, key),
    };
    let mut at = table;
    for part in parents.into_iter().flat_map(|p| p.split('.')) {
        at = at.get(part)?.as_table()?;
    }
    at.get(last)
}

/// Which of the flags has no TOML form, found through JSON (which holds any integer).
fn unrepresentable_key<F: Serialize + ?Sized>(flags: &F) -> Option<String> {
    let serde_json::Value::Object(map) = serde_json::to_value(flags).ok()? else {
        return None;
    };
    map.into_iter()
        .find(|(_, v)| toml::Value::try_from(v).is_err())
        .map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::Duration;

    use super::*;

    #[derive(serde::Deserialize, Serialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Sample {
        port: u16,
        name: String,
        peers: Vec<String>,
        settlement: Settlement,
        keys: Keys,
    }

    #[derive(serde::Deserialize, Serialize, Debug, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Settlement {
        api_key: Option<String>,
        #[serde(deserialize_with = "secs", serialize_with = "to_secs")]
        payment_status_interval: Duration,
    }

    #[derive(serde::Deserialize, Serialize, Debug, PartialEq, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Keys {
        data_dir: Option<PathBuf>,
    }

    fn to_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    fn secs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let v = <f64 as serde::Deserialize>::deserialize(d)?;
        Duration::try_from_secs_f64(v).map_err(serde::de::Error::custom)
    }

    impl Default for Sample {
        fn default() -> Self {
            Self {
                port: 80,
                name: "default".into(),
                peers: vec!["a".into()],
                // Not `Settlement::default()`: a table the file lacks comes from here.
                settlement: Settlement {
                    api_key: None,
                    payment_status_interval: Duration::from_secs(20),
                },
                keys: Keys::default(),
            }
        }
    }

    impl Default for Settlement {
        fn default() -> Self {
            Self {
                api_key: None,
                payment_status_interval: Duration::from_secs(10),
            }
        }
    }

    #[derive(Serialize, Default)]
    struct Flags {
        #[serde(skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        #[serde(skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        peers: Vec<String>,
        #[serde(flatten)]
        settlement: SettlementFlags,
    }

    #[derive(Serialize, Default)]
    struct SettlementFlags {
        #[serde(rename = "settlement.api_key", skip_serializing_if = "Option::is_none")]
        api_key: Option<String>,
        #[serde(
            rename = "settlement.payment_status_interval",
            skip_serializing_if = "Option::is_none"
        )]
        payment_status_interval: Option<f64>,
    }

    struct File(PathBuf);

    impl File {
        fn new(name: &str, text: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("cocoon-cli-config-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            Self(path)
        }
    }

    impl Drop for File {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    const FILE: &str = "port = 7\nname = \"file\"\npeers = [\"b\", \"c\"]\n\n[settlement]\napi_key = \"from-file\"\n";

    #[test]
    fn the_file_alone_gives_its_values_over_the_defaults() {
        let file = File::new("alone.toml", FILE);
        let config: Sample =
            load_config(Role::Client, Some(file.0.as_path()), &Flags::default()).unwrap();
        assert_eq!(config.port, 7);
        assert_eq!(config.name, "file");
        assert_eq!(config.peers, ["b", "c"]);
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-file"));
        assert_eq!(
            config.settlement.payment_status_interval,
            Duration::from_secs(20),
            "a key the file's table leaves out is the role's default (Sample's)"
        );
        let none: Sample = load_config(Role::Client, None, &Flags::default()).unwrap();
        assert_eq!(none, Sample::default());
    }

    #[test]
    fn a_flag_wins_over_the_file_and_an_unset_flag_keeps_it() {
        let file = File::new("flags.toml", FILE);
        let flags = Flags {
            port: Some(9),
            peers: vec!["d".into()],
            ..Flags::default()
        };
        let config: Sample = load_config(Role::Client, Some(file.0.as_path()), &flags).unwrap();
        assert_eq!(config.port, 9);
        assert_eq!(config.peers, ["d"]);
        assert_eq!(
            config.name, "file",
            "a flag not given keeps the file's value"
        );
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-file"));
    }

    #[test]
    fn a_dotted_key_reaches_into_its_table_made_or_not() {
        let file = File::new("nested.toml", FILE);
        let flags = Flags {
            settlement: SettlementFlags {
                api_key: Some("from-flag".into()),
                payment_status_interval: Some(0.5),
            },
            ..Flags::default()
        };
        let config: Sample = load_config(Role::Client, Some(file.0.as_path()), &flags).unwrap();
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-flag"));
        assert_eq!(
            config.settlement.payment_status_interval,
            Duration::from_millis(500)
        );
        // Without a file the `[settlement]` table is made.
        let config: Sample = load_config(Role::Client, None, &flags).unwrap();
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-flag"));
        assert_eq!(config.port, 80);
    }

    #[test]
    fn a_table_the_file_lacks_keeps_the_configurations_defaults() {
        let flags = Flags {
            settlement: SettlementFlags {
                api_key: Some("from-flag".into()),
                ..SettlementFlags::default()
            },
            ..Flags::default()
        };
        let config: Sample = load_config(Role::Client, None, &flags).unwrap();
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-flag"));
        assert_eq!(
            config.settlement.payment_status_interval,
            Duration::from_secs(20),
            "the rest of [settlement] as Sample::default() has it"
        );
        // A `[settlement]` in the file holding only some keys: the others are the role's
        // defaults (Sample's), not those of the table's type (Settlement's).
        let file = File::new("table.toml", "[settlement]\napi_key = \"from-file\"\n");
        let config: Sample = load_config(Role::Client, Some(file.0.as_path()), &flags).unwrap();
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-flag"));
        assert_eq!(
            config.settlement.payment_status_interval,
            Duration::from_secs(20)
        );
        // The same without any flag: the file's partial table alone.
        let config: Sample =
            load_config(Role::Client, Some(file.0.as_path()), &Flags::default()).unwrap();
        assert_eq!(config.settlement.api_key.as_deref(), Some("from-file"));
        assert_eq!(
            config.settlement.payment_status_interval,
            Duration::from_secs(20)
        );
    }

    #[test]
    fn values_set_later_win_and_presets_see_the_file() {
        let file = File::new("preset.toml", FILE);
        let mut layers = ConfigLayers::read(Role::Client, Some(file.0.as_path())).unwrap();
        let from_file: Sample = layers.file_config().unwrap();
        layers.set("port", &(from_file.port * 2)).unwrap();
        layers.set("name", "preset").unwrap();
        layers
            .flags(&Flags {
                name: Some("flag".into()),
                ..Flags::default()
            })
            .unwrap();
        let config: Sample = layers.load().unwrap();
        assert_eq!((config.port, config.name.as_str()), (14, "flag"));
    }

    #[test]
    fn a_bad_value_is_a_typed_error_naming_its_key() {
        let flags = Flags {
            settlement: SettlementFlags {
                payment_status_interval: Some(-1.0),
                ..SettlementFlags::default()
            },
            ..Flags::default()
        };
        let err = load_config::<Sample, _>(Role::Client, None, &flags).unwrap_err();
        match &err {
            CliError::Setting { key, value, reason } => {
                assert_eq!(key, "settlement.payment_status_interval");
                assert_eq!(value, "-1.0");
                assert!(reason.contains("negative"), "{reason}");
            }
            other => panic!("not a Setting error: {other:?}"),
        }
        assert!(
            err.to_string()
                .starts_with("settlement.payment_status_interval = -1.0: "),
            "{err}"
        );
        // A value of the wrong type, set by hand.
        let mut layers = ConfigLayers::read(Role::Client, None).unwrap();
        layers.set("port", "eighty").unwrap();
        let err = layers.load::<Sample>().unwrap_err();
        assert!(
            matches!(&err, CliError::Setting { key, .. } if key == "port"),
            "{err:?}"
        );
        // A key the configuration does not have.
        let mut layers = ConfigLayers::read(Role::Client, None).unwrap();
        layers.set("settlement.nope", &1).unwrap();
        let err = layers.load::<Sample>().unwrap_err();
        assert!(
            matches!(&err, CliError::Setting { key, .. } if key == "settlement.nope"),
            "{err:?}"
        );
        // A key under a value that is not a table.
        let mut layers = ConfigLayers::read(Role::Client, None).unwrap();
        layers.set("port.inner", &1).unwrap();
        assert!(matches!(
            layers.load::<Sample>().unwrap_err(),
            CliError::Setting { .. }
        ));
    }

    #[test]
    fn an_integer_beyond_toml_is_named() {
        #[derive(Serialize)]
        struct Big {
            #[serde(rename = "settlement.tokens")]
            tokens: u64,
        }
        let err = ConfigLayers::read(Role::Client, None)
            .unwrap()
            .flags(&Big { tokens: u64::MAX })
            .map(|_| ())
            .unwrap_err();
        assert!(
            matches!(&err, CliError::Unrepresentable { key, .. } if key == "settlement.tokens"),
            "{err:?}"
        );
    }

    #[test]
    fn the_files_own_mistakes_are_reported_at_their_line() {
        let file = File::new("bad.toml", "port = 7\nprot = 8\n");
        let err = load_config::<Sample, _>(Role::Client, Some(file.0.as_path()), &Flags::default())
            .unwrap_err();
        assert!(matches!(err, CliError::Parse { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("bad.toml") && text.contains("line 2"),
            "{text}"
        );
        let missing = PathBuf::from("/nonexistent/cocoon.toml");
        assert!(matches!(
            ConfigLayers::read(Role::Client, Some(&missing)).unwrap_err(),
            CliError::Read { .. }
        ));
    }

    #[test]
    fn the_data_directory_follows_xdg_then_home() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(
            Role::Worker.data_dir_under(os("/xdg"), os("/home/u")),
            Some(PathBuf::from("/xdg/cocoon/worker"))
        );
        assert_eq!(
            Role::Proxy.data_dir_under(None, os("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/cocoon/proxy"))
        );
        assert_eq!(
            Role::Client.data_dir_under(os(""), os("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/cocoon/client"))
        );
        assert_eq!(
            Role::Worker.data_dir_under(os("relative"), os("/home/u")),
            Some(PathBuf::from("/home/u/.local/share/cocoon/worker"))
        );
        assert_eq!(Role::Worker.data_dir_under(None, os("")), None);
        assert_eq!(Role::Worker.data_dir_under(None, None), None);
    }

    #[test]
    fn the_workers_data_directory_is_filled_unless_given() {
        let mut layers = ConfigLayers::read(Role::Worker, None).unwrap();
        layers.set("keys.data_dir", "/given").unwrap();
        let config: Sample = layers.load().unwrap();
        assert_eq!(config.keys.data_dir, Some(PathBuf::from("/given")));
        let config: Sample = ConfigLayers::read(Role::Worker, None)
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(config.keys.data_dir, Role::Worker.default_data_dir());
        let config: Sample = ConfigLayers::read(Role::Client, None)
            .unwrap()
            .load()
            .unwrap();
        assert_eq!(config.keys.data_dir, None);
    }
}
