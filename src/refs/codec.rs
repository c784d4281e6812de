//! Which columns hold object references, and what a stored value references.
//!
//! DataJoint records a column's declared type in its comment,
//! `:<codec@store>:user comment`, and stores a JSON document per row whose
//! `path` (relative to the store root) is the object. Two rules keep live data
//! safe where DataJoint's own collector is looser:
//!
//! * Any codec column whose values are JSON is read, not only the five built-in
//!   kinds: a third-party codec's files must never look orphaned. Its paths
//!   protect objects but are counted apart (`other_referenced`), so the
//!   documented counts stay those of `dj.gc`.
//! * A value that is not valid JSON, or whose `path`/`store` is not a string,
//!   is an error (which blocks deletion), not a silent "no reference".

use std::borrow::Cow;

use crate::keys::store_key;

use serde::Deserialize;

/// How a codec column's references are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefKind {
    /// `<hash@>`, `<blob@>`, `<attach@>`: hash-addressed objects.
    Hash,
    /// `<object@>`, `<npy@>` and user-named schema codecs: schema-addressed.
    Schema,
    /// Any other codec column holding JSON: protects, counted apart.
    Other,
}

/// A column comment's codec, e.g. `:<blob@main>:` → `blob`, `Some("main")`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecType {
    pub codec: String,
    /// `None` without `@`; `Some("")` for `@` alone (the default store).
    pub store: Option<String>,
}

/// The codec declared in a DataJoint column comment, if any.
pub fn parse_comment(comment: &str) -> Option<CodecType> {
    let rest = comment.strip_prefix(":<")?;
    let end = rest.find(">:")?;
    let inner = &rest[..end];
    let (codec, store) = match inner.split_once('@') {
        Some((codec, store)) => (codec, Some(store.to_string())),
        None => (inner, None),
    };
    if codec.is_empty() {
        return None;
    }
    Some(CodecType {
        codec: codec.to_string(),
        store,
    })
}

/// How to count a codec column, or `None` when its value lives in the row.
///
/// `json_typed` says whether the SQL type can hold JSON (json, jsonb,
/// longtext…): a codec column of another type (an inline `longblob`) holds
/// bytes, not references, and is never read.
pub fn classify(ty: &CodecType, json_typed: bool, schema_codecs: &[String]) -> Option<RefKind> {
    if !json_typed {
        return None;
    }
    match ty.codec.as_str() {
        "hash" => Some(RefKind::Hash),
        // Dual-mode codecs are external only when declared with a store.
        "blob" | "attach" if ty.store.is_some() => Some(RefKind::Hash),
        "blob" | "attach" => None,
        "object" | "npy" => Some(RefKind::Schema),
        name if schema_codecs.iter().any(|c| c == name) => Some(RefKind::Schema),
        _ => Some(RefKind::Other),
    }
}

/// An object reference read from one stored value.
#[derive(Debug, PartialEq, Eq)]
pub struct Reference<'a> {
    pub path: Cow<'a, str>,
    /// `None` when the value has no store or a null one.
    pub store: Option<Cow<'a, str>>,
    /// Files the object is stored as: a folder object's `item_count` plus
    /// its manifest, else 1. Only an estimate (it weighs a sharded run's
    /// cuts), so a missing or odd `item_count` counts as 1.
    pub files: u64,
    /// The object's size in bytes, as the row records it (hash-addressed
    /// objects and single files; a folder's is the sum of its files).
    pub size: Option<u64>,
    /// Whether the row says the object is a folder (`is_dir`).
    pub is_dir: bool,
}

impl Reference<'_> {
    /// The store key DataJoint reads through this reference
    /// ([`store_key`]): what it protects.
    pub fn key(&self) -> Cow<'_, str> {
        store_key(&self.path)
    }

    /// Whether this reference belongs to `store`. A missing, null or empty
    /// store counts for the default store: the reading that keeps more.
    pub fn is_for(&self, store: &str, store_is_default: bool) -> bool {
        match self.store.as_deref() {
            None | Some("") => store_is_default,
            Some(name) => name == store,
        }
    }
}

#[derive(Deserialize)]
struct Metadata<'a> {
    #[serde(borrow, default)]
    path: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    store: Option<Cow<'a, str>>,
    #[serde(default)]
    item_count: Option<serde_json::Value>,
    #[serde(default)]
    size: Option<serde_json::Value>,
    #[serde(default)]
    is_dir: Option<serde_json::Value>,
}

