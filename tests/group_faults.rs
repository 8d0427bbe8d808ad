//! A `ConsumerGroup` passes on every ring's fault (issue 20, item 4): a fault is reported after
//! the messages its ring published before it, on the call that meets it when that call read
//! nothing, else on the next call; it is reported once while healthy rings keep being drained,
//! and once every ring is done the group keeps reporting its first fault, never a clean
//! `Disconnected`. Host rings (no GPU): a ring is made corrupt by writing a slot behind its back.
#![cfg(feature = "cuda")]

use perdix_transport::cuda::ConsumerGroup;
use perdix_transport::layout::{OFFSET_SEQ, SLOT_SIZE};
use perdix_transport::{Buffer, Consumer, Error, Producer};

#[path = "support/host_ring.rs"]
mod host_ring;

const CAPACITY: usize = 8;

/// A ring that has published `good` messages (0, 1, ...) and then a slot at position `good`
/// whose `seq` can never become ready (`u64::MAX`): the consumer reads `good` messages, then
/// reports `Error::Corrupt` at `good`.
fn corrupt_after(good: u64) -> (Producer, Consumer, Error) {
    let (mut producer, consumer, base) = host_ring::ring_with_memory(CAPACITY);
    for i in 0..good {
        producer.try_produce(&i.to_le_bytes()).expect("room");
    }
    let offset = (good as usize % CAPACITY) * SLOT_SIZE + OFFSET_SEQ;
    // SAFETY: the slot for `good` is inside the ring, no producer has reserved it and no guard
    // is alive, so this write races nothing, as a faulty producer's write would not.
    unsafe {
        base.as_ptr()
            .add(offset)
            .cast::<u64>()
            .write(u64::MAX.to_le())
    };
    let fault = Error::Corrupt {
        pos: good,
        seq: u64::MAX,
        len: 0,
    };
    (producer, consumer, fault)
}

/// A healthy ring holding `n` messages.
fn healthy(n: u64) -> (Producer, Consumer) {
    let (mut producer, consumer) = Buffer::new(CAPACITY).expect("ring").into_split();
    for i in 0..n {
        producer.try_produce(&i.to_le_bytes()).expect("room");
    }
    (producer, consumer)
}

fn drain(group: &mut ConsumerGroup) -> Result<usize, Error> {
    group.drain_checked(64, |_| {})
}

/// The reproduction of issue 20, item 4: it used to be `Ok(3)`, then `Err(Disconnected)` for
/// ever, the corrupt ring's fault kept inside its consumer.
#[test]
fn a_corrupt_ring_is_reported_and_never_ends_as_disconnected() {
    let (_a_tx, a_rx, fault) = corrupt_after(0);
    let (b_tx, b_rx) = healthy(3);
    drop(b_tx);
    let mut group = ConsumerGroup::new(vec![a_rx, b_rx]);
    assert_eq!(group.fault(), None, "not met yet");
    assert_eq!(drain(&mut group), Ok(3), "ring b's messages first");
    assert_eq!(group.fault(), Some(fault.clone()), "met, pending");
    for call in 0..4 {
        assert_eq!(drain(&mut group), Err(fault.clone()), "call {call}");
    }
    assert_eq!(group.fault(), Some(fault));
}

#[test]
fn a_fault_met_with_nothing_read_is_reported_by_that_call() {
    let (_a_tx, a_rx, fault) = corrupt_after(0);
    let (_b_tx, b_rx) = healthy(0);
    let mut group = ConsumerGroup::new(vec![a_rx, b_rx]);
    assert_eq!(drain(&mut group), Err(fault.clone()));
    // Reported once: ring b is healthy and open, so the group goes on reading it.
    assert_eq!(drain(&mut group), Ok(0));
    assert_eq!(group.fault(), Some(fault));
}

#[test]
fn the_messages_before_a_fault_come_first() {
    let (_a_tx, a_rx, fault) = corrupt_after(2);
    let mut group = ConsumerGroup::new(vec![a_rx]);
    let mut seen = Vec::new();
    assert_eq!(
        group.drain_checked(64, |msg| seen.push(msg.to_vec())),
        Ok(2)
    );
    assert_eq!(seen, [0u64.to_le_bytes(), 1u64.to_le_bytes()]);
    assert_eq!(drain(&mut group), Err(fault.clone()));
    assert_eq!(drain(&mut group), Err(fault), "every ring is done: sticky");
}

/// The fault is reported on the call after the one that met it even while a healthy ring always
/// has messages: a busy neighbour cannot hide it. Healthy rings are drained again afterwards.
#[test]
fn a_pending_fault_is_reported_by_the_next_call_even_with_messages_waiting() {
    let (_a_tx, a_rx, fault) = corrupt_after(0);
    let (mut b_tx, b_rx) = healthy(2);
    let mut group = ConsumerGroup::new(vec![a_rx, b_rx]);
    assert_eq!(drain(&mut group), Ok(2));
    b_tx.try_produce(b"more").expect("room");
    assert_eq!(drain(&mut group), Err(fault.clone()), "the next call");
    assert_eq!(drain(&mut group), Ok(1), "ring b goes on");
    assert_eq!(drain(&mut group), Ok(0), "ring b is open and empty");
    drop(b_tx);
    assert_eq!(drain(&mut group), Err(fault.clone()), "not Disconnected");
    assert_eq!(drain(&mut group), Err(fault));
}

#[test]
fn each_faulted_ring_is_reported_once_and_the_first_fault_stays() {
    let (_a_tx, a_rx, a_fault) = corrupt_after(0);
    let (_c_tx, c_rx, c_fault) = corrupt_after(1);
    let (b_tx, b_rx) = healthy(1);
    drop(b_tx);
    let mut group = ConsumerGroup::new(vec![a_rx, b_rx, c_rx]);
    assert_eq!(drain(&mut group), Ok(2), "b's message and c's good one");
    assert_eq!(drain(&mut group), Err(a_fault.clone()));
    assert_eq!(drain(&mut group), Err(c_fault));
    assert_eq!(drain(&mut group), Err(a_fault.clone()), "the first fault");
    assert_eq!(group.fault(), Some(a_fault));
}

#[test]
fn clean_rings_still_end_with_disconnected() {
    let (a_tx, a_rx) = healthy(1);
    let (b_tx, b_rx) = healthy(1);
    drop((a_tx, b_tx));
    let mut group = ConsumerGroup::new(vec![a_rx, b_rx]);
    assert_eq!(drain(&mut group), Ok(2));
    assert_eq!(drain(&mut group), Err(Error::Disconnected));
    assert_eq!(drain(&mut group), Err(Error::Disconnected));
    assert_eq!(group.fault(), None);
}
