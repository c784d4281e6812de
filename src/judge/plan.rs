//! A scan's result: what would be deleted, and why nothing else would.
//!
//! The orphans of a large store do not fit in memory, so a plan spools them
//! to an unnamed temporary file as they are judged (one line each:
//! `section, size, mtime in nanoseconds, key`) and reads them back for deletion or for
//! `--orphans-out`. Keys never contain a line break (the scan refuses such
//! keys), so a line is always one orphan.
//!
//! A plan is the only input of deletion: a dry run is a plan that is reported
//! and dropped; `--delete` executes the same plan.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::layout::Section;
use crate::report::Report;

/// One orphan as recorded in a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    /// Index into [`Plan::sections`].
    pub section: usize,
    pub size: u64,
    pub modified: SystemTime,
    pub key: String,
}

/// Appends orphans to a temporary file.
pub(crate) struct OrphanSpool {
    writer: BufWriter<File>,
}

impl OrphanSpool {
    pub(crate) fn new() -> Result<Self> {
        let file = tempfile::tempfile().map_err(|e| Error::file(std::env::temp_dir(), e))?;
        Ok(OrphanSpool {
            writer: BufWriter::with_capacity(1 << 20, file),
        })
    }

    pub(crate) fn push(
        &mut self,
        section: usize,
        size: u64,
        modified: SystemTime,
        key: &str,
    ) -> Result<()> {
        debug_assert!(!key.contains('\n'));
        let mtime = mtime_ns(modified);
        writeln!(self.writer, "{section}\t{size}\t{mtime}\t{key}")
            .map_err(|e| Error::file("orphan spool", e))
    }

    fn finish(self) -> Result<File> {
        let mut file = self
            .writer
            .into_inner()
            .map_err(|e| Error::file("orphan spool", e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::file("orphan spool", e))?;
        Ok(file)
    }
}

/// The outcome of a scan: sections, statistics and the spooled orphans.
pub struct Plan {
    pub sections: Vec<Section>,
    /// The scan's figures; deletion fills in the outcome.
    pub report: Report,
    spool: File,
}

impl Plan {
    pub(crate) fn new(sections: Vec<Section>, report: Report, spool: OrphanSpool) -> Result<Plan> {
        Ok(Plan {
            sections,
            report,
            spool: spool.finish()?,
        })
    }

    /// Whether the scan met any problem; such a plan must not be executed.
    pub fn is_blocked(&self) -> bool {
        !self.report.scan_errors.is_empty()
    }

    /// Reads the orphans back, in the order they were judged.
    pub fn orphans(&self) -> Result<impl Iterator<Item = Result<Orphan>> + '_> {
        let mut file = self
            .spool
            .try_clone()
            .map_err(|e| Error::file("orphan spool", e))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::file("orphan spool", e))?;
        Ok(BufReader::with_capacity(1 << 20, file).lines().map(|line| {
            let line = line.map_err(|e| Error::file("orphan spool", e))?;
            parse_line(&line).ok_or_else(|| {
                Error::file(
                    "orphan spool",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("bad line {line:?}"),
                    ),
                )
            })
        }))
    }

    /// Keeps only the orphans `keep` accepts, rewriting the spool; returns how
    /// many were dropped.
    pub fn retain_orphans(&mut self, mut keep: impl FnMut(&Orphan) -> bool) -> Result<u64> {
        self.take_out(|o| !keep(o), |_| Ok(()))
    }

    /// Moves the orphans `take` accepts out of this plan into a plan of
    /// their own (same sections, an empty report); returns it with how
    /// many it holds.
    pub fn split_off(&mut self, take: impl FnMut(&Orphan) -> bool) -> Result<(Plan, u64)> {
        let mut taken = OrphanSpool::new()?;
        let count = self.take_out(take, |o| taken.push(o.section, o.size, o.modified, &o.key))?;
        Ok((
            Plan::new(self.sections.clone(), Report::default(), taken)?,
            count,
        ))
    }

    /// Rewrites the spool without the orphans `take` accepts, handing each
    /// of those to `taken`; returns how many were taken.
    fn take_out(
        &mut self,
        mut take: impl FnMut(&Orphan) -> bool,
        mut taken: impl FnMut(&Orphan) -> Result<()>,
    ) -> Result<u64> {
        let mut kept = OrphanSpool::new()?;
        let mut count = 0;
        for orphan in self.orphans()? {
            let orphan = orphan?;
            if take(&orphan) {
                taken(&orphan)?;
                count += 1;
            } else {
                kept.push(orphan.section, orphan.size, orphan.modified, &orphan.key)?;
            }
        }
        self.spool = kept.finish()?;
        Ok(count)
    }

    /// Writes every orphan's store-relative path, one per line, to `path`:
    /// to a new file beside it, renamed over `path` once complete (a link
    /// planted at `path` is replaced, never written through).
    pub fn write_orphan_list(&self, path: &Path) -> Result<()> {
        let io = |e| Error::file(path, e);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
        let mut out = BufWriter::new(file);
        for orphan in self.orphans()? {
            writeln!(out, "{}", orphan?.key).map_err(io)?;
        }
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }
}

fn parse_line(line: &str) -> Option<Orphan> {
    let mut fields = line.splitn(4, '\t');
    let section = fields.next()?.parse().ok()?;
    let size = fields.next()?.parse().ok()?;
    let mtime: u64 = fields.next()?.parse().ok()?;
    let key = fields.next()?.to_string();
    Some(Orphan {
        section,
        size,
        modified: from_mtime_ns(mtime),
        key,
    })
}

/// A modification time as nanoseconds since 1970 (earlier times as 0), the
/// form plans and manifests record so a changed object can be recognised.
pub fn mtime_ns(modified: SystemTime) -> u64 {
    let since = modified
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
}

/// The inverse of [`mtime_ns`].
pub fn from_mtime_ns(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spool_round_trips_keys_with_tabs_and_spaces() {
        let mut spool = OrphanSpool::new().unwrap();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        spool.push(1, 42, t, "_schema/a/t/name=x y/f\tz").unwrap();
        spool
            .push(0, 7, t, "_hash/a/ih23fsttfdzzbrgqrgnsup5b3i")
            .unwrap();
        let plan = Plan::new(Vec::new(), Report::default(), spool).unwrap();
        let orphans: Vec<Orphan> = plan.orphans().unwrap().map(Result::unwrap).collect();
        assert_eq!(orphans.len(), 2);
        assert_eq!(orphans[0].key, "_schema/a/t/name=x y/f\tz");
        assert_eq!(
            (orphans[0].section, orphans[0].size, orphans[0].modified),
            (1, 42, t)
        );
        // Reading twice gives the same orphans.
        assert_eq!(plan.orphans().unwrap().count(), 2);
    }
}
