//! The numbers a run produces, in dj.gc's vocabulary.
//!
//! Counts are kept per section and the totals derived from them, so the
//! per-section lines and the totals of a report can never disagree. The JSON
//! form carries dj.gc's documented names, the 2.3 `hash_paths_*` spellings,
//! and djgc's additions (`young_skipped`, `other_referenced`, `sections`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::layout::shard::Shard;
use crate::layout::SectionKind;

/// What one schema's section held and what was judged orphaned in it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionStats {
    pub schema: String,
    pub kind: Option<SectionKind>,
    /// The section's prefix, as [`crate::layout::Section::label`] shows it.
    pub prefix: String,
    /// Objects judged (in hash sections, Base32-named files only).
    pub stored: u64,
    /// Bytes of the objects whose size was read: all of them, except in a
    /// scan of a file store, which reads the size only of the objects no
    /// reference covers (`djgc ls` counts a section's bytes).
    pub stored_bytes: u64,
    pub orphaned: u64,
    pub orphaned_bytes: u64,
    /// Unreferenced but newer than `--min-age`: kept this run.
    pub young_skipped: u64,
    /// Files in a hash section that are not content hashes: never judged.
    pub ignored: u64,
    /// Keys under the prefix that are not plain paths (`..`, `//`): never
    /// deleted, always reported.
    pub unsafe_keys: u64,
}

impl SectionStats {
    /// Empty figures for `section`, to be counted.
    pub fn of(section: &crate::layout::Section) -> Self {
        SectionStats {
            schema: section.schema.clone(),
            kind: Some(section.kind),
            prefix: section.label(),
            ..Default::default()
        }
    }
}

/// What a deletion did. Every field defaults, so that a plan header
/// written before the outcome was flattened into the report still reads.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeleteOutcome {
    pub hash_paths_deleted: u64,
    pub schema_paths_deleted: u64,
    pub bytes_freed: u64,
    /// Orphans whose deletion failed.
    pub errors: u64,
    /// Orphans already gone when deletion reached them.
    pub already_gone: u64,
    /// Orphans moved into quarantine instead of deleted, and their bytes.
    pub quarantined: u64,
    pub quarantined_bytes: u64,
    /// The quarantine run they went to.
    pub quarantine_run: Option<String>,
    /// Deleted objects that the re-check after deleting found referenced:
    /// rows committed while the deletion ran reused them. Their count, and
    /// the first of their keys.
    pub lost: u64,
    pub lost_keys: Vec<String>,
    /// Why deletion stopped before it was done (the database stopped
    /// answering the re-reads), if it did.
    #[serde(default)]
    pub stopped: Option<String>,
    /// Set when the re-check after deleting could not be made: losses to
    /// rows written meanwhile cannot be ruled out.
    #[serde(default)]
    pub unverified: bool,
    /// Orphans not attempted because the run was interrupted.
    #[serde(default)]
    pub left: u64,
}

impl DeleteOutcome {
    /// Orphans deleted or moved into quarantine.
    pub fn disposed(&self) -> u64 {
        self.hash_paths_deleted + self.schema_paths_deleted + self.quarantined
    }

    /// Adds another part's counts (a delete worker's, a shard's) to these.
    pub fn add_counts(&mut self, other: &DeleteOutcome) {
        self.hash_paths_deleted += other.hash_paths_deleted;
        self.schema_paths_deleted += other.schema_paths_deleted;
        self.bytes_freed += other.bytes_freed;
        self.errors += other.errors;
        self.already_gone += other.already_gone;
        self.quarantined += other.quarantined;
        self.quarantined_bytes += other.quarantined_bytes;
        self.lost += other.lost;
        self.left += other.left;
        self.unverified |= other.unverified;
        if self.stopped.is_none() {
            self.stopped.clone_from(&other.stopped);
        }
    }
}

