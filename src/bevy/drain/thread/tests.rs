//! The drain thread's wait for a stalled frame: bounded wake-ups, nothing lost.

use std::time::{Duration, Instant};

use super::DrainThread;
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
    let mut thread = DrainThread::spawn("stalled", 0, consumer, None, 8);
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
