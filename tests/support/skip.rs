//! The one way a test that needs CUDA says it cannot run here: [`skip`].
//!
//! Without a device (or, for the compile-only tests, without libnvrtc) such a test prints
//! `skipped: <why>` and passes: right in CI, which has no GPU. On the GPU machine a skip would
//! hide a test that never ran, so there `PERDIX_REQUIRE_GPU=1` (`scripts/gpu-device.sh` sets
//! it) makes every skip a panic with the reason: a failing test. Every GPU test path goes
//! through here (`tests/support/device.rs` calls it), so none can skip silently.

/// The variable that turns a skip into a failure: set, and neither empty nor `0`.
const REQUIRE_GPU: &str = "PERDIX_REQUIRE_GPU";

/// The calling test cannot run here, because of `why`: prints `skipped: <why>` (the caller then
/// returns, and the test passes), or, under `PERDIX_REQUIRE_GPU=1`, panics with `why`.
///
/// # Panics
///
/// When `PERDIX_REQUIRE_GPU` is set to anything but `""` or `"0"`.
#[track_caller]
pub fn skip(why: impl std::fmt::Display) {
    let required = std::env::var_os(REQUIRE_GPU).is_some_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("{REQUIRE_GPU} is set, and this test would skip: {why}");
    }
    println!("skipped: {why}");
}
