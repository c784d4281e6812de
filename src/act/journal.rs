//! What an interrupted deletion of a plan file already did, so that
//! `djgc apply PLAN` can carry on with the rest.
//!
//! The journal sits beside the plan (`PLAN.progress`): a header naming the
//! plan by a digest of its bytes, then one line per finished delete batch
//! with the hashes of the keys it disposed of (deleted, quarantined, or
//! found gone) and that batch's counts. A line is written, and flushed to
//! disk, only after its batch's requests have returned, so a key in the
//! journal is one whose fate is known; a run killed between a request and
//! its line leaves those keys to the next run, which finds them gone.
//!
//! The journal is trusted only to shorten the work: a key it names is not
//! disposed of again (a forged line can only spare an object), and its
//! counts are added to the report. Everything that lets an object be
//! deleted (the plan's checks, the listing, age, the database re-reads) is
//! done afresh for what is left. A journal of another plan, or of an
//! earlier version of this one (rewritten by a new scan), is replaced. A
//! link planted at its path is never written through.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use nohash_hasher::IntSet;
use rustix::fs::OFlags;
use rustix::io::Errno;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::judge::planfile::key_hash;
use crate::report::DeleteOutcome;

const FORMAT: &str = "djgc-progress/1";

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    /// [`plan_digest`] of the plan this records.
    plan: String,
}

#[derive(Serialize, Deserialize)]
struct BatchLine {
    /// [`key_hash`] of each key disposed of, in hex.
    done: Vec<String>,
    outcome: DeleteOutcome,
}

/// What earlier runs of the same plan did.
#[derive(Debug, Default)]
pub(crate) struct Earlier {
    /// The keys they disposed of, by [`key_hash`].
    pub done: IntSet<u64>,
    /// Their counts, summed.
    pub outcome: DeleteOutcome,
}

/// An open journal, appended to as batches finish.
#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    /// `None` once a write failed: the run goes on, and the next run
    /// re-checks what this one could not record.
    file: Mutex<Option<File>>,
}

/// Held while a run works on a plan file (writes it, or disposes of its
/// orphans): a second run on the same plan at once (a job submitted twice,
/// a retry while the first still runs) would dispose of the same orphans,
/// record them twice in the journal and so count them twice, or replace
/// the plan and its journal under the first. An advisory `flock` on
/// `PLAN.lock`, released when the run ends, however it ends (the kernel
/// drops it with the process); the file stays, empty.
#[derive(Debug)]
pub(crate) struct PlanLock {
    _file: File,
}

impl PlanLock {
    /// Takes the lock of the plan at `plan`: `None` where no lock can be
    /// had (the plan's folder cannot be written and holds no lock file djgc
    /// may read, or the file system has no locks), so the caller goes on
    /// unlocked. A lock held by another run refuses (a usage error naming
    /// the plan); a link or a folder at the lock's path is an error naming
    /// it.
    pub(crate) fn take(plan: &Path) -> Result<Option<PlanLock>> {
        let mut path = plan.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        let open = |write: bool| {
            OpenOptions::new()
                .read(true)
                .write(write)
                .create(write)
                .mode(0o644)
                .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
                .open(&path)
        };
        let unwritable = |e: &std::io::Error| {
            matches!(
                Errno::from_io_error(e),
                Some(Errno::ACCESS | Errno::PERM | Errno::ROFS)
            )
        };
        // Another user's lock file (readable by all), or a folder we may
        // not write: a read handle locks as well. None to be had: unlocked.
        let file = match open(true) {
            Err(e) if unwritable(&e) => match open(false) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound || unwritable(&e) => {
                    return Ok(None)
                }
                opened => opened,
            },
            opened => opened,
        }
        .map_err(|e| Error::file(&path, e))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(PlanLock { _file: file })),
            Err(Errno::WOULDBLOCK) => Err(Error::Usage(format!(
                "{}: another djgc run is working on this plan (it holds {}); \
                 wait for it to end, or stop it",
                plan.display(),
                path.display()
            ))),
            Err(Errno::NOLCK | Errno::OPNOTSUPP | Errno::INVAL) => Ok(None),
            Err(e) => Err(Error::file(&path, e.into())),
        }
    }
}

/// The journal path of a plan file.
pub(crate) fn path_of(plan: &Path) -> PathBuf {
    let mut name = plan.as_os_str().to_owned();
    name.push(".progress");
    PathBuf::from(name)
}

