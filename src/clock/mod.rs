//! The clock messages are stamped with, and (with `cuda`) the GPU clock mapped onto it.
//!
//! [`now_ns()`] is nanoseconds of the monotonic clock (`std::time::Instant`) since a fixed point
//! taken once per process. A CPU producer stamps with it; a GPU producer stamps with
//! `%globaltimer` mapped onto it by calibration, so one-way latency is
//! `now_ns() - message.stamp_ns()` for either kind of producer.
//!
//! The calibration is a ping-pong with a one-thread probe kernel: the host writes a round number
//! into pinned memory at `t0`, the kernel answers with its `%globaltimer`, the host sees the
//! answer at `t1`. The GPU read its clock somewhere in `[t0, t1]`, so the midpoint maps it with
//! an error of at most `(t1 - t0) / 2` plus the timer's tick; the tightest of many rounds is
//! kept. `%globaltimer` drifts against the CPU clock, so a calibration is repeated and the slope
//! fitted (measured drift and residuals: `docs/PERFORMANCE.md`; why: `docs/DESIGN-NOTES.md`,
//! "The clock mapping is refitted during a run").
#![cfg_attr(
    feature = "cuda",
    doc = "\n[`calibrate`] makes one mapping ([`ClockMapping`]), [`calibrate_drift`] two with \
           the slope between them, and a [`ClockTracker`] refits the mapping of a running \
           producer."
)]
#![forbid(unsafe_code)]

mod cpu;

#[cfg(feature = "cuda")]
pub use crate::cuda::clock::{calibrate, calibrate_drift, ClockMapping, ClockTracker};
pub use cpu::now_ns;
