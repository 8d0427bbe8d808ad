//! Big messages (4 KiB and 64 KiB) from one producer thread to one consumer thread, beside the
//! single-core memcpy bandwidth measured in the same run (issue 13's CPU→CPU goal: perdix at
//! least 0.8× memcpy). Every queue is checked for order and content before it is timed.
//!
//! ```text
//! cargo bench --bench big_messages
//! ```
//!
//! Each run has two ring sizes, 1 MiB (it fits one core's L2 cache on many CPUs) and 4 MiB
//! (it does not), and perdix and rtrb hold the same bytes: perdix `ring / 256` slots (a 4 KiB
//! message takes 17 slots, its 32-byte header and the payload: a 1 MiB ring holds 240 of them
//! and a 16-slot pad record a lap), rtrb a `RingBuffer<u8>` of `ring` bytes (256 chunks of 4 KiB
//! in 1 MiB). Peers, in groups `bytes/<size>KiB_ring_<ring>MiB` (criterion's
//! `Throughput::Bytes`, payload bytes):
//!
//! - `perdix copy`: `try_produce(&msg)`, a copy from one source buffer into the ring;
//! - `perdix claim`: `try_claim(len)`, the message written in place (zero copy: the producer
//!   stores each 8-byte word of the message, computed, into the ring), then `commit`;
//! - `rtrb copy`: `write_chunk_uninit(len)`, the same copy from the same source, `commit_all`;
//! - `one core memcpy`: one thread copies the source into a destination of the ring's size
//!   (chunk after chunk, cycling, so the working set is a ring's, not one hot buffer; each chunk
//!   64-byte aligned, memcpy's best case), then does the consumer's work on that chunk;
//! - `one core fill`: the same with `perdix claim`'s in-place write instead of the copy.
//!
//! The consumer's work is the same for every peer, [`touch`]: it reads one `u64` from every
//! 64 bytes of the message and its last `u64`, and sums them (every cache line of the message is
//! loaded, none copied out). Every wait (a full or an empty queue) spins, then yields, alike for
//! every peer. After the groups one line per ring and size gives the ratios perdix / memcpy and
//! perdix / rtrb from a short explicit timing loop (the best of 30 interleaved runs of each),
//! measured in the same process, with how busy each thread was in those runs (its time not
//! waiting for the other, over the wall time, `producer/consumer`; time that other processes
//! take from a thread counts as busy): one side near 1.00 is the side that limits (itself, or
//! other work on its core); two figures that add up to about 1 (or less) mean the threads took
//! turns on one core. Either way, on a machine busy with other work the figures are not the
//! ring's. Criterion's figures are the record. Figures: docs/PERFORMANCE.md.

use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_utils::Backoff;
use perdix_transport::layout::SLOT_SIZE;
use perdix_transport::{Buffer, Consumer, Producer};

/// Bytes in each ring (and in the single-core baseline's destination): 1 MiB fits one core's
/// L2 cache on many CPUs, 4 MiB does not.
const RINGS: [usize; 2] = [1 << 20, 4 << 20];
/// Message sizes, in payload bytes.
const SIZES: [usize; 2] = [4 << 10, 64 << 10];
/// The source message of the timed copies.
const SEED: u64 = 7;

/// The consumer's work on a message, the same for every peer: one `u64` from every 64 bytes and
/// the last `u64`, summed, so every cache line of the message is loaded whatever its alignment.
#[inline(always)]
fn touch(msg: &[u8]) -> u64 {
    let word = |c: &[u8]| c.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    let last = msg.last_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    msg.chunks(64)
        .fold(last, |sum, line| sum.wrapping_add(word(line)))
}

/// Writes message `seed` into `buf`: word `j` is `seed << 32 | j`, so every message differs and
/// a misplaced or stale byte shows.
#[inline(always)]
fn fill(buf: &mut [u8], seed: u64) {
    let mut words = buf.chunks_exact_mut(8);
    for (j, w) in (&mut words).enumerate() {
        w.copy_from_slice(&(seed << 32 | j as u64).to_le_bytes());
    }
    words.into_remainder().fill(seed as u8);
}

fn message(len: usize, seed: u64) -> Vec<u8> {
    let mut buf = vec![0; len];
    fill(&mut buf, seed);
    buf
}

