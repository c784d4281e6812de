//! One contract, every store: the same checks run against each [`Store`]
//! implementation (memory, file, and the S3 server of `scripts/services.sh`).
//! A new backend joins by adding a `Harness` below.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use djgc::store::{
    AzureStore, Deleted, FsStore, GcsStore, KeyRange, Listing, MemoryStore, Moved, ObjectMeta,
    S3Store, Store, LIST_BATCH,
};
use rayon::prelude::*;

/// A store under test and the way to put objects into it.
trait Harness: Sync {
    fn store(&self) -> &dyn Store;
    fn put(&self, key: &str, content: &[u8], modified: SystemTime);
    /// Whether a listing gives the time `put` was given. S3 gives the
    /// upload time, and the file store the time a file arrived (the later
    /// of its mtime and ctime), which setting an old mtime cannot move back.
    fn keeps_given_time(&self) -> bool {
        true
    }
    /// Whether deleting an absent key says `Missing` (S3 cannot tell).
    fn reports_missing(&self) -> bool {
        true
    }
    /// Whether `put` stores the content (the memory store keeps sizes only).
    fn keeps_content(&self) -> bool {
        true
    }
}

/// An object store reached over the network (S3, GCS, Azure): objects
/// go in with `put` and carry the upload time; cleared when done.
struct Remote<S: Store> {
    store: S,
    reports_missing: bool,
}

impl<S: Store> Drop for Remote<S> {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            crate::common::clear_store(&self.store);
        }
    }
}

impl<S: Store> Harness for Remote<S> {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn put(&self, key: &str, content: &[u8], _modified: SystemTime) {
        self.store.put(key, content.to_vec()).unwrap();
    }
    fn keeps_given_time(&self) -> bool {
        false
    }
    fn reports_missing(&self) -> bool {
        self.reports_missing
    }
}

/// Puts many objects at once (S3 uploads are slow one by one).
fn put_all(h: &dyn Harness, keys: &[String], content: &[u8], modified: SystemTime) {
    keys.par_iter().for_each(|k| h.put(k, content, modified));
}

struct Memory(MemoryStore);

impl Harness for Memory {
    fn store(&self) -> &dyn Store {
        &self.0
    }
    fn put(&self, key: &str, content: &[u8], modified: SystemTime) {
        self.0.insert(key, content.len() as u64, modified);
    }
    fn keeps_content(&self) -> bool {
        false
    }
}

struct Files {
    dir: tempfile::TempDir,
    store: FsStore,
}

impl Files {
    fn new(jobs: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStore::new("conformance", dir.path(), jobs);
        Files { dir, store }
    }
}

impl Harness for Files {
    fn store(&self) -> &dyn Store {
        &self.store
    }
    fn put(&self, key: &str, content: &[u8], modified: SystemTime) {
        crate::common::put_file(self.dir.path(), key, content, modified);
    }
    fn keeps_given_time(&self) -> bool {
        false
    }
}

fn harnesses() -> Vec<(&'static str, Box<dyn Harness>)> {
    let location = crate::common::new_s3_location("conformance");
    let spec = crate::common::s3_spec(
        &location,
        crate::common::S3_ENDPOINT,
        crate::common::S3_SECRET_KEY,
    );
    vec![
        ("memory", Box::new(Memory(MemoryStore::new("conformance")))),
        ("file, 1 thread", Box::new(Files::new(1))),
        ("file, 4 threads", Box::new(Files::new(4))),
        (
            "s3, 16 listers",
            Box::new(Remote {
                store: S3Store::open(&spec, 16).unwrap(),
                reports_missing: false,
            }),
        ),
        (
            "gcs, 16 listers",
            Box::new(Remote {
                store: GcsStore::open(&crate::common::gcs_spec(&location), 16).unwrap(),
                reports_missing: true,
            }),
        ),
        (
            "azure, 16 listers, pages of 100",
            Box::new(Remote {
                store: AzureStore::open(&crate::common::azure_spec(&location), 16)
                    .unwrap()
                    .with_page_size(100),
                reports_missing: true,
            }),
        ),
    ]
}

