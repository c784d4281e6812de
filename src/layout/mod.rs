//! Where DataJoint puts objects in a store, and which of them djgc may judge.
//!
//! Every managed path embeds its schema, so a schema owns exactly two
//! sections: `{hash_prefix}/{schema}/` (content-addressed, deduplicated per
//! schema) and `{schema_prefix}/{schema}/` (one path per row and field). A
//! store with a `partition_pattern` such as `"{subject}/{session}"` also puts
//! schema-addressed objects of tables whose primary key has some of those
//! attributes at `{schema_prefix}/subject=A/session=B/{schema}/...`: those
//! are a schema's partitioned sections, one per pattern attribute that can
//! lead the path, listed by the prefix `{schema_prefix}/{attr}=` and
//! filtered to the keys whose partition folders are followed by the schema.
//! dj.gc never looks there; djgc judges them by the schema-section rules.
//!
//! Only these sections are ever listed, so user content elsewhere in the store
//! (`datajoint_store.json`, `filepath_prefix` content, other schemas, djgc's
//! own quarantine) is structurally out of reach.

pub mod shard;

use crate::config::StoreSpec;
use crate::error::{Error, Result};
use crate::keys::{key_is_contained, segment_problem};
use crate::store::KeyRange;

/// The trash prefix used unless another is given.
pub const DEFAULT_TRASH_PREFIX: &str = "_trash";

/// The two kinds of section, which dj.gc judges by different rules.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SectionKind {
    /// `{hash_prefix}/{schema}/`: only Base32-named files are objects.
    Hash,
    /// `{schema_prefix}/{schema}/` and its partitioned twins: every file is
    /// part of an object.
    Schema,
}

/// One schema's section of a store.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Section {
    pub schema: String,
    pub kind: SectionKind,
    /// Store-relative key prefix that lists the section. It ends in `/`,
    /// except for a partitioned section, whose prefix ends in `{attr}=`.
    pub prefix: String,
    /// For a partitioned section, the store's partition attributes in order.
    pub partition_attrs: Vec<String>,
    /// The keys of the section this run lists and judges: all of them, or
    /// one shard's share ([`crate::layout::shard`]).
    #[serde(default, skip_serializing_if = "KeyRange::is_all")]
    pub range: KeyRange,
}

impl Section {
    /// An unpartitioned section.
    pub fn new(schema: &str, kind: SectionKind, prefix: impl Into<String>) -> Self {
        Section {
            schema: schema.to_string(),
            kind,
            prefix: prefix.into(),
            partition_attrs: Vec::new(),
            range: KeyRange::ALL,
        }
    }

    /// Whether a listed key is one of this section's objects that djgc may
    /// delete: a plain path inside the prefix (no `..`, `.`, empty segment or
    /// backslash) and, in a partitioned section, partition folders followed
    /// by this section's schema. Keys failing the first test are unsafe;
    /// see [`Section::is_unsafe`].
    pub fn owns(&self, key: &str) -> bool {
        if !key_is_contained(&self.prefix, key) {
            return false;
        }
        if self.partition_attrs.is_empty() {
            return true;
        }
        // The prefix ends in "{attr}=", so the partition folders start at its
        // last '/'.
        let root_len = self.prefix.rfind('/').map_or(0, |i| i + 1);
        partitioned_schema(&key[root_len..], &self.partition_attrs) == Some(&self.schema)
    }

    /// The section as reports show it: its prefix, or for a partitioned
    /// section `_schema/subject=…/{schema}/`.
    pub fn label(&self) -> String {
        if self.partition_attrs.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}\u{2026}/{}/", self.prefix, self.schema)
        }
    }

    /// The object `key` (one of this section's keys) is part of, whose age
    /// is the age of all its files: in a schema section the row's field,
    /// `{table}/{pk attrs…}/{field}_{token}{ext}` below the schema's folder
    /// (a file, or a folder object with its `.manifest.json` sidecar); in a
    /// hash section the key itself. A folder object is uploaded file by
    /// file, for hours if large, and only committed when all are there.
    pub fn object_of<'k>(&self, key: &'k str) -> &'k str {
        if self.kind == SectionKind::Hash {
            return key;
        }
        let Some(mut start) = self.schema_folder_end(key) else {
            return key;
        };
        // The table's folder, then `attr=value` folders, then the field.
        let mut segments = key[start..].split('/');
        start += segments.next().map_or(0, |table| table.len() + 1);
        for segment in segments {
            if !segment.contains('=') {
                let field = segment.strip_suffix(MANIFEST_SUFFIX).unwrap_or(segment);
                return &key[..start + field.len()];
            }
            start += segment.len() + 1;
        }
        key
    }

    /// Where the keys below the schema's own folder start in `key`: after
    /// the prefix, or in a partitioned section after the partition folders
    /// and the schema's folder.
    fn schema_folder_end(&self, key: &str) -> Option<usize> {
        if self.partition_attrs.is_empty() {
            return key.starts_with(&self.prefix).then_some(self.prefix.len());
        }
        let mut end = self.prefix.rfind('/').map_or(0, |i| i + 1);
        for segment in key.get(end..)?.split('/') {
            end += segment.len() + 1;
            if !segment.contains('=') {
                return (segment == self.schema).then_some(end);
            }
        }
        None
    }

    /// Whether a listed key lies under the prefix but is not a plain path
    /// (S3 keys may hold `..` or `//`): never deleted, always reported.
    pub fn is_unsafe(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && !key_is_contained(&self.prefix, key)
    }
}

