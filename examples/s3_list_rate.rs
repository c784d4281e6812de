//! Listing rate of one S3 store: a single paginated ListObjectsV2 stream (what
//! a plain client does, one section after the other) next to djgc's split
//! listing of all the sections at once, as a scan lists them. Used by `scripts/bench-s3.sh`.
//!
//! Usage: `s3_list_rate CONFIG SCHEMA [LIST_CONCURRENCY]`; the store is the
//! config's default store. Prints one line per run and the ratio.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use djgc::config::Config;
use djgc::layout::sections;
use djgc::store::keyspace::{list_parallel, Page, PageLister};
use djgc::store::{KeyRange, Listing, S3Store, SectionSink, Store, StoreError};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (config, schema, concurrency) = match args.as_slice() {
        [config, schema] => (config, schema, 32),
        [config, schema, concurrency] => (config, schema, concurrency.parse()?),
        _ => anyhow::bail!("usage: s3_list_rate CONFIG SCHEMA [LIST_CONCURRENCY]"),
    };
    let spec = Config::load(Some(config.into()))?.store(None)?;
    let store = S3Store::open(&spec, concurrency)?;
    let prefixes: Vec<String> = sections(&spec, std::slice::from_ref(schema))?
        .into_iter()
        .map(|s| s.prefix)
        .collect();
    let root = match spec.location.trim_matches('/') {
        "" => String::new(),
        location => format!("{location}/"),
    };

    // Worker threads keep the connections this runtime opens alive after
    // block_on returns, for the split listing that reuses them.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let started = Instant::now();
    let mut single = 0u64;
    let mut requests = 0u64;
    for prefix in &prefixes {
        let prefix = format!("{root}{prefix}");
        let mut token: Option<String> = None;
        loop {
            let page = runtime.block_on(store.list_page(&prefix, None, token.as_deref()))?;
            requests += 1;
            single += page.objects.len() as u64;
            token = page.next;
            if token.is_none() {
                break;
            }
        }
    }
    let single_seconds = started.elapsed().as_secs_f64();
    let single_rate = single as f64 / single_seconds;
    println!(
        "single stream: {single} keys in {single_seconds:.2} s ({requests} requests), \
         {single_rate:.0} keys/s"
    );

    let sections: Vec<(&str, &KeyRange)> = prefixes
        .iter()
        .map(|prefix| (prefix.as_str(), &KeyRange::ALL))
        .collect();
    // The split listing of each section in turn (as scans listed before
    // 1267b0c), then of all of them from one pool (as a scan lists now).
    let one_by_one = time_listing(|count| {
        for section in &sections {
            store.list_sections(std::slice::from_ref(section), count);
        }
    });
    let at_once = time_listing(|count| store.list_sections(&sections, count));
    for (label, (keys, seconds)) in [
        ("sections one after another", one_by_one),
        ("djgc listing", at_once),
    ] {
        println!(
            "{label} ({concurrency} parts at once): {keys} keys in {seconds:.2} s, {:.0} keys/s",
            keys as f64 / seconds
        );
        anyhow::ensure!(
            keys == single,
            "the listings disagree: {single} keys vs {keys} ({label})"
        );
    }
    let split_rate = at_once.0 as f64 / at_once.1;

    // The same listing once more, counting its requests: how full its pages
    // are (a single stream's are full but for the last of each section).
    let counted = Counted {
        store: &store,
        pages: AtomicU64::new(0),
    };
    let rooted: Vec<(String, KeyRange)> = prefixes
        .iter()
        .map(|prefix| (format!("{root}{prefix}"), KeyRange::ALL))
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency * 2);
    runtime.block_on(futures_util::future::join(
        list_parallel(&counted, rooted, concurrency, tx),
        async move { while rx.recv().await.is_some() {} },
    ));
    let pages = counted.pages.into_inner();
    println!(
        "djgc listing requests: {pages} for {single} keys, {:.0} keys per request",
        single as f64 / pages.max(1) as f64
    );
    println!("ratio: {:.1}x the single stream", split_rate / single_rate);
    Ok(())
}

/// The keys `list` hands to the counting sink it is given, and the seconds
/// it took.
fn time_listing(list: impl FnOnce(&SectionSink<'_>)) -> (u64, f64) {
    let started = Instant::now();
    let listed = AtomicU64::new(0);
    list(&|_, batch| match batch {
        Listing::Objects(objects) => {
            listed.fetch_add(objects.len() as u64, Ordering::Relaxed);
            std::ops::ControlFlow::Continue(())
        }
        Listing::Error(e) => panic!("listing failed: {e}"),
    });
    (listed.into_inner(), started.elapsed().as_secs_f64())
}

/// Counts the requests of djgc's split listing.
struct Counted<'a> {
    store: &'a S3Store,
    pages: AtomicU64,
}

impl PageLister for Counted<'_> {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> Result<Page, StoreError> {
        self.pages.fetch_add(1, Ordering::Relaxed);
        self.store.list_page(prefix, start_after, token).await
    }
}
