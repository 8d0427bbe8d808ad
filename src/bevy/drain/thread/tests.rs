//! The drain thread's wait for a stalled frame: bounded wake-ups, nothing lost; and what it
//! holds, bounded in bytes and counted exactly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::DrainThread;
use crate::bevy::drain::held::{cost, MESSAGE_OVERHEAD};
use crate::layout::{max_message, SLOT_SIZE};
use crate::{Buffer, Error};

/// Waits (up to 10 s: a watchdog, not a speed check) until `cond` holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_stalled_frame_does_not_make_the_drain_thread_spin() {
    const MESSAGES: u64 = 1_000;
    let (mut producer, consumer) = Buffer::new(64)
        .unwrap_or_else(|err| panic!("ring: {err}"))
        .into_split();
    let sender = std::thread::spawn(move || -> Result<(), Error> {
        for n in 0..MESSAGES {
            producer.produce(&n.to_le_bytes())?;
        }
        Ok(())
    });
    // Batches of up to 8 (the budget; fewer when the producer is slower than the thread, as on
    // a loaded machine), 16 in the channel: then a batch waits for room, and the ring (64)
    // fills behind it.
    let mut thread = DrainThread::spawn("stalled", 0, consumer, None, 8, u64::MAX);
    wait_until("a full channel", || thread.full_waits() > 0);
    let before = thread.full_waits();
    std::thread::sleep(Duration::from_millis(200));
    let waits = thread.full_waits() - before;
    // Parked between checks (at most FULL_PARK_MAX each): ~200 wake-ups in 200 ms. Before the
    // fix the thread snoozed in a loop: hundreds of thousands of rounds.
    assert!(
        waits <= 2_000,
        "{waits} loops in 200 ms while the channel was full"
    );
    // The frame resumes: everything arrives, in order.
    let mut next = 0u64;
    wait_until("every message", || {
        while let Some(batch) = thread.take_batch(usize::MAX) {
            for msg in &batch.stage.raw {
                let mut word = [0u8; 8];
                word.copy_from_slice(msg.payload());
                assert_eq!(u64::from_le_bytes(word), next);
                next += 1;
            }
            thread.recycle(batch);
        }
        next == MESSAGES
    });
    match sender.join() {
        Ok(result) => result.unwrap_or_else(|err| panic!("producer: {err}")),
        Err(_) => panic!("the producer panicked"),
    }
    wait_until("the thread to finish", || {
        let _ = thread.take_batch(usize::MAX);
        thread.is_done()
    });
    assert_eq!(thread.fault(), None);
}

/// Message `n` of `len` bytes: `n` in its first 8 bytes, then `n as u8`.
fn numbered(n: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![n as u8; len];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes
}

#[test]
fn a_drain_thread_holds_at_most_its_limit_in_bytes_and_counts_it_exactly() {
    // Largest messages of a 1024-slot ring (two fill it), and a limit of three of them: a
    // stalled frame lets the thread take three, the ring two more, then the producer waits.
    const CAPACITY: usize = 1024;
    const MESSAGES: u64 = 24;
    let len = max_message(CAPACITY);
    let limit = 3 * cost(len as u32) + MESSAGE_OVERHEAD;
    let (mut producer, consumer) = Buffer::new(CAPACITY)
        .unwrap_or_else(|err| panic!("ring: {err}"))
        .into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let sender = {
        let sent = Arc::clone(&sent);
        std::thread::spawn(move || -> Result<(), Error> {
            for n in 0..MESSAGES {
                producer.produce(&numbered(n, len))?; // Block: waits for room
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    let mut thread = DrainThread::spawn("held", 0, consumer, None, 4096, limit);
    wait_until("the thread at its limit, the ring full", || {
        thread.held_bytes() == 3 * cost(len as u32) && sent.load(Ordering::Relaxed) == 5
    });
    // Stalled: nothing moves (before the bound, the thread took all 24, 3 MiB).
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(thread.held_bytes(), 3 * cost(len as u32));
    assert_eq!(sent.load(Ordering::Relaxed), 5, "the producer waits");
    assert_eq!(thread.queued(), 3);
    // Honest: the count is what the batches hold (payload plus a PerdixMessage each).
    let mut batches = Vec::new();
    while let Some(batch) = thread.take_batch(usize::MAX) {
        batches.push(batch);
    }
    let counted: u64 = batches
        .iter()
        .flat_map(|batch| &batch.stage.raw)
        .map(|msg| msg.len() as u64 + MESSAGE_OVERHEAD)
        .sum();
    assert_eq!(counted, thread.held_bytes());
    assert!(counted <= limit && limit < (CAPACITY * SLOT_SIZE * 2) as u64);
    // The frame resumes: every message arrives once, in order, and nothing stays held.
    let mut next = 0u64;
    let check = |batch: &super::Batch, next: &mut u64| {
        for msg in &batch.stage.raw {
            assert_eq!(msg.payload(), numbered(*next, len), "message {next}");
            *next += 1;
        }
    };
    for batch in batches {
        check(&batch, &mut next);
        thread.recycle(batch);
    }
    wait_until("every message", || {
        while let Some(batch) = thread.take_batch(usize::MAX) {
            assert!(thread.held_bytes() <= limit);
            check(&batch, &mut next);
            thread.recycle(batch);
        }
        next == MESSAGES
    });
    assert_eq!(next, MESSAGES);
    match sender.join() {
        Ok(result) => result.unwrap_or_else(|err| panic!("producer: {err}")),
        Err(_) => panic!("the producer panicked"),
    }
    assert_eq!(thread.held_bytes(), 0);
}
