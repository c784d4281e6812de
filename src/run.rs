//! The entry points: one function per operation, each doing every safety
//! step itself, in the one right order.
//!
//! ```text
//! collect / apply:  confirm ─► re-check ─► guard ─► watch + delete or quarantine ─► audit
//! ```
//!
//! - **confirm**: a plan read from a file is checked against the store and
//!   the configuration it claims ([`planfile`]); a plan judged from an S3
//!   Inventory has each orphan confirmed with `HEAD`;
//! - **re-check**: a plan whose scan met problems deletes nothing; else the
//!   references are read again, and every orphan a row references by now is
//!   dropped;
//! - **guard**: the mass-deletion guard judges the plan by that fresh read,
//!   and refuses unless forced ([`Guard`]);
//! - **watch**: while deleting, the references are read again and again, and
//!   each batch is filtered by a fresh read;
//! - **audit**: a last read after deleting reports any object lost to a
//!   row written meanwhile.
//!
//! A run judged by a reference snapshot (`refs` in its [`ScanRequest`]) may
//! only quarantine, and makes none of the reads: it has no fresh read to
//! delete by, so deleting is left to [`purge`], which reads the database
//! before it deletes anything ([`crate::refs::snapshot`] says why).
//!
//! Nothing else in the library deletes a plan's orphans, so a caller cannot
//! leave a step out. A [`Session`] holds what one run works on: the
//! configuration, the store, and one database connection (one runtime, one
//! pool) that every read of the run reuses.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use crate::act::journal::{self, Journal, PlanLock};
use crate::act::quarantine::{self as trash, Trash};
use crate::act::watch::{staleness_bound, ReadReferences};
use crate::act::{self, Control, DeleteOptions};
use crate::check::{CheckReport, DamagedRow, Sources};
use crate::config::{Config, StoreSpec};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::judge::inventory::Inventory;
use crate::judge::plan::Plan;
use crate::judge::{self, planfile, reference_query, ReferenceSource, ScanOptions};
use crate::layout;
use crate::layout::shard::{self, Shard, ShardCuts};
use crate::progress::{Notice, Progress};
use crate::refs::snapshot::{self, Snapshot, SnapshotHeader, MAX_SNAPSHOT_SHARDS};
use crate::refs::{Reader, ReferenceQuery, References};
use crate::report::{Report, VerifyReport};
use crate::store::{self, Store};

pub use crate::act::quarantine::{PurgeReport, RestoreOutcome};

/// How a store is opened for a run.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// Threads listing and deleting; tables read at once (at most 8).
    pub jobs: usize,
    /// LIST requests in flight on an S3 store.
    pub list_concurrency: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            jobs: std::thread::available_parallelism().map_or(4, |n| n.get().max(4)),
            list_concurrency: 32,
        }
    }
}

/// One store of a configuration, opened, and its database, connected on
/// first use and then kept for the whole run.
pub struct Session {
    config: Config,
    spec: StoreSpec,
    store: Box<dyn Store>,
    jobs: usize,
    reader: OnceLock<Arc<Reader>>,
    interrupt: Interrupt,
}

impl Session {
    /// Opens the store named `store` (`None`: `stores.default`).
    pub fn open(config: Config, store: Option<&str>, options: SessionOptions) -> Result<Session> {
        let jobs = at_least_one(options.jobs, "jobs")?;
        let spec = config.store(store)?;
        let store = store::open(
            &spec,
            store::OpenOptions {
                jobs,
                list_concurrency: at_least_one(options.list_concurrency, "list_concurrency")?,
            },
        )?;
        Ok(Session {
            config,
            spec,
            store,
            jobs,
            reader: OnceLock::new(),
            interrupt: Interrupt::default(),
        })
    }

    /// Makes the session's runs stop early, cleanly, once `interrupt` is
    /// raised (see [`crate::interrupt`]).
    pub fn with_interrupt(mut self, interrupt: Interrupt) -> Session {
        self.interrupt = interrupt;
        self
    }

    /// The store's configuration.
    pub fn spec(&self) -> &StoreSpec {
        &self.spec
    }

    /// The opened store, for listing (`djgc ls`).
    pub fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    /// The database, connected on first use.
    fn reader(&self) -> Result<&Reader> {
        if let Some(reader) = self.reader.get() {
            return Ok(reader);
        }
        let reader = Reader::connect(&self.config.database, self.jobs, self.interrupt.clone())?;
        Ok(self.reader.get_or_init(|| Arc::new(reader)))
    }

    /// The query that reads `schemas`' references to this store.
    fn query(&self, schemas: &[String], schema_codecs: &[String]) -> Result<ReferenceQuery> {
        reference_query(&self.spec, schemas, schema_codecs, self.jobs)
    }
}

