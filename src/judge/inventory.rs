//! An S3 Inventory report in place of LIST.
//!
//! Listing a bucket of billions of objects takes hours of LIST requests even
//! in parallel; AWS writes the same listing daily or weekly as an S3
//! Inventory report: a `manifest.json` naming CSV (or CSV.gz) data files of
//! `bucket, key, size, last modified, ...` rows. djgc reads the report
//! instead of listing (`--inventory MANIFEST`, the manifest's local path or
//! `s3://bucket/key` on the store's endpoint with its credentials), reading
//! every data file once (a few at a time, each spooled to a temporary file
//! when it comes from the bucket) and handing each row to the sections (and shard
//! ranges) it belongs to, so the rest of the scan cannot tell the difference.
//!
//! An inventory lags the bucket, so it is trusted only to name candidates:
//! * objects written after it are not in it, so are never judged; an object
//!   in it modified after its creation time (written while it was taken) is
//!   too young to judge ([`Inventory::created`] bounds the age cutoff);
//! * every orphan is confirmed with `HEAD` just before it is deleted
//!   ([`crate::judge::planfile::confirm_unchanged`]): one gone or changed since is
//!   skipped, never deleted.
//!
//! Keys in CSV inventories are URL-encoded with `+` for a space. Versioned
//! inventories list every version: only current versions that are not
//! delete markers are objects. Parquet and ORC reports are refused (no lean
//! crate reads Parquet; the `parquet` crate would double djgc's build).

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicBool, Ordering};

use percent_encoding::percent_decode_str;
use rayon::prelude::*;
use serde::Deserialize;

use crate::config::{Protocol, StoreSpec};
use crate::error::{Error, Result};
use crate::layout::Section;
use crate::store::{Listing, ObjectMeta, S3Store, Store, StoreError, LIST_BATCH};

/// Receives a section's listing batches: `(section index, batch)`;
/// [`ControlFlow::Break`] stops the reading.
pub type SectionSink<'a> = dyn Fn(usize, Listing) -> ControlFlow<()> + Sync + 'a;

/// An opened inventory report: what its rows mean and where its files are.
#[derive(Debug)]
pub struct Inventory {
    /// The manifest, as given: named in reports and messages.
    pub manifest: String,
    /// When AWS began taking the inventory (`creationTimestamp`).
    pub created: SystemTime,
    files: Vec<String>,
    source: Source,
    columns: Columns,
    /// The store's `location` in the bucket (`""` or ending in `/`): keys
    /// outside it belong to no section.
    root: String,
}

/// Where the data files are read from.
#[derive(Debug)]
enum Source {
    /// Beside a local manifest, or in the `data/` folder AWS puts beside
    /// the manifest's dated folder.
    Local(PathBuf),
    /// In the destination bucket holding the manifest.
    Bucket(S3Store),
}

/// The positions of the fields djgc reads in a row (`fileSchema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Columns {
    key: usize,
    size: usize,
    modified: usize,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    source_bucket: String,
    file_format: String,
    file_schema: String,
    creation_timestamp: String,
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    key: String,
}

