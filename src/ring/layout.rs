//! The slot: the one definition of the wire format shared by CPU and GPU producers.
//!
//! A ring is `capacity` slots of [`SLOT_SIZE`] bytes, each aligned to [`SLOT_ALIGN`]:
//!
//! | offset | field | meaning |
//! |---|---|---|
//! | 0 | `seq: u64` | publication word: `pos + 1` once the slot for position `pos` is complete; written last, with release ordering |
//! | 8 | `len: u32` | payload length, `0..=max_message(capacity)` |
//! | 12 | `kind: u32` | message type id (typed channels route on it) |
//! | 16 | `producer: u32` | producer id (GPU block or lane, CPU thread) |
//! | 20 | `flags: u32` | [`FLAG_PAD`]; the other bits are reserved |
//! | 24 | `stamp_ns: u64` | producer clock at publish, for latency |
//! | 32 | `payload` | message bytes |
//!
//! A message of `len` bytes spans [`slots_for`]`(len)` contiguous slots: its payload is the one
//! byte range from offset 32 of its first slot on, through the following slots' *whole* 256
//! bytes (their `seq` and header words carry payload bytes). A message never wraps: where it
//! would not fit before the ring's end, a pad record ([`FLAG_PAD`]) fills the rest of the lap
//! and the message starts at the next lap's slot 0. The consumer stamps each continuation slot's
//! first word with its own `pos + 1` before it releases it, so every slot it has passed reads as
//! a one-slot message's would (docs/DESIGN-NOTES.md, "Multi-slot messages").
//!
//! `kernels/perdix.cuh` declares the same struct. It receives these constants as `-D` defines
//! (see [`cuda_defines`]) and `static_assert`s its own sizes against them, so the two sides cannot
//! drift apart; `Slot`'s offsets are checked here at compile time with `offset_of!`.

#[cfg(perdix_loom)]
use crate::sync::{AtomicU64, UnsafeCell};

/// Bytes in one slot (header and payload): four 64-byte cache lines.
pub const SLOT_SIZE: usize = 256;
/// Alignment of every slot, so a slot never straddles a cache-line pair.
pub const SLOT_ALIGN: usize = 256;
/// Offset of the `seq` publication word.
pub const OFFSET_SEQ: usize = 0;
/// Offset of the payload length.
pub const OFFSET_LEN: usize = 8;
/// Offset of the message kind.
pub const OFFSET_KIND: usize = 12;
/// Offset of the producer id.
pub const OFFSET_PRODUCER: usize = 16;
/// Offset of the reserved flags.
pub const OFFSET_FLAGS: usize = 20;
/// Offset of the producer's timestamp.
pub const OFFSET_STAMP_NS: usize = 24;
/// Offset of the payload; also the size of the header.
pub const OFFSET_PAYLOAD: usize = 32;
/// Payload bytes of a one-slot message (the header takes the rest of the slot). Larger messages
/// span several slots (see [`slots_for`]).
pub const SLOT_PAYLOAD: usize = SLOT_SIZE - OFFSET_PAYLOAD;
/// `flags` bit of a pad record: it fills the rest of a lap so the next message is contiguous; a
/// consumer skips it and never delivers it.
pub const FLAG_PAD: u32 = 1;

/// Slots a message of `len` payload bytes spans: its header and payload, rounded up to whole
/// slots (at least one).
///
/// # Examples
///
/// ```
/// use perdix_transport::layout::slots_for;
/// assert_eq!((slots_for(0), slots_for(224), slots_for(225), slots_for(4096)), (1, 1, 2, 17));
/// ```
#[must_use]
pub const fn slots_for(len: usize) -> usize {
    let bytes = OFFSET_PAYLOAD.saturating_add(len);
    bytes.div_ceil(SLOT_SIZE)
}

/// The largest message a ring of `capacity` slots carries: half the ring, less one header (and
/// at most `u32::MAX`, the header's length field). A message and the pad before it then always
/// fit in the ring together.
///
/// # Examples
///
/// ```
/// use perdix_transport::layout::max_message;
/// assert_eq!((max_message(2), max_message(4), max_message(4096)), (224, 480, 524_256));
/// ```
#[must_use]
pub const fn max_message(capacity: usize) -> usize {
    let bytes = (capacity / 2)
        .saturating_mul(SLOT_SIZE)
        .saturating_sub(OFFSET_PAYLOAD);
    if bytes > u32::MAX as usize {
        u32::MAX as usize
    } else {
        bytes
    }
}
/// [`slots_for`] of a header's `len`, in `u64` (no overflow for any `u32`): what the consumer
/// checks a ready header with.
#[inline]
#[must_use]
pub(crate) const fn slots_for_len(len: u32) -> u64 {
    (OFFSET_PAYLOAD as u64 + len as u64).div_ceil(SLOT_SIZE as u64)
}

