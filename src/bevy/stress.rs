//! Stress producers on the plugin's rings (feature `testing`): the `headless_stress` example's
//! load, on the GPU when there is one, else on CPU threads.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::backend::ProducerBackend;
use super::event::spawn_error;
use super::rings::PerdixRings;
use crate::testing::stress;
use crate::{Error, Producer};

#[cfg(feature = "cuda")]
mod gpu;

/// Stress producers: free-running producers of the shared stress format
/// ([`stress`]), on the GPU when there is one, else one CPU thread per
/// producer, each on its own ring. Used by the `headless_stress` example.
///
/// Every producer counts what it published. CPU producers send through
/// [`StressSender`](crate::testing::stress::StressSender), with the GPU kernel's rule: a message
/// dropped under [`Policy::DropNewest`](crate::Policy::DropNewest) is retried with the same
/// sequence, so the verifier's loss count stays exact and drops are counted by the rings.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_ecs::prelude::*;
/// use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
/// use perdix_transport::testing::StressProducers;
/// use perdix_transport::testing::stress::Verifier;
///
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default().capacity(256));
/// let mut rings = app.world_mut().resource_mut::<PerdixRings>();
/// let mut stress = StressProducers::spawn_cpu(&mut rings, 1, 64)?;
/// let mut verifier = Verifier::new(true);
/// while verifier.report().messages < 1000 {
///     rings.drain_with(100, |msg| verifier.check(msg.producer(), &msg));
/// }
/// stress.stop();
/// while !rings.is_finished() {
///     rings.drain_with(100, |msg| verifier.check(msg.producer(), &msg));
/// }
/// let report = verifier.finish(&stress.join());
/// assert!(report.is_clean());
/// # Ok::<(), perdix_transport::Error>(())
/// ```
#[derive(Debug)]
pub struct StressProducers {
    backend: ProducerBackend,
    stop: Arc<AtomicBool>,
    threads: Vec<StressThread>,
    #[cfg(feature = "cuda")]
    gpu: Option<gpu::StressRun>,
}

#[derive(Debug)]
struct StressThread {
    sent: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl StressProducers {
    /// Message kind of stress messages.
    pub const KIND: u32 = 0x5354;

    /// Starts `count` producers of `size`-byte messages on the backend the ring's app runs
    /// producers on (the GPU when there is one, else CPU threads).
    ///
    /// # Errors
    ///
    /// As [`PerdixRings::add_producer`]; GPU failures fall back to the CPU threads, reported
    /// as a [`PerdixEvent::ProducerFellBack`](super::PerdixEvent::ProducerFellBack) named
    /// `stress`.
    ///
    /// # Panics
    ///
    /// If `size` is not a [`stress::valid_size`].
    pub fn spawn(rings: &mut PerdixRings, count: usize, size: usize) -> Result<Self, Error> {
        Self::start(rings, count, size, None)
    }

    /// As [`spawn`](Self::spawn), paced to `rate` messages a second over all producers (each
    /// GPU thread or CPU producer sends its share at even intervals): a light load, for
    /// latency at a known rate.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Self::spawn).
    ///
    /// # Panics
    ///
    /// If `size` is not a [`stress::valid_size`].
    pub fn spawn_paced(
        rings: &mut PerdixRings,
        count: usize,
        size: usize,
        rate: f64,
    ) -> Result<Self, Error> {
        Self::start(rings, count, size, Some(rate))
    }

    fn start(
        rings: &mut PerdixRings,
        count: usize,
        size: usize,
        rate: Option<f64>,
    ) -> Result<Self, Error> {
        assert!(stress::valid_size(size), "invalid stress size {size}");
        let backend = rings.chosen_backend().clone();
        #[cfg(feature = "cuda")]
        if backend.is_gpu() {
            match gpu::StressRun::start(rings, count, size, rate) {
                Ok(run) => {
                    return Ok(Self {
                        backend,
                        stop: Arc::new(AtomicBool::new(false)),
                        threads: Vec::new(),
                        gpu: Some(run),
                    })
                }
                Err(error) => {
                    // Reported as a registered producer's fall back is (logged there).
                    let reason = error.to_string();
                    rings
                        .faults_mut()
                        .report(super::PerdixEvent::ProducerFellBack {
                            name: "stress".to_owned(),
                            error,
                        });
                    let mut run = Self::start_cpu(rings, count, size, rate)?;
                    run.backend = ProducerBackend::Cpu { reason };
                    return Ok(run);
                }
            }
        }
        let mut run = Self::start_cpu(rings, count, size, rate)?;
        if !backend.is_gpu() {
            run.backend = backend;
        }
        Ok(run)
    }

    /// Starts `count` CPU producer threads of `size`-byte messages, whatever the backend.
    ///
    /// # Errors
    ///
    /// As [`PerdixRings::add_producer`].
    ///
    /// # Panics
    ///
    /// If `size` is not a [`stress::valid_size`].
    pub fn spawn_cpu(rings: &mut PerdixRings, count: usize, size: usize) -> Result<Self, Error> {
        Self::start_cpu(rings, count, size, None)
    }

    /// As [`spawn_cpu`](Self::spawn_cpu), paced to `rate` messages a second over all threads.
    ///
    /// # Errors
    ///
    /// As [`PerdixRings::add_producer`].
    ///
    /// # Panics
    ///
    /// If `size` is not a [`stress::valid_size`].
    pub fn spawn_cpu_paced(
        rings: &mut PerdixRings,
        count: usize,
        size: usize,
        rate: f64,
    ) -> Result<Self, Error> {
        Self::start_cpu(rings, count, size, Some(rate))
    }

    fn start_cpu(
        rings: &mut PerdixRings,
        count: usize,
        size: usize,
        rate: Option<f64>,
    ) -> Result<Self, Error> {
        assert!(stress::valid_size(size), "invalid stress size {size}");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::with_capacity(count);
        // Each thread's share of the rate.
        let rate = rate.map(|rate| rate / count.max(1) as f64);
        for id in 0..count {
            let id = u32::try_from(id).unwrap_or(u32::MAX);
            let producer = rings.add_producer_with_id(&format!("stress-{id}"), id)?;
            let sent = Arc::new(AtomicU64::new(0));
            let (stop, counter) = (Arc::clone(&stop), Arc::clone(&sent));
            let handle = thread::Builder::new()
                .name(format!("perdix-stress-{id}"))
                .spawn(move || stress_loop(producer, id, size, rate, &stop, &counter))
                .map_err(|err| spawn_error(&err))?;
            threads.push(StressThread {
                sent,
                handle: Some(handle),
            });
        }
        Ok(Self {
            backend: ProducerBackend::Cpu {
                reason: "CPU stress producers".to_owned(),
            },
            stop,
            threads,
            #[cfg(feature = "cuda")]
            gpu: None,
        })
    }

    /// Where the producers run.
    #[must_use]
    pub fn backend(&self) -> &ProducerBackend {
        &self.backend
    }

    /// Producer streams: CPU threads, or GPU threads (each its own sequence).
    #[must_use]
    pub fn producers(&self) -> u64 {
        #[cfg(feature = "cuda")]
        if let Some(run) = &self.gpu {
            return run.producers();
        }
        self.threads.len() as u64
    }

    /// Messages published so far, per producer id (a little behind while running). Empty for
    /// GPU producers, whose exact total is [`total_sent`](Self::total_sent).
    #[must_use]
    pub fn sent(&self) -> Vec<u64> {
        #[cfg(feature = "cuda")]
        if self.gpu.is_some() {
            return Vec::new();
        }
        self.threads
            .iter()
            .map(|t| t.sent.load(Ordering::Relaxed))
            .collect()
    }

    /// Messages published so far by all producers (exact after [`join`](Self::join)).
    #[must_use]
    pub fn total_sent(&self) -> u64 {
        #[cfg(feature = "cuda")]
        if let Some(run) = &self.gpu {
            return run.emitted();
        }
        self.threads
            .iter()
            .map(|t| t.sent.load(Ordering::Relaxed))
            .sum()
    }

    /// Tells every producer to stop; each closes its ring after its last message.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        #[cfg(feature = "cuda")]
        if let Some(run) = &mut self.gpu {
            run.stop();
        }
    }

