//! djgc: reclaims space in DataJoint object stores.
//!
//! The engine finds the same orphans as DataJoint's `dj.gc` — stored objects
//! that no live row references — and deletes them, in parallel and in
//! batches. It is a library so that the same code serves the `djgc` binary,
//! tests and benchmarks; it draws nothing on a terminal (see [`progress`]).
//!
//! The flow of a run:
//! 1. [`config`] reads `datajoint.json` exactly as DataJoint does;
//! 2. [`scan`] streams referenced paths from the database into compact hashed
//!    sets ([`references`], [`refset`]) while the store's sections are listed
//!    ([`store`], or read from an S3 Inventory: [`inventory`]), then judges
//!    every listed object, producing a [`plan::Plan`]; a run can take one
//!    shard of the key space, so an array job splits a collection ([`shard`]);
//! 3. [`execute`] deletes a plan's orphans, or moves them into [`quarantine`],
//!    re-reading the references while it works ([`watch`]); a dry run stops
//!    before it. A plan can also be written to disk and applied later
//!    ([`planfile`]).
//!
//! Safety invariants: nothing is judged before the reference sets are
//! complete; any problem in reading references or listing blocks deletion;
//! only plain keys inside the collected schemas' sections are ever deleted;
//! every deletion is preceded by a fresh read of the references.

pub mod codec;
pub mod config;
pub mod db;
pub mod error;
pub mod execute;
pub mod fixture;
pub mod inventory;
pub mod layout;
pub mod plan;
pub mod planfile;
pub mod progress;
pub mod quarantine;
pub mod references;
pub mod refset;
pub mod report;
pub mod scan;
pub mod shard;
pub mod store;
pub mod watch;

pub use error::{Error, Result};
