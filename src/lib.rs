//! djgc: reclaims space in DataJoint object stores.
//!
//! The engine finds the same orphans as DataJoint's `dj.gc` — stored objects
//! that no live row references — and deletes them, in parallel and in
//! batches. It is a library so that the same code serves the `djgc` binary,
//! tests and benchmarks; it draws nothing on a terminal (see [`progress`]).
//!
//! The flow of a run, one module (or folder) a stage, each importing only
//! the ones beneath it (a test holds them to it):
//! 1. [`config`] reads `datajoint.json` exactly as DataJoint does;
//! 2. [`run`] opens a [`run::Session`]: the store ([`store`]) and one
//!    database connection for the whole run ([`refs::Reader`]);
//! 3. [`judge`] streams referenced paths from the database into compact
//!    hashed sets ([`refs`]) while the store's sections ([`layout`]) are
//!    listed (or read from an S3 Inventory), then judges every listed
//!    object, producing a plan; a run can take one shard of the key space
//!    ([`layout::shard`]), so an array job splits a collection;
//! 4. `act` deletes a plan's orphans, or moves them into quarantine,
//!    re-reading the references while it works; only [`run`]'s entry points
//!    call it, after confirming the plan, the guard and a fresh re-check;
//! 5. [`report`] holds the numbers, in dj.gc's vocabulary;
//! 6. [`check`] asks the other half of the question with the same passes:
//!    which rows reference objects that are missing or incomplete.
//!
//! Safety invariants: nothing is judged before the reference sets are
//! complete; any problem in reading references or listing blocks deletion;
//! only plain keys inside the collected schemas' sections are ever deleted;
//! every deletion is preceded by a fresh read of the references.

pub(crate) mod act;
pub mod check;
pub mod config;
pub mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
pub mod interrupt;
pub mod judge;
pub mod keys;
pub mod layout;
pub mod progress;
pub mod refs;
pub mod report;
pub mod run;
mod runtime;
pub mod store;

pub use error::{Error, Result};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    /// The top-level modules, lowest first: each may import only modules
    /// before it (and itself), so there is no import circle, and the
    /// layout the README draws is the one the code has.
    const LAYERS: &[&str] = &[
        "keys",
        "error",
        "runtime",
        "interrupt",
        "progress",
        "config",
        "store",
        "layout",
        "report",
        "refs",
        "judge",
        "check",
        "act",
        "run",
        "fixture",
    ];

    /// The top-level modules that the non-test code of `path` (a file or
    /// a folder) names as `crate::…`.
    fn imports(path: &Path, found: &mut BTreeSet<String>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap() {
                imports(&entry.unwrap().path(), found);
            }
            return;
        }
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            return;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + 7..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                // `crate::Error` and `crate::Result` are the error module's.
                found.insert(if name.is_empty() {
                    "error".into()
                } else {
                    name
                });
            }
        }
    }

    #[test]
    fn modules_import_only_those_beneath_them() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (rank, module) in LAYERS.iter().enumerate() {
            let file = src.join(format!("{module}.rs"));
            let path = if file.exists() {
                file
            } else {
                src.join(module)
            };
            let mut found = BTreeSet::new();
            imports(&path, &mut found);
            for name in found {
                let Some(other) = LAYERS.iter().position(|m| *m == name) else {
                    panic!("{module} imports crate::{name}, which is not in LAYERS");
                };
                assert!(
                    other <= rank,
                    "{module} imports {name}, which sits above it: an import circle in the making"
                );
            }
        }
        let declared = include_str!("lib.rs");
        for module in LAYERS {
            assert!(declared.contains(&format!("mod {module};")), "{module}");
        }
    }
}
