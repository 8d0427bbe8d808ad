//! [`PerdixPanel`]: the egui widget over a [`TelemetrySnapshot`].

use egui::{Color32, Id, ProgressBar, Response, RichText, Ui, Widget};

use super::format::{count, message_size, ns, or_dash, si};
use super::health::Health;
use super::palette::{alarm, occupancy_color, AMBER, RED};
use super::plots::{latency_plot, time_plots};
use super::series::{finite, sanitize};
use crate::telemetry::{Sample, TelemetrySnapshot};

/// A live view of one transport: throughput, bandwidth and the mean message size (in the latest
/// sample and over the run), plots of the last minute, ring occupancy, stalls and drops per
/// second, a latency histogram with p50/p99/p99.9 marked, and the backend and device, colored
/// green / amber / red by [`Health`].
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
/// use perdix_transport::telemetry::{Telemetry, Counters};
///
/// let mut telemetry = Telemetry::new("host", 600);
/// telemetry.update(0.0, Counters { capacity: 4096, ..Counters::default() });
/// telemetry.update(0.1, Counters { messages: 100_000, bytes: 6_400_000, occupancy: 512, capacity: 4096, ..Counters::default() });
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

                // Both rates are over the same sample: their ratio is its mean message size.
                ui.label("message size");
                ui.label(
                    RichText::new(message_size(latest.bytes_per_sec, latest.msgs_per_sec)).strong(),
                );
                ui.label("mean size");
                ui.label(message_size(totals.bytes as f64, totals.messages as f64));
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
        let color = occupancy_color(fill);
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
                time_plots(
                    ui,
                    self.id_salt,
                    self.plot_height,
                    self.window_secs,
                    &history,
                );
                if self.histogram {
                    ui.label(RichText::new("one-way latency").small());
                    latency_plot(ui, self.id_salt, self.plot_height, self.snapshot);
                }
            })
            .response
        })
        .inner
    }
}
