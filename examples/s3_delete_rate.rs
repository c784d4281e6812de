//! Deletion rate of one S3 store: COUNT small objects are written through
//! UPLOAD_CONFIG's store, then deleted through DELETE_CONFIG's store as djgc
//! deletes (batches of up to 1,000 keys, CONCURRENCY batches in flight), and
//! every key is checked gone. Used by `scripts/bench-garage.sh`, which points
//! DELETE_CONFIG at the same server directly or through a latency proxy.
//!
//! Usage: `s3_delete_rate UPLOAD_CONFIG DELETE_CONFIG COUNT [CONCURRENCY]`;
//! each config's default store, keys under `_deleterate/` in its location.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use djgc::config::Config;
use djgc::store::{Listing, S3Store, Store};
use rayon::prelude::*;

const PREFIX: &str = "_deleterate/";
const BATCH: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (upload, delete, count, concurrency) = match args.as_slice() {
        [upload, delete, count] => (upload, delete, count.parse::<usize>()?, 8),
        [upload, delete, count, concurrency] => {
            (upload, delete, count.parse()?, concurrency.parse()?)
        }
        _ => anyhow::bail!("usage: s3_delete_rate UPLOAD_CONFIG DELETE_CONFIG COUNT [CONCURRENCY]"),
    };
    let open = |config: &String| -> anyhow::Result<S3Store> {
        Ok(S3Store::open(
            &Config::load(Some(config.into()))?.store(None)?,
            32,
        )?)
    };
    let (uploader, deleter) = (open(upload)?, open(delete)?);
    let keys: Vec<String> = (0..count).map(|i| format!("{PREFIX}{i:09}")).collect();

    let started = Instant::now();
    rayon::ThreadPoolBuilder::new()
        .num_threads(64)
        .build()?
        .install(|| {
            keys.par_iter()
                .try_for_each(|key| uploader.put(key, b"x".to_vec()))
        })?;
    let seconds = started.elapsed().as_secs_f64();
    println!("written: {count} objects in {seconds:.2} s");

    let deleted = AtomicU64::new(0);
    let started = Instant::now();
    rayon::ThreadPoolBuilder::new()
        .num_threads(concurrency)
        .build()?
        .install(|| {
            keys.par_chunks(BATCH)
                .with_max_len(1)
                .try_for_each(|batch| {
                    for outcome in deleter.delete(PREFIX, batch) {
                        outcome?;
                        deleted.fetch_add(1, Ordering::Relaxed);
                    }
                    anyhow::Ok(())
                })
        })?;
    let seconds = started.elapsed().as_secs_f64();
    let deleted = deleted.into_inner();
    println!(
        "deleted ({concurrency} requests of up to {BATCH} keys in flight): {deleted} objects in \
         {seconds:.2} s, {:.0} objects/s",
        deleted as f64 / seconds
    );
    let left = AtomicU64::new(0);
    uploader.list(PREFIX, &|listing| match listing {
        Listing::Objects(objects) => {
            left.fetch_add(objects.len() as u64, Ordering::Relaxed);
            std::ops::ControlFlow::Continue(())
        }
        Listing::Error(e) => panic!("listing failed: {e}"),
    });
    anyhow::ensure!(
        deleted == count as u64 && left.into_inner() == 0,
        "not every object was deleted"
    );
    Ok(())
}
