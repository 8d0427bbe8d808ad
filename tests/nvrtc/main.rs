//! Every kernel compiles through NVRTC for sm_90, with no GPU: libnvrtc from the PyPI package
//! `nvidia-cuda-nvrtc` 13.0.x is enough. Skips (with a printed reason) when libnvrtc is absent.
//!
//! CI: `pip install nvidia-cuda-nvrtc==13.0.88`, put its `nvidia/cu13/lib` on `LD_LIBRARY_PATH`
//! and run with `PERDIX_PTX_CACHE=off` so NVRTC really compiles.
#![cfg(feature = "cuda")]

use perdix_transport::cuda::{
    compile_ptx, GpuKernel, KernelArg, PERDIX_CUH, PERDIX_RUN_CUH, PERDIX_SPAN_CUH,
};
use perdix_transport::testing::gpu::{builtin_kernels, STRESS_CU};
use perdix_transport::Error;

#[path = "../support/skip.rs"]
mod skip;
use skip::skip;

mod cache;

pub(crate) const ARCH: &str = "sm_90";

/// PTX, or `None` (after saying why) when libnvrtc is not installed.
pub(crate) fn compile_or_skip(source: &str, name: &str) -> Option<Result<String, Error>> {
    match compile_ptx(source, name, ARCH) {
        Err(Error::NoDevice(why)) => {
            skip(why);
            None
        }
        other => Some(other),
    }
}

#[test]
fn every_builtin_kernel_compiles_for_sm_90() {
    for (name, source) in builtin_kernels() {
        let Some(result) = compile_or_skip(source, name) else {
            return;
        };
        let ptx = result.unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(
            ptx.contains(".target sm_90"),
            "{name}: PTX for the wrong target"
        );
        let entries: Vec<&str> = ptx
            .lines()
            .filter_map(|l| l.split(".entry ").nth(1))
            .map(|l| l.trim_end_matches('(').trim())
            .collect();
        println!("{name}: {} bytes of PTX, entries {entries:?}", ptx.len());
        assert!(!entries.is_empty(), "{name}: no kernel entry");
        every_parameter_list_reads(name, source, &ptx);
    }
}

/// Every entry point of `ptx` has a parameter list the launch check can read (one it cannot
/// read is refused at launch, so the crate's own kernels must all read).
fn every_parameter_list_reads(name: &str, source: &'static str, ptx: &str) {
    let entries = ptx
        .lines()
        .filter_map(|l| l.split(".entry ").nth(1))
        .map(|l| l.trim_end_matches('(').trim());
    for entry in entries {
        // SAFETY: never launched; only its (empty) arguments are checked against its PTX.
        let kernel = unsafe { GpuKernel::from_source(source, entry.to_owned()) };
        if let Err(Error::InvalidConfig(why)) = kernel.check_args(ptx) {
            assert!(!why.contains("cannot be read"), "{name}: {why}");
        }
    }
}

/// The fault-injection kernels of `tests/gpu_faults.rs` (not shipped as producer kernels).
const FAULTS_CU: &str = include_str!("../../kernels/faults.cu");

#[test]
fn the_fault_injection_kernels_compile_for_sm_90() {
    let Some(result) = compile_or_skip(FAULTS_CU, "faults.cu") else {
        return;
    };
    let ptx = result.unwrap_or_else(|err| panic!("faults.cu: {err}"));
    every_parameter_list_reads("faults.cu", FAULTS_CU, &ptx);
    for entry in ["perdix_fault_header", "perdix_fault_try_burst"] {
        assert!(
            ptx.contains(&format!(".entry {entry}")),
            "faults.cu: no {entry}"
        );
    }
}

/// The examples' own kernels: what a user's kernel looks like compiles without a GPU too.
#[test]
fn the_example_kernels_compile_for_sm_90() {
    let kernels = [
        (
            include_str!("../../examples/02_gpu_producer/readings.cu"),
            "readings.cu",
            "readings",
        ),
        (
            include_str!("../../examples/simulation/particles.cu"),
            "particles.cu",
            "particles_step",
        ),
    ];
    for (source, name, entry) in kernels {
        let Some(result) = compile_or_skip(source, name) else {
            return;
        };
        let ptx = result.unwrap_or_else(|err| panic!("{name}: {err}"));
        assert!(
            ptx.contains(&format!(".entry {entry}")),
            "{name}: no {entry}"
        );
        every_parameter_list_reads(name, source, &ptx);
    }
}

