//! The ring's slot memory as raw bytes (the real build; `slots_loom.rs` is loom's model).
//!
//! A multi-slot message's payload covers the next slots' `seq` and header bytes, so the slots
//! cannot be `Slot` structs with a 224-byte payload cell: the ring is `capacity * SLOT_SIZE`
//! bytes, each slot's `seq` and header words are reached with [`AtomicU64::from_ptr`] at the
//! offsets of [`layout`](super::layout), and a payload is one raw byte range from offset
//! [`OFFSET_PAYLOAD`] of its first slot. Who may touch which bytes (the protocol, see
//! `docs/DESIGN-NOTES.md`, "Multi-slot messages"):
//! - a first slot's `seq`: only atomically, by the consumer (acquire loads) and the producer that
//!   reserved the position (its release store, last);
//! - its header words: atomically, written by that producer before the `seq` store, loaded
//!   once each by the consumer after the acquire;
//! - a payload, continuation slots' first 32 bytes included: plain writes by the producer that
//!   reserved the positions, until its `seq` release store; plain reads by the consumer after its
//!   acquire, until it releases the positions;
//! - a continuation slot's first word, once read: the consumer's relaxed stamp (`q + 1`),
//!   ordered before the head publish that hands the slot back.
//!
//! The consumer only ever loads the `seq` of the slot at its head, which is a message's first
//! slot, so no atomic access ever races a plain one on the same bytes.

use core::ptr::NonNull;

use super::layout::{SlotHeader, HEADER_WORDS, OFFSET_LEN, OFFSET_PAYLOAD, OFFSET_SEQ, SLOT_SIZE};
use crate::sync::{AtomicU64, Ordering};

/// The slots of one ring: `capacity` slots of [`SLOT_SIZE`] bytes from `base`.
#[derive(Debug)]
pub(crate) struct Slots {
    /// First byte of slot 0; aligned to `SLOT_ALIGN`, valid for `capacity * SLOT_SIZE` bytes
    /// for the life of the ring (its memory owner outlives this).
    base: NonNull<u8>,
    /// `capacity - 1` (the capacity is a power of two).
    mask: u64,
}

/// A payload's bytes for the consumer: `len` bytes from a first slot's offset 32 on. Holds no
/// borrow, so a guard can keep it beside its `&mut Consumer`.
#[derive(Debug)]
pub(crate) struct ReadBuf(*const [u8]);

/// A payload's bytes for the producer that reserved them.
#[derive(Debug)]
pub(crate) struct WriteBuf(*mut [u8]);

// SAFETY: a `ReadBuf` is an address range that is only ever read (as a `&[u8]` would be, which
// is `Send` and `Sync`); who may read it when is `Slots::read`'s contract.
unsafe impl Send for ReadBuf {}
// SAFETY: as for `Send`.
unsafe impl Sync for ReadBuf {}
// SAFETY: a `WriteBuf` is an address range written only through `&mut WriteBuf` (as a
// `&mut [u8]` would be); who may write it when is `Slots::write`'s contract.
unsafe impl Send for WriteBuf {}
// SAFETY: `&WriteBuf` gives no access to the bytes.
unsafe impl Sync for WriteBuf {}

impl ReadBuf {
    /// The bytes.
    ///
    /// # Safety
    ///
    /// 1. The range is still held by the consumer ([`Slots::read`]'s rules hold).
    #[inline(always)]
    pub(crate) unsafe fn get(&self) -> &[u8] {
        // SAFETY: rule 1: the producer wrote these bytes before the `seq` the consumer
        // acquired and does not write them again until the consumer releases them.
        unsafe { &*self.0 }
    }
}

impl WriteBuf {
    /// The bytes, to read back.
    ///
    /// # Safety
    ///
    /// 1. The range is still reserved by the caller and unpublished ([`Slots::write`]'s rules).
    #[inline(always)]
    pub(crate) unsafe fn get(&self) -> &[u8] {
        // SAFETY: rule 1: nobody else writes these bytes meanwhile.
        unsafe { &*self.0 }
    }

    /// The bytes, to write.
    ///
    /// # Safety
    ///
    /// 1. The range is still reserved by the caller and unpublished ([`Slots::write`]'s rules).
    #[inline(always)]
    pub(crate) unsafe fn get_mut(&mut self) -> &mut [u8] {
        // SAFETY: rule 1: nobody else reads or writes these bytes until the caller's `seq`
        // release store publishes them.
        unsafe { &mut *self.0 }
    }
}

impl Slots {
    /// Zeroes `capacity` slots at `base`: every `seq` 0 (never written).
    ///
    /// # Safety
    ///
    /// 1. `base` is aligned to `SLOT_ALIGN` and valid for writes of `capacity * SLOT_SIZE`
    ///    bytes (no overflow) until [`Slots::drop_slots`], and nobody else touches them meanwhile
    ///    but through this value (and GPU producers under the same protocol).
    pub(crate) unsafe fn init(base: NonNull<u8>, capacity: usize) -> Self {
        // SAFETY: rule 1: the bytes are ours to write and nobody else has the address yet.
        unsafe { base.as_ptr().write_bytes(0, capacity * SLOT_SIZE) };
        Self {
            base,
            mask: capacity as u64 - 1,
        }
    }

