//! [`MetricsServer`]: the `/metrics` endpoint on its own thread, serving the latest published
//! snapshot or one taken at scrape time; [`ExportError`], why it could not start.
#![forbid(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use prometheus_client::registry::Registry;

use super::http::{self, Route};
use super::metrics::{PerdixCollector, CONTENT_TYPE};
use crate::telemetry::{CountersSnapshot, RingCounters};
use crate::Monitor;

/// The default address: loopback only, port 9464 (the port OpenTelemetry's Prometheus
/// exporters use).
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9464));

/// How long the server thread sleeps when no connection is waiting: the most a scrape waits to
/// be accepted, and (with one connection's deadlines) the most [`Drop`] waits.
const POLL: Duration = Duration::from_millis(20);

/// Why a [`MetricsServer`] did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The address could not be bound (in use, not local, no permission).
    #[error("cannot bind the metrics endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket's error.
        #[source]
        source: io::Error,
    },
    /// The bound listener could not be set up (non-blocking mode, its local address).
    #[error("cannot set up the metrics listener on {addr}: {source}")]
    Listener {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket's error.
        #[source]
        source: io::Error,
    },
    /// The server thread could not start.
    #[error("cannot start the metrics server thread: {0}")]
    Spawn(#[source] io::Error),
}

/// The latest snapshot handed to [`MetricsServer::publish`]: the server serves it, and a
/// publisher may hold a clone (the Bevy plugin's sink).
pub(crate) type Published = Arc<Mutex<Arc<CountersSnapshot>>>;

/// Makes `snapshot` the one `published` holds (the old one drops after the lock is released).
pub(crate) fn publish_to(published: &Published, snapshot: CountersSnapshot) {
    let snapshot = Arc::new(snapshot);
    let _old = std::mem::replace(
        &mut *published.lock().unwrap_or_else(PoisonError::into_inner),
        snapshot,
    );
}

