//! Plans on disk: `djgc scan --plan FILE` now, `djgc apply FILE` later.
//!
//! A plan file is JSON lines: a header (format, store identity and its
//! fingerprint, schemas, sections, the scan's report), then one orphan per
//! line with its size and modification time. JSON lines keep any key
//! intact, stream in and out without holding the plan in memory, and can be
//! read with `jq`.
//!
//! Applying a plan trusts nothing in it that could have changed, or that
//! whoever can write the file could have edited:
//! * the store and database it names must be the ones the current config
//!   describes (same identity, compared field by field; secrets and user
//!   names are not part of the identity and never written);
//! * its sections must be those the config gives its schemas, with ranges
//!   inside them ([`check_sections`]), and every orphan a key of its
//!   section and range: a plan cannot name what djgc would not list;
//! * every orphan is listed again (checked with `HEAD`, for a plan judged
//!   from an S3 Inventory) and kept in the plan only if its size and
//!   modification time are those recorded, and nothing else of its object
//!   changed ([`confirm_unchanged`]); one that changed or vanished is
//!   skipped and counted;
//! * the figures the mass-deletion guard reads are counted again from that
//!   listing (stored objects, orphans) and from the database's fresh read
//!   (references), never taken from the file;
//! * the database is read again, as before any deletion.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use nohash_hasher::IntMap;
use serde::{Deserialize, Serialize};

use crate::config::identity::identity_differences;
pub use crate::config::identity::{identity, Identity};
use crate::config::StoreSpec;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::judge::inventory::Inventory;
use crate::judge::plan::{from_mtime_ns, mtime_ns, OrphanSpool, Plan};
use crate::layout::{file_name, is_content_hash_name, Section, SectionKind};
use crate::refs::refset::{path_hash, RefSet};
use crate::report::{Report, SectionStats};
use crate::store::{KeyRange, Listing, Store};

const FORMAT: &str = "djgc-plan/1";

/// The hash of a stored key's exact bytes: its identity when confirming,
/// and in a plan's progress file.
pub(crate) fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

/// A short digest of an identity, to tell plans apart at a glance.
pub fn fingerprint(identity: &Identity) -> String {
    let text = serde_json::to_string(identity).expect("an identity serialises");
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// The first line of a plan file.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanHeader {
    pub format: String,
    /// Seconds since 1970.
    pub created: u64,
    pub identity: Identity,
    pub fingerprint: String,
    /// Codec names counted as schema-addressed in the scan.
    pub schema_codecs: Vec<String>,
    pub sections: Vec<Section>,
    pub report: Report,
}

#[derive(Serialize, Deserialize)]
struct Line {
    section: usize,
    key: String,
    size: u64,
    mtime_ns: u64,
}

