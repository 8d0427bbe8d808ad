//! [`Launches`]: the one rule for a producer's `args` closure, on the GPU and on the CPU
//! fallback alike: it is called exactly once for each launch that runs, with that launch's
//! number (0, 1, 2, ... with no gaps); a frame whose launch is skipped neither calls it nor
//! takes a number.
#![forbid(unsafe_code)]

use bevy_ecs::world::World;

use super::spec::ArgsFn;

/// A producer's `args` closure and the number of its next launch.
pub(super) struct Launches<A> {
    args: Option<ArgsFn<A>>,
    /// The number of the next launch that runs (the count of those that ran).
    next: u64,
}

impl<A: bytemuck::Zeroable> Launches<A> {
    /// The launches of a producer whose closure is `args` (`None`: `A::zeroed()` every time),
    /// none run yet.
    pub(super) fn new(args: Option<ArgsFn<A>>) -> Self {
        Self { args, next: 0 }
    }

    /// The number and arguments of the next launch. Call it only once that launch is sure to
    /// run (its producer has room for it): every call takes a number.
    pub(super) fn next(&mut self, world: &World) -> (u64, A) {
        let launch = self.next;
        self.next += 1;
        let args = self
            .args
            .as_ref()
            .map_or_else(A::zeroed, |args| args(world, launch));
        (launch, args)
    }
}
