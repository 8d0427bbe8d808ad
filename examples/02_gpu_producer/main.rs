//! 02 — your own GPU producer kernel, with a CPU fallback.
//!
//! `readings.cu` (beside this file) is a CUDA kernel in which every GPU thread sends numbered
//! readings through a perdix ring; the CPU reads them with an ordinary [`Consumer`] and checks
//! that each thread's readings arrive once each, in order. NVRTC compiles the kernel at its
//! first launch, so the build needs no CUDA toolkit. Without a GPU (no driver, no device) a CPU
//! thread sends the same messages through a host ring, and the reading side is the same code.
//!
//! Three calls are `unsafe`, as cudarc's launch is, because only the kernel's author knows what
//! it writes: `GpuKernel::from_source` (the source), `GpuKernel::arg` (the argument list: a
//! 64-bit argument may be an address) and `GpuProducer::launch` (the addresses live now). Each
//! carries a `// SAFETY:` comment that walks its numbered contract.
//!
//! ```text
//! cargo run --example 02_gpu_producer
//! ```
//!
//! Next: `03_bevy_messages` delivers such messages into a Bevy app as typed messages.

use std::error::Error as StdError;
use std::process::ExitCode;
use std::thread;

use perdix_transport::cuda::{GpuContext, GpuKernel, GpuProducer};
use perdix_transport::{Buffer, Consumer, Error, Producer};

type Result<T> = std::result::Result<T, Box<dyn StdError + Send + Sync>>;

const READINGS_CU: &str = include_str!("readings.cu");
/// `KIND_READING` in the kernel.
const KIND: u32 = 7;
const BLOCKS: u32 = 8;
const THREADS_PER_BLOCK: u32 = 128;
const THREADS: u32 = BLOCKS * THREADS_PER_BLOCK;
const PER_THREAD: u32 = 64;

fn main() -> ExitCode {
    let result = match GpuContext::new(0) {
        Ok(gpu) => on_gpu(&gpu),
        Err(Error::NoDevice(why)) => {
            println!("no GPU ({why}): a CPU thread sends the same readings");
            on_cpu()
        }
        Err(err) => Err(err.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("02_gpu_producer: {err}");
            ExitCode::FAILURE
        }
    }
}

fn on_gpu(gpu: &GpuContext) -> Result<()> {
    // One ring in pinned host memory: the GPU writes its slots, this process reads them.
    let (mut producer, consumer) = GpuProducer::new(gpu, 4096)?;
    // SAFETY: `GpuKernel::from_source`'s contract, for `readings` in readings.cu: (1) its first
    // parameter is `const perdix_producer* p`; (2) it touches the ring only through
    // `perdix_emit`; (3) it writes no other memory (each `Reading` lives on its thread's
    // stack); (4) so whatever the grid and block.
    let kernel = unsafe { GpuKernel::from_source(READINGS_CU, "readings") }
        .name("readings.cu")
        .grid(BLOCKS)
        .block(THREADS_PER_BLOCK);
    // SAFETY: `GpuKernel::arg`'s contract: (1) a `u32` for its `perdix_u32 per_thread`; (2) not
    // an address.
    let kernel = unsafe { kernel.arg(PER_THREAD) };
    // Read on another thread while the kernel runs: 64 K readings do not fit in 4096 slots,
    // so GPU threads wait for room whenever the reader falls behind.
    let reader = spawn_reader(consumer)?;
    let backend = producer.backend();
    // SAFETY: `GpuProducer::launch`'s contract: (1) the source and argument as above; (2) no
    // address among the arguments; (3) no buffer of ours for the kernel to read.
    unsafe { producer.launch(&kernel) }?; // returns at once
    let counters = producer.finish()?; // waits for the kernel, then ends the stream
    let received = join(reader)?;
    println!(
        "02_gpu_producer: {backend} ring on {}: the kernel emitted {}, the CPU read {received} in order",
        gpu.name(),
        counters.emitted
    );
    Ok(())
}

fn on_cpu() -> Result<()> {
    let (mut producer, consumer) = Buffer::new(4096)?.into_split();
    let reader = spawn_reader(consumer)?;
    cpu_readings(&mut producer)?;
    drop(producer); // ends the stream
    let received = join(reader)?;
    println!("02_gpu_producer: CPU fallback: read {received} readings in order");
    Ok(())
}

/// The kernel's loop on the CPU: the grid's threads take turns, each sending in its own order.
fn cpu_readings(producer: &mut Producer) -> Result<()> {
    for n in 0..PER_THREAD {
        for thread in 0..THREADS {
            let value = (0.01 * thread as f32 + n as f32).sin();
            let mut reading = [0u8; 12];
            reading[..4].copy_from_slice(&thread.to_le_bytes());
            reading[4..8].copy_from_slice(&n.to_le_bytes());
            reading[8..].copy_from_slice(&value.to_le_bytes());
            producer.produce_kind(KIND, &reading)?;
        }
    }
    Ok(())
}

/// Reads until the stream ends, checking that every thread's readings (the kernel's `Reading`:
/// `thread`, `n`, `value` as little-endian 4-byte words) arrive once each, in order.
fn receive(mut consumer: Consumer) -> Result<u64> {
    let mut next = vec![0u32; THREADS as usize];
    let mut received = 0u64;
    loop {
        let msg = match consumer.consume() {
            Ok(msg) => msg,
            Err(Error::Disconnected) => break,
            Err(err) => return Err(err.into()),
        };
        let word = |i: usize| {
            msg.get(4 * i..4 * i + 4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        };
        let (Some(thread), Some(n), Some(value)) = (word(0), word(1), word(2).map(f32::from_bits))
        else {
            return Err(format!("not a reading: {msg:?}").into());
        };
        match next.get_mut(thread as usize) {
            Some(expected) if *expected == n && msg.kind() == KIND && value.abs() <= 1.0 => {
                *expected += 1
            }
            _ => return Err(format!("thread {thread}: reading {n} unexpected").into()),
        }
        received += 1;
    }
    match next.iter().position(|&n| n != PER_THREAD) {
        Some(thread) => Err(format!("thread {thread}: readings missing").into()),
        None => Ok(received),
    }
}

fn spawn_reader(consumer: Consumer) -> Result<thread::JoinHandle<Result<u64>>> {
    let reader = thread::Builder::new().name("reader".into());
    Ok(reader.spawn(move || receive(consumer))?)
}

fn join(reader: thread::JoinHandle<Result<u64>>) -> Result<u64> {
    reader.join().map_err(|_| "the reader thread panicked")?
}
