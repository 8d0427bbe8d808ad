//! The stream over zenoh between two processes on 127.0.0.1: this test binary runs itself
//! again as the publisher (`PERDIX_REMOTE_ROLE=publish`), and receives in the test.
//!
//! Every message is 64 bytes: its index, a pattern, a checksum. Under `Block` every message
//! arrives, in order, verified, none lost (over TCP, and over shared memory); under
//! `DropNewest` with a receiver slowed on purpose, the receiver's counts of lost batches and
//! messages equal exactly what the publisher sent less what arrived. Multicast scouting is
//! off (the crate's default), endpoints are loopback, and every wait is bounded: a child
//! still running at the deadline is killed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use perdix_transport::remote::{RemoteConfig, RemoteCounters, RemotePublisher, RemoteReceiver};
use perdix_transport::{Buffer, Policy};

#[cfg(feature = "bevy")]
#[path = "remote/bevy_source.rs"]
mod bevy_source;

const ROLE: &str = "PERDIX_REMOTE_ROLE";
const ENDPOINT: &str = "PERDIX_REMOTE_ENDPOINT";
const SETTINGS: &str = "PERDIX_REMOTE_SETTINGS";
const DEADLINE: Duration = Duration::from_secs(60);
const MESSAGE: usize = 64;

/// Message `i`: its index, 48 bytes of pattern, and an FNV-1a checksum of the 56 before.
fn message(i: u64) -> [u8; MESSAGE] {
    let mut m = [0u8; MESSAGE];
    m[..8].copy_from_slice(&i.to_le_bytes());
    for (j, b) in m[8..56].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(j as u8);
    }
    let sum = fnv(&m[..56]);
    m[56..].copy_from_slice(&sum.to_le_bytes());
    m
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// The index of a message that checks, or why not.
fn verify(payload: &[u8]) -> Result<u64, String> {
    if payload.len() != MESSAGE {
        return Err(format!("length {}", payload.len()));
    }
    let i = u64::from_le_bytes(payload[..8].try_into().unwrap());
    if payload != message(i) {
        return Err(format!(
            "message {i} does not match its checksum or pattern"
        ));
    }
    Ok(i)
}

/// The child publisher's producer id, kept in the headers the receiving app delivers.
const PUBLISHER_ID: u32 = 7;

/// The publisher's side, in the child process: `messages` messages through a ring into a
/// publisher thread; prints what it sent.
#[test]
fn child_publisher() {
    let Ok(endpoint) = std::env::var(ENDPOINT) else {
        return; // not the child
    };
    if std::env::var(ROLE).as_deref() != Ok("publish") {
        return;
    }
    let settings = std::env::var(SETTINGS).unwrap();
    let mut it = settings.split(',');
    let messages: u64 = it.next().unwrap().parse().unwrap();
    let policy: Policy = it.next().unwrap().parse().unwrap();
    let shm = it.next() == Some("shm");
    let config = RemoteConfig::new("pub")
        .unwrap()
        .no_listen()
        .connect(&endpoint)
        .shared_memory(shm)
        .policy(policy);
    let publisher = RemotePublisher::open(&config).unwrap();
    publisher
        .wait_for_receiver(Duration::from_secs(20))
        .unwrap();
    let (mut producer, consumer) = Buffer::builder(4096)
        .policy(Policy::Block)
        .producer_id(PUBLISHER_ID)
        .build()
        .unwrap()
        .into_split();
    let thread = publisher.spawn_for("ring0", consumer).unwrap();
    let start = Instant::now();
    for i in 0..messages {
        producer.produce_kind(1, &message(i)).unwrap();
        assert!(start.elapsed() < DEADLINE, "publisher past its deadline");
    }
    drop(producer);
    let sent = thread.wait(DEADLINE).unwrap();
    println!(
        "PUBLISHED messages={} batches={}",
        sent.messages, sent.batches
    );
}

/// Starts the publisher child on `endpoint`.
fn spawn_publisher(endpoint: &str, messages: u64, policy: Policy, shm: bool) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_publisher",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "publish")
        .env(ENDPOINT, endpoint)
        .env(
            SETTINGS,
            format!("{messages},{policy},{}", if shm { "shm" } else { "tcp" }),
        )
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Kills the child unless it ended; its `PUBLISHED` line's (messages, batches).
fn finish_child(mut child: Child, deadline: Instant) -> (u64, u64) {
    loop {
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "publisher failed: {status}");
                break;
            }
            None if Instant::now() > deadline => {
                child.kill().ok();
                child.wait().ok();
                panic!("publisher still running at the deadline: killed");
            }
            None => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    let out = BufReader::new(child.stdout.take().unwrap());
    let line = out
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.find("PUBLISHED").map(|at| l[at..].to_owned()))
        .expect("PUBLISHED line");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("messages="), field("batches="))
}

/// A loopback endpoint on a port free now.
fn free_endpoint() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("tcp/127.0.0.1:{port}")
}

