//! The set of referenced paths, held as 64-bit hashes.
//!
//! Why hashes: a store with a billion objects can have hundreds of millions of
//! references; as strings they would take tens of gigabytes, as xxh3-64 hashes
//! in a sorted array ([`PackedSet`]) 9 bytes each. The hashes are uniform, so
//! their leading bits index the array directly. Sets that grow while they are
//! probed (a few per run, small) are hash tables ([`RefSet`]).
//!
//! The one risk of hashing runs in the safe direction: two different paths
//! with the same 64-bit hash make an orphan look referenced, so it is kept.
//! With 10^9 references and 10^10 probes that is expected about once in
//! 2,000 runs, and it never deletes a live object.

use std::borrow::Cow;
use std::sync::OnceLock;

use nohash_hasher::IntSet;
use rayon::slice::ParallelSliceMut;
use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
use xxhash_rust::xxh3::xxh3_64;

/// The hash under which a store-relative path is recorded and probed: of
/// its Unicode NFC form, without the trailing dots of its segments.
///
/// A store may keep a name in another form than the one written, and then
/// the row's path and the listed key must still be the same path, or the
/// live object would look orphaned:
/// * a file system may keep another Unicode form (macOS and some ZFS pools
///   store NFD), so a row's `Ä` and a listed `A` + combining diaeresis;
/// * Azure Blob Storage drops the trailing dots of every segment of a blob
///   name, so a row's `name=Smith Jr./f` is listed as `name=Smith Jr/f`
///   (its emulator, Azurite, keeps them: the same rule serves both).
///
/// Two names differing only so are then one path, which can only keep
/// more. Paths with neither (nearly all) are hashed as they are.
#[inline]
pub fn path_hash(path: &str) -> u64 {
    undotted_hash(&undotted(path))
}

/// `path` without the trailing dots of its segments; borrowed when it has
/// none (nearly always). Every prefix of the result that ends at a `/` is
/// itself undotted, so a caller hashing a path and its folders undots once
/// and hashes each with [`undotted_hash`].
#[inline]
pub fn undotted(path: &str) -> Cow<'_, str> {
    if path.ends_with('.') || path.contains("./") {
        Cow::Owned(without_trailing_dots(path))
    } else {
        Cow::Borrowed(path)
    }
}

/// [`path_hash`] of a path [`undotted`] already: of its NFC form.
#[inline]
pub fn undotted_hash(path: &str) -> u64 {
    if path.is_ascii() || is_nfc_quick(path.chars()) == IsNormalized::Yes {
        return xxh3_64(path.as_bytes());
    }
    xxh3_64(path.nfc().collect::<String>().as_bytes())
}

/// `path` with the dots that end any of its segments removed.
fn without_trailing_dots(path: &str) -> String {
    path.split('/')
        .map(|segment| segment.trim_end_matches('.'))
        .collect::<Vec<_>>()
        .join("/")
}

/// A set of path hashes that can grow while it is probed (the objects a
/// run confirmed or found young); the reference sets are [`PackedSet`]s.
#[derive(Debug, Default)]
pub struct RefSet {
    hashes: IntSet<u64>,
}

impl RefSet {
    /// Adds a hash; whether it was new.
    pub fn insert(&mut self, hash: u64) -> bool {
        self.hashes.insert(hash)
    }

    #[inline]
    pub fn contains(&self, hash: u64) -> bool {
        self.hashes.contains(&hash)
    }

    /// Distinct paths recorded.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

/// The reference set of a scan: the distinct hashes, sorted, with an index
/// of where each run of leading bits starts, built once by
/// [`PackedSetBuilder`] and then only probed.
///
/// Why not [`RefSet`]: a hash table holds 9 bytes a slot at most 7/8 full,
/// doubles as it grows and holds the old and the new table while it does,
/// so at 10M references the process peaked at 26 bytes per reference. A
/// sorted array takes 8 bytes a hash and its index 1 more, and is built by
/// appending: a large `Vec` grows by remapping its pages, not by copying
/// them. A probe reads the index and then a handful of neighbouring hashes
/// (the hashes are uniform, so the runs are even), which costs about what a
/// hash table's probe does.
#[derive(Debug)]
pub struct PackedSet {
    /// Distinct and ascending.
    hashes: Vec<u64>,
    /// `starts[b]..starts[b + 1]` holds the hashes whose top bits are `b`.
    starts: Vec<usize>,
    /// Shifts a hash down to its top bits (64 when there is one run).
    shift: u32,
}

impl Default for PackedSet {
    fn default() -> PackedSet {
        PackedSet::from_sorted(Vec::new())
    }
}

/// Hashes per run of the index, on average.
const HASHES_PER_RUN: usize = 8;
/// Probes whose reads [`PackedSet::contains_each`] overlaps.
const PROBE_LANES: usize = 16;

impl PackedSet {
    #[inline]
    pub fn contains(&self, hash: u64) -> bool {
        let run = run_of(hash, self.shift);
        let (Some(&start), Some(&end)) = (self.starts.get(run), self.starts.get(run + 1)) else {
            return false;
        };
        self.hashes[start..end].binary_search(&hash).is_ok()
    }

