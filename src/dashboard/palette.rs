//! The panel's colors and the ring-fill thresholds they switch at.

use egui::Color32;

/// Healthy: green.
pub(super) const GREEN: Color32 = Color32::from_rgb(80, 200, 120);
/// Backpressure: amber.
pub(super) const AMBER: Color32 = Color32::from_rgb(240, 170, 40);
/// Dropping, or a full ring: red.
pub(super) const RED: Color32 = Color32::from_rgb(235, 80, 70);
/// Throughput lines.
pub(super) const BLUE: Color32 = Color32::from_rgb(90, 160, 240);
/// Bandwidth line.
pub(super) const VIOLET: Color32 = Color32::from_rgb(180, 130, 240);

/// Ring fill from which the panel flags backpressure even without stalls.
pub(super) const OCCUPANCY_WARN: f64 = 0.75;
/// Ring fill shown red.
pub(super) const OCCUPANCY_FULL: f64 = 0.95;

/// The color of a ring `fill` (0..=1): green, amber from [`OCCUPANCY_WARN`], red from
/// [`OCCUPANCY_FULL`].
pub(super) fn occupancy_color(fill: f64) -> Color32 {
    if fill >= OCCUPANCY_FULL {
        RED
    } else if fill >= OCCUPANCY_WARN {
        AMBER
    } else {
        GREEN
    }
}

/// Text color for a rate that is bad when above zero.
pub(super) fn alarm(rate: f64, color: Color32) -> Color32 {
    if rate > 0.0 {
        color
    } else {
        Color32::GRAY
    }
}