/// Everything a scan or collection reports.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Report {
    pub store: String,
    pub schemas: Vec<String>,
    pub hash_referenced: u64,
    pub schema_paths_referenced: u64,
    pub other_referenced: u64,
    /// References to this store found in each schema's rows.
    pub references_by_schema: BTreeMap<String, u64>,
    pub sections: Vec<SectionStats>,
    /// Orphans found referenced when the database was read again just
    /// before deletion, and so kept.
    pub rescued: u64,
    /// Orphans of a plan file that changed (size, modification time) or
    /// vanished since the plan was made, and so were skipped.
    pub changed_skipped: u64,
    /// Written and read as fields of the report itself.
    #[serde(flatten)]
    pub outcome: DeleteOutcome,
    /// Problems that blocked (or would block) deletion.
    pub scan_errors: Vec<String>,
    /// Oddities that block nothing but deserve a look: unsafe keys, and
    /// references that point outside their schema's sections.
    pub warnings: Vec<String>,
    pub dry_run: bool,
    /// The run was interrupted (a signal): its figures are of what it did
    /// before it stopped.
    #[serde(default)]
    pub partial: bool,
    /// Orphans of this plan file disposed of by earlier, interrupted runs
    /// (`apply` going on from their journal): included in the counts above.
    #[serde(default)]
    pub resumed_after: u64,
    pub seconds: f64,
    /// The djgc that wrote the report, and when its run started and
    /// finished (RFC 3339): what an unattended run's log needs.
    pub djgc_version: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    /// The run this report belongs to, as named by the caller (`--run-id`,
    /// `DJGC_RUN_ID`, a Slurm array's job id): what ties the shards of one
    /// run together for [`merge_shards`].
    #[serde(default)]
    pub run_id: Option<String>,
    /// Schemas with sections in the store that this run did not scan: their
    /// orphans stay ("storage not decreasing"). A hint, from the folders
    /// under the hash and schema roots.
    #[serde(default)]
    pub unscanned_schemas: Vec<String>,
    /// Set when the run was one shard of a sharded collection.
    pub shard: Option<ShardReport>,
    /// Set when the objects came from an S3 Inventory instead of a listing.
    pub inventory: Option<InventoryReport>,
    /// The check after deleting (`verify`): whether every row's object is
    /// still there, whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verified: Option<VerifyReport>,
}

/// What the check after a deletion found ([`crate::check`], over the run's
/// schemas).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    pub references_checked: u64,
    /// Rows whose object is missing or incomplete (whatever did it).
    pub rows_damaged: u64,
    pub objects_damaged: u64,
    /// The first damaged rows, `schema.table (key) column path: problem`.
    pub damaged_rows: Vec<String>,
    /// Why the check could not be completed, if it could not.
    pub errors: Vec<String>,
}

/// The S3 Inventory a run read instead of listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryReport {
    /// The manifest as given to `--inventory`.
    pub manifest: String,
    /// When AWS began taking it (RFC 3339): objects modified later are
    /// never judged.
    pub created: String,
}

/// What only a shard's own report says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardReport {
    #[serde(flatten)]
    pub shard: Shard,
    /// Distinct paths in the shard's reference sets: the references that can
    /// cover a key of its ranges (those counted above, and those reaching
    /// across a cut, which the neighbouring shard counts).
    pub references_held: u64,
    /// Memory of the shard's reference sets, from their tables' capacity.
    pub reference_set_bytes: u64,
    /// References to the store read in each schema, held or not: what the
    /// guard checks (a shard can hold none of a schema's references).
    pub references_read_by_schema: BTreeMap<String, u64>,
    /// The reference snapshot the shard was judged by, if not a read of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotUse>,
}

/// The reference snapshot a shard was judged by.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotUse {
    /// Its folder, as given to `refs`.
    pub folder: String,
    /// When its read of the database began (RFC 3339).
    pub taken: String,
}

/// Totals over the sections of one kind (or all).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub stored: u64,
    pub orphaned: u64,
    pub orphaned_bytes: u64,
    pub young_skipped: u64,
}