/// One SPSC queue carrying byte messages: the table every bench body runs over.
trait Queue {
    const NAME: &'static str;
    type Tx: Send + 'static;
    type Rx: Send + 'static;
    /// A queue of `ring` bytes.
    fn pair(ring: usize) -> (Self::Tx, Self::Rx);
    /// Tries once to send message `seed`, whose bytes are `src` (copied, or written in place by
    /// [`fill`], which makes the same bytes); false when full.
    fn try_send(tx: &mut Self::Tx, src: &[u8], seed: u64) -> bool;
    /// Tries once to receive a message of `len` bytes, handing it to `f`; false when empty.
    fn try_recv(rx: &mut Self::Rx, len: usize, f: impl FnOnce(&[u8])) -> bool;
}

fn perdix_pair(ring: usize) -> (Producer, Consumer) {
    Buffer::new(ring / SLOT_SIZE).unwrap().into_split()
}

#[inline(always)]
fn perdix_recv(rx: &mut Consumer, f: impl FnOnce(&[u8])) -> bool {
    rx.try_consume().map(|m| f(&m)).is_some()
}

struct PerdixCopy;
impl Queue for PerdixCopy {
    const NAME: &'static str = "perdix copy";
    type Tx = Producer;
    type Rx = Consumer;
    fn pair(ring: usize) -> (Producer, Consumer) {
        perdix_pair(ring)
    }
    #[inline(always)]
    fn try_send(tx: &mut Producer, src: &[u8], _seed: u64) -> bool {
        tx.try_produce(src).is_ok()
    }
    #[inline(always)]
    fn try_recv(rx: &mut Consumer, _len: usize, f: impl FnOnce(&[u8])) -> bool {
        perdix_recv(rx, f)
    }
}

struct PerdixClaim;
impl Queue for PerdixClaim {
    const NAME: &'static str = "perdix claim";
    type Tx = Producer;
    type Rx = Consumer;
    fn pair(ring: usize) -> (Producer, Consumer) {
        perdix_pair(ring)
    }
    #[inline(always)]
    fn try_send(tx: &mut Producer, src: &[u8], seed: u64) -> bool {
        let Ok(mut claim) = tx.try_claim(src.len()) else {
            return false;
        };
        fill(&mut claim, seed);
        claim.commit();
        true
    }
    #[inline(always)]
    fn try_recv(rx: &mut Consumer, _len: usize, f: impl FnOnce(&[u8])) -> bool {
        perdix_recv(rx, f)
    }
}

struct RtrbCopy;
impl Queue for RtrbCopy {
    const NAME: &'static str = "rtrb copy";
    type Tx = rtrb::Producer<u8>;
    type Rx = rtrb::Consumer<u8>;
    fn pair(ring: usize) -> (Self::Tx, Self::Rx) {
        rtrb::RingBuffer::new(ring)
    }
    #[inline(always)]
    fn try_send(tx: &mut Self::Tx, src: &[u8], _seed: u64) -> bool {
        let Ok(mut chunk) = tx.write_chunk_uninit(src.len()) else {
            return false;
        };
        let (first, second) = chunk.as_mut_slices();
        let (a, b) = src.split_at(first.len());
        first.write_copy_of_slice(a);
        second.write_copy_of_slice(b);
        // SAFETY: both slices of the chunk were just written, every byte.
        unsafe { chunk.commit_all() };
        true
    }
    #[inline(always)]
    fn try_recv(rx: &mut Self::Rx, len: usize, f: impl FnOnce(&[u8])) -> bool {
        let Ok(chunk) = rx.read_chunk(len) else {
            return false;
        };
        match chunk.as_slices() {
            (all, []) => f(all),
            // Never with 4 KiB multiples in a ring of MiBs; kept correct anyway (a copy).
            (a, b) => f(&[a, b].concat()),
        }
        chunk.commit_all();
        true
    }
}

/// Sends one message, waiting while the queue is full. Every wait here spins, then yields
/// (crossbeam's `Backoff::snooze`), the same for every peer: on a machine with fewer free cores
/// than threads, the side that waits lets the other run instead of spinning out its time slice.
fn send<Q: Queue>(tx: &mut Q::Tx, src: &[u8], seed: u64) {
    wait_until(|| Q::try_send(tx, src, seed));
}

thread_local! {
    /// This thread's time in [`wait_until`] (a full or an empty queue).
    static WAITED: Cell<Duration> = const { Cell::new(Duration::ZERO) };
}

/// This thread's time spent waiting so far.
fn waited() -> Duration {
    WAITED.with(Cell::get)
}

