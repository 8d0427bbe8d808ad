//! The low-latency format on host memory: the codec, a CPU producer's messages of every length
//! over many laps, and a GPU producer's words faked in any order (a message is taken only once
//! every word carries its flag; a word with another position's flag is corrupt).

use super::{encode, flag, words_for};
use crate::ring::layout::{SlotHeader, LL_MAX_PAYLOAD};
use crate::ring::shared::Ring;
use crate::ring::{Host, RingMode};
use crate::sync::{Arc, Ordering};
use crate::{Buffer, Consumer, Error};

#[test]
fn flags_are_odd_and_differ_by_lap() {
    for pos in [0u64, 1, 7, 1 << 31, (1 << 32) - 1, 1 << 32, u64::MAX] {
        assert_eq!(flag(pos) & 1, 1, "pos {pos}");
    }
    let capacity = 1u64 << 20;
    assert_ne!(flag(5), flag(5 + capacity));
    assert_eq!(words_for(0), 6);
    assert_eq!(words_for(LL_MAX_PAYLOAD), 32);
    assert_eq!(words_for(33), 6 + 9);
}

#[test]
fn encode_puts_the_flag_in_every_used_word_only() {
    let header = SlotHeader {
        len: 5,
        kind: 9,
        producer: 3,
        flags: 0,
        stamp_ns: 0x1234_5678_9abc_def0,
    };
    let (words, n) = encode(42, &header, b"hello");
    assert_eq!(n, 8);
    for word in &words[..n] {
        assert_eq!((u64::from_le(*word) >> 32) as u32, flag(42));
    }
    assert!(words[n..].iter().all(|&w| w == 0));
    assert_eq!(u64::from_le(words[4]) as u32, 0x9abc_def0);
    assert_eq!(u64::from_le(words[5]) as u32, 0x1234_5678);
    assert_eq!(u64::from_le(words[6]) as u32, u32::from_le_bytes(*b"hell"));
    assert_eq!(u64::from_le(words[7]) as u32, u32::from(b'o'));
}

/// The message a test sends at `i`: its length cycles through every length up to the maximum.
fn message(i: u64) -> Vec<u8> {
    let len = (i as usize * 7) % (LL_MAX_PAYLOAD + 1);
    (0..len)
        .map(|b| (i as u8).wrapping_mul(31) ^ b as u8)
        .collect()
}

#[test]
fn every_length_crosses_many_laps_through_every_producer_call() {
    let (mut producer, mut consumer) = Buffer::builder(8)
        .mode(RingMode::LowLatency)
        .timestamps(true)
        .build()
        .expect("ring")
        .into_split();
    for i in 0..2_000u64 {
        let msg = message(i);
        match i % 3 {
            0 => producer.try_produce_kind(i as u32, &msg).expect("room"),
            1 => producer
                .try_produce_with(i as u32, |buf| {
                    buf[..msg.len()].copy_from_slice(&msg);
                    msg.len()
                })
                .expect("room"),
            _ => {
                let mut claim = producer.try_claim(msg.len()).expect("room");
                claim.copy_from_slice(&msg);
                claim.set_kind(i as u32);
                claim.commit();
            }
        }
        let got = consumer.try_consume().expect("a message");
        assert_eq!((got.kind(), &*got), (i as u32, &msg[..]), "message {i}");
        assert!(got.stamp_ns() > 0);
    }
    assert!(consumer.try_consume().is_none());
    assert_eq!(
        producer.try_claim(LL_MAX_PAYLOAD + 1).unwrap_err(),
        Error::MessageTooLarge {
            len: LL_MAX_PAYLOAD + 1,
            max: LL_MAX_PAYLOAD
        }
    );
}

#[test]
fn two_threads_carry_every_message_in_order() {
    let (mut producer, mut consumer) = Buffer::builder(16)
        .mode(RingMode::LowLatency)
        .build()
        .expect("ring")
        .into_split();
    const N: u64 = 200_000;
    let sender = std::thread::spawn(move || {
        for i in 0..N {
            producer.produce(&message(i)).expect("consumer alive");
        }
    });
    let mut next = 0u64;
    while next < N {
        consumer.drain(64, |msg| {
            assert_eq!(&*msg, &message(next)[..], "message {next}");
            next += 1;
        });
    }
    sender.join().expect("sender");
}

