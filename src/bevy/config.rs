//! The plugin's settings as the rings resource keeps them ([`RingConfig`]), where ready
//! messages are taken out of the rings ([`DrainMode`]), and the bound in bytes on what the
//! plugin holds outside each ring ([`max_held_bytes`]).
#![forbid(unsafe_code)]

use crate::layout::SLOT_SIZE;
use crate::{Backend, Policy, RingMode};

/// The default [`PerdixPlugin::max_held_bytes`](super::PerdixPlugin::max_held_bytes): this
/// many times a ring's bytes (16 MiB for the default 16,384-slot ring).
pub(crate) const HELD_RINGS: usize = 4;

/// The limit in effect on what the plugin holds outside each ring: `set`, or [`HELD_RINGS`]
/// times the bytes of a ring of `capacity` slots (checked by `drain::check_max_held`).
pub(crate) fn max_held_bytes(capacity: usize, set: Option<usize>) -> usize {
    set.unwrap_or_else(|| {
        capacity
            .saturating_mul(SLOT_SIZE)
            .saturating_mul(HELD_RINGS)
    })
}

/// Where ready messages are taken out of the rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DrainMode {
    /// The drain system reads the rings itself, once a frame: nothing runs between frames, so a
    /// producer that fills its ring waits for the next frame.
    #[default]
    System,
    /// One consumer thread per ring keeps the ring empty between frames and stages what it
    /// takes by kind (registered types decoded on that thread), so producers are not held to
    /// the frame rate and the frame only writes staged batches into `Messages<T>`. Costs a
    /// thread per ring; the faster mode for busy GPU producers on a host with cores to spare
    /// (measured in `docs/PERFORMANCE.md`). The budget is taken in whole batches of at most
    /// `min(4096, budget)` messages. A thread holds at most
    /// [`PerdixPlugin::max_held_bytes`](super::PerdixPlugin::max_held_bytes) of its ring's
    /// messages (until the frame has written them): at that limit it stops taking, the ring
    /// fills, and producers wait (`Block`) or drop (`DropNewest`) as with the `System` drain.
    Thread,
}

impl core::str::FromStr for DrainMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "system" => Ok(Self::System),
            "thread" => Ok(Self::Thread),
            other => Err(format!(
                "unknown drain mode {other:?}: expected system or thread"
            )),
        }
    }
}

impl core::fmt::Display for DrainMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::System => "system",
            Self::Thread => "thread",
        })
    }
}

/// The plugin's settings, as the rings resource keeps them (every ring it adds gets them).
#[derive(Debug, Clone)]
pub(crate) struct RingConfig {
    /// Slots in each ring.
    pub(crate) capacity: usize,
    /// Memory of GPU producers' rings (`None`: the CUDA backend picks).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) memory: Option<Backend>,
    /// Backpressure policy of the producers the plugin starts.
    pub(crate) policy: Policy,
    /// How the rings lay out messages.
    pub(crate) mode: RingMode,
    /// Most messages taken per frame, over all rings (at least 1).
    pub(crate) budget: usize,
    /// Most bytes the plugin holds outside each ring (a drain thread's batches, or what a
    /// drain in the frame takes of the ring), each message counted as its payload plus a
    /// `PerdixMessage`.
    pub(crate) max_held_bytes: u64,
    /// Where messages are taken out of the rings.
    pub(crate) drain: DrainMode,
    /// Whether the drain system routes messages into ECS messages.
    pub(crate) route: bool,
    /// Whether producers stamp their messages.
    pub(crate) timestamps: bool,
    /// The CUDA devices GPU producers run on.
    #[cfg(feature = "cuda")]
    pub(crate) devices: crate::cuda::GpuDevices,
}