/// Writes `plan` to `path` as made against `identity`: to a new file
/// beside it, renamed over `path` once complete, so a reader never sees
/// half a plan and a link planted at `path` is replaced, not written through.
pub fn write(path: &Path, plan: &Plan, identity: Identity, schema_codecs: &[String]) -> Result<()> {
    let io = |e| Error::file(path, e);
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
    let mut out = BufWriter::new(file);
    let header = PlanHeader {
        format: FORMAT.to_string(),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        fingerprint: fingerprint(&identity),
        identity,
        schema_codecs: schema_codecs.to_vec(),
        sections: plan.sections.clone(),
        report: plan.report.clone(),
    };
    serde_json::to_writer(&mut out, &header).map_err(|e| io(e.into()))?;
    out.write_all(b"\n").map_err(io)?;
    for orphan in plan.orphans()? {
        let orphan = orphan?;
        let line = Line {
            section: orphan.section,
            mtime_ns: mtime_ns(orphan.modified),
            size: orphan.size,
            key: orphan.key,
        };
        serde_json::to_writer(&mut out, &line).map_err(|e| io(e.into()))?;
        out.write_all(b"\n").map_err(io)?;
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// The error for line `line` of the plan file at `path`.
fn not_a_plan(path: &Path, line: usize, detail: String) -> Error {
    Error::Usage(format!(
        "{}: line {line} is not part of a djgc plan: {detail}",
        path.display()
    ))
}

/// Opens a plan file and reads its header; the orphans follow in `lines`.
fn open(path: &Path) -> Result<(PlanHeader, std::io::Lines<BufReader<File>>)> {
    let file = File::open(path).map_err(|e| Error::file(path, e))?;
    let mut lines = BufReader::with_capacity(1 << 20, file).lines();
    let first = lines
        .next()
        .ok_or_else(|| not_a_plan(path, 1, "the file is empty".into()))?
        .map_err(|e| Error::file(path, e))?;
    let header: PlanHeader =
        serde_json::from_str(&first).map_err(|e| not_a_plan(path, 1, e.to_string()))?;
    if header.format != FORMAT {
        return Err(not_a_plan(
            path,
            1,
            format!("format {:?}, expected {FORMAT}", header.format),
        ));
    }
    Ok((header, lines))
}

/// Reads only a plan file's header (to learn which store it was made for).
pub fn read_header(path: &Path) -> Result<PlanHeader> {
    open(path).map(|(header, _)| header)
}

/// Reads a plan file back: its header, and a plan whose orphans are spooled
/// from it (the report is the scan's, outcome empty).
pub fn read(path: &Path) -> Result<(PlanHeader, Plan)> {
    let bad = |line: usize, detail: String| not_a_plan(path, line, detail);
    let (header, lines) = open(path)?;
    let mut spool = OrphanSpool::new()?;
    for (index, line) in lines.enumerate() {
        let line = line.map_err(|e| Error::file(path, e))?;
        let orphan: Line =
            serde_json::from_str(&line).map_err(|e| bad(index + 2, e.to_string()))?;
        let section = header
            .sections
            .get(orphan.section)
            .ok_or_else(|| bad(index + 2, format!("no section {}", orphan.section)))?;
        if !judged(section, &orphan.key) || orphan.key.contains(['\n', '\r']) {
            return Err(bad(
                index + 2,
                format!(
                    "{:?} is not a key of section {}",
                    orphan.key,
                    section.label()
                ),
            ));
        }
        spool.push(
            orphan.section,
            orphan.size,
            from_mtime_ns(orphan.mtime_ns),
            &orphan.key,
        )?;
    }
    let mut report = header.report.clone();
    report.outcome = Default::default();
    report.rescued = 0;
    report.dry_run = true;
    let plan = Plan::new(header.sections.clone(), report, spool)?;
    Ok((header, plan))
}

/// Refuses (exit 2) a plan whose sections are not those the config gives
/// its schemas (the same schemas, kinds, prefixes and partition attributes,
/// in order), or whose shard ranges are not that shard's: hash sections
/// are cut where the config says, schema sections (cut by a sample of the
/// database) inside their section. Also sets each section's figures to
/// name the section it belongs to; [`confirm_unchanged`] counts them.
pub fn check_sections(header: &PlanHeader, plan: &mut Plan, spec: &StoreSpec) -> Result<()> {
    let refuse = |why: String| {
        Err(Error::Usage(format!(
            "the plan's sections are not those the config gives schemas {}: {why}; \
             nothing was done",
            header.report.schemas.join(", ")
        )))
    };
    let mut expected = crate::layout::sections(spec, &header.report.schemas)?;
    if expected.len() != plan.sections.len() {
        return refuse(format!(
            "{} sections, expected {}",
            plan.sections.len(),
            expected.len()
        ));
    }
    let shard = header.report.shard.as_ref().map(|s| s.shard);
    if let Some(shard) = shard {
        shard.check()?;
        crate::layout::shard::assign_ranges(spec, &mut expected, shard, &Vec::new());
    }
    for (planned, derived) in plan.sections.iter().zip(&expected) {
        let same = (
            &planned.schema,
            planned.kind,
            &planned.prefix,
            &planned.partition_attrs,
        ) == (
            &derived.schema,
            derived.kind,
            &derived.prefix,
            &derived.partition_attrs,
        );
        if !same {
            return refuse(format!(
                "section {} ({:?}, schema {}) where the config gives {} ({:?}, schema {})",
                planned.label(),
                planned.kind,
                planned.schema,
                derived.label(),
                derived.kind,
                derived.schema
            ));
        }
        let range_ok = match (shard, derived.kind) {
            (None, _) => planned.range.is_all(),
            (Some(_), SectionKind::Hash) => planned.range == derived.range,
            (Some(_), SectionKind::Schema) => [&planned.range.after, &planned.range.through]
                .into_iter()
                .flatten()
                .all(|bound| bound.starts_with(&derived.prefix)),
        };
        if !range_ok {
            return refuse(format!(
                "section {} has the range {:?}, which is not {}",
                planned.label(),
                planned.range,
                shard.map_or("the whole section".to_string(), |s| format!(
                    "shard {s}'s share of it"
                ))
            ));
        }
    }
    plan.report.sections = plan.sections.iter().map(SectionStats::of).collect();
    Ok(())
}

/// Refuses a plan made for another store or database than `current`,
/// naming every field that differs.
pub fn check_identity(header: &PlanHeader, current: &Identity) -> Result<()> {
    let differences = identity_differences(&header.identity, current, "plan");
    if differences.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the plan (fingerprint {}) was made for another store or database than the \
         current config describes ({}); nothing was done",
        header.fingerprint,
        differences.join("; ")
    )))
}

