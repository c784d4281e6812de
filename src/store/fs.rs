//! A DataJoint `file` store: a POSIX folder tree.
//!
//! Listing walks one section on a rayon pool of `jobs` threads. Each folder is
//! opened relative to its parent's open descriptor (`openat`, not a lookup of
//! its full path) and read with `getdents` (rustix's `Dir`, without the
//! `fstat` the C library's `opendir` adds per folder); its files are stat-ed
//! through it (`fstatat`, as `find` does), and its subfolders are walked in
//! parallel by a rayon `fold` that carries a batch of objects from folder to
//! folder, so a tree of many tiny folders still produces full batches. On a
//! large store the cost is the kernel's work of opening hundreds of
//! thousands of folders: spreading it over threads, and asking the kernel for
//! nothing more than `find` does, is what beats a single-threaded `find`.
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

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use std::os::fd::OwnedFd;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use rustix::fs::{open, openat, statat, AtFlags, Dir, FileType, Mode, OFlags, RawMode};
use rustix::io::Errno;

use super::{
    key_is_contained, outside_section, refuse_move, Deleted, KeyRange, ListSink, Listing, Moved,
    ObjectMeta, Store, StoreError, LIST_BATCH,
};
use crate::config::StoreSpec;
use crate::error::{Error, Result};

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

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Checks that every folder from the root down to `dir_key` is a real
    /// folder, not a link, so a listing never leaves the store.
    fn check_no_links(&self, dir_key: &str) -> io::Result<()> {
        let mut path = self.root.clone();
        for segment in dir_key.split('/').filter(|s| !s.is_empty()) {
            path.push(segment);
            let meta = std::fs::symlink_metadata(&path)?;
            if meta.file_type().is_symlink() {
                return Err(io::Error::other(format!(
                    "{} is a symbolic link; djgc never follows links",
                    path.display()
                )));
            }
            if !meta.is_dir() {
                return Err(io::Error::other(format!(
                    "{} is not a folder",
                    path.display()
                )));
            }
        }
        Ok(())
    }

    /// The folder whose emptied subfolders a delete in `section_prefix`
    /// prunes: the prefix itself, or for a partitioned prefix such as
    /// `_schema/subject=` the folder holding the partition folders.
    fn prune_stop(&self, section_prefix: &str) -> PathBuf {
        self.path_of(&section_prefix[..section_prefix.rfind('/').unwrap_or(0)])
    }

    /// Moves one file without replacing anything: a hard link at `to`, then
    /// the name `from` removed. A crash in between leaves both names on the
    /// one file, never neither. On a file system without hard links, a
    /// rename after checking that `to` is free.
    fn move_file(&self, from: &str, to: &str) -> Result<Moved, StoreError> {
        let (source, target) = (self.path_of(from), self.path_of(to));
        let error = |e: io::Error| StoreError::new("move", from, e);
        match std::fs::symlink_metadata(&source) {
            Ok(meta) if meta.is_file() => {}
            Ok(_) => return Err(error(io::Error::other("not a regular file"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Moved::SourceMissing),
            Err(e) => return Err(error(e)),
        }
        if let Some(dir) = target.parent() {
            std::fs::create_dir_all(dir).map_err(error)?;
        }
        match std::fs::hard_link(&source, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(Moved::TargetExists),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Moved::SourceMissing),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Unsupported | io::ErrorKind::PermissionDenied
                ) =>
            {
                if std::fs::symlink_metadata(&target).is_ok() {
                    return Ok(Moved::TargetExists);
                }
                std::fs::rename(&source, &target).map_err(error)?;
                return Ok(Moved::Done);
            }
            Err(e) => return Err(error(e)),
        }
        match std::fs::remove_file(&source) {
            Ok(()) => Ok(Moved::Done),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Moved::Done),
            Err(e) => Err(error(e)),
        }
    }

    /// Removes `dir` and its parents while they are empty, stopping below `stop`.
    fn prune_empty_folders(dir: Option<&Path>, stop: &Path) {
        let mut dir = dir;
        while let Some(d) = dir {
            if d == stop || !d.starts_with(stop) || std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// One listing in progress: where to send batches, and whether to stop.
struct Walk<'a> {
    sink: &'a ListSink<'a>,
    /// Folders wholly outside it are not opened, files outside it not stat-ed.
    range: &'a KeyRange,
    stopped: AtomicBool,
}

impl Walk<'_> {
    fn send(&self, item: Listing) {
        if !self.stopped.load(Ordering::Relaxed) && !(self.sink)(item) {
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
                        modified: modified_time(stat.st_mtime as i64, stat.st_mtime_nsec as u32),
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

/// A file's modification time from `stat`'s seconds and nanoseconds.
fn modified_time(seconds: i64, nanos: u32) -> SystemTime {
    let nanos = Duration::from_nanos(u64::from(nanos));
    match u64::try_from(seconds) {
        Ok(after) => UNIX_EPOCH + Duration::from_secs(after) + nanos,
        Err(_) => UNIX_EPOCH - Duration::from_secs(seconds.unsigned_abs()) + nanos,
    }
}

impl Store for FsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>) {
        // A prefix such as `_schema/subject=` names the folder `_schema/` and
        // the start of the entry names to walk in it.
        let (dir_key, name_start) = prefix.split_at(prefix.rfind('/').map_or(0, |i| i + 1));
        if let Err(e) = self.check_no_links(dir_key) {
            if e.kind() != io::ErrorKind::NotFound {
                sink(Listing::Error(StoreError::new("list", prefix, e)));
            }
            return;
        }
        let dir = match open(self.path_of(dir_key), FOLDER_FLAGS, Mode::empty()) {
            Ok(dir) => dir,
            Err(e) => {
                if e != Errno::NOENT {
                    sink(Listing::Error(StoreError::new(
                        "list",
                        prefix,
                        io::Error::from(e),
                    )));
                }
                return;
            }
        };
        let walk = Walk {
            sink,
            range,
            stopped: AtomicBool::new(false),
        };
        let rest = self
            .pool
            .install(|| walk.folder(dir, dir_key.to_string(), Some(name_start), Vec::new()));
        if !rest.is_empty() {
            walk.send(Listing::Objects(rest));
        }
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        let section_dir = self.prune_stop(section_prefix);
        keys.iter()
            .map(|key| {
                if !key_is_contained(section_prefix, key) {
                    return Err(outside_section(section_prefix, key));
                }
                let path = self.path_of(key);
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        FsStore::prune_empty_folders(path.parent(), &section_dir);
                        Ok(Deleted::Removed)
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Deleted::Missing),
                    Err(e) => Err(StoreError::new("delete", key.as_str(), e)),
                }
            })
            .collect()
    }

    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>> {
        let stop = self.prune_stop(from_prefix);
        moves
            .iter()
            .map(|(from, to)| {
                if let Some(refused) = refuse_move(from_prefix, from, to) {
                    return Err(refused);
                }
                let moved = self.move_file(from, to)?;
                if moved == Moved::Done {
                    FsStore::prune_empty_folders(self.path_of(from).parent(), &stop);
                }
                Ok(moved)
            })
            .collect()
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let entries = match std::fs::read_dir(self.path_of(prefix)) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::new("list", prefix, e)),
        };
        let mut folders = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::new("list", prefix, e))?;
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if let (true, Some(name)) = (is_dir, entry.file_name().to_str()) {
                folders.push(name.to_string());
            }
        }
        folders.sort();
        Ok(folders)
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        keys.iter()
            .map(|key| match std::fs::symlink_metadata(self.path_of(key)) {
                Ok(meta) if meta.is_file() => Ok(Some(ObjectMeta {
                    key: key.clone(),
                    size: meta.len(),
                    modified: meta
                        .modified()
                        .map_err(|e| StoreError::new("head", key, e))?,
                })),
                Ok(_) => Ok(None),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(StoreError::new("head", key, e)),
            })
            .collect()
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let path = self.path_of(key);
        let error = |e: io::Error| StoreError::new("put", key, e);
        let dir = path.parent().expect("a key has a parent");
        std::fs::create_dir_all(dir).map_err(error)?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(error)?;
        io::Write::write_all(&mut file, &body).map_err(error)?;
        file.as_file().sync_all().map_err(error)?;
        file.persist(&path).map_err(|e| error(e.error))?;
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(self.path_of(key)) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::new("get", key, e)),
        }
    }
}
