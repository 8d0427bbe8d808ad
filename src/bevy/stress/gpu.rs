//! GPU stress producers: the stress kernel on a full grid, free-running until stopped.
#![forbid(unsafe_code)]

use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};

use crate::bevy::producers::gpu::{first_device, producer};
use crate::bevy::rings::PerdixRings;
use crate::cuda::{GpuCounters, GpuProducerSet};
use crate::Error;

/// GPU stress producers: the stress kernel on a full grid, free-running until stopped.
#[derive(Debug)]
pub(super) struct StressRun {
    producer: Option<GpuProducerSet>,
    producers: u64,
    /// Stops the kernel and closes the rings off the frame thread.
    stopper: Option<JoinHandle<Result<GpuCounters, Error>>>,
    result: Arc<Mutex<Option<GpuCounters>>>,
}

impl StressRun {
    /// `rate`: messages a second over all rings (each thread paced to its share), or `None`
    /// for free-running.
    pub(super) fn start(
        rings: &mut PerdixRings,
        count: usize,
        size: usize,
        rate: Option<f64>,
    ) -> Result<Self, Error> {
        let gpu = first_device(rings)?;
        let grid = gpu.multiprocessors().max(1);
        let block = 256u32;
        let size32 =
            u32::try_from(size).map_err(|_| Error::too_large_for(size, u32::MAX as usize))?;
        let kind = super::StressProducers::KIND;
        // One launch of the grid a device (its blocks spread over that device's rings).
        let devices = rings.backend().devices().len().max(1) as u64;
        let threads = u64::from(grid) * u64::from(block) * devices;
        let kernel = match rate {
            Some(rate) => {
                crate::cuda::stress::paced_kernel(size32, kind, interval_ns(threads, rate))
            }
            None => crate::cuda::stress::free_running_kernel(size32, kind),
        }
        .grid(grid)
        .block(block);
        kernel.as_kernel().compile(&gpu.arch())?;
        let mut producer = producer(rings, "gpu-stress", count.max(1))?;
        producer.prepare(kernel.as_kernel())?;
        // The crate's own kernel with the crate's own arguments: a safe launch.
        kernel.launch_set(&mut producer)?;
        tracing::info!(
            grid,
            block,
            rings = count,
            ?rate,
            "perdix: GPU stress producers launched"
        );
        Ok(Self {
            producers: u64::from(grid) * u64::from(block) * producer.len() as u64,
            producer: Some(producer),
            stopper: None,
            result: Arc::new(Mutex::new(None)),
        })
    }

    /// Producer streams (GPU threads).
    pub(super) fn producers(&self) -> u64 {
        self.producers
    }

    /// The device counters: final after the stop, else read now without waiting.
    pub(super) fn counters(&self) -> GpuCounters {
        if let Some(counters) = *self.result.lock().unwrap_or_else(PoisonError::into_inner) {
            return counters;
        }
        self.producer
            .as_ref()
            .and_then(|p| p.total().ok())
            .unwrap_or_default()
    }

    /// Messages published so far (exact device counters).
    pub(super) fn emitted(&self) -> u64 {
        self.counters().emitted
    }

    pub(super) fn stop(&mut self) {
        let Some(producer) = self.producer.take() else {
            return;
        };
        if let Err(err) = producer.request_stop() {
            tracing::warn!(%err, "perdix: could not ask the stress kernel to stop");
        }
        let result = Arc::clone(&self.result);
        // `finish` waits for the kernel, which may wait for room: the frame loop keeps
        // draining meanwhile, so wait here, off the frame thread.
        let spawned = thread::Builder::new()
            .name("perdix-gpu-stop".into())
            .spawn(move || {
                let counters = GpuCounters::total(&producer.finish()?);
                *result.lock().unwrap_or_else(PoisonError::into_inner) = Some(counters);
                Ok(counters)
            });
        match spawned {
            Ok(handle) => self.stopper = Some(handle),
            Err(err) => tracing::warn!(%err, "perdix: could not start the GPU stop thread"),
        }
    }

    /// Waits for the stop; the exact number of messages the kernel published.
    pub(super) fn join(&mut self) -> Result<u64, Error> {
        self.stop();
        match self.stopper.take().map(JoinHandle::join) {
            Some(Ok(result)) => result.map(|c| c.emitted),
            Some(Err(_)) => Err(Error::Disconnected),
            None => Ok(self.emitted()),
        }
    }
}

/// Each of `threads` threads' interval between messages for `rate` messages a second in all
/// (at least 1 ns; a rate that is not positive paces to one message an hour).
fn interval_ns(threads: u64, rate: f64) -> u64 {
    if rate > 0.0 {
        ((threads as f64 * 1e9 / rate) as u64).max(1)
    } else {
        3_600_000_000_000
    }
}
