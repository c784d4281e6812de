//! One store of `stores`: its settings read into a typed struct per
//! protocol, then checked and resolved into a [`StoreSpec`].
//!
//! Each protocol's struct names exactly the keys DataJoint accepts for it
//! (`deny_unknown_fields`), so a misspelt or foreign key is refused with the
//! store's name, as DataJoint refuses it. A key djgc cannot honour is
//! refused with the reason ([`S3Settings::proxy_server`]); keys that do not
//! change where objects are or how they are reached are read and checked,
//! and say so where they are declared.

use std::fmt;
use std::num::NonZeroUsize;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::Secret;
use crate::error::{Error, Result};

/// The storage protocols djgc knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    File,
    S3,
    Gcs,
    Azure,
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
    /// Whether `stores.default` names this store: then references that
    /// name no store are to it.
    pub is_default: bool,
}

/// Declares a protocol's settings: the keys every store shares, then the
/// protocol's own. One list of shared keys, however many protocols.
macro_rules! store_settings {
    ($(#[$meta:meta])* $name:ident { $($(#[$own_meta:meta])* $own:ident: $ty:ty,)* }) => {
        // No `Debug`: the structs hold secrets as plain strings.
        $(#[$meta])*
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            location: String,
            subfolding: Option<Vec<NonZeroUsize>>,
            hash_prefix: Option<String>,
            schema_prefix: Option<String>,
            filepath_prefix: Option<String>,
            partition_pattern: Option<String>,
            /// The length of the random token in schema-addressed names:
            /// djgc judges names by where they are, never by their length,
            /// so any value DataJoint takes (a secrets file gives a string)
            /// is accepted.
            #[allow(dead_code)]
            token_length: Option<IgnoredAny>,
            /// DataJoint's staging of uploads on the client: not part of
            /// the store djgc lists.
            #[allow(dead_code)]
            stage: Option<IgnoredAny>,
            $($(#[$own_meta])* $own: $ty,)*
        }

        impl $name {
            fn common(&self) -> Common<'_> {
                Common {
                    location: &self.location,
                    subfolding: self.subfolding.as_deref(),
                    hash_prefix: self.hash_prefix.as_deref(),
                    schema_prefix: self.schema_prefix.as_deref(),
                    filepath_prefix: self.filepath_prefix.as_deref(),
                    partition_pattern: self.partition_pattern.as_deref(),
                }
            }
        }
    };
}

store_settings! {
    /// `protocol: file`.
    FileSettings {}
}

store_settings! {
    /// `protocol: s3`.
    S3Settings {
        endpoint: String,
        bucket: String,
        access_key: Option<String>,
        secret_key: Option<String>,
        secure: Option<bool>,
        /// Refused: djgc's S3 client would connect to the endpoint directly,
        /// past the proxy the lab set up.
        proxy_server: Option<IgnoredAny>,
    }
}

store_settings! {
    /// `protocol: gcs`.
    #[allow(dead_code)]
    GcsSettings {
        bucket: String,
        token: Option<IgnoredAny>,
        project: Option<String>,
    }
}

store_settings! {
    /// `protocol: azure`.
    #[allow(dead_code)]
    AzureSettings {
        container: String,
        account_name: Option<String>,
        account_key: Option<String>,
        connection_string: Option<String>,
    }
}

/// The settings every protocol shares, borrowed from its struct.
struct Common<'a> {
    location: &'a str,
    subfolding: Option<&'a [NonZeroUsize]>,
    hash_prefix: Option<&'a str>,
    schema_prefix: Option<&'a str>,
    filepath_prefix: Option<&'a str>,
    partition_pattern: Option<&'a str>,
}

/// Reads the store `name` from its raw settings: protocol first (any case,
/// as DataJoint lowercases it), then the protocol's struct.
pub(super) fn parse_store(name: &str, raw: &Map<String, Value>) -> Result<StoreSpec> {
    let key = |attr: &str| format!("stores.{name}.{attr}");
    let protocol = match raw.get("protocol") {
        Some(Value::String(text)) => match text.to_ascii_lowercase().as_str() {
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
        },
        Some(other) => {
            return Err(Error::Config(format!(
                "{}: expected a string, got {other}",
                key("protocol")
            )))
        }
        None => {
            return Err(Error::Config(format!(
                "store {name:?} is missing: protocol"
            )))
        }
    };
    let mut settings = raw.clone();
    settings.remove("protocol");
    let s3 = match protocol {
        Protocol::File => {
            let file: FileSettings = typed(name, protocol, settings)?;
            return spec(name, protocol, file.common(), None);
        }
        Protocol::S3 => typed::<S3Settings>(name, protocol, settings)?,
        Protocol::Gcs => {
            let gcs: GcsSettings = typed(name, protocol, settings)?;
            return spec(name, protocol, gcs.common(), None);
        }
        Protocol::Azure => {
            let azure: AzureSettings = typed(name, protocol, settings)?;
            return spec(name, protocol, azure.common(), None);
        }
    };
    if s3.proxy_server.is_some() {
        return Err(Error::Config(format!(
            "{}: djgc cannot send S3 requests through a proxy, and would reach the endpoint \
             directly instead; remove the key to connect directly, or run djgc where the \
             endpoint can be reached without one",
            key("proxy_server")
        )));
    }
    if s3.access_key.is_some() != s3.secret_key.is_some() {
        return Err(Error::Config(format!(
            "store {name:?}: access_key and secret_key must be given together (or both \
             left out to use the default credential chain)"
        )));
    }
    let connection = S3Spec {
        endpoint: s3.endpoint.clone(),
        bucket: s3.bucket.clone(),
        secure: s3.secure.unwrap_or(true),
        access_key: s3.access_key.clone().map(Secret::new),
        secret_key: s3.secret_key.clone().map(Secret::new),
    };
    spec(name, protocol, s3.common(), Some(connection))
}

/// `settings` read as `T`; an error names the store and the key at fault,
/// and never a value (a secret could be one).
fn typed<T: DeserializeOwned>(
    name: &str,
    protocol: Protocol,
    settings: Map<String, Value>,
) -> Result<T> {
    serde_path_to_error::deserialize(Value::Object(settings)).map_err(|e| {
        let problem = without_value(&e.inner().to_string());
        Error::Config(match e.path().to_string().as_str() {
            "." => format!("store {name:?} ({protocol}): {problem}"),
            path => format!("stores.{name}.{path}: {problem}"),
        })
    })
}

/// A serde message without the value it quotes: `invalid type: string
/// "hunter2", expected a boolean` becomes `invalid type, expected a boolean`.
/// serde puts what it expected last, so the cut is at the last `, expected`
/// (a value may itself hold the words).
fn without_value(message: &str) -> String {
    for kind in ["invalid type", "invalid value", "invalid length"] {
        let quoted = message
            .strip_prefix(kind)
            .and_then(|rest| rest.strip_prefix(": "))
            .and_then(|rest| rest.rsplit_once(", expected "));
        if let Some((_, expected)) = quoted {
            return format!("{kind}, expected {expected}");
        }
    }
    message.to_string()
}

/// The spec of a store from its shared settings, with DataJoint's defaults.
fn spec(
    name: &str,
    protocol: Protocol,
    common: Common<'_>,
    s3: Option<S3Spec>,
) -> Result<StoreSpec> {
    let prefix =
        |given: Option<&str>, default: &str| given.unwrap_or(default).trim_matches('/').to_string();
    let hash_prefix = prefix(common.hash_prefix, "_hash");
    let schema_prefix = prefix(common.schema_prefix, "_schema");
    let filepath_prefix = common
        .filepath_prefix
        .map(|p| p.trim_matches('/').to_string());
    check_prefix_separation(
        name,
        &hash_prefix,
        &schema_prefix,
        filepath_prefix.as_deref(),
    )?;
    Ok(StoreSpec {
        name: name.to_string(),
        protocol,
        location: common.location.to_string(),
        subfolding: common
            .subfolding
            .map(|folds| folds.iter().map(|n| n.get()).collect()),
        hash_prefix,
        schema_prefix,
        filepath_prefix,
        partition_pattern: common.partition_pattern.map(str::to_string),
        s3,
        is_default: false,
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
        if let Some(why) = prefix.split('/').find_map(crate::keys::segment_problem) {
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