/// Lists `prefix`, asserting no errors, returning objects by key.
fn list(store: &dyn Store, prefix: &str) -> BTreeMap<String, ObjectMeta> {
    list_range(store, prefix, &KeyRange::ALL)
}

/// Lists the keys under `prefix` in `range`, as [`list`] does.
fn list_range(store: &dyn Store, prefix: &str, range: &KeyRange) -> BTreeMap<String, ObjectMeta> {
    let seen = Mutex::new(Vec::new());
    store.list_range(prefix, range, &|item| {
        match item {
            Listing::Objects(batch) => {
                assert!(batch.len() <= LIST_BATCH);
                seen.lock().unwrap().extend(batch);
            }
            Listing::Error(e) => panic!("listing {prefix}: {e}"),
        }
        ControlFlow::Continue(())
    });
    let seen = seen.into_inner().unwrap();
    let count = seen.len();
    let by_key: BTreeMap<String, ObjectMeta> =
        seen.into_iter().map(|o| (o.key.clone(), o)).collect();
    assert_eq!(by_key.len(), count, "a key was listed twice");
    by_key
}

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

#[test]
fn lists_keys_sizes_and_mtimes_under_a_prefix_only() {
    for (name, h) in harnesses() {
        // S3 keeps whole seconds.
        let before = SystemTime::now() - Duration::from_secs(1);
        h.put(
            "_hash/a/ih23fsttfdzzbrgqrgnsup5b3i",
            b"12345",
            t(1_600_000_000),
        );
        h.put("_schema/a/t/id=1/f_x/0.0", b"ab", t(1_700_000_000));
        h.put(
            "_schema/a/t/id=1/f_x.manifest.json",
            b"{}",
            t(1_700_000_001),
        );
        h.put("_schema/ab/t/id=1/f", b"other schema", t(1_700_000_000));
        h.put("_schema/a.txt", b"beside", t(1_700_000_000));

        let listed = list(h.store(), "_schema/a/");
        let keys: Vec<&str> = listed.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "_schema/a/t/id=1/f_x.manifest.json",
                "_schema/a/t/id=1/f_x/0.0"
            ],
            "{name}"
        );
        let chunk = &listed["_schema/a/t/id=1/f_x/0.0"];
        assert_eq!(chunk.size, 2, "{name}");
        if h.keeps_given_time() {
            assert_eq!(chunk.modified, t(1_700_000_000), "{name}");
        } else {
            // When it arrived, not the old time it was given.
            assert!(
                chunk.modified >= before && chunk.modified <= SystemTime::now(),
                "{name}: {:?}",
                chunk.modified
            );
        }

        let hashes = list(h.store(), "_hash/a/");
        assert_eq!(
            hashes["_hash/a/ih23fsttfdzzbrgqrgnsup5b3i"].size, 5,
            "{name}"
        );
        assert!(list(h.store(), "_schema/nothing/").is_empty(), "{name}");
    }
}

#[test]
fn large_listings_report_every_key_exactly_once() {
    for (name, h) in harnesses() {
        let n = LIST_BATCH * 3 + 17;
        let mut keys: Vec<String> = (0..n)
            .map(|i| format!("_schema/s/t/id={}/f_{i}", i % 37))
            .collect();
        // Names that sort outside printable ASCII, right where a big listing splits.
        keys.extend((0..20).map(|i| format!("_schema/s/\u{e9}t\u{e9}/name=caf\u{e9}{i}/f")));
        keys.extend((0..20).map(|i| format!("_schema/s/~tilde/{i}")));
        keys.push("_schema/s/\u{1F600}".to_string());
        put_all(h.as_ref(), &keys, b"x", t(1_700_000_000));
        let listed: Vec<String> = list(h.store(), "_schema/s/").into_keys().collect();
        keys.sort();
        assert_eq!(listed, keys, "{name}");
    }
}

