//! The end of a frame, the drain's: [`close_frame`] closes the frame's accounting (its count
//! and largest message, the most in one frame) and adds a sample to the rate history a
//! dashboard shows, every ~100 ms. Readers of the counters (the diagnostics, the exporters)
//! only read.
#![forbid(unsafe_code)]

use bevy_ecs::system::{Local, ResMut};

use super::rings::PerdixRings;
use crate::clock;

/// The rate history is sampled at most this often (a per-frame rate at thousands of frames a
/// second is mostly quantisation noise).
pub(crate) const SAMPLE_EVERY_NS: u64 = 100_000_000;

/// When the history started and when it was last sampled, in [`clock::now_ns`].
#[derive(Default)]
pub(crate) struct HistoryClock {
    start: u64,
    last: u64,
}

/// Closes the frame's drain accounting; every ~100 ms, samples the rate history.
pub(crate) fn close_frame(rings: Option<ResMut<PerdixRings>>, mut clock: Local<HistoryClock>) {
    let Some(mut rings) = rings else {
        return;
    };
    rings.end_frame();
    let now = clock::now_ns();
    if clock.start == 0 {
        clock.start = now;
    } else if now - clock.last < SAMPLE_EVERY_NS {
        return;
    }
    clock.last = now;
    rings.sample_history((now - clock.start) as f64 * 1e-9);
}
