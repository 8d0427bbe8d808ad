//! CPU load generators shared by the bins (`transport_test`, `benchmark`), benches and examples:
//! a verified two-thread throughput run and an echo-thread round trip.
//!
//! These are measurement tools, kept in the library so every front end runs the same code.

use std::thread;
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

use super::stress::{self, StressSender, Throughput, Verifier, VerifyReport};
use crate::telemetry::LatencyHistogram;
use crate::{clock, Buffer, Error, Policy};

/// A two-thread throughput run: one producer thread, one consumer (the calling thread).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpscRun {
    /// Ring capacity in slots.
    pub capacity: usize,
    /// Message size in bytes (a [`stress::valid_size`]).
    pub size: usize,
    /// Messages to send (`None`: until `duration` has passed).
    pub messages: Option<u64>,
    /// How long to run when `messages` is `None`.
    pub duration: Duration,
    /// Policy of the producer's blocking `produce`.
    pub policy: Policy,
    /// Check every word of every message (otherwise the first and last 16 bytes).
    pub full_check: bool,
    /// Stamp messages and collect one-way latency.
    pub latency: bool,
}

impl Default for SpscRun {
    fn default() -> Self {
        Self {
            capacity: 4096,
            size: 32,
            messages: Some(1_000_000),
            duration: Duration::from_secs(1),
            policy: Policy::Block,
            full_check: false,
            latency: false,
        }
    }
}

/// What an [`SpscRun`] measured.
#[derive(Debug, Clone)]
pub struct SpscReport {
    /// Messages the producer sent.
    pub sent: u64,
    /// Attempts the ring refused (`DropNewest`), each retried with its sequence.
    pub dropped: u64,
    /// Verification of everything received.
    pub verify: VerifyReport,
    /// Wall time from the first send to the last receive.
    pub elapsed: Duration,
    /// One-way latency (empty unless asked for).
    pub latency: LatencyHistogram,
}

impl Throughput for SpscReport {
    fn verified(&self) -> (&VerifyReport, Duration) {
        (&self.verify, self.elapsed)
    }
}

impl SpscRun {
    /// Runs it, calling `progress` about once a second with the report so far.
    ///
    /// Under `DropNewest` a message the ring refuses is retried with the same sequence (the
    /// GPU kernel's rule, [`StressSender`]): drops show in `dropped`, never as losses.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] for a bad capacity; [`Error::InvalidConfig`] for a size that is
    /// not a valid stress size; [`Error::Spawn`] or [`Error::Panicked`] for the producer thread;
    /// a consumer error other than the end of the stream (a corrupt slot).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::testing::harness::SpscRun;
    ///
    /// let report = SpscRun { messages: Some(10_000), ..SpscRun::default() }.run(|_| {})?;
    /// assert_eq!(report.verify.messages, 10_000);
    /// assert!(report.verify.is_clean());
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    pub fn run(&self, mut progress: impl FnMut(&SpscReport)) -> Result<SpscReport, Error> {
        stress::check_size_for(self.size, self.capacity)?;
        let (mut producer, mut consumer) = Buffer::builder(self.capacity)
            .policy(self.policy)
            .timestamps(self.latency)
            .build()?
            .into_split();
        let run = *self;
        let start = Instant::now();
        let mut sender = StressSender::new(0, 0, self.size)?;
        let sender = spawn("perdix-spsc-producer", move || {
            let deadline = start + run.duration;
            loop {
                let attempts = match run.messages {
                    Some(n) if sender.sent() >= n => break,
                    Some(n) => (n - sender.sent()).min(1024),
                    None if Instant::now() >= deadline => break,
                    None => 1024,
                };
                if sender.send(&mut producer, attempts).is_err() {
                    break;
                }
            }
            (sender.sent(), sender.dropped())
        })?;
        let mut verifier = Verifier::new(self.full_check);
        let mut latency = LatencyHistogram::new();
        let mut last_progress = Instant::now();
        let backoff = Backoff::new();
        loop {
            let got = consumer.drain_checked(4096, |msg| {
                verifier.check(msg.producer(), &msg);
                if run.latency {
                    latency.record(clock::now_ns().saturating_sub(msg.stamp_ns()));
                }
            });
            match got {
                Ok(0) => backoff.snooze(),
                Ok(_) => backoff.reset(),
                Err(Error::Disconnected) => break,
                Err(err) => return Err(err),
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                progress(&SpscReport {
                    sent: consumer.position(),
                    dropped: consumer.stats().drops,
                    verify: verifier.report(),
                    elapsed: start.elapsed(),
                    latency: LatencyHistogram::new(),
                });
            }
        }
        let elapsed = start.elapsed();
        let (sent, dropped) = sender
            .join()
            .map_err(|_| Error::Panicked("the SPSC run's producer thread".into()))?;
        // Every sequence number below `sent` must arrive: a dropped message was retried with
        // its sequence (the kernel's rule), so a gap is a real loss.
        let verify = verifier.finish(&[sent]);
        Ok(SpscReport {
            sent,
            dropped,
            verify,
            elapsed,
            latency,
        })
    }
}

