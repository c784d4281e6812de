//! The async runtimes djgc's clients (the database's, S3's) run on: small
//! ones, of two worker threads, because djgc's own threads do the work and
//! the clients only wait on the network.

use crate::error::{Error, Result};

/// A multi-threaded runtime whose threads are named `thread_name`.
pub(crate) fn new(thread_name: &'static str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(thread_name)
        .enable_all()
        .build()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))
}
