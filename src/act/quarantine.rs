//! Quarantine: orphans moved aside instead of deleted, kept for a grace
//! period, then purged after a fresh re-check, or put back.
//!
//! A run lives entirely inside the store, under the trash prefix (default
//! `_trash`, which must not overlap any section):
//!
//! ```text
//! _trash/<run>/djgc-manifest/part-000000.jsonl   what the run moves, 100,000 entries a part
//! _trash/<run>/djgc-run.json                     the header: store, schemas, time, totals
//! _trash/<run>/<original key>                    the moved objects
//! ```
//!
//! Crash safety comes from the order of writes. The manifest parts are
//! written first, then the header, and only then is anything moved; a move
//! itself never leaves an object under neither name (see
//! [`crate::store::Store::rename`]). So every run that moved anything has a
//! complete manifest, and `restore` or `purge` can always finish it: an
//! entry not in the trash was never moved (or is back already), an entry in
//! both places is a move cut short. A run without a header moved nothing.
//!
//! DataJoint reading a quarantined path finds it missing, as after a delete;
//! a writer that reuses a quarantined hash uploads it again, and `purge`
//! then finds the original in place and drops the trash copy.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::StoreSpec;
use crate::error::{Error, Result};
use crate::judge::plan::{mtime_ns, Plan};
use crate::keys::key_is_contained;
use crate::refs::References;
use crate::store::{stat, Deleted, Listing, Moved, Store, StoreError};

/// Entries per manifest part: a part is read and written whole, so this
/// bounds memory (about 12 MB a part) whatever the run's size.
pub const MANIFEST_PART_ENTRIES: usize = 100_000;
/// Moves or deletes per store call while restoring or purging.
const BATCH: usize = 1000;

const FORMAT: &str = "djgc-quarantine/1";
const HEADER_NAME: &str = "djgc-run.json";
const MANIFEST_DIR: &str = "djgc-manifest/";

/// A quarantine run's header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunHeader {
    pub format: String,
    pub run: String,
    /// When the run was made, in seconds since 1970: the grace period
    /// counts from here.
    pub created: u64,
    pub store: String,
    pub schemas: Vec<String>,
    pub parts: usize,
    pub entries: u64,
    pub bytes: u64,
}

/// One quarantined object: its original key, size and modification time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub mtime_ns: u64,
}

/// A store's trash: where quarantine runs live.
#[derive(Clone, Debug)]
pub struct Trash {
    /// Without surrounding slashes.
    prefix: String,
    /// The store's layout, from the config: a run's objects may go back
    /// (or be purged) only inside the sections of the run's schemas.
    spec: StoreSpec,
}

impl Trash {
    /// The trash at `prefix` of `spec`'s store; refused when it overlaps a
    /// section prefix, `filepath_prefix`, or (in the legacy root layout) a
    /// schema being collected, since a section listing would then see the
    /// trash, or the trash swallow live objects.
    pub fn new(prefix: &str, spec: &StoreSpec, schemas: &[String]) -> Result<Trash> {
        let prefix = prefix.trim_matches('/');
        if prefix.is_empty() || !key_is_contained("", prefix) {
            return Err(Error::Usage(format!(
                "`trash_prefix` {prefix:?} is not a plain store path such as _trash"
            )));
        }
        let trash = format!("{prefix}/");
        let nested = |other: &str| {
            let other = format!("{}/", other.trim_matches('/'));
            trash.starts_with(&other) || other.starts_with(&trash)
        };
        let mut clashes: Vec<String> = [
            ("hash_prefix", Some(spec.hash_prefix.as_str())),
            ("schema_prefix", Some(spec.schema_prefix.as_str())),
            ("filepath_prefix", spec.filepath_prefix.as_deref()),
        ]
        .into_iter()
        .filter_map(|(name, p)| Some((name, p?)))
        .filter(|(_, p)| !p.is_empty() && nested(p))
        .map(|(name, p)| format!("{name} {p:?}"))
        .collect();
        let sections = crate::layout::sections(spec, schemas)?;
        clashes.extend(
            sections
                .iter()
                .filter(|s| trash.starts_with(&s.prefix) || s.prefix.starts_with(&trash))
                .map(|s| format!("section {}", s.label())),
        );
        if !clashes.is_empty() {
            return Err(Error::Usage(format!(
                "store {:?}: trash prefix {prefix:?} overlaps {}; choose another `trash_prefix`",
                spec.name,
                clashes.join(", ")
            )));
        }
        Ok(Trash {
            prefix: prefix.to_string(),
            spec: spec.clone(),
        })
    }

