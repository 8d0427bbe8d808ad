//! A model of the GPU producers' half of the protocol, for loom only.
//!
//! `kernels/perdix.cuh` cannot run under a model checker, so this is its reservation protocol
//! written against the crate's `sync` shim and the ring's own slots: lanes reserve positions on a
//! shared `tail` (a one-slot message under Block: `atomicAdd`, then wait for the pushed head; a
//! multi-slot one: a CAS that reserves the pad and the message's `k` slots at once; DropNewest:
//! a CAS that drops when full), write the pad record (if any) and the message, and publish each
//! `seq` with release (the kernel's system fence and relaxed store). The consumer side is the shipped [`Consumer`] with a [`HeadSink`] that
//! stores the head where the lanes read it (acquire, as `ld.acquire.sys`). `tests/loom.rs`
//! model-checks several lanes against it.

use super::layout::{slots_for, SlotHeader, FLAG_PAD, OFFSET_PAYLOAD, SLOT_SIZE};
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
    /// One lane's `perdix_send(p, kind, payload, len)`, any length up to the ring's
    /// `max_message` (the caller keeps to it: the kernel returns `PERDIX_TOO_LARGE` above).
    pub fn emit(&self, kind: u32, payload: &[u8]) -> Emit {
        let k = slots_for(payload.len()) as u64;
        let reserved = if k == 1 {
            self.reserve().map(|pos| (pos, 0))
        } else {
            self.reserve_span(k)
        };
        let Some((pos, pad)) = reserved else {
            return if self.control.closed.load(Ordering::Relaxed) {
                Emit::Closed
            } else {
                Emit::Dropped
            };
        };
        if pad != 0 {
            self.write_pad(pos - pad, pad);
        }
        // SAFETY: `pos .. pos + k` were reserved by this lane alone and are below
        // `head + capacity`, so the consumer has released their previous lap (acquired through
        // the pushed head) and does not read them until `seq` says `pos + 1`; the reservation
        // put a pad before the message where it would have wrapped.
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
        self.control.emitted.fetch_add(pad + k, Ordering::Relaxed);
        Emit::Sent
    }

    /// Publishes the pad record of `pad` slots at `at` (the rest of the lap).
    fn write_pad(&self, at: u64, pad: u64) {
        let header = SlotHeader {
            len: (pad as usize * SLOT_SIZE - OFFSET_PAYLOAD) as u32,
            flags: FLAG_PAD,
            ..SlotHeader::default()
        };
        self.ring.write_header(at, header);
        // As the message's: the kernel's fence, then the pad's `seq`.
        self.ring.seq(at).store(at + 1, Ordering::Release);
    }

    /// Reserves a message of `k > 1` slots and the pad before it, if the message would not fit
    /// before the ring's end, with one CAS on `tail` (`perdix.cuh`'s multi-slot reservation):
    /// the message's position and the pad's slots. Block waits for the pushed head to cover
    /// the whole reservation; DropNewest reserves only what fits, else counts one drop.
    fn reserve_span(&self, k: u64) -> Option<(u64, u64)> {
        let capacity = self.ring.capacity();
        let control = &self.control;
        let mut tail = control.tail.load(Ordering::Relaxed);
        let (start, need) = loop {
            let idx = tail & (capacity - 1);
            let pad = if idx + k > capacity {
                capacity - idx
            } else {
                0
            };
            let need = pad + k;
            if self.policy == Policy::DropNewest
                && tail + need > control.head.load(Ordering::Acquire) + capacity
            {
                control.dropped.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            match control.tail.compare_exchange(
                tail,
                tail + need,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break (tail, need),
                Err(seen) => tail = seen,
            }
        };
        while start + need > control.head.load(Ordering::Acquire) + capacity {
            if control.closed.load(Ordering::Relaxed) {
                return None;
            }
            loom::thread::yield_now();
        }
        Some((start + need - k, need - k))
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
