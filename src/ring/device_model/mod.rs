//! A model of the GPU producers' half of the protocol, for loom only.
//!
//! `kernels/perdix.cuh`, `perdix_span.cuh` and `perdix_run.cuh` cannot run under a model
//! checker, so this is their protocol written against the crate's `sync` shim and the ring's own
//! slots, function by function and in the kernels' order (each step cites its kernel line). One
//! loom thread is one *warp*: [`DeviceProducer::warp_send`] is `perdix_send` called by the
//! warp's lanes together, each with its own message, so a warp's one-slot messages share one
//! reservation (`batch.rs`: `perdix_warp_reserve`, `perdix_warp_publish`), and a warp whose
//! messages need more slots sends them in turn (`span.rs`: `perdix_emit_each`, the pad published
//! as soon as its first slot is free) or, all of one length, in runs of one reservation
//! (`run.rs`: `perdix_reserve_run`). Lanes of one warp write a slot together and meet at
//! `__syncwarp` before its publication, so one thread doing their stores in turn is what they do.
//!
//! What each GPU operation is here:
//! - `ld.acquire.sys` of the pushed head: an acquire load; `ld.relaxed.sys` of `tail` and
//!   `closed`: relaxed loads; `atomicAdd` / `atomicCAS` on the control words: relaxed RMWs;
//! - body and header stores (`st.global`): the modelled slots' writes (cells, relaxed words);
//! - the publication: `fence.acq_rel.sys` (a fence, `AcqRel`), then `st.relaxed.sys` of `seq`
//!   (a relaxed store); never a release store, which the kernels do not use;
//! - `__nanosleep` while waiting for room: [`loom::thread::yield_now`].
//!
//! The consumer is the shipped [`Consumer`] with a [`HeadSink`] whose push is no stronger than
//! `cuStreamWriteValue64`: the driver call writes a command and rings a doorbell, and the GPU
//! stores the head later; nothing in it orders the host's earlier *loads* of the slots, so the
//! push is a relaxed store of the head into a word of its own (the device head, the only head a
//! lane reads), and what keeps the consumer's slot reads before the lanes' rewrites is the
//! consumer's `fence(Release)` before the push (`ring/consumer.rs`, `push_device`). The close
//! (`cuStreamWriteValue64` of the closed word) is a relaxed store too.

mod batch;
mod run;
mod span;

use super::layout::{SlotHeader, SLOT_PAYLOAD};
use super::memory::Host;
use super::shared::{HeadSink, Ring};
use super::Policy;
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::{Consumer, Error};

/// The control words of one ring: what `src/cuda/control.rs` keeps in device memory (the ring
/// record's `tail`, `head`, `closed` and counters).
#[derive(Debug, Default)]
struct Control {
    /// The reservation counter (`PERDIX_CTRL_RING_TAIL`).
    tail: AtomicU64,
    /// The device head: the consumer's head as last pushed (`PERDIX_CTRL_RING_HEAD`).
    head: AtomicU64,
    /// Non-zero once the consumer is gone or the ring failed (`PERDIX_CTRL_RING_CLOSED`).
    closed: AtomicU64,
    /// Messages published (`PERDIX_CTRL_RING_EMITTED`).
    emitted: AtomicU64,
    /// Messages dropped (DropNewest, `PERDIX_CTRL_RING_DROPPED`).
    dropped: AtomicU64,
    /// Times a warp found the ring full and waited (`PERDIX_CTRL_RING_STALLS`).
    stalls: AtomicU64,
    /// Slots published beyond one per message: continuation and pad slots
    /// (`PERDIX_CTRL_RING_EXTRA`).
    extra: AtomicU64,
}

/// The consumer's pushes into the control words: `cuStreamWriteValue64`, modelled as what it
/// guarantees a GPU reader (see the module docs): a relaxed store.
#[derive(Debug)]
struct Sink(Arc<Control>);

impl HeadSink for Sink {
    fn push(&self, head: u64) -> Result<(), Error> {
        // No ordering of its own: the consumer's `fence(Release)` before this call is what
        // orders its slot reads (and continuation stamps) before a lane that acquires this
        // value rewrites the slots.
        self.0.head.store(head, Ordering::Relaxed);
        Ok(())
    }

