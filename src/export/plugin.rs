//! [`PerdixPrometheusPlugin`]: the Bevy plugin's counters at a `/metrics` endpoint, and
//! [`PerdixMetrics`], the endpoint's state (serving where, or why not).
#![forbid(unsafe_code)]

use std::net::SocketAddr;

use bevy_app::{App, Plugin, Startup};
use bevy_ecs::resource::Resource;
use bevy_ecs::system::ResMut;

use super::server::{publish_to, ExportError, MetricsServer, DEFAULT_ADDR};
use crate::bevy::PerdixRings;

/// Serves [`PerdixRings::counters`] at `GET /metrics` for Prometheus, from a
/// [`MetricsServer`] on its own thread.
///
/// `build()` only registers: the [`PerdixMetrics`] resource and a `Startup` system that binds
/// [`addr`](Self::addr) and hands the server the snapshots the plugin already takes every
/// ~100 ms for its rate history (in `Last`, once the frame is closed). So the frames in between
/// pay nothing: no system runs for the exporter (a system run, even one a run condition skips,
/// cost an idle frame about 0.5 µs on the 2-core dev VM: docs/PERFORMANCE.md, "Exporter
/// overhead (issue 22)"). Add it with [`PerdixPlugin`](crate::bevy::PerdixPlugin). A bind
/// failure does not stop the app: it is [`PerdixMetrics::error`], and logged.
///
/// # Examples
///
/// ```
/// use bevy_app::prelude::*;
/// use perdix_transport::bevy::PerdixPlugin;
/// use perdix_transport::export::{PerdixMetrics, PerdixPrometheusPlugin};
///
/// let mut app = App::new();
/// app.add_plugins((
///     PerdixPlugin::default(),
///     PerdixPrometheusPlugin::new("127.0.0.1:0".parse()?),
/// ));
/// app.update();
/// let metrics = app.world().resource::<PerdixMetrics>();
/// assert!(metrics.error().is_none());
/// assert_ne!(metrics.local_addr().map(|a| a.port()), Some(0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerdixPrometheusPlugin {
    /// Where the endpoint listens. Default [`DEFAULT_ADDR`] (`127.0.0.1:9464`, loopback
    /// only); port 0 picks a free port ([`PerdixMetrics::local_addr`]).
    pub addr: SocketAddr,
}

impl Default for PerdixPrometheusPlugin {
    fn default() -> Self {
        Self::new(DEFAULT_ADDR)
    }
}

impl PerdixPrometheusPlugin {
    /// The endpoint at `addr`.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr }
    }
}

impl Plugin for PerdixPrometheusPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(PerdixMetrics {
            addr: self.addr,
            state: State::NotStarted,
        })
        .add_systems(Startup, start);
    }
}

/// The endpoint of a [`PerdixPrometheusPlugin`]: serving (where), or why not.
#[derive(Resource, Debug)]
pub struct PerdixMetrics {
    addr: SocketAddr,
    state: State,
}

/// Where the endpoint stands.
#[derive(Debug)]
enum State {
    /// Before `Startup`.
    NotStarted,
    Serving(MetricsServer),
    Failed(ExportError),
}

impl PerdixMetrics {
    /// The address the endpoint listens on, once it serves (after the app's first update).
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.server().map(MetricsServer::local_addr)
    }

    /// Why the endpoint does not serve: [`ExportError::Bind`] for an address in use, say.
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use perdix_transport::bevy::PerdixPlugin;
    /// use perdix_transport::export::{ExportError, PerdixMetrics, PerdixPrometheusPlugin};
    ///
    /// let taken = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let mut app = App::new();
    /// let plugin = PerdixPrometheusPlugin::new(taken.local_addr()?);
    /// app.add_plugins((PerdixPlugin::default(), plugin));
    /// app.update();
    /// let metrics = app.world().resource::<PerdixMetrics>();
    /// assert!(matches!(metrics.error(), Some(ExportError::Bind { .. })));
    /// assert_eq!(metrics.local_addr(), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn error(&self) -> Option<&ExportError> {
        match &self.state {
            State::Failed(err) => Some(err),
            State::NotStarted | State::Serving(_) => None,
        }
    }

    /// The server, once it serves.
    #[must_use]
    pub fn server(&self) -> Option<&MetricsServer> {
        match &self.state {
            State::Serving(server) => Some(server),
            State::NotStarted | State::Failed(_) => None,
        }
    }
}

/// Binds the endpoint and makes it the rings' counters sink (`Startup`); a failure is kept in
/// the resource and logged.
fn start(metrics: Option<ResMut<PerdixMetrics>>, rings: Option<ResMut<PerdixRings>>) {
    let Some(mut metrics) = metrics else {
        return;
    };
    metrics.state = match MetricsServer::bind(metrics.addr) {
        Ok(server) => {
            if let (Some(mut rings), Some(published)) = (rings, server.published()) {
                publish_to(&published, rings.counters());
                rings.set_counters_sink(move |snapshot| publish_to(&published, snapshot));
            }
            State::Serving(server)
        }
        Err(err) => {
            tracing::error!(%err, "perdix: metrics endpoint not started");
            State::Failed(err)
        }
    };
}
