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

/// Which SQL server holds the pipeline's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// MySQL or MariaDB: a DataJoint schema is a database.
    MySql,
    /// PostgreSQL: a DataJoint schema is a schema inside database `database.name`.
    PostgreSql,
}

impl Backend {
    fn parse(value: &str, origin: &str) -> Result<Self> {
        match value {
            "mysql" => Ok(Backend::MySql),
            "postgresql" => Ok(Backend::PostgreSql),
            other => Err(Error::Config(format!(
                "{origin}: database backend {other:?} is not one of \"mysql\", \"postgresql\""
            ))),
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Backend::MySql => 3306,
            Backend::PostgreSql => 5432,
        }
    }
}

impl fmt::Display for Backend {
    /// The name `database.backend` takes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::MySql => "mysql",
            Backend::PostgreSql => "postgresql",
        })
    }
}

/// How to reach the database, after all precedence rules.
#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub backend: Backend,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// PostgreSQL database holding the schemas (default `postgres`).
    pub name: String,
    /// The longest any wait on the database may take: connecting, a
    /// statement's answer or next row, a lock (djgc's setting, not
    /// DataJoint's; [`DEFAULT_DB_TIMEOUT`] unless the caller sets it).
    pub timeout: std::time::Duration,
    /// How the connection is encrypted (`database.use_tls`).
    pub tls: Tls,
}

/// DataJoint's `database.use_tls` (`DJ_USE_TLS`), as its clients apply it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Left out or `null`: TLS if the server offers it, else plaintext
    /// (pymysql's `ssl={}` with a plaintext retry; PostgreSQL `prefer`).
    Prefer,
    /// `true`: TLS or no connection; the certificate is not checked
    /// (PostgreSQL `require`).
    Require,
    /// `false`: plaintext (PostgreSQL `disable`).
    Disable,
}

/// How the database connection is encrypted, and against which
/// certificates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tls {
    pub mode: TlsMode,
    /// A CA to verify the server's certificate and host name against
    /// (`DJGC_TLS_CA`, `--tls-ca`, or `ca` of the `use_tls` dict form that
    /// `dj.conn(use_tls={...})` takes): TLS is then required and verified.
    pub ca: Option<PathBuf>,
    /// A client certificate and its key (`cert`, `key` of the dict form).
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl Tls {
    /// TLS as DataJoint does it when `use_tls` is left out.
    pub const PREFER: Tls = Tls {
        mode: TlsMode::Prefer,
        ca: None,
        client_cert: None,
        client_key: None,
    };

    /// Verifies the server against `ca` from now on (TLS required).
    pub fn verify_with(&mut self, ca: PathBuf, origin: &str) -> Result<()> {
        if self.mode == TlsMode::Disable {
            return Err(Error::Config(format!(
                "{origin} names a CA to verify the database server with, but \
                 database.use_tls is false (no TLS)"
            )));
        }
        self.mode = TlsMode::Require;
        self.ca = Some(ca);
        Ok(())
    }

    /// What the connection does, for messages: `TLS tried`, `TLS required`,
    /// `TLS required and verified against CA FILE`, `TLS off`.
    pub fn describe(&self) -> String {
        match (self.mode, &self.ca) {
            (TlsMode::Disable, _) => "TLS off".to_string(),
            (_, Some(ca)) => format!("TLS required and verified against CA {}", ca.display()),
            (TlsMode::Require, None) => "TLS required, certificate not verified".to_string(),
            (TlsMode::Prefer, None) => "TLS tried, plaintext if the server offers none".to_string(),
        }
    }
}

/// How long djgc waits for the database before it gives up: long enough
/// for a busy server to answer a catalog query or find the next non-null
/// row of a large table, short enough that a dead host or a read queued
/// behind a lock (MySQL waits a year for one by default) ends the run.
pub const DEFAULT_DB_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Keys every store accepts, whatever its protocol.
const COMMON_STORE_KEYS: &[&str] = &[
    "protocol",
    "location",
    "subfolding",
    "partition_pattern",
    "token_length",
    "hash_prefix",
    "schema_prefix",
    "filepath_prefix",
    "stage",
];

