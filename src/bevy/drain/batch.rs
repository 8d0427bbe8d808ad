//! A drain thread's [`Batch`]: the messages it took out of its ring in one go, staged by kind,
//! with their counts, handed to the frame whole and handed back empty for reuse.
#![forbid(unsafe_code)]

use super::held::{self, HeldBytes};
use super::taken::Sampler;
use crate::bevy::message::PerdixMessage;
use crate::bevy::stage::{RouteTable, Stage};
use crate::Message;

/// Messages a drain thread took out of its ring, staged by kind (registered types decoded, the
/// rest as [`PerdixMessage`]), with the counts the drain keeps.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    pub(crate) stage: Stage,
    /// Messages in the batch.
    pub(crate) count: usize,
    /// Their payload bytes.
    pub(crate) bytes: u64,
    /// What they are counted as while held ([`held::cost`] each: payload plus
    /// [`MESSAGE_OVERHEAD`](held::MESSAGE_OVERHEAD)), until the batch is let go.
    pub(crate) cost: u64,
    /// The largest payload among them, in bytes.
    pub(crate) largest: u64,
    /// Sampled drain latencies (ns).
    pub(crate) latencies: Vec<u64>,
    /// Raw messages already given to
    /// [`PerdixRings::drain_with`](crate::bevy::PerdixRings::drain_with), and their bytes.
    pub(super) raw_taken: usize,
    pub(super) raw_taken_bytes: u64,
}

impl Batch {
    /// The batch's staged messages, for the routing system to write.
    pub(crate) fn stage_mut(&mut self) -> &mut Stage {
        &mut self.stage
    }

    /// Messages not yet taken.
    pub(super) fn left(&self) -> usize {
        self.count - self.raw_taken
    }

    /// Makes the stage ready for `table`'s types (nothing to do without a table: all raw).
    pub(super) fn prepare(&mut self, table: Option<&RouteTable>) {
        if let Some(table) = table {
            self.stage.prepare(table);
        }
    }

    /// Empties the batch, keeping its buffers, and takes what it held off `held`.
    pub(super) fn clear(&mut self, held: &HeldBytes) {
        held.sub(self.cost);
        self.stage.clear();
        self.latencies.clear();
        (self.count, self.bytes, self.largest, self.cost) = (0, 0, 0, 0);
        (self.raw_taken, self.raw_taken_bytes) = (0, 0);
    }

    /// Drops the raw messages [`PerdixRings::drain_with`](crate::bevy::PerdixRings::drain_with)
    /// already took (they are not the drain system's), and takes them off `held`.
    pub(super) fn drop_raw_taken(&mut self, held: &HeldBytes) {
        let cost = self.raw_taken_bytes + self.raw_taken as u64 * held::MESSAGE_OVERHEAD;
        held.sub(cost);
        self.cost -= cost;
        self.stage.raw.drain(..self.raw_taken);
        self.count -= self.raw_taken;
        self.bytes -= self.raw_taken_bytes;
        (self.raw_taken, self.raw_taken_bytes) = (0, 0);
    }

    /// Takes `msg` of ring `ring` into the batch by the routes of `table` (everything raw
    /// without one).
    #[inline]
    pub(super) fn push(
        &mut self,
        table: Option<&RouteTable>,
        ring: u32,
        msg: &Message<'_>,
        sampler: &mut Sampler,
    ) {
        let len = msg.len() as u64;
        self.count += 1;
        self.bytes += len;
        self.cost += len + held::MESSAGE_OVERHEAD;
        self.largest = self.largest.max(len);
        sampler.sample(msg.stamp_ns(), &mut self.latencies);
        match table {
            Some(table) => self.stage.route(table, ring, msg),
            None => PerdixMessage::push(&mut self.stage.raw, ring, msg),
        }
    }
}
