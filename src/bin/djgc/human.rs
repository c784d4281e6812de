//! What djgc prints on stdout for people: the report, in the spirit of
//! dj.gc's `format_stats` (per-section lines, then referenced / stored /
//! orphaned totals), and the outcomes of the other commands; each also as
//! JSON for scripts.

use std::fmt::Write;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{HumanBytes, HumanCount, HumanDuration};

use djgc::check::{CheckReport, DamagedRow, Problem};
use djgc::config::{Config, StoreSpec};
use djgc::error::Error;
use djgc::layout::SectionKind;
use djgc::refs::snapshot::SnapshotHeader;
use djgc::report::Report;
use djgc::run::{PurgeReport, RestoreOutcome};
use djgc::store::ListingCount;

pub fn render(report: &Report, spec: &StoreSpec, min_age: Duration) -> String {
    let mut out = String::new();
    let mode = if report.dry_run { "dry run" } else { "deleted" };
    let shard = match &report.shard {
        Some(s) if !s.shard.is_whole() => {
            format!(", shard {} (its share of the keys below)", s.shard)
        }
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "djgc: store {:?} ({}), schemas {}{shard} [{mode}]",
        spec.name,
        spec.protocol,
        report.schemas.join(", ")
    );
    if let Some(inventory) = &report.inventory {
        let _ = writeln!(
            out,
            "  objects from the S3 Inventory {} (taken {})",
            inventory.manifest, inventory.created
        );
    }
    let width = report
        .sections
        .iter()
        .map(|s| s.prefix.len())
        .max()
        .unwrap_or(0)
        .max("section".len());
    let _ = writeln!(
        out,
        "  {:<width$}  {:>12}  {:>12}  {:>12}",
        "section", "stored", "orphaned", "orphan bytes"
    );
    for s in &report.sections {
        let _ = writeln!(
            out,
            "  {:<width$}  {:>12}  {:>12}  {:>12}",
            s.prefix,
            HumanCount(s.stored).to_string(),
            HumanCount(s.orphaned).to_string(),
            HumanBytes(s.orphaned_bytes).to_string()
        );
    }
    let all = report.totals(None);
    let hash = report.totals(Some(SectionKind::Hash));
    let schema = report.totals(Some(SectionKind::Schema));
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "  Referenced in database:  {} (hash {}, schema {})",
        HumanCount(report.referenced()),
        HumanCount(report.hash_referenced),
        HumanCount(report.schema_paths_referenced)
    );
    let _ = writeln!(
        out,
        "  Stored in backend:       {} (hash {}, schema {})",
        HumanCount(all.stored),
        HumanCount(hash.stored),
        HumanCount(schema.stored)
    );
    let _ = writeln!(
        out,
        "  Orphaned (unreferenced): {} ({})",
        HumanCount(all.orphaned),
        HumanBytes(all.orphaned_bytes)
    );
    if all.young_skipped > 0 {
        let newer = match &report.inventory {
            Some(inventory) => format!(
                "modified within {} or after the inventory was taken, {}",
                HumanDuration(min_age),
                inventory.created
            ),
            None => format!("modified within {}", HumanDuration(min_age)),
        };
        let _ = writeln!(
            out,
            "  Too young to judge:      {} ({newer})",
            HumanCount(all.young_skipped)
        );
    }
    if report.changed_skipped > 0 {
        let _ = writeln!(
            out,
            "  Changed since judged:    {} (gone or rewritten; kept)",
            HumanCount(report.changed_skipped)
        );
    }
    if report.rescued > 0 {
        let _ = writeln!(
            out,
            "  Rescued:                 {} (referenced again before deletion; kept)",
            HumanCount(report.rescued)
        );
    }
    if !report.unscanned_schemas.is_empty() {
        let (its, it) = match report.unscanned_schemas.len() {
            1 => ("its", "it"),
            _ => ("their", "them"),
        };
        let _ = writeln!(
            out,
            "  Not scanned:             {} ({its} orphans stay; name {it} too, or use --all-schemas)",
            report.unscanned_schemas.join(", ")
        );
    }
    let _ = writeln!(out);
    if report.dry_run {
        let _ = writeln!(out, "  [DRY RUN - no changes made]");
    } else {
        let _ = writeln!(out, "  Deleted:     {}", HumanCount(report.deleted()));
        let _ = writeln!(
            out,
            "  Bytes freed: {}",
            HumanBytes(report.outcome.bytes_freed)
        );
        if report.outcome.errors > 0 {
            let _ = writeln!(out, "  Errors:      {}", HumanCount(report.outcome.errors));
        }
        if report.resumed_after > 0 {
            let _ = writeln!(
                out,
                "  Resumed:     {} disposed of by earlier runs of this plan (counted above)",
                HumanCount(report.resumed_after)
            );
        }
    }
    if let Some(verified) = &report.verified {
        let _ = match (verified.errors.is_empty(), verified.rows_damaged) {
            (false, _) => writeln!(out, "  Verified:    NOT COMPLETED (see stderr)"),
            (true, 0) => writeln!(
                out,
                "  Verified:    every row's object is there ({} checked)",
                HumanCount(verified.references_checked)
            ),
            (true, rows) => writeln!(
                out,
                "  Verified:    {} rows DAMAGED ({} objects; see stderr, or run djgc check)",
                HumanCount(rows),
                HumanCount(verified.objects_damaged)
            ),
        };
    }
    if report.partial {
        let _ = writeln!(
            out,
            "  [PARTIAL - interrupted; {} orphans left]",
            HumanCount(report.outcome.left)
        );
    }
    if !report.scan_errors.is_empty() {
        let _ = writeln!(
            out,
            "  Scan errors: {} (deletion blocked; see stderr)",
            report.scan_errors.len()
        );
    }
    let _ = writeln!(out, "  Time:        {:.2} s", report.seconds);
    out
}

