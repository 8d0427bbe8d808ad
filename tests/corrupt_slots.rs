//! A faulty writer's slots: whatever bytes a slot holds, the consumer never panics, never hands
//! out bytes outside the ring or past its end, and never waits on a slot that cannot become
//! ready; it reports `Error::Corrupt` (a bad `seq`, a `len` above `max_message`, a message that
//! would wrap, a pad that does not end the lap), closes the ring for its producers, and keeps
//! reporting it. A valid pad is skipped; a stale payload word is never taken for a `seq`.
//!
//! The ring lives in memory the test keeps a pointer to (`build_in`), so the test writes slots
//! behind the ring's back as a GPU kernel would. Property tests run with a fixed seed and case
//! count; `.ci/run` runs them in debug and release builds.

use core::ptr::NonNull;

use perdix_transport::layout::{
    max_message, slots_for, FLAG_PAD, OFFSET_FLAGS, OFFSET_KIND, OFFSET_LEN, OFFSET_PAYLOAD,
    OFFSET_PRODUCER, OFFSET_SEQ, SLOT_PAYLOAD, SLOT_SIZE,
};
use perdix_transport::{Consumer, Error, Producer};
use proptest::prelude::*;

#[path = "support/host_ring.rs"]
mod host_ring;

use host_ring::ring_with_memory;
use proptest::test_runner::{Config, RngSeed};

/// A ring in host memory, with the address of its slots.
struct Scribbled {
    producer: Producer,
    consumer: Consumer,
    base: NonNull<u8>,
    capacity: u64,
}

/// What a faulty writer puts in a slot.
#[derive(Debug, Clone)]
struct Forged {
    seq: u64,
    len: u32,
    kind: u32,
    producer: u32,
    flags: u32,
    payload: Vec<u8>,
}

impl Scribbled {
    fn new(capacity: usize) -> Self {
        let (producer, consumer, base) = ring_with_memory(capacity);
        Self {
            producer,
            consumer,
            base,
            capacity: capacity as u64,
        }
    }

    /// Sends and reads `n` good messages, so the consumer's head is `n`.
    fn advance(&mut self, n: u64) {
        for i in 0..n {
            self.producer.try_produce(&i.to_le_bytes()).unwrap();
            let msg = self.consumer.try_consume_checked().unwrap().unwrap();
            assert_eq!((msg.seq(), &*msg), (i, &i.to_le_bytes()[..]));
        }
    }

    /// Writes `slot` into the slot for position `pos`, as a faulty producer would.
    fn forge(&mut self, pos: u64, slot: &Forged) {
        let offset = (pos % self.capacity) as usize * SLOT_SIZE;
        // SAFETY: the offset is inside the ring (`pos % capacity` slots of SLOT_SIZE); no
        // borrow of the ring's memory is alive (the consumer holds no guard and nobody runs
        // concurrently), so these writes race nothing, as a producer's writes would not.
        unsafe {
            let at = self.base.as_ptr().add(offset);
            at.add(OFFSET_SEQ).cast::<u64>().write(slot.seq.to_le());
            at.add(OFFSET_LEN).cast::<u32>().write(slot.len.to_le());
            at.add(OFFSET_KIND).cast::<u32>().write(slot.kind.to_le());
            at.add(OFFSET_PRODUCER)
                .cast::<u32>()
                .write(slot.producer.to_le());
            at.add(OFFSET_FLAGS).cast::<u32>().write(slot.flags.to_le());
            let payload = at.add(OFFSET_PAYLOAD);
            payload.copy_from_nonoverlapping(slot.payload.as_ptr(), SLOT_PAYLOAD);
        }
    }

    /// The `len` bytes a message at `pos` would carry (it runs on through the next slots).
    fn bytes_at(&self, pos: u64, len: usize) -> Vec<u8> {
        let offset = (pos % self.capacity) as usize * SLOT_SIZE + OFFSET_PAYLOAD;
        assert!(offset + len <= self.capacity as usize * SLOT_SIZE);
        // SAFETY: the range is inside the ring (asserted) and nobody writes it meanwhile.
        unsafe { core::slice::from_raw_parts(self.base.as_ptr().add(offset), len) }.to_vec()
    }
}

