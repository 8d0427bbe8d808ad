//! A model of the GPU producers' half of the protocol, for loom only.
//!
//! `kernels/perdix.cuh` cannot run under a model checker, so this is its reservation protocol
//! written against the crate's `sync` shim and the ring's own slots: lanes reserve positions on a
//! shared `tail` (Block: `atomicAdd`, then wait for the pushed head; DropNewest: a CAS that
//! drops when full), write the slot, and publish `seq` with release (the kernel's system fence
//! and relaxed store). The consumer side is the shipped [`Consumer`] with a [`HeadSink`] that
//! stores the head where the lanes read it (acquire, as `ld.acquire.sys`). `tests/loom.rs`
//! model-checks several lanes against it.

use super::layout::SlotHeader;
use super::memory::Host;
use super::shared::{HeadSink, Ring};
use super::Policy;
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};
use crate::{Consumer, Error};

/// The control words of one ring: what `src/cuda/control.rs` keeps in device memory.
#[derive(Debug, Default)]
struct Control {
    tail: AtomicU64,
    head: AtomicU64,
    closed: AtomicBool,
    emitted: AtomicU64,
    dropped: AtomicU64,
}

/// The consumer's pushes into the control words (`cuStreamWriteValue64` on the real ring).
#[derive(Debug)]
struct Sink(Arc<Control>);

impl HeadSink for Sink {
    fn push(&self, head: u64) -> Result<(), Error> {
        self.0.head.store(head, Ordering::Release);
        Ok(())
    }

    fn close(&self) -> Result<(), Error> {
        self.0.closed.store(true, Ordering::Release);
        Ok(())
    }

    fn produced(&self) -> Option<u64> {
        Some(self.0.emitted.load(Ordering::Relaxed))
    }
}

/// What one lane's emit did (`PERDIX_OK`, `PERDIX_DROPPED`, `PERDIX_CLOSED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Published.
    Sent,
    /// The ring was full (DropNewest): counted in [`DeviceProducer::dropped`].
    Dropped,
    /// The consumer is gone or the ring failed.
    Closed,
}

/// The device side of a ring: clone it into one thread per lane.
#[derive(Debug, Clone)]
pub struct DeviceProducer {
    ring: Arc<Ring>,
    control: Arc<Control>,
    policy: Policy,
}

/// A ring for modelled GPU lanes, and its consumer.
///
/// # Errors
///
/// As [`Buffer::new`](crate::Buffer::new).
pub fn device_ring(capacity: usize, policy: Policy) -> Result<(DeviceProducer, Consumer), Error> {
    let control = Arc::new(Control::default());
    let bytes = Ring::bytes_for(capacity)?;
    let memory = Box::new(Host::alloc(bytes)?);
    let sink = Box::new(Sink(Arc::clone(&control)));
    let ring = Arc::new(Ring::with_sink(capacity, memory, Some(sink))?);
    let consumer = Consumer::new(Arc::clone(&ring));
    Ok((
        DeviceProducer {
            ring,
            control,
            policy,
        },
        consumer,
    ))
}

impl DeviceProducer {
    /// One lane's `perdix_send(p, kind, payload, len)` (`payload.len() <= SLOT_PAYLOAD`).
    pub fn emit(&self, kind: u32, payload: &[u8]) -> Emit {
        let Some(pos) = self.reserve() else {
            return if self.control.closed.load(Ordering::Relaxed) {
                Emit::Closed
            } else {
                Emit::Dropped
            };
        };
        // SAFETY: `pos` was reserved by this lane alone and is below `head + capacity`, so
        // the consumer has released the slot's previous lap (acquired through the pushed head)
        // and does not read it until `seq` says `pos + 1`; one slot never wraps.
        let mut buf = unsafe { self.ring.slots().write(pos, payload.len()) };
        // SAFETY: as above.
        unsafe { buf.get_mut() }.copy_from_slice(payload);
        self.ring.slots().finish_write(pos, buf, payload.len());
        let header = SlotHeader {
            len: payload.len() as u32,
            kind,
            ..SlotHeader::default()
        };
        self.ring.write_header(pos, header);
        // The kernel's `fence.acq_rel.sys` then relaxed store of `seq`: a release store.
        self.ring.seq(pos).store(pos + 1, Ordering::Release);
        self.control.emitted.fetch_add(1, Ordering::Relaxed);
        Emit::Sent
    }

    /// Reserves one position: `None` when the ring closed (Block) or was full (DropNewest,
    /// counted).
    fn reserve(&self) -> Option<u64> {
        let capacity = self.ring.capacity();
        let control = &self.control;
        match self.policy {
            Policy::Block => {
                let pos = control.tail.fetch_add(1, Ordering::Relaxed);
                while pos >= control.head.load(Ordering::Acquire) + capacity {
                    if control.closed.load(Ordering::Relaxed) {
                        return None;
                    }
                    loom::thread::yield_now();
                }
                Some(pos)
            }
            Policy::DropNewest => {
                let mut tail = control.tail.load(Ordering::Relaxed);
                loop {
                    if tail >= control.head.load(Ordering::Acquire) + capacity {
                        control.dropped.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                    match control.tail.compare_exchange(
                        tail,
                        tail + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return Some(tail),
                        Err(seen) => tail = seen,
                    }
                }
            }
        }
    }

    /// Messages dropped so far (DropNewest).
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.control.dropped.load(Ordering::Relaxed)
    }

    /// The kernels finished: the consumer reads what is left, then reports `Disconnected`
    /// (`GpuProducer::finish`).
    pub fn finish(&self) {
        self.ring.close_producer();
    }

    /// The producer saw its kernels fault: the ring fails with `err` (`GpuProducer` on a
    /// `KernelFault`).
    pub fn fail(&self, err: Error) {
        self.ring.fail(err);
    }
}