/// Header words (32-bit halves) of a low-latency slot ([`RingMode::LowLatency`](crate::RingMode)):
/// `len`, `kind`, `producer`, `flags`, and `stamp_ns` low and high, each in the low half of its
/// own 8-byte word whose high half is the position's flag (`src/ring/ll.rs` has the table).
pub const LL_HEADER_WORDS: usize = 6;
/// The largest message of a low-latency ring: the 32 words of a slot, less the header words,
/// at 4 payload bytes a word.
pub const LL_MAX_PAYLOAD: usize = (SLOT_SIZE / 8 - LL_HEADER_WORDS) * 4;

/// Cache-line size the GPU writes and the CPU reads in units of (a message touches
/// `ceil((OFFSET_PAYLOAD + len) / CACHE_LINE)` lines).
pub const CACHE_LINE: usize = 64;

/// One slot of the ring: the layout the table above describes.
///
/// The real build never makes one: the ring is raw bytes (`super::slots`), whose `seq` and
/// header words are reached as atomics at these offsets and whose payload is a byte range that
/// runs on through the next slots for a multi-slot message; this struct is what the offsets and
/// sizes are checked against at compile time.
#[cfg(not(perdix_loom))]
#[repr(C, align(256))]
#[allow(
    dead_code,
    reason = "a layout checked by `offset_of!`; the ring is raw bytes"
)]
pub(crate) struct Slot {
    /// `pos + 1` once the message at `pos` is complete; `0` before the first lap.
    seq: u64,
    /// `len | kind << 32`, `producer | flags << 32`, `stamp_ns` (see [`SlotHeader::to_words`]).
    header: [u64; HEADER_WORDS],
    /// The first [`SLOT_PAYLOAD`] payload bytes.
    payload: [u8; SLOT_PAYLOAD],
}

/// One slot as loom models it: the four header words as loom atomics and the body as a loom
/// cell. A multi-slot payload's bytes that fall on a continuation slot's `seq` and header words
/// are stored there as relaxed atomics (`super::slots`, loom build).
#[cfg(perdix_loom)]
pub(crate) struct Slot {
    /// As the real slot's `seq`.
    pub(crate) seq: AtomicU64,
    /// As the real slot's header words.
    pub(crate) header: [AtomicU64; HEADER_WORDS],
    /// The body after the header.
    pub(crate) body: UnsafeCell<[u8; SLOT_PAYLOAD]>,
}

#[cfg(perdix_loom)]
impl Slot {
    /// An empty slot: `seq` 0 (never written), zeroed header and body.
    pub(crate) fn new() -> Self {
        Self {
            seq: AtomicU64::new(0),
            header: [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)],
            body: UnsafeCell::new([0; SLOT_PAYLOAD]),
        }
    }
}

/// 64-bit header words after `seq`: `len | kind << 32`, `producer | flags << 32`, `stamp_ns`.
pub(crate) const HEADER_WORDS: usize = (OFFSET_PAYLOAD - OFFSET_LEN) / 8;

/// The header fields between `seq` and the payload, as values (decoded from the slot's words).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotHeader {
    pub(crate) len: u32,
    pub(crate) kind: u32,
    pub(crate) producer: u32,
    pub(crate) flags: u32,
    pub(crate) stamp_ns: u64,
}

impl SlotHeader {
    /// The three header words as they sit in memory (the GPU writes the same words:
    /// `perdix_owner_word` in `kernels/perdix.cuh`). Stored with `to_le`, so the bytes are at the
    /// offsets of the table above on any host.
    #[inline]
    pub(crate) fn to_words(self) -> [u64; HEADER_WORDS] {
        [
            (u64::from(self.len) | u64::from(self.kind) << 32).to_le(),
            (u64::from(self.producer) | u64::from(self.flags) << 32).to_le(),
            self.stamp_ns.to_le(),
        ]
    }

