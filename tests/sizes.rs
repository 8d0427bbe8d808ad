//! Messages of any size (issue 13): mixed sizes from 1 byte to the ring's largest over many
//! laps, a pad record at every wrap offset, reserve/commit (`Claim`), and a property test of
//! random size sequences through two threads. Every message arrives intact and in order, and
//! the counters count slots.

use perdix_transport::layout::{max_message, slots_for, SLOT_PAYLOAD, SLOT_SIZE};
use perdix_transport::{Buffer, Consumer, Error, Policy};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

/// The bytes of message number `n` of `len` bytes: every byte depends on both.
fn body(n: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (n as u8).wrapping_mul(31) ^ (i as u8) ^ (i >> 8) as u8)
        .collect()
}

/// Reads everything ready, checking each message against `expected` (message numbers and
/// lengths, in order); returns how many were read.
fn drain_check(consumer: &mut Consumer, expected: &[(u64, usize)], next: &mut usize) -> usize {
    let mut got = 0;
    consumer.drain(usize::MAX, |msg| {
        let (n, len) = expected[*next];
        assert_eq!(msg.len(), len, "message {n}");
        assert_eq!(&*msg, &body(n, len)[..], "message {n} of {len} bytes");
        *next += 1;
        got += 1;
    });
    got
}

/// Slot counts of a sequence sent from position 0 (pads included).
fn positions(capacity: u64, lens: &[usize]) -> u64 {
    lens.iter().fold(0u64, |pos, &len| {
        let k = slots_for(len) as u64;
        let idx = pos % capacity;
        let pad = if idx + k > capacity {
            capacity - idx
        } else {
            0
        };
        pos + pad + k
    })
}

#[test]
fn mixed_sizes_from_one_byte_to_the_largest_over_many_laps() {
    for capacity in [2usize, 4, 8, 64] {
        let max = max_message(capacity);
        let (mut producer, mut consumer) = Buffer::new(capacity).unwrap().into_split();
        // Sizes that walk 1..=max, with every slot boundary and its neighbours.
        let mut lens: Vec<usize> = (1..=max).step_by(37).collect();
        for k in 1..=slots_for(max) {
            let edge = k * SLOT_SIZE - 32;
            lens.extend(
                [edge.saturating_sub(1), edge, edge + 1]
                    .into_iter()
                    .filter(|&l| l <= max),
            );
        }
        lens.extend([1, max, 1, max]);
        // Repeat the walk until it covers at least 20 laps.
        let walk = lens.clone();
        while positions(capacity as u64, &lens) < 20 * capacity as u64 {
            lens.extend(&walk);
        }
        let expected: Vec<(u64, usize)> = lens
            .iter()
            .enumerate()
            .map(|(n, &l)| (n as u64, l))
            .collect();
        let mut next = 0;
        for &(n, len) in &expected {
            loop {
                match producer.try_produce(&body(n, len)) {
                    Ok(()) => break,
                    Err(Error::Full) => {
                        assert!(drain_check(&mut consumer, &expected, &mut next) > 0)
                    }
                    Err(err) => panic!("{err}"),
                }
            }
            // Read now and then, so the ring is full at many different offsets.
            if n % 3 == 0 {
                drain_check(&mut consumer, &expected, &mut next);
            }
        }
        drain_check(&mut consumer, &expected, &mut next);
        assert_eq!(next, expected.len());
        let stats = consumer.stats();
        let slots = positions(capacity as u64, &lens);
        assert!(
            slots / capacity as u64 >= 10,
            "capacity {capacity}: only {slots} slots"
        );
        assert_eq!(
            (stats.produced, stats.consumed),
            (slots, slots),
            "capacity {capacity}"
        );
        assert_eq!(consumer.position(), slots);
    }
}

/// For each start offset of an 8-slot ring, a 3-slot message (and the largest, 4 slots): where
/// it does not fit before the end, a pad fills the lap and the message starts at slot 0.
#[test]
fn a_pad_at_every_wrap_offset() {
    let capacity = 8u64;
    for len in [600usize, max_message(8)] {
        let k = slots_for(len) as u64;
        for start in 0..capacity {
            let (mut producer, mut consumer) = Buffer::new(8).unwrap().into_split();
            // A lap and `start` slots of one-slot messages first, so the slots are reused.
            for i in 0..capacity + start {
                producer.try_produce(&i.to_le_bytes()).unwrap();
                assert_eq!(consumer.try_consume().unwrap().seq(), i);
            }
            let pos = capacity + start;
            producer.try_produce(&body(7, len)).unwrap();
            producer.try_produce(b"after").unwrap();
            let pad = if start + k > capacity {
                capacity - start
            } else {
                0
            };
            {
                let msg = consumer.try_consume().unwrap();
                assert_eq!(msg.seq(), pos + pad, "start {start}, len {len}");
                assert_eq!(&*msg, &body(7, len)[..]);
            }
            let after = consumer.try_consume().unwrap();
            assert_eq!((after.seq(), &*after), (pos + pad + k, &b"after"[..]));
            drop(after);
            assert_eq!(consumer.stats().produced, pos + pad + k + 1);
            assert_eq!(consumer.position(), pos + pad + k + 1);
            // Messages and bytes taken count each message once, whatever its slots; a pad is
            // no message.
            let stats = consumer.stats();
            let ones = capacity + start;
            assert_eq!(
                (stats.messages, stats.bytes),
                (ones + 2, ones * 8 + len as u64 + 5)
            );
        }
    }
}