    fn close(&self) -> Result<(), Error> {
        self.0.closed.store(1, Ordering::Relaxed);
        Ok(())
    }

    fn produced(&self) -> Option<u64> {
        // `emitted + extra`: the positions published (`DeviceHead::produced`).
        let emitted = self.0.emitted.load(Ordering::Relaxed);
        Some(emitted + self.0.extra.load(Ordering::Relaxed))
    }
}

/// What one lane's send did (`PERDIX_OK`, `PERDIX_DROPPED`, `PERDIX_CLOSED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    /// Published.
    Sent,
    /// The ring was full (DropNewest): counted in [`DeviceProducer::dropped`].
    Dropped,
    /// The consumer is gone or the ring failed.
    Closed,
}

/// The device side of a ring: clone it into one thread per warp.
#[derive(Debug, Clone)]
pub struct DeviceProducer {
    ring: Arc<Ring>,
    control: Arc<Control>,
    policy: Policy,
}

/// A ring for modelled GPU warps, and its consumer.
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
    /// `perdix_send(p, kind, data, len)` called by one warp's lanes together, lane `i` sending
    /// `lanes[i]` (`perdix_emit_policy`, perdix.cuh:439): each lane's status, in lane order.
    /// Every length is at most the ring's `max_message` (the kernel returns `PERDIX_TOO_LARGE`
    /// above it, before anything else; the model's callers keep to it).
    ///
    /// # Panics
    ///
    /// If `lanes` is empty or longer than a warp (32), or a message is over `max_message`.
    pub fn warp_send(&self, lanes: &[(u32, &[u8])]) -> Vec<Emit> {
        assert!((1..=32).contains(&lanes.len()), "a warp has 1 to 32 lanes");
        let max = self.ring.max_message() as usize;
        assert!(
            lanes.iter().all(|(_, data)| data.len() <= max),
            "over max_message"
        );
        // perdix.cuh:449: the warp vote; any lane's message over one slot, and every message
        // goes in turn (perdix_emit_each).
        if lanes.iter().any(|(_, data)| data.len() > SLOT_PAYLOAD) {
            return self.emit_each(lanes);
        }
        self.emit_batch(lanes)
    }

    /// One lane alone calling `perdix_send`.
    pub fn emit(&self, kind: u32, payload: &[u8]) -> Emit {
        self.warp_send(&[(kind, payload)])[0]
    }

    /// Writes a message's payload into its reserved slots from `pos` (the warp's body stores:
    /// `perdix_store_word` in perdix_emit_policy, `perdix_copy_body` in perdix_span.cuh), and
    /// its first slot's header words. The caller publishes it.
    fn write_message(&self, pos: u64, kind: u32, producer: u32, payload: &[u8]) {
        // SAFETY: `pos .. pos + slots_for(len)` were reserved by this warp alone and are below
        // `head + capacity` for a head the warp acquired from the device head, so the consumer
        // has released their previous lap (its reads ordered before the push by its release
        // fence) and does not read them until `seq` says `pos + 1`; the reservation put a pad
        // before the message where it would have wrapped.
        let mut buf = unsafe { self.ring.slots().write(pos, payload.len()) };
        // SAFETY: as above.
        unsafe { buf.get_mut() }.copy_from_slice(payload);
        self.ring.slots().finish_write(pos, buf, payload.len());
        let header = SlotHeader {
            len: payload.len() as u32,
            kind,
            producer,
            ..SlotHeader::default()
        };
        self.ring.write_header(pos, header);
    }

    /// The policy the host chose (`perdix_policy(p)`).
    fn block(&self) -> bool {
        self.policy == Policy::Block
    }

    /// `perdix_load_acquire` of the device head (`ld.acquire.sys`).
    fn load_head(&self) -> u64 {
        self.control.head.load(Ordering::Acquire)
    }

    /// `perdix_load_relaxed` of the closed word.
    fn closed(&self) -> bool {
        self.control.closed.load(Ordering::Relaxed) != 0
    }

    /// Messages dropped so far (DropNewest): the device counter.
    #[must_use]
    pub fn dropped(&self) -> u64 {
        self.control.dropped.load(Ordering::Relaxed)
    }

    /// Times a warp found the ring full and waited: the device counter.
    #[must_use]
    pub fn stalls(&self) -> u64 {
        self.control.stalls.load(Ordering::Relaxed)
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
