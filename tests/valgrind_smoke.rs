//! Small two-thread ring tests sized for valgrind (`.ci/run` runs this binary under
//! `valgrind --error-exitcode=1`): memory errors or leaks in the ring fail CI. The second one
//! drives the byte-level slot code (`ring/slots.rs`) through everything it does with raw bytes:
//! messages of one to eight slots written by copy and in place, pad records at the wraps,
//! continuation slots stamped as they are released, read by guard and by drain.

use perdix_transport::layout::{slots_for, SLOT_PAYLOAD};
use perdix_transport::testing::stress::{self, Sizes, Verifier};
use perdix_transport::{Buffer, Consumer, Error};

#[test]
fn two_threads_small_ring() {
    const N: u64 = 20_000;
    let (mut producer, mut consumer) = Buffer::new(16).unwrap().into_split();
    let sender = std::thread::spawn(move || {
        let mut buf = [0u8; 224];
        for seq in 0..N {
            let size = 16 + 8 * (seq % 27) as usize;
            stress::fill(&mut buf[..size], 1, seq);
            producer.produce(&buf[..size]).unwrap();
        }
    });
    let mut verifier = Verifier::new(true);
    loop {
        match consumer.consume() {
            Ok(msg) => verifier.check(1, &msg),
            Err(Error::Disconnected) => break,
            Err(err) => panic!("{err}"),
        }
    }
    sender.join().unwrap();
    let report = verifier.finish(&[0, N]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.messages, N);
}

/// Reads what is ready, one message by guard (`consume`) or a few by `drain`, alternating;
/// returns false once the producer is gone and everything is read.
fn read_some(consumer: &mut Consumer, verifier: &mut Verifier, by_guard: bool) -> bool {
    if by_guard {
        return match consumer.consume() {
            Ok(msg) => {
                verifier.check(1, &msg);
                true
            }
            Err(Error::Disconnected) => false,
            Err(err) => panic!("{err}"),
        };
    }
    match consumer.drain_checked(3, |msg| verifier.check(1, &msg)) {
        Ok(_) => true,
        Err(Error::Disconnected) => false,
        Err(err) => panic!("{err}"),
    }
}

/// A 16-slot ring (largest message 2,016 bytes, eight slots) carries stress messages of 16 to
/// 2,016 bytes in a deterministic mix: sent by copy (`produce`), written in place (`claim`) or,
/// when they fit one slot, by `produce_with`; read by guard and by drain. Every message arrives
/// whole and in order (every word checked, and its length against the mix), the ring wraps
/// about four hundred times with pads, and the consumer releases exactly the positions the
/// producer published (messages and pads).
#[test]
fn two_threads_multi_slot_messages_pads_and_stamps() {
    const N: u64 = 1_500;
    const CAPACITY: usize = 16;
    let (mut producer, mut consumer) = Buffer::new(CAPACITY).unwrap().into_split();
    let sizes = Sizes::mixed(16, producer.max_message());
    let sender = std::thread::spawn(move || {
        let mut buf = vec![0u8; sizes.max()];
        for seq in 0..N {
            let size = sizes.size_of(1, seq);
            match seq % 3 {
                0 => {
                    stress::fill(&mut buf[..size], 1, seq);
                    producer.produce(&buf[..size]).unwrap();
                }
                1 => {
                    let mut claim = producer.claim(size).unwrap();
                    stress::fill(&mut claim[..], 1, seq);
                    claim.commit();
                }
                _ if size <= SLOT_PAYLOAD => producer
                    .produce_with(0, |slot| stress::fill(&mut slot[..size], 1, seq))
                    .unwrap(),
                _ => {
                    stress::fill(&mut buf[..size], 1, seq);
                    producer.produce(&buf[..size]).unwrap();
                }
            }
        }
        producer.stats().produced
    });
    let mut verifier = Verifier::with_sizes(true, sizes);
    let mut turn = 0u64;
    while read_some(&mut consumer, &mut verifier, turn.is_multiple_of(2)) {
        turn += 1;
    }
    let produced = sender.join().unwrap();
    let report = verifier.finish(&[0, N]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.messages, N);
    let slots: u64 = (0..N)
        .map(|seq| slots_for(sizes.size_of(1, seq)) as u64)
        .sum();
    let consumed = consumer.stats().consumed;
    assert_eq!(
        consumed, produced,
        "positions released = positions published"
    );
    assert!(
        consumed > slots + N / 10,
        "pads: {consumed} positions for {slots} message slots"
    );
}
