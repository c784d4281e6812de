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

/// How a GCS store is reached (`token`, as gcsfs reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GcsToken {
    /// No `token` (or `"google_default"`, `"cloud"`): application-default
    /// credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the
    /// metadata server).
    Default,
    /// `"anon"`: no credentials, for public buckets and emulators.
    Anonymous,
    /// A credentials file: a service account's key or gcloud's
    /// authorized-user file.
    File(std::path::PathBuf),
    /// A service account's key given inline (a dict, as gcsfs takes it).
    ServiceAccountKey(Secret),
}

/// GCS connection settings of a store (`protocol: gcs`).
#[derive(Clone, Debug)]
pub struct GcsSpec {
    pub bucket: String,
    pub token: GcsToken,
    pub project: Option<String>,
    /// An emulator's address, from `STORAGE_EMULATOR_HOST` as gcsfs reads
    /// it: requests go there, unsigned unless a token is given.
    pub emulator: Option<String>,
}

/// Azure Blob connection settings of a store (`protocol: azure`).
#[derive(Clone, Debug)]
pub struct AzureSpec {
    pub container: String,
    pub account_name: Option<String>,
    pub account_key: Option<Secret>,
    pub connection_string: Option<Secret>,
}

/// The Azurite development account, which `UseDevelopmentStorage=true`
/// names; its key is published by Microsoft.
const DEVELOPMENT_ACCOUNT: &str = "devstoreaccount1";
const DEVELOPMENT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
const DEVELOPMENT_ENDPOINT: &str = "http://127.0.0.1:10000/devstoreaccount1";

/// Where an Azure store is and how to sign for it, from its settings, the
/// connection string in them, and the variables adlfs also reads
/// (`AZURE_STORAGE_CONNECTION_STRING`, `AZURE_STORAGE_ACCOUNT_NAME`,
/// `AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_STORAGE_SAS_TOKEN`).
#[derive(Clone, Debug, Default)]
pub struct AzureAccount {
    pub name: Option<String>,
    /// The Blob service URL, without a trailing `/`.
    pub endpoint: Option<String>,
    pub key: Option<Secret>,
    /// A shared access signature (query string), if given instead of a key.
    pub sas: Option<Secret>,
    /// Where the key or signature came from, for messages.
    pub credential_source: String,
}

impl AzureSpec {
    /// The account as the store's settings give it.
    pub fn account(&self) -> AzureAccount {
        self.account_with(&|name| std::env::var(name).ok())
    }

