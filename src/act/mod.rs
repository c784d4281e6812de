//! Executing a plan: deleting its orphans (or moving them into quarantine)
//! with a bounded pool of workers.
//!
//! One reader streams the plan's orphans into per-section batches of up to
//! [`DELETE_BATCH`] keys (the most one S3 DeleteObjects request takes) and
//! hands them over a bounded channel to `jobs` workers, so at most a few
//! batches are in memory however many orphans there are. Each key's outcome
//! is counted; a failed key is reported and counted, never dropped, and the
//! run goes on.
//!
//! Invariants: a plan whose scan met any problem is refused before a single
//! delete call is made; so is a plan the mass-deletion guard rejects (a
//! schema with stored objects but no references, or a section mostly judged
//! orphaned), unless the caller forces it. Such plans are what a scan that
//! went wrong looks like: a schema read as empty, rows in another store, a
//! wrong `location`.

pub mod journal;
pub mod quarantine;
pub mod watch;

use std::collections::HashMap;
use std::time::SystemTime;

use crate::act::journal::Journal;
use crate::act::quarantine::{put_back, Entry, RunHeader, Trash};
use crate::act::watch::{ReadReferences, Watch};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::judge::plan::mtime_ns;
use crate::judge::plan::Plan;
use crate::layout::SectionKind;
use crate::progress::Progress;
use crate::refs::References;
use crate::report::{DeleteOutcome, Report};
use crate::store::{stat, Deleted, Moved, Store, StoreError, DELETE_BATCH};

struct Batch {
    section: usize,
    keys: Vec<String>,
    sizes: Vec<u64>,
}

impl Batch {
    /// Drops the keys `references` covers; returns how many.
    fn drop_covered(&mut self, references: &References) -> u64 {
        let before = self.keys.len();
        (self.keys, self.sizes) = std::mem::take(&mut self.keys)
            .into_iter()
            .zip(std::mem::take(&mut self.sizes))
            .filter(|(key, _)| !references.covers(key))
            .unzip();
        (before - self.keys.len()) as u64
    }

    fn new(section: usize) -> Self {
        Batch {
            section,
            keys: Vec::with_capacity(DELETE_BATCH),
            sizes: Vec::with_capacity(DELETE_BATCH),
        }
    }
}

/// How to delete, and what the mass-deletion guard allows.
#[derive(Clone, Copy, Debug)]
pub struct DeleteOptions {
    /// Delete calls in flight.
    pub workers: usize,
    /// Refuse when more than this share of a section's objects are orphans.
    pub max_orphan_fraction: f64,
    /// Delete even when the guard objects.
    pub force: bool,
}

/// What may end a disposal early, and where its progress is recorded.
#[derive(Default)]
pub(crate) struct Control<'a> {
    /// Once raised, no further batch is started; those in flight finish.
    pub interrupt: Interrupt,
    /// Each finished batch is recorded here, for a later run to go on from.
    pub journal: Option<&'a Journal>,
    /// Orphans of the same plan that earlier, interrupted runs deleted, or
    /// may have (recorded as done, or found gone): the re-check after
    /// deleting looks at them too.
    pub earlier: Vec<&'a Plan>,
}

/// The guard's objections to deleting what `report` found, one per schema or
/// section; empty when deletion may go ahead.
pub fn guard_objections(report: &Report, max_orphan_fraction: f64) -> Vec<String> {
    let mut objections = Vec::new();
    for schema in &report.schemas {
        let stored: u64 = report
            .sections
            .iter()
            .filter(|s| &s.schema == schema)
            .map(|s| s.stored)
            .sum();
        // A shard judges by the references it read, not the share it counts.
        let read = report.shard.as_ref().map(|s| &s.references_read_by_schema);
        let references = read
            .unwrap_or(&report.references_by_schema)
            .get(schema)
            .copied()
            .unwrap_or(0);
        if stored > 0 && references == 0 {
            objections.push(format!(
                "schema {schema} has {stored} stored objects but no references to store {:?} \
                 in the database",
                report.store
            ));
        }
    }
    for section in &report.sections {
        if section.stored > 0
            && section.orphaned as f64 > max_orphan_fraction * section.stored as f64
        {
            objections.push(format!(
                "{} of the {} objects in {} are orphans ({:.0}%), more than \
                 `max_orphan_fraction` {}",
                section.orphaned,
                section.stored,
                section.prefix,
                100.0 * section.orphaned as f64 / section.stored as f64,
                max_orphan_fraction
            ));
        }
    }
    objections
}

