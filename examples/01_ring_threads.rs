//! 01 — the ring between two threads.
//!
//! A producer thread sends numbered messages through a [`Buffer`]'s ring, some of them larger
//! than a slot; the main thread reads them back. On the way it shows the ring's rules:
//!
//! - `try_produce` never blocks: on a full ring it returns [`Error::Full`] and takes nothing;
//!   `produce` waits for room (the default [`Policy::Block`]);
//! - messages arrive once each, in order, each with its own length: a message larger than one
//!   slot spans several and still arrives as one contiguous `&[u8]`, read in place;
//! - `try_claim` / `claim` reserve room in the ring and the message is written there (zero
//!   copy), then `commit` publishes it;
//! - a message above the ring's largest (`max_message()`, half the ring less a header) is refused
//!   ([`Error::MessageTooLarge`]), never truncated;
//! - once the producer is gone, the consumer reads what is left, then sees
//!   [`Error::Disconnected`].
//!
//! ```text
//! cargo run --example 01_ring_threads
//! ```
//!
//! Runs anywhere: the ring lives in ordinary host memory, no GPU and no feature needed. Next:
//! `02_gpu_producer` writes into the same kind of ring from a CUDA kernel.

use std::process::ExitCode;
use std::thread;

use perdix_transport::layout::slots_for;
use perdix_transport::{Buffer, Error};

/// Slots in the ring: small on purpose (32 KiB), so the producer finds it full now and then.
const SLOTS: usize = 128;
/// Messages the producer thread sends.
const MESSAGES: u64 = 10_000;
/// Every this many messages, the producer sends a big one.
const BIG_EVERY: u64 = 100;
/// Length of the big messages: 10 KiB, 41 slots.
const BIG: usize = 10 * 1024;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("01_ring_threads: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The text message `n` starts with.
fn text(n: u64) -> String {
    format!("message {n}")
}

fn run() -> Result<(), Error> {
    let (mut producer, mut consumer) = Buffer::new(SLOTS)?.into_split();

    // Errors are values. Nobody reads yet, so after SLOTS one-slot messages the ring is full; a
    // full ring takes nothing, and a message over the ring's largest is refused whatever the room.
    for i in 0..SLOTS {
        producer.try_produce(&[i as u8])?;
    }
    assert_eq!(producer.try_produce(b"one more"), Err(Error::Full));
    let max = producer.max_message(); // 64 slots less the header: 16,352 bytes
    assert_eq!(
        producer.try_produce(&vec![0; max + 1]),
        Err(Error::MessageTooLarge { len: max + 1, max })
    );
    while let Some(msg) = consumer.try_consume() {
        assert_eq!(msg.len(), 1); // a message derefs to its payload bytes
    }

    // Above one slot: 10 KiB spans 41 slots, one header, the payload straight across them.
    let big: Vec<u8> = (0..BIG).map(|i| (i % 251) as u8).collect();
    producer.try_produce(&big)?;
    // Zero copy: claim the room in the ring, write the message there, commit it.
    let mut claim = producer.try_claim(4096)?;
    claim.fill(0xab);
    claim.set_kind(1);
    claim.commit();
    assert_eq!(&*consumer.try_consume().expect("sent above"), &big[..]);
    let msg = consumer.try_consume().expect("committed above");
    assert!(msg.kind() == 1 && msg.len() == 4096 && msg.iter().all(|&b| b == 0xab));
    drop(msg); // the guard holds its slots until it drops

    // The producer half moves to its own thread: `produce` and `claim` wait whenever the ring
    // is full. Every BIG_EVERY-th message is BIG bytes, written in place.
    let sender = thread::Builder::new()
        .name("producer".into())
        .spawn(move || -> Result<(), Error> {
            for n in 0..MESSAGES {
                let head = text(n);
                if n % BIG_EVERY == 0 {
                    let mut claim = producer.claim(BIG)?;
                    let (start, rest) = claim.split_at_mut(head.len());
                    start.copy_from_slice(head.as_bytes());
                    rest.fill(n as u8);
                    claim.commit();
                } else {
                    producer.produce(head.as_bytes())?;
                }
            }
            Ok(()) // dropping `producer` here tells the consumer the stream has ended
        })
        .map_err(|err| Error::Spawn(err.to_string()))?;

    // `consume` waits for the next message; `Disconnected` once the producer is gone and the
    // ring is empty.
    let (mut expected, mut big_bytes) = (0u64, 0);
    loop {
        match consumer.consume() {
            Ok(msg) => {
                let want = text(expected);
                assert!(msg.starts_with(want.as_bytes()), "in order, none lost");
                if expected % BIG_EVERY == 0 {
                    assert_eq!(msg.len(), BIG, "whole, in one piece");
                    assert!(msg[want.len()..].iter().all(|&b| b == expected as u8));
                    big_bytes += msg.len();
                } else {
                    assert_eq!(msg.len(), want.len());
                }
                expected += 1;
            }
            Err(Error::Disconnected) => break,
            Err(err) => return Err(err),
        }
    }
    sender
        .join()
        .map_err(|_| Error::Panicked("the producer thread".into()))??;

    let stats = consumer.stats();
    println!(
        "01_ring_threads: {expected} of {MESSAGES} messages arrived in order through {} slots \
         ({big_bytes} bytes in {}-slot messages of {BIG} bytes, largest allowed {max}); the \
         producer found the ring full {} times",
        consumer.capacity(),
        slots_for(BIG),
        stats.stalls
    );
    Ok(())
}
