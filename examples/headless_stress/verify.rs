//! The verifier systems: each checks the sequence and checksum of every stress message from its
//! share of the rings, whatever ECS type the messages are delivered as.

use std::sync::{Arc, Mutex, PoisonError};

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{Envelope, PerdixAppExt, PerdixBatch, PerdixMessage, PerdixRings};
use perdix_transport::clock;
use perdix_transport::telemetry::LatencyHistogram;
use perdix_transport::testing::stress::{self, Verifier};
use perdix_transport::testing::StressProducers;

/// One delivered message in this many gets a latency sample in a saturated run.
pub const LATENCY_SAMPLE_EVERY: u64 = 16;

/// Most latency samples a second a paced run takes: every message of a light load, one in a
/// few of a heavier one. Each sample is a clock read and two histogram records in a verifier,
/// which at a 50 % load (23-42 M msgs/s on the H100) is per-message work the saturated run
/// does only for one message in 16.
pub const PACED_SAMPLES_PER_SEC: f64 = 1e6;

/// One message in this many gets a latency sample: paced to `pace` messages a second, or
/// saturated (`None`).
pub fn sample_every(pace: Option<f64>) -> u64 {
    match pace {
        Some(rate) => ((rate / PACED_SAMPLES_PER_SEC).ceil() as u64).clamp(1, LATENCY_SAMPLE_EVERY),
        None => LATENCY_SAMPLE_EVERY,
    }
}

/// One verifier system's state.
pub struct Shard {
    pub verifier: Verifier,
    /// Messages of another kind than the stress kind.
    pub foreign: u64,
    /// Messages to check before the next latency sample (a countdown: no division a message).
    pub until_sample: u64,
    /// One message in this many gets a latency sample.
    pub sample_every: u64,
    pub latency: LatencyHistogram,
    pub latency_window: LatencyHistogram,
}

impl Shard {
    /// A shard that samples the latency of one message in `sample_every`.
    pub fn new(sample_every: u64) -> Self {
        Self {
            verifier: Verifier::new(true),
            foreign: 0,
            until_sample: sample_every.max(1),
            sample_every: sample_every.max(1),
            latency: LatencyHistogram::new(),
            latency_window: LatencyHistogram::new(),
        }
    }
}

/// The verifier systems.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verify;

/// A delivered stress message, whatever its ECS type.
pub trait StressMessage: Message {
    fn kind(&self) -> u32;
    fn producer(&self) -> u32;
    fn ring(&self) -> u32;
    fn stamp_ns(&self) -> u64;
    fn payload(&self) -> &[u8];
}

impl StressMessage for PerdixMessage {
    fn kind(&self) -> u32 {
        PerdixMessage::kind(self)
    }
    fn producer(&self) -> u32 {
        PerdixMessage::producer(self)
    }
    fn ring(&self) -> u32 {
        PerdixMessage::ring(self)
    }
    fn stamp_ns(&self) -> u64 {
        PerdixMessage::stamp_ns(self)
    }
    fn payload(&self) -> &[u8] {
        PerdixMessage::payload(self)
    }
}

impl<const W: usize> StressMessage for Envelope<[u64; W]>
where
    [u64; W]: bytemuck::Pod,
{
    fn kind(&self) -> u32 {
        self.header.kind
    }
    fn producer(&self) -> u32 {
        self.header.producer
    }
    fn ring(&self) -> u32 {
        self.header.ring
    }
    fn stamp_ns(&self) -> u64 {
        self.header.stamp_ns
    }
    fn payload(&self) -> &[u8] {
        bytemuck::bytes_of(&self.value)
    }
}