    /// Nothing to drop: the slots are plain bytes (loom's model drops its cells here).
    ///
    /// # Safety
    ///
    /// 1. Called once, when both halves are gone.
    pub(crate) unsafe fn drop_slots(&mut self) {}

    /// First byte of the slot for `pos` (`pos % capacity`).
    #[inline(always)]
    pub(crate) fn slot_ptr(&self, pos: u64) -> *mut u8 {
        let idx = (pos & self.mask) as usize;
        // SAFETY: `idx < capacity`, so the offset stays inside the ring (rule 1 of `init`).
        unsafe { self.base.as_ptr().add(idx * SLOT_SIZE) }
    }

    /// The 64-bit word at byte `offset` (8-aligned, `< SLOT_SIZE`) of the slot for `pos`.
    #[inline(always)]
    fn word(&self, pos: u64, offset: usize) -> &AtomicU64 {
        debug_assert!(offset.is_multiple_of(8) && offset < SLOT_SIZE);
        // SAFETY: the pointer is inside the ring and 8-aligned (slots are 256-aligned), valid
        // for the ring's life (which `&self` is part of); these words are accessed atomically
        // whenever another side may touch them concurrently (the module's rules).
        unsafe { AtomicU64::from_ptr(self.slot_ptr(pos).add(offset).cast::<u64>()) }
    }

    /// Word `w` (`< SLOT_SIZE / 8`) of the slot for `pos`: a low-latency ring's words, each
    /// accessed atomically by both sides (`super::ll`).
    #[inline(always)]
    pub(crate) fn word_at(&self, pos: u64, w: usize) -> &AtomicU64 {
        self.word(pos, 8 * w)
    }

    /// The `seq` word of the slot for `pos`; also the first word a continuation slot is
    /// stamped in.
    #[inline(always)]
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        self.word(pos, OFFSET_SEQ)
    }

    /// The header of the slot for `pos`: each word loaded once (relaxed; the caller's acquire of
    /// `seq` orders them after the producer's writes).
    #[inline(always)]
    pub(crate) fn header(&self, pos: u64) -> SlotHeader {
        let words: [u64; HEADER_WORDS] =
            core::array::from_fn(|i| self.word(pos, OFFSET_LEN + 8 * i).load(Ordering::Relaxed));
        SlotHeader::from_words(words)
    }

    /// Producer: stores the header words of the slot for `pos` (relaxed; the release store of
    /// `seq` that follows publishes them).
    #[inline(always)]
    pub(crate) fn write_header(&self, pos: u64, header: SlotHeader) {
        for (i, value) in header.to_words().into_iter().enumerate() {
            self.word(pos, OFFSET_LEN + 8 * i)
                .store(value, Ordering::Relaxed);
        }
    }

    /// The `len` payload bytes of the message at `pos`, for reading.
    ///
    /// # Safety
    ///
    /// 1. The consumer acquired `seq == pos + 1` and holds `pos .. pos + slots_for(len)` until
    ///    the returned value is no longer used;
    /// 2. `(pos % capacity) + slots_for(len) <= capacity` (checked on the header's local copy).
    #[inline(always)]
    pub(crate) unsafe fn read(&self, pos: u64, len: usize) -> ReadBuf {
        // SAFETY: rule 2: the range ends inside the ring.
        let start = unsafe { self.slot_ptr(pos).add(OFFSET_PAYLOAD) };
        ReadBuf(core::ptr::slice_from_raw_parts(start, len))
    }

    /// The `len` payload bytes of the message at `pos`, for writing.
    ///
    /// # Safety
    ///
    /// 1. The caller reserved `pos .. pos + slots_for(len)` (below the consumer's acquired head
    ///    plus the capacity) and has not published `seq` for `pos` yet;
    /// 2. `(pos % capacity) + slots_for(len) <= capacity`.
    #[inline(always)]
    pub(crate) unsafe fn write(&self, pos: u64, len: usize) -> WriteBuf {
        // SAFETY: rule 2: the range ends inside the ring.
        let start = unsafe { self.slot_ptr(pos).add(OFFSET_PAYLOAD) };
        WriteBuf(core::ptr::slice_from_raw_parts_mut(start, len))
    }

    /// Producer: the first `len` bytes of `buf` are the message's (loom copies them into its
    /// modelled slots here; the real build wrote them in place).
    #[inline(always)]
    pub(crate) fn finish_write(&self, pos: u64, buf: WriteBuf, len: usize) {
        let _ = (pos, buf, len);
    }
}
