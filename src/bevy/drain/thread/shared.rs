//! What a drain thread and the frame share ([`Shared`]): the counts of what the thread handed
//! over and holds, the stop flag, and a fault posted to the thread ([`PostedFault`]).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::bevy::drain::held::HeldBytes;
use crate::Error;

/// The state a drain thread ([`Worker`](super::worker::Worker)) and its
/// [`DrainThread`](super::DrainThread) share, behind one `Arc`.
#[derive(Debug, Default)]
pub(super) struct Shared {
    /// Messages handed over and not yet taken.
    pub(super) queued: AtomicU64,
    /// Bytes of the messages the thread took and the frame (or a batch it delivered) has not
    /// let go; the ring's own count ([`DrainedRing`](crate::bevy::drain::DrainedRing) holds it
    /// too).
    pub(super) held: Arc<HeldBytes>,
    /// The frame is gone: the thread returns.
    pub(super) stop: AtomicBool,
    /// Loops the thread made while it waited for the frame (see
    /// [`FULL_PARK_MAX`](super::worker::FULL_PARK_MAX)); read by tests.
    pub(super) full_waits: AtomicU64,
    /// A fault of the ring's producer, for the thread to end with once the ring runs dry.
    pub(super) posted: PostedFault,
}

/// A fault handed to a drain thread ([`DrainThread::post_fault`](super::DrainThread::post_fault)).
#[derive(Debug, Default)]
pub(super) struct PostedFault {
    /// Set (release) after `fault` is written: the thread's empty-ring check is one load.
    set: AtomicBool,
    fault: Mutex<Option<Error>>,
}

impl PostedFault {
    pub(super) fn post(&self, err: Error) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        self.set.store(true, Ordering::Release);
    }

    /// The posted fault, once (one acquire load while none is: pairs with `post`'s release).
    pub(super) fn take(&self) -> Option<Error> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