#[test]
fn key_ranges_partition_a_listing() {
    for (name, h) in harnesses() {
        let mut keys: Vec<String> = ["ab", "g2", "gq", "h7", "zz"]
            .iter()
            .flat_map(|fold| (0..30).map(move |i| format!("_hash/s/{fold}/{fold}{i:024}")))
            .collect();
        keys.extend((0..40).map(|i| format!("_hash/s/flat{i:02}")));
        keys.push("_hash/s/g".to_string());
        put_all(h.as_ref(), &keys, b"x", t(1_700_000_000));
        h.put("_hash/t/g2/x", b"another section", t(1_700_000_000));
        // Bounds that are a stored key, a folder, a folder with its slash,
        // and a string between keys.
        let bounds = [
            "_hash/s/g",
            "_hash/s/g2",
            "_hash/s/gq/",
            &format!("_hash/s/gq/gq{:024}", 11),
            "_hash/s/flat2",
        ];
        let mut cuts: Vec<Option<String>> = bounds.iter().map(|b| Some(b.to_string())).collect();
        cuts.sort();
        cuts.insert(0, None);
        cuts.push(None);
        let mut listed = Vec::new();
        for pair in cuts.windows(2) {
            let range = KeyRange {
                after: pair[0].clone(),
                through: pair[1].clone(),
            };
            let part = list_range(h.store(), "_hash/s/", &range);
            assert!(part.keys().all(|k| range.contains(k)), "{name}: {range:?}");
            listed.extend(part.into_keys());
        }
        keys.sort();
        listed.sort();
        let missing: Vec<&String> = keys.iter().filter(|k| !listed.contains(k)).collect();
        assert_eq!(listed.len(), keys.len(), "{name}: missing {missing:?}");
        assert_eq!(listed, keys, "{name}: every key in exactly one range");
    }
}

#[test]
fn sections_listed_together_each_get_what_they_would_alone() {
    for (name, h) in harnesses() {
        let mut keys: Vec<String> = (0..LIST_BATCH + 300)
            .map(|i| format!("_hash/s/{:02}/{i:026}", i % 40))
            .collect();
        keys.extend((0..700).map(|i| format!("_schema/s/t/id={i}/f")));
        keys.extend((0..50).map(|i| format!("_schema/s2/t/id={i}/f")));
        put_all(h.as_ref(), &keys, b"x", t(1_700_000_000));
        let cut = KeyRange {
            after: Some("_hash/s/20".to_string()),
            through: None,
        };
        let sections: [(&str, &KeyRange); 5] = [
            ("_hash/s/", &KeyRange::ALL),
            ("_schema/s/", &KeyRange::ALL),
            ("_schema/s/t/id=1", &KeyRange::ALL), // ends inside a name; overlaps the one above
            ("_hash/s/", &cut),
            ("_schema/nothing/", &KeyRange::ALL),
        ];
        let seen = Mutex::new(vec![Vec::new(); sections.len()]);
        h.store().list_sections(&sections, &|index, item| {
            match item {
                Listing::Objects(batch) => {
                    assert!(batch.len() <= LIST_BATCH);
                    seen.lock().unwrap()[index].extend(batch.into_iter().map(|o| o.key));
                }
                Listing::Error(e) => panic!("{name}: listing section {index}: {e}"),
            }
            ControlFlow::Continue(())
        });
        for (listed, (prefix, range)) in seen.into_inner().unwrap().into_iter().zip(sections) {
            let alone: Vec<String> = list_range(h.store(), prefix, range).into_keys().collect();
            let mut sorted = listed.clone();
            sorted.sort();
            assert_eq!(sorted.len(), listed.len(), "{name}: {prefix}");
            assert_eq!(sorted, alone, "{name}: {prefix} {range:?}");
        }
    }
}

