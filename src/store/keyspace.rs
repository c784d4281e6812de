//! Parallel listing of a flat key space, for object stores with paged LIST.
//!
//! One paginated LIST stream returns 1,000 keys per request, so at 50 ms a
//! request a section of 100 million keys takes 1.4 hours to list. This
//! module splits the key space into parts that are listed concurrently,
//! using only what every S3 server implements (`Prefix` and `StartAfter`,
//! continuation tokens), and learns where to split from the pages
//! themselves, so almost every request returns a full page:
//!
//! * A part is a prefix `P`, optionally with `StartAfter` `A` and `skip`
//!   prefixes whose keys belong to other parts (a split part passes on the
//!   skips that still reach into each of its pieces). It is listed flat (no
//!   delimiter: a schema section with one folder per row costs one request
//!   per 1,000 keys, not one per row).
//! * A part may also end at a key `E`: it holds the keys up to `E`, and stops
//!   paging at the first key beyond it (the next part starts after `E`).
//! * When a page is truncated, its keys are kept and the rest of the part is
//!   split at the page's last key `L`, whose next character after `P` is
//!   `c`: the keys of `P+c` after `L`, and the keys of `P` after every `P+c`
//!   key (`StartAfter` `P+c+U+10FFFF`, skipping `P+c` keys that sort above
//!   that bound, which the first part lists). When the next characters left
//!   for that second part span an ASCII range, it is cut at the middle
//!   character `m` into the keys up to `P+m+U+10FFFF` and those after it, so
//!   a section whose first characters each hold less than a page (a hash
//!   section of 20,000 keys) still fans out instead of listing in a chain.
//!   Every part splits again when its first page is truncated, so the parts
//!   multiply with every round of requests until there are `concurrency` of
//!   them, and a long common prefix (`_schema/s/table/id=`) costs one
//!   request per character at most, each of which still returns a full page.
//!
//! Only keys that start with a part's prefix are taken from its pages. A
//! server that rewrites prefixes (SeaweedFS treats keys as paths, so `a//`
//! lists like `a/`) gives a part keys outside its prefix: such a part lists
//! nothing (there, no key can hold `//`).
//!
//! The parts partition the keys under the listed prefix, so every key is
//! listed exactly once whatever the names. Parts are run depth first from a
//! stack, at most `concurrency` at a time, and every page is handed over a
//! bounded channel: a slow consumer stops the requests. The sections of a
//! scan start on one stack: listed one after another, each would pay its
//! own ramp (the parts double once per round trip) and tail (its last
//! parts finishing alone); from one stack, the other sections' parts fill
//! the pool while one section starts or ends.

use std::future::Future;

use tokio::sync::mpsc;

use super::{list_parts, KeyRange, Listing, ObjectMeta, SectionOut, StoreError};

/// One page of a flat listing; `next` is the continuation token, if any.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<ObjectMeta>,
    pub next: Option<String>,
}

/// A store that lists one page of keys at a time, in key order.
pub trait PageLister: Send + Sync {
    /// Keys starting with `prefix`, after `start_after` if given, from
    /// `token` on; keys in ascending (byte) order.
    fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        token: Option<&str>,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// One part of the key space.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Part {
    prefix: String,
    start_after: Option<String>,
    /// The part's last possible key; greater keys belong to another part.
    end: Option<String>,
    /// Keys with one of these prefixes belong to another part.
    skip: Vec<String>,
}

/// Sorts after every key that continues a prefix with a valid UTF-8
/// character (U+10FFFF encodes as the greatest byte sequence).
const AFTER_ALL: char = '\u{10FFFF}';

