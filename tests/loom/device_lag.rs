//! The GPU protocol on rings large enough that the pushed head lags the consumer's: from 16
//! slots the consumer pushes its head every capacity / 8 slots of a drain, or on an empty ring
//! once it is `max(capacity / 64, 1)` ahead of the last push (`ring/consumer.rs`), so a warp may
//! wait on a head some slots behind the one the consumer has.

use loom::thread;
use perdix_transport::layout::{OFFSET_PAYLOAD, SLOT_SIZE};
use perdix_transport::loom_device::{device_ring, Emit};
use perdix_transport::Policy;

use super::device::{drain_n, read_to_end};

/// The length of a message of exactly `k` slots.
fn len_of(k: usize) -> usize {
    k * SLOT_SIZE - OFFSET_PAYLOAD
}

/// A 16-slot ring (the head pushed every 2 slots of a drain): one warp sends a batch of four
/// one-slot messages, a run of two 4-slot messages, a 7-slot message that needs a pad of 4
/// (published first; the message then waits for the first lap's slots), and a batch of two,
/// more than a lap in all, while the consumer drains. Everything arrives intact and in order,
/// and every position is counted.
#[test]
fn a_warp_through_more_than_a_lap_with_a_lagging_head() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.max_branches = 20_000;
    model.check(|| {
        let (device, mut consumer) = device_ring(16, Policy::Block).unwrap();
        // (kind, len) in the order sent: positions 0..4, 4..8, 8..12, pad 12..16, 16..23, 23..25.
        let plan: [(u32, usize); 9] = [
            (0, 8),
            (1, 8),
            (2, 8),
            (3, 8),
            (4, len_of(4)),
            (5, len_of(4)),
            (6, len_of(7)),
            (7, 8),
            (8, 8),
        ];
        let warp = {
            let device = device.clone();
            thread::spawn(move || {
                let msgs: Vec<(u32, Vec<u8>)> = plan
                    .iter()
                    .map(|&(kind, len)| (kind, vec![kind as u8; len]))
                    .collect();
                let lanes = |range: core::ops::Range<usize>| -> Vec<(u32, &[u8])> {
                    msgs[range].iter().map(|(k, m)| (*k, &m[..])).collect()
                };
                for range in [0..4, 4..6, 6..7, 7..9] {
                    let sent = device.warp_send(&lanes(range.clone()));
                    assert_eq!(sent, vec![Emit::Sent; range.len()]);
                }
                device.finish();
            })
        };
        let mut got = Vec::new();
        drain_n(&mut consumer, 4, |msg| {
            assert_eq!(&*msg, &[msg.kind() as u8; 8]);
            got.push((msg.seq(), msg.kind()));
        });
        got.extend(
            read_to_end(&mut consumer)
                .into_iter()
                .map(|(seq, kind, bytes)| {
                    assert_eq!(bytes, vec![kind as u8; plan[kind as usize].1]);
                    (seq, kind)
                }),
        );
        warp.join().unwrap();
        let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 8, 16, 23, 24]);
        assert!(got.iter().map(|(_, kind)| *kind).eq(0..9));
        assert_eq!(consumer.stats().produced, 25);
    });
}

/// Why the pad goes out as soon as its first slot is free (perdix_span.cuh, `perdix_reserve_span`):
/// on a 256-slot ring the consumer pushes its head every 32 slots of a drain, or on an empty
/// ring once it is 4 past the last push. A lane sends a 126-slot message (the consumer pushes
/// 126 after it), a batch of three one-slot messages (head 129, pushed 126: the empty ring
/// pushes nothing), then a 128-slot message: 127 slots of pad, the message at 256..384. Its
/// last slot needs a pushed head of 128; had the lane waited for that before publishing the
/// pad, the consumer (stopped at the unpublished pad) would never push it. The pad alone needs
/// slot 129 free, which it is: the consumer skips the pad, pushes 256, and the message follows.
#[test]
fn the_pad_is_published_before_its_message_waits_for_room() {
    let mut model = loom::model::Builder::new();
    // One writer, one reader, hundreds of slots: the schedules differ little, and each is long.
    model.preemption_bound = Some(0);
    model.max_branches = 100_000;
    model.check(|| {
        let (device, mut consumer) = device_ring(256, Policy::Block).unwrap();
        let lane = {
            let device = device.clone();
            thread::spawn(move || {
                assert_eq!(device.emit(0, &vec![0; len_of(126)]), Emit::Sent);
                let batch: [(u32, &[u8]); 3] = [(1, &[1]), (2, &[2]), (3, &[3])];
                assert_eq!(device.warp_send(&batch), [Emit::Sent; 3]);
                assert_eq!(device.emit(4, &vec![4; len_of(128)]), Emit::Sent);
                device.finish();
            })
        };
        let got = read_to_end(&mut consumer);
        lane.join().unwrap();
        let seqs: Vec<(u64, u32)> = got.iter().map(|(seq, kind, _)| (*seq, *kind)).collect();
        assert_eq!(seqs, [(0, 0), (126, 1), (127, 2), (128, 3), (256, 4)]);
        assert_eq!(got[4].2, vec![4; len_of(128)]);
        assert_eq!(consumer.stats().produced, 384);
    });
}
