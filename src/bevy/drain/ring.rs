//! One ring as the drain sees it ([`DrainedRing`]): where its messages come from (its
//! consumer, its drain thread, or nothing once it failed), what was taken from it, latency
//! sampling, the bytes it may still give the current drain, and where it stands.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::held::{Gate, HeldBytes};
use super::taken::{Sampler, Taken};
use super::thread::DrainThread;
use crate::bevy::event::{PerdixEvent, RingState};
use crate::bevy::header::ring_index;
use crate::{Consumer, Error, Message, Monitor};

/// One ring the resource drains, and how: its source, its counts and its state.
#[derive(Debug)]
pub(crate) struct DrainedRing {
    pub(crate) name: Arc<str>,
    pub(crate) monitor: Monitor,
    pub(crate) source: Source,
    /// The producer is gone and every message was taken (or the ring failed).
    pub(crate) finished: bool,
    /// The fault the ring stopped on ([`RingState::Failed`]).
    pub(crate) fault: Option<Error>,
    /// `fault` was reported as a [`PerdixEvent`].
    reported: bool,
    /// Its producer's fault, the ring's own once the ring is drained dry (System drain; a
    /// drain thread is handed it and ends with it).
    producer_fault: Option<Error>,
    /// Drain latency sampling.
    sampler: Sampler,
    /// The CUDA device that writes this ring, if any.
    pub(crate) device: Option<u32>,
    /// Messages and payload bytes the frame took from this ring so far: the ring's own counts
    /// in [`DrainMode::System`](crate::bevy::DrainMode::System); in
    /// [`DrainMode::Thread`](crate::bevy::DrainMode::Thread) those of the batches the frame
    /// took (the ring's count includes what its drain thread still holds).
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
    /// Messages of this ring no route took, and of a routed kind that did not fit its type.
    pub(crate) unrouted: u64,
    /// Messages lost before they reached this ring (a remote stream's gaps, set by its source).
    pub(crate) lost: u64,
    pub(crate) malformed: u64,
    /// Bytes (each message its [`held::cost`](super::held::cost)) this ring may still give the
    /// current drain ([`open`](Self::open)): read from the ring itself
    /// ([`DrainMode::System`](crate::bevy::DrainMode::System)), a drain stops before the
    /// message that does not fit, which stays in the ring.
    room: u64,
    /// Bytes the plugin holds of this ring: its drain thread's batches, and the
    /// [`PerdixBatch`](crate::bevy::PerdixBatch)es delivered from it until they are dropped.
    held: Arc<HeldBytes>,
}

/// Where a ring's messages come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// The ring's consumer, read by the drain itself
    /// ([`DrainMode::System`](crate::bevy::DrainMode::System)).
    Direct(Consumer),
    /// The ring's drain thread ([`DrainMode::Thread`](crate::bevy::DrainMode::Thread)).
    Thread(DrainThread),
    /// The ring failed: its consumer (or drain thread) is dropped, which closed the ring.
    Closed,
}

impl DrainedRing {
    pub(crate) fn new(name: &str, monitor: Monitor, source: Source, device: Option<u32>) -> Self {
        let held = match &source {
            Source::Thread(thread) => thread.held(),
            Source::Direct(_) | Source::Closed => Arc::default(),
        };
        Self {
            held,
            name: name.into(),
            monitor,
            source,
            finished: false,
            fault: None,
            reported: false,
            producer_fault: None,
            sampler: Sampler::default(),
            device,
            messages: 0,
            bytes: 0,
            unrouted: 0,
            lost: 0,
            malformed: 0,
            room: u64::MAX,
        }
    }

    /// Starts a drain that may take up to `max_bytes` from this ring's consumer, less what
    /// the plugin still holds of it (batches not yet dropped).
    pub(crate) fn open(&mut self, max_bytes: u64) {
        self.room = max_bytes.saturating_sub(self.held.get());
    }

    /// The count of what the plugin holds of this ring, for a batch delivered from it.
    pub(crate) fn held(&self) -> &Arc<HeldBytes> {
        &self.held
    }