impl Report {
    /// Totals over sections of `kind`, or over all sections for `None`.
    pub fn totals(&self, kind: Option<SectionKind>) -> Totals {
        self.sections
            .iter()
            .filter(|s| kind.is_none() || s.kind == kind)
            .fold(Totals::default(), |t, s| Totals {
                stored: t.stored + s.stored,
                orphaned: t.orphaned + s.orphaned,
                orphaned_bytes: t.orphaned_bytes + s.orphaned_bytes,
                young_skipped: t.young_skipped + s.young_skipped,
            })
    }

    pub fn referenced(&self) -> u64 {
        self.hash_referenced + self.schema_paths_referenced
    }

    pub fn deleted(&self) -> u64 {
        self.outcome.hash_paths_deleted + self.outcome.schema_paths_deleted
    }

    /// Records the run's start (now its end), duration and djgc version.
    pub fn finish_run(&mut self, started: SystemTime) {
        let finished = SystemTime::now();
        self.seconds = finished
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        let time = |t| humantime::format_rfc3339_millis(t).to_string();
        self.started = Some(time(started));
        self.finished = Some(time(finished));
        self.djgc_version = Some(env!("CARGO_PKG_VERSION").to_string());
    }

    /// Writes [`Report::to_json`] to `path` whole: a reader (a merge, a
    /// monitor) never sees half a report.
    pub fn write_file(&self, path: &Path) -> crate::Result<()> {
        let io = |e| crate::Error::file(path, e);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let mut file =
            tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
        serde_json::to_writer(&mut file, &self.to_json()).map_err(|e| io(e.into()))?;
        file.write_all(b"\n").map_err(io)?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// Reads a report written by [`Report::write_file`].
    pub fn read_file(path: &Path) -> crate::Result<Report> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::Error::file(path, e))?;
        serde_json::from_str(&text)
            .and_then(|value| Report::from_json(&value))
            .map_err(|e| {
                crate::Error::Usage(format!("{} is not a djgc report: {e}", path.display()))
            })
    }

    /// Reads back the object [`Report::to_json`] writes.
    pub fn from_json(value: &Value) -> serde_json::Result<Report> {
        Report::deserialize(value)
    }

    /// The `--json` object: the report's own fields, its outcome's, and
    /// the totals derived from its sections ([`Flat`]).
    pub fn to_json(&self) -> Value {
        let hash = self.totals(Some(SectionKind::Hash));
        let schema = self.totals(Some(SectionKind::Schema));
        let all = self.totals(None);
        let flat = Flat {
            report: self,
            hash_stored: hash.stored,
            hash_orphaned: hash.orphaned,
            hash_orphaned_bytes: hash.orphaned_bytes,
            hash_paths_referenced: self.hash_referenced,
            hash_paths_stored: hash.stored,
            hash_paths_orphaned: hash.orphaned,
            hash_paths_orphaned_bytes: hash.orphaned_bytes,
            schema_paths_stored: schema.stored,
            schema_paths_orphaned: schema.orphaned,
            schema_paths_orphaned_bytes: schema.orphaned_bytes,
            referenced: self.referenced(),
            stored: all.stored,
            orphaned: all.orphaned,
            orphaned_bytes: all.orphaned_bytes,
            young_skipped: all.young_skipped,
            deleted: self.deleted(),
        };
        serde_json::to_value(flat).expect("a report serialises")
    }
}

/// The `--json` object: a [`Report`]'s fields (its outcome's flattened in),
/// beside the totals dj.gc names (with the 2.3 `hash_paths_*` spellings),
/// which are derived from the sections and never stored, so they cannot
/// disagree with them. [`Report`]'s derived `Deserialize` reads it back.
#[derive(Serialize)]
struct Flat<'a> {
    #[serde(flatten)]
    report: &'a Report,
    hash_stored: u64,
    hash_orphaned: u64,
    hash_orphaned_bytes: u64,
    hash_paths_referenced: u64,
    hash_paths_stored: u64,
    hash_paths_orphaned: u64,
    hash_paths_orphaned_bytes: u64,
    schema_paths_stored: u64,
    schema_paths_orphaned: u64,
    schema_paths_orphaned_bytes: u64,
    referenced: u64,
    stored: u64,
    orphaned: u64,
    orphaned_bytes: u64,
    young_skipped: u64,
    deleted: u64,
}

