//! `FaultWatch`: a thread per [`GpuProducer`](super::GpuProducer) that finds its kernels' fault
//! without any call on the producer, so a consumer that only consumes learns of it.
//!
//! A ring is failed by a kernel fault only when someone asks the driver: the producer's own
//! calls ([`observe`](super::GpuProducer)) do, but a consumer of a ring that waits for messages
//! makes none, and would wait for ever on a ring nobody writes again. The watch asks the
//! driver every [`PERIOD`] (`cuStreamQuery` on the producer's stream, the context bound on its
//! thread) and, on a kernel fault, fails every ring of the producer as `observe` does: each
//! consumer then reports the fault after the messages published before it, from its empty path
//! (one relaxed load it makes anyway). A fault is context-wide, so the query sees the fault of
//! any kernel of the context: the producer's, those [`track`](super::GpuProducer::track)ed on
//! the app's streams, and any other.
//!
//! It touches no ring's hot path and costs one driver query per period; it stops at the first
//! fault, when the stream cannot be queried any more, or when the producer is dropped (which
//! joins it before freeing anything: the wait is one query at most).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cudarc::driver::CudaStream;

use super::{driver, GpuContext};
use crate::ring::Ring;
use crate::sync::Arc as RingArc;
use crate::Error;

/// How often the watch asks the driver.
pub(super) const PERIOD: Duration = Duration::from_millis(10);

/// One answer of the driver: `Ok(idle)`, or why it could not say.
pub(super) type Query = Box<dyn FnMut() -> Result<bool, Error> + Send>;

/// The producer's question: `cuStreamQuery` on `stream`, with `gpu` bound on the asking thread
/// (a kernel's fault is [`Error::KernelFault`], for every stream of the context).
pub(super) fn stream_query(gpu: GpuContext, stream: Arc<CudaStream>) -> Query {
    Box::new(move || {
        gpu.bind()?;
        // SAFETY: (1) the stream is live: this closure holds an `Arc` of it, and it belongs to
        // `gpu`'s context, current on this thread (bound just above).
        unsafe { driver::stream_query(stream.cu_stream()) }.map_err(driver::classify)
    })
}

/// The watch thread of one producer; dropping it (or [`stop`](Self::stop)) ends and joins it.
#[derive(Debug)]
pub(super) struct FaultWatch {
    /// Dropped to stop the thread (its wait on the channel then returns at once).
    stop: Option<Sender<()>>,
    handle: Option<JoinHandle<()>>,
}

impl FaultWatch {
    /// Starts watching: `query` every [`PERIOD`]; a [`Error::KernelFault`] it returns fails
    /// every ring of `rings`.
    ///
    /// # Errors
    ///
    /// [`Error::Spawn`] when the thread cannot start.
    pub(super) fn start(rings: Vec<RingArc<Ring>>, mut query: Query) -> Result<Self, Error> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name("perdix-fault-watch".into())
            .spawn(move || loop {
                match stopped.recv_timeout(PERIOD) {
                    Err(RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
                match query() {
                    Ok(_) => {}
                    Err(err @ Error::KernelFault(_)) => {
                        for ring in &rings {
                            ring.fail(err.clone());
                        }
                        return;
                    }
                    Err(err) => {
                        // Not a kernel's fault (the context is gone, say): the producer's own
                        // calls report it; nothing more can be learnt here.
                        tracing::warn!(%err, "perdix: the fault watch stops: the producer's stream cannot be queried");
                        return;
                    }
                }
            })
            .map_err(|err| Error::Spawn(err.to_string()))?;
        Ok(Self {
            stop: Some(stop),
            handle: Some(handle),
        })
    }

    /// Ends the thread and waits for it (one query at most).
    pub(super) fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::warn!("perdix: the fault watch panicked");
            }
        }
    }
}

impl Drop for FaultWatch {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use cudarc::driver::sys::cudaError_enum as E;
    use cudarc::driver::DriverError;