    /// The account, reading variables through `env`. Settings win over the
    /// connection string's parts, and those over the variables.
    pub fn account_with(&self, env: &dyn Fn(&str) -> Option<String>) -> AzureAccount {
        let (connection, connection_source) = match &self.connection_string {
            Some(text) => (
                Some(text.expose().to_string()),
                "connection_string of the store config",
            ),
            None if self.account_key.is_none() => (
                env("AZURE_STORAGE_CONNECTION_STRING"),
                "AZURE_STORAGE_CONNECTION_STRING",
            ),
            None => (None, ""),
        };
        let field = |wanted: &str| -> Option<String> {
            connection.as_deref()?.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case(wanted)
                    .then(|| value.trim().to_string())
            })
        };
        let development =
            field("UseDevelopmentStorage").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let name = self
            .account_name
            .clone()
            .or_else(|| field("AccountName"))
            .or_else(|| development.then(|| DEVELOPMENT_ACCOUNT.to_string()))
            .or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"));
        let endpoint = field("BlobEndpoint")
            .or_else(|| development.then(|| DEVELOPMENT_ENDPOINT.to_string()))
            .or_else(|| {
                let protocol = field("DefaultEndpointsProtocol").unwrap_or_else(|| "https".into());
                let suffix = field("EndpointSuffix").unwrap_or_else(|| "core.windows.net".into());
                Some(format!("{protocol}://{}.blob.{suffix}", name.as_deref()?))
            })
            .map(|e| e.trim_end_matches('/').to_string());
        let (key, sas, credential_source) = if let Some(key) = &self.account_key {
            (
                Some(key.clone()),
                None,
                "account_key of the store config".to_string(),
            )
        } else if let Some(key) = field("AccountKey") {
            (
                Some(Secret::new(key)),
                None,
                format!("the AccountKey of {connection_source}"),
            )
        } else if development {
            (
                Some(Secret::new(DEVELOPMENT_KEY)),
                None,
                format!("UseDevelopmentStorage in {connection_source}"),
            )
        } else if let Some(sas) = field("SharedAccessSignature") {
            (
                None,
                Some(Secret::new(sas)),
                format!("the SharedAccessSignature of {connection_source}"),
            )
        } else if let Some(key) = env("AZURE_STORAGE_ACCOUNT_KEY") {
            (
                Some(Secret::new(key)),
                None,
                "AZURE_STORAGE_ACCOUNT_KEY".to_string(),
            )
        } else if let Some(sas) = env("AZURE_STORAGE_SAS_TOKEN") {
            (
                None,
                Some(Secret::new(sas)),
                "AZURE_STORAGE_SAS_TOKEN".to_string(),
            )
        } else {
            (
                None,
                None,
                "the Azure default credential chain (AZURE_CLIENT_ID/AZURE_CLIENT_SECRET/\
                 AZURE_TENANT_ID, workload identity, managed identity)"
                    .to_string(),
            )
        };
        AzureAccount {
            name,
            endpoint,
            key,
            sas,
            credential_source,
        }
    }
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
    /// Present for `protocol: gcs`.
    pub gcs: Option<GcsSpec>,
    /// Present for `protocol: azure`.
    pub azure: Option<AzureSpec>,
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
    GcsSettings {
        bucket: String,
        /// A path, a keyword, or a service account's key as a dict.
        token: Option<Value>,
        project: Option<String>,
    }
}

