//! `djgc check`: the rows whose objects are missing or incomplete.
//!
//! A collector answers "what is stored that no row needs?"; people who run
//! one ask the other half as often: "which rows point at objects that are
//! gone?" (after a migration, a lifecycle rule, a restore, a folder upload
//! that died half-way, or a collection they do not fully trust). DataJoint
//! finds out row by row, when a fetch fails. This answers it with the
//! scan's own passes:
//!
//! 1. one reference read, each reference with what its row says of the
//!    object ([`Expect`]: its size, whether it is a folder), while
//! 2. the schemas' sections are listed once, in parallel, into a bounded
//!    queue; every listed key is looked up among the references: a file
//!    object found (and its size compared), a folder object's files counted
//!    and folded into a digest of their names and sizes, its manifest seen;
//! 3. each folder object's `.manifest.json` is read and folded the same
//!    way: the digests agree when every file it lists is there with its
//!    size (only when they differ is the folder listed again, to say which
//!    files are missing);
//! 4. only if something looks damaged, the rows are read once more: those
//!    naming such an object are kept aside (a temporary file) with their
//!    primary keys and paths, and each object is looked at again (`HEAD`,
//!    or its folder listed and its manifest read): an object that arrived
//!    while the store was listed, for a row committed during the reference
//!    read, is no damage; then
//! 5. the kept rows whose object is still damaged are streamed to the
//!    caller, named by primary key.
//!
//! Memory: per distinct referenced path its hash, a 32-bit size tag and
//! two flags (16 bytes) and a found bit; per folder object seen its path,
//! count and digest; the damaged paths. Never a copy of the listing, and
//! the damaged rows go to the caller as they are found.
//!
//! What it cannot see: a reference outside the sections it lists (another
//! schema's path, `../x`) is counted as not checked; a size is compared by
//! its low 32 bits (a file that differs by a multiple of 4 GiB passes);
//! a folder object's files are compared by name and size, not content.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Seek, Write};
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::judge::inventory::Inventory;
use crate::layout::shard::Shard;
use crate::layout::{file_name, is_content_hash_name, Section, SectionKind, MANIFEST_SUFFIX};
use crate::progress::Progress;
use crate::refs::codec::RefKind;
use crate::refs::refset::{path_hash, undotted, undotted_hash};
use crate::refs::{Expect, Keep, Placed, Placing, Reader, ReferenceQuery, RowReference};
use crate::store::{Listing, ObjectMeta, Store};

/// Listing batches that may wait for the lookups.
const LISTING_QUEUE: usize = 256;
/// Manifest reads in flight, at least.
const MIN_MANIFEST_READERS: usize = 8;
/// Files named in a detail before the rest are only counted.
const FILES_NAMED: usize = 5;

/// What is wrong with a referenced object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Nothing at the path (for a folder: no file under it, no manifest).
    Missing,
    /// A file whose size is not the one its row records.
    SizeDiffers,
    /// A folder with no file under it, though its manifest lists some.
    Empty,
    /// A folder without its `.manifest.json`.
    ManifestMissing,
    /// A folder missing a file its manifest lists, or holding one with
    /// another size (or a manifest that cannot be read as DataJoint writes it).
    Incomplete,
}

/// What is wrong with one damaged object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    pub problem: Problem,
    pub detail: String,
}

/// One row whose object is damaged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DamagedRow {
    pub schema: String,
    pub table: String,
    /// The row's primary key, `name=value, ...`.
    pub key: String,
    pub column: String,
    pub path: String,
    pub problem: Problem,
    pub detail: String,
}

/// What a check found, besides the damaged rows it handed on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckReport {
    pub store: String,
    pub schemas: Vec<String>,
    /// The shard checked, if not the whole store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// Distinct referenced paths looked for in the store.
    pub references_checked: u64,
    /// Distinct referenced paths that could not be looked for: outside the
    /// sections listed, or of a codec whose objects djgc does not know.
    pub references_not_checked: u64,
    pub objects_listed: u64,
    /// Folder objects whose manifest was read.
    pub folders_verified: u64,
    /// Distinct damaged paths.
    pub objects_damaged: u64,
    /// Rows naming a damaged path (a deduplicated object can have many).
    pub rows_damaged: u64,
    /// Damaged rows by problem.
    pub rows_by_problem: BTreeMap<Problem, u64>,
    /// Damaged rows by `schema.table`.
    pub rows_by_table: BTreeMap<String, u64>,
    /// Problems that leave the check incomplete (a listing or a read that
    /// failed): then the absence of damage proves nothing.
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub seconds: f64,
}

