//! A fleet on one machine: `--nodes` publisher processes, each a headless Bevy app running the
//! stress producers (GPU kernels where there is a GPU, else CPU threads) and publishing its
//! rings over zenoh, and one receiving process (this one) that delivers every node's stream
//! into its own `PerdixBatch` messages, verifies every 64-byte message per producer, and
//! prints each node's throughput, loss and publish-to-receive latency every second and at the
//! end.
//!
//! ```text
//! cargo run --release --features zenoh --example fleet -- [--nodes 2] [--seconds 5]
//!     [--producers 4] [--drop]
//! ```
//!
//! `--drop`: the stream's congestion is `DropNewest` (zenoh drops when the link is full; the
//! receiver counts the gaps exactly from the batch numbers); by default `Block` (nothing lost,
//! backpressure reaches the producers). Peer mode on 127.0.0.1 with explicit endpoints,
//! multicast scouting off; every process stops by itself (the parent kills a child still
//! running at its deadline).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{PerdixAppExt, PerdixBatch, PerdixPlugin, PerdixRings};
use perdix_transport::remote::{
    RemoteAppExt, RemoteConfig, RemotePublisher, RemoteSource, StreamCounters,
};
use perdix_transport::testing::stress::{stream, Verifier};
use perdix_transport::testing::StressProducers;
use perdix_transport::Policy;

/// The stress messages' size: eight words.
const SIZE: usize = 64;
const ROLE: &str = "PERDIX_FLEET_NODE";
/// The most messages a node publishes a frame.
const PUBLISH_PER_FRAME: usize = 1 << 18;
/// How long a node's producers may take to end after the stop request.
const STOP_WAIT: Duration = Duration::from_secs(15);

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn policy() -> Policy {
    if std::env::args().any(|a| a == "--drop") {
        Policy::DropNewest
    } else {
        Policy::Block
    }
}

fn main() {
    perdix_transport::testing::init_logging("warn");
    match std::env::var(ROLE) {
        Ok(node) => publish(&node),
        Err(_) => receive(),
    }
}

/// A node: stress producers into its rings, each frame's take published as batches.
fn publish(node: &str) {
    let (seconds, producers) = (arg("--seconds", 5), arg("--producers", 4));
    let endpoint = std::env::var("PERDIX_FLEET_ENDPOINT").unwrap_or_default();
    let config = RemoteConfig::new(node)
        .map(|c| c.no_listen().connect(&endpoint).policy(policy()))
        .unwrap_or_else(|err| panic!("{node}: config: {err}"));
    let mut publisher = RemotePublisher::open(&config).unwrap_or_else(|e| panic!("{node}: {e}"));
    if let Err(err) = publisher.wait_for_receiver(Duration::from_secs(20)) {
        panic!("{node}: no receiver: {err}");
    }
    let ring = publisher
        .ring("stress")
        .unwrap_or_else(|e| panic!("{node}: {e}"));
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().route(false));
    app.update(); // Startup: where producers run is decided
    let mut rings = app.world_mut().resource_mut::<PerdixRings>();
    let mut stress = StressProducers::spawn(&mut rings, producers as usize, SIZE)
        .unwrap_or_else(|err| panic!("{node}: stress producers: {err}"));
    println!("BACKEND {node} {}", stress.backend());
    let (start, mut stopped) = (Instant::now(), None);
    let mut next_report = Duration::from_secs(seconds + 1);
    loop {
        if stopped.is_none() && start.elapsed() >= Duration::from_secs(seconds) {
            stress.stop();
            stopped = Some(Instant::now());
        }
        if let Some(since) = stopped {
            // Bounded: producers that do not end within STOP_WAIT of the stop request are a
            // failure of this node, said so, never a hang.
            if since.elapsed() > STOP_WAIT {
                let rings = app.world().resource::<PerdixRings>();
                let total = rings.counters().total();
                eprintln!(
                    "{node}: the producers did not end within {STOP_WAIT:?} of the stop request \
                     ({} messages taken, {} slots waiting)",
                    total.messages, total.occupancy
                );
                println!("SENT {node} {}", stress.total_sent());
                std::process::exit(2);
            }
            if start.elapsed() >= next_report {
                next_report += Duration::from_secs(1);
                let rings = app.world().resource::<PerdixRings>();
                let total = rings.counters().total();
                eprintln!(
                    "{node}: stopping for {:.1} s: {} messages taken, {} slots waiting, emitted {}",
                    since.elapsed().as_secs_f64(),
                    total.messages,
                    total.occupancy,
                    stress.total_sent()
                );
            }
        }
        app.update();
        let mut rings = app.world_mut().resource_mut::<PerdixRings>();
        let mut failed = None;
        // Bounded per frame: GPU producers refill the rings as fast as the link takes them,
        // so an unbounded drain would never return to look at the clock.
        rings.drain_with(PUBLISH_PER_FRAME, |msg| {
            if let Err(err) = publisher.publish(ring, msg) {
                failed.get_or_insert(err);
            }
        });
        if let Some(err) = failed {
            panic!("{node}: publish: {err}");
        }
        if let Err(err) = publisher.flush_due() {
            panic!("{node}: flush: {err}");
        }
        if stopped.is_some() && rings.is_finished() {
            break;
        }
    }
    stress.join();
    if let Err(err) = publisher.finish() {
        panic!("{node}: finish: {err}");
    }
    println!("SENT {node} {}", stress.total_sent());
}

