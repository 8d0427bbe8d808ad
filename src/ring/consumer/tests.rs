//! The consumer's end on a ring whose producers report the positions they published (a GPU
//! ring's device counter), faked here on host memory: a gap before published positions is
//! `Error::Lost`, never a clean `Disconnected` (issue 20, item 6).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::ring::shared::{HeadSink, Ring};
use crate::ring::Host;
use crate::sync::Arc as RingArc;
use crate::{Consumer, Error, Policy, Producer};

const CAPACITY: usize = 8;

/// A head sink whose producers say they published `produced` positions.
#[derive(Debug)]
struct Counted {
    produced: Arc<AtomicU64>,
    reads: Arc<AtomicUsize>,
}

impl HeadSink for Counted {
    fn push(&self, _head: u64) -> Result<(), Error> {
        Ok(())
    }

    fn close(&self) -> Result<(), Error> {
        Ok(())
    }

    fn produced(&self) -> Option<u64> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        Some(self.produced.load(Ordering::Relaxed))
    }
}

struct Faked {
    producer: Producer,
    consumer: Consumer,
    ring: RingArc<Ring>,
    produced: Arc<AtomicU64>,
    reads: Arc<AtomicUsize>,
}

/// A ring whose sink reports the positions published; `sent` messages published by a CPU
/// producer (as the kernels would), the sink saying `produced`.
fn faked(sent: u64, produced: u64) -> Faked {
    let bytes = Ring::bytes_for(CAPACITY).expect("capacity");
    let memory = Host::alloc(bytes).expect("memory");
    let counter = Arc::new(AtomicU64::new(produced));
    let reads = Arc::new(AtomicUsize::new(0));
    let sink = Counted {
        produced: Arc::clone(&counter),
        reads: Arc::clone(&reads),
    };
    let ring = RingArc::new(
        Ring::with_sink(CAPACITY, Box::new(memory), Some(Box::new(sink))).expect("ring"),
    );
    let mut producer = Producer::new(RingArc::clone(&ring), Policy::Block, 0, false);
    for i in 0..sent {
        producer.try_produce(&i.to_le_bytes()).expect("room");
    }
    let consumer = Consumer::new(RingArc::clone(&ring));
    Faked {
        producer,
        consumer,
        ring,
        produced: counter,
        reads,
    }
}

fn read_all(consumer: &mut Consumer) -> (u64, Error) {
    let mut read = 0u64;
    loop {
        match consumer.try_consume_checked() {
            Ok(Some(msg)) => {
                assert_eq!(&*msg, &read.to_le_bytes()[..], "in order");
                read += 1;
            }
            Ok(None) => panic!("the producer is gone: no message can come"),
            Err(err) => return (read, err),
        }
    }
}

#[test]
fn a_gap_before_published_positions_is_lost_not_disconnected() {
    // Positions 0..3 published and read; the producers say 5 were published: 3 was reserved
    // and never published, so the 2 after it can never be read.
    let mut ring = faked(3, 5);
    drop(ring.producer);
    let (read, err) = read_all(&mut ring.consumer);
    let lost = Error::Lost { pos: 3, slots: 2 };
    assert_eq!((read, err), (3, lost.clone()));
    assert_eq!(
        ring.consumer.try_consume_checked().err(),
        Some(lost.clone()),
        "sticky"
    );
    assert_eq!(ring.consumer.drain_checked(8, |_| {}), Err(lost.clone()));
    assert_eq!(ring.consumer.fault(), Some(lost));
    assert_eq!(ring.ring.stats().produced, 5);
}

#[test]
fn no_gap_is_a_clean_disconnect_and_the_counter_is_read_once() {
    let mut ring = faked(3, 3);
    drop(ring.producer);
    assert_eq!(read_all(&mut ring.consumer), (3, Error::Disconnected));
    for _ in 0..3 {
        assert_eq!(
            ring.consumer.try_consume_checked().err(),
            Some(Error::Disconnected)
        );
    }
    assert_eq!(
        ring.reads.load(Ordering::Relaxed),
        1,
        "the end is checked once"
    );
    assert_eq!(ring.consumer.fault(), None);
}

#[test]
fn an_open_producer_is_not_checked() {
    // The producers are still there: an unpublished position may yet be published.
    let mut ring = faked(1, 4);
    assert!(ring.consumer.try_consume_checked().expect("one").is_some());
    assert!(ring
        .consumer
        .try_consume_checked()
        .expect("empty")
        .is_none());
    assert_eq!(ring.reads.load(Ordering::Relaxed), 0);
    ring.produced.store(1, Ordering::Relaxed);
    drop(ring.producer);
    assert_eq!(
        ring.consumer.try_consume_checked().err(),
        Some(Error::Disconnected)
    );
}

#[test]
fn a_fault_comes_before_the_loss() {
    let mut ring = faked(2, 6);
    let fault = Error::Panicked("the producer's fault".into());
    ring.ring.fail(fault.clone());
    drop(ring.producer);
    assert_eq!(read_all(&mut ring.consumer), (2, fault));
}