    /// [`PackedSet::contains`] of each hash, appended to `found`. A probe
    /// of a large set costs two reads from memory (the index, then the
    /// run); here the reads of [`PROBE_LANES`] probes are started before
    /// any is waited for, so their waits overlap instead of adding up.
    pub fn contains_each(&self, hashes: &[u64], found: &mut Vec<bool>) {
        for lane in hashes.chunks(PROBE_LANES) {
            let mut runs = [(0, 0); PROBE_LANES];
            for (run, &hash) in runs.iter_mut().zip(lane) {
                let at = run_of(hash, self.shift);
                *run = (self.starts[at], self.starts[at + 1]);
            }
            let mut firsts = [0; PROBE_LANES];
            for (first, &(start, end)) in firsts.iter_mut().zip(&runs) {
                *first = if start < end { self.hashes[start] } else { 0 };
            }
            for ((&hash, &(start, end)), &first) in lane.iter().zip(&runs).zip(&firsts) {
                found.push(
                    start < end
                        && (first == hash || self.hashes[start..end].binary_search(&hash).is_ok()),
                );
            }
        }
    }

    /// Distinct hashes held.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Bytes the set holds.
    pub fn allocated_bytes(&self) -> u64 {
        (self.hashes.capacity() * 8 + self.starts.capacity() * 8) as u64
    }

    fn from_sorted(mut hashes: Vec<u64>) -> PackedSet {
        hashes.shrink_to_fit();
        let runs = (hashes.len() / HASHES_PER_RUN).max(1).next_power_of_two();
        let shift = 64 - runs.trailing_zeros();
        let mut starts = Vec::with_capacity(runs + 1);
        let mut at = 0;
        for run in 0..runs {
            starts.push(at);
            while at < hashes.len() && run_of(hashes[at], shift) == run {
                at += 1;
            }
        }
        starts.push(at);
        PackedSet {
            hashes,
            starts,
            shift,
        }
    }
}

/// The run of the index a hash belongs to: its top bits.
#[inline]
fn run_of(hash: u64, shift: u32) -> usize {
    hash.checked_shr(shift).unwrap_or(0) as usize
}

/// Gathers hashes for a [`PackedSet`], duplicates and all, in any order.
///
/// Rows often share a path (a deduplicated hash object has one row per
/// use), so whenever the array is full it is sorted and its duplicates
/// dropped before it may grow: it holds at most about four times the
/// distinct hashes however many rows repeat them.
#[derive(Debug, Default)]
pub struct PackedSetBuilder {
    hashes: Vec<u64>,
}

/// Below this many hashes the array just grows.
const SQUEEZE_FROM: usize = 1 << 16;

impl PackedSetBuilder {
    #[inline]
    pub fn push(&mut self, hash: u64) {
        if self.hashes.len() == self.hashes.capacity() && self.hashes.len() >= SQUEEZE_FROM {
            self.squeeze();
        }
        self.hashes.push(hash);
    }

    /// Sorts the hashes and drops the duplicates; if that left the array
    /// more than half full, lets it double, so the sorts cost a constant
    /// number of passes over each hash, however many repeat.
    fn squeeze(&mut self) {
        self.sort_distinct();
        if self.hashes.len() > self.hashes.capacity() / 2 {
            self.hashes.reserve(self.hashes.capacity());
        }
    }

