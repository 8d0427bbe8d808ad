//! Kernels from source: NVRTC (`nvrtc.rs`) at first use, with `perdix.cuh` (and the
//! `perdix_span.cuh` and `perdix_run.cuh` it includes) supplied in memory and the layout passed
//! as `-D` defines; PTX cached on disk (`ptx_cache.rs`) keyed by a SHA-256 of everything that
//! went in (`key.rs`), each file carrying its key and the digest of its PTX so that what is read
//! is verified.

use std::path::Path;
use std::sync::OnceLock;

use sha2::Sha256;

use super::key::{self, Fixed, ModuleKey};
use super::{control, nvrtc, ptx_cache};
use crate::{layout, Error};

/// The device side of the protocol (`kernels/perdix.cuh`), included by every kernel.
pub const PERDIX_CUH: &str = include_str!("../../kernels/perdix.cuh");
/// Multi-slot messages and the whole-warp API (`kernels/perdix_span.cuh`), included by
/// `perdix.cuh`.
pub const PERDIX_SPAN_CUH: &str = include_str!("../../kernels/perdix_span.cuh");
/// Runs of multi-slot messages of one size, one reservation each (`kernels/perdix_run.cuh`),
/// included by `perdix_span.cuh`.
pub const PERDIX_RUN_CUH: &str = include_str!("../../kernels/perdix_run.cuh");
/// `kernels/perdix_ll.cuh`: low-latency rings (flagged words), included by `perdix.cuh`.
pub const PERDIX_LL_CUH: &str = include_str!("../../kernels/perdix_ll.cuh");

/// The headers every kernel compiles with, supplied in memory: `(include name, text)`.
const HEADERS: [(&str, &str); 4] = [
    ("perdix.cuh", PERDIX_CUH),
    ("perdix_span.cuh", PERDIX_SPAN_CUH),
    ("perdix_run.cuh", PERDIX_RUN_CUH),
    ("perdix_ll.cuh", PERDIX_LL_CUH),
];
/// The stress producer kernels (`kernels/stress.cu`).
#[cfg(feature = "testing")]
pub const STRESS_CU: &str = include_str!("../../kernels/stress.cu");
/// The clock probe (calibration), the layout probe and a trapping kernel (`kernels/probe.cu`).
pub const PROBE_CU: &str = include_str!("../../kernels/probe.cu");
/// `kernels/echo.cu`: the ring round trip's kernel (test tooling).
#[cfg(feature = "testing")]
pub(crate) const ECHO_CU: &str = include_str!("../../kernels/echo.cu");

/// The kernels that ship with the crate, `(file name, source)`, for compile checks.
#[cfg(feature = "testing")]
#[must_use]
pub fn builtin_kernels() -> [(&'static str, &'static str); 3] {
    [
        ("stress.cu", STRESS_CU),
        ("probe.cu", PROBE_CU),
        ("echo.cu", ECHO_CU),
    ]
}

/// The `-D` options every kernel is compiled with: the slot layout and the control block
/// (constants: made once).
fn defines() -> &'static [String] {
    static DEFINES: OnceLock<Vec<String>> = OnceLock::new();
    DEFINES.get_or_init(|| {
        layout::cuda_defines()
            .iter()
            .chain(control::cuda_defines().iter())
            .map(|(name, value)| format!("-D{name}={value}"))
            .collect()
    })
}

/// NVRTC options for `arch` (`sm_90` or `compute_90`): PTX for that virtual architecture.
fn options(arch: &str) -> Vec<String> {
    // Experiments only: extra defines, e.g. `PERDIX_NVRTC_DEFINES="PERDIX_FENCE_SC
    // PERDIX_BACKOFF_MAX_NS=4096"` (part of the cache key like every option).
    options_with(arch, std::env::var("PERDIX_NVRTC_DEFINES").ok().as_deref())
}

/// [`options`] with `extra` as the value of `PERDIX_NVRTC_DEFINES`.
fn options_with(arch: &str, extra: Option<&str>) -> Vec<String> {
    let virtual_arch = arch.replace("sm_", "compute_");
    let mut opts = vec![
        format!("--gpu-architecture={virtual_arch}"),
        "-std=c++17".to_owned(),
    ];
    opts.extend_from_slice(defines());
    if let Some(extra) = extra {
        opts.extend(extra.split_whitespace().map(|d| format!("-D{d}")));
    }
    opts
}

/// The fixed fields of this process.
fn fixed() -> Fixed<'static> {
    Fixed {
        crate_version: env!("CARGO_PKG_VERSION"),
        headers: &HEADERS,
        nvrtc: key::nvrtc_version(),
        driver: key::driver_version(),
    }
}

/// The key of `source` compiled with `options` for `arch` in this process: the fixed fields are
/// hashed once, so a launch (which looks its module up by key) hashes only its own source.
fn key_with(source: &str, options: &[String], arch: &str) -> ModuleKey {
    static PREFIX: OnceLock<Sha256> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| key::key_prefix(&fixed()));
    key::key_finish(prefix.clone(), source, options, arch)
}

/// The key of `source` compiled for `arch` with the options it would be compiled with now.
pub(crate) fn cache_key(source: &str, arch: &str) -> ModuleKey {
    key_with(source, &options(arch), arch)
}

