//! `perdix/*` diagnostics through bevy_diagnostic.
#![forbid(unsafe_code)]

use bevy_app::App;
use bevy_diagnostic::{
    Diagnostic, DiagnosticPath, Diagnostics, DiagnosticsStore, RegisterDiagnostic,
};
use bevy_ecs::system::{Local, Res, ResMut};

use super::frame::SAMPLE_EVERY_NS;
use super::rings::PerdixRings;
use crate::telemetry::{CountersSnapshot, Sample};

/// The paths of the plugin's diagnostics (in [`DiagnosticsStore`]).
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
    /// Mean payload bytes per message over the window (bytes taken over messages taken; not
    /// measured in a window that took none).
    pub const MESSAGE_BYTES: DiagnosticPath = DiagnosticPath::const_new("perdix/message_bytes");
    /// The largest payload taken in the window, bytes (not measured in a window that took
    /// none).
    pub const MESSAGE_BYTES_MAX: DiagnosticPath =
        DiagnosticPath::const_new("perdix/message_bytes_max");
    /// Median one-way latency (producer stamp to drain), µs.
    pub const LATENCY_P50_US: DiagnosticPath = DiagnosticPath::const_new("perdix/latency_p50_us");
    /// 99th-percentile one-way latency, µs.
    pub const LATENCY_P99_US: DiagnosticPath = DiagnosticPath::const_new("perdix/latency_p99_us");
    /// Ring fill over all rings, percent.
    pub const OCCUPANCY: DiagnosticPath = DiagnosticPath::const_new("perdix/occupancy");
    /// Times a producer found its ring full (and waited, under `Block`), per second: CPU
    /// producers' and GPU kernels' (the rings' device counters).
    pub const STALLS_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/stalls_per_sec");
    /// Messages dropped by `DropNewest`, per second: by CPU producers and by GPU kernels (the
    /// rings' device counters).
    pub const DROPS_PER_SEC: DiagnosticPath = DiagnosticPath::const_new("perdix/drops_per_sec");
    /// Messages of unregistered kinds, per second.
    pub const UNROUTED_PER_SEC: DiagnosticPath =
        DiagnosticPath::const_new("perdix/unrouted_per_sec");
    /// Ready messages the budget left in the rings at the end of the latest frame.
    pub const DEFERRED: DiagnosticPath = DiagnosticPath::const_new("perdix/deferred");
    /// Faults reported so far (failed rings and producers, each also a
    /// [`PerdixEvent`](super::PerdixEvent)); measured every frame.
    pub const ERRORS: DiagnosticPath = DiagnosticPath::const_new("perdix/errors");
    /// Messages of a registered kind whose size does not match the registered type, dropped
    /// so far ([`Counters::malformed`](crate::telemetry::Counters::malformed)); measured
    /// every frame.
    pub const MALFORMED: DiagnosticPath = DiagnosticPath::const_new("perdix/malformed");
    /// Warnings reported so far ([`PerdixEvent`](super::PerdixEvent)s that are not faults: a
    /// GPU producer on its CPU fallback, an unrouted kind, a stalled producer); measured every
    /// frame.
    pub const WARNINGS: DiagnosticPath = DiagnosticPath::const_new("perdix/warnings");
    /// Launches skipped so far because the producer's previous launch still ran
    /// ([`PerdixRings::launches_skipped`](super::PerdixRings::launches_skipped)); measured
    /// every frame.
    pub const LAUNCHES_SKIPPED: DiagnosticPath =
        DiagnosticPath::const_new("perdix/launches_skipped");
    /// Bytes the plugin holds outside its rings at the end of the frame
    /// ([`PerdixRings::held_bytes`](super::PerdixRings::held_bytes), at most
    /// [`PerdixPlugin::held_limit`](super::PerdixPlugin::held_limit) per ring); measured every
    /// frame.
    pub const HELD_BYTES: DiagnosticPath = DiagnosticPath::const_new("perdix/held_bytes");

    /// Messages per second from CUDA device `device`'s rings: `perdix/gpu<N>/msgs_per_sec`
    /// (registered once the device's first ring is drained).
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixDiagnostics;
    ///
    /// assert_eq!(PerdixDiagnostics::device_msgs_per_sec(1).as_str(), "perdix/gpu1/msgs_per_sec");
    /// ```
    #[must_use]
    pub fn device_msgs_per_sec(device: u32) -> DiagnosticPath {
        DiagnosticPath::new(format!("perdix/gpu{device}/msgs_per_sec"))
    }

    /// Payload bytes per second from CUDA device `device`'s rings:
    /// `perdix/gpu<N>/bytes_per_sec`.
    #[must_use]
    pub fn device_bytes_per_sec(device: u32) -> DiagnosticPath {
        DiagnosticPath::new(format!("perdix/gpu{device}/bytes_per_sec"))
    }

    /// Every path with its unit suffix.
    pub const ALL: [(DiagnosticPath, &'static str); 16] = [
        (Self::MSGS_PER_SEC, " msg/s"),
        (Self::BYTES_PER_SEC, " B/s"),
        (Self::MESSAGE_BYTES, " B"),
        (Self::MESSAGE_BYTES_MAX, " B"),
        (Self::LATENCY_P50_US, " us"),
        (Self::LATENCY_P99_US, " us"),
        (Self::OCCUPANCY, "%"),
        (Self::STALLS_PER_SEC, "/s"),
        (Self::DROPS_PER_SEC, "/s"),
        (Self::UNROUTED_PER_SEC, "/s"),
        (Self::DEFERRED, " msgs"),
        (Self::ERRORS, " errors"),
        (Self::MALFORMED, " msgs"),
        (Self::WARNINGS, " warnings"),
        (Self::LAUNCHES_SKIPPED, " launches"),
        (Self::HELD_BYTES, " B"),
    ];
}