impl Part {
    /// The parts holding the keys under `prefix` in `range`. A server that
    /// keeps keys as paths (SeaweedFS) takes `StartAfter` `X` to mean after
    /// the folder `X` and everything in it, so the keys under `X/` (which
    /// sort after `X`) are a part of their own; and a range that starts
    /// before `prefix` is listed from the prefix's first key.
    fn within(prefix: String, range: &KeyRange) -> Vec<Self> {
        let Some(after) = range.after.as_ref().filter(|a| **a >= prefix) else {
            return vec![Part {
                prefix,
                start_after: None,
                end: range.through.clone(),
                skip: Vec::new(),
            }];
        };
        let folder = format!("{after}/");
        let mut parts = vec![Part {
            prefix: prefix.clone(),
            start_after: Some(after.clone()),
            end: range.through.clone(),
            skip: vec![folder.clone()],
        }];
        if folder.starts_with(&prefix) {
            parts.push(Part {
                prefix: folder,
                start_after: None,
                end: range.through.clone(),
                skip: Vec::new(),
            });
        }
        parts
    }

    /// The parts holding this part's keys after `last`, a key of it; `None`
    /// when `last` cannot split it (it is the prefix itself, or belongs to
    /// the skipped keys), and paging must go on instead.
    fn split_after(&self, last: &str) -> Option<Vec<Part>> {
        let c = last.strip_prefix(self.prefix.as_str())?.chars().next()?;
        let branch = format!("{}{c}", self.prefix);
        if self.skips(last) {
            return None;
        }
        let mut parts = vec![Part {
            prefix: branch.clone(),
            start_after: Some(last.to_string()),
            end: self.end.clone(),
            skip: self.skips_after(&branch, last),
        }];
        let rest_start = format!("{branch}{AFTER_ALL}");
        let mut rest_skip = self.skips_after(&self.prefix, &rest_start);
        rest_skip.push(branch);
        match self.middle_after(c) {
            Some(middle) => {
                let cut = format!("{}{middle}{AFTER_ALL}", self.prefix);
                parts.push(Part {
                    prefix: self.prefix.clone(),
                    start_after: Some(rest_start),
                    end: Some(cut.clone()),
                    skip: rest_skip,
                });
                parts.push(Part {
                    prefix: self.prefix.clone(),
                    skip: self.skips_after(&self.prefix, &cut),
                    start_after: Some(cut),
                    end: self.end.clone(),
                });
            }
            None => parts.push(Part {
                prefix: self.prefix.clone(),
                start_after: Some(rest_start),
                end: self.end.clone(),
                skip: rest_skip,
            }),
        }
        Some(parts)
    }

    /// Whether `key` belongs to another part by one of this part's skips.
    fn skips(&self, key: &str) -> bool {
        self.skip.iter().any(|skip| key.starts_with(skip.as_str()))
    }

    /// This part's skips that still matter to a part of the keys under
    /// `prefix` after `start`: those naming keys of it (a skip's keys all
    /// before `start` can be dropped, so the list stays short).
    fn skips_after(&self, prefix: &str, start: &str) -> Vec<String> {
        self.skip
            .iter()
            .filter(|skip| skip.starts_with(prefix) || prefix.starts_with(skip.as_str()))
            .filter(|skip| skip.as_str() >= start || start.starts_with(skip.as_str()))
            .cloned()
            .collect()
    }

    /// The character halfway between `c` and the last next character this
    /// part can hold, when both are ASCII and at least two characters lie
    /// between them.
    fn middle_after(&self, c: char) -> Option<char> {
        let last = match &self.end {
            None => '~',
            Some(end) => end.strip_prefix(self.prefix.as_str())?.chars().next()?,
        };
        let (low, high) = (u32::from(c) + 1, u32::from(last));
        (last.is_ascii() && high > low).then(|| char::from_u32((low + high) / 2))?
    }

    /// Whether `key` lies beyond this part's end.
    fn is_past_end(&self, key: &str) -> bool {
        self.end.as_deref().is_some_and(|end| key > end)
    }
}

