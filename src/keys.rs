//! Store keys: the rules every path djgc reads, writes or deletes obeys.
//!
//! A key is store-relative, `/`-separated, and made of plain segments.
//! References are recorded by the key they name ([`store_key`]), names that
//! become folders must be one plain segment ([`segment_problem`]), and no
//! key is deleted or moved unless it lies inside the section it is deleted
//! for ([`key_is_contained`]). These rules sit below every other module, so
//! that the configuration, the store protocols and the layout share them.

use std::borrow::Cow;

/// The store key a `path` names when DataJoint joins it onto the store's
/// location: `pathlib` (file stores) drops `.` segments, repeated and
/// trailing `/`, and the file system then resolves `..`; a leading `/`
/// is dropped too (an object store's key never starts with one). Writing a
/// path another way must not stop it from protecting its object, so
/// references are recorded by the key they name. A `..` that would climb
/// above the store root stays, and names no key djgc lists.
pub fn store_key(path: &str) -> Cow<'_, str> {
    let plain = |segment: &str| !segment.is_empty() && segment != "." && segment != "..";
    if path.split('/').all(plain) {
        return Cow::Borrowed(path);
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." if segments.last().is_some_and(|s| *s != "..") => {
                segments.pop();
            }
            other => segments.push(other),
        }
    }
    Cow::Owned(segments.join("/"))
}

/// Why `name` cannot be one folder of a store path, if it cannot: it must be
/// a single plain segment (not empty, not `.` or `..`, without `/`, `\`,
/// NUL or other control characters), or a path built from it could climb
/// out of the folder it is meant to name.
pub fn segment_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("it is empty")
    } else if name == "." || name == ".." {
        Some("it names a folder's own or parent folder")
    } else if name.contains(['/', '\\']) {
        Some("it holds a path separator")
    } else if name.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// Whether `key` may be deleted as part of `section_prefix`: inside it, with
/// no empty, `.` or `..` segment that could climb out of it (with an empty
/// prefix: whether `key` is a plain store-relative path).
pub fn key_is_contained(section_prefix: &str, key: &str) -> bool {
    key.strip_prefix(section_prefix).is_some_and(|rest| {
        !rest.is_empty()
            && !rest.contains('\\')
            && rest
                .split('/')
                .all(|s| !s.is_empty() && s != "." && s != "..")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_the_key_datajoint_reads() {
        for (written, key) in [
            ("_hash/s/ih23", "_hash/s/ih23"),
            ("_hash/s/./ih23", "_hash/s/ih23"),
            ("_hash/s//ih23", "_hash/s/ih23"),
            ("./_hash/s/ih23", "_hash/s/ih23"),
            ("_schema/s/t/id=1/obj_X/", "_schema/s/t/id=1/obj_X"),
            ("_schema/s/t/x/../id=1/f", "_schema/s/t/id=1/f"),
            ("/etc/passwd", "etc/passwd"),
            ("../../x", "../../x"),
            ("a/../../x", "../x"),
        ] {
            assert_eq!(store_key(written), key, "{written}");
        }
        assert!(matches!(store_key("_hash/s/ih23"), Cow::Borrowed(_)));
    }

    proptest::proptest! {
        /// However a plain key is spelled (`./` inserted, `/` doubled, a
        /// trailing `/`, a detour through `x/..`), it names the key; and
        /// what `store_key` gives has no segment left to resolve.
        #[test]
        fn every_spelling_of_a_key_names_the_key(
            segments in proptest::collection::vec("[a-z0-9_=][a-z0-9_=.]{0,3}", 1..6),
            spellings in proptest::collection::vec(0u8..4, 6),
            trailing in proptest::bool::ANY,
        ) {
            let key = segments.join("/");
            let mut written = String::new();
            for (i, segment) in segments.iter().enumerate() {
                if i > 0 {
                    written.push('/');
                }
                match spellings[i] {
                    1 => written.push_str("./"),
                    2 => written.push('/'),
                    3 => written.push_str("detour/../"),
                    _ => {}
                }
                written.push_str(segment);
            }
            if trailing {
                written.push('/');
            }
            proptest::prop_assert_eq!(store_key(&written), key.as_str());
            let resolved = store_key(&written).into_owned();
            proptest::prop_assert_eq!(store_key(&resolved), resolved.as_str());
        }

        #[test]
        fn store_keys_are_resolved_once_and_for_all(path in "[a./]{0,12}") {
            let once = store_key(&path).into_owned();
            proptest::prop_assert_eq!(store_key(&once), once.as_str());
            let mut segments = once.split('/').filter(|s| !once.is_empty() || !s.is_empty());
            proptest::prop_assert!(segments.all(|s| !s.is_empty() && s != "."));
            // `..` only where it would climb above the root.
            proptest::prop_assert!(once.split('/').skip_while(|s| *s == "..").all(|s| s != ".."));
        }
    }

    proptest::proptest! {
        /// A key is deletable in a section exactly when every segment below
        /// the prefix is plain; then it names a path inside the section,
        /// however the file system or DataJoint resolves it.
        #[test]
        fn only_plain_keys_are_contained_and_they_stay_inside(
            segments in proptest::collection::vec("(|\\.|\\.\\.|[a-z.\\\\]{1,3})", 0..6),
        ) {
            let prefix = "_hash/s/";
            let key = format!("{prefix}{}", segments.join("/"));
            let plain = !segments.is_empty()
                && segments.iter().all(|s| !s.is_empty() && s != "." && s != ".." && !s.contains('\\'));
            proptest::prop_assert_eq!(key_is_contained(prefix, &key), plain);
            if plain {
                let resolved = store_key(&key);
                proptest::prop_assert!(resolved.starts_with(prefix), "{} resolves to {}", key, resolved);
                proptest::prop_assert!(resolved.len() > prefix.len());
            }
        }
    }

    #[test]
    fn containment() {
        assert!(key_is_contained("_schema/a/", "_schema/a/t/id=1/f"));
        assert!(!key_is_contained("_schema/a/", "_schema/b/t"));
        assert!(!key_is_contained("_schema/a/", "_schema/a/"));
        assert!(!key_is_contained("_schema/a/", "_schema/a/../b/x"));
        assert!(!key_is_contained("_schema/a/", "_schema/a//x"));
        assert!(!key_is_contained("_schema/a/", "_schema/a/t\\..\\x"));
        assert!(key_is_contained("", "_trash/r/_hash/a/x"));
        assert!(!key_is_contained("", "/etc/passwd"));
        assert!(!key_is_contained("", "../x"));
    }
}