/// The preset for Bevy's diagnostics overlay (`DiagnosticsOverlay` of bevy_dev_tools).
impl PerdixDiagnostics {
    /// The paths an overlay of the transport shows, in display order: throughput (messages
    /// and bytes), the mean message size, latency percentiles, occupancy, drops, stalls and errors. Every one is
    /// registered by [`PerdixPlugin`](super::PerdixPlugin) (with or without a
    /// [`DiagnosticsPlugin`](bevy_diagnostic::DiagnosticsPlugin) in the app), so an overlay
    /// built from them never shows a path as missing.
    ///
    /// Hand them to `DiagnosticsOverlay::new(title, paths)`, each `.into()` an item; with the
    /// `overlay` feature `PerdixDiagnostics::overlay()` builds that overlay, with a precision
    /// for each path.
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
    /// for path in PerdixDiagnostics::overlay_paths() {
    ///     assert!(store.get(&path).is_some(), "{path} is not registered");
    /// }
    /// ```
    #[must_use]
    pub fn overlay_paths() -> [DiagnosticPath; 9] {
        [
            Self::MSGS_PER_SEC,
            Self::BYTES_PER_SEC,
            Self::MESSAGE_BYTES,
            Self::LATENCY_P50_US,
            Self::LATENCY_P99_US,
            Self::OCCUPANCY,
            Self::DROPS_PER_SEC,
            Self::STALLS_PER_SEC,
            Self::ERRORS,
        ]
    }
}

