//! The reference scan: every path that live rows point to in one store.
//!
//! Tables are read concurrently over a small connection pool, a large one
//! as several parts cut by its leading primary-key column ([`db::TablePart`]);
//! each reader hashes the paths it finds into a local batch and merges it
//! into the shared sets under a lock, so the lock is taken once per few
//! thousand rows. The sets are sorted arrays of hashes ([`refset::PackedSet`]),
//! built once every table is read. The
//! scan never stops at the first bad row: every problem is recorded (a few per
//! column, then a count), because any of them blocks deletion and the user
//! should see them all at once.
//!
//! The coverage rule ([`References::covers`]) is dj.gc's `_is_covered`: a key
//! is kept when it, or one of its ancestor folders, is referenced, or when it
//! is the `.manifest.json` sidecar of such a key. djgc applies it to both
//! sections and across all reference kinds, which can only keep more.

pub mod codec;
pub mod db;
pub mod refset;
pub mod snapshot;

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::future::{self, Either};
use futures_util::stream::{self, StreamExt};

use crate::config::{DatabaseConfig, StoreSpec};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::layout::shard::{
    counts_reference, covers_some_range, sample_path, PathSample, Shard, ShardCuts,
};
use crate::layout::{Section, MANIFEST_SUFFIX};
use crate::progress::Progress;
use crate::refs::codec::{referenced_path, RefKind};
use crate::refs::db::{CodecTable, Database, TablePart};
use crate::refs::refset::{path_hash, undotted, undotted_hash, PackedSet, PackedSetBuilder};

/// The path a key is probed by: itself, or for a `.manifest.json` sidecar
/// the object it describes, without trailing dots ([`undotted`]).
fn probed_path(key: &str) -> std::borrow::Cow<'_, str> {
    undotted(key.strip_suffix(MANIFEST_SUFFIX).unwrap_or(key))
}

/// One value for each kind of reference column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ByKind<T> {
    pub hash: T,
    pub schema: T,
    pub other: T,
}

impl<T> ByKind<T> {
    fn get(&self, kind: RefKind) -> &T {
        match kind {
            RefKind::Hash => &self.hash,
            RefKind::Schema => &self.schema,
            RefKind::Other => &self.other,
        }
    }

    fn get_mut(&mut self, kind: RefKind) -> &mut T {
        match kind {
            RefKind::Hash => &mut self.hash,
            RefKind::Schema => &mut self.schema,
            RefKind::Other => &mut self.other,
        }
    }

    fn map<U>(self, f: impl Fn(T) -> U) -> ByKind<U> {
        ByKind {
            hash: f(self.hash),
            schema: f(self.schema),
            other: f(self.other),
        }
    }
}

/// Referenced paths of one store, by the kind of column they came from.
pub type References = ByKind<PackedSet>;

/// Distinct referenced paths per set.
pub type ReferenceCounts = ByKind<u64>;

impl References {
    /// The references to these paths (for tests and benches; a scan
    /// gathers its own).
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = (RefKind, &'a str)>) -> References {
        let mut gathered = Gathered::default();
        for (kind, path) in paths {
            gathered.push(kind, path_hash(path), true);
        }
        gathered.build().0
    }

    fn contains(&self, hash: u64) -> bool {
        self.hash.contains(hash) || self.schema.contains(hash) || self.other.contains(hash)
    }

