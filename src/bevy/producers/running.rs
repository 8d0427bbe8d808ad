//! [`Running`]: a producer the plugin started (a GPU kernel's launcher, or a CPU fallback),
//! as the launch system drives it.
#![forbid(unsafe_code)]

use std::ops::Range;

use bevy_ecs::world::World;

use crate::Error;

/// A started producer: launched once a frame (it may skip the launch while behind).
pub(crate) trait Running: Send + Sync {
    /// The producer's name.
    fn name(&self) -> &str;
    /// The indices of the rings it writes, failed with it when it stops on an error.
    fn rings(&self) -> Range<usize>;
    /// One launch; an error once, when the producer stops for good (it is not launched again).
    fn launch(&mut self, world: &World) -> Result<(), Error>;
    /// Launches skipped so far because the previous one was still running.
    fn skipped(&self) -> u64;
}
