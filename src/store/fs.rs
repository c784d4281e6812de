//! A DataJoint `file` store: a POSIX folder tree.
//!
//! Listing walks one section on a rayon pool of `jobs` threads. Each folder is
//! opened relative to its parent's open descriptor (`openat`, not a lookup of
//! its full path) and read with `getdents` (rustix's `Dir`, without the
//! `fstat` the C library's `opendir` adds per folder); its files are stat-ed
//! through it (`fstatat`), and its subfolders are walked in parallel by a
//! rayon `fold` that carries a batch of objects from folder to folder, so a
//! tree of many tiny folders still produces full batches. On a large store
//! the cost is the kernel's work of opening hundreds of thousands of
//! folders: spreading it over threads, and asking the kernel for less than
//! `find` does, is what beats a single-threaded `find`.
//!
//! A scan asks for less still ([`Store::list_sections_by_name`]): a file
//! whose type the folder listing tells is listed by name, unstat-ed, and the
//! judge reads size and time ([`Store::head`], through the same open
//! folders) only for the files no reference covers, the orphans and young
//! ones, a tenth of a store or so. On a parallel file system, where every
//! `stat` is a round trip to the metadata server, that is most of the cost.
//!
//! Why not jwalk: it reads folders ahead of its consumer without bound, so
//! while the judge waits for the reference set a large store would be held in
//! memory; and it stats each file by its full path. Here every hand-off blocks
//! on the caller's bounded queue, so memory is bounded by that queue plus the
//! subfolder names of the widest folder being walked, whatever the store size.
//!
//! Only regular files are objects. Symbolic links are neither followed nor
//! listed, so a link inside a section can never lead djgc out of it, and a
//! link on the way from the store root to a section (the section folder or
//! `_schema` itself) is reported as an error.
//!
//! Others can write the store while djgc works (a shared tree, its trash),
//! so every change is made the same way as the walk reads: from the root's
//! open folder down, one `openat(O_NOFOLLOW | O_DIRECTORY)` per folder, and
//! then `unlinkat`, `linkat`, `renameat2(RENAME_NOREPLACE)`, `mkdirat` on
//! the open parent ([`Folders`]). No call ever resolves a full path, so a
//! folder swapped for a link between the listing and the delete, or a link
//! planted inside a quarantine run, stops the operation with an error
//! naming it; nothing behind the link is touched.
//!
//! An object's time is when it arrived ([`arrival_time`]): the later of its
//! modification and status-change times, because DataJoint copies folders
//! with `shutil.copy2`, which keeps the source's (possibly week-old) mtime.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rustix::fs::{
    linkat, mkdirat, open, openat, renameat, renameat_with, statat, unlinkat, AtFlags, Dir,
    FileType, Mode, OFlags, RawMode, RenameFlags,
};
use rustix::io::Errno;

use super::{
    list_in_turn, outside_section, refuse_move, Deleted, KeyRange, ListSink, Listing, Moved,
    ObjectMeta, SectionSink, Store, StoreError, LIST_BATCH,
};
use crate::config::StoreSpec;
use crate::error::{Error, Result};
use crate::keys::key_is_contained;

/// A file store rooted at its `location`.
#[derive(Debug)]
pub struct FsStore {
    name: String,
    root: PathBuf,
    pool: rayon::ThreadPool,
}