    /// Distinct paths held, over the three sets.
    pub fn len(&self) -> usize {
        self.hash.len() + self.schema.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a stored key is accounted for by some reference.
    pub fn covers(&self, key: &str) -> bool {
        let key = probed_path(key);
        if self.contains(undotted_hash(&key)) {
            return true;
        }
        key.rmatch_indices('/')
            .map(|(i, _)| i)
            .filter(|&i| i > 0)
            .any(|i| self.contains(undotted_hash(&key[..i])))
    }

    /// [`References::covers`] of each key, appended to `covered`. The keys
    /// themselves are probed together ([`PackedSet::contains_each`]) in the
    /// set of kind `likely`, where a key of their section is nearly always
    /// found; only a key not found there is judged by `covers` alone.
    pub fn covers_each(&self, keys: &[&str], likely: RefKind, covered: &mut Vec<bool>) {
        let hashes: Vec<u64> = keys
            .iter()
            .map(|key| undotted_hash(&probed_path(key)))
            .collect();
        let first = covered.len();
        self.get(likely).contains_each(&hashes, covered);
        for (key, covered) in keys.iter().zip(&mut covered[first..]) {
            if !*covered {
                *covered = self.covers(key);
            }
        }
    }
}

/// What the reference scan needs to know.
#[derive(Clone, Debug)]
pub struct ReferenceQuery {
    pub schemas: Vec<String>,
    /// The store being collected.
    pub store: String,
    /// Whether it is `stores.default` (then null-store references count).
    pub store_is_default: bool,
    /// Extra codec names whose columns count as schema-addressed.
    pub schema_codecs: Vec<String>,
    /// Tables (or parts of tables) read at once.
    pub concurrency: usize,
    /// About how many rows a part of a large table gets: a table the server
    /// estimates at twice this or more is read in parts ([`DEFAULT_ROWS_PER_PART`]).
    pub rows_per_part: u64,
    /// The schemas' sections, to report references that point elsewhere;
    /// in a sharded run, with the shard's ranges.
    pub sections: Vec<Section>,
    /// The shard whose references to keep, if the run is sharded: only
    /// references that can cover a key of its ranges are held.
    pub shard: Option<Shard>,
}

impl ReferenceQuery {
    /// The query for a plan's sections and shard (a sharded plan's recheck
    /// holds the shard's references only, as its scan did).
    pub fn limited_to(self, sections: Vec<Section>, shard: Option<Shard>) -> Self {
        ReferenceQuery {
            sections,
            shard: shard.filter(|s| !s.is_whole()),
            ..self
        }
    }
}

/// The finished scan: the sets, and every problem met on the way.
#[derive(Debug, Default)]
pub struct ReferenceScan {
    pub references: References,
    /// Non-null codec values read.
    pub values: u64,
    /// Distinct referenced paths this run counts, by set: all of them, or in
    /// a sharded run those whose key falls in the shard's ranges, so the
    /// counts of all shards add up to the whole.
    pub counted: ReferenceCounts,
    /// References to the collected store found in each schema (every
    /// scanned schema has an entry, zero included), counted as `counted` is.
    pub by_schema: BTreeMap<String, u64>,
    /// References to the collected store read in each schema, whether or
    /// not this shard holds them (the same as `by_schema` unsharded).
    pub read_by_schema: BTreeMap<String, u64>,
    /// Problems that block deletion, one message each.
    pub errors: Vec<String>,
    /// Hash or schema references that are not plain paths inside their own
    /// schema's sections (`../x`, `/etc/passwd`, another schema's path).
    /// They still protect whatever they name (that can only keep more), but
    /// djgc reports them, since DataJoint never writes such paths. Also
    /// the large tables read as one stream because their cuts could not
    /// be chosen.
    pub warnings: Vec<String>,
    /// The read was abandoned on an interrupt: nothing it found counts.
    pub interrupted: bool,
}

impl ReferenceScan {
    /// The scan of a read abandoned on an interrupt: an error, and no
    /// references, so nothing can be deleted on it.
    fn interrupted(query: &ReferenceQuery) -> ReferenceScan {
        let zeros: BTreeMap<String, u64> = query.schemas.iter().map(|s| (s.clone(), 0)).collect();
        ReferenceScan {
            by_schema: zeros.clone(),
            read_by_schema: zeros,
            errors: vec!["interrupted while reading the references; the read was abandoned".into()],
            interrupted: true,
            ..ReferenceScan::default()
        }
    }
}

/// References as readers find them, duplicates and all, until every table
/// is read.
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    held: ByKind<PackedSetBuilder>,
    /// The held paths this run does not count (a sharded run's), so the
    /// distinct counted ones are the held less these.
    uncounted: ByKind<PackedSetBuilder>,
}

impl Gathered {
    pub(crate) fn push(&mut self, kind: RefKind, hash: u64, counted: bool) {
        self.held.get_mut(kind).push(hash);
        if !counted {
            self.uncounted.get_mut(kind).push(hash);
        }
    }

    /// The sets, and the distinct paths of each that this run counts.
    pub(crate) fn build(self) -> (References, ReferenceCounts) {
        let references = self.held.map(PackedSetBuilder::build);
        let uncounted = self.uncounted.map(|set| set.build().len());
        let counted = ReferenceCounts {
            hash: references.hash.len().saturating_sub(uncounted.hash) as u64,
            schema: references.schema.len().saturating_sub(uncounted.schema) as u64,
            other: references.other.len().saturating_sub(uncounted.other) as u64,
        };
        (references, counted)
    }
}

