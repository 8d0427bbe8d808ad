//! The command line.

use std::path::PathBuf;

use clap::Parser;
use perdix_transport::Policy;

/// Live dashboard over a running perdix transport.
#[derive(Debug, Parser)]
pub struct Args {
    /// Producer rate in messages per second (0: as fast as it goes).
    #[arg(long, default_value_t = 1_000_000)]
    pub rate: u64,
    /// Message size in bytes (a multiple of 8 in 16..=224).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Ring capacity in slots (a power of two).
    #[arg(long, default_value_t = 4096)]
    pub capacity: usize,
    /// Backpressure policy: block or drop-newest.
    #[arg(long, default_value_t = Policy::Block)]
    pub policy: Policy,
    /// Save a PNG of the window to this path after `--screenshot-after` seconds, then exit.
    #[arg(long)]
    pub screenshot: Option<PathBuf>,
    /// Seconds to run before taking the screenshot.
    #[arg(long, default_value_t = 8.0)]
    pub screenshot_after: f64,
    /// Run this many seconds, then exit (0: until the window is closed).
    #[arg(long, default_value_t = 0.0)]
    pub exit_after: f64,
    /// Window size in points, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x900")]
    pub window: String,
}