impl FsStore {
    /// Opens the store; its location must be an existing folder.
    pub fn open(spec: &StoreSpec, jobs: usize) -> Result<Self> {
        let root = PathBuf::from(&spec.location);
        match std::fs::metadata(&root) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(Error::Config(format!(
                    "store {:?}: location {} is not a folder",
                    spec.name,
                    root.display()
                )))
            }
            Err(e) => {
                return Err(Error::Config(format!(
                    "store {:?}: location {} does not exist or cannot be read: {e}",
                    spec.name,
                    root.display()
                )))
            }
        }
        Ok(FsStore::new(&spec.name, root, jobs))
    }

    /// A store over `root`, which the caller has checked, walked by `jobs` threads.
    pub fn new(name: &str, root: impl Into<PathBuf>, jobs: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.max(1))
            .thread_name(|i| format!("djgc-walk-{i}"))
            .build()
            .expect("cannot start listing threads");
        FsStore {
            name: name.to_string(),
            root: root.into(),
            pool,
        }
    }

    /// Walks the section under `prefix` in `range` into `sink`; with
    /// `stat_files`, every file is `stat`ed for its size and time, else
    /// only those whose type the folder listing does not tell.
    fn walk(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>, stat_files: bool) {
        // A prefix such as `_schema/subject=` names the folder `_schema/` and
        // the start of the entry names to walk in it.
        let (dir_key, name_start) = prefix.split_at(prefix.rfind('/').map_or(0, |i| i + 1));
        let dir = match self.open_folder(dir_key) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                let _ = sink(Listing::Error(StoreError::new("list", prefix, e)));
                return;
            }
        };
        let walk = Walk {
            sink,
            range,
            stat_files,
            stopped: AtomicBool::new(false),
        };
        let rest = self
            .pool
            .install(|| walk.folder(dir, dir_key.to_string(), Some(name_start), Vec::new()));
        if !rest.is_empty() {
            walk.send(Listing::Objects(rest));
        }
    }

    /// The store's root folder, opened. The location itself may be a link
    /// (it is the configuration's to choose); nothing below it is followed.
    fn open_root(&self) -> io::Result<OwnedFd> {
        open(&self.root, ROOT_FLAGS, Mode::empty()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("{}: {}", self.root.display(), io::Error::from(e)),
            )
        })
    }

    /// The folder `key` (a store-relative folder path, `""` for the root),
    /// opened component by component from the root without following links.
    fn open_folder(&self, key: &str) -> io::Result<OwnedFd> {
        let mut dir = self.open_root()?;
        let mut opened = String::new();
        for name in key.split('/').filter(|s| !s.is_empty()) {
            dir = open_child(dir.as_fd(), &opened, name, false)?;
            opened.push_str(name);
            opened.push('/');
        }
        Ok(dir)
    }
}

/// How the store root is opened: it must be a folder, and it may be reached
/// through links (the configured location).
const ROOT_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC);

/// Opens the folder `name` inside the open folder `parent` (whose key is
/// `parent_key`, ending in `/` or empty), never through a link; with
/// `create`, makes it first when it is missing. A link or a file where a
/// folder should be is an error naming it: nothing behind it is touched.
fn open_child(
    parent: BorrowedFd<'_>,
    parent_key: &str,
    name: &str,
    create: bool,
) -> io::Result<OwnedFd> {
    if create {
        match mkdirat(parent, name, Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(named(e, parent_key, name)),
        }
    }
    openat(parent, name, FOLDER_FLAGS, Mode::empty()).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => {
            let what = match statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat)
                    if FileType::from_raw_mode(stat.st_mode as RawMode) == FileType::Symlink =>
                {
                    "is a symbolic link; djgc never follows links"
                }
                _ => "is not a folder",
            };
            io::Error::other(format!("{parent_key}{name} {what}"))
        }
        e => named(e, parent_key, name),
    })
}

/// An OS error on `parent_key` + `name`, keeping its kind (callers tell
/// "not found" apart) and naming the path.
fn named(e: Errno, parent_key: &str, name: &str) -> io::Error {
    let e = io::Error::from(e);
    io::Error::new(e.kind(), format!("{parent_key}{name}: {e}"))
}

/// The folders of a key and its name: `a/b/c` gives `["a", "b"]` and `c`.
fn split_key(key: &str) -> (Vec<&str>, &str) {
    let mut segments: Vec<&str> = key.split('/').collect();
    let name = segments.pop().unwrap_or_default();
    (segments, name)
}

/// How many folders of a section prefix deletes in it never prune: those
/// of the prefix itself (`_hash/s/`: 2), or for a partitioned prefix such
/// as `_schema/subject=` the folders above the partition folders (1).
fn kept_depth(section_prefix: &str) -> usize {
    section_prefix
        .rfind('/')
        .map_or(0, |end| section_prefix[..end].split('/').count())
}

/// Folders opened from the store root down, each relative to its parent
/// and never through a link: every change to the store is made through
/// one of these, so no operation resolves a full path, and a folder
/// swapped for a link after it was listed is refused, not followed. The
/// chain of open folders is kept between calls, so the keys of one batch
/// (which share most folders) open each folder once.
struct Folders<'a> {
    store: &'a FsStore,
    root: Option<OwnedFd>,
    /// `open[i]` is the folder of the first `i + 1` segments of the last
    /// folder path opened, with its name.
    open: Vec<(String, OwnedFd)>,
}