/// The schema named after the partition folders that start `rest` (the key
/// below `{schema_prefix}/`): `attr=value` segments whose attributes follow
/// the pattern's order (a table's path uses those of the pattern's
/// attributes in its primary key), then the schema, then at least a table
/// and a file.
fn partitioned_schema<'k>(rest: &'k str, attrs: &[String]) -> Option<&'k str> {
    let mut segments = rest.split('/');
    let mut next_attr = 0;
    for (partitions, segment) in segments.by_ref().enumerate() {
        let Some((attr, _value)) = segment.split_once('=') else {
            if partitions == 0 {
                return None;
            }
            return (segments.count() >= 2).then_some(segment);
        };
        let position = attrs[next_attr..].iter().position(|a| a == attr)?;
        next_attr += position + 1;
    }
    None
}

/// The attribute names of a `partition_pattern`, in order: `"{subject}/{session}"`
/// gives `["subject", "session"]`, as DataJoint reads them (`\{(\w+)\}`).
pub fn partition_attrs(pattern: &str) -> Vec<String> {
    let mut attrs = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        let word_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if word_len > 0 && rest[word_len..].starts_with('}') {
            attrs.push(rest[..word_len].to_string());
        }
    }
    attrs
}

/// Refuses schemas whose sections would reach into what is not theirs:
/// - with `hash_prefix` or `schema_prefix` empty (the legacy root layout),
///   a schema's section is a top-level folder, which must not be, hold or
///   lie in another configured prefix (`hash_prefix`, `schema_prefix`,
///   `filepath_prefix`) nor the default trash, and the two prefixes may not
///   both be empty (a schema's two sections would be one folder);
/// - with a `partition_pattern`, a schema named like a partition folder
///   (`subject=…`) would have other schemas' partitioned objects in its
///   schema section.
fn check_sections_apart(spec: &StoreSpec, schemas: &[String]) -> Result<()> {
    let refuse = |why: String| Err(Error::Usage(format!("store {:?}: {why}", spec.name)));
    if spec.hash_prefix.is_empty() && spec.schema_prefix.is_empty() {
        return refuse(
            "hash_prefix and schema_prefix are both empty, so a schema's hash and schema \
             sections would be one folder"
                .to_string(),
        );
    }
    let configured = [
        ("hash_prefix", Some(spec.hash_prefix.as_str())),
        ("schema_prefix", Some(spec.schema_prefix.as_str())),
        ("filepath_prefix", spec.filepath_prefix.as_deref()),
        ("the trash", Some(DEFAULT_TRASH_PREFIX)),
    ];
    let attrs = spec
        .partition_pattern
        .as_deref()
        .map(partition_attrs)
        .unwrap_or_default();
    for schema in schemas {
        if let Some(attr) = attrs.iter().find(|a| schema.starts_with(&format!("{a}="))) {
            return refuse(format!(
                "schema {schema:?} is named like a folder of partition attribute {attr:?} \
                 (partition_pattern), so its schema section would hold other schemas' objects"
            ));
        }
        if !spec.hash_prefix.is_empty() && !spec.schema_prefix.is_empty() {
            continue;
        }
        let folder = format!("{schema}/");
        for (setting, other) in configured {
            let Some(other) = other.filter(|p| !p.is_empty()) else {
                continue;
            };
            let other = format!("{other}/");
            if folder.starts_with(&other) || other.starts_with(&folder) {
                return refuse(format!(
                    "in the legacy root layout (an empty hash_prefix or schema_prefix), schema \
                     {schema:?} is the top-level folder {folder}; it overlaps {setting} {:?}, \
                     whose content djgc would judge as the schema's",
                    other.trim_end_matches('/')
                ));
            }
        }
    }
    Ok(())
}

