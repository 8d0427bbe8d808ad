//! One consumer thread of a stress run: drains its rings, verifies every message and samples
//! the one-way latency.

use std::thread;

use crate::telemetry::LatencyHistogram;
use crate::testing::stress::{Sizes, Verifier};
use crate::{clock, Consumer, Error};

/// What one consumer thread found.
pub(super) struct ThreadResult {
    /// Every message this thread read, checked.
    pub(super) verifier: Verifier,
    /// One-way latency of the sampled messages.
    pub(super) latency: LatencyHistogram,
    /// Sampled stamps later than the reading (calibration error).
    pub(super) early: u64,
    /// The first error other than the end of a ring's stream (a corrupt slot).
    pub(super) error: Option<Error>,
}

/// Reads `rings` until every one is disconnected (or failed), checking every message (`full`:
/// every word; its length against `sizes` always) and timing every `latency_every`-th (0: none).
pub(super) fn consume(
    mut rings: Vec<Consumer>,
    full: bool,
    sizes: Sizes,
    latency_every: u32,
) -> ThreadResult {
    let mut verifier = Verifier::with_sizes(full, sizes);
    let mut latency = LatencyHistogram::new();
    let mut early = 0u64;
    let mut error = None;
    let mut done = vec![false; rings.len()];
    let mut left = rings.len();
    let mut idle = 0u32;
    let mut count = 0u64;
    let every = u64::from(latency_every.max(1));
    while left > 0 {
        let mut got = 0;
        for (consumer, finished) in rings.iter_mut().zip(done.iter_mut()) {
            if *finished {
                continue;
            }
            let drained = consumer.drain_checked(8192, |msg| {
                verifier.check(msg.producer(), &msg);
                if latency_every > 0 {
                    count += 1;
                    if count.is_multiple_of(every) {
                        let now = clock::now_ns();
                        let stamp = msg.stamp_ns();
                        if stamp > now {
                            early += 1;
                        } else {
                            latency.record(now - stamp);
                        }
                    }
                }
            });
            match drained {
                Ok(n) => got += n,
                Err(Error::Disconnected) => {
                    *finished = true;
                    left -= 1;
                }
                Err(err) => {
                    error.get_or_insert(err);
                    *finished = true;
                    left -= 1;
                }
            }
        }
        if got == 0 {
            // Spin (a yield costs microseconds of latency at light load); yield only after
            // ~65 k empty rounds, so an idle run does not hog a core forever.
            idle += 1;
            if idle > 1 << 16 {
                thread::yield_now();
            } else {
                core::hint::spin_loop();
            }
        } else {
            idle = 0;
        }
    }
    // Dropping the consumers closes their rings on the device: a kernel still waiting on a ring
    // whose consumer hit a corrupt slot returns instead of hanging.
    drop(rings);
    ThreadResult {
        verifier,
        latency,
        early,
        error,
    }
}
