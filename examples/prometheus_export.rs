//! A plain ring (no Bevy) with its counters at a Prometheus `/metrics` endpoint: a producer
//! thread writes paced readings, the main thread drains them, and a `MetricsServer` reads the
//! ring's `Monitor` at each scrape. Stops by itself after `--seconds`.
//!
//! ```text
//! cargo run --features prometheus --example prometheus_export -- --seconds 30
//! curl -s http://127.0.0.1:9464/metrics | grep perdix_messages_total   # the default --addr
//! ```
//!
//! `scripts/prometheus-check.sh` runs it against a real Prometheus server.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clap::Parser;
use perdix_transport::export::{MetricsServer, DEFAULT_ADDR};
use perdix_transport::{Buffer, Error};

#[derive(Parser, Debug)]
struct Args {
    /// Where the endpoint listens (port 0: any free port; the bound one is printed).
    #[arg(long, default_value_t = DEFAULT_ADDR)]
    addr: SocketAddr,
    /// How long to run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Messages the producer writes per millisecond.
    #[arg(long, default_value_t = 100)]
    per_ms: u32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let (mut producer, mut consumer) = Buffer::new(4096)?.into_split();
    let server = MetricsServer::for_monitors(args.addr, [("readings", consumer.monitor())])?;
    println!("metrics at http://{}/metrics", server.local_addr());

    let run_for = Duration::from_secs_f64(args.seconds.max(0.0));
    let start = Instant::now();
    let writer = std::thread::spawn(move || -> Result<u64, Error> {
        let mut sent = 0u64;
        while start.elapsed() < run_for {
            for _ in 0..args.per_ms {
                match producer.try_produce(&sent.to_le_bytes()) {
                    Ok(()) => sent += 1,
                    Err(Error::Full) => break,
                    Err(err) => return Err(err),
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(sent)
    });

    let mut taken = 0u64;
    while !writer.is_finished() {
        taken += consumer.drain(4096, |_| {}) as u64;
        std::thread::sleep(Duration::from_millis(1));
    }
    let sent = writer.join().map_err(|_| "producer thread panicked")??;
    taken += consumer.drain(usize::MAX, |_| {}) as u64;
    println!(
        "sent {sent}, taken {taken}, scrapes answered {}",
        server.scrapes()
    );
    Ok(())
}
