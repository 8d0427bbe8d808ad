//! What the plugin holds outside a ring, in bytes: what one message costs ([`cost`]), the gate
//! a drain passes each message through before taking it out of its ring ([`Gate`]), and a
//! ring's count of what its drain thread and the frame hold ([`HeldBytes`]).
//!
//! A budget in messages does not bound memory once a message can be any size (a 1024-slot ring
//! carries messages of 128 KiB): so every path that copies messages out of a ring and keeps
//! them stops, *before* taking a message, at
//! [`PerdixPlugin::max_held_bytes`](crate::bevy::PerdixPlugin::max_held_bytes). The message
//! stays in the ring, which fills: `Block` producers wait there (backpressure) and `DropNewest`
//! producers drop there, counted by the ring. The plugin itself never discards a message.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};

use crate::bevy::message::PerdixMessage;
use crate::layout::max_message;
use crate::Error;

/// What one held message is counted as, besides its payload: the size of a
/// [`PerdixMessage`] (its header fields and its inline payload, about a slot). Every form a
/// message is staged in is at most its payload plus this (a typed `T` is its payload, an
/// `Envelope<T>` adds 28 bytes of header, a `PerdixSlice<T>` a `Vec` and the header, a raw
/// message over one slot this plus its heap copy).
pub(crate) const MESSAGE_OVERHEAD: u64 = core::mem::size_of::<PerdixMessage>() as u64;

/// The bytes a message of `len` payload bytes is counted as while the plugin holds it.
#[inline]
pub(crate) fn cost(len: u32) -> u64 {
    u64::from(len) + MESSAGE_OVERHEAD
}

/// Checks that a limit of `limit` bytes holds one message of the largest size a ring of
/// `capacity` slots carries, at its [`cost`]: below that, such a message could never leave its
/// ring, and the ring would stop there for good.
pub(crate) fn check_max_held(capacity: usize, limit: usize) -> Result<(), Error> {
    let largest = max_message(capacity);
    let need = largest.saturating_add(MESSAGE_OVERHEAD as usize);
    if limit < need {
        return Err(Error::InvalidConfig(format!(
            "max_held_bytes of {limit} cannot hold one message of the rings' largest size \
             ({largest} bytes, counted as {need}): it would never leave its ring"
        )));
    }
    Ok(())
}

/// The gate of one drain call: admits a message while its [`cost`] fits what is left of the
/// room, and remembers a refusal (a message is waiting that did not fit).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gate {
    /// Bytes that may still be taken.
    room: u64,
    /// A soft cap for this call (a drain thread's batch): once this many bytes are taken, the
    /// next message is refused; the first is admitted whatever its size (if `room` allows).
    cap: u64,
    /// Bytes taken through this gate.
    taken: u64,
    /// A ready message was refused.
    refused: bool,
}

impl Gate {
    /// A gate with `room` bytes, no soft cap.
    pub(crate) fn new(room: u64) -> Self {
        Self::capped(room, u64::MAX)
    }

    /// A gate with `room` bytes that also refuses once `cap` bytes are taken (but always
    /// admits a first message that fits `room`).
    pub(crate) fn capped(room: u64, cap: u64) -> Self {
        Self {
            room,
            cap,
            taken: 0,
            refused: false,
        }
    }

    /// Whether a message of `len` payload bytes may be taken; counts it if so.
    #[inline]
    pub(crate) fn admit(&mut self, len: u32) -> bool {
        let cost = cost(len);
        let over_cap = self.taken > 0 && self.taken.saturating_add(cost) > self.cap;
        if cost > self.room || over_cap {
            self.refused = true;
            return false;
        }
        self.room -= cost;
        self.taken += cost;
        true
    }

    /// Bytes taken through the gate.
    pub(crate) fn taken(&self) -> u64 {
        self.taken
    }

    /// Bytes left of the room.
    pub(crate) fn room(&self) -> u64 {
        self.room
    }

    /// Whether a ready message was refused (it waits in its ring).
    pub(crate) fn refused(&self) -> bool {
        self.refused
    }
}

/// The bytes one ring's messages take while the plugin holds them outside the ring: added by
/// the drain thread after it took them (it alone adds, so a value it reads can only be high,
/// never low: what it admits against it stays within the limit), taken off by the frame when
/// it lets them go (written into `Messages<T>`, or read by `drain_with` and the batch reused).
#[derive(Debug, Default)]
pub(crate) struct HeldBytes(AtomicU64);

impl HeldBytes {
    /// Bytes held now. Relaxed: a count, not a guard of other memory; the drain thread reads
    /// a value that can only be higher than the true one.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, bytes: u64) {
        if bytes > 0 {
            self.0.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    pub(crate) fn sub(&self, bytes: u64) {
        if bytes > 0 {
            self.0.fetch_sub(bytes, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{cost, Gate, MESSAGE_OVERHEAD};

    #[test]
    fn the_gate_admits_what_fits_and_remembers_a_refusal() {
        let mut gate = Gate::new(cost(100) + cost(50));
        assert!(gate.admit(100));
        assert!(!gate.admit(51), "one byte over the room");
        assert!(gate.refused());
        assert!(gate.admit(50));
        assert_eq!((gate.taken(), gate.room()), (cost(100) + cost(50), 0));
        assert!(!Gate::new(MESSAGE_OVERHEAD - 1).admit(0));
    }

    #[test]
    fn the_soft_cap_admits_a_first_message_of_any_size() {
        let mut gate = Gate::capped(u64::MAX, 10);
        assert!(gate.admit(1_000), "the first message fits the room");
        assert!(!gate.admit(0), "the cap is reached");
        let mut gate = Gate::capped(cost(8) * 3, cost(8) * 2);
        assert!(gate.admit(8) && gate.admit(8));
        assert!(!gate.admit(8));
        assert_eq!(gate.taken(), cost(8) * 2);
    }
}