/// Problems (and odd references) recorded per column before the rest are
/// only counted.
const ERRORS_SHOWN_PER_COLUMN: usize = 5;
/// Hashes a reader gathers before it takes the shared lock.
const MERGE_BATCH: usize = 4096;
/// Rows a part of a table read in parts gets, about: a table is cut when
/// the server estimates it at 1M rows or more, where a second stream pays
/// for its few extra queries many times over.
pub const DEFAULT_ROWS_PER_PART: u64 = 500_000;
/// The most connections a run opens: tables read at once.
const MAX_CONNECTIONS: usize = 8;

/// The schemas `all_schemas` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundSchemas {
    pub schemas: Vec<String>,
    /// Why each schema left out was left out: its sections would not be
    /// its own ([`crate::layout::sections`] refuses it: a PostgreSQL schema
    /// named `..` would have the store root as its sections). Anyone who
    /// can create a schema can create such a name, so it is skipped, not
    /// allowed to stop the collection of the others.
    pub skipped: Vec<String>,
}

/// The pipeline's database, connected once for a whole run: one async
/// runtime and one connection pool, reused by the scan, the re-check and
/// every re-read of the watch (which used to reconnect each time). Reads
/// may run from several threads at once.
pub struct Reader {
    runtime: tokio::runtime::Runtime,
    db: Database,
    /// `host:port`, for messages.
    address: String,
    interrupt: Interrupt,
}

impl Reader {
    /// Connects with at most `connections` connections (the tables one
    /// read takes at once). Connecting, and every read after, is abandoned
    /// once `interrupt` is raised (see [`Reader::scan`]).
    pub fn connect(
        database: &DatabaseConfig,
        connections: usize,
        interrupt: Interrupt,
    ) -> Result<Reader> {
        let runtime = crate::runtime::new("djgc-db")?;
        let connections = connections.clamp(1, MAX_CONNECTIONS) as u32;
        let db = runtime.block_on(async {
            let connecting = std::pin::pin!(Database::connect(database, connections));
            let raised = std::pin::pin!(interrupt.raised());
            match future::select(connecting, raised).await {
                Either::Left((db, _)) => db,
                Either::Right(((), _)) => Err(Error::Interrupted(format!(
                    "connecting to the database at {}:{}",
                    database.host, database.port
                ))),
            }
        })?;
        Ok(Reader {
            runtime,
            db,
            address: format!("{}:{}", database.host, database.port),
            interrupt,
        })
    }

    /// Reads every reference to `query.store` from the schemas' codec
    /// columns.
    ///
    /// Fails outright only when the database cannot be reached, stops
    /// answering before the tables are read, or a schema does not exist;
    /// every other problem is recorded in [`ReferenceScan::errors`].
    ///
    /// Once the reader's interrupt is raised, the read is abandoned (its
    /// queries dropped mid-stream) and the scan says so in its errors.
    pub fn scan(&self, query: &ReferenceQuery, progress: &dyn Progress) -> Result<ReferenceScan> {
        self.until_interrupted(self.scan_async(query, progress))
            .unwrap_or_else(|| Ok(ReferenceScan::interrupted(query)))
    }

    /// Runs `work` on the reader's runtime to its end, or until the
    /// interrupt is raised (`None`): then it is dropped, inside the
    /// runtime, since an abandoned query returns its connection to the
    /// pool there.
    fn until_interrupted<T>(&self, work: impl std::future::Future<Output = T>) -> Option<T> {
        self.runtime.block_on(async {
            let work = std::pin::pin!(work);
            let raised = std::pin::pin!(self.interrupt.raised());
            match future::select(work, raised).await {
                Either::Left((done, _)) => Some(done),
                Either::Right(((), _)) => None,
            }
        })
    }

    /// Reads the references of `query` afresh for a decision that deletes:
    /// any problem in the read refuses.
    pub fn references_for_deletion(&self, query: &ReferenceQuery) -> Result<References> {
        let fresh = self.scan(query, &crate::progress::Silent)?;
        if fresh.interrupted {
            return Err(Error::Interrupted("reading the references".to_string()));
        }
        if !fresh.errors.is_empty() {
            return Err(Error::Refused(format!(
                "reading the references of {} met problems; nothing was deleted: {}",
                query.schemas.join(", "),
                fresh.errors.join("; ")
            )));
        }
        Ok(fresh.references)
    }

