//! perdix vs rtrb vs crossbeam's `ArrayQueue` vs std's `sync_channel`, one producer thread and one
//! consumer thread, in one run. Every queue is checked for order and content before it is timed.
//!
//! perdix carries each message with its length (32 B, or the 224 B of one slot's payload,
//! `SLOT_PAYLOAD`); the peers carry a fixed 256-byte array element (`SLOT_SIZE`, length in its
//! first byte), the nearest equivalent. Messages above one slot: `benches/big_messages.rs`.
//!
//! ```text
//! cargo bench --bench spsc
//! ```
//!
//! Groups: `throughput/<size>` (capacity 4096: uncontended), `contended` (capacity 2),
//! `round_trip` (echo thread, two queues of the same kind), and `seed/<size>`: the seed API as a
//! user writes it (`try_produce` on one thread, `try_consume` on the other checking each
//! message's length and first byte, 4,096 slots) beside rtrb with a `[u8; 256]` element by value,
//! so the ratio shows in one run (issue 21). Figures: docs/PERFORMANCE.md.

use std::hint::{black_box, spin_loop};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use perdix_transport::layout::{SLOT_PAYLOAD, SLOT_SIZE};
use perdix_transport::{Buffer, Consumer, Producer};

/// A slot-sized element for the peers: byte 0 is the length, the payload follows.
type Element = [u8; SLOT_SIZE];

fn element(msg: &[u8]) -> Element {
    let mut e = [0u8; SLOT_SIZE];
    e[0] = msg.len() as u8;
    e[1..=msg.len()].copy_from_slice(msg);
    e
}

/// One SPSC queue under test: the closure table every bench body runs over.
trait Queue {
    const NAME: &'static str;
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx);
    /// Tries once to send; false when full.
    fn try_send(tx: &mut Self::Tx, msg: &[u8]) -> bool;
    /// Tries once to receive, handing the payload to `f`; false when empty.
    fn try_recv(rx: &mut Self::Rx, f: impl FnOnce(&[u8])) -> bool;
}

struct Perdix;
impl Queue for Perdix {
    const NAME: &'static str = "perdix";
    type Tx = Producer;
    type Rx = Consumer;
    fn pair(capacity: usize) -> (Producer, Consumer) {
        Buffer::new(capacity).unwrap().into_split()
    }
    #[inline]
    fn try_send(tx: &mut Producer, msg: &[u8]) -> bool {
        tx.try_produce(msg).is_ok()
    }
    #[inline]
    fn try_recv(rx: &mut Consumer, f: impl FnOnce(&[u8])) -> bool {
        rx.try_consume().map(|m| f(&m)).is_some()
    }
}

struct Rtrb;
impl Queue for Rtrb {
    const NAME: &'static str = "rtrb";
    type Tx = rtrb::Producer<Element>;
    type Rx = rtrb::Consumer<Element>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(capacity)
    }
    #[inline]
    fn try_send(tx: &mut Self::Tx, msg: &[u8]) -> bool {
        tx.push(element(msg)).is_ok()
    }
    #[inline]
    fn try_recv(rx: &mut Self::Rx, f: impl FnOnce(&[u8])) -> bool {
        rx.pop().map(|e| f(&e[1..=e[0] as usize])).is_ok()
    }
}

struct ArrayQ;
impl Queue for ArrayQ {
    const NAME: &'static str = "crossbeam ArrayQueue";
    type Tx = Arc<ArrayQueue<Element>>;
    type Rx = Arc<ArrayQueue<Element>>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        let q = Arc::new(ArrayQueue::new(capacity));
        (Arc::clone(&q), q)
    }
    #[inline]
    fn try_send(tx: &mut Self::Tx, msg: &[u8]) -> bool {
        tx.push(element(msg)).is_ok()
    }
    #[inline]
    fn try_recv(rx: &mut Self::Rx, f: impl FnOnce(&[u8])) -> bool {
        rx.pop().map(|e| f(&e[1..=e[0] as usize])).is_some()
    }
}

