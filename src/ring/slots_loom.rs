//! The ring's slots as loom models them (`cfg(perdix_loom)`; `slots.rs` is the real build).
//!
//! Loom cannot check raw bytes, so each slot is a [`Slot`] of loom atomics (`seq` and the three
//! header words) and a loom cell (the body after the header). A multi-slot payload's bytes that
//! fall on a continuation slot's `seq` and header words are stored there as relaxed atomics,
//! which is what lets a model see a stale payload word taken for a `seq` (the consumer's
//! stamping prevents it). The producer writes into a scratch buffer and copies it in at
//! [`Slots::finish_write`]; the consumer assembles a payload into a scratch buffer at
//! [`Slots::read`], holding the first slot's body access (tracked by loom) for as long as the
//! buffer lives, so a release before a read ends still fails a model.

use core::ptr::NonNull;

use loom::cell::{ConstPtr, MutPtr};

use super::layout::{Slot, SlotHeader, HEADER_WORDS, SLOT_PAYLOAD, SLOT_SIZE};
use crate::sync::{AtomicU64, Ordering};

/// The slots of one ring: `capacity` modelled slots from `base`.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Slot 0; `capacity` slots follow, written by `init`, dropped by `drop_slots`.
    base: NonNull<Slot>,
    /// `capacity - 1`.
    mask: u64,
}

/// A payload assembled for the consumer, with the tracked read access to its first slot's body.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    _access: ConstPtr<[u8; SLOT_PAYLOAD]>,
    bytes: Vec<u8>,
}

/// A payload being written: the scratch bytes and the tracked write access to the first body.
#[derive(Debug)]
pub(crate) struct WriteBuf {
    access: MutPtr<[u8; SLOT_PAYLOAD]>,
    bytes: Vec<u8>,
}

impl ReadBuf {
    /// The bytes.
    ///
    /// # Safety
    ///
    /// 1. As the real build's: the range is still held by the consumer.
    pub(crate) unsafe fn get(&self) -> &[u8] {
        &self.bytes
    }
}