    /// The entries of a run's manifest part that lie in the sections of
    /// the run's schemas (derived from the config, not from the trash);
    /// each other entry is refused, reported to `failed` and counted in
    /// the second value. Anyone who can write the trash can write a
    /// manifest: this keeps restore and purge to what a quarantine moves.
    fn own_entries(
        &self,
        header: &RunHeader,
        entries: Vec<Entry>,
        failed: &mut dyn FnMut(String),
    ) -> Result<(Vec<Entry>, u64)> {
        let sections = crate::layout::sections(&self.spec, &header.schemas)
            .map_err(|e| Error::Refused(format!("quarantine run {}: {e}", header.run)))?;
        let (own, foreign): (Vec<Entry>, Vec<Entry>) = entries
            .into_iter()
            .partition(|e| sections.iter().any(|s| s.owns(&e.key)));
        for entry in &foreign {
            failed(format!(
                "{}: refused: quarantine run {} lists it, but it is not a key of the \
                 sections of {}",
                entry.key,
                header.run,
                header.schemas.join(", ")
            ));
        }
        Ok((own, foreign.len() as u64))
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key prefix of one run, ending in `/`.
    pub fn run_prefix(&self, run: &str) -> String {
        format!("{}/{run}/", self.prefix)
    }

    fn header_key(&self, run: &str) -> String {
        format!("{}{HEADER_NAME}", self.run_prefix(run))
    }

    fn part_key(&self, run: &str, part: usize) -> String {
        format!("{}{MANIFEST_DIR}part-{part:06}.jsonl", self.run_prefix(run))
    }

    /// Writes the manifest of quarantining `plan`'s orphans, then the
    /// header; after this returns, moving may begin.
    pub fn begin(&self, store: &dyn Store, plan: &Plan, now: SystemTime) -> Result<RunHeader> {
        let run = new_run_id(now);
        let store_error = |source| Error::Store {
            store: store.name().to_string(),
            source,
        };
        let mut part = Vec::new();
        let (mut parts, mut entries, mut bytes) = (0, 0u64, 0u64);
        let flush = |part: &mut Vec<u8>, parts: &mut usize| -> Result<()> {
            store
                .put(&self.part_key(&run, *parts), std::mem::take(part))
                .map_err(store_error)?;
            *parts += 1;
            Ok(())
        };
        for orphan in plan.orphans()? {
            let orphan = orphan?;
            let entry = Entry {
                mtime_ns: mtime_ns(orphan.modified),
                size: orphan.size,
                key: orphan.key,
            };
            serde_json::to_writer(&mut part, &entry).expect("an entry serialises");
            part.push(b'\n');
            entries += 1;
            bytes += entry.size;
            if entries % MANIFEST_PART_ENTRIES as u64 == 0 {
                flush(&mut part, &mut parts)?;
            }
        }
        if !part.is_empty() {
            flush(&mut part, &mut parts)?;
        }
        let header = RunHeader {
            format: FORMAT.to_string(),
            run: run.clone(),
            created: now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs(),
            store: store.name().to_string(),
            schemas: plan.report.schemas.clone(),
            parts,
            entries,
            bytes,
        };
        let body = serde_json::to_vec_pretty(&header).expect("a header serialises");
        store
            .put(&self.header_key(&run), body)
            .map_err(store_error)?;
        Ok(header)
    }

    /// The header of `run`, or `None` when the run has none.
    pub fn header(&self, store: &dyn Store, run: &str) -> Result<Option<RunHeader>> {
        let key = self.header_key(run);
        let Some(body) = store.get(&key).map_err(|source| Error::Store {
            store: store.name().to_string(),
            source,
        })?
        else {
            return Ok(None);
        };
        let header: RunHeader = serde_json::from_slice(&body)
            .map_err(|e| Error::Refused(format!("{key} is not a djgc quarantine header: {e}")))?;
        if header.format != FORMAT || header.run != run {
            return Err(Error::Refused(format!(
                "{key} is not a header of run {run} in format {FORMAT}"
            )));
        }
        Ok(Some(header))
    }

    /// The entries of one manifest part.
    fn part(&self, store: &dyn Store, header: &RunHeader, part: usize) -> Result<Vec<Entry>> {
        let key = self.part_key(&header.run, part);
        let body = store
            .get(&key)
            .map_err(|source| Error::Store {
                store: store.name().to_string(),
                source,
            })?
            .ok_or_else(|| Error::Refused(format!("manifest part {key} is missing")))?;
        body.split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| {
                serde_json::from_slice(line)
                    .map_err(|e| Error::Refused(format!("manifest part {key}: {e}")))
            })
            .collect()
    }

