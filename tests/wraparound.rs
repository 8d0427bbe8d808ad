//! Wraparound: positions are monotonic 64-bit, slots are reused lap after lap.

use perdix_transport::Buffer;

fn laps(capacity: usize, laps: u64) {
    let mut buffer = Buffer::new(capacity).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    let total = capacity as u64 * laps;
    let mut next_read = 0u64;
    for pos in 0..total {
        // Keep the ring full half of the time, so every slot index wraps while occupied.
        producer.try_produce(&pos.to_le_bytes()).unwrap();
        if pos % 2 == 1 || producer.slots() == 0 {
            while let Some(msg) = consumer.try_consume() {
                assert_eq!(msg.seq(), next_read);
                assert_eq!(*msg, next_read.to_le_bytes());
                next_read += 1;
            }
        }
    }
    while let Some(msg) = consumer.try_consume() {
        assert_eq!(msg.seq(), next_read);
        next_read += 1;
    }
    assert_eq!(next_read, total);
    assert_eq!(consumer.stats().consumed, total);
}

#[test]
fn two_slot_ring_1000_laps() {
    laps(2, 1000);
}

#[test]
fn two_slot_ring_100000_laps() {
    laps(2, 100_000);
}

#[test]
fn ring_4096_1000_laps() {
    laps(4096, 1000);
}

#[test]
fn drain_across_the_wrap() {
    let mut buffer = Buffer::new(8).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    let mut expected = 0u64;
    for round in 0..2000u64 {
        for i in 0..(round % 8 + 1) {
            let _ = i;
            producer.try_produce(&expected.to_le_bytes()).ok();
            expected += 1;
        }
        let mut next = consumer.position();
        consumer.drain(usize::MAX, |msg| {
            assert_eq!(msg.seq(), next);
            assert_eq!(*msg, next.to_le_bytes());
            next += 1;
        });
        assert_eq!(next, expected);
    }
}
