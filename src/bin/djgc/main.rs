//! The `djgc` command: flags in, report and exit code out.
//!
//! Everything that decides what is an orphan lives in the library; this file
//! only parses the command line, wires the library's steps together, prints
//! and maps the outcome to the exit codes scripts rely on:
//! 0 done without errors, 1 done but some items failed, 2 usage or
//! configuration error, 3 refused to delete (scan errors or a safety check).

mod human;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use clap::{Args, CommandFactory, Parser, Subcommand};

use status::{Console, LogFormat};

use djgc::config::{Config, StoreSpec};
use djgc::error::Error;
use djgc::execute::{execute, guard_objections, quarantine, DeleteOptions};
use djgc::inventory::Inventory;
use djgc::layout::{self, SectionKind};
use djgc::plan::Plan;
use djgc::planfile;
use djgc::progress::{Progress, Silent};
use djgc::quarantine::{self as trash_runs, Trash, DEFAULT_TRASH_PREFIX};
use djgc::references::{all_schemas, ReferenceQuery};
use djgc::report::{merge_shards, Report};
use djgc::scan::{
    parse_min_age, recheck, reference_query, references_for_deletion, scan, ScanOptions,
};
use djgc::shard::Shard;
use djgc::store::{self, Store};
use djgc::watch::ReadReferences;

#[derive(Parser)]
#[command(
    name = "djgc",
    version,
    about = "Find and delete orphaned objects in DataJoint stores"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines on stderr as text, or as one JSON object per line (for
    /// unattended runs).
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Draw progress bars even when stderr is not a terminal.
    #[arg(long, global = true)]
    progress: bool,
    /// The longest djgc waits for the database: to connect, for a
    /// statement's next row or answer, for a lock (default 10m, or
    /// DJGC_DB_TIMEOUT). A database silent for longer ends the run.
    #[arg(long, global = true, value_name = "DURATION")]
    db_timeout: Option<String>,
    /// Verify the database server's certificate and host name against this
    /// CA (PEM); TLS is then required (default: DJGC_TLS_CA).
    #[arg(long, global = true, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
}

impl Command {
    /// For a command that draws bars: whether it logs each deletion and
    /// whether it is quiet.
    fn bars(&self) -> Option<(bool, bool)> {
        let output = |o: &OutputArgs| Some((o.verbose, o.quiet));
        match self {
            Command::Scan(args) => output(&args.output),
            Command::Collect(args) => output(&args.scan.output),
            Command::Apply(args) => output(&args.output),
            Command::Ls(_) => Some((false, false)),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Report the orphans of SCHEMA... in a store; never deletes.
    #[command(
        after_help = "Example: djgc scan lab_ephys lab_imaging --store main --orphans-out orphans.txt"
    )]
    Scan(ScanArgs),
    /// Like scan (a dry run), or with --delete delete (or --quarantine) the orphans.
    #[command(
        after_help = "Example: djgc collect lab_ephys --min-age 7d --delete --report gc.json"
    )]
    Collect(CollectArgs),
    /// Carry out a plan written by `scan --plan`: a dry run, or with --delete
    /// delete (or --quarantine) its orphans still unchanged and unreferenced.
    #[command(
        after_help = "Example: djgc apply plan.jsonl --delete   (the plan of: djgc scan lab_ephys --plan plan.jsonl)"
    )]
    Apply(ApplyArgs),
    /// Put every object of a quarantine run back where it was.
    #[command(after_help = "Example: djgc restore 20261126T101500Z-4f2a1b")]
    Restore(RestoreArgs),
    /// Delete quarantine runs older than the grace period, putting back any
    /// object referenced again; a dry run unless --delete.
    #[command(after_help = "Example: djgc purge --older-than 7d --delete")]
    Purge(PurgeArgs),
    /// Add up the --report files of the shards of one run into one report of
    /// the same shape (JSON).
    #[command(
        after_help = "Example: djgc merge-reports djgc-reports/4242/shard-*.json --out gc.json"
    )]
    MergeReports(MergeReportsArgs),
    /// List a store's sections and print keys, bytes and keys/s per prefix:
    /// the collector's own listing, as a throughput benchmark.
    #[command(after_help = "Example: djgc ls main --section hash --schema lab_ephys")]
    Ls(LsArgs),
    /// Show the resolved configuration (database and each store): every
    /// value, secrets masked, and where it came from (file, secrets, env).
    #[command(after_help = "Example: djgc config --config ~/lab/datajoint.json")]
    Config(ConfigArgs),
    /// Print a completion script for SHELL (bash, zsh, fish, elvish, powershell).
    #[command(
        after_help = "Example: djgc completions bash > ~/.local/share/bash-completion/completions/djgc"
    )]
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct StoreArgs {
    /// Store to work on (default: stores.default).
    #[arg(long, value_name = "NAME")]
    store: Option<String>,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Args)]
