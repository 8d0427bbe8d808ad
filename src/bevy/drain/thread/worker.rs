//! A drain thread's side ([`Worker`]): drains its ring into batches, within the byte limit,
//! and hands them to the frame.
#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crossbeam_utils::Backoff;

use super::shared::Shared;
use crate::bevy::drain::batch::Batch;
use crate::bevy::drain::held::Gate;
use crate::bevy::drain::taken::Sampler;
use crate::bevy::stage::RouteShare;
use crate::{Consumer, Error};

/// Messages per batch a drain thread hands over (at most; less when the ring runs dry, and
/// never more than the frame budget).
pub(super) const BATCH_MAX: usize = 4096;
/// A batch closes once it holds this share of the byte limit (1 / `BATCH_SHARE`; its first
/// message is taken whatever its size), so a thread at its limit holds several batches and
/// refills as soon as the frame lets the oldest go, instead of waiting for all of it.
pub(super) const BATCH_SHARE: u64 = 4;
/// Longest a drain thread parks while it waits for the frame (a stalled frame): the frame
/// unparks it as soon as it takes or lets go a batch, so this only bounds a missed wake-up.
pub(super) const FULL_PARK_MAX: Duration = Duration::from_millis(1);

/// The drain thread's side.
pub(super) struct Worker {
    /// Index of its ring in the resource (for
    /// [`PerdixMessage::ring`](crate::bevy::PerdixMessage::ring) and envelopes).
    pub(super) ring: u32,
    pub(super) consumer: Consumer,
    /// The plugin's routing table; `None` stages everything raw (routing off).
    pub(super) routes: Option<Arc<RouteShare>>,
    /// Messages per batch (at most).
    pub(super) batch_max: usize,
    /// Most bytes held (this thread's and the frame's, see
    /// [`HeldBytes`](crate::bevy::drain::held::HeldBytes)).
    pub(super) max_held: u64,
    /// A batch closes once it holds this many bytes ([`BATCH_SHARE`]).
    pub(super) batch_cap: u64,
    pub(super) full: SyncSender<Batch>,
    pub(super) free: Receiver<Batch>,
    pub(super) shared: Arc<Shared>,
}

impl Worker {
    /// Drains until stopped, or until the ring is closed or faulted and every message taken
    /// was handed over; returns the fault, if one stopped it (dropping `self` drops the
    /// consumer, which closes the ring for its producers).
    pub(super) fn run(mut self) -> Option<Error> {
        let backoff = Backoff::new();
        let mut sampler = Sampler::default();
        // The route table and its generation; a batch is prepared for the table it is filled by.
        let mut routes = self.routes.as_ref().map(|share| share.load());
        let mut batch = Batch::default();
        batch.prepare(routes.as_ref().map(|(_, table)| &**table));
        let mut done = false;
        let mut fault = None;
        loop {
            if self.shared.stop.load(Ordering::Relaxed) {
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
            // At the byte limit (or the batch at its share of it): a message waits in the ring.
            let mut limited = false;
            if room > 0 && !done {
                let ring = self.ring;
                // The frame only takes off `held`, so this room can only be too small.
                let held = self.shared.held.get();
                let cap = self.batch_cap.saturating_sub(batch.cost);
                let mut gate = Gate::capped(self.max_held.saturating_sub(held), cap);
                let drained = self.consumer.drain_admitted(
                    room,
                    |len| gate.admit(len),
                    |msg| batch.push(current, ring, &msg, &mut sampler),
                );
                self.shared.held.add(gate.taken());
                limited = gate.refused();
                match drained {
                    // The ring ran dry (and not because a message did not fit): a producer
                    // that failed has nothing more in it.
                    Ok(taken) if taken < room && !limited => {
                        if let Some(err) = self.shared.posted.take() {
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
                if limited {
                    // Everything this thread may hold is with the frame: wait for it to let a
                    // batch go (it wakes this thread).
                    self.wait_for_room(&backoff);
                } else if backoff.is_completed() {
                    thread::sleep(Duration::from_micros(20));
                } else {
                    backoff.snooze();
                }
                continue;
            }
            let len = batch.count as u64;
            self.shared.queued.fetch_add(len, Ordering::Relaxed);
            match self.full.try_send(batch) {
                Ok(()) => {
                    backoff.reset();
                    batch = self.free.try_recv().unwrap_or_default();
                    batch.prepare(current);
                }
                Err(TrySendError::Full(back)) => {
                    self.shared.queued.fetch_sub(len, Ordering::Relaxed);
                    batch = back;
                    // Keep filling while there is room; wait only with a full batch.
                    if batch.count == self.batch_max || limited || done {
                        self.wait_for_room(&backoff);
                    }
                }
                Err(TrySendError::Disconnected(_)) => return fault,
            }
        }
    }

    /// The channel to the frame is full and so is the batch, or the thread holds all it may:
    /// the frame is stalled. Snoozes a few rounds (a frame that is only late takes a batch
    /// within microseconds), then parks until the frame takes or lets go a batch
    /// ([`DrainThread::wake`](super::DrainThread::wake)) or [`FULL_PARK_MAX`] passes, so a stalled frame costs a few
    /// wake-ups a millisecond, not a core.
    fn wait_for_room(&self, backoff: &Backoff) {
        self.shared.full_waits.fetch_add(1, Ordering::Relaxed);
        if backoff.is_completed() {
            thread::park_timeout(FULL_PARK_MAX);
        } else {
            backoff.snooze();
        }
    }
}
