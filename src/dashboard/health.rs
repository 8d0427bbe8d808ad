//! [`Health`]: what the panel's colors say about a transport.

use egui::Color32;

use super::palette::{AMBER, GREEN, OCCUPANCY_WARN, RED};
use super::series::sanitize;
use crate::telemetry::TelemetrySnapshot;

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
