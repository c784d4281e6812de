//! How the engine tells its caller what it is doing.
//!
//! The library draws nothing: it reports counts and events through this
//! trait, and the binary decides whether to draw bars, log lines or nothing.
//! Every method has a no-op default, so an observer implements only what it
//! shows. Methods are called from worker threads and must be cheap.

/// Receives progress events; all methods default to doing nothing.
pub trait Progress: Sync {
    /// `values` more non-null codec values were read from the database.
    fn values_read(&self, _values: u64) {}

    /// The reference set is complete.
    fn references_done(&self, _distinct: u64) {}

    /// `objects` more objects were listed in the section shown as `section`
    /// (its [`crate::layout::Section::label`]).
    fn listed(&self, _section: &str, _objects: u64) {}

    /// An object was judged orphaned.
    fn orphan(&self, _key: &str, _bytes: u64) {}

    /// Deletion (or quarantine) of `orphans` objects of `bytes` in all
    /// starts.
    fn deleting(&self, _orphans: u64, _bytes: u64) {}

    /// An orphan was deleted.
    fn deleted(&self, _key: &str, _bytes: u64) {}

    /// An orphan was moved into quarantine.
    fn quarantined(&self, _key: &str, _bytes: u64) {}

    /// A deletion failed; the run goes on and ends with exit code 1.
    fn delete_failed(&self, _key: &str, _error: &str) {}

    /// Something the user should read: see [`Notice`].
    fn notice(&self, _notice: Notice<'_>) {}
}

/// A message for the user. Settings are named in backticks (`` `force` ``),
/// so that a front end can name them as it lets them be set (the `djgc`
/// binary writes `--force`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice<'a> {
    /// Worth knowing, changes nothing.
    Info(&'a str),
    /// Something odd that did not stop the run.
    Warning(&'a str),
    /// Something that failed or blocks deletion.
    Problem(&'a str),
    /// In a dry run: what the mass-deletion guard would refuse if deleting.
    WouldRefuse(&'a str),
}

/// An observer that shows nothing.
pub struct Silent;

impl Progress for Silent {}