impl<'a> Folders<'a> {
    fn new(store: &'a FsStore) -> Self {
        Folders {
            store,
            root: None,
            open: Vec::new(),
        }
    }

    /// The folder at `segments` (from the root), opened (with `create`,
    /// made where missing).
    fn folder(&mut self, segments: &[&str], create: bool) -> io::Result<BorrowedFd<'_>> {
        if self.root.is_none() {
            self.root = Some(self.store.open_root()?);
        }
        let shared = self
            .open
            .iter()
            .zip(segments)
            .take_while(|((open, _), wanted)| open == *wanted)
            .count();
        self.open.truncate(shared);
        for (depth, name) in segments.iter().enumerate().skip(shared) {
            let parent_key: String = segments[..depth].iter().map(|s| format!("{s}/")).collect();
            let parent = match self.open.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.as_ref().expect("opened above").as_fd(),
            };
            let child = open_child(parent, &parent_key, name, create)?;
            self.open.push((name.to_string(), child));
        }
        Ok(match self.open.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.as_ref().expect("opened above").as_fd(),
        })
    }

    /// Closes the open chain: the next call opens every folder afresh.
    fn forget(&mut self) {
        self.open.clear();
    }

    /// Removes the folders of `segments` deepest first while they are
    /// empty, keeping the first `keep`. Each is removed by name from its
    /// open parent; `rmdir` removes nothing but an empty folder. The chain
    /// stays open down to the deepest folder left, for the next key.
    fn prune(&mut self, segments: &[&str], keep: usize) {
        for depth in (keep..segments.len()).rev() {
            if self.folder(&segments[..=depth], false).is_err() {
                return;
            }
            let parent = match depth.checked_sub(1) {
                Some(above) => self.open[above].1.as_fd(),
                None => self.root.as_ref().expect("opened by folder()").as_fd(),
            };
            if unlinkat(parent, segments[depth], AtFlags::REMOVEDIR).is_err() {
                return;
            }
            self.open.truncate(depth);
        }
    }

    /// Deletes the file `key`; then prunes its emptied folders, keeping `keep`.
    fn delete(&mut self, key: &str, keep: usize) -> Result<Deleted, StoreError> {
        let (folders, name) = split_key(key);
        let error = |e: io::Error| StoreError::new("delete", key, e);
        let dir = match self.folder(&folders, false) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Deleted::Missing),
            Err(e) => return Err(error(e)),
        };
        match unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => {
                self.prune(&folders, keep);
                Ok(Deleted::Removed)
            }
            Err(Errno::NOENT) => Ok(Deleted::Missing),
            Err(e) => Err(error(io::Error::from(e))),
        }
    }
}

