//! [`PerdixPrometheusPlugin`]: the Bevy plugin's counters at a `/metrics` endpoint, and
//! [`PerdixMetrics`], the endpoint's state (serving where, or why not).
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bevy_app::{App, Last, Plugin, Startup};
use bevy_ecs::resource::Resource;
use bevy_ecs::schedule::IntoScheduleConfigs;
use bevy_ecs::system::{Res, ResMut};

use super::server::{ExportError, MetricsServer, DEFAULT_ADDR};
use crate::bevy::PerdixRings;
use crate::clock;

/// Serves [`PerdixRings::counters`] at `GET /metrics` for Prometheus, from a
/// [`MetricsServer`] on its own thread.
///
/// `build()` only registers: the [`PerdixMetrics`] resource, a `Startup` system that binds
/// [`addr`](Self::addr), and a system in `Last`, after the plugin closes the frame, that
/// publishes a snapshot at most every [`interval`](Self::interval) (a snapshot costs a `Vec`
/// per ring: not every frame). Add it with
/// [`PerdixPlugin`](crate::bevy::PerdixPlugin). A bind failure does not stop the app: it is
/// [`PerdixMetrics::error`], and logged.
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
    /// Publishes the counters at most this often. Default 100 ms: finer than any scrape
    /// interval, rare enough to cost nothing measurable per frame.
    pub interval: Duration,
}

impl Default for PerdixPrometheusPlugin {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR,
            interval: Duration::from_millis(100),
        }
    }
}

impl PerdixPrometheusPlugin {
    /// The endpoint at `addr`, publishing every 100 ms.
    #[must_use]
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            ..Self::default()
        }
    }

    /// Publishes at most every `interval`.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

impl Plugin for PerdixPrometheusPlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(PerdixMetrics {
            addr: self.addr,
            interval_ns: u64::try_from(self.interval.as_nanos()).unwrap_or(u64::MAX),
            last_ns: None,
            state: State::NotStarted,
        })
        .add_systems(Startup, start)
        .add_systems(Last, publish.after(crate::bevy::frame::close_frame));
    }
}

/// The endpoint of a [`PerdixPrometheusPlugin`]: serving (where), or why not.
#[derive(Resource, Debug)]
pub struct PerdixMetrics {
    addr: SocketAddr,
    interval_ns: u64,
    /// When the latest snapshot was published, [`clock::now_ns`].
    last_ns: Option<u64>,
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

/// Binds the endpoint (`Startup`); a failure is kept in the resource and logged.
fn start(metrics: Option<ResMut<PerdixMetrics>>) {
    let Some(mut metrics) = metrics else {
        return;
    };
    metrics.state = match MetricsServer::bind(metrics.addr) {
        Ok(server) => State::Serving(server),
        Err(err) => {
            tracing::error!(%err, "perdix: metrics endpoint not started");
            State::Failed(err)
        }
    };
}

/// Publishes the rings' counters, at most every `interval` (`Last`, after the frame closed).
fn publish(rings: Option<Res<PerdixRings>>, metrics: Option<ResMut<PerdixMetrics>>) {
    let (Some(rings), Some(mut metrics)) = (rings, metrics) else {
        return;
    };
    let now = clock::now_ns();
    if metrics
        .last_ns
        .is_some_and(|last| now.saturating_sub(last) < metrics.interval_ns)
    {
        return;
    }
    if let State::Serving(server) = &metrics.state {
        server.publish(rings.counters());
        metrics.last_ns = Some(now);
    }
}