    /// Up to `max` messages of this ring (index `idx`) into `sink`, counted in `taken` (and
    /// latency-sampled) and in the ring's counts; `taken.limited` notes a message left
    /// waiting for want of room in bytes.
    pub(crate) fn take<F>(&mut self, idx: usize, max: usize, sink: &mut F, taken: &mut Taken)
    where
        F: FnMut(usize, Message<'_>),
    {
        if max == 0 {
            return;
        }
        let mut sampler = self.sampler;
        let before = taken.count;
        let (mut bytes, mut largest, latencies) = (0u64, taken.largest, &mut taken.latencies);
        let (count, refused) = self.drain(max, |msg| {
            let len = msg.len() as u64;
            bytes += len;
            largest = largest.max(len);
            sampler.sample(msg.stamp_ns(), latencies);
            sink(idx, msg);
        });
        taken.count += count;
        taken.limited |= refused;
        taken.largest = largest;
        self.sampler = sampler;
        self.messages += (taken.count - before) as u64;
        self.bytes += bytes;
    }

    /// Up to `max` messages, within the ring's room in bytes: `f(view)` on each (in
    /// [`DrainMode::Thread`](crate::bevy::DrainMode::Thread), views of the raw messages the
    /// drain thread staged, which it holds already). Returns how many, and whether a ready
    /// message was left in the ring for want of room.
    fn drain<F>(&mut self, max: usize, mut f: F) -> (usize, bool)
    where
        F: FnMut(Message<'_>),
    {
        if self.finished {
            return (0, false);
        }
        let mut refused = false;
        let count = match &mut self.source {
            Source::Direct(consumer) => {
                let mut gate = Gate::new(self.room);
                let drained = consumer.drain_admitted(max, |len| gate.admit(len), &mut f);
                (self.room, refused) = (gate.room(), gate.refused());
                drained
            }
            Source::Thread(thread) => Ok(thread.take_raw(max, &mut f)),
            Source::Closed => Ok(0),
        };
        let count = match count {
            Ok(count) => count,
            Err(Error::Disconnected) => {
                self.finished = true;
                0
            }
            Err(err) => {
                self.fail(err);
                0
            }
        };
        self.settle();
        if count < max && !refused && matches!(self.source, Source::Direct(_)) {
            self.take_producer_fault(); // the ring ran dry
        }
        (count, refused)
    }

    /// The ring's producer stopped on `err`: the ring fails with it once everything already
    /// published is taken (a drain thread ends with it when its ring runs dry, and the frame
    /// reports it after the thread's last batch).
    pub(crate) fn producer_failed(&mut self, err: &Error) {
        if self.finished || self.producer_fault.is_some() {
            return;
        }
        if let Source::Thread(thread) = &self.source {
            thread.post_fault(err.clone());
        }
        self.producer_fault = Some(err.clone());
    }

    /// The producer failed and everything it published is taken: the ring fails with it.
    fn take_producer_fault(&mut self) {
        if let Some(err) = self.producer_fault.take() {
            if !self.finished {
                self.fail(err);
            }
        }
    }

    /// Stops the ring on `err`: drops its consumer, which closes the ring for its producers.
    pub(crate) fn fail(&mut self, err: Error) {
        self.finished = true;
        self.fault = Some(err);
        self.source = Source::Closed;
    }

    /// A drain thread that is done (its ring closed or failed, and everything it handed over
    /// taken) finishes the ring, with the thread's fault if one stopped it.
    pub(crate) fn settle(&mut self) {
        let Source::Thread(thread) = &mut self.source else {
            return;
        };
        if !thread.is_done() {
            return;
        }
        match thread.fault().cloned() {
            Some(err) => self.fail(err),
            None => self.finished = true,
        }
    }

    /// Where the ring stands.
    pub(crate) fn state(&self) -> RingState {
        match &self.fault {
            Some(err) => RingState::Failed(err.clone()),
            None if self.finished => RingState::Finished,
            None => RingState::Running,
        }
    }

    /// The ring's failure as a [`PerdixEvent`] (its index is `idx`), once: `None` if it has not
    /// failed or was reported already.
    pub(crate) fn unreported_failure(&mut self, idx: usize) -> Option<PerdixEvent> {
        if self.reported {
            return None;
        }
        let error = self.fault.clone()?;
        self.reported = true;
        Some(PerdixEvent::RingFailed {
            ring: ring_index(idx),
            name: self.name.to_string(),
            device: self.device,
            error,
        })
    }

    /// Messages waiting in the ring plus those the drain thread holds.
    pub(crate) fn backlog(&self) -> u64 {
        if matches!(self.source, Source::Closed) {
            return 0; // a failed ring's leftovers are never read
        }
        self.monitor.stats().occupancy() + self.queued()
    }

    /// Bytes the ring's drain thread, the frame and the batches delivered from it hold (a
    /// drain in the frame lets go of what it took before the frame ends, but a batch holds its
    /// bytes until it is dropped).
    pub(crate) fn held_bytes(&self) -> u64 {
        self.held.get()
    }

    /// Messages the drain thread handed over and the frame has not taken yet.
    pub(crate) fn queued(&self) -> u64 {
        match &self.source {
            Source::Direct(_) | Source::Closed => 0,
            Source::Thread(thread) => thread.queued(),
        }
    }
}

#[cfg(test)]
mod tests;
