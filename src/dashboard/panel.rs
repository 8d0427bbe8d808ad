//! [`PerdixPanel`]: the egui widget over a [`TelemetrySnapshot`].

use core::ops::RangeInclusive;

use egui::{Color32, Id, ProgressBar, Response, RichText, Ui, Widget};
use egui_plot::{Bar, BarChart, Corner, GridMark, Legend, Line, Plot, PlotPoints, VLine};

use crate::telemetry::{Sample, TelemetrySnapshot};

/// Healthy: green.
const GREEN: Color32 = Color32::from_rgb(80, 200, 120);
/// Backpressure: amber.
const AMBER: Color32 = Color32::from_rgb(240, 170, 40);
/// Dropping, or a full ring: red.
const RED: Color32 = Color32::from_rgb(235, 80, 70);
/// Throughput lines.
const BLUE: Color32 = Color32::from_rgb(90, 160, 240);
/// Bandwidth line.
const VIOLET: Color32 = Color32::from_rgb(180, 130, 240);

/// Ring fill from which the panel flags backpressure even without stalls.
const OCCUPANCY_WARN: f64 = 0.75;
/// Ring fill shown red.
const OCCUPANCY_FULL: f64 = 0.95;

/// What the panel's colors say about a transport, from its latest sample.
///
/// # Examples
///
/// ```
/// use perdix_transport::dashboard::Health;
/// use perdix_transport::telemetry::{Sample, TelemetrySnapshot};
///
/// let mut snapshot = TelemetrySnapshot::default();
/// assert_eq!(Health::of(&snapshot), Health::Idle);
/// snapshot.history.push(Sample { msgs_per_sec: 1e6, occupancy: 0.1, ..Sample::default() });
/// assert_eq!(Health::of(&snapshot), Health::Flowing);
/// snapshot.history.push(Sample { msgs_per_sec: 1e6, stalls_per_sec: 5.0, ..Sample::default() });
/// assert_eq!(Health::of(&snapshot), Health::Backpressure);
/// snapshot.history.push(Sample { drops_per_sec: 1.0, ..Sample::default() });
/// assert_eq!(Health::of(&snapshot), Health::Dropping);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Health {
    /// No messages moved in the latest sample, and none were refused.
    Idle,
    /// Messages move; producers never found the ring full.
    Flowing,
    /// Producers found the ring full (stalls), or it is more than 75 % full.
    Backpressure,
    /// Messages are being dropped (`Policy::DropNewest` on a full ring).
    Dropping,
}

impl Health {
    /// Classifies the latest sample of `snapshot` (non-finite rates count as zero).
    #[must_use]
    pub fn of(snapshot: &TelemetrySnapshot) -> Self {
        let s = sanitize(snapshot.latest());
        if s.drops_per_sec > 0.0 {
            Self::Dropping
        } else if s.stalls_per_sec > 0.0 || s.occupancy >= OCCUPANCY_WARN {
            Self::Backpressure
        } else if s.msgs_per_sec > 0.0 {
            Self::Flowing
        } else {
            Self::Idle
        }
    }

    /// Short label shown in the panel's header.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Flowing => "flowing",
            Self::Backpressure => "backpressure",
            Self::Dropping => "dropping",
        }
    }

    /// The color the panel uses for this state.
    #[must_use]
    pub fn color(self) -> Color32 {
        match self {
            Self::Idle => Color32::GRAY,
            Self::Flowing => GREEN,
            Self::Backpressure => AMBER,
            Self::Dropping => RED,
        }
    }
}