/// Bevy's own overlay of the transport (`overlay` feature).
#[cfg(feature = "overlay")]
impl PerdixDiagnostics {
    /// A [`DiagnosticsOverlay`](bevy_dev_tools::diagnostics_overlay::DiagnosticsOverlay) of
    /// [`overlay_paths`](Self::overlay_paths) titled "perdix": spawn it in an app with
    /// `DiagnosticsOverlayPlugin` (and Bevy's UI and text plugins) to see the transport
    /// without egui. Rates and counts show whole numbers, latency and occupancy one decimal;
    /// errors show the latest count, not a smoothed one.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::bevy::PerdixDiagnostics;
    ///
    /// let overlay = PerdixDiagnostics::overlay();
    /// let paths: Vec<_> = overlay.items.iter().map(|item| item.path.clone()).collect();
    /// assert_eq!(paths, PerdixDiagnostics::overlay_paths());
    /// ```
    ///
    /// In a windowed app:
    ///
    /// ```no_run
    /// use bevy_dev_tools::diagnostics_overlay::DiagnosticsOverlayPlugin;
    /// use bevy_window_app::prelude::*;
    /// use perdix_transport::bevy::{PerdixDiagnostics, PerdixPlugin};
    ///
    /// App::new()
    ///     .add_plugins((DefaultPlugins, DiagnosticsOverlayPlugin, PerdixPlugin::default()))
    ///     .add_systems(Startup, |mut commands: Commands| {
    ///         commands.spawn(Camera2d);
    ///         commands.spawn(PerdixDiagnostics::overlay());
    ///     })
    ///     .run();
    /// ```
    #[must_use]
    pub fn overlay() -> bevy_dev_tools::diagnostics_overlay::DiagnosticsOverlay {
        use bevy_dev_tools::diagnostics_overlay::{
            DiagnosticsOverlay, DiagnosticsOverlayItem, DiagnosticsOverlayStatistic,
        };
        let items = Self::overlay_paths()
            .into_iter()
            .map(|path| {
                let fractional = [Self::LATENCY_P50_US, Self::LATENCY_P99_US, Self::OCCUPANCY];
                let (statistic, precision) = if path == Self::ERRORS {
                    (DiagnosticsOverlayStatistic::Value, 0)
                } else if fractional.contains(&path) {
                    (DiagnosticsOverlayStatistic::Smoothed, 1)
                } else {
                    (DiagnosticsOverlayStatistic::Smoothed, 0)
                };
                DiagnosticsOverlayItem {
                    statistic,
                    path,
                    precision,
                }
            })
            .collect();
        DiagnosticsOverlay::new("perdix", items)
    }
}

pub(crate) fn register(app: &mut App) {
    for (path, suffix) in PerdixDiagnostics::ALL {
        let diagnostic = Diagnostic::new(path.clone()).with_suffix(suffix);
        // Counts and maxima: an average over frames would be nonsensical.
        let unsmoothed = [
            PerdixDiagnostics::ERRORS,
            PerdixDiagnostics::MALFORMED,
            PerdixDiagnostics::MESSAGE_BYTES_MAX,
            PerdixDiagnostics::WARNINGS,
            PerdixDiagnostics::LAUNCHES_SKIPPED,
        ];
        let diagnostic = if unsmoothed.contains(&path) {
            diagnostic.with_smoothing_factor(0.0)
        } else {
            diagnostic
        };
        app.register_diagnostic(diagnostic);
    }
}

/// What the diagnostics keep between frames: the counters of the previous sample (rates and
/// the latency window are differences from it), and the largest message since.
#[derive(Default)]
pub(crate) struct Baseline {
    last: Option<CountersSnapshot>,
    largest: u64,
}