/// Calls `$f::<W>($args)` with `W = $words` (2..=28, a stress size in 64-bit words): typed
/// envelopes need the size at compile time.
macro_rules! with_words {
    ($words:expr, $f:ident, $($arg:expr),*) => {
        match $words {
            2 => $f::<2>($($arg),*), 3 => $f::<3>($($arg),*), 4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*), 6 => $f::<6>($($arg),*), 7 => $f::<7>($($arg),*),
            8 => $f::<8>($($arg),*), 9 => $f::<9>($($arg),*), 10 => $f::<10>($($arg),*),
            11 => $f::<11>($($arg),*), 12 => $f::<12>($($arg),*), 13 => $f::<13>($($arg),*),
            14 => $f::<14>($($arg),*), 15 => $f::<15>($($arg),*), 16 => $f::<16>($($arg),*),
            17 => $f::<17>($($arg),*), 18 => $f::<18>($($arg),*), 19 => $f::<19>($($arg),*),
            20 => $f::<20>($($arg),*), 21 => $f::<21>($($arg),*), 22 => $f::<22>($($arg),*),
            23 => $f::<23>($($arg),*), 24 => $f::<24>($($arg),*), 25 => $f::<25>($($arg),*),
            26 => $f::<26>($($arg),*), 27 => $f::<27>($($arg),*), _ => $f::<28>($($arg),*),
        }
    };
}
pub(crate) use with_words;

/// Routes the stress kind into `Envelope<[u64; W]>` and verifies those.
pub fn deliver_envelopes<const W: usize>(app: &mut App, shards: &[Arc<Mutex<Shard>>])
where
    [u64; W]: bytemuck::Pod,
{
    app.add_perdix_envelope::<[u64; W]>(StressProducers::KIND);
    add_verifiers::<Envelope<[u64; W]>>(app, shards);
}

/// One verifier system per shard: shard `i` checks the rings `r` with `r % shards == i`.
///
/// The drain writes a frame's messages ring by ring (each ring's run is contiguous, rings in
/// order), so a verifier finds its rings' runs by binary search over this frame's message ids
/// and reads only those (verifiers that each scanned every message paid for it in memory
/// bandwidth: docs/PERFORMANCE.md, "Verifiers that read only their rings"). Nothing is assumed silently: a message missed or seen
/// twice fails the run (the total must equal what the producers sent).
pub fn add_verifiers<M: StressMessage>(app: &mut App, shards: &[Arc<Mutex<Shard>>]) {
    let mask = shards.len().saturating_sub(1);
    for (index, shard) in shards.iter().enumerate() {
        let shard = Arc::clone(shard);
        let verify = move |messages: Res<Messages<M>>| {
            let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let state = &mut *guard;
            // This frame's messages (the drain in `PreUpdate` is their only writer).
            let end = messages.oldest_message_count() + messages.len();
            let mut id = end - messages.iter_current_update_messages().len();
            while let Some((first, _)) = messages.get_message(id) {
                let ring = first.ring();
                let run_end = run_end(&messages, id, end, ring);
                if ring as usize & mask == index {
                    for at in id..run_end {
                        if let Some((msg, _)) = messages.get_message(at) {
                            check(state, msg);
                        }
                    }
                }
                id = run_end;
            }
        };
        app.add_systems(Update, verify.in_set(Verify));
    }
}

/// The end of the run of ring `ring` that starts at message id `from` (binary search: runs are
/// contiguous and in ring order).
fn run_end<M: StressMessage>(messages: &Messages<M>, from: usize, end: usize, ring: u32) -> usize {
    let (mut lo, mut hi) = (from + 1, end);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match messages.get_message(mid) {
            Some((msg, _)) if msg.ring() <= ring => lo = mid + 1,
            _ => hi = mid,
        }
    }
    lo
}

/// Checks one message in a shard.
#[inline]
fn check<M: StressMessage>(state: &mut Shard, msg: &M) {
    check_parts(
        state,
        msg.kind(),
        msg.ring(),
        msg.producer(),
        msg.stamp_ns(),
        msg.payload(),
    );
}

/// Checks one message, given as its header's fields and its payload.
#[inline]
fn check_parts(
    state: &mut Shard,
    kind: u32,
    ring: u32,
    producer: u32,
    stamp_ns: u64,
    payload: &[u8],
) {
    if kind != StressProducers::KIND {
        state.foreign += 1;
        return;
    }
    // GPU thread ids repeat on every device: track each (ring, thread) stream.
    let stream = stress::stream(ring, producer);
    state.verifier.check_stream(stream, producer, payload);
    state.until_sample -= 1;
    if state.until_sample == 0 {
        state.until_sample = state.sample_every;
        if stamp_ns != 0 {
            let ns = clock::now_ns().saturating_sub(stamp_ns);
            state.latency.record(ns);
            state.latency_window.record(ns);
        }
    }
}