/// A live view of one transport: throughput and bandwidth over the last minute, ring
/// occupancy, stalls and drops per second, a latency histogram with p50/p99/p99.9 marked, and
/// the backend and device, colored green / amber / red by [`Health`].
///
/// It only reads a [`TelemetrySnapshot`], so the same widget serves the `dashboard` example
/// (eframe), the Bevy overlay (bevy_egui) and headless tests. It keeps no state of its own; egui
/// keeps the plots' state under the panel's id ([`PerdixPanel::id_salt`] tells two panels apart).
///
/// # Examples
///
/// Laid out headlessly, with no window, as the tests do:
///
/// ```
/// use perdix_transport::dashboard::PerdixPanel;
/// use perdix_transport::telemetry::{Telemetry, Totals};
///
/// let mut telemetry = Telemetry::new("host", 600);
/// telemetry.update(0.0, Totals { capacity: 4096, ..Totals::default() });
/// telemetry.update(0.1, Totals { messages: 100_000, bytes: 6_400_000, occupancy: 512, capacity: 4096, ..Totals::default() });
/// telemetry.record_latency(1_200);
/// let snapshot = telemetry.snapshot();
///
/// let ctx = egui::Context::default();
/// let output = ctx.run_ui(egui::RawInput::default(), |ui| {
///     ui.add(PerdixPanel::new(&snapshot).window_secs(60.0));
/// });
/// assert!(!output.shapes.is_empty());
/// # output.drop_without_applying_deltas();
/// ```
#[derive(Debug, Clone)]
#[must_use = "a panel shows nothing until added to a `Ui` (`ui.add(panel)`)"]
pub struct PerdixPanel<'a> {
    snapshot: &'a TelemetrySnapshot,
    id_salt: Id,
    window_secs: f64,
    plot_height: f32,
    histogram: bool,
}

impl<'a> PerdixPanel<'a> {
    /// A panel over `snapshot`, showing the last 60 s.
    pub fn new(snapshot: &'a TelemetrySnapshot) -> Self {
        Self {
            snapshot,
            id_salt: Id::new("perdix_panel"),
            window_secs: 60.0,
            plot_height: 110.0,
            histogram: true,
        }
    }

    /// Distinguishes this panel's plots from another panel's in the same `Ui`.
    pub fn id_salt(mut self, salt: impl egui::AsId) -> Self {
        self.id_salt = Id::new(salt);
        self
    }

    /// How many seconds of history the plots show (at least 1; default 60).
    pub fn window_secs(mut self, secs: f64) -> Self {
        self.window_secs = if secs.is_finite() {
            secs.max(1.0)
        } else {
            60.0
        };
        self
    }

    /// Height of each plot in points (at least 40; default 110).
    pub fn plot_height(mut self, height: f32) -> Self {
        self.plot_height = if height.is_finite() {
            height.max(40.0)
        } else {
            110.0
        };
        self
    }

    /// Whether to draw the latency histogram (default on).
    pub fn histogram(mut self, on: bool) -> Self {
        self.histogram = on;
        self
    }

