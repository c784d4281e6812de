//! Where DataJoint puts objects in a store, and which of them djgc may judge.
//!
//! Every managed path embeds its schema, so a schema owns exactly two
//! sections: `{hash_prefix}/{schema}/` (content-addressed, deduplicated per
//! schema) and `{schema_prefix}/{schema}/` (one path per row and field). Only
//! these sections are ever listed, so user content elsewhere in the store
//! (`datajoint_store.json`, `filepath_prefix` content, other schemas) is
//! structurally out of reach.

use crate::config::StoreSpec;

/// The two kinds of section, which dj.gc judges by different rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// `{hash_prefix}/{schema}/`: only Base32-named files are objects.
    Hash,
    /// `{schema_prefix}/{schema}/`: every file is part of an object.
    Schema,
}

/// One schema's section of a store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub schema: String,
    pub kind: SectionKind,
    /// Store-relative key prefix, always ending in `/`.
    pub prefix: String,
}

/// The two sections of every schema, hash sections first.
pub fn sections(spec: &StoreSpec, schemas: &[String]) -> Vec<Section> {
    let section = |kind, root: &str, schema: &str| Section {
        schema: schema.to_string(),
        kind,
        prefix: if root.is_empty() {
            format!("{schema}/")
        } else {
            format!("{root}/{schema}/")
        },
    };
    let hash = schemas
        .iter()
        .map(|s| section(SectionKind::Hash, &spec.hash_prefix, s));
    let schema = schemas
        .iter()
        .map(|s| section(SectionKind::Schema, &spec.schema_prefix, s));
    hash.chain(schema).collect()
}

/// Suffix of the sidecar DataJoint writes beside a folder object.
pub const MANIFEST_SUFFIX: &str = ".manifest.json";

/// True for a content-hash file name: 26 characters of lowercase Base32.
pub fn is_content_hash_name(name: &str) -> bool {
    name.len() == 26
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
}

/// The last path segment of a store key.
pub fn file_name(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Protocol;

    fn spec(hash_prefix: &str, schema_prefix: &str) -> StoreSpec {
        StoreSpec {
            name: "main".into(),
            protocol: Protocol::File,
            location: "/x".into(),
            subfolding: None,
            hash_prefix: hash_prefix.into(),
            schema_prefix: schema_prefix.into(),
            filepath_prefix: None,
            partition_pattern: None,
            s3: None,
        }
    }

    #[test]
    fn sections_follow_prefixes_including_legacy_root_layout() {
        let prefixes = |s: &StoreSpec| -> Vec<String> {
            sections(s, &["a".into(), "b".into()])
                .into_iter()
                .map(|s| s.prefix)
                .collect()
        };
        assert_eq!(
            prefixes(&spec("_hash", "_schema")),
            ["_hash/a/", "_hash/b/", "_schema/a/", "_schema/b/"]
        );
        assert_eq!(
            prefixes(&spec("_hash", "")),
            ["_hash/a/", "_hash/b/", "a/", "b/"]
        );
    }

    #[test]
    fn content_hash_names() {
        assert!(is_content_hash_name("ih23fsttfdzzbrgqrgnsup5b3i"));
        assert!(!is_content_hash_name("ih23fsttfdzzbrgqrgnsup5b3"));
        assert!(!is_content_hash_name("IH23FSTTFDZZBRGQRGNSUP5B3I"));
        assert!(!is_content_hash_name("ih23fsttfdzzbrgqrgnsup5b31"));
        assert!(!is_content_hash_name(
            "ih23fsttfdzzbrgqrgnsup5b3i.manifest.json"
        ));
    }
}
