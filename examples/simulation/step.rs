//! The kernel's interface, in Rust: the `#[repr(C)]` twins of `particles.cu`'s argument and
//! event structs, its message kinds and sizes, the routing of its kinds ([`add_messages`]) and
//! the producer that launches it ([`producer`], the one `unsafe` call). One definition, used by
//! the example (and its CPU fallback in `cpu.rs`) and by `tests/bevy_kernels.rs` (through
//! `#[path]`); the CUDA side declares the same structs and `static_assert`s the same sizes.

use bevy_app::App;
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use perdix_transport::bevy::{GpuProducerSpec, PerdixAppExt};

/// The kernel, embedded; compiled by NVRTC at first launch.
pub const PARTICLES_CU: &str = include_str!("particles.cu");
/// Its entry point.
pub const ENTRY: &str = "particles_step";

/// `KIND_WALL_HIT` in the kernel.
pub const KIND_WALL_HIT: u32 = 1;
/// `KIND_BUMPER_HIT` in the kernel.
pub const KIND_BUMPER_HIT: u32 = 2;
/// `KIND_BLOCK_STATS` in the kernel.
pub const KIND_BLOCK_STATS: u32 = 3;
/// Particles per block on the GPU, and per statistics message on the CPU.
pub const BLOCK: u32 = 256;
/// The kernel's `BUMPERS`.
pub const BUMPERS: u32 = 4;

/// The kernel's per-frame arguments, its parameters after `p`, in order:
/// `particles_step(p, particles, dt, frame, count, half)`.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct StepArgs {
    /// The particles' device buffer (`count` of the kernel's `Particle`, four `f32` each), as
    /// its address (`perdix_transport::cuda::device_address`); 0 where there
    /// is none (no GPU: the CPU fallback keeps its own particles).
    pub particles: u64,
    /// Simulated seconds this frame.
    pub dt: f32,
    /// Frame number (0 initialises the particles).
    pub frame: u32,
    /// Particles simulated.
    pub count: u32,
    /// Half the box's side.
    pub half: f32,
}

/// A particle bounced off a wall (0 left, 1 right, 2 bottom, 3 top).
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct WallHit {
    pub particle: u32,
    pub wall: u32,
    pub speed: f32,
    pub frame: u32,
}

/// A particle bounced off a bumper.
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BumperHit {
    pub particle: u32,
    pub bumper: u32,
    pub speed: f32,
    pub frame: u32,
}

/// One block's statistics for one frame.
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
pub struct BlockStats {
    pub block: u32,
    pub frame: u32,
    pub particles: u32,
    pub kinetic: f32,
    pub max_speed: f32,
    pub hits: u32,
}

// The sizes `particles.cu` asserts for its twins.
const _: () = assert!(size_of::<WallHit>() == 16 && size_of::<BumperHit>() == 16);
const _: () = assert!(size_of::<BlockStats>() == 24 && size_of::<StepArgs>() == 24);

/// Routes the kernel's three kinds into their message types.
pub fn add_messages(app: &mut App) -> &mut App {
    app.add_perdix_message::<WallHit>(KIND_WALL_HIT)
        .add_perdix_message::<BumperHit>(KIND_BUMPER_HIT)
        .add_perdix_message::<BlockStats>(KIND_BLOCK_STATS)
}

/// `particles_step` as a plugin producer for `particles` particles, one GPU thread each, with
/// `args` giving each launch's arguments.
///
/// # Safety
///
/// `GpuProducerSpec::args`' contract, for every `StepArgs` that `args` returns: its
/// `particles` is the device address of `count` of the kernel's `Particle` (four `f32` each) on
/// the plugin's device, alive until the app has ended, with the app's writes to them ordered
/// before; or no kernel ever sees it (without a GPU the CPU fallback ignores the address).
pub unsafe fn producer(
    particles: u32,
    args: impl Fn(&World) -> StepArgs + Send + Sync + 'static,
) -> GpuProducerSpec<StepArgs> {
    // SAFETY: `GpuProducerSpec::new`'s contract, point by point, for `particles_step(const
    // perdix_producer* p, Particle* particles, float dt, unsigned frame, unsigned count, float
    // half)` in particles.cu: (1) it takes the producer pointer first and passes it only to
    // `perdix_emit`; (2) it reaches the ring only through `perdix_emit`; (3) it writes only
    // `particles[0..count]` (and its block's shared statistics), the buffer and count its
    // arguments name: none with a zeroed `StepArgs` (`count` 0); (4) every write is under
    // `if (i < count)`, whatever the grid and block, and it uses no dynamic shared memory;
    // (5) `StepArgs` is `#[repr(C)] { u64, f32, u32, u32, f32 }`, its parameters after `p`
    // in order (the pointer as its address).
    let spec = unsafe { GpuProducerSpec::new("particles", PARTICLES_CU, ENTRY) }
        .grid(particles.div_ceil(BLOCK))
        .block(BLOCK);
    // SAFETY: `GpuProducerSpec::args`' contract: (1) each value is a `StepArgs`, the kernel's
    // parameters (above); (2) and (3) are this fn's contract, which its caller keeps for
    // `args`.
    unsafe { spec.args(move |world, _launch| args(world)) }
}