/// Retries `done` until it returns true: spins, then yields; the wait's time goes into
/// [`waited`] (only once a first try has failed, so a queue that never waits pays nothing).
#[inline(always)]
fn wait_until(mut done: impl FnMut() -> bool) {
    if done() {
        return;
    }
    let start = Instant::now();
    let backoff = Backoff::new();
    while !done() {
        backoff.snooze();
    }
    WAITED.with(|w| w.set(w.get() + start.elapsed()));
}

/// Receives one message of `len` bytes and returns [`touch`] of it, waiting as [`send`] does.
#[inline(always)]
fn recv<Q: Queue>(rx: &mut Q::Rx, len: usize) -> u64 {
    let mut out = 0;
    wait_until(|| Q::try_recv(rx, len, |m| out = touch(m)));
    out
}

/// Sends numbered messages over many laps of the ring and checks each one arrives, in order,
/// whole.
fn check<Q: Queue>(ring: usize, len: usize) {
    let (mut tx, mut rx) = Q::pair(ring);
    let n = (20 * ring / len) as u64;
    let sender = thread::spawn(move || {
        for i in 0..n {
            send::<Q>(&mut tx, &message(len, i), i);
        }
    });
    for i in 0..n {
        let want = message(len, i);
        let mut ok = false;
        let backoff = Backoff::new();
        while !Q::try_recv(&mut rx, len, |m| ok = m == want) {
            backoff.snooze();
        }
        assert!(ok, "{} delivered a wrong message at {i} ({len} B)", Q::NAME);
    }
    sender.join().unwrap();
}

/// One timed run: its wall time, and how long each thread was busy (not waiting for the other).
#[derive(Debug, Clone, Copy)]
struct Run {
    wall: Duration,
    producer: Duration,
    consumer: Duration,
}

/// `iters` messages of `len` bytes from a producer thread to this thread through a queue of
/// `ring` bytes; the time from both threads' start (a barrier) to the last message received and
/// touched, and how long each thread was busy.
fn two_threads<Q: Queue>(ring: usize, len: usize, iters: u64) -> Run {
    let (mut tx, mut rx) = Q::pair(ring);
    let src = message(len, SEED);
    let go = Arc::new(Barrier::new(2));
    let sender = thread::spawn({
        let go = Arc::clone(&go);
        move || {
            go.wait();
            let start = (Instant::now(), waited());
            for _ in 0..iters {
                send::<Q>(&mut tx, &src, SEED);
            }
            start.0.elapsed().saturating_sub(waited() - start.1)
        }
    });
    go.wait();
    let idle = waited();
    let start = Instant::now();
    let mut acc = 0u64;
    for _ in 0..iters {
        acc = acc.wrapping_add(recv::<Q>(&mut rx, len));
    }
    let wall = start.elapsed();
    let consumer = wall.saturating_sub(waited() - idle);
    black_box(acc);
    Run {
        wall,
        producer: sender.join().unwrap(),
        consumer,
    }
}

/// [`two_threads`]' wall time.
fn throughput<Q: Queue>(ring: usize, len: usize, iters: u64) -> Duration {
    two_threads::<Q>(ring, len, iters).wall
}

/// What the single-core baseline writes into each chunk of its destination.
#[derive(Clone, Copy)]
enum Write {
    /// A copy of the source message (memcpy).
    Copy,
    /// The message computed in place ([`fill`]), as `perdix claim` writes it.
    Fill,
}

/// One core: `iters` messages of `len` bytes written into a destination of `ring` bytes, chunk
/// after chunk (each 64-byte aligned), each then [`touch`]ed.
fn one_core(write: Write, ring: usize, len: usize, iters: u64) -> Duration {
    let src = message(len, SEED);
    let mut region = vec![1u8; ring + 64];
    let at = region.as_ptr().align_offset(64);
    let dst = &mut region[at..at + ring];
    let chunks = (ring / len) as u64;
    let start = Instant::now();
    let mut acc = 0u64;
    for i in 0..iters {
        let off = (i % chunks) as usize * len;
        // `black_box` on the chunk: the compiler cannot drop the writes or read the source
        // instead of the destination.
        let chunk = black_box(&mut dst[off..off + len]);
        match write {
            Write::Copy => chunk.copy_from_slice(&src),
            Write::Fill => fill(chunk, SEED),
        }
        acc = acc.wrapping_add(touch(black_box(chunk)));
    }
    let elapsed = start.elapsed();
    black_box(acc);
    elapsed
}

/// The group of `len`-byte messages through rings of `ring` bytes.
fn group(ring: usize, len: usize) -> String {
    format!("bytes/{}KiB_ring_{}MiB", len >> 10, ring >> 20)
}

