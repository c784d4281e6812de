//! Stopping a run early and cleanly, on the caller's word.
//!
//! An overnight job is ended by its scheduler: Slurm sends SIGTERM at the
//! time limit (or on preemption), then SIGKILL after `KillWait`. The binary
//! turns the signal into a request on an [`Interrupt`] the run was given;
//! the run looks at it between units of work it can abandon (a listing
//! page, a delete batch not yet sent) and ends with a report marked
//! partial. Whatever was in flight finishes, so every object's fate is
//! known and recorded. Waits on the database are the exception: they are
//! raced against the interrupt ([`Interrupt::raised`]) and dropped, since
//! a read can take hours and deletes nothing. The library installs no
//! signal handler itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A request to stop, shared between whoever asks (a signal handler) and
/// the run that honours it. Clones share one flag; the default is a fresh
/// flag that nobody has raised.
#[derive(Clone, Debug, Default)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// The flag itself, for a signal handler that sets it
    /// (`signal_hook::flag::register`).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// Asks the run to stop.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn requested(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Completes once a stop is asked for (looking every 50 ms): raced
    /// against work that waits on a server (a database read), so the
    /// work is abandoned rather than waited for.
    pub(crate) async fn raised(&self) {
        while !self.requested() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}
