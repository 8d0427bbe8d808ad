//! `perdix/*` diagnostics through bevy_diagnostic.

use bevy_app::App;
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::system::{Local, ResMut};

use super::drain::PerdixRing;
use crate::clock;

/// Rates are sampled at most this often (a per-frame rate at thousands of frames a second is
/// mostly quantisation noise).
const SAMPLE_EVERY_NS: u64 = 100_000_000;

/// The paths of the plugin's diagnostics (in [`DiagnosticsStore`](bevy_diagnostic::DiagnosticsStore)).
///
/// Rates are over ~100 ms windows; latency is the producer's stamp to the drain, sampled on one
/// stamped message in 64.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
/// use perdix_transport::bevy::{PerdixDiagnostics, PerdixPlugin};
///
/// let mut app = App::new();
/// app.add_plugins((DiagnosticsPlugin, PerdixPlugin::default()));
/// app.update();
/// let store = app.world().resource::<DiagnosticsStore>();
/// assert!(store.get(&PerdixDiagnostics::MSGS_PER_SEC).is_some());
/// assert_eq!(PerdixDiagnostics::MSGS_PER_SEC.as_str(), "perdix/msgs_per_sec");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct PerdixDiagnostics;

impl PerdixDiagnostics {
    /// Messages taken out of the rings per second.
    pub const MSGS_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/msgs_per_sec");
    /// Payload bytes taken out of the rings per second.
    pub const BYTES_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/bytes_per_sec");
    /// Median one-way latency (producer stamp to drain), µs.
    pub const LATENCY_P50_US: DiagnosticPath = DiagnosticPath::const_new("perdix/latency_p50_us");
    /// 99th-percentile one-way latency, µs.
    pub const LATENCY_P99_US: DiagnosticPath = DiagnosticPath::const_new("perdix/latency_p99_us");
    /// Ring fill over all rings, percent.
    pub const OCCUPANCY: DiagnosticPath = DiagnosticPath::const_new("perdix/occupancy");
    /// Times a producer found its ring full, per second.
    pub const STALLS_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/stalls_per_sec");
    /// Messages dropped by `DropNewest`, per second.
    pub const DROPS_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/drops_per_sec");
    /// Messages of unregistered kinds, per second.
    pub const UNROUTED_PER_SEC: DiagnosticPath =
        DiagnosticPath::const_new("perdix/unrouted_per_sec");
    /// Ready messages the budget left in the rings at the end of the latest frame.
    pub const DEFERRED: DiagnosticPath = DiagnosticPath::const_new("perdix/deferred");

    /// Every path with its unit suffix.
    pub const ALL: [(DiagnosticPath, &'static str); 9] = [
        (Self::MSGS_PER_SEC, " msg/s"),
        (Self::BYTES_PER_SEC, " B/s"),
        (Self::LATENCY_P50_US, " us"),
        (Self::LATENCY_P99_US, " us"),
        (Self::OCCUPANCY, "%"),
        (Self::STALLS_PER_SEC, "/s"),
        (Self::DROPS_PER_SEC, "/s"),
        (Self::UNROUTED_PER_SEC, "/s"),
        (Self::DEFERRED, " msgs"),
    ];
}

pub(crate) fn register(app: &mut App) {
    for (path, suffix) in PerdixDiagnostics::ALL {
        app.register_diagnostic(Diagnostic::new(path).with_suffix(suffix));
    }
}

/// Ends the frame's drain accounting and, every ~100 ms, adds a measurement to each diagnostic.
pub(crate) fn measure(
    mut diagnostics: Diagnostics,
    ring: Option<ResMut<PerdixRing>>,
    mut start: Local<Option<u64>>,
    mut last: Local<u64>,
) {
    let Some(mut ring) = ring else {
        return;
    };
    ring.end_frame();
    let now = clock::now_ns();
    let start = *start.get_or_insert(now);
    if *last != 0 && now - *last < SAMPLE_EVERY_NS {
        return;
    }
    let first = *last == 0;
    *last = now;
    let (sample, window) = ring.sample((now - start) as f64 * 1e-9);
    if first {
        return; // the first sample only sets the baseline
    }
    let deferred = ring.stats().deferred as f64;
    diagnostics.add_measurement(&PerdixDiagnostics::MSGS_PER_SEC, || sample.msgs_per_sec);
    diagnostics.add_measurement(&PerdixDiagnostics::BYTES_PER_SEC, || sample.bytes_per_sec);
    if !window.is_empty() {
        diagnostics.add_measurement(&PerdixDiagnostics::LATENCY_P50_US, || {
            window.quantile_ns(0.50) as f64 / 1e3
        });
        diagnostics.add_measurement(&PerdixDiagnostics::LATENCY_P99_US, || {
            window.quantile_ns(0.99) as f64 / 1e3
        });
    }
    diagnostics.add_measurement(&PerdixDiagnostics::OCCUPANCY, || sample.occupancy * 100.0);
    diagnostics.add_measurement(&PerdixDiagnostics::STALLS_PER_SEC, || sample.stalls_per_sec);
    diagnostics.add_measurement(&PerdixDiagnostics::DROPS_PER_SEC, || sample.drops_per_sec);
    diagnostics.add_measurement(&PerdixDiagnostics::UNROUTED_PER_SEC, || {
        sample.unrouted_per_sec
    });
    diagnostics.add_measurement(&PerdixDiagnostics::DEFERRED, || deferred);
}
