//! Metrics for Prometheus (feature `prometheus`): perdix's [`CountersSnapshot`] at an HTTP
//! `/metrics` endpoint, in the Prometheus text format, encoded with
//! [prometheus-client](https://docs.rs/prometheus-client).
//!
//! - [`PerdixCollector`] encodes a snapshot (every counter and gauge per ring, labelled `ring`
//!   and `device`; the Bevy plugin's own; the latency as the histogram
//!   `perdix_latency_seconds`); [`encode_text`] does it for one snapshot.
//! - [`MetricsServer`] serves it on a thread of its own, from published snapshots or a source
//!   called at scrape time ([`MetricsServer::for_monitors`] for a plain
//!   [`Consumer`](crate::Consumer)). Bound to loopback by default ([`DEFAULT_ADDR`]).
//! - With `bevy`, [`PerdixPrometheusPlugin`] publishes to one the `PerdixRings::counters()`
//!   snapshot the plugin samples every ~100 ms.
//!
//! The snapshot is cumulative, so the metrics are exported as they are: Prometheus computes
//! the rates (`rate(perdix_messages_total[1m])`). No async runtime: the endpoint is a std
//! `TcpListener` serving one short request at a time within deadlines (`http.rs` says why).
//!
//! Prometheus scrapes it with:
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: perdix
//!     scrape_interval: 5s
//!     static_configs:
//!       - targets: ["127.0.0.1:9464"]
//! ```
//!
//! [`CountersSnapshot`]: crate::telemetry::CountersSnapshot
#![forbid(unsafe_code)]

// The files, each using only files listed above it (no cycle):
//   metrics.rs   PerdixCollector, encode_text: a snapshot in the text format
//   http.rs      the endpoint's HTTP: one GET per connection, bounded in size and time
//   server.rs    MetricsServer, ExportError: the endpoint's thread and its snapshot source
//   plugin.rs    PerdixPrometheusPlugin, PerdixMetrics (feature `bevy`): the plugin's counters

mod http;
mod metrics;
#[cfg(feature = "bevy")]
mod plugin;
mod server;

pub use metrics::{encode_text, PerdixCollector, CONTENT_TYPE, LATENCY_BUCKETS_NS};
#[cfg(feature = "bevy")]
pub use plugin::{PerdixMetrics, PerdixPrometheusPlugin};
pub use server::{ExportError, MetricsServer, DEFAULT_ADDR};
