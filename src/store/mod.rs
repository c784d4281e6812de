//! One interface for every object store: list a section, delete a batch.
//!
//! The collector never touches a store except through [`Store`], so the same
//! judging and deletion code serves a POSIX folder, S3 and the in-memory store
//! used by unit tests, and one conformance suite (`tests/it/store_conformance.rs`)
//! holds every implementation to the same contract:
//!
//! * `list` reports every object under a prefix exactly once, with size and
//!   modification time, never following symbolic links; an entry it cannot
//!   read is reported as an error and the listing goes on, so the caller sees
//!   every problem and can refuse to delete. `list_sections` lists several
//!   prefixes at once, each exactly as `list_range` would, so a scan's
//!   sections share one pool of requests.
//! * `delete` removes only the keys it is given, each inside the given section
//!   prefix; a key already gone is never an error: `Missing` where the store
//!   can tell (file, memory), `Removed` where it cannot (S3's DeleteObjects
//!   answers the same for both). Folders left empty are pruned up to, not
//!   including, the section root.
//! * `rename` moves objects (quarantine and restore) without ever replacing
//!   one, and without a moment where the object exists under neither name.
//! * `head` tells the size and modification time of given keys, and `None`
//!   for a key with no object (a folder is not an object).
//! * `put` and `get` carry djgc's own small files (quarantine manifests).

mod azure;
mod fs;
mod gcs;
mod http;
pub mod keyspace;
mod memory;
mod s3;

use std::time::SystemTime;

pub use azure::AzureStore;
pub use fs::FsStore;
pub use gcs::GcsStore;
pub use memory::MemoryStore;
pub use s3::S3Store;

use crate::config::{Protocol, StoreSpec};
pub use crate::error::{StoreError, StoreErrorKind};
pub use std::ops::ControlFlow;

use crate::error::Result;
use crate::keys::key_is_contained;

/// Objects per listing batch: large enough to amortise channel hand-offs,
/// small enough that a few hundred batches in flight stay in the megabytes.
pub const LIST_BATCH: usize = 1024;

/// The largest object [`Store::get`] reads: djgc's own files are a few
/// megabytes (a quarantine manifest part of 100,000 entries is about
/// 15 MB), and anyone who can write the store could put something far
/// larger (or a FIFO) where djgc expects one.
pub const SMALL_OBJECT_LIMIT: u64 = 64 << 20;

/// Keys per delete call: the most one S3 DeleteObjects request takes.
pub const DELETE_BATCH: usize = 1000;

/// One stored object as the listing sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Store-relative key with `/` separators, as DataJoint writes `path`.
    pub key: String,
    pub size: u64,
    pub modified: SystemTime,
}

impl ObjectMeta {
    /// An object listed by its name alone ([`Store::list_sections_by_name`]):
    /// size 0 and a time far in the future, so that wherever its size and
    /// time are not read it is too young to be anyone's orphan.
    pub fn unstated(key: String) -> ObjectMeta {
        ObjectMeta {
            key,
            size: 0,
            modified: not_stated(),
        }
    }

    /// Whether its size and time were read (not [`ObjectMeta::unstated`]).
    pub fn is_stated(&self) -> bool {
        self.modified != not_stated()
    }
}

/// The time of an object whose time was not read: the year 2106.
fn not_stated() -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(u32::MAX))
}

/// What a listing hands its caller.
#[derive(Debug)]
pub enum Listing {
    Objects(Vec<ObjectMeta>),
    Error(StoreError),
}

/// The outcome of deleting one key that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// Already gone (deleted by someone else since the listing), where the
    /// store can tell.
    Missing,
}

/// The outcome of moving one object that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    Done,
    /// Nothing at the source (moved before, or never there).
    SourceMissing,
    /// Something already at the target: nothing was moved or replaced.
    TargetExists,
}

/// Receives listing batches; [`ControlFlow::Break`] stops the listing early.
pub type ListSink<'a> = dyn Fn(Listing) -> ControlFlow<()> + Sync + 'a;

/// Receives the batches of a listing of several sections, each with the
/// index of its section; [`ControlFlow::Break`] stops the whole listing.
pub type SectionSink<'a> = dyn Fn(usize, Listing) -> ControlFlow<()> + Sync + 'a;

