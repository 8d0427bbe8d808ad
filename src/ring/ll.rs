//! The low-latency slot format ([`RingMode::LowLatency`](crate::RingMode)): a flag in every
//! 8-byte word, so that a message is complete when every word it uses carries its position's
//! flag, and its producer needs no system-scope fence before a publication store (NCCL's LL
//! protocol; why: docs/DESIGN-NOTES.md, "Latency (issue 23): the low-latency ring").
//!
//! | word | low 32 bits | high 32 bits |
//! |---|---|---|
//! | 0 | `len` | `flag(pos)` |
//! | 1 | `kind` | `flag(pos)` |
//! | 2 | `producer` | `flag(pos)` |
//! | 3 | `flags` (0) | `flag(pos)` |
//! | 4, 5 | `stamp_ns` low, high | `flag(pos)` |
//! | 6.. | payload bytes `4i..4i + 4` (little-endian, zero past `len`) | `flag(pos)` |
//!
//! A message of `len <= `[`LL_MAX_PAYLOAD`] bytes uses [`words_for`]`(len)` words of one slot
//! (at most 32: one 8-byte store per lane of a warp) and nothing else; each word is one aligned
//! 8-byte store, which both sides access as a single-copy atomic. `flag(pos)` is odd, so never
//! 0, and an unused word is 0: the consumer clears every word a message used before it releases
//! the slot ([`clear`]), so each slot starts each lap zeroed and a word is either still 0 or
//! written for this lap. A word with any other flag can never become ready: the ring is corrupt.
//!
//! The consumer, once every word of a message carries the flag, rewrites the slot in place into
//! the throughput layout (`seq = pos + 1`, header, payload from byte 32: it owns the slot until
//! it releases it), so everything downstream of `poll` (guards, drains, the Bevy plugin) reads a
//! low-latency message exactly as any other.

use super::layout::{SlotHeader, LL_HEADER_WORDS, LL_MAX_PAYLOAD, SLOT_SIZE};
use super::slots::Slots;
use crate::sync::Ordering;

/// Words in a slot.
const WORDS: usize = SLOT_SIZE / 8;

/// The flag of every word of the message at `pos`: odd, so never an empty word's 0, and
/// different for every position of one slot within 2^31 positions.
#[inline]
#[must_use]
pub(crate) const fn flag(pos: u64) -> u32 {
    ((pos as u32) << 1) | 1
}

/// Words a message of `len` bytes uses (`len <= LL_MAX_PAYLOAD`).
#[inline]
#[must_use]
pub(crate) const fn words_for(len: usize) -> usize {
    LL_HEADER_WORDS + len.div_ceil(4)
}

/// The 32-bit data half of word `w` of a message.
#[inline]
fn data(w: usize, header: &SlotHeader, payload: &[u8]) -> u32 {
    match w {
        0 => header.len,
        1 => header.kind,
        2 => header.producer,
        3 => header.flags,
        4 => header.stamp_ns as u32,
        5 => (header.stamp_ns >> 32) as u32,
        _ => {
            let at = (w - LL_HEADER_WORDS) * 4;
            let mut bytes = [0u8; 4];
            if let Some(rest) = payload.get(at..) {
                let n = rest.len().min(4);
                bytes[..n].copy_from_slice(&rest[..n]);
            }
            u32::from_le_bytes(bytes)
        }
    }
}

/// The words of the message `header` + `payload` at `pos` (`payload.len() == header.len <=
/// LL_MAX_PAYLOAD`), and how many of them it uses.
#[must_use]
pub(crate) fn encode(pos: u64, header: &SlotHeader, payload: &[u8]) -> ([u64; WORDS], usize) {
    let n = words_for(payload.len());
    let high = u64::from(flag(pos)) << 32;
    let mut words = [0u64; WORDS];
    for (w, word) in words.iter_mut().enumerate().take(n) {
        *word = (u64::from(data(w, header, payload)) | high).to_le();
    }
    (words, n)
}

/// Writes the message at `pos` into its slot, word 0 last with release (a CPU producer: the
/// consumer's acquire of word 0 then sees every other word, and the payload the producer wrote
/// in place before, which these stores overwrite).
pub(crate) fn publish(slots: &Slots, pos: u64, header: &SlotHeader, payload: &[u8]) {
    let (words, n) = encode(pos, header, payload);
    for (w, word) in words.iter().enumerate().take(n).skip(1) {
        slots.word_at(pos, w).store(*word, Ordering::Relaxed);
    }
    slots.word_at(pos, 0).store(words[0], Ordering::Release);
}

/// What the consumer finds in the slot for `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Look {
    /// Word 0 is still empty: nothing was written for `pos` yet.
    Empty,
    /// Word 0 is there, some other word of the message not yet.
    Partial,
    /// Every word carries the flag: the header, with the payload in `payload[..len]`.
    Ready(SlotHeader, [u8; LL_MAX_PAYLOAD]),
    /// A word that can never become ready (another position's flag, or a length above
    /// `LL_MAX_PAYLOAD`): the word as read, and the length word 0 claimed.
    Corrupt { word: u64, len: u32 },
}

/// Reads the message at `pos`: word 0 with acquire (for a CPU producer, whose release store of
/// it comes last), then the rest, each loaded once and checked on its local copy.
#[must_use]
pub(crate) fn look(slots: &Slots, pos: u64) -> Look {
    let flag = flag(pos);
    let first = u64::from_le(slots.word_at(pos, 0).load(Ordering::Acquire));
    if first == 0 {
        return Look::Empty;
    }
    let len = first as u32;
    if (first >> 32) as u32 != flag || len as usize > LL_MAX_PAYLOAD {
        return Look::Corrupt { word: first, len };
    }
    let n = words_for(len as usize);
    let mut half = [0u32; WORDS];
    half[0] = len;
    for (w, slot) in half.iter_mut().enumerate().take(n).skip(1) {
        // Relaxed: each word is complete by itself (its flag says so); a GPU producer orders
        // none of them, a CPU producer's were ordered by the acquire above.
        let word = u64::from_le(slots.word_at(pos, w).load(Ordering::Relaxed));
        if word == 0 {
            return Look::Partial;
        }
        if (word >> 32) as u32 != flag {
            return Look::Corrupt { word, len };
        }
        *slot = word as u32;
    }
    let header = SlotHeader {
        len,
        kind: half[1],
        producer: half[2],
        flags: half[3],
        stamp_ns: u64::from(half[4]) | u64::from(half[5]) << 32,
    };
    let mut payload = [0u8; LL_MAX_PAYLOAD];
    for (chunk, value) in payload.chunks_exact_mut(4).zip(&half[LL_HEADER_WORDS..]) {
        chunk.copy_from_slice(&value.to_le_bytes());
    }
    Look::Ready(header, payload)
}

/// Clears the words the message of `len` bytes at `pos` used (and, as its rewrite into the
/// throughput layout used no more words, every word it touched): the slot is empty for the next
/// lap. Relaxed: the head publish after it is a release, and a sink push is preceded by a
/// release fence, so a producer that reuses the slot sees the zeros first.
pub(crate) fn clear(slots: &Slots, pos: u64, len: u32) {
    let n = words_for((len as usize).min(LL_MAX_PAYLOAD));
    for w in 0..n {
        slots.word_at(pos, w).store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
