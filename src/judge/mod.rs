//! The scan pipeline: references, listing and judging, producing a [`Plan`].
//!
//! ```text
//!  database ──(tables read concurrently)──► reference sets ─┐
//!                                                            ├─► judge ─► orphan spool
//!  store ──(sections walked in parallel)──► bounded queue ──┘
//! ```
//!
//! Judging (probing the reference sets) runs on `jobs` threads; the figures,
//! the spool and the messages are kept by one. A store that lists by name
//! (a file store: [`Store::list_sections_by_name`]) leaves sizes and times
//! unread; the judging threads read them only for the objects no reference
//! covers ([`stat_candidates`]), and an object whose time was never read
//! looks too young to be an orphan.
//!
//! The listing starts at once, beside the reference scan, and fills a bounded
//! queue; the judge takes nothing from it until the reference sets are
//! complete (an object judged against a partial set could look orphaned), so
//! memory stays bounded by the queue whatever the store's size. Every listing
//! or reference problem is recorded in the plan, and a plan with problems is
//! never executed.
//!
//! A sharded run ([`crate::layout::shard`]) first places its cuts, then lists and
//! holds references for its key ranges only; a run from an S3 Inventory
//! ([`crate::judge::inventory`]) takes the inventory's rows in place of the listing.

pub mod inventory;
pub mod plan;
pub mod planfile;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::config::StoreSpec;
use crate::error::Result;
use crate::interrupt::Interrupt;
use crate::judge::inventory::Inventory;
use crate::judge::plan::{OrphanSpool, Plan};
use crate::layout::shard::{self, Shard, ShardCuts};
use crate::layout::{self, file_name, is_content_hash_name, Section, SectionKind};
use crate::progress::Progress;
use crate::refs::codec::RefKind;
use crate::refs::refset::{path_hash, RefSet};
use crate::refs::snapshot::Snapshot;
use crate::refs::{Reader, ReferenceQuery, References};
use crate::report::{InventoryReport, Report, SectionStats, ShardReport, SnapshotUse};
use crate::store::{KeyRange, Listing, ObjectMeta, Store};

/// Listing batches that may wait for the judge (each up to 1,024 objects).
const LISTING_QUEUE: usize = 256;
/// Scan errors kept verbatim; beyond this they are only counted.
const SCAN_ERRORS_SHOWN: usize = 100;

/// What to scan and how.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    pub schemas: Vec<String>,
    /// Objects modified after this instant are never orphans in this run.
    pub cutoff: SystemTime,
    /// Threads for listing; connections for the database.
    pub jobs: usize,
    /// Extra codec names whose columns count as schema-addressed.
    pub schema_codecs: Vec<String>,
    /// The share of the store this run judges (`None`: all of it).
    pub shard: Option<Shard>,
    /// Read the store's objects from this S3 Inventory instead of listing.
    pub inventory: Option<Arc<Inventory>>,
    /// Once raised, listing stops at its next page and the plan is blocked.
    pub interrupt: Interrupt,
}

impl ScanOptions {
    /// Objects modified after this are never orphans in this run: the
    /// age cutoff, or the time an inventory was taken if that is earlier.
    pub fn cutoff(&self) -> SystemTime {
        match &self.inventory {
            Some(inventory) => self.cutoff.min(inventory.created),
            None => self.cutoff,
        }
    }
}

/// A listed batch as the judging threads hand it on: its objects with
/// their verdicts (`None` for a key outside the section), or a listing error.
enum Judged {
    Objects(usize, Vec<ObjectMeta>, Vec<Option<Verdict>>),
    Error(crate::store::StoreError),
}

/// The verdict on one listed object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not a stored item by dj.gc's rules (a non-hash name in a hash section).
    Ignored,
    Covered,
    /// Unreferenced but too recent to judge.
    Young,
    Orphan,
}

/// Judges listed objects against complete reference sets.
pub struct Judge<'a> {
    pub references: &'a References,
    pub cutoff: SystemTime,
}