#[test]
fn a_listing_by_name_lists_the_same_objects_and_head_reads_what_it_left_unread() {
    for (name, h) in harnesses() {
        let keys: Vec<String> = (0..LIST_BATCH + 100)
            .map(|i| format!("_hash/s/{:02}/{i:026}", i % 40))
            .chain((0..300).map(|i| format!("_schema/s/t/id={i}/f")))
            .collect();
        put_all(h.as_ref(), &keys, b"seven b", t(1_600_000_000));
        let cut = KeyRange {
            after: Some("_hash/s/20".to_string()),
            through: None,
        };
        let sections: [(&str, &KeyRange); 2] = [("_hash/s/", &cut), ("_schema/s/", &KeyRange::ALL)];
        let seen = Mutex::new(vec![Vec::new(); sections.len()]);
        h.store().list_sections_by_name(&sections, &|index, item| {
            match item {
                Listing::Objects(batch) => {
                    assert!(batch.len() <= LIST_BATCH);
                    seen.lock().unwrap()[index].extend(batch);
                }
                Listing::Error(e) => panic!("{name}: listing section {index}: {e}"),
            }
            ControlFlow::Continue(())
        });
        for (listed, (prefix, range)) in seen.into_inner().unwrap().into_iter().zip(sections) {
            let stated = list_range(h.store(), prefix, range);
            let by_name: BTreeMap<String, ObjectMeta> =
                listed.into_iter().map(|o| (o.key.clone(), o)).collect();
            assert_eq!(
                by_name.keys().collect::<Vec<_>>(),
                stated.keys().collect::<Vec<_>>(),
                "{name}: {prefix}"
            );
            let unread: Vec<String> = by_name
                .values()
                .filter(|o| !o.is_stated())
                .map(|o| o.key.clone())
                .collect();
            for (object, meta) in by_name
                .values()
                .filter(|o| o.is_stated())
                .map(|o| (o, &stated[&o.key]))
            {
                assert_eq!(object, meta, "{name}: what it reads, it reads right");
            }
            for (key, read) in unread.iter().zip(h.store().head(&unread)) {
                assert_eq!(read.unwrap().as_ref(), Some(&stated[key]), "{name}: {key}");
            }
            if name.starts_with("file") {
                assert_eq!(
                    unread.len(),
                    stated.len(),
                    "{name}: a file store stats none"
                );
            }
        }
    }
}

#[test]
fn head_tells_size_and_time_of_objects_only() {
    for (name, h) in harnesses() {
        h.put("_schema/s/t/id=1/f_x/0.0", b"chunk", t(1_700_000_000));
        h.put("_schema/s/t/id=2/f.npy", b"array", t(1_600_000_000));
        let keys = [
            "_schema/s/t/id=2/f.npy",
            "_schema/s/t/id=1/f_x",
            "_schema/s/t/id=3/missing",
        ]
        .map(String::from);
        let found: Vec<Option<ObjectMeta>> = h
            .store()
            .head(&keys)
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let listed = &list(h.store(), "_schema/s/t/id=2/")["_schema/s/t/id=2/f.npy"];
        assert_eq!(
            found[0].as_ref(),
            Some(listed),
            "{name}: HEAD and LIST agree"
        );
        assert_eq!(found[1], None, "{name}: a folder is not an object");
        assert_eq!(found[2], None, "{name}");
    }
}

#[test]
fn folders_are_the_names_directly_under_a_prefix() {
    for (name, h) in harnesses() {
        for key in [
            "_hash/a/ab/x",
            "_hash/a/cd/y",
            "_hash/b/z",
            "_hash/c.txt",
            "_schema/d/t/f",
        ] {
            h.put(key, b"x", t(1_700_000_000));
        }
        let folders = h.store().list_folders("_hash/").unwrap();
        assert_eq!(folders, ["a", "b"], "{name}");
        assert!(
            h.store().list_folders("_nothing/").unwrap().is_empty(),
            "{name}"
        );
    }
}

#[test]
fn a_listing_stops_when_the_sink_says_so() {
    for (name, h) in harnesses() {
        let keys: Vec<String> = (0..LIST_BATCH * 4)
            .map(|i| format!("_schema/s/f_{i}"))
            .collect();
        put_all(h.as_ref(), &keys, b"x", t(1_700_000_000));
        let calls = Mutex::new(0);
        h.store().list("_schema/s/", &|_| {
            *calls.lock().unwrap() += 1;
            ControlFlow::Break(())
        });
        assert_eq!(*calls.lock().unwrap(), 1, "{name}");
    }
}

