//! A reference snapshot: the references of a sharded collection, read from
//! the database once for all its shards.
//!
//! Why: a shard reads every row to keep the references of its ranges (and
//! places its cuts by a sample, one more read), so N shards cost the
//! database N full reads: at a billion rows and a hundred shards, a hundred
//! billion rows. `djgc refs snapshot` reads them once, hands each reference
//! to the part of every shard that holds it ([`ShardCuts::place`]: the
//! choice each shard's own read would make) and writes the parts to a
//! folder every task can read; `--refs` makes a shard read its part alone.
//!
//! Why it is safe: a snapshot is older than the listing it judges, so a row
//! committed after its read began is not in it. A shard judges age from the
//! moment that read began, as if it had read the database then, and it
//! never deletes by a snapshot: it may only quarantine, and `djgc purge`
//! reads the database afresh and puts back every object a row references
//! before it deletes anything. So a stale, damaged or forged snapshot can
//! make an object missing until the purge, never lost. Each part's length
//! and xxh3 digest are in the header, so a part cut short or changed by
//! accident is refused, not read as fewer references.
//!
//! The folder: `snapshot.json` (the header, renamed into place with the
//! parts: a folder without it is no snapshot) and `part-00000.refs` ...,
//! one per shard, each a run of 9-byte records: a tag (the reference's kind,
//! plus [`COUNTED`] when the shard counts it) and the path's hash
//! ([`crate::refs::refset::path_hash`], little-endian). A reference that
//! several shards hold is in each of their parts.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::Xxh3;

use crate::config::identity::{identity_differences, Identity};
use crate::error::{Error, Result};
use crate::layout::shard::{Shard, ShardCuts};
use crate::layout::Section;
use crate::progress::Progress;
use crate::refs::codec::RefKind;
use crate::refs::{Gathered, Keep, Placed, Placing, Reader, ReferenceQuery, ReferenceScan, Tally};

/// The most shards a snapshot is cut into: each part is an open file while
/// the snapshot is written, and a process may have about a thousand.
pub const MAX_SNAPSHOT_SHARDS: usize = 512;

const FORMAT: &str = "djgc-refs-snapshot/1";
const HEADER_FILE: &str = "snapshot.json";
/// Bytes of one record: the tag and the hash.
const RECORD: usize = 9;
/// The tag bit of a reference its shard counts.
const COUNTED: u8 = 0x80;

/// What `snapshot.json` says of the snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotHeader {
    pub format: String,
    pub djgc_version: String,
    /// When the read began (milliseconds since the epoch): a row committed
    /// later may be missing, so shards judge age from here.
    pub taken_ms: u64,
    /// The store and database it was read for ([`crate::config::identity::identity`]).
    pub identity: Identity,
    pub schemas: Vec<String>,
    pub schema_codecs: Vec<String>,
    pub shards: usize,
    /// The schemas' sections, whole, and each one's `shards - 1` cuts.
    pub sections: Vec<Section>,
    pub cuts: Vec<Vec<String>>,
    /// Non-null codec values read.
    pub values: u64,
    /// Problems of the read: every shard judged by it reports them, and
    /// refuses to quarantine.
    pub errors: Vec<String>,
    /// Warnings of the whole read (tables read as one stream).
    pub warnings: Vec<String>,
    pub read_by_schema: BTreeMap<String, u64>,
    /// One per shard, in order.
    pub parts: Vec<PartHeader>,
}

/// What the header says of one shard's part.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartHeader {
    /// Records in the part.
    pub entries: u64,
    /// xxh3-64 of the part's bytes, in hex.
    pub digest: String,
    /// References the shard counts, by schema.
    pub by_schema: BTreeMap<String, u64>,
    /// Odd paths among those it counts.
    pub warnings: Vec<String>,
}

fn part_name(index: usize) -> String {
    format!("part-{index:05}.refs")
}

fn tag(kind: RefKind) -> u8 {
    match kind {
        RefKind::Hash => 0,
        RefKind::Schema => 1,
        RefKind::Other => 2,
    }
}

fn kind_of(tag: u8) -> Option<RefKind> {
    match tag & !COUNTED {
        0 => Some(RefKind::Hash),
        1 => Some(RefKind::Schema),
        2 => Some(RefKind::Other),
        _ => None,
    }
}

/// The parts being written, one file per shard.
struct PartWriters {
    dir: PathBuf,
    files: Vec<BufWriter<File>>,
    digests: Vec<Xxh3>,
    entries: Vec<u64>,
}

