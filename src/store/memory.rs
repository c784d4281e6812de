//! An in-memory store: the fast stand-in for unit tests and benchmarks.
//!
//! It keeps the [`Store`] contract (checked by the same conformance suite as
//! the real stores) but has no folders, so nothing is pruned.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::SystemTime;

use super::{
    key_is_contained, outside_section, Deleted, ListSink, Listing, ObjectMeta, Store, StoreError,
    LIST_BATCH,
};

/// Objects held in a sorted map, so a prefix listing is a range scan.
#[derive(Debug, Default)]
pub struct MemoryStore {
    name: String,
    objects: Mutex<BTreeMap<String, (u64, SystemTime)>>,
}

impl MemoryStore {
    pub fn new(name: &str) -> Self {
        MemoryStore {
            name: name.to_string(),
            objects: Mutex::default(),
        }
    }

    /// Adds or replaces an object.
    pub fn put(&self, key: &str, size: u64, modified: SystemTime) {
        self.objects
            .lock()
            .expect("memory store lock")
            .insert(key.to_string(), (size, modified));
    }
}

impl Store for MemoryStore {
    fn name(&self) -> &str {
        &self.name
    }

    fn list(&self, prefix: &str, sink: &ListSink<'_>) {
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
                    .take(LIST_BATCH)
                    .map(|(k, &(size, modified))| ObjectMeta {
                        key: k.clone(),
                        size,
                        modified,
                    })
                    .collect()
            };
            let Some(last) = batch.last() else { return };
            after = Some(last.key.clone());
            let full = batch.len() == LIST_BATCH;
            if !sink(Listing::Objects(batch)) || !full {
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
}