fn bench_queue<Q: Queue>(c: &mut Criterion, ring: usize, len: usize) {
    check::<Q>(ring, len);
    let mut g = c.benchmark_group(group(ring, len));
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function(BenchmarkId::from_parameter(Q::NAME), |b| {
        b.iter_custom(|iters| throughput::<Q>(ring, len, iters))
    });
    g.finish();
}

fn bench_one_core(c: &mut Criterion, name: &str, write: Write, ring: usize, len: usize) {
    let mut g = c.benchmark_group(group(ring, len));
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function(BenchmarkId::from_parameter(name), |b| {
        b.iter_custom(|iters| one_core(write, ring, len, iters))
    });
    g.finish();
}

/// Runs of each peer in the ratio line, interleaved, so a busy moment of the machine hits all
/// peers alike; each run is short (a few milliseconds), so the best run of each is one the
/// scheduler left alone.
const RUNS: usize = 30;
/// Payload bytes of one run of the ratio line.
const RUN_BYTES: usize = 64 << 20;

/// A peer of the ratio line: `(ring, len, iters)` to a run.
type Peer = fn(usize, usize, u64) -> Run;

/// Each peer's best run, as payload bytes per second and `producer/consumer` busy time over
/// its wall time: runs of [`RUN_BYTES`] each, the peers in turn, [`RUNS`] times.
fn rates<const N: usize>(ring: usize, len: usize, peers: [Peer; N]) -> [(f64, String); N] {
    let iters = (RUN_BYTES / len) as u64;
    let mut best = [Run {
        wall: Duration::MAX,
        producer: Duration::ZERO,
        consumer: Duration::ZERO,
    }; N];
    for _ in 0..RUNS {
        for (peer, best) in peers.iter().zip(&mut best) {
            let run = peer(ring, len, iters);
            if run.wall < best.wall {
                *best = run;
            }
        }
    }
    best.map(|run| {
        let secs = run.wall.as_secs_f64();
        let busy = |d: Duration| d.as_secs_f64() / secs;
        (
            (iters * len as u64) as f64 / secs,
            format!("{:.2}/{:.2}", busy(run.producer), busy(run.consumer)),
        )
    })
}

/// The ratio lines: perdix / memcpy and perdix / rtrb, for each ring and size, measured here
/// and now, with how busy each two-thread peer's threads were in its best run (see the module
/// doc).
fn print_ratios() {
    for ring in RINGS {
        for len in SIZES {
            let [(memcpy, _), (copy, copy_busy), (claim, claim_busy), (rtrb, rtrb_busy)] = rates(
                ring,
                len,
                [
                    |ring, len, n| {
                        let wall = one_core(Write::Copy, ring, len, n);
                        Run {
                            wall,
                            producer: wall,
                            consumer: wall,
                        }
                    },
                    two_threads::<PerdixCopy>,
                    two_threads::<PerdixClaim>,
                    two_threads::<RtrbCopy>,
                ],
            );
            let gb = |r: f64| r / 1e9;
            println!(
                "ratio {} KiB, ring {} MiB: perdix copy / memcpy {:.2} (goal >= 0.8), perdix claim \
                 / memcpy {:.2}, perdix copy / rtrb {:.2}, perdix claim / rtrb {:.2} [GB/s: \
                 memcpy {:.1}, perdix copy {:.1}, perdix claim {:.1}, rtrb copy {:.1}; busy \
                 producer/consumer {copy_busy}, {claim_busy}, {rtrb_busy}; best of {RUNS} runs of {} \
                 MiB]",
                len >> 10,
                ring >> 20,
                copy / memcpy,
                claim / memcpy,
                copy / rtrb,
                claim / rtrb,
                gb(memcpy),
                gb(copy),
                gb(claim),
                gb(rtrb),
                RUN_BYTES >> 20,
            );
        }
    }
}

fn benches(c: &mut Criterion) {
    for ring in RINGS {
        for len in SIZES {
            bench_queue::<PerdixCopy>(c, ring, len);
            bench_queue::<PerdixClaim>(c, ring, len);
            bench_queue::<RtrbCopy>(c, ring, len);
            bench_one_core(c, "one core memcpy", Write::Copy, ring, len);
            bench_one_core(c, "one core fill", Write::Fill, ring, len);
        }
    }
    print_ratios();
}

criterion_group! {
    name = big_messages;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(big_messages);