/// A low-latency ring of 8 slots with its consumer and the ring, to write words as a GPU would.
fn faked() -> (Arc<Ring>, Consumer) {
    let memory = Host::alloc(Ring::bytes_for(8).expect("capacity")).expect("memory");
    let ring = Arc::new(
        Ring::new(8, Box::new(memory))
            .and_then(|r| r.with_mode(RingMode::LowLatency))
            .expect("ring"),
    );
    let consumer = Consumer::new(Arc::clone(&ring));
    (ring, consumer)
}

fn header(len: usize) -> SlotHeader {
    SlotHeader {
        len: len as u32,
        kind: 4,
        producer: 2,
        flags: 0,
        stamp_ns: 99,
    }
}

#[test]
fn a_message_is_taken_only_once_its_last_word_lands_in_any_order() {
    let (ring, mut consumer) = faked();
    let payload: Vec<u8> = (0..LL_MAX_PAYLOAD as u8).collect();
    for pos in 0..24u64 {
        let (words, n) = encode(pos, &header(payload.len()), &payload);
        // The words land in a scrambled order (a GPU orders none of them): word 0 among the
        // first, so the consumer sees a partial message until the last one.
        let order: Vec<usize> = (0..n).map(|k| (k * 13 + pos as usize) % n).collect();
        for (landed, &w) in order.iter().enumerate() {
            ring.slots()
                .word_at(pos, w)
                .store(words[w], Ordering::Relaxed);
            let got = consumer.try_consume_checked().expect("no fault");
            if landed + 1 < n {
                assert!(
                    got.is_none(),
                    "pos {pos}: taken with {} of {n} words",
                    landed + 1
                );
            } else {
                let got = got.expect("complete");
                assert_eq!((&*got, got.kind(), got.stamp_ns()), (&payload[..], 4, 99));
            }
        }
    }
}

#[test]
fn a_word_with_another_positions_flag_is_corrupt() {
    let (ring, mut consumer) = faked();
    let (words, n) = encode(0, &header(16), &[7; 16]);
    for (w, word) in words.iter().enumerate().take(n) {
        ring.slots().word_at(0, w).store(*word, Ordering::Relaxed);
    }
    // Word 3 from the next lap's message at this slot: it can never become position 0's.
    let (stale, _) = encode(8, &header(16), &[7; 16]);
    ring.slots()
        .word_at(0, 3)
        .store(stale[3], Ordering::Relaxed);
    assert!(matches!(
        consumer.try_consume_checked(),
        Err(Error::Corrupt {
            pos: 0,
            len: 16,
            ..
        })
    ));
}

#[test]
fn a_length_above_the_low_latency_maximum_is_corrupt() {
    let (ring, mut consumer) = faked();
    let word = 200u64 | u64::from(flag(0)) << 32;
    ring.slots()
        .word_at(0, 0)
        .store(word.to_le(), Ordering::Relaxed);
    assert!(matches!(
        consumer.try_consume_checked(),
        Err(Error::Corrupt {
            pos: 0,
            len: 200,
            ..
        })
    ));
}

#[test]
fn a_message_looked_at_and_left_in_the_ring_is_taken_later() {
    // `drain_admitted` rewrites the slot in place, then its caller refuses the message (a
    // drain thread at its byte bound): the next look must find the rewrite, not a corrupt word.
    let (mut producer, mut consumer) = Buffer::builder(8)
        .mode(RingMode::LowLatency)
        .build()
        .expect("ring")
        .into_split();
    producer.try_produce(b"later").expect("room");
    for _ in 0..3 {
        let taken = consumer.drain_admitted(8, |_| false, |_| panic!("refused"));
        assert_eq!(taken, Ok(0));
    }
    let mut got = Vec::new();
    assert_eq!(consumer.drain_checked(8, |m| got.push(m.to_vec())), Ok(1));
    assert_eq!(got, [b"later".to_vec()]);
    producer.try_produce(b"next").expect("room");
    assert_eq!(&*consumer.try_consume().expect("the next"), b"next");
}