/// Lists every key of `sections` (prefix and range each) with up to
/// `concurrency` requests in flight, all the sections' parts from one pool,
/// sending pages tagged with their section's index to `out`; stops early
/// when `out` is closed.
pub async fn list_parallel<L: PageLister>(
    lister: &L,
    sections: Vec<(String, KeyRange)>,
    concurrency: usize,
    out: mpsc::Sender<(usize, Listing)>,
) {
    let stack: Vec<(SectionOut, Part)> = sections
        .into_iter()
        .enumerate()
        .flat_map(|(index, (prefix, range))| {
            let section = SectionOut {
                index,
                tx: out.clone(),
            };
            Part::within(prefix, &range)
                .into_iter()
                .map(move |part| (section.clone(), part))
        })
        .collect();
    list_parts(
        stack,
        concurrency,
        || out.is_closed(),
        |(section, part)| async move {
            let children = list_part(lister, part, &section).await;
            children
                .into_iter()
                .map(|child| (section.clone(), child))
                .collect()
        },
    )
    .await;
}

/// Lists one part; returns the parts the rest of it was split into, if any.
async fn list_part<L: PageLister>(lister: &L, part: Part, out: &SectionOut) -> Vec<Part> {
    let mut token: Option<String> = None;
    loop {
        let page = match lister
            .list_page(&part.prefix, part.start_after.as_deref(), token.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                out.send(Listing::Error(e)).await;
                return Vec::new();
            }
        };
        if token.is_none()
            && page
                .objects
                .iter()
                .any(|o| !o.key.starts_with(&part.prefix))
        {
            return Vec::new(); // the server rewrote this prefix: it holds nothing
        }
        let last = page.objects.last().map(|o| o.key.clone());
        let past_end = last.as_deref().is_some_and(|l| part.is_past_end(l));
        let objects: Vec<ObjectMeta> = page
            .objects
            .into_iter()
            .filter(|o| !part.is_past_end(&o.key) && !part.skips(&o.key))
            .collect();
        if !objects.is_empty() && !out.send(Listing::Objects(objects)).await {
            return Vec::new();
        }
        let Some(next) = page.next.filter(|_| !past_end) else {
            return Vec::new();
        };
        if let Some(parts) = last.as_deref().and_then(|l| part.split_after(l)) {
            return parts;
        }
        token = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::UNIX_EPOCH;

    use super::*;

    /// A server with tiny pages, listing a sorted set of keys.
    struct FakeServer {
        keys: BTreeSet<String>,
        page_size: usize,
        requests: AtomicUsize,
        /// Collapse `//` in prefixes, as SeaweedFS does.
        collapse_slashes: bool,
        /// Requests being answered now, and the most at any time.
        in_flight: AtomicUsize,
        most_in_flight: AtomicUsize,
    }

    impl FakeServer {
        fn new(keys: &[String], page_size: usize, collapse_slashes: bool) -> FakeServer {
            FakeServer {
                keys: keys.iter().cloned().collect(),
                page_size,
                requests: AtomicUsize::new(0),
                collapse_slashes,
                in_flight: AtomicUsize::new(0),
                most_in_flight: AtomicUsize::new(0),
            }
        }
    }

    impl PageLister for FakeServer {
        async fn list_page(
            &self,
            prefix: &str,
            start_after: Option<&str>,
            token: Option<&str>,
        ) -> Result<Page, StoreError> {
            if self.requests.fetch_add(1, Ordering::Relaxed) > 50_000 {
                return Err(StoreError::new("list", prefix, "runaway listing"));
            }
            let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            self.most_in_flight.fetch_max(now, Ordering::Relaxed);
            tokio::time::sleep(std::time::Duration::from_micros(100)).await;
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
            let mut prefix = prefix.to_string();
            while self.collapse_slashes && prefix.contains("//") {
                prefix = prefix.replace("//", "/");
            }
            let prefix = prefix.as_str();
            // The token is the last key returned, as many servers do.
            let after = token.or(start_after);
            let mut matching = self
                .keys
                .iter()
                .filter(|k| k.starts_with(prefix) && after.is_none_or(|a| k.as_str() > a));
            let objects: Vec<ObjectMeta> = matching
                .by_ref()
                .take(self.page_size)
                .map(|k| ObjectMeta {
                    key: k.clone(),
                    size: 1,
                    modified: UNIX_EPOCH,
                })
                .collect();
            let next = match matching.next() {
                Some(_) => objects.last().map(|o| o.key.clone()),
                None => None,
            };
            Ok(Page { objects, next })
        }
    }

    /// What a listing returned, and how the server saw it.
    struct Listed {
        /// The keys listed for each section, in the order they came.
        sections: Vec<Vec<String>>,
        requests: usize,
        most_in_flight: usize,
    }

    impl Listed {
        /// The keys of a listing of one section.
        fn keys(mut self) -> Vec<String> {
            assert_eq!(self.sections.len(), 1);
            self.sections.remove(0)
        }
    }

    fn list(keys: &[String], page_size: usize, concurrency: usize, prefix: &str) -> Listed {
        list_on(keys, page_size, concurrency, prefix, &KeyRange::ALL, false)
    }

    fn list_on(
        keys: &[String],
        page_size: usize,
        concurrency: usize,
        prefix: &str,
        range: &KeyRange,
        collapse_slashes: bool,
    ) -> Listed {
        let section = (prefix.to_string(), range.clone());
        list_sections_on(
            keys,
            page_size,
            concurrency,
            vec![section],
            collapse_slashes,
        )
    }

    fn list_sections_on(
        keys: &[String],
        page_size: usize,
        concurrency: usize,
        sections: Vec<(String, KeyRange)>,
        collapse_slashes: bool,
    ) -> Listed {
        let server = FakeServer::new(keys, page_size, collapse_slashes);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let count = sections.len();
        let listed = rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<(usize, Listing)>(4);
            let consumer = async {
                let mut keys: Vec<Vec<String>> = vec![Vec::new(); count];
                while let Some((index, item)) = rx.recv().await {
                    match item {
                        Listing::Objects(objects) => {
                            keys[index].extend(objects.into_iter().map(|o| o.key))
                        }
                        Listing::Error(e) => panic!("{e}"),
                    }
                }
                keys
            };
            let (_, keys) = futures_util::future::join(
                list_parallel(&server, sections, concurrency, tx),
                consumer,
            )
            .await;
            keys
        });
        Listed {
            sections: listed,
            requests: server.requests.into_inner(),
            most_in_flight: server.most_in_flight.into_inner(),
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Whatever the names, page size, concurrency and range, the split
        /// listing returns every key of the range exactly once.
        #[test]
        fn the_split_listing_lists_every_key_of_the_range_once(
            names in proptest::collection::btree_set("[a/~\u{e9}\u{1}z.]{0,6}", 0..120),
            page_size in 1usize..9,
            concurrency in 1usize..9,
            after in proptest::option::of("[a/~z]{0,4}"),
            through in proptest::option::of("[a/~z]{0,4}"),
        ) {
            let keys: Vec<String> = names.iter().map(|n| format!("p/{n}")).collect();
            let range = KeyRange {
                after: after.map(|a| format!("p/{a}")),
                through: through.map(|t| format!("p/{t}")),
            };
            let mut listed = list_on(&keys, page_size, concurrency, "p/", &range, false).keys();
            let count = listed.len();
            listed.sort();
            listed.dedup();
            proptest::prop_assert_eq!(count, listed.len(), "a key listed twice");
            let expected: Vec<String> = keys.iter().filter(|k| range.contains(k)).cloned().collect();
            proptest::prop_assert_eq!(listed, expected);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Sections listed from one pool (overlapping ones too) each get
        /// exactly the keys they would alone, and the pool never runs more
        /// than `concurrency` requests for all of them together.
        #[test]
        fn sections_listed_together_each_get_their_own_keys_once(
            names in proptest::collection::btree_set("[pq][a/~z]{0,5}", 0..150),
            page_size in 1usize..6,
            concurrency in 1usize..6,
            sections in proptest::collection::vec(
                (
                    "[pq]/?[az]?",
                    proptest::option::of("[pq][a/~z]{0,3}"),
                    proptest::option::of("[pq][a/~z]{0,3}"),
                ),
                1..5,
            ),
        ) {
            let sections: Vec<(String, KeyRange)> = sections
                .into_iter()
                .map(|(prefix, after, through)| (prefix, KeyRange { after, through }))
                .collect();
            let keys: Vec<String> = names.into_iter().collect();
            let listed = list_sections_on(&keys, page_size, concurrency, sections.clone(), false);
            proptest::prop_assert!(listed.most_in_flight <= concurrency);
            for ((prefix, range), mut got) in sections.iter().zip(listed.sections) {
                let count = got.len();
                got.sort();
                got.dedup();
                proptest::prop_assert_eq!(count, got.len(), "a key listed twice in {}", prefix);
                let expected: Vec<String> = keys
                    .iter()
                    .filter(|k| k.starts_with(prefix.as_str()) && range.contains(k))
                    .cloned()
                    .collect();
                proptest::prop_assert_eq!(got, expected, "section {}", prefix);
            }
        }
    }

    #[test]
    fn a_consumer_that_stops_stops_the_requests_of_every_section() {
        let keys: Vec<String> = (0..1000).map(|i| format!("{}/{i:04}", i % 2)).collect();
        let server = FakeServer::new(&keys, 10, false);
        let sections = ["0/", "1/"]
            .map(|p| (p.to_string(), KeyRange::ALL))
            .to_vec();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, mut rx) = mpsc::channel::<(usize, Listing)>(1);
            let consumer = async move {
                rx.recv().await.expect("a first page");
                // Dropped here: the listing must stop.
            };
            futures_util::future::join(list_parallel(&server, sections, 4, tx), consumer).await;
        });
        // The requests in flight when it stopped, not the hundred pages.
        let requests = server.requests.into_inner();
        assert!(requests <= 12, "{requests} requests");
    }

    #[test]
    fn sections_are_listed_at_once_not_one_after_another() {
        // Two sections of one page each: listed one after another, a single
        // request would ever be in flight.
        let keys: Vec<String> = (0..20).map(|i| format!("{}/{i}", i % 2)).collect();
        let sections = ["0/", "1/"]
            .map(|p| (p.to_string(), KeyRange::ALL))
            .to_vec();
        let listed = list_sections_on(&keys, 1000, 4, sections, false);
        assert_eq!(listed.requests, 2);
        assert_eq!(listed.most_in_flight, 2);
        assert!(listed.sections.iter().all(|keys| keys.len() == 10));
    }

    #[test]
    fn every_key_exactly_once_whatever_the_names() {
        let p = "dj/_schema/s/";
        let mut keys: Vec<String> = (0..500)
            .map(|i| format!("{p}t/id={i}/arr_{i:x}.npy"))
            .collect();
        keys.extend((0..300).map(|i| format!("{p}u/name=caf\u{e9}{i}/f")));
        keys.extend(
            [
                "dj/_schema/s/",
                "dj/_schema/s/~tilde",
                "dj/_schema/s/~",
                "dj/_schema/s/\u{1}control",
                "dj/_schema/s/\u{7f}del",
                "dj/_schema/s/\u{e9}t\u{e9}/x",
                "dj/_schema/s/\u{1F600}/emoji",
                "dj/_schema/s/ space",
            ]
            .map(String::from),
        );
        keys.extend((0..50).map(|i| format!("{p}~{i}")));
        keys.extend((0..50).map(|i| format!("{p}\u{e9}{i}")));
        // Outside the prefix: never listed.
        keys.extend(["dj/_schema/s2/x", "dj/_schema/r/x", "dj/_schema/s"].map(String::from));
        let mut expected: Vec<String> = keys.iter().filter(|k| k.starts_with(p)).cloned().collect();
        expected.sort();

        for (page_size, concurrency) in [(1000, 1), (3, 1), (3, 8), (7, 32)] {
            let mut listed = list(&keys, page_size, concurrency, p).keys();
            let count = listed.len();
            listed.sort();
            listed.dedup();
            assert_eq!(count, listed.len(), "a key listed twice (page {page_size})");
            assert_eq!(
                listed, expected,
                "page {page_size}, concurrency {concurrency}"
            );
        }
    }

    #[test]
    fn a_split_part_still_skips_what_belongs_to_another() {
        // A shard's cut at a folder object: its files are a part of their
        // own, and the part after the cut skips them, also when a page ends
        // at its manifest (which sorts before them) and the part splits.
        let object = "s/t/id=1/obj_X";
        let keys: Vec<String> = ["", ".manifest.json", "/0", "/1"]
            .iter()
            .map(|end| format!("{object}{end}"))
            .chain(["s/t/id=2/f".to_string()])
            .collect();
        let range = KeyRange {
            after: Some(object.to_string()),
            through: None,
        };
        let mut listed = list_on(&keys, 1, 1, "s/", &range, false).keys();
        listed.sort();
        assert_eq!(listed, keys[1..], "every key after the cut, once");
    }

    #[test]
    fn a_range_lists_its_keys_only_and_pages_over_them_alone() {
        let base32 = "abcdefghijklmnopqrstuvwxyz234567";
        let keys: Vec<String> = (0..6400)
            .map(|i| format!("h/{}{i:025}", &base32[i % 32..i % 32 + 1]))
            .collect();
        let range = KeyRange {
            after: Some("h/g".into()),
            through: Some("h/m".into()),
        };
        let mut expected: Vec<String> =
            keys.iter().filter(|k| range.contains(k)).cloned().collect();
        expected.sort();
        for (page_size, concurrency) in [(1000, 1), (7, 8)] {
            let mut listed = list_on(&keys, page_size, concurrency, "h/", &range, false);
            let requests = listed.requests;
            listed.sections[0].sort();
            assert_eq!(listed.sections[0], expected, "page {page_size}");
            // The range's own pages and a short page per split, not the
            // pages of the whole prefix.
            let range_pages = expected.len().div_ceil(page_size);
            assert!(requests <= range_pages * 3, "{requests} requests");
        }
    }

    #[test]
    fn a_server_that_collapses_slashes_is_listed_exactly_once_too() {
        let keys: Vec<String> = (0..400)
            .map(|i| format!("s/t/id={i}/arr_{i}.npy"))
            .collect();
        let mut listed = list_on(&keys, 10, 4, "s/", &KeyRange::ALL, true);
        listed.sections[0].sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed.sections[0], expected);
        assert!(listed.requests < 5000, "{} requests", listed.requests);
    }

    #[test]
    fn requests_are_spent_on_full_pages() {
        let keys: Vec<String> = (0..10).map(|i| format!("h/{i}")).collect();
        assert_eq!(list(&keys, 1000, 4, "h/").requests, 1);

        let base32 = "abcdefghijklmnopqrstuvwxyz234567";
        let keys: Vec<String> = (0..3200)
            .map(|i| format!("h/{}{i:025}", &base32[i % 32..i % 32 + 1]))
            .collect();
        let listed = list(&keys, 100, 8, "h/");
        assert_eq!(listed.sections[0].len(), 3200);
        // 32 pages of keys, and at most one short page per split.
        assert!(listed.requests < 32 * 3, "{} requests", listed.requests);

        // A long common prefix, as in a schema section: no request per
        // character and possible next character.
        let keys: Vec<String> = (0..5000)
            .map(|i| format!("dj/_schema/lab/npy_item/id={i}/arr_{i:x}.npy"))
            .collect();
        let listed = list(&keys, 100, 8, "dj/_schema/lab/");
        assert_eq!(listed.sections[0].len(), 5000);
        assert!(listed.requests < 50 * 3, "{} requests", listed.requests);
    }

    #[test]
    fn a_section_whose_first_characters_hold_less_than_a_page_still_fans_out() {
        // 20 pages of hash names, each first character holding a fifth of a
        // page: split only at page ends, the rest would list as a chain.
        let base32 = "abcdefghijklmnopqrstuvwxyz234567";
        let keys: Vec<String> = (0..2000)
            .map(|i| format!("h/{}{i:025}", &base32[i % 32..i % 32 + 1]))
            .collect();
        let listed = list(&keys, 100, 8, "h/");
        assert_eq!(listed.sections[0].len(), 2000);
        assert!(
            listed.most_in_flight >= 6,
            "at most {} requests at once",
            listed.most_in_flight
        );
        assert!(listed.requests < 20 * 3, "{} requests", listed.requests);
    }
}