impl Judge<'_> {
    /// The verdicts on a listed batch of `section`'s objects, in order:
    /// `None` for a key that is not the section's.
    pub fn judge(&self, section: &Section, objects: &[ObjectMeta]) -> Vec<Option<Verdict>> {
        let mut verdicts: Vec<Option<Verdict>> = objects
            .iter()
            .map(|object| {
                if !section.owns(&object.key) {
                    None
                } else if section.kind == SectionKind::Hash
                    && !is_content_hash_name(file_name(&object.key))
                {
                    Some(Verdict::Ignored)
                } else {
                    Some(Verdict::Covered) // until the probes say otherwise
                }
            })
            .collect();
        let judged: Vec<usize> = (0..objects.len())
            .filter(|&i| verdicts[i] == Some(Verdict::Covered))
            .collect();
        let keys: Vec<&str> = judged.iter().map(|&i| objects[i].key.as_str()).collect();
        let likely = match section.kind {
            SectionKind::Hash => RefKind::Hash,
            SectionKind::Schema => RefKind::Schema,
        };
        let mut covered = Vec::with_capacity(keys.len());
        self.references.covers_each(&keys, likely, &mut covered);
        for (i, covered) in judged.into_iter().zip(covered) {
            if !covered {
                verdicts[i] = Some(if objects[i].modified > self.cutoff {
                    Verdict::Young
                } else {
                    Verdict::Orphan
                });
            }
        }
        verdicts
    }
}

/// Where a scan's references come from.
pub enum ReferenceSource<'a> {
    /// A read of the database, now.
    Database(&'a Reader),
    /// A shard's part of a reference snapshot, already shown to be of this
    /// run's store and schemas, with its cuts.
    Snapshot {
        snapshot: &'a Snapshot,
        cuts: ShardCuts,
        shard: Shard,
    },
}

