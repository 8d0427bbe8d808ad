//! Drain threads ([`DrainMode::Thread`](crate::bevy::DrainMode::Thread)): one consumer thread per
//! ring keeps the ring empty between frames and hands staged batches to the frame.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_utils::Backoff;

use super::batch::Batch;
use super::taken::Sampler;
use crate::bevy::event;
use crate::bevy::stage::RouteShare;
use crate::{Consumer, Error, Message};

/// Messages per batch a drain thread hands over (at most; less when the ring runs dry, and
/// never more than the frame budget).
const BATCH_MAX: usize = 4096;
/// Batches a drain thread may have handed over and not yet had back.
const BATCH_DEPTH: usize = 16;
/// Longest a drain thread parks while its channel to the frame is full (a stalled frame): the
/// frame unparks it as soon as it takes a batch, so this only bounds a missed wake-up.
const FULL_PARK_MAX: Duration = Duration::from_millis(1);

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
    /// Messages handed over and not yet taken.
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Loops the thread made while its channel was full (see [`FULL_PARK_MAX`]); read by tests.
    #[cfg_attr(not(test), allow(dead_code))]
    full_waits: Arc<AtomicU64>,
    /// The thread; it returns the fault that stopped it, if any.
    handle: Option<JoinHandle<Option<Error>>>,
    /// Why the thread stopped, once it is done: its ring's fault, or the spawn failure.
    fault: Option<Error>,
    /// A fault of the ring's producer, for the thread to end with once the ring runs dry.
    posted: Arc<PostedFault>,
}

/// A fault handed to a drain thread ([`DrainThread::post_fault`]).
#[derive(Debug, Default)]
struct PostedFault {
    /// Set (release) after `fault` is written: the thread's empty-ring check is one load.
    set: AtomicBool,
    fault: Mutex<Option<Error>>,
}

impl PostedFault {
    fn post(&self, err: Error) {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
        self.set.store(true, Ordering::Release);
    }

    /// The posted fault, once (one acquire load while none is: pairs with `post`'s release).
    fn take(&self) -> Option<Error> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl DrainThread {
    /// A thread draining `consumer` (ring index `ring`), staging by `routes` (all raw without),
    /// in batches that fit `budget`.
    pub(crate) fn spawn(
        name: &str,
        ring: usize,
        consumer: Consumer,
        routes: Option<Arc<RouteShare>>,
        budget: usize,
    ) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel(BATCH_DEPTH);
        let (free_tx, free_rx) = mpsc::sync_channel(BATCH_DEPTH + 2);
        let queued = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let full_waits = Arc::new(AtomicU64::new(0));
        let posted = Arc::new(PostedFault::default());
        let worker = Worker {
            ring,
            consumer,
            routes,
            // A batch is taken whole, so it must fit a frame's budget.
            batch_max: BATCH_MAX.min(budget).max(1),
            full: full_tx,
            free: free_rx,
            queued: Arc::clone(&queued),
            stop: Arc::clone(&stop),
            full_waits: Arc::clone(&full_waits),
            posted: Arc::clone(&posted),
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
            queued,
            stop,
            full_waits,
            handle,
            closed: fault.is_some(),
            fault,
            posted,
        }
    }

    /// Messages handed over and not yet taken.
    pub(crate) fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
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
        self.queued.fetch_sub(left as u64, Ordering::Relaxed);
        let mut batch = self.pending.take()?;
        // What `drain_with` already took is not the drain system's.
        batch.stage.raw.drain(..batch.raw_taken);
        batch.count -= batch.raw_taken;
        batch.bytes -= batch.raw_taken_bytes;
        (batch.raw_taken, batch.raw_taken_bytes) = (0, 0);
        Some(batch)
    }

    /// Returns an emptied batch to the thread for reuse.
    pub(crate) fn recycle(&mut self, mut batch: Batch) {
        batch.clear();
        // A full free queue only means the thread has spares: drop this one.
        let _ = self.free.try_send(batch);
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
        self.queued.fetch_sub(count as u64, Ordering::Relaxed);
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
        self.full_waits.load(Ordering::Relaxed)
    }

    /// The ring's producer stopped on `err`: the thread takes what is still in the ring, then
    /// ends with `err` as its fault (reported after its last batch).
    pub(crate) fn post_fault(&self, err: Error) {
        self.posted.post(err);
    }

    /// Wakes the thread if it waits for room in the channel (the frame just made some).
    fn wake(&self) {
        if let Some(handle) = &self.handle {
            handle.thread().unpark();
        }
    }
}

