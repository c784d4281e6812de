//! Executing a plan: deleting its orphans with a bounded pool of workers.
//!
//! One reader streams the plan's orphans into per-section batches of up to
//! [`DELETE_BATCH`] keys (the most one S3 DeleteObjects request takes) and
//! hands them over a bounded channel to `jobs` workers, so at most a few
//! batches are in memory however many orphans there are. Each key's outcome
//! is counted; a failed key is reported and counted, never dropped, and the
//! run goes on.
//!
//! Invariant: a plan whose scan met any problem is refused before a single
//! delete call is made.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::layout::SectionKind;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::report::DeleteOutcome;
use crate::store::{Deleted, Store};

/// Keys per delete call.
pub const DELETE_BATCH: usize = 1000;

struct Batch {
    section: usize,
    keys: Vec<String>,
    sizes: Vec<u64>,
}

impl Batch {
    fn new(section: usize) -> Self {
        Batch {
            section,
            keys: Vec::with_capacity(DELETE_BATCH),
            sizes: Vec::with_capacity(DELETE_BATCH),
        }
    }
}

/// Deletes every orphan of `plan` from `store`, recording the outcome in the
/// plan's report. Refuses a plan that met problems while scanning. If the
/// plan's orphans cannot be read back part-way, the deletions already made are
/// still recorded before the error is returned.
pub fn execute(
    plan: &mut Plan,
    store: &dyn Store,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<()> {
    if plan.is_blocked() {
        return Err(Error::Refused(format!(
            "{} problem(s) while scanning; nothing was deleted",
            plan.report.scan_errors.len()
        )));
    }
    let jobs = jobs.max(1);
    let (tx, rx) = crossbeam_channel::bounded::<Batch>(jobs * 2);
    let sections = &plan.sections;

    let (outcome, fed) = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs)
            .map(|_| {
                let rx = rx.clone();
                scope.spawn(move || {
                    let mut outcome = DeleteOutcome::default();
                    for batch in rx {
                        let section = &sections[batch.section];
                        let results = store.delete(&section.prefix, &batch.keys);
                        for ((key, size), result) in
                            batch.keys.iter().zip(&batch.sizes).zip(results)
                        {
                            match result {
                                Ok(Deleted::Removed) => {
                                    match section.kind {
                                        SectionKind::Hash => outcome.hash_paths_deleted += 1,
                                        SectionKind::Schema => outcome.schema_paths_deleted += 1,
                                    }
                                    outcome.bytes_freed += size;
                                    progress.deleted(key, *size);
                                }
                                Ok(Deleted::Missing) => outcome.already_gone += 1,
                                Err(e) => {
                                    outcome.errors += 1;
                                    progress.delete_failed(key, &e.to_string());
                                }
                            }
                        }
                    }
                    outcome
                })
            })
            .collect();
        drop(rx);

        // Feed the workers; on a spool error stop feeding but let them finish.
        let fed = (|| -> Result<()> {
            let mut pending: HashMap<usize, Batch> = HashMap::new();
            for orphan in plan.orphans()? {
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

        let mut total = DeleteOutcome::default();
        for worker in workers {
            let part = worker.join().expect("delete worker panicked");
            total.hash_paths_deleted += part.hash_paths_deleted;
            total.schema_paths_deleted += part.schema_paths_deleted;
            total.bytes_freed += part.bytes_freed;
            total.errors += part.errors;
            total.already_gone += part.already_gone;
        }
        (total, fed)
    });

    plan.report.outcome = outcome;
    plan.report.dry_run = false;
    fed
}
