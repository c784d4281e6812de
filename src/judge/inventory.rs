//! An S3 Inventory report in place of LIST.
//!
//! Listing a bucket of billions of objects takes hours of LIST requests even
//! in parallel; AWS writes the same listing daily or weekly as an S3
//! Inventory report: a `manifest.json` naming CSV (or CSV.gz) or Parquet
//! data files of `bucket, key, size, last modified, ...` rows. djgc reads the
//! report instead of listing (`--inventory MANIFEST`, the manifest's local
//! path or `s3://bucket/key` on the store's endpoint with its credentials),
//! reading every data file once (a few at a time, each spooled to a
//! temporary file when it comes from the bucket) and handing each row to the
//! sections (and shard ranges) it belongs to, so the rest of the scan cannot
//! tell the difference.
//!
//! An inventory lags the bucket, so it is trusted only to name candidates:
//! * objects written after it are not in it, so are never judged; an object
//!   in it modified after its creation time (written while it was taken) is
//!   too young to judge ([`Inventory::created`] bounds the age cutoff);
//! * every orphan is confirmed with `HEAD` just before it is deleted
//!   ([`crate::judge::planfile::confirm_unchanged`]): one gone or changed since is
//!   skipped, never deleted.
//!
//! Keys in CSV inventories are URL-encoded with `+` for a space; Parquet
//! holds them as they are, in columns found by name in each file's own
//! schema (`key`, `size`, `last_modified_date`, ...), the format AWS
//! recommends for large buckets. Versioned inventories list every version:
//! only current versions that are not delete markers are objects. Parquet
//! is read without Arrow (its row reader), with the codecs Snappy
//! (pyarrow's default), gzip and LZ4; another codec is refused by
//! name. ORC reports are refused.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use std::sync::atomic::{AtomicBool, Ordering};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::{Type, TypePtr};
use percent_encoding::percent_decode_str;
use rayon::prelude::*;
use serde::Deserialize;

use crate::config::{Protocol, StoreSpec};
use crate::error::{Error, Result};
use crate::layout::Section;
use crate::store::{Listing, ObjectMeta, S3Store, SectionSink, Store, StoreError, LIST_BATCH};

/// An opened inventory report: what its rows mean and where its files are.
#[derive(Debug)]
pub struct Inventory {
    /// The manifest, as given: named in reports and messages.
    pub manifest: String,
    /// When AWS began taking the inventory (`creationTimestamp`).
    pub created: SystemTime,
    files: Vec<String>,
    source: Source,
    format: Format,
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

/// How the data files hold their rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// CSV rows whose fields the manifest's `fileSchema` names.
    Csv(Columns),
    /// Parquet files that name their own columns.
    Parquet,
}

