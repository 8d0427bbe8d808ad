//! Drain threads ([`DrainMode::Thread`](crate::bevy::DrainMode::Thread)): one consumer thread per
//! ring keeps the ring empty between frames and hands staged batches to the frame.
//!
//! What a thread holds (its batch being filled, the batches it handed over, the batches the
//! frame took and has not let go) is bounded in bytes by
//! [`PerdixPlugin::max_held_bytes`](crate::bevy::PerdixPlugin::max_held_bytes) (`held.rs`):
//! at the limit the thread stops taking from its ring, before the message that does not fit,
//! and waits for the frame to let a batch go; the ring fills behind it, which is backpressure
//! for `Block` producers and where `DropNewest` producers drop.
//!
//! The frame's side is here ([`DrainThread`]); the thread's is `worker.rs`, and what the two
//! share (counts, the stop flag, a posted fault) `shared.rs`.
#![forbid(unsafe_code)]

mod shared;
mod worker;

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use super::batch::Batch;
use super::held::HeldBytes;
use crate::bevy::event;
use crate::bevy::stage::RouteShare;
use crate::{Consumer, Error, Message};
use shared::Shared;
use worker::{Worker, BATCH_MAX, BATCH_SHARE};

/// Batches a drain thread may have handed over and not yet had back.
const BATCH_DEPTH: usize = 16;

/// A consumer thread that keeps its ring empty and hands staged batches to the drain system.
#[derive(Debug)]
pub(crate) struct DrainThread {
    /// Full batches from the thread (a `Mutex` only to make the resource `Sync`: one locker).
    full: Mutex<Receiver<Batch>>,
    /// Empty batches back to the thread, for reuse.
    free: SyncSender<Batch>,
    /// The oldest handed-over batch not yet taken: received but too big for what was left of
    /// a frame's budget, or partly taken by
    /// [`PerdixRings::drain_with`](crate::bevy::PerdixRings::drain_with).
    pending: Option<Batch>,
    /// The thread is gone and every batch it sent was received.
    closed: bool,
    /// What the thread and this side share: counts, the stop flag, a posted fault.
    shared: Arc<Shared>,
    /// The thread; it returns the fault that stopped it, if any.
    handle: Option<JoinHandle<Option<Error>>>,
    /// Why the thread stopped, once it is done: its ring's fault, or the spawn failure.
    fault: Option<Error>,
}

