//! A module's key: a SHA-256 of everything that determines a kernel's PTX (the headers, the
//! source, the NVRTC options, the architecture, the NVRTC and driver versions, this crate's
//! version). It keys the PTX cache on disk (`ptx_cache.rs`) and the modules a
//! [`GpuContext`](super::GpuContext) has loaded.

use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::{nvrtc, presence};

/// A module's key: the SHA-256 of everything that determines its PTX
/// (`module::cache_key`). Keys the PTX cache on disk (its file name, and the header line that
/// says what the file holds) and the modules a [`GpuContext`](super::GpuContext) has loaded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ModuleKey([u8; 32]);

impl ModuleKey {
    /// A key for tests: the SHA-256 of `bytes`.
    #[cfg(test)]
    pub(super) fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Lowercase hex, 64 digits.
    pub(super) fn hex(&self) -> String {
        hex(&self.0)
    }
}

impl core::fmt::Debug for ModuleKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ModuleKey({})", self.hex())
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a kernel's PTX depends on besides its source, options and architecture: the same for
/// every kernel of a process, so hashed once (`module::key_with`).
#[derive(Debug, Clone)]
pub(super) struct Fixed<'a> {
    /// This crate's version (the layout defines and the headers' meaning follow it).
    pub(super) crate_version: &'a str,
    /// The headers supplied in memory, `(include name, text)`.
    pub(super) headers: &'a [(&'a str, &'a str)],
    /// NVRTC's version, `major.minor`, or `none`.
    pub(super) nvrtc: &'a str,
    /// The driver's version (`cuDriverGetVersion`), or `none` without a driver.
    pub(super) driver: &'a str,
}

/// One field of a key: its length, then its bytes, so no two lists of fields hash alike.
fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_le_bytes());
    hash.update(bytes);
}

/// The hash of the fixed fields, which every key starts with.
pub(super) fn key_prefix(fixed: &Fixed<'_>) -> Sha256 {
    let mut hash = Sha256::new();
    field(&mut hash, b"perdix-transport module key v1");
    field(&mut hash, fixed.crate_version.as_bytes());
    field(&mut hash, &(fixed.headers.len() as u64).to_le_bytes());
    for (name, text) in fixed.headers {
        field(&mut hash, name.as_bytes());
        field(&mut hash, text.as_bytes());
    }
    field(&mut hash, fixed.nvrtc.as_bytes());
    field(&mut hash, fixed.driver.as_bytes());
    hash
}

/// The key of `source` compiled with `options` (every NVRTC option: the architecture, the
/// layout defines, `PERDIX_NVRTC_DEFINES`) for `arch`, after the fixed fields' `prefix`.
pub(super) fn key_finish(
    mut prefix: Sha256,
    source: &str,
    options: &[String],
    arch: &str,
) -> ModuleKey {
    field(&mut prefix, source.as_bytes());
    field(&mut prefix, &(options.len() as u64).to_le_bytes());
    for option in options {
        field(&mut prefix, option.as_bytes());
    }
    field(&mut prefix, arch.as_bytes());
    ModuleKey(prefix.finalize().into())
}

/// NVRTC's version, `major.minor`, or `none` without libnvrtc; read once.
pub(super) fn nvrtc_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        nvrtc::version().map_or_else(
            || "none".to_owned(),
            |(major, minor)| format!("{major}.{minor}"),
        )
    })
}

/// The driver's version (`13000` for CUDA 13.0), or `none` without a driver; read once.
pub(super) fn driver_version() -> &'static str {
    static VERSION: OnceLock<String> = OnceLock::new();
    VERSION.get_or_init(|| {
        presence::driver_version().map_or_else(|| "none".to_owned(), |v| v.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::{key_finish, key_prefix, Fixed, ModuleKey};

    const SRC: &str = "extern \"C\" __global__ void k(const void* p) {}";

    fn key(fixed: &Fixed<'_>, source: &str, options: &[String], arch: &str) -> ModuleKey {
        key_finish(key_prefix(fixed), source, options, arch)
    }

    #[test]
    fn the_key_changes_with_each_input() {
        let headers = [("perdix.cuh", "// a"), ("perdix_span.cuh", "// b")];
        let base = Fixed {
            crate_version: "0.1.0",
            headers: &headers,
            nvrtc: "13.0",
            driver: "13000",
        };
        let opts: Vec<String> = ["--gpu-architecture=compute_90", "-DPERDIX_SLOT_SIZE=256"]
            .map(str::to_owned)
            .to_vec();
        let reference = key(&base, SRC, &opts, "sm_90");
        assert_eq!(reference, key(&base, SRC, &opts, "sm_90"), "deterministic");
        let mut seen: Vec<(String, ModuleKey)> = vec![("the reference".to_owned(), reference)];
        let mut differs = |what: String, other: ModuleKey| {
            for (before, key) in &seen {
                assert_ne!(other, *key, "{what} gives the key of {before}");
            }
            seen.push((what, other));
        };
        let with = |fixed: Fixed<'_>| key(&fixed, SRC, &opts, "sm_90");
        differs(
            "crate version".into(),
            with(Fixed {
                crate_version: "0.1.1",
                ..base.clone()
            }),
        );
        differs(
            "NVRTC version".into(),
            with(Fixed {
                nvrtc: "13.1",
                ..base.clone()
            }),
        );
        differs(
            "no NVRTC".into(),
            with(Fixed {
                nvrtc: "none",
                ..base.clone()
            }),
        );
        differs(
            "driver version".into(),
            with(Fixed {
                driver: "13010",
                ..base.clone()
            }),
        );
        differs(
            "no driver".into(),
            with(Fixed {
                driver: "none",
                ..base.clone()
            }),
        );
        for idx in 0..headers.len() {
            let mut text = headers;
            text[idx].1 = "// edited";
            differs(
                format!("header {idx}'s text"),
                with(Fixed {
                    headers: &text,
                    ..base.clone()
                }),
            );
            let mut named = headers;
            named[idx].0 = "renamed.cuh";
            differs(
                format!("header {idx}'s name"),
                with(Fixed {
                    headers: &named,
                    ..base.clone()
                }),
            );
        }
        differs(
            "a header fewer".into(),
            with(Fixed {
                headers: &headers[..1],
                ..base.clone()
            }),
        );
        differs(
            "source".into(),
            key(&base, "extern \"C\" __global__ void j() {}", &opts, "sm_90"),
        );
        differs("arch".into(), key(&base, SRC, &opts, "compute_90"));
        for idx in 0..opts.len() {
            let mut changed = opts.clone();
            changed[idx].push('0');
            differs(format!("option {idx}"), key(&base, SRC, &changed, "sm_90"));
        }
        let mut more = opts.clone();
        more.push("-DPERDIX_FENCE_SC".to_owned());
        differs("an option more".into(), key(&base, SRC, &more, "sm_90"));
        // Field boundaries count: `ab` then `c` is not `a` then `bc`.
        let split = |a: &str, b: &str| key(&base, SRC, &[a.to_owned(), b.to_owned()], "sm_90");
        assert_ne!(split("-Dab", "-Dc"), split("-Da", "-Dbc"));
    }
}
