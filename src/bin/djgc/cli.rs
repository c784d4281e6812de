//! The command line: clap's definitions, and how each command's flags
//! become the library's requests.
//!
//! The library names its settings in backticks (`` `min_age` ``); this
//! module knows which flag sets each, and [`flagged`] rewrites the
//! library's messages to name the flags.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use djgc::config::Config;
use djgc::error::Error;
use djgc::layout::shard::Shard;
use djgc::layout::{SectionKind, DEFAULT_TRASH_PREFIX};
use djgc::run::{
    Action, ApplyRequest, CheckRequest, Disposal, Guard, PurgeRequest, ScanRequest, Schemas,
    SessionOptions, SnapshotRequest,
};

use crate::status::LogFormat;

#[derive(Parser)]
#[command(
    name = "djgc",
    version,
    about = "Find and delete orphaned objects in DataJoint stores"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Read this datajoint.json instead of searching for one.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log lines on stderr as text, or as one JSON object per line (for
    /// unattended runs).
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Draw progress bars even when stderr is not a terminal.
    #[arg(long, global = true)]
    pub progress: bool,
    /// The longest djgc waits for the database: to connect, for a
    /// statement's next row or answer, for a lock (default 10m, or
    /// DJGC_DB_TIMEOUT). A database silent for longer ends the run.
    #[arg(long, global = true, value_name = "DURATION")]
    pub db_timeout: Option<String>,
    /// Verify the database server's certificate and host name against this
    /// CA (PEM); TLS is then required (default: DJGC_TLS_CA).
    #[arg(long, global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
}

impl Command {
    /// For a command that draws bars: whether it logs each deletion and
    /// whether it is quiet.
    pub fn bars(&self) -> Option<(bool, bool)> {
        let output = |o: &OutputArgs| Some((o.verbose, o.quiet));
        match self {
            Command::Scan(args) => output(&args.output),
            Command::Collect(args) => output(&args.scan.output),
            Command::Apply(args) => output(&args.output),
            Command::Ls(_) => Some((false, false)),
            Command::Refs(RefsCommand::Snapshot(_)) => Some((false, false)),
            Command::Check(args) => Some((false, args.quiet)),
            _ => None,
        }
    }
}

#[derive(Subcommand)]
pub enum Command {
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
    /// Report the rows of SCHEMA... whose objects are missing, of another
    /// size, or (folders) empty, without their manifest or missing a file
    /// it lists; exit 1 if any. Reads only.
    #[command(
        after_help = "Example: djgc check lab_ephys --report damaged.json   (exit 0: every object is there)"
    )]
    Check(CheckArgs),
    /// Reference snapshots: the references of a sharded run read once, for
    /// every shard.
    #[command(subcommand)]
    Refs(RefsCommand),
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

/// Which schemas a command works on, and how their columns are read.
#[derive(Args)]
pub struct SchemaArgs {
    /// Schemas to work on (databases on MySQL, schemas on PostgreSQL).
    #[arg(value_name = "SCHEMA")]
    pub names: Vec<String>,
    /// Every schema in the database with codec columns for the store.
    #[arg(long, conflicts_with = "names")]
    pub all_schemas: bool,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    #[arg(long = "schema-codec", value_name = "NAME")]
    pub schema_codecs: Vec<String>,
}

