//! [`BatchWriter`]: one batch at a time, in the [`wire`](super::wire) format.
#![forbid(unsafe_code)]

use super::wire::{Record, HEADER_LEN, MAGIC, RECORD_HEADER_LEN, VERSION};

/// Builds one batch at a time in a buffer of its own.
///
/// `begin`, then `push` records while [`fits`](Self::fits) says so, then `finish`; the bytes
/// are handed out with [`take`](Self::take) (a fresh buffer per batch, since the transport
/// owns what it sends).
#[derive(Debug)]
pub struct BatchWriter {
    buf: Vec<u8>,
    count: u32,
    target: usize,
}

impl BatchWriter {
    /// A writer of batches of about `target` bytes (the buffer's first capacity).
    #[must_use]
    pub fn new(target: usize) -> Self {
        Self {
            buf: Vec::with_capacity(target.max(HEADER_LEN)),
            count: 0,
            target: target.max(HEADER_LEN),
        }
    }

    /// Starts a batch: its number in the stream and its first message's stream index.
    pub fn begin(&mut self, batch: u64, first: u64) {
        self.buf.clear();
        self.buf.extend_from_slice(&MAGIC);
        self.buf.extend_from_slice(&VERSION.to_le_bytes());
        self.buf.extend_from_slice(&0u16.to_le_bytes());
        self.buf.extend_from_slice(&batch.to_le_bytes());
        self.buf.extend_from_slice(&first.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(&0u32.to_le_bytes());
        self.buf.extend_from_slice(&0u64.to_le_bytes());
        self.count = 0;
    }

    /// Bytes a record of `payload_len` bytes takes.
    #[must_use]
    pub fn record_len(payload_len: usize) -> usize {
        RECORD_HEADER_LEN.saturating_add(payload_len)
    }

    /// Whether a record of `payload_len` bytes keeps the batch within its target (an empty
    /// batch takes any record: a message larger than the target goes alone).
    #[must_use]
    pub fn fits(&self, payload_len: usize) -> bool {
        self.count == 0
            || self.buf.len().saturating_add(Self::record_len(payload_len)) <= self.target
    }

    /// Appends a record. Returns `false` (and appends nothing) when the batch already holds
    /// `u32::MAX` records or the payload is longer than `u32::MAX` bytes.
    pub fn push(&mut self, record: Record<'_>) -> bool {
        let (Ok(len), Some(count)) = (
            u32::try_from(record.payload.len()),
            self.count.checked_add(1),
        ) else {
            return false;
        };
        let mut head = [0u8; RECORD_HEADER_LEN];
        head[0..4].copy_from_slice(&record.kind.to_le_bytes());
        head[4..8].copy_from_slice(&record.producer.to_le_bytes());
        head[8..16].copy_from_slice(&record.seq.to_le_bytes());
        head[16..24].copy_from_slice(&record.stamp_ns.to_le_bytes());
        head[24..28].copy_from_slice(&len.to_le_bytes());
        self.buf.reserve(RECORD_HEADER_LEN + record.payload.len());
        self.buf.extend_from_slice(&head);
        self.buf.extend_from_slice(record.payload);
        self.count = count;
        true
    }

    /// Records in the batch so far.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Bytes of the batch so far (header included).
    #[must_use]
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the batch holds no record.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Writes the count, flags and send time into the header; returns the batch's bytes.
    pub fn finish(&mut self, flags: u16, sent_ns: u64) -> &[u8] {
        if self.buf.len() >= HEADER_LEN {
            self.buf[6..8].copy_from_slice(&flags.to_le_bytes());
            self.buf[24..28].copy_from_slice(&self.count.to_le_bytes());
            self.buf[32..40].copy_from_slice(&sent_ns.to_le_bytes());
        }
        &self.buf
    }

    /// Hands the finished batch's buffer out, leaving a fresh one of the target's capacity.
    pub fn take(&mut self) -> Vec<u8> {
        self.count = 0;
        std::mem::replace(&mut self.buf, Vec::with_capacity(self.target))
    }
}