/// A digest of a plan file's bytes: what ties a journal to it.
pub(crate) fn plan_digest(plan: &Path) -> Result<String> {
    let io = |e| Error::file(plan, e);
    let mut file = File::open(plan).map_err(io)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(format!("{:032x}", hasher.digest128()))
}

impl Journal {
    /// Starts a new journal for the plan at `plan`, replacing any other.
    pub(crate) fn create(plan: &Path) -> Result<Journal> {
        let digest = plan_digest(plan)?;
        Self::start(plan, &digest)
    }

    /// Opens the journal of the plan at `plan`: what earlier runs of this
    /// very plan did, if its journal says so, else a new journal.
    pub(crate) fn resume(plan: &Path) -> Result<(Journal, Option<Earlier>)> {
        let digest = plan_digest(plan)?;
        let path = path_of(plan);
        let earlier = match Self::read(&path, &digest)? {
            Some(earlier) => earlier,
            None => return Ok((Self::start(plan, &digest)?, None)),
        };
        let file = Self::append(&path)?;
        let journal = Journal {
            path,
            file: Mutex::new(Some(file)),
        };
        Ok((journal, Some(earlier)))
    }

    /// Records one finished batch: the keys disposed of, and its counts.
    /// A failed write is returned once; later batches are not recorded.
    pub(crate) fn record(&self, done: &[&str], outcome: &DeleteOutcome) -> Result<()> {
        let mut file = self.file.lock().expect("journal lock");
        let Some(out) = file.as_mut() else {
            return Ok(());
        };
        let line = BatchLine {
            done: done.iter().map(|k| format!("{:x}", key_hash(k))).collect(),
            // A failed key is not done: the next run tries it again and
            // counts it then, so its error is not carried over.
            outcome: DeleteOutcome {
                errors: 0,
                ..outcome.clone()
            },
        };
        let mut text = serde_json::to_vec(&line).expect("a journal line serialises");
        text.push(b'\n');
        let written = out.write_all(&text).and_then(|()| out.sync_data());
        written.map_err(|e| {
            *file = None;
            Error::file(&self.path, e)
        })
    }

