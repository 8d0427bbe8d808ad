//! Interactive dashboard: runs the transport and shows it live in a `PerdixPanel`.
//!
//! A CPU producer thread writes stress messages ([`perdix_transport::testing::stress::fill`]) into a
//! ring; a consumer thread drains it, checks every message with a
//! [`Verifier`](perdix_transport::testing::stress::Verifier), measures one-way latency from the slot
//! stamps and samples `Telemetry` ten times a second. The left panel changes the producer rate,
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
//!
//! - `transport.rs`: the ring, its producer and consumer threads, the knobs they read;
//! - `app.rs`: the window (knobs, panel, screenshot);
//! - `args.rs`: the command line.

use std::time::Instant;

use clap::Parser;
use perdix_transport::dashboard::egui;
use perdix_transport::testing::stress;
use perdix_transport::Policy;

mod app;
mod args;
mod transport;

use app::{DashboardApp, FrameCost};
use args::Args;
use transport::Transport;

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