const SIZE_TAG: u64 = 0xFFFF_FFFF;
const HAS_SIZE: u64 = 1 << 32;
const FOLDER: u64 = 1 << 33;

fn pack(expect: Expect) -> u64 {
    expect.size.map_or(0, |size| (size & SIZE_TAG) | HAS_SIZE)
        | if expect.folder { FOLDER } else { 0 }
}

/// The references to look for, as a read finds them: one entry a row's
/// reference, until [`merge_paths`] folds the entries of each path into
/// one, whenever they have doubled, so memory follows the distinct paths
/// (a deduplicated object with a million rows is one entry), not the rows.
struct Gathering {
    /// (path hash, packed expectation) of every checkable reference.
    checked: Vec<(u64, u64)>,
    not_checked: Vec<u64>,
    /// Lengths at which each is folded next.
    fold_checked: usize,
    fold_not_checked: usize,
}

/// Entries gathered before the first fold.
const FOLD_FROM: usize = 1 << 16;

impl Default for Gathering {
    fn default() -> Self {
        Gathering {
            checked: Vec::new(),
            not_checked: Vec::new(),
            fold_checked: FOLD_FROM,
            fold_not_checked: FOLD_FROM,
        }
    }
}

impl Keep for Gathering {
    fn keep(&mut self, batch: &mut Vec<Placed>) -> Result<()> {
        // A shard checks the references it counts: those in its ranges.
        for placed in batch.drain(..).filter(|placed| placed.counted) {
            if placed.kind != RefKind::Other && placed.expect.listed {
                self.checked.push((placed.hash, pack(placed.expect)));
            } else {
                self.not_checked.push(placed.hash);
            }
        }
        if self.checked.len() >= self.fold_checked {
            merge_paths(&mut self.checked);
            self.fold_checked = (2 * self.checked.len()).max(FOLD_FROM);
        }
        if self.not_checked.len() >= self.fold_not_checked {
            self.not_checked.sort_unstable();
            self.not_checked.dedup();
            self.fold_not_checked = (2 * self.not_checked.len()).max(FOLD_FROM);
        }
        Ok(())
    }
}

/// Sorts `entries` by path hash and folds those of one path into one:
/// a folder if any row says so, a size only if every row gives the same.
fn merge_paths(entries: &mut Vec<(u64, u64)>) {
    entries.sort_unstable();
    entries.dedup_by(|later, kept| {
        if later.0 != kept.0 {
            return false;
        }
        let sized = SIZE_TAG | HAS_SIZE;
        let sizes_agree = (kept.1 & sized) == (later.1 & sized);
        kept.1 |= later.1 & FOLDER;
        if !sizes_agree {
            kept.1 &= !sized;
        }
        true
    });
}

/// One distinct path per entry, sorted by hash: what its rows expect (a
/// folder if any row says so; a size only if they all agree).
struct Expectations {
    entries: Vec<(u64, u64)>,
    found: Vec<bool>,
}

impl Expectations {
    fn build(mut entries: Vec<(u64, u64)>) -> Expectations {
        merge_paths(&mut entries);
        entries.shrink_to_fit();
        let found = vec![false; entries.len()];
        Expectations { entries, found }
    }

    fn find(&self, hash: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&hash, |e| e.0).ok()
    }

    fn is_folder(&self, index: usize) -> bool {
        self.entries[index].1 & FOLDER != 0
    }
}

/// What the listing showed of one folder object.
#[derive(Clone, Debug, Default)]
struct FolderSeen {
    path: String,
    files: u64,
    /// Wrapping sum of [`file_digest`] over its files.
    digest: u64,
    manifest: bool,
}

