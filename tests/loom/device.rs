//! The GPU protocol (`kernels/perdix.cuh`, `perdix_span.cuh`, `perdix_run.cuh`, modelled in
//! `perdix_transport::loom_device`): warps share one `tail`, reserve a batch of one-slot
//! messages with one atomic, a multi-slot message and its pad with one CAS (the pad published
//! as soon as its first slot is free), a run of one length with one CAS, and wait on the device
//! head, which the consumer pushes with a store no stronger than `cuStreamWriteValue64` (a
//! relaxed store after its own release fence). Small rings here (2 to 8 slots: the head is
//! pushed on every publish); `device_lag.rs` has the rings whose pushed head lags.

use loom::thread;
use perdix_transport::loom_device::{device_ring, Emit};
use perdix_transport::{Consumer, Error, Message, Policy};

/// Reads with `drain` (as the plugin does) until `n` messages have arrived, yielding while the
/// ring is empty.
pub(crate) fn drain_n(consumer: &mut Consumer, n: usize, mut f: impl FnMut(Message<'_>)) {
    let mut got = 0;
    while got < n {
        let read = consumer.drain(n - got, &mut f);
        got += read;
        if read == 0 {
            thread::yield_now();
        }
    }
}

/// Reads one message at a time until `Disconnected`: each message's `(seq, kind, bytes)`.
pub(crate) fn read_to_end(consumer: &mut Consumer) -> Vec<(u64, u32, Vec<u8>)> {
    let mut got = Vec::new();
    loop {
        match consumer.try_consume_checked() {
            Ok(Some(msg)) => got.push((msg.seq(), msg.kind(), msg.to_vec())),
            Ok(None) => thread::yield_now(),
            Err(Error::Disconnected) => return got,
            Err(err) => panic!("{err}"),
        }
    }
}

/// Two warps on a 2-slot ring whose room they learn only from the pushed head: warp 0 sends a
/// batch of two one-slot messages (one `atomicAdd` for both), warp 1 one message. All three
/// arrive, each warp's in order, and no slot is rewritten while it is read (the consumer's
/// release fence before its push is what orders that: removing it fails this model).
#[test]
fn warps_reserving_on_a_shared_tail_wait_for_the_pushed_head() {
    // Three threads that each spin on another: with two preemptions some paths outgrow
    // loom's branch limit (10,000 tried), so this model runs with one.
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let (device, mut consumer) = device_ring(2, Policy::Block).unwrap();
        let batches: [&[(u32, &[u8])]; 2] = [&[(0, &[0, 0]), (0, &[0, 1])], &[(1, &[1, 0])]];
        let warps: Vec<_> = batches
            .into_iter()
            .map(|batch| {
                let device = device.clone();
                thread::spawn(move || {
                    assert!(device.warp_send(batch).iter().all(|&e| e == Emit::Sent));
                })
            })
            .collect();
        let mut next = [0u8; 2];
        drain_n(&mut consumer, 3, |msg| {
            let warp = msg.kind() as usize;
            assert_eq!(&*msg, &[warp as u8, next[warp]]);
            next[warp] += 1;
        });
        for warp in warps {
            warp.join().unwrap();
        }
        device.finish();
        assert_eq!(
            consumer.try_consume_checked().unwrap_err(),
            Error::Disconnected
        );
        assert_eq!(consumer.stats().produced, 3);
    });
}