    /// The folders under the trash prefix, sorted (oldest first: run ids
    /// start with their time), each still to be checked as a run id
    /// ([`check_run_id`]). Lists the whole trash once.
    pub fn runs(&self, store: &dyn Store) -> Result<Vec<String>> {
        let prefix = format!("{}/", self.prefix);
        let runs = Mutex::new(BTreeSet::new());
        let failure = Mutex::new(None);
        store.list(&prefix, &|item| match item {
            Listing::Objects(objects) => {
                let mut runs = runs.lock().expect("runs lock");
                for object in objects {
                    if let Some((run, _)) = object.key[prefix.len()..].split_once('/') {
                        if !runs.contains(run) {
                            runs.insert(run.to_string());
                        }
                    }
                }
                ControlFlow::Continue(())
            }
            Listing::Error(e) => {
                *failure.lock().expect("failure lock") = Some(e);
                ControlFlow::Break(())
            }
        });
        if let Some(source) = failure.into_inner().expect("failure lock") {
            return Err(Error::Store {
                store: store.name().to_string(),
                source,
            });
        }
        Ok(runs.into_inner().expect("runs lock").into_iter().collect())
    }

    /// Removes a finished run's manifest, the header last, and with it the
    /// run's folder.
    fn finish(&self, store: &dyn Store, header: &RunHeader) -> Result<()> {
        let prefix = format!("{}/", self.prefix);
        let mut keys: Vec<String> = (0..header.parts)
            .map(|part| self.part_key(&header.run, part))
            .collect();
        keys.push(self.header_key(&header.run));
        for key in keys {
            if let Some(Err(source)) = store.delete(&prefix, &[key]).pop() {
                return Err(Error::Store {
                    store: store.name().to_string(),
                    source,
                });
            }
        }
        Ok(())
    }
}

/// A new run id: the UTC time, sortable, and a random tail, e.g.
/// `20261126T073729Z-4f1c2a`.
pub fn new_run_id(now: SystemTime) -> String {
    let stamp: String = humantime::format_rfc3339_seconds(now)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let tail = xxhash_rust::xxh3::xxh3_64(format!("{nanos}/{}", std::process::id()).as_bytes());
    format!("{stamp}-{:06x}", tail & 0xff_ffff)
}

/// Checks that `run` names a run (one plain path segment).
pub fn check_run_id(run: &str) -> Result<()> {
    if run.is_empty() || run.contains('/') || !key_is_contained("", run) {
        return Err(Error::Usage(format!(
            "{run:?} is not a quarantine run id such as 20261126T073729Z-4f1c2a"
        )));
    }
    Ok(())
}

/// What putting quarantined objects back did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RestoreOutcome {
    /// Moved back to their original keys.
    pub restored: u64,
    /// Already back in place (the original is there with the recorded size):
    /// the trash copy was dropped.
    pub already_in_place: u64,
    /// In neither place as far as the trash can tell: never moved (a run cut
    /// short) or restored before.
    pub not_in_trash: u64,
    /// A different object sits at the original key: left in the trash.
    pub conflicts: u64,
    pub errors: u64,
}

impl RestoreOutcome {
    fn add(&mut self, other: &RestoreOutcome) {
        self.restored += other.restored;
        self.already_in_place += other.already_in_place;
        self.not_in_trash += other.not_in_trash;
        self.conflicts += other.conflicts;
        self.errors += other.errors;
    }

    fn clean(&self) -> bool {
        self.conflicts == 0 && self.errors == 0
    }
}

/// Moves `entries` of a run back to their original keys, never replacing
/// anything; `failed` hears of every conflict and error.
pub(crate) fn put_back(
    store: &dyn Store,
    run_prefix: &str,
    entries: &[Entry],
    failed: &mut dyn FnMut(String),
) -> RestoreOutcome {
    let mut outcome = RestoreOutcome::default();
    for chunk in entries.chunks(BATCH) {
        let moves: Vec<(String, String)> = chunk
            .iter()
            .map(|e| (format!("{run_prefix}{}", e.key), e.key.clone()))
            .collect();
        for ((entry, (trash_key, _)), result) in chunk
            .iter()
            .zip(&moves)
            .zip(store.rename(run_prefix, &moves))
        {
            match result {
                Ok(Moved::Done) => outcome.restored += 1,
                Ok(Moved::SourceMissing) => outcome.not_in_trash += 1,
                // Both names checked: a store may report the occupied target
                // before it looks at the source.
                Ok(Moved::TargetExists) => {
                    match (stat(store, trash_key), stat(store, &entry.key)) {
                        (Ok(None), _) => outcome.not_in_trash += 1,
                        (Ok(Some(_)), Ok(Some(original))) if original.size == entry.size => {
                            match store
                                .delete(run_prefix, std::slice::from_ref(trash_key))
                                .pop()
                            {
                                Some(Err(e)) => {
                                    outcome.errors += 1;
                                    failed(e.to_string());
                                }
                                _ => outcome.already_in_place += 1,
                            }
                        }
                        (Ok(Some(_)), Ok(_)) => {
                            outcome.conflicts += 1;
                            failed(format!(
                                "{}: another object of a different size is at the original key; \
                             the quarantined copy stays at {trash_key}",
                                entry.key
                            ));
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            outcome.errors += 1;
                            failed(e.to_string());
                        }
                    }
                }
                Err(e) => {
                    outcome.errors += 1;
                    failed(e.to_string());
                }
            }
        }
    }
    outcome
}