/// The schemas named for a run, checked and with repeats dropped (a schema
/// named twice is collected once): each must be one plain folder name
/// ([`segment_problem`]), since it becomes a folder of every section path.
pub fn schema_names(given: &[String]) -> Result<Vec<String>> {
    let mut names: Vec<String> = Vec::with_capacity(given.len());
    for name in given {
        if let Some(why) = segment_problem(name) {
            return Err(Error::Usage(format!(
                "schema {name:?} cannot be collected: {why}, so its sections would not be \
                 folders of their own"
            )));
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// Every section of every schema: hash sections first, then schema sections,
/// then partitioned sections. Refuses what would give a schema sections that
/// take in what is not its own ([`check_sections_apart`]).
pub fn sections(spec: &StoreSpec, schemas: &[String]) -> Result<Vec<Section>> {
    if schema_names(schemas)?.len() != schemas.len() {
        return Err(Error::Usage(format!(
            "a schema is named twice in {schemas:?}"
        )));
    }
    check_sections_apart(spec, schemas)?;
    let under = |root: &str, name: &str| {
        if root.is_empty() {
            name.to_string()
        } else {
            format!("{root}/{name}")
        }
    };
    let attrs = spec
        .partition_pattern
        .as_deref()
        .map(partition_attrs)
        .unwrap_or_default();
    let hash = schemas.iter().map(|s| {
        let prefix = under(&spec.hash_prefix, &format!("{s}/"));
        Section::new(s, SectionKind::Hash, prefix)
    });
    let schema = schemas.iter().map(|s| {
        let prefix = under(&spec.schema_prefix, &format!("{s}/"));
        Section::new(s, SectionKind::Schema, prefix)
    });
    let partitioned = schemas.iter().flat_map(|s| {
        attrs.iter().map(|attr| {
            let prefix = under(&spec.schema_prefix, &format!("{attr}="));
            Section {
                partition_attrs: attrs.clone(),
                ..Section::new(s, SectionKind::Schema, prefix)
            }
        })
    });
    Ok(hash.chain(schema).chain(partitioned).collect())
}

/// The prefixes `djgc ls` lists: the sections of `schemas` (of `kind`
/// only, if given), or without schemas the whole hash and schema roots.
pub fn listing_prefixes(
    spec: &StoreSpec,
    schemas: &[String],
    kind: Option<SectionKind>,
) -> Result<Vec<String>> {
    let wanted = |k: SectionKind| kind.is_none_or(|kind| kind == k);
    let mut prefixes: Vec<String> = if schemas.is_empty() {
        let root = |prefix: &str| {
            if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            }
        };
        [
            (SectionKind::Hash, root(&spec.hash_prefix)),
            (SectionKind::Schema, root(&spec.schema_prefix)),
        ]
        .into_iter()
        .filter(|(k, _)| wanted(*k))
        .map(|(_, prefix)| prefix)
        .collect()
    } else {
        sections(spec, &schema_names(schemas)?)?
            .into_iter()
            .filter(|s| wanted(s.kind))
            .map(|s| s.prefix)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    prefixes.retain(|p| seen.insert(p.clone()));
    Ok(prefixes)
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
pub(crate) mod tests {
    use super::*;
    use crate::config::Protocol;

    pub(crate) fn spec(hash_prefix: &str, schema_prefix: &str) -> StoreSpec {
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
            gcs: None,
            azure: None,
            is_default: true,
        }
    }

    #[test]
    fn sections_follow_prefixes_including_legacy_root_layout() {
        let prefixes = |s: &StoreSpec| -> Vec<String> {
            sections(s, &["a".into(), "b".into()])
                .unwrap()
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
    fn partitioned_sections_own_keys_of_their_schema_only() {
        let mut store = spec("_hash", "_schema");
        store.partition_pattern = Some("{subject}/{session}".into());
        assert_eq!(
            partition_attrs("{subject}/{session}"),
            ["subject", "session"]
        );
        assert_eq!(partition_attrs("x{a}-{b_2}/{}{c"), ["a", "b_2"]);
        let all = sections(&store, &["a".into()]).unwrap();
        let prefixes: Vec<&str> = all.iter().map(|s| s.prefix.as_str()).collect();
        assert_eq!(
            prefixes,
            [
                "_hash/a/",
                "_schema/a/",
                "_schema/subject=",
                "_schema/session="
            ]
        );
        let by_subject = &all[2];
        assert!(by_subject.owns("_schema/subject=S1/session=2/a/t/id=1/f_tok"));
        assert!(by_subject.owns("_schema/subject=S1/a/t/f_tok"));
        assert!(all[3].owns("_schema/session=2/a/t/f_tok"));
        // Another schema, attributes out of order or unknown, too short.
        assert!(!by_subject.owns("_schema/subject=S1/b/t/f_tok"));
        assert!(!by_subject.owns("_schema/subject=S1/session=2/subject=S1/a/t/f"));
        assert!(!by_subject.owns("_schema/subject=S1/mouse=3/a/t/f"));
        assert!(!by_subject.owns("_schema/subject=S1/a/f_tok"));
        assert!(!by_subject.owns("_schema/subject=S1/session=2"));
        // Unsafe keys are neither owned nor ignored silently.
        assert!(!by_subject.owns("_schema/subject=S1/../a/t/f"));
        assert!(by_subject.is_unsafe("_schema/subject=S1/../a/t/f"));
        assert!(all[1].is_unsafe("_schema/a//t/f"));
        assert!(!all[1].is_unsafe("_schema/b/../a/t/f"));
    }

    #[test]
    fn files_belong_to_their_rows_field_object() {
        let mut store = spec("_hash", "_schema");
        store.partition_pattern = Some("{subject}".into());
        let all = sections(&store, &["a".into()]).unwrap();
        let (hash, schema, partitioned) = (&all[0], &all[1], &all[2]);
        let h = "_hash/a/ih23fsttfdzzbrgqrgnsup5b3i";
        assert_eq!(hash.object_of(h), h);
        let obj = "_schema/a/t/id=0/k=x y/obj_Xy12";
        for key in [
            format!("{obj}/0/0.1"),
            format!("{obj}/.zarray"),
            format!("{obj}.manifest.json"),
            obj.to_string(),
        ] {
            assert_eq!(schema.object_of(&key), obj, "{key}");
        }
        let npy = "_schema/a/t/id=3/arr_Kwoh1GUA.npy";
        assert_eq!(schema.object_of(npy), npy);
        // A table without primary-key folders.
        assert_eq!(schema.object_of("_schema/a/t/f_tok/x"), "_schema/a/t/f_tok");
        let deep = "_schema/subject=m1/a/t/id=1/obj_Q/c/0";
        assert_eq!(
            partitioned.object_of(deep),
            "_schema/subject=m1/a/t/id=1/obj_Q"
        );
    }

    #[test]
    fn schema_names_are_single_plain_folders_named_once() {
        let store = spec("_hash", "_schema");
        for bad in ["..", ".", "", "a/b", "a\\b", "x\0", "tab\there", "../.."] {
            let e = sections(&store, &[bad.to_string()]).unwrap_err();
            assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
        }
        assert_eq!(
            schema_names(&["a".into(), "b".into(), "a".into()]).unwrap(),
            ["a", "b"]
        );
        assert!(sections(&store, &["a".into(), "a".into()]).is_err());
        assert!(sections(&store, &["lab.v2".into(), "x..y".into()]).is_ok());
    }

    #[test]
    fn legacy_layout_schemas_may_not_hold_other_prefixes() {
        let mut store = spec("_hash", "");
        store.filepath_prefix = Some("imports/raw".into());
        assert!(sections(&store, &["lab".into()]).is_ok());
        for clash in ["_hash", "imports", "_trash"] {
            let e = sections(&store, &[clash.into()]).unwrap_err().to_string();
            assert!(e.contains("legacy root layout"), "{e}");
        }
        // An empty hash prefix puts hash sections at the top level too.
        let hash_at_root = spec("", "_schema");
        assert!(sections(&hash_at_root, &["_schema".into()]).is_err());
        assert!(sections(&hash_at_root, &["lab".into()]).is_ok());
        assert!(sections(&spec("", ""), &["lab".into()]).is_err());
        // Beside a partition pattern, no schema may look like a partition.
        let mut partitioned = spec("_hash", "_schema");
        partitioned.partition_pattern = Some("{subject}".into());
        assert!(sections(&partitioned, &["subject=m1".into()]).is_err());
        assert!(sections(&partitioned, &["subjects".into()]).is_ok());
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
