//! The guard's side of a [`Consumer`]: the ready message at `head` as a guard's parts
//! ([`Held`]), and its release when the guard drops (`guard.rs` builds the guard).

use super::super::layout::SlotHeader;
use super::super::slots::ReadBuf;
use super::Consumer;
use crate::Error;

/// What a guard holds: a ready message's checked header, its position, and the read access to
/// its payload.
#[derive(Debug)]
pub(in crate::ring) struct Held {
    pub(in crate::ring) header: SlotHeader,
    pub(in crate::ring) pos: u64,
    pub(in crate::ring) access: ReadBuf,
}

impl Consumer {
    /// The ready message at `head`, if any, as a guard's parts: its checked header, its
    /// position and the read access to its payload (released by [`release_one`](Self::release_one)).
    #[inline]
    pub(in crate::ring) fn hold(&mut self) -> Result<Option<Held>, Error> {
        if let Some(held) = self.hold_ready() {
            return Ok(Some(held));
        }
        self.hold_slow()
    }

    /// [`hold`](Self::hold)'s common case alone: a ready one-slot message on a healthy ring
    /// (see [`ready`](Self::ready)); `None` for everything else, which
    /// [`hold_slow`](Self::hold_slow) decides.
    #[inline(always)]
    pub(in crate::ring) fn hold_ready(&mut self) -> Option<Held> {
        let header = self.ready()?;
        // SAFETY: `ready` just returned `header` for `head`, which has not moved.
        Some(unsafe { self.held(header) })
    }

    /// [`hold`](Self::hold) for every case but a ready one-slot message.
    #[inline(never)]
    pub(in crate::ring) fn hold_slow(&mut self) -> Result<Option<Held>, Error> {
        let Some(header) = self.poll_slow()? else {
            return Ok(None);
        };
        // SAFETY: `poll_slow` just returned `header` for `head` (a pad it skipped moved `head`
        // before it looked at the message it returns).
        Ok(Some(unsafe { self.held(header) }))
    }

    /// The guard's parts for the ready message at `head`.
    ///
    /// # Safety
    ///
    /// 1. `header` is what [`ready`](Self::ready) or [`poll_slow`](Self::poll_slow) returned for
    ///    the current `head` (they acquired `seq == head + 1` and checked its span), and nothing
    ///    has been released since.
    #[inline(always)]
    unsafe fn held(&mut self, header: SlotHeader) -> Held {
        let pos = self.head;
        self.held_len = header.len;
        // SAFETY: rule 1: `seq == pos + 1` was acquired and the header's span checked on this
        // local copy; the slots are released only by `release_one`, which the guard calls after
        // its access ends.
        let access = unsafe { self.ring.slots().read(pos, header.len as usize) };
        Held {
            header,
            pos,
            access,
        }
    }

    /// Called when a `MessageRef` drops (after its payload access ended): frees its slots.
    #[inline]
    pub(crate) fn release_one(&mut self) {
        self.advance(self.held_len);
        self.count_taken(self.held_len);
        self.publish();
    }
}