impl Inventory {
    /// Reads the manifest at `manifest` (a local path or `s3://bucket/key`)
    /// of an inventory of `spec`'s bucket.
    pub fn open(manifest: &str, spec: &StoreSpec) -> Result<Inventory> {
        let bad = |why: String| Error::Usage(format!("`inventory` {manifest}: {why}"));
        let s3 = match (&spec.protocol, &spec.s3) {
            (Protocol::S3, Some(s3)) => s3,
            _ => {
                return Err(bad(format!(
                    "store {:?} is not an S3 store; an S3 Inventory can only list an S3 bucket",
                    spec.name
                )))
            }
        };
        let (text, source) = match manifest.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, key) = rest
                    .split_once('/')
                    .ok_or_else(|| bad("not s3://BUCKET/KEY".into()))?;
                let mut destination = spec.clone();
                destination.location = String::new();
                if let Some(s3) = &mut destination.s3 {
                    s3.bucket = bucket.to_string();
                }
                let store = S3Store::open(&destination, 1)?;
                let text = store
                    .get(key)
                    .map_err(|e| bad(e.to_string()))?
                    .ok_or_else(|| bad(format!("no object {key} in bucket {bucket}")))?;
                (text, Source::Bucket(store))
            }
            None => {
                let path = Path::new(manifest);
                let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
                let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
                (text, Source::Local(dir))
            }
        };
        let parsed: Manifest = serde_json::from_slice(&text)
            .map_err(|e| bad(format!("not an S3 Inventory manifest: {e}")))?;
        if parsed.source_bucket != s3.bucket {
            return Err(bad(format!(
                "it lists bucket {:?}, but store {:?} is bucket {:?}",
                parsed.source_bucket, spec.name, s3.bucket
            )));
        }
        if !parsed.file_format.eq_ignore_ascii_case("csv") {
            return Err(bad(format!(
                "its format is {}; djgc reads CSV inventories (choose CSV in the \
                 inventory configuration)",
                parsed.file_format
            )));
        }
        let columns = Columns::from_schema(&parsed.file_schema).map_err(bad)?;
        let millis: u64 = parsed.creation_timestamp.trim().parse().map_err(|_| {
            bad(format!(
                "creationTimestamp {:?} is not milliseconds since 1970",
                parsed.creation_timestamp
            ))
        })?;
        let location = spec.location.trim_matches('/');
        Ok(Inventory {
            manifest: manifest.to_string(),
            created: UNIX_EPOCH + Duration::from_millis(millis),
            files: parsed.files.into_iter().map(|f| f.key).collect(),
            source,
            columns,
            root: if location.is_empty() {
                String::new()
            } else {
                format!("{location}/")
            },
        })
    }

    /// Reads every data file once (several at a time), handing each
    /// current object of the store to every section whose prefix and range
    /// hold its key, in batches of at most [`LIST_BATCH`]:
    /// `sink(section index, batch)`. A file or row that cannot be read is
    /// passed on as an error (it blocks deletion); `sink` breaking stops
    /// the reading.
    pub fn list_sections(&self, sections: &[Section], sink: &SectionSink<'_>) {
        let stopped = AtomicBool::new(false);
        self.files.par_iter().for_each(|file| {
            if !stopped.load(Ordering::Relaxed) && self.list_file(file, sections, sink).is_break() {
                stopped.store(true, Ordering::Relaxed);
            }
        });
    }

    /// Lists one data file as [`Inventory::list_sections`] does; breaks
    /// when the sink asked to stop.
    fn list_file(
        &self,
        file: &str,
        sections: &[Section],
        sink: &SectionSink<'_>,
    ) -> ControlFlow<()> {
        let error = |e: Box<dyn std::error::Error + Send + Sync>| {
            sink(
                0,
                Listing::Error(StoreError::new("read inventory", file, e)),
            )
        };
        let reader = match self.open_file(file) {
            Ok(reader) => reader,
            Err(e) => return error(e),
        };
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        let mut batches: Vec<Vec<ObjectMeta>> = vec![Vec::new(); sections.len()];
        for row in rows.records() {
            let object = match row.map_err(Into::into).and_then(|r| self.object(&r)) {
                Ok(Some(object)) => object,
                Ok(None) => continue,
                // The rest of a damaged file cannot be trusted.
                Err(e) => return error(e),
            };
            for (index, section) in sections.iter().enumerate() {
                if object.key.starts_with(&section.prefix) && section.range.contains(&object.key) {
                    let batch = &mut batches[index];
                    batch.push(object.clone());
                    if batch.len() >= LIST_BATCH {
                        sink(index, Listing::Objects(std::mem::take(batch)))?;
                    }
                }
            }
        }
        for (index, batch) in batches.into_iter().enumerate() {
            if !batch.is_empty() {
                sink(index, Listing::Objects(batch))?;
            }
        }
        ControlFlow::Continue(())
    }

    /// A data file, decompressed when its name ends in `.gz`.
    fn open_file(
        &self,
        key: &str,
    ) -> std::result::Result<Box<dyn Read>, Box<dyn std::error::Error + Send + Sync>> {
        let raw: Box<dyn Read> = match &self.source {
            Source::Bucket(store) => {
                // Spooled to an unnamed file, so memory stays flat whatever
                // the file's size.
                let mut file = tempfile::tempfile()?;
                if !store.download(key, &mut file)? {
                    return Err(format!("listed in {} but not in its bucket", self.manifest).into());
                }
                file.seek(SeekFrom::Start(0))?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
            Source::Local(dir) => {
                let name = key.rsplit('/').next().unwrap_or(key);
                let beside = dir.join(name);
                let in_data = dir.join("../data").join(name);
                let path = if beside.is_file() { beside } else { in_data };
                let file = std::fs::File::open(&path).map_err(|e| {
                    format!(
                        "{}: {e} (looked beside the manifest and in ../data/)",
                        path.display()
                    )
                })?;
                Box::new(BufReader::with_capacity(1 << 20, file))
            }
        };
        Ok(if key.ends_with(".gz") {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            raw
        })
    }

    /// The store object a row describes, or `None` for a row that is not
    /// one (outside the store's location, an old version, a delete marker).
    fn object(
        &self,
        row: &csv::StringRecord,
    ) -> std::result::Result<Option<ObjectMeta>, Box<dyn std::error::Error + Send + Sync>> {
        let field = |index: usize| {
            row.get(index).ok_or_else(|| {
                format!(
                    "row {:?} has no field {}",
                    row.position().map(|p| p.line()),
                    index + 1
                )
            })
        };
        let is = |index: Option<usize>| -> std::result::Result<bool, String> {
            Ok(index
                .map(field)
                .transpose()?
                .is_some_and(|v| v.eq_ignore_ascii_case("true")))
        };
        if self.columns.is_latest.is_some() && !is(self.columns.is_latest)? {
            return Ok(None);
        }
        if is(self.columns.is_delete_marker)? {
            return Ok(None);
        }
        let key = decode_key(field(self.columns.key)?)?;
        let Some(key) = key.strip_prefix(self.root.as_str()) else {
            return Ok(None);
        };
        let size = field(self.columns.size)?;
        let size: u64 = size
            .parse()
            .map_err(|_| format!("key {key:?}: size {size:?} is not a number"))?;
        let modified = field(self.columns.modified)?;
        let modified = humantime::parse_rfc3339(modified)
            .map_err(|e| format!("key {key:?}: last modified {modified:?}: {e}"))?;
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            modified,
        }))
    }
}