/// What a read returned, owned.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Message {
        seq: u64,
        kind: u32,
        payload: Vec<u8>,
    },
    Empty,
    Failed(Error),
}

/// Reads once, through the API `how` picks.
fn read(consumer: &mut Consumer, how: u8) -> Read {
    let owned = |msg: &[u8], seq, kind| Read::Message {
        seq,
        kind,
        payload: msg.to_vec(),
    };
    match how % 3 {
        0 => match consumer.try_consume_checked() {
            Ok(Some(msg)) => owned(&msg, msg.seq(), msg.kind()),
            Ok(None) => Read::Empty,
            Err(err) => Read::Failed(err),
        },
        1 => {
            let mut got = Read::Empty;
            match consumer.drain_checked(1, |msg| got = owned(&msg, msg.seq(), msg.kind())) {
                Ok(_) => got,
                Err(err) => Read::Failed(err),
            }
        }
        _ => match consumer.consume_timeout(core::time::Duration::ZERO) {
            Ok(Some(msg)) => owned(&msg, msg.seq(), msg.kind()),
            Ok(None) => Read::Empty,
            Err(err) => Read::Failed(err),
        },
    }
}

/// Checks one forged slot at the consumer's head against the protocol's rules.
fn check(capacity: usize, before: u64, slot: &Forged, how: u8) -> Result<(), TestCaseError> {
    let mut ring = Scribbled::new(capacity);
    ring.advance(before);
    let pos = before;
    ring.forge(pos, slot);
    let ready = pos + 1;
    let previous = ready.saturating_sub(ring.capacity);
    let len = slot.len as usize;
    let idx = (pos % ring.capacity) as usize;
    let fits = len <= max_message(capacity)
        && if slot.flags & FLAG_PAD != 0 {
            slots_for(len) == capacity - idx
        } else {
            idx + slots_for(len) <= capacity
        };
    let payload = if fits {
        ring.bytes_at(pos, len)
    } else {
        Vec::new()
    };
    let got = read(&mut ring.consumer, how);
    if slot.seq == ready && fits && slot.flags & FLAG_PAD != 0 {
        // A pad is skipped to the next lap's slot 0, which holds the lap before: empty.
        prop_assert_eq!(got, Read::Empty);
        prop_assert_eq!(ring.consumer.position(), pos + (capacity - idx) as u64);
        prop_assert_eq!(ring.consumer.fault(), None);
        return Ok(());
    }
    if slot.seq == ready && fits {
        let expected = Read::Message {
            seq: pos,
            kind: slot.kind,
            payload,
        };
        prop_assert_eq!(got, expected);
        return Ok(());
    }
    if slot.seq == previous {
        // The only value that can still become ready: an empty ring, not an error.
        prop_assert_eq!(got, Read::Empty);
        prop_assert_eq!(ring.consumer.fault(), None);
        return Ok(());
    }
    let len = if slot.seq == ready { slot.len } else { 0 };
    let corrupt = Error::Corrupt {
        pos,
        seq: slot.seq,
        len,
    };
    prop_assert_eq!(got, Read::Failed(corrupt.clone()));
    // Sticky, and the ring is closed for its producer with the same error.
    prop_assert_eq!(
        read(&mut ring.consumer, how.wrapping_add(1)),
        Read::Failed(corrupt.clone())
    );
    prop_assert_eq!(ring.consumer.fault(), Some(corrupt.clone()));
    prop_assert_eq!(ring.producer.try_produce(b"x"), Err(corrupt.clone()));
    prop_assert_eq!(ring.producer.produce(b"x"), Err(corrupt.clone()));
    prop_assert_eq!(ring.consumer.monitor().fault(), Some(corrupt));
    prop_assert_eq!(ring.consumer.stats().corrupt, 1);
    Ok(())
}

