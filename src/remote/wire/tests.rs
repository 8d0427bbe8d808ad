//! The batch format: round trips, each error, and arbitrary bytes never panic.

use super::*;
use crate::remote::writer::BatchWriter;
use proptest::prelude::*;

fn batch_of(payloads: &[&[u8]], batch: u64, first: u64, flags: u16) -> Vec<u8> {
    let mut w = BatchWriter::new(1 << 16);
    w.begin(batch, first);
    for (i, p) in payloads.iter().enumerate() {
        let i = i as u64;
        assert!(w.push(Record {
            kind: 7,
            producer: 3,
            seq: 100 + i,
            stamp_ns: 5 + i,
            payload: p
        }));
    }
    w.finish(flags, 1234);
    w.take()
}

#[test]
fn round_trip_keeps_every_field() {
    let bytes = batch_of(&[b"a", b"", &[9u8; 300]], 4, 40, FLAG_END);
    assert_eq!(bytes.len(), HEADER_LEN + 3 * RECORD_HEADER_LEN + 301);
    let batch = decode(&bytes).unwrap();
    let h = batch.header();
    assert_eq!((h.batch, h.first, h.count, h.sent_ns), (4, 40, 3, 1234));
    assert!(h.is_end());
    assert_eq!(h.next_first(), Some(43));
    let records: Vec<_> = batch.records().collect();
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[2],
        Record {
            kind: 7,
            producer: 3,
            seq: 102,
            stamp_ns: 7,
            payload: &[9u8; 300]
        }
    );
    assert_eq!(records[1].payload, b"");
    assert_eq!(batch.payload_bytes(), 301);
}

#[test]
fn writer_fits_by_target_and_takes_one_oversized_record() {
    let mut w = BatchWriter::new(HEADER_LEN + 2 * (RECORD_HEADER_LEN + 4));
    w.begin(0, 0);
    assert!(w.fits(1000), "an empty batch takes any record");
    let r = Record {
        kind: 0,
        producer: 0,
        seq: 0,
        stamp_ns: 0,
        payload: b"abcd",
    };
    assert!(w.push(r) && w.fits(4) && w.push(r));
    assert!(!w.fits(4) && !w.fits(0));
    assert_eq!(w.count(), 2);
}

#[test]
fn each_error_names_its_cause() {
    let good = batch_of(&[b"xy"], 0, 0, 0);
    assert_eq!(
        decode(&good[..10]).unwrap_err(),
        WireError::TooShort { len: 10 }
    );
    let mut b = good.clone();
    b[0] = b'Q';
    assert_eq!(decode(&b).unwrap_err(), WireError::BadMagic(*b"QDXB"));
    let mut b = good.clone();
    b[4] = 2;
    assert_eq!(decode(&b).unwrap_err(), WireError::Version(2));
    let mut b = good.clone();
    b[6] = 2;
    assert_eq!(decode(&b).unwrap_err(), WireError::Flags(2));
    let mut b = good.clone();
    b[28] = 1;
    assert_eq!(decode(&b).unwrap_err(), WireError::Reserved(1));
    let mut b = good.clone();
    b[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        decode(&b).unwrap_err(),
        WireError::IndexOverflow {
            first: u64::MAX,
            count: 1
        }
    );
    let mut b = good.clone();
    b[24] = 2;
    assert_eq!(
        decode(&b).unwrap_err(),
        WireError::RecordTruncated { index: 1, left: 0 }
    );
    assert_eq!(
        decode(&good[..good.len() - 1]).unwrap_err(),
        WireError::PayloadOverrun {
            index: 0,
            len: 2,
            left: 1
        }
    );
    let mut b = good.clone();
    b.push(0);
    assert_eq!(
        decode(&b).unwrap_err(),
        WireError::TrailingBytes { extra: 1, count: 1 }
    );
    let mut b = good;
    b[24] = 0;
    assert_eq!(
        WireError::TrailingBytes {
            extra: 30,
            count: 0
        }
        .to_string(),
        "30 bytes after the last of 0 records"
    );
    assert_eq!(
        decode(&b).unwrap_err(),
        WireError::TrailingBytes {
            extra: 30,
            count: 0
        }
    );
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(batch) = decode(&bytes) {
            // Accepted: the records account for every byte.
            let n = batch.records().count();
            prop_assert_eq!(n, batch.header().count as usize);
            let body: usize = batch.records().map(|r| RECORD_HEADER_LEN + r.payload.len()).sum();
            prop_assert_eq!(body + HEADER_LEN, bytes.len());
        }
    }

    #[test]
    fn corrupted_batches_never_panic(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..8),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in any::<usize>(),
    ) {
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        let mut bytes = batch_of(&refs, 1, 2, 0);
        prop_assert_eq!(decode(&bytes).map(|b| b.records().count()).ok(), Some(payloads.len()));
        for (at, x) in flips {
            let at = at % bytes.len();
            bytes[at] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = decode(&bytes).map(|b| b.records().count());
    }
}
