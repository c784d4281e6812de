//! Executing plans: failures are counted and reported without stopping the
//! run, a plan with scan problems is refused, and rows written while
//! deleting keep (or get back) their objects. Unit tests, since only
//! [`crate::run`] may call [`execute`] and [`quarantine`] from outside.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use super::journal::Journal;
use super::quarantine::Trash;
use super::{execute, guard_objections, quarantine, Control, DeleteOptions};
use crate::error::Error;
use crate::interrupt::Interrupt;
use crate::judge::planfile::key_hash;
use crate::judge::{scan_with, ScanOptions};
use crate::layout::{Section, SectionKind};
use crate::progress::Progress;
use crate::refs::codec::RefKind;
use crate::refs::{ReferenceScan, References};
use crate::report::{Report, SectionStats};
use crate::store::{
    Deleted, FsStore, KeyRange, ListSink, Listing, MemoryStore, Moved, ObjectMeta, Store,
    StoreError,
};

const HASH: &str = "_hash/s/ih23fsttfdzzbrgqrgnsup5b3i";
const LIVE: &str = "_schema/s/t/id=0/f";
const ORPHANS: [&str; 3] = [HASH, "_schema/s/t/id=1/f", "_schema/s/t/id=2/f"];
/// Every object of the hash section is an orphan here: the guard must allow it.
const OPTIONS: DeleteOptions = DeleteOptions {
    workers: 2,
    max_orphan_fraction: 1.0,
    force: false,
};

#[derive(Default)]
struct Recorder {
    deleted: Mutex<Vec<String>>,
    failed: Mutex<Vec<String>>,
}

impl Progress for Recorder {
    fn deleted(&self, key: &str, _bytes: u64) {
        self.deleted.lock().unwrap().push(key.to_string());
    }
    fn delete_failed(&self, key: &str, _error: &str) {
        self.failed.lock().unwrap().push(key.to_string());
    }
}

fn sections() -> Vec<Section> {
    vec![
        Section::new("s", SectionKind::Hash, "_hash/s/"),
        Section::new("s", SectionKind::Schema, "_schema/s/"),
    ]
}

fn options() -> ScanOptions {
    ScanOptions {
        schemas: vec!["s".into()],
        cutoff: SystemTime::now(),
        jobs: 2,
        schema_codecs: Vec::new(),
        shard: None,
        inventory: None,
        interrupt: Default::default(),
    }
}

/// Writes `root/key` with a modification time 30 days ago.
fn put_old_file(root: &Path, key: &str, content: &str) {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    let old = SystemTime::now() - std::time::Duration::from_secs(30 * 86400);
    let file = std::fs::File::options().write(true).open(&path).unwrap();
    file.set_modified(old).unwrap();
}

fn store_with_files() -> (tempfile::TempDir, FsStore) {
    let dir = tempfile::tempdir().unwrap();
    for key in ORPHANS.iter().chain([&LIVE]) {
        put_old_file(dir.path(), key, "x");
    }
    let store = FsStore::new("t", dir.path(), 2);
    (dir, store)
}

/// `store` scanned against the live reference alone, with the defaults.
fn scan_all(store: &dyn Store) -> crate::judge::plan::Plan {
    scan_with(
        || Ok(references(Vec::new())),
        sections(),
        store,
        &options(),
        &Recorder::default(),
    )
    .unwrap()
}

fn references(errors: Vec<String>) -> ReferenceScan {
    ReferenceScan {
        errors,
        by_schema: [("s".to_string(), 1)].into(),
        references: References::from_paths([(RefKind::Schema, LIVE)]),
        ..Default::default()
    }
}

