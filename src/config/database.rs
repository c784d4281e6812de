//! The database settings: which server, as whom, and how securely,
//! resolved by DataJoint's precedence (environment, file, secrets,
//! defaults) and its connection rules (`host:port`, an empty password is
//! none, `use_tls` in all its forms).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{as_str, read_secret, LoadOptions, Secret, TLS_CA_VARIABLE};
use crate::error::{Error, Result};

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

pub(super) fn resolve_database(
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
            let dict: TlsDict = serde_path_to_error::deserialize(Value::Object(dict.clone()))
                .map_err(|e| match e.path().to_string().as_str() {
                    "." => Error::Config(format!("{origin}: {}", e.inner())),
                    key => Error::Config(format!("{origin}.{key}: {}", e.inner())),
                })?;
            dict.tls(&origin)?
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

/// The dict form of `use_tls` (pymysql's `ssl` argument, as
/// `dj.conn(use_tls={...})` takes it). Fail closed: a key djgc cannot
/// honour (pymysql's `capath`, `cipher`, ...) is refused, not dropped.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsDict {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    check_hostname: Option<bool>,
}

impl TlsDict {
    /// TLS required; with `ca`, the server's certificate and host name
    /// verified; with `cert` and `key`, a client certificate.
    fn tls(self, origin: &str) -> Result<Tls> {
        // sqlx checks the host name whenever it checks the certificate (its
        // verifier without the check misses rustls 0.23's error), so a
        // request to skip it cannot be honoured: refused, not silently
        // made stricter.
        if self.check_hostname == Some(false) {
            return Err(Error::Config(format!(
                "{origin}: check_hostname false cannot be honoured; djgc checks the host name \
                 whenever it checks the certificate"
            )));
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(Error::Config(format!(
                "{origin}: cert and key must be given together (as two PEM files)"
            )));
        }
        let mut tls = Tls {
            mode: TlsMode::Require,
            client_cert: self.cert,
            client_key: self.key,
            ..Tls::PREFER
        };
        if let Some(ca) = self.ca {
            tls.verify_with(ca, origin)?;
        }
        Ok(tls)
    }
}

/// A boolean as pydantic reads one from the environment.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "t" | "y" => Some(true),
        "0" | "false" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}
