//! The `/metrics` endpoint (feature `prometheus`) over real TCP on 127.0.0.1: a plain
//! consumer's counters arrive and grow between two scrapes; the Bevy plugin's likewise (with
//! `bevy`); other paths get 404. Every wait is bounded (socket timeouts, bounded loops).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use perdix_transport::export::{ExportError, MetricsServer};
use perdix_transport::Buffer;

const TIMEOUT: Duration = Duration::from_secs(5);

/// One `GET path` to `addr`: the status line and the body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut http = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    http.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    http.set_write_timeout(Some(TIMEOUT))
        .expect("write timeout");
    write!(http, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").expect("request");
    let mut response = String::new();
    http.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample line `series` (name and labels, as written) in `body`.
fn sample(body: &str, series: &str) -> u64 {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
        .parse()
        .expect("an integer sample")
}

#[test]
fn plain_consumer_counters_arrive_and_grow() {
    let (mut producer, mut consumer) = Buffer::new(64).expect("ring").into_split();
    let server = MetricsServer::for_monitors(
        "127.0.0.1:0".parse().expect("addr"),
        [("sensors", consumer.monitor())],
    )
    .expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);

    let writer = std::thread::spawn(move || {
        for i in 0u32..100 {
            producer.produce(&i.to_le_bytes()).expect("produce");
        }
        producer
    });
    let mut taken = 0;
    // Bounded: 100 messages, or 10 s.
    for _ in 0..10_000 {
        taken += consumer.drain(64, |_| {});
        if taken == 100 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(taken, 100);
    let mut producer = writer.join().expect("producer");

    let messages = r#"perdix_messages_total{ring="sensors",device="cpu"}"#;
    let bytes = r#"perdix_bytes_total{ring="sensors",device="cpu"}"#;
    let (status, first) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(
        (sample(&first, messages), sample(&first, bytes)),
        (100, 400)
    );
    assert_eq!(
        sample(
            &first,
            r#"perdix_ring_capacity_slots{ring="sensors",device="cpu"}"#
        ),
        64
    );

    for i in 0u32..20 {
        producer.produce(&i.to_le_bytes()).expect("produce");
    }
    assert_eq!(consumer.drain(64, |_| {}), 20);
    let (_, second) = get(addr, "/metrics");
    assert_eq!(
        (sample(&second, messages), sample(&second, bytes)),
        (120, 480)
    );
    assert_eq!(server.scrapes(), 2);
}

#[test]
fn other_paths_and_bad_requests_are_refused() {
    let server = MetricsServer::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    assert_eq!(get(server.local_addr(), "/").0, "HTTP/1.1 404 Not Found");
    assert_eq!(
        get(server.local_addr(), "/metricsx").0,
        "HTTP/1.1 404 Not Found"
    );

    let mut http = TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect");
    http.set_read_timeout(Some(TIMEOUT)).expect("read timeout");
    http.write_all(&[b'x'; 9000]).expect("request");
    let mut response = String::new();
    http.read_to_string(&mut response).expect("response");
    assert!(
        response.starts_with("HTTP/1.1 400 Bad Request"),
        "{response}"
    );
    assert_eq!(server.scrapes(), 0);
}

#[test]
fn a_taken_address_is_an_error_value_with_its_text() {
    let first = MetricsServer::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let addr = first.local_addr();
    let err = MetricsServer::bind(addr).expect_err("the port is taken");
    assert!(matches!(err, ExportError::Bind { addr: a, .. } if a == addr));
    let text = err.to_string();
    let expected = format!("cannot bind the metrics endpoint to {addr}: ");
    assert!(text.starts_with(&expected), "{text}");
    assert!(std::error::Error::source(&err).is_some());
}

#[test]
fn a_silent_client_does_not_block_the_next_scrape_for_long() {
    let server = MetricsServer::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
    let _silent = TcpStream::connect_timeout(&server.local_addr(), TIMEOUT).expect("connect");
    // The silent connection is dropped after the 2 s request deadline; this one is answered.
    let (status, body) = get(server.local_addr(), "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("# TYPE perdix_messages_total counter"));
    drop(server); // joins the thread: returns
}

#[cfg(feature = "bevy")]
#[test]
fn bevy_plugin_counters_arrive_and_grow() {
    use bevy_app::App;
    use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
    use perdix_transport::export::{PerdixMetrics, PerdixPrometheusPlugin};

    let mut app = App::new();
    app.add_plugins((
        PerdixPlugin::default(),
        PerdixPrometheusPlugin::new("127.0.0.1:0".parse().expect("addr")),
    ));
    let mut producer = app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .add_producer("bevy \"ring\"")
        .expect("producer");
    for i in 0u32..50 {
        producer.try_produce(&i.to_le_bytes()).expect("produce");
    }
    app.update();
    let metrics = app.world().resource::<PerdixMetrics>();
    assert!(metrics.error().is_none());
    let addr = metrics.local_addr().expect("serving");

    let messages = r#"perdix_messages_total{ring="bevy \"ring\"",device="cpu"}"#;
    let (status, first) = get(addr, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(sample(&first, messages), 50);
    assert!(sample(&first, "perdix_frames_total") >= 1);

    for i in 0u32..30 {
        producer.try_produce(&i.to_le_bytes()).expect("produce");
    }
    // The plugin publishes every ~100 ms, as frames close: frames until it did (at most 5 s).
    let mut second = String::new();
    for _ in 0..500 {
        app.update();
        second = get(addr, "/metrics").1;
        if sample(&second, messages) == 80 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(sample(&second, messages), 80);
    assert!(sample(&second, "perdix_frames_total") > sample(&first, "perdix_frames_total"));
}