#[test]
fn a_failed_deletion_is_counted_reported_and_the_rest_go_on() {
    let (dir, store) = store_with_files();
    let progress = Recorder::default();
    let mut plan = scan_with(
        || Ok(references(Vec::new())),
        sections(),
        &store,
        &options(),
        &progress,
    )
    .unwrap();
    assert_eq!(plan.report.totals(None).orphaned, 3);

    // Between scan and delete, one orphan path becomes a folder with content.
    let changed = dir.path().join("_schema/s/t/id=1/f");
    std::fs::remove_file(&changed).unwrap();
    std::fs::create_dir(&changed).unwrap();
    std::fs::write(changed.join("inside"), "x").unwrap();

    execute(
        &mut plan,
        &store,
        &OPTIONS,
        None,
        &Control::default(),
        &progress,
    )
    .unwrap();
    let outcome = &plan.report.outcome;
    assert_eq!(
        (
            outcome.errors,
            outcome.hash_paths_deleted,
            outcome.schema_paths_deleted
        ),
        (1, 1, 1)
    );
    assert_eq!(*progress.failed.lock().unwrap(), ["_schema/s/t/id=1/f"]);
    let mut deleted = progress.deleted.lock().unwrap().clone();
    deleted.sort();
    assert_eq!(deleted, [HASH, "_schema/s/t/id=2/f"]);
    assert!(changed.join("inside").exists() && dir.path().join(LIVE).exists());
    assert!(!plan.report.dry_run);
}

#[test]
fn a_plan_with_scan_problems_is_refused_before_any_deletion() {
    let (dir, store) = store_with_files();
    let progress = Recorder::default();
    let problems = vec!["s.t.c: connection lost".to_string()];
    let mut plan = scan_with(
        || Ok(references(problems)),
        sections(),
        &store,
        &options(),
        &progress,
    )
    .unwrap();
    assert!(plan.is_blocked());
    let err = execute(
        &mut plan,
        &store,
        &OPTIONS,
        None,
        &Control::default(),
        &progress,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Refused(_)), "{err}");
    assert!(ORPHANS.iter().all(|k| dir.path().join(k).exists()));
    assert!(progress.deleted.lock().unwrap().is_empty());
}

#[test]
fn keys_that_are_not_plain_paths_are_reported_and_never_planned() {
    // An S3 bucket can hold keys that a file system cannot.
    let store = MemoryStore::new("t");
    let old = SystemTime::now() - std::time::Duration::from_secs(86400);
    let unsafe_keys = [
        "_schema/s/t/../../../etc/passwd",
        "_schema/s//t/f",
        "_schema/s/t/./f",
    ];
    for key in unsafe_keys.iter().chain(&[LIVE, "_schema/s/t/id=3/f"]) {
        store.insert(key, 1, old);
    }
    let plan = scan_all(&store);
    let planned: Vec<String> = plan.orphans().unwrap().map(|o| o.unwrap().key).collect();
    assert_eq!(planned, ["_schema/s/t/id=3/f"]);
    assert_eq!(plan.report.sections[1].unsafe_keys, 3);
    assert_eq!(plan.report.warnings.len(), 3, "{:?}", plan.report.warnings);
    assert!(plan.report.warnings[0].contains("never deleted"));
    assert!(!plan.is_blocked());
}

/// A memory store with the ways a real one is slow or odd: delete and move
/// calls that take `delay` (so that the references are read again while a
/// deletion runs), a listing by name only (`by_name`, as a file store's),
/// and a `HEAD` that finds nothing at `gone` and fails at `broken`.
struct TestStore {
    inner: MemoryStore,
    delay: std::time::Duration,
    by_name: bool,
    gone: String,
    broken: String,
}

impl TestStore {
    fn new() -> Self {
        TestStore {
            inner: MemoryStore::new("main"),
            delay: std::time::Duration::ZERO,
            by_name: false,
            gone: String::new(),
            broken: String::new(),
        }
    }
}

