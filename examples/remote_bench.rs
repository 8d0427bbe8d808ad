//! Two processes on 127.0.0.1 over zenoh: 64-byte messages in batches (64 KiB by default),
//! every message verified on the receiver. Prints messages/s end to end, over TCP and over
//! shared memory.
//!
//! ```text
//! cargo run --release --no-default-features --features zenoh --example remote_bench -- \
//!     [--messages N] [--batch-bytes B] [--source ring|direct|raw] [--only tcp|shm]
//!     [--zenoh key=json5]...
//! ```
//!
//! `--source ring` (default): a producer thread writes each message into a ring, the
//! publisher's own thread drains it into batches (`RemotePublisher::spawn_for`): the whole
//! path. `direct`: messages go straight into `RemotePublisher::publish` (no ring).
//! `raw`: zenoh alone, no perdix code: one batch's bytes put again and again, the receiver
//! only counts samples and bytes (the transport's ceiling for this batch size).
//!
//! The run re-executes this binary as the receiver (it listens) and the publisher (it
//! connects); both stop by themselves (the stream's END batch, or a 120 s deadline, at which
//! the parent kills them). Multicast scouting is off; nothing leaves 127.0.0.1.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use perdix_transport::remote::wire::{unix_ns, Record};
use perdix_transport::remote::BatchWriter;
use perdix_transport::remote::{RemoteConfig, RemotePublisher, RemoteReceiver};
use perdix_transport::{Buffer, Policy};

const DEADLINE: Duration = Duration::from_secs(120);
const MESSAGE: usize = 64;