    use super::{FaultWatch, PERIOD};
    use crate::ring::{Host, Ring};
    use crate::sync::Arc as RingArc;
    use crate::{Consumer, Error, Policy, Producer};

    fn ring() -> (RingArc<Ring>, Producer, Consumer) {
        let memory = Host::alloc(Ring::bytes_for(64).expect("capacity")).expect("memory");
        let ring = RingArc::new(Ring::new(64, Box::new(memory)).expect("ring"));
        let producer = Producer::new(RingArc::clone(&ring), Policy::Block, 0, false);
        let consumer = Consumer::new(RingArc::clone(&ring));
        (ring, producer, consumer)
    }

    fn fault() -> Error {
        Error::KernelFault(DriverError(E::CUDA_ERROR_LAUNCH_FAILED))
    }

    /// A query that says "running" `busy` times, then `then`, counting its calls.
    fn answers(busy: usize, then: Error, calls: &Arc<AtomicUsize>) -> super::Query {
        let calls = Arc::clone(calls);
        Box::new(move || {
            if calls.fetch_add(1, Ordering::Relaxed) < busy {
                Ok(false)
            } else {
                Err(then.clone())
            }
        })
    }

    #[test]
    fn a_kernel_fault_reaches_a_consumer_that_only_consumes() {
        let (a, mut a_tx, mut a_rx) = ring();
        let (b, _b_tx, mut b_rx) = ring();
        for i in 0..3u32 {
            a_tx.try_produce(&i.to_le_bytes()).expect("room");
        }
        let calls = Arc::new(AtomicUsize::new(0));
        let mut watch = FaultWatch::start(vec![a, b], answers(3, fault(), &calls)).expect("start");
        let limit = Duration::from_secs(5); // a liveness bound; the watch needs ~4 periods
        for i in 0..3u32 {
            let msg = a_rx
                .consume_timeout(limit)
                .expect("no fault yet")
                .expect("a message");
            assert_eq!(
                &*msg,
                &i.to_le_bytes()[..],
                "the messages before the fault first"
            );
        }
        let started = Instant::now();
        let err = loop {
            match a_rx.consume_timeout(limit) {
                Err(err) => break err,
                Ok(msg) => assert!(msg.is_none() && started.elapsed() < limit, "no fault"),
            }
        };
        assert_eq!(err, fault());
        assert_eq!(
            b_rx.try_consume_checked().err(),
            Some(fault()),
            "every ring"
        );
        watch.stop();
        assert_eq!(calls.load(Ordering::Relaxed), 4, "it stopped at the fault");
    }

    #[test]
    fn stopping_joins_at_once_and_fails_nothing() {
        let (a, _a_tx, mut a_rx) = ring();
        let calls = Arc::new(AtomicUsize::new(0));
        let watch =
            FaultWatch::start(vec![a], answers(usize::MAX, fault(), &calls)).expect("start");
        std::thread::sleep(PERIOD * 3);
        let stopping = Instant::now();
        drop(watch);
        assert!(
            stopping.elapsed() < Duration::from_secs(1),
            "{:?}",
            stopping.elapsed()
        );
        assert!(calls.load(Ordering::Relaxed) >= 1, "it queried");
        assert!(a_rx.try_consume_checked().expect("healthy").is_none());
    }

    #[test]
    fn a_driver_error_ends_the_watch_without_failing_the_rings() {
        let (a, _a_tx, mut a_rx) = ring();
        let calls = Arc::new(AtomicUsize::new(0));
        let gone = Error::Driver(DriverError(E::CUDA_ERROR_CONTEXT_IS_DESTROYED));
        let watch = FaultWatch::start(vec![a], answers(0, gone, &calls)).expect("start");
        std::thread::sleep(PERIOD * 5);
        drop(watch);
        assert_eq!(calls.load(Ordering::Relaxed), 1);
        assert!(a_rx.try_consume_checked().expect("healthy").is_none());
    }
}