#[test]
fn a_listing_of_sections_stops_when_the_sink_says_so() {
    for (name, h) in harnesses() {
        let keys: Vec<String> = (0..LIST_BATCH * 2)
            .map(|i| format!("_schema/{}/f_{i}", i % 2))
            .collect();
        put_all(h.as_ref(), &keys, b"x", t(1_700_000_000));
        let calls = Mutex::new(0);
        let sections = [
            ("_schema/0/", &KeyRange::ALL),
            ("_schema/1/", &KeyRange::ALL),
        ];
        h.store().list_sections(&sections, &|_, _| {
            *calls.lock().unwrap() += 1;
            ControlFlow::Break(())
        });
        assert_eq!(*calls.lock().unwrap(), 1, "{name}");
    }
}

#[test]
fn delete_removes_exactly_the_given_keys() {
    for (name, h) in harnesses() {
        for key in [
            "_schema/s/t/id=1/f",
            "_schema/s/t/id=2/f",
            "_schema/s/t/id=3/f",
        ] {
            h.put(key, b"x", t(1_700_000_000));
        }
        let keys = vec![
            "_schema/s/t/id=1/f".to_string(),
            "_schema/s/t/id=9/missing".to_string(),
            "_schema/other/t/id=2/f".to_string(),
            "_schema/s/t/../../other/x".to_string(),
        ];
        let outcomes = h.store().delete("_schema/s/", &keys);
        assert_eq!(outcomes.len(), 4, "{name}");
        assert_eq!(outcomes[0].as_ref().unwrap(), &Deleted::Removed, "{name}");
        // A key already gone is never an error; stores that can tell say Missing.
        let gone = outcomes[1].as_ref().unwrap();
        match h.reports_missing() {
            true => assert_eq!(gone, &Deleted::Missing, "{name}"),
            false => assert!(
                matches!(gone, Deleted::Missing | Deleted::Removed),
                "{name}"
            ),
        }
        assert!(
            outcomes[2].is_err() && outcomes[3].is_err(),
            "{name}: escaped its section"
        );
        let left: Vec<String> = list(h.store(), "_schema/s/").into_keys().collect();
        assert_eq!(left, ["_schema/s/t/id=2/f", "_schema/s/t/id=3/f"], "{name}");
    }
}

#[test]
fn file_store_prunes_empty_folders_up_to_the_section_root() {
    let h = Files::new(2);
    h.put("_schema/s/t/id=1/obj_x/0.0", b"x", t(1_700_000_000));
    h.put("_schema/s/t/id=1/obj_x/0.1", b"x", t(1_700_000_000));
    h.put("_schema/s/t/id=2/f", b"x", t(1_700_000_000));
    let keys = vec![
        "_schema/s/t/id=1/obj_x/0.0".to_string(),
        "_schema/s/t/id=1/obj_x/0.1".to_string(),
    ];
    assert!(h
        .store
        .delete("_schema/s/", &keys)
        .iter()
        .all(|r| r.is_ok()));
    assert!(!h.dir.path().join("_schema/s/t/id=1").exists());
    assert!(h.dir.path().join("_schema/s/t/id=2/f").exists());

    let last = vec!["_schema/s/t/id=2/f".to_string()];
    assert!(h.store.delete("_schema/s/", &last)[0].is_ok());
    assert!(!h.dir.path().join("_schema/s/t").exists());
    assert!(
        h.dir.path().join("_schema/s").is_dir(),
        "the section root itself stays"
    );
}