/// Moves the file `from` to `to` without replacing anything: a hard link
/// at `to`, then the name `from` removed, so a crash in between leaves both
/// names on the one file, never neither. Where hard links are not
/// supported, a rename that refuses to replace. `source` and `target` are
/// the open folder chains of the two sides.
fn move_file(
    source: &mut Folders<'_>,
    target: &mut Folders<'_>,
    from: &str,
    to: &str,
) -> Result<Moved, StoreError> {
    let error = |e: io::Error| StoreError::new("move", from, e);
    let (from_folders, from_name) = split_key(from);
    let (to_folders, to_name) = split_key(to);
    let from_dir = match source.folder(&from_folders, false) {
        Ok(dir) => dir,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Moved::SourceMissing),
        Err(e) => return Err(error(e)),
    };
    match statat(from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode as RawMode) == FileType::RegularFile => {}
        Ok(_) => return Err(error(io::Error::other("not a regular file"))),
        Err(Errno::NOENT) => return Ok(Moved::SourceMissing),
        Err(e) => return Err(error(io::Error::from(e))),
    }
    let mut retried = false;
    loop {
        let to_dir = target.folder(&to_folders, true).map_err(error)?;
        let linked = match linkat(from_dir, from_name, to_dir, to_name, AtFlags::empty()) {
            Err(Errno::PERM | Errno::OPNOTSUPP | Errno::MLINK) => {
                // No hard links here: a rename that never replaces.
                match renameat_with(from_dir, from_name, to_dir, to_name, RenameFlags::NOREPLACE) {
                    Ok(()) => return Ok(Moved::Done),
                    Err(e) => Err(e),
                }
            }
            linked => linked,
        };
        match linked {
            Ok(()) => break,
            Err(Errno::EXIST) => return Ok(Moved::TargetExists),
            // Gone is the source, or the target's folder was removed since
            // it was opened (pruned by another run): only the first is
            // "missing", the second is tried once more through a new chain.
            Err(Errno::NOENT) => match statat(from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => return Ok(Moved::SourceMissing),
                _ if !retried => {
                    retried = true;
                    target.forget();
                }
                _ => {
                    return Err(error(io::Error::other(format!(
                        "the folder of {to} vanished while moving"
                    ))))
                }
            },
            Err(e) => return Err(error(io::Error::from(e))),
        }
    }
    // The name `from` is removed only while it still names the file just
    // linked: a writer that replaced it meanwhile (a deduplicated object
    // uploaded again) keeps its new file, and the trash its old one.
    let same_file =
        |a: &rustix::fs::Stat, b: &rustix::fs::Stat| (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino);
    let to_dir = target.folder(&to_folders, false).map_err(error)?;
    let linked = statat(to_dir, to_name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| error(e.into()))?;
    match statat(from_dir, from_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(source) if same_file(&source, &linked) => {}
        Ok(_) => {
            return Err(error(io::Error::other(
                "replaced while being moved: the new object stays, the trash keeps the old one",
            )))
        }
        Err(Errno::NOENT) => return Ok(Moved::Done),
        Err(e) => return Err(error(e.into())),
    }
    match unlinkat(from_dir, from_name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => Ok(Moved::Done),
        Err(e) => Err(error(io::Error::from(e))),
    }
}

/// A name for a file being written beside `name`, unique in this process.
fn temporary_name(name: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.djgc-{}-{n}.tmp", std::process::id())
}

/// One listing in progress: where to send batches, and whether to stop.
struct Walk<'a> {
    sink: &'a ListSink<'a>,
    /// Folders wholly outside it are not opened, files outside it not stat-ed.
    range: &'a KeyRange,
    /// Whether files whose type the folder listing tells are `stat`ed too
    /// (else they are listed [`ObjectMeta::unstated`]).
    stat_files: bool,
    stopped: AtomicBool,
}