/// What a stored JSON value references. JSON that is not an object (or an
/// object without `path`) references nothing, as in DataJoint; text that is
/// not JSON, or a `path`/`store` of the wrong type, is an error.
pub fn referenced_path(json: &str) -> Result<Option<Reference<'_>>, serde_json::Error> {
    if !json.trim_start().starts_with('{') {
        serde_json::from_str::<serde::de::IgnoredAny>(json)?;
        return Ok(None);
    }
    let meta: Metadata = serde_json::from_str(json)?;
    let files = match meta.item_count.as_ref().and_then(serde_json::Value::as_u64) {
        Some(items) => items.saturating_add(1),
        None => 1,
    };
    Ok(meta.path.map(|path| Reference {
        path,
        store: meta.store,
        files,
        size: meta.size.as_ref().and_then(serde_json::Value::as_u64),
        is_dir: meta.is_dir.as_ref().and_then(serde_json::Value::as_bool) == Some(true),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments() {
        let ty = |c: &str, s: Option<&str>| CodecType {
            codec: c.into(),
            store: s.map(Into::into),
        };
        assert_eq!(
            parse_comment(":<blob@main>:"),
            Some(ty("blob", Some("main")))
        );
        assert_eq!(
            parse_comment(":<blob@>:my data"),
            Some(ty("blob", Some("")))
        );
        assert_eq!(parse_comment(":<blob>:"), Some(ty("blob", None)));
        assert_eq!(parse_comment(":int32:"), None);
        assert_eq!(parse_comment("plain comment"), None);
        assert_eq!(parse_comment(":<>:"), None);
    }

    #[test]
    fn classification() {
        let kind = |comment: &str, json: bool| {
            classify(
                &parse_comment(comment).unwrap(),
                json,
                &["zarr".to_string()],
            )
        };
        assert_eq!(kind(":<blob@main>:", true), Some(RefKind::Hash));
        assert_eq!(kind(":<attach@>:", true), Some(RefKind::Hash));
        assert_eq!(kind(":<hash@main>:", true), Some(RefKind::Hash));
        assert_eq!(kind(":<blob>:", true), None);
        assert_eq!(kind(":<object@main>:", true), Some(RefKind::Schema));
        assert_eq!(kind(":<npy@main>:", true), Some(RefKind::Schema));
        assert_eq!(kind(":<zarr@main>:", true), Some(RefKind::Schema));
        assert_eq!(kind(":<filepath@main>:", true), Some(RefKind::Other));
        assert_eq!(kind(":<mycodec>:", false), None);
    }

    #[test]
    fn references_from_json() {
        let r = referenced_path(
            r#"{"hash": "ih23", "path": "_hash/a/ih23", "store": "main", "size": 28}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (r.path.as_ref(), r.store.as_deref()),
            ("_hash/a/ih23", Some("main"))
        );
        assert!(r.is_for("main", false));
        assert!(!r.is_for("other", true));
        assert_eq!((r.size, r.is_dir), (Some(28), false));

        let r = referenced_path(r#"{"path": "_schema/a/t/id=1/f_x", "store": null}"#)
            .unwrap()
            .unwrap();
        assert!(r.is_for("main", true) && !r.is_for("main", false));
        assert_eq!(r.files, 1);
        let folder = r#"{"path": "_schema/a/t/id=1/f_x", "is_dir": true, "item_count": 4}"#;
        let folder = referenced_path(folder).unwrap().unwrap();
        assert_eq!((folder.files, folder.size, folder.is_dir), (5, None, true));
        let odd = r#"{"path": "_schema/a/t/id=1/f_x", "item_count": "many"}"#;
        assert_eq!(referenced_path(odd).unwrap().unwrap().files, 1);

        let escaped = referenced_path(r#"{"path": "_schema/a/t/name=\u00e9/f"}"#).unwrap();
        assert_eq!(escaped.unwrap().path, "_schema/a/t/name=é/f");

        assert_eq!(referenced_path(r#"{"size": 3}"#).unwrap(), None);
        assert_eq!(referenced_path("null").unwrap(), None);
        assert_eq!(referenced_path(r#""just a string""#).unwrap(), None);
        assert!(referenced_path(r#"{"path": "x""#).is_err());
        assert!(referenced_path("not json").is_err());
        assert!(referenced_path(r#"{"path": 7}"#).is_err());
    }
}
