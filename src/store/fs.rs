//! A DataJoint `file` store: a POSIX folder tree.
//!
//! Listing walks one section with jwalk: folders are read in parallel on a
//! rayon pool of `jobs` threads, and each file's size and mtime are read by the
//! thread that read its folder (`lstat`, so links are never followed). The cost
//! on a large store is opening hundreds of thousands of folders, which is
//! kernel time: parallel folders are what beat a single-threaded `find`.
//!
//! Only regular files are objects. Symbolic links are neither followed nor
//! listed, so a link inside a section can never lead djgc out of it, and a
//! section root that is itself a link is reported as an error.

use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jwalk::{Parallelism, WalkDirGeneric};

use super::{
    key_is_contained, Deleted, ListSink, Listing, ObjectMeta, Store, StoreError, LIST_BATCH,
};
use crate::config::StoreSpec;
use crate::error::{Error, Result};

/// A file store rooted at its `location`.
#[derive(Debug)]
pub struct FsStore {
    name: String,
    root: PathBuf,
    jobs: usize,
}

/// Per-entry state filled in by the walker threads: the file's size and mtime.
type FileStat = Option<io::Result<(u64, SystemTime)>>;

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

    /// A store over `root`, which the caller has checked.
    pub fn new(name: &str, root: impl Into<PathBuf>, jobs: usize) -> Self {
        FsStore {
            name: name.to_string(),
            root: root.into(),
            jobs: jobs.max(1),
        }
    }

    fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
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

/// `prefix` + the path of `entry_dir/name` below `section_dir`, as a store key.
fn key_for(
    prefix: &str,
    section_dir: &Path,
    entry_dir: &Path,
    name: &std::ffi::OsStr,
) -> Option<String> {
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    let below = entry_dir.strip_prefix(section_dir).ok()?;
    for part in below.iter() {
        key.push_str(part.to_str()?);
        key.push('/');
    }
    key.push_str(name.to_str()?);
    Some(key)
}

impl Store for FsStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self, prefix: &str, sink: &ListSink<'_>) {
        let section_dir = self.path_of(prefix.trim_end_matches('/'));
        match std::fs::symlink_metadata(&section_dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) => {
                sink(Listing::Error(StoreError::new("list", prefix, e)));
                return;
            }
            Ok(meta) if meta.file_type().is_symlink() => {
                sink(Listing::Error(StoreError::new(
                    "list",
                    prefix,
                    "the section root is a symbolic link; djgc never follows links",
                )));
                return;
            }
            Ok(meta) if !meta.is_dir() => {
                sink(Listing::Error(StoreError::new(
                    "list",
                    prefix,
                    "not a folder",
                )));
                return;
            }
            Ok(_) => {}
        }

        let walker = WalkDirGeneric::<((), FileStat)>::new(&section_dir)
            .follow_links(false)
            .skip_hidden(false)
            .sort(false)
            .parallelism(Parallelism::RayonNewPool(self.jobs))
            .process_read_dir(|_, _, _, children| {
                for child in children.iter_mut().flatten() {
                    if child.file_type.is_file() {
                        child.client_state = Some(
                            child
                                .metadata()
                                .map_err(io::Error::from)
                                .and_then(|m| Ok((m.len(), m.modified()?))),
                        );
                    }
                }
            });

        let mut batch = Vec::with_capacity(LIST_BATCH);
        for entry in walker {
            let mut entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let key = e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| prefix.to_string());
                    if !sink(Listing::Error(StoreError::new(
                        "list",
                        key,
                        io::Error::from(e),
                    ))) {
                        return;
                    }
                    continue;
                }
            };
            let Some(stat) = entry.client_state.take() else {
                continue; // folders, links and special files are not objects
            };
            let Some(key) = key_for(prefix, &section_dir, entry.parent_path(), &entry.file_name)
            else {
                let shown = entry.path().display().to_string();
                if !sink(Listing::Error(StoreError::new(
                    "list",
                    shown,
                    "the file name is not UTF-8, so no DataJoint path can name it",
                ))) {
                    return;
                }
                continue;
            };
            match stat {
                Ok((size, modified)) => batch.push(ObjectMeta {
                    key,
                    size,
                    modified,
                }),
                Err(e) => {
                    if !sink(Listing::Error(StoreError::new("stat", key, e))) {
                        return;
                    }
                }
            }
            if batch.len() == LIST_BATCH
                && !sink(Listing::Objects(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(LIST_BATCH),
                )))
            {
                return;
            }
        }
        if !batch.is_empty() {
            sink(Listing::Objects(batch));
        }
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        let section_dir = self.path_of(section_prefix.trim_end_matches('/'));
        keys.iter()
            .map(|key| {
                if !key_is_contained(section_prefix, key) {
                    return Err(StoreError::new(
                        "delete",
                        key.as_str(),
                        format!("refused: not a plain path inside {section_prefix}"),
                    ));
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
}