struct StdSync;
impl Queue for StdSync {
    const NAME: &'static str = "std sync_channel";
    type Tx = SyncSender<Element>;
    type Rx = Receiver<Element>;
    fn pair(capacity: usize) -> (Self::Tx, Self::Rx) {
        sync_channel(capacity)
    }
    #[inline]
    fn try_send(tx: &mut Self::Tx, msg: &[u8]) -> bool {
        !matches!(tx.try_send(element(msg)), Err(TrySendError::Full(_)))
    }
    #[inline]
    fn try_recv(rx: &mut Self::Rx, f: impl FnOnce(&[u8])) -> bool {
        rx.try_recv().map(|e| f(&e[1..=e[0] as usize])).is_ok()
    }
}

fn send<Q: Queue>(tx: &mut Q::Tx, msg: &[u8]) {
    while !Q::try_send(tx, msg) {
        spin_loop();
    }
}

/// Receives one message, returning a value that depends on its first and last byte and length.
fn recv<Q: Queue>(rx: &mut Q::Rx) -> u64 {
    let mut out = 0;
    while !Q::try_recv(rx, |m| {
        out = m.len() as u64 ^ u64::from(m[0]) ^ (u64::from(m[m.len() - 1]) << 8);
    }) {
        spin_loop();
    }
    out
}

fn payload(size: usize, i: u64) -> [u8; SLOT_PAYLOAD] {
    let mut buf = [0u8; SLOT_PAYLOAD];
    buf[..8].copy_from_slice(&i.to_le_bytes());
    buf[size - 1] = i as u8;
    buf
}

/// Sends 20,000 numbered messages across threads and checks each one arrives, in order, intact.
fn check<Q: Queue>(size: usize) {
    let (mut tx, mut rx) = Q::pair(64);
    const N: u64 = 20_000;
    let sender = thread::spawn(move || {
        for i in 0..N {
            send::<Q>(&mut tx, &payload(size, i)[..size]);
        }
    });
    for i in 0..N {
        let mut ok = false;
        while !Q::try_recv(&mut rx, |m| ok = m == &payload(size, i)[..size]) {
            spin_loop();
        }
        assert!(ok, "{} delivered a wrong message at {i}", Q::NAME);
    }
    sender.join().unwrap();
}

/// `iters` messages from a producer thread to this thread; time to the last one received.
fn throughput<Q: Queue>(capacity: usize, size: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = Q::pair(capacity);
    let msg = payload(size, 7);
    let sender = thread::spawn(move || {
        for _ in 0..iters {
            send::<Q>(&mut tx, &msg[..size]);
        }
    });
    let start = Instant::now();
    let mut acc = 0;
    for _ in 0..iters {
        acc ^= recv::<Q>(&mut rx);
    }
    let elapsed = start.elapsed();
    black_box(acc);
    sender.join().unwrap();
    elapsed
}

/// `iters` round trips through two queues and an echo thread.
fn round_trip<Q: Queue>(iters: u64) -> Duration {
    let (mut ping_tx, mut ping_rx) = Q::pair(64);
    let (mut pong_tx, mut pong_rx) = Q::pair(64);
    let echo = thread::spawn(move || {
        let mut buf = [0u8; 32];
        for _ in 0..iters {
            while !Q::try_recv(&mut ping_rx, |m| buf.copy_from_slice(m)) {
                spin_loop();
            }
            send::<Q>(&mut pong_tx, &buf);
        }
    });
    let msg = payload(32, 1);
    let start = Instant::now();
    for _ in 0..iters {
        send::<Q>(&mut ping_tx, &msg[..32]);
        black_box(recv::<Q>(&mut pong_rx));
    }
    let elapsed = start.elapsed();
    echo.join().unwrap();
    elapsed
}

/// The first payload byte of every `seed` message.
const SEED_BYTE: u8 = 0x5a;