/// Puts every object of quarantine run `run` back where it was, then removes
/// the run's manifest; safe to run again after an interruption. A run with
/// conflicts or errors keeps its manifest, so it can be finished later.
pub(crate) fn restore(
    store: &dyn Store,
    trash: &Trash,
    run: &str,
    failed: &mut dyn FnMut(String),
) -> Result<RestoreOutcome> {
    check_run_id(run)?;
    let header = trash.header(store, run)?.ok_or_else(|| {
        Error::Usage(format!(
            "store {:?} has no quarantine run {run} under {}/",
            store.name(),
            trash.prefix()
        ))
    })?;
    let run_prefix = trash.run_prefix(run);
    let mut outcome = RestoreOutcome::default();
    for part in 0..header.parts {
        // A part that cannot be read is reported; the others are put back.
        let entries = match trash.part(store, &header, part) {
            Ok(entries) => entries,
            Err(e) => {
                outcome.errors += 1;
                failed(e.to_string());
                continue;
            }
        };
        let (entries, refused) = trash.own_entries(&header, entries, failed)?;
        outcome.errors += refused;
        outcome.add(&put_back(store, &run_prefix, &entries, failed));
    }
    if outcome.clean() {
        trash.finish(store, &header)?;
    }
    Ok(outcome)
}

/// What a purge found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PurgeReport {
    /// Runs past the grace period, purged (or, in a dry run, to purge).
    pub runs: Vec<String>,
    /// Runs still within the grace period.
    pub runs_kept: u64,
    /// Reads of the database's references the purge made (one serves
    /// every run of the same schemas while it is fresh).
    #[serde(default)]
    pub database_reads: u64,
    /// Quarantined objects deleted for good (or to delete).
    pub purged: u64,
    pub bytes_freed: u64,
    /// Quarantined objects referenced again, so put back (or to put back).
    pub rescued: RestoreOutcome,
    /// Objects whose deletion failed.
    pub errors: u64,
    pub dry_run: bool,
}

/// Purges the runs older than `older_than`: each entry referenced again by
/// now (per `references`, asked for each batch of a run's entries, which
/// reads afresh or hands back a read still fresh enough) is put back,
/// every other is deleted, then the run's manifest goes. With `dry_run`,
/// only counts. Runs without a header (cut short before moving anything)
/// have their manifest parts removed once past the grace period.
pub(crate) fn purge(
    store: &dyn Store,
    trash: &Trash,
    older_than: Duration,
    now: SystemTime,
    references: &mut dyn FnMut(&[String]) -> Result<Arc<References>>,
    dry_run: bool,
    failed: &mut dyn FnMut(String),
) -> Result<PurgeReport> {
    let cutoff = now
        .checked_sub(older_than)
        .unwrap_or(UNIX_EPOCH)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut purge = Purge {
        store,
        trash,
        cutoff,
        references,
        failed,
        report: PurgeReport {
            dry_run,
            ..Default::default()
        },
    };
    // Each run on its own: a run that cannot be purged (anyone who can write
    // the trash can break one) is reported and left, and the others go on.
    for run in trash.runs(store)? {
        if let Err(e) = check_run_id(&run).and_then(|()| purge.run(&run)) {
            purge.report.errors += 1;
            (purge.failed)(format!("quarantine run {run:?} left in the trash: {e}"));
            // A signal: the runs not yet begun are left as they are.
            if matches!(e, Error::Interrupted(_)) {
                break;
            }
        }
    }
    Ok(purge.report)
}

/// A purge under way: what the purge of each run needs, and the report
/// the runs add to.
struct Purge<'a> {
    store: &'a dyn Store,
    trash: &'a Trash,
    /// Runs created after this (seconds since the epoch) are kept.
    cutoff: u64,
    references: &'a mut dyn FnMut(&[String]) -> Result<Arc<References>>,
    failed: &'a mut dyn FnMut(String),
    report: PurgeReport,
}