    /// Every schema with codec columns for `spec`'s store (see
    /// [`Database::schemas_using_store`]) that can be collected; none is an
    /// error, since a run over no schema would silently find nothing.
    pub fn all_schemas(&self, spec: &StoreSpec, schema_codecs: &[String]) -> Result<FoundSchemas> {
        let store = &spec.name;
        let finding = self
            .db
            .schemas_using_store(store, spec.is_default, schema_codecs);
        let found = self.until_interrupted(finding).unwrap_or_else(|| {
            Err(Error::Interrupted(format!(
                "finding the schemas that use store {store:?}"
            )))
        })?;
        let mut all = FoundSchemas {
            schemas: Vec::new(),
            skipped: Vec::new(),
        };
        for schema in found {
            match crate::layout::sections(spec, std::slice::from_ref(&schema)) {
                Ok(_) => all.schemas.push(schema),
                Err(why) => all
                    .skipped
                    .push(format!("`all_schemas`: skipping schema {schema:?}: {why}")),
            }
        }
        if all.schemas.is_empty() {
            return Err(Error::Usage(format!(
                "`all_schemas`: no schema in the database at {} has codec columns for store \
             {store:?}{}",
                self.address,
                if all.skipped.is_empty() {
                    ""
                } else {
                    " that can be collected"
                }
            )));
        }
        Ok(all)
    }

    async fn scan_async(
        &self,
        query: &ReferenceQuery,
        progress: &dyn Progress,
    ) -> Result<ReferenceScan> {
        let tables = self.tables(query).await?;
        let (parts, warnings) = self.parts(&tables, query).await?;
        let tally = Tally {
            warnings,
            ..Tally::new(query, 1)
        };
        let (gathered, tally) = read_parts(
            &self.db,
            &parts,
            query,
            &Placing::Run,
            Gathered::default(),
            tally,
            progress,
        )
        .await;
        let (references, counted) = gathered.build();
        progress.references_done(references.len() as u64);
        Ok(tally.scan_of(0, references, counted))
    }

    /// The codec tables of the query's schemas, every one of which must exist.
    async fn tables(&self, query: &ReferenceQuery) -> Result<Vec<CodecTable>> {
        let db = &self.db;
        let mut tables = Vec::new();
        for schema in &query.schemas {
            if !db.schema_exists(schema).await? {
                return Err(Error::Usage(format!(
                    "schema {schema:?} does not exist in the database at {}",
                    self.address
                )));
            }
            db.check_reads_whole_schema(schema).await?;
            tables.extend(db.codec_tables(schema, &query.schema_codecs).await?);
        }
        Ok(tables)
    }

