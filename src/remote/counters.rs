//! What the stream counted: [`RemoteCounters`] (a receiver's, per stream and in total) and
//! [`PublisherCounters`]. Plain snapshots, read any number of times, taking nothing.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};

use super::key::StreamId;
use super::wire::BatchHeader;

/// One stream's counts at a receiver (all monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamCounters {
    /// Batches received.
    pub batches: u64,
    /// Messages received.
    pub messages: u64,
    /// Batch bytes received (headers included).
    pub bytes: u64,
    /// Batches missing: numbers skipped in the stream's batch sequence.
    pub lost_batches: u64,
    /// Messages missing: stream indexes skipped.
    pub lost_messages: u64,
    /// Batches with a number below the next expected one, not delivered (a restarted
    /// publisher's first batch restarts the stream instead, see `restarts`).
    pub out_of_order: u64,
    /// Times the stream started again from batch 0.
    pub restarts: u64,
    /// Whether the stream's last batch (END) came.
    pub ended: bool,
    /// The next batch number expected.
    pub next_batch: u64,
    /// The next message index expected.
    pub next_message: u64,
    /// Sum of publish-to-receive latencies in ns (the batches' send time against this host's
    /// clock, UNIX epoch: meaningful across hosts only with synchronized clocks).
    pub latency_sum_ns: u64,
    /// Batches in `latency_sum_ns` (a send time ahead of this clock is left out).
    pub latency_samples: u64,
    /// The largest publish-to-receive latency in ns.
    pub latency_max_ns: u64,
}

impl StreamCounters {
    /// The mean publish-to-receive latency in ns, if any was measured.
    #[must_use]
    pub fn latency_mean_ns(&self) -> Option<u64> {
        self.latency_sum_ns.checked_div(self.latency_samples)
    }

    /// Accounts for batch `h` of `bytes` bytes received at `now_ns`; returns whether it is
    /// delivered (not out of order).
    pub(crate) fn record(&mut self, h: &BatchHeader, bytes: usize, now_ns: u64) -> bool {
        if h.batch < self.next_batch {
            if h.batch == 0 && h.first == 0 {
                // The publisher started again: a new stream under the same key.
                self.restarts += 1;
                self.next_batch = 0;
                self.next_message = 0;
                self.ended = false;
            } else {
                self.out_of_order += 1;
                return false;
            }
        }
        // Numbers from the network: saturating, never wrapping or panicking.
        self.lost_batches = self
            .lost_batches
            .saturating_add(h.batch.saturating_sub(self.next_batch));
        self.lost_messages = self
            .lost_messages
            .saturating_add(h.first.saturating_sub(self.next_message));
        self.next_batch = h.batch.saturating_add(1);
        self.next_message = h.next_first().unwrap_or(u64::MAX);
        self.batches = self.batches.saturating_add(1);
        self.messages = self.messages.saturating_add(u64::from(h.count));
        self.bytes = self.bytes.saturating_add(bytes as u64);
        self.ended |= h.is_end();
        if let Some(latency) = now_ns.checked_sub(h.sent_ns) {
            self.latency_sum_ns = self.latency_sum_ns.saturating_add(latency);
            self.latency_samples += 1;
            self.latency_max_ns = self.latency_max_ns.max(latency);
        }
        true
    }
}

/// A receiver's counts: every stream's and their totals.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RemoteCounters {
    /// Each stream's counts, by stream.
    pub streams: BTreeMap<StreamId, StreamCounters>,
    /// Samples that were not a batch ([`WireError`](super::wire::WireError)), or that came on a
    /// key that is not a stream's.
    pub malformed: u64,
    /// Batches of streams beyond [`MAX_STREAMS`], neither counted per stream nor delivered.
    pub untracked: u64,
}

/// The most streams a receiver keeps counts of (what it holds per stream is bounded too).
pub const MAX_STREAMS: usize = 1024;

