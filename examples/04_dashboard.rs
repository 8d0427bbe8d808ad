//! 04 — the dashboard panel over a ring.
//!
//! A producer thread sends timestamped messages into a ring in bursts of about 400,000 a
//! second. The UI thread drains the ring once a frame (at most a budget), turns the counts into
//! a [`Telemetry`] sample every 100 ms and draws a [`PerdixPanel`] over its snapshot: rates,
//! ring fill, stalls (the burst outruns a 4096-slot ring drained 60 times a second, so it shows
//! backpressure) and the one-way latency histogram.
//!
//! The panel only reads a [`TelemetrySnapshot`]: it is an ordinary egui widget. Here it runs in
//! an eframe window, or with `--headless` in an egui context with no window at all (as the
//! crate's tests draw it), printing what it showed.
//!
//! ```text
//! cargo run --example 04_dashboard --features dashboard
//! cargo run --example 04_dashboard --features dashboard -- --headless
//! ```
//!
//! The `dashboard` example is the full tool (knobs, verification, screenshots); inside a Bevy
//! app, `PerdixOverlayPlugin` draws the same panel (feature `overlay`).

use std::thread;
use std::time::{Duration, Instant};

use perdix_transport::dashboard::{egui, Health, PerdixPanel};
use perdix_transport::telemetry::{Counters, Telemetry, TelemetrySnapshot};
use perdix_transport::{clock, Buffer, Consumer, Error, Producer};

/// Most messages taken out of the ring per frame.
const BUDGET: usize = 8192;
/// Telemetry sampling interval.
const TICK: Duration = Duration::from_millis(100);

/// The consumer side: the ring and the telemetry recorder.
struct Feed {
    consumer: Consumer,
    telemetry: Telemetry,
    started: Instant,
    next_sample: Instant,
}

impl Feed {
    /// A 4096-slot ring with a producer thread on the other end.
    fn start() -> Result<Self, Error> {
        let (producer, consumer) = Buffer::builder(4096).timestamps(true).build()?.into_split();
        thread::Builder::new()
            .name("producer".into())
            .spawn(move || produce(producer))
            .map_err(|err| Error::Spawn(err.to_string()))?;
        let mut telemetry = Telemetry::new("host", 600);
        telemetry.set_device("cpu (producer thread)");
        let now = Instant::now();
        Ok(Self {
            consumer,
            telemetry,
            started: now,
            next_sample: now,
        })
    }

    /// Drains what is ready, every [`TICK`] adds a sample, and returns the panel's snapshot.
    fn poll(&mut self) -> TelemetrySnapshot {
        let telemetry = &mut self.telemetry;
        self.consumer.drain(BUDGET, |msg| {
            telemetry.record_latency(clock::now_ns().saturating_sub(msg.stamp_ns()));
        });
        let now = Instant::now();
        if now >= self.next_sample {
            self.next_sample = now + TICK;
            // The ring counts what its consumer took: messages, bytes, stalls, drops, fill.
            let counters = Counters::from(self.consumer.stats());
            telemetry.update((now - self.started).as_secs_f64(), counters);
        }
        telemetry.snapshot()
    }
}

/// Bursts of 2000 64-byte messages every 5 ms, until the consumer is gone.
fn produce(mut producer: Producer) {
    let payload = [0u8; 64];
    loop {
        for _ in 0..2000 {
            // Waits while the ring is full (a stall); `Err(Disconnected)` once the UI is gone.
            if producer.produce(&payload).is_err() {
                return;
            }
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// The eframe app: one panel over the feed, redrawn continuously.
struct Viewer(Feed);

impl eframe::App for Viewer {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let snapshot = self.0.poll();
        egui::CentralPanel::default().show(ui, |ui| {
            ui.add(PerdixPanel::new(&snapshot));
        });
        ui.ctx().request_repaint();
    }
}

/// Two seconds of frames with no window; prints the panel's state.
fn headless(mut feed: Feed) {
    let ctx = egui::Context::default();
    let start = Instant::now();
    let mut snapshot = TelemetrySnapshot::default();
    while start.elapsed() < Duration::from_secs(2) {
        snapshot = feed.poll();
        let output = ctx.run_ui(egui::RawInput::default(), |ui| {
            ui.add(PerdixPanel::new(&snapshot));
        });
        output.drop_without_applying_deltas(); // no renderer to upload the font atlas to
        thread::sleep(Duration::from_millis(16));
    }
    let latest = snapshot.latest();
    println!(
        "04_dashboard: the panel showed {} ({:.0} msg/s, ring {:.0}% full, {} stalls, latency p50 {} ns) after {} messages",
        Health::of(&snapshot).label(),
        latest.msgs_per_sec,
        latest.occupancy * 100.0,
        snapshot.totals.stalls,
        snapshot.latency.p50_ns,
        snapshot.totals.messages,
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let feed = Feed::start()?;
    if std::env::args().any(|arg| arg == "--headless") {
        headless(feed);
        return Ok(());
    }
    let options = eframe::NativeOptions::default();
    eframe::run_native(
        "perdix: 04_dashboard",
        options,
        Box::new(|_cc| Ok(Box::new(Viewer(feed)))),
    )?;
    Ok(())
}
