//! `djgc-fixture`: writes a DataJoint-format schema and store (file or S3) with a
//! known share of orphans, for demos and benchmarks.
//!
//! It reads the same `datajoint.json` as djgc (database and store), replaces
//! the named schema (tables and store sections) and prints what it made.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Parser;

use djgc::config::{Config, Protocol};
use djgc::fixture::{self, FixtureSpec};
use djgc::refs::db::Database;
use djgc::store::{collect_keys, Store};

#[derive(Parser)]
#[command(
    name = "djgc-fixture",
    version,
    about = "Write a DataJoint-format schema and store (file or S3) with known orphans",
    after_help = "Example: djgc-fixture demo --hash-rows 500000 --npy-rows 500000 --subfolding 2,2"
)]
struct Cli {
    /// Schema to (re)create; its tables and store sections are replaced.
    schema: String,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Store to write (default: stores.default): a file or S3 store.
    #[arg(long, value_name = "NAME")]
    store: Option<String>,
    /// Rows of the <blob@store> table.
    #[arg(long, default_value_t = 1000)]
    hash_rows: usize,
    /// Rows sharing each blob's content (1 = no sharing).
    #[arg(long, default_value_t = 2)]
    rows_per_content: usize,
    /// Rows of the <npy@store> table (one file and folder each).
    #[arg(long, default_value_t = 1000)]
    npy_rows: usize,
    /// Rows of the <object@store> table (one folder object each).
    #[arg(long, default_value_t = 100)]
    folder_rows: usize,
    /// Files per folder object (plus a manifest).
    #[arg(long, default_value_t = 4)]
    files_per_folder: usize,
    /// Share of rows deleted, leaving their objects orphaned.
    #[arg(long, default_value_t = 0.2)]
    deleted_fraction: f64,
    /// Share of orphaned files given a fresh mtime (kept by --min-age).
    #[arg(long, default_value_t = 0.1)]
    young_fraction: f64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.clone())?;
    let spec = config.store(cli.store.as_deref())?;
    let root = PathBuf::from(&spec.location);
    let sections = djgc::layout::sections(&spec, std::slice::from_ref(&cli.schema))?;
    let s3 = match spec.protocol {
        Protocol::File => {
            std::fs::create_dir_all(&root)
                .with_context(|| format!("creating {}", root.display()))?;
            for section in &sections {
                let dir = root.join(section.prefix.trim_end_matches('/'));
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("clearing {}", dir.display()))?;
                }
            }
            None
        }
        _ => {
            let options = djgc::store::OpenOptions {
                jobs: 2,
                list_concurrency: 32,
            };
            let store = djgc::store::open(&spec, options)?;
            for section in &sections {
                clear(store.as_ref(), &section.prefix)?;
            }
            Some(store)
        }
    };

    let fixture_spec = FixtureSpec {
        schema: cli.schema.clone(),
        store: spec.name.clone(),
        hash_prefix: spec.hash_prefix.clone(),
        schema_prefix: spec.schema_prefix.clone(),
        subfolding: spec.subfolding.clone(),
        hash_rows: cli.hash_rows,
        rows_per_content: cli.rows_per_content,
        npy_rows: cli.npy_rows,
        folder_rows: cli.folder_rows,
        files_per_folder: cli.files_per_folder,
        deleted_fraction: cli.deleted_fraction,
        young_fraction: cli.young_fraction,
        seed: cli.seed,
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Runtime::new()?;
    let outcome = runtime.block_on(async {
        let db = Database::connect(&config.database, 4).await?;
        let target = match &s3 {
            Some(store) => fixture::Target::Store(store.as_ref()),
            None => fixture::Target::Folder(&root),
        };
        fixture::create(&db, target, &fixture_spec).await
    })?;
    println!(
        "schema {}: {} live rows, {} objects in store {:?}, {} orphans + {} young orphans, {:.1} s",
        cli.schema,
        outcome.live_rows,
        outcome.files,
        spec.name,
        outcome.orphans.len(),
        outcome.young_orphans.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Deletes every object under `prefix` (an earlier fixture's section).
fn clear(store: &dyn Store, prefix: &str) -> anyhow::Result<()> {
    let keys = collect_keys(store, prefix).with_context(|| format!("clearing {prefix}"))?;
    for batch in keys.chunks(djgc::store::DELETE_BATCH) {
        if let Some(Err(e)) = store.delete(prefix, batch).into_iter().find(Result::is_err) {
            bail!("clearing {prefix}: {e}");
        }
    }
    Ok(())
}
