//! Kernels from source: NVRTC (`nvrtc.rs`) at first use, with `perdix.cuh` (and the
//! `perdix_span.cuh` and `perdix_run.cuh` it includes) supplied in memory and the layout passed
//! as `-D` defines; PTX cached on disk keyed by a hash of everything that went in.

use std::path::PathBuf;

use super::{control, nvrtc};
use crate::{layout, Error};

/// The device side of the protocol (`kernels/perdix.cuh`), included by every kernel.
pub const PERDIX_CUH: &str = include_str!("../../kernels/perdix.cuh");
/// Multi-slot messages and the whole-warp API (`kernels/perdix_span.cuh`), included by
/// `perdix.cuh`.
pub const PERDIX_SPAN_CUH: &str = include_str!("../../kernels/perdix_span.cuh");
/// Runs of multi-slot messages of one size, one reservation each (`kernels/perdix_run.cuh`),
/// included by `perdix_span.cuh`.
pub const PERDIX_RUN_CUH: &str = include_str!("../../kernels/perdix_run.cuh");

/// The headers every kernel compiles with, supplied in memory: `(include name, text)`.
const HEADERS: [(&str, &str); 3] = [
    ("perdix.cuh", PERDIX_CUH),
    ("perdix_span.cuh", PERDIX_SPAN_CUH),
    ("perdix_run.cuh", PERDIX_RUN_CUH),
];
/// The stress producer kernels (`kernels/stress.cu`).
#[cfg(feature = "testing")]
pub const STRESS_CU: &str = include_str!("../../kernels/stress.cu");
/// The clock probe (calibration), the layout probe and a trapping kernel (`kernels/probe.cu`).
pub const PROBE_CU: &str = include_str!("../../kernels/probe.cu");

/// The kernels that ship with the crate, `(file name, source)`, for compile checks.
#[cfg(feature = "testing")]
#[must_use]
pub fn builtin_kernels() -> [(&'static str, &'static str); 2] {
    [("stress.cu", STRESS_CU), ("probe.cu", PROBE_CU)]
}

/// The `-D` options every kernel is compiled with: the slot layout and the control block.
fn defines() -> Vec<String> {
    layout::cuda_defines()
        .iter()
        .chain(control::cuda_defines().iter())
        .map(|(name, value)| format!("-D{name}={value}"))
        .collect()
}

/// NVRTC options for `arch` (`sm_90` or `compute_90`): PTX for that virtual architecture.
fn options(arch: &str) -> Vec<String> {
    let virtual_arch = arch.replace("sm_", "compute_");
    let mut opts = vec![
        format!("--gpu-architecture={virtual_arch}"),
        "-std=c++17".to_owned(),
    ];
    opts.extend(defines());
    // Experiments only: extra defines, e.g. `PERDIX_NVRTC_DEFINES="PERDIX_FENCE_SC
    // PERDIX_BACKOFF_MAX_NS=4096"` (part of the cache key like every option).
    if let Ok(extra) = std::env::var("PERDIX_NVRTC_DEFINES") {
        opts.extend(extra.split_whitespace().map(|d| format!("-D{d}")));
    }
    opts
}

/// 64-bit FNV-1a: a stable hash for cache keys (std's hasher may change between releases).
pub(crate) fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The cache key of `source` compiled for `arch`.
pub(crate) fn cache_key(source: &str, arch: &str) -> u64 {
    let opts = options(arch).join(" ");
    fnv1a(&[
        PERDIX_CUH.as_bytes(),
        PERDIX_SPAN_CUH.as_bytes(),
        PERDIX_RUN_CUH.as_bytes(),
        source.as_bytes(),
        opts.as_bytes(),
        env!("CARGO_PKG_VERSION").as_bytes(),
    ])
}

/// Where PTX is cached: `$PERDIX_PTX_CACHE`, else `$XDG_CACHE_HOME/perdix-transport/ptx`, else
/// `~/.cache/perdix-transport/ptx`. `PERDIX_PTX_CACHE=off` disables the cache.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PERDIX_PTX_CACHE") {
        return (dir != "off").then(|| PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(base.join("perdix-transport").join("ptx"))
}

fn cache_path(name: &str, key: u64, arch: &str) -> Option<PathBuf> {
    let stem: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    cache_dir().map(|dir| dir.join(format!("{stem}-{key:016x}-{arch}.ptx")))
}

/// PTX of `source` for `arch` (`sm_90`, say): from the disk cache when present, else compiled by
/// NVRTC with `perdix.cuh` available as `#include "perdix.cuh"` and the layout defines, and then
/// cached. Needs libnvrtc (CUDA 13), not a GPU.
///
/// # Errors
///
/// [`Error::NoDevice`] when libnvrtc cannot be loaded; [`Error::Compile`] with NVRTC's log when
/// the source does not compile.
///
/// # Examples
///
/// ```no_run
/// use perdix_transport::cuda::compile_ptx;
///
/// const SRC: &str = r#"
/// #include "perdix.cuh"
/// extern "C" __global__ void tick(const perdix_producer* p) {
///     unsigned i = threadIdx.x;
///     perdix_emit(p, 1, &i, sizeof i);
/// }
/// "#;
/// let ptx = compile_ptx(SRC, "tick.cu", "sm_90")?;
/// assert!(ptx.contains(".entry tick"));
/// // A source that does not compile comes back with NVRTC's log.
/// let broken = compile_ptx("extern \"C\" __global__ void k() { oops; }", "broken.cu", "sm_90");
/// assert!(matches!(broken, Err(perdix_transport::Error::Compile { .. })));
/// # Ok::<(), perdix_transport::Error>(())
/// ```
pub fn compile_ptx(source: &str, name: &str, arch: &str) -> Result<String, Error> {
    let key = cache_key(source, arch);
    let path = cache_path(name, key, arch);
    if let Some(ptx) = path.as_ref().and_then(|p| std::fs::read_to_string(p).ok()) {
        tracing::debug!(name, arch, "perdix: PTX from cache");
        return Ok(ptx);
    }
    let started = std::time::Instant::now();
    let ptx = nvrtc::compile(source, name, &options(arch), &HEADERS)?;
    tracing::debug!(
        name,
        arch,
        ms = started.elapsed().as_millis() as u64,
        "perdix: NVRTC compiled"
    );
    if let Some(path) = path {
        store(&path, &ptx);
    }
    Ok(ptx)
}

/// Writes the cache file atomically (temporary name, then rename); failures only log.
fn store(path: &std::path::Path, ptx: &str) {
    let Some(dir) = path.parent() else { return };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let result = std::fs::create_dir_all(dir)
        .and_then(|()| std::fs::write(&tmp, ptx))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        tracing::debug!(path = %path.display(), %err, "perdix: PTX cache not written");
    }
}