store_settings! {
    /// `protocol: azure`.
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
            let connection = GcsSpec {
                bucket: gcs.bucket.clone(),
                token: gcs_token(name, gcs.token.as_ref())?,
                project: gcs.project.clone(),
                emulator: std::env::var("STORAGE_EMULATOR_HOST")
                    .ok()
                    .filter(|host| !host.is_empty()),
            };
            let mut spec = spec(name, protocol, gcs.common(), None)?;
            spec.gcs = Some(connection);
            return Ok(spec);
        }
        Protocol::Azure => {
            let azure: AzureSettings = typed(name, protocol, settings)?;
            let connection = AzureSpec {
                container: azure.container.clone(),
                account_name: azure.account_name.clone(),
                account_key: azure.account_key.clone().map(Secret::new),
                connection_string: azure.connection_string.clone().map(Secret::new),
            };
            let mut spec = spec(name, protocol, azure.common(), None)?;
            spec.azure = Some(connection);
            return Ok(spec);
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

/// A GCS store's `token`, read as gcsfs reads it; the interactive logins
/// gcsfs offers (`browser`, `cache`) have no place in an unattended job.
fn gcs_token(name: &str, token: Option<&Value>) -> Result<GcsToken> {
    match token {
        None | Some(Value::Null) => Ok(GcsToken::Default),
        Some(Value::String(text)) => match text.as_str() {
            "google_default" | "cloud" => Ok(GcsToken::Default),
            "anon" => Ok(GcsToken::Anonymous),
            "browser" | "cache" => Err(Error::Config(format!(
                "stores.{name}.token: {text:?} is an interactive login, which an unattended \
                 job cannot do; give a service account's key file, or run `gcloud auth \
                 application-default login` once and leave token out"
            ))),
            "" => Err(Error::Config(format!(
                "stores.{name}.token: empty; leave it out for application-default credentials"
            ))),
            path => Ok(GcsToken::File(path.into())),
        },
        Some(key @ Value::Object(_)) => {
            Ok(GcsToken::ServiceAccountKey(Secret::new(key.to_string())))
        }
        Some(_) => Err(Error::Config(format!(
            "stores.{name}.token: expected a credentials file's path, \"anon\", or a service \
             account's key as a dict"
        ))),
    }
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
        gcs: None,
        azure: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn store(settings: Value) -> Result<StoreSpec> {
        parse_store("cloud", settings.as_object().unwrap())
    }

    #[test]
    fn gcs_tokens_are_read_as_gcsfs_reads_them() {
        let with = |token: Value| {
            let mut settings =
                serde_json::json!({"protocol": "gcs", "bucket": "b", "location": "dj"});
            if !token.is_null() {
                settings["token"] = token;
            }
            store(settings).map(|spec| spec.gcs.unwrap().token)
        };
        assert_eq!(with(Value::Null).unwrap(), GcsToken::Default);
        assert_eq!(with("google_default".into()).unwrap(), GcsToken::Default);
        assert_eq!(with("anon".into()).unwrap(), GcsToken::Anonymous);
        assert_eq!(
            with("/keys/sa.json".into()).unwrap(),
            GcsToken::File("/keys/sa.json".into())
        );
        let key = serde_json::json!({"type": "service_account", "private_key": "PRIVATE"});
        match with(key).unwrap() {
            GcsToken::ServiceAccountKey(secret) => assert!(secret.expose().contains("PRIVATE")),
            other => panic!("{other:?}"),
        }
        let e = with("browser".into()).unwrap_err().to_string();
        assert!(
            e.contains("stores.cloud.token") && e.contains("interactive"),
            "{e}"
        );
        assert!(with(7.into()).is_err());
        let e = store(serde_json::json!({"protocol": "gcs", "location": "dj"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bucket"), "{e}");
    }

    #[test]
    fn azure_accounts_come_from_settings_then_connection_string_then_variables() {
        let spec = |settings: Value| store(settings).unwrap().azure.unwrap();
        let no_env = |_: &str| None;
        let key = "a2V5"; // "key"
        let from_string = spec(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj",
            "connection_string": format!(
                "DefaultEndpointsProtocol=http;AccountName=lab;AccountKey={key};EndpointSuffix=example.org"
            )
        }))
        .account_with(&no_env);
        assert_eq!(from_string.name.as_deref(), Some("lab"));
        assert_eq!(
            from_string.endpoint.as_deref(),
            Some("http://lab.blob.example.org")
        );
        assert_eq!(from_string.key.unwrap().expose(), key);
        assert!(from_string.credential_source.contains("connection_string"));

        let emulator = spec(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj",
            "connection_string": "UseDevelopmentStorage=true"
        }))
        .account_with(&no_env);
        assert_eq!(emulator.name.as_deref(), Some(DEVELOPMENT_ACCOUNT));
        assert_eq!(emulator.endpoint.as_deref(), Some(DEVELOPMENT_ENDPOINT));

        let private = spec(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj",
            "connection_string": "AccountName=lab;SharedAccessSignature=sv=1&sig=x;BlobEndpoint=https://blob.private.example/"
        }))
        .account_with(&no_env);
        assert_eq!(
            private.endpoint.as_deref(),
            Some("https://blob.private.example")
        );
        assert_eq!(private.sas.unwrap().expose(), "sv=1&sig=x");
        assert!(private.key.is_none());

        let env = |name: &str| match name {
            "AZURE_STORAGE_ACCOUNT_KEY" => Some("ZW52".to_string()),
            _ => None,
        };
        let named = spec(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj", "account_name": "lab"
        }));
        let by_variable = named.account_with(&env);
        assert_eq!(
            by_variable.endpoint.as_deref(),
            Some("https://lab.blob.core.windows.net")
        );
        assert_eq!(by_variable.credential_source, "AZURE_STORAGE_ACCOUNT_KEY");
        let chain = named.account_with(&no_env);
        assert!(chain.key.is_none() && chain.sas.is_none());
        assert!(chain.credential_source.contains("default credential chain"));
        // A key in the settings wins over the variables.
        let keyed = spec(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj",
            "account_name": "lab", "account_key": key
        }))
        .account_with(&env);
        assert_eq!(keyed.key.unwrap().expose(), key);
        assert!(store(serde_json::json!({
            "protocol": "azure", "container": "c", "location": "dj", "account_url": "x"
        }))
        .is_err());
    }
}