/// Deletes every orphan of `plan` from `store`, recording the outcome in the
/// plan's report. Refuses a plan that met problems while scanning, or that
/// the guard objects to unless `options.force`. If the plan's orphans cannot
/// be read back part-way, the deletions already made are still recorded
/// before the error is returned.
///
/// With `live`, the references are read again and again while deleting
/// (see [`crate::act::watch`]) and once more at the end: an object deleted after
/// all although a row committed during the deletion references it is
/// reported as lost (`lost`, `lost_keys`), never silently.
pub(crate) fn execute(
    plan: &mut Plan,
    store: &dyn Store,
    options: &DeleteOptions,
    live: Option<&ReadReferences<'_>>,
    control: &Control<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    check_allowed(plan, options)?;
    dispose(plan, store, options, None, live, control, progress)
}

/// Like [`execute`], but moves the orphans into a new quarantine run of
/// `trash` instead of deleting them: the run's manifest is written first,
/// then the objects are moved. With `live`, an object found referenced by
/// the final read is moved straight back (counted as rescued). Returns the
/// run's header, or `None` when there was nothing to move (no run is made).
pub(crate) fn quarantine(
    plan: &mut Plan,
    store: &dyn Store,
    trash: &Trash,
    options: &DeleteOptions,
    live: Option<&ReadReferences<'_>>,
    control: &Control<'_>,
    progress: &dyn Progress,
) -> Result<Option<RunHeader>> {
    check_allowed(plan, options)?;
    if plan.orphans()?.next().is_none() {
        plan.report.dry_run = false;
        return Ok(None);
    }
    let header = trash.begin(store, plan, SystemTime::now())?;
    plan.report.outcome.quarantine_run = Some(header.run.clone());
    let run_prefix = trash.run_prefix(&header.run);
    dispose(
        plan,
        store,
        options,
        Some(&run_prefix),
        live,
        control,
        progress,
    )?;
    Ok(Some(header))
}

/// Refuses a plan with scan problems, or one the guard objects to.
fn check_allowed(plan: &Plan, options: &DeleteOptions) -> Result<()> {
    if plan.is_blocked() {
        return Err(Error::Refused(format!(
            "{} problem(s) while scanning; nothing was deleted",
            plan.report.scan_errors.len()
        )));
    }
    let objections = guard_objections(&plan.report, options.max_orphan_fraction);
    if !options.force && !objections.is_empty() {
        return Err(Error::Refused(format!(
            "{}. Nothing was deleted. If this is what you expect, run again with `force` \
             (or a higher `max_orphan_fraction`)",
            objections.join("; ")
        )));
    }
    Ok(())
}

/// What one worker did.
#[derive(Default)]
struct Tally {
    outcome: DeleteOutcome,
    /// Orphans dropped from their batch because a fresh read references them.
    rescued: u64,
}