/// A contiguous run of keys in byte order: those after `after` (exclusive)
/// up to `through` (inclusive), either end open when `None`. A shard lists
/// one such run of each section, so the runs of all shards partition it.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub through: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub const ALL: KeyRange = KeyRange {
        after: None,
        through: None,
    };

    pub fn is_all(&self) -> bool {
        self.after.is_none() && self.through.is_none()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.after.as_deref().is_none_or(|after| key > after)
            && self.through.as_deref().is_none_or(|through| key <= through)
    }

    /// Whether some key starting with `prefix` lies in the range: `prefix`
    /// itself does, or the range starts inside the keys that extend it
    /// (the smallest key after `after` extends `after`).
    pub fn meets_prefix(&self, prefix: &str) -> bool {
        if let (Some(after), Some(through)) = (&self.after, &self.through) {
            if after >= through {
                return false;
            }
        }
        self.through.as_deref().is_none_or(|t| prefix <= t)
            && self
                .after
                .as_deref()
                .is_none_or(|a| prefix > a || a.starts_with(prefix))
    }
}

/// An object store holding one DataJoint store's objects.
pub trait Store: Send + Sync {
    /// The store's name in the DataJoint config, for messages.
    fn name(&self) -> &str;

    /// Lists every object whose key starts with `prefix` (a folder ending in
    /// `/`, or a folder and the start of a name in it, such as
    /// `_schema/subject=`), passing batches of at most [`LIST_BATCH`]
    /// objects to `sink`. A prefix with nothing under it lists nothing,
    /// without error.
    fn list(&self, prefix: &str, sink: &ListSink<'_>) {
        self.list_range(prefix, &KeyRange::ALL, sink);
    }