impl PartWriters {
    fn create(dir: &Path, count: usize) -> Result<PartWriters> {
        let files = (0..count)
            .map(|index| {
                let path = dir.join(part_name(index));
                File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map(|file| BufWriter::with_capacity(1 << 16, file))
                    .map_err(|e| Error::file(path, e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PartWriters {
            dir: dir.to_path_buf(),
            files,
            digests: (0..count).map(|_| Xxh3::new()).collect(),
            entries: vec![0; count],
        })
    }

    /// Flushes every part to disk; returns each one's record count and digest.
    fn finish(self) -> Result<Vec<(u64, String)>> {
        let dir = self.dir;
        self.files
            .into_iter()
            .zip(self.digests)
            .zip(self.entries)
            .enumerate()
            .map(|(index, ((file, digest), entries))| {
                let io = |e| Error::file(dir.join(part_name(index)), e);
                let file = file.into_inner().map_err(|e| io(e.into_error()))?;
                file.sync_all().map_err(io)?;
                Ok((entries, format!("{:016x}", digest.digest())))
            })
            .collect()
    }
}

impl Keep for PartWriters {
    fn keep(&mut self, batch: &mut Vec<Placed>) -> Result<()> {
        for placed in batch.drain(..) {
            let mut record = [0u8; RECORD];
            record[0] = tag(placed.kind) | if placed.counted { COUNTED } else { 0 };
            record[1..].copy_from_slice(&placed.hash.to_le_bytes());
            let holder = placed.holder;
            self.files[holder]
                .write_all(&record)
                .map_err(|e| Error::file(self.dir.join(part_name(holder)), e))?;
            self.digests[holder].update(&record);
            self.entries[holder] += 1;
        }
        Ok(())
    }
}

fn epoch_millis(time: SystemTime) -> u64 {
    let millis = time
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// Reads `query`'s references once and writes them to a new folder `dir`
/// as a snapshot cut by `cuts`; `taken` is when the run began reading the
/// database (before any sample it placed the cuts by). The folder appears
/// whole or not at all: it is written under a temporary name beside it and
/// renamed. Returns the header written.
pub(crate) fn take(
    reader: &Reader,
    query: &ReferenceQuery,
    cuts: &ShardCuts,
    identity: Identity,
    taken: SystemTime,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<SnapshotHeader> {
    if cuts.count() > MAX_SNAPSHOT_SHARDS {
        return Err(Error::Usage(format!(
            "a reference snapshot is cut into at most {MAX_SNAPSHOT_SHARDS} shards, not {}",
            cuts.count()
        )));
    }
    if dir.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} already exists: a snapshot is written into a new folder (remove it, or name \
             another)",
            dir.display()
        )));
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let building = tempfile::Builder::new()
        .prefix(".djgc-refs-")
        .tempdir_in(parent)
        .map_err(|e| Error::file(parent, e))?;
    let writers = PartWriters::create(building.path(), cuts.count())?;
    let (writers, tally) = reader.read_placed(query, &Placing::Shards(cuts), writers, progress)?;
    let parts = writers.finish()?;
    let header = SnapshotHeader {
        format: FORMAT.to_string(),
        djgc_version: env!("CARGO_PKG_VERSION").to_string(),
        taken_ms: epoch_millis(taken),
        identity,
        schemas: query.schemas.clone(),
        schema_codecs: query.schema_codecs.clone(),
        shards: cuts.count(),
        sections: query.sections.clone(),
        cuts: cuts.cuts().to_vec(),
        values: tally.values,
        errors: tally.errors,
        warnings: tally.warnings,
        read_by_schema: tally.read_by_schema,
        parts: parts
            .into_iter()
            .zip(tally.by_schema)
            .zip(tally.holder_warnings)
            .map(|(((entries, digest), by_schema), warnings)| PartHeader {
                entries,
                digest,
                by_schema,
                warnings,
            })
            .collect(),
    };
    let header_path = building.path().join(HEADER_FILE);
    let io = |e| Error::file(&header_path, e);
    let mut out = BufWriter::new(File::create_new(&header_path).map_err(io)?);
    serde_json::to_writer_pretty(&mut out, &header).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)?;
    out.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    std::fs::rename(building.path(), dir).map_err(|e| Error::file(dir, e))?;
    // Renamed: nothing is left to remove.
    let _ = building.keep();
    Ok(header)
}

/// A snapshot opened for reading.
#[derive(Debug)]
pub struct Snapshot {
    dir: PathBuf,
    header: SnapshotHeader,
}