impl Store for TestStore {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>) {
        self.inner.list_range(prefix, range, sink)
    }
    fn list_sections_by_name(
        &self,
        sections: &[(&str, &KeyRange)],
        sink: &crate::store::SectionSink<'_>,
    ) {
        let by_name = self.by_name;
        self.inner.list_sections(sections, &|index, item| {
            sink(
                index,
                match item {
                    Listing::Objects(objects) if by_name => Listing::Objects(
                        objects
                            .into_iter()
                            .map(|o| ObjectMeta::unstated(o.key))
                            .collect(),
                    ),
                    item => item,
                },
            )
        })
    }
    fn delete(&self, prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        std::thread::sleep(self.delay);
        self.inner.delete(prefix, keys)
    }
    fn rename(&self, prefix: &str, moves: &[(String, String)]) -> Vec<Result<Moved, StoreError>> {
        std::thread::sleep(self.delay);
        self.inner.rename(prefix, moves)
    }
    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        self.inner.put(key, body)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        keys.iter()
            .zip(self.inner.head(keys))
            .map(|(key, found)| match key {
                k if *k == self.gone => Ok(None),
                k if *k == self.broken => Err(StoreError::new(
                    "head",
                    k,
                    std::io::Error::other("the server went away"),
                )),
                _ => found,
            })
            .collect()
    }
    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list_folders(prefix)
    }
}

/// 5,000 orphans (five batches) beside the live object, in a store that
/// takes `delay` per delete call.
fn store_and_plan(delay: std::time::Duration) -> (TestStore, crate::judge::plan::Plan) {
    let store = TestStore {
        delay,
        ..TestStore::new()
    };
    let old = SystemTime::now() - std::time::Duration::from_secs(86400);
    store.inner.insert(LIVE, 1, old);
    for i in 0..5000 {
        store
            .inner
            .insert(&format!("_schema/s/t/id={i:05}/f"), 1, old);
    }
    let plan = scan_all(&store);
    (store, plan)
}

fn slow_store_and_plan() -> (TestStore, crate::judge::plan::Plan) {
    store_and_plan(std::time::Duration::from_millis(40))
}

const EARLY: &str = "_schema/s/t/id=00000/f";
const LATE: &str = "_schema/s/t/id=04999/f";

/// The first read references LATE (a row reusing it, committed after the
/// scan); later reads also reference EARLY (committed after its deletion).
fn reads_with_late_rows() -> impl Fn() -> crate::Result<References> + Sync {
    let calls = AtomicUsize::new(0);
    move || {
        let mut live = vec![(RefKind::Schema, LIVE), (RefKind::Schema, LATE)];
        if calls.fetch_add(1, Ordering::SeqCst) > 0 {
            live.push((RefKind::Schema, EARLY));
        }
        Ok(References::from_paths(live))
    }
}

fn present(store: &TestStore, key: &str) -> bool {
    crate::store::stat(store, key).unwrap().is_some()
}

#[test]
fn rows_written_while_deleting_keep_their_objects_or_are_reported_lost() {
    let (store, mut plan) = slow_store_and_plan();
    let read = reads_with_late_rows();
    let options = DeleteOptions {
        workers: 1,
        ..OPTIONS
    };
    execute(
        &mut plan,
        &store,
        &options,
        Some(&read),
        &Control::default(),
        &Recorder::default(),
    )
    .unwrap();
    assert!(
        present(&store, LATE),
        "a batch was not re-checked before deletion"
    );
    assert_eq!(plan.report.rescued, 1);
    let outcome = &plan.report.outcome;
    assert_eq!(outcome.schema_paths_deleted, 4999);
    assert_eq!(
        (outcome.lost, outcome.lost_keys.clone()),
        (1, vec![EARLY.to_string()])
    );
}

#[test]
fn rows_written_while_quarantining_get_their_objects_back() {
    let (store, mut plan) = slow_store_and_plan();
    let read = reads_with_late_rows();
    let options = DeleteOptions {
        workers: 1,
        ..OPTIONS
    };
    let spec = crate::layout::tests::spec("_hash", "_schema");
    let trash = Trash::new("_trash", &spec, &["s".to_string()]).unwrap();
    quarantine(
        &mut plan,
        &store,
        &trash,
        &options,
        Some(&read),
        &Control::default(),
        &Recorder::default(),
    )
    .unwrap();
    assert!(present(&store, LATE) && present(&store, EARLY));
    assert_eq!(plan.report.rescued, 2);
    let outcome = &plan.report.outcome;
    assert_eq!(
        (outcome.quarantined, outcome.lost, outcome.errors),
        (4998, 0, 0)
    );
}