/// Per node, what the receiver verified.
#[derive(Resource, Default)]
struct Verified(BTreeMap<String, Verifier>);

/// Checks every delivered message of each node against its producer's stream.
fn verify(
    mut batches: MessageReader<PerdixBatch<[u64; SIZE / 8]>>,
    source: Res<RemoteSource>,
    mut verified: ResMut<Verified>,
) {
    for batch in batches.read() {
        let node = source.origin(batch.ring()).map_or("?", |o| o.node.as_str());
        let verifier = verified
            .0
            .entry(node.to_owned())
            .or_insert_with(|| Verifier::new(true));
        let Some(headers) = batch.headers() else {
            continue;
        };
        for (value, header) in batch.values().iter().zip(headers) {
            let id = stream(header.ring, header.producer);
            verifier.check_stream(id, header.producer, bytemuck::bytes_of(value));
        }
    }
}

fn spawn_node(k: u64, endpoint: &str) -> Child {
    let exe = std::env::current_exe().unwrap_or_else(|err| panic!("current_exe: {err}"));
    Command::new(exe)
        .args(std::env::args().skip(1))
        .env(ROLE, format!("node{k}"))
        .env("PERDIX_FLEET_ENDPOINT", endpoint)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning node{k}: {err}"))
}

/// The receiving process: one app, every node's stream, a line per node every second.
fn receive() {
    let (nodes, seconds) = (arg("--nodes", 2), arg("--seconds", 5));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(17_447, |a| a.port());
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let config = RemoteConfig::new("fleet")
        .map(|c| c.listen(&endpoint).policy(policy()))
        .unwrap_or_else(|err| panic!("config: {err}"));
    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().capacity(16_384))
        .add_perdix_batch_envelope::<[u64; SIZE / 8]>(StressProducers::KIND)
        .init_resource::<Verified>()
        .add_systems(Update, verify);
    if let Err(err) = app.add_perdix_remote(&config) {
        panic!("remote source on {endpoint}: {err}");
    }
    let mut children: Vec<Child> = (0..nodes).map(|k| spawn_node(k, &endpoint)).collect();
    let deadline = Instant::now() + Duration::from_secs(seconds + 60);
    let (start, mut next_line) = (Instant::now(), Instant::now() + Duration::from_secs(1));
    // Per node, the counts of the previous line: messages, latency sum and samples.
    let mut last: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut done_since: Option<Instant> = None;
    loop {
        app.update();
        let source = app.world().resource::<RemoteSource>();
        let counters = source.counters();
        let per_node: BTreeMap<String, StreamCounters> = counters
            .streams
            .keys()
            .map(|id| (id.node.clone(), counters.sum_of(|s| s.node == id.node)))
            .collect();
        if Instant::now() >= next_line {
            next_line += Duration::from_secs(1);
            for (node, n) in &per_node {
                let now = (n.messages, n.latency_sum_ns, n.latency_samples);
                let (m0, s0, k0) = last.insert(node.clone(), now).unwrap_or_default();
                let samples = n.latency_samples.saturating_sub(k0);
                let window_us = n.latency_sum_ns.saturating_sub(s0) as f64 / samples.max(1) as f64;
                println!(
                    "{:5.1}s  {node:8} {:>8.2} M msgs/s  lost {} msgs ({} batches)  \
                     publish-to-receive mean {:.1} us",
                    start.elapsed().as_secs_f64(),
                    n.messages.saturating_sub(m0) as f64 / 1e6,
                    n.lost_messages,
                    n.lost_batches,
                    window_us / 1e3
                );
            }
        }
        let done = children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))));
        let drained = app.world().resource::<PerdixRings>().handed_over() == 0;
        // Every node gone: its streams' END came, or (a node that failed) 3 s passed.
        if !done {
            done_since = None;
        }
        let gone = *done_since.get_or_insert_with(Instant::now);
        let ended = counters.all_ended(nodes as usize) || gone.elapsed() > Duration::from_secs(3);
        if (done && ended && drained) || Instant::now() > deadline {
            app.update(); // the verifier sees the last frame's batches
            summary(
                &mut app,
                &mut children,
                &per_node,
                start.elapsed().as_secs_f64(),
            );
            return;
        }
    }
}

