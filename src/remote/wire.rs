//! The batch format on the wire: one fixed little-endian header, then each message's header
//! fields and payload, packed with no padding.
//!
//! ```text
//! header (40 bytes)                       record (28 bytes + payload), `count` times
//! 0  magic     [u8; 4] = b"PDXB"          0  kind      u32
//! 4  version   u16     = 1                4  producer  u32
//! 6  flags     u16     (bit 0: END)       8  seq       u64  (the message's ring position)
//! 8  batch     u64     (per stream)       16 stamp_ns  u64  (the producer's stamp)
//! 16 first     u64     (stream index)     24 len       u32
//! 24 count     u32                        28 payload   [u8; len]
//! 28 reserved  u32     = 0
//! 32 sent_ns   u64     (UNIX epoch ns)
//! ```
//!
//! `batch` counts a stream's batches from 0 and `first` its messages from 0, so a receiver
//! counts missing batches *and* missing messages exactly from the next batch it gets. A batch
//! with the END flag closes its stream (it may carry messages or none).
//!
//! Bytes from the network are untrusted: [`decode`] checks every length against what is there
//! (checked arithmetic, no panic) and returns a [`WireError`] naming what is wrong; a batch it
//! accepts iterates its records with no further check.
#![forbid(unsafe_code)]

#[cfg(test)]
mod tests;

use crate::Message;

/// The first four bytes of every batch.
pub const MAGIC: [u8; 4] = *b"PDXB";
/// The format's version.
pub const VERSION: u16 = 1;
/// Bytes of the batch header.
pub const HEADER_LEN: usize = 40;
/// Bytes of a record's header (before its payload).
pub const RECORD_HEADER_LEN: usize = 28;
/// The flag of a stream's last batch.
pub const FLAG_END: u16 = 1;

/// One message as the batch carries it: its ring header fields and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Message kind.
    pub kind: u32,
    /// Producer id.
    pub producer: u32,
    /// Position in its ring's stream (of its first slot).
    pub seq: u64,
    /// The producer's stamp in ns (its host's clock; 0 when not stamped).
    pub stamp_ns: u64,
    /// The payload.
    pub payload: &'a [u8],
}

impl<'a> From<Message<'a>> for Record<'a> {
    fn from(message: Message<'a>) -> Self {
        Self {
            kind: message.kind(),
            producer: message.producer(),
            seq: message.seq(),
            stamp_ns: message.stamp_ns(),
            payload: message.payload(),
        }
    }
}

/// A batch's header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchHeader {
    /// Flags ([`FLAG_END`]).
    pub flags: u16,
    /// The batch's number in its stream, from 0.
    pub batch: u64,
    /// The stream index of its first message, from 0.
    pub first: u64,
    /// Messages in the batch.
    pub count: u32,
    /// When the publisher sent it, in ns since the UNIX epoch.
    pub sent_ns: u64,
}

impl BatchHeader {
    /// Whether this batch closes its stream.
    #[must_use]
    pub fn is_end(&self) -> bool {
        self.flags & FLAG_END != 0
    }

    /// The stream index after its last message (`first + count`); `None` on overflow (a
    /// batch [`decode`] accepted never overflows).
    #[must_use]
    pub fn next_first(&self) -> Option<u64> {
        self.first.checked_add(u64::from(self.count))
    }
}

/// Why bytes are not a batch: one meaning per variant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Fewer bytes than a batch header.
    #[error("batch of {len} bytes is shorter than its {HEADER_LEN}-byte header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The first four bytes are not [`MAGIC`].
    #[error("not a perdix batch: magic {0:02x?}")]
    BadMagic([u8; 4]),
    /// A version this build does not read.
    #[error("unsupported batch version {0} (this build reads {VERSION})")]
    Version(u16),
    /// Flag bits this version does not define.
    #[error("unknown batch flags {0:#06x}")]
    Flags(u16),
    /// The reserved word is not zero.
    #[error("reserved header word is {0}, not 0")]
    Reserved(u32),
    /// `first + count` overflows the stream index.
    #[error("message index overflows: first {first} + count {count}")]
    IndexOverflow {
        /// The header's `first`.
        first: u64,
        /// The header's `count`.
        count: u32,
    },
    /// Record `index` has fewer bytes left than its 28-byte header.
    #[error("record {index} truncated: {left} bytes left for a {RECORD_HEADER_LEN}-byte header")]
    RecordTruncated {
        /// The record's index in the batch.
        index: u32,
        /// Bytes left.
        left: usize,
    },
    /// Record `index` says its payload is longer than the bytes left.
    #[error("record {index} payload of {len} bytes overruns the {left} bytes left")]
    PayloadOverrun {
        /// The record's index in the batch.
        index: u32,
        /// The payload length it claims.
        len: u32,
        /// Bytes left after its header.
        left: usize,
    },
    /// Bytes after the last record.
    #[error("{extra} bytes after the last of {count} records")]
    TrailingBytes {
        /// Bytes after the last record.
        extra: usize,
        /// Records the header declared.
        count: u32,
    },
}