impl Columns {
    /// Finds the fields djgc needs in a manifest's `fileSchema`
    /// (`"Bucket, Key, Size, LastModifiedDate, ..."`).
    fn from_schema(schema: &str) -> std::result::Result<Columns, String> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |name: &str| names.iter().position(|n| n.eq_ignore_ascii_case(name));
        let need = |name: &str, label: &str| {
            find(name).ok_or_else(|| {
                format!(
                    "its rows have no {name} field ({schema:?}); add {label} to the \
                     inventory's fields"
                )
            })
        };
        Ok(Columns {
            key: need("Key", "the key")?,
            size: need("Size", "Size")?,
            modified: need("LastModifiedDate", "Last modified")?,
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
        })
    }
}

/// A key as CSV inventories write it: URL-encoded, `+` for a space.
fn decode_key(encoded: &str) -> std::result::Result<String, String> {
    let spaced = encoded.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|key| key.into_owned())
        .map_err(|_| format!("key {encoded:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_as_inventories_encode_them() {
        assert_eq!(
            decode_key("dj/_schema/s/t/id%3D1/f+x%2By.npy").unwrap(),
            "dj/_schema/s/t/id=1/f x+y.npy"
        );
        assert_eq!(decode_key("caf%C3%A9").unwrap(), "café");
        assert!(decode_key("%FF").unwrap_err().contains("%FF"));
    }

    #[test]
    fn the_schema_names_the_fields() {
        let columns = Columns::from_schema(
            "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
        )
        .unwrap();
        assert_eq!(
            columns,
            Columns {
                key: 1,
                size: 5,
                modified: 6,
                is_latest: Some(3),
                is_delete_marker: Some(4)
            }
        );
        let e = Columns::from_schema("Bucket, Key, LastModifiedDate").unwrap_err();
        assert!(e.contains("no Size field"), "{e}");
    }
}