#[test]
fn a_failed_re_read_stops_the_deletion() {
    let (store, mut plan) = slow_store_and_plan();
    let read = || -> crate::Result<References> { Err(Error::Refused("connection lost".into())) };
    let options = DeleteOptions {
        workers: 1,
        ..OPTIONS
    };
    let progress = Recorder::default();
    execute(
        &mut plan,
        &store,
        &options,
        Some(&read),
        &Control::default(),
        &progress,
    )
    .unwrap();
    let outcome = &plan.report.outcome;
    // The first batch may have gone before the watch's first read failed;
    // nothing after it did.
    assert!(outcome.schema_paths_deleted <= 1000, "{outcome:?}");
    assert_eq!(outcome.schema_paths_deleted + outcome.errors, 5000);
    assert!(plan
        .report
        .warnings
        .iter()
        .any(|w| w.contains("connection lost")));
}

/// The database answers the first re-read, then stops answering (the read
/// hangs, then fails at its timeout). Deletion goes on only while that read
/// is recent enough, then waits, then stops: the rest is never attempted.
#[test]
fn a_database_that_stops_answering_pauses_then_stops_the_deletion() {
    // A batch a second: the deletion outlasts the staleness bound.
    let (store, mut plan) = store_and_plan(std::time::Duration::from_secs(1));
    let calls = AtomicUsize::new(0);
    let read = || -> crate::Result<References> {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(references(Vec::new()).references);
        }
        std::thread::sleep(crate::act::watch::MIN_STALENESS * 2);
        Err(Error::Refused("no answer from the database".into()))
    };
    let options = DeleteOptions {
        workers: 1,
        ..OPTIONS
    };
    let started = std::time::Instant::now();
    execute(
        &mut plan,
        &store,
        &options,
        Some(&read),
        &Control::default(),
        &Recorder::default(),
    )
    .unwrap();
    let outcome = &plan.report.outcome;
    assert!(
        outcome
            .stopped
            .as_deref()
            .is_some_and(|s| s.contains("no answer")),
        "{outcome:?}"
    );
    // The first read is at most MIN_STALENESS (2 s) old for the batches
    // deleted by it: about two or three of the five, never all.
    assert!(
        (1000..=3000).contains(&outcome.schema_paths_deleted),
        "{outcome:?}"
    );
    assert_eq!(outcome.schema_paths_deleted + outcome.errors, 5000);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

