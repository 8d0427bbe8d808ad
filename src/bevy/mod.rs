//! Bevy integration: `PerdixPlugin`, typed messages, `perdix/*` diagnostics.
#![forbid(unsafe_code)]