impl WriteBuf {
    /// The bytes, to read back.
    ///
    /// # Safety
    ///
    /// 1. As the real build's: the range is still reserved and unpublished.
    pub(crate) unsafe fn get(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes, to write.
    ///
    /// # Safety
    ///
    /// 1. As the real build's: the range is still reserved and unpublished.
    pub(crate) unsafe fn get_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Slots {
    /// Writes `capacity` empty slots at `base`.
    ///
    /// # Safety
    ///
    /// 1. `base` is aligned for [`Slot`] and valid for `capacity` of them until
    ///    [`Slots::drop_slots`], and nobody else has the address yet.
    pub(crate) unsafe fn init(base: NonNull<u8>, capacity: usize) -> Self {
        let base = base.cast::<Slot>();
        for idx in 0..capacity {
            // SAFETY: rule 1: `idx < capacity` slots fit, and nobody else has the pointer.
            unsafe { base.as_ptr().add(idx).write(Slot::new()) };
        }
        Self {
            base,
            mask: capacity as u64 - 1,
        }
    }

    /// Drops every slot in place.
    ///
    /// # Safety
    ///
    /// 1. Called once, when both halves are gone.
    pub(crate) unsafe fn drop_slots(&mut self) {
        for idx in 0..=self.mask as usize {
            // SAFETY: rule 1; every slot was written in `init`.
            unsafe { core::ptr::drop_in_place(self.base.as_ptr().add(idx)) };
        }
    }

    fn slot(&self, pos: u64) -> &Slot {
        let idx = (pos & self.mask) as usize;
        // SAFETY: `idx < capacity`; the slot lives until `drop_slots`, after every borrow of
        // `self`; a shared reference to atomics and a cell asserts nothing about their contents.
        unsafe { &*self.base.as_ptr().add(idx) }
    }

    /// The slot's address (for prefetch hints).
    pub(crate) fn slot_ptr(&self, pos: u64) -> *mut u8 {
        core::ptr::from_ref(self.slot(pos)).cast_mut().cast::<u8>()
    }

    /// As the real build's.
    pub(crate) fn seq(&self, pos: u64) -> &AtomicU64 {
        &self.slot(pos).seq
    }

    /// As the real build's.
    pub(crate) fn header(&self, pos: u64) -> SlotHeader {
        let words = &self.slot(pos).header;
        SlotHeader::from_words(words.each_ref().map(|word| word.load(Ordering::Relaxed)))
    }

    /// As the real build's.
    pub(crate) fn write_header(&self, pos: u64, header: SlotHeader) {
        let words = &self.slot(pos).header;
        for (word, value) in words.iter().zip(header.to_words()) {
            word.store(value, Ordering::Relaxed);
        }
    }

    /// The four first words of a continuation slot, which carry payload bytes.
    fn words(&self, pos: u64) -> [&AtomicU64; 1 + HEADER_WORDS] {
        let slot = self.slot(pos);
        let [a, b, c] = &slot.header;
        [&slot.seq, a, b, c]
    }

    /// As the real build's (same contract): assembles the payload.
    pub(crate) unsafe fn read(&self, pos: u64, len: usize) -> ReadBuf {
        let access = self.slot(pos).body.get();
        let mut bytes = Vec::with_capacity(len);
        // SAFETY: the caller's rule 1: the consumer holds the slot, so nobody writes it.
        let body = unsafe { access.deref() };
        bytes.extend_from_slice(&body[..len.min(SLOT_PAYLOAD)]);
        let mut q = pos + 1;
        while bytes.len() < len {
            for word in self.words(q) {
                let le = word.load(Ordering::Relaxed).to_le_bytes();
                let take = (len - bytes.len()).min(8);
                bytes.extend_from_slice(&le[..take]);
            }
            let take = (len - bytes.len()).min(SLOT_PAYLOAD);
            self.slot(q).body.with(|body| {
                // SAFETY: as above, for the continuation slot `q` the consumer also holds.
                bytes.extend_from_slice(unsafe { &(&*body)[..take] });
            });
            q += 1;
        }
        ReadBuf {
            _access: access,
            bytes,
        }
    }

    /// As the real build's (same contract): a zeroed scratch buffer.
    pub(crate) unsafe fn write(&self, pos: u64, len: usize) -> WriteBuf {
        WriteBuf {
            access: self.slot(pos).body.get_mut(),
            bytes: vec![0; len],
        }
    }

    /// Copies the first `len` bytes of `buf` into the slots from `pos`, continuation words as
    /// relaxed atomics.
    pub(crate) fn finish_write(&self, pos: u64, buf: WriteBuf, len: usize) {
        let bytes = &buf.bytes[..len];
        let (first, mut rest) = bytes.split_at(len.min(SLOT_PAYLOAD));
        // SAFETY: the producer reserved `pos` (the contract of `write`), so it alone has it.
        unsafe { buf.access.deref()[..first.len()].copy_from_slice(first) };
        drop(buf.access);
        let mut q = pos + 1;
        while !rest.is_empty() {
            let slot = &rest[..rest.len().min(SLOT_SIZE)];
            for (word, chunk) in self.words(q).into_iter().zip(slot.chunks(8)) {
                let mut le = [0u8; 8];
                le[..chunk.len()].copy_from_slice(chunk);
                word.store(u64::from_le_bytes(le), Ordering::Relaxed);
            }
            let body = slot.get(SLOT_SIZE - SLOT_PAYLOAD..).unwrap_or(&[]);
            self.slot(q).body.with_mut(|cell| {
                // SAFETY: as above, for the continuation slot `q` the producer also reserved.
                unsafe { (&mut *cell)[..body.len()].copy_from_slice(body) };
            });
            rest = &rest[slot.len()..];
            q += 1;
        }
    }
}