/// Message `i`: eight little-endian words, `i`, six of a pattern, and their checksum.
#[inline]
fn message(i: u64) -> [u8; MESSAGE] {
    let mut w = [0u64; 8];
    w[0] = i;
    for (k, x) in w.iter_mut().enumerate().take(7).skip(1) {
        *x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(k as u64);
    }
    w[7] = checksum(&w);
    let mut m = [0u8; MESSAGE];
    for (chunk, x) in m.chunks_exact_mut(8).zip(w) {
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    m
}

#[inline]
fn checksum(w: &[u64; 8]) -> u64 {
    w[..7].iter().fold(0x5eed, |s, &x| s.rotate_left(5) ^ x)
}

/// Whether `payload` is message `i`.
#[inline]
fn verify(payload: &[u8], i: u64) -> bool {
    payload.len() == MESSAGE && payload == message(i)
}

#[derive(Clone)]
struct Args {
    messages: u64,
    batch_bytes: usize,
    source: String,
    only: Option<String>,
    zenoh: Vec<(String, String)>,
}

fn args() -> Args {
    let mut a = Args {
        messages: 20_000_000,
        batch_bytes: 64 * 1024,
        source: "ring".into(),
        only: None,
        zenoh: Vec::new(),
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    for pair in argv.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--messages" => a.messages = value.parse().expect("--messages N"),
            "--batch-bytes" => a.batch_bytes = value.parse().expect("--batch-bytes B"),
            "--source" => a.source = value,
            "--only" => a.only = Some(value),
            "--zenoh" => {
                let (k, v) = value.split_once('=').expect("--zenoh key=json5");
                a.zenoh.push((k.to_owned(), v.to_owned()));
            }
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

fn main() {
    let a = args();
    match std::env::var("PERDIX_BENCH_ROLE").as_deref() {
        Ok("receive") => receive(&a),
        Ok("publish") => publish(&a),
        _ => {
            for shm in [false, true] {
                let name = if shm { "shm" } else { "tcp" };
                if a.only.as_deref().is_some_and(|o| o != name) {
                    continue;
                }
                run(&a, shm);
            }
        }
    }
}

fn config(a: &Args, shm: bool, batch: usize) -> RemoteConfig {
    let endpoint = std::env::var("PERDIX_BENCH_ENDPOINT").expect("endpoint");
    let config = RemoteConfig::new(
        if std::env::var("PERDIX_BENCH_ROLE").as_deref() == Ok("receive") {
            "sink"
        } else {
            "bench"
        },
    )
    .unwrap()
    .shared_memory(shm)
    .batch_bytes(batch)
    .unwrap()
    .policy(Policy::Block)
    .queue(16);
    let config = a
        .zenoh
        .iter()
        .fold(config, |c, (k, v)| c.zenoh_setting(k, v));
    if std::env::var("PERDIX_BENCH_ROLE").as_deref() == Ok("receive") {
        config.listen(&endpoint)
    } else {
        config.no_listen().connect(&endpoint)
    }
}

/// The parent: a receiver and a publisher child; the figures.
fn run(a: &Args, shm: bool) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("tcp/127.0.0.1:{port}");
    let exe = std::env::current_exe().unwrap();
    let mut argv = vec![
        "--messages".to_string(),
        a.messages.to_string(),
        "--batch-bytes".into(),
        a.batch_bytes.to_string(),
        "--source".into(),
        a.source.clone(),
    ];
    argv.extend(["--only".into(), if shm { "shm" } else { "tcp" }.into()]);
    for (k, v) in &a.zenoh {
        argv.extend(["--zenoh".into(), format!("{k}={v}")]);
    }
    let child = |role: &str| {
        Command::new(&exe)
            .args(&argv)
            .env("PERDIX_BENCH_ROLE", role)
            .env("PERDIX_BENCH_ENDPOINT", &endpoint)
            .env("PERDIX_BENCH_SHM", if shm { "1" } else { "0" })
            .stdout(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let receiver = child("receive");
    std::thread::sleep(Duration::from_millis(300));
    let publisher = child("publish");
    let deadline = Instant::now() + DEADLINE;
    let out = |mut c: std::process::Child| -> String {
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                assert!(status.success(), "a child failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                c.kill().ok();
                c.wait().ok();
                panic!("a child ran past the deadline: killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut s = String::new();
        std::io::Read::read_to_string(&mut c.stdout.take().unwrap(), &mut s).unwrap();
        s
    };
    let mut receiver = receiver;
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| out(publisher)));
    let Ok(p) = p else {
        receiver.kill().ok();
        receiver.wait().ok();
        panic!("the publisher failed: receiver killed");
    };
    let r = out(receiver);
    let field = |s: &str, name: &str| -> u64 {
        s.split_whitespace()
            .find_map(|f| f.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in {s:?}"))
    };
    let start = field(&p, "start_ns=");
    let end = field(&r, "end_ns=");
    let messages = field(&r, "messages=");
    let bytes = field(&r, "bytes=");
    let secs = (end.saturating_sub(start)) as f64 / 1e9;
    println!(
        "{} source={} batch={} B: {} messages verified={} lost={} bad={} in {:.3} s: {:.2} M msgs/s, {:.2} GB/s of batches",
        if shm { "shm" } else { "tcp" },
        a.source,
        a.batch_bytes,
        messages,
        field(&r, "verified="),
        field(&r, "lost="),
        field(&r, "bad="),
        secs,
        messages as f64 / secs / 1e6,
        bytes as f64 / secs / 1e9,
    );
}

fn shm() -> bool {
    std::env::var("PERDIX_BENCH_SHM").as_deref() == Ok("1")
}

/// The publisher child.
fn publish(a: &Args) {
    let publisher = RemotePublisher::open(&config(a, shm(), a.batch_bytes)).unwrap();
    publisher
        .wait_for_receiver(Duration::from_secs(20))
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = unix_ns();
    match a.source.as_str() {
        "ring" => {
            let (mut producer, consumer) = Buffer::builder(1 << 16)
                .policy(Policy::Block)
                .build()
                .unwrap()
                .into_split();
            let thread = publisher.spawn_for("ring0", consumer).unwrap();
            for i in 0..a.messages {
                producer.produce_kind(1, &message(i)).unwrap();
            }
            drop(producer);
            thread.wait(DEADLINE).unwrap();
        }
        "direct" => {
            let mut publisher = publisher;
            let ring = publisher.ring("ring0").unwrap();
            for i in 0..a.messages {
                let m = message(i);
                let r = Record {
                    kind: 1,
                    producer: 0,
                    seq: i,
                    stamp_ns: 0,
                    payload: &m,
                };
                publisher.publish(ring, r).unwrap();
            }
            publisher.finish().unwrap();
        }
        "raw" => raw_publish(a),
        other => panic!("unknown source {other}"),
    }
    println!("start_ns={start}");
}

/// zenoh alone: one batch built once, put again and again (a reference-counted clone of its
/// bytes each time) until `messages` messages went; the receiver only counts.
fn raw_publish(a: &Args) {
    let session = zenoh::open(config(a, shm(), a.batch_bytes).zenoh_config().unwrap())
        .wait()
        .unwrap();
    let publisher = session
        .declare_publisher("perdix/bench/raw/1")
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    let mut w = BatchWriter::new(a.batch_bytes);
    w.begin(0, 0);
    let mut per_batch = 0u64;
    while w.fits(MESSAGE) {
        w.push(Record {
            kind: 1,
            producer: 0,
            seq: per_batch,
            stamp_ns: 0,
            payload: &message(per_batch),
        });
        per_batch += 1;
    }
    w.finish(0, unix_ns());
    let bytes = zenoh::bytes::ZBytes::from(w.take());
    let batches = a.messages.div_ceil(per_batch);
    for _ in 0..batches {
        publisher.put(bytes.clone()).wait().unwrap();
    }
    session
        .put("perdix/bench/raw/end", vec![0u8])
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
}

/// The raw receiver: counts samples and bytes until the end key.
fn raw_receive(a: &Args) {
    let session = zenoh::open(config(a, shm(), a.batch_bytes).zenoh_config().unwrap())
        .wait()
        .unwrap();
    let sub = session
        .declare_subscriber("perdix/bench/**")
        .with(zenoh::handlers::FifoChannel::new(16))
        .wait()
        .unwrap();
    let deadline = Instant::now() + DEADLINE;
    let (mut samples, mut bytes, mut messages) = (0u64, 0u64, 0u64);
    loop {
        assert!(Instant::now() < deadline, "receiver past its deadline");
        let Some(sample) = sub.recv_timeout(Duration::from_millis(500)).unwrap() else {
            continue;
        };
        if sample.key_expr().as_str().ends_with("/end") {
            break;
        }
        let payload = sample.payload();
        samples += 1;
        bytes += payload.len() as u64;
        messages += ((payload.len() - 40) / (28 + MESSAGE)) as u64;
    }
    let end = unix_ns();
    println!("end_ns={end} messages={messages} bytes={bytes} verified=0 bad=0 lost=0 samples={samples} latency_mean_us=0");
}

use zenoh::Wait;

/// The receiver child: every message verified (raw: batches decoded, messages counted).
fn receive(a: &Args) {
    if a.source == "raw" {
        return raw_receive(a);
    }
    let mut receiver = RemoteReceiver::open(&config(a, shm(), a.batch_bytes)).unwrap();
    let deadline = Instant::now() + DEADLINE;
    let (mut verified, mut bad) = (0u64, 0u64);
    loop {
        assert!(Instant::now() < deadline, "receiver past its deadline");
        let Some(batch) = receiver.recv_timeout(Duration::from_millis(500)).unwrap() else {
            continue;
        };
        let first = batch.header().first;
        for (k, r) in batch.records().enumerate() {
            if verify(r.payload, first + k as u64) {
                verified += 1;
            } else {
                bad += 1;
            }
        }
        if batch.header().is_end() {
            break;
        }
    }
    let end = unix_ns();
    let total = receiver.counters().total();
    println!(
        "end_ns={end} messages={} bytes={} verified={verified} bad={bad} lost={} latency_mean_us={}",
        total.messages,
        total.bytes,
        total.lost_messages,
        total.latency_mean_ns().unwrap_or(0) / 1000
    );
}
