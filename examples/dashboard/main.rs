//! Interactive dashboard: runs the transport and shows it live in a [`PerdixPanel`].
//!
//! A CPU producer thread writes stress messages ([`perdix_transport::testing::stress::fill`]) into a
//! ring; a consumer thread drains it, checks every message with a
//! [`Verifier`](perdix_transport::testing::stress::Verifier), measures one-way latency from the slot
//! stamps and samples [`Telemetry`] ten times a second. The left panel changes the producer rate,
//! message size, ring capacity (the ring is rebuilt) and policy live, pauses and resumes, and
//! resets the statistics.
//!
//! ```text
//! cargo run --release --example dashboard --features dashboard
//! cargo run --release --example dashboard --features dashboard -- --rate 2000000 --policy drop-newest
//! # screenshot (used by scripts/screenshots.sh under Xvfb):
//! cargo run --release --example dashboard --features dashboard -- --screenshot assets/dashboard.png
//! ```
//!
//! Producers run on the CPU: the CUDA producers are not wired into this example yet.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use perdix_transport::dashboard::egui;
use perdix_transport::dashboard::PerdixPanel;
use perdix_transport::telemetry::{LatencyHistogram, Telemetry, TelemetrySnapshot, Totals};
use perdix_transport::testing::stress::{self, StressSender, Verifier, VerifyReport};
use perdix_transport::{clock, Buffer, Consumer, Error, Policy, Producer};

/// Live dashboard over a running perdix transport.
#[derive(Debug, Parser)]
struct Args {
    /// Producer rate in messages per second (0: as fast as it goes).
    #[arg(long, default_value_t = 1_000_000)]
    rate: u64,
    /// Message size in bytes (a multiple of 8 in 16..=224).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Ring capacity in slots (a power of two).
    #[arg(long, default_value_t = 4096)]
    capacity: usize,
    /// Backpressure policy: block or drop-newest.
    #[arg(long, default_value_t = Policy::Block)]
    policy: Policy,
    /// Save a PNG of the window to this path after `--screenshot-after` seconds, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Seconds to run before taking the screenshot.
    #[arg(long, default_value_t = 8.0)]
    screenshot_after: f64,
    /// Run this many seconds, then exit (0: until the window is closed).
    #[arg(long, default_value_t = 0.0)]
    exit_after: f64,
    /// Window size in points, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x900")]
    window: String,
}

/// Knobs the UI turns and the worker threads read.
#[derive(Debug)]
struct Knobs {
    rate: AtomicU64,
    size: AtomicUsize,
    drop_newest: AtomicBool,
    paused: AtomicBool,
    reset: AtomicBool,
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
    totals: Totals,
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
struct Transport {
    knobs: Arc<Knobs>,
    shared: Arc<Mutex<Shared>>,
    capacity: usize,
    run: Option<Run>,
    carry: Carry,
    started: Instant,
}

/// Sampling interval of the telemetry.
const TICK: Duration = Duration::from_millis(100);
/// Samples kept: one minute at 10 Hz.
const HISTORY: usize = 600;
/// Latency window: the histogram shows the last 2 s (20 ticks).
const LATENCY_TICKS: usize = 20;

impl Transport {
    fn new(args: &Args) -> Result<Self, Error> {
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
                .map_err(|_| Error::Disconnected)?
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
                .map_err(|_| Error::Disconnected)?
        };
        self.run = Some(Run {
            stop,
            producer,
            consumer,
        });
        Ok(())
    }