/// Adds up the reports of the shards of one collection, each named (by its
/// file) for errors: one report of the same shape, as the whole collection
/// in one run would have written it. Refuses reports that are not exactly
/// shards 0 to N-1 of one run: a missing shard would make the sum silently
/// short.
pub fn merge_shards(reports: &[(String, Report)]) -> crate::Result<Report> {
    let refuse = |message: String| Err(crate::Error::Usage(message));
    let Some((first_name, first)) = reports.first() else {
        return refuse("no reports to merge".into());
    };
    let Some(run) = &first.run_id else {
        return refuse(format!(
            "{first_name} names no run (run_id), so nothing shows that these reports are the \
             shards of one run and not of an earlier one: give each shard the same `run_id` \
             or DJGC_RUN_ID (a Slurm array's tasks share SLURM_ARRAY_JOB_ID)"
        ));
    };
    let mut seen: BTreeMap<usize, &str> = BTreeMap::new();
    let mut count = None;
    for (name, report) in reports {
        if report.run_id.as_ref() != Some(run) {
            return refuse(format!(
                "{name} is a report of run {:?}, but {first_name} of run {run:?}",
                report.run_id.as_deref().unwrap_or("(none)")
            ));
        }
        let Some(shard) = &report.shard else {
            return refuse(format!(
                "{name} is not a shard's report (it has no \"shard\")"
            ));
        };
        if *count.get_or_insert(shard.shard.count) != shard.shard.count {
            return refuse(format!(
                "{name} is shard {} but {first_name} is one of {} shards",
                shard.shard,
                count.unwrap_or_default()
            ));
        }
        // By when the snapshot's read began: the same folder may be reached
        // by another path on another node.
        let taken = |s: &ShardReport| s.snapshot.as_ref().map(|s| s.taken.clone());
        if taken(shard) != first.shard.as_ref().and_then(taken) {
            return refuse(format!(
                "{name} and {first_name} were not judged by the same references (a reference \
                 snapshot, or reads of their own)"
            ));
        }
        if let Some(other) = seen.insert(shard.shard.index, name) {
            return refuse(format!("{name} and {other} are both shard {}", shard.shard));
        }
        let same_sections = report.sections.len() == first.sections.len()
            && report
                .sections
                .iter()
                .zip(&first.sections)
                .all(|(a, b)| (&a.schema, a.kind, &a.prefix) == (&b.schema, b.kind, &b.prefix));
        if report.store != first.store
            || report.schemas != first.schemas
            || report.dry_run != first.dry_run
            || !same_sections
        {
            return refuse(format!(
                "{name} and {first_name} are not shards of the same run (store, schemas, \
                 sections or dry run differ)"
            ));
        }
    }
    let count = count.unwrap_or_default();
    let missing: Vec<String> = (0..count)
        .filter(|i| !seen.contains_key(i))
        .map(|i| format!("{i}/{count}"))
        .collect();
    if !missing.is_empty() {
        return refuse(format!(
            "the reports of shard(s) {} are missing",
            missing.join(", ")
        ));
    }

    let mut merged = Report {
        shard: None,
        seconds: 0.0,
        scan_errors: Vec::new(),
        warnings: Vec::new(),
        ..first.clone()
    };
    for (i, (_, report)) in reports.iter().enumerate() {
        if i > 0 {
            merged.add(report);
        }
        merged.seconds = merged.seconds.max(report.seconds);
        // The array's span: the first start, the last finish.
        merged.started = match (merged.started.take(), &report.started) {
            (Some(a), Some(b)) => Some(a.min(b.clone())),
            (a, b) => a.or_else(|| b.clone()),
        };
        merged.finished = merged.finished.take().max(report.finished.clone());
        for message in &report.scan_errors {
            if !merged.scan_errors.contains(message) {
                merged.scan_errors.push(message.clone());
            }
        }
        for schema in &report.unscanned_schemas {
            if !merged.unscanned_schemas.contains(schema) {
                merged.unscanned_schemas.push(schema.clone());
            }
        }
        for message in &report.warnings {
            if !merged.warnings.contains(message) {
                merged.warnings.push(message.clone());
            }
        }
    }
    Ok(merged)
}