impl RemoteCounters {
    /// The sum over every stream (`ended`, `next_*` of the sum mean nothing).
    #[must_use]
    pub fn total(&self) -> StreamCounters {
        self.sum_of(|_| true)
    }

    /// The sum over the streams `keep` selects (a node's, say: `|id| id.node == "host-a"`).
    #[must_use]
    pub fn sum_of(&self, keep: impl Fn(&StreamId) -> bool) -> StreamCounters {
        self.streams
            .iter()
            .filter(|(id, _)| keep(id))
            .map(|(_, s)| s)
            .fold(StreamCounters::default(), |mut t, s| {
                t.batches = t.batches.saturating_add(s.batches);
                t.messages = t.messages.saturating_add(s.messages);
                t.bytes = t.bytes.saturating_add(s.bytes);
                t.lost_batches = t.lost_batches.saturating_add(s.lost_batches);
                t.lost_messages = t.lost_messages.saturating_add(s.lost_messages);
                t.out_of_order = t.out_of_order.saturating_add(s.out_of_order);
                t.restarts = t.restarts.saturating_add(s.restarts);
                t.latency_sum_ns = t.latency_sum_ns.saturating_add(s.latency_sum_ns);
                t.latency_samples = t.latency_samples.saturating_add(s.latency_samples);
                t.latency_max_ns = t.latency_max_ns.max(s.latency_max_ns);
                t
            })
    }

    /// Whether every stream received so far has ended, and at least `streams` did.
    #[must_use]
    pub fn all_ended(&self, streams: usize) -> bool {
        self.streams.len() >= streams && self.streams.values().all(|s| s.ended)
    }
}

/// The receiver's counts, shared with whoever reads them (one lock per batch received).
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedCounters(Arc<Mutex<RemoteCounters>>);

impl SharedCounters {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut RemoteCounters) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub(crate) fn snapshot(&self) -> RemoteCounters {
        self.with(|c| c.clone())
    }
}

/// What a publisher sent (all monotonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PublisherCounters {
    /// Batches handed to zenoh.
    pub batches: u64,
    /// Messages in them.
    pub messages: u64,
    /// Their bytes (headers included).
    pub bytes: u64,
}

/// A publisher's counts, shared with its readers (atomics: its thread never waits on them).
#[derive(Debug, Default)]
pub(crate) struct PublisherTally {
    batches: AtomicU64,
    messages: AtomicU64,
    bytes: AtomicU64,
}

impl PublisherTally {
    pub(crate) fn add(&self, messages: u32, bytes: usize) {
        self.batches.fetch_add(1, Relaxed);
        self.messages.fetch_add(u64::from(messages), Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> PublisherCounters {
        PublisherCounters {
            batches: self.batches.load(Relaxed),
            messages: self.messages.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(batch: u64, first: u64, count: u32) -> BatchHeader {
        BatchHeader {
            flags: 0,
            batch,
            first,
            count,
            sent_ns: 10,
        }
    }

    #[test]
    fn gaps_are_counted_exactly_in_batches_and_messages() {
        let mut s = StreamCounters::default();
        assert!(s.record(&h(0, 0, 5), 100, 15));
        assert!(s.record(&h(3, 20, 5), 100, 15)); // batches 1, 2 (messages 5..20) lost
        assert_eq!(
            (s.batches, s.messages, s.lost_batches, s.lost_messages),
            (2, 10, 2, 15)
        );
        assert!(!s.record(&h(2, 15, 5), 100, 15));
        assert_eq!(s.out_of_order, 1);
        assert!(s.record(&h(0, 0, 1), 100, 5)); // restarted; a send time ahead is left out
        assert_eq!((s.restarts, s.next_batch, s.next_message), (1, 1, 1));
        assert_eq!(
            (s.latency_samples, s.latency_mean_ns(), s.latency_max_ns),
            (2, Some(5), 5)
        );
    }
}