/// A batch [`decode`] accepted: its header and its records, borrowed from the bytes.
#[derive(Debug, Clone, Copy)]
pub struct Batch<'a> {
    header: BatchHeader,
    /// The records' bytes (after the header), checked to hold exactly `count` records.
    body: &'a [u8],
}

impl<'a> Batch<'a> {
    /// The batch header.
    #[must_use]
    pub fn header(&self) -> BatchHeader {
        self.header
    }

    /// Its records, in order.
    #[must_use]
    pub fn records(&self) -> Records<'a> {
        Records {
            rest: self.body,
            left: self.header.count,
        }
    }

    /// Payload bytes over all records.
    #[must_use]
    pub fn payload_bytes(&self) -> usize {
        self.records().map(|r| r.payload.len()).sum()
    }
}

/// The records of a [`Batch`], in order.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
    left: u32,
}

impl<'a> Records<'a> {
    /// The records of `bytes`, a batch [`decode`] accepted (its header's `count`): no second
    /// check of every length (each record is still split with checked arithmetic, and a
    /// record that does not fit ends the walk).
    pub(crate) fn of_checked(bytes: &'a [u8], count: u32) -> Self {
        Records {
            rest: bytes.get(HEADER_LEN..).unwrap_or(&[]),
            left: count,
        }
    }
}

impl<'a> Iterator for Records<'a> {
    type Item = Record<'a>;

    fn next(&mut self) -> Option<Record<'a>> {
        if self.left == 0 {
            return None;
        }
        // `decode` checked every record; a failure here would mean a bug, and ends the walk.
        let (record, rest) = split_record(self.rest).ok()?;
        self.rest = rest;
        self.left -= 1;
        Some(record)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.left as usize;
        (left, Some(left))
    }
}

/// Why a record could not be split off (without its index, which the caller knows).
enum Split {
    Truncated(usize),
    Overrun(u32, usize),
}

/// Splits one record off the front of `bytes`.
fn split_record(bytes: &[u8]) -> Result<(Record<'_>, &[u8]), Split> {
    let (head, rest) = bytes
        .split_first_chunk::<RECORD_HEADER_LEN>()
        .ok_or(Split::Truncated(bytes.len()))?;
    let len = le_u32(head, 24);
    let n = usize::try_from(len).map_err(|_| Split::Overrun(len, rest.len()))?;
    let (payload, rest) = rest
        .split_at_checked(n)
        .ok_or(Split::Overrun(len, rest.len()))?;
    let record = Record {
        kind: le_u32(head, 0),
        producer: le_u32(head, 4),
        seq: le_u64(head, 8),
        stamp_ns: le_u64(head, 16),
        payload,
    };
    Ok((record, rest))
}

/// Reads a batch from untrusted bytes, checking every record.
///
/// # Errors
///
/// A [`WireError`] naming the first thing wrong; nothing is partly accepted.
///
/// # Examples
///
/// ```
/// use perdix_transport::remote::wire::{decode, Record, WireError};
/// use perdix_transport::remote::BatchWriter;
///
/// let mut writer = BatchWriter::new(4096);
/// writer.begin(0, 0);
/// writer.push(Record { kind: 1, producer: 2, seq: 3, stamp_ns: 4, payload: b"hi" });
/// let bytes = writer.finish(0, 99).to_vec();
/// let batch = decode(&bytes)?;
/// assert_eq!(batch.header().count, 1);
/// assert_eq!(batch.records().next().unwrap().payload, b"hi");
/// // One byte short: the record's payload overruns the batch.
/// assert!(matches!(decode(&bytes[..bytes.len() - 1]), Err(WireError::PayloadOverrun { .. })));
/// # Ok::<(), WireError>(())
/// ```
pub fn decode(bytes: &[u8]) -> Result<Batch<'_>, WireError> {
    let (head, body) = bytes
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(WireError::TooShort { len: bytes.len() })?;
    let magic = [head[0], head[1], head[2], head[3]];
    if magic != MAGIC {
        return Err(WireError::BadMagic(magic));
    }
    let version = le_u16(head, 4);
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let flags = le_u16(head, 6);
    if flags & !FLAG_END != 0 {
        return Err(WireError::Flags(flags));
    }
    let reserved = le_u32(head, 28);
    if reserved != 0 {
        return Err(WireError::Reserved(reserved));
    }
    let header = BatchHeader {
        flags,
        batch: le_u64(head, 8),
        first: le_u64(head, 16),
        count: le_u32(head, 24),
        sent_ns: le_u64(head, 32),
    };
    if header.next_first().is_none() {
        return Err(WireError::IndexOverflow {
            first: header.first,
            count: header.count,
        });
    }
    let mut rest = body;
    for index in 0..header.count {
        rest = match split_record(rest) {
            Ok((_, rest)) => rest,
            Err(Split::Truncated(left)) => return Err(WireError::RecordTruncated { index, left }),
            Err(Split::Overrun(len, left)) => {
                return Err(WireError::PayloadOverrun { index, len, left })
            }
        };
    }
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes {
            extra: rest.len(),
            count: header.count,
        });
    }
    Ok(Batch { header, body })
}

fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Now, in ns since the UNIX epoch (0 before it): a batch's send time.
#[must_use]
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}