#[test]
fn stress_kernel_writes_slots_with_one_store_per_lane_and_fences_before_seq() {
    let Some(result) = compile_or_skip(STRESS_CU, "stress.cu") else {
        return;
    };
    let ptx = result.expect("stress.cu compiles");
    // The body stores are plain 8-byte global stores, the publication a system-scope store after
    // a system-scope fence (release by default; `__threadfence_system` with PERDIX_FENCE_SC).
    assert!(
        ptx.contains("st.global.u64"),
        "cooperative 8-byte body stores"
    );
    assert!(
        ptx.contains("st.relaxed.sys.global.u64"),
        "seq store at system scope"
    );
    assert!(
        ptx.contains("fence.acq_rel.sys")
            || ptx.contains("fence.sc.sys")
            || ptx.contains("membar.sys"),
        "system fence before seq"
    );
    assert!(ptx.contains("nanosleep"), "waits back off with __nanosleep");
}

/// The body of the PTX function whose name contains `name` (up to its closing brace).
fn ptx_function<'a>(ptx: &'a str, name: &str) -> Option<&'a str> {
    let start = ptx
        .match_indices(".func")
        .map(|(at, _)| at)
        .find(|&at| ptx[at..].lines().next().is_some_and(|l| l.contains(name)))?;
    let body = &ptx[start..];
    let end = body.find("\n}\n")?;
    Some(&body[..end])
}

#[test]
fn the_low_latency_emit_stores_flagged_words_with_no_system_fence() {
    let (_, echo) = builtin_kernels()
        .into_iter()
        .find(|(name, _)| *name == "echo.cu")
        .expect("echo.cu ships with the crate");
    let Some(result) = compile_or_skip(echo, "echo.cu") else {
        return;
    };
    let ptx = result.expect("echo.cu compiles");
    let ll = ptx_function(&ptx, "perdix_emit_ll").expect("perdix_emit_ll is its own function");
    assert!(
        ll.contains("st.relaxed.sys.global.u64"),
        "each flagged word is one system-scope 8-byte store"
    );
    for fence in ["fence.", "membar"] {
        assert!(!ll.contains(fence), "no `{fence}` in the low-latency emit");
    }
}

#[test]
fn a_kernel_authors_source_compiles_with_the_header_in_memory() {
    const SRC: &str = r#"
#include "perdix.cuh"
struct Collision { float x, y, z; unsigned a, b; };
extern "C" __global__ void step(const perdix_producer* p, float dt, unsigned frame) {
    Collision c = { dt, 1.0f, 2.0f, frame, threadIdx.x };
    if (threadIdx.x % 3 == 0) {
        if (perdix_emit(p, 7, &c, sizeof c) == PERDIX_CLOSED) return;
    } else if (perdix_try_emit(p, 8, &c, sizeof c) == PERDIX_DROPPED) {
        return;
    }
    if (perdix_should_stop(p)) return;
    perdix_send(p, 9, &frame, sizeof frame);
}
"#;
    // SAFETY: `from_source`'s contract: (1) `step` takes `const perdix_producer*` first; (2)
    // it touches the ring only through `perdix.cuh`; (3) it writes nothing else; (4) under any
    // launch shape. (It is only compiled here, never launched.)
    let kernel = unsafe { GpuKernel::from_source(SRC, "step") }.name("user.cu");
    // SAFETY: `with_args`' contract: (1) a `float` and an `unsigned`, as declared; (2) no
    // address. (Never launched.)
    let kernel = unsafe { kernel.with_args([KernelArg::F32(0.016), KernelArg::U32(1)]) };
    match kernel.compile(ARCH) {
        Err(Error::NoDevice(why)) => skip(why),
        Err(err) => panic!("{err}"),
        Ok(ptx) => assert!(ptx.contains(".entry step")),
    }
}

#[test]
fn compile_errors_come_back_with_the_log() {
    let Some(result) = compile_or_skip("extern \"C\" __global__ void broken( { }", "broken.cu")
    else {
        return;
    };
    match result {
        Err(Error::Compile { log }) => {
            assert!(log.contains("broken.cu"), "log names the file: {log}");
            assert!(log.contains("error"), "log has NVRTC's errors: {log}");
        }
        other => panic!("expected Error::Compile, got {other:?}"),
    }
}

