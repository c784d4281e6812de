//! The `djgc` command: flags in, report and exit code out.
//!
//! Everything that decides what is an orphan, and every safety step before
//! a deletion, lives in the library ([`djgc::run`]); this file only
//! dispatches the commands of [`cli`], prints through [`status`] and
//! [`human`], and maps the outcome to the exit codes scripts rely on:
//! 0 done without errors, 1 done but some items failed (or interrupted),
//! 2 usage or configuration error, 3 refused to delete (scan errors or a
//! safety check).
//!
//! SIGTERM and SIGINT (a scheduler's time limit, Ctrl-C) raise the run's
//! [`Interrupt`]: the batches in flight finish, the report is written
//! marked partial, and the exit code is 1. A second signal exits at once.

mod cli;
mod human;
mod status;

use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{CommandFactory, Parser};

use cli::{ApplyArgs, Cli, Command, OutputArgs, ScanArgs};
use status::Console;

use djgc::error::Error;
use djgc::interrupt::Interrupt;
use djgc::progress::Progress;
use djgc::report::{merge_shards, Report};
use djgc::run::{self, Collection, Disposal, Session, SessionOptions, Verdict};
use djgc::store;

/// Exit codes, as documented for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Clean = 0,
    ItemsFailed = 1,
    Usage = 2,
    Refused = 3,
}

impl From<Verdict> for Exit {
    fn from(verdict: Verdict) -> Exit {
        match verdict {
            Verdict::Clean => Exit::Clean,
            Verdict::ItemsFailed => Exit::ItemsFailed,
            Verdict::Refused => Exit::Refused,
        }
    }
}

/// The interrupt every session of this process honours, raised by
/// SIGTERM and SIGINT.
static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();

/// Makes SIGTERM and SIGINT raise [`INTERRUPT`]; once raised, the same
/// signals end the process at once (exit 1).
fn stop_on_signals() -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let flag = INTERRUPT.get_or_init(Interrupt::default).flag();
    for signal in [SIGTERM, SIGINT] {
        // The shutdown is registered first, so the first signal only arms it.
        signal_hook::flag::register_conditional_shutdown(signal, 1, flag.clone())?;
        signal_hook::flag::register(signal, flag.clone())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = stop_on_signals() {
        eprintln!("djgc: cannot catch SIGTERM/SIGINT, so a stop will not be clean: {e}");
    }
    let mut console = Console::new(cli.log_format);
    if let Some((verbose, quiet)) = cli.command.bars() {
        console = console.with_bars(verbose, quiet, cli.progress);
    }
    let outcome = match &cli.command {
        Command::Scan(args) => collect(&cli, args, None, &console),
        Command::Collect(args) => collect(&cli, &args.scan, Some(&args.delete), &console),
        Command::Apply(args) => apply(&cli, args, &console),
        Command::Restore(args) => session(&cli, args.store.store.as_deref(), None).and_then(|s| {
            let outcome = run::restore(&s, &args.trash_prefix, &args.run, &console)?;
            human::restored(&args.run, &outcome, args.json);
            Ok(failed_if(outcome.conflicts + outcome.errors > 0))
        }),
        Command::Purge(args) => purge(&cli, args, &console),
        Command::Refs(cli::RefsCommand::Snapshot(args)) => snapshot(&cli, args, &console),
        Command::Check(args) => check(&cli, args, &console),
        Command::MergeReports(args) => merge_reports(args),
        Command::Ls(args) => ls(&cli, args, &console),
        Command::Config(args) => cli.load_config().map(|config| {
            human::config(&config, args.json);
            Exit::Clean
        }),
        Command::Completions { shell } => {
            let mut command = Cli::command();
            clap_complete::generate(*shell, &mut command, "djgc", &mut std::io::stdout());
            Ok(Exit::Clean)
        }
    };
    console.finish();
    let exit = outcome.unwrap_or_else(|e| {
        console.error(&e.to_string());
        match e {
            _ if e.is_usage_or_config() => Exit::Usage,
            Error::Interrupted(_) => Exit::ItemsFailed,
            _ => Exit::Refused,
        }
    });
    ExitCode::from(exit as u8)
}

fn failed_if(failed: bool) -> Exit {
    match failed {
        true => Exit::ItemsFailed,
        false => Exit::Clean,
    }
}

/// The session on `store` (default: `stores.default`); `work` as given,
/// else the defaults.
fn session(cli: &Cli, store: Option<&str>, work: Option<&cli::WorkArgs>) -> Result<Session, Error> {
    let options = work.map_or(SessionOptions::default(), cli::WorkArgs::session);
    let interrupt = INTERRUPT.get_or_init(Interrupt::default).clone();
    Ok(Session::open(cli.load_config()?, store, options)?.with_interrupt(interrupt))
}

/// `scan`, and `collect` with its delete flags.
fn collect(
    cli: &Cli,
    args: &ScanArgs,
    delete: Option<&cli::DeleteArgs>,
    console: &Console,
) -> Result<Exit, Error> {
    let request = args.request()?;
    let session = session(cli, args.store.store.as_deref(), Some(&args.work))?;
    let collection = match delete {
        Some(delete) => run::collect(&session, &request, &delete.disposal(&args.guard), console)?,
        None => run::scan(&session, &request, args.guard.guard(), console)?,
    };
    Ok(report(
        &collection,
        &session,
        request.min_age,
        &args.output,
        console,
    ))
}