/// Two warps, one with a two-slot message and one with a one-slot then a two-slot message, on
/// a 4-slot ring: whatever the order, the last reservation needs a pad (one CAS for the pad and
/// the message, the pad published before the message's slots are waited for), and every
/// message arrives intact, each warp's in order.
#[test]
fn multi_slot_warps_reserve_a_pad_and_the_message_at_once() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let (device, mut consumer) = device_ring(4, Policy::Block).unwrap();
        let plan: [&[usize]; 2] = [&[300], &[8, 300]];
        let warps: Vec<_> = plan
            .iter()
            .enumerate()
            .map(|(warp, lens)| {
                let (device, lens) = (device.clone(), lens.to_vec());
                thread::spawn(move || {
                    for (i, len) in lens.into_iter().enumerate() {
                        let msg = vec![(warp * 16 + i) as u8; len];
                        assert_eq!(device.emit(warp as u32, &msg), Emit::Sent);
                    }
                })
            })
            .collect();
        let mut next = [0usize; 2];
        drain_n(&mut consumer, 3, |msg| {
            let warp = msg.kind() as usize;
            let i = next[warp];
            assert_eq!(&*msg, &vec![(warp * 16 + i) as u8; plan[warp][i]][..]);
            next[warp] += 1;
        });
        for warp in warps {
            warp.join().unwrap();
        }
        device.finish();
        assert_eq!(
            consumer.try_consume_checked().unwrap_err(),
            Error::Disconnected
        );
        // 1 + 2 + 2 slots and the pad of 1: positions, from the device counters.
        assert_eq!(consumer.stats().produced, 6);
    });
}

/// One lane's one-slot, two-slot and two-slot messages through a 4-slot ring (the last needs
/// a pad): the pad is published like a message (removing its fence fails this), never
/// delivered, and counted in the device's positions.
#[test]
fn a_lane_pads_the_lap_before_a_multi_slot_message() {
    loom::model(|| {
        let (device, mut consumer) = device_ring(4, Policy::Block).unwrap();
        let lens = [8usize, 300, 300];
        let lane = {
            let device = device.clone();
            thread::spawn(move || {
                for (i, len) in lens.into_iter().enumerate() {
                    assert_eq!(device.emit(i as u32, &vec![i as u8; len]), Emit::Sent);
                }
                device.finish();
            })
        };
        let got = read_to_end(&mut consumer);
        lane.join().unwrap();
        let seqs: Vec<(u64, u32)> = got.iter().map(|(seq, kind, _)| (*seq, *kind)).collect();
        assert_eq!(seqs, [(0, 0), (1, 1), (4, 2)]);
        for (_, kind, bytes) in &got {
            assert_eq!(bytes, &vec![*kind as u8; lens[*kind as usize]]);
        }
        assert_eq!(consumer.stats().produced, 6);
    });
}

/// One warp whose two lanes send messages of one length (two slots) twice on an 8-slot ring:
/// each time the two messages share one reservation (`perdix_reserve_run`); the second run
/// reaches the ring's end, so its pad goes between its two messages and is published first,
/// and its second message waits for the first lap's slots. Everything arrives in order.
#[test]
fn a_warp_run_of_multi_slot_messages_shares_one_reservation() {
    loom::model(|| {
        let (device, mut consumer) = device_ring(8, Policy::Block).unwrap();
        let warp = {
            let device = device.clone();
            thread::spawn(move || {
                // Position 0, then the runs at 1..5 and 5..7 + pad 7 + 8..10.
                assert_eq!(device.emit(0, &[0]), Emit::Sent);
                for run in 0..2u32 {
                    let a = vec![1 + 2 * run as u8; 300];
                    let b = vec![2 + 2 * run as u8; 300];
                    let lanes = [(1 + 2 * run, &a[..]), (2 + 2 * run, &b[..])];
                    assert_eq!(device.warp_send(&lanes), [Emit::Sent; 2]);
                }
                device.finish();
            })
        };
        let got = read_to_end(&mut consumer);
        warp.join().unwrap();
        let seqs: Vec<(u64, u32)> = got.iter().map(|(seq, kind, _)| (*seq, *kind)).collect();
        assert_eq!(seqs, [(0, 0), (1, 1), (3, 2), (5, 3), (8, 4)]);
        for (_, kind, bytes) in &got[1..] {
            assert_eq!(bytes, &vec![*kind as u8; 300]);
        }
        assert_eq!(consumer.stats().produced, 10);
    });
}