/// The seed API's per-message shape: `iters` messages of `size` bytes, `try_produce` on a
/// producer thread, `try_consume` here, each message's length and first byte checked; time to
/// the last one received.
fn seed_perdix(size: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = Buffer::new(SEED_CAPACITY).unwrap().into_split();
    let msg = [SEED_BYTE; SLOT_PAYLOAD];
    let sender = thread::spawn(move || {
        for _ in 0..iters {
            while tx.try_produce(&msg[..size]).is_err() {
                spin_loop();
            }
        }
    });
    let start = Instant::now();
    let mut n = 0;
    while n < iters {
        match rx.try_consume() {
            Some(m) => {
                assert!(
                    m.len() == size && m[0] == SEED_BYTE,
                    "perdix: a wrong message"
                );
                n += 1;
            }
            None => spin_loop(),
        }
    }
    let elapsed = start.elapsed();
    sender.join().unwrap();
    elapsed
}

/// [`seed_perdix`] for rtrb, with a `[u8; 256]` element pushed and popped by value (byte 0 the
/// length, the payload after it).
fn seed_rtrb(size: usize, iters: u64) -> Duration {
    let (mut tx, mut rx) = rtrb::RingBuffer::<Element>::new(SEED_CAPACITY);
    let mut e = [SEED_BYTE; SLOT_SIZE];
    e[0] = size as u8;
    let sender = thread::spawn(move || {
        for _ in 0..iters {
            while tx.push(e).is_err() {
                spin_loop();
            }
        }
    });
    let start = Instant::now();
    let mut n = 0;
    while n < iters {
        match rx.pop() {
            Ok(m) => {
                assert!(
                    m[0] as usize == size && m[1] == SEED_BYTE,
                    "rtrb: a wrong message"
                );
                n += 1;
            }
            Err(_) => spin_loop(),
        }
    }
    let elapsed = start.elapsed();
    sender.join().unwrap();
    elapsed
}

/// Slots (elements) in the `seed` group's rings.
const SEED_CAPACITY: usize = 4096;

fn bench_seed(c: &mut Criterion, size: usize) {
    check::<Perdix>(size);
    check::<Rtrb>(size);
    let mut g = c.benchmark_group(format!("seed/{size}B"));
    g.throughput(Throughput::Elements(1));
    g.bench_function("perdix", |b| {
        b.iter_custom(|iters| seed_perdix(size, iters))
    });
    g.bench_function("rtrb", |b| b.iter_custom(|iters| seed_rtrb(size, iters)));
    g.finish();
}

macro_rules! for_each_queue {
    ($f:ident, $($arg:expr),*) => {{
        $f::<Perdix>($($arg),*);
        $f::<Rtrb>($($arg),*);
        $f::<ArrayQ>($($arg),*);
        $f::<StdSync>($($arg),*);
    }};
}

fn bench_throughput<Q: Queue>(c: &mut Criterion, group: &str, capacity: usize, size: usize) {
    check::<Q>(size);
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new(Q::NAME, format!("{size}B")), |b| {
        b.iter_custom(|iters| throughput::<Q>(capacity, size, iters))
    });
    g.finish();
}

fn bench_round_trip<Q: Queue>(c: &mut Criterion) {
    let mut g = c.benchmark_group("round_trip");
    g.bench_function(Q::NAME, |b| b.iter_custom(round_trip::<Q>));
    g.finish();
}

fn benches(c: &mut Criterion) {
    for size in [32, SLOT_PAYLOAD] {
        for_each_queue!(bench_throughput, c, "throughput", 4096, size);
    }
    for_each_queue!(bench_throughput, c, "contended_capacity_2", 2, 32);
    for_each_queue!(bench_round_trip, c);
    for size in [32, SLOT_PAYLOAD] {
        bench_seed(c, size);
    }
}

criterion_group! {
    name = spsc;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(spsc);