#[test]
fn file_store_never_follows_links() {
    let h = Files::new(2);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), b"outside").unwrap();
    h.put("_schema/s/t/id=1/f", b"x", t(1_700_000_000));
    std::os::unix::fs::symlink(outside.path(), h.dir.path().join("_schema/s/t/linkdir")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret"),
        h.dir.path().join("_schema/s/t/linkfile"),
    )
    .unwrap();
    let keys: Vec<String> = list(&h.store, "_schema/s/").into_keys().collect();
    assert_eq!(keys, ["_schema/s/t/id=1/f"]);
}

#[test]
fn file_store_reports_a_section_root_that_is_not_a_folder() {
    let h = Files::new(2);
    h.put("_schema/z", b"x", t(1_700_000_000));
    let errors = Mutex::new(Vec::new());
    h.store.list("_schema/z/", &|item| {
        if let Listing::Error(e) = item {
            errors.lock().unwrap().push(e.to_string());
        }
        ControlFlow::Continue(())
    });
    assert_eq!(errors.into_inner().unwrap().len(), 1);
}

#[test]
fn a_prefix_may_end_inside_a_name() {
    // Partitioned sections are listed by prefixes such as `_schema/subject=`.
    for (name, h) in harnesses() {
        for key in [
            "_schema/subject=1/s/t/f_a",
            "_schema/subject=2/session=3/s/t/f_b",
            "_schema/subjects/s/t/f_c",
            "_schema/s/t/f_d",
        ] {
            h.put(key, b"x", t(1_700_000_000));
        }
        let listed: Vec<String> = list(h.store(), "_schema/subject=").into_keys().collect();
        assert_eq!(
            listed,
            [
                "_schema/subject=1/s/t/f_a",
                "_schema/subject=2/session=3/s/t/f_b"
            ],
            "{name}"
        );
        let outcomes = h.store().delete(
            "_schema/subject=",
            &["_schema/subject=2/session=3/s/t/f_b".to_string()],
        );
        assert!(outcomes[0].is_ok(), "{name}");
        let left: Vec<String> = list(h.store(), "_schema/").into_keys().collect();
        assert_eq!(
            left,
            [
                "_schema/s/t/f_d",
                "_schema/subject=1/s/t/f_a",
                "_schema/subjects/s/t/f_c"
            ],
            "{name}"
        );
    }
}

#[test]
fn file_store_prunes_emptied_partition_folders() {
    let h = Files::new(2);
    h.put(
        "_schema/subject=2/session=3/s/t/f_b",
        b"x",
        t(1_700_000_000),
    );
    let key = vec!["_schema/subject=2/session=3/s/t/f_b".to_string()];
    assert!(h.store.delete("_schema/subject=", &key)[0].is_ok());
    assert!(!h.dir.path().join("_schema/subject=2").exists());
    assert!(h.dir.path().join("_schema").is_dir());
}

#[test]
fn file_store_refuses_a_link_on_the_way_to_a_section() {
    let h = Files::new(2);
    let outside = tempfile::tempdir().unwrap();
    crate::common::put_file(outside.path(), "s/t/f", b"outside", t(1_700_000_000));
    std::os::unix::fs::symlink(outside.path(), h.dir.path().join("_schema")).unwrap();
    let errors = Mutex::new(Vec::new());
    h.store.list("_schema/s/", &|item| {
        match item {
            Listing::Error(e) => errors.lock().unwrap().push(e.to_string()),
            Listing::Objects(o) => panic!("listed through a link: {o:?}"),
        }
        ControlFlow::Continue(())
    });
    let errors = errors.into_inner().unwrap();
    assert!(
        errors.len() == 1 && errors[0].contains("symbolic link"),
        "{errors:?}"
    );
}