/// The positions of the fields djgc reads in a CSV row (`fileSchema`).
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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
        let format = match parsed.file_format.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv(Columns::from_schema(&parsed.file_schema).map_err(bad)?),
            "parquet" => Format::Parquet,
            _ => {
                return Err(bad(format!(
                    "its format is {}; djgc reads CSV and Parquet inventories (choose one \
                     of them in the inventory configuration)",
                    parsed.file_format
                )))
            }
        };
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
            format,
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
        let mut router = Router::new(sections, sink);
        let read = match self.format {
            Format::Csv(columns) => self.read_csv(file, columns, &mut router),
            Format::Parquet => self.read_parquet(file, &mut router),
        };
        match read {
            Ok(ControlFlow::Continue(())) => router.flush(),
            Ok(ControlFlow::Break(())) => ControlFlow::Break(()),
            // The rest of a damaged file cannot be trusted.
            Err(e) => sink(
                0,
                Listing::Error(StoreError::new("read inventory", file, e)),
            ),
        }
    }

    /// Hands each object of a CSV data file to `router`.
    fn read_csv(
        &self,
        file: &str,
        columns: Columns,
        router: &mut Router<'_, '_>,
    ) -> std::result::Result<ControlFlow<()>, BoxError> {
        let raw = BufReader::with_capacity(1 << 20, self.fetch(file)?);
        let reader: Box<dyn Read> = if file.ends_with(".gz") {
            Box::new(BufReader::with_capacity(
                1 << 20,
                flate2::read::MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        let mut rows = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(reader);
        for row in rows.records() {
            if let Some(object) = self.csv_object(&row?, columns)? {
                if router.push(object).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Hands each object of a Parquet data file to `router`, reading only
    /// the columns djgc needs.
    fn read_parquet(
        &self,
        file: &str,
        router: &mut Router<'_, '_>,
    ) -> std::result::Result<ControlFlow<()>, BoxError> {
        let reader = SerializedFileReader::new(self.fetch(file)?)?;
        let schema = reader.metadata().file_metadata().schema();
        let needed: Vec<TypePtr> = schema
            .get_fields()
            .iter()
            .filter(|field| ParquetRow::COLUMNS.contains(&field.name()))
            .cloned()
            .collect();
        for (column, label) in [
            ("key", "the key"),
            ("size", "Size"),
            ("last_modified_date", "Last modified"),
        ] {
            if !needed.iter().any(|field| field.name() == column) {
                return Err(format!(
                    "its rows have no {column} column; add {label} to the inventory's fields"
                )
                .into());
            }
        }
        let projection = Type::group_type_builder(schema.name())
            .with_fields(needed)
            .build()?;
        for row in reader.get_row_iter(Some(projection))? {
            if let Some(object) = self.parquet_object(&row?)? {
                if router.push(object).is_break() {
                    return Ok(ControlFlow::Break(()));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// A data file, opened where it is or spooled from the bucket to an
    /// unnamed file (so memory stays flat whatever its size).
    fn fetch(&self, key: &str) -> std::result::Result<File, BoxError> {
        match &self.source {
            Source::Bucket(store) => {
                let mut file = tempfile::tempfile()?;
                if !store.download(key, &mut file)? {
                    return Err(format!("listed in {} but not in its bucket", self.manifest).into());
                }
                file.seek(SeekFrom::Start(0))?;
                Ok(file)
            }
            Source::Local(dir) => {
                let name = key.rsplit('/').next().unwrap_or(key);
                let beside = dir.join(name);
                let in_data = dir.join("../data").join(name);
                let path = if beside.is_file() { beside } else { in_data };
                File::open(&path).map_err(|e| {
                    format!(
                        "{}: {e} (looked beside the manifest and in ../data/)",
                        path.display()
                    )
                    .into()
                })
            }
        }
    }

    /// The store object a CSV row describes, or `None` for a row that is
    /// not one (outside the store's location, an old version, a delete
    /// marker).
    fn csv_object(
        &self,
        row: &csv::StringRecord,
        columns: Columns,
    ) -> std::result::Result<Option<ObjectMeta>, BoxError> {
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
        if columns.is_latest.is_some() && !is(columns.is_latest)? {
            return Ok(None);
        }
        if is(columns.is_delete_marker)? {
            return Ok(None);
        }
        let key = decode_key(field(columns.key)?)?;
        let Some(key) = key.strip_prefix(self.root.as_str()) else {
            return Ok(None);
        };
        let size = field(columns.size)?;
        let size: u64 = size
            .parse()
            .map_err(|_| format!("key {key:?}: size {size:?} is not a number"))?;
        let modified = field(columns.modified)?;
        let modified = humantime::parse_rfc3339(modified)
            .map_err(|e| format!("key {key:?}: last modified {modified:?}: {e}"))?;
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            modified,
        }))
    }

    /// The store object a Parquet row describes, or `None` as for CSV.
    fn parquet_object(&self, row: &Row) -> std::result::Result<Option<ObjectMeta>, BoxError> {
        let row = ParquetRow::read(row)?;
        // A versioned inventory's rows that are not current objects.
        if row.is_latest == Some(false) || row.is_delete_marker {
            return Ok(None);
        }
        let key = row.key.ok_or("a row has no key")?;
        let Some(key) = key.strip_prefix(self.root.as_str()) else {
            return Ok(None);
        };
        let size = row.size.ok_or_else(|| format!("key {key:?} has no size"))?;
        let modified = row
            .modified
            .ok_or_else(|| format!("key {key:?} has no last_modified_date"))?;
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            modified,
        }))
    }
}

/// The fields of one Parquet inventory row that djgc reads.
#[derive(Debug, Default)]
struct ParquetRow {
    key: Option<String>,
    size: Option<u64>,
    modified: Option<SystemTime>,
    /// `None` when the inventory lists only current versions.
    is_latest: Option<bool>,
    is_delete_marker: bool,
}

impl ParquetRow {
    /// The columns read, as AWS names them.
    const COLUMNS: [&'static str; 5] = [
        "key",
        "size",
        "last_modified_date",
        "is_latest",
        "is_delete_marker",
    ];

    fn read(row: &Row) -> std::result::Result<ParquetRow, String> {
        let mut read = ParquetRow::default();
        for (name, field) in row.get_column_iter() {
            match (name.as_str(), field) {
                // As in CSV: only a version marked current is an object.
                ("is_latest", Field::Null) => read.is_latest = Some(false),
                (_, Field::Null) => {}
                ("key", Field::Str(key)) => read.key = Some(key.clone()),
                ("key", Field::Bytes(bytes)) => {
                    read.key = Some(
                        String::from_utf8(bytes.data().to_vec())
                            .map_err(|_| "a key is not UTF-8".to_string())?,
                    )
                }
                ("size", Field::Long(size)) => {
                    read.size = Some(
                        u64::try_from(*size)
                            .map_err(|_| format!("key {:?}: size {size} is negative", read.key))?,
                    )
                }
                ("last_modified_date", Field::TimestampMillis(ms)) => {
                    read.modified = Some(since_1970(*ms, 1_000_000)?)
                }
                ("last_modified_date", Field::TimestampMicros(us)) => {
                    read.modified = Some(since_1970(*us, 1_000)?)
                }
                ("is_latest", Field::Bool(latest)) => read.is_latest = Some(*latest),
                ("is_delete_marker", Field::Bool(marker)) => read.is_delete_marker = *marker,
                (name, other) => {
                    return Err(format!(
                        "key {:?}: column {name} holds {other:?}, not what S3 Inventory \
                         writes there",
                        read.key
                    ))
                }
            }
        }
        Ok(read)
    }
}

/// A time `count` units of `nanos_per_unit` after 1970.
fn since_1970(count: i64, nanos_per_unit: u64) -> std::result::Result<SystemTime, String> {
    u64::try_from(count)
        .ok()
        .and_then(|count| count.checked_mul(nanos_per_unit))
        .map(|nanos| UNIX_EPOCH + Duration::from_nanos(nanos))
        .ok_or_else(|| format!("last modified time {count} is before 1970"))
}

/// Hands one data file's objects to the sections (and ranges) holding
/// their keys, a batch of at most [`LIST_BATCH`] at a time.
struct Router<'s, 'f> {
    sections: &'s [Section],
    sink: &'s SectionSink<'f>,
    batches: Vec<Vec<ObjectMeta>>,
}

impl<'s, 'f> Router<'s, 'f> {
    fn new(sections: &'s [Section], sink: &'s SectionSink<'f>) -> Self {
        Router {
            sections,
            sink,
            batches: vec![Vec::new(); sections.len()],
        }
    }

    fn push(&mut self, object: ObjectMeta) -> ControlFlow<()> {
        for (index, section) in self.sections.iter().enumerate() {
            if object.key.starts_with(&section.prefix) && section.range.contains(&object.key) {
                let batch = &mut self.batches[index];
                batch.push(object.clone());
                if batch.len() >= LIST_BATCH {
                    (self.sink)(index, Listing::Objects(std::mem::take(batch)))?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// Hands on what is left.
    fn flush(self) -> ControlFlow<()> {
        for (index, batch) in self.batches.into_iter().enumerate() {
            if !batch.is_empty() {
                (self.sink)(index, Listing::Objects(batch))?;
            }
        }
        ControlFlow::Continue(())
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