impl Walk<'_> {
    fn send(&self, item: Listing) {
        if !self.stopped.load(Ordering::Relaxed) && (self.sink)(item).is_break() {
            self.stopped.store(true, Ordering::Relaxed);
        }
    }

    fn error(
        &self,
        operation: &'static str,
        key: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) {
        self.send(Listing::Error(StoreError::new(operation, key, source)));
    }

    /// Records the subfolder `key` for walking, unless none of its keys can
    /// lie in the range.
    fn push_folder(&self, subfolders: &mut Vec<String>, key: String) {
        let folder = key + "/";
        if self.range.meets_prefix(&folder) {
            subfolders.push(folder);
        }
    }

    /// Lists the open folder `dir` (whose key is `dir_key`, ending in `/`,
    /// or empty for the root) and everything below it, keeping only the
    /// entries of `dir` itself whose names start with `name_start`,
    /// appending to `batch` and sending it whenever it is full; returns what
    /// is left of the batch.
    fn folder(
        &self,
        dir: OwnedFd,
        dir_key: String,
        name_start: Option<&str>,
        mut batch: Vec<ObjectMeta>,
    ) -> Vec<ObjectMeta> {
        if self.stopped.load(Ordering::Relaxed) {
            return batch;
        }
        let mut entries = match Dir::new(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.error("list", dir_key, io::Error::from(e));
                return batch;
            }
        };
        let mut subfolders = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.error("list", dir_key.as_str(), io::Error::from(e));
                    break;
                }
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if name_start.is_some_and(|start| !name.starts_with(start.as_bytes())) {
                continue;
            }
            let Ok(name) = std::str::from_utf8(name) else {
                let shown = format!("{dir_key}{}", String::from_utf8_lossy(name));
                self.error(
                    "list",
                    shown,
                    "the file name is not UTF-8, so no DataJoint path can name it",
                );
                continue;
            };
            let key = format!("{dir_key}{name}");
            // Files are stat-ed for size and time; so is an entry whose type
            // the file system does not tell in the folder listing (some
            // network and parallel file systems).
            let file_type = entry.file_type();
            if file_type == FileType::Directory {
                self.push_folder(&mut subfolders, key);
                continue;
            }
            if !matches!(file_type, FileType::RegularFile | FileType::Unknown) {
                continue; // links and special files are not objects
            }
            if file_type == FileType::RegularFile && !self.range.contains(&key) {
                continue;
            }
            if file_type == FileType::RegularFile && !self.stat_files {
                batch.push(ObjectMeta::unstated(key));
                if batch.len() >= LIST_BATCH {
                    self.send(Listing::Objects(std::mem::take(&mut batch)));
                }
                continue;
            }
            let stat = entries
                .fd()
                .and_then(|at| statat(at, name, AtFlags::SYMLINK_NOFOLLOW));
            let stat = match stat {
                Ok(stat) => stat,
                Err(e) => {
                    self.error("stat", key, io::Error::from(e));
                    continue;
                }
            };
            match FileType::from_raw_mode(stat.st_mode as RawMode) {
                FileType::Directory => self.push_folder(&mut subfolders, key),
                FileType::RegularFile if self.range.contains(&key) => {
                    batch.push(ObjectMeta {
                        key,
                        size: stat.st_size as u64,
                        modified: arrival_time(&stat),
                    });
                    if batch.len() >= LIST_BATCH {
                        self.send(Listing::Objects(std::mem::take(&mut batch)));
                    }
                }
                _ => {}
            }
        }
        if subfolders.is_empty() {
            return batch;
        }
        let at = match entries.fd() {
            Ok(at) => at,
            Err(e) => {
                self.error("list", dir_key, io::Error::from(e));
                return batch;
            }
        };
        let child = |batch: Vec<ObjectMeta>, key: String| {
            let name = &key[dir_key.len()..key.len() - 1];
            match openat(at, name, FOLDER_FLAGS, Mode::empty()) {
                Ok(fd) => self.folder(fd, key, None, batch),
                Err(e) => {
                    self.error("list", key, io::Error::from(e));
                    batch
                }
            }
        };
        if subfolders.len() == 1 {
            return child(batch, subfolders.pop().expect("one"));
        }
        subfolders
            .into_par_iter()
            .fold(Vec::new, child)
            .filter(|b| !b.is_empty())
            .for_each(|b| self.send(Listing::Objects(b)));
        batch
    }
}

/// How a folder is opened for walking: read-only, and never through a link
/// (a link swapped in for a folder mid-walk fails to open, it is not followed).
const FOLDER_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A time from `stat`'s seconds and nanoseconds.
fn stat_time(seconds: i64, nanos: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nanos));
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos,
    }
}

/// When a file arrived in the store, as far as the file system tells: the
/// later of its modification time and its status-change time. A copy that
/// keeps its source's modification time (DataJoint uploads folders with
/// `shutil.copy2`, which does) still gets a fresh ctime, which no user
/// call can set back; a rename or a new link also renews it, so an object
/// moved back from quarantine counts as new, the safe way round.
#[allow(clippy::unnecessary_cast)] // the fields are `c_long` where not 64-bit Linux
fn arrival_time(stat: &rustix::fs::Stat) -> SystemTime {
    let modified = stat_time(stat.st_mtime as i64, stat.st_mtime_nsec as u32);
    let changed = stat_time(stat.st_ctime as i64, stat.st_ctime_nsec as u32);
    modified.max(changed)
}

