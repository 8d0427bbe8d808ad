//! Where the plugin's producers run ([`ProducerBackend`]), decided once per app, and the CUDA
//! devices opened for them ([`BackendChoice`], which the rings resource keeps).
#![forbid(unsafe_code)]

use std::sync::OnceLock;

use super::config::RingConfig;
use crate::Error;

/// Where the plugin's producers run, chosen once per app and logged (`info!` for the GPU,
/// `warn!` for the CPU fallback).
///
/// # Examples
///
/// ```
/// use perdix_transport::bevy::ProducerBackend;
///
/// let cpu = ProducerBackend::Cpu { reason: "built without the `cuda` feature".into() };
/// assert_eq!(cpu.name(), "cpu");
/// assert_eq!(cpu.to_string(), "cpu (built without the `cuda` feature)");
/// let mixed = ProducerBackend::Mixed { device: "H100".into(), cpu: vec!["particles".into()] };
/// assert!(!mixed.is_gpu());
/// assert_eq!(mixed.to_string(), "mixed (gpu H100; on the CPU: particles)");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProducerBackend {
    /// CUDA kernels on this device.
    Gpu {
        /// The device's name.
        device: String,
    },
    /// CPU threads running the registered fallbacks.
    Cpu {
        /// Why not the GPU.
        reason: String,
    },
    /// Some producers on this device's GPU, others on their CPU fallbacks: GPU producers
    /// that failed to start on the GPU (each reported as
    /// [`PerdixEvent::ProducerFellBack`](super::PerdixEvent::ProducerFellBack)).
    Mixed {
        /// The device's name, as [`Gpu`](Self::Gpu)'s.
        device: String,
        /// The producers that run on the CPU.
        cpu: Vec<String>,
    },
}

impl ProducerBackend {
    /// `"gpu"`, `"cpu"` or `"mixed"`.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Gpu { .. } => "gpu",
            Self::Cpu { .. } => "cpu",
            Self::Mixed { .. } => "mixed",
        }
    }

    /// Whether producers run on the GPU (all of them: `false` for
    /// [`Mixed`](Self::Mixed)).
    #[must_use]
    pub fn is_gpu(&self) -> bool {
        matches!(self, Self::Gpu { .. })
    }
}

impl core::fmt::Display for ProducerBackend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Gpu { device } => write!(f, "gpu ({device})"),
            Self::Cpu { reason } => write!(f, "cpu ({reason})"),
            Self::Mixed { device, cpu } => {
                write!(f, "mixed (gpu {device}; on the CPU: {})", cpu.join(", "))
            }
        }
    }
}

/// An opened CUDA device producers run on.
#[cfg(feature = "cuda")]
pub(crate) type Device = crate::cuda::GpuContext;
/// No device type without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
pub(crate) type Device = ();

/// The backend once chosen, the devices it opened and, for the CPU, why not the GPU.
#[derive(Debug)]
struct Decided {
    /// Where producers run.
    backend: ProducerBackend,
    /// The GPUs producers run on, when they do (one entry per device of the plugin's choice).
    devices: Vec<Device>,
    /// Why producers do not run on a GPU, when so decided.
    no_gpu: Option<Error>,
}

/// The backend, decided once (on first use, from `&self`: a [`OnceLock`]), with the devices
/// it opened.
#[derive(Debug, Default)]
pub(crate) struct BackendChoice {
    decided: OnceLock<Decided>,
}

impl BackendChoice {
    /// The backend, if decided.
    pub(crate) fn get(&self) -> Option<&ProducerBackend> {
        self.decided.get().map(|decided| &decided.backend)
    }

    /// The backend: decided and logged on the first call (opens the devices of `config` for
    /// the GPU, or keeps the probe's error for the CPU), the same answer after.
    pub(crate) fn get_or_decide(&self, config: &RingConfig) -> &ProducerBackend {
        &self.decided.get_or_init(|| decide(config)).backend
    }

    /// The opened devices (empty unless producers run on the GPU, or not decided yet).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn devices(&self) -> &[Device] {
        self.decided
            .get()
            .map_or(&[], |decided| decided.devices.as_slice())
    }

    /// Why GPU producers cannot run here (the probe's error).
    pub(crate) fn no_gpu_error(&self) -> Error {
        self.decided
            .get()
            .and_then(|decided| decided.no_gpu.clone())
            .unwrap_or(Error::NoDevice("producers run on the CPU"))
    }
}

/// Decides and logs the choice.
fn decide(config: &RingConfig) -> Decided {
    let (backend, devices, no_gpu) = match probe(config) {
        Ok((name, devices)) => (ProducerBackend::Gpu { device: name }, devices, None),
        Err(err) => (
            ProducerBackend::Cpu {
                reason: err.to_string(),
            },
            Vec::new(),
            Some(err),
        ),
    };
    match &backend {
        ProducerBackend::Gpu { device } => {
            tracing::info!(%device, "perdix: producers run on the GPU");
        }
        ProducerBackend::Cpu { reason } => {
            tracing::warn!(%reason, "perdix: no GPU producers; running CPU fallback producers");
        }
        // Not decided here: only once producers fell back (`status.rs`).
        ProducerBackend::Mixed { .. } => {}
    }
    Decided {
        backend,
        devices,
        no_gpu,
    }
}

/// Opens the plugin's devices; names them for the log (`NAME (sm_XY)`, with the ordinals
/// when there is more than one). A capacity below [`MIN_CAPACITY`](crate::cuda::MIN_CAPACITY)
/// opens none: no GPU ring can have it, so producers run on the CPU (`validate` refuses it
/// only where the GPU is asked for by name, with CUDA ring memory).
#[cfg(feature = "cuda")]
fn probe(config: &RingConfig) -> Result<(String, Vec<Device>), Error> {
    gpu_capacity(config.capacity)?;
    let gpus = config.devices.open()?;
    let first = gpus
        .first()
        .ok_or_else(|| Error::InvalidConfig("an empty list of CUDA devices".into()))?;
    let (major, minor) = first.compute_capability();
    let mut name = format!("{} (sm_{major}{minor})", first.name());
    if gpus.len() > 1 {
        let ordinals: Vec<String> = gpus.iter().map(|g| g.ordinal().to_string()).collect();
        name = format!("{} x {name}, devices {}", gpus.len(), ordinals.join(","));
    }
    Ok((name, gpus))
}

/// No device without the `cuda` feature.
#[cfg(not(feature = "cuda"))]
fn probe(_config: &RingConfig) -> Result<(String, Vec<Device>), Error> {
    Err(Error::NoDevice("built without the `cuda` feature"))
}

/// `Ok` for a capacity GPU rings can have: at least [`MIN_CAPACITY`](crate::cuda::MIN_CAPACITY)
/// slots (a warp reserves up to 32 at once and waits until all fit).
///
/// # Errors
///
/// [`Error::InvalidConfig`] with the builder's text for a smaller one.
#[cfg(feature = "cuda")]
pub(crate) fn gpu_capacity(capacity: usize) -> Result<(), Error> {
    use crate::cuda::MIN_CAPACITY;

    if capacity < MIN_CAPACITY {
        return Err(Error::InvalidConfig(format!(
            "capacity {capacity}: GPU rings need at least {MIN_CAPACITY} slots"
        )));
    }
    Ok(())
}
