//! What a drain took ([`Taken`]: a count, the largest payload, sampled latencies, and whether
//! the byte limit stopped it), and the latency [`Sampler`] every drain path (in-system and
//! drain threads) samples by.
#![forbid(unsafe_code)]

use crate::clock;

/// Drain latency is sampled on one stamped message in this many (a clock read each).
const LATENCY_SAMPLE_EVERY: u64 = 64;

/// What a drain took from one or more rings.
#[derive(Debug, Default)]
pub(crate) struct Taken {
    pub(crate) count: usize,
    /// The largest payload taken, in bytes.
    pub(crate) largest: u64,
    /// Sampled latencies (drain clock minus stamp), in ns.
    pub(crate) latencies: Vec<u64>,
    /// A ring stopped at its room in bytes with a message waiting (it counts as deferred, as
    /// when the budget runs out).
    pub(crate) limited: bool,
}

impl Taken {
    pub(crate) fn merge(&mut self, other: Self) {
        self.count += other.count;
        self.largest = self.largest.max(other.largest);
        self.latencies.extend(other.latencies);
        self.limited |= other.limited;
    }
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