/// `apply PLAN`.
fn apply(cli: &Cli, args: &ApplyArgs, console: &Console) -> Result<Exit, Error> {
    let request = args.request()?;
    let store = run::plan_store(&args.plan)?;
    let session = session(cli, Some(&store), Some(&args.work))?;
    let disposal: Disposal = args.delete.disposal(&args.guard);
    let collection = run::apply(&session, &request, &disposal, console)?;
    Ok(report(
        &collection,
        &session,
        request.min_age,
        &args.output,
        console,
    ))
}

/// Prints a collection's report; the exit code once it is printed. A report
/// that could not be written (`--report FILE`) is a failure of this run,
/// not a refusal (the run may have deleted objects already).
fn report(
    collection: &Collection,
    session: &Session,
    min_age: std::time::Duration,
    output: &OutputArgs,
    console: &Console,
) -> Exit {
    console.finish();
    let exit = Exit::from(collection.verdict);
    let report = &collection.report;
    if let Some(path) = &output.report {
        if let Err(e) = report.write_file(path) {
            console.error(&format!("the report could not be written: {e}"));
            return match exit {
                Exit::Clean => Exit::ItemsFailed,
                other => other,
            };
        }
    }
    if output.json {
        println!("{}", report.to_json());
    } else if !output.quiet {
        print!("{}", human::render(report, session.spec(), min_age));
    }
    exit
}

/// `purge --older-than D`.
fn purge(cli: &Cli, args: &cli::PurgeArgs, console: &Console) -> Result<Exit, Error> {
    let request = args.request()?;
    let session = session(cli, args.store.store.as_deref(), None)?;
    let report = run::purge(&session, &request, console)?;
    human::purged(&report, &args.older_than, args.json);
    let failed = report.errors + report.rescued.errors + report.rescued.conflicts;
    Ok(failed_if(failed > 0))
}

/// `check SCHEMA...`: exit 1 when a row's object is damaged, 3 when the
/// check could not be completed (a listing or a read failed, or a signal
/// stopped it).
fn check(cli: &Cli, args: &cli::CheckArgs, console: &Console) -> Result<Exit, Error> {
    let request = args.request()?;
    let session = session(cli, args.store.store.as_deref(), Some(&args.work))?;
    let mut out = human::CheckOutput::new(args.json, args.quiet, args.report.as_deref())?;
    let mut damaged = |row: djgc::check::DamagedRow| out.row(&row);
    let checked = run::check(&session, &request, console, &mut damaged);
    console.finish();
    let report = match checked {
        Ok(report) => report,
        Err(e) => {
            // Rows already printed are closed into valid JSON, with the error.
            out.abort(&e.to_string());
            return match e {
                // Stopped by a signal: not completed, as a failed read is.
                Error::Interrupted(_) => {
                    console.error(&e.to_string());
                    Ok(Exit::Refused)
                }
                e => Err(e),
            };
        }
    };
    for problem in &report.errors {
        console.error(problem);
    }
    out.finish(&report)?;
    Ok(if !report.errors.is_empty() {
        Exit::Refused
    } else {
        failed_if(report.rows_damaged > 0)
    })
}

/// `refs snapshot SCHEMA... --out DIR`: exit 3 when the read met problems
/// (the snapshot is written, and every shard judged by it refuses).
fn snapshot(cli: &Cli, args: &cli::SnapshotArgs, console: &Console) -> Result<Exit, Error> {
    let request = args.request()?;
    let session = session(cli, args.store.store.as_deref(), Some(&args.work))?;
    let header = run::snapshot_references(&session, &request, console)?;
    console.finish();
    for problem in &header.errors {
        console.error(problem);
    }
    human::snapshot(&header, &request.out, args.json);
    Ok(match header.errors.is_empty() {
        true => Exit::Clean,
        false => Exit::Refused,
    })
}

/// `ls [STORE]`.
fn ls(cli: &Cli, args: &cli::LsArgs, console: &Console) -> Result<Exit, Error> {
    let session = session(cli, args.store.as_deref(), Some(&args.work))?;
    let prefixes = djgc::layout::listing_prefixes(session.spec(), &args.schemas, args.kind())?;
    let mut counts = Vec::new();
    for prefix in prefixes {
        let listed = |n| console.listed(&prefix, n);
        let count = store::count_listing(session.store(), &prefix, &listed);
        for error in &count.errors {
            console.error(error);
        }
        counts.push(count);
    }
    console.finish();
    human::listing(&counts, &session.spec().name, args.json);
    Ok(failed_if(counts.iter().any(|c| !c.errors.is_empty())))
}

/// `merge-reports FILE...`.
fn merge_reports(args: &cli::MergeReportsArgs) -> Result<Exit, Error> {
    let mut reports = Vec::new();
    for path in &args.reports {
        reports.push((path.display().to_string(), Report::read_file(path)?));
    }
    let merged = merge_shards(&reports)?;
    match &args.out {
        Some(path) => merged.write_file(path)?,
        None => println!("{}", merged.to_json()),
    }
    Ok(match merged.scan_errors.is_empty() {
        true => Exit::Clean,
        false => Exit::Refused,
    })
}
