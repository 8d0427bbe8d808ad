//! Bring your own launch: an app's kernel, on the app's own cudarc context and stream, with a
//! device buffer the app allocated, emits through a producer's handle; and a `GpuKernel` takes
//! typed arguments (8-byte scalars, a device buffer, a by-value struct), checked before launch.
//!
//! GPU tests are ignored in CI (no GPU); run them with
//! `cargo test --release --features cuda --test gpu_user_launch -- --ignored`. Each says
//! `skipped: ...` and returns where there is no device.
#![cfg(feature = "cuda")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use perdix_transport::cuda::cudarc::driver::{
    CudaContext, CudaFunction, CudaSlice, CudaStream, LaunchConfig, PushKernelArg,
};
use perdix_transport::cuda::cudarc::nvrtc::Ptx;
use perdix_transport::cuda::{
    compile_ptx, device_address, GpuContext, GpuKernel, GpuProducer, KernelArg,
};
use perdix_transport::{Consumer, Error};

#[path = "support/skip.rs"]
mod skip;
use skip::skip;

/// The app's own context on device 0, or `None` (and a [`skip`]) without one.
fn app_context() -> Option<Arc<CudaContext>> {
    match perdix_transport::cuda::device_count() {
        Ok(n) if n > 0 => {}
        Ok(_) => {
            skip("no CUDA device");
            return None;
        }
        Err(err) => {
            skip(format_args!("no CUDA device ({err})"));
            return None;
        }
    }
    Some(CudaContext::new(0).expect("opening the app's context"))
}

const USER_CU: &str = r#"
#include "perdix.cuh"
struct Sample { unsigned long long index; unsigned value; unsigned salt; };
// Each thread sends its buffer element with its index; `salt` checks the scalar after the buffer.
extern "C" __global__ void sample(const perdix_producer* p, const unsigned* values,
                                  unsigned long long n, unsigned salt) {
    unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        Sample s = { i, values[i], salt };
        if (perdix_emit(p, 5, &s, sizeof s) == PERDIX_CLOSED) return;
    }
}
"#;

/// The element the test puts at `i` (not `i` itself, so a wrong buffer shows).
fn value(i: u64) -> u32 {
    (i as u32).wrapping_mul(2_654_435_761) ^ 0x5eed
}