/// PTX of `source` for `arch` (`sm_90`, say): from the disk cache when present, else compiled by
/// NVRTC with `perdix.cuh` available as `#include "perdix.cuh"` and the layout defines, and then
/// cached. Needs libnvrtc (CUDA 13), not a GPU.
///
/// A cache file is keyed by a SHA-256 of everything that determines the PTX (the headers, the
/// source, the NVRTC options and defines, the architecture, the NVRTC and driver versions and
/// this crate's version) and carries the key and the SHA-256 of its PTX on its first line: a
/// file that is truncated, edited or another kernel's is recompiled and overwritten, never
/// returned. (The digest catches accidents, not an attacker who can write the cache directory:
/// such a directory is as trusted as the code that runs from it; `PERDIX_PTX_CACHE=off` turns the
/// cache off.)
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
    compile_ptx_in(ptx_cache::cache_dir().as_deref(), source, name, arch)
}

/// [`compile_ptx`] with the cache in `dir` (`None`: no cache).
fn compile_ptx_in(
    dir: Option<&Path>,
    source: &str,
    name: &str,
    arch: &str,
) -> Result<String, Error> {
    let options = options(arch);
    let key = key_with(source, &options, arch);
    let path = dir.map(|dir| ptx_cache::cache_path(dir, name, &key, arch));
    if let Some(path) = &path {
        match ptx_cache::load(path, &key) {
            Ok(Some(ptx)) => {
                tracing::debug!(name, arch, "perdix: PTX from cache");
                return Ok(ptx);
            }
            Ok(None) => {}
            Err(why) => tracing::warn!(
                path = %path.display(),
                why,
                "perdix: PTX cache file rejected; compiling again and overwriting it"
            ),
        }
    }
    let started = std::time::Instant::now();
    let ptx = nvrtc::compile(source, name, &options, &HEADERS)?;
    tracing::debug!(
        name,
        arch,
        ms = started.elapsed().as_millis() as u64,
        "perdix: NVRTC compiled"
    );
    if let Some(path) = path {
        ptx_cache::store(&path, &key, &ptx);
    }
    Ok(ptx)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{cache_key, compile_ptx_in, fixed, key_with, options, options_with, PROBE_CU};
    use crate::cuda::key::{key_finish, key_prefix};
    use crate::cuda::ptx_cache;
    use crate::Error;

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(what: &str) -> Self {
            static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Self(
                std::env::temp_dir()
                    .join(format!("perdix-module-{what}-{}-{n}", std::process::id())),
            )
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const SRC: &str = "extern \"C\" __global__ void k(const void* p) {}";

    #[test]
    fn the_memoised_key_is_the_key_of_this_process_inputs() {
        let arch = "sm_90";
        assert_eq!(
            cache_key(PROBE_CU, arch),
            key_finish(key_prefix(&fixed()), PROBE_CU, &options(arch), arch)
        );
    }

    #[test]
    fn the_options_carry_the_layout_and_perdix_nvrtc_defines_into_the_key() {
        let plain = options_with("sm_90", None);
        assert!(plain.iter().any(|o| o == "--gpu-architecture=compute_90"));
        assert!(
            plain.iter().any(|o| o.starts_with("-DPERDIX_")),
            "{plain:?}"
        );
        let extra = options_with("sm_90", Some("PERDIX_FENCE_SC  PERDIX_BACKOFF_MAX_NS=4096"));
        assert_eq!(
            extra[plain.len()..],
            ["-DPERDIX_FENCE_SC", "-DPERDIX_BACKOFF_MAX_NS=4096"]
        );
        assert_ne!(
            key_with(SRC, &plain, "sm_90"),
            key_with(SRC, &extra, "sm_90")
        );
    }

    /// A file planted at a key's path that does not verify is never returned, whether NVRTC is
    /// there to compile again (then the file is overwritten) or not (then the compile's error).
    #[test]
    fn compile_ptx_never_returns_a_cache_file_that_does_not_verify() {
        let dir = TempDir::new("planted");
        let key = cache_key(SRC, "sm_90");
        let path = ptx_cache::cache_path(&dir.0, "planted.cu", &key, "sm_90");
        std::fs::create_dir_all(&dir.0).expect("temp dir");
        let planted = ".version 9.0\n.target sm_90\n// planted\n";
        std::fs::write(&path, planted).expect("plant");
        match compile_ptx_in(Some(&dir.0), SRC, "planted.cu", "sm_90") {
            Ok(ptx) => {
                assert_ne!(ptx, planted, "a file with no header was returned");
                let again = compile_ptx_in(Some(&dir.0), SRC, "planted.cu", "sm_90");
                assert_eq!(
                    again.ok(),
                    Some(ptx),
                    "the file was overwritten with a good one"
                );
            }
            Err(Error::NoDevice(why)) => println!("no NVRTC ({why}): the file was not returned"),
            Err(err) => panic!("{err}"),
        }
        // A file that verifies is read as it stands, with no NVRTC needed.
        let good = ".version 9.0\n.target sm_90\n// verified\n";
        ptx_cache::store(&path, &key, good);
        let read = compile_ptx_in(Some(&dir.0), SRC, "planted.cu", "sm_90");
        assert_eq!(read.ok().as_deref(), Some(good));
    }
}