    fn header(&self, ui: &mut Ui, health: Health) {
        let snap = self.snapshot;
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("perdix").strong());
            ui.separator();
            ui.label(format!("backend: {}", or_dash(&snap.backend)));
            ui.separator();
            ui.label(format!("device: {}", or_dash(&snap.device)));
            ui.separator();
            ui.label(
                RichText::new(format!(" {} ", health.label().to_uppercase()))
                    .strong()
                    .color(Color32::BLACK)
                    .background_color(health.color()),
            );
        });
    }

    fn figures(&self, ui: &mut Ui, latest: Sample) {
        let snap = self.snapshot;
        let totals = snap.totals;
        let lat = snap.latency;
        egui::Grid::new(self.id_salt.with("figures"))
            .num_columns(4)
            .spacing([16.0, 2.0])
            .striped(true)
            .show(ui, |ui| {
                ui.label("throughput");
                ui.label(RichText::new(si(latest.msgs_per_sec, " msg/s")).strong());
                ui.label("bandwidth");
                ui.label(RichText::new(si(latest.bytes_per_sec, "B/s")).strong());
                ui.end_row();

                ui.label("stalls");
                ui.label(
                    RichText::new(si(latest.stalls_per_sec, " /s"))
                        .color(alarm(latest.stalls_per_sec, AMBER)),
                );
                ui.label("drops");
                ui.label(
                    RichText::new(si(latest.drops_per_sec, " /s"))
                        .color(alarm(latest.drops_per_sec, RED)),
                );
                ui.end_row();

                ui.label("messages");
                ui.label(count(totals.messages));
                ui.label("bytes");
                ui.label(si(totals.bytes as f64, "B"));
                ui.end_row();

                ui.label("stalls total");
                ui.label(count(totals.stalls));
                ui.label("drops total");
                ui.label(count(totals.drops));
                ui.end_row();

                ui.label("latency p50");
                ui.label(RichText::new(ns(lat.p50_ns as f64)).strong());
                ui.label("p99 / p99.9");
                ui.label(format!(
                    "{} / {}",
                    ns(lat.p99_ns as f64),
                    ns(lat.p999_ns as f64)
                ));
                ui.end_row();

                ui.label("latency max");
                ui.label(ns(lat.max_ns as f64));
                ui.label("samples");
                ui.label(count(lat.count));
                ui.end_row();

                if totals.unrouted > 0 || latest.unrouted_per_sec > 0.0 {
                    ui.label("unrouted");
                    ui.label(si(latest.unrouted_per_sec, " /s"));
                    ui.label("unrouted total");
                    ui.label(count(totals.unrouted));
                    ui.end_row();
                }
            });
    }

    fn occupancy(&self, ui: &mut Ui, latest: Sample) {
        let totals = self.snapshot.totals;
        let fill = latest.occupancy;
        let color = if fill >= OCCUPANCY_FULL {
            RED
        } else if fill >= OCCUPANCY_WARN {
            AMBER
        } else {
            GREEN
        };
        ui.horizontal(|ui| {
            ui.label("ring");
            ui.add(ProgressBar::new(fill as f32).fill(color).text(format!(
                "{} / {} slots ({:.0} %)",
                count(totals.occupancy.min(totals.capacity)),
                count(totals.capacity),
                fill * 100.0
            )));
        });
    }

    fn time_plots(&self, ui: &mut Ui, history: &[Sample]) {
        let now = history.last().map_or(0.0, |s| s.t_s);
        let window = self.window_secs;
        let series = |f: fn(&Sample) -> f64, scale: f64| -> PlotPoints<'static> {
            PlotPoints::new(decimate(history, MAX_POINTS, now, |s| f(s) * scale))
        };
        let height = self.plot_height;
        let plot = |name: &str| {
            Plot::new(self.id_salt.with(name))
                .height(height)
                .allow_zoom(false)
                .allow_drag(false)
                .allow_scroll(false)
                .allow_boxed_zoom(false)
                .allow_double_click_reset(false)
                .show_x(false)
                .include_x(-window)
                .include_x(0.0)
                .include_y(0.0)
                .x_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| {
                    format!("{:.0}s", mark.value)
                })
                .y_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| si(mark.value, ""))
                .legend(Legend::default().position(Corner::LeftTop))
        };
        ui.columns(2, |cols| {
            plot("msgs").show(&mut cols[0], |p| {
                p.line(
                    Line::new("msg/s", series(|s| s.msgs_per_sec, 1.0))
                        .color(BLUE)
                        .fill(0.0),
                );
            });
            plot("bytes").show(&mut cols[1], |p| {
                p.line(
                    Line::new("MB/s", series(|s| s.bytes_per_sec, 1e-6))
                        .color(VIOLET)
                        .fill(0.0),
                );
            });
            plot("occupancy").include_y(100.0).show(&mut cols[0], |p| {
                p.line(Line::new("occupancy %", series(|s| s.occupancy, 100.0)).color(GREEN));
            });
            plot("backpressure").show(&mut cols[1], |p| {
                p.line(Line::new("stalls/s", series(|s| s.stalls_per_sec, 1.0)).color(AMBER));
                p.line(Line::new("drops/s", series(|s| s.drops_per_sec, 1.0)).color(RED));
            });
        });
    }

    fn latency_plot(&self, ui: &mut Ui) {
        let snap = self.snapshot;
        let bars: Vec<Bar> = snap
            .latency_buckets
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| {
                let lo = (b.lo_ns.max(1) as f64).log10();
                let hi = (b.hi_ns.max(b.lo_ns + 1) as f64).log10();
                Bar::new((lo + hi) / 2.0, b.count as f64)
                    .width((hi - lo) * 0.9)
                    .fill(BLUE)
            })
            .collect();
        let lat = snap.latency;
        Plot::new(self.id_salt.with("latency"))
            .height(self.plot_height)
            .allow_zoom(false)
            .allow_drag(false)
            .allow_scroll(false)
            .allow_boxed_zoom(false)
            .allow_double_click_reset(false)
            .show_y(false)
            .include_y(0.0)
            .x_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| ns(10f64.powf(mark.value)))
            .y_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| si(mark.value, ""))
            .legend(Legend::default().position(Corner::RightTop))
            .show(ui, |p| {
                p.add(BarChart::new("latency", bars).color(BLUE));
                if lat.count > 0 {
                    for (name, v, color) in [
                        ("p50", lat.p50_ns, GREEN),
                        ("p99", lat.p99_ns, AMBER),
                        ("p99.9", lat.p999_ns, RED),
                    ] {
                        p.add(VLine::new(name, (v.max(1) as f64).log10()).color(color));
                    }
                }
            });
    }
}

