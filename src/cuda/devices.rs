//! `GpuDevices`: which CUDA devices a producer set or the plugin uses.

use super::presence::device_count;
use super::GpuContext;
use crate::Error;

/// A choice of CUDA devices: every device the driver reports (the default), or a list of
/// ordinals.
///
/// A list may name a device more than once: each entry gets its own ring(s), stream and
/// counters, so two entries of one device exercise the multi-device paths on a one-GPU machine.
///
/// # Examples
///
/// ```
/// use perdix_transport::cuda::GpuDevices;
///
/// assert_eq!("all".parse::<GpuDevices>(), Ok(GpuDevices::All));
/// assert_eq!("0,1".parse::<GpuDevices>(), Ok(GpuDevices::List(vec![0, 1])));
/// assert_eq!("0,0".parse::<GpuDevices>(), Ok(GpuDevices::List(vec![0, 0])));
/// assert!("".parse::<GpuDevices>().is_err());
/// assert_eq!(GpuDevices::List(vec![1, 0]).to_string(), "1,0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum GpuDevices {
    /// Every device the driver reports.
    #[default]
    All,
    /// These ordinals, in this order (repeats allowed).
    List(Vec<usize>),
}

impl GpuDevices {
    /// One device.
    #[must_use]
    pub fn one(ordinal: usize) -> Self {
        Self::List(vec![ordinal])
    }

    /// Opens the chosen devices, each ordinal once (a repeated ordinal shares its context).
    ///
    /// # Errors
    ///
    /// [`Error::NoDevice`] without a driver, with no device, or for an ordinal the driver does
    /// not have; [`Error::InvalidConfig`] for an empty list; [`Error::Driver`] for other driver failures.
    pub fn open(&self) -> Result<Vec<GpuContext>, Error> {
        let ordinals = match self {
            Self::All => (0..device_count()?).collect(),
            Self::List(list) if list.is_empty() => {
                return Err(Error::InvalidConfig("an empty list of CUDA devices".into()))
            }
            Self::List(list) => list.clone(),
        };
        let mut opened: Vec<GpuContext> = Vec::with_capacity(ordinals.len());
        for ordinal in ordinals {
            let gpu = match opened.iter().find(|gpu| gpu.ordinal() == ordinal) {
                Some(gpu) => gpu.clone(),
                None => GpuContext::new(ordinal)?,
            };
            opened.push(gpu);
        }
        Ok(opened)
    }
}

impl core::str::FromStr for GpuDevices {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "all" {
            return Ok(Self::All);
        }
        let list = s
            .split(',')
            .map(|part| part.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| format!("bad device list {s:?}: expected `all` or ordinals like `0,1`"))?;
        Ok(Self::List(list))
    }
}

impl core::fmt::Display for GpuDevices {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::All => f.write_str("all"),
            Self::List(list) => {
                let parts: Vec<String> = list.iter().map(ToString::to_string).collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}