    /// The parts to read `tables` in, `concurrency` at once: a table the
    /// server estimates at two parts or more is cut by its leading key into
    /// parts of about `rows_per_part` rows, at most twice as many as are
    /// read at once (so a slow part does not leave the others idle); the
    /// rest are read whole, as one stream each.
    ///
    /// The parts are read at their own moments, not in one snapshot: a row
    /// whose primary key changed during the read could be missed. DataJoint
    /// never changes a primary key (`update1` refuses them), and a row
    /// deleted or added meanwhile is what the re-check before deletion and
    /// the age limit are for, as with one stream per table.
    ///
    /// A table whose cuts the server refuses to compute (an error it
    /// answers with) is read whole, with a warning; any other failure (no
    /// connection, no answer) ends the scan, as it would end the read.
    async fn parts<'t>(
        &self,
        tables: &'t [CodecTable],
        query: &ReferenceQuery,
    ) -> Result<(Vec<TablePart<'t>>, Vec<String>)> {
        let mut parts = Vec::new();
        let mut warnings = Vec::new();
        for table in tables {
            let wanted = if query.concurrency > 1 {
                (table.estimated_rows / query.rows_per_part.max(1))
                    .min(2 * query.concurrency as u64) as usize
            } else {
                1
            };
            let cuts = match self.db.split_points(table, wanted).await {
                Ok(cuts) => cuts,
                Err(
                    e @ Error::Database {
                        source: sqlx::Error::Database(_),
                        ..
                    },
                ) => {
                    warnings.push(format!(
                        "{}.{} is read as one stream: {e}",
                        table.schema, table.name
                    ));
                    Vec::new()
                }
                Err(e) => return Err(e),
            };
            parts.extend(TablePart::cut(table, &cuts));
        }
        Ok((parts, warnings))
    }

    /// Reads every reference of `query` into `keep` as `placing` places
    /// them (all the shards of a snapshot at once, or with what each
    /// expects of its object for `check`); [`Error::Interrupted`] when the
    /// read was abandoned on the interrupt.
    pub(crate) fn read_placed<K: Keep>(
        &self,
        query: &ReferenceQuery,
        placing: &Placing<'_>,
        keep: K,
        progress: &dyn Progress,
    ) -> Result<(K, Tally)> {
        let reading = async {
            let tables = self.tables(query).await?;
            let (parts, warnings) = self.parts(&tables, query).await?;
            let tally = Tally {
                warnings,
                ..Tally::new(query, placing.holders())
            };
            Ok(read_parts(&self.db, &parts, query, placing, keep, tally, progress).await)
        };
        self.until_interrupted(reading)
            .unwrap_or_else(|| Err(Error::Interrupted("reading the references".to_string())))
    }

    /// Hands `found` every row value of `query` whose referenced path
    /// (its [`path_hash`]) `wanted` accepts: what names a damaged object's
    /// rows after `check` has found the damage, reading the tables once
    /// more. Values that cannot be read are passed over (the first read
    /// reported them).
    pub(crate) fn rows_referencing(
        &self,
        query: &ReferenceQuery,
        wanted: &(dyn Fn(u64) -> bool + Sync),
        found: &mut (dyn FnMut(RowReference) + Send),
    ) -> Result<()> {
        let found = Mutex::new(found);
        let reading = async {
            let tables = self.tables(query).await?;
            let (parts, _) = self.parts(&tables, query).await?;
            let results: Vec<Result<()>> = stream::iter(&parts)
                .map(|part| async {
                    let table = part.table;
                    let mut visit = |column: usize, value: &str, name_row: &dyn Fn() -> String| {
                        let Ok(Some(reference)) = referenced_path(value) else {
                            return;
                        };
                        if !reference.is_for(&query.store, query.store_is_default) {
                            return;
                        }
                        if wanted(path_hash(&reference.key())) {
                            (found.lock().expect("rows lock"))(RowReference {
                                schema: table.schema.clone(),
                                table: table.name.clone(),
                                column: table.columns[column].name.clone(),
                                key: name_row(),
                                path: reference.path.to_string(),
                            });
                        }
                    };
                    self.db.read_values(part, &mut visit).await
                })
                .buffer_unordered(query.concurrency.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>().map(drop)
        };
        self.until_interrupted(reading).unwrap_or_else(|| {
            Err(Error::Interrupted(
                "reading the rows of the damaged objects".to_string(),
            ))
        })
    }

    /// Samples the referenced paths of each schema section of `query.sections`
    /// ([`crate::layout::shard`] places a sharded run's cuts by them), reading only the
    /// schema-addressed columns. Rows that cannot be read are skipped here: the
    /// reference scan that follows reports them.
    pub fn sample_schema_paths(&self, query: &ReferenceQuery) -> Result<PathSample> {
        let db = &self.db;
        let sampling = async {
            let tables = self.tables(query).await?;
            let tables: Vec<CodecTable> = tables
                .into_iter()
                .filter_map(|mut table| {
                    table.columns.retain(|c| c.kind == RefKind::Schema);
                    (!table.columns.is_empty()).then_some(table)
                })
                .collect();
            // Tables that could not be cut are read whole; the scan that
            // follows says so.
            let (parts, _) = self.parts(&tables, query).await?;
            let shared = Mutex::new(vec![BTreeMap::new(); query.sections.len()]);
            let results: Vec<Result<()>> = stream::iter(&parts)
                .map(|part| async {
                    let mut sample: PathSample = vec![BTreeMap::new(); query.sections.len()];
                    let mut visit = |_: usize, value: &str, _: &dyn Fn() -> String| {
                        let Ok(Some(reference)) = referenced_path(value) else {
                            return;
                        };
                        if !reference.is_for(&query.store, query.store_is_default) {
                            return;
                        }
                        let key = reference.key();
                        if let Some(i) = query.sections.iter().position(|s| s.owns(&key)) {
                            sample_path(&mut sample[i], path_hash(&key), &key, reference.files);
                        }
                    };
                    let outcome = db.read_values(part, &mut visit).await;
                    let mut shared = shared.lock().expect("sample lock");
                    for (all, mine) in shared.iter_mut().zip(sample) {
                        for (hash, (path, files)) in mine {
                            sample_path(all, hash, &path, files);
                        }
                    }
                    outcome
                })
                .buffer_unordered(query.concurrency.max(1))
                .collect()
                .await;
            results.into_iter().collect::<Result<Vec<()>>>()?;
            Ok(shared.into_inner().expect("sample lock"))
        };
        self.until_interrupted(sampling).unwrap_or_else(|| {
            Err(Error::Interrupted(
                "sampling the referenced paths to place the shards' cuts".to_string(),
            ))
        })
    }
}