/// The storage protocols djgc knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    File,
    S3,
    Gcs,
    Azure,
}

impl Protocol {
    fn required_keys(self) -> &'static [&'static str] {
        match self {
            Protocol::File => &["protocol", "location"],
            Protocol::S3 => &["protocol", "endpoint", "bucket", "location"],
            Protocol::Gcs => &["protocol", "bucket", "location"],
            Protocol::Azure => &["protocol", "container", "location"],
        }
    }

    /// Keys this protocol accepts besides [`COMMON_STORE_KEYS`].
    fn own_keys(self) -> &'static [&'static str] {
        match self {
            Protocol::File => &[],
            Protocol::S3 => &[
                "endpoint",
                "bucket",
                "access_key",
                "secret_key",
                "secure",
                "proxy_server",
            ],
            Protocol::Gcs => &["bucket", "token", "project"],
            Protocol::Azure => &[
                "container",
                "account_name",
                "account_key",
                "connection_string",
            ],
        }
    }

    /// Whether DataJoint accepts `key` in a store of this protocol.
    fn allows(self, key: &str) -> bool {
        COMMON_STORE_KEYS.contains(&key) || self.own_keys().contains(&key)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::File => "file",
            Protocol::S3 => "s3",
            Protocol::Gcs => "gcs",
            Protocol::Azure => "azure",
        })
    }
}

/// S3 connection settings of a store (`protocol: s3`).
#[derive(Clone, Debug)]
pub struct S3Spec {
    pub endpoint: String,
    pub bucket: String,
    pub secure: bool,
    pub access_key: Option<Secret>,
    pub secret_key: Option<Secret>,
}

/// One validated store of `stores`, with DataJoint's defaults applied.
#[derive(Clone, Debug)]
pub struct StoreSpec {
    pub name: String,
    pub protocol: Protocol,
    /// A folder for `file`, a key prefix inside the bucket for `s3`.
    pub location: String,
    pub subfolding: Option<Vec<usize>>,
    /// Without surrounding slashes; default `_hash`.
    pub hash_prefix: String,
    /// Without surrounding slashes; default `_schema`; empty = legacy root layout.
    pub schema_prefix: String,
    pub filepath_prefix: Option<String>,
    pub partition_pattern: Option<String>,
    /// Present for `protocol: s3`.
    pub s3: Option<S3Spec>,
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

fn read_secret(dir: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(name))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The string a setting holds; `origin` names the setting (its dotted key
/// last). A value of another type is shown in the error unless the setting
/// is a secret.
fn as_str<'a>(value: &'a Value, origin: &dyn Fn() -> String) -> Result<&'a str> {
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
                 folder holding .git or .hg); pass --config FILE or set DJ_STORES",
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
                        "no --store given and stores.default is not configured".to_string(),
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
        parse_store(&name, raw)
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

