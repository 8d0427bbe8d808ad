//! The CPU fallback: `particles.cu`'s `particles_step`, in Rust (keep the two in step), run
//! by the plugin on a worker thread when there is no GPU.

use perdix_transport::bevy::Emitter;

use crate::step::{
    BlockStats, BumperHit, StepArgs, WallHit, BLOCK, BUMPERS, KIND_BLOCK_STATS, KIND_BUMPER_HIT,
    KIND_WALL_HIT,
};

#[derive(Clone, Copy, Debug, Default)]
struct Particle {
    x: f32,
    y: f32,
    vx: f32,
    vy: f32,
}

/// The state the kernel keeps in the app's device buffer.
#[derive(Debug, Default)]
pub struct CpuParticles {
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
    /// The fallback closure for `GpuProducerSpec::cpu_fallback`.
    pub fn into_fallback(mut self) -> impl FnMut(&StepArgs, &mut Emitter) + Send + 'static {
        move |args, emit| self.step(args, emit)
    }

    /// One frame; stops emitting once the ring's consumer is gone.
    fn step(&mut self, args: &StepArgs, emit: &mut Emitter) {
        let count = args.count as usize;
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
