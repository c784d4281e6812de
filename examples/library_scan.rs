//! djgc from Rust: the library's entry points, as a caller other than the
//! `djgc` binary uses them. Scans the schemas named on the command line in
//! the default store of the `datajoint.json` found from the working
//! directory, and prints the orphans' totals; with `--delete`, deletes them
//! (every safety step is the library's: re-check, guard, watch, audit).
//!
//! Usage: `cargo run --example library_scan -- SCHEMA... [--delete]`

use djgc::config::Config;
use djgc::progress::{Notice, Progress};
use djgc::run::{self, Action, Disposal, Guard, ScanRequest, Schemas, Session, Verdict};

/// Prints what the library has to say; draws nothing.
struct Log;

impl Progress for Log {
    fn notice(&self, notice: Notice<'_>) {
        eprintln!("{notice:?}");
    }
}

fn main() -> anyhow::Result<()> {
    let mut schemas: Vec<String> = std::env::args().skip(1).collect();
    let delete = schemas.iter().any(|a| a == "--delete");
    schemas.retain(|a| a != "--delete");
    anyhow::ensure!(
        !schemas.is_empty(),
        "usage: library_scan SCHEMA... [--delete]"
    );

    let session = Session::open(Config::load(None)?, None, Default::default())?;
    let request = ScanRequest::new(Schemas::Named(schemas));
    let disposal = Disposal {
        action: if delete {
            Action::Delete
        } else {
            Action::DryRun
        },
        ..Disposal::dry_run(Guard::default())
    };
    let collection = run::collect(&session, &request, &disposal, &Log)?;
    let totals = collection.report.totals(None);
    println!(
        "{} stored, {} orphaned ({} bytes), {} deleted: {:?}",
        totals.stored,
        totals.orphaned,
        totals.orphaned_bytes,
        collection.report.deleted(),
        collection.verdict
    );
    anyhow::ensure!(collection.verdict != Verdict::Refused, "refused to delete");
    Ok(())
}