#[test]
fn rename_moves_without_ever_replacing() {
    for (name, h) in harnesses() {
        h.put("_schema/s/t/id=1/f", b"one", t(1_700_000_000));
        h.put("_schema/s/t/id=2/f", b"two", t(1_700_000_000));
        h.put(
            "_trash/r/_schema/s/t/id=2/f",
            b"already there",
            t(1_700_000_000),
        );
        h.put("_schema/s/t/id=4/f", b"four", t(1_700_000_000));
        let moves: Vec<(String, String)> = [
            ("_schema/s/t/id=1/f", "_trash/r/_schema/s/t/id=1/f"),
            ("_schema/s/t/id=2/f", "_trash/r/_schema/s/t/id=2/f"),
            ("_schema/s/t/id=3/f", "_trash/r/_schema/s/t/id=3/f"),
            ("_schema/other/t/f", "_trash/r/_schema/other/t/f"),
            ("_schema/s/t/id=4/f", "../outside"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        let outcomes = h.store().rename("_schema/s/", &moves);
        assert_eq!(outcomes[0].as_ref().unwrap(), &Moved::Done, "{name}");
        assert_eq!(
            outcomes[1].as_ref().unwrap(),
            &Moved::TargetExists,
            "{name}"
        );
        assert_eq!(
            outcomes[2].as_ref().unwrap(),
            &Moved::SourceMissing,
            "{name}"
        );
        assert!(outcomes[3].is_err() && outcomes[4].is_err(), "{name}");

        let keys: Vec<String> = list(h.store(), "").into_keys().collect();
        assert_eq!(
            keys,
            [
                "_schema/s/t/id=2/f",
                "_schema/s/t/id=4/f",
                "_trash/r/_schema/s/t/id=1/f",
                "_trash/r/_schema/s/t/id=2/f"
            ],
            "{name}"
        );
        if !h.keeps_content() {
            continue;
        }
        let moved = h.store().get("_trash/r/_schema/s/t/id=1/f").unwrap();
        assert_eq!(moved.as_deref(), Some(&b"one"[..]), "{name}");
        let kept = h.store().get("_trash/r/_schema/s/t/id=2/f").unwrap();
        assert_eq!(kept.as_deref(), Some(&b"already there"[..]), "{name}");
    }
}

#[test]
fn put_and_get_round_trip_whole_objects() {
    for (name, h) in harnesses() {
        assert_eq!(h.store().get("_trash/r/run.json").unwrap(), None, "{name}");
        let body: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        h.store().put("_trash/r/run.json", body.clone()).unwrap();
        h.store().put("_trash/r/run.json", body.clone()).unwrap();
        assert_eq!(
            h.store().get("_trash/r/run.json").unwrap(),
            Some(body),
            "{name}"
        );
        let keys: Vec<String> = list(h.store(), "_trash/").into_keys().collect();
        assert_eq!(
            keys,
            ["_trash/r/run.json"],
            "{name}: a temporary file was left"
        );
    }
}

#[test]
fn cloud_stores_refuse_bad_credentials_naming_where_they_came_from() {
    let location = format!("t/{}", crate::common::unique_schema("denied"));
    let mut spec = crate::common::azure_spec(&location);
    let wrong_key = crate::common::AZURE_CONNECTION.replace("AccountKey=Eby8", "AccountKey=Xby8");
    spec.azure.as_mut().unwrap().connection_string = Some(djgc::config::Secret::new(wrong_key));
    let e = AzureStore::open(&spec, 4).unwrap_err().to_string();
    assert!(
        e.contains("access denied") && e.contains("AccountKey of connection_string"),
        "{e}"
    );
    assert!(!e.contains("Xby8"), "the key leaked: {e}");

    let mut spec = crate::common::azure_spec(&location);
    spec.azure.as_mut().unwrap().container = "no-such-container".into();
    let e = AzureStore::open(&spec, 4).unwrap_err().to_string();
    assert!(e.contains("container does not exist"), "{e}");

    let mut spec = crate::common::gcs_spec(&location);
    spec.gcs.as_mut().unwrap().token = djgc::config::GcsToken::File("/nonexistent/sa.json".into());
    let e = GcsStore::open(&spec, 4).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/sa.json"), "{e}");

    let mut spec = crate::common::gcs_spec(&location);
    spec.gcs.as_mut().unwrap().bucket = "no-such-bucket".into();
    let e = GcsStore::open(&spec, 4).unwrap_err().to_string();
    assert!(e.contains("bucket does not exist"), "{e}");
}
