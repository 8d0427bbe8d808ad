//! Live dashboard: [`PerdixPanel`], an egui widget over a
//! [`TelemetrySnapshot`](crate::telemetry::TelemetrySnapshot).
//!
//! The panel plots messages and bytes per second over the last minute (egui_plot), shows ring
//! occupancy, stalls and drops per second, a latency histogram with p50/p99/p99.9 marked, and the
//! backend and device, colored by [`Health`] so that backpressure (amber) and drops (red) stand
//! out. It reads only a snapshot, so the same widget is drawn by the `dashboard` example
//! (eframe, glow renderer), inside a Bevy window by the `overlay` feature (bevy_egui), and
//! headlessly by the tests.
//!
//! One egui version (0.36) serves the whole crate; it is re-exported as [`egui`] so that callers
//! add the panel to a `Ui` of the same version.
//!
//! # Examples
//!
//! ```
//! use perdix_transport::dashboard::{egui, PerdixPanel};
//! use perdix_transport::telemetry::TelemetrySnapshot;
//!
//! // An empty snapshot (nothing measured yet) lays out too.
//! let snapshot = TelemetrySnapshot::default();
//! let ctx = egui::Context::default();
//! let output = ctx.run_ui(egui::RawInput::default(), |ui| {
//!     ui.add(PerdixPanel::new(&snapshot));
//! });
//! # output.drop_without_applying_deltas();
//! ```
#![forbid(unsafe_code)]

mod format;
mod health;
#[cfg(feature = "overlay")]
mod overlay;
mod palette;
mod panel;
mod plots;
mod series;

pub use egui;
pub use egui_plot;
pub use health::Health;
#[cfg(feature = "overlay")]
pub use overlay::{PerdixOverlay, PerdixOverlayPlugin};
pub use panel::PerdixPanel;
