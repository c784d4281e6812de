//! What a plan or a reference snapshot was made against: the store and the
//! database, as the configuration names them, without secrets. A file
//! made for one collection is refused by any other, field by field.

use std::collections::BTreeMap;

use crate::config::{Backend, DatabaseConfig, StoreSpec};

/// What a plan was made against, without secrets: field name → value.
pub type Identity = BTreeMap<String, String>;

/// The identity of `spec`'s store and the database holding its references.
pub fn identity(spec: &StoreSpec, database: &DatabaseConfig) -> Identity {
    let mut fields = vec![
        ("store", spec.name.clone()),
        ("protocol", spec.protocol.to_string()),
        ("location", spec.location.clone()),
        ("hash_prefix", spec.hash_prefix.clone()),
        ("schema_prefix", spec.schema_prefix.clone()),
        (
            "partition_pattern",
            spec.partition_pattern.clone().unwrap_or_default(),
        ),
        (
            "database",
            format!("{}://{}:{}", database.backend, database.host, database.port),
        ),
    ];
    if database.backend == Backend::PostgreSql {
        fields.push(("database_name", database.name.clone()));
    }
    if let Some(s3) = &spec.s3 {
        fields.push(("endpoint", s3.endpoint.clone()));
        fields.push(("bucket", s3.bucket.clone()));
    }
    if let Some(gcs) = &spec.gcs {
        fields.push(("endpoint", gcs.emulator.clone().unwrap_or_default()));
        fields.push(("bucket", gcs.bucket.clone()));
    }
    if let Some(azure) = &spec.azure {
        let account = azure.account();
        fields.push(("endpoint", account.endpoint.unwrap_or_default()));
        fields.push(("account_name", account.name.unwrap_or_default()));
        fields.push(("container", azure.container.clone()));
    }
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Each field in which a `recorded` identity (of a plan, a snapshot:
/// `recorded_as`) differs from the `current` config's, as a message.
pub fn identity_differences(
    recorded: &Identity,
    current: &Identity,
    recorded_as: &str,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = recorded.keys().chain(current.keys()).collect();
    keys.into_iter()
        .filter(|k| recorded.get(*k) != current.get(*k))
        .map(|k| {
            format!(
                "{k}: {recorded_as} {:?}, config {:?}",
                recorded.get(k).map_or("", String::as_str),
                current.get(k).map_or("", String::as_str)
            )
        })
        .collect()
}