/// Drains `consumer` until `expected` messages arrived (or a minute passed), checking each as
/// `sample`'s (index, value, salt) and that no index arrives twice.
fn drain_samples(consumer: &mut Consumer, expected: u64, salt: u32) {
    let mut seen = vec![false; expected as usize];
    let mut count = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count < expected {
        assert!(
            Instant::now() < deadline,
            "only {count} of {expected} arrived"
        );
        let got = consumer
            .drain_checked(usize::MAX, |msg| {
                assert_eq!(msg.kind(), 5);
                assert_eq!(msg.len(), 16);
                let index = u64::from_ne_bytes(msg[0..8].try_into().expect("8 bytes"));
                let v = u32::from_ne_bytes(msg[8..12].try_into().expect("4 bytes"));
                let s = u32::from_ne_bytes(msg[12..16].try_into().expect("4 bytes"));
                assert!(index < expected, "index {index} out of range");
                assert_eq!(v, value(index), "value of {index}");
                assert_eq!(s, salt, "salt of {index}");
                assert!(!seen[index as usize], "{index} arrived twice");
                seen[index as usize] = true;
            })
            .expect("no corrupt slot");
        count += got as u64;
        if got == 0 {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
}

/// Compiles `sample` for the producer's device, launches it on the app's `stream` over `n`
/// elements of `values` with `salt`, and tracks the launch. Returns the function, which keeps its
/// module loaded: hold it until the kernel has ended.
fn launch_sample(
    producer: &GpuProducer,
    stream: &Arc<CudaStream>,
    values: &CudaSlice<u32>,
    n: u64,
    salt: u32,
) -> CudaFunction {
    let gpu = producer.context();
    let ptx = compile_ptx(USER_CU, "sample.cu", &gpu.arch()).expect("NVRTC");
    let module = gpu
        .cudarc()
        .load_module(Ptx::from_src(ptx))
        .expect("module");
    let sample = module.load_function("sample").expect("function");
    let handle = producer.handle();
    let mut launch = stream.launch_builder(&sample);
    launch.arg(&handle).arg(values).arg(&n).arg(&salt);
    // SAFETY: `sample` takes the producer pointer, a `const unsigned*` (`values`: at least `n`
    // elements, written before on `stream` and alive until the kernel ends: every caller holds
    // it to the end of the test), an `unsigned long long` and an `unsigned`; it emits only
    // through `perdix_emit`, returns on PERDIX_CLOSED and writes nothing else; `track` below
    // makes the producer wait for it before its memory can go.
    unsafe { launch.launch(LaunchConfig::for_num_elems(n as u32)) }.expect("launch");
    producer.track(stream).expect("track");
    sample
}

#[test]
#[ignore = "needs a CUDA device"]
fn an_app_kernel_on_its_own_context_and_stream_emits_every_message() {
    let Some(ctx) = app_context() else { return };
    // The app's stream and buffer, made before perdix sees the context.
    let stream = ctx.new_stream().expect("app stream");
    const N: u64 = 200_000; // far more than the ring holds: the kernel waits for room
    let host: Vec<u32> = (0..N).map(value).collect();
    let values = stream.clone_htod(&host).expect("app buffer");
    stream.synchronize().expect("buffer written");

    let gpu = GpuContext::from_cudarc(Arc::clone(&ctx)).expect("perdix on the app's context");
    assert!(
        Arc::ptr_eq(gpu.cudarc(), &ctx),
        "perdix uses the app's context"
    );
    let (producer, mut consumers) = GpuProducer::builder(&gpu)
        .capacity(4096)
        .build()
        .expect("producer");

    let salt = 0xabcd_u32;
    let _sample = launch_sample(&producer, &stream, &values, N, salt);
    assert!(
        !producer.is_idle().expect("query"),
        "the producer counts the app's kernel as running (it waits for room)"
    );

    drain_samples(&mut consumers[0], N, salt);
    let counters = producer.finish().expect("the app's kernel ended");
    assert_eq!(counters.emitted, N);
    assert_eq!(counters.drops, 0);
    assert!(matches!(
        consumers[0].try_consume_checked(),
        Err(Error::Disconnected)
    ));
}

#[test]
#[ignore = "needs a CUDA device"]
fn dropping_a_producer_waits_for_the_app_kernels_it_tracks() {
    let Some(ctx) = app_context() else { return };
    let stream = ctx.new_stream().expect("app stream");
    let host: Vec<u32> = (0..100_000).map(value).collect();
    let values = stream.clone_htod(&host).expect("app buffer");
    stream.synchronize().expect("buffer written");
    let gpu = GpuContext::from_cudarc(Arc::clone(&ctx)).expect("perdix on the app's context");
    let (producer, consumers) = GpuProducer::builder(&gpu)
        .capacity(1024)
        .build()
        .expect("producer");
    // The kernel returns on PERDIX_CLOSED, which dropping the producer sends.
    let _sample = launch_sample(&producer, &stream, &values, 100_000, 1);
    // Nobody drains: the kernel blocks on a full ring until the drop closes it.
    let started = Instant::now();
    drop(producer);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the drop waited boundedly"
    );
    stream
        .synchronize()
        .expect("the app's kernel ended, without a fault");
    drop(consumers);
}

#[test]
#[ignore = "needs a CUDA device"]
fn a_gpu_kernel_takes_a_device_buffer_and_typed_arguments() {
    let Some(ctx) = app_context() else { return };
    let stream = ctx.new_stream().expect("app stream");
    const N: u64 = 50_000;
    let host: Vec<u32> = (0..N).map(value).collect();
    let values = stream.clone_htod(&host).expect("app buffer");
    stream.synchronize().expect("buffer written");
    let gpu = GpuContext::from_cudarc(ctx).expect("perdix on the app's context");
    let (mut producer, mut consumers) = GpuProducer::builder(&gpu)
        .capacity(4096)
        .build()
        .expect("producer");
    // SAFETY: `from_source`'s contract: (1) `sample` takes `const perdix_producer*` first;
    // (2) it emits only through `perdix_emit`; (3) it writes nothing else (it reads
    // `values[0..n]`); (4) every read is under `if (i < n)`, whatever the grid and block.
    let kernel = unsafe { GpuKernel::from_source(USER_CU, "sample") }
        .name("sample.cu")
        .grid(N.div_ceil(256) as u32)
        .block(256);
    let address = device_address(&values);
    // SAFETY: never launched: the argument check refuses it (below) before anything reaches
    // the device, which is what is tested. (Its `n` is 4 bytes for an 8-byte parameter.)
    let wrong = unsafe {
        kernel.clone().with_args([
            KernelArg::U64(address),
            KernelArg::U32(N as u32),
            7u32.into(),
        ])
    };
    // SAFETY: the check against the PTX refuses `wrong` (a 4-byte `n`) before any launch, and
    // `producer.launches()` below shows that nothing ran; `values` is alive meanwhile anyway.
    match unsafe { producer.launch(&wrong) } {
        Err(Error::InvalidConfig(why)) => println!("refused: {why}"),
        other => panic!("a 4-byte n must be refused before launch, got {other:?}"),
    }
    assert_eq!(producer.launches(), 0, "nothing was launched");
    // SAFETY: `with_args`' contract: (1) `const unsigned* values, unsigned long long n,
    // unsigned salt`, in order; (2) `values` holds `N` elements, the `n` given, which the
    // kernel reads, and lives to the end of the test, after `finish` below; (3) it was written
    // and synchronized on the app's stream above.
    let kernel = unsafe {
        kernel.with_args([
            KernelArg::U64(address),
            KernelArg::U64(N),
            KernelArg::U32(7),
        ])
    };
    // SAFETY: `launch`'s contract: (1) as the two notes above; (2) `values` stays alive and
    // untouched until `finish` below returns; (3) its writes were synchronized before now.
    unsafe { producer.launch(&kernel) }.expect("launch");
    drain_samples(&mut consumers[0], N, 7);
    let counters = producer.finish().expect("kernel ran");
    assert_eq!(counters.emitted, N);
}

/// A Bevy app's own kernel emits into rings the plugin drains: on a machine without a device
/// the rings are refused with a typed error (and this test checks that instead).
#[cfg(feature = "bevy")]
#[test]
fn a_bevy_app_launching_its_own_kernel_gets_plugin_rings() {
    use bevy_app::App;
    use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
    use perdix_transport::cuda::GpuDevices;

    let mut app = App::new();
    app.add_plugins(PerdixPlugin::default().devices(GpuDevices::one(0)));
    let external = app
        .world_mut()
        .resource_mut::<PerdixRings>()
        .add_external_gpu_producer("sim", 1);
    let external = match external {
        Err(Error::NoDevice(why)) => return skip(why),
        other => other.expect("external producer"),
    };
    let producer = &external.producers()[0];
    let ctx = producer.context().cudarc();
    let stream = ctx.new_stream().expect("app stream");
    const N: u64 = 1000; // fits the plugin's ring: nothing waits for a drain
    let host: Vec<u32> = (0..N).map(value).collect();
    let values = stream.clone_htod(&host).expect("app buffer");
    let _sample = launch_sample(producer, &stream, &values, N, 3);
    let counters = external.finish().expect("the kernel ran");
    assert_eq!(counters[0].emitted, N);
    for _ in 0..10 {
        app.update();
    }
    let totals = app.world().resource::<PerdixRings>().counters().total();
    assert_eq!(totals.messages, N, "the plugin drained every message");
    assert_eq!(totals.unrouted, N, "kind 5 has no route");
}
