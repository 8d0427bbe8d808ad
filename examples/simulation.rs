//! Particles in a box: a GPU kernel (`kernels/particles.cu`) moves the particles each frame and
//! emits typed events (wall hits, bumper hits, per-block statistics) through perdix; ECS systems
//! consume them to update components and resources and print a summary. Without a CUDA device
//! the same step, written in Rust below, runs as the producer's CPU fallback.
//!
//! ```text
//! cargo run --release --example simulation
//! cargo run --release --example simulation -- --particles 65536 --seconds 10
//! ```

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_app::{ScheduleRunnerPlugin, TaskPoolPlugin};
use bevy_diagnostic::DiagnosticsPlugin;
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use clap::Parser;
use perdix_transport::bevy::{
    Emitter, GpuProducerSpec, PerdixAppExt, PerdixPlugin, PerdixRings, ProducerBackend,
};

/// The kernel, embedded; compiled by NVRTC at first launch.
const PARTICLES_CU: &str = include_str!("../kernels/particles.cu");

const KIND_WALL_HIT: u32 = 1;
const KIND_BUMPER_HIT: u32 = 2;
const KIND_BLOCK_STATS: u32 = 3;
/// Particles per block on the GPU, and per statistics message on the CPU.
const BLOCK: u32 = 256;
/// The kernel's `MAX_PARTICLES`.
const MAX_PARTICLES: u32 = 65_536;
const BUMPERS: u32 = 4;

/// Particles in a box with bumpers, events through perdix into Bevy ECS.
#[derive(Parser, Debug, Clone)]
#[command(version)]
struct Args {
    /// Seconds to run.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Particles (at most 65,536).
    #[arg(long, default_value_t = 16_384)]
    particles: u32,
    /// Simulated seconds per frame.
    #[arg(long, default_value_t = 1.0 / 240.0)]
    dt: f32,
    /// Frames per second to aim for (0: as fast as possible).
    #[arg(long, default_value_t = 240.0)]
    fps: f64,
}

/// The kernel's per-frame arguments, passed as its scalar parameters after `p`, in order.
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct StepArgs {
    dt: f32,
    frame: u32,
    count: u32,
    half: f32,
}

/// A particle bounced off a wall (0 left, 1 right, 2 bottom, 3 top).
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct WallHit {
    particle: u32,
    wall: u32,
    speed: f32,
    frame: u32,
}

/// A particle bounced off a bumper.
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct BumperHit {
    particle: u32,
    bumper: u32,
    speed: f32,
    frame: u32,
}

/// One block's statistics for one frame.
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct BlockStats {
    block: u32,
    frame: u32,
    particles: u32,
    kinetic: f32,
    max_speed: f32,
    hits: u32,
}

#[derive(Component, Debug, Default)]
struct Wall {
    id: u32,
    hits: u64,
}

#[derive(Component, Debug, Default)]
struct Bumper {
    id: u32,
    hits: u64,
    /// Sum of the speeds of the particles that hit it.
    heat: f64,
}

/// The frame counter the kernel's arguments come from.
#[derive(Resource, Debug, Default)]
struct SimClock {
    frame: u32,
}

/// What the systems learned from the events.
#[derive(Resource, Debug, Default)]
struct SimStats {
    /// Per frame: (blocks reported, particles, kinetic energy, max speed, hits).
    partial: BTreeMap<u32, (u32, u32, f64, f32, u64)>,
    /// The first and latest complete frames: (frame, kinetic energy).
    first: Option<(u32, f64)>,
    latest: Option<(u32, f64)>,
    max_speed: f32,
    complete_frames: u64,
    block_hits: u64,
    events: u64,
}