    /// The header the three words (as loaded from memory) describe.
    #[inline]
    pub(crate) fn from_words(words: [u64; HEADER_WORDS]) -> Self {
        let [a, b, stamp] = words.map(u64::from_le);
        Self {
            len: a as u32,
            kind: (a >> 32) as u32,
            producer: b as u32,
            flags: (b >> 32) as u32,
            stamp_ns: stamp,
        }
    }
}

// Loom's atomics and cells are larger than core's, so the layout is checked only on the real
// build; the constants above are what every other side uses.
#[cfg(not(perdix_loom))]
const _: () = {
    use core::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Slot>() == SLOT_SIZE);
    assert!(align_of::<Slot>() == SLOT_ALIGN);
    assert!(offset_of!(Slot, seq) == OFFSET_SEQ);
    // The header words: `len`/`kind` share the first (low/high half, little-endian), then
    // `producer`/`flags`, then `stamp_ns`, ending where the payload starts.
    assert!(offset_of!(Slot, header) == OFFSET_LEN);
    assert!(OFFSET_KIND == OFFSET_LEN + 4 && OFFSET_PRODUCER == OFFSET_LEN + 8);
    assert!(OFFSET_FLAGS == OFFSET_PRODUCER + 4 && OFFSET_STAMP_NS == OFFSET_LEN + 16);
    assert!(OFFSET_LEN + HEADER_WORDS * 8 == OFFSET_PAYLOAD);
    assert!(offset_of!(Slot, payload) == OFFSET_PAYLOAD);
    assert!(SLOT_SIZE.is_multiple_of(CACHE_LINE) && SLOT_ALIGN.is_multiple_of(CACHE_LINE));
    // A one-slot message is exactly what fits after the header; the smallest ring carries one.
    assert!(slots_for(SLOT_PAYLOAD) == 1 && slots_for(SLOT_PAYLOAD + 1) == 2);
    assert!(max_message(2) == SLOT_PAYLOAD);
    // A low-latency message is one slot, and its words include the throughput layout's (the
    // consumer rewrites it in place into that layout, then clears every word it used).
    assert!(LL_MAX_PAYLOAD == 104 && LL_MAX_PAYLOAD <= SLOT_PAYLOAD);
    assert!(
        OFFSET_PAYLOAD / 8 + LL_MAX_PAYLOAD.div_ceil(8) <= LL_HEADER_WORDS + LL_MAX_PAYLOAD / 4
    );
};

/// The layout as `-D` defines for the CUDA side (`kernels/perdix.cuh` asserts against them).
///
/// # Examples
///
/// ```
/// let defines = perdix_transport::layout::cuda_defines();
/// assert!(defines.contains(&("PERDIX_SLOT_SIZE", 256)));
/// ```
#[must_use]
pub fn cuda_defines() -> [(&'static str, usize); 14] {
    [
        ("PERDIX_SLOT_SIZE", SLOT_SIZE),
        ("PERDIX_SLOT_ALIGN", SLOT_ALIGN),
        ("PERDIX_OFFSET_SEQ", OFFSET_SEQ),
        ("PERDIX_OFFSET_LEN", OFFSET_LEN),
        ("PERDIX_OFFSET_KIND", OFFSET_KIND),
        ("PERDIX_OFFSET_PRODUCER", OFFSET_PRODUCER),
        ("PERDIX_OFFSET_FLAGS", OFFSET_FLAGS),
        ("PERDIX_OFFSET_STAMP_NS", OFFSET_STAMP_NS),
        ("PERDIX_OFFSET_PAYLOAD", OFFSET_PAYLOAD),
        ("PERDIX_SLOT_PAYLOAD", SLOT_PAYLOAD),
        ("PERDIX_FLAG_PAD", FLAG_PAD as usize),
        ("PERDIX_CACHE_LINE", CACHE_LINE),
        ("PERDIX_LL_HEADER_WORDS", LL_HEADER_WORDS),
        ("PERDIX_LL_MAX_PAYLOAD", LL_MAX_PAYLOAD),
    ]
}

/// Bytes of ring memory for `capacity` slots, or `None` on overflow.
///
/// `size_of::<Slot>()` is [`SLOT_SIZE`] (asserted above); only under loom, whose atomics are
/// larger, does it differ, and then the ring must still fit its modelled slots.
#[must_use]
pub(crate) fn ring_bytes(capacity: usize) -> Option<usize> {
    capacity.checked_mul(core::mem::size_of::<Slot>())
}