/// Routes the stress kind into `PerdixBatch<[u64; W]>` with headers, one verifier system per
/// shard (one reader item a batch), each value checked with its header by exactly one shard
/// ([`BatchShard`]): with at least as many shards as rings, the shards of a ring split its
/// producer streams, so every verifier has work.
pub fn deliver_batches<const W: usize>(app: &mut App, shards: &[Arc<Mutex<Shard>>])
where
    [u64; W]: bytemuck::Pod,
{
    app.add_perdix_batch_envelope::<[u64; W]>(StressProducers::KIND);
    for (index, shard) in shards.iter().enumerate() {
        let shard = Arc::clone(shard);
        let count = shards.len();
        let verify = move |mut batches: MessageReader<PerdixBatch<[u64; W]>>,
                           rings: Res<PerdixRings>| {
            let mine = BatchShard::new(index, count, rings.rings());
            let mut guard = shard.lock().unwrap_or_else(PoisonError::into_inner);
            let state = &mut *guard;
            for batch in batches.read() {
                if !mine.reads(batch.ring()) {
                    continue;
                }
                // The envelope form carries a header per value; a batch without them, or with
                // a different count, fails the run (its values count as foreign, once).
                match batch.headers() {
                    Some(headers) if headers.len() == batch.len() => {
                        for (value, header) in batch.values().iter().zip(headers) {
                            if mine.checks(header.producer) {
                                check_parts(
                                    state,
                                    header.kind,
                                    header.ring,
                                    header.producer,
                                    header.stamp_ns,
                                    bytemuck::bytes_of(value),
                                );
                            }
                        }
                    }
                    _ if mine.sub == 0 => state.foreign += batch.len() as u64,
                    _ => {}
                }
            }
        };
        app.add_systems(Update, verify.in_set(Verify));
    }
}

/// What batch verifier `index` of `count` (a power of two) checks among `rings` rings: the
/// rings `r` with `r & ring_mask == index & ring_mask`, and of those only the producer streams
/// `p` with `p % split == sub`. With fewer shards than rings each shard takes whole rings
/// (`split` 1); with more, the `count / rings` shards of a ring (rings rounded up to a power
/// of two) take a share of its streams each, reading its batches' headers but checking only
/// their share, so 8 verifiers over 4 rings all work (sharded by ring alone, 4 of them idled).
struct BatchShard {
    ring_mask: usize,
    ring: usize,
    split: u32,
    sub: u32,
}

impl BatchShard {
    fn new(index: usize, count: usize, rings: usize) -> Self {
        let rings = rings.max(1).next_power_of_two().min(count);
        let split = u32::try_from(count / rings).unwrap_or(1).max(1);
        Self {
            ring_mask: rings - 1,
            ring: index & (rings - 1),
            split,
            sub: u32::try_from(index / rings).unwrap_or(0),
        }
    }

    /// Whether batches of ring `ring` are this shard's to read.
    fn reads(&self, ring: u32) -> bool {
        ring as usize & self.ring_mask == self.ring
    }

    /// Whether a message of producer stream `producer` (in a ring it reads) is its to check.
    fn checks(&self, producer: u32) -> bool {
        self.split == 1 || producer % self.split == self.sub
    }
}

/// Messages and bytes verified so far, over every shard.
pub fn verified(shards: &[Arc<Mutex<Shard>>]) -> (u64, u64) {
    shards.iter().fold((0, 0), |(m, b), shard| {
        let report = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .verifier
            .report();
        (m + report.messages, b + report.bytes)
    })
}

/// The shards' latency windows merged (and cleared).
pub fn take_latency_window(shards: &[Arc<Mutex<Shard>>]) -> LatencyHistogram {
    let mut merged = LatencyHistogram::new();
    for shard in shards {
        let mut state = shard.lock().unwrap_or_else(PoisonError::into_inner);
        merged.merge(&state.latency_window);
        state.latency_window.clear();
    }
    merged
}