/// A `seq` near the interesting values for position `pos` of a `capacity` ring.
fn seq_near(pos: u64, capacity: u64) -> impl Strategy<Value = u64> {
    let ready = pos + 1;
    prop_oneof![
        (0u64..4),
        Just(ready),
        Just(ready.saturating_sub(capacity)),
        (0u64..3).prop_map(move |d| ready.wrapping_add(capacity).wrapping_sub(d)),
        (0u64..3).prop_map(move |d| ready.wrapping_sub(capacity).wrapping_add(d)),
        (0u64..3).prop_map(move |d| ready.wrapping_sub(2 * capacity).wrapping_sub(d)),
        (0u64..4).prop_map(|d| u64::MAX - d),
        any::<u64>(),
    ]
}

fn forged(pos: u64, capacity: u64) -> impl Strategy<Value = Forged> {
    let max = max_message(capacity as usize) as u32;
    let slot = SLOT_SIZE as u32;
    // Lengths that end a message exactly at the lap's end, and one slot more (a pad's length
    // when `flags` says pad).
    let to_end = (capacity - pos % capacity) as u32 * slot - OFFSET_PAYLOAD as u32;
    (
        seq_near(pos, capacity),
        prop_oneof![
            0..=SLOT_PAYLOAD as u32,
            SLOT_PAYLOAD as u32..=SLOT_PAYLOAD as u32 + 40,
            max - 2..=max + 2,
            (0u32..3).prop_map(move |d| to_end.wrapping_sub(slot).wrapping_add(d)),
            (0u32..3).prop_map(move |d| to_end.wrapping_sub(d)),
            (0u32..3).prop_map(move |d| to_end.wrapping_add(d)),
            Just(1000u32),
            any::<u32>()
        ],
        any::<u32>(),
        any::<u32>(),
        prop_oneof![Just(0u32), Just(FLAG_PAD), Just(2u32), Just(FLAG_PAD | 4)],
        proptest::collection::vec(any::<u8>(), SLOT_PAYLOAD),
    )
        .prop_map(|(seq, len, kind, producer, flags, payload)| Forged {
            seq,
            len,
            kind,
            producer,
            flags,
            payload,
        })
}

/// A ring size, a head position (up to four laps in), that head's forged slot and a read API.
fn case() -> impl Strategy<Value = (usize, u64, Forged, u8)> {
    (1u32..=6)
        .prop_flat_map(|log2| {
            let capacity = 1usize << log2;
            (Just(capacity), 0..4 * capacity as u64 + 2)
        })
        .prop_flat_map(|(capacity, before)| {
            (
                Just(capacity),
                Just(before),
                forged(before, capacity as u64),
                any::<u8>(),
            )
        })
}

/// Cases run (fixed seed): about 5 s in a debug build on the 2-core CI machine.
const CASES: u32 = 16_384;

proptest! {
    #![proptest_config(Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(0x7e7d_1c5e_ed00_0010),
        failure_persistence: None,
        ..Config::default()
    })]

    #[test]
    fn any_slot_bytes_are_a_message_an_empty_ring_or_corrupt((capacity, before, slot, how) in case()) {
        check(capacity, before, &slot, how)?;
    }
}

/// The issue's reproduction (debug build): `seq = u64::MAX` panicked with "attempt to add with
/// overflow"; now it is `Corrupt`.
#[test]
fn seq_u64_max_is_corrupt_not_a_panic() {
    let slot = Forged {
        seq: u64::MAX,
        len: 4,
        kind: 0,
        producer: 0,
        flags: 0,
        payload: vec![0; SLOT_PAYLOAD],
    };
    check(4, 0, &slot, 0).unwrap();
    check(4, 9, &slot, 1).unwrap();
}

/// The issue's reproduction (release build): `seq = 2^64 - 3` on a 4-slot ring read as "the
/// previous lap" (`seq + 4` wraps to 1), so the consumer returned `Ok(None)` forever.
#[test]
fn seq_that_wraps_onto_the_previous_lap_is_corrupt() {
    let slot = Forged {
        seq: u64::MAX - 2,
        len: 4,
        kind: 0,
        producer: 0,
        flags: 0,
        payload: vec![0; SLOT_PAYLOAD],
    };
    check(4, 0, &slot, 0).unwrap();
}

