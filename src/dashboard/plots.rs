//! The panel's plots: four time series over the window, and the latency histogram.

use core::ops::RangeInclusive;

use egui::{Id, Ui};
use egui_plot::{Bar, BarChart, Corner, GridMark, Legend, Line, Plot, PlotPoints, VLine};

use super::format::{ns, si};
use super::palette::{AMBER, BLUE, GREEN, RED, VIOLET};
use super::series::{decimate, MAX_POINTS};
use crate::telemetry::{Sample, TelemetrySnapshot};

/// A plot that stays put (no zoom, drag, scroll or reset), `height` points high, its y axis from
/// 0 with SI labels.
fn still_plot(id: Id, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .allow_zoom(false)
        .allow_drag(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .allow_double_click_reset(false)
        .include_y(0.0)
        .y_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| si(mark.value, ""))
}

/// Messages and bytes per second, occupancy, stalls and drops over the last `window_secs`
/// seconds of `history` (already windowed and sanitized), in two columns.
pub(super) fn time_plots(
    ui: &mut Ui,
    id_salt: Id,
    height: f32,
    window_secs: f64,
    history: &[Sample],
) {
    let now = history.last().map_or(0.0, |s| s.t_s);
    let series = |f: fn(&Sample) -> f64, scale: f64| -> PlotPoints<'static> {
        PlotPoints::new(decimate(history, MAX_POINTS, now, |s| f(s) * scale))
    };
    let plot = |name: &str| {
        still_plot(id_salt.with(name), height)
            .show_x(false)
            .include_x(-window_secs)
            .include_x(0.0)
            .x_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| {
                format!("{:.0}s", mark.value)
            })
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

/// The latency histogram of `snapshot` on a log-ns axis, with p50, p99 and p99.9 marked.
pub(super) fn latency_plot(ui: &mut Ui, id_salt: Id, height: f32, snapshot: &TelemetrySnapshot) {
    let bars: Vec<Bar> = snapshot
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
    let lat = snapshot.latency;
    still_plot(id_salt.with("latency"), height)
        .show_y(false)
        .x_axis_formatter(|mark: GridMark, _: &RangeInclusive<f64>| ns(10f64.powf(mark.value)))
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
