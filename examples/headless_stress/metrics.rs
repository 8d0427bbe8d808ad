//! `--metrics ADDR`: the plugin's counters at a Prometheus `/metrics` endpoint
//! (`PerdixPrometheusPlugin`); `--metrics-cost`: what a snapshot, its publication and its
//! encoding cost, printed each second. Both need the `prometheus` feature.

use bevy_app::App;

use crate::args::Args;

/// Adds the exporter and the cost probe the flags ask for.
#[cfg(feature = "prometheus")]
pub fn add(app: &mut App, args: &Args) {
    use bevy_app::Last;
    use perdix_transport::export::PerdixPrometheusPlugin;

    if let Some(addr) = args.metrics {
        app.add_plugins(PerdixPrometheusPlugin::new(addr));
    }
    if args.metrics_cost {
        app.add_systems(Last, cost::probe);
    }
}

#[cfg(not(feature = "prometheus"))]
pub fn add(_app: &mut App, _args: &Args) {}

#[cfg(feature = "prometheus")]
mod cost {
    use std::time::{Duration, Instant};

    use bevy_ecs::system::{Local, Res};
    use perdix_transport::bevy::PerdixRings;
    use perdix_transport::export::{encode_text, MetricsServer};

    /// Calls timed each second.
    const CALLS: u32 = 100;

    /// Each second: the mean time of `counters()` + `publish` (what the plugin does every
    /// 100 ms in the frame) and of `encode_text` (what a scrape does on the server's thread).
    pub fn probe(
        rings: Res<PerdixRings>,
        mut last: Local<Option<Instant>>,
        mut server: Local<Option<MetricsServer>>,
    ) {
        let now = Instant::now();
        if last.is_some_and(|at| now - at < Duration::from_secs(1)) {
            return;
        }
        *last = Some(now);
        if server.is_none() {
            *server = MetricsServer::bind("127.0.0.1:0".parse().expect("an address")).ok();
        }
        let Some(server) = server.as_ref() else {
            return;
        };
        let start = Instant::now();
        for _ in 0..CALLS {
            server.publish(rings.counters());
        }
        let publish = start.elapsed() / CALLS;
        let snapshot = rings.counters();
        let start = Instant::now();
        let mut len = 0;
        for _ in 0..CALLS {
            len = encode_text(&snapshot).map_or(0, |text| text.len());
        }
        let encode = start.elapsed() / CALLS;
        println!(
            "  metrics cost: counters()+publish {:.2} us a call (every 100 ms in the frame), \
             encode {:.2} us ({len} bytes, {} ring(s); on the server thread, per scrape)",
            publish.as_secs_f64() * 1e6,
            encode.as_secs_f64() * 1e6,
            snapshot.rings.len(),
        );
    }
}
