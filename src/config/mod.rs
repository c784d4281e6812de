//! DataJoint configuration, read exactly as DataJoint 2.3 reads it.
//!
//! djgc must find the same database and the same store as the pipeline that
//! wrote them, so it reproduces DataJoint's rules rather than inventing its own:
//!
//! * `datajoint.json` is searched from the working directory upward; the search
//!   stops at a folder holding `.git` or `.hg`, or at the filesystem root.
//!   `--config FILE` replaces the search. `DJ_IGNORE_CONFIG_FILE` skips the file
//!   and the secrets directory.
//! * Precedence, highest first: environment (`DJ_HOST`, `DJ_USER`, `DJ_PASS`,
//!   `DJ_BACKEND`, `DJ_PORT`, `DJ_DATABASE_NAME`, `DJ_STORES`), the file, the
//!   secrets directory (`.secrets/` beside the file, else
//!   `/run/secrets/datajoint/`), defaults. An empty environment variable counts
//!   as unset, as in DataJoint.
//! * `DJ_STORES` replaces the whole `stores` block; secrets then fill only the
//!   store attributes still missing.
//! * Connecting as DataJoint connects: a `host:port` host gives the port; an
//!   empty password is none; `use_tls` (`DJ_USE_TLS`) left out tries TLS,
//!   `true` requires it, `false` turns it off, and its dict form (from
//!   `dj.conn(use_tls={...})`, handed over by the Python wrapper) names a CA
//!   and a client certificate. djgc's `DJGC_TLS_CA` (or `--tls-ca`) verifies
//!   the server against a CA ([`Tls`]).
//!
//! Store specs are validated as DataJoint validates them (required and allowed
//! keys per protocol, non-overlapping section prefixes), so a config DataJoint
//! rejects is rejected here too, with an error naming the store and key.
//!
//! Invariant: secrets are held in [`Secret`], which never prints its value.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod database;
pub mod identity;
mod store;

pub use database::{Backend, DatabaseConfig, Tls, TlsMode, DEFAULT_DB_TIMEOUT};
pub use store::{AzureSpec, GcsSpec, GcsToken, Protocol, S3Spec, StoreSpec};

use database::resolve_database;
use store::parse_store;

/// The file DataJoint looks for.
pub const CONFIG_FILENAME: &str = "datajoint.json";
const SECRETS_DIRNAME: &str = ".secrets";
/// Where DataJoint looks for secrets when no `.secrets/` sits beside the file.
pub const SYSTEM_SECRETS_DIR: &str = "/run/secrets/datajoint";

/// A password or secret key: usable by the code, masked in every printout.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The real value, for handing to a client library. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

/// The resolved configuration: database plus the raw `stores` block.
#[derive(Clone, Debug)]
pub struct Config {
    pub database: DatabaseConfig,
    /// `datajoint.json` that was read, if any.
    pub file: Option<PathBuf>,
    /// The secrets folder that was read, if any.
    pub secrets_dir: Option<PathBuf>,
    stores: Map<String, Value>,
    /// Where each setting came from, by its dotted name.
    sources: BTreeMap<String, String>,
}

/// One resolved setting as `djgc config` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Setting {
    /// Dotted name, as in `datajoint.json` (`database.host`, `stores.main.bucket`).
    pub key: String,
    /// The value, or `****` for a secret.
    pub value: String,
    /// `env DJ_HOST`, `file PATH`, `secrets PATH`, or `default`.
    pub source: String,
}

/// Whether a setting holds a secret, so that it is never shown: passwords,
/// S3 secret keys, GCS tokens, Azure account keys and connection strings
/// (which carry the account key).
fn is_secret(key: &str) -> bool {
    let attr = key.rsplit('.').next().unwrap_or(key);
    attr == "password"
        || attr.contains("secret")
        || attr.contains("token")
        || (attr.contains("key") && attr != "access_key")
        || attr == "connection_string"
}

