//! The plugin's settings as the rings resource keeps them ([`RingConfig`]), and where ready
//! messages are taken out of the rings ([`DrainMode`]).
#![forbid(unsafe_code)]

use crate::{Backend, Policy};

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
    /// `min(4096, budget)` messages.
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
    /// Most messages taken per frame, over all rings (at least 1).
    pub(crate) budget: usize,
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