/// `restore`'s outcome: one line, or with `json` one JSON object.
pub fn restored(run: &str, outcome: &RestoreOutcome, json: bool) {
    if json {
        println!("{}", serde_json::to_string(outcome).expect("serialises"));
        return;
    }
    println!(
        "djgc: run {run}: {} restored, {} already in place, {} not in the trash, {} conflicts, \
         {} errors",
        outcome.restored,
        outcome.already_in_place,
        outcome.not_in_trash,
        outcome.conflicts,
        outcome.errors
    );
}

/// `purge`'s outcome: one line, or with `json` one JSON object.
pub fn purged(report: &PurgeReport, older_than: &str, json: bool) {
    if json {
        println!("{}", serde_json::to_string(report).expect("serialises"));
        return;
    }
    println!(
        "djgc: {} run(s) past {older_than}{}: {} objects ({} bytes) {}, {} put back; {} run(s) kept",
        report.runs.len(),
        if report.dry_run { " [DRY RUN]" } else { "" },
        report.purged,
        report.bytes_freed,
        if report.dry_run { "to purge" } else { "purged" },
        report.rescued.restored + report.rescued.already_in_place,
        report.runs_kept
    );
}

/// What `refs snapshot` wrote: one line (and its warnings), or with
/// `json` one JSON object.
pub fn snapshot(header: &SnapshotHeader, folder: &std::path::Path, json: bool) {
    let taken = humantime::format_rfc3339_millis(
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(header.taken_ms),
    )
    .to_string();
    let read: u64 = header.read_by_schema.values().sum();
    let entries: Vec<u64> = header.parts.iter().map(|p| p.entries).collect();
    if json {
        let line = serde_json::json!({
            "folder": folder.display().to_string(),
            "taken": taken,
            "schemas": header.schemas,
            "shards": header.shards,
            "values": header.values,
            "references_read": read,
            "part_entries": entries,
            "errors": header.errors,
            "warnings": header.warnings,
        });
        println!("{line}");
        return;
    }
    for warning in header
        .warnings
        .iter()
        .chain(header.parts.iter().flat_map(|p| &p.warnings))
    {
        println!("warning: {warning}");
    }
    let (least, most) = (
        entries.iter().min().copied().unwrap_or(0),
        entries.iter().max().copied().unwrap_or(0),
    );
    println!(
        "djgc: reference snapshot of {} written to {} (read from {taken}, {} shard(s)): {read} \
         references in {} values; each part holds {least} to {most}{}",
        header.schemas.join(", "),
        folder.display(),
        header.shards,
        header.values,
        match header.errors.len() {
            0 => String::new(),
            n => format!("; {n} problem(s): shards judged by it refuse to quarantine"),
        }
    );
}

/// `check`'s output, written as the damaged rows come: a line each, or
/// the JSON object (on stdout with `json`, and in the `--report` file)
/// whose `damaged_rows` array is streamed, the totals after it. The file
/// is written beside its path and renamed over it at the end, so a reader
/// never sees half a report.
pub struct CheckOutput {
    json: bool,
    quiet: bool,
    file: Option<(PathBuf, std::io::BufWriter<tempfile::NamedTempFile>)>,
    rows: u64,
    failed: Option<std::io::Error>,
}

const DAMAGED_ROWS_OPEN: &str = "{\"damaged_rows\":[";

impl CheckOutput {
    pub fn new(json: bool, quiet: bool, report: Option<&Path>) -> Result<CheckOutput, Error> {
        let file = match report {
            Some(path) => {
                let io = |e| Error::Usage(format!("{}: {e}", path.display()));
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
                let temp =
                    tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
                let mut out = std::io::BufWriter::new(temp);
                out.write_all(DAMAGED_ROWS_OPEN.as_bytes()).map_err(io)?;
                Some((path.to_path_buf(), out))
            }
            None => None,
        };
        Ok(CheckOutput {
            json,
            quiet,
            file,
            rows: 0,
            failed: None,
        })
    }