    /// Stops (if not yet) and waits for every producer; returns the exact count each
    /// published, per producer id (empty for GPU producers: see
    /// [`total_sent`](Self::total_sent)). Call it once the rings are drained or while they
    /// are still drained elsewhere (a producer blocked on a full ring waits for the drain).
    pub fn join(&mut self) -> Vec<u64> {
        self.stop();
        #[cfg(feature = "cuda")]
        if let Some(run) = &mut self.gpu {
            if let Err(err) = run.join() {
                tracing::warn!(%err, "perdix: GPU stress producers ended with an error");
            }
            return Vec::new();
        }
        for thread in &mut self.threads {
            if let Some(handle) = thread.handle.take() {
                if handle.join().is_err() {
                    tracing::warn!("perdix: a stress producer panicked");
                }
            }
        }
        self.sent()
    }
}

impl Drop for StressProducers {
    fn drop(&mut self) {
        // Never joins: a producer blocked on a full ring ends when that ring's consumer goes.
        self.stop();
    }
}

/// One CPU producer: as fast as it can, or `rate` messages a second (sending what is due, then
/// sleeping until the next is: at most 1 ms, so a stop is seen soon).
fn stress_loop(
    mut producer: Producer,
    id: u32,
    size: usize,
    rate: Option<f64>,
    stop: &AtomicBool,
    sent: &AtomicU64,
) {
    let Ok(mut sender) = stress::StressSender::new(id, StressProducers::KIND, size) else {
        return; // sizes are checked before the threads start
    };
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let attempts = match rate {
            None => 1024,
            Some(rate) => {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                if due <= sender.sent() {
                    let next = (sender.sent() + 1) as f64 / rate;
                    let wait = (next - start.elapsed().as_secs_f64()).clamp(0.0, 1e-3);
                    thread::sleep(Duration::from_secs_f64(wait));
                    continue;
                }
                (due - sender.sent()).min(1024)
            }
        };
        // DropNewest: the ring and the sender count the drop; the same sequence is retried.
        if sender.send(&mut producer, attempts).is_err() {
            break;
        }
        sent.store(sender.sent(), Ordering::Relaxed);
    }
    sent.store(sender.sent(), Ordering::Relaxed);
}
