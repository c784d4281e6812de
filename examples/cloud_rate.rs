//! Listing and deleting rates of one object store of any protocol: the
//! sections of a schema listed as one stream of requests (the store opened
//! with one lister: one request at a time), then with djgc's split listing,
//! then every listed object deleted in batches from a pool of workers, as
//! `djgc collect --delete` does. Used by `scripts/bench-cloud.sh`; it
//! empties the schema's sections.
//!
//! Usage: `cloud_rate CONFIG SCHEMA [LIST_CONCURRENCY] [--list-only]`; the
//! store is the config's default store. `--list-only` leaves the objects in
//! place, for emulators that cannot delete a large store in useful time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use djgc::config::Config;
use djgc::layout::sections;
use djgc::store::{open, Listing, OpenOptions, Store, DELETE_BATCH};
use rayon::prelude::*;

/// Delete calls in flight, as the collector's default pool.
const DELETERS: usize = 8;

/// Lists every prefix; the keys found, by prefix, and the seconds taken.
fn list_all(store: &dyn Store, prefixes: &[String]) -> (Vec<(String, Vec<String>)>, f64) {
    let started = Instant::now();
    let found = prefixes
        .iter()
        .map(|prefix| {
            let keys = Mutex::new(Vec::new());
            store.list(prefix, &|batch| match batch {
                Listing::Objects(objects) => {
                    keys.lock()
                        .unwrap()
                        .extend(objects.into_iter().map(|o| o.key));
                    std::ops::ControlFlow::Continue(())
                }
                Listing::Error(e) => panic!("listing failed: {e}"),
            });
            (prefix.clone(), keys.into_inner().unwrap())
        })
        .collect();
    (found, started.elapsed().as_secs_f64())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let list_only = args.last().is_some_and(|a| a == "--list-only");
    let positional = &args[..args.len() - usize::from(list_only)];
    let (config, schema, concurrency) = match positional {
        [config, schema] => (config, schema, 32),
        [config, schema, concurrency] => (config, schema, concurrency.parse()?),
        _ => anyhow::bail!("usage: cloud_rate CONFIG SCHEMA [LIST_CONCURRENCY] [--list-only]"),
    };
    let spec = Config::load(Some(config.into()))?.store(None)?;
    let prefixes: Vec<String> = sections(&spec, std::slice::from_ref(schema))?
        .into_iter()
        .map(|s| s.prefix)
        .collect();
    let options = |list_concurrency| OpenOptions {
        jobs: 2,
        list_concurrency,
    };

    let single = open(&spec, options(1))?;
    let (_, single_seconds) = list_all(single.as_ref(), &prefixes);
    let store = open(&spec, options(concurrency))?;
    let (found, split_seconds) = list_all(store.as_ref(), &prefixes);
    let keys: usize = found.iter().map(|(_, k)| k.len()).sum();
    let single_rate = keys as f64 / single_seconds;
    let split_rate = keys as f64 / split_seconds;
    println!("one stream: {keys} keys in {single_seconds:.2} s, {single_rate:.0} keys/s");
    println!(
        "djgc listing ({concurrency} parts at once): {keys} keys in {split_seconds:.2} s, \
         {split_rate:.0} keys/s"
    );
    println!("djgc / one stream: {:.1}x", split_rate / single_rate);
    if list_only {
        return Ok(());
    }

    let batches: Vec<(&str, &[String])> = found
        .iter()
        .flat_map(|(prefix, keys)| keys.chunks(DELETE_BATCH).map(move |c| (prefix.as_str(), c)))
        .collect();
    let deleted = AtomicU64::new(0);
    let started = Instant::now();
    rayon::ThreadPoolBuilder::new()
        .num_threads(DELETERS)
        .build()?
        .install(|| {
            batches.par_iter().for_each(|(prefix, chunk)| {
                for outcome in store.delete(prefix, chunk) {
                    outcome.unwrap_or_else(|e| panic!("delete failed: {e}"));
                    deleted.fetch_add(1, Ordering::Relaxed);
                }
            })
        });
    let delete_seconds = started.elapsed().as_secs_f64();
    let deleted = deleted.into_inner();
    println!(
        "djgc delete ({DELETERS} workers): {deleted} objects in {delete_seconds:.2} s, {:.0} deletes/s",
        deleted as f64 / delete_seconds
    );
    Ok(())
}