impl Drop for DrainThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::warn!("perdix: a drain thread panicked");
            }
        }
    }
}

/// The drain thread's side.
struct Worker {
    /// Index of its ring in the resource (for
    /// [`PerdixMessage::ring`](crate::bevy::PerdixMessage::ring) and envelopes).
    ring: usize,
    consumer: Consumer,
    /// The plugin's routing table; `None` stages everything raw (routing off).
    routes: Option<Arc<RouteShare>>,
    /// Messages per batch (at most).
    batch_max: usize,
    full: SyncSender<Batch>,
    free: Receiver<Batch>,
    queued: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    full_waits: Arc<AtomicU64>,
    posted: Arc<PostedFault>,
}

impl Worker {
    /// Drains until stopped, or until the ring is closed or faulted and every message taken
    /// was handed over; returns the fault, if one stopped it (dropping `self` drops the
    /// consumer, which closes the ring for its producers).
    fn run(mut self) -> Option<Error> {
        let backoff = Backoff::new();
        let mut sampler = Sampler::default();
        // The route table and its generation; a batch is prepared for the table it is filled by.
        let mut routes = self.routes.as_ref().map(|share| share.load());
        let mut batch = Batch::default();
        batch.prepare(routes.as_ref().map(|(_, table)| &**table));
        let mut done = false;
        let mut fault = None;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let (Some(share), Some((generation, current))) = (&self.routes, &mut routes) {
                if share.generation() != *generation {
                    (*generation, *current) = share.load();
                    batch.stage.prepare(current);
                }
            }
            let current = routes.as_ref().map(|(_, table)| &**table);
            let room = self.batch_max - batch.count;
            if room > 0 && !done {
                let ring = self.ring;
                match self.consumer.drain_checked(room, |msg| {
                    batch.push(current, ring, &msg, &mut sampler);
                }) {
                    // The ring ran dry: a producer that failed has nothing more in it.
                    Ok(taken) if taken < room => {
                        if let Some(err) = self.posted.take() {
                            fault = Some(err);
                            done = true;
                        }
                    }
                    Ok(_) => {}
                    Err(Error::Disconnected) => done = true,
                    // Reported by the frame once the batches before it are taken.
                    Err(err) => {
                        fault = Some(err);
                        done = true;
                    }
                }
            }
            if batch.count == 0 {
                if done {
                    return fault;
                }
                if backoff.is_completed() {
                    thread::sleep(Duration::from_micros(20));
                } else {
                    backoff.snooze();
                }
                continue;
            }
            let len = batch.count as u64;
            self.queued.fetch_add(len, Ordering::Relaxed);
            match self.full.try_send(batch) {
                Ok(()) => {
                    backoff.reset();
                    batch = self.free.try_recv().unwrap_or_default();
                    batch.prepare(current);
                }
                Err(TrySendError::Full(back)) => {
                    self.queued.fetch_sub(len, Ordering::Relaxed);
                    batch = back;
                    // Keep filling while there is room; wait only with a full batch.
                    if batch.count == self.batch_max || done {
                        self.wait_for_room(&backoff);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return fault,
            }
        }
    }

    /// The channel to the frame is full and so is the batch: the frame is stalled. Snoozes a
    /// few rounds (a frame that is only late takes a batch within microseconds), then parks
    /// until the frame takes a batch ([`DrainThread::wake`]) or [`FULL_PARK_MAX`] passes, so
    /// a stalled frame costs a few wake-ups a millisecond, not a core.
    fn wait_for_room(&self, backoff: &Backoff) {
        self.full_waits.fetch_add(1, Ordering::Relaxed);
        if backoff.is_completed() {
            thread::park_timeout(FULL_PARK_MAX);
        } else {
            backoff.snooze();
        }
    }
}

#[cfg(test)]
mod tests;
