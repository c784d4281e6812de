//! Re-reading the references while a deletion runs.
//!
//! A deduplicated object can be reused by a new row at any moment, so a
//! re-check made once before deleting leaves open the whole time the
//! deletion takes. While a plan is executed, a [`Watch`] thread reads the
//! references again and again (after each read it rests as long as the read
//! took, and at least until [`RECHECK_INTERVAL`] has passed since it began);
//! every batch is filtered against the newest complete read just before its
//! delete call ([`Watch::fresh`]).
//!
//! No batch is deleted by a read that began too long ago: the bound is four
//! times the last read's duration (in steady state the newest read began at
//! most three reads ago), and at least [`MIN_STALENESS`]. When the newest
//! read is older, deletion pauses until the next one completes. So the
//! window left for a row committed meanwhile is that bound plus one batch,
//! whatever the size of the run, and a database that slows down slows the
//! deletion instead of widening the window.
//!
//! A failed read stops all further deletion. Each read is itself bounded
//! (every wait on the database times out: see [`crate::refs::db`]), so a database
//! that stops answering ends the deletion within that timeout; no state
//! waits forever.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::refs::References;

/// Reads the live references of the collected schemas afresh.
pub type ReadReferences<'a> = dyn Fn() -> Result<References> + Sync + 'a;

/// The least time between the starts of two reads.
pub const RECHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The least age at which a read is too old to delete by.
pub const MIN_STALENESS: Duration = Duration::from_secs(2);

/// How often a paused deletion looks again (besides being woken by a read).
const PAUSE_POLL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct State {
    /// The newest complete read, and when it began.
    latest: Option<(Arc<References>, Instant)>,
    /// How long the newest complete read took.
    took: Duration,
    failure: Option<String>,
    stopped: bool,
}

/// How long after it began a read that took `took` may still be deleted
/// by: four times its duration, at least [`MIN_STALENESS`].
pub(crate) fn staleness_bound(took: Duration) -> Duration {
    (took * 4).max(MIN_STALENESS)
}

/// The newest reference read, kept fresh by [`Watch::run`].
pub(crate) struct Watch<'a> {
    read: &'a ReadReferences<'a>,
    state: Mutex<State>,
    /// Signalled after every read, and when the watch stops.
    changed: Condvar,
}

impl<'a> Watch<'a> {
    pub(crate) fn new(read: &'a ReadReferences<'a>) -> Self {
        Watch {
            read,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("watch lock")
    }

    /// Reads until [`Watch::stop`] or the first failure. Should this
    /// thread fail (panic), reading counts as failed, so that no deletion
    /// waits for it.
    pub(crate) fn run(&self) {
        let _failed_on_unwind = FailOnUnwind(self);
        loop {
            let started = Instant::now();
            let outcome = (self.read)();
            let took = started.elapsed();
            let mut state = self.state();
            match outcome {
                Ok(references) => {
                    state.latest = Some((Arc::new(references), started));
                    state.took = took;
                    self.changed.notify_all();
                }
                // A read abandoned on a signal stops the watch: the run is
                // ending, and its database did not fail.
                Err(crate::Error::Interrupted(_)) => {
                    state.stopped = true;
                    self.changed.notify_all();
                    return;
                }
                Err(e) => {
                    state.failure = Some(e.to_string());
                    self.changed.notify_all();
                    return;
                }
            }
            // Rest as long as the read took, so re-reading takes at most
            // half of the database's (and this machine's) time.
            let wait = RECHECK_INTERVAL.saturating_sub(took).max(took);
            let (state, _) = self
                .changed
                .wait_timeout_while(state, wait, |state| !state.stopped)
                .expect("watch lock");
            if state.stopped {
                return;
            }
        }
    }

    pub(crate) fn stop(&self) {
        self.state().stopped = true;
        self.changed.notify_all();
    }

    /// Stops the watch when dropped: however the deletion ends (a worker
    /// panicking included), the re-reading thread ends with it.
    pub(crate) fn stopper(&self) -> impl Drop + '_ {
        struct Stopper<'w, 'a>(&'w Watch<'a>);
        impl Drop for Stopper<'_, '_> {
            fn drop(&mut self) {
                self.0.stop();
            }
        }
        Stopper(self)
    }

    /// The newest read, once it is recent enough to delete by: waits while
    /// there is none yet or the newest began too long ago. Why reading
    /// failed (or stopped), once it has: nothing may be deleted after that.
    pub(crate) fn fresh(&self) -> Result<Arc<References>, String> {
        let mut state = self.state();
        loop {
            if let Some(failure) = &state.failure {
                return Err(failure.clone());
            }
            if state.stopped {
                return Err("re-reading the references has stopped".to_string());
            }
            let bound = staleness_bound(state.took);
            if let Some((references, started)) = &state.latest {
                if started.elapsed() <= bound {
                    return Ok(references.clone());
                }
            }
            state = self
                .changed
                .wait_timeout(state, PAUSE_POLL)
                .expect("watch lock")
                .0;
        }
    }

    /// Why reading failed, once it has.
    pub(crate) fn failure(&self) -> Option<String> {
        self.state().failure.clone()
    }
}

/// Records a failure if the watch's thread unwinds.
struct FailOnUnwind<'w, 'a>(&'w Watch<'a>);

impl Drop for FailOnUnwind<'_, '_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            state.failure = Some("the thread re-reading the references failed".to_string());
            self.0.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn deletion_waits_for_a_fresh_read_and_stops_when_reading_fails() {
        // The first read is quick, the second hangs for a while, then fails:
        // while it hangs, the first grows too old to delete by.
        let calls = AtomicUsize::new(0);
        let read = || -> Result<References> {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 => Ok(References::default()),
                _ => {
                    std::thread::sleep(MIN_STALENESS * 2);
                    Err(crate::Error::Refused("no answer from the database".into()))
                }
            }
        };
        let watch = Watch::new(&read);
        std::thread::scope(|scope| {
            scope.spawn(|| watch.run());
            assert!(watch.fresh().is_ok(), "the first read is fresh");
            // The first read began before this instant.
            let first = Instant::now();
            loop {
                // Measured before asking: the read's age when `fresh` judged
                // it can only be more.
                let asked = first.elapsed();
                match watch.fresh() {
                    // No batch goes by a read older than the bound...
                    Ok(_) => assert!(asked <= MIN_STALENESS, "{asked:?}"),
                    // ...then deletion waits, and stops when the read fails.
                    Err(e) => {
                        assert!(e.contains("no answer"), "{e}");
                        assert!(first.elapsed() >= MIN_STALENESS, "{:?}", first.elapsed());
                        break;
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            watch.stop();
        });
    }
}
