//! `ClockTracker`: a thread that keeps a producer's clock mapping fresh while it runs.

use core::sync::atomic::{AtomicBool, Ordering};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::calibrate::Prober;
use super::mapping::{fit, ClockMapping};
use crate::cuda::block::ClockSetter;
use crate::cuda::GpuProducer;
use crate::Error;

/// Keeps a producer's clock mapping fresh while it runs: a thread calibrates every `period`
/// (32 probe rounds, on its own stream) and installs the least-squares fit of offset and drift
/// over the last `window` calibrations whose round trip was within 25 % of the tightest.
///
/// One calibration alone leaves the stamps drifting with the GPU timer's drift; refitting every
/// `period` keeps the mapping within the fit's residual of the truth, plus the bound every
/// calibration has (half the tightest round trip: which leg of the round trip is longer is
/// unknown). Measured drift and residuals: `docs/PERFORMANCE.md`.
///
/// The probe is a one-thread kernel on its own stream: it needs room for one block next to the
/// producer's kernels (a grid of one block per SM leaves plenty); a probe that gets no answer
/// within 2 s ends the tracker with an error, which [`finish`](Self::finish) returns.
#[derive(Debug)]
pub struct ClockTracker {
    stop: Arc<AtomicBool>,
    latest: Arc<Mutex<ClockMapping>>,
    handle: Option<JoinHandle<Result<u64, Error>>>,
}

impl ClockTracker {
    /// Starts tracking for `producer` (installing each new mapping there), from `initial`.
    ///
    /// # Errors
    ///
    /// As [`calibrate`](super::calibrate) (the probe is set up before the thread starts);
    /// [`Error::Spawn`] when the thread cannot start.
    pub fn start(
        producer: &GpuProducer,
        initial: ClockMapping,
        period: Duration,
        window: usize,
    ) -> Result<Self, Error> {
        let mut prober = Prober::new(producer.context())?;
        let setter = producer.clock_setter();
        let stop = Arc::new(AtomicBool::new(false));
        let latest = Arc::new(Mutex::new(initial));
        let handle = {
            let stop = Arc::clone(&stop);
            let latest = Arc::clone(&latest);
            std::thread::Builder::new()
                .name("perdix-clock".into())
                .spawn(move || track(&mut prober, &setter, &stop, &latest, period, window.max(2)))
                .map_err(|err| Error::Spawn(err.to_string()))?
        };
        Ok(Self {
            stop,
            latest,
            handle: Some(handle),
        })
    }

    /// The mapping installed last.
    #[must_use]
    pub fn latest(&self) -> ClockMapping {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the thread; returns how many calibrations it made.
    ///
    /// # Errors
    ///
    /// The first error the thread met (it stops at the first); [`Error::Panicked`] if it
    /// panicked.
    pub fn finish(mut self) -> Result<u64, Error> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(Error::Panicked("the clock tracker".into())),
            None => Ok(0),
        }
    }
}

impl Drop for ClockTracker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

fn track(
    prober: &mut Prober,
    setter: &ClockSetter,
    stop: &AtomicBool,
    latest: &Mutex<ClockMapping>,
    period: Duration,
    window: usize,
) -> Result<u64, Error> {
    let mut points: VecDeque<ClockMapping> = VecDeque::new();
    let mut made = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let point = prober.calibrate(32)?;
        made += 1;
        points.push_back(point);
        while points.len() > window {
            points.pop_front();
        }
        if points.len() >= 3 {
            let mapping = fit(points.make_contiguous());
            setter.set(&mapping)?;
            *latest.lock().unwrap_or_else(PoisonError::into_inner) = mapping;
        }
        std::thread::sleep(period);
    }
    Ok(made)
}