fn report(references: u64, sections: &[(&str, u64, u64)]) -> Report {
    Report {
        store: "main".into(),
        schemas: vec!["a".into()],
        references_by_schema: [("a".to_string(), references)].into(),
        sections: sections
            .iter()
            .map(|&(prefix, stored, orphaned)| SectionStats {
                schema: "a".into(),
                prefix: prefix.into(),
                stored,
                orphaned,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn guard_objects_to_unreferenced_schemas_and_mostly_orphaned_sections() {
    assert!(guard_objections(
        &report(10, &[("_hash/a/", 10, 5), ("_schema/a/", 4, 0)]),
        0.5
    )
    .is_empty());
    let mostly = guard_objections(&report(10, &[("_hash/a/", 10, 6)]), 0.5);
    assert_eq!(mostly.len(), 1);
    assert!(
        mostly[0].contains("6 of the 10 objects in _hash/a/"),
        "{mostly:?}"
    );
    assert!(guard_objections(&report(10, &[("_hash/a/", 10, 6)]), 0.6).is_empty());
    let unreferenced = guard_objections(&report(0, &[("_hash/a/", 3, 0)]), 1.0);
    assert!(
        unreferenced[0].contains("no references"),
        "{unreferenced:?}"
    );
    // An empty schema with an empty store is fine.
    assert!(guard_objections(&report(0, &[("_hash/a/", 0, 0)]), 0.5).is_empty());
}

/// Raises an interrupt at the first deletion it hears of.
struct InterruptAtFirst(Interrupt);

impl Progress for InterruptAtFirst {
    fn deleted(&self, _key: &str, _bytes: u64) {
        self.0.request();
    }
}

#[test]
fn an_interrupt_finishes_the_batch_in_flight_starts_no_other_and_journals_it() {
    let (store, mut plan) = slow_store_and_plan();
    let dir = tempfile::tempdir().unwrap();
    let plan_file = dir.path().join("plan.jsonl");
    std::fs::write(&plan_file, "the plan's bytes").unwrap();
    let journal = Journal::create(&plan_file).unwrap();
    let interrupt = Interrupt::default();
    let control = Control {
        interrupt: interrupt.clone(),
        journal: Some(&journal),
        earlier: Vec::new(),
    };
    let options = DeleteOptions {
        workers: 1,
        ..OPTIONS
    };
    let read = || Ok(references(Vec::new()).references);
    let progress = InterruptAtFirst(interrupt);
    execute(
        &mut plan,
        &store,
        &options,
        Some(&read),
        &control,
        &progress,
    )
    .unwrap();

    let outcome = &plan.report.outcome;
    assert_eq!(outcome.schema_paths_deleted, 1000, "{outcome:?}");
    assert_eq!(outcome.left, 4000, "{outcome:?}");
    assert!(outcome.stopped.as_deref().unwrap().contains("interrupted"));
    assert!(plan.report.partial);
    // The final re-check was skipped, and the report says so.
    assert!(outcome.unverified);
    let remaining = (0..5000)
        .filter(|i| present(&store, &format!("_schema/s/t/id={i:05}/f")))
        .count();
    assert_eq!(remaining, 4000);
    assert!(present(&store, LIVE));

    drop(journal);
    let (_, earlier) = Journal::resume(&plan_file).unwrap();
    let earlier = earlier.unwrap();
    assert_eq!(earlier.outcome.schema_paths_deleted, 1000);
    let journaled = (0..5000)
        .map(|i| format!("_schema/s/t/id={i:05}/f"))
        .filter(|key| earlier.done.contains(&key_hash(key)))
        .filter(|key| !present(&store, key))
        .count();
    assert_eq!(
        journaled, 1000,
        "the journal names exactly the deleted keys"
    );
}

/// Executes the plan of [`store_and_plan`] with `read` as its re-reads of
/// the references, given the run's interrupt (for reads that raise it).
fn execute_with_reads(
    read: impl Fn(&Interrupt) -> crate::Result<References> + Sync,
) -> (TestStore, crate::judge::plan::Plan) {
    let (store, mut plan) = store_and_plan(std::time::Duration::ZERO);
    let interrupt = Interrupt::default();
    let control = Control {
        interrupt: interrupt.clone(),
        ..Control::default()
    };
    let read = || read(&interrupt);
    execute(
        &mut plan,
        &store,
        &OPTIONS,
        Some(&read),
        &control,
        &Recorder::default(),
    )
    .unwrap();
    (store, plan)
}

/// An interrupt that abandons the re-read a batch waits for leaves that
/// batch (and the rest) for the next run: not failed, not deleted, and the
/// run stopped by the interrupt, not by the database.
#[test]
fn a_re_read_abandoned_on_an_interrupt_leaves_its_batch_unfailed() {
    let (store, plan) = execute_with_reads(|interrupt| {
        // The workers have taken their first batches and wait for this
        // read when the signal comes.
        std::thread::sleep(std::time::Duration::from_millis(300));
        interrupt.request();
        Err(crate::Error::Interrupted("reading the references".into()))
    });
    let outcome = &plan.report.outcome;
    assert_eq!(outcome.errors, 0, "{outcome:?}");
    assert_eq!(outcome.left, 5000, "{outcome:?}");
    let stopped = outcome.stopped.as_deref().unwrap();
    assert!(stopped.starts_with("interrupted"), "{stopped}");
    assert!(plan.report.partial);
    assert!(present(&store, "_schema/s/t/id=00000/f"));
}

/// A run going on from an interrupted one re-checks, after deleting, what
/// the earlier run deleted too: one a row references by now is reported
/// lost, so the earlier run's skipped re-check is made good.
#[test]
fn the_re_check_after_a_resumed_deletion_covers_the_earlier_runs_deletions() {
    let (store, mut plan) = store_and_plan(std::time::Duration::ZERO);
    // An earlier run deleted the first 1,000 orphans, then was stopped.
    let (earlier, count) = plan
        .split_off(|o| o.key.as_str() < "_schema/s/t/id=01000/f")
        .unwrap();
    let gone: Vec<String> = earlier.orphans().unwrap().map(|o| o.unwrap().key).collect();
    assert_eq!((gone.len(), count), (1000, 1000));
    store.inner.delete("_schema/s/", &gone);
    // A row committed since names one of them.
    let read = || {
        Ok(References::from_paths([
            (RefKind::Schema, LIVE),
            (RefKind::Schema, EARLY),
        ]))
    };
    let control = Control {
        earlier: vec![&earlier],
        ..Control::default()
    };
    execute(
        &mut plan,
        &store,
        &OPTIONS,
        Some(&read),
        &control,
        &Recorder::default(),
    )
    .unwrap();
    let outcome = &plan.report.outcome;
    assert_eq!(outcome.schema_paths_deleted, 4000, "{outcome:?}");
    assert_eq!(
        (outcome.lost, outcome.lost_keys.clone()),
        (1, vec![EARLY.to_string()])
    );
}

/// A signal while the re-check after deleting reads the database: the run
/// is partial and unverified (the run that goes on re-checks), not a run
/// whose database failed.
#[test]
fn an_interrupt_during_the_final_re_check_leaves_the_run_partial_and_unverified() {
    let calls = AtomicUsize::new(0);
    // The first read lets the deletion go; the next (the final re-check,
    // the deletion being quick) is cut short by a signal.
    let (_, plan) = execute_with_reads(|interrupt| match calls.fetch_add(1, Ordering::SeqCst) {
        0 => Ok(references(Vec::new()).references),
        _ => {
            interrupt.request();
            Err(crate::Error::Interrupted("reading the references".into()))
        }
    });
    assert!(plan.report.partial);
    assert!(plan.report.outcome.unverified);
    assert!(
        plan.report
            .warnings
            .iter()
            .any(|w| w.starts_with("interrupted before the re-check after deleting")),
        "{:?}",
        plan.report.warnings
    );
}

/// A reference read abandoned on an interrupt holds no references: judged
/// against it, every listed object would look orphaned (in the plan file,
/// the orphan list and the figures). Nothing is judged; the plan is
/// blocked and partial.
#[test]
fn an_abandoned_reference_read_judges_nothing() {
    let (store, _) = store_and_plan(std::time::Duration::ZERO);
    let interrupted = || {
        Ok(ReferenceScan {
            errors: vec!["interrupted while reading the references".into()],
            interrupted: true,
            ..Default::default()
        })
    };
    let plan = scan_with(
        interrupted,
        sections(),
        &store,
        &options(),
        &Recorder::default(),
    )
    .unwrap();
    assert!(plan.report.partial);
    assert!(plan.is_blocked());
    assert_eq!(plan.orphans().unwrap().count(), 0);
    assert!(plan.report.sections.iter().all(|s| s.orphaned == 0));
}

/// An interrupt raised before the listing ends stops it and blocks the
/// plan: a listing cut short must never pass for the store.
#[test]
fn an_interrupted_scan_is_partial_and_blocks_deletion() {
    let (store, _) = store_and_plan(std::time::Duration::ZERO);
    let interrupt = Interrupt::default();
    interrupt.request();
    let options = ScanOptions {
        interrupt,
        ..options()
    };
    let plan = scan_with(
        || Ok(references(Vec::new())),
        sections(),
        &store,
        &options,
        &Recorder::default(),
    )
    .unwrap();
    assert!(plan.report.partial);
    assert!(plan.is_blocked(), "{:?}", plan.report.scan_errors);
    assert!(plan.report.scan_errors[0].contains("interrupted"));
    assert_eq!(plan.orphans().unwrap().count(), 0);
}

/// The live object, old orphans of different sizes, and a young orphan, in
/// a store listed by name.
fn by_name_store(gone: &str, broken: &str) -> TestStore {
    let store = TestStore {
        by_name: true,
        gone: gone.to_string(),
        broken: broken.to_string(),
        ..TestStore::new()
    };
    let old = SystemTime::now() - std::time::Duration::from_secs(86400);
    store.inner.insert(LIVE, 1, old);
    for (i, key) in ORPHANS.iter().enumerate() {
        store.inner.insert(
            key,
            10 + i as u64,
            old - std::time::Duration::from_secs(i as u64),
        );
    }
    store.inner.insert(
        "_schema/s/t/id=9/f",
        5,
        SystemTime::now() + std::time::Duration::from_secs(60),
    );
    store
}

#[test]
fn a_store_listed_by_name_is_judged_as_one_listed_with_sizes_and_times() {
    let store = by_name_store("", "");
    let scan = |store: &dyn Store| {
        let plan = scan_all(store);
        let orphans: Vec<ObjectMeta> = plan
            .orphans()
            .unwrap()
            .map(|o| o.unwrap())
            .map(|o| ObjectMeta {
                key: o.key,
                size: o.size,
                modified: o.modified,
            })
            .collect();
        (orphans, plan.report.totals(None))
    };
    let (by_name, totals) = scan(&store);
    let (stated, stated_totals) = scan(&store.inner);
    assert_eq!(by_name, stated, "the orphans, with their sizes and times");
    assert_eq!(by_name.len(), ORPHANS.len());
    assert_eq!(totals.young_skipped, 1);
    assert_eq!(
        (
            totals.stored,
            totals.orphaned,
            totals.orphaned_bytes,
            totals.young_skipped
        ),
        (
            stated_totals.stored,
            stated_totals.orphaned,
            stated_totals.orphaned_bytes,
            stated_totals.young_skipped
        )
    );
}

#[test]
fn an_object_gone_before_its_time_is_read_stays_young_and_a_failed_read_blocks() {
    // An old folder object whose one young file (an upload's temporary
    // file, renamed away) is gone when its time is read: it still keeps
    // the whole object young.
    let folder = "_schema/s/t/id=7/f_x";
    let gone = format!("{folder}/.0.1.partial");
    let store = by_name_store(&gone, "");
    let old = SystemTime::now() - std::time::Duration::from_secs(86400);
    for name in ["0.0", ".zarray"] {
        store.inner.insert(&format!("{folder}/{name}"), 3, old);
    }
    store.inner.insert(&gone, 3, SystemTime::now());
    let plan = scan_all(&store);
    let orphans: Vec<String> = plan.orphans().unwrap().map(|o| o.unwrap().key).collect();
    assert!(
        orphans.iter().all(|k| !k.starts_with(folder)),
        "a young file's siblings planned: {orphans:?}"
    );
    assert_eq!(orphans.len(), ORPHANS.len());
    assert!(!plan.is_blocked());

    let store = by_name_store("", ORPHANS[2]);
    let plan = scan_all(&store);
    assert!(
        plan.is_blocked(),
        "a size and time that cannot be read block deletion"
    );
    assert!(
        plan.report
            .scan_errors
            .iter()
            .any(|e| e.contains("the server went away")),
        "{:?}",
        plan.report.scan_errors
    );
}