fn resolve_database(
    file: &Map<String, Value>,
    file_label: &str,
    options: &LoadOptions,
    secrets: Option<&Path>,
    sources: &mut BTreeMap<String, String>,
) -> Result<DatabaseConfig> {
    // One setting, by precedence: environment, file, secrets file; each
    // found value's source is recorded.
    let found = std::cell::RefCell::new(BTreeMap::new());
    let setting = |attr: &str, env_var: &str| -> Result<Option<String>> {
        let key = format!("database.{attr}");
        let record = |source: String| found.borrow_mut().insert(key.clone(), source);
        if let Some(v) = options.env(env_var) {
            record(format!("env {env_var}"));
            return Ok(Some(v.to_string()));
        }
        match file.get(attr) {
            None | Some(Value::Null) => {}
            Some(Value::Number(n)) => {
                record(format!("file {file_label}"));
                return Ok(Some(n.to_string()));
            }
            Some(value) => {
                record(format!("file {file_label}"));
                return as_str(value, &|| format!("{file_label}: database.{attr}"))
                    .map(|s| Some(s.to_string()));
            }
        }
        let secret = secrets.and_then(|dir| Some((dir, read_secret(dir, &key)?)));
        Ok(secret.map(|(dir, value)| {
            record(format!("secrets {}", dir.join(&key).display()));
            value
        }))
    };

    let backend = match setting("backend", "DJ_BACKEND")? {
        Some(v) => Backend::parse(&v, "database.backend")?,
        None => Backend::MySql,
    };
    let port = match setting("port", "DJ_PORT")? {
        Some(v) => v.parse::<u16>().map_err(|_| {
            Error::Config(format!(
                "database.port (or DJ_PORT) {v:?} is not a port number"
            ))
        })?,
        None => backend.default_port(),
    };
    let host = setting("host", "DJ_HOST")?.unwrap_or_else(|| "localhost".to_string());
    // As DataJoint: a port in the host wins over `port`.
    let (host, port) = match split_host_port(&host) {
        Some((host, in_host)) => {
            let in_host = in_host.parse::<u16>().map_err(|_| {
                Error::Config(format!(
                    "database.host (or DJ_HOST) {host:?} has {in_host:?} after its ':', which is \
                     not a port number"
                ))
            })?;
            (host.to_string(), in_host)
        }
        None => (host, port),
    };
    let mut tls = use_tls(file, file_label, options, &mut found.borrow_mut())?;
    if let Some(ca) = options.env(TLS_CA_VARIABLE) {
        tls.verify_with(PathBuf::from(ca), TLS_CA_VARIABLE)?;
        found
            .borrow_mut()
            .insert("database.tls_ca".into(), format!("env {TLS_CA_VARIABLE}"));
    }
    let database = DatabaseConfig {
        backend,
        host,
        port,
        user: setting("user", "DJ_USER")?,
        // An empty password is no password, as for pymysql and psycopg2.
        password: setting("password", "DJ_PASS")?
            .filter(|p| !p.is_empty())
            .map(Secret::new),
        name: setting("name", "DJ_DATABASE_NAME")?.unwrap_or_else(|| "postgres".to_string()),
        timeout: DEFAULT_DB_TIMEOUT,
        tls,
    };
    sources.extend(found.into_inner());
    Ok(database)
}

/// `host:port` split as DataJoint splits it (one `:`), or `[v6]:port`;
/// `None` for a host without a port.
fn split_host_port(host: &str) -> Option<(&str, &str)> {
    if let Some(bracketed) = host.strip_prefix('[') {
        let (address, rest) = bracketed.split_once(']')?;
        return rest.strip_prefix(':').map(|port| (address, port));
    }
    match host.matches(':').count() {
        1 => host.split_once(':'),
        _ => None,
    }
}