impl SchemaArgs {
    /// The schemas named, or `--all-schemas`; neither is an error.
    pub fn resolve(&self) -> Result<Schemas, Error> {
        match (self.all_schemas, self.names.is_empty()) {
            (true, _) => Ok(Schemas::All),
            (false, false) => Ok(Schemas::Named(self.names.clone())),
            (false, true) => Err(Error::Usage(
                "At least one schema must be provided (or --all-schemas)".to_string(),
            )),
        }
    }
}

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub schemas: SchemaArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Print the report as one JSON object on stdout (the damaged rows
    /// under "damaged_rows", streamed as they are found).
    #[arg(long)]
    pub json: bool,
    /// Print only the totals (errors are still printed).
    #[arg(short, long)]
    pub quiet: bool,
    /// Also write the report (the --json object) to FILE.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Check only the references shard K of N counts, listing only its
    /// ranges (the shards of `scan`); default: DJGC_SHARD=K/N or the array
    /// job's environment, as for scan.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Read the S3 store's objects from this S3 Inventory report (its
    /// manifest.json) instead of listing; what it lacks is looked up with HEAD.
    #[arg(long, value_name = "MANIFEST")]
    pub inventory: Option<String>,
}

impl CheckArgs {
    pub fn request(&self) -> Result<CheckRequest, Error> {
        Ok(CheckRequest {
            schemas: self.schemas.resolve()?,
            schema_codecs: self.schemas.schema_codecs.clone(),
            shard: resolve_shard(self.shard.as_deref())?,
            inventory: self.inventory.clone(),
        })
    }
}

#[derive(Subcommand)]
pub enum RefsCommand {
    /// Read SCHEMA...'s references once and write them to a new folder DIR,
    /// cut for N shards; then each shard's `scan`/`collect --refs DIR
    /// --shard K/N` reads its part instead of the database (and may only
    /// quarantine: `purge` reads the database before deleting).
    #[command(
        after_help = "Example: djgc refs snapshot lab_ephys --shards 8 --out /scratch/gc/refs-0612"
    )]
    Snapshot(SnapshotArgs),
}

#[derive(Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub schemas: SchemaArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    /// The shards the collection is split into (the N of --shard K/N).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub shards: usize,
    /// The folder to write, which must not exist yet (on a file system every
    /// shard's task can read).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct StoreArgs {
    /// Store to work on (default: stores.default).
    #[arg(long, value_name = "NAME")]
    pub store: Option<String>,
}

#[derive(Args)]
pub struct WorkArgs {
    /// Worker threads for listing and deleting (default: number of CPUs, at least 4).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// LIST requests in flight on an S3 store.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub list_concurrency: usize,
}

#[derive(Args)]
pub struct OutputArgs {
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Log each deletion or move into quarantine (path, bytes) to stderr.
    #[arg(short, long)]
    pub verbose: bool,
    /// Print no report (errors are still printed).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Also write the report (the --json object) to FILE, e.g. one per shard
    /// for `djgc merge-reports`.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

#[derive(Args)]
pub struct ShardArgs {
    /// Judge only shard K of N (0 <= K < N) of every section: N runs with
    /// K = 0..N-1, anywhere and in any order, together judge every object
    /// once. Default: DJGC_SHARD=K/N, SLURM_ARRAY_TASK_ID/_MIN/_COUNT, or
    /// JOB_COMPLETION_INDEX with DJGC_SHARD_COUNT.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// The run this is one shard of, written into --report so that
    /// `djgc merge-reports` adds up only shards of one run. Default:
    /// DJGC_RUN_ID, or SLURM_ARRAY_JOB_ID in a Slurm array.
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
}

/// `--shard K/N`, else the array job's environment ([`Shard::from_env`]).
fn resolve_shard(flag: Option<&str>) -> Result<Option<Shard>, Error> {
    match flag {
        Some(text) => Shard::parse(text, "--shard").map(Some),
        None => Shard::from_env(|name| std::env::var(name).ok()),
    }
}

impl ShardArgs {
    pub fn resolve(&self) -> Result<Option<Shard>, Error> {
        resolve_shard(self.shard.as_deref())
    }

