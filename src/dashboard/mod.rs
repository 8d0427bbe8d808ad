//! egui dashboard: `PerdixPanel` over a `TelemetrySnapshot`.
#![forbid(unsafe_code)]
