//! The transport behind the dashboard: a ring, a paced producer thread and a consumer thread
//! that verifies every message and samples [`Telemetry`] for the panel. The UI turns its knobs
//! through atomics; a capacity change rebuilds the ring and carries the counters over.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perdix_transport::telemetry::{Counters, LatencyHistogram, Telemetry, TelemetrySnapshot};
use perdix_transport::testing::stress::{StressSender, Verifier, VerifyReport};
use perdix_transport::{clock, Buffer, Consumer, Error, Policy, Producer};

use crate::args::Args;

/// Knobs the UI turns and the worker threads read.
#[derive(Debug)]
pub struct Knobs {
    pub rate: AtomicU64,
    pub size: AtomicUsize,
    pub drop_newest: AtomicBool,
    pub paused: AtomicBool,
    pub reset: AtomicBool,
}

/// What the consumer thread shares with the UI.
#[derive(Debug)]
struct Shared {
    telemetry: Telemetry,
    verify: VerifyReport,
}

/// Counters that survive a ring rebuild (capacity change) and are zeroed by "reset".
#[derive(Debug, Clone, Copy, Default)]
struct Carry {
    totals: Counters,
    verify: VerifyReport,
}

/// One ring with its two threads.
#[derive(Debug)]
struct Run {
    stop: Arc<AtomicBool>,
    producer: JoinHandle<u64>,
    consumer: JoinHandle<Carry>,
}

/// The transport behind the dashboard: knobs, shared telemetry and the running ring.
#[derive(Debug)]
pub struct Transport {
    pub knobs: Arc<Knobs>,
    shared: Arc<Mutex<Shared>>,
    capacity: usize,
    run: Option<Run>,
    carry: Carry,
    started: Instant,
}

/// Sampling interval of the telemetry.
pub const TICK: Duration = Duration::from_millis(100);
/// Samples kept: one minute at 10 Hz.
const HISTORY: usize = 600;
/// Latency window: the histogram shows the last 2 s (20 ticks).
const LATENCY_TICKS: usize = 20;

impl Transport {
    pub fn new(args: &Args) -> Result<Self, Error> {
        let mut telemetry = Telemetry::new("host", HISTORY);
        telemetry.set_device("cpu (producer thread)");
        let mut transport = Self {
            knobs: Arc::new(Knobs {
                rate: AtomicU64::new(args.rate),
                size: AtomicUsize::new(args.size),
                drop_newest: AtomicBool::new(args.policy == Policy::DropNewest),
                paused: AtomicBool::new(false),
                reset: AtomicBool::new(false),
            }),
            shared: Arc::new(Mutex::new(Shared {
                telemetry,
                verify: VerifyReport::default(),
            })),
            capacity: args.capacity,
            run: None,
            carry: Carry::default(),
            started: Instant::now(),
        };
        transport.start()?;
        Ok(transport)
    }

    fn start(&mut self) -> Result<(), Error> {
        let policy = if self.knobs.drop_newest.load(Ordering::Relaxed) {
            Policy::DropNewest
        } else {
            Policy::Block
        };
        let (producer, consumer) = Buffer::builder(self.capacity)
            .policy(policy)
            .timestamps(true)
            .build()?
            .into_split();
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let (knobs, stop) = (Arc::clone(&self.knobs), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("perdix-producer".into())
                .spawn(move || produce(producer, &knobs, &stop))
                .map_err(|err| Error::Spawn(err.to_string()))?
        };
        let consumer = {
            let (knobs, shared, carry, t0) = (
                Arc::clone(&self.knobs),
                Arc::clone(&self.shared),
                self.carry,
                self.started,
            );
            std::thread::Builder::new()
                .name("perdix-consumer".into())
                .spawn(move || consume(consumer, &knobs, &shared, carry, t0))
                .map_err(|err| Error::Spawn(err.to_string()))?
        };
        self.run = Some(Run {
            stop,
            producer,
            consumer,
        });
        Ok(())
    }

    pub fn stop(&mut self) {
        if let Some(run) = self.run.take() {
            run.stop.store(true, Ordering::Relaxed);
            // The producer leaves its loop and drops its half; the consumer drains what is left,
            // sees `Disconnected` and returns the counters to carry over.
            let _ = run.producer.join();
            if let Ok(carry) = run.consumer.join() {
                self.carry = carry;
            }
        }
    }

    /// Rebuilds the ring with `capacity` slots (the statistics carry over).
    pub fn set_capacity(&mut self, capacity: usize) -> Result<(), Error> {
        self.stop();
        self.capacity = capacity;
        self.start()
    }