/// Deletes the plan's orphans, or with `trash_run` (a run prefix) moves
/// each to the same key under it; with `live`, re-checks while doing so.
/// Interrupted, it starts no further batch and skips the final re-check.
fn dispose(
    plan: &mut Plan,
    store: &dyn Store,
    options: &DeleteOptions,
    trash_run: Option<&str>,
    live: Option<&ReadReferences<'_>>,
    control: &Control<'_>,
    progress: &dyn Progress,
) -> Result<()> {
    let interrupt = &control.interrupt;
    let (count, bytes) = plan
        .orphans()?
        .try_fold((0, 0), |(n, b), o| o.map(|o| (n + 1, b + o.size)))?;
    progress.deleting(count, bytes);
    let jobs = options.workers.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(jobs * 2);
    let sections = &plan.sections;
    let watch = live.map(Watch::new);

    let (tally, fed) = std::thread::scope(|scope| {
        let watcher = watch.as_ref().map(|watch| scope.spawn(|| watch.run()));
        let watch = watch.as_ref();
        let _stop_watch = watch.map(Watch::stopper);
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || {
                    let mut tally = Tally::default();
                    for mut batch in rx {
                        if interrupt.requested() {
                            continue;
                        }
                        if let Some(watch) = watch {
                            match watch.fresh() {
                                Ok(references) => tally.rescued += batch.drop_covered(&references),
                                // The read was abandoned on the interrupt:
                                // the batch is left, not failed.
                                Err(_) if interrupt.requested() => continue,
                                Err(failure) => {
                                    tally.outcome.errors += batch.keys.len() as u64;
                                    progress.delete_failed(
                                        &batch.keys[0],
                                        &format!(
                                            "not attempted, nor the {} other keys of its batch: \
                                             re-reading the references failed: {failure}",
                                            batch.keys.len() - 1
                                        ),
                                    );
                                    continue;
                                }
                            }
                        }
                        // A fresh read may have waited on the database.
                        if interrupt.requested() {
                            continue;
                        }
                        let section = &sections[batch.section];
                        // This batch's counts and finished keys, for the journal.
                        let mut outcome = DeleteOutcome::default();
                        let mut done: Vec<&str> = Vec::new();
                        for ((key, size), result) in batch.keys.iter().zip(&batch.sizes).zip(
                            dispose_batch(store, &section.prefix, &batch.keys, trash_run),
                        ) {
                            if result.is_ok() && control.journal.is_some() {
                                done.push(key);
                            }
                            match result {
                                Ok(Disposed::Deleted) => {
                                    match section.kind {
                                        SectionKind::Hash => outcome.hash_paths_deleted += 1,
                                        SectionKind::Schema => outcome.schema_paths_deleted += 1,
                                    }
                                    outcome.bytes_freed += size;
                                    progress.deleted(key, *size);
                                }
                                Ok(Disposed::Quarantined) => {
                                    outcome.quarantined += 1;
                                    outcome.quarantined_bytes += size;
                                    progress.quarantined(key, *size);
                                }
                                Ok(Disposed::Gone) => outcome.already_gone += 1,
                                Err(e) => {
                                    outcome.errors += 1;
                                    progress.delete_failed(key, &e.to_string());
                                }
                            }
                        }
                        if let Some(journal) = control.journal {
                            if let Err(e) = journal.record(&done, &outcome) {
                                progress.delete_failed(
                                    &batch.keys[0],
                                    &format!(
                                        "done, but not recorded for a resumed run (nor will \
                                         later batches be): {e}"
                                    ),
                                );
                            }
                        }
                        tally.outcome.add_counts(&outcome);
                    }
                    tally
                })
            })
            .collect();
        drop(rx);

        // Feed the workers; on a spool error stop feeding but let them finish.
        let fed = (|| -> Result<()> {
            let mut pending: HashMap<usize, Batch> = HashMap::new();
            for orphan in plan.orphans()? {
                if interrupt.requested() {
                    break;
                }
                let orphan = orphan?;
                let batch = pending
                    .entry(orphan.section)
                    .or_insert_with(|| Batch::new(orphan.section));
                batch.keys.push(orphan.key);
                batch.sizes.push(orphan.size);
                if batch.keys.len() == DELETE_BATCH {
                    let full = pending.remove(&orphan.section).expect("just filled");
                    if tx.send(full).is_err() {
                        break;
                    }
                }
            }
            for (_, batch) in pending {
                if tx.send(batch).is_err() {
                    break;
                }
            }
            Ok(())
        })();
        drop(tx);

        let mut total = Tally::default();
        for worker in workers {
            let part = worker.join().expect("delete worker panicked");
            total.outcome.add_counts(&part.outcome);
            total.rescued += part.rescued;
        }
        if let (Some(watch), Some(watcher)) = (watch, watcher) {
            watch.stop();
            // A watch that panicked has recorded a failure; joining here
            // keeps its panic from ending the run without a report.
            let _ = watcher.join();
            total.outcome.stopped = watch.failure().map(|failure| {
                format!("re-reading the references failed, so deletion stopped: {failure}")
            });
        }
        (total, fed)
    });

    plan.report.outcome = DeleteOutcome {
        quarantine_run: plan.report.outcome.quarantine_run.take(),
        ..tally.outcome
    };
    plan.report.rescued += tally.rescued;
    plan.report.dry_run = false;
    if fed.is_err() && live.is_some() {
        // Deletion stopped early, before its re-check.
        plan.report.outcome.unverified = true;
    }
    fed?;
    if interrupt.requested() {
        let outcome = &mut plan.report.outcome;
        let finished = outcome.disposed() + outcome.already_gone + outcome.errors + tally.rescued;
        outcome.left = count.saturating_sub(finished);
        let left = outcome.left;
        outcome.stopped.get_or_insert_with(|| {
            format!("interrupted: the batches in flight finished, {left} orphans were left")
        });
        plan.report.partial = true;
        if live.is_some() {
            unverified_by_interrupt(plan, control);
        }
        return Ok(());
    }
    if let Some(read) = live {
        audit(plan, store, trash_run, read, control)?;
    }
    Ok(())
}

