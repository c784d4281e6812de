//! The `djgc` command: flags in, report and exit code out.
//!
//! Everything that decides what is an orphan lives in the library; this file
//! only parses the command line, wires the library's steps together, prints
//! and maps the outcome to the exit codes scripts rely on:
//! 0 done without errors, 1 done but some items failed, 2 usage or
//! configuration error, 3 refused to delete (scan errors or a safety check).

mod human;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Instant, SystemTime};

use clap::{Args, Parser, Subcommand};

use djgc::config::Config;
use djgc::error::Error;
use djgc::execute::{execute, guard_objections, DeleteOptions};
use djgc::progress::{Progress, Silent};
use djgc::scan::{parse_min_age, recheck, reference_query, scan, ScanOptions};
use djgc::store;

#[derive(Parser)]
#[command(
    name = "djgc",
    version,
    about = "Find and delete orphaned objects in DataJoint stores"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report the orphans of SCHEMA... in a store; never deletes.
    Scan(RunArgs),
    /// Like scan (a dry run), or with --delete delete the orphans.
    Collect(CollectArgs),
}

#[derive(Args)]
struct RunArgs {
    /// Schemas to collect (databases on MySQL, schemas on PostgreSQL).
    #[arg(value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Store to collect (default: stores.default).
    #[arg(long, value_name = "NAME")]
    store: Option<String>,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Objects modified more recently are never orphans in this run (0s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    min_age: String,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Write every orphan's store-relative path, one per line, to FILE.
    #[arg(long, value_name = "FILE")]
    orphans_out: Option<PathBuf>,
    /// Worker threads for listing and deleting (default: number of CPUs, at least 4).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// LIST requests in flight on an S3 store.
    #[arg(long, value_name = "N", default_value_t = 32)]
    list_concurrency: usize,
    /// Delete requests in flight (S3: of up to 1,000 keys each); default: --jobs.
    #[arg(long, value_name = "N")]
    delete_concurrency: Option<usize>,
    /// Refuse to delete when more than this share of a section's objects are orphans.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    max_orphan_fraction: f64,
    /// Delete even when the mass-deletion guard objects.
    #[arg(long)]
    force: bool,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    #[arg(long = "schema-codec", value_name = "NAME")]
    schema_codecs: Vec<String>,
    /// Log each deletion (path, bytes) to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Print no report (errors are still printed).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
}

#[derive(Args)]
struct CollectArgs {
    #[command(flatten)]
    run: RunArgs,
    /// Delete the orphans (without it, collect is a dry run).
    #[arg(long)]
    delete: bool,
}

/// Exit codes, as documented for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Clean = 0,
    ItemsFailed = 1,
    Usage = 2,
    Refused = 3,
}

/// Logs deletions to stderr with `--verbose`; failures always.
struct StderrLog {
    verbose: bool,
}

impl Progress for StderrLog {
    fn deleted(&self, key: &str, bytes: u64) {
        if self.verbose {
            eprintln!("deleted {key} ({bytes} bytes)");
        }
    }

    fn delete_failed(&self, key: &str, error: &str) {
        eprintln!("djgc: failed to delete {key}: {error}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, delete) = match cli.command {
        Command::Scan(args) => (args, false),
        Command::Collect(c) => (c.run, c.delete),
    };
    let exit = match run(&args, delete) {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("djgc: {e}");
            if e.is_usage_or_config() {
                Exit::Usage
            } else {
                Exit::Refused
            }
        }
    };
    ExitCode::from(exit as u8)
}

fn run(args: &RunArgs, delete: bool) -> Result<Exit, Error> {
    let started = Instant::now();
    if args.schemas.is_empty() {
        return Err(Error::Usage(
            "At least one schema must be provided".to_string(),
        ));
    }
    let min_age = parse_min_age(&args.min_age)?;
    if !(0.0..=1.0).contains(&args.max_orphan_fraction) {
        return Err(Error::Usage(format!(
            "--max-orphan-fraction {} is not between 0 and 1",
            args.max_orphan_fraction
        )));
    }
    let jobs = match args.jobs {
        Some(n) => positive(n, "--jobs")?,
        None => std::thread::available_parallelism().map_or(4, |n| n.get().max(4)),
    };

    let config = Config::load(args.config.clone())?;
    let spec = config.store(args.store.as_deref())?;
    let store_is_default = config.default_store_name() == Some(spec.name.as_str());
    let store = store::open(
        &spec,
        store::OpenOptions {
            jobs,
            list_concurrency: positive(args.list_concurrency, "--list-concurrency")?,
        },
    )?;
    let delete_workers = positive(
        args.delete_concurrency.unwrap_or(jobs),
        "--delete-concurrency",
    )?;
    let options = ScanOptions {
        schemas: args.schemas.clone(),
        cutoff: SystemTime::now() - min_age,
        jobs,
        schema_codecs: args.schema_codecs.clone(),
    };

    let log = StderrLog {
        verbose: args.verbose,
    };
    let progress: &dyn Progress = if args.quiet { &Silent } else { &log };
    let query = reference_query(&spec, store_is_default, &options);
    let mut plan = scan(
        &config.database,
        &spec,
        store_is_default,
        store.as_ref(),
        &options,
        progress,
    )?;

    if let Some(path) = &args.orphans_out {
        plan.write_orphan_list(path)?;
    }
    for warning in &plan.report.warnings {
        eprintln!("djgc: warning: {warning}");
    }
    for problem in &plan.report.scan_errors {
        eprintln!("djgc: {problem}");
    }

    if delete && !plan.is_blocked() {
        recheck(&mut plan, &config.database, &query, progress)?;
    }
    let mut exit = if plan.is_blocked() {
        Exit::Refused
    } else {
        Exit::Clean
    };
    let deletion = DeleteOptions {
        workers: delete_workers,
        max_orphan_fraction: args.max_orphan_fraction,
        force: args.force,
    };
    if delete && !plan.is_blocked() {
        match execute(&mut plan, store.as_ref(), &deletion, &log) {
            Err(e @ Error::Refused(_)) => {
                eprintln!("djgc: {e}");
                exit = Exit::Refused;
            }
            Err(e) => {
                eprintln!("djgc: deletion stopped early: {e}");
                exit = Exit::ItemsFailed;
            }
            Ok(()) if plan.report.outcome.errors > 0 => exit = Exit::ItemsFailed,
            Ok(()) => {}
        }
    } else if delete {
        eprintln!("djgc: refused to delete: the scan met problems (above); nothing was deleted");
    } else {
        for objection in guard_objections(&plan.report, args.max_orphan_fraction) {
            eprintln!("djgc: --delete would refuse: {objection}");
        }
    }

    plan.report.seconds = started.elapsed().as_secs_f64();
    if args.json {
        println!("{}", plan.report.to_json());
    } else if !args.quiet {
        print!("{}", human::render(&plan.report, &spec, min_age));
    }
    Ok(exit)
}

fn positive(n: usize, flag: &str) -> Result<usize, Error> {
    if n == 0 {
        return Err(Error::Usage(format!("{flag} must be at least 1")));
    }
    Ok(n)
}
