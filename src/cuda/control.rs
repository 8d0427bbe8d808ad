//! The control block: a producer's state in device memory, shared with `kernels/perdix.cuh`.
//!
//! One device allocation per [`GpuProducer`](super::GpuProducer): a header of [`HEADER_SIZE`]
//! bytes, then one record of [`RING_SIZE`] bytes per ring. Both are arrays of 64-bit words at the
//! offsets below, which reach the CUDA side as `-D PERDIX_CTRL_*` defines ([`cuda_defines`]):
//! the header has no struct of its own to drift. Words the host writes while kernels run (`head`,
//! `closed`, `stop`, the clock mapping) are single aligned 64-bit words; `tail`, `head` and the
//! counters each open their own 128-byte line, so the reservation atomics, the consumer's pushes
//! and the counters do not share a line.

/// Alignment and line size of the control block (two 64-byte lines: the L2 sector pair).
pub(crate) const LINE: usize = 128;
/// Bytes of the producer header.
pub(crate) const HEADER_SIZE: usize = LINE;
/// Bytes of one ring record.
pub(crate) const RING_SIZE: usize = 4 * LINE;

/// Header: `nrings | policy << 32`.
pub(crate) const HDR_NRINGS: usize = 0;
/// Header: the policy shares the first word (upper half).
pub(crate) const HDR_POLICY: usize = 4;
/// Header: flags (`FLAG_TIMESTAMPS`).
pub(crate) const HDR_FLAGS: usize = 8;
/// Header: non-zero when the host asks kernels to stop.
pub(crate) const HDR_STOP: usize = 16;
/// Header: clock mapping `offset` (i64).
pub(crate) const HDR_CLOCK_OFFSET: usize = 24;
/// Header: clock mapping `g0` (u64, GPU ns).
pub(crate) const HDR_CLOCK_G0: usize = 32;
/// Header: clock mapping `slope` (i64, 2^-32 units).
pub(crate) const HDR_CLOCK_SLOPE: usize = 40;

/// Ring: device address of slot 0.
pub(crate) const RING_SLOTS: usize = 0;
/// Ring: `capacity - 1`.
pub(crate) const RING_MASK: usize = 8;
/// Ring: capacity in slots.
pub(crate) const RING_CAPACITY: usize = 16;
/// Ring: index of the ring in its producer.
pub(crate) const RING_INDEX: usize = 24;
/// Ring: 1 for a low-latency ring (`RingMode::LowLatency`: flagged words, no fence), else 0.
pub(crate) const RING_MODE: usize = 32;
/// Ring: reservation counter (next position handed out).
pub(crate) const RING_TAIL: usize = LINE;
/// Ring: the consumer's head, pushed by the host.
pub(crate) const RING_HEAD: usize = 2 * LINE;
/// Ring: non-zero once the consumer is gone.
pub(crate) const RING_CLOSED: usize = 2 * LINE + 8;
/// Ring: messages published.
pub(crate) const RING_EMITTED: usize = 3 * LINE;
/// Ring: messages dropped (DropNewest).
pub(crate) const RING_DROPPED: usize = 3 * LINE + 8;
/// Ring: times a warp found the ring full and waited.
pub(crate) const RING_STALLS: usize = 3 * LINE + 16;
/// Ring: slots published beyond one per message (a multi-slot message's continuation slots and
/// pad records), so `emitted + extra` is the positions published. One-slot batches never touch
/// it: their path keeps its one counter atomic.
pub(crate) const RING_EXTRA: usize = 3 * LINE + 24;

/// `flags` bit: stamp messages with `%globaltimer` mapped onto the CPU clock.
pub(crate) const FLAG_TIMESTAMPS: u64 = 1;

const _: () = {
    assert!(HDR_CLOCK_SLOPE + 8 <= HEADER_SIZE);
    assert!(RING_STALLS + 8 <= RING_SIZE && RING_EXTRA + 8 <= RING_SIZE);
    // `ControlBlock::counters` reads the four counters as one copy.
    assert!(RING_DROPPED == RING_EMITTED + 8 && RING_STALLS == RING_EMITTED + 16);
    assert!(RING_EXTRA == RING_EMITTED + 24);
    assert!(RING_INDEX + 8 <= RING_TAIL && RING_MODE + 8 <= RING_TAIL);
    assert!(
        HDR_NRINGS.is_multiple_of(8) && HDR_FLAGS.is_multiple_of(8) && HDR_STOP.is_multiple_of(8)
    );
    assert!(RING_HEAD.is_multiple_of(8) && RING_CLOSED.is_multiple_of(8));
};

/// Total bytes of a control block for `nrings` rings.
pub(crate) fn block_bytes(nrings: usize) -> usize {
    HEADER_SIZE + nrings * RING_SIZE
}

/// Byte offset of ring `ring`'s record.
pub(crate) fn ring_offset(ring: usize) -> usize {
    HEADER_SIZE + ring * RING_SIZE
}

/// The control-block layout as `-D` defines for `perdix.cuh`.
pub(crate) fn cuda_defines() -> [(&'static str, usize); 23] {
    [
        ("PERDIX_CTRL_LINE", LINE),
        ("PERDIX_CTRL_HEADER_SIZE", HEADER_SIZE),
        ("PERDIX_CTRL_RING_SIZE", RING_SIZE),
        ("PERDIX_CTRL_HDR_NRINGS", HDR_NRINGS),
        ("PERDIX_CTRL_HDR_POLICY", HDR_POLICY),
        ("PERDIX_CTRL_HDR_FLAGS", HDR_FLAGS),
        ("PERDIX_CTRL_HDR_STOP", HDR_STOP),
        ("PERDIX_CTRL_HDR_CLOCK_OFFSET", HDR_CLOCK_OFFSET),
        ("PERDIX_CTRL_HDR_CLOCK_G0", HDR_CLOCK_G0),
        ("PERDIX_CTRL_HDR_CLOCK_SLOPE", HDR_CLOCK_SLOPE),
        ("PERDIX_CTRL_RING_SLOTS", RING_SLOTS),
        ("PERDIX_CTRL_RING_MASK", RING_MASK),
        ("PERDIX_CTRL_RING_CAPACITY", RING_CAPACITY),
        ("PERDIX_CTRL_RING_INDEX", RING_INDEX),
        ("PERDIX_CTRL_RING_MODE", RING_MODE),
        ("PERDIX_CTRL_RING_TAIL", RING_TAIL),
        ("PERDIX_CTRL_RING_HEAD", RING_HEAD),
        ("PERDIX_CTRL_RING_CLOSED", RING_CLOSED),
        ("PERDIX_CTRL_RING_EMITTED", RING_EMITTED),
        ("PERDIX_CTRL_RING_DROPPED", RING_DROPPED),
        ("PERDIX_CTRL_RING_STALLS", RING_STALLS),
        ("PERDIX_CTRL_RING_EXTRA", RING_EXTRA),
        ("PERDIX_FLAG_TIMESTAMPS_BIT", FLAG_TIMESTAMPS as usize),
    ]
}

/// Host image of a control block, written once before the first launch.
#[derive(Debug, Clone)]
pub(crate) struct Image {
    words: Vec<u64>,
}

impl Image {
    pub(crate) fn new(nrings: usize) -> Self {
        Self {
            words: vec![0; block_bytes(nrings) / 8],
        }
    }

    pub(crate) fn set(&mut self, offset: usize, value: u64) {
        debug_assert!(offset.is_multiple_of(8));
        self.words[offset / 8] = value;
    }

    /// The words, in block order.
    pub(crate) fn words(&self) -> &[u64] {
        &self.words
    }
}