/// Slots of each of the round trip's two rings.
const ROUND_TRIP_CAPACITY: usize = 64;

/// Round trips through two rings and an echo thread: `samples` timed, after `warmup` untimed.
///
/// Each message carries its send time; the echo thread sends it straight back; the time is
/// taken when it returns. Messages are `size` bytes.
///
/// # Errors
///
/// As [`Buffer::new`]; [`Error::MessageTooLarge`] above the largest message of its 64-slot rings,
/// [`Error::InvalidConfig`] below 8 bytes (the send time); [`Error::Spawn`] or
/// [`Error::Panicked`] for the echo thread.
///
/// # Examples
///
/// ```
/// let hist = perdix_transport::testing::harness::round_trip(1_000, 100, 8)?;
/// assert_eq!(hist.len(), 1_000);
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub fn round_trip(samples: u64, warmup: u64, size: usize) -> Result<LatencyHistogram, Error> {
    let max = crate::layout::max_message(ROUND_TRIP_CAPACITY);
    if size > max {
        return Err(Error::too_large_for(size, max));
    }
    if size < 8 {
        return Err(Error::InvalidConfig(format!(
            "round-trip size {size}: at least 8 bytes (the send time)"
        )));
    }
    let (mut ping_tx, mut ping_rx) = Buffer::new(ROUND_TRIP_CAPACITY)?.into_split();
    let (mut pong_tx, mut pong_rx) = Buffer::new(ROUND_TRIP_CAPACITY)?.into_split();
    let echo = spawn("perdix-echo", move || -> Result<(), Error> {
        loop {
            let msg = match ping_rx.consume() {
                Ok(msg) => msg,
                Err(Error::Disconnected) => return Ok(()),
                Err(err) => return Err(err),
            };
            pong_tx.produce(&msg)?;
        }
    })?;
    let mut hist = LatencyHistogram::new();
    let mut buf = vec![0u8; size];
    for i in 0..warmup + samples {
        let t0 = clock::now_ns();
        buf[..8].copy_from_slice(&t0.to_le_bytes());
        ping_tx.produce(&buf[..size])?;
        let back = pong_rx.consume()?;
        let t1 = clock::now_ns();
        if back.len() != size || back[..8] != t0.to_le_bytes() {
            return Err(Error::Corrupt {
                pos: back.seq(),
                seq: back.seq() + 1,
                len: back.len() as u32,
            });
        }
        if i >= warmup {
            hist.record(t1 - t0);
        }
    }
    drop(ping_tx);
    match echo.join() {
        Ok(result) => result?,
        Err(_) => return Err(Error::Panicked("the round trip's echo thread".into())),
    }
    Ok(hist)
}

/// A named thread, or [`Error::Spawn`] with the OS's reason.
fn spawn<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, Error> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|err| Error::Spawn(err.to_string()))
}
