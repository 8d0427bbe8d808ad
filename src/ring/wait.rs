//! How a blocking call waits on the other half.

#[cfg(not(perdix_loom))]
use core::hint::spin_loop;

use crossbeam_utils::Backoff;

/// Polls tightly first, then backs off with crossbeam's [`Backoff`] (spin, then yield).
///
/// The other half usually answers within a cache-line transfer, and `Backoff::snooze` alone
/// doubles its spin count from the first call, so a waiter would sleep through the answer: the
/// first [`Wait::TIGHT_POLLS`] waits are a single `spin_loop` hint each.
#[derive(Debug)]
#[cfg_attr(perdix_loom, allow(dead_code))]
pub(crate) struct Wait {
    polls: u32,
    backoff: Backoff,
}

impl Wait {
    /// Single-hint waits before backing off.
    const TIGHT_POLLS: u32 = 1 << 10;

    pub(crate) fn new() -> Self {
        Self {
            polls: 0,
            backoff: Backoff::new(),
        }
    }

    /// Waits a little.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        // Under loom a wait is a yield: the model checker must run the other half to make
        // progress (and explores every interleaving of it).
        #[cfg(perdix_loom)]
        loom::thread::yield_now();
        #[cfg(not(perdix_loom))]
        if self.polls < Self::TIGHT_POLLS {
            self.polls += 1;
            spin_loop();
        } else {
            self.backoff.snooze();
        }
    }

    /// Whether waiting has reached the yielding stage (time to check a clock or park).
    pub(crate) fn is_completed(&self) -> bool {
        self.polls >= Self::TIGHT_POLLS && self.backoff.is_completed()
    }
}