/// `value` with the password (or the whole user part) of any URL in it
/// masked: `https://user:pw@host` becomes `https://****@host`.
fn mask_url_credentials(value: &str) -> String {
    let mut shown = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(scheme_end) = rest.find("://") {
        let authority_start = scheme_end + 3;
        shown.push_str(&rest[..authority_start]);
        rest = &rest[authority_start..];
        let authority_end = rest.find(['/', '?', '#', ' ']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            shown.push_str("****");
            rest = &rest[at..];
        }
    }
    shown.push_str(rest);
    shown
}

/// Where to read the configuration from; [`LoadOptions::from_process`] gives
/// the real process environment, tests build their own.
pub struct LoadOptions {
    /// `--config FILE`: read this instead of searching.
    pub explicit_file: Option<PathBuf>,
    /// Where the upward search starts (the working directory).
    pub search_from: PathBuf,
    /// The secrets folder used when none sits beside the config file.
    pub system_secrets_dir: PathBuf,
    /// The environment (only `DJ_*` variables and `DJGC_TLS_CA` are read).
    pub env: BTreeMap<String, String>,
}

/// djgc's own variable naming a CA to verify the database server with.
pub const TLS_CA_VARIABLE: &str = "DJGC_TLS_CA";

impl LoadOptions {
    /// The process's working directory and environment.
    pub fn from_process(explicit_file: Option<PathBuf>) -> Result<Self> {
        let search_from = std::env::current_dir()
            .map_err(|e| Error::Config(format!("cannot read the working directory: {e}")))?;
        Ok(LoadOptions {
            explicit_file,
            search_from,
            system_secrets_dir: PathBuf::from(SYSTEM_SECRETS_DIR),
            env: std::env::vars()
                .filter(|(k, _)| k.starts_with("DJ_") || k == TLS_CA_VARIABLE)
                .collect(),
        })
    }

    /// An environment variable, with DataJoint's rule that empty means unset.
    fn env(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// `datajoint.json` in `start` or a parent, stopping at `.git`/`.hg` or `/`.
pub fn find_config_file(start: &Path) -> Option<PathBuf> {
    let start = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    for dir in start.ancestors() {
        let candidate = dir.join(CONFIG_FILENAME);
        if candidate.is_file() {
            return Some(candidate);
        }
        if dir.join(".git").exists() || dir.join(".hg").exists() {
            return None;
        }
    }
    None
}

pub(super) fn read_secret(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The string a setting holds; `origin` names the setting (its dotted key
/// last). A value of another type is shown in the error unless the setting
/// is a secret.
pub(super) fn as_str<'a>(value: &'a Value, origin: &dyn Fn() -> String) -> Result<&'a str> {
    value.as_str().ok_or_else(|| {
        let origin = origin();
        let got = if is_secret(&origin) {
            match value {
                Value::Number(_) => "a number".to_string(),
                Value::Bool(_) => "true or false".to_string(),
                Value::Array(_) => "a list".to_string(),
                _ => "another kind of value".to_string(),
            }
        } else {
            value.to_string()
        };
        Error::Config(format!("{origin}: expected a string, got {got}"))
    })
}

/// The `database` settings a file gives, nested or as `database.x` keys.
fn file_database_settings(file: &Map<String, Value>) -> Map<String, Value> {
    let mut settings = Map::new();
    if let Some(Value::Object(nested)) = file.get("database") {
        settings.extend(nested.clone());
    }
    for (key, value) in file {
        if let Some(attr) = key.strip_prefix("database.") {
            settings.insert(attr.to_string(), value.clone());
        }
    }
    settings
}

/// The `stores` block a file gives, nested or as `stores.<name>.<attr>` keys.
fn file_stores(file: &Map<String, Value>) -> Map<String, Value> {
    let mut stores = Map::new();
    if let Some(Value::Object(nested)) = file.get("stores") {
        stores.extend(nested.clone());
    }
    for (key, value) in file {
        let parts: Vec<&str> = key.split('.').collect();
        if let ["stores", name, attr] = parts.as_slice() {
            let entry = stores
                .entry(name.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(spec) = entry {
                spec.insert(attr.to_string(), value.clone());
            }
        }
    }
    stores
}

impl Config {
    /// Reads the configuration as DataJoint would from this process.
    pub fn load(explicit_file: Option<PathBuf>) -> Result<Config> {
        Config::load_with(&LoadOptions::from_process(explicit_file)?)
    }

    /// Reads the configuration from the given file, folder and environment.
    pub fn load_with(options: &LoadOptions) -> Result<Config> {
        let ignore_file = options
            .env("DJ_IGNORE_CONFIG_FILE")
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));

        let file = match (&options.explicit_file, ignore_file) {
            (Some(path), _) => {
                if !path.is_file() {
                    return Err(Error::Config(format!(
                        "config file {} does not exist",
                        path.display()
                    )));
                }
                Some(path.clone())
            }
            (None, true) => None,
            (None, false) => find_config_file(&options.search_from),
        };
        let dj_stores = options.env("DJ_STORES");
        if file.is_none() && dj_stores.is_none() {
            return Err(Error::Config(format!(
                "no {CONFIG_FILENAME} found in {} or its parents (the search stops at a \
                 folder holding .git or .hg); name the file (`config`) or set DJ_STORES",
                options.search_from.display()
            )));
        }

        let file_map = match &file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
                match serde_json::from_str::<Value>(&text) {
                    Ok(Value::Object(map)) => map,
                    Ok(_) => {
                        return Err(Error::Config(format!(
                            "{}: the top level must be a JSON object",
                            path.display()
                        )))
                    }
                    Err(e) => {
                        return Err(Error::Config(format!(
                            "{} is not valid JSON: {e}",
                            path.display()
                        )))
                    }
                }
            }
            None => Map::new(),
        };