    pub fn snapshot(&self) -> (TelemetrySnapshot, VerifyReport) {
        let shared = self.shared.lock().unwrap_or_else(PoisonError::into_inner);
        (shared.telemetry.snapshot(), shared.verify)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The producer thread: stress messages at the knob's rate and size; returns how many it sent.
fn produce(mut producer: Producer, knobs: &Knobs, stop: &AtomicBool) -> u64 {
    // The library's stress loop: under DropNewest a refused message is retried with its
    // sequence (the GPU kernel's rule), so the verifier sees no gap.
    let Ok(mut sender) = StressSender::new(0, 0, 64) else {
        return 0;
    };
    // Pacing: messages allowed since `epoch` at `epoch_rate`.
    let mut epoch = Instant::now();
    let mut epoch_rate = u64::MAX;
    let mut sent_in_epoch = 0u64;
    while !stop.load(Ordering::Relaxed) {
        if knobs.paused.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(10));
            epoch_rate = u64::MAX; // restart pacing after the pause
            continue;
        }
        let policy = if knobs.drop_newest.load(Ordering::Relaxed) {
            Policy::DropNewest
        } else {
            Policy::Block
        };
        if producer.policy() != policy {
            producer.set_policy(policy);
        }
        let size = knobs.size.load(Ordering::Relaxed);
        if sender.set_size(size).is_err() {
            let _ = sender.set_size(64);
        }
        let rate = knobs.rate.load(Ordering::Relaxed);
        if rate != epoch_rate {
            epoch = Instant::now();
            epoch_rate = rate;
            sent_in_epoch = 0;
        }
        let batch = if rate == 0 {
            1024
        } else {
            let allowed = (epoch.elapsed().as_secs_f64() * rate as f64) as u64;
            if allowed <= sent_in_epoch {
                let ahead =
                    (sent_in_epoch + 1) as f64 / rate as f64 - epoch.elapsed().as_secs_f64();
                std::thread::sleep(Duration::from_secs_f64(ahead.clamp(0.0, 0.002)));
                continue;
            }
            (allowed - sent_in_epoch).min(1024)
        };
        // Drops count toward the pace, as attempts.
        if sender.send(&mut producer, batch).is_err() {
            return sender.sent();
        }
        sent_in_epoch += batch;
    }
    sender.sent()
}

/// The consumer thread: drains, verifies, measures latency, samples telemetry every tick.
fn consume(
    mut consumer: Consumer,
    knobs: &Knobs,
    shared: &Mutex<Shared>,
    mut carry: Carry,
    t0: Instant,
) -> Carry {
    let monitor = consumer.monitor();
    let mut verifier = Verifier::new(false);
    let mut window: VecDeque<LatencyHistogram> = VecDeque::with_capacity(LATENCY_TICKS + 1);
    let mut tick_latency = LatencyHistogram::new();
    let mut messages = 0u64;
    let mut bytes = 0u64;
    // Ring counters and verifier report at the previous tick, to add deltas to `carry`.
    let mut last_stats = monitor.stats();
    let mut last_report = VerifyReport::default();
    let mut next_tick = Instant::now();
    let mut idle = 0u32;
    loop {
        let drained = consumer.drain_checked(4096, |msg| {
            let payload = msg.payload();
            verifier.check(msg.producer(), payload);
            tick_latency.record(clock::now_ns().saturating_sub(msg.stamp_ns()));
            messages += 1;
            bytes += payload.len() as u64;
        });
        let done = match drained {
            Ok(0) => {
                idle += 1;
                if idle > 64 {
                    std::thread::sleep(Duration::from_micros(200));
                } else {
                    std::thread::yield_now();
                }
                false
            }
            Ok(_) => {
                idle = 0;
                false
            }
            Err(_) => true, // Disconnected (producer gone, ring empty) or a corrupt slot
        };
        let now = Instant::now();
        if now < next_tick && !done {
            continue;
        }
        next_tick = now + TICK;

        let stats = monitor.stats();
        let report = verifier.report();
        let reset = knobs.reset.swap(false, Ordering::Relaxed);
        if reset {
            carry = Carry::default();
            window.clear();
        } else {
            carry.totals.messages += messages;
            carry.totals.bytes += bytes;
            carry.totals.stalls += stats.stalls - last_stats.stalls;
            carry.totals.drops += stats.drops - last_stats.drops;
            add_report(&mut carry.verify, &report, &last_report);
        }
        (messages, bytes, last_stats, last_report) = (0, 0, stats, report);
        carry.totals.occupancy = stats.occupancy();
        carry.totals.capacity = stats.capacity;

        window.push_back(std::mem::take(&mut tick_latency));
        if window.len() > LATENCY_TICKS {
            window.pop_front();
        }
        let mut guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if reset {
            guard.telemetry.reset();
        }
        guard
            .telemetry
            .update(now.duration_since(t0).as_secs_f64(), carry.totals);
        let latency = guard.telemetry.latency_mut();
        latency.clear();
        for hist in &window {
            latency.merge(hist);
        }
        guard.verify = carry.verify;
        drop(guard);
        if done {
            return carry;
        }
    }
}

/// `total += now - before`, field by field.
fn add_report(total: &mut VerifyReport, now: &VerifyReport, before: &VerifyReport) {
    total.messages += now.messages - before.messages;
    total.bytes += now.bytes - before.bytes;
    total.lost += now.lost.saturating_sub(before.lost);
    total.duplicates += now.duplicates - before.duplicates;
    total.reordered += now.reordered - before.reordered;
    total.corrupt += now.corrupt - before.corrupt;
}