/// An HTTP endpoint serving perdix's counters at `GET /metrics` in the Prometheus text format
/// ([`PerdixCollector`] lists the metrics), from a thread of its own, until dropped.
///
/// Its snapshot comes from [`publish`](Self::publish) (the Bevy plugin's way: a system
/// publishes every ~100 ms) or from a source called at each scrape
/// ([`with_source`](Self::with_source), [`for_monitors`](Self::for_monitors): a plain
/// consumer's way, no Bevy). Every other path gets `404`. One connection is served at a time,
/// each within deadlines (2 s for the request, 2 s per write), and dropping the server stops
/// and joins its thread within them. No traffic leaves the address it binds: the default is
/// loopback ([`DEFAULT_ADDR`]).
///
/// # Examples
///
/// A plain consumer's endpoint, on a port the system picks:
///
/// ```
/// use std::io::{Read, Write};
/// use std::net::TcpStream;
/// use perdix_transport::export::MetricsServer;
/// use perdix_transport::Buffer;
///
/// let (mut producer, mut consumer) = Buffer::new(8)?.into_split();
/// let server = MetricsServer::for_monitors(
///     "127.0.0.1:0".parse()?,
///     [("sensors", consumer.monitor())],
/// )?;
/// producer.try_produce(b"reading")?;
/// consumer.drain(8, |_| {});
///
/// let mut http = TcpStream::connect(server.local_addr())?;
/// http.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n")?;
/// let mut response = String::new();
/// http.read_to_string(&mut response)?;
/// assert!(response.starts_with("HTTP/1.1 200 OK"));
/// assert!(response.contains("perdix_messages_total{ring=\"sensors\",device=\"cpu\"} 1\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A taken port is an error value:
///
/// ```
/// use perdix_transport::export::{ExportError, MetricsServer};
///
/// let first = MetricsServer::bind("127.0.0.1:0".parse()?)?;
/// let second = MetricsServer::bind(first.local_addr());
/// assert!(matches!(second, Err(ExportError::Bind { .. })));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MetricsServer {
    local_addr: SocketAddr,
    /// `Some` when serving published snapshots.
    published: Option<Published>,
    stop: Arc<AtomicBool>,
    scrapes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the snapshot last [`publish`](Self::publish)ed (an empty one
    /// until then). Port 0 picks a free port: see [`local_addr`](Self::local_addr).
    ///
    /// # Errors
    ///
    /// [`ExportError::Bind`] if `addr` cannot be bound, [`ExportError::Listener`] if the
    /// listener cannot be set up, [`ExportError::Spawn`] if its thread cannot start.
    pub fn bind(addr: SocketAddr) -> Result<Self, ExportError> {
        let published: Published = Arc::default();
        let slot = Arc::clone(&published);
        let source = move || Arc::clone(&slot.lock().unwrap_or_else(PoisonError::into_inner));
        let mut server = Self::start(addr, PerdixCollector::new(source))?;
        server.published = Some(published);
        Ok(server)
    }

    /// Binds `addr` and serves what `source` returns, called on the server thread at each
    /// scrape.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn with_source(
        addr: SocketAddr,
        source: impl Fn() -> CountersSnapshot + Send + Sync + 'static,
    ) -> Result<Self, ExportError> {
        Self::start(addr, PerdixCollector::new(move || Arc::new(source())))
    }

    /// Binds `addr` and serves the counters of these rings, read from their [`Monitor`]s at
    /// each scrape and named as given (the `ring` label; `device` is `cpu`): a plain
    /// [`Consumer`](crate::Consumer)'s endpoint, no Bevy needed.
    ///
    /// # Errors
    ///
    /// As [`bind`](Self::bind).
    pub fn for_monitors<N: Into<Arc<str>>>(
        addr: SocketAddr,
        monitors: impl IntoIterator<Item = (N, Monitor)>,
    ) -> Result<Self, ExportError> {
        let rings: Vec<(Arc<str>, Monitor)> = monitors
            .into_iter()
            .map(|(name, monitor)| (name.into(), monitor))
            .collect();
        Self::with_source(addr, move || {
            CountersSnapshot::of_rings(rings.iter().zip(0u32..).map(|((name, monitor), ring)| {
                RingCounters {
                    ring,
                    name: Arc::clone(name),
                    device: None,
                    counters: monitor.stats().into(),
                }
            }))
        })
    }

    /// The address it listens on (with the port picked, when bound to port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Makes `snapshot` the one served from now on (swaps an `Arc`; a scrape in progress
    /// finishes with the one it took). Ignored by a server with a source of its own
    /// ([`with_source`](Self::with_source), [`for_monitors`](Self::for_monitors)).
    pub fn publish(&self, snapshot: CountersSnapshot) {
        if let Some(published) = &self.published {
            publish_to(published, snapshot);
        }
    }

    /// Where [`publish`](Self::publish) puts a snapshot (`None` for a server with a source of
    /// its own), for a publisher on another thread or in a closure.
    #[cfg(feature = "bevy")]
    pub(crate) fn published(&self) -> Option<Published> {
        self.published.clone()
    }

    /// `GET /metrics` requests answered so far.
    #[must_use]
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    fn start(addr: SocketAddr, collector: PerdixCollector) -> Result<Self, ExportError> {
        let listener =
            TcpListener::bind(addr).map_err(|source| ExportError::Bind { addr, source })?;
        let listener_err = |source| ExportError::Listener { addr, source };
        listener.set_nonblocking(true).map_err(listener_err)?;
        let local_addr = listener.local_addr().map_err(listener_err)?;
        let mut registry = Registry::default();
        registry.register_collector(Box::new(collector));
        let stop = Arc::new(AtomicBool::new(false));
        let scrapes = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, scrapes) = (Arc::clone(&stop), Arc::clone(&scrapes));
            thread::Builder::new()
                .name("perdix-metrics".into())
                .spawn(move || serve(&listener, &registry, &stop, &scrapes))
                .map_err(ExportError::Spawn)?
        };
        tracing::info!(%local_addr, "perdix: serving metrics at /metrics");
        Ok(Self {
            local_addr,
            published: None,
            stop,
            scrapes,
            thread: Some(thread),
        })
    }
}

impl Drop for MetricsServer {
    /// Stops the server thread and joins it (within 20 ms and one connection's deadlines).
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("perdix: the metrics server thread panicked");
            }
        }
    }
}

/// The server thread: accepts until `stop`, one connection at a time.
fn serve(listener: &TcpListener, registry: &Registry, stop: &AtomicBool, scrapes: &AtomicU64) {
    let mut body = String::new();
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(err) = answer(stream, registry, &mut body, scrapes) {
                    tracing::debug!(%err, "perdix: metrics request not answered");
                }
            }
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => {
                // Out of file descriptors, say: wait rather than spin.
                tracing::warn!(%err, "perdix: metrics endpoint cannot accept");
                thread::sleep(POLL);
            }
        }
    }
}

/// Reads one request from `stream` and answers it.
fn answer(
    mut stream: TcpStream,
    registry: &Registry,
    body: &mut String,
    scrapes: &AtomicU64,
) -> io::Result<()> {
    // Accepted sockets may inherit the listener's non-blocking mode on some systems.
    stream.set_nonblocking(false)?;
    match http::read_route(&mut stream)? {
        Route::Metrics => {
            body.clear();
            if prometheus_client::encoding::prometheus_text::encode(body, registry).is_err() {
                return http::respond(&mut stream, "500 Internal Server Error", "text/plain", b"");
            }
            scrapes.fetch_add(1, Ordering::Relaxed);
            http::respond(&mut stream, "200 OK", CONTENT_TYPE, body.as_bytes())
        }
        Route::NotFound => {
            http::respond(&mut stream, "404 Not Found", "text/plain", b"not found\n")
        }
        Route::Bad => http::respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
        ),
    }
}
