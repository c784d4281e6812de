//! Re-reading the references while a deletion runs.
//!
//! A deduplicated object can be reused by a new row at any moment, so a
//! re-check made once before deleting leaves open the whole time the
//! deletion takes. While a plan is executed, a [`Watch`] thread reads the
//! references again and again (after each read it rests as long as the read
//! took, and at least until [`RECHECK_INTERVAL`] has passed since it began);
//! every batch is filtered against the newest complete read just before its
//! delete call. A row committed before that read began always keeps its
//! object, so the window left is at most two reference reads plus one batch,
//! whatever the size of the run.
//! A failed read stops all further deletion: acting on an old read would
//! widen the window silently.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::references::References;

/// Reads the live references of the collected schemas afresh.
pub type ReadReferences<'a> = dyn Fn() -> Result<References> + Sync + 'a;

/// The least time between the starts of two reads.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The newest reference read, kept fresh by [`Watch::run`].
pub(crate) struct Watch<'a> {
    read: &'a ReadReferences<'a>,
    latest: Mutex<Option<Arc<References>>>,
    failure: Mutex<Option<String>>,
    stopped: Mutex<bool>,
    wake: Condvar,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(read: &'a ReadReferences<'a>) -> Self {
        Watch {
            read,
            latest: Mutex::new(None),
            failure: Mutex::new(None),
            stopped: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    /// Reads until [`Watch::stop`] or the first failure.
    pub(crate) fn run(&self) {
        loop {
            let started = Instant::now();
            match (self.read)() {
                Ok(references) => {
                    *self.latest.lock().expect("watch lock") = Some(Arc::new(references));
                }
                Err(e) => {
                    *self.failure.lock().expect("watch lock") = Some(e.to_string());
                    return;
                }
            }
            // Rest as long as the read took, so re-reading takes at most
            // half of the database's (and this machine's) time.
            let took = started.elapsed();
            let wait = RECHECK_INTERVAL.saturating_sub(took).max(took);
            let stopped = self.stopped.lock().expect("watch lock");
            let (stopped, _) = self
                .wake
                .wait_timeout_while(stopped, wait, |stopped| !*stopped)
                .expect("watch lock");
            if *stopped {
                return;
            }
        }
    }

    pub(crate) fn stop(&self) {
        *self.stopped.lock().expect("watch lock") = true;
        self.wake.notify_all();
    }

    /// The newest complete read, if one has finished.
    pub(crate) fn latest(&self) -> Option<Arc<References>> {
        self.latest.lock().expect("watch lock").clone()
    }

    /// Why reading failed, once it has.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failure.lock().expect("watch lock").clone()
    }
}
