//! Backpressure: `Full` without loss, `Block` resumes, `DropNewest` counts exactly, and
//! `Disconnected` both ways.

use std::thread;
use std::time::Duration;

use perdix_transport::{Buffer, Error, Policy};

#[test]
fn every_slot_is_usable() {
    let mut buffer = Buffer::new(4).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    for i in 0..4u8 {
        producer.try_produce(&[i]).unwrap();
    }
    assert_eq!(producer.try_produce(b"x"), Err(Error::Full));
    assert_eq!(producer.stats().occupancy(), 4);
    for i in 0..4u8 {
        assert_eq!(&*consumer.try_consume().unwrap(), &[i]);
    }
    assert!(consumer.try_consume().is_none());
}

#[test]
fn full_loses_nothing() {
    let mut buffer = Buffer::new(2).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    producer.try_produce(b"a").unwrap();
    producer.try_produce(b"b").unwrap();
    let msg = b"c";
    assert_eq!(producer.try_produce(msg), Err(Error::Full));
    assert_eq!(producer.try_produce(msg), Err(Error::Full));
    // The caller still holds `msg`; once there is room it goes through.
    assert_eq!(&*consumer.try_consume().unwrap(), b"a");
    producer.try_produce(msg).unwrap();
    assert_eq!(&*consumer.try_consume().unwrap(), b"b");
    assert_eq!(&*consumer.try_consume().unwrap(), b"c");
    let stats = consumer.stats();
    assert_eq!(
        (stats.produced, stats.consumed, stats.stalls, stats.drops),
        (3, 3, 2, 0)
    );
}

#[test]
fn a_guard_holds_its_slot() {
    let mut buffer = Buffer::new(2).unwrap();
    let (mut producer, mut consumer) = buffer.split_mut();
    producer.try_produce(b"a").unwrap();
    producer.try_produce(b"b").unwrap();
    let guard = consumer.try_consume().unwrap();
    // The slot of "a" is still borrowed: the ring is still full.
    assert_eq!(producer.try_produce(b"c"), Err(Error::Full));
    drop(guard);
    producer.try_produce(b"c").unwrap();
}

