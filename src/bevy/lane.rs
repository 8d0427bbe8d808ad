//! One ring as the drain sees it ([`Lane`]): its source (a consumer, a drain thread, or
//! closed after a fault), its counts and latency sampling, and its state.
#![forbid(unsafe_code)]

use super::thread::DrainThread;
use crate::{clock, Consumer, Error, Message, Monitor};

/// Drain latency is sampled on one stamped message in this many (a clock read each).
const LATENCY_SAMPLE_EVERY: u64 = 64;

/// What a drain took from one or more rings.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) count: usize,
    /// Sampled latencies (drain clock minus stamp), in ns.
    pub(crate) latencies: Vec<u64>,
}

impl Taken {
    pub(crate) fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.latencies.extend(other.latencies);
    }
}

/// Up to `max` messages of ring `idx` into `sink`, counted in `taken` (and latency-sampled)
/// and in the lane's own totals.
pub(crate) fn take_lane<F>(lane: &mut Lane, idx: usize, max: usize, sink: &mut F, taken: &mut Taken)
where
    F: FnMut(usize, Message<'_>),
{
    if max == 0 {
        return;
    }
    let mut sampler = lane.sampler;
    let before = taken.count;
    let (mut bytes, latencies) = (0u64, &mut taken.latencies);
    taken.count += lane.drain(max, |msg| {
        bytes += msg.len() as u64;
        sampler.sample(msg.stamp_ns(), latencies);
        sink(idx, msg);
    });
    lane.sampler = sampler;
    lane.messages += (taken.count - before) as u64;
    lane.bytes += bytes;
}

/// Samples drain latency on one stamped message in [`LATENCY_SAMPLE_EVERY`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Sampler {
    /// Stamped messages seen.
    tick: u64,
}

impl Sampler {
    #[inline]
    pub(crate) fn sample(&mut self, stamp_ns: u64, latencies: &mut Vec<u64>) {
        if stamp_ns != 0 {
            self.tick += 1;
            if self.tick.is_multiple_of(LATENCY_SAMPLE_EVERY) {
                latencies.push(clock::now_ns().saturating_sub(stamp_ns));
            }
        }
    }
}

/// One ring and how it is drained.
#[derive(Debug)]
pub(crate) struct Lane {
    pub(crate) name: String,
    pub(crate) monitor: Monitor,
    pub(crate) source: Source,
    /// The producer is gone and every message was taken (or the ring failed).
    pub(crate) finished: bool,
    /// The fault the ring stopped on ([`RingState::Failed`]).
    pub(crate) fault: Option<Error>,
    /// `fault` was reported as a [`PerdixEvent`].
    pub(crate) reported: bool,
    /// Its producer's fault, the lane's own once the ring is drained dry (System drain; a
    /// drain thread is handed it and ends with it).
    producer_fault: Option<Error>,
    /// Drain latency sampling.
    sampler: Sampler,
    /// The CUDA device that writes this ring, if any.
    pub(crate) device: Option<u32>,
    /// Messages and payload bytes taken from this ring so far.
    pub(crate) messages: u64,
    pub(crate) bytes: u64,
}

#[derive(Debug)]
pub(crate) enum Source {
    Direct(Consumer),
    Thread(DrainThread),
    /// The ring failed: its consumer (or drain thread) is dropped, which closed the ring.
    Closed,
}

impl Lane {
    pub(crate) fn new(name: &str, monitor: Monitor, source: Source, device: Option<u32>) -> Self {
        Self {
            name: name.to_owned(),
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
        }
    }

    /// Up to `max` messages: `f(view)` on each (in [`DrainMode::Thread`], views of the raw
    /// messages the drain thread staged).
    pub(crate) fn drain<F>(&mut self, max: usize, mut f: F) -> usize
    where
        F: FnMut(Message<'_>),
    {
        if self.finished {
            return 0;
        }
        let count = match &mut self.source {
            Source::Direct(consumer) => match consumer.drain_checked(max, &mut f) {
                Ok(count) => count,
                Err(Error::Disconnected) => {
                    self.finished = true;
                    0
                }
                Err(err) => {
                    self.fail(err);
                    0
                }
            },
            Source::Thread(thread) => thread.take_raw(max, &mut f),
            Source::Closed => 0,
        };
        self.settle();
        if count < max && matches!(self.source, Source::Direct(_)) {
            self.take_producer_fault(); // the ring ran dry
        }
        count
    }

    /// The ring's producer stopped on `err`: the lane fails with it once everything already
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

    /// The producer failed and everything it published is taken: the lane fails with it.
    fn take_producer_fault(&mut self) {
        if let Some(err) = self.producer_fault.take() {
            if !self.finished {
                self.fail(err);
            }
        }
    }

    /// Stops the lane on `err`: drops its consumer, which closes the ring for its producers.
    pub(crate) fn fail(&mut self, err: Error) {
        self.finished = true;
        self.fault = Some(err);
        self.source = Source::Closed;
    }

    /// A drain thread that is done (its ring closed or failed, and everything it handed over
    /// taken) finishes the lane, with the thread's fault if one stopped it.
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

    /// Messages waiting in the ring plus those the drain thread holds.
    pub(crate) fn backlog(&self) -> u64 {
        if matches!(self.source, Source::Closed) {
            return 0; // a failed ring's leftovers are never read
        }
        self.monitor.stats().occupancy() + self.queued()
    }

    pub(crate) fn queued(&self) -> u64 {
        match &self.source {
            Source::Direct(_) | Source::Closed => 0,
            Source::Thread(thread) => thread.queued(),
        }
    }
}

#[cfg(test)]
mod tests;