fn at_least_one(n: usize, setting: &str) -> Result<usize> {
    match n {
        0 => Err(Error::Usage(format!("`{setting}` must be at least 1"))),
        n => Ok(n),
    }
}

/// Which schemas a scan collects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schemas {
    Named(Vec<String>),
    /// Every schema with codec columns for the store; those whose sections
    /// would not be their own are skipped with a warning.
    All,
}

/// What to scan, and what to write beside the report.
#[derive(Clone, Debug)]
pub struct ScanRequest {
    pub schemas: Schemas,
    /// Objects that arrived more recently are never orphans.
    pub min_age: Duration,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    pub schema_codecs: Vec<String>,
    /// The share of the key space to judge (`None`: all of it).
    pub shard: Option<Shard>,
    /// Read the store's objects from this S3 Inventory manifest instead of
    /// listing.
    pub inventory: Option<String>,
    /// The run this is a shard of, written into the report.
    pub run_id: Option<String>,
    /// Write every orphan's key, one per line, here.
    pub orphans_out: Option<PathBuf>,
    /// Write the plan here, for [`apply`].
    pub plan_out: Option<PathBuf>,
    /// Judge by this reference snapshot ([`snapshot_references`]) instead
    /// of reading the database; such a run may quarantine, never delete.
    pub refs: Option<PathBuf>,
}

impl ScanRequest {
    /// Named schemas, with the defaults: a day's `min_age`, nothing written.
    pub fn new(schemas: Schemas) -> ScanRequest {
        ScanRequest {
            schemas,
            min_age: DEFAULT_MIN_AGE,
            schema_codecs: Vec::new(),
            shard: None,
            inventory: None,
            run_id: None,
            orphans_out: None,
            plan_out: None,
            refs: None,
        }
    }
}

/// What to check ([`check`]).
#[derive(Clone, Debug)]
pub struct CheckRequest {
    pub schemas: Schemas,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    pub schema_codecs: Vec<String>,
    /// Check only the references this shard counts (`None`: all).
    pub shard: Option<Shard>,
    /// Read the store's objects from this S3 Inventory manifest instead of
    /// listing.
    pub inventory: Option<String>,
}

/// What to write a reference snapshot of, and where.
#[derive(Clone, Debug)]
pub struct SnapshotRequest {
    pub schemas: Schemas,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    pub schema_codecs: Vec<String>,
    /// The shards the snapshot is cut into, as `--shard K/N` will name them.
    pub shards: usize,
    /// The new folder to write it to.
    pub out: PathBuf,
}

/// The age under which objects are kept unless told otherwise.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(24 * 3600);

/// What to carry out: a plan written by a scan.
#[derive(Clone, Debug)]
pub struct ApplyRequest {
    pub plan: PathBuf,
    /// The shard the plan must have been made for (`None`: its own).
    pub shard: Option<Shard>,
    /// Objects that arrived more recently are kept, judged again now.
    pub min_age: Duration,
    /// The S3 Inventory manifest the plan was judged from, given again.
    pub inventory: Option<String>,
    pub run_id: Option<String>,
}

/// What the mass-deletion guard allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guard {
    /// Refuse when more than this share of a section's objects are orphans.
    pub max_orphan_fraction: f64,
    /// Delete even when the guard objects.
    pub force: bool,
}

impl Default for Guard {
    fn default() -> Self {
        Guard {
            max_orphan_fraction: 0.5,
            force: false,
        }
    }
}

/// What becomes of a plan's orphans.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// Nothing: only report (the default everywhere).
    DryRun,
    Delete,
    /// Move them into a new quarantine run under this trash prefix.
    Quarantine {
        trash_prefix: String,
    },
}

/// How to dispose of a plan's orphans.
#[derive(Clone, Debug, PartialEq)]
pub struct Disposal {
    pub action: Action,
    pub guard: Guard,
    /// Delete requests in flight (default: the session's jobs).
    pub delete_concurrency: Option<usize>,
    /// After deleting, check every row of the run's schemas for its object
    /// ([`check`]); a damaged row fails the run.
    pub verify: bool,
}

impl Disposal {
    /// Report only; the guard says what deleting would refuse.
    pub fn dry_run(guard: Guard) -> Disposal {
        Disposal {
            action: Action::DryRun,
            guard,
            delete_concurrency: None,
            verify: false,
        }
    }

    fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.guard.max_orphan_fraction) {
            return Err(Error::Usage(format!(
                "`max_orphan_fraction` {} is not between 0 and 1",
                self.guard.max_orphan_fraction
            )));
        }
        if let (Some(n), false) = (self.delete_concurrency, self.action == Action::DryRun) {
            at_least_one(n, "delete_concurrency")?;
        }
        Ok(())
    }
}

/// How a collection ended, for exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Done without errors (a dry run included).
    Clean,
    /// Done, but some objects failed, were lost, or could not be verified.
    ItemsFailed,
    /// Nothing was deleted: the scan met problems or a safety check refused.
    Refused,
}

/// What a scan, collection or application found and did.
#[derive(Debug)]
pub struct Collection {
    pub report: Report,
    pub verdict: Verdict,
}

/// Scans for the orphans of the request's schemas; deletes nothing. The
/// guard's objections are told as [`Notice::WouldRefuse`].
pub fn scan(
    session: &Session,
    request: &ScanRequest,
    guard: Guard,
    progress: &dyn Progress,
) -> Result<Collection> {
    collect(session, request, &Disposal::dry_run(guard), progress)
}

/// Scans, then disposes of the orphans as `disposal` says, with every
/// safety step (see the module docs).
pub fn collect(
    session: &Session,
    request: &ScanRequest,
    disposal: &Disposal,
    progress: &dyn Progress,
) -> Result<Collection> {
    let started = SystemTime::now();
    disposal.check()?;
    if disposal.verify && request.shard.is_some_and(|s| !s.is_whole()) {
        return Err(sharded_verify());
    }
    if disposal.verify && request.refs.is_some() {
        return Err(Error::Usage(
            "`verify` reads the database, which a run judged by a reference snapshot (`refs`) \
             does not: run `djgc check` after `djgc purge` instead"
                .to_string(),
        ));
    }
    let snapshot = request.refs.as_deref().map(Snapshot::open).transpose()?;
    if snapshot.is_some() && disposal.action == Action::Delete {
        return Err(Error::Usage(
            "`refs`: a run judged by a reference snapshot may quarantine (`quarantine`), not \
             delete: the snapshot is older than the run, and only `djgc purge`, which reads \
             the database afresh, deletes what it moved"
                .to_string(),
        ));
    }
    let _plan_lock = match &request.plan_out {
        Some(path) => lock_plan(path, progress)?,
        None => None,
    };
    let mut schemas = resolve_schemas(session, &request.schemas, &request.schema_codecs, progress)?;
    if let Some(snapshot) = &snapshot {
        // The snapshot's order of the same schemas, so their sections line up.
        let taken = &snapshot.header().schemas;
        if schemas.len() == taken.len() && taken.iter().all(|s| schemas.contains(s)) {
            schemas = taken.clone();
        }
        let age = started.duration_since(snapshot.taken()).unwrap_or_default();
        if age > request.min_age.max(Duration::from_secs(3600)) {
            progress.notice(Notice::Warning(&format!(
                "the reference snapshot {} was taken {} ago: an object a row written since \
                 then reuses is moved to the trash and missing until `djgc purge` puts it back",
                snapshot.dir().display(),
                humantime::format_duration(Duration::from_secs(age.as_secs()))
            )));
        }
    }
    let references = match &snapshot {
        None => ReferenceSource::Database(session.reader()?),
        Some(snapshot) => {
            let shard = snapshot.shard(request.shard)?;
            let cuts = snapshot.cuts_for(
                &planfile::identity(&session.spec, &session.config.database),
                &schemas,
                &request.schema_codecs,
                &layout::sections(&session.spec, &schemas)?,
            )?;
            ReferenceSource::Snapshot {
                snapshot,
                cuts,
                shard,
            }
        }
    };
    // A snapshot's references are as old as its read: age is judged from then.
    let scanned_at = snapshot
        .as_ref()
        .map_or(started, |s| s.taken().min(started));
    let options = ScanOptions {
        schemas,
        cutoff: cutoff_at(scanned_at, request.min_age),
        jobs: session.jobs,
        schema_codecs: request.schema_codecs.clone(),
        shard: request.shard,
        inventory: request
            .inventory
            .as_deref()
            .map(|manifest| Inventory::open(manifest, &session.spec).map(Arc::new))
            .transpose()?,
        interrupt: session.interrupt.clone(),
    };
    let mut plan = judge::scan(
        &references,
        &session.spec,
        session.store(),
        &options,
        progress,
    )?;
    let query = plan_query(session, &plan, &request.schema_codecs)?;
    plan.report.run_id = request.run_id.clone();
    if let Some(path) = &request.orphans_out {
        plan.write_orphan_list(path)?;
    }
    let mut journal = None;
    if let Some(path) = &request.plan_out {
        let identity = planfile::identity(&session.spec, &session.config.database);
        planfile::write(path, &plan, identity, &request.schema_codecs)?;
        if disposal.action != Action::DryRun && !plan.is_blocked() {
            journal = unrecorded(Journal::create(path), progress)?;
        }
    }
    if disposal.action != Action::DryRun && plan.report.inventory.is_some() && !plan.is_blocked() {
        plan.report.changed_skipped = planfile::confirm_unchanged(&mut plan, session.store())?;
    }
    let control = Control {
        interrupt: session.interrupt.clone(),
        journal: journal.as_ref(),
        earlier: Vec::new(),
    };
    let rereads = match snapshot {
        Some(_) => Rereads::ByPurge,
        None => Rereads::Database(&query),
    };
    let mut collection = finish(session, plan, rereads, disposal, &control, progress)?;
    verify(
        session,
        &mut collection,
        disposal,
        &request.schema_codecs,
        progress,
    )?;
    Ok(collection.closed(started))
}