/// Confirms, just before deletion, that each orphan is still the object that
/// was judged, and drops the others; returns how many were dropped.
///
/// An object is confirmed by its exact key ([`key_hash`]), never by the
/// path it stands for ([`path_hash`], which takes `a./f` and `a/f`, or two
/// Unicode forms of a name, for one path): what is deleted must be the
/// very key that was seen unchanged. A plan
/// judged from a listing is listed again (its sections or shard ranges); one judged
/// from an S3 Inventory, which may be days old, is checked object by object
/// with `HEAD`, in batches, rather than by listing the bucket the
/// inventory spared.
pub fn confirm_unchanged(plan: &mut Plan, store: &dyn Store) -> Result<u64> {
    // The scan judged age; nothing here is younger than it saw.
    let any_age = SystemTime::now() + Duration::from_secs(86_400);
    if plan.report.inventory.is_some() {
        let confirmed = head_confirmed(plan, store, any_age)?;
        return plan.retain_orphans(|o| confirmed.contains(key_hash(&o.key)));
    }
    let check = ListingCheck::new(plan, any_age)?;
    list_plan_sections(plan, store, &check, &Interrupt::default());
    let (_, dropped, _) = check.keep_confirmed(plan, None)?;
    Ok(dropped)
}

/// [`confirm_unchanged`] for a plan read from a file, which also judges
/// age again (an orphan, or any file of its object, that arrived after
/// `cutoff`, or after the inventory was taken, is kept: a plan cannot make
/// a fresh upload old) and counts again, from the store as it is now,
/// every figure the mass-deletion guard reads from the sections: the
/// objects stored and the orphans left. A plan judged from an S3 Inventory
/// (given here, named again by the caller) is read against that inventory
/// for its figures and its objects' other files, and each orphan is
/// confirmed with `HEAD`. The plan's sections must have passed
/// [`check_sections`].
///
/// Once `interrupt` is raised the listing stops at its next page and the
/// plan is blocked (marked partial): nothing is confirmed from half a
/// listing. Returns the orphans dropped, and how many: gone (an
/// interrupted run may have deleted them without recording it) or changed.
pub fn confirm_for_apply(
    plan: &mut Plan,
    store: &dyn Store,
    inventory: Option<&Inventory>,
    cutoff: SystemTime,
    interrupt: &Interrupt,
) -> Result<(Plan, u64)> {
    let cutoff = inventory.map_or(cutoff, |i| cutoff.min(i.created));
    let check = ListingCheck::new(plan, cutoff)?;
    let by_head = match inventory {
        Some(inventory) => {
            inventory.list_sections(&plan.sections, &|index, item| {
                check.take(&plan.sections, &[index], item, &inventory.manifest);
                ControlFlow::Continue(())
            });
            Some(head_confirmed(plan, store, cutoff)?)
        }
        None => {
            list_plan_sections(plan, store, &check, interrupt);
            None
        }
    };
    if interrupt.requested() {
        plan.report
            .scan_errors
            .push("interrupted before the plan was confirmed".to_string());
        plan.report.partial = true;
    }
    let (dropped, count, stored) = check.keep_confirmed(plan, by_head)?;
    let mut orphaned = vec![(0u64, 0u64); plan.sections.len()];
    for orphan in plan.orphans()? {
        let orphan = orphan?;
        orphaned[orphan.section].0 += 1;
        orphaned[orphan.section].1 += orphan.size;
    }
    for (stats, ((count, bytes), (orphans, orphan_bytes))) in plan
        .report
        .sections
        .iter_mut()
        .zip(stored.into_iter().zip(orphaned))
    {
        stats.stored = count;
        stats.stored_bytes = bytes;
        stats.orphaned = orphans;
        stats.orphaned_bytes = orphan_bytes;
    }
    Ok((dropped, count))
}

