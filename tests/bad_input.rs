//! Bad input gives typed errors, never panics, and the `Display` texts are pinned.

use perdix_transport::layout::{max_message, SLOT_PAYLOAD};
use perdix_transport::{Buffer, Error, Host, MAX_CAPACITY};

#[test]
fn invalid_capacities() {
    for capacity in [
        0,
        1,
        3,
        5,
        6,
        100,
        1000,
        4097,
        MAX_CAPACITY + 1,
        MAX_CAPACITY * 2,
        usize::MAX,
    ] {
        assert_eq!(
            Buffer::new(capacity).unwrap_err(),
            Error::InvalidCapacity(capacity),
            "capacity {capacity}"
        );
    }
}

#[test]
fn valid_capacities() {
    for shift in 1..=12 {
        let buffer = Buffer::new(1 << shift).unwrap();
        assert_eq!(buffer.capacity(), 1 << shift);
    }
}

/// Issue 13 changed this: the limit is the ring's `max_message` (half the ring less a header),
/// not one slot's payload, so a 225-byte message now travels in a 4-slot ring and the refusal
/// starts at `max_message(4) + 1` = 481 bytes.
#[test]
fn oversized_message_is_refused_and_not_sent() {
    let mut buffer = Buffer::new(4).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    let max = max_message(4);
    assert_eq!(
        (max, producer.max_message(), consumer.max_message()),
        (480, 480, 480)
    );
    let big = vec![7u8; max + 1];
    let refused = Err(Error::MessageTooLarge { len: 481, max: 480 });
    assert_eq!(producer.try_produce(&big), refused);
    assert_eq!(producer.produce(&big), refused);
    assert_eq!(producer.try_claim(max + 1).map(drop), refused);
    assert_eq!(producer.claim(max + 1).map(drop), refused);
    // A one-slot writer that claims too many bytes publishes nothing (its buffer is one slot).
    assert_eq!(
        producer.try_produce_with(1, |_| SLOT_PAYLOAD + 1),
        Err(Error::MessageTooLarge { len: 225, max: 224 })
    );
    assert!(consumer.try_consume().is_none());
    assert_eq!(producer.stats().produced, 0);
    // Exactly the largest is fine, and so is one slot's payload and one byte more.
    for len in [max, SLOT_PAYLOAD, SLOT_PAYLOAD + 1] {
        producer.try_produce(&vec![1u8; len]).unwrap();
        assert_eq!(consumer.try_consume().unwrap().len(), len);
    }
    // Empty messages are fine too.
    producer.try_produce(b"").unwrap();
    assert!(consumer.try_consume().unwrap().is_empty());
}

/// `max_message(capacity) + 1` is refused for every capacity, with nothing sent.
#[test]
fn one_byte_above_max_message_is_refused_for_every_capacity() {
    for shift in 1..=10 {
        let capacity = 1usize << shift;
        let (mut producer, mut consumer) = Buffer::new(capacity).unwrap().into_split();
        let max = max_message(capacity);
        let big = vec![0u8; max + 1];
        assert_eq!(
            producer.try_produce(&big),
            Err(Error::MessageTooLarge { len: max + 1, max }),
            "capacity {capacity}"
        );
        assert!(consumer.try_consume().is_none());
        assert_eq!(producer.stats().produced, 0);
        producer.try_produce(&vec![3u8; max]).unwrap();
        assert_eq!(consumer.try_consume().unwrap().len(), max);
    }
}

#[test]
fn zero_byte_host_memory_is_an_error() {
    assert_eq!(
        Host::alloc(0).unwrap_err(),
        Error::Alloc {
            bytes: 0,
            backend: "host"
        }
    );
}

#[test]
fn too_small_memory_is_rejected() {
    let err = Buffer::builder(8)
        .build_in(|bytes| Host::alloc(bytes / 2))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::BadMemory {
                len: 1024,
                needed: 2048,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn display_texts() {
    assert_eq!(
        Error::InvalidCapacity(3).to_string(),
        "invalid capacity 3: must be a power of two from 2 to 2^31 slots"
    );
    assert_eq!(
        Error::MessageTooLarge { len: 481, max: 480 }.to_string(),
        "message of 481 bytes exceeds the 480-byte maximum"
    );
    assert_eq!(Error::Full.to_string(), "ring is full");
    assert_eq!(
        Error::Disconnected.to_string(),
        "the other side of the ring is gone"
    );
    assert_eq!(
        Error::Corrupt {
            pos: 4,
            seq: 9,
            len: 300
        }
        .to_string(),
        "corrupt slot at position 4: seq 9, len 300"
    );
    assert_eq!(
        Error::Lost { pos: 96, slots: 32 }.to_string(),
        "32 published slots lost: the producer closed with position 96 never published"
    );
    assert_eq!(
        Error::Alloc {
            bytes: 10,
            backend: "host"
        }
        .to_string(),
        "could not allocate 10 bytes of host ring memory"
    );
    assert_eq!(
        Error::NoDevice("no driver").to_string(),
        "no CUDA device: no driver"
    );
    assert_eq!(
        Error::Compile {
            log: "x.cu(1): error".into()
        }
        .to_string(),
        "kernel compile failed:\nx.cu(1): error"
    );
}
