//! Two threads: every message arrives once, in order, with its length and checksum intact.

use perdix_transport::testing::harness::SpscRun;
use perdix_transport::testing::stress::{self, Verifier};
use perdix_transport::{Buffer, Policy};

#[test]
fn ten_million_messages_two_threads() {
    // Sizes vary per message (16..=224 bytes) so every length is exercised.
    let (mut producer, mut consumer) = Buffer::new(1024).unwrap().into_split();
    const N: u64 = 10_000_000;
    let sender = std::thread::spawn(move || {
        let mut buf = [0u8; 224];
        for seq in 0..N {
            let size = 16 + 8 * (seq % 27) as usize;
            stress::fill(&mut buf[..size], 0, seq);
            producer.produce(&buf[..size]).unwrap();
        }
    });
    let mut verifier = Verifier::new(true);
    let mut bytes = 0u64;
    loop {
        match consumer.drain_checked(4096, |msg| {
            assert_eq!(msg.len(), 16 + 8 * (msg.seq() % 27) as usize);
            bytes += msg.len() as u64;
            verifier.check(msg.producer(), &msg);
        }) {
            Ok(_) => {}
            Err(perdix_transport::Error::Disconnected) => break,
            Err(err) => panic!("{err}"),
        }
    }
    sender.join().unwrap();
    let report = verifier.finish(&[N]);
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.messages, N);
    assert_eq!(report.bytes, bytes);
}

#[test]
fn harness_run_is_clean_with_full_checks_and_drop_newest() {
    let report = SpscRun {
        capacity: 16,
        size: 224,
        messages: Some(200_000),
        policy: Policy::DropNewest,
        full_check: true,
        ..SpscRun::default()
    }
    .run(|_| {})
    .unwrap();
    assert!(report.verify.is_clean(), "{:?}", report.verify);
    // A refused message is retried with its sequence (the GPU kernel's rule): every one of
    // the 200,000 arrives, and drops are attempts the ring refused, never losses.
    assert_eq!(report.sent, 200_000);
    assert_eq!(report.verify.messages, report.sent);
}

#[test]
fn guards_across_threads_keep_payloads_intact() {
    let (mut producer, mut consumer) = Buffer::new(4).unwrap().into_split();
    const N: u64 = 200_000;
    let sender = std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        for seq in 0..N {
            stress::fill(&mut buf, 9, seq);
            producer.produce_kind(5, &buf).unwrap();
        }
    });
    let mut verifier = Verifier::new(true);
    for seq in 0..N {
        let msg = consumer.consume().unwrap();
        assert_eq!((msg.seq(), msg.kind()), (seq, 5));
        verifier.check(9, &msg);
    }
    sender.join().unwrap();
    assert!(verifier
        .finish(&[0; 9].iter().copied().chain([N]).collect::<Vec<_>>())
        .is_clean());
}