/// Whether a listed key counts as one of `section`'s stored objects, as
/// the scan judges: a plain key of the section in its range, and in a hash
/// section named by a content hash.
fn judged(section: &Section, key: &str) -> bool {
    section.owns(key)
        && section.range.contains(key)
        && (section.kind != SectionKind::Hash || is_content_hash_name(file_name(key)))
}

/// The orphans whose size and modification time `HEAD` confirms, asked in
/// batches, and that arrived before `cutoff`: an object that is gone,
/// changed or young is not among them, a failed `HEAD` blocks the plan.
/// Times are compared to the second (inventories and `HEAD` answers carry
/// no more).
fn head_confirmed(plan: &mut Plan, store: &dyn Store, cutoff: SystemTime) -> Result<RefSet> {
    const BATCH: usize = 1000;
    let seconds = |t: std::time::SystemTime| mtime_ns(t) / 1_000_000_000;
    let mut confirmed = RefSet::default();
    let mut errors = Vec::new();
    let mut batch: Vec<(String, u64, u64)> = Vec::with_capacity(BATCH);
    let mut check = |batch: &mut Vec<(String, u64, u64)>, errors: &mut Vec<String>| {
        let keys: Vec<String> = batch.iter().map(|(k, _, _)| k.clone()).collect();
        for ((key, size, modified), found) in batch.drain(..).zip(store.head(&keys)) {
            match found {
                Ok(Some(now))
                    if now.size == size
                        && seconds(now.modified) == modified
                        && now.modified <= cutoff =>
                {
                    confirmed.insert(key_hash(&key));
                }
                Ok(_) => {}
                Err(e) => errors.push(format!("store {}: confirming: {e}", store.name())),
            }
        }
    };
    for orphan in plan.orphans()? {
        let orphan = orphan?;
        batch.push((orphan.key, orphan.size, seconds(orphan.modified)));
        if batch.len() == BATCH {
            check(&mut batch, &mut errors);
        }
    }
    check(&mut batch, &mut errors);
    plan.report.scan_errors.extend(errors);
    Ok(confirmed)
}