/// DropNewest lanes: delivered plus dropped is exactly what was sent.
#[test]
fn drop_newest_lanes_count_exactly() {
    loom::model(|| {
        let (device, mut consumer) = device_ring(2, Policy::DropNewest).unwrap();
        let lane = {
            let device = device.clone();
            thread::spawn(move || {
                let sent: Vec<u8> = (0..3u8)
                    .filter(|&i| device.emit(0, &[i]) == Emit::Sent)
                    .collect();
                device.finish();
                sent
            })
        };
        let got: Vec<u8> = read_to_end(&mut consumer)
            .into_iter()
            .map(|(_, _, bytes)| bytes[0])
            .collect();
        let sent = lane.join().unwrap();
        assert_eq!(got, sent);
        assert_eq!(got.len() as u64 + device.dropped(), 3);
    });
}

/// DropNewest on a 4-slot ring: a warp's batch of three one-slot messages (as many as fit),
/// then two two-slot messages, the first of which needs a pad: when only the pad fits it is
/// published alone and the message dropped (`perdix_reserve_span`). Delivered plus dropped is
/// exactly what was sent, what arrives is intact and in order, and every position published
/// (pads included) is consumed.
#[test]
fn drop_newest_warps_publish_a_lone_pad_and_count_exactly() {
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(1);
    model.check(|| {
        let (device, mut consumer) = device_ring(4, Policy::DropNewest).unwrap();
        let warp = {
            let device = device.clone();
            thread::spawn(move || {
                let mut sent = Vec::new();
                let batch: [(u32, &[u8]); 3] = [(0, &[0]), (1, &[1]), (2, &[2])];
                for (lane, emit) in device.warp_send(&batch).into_iter().enumerate() {
                    if emit == Emit::Sent {
                        sent.push(lane as u32);
                    }
                }
                for kind in 3..5u32 {
                    if device.emit(kind, &vec![kind as u8; 300]) == Emit::Sent {
                        sent.push(kind);
                    }
                }
                device.finish();
                sent
            })
        };
        let got = read_to_end(&mut consumer);
        let sent = warp.join().unwrap();
        let kinds: Vec<u32> = got.iter().map(|(_, kind, _)| *kind).collect();
        assert_eq!(kinds, sent);
        for (_, kind, bytes) in &got {
            let len = if *kind < 3 { 1 } else { 300 };
            assert_eq!(bytes, &vec![*kind as u8; len]);
        }
        assert_eq!(got.len() as u64 + device.dropped(), 5);
        let stats = consumer.stats();
        assert_eq!(stats.produced, stats.consumed);
    });
}

/// A lane blocked on a full ring returns CLOSED once the consumer is dropped.
#[test]
fn consumer_drop_releases_a_blocked_lane() {
    loom::model(|| {
        let (device, consumer) = device_ring(2, Policy::Block).unwrap();
        let lane = thread::spawn(move || {
            let mut sent = 0;
            while device.emit(0, &[1]) == Emit::Sent {
                sent += 1;
            }
            sent
        });
        drop(consumer);
        assert!(lane.join().unwrap() <= 2);
    });
}

/// A fault set by the producer side (a kernel fault) reaches the consumer after the messages
/// published before it, and the fault's value is the one written.
#[test]
fn a_producer_side_fault_reaches_the_consumer() {
    loom::model(|| {
        let (device, mut consumer) = device_ring(2, Policy::Block).unwrap();
        let fault = Error::InvalidConfig("kernel fault (model)".into());
        let lane = {
            let (device, fault) = (device.clone(), fault.clone());
            thread::spawn(move || {
                assert_eq!(device.emit(0, &[7]), Emit::Sent);
                device.fail(fault);
            })
        };
        let mut got = Vec::new();
        let err = loop {
            match consumer.try_consume_checked() {
                Ok(Some(msg)) => got.push(msg[0]),
                Ok(None) => thread::yield_now(),
                Err(err) => break err,
            }
        };
        assert_eq!((got, err), (vec![7], fault.clone()));
        assert_eq!(consumer.fault(), Some(fault));
        lane.join().unwrap();
    });
}