impl Snapshot {
    /// Opens the snapshot in `dir`, refusing a folder that is not a whole
    /// snapshot of this format.
    pub fn open(dir: &Path) -> Result<Snapshot> {
        let path = dir.join(HEADER_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::Usage(format!(
                "{} is not a reference snapshot (made by `djgc refs snapshot`): {}: {e}",
                dir.display(),
                path.display()
            ))
        })?;
        let not_one = |why: String| {
            Error::Usage(format!(
                "{}: not a reference snapshot djgc can read: {why}",
                path.display()
            ))
        };
        let header: SnapshotHeader =
            serde_json::from_str(&text).map_err(|e| not_one(e.to_string()))?;
        if header.format != FORMAT {
            return Err(not_one(format!(
                "format {:?}, where this djgc reads {FORMAT:?}",
                header.format
            )));
        }
        if header.parts.len() != header.shards || header.shards > MAX_SNAPSHOT_SHARDS {
            return Err(not_one(format!(
                "{} parts for {} shards",
                header.parts.len(),
                header.shards
            )));
        }
        Ok(Snapshot {
            dir: dir.to_path_buf(),
            header,
        })
    }

    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When the snapshot's read began.
    pub fn taken(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.header.taken_ms)
    }

    /// The shard a run judges by this snapshot: `requested`, which must be
    /// one of the snapshot's shards, or for a snapshot of one shard, that.
    pub fn shard(&self, requested: Option<Shard>) -> Result<Shard> {
        let count = self.header.shards;
        match requested {
            Some(shard) if shard.count == count => Ok(shard),
            Some(shard) => Err(Error::Usage(format!(
                "the reference snapshot {} is cut into {count} shards, not for shard {shard}",
                self.dir.display()
            ))),
            None if count == 1 => Ok(Shard { index: 0, count }),
            None => Err(Error::Usage(format!(
                "the reference snapshot {} is cut into {count} shards: give `shard` K/{count}",
                self.dir.display()
            ))),
        }
    }

    /// The snapshot's cuts, once it is shown to be of this run: the same
    /// store and database (`identity`), schemas, codecs and sections.
    pub fn cuts_for(
        &self,
        identity: &Identity,
        schemas: &[String],
        schema_codecs: &[String],
        sections: &[Section],
    ) -> Result<ShardCuts> {
        let header = &self.header;
        let mut differences = identity_differences(&header.identity, identity, "snapshot");
        let sorted = |names: &[String]| {
            let mut names = names.to_vec();
            names.sort();
            names
        };
        if sorted(&header.schemas) != sorted(schemas) {
            differences.push(format!(
                "schemas: snapshot {:?}, run {schemas:?}",
                header.schemas
            ));
        }
        if sorted(&header.schema_codecs) != sorted(schema_codecs) {
            differences.push(format!(
                "schema codecs: snapshot {:?}, run {schema_codecs:?}",
                header.schema_codecs
            ));
        }
        if header.sections != sections {
            differences.push("the schemas' sections in the store differ".to_string());
        }
        if !differences.is_empty() {
            return Err(Error::Usage(format!(
                "the reference snapshot {} was taken for another collection than this run's \
                 ({}); nothing was done",
                self.dir.display(),
                differences.join("; ")
            )));
        }
        ShardCuts::new(sections.to_vec(), header.cuts.clone(), header.shards).map_err(|e| {
            Error::Usage(format!(
                "the reference snapshot {}: {e}",
                self.dir.display()
            ))
        })
    }

    /// `shard`'s references, as its own read of the database would have
    /// found them when the snapshot was taken. A part whose length or
    /// digest is not the header's is refused.
    pub fn scan_of(&self, shard: Shard, progress: &dyn Progress) -> Result<ReferenceScan> {
        let part = &self.header.parts[shard.index];
        let path = self.dir.join(part_name(shard.index));
        let io = |e| Error::file(&path, e);
        let mut input = BufReader::with_capacity(1 << 16, File::open(&path).map_err(io)?);
        let mut gathered = Gathered::default();
        let mut digest = Xxh3::new();
        let mut entries = 0u64;
        let mut record = [0u8; RECORD];
        let damaged = |why: String| {
            Error::Usage(format!(
                "{}: {why}; the snapshot was changed or damaged since it was taken (take it \
                 again)",
                path.display()
            ))
        };
        loop {
            match input.read_exact(&mut record) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(io(e)),
            }
            let kind = kind_of(record[0])
                .ok_or_else(|| damaged(format!("record {entries} has tag {}", record[0])))?;
            let hash = u64::from_le_bytes(record[1..].try_into().expect("8 bytes"));
            gathered.push(kind, hash, record[0] & COUNTED != 0);
            digest.update(&record);
            entries += 1;
        }
        // A part whose length is not a whole number of records ends in a
        // partial one, which `read_exact` leaves out: the digest differs.
        let found = format!("{:016x}", digest.digest());
        let size = std::fs::metadata(&path).map_err(io)?.len();
        if entries != part.entries || found != part.digest || size != entries * RECORD as u64 {
            return Err(damaged(format!(
                "{size} bytes, {entries} records with digest {found}, where the header says \
                 {} records with digest {}",
                part.entries, part.digest
            )));
        }
        let (references, counted) = gathered.build();
        progress.references_done(references.len() as u64);
        let header = &self.header;
        // What the read found, as the shard's own read would have told it.
        let tally = Tally {
            values: header.values,
            errors: header.errors.clone(),
            warnings: header.warnings.clone(),
            read_by_schema: header.read_by_schema.clone(),
            by_schema: vec![part.by_schema.clone()],
            holder_warnings: vec![part.warnings.clone()],
        };
        Ok(tally.scan_of(0, references, counted))
    }
}
