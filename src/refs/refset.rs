//! The set of referenced paths, held as 64-bit hashes.
//!
//! Why hashes: a store with a billion objects can have hundreds of millions of
//! references; as strings they would take tens of gigabytes, as xxh3-64 hashes
//! in an open-addressing table about 9–18 bytes each. The hashes are already
//! uniform, so the table uses them as its own hash (no rehashing).
//!
//! The one risk of hashing runs in the safe direction: two different paths
//! with the same 64-bit hash make an orphan look referenced, so it is kept.
//! With 10^9 references and 10^10 probes that is expected about once in
//! 2,000 runs, and it never deletes a live object.

use std::borrow::Cow;

use nohash_hasher::IntSet;
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

/// A set of path hashes.
#[derive(Debug, Default)]
pub struct RefSet {
    hashes: IntSet<u64>,
}

impl RefSet {
    /// Adds a hash; whether it was new.
    pub fn insert(&mut self, hash: u64) -> bool {
        self.hashes.insert(hash)
    }

    pub fn extend(&mut self, hashes: impl IntoIterator<Item = u64>) {
        self.hashes.extend(hashes);
    }

    #[inline]
    pub fn contains(&self, hash: u64) -> bool {
        self.hashes.contains(&hash)
    }

    /// Distinct paths recorded.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// Bytes the table holds, estimated from its capacity as hashbrown lays
    /// it out: a power of two of buckets (at most 7/8 full), each an 8-byte
    /// hash and a control byte.
    pub fn allocated_bytes(&self) -> u64 {
        match self.hashes.capacity() {
            0 => 0,
            capacity => ((capacity * 8 / 7).next_power_of_two() * 9) as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.hashes.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_distinct_paths() {
        let mut set = RefSet::default();
        for path in ["_hash/a/x", "_hash/a/y", "_hash/a/x"] {
            set.insert(path_hash(path));
        }
        assert_eq!(set.len(), 2);
        let mut big = RefSet::default();
        big.extend(0..100_000);
        let bytes = big.allocated_bytes();
        assert!((900_000..=2_400_000).contains(&bytes), "{bytes}");
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
