//! The GPU clock (`%globaltimer`) mapped onto [`clock::now_ns`](crate::clock::now_ns): the
//! mapping, its calibration and the tracker that refits it. Public as [`crate::clock`].
//!
//! One way: `mapping` (data and the fit) ← `calibrate` (the probe kernel) ← `tracker` (a thread
//! that calibrates and installs mappings into a producer).

mod calibrate;
mod mapping;
mod tracker;

#[cfg(feature = "testing")]
pub use calibrate::ping_pong;
pub use calibrate::{calibrate, calibrate_drift};
pub use mapping::ClockMapping;
pub use tracker::ClockTracker;
