//! 01 — the ring between two threads.
//!
//! A producer thread sends numbered text messages through a [`Buffer`]'s ring; the main thread
//! reads them back. On the way it shows the ring's rules:
//!
//! - `try_produce` never blocks: on a full ring it returns [`Error::Full`] and takes nothing;
//!   `produce` waits for room (the default [`Policy::Block`]);
//! - messages arrive once each, in order, each with its own length (up to 224 bytes);
//! - a message larger than a slot is refused ([`Error::MessageTooLarge`]), never truncated;
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

use perdix_transport::{Buffer, Error};

/// Messages the producer thread sends.
const MESSAGES: u64 = 10_000;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("01_ring_threads: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Error> {
    // 8 slots: small on purpose, so the producer finds the ring full now and then.
    let (mut producer, mut consumer) = Buffer::new(8)?.into_split();

    // Errors are values. Nobody reads yet, so after 8 messages the ring is full; a full ring
    // takes nothing, and a message over a slot's 224 bytes is refused whatever the room.
    for i in 0..8u8 {
        producer.try_produce(&[i])?;
    }
    assert!(matches!(
        producer.try_produce(b"one more"),
        Err(Error::Full)
    ));
    assert!(matches!(
        producer.try_produce(&[0u8; 300]),
        Err(Error::MessageTooLarge { len: 300, max: 224 })
    ));
    while let Some(msg) = consumer.try_consume() {
        assert_eq!(msg.len(), 1); // a message derefs to its payload bytes
    }

    // The producer half moves to its own thread: `produce` waits whenever the ring is full.
    let sender = thread::Builder::new()
        .name("producer".into())
        .spawn(move || -> Result<(), Error> {
            for n in 0..MESSAGES {
                producer.produce(format!("message {n}").as_bytes())?;
            }
            Ok(()) // dropping `producer` here tells the consumer the stream has ended
        })
        .map_err(|err| Error::Spawn(err.to_string()))?;

    // `consume` waits for the next message; `Disconnected` once the producer is gone and the
    // ring is empty.
    let mut expected = 0u64;
    loop {
        match consumer.consume() {
            Ok(msg) => {
                let want = format!("message {expected}");
                assert_eq!(&*msg, want.as_bytes(), "in order, none lost");
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
        "01_ring_threads: {expected} of {MESSAGES} messages arrived in order through {} slots; \
         the producer found the ring full {} times",
        consumer.capacity(),
        stats.full_events
    );
    Ok(())
}