/// Where a read puts the references it finds.
pub(crate) enum Placing<'a> {
    /// One run's sets: the whole store's, or its query's shard's.
    Run,
    /// Every shard's share at once (a reference snapshot): holder `K` is
    /// shard `K`.
    Shards(&'a ShardCuts),
    /// One run's references with what each expects of its object
    /// ([`Expect`], for `check`).
    Check,
}

impl Placing<'_> {
    /// How many holders the references are shared out among.
    pub(crate) fn holders(&self) -> usize {
        match self {
            Placing::Run | Placing::Check => 1,
            Placing::Shards(cuts) => cuts.count(),
        }
    }

    /// The holders that keep a reference to `path` (left in `held`), and
    /// the one that counts it, if any; the counter is among the holders,
    /// so that the distinct counted paths are found among the held.
    fn place(&self, query: &ReferenceQuery, path: &str, held: &mut Vec<usize>) -> Option<usize> {
        let counter = match self {
            Placing::Run | Placing::Check => {
                held.clear();
                let (holds, counts) = match query.shard {
                    None => (true, true),
                    Some(shard) => (
                        covers_some_range(&query.sections, path),
                        counts_reference(&query.sections, shard, path),
                    ),
                };
                if holds || counts {
                    held.push(0);
                }
                counts.then_some(0)
            }
            Placing::Shards(cuts) => Some(cuts.place(path, held)),
        };
        if let Some(counter) = counter.filter(|c| !held.contains(c)) {
            let at = held.partition_point(|&k| k < counter);
            held.insert(at, counter);
        }
        counter
    }
}

/// A row value that references a path, as [`Reader::rows_referencing`]
/// finds it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowReference {
    pub schema: String,
    pub table: String,
    pub column: String,
    /// The row's primary key, `name=value, ...`.
    pub key: String,
    /// The path as the row writes it.
    pub path: String,
}

/// One reference as a read hands it on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Placed {
    pub holder: usize,
    pub kind: RefKind,
    pub hash: u64,
    /// Whether the holder counts it (see [`ReferenceScan::counted`]).
    pub counted: bool,
    /// What it expects of its object (only when [`Placing::Check`]).
    pub expect: Expect,
}

/// What a reference says of its object: its size, whether it is a folder,
/// and whether it lies in a section the run lists (where it can be looked
/// for at all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Expect {
    pub size: Option<u64>,
    pub folder: bool,
    pub listed: bool,
}

/// What takes the references a read finds, a batch at a time.
pub(crate) trait Keep: Send {
    fn keep(&mut self, batch: &mut Vec<Placed>) -> Result<()>;
}

impl Keep for Gathered {
    fn keep(&mut self, batch: &mut Vec<Placed>) -> Result<()> {
        for placed in batch.drain(..) {
            self.push(placed.kind, placed.hash, placed.counted);
        }
        Ok(())
    }
}

/// What a read found besides the references: its figures and problems,
/// each holder's own (by schema, odd paths) and the whole read's.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub values: u64,
    pub errors: Vec<String>,
    /// The whole read's warnings (tables read as one stream).
    pub warnings: Vec<String>,
    pub read_by_schema: BTreeMap<String, u64>,
    /// Per holder: references counted by schema, and the odd paths it counts.
    pub by_schema: Vec<BTreeMap<String, u64>>,
    pub holder_warnings: Vec<Vec<String>>,
}

impl Tally {
    fn new(query: &ReferenceQuery, holders: usize) -> Tally {
        let zeros: BTreeMap<String, u64> = query.schemas.iter().map(|s| (s.clone(), 0)).collect();
        Tally {
            read_by_schema: zeros.clone(),
            by_schema: vec![zeros; holders],
            holder_warnings: vec![Vec::new(); holders],
            ..Tally::default()
        }
    }

    /// Holder `holder`'s scan of what the read found, with its references.
    pub(crate) fn scan_of(
        &self,
        holder: usize,
        references: References,
        counted: ReferenceCounts,
    ) -> ReferenceScan {
        ReferenceScan {
            references,
            values: self.values,
            counted,
            by_schema: self.by_schema[holder].clone(),
            read_by_schema: self.read_by_schema.clone(),
            errors: self.errors.clone(),
            warnings: self
                .warnings
                .iter()
                .chain(&self.holder_warnings[holder])
                .cloned()
                .collect(),
            interrupted: false,
        }
    }
}