/// Carries out a plan written by a scan: its orphans that are still
/// unchanged, old enough and unreferenced, with every safety step.
pub fn apply(
    session: &Session,
    request: &ApplyRequest,
    disposal: &Disposal,
    progress: &dyn Progress,
) -> Result<Collection> {
    let started = SystemTime::now();
    disposal.check()?;
    let _plan_lock = lock_plan(&request.plan, progress)?;
    let (header, mut plan) = planfile::read(&request.plan)?;
    // Whether the scan was interrupted is its own story (and blocks the
    // plan); this run is partial only if it is interrupted itself.
    plan.report.partial = false;
    // A plan made for another store (or database) than the session's is
    // refused here, whoever opened the session.
    planfile::check_identity(
        &header,
        &planfile::identity(&session.spec, &session.config.database),
    )?;
    planfile::check_sections(&header, &mut plan, &session.spec)?;
    let planned = plan.report.shard.as_ref().map(|s| s.shard);
    if disposal.verify && planned.is_some_and(|s| !s.is_whole()) {
        return Err(sharded_verify());
    }
    if let Some(shard) = request.shard.filter(|s| Some(*s) != planned) {
        return Err(Error::Usage(format!(
            "{} was made for {}, not for shard {shard}",
            request.plan.display(),
            planned.map_or("the whole store".to_string(), |s| format!("shard {s}"))
        )));
    }
    let query = plan_query(session, &plan, &header.schema_codecs)?;
    plan.report.run_id = request.run_id.clone();
    let inventory = plan_inventory(&plan, request.inventory.as_deref(), &session.spec)?;
    // What earlier, interrupted runs of this plan did is not done again.
    let (journal, earlier) = match disposal.action {
        Action::DryRun => (None, None),
        _ => match unrecorded(Journal::resume(&request.plan), progress)? {
            Some((journal, earlier)) => (Some(journal), earlier),
            None => (None, None),
        },
    };
    let done_before = match &earlier {
        Some(earlier) => {
            let (done, count) =
                plan.split_off(|o| earlier.done.contains(&planfile::key_hash(&o.key)))?;
            progress.notice(Notice::Info(&format!(
                "going on from {}: {count} orphans were disposed of by earlier runs of this plan",
                journal::path_of(&request.plan).display(),
            )));
            Some((done, count))
        }
        None => None,
    };
    let mut dropped = None;
    if !plan.is_blocked() {
        let (changed, count) = planfile::confirm_for_apply(
            &mut plan,
            session.store(),
            inventory.as_ref(),
            cutoff(request.min_age),
            &session.interrupt,
        )?;
        plan.report.changed_skipped = count;
        dropped = Some(changed);
    }
    // The re-check after deleting also looks at what earlier runs deleted:
    // recorded as done, or found gone (deleted by a run killed before it
    // could record them).
    let mut earlier_deletions: Vec<&Plan> = Vec::new();
    if let Some((done, _)) = &done_before {
        earlier_deletions.push(done);
        earlier_deletions.extend(dropped.as_ref());
    }
    let control = Control {
        interrupt: session.interrupt.clone(),
        journal: journal.as_ref(),
        earlier: earlier_deletions,
    };
    let rereads = Rereads::Database(&query);
    let mut collection = finish(session, plan, rereads, disposal, &control, progress)?;
    verify(
        session,
        &mut collection,
        disposal,
        &header.schema_codecs,
        progress,
    )?;
    if let (Some(mut earlier), Some((_, count))) = (earlier, done_before) {
        let report = &mut collection.report;
        report.resumed_after = count;
        // The re-check after this run's deletion looked at the earlier
        // runs' deletions too; a quarantine's are re-checked by `purge`.
        let rechecked = !report.dry_run
            && !report.partial
            && !report.outcome.unverified
            && collection.verdict != Verdict::Refused;
        if rechecked {
            earlier.outcome.unverified = false;
        }
        report.outcome.add_counts(&earlier.outcome);
        if report.outcome.unverified && collection.verdict == Verdict::Clean {
            collection.verdict = Verdict::ItemsFailed;
        }
    }
    Ok(collection.closed(started))
}