impl Widget for PerdixPanel<'_> {
    fn ui(self, ui: &mut Ui) -> Response {
        let health = Health::of(self.snapshot);
        let latest = sanitize(self.snapshot.latest());
        let history = self.visible_history();
        ui.push_id(self.id_salt, |ui| {
            ui.vertical(|ui| {
                self.header(ui, health);
                ui.separator();
                self.figures(ui, latest);
                self.occupancy(ui, latest);
                ui.separator();
                self.time_plots(ui, &history);
                if self.histogram {
                    ui.label(RichText::new("one-way latency").small());
                    self.latency_plot(ui);
                }
            })
            .response
        })
        .inner
    }
}

impl PerdixPanel<'_> {
    /// The samples inside the time window, with non-finite values zeroed.
    fn visible_history(&self) -> Vec<Sample> {
        let history = &self.snapshot.history;
        let now = history.last().map_or(0.0, |s| finite(s.t_s));
        history
            .iter()
            .map(|s| sanitize(*s))
            .filter(|s| s.t_s >= now - self.window_secs && s.t_s <= now)
            .collect()
    }
}

/// Most points per plotted series: longer histories are reduced to a min/max envelope, which
/// keeps spikes visible and bounds the panel's cost per frame (see `benches/dashboard_panel.rs`).
const MAX_POINTS: usize = 240;

/// `[t - now, value]` points of `history`, at most `max_points` (≥ 2) of them: when there are
/// more samples, each run of consecutive samples contributes its minimum and its maximum, in
/// time order.
fn decimate(
    history: &[Sample],
    max_points: usize,
    now: f64,
    value: impl Fn(&Sample) -> f64,
) -> Vec<[f64; 2]> {
    let point = |s: &Sample| [s.t_s - now, value(s)];
    let max_points = max_points.max(2);
    if history.len() <= max_points {
        return history.iter().map(point).collect();
    }
    let per_bucket = history.len().div_ceil(max_points / 2);
    let mut out = Vec::with_capacity(max_points);
    for bucket in history.chunks(per_bucket) {
        let (mut lo, mut hi) = (0, 0);
        for (i, s) in bucket.iter().enumerate() {
            if value(s) < value(&bucket[lo]) {
                lo = i;
            }
            if value(s) > value(&bucket[hi]) {
                hi = i;
            }
        }
        let (a, b) = (lo.min(hi), lo.max(hi));
        out.push(point(&bucket[a]));
        if b != a {
            out.push(point(&bucket[b]));
        }
    }
    out
}