/// The run was interrupted before its re-check after deleting was made:
/// it is partial and unverified, and its progress file says so, for the
/// run that goes on from here (whose own re-check does not look at what
/// this one disposed of).
fn unverified_by_interrupt(plan: &mut Plan, control: &Control<'_>) {
    plan.report.partial = true;
    plan.report.outcome.unverified = true;
    if let Some(journal) = control.journal {
        let unverified = DeleteOutcome {
            unverified: true,
            ..Default::default()
        };
        if let Err(e) = journal.record(&[], &unverified) {
            plan.report.warnings.push(e.to_string());
        }
    }
    plan.report.warnings.push(
        "interrupted before the re-check after deleting, so losses to rows written \
         meanwhile cannot be ruled out"
            .to_string(),
    );
}

/// Keys reported as lost by name, at most; the rest are counted.
const LOST_KEYS_SHOWN: usize = 100;

/// The final re-check: reads the references once more after the deletion
/// and looks at every orphan a row references by now (few, if any). One that
/// is in quarantine is put straight back; one that is gone from the store is
/// lost and reported. Orphans still in place (rescued before their batch, or
/// whose deletion failed) are neither. Nothing is held per deleted key, so
/// memory does not grow with the number of orphans. Orphans `earlier` runs
/// deleted are looked at as this run's are (those an earlier quarantine
/// moved are in its own run, which `purge` re-checks).
fn audit(
    plan: &mut Plan,
    store: &dyn Store,
    trash_run: Option<&str>,
    read: &ReadReferences<'_>,
    control: &Control<'_>,
) -> Result<()> {
    let earlier = &control.earlier;
    let references = match read() {
        Ok(references) => references,
        Err(Error::Interrupted(_)) => {
            unverified_by_interrupt(plan, control);
            return Ok(());
        }
        Err(e) => {
            plan.report.warnings.push(format!(
                "the re-check after deleting failed, so losses to rows written meanwhile \
                 cannot be ruled out: {e}"
            ));
            plan.report.outcome.unverified = true;
            return Ok(());
        }
    };
    let mut late = Vec::new();
    for orphan in plan.orphans()? {
        let orphan = orphan?;
        if references.covers(&orphan.key) {
            late.push(orphan);
        }
    }
    for earlier in earlier.iter().filter(|_| trash_run.is_none()) {
        for orphan in earlier.orphans()? {
            let orphan = orphan?;
            if references.covers(&orphan.key) {
                late.push(orphan);
            }
        }
    }
    let mut failures = Vec::new();
    let outcome = &mut plan.report.outcome;
    for orphan in late {
        match trash_run {
            Some(run_prefix) => {
                let entry = Entry {
                    mtime_ns: mtime_ns(orphan.modified),
                    size: orphan.size,
                    key: orphan.key,
                };
                let back = put_back(store, run_prefix, std::slice::from_ref(&entry), &mut |m| {
                    failures.push(m)
                });
                if back.restored + back.already_in_place == 1 {
                    outcome.quarantined -= 1;
                    outcome.quarantined_bytes -= entry.size;
                    plan.report.rescued += 1;
                }
                outcome.errors += back.errors + back.conflicts;
            }
            None => match stat(store, &orphan.key) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    outcome.lost += 1;
                    if outcome.lost_keys.len() < LOST_KEYS_SHOWN {
                        outcome.lost_keys.push(orphan.key);
                    }
                }
                Err(e) => {
                    outcome.unverified = true;
                    failures.push(format!(
                        "the re-check after deleting could not look for {}: {e}",
                        orphan.key
                    ))
                }
            },
        }
    }
    plan.report.warnings.extend(failures);
    Ok(())
}

/// What became of one orphan that did not fail.
enum Disposed {
    Deleted,
    Quarantined,
    /// Already gone when its turn came.
    Gone,
}

/// Deletes `keys` of the section at `prefix`, or moves them under `trash_run`.
fn dispose_batch(
    store: &dyn Store,
    prefix: &str,
    keys: &[String],
    trash_run: Option<&str>,
) -> Vec<Result<Disposed, StoreError>> {
    let Some(run) = trash_run else {
        return store
            .delete(prefix, keys)
            .into_iter()
            .map(|r| {
                r.map(|d| match d {
                    Deleted::Removed => Disposed::Deleted,
                    Deleted::Missing => Disposed::Gone,
                })
            })
            .collect();
    };
    let moves: Vec<(String, String)> = keys
        .iter()
        .map(|k| (k.clone(), format!("{run}{k}")))
        .collect();
    store
        .rename(prefix, &moves)
        .into_iter()
        .zip(&moves)
        .map(|(r, (_, to))| match r? {
            Moved::Done => Ok(Disposed::Quarantined),
            Moved::SourceMissing => Ok(Disposed::Gone),
            Moved::TargetExists => Err(StoreError::new(
                "move",
                to.as_str(),
                "refused: something is already at the quarantine key",
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests;