struct WorkArgs {
    /// Worker threads for listing and deleting (default: number of CPUs, at least 4).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// LIST requests in flight on an S3 store.
    #[arg(long, value_name = "N", default_value_t = 32)]
    list_concurrency: usize,
}

#[derive(Args)]
struct OutputArgs {
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Log each deletion or move into quarantine (path, bytes) to stderr.
    #[arg(short, long)]
    verbose: bool,
    /// Print no report (errors are still printed).
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// Also write the report (the --json object) to FILE, e.g. one per shard
    /// for `djgc merge-reports`.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
}

#[derive(Args)]
struct ShardArgs {
    /// Judge only shard K of N (0 <= K < N) of every section: N runs with
    /// K = 0..N-1, anywhere and in any order, together judge every object
    /// once. Default: DJGC_SHARD=K/N, SLURM_ARRAY_TASK_ID/_MIN/_COUNT, or
    /// JOB_COMPLETION_INDEX with DJGC_SHARD_COUNT.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// The run this is one shard of, written into --report so that
    /// `djgc merge-reports` adds up only shards of one run. Default:
    /// DJGC_RUN_ID, or SLURM_ARRAY_JOB_ID in a Slurm array.
    #[arg(long, value_name = "ID")]
    run_id: Option<String>,
}

impl ShardArgs {
    fn resolve(&self) -> Result<Option<Shard>, Error> {
        match &self.shard {
            Some(text) => Shard::parse(text, "--shard").map(Some),
            None => Shard::from_env(|name| std::env::var(name).ok()),
        }
    }