#[test]
fn a_slot_layout_that_disagrees_with_rust_does_not_compile() {
    // Redefine one offset before the header: its static asserts must refuse the build.
    let src = "#undef PERDIX_OFFSET_KIND\n#define PERDIX_OFFSET_KIND 16\n#include \"perdix.cuh\"\n\
               extern \"C\" __global__ void k(const perdix_producer* p) {}\n";
    let Some(result) = compile_or_skip(src, "drifted.cu") else {
        return;
    };
    match result {
        Err(Error::Compile { log }) => assert!(log.contains("slot: kind offset"), "{log}"),
        other => panic!("expected the layout static_assert to fail, got {other:?}"),
    }
    // And the control block: a ring record of the wrong size.
    let src = "#undef PERDIX_CTRL_RING_SIZE\n#define PERDIX_CTRL_RING_SIZE 384\n#include \"perdix.cuh\"\n";
    let Some(result) = compile_or_skip(src, "drifted_ctrl.cu") else {
        return;
    };
    assert!(matches!(result, Err(Error::Compile { .. })), "{result:?}");
}

#[test]
fn a_slot_payload_or_pad_flag_that_disagrees_does_not_compile() {
    for (name, value, expect) in [
        ("PERDIX_SLOT_PAYLOAD", 232, "payload fills the slot"),
        ("PERDIX_FLAG_PAD", 2, "pad records carry flags bit 0"),
    ] {
        let src = format!(
            "#undef {name}\n#define {name} {value}\n#include \"perdix.cuh\"\n\
             extern \"C\" __global__ void k(const perdix_producer* p) {{}}\n"
        );
        let Some(result) = compile_or_skip(&src, "drifted_multi.cu") else {
            return;
        };
        match result {
            Err(Error::Compile { log }) => assert!(log.contains(expect), "{name}: {log}"),
            other => panic!("{name}: expected a static_assert to fail, got {other:?}"),
        }
    }
}

#[test]
fn multi_slot_messages_reserve_with_a_cas_and_write_16_byte_stores() {
    const SRC: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void big(const perdix_producer* p, const unsigned char* data, unsigned len) {
    perdix_warp_emit(p, 1, data, len);
    perdix_claim c = perdix_warp_try_claim(p, len);
    if (c.status == PERDIX_OK) {
        for (unsigned i = perdix_lane(); i < len; i += 32) c.payload[i] = (unsigned char)i;
        perdix_warp_commit(p, c, 2);
    }
    perdix_emit(p, 3, data, len);
}
"#;
    // SAFETY: only compiled here, never launched.
    let kernel = unsafe { GpuKernel::from_source(SRC, "big") };
    let ptx = match kernel.compile(ARCH) {
        Err(Error::NoDevice(why)) => return skip(why),
        Err(err) => panic!("{err}"),
        Ok(ptx) => ptx,
    };
    assert!(
        ptx.contains("atom.global.cas.b64"),
        "pad + k reserved with a CAS on tail"
    );
    assert!(ptx.contains("st.global.v2.u64"), "16-byte body stores");
    assert!(ptx.contains("fence.acq_rel.sys") || ptx.contains("fence.sc.sys"));
    assert!(
        ptx.contains("st.relaxed.sys.global.u64"),
        "seq published last"
    );
}

#[test]
fn the_header_is_the_one_in_kernels() {
    assert!(PERDIX_CUH.contains("perdix_emit"));
    assert!(PERDIX_CUH.contains("static_assert"));
    assert!(PERDIX_CUH.contains("#include \"perdix_span.cuh\""));
    assert!(PERDIX_SPAN_CUH.contains("perdix_warp_claim"));
    assert!(PERDIX_SPAN_CUH.contains("#include \"perdix_run.cuh\""));
    assert!(PERDIX_RUN_CUH.contains("perdix_reserve_run"));
}

/// A kernel with every kind of argument: 8-byte scalars, a device pointer, a by-value struct.
const TYPED_CU: &str = r#"
#include "perdix.cuh"
struct Span { float lo; double hi; };  // 16 bytes, aligned to 8
extern "C" __global__ void typed(const perdix_producer* p, unsigned long long n, double dt,
                                 const unsigned* ids, Span span, unsigned kind) {
    unsigned long long i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        double v = ids[i] * dt + span.lo + span.hi;
        perdix_emit(p, kind, &v, sizeof v);
    }
}
"#;

