//! Runs one test of this test binary alone in a child process: a GPU fault (a `__trap()`, an
//! illegal address) poisons the process's whole CUDA context, so the tests that cause one run
//! there and the parent checks the outcome.

use std::process::Command;

/// Set in the child's environment.
const CHILD: &str = "PERDIX_FAULT_CHILD";

/// Whether this process is the child [`run`] started: the test's body runs here.
pub fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

/// Runs `test` (its full name in this binary) alone in a child process, prints what it printed,
/// and returns its standard output once it passed (panics if it failed).
pub fn run(test: &str) -> String {
    let exe = std::env::current_exe().unwrap_or_else(|err| panic!("test binary: {err}"));
    let out = Command::new(exe)
        .args(["--ignored", "--exact", test, "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap_or_else(|err| panic!("child of {test}: {err}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child of {test} failed");
    text
}