    pub fn row(&mut self, row: &DamagedRow) {
        let line = serde_json::to_string(row).expect("serialises");
        let separator = match self.rows {
            0 => "",
            _ => ",",
        };
        if self.json {
            let open = if self.rows == 0 {
                DAMAGED_ROWS_OPEN
            } else {
                ""
            };
            println!("{open}{separator}{line}");
        } else if !self.quiet {
            println!(
                "{:<16} {}.{} ({}) {}: {} -- {}",
                problem_label(row.problem),
                row.schema,
                row.table,
                row.key,
                row.column,
                row.path,
                row.detail
            );
        }
        if let Some((_, out)) = &mut self.file {
            if let Err(e) = write!(out, "{separator}{line}") {
                self.failed.get_or_insert(e);
            }
        }
        self.rows += 1;
    }

    /// Ends output cut short by `error`: rows already printed as JSON are
    /// closed into a valid object that carries it; the file is not written.
    pub fn abort(self, error: &str) {
        if self.json && self.rows > 0 {
            let errors = serde_json::json!([error]);
            println!("],\"errors\":{errors}}}");
        }
    }

    pub fn finish(self, report: &CheckReport) -> Result<(), Error> {
        let totals = serde_json::to_string(report).expect("serialises");
        let tail = format!("],{}", &totals[1..]);
        if self.json {
            let open = if self.rows == 0 {
                DAMAGED_ROWS_OPEN
            } else {
                ""
            };
            println!("{open}{tail}");
        } else {
            print!("{}", check_summary(report));
        }
        if let Some((path, mut out)) = self.file {
            let io = |e: std::io::Error| Error::Usage(format!("{}: {e}", path.display()));
            if let Some(e) = self.failed {
                return Err(io(e));
            }
            writeln!(out, "{tail}").map_err(io)?;
            let temp = out.into_inner().map_err(|e| io(e.into_error()))?;
            temp.persist(&path).map_err(|e| io(e.error))?;
        }
        Ok(())
    }
}

fn problem_label(problem: Problem) -> &'static str {
    match problem {
        Problem::Missing => "MISSING",
        Problem::SizeDiffers => "SIZE DIFFERS",
        Problem::Empty => "EMPTY FOLDER",
        Problem::ManifestMissing => "NO MANIFEST",
        Problem::Incomplete => "INCOMPLETE",
    }
}

/// `check`'s totals, after the rows.
fn check_summary(report: &CheckReport) -> String {
    let mut out = String::new();
    let shard = match report.shard {
        Some(shard) if !shard.is_whole() => format!(", shard {shard} (its share only)"),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "djgc check of {}{shard} in store {:?}: {} referenced objects looked for among {} \
         listed ({} folder manifests read) in {}",
        report.schemas.join(", "),
        report.store,
        HumanCount(report.references_checked),
        HumanCount(report.objects_listed),
        HumanCount(report.folders_verified),
        HumanDuration(Duration::from_secs_f64(report.seconds))
    );
    if !report.errors.is_empty() {
        let _ = writeln!(
            out,
            "  INCOMPLETE: {} problem(s) above; what was not read cannot be vouched for",
            report.errors.len()
        );
    } else if report.rows_damaged == 0 {
        let _ = writeln!(out, "  every referenced object is there, whole");
    } else {
        let by_problem: Vec<String> = report
            .rows_by_problem
            .iter()
            .map(|(problem, rows)| format!("{} {rows}", problem_label(*problem).to_lowercase()))
            .collect();
        let _ = writeln!(
            out,
            "  {} rows damaged ({} objects): {}",
            report.rows_damaged,
            report.objects_damaged,
            by_problem.join(", ")
        );
        for (table, rows) in &report.rows_by_table {
            let _ = writeln!(out, "    {table}: {rows} rows");
        }
    }
    if report.references_not_checked > 0 {
        let _ = writeln!(
            out,
            "  {} referenced paths not looked for (outside the sections listed, or of codecs \
             djgc does not know)",
            report.references_not_checked
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "  warning: {warning}");
    }
    out
}

/// `ls`'s table of prefixes, or with `json` one JSON object per prefix.
pub fn listing(counts: &[ListingCount], store: &str, json: bool) {
    if json {
        for count in counts {
            let mut line = serde_json::to_value(count).expect("serialises");
            line["store"] = store.into();
            line["keys_per_second"] = count.keys_per_second().round().into();
            println!("{line}");
        }
        return;
    }
    let width = counts
        .iter()
        .map(|c| c.prefix.len())
        .max()
        .unwrap_or(0)
        .max(6);
    println!(
        "{:<width$}  {:>12}  {:>12}  {:>9}  {:>10}",
        "prefix", "keys", "bytes", "seconds", "keys/s"
    );
    for count in counts {
        let shown = match count.prefix.as_str() {
            "" => "(root)",
            prefix => prefix,
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

/// `config`: every setting with where it came from, and each store's check.
pub fn config(config: &Config, json: bool) {
    let stores: Vec<(String, Result<StoreSpec, djgc::Error>)> = config
        .store_names()
        .into_iter()
        .map(|name| {
            let spec = config.store(Some(&name));
            (name, spec)
        })
        .collect();
    let shown = |path: &Option<PathBuf>| path.as_ref().map(|p| p.display().to_string());
    if json {
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
        return;
    }
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