    fn stop(&mut self) {
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
    fn set_capacity(&mut self, capacity: usize) -> Result<(), Error> {
        self.stop();
        self.capacity = capacity;
        self.start()
    }

    fn snapshot(&self) -> (TelemetrySnapshot, VerifyReport) {
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
            carry.totals.stalls += stats.full_events - last_stats.full_events;
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

/// Panel cost per frame: the last values, for the frame-time counter.
#[derive(Debug, Default)]
struct FrameCost {
    recent: VecDeque<f64>,
    all: Vec<f64>,
}

impl FrameCost {
    fn push(&mut self, ms: f64) {
        if self.recent.len() == 120 {
            self.recent.pop_front();
        }
        self.recent.push_back(ms);
        self.all.push(ms);
    }

    fn mean_recent(&self) -> f64 {
        if self.recent.is_empty() {
            0.0
        } else {
            self.recent.iter().sum::<f64>() / self.recent.len() as f64
        }
    }

    fn summary(&self) -> String {
        let mut sorted = self.all.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return "panel cost: no frames".into();
        }
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let q = |p: f64| sorted[((n - 1) as f64 * p) as usize];
        format!(
            "panel cost over {n} frames: mean {mean:.3} ms, p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            q(0.5),
            q(0.99),
            sorted[n - 1]
        )
    }
}

const CAPACITIES: [usize; 8] = [64, 256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576];

struct DashboardApp {
    transport: Transport,
    rate: f64,
    unlimited: bool,
    size: usize,
    capacity: usize,
    drop_newest: bool,
    paused: bool,
    error: Option<String>,
    cost: FrameCost,
    screenshot: Option<(PathBuf, f64)>,
    screenshot_sent: bool,
    exit_after: f64,
    started: Instant,
}

impl DashboardApp {
    fn knobs(&mut self, ui: &mut egui::Ui, verify: &VerifyReport) {
        let knobs = Arc::clone(&self.transport.knobs);
        ui.heading("producer");
        ui.add_enabled(
            !self.unlimited,
            egui::Slider::new(&mut self.rate, 1_000.0..=50_000_000.0)
                .logarithmic(true)
                .text("msg/s"),
        );
        ui.checkbox(&mut self.unlimited, "unlimited rate");
        let rate = if self.unlimited { 0 } else { self.rate as u64 };
        knobs.rate.store(rate, Ordering::Relaxed);

        ui.add(
            egui::Slider::new(
                &mut self.size,
                stress::MIN_SIZE..=perdix_transport::layout::PAYLOAD_MAX,
            )
            .step_by(8.0)
            .text("bytes/msg"),
        );
        knobs.size.store(self.size, Ordering::Relaxed);

        ui.separator();
        ui.heading("ring");
        let before = self.capacity;
        egui::ComboBox::from_label("slots")
            .selected_text(self.capacity.to_string())
            .show_ui(ui, |ui| {
                for cap in CAPACITIES {
                    ui.selectable_value(&mut self.capacity, cap, cap.to_string());
                }
            });
        if self.capacity != before {
            if let Err(err) = self.transport.set_capacity(self.capacity) {
                self.error = Some(err.to_string());
            }
        }
        ui.horizontal(|ui| {
            ui.label("policy");
            ui.radio_value(&mut self.drop_newest, false, "block");
            ui.radio_value(&mut self.drop_newest, true, "drop-newest");
        });
        knobs.drop_newest.store(self.drop_newest, Ordering::Relaxed);

        ui.separator();
        ui.horizontal(|ui| {
            let label = if self.paused {
                "▶ resume"
            } else {
                "⏸ pause"
            };
            if ui.button(label).clicked() {
                self.paused = !self.paused;
                knobs.paused.store(self.paused, Ordering::Relaxed);
            }
            if ui.button("⟲ reset stats").clicked() {
                knobs.reset.store(true, Ordering::Relaxed);
            }
        });

        ui.separator();
        ui.heading("verification");
        let clean = verify.is_clean();
        ui.colored_label(
            if clean {
                egui::Color32::from_rgb(80, 200, 120)
            } else {
                egui::Color32::from_rgb(235, 80, 70)
            },
            if clean {
                "every message intact"
            } else {
                "ERRORS"
            },
        );
        egui::Grid::new("verify").num_columns(2).show(ui, |ui| {
            for (name, value) in [
                ("checked", verify.messages),
                ("lost", verify.lost),
                ("duplicates", verify.duplicates),
                ("reordered", verify.reordered),
                ("corrupt", verify.corrupt),
            ] {
                ui.label(name);
                ui.label(value.to_string());
                ui.end_row();
            }
        });
        if let Some(err) = &self.error {
            ui.colored_label(egui::Color32::from_rgb(235, 80, 70), err);
        }

        ui.separator();
        ui.label(format!("panel: {:.3} ms/frame", self.cost.mean_recent()));
    }

    fn screenshot(&mut self, ctx: &egui::Context) {
        let Some((path, after)) = &self.screenshot else {
            return;
        };
        let image = ctx.input(|i| {
            i.events.iter().find_map(|e| match e {
                egui::Event::Screenshot { image, .. } => Some(Arc::clone(image)),
                _ => None,
            })
        });
        if let Some(image) = image {
            match save_png(path, &image) {
                Ok(()) => eprintln!("screenshot saved to {}", path.display()),
                Err(err) => eprintln!("screenshot to {} failed: {err}", path.display()),
            }
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        } else if !self.screenshot_sent && self.started.elapsed().as_secs_f64() >= *after {
            self.screenshot_sent = true;
            ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(egui::UserData::default()));
        }
    }
}

fn save_png(path: &std::path::Path, image: &egui::ColorImage) -> std::io::Result<()> {
    let file = std::fs::File::create(path)?;
    let [w, h] = image.size;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(std::io::Error::other)?;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    writer
        .write_image_data(&bytes)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

impl eframe::App for DashboardApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        let (snapshot, verify) = self.transport.snapshot();
        egui::Panel::left("knobs")
            .resizable(false)
            .default_size(260.0)
            .show(ui, |ui| self.knobs(ui, &verify));
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                let start = Instant::now();
                ui.add(PerdixPanel::new(&snapshot).plot_height(130.0));
                self.cost.push(start.elapsed().as_secs_f64() * 1e3);
            });
        });
        self.screenshot(&ctx);
        if self.exit_after > 0.0 && self.started.elapsed().as_secs_f64() >= self.exit_after {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
        ctx.request_repaint_after(TICK);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        eprintln!("{}", self.cost.summary());
        self.transport.stop();
        let (_, verify) = self.transport.snapshot();
        eprintln!("verification: {verify:?}");
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    perdix_transport::testing::init_logging("info");
    let args = Args::parse();
    if !stress::valid_size(args.size) {
        return Err(format!("--size {} is not a multiple of 8 in 16..=224", args.size).into());
    }
    let (w, h) = args
        .window
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<f32>().ok()?, h.parse::<f32>().ok()?)))
        .ok_or("--window must be WIDTHxHEIGHT")?;
    let transport = Transport::new(&args)?;
    let app = DashboardApp {
        transport,
        rate: args.rate.max(1_000) as f64,
        unlimited: args.rate == 0,
        size: args.size,
        capacity: args.capacity,
        drop_newest: args.policy == Policy::DropNewest,
        paused: false,
        error: None,
        cost: FrameCost::default(),
        screenshot: args.screenshot.map(|p| (p, args.screenshot_after)),
        screenshot_sent: false,
        exit_after: args.exit_after,
        started: Instant::now(),
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("perdix dashboard")
            .with_inner_size([w, h]),
        ..eframe::NativeOptions::default()
    };
    eframe::run_native(
        "perdix dashboard",
        options,
        Box::new(move |_cc| Ok(Box::new(app))),
    )?;
    Ok(())
}
