//! [`init_logging`]: the one tracing-subscriber setup of the examples and the bins.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Sends `tracing` output to stderr (stdout stays the program's own), filtered by `RUST_LOG`,
/// or by `default_filter` when `RUST_LOG` is unset or does not parse; in colour only when stderr
/// is a terminal (a log redirected to a file has no escape codes in it).
///
/// The examples pass `"info"` (the library logs its backend choice once at `info`); the bins
/// pass `"error"`, so that only failures interrupt their tables. Does nothing when a global
/// subscriber is already installed (a second call, or a test harness that set one).
///
/// # Examples
///
/// ```
/// perdix_transport::testing::init_logging("info");
/// tracing::info!("goes to stderr");
/// // A second call keeps the first subscriber.
/// perdix_transport::testing::init_logging("error");
/// ```
pub fn init_logging(default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // `try_init`: an `Err` means a subscriber is already set, which is fine (see above).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .try_init();
}
