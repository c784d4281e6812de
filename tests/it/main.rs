//! The integration tests, as one crate so that they link once: each module
//! is one former test binary, against the real MariaDB, PostgreSQL and S3
//! servers that `scripts/services.sh` starts. Run one file's tests with
//! `cargo test --test it cli::`.

mod common;

mod check;
mod cli;
mod cloud_faults;
mod collect;
mod crash;
mod datajoint_compat;
mod db_faults;
mod inventory;
mod recheck;
mod reference_reads;
mod refs_snapshot;
mod s3_faults;
mod safety;
mod shard;
mod store_conformance;
mod threats;
mod tls;