#[derive(Resource)]
struct Run {
    args: Args,
    start: Instant,
    last_report: Instant,
    outcome: Arc<Mutex<Option<Vec<String>>>>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    if args.particles == 0 || args.particles > MAX_PARTICLES {
        eprintln!("--particles must be 1..={MAX_PARTICLES}");
        return ExitCode::from(2);
    }
    let wait = if args.fps > 0.0 {
        Duration::from_secs_f64(1.0 / args.fps)
    } else {
        Duration::ZERO
    };
    let blocks = args.particles.div_ceil(BLOCK);
    // SAFETY: `particles_step(const perdix_producer* p, float dt, unsigned frame, unsigned
    // count, float half)` (kernels/particles.cu) takes the producer pointer first and reaches
    // the ring only through `perdix_emit`; `StepArgs` is `#[repr(C)] { f32, u32, u32, f32 }`,
    // its parameters after `p` in order; it has no other pointer to write through.
    let spec = unsafe { GpuProducerSpec::new("particles", PARTICLES_CU, "particles_step") }
        .grid(blocks)
        .block(BLOCK)
        .args(|world: &World| {
            let (frame, args) = (
                world.resource::<SimClock>().frame,
                &world.resource::<Run>().args,
            );
            StepArgs {
                dt: args.dt,
                frame,
                count: args.particles,
                half: 1.0,
            }
        })
        .cpu_fallback(CpuParticles::default().into_fallback());
    let outcome = Arc::new(Mutex::new(None));
    let now = Instant::now();
    App::new()
        .add_plugins((
            TaskPoolPlugin::default(),
            ScheduleRunnerPlugin::run_loop(wait),
            DiagnosticsPlugin,
            PerdixPlugin::default().capacity(65_536),
        ))
        .add_perdix_message::<WallHit>(KIND_WALL_HIT)
        .add_perdix_message::<BumperHit>(KIND_BUMPER_HIT)
        .add_perdix_message::<BlockStats>(KIND_BLOCK_STATS)
        .add_gpu_producer(spec)
        .init_resource::<SimClock>()
        .init_resource::<SimStats>()
        .insert_resource(Run {
            args,
            start: now,
            last_report: now,
            outcome: Arc::clone(&outcome),
        })
        .add_systems(Startup, spawn_arena)
        .add_systems(
            Update,
            (wall_hits, bumper_hits, block_stats, report).chain(),
        )
        .add_systems(Last, tick)
        .run();
    let lines = outcome
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    match lines {
        Some(lines) => {
            for line in lines {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        None => ExitCode::FAILURE,
    }
}

fn spawn_arena(mut commands: Commands) {
    for id in 0..4 {
        commands.spawn(Wall { id, hits: 0 });
    }
    for id in 0..BUMPERS {
        commands.spawn(Bumper {
            id,
            ..Bumper::default()
        });
    }
}

fn tick(mut clock: ResMut<SimClock>) {
    clock.frame += 1;
}

fn wall_hits(
    mut hits: MessageReader<WallHit>,
    mut walls: Query<&mut Wall>,
    mut stats: ResMut<SimStats>,
) {
    let mut per_wall = [0u64; 4];
    for hit in hits.read() {
        if let Some(n) = per_wall.get_mut(hit.wall as usize) {
            *n += 1;
        }
        stats.events += 1;
    }
    for mut wall in &mut walls {
        wall.hits += per_wall[wall.id as usize % 4];
    }
}

fn bumper_hits(
    mut hits: MessageReader<BumperHit>,
    mut bumpers: Query<&mut Bumper>,
    mut stats: ResMut<SimStats>,
) {
    let mut per_bumper = [(0u64, 0f64); BUMPERS as usize];
    for hit in hits.read() {
        if let Some((n, heat)) = per_bumper.get_mut(hit.bumper as usize) {
            *n += 1;
            *heat += f64::from(hit.speed);
        }
        stats.events += 1;
    }
    for mut bumper in &mut bumpers {
        let (n, heat) = per_bumper[bumper.id as usize % BUMPERS as usize];
        bumper.hits += n;
        bumper.heat += heat;
    }
}

fn block_stats(mut reports: MessageReader<BlockStats>, mut stats: ResMut<SimStats>, run: Res<Run>) {
    let blocks = run.args.particles.div_ceil(BLOCK);
    let stats = &mut *stats;
    for report in reports.read() {
        stats.events += 1;
        let entry = stats.partial.entry(report.frame).or_default();
        entry.0 += 1;
        entry.1 += report.particles;
        entry.2 += f64::from(report.kinetic);
        entry.3 = entry.3.max(report.max_speed);
        entry.4 += u64::from(report.hits);
        if entry.0 == blocks {
            let (_, particles, kinetic, max_speed, hits) = *entry;
            stats.partial.remove(&report.frame);
            if particles != run.args.particles {
                tracing::warn!(
                    frame = report.frame,
                    particles,
                    "a frame's statistics miss particles"
                );
            }
            stats.complete_frames += 1;
            stats.block_hits += hits;
            stats.max_speed = stats.max_speed.max(max_speed);
            if stats.first.is_none_or(|(f, _)| report.frame < f) {
                stats.first = Some((report.frame, kinetic));
            }
            if stats.latest.is_none_or(|(f, _)| report.frame > f) {
                stats.latest = Some((report.frame, kinetic));
            }
        }
    }
    // Frames whose blocks never all arrive (e.g. a launch skipped half way) are let go.
    while stats.partial.len() > 64 {
        stats.partial.pop_first();
    }
}

fn report(
    mut run: ResMut<Run>,
    stats: Res<SimStats>,
    clock: Res<SimClock>,
    walls: Query<&Wall>,
    bumpers: Query<&Bumper>,
    mut ring: ResMut<PerdixRings>,
    mut exit: MessageWriter<AppExit>,
) {
    let now = Instant::now();
    let elapsed = (now - run.start).as_secs_f64();
    let wall_hits: u64 = walls.iter().map(|w| w.hits).sum();
    let bumper_hits: u64 = bumpers.iter().map(|b| b.hits).sum();
    let energy = |e: Option<(u32, f64)>| e.map_or(0.0, |(_, k)| k);
    if (now - run.last_report).as_secs_f64() >= 1.0 {
        run.last_report = now;
        println!(
            "[{elapsed:4.1} s] frame {:6}  complete {:6}  wall hits {:9}  bumper hits {:8}  kinetic energy {:.4}  events {}",
            clock.frame,
            stats.complete_frames,
            wall_hits,
            bumper_hits,
            energy(stats.latest),
            stats.events,
        );
    }
    if elapsed < run.args.seconds {
        return;
    }
    let backend: ProducerBackend = ring.producer_backend();
    let drain = ring.stats();
    let (e0, e1) = (energy(stats.first), energy(stats.latest));
    let drift = if e0 > 0.0 {
        (e1 - e0) / e0 * 100.0
    } else {
        0.0
    };
    let mut lines = vec![
        String::new(),
        format!(
            "simulation summary: backend {backend}, {} particles, {} frames in {elapsed:.1} s ({} complete)",
            run.args.particles, clock.frame, stats.complete_frames
        ),
        format!(
            "  events      {} delivered into ECS messages ({} via perdix, {} unrouted, {} malformed)",
            stats.events, drain.messages, drain.unrouted, drain.malformed
        ),
    ];
    let mut walls: Vec<&Wall> = walls.iter().collect();
    walls.sort_by_key(|w| w.id);
    lines.push(format!(
        "  walls       hits left {} right {} bottom {} top {} (total {wall_hits})",
        walls.first().map_or(0, |w| w.hits),
        walls.get(1).map_or(0, |w| w.hits),
        walls.get(2).map_or(0, |w| w.hits),
        walls.get(3).map_or(0, |w| w.hits),
    ));
    let mut bumpers: Vec<&Bumper> = bumpers.iter().collect();
    bumpers.sort_by_key(|b| b.id);
    for bumper in bumpers {
        lines.push(format!(
            "  bumper {}    hits {:8}  mean speed {:.3}",
            bumper.id,
            bumper.hits,
            if bumper.hits == 0 {
                0.0
            } else {
                bumper.heat / bumper.hits as f64
            }
        ));
    }
    lines.push(format!(
        "  energy      kinetic {e0:.4} (frame {}) -> {e1:.4} (frame {}): drift {drift:+.4}% (elastic bounces conserve it)",
        stats.first.map_or(0, |(f, _)| f),
        stats.latest.map_or(0, |(f, _)| f),
    ));
    lines.push(format!(
        "  hits        {} counted by blocks, {} events received; max speed {:.3}",
        stats.block_hits,
        wall_hits + bumper_hits,
        stats.max_speed
    ));
    *run.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(lines);
    exit.write(AppExit::Success);
}

// ---------------------------------------------------------------------------------------------
// The CPU fallback: `kernels/particles.cu`'s `particles_step`, in Rust.

#[derive(Clone, Copy, Debug, Default)]
struct Particle {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

/// The state the kernel keeps in `g_particles`.
#[derive(Debug, Default)]
struct CpuParticles {
    particles: Vec<Particle>,
}

/// lowbias32 (Chris Wellons), mapped to [0, 1): the kernel's `hash01`.
fn hash01(mut x: u32) -> f32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    (x & 0x00FF_FFFF) as f32 / 16_777_216.0
}

fn particle_init(i: u32, half: f32) -> Particle {
    let h = |k: u32| hash01(4 * i + k) * 2.0 - 1.0;
    Particle {
        x: h(0) * half * 0.95,
        y: h(1) * half * 0.95,
        vx: h(2) * half,
        vy: h(3) * half,
    }
}

fn bumper(b: u32, half: f32) -> (f32, f32, f32) {
    let bx = if b & 1 != 0 { 0.5 * half } else { -0.5 * half };
    let by = if b & 2 != 0 { 0.5 * half } else { -0.5 * half };
    (bx, by, 0.15 * half)
}

impl CpuParticles {
    fn into_fallback(mut self) -> impl FnMut(&StepArgs, &mut Emitter) + Send + 'static {
        move |args, emit| self.step(args, emit)
    }

    /// One frame; stops emitting once the ring's consumer is gone.
    fn step(&mut self, args: &StepArgs, emit: &mut Emitter) {
        let count = args.count.min(MAX_PARTICLES) as usize;
        if args.frame == 0 || self.particles.len() != count {
            self.particles = (0..count as u32)
                .map(|i| particle_init(i, args.half))
                .collect();
        }
        let (half, dt, frame) = (args.half, args.dt, args.frame);
        let mut open = true;
        let mut send = |kind: u32, bytes: &[u8]| {
            if open && emit.emit_bytes(kind, bytes).is_err() {
                open = false;
            }
        };
        for (block, chunk) in self.particles.chunks_mut(BLOCK as usize).enumerate() {
            let mut kinetic = 0.0f32;
            let mut max_speed = 0.0f32;
            let mut block_hits = 0u32;
            for (k, q) in chunk.iter_mut().enumerate() {
                let i = (block * BLOCK as usize + k) as u32;
                q.x += q.vx * dt;
                q.y += q.vy * dt;
                for wall in 0..4u32 {
                    let sign = if wall & 1 != 0 { 1.0 } else { -1.0 };
                    let (pos, vel) = if wall < 2 {
                        (&mut q.x, &mut q.vx)
                    } else {
                        (&mut q.y, &mut q.vy)
                    };
                    if sign * *pos > half {
                        *pos = sign * (2.0 * half) - *pos;
                        *vel = -*vel;
                        let speed = (q.vx * q.vx + q.vy * q.vy).sqrt();
                        let hit = WallHit {
                            particle: i,
                            wall,
                            speed,
                            frame,
                        };
                        send(KIND_WALL_HIT, bytemuck::bytes_of(&hit));
                        block_hits += 1;
                    }
                }
                for b in 0..BUMPERS {
                    let (bx, by, r) = bumper(b, half);
                    let (dx, dy) = (q.x - bx, q.y - by);
                    let d2 = dx * dx + dy * dy;
                    let approach = dx * q.vx + dy * q.vy;
                    if d2 < r * r && d2 > 0.0 && approach < 0.0 {
                        let k = 2.0 * approach / d2;
                        q.vx -= k * dx;
                        q.vy -= k * dy;
                        let speed = (q.vx * q.vx + q.vy * q.vy).sqrt();
                        let hit = BumperHit {
                            particle: i,
                            bumper: b,
                            speed,
                            frame,
                        };
                        send(KIND_BUMPER_HIT, bytemuck::bytes_of(&hit));
                        block_hits += 1;
                    }
                }
                let speed2 = q.vx * q.vx + q.vy * q.vy;
                kinetic += 0.5 * speed2;
                max_speed = max_speed.max(speed2.sqrt());
            }
            let stats = BlockStats {
                block: block as u32,
                frame,
                particles: chunk.len() as u32,
                kinetic,
                max_speed,
                hits: block_hits,
            };
            send(KIND_BLOCK_STATS, bytemuck::bytes_of(&stats));
        }
    }
}
