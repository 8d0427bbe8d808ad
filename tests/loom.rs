//! Loom model of the publish/consume protocol (`seq` release/acquire, head publish, closed flags),
//! through wraparound, on 2- and 4-slot rings.
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