/// A file's contribution to its folder's digest: its path inside the
/// folder and its size, so that the same files give the same sum in any order.
fn file_digest(relative: &str, size: u64) -> u64 {
    let mut bytes = Vec::with_capacity(relative.len() + 9);
    bytes.extend_from_slice(relative.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&size.to_le_bytes());
    xxh3_64(&bytes)
}

/// The listing's findings, kept by the one thread that looks keys up.
struct Findings {
    expected: Expectations,
    /// Files whose size differs from their rows'.
    resized: HashSet<usize>,
    folders: HashMap<usize, FolderSeen>,
    listed: u64,
}

impl Findings {
    fn look_up(&mut self, section: &Section, object: &ObjectMeta) {
        let key = object.key.as_str();
        if !section.owns(key) || !section.range.contains(key) {
            return;
        }
        self.listed += 1;
        if section.kind == SectionKind::Hash {
            if is_content_hash_name(file_name(key)) {
                self.file_found(path_hash(key), object.size);
            }
            return;
        }
        let plain = undotted(key);
        let hash = undotted_hash(&plain);
        if let Some(index) = self
            .expected
            .find(hash)
            .filter(|&i| !self.expected.is_folder(i))
        {
            self.mark(index, object.size);
            return;
        }
        if let Some(base) = key.strip_suffix(MANIFEST_SUFFIX) {
            if let Some(index) = self.expected.find(path_hash(base)) {
                if self.expected.is_folder(index) {
                    let seen = self.folders.entry(index).or_default();
                    seen.manifest = true;
                    if seen.path.is_empty() {
                        seen.path = base.to_string();
                    }
                    return;
                }
            }
        }
        // A file of a folder object: the nearest referenced folder above it.
        for (at, _) in plain.rmatch_indices('/').filter(|(at, _)| *at > 0) {
            let Some(index) = self.expected.find(undotted_hash(&plain[..at])) else {
                continue;
            };
            if self.expected.is_folder(index) {
                let seen = self.folders.entry(index).or_default();
                seen.files += 1;
                seen.digest = seen
                    .digest
                    .wrapping_add(file_digest(&plain[at + 1..], object.size));
                if seen.path.is_empty() {
                    seen.path = plain[..at].to_string();
                }
            }
            return;
        }
    }

    fn file_found(&mut self, hash: u64, size: u64) {
        if let Some(index) = self.expected.find(hash) {
            self.mark(index, size);
        }
    }

    fn mark(&mut self, index: usize, size: u64) {
        self.expected.found[index] = true;
        let packed = self.expected.entries[index].1;
        if packed & HAS_SIZE != 0 && (size & SIZE_TAG) != (packed & SIZE_TAG) {
            self.resized.insert(index);
        }
    }
}

/// What a check reads, and how: the database, the store (its objects
/// listed, or read from an S3 Inventory), its requests in flight, and
/// the interrupt that stops it.
#[derive(Clone, Copy)]
pub(crate) struct Sources<'a> {
    pub reader: &'a Reader,
    pub store: &'a dyn Store,
    pub inventory: Option<&'a Inventory>,
    pub jobs: usize,
    pub interrupt: &'a Interrupt,
}