impl Report {
    /// Adds another shard's counts to these.
    fn add(&mut self, other: &Report) {
        self.hash_referenced += other.hash_referenced;
        self.schema_paths_referenced += other.schema_paths_referenced;
        self.other_referenced += other.other_referenced;
        for (schema, n) in &other.references_by_schema {
            *self.references_by_schema.entry(schema.clone()).or_default() += n;
        }
        for (mine, theirs) in self.sections.iter_mut().zip(&other.sections) {
            mine.stored += theirs.stored;
            mine.stored_bytes += theirs.stored_bytes;
            mine.orphaned += theirs.orphaned;
            mine.orphaned_bytes += theirs.orphaned_bytes;
            mine.young_skipped += theirs.young_skipped;
            mine.ignored += theirs.ignored;
            mine.unsafe_keys += theirs.unsafe_keys;
        }
        self.rescued += other.rescued;
        self.changed_skipped += other.changed_skipped;
        self.partial |= other.partial;
        self.resumed_after += other.resumed_after;
        let (mine, theirs) = (&mut self.outcome, &other.outcome);
        mine.add_counts(theirs);
        mine.quarantine_run = match (mine.quarantine_run.take(), &theirs.quarantine_run) {
            (Some(a), Some(b)) if a != *b => Some(format!("{a}, {b}")),
            (a, b) => a.or_else(|| b.clone()),
        };
        mine.lost_keys.extend(theirs.lost_keys.iter().cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Plan files keep the report in their header; one written before the
    /// outcome was flattened into the report (nested under `outcome`) must
    /// still read, or a plan made before an upgrade could not be applied.
    #[test]
    fn reports_with_the_outcome_nested_still_read() {
        let report = Report {
            store: "main".into(),
            rescued: 3,
            outcome: DeleteOutcome {
                errors: 2,
                ..Default::default()
            },
            ..Default::default()
        };
        let mut old = serde_json::to_value(&report).unwrap();
        let outcome = serde_json::to_value(&report.outcome).unwrap();
        for key in outcome.as_object().unwrap().keys() {
            old.as_object_mut().unwrap().remove(key);
        }
        old["outcome"] = outcome;
        let read = Report::from_json(&old).unwrap();
        assert_eq!((read.store.as_str(), read.rescued), ("main", 3));
        // Its outcome is not read back: a plan's outcome starts empty anyway.
        assert_eq!(read.outcome, DeleteOutcome::default());
        // The flat form reads back whole.
        let flat = Report::from_json(&report.to_json()).unwrap();
        assert_eq!(flat.outcome, report.outcome);
    }

    #[test]
    fn totals_are_derived_from_sections() {
        let section = |kind, stored, orphaned| SectionStats {
            kind: Some(kind),
            stored,
            orphaned,
            orphaned_bytes: orphaned * 10,
            ..Default::default()
        };
        let report = Report {
            hash_referenced: 4,
            schema_paths_referenced: 3,
            sections: vec![
                section(SectionKind::Hash, 5, 1),
                section(SectionKind::Schema, 7, 2),
                section(SectionKind::Hash, 2, 2),
            ],
            ..Default::default()
        };
        let j = report.to_json();
        assert_eq!(j["hash_stored"], 7);
        assert_eq!(j["hash_orphaned"], 3);
        assert_eq!(j["hash_paths_orphaned_bytes"], 30);
        assert_eq!(j["schema_paths_orphaned"], 2);
        assert_eq!(j["stored"], 14);
        assert_eq!(j["orphaned_bytes"], 50);
        assert_eq!(j["referenced"], 7);
    }

    fn shard_report(index: usize, count: usize, orphaned: u64) -> (String, Report) {
        let report = Report {
            store: "main".into(),
            schemas: vec!["a".into()],
            hash_referenced: 10 + index as u64,
            references_by_schema: [("a".to_string(), 10 + index as u64)].into(),
            sections: vec![SectionStats {
                schema: "a".into(),
                kind: Some(SectionKind::Hash),
                prefix: "_hash/a/".into(),
                stored: 100,
                orphaned,
                ..Default::default()
            }],
            warnings: vec!["odd".into()],
            seconds: index as f64,
            started: Some(format!("2026-11-26T10:0{index}:00.000Z")),
            finished: Some(format!("2026-11-26T11:0{index}:00.000Z")),
            run_id: Some("4242".into()),
            outcome: DeleteOutcome {
                hash_paths_deleted: orphaned,
                lost_keys: vec![format!("k{index}")],
                lost: 1,
                ..Default::default()
            },
            shard: Some(ShardReport {
                shard: Shard { index, count },
                references_held: 11,
                reference_set_bytes: 99,
                references_read_by_schema: [("a".to_string(), 33)].into(),
                snapshot: None,
            }),
            ..Default::default()
        };
        (format!("shard-{index}.json"), report)
    }

    #[test]
    fn shard_reports_round_trip_and_add_up() {
        let reports: Vec<(String, Report)> = (0..3)
            .map(|i| shard_report(i, 3, i as u64))
            .map(|(name, r)| (name, Report::from_json(&r.to_json()).unwrap()))
            .collect();
        assert_eq!(reports[2].1.outcome.lost_keys, ["k2"]);
        let merged = merge_shards(&reports).unwrap().to_json();
        assert_eq!(merged["hash_referenced"], 33);
        assert_eq!(merged["references_by_schema"]["a"], 33);
        assert_eq!(merged["stored"], 300);
        assert_eq!(merged["orphaned"], 3);
        assert_eq!(merged["hash_paths_deleted"], 3);
        assert_eq!(merged["lost"], 3);
        assert_eq!(merged["warnings"], json!(["odd"]));
        assert_eq!(merged["seconds"], 2.0);
        assert_eq!(merged["started"], "2026-11-26T10:00:00.000Z");
        assert_eq!(merged["finished"], "2026-11-26T11:02:00.000Z");
        assert_eq!(merged["shard"], Value::Null);
    }

    #[test]
    fn merging_refuses_anything_but_every_shard_once() {
        let error = |reports: &[(String, Report)]| merge_shards(reports).unwrap_err().to_string();
        let e = error(&[shard_report(0, 3, 1), shard_report(2, 3, 1)]);
        assert!(e.contains("shard(s) 1/3 are missing"), "{e}");
        let e = error(&[shard_report(0, 2, 1), shard_report(0, 2, 1)]);
        assert!(e.contains("both shard 0/2"), "{e}");
        let e = error(&[shard_report(0, 2, 1), shard_report(1, 3, 1)]);
        assert!(e.contains("shard-1.json is shard 1/3"), "{e}");
        let mut whole = shard_report(0, 1, 1);
        whole.1.shard = None;
        assert!(error(&[whole]).contains("not a shard's report"));
        let mut other = shard_report(1, 2, 1);
        other.1.store = "archive".into();
        assert!(error(&[shard_report(0, 2, 1), other]).contains("not shards of the same run"));
        // Shards of one run share its id; a report without one proves nothing.
        let mut last_week = shard_report(1, 2, 1);
        last_week.1.run_id = Some("4100".into());
        let e = error(&[shard_report(0, 2, 1), last_week]);
        assert!(e.contains("run \"4100\"") && e.contains("\"4242\""), "{e}");
        let mut unnamed = shard_report(0, 2, 1);
        unnamed.1.run_id = None;
        assert!(error(&[unnamed, shard_report(1, 2, 1)]).contains("names no run"));
    }
}