/// Adds the frame's counts to the diagnostics and, every ~100 ms, the rates and the latency
/// window since the previous sample, all from [`PerdixRings::counters`] (read, never reset: the
/// drain closes frames).
pub(crate) fn measure(
    mut diagnostics: Diagnostics,
    rings: Option<Res<PerdixRings>>,
    mut baseline: Local<Baseline>,
) {
    let Some(rings) = rings else {
        return;
    };
    let now = rings.counters();
    let app = now.app;
    // Every frame, not every ~100 ms: a fault shows in the frame that reported it.
    diagnostics.add_measurement(&PerdixDiagnostics::ERRORS, || app.errors as f64);
    let malformed = now.total().malformed as f64;
    diagnostics.add_measurement(&PerdixDiagnostics::MALFORMED, || malformed);
    diagnostics.add_measurement(&PerdixDiagnostics::WARNINGS, || app.warnings as f64);
    diagnostics.add_measurement(&PerdixDiagnostics::LAUNCHES_SKIPPED, || {
        app.launches_skipped as f64
    });
    diagnostics.add_measurement(&PerdixDiagnostics::HELD_BYTES, || app.held_bytes as f64);
    baseline.largest = baseline.largest.max(app.frame_largest);
    let Some(last) = &baseline.last else {
        baseline.last = Some(now); // the first sample only sets the baseline
        return;
    };
    let dt_ns = now.at_ns.saturating_sub(last.at_ns);
    if dt_ns < SAMPLE_EVERY_NS {
        return;
    }
    let dt_s = dt_ns as f64 * 1e-9;
    let sample = Sample::between(0.0, dt_s, &last.total(), &now.total());
    diagnostics.add_measurement(&PerdixDiagnostics::MSGS_PER_SEC, || sample.msgs_per_sec);
    diagnostics.add_measurement(&PerdixDiagnostics::BYTES_PER_SEC, || sample.bytes_per_sec);
    if sample.msgs_per_sec > 0.0 {
        // Both rates are over the same window: their ratio is its bytes over its messages.
        diagnostics.add_measurement(&PerdixDiagnostics::MESSAGE_BYTES, || {
            sample.bytes_per_sec / sample.msgs_per_sec
        });
        let largest = baseline.largest as f64;
        diagnostics.add_measurement(&PerdixDiagnostics::MESSAGE_BYTES_MAX, || largest);
    }
    let window = now.latency.since(&last.latency);
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
    diagnostics.add_measurement(&PerdixDiagnostics::DEFERRED, || app.deferred as f64);
    measure_devices(&mut diagnostics, &now, last, dt_s);
    baseline.largest = 0;
    baseline.last = Some(now);
}

/// Registers `perdix/gpu<N>/*` when device `N`'s first ring shows up (runs before
/// [`measure`]; device rings appear at run time, after the plugin is built).
pub(crate) fn register_devices(
    rings: Option<Res<PerdixRings>>,
    store: Option<ResMut<DiagnosticsStore>>,
    mut seen_rings: Local<usize>,
) {
    let (Some(rings), Some(mut store)) = (rings, store) else {
        return;
    };
    // Devices only appear with new rings: nothing to do in the frames between.
    if rings.rings() == *seen_rings {
        return;
    }
    *seen_rings = rings.rings();
    for device in rings.counters().devices() {
        let msgs = PerdixDiagnostics::device_msgs_per_sec(device.device);
        if store.get(&msgs).is_none() {
            let bytes = PerdixDiagnostics::device_bytes_per_sec(device.device);
            store.add(Diagnostic::new(msgs).with_suffix(" msg/s"));
            store.add(Diagnostic::new(bytes).with_suffix(" B/s"));
        }
    }
}

/// `perdix/gpu<N>/*`: each device's rates over the `dt_s` seconds from `last` to `now` (a
/// device new since `last` counts from zero).
fn measure_devices(
    diagnostics: &mut Diagnostics,
    now: &CountersSnapshot,
    last: &CountersSnapshot,
    dt_s: f64,
) {
    let before = last.devices();
    for device in now.devices() {
        let then = before
            .iter()
            .find(|d| d.device == device.device)
            .map(|d| d.counters)
            .unwrap_or_default();
        let sample = Sample::between(0.0, dt_s, &then, &device.counters);
        let msgs = PerdixDiagnostics::device_msgs_per_sec(device.device);
        let bytes = PerdixDiagnostics::device_bytes_per_sec(device.device);
        diagnostics.add_measurement(&msgs, || sample.msgs_per_sec);
        diagnostics.add_measurement(&bytes, || sample.bytes_per_sec);
    }
}
