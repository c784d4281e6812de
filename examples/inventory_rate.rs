//! How fast an S3 Inventory is read: each manifest given is read through
//! [`Inventory::list_sections`] into a counting sink, as `--inventory` does
//! in a scan, and its rows per second are printed. Used by
//! `scripts/bench-inventory.sh`, which writes the same rows as CSV.gz and
//! as Parquet.
//!
//! Usage: `inventory_rate CONFIG SCHEMA MANIFEST...`; the store is the
//! config's default (S3) store, and the rows are routed to SCHEMA's sections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use djgc::config::Config;
use djgc::judge::inventory::Inventory;
use djgc::layout::sections;
use djgc::store::Listing;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, schema, manifests @ ..] = &args[..] else {
        anyhow::bail!("usage: inventory_rate CONFIG SCHEMA MANIFEST...");
    };
    let spec = Config::load(Some(config.into()))?.store(None)?;
    let sections = sections(&spec, std::slice::from_ref(schema))?;
    for manifest in manifests {
        let inventory = Inventory::open(manifest, &spec)?;
        let rows = AtomicU64::new(0);
        let started = Instant::now();
        inventory.list_sections(&sections, &|_, batch| {
            match batch {
                Listing::Objects(objects) => {
                    rows.fetch_add(objects.len() as u64, Ordering::Relaxed);
                }
                Listing::Error(e) => panic!("{manifest}: {e}"),
            }
            std::ops::ControlFlow::Continue(())
        });
        let seconds = started.elapsed().as_secs_f64();
        let rows = rows.into_inner();
        println!(
            "{manifest}: {rows} objects in {seconds:.2} s, {:.0} objects/s",
            rows as f64 / seconds
        );
    }
    Ok(())
}
