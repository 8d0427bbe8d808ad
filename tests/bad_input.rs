//! Bad input gives typed errors, never panics, and the `Display` texts are pinned.

use perdix_transport::layout::PAYLOAD_MAX;
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

#[test]
fn oversized_message_is_refused_and_not_sent() {
    let mut buffer = Buffer::new(4).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    let big = [7u8; PAYLOAD_MAX + 1];
    assert_eq!(
        producer.try_produce(&big),
        Err(Error::MessageTooLarge { len: 225, max: 224 })
    );
    assert_eq!(
        producer.produce(&big),
        Err(Error::MessageTooLarge { len: 225, max: 224 })
    );
    // A writer that claims too many bytes publishes nothing.
    assert_eq!(
        producer.try_produce_with(1, |_| PAYLOAD_MAX + 1),
        Err(Error::MessageTooLarge { len: 225, max: 224 })
    );
    assert!(consumer.try_consume().is_none());
    // Exactly the payload size is fine.
    producer.try_produce(&[1u8; PAYLOAD_MAX]).unwrap();
    assert_eq!(consumer.try_consume().unwrap().len(), PAYLOAD_MAX);
    // Empty messages are fine too.
    producer.try_produce(b"").unwrap();
    assert!(consumer.try_consume().unwrap().is_empty());
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
        Error::MessageTooLarge { len: 225, max: 224 }.to_string(),
        "message of 225 bytes exceeds the 224-byte slot payload"
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
