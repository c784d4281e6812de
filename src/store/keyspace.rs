//! Parallel listing of a flat key space, for object stores with paged LIST.
//!
//! One paginated LIST stream returns 1,000 keys per request, so at 50 ms a
//! request a section of 100 million keys takes 1.4 hours to list. This
//! module splits a prefix into parts that are listed concurrently, using only
//! what every S3 server implements (`Prefix`, continuation tokens, and
//! `StartAfter` in one narrow case):
//!
//! * A prefix `P` is listed flat (no delimiter: a schema section with one
//!   folder per row costs one request per 1,000 keys, not one per row).
//! * If its first page is truncated, `P` is big: the page is dropped and `P`
//!   is split into `P+c` for every printable ASCII `c`, each split again when
//!   big, plus two remainders: keys below `P+" "` (including `P` itself) and
//!   keys above `P+"~"` (non-ASCII next characters, found with `StartAfter`
//!   and skipping the `P+"~"` keys the `~` part lists).
//!
//! Only keys that start with a part's prefix are taken from its pages. A
//! server that rewrites prefixes (SeaweedFS treats keys as paths, so `a//`
//! lists like `a/`) gives a part keys outside its prefix: such a part lists
//! nothing and is never split (there, no key can hold `//`).
//!
//! These parts partition the keys under `P`, so every key is listed exactly
//! once whatever the names, and flat hash sections (32 Base32 first
//! characters) and wide schema tables (`id=0/`, `id=1/`, …) both fan out.
//! Parts are run depth first from a stack, at most `concurrency` at a time,
//! and every page is handed over a bounded channel: a slow consumer stops the
//! requests.

use std::future::Future;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;

use super::{Listing, ObjectMeta, StoreError};

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
    /// Listing of this part ends at the first key at or past this one.
    stop_at: Option<String>,
    /// Keys with this prefix belong to another part.
    skip: Option<String>,
    /// Whether a big part may be split further.
    splittable: bool,
}

impl Part {
    fn whole(prefix: String) -> Self {
        Part {
            prefix,
            start_after: None,
            stop_at: None,
            skip: None,
            splittable: true,
        }
    }

    /// The parts that partition this (splittable, whole-prefix) part.
    fn split(&self) -> Vec<Part> {
        let p = &self.prefix;
        let mut parts: Vec<Part> = (b' '..=b'~')
            .map(|c| Part::whole(format!("{p}{}", c as char)))
            .collect();
        parts.push(Part {
            prefix: p.clone(),
            start_after: None,
            stop_at: Some(format!("{p} ")),
            skip: None,
            splittable: false,
        });
        parts.push(Part {
            prefix: p.clone(),
            start_after: Some(format!("{p}~")),
            stop_at: None,
            skip: Some(format!("{p}~")),
            splittable: false,
        });
        parts
    }
}

/// Lists every key under `prefix` with up to `concurrency` requests in
/// flight, sending pages to `out`; stops early when `out` is closed.
pub async fn list_parallel<L: PageLister>(
    lister: &L,
    prefix: &str,
    concurrency: usize,
    out: mpsc::Sender<Listing>,
) {
    let mut stack = vec![Part::whole(prefix.to_string())];
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < concurrency.max(1) && !out.is_closed() {
            let Some(part) = stack.pop() else { break };
            running.push(list_part(lister, part, out.clone()));
        }
        match running.next().await {
            Some(children) => stack.extend(children),
            None => break,
        }
    }
}

/// Lists one part; returns the parts it was split into, if it was.
async fn list_part<L: PageLister>(lister: &L, part: Part, out: mpsc::Sender<Listing>) -> Vec<Part> {
    let mut token: Option<String> = None;
    let mut first = true;
    loop {
        let page = match lister
            .list_page(&part.prefix, part.start_after.as_deref(), token.as_deref())
            .await
        {
            Ok(page) => page,
            Err(e) => {
                let _ = out.send(Listing::Error(e)).await;
                return Vec::new();
            }
        };
        if first
            && page
                .objects
                .iter()
                .any(|o| !o.key.starts_with(&part.prefix))
        {
            return Vec::new(); // the server rewrote this prefix: it holds nothing
        }
        if first && part.splittable && page.next.is_some() {
            return part.split();
        }
        first = false;
        let mut reached_stop = false;
        let objects: Vec<ObjectMeta> = page
            .objects
            .into_iter()
            .take_while(|o| {
                reached_stop = part.stop_at.as_ref().is_some_and(|stop| o.key >= *stop);
                !reached_stop
            })
            .filter(|o| {
                part.skip
                    .as_ref()
                    .is_none_or(|skip| !o.key.starts_with(skip.as_str()))
            })
            .collect();
        if !objects.is_empty() && out.send(Listing::Objects(objects)).await.is_err() {
            return Vec::new();
        }
        match page.next {
            Some(next) if !reached_stop => token = Some(next),
            _ => return Vec::new(),
        }
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

    fn list(
        keys: &[String],
        page_size: usize,
        concurrency: usize,
        prefix: &str,
    ) -> (Vec<String>, usize) {
        list_on(keys, page_size, concurrency, prefix, false)
    }

    fn list_on(
        keys: &[String],
        page_size: usize,
        concurrency: usize,
        prefix: &str,
        collapse_slashes: bool,
    ) -> (Vec<String>, usize) {
        let server = FakeServer {
            keys: keys.iter().cloned().collect(),
            page_size,
            requests: AtomicUsize::new(0),
            collapse_slashes,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let listed = rt.block_on(async {
            let (tx, mut rx) = mpsc::channel(4);
            let consumer = async {
                let mut keys = Vec::new();
                while let Some(item) = rx.recv().await {
                    match item {
                        Listing::Objects(objects) => {
                            keys.extend(objects.into_iter().map(|o| o.key))
                        }
                        Listing::Error(e) => panic!("{e}"),
                    }
                }
                keys
            };
            let (_, keys) = futures_util::future::join(
                list_parallel(&server, prefix, concurrency, tx),
                consumer,
            )
            .await;
            keys
        });
        (listed, server.requests.load(Ordering::Relaxed))
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
            let (mut listed, _) = list(&keys, page_size, concurrency, p);
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
    fn a_server_that_collapses_slashes_is_listed_exactly_once_too() {
        let keys: Vec<String> = (0..400)
            .map(|i| format!("s/t/id={i}/arr_{i}.npy"))
            .collect();
        let (mut listed, requests) = list_on(&keys, 10, 4, "s/", true);
        listed.sort();
        let mut expected = keys.clone();
        expected.sort();
        assert_eq!(listed, expected);
        assert!(requests < 5000, "{requests} requests");
    }

    #[test]
    fn small_prefixes_cost_one_request_and_big_ones_fan_out() {
        let keys: Vec<String> = (0..10).map(|i| format!("h/{i}")).collect();
        assert_eq!(list(&keys, 1000, 4, "h/").1, 1);

        let base32 = "abcdefghijklmnopqrstuvwxyz234567";
        let keys: Vec<String> = (0..3200)
            .map(|i| format!("h/{}{i:025}", &base32[i % 32..i % 32 + 1]))
            .collect();
        let (listed, requests) = list(&keys, 100, 8, "h/");
        assert_eq!(listed.len(), 3200);
        // One probe, 97 parts; the 32 non-empty ones hold 100 keys each.
        assert!(requests < 1 + 97 + 32 * 2, "{requests} requests");
    }
}
