//! The reference scan: every path that live rows point to in one store.
//!
//! Tables are read concurrently over a small connection pool; each reader
//! hashes the paths it finds into a local batch and merges it into the shared
//! sets under a lock, so the lock is taken once per few thousand rows. The
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

use std::collections::BTreeMap;
use std::sync::Mutex;

use futures_util::stream::{self, StreamExt};

use crate::config::{DatabaseConfig, StoreSpec};
use crate::error::{Error, Result};
use crate::layout::shard::{counts_reference, covers_some_range, sample_path, PathSample, Shard};
use crate::layout::{Section, MANIFEST_SUFFIX};
use crate::progress::Progress;
use crate::refs::codec::{referenced_path, RefKind};
use crate::refs::db::{CodecTable, Database};
use crate::refs::refset::{path_hash, undotted, undotted_hash, RefSet};

/// Referenced paths of one store, by the kind of column they came from.
#[derive(Debug, Default)]
pub struct References {
    pub hash: RefSet,
    pub schema: RefSet,
    pub other: RefSet,
}

impl References {
    fn set_mut(&mut self, kind: RefKind) -> &mut RefSet {
        match kind {
            RefKind::Hash => &mut self.hash,
            RefKind::Schema => &mut self.schema,
            RefKind::Other => &mut self.other,
        }
    }

    /// Records a referenced path (for building sets in tests and benches).
    pub fn insert(&mut self, kind: RefKind, path: &str) {
        self.set_mut(kind).insert(path_hash(path));
    }

    fn contains(&self, hash: u64) -> bool {
        self.hash.contains(hash) || self.schema.contains(hash) || self.other.contains(hash)
    }

    /// Whether a stored key is accounted for by some reference.
    pub fn covers(&self, key: &str) -> bool {
        let key = undotted(key.strip_suffix(MANIFEST_SUFFIX).unwrap_or(key));
        if self.contains(undotted_hash(&key)) {
            return true;
        }
        key.rmatch_indices('/')
            .map(|(i, _)| i)
            .filter(|&i| i > 0)
            .any(|i| self.contains(undotted_hash(&key[..i])))
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
    /// Tables read at once.
    pub concurrency: usize,
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
    /// djgc reports them, since DataJoint never writes such paths.
    pub warnings: Vec<String>,
}

/// Distinct referenced paths per set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReferenceCounts {
    pub hash: u64,
    pub schema: u64,
    pub other: u64,
}

impl ReferenceCounts {
    fn count_mut(&mut self, kind: RefKind) -> &mut u64 {
        match kind {
            RefKind::Hash => &mut self.hash,
            RefKind::Schema => &mut self.schema,
            RefKind::Other => &mut self.other,
        }
    }
}

/// Problems (and odd references) recorded per column before the rest are
/// only counted.
const ERRORS_SHOWN_PER_COLUMN: usize = 5;
/// Hashes a reader gathers before it takes the shared lock.
const MERGE_BATCH: usize = 4096;
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
}

impl Reader {
    /// Connects with at most `connections` connections (the tables one
    /// read takes at once).
    pub fn connect(database: &DatabaseConfig, connections: usize) -> Result<Reader> {
        let runtime = crate::runtime::new("djgc-db")?;
        let connections = connections.clamp(1, MAX_CONNECTIONS) as u32;
        let db = runtime.block_on(Database::connect(database, connections))?;
        Ok(Reader {
            runtime,
            db,
            address: format!("{}:{}", database.host, database.port),
        })
    }

    /// Reads every reference to `query.store` from the schemas' codec
    /// columns.
    ///
    /// Fails outright only when the database cannot be reached or a schema
    /// does not exist; every other problem is recorded in
    /// [`ReferenceScan::errors`].
    pub fn scan(&self, query: &ReferenceQuery, progress: &dyn Progress) -> Result<ReferenceScan> {
        self.runtime.block_on(self.scan_async(query, progress))
    }