/// A drain counts what it took, in messages and payload bytes, as the guards do.
#[test]
fn drains_count_messages_and_bytes_taken() {
    let (mut producer, mut consumer) = Buffer::new(16).unwrap().into_split();
    let lens = [1usize, 240, 241, 700, 3];
    for (n, len) in lens.iter().enumerate() {
        producer.try_produce(&body(n as u64, *len)).unwrap();
    }
    assert_eq!((consumer.stats().messages, consumer.stats().bytes), (0, 0));
    assert_eq!(consumer.drain(2, |_| {}), 2);
    assert_eq!(
        (consumer.stats().messages, consumer.stats().bytes),
        (2, 241)
    );
    assert_eq!(consumer.drain(16, |_| {}), 3);
    let total: usize = lens.iter().sum();
    assert_eq!(
        (consumer.stats().messages, consumer.stats().bytes),
        (5, total as u64)
    );
    // The producer's half reads the same counts.
    assert_eq!(producer.stats().messages, 5);
}

#[test]
fn claim_commit_commit_len_and_abort() {
    let (mut producer, mut consumer) = Buffer::new(8).unwrap().into_split();
    // Abort: a dropped claim publishes nothing and takes no room.
    {
        let claim = producer.try_claim(900).unwrap();
        assert_eq!(claim.len(), 900);
    } // dropped without commit
    assert!(consumer.try_consume().is_none());
    assert_eq!((producer.stats().produced, producer.slots()), (0, 8));
    // commit_len: only the first bytes are published, in as many slots as they need.
    let mut claim = producer.try_claim(900).unwrap();
    claim[..300].copy_from_slice(&body(1, 300));
    claim.set_kind(5);
    claim.commit_len(300);
    assert_eq!(producer.stats().produced, 2);
    let msg = consumer.try_consume().unwrap();
    assert_eq!((msg.kind(), &*msg), (5, &body(1, 300)[..]));
    drop(msg);
    // A claim on a full ring: Full, nothing taken, counted once.
    for n in 0..7u64 {
        producer.try_produce(&n.to_le_bytes()).unwrap();
    }
    let full_before = producer.stats().stalls;
    assert_eq!(
        producer.try_claim(SLOT_PAYLOAD + 1).unwrap_err(),
        Error::Full
    );
    assert_eq!(producer.stats().stalls, full_before + 1);
    producer.set_policy(Policy::DropNewest);
    assert_eq!(producer.claim(SLOT_PAYLOAD + 1).unwrap_err(), Error::Full);
    assert_eq!(producer.stats().drops, 1);
    // One slot is still free; a one-slot claim fits.
    producer.try_claim(SLOT_PAYLOAD).unwrap().commit();
    let mut seen = 0;
    consumer.drain(usize::MAX, |_| seen += 1);
    assert_eq!(seen, 8);
    // The consumer gone: Disconnected, before any room check.
    drop(consumer);
    assert_eq!(producer.try_claim(1).unwrap_err(), Error::Disconnected);
}

#[test]
#[should_panic(expected = "commit_len(11) of a 10-byte claim")]
fn commit_len_past_the_claim_panics() {
    let (mut producer, _consumer) = Buffer::new(4).unwrap().into_split();
    producer.try_claim(10).unwrap().commit_len(11);
}

/// Sizes biased to the slot boundaries (224/225, 480/481, ...) and the ends (1, the largest).
fn size(max: usize) -> impl Strategy<Value = usize> {
    let edges = (1..=slots_for(max)).flat_map(|k| {
        let edge = k * SLOT_SIZE - 32;
        [edge, edge + 1]
    });
    let edges: Vec<usize> = edges
        .chain([1, max])
        .filter(|&l| (1..=max).contains(&l))
        .collect();
    prop_oneof![
        2 => proptest::sample::select(edges),
        1 => 1..=max,
        1 => 1..=SLOT_PAYLOAD.min(max),
    ]
}

fn sequence() -> impl Strategy<Value = (usize, Vec<usize>)> {
    (1u32..=6).prop_flat_map(|log2| {
        let capacity = 1usize << log2;
        (
            Just(capacity),
            proptest::collection::vec(size(max_message(capacity)), 1..200),
        )
    })
}

proptest! {
    #![proptest_config(Config {
        cases: 64,
        rng_seed: RngSeed::Fixed(0x5125_0013),
        failure_persistence: None,
        ..Config::default()
    })]

    /// Random sizes, a blocking producer thread and a draining consumer thread: everything
    /// arrives intact and in order, and the counters are the sequence's slot count.
    #[test]
    fn random_sizes_through_two_threads((capacity, lens) in sequence()) {
        let (mut producer, mut consumer) = Buffer::new(capacity).unwrap().into_split();
        let sent = lens.clone();
        let sender = std::thread::spawn(move || {
            for (n, &len) in sent.iter().enumerate() {
                if n % 2 == 0 {
                    producer.produce(&body(n as u64, len)).unwrap();
                } else {
                    let mut claim = producer.claim(len).unwrap();
                    claim.copy_from_slice(&body(n as u64, len));
                    claim.commit();
                }
            }
        });
        let expected: Vec<(u64, usize)> = lens.iter().enumerate().map(|(n, &l)| (n as u64, l)).collect();
        let mut next = 0;
        loop {
            match consumer.drain_checked(usize::MAX, |msg| {
                let (n, len) = expected[next];
                assert_eq!(&*msg, &body(n, len)[..], "message {n} of {len} bytes");
                next += 1;
            }) {
                Ok(_) => {}
                Err(Error::Disconnected) => break,
                Err(err) => panic!("{err}"),
            }
        }
        sender.join().unwrap();
        prop_assert_eq!(next, lens.len());
        let stats = consumer.stats();
        let slots = positions(capacity as u64, &lens);
        prop_assert_eq!((stats.produced, stats.consumed, stats.corrupt), (slots, slots, 0));
        prop_assert_eq!(stats.drops, 0);
    }
}