fn summary(
    app: &mut App,
    children: &mut [Child],
    per_node: &BTreeMap<String, StreamCounters>,
    elapsed: f64,
) {
    let mut sent: BTreeMap<String, u64> = BTreeMap::new();
    let mut failed_nodes = 0;
    for child in children.iter_mut() {
        let _ = child.kill(); // a node past the deadline; the others have ended
        if !child.wait().is_ok_and(|status| status.success()) {
            failed_nodes += 1;
        }
        let Some(out) = child.stdout.take() else {
            continue;
        };
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["SENT", node, n] => drop(sent.insert((*node).to_owned(), n.parse().unwrap_or(0))),
                ["BACKEND", node, rest @ ..] => println!("{node}: producers on {}", rest.join(" ")),
                _ => {}
            }
        }
    }
    let mut verifiers = std::mem::take(&mut app.world_mut().resource_mut::<Verified>().0);
    let mut pass = failed_nodes == 0 && per_node.len() == sent.len();
    if failed_nodes > 0 {
        println!("{failed_nodes} node(s) failed or were killed at the deadline");
    }
    println!("\nfleet summary ({:.1} s, {:?})", elapsed, policy());
    for (node, n) in per_node {
        let report = verifiers
            .get_mut(node)
            .map(|v| v.report())
            .unwrap_or_default();
        let published = sent.get(node).copied().unwrap_or(0);
        // Under Block nothing is lost: every message published arrived, verified. Under
        // DropNewest the gaps are the network's, counted from the batch numbers.
        let ok = report.corrupt == 0
            && report.duplicates == 0
            && report.reordered == 0
            && (policy() == Policy::DropNewest
                || (report.is_clean() && n.lost_messages == 0 && report.messages == published));
        pass &= ok;
        println!(
            "  {node:8} published {published}, received {} ({:.2} M msgs/s), verified {} (gaps {}, \
             corrupt {}, reordered {}), lost {} msgs in {} batches, latency mean {:.1} us max \
             {:.1} us  {}",
            n.messages,
            n.messages as f64 / elapsed / 1e6,
            report.messages,
            report.lost,
            report.corrupt,
            report.reordered,
            n.lost_messages,
            n.lost_batches,
            n.latency_mean_ns().unwrap_or(0) as f64 / 1e3,
            n.latency_max_ns as f64 / 1e3,
            if ok { "ok" } else { "FAIL" }
        );
    }
    let dropped = app.world().resource::<RemoteSource>().dropped();
    let received: u64 = per_node.values().map(|n| n.messages).sum();
    let verified: u64 = verifiers.values().map(|v| v.report().messages).sum();
    println!(
        "  received {received} = verified {verified} + dropped by this app's full rings {dropped}{}",
        if received == verified + dropped { "" } else { " (MISMATCH)" }
    );
    pass &= received == verified + dropped;
    println!("  verdict  {}", if pass { "pass" } else { "FAIL" });
    if !pass {
        std::process::exit(1);
    }
}