        let secrets_dir = if ignore_file {
            None
        } else {
            file.as_ref()
                .map(|f| f.with_file_name(SECRETS_DIRNAME))
                .filter(|d| d.is_dir())
                .or_else(|| Some(options.system_secrets_dir.clone()).filter(|d| d.is_dir()))
        };

        let file_label = file
            .as_ref()
            .map(|f| f.display().to_string())
            .unwrap_or_else(|| "configuration".to_string());
        let mut sources = BTreeMap::new();
        let database = resolve_database(
            &file_database_settings(&file_map),
            &file_label,
            options,
            secrets_dir.as_deref(),
            &mut sources,
        )?;

        let mut stores = match dj_stores {
            Some(raw) => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Object(map)) => map,
                Ok(other) => {
                    return Err(Error::Config(format!(
                        "DJ_STORES must be a JSON object, got {other}"
                    )))
                }
                Err(e) => {
                    return Err(Error::Config(format!(
                        "DJ_STORES contains invalid JSON: {e}"
                    )))
                }
            },
            None => file_stores(&file_map),
        };
        let stores_source = match dj_stores {
            Some(_) => "env DJ_STORES".to_string(),
            None => format!("file {file_label}"),
        };
        for (name, spec) in &stores {
            match spec {
                Value::Object(spec) => {
                    for attr in spec.keys() {
                        sources.insert(format!("stores.{name}.{attr}"), stores_source.clone());
                    }
                }
                _ => {
                    sources.insert(format!("stores.{name}"), stores_source.clone());
                }
            }
        }
        if let Some(dir) = &secrets_dir {
            fill_store_secrets(&mut stores, dir, &mut sources);
        }

        Ok(Config {
            database,
            file,
            secrets_dir,
            stores,
            sources,
        })
    }

    /// Every setting with its value (secrets masked) and where it came
    /// from: the database's, then each store's raw attributes.
    pub fn settings(&self) -> Vec<Setting> {
        let source = |key: &str| {
            self.sources
                .get(key)
                .cloned()
                .unwrap_or_else(|| "default".to_string())
        };
        let db = &self.database;
        let mut settings: Vec<(String, String)> = vec![
            ("database.backend".into(), db.backend.to_string()),
            ("database.host".into(), db.host.clone()),
            ("database.port".into(), db.port.to_string()),
        ];
        if let Some(user) = &db.user {
            settings.push(("database.user".into(), user.clone()));
        }
        if db.password.is_some() {
            settings.push(("database.password".into(), String::new()));
        }
        if db.backend == Backend::PostgreSql {
            settings.push(("database.name".into(), db.name.clone()));
        }
        let use_tls = match db.tls.mode {
            TlsMode::Prefer => "null (TLS tried, plaintext if the server offers none)",
            TlsMode::Require => "true (TLS required)",
            TlsMode::Disable => "false (TLS off)",
        };
        settings.push(("database.use_tls".into(), use_tls.to_string()));
        for (key, path) in [
            ("database.tls_ca", &db.tls.ca),
            ("database.tls_cert", &db.tls.client_cert),
            ("database.tls_key", &db.tls.client_key),
        ] {
            if let Some(path) = path {
                settings.push((key.into(), path.display().to_string()));
            }
        }
        for (name, spec) in &self.stores {
            match spec {
                Value::Object(spec) => {
                    for (attr, value) in spec {
                        let shown = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        settings.push((format!("stores.{name}.{attr}"), shown));
                    }
                }
                other => settings.push((
                    format!("stores.{name}"),
                    other
                        .as_str()
                        .map_or_else(|| other.to_string(), str::to_string),
                )),
            }
        }
        settings
            .into_iter()
            .map(|(key, value)| Setting {
                value: if is_secret(&key) {
                    "****".to_string()
                } else {
                    mask_url_credentials(&value)
                },
                source: source(&key),
                key,
            })
            .collect()
    }

    /// The names of the configured stores (not `default`).
    pub fn store_names(&self) -> Vec<String> {
        self.stores
            .iter()
            .filter(|(k, v)| *k != "default" && v.is_object())
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The store to collect: `name`, or `stores.default` when `None`.
    pub fn store(&self, name: Option<&str>) -> Result<StoreSpec> {
        let name = match name {
            Some(name) => name.to_string(),
            None => match self.stores.get("default") {
                Some(Value::String(name)) => name.clone(),
                Some(other) => {
                    return Err(Error::Config(format!(
                        "stores.default must be a store name, got {other}"
                    )))
                }
                None => {
                    return Err(Error::Config(
                        "no `store` given and stores.default is not configured".to_string(),
                    ))
                }
            },
        };
        let raw = match self.stores.get(&name) {
            Some(Value::Object(spec)) if name != "default" => spec,
            _ => {
                let known: Vec<&str> = self
                    .stores
                    .iter()
                    .filter(|(k, v)| *k != "default" && v.is_object())
                    .map(|(k, _)| k.as_str())
                    .collect();
                return Err(Error::Config(format!(
                    "unknown store {name:?}: configured stores are [{}]",
                    known.join(", ")
                )));
            }
        };
        let mut spec = parse_store(&name, raw)?;
        spec.is_default = self.default_store_name() == Some(name.as_str());
        Ok(spec)
    }

    /// Verifies the database server against the CA file `ca` (the
    /// `--tls-ca` flag, named by `origin`), over what the configuration says.
    pub fn verify_database_with(&mut self, ca: PathBuf, origin: &str) -> Result<()> {
        self.database.tls.verify_with(ca, origin)?;
        self.sources
            .insert("database.tls_ca".into(), origin.to_string());
        Ok(())
    }

    /// The name `stores.default` gives, if any.
    pub fn default_store_name(&self) -> Option<&str> {
        self.stores.get("default").and_then(Value::as_str)
    }
}

