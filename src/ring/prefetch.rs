//! Prefetch hints for a consumer of a GPU ring.
//!
//! The GPU writes slots with DMA, so they arrive in the last-level cache or DRAM, not in the
//! consumer core's caches, and a consumer that waits for each line in turn is bound by memory
//! latency (docs/DESIGN-NOTES.md, "Consumers of GPU rings prefetch"). A prefetch is a hint: it
//! reads nothing the program observes and changes no memory, so it races nothing, and a
//! pointer it is given only has to be inside the ring, which [`Slots::slot_ptr`] guarantees by
//! wrapping the position.

use super::layout::{slots_for_len, CACHE_LINE, OFFSET_PAYLOAD, SLOT_PAYLOAD};
use super::slots::Slots;

/// How far ahead a consumer of a GPU ring prefetches, in slots: enough messages at full rate
/// to cover one miss to memory.
const PREFETCH_SLOTS: u64 = 16;

/// Asks for the slot [`PREFETCH_SLOTS`] after `head` (its first line, and the last line a
/// message of `len` bytes uses, as the current one did).
#[inline(always)]
pub(super) fn ahead(slots: &Slots, head: u64, len: u32) {
    slot(slots, head + PREFETCH_SLOTS, len);
}

/// At the start of a drain: the next [`PREFETCH_SLOTS`] slots after `head` (a drain that starts
/// cold, several rings per thread, would otherwise wait for them one by one).
#[inline]
pub(super) fn start(slots: &Slots, head: u64, len: u32) {
    for next in 1..=PREFETCH_SLOTS {
        slot(slots, head + next, len);
    }
}

/// The first line of the slot for `pos` and the last line a one-slot message of `len` bytes
/// uses.
#[inline(always)]
fn slot(slots: &Slots, pos: u64, len: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = slots.slot_ptr(pos).cast::<i8>().cast_const();
        let len = (len as usize).clamp(1, SLOT_PAYLOAD);
        let last_line = (OFFSET_PAYLOAD + len - 1) & !(CACHE_LINE - 1);
        // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has; it is a hint that never
        // faults or reads program-visible memory, and `first` is inside the ring.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(first) };
        // SAFETY: as above; `last_line < SLOT_SIZE`, so this stays inside the same slot.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(last_line)) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slots, pos, len);
}

/// A message of `len` bytes over one slot at `head`: the first line of the slot after it (the
/// next message's `seq`, which the next poll loads) and, with intent to write, the first line of
/// each of its continuation slots (which the consumer's stamps will store to), so those misses
/// overlap the caller's reads instead of following them.
#[inline]
pub(super) fn span(slots: &Slots, head: u64, len: u32) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};
        let k = slots_for_len(len);
        let next = slots.slot_ptr(head + k).cast::<i8>().cast_const();
        // SAFETY: as in `slot`: a hint, on a pointer inside the ring.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(next) };
        for q in 1..k {
            let line = slots.slot_ptr(head + q).cast::<i8>().cast_const();
            // SAFETY: as above (a write-intent hint: `prefetchw` changes no memory).
            unsafe { _mm_prefetch::<_MM_HINT_ET0>(line) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (slots, head, len);
}