/// A header that claims more than the ring holds (len 1000 in a 4-slot ring, whose largest is
/// 480) with a ready `seq` is corrupt, and the messages before it were delivered.
#[test]
fn len_above_the_payload_is_corrupt() {
    let slot = Forged {
        seq: 6,
        len: 1000,
        kind: 7,
        producer: 0,
        flags: 0,
        payload: vec![0xAB; SLOT_PAYLOAD],
    };
    check(4, 5, &slot, 1).unwrap();
}

/// A seq a lap ahead (the producer cannot have written it) is corrupt at once: no wait.
#[test]
fn seq_a_lap_ahead_is_corrupt() {
    let slot = Forged {
        seq: 3 + 1 + 8,
        len: 1,
        kind: 0,
        producer: 0,
        flags: 0,
        payload: vec![0; SLOT_PAYLOAD],
    };
    check(8, 3, &slot, 2).unwrap();
}

/// A message whose slots would run past the ring's end is corrupt: an 8-slot ring's head at
/// slot 6 with a 3-slot length (the producer would have padded).
#[test]
fn a_message_that_would_wrap_is_corrupt() {
    let slot = Forged {
        seq: 7,
        len: 600,
        kind: 1,
        producer: 0,
        flags: 0,
        payload: vec![0; SLOT_PAYLOAD],
    };
    check(8, 6, &slot, 0).unwrap();
    // Two slots fit exactly: delivered.
    check(8, 6, &Forged { len: 480, ..slot }, 1).unwrap();
}

/// A pad must end exactly at the lap's end: one slot short, or one slot long, is corrupt; the
/// right size is skipped.
#[test]
fn a_pad_of_the_wrong_size_is_corrupt() {
    let pad = |slots: u32| Forged {
        seq: 6,
        len: slots * SLOT_SIZE as u32 - OFFSET_PAYLOAD as u32,
        kind: 0,
        producer: 0,
        flags: FLAG_PAD,
        payload: vec![0; SLOT_PAYLOAD],
    };
    for how in 0..3 {
        check(8, 5, &pad(2), how).unwrap();
        check(8, 5, &pad(4), how).unwrap();
        check(8, 5, &pad(3), how).unwrap();
    }
    let mut ring = Scribbled::new(8);
    ring.advance(5);
    ring.forge(5, &pad(2));
    assert!(matches!(
        ring.consumer.try_consume_checked(),
        Err(Error::Corrupt {
            pos: 5,
            seq: 6,
            len: 480
        })
    ));
}

/// The stamping's test: a two-slot message whose payload's word on its second slot equals
/// that slot's `seq` one lap later. Without the consumer's stamp, the consumer would take the
/// stale payload for a ready message when its head gets there; with it, the slot reads as the
/// previous lap and the real message after it arrives intact.
#[test]
fn a_stale_payload_word_is_not_taken_for_a_ready_seq() {
    let mut ring = Scribbled::new(4);
    let mut big = vec![0xEEu8; 480];
    // Slot 1 starts at payload byte 224; position 5 (slot 1, next lap) is ready at `seq` 6.
    big[SLOT_PAYLOAD..SLOT_PAYLOAD + 8].copy_from_slice(&6u64.to_le_bytes());
    big[SLOT_PAYLOAD + 8..SLOT_PAYLOAD + 12].copy_from_slice(&8u32.to_le_bytes()); // a "len"
    ring.producer.try_produce(&big).unwrap();
    assert_eq!(
        &*ring.consumer.try_consume_checked().unwrap().unwrap(),
        &big[..]
    );
    for i in 2..5u64 {
        ring.producer.try_produce(&i.to_le_bytes()).unwrap();
        let msg = ring.consumer.try_consume_checked().unwrap().unwrap();
        assert_eq!((msg.seq(), &*msg), (i, &i.to_le_bytes()[..]));
    }
    assert_eq!(ring.consumer.position(), 5);
    assert!(ring.consumer.try_consume_checked().unwrap().is_none());
    assert_eq!(ring.consumer.fault(), None);
    ring.producer.try_produce(b"five").unwrap();
    let msg = ring.consumer.try_consume_checked().unwrap().unwrap();
    assert_eq!((msg.seq(), &*msg), (5, &b"five"[..]));
}