/// `v`, or 0 when it is NaN or infinite.
fn finite(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

/// A sample with every non-finite field zeroed and occupancy clamped to 0..=1.
fn sanitize(s: Sample) -> Sample {
    Sample {
        t_s: finite(s.t_s),
        msgs_per_sec: finite(s.msgs_per_sec).max(0.0),
        bytes_per_sec: finite(s.bytes_per_sec).max(0.0),
        occupancy: finite(s.occupancy).clamp(0.0, 1.0),
        stalls_per_sec: finite(s.stalls_per_sec).max(0.0),
        drops_per_sec: finite(s.drops_per_sec).max(0.0),
        unrouted_per_sec: finite(s.unrouted_per_sec).max(0.0),
    }
}

/// Text color for a rate that is bad when above zero.
fn alarm(rate: f64, color: Color32) -> Color32 {
    if rate > 0.0 {
        color
    } else {
        Color32::GRAY
    }
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
}

/// `1.23 MB/s`-style text (k, M, G, T, P, E). A `unit` starting with a space keeps the prefix
/// apart from it (`1.23 M msg/s`).
pub(crate) fn si(v: f64, unit: &str) -> String {
    let v = finite(v);
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut scaled = v;
    let mut idx = 0;
    while scaled.abs() >= 1000.0 && idx + 1 < PREFIXES.len() {
        scaled /= 1000.0;
        idx += 1;
    }
    let spaced = unit.starts_with(' ');
    let unit = unit.trim_start();
    let prefix = PREFIXES[idx];
    let digits = if idx > 0 {
        2
    } else if scaled.fract() == 0.0 || scaled.abs() >= 100.0 {
        0
    } else if scaled.abs() >= 10.0 {
        1
    } else {
        2
    };
    let text = match (prefix.is_empty(), spaced) {
        (true, _) => format!("{scaled:.digits$} {unit}"),
        (false, true) => format!("{scaled:.digits$} {prefix} {unit}"),
        (false, false) => format!("{scaled:.digits$} {prefix}{unit}"),
    };
    if unit.is_empty() {
        text.trim_end().to_owned()
    } else {
        text
    }
}

/// A count with thin separators every three digits.
pub(crate) fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

/// A duration in ns as `850 ns`, `1.21 µs`, `5.30 ms` or `2.00 s`.
pub(crate) fn ns(v: f64) -> String {
    let v = finite(v).max(0.0);
    if v < 1e3 {
        format!("{v:.0} ns")
    } else if v < 1e6 {
        format!("{:.2} µs", v / 1e3)
    } else if v < 1e9 {
        format!("{:.2} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(si(0.0, "B/s"), "0 B/s");
        assert_eq!(si(1_234_000.0, " msg/s"), "1.23 M msg/s");
        assert_eq!(si(12.0, " msg/s"), "12 msg/s");
        assert_eq!(si(0.25, ""), "0.25");
        assert_eq!(si(12.5, " /s"), "12.5 /s");
        assert_eq!(si(2_500.0, ""), "2.50 k");
        assert_eq!(si(5_900_000.0, "B/s"), "5.90 MB/s");
        assert_eq!(si(f64::NAN, "B"), "0 B");
        assert_eq!(si(1e30, "B"), "1000000000000.00 EB");
        assert_eq!(count(0), "0");
        assert_eq!(count(1_234_567), "1\u{2009}234\u{2009}567");
        assert_eq!(ns(850.0), "850 ns");
        assert_eq!(ns(1_210.0), "1.21 µs");
        assert_eq!(ns(5_300_000.0), "5.30 ms");
        assert_eq!(ns(f64::INFINITY), "0 ns");
    }

    #[test]
    fn decimate_keeps_envelope_and_order() {
        let history: Vec<Sample> = (0..600)
            .map(|i| Sample {
                t_s: f64::from(i) / 10.0,
                msgs_per_sec: if i == 301 { 1e9 } else { f64::from(i % 7) },
                ..Sample::default()
            })
            .collect();
        let points = decimate(&history, 240, 59.9, |s| s.msgs_per_sec);
        assert!(points.len() <= 240, "{} points", points.len());
        assert!(
            points.windows(2).all(|w| w[0][0] <= w[1][0]),
            "not in time order"
        );
        assert!(points.iter().any(|p| p[1] == 1e9), "spike lost");
        assert!((points[0][0] + 59.9).abs() < 1e-9);
        // Short histories pass through untouched.
        assert_eq!(decimate(&history[..10], 240, 0.0, |s| s.t_s).len(), 10);
        assert!(decimate(&[], 240, 0.0, |s| s.t_s).is_empty());
    }

    #[test]
    fn sanitize_clamps() {
        let s = sanitize(Sample {
            t_s: f64::NAN,
            msgs_per_sec: f64::INFINITY,
            bytes_per_sec: -1.0,
            occupancy: 7.0,
            stalls_per_sec: f64::NEG_INFINITY,
            drops_per_sec: 1.0,
            unrouted_per_sec: 0.0,
        });
        assert_eq!(s.t_s, 0.0);
        assert_eq!(s.msgs_per_sec, 0.0);
        assert_eq!(s.bytes_per_sec, 0.0);
        assert_eq!(s.occupancy, 1.0);
        assert_eq!(s.stalls_per_sec, 0.0);
        assert_eq!(s.drops_per_sec, 1.0);
    }
}