/// `database.use_tls` from the file or `DJ_USE_TLS`: a boolean, `null`, or
/// (as `djgc.collect()` hands over `dj.conn(use_tls={...})`) an object
/// with `ca`, `cert` and `key` paths, which asks for TLS with those (and
/// `check_hostname`, which may only be true: see below). As in DataJoint, whose `DJ_USE_TLS` only fills in a
/// setting the file leaves out, the file wins over the environment.
fn use_tls(
    file: &Map<String, Value>,
    file_label: &str,
    options: &LoadOptions,
    sources: &mut BTreeMap<String, String>,
) -> Result<Tls> {
    let mode = |value: bool| Tls {
        mode: if value {
            TlsMode::Require
        } else {
            TlsMode::Disable
        },
        ..Tls::PREFER
    };
    let Some(value) = file.get("use_tls") else {
        return match options.env("DJ_USE_TLS") {
            None => Ok(Tls::PREFER),
            Some(text) => {
                sources.insert("database.use_tls".into(), "env DJ_USE_TLS".into());
                parse_bool(text).map(mode).ok_or_else(|| {
                    Error::Config(format!("DJ_USE_TLS {text:?} is not true or false"))
                })
            }
        };
    };
    let origin = format!("{file_label}: database.use_tls");
    let tls = match value {
        Value::Null => Tls::PREFER,
        Value::Bool(value) => mode(*value),
        Value::Number(n) if matches!(n.as_u64(), Some(0 | 1)) => mode(n.as_u64() == Some(1)),
        Value::String(text) => parse_bool(text)
            .map(mode)
            .ok_or_else(|| Error::Config(format!("{origin} {text:?} is not true or false")))?,
        Value::Object(dict) => {
            // Fail closed: a key djgc cannot honour (pymysql's `capath`,
            // `cipher`, ...) is refused, not silently dropped.
            let known = ["ca", "cert", "key", "check_hostname"];
            if let Some(unknown) = dict.keys().find(|k| !known.contains(&k.as_str())) {
                return Err(Error::Config(format!(
                    "{origin}: djgc cannot honour {unknown:?}; it takes ca, cert, key and \
                     check_hostname"
                )));
            }
            let path = |name: &str| -> Result<Option<PathBuf>> {
                match dict.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(value) => as_str(value, &|| format!("{origin}.{name}"))
                        .map(|p| Some(PathBuf::from(p))),
                }
            };
            // sqlx checks the host name whenever it checks the certificate
            // (its verifier without the check misses rustls 0.23's error),
            // so a request to skip it cannot be honoured: refused, not
            // silently made stricter.
            if dict.get("check_hostname") == Some(&Value::Bool(false)) {
                return Err(Error::Config(format!(
                    "{origin}: check_hostname false cannot be honoured; djgc checks the host \
                     name whenever it checks the certificate"
                )));
            }
            let mut tls = Tls {
                mode: TlsMode::Require,
                client_cert: path("cert")?,
                client_key: path("key")?,
                ..Tls::PREFER
            };
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                return Err(Error::Config(format!(
                    "{origin}: cert and key must be given together (as two PEM files)"
                )));
            }
            if let Some(ca) = path("ca")? {
                tls.verify_with(ca, &origin)?;
            }
            tls
        }
        other => {
            return Err(Error::Config(format!(
                "{origin}: expected true, false, null or an object with ca, cert and key, got \
                 {other}"
            )))
        }
    };
    sources.insert("database.use_tls".into(), format!("file {file_label}"));
    Ok(tls)
}

/// A boolean as pydantic reads one from the environment.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "t" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
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