impl DrainThread {
    /// A thread draining `consumer` (ring index `ring`), staging by `routes` (all raw without),
    /// in batches that fit `budget`, holding at most `max_held` bytes
    /// ([`held::cost`](super::held::cost) per message: at least one message of its ring's
    /// largest size must fit, as `PerdixPlugin::validate` checks).
    pub(crate) fn spawn(
        name: &str,
        ring: u32,
        consumer: Consumer,
        routes: Option<Arc<RouteShare>>,
        budget: usize,
        max_held: u64,
    ) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel(BATCH_DEPTH);
        let (free_tx, free_rx) = mpsc::sync_channel(BATCH_DEPTH + 2);
        let shared = Arc::new(Shared::default());
        let worker = Worker {
            ring,
            consumer,
            routes,
            // A batch is taken whole, so it must fit a frame's budget.
            batch_max: BATCH_MAX.min(budget).max(1),
            max_held,
            batch_cap: max_held / BATCH_SHARE,
            full: full_tx,
            free: free_rx,
            shared: Arc::clone(&shared),
        };
        let handle = thread::Builder::new()
            .name(format!("perdix-drain-{name}"))
            .spawn(move || worker.run());
        let (handle, fault) = match handle {
            Ok(handle) => (Some(handle), None),
            // The worker (and with it the consumer, closing the ring) is gone: the ring fails.
            Err(err) => (None, Some(event::spawn_error(&err))),
        };
        Self {
            full: Mutex::new(full_rx),
            free: free_tx,
            pending: None,
            shared,
            handle,
            closed: fault.is_some(),
            fault,
        }
    }

    /// Messages handed over and not yet taken.
    pub(crate) fn queued(&self) -> u64 {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Bytes the thread took out of its ring that the frame has not let go (each message its
    /// [`held::cost`](super::held::cost)); at most the limit it was spawned with.
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> u64 {
        self.shared.held.get()
    }

    /// The count of [`held_bytes`](Self::held_bytes), shared with the ring and the batches
    /// delivered from it.
    pub(crate) fn held(&self) -> Arc<HeldBytes> {
        Arc::clone(&self.shared.held)
    }

    /// Whether a handed-over batch waits (one that did not fit what was left of a budget).
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The oldest batch not yet taken, if the thread handed one over.
    pub(crate) fn next_batch(&mut self) -> Option<&mut Batch> {
        if self.pending.is_none() && !self.closed {
            let receiver = self.full.get_mut().unwrap_or_else(PoisonError::into_inner);
            match receiver.try_recv() {
                Ok(batch) => {
                    self.pending = Some(batch);
                    self.wake();
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => self.closed = true,
            }
        }
        self.pending.as_mut()
    }

    /// Takes the next batch whole if it holds at most `room` messages.
    pub(crate) fn take_batch(&mut self, room: usize) -> Option<Batch> {
        let left = self.next_batch()?.left();
        if left > room {
            return None;
        }
        self.shared.queued.fetch_sub(left as u64, Ordering::Relaxed);
        let mut batch = self.pending.take()?;
        // What `drain_with` already took is not the drain system's.
        batch.drop_raw_taken(&self.shared.held);
        Some(batch)
    }

    /// Returns an emptied batch to the thread for reuse; what it held is let go (the thread
    /// is woken: it may wait for that room).
    pub(crate) fn recycle(&mut self, mut batch: Batch) {
        batch.clear(&self.shared.held);
        // A full free queue only means the thread has spares: drop this one.
        let _ = self.free.try_send(batch);
        self.wake();
    }

    /// Up to `max` raw messages of the handed-over batches, for
    /// [`PerdixRings::drain_with`](crate::bevy::PerdixRings::drain_with); stops at a batch that
    /// still holds staged typed messages (the drain system takes those).
    pub(crate) fn take_raw<F>(&mut self, max: usize, f: &mut F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        let mut count = 0;
        while count < max {
            let Some(batch) = self.next_batch() else {
                break;
            };
            let end = batch.stage.raw.len().min(batch.raw_taken + (max - count));
            for msg in batch
                .stage
                .raw
                .get(batch.raw_taken..end)
                .unwrap_or_default()
            {
                batch.raw_taken_bytes += msg.payload().len() as u64;
                f(msg.view());
            }
            count += end - batch.raw_taken;
            batch.raw_taken = end;
            if batch.left() > 0 {
                // Raw messages left (the budget ran out), or typed ones for the drain system.
                break;
            }
            if let Some(batch) = self.pending.take() {
                self.recycle(batch);
            }
        }
        self.shared
            .queued
            .fetch_sub(count as u64, Ordering::Relaxed);
        count
    }

    /// The thread is gone and everything it handed over was taken.
    pub(crate) fn is_done(&self) -> bool {
        self.closed && self.pending.is_none()
    }

    /// Once [`is_done`](Self::is_done): the fault that stopped the thread (its ring's, read
    /// after every message before it was delivered), if any. Joins the thread, which has
    /// already dropped its end of the channel and with it is all but gone.
    pub(crate) fn fault(&mut self) -> Option<&Error> {
        if !self.is_done() {
            return None;
        }
        if let Some(handle) = self.handle.take() {
            match handle.join() {
                Ok(fault) => self.fault = fault,
                // Its ring fails with it (an event, `perdix/errors` and the log).
                Err(_) => self.fault = Some(Error::Panicked("a ring's drain thread".into())),
            }
        }
        self.fault.as_ref()
    }

    /// Loops the thread made while its channel to the frame was full.
    #[cfg(test)]
    pub(crate) fn full_waits(&self) -> u64 {
        self.shared.full_waits.load(Ordering::Relaxed)
    }

    /// The ring's producer stopped on `err`: the thread takes what is still in the ring, then
    /// ends with `err` as its fault (reported after its last batch).
    pub(crate) fn post_fault(&self, err: Error) {
        self.shared.posted.post(err);
    }

    /// Wakes the thread if it waits for the frame (which just took or let go a batch).
    fn wake(&self) {
        if let Some(handle) = &self.handle {
            handle.thread().unpark();
        }
    }
}

impl Drop for DrainThread {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::warn!("perdix: a drain thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests;