    /// The run's id: `--run-id`, else `DJGC_RUN_ID`, else Slurm's
    /// `SLURM_ARRAY_JOB_ID` (the same in every task of an array).
    pub fn run_id(&self) -> Option<String> {
        self.run_id.clone().or_else(|| {
            ["DJGC_RUN_ID", "SLURM_ARRAY_JOB_ID"]
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        })
    }
}

#[derive(Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub schemas: SchemaArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub work: WorkArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Objects modified more recently are never orphans in this run (0s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub min_age: String,
    /// Write every orphan's store-relative path, one per line, to FILE.
    #[arg(long, value_name = "FILE")]
    pub orphans_out: Option<PathBuf>,
    /// Write the plan (orphans with size and mtime, store identity, totals) to FILE for `djgc apply`.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Read the S3 store's objects from this S3 Inventory report (its
    /// manifest.json: a local path or s3://BUCKET/KEY) instead of listing;
    /// each orphan is confirmed with HEAD before it is deleted.
    #[arg(long, value_name = "MANIFEST")]
    pub inventory: Option<String>,
    /// Judge by this reference snapshot (`djgc refs snapshot`) instead of
    /// reading the database: with --delete only --quarantine, as `purge`
    /// re-reads the database before anything is deleted.
    #[arg(long, value_name = "DIR")]
    pub refs: Option<PathBuf>,
}

#[derive(Args)]
pub struct GuardArgs {
    /// Refuse to delete when more than this share of a section's objects are orphans.
    #[arg(long, value_name = "F", default_value_t = 0.5)]
    pub max_orphan_fraction: f64,
    /// Delete even when the mass-deletion guard objects.
    #[arg(long)]
    pub force: bool,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Delete the orphans (without it, nothing changes: a dry run).
    #[arg(long)]
    pub delete: bool,
    /// With --delete: move the orphans under the trash prefix instead of deleting them.
    #[arg(long, requires = "delete")]
    pub quarantine: bool,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    pub trash_prefix: String,
    /// Delete requests in flight (S3: of up to 1,000 keys each); default: --jobs.
    #[arg(long, value_name = "N")]
    pub delete_concurrency: Option<usize>,
    /// With --delete: then check every row of the schemas for its object
    /// (`djgc check`); a missing or incomplete one fails the run (exit 1).
    #[arg(long, requires = "delete")]
    pub verify: bool,
}

#[derive(Args)]
pub struct CollectArgs {
    #[command(flatten)]
    pub scan: ScanArgs,
    #[command(flatten)]
    pub delete: DeleteArgs,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// A plan written by `djgc scan --plan`.
    #[arg(value_name = "PLAN")]
    pub plan: PathBuf,
    #[command(flatten)]
    pub work: WorkArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub delete: DeleteArgs,
    /// The shard the plan must have been made for (default: the plan's own;
    /// with an array job's environment, that shard).
    #[command(flatten)]
    pub shard: ShardArgs,
    /// Objects that arrived more recently are kept, judged again now
    /// whatever the plan was made with (0s, 90m, 24h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub min_age: String,
    /// The S3 Inventory manifest the plan was judged from, given again: a
    /// plan judged from an inventory needs it (djgc never takes the path
    /// from the plan file) to count what the bucket held.
    #[arg(long, value_name = "MANIFEST")]
    pub inventory: Option<String>,
}

#[derive(Args)]
pub struct LsArgs {
    /// Store to list (default: stores.default).
    #[arg(value_name = "STORE")]
    pub store: Option<String>,
    /// Only this kind of section.
    #[arg(long, value_enum)]
    pub section: Option<SectionChoice>,
    /// Only this schema's sections (repeatable); default: the whole hash and schema roots.
    #[arg(long = "schema", value_name = "SCHEMA")]
    pub schemas: Vec<String>,
    #[command(flatten)]
    pub work: WorkArgs,
    /// Print one JSON object per prefix on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct ConfigArgs {
    /// Print one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum SectionChoice {
    Hash,
    Schema,
}

