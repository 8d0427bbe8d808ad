//! The skip helper every GPU test goes through (`tests/support/skip.rs`): without
//! `PERDIX_REQUIRE_GPU` a skip prints `skipped: <why>` and the test passes; with
//! `PERDIX_REQUIRE_GPU=1` (the GPU machine's runs) the same skip fails the test with its reason.
//! Needs no GPU: each case runs the probe below in a child process of this binary.

use std::process::{Command, Output};

#[path = "support/skip.rs"]
mod skip;

/// Set by the parent in the child's environment: only then does the probe skip.
const PROBE: &str = "PERDIX_SKIP_PROBE";

/// What a GPU test does without a device. Passes untouched in an ordinary run (no [`PROBE`]).
#[test]
fn probe() {
    if std::env::var_os(PROBE).is_some() {
        skip::skip("no CUDA device (probe)");
    }
}

/// Runs [`probe`] alone in a child, with `PERDIX_REQUIRE_GPU` set to `require` (or unset).
fn run_probe(require: Option<&str>) -> Output {
    let exe = std::env::current_exe().unwrap_or_else(|err| panic!("test binary: {err}"));
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", "probe", "--nocapture", "--test-threads=1"])
        .env(PROBE, "1")
        .env_remove("PERDIX_REQUIRE_GPU");
    if let Some(value) = require {
        cmd.env("PERDIX_REQUIRE_GPU", value);
    }
    cmd.output().unwrap_or_else(|err| panic!("probe: {err}"))
}

#[test]
fn a_skip_prints_skipped_and_passes() {
    for require in [None, Some(""), Some("0")] {
        let out = run_probe(require);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{require:?}: {stdout}");
        assert!(
            stdout.contains("skipped: no CUDA device (probe)"),
            "{require:?}: {stdout}"
        );
    }
}

#[test]
fn perdix_require_gpu_turns_a_skip_into_a_failure_with_the_reason() {
    let out = run_probe(Some("1"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "PERDIX_REQUIRE_GPU is set, and this test would skip: no CUDA device (probe)"
        ),
        "{text}"
    );
    assert!(!text.contains("skipped:"), "{text}");
}