/// Secrets files named `stores.<name>.<attr>` fill attributes still missing.
fn fill_store_secrets(
    stores: &mut Map<String, Value>,
    dir: &Path,
    sources: &mut BTreeMap<String, String>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let parts: Vec<&str> = file_name.split('.').collect();
        let ["stores", store, attr] = parts.as_slice() else {
            continue;
        };
        if !entry.path().is_file() {
            continue;
        }
        let Some(value) = read_secret(dir, file_name) else {
            continue;
        };
        let spec = stores
            .entry(store.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(spec) = spec {
            if !spec.contains_key(*attr) {
                spec.insert(attr.to_string(), Value::String(value));
                let source = format!("secrets {}", dir.join(file_name).display());
                sources.insert(format!("stores.{store}.{attr}"), source);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(dir: &Path, env: &[(&str, &str)]) -> LoadOptions {
        LoadOptions {
            explicit_file: None,
            search_from: dir.to_path_buf(),
            system_secrets_dir: dir.join("no-system-secrets"),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn upward_search_finds_file_and_stops_at_git() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("proj/datajoint.json"),
            r#"{"stores": {"default": "main", "main": {"protocol": "file", "location": "/x"}}}"#,
        );
        let deep = root.path().join("proj/a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let config = Config::load_with(&options(&deep, &[])).unwrap();
        assert!(config.file.unwrap().ends_with("proj/datajoint.json"));

        std::fs::create_dir_all(root.path().join("proj/a/.git")).unwrap();
        let err = Config::load_with(&options(&deep, &[])).unwrap_err();
        assert!(err.to_string().contains("no datajoint.json found"), "{err}");
    }

    #[test]
    fn precedence_env_over_file_over_secrets() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"database": {"host": "filehost", "user": "fileuser"},
                "database.port": 3307,
                "stores": {"default": "main", "main": {"protocol": "file", "location": "/x"}}}"#,
        );
        write(&root.path().join(".secrets/database.user"), "secretuser\n");
        write(&root.path().join(".secrets/database.password"), "pw\n");
        let config = Config::load_with(&options(root.path(), &[("DJ_HOST", "envhost")])).unwrap();
        let db = config.database;
        assert_eq!(db.host, "envhost");
        assert_eq!(db.user.as_deref(), Some("fileuser"));
        assert_eq!(db.password.unwrap().expose(), "pw");
        assert_eq!(db.port, 3307);
        assert_eq!(db.backend, Backend::MySql);

        // An empty environment variable counts as unset.
        let config = Config::load_with(&options(root.path(), &[("DJ_HOST", "")])).unwrap();
        assert_eq!(config.database.host, "filehost");
    }

    #[test]
    fn connection_settings_follow_datajoint() {
        let root = tempfile::tempdir().unwrap();
        let load = |json: &str, env: &[(&str, &str)]| {
            write(&root.path().join("datajoint.json"), json);
            Config::load_with(&options(root.path(), env)).map(|c| c.database)
        };
        // host:port, and its port wins; an empty password is none.
        let db = load(
            r#"{"database": {"host": "db.lab.org:3307", "port": 3306, "user": "root",
                             "password": ""}}"#,
            &[],
        )
        .unwrap();
        assert_eq!((db.host.as_str(), db.port), ("db.lab.org", 3307));
        assert!(db.password.is_none());
        assert_eq!(db.tls, Tls::PREFER);
        let db = load(r#"{"database": {"host": "[::1]:3308"}}"#, &[]).unwrap();
        assert_eq!((db.host.as_str(), db.port), ("::1", 3308));
        assert!(load(r#"{"database": {"host": "db:x"}}"#, &[]).is_err());
        // use_tls from the file and from DJ_USE_TLS (which wins).
        let mode = |json: &str, env: &[(&str, &str)]| load(json, env).unwrap().tls.mode;
        assert_eq!(
            mode(r#"{"database": {"use_tls": true}}"#, &[]),
            TlsMode::Require
        );
        assert_eq!(
            mode(r#"{"database": {"use_tls": false}}"#, &[]),
            TlsMode::Disable
        );
        assert_eq!(
            mode(r#"{"database": {"use_tls": null}}"#, &[]),
            TlsMode::Prefer
        );
        // DataJoint's DJ_USE_TLS fills in only what the file leaves out.
        assert_eq!(
            mode(
                r#"{"database": {"use_tls": true}}"#,
                &[("DJ_USE_TLS", "false")]
            ),
            TlsMode::Require
        );
        assert_eq!(
            mode(r#"{"database": {}}"#, &[("DJ_USE_TLS", "true")]),
            TlsMode::Require
        );
        assert_eq!(
            mode(r#"{"database": {"use_tls": 1}}"#, &[]),
            TlsMode::Require
        );
        assert!(load(r#"{"database": {"use_tls": 3}}"#, &[]).is_err());
        // A dict key djgc cannot honour is refused, not dropped.
        let e = load(r#"{"database": {"use_tls": {"capath": "/etc/ssl"}}}"#, &[]).unwrap_err();
        assert!(e.to_string().contains("capath"), "{e}");
        assert!(load(r#"{"database": {"use_tls": {"cert": "/c.pem"}}}"#, &[]).is_err());
        let unchecked = r#"{"database": {"use_tls": {"ca": "/ca.pem", "check_hostname": false}}}"#;
        assert!(load(unchecked, &[]).is_err());
        // The dict form, and DJGC_TLS_CA: TLS required and verified.
        let db = load(
            r#"{"database": {"use_tls": {"ca": "/ca.pem", "cert": "/c.pem", "key": "/k.pem"}}}"#,
            &[],
        )
        .unwrap();
        assert_eq!(db.tls.mode, TlsMode::Require);
        assert_eq!(db.tls.ca.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(db.tls.client_key.as_deref(), Some(Path::new("/k.pem")));
        let db = load("{}", &[("DJGC_TLS_CA", "/lab-ca.pem")]).unwrap();
        assert!(db
            .tls
            .describe()
            .contains("verified against CA /lab-ca.pem"));
        let e = load(
            r#"{"database": {"use_tls": false}}"#,
            &[("DJGC_TLS_CA", "/x")],
        );
        assert!(e.unwrap_err().to_string().contains("DJGC_TLS_CA"));
    }

    #[test]
    fn postgres_defaults_port_and_database() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"database": {"backend": "postgresql"}, "stores": {}}"#,
        );
        let db = Config::load_with(&options(root.path(), &[]))
            .unwrap()
            .database;
        assert_eq!(
            (db.backend, db.port, db.name.as_str()),
            (Backend::PostgreSql, 5432, "postgres")
        );
        assert_eq!(db.host, "localhost");
    }

    #[test]
    fn dj_stores_replaces_stores_and_secrets_fill_missing_keys() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"stores": {"default": "old", "old": {"protocol": "file", "location": "/old"}}}"#,
        );
        write(&root.path().join(".secrets/stores.arch.access_key"), "AK");
        write(&root.path().join(".secrets/stores.arch.secret_key"), "SK");
        let stores = r#"{"default": "arch", "arch": {"protocol": "s3", "endpoint": "h:9000",
                         "bucket": "b", "location": "dj", "secret_key": "from-env"}}"#;
        let config = Config::load_with(&options(root.path(), &[("DJ_STORES", stores)])).unwrap();
        let spec = config.store(None).unwrap();
        assert_eq!(spec.name, "arch");
        let s3 = spec.s3.unwrap();
        assert_eq!(s3.access_key.unwrap().expose(), "AK");
        assert_eq!(s3.secret_key.unwrap().expose(), "from-env");
        assert!(s3.secure);
        assert!(config.store(Some("old")).is_err());
    }

    #[test]
    fn store_errors_name_the_store_and_key() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"stores": {
                "nolocation": {"protocol": "file"},
                "weird": {"protocol": "ftp", "location": "/x"},
                "extra": {"protocol": "file", "location": "/x", "bucket": "b"},
                "overlap": {"protocol": "file", "location": "/x", "hash_prefix": "data",
                            "schema_prefix": "data/schema"},
                "halfkeys": {"protocol": "s3", "endpoint": "e", "bucket": "b",
                             "location": "", "access_key": "a"}}}"#,
        );
        let config = Config::load_with(&options(root.path(), &[])).unwrap();
        let message = |name: Option<&str>| config.store(name).unwrap_err().to_string();
        assert!(message(None).contains("stores.default is not configured"));
        assert!(message(Some("nope")).contains("unknown store \"nope\""));
        assert!(message(Some("nolocation"))
            .contains("store \"nolocation\" (file): missing field `location`"));
        assert!(message(Some("weird")).contains("unknown protocol \"ftp\""));
        assert!(message(Some("extra")).contains("stores.extra.bucket: unknown field `bucket`"));
        assert!(message(Some("overlap")).contains("overlap"));
        let half = message(Some("halfkeys"));
        assert!(half.contains("given together") && !half.contains("\"a\""));
    }

    #[test]
    fn keys_djgc_cannot_honour_are_refused_and_values_never_quoted() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"stores": {
                "proxied": {"protocol": "s3", "endpoint": "e", "bucket": "b", "location": "",
                            "proxy_server": "http://proxy.lab:3128"},
                "badsecret": {"protocol": "s3", "endpoint": "e", "bucket": "b", "location": "",
                              "access_key": "a", "secret_key": 123456789},
                "badsecure": {"protocol": "S3", "endpoint": "e", "bucket": "b", "location": "",
                              "secure": "a, expected hunter2"},
                "zero": {"protocol": "file", "location": "/x", "subfolding": [2, 0]},
                "tokens": {"protocol": "file", "location": "/x", "token_length": 12,
                           "stage": "/tmp/stage"}}}"#,
        );
        let config = Config::load_with(&options(root.path(), &[])).unwrap();
        let message = |name: &str| config.store(Some(name)).unwrap_err().to_string();
        let proxied = message("proxied");
        assert!(
            proxied.contains("stores.proxied.proxy_server") && proxied.contains("directly"),
            "{proxied}"
        );
        let secret = message("badsecret");
        assert!(
            secret.contains("stores.badsecret.secret_key") && !secret.contains("123456789"),
            "{secret}"
        );
        let secure = message("badsecure");
        assert!(
            secure.contains("stores.badsecure.secure: invalid type, expected a boolean")
                && !secure.contains("hunter2"),
            "{secure}"
        );
        assert!(message("zero").contains("stores.zero.subfolding"));
        // Accepted: they do not change where objects are or how to reach them.
        assert_eq!(config.store(Some("tokens")).unwrap().location, "/x");
    }

    #[test]
    fn section_prefixes_are_plain_store_paths() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"stores": {
                "up": {"protocol": "file", "location": "/x", "hash_prefix": "../h"},
                "dot": {"protocol": "file", "location": "/x", "schema_prefix": "a/./b"},
                "deep": {"protocol": "file", "location": "/x", "filepath_prefix": "raw/2026"}}}"#,
        );
        let config = Config::load_with(&options(root.path(), &[])).unwrap();
        for (name, setting) in [("up", "hash_prefix"), ("dot", "schema_prefix")] {
            let e = config.store(Some(name)).unwrap_err().to_string();
            assert!(
                e.contains(setting) && e.contains("not a plain store path"),
                "{e}"
            );
        }
        assert!(config.store(Some("deep")).is_ok());
    }

    #[test]
    fn secrets_are_masked_wherever_they_sit() {
        for key in [
            "database.password",
            "stores.a.secret_key",
            "stores.a.token",
            "stores.a.account_key",
            "stores.a.connection_string",
        ] {
            assert!(is_secret(key), "{key}");
        }
        for key in [
            "stores.a.access_key",
            "stores.a.account_name",
            "stores.a.endpoint",
        ] {
            assert!(!is_secret(key), "{key}");
        }
        assert_eq!(
            mask_url_credentials("https://ak:pw@s3.example.org:9000/x and http://u@p:3128"),
            "https://****@s3.example.org:9000/x and http://****@p:3128"
        );
        assert_eq!(
            mask_url_credentials("s3.example.org:9000"),
            "s3.example.org:9000"
        );
        let e = as_str(&serde_json::json!(123456), &|| "stores.a.secret_key".into()).unwrap_err();
        assert!(!e.to_string().contains("123456"), "{e}");
        let e = as_str(&serde_json::json!(3306), &|| "database.host".into()).unwrap_err();
        assert!(e.to_string().contains("3306"), "{e}");
    }

    #[test]
    fn store_defaults_and_flat_keys() {
        let root = tempfile::tempdir().unwrap();
        write(
            &root.path().join("datajoint.json"),
            r#"{"stores.main.protocol": "file", "stores.main.location": "/data",
                "stores.main.subfolding": [2, 2], "stores.main.schema_prefix": "/objs/"}"#,
        );
        let config = Config::load_with(&options(root.path(), &[])).unwrap();
        let spec = config.store(Some("main")).unwrap();
        assert_eq!(spec.subfolding, Some(vec![2, 2]));
        assert_eq!(spec.hash_prefix, "_hash");
        assert_eq!(spec.schema_prefix, "objs");
        assert_eq!(spec.location, "/data");
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret} {secret:?}").contains("hunter2"));
    }
}
