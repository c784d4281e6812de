//! A dry-run scan against real database rows and a synthetic listing, to
//! measure how memory and time grow with the number of references without
//! writing millions of files. Used by `scripts/bench-scale.sh`, which fills
//! the table and reads peak RSS.
//!
//! The listing holds `KEYS` npy objects of DataJoint's schema layout,
//! `_schema/{SCHEMA}/npy_item/id={i}/arr.npy` for `i` in `0..KEYS`, generated
//! as they are listed (nothing is held), all a month old; whatever the table
//! does not reference is an orphan.
//!
//! Usage: `synthetic_scan CONFIG SCHEMA KEYS`; the store is the config's
//! default store (its location is never touched).

use std::time::{Duration, Instant, SystemTime};

use djgc::config::Config;
use djgc::judge::{scan, ReferenceSource, ScanOptions};
use djgc::progress::Silent;
use djgc::refs::Reader;
use djgc::store::{
    Deleted, KeyRange, ListSink, Listing, Moved, ObjectMeta, Store, StoreError, LIST_BATCH,
};

struct SyntheticStore {
    schema: String,
    keys: u64,
    modified: SystemTime,
}

impl SyntheticStore {
    fn read_only<T>(&self, operation: &'static str, key: &str) -> Result<T, StoreError> {
        Err(StoreError::new(
            operation,
            key,
            "the synthetic store is read-only",
        ))
    }
}

impl Store for SyntheticStore {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>) {
        let folder = format!("_schema/{}/npy_item/", self.schema);
        if !folder.starts_with(prefix) {
            return;
        }
        let mut batch = Vec::with_capacity(LIST_BATCH);
        for i in 0..self.keys {
            let key = format!("{folder}id={i}/arr.npy");
            if !range.contains(&key) {
                continue;
            }
            batch.push(ObjectMeta {
                key,
                size: 1000,
                modified: self.modified,
            });
            if batch.len() == LIST_BATCH
                && sink(Listing::Objects(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(LIST_BATCH),
                )))
                .is_break()
            {
                return;
            }
        }
        if !batch.is_empty() {
            let _ = sink(Listing::Objects(batch));
        }
    }

    fn delete(&self, _: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        keys.iter().map(|k| self.read_only("delete", k)).collect()
    }

    fn rename(&self, _: &str, moves: &[(String, String)]) -> Vec<Result<Moved, StoreError>> {
        moves
            .iter()
            .map(|(from, _)| self.read_only("move", from))
            .collect()
    }

    fn put(&self, key: &str, _: Vec<u8>) -> Result<(), StoreError> {
        self.read_only("put", key)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read_only("get", key)
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        keys.iter().map(|k| self.read_only("head", k)).collect()
    }

    fn list_folders(&self, _: &str) -> Result<Vec<String>, StoreError> {
        Ok(vec![self.schema.clone()])
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, schema, keys] = args.as_slice() else {
        anyhow::bail!("usage: synthetic_scan CONFIG SCHEMA KEYS");
    };
    let config = Config::load(Some(config.into()))?;
    let spec = config.store(None)?;
    let store = SyntheticStore {
        schema: schema.clone(),
        keys: keys.parse()?,
        modified: SystemTime::now() - Duration::from_secs(30 * 86400),
    };
    let options = ScanOptions {
        schemas: vec![schema.clone()],
        cutoff: SystemTime::now(),
        jobs: 4,
        schema_codecs: Vec::new(),
        shard: None,
        inventory: None,
        interrupt: Default::default(),
    };
    let started = Instant::now();
    let database = Reader::connect(&config.database, options.jobs, Default::default())?;
    let references = ReferenceSource::Database(&database);
    let plan = scan(&references, &spec, &store, &options, &Silent)?;
    let report = &plan.report;
    anyhow::ensure!(
        report.scan_errors.is_empty(),
        "scan problems: {:?}",
        report.scan_errors
    );
    let stored: u64 = report.sections.iter().map(|s| s.stored).sum();
    let orphaned: u64 = report.sections.iter().map(|s| s.orphaned).sum();
    println!(
        "references {} listed {stored} orphans {orphaned} seconds {:.2}",
        report.schema_paths_referenced + report.hash_referenced + report.other_referenced,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