/// Refuses `verify` on one shard: the check reads every row of the
/// schemas, which N shards would do N times.
fn sharded_verify() -> Error {
    Error::Usage(
        "`verify` checks the rows of the whole store, which every shard would do again: run \
         `djgc check` once after the shards instead"
            .to_string(),
    )
}

/// Damaged rows a run's report names before the rest are only counted.
const VERIFY_ROWS_SHOWN: usize = 100;

/// The check after deleting, when `disposal` asks for it and the run
/// disposed of its orphans (not a dry run, not refused, not interrupted;
/// also when there was nothing to delete): the rows of the run's schemas
/// whose objects are
/// missing or incomplete, told as problems and kept in the report
/// (`verified`); any such row, or a check that could not be completed,
/// fails the run.
fn verify(
    session: &Session,
    collection: &mut Collection,
    disposal: &Disposal,
    schema_codecs: &[String],
    progress: &dyn Progress,
) -> Result<()> {
    let report = &collection.report;
    if !disposal.verify
        || report.dry_run
        || report.partial
        || collection.verdict == Verdict::Refused
    {
        return Ok(());
    }
    let query = session.query(&report.schemas, schema_codecs)?;
    let mut shown = Vec::new();
    let mut damaged = |row: DamagedRow| {
        if shown.len() < VERIFY_ROWS_SHOWN {
            shown.push(format!(
                "{}.{} ({}) {} {}: {:?}, {}",
                row.schema, row.table, row.key, row.column, row.path, row.problem, row.detail
            ));
        }
    };
    let sources = Sources {
        reader: session.reader()?,
        store: session.store(),
        inventory: None,
        jobs: session.jobs,
        interrupt: &session.interrupt,
    };
    let checked = crate::check::check(&sources, &query, progress, &mut damaged);
    let verified = match checked {
        Ok(checked) => VerifyReport {
            references_checked: checked.references_checked,
            rows_damaged: checked.rows_damaged,
            objects_damaged: checked.objects_damaged,
            damaged_rows: shown,
            errors: checked.errors,
        },
        Err(e) => VerifyReport {
            errors: vec![e.to_string()],
            ..VerifyReport::default()
        },
    };
    for row in &verified.damaged_rows {
        progress.notice(Notice::Problem(&format!("verify: DAMAGED {row}")));
    }
    for error in &verified.errors {
        progress.notice(Notice::Problem(&format!(
            "verify: the check after deleting could not be completed: {error}"
        )));
    }
    if verified.rows_damaged > 0 || !verified.errors.is_empty() {
        collection.verdict = Verdict::ItemsFailed;
    }
    collection.report.verified = Some(verified);
    Ok(())
}

/// The lock of the plan file at `plan` ([`PlanLock`]), or `None` (told as
/// a warning) where none can be had: held by another run, it refuses.
fn lock_plan(plan: &std::path::Path, progress: &dyn Progress) -> Result<Option<PlanLock>> {
    let lock = PlanLock::take(plan)?;
    if lock.is_none() {
        progress.notice(Notice::Warning(&format!(
            "{}: no lock can be taken here (a folder djgc cannot write, or a file system \
             without locks), so a second run on this plan at once would not be refused",
            plan.display()
        )));
    }
    Ok(lock)
}

/// A plan's progress file as opened, or `None` (told as a warning) when it
/// cannot be written: the run goes on, and if stopped, the next starts
/// over. A damaged progress file is an error: whoever runs djgc decides.
fn unrecorded<T>(opened: Result<T>, progress: &dyn Progress) -> Result<Option<T>> {
    match opened {
        Ok(opened) => Ok(Some(opened)),
        Err(e @ Error::Usage(_)) => Err(e),
        Err(e) => {
            progress.notice(Notice::Warning(&format!(
                "progress cannot be recorded, so a stopped run would start over: {e}"
            )));
            Ok(None)
        }
    }
}

/// The store a plan file was made for, as its header says: open a
/// [`Session`] on it to [`apply`] the plan.
pub fn plan_store(plan: &std::path::Path) -> Result<String> {
    let header = planfile::read_header(plan)?;
    Ok(header.identity.get("store").cloned().unwrap_or_default())
}

