//! An in-memory store: the fast stand-in for unit tests and benchmarks.
//!
//! It keeps the [`Store`] contract (checked by the same conformance suite as
//! the real stores) but has no folders, so nothing is pruned. Objects added
//! with [`MemoryStore::insert`] have a size but no content.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{
    outside_section, refuse_move, Deleted, KeyRange, ListSink, Listing, Moved, ObjectMeta, Store,
    StoreError, LIST_BATCH,
};
use crate::keys::key_is_contained;

#[derive(Debug)]
struct Object {
    size: u64,
    modified: SystemTime,
    content: Vec<u8>,
}

/// Objects held in a sorted map, so a prefix listing is a range scan.
#[derive(Debug, Default)]
pub struct MemoryStore {
    name: String,
    objects: Mutex<BTreeMap<String, Object>>,
}

impl MemoryStore {
    pub fn new(name: &str) -> Self {
        MemoryStore {
            name: name.to_string(),
            objects: Mutex::default(),
        }
    }

    /// Adds or replaces an object of `size` bytes, without content.
    pub fn insert(&self, key: &str, size: u64, modified: SystemTime) {
        let object = Object {
            size,
            modified,
            content: Vec::new(),
        };
        self.objects
            .lock()
            .expect("memory store lock")
            .insert(key.to_string(), object);
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list_range(&self, prefix: &str, wanted: &KeyRange, sink: &ListSink<'_>) {
        // Copy out one batch at a time so the lock is not held across `sink`.
        let mut after: Option<String> = None;
        loop {
            let batch: Vec<ObjectMeta> = {
                let objects = self.objects.lock().expect("memory store lock");
                let range = match &after {
                    None => objects.range::<str, _>((
                        std::ops::Bound::Included(prefix),
                        std::ops::Bound::Unbounded,
                    )),
                    Some(last) => objects.range::<str, _>((
                        std::ops::Bound::Excluded(last.as_str()),
                        std::ops::Bound::Unbounded,
                    )),
                };
                range
                    .take_while(|(k, _)| k.starts_with(prefix))
                    .filter(|(k, _)| wanted.contains(k))
                    .take(LIST_BATCH)
                    .map(|(k, o)| ObjectMeta {
                        key: k.clone(),
                        size: o.size,
                        modified: o.modified,
                    })
                    .collect()
            };
            let Some(last) = batch.last() else { return };
            after = Some(last.key.clone());
            let full = batch.len() == LIST_BATCH;
            if sink(Listing::Objects(batch)).is_break() || !full {
                return;
            }
        }
    }

    fn delete(&self, section_prefix: &str, keys: &[String]) -> Vec<Result<Deleted, StoreError>> {
        let mut objects = self.objects.lock().expect("memory store lock");
        keys.iter()
            .map(|key| {
                if !key_is_contained(section_prefix, key) {
                    return Err(outside_section(section_prefix, key));
                }
                Ok(match objects.remove(key) {
                    Some(_) => Deleted::Removed,
                    None => Deleted::Missing,
                })
            })
            .collect()
    }

    fn rename(
        &self,
        from_prefix: &str,
        moves: &[(String, String)],
    ) -> Vec<Result<Moved, StoreError>> {
        let mut objects = self.objects.lock().expect("memory store lock");
        moves
            .iter()
            .map(|(from, to)| {
                if let Some(refused) = refuse_move(from_prefix, from, to) {
                    return Err(refused);
                }
                if objects.contains_key(to) {
                    return Ok(Moved::TargetExists);
                }
                Ok(match objects.remove(from) {
                    Some(object) => {
                        objects.insert(to.clone(), object);
                        Moved::Done
                    }
                    None => Moved::SourceMissing,
                })
            })
            .collect()
    }

    fn list_folders(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let objects = self.objects.lock().expect("memory store lock");
        let mut folders: Vec<String> = objects
            .keys()
            .filter_map(|k| k.strip_prefix(prefix)?.split_once('/'))
            .map(|(folder, _)| folder.to_string())
            .collect();
        folders.dedup();
        Ok(folders)
    }

    fn head(&self, keys: &[String]) -> Vec<Result<Option<ObjectMeta>, StoreError>> {
        let objects = self.objects.lock().expect("memory store lock");
        keys.iter()
            .map(|key| {
                Ok(objects.get(key).map(|o| ObjectMeta {
                    key: key.clone(),
                    size: o.size,
                    modified: o.modified,
                }))
            })
            .collect()
    }

    fn put(&self, key: &str, body: Vec<u8>) -> Result<(), StoreError> {
        let object = Object {
            size: body.len() as u64,
            modified: SystemTime::now(),
            content: body,
        };
        self.objects
            .lock()
            .expect("memory store lock")
            .insert(key.to_string(), object);
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let objects = self.objects.lock().expect("memory store lock");
        Ok(objects.get(key).map(|o| o.content.clone()))
    }
}