/// Scans `store` for the orphans of `options.schemas`.
pub fn scan(
    references: &ReferenceSource<'_>,
    spec: &StoreSpec,
    store: &dyn Store,
    options: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Plan> {
    let mut plan = match references {
        ReferenceSource::Database(database) => {
            let mut query =
                reference_query(spec, &options.schemas, &options.schema_codecs, options.jobs)?;
            let mut sections = query.sections.clone();
            if let Some(shard) = options.shard.filter(|s| !s.is_whole()) {
                let sample = database.sample_schema_paths(&query)?;
                shard::assign_ranges(spec, &mut sections, shard, &sample);
                query = query.limited_to(sections.clone(), Some(shard));
            }
            scan_with(
                || database.scan(&query, progress),
                sections,
                store,
                options,
                progress,
            )?
        }
        ReferenceSource::Snapshot {
            snapshot,
            cuts,
            shard,
        } => {
            let options = ScanOptions {
                shard: Some(*shard),
                ..options.clone()
            };
            let mut plan = scan_with(
                || snapshot.scan_of(*shard, progress),
                cuts.sections_of(*shard),
                store,
                &options,
                progress,
            )?;
            if let Some(report) = &mut plan.report.shard {
                report.snapshot = Some(SnapshotUse {
                    folder: snapshot.dir().display().to_string(),
                    taken: humantime::format_rfc3339_millis(snapshot.taken()).to_string(),
                });
            }
            plan
        }
    };
    // A hint only, and more requests: not after a signal.
    if !options.interrupt.requested() {
        plan.report.unscanned_schemas = unscanned_schemas(spec, store, &options.schemas);
    }
    Ok(plan)
}

/// The schemas that have a section in the store (a folder under the hash
/// root, or under the schema root when it is not the store root) but are
/// not among `scanned`. A hint only: a folder that cannot be listed is
/// passed over.
pub fn unscanned_schemas(spec: &StoreSpec, store: &dyn Store, scanned: &[String]) -> Vec<String> {
    let roots = [&spec.hash_prefix, &spec.schema_prefix];
    let mut schemas: Vec<String> = roots
        .iter()
        .filter(|root| !root.is_empty())
        .flat_map(|root| store.list_folders(&format!("{root}/")).unwrap_or_default())
        // `attr=value` folders are partitions, not schemas.
        .filter(|name| !name.contains('=') && !scanned.contains(name))
        .collect();
    schemas.sort();
    schemas.dedup();
    schemas
}

/// What the reference scan of `spec`'s store asks the database.
/// `jobs` bounds the tables read at once (at most 8). Refuses schemas
/// whose sections [`layout::sections`] refuses.
pub fn reference_query(
    spec: &StoreSpec,
    schemas: &[String],
    schema_codecs: &[String],
    jobs: usize,
) -> Result<ReferenceQuery> {
    Ok(ReferenceQuery {
        schemas: schemas.to_vec(),
        store: spec.name.clone(),
        store_is_default: spec.is_default,
        schema_codecs: schema_codecs.to_vec(),
        concurrency: jobs.clamp(1, 8),
        rows_per_part: crate::refs::DEFAULT_ROWS_PER_PART,
        sections: layout::sections(spec, schemas)?,
        shard: None,
    })
}

/// Reads the references again, just before deletion, and drops from the plan
/// every orphan that a row references now (counted as `rescued`): a
/// deduplicated object can be reused by a new row at any time. What remains
/// open is the time the deletion itself takes; the age limit (`--min-age`)
/// covers objects uploaded for rows not yet committed. A problem in this read
/// blocks the plan like any scan problem.
pub fn recheck(plan: &mut Plan, database: &Reader, query: &ReferenceQuery) -> Result<()> {
    let fresh = database.scan(query, &crate::progress::Silent)?;
    plan.report.partial |= fresh.interrupted;
    if !fresh.errors.is_empty() {
        let errors = fresh.errors.into_iter().map(|e| format!("re-check: {e}"));
        plan.report.scan_errors.extend(errors);
        return Ok(());
    }
    let references = &fresh.references;
    plan.report.rescued += plan.retain_orphans(|o| !references.covers(&o.key))?;
    // The guard judges by this read, not by the scan's (or a plan file's).
    plan.report.references_by_schema = fresh.by_schema;
    if let Some(shard) = &mut plan.report.shard {
        shard.references_read_by_schema = fresh.read_by_schema;
    }
    Ok(())
}

/// Lists `sections` (each in its range), or reads them from `inventory`,
/// into `tx` with each batch's section index, telling `progress`; stops at
/// the next page once `interrupt` is raised or the receiver is gone. With
/// `by_name`, a store may leave sizes and times unread
/// ([`Store::list_sections_by_name`]).
pub(crate) fn list_into(
    store: &dyn Store,
    inventory: Option<&Inventory>,
    by_name: bool,
    sections: &[Section],
    interrupt: &Interrupt,
    progress: &dyn Progress,
    tx: &crossbeam_channel::Sender<(usize, Listing)>,
) {
    let labels: Vec<String> = sections.iter().map(Section::label).collect();
    let send = |index: usize, item: Listing| {
        if interrupt.requested() {
            return ControlFlow::Break(());
        }
        if let Listing::Objects(objects) = &item {
            progress.listed(&labels[index], objects.len() as u64);
        }
        match tx.send((index, item)) {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    };
    if let Some(inventory) = inventory {
        inventory.list_sections(sections, &send);
        return;
    }
    let listed: Vec<(&str, &KeyRange)> = sections
        .iter()
        .map(|section| (section.prefix.as_str(), &section.range))
        .collect();
    match by_name {
        true => store.list_sections_by_name(&listed, &send),
        false => store.list_sections(&listed, &send),
    }
}

/// Reads the size and time of the objects a listing by name left unread
/// ([`crate::store::ObjectMeta::unstated`]) that no reference covers: only
/// they need them (an orphan's size, and whether it is old enough). Judges
/// them again by the time read. One gone since it was listed stays young:
/// it may be a file an upload is still writing and renaming (a folder
/// object's temporary file), and while any file of a folder object is
/// young, all of them are. A covered object's size stays unread (it counts
/// 0 bytes).
fn stat_candidates(
    store: &dyn Store,
    objects: &mut [ObjectMeta],
    verdicts: &mut [Option<Verdict>],
    cutoff: SystemTime,
) -> std::result::Result<(), crate::store::StoreError> {
    let wanted: Vec<usize> = (0..objects.len())
        .filter(|&i| {
            matches!(verdicts[i], Some(Verdict::Young | Verdict::Orphan)) && !objects[i].is_stated()
        })
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let keys: Vec<String> = wanted.iter().map(|&i| objects[i].key.clone()).collect();
    let answers = store.head(&keys);
    if answers.len() != keys.len() {
        return Err(crate::store::StoreError::new(
            "head",
            &keys[0],
            std::io::Error::other(format!(
                "the store answered for {} of {} objects",
                answers.len(),
                keys.len()
            )),
        ));
    }
    for (i, found) in wanted.into_iter().zip(answers) {
        verdicts[i] = Some(match found? {
            Some(now) => {
                objects[i].size = now.size;
                objects[i].modified = now.modified;
                match now.modified > cutoff {
                    true => Verdict::Young,
                    false => Verdict::Orphan,
                }
            }
            None => Verdict::Young,
        });
    }
    Ok(())
}

/// The pipeline with the reference scan passed in, so it can be driven
/// without a database (tests, benchmarks).
pub fn scan_with(
    read_references: impl FnOnce() -> Result<crate::refs::ReferenceScan>,
    sections: Vec<Section>,
    store: &dyn Store,
    options: &ScanOptions,
    progress: &dyn Progress,
) -> Result<Plan> {
    let started = Instant::now();
    let (tx, rx) = crossbeam_channel::bounded::<(usize, Listing)>(LISTING_QUEUE);

    let (report, spool, young_objects) = std::thread::scope(|scope| {
        let lister = {
            let sections = &sections;
            let inventory = options.inventory.as_deref();
            scope.spawn(move || {
                list_into(
                    store,
                    inventory,
                    true,
                    sections,
                    &options.interrupt,
                    progress,
                    &tx,
                )
            })
        };

        let references = match read_references() {
            Ok(references) => references,
            Err(e) => {
                drop(rx); // the lister's next send fails and it stops
                lister.join().expect("lister thread panicked");
                return Err(e);
            }
        };

        let read_interrupted = references.interrupted;
        let held = &references.references;
        let mut report = Report {
            store: store.name().to_string(),
            schemas: options.schemas.clone(),
            hash_referenced: references.counted.hash,
            schema_paths_referenced: references.counted.schema,
            other_referenced: references.counted.other,
            references_by_schema: references.by_schema.clone(),
            shard: options.shard.map(|shard| ShardReport {
                shard,
                references_held: (held.hash.len() + held.schema.len() + held.other.len()) as u64,
                reference_set_bytes: [&held.hash, &held.schema, &held.other]
                    .iter()
                    .map(|set| set.allocated_bytes())
                    .sum(),
                references_read_by_schema: references.read_by_schema.clone(),
                snapshot: None,
            }),
            sections: sections.iter().map(SectionStats::of).collect(),
            dry_run: true,
            inventory: options.inventory.as_ref().map(|i| InventoryReport {
                manifest: i.manifest.clone(),
                created: humantime::format_rfc3339_seconds(i.created).to_string(),
            }),
            ..Default::default()
        };
        let mut errors = ErrorLog::default();
        let mut warnings = ErrorLog::default();
        for w in references.warnings {
            warnings.push(w);
        }
        for e in references.errors {
            errors.push(e);
        }

        let judge = Judge {
            references: &references.references,
            cutoff: options.cutoff(),
        };
        let mut spool = OrphanSpool::new()?;
        // The objects (rows' fields) with an unreferenced file too young to
        // judge: their other files are young too ([`Section::object_of`]).
        let mut young_objects = RefSet::default();
        // Judging (the reference probes) runs on `jobs` threads; what it
        // records (figures, spool, messages) stays on this one.
        std::thread::scope(|judges| -> Result<()> {
            let (judged_tx, judged_rx) =
                crossbeam_channel::bounded::<Judged>(2 * options.jobs.max(1));
            // Against a read cut short every object would look orphaned:
            // nothing is judged, and the lister stops at its next send.
            let judges_count = match read_interrupted {
                true => 0,
                false => options.jobs.max(1),
            };
            for _ in 0..judges_count {
                let (rx, judged_tx, judge, sections) =
                    (rx.clone(), judged_tx.clone(), &judge, &sections);
                judges.spawn(move || {
                    for (index, item) in rx {
                        let judged = match item {
                            Listing::Objects(mut objects) => {
                                let mut verdicts = judge.judge(&sections[index], &objects);
                                match stat_candidates(
                                    store,
                                    &mut objects,
                                    &mut verdicts,
                                    judge.cutoff,
                                ) {
                                    Ok(()) => Judged::Objects(index, objects, verdicts),
                                    Err(e) => Judged::Error(e),
                                }
                            }
                            Listing::Error(e) => Judged::Error(e),
                        };
                        if judged_tx.send(judged).is_err() {
                            return;
                        }
                    }
                });
            }
            drop((rx, judged_tx));
            for judged in judged_rx {
                let (index, objects, verdicts) = match judged {
                    Judged::Objects(index, objects, verdicts) => (index, objects, verdicts),
                    Judged::Error(e) => {
                        errors.push(format!("store {}: {e}", store.name()));
                        continue;
                    }
                };
                let section = &sections[index];
                let kind = section.kind;
                let stats = &mut report.sections[index];
                for (object, verdict) in objects.iter().zip(verdicts) {
                    let Some(verdict) = verdict else {
                        if section.is_unsafe(&object.key) {
                            stats.unsafe_keys += 1;
                            warnings.push(format!(
                                "store {}: key {:?} is not a plain path inside {}; never deleted",
                                store.name(),
                                object.key,
                                section.prefix
                            ));
                        }
                        continue;
                    };
                    if verdict == Verdict::Ignored {
                        stats.ignored += 1;
                        continue;
                    }
                    stats.stored += 1;
                    stats.stored_bytes += object.size;
                    match verdict {
                        Verdict::Orphan if object.key.contains(['\n', '\r']) => {
                            errors.push(format!(
                                "store {}: key {:?} contains a line break; djgc will not delete it",
                                store.name(),
                                object.key
                            ))
                        }
                        Verdict::Orphan => {
                            stats.orphaned += 1;
                            stats.orphaned_bytes += object.size;
                            spool.push(index, object.size, object.modified, &object.key)?;
                            progress.orphan(&object.key, object.size);
                        }
                        Verdict::Young => {
                            stats.young_skipped += 1;
                            if kind == SectionKind::Schema {
                                young_objects.insert(path_hash(section.object_of(&object.key)));
                            }
                        }
                        Verdict::Covered | Verdict::Ignored => {}
                    }
                }
            }
            Ok(())
        })?;
        lister.join().expect("lister thread panicked");
        if options.interrupt.requested() || read_interrupted {
            if !read_interrupted {
                errors.push("interrupted before the listing finished".to_string());
            }
            report.partial = true;
        }
        report.scan_errors = errors.finish();
        report.warnings = warnings.finish();
        report.seconds = started.elapsed().as_secs_f64();
        Ok((report, spool, young_objects))
    })?;
    let mut plan = Plan::new(sections, report, spool)?;
    if !young_objects.is_empty() {
        keep_young_objects(&mut plan, &young_objects)?;
    }
    Ok(plan)
}

/// Counts as young, not orphaned, every orphan of a schema section whose
/// object has a young file: a folder object is judged as one, young while
/// anything in it is (it is uploaded file by file, then its row committed).
fn keep_young_objects(plan: &mut Plan, young_objects: &RefSet) -> Result<()> {
    let sections = plan.sections.clone();
    let mut kept = vec![(0u64, 0u64); sections.len()];
    plan.retain_orphans(|orphan| {
        let section = &sections[orphan.section];
        let young = section.kind == SectionKind::Schema
            && young_objects.contains(path_hash(section.object_of(&orphan.key)));
        if young {
            kept[orphan.section].0 += 1;
            kept[orphan.section].1 += orphan.size;
        }
        !young
    })?;
    for (stats, (count, bytes)) in plan.report.sections.iter_mut().zip(kept) {
        stats.orphaned -= count;
        stats.orphaned_bytes -= bytes;
        stats.young_skipped += count;
    }
    Ok(())
}

/// Keeps the first messages verbatim and counts the rest.
#[derive(Default)]
struct ErrorLog {
    shown: Vec<String>,
    more: usize,
}

impl ErrorLog {
    fn push(&mut self, message: String) {
        if self.shown.len() < SCAN_ERRORS_SHOWN {
            self.shown.push(message);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.more > 0 {
            self.shown
                .push(format!("... and {} more like these", self.more));
        }
        self.shown
    }
}