    /// Reads the references of `query` afresh for a decision that deletes:
    /// any problem in the read refuses.
    pub fn references_for_deletion(&self, query: &ReferenceQuery) -> Result<References> {
        let fresh = self.scan(query, &crate::progress::Silent)?;
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
        let found = self.runtime.block_on(self.db.schemas_using_store(
            store,
            spec.is_default,
            schema_codecs,
        ))?;
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
        let db = &self.db;
        let tables = self.tables(query).await?;
        let zeros: BTreeMap<String, u64> = query.schemas.iter().map(|s| (s.clone(), 0)).collect();
        let shared = Mutex::new(ReferenceScan {
            by_schema: zeros.clone(),
            read_by_schema: zeros,
            ..ReferenceScan::default()
        });
        let results: Vec<Result<()>> = stream::iter(&tables)
            .map(|table| read_table(db, table, query, &shared, progress))
            .buffer_unordered(query.concurrency.max(1))
            .collect()
            .await;
        let mut scan = shared.into_inner().expect("reference lock");
        scan.errors.extend(
            results
                .into_iter()
                .filter_map(|r| r.err())
                .map(|e| e.to_string()),
        );
        progress.references_done(
            (scan.references.hash.len()
                + scan.references.schema.len()
                + scan.references.other.len()) as u64,
        );
        Ok(scan)
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

    /// Samples the referenced paths of each schema section of `query.sections`
    /// ([`crate::layout::shard`] places a sharded run's cuts by them), reading only the
    /// schema-addressed columns. Rows that cannot be read are skipped here: the
    /// reference scan that follows reports them.
    pub fn sample_schema_paths(&self, query: &ReferenceQuery) -> Result<PathSample> {
        let db = &self.db;
        self.runtime.block_on(async {
            let tables = self.tables(query).await?;
            let tables: Vec<CodecTable> = tables
                .into_iter()
                .filter_map(|mut table| {
                    table.columns.retain(|c| c.kind == RefKind::Schema);
                    (!table.columns.is_empty()).then_some(table)
                })
                .collect();
            let shared = Mutex::new(vec![BTreeMap::new(); query.sections.len()]);
            let results: Vec<Result<()>> = stream::iter(&tables)
                .map(|table| async {
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
                    let outcome = db.read_values(table, &mut visit).await;
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
        })
    }
}

async fn read_table(
    db: &Database,
    table: &CodecTable,
    query: &ReferenceQuery,
    shared: &Mutex<ReferenceScan>,
    progress: &dyn Progress,
) -> Result<()> {
    // Each reference with whether this run counts it.
    let mut batch: Vec<(RefKind, u64, bool)> = Vec::with_capacity(MERGE_BATCH);
    let mut errors: Vec<String> = Vec::new();
    let mut errors_per_column = vec![0usize; table.columns.len()];
    let mut warnings: Vec<String> = Vec::new();
    let mut odd_per_column = vec![0usize; table.columns.len()];
    let mut values = 0u64;
    let mut matched = 0u64;
    let mut read = 0u64;

    let merge = |batch: &mut Vec<(RefKind, u64, bool)>,
                 errors: &mut Vec<String>,
                 warnings: &mut Vec<String>,
                 values: &mut u64| {
        let mut scan = shared.lock().expect("reference lock");
        for (kind, hash, counted) in batch.drain(..) {
            if scan.references.set_mut(kind).insert(hash) && counted {
                *scan.counted.count_mut(kind) += 1;
            }
        }
        scan.errors.append(errors);
        scan.warnings.append(warnings);
        scan.values += *values;
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
                    // A shard holds what can cover a key it lists, and
                    // counts what is its own to count.
                    let (held, counted) = match query.shard {
                        None => (true, true),
                        Some(shard) => (
                            covers_some_range(&query.sections, path),
                            counts_reference(&query.sections, shard, path),
                        ),
                    };
                    if held || counted {
                        batch.push((col.kind, path_hash(path), counted));
                    }
                    matched += u64::from(counted);
                    if counted
                        && col.kind != RefKind::Other
                        && !query
                            .sections
                            .iter()
                            .any(|s| s.schema == table.schema && s.owns(path))
                    {
                        odd_per_column[column] += 1;
                        if odd_per_column[column] <= ERRORS_SHOWN_PER_COLUMN {
                            warnings.push(format!(
                                "{}.{}.{} row {}: path {:?} is not inside the schema's \
                                 sections of store {:?}; it protects, but is never deleted \
                                 through",
                                table.schema,
                                table.name,
                                col.name,
                                name_row(),
                                reference.path,
                                query.store
                            ));
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
        if values as usize >= MERGE_BATCH {
            merge(&mut batch, &mut errors, &mut warnings, &mut values);
        }
    };
    let outcome = db.read_values(table, &mut visit).await;
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
    for (col, count) in table.columns.iter().zip(&odd_per_column) {
        if *count > ERRORS_SHOWN_PER_COLUMN {
            warnings.push(format!(
                "{}.{}.{}: {} more paths outside the schema's sections",
                table.schema,
                table.name,
                col.name,
                count - ERRORS_SHOWN_PER_COLUMN
            ));
        }
    }
    merge(&mut batch, &mut errors, &mut warnings, &mut values);
    let mut scan = shared.lock().expect("reference lock");
    *scan.by_schema.entry(table.schema.clone()).or_default() += matched;
    *scan.read_by_schema.entry(table.schema.clone()).or_default() += read;
    outcome
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
            let mut refs = References::default();
            for path in &references {
                refs.insert(RefKind::Schema, path);
            }
            let named = key.strip_suffix(MANIFEST_SUFFIX).unwrap_or(&key);
            let expected = references
                .iter()
                .any(|r| named == r || named.starts_with(&format!("{r}/")));
            proptest::prop_assert_eq!(refs.covers(&key), expected);
        }
    }

    #[test]
    fn coverage_matches_dj_gc() {
        let mut refs = References::default();
        refs.insert(RefKind::Schema, "_schema/a/t/id=0/obj_X");
        refs.insert(RefKind::Schema, "_schema/a/t/id=1/arr_Y.npy");
        refs.insert(RefKind::Hash, "_hash/a/ih/23/ih23fsttfdzzbrgqrgnsup5b3i");

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