impl Purge<'_> {
    /// Purges one run of the trash (see [`purge`]).
    fn run(&mut self, run: &str) -> Result<()> {
        let (store, trash, dry_run) = (self.store, self.trash, self.report.dry_run);
        let Some(header) = trash.header(store, run)? else {
            return purge_headerless(store, trash, run, self.cutoff, dry_run, &mut self.report);
        };
        if header.created > self.cutoff {
            self.report.runs_kept += 1;
            return Ok(());
        }
        if header.store != store.name() {
            return Err(Error::Refused(format!(
                "it was made for store {:?}, not {:?}",
                header.store,
                store.name()
            )));
        }
        let run_prefix = trash.run_prefix(run);
        let failures_before = failures(&self.report);
        for part in 0..header.parts {
            let (entries, refused) =
                trash.own_entries(&header, trash.part(store, &header, part)?, self.failed)?;
            self.report.errors += refused;
            // Each batch is judged by a read fresh enough for it (the
            // reader hands back the newest while it is, else reads again).
            for batch in entries.chunks(BATCH) {
                let live = (self.references)(&header.schemas)?;
                let report = &mut self.report;
                let (rescued, doomed): (Vec<&Entry>, Vec<&Entry>) =
                    batch.iter().partition(|e| live.covers(&e.key));
                if dry_run {
                    report.rescued.restored += rescued.len() as u64;
                    report.purged += doomed.len() as u64;
                    report.bytes_freed += doomed.iter().map(|e| e.size).sum::<u64>();
                    continue;
                }
                let rescued: Vec<Entry> = rescued.into_iter().cloned().collect();
                report
                    .rescued
                    .add(&put_back(store, &run_prefix, &rescued, self.failed));
                let keys: Vec<String> = doomed
                    .iter()
                    .map(|e| format!("{run_prefix}{}", e.key))
                    .collect();
                for ((entry, key), result) in doomed
                    .iter()
                    .zip(&keys)
                    .zip(store.delete(&run_prefix, &keys))
                {
                    match result {
                        Ok(Deleted::Removed) => {
                            report.purged += 1;
                            report.bytes_freed += entry.size;
                        }
                        Ok(Deleted::Missing) => {}
                        Err(e) => {
                            report.errors += 1;
                            (self.failed)(format!("{key}: {e}"));
                        }
                    }
                }
            }
        }
        self.report.runs.push(run.to_string());
        if !dry_run && failures(&self.report) == failures_before {
            trash.finish(store, &header)?;
        }
        Ok(())
    }
}

/// Everything that keeps a run's manifest in place for a later purge.
fn failures(report: &PurgeReport) -> u64 {
    report.errors + report.rescued.errors + report.rescued.conflicts
}

/// A run directory without a header: a quarantine cut short before it moved
/// anything, so it holds manifest parts only. Removed once old enough (by
/// the time in its id); anything else in it is left alone and reported.
fn purge_headerless(
    store: &dyn Store,
    trash: &Trash,
    run: &str,
    cutoff: u64,
    dry_run: bool,
    report: &mut PurgeReport,
) -> Result<()> {
    let created = run_time(run);
    if created.is_none_or(|t| t > cutoff) {
        report.runs_kept += 1;
        return Ok(());
    }
    let prefix = trash.run_prefix(run);
    let keys = crate::store::collect_keys(store, &prefix).map_err(|source| Error::Store {
        store: store.name().to_string(),
        source,
    })?;
    let manifest = format!("{prefix}{MANIFEST_DIR}");
    if let Some(other) = keys.iter().find(|k| !k.starts_with(&manifest)) {
        return Err(Error::Refused(format!(
            "quarantine run {run} has no header but holds {other}; inspect it by hand"
        )));
    }
    if !dry_run {
        for outcome in store.delete(&format!("{}/", trash.prefix()), &keys) {
            outcome.map_err(|source: StoreError| Error::Store {
                store: store.name().to_string(),
                source,
            })?;
        }
    }
    report.runs.push(run.to_string());
    Ok(())
}

/// The creation time (seconds since 1970) encoded in a run id.
fn run_time(run: &str) -> Option<u64> {
    let stamp = run.get(..16).filter(|s| s.is_ascii())?;
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &stamp[0..4],
        &stamp[4..6],
        &stamp[6..8],
        &stamp[9..11],
        &stamp[11..13],
        &stamp[13..15]
    );
    let time = humantime::parse_rfc3339(&text).ok()?;
    Some(time.duration_since(UNIX_EPOCH).ok()?.as_secs())
}