/// Checks the references of `query` against `store` (its objects listed,
/// or read from an S3 `inventory`: one that lags the bucket only makes
/// suspects, which the second look clears), handing every damaged row to
/// `damaged` as it is found. A sharded query (its sections' ranges
/// and shard, as a sharded scan places them) checks the references its
/// shard counts, listing only its ranges.
pub(crate) fn check(
    sources: &Sources<'_>,
    query: &ReferenceQuery,
    progress: &dyn Progress,
    damaged: &mut (dyn FnMut(DamagedRow) + Send),
) -> Result<CheckReport> {
    let Sources {
        reader,
        store,
        inventory,
        jobs,
        interrupt,
    } = *sources;
    let started = Instant::now();
    let mut report = CheckReport {
        store: store.name().to_string(),
        schemas: query.schemas.clone(),
        shard: query.shard,
        ..CheckReport::default()
    };
    let sections = &query.sections;
    let (tx, rx) = crossbeam_channel::bounded::<(usize, Listing)>(LISTING_QUEUE);
    let findings = std::thread::scope(|scope| {
        let lister = scope.spawn(move || {
            // Every found file's size is compared: listed with it.
            crate::judge::list_into(store, inventory, false, sections, interrupt, progress, &tx)
        });
        let read = reader.read_placed(query, &Placing::Check, Gathering::default(), progress);
        let (gathering, tally) = match read {
            Ok(read) => read,
            Err(e) => {
                drop(rx);
                lister.join().expect("lister thread panicked");
                return Err(e);
            }
        };
        report.errors.extend(tally.errors);
        report.warnings.extend(tally.warnings);
        report
            .warnings
            .extend(tally.holder_warnings.into_iter().flatten());
        let mut not_checked = gathering.not_checked;
        not_checked.sort_unstable();
        not_checked.dedup();
        report.references_not_checked = not_checked.len() as u64;
        let mut findings = Findings {
            expected: Expectations::build(gathering.checked),
            resized: HashSet::new(),
            folders: HashMap::new(),
            listed: 0,
        };
        for (index, item) in rx {
            match item {
                Listing::Objects(objects) => {
                    for object in &objects {
                        findings.look_up(&sections[index], object);
                    }
                }
                Listing::Error(e) => report.errors.push(e.to_string()),
            }
        }
        lister.join().expect("lister thread panicked");
        Ok(findings)
    })?;
    if interrupt.requested() {
        return Err(Error::Interrupted("checking the store".to_string()));
    }
    report.references_checked = findings.expected.entries.len() as u64;
    report.objects_listed = findings.listed;
    if !report.errors.is_empty() {
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    }
    let suspects = suspects(findings, store, jobs, &mut report);
    if !suspects.is_empty() && report.errors.is_empty() {
        name_damaged_rows(sources, query, suspects, &mut report, damaged)?;
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Reads the rows once for those that name a suspect, keeping them aside
/// ([`RowSpool`]); looks at each suspect again by the path its rows give
/// ([`confirm`]); then hands `damaged` every kept row whose object is still
/// damaged, with the totals in `report`.
fn name_damaged_rows(
    sources: &Sources<'_>,
    query: &ReferenceQuery,
    suspects: HashMap<u64, u64>,
    report: &mut CheckReport,
    damaged: &mut (dyn FnMut(DamagedRow) + Send),
) -> Result<()> {
    let mut spool = RowSpool::new()?;
    let mut paths: HashMap<u64, String> = HashMap::new();
    let mut failed = None;
    let wanted = |hash: u64| suspects.contains_key(&hash);
    sources
        .reader
        .rows_referencing(query, &wanted, &mut |row: RowReference| {
            let key = crate::keys::store_key(&row.path).into_owned();
            if let Err(e) = spool.push(&row) {
                failed.get_or_insert(e);
            }
            paths.entry(path_hash(&key)).or_insert(key);
        })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let damage = confirm(sources.store, sources.jobs, suspects, paths, report);
    report.objects_damaged = damage.len() as u64;
    if damage.is_empty() || !report.errors.is_empty() {
        return Ok(());
    }
    for row in spool.rows()? {
        let row = row?;
        let Some(what) = damage.get(&path_hash(&crate::keys::store_key(&row.path))) else {
            continue;
        };
        *report.rows_by_problem.entry(what.problem).or_default() += 1;
        *report
            .rows_by_table
            .entry(format!("{}.{}", row.schema, row.table))
            .or_default() += 1;
        report.rows_damaged += 1;
        damaged(DamagedRow {
            schema: row.schema,
            table: row.table,
            key: row.key,
            column: row.column,
            path: row.path,
            problem: what.problem,
            detail: what.detail.clone(),
        });
    }
    Ok(())
}

/// The rows that name a suspect, written aside (one JSON line each, in a
/// temporary file) as the one read of the rows finds them, so that they
/// can be named once the suspects are looked at again without reading the
/// rows a second time, however many there are.
struct RowSpool {
    file: std::io::BufWriter<std::fs::File>,
}

impl RowSpool {
    fn new() -> Result<RowSpool> {
        let file = tempfile::tempfile().map_err(|e| Error::file("damaged rows spool", e))?;
        Ok(RowSpool {
            file: std::io::BufWriter::new(file),
        })
    }

    fn push(&mut self, row: &RowReference) -> Result<()> {
        let io = |e| Error::file("damaged rows spool", e);
        serde_json::to_writer(&mut self.file, row).map_err(|e| io(e.into()))?;
        self.file.write_all(b"\n").map_err(io)
    }

    /// The rows pushed, in order.
    fn rows(self) -> Result<impl Iterator<Item = Result<RowReference>>> {
        let io = |e| Error::file("damaged rows spool", e);
        let mut file = self.file.into_inner().map_err(|e| io(e.into_error()))?;
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        Ok(std::io::BufReader::new(file).lines().map(move |line| {
            let line = line.map_err(io)?;
            serde_json::from_str(&line).map_err(|e| io(e.into()))
        }))
    }
}

/// The objects the listing shows damaged (files missing or of another
/// size, folders missing, empty, without a manifest, or, their manifests
/// read `jobs` at a time, missing a file), by path hash, with what their
/// rows expect of them: suspects, for [`confirm`] to look at again.
fn suspects(
    findings: Findings,
    store: &dyn Store,
    jobs: usize,
    report: &mut CheckReport,
) -> HashMap<u64, u64> {
    let Findings {
        expected,
        resized,
        mut folders,
        ..
    } = findings;
    let mut suspects = HashMap::new();
    let mut to_verify = Vec::new();
    for (index, &(hash, packed)) in expected.entries.iter().enumerate() {
        let suspect = if packed & FOLDER != 0 {
            match folders.remove(&index) {
                // A folder a shard's cut falls inside was listed in part:
                // its digest then differs from its manifest's, and
                // `verify_folder` lists it again whole; one listed without
                // a manifest is a suspect, looked at again whole. (A folder
                // uploaded empty has a manifest that lists no file.)
                Some(seen) if seen.manifest => {
                    to_verify.push((hash, seen));
                    false
                }
                _ => true,
            }
        } else {
            !expected.found[index] || resized.contains(&index)
        };
        if suspect {
            suspects.insert(hash, packed);
        }
    }
    report.folders_verified = to_verify.len() as u64;
    let verdicts = in_parallel(to_verify, jobs, |(hash, seen)| {
        (hash, verify_folder(store, &seen))
    });
    for (hash, verdict) in verdicts {
        match verdict {
            Ok(Some(_)) => {
                suspects.insert(hash, FOLDER);
            }
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }
    suspects
}

/// Runs `work` on each item of `items`, `jobs` (at least
/// [`MIN_MANIFEST_READERS`]) at a time: the store's requests wait on the
/// network, not the CPU.
fn in_parallel<T: Send, R: Send>(
    items: Vec<T>,
    jobs: usize,
    work: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let (queue, taken) = crossbeam_channel::unbounded();
    for item in items {
        queue.send(item).expect("queue open");
    }
    drop(queue);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(MIN_MANIFEST_READERS) {
            let (taken, results, work) = (taken.clone(), &results, &work);
            scope.spawn(move || {
                for item in taken {
                    let result = work(item);
                    results.lock().expect("results").push(result);
                }
            });
        }
    });
    results.into_inner().expect("results")
}

/// Looks at each suspect again, by the path its rows give (`paths`), and
/// returns the damage that remains: an object that arrived while the store
/// was listed (an upload whose row committed during the reference read) is
/// no damage, and a suspect no row names any more was deleted meanwhile.
fn confirm(
    store: &dyn Store,
    jobs: usize,
    mut suspects: HashMap<u64, u64>,
    paths: HashMap<u64, String>,
    report: &mut CheckReport,
) -> HashMap<u64, Damage> {
    let again: Vec<(u64, String, u64)> = paths
        .into_iter()
        .filter_map(|(hash, key)| suspects.remove(&hash).map(|s| (hash, key, s)))
        .collect();
    let mut damage = HashMap::new();
    for (hash, verdict) in in_parallel(again, jobs, |(hash, key, packed)| {
        (hash, look_again(store, &key, packed))
    }) {
        match verdict {
            Ok(Some(found)) => {
                damage.insert(hash, found);
            }
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }
    damage
}

/// The damage of the object at `key` as the store shows it now; `packed`
/// is what its rows expect of it.
fn look_again(
    store: &dyn Store,
    key: &str,
    packed: u64,
) -> std::result::Result<Option<Damage>, String> {
    let wrong = |problem: Problem, detail: String| Ok(Some(Damage { problem, detail }));
    if packed & FOLDER == 0 {
        return match store.head(&[key.to_string()]).pop() {
            Some(Ok(None)) => wrong(Problem::Missing, "no object at the path".into()),
            Some(Ok(Some(now)))
                if packed & HAS_SIZE != 0 && (now.size & SIZE_TAG) != (packed & SIZE_TAG) =>
            {
                wrong(
                    Problem::SizeDiffers,
                    format!(
                        "the store holds {} bytes, not the size the row records",
                        now.size
                    ),
                )
            }
            Some(Ok(Some(_))) => Ok(None),
            Some(Err(e)) => Err(format!("{key}: {e}")),
            None => Err(format!("{key}: the store gave no answer")),
        };
    }
    let files = folder_files(store, key)?;
    let mut seen = FolderSeen {
        path: key.to_string(),
        files: files.len() as u64,
        digest: files.iter().fold(0u64, |sum, (relative, size)| {
            sum.wrapping_add(file_digest(relative, *size))
        }),
        manifest: false,
    };
    let manifest = format!("{key}{MANIFEST_SUFFIX}");
    seen.manifest = match store.head(std::slice::from_ref(&manifest)).pop() {
        Some(Ok(found)) => found.is_some(),
        Some(Err(e)) => return Err(format!("{manifest}: {e}")),
        None => return Err(format!("{manifest}: the store gave no answer")),
    };
    match (seen.files, seen.manifest) {
        (0, false) => wrong(
            Problem::Missing,
            "no file under the folder, and no manifest".into(),
        ),
        (files, false) => wrong(
            Problem::ManifestMissing,
            format!("{files} files, but no {MANIFEST_SUFFIX}"),
        ),
        _ => verify_folder(store, &seen),
    }
}

/// Every file under folder `path`, by its path inside it, with its size.
fn folder_files(
    store: &dyn Store,
    path: &str,
) -> std::result::Result<HashMap<String, u64>, String> {
    let prefix = format!("{path}/");
    let files = Mutex::new(HashMap::new());
    let failed = Mutex::new(None);
    store.list(&prefix, &|item| {
        match item {
            Listing::Objects(objects) => {
                let mut files = files.lock().expect("files");
                for object in objects {
                    if let Some(relative) = object.key.strip_prefix(&prefix) {
                        files.insert(relative.to_string(), object.size);
                    }
                }
            }
            Listing::Error(e) => {
                failed.lock().expect("failed").get_or_insert(e.to_string());
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    });
    match failed.into_inner().expect("failed") {
        Some(e) => Err(format!("listing {prefix}: {e}")),
        None => Ok(files.into_inner().expect("files")),
    }
}

/// The files a DataJoint folder manifest lists.
#[derive(Deserialize)]
struct Manifest {
    files: Vec<ManifestFile>,
}

#[derive(Deserialize)]
struct ManifestFile {
    path: String,
    size: u64,
}

/// Whether a folder object holds every file its manifest lists, with its
/// size: `None` when it does; an error when the store cannot be read.
fn verify_folder(
    store: &dyn Store,
    seen: &FolderSeen,
) -> std::result::Result<Option<Damage>, String> {
    let manifest_key = format!("{}{MANIFEST_SUFFIX}", seen.path);
    let incomplete = |detail: String| {
        Ok(Some(Damage {
            problem: Problem::Incomplete,
            detail,
        }))
    };
    let body = match store.get(&manifest_key) {
        Ok(Some(body)) => body,
        Ok(None) => {
            return Ok(Some(Damage {
                problem: Problem::ManifestMissing,
                detail: format!("{} files, but no {MANIFEST_SUFFIX}", seen.files),
            }))
        }
        Err(e) => return Err(format!("reading {manifest_key}: {e}")),
    };
    let manifest: Manifest = match serde_json::from_slice(&body) {
        Ok(manifest) => manifest,
        Err(e) => {
            return incomplete(format!(
                "{manifest_key} is not a manifest DataJoint writes: {e}"
            ))
        }
    };
    let digest = manifest.files.iter().fold(0u64, |sum, f| {
        sum.wrapping_add(file_digest(&f.path, f.size))
    });
    if manifest.files.len() as u64 == seen.files && digest == seen.digest {
        return Ok(None);
    }
    if seen.files == 0 {
        return Ok(Some(Damage {
            problem: Problem::Empty,
            detail: format!(
                "none of the {} files its manifest lists is there",
                manifest.files.len()
            ),
        }));
    }
    // The folder holds other files than its manifest lists: list it to
    // tell which it misses (files it holds beside them are no damage).
    let held = folder_files(store, &seen.path)?;
    let mut missing = Vec::new();
    let mut resized = Vec::new();
    for file in &manifest.files {
        match held.get(&file.path) {
            None => missing.push(file.path.as_str()),
            Some(&size) if size != file.size => resized.push(file.path.as_str()),
            Some(_) => {}
        }
    }
    if missing.is_empty() && resized.is_empty() {
        return Ok(None);
    }
    let named = |files: &[&str]| {
        let mut shown = files[..files.len().min(FILES_NAMED)].join(", ");
        if files.len() > FILES_NAMED {
            shown.push_str(&format!(" and {} more", files.len() - FILES_NAMED));
        }
        shown
    };
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!(
            "{} of the {} files its manifest lists missing ({})",
            missing.len(),
            manifest.files.len(),
            named(&missing)
        ));
    }
    if !resized.is_empty() {
        parts.push(format!(
            "{} with another size than the manifest's ({})",
            resized.len(),
            named(&resized)
        ));
    }
    incomplete(parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[test]
    fn a_folders_digest_is_the_same_in_any_order_and_tells_files_apart() {
        let files = [("0/0", 16u64), ("0/1", 8), (".zarray", 15)];
        let sum = |files: &[(&str, u64)]| {
            files
                .iter()
                .fold(0u64, |s, (p, n)| s.wrapping_add(file_digest(p, *n)))
        };
        let mut reversed = files;
        reversed.reverse();
        assert_eq!(sum(&files), sum(&reversed));
        assert_ne!(sum(&files), sum(&files[..2]));
        assert_ne!(
            sum(&files),
            sum(&[("0/0", 16), ("0/1", 9), (".zarray", 15)])
        );
        assert_ne!(
            sum(&files),
            sum(&[("0/0", 16), ("0/2", 8), (".zarray", 15)])
        );
    }

    /// A folder object as DataJoint writes it: its files, then its manifest.
    fn put_folder(store: &MemoryStore, path: &str, files: &[(&str, usize)]) {
        for (name, size) in files {
            store
                .put(&format!("{path}/{name}"), vec![0; *size])
                .unwrap();
        }
        let listed: Vec<String> = files
            .iter()
            .map(|(name, size)| format!(r#"{{"path": "{name}", "size": {size}}}"#))
            .collect();
        let manifest = format!(
            r#"{{"files": [{}], "item_count": {}}}"#,
            listed.join(", "),
            files.len()
        );
        store
            .put(&format!("{path}{MANIFEST_SUFFIX}"), manifest.into_bytes())
            .unwrap();
    }

    #[test]
    fn a_second_look_clears_what_arrived_and_names_what_is_still_wrong() {
        let store = MemoryStore::new("main");
        let file = pack(Expect {
            size: Some(4),
            folder: false,
            listed: true,
        });
        let problem = |key: &str, packed: u64| {
            look_again(&store, key, packed)
                .unwrap()
                .map(|damage| damage.problem)
        };
        assert_eq!(problem("_hash/a/x", file), Some(Problem::Missing));
        store.put("_hash/a/x", vec![0; 4]).unwrap();
        assert_eq!(problem("_hash/a/x", file), None, "it arrived meanwhile");
        store.put("_hash/a/x", vec![0; 5]).unwrap();
        assert_eq!(problem("_hash/a/x", file), Some(Problem::SizeDiffers));

        let folder = "_schema/a/t/id=1/f_x";
        assert_eq!(problem(folder, FOLDER), Some(Problem::Missing));
        put_folder(&store, folder, &[("0/0", 16), ("0/1", 8), (".zarray", 3)]);
        assert_eq!(problem(folder, FOLDER), None);
        store.put(&format!("{folder}/extra"), vec![1]).unwrap();
        assert_eq!(
            problem(folder, FOLDER),
            None,
            "a file beside them is no damage"
        );
        store.put(&format!("{folder}/0/1"), vec![0; 9]).unwrap();
        let damage = look_again(&store, folder, FOLDER).unwrap().unwrap();
        assert_eq!(damage.problem, Problem::Incomplete);
        assert!(damage.detail.contains("0/1"), "{}", damage.detail);
        store.delete("_schema/a/", &[format!("{folder}{MANIFEST_SUFFIX}")]);
        assert_eq!(problem(folder, FOLDER), Some(Problem::ManifestMissing));

        let empty = "_schema/a/t/id=2/f_y";
        put_folder(&store, empty, &[("0", 1)]);
        store.delete("_schema/a/", &[format!("{empty}/0")]);
        assert_eq!(problem(empty, FOLDER), Some(Problem::Empty));
        let uploaded_empty = "_schema/a/t/id=3/f_z";
        put_folder(&store, uploaded_empty, &[]);
        assert_eq!(
            problem(uploaded_empty, FOLDER),
            None,
            "its manifest lists nothing"
        );
    }

    #[test]
    fn a_read_holds_the_distinct_paths_not_the_rows() {
        let mut gathering = Gathering::default();
        let row = |hash: u64, size: u64| Placed {
            holder: 0,
            kind: RefKind::Hash,
            hash,
            counted: true,
            expect: Expect {
                size: Some(size),
                folder: false,
                listed: true,
            },
        };
        // A million rows over ten objects; object 3's rows disagree on its
        // size only after the first fold.
        for n in 0..1_000_000u64 {
            let size = if n > 900_000 && n % 10 == 3 { 6 } else { 5 };
            gathering.keep(&mut vec![row(n % 10, size)]).unwrap();
            assert!(gathering.checked.len() <= 2 * FOLD_FROM);
        }
        let built = Expectations::build(gathering.checked);
        assert_eq!(built.entries.len(), 10);
        let of = |hash| built.entries[built.find(hash).unwrap()].1;
        assert_eq!(of(4) & HAS_SIZE, HAS_SIZE);
        assert_eq!(
            of(3) & HAS_SIZE,
            0,
            "a size the rows disagree on is not judged"
        );
    }

    #[test]
    fn rows_of_one_path_expect_a_folder_if_any_does_and_a_size_only_if_all_agree() {
        let expect = |size, folder| {
            pack(Expect {
                size,
                folder,
                listed: true,
            })
        };
        let built = Expectations::build(vec![
            (7, expect(Some(10), false)),
            (7, expect(Some(10), false)),
            (3, expect(Some(5), false)),
            (3, expect(Some(6), false)),
            (9, expect(None, false)),
            (9, expect(None, true)),
        ]);
        assert_eq!(built.entries.len(), 3);
        let of = |hash| built.entries[built.find(hash).unwrap()].1;
        assert_eq!(of(7), expect(Some(10), false));
        assert_eq!(of(3) & HAS_SIZE, 0, "disagreeing sizes are not judged");
        assert!(built.is_folder(built.find(9).unwrap()));
        assert_eq!(built.find(4), None);
    }
}