impl Store for FsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>) {
        self.walk(prefix, range, sink, true);
    }

    /// Lists without `stat`ing the files whose type the folder listing
    /// tells (nearly all, on local file systems): their size and time are
    /// read later, by [`Store::head`], for the few that need them.
    fn list_sections_by_name(&self, sections: &[(&str, &KeyRange)], sink: &SectionSink<'_>) {
        list_in_turn(sections, sink, |prefix, range, sink| {
            self.walk(prefix, range, sink, false)
        });
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        let keep = kept_depth(section_prefix);
        let mut folders = Folders::new(self);
        keys.iter()
            .map(|key| {
                if !key_is_contained(section_prefix, key) {
                    return Err(outside_section(section_prefix, key));
                }
                folders.delete(key, keep)
            })
            .collect()
    }

    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>> {
        let keep = kept_depth(from_prefix);
        let (mut source, mut target) = (Folders::new(self), Folders::new(self));
        moves
            .iter()
            .map(|(from, to)| {
                if let Some(refused) = refuse_move(from_prefix, from, to) {
                    return Err(refused);
                }
                let moved = move_file(&mut source, &mut target, from, to)?;
                if moved == Moved::Done {
                    source.prune(&split_key(from).0, keep);
                }
                Ok(moved)
            })
            .collect()
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let error = |e: io::Error| StoreError::new("list", prefix, e);
        let dir = match self.open_folder(prefix) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(error(e)),
        };
        let mut entries = Dir::new(dir).map_err(|e| error(e.into()))?;
        let mut folders = Vec::new();
        while let Some(entry) = entries.read() {
            let entry = entry.map_err(|e| error(e.into()))?;
            let name = entry.file_name().to_bytes();
            if entry.file_type() != FileType::Directory || name == b"." || name == b".." {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                folders.push(name.to_string());
            }
        }
        folders.sort();
        Ok(folders)
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        let mut folders = Folders::new(self);
        keys.iter()
            .map(|key| {
                let error = |e: io::Error| StoreError::new("head", key, e);
                if !key_is_contained("", key) {
                    return Err(error(io::Error::other("not a plain store path")));
                }
                let (parents, name) = split_key(key);
                let dir = match folders.folder(&parents, false) {
                    Ok(dir) => dir,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(error(e)),
                };
                match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(stat)
                        if FileType::from_raw_mode(stat.st_mode as RawMode)
                            == FileType::RegularFile =>
                    {
                        Ok(Some(ObjectMeta {
                            key: key.clone(),
                            size: stat.st_size as u64,
                            modified: arrival_time(&stat),
                        }))
                    }
                    Ok(_) | Err(Errno::NOENT) => Ok(None),
                    Err(e) => Err(error(e.into())),
                }
            })
            .collect()
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let error = |e: io::Error| StoreError::new("put", key, e);
        if !key_is_contained("", key) {
            return Err(error(io::Error::other("not a plain store path")));
        }
        let (parents, name) = split_key(key);
        let mut folders = Folders::new(self);
        let dir = folders.folder(&parents, true).map_err(error)?;
        let temporary = temporary_name(name);
        let flags = OFlags::WRONLY
            .union(OFlags::CREATE)
            .union(OFlags::EXCL)
            .union(OFlags::NOFOLLOW)
            .union(OFlags::CLOEXEC);
        let file = openat(dir, &temporary, flags, Mode::from_raw_mode(0o600))
            .map_err(|e| error(e.into()))?;
        let mut file = std::fs::File::from(file);
        let written = io::Write::write_all(&mut file, &body)
            .and_then(|()| file.sync_all())
            .and_then(|()| renameat(dir, &temporary, dir, name).map_err(io::Error::from));
        if let Err(e) = written {
            let _ = unlinkat(dir, &temporary, AtFlags::empty());
            return Err(error(e));
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let error = |e: io::Error| StoreError::new("get", key, e);
        if !key_is_contained("", key) {
            return Err(error(io::Error::other("not a plain store path")));
        }
        let (parents, name) = split_key(key);
        let mut folders = Folders::new(self);
        let dir = match folders.folder(&parents, false) {
            Ok(dir) => dir,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(error(e)),
        };
        // Non-blocking, so a FIFO planted here cannot hold the open.
        let flags = OFlags::RDONLY
            .union(OFlags::NOFOLLOW)
            .union(OFlags::NONBLOCK)
            .union(OFlags::CLOEXEC);
        let file = match openat(dir, name, flags, Mode::empty()) {
            Ok(file) => file,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => {
                return Err(error(io::Error::other(
                    "is a symbolic link; djgc never follows links",
                )))
            }
            Err(e) => return Err(error(e.into())),
        };
        let stat = rustix::fs::fstat(&file).map_err(|e| error(e.into()))?;
        if FileType::from_raw_mode(stat.st_mode as RawMode) != FileType::RegularFile {
            return Err(error(io::Error::other("not a regular file")));
        }
        super::read_small(key, std::fs::File::from(file)).map(Some)
    }
}