/// Lists the plan's sections (their ranges, in a sharded plan) again into
/// `check`. Sections sharing a prefix and range (the partitioned sections
/// of several schemas) are listed once; each key goes to the section that
/// owns it.
fn list_plan_sections(plan: &Plan, store: &dyn Store, check: &ListingCheck, interrupt: &Interrupt) {
    let mut listings: Vec<(&str, &KeyRange)> = plan
        .sections
        .iter()
        .map(|s| (s.prefix.as_str(), &s.range))
        .collect();
    // Sorted whole (prefix and range), so that dedup leaves each listing
    // once: a section listed twice would count its objects twice for the
    // guard.
    listings.sort_unstable_by(|a, b| {
        (a.0, &a.1.after, &a.1.through).cmp(&(b.0, &b.1.after, &b.1.through))
    });
    listings.dedup();
    // The plan's sections each listing serves.
    let served: Vec<Vec<usize>> = listings
        .iter()
        .map(|&(prefix, range)| {
            (0..plan.sections.len())
                .filter(|&i| plan.sections[i].prefix == prefix && &plan.sections[i].range == range)
                .collect()
        })
        .collect();
    let source = format!("store {}: re-listing", store.name());
    store.list_sections(&listings, &|listing, item| {
        if interrupt.requested() {
            return ControlFlow::Break(());
        }
        check.take(&plan.sections, &served[listing], item, &source);
        ControlFlow::Continue(())
    });
}

/// Objects and bytes, one pair per section.
type PerSection = Vec<(u64, u64)>;

/// What a listing of a plan's sections (the store's, or the inventory the
/// plan was judged from) says of its orphans: which are still there as
/// recorded and old enough, which objects (rows' fields) have a file that
/// is not (new, changed, or arrived after the cutoff), and what each
/// section holds. Memory: one hash and two numbers per orphan, one hash
/// per orphaned object.
struct ListingCheck {
    /// Each orphan's size and time, by key hash.
    recorded: IntMap<u64, (u64, u64)>,
    /// The objects the orphans belong to.
    objects: RefSet,
    cutoff: SystemTime,
    confirmed: Mutex<RefSet>,
    changed_objects: Mutex<RefSet>,
    /// Objects and bytes judged per section.
    stored: Mutex<PerSection>,
    errors: Mutex<Vec<String>>,
}

impl ListingCheck {
    fn new(plan: &Plan, cutoff: SystemTime) -> Result<Self> {
        let mut recorded: IntMap<u64, (u64, u64)> = IntMap::default();
        let mut objects = RefSet::default();
        for orphan in plan.orphans()? {
            let orphan = orphan?;
            recorded.insert(
                key_hash(&orphan.key),
                (orphan.size, mtime_ns(orphan.modified)),
            );
            objects.insert(path_hash(
                plan.sections[orphan.section].object_of(&orphan.key),
            ));
        }
        Ok(ListingCheck {
            recorded,
            objects,
            cutoff,
            confirmed: Mutex::default(),
            changed_objects: Mutex::default(),
            stored: Mutex::new(vec![(0, 0); plan.sections.len()]),
            errors: Mutex::default(),
        })
    }

    /// Takes one listing batch of the sections at `indexes` (`source`
    /// names the listing in errors).
    fn take(&self, sections: &[Section], indexes: &[usize], item: Listing, source: &str) {
        let listed = match item {
            Listing::Objects(listed) => listed,
            Listing::Error(e) => {
                let mut errors = self.errors.lock().expect("check lock");
                errors.push(format!("{source}: {e}"));
                return;
            }
        };
        let mut confirmed = self.confirmed.lock().expect("check lock");
        let mut changed = self.changed_objects.lock().expect("check lock");
        let mut stored = self.stored.lock().expect("check lock");
        for object in listed {
            let Some(&index) = indexes.iter().find(|&&i| judged(&sections[i], &object.key)) else {
                continue;
            };
            stored[index].0 += 1;
            stored[index].1 += object.size;
            let hash = key_hash(&object.key);
            let planned = self.recorded.get(&hash);
            if object.modified <= self.cutoff
                && planned == Some(&(object.size, mtime_ns(object.modified)))
            {
                confirmed.insert(hash);
            } else {
                let whole = path_hash(sections[index].object_of(&object.key));
                if self.objects.contains(whole) {
                    changed.insert(whole);
                }
            }
        }
    }