#[derive(Args)]
pub struct MergeReportsArgs {
    /// Reports written with --report by shards 0..N-1 of one run.
    #[arg(value_name = "FILE", required = true)]
    pub reports: Vec<PathBuf>,
    /// Write the merged report to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Args)]
pub struct RestoreArgs {
    /// The run id (a folder name under the trash prefix).
    #[arg(value_name = "RUN-ID")]
    pub run: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    pub trash_prefix: String,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct PurgeArgs {
    /// Grace period: runs quarantined longer ago than this are purged (e.g. 7d).
    #[arg(long, value_name = "DURATION")]
    pub older_than: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Where quarantine runs live in the store.
    #[arg(long, value_name = "PREFIX", default_value = DEFAULT_TRASH_PREFIX)]
    pub trash_prefix: String,
    /// Codec names (besides object and npy) whose columns are schema-addressed.
    #[arg(long = "schema-codec", value_name = "NAME")]
    pub schema_codecs: Vec<String>,
    /// Purge (without it, only report what would be purged and put back).
    #[arg(long)]
    pub delete: bool,
    /// Print the outcome as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl Cli {
    /// The configuration, with what the command line says of the database.
    pub fn load_config(&self) -> Result<Config, Error> {
        let mut config = Config::load(self.config.clone())?;
        config.database.timeout = self.db_timeout()?;
        if let Some(ca) = &self.tls_ca {
            config.verify_database_with(ca.clone(), "flag --tls-ca")?;
        }
        Ok(config)
    }

    /// `--db-timeout`, else `DJGC_DB_TIMEOUT`, else the library's default.
    fn db_timeout(&self) -> Result<Duration, Error> {
        let (text, source) = match &self.db_timeout {
            Some(text) => (text.clone(), "--db-timeout"),
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
}

/// A duration flag such as `--min-age 7d`.
fn duration(text: &str, flag: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text).map_err(|e| {
        Error::Usage(format!(
            "{flag} {text:?} is not a duration like 0s, 90m, 24h or 7d: {e}"
        ))
    })
}

impl WorkArgs {
    pub fn session(&self) -> SessionOptions {
        SessionOptions {
            jobs: self.jobs.unwrap_or(SessionOptions::default().jobs),
            list_concurrency: self.list_concurrency,
        }
    }
}

impl ScanArgs {
    pub fn request(&self) -> Result<ScanRequest, Error> {
        Ok(ScanRequest {
            schemas: self.schemas.resolve()?,
            min_age: duration(&self.min_age, "--min-age")?,
            schema_codecs: self.schemas.schema_codecs.clone(),
            shard: self.shard.resolve()?,
            inventory: self.inventory.clone(),
            run_id: self.shard.run_id(),
            orphans_out: self.orphans_out.clone(),
            plan_out: self.plan.clone(),
            refs: self.refs.clone(),
        })
    }
}

impl SnapshotArgs {
    pub fn request(&self) -> Result<SnapshotRequest, Error> {
        Ok(SnapshotRequest {
            schemas: self.schemas.resolve()?,
            schema_codecs: self.schemas.schema_codecs.clone(),
            shards: self.shards,
            out: self.out.clone(),
        })
    }
}

impl ApplyArgs {
    pub fn request(&self) -> Result<ApplyRequest, Error> {
        Ok(ApplyRequest {
            plan: self.plan.clone(),
            shard: self.shard.resolve()?,
            min_age: duration(&self.min_age, "--min-age")?,
            inventory: self.inventory.clone(),
            run_id: self.shard.run_id(),
        })
    }
}

impl GuardArgs {
    pub fn guard(&self) -> Guard {
        Guard {
            max_orphan_fraction: self.max_orphan_fraction,
            force: self.force,
        }
    }
}

impl DeleteArgs {
    /// What `--delete`, `--quarantine` and the guard's flags ask for.
    pub fn disposal(&self, guard: &GuardArgs) -> Disposal {
        let action = match (self.delete, self.quarantine) {
            (false, _) => Action::DryRun,
            (true, false) => Action::Delete,
            (true, true) => Action::Quarantine {
                trash_prefix: self.trash_prefix.clone(),
            },
        };
        Disposal {
            action,
            guard: guard.guard(),
            delete_concurrency: self.delete_concurrency,
            verify: self.verify,
        }
    }
}

impl PurgeArgs {
    pub fn request(&self) -> Result<PurgeRequest, Error> {
        Ok(PurgeRequest {
            older_than: duration(&self.older_than, "--older-than")?,
            trash_prefix: self.trash_prefix.clone(),
            schema_codecs: self.schema_codecs.clone(),
            delete: self.delete,
        })
    }
}

impl LsArgs {
    pub fn kind(&self) -> Option<SectionKind> {
        self.section.map(|s| match s {
            SectionChoice::Hash => SectionKind::Hash,
            SectionChoice::Schema => SectionKind::Schema,
        })
    }
}

/// The library's settings and the flags that set them; a setting the
/// command line does not set keeps its library name.
const FLAGS: &[(&str, &str)] = &[
    ("all_schemas", "--all-schemas"),
    ("config", "--config"),
    ("delete_concurrency", "--delete-concurrency"),
    ("force", "--force"),
    ("inventory", "--inventory"),
    ("jobs", "--jobs"),
    ("list_concurrency", "--list-concurrency"),
    ("max_orphan_fraction", "--max-orphan-fraction"),
    ("min_age", "--min-age"),
    ("quarantine", "--quarantine"),
    ("refs", "--refs"),
    ("run_id", "--run-id"),
    ("shard", "--shard"),
    ("shards", "--shards"),
    ("store", "--store"),
    ("trash_prefix", "--trash-prefix"),
    ("verify", "--verify"),
];

/// `message` with every setting named in backticks named by its flag.
/// Backticks also quote SQL identifiers (`` `lab`.* ``) and serde's field
/// names (``unknown field `store` ``): those are left as they are.
pub fn flagged(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let (before, quoted) = rest.split_at(open);
        out.push_str(before);
        let Some(close) = quoted[1..].find('`').map(|i| i + 1) else {
            rest = quoted;
            break;
        };
        let name = &quoted[1..close];
        let after = &quoted[close + 1..];
        let identifier = out.ends_with('.') || out.ends_with("field ") || after.starts_with('.');
        match FLAGS.iter().find(|(setting, _)| *setting == name) {
            Some((_, flag)) if !identifier => out.push_str(flag),
            _ => out.push_str(&quoted[..=close]),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn settings_are_named_by_their_flags() {
        assert_eq!(
            flagged("run again with `force` (or a higher `max_orphan_fraction`)"),
            "run again with --force (or a higher --max-orphan-fraction)"
        );
        // Only settings in backticks, and only known ones.
        assert_eq!(flagged("force `other`"), "force `other`");
        // Not SQL identifiers or serde's field names that look like one.
        let grant = "Grant SELECT ON `inventory`.* or `db`.`store` to djgc";
        assert_eq!(flagged(grant), grant);
        assert_eq!(flagged("unknown field `store`"), "unknown field `store`");
        assert_eq!(flagged("a lone ` and `shard`"), "a lone ` and `shard`");
        assert_eq!(flagged("`shard` K/N, `jobs`"), "--shard K/N, --jobs");
        let flags: Vec<String> = Cli::command()
            .get_subcommands()
            .flat_map(|c| std::iter::once(c).chain(c.get_subcommands()))
            .flat_map(|c| {
                c.get_arguments()
                    .map(|a| a.get_id().to_string())
                    .collect::<Vec<_>>()
            })
            .chain(
                Cli::command()
                    .get_arguments()
                    .map(|a| a.get_id().to_string()),
            )
            .collect();
        for (_, flag) in FLAGS {
            let id = flag.trim_start_matches("--").replace('-', "_");
            assert!(flags.contains(&id), "{flag} is no flag of djgc");
        }
    }
}
