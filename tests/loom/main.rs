//! Loom models of the ring protocol: publish/consume (`seq` release/acquire, head publish,
//! closed flags) through wraparound on 2- and 4-slot rings, blocking produce/consume with close,
//! DropNewest, two-slot messages through a wrap with a pad record (the consumer's stamping of
//! continuation slots), and the GPU kernels' protocol against the shipped consumer (`device.rs`:
//! warp batches, pads, runs, DropNewest, faults on 2- to 8-slot rings; `device_lag.rs`: 16- and
//! 256-slot rings whose pushed head lags). Payload reads happen inside the cells' tracked
//! accesses (the drain callback, a guard's life), so releasing a slot before they end fails a
//! model; `scripts/loom-mutants.py` checks that each weakened ordering fails one.
//!
//! ```text
//! RUSTFLAGS="--cfg perdix_loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test --release --no-default-features --test loom
//! ```
#![cfg(perdix_loom)]

use loom::thread;
use perdix_transport::{Buffer, Error};

/// Sends `n` one-byte messages through a `capacity` ring, spinning with loom's yield on `Full`.
fn model(capacity: usize, n: u8) {
    loom::model(move || {
        let (mut producer, mut consumer) = Buffer::new(capacity).unwrap().into_split();
        let sender = thread::spawn(move || {
            for i in 0..n {
                loop {
                    match producer.try_produce(&[i, i ^ 0xFF]) {
                        Ok(()) => break,
                        Err(Error::Full) => thread::yield_now(),
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        });
        let mut next = 0u8;
        while next < n {
            match consumer.try_consume_checked() {
                Ok(Some(msg)) => {
                    assert_eq!(msg.seq(), u64::from(next));
                    assert_eq!(&*msg, &[next, next ^ 0xFF]);
                    next += 1;
                }
                Ok(None) => thread::yield_now(),
                Err(err) => panic!("{err}"),
            }
        }
        sender.join().unwrap();
        assert_eq!(
            consumer.try_consume_checked().unwrap_err(),
            Error::Disconnected
        );
    });
}

#[test]
fn two_slots_through_wraparound() {
    model(2, 3);
}

#[test]
fn four_slots_through_wraparound() {
    model(4, 5);
}

#[test]
fn batch_drain_publishes_head() {
    loom::model(|| {
        let (mut producer, mut consumer) = Buffer::new(2).unwrap().into_split();
        let sender = thread::spawn(move || {
            for i in 0..3u8 {
                while producer.try_produce(&[i]) == Err(Error::Full) {
                    thread::yield_now();
                }
            }
        });
        let mut next = 0u8;
        while next < 3 {
            let got = consumer.drain(8, |msg| {
                assert_eq!(&*msg, &[next]);
                next += 1;
            });
            if got == 0 {
                thread::yield_now();
            }
        }
        sender.join().unwrap();
    });
}

#[test]
fn consumer_drop_wakes_producer() {
    loom::model(|| {
        let (mut producer, consumer) = Buffer::new(2).unwrap().into_split();
        let sender = thread::spawn(move || {
            let mut i = 0u8;
            loop {
                match producer.try_produce(&[i]) {
                    Ok(()) => i = i.wrapping_add(1),
                    Err(Error::Full) => thread::yield_now(),
                    Err(Error::Disconnected) => return,
                    Err(err) => panic!("{err}"),
                }
            }
        });
        drop(consumer);
        sender.join().unwrap();
    });
}

/// Every message published before the producer's drop arrives, then `Disconnected`: the close
/// flag's release/acquire orders the last `seq` stores before the consumer's final look.
#[test]
fn last_messages_before_the_producer_drop_arrive() {
    loom::model(|| {
        let (mut producer, mut consumer) = Buffer::new(2).unwrap().into_split();
        let sender = thread::spawn(move || {
            for i in 0..2u8 {
                producer.try_produce(&[i]).unwrap();
            }
        });
        let mut got = 0u8;
        loop {
            match consumer.try_consume_checked() {
                Ok(Some(msg)) => {
                    assert_eq!(&*msg, &[got]);
                    got += 1;
                }
                Ok(None) => thread::yield_now(),
                Err(Error::Disconnected) => break,
                Err(err) => panic!("{err}"),
            }
        }
        assert_eq!(got, 2);
        sender.join().unwrap();
    });
}

/// Blocking `produce` and `consume` through a full ring, then the producer's close.
#[test]
fn blocking_produce_and_consume_with_close() {
    loom::model(|| {
        let (mut producer, mut consumer) = Buffer::new(2).unwrap().into_split();
        let sender = thread::spawn(move || {
            for i in 0..3u8 {
                producer.produce(&[i]).unwrap();
            }
        });
        for i in 0..3u8 {
            let msg = consumer.consume().unwrap();
            assert_eq!((msg.seq(), &*msg), (u64::from(i), &[i][..]));
        }
        assert_eq!(consumer.consume().unwrap_err(), Error::Disconnected);
        sender.join().unwrap();
    });
}

/// A producer blocked in `produce` on a full ring returns `Disconnected` once the consumer goes.
#[test]
fn consumer_drop_ends_a_blocked_produce() {
    loom::model(|| {
        let (mut producer, consumer) = Buffer::new(2).unwrap().into_split();
        let sender = thread::spawn(move || loop {
            match producer.produce(&[1]) {
                Ok(()) => {}
                Err(Error::Disconnected) => return,
                Err(err) => panic!("{err}"),
            }
        });
        drop(consumer);
        sender.join().unwrap();
    });
}

/// `DropNewest`: every message is delivered in order or counted as dropped, never both, never
/// lost.
#[test]
fn drop_newest_counts_exactly() {
    loom::model(|| {
        let (mut producer, mut consumer) = Buffer::builder(2)
            .policy(perdix_transport::Policy::DropNewest)
            .build()
            .unwrap()
            .into_split();
        let monitor = consumer.monitor();
        let sender = thread::spawn(move || {
            let mut sent = Vec::new();
            for i in 0..3u8 {
                match producer.produce(&[i]) {
                    Ok(()) => sent.push(i),
                    Err(Error::Full) => {}
                    Err(err) => panic!("{err}"),
                }
            }
            sent
        });
        let mut got = Vec::new();
        loop {
            match consumer.try_consume_checked() {
                Ok(Some(msg)) => got.push(msg[0]),
                Ok(None) => thread::yield_now(),
                Err(Error::Disconnected) => break,
                Err(err) => panic!("{err}"),
            }
        }
        let sent = sender.join().unwrap();
        assert_eq!(got, sent);
        assert_eq!(got.len() as u64 + monitor.stats().drops, 3);
    });
}

/// The bytes of a multi-slot test message: `tag`, and on its second slot's first word (payload
/// bytes 224..232) the `seq` slot 2 would hold when ready a lap later (`6 + 1`): a stale payload
/// the consumer must not take for a ready message (its stamp overwrites it).
fn two_slot(tag: u8) -> Vec<u8> {
    let mut bytes = vec![tag; 300];
    bytes[224..232].copy_from_slice(&7u64.to_le_bytes());
    bytes
}

/// A 4-slot ring: one slot (pos 0), two slots (1..3), two slots that need a pad (pad at 3, the
/// message at 4..6), one slot (6, on the first two-slot message's continuation slot). Every
/// message arrives intact and in order, the pad is never delivered, and the counters count
/// slots. Weakening the pad's `seq` store, or stamping after the head publish, fails it.
#[test]
fn two_slot_messages_through_a_wrap_with_a_pad() {
    loom::model(|| {
        let (mut producer, mut consumer) = Buffer::new(4).unwrap().into_split();
        let messages = [vec![1u8; 8], two_slot(2), two_slot(3), vec![4u8; 8]];
        let sent = messages.clone();
        let sender = thread::spawn(move || {
            for msg in &sent {
                loop {
                    match producer.try_produce(msg) {
                        Ok(()) => break,
                        Err(Error::Full) => thread::yield_now(),
                        Err(err) => panic!("{err}"),
                    }
                }
            }
        });
        let mut got = Vec::new();
        loop {
            match consumer.try_consume_checked() {
                Ok(Some(msg)) => got.push((msg.seq(), msg.to_vec())),
                Ok(None) => thread::yield_now(),
                Err(Error::Disconnected) => break,
                Err(err) => panic!("{err}"),
            }
        }
        sender.join().unwrap();
        let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [0, 1, 4, 6]);
        assert!(got.iter().map(|(_, m)| m).eq(messages.iter()));
        assert_eq!(consumer.stats().consumed, 7);
    });
}

mod device;
mod device_lag;
