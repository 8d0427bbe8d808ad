//! A small two-thread ring test sized for valgrind (`.ci/run` runs this binary under
//! `valgrind --error-exitcode=1`): memory errors or leaks in the ring fail CI.

use perdix_transport::testing::stress::{self, Verifier};
use perdix_transport::{Buffer, Error};

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