#[test]
fn block_resumes_when_the_consumer_reads() {
    let (mut producer, mut consumer) = Buffer::new(2).unwrap().into_split();
    producer.try_produce(b"1").unwrap();
    producer.try_produce(b"2").unwrap();
    let blocked = thread::spawn(move || {
        producer.produce(b"3").unwrap();
        producer
    });
    thread::sleep(Duration::from_millis(10));
    let mut got = Vec::new();
    while got.len() < 3 {
        let msg = consumer
            .consume_timeout(Duration::from_secs(10))
            .unwrap()
            .expect("the blocked producer never resumed");
        got.push(msg.to_vec());
    }
    assert_eq!(got, [b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);
    let producer = blocked.join().unwrap();
    assert_eq!(producer.stats().stalls, 1);
}

#[test]
fn drop_newest_counts_exactly() {
    let (mut producer, mut consumer) = Buffer::builder(8)
        .policy(Policy::DropNewest)
        .build()
        .unwrap()
        .into_split();
    let mut delivered = 0u64;
    let mut dropped = 0u64;
    for round in 0..1000u64 {
        for i in 0..5u64 {
            match producer.produce(&(round * 5 + i).to_le_bytes()) {
                Ok(()) => delivered += 1,
                Err(Error::Full) => dropped += 1,
                Err(err) => panic!("{err}"),
            }
        }
        // Read fewer than were offered, so the ring keeps filling up.
        for _ in 0..3 {
            let _ = consumer.try_consume();
        }
    }
    let stats = producer.stats();
    assert_eq!(delivered + dropped, 5000);
    assert_eq!(stats.drops, dropped);
    assert_eq!(stats.produced, delivered);
    assert!(dropped > 0);
    // Everything delivered is readable, in order.
    let mut last = None;
    while let Some(msg) = consumer.try_consume() {
        let v = u64::from_le_bytes(msg[..8].try_into().unwrap());
        assert!(last.is_none_or(|l| v > l));
        last = Some(v);
    }
    assert_eq!(consumer.stats().consumed, delivered);
}

/// DropNewest with messages of 1 to 4 slots on a 16-slot ring: a message that does not fit
/// (with its pad) is dropped whole and counted once; everything delivered is intact, in order.
#[test]
fn drop_newest_counts_big_messages_exactly() {
    let (mut producer, mut consumer) = Buffer::builder(16)
        .policy(Policy::DropNewest)
        .build()
        .unwrap()
        .into_split();
    let lens = [8usize, 300, 700, 992, 224, 225, 481];
    let body = |n: u64, len: usize| -> Vec<u8> {
        let mut bytes = vec![(n as u8) ^ (len as u8); len];
        bytes[..8].copy_from_slice(&n.to_le_bytes());
        bytes
    };
    let (mut delivered, mut dropped) = (0u64, 0u64);
    let mut read = Vec::new();
    let take = |consumer: &mut perdix_transport::Consumer, read: &mut Vec<u64>| {
        if let Some(msg) = consumer.try_consume() {
            let n = u64::from_le_bytes(msg[..8].try_into().unwrap());
            assert_eq!(&*msg, &body(n, msg.len())[..], "message {n}");
            read.push(n);
        }
    };
    for n in 0..5000u64 {
        match producer.produce(&body(n, lens[n as usize % lens.len()])) {
            Ok(()) => delivered += 1,
            Err(Error::Full) => dropped += 1,
            Err(err) => panic!("{err}"),
        }
        if n % 3 == 0 {
            take(&mut consumer, &mut read);
        }
    }
    while consumer.stats().occupancy() > 0 {
        take(&mut consumer, &mut read);
    }
    let stats = consumer.stats();
    assert_eq!(delivered + dropped, 5000);
    assert_eq!(stats.drops, dropped);
    assert!(dropped > 0 && delivered > 0);
    assert_eq!(read.len() as u64, delivered);
    assert!(read.windows(2).all(|w| w[0] < w[1]));
    assert_eq!((stats.corrupt, stats.produced), (0, stats.consumed));
}

#[test]
fn try_produce_never_blocks_whatever_the_policy() {
    for policy in [Policy::Block, Policy::DropNewest] {
        let mut buffer = Buffer::builder(2).policy(policy).build().unwrap();
        let (mut producer, _consumer) = buffer.split_mut();
        producer.try_produce(b"a").unwrap();
        producer.try_produce(b"b").unwrap();
        assert_eq!(producer.try_produce(b"c"), Err(Error::Full));
        assert_eq!(producer.stats().drops, 0);
    }
}

#[test]
fn consumer_gone_disconnects_producer_before_full() {
    let (mut producer, consumer) = Buffer::new(2).unwrap().into_split();
    producer.try_produce(b"a").unwrap();
    producer.try_produce(b"b").unwrap();
    drop(consumer);
    assert!(producer.is_abandoned());
    assert_eq!(producer.try_produce(b"c"), Err(Error::Disconnected));
    assert_eq!(producer.produce(b"c"), Err(Error::Disconnected));
}

#[test]
fn consumer_gone_wakes_a_blocked_producer() {
    let (mut producer, consumer) = Buffer::new(2).unwrap().into_split();
    producer.try_produce(b"a").unwrap();
    producer.try_produce(b"b").unwrap();
    let blocked = thread::spawn(move || producer.produce(b"c"));
    thread::sleep(Duration::from_millis(10));
    drop(consumer);
    assert_eq!(blocked.join().unwrap(), Err(Error::Disconnected));
}

#[test]
fn producer_gone_drains_then_disconnects() {
    let (mut producer, mut consumer) = Buffer::new(4).unwrap().into_split();
    producer.try_produce(b"last words").unwrap();
    drop(producer);
    assert!(consumer.is_abandoned());
    assert_eq!(
        &*consumer.try_consume_checked().unwrap().unwrap(),
        b"last words"
    );
    assert_eq!(
        consumer.try_consume_checked().unwrap_err(),
        Error::Disconnected
    );
    assert!(consumer.try_consume().is_none());
    assert_eq!(consumer.consume().unwrap_err(), Error::Disconnected);
    assert_eq!(consumer.drain_checked(10, |_| {}), Err(Error::Disconnected));
}

#[test]
fn consume_timeout_times_out() {
    let mut buffer = Buffer::new(4).unwrap();
    let (_producer, mut consumer) = buffer.split_mut();
    assert!(consumer
        .consume_timeout(Duration::from_millis(5))
        .unwrap()
        .is_none());
}
