//! The human-readable report, in the spirit of dj.gc's `format_stats`:
//! per-section lines, then referenced / stored / orphaned totals.

use std::fmt::Write;
use std::time::Duration;

use indicatif::{HumanBytes, HumanCount, HumanDuration};

use djgc::config::StoreSpec;
use djgc::layout::SectionKind;
use djgc::report::Report;

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