    /// The run's id: `--run-id`, else `DJGC_RUN_ID`, else Slurm's
    /// `SLURM_ARRAY_JOB_ID` (the same in every task of an array).
    fn run_id(&self) -> Option<String> {
        self.run_id.clone().or_else(|| {
            ["DJGC_RUN_ID", "SLURM_ARRAY_JOB_ID"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
    }
}

#[derive(Args)]
struct ScanArgs {
    /// Schemas to collect (databases on MySQL, schemas on PostgreSQL).
    #[arg(value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Every schema in the database with codec columns for the store.
    #[arg(long, conflicts_with = "schemas")]
    all_schemas: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    guard: GuardArgs,
    #[command(flatten)]
    shard: ShardArgs,
    /// Objects modified more recently are never orphans in this run (0s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    min_age: String,
    /// Write every orphan's store-relative path, one per line, to FILE.
    #[arg(long, value_name = "FILE")]
    orphans_out: Option<PathBuf>,
    /// Write the plan (orphans with size and mtime, store identity, totals) to FILE for `djgc apply`.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    #[arg(long = "schema-codec", value_name = "NAME")]
    schema_codecs: Vec<String>,
    /// Read the S3 store's objects from this S3 Inventory report (its
    /// manifest.json: a local path or s3://BUCKET/KEY) instead of listing;
    /// each orphan is confirmed with HEAD before it is deleted.
    #[arg(long, value_name = "MANIFEST")]
    inventory: Option<String>,
}

#[derive(Args)]
struct GuardArgs {
    /// Refuse to delete when more than this share of a section's objects are orphans.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    max_orphan_fraction: f64,
    /// Delete even when the mass-deletion guard objects.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct DeleteArgs {
    /// Delete the orphans (without it, nothing changes: a dry run).
    #[arg(long)]
    delete: bool,
    /// With --delete: move the orphans under the trash prefix instead of deleting them.
    #[arg(long, requires = "delete")]
    quarantine: bool,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    trash_prefix: String,
    /// Delete requests in flight (S3: of up to 1,000 keys each); default: --jobs.
    #[arg(long, value_name = "N")]
    delete_concurrency: Option<usize>,
}

#[derive(Args)]
struct CollectArgs {
    #[command(flatten)]
    scan: ScanArgs,
    #[command(flatten)]
    delete: DeleteArgs,
}

#[derive(Args)]
struct ApplyArgs {
    /// A plan written by `djgc scan --plan`.
    #[arg(value_name = "PLAN")]
    plan: PathBuf,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    work: WorkArgs,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    guard: GuardArgs,
    #[command(flatten)]
    delete: DeleteArgs,
    /// The shard the plan must have been made for (default: the plan's own;
    /// with an array job's environment, that shard).
    #[command(flatten)]
    shard: ShardArgs,
    /// Objects that arrived more recently are kept, judged again now
    /// whatever the plan was made with (0s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    min_age: String,
    /// The S3 Inventory manifest the plan was judged from, given again: a
    /// plan judged from an inventory needs it (djgc never takes the path
    /// from the plan file) to count what the bucket held.
    #[arg(long, value_name = "MANIFEST")]
    inventory: Option<String>,
}

#[derive(Args)]
struct LsArgs {
    /// Store to list (default: stores.default).
    #[arg(value_name = "STORE")]
    store: Option<String>,
    /// Only this kind of section.
    #[arg(long, value_enum)]
    section: Option<SectionChoice>,
    /// Only this schema's sections (repeatable); default: the whole hash and schema roots.
    #[arg(long = "schema", value_name = "SCHEMA")]
    schemas: Vec<String>,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    work: WorkArgs,
    /// Print one JSON object per prefix on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct ConfigArgs {
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SectionChoice {
    Hash,
    Schema,
}

#[derive(Args)]
struct MergeReportsArgs {
    /// Reports written with --report by shards 0..N-1 of one run.
    #[arg(value_name = "FILE", required = true)]
    reports: Vec<PathBuf>,
    /// Write the merged report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
struct RestoreArgs {
    /// The run id (a folder name under the trash prefix).
    #[arg(value_name = "RUN-ID")]
    run: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    trash_prefix: String,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PurgeArgs {
    /// Grace period: runs quarantined longer ago than this are purged (e.g. 7d).
    #[arg(long, value_name = "DURATION")]
    older_than: String,
    #[command(flatten)]
    store: StoreArgs,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    trash_prefix: String,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    #[arg(long = "schema-codec", value_name = "NAME")]
    schema_codecs: Vec<String>,
    /// Purge (without it, only report what would be purged and put back).
    #[arg(long)]
    delete: bool,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// Exit codes, as documented for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exit {
    Clean = 0,
    ItemsFailed = 1,
    Usage = 2,
    Refused = 3,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut console = Console::new(cli.log_format);
    if let Some((verbose, quiet)) = cli.command.bars() {
        console = console.with_bars(verbose, quiet, cli.progress);
    }
    let outcome = db_timeout(cli.db_timeout.as_deref()).and_then(|db_timeout| {
        let work = Work {
            console: &console,
            db_timeout,
            tls_ca: cli.tls_ca.clone(),
        };
        match &cli.command {
            Command::Scan(args) => collect(args, None, &work),
            Command::Collect(args) => collect(&args.scan, Some(&args.delete), &work),
            Command::Apply(args) => apply(args, &work),
            Command::Restore(args) => restore(args, &work),
            Command::Purge(args) => purge(args, &work),
            Command::MergeReports(args) => merge_reports(args),
            Command::Ls(args) => ls(args, &work),
            Command::Config(args) => show_config(args, &work),
            Command::Completions { shell } => {
                let mut command = Cli::command();
                clap_complete::generate(*shell, &mut command, "djgc", &mut std::io::stdout());
                Ok(Exit::Clean)
            }
        }
    });
    console.finish();
    let exit = match outcome {
        Ok(exit) => exit,
        Err(e) => {
            console.error(&e.to_string());
            if e.is_usage_or_config() {
                Exit::Usage
            } else {
                Exit::Refused
            }
        }
    };
    ExitCode::from(exit as u8)
}

/// What every subcommand that works on a store shares.
struct Work<'a> {
    console: &'a Console,
    /// The longest any wait on the database may take.
    db_timeout: Duration,
    /// `--tls-ca`.
    tls_ca: Option<PathBuf>,
}

impl Work<'_> {
    /// The configuration, with what the command line says of the database.
    fn config(&self, file: Option<PathBuf>) -> Result<Config, Error> {
        let mut config = Config::load(file)?;
        config.database.timeout = self.db_timeout;
        if let Some(ca) = &self.tls_ca {
            config.verify_database_with(ca.clone(), "flag --tls-ca")?;
        }
        Ok(config)
    }
}

/// `--db-timeout`, else `DJGC_DB_TIMEOUT`, else the library's default.
fn db_timeout(flag: Option<&str>) -> Result<Duration, Error> {
    let (text, source) = match flag {
        Some(text) => (text.to_string(), "--db-timeout"),
        None => match std::env::var("DJGC_DB_TIMEOUT") {
            Ok(text) if !text.is_empty() => (text, "DJGC_DB_TIMEOUT"),
            _ => return Ok(djgc::config::DEFAULT_DB_TIMEOUT),
        },
    };
    match humantime::parse_duration(&text) {
        Ok(timeout) if !timeout.is_zero() => Ok(timeout),
        _ => Err(Error::Usage(format!(
            "{source} {text:?} is not a duration above zero like 30s, 5m or 1h"
        ))),
    }
}

fn positive(n: usize, flag: &str) -> Result<usize, Error> {
    if n == 0 {
        return Err(Error::Usage(format!("{flag} must be at least 1")));
    }
    Ok(n)
}

fn jobs(work: &WorkArgs) -> Result<usize, Error> {
    match work.jobs {
        Some(n) => positive(n, "--jobs"),
        None => Ok(std::thread::available_parallelism().map_or(4, |n| n.get().max(4))),
    }
}

/// The configured store named `name` (or the default), opened.
struct OpenStore {
    config: Config,
    spec: StoreSpec,
    store_is_default: bool,
    store: Box<dyn Store>,
}

fn open_store(
    config_file: Option<PathBuf>,
    name: Option<&str>,
    jobs: usize,
    list_concurrency: usize,
    work: &Work<'_>,
) -> Result<OpenStore, Error> {
    let config = work.config(config_file)?;
    let spec = config.store(name)?;
    let store_is_default = config.default_store_name() == Some(spec.name.as_str());
    let store = store::open(
        &spec,
        store::OpenOptions {
            jobs,
            list_concurrency: positive(list_concurrency, "--list-concurrency")?,
        },
    )?;
    Ok(OpenStore {
        config,
        spec,
        store_is_default,
        store,
    })
}

fn check_fraction(guard: &GuardArgs) -> Result<(), Error> {
    if !(0.0..=1.0).contains(&guard.max_orphan_fraction) {
        return Err(Error::Usage(format!(
            "--max-orphan-fraction {} is not between 0 and 1",
            guard.max_orphan_fraction
        )));
    }
    Ok(())
}

/// Objects that arrived after this are too young to judge; an age past the
/// calendar's start keeps everything.
fn cutoff(min_age: Duration) -> SystemTime {
    SystemTime::now()
        .checked_sub(min_age)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `scan`, and `collect` with `delete` flags.
fn collect(args: &ScanArgs, delete: Option<&DeleteArgs>, work: &Work<'_>) -> Result<Exit, Error> {
    let console = work.console;
    let started = SystemTime::now();
    if args.schemas.is_empty() && !args.all_schemas {
        return Err(Error::Usage(
            "At least one schema must be provided (or --all-schemas)".to_string(),
        ));
    }
    let min_age = parse_min_age(&args.min_age)?;
    check_fraction(&args.guard)?;
    let jobs = jobs(&args.work)?;
    let open = open_store(
        args.store.config.clone(),
        args.store.store.as_deref(),
        jobs,
        args.work.list_concurrency,
        work,
    )?;
    let schemas = match args.all_schemas {
        true => {
            let found = all_schemas(
                &open.config.database,
                &open.spec,
                open.store_is_default,
                &args.schema_codecs,
            )?;
            for skipped in &found.skipped {
                console.warn(skipped);
            }
            found.schemas
        }
        false => layout::schema_names(&args.schemas)?,
    };
    let options = ScanOptions {
        schemas,
        cutoff: cutoff(min_age),
        jobs,
        schema_codecs: args.schema_codecs.clone(),
        shard: args.shard.resolve()?,
        inventory: args
            .inventory
            .as_deref()
            .map(|manifest| Inventory::open(manifest, &open.spec).map(Arc::new))
            .transpose()?,
    };
    let mut plan = scan(
        &open.config.database,
        &open.spec,
        open.store_is_default,
        open.store.as_ref(),
        &options,
        console,
    )?;
    let query = plan_query(&plan, &open, &args.schema_codecs, jobs)?;
    plan.report.run_id = args.shard.run_id();

    if let Some(path) = &args.orphans_out {
        plan.write_orphan_list(path)?;
    }
    if let Some(path) = &args.plan {
        let identity = planfile::identity(&open.spec, &open.config.database);
        planfile::write(path, &plan, identity, &args.schema_codecs)?;
    }
    let delete = delete.filter(|d| d.delete);
    if delete.is_some() && plan.report.inventory.is_some() && !plan.is_blocked() {
        plan.report.changed_skipped = planfile::confirm_unchanged(&mut plan, open.store.as_ref())?;
    }
    print_problems(&plan, console);
    let exit = dispose(&mut plan, &open, &query, delete, &args.guard, jobs, console)?;
    plan.report.finish_run(started);
    Ok(reported(
        exit,
        print_report(&plan, &open.spec, min_age, &args.output, console),
        console,
    ))
}

/// The exit code once the report is printed: a report that could not be
/// written (`--report FILE`) is a failure of this run, not a refusal (the
/// run may have deleted objects already).
fn reported(exit: Exit, printed: Result<(), Error>, console: &Console) -> Exit {
    match printed {
        Ok(()) => exit,
        Err(e) => {
            console.error(&format!("the report could not be written: {e}"));
            match exit {
                Exit::Clean => Exit::ItemsFailed,
                other => other,
            }
        }
    }
}

/// The S3 Inventory a plan was judged from, opened again to count what the
/// bucket held; `None` for a plan judged from a listing. The manifest is
/// the one given on the command line, which must be the plan's: a path
/// read from the plan file would let whoever edits it choose what counts.
fn plan_inventory(
    plan: &Plan,
    given: Option<&str>,
    spec: &StoreSpec,
) -> Result<Option<Inventory>, Error> {
    let planned = plan.report.inventory.as_ref().map(|i| i.manifest.as_str());
    match (planned, given) {
        (None, None) => Ok(None),
        (Some(planned), Some(given)) if planned == given => Inventory::open(given, spec).map(Some),
        (Some(planned), _) => Err(Error::Usage(format!(
            "the plan says it was judged from the S3 Inventory {planned:?}; check that this is \
             the inventory you made it from, and name it with --inventory to apply the plan"
        ))),
        (None, Some(_)) => Err(Error::Usage(
            "the plan was judged from a listing, not from an S3 Inventory; apply it without \
             --inventory"
                .to_string(),
        )),
    }
}

/// `apply PLAN`: the plan's orphans that are still unchanged and unreferenced.
fn apply(args: &ApplyArgs, work: &Work<'_>) -> Result<Exit, Error> {
    let console = work.console;
    let started = SystemTime::now();
    let min_age = parse_min_age(&args.min_age)?;
    check_fraction(&args.guard)?;
    let jobs = jobs(&args.work)?;
    let (header, mut plan) = planfile::read(&args.plan)?;
    let store_name = header.identity.get("store").cloned().unwrap_or_default();
    let open = open_store(
        args.config.clone(),
        Some(&store_name),
        jobs,
        args.work.list_concurrency,
        work,
    )?;
    planfile::check_identity(
        &header,
        &planfile::identity(&open.spec, &open.config.database),
    )?;
    planfile::check_sections(&header, &mut plan, &open.spec)?;
    let planned = plan.report.shard.as_ref().map(|s| s.shard);
    if let Some(shard) = args.shard.resolve()?.filter(|s| Some(*s) != planned) {
        return Err(Error::Usage(format!(
            "{} was made for {}, not for shard {shard}",
            args.plan.display(),
            planned.map_or("the whole store".to_string(), |s| format!("shard {s}"))
        )));
    }
    let query = plan_query(&plan, &open, &header.schema_codecs, jobs)?;
    plan.report.run_id = args.shard.run_id();
    let inventory = plan_inventory(&plan, args.inventory.as_deref(), &open.spec)?;
    if !plan.is_blocked() {
        let cutoff = cutoff(min_age);
        plan.report.changed_skipped = planfile::confirm_for_apply(
            &mut plan,
            open.store.as_ref(),
            inventory.as_ref(),
            cutoff,
        )?;
    }
    print_problems(&plan, console);
    let exit = dispose(
        &mut plan,
        &open,
        &query,
        Some(&args.delete).filter(|d| d.delete),
        &args.guard,
        jobs,
        console,
    )?;
    plan.report.finish_run(started);
    Ok(reported(
        exit,
        print_report(&plan, &open.spec, min_age, &args.output, console),
        console,
    ))
}

/// The reference query that re-checks `plan` before and while it is
/// carried out: its schemas, and its sections with their shard ranges.
fn plan_query(
    plan: &Plan,
    open: &OpenStore,
    schema_codecs: &[String],
    jobs: usize,
) -> Result<ReferenceQuery, Error> {
    Ok(reference_query(
        &open.spec,
        open.store_is_default,
        &plan.report.schemas,
        schema_codecs,
        jobs,
    )?
    .limited_to(
        plan.sections.clone(),
        plan.report.shard.as_ref().map(|s| s.shard),
    ))
}

/// `ls [STORE]`.
fn ls(args: &LsArgs, work: &Work<'_>) -> Result<Exit, Error> {
    let console = work.console;
    let jobs = jobs(&args.work)?;
    let open = open_store(
        args.config.clone(),
        args.store.as_deref(),
        jobs,
        args.work.list_concurrency,
        work,
    )?;
    let kind = args.section.map(|s| match s {
        SectionChoice::Hash => SectionKind::Hash,
        SectionChoice::Schema => SectionKind::Schema,
    });
    let mut failed = false;
    let mut counts = Vec::new();
    for prefix in layout::listing_prefixes(&open.spec, &args.schemas, kind)? {
        let listed = |n| console.listed(&prefix, n);
        let count = store::count_listing(open.store.as_ref(), &prefix, &listed);
        for error in &count.errors {
            console.error(error);
        }
        failed |= !count.errors.is_empty();
        counts.push(count);
    }
    console.finish();
    let width = counts
        .iter()
        .map(|c| c.prefix.len())
        .max()
        .unwrap_or(0)
        .max(6);
    if !args.json {
        println!(
            "{:<width$}  {:>12}  {:>12}  {:>9}  {:>10}",
            "prefix", "keys", "bytes", "seconds", "keys/s"
        );
    }
    for count in &counts {
        if args.json {
            let mut line = serde_json::to_value(count).expect("serialises");
            line["store"] = open.spec.name.clone().into();
            line["keys_per_second"] = count.keys_per_second().round().into();
            println!("{line}");
        } else {
            let shown = if count.prefix.is_empty() {
                "(root)"
            } else {
                &count.prefix
            };
            println!(
                "{shown:<width$}  {:>12}  {:>12}  {:>9.2}  {:>10.0}",
                count.keys,
                count.bytes,
                count.seconds,
                count.keys_per_second()
            );
        }
    }
    Ok(if failed {
        Exit::ItemsFailed
    } else {
        Exit::Clean
    })
}

/// `config`.
fn show_config(args: &ConfigArgs, work: &Work<'_>) -> Result<Exit, Error> {
    let config = work.config(args.config.clone())?;
    let stores: Vec<(String, Result<StoreSpec, Error>)> = config
        .store_names()
        .into_iter()
        .map(|name| {
            let spec = config.store(Some(&name));
            (name, spec)
        })
        .collect();
    let shown = |path: &Option<PathBuf>| path.as_ref().map(|p| p.display().to_string());
    if args.json {
        let checks: serde_json::Map<String, serde_json::Value> = stores
            .iter()
            .map(|(name, spec)| {
                let check = match spec {
                    Ok(_) => "ok".to_string(),
                    Err(e) => e.to_string(),
                };
                (name.clone(), check.into())
            })
            .collect();
        let out = serde_json::json!({
            "file": shown(&config.file),
            "secrets_dir": shown(&config.secrets_dir),
            "settings": config.settings(),
            "stores": checks,
        });
        println!("{out}");
    } else {
        let none = || "(none)".to_string();
        println!("config file: {}", shown(&config.file).unwrap_or_else(none));
        println!(
            "secrets dir: {}",
            shown(&config.secrets_dir).unwrap_or_else(none)
        );
        let settings = config.settings();
        let key_width = settings.iter().map(|s| s.key.len()).max().unwrap_or(0);
        let value_width = settings
            .iter()
            .map(|s| s.value.len())
            .max()
            .unwrap_or(0)
            .min(40);
        for s in &settings {
            println!(
                "  {:<key_width$}  {:<value_width$}  {}",
                s.key, s.value, s.source
            );
        }
        for (name, spec) in &stores {
            match spec {
                Ok(spec) => println!("store {name}: ok ({}, {})", spec.protocol, spec.location),
                Err(e) => println!("store {name}: {e}"),
            }
        }
    }
    Ok(Exit::Clean)
}

/// `merge-reports FILE...`.
fn merge_reports(args: &MergeReportsArgs) -> Result<Exit, Error> {
    let mut reports = Vec::new();
    for path in &args.reports {
        reports.push((path.display().to_string(), Report::read_file(path)?));
    }
    let merged = merge_shards(&reports)?;
    match &args.out {
        Some(path) => merged.write_file(path)?,
        None => println!("{}", merged.to_json()),
    }
    Ok(if merged.scan_errors.is_empty() {
        Exit::Clean
    } else {
        Exit::Refused
    })
}

fn print_problems(plan: &Plan, console: &Console) {
    for warning in &plan.report.warnings {
        console.warn(warning);
    }
    for problem in &plan.report.scan_errors {
        console.error(problem);
    }
}

fn print_report(
    plan: &Plan,
    spec: &StoreSpec,
    min_age: Duration,
    output: &OutputArgs,
    console: &Console,
) -> Result<(), Error> {
    console.finish();
    if let Some(path) = &output.report {
        plan.report.write_file(path)?;
    }
    if output.json {
        println!("{}", plan.report.to_json());
    } else if !output.quiet {
        print!("{}", human::render(&plan.report, spec, min_age));
    }
    Ok(())
}

/// Deletes or quarantines a plan's orphans after re-reading the database,
/// or in a dry run says what the guard would object to.
#[allow(clippy::too_many_arguments)]
fn dispose(
    plan: &mut Plan,
    open: &OpenStore,
    query: &ReferenceQuery,
    delete: Option<&DeleteArgs>,
    guard: &GuardArgs,
    jobs: usize,
    console: &Console,
) -> Result<Exit, Error> {
    let Some(delete) = delete else {
        for objection in guard_objections(&plan.report, guard.max_orphan_fraction) {
            console.warn(&format!("--delete would refuse: {objection}"));
        }
        return Ok(if plan.is_blocked() {
            Exit::Refused
        } else {
            Exit::Clean
        });
    };
    let trash = delete
        .quarantine
        .then(|| Trash::new(&delete.trash_prefix, &open.spec, &plan.report.schemas))
        .transpose()?;
    if !plan.is_blocked() {
        recheck(plan, &open.config.database, query, &Silent)?;
    }
    if plan.is_blocked() {
        console.error("refused to delete: the scan met problems (above); nothing was deleted");
        return Ok(Exit::Refused);
    }
    let options = DeleteOptions {
        workers: positive(
            delete.delete_concurrency.unwrap_or(jobs),
            "--delete-concurrency",
        )?,
        max_orphan_fraction: guard.max_orphan_fraction,
        force: guard.force,
    };
    let store = open.store.as_ref();
    let warned = plan.report.warnings.len();
    let read_live = || references_for_deletion(&open.config.database, query, &Silent);
    let live: Option<&ReadReferences<'_>> = Some(&read_live);
    let done = match &trash {
        Some(trash) => quarantine(plan, store, trash, &options, live, console).map(|run| {
            let Some(header) = run else {
                return;
            };
            console.info(&format!(
                "quarantine run {} under {}/ (restore with: djgc restore {})",
                header.run,
                trash.prefix(),
                header.run
            ));
        }),
        None => execute(plan, store, &options, live, console),
    };
    for warning in &plan.report.warnings[warned..] {
        console.warn(warning);
    }
    let outcome = &plan.report.outcome;
    if outcome.unverified {
        console.error(
            "the database could not be read again after deleting: losses to rows written \
             meanwhile cannot be ruled out (see the warning above)",
        );
    }
    for key in &outcome.lost_keys {
        console.error(&format!(
            "LOST: {key} was deleted, but a row written meanwhile references it"
        ));
    }
    if outcome.lost > outcome.lost_keys.len() as u64 {
        console.error(&format!(
            "LOST: ... and {} more",
            outcome.lost - outcome.lost_keys.len() as u64
        ));
    }
    let disposed = plan.report.deleted() + outcome.quarantined;
    Ok(match done {
        Err(e @ Error::Refused(_)) => {
            console.error(&e.to_string());
            Exit::Refused
        }
        Err(e) => {
            console.error(&format!("deletion stopped early: {e}"));
            Exit::ItemsFailed
        }
        Ok(()) => match &outcome.stopped {
            // The database stopped answering: nothing lost if nothing went.
            Some(why) if disposed == 0 => {
                console.error(&format!("refused to delete: {why}; nothing was deleted"));
                Exit::Refused
            }
            Some(why) => {
                console.error(&format!("{why}; {disposed} objects were deleted before"));
                Exit::ItemsFailed
            }
            None if outcome.errors + outcome.lost > 0 || outcome.unverified => Exit::ItemsFailed,
            None => Exit::Clean,
        },
    })
}

/// `restore RUN-ID`.
fn restore(args: &RestoreArgs, work: &Work<'_>) -> Result<Exit, Error> {
    let console = work.console;
    let open = open_store(
        args.store.config.clone(),
        args.store.store.as_deref(),
        4,
        32,
        work,
    )?;
    let trash = Trash::new(&args.trash_prefix, &open.spec, &[])?;
    let mut report_failure = |message: String| console.error(&message);
    let outcome = trash_runs::restore(open.store.as_ref(), &trash, &args.run, &mut report_failure)?;
    if args.json {
        println!("{}", serde_json::to_string(&outcome).expect("serialises"));
    } else {
        println!(
            "djgc: run {}: {} restored, {} already in place, {} not in the trash, \
             {} conflicts, {} errors",
            args.run,
            outcome.restored,
            outcome.already_in_place,
            outcome.not_in_trash,
            outcome.conflicts,
            outcome.errors
        );
    }
    Ok(if outcome.conflicts + outcome.errors > 0 {
        Exit::ItemsFailed
    } else {
        Exit::Clean
    })
}

/// `purge --older-than D`.
fn purge(args: &PurgeArgs, work: &Work<'_>) -> Result<Exit, Error> {
    let console = work.console;
    let older_than = humantime::parse_duration(&args.older_than).map_err(|e| {
        Error::Usage(format!(
            "--older-than {:?} is not a duration like 12h or 7d: {e}",
            args.older_than
        ))
    })?;
    let open = open_store(
        args.store.config.clone(),
        args.store.store.as_deref(),
        4,
        32,
        work,
    )?;
    let trash = Trash::new(&args.trash_prefix, &open.spec, &[])?;
    let mut references = |schemas: &[String]| {
        let query = reference_query(
            &open.spec,
            open.store_is_default,
            schemas,
            &args.schema_codecs,
            4,
        )?;
        references_for_deletion(&open.config.database, &query, &Silent)
    };
    let mut report_failure = |message: String| console.error(&message);
    let report = trash_runs::purge(
        open.store.as_ref(),
        &trash,
        older_than,
        SystemTime::now(),
        &mut references,
        !args.delete,
        &mut report_failure,
    )?;
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serialises"));
    } else {
        println!(
            "djgc: {} run(s) past {}{}: {} objects ({} bytes) {}, {} put back; {} run(s) kept",
            report.runs.len(),
            args.older_than,
            if report.dry_run { " [DRY RUN]" } else { "" },
            report.purged,
            report.bytes_freed,
            if report.dry_run { "to purge" } else { "purged" },
            report.rescued.restored + report.rescued.already_in_place,
            report.runs_kept
        );
    }
    let failed = report.errors + report.rescued.errors + report.rescued.conflicts;
    Ok(if failed > 0 {
        Exit::ItemsFailed
    } else {
        Exit::Clean
    })
}