    /// Keeps the orphans this listing confirmed (or, for a plan judged from
    /// an inventory, `by_head` confirmed) whose object did not change;
    /// listing problems block the plan. Returns the orphans dropped (gone
    /// or changed), and each section's stored objects and bytes.
    fn keep_confirmed(
        self,
        plan: &mut Plan,
        by_head: Option<RefSet>,
    ) -> Result<(Plan, u64, PerSection)> {
        plan.report
            .scan_errors
            .extend(self.errors.into_inner().expect("check lock"));
        let confirmed = match by_head {
            Some(by_head) => by_head,
            None => self.confirmed.into_inner().expect("check lock"),
        };
        let changed = self.changed_objects.into_inner().expect("check lock");
        let sections = plan.sections.clone();
        let (dropped, count) = plan.split_off(|o| {
            !confirmed.contains(key_hash(&o.key))
                || changed.contains(path_hash(sections[o.section].object_of(&o.key)))
        })?;
        Ok((
            dropped,
            count,
            self.stored.into_inner().expect("check lock"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::shard::{assign_ranges, Shard};
    use crate::report::ShardReport;
    use std::collections::BTreeMap;

    fn spec() -> StoreSpec {
        StoreSpec {
            subfolding: Some(vec![2, 2]),
            ..crate::layout::tests::spec("_hash", "_schema")
        }
    }

    /// A header and an empty plan with `sections`, made for `shard`.
    fn plan_of(sections: Vec<Section>, shard: Option<Shard>) -> (PlanHeader, Plan) {
        let report = Report {
            schemas: vec!["a".into()],
            shard: shard.map(|shard| ShardReport {
                shard,
                references_held: 0,
                reference_set_bytes: 0,
                references_read_by_schema: BTreeMap::new(),
                snapshot: None,
            }),
            ..Default::default()
        };
        let header = PlanHeader {
            format: FORMAT.into(),
            created: 0,
            identity: Identity::new(),
            fingerprint: String::new(),
            schema_codecs: Vec::new(),
            sections: sections.clone(),
            report: report.clone(),
        };
        let plan = Plan::new(sections, report, OrphanSpool::new().unwrap()).unwrap();
        (header, plan)
    }

    /// The sections of shard 1/2 of schema `a`, schema cuts placed by a sample.
    fn sharded() -> Vec<Section> {
        let spec = spec();
        let mut sections = crate::layout::sections(&spec, &["a".into()]).unwrap();
        let mut sample = vec![BTreeMap::new(); sections.len()];
        for i in 0..100 {
            let path = format!("_schema/a/t/id={i}/f");
            crate::layout::shard::sample_path(&mut sample[1], path_hash(&path), &path, 1);
        }
        assign_ranges(&spec, &mut sections, Shard { index: 1, count: 2 }, &sample);
        sections
    }

    #[test]
    fn a_changed_key_is_not_confirmed_by_its_twin_with_a_trailing_dot() {
        // Two orphans that are one path to path_hash ("Jr." and "Jr"); after
        // the inventory, "Jr/f" is uploaded again. Its twin's HEAD must not
        // vouch for it.
        let sections = crate::layout::sections(&spec(), &["a".into()]).unwrap();
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let twin = "_schema/a/t/name=Jr./f";
        let changed = "_schema/a/t/name=Jr/f";
        let mut spool = OrphanSpool::new().unwrap();
        for key in [twin, changed] {
            spool.push(1, 5, then, key).unwrap();
        }
        let report = Report {
            schemas: vec!["a".into()],
            inventory: Some(crate::report::InventoryReport {
                manifest: "s3://b/inventory/manifest.json".into(),
                created: "2020-09-13T12:26:40Z".into(),
            }),
            ..Default::default()
        };
        let mut plan = Plan::new(sections, report, spool).unwrap();
        let store = crate::store::MemoryStore::new("twins");
        store.insert(twin, 5, then);
        store.insert(changed, 9, SystemTime::now());
        confirm_unchanged(&mut plan, &store).unwrap();
        let kept: Vec<String> = plan.orphans().unwrap().map(|o| o.unwrap().key).collect();
        assert_eq!(kept, vec![twin.to_string()]);
    }

    #[test]
    fn a_plan_keeps_only_sections_and_ranges_the_config_gives() {
        let check = |sections: Vec<Section>, shard: Option<Shard>| {
            let (header, mut plan) = plan_of(sections, shard);
            check_sections(&header, &mut plan, &spec())
        };
        let whole = crate::layout::sections(&spec(), &["a".into()]).unwrap();
        let shard = Some(Shard { index: 1, count: 2 });
        assert!(check(whole.clone(), None).is_ok());
        assert!(check(sharded(), shard).is_ok());

        // Another prefix, or another kind.
        let mut other = whole.clone();
        other[0].prefix = "_hash/b/".into();
        assert!(check(other, None).is_err());
        let mut other = whole.clone();
        other[1].kind = SectionKind::Hash;
        assert!(check(other, None).is_err());
        // A range in a plan of the whole store, or a hash cut moved.
        let mut other = whole.clone();
        other[0].range.after = Some("_hash/a/zz".into());
        assert!(check(other, None).is_err());
        let mut other = sharded();
        other[0].range.after = Some("_hash/a/".into());
        assert!(check(other, shard).is_err());
        // A schema cut outside its section.
        let mut other = sharded();
        other[1].range.after = Some("_schema/".into());
        assert!(check(other, shard).is_err());
        // A shard no --shard would accept.
        assert!(check(sharded(), Some(Shard { index: 2, count: 2 })).is_err());
    }

    /// An apply stopped while it lists the store again confirms nothing
    /// from half a listing: its plan is blocked and marked partial.
    #[test]
    fn an_apply_interrupted_while_confirming_is_blocked() {
        let sections = crate::layout::sections(&spec(), &["a".into()]).unwrap();
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let store = crate::store::MemoryStore::new("main");
        let mut spool = OrphanSpool::new().unwrap();
        for i in 0..10 {
            let key = format!("_schema/a/t/id={i}/f");
            store.insert(&key, 5, then);
            spool.push(1, 5, then, &key).unwrap();
        }
        let report = Report {
            schemas: vec!["a".into()],
            ..Default::default()
        };
        let mut plan = Plan::new(sections, report, spool).unwrap();
        let interrupt = Interrupt::default();
        interrupt.request();
        confirm_for_apply(&mut plan, &store, None, SystemTime::now(), &interrupt).unwrap();
        assert!(plan.is_blocked());
        assert!(plan.report.partial);
        assert_eq!(plan.orphans().unwrap().count(), 0);
    }

    /// Sections that share a prefix and a range (schemas of a partitioned
    /// store, cut alike) are listed once between them, whatever their
    /// order: listed twice, their objects would count twice for the guard.
    #[test]
    fn apply_lists_each_prefix_and_range_once() {
        let then = SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
        let store = crate::store::MemoryStore::new("main");
        let schemas = ["x", "y", "z"];
        for schema in schemas {
            for i in 0..10 {
                store.insert(&format!("_schema/subject=1/{schema}/t/id={i}/f"), 5, then);
            }
        }
        let mut sections: Vec<Section> = schemas
            .iter()
            .map(|schema| {
                let mut section = Section::new(schema, SectionKind::Schema, "_schema/subject=");
                section.partition_attrs = vec!["subject".into()];
                section
            })
            .collect();
        sections[1].range = KeyRange {
            after: Some("_schema/subject=1/y/t/id=5".into()),
            through: None,
        };
        let report = Report {
            schemas: schemas.map(String::from).to_vec(),
            sections: sections.iter().map(SectionStats::of).collect(),
            ..Default::default()
        };
        let mut plan = Plan::new(sections, report, OrphanSpool::new().unwrap()).unwrap();
        confirm_for_apply(
            &mut plan,
            &store,
            None,
            SystemTime::now(),
            &Interrupt::default(),
        )
        .unwrap();
        let stored: Vec<u64> = plan.report.sections.iter().map(|s| s.stored).collect();
        assert_eq!(stored, [10, 5, 10]);
    }
}