    /// Writes a fresh journal (header only) over `plan`'s, whole.
    fn start(plan: &Path, digest: &str) -> Result<Journal> {
        let path = path_of(plan);
        let io = |e| Error::file(&path, e);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let mut fresh =
            tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new("."))).map_err(io)?;
        let header = Header {
            format: FORMAT.to_string(),
            plan: digest.to_string(),
        };
        serde_json::to_writer(&mut fresh, &header).map_err(|e| io(e.into()))?;
        fresh.write_all(b"\n").map_err(io)?;
        fresh.as_file().sync_data().map_err(io)?;
        // Renamed over whatever is there: a planted link is replaced.
        fresh.persist(&path).map_err(|e| io(e.error))?;
        let file = Self::append(&path)?;
        Ok(Journal {
            path,
            file: Mutex::new(Some(file)),
        })
    }

    /// Opens `path` to append, refusing to follow a link.
    fn append(path: &Path) -> Result<File> {
        OpenOptions::new()
            .append(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
            .map_err(|e| Error::file(path, e))
    }

    /// The earlier runs recorded at `path`, if it is a journal of the plan
    /// with `digest`. A last line cut short (a run killed, or a disk full,
    /// while writing it: no line break at its end) is cut off the file, so
    /// the next record starts on a line of its own; any other line that is
    /// not a journal line is an error naming the file.
    fn read(path: &Path, digest: &str) -> Result<Option<Earlier>> {
        let io = |e| Error::file(path, e);
        let mut file = match OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let mut text = Vec::new();
        file.read_to_end(&mut text).map_err(io)?;
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64).map_err(io)?;
            text.truncate(whole);
        }
        let mut lines = BufReader::new(&text[..]).lines();
        let header: Option<Header> = match lines.next() {
            Some(line) => serde_json::from_str(&line.map_err(io)?).ok(),
            None => None,
        };
        match header {
            Some(h) if h.format == FORMAT && h.plan == digest => {}
            // Another plan's, or not a journal: started afresh.
            _ => return Ok(None),
        }
        let mut earlier = Earlier::default();
        for (number, line) in lines.enumerate() {
            let line = line.map_err(io)?;
            let batch: BatchLine = serde_json::from_str(&line).map_err(|e| {
                Error::Usage(format!(
                    "{} line {}: not a djgc progress line ({e}); remove the file to \
                     start the plan afresh",
                    path.display(),
                    number + 2
                ))
            })?;
            for hash in &batch.done {
                let hash = u64::from_str_radix(hash, 16).map_err(|_| {
                    Error::Usage(format!(
                        "{} line {}: {hash:?} is not a key hash",
                        path.display(),
                        number + 2
                    ))
                })?;
                earlier.done.insert(hash);
            }
            earlier.outcome.add_counts(&batch.outcome);
        }
        Ok(Some(earlier))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deleted(n: u64) -> DeleteOutcome {
        DeleteOutcome {
            schema_paths_deleted: n,
            bytes_freed: 10 * n,
            ..Default::default()
        }
    }

    #[test]
    fn a_journal_resumes_only_its_own_plan() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.jsonl");
        std::fs::write(&plan, "a plan\n").unwrap();
        let journal = Journal::create(&plan).unwrap();
        journal.record(&["a", "b"], &deleted(2)).unwrap();
        journal.record(&["c"], &deleted(1)).unwrap();
        drop(journal);

        let (journal, earlier) = Journal::resume(&plan).unwrap();
        let earlier = earlier.unwrap();
        let expected: IntSet<u64> = ["a", "b", "c"].iter().map(|k| key_hash(k)).collect();
        assert_eq!(earlier.done, expected);
        assert_eq!(earlier.outcome, deleted(3));
        journal.record(&["d"], &deleted(1)).unwrap();
        drop(journal);
        assert_eq!(Journal::resume(&plan).unwrap().1.unwrap().done.len(), 4);

        // A new scan rewrote the plan: its journal starts afresh.
        std::fs::write(&plan, "another plan\n").unwrap();
        let (_, earlier) = Journal::resume(&plan).unwrap();
        assert!(earlier.is_none());
        assert!(Journal::resume(&plan).unwrap().1.unwrap().done.is_empty());
    }

    #[test]
    fn a_line_cut_short_at_the_end_is_cut_off_and_elsewhere_named() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.jsonl");
        std::fs::write(&plan, "a plan\n").unwrap();
        let journal = Journal::create(&plan).unwrap();
        journal.record(&["a"], &deleted(1)).unwrap();
        drop(journal);
        let path = path_of(&plan);
        let whole = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{whole}{{\"done\":[\"12")).unwrap();
        let (journal, earlier) = Journal::resume(&plan).unwrap();
        assert_eq!(earlier.unwrap().done.len(), 1);
        // The torn tail is cut off: the next record reads back.
        journal.record(&["b"], &deleted(1)).unwrap();
        drop(journal);
        assert_eq!(Journal::resume(&plan).unwrap().1.unwrap().done.len(), 2);

        std::fs::write(
            &path,
            format!("{whole}garbage\n{}", whole.lines().nth(1).unwrap()),
        )
        .unwrap();
        let e = Journal::resume(&plan).unwrap_err().to_string();
        assert!(e.contains("plan.jsonl.progress line 3"), "{e}");
    }

    #[test]
    fn a_link_planted_at_the_journal_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.jsonl");
        std::fs::write(&plan, "a plan\n").unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, path_of(&plan)).unwrap();
        let journal = Journal::create(&plan).unwrap();
        journal.record(&["a"], &deleted(1)).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
        assert!(!path_of(&plan).is_symlink());

        // Planted after the journal was made: resuming refuses to follow it.
        drop(journal);
        std::fs::remove_file(path_of(&plan)).unwrap();
        std::os::unix::fs::symlink(&target, path_of(&plan)).unwrap();
        assert!(Journal::resume(&plan).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    }

    #[test]
    fn a_plan_is_locked_by_one_holder_at_a_time_and_never_through_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let plan = dir.path().join("plan.jsonl");
        let first = PlanLock::take(&plan)
            .unwrap()
            .expect("a lock on a local folder");
        match PlanLock::take(&plan) {
            Err(Error::Usage(message)) => assert!(message.contains("another djgc run")),
            other => panic!("a second holder: {other:?}"),
        }
        drop(first);
        assert!(
            PlanLock::take(&plan).unwrap().is_some(),
            "released with its holder"
        );

        let other = dir.path().join("other.jsonl");
        let target = dir.path().join("target");
        std::fs::write(&target, "keep me").unwrap();
        std::os::unix::fs::symlink(&target, dir.path().join("other.jsonl.lock")).unwrap();
        assert!(matches!(PlanLock::take(&other), Err(Error::File { .. })));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");

        let third = dir.path().join("third.jsonl");
        std::fs::create_dir(dir.path().join("third.jsonl.lock")).unwrap();
        assert!(matches!(PlanLock::take(&third), Err(Error::File { .. })));
    }
}