/// Reads every part of `tables` (placed by `placing`) into `keep`.
pub(crate) async fn read_parts<K: Keep>(
    db: &Database,
    parts: &[TablePart<'_>],
    query: &ReferenceQuery,
    placing: &Placing<'_>,
    keep: K,
    tally: Tally,
    progress: &dyn Progress,
) -> (K, Tally) {
    let shared = Mutex::new((keep, tally));
    let results: Vec<Result<()>> = stream::iter(parts)
        .map(|part| read_part(db, part, query, placing, &shared, progress))
        .buffer_unordered(query.concurrency.max(1))
        .collect()
        .await;
    let (keep, mut tally) = shared.into_inner().expect("reference lock");
    tally.errors.extend(
        results
            .into_iter()
            .filter_map(|r| r.err())
            .map(|e| e.to_string()),
    );
    (keep, tally)
}

async fn read_part<K: Keep>(
    db: &Database,
    part: &TablePart<'_>,
    query: &ReferenceQuery,
    placing: &Placing<'_>,
    shared: &Mutex<(K, Tally)>,
    progress: &dyn Progress,
) -> Result<()> {
    let table = part.table;
    let columns = table.columns.len();
    let holders = placing.holders();
    let mut batch: Vec<Placed> = Vec::with_capacity(MERGE_BATCH);
    let mut held: Vec<usize> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut errors_per_column = vec![0usize; columns];
    let mut warnings: Vec<(usize, String)> = Vec::new();
    // Odd paths per holder and column, for the holders that met some.
    let mut odd: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    let mut values = 0u64;
    let mut matched = vec![0u64; holders];
    let mut read = 0u64;
    let mut failed: Option<Error> = None;

    let merge = |batch: &mut Vec<Placed>,
                 errors: &mut Vec<String>,
                 warnings: &mut Vec<(usize, String)>,
                 values: &mut u64,
                 failed: &mut Option<Error>| {
        let (keep, tally) = &mut *shared.lock().expect("reference lock");
        if let Err(e) = keep.keep(batch) {
            failed.get_or_insert(e);
        }
        batch.clear();
        tally.errors.append(errors);
        for (holder, warning) in warnings.drain(..) {
            tally.holder_warnings[holder].push(warning);
        }
        tally.values += *values;
        progress.values_read(*values);
        *values = 0;
    };

    let mut visit = |column: usize, value: &str, name_row: &dyn Fn() -> String| {
        let col = &table.columns[column];
        match referenced_path(value) {
            Ok(Some(reference)) => {
                if reference.is_for(&query.store, query.store_is_default) {
                    read += 1;
                    let key = reference.key();
                    let path: &str = &key;
                    let counter = placing.place(query, path, &mut held);
                    let hash = if held.is_empty() { 0 } else { path_hash(path) };
                    let expect = match placing {
                        Placing::Check => Expect {
                            size: reference.size,
                            folder: reference.is_dir,
                            listed: query.sections.iter().any(|s| s.owns(path)),
                        },
                        _ => Expect::default(),
                    };
                    for &holder in &held {
                        batch.push(Placed {
                            holder,
                            kind: col.kind,
                            hash,
                            counted: Some(holder) == counter,
                            expect,
                        });
                    }
                    if let Some(counter) = counter {
                        matched[counter] += 1;
                        let odd_path = col.kind != RefKind::Other
                            && !query
                                .sections
                                .iter()
                                .any(|s| s.schema == table.schema && s.owns(path));
                        if odd_path {
                            let seen = odd.entry((counter, column)).or_default();
                            *seen += 1;
                            if *seen <= ERRORS_SHOWN_PER_COLUMN {
                                warnings.push((
                                    counter,
                                    format!(
                                        "{}.{}.{} row {}: path {:?} is not inside the schema's \
                                         sections of store {:?}; it protects, but is never \
                                         deleted through",
                                        table.schema,
                                        table.name,
                                        col.name,
                                        name_row(),
                                        reference.path,
                                        query.store
                                    ),
                                ));
                            }
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                errors_per_column[column] += 1;
                if errors_per_column[column] <= ERRORS_SHOWN_PER_COLUMN {
                    errors.push(
                        Error::MalformedMetadata {
                            schema: table.schema.clone(),
                            table: table.name.clone(),
                            column: col.name.clone(),
                            row: name_row(),
                            detail: e.to_string(),
                        }
                        .to_string(),
                    );
                }
            }
        }
        values += 1;
        if values as usize >= MERGE_BATCH || batch.len() >= MERGE_BATCH {
            merge(
                &mut batch,
                &mut errors,
                &mut warnings,
                &mut values,
                &mut failed,
            );
        }
    };
    let outcome = db.read_values(part, &mut visit).await;
    for (col, count) in table.columns.iter().zip(&errors_per_column) {
        if *count > ERRORS_SHOWN_PER_COLUMN {
            errors.push(format!(
                "{}.{}.{}: {} more rows with malformed JSON",
                table.schema,
                table.name,
                col.name,
                count - ERRORS_SHOWN_PER_COLUMN
            ));
        }
    }
    for (&(holder, column), count) in &odd {
        if *count > ERRORS_SHOWN_PER_COLUMN {
            warnings.push((
                holder,
                format!(
                    "{}.{}.{}: {} more paths outside the schema's sections",
                    table.schema,
                    table.name,
                    table.columns[column].name,
                    count - ERRORS_SHOWN_PER_COLUMN
                ),
            ));
        }
    }
    merge(
        &mut batch,
        &mut errors,
        &mut warnings,
        &mut values,
        &mut failed,
    );
    let (_, tally) = &mut *shared.lock().expect("reference lock");
    for (by_schema, matched) in tally.by_schema.iter_mut().zip(matched) {
        *by_schema.entry(table.schema.clone()).or_default() += matched;
    }
    *tally
        .read_by_schema
        .entry(table.schema.clone())
        .or_default() += read;
    match failed {
        Some(e) => Err(e),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A key is covered exactly when a reference names it, a folder
        /// above it, or it is the manifest of such a path: dj.gc's rule.
        #[test]
        fn coverage_is_the_reference_its_folders_and_manifests(
            references in proptest::collection::vec("[ab]{1,2}(/[ab]{1,2}){0,2}", 0..6),
            key in "[ab]{1,2}(/[ab]{1,2}){0,3}(\\.manifest\\.json)?",
        ) {
            let refs = References::from_paths(references.iter().map(|p| (RefKind::Schema, p.as_str())));
            let named = key.strip_suffix(MANIFEST_SUFFIX).unwrap_or(&key);
            let expected = references
                .iter()
                .any(|r| named == r || named.starts_with(&format!("{r}/")));
            proptest::prop_assert_eq!(refs.covers(&key), expected);
            for likely in [RefKind::Hash, RefKind::Schema] {
                let mut covered = vec![true];
                refs.covers_each(&[&key, "c"], likely, &mut covered);
                proptest::prop_assert_eq!(covered, vec![true, expected, false]);
            }
        }
    }

    #[test]
    fn a_shard_counts_the_distinct_paths_it_holds_less_those_it_does_not_count() {
        let mut gathered = Gathered::default();
        let pushed = [
            ("a", true),
            ("b", false),
            ("a", true),
            ("b", false),
            ("c", true),
        ];
        for (path, counted) in pushed {
            gathered.push(RefKind::Schema, path_hash(path), counted);
        }
        gathered.push(RefKind::Hash, path_hash("h"), false);
        let (references, counted) = gathered.build();
        assert_eq!((references.schema.len(), references.hash.len()), (3, 1));
        assert_eq!(
            counted,
            ReferenceCounts {
                hash: 0,
                schema: 2,
                other: 0
            }
        );
        // Held but not counted still protects.
        assert!(references.covers("b") && references.covers("h"));
        assert!(!references.covers("d"));
    }

    #[test]
    fn coverage_matches_dj_gc() {
        let refs = References::from_paths([
            (RefKind::Schema, "_schema/a/t/id=0/obj_X"),
            (RefKind::Schema, "_schema/a/t/id=1/arr_Y.npy"),
            (RefKind::Hash, "_hash/a/ih/23/ih23fsttfdzzbrgqrgnsup5b3i"),
        ]);

        assert!(refs.covers("_schema/a/t/id=0/obj_X/.zarray"));
        assert!(refs.covers("_schema/a/t/id=0/obj_X/0/0.1"));
        assert!(refs.covers("_schema/a/t/id=0/obj_X.manifest.json"));
        assert!(refs.covers("_schema/a/t/id=1/arr_Y.npy"));
        assert!(refs.covers("_hash/a/ih/23/ih23fsttfdzzbrgqrgnsup5b3i"));
        // A sibling whose name merely starts like a referenced folder is not covered.
        assert!(!refs.covers("_schema/a/t/id=0/obj_Xtra"));
        assert!(!refs.covers("_schema/a/t/id=1/arr_Y.npy.bak"));
        assert!(!refs.covers("_schema/a/t/id=2/arr_Z.npy"));
        assert!(!refs.covers("_schema/a/t/id=2/arr_Z.npy.manifest.json"));
    }
}