    /// Sorts on a pool of its own, not rayon's global one: the threads of
    /// that pool may be blocked feeding the listing queue (an inventory's
    /// files are read on it) until the reference sets are complete.
    fn sort_distinct(&mut self) {
        static SORTERS: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
        let sorters = SORTERS.get_or_init(|| {
            rayon::ThreadPoolBuilder::new()
                .thread_name(|i| format!("djgc-sort-{i}"))
                .build()
                .ok()
        });
        match sorters {
            Some(pool) => pool.install(|| self.hashes.par_sort_unstable()),
            None => self.hashes.sort_unstable(),
        }
        self.hashes.dedup();
    }

    pub fn build(mut self) -> PackedSet {
        self.sort_distinct();
        PackedSet::from_sorted(self.hashes)
    }
}

impl FromIterator<u64> for PackedSet {
    fn from_iter<I: IntoIterator<Item = u64>>(hashes: I) -> PackedSet {
        let mut builder = PackedSetBuilder::default();
        for hash in hashes {
            builder.push(hash);
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The packed set holds exactly what was pushed, whatever the
        /// order, the repeats and the spread of the hashes.
        #[test]
        fn a_packed_set_holds_what_was_pushed(
            pushed in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..300),
            repeats in 1usize..4,
            probes in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..50),
            narrow in proptest::prelude::any::<bool>(),
        ) {
            // Narrow hashes crowd into the first runs of the index.
            let pushed: Vec<u64> = pushed.iter().map(|&h| if narrow { h >> 50 } else { h }).collect();
            let set: PackedSet = pushed.iter().copied().cycle().take(pushed.len() * repeats).collect();
            let expected: std::collections::BTreeSet<u64> = pushed.iter().copied().collect();
            proptest::prop_assert_eq!(set.len(), expected.len());
            let all: Vec<u64> = pushed.iter().chain(&probes).copied().collect();
            let mut found = Vec::new();
            set.contains_each(&all, &mut found);
            proptest::prop_assert_eq!(found.len(), all.len());
            for (hash, found) in all.iter().zip(found) {
                proptest::prop_assert_eq!(set.contains(*hash), expected.contains(hash));
                proptest::prop_assert_eq!(found, expected.contains(hash));
            }
        }
    }

    #[test]
    fn a_packed_set_keeps_within_four_times_its_distinct_hashes() {
        let mut builder = PackedSetBuilder::default();
        for round in 0..20u64 {
            for hash in 0..100_000u64 {
                builder.push(hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (round % 2));
            }
        }
        assert!(
            builder.hashes.capacity() <= 4 * 200_000,
            "{}",
            builder.hashes.capacity()
        );
        let set = builder.build();
        assert_eq!(set.len(), 200_000);
        assert!(set.contains(0x9e37_79b9_7f4a_7c15 ^ 1));
        assert!(!set.contains(2));
        let bytes = set.allocated_bytes();
        assert!((1_600_000..=2_000_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn counts_distinct_paths() {
        let mut set = RefSet::default();
        for path in ["_hash/a/x", "_hash/a/y", "_hash/a/x"] {
            set.insert(path_hash(path));
        }
        assert_eq!(set.len(), 2);
        assert!(set.contains(path_hash("_hash/a/y")));
        assert!(!set.contains(path_hash("_hash/a/z")));
    }

    #[test]
    fn a_name_is_one_path_in_any_unicode_form() {
        let composed = "_schema/a/t/name=J\u{00e4}ger/f";
        let decomposed = "_schema/a/t/name=Ja\u{0308}ger/f";
        assert_ne!(composed, decomposed);
        assert_eq!(path_hash(composed), path_hash(decomposed));
        assert_ne!(path_hash(composed), path_hash("_schema/a/t/name=Jager/f"));
    }

    #[test]
    fn a_name_azure_stored_without_its_trailing_dots_is_the_same_path() {
        let written = "_schema/a/t/name=Smith Jr./f.";
        assert_eq!(path_hash(written), path_hash("_schema/a/t/name=Smith Jr/f"));
        assert_eq!(path_hash("_hash/a/x.."), path_hash("_hash/a/x"));
        // Dots inside a name are part of it.
        assert_ne!(
            path_hash("_schema/a/t/f.npy"),
            path_hash("_schema/a/t/fnpy")
        );
        assert_ne!(
            path_hash("_schema/a/t/id=1/f"),
            path_hash("_schema/a/t/id=1f")
        );
    }
}