/// A receiver listening on a free loopback port (retried if another process takes it first).
fn open_receiver(config: impl Fn(&str) -> RemoteConfig) -> (RemoteReceiver, String) {
    for _ in 0..5 {
        let endpoint = free_endpoint();
        if let Ok(receiver) = RemoteReceiver::open(&config(&endpoint)) {
            return (receiver, endpoint);
        }
    }
    panic!("no free loopback port in 5 tries");
}

/// Receives until the stream ends (or the deadline), verifying every message: each one's
/// checksum, and its index against its place in the stream. `slow` batches first are
/// received one per 5 ms. Returns the counts and the messages verified.
fn receive(receiver: &mut RemoteReceiver, deadline: Instant, slow: u64) -> (RemoteCounters, u64) {
    let mut verified = 0u64;
    let mut batches = 0u64;
    loop {
        assert!(
            Instant::now() < deadline,
            "receiver past its deadline: {:?}",
            receiver.counters().total()
        );
        let Some(batch) = receiver.recv_timeout(Duration::from_millis(200)).unwrap() else {
            if receiver.counters().all_ended(1) {
                break;
            }
            continue;
        };
        batches += 1;
        if batches <= slow {
            std::thread::sleep(Duration::from_millis(5));
        }
        let first = batch.header().first;
        for (k, record) in batch.records().enumerate() {
            let i = verify(record.payload).unwrap_or_else(|e| panic!("{}: {e}", batch.stream()));
            assert_eq!(
                i,
                first + k as u64,
                "message out of place in {}",
                batch.stream()
            );
            assert_eq!(record.kind, 1);
            verified += 1;
        }
        if batch.header().is_end() {
            break;
        }
    }
    (receiver.counters(), verified)
}

fn block_run(messages: u64, shm: bool) {
    let deadline = Instant::now() + DEADLINE;
    let (mut receiver, endpoint) = open_receiver(|ep| {
        RemoteConfig::new("sink")
            .unwrap()
            .listen(ep)
            .shared_memory(shm)
            .queue(8)
    });
    let child = spawn_publisher(&endpoint, messages, Policy::Block, shm);
    let (counters, verified) = receive(&mut receiver, deadline, 0);
    let (published, sent_batches) = finish_child(child, deadline);
    let total = counters.total();
    assert_eq!(published, messages);
    assert_eq!((verified, total.messages), (messages, messages));
    assert_eq!(
        (total.lost_batches, total.lost_messages, counters.malformed),
        (0, 0, 0)
    );
    assert_eq!(total.batches, sent_batches);
    assert_eq!(counters.streams.len(), 1);
}

#[test]
fn block_delivers_every_message_verified_over_tcp() {
    block_run(300_000, false);
}

#[test]
fn block_delivers_every_message_verified_over_shared_memory() {
    block_run(300_000, true);
}

#[test]
fn drop_newest_counts_every_gap_exactly() {
    let messages = 600_000;
    let deadline = Instant::now() + DEADLINE;
    let (mut receiver, endpoint) = open_receiver(|ep| {
        RemoteConfig::new("sink")
            .unwrap()
            .listen(ep)
            .shared_memory(false)
            .queue(2)
    });
    let child = spawn_publisher(&endpoint, messages, Policy::DropNewest, false);
    let (counters, verified) = receive(&mut receiver, deadline, 200);
    let (published, sent_batches) = finish_child(child, deadline);
    let total = counters.total();
    assert_eq!(
        published, messages,
        "the publisher sent every message to zenoh"
    );
    assert_eq!(total.messages, verified);
    assert_eq!(
        total.lost_messages,
        published - verified,
        "every lost message counted: {total:?}"
    );
    assert_eq!(
        total.lost_batches,
        sent_batches - total.batches,
        "every lost batch counted: {total:?}"
    );
    assert!(
        total.lost_messages > 0,
        "a receiver this slow loses batches under DropNewest: {total:?}"
    );
    assert_eq!(counters.malformed, 0);
}

/// A publisher thread stops within its deadline while its producer never lets the ring empty
/// (no receiver: zenoh discards at the source), and its producer then sees the ring gone.
#[test]
fn publisher_thread_stops_under_load() {
    let config = RemoteConfig::new("lonely")
        .unwrap()
        .listen(&free_endpoint())
        .shared_memory(false);
    let publisher = RemotePublisher::open(&config).unwrap();
    let (mut producer, consumer) = Buffer::new(1024).unwrap().into_split();
    let thread = publisher.spawn_for("busy", consumer).unwrap();
    let feeder = std::thread::spawn(move || {
        let deadline = Instant::now() + DEADLINE;
        let mut i = 0u64;
        while Instant::now() < deadline {
            match producer.produce_kind(1, &message(i)) {
                Ok(()) => i += 1,
                Err(perdix_transport::Error::Disconnected) => return i,
                Err(e) => panic!("{e}"),
            }
        }
        panic!("the ring never went away");
    });
    std::thread::sleep(Duration::from_millis(300));
    // A stop that never came would leave the feeder producing until its deadline (a panic).
    let sent = thread.stop().unwrap();
    let produced = feeder.join().unwrap();
    assert!(
        sent.messages > 0 && sent.messages <= produced,
        "{sent:?} of {produced}"
    );
}