    /// Lists the objects under `prefix` whose keys lie in `range`, as
    /// [`Store::list`] does, without reading the rest: folders (file) or key
    /// runs (S3) outside the range are never visited.
    fn list_range(&self, prefix: &str, range: &KeyRange, sink: &ListSink<'_>);

    /// Lists each `(prefix, range)` as [`Store::list_range`] does, handing
    /// every batch to `sink` with the index of its section. A store that
    /// lists with a pool of concurrent requests (S3, GCS, Azure) lists all
    /// the sections from one pool, so one section's first requests and
    /// last stragglers overlap the others' instead of leaving the pool
    /// idle; the others list them one after another.
    fn list_sections(&self, sections: &[(&str, &KeyRange)], sink: &SectionSink<'_>) {
        list_in_turn(sections, sink, |prefix, range, sink| {
            self.list_range(prefix, range, sink)
        });
    }

    /// Lists each `(prefix, range)` as [`Store::list_sections`] does, but a
    /// store where reading an object's size and time costs a request of its
    /// own (a file store's `stat`, which on a parallel file system is a
    /// round trip to its metadata server) may leave them unread
    /// ([`ObjectMeta::unstated`]), for the caller to read with
    /// [`Store::head`] for the few objects that need them (those no
    /// reference covers). Stores whose listing carries them anyway list as
    /// `list_sections` does.
    fn list_sections_by_name(&self, sections: &[(&str, &KeyRange)], sink: &SectionSink<'_>) {
        self.list_sections(sections, sink);
    }

    /// Deletes `keys`, all of which start with `section_prefix`; one outcome
    /// per key, in order.
    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>>;

    /// Moves each `(from, to)` pair, never replacing an object at `to`;
    /// every `from` starts with `from_prefix`, and folders emptied by the
    /// moves are pruned up to it as [`Store::delete`] does. One outcome per
    /// pair, in order. A move interrupted by a crash leaves the object at
    /// `from` (possibly also at `to`), never at neither.
    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>>;

    /// The size and modification time of each key, `None` for a key with
    /// no object (S3 `HEAD`): what confirms, just before deletion, that an
    /// orphan found in a lagging listing (an S3 Inventory) is still the
    /// object that was judged. One outcome per key, in order.
    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>>;

    /// The names of the folders directly under `prefix` (ending in `/`):
    /// on S3 the common prefixes of a delimited listing. For hints only (the
    /// schemas a store holds); never used to decide a deletion.
    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError>;

    /// Writes a small object whole (djgc's own manifests), replacing any
    /// object at `key`; readers never see it half written.
    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError>;

    /// Reads a small object whole; `None` when there is none. An object
    /// larger than [`SMALL_OBJECT_LIMIT`], or that is not a regular file,
    /// is an error.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Lists each section with `list_one`, one after another, handing every
/// batch to `sink` with its section's index, until `sink` says stop.
pub(crate) fn list_in_turn(
    sections: &[(&str, &KeyRange)],
    sink: &SectionSink<'_>,
    list_one: impl Fn(&str, &KeyRange, &ListSink<'_>),
) {
    for (index, (prefix, range)) in sections.iter().enumerate() {
        let stopped = std::sync::atomic::AtomicBool::new(false);
        list_one(prefix, range, &|item| {
            let flow = sink(index, item);
            if flow.is_break() {
                stopped.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            flow
        });
        if stopped.into_inner() {
            return;
        }
    }
}

/// The reason a move is refused before it is tried, if any: its source is
/// not a plain path inside `from_prefix`, or its target not a plain path.
pub(crate) fn refuse_move(from_prefix: &str, from: &str, to: &str) -> Option<StoreError> {
    if !key_is_contained(from_prefix, from) {
        return Some(StoreError::new(
            "move",
            from,
            format!("refused: not a plain path inside {from_prefix}"),
        ));
    }
    if !key_is_contained("", to) {
        return Some(StoreError::new(
            "move",
            to,
            "refused: the target is not a plain path",
        ));
    }
    None
}

/// Reads `from` whole, failing (with an error for `key`) past
/// [`SMALL_OBJECT_LIMIT`] bytes.
pub(crate) fn read_small(key: &str, from: impl std::io::Read) -> Result<Vec<u8>, StoreError> {
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut from.take(SMALL_OBJECT_LIMIT + 1), &mut body)
        .map_err(|e| StoreError::new("get", key, e))?;
    if body.len() as u64 > SMALL_OBJECT_LIMIT {
        return Err(too_large(key));
    }
    Ok(body)
}

/// The error for an object too large for [`Store::get`].
pub(crate) fn too_large(key: &str) -> StoreError {
    StoreError::new(
        "get",
        key,
        format!("larger than {SMALL_OBJECT_LIMIT} bytes, which no file djgc writes is"),
    )
}

/// Every key under `prefix`, sorted; the first listing error fails it. For
/// small listings (tests, clearing a fixture): the collector never holds a
/// listing in memory.
pub fn collect_keys(store: &dyn Store, prefix: &str) -> Result<Vec<String>, StoreError> {
    let keys = std::sync::Mutex::new(Vec::new());
    let failure = std::sync::Mutex::new(None);
    store.list(prefix, &|item| match item {
        Listing::Objects(objects) => {
            let mut keys = keys.lock().expect("keys lock");
            keys.extend(objects.into_iter().map(|o| o.key));
            ControlFlow::Continue(())
        }
        Listing::Error(e) => {
            *failure.lock().expect("failure lock") = Some(e);
            ControlFlow::Break(())
        }
    });
    if let Some(e) = failure.into_inner().expect("failure lock") {
        return Err(e);
    }
    let mut keys = keys.into_inner().expect("keys lock");
    keys.sort();
    Ok(keys)
}

/// What one listing of a prefix found, and how fast (`djgc ls`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct ListingCount {
    pub prefix: String,
    pub keys: u64,
    pub bytes: u64,
    pub seconds: f64,
    /// Problems met; the counts leave out what they hid.
    pub errors: Vec<String>,
}

impl ListingCount {
    pub fn keys_per_second(&self) -> f64 {
        self.keys as f64 / self.seconds.max(1e-9)
    }
}

/// Lists `prefix` as the collector does ([`Store::list`]), counting keys
/// and bytes and timing it; `listed` is told of every batch.
pub fn count_listing(
    store: &dyn Store,
    prefix: &str,
    listed: &(dyn Fn(u64) + Sync),
) -> ListingCount {
    let started = std::time::Instant::now();
    let totals = std::sync::Mutex::new((0u64, 0u64, Vec::new()));
    store.list(prefix, &|item| {
        let mut totals = totals.lock().expect("count lock");
        match item {
            Listing::Objects(objects) => {
                listed(objects.len() as u64);
                totals.0 += objects.len() as u64;
                totals.1 += objects.iter().map(|o| o.size).sum::<u64>();
            }
            Listing::Error(e) => totals.2.push(format!("store {}: {e}", store.name())),
        }
        ControlFlow::Continue(())
    });
    let (keys, bytes, errors) = totals.into_inner().expect("count lock");
    ListingCount {
        prefix: prefix.to_string(),
        keys,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
        errors,
    }
}

/// The listing entry of exactly `key`, or `None` when there is none; one
/// small listing (a key is a prefix of itself).
pub fn stat(store: &dyn Store, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
    let found = std::sync::Mutex::new(None);
    let failure = std::sync::Mutex::new(None);
    store.list(key, &|item| match item {
        Listing::Objects(objects) => {
            if let Some(object) = objects.into_iter().find(|o| o.key == key) {
                *found.lock().expect("stat lock") = Some(object);
            }
            ControlFlow::Continue(())
        }
        Listing::Error(e) => {
            *failure.lock().expect("stat lock") = Some(e);
            ControlFlow::Break(())
        }
    });
    match failure.into_inner().expect("stat lock") {
        Some(e) => Err(e),
        None => Ok(found.into_inner().expect("stat lock")),
    }
}

/// The error for a key that a delete call refuses because it lies outside
/// the section being collected.
pub(crate) fn outside_section(section_prefix: &str, key: &str) -> StoreError {
    StoreError::new(
        "delete",
        key,
        format!("refused: not a plain path inside {section_prefix}"),
    )
}

/// Lists `sections` (prefix and range each) of a store whose keys all
/// start with `root` (its `location`), as [`Store::list_sections`] does:
/// `list` runs on `runtime`, given the sections with `root` before them and
/// a bounded channel, while the calling thread hands what arrives, keys made
/// store-relative, to `sink`; a sink that breaks closes the channel, which
/// stops the listing.
pub(crate) fn list_on_runtime<F, Fut>(
    runtime: &tokio::runtime::Runtime,
    root: &str,
    sections: &[(&str, &KeyRange)],
    concurrency: usize,
    sink: &SectionSink<'_>,
    list: F,
) where
    F: FnOnce(Vec<(String, KeyRange)>, tokio::sync::mpsc::Sender<(usize, Listing)>) -> Fut + Send,
    Fut: std::future::Future<Output = ()>,
{
    let rooted = |key: &str| format!("{root}{key}");
    let full: Vec<(String, KeyRange)> = sections
        .iter()
        .map(|(prefix, range)| {
            let range = KeyRange {
                after: range.after.as_deref().map(rooted),
                through: range.through.as_deref().map(rooted),
            };
            (rooted(prefix), range)
        })
        .collect();
    let (tx, mut rx) = tokio::sync::mpsc::channel(concurrency * 2);
    std::thread::scope(|scope| {
        scope.spawn(|| runtime.block_on(list(full, tx)));
        while let Some((index, item)) = rx.blocking_recv() {
            let item = match item {
                Listing::Objects(mut objects) => {
                    for object in &mut objects {
                        object.key.drain(..root.len());
                    }
                    Listing::Objects(objects)
                }
                error => error,
            };
            if sink(index, item).is_break() {
                break;
            }
        }
        drop(rx); // stops the listing if the sink asked to
    });
}

/// Where the pages of one section of a listing go: the channel every
/// section of the listing shares, each page tagged with its section.
#[derive(Clone, Debug)]
pub(crate) struct SectionOut {
    pub index: usize,
    pub tx: tokio::sync::mpsc::Sender<(usize, Listing)>,
}

impl SectionOut {
    /// Hands over `item`; `false` once the consumer has stopped listening.
    pub async fn send(&self, item: Listing) -> bool {
        self.tx.send((self.index, item)).await.is_ok()
    }
}

/// Runs `list` on every part in `stack` and on the parts it returns (the
/// rest of a part it split), depth first, at most `concurrency` at a time,
/// until none is left or `stopped` says the consumer has gone.
pub(crate) async fn list_parts<P, Fut>(
    mut stack: Vec<P>,
    concurrency: usize,
    stopped: impl Fn() -> bool,
    list: impl Fn(P) -> Fut,
) where
    Fut: std::future::Future<Output = Vec<P>>,
{
    let mut running = futures_util::stream::FuturesUnordered::new();
    loop {
        while running.len() < concurrency.max(1) && !stopped() {
            let Some(part) = stack.pop() else { break };
            running.push(list(part));
        }
        match futures_util::StreamExt::next(&mut running).await {
            Some(children) => stack.extend(children),
            None => break,
        }
    }
}

/// Deletes with `delete_batch` those of `keys` that are plain paths inside
/// `section_prefix`, refusing the rest: one outcome per key, in order, as
/// [`Store::delete`] answers. Every object store deletes through it, so no
/// store can be handed a key outside the section.
pub(crate) fn delete_inside(
    section_prefix: &str,
    keys: &[String],
    delete_batch: impl FnOnce(&[&str]) -> Vec<Result<Deleted, StoreError>>,
) -> Vec<Result<Deleted, StoreError>> {
    let mut results: Vec<Option<Result<Deleted, StoreError>>> = Vec::with_capacity(keys.len());
    let mut inside: Vec<(usize, &str)> = Vec::with_capacity(keys.len());
    for (index, key) in keys.iter().enumerate() {
        if key_is_contained(section_prefix, key) {
            inside.push((index, key));
            results.push(None);
        } else {
            results.push(Some(Err(outside_section(section_prefix, key))));
        }
    }
    if !inside.is_empty() {
        let batch: Vec<&str> = inside.iter().map(|&(_, k)| k).collect();
        let deleted = delete_batch(&batch);
        assert_eq!(deleted.len(), batch.len(), "one outcome per key");
        for ((index, _), result) in inside.into_iter().zip(deleted) {
            results[index] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every key answered"))
        .collect()
}

/// Deletes `keys` in chunks of `size` keys, one `batch` call per chunk,
/// `in_flight` chunks at a time; one outcome per key, in order. The
/// batched deletes of GCS (100 a request) and Azure (256).
pub(crate) async fn delete_in_chunks<'a, 'b, F, Fut>(
    keys: &'a [&'b str],
    size: usize,
    in_flight: usize,
    batch: F,
) -> Vec<Result<Deleted, StoreError>>
where
    F: Fn(&'a [&'b str]) -> Fut,
    Fut: std::future::Future<Output = Vec<Result<Deleted, StoreError>>>,
{
    use futures_util::stream::{self, StreamExt};
    stream::iter(keys.chunks(size.max(1)))
        .map(batch)
        .buffered(in_flight.max(1))
        .flat_map(stream::iter)
        .collect()
        .await
}

/// Moves each `(from, to)` pair with `move_one`, `in_flight` at a time,
/// refusing first what [`refuse_move`] refuses; one outcome per pair, in
/// order: [`Store::rename`] of every object store.
pub(crate) async fn move_each<'a, F, Fut>(
    from_prefix: &'a str,
    moves: &'a [(String, String)],
    in_flight: usize,
    move_one: F,
) -> Vec<Result<Moved, StoreError>>
where
    F: Fn(&'a str, &'a str) -> Fut,
    Fut: std::future::Future<Output = Result<Moved, StoreError>>,
{
    use futures_util::stream::{self, StreamExt};
    let move_one = &move_one;
    stream::iter(moves)
        .map(|(from, to)| async move {
            match refuse_move(from_prefix, from, to) {
                Some(refused) => Err(refused),
                None => move_one(from, to).await,
            }
        })
        .buffered(in_flight.max(1))
        .collect()
        .await
}

/// How hard to work a store.
#[derive(Clone, Copy, Debug)]
pub struct OpenOptions {
    /// Threads walking a file store.
    pub jobs: usize,
    /// LIST requests in flight on an object store.
    pub list_concurrency: usize,
}

/// Opens the store a spec describes.
pub fn open(spec: &StoreSpec, options: OpenOptions) -> Result<Box<dyn Store>> {
    match spec.protocol {
        Protocol::File => Ok(Box::new(FsStore::open(spec, options.jobs)?)),
        Protocol::S3 => Ok(Box::new(S3Store::open(spec, options.list_concurrency)?)),
        Protocol::Gcs => Ok(Box::new(GcsStore::open(spec, options.list_concurrency)?)),
        Protocol::Azure => Ok(Box::new(AzureStore::open(spec, options.list_concurrency)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_ranges_and_the_prefixes_they_meet() {
        let range = KeyRange {
            after: Some("_hash/a/g".into()),
            through: Some("_hash/a/p".into()),
        };
        assert!(!range.contains("_hash/a/g"));
        assert!(range.contains("_hash/a/g/x"));
        assert!(range.contains("_hash/a/p"));
        assert!(!range.contains("_hash/a/p/x"));
        // Keys extending the prefix reach into the range from below...
        assert!(range.meets_prefix("_hash/a/"));
        assert!(range.meets_prefix("_hash/a/g"));
        assert!(range.meets_prefix("_hash/a/h/"));
        assert!(range.meets_prefix("_hash/a/p"));
        // ...or lie wholly before or after it.
        assert!(!range.meets_prefix("_hash/a/f/"));
        assert!(!range.meets_prefix("_hash/a/p/"));
        assert!(!range.meets_prefix("_hash/b/"));
        let empty = KeyRange {
            after: Some("b".into()),
            through: Some("b".into()),
        };
        assert!(!empty.meets_prefix("b") && !empty.meets_prefix(""));
        assert!(KeyRange::ALL.meets_prefix("x") && KeyRange::ALL.contains("x"));
    }
}
