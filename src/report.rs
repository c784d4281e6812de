//! The numbers a run produces, in dj.gc's vocabulary.
//!
//! Counts are kept per section and the totals derived from them, so the
//! per-section lines and the totals of a report can never disagree. The JSON
//! form carries dj.gc's documented names, the 2.3 `hash_paths_*` spellings,
//! and djgc's additions (`young_skipped`, `other_referenced`, `sections`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

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

/// What a deletion did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    pub outcome: DeleteOutcome,
    /// Problems that blocked (or would block) deletion.
    pub scan_errors: Vec<String>,
    /// Oddities that block nothing but deserve a look: unsafe keys, and
    /// references that point outside their schema's sections.
    pub warnings: Vec<String>,
    pub dry_run: bool,
    pub seconds: f64,
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

    /// The `--json` object.
    pub fn to_json(&self) -> Value {
        let hash = self.totals(Some(SectionKind::Hash));
        let schema = self.totals(Some(SectionKind::Schema));
        let all = self.totals(None);
        json!({
            "store": self.store,
            "schemas": self.schemas,
            "hash_referenced": self.hash_referenced,
            "hash_stored": hash.stored,
            "hash_orphaned": hash.orphaned,
            "hash_orphaned_bytes": hash.orphaned_bytes,
            "hash_paths_referenced": self.hash_referenced,
            "hash_paths_stored": hash.stored,
            "hash_paths_orphaned": hash.orphaned,
            "hash_paths_orphaned_bytes": hash.orphaned_bytes,
            "schema_paths_referenced": self.schema_paths_referenced,
            "schema_paths_stored": schema.stored,
            "schema_paths_orphaned": schema.orphaned,
            "schema_paths_orphaned_bytes": schema.orphaned_bytes,
            "other_referenced": self.other_referenced,
            "references_by_schema": self.references_by_schema,
            "referenced": self.referenced(),
            "stored": all.stored,
            "orphaned": all.orphaned,
            "orphaned_bytes": all.orphaned_bytes,
            "young_skipped": all.young_skipped,
            "rescued": self.rescued,
            "changed_skipped": self.changed_skipped,
            "deleted": self.deleted(),
            "hash_paths_deleted": self.outcome.hash_paths_deleted,
            "schema_paths_deleted": self.outcome.schema_paths_deleted,
            "bytes_freed": self.outcome.bytes_freed,
            "errors": self.outcome.errors,
            "already_gone": self.outcome.already_gone,
            "quarantined": self.outcome.quarantined,
            "quarantined_bytes": self.outcome.quarantined_bytes,
            "quarantine_run": self.outcome.quarantine_run,
            "lost": self.outcome.lost,
            "lost_keys": self.outcome.lost_keys,
            "scan_errors": self.scan_errors,
            "warnings": self.warnings,
            "dry_run": self.dry_run,
            "seconds": self.seconds,
            "sections": self.sections,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