#[derive(Clone, Copy, bytemuck::NoUninit)]
#[repr(C)]
struct Span {
    lo: f32,
    _pad: u32,
    hi: f64,
}

#[test]
fn arguments_that_disagree_with_the_kernels_parameters_are_refused() {
    let Some(result) = compile_or_skip(TYPED_CU, "typed.cu") else {
        return;
    };
    let ptx = result.unwrap_or_else(|err| panic!("typed.cu: {err}"));
    // SAFETY: never launched; only its arguments are checked against its PTX.
    let kernel = unsafe { GpuKernel::from_source(TYPED_CU, "typed") };
    let span = Span {
        lo: 1.0,
        _pad: 0,
        hi: 2.0,
    };
    // The kernel with `args`, never launched: only its arguments are checked against its PTX.
    let with = |args: Vec<KernelArg>| {
        // SAFETY: never launched (`with_args`' contract binds launches only).
        unsafe { kernel.clone().with_args(args) }
    };
    let good = with(vec![
        64u64.into(),
        0.5f64.into(),
        0x7000_0000u64.into(), // a device address
        KernelArg::value(span),
        3u32.into(),
    ]);
    good.check_args(&ptx).expect("the arguments match");

    let refused = |kernel: GpuKernel, why: &str| match kernel.check_args(&ptx) {
        Err(Error::InvalidConfig(msg)) => println!("{why}: {msg}"),
        other => panic!("{why}: expected InvalidConfig, got {other:?}"),
    };
    refused(with(vec![64u64.into(), 0.5f64.into()]), "too few");
    let mut too_many = good.args().to_vec();
    too_many.push(1u32.into());
    refused(with(too_many), "too many");
    refused(
        with(vec![
            64u32.into(), // 4 bytes for an unsigned long long
            0.5f64.into(),
            0x7000_0000u64.into(),
            KernelArg::value(span),
            3u32.into(),
        ]),
        "a 4-byte n",
    );
    refused(
        with(vec![
            64u64.into(),
            0.5f64.into(),
            0x7000_0000u64.into(),
            KernelArg::value([0u32; 4]), // 16 bytes, but aligned to 4
            3u32.into(),
        ]),
        "a struct aligned to 4",
    );
    // SAFETY: never launched.
    let missing = unsafe { GpuKernel::from_source(TYPED_CU, "not_there") };
    refused(missing, "no such entry");
}

/// A plugin producer's arguments: `A`'s fields are the kernel's parameters after `p`.
#[cfg(feature = "bevy")]
#[test]
fn a_plugin_producers_arguments_are_checked_against_its_kernel() {
    use perdix_transport::bevy::GpuProducerSpec;

    const SRC: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void step(const perdix_producer* p, const float* xs,
                                unsigned long long n, float dt, unsigned frame) {}
"#;
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Step {
        xs: u64, // `cuda::device_address` of the app's buffer
        n: u64,
        dt: f32,
        frame: u32,
    }
    /// 4-byte fields only: the right size, aligned to 4 where the kernel's struct is to 8.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Narrow {
        xs: [u32; 2],
        n: [u32; 2],
        dt: f32,
        frame: u32,
    }
    /// `n` left out: 16 bytes for 24.
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    #[repr(C)]
    struct Short {
        xs: u64,
        dt: f32,
        frame: u32,
    }
    // SAFETY: never started; only compiled and checked.
    let spec = unsafe { GpuProducerSpec::<Step>::new("step", SRC, "step") };
    match spec.check(ARCH) {
        Err(Error::NoDevice(why)) => return skip(why),
        other => other.expect("Step is the kernel's parameters"),
    }
    // SAFETY: as above.
    let narrow = unsafe { GpuProducerSpec::<Narrow>::new("step", SRC, "step") };
    match narrow.check(ARCH) {
        Err(Error::InvalidConfig(why)) => println!("refused: {why}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    // SAFETY: as above.
    let short = unsafe { GpuProducerSpec::<Short>::new("step", SRC, "step") };
    match short.check(ARCH) {
        Err(Error::InvalidConfig(why)) => println!("refused: {why}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}
