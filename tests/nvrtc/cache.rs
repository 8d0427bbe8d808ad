//! The PTX cache verifies what it reads: each test runs in a child process with its own
//! `PERDIX_PTX_CACHE` (environment variables are process-wide; the other tests run in threads).

use perdix_transport::cuda::compile_ptx;

use super::{compile_or_skip, ARCH};

/// Set in the environment of a child this binary starts for a test that needs its own
/// `PERDIX_PTX_CACHE` (environment variables are process-wide; the other tests run in threads).
const CACHE_CHILD: &str = "PERDIX_NVRTC_CACHE_CHILD";

/// Runs `test` alone in a child process with `PERDIX_PTX_CACHE` set to a fresh directory, and
/// removes the directory afterwards; panics if the child failed.
fn in_own_cache(test: &str) {
    let dir = std::env::temp_dir().join(format!("perdix-nvrtc-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // a leftover of an earlier run
    let exe = std::env::current_exe().unwrap_or_else(|err| panic!("test binary: {err}"));
    let out = std::process::Command::new(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CACHE_CHILD, "1")
        .env("PERDIX_PTX_CACHE", &dir)
        .output()
        .unwrap_or_else(|err| panic!("child of {test}: {err}"));
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child of {test} failed");
    // A name that matches no test would pass with nothing run.
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("test result: ok. 1 passed"),
        "the child ran no test named {test}"
    );
}

/// The one cache file of `stem` (`cached.cu` is stored as `cached_cu-...`) in `$PERDIX_PTX_CACHE`.
fn cache_file(stem: &str) -> std::path::PathBuf {
    let dir = std::env::var_os("PERDIX_PTX_CACHE").expect("the child's cache directory");
    let files: Vec<_> = std::fs::read_dir(dir)
        .expect("the cache directory exists after a compile")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{stem}-")) && n.ends_with(".ptx"))
        })
        .collect();
    assert_eq!(files.len(), 1, "one cache file of {stem}: {files:?}");
    files.into_iter().next().expect("checked")
}

const CACHED_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void cached(const perdix_producer* p, unsigned n) {
    if (threadIdx.x < n) perdix_emit(p, 1, &n, sizeof n);
}
"#;

const OTHER_CU: &str = r#"
#include "perdix.cuh"
extern "C" __global__ void other(const perdix_producer* p, double x) {
    perdix_emit(p, 2, &x, sizeof x);
}
"#;

/// What the PTX cache reads is verified: a truncated file, a file edited in place, and another
/// kernel's cache file copied to this kernel's name are each recompiled (and overwritten),
/// never returned as this kernel's PTX.
#[test]
fn a_cache_file_that_is_truncated_edited_or_foreign_is_recompiled() {
    const NAME: &str = "cache::a_cache_file_that_is_truncated_edited_or_foreign_is_recompiled";
    if std::env::var_os(CACHE_CHILD).is_none() {
        return in_own_cache(NAME);
    }
    let Some(first) = compile_or_skip(CACHED_CU, "cached.cu") else {
        return;
    };
    let first = first.expect("cached.cu compiles");
    let file = cache_file("cached_cu");
    let stored = std::fs::read(&file).expect("the cache file");
    assert!(
        compile_ptx(CACHED_CU, "cached.cu", ARCH).expect("from the cache") == first,
        "the cache gives back what NVRTC made"
    );

    std::fs::write(&file, &stored[..stored.len() / 2]).expect("truncate");
    let again = compile_ptx(CACHED_CU, "cached.cu", ARCH).expect("recompiled");
    assert!(again == first, "a truncated cache file was returned as PTX");

    let edited = String::from_utf8(stored.clone())
        .expect("PTX is text")
        .replacen("ret;", "exit;", 1);
    std::fs::write(&file, edited).expect("edit");
    let again = compile_ptx(CACHED_CU, "cached.cu", ARCH).expect("recompiled");
    assert!(
        again == first,
        "a cache file edited in place was returned as PTX"
    );

    let other = compile_ptx(OTHER_CU, "other.cu", ARCH).expect("other.cu compiles");
    std::fs::copy(cache_file("other_cu"), &file).expect("plant another kernel's file");
    let again = compile_ptx(CACHED_CU, "cached.cu", ARCH).expect("recompiled");
    assert!(
        again != other,
        "another kernel's cache file was returned as this one's PTX"
    );
    assert!(again == first, "recompiled as NVRTC made it");
    assert!(
        std::fs::read(&file).expect("the cache file") == stored,
        "the bad file was overwritten with a good one"
    );
}