/// Objects that arrived after this are too young to judge; an age past the
/// calendar's start keeps everything.
fn cutoff(min_age: Duration) -> SystemTime {
    cutoff_at(SystemTime::now(), min_age)
}

/// The age cutoff of references read at `read`: objects that arrived
/// after `read - min_age` are kept.
fn cutoff_at(read: SystemTime, min_age: Duration) -> SystemTime {
    read.checked_sub(min_age).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The schemas a request names, or with [`Schemas::All`] those the
/// database's catalog has codec columns for this store in (the ones
/// skipped told as warnings).
fn resolve_schemas(
    session: &Session,
    schemas: &Schemas,
    schema_codecs: &[String],
    progress: &dyn Progress,
) -> Result<Vec<String>> {
    match schemas {
        Schemas::Named(names) => layout::schema_names(names),
        Schemas::All => {
            let found = session
                .reader()?
                .all_schemas(&session.spec, schema_codecs)?;
            for skipped in &found.skipped {
                progress.notice(Notice::Warning(skipped));
            }
            Ok(found.schemas)
        }
    }
}

/// Finds the rows of the request's schemas whose objects are missing,
/// of another size, or (folders) empty, without their manifest or missing
/// a file it lists ([`crate::check`]), handing each to `damaged` as it is
/// found. Reads and lists only; changes nothing.
pub fn check(
    session: &Session,
    request: &CheckRequest,
    progress: &dyn Progress,
    damaged: &mut (dyn FnMut(DamagedRow) + Send),
) -> Result<CheckReport> {
    let schemas = resolve_schemas(session, &request.schemas, &request.schema_codecs, progress)?;
    let mut query = session.query(&schemas, &request.schema_codecs)?;
    let reader = session.reader()?;
    if let Some(shard) = request.shard.filter(|s| !s.is_whole()) {
        // The cuts a sharded scan places, so shards of either cover the same keys.
        let sample = reader.sample_schema_paths(&query)?;
        let mut sections = query.sections.clone();
        shard::assign_ranges(&session.spec, &mut sections, shard, &sample);
        query = query.limited_to(sections, Some(shard));
    }
    let inventory = request
        .inventory
        .as_deref()
        .map(|manifest| Inventory::open(manifest, &session.spec))
        .transpose()?;
    let sources = Sources {
        reader,
        store: session.store(),
        inventory: inventory.as_ref(),
        jobs: session.jobs,
        interrupt: &session.interrupt,
    };
    crate::check::check(&sources, &query, progress, damaged)
}

/// Writes a reference snapshot ([`crate::refs::snapshot`]): the request's
/// references read once, cut for `request.shards` shards, so that each
/// shard's run (`refs` in its [`ScanRequest`]) reads no row itself.
/// Deletes nothing.
pub fn snapshot_references(
    session: &Session,
    request: &SnapshotRequest,
    progress: &dyn Progress,
) -> Result<SnapshotHeader> {
    let taken = SystemTime::now();
    if !(1..=MAX_SNAPSHOT_SHARDS).contains(&request.shards) {
        return Err(Error::Usage(format!(
            "`shards` {} is not between 1 and {MAX_SNAPSHOT_SHARDS}",
            request.shards
        )));
    }
    let schemas = resolve_schemas(session, &request.schemas, &request.schema_codecs, progress)?;
    let query = session.query(&schemas, &request.schema_codecs)?;
    let reader = session.reader()?;
    // Only schema sections need a sample to be cut, and only into shares.
    let sample = match request.shards {
        1 => Vec::new(),
        _ => reader.sample_schema_paths(&query)?,
    };
    let cuts = ShardCuts::new(
        query.sections.clone(),
        shard::section_cuts(&session.spec, &query.sections, request.shards, &sample),
        request.shards,
    )?;
    snapshot::take(
        reader,
        &query,
        &cuts,
        planfile::identity(&session.spec, &session.config.database),
        taken,
        &request.out,
        progress,
    )
}

/// The S3 Inventory a plan was judged from, opened again to count what the
/// bucket held; `None` for a plan judged from a listing. The manifest is
/// the one the caller gives, which must be the plan's: a path read from
/// the plan file would let whoever edits it choose what counts.
fn plan_inventory(plan: &Plan, given: Option<&str>, spec: &StoreSpec) -> Result<Option<Inventory>> {
    let planned = plan.report.inventory.as_ref().map(|i| i.manifest.as_str());
    match (planned, given) {
        (None, None) => Ok(None),
        (Some(planned), Some(given)) if planned == given => Inventory::open(given, spec).map(Some),
        (Some(planned), _) => Err(Error::Usage(format!(
            "the plan says it was judged from the S3 Inventory {planned:?}; check that this is \
             the inventory you made it from, and name it (`inventory`) to apply the plan"
        ))),
        (None, Some(_)) => Err(Error::Usage(
            "the plan was judged from a listing, not from an S3 Inventory; apply it without \
             `inventory`"
                .to_string(),
        )),
    }
}

/// The reference query that re-checks `plan` before and while it is
/// carried out: its schemas, and its sections with their shard ranges.
fn plan_query(session: &Session, plan: &Plan, schema_codecs: &[String]) -> Result<ReferenceQuery> {
    Ok(session
        .query(&plan.report.schemas, schema_codecs)?
        .limited_to(
            plan.sections.clone(),
            plan.report.shard.as_ref().map(|s| s.shard),
        ))
}

/// Tells the plan's problems and disposes of its orphans under `control`.
fn finish(
    session: &Session,
    mut plan: Plan,
    rereads: Rereads<'_>,
    disposal: &Disposal,
    control: &Control<'_>,
    progress: &dyn Progress,
) -> Result<Collection> {
    for warning in &plan.report.warnings {
        progress.notice(Notice::Warning(warning));
    }
    for problem in &plan.report.scan_errors {
        progress.notice(Notice::Problem(problem));
    }
    let verdict = dispose(session, &mut plan, rereads, disposal, control, progress)?;
    Ok(Collection {
        report: plan.report,
        verdict,
    })
}

impl Collection {
    /// Closes the report of a run begun at `started`; an interrupted run
    /// ends as failed (exit 1), whatever it did before.
    fn closed(mut self, started: SystemTime) -> Collection {
        self.report.finish_run(started);
        if self.report.partial {
            self.verdict = Verdict::ItemsFailed;
        }
        self
    }
}

/// How the database is read again around a disposal.
#[derive(Clone, Copy)]
enum Rereads<'a> {
    /// Before (the re-check), while (the watch) and after (the audit)
    /// disposing, by this query.
    Database(&'a ReferenceQuery),
    /// Not at all: a run judged by a reference snapshot, which may only
    /// quarantine; `purge` reads the database before it deletes anything.
    ByPurge,
}

/// Deletes or quarantines a plan's orphans after re-reading the database,
/// or in a dry run says what the guard would object to.
fn dispose(
    session: &Session,
    plan: &mut Plan,
    rereads: Rereads<'_>,
    disposal: &Disposal,
    control: &Control<'_>,
    progress: &dyn Progress,
) -> Result<Verdict> {
    let trash = match &disposal.action {
        Action::DryRun => {
            let objections =
                act::guard_objections(&plan.report, disposal.guard.max_orphan_fraction);
            for objection in &objections {
                progress.notice(Notice::WouldRefuse(objection));
            }
            return Ok(match plan.is_blocked() {
                true => Verdict::Refused,
                false => Verdict::Clean,
            });
        }
        Action::Delete => None,
        Action::Quarantine { trash_prefix } => Some(Trash::new(
            trash_prefix,
            &session.spec,
            &plan.report.schemas,
        )?),
    };
    let query = match rereads {
        Rereads::Database(query) => Some(query),
        Rereads::ByPurge if trash.is_some() => None,
        Rereads::ByPurge => {
            return Err(Error::Usage(
                "only a quarantine may go without reading the database again".to_string(),
            ))
        }
    };
    if let (Some(query), false) = (query, plan.is_blocked()) {
        judge::recheck(plan, session.reader()?, query)?;
    }
    if plan.is_blocked() {
        progress.notice(Notice::Problem(
            "refused to delete: the scan met problems (above); nothing was deleted",
        ));
        return Ok(Verdict::Refused);
    }
    let options = DeleteOptions {
        workers: disposal.delete_concurrency.unwrap_or(session.jobs),
        max_orphan_fraction: disposal.guard.max_orphan_fraction,
        force: disposal.guard.force,
    };
    let reader = query.map(|_| session.reader()).transpose()?;
    let store = session.store();
    let warned = plan.report.warnings.len();
    let read_live = query
        .zip(reader)
        .map(|(query, reader)| move || reader.references_for_deletion(query));
    let live = read_live.as_ref().map(|read| read as &ReadReferences<'_>);
    let done = match &trash {
        Some(trash) => {
            act::quarantine(plan, store, trash, &options, live, control, progress).map(|run| {
                if let Some(header) = run {
                    progress.notice(Notice::Info(&format!(
                        "quarantine run {} under {}/ (restore with: djgc restore {})",
                        header.run,
                        trash.prefix(),
                        header.run
                    )));
                    if query.is_none() {
                        progress.notice(Notice::Info(
                            "judged by a reference snapshot, and not checked against the \
                             database since: `djgc purge` reads it and puts back what rows \
                             reference before it deletes anything",
                        ));
                    }
                }
            })
        }
        None => act::execute(plan, store, &options, live, control, progress),
    };
    for warning in &plan.report.warnings[warned..] {
        progress.notice(Notice::Warning(warning));
    }
    Ok(audit(plan, done, progress))
}

/// Tells what a deletion lost or could not verify, and judges how it ended.
fn audit(plan: &Plan, done: Result<()>, progress: &dyn Progress) -> Verdict {
    let outcome = &plan.report.outcome;
    let problem = |message: &str| progress.notice(Notice::Problem(message));
    if outcome.unverified {
        problem(
            "the database could not be read again after deleting: losses to rows written \
             meanwhile cannot be ruled out (see the warning above)",
        );
    }
    for key in &outcome.lost_keys {
        problem(&format!(
            "LOST: {key} was deleted, but a row written meanwhile references it"
        ));
    }
    if outcome.lost > outcome.lost_keys.len() as u64 {
        problem(&format!(
            "LOST: ... and {} more",
            outcome.lost - outcome.lost_keys.len() as u64
        ));
    }
    let disposed = plan.report.deleted() + outcome.quarantined;
    match done {
        Err(e @ Error::Refused(_)) => {
            problem(&e.to_string());
            Verdict::Refused
        }
        Err(e) => {
            problem(&format!("deletion stopped early: {e}"));
            Verdict::ItemsFailed
        }
        Ok(()) => match &outcome.stopped {
            // The database stopped answering: nothing lost if nothing went.
            Some(why) if disposed == 0 => {
                problem(&format!("refused to delete: {why}; nothing was deleted"));
                Verdict::Refused
            }
            Some(why) => {
                problem(&format!("{why}; {disposed} objects were deleted before"));
                Verdict::ItemsFailed
            }
            None if outcome.errors + outcome.lost > 0 || outcome.unverified => Verdict::ItemsFailed,
            None => Verdict::Clean,
        },
    }
}

/// Puts every object of quarantine run `run` back where it was, never
/// replacing anything; each conflict and error is told as a problem.
pub fn restore(
    session: &Session,
    trash_prefix: &str,
    run: &str,
    progress: &dyn Progress,
) -> Result<RestoreOutcome> {
    let trash = Trash::new(trash_prefix, &session.spec, &[])?;
    let mut failed = |message: String| progress.notice(Notice::Problem(&message));
    trash::restore(session.store(), &trash, run, &mut failed)
}

/// What to purge from the trash.
#[derive(Clone, Debug)]
pub struct PurgeRequest {
    /// Runs quarantined longer ago than this are purged.
    pub older_than: Duration,
    pub trash_prefix: String,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    pub schema_codecs: Vec<String>,
    /// Purge (otherwise only count what would be purged and put back).
    pub delete: bool,
}

/// Deletes the quarantine runs older than the grace period, first putting
/// back every object referenced again.
///
/// One read of the database serves every batch (of every run) of the same
/// schemas while it is fresh, by the bound the watch of a deletion keeps
/// ([`staleness_bound`]), asked before each batch of up to 1,000 entries. So the shards of a run judged by one reference snapshot
/// are purged on about one read, and a large run no longer deletes for
/// hours on a read made at its start.
pub fn purge(
    session: &Session,
    request: &PurgeRequest,
    progress: &dyn Progress,
) -> Result<PurgeReport> {
    let trash = Trash::new(&request.trash_prefix, &session.spec, &[])?;
    let mut latest: Option<(Vec<String>, Instant, Duration, Arc<References>)> = None;
    let mut reads = 0u64;
    let mut references = |schemas: &[String]| {
        let mut wanted = schemas.to_vec();
        wanted.sort();
        if let Some((read_for, began, took, references)) = &latest {
            if *read_for == wanted && began.elapsed() <= staleness_bound(*took) {
                return Ok(references.clone());
            }
        }
        let began = Instant::now();
        let query = session.query(schemas, &request.schema_codecs)?;
        let references = Arc::new(session.reader()?.references_for_deletion(&query)?);
        reads += 1;
        latest = Some((wanted, began, began.elapsed(), references.clone()));
        Ok(references)
    };
    let mut failed = |message: String| progress.notice(Notice::Problem(&message));
    let mut report = trash::purge(
        session.store(),
        &trash,
        request.older_than,
        SystemTime::now(),
        &mut references,
        !request.delete,
        &mut failed,
    )?;
    report.database_reads = reads;
    Ok(report)
}