fn parse_store(name: &str, raw: &Map<String, Value>) -> Result<StoreSpec> {
    let key = |attr: &str| format!("stores.{name}.{attr}");
    let protocol_text = match raw.get("protocol") {
        Some(value) => as_str(value, &|| key("protocol"))?.to_ascii_lowercase(),
        None => {
            return Err(Error::Config(format!(
                "store {name:?} is missing: protocol"
            )))
        }
    };
    let protocol = match protocol_text.as_str() {
        "file" => Protocol::File,
        "s3" => Protocol::S3,
        "gcs" => Protocol::Gcs,
        "azure" => Protocol::Azure,
        other => {
            return Err(Error::Config(format!(
                "unknown protocol {other:?} in {}: known protocols are file, s3, gcs, azure",
                key("protocol")
            )))
        }
    };
    let missing: Vec<&str> = protocol
        .required_keys()
        .iter()
        .copied()
        .filter(|k| !raw.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "store {name:?} ({protocol}) is missing: {}",
            missing.join(", ")
        )));
    }
    let invalid: Vec<&str> = raw
        .keys()
        .map(String::as_str)
        .filter(|k| !protocol.allows(k))
        .collect();
    if !invalid.is_empty() {
        return Err(Error::Config(format!(
            "invalid key(s) in store {name:?} ({protocol}): {}",
            invalid.join(", ")
        )));
    }

    let optional_str = |attr: &str| -> Result<Option<String>> {
        match raw.get(attr) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => as_str(v, &|| key(attr)).map(|s| Some(s.to_string())),
        }
    };
    let prefix = |attr: &str, default: &str| -> Result<String> {
        Ok(optional_str(attr)?
            .unwrap_or_else(|| default.to_string())
            .trim_matches('/')
            .to_string())
    };

    let subfolding = match raw.get("subfolding") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| match v.as_u64() {
                    Some(n) if n > 0 => Ok(n as usize),
                    _ => Err(Error::Config(format!(
                        "{}: expected a list of positive integers, got {v}",
                        key("subfolding")
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
        ),
        Some(other) => {
            return Err(Error::Config(format!(
                "{}: expected a list of positive integers, got {other}",
                key("subfolding")
            )))
        }
    };

    let hash_prefix = prefix("hash_prefix", "_hash")?;
    let schema_prefix = prefix("schema_prefix", "_schema")?;
    let filepath_prefix = optional_str("filepath_prefix")?.map(|p| p.trim_matches('/').to_string());
    check_prefix_separation(
        name,
        &hash_prefix,
        &schema_prefix,
        filepath_prefix.as_deref(),
    )?;

    let s3 = if protocol == Protocol::S3 {
        let access_key = optional_str("access_key")?.map(Secret::new);
        let secret_key = optional_str("secret_key")?.map(Secret::new);
        if access_key.is_some() != secret_key.is_some() {
            return Err(Error::Config(format!(
                "store {name:?}: access_key and secret_key must be given together (or both \
                 left out to use the default credential chain)"
            )));
        }
        let secure = match raw.get("secure") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(Error::Config(format!(
                    "{}: expected true or false, got {other}",
                    key("secure")
                )))
            }
        };
        Some(S3Spec {
            endpoint: optional_str("endpoint")?.unwrap_or_default(),
            bucket: optional_str("bucket")?.unwrap_or_default(),
            secure,
            access_key,
            secret_key,
        })
    } else {
        None
    };

    Ok(StoreSpec {
        name: name.to_string(),
        protocol,
        location: optional_str("location")?.unwrap_or_default(),
        subfolding,
        hash_prefix,
        schema_prefix,
        filepath_prefix,
        partition_pattern: optional_str("partition_pattern")?,
        s3,
    })
}

/// DataJoint refuses stores whose section prefixes nest; so does djgc, since a
/// nested prefix would put one section's objects inside another's listing.
fn check_prefix_separation(
    store: &str,
    hash: &str,
    schema: &str,
    filepath: Option<&str>,
) -> Result<()> {
    let named: Vec<(&str, String)> = [
        ("hash_prefix", Some(hash)),
        ("schema_prefix", Some(schema)),
        ("filepath_prefix", filepath),
    ]
    .into_iter()
    .filter_map(|(n, p)| p.filter(|p| !p.is_empty()).map(|p| (n, format!("{p}/"))))
    .collect();
    for (name, prefix) in &named {
        let prefix = prefix.trim_end_matches('/');
        if let Some(why) = prefix.split('/').find_map(crate::layout::segment_problem) {
            return Err(Error::Config(format!(
                "store {store:?}: {name}={prefix:?} is not a plain store path ({why}); \
                 sections must be folders inside the store"
            )));
        }
    }
    for (i, (name_a, a)) in named.iter().enumerate() {
        for (name_b, b) in &named[i + 1..] {
            if a.starts_with(b.as_str()) || b.starts_with(a.as_str()) {
                return Err(Error::Config(format!(
                    "store {store:?}: {name_a}={:?} and {name_b}={:?} overlap; section \
                     prefixes must be mutually exclusive",
                    a.trim_end_matches('/'),
                    b.trim_end_matches('/')
                )));
            }
        }
    }
    Ok(())
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
        assert!(message(Some("nolocation")).contains("missing: location"));
        assert!(message(Some("weird")).contains("unknown protocol \"ftp\""));
        assert!(message(Some("extra")).contains("invalid key(s) in store \"extra\""));
        assert!(message(Some("overlap")).contains("overlap"));
        let half = message(Some("halfkeys"));
        assert!(half.contains("given together") && !half.contains("\"a\""));
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
