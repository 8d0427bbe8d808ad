// particles.cu: particles in a box, one thread per particle, one launch per frame.
//
// The GPU producer of the `simulation` example (its CPU fallback, `cpu.rs` beside this file,
// runs the same step in Rust; keep the two in step). Each frame every particle moves by
// v * dt, bounces off the walls of the box [-half, half]^2 and off four round bumpers, and
// emits an event for each bounce; one thread per block emits the block's statistics. The
// state lives in a device buffer the app allocates (`count` particles, any count memory holds)
// and passes as `particles`, so it persists between launches; frame 0 initialises it.
//
// Launched as
//   particles_step(p, particles, dt, frame, count, half)
// by the plugin (the Rust `StepArgs` of `step.rs`: the buffer's address as a `u64`, then four
// 4-byte scalars) or by the app itself (`gpu.rs`, the same arguments through cudarc).
#include "perdix.cuh"

#define BUMPERS 4

#define KIND_WALL_HIT 1
#define KIND_BUMPER_HIT 2
#define KIND_BLOCK_STATS 3

struct Particle { float x, y, vx, vy; };

// Their `#[repr(C)]` twins are in `step.rs`, which asserts the same sizes.
struct WallHit { perdix_u32 particle, wall; float speed; perdix_u32 frame; };
struct BumperHit { perdix_u32 particle, bumper; float speed; perdix_u32 frame; };
struct BlockStats { perdix_u32 block, frame, particles; float kinetic, max_speed; perdix_u32 hits; };

static_assert(sizeof(WallHit) == 16, "WallHit layout");
static_assert(sizeof(BumperHit) == 16, "BumperHit layout");
static_assert(sizeof(BlockStats) == 24, "BlockStats layout");

// lowbias32 (Chris Wellons), mapped to [0, 1).
__device__ __forceinline__ float hash01(perdix_u32 x) {
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return (float)(x & 0xFFFFFFu) / 16777216.0f;
}

__device__ Particle particle_init(perdix_u32 i, float half) {
    Particle q;
    q.x = (hash01(4 * i + 0) * 2.0f - 1.0f) * half * 0.95f;
    q.y = (hash01(4 * i + 1) * 2.0f - 1.0f) * half * 0.95f;
    q.vx = (hash01(4 * i + 2) * 2.0f - 1.0f) * half;
    q.vy = (hash01(4 * i + 3) * 2.0f - 1.0f) * half;
    return q;
}

__device__ __forceinline__ void bumper(perdix_u32 b, float half, float* bx, float* by, float* r) {
    *bx = (b & 1u) ? 0.5f * half : -0.5f * half;
    *by = (b & 2u) ? 0.5f * half : -0.5f * half;
    *r = 0.15f * half;
}

extern "C" __global__ void particles_step(const perdix_producer* p, Particle* particles, float dt,
                                          perdix_u32 frame, perdix_u32 count, float half) {
    __shared__ float s_kinetic;
    __shared__ float s_max_speed;
    __shared__ perdix_u32 s_particles;
    __shared__ perdix_u32 s_hits;
    if (threadIdx.x == 0) {
        s_kinetic = 0.0f;
        s_max_speed = 0.0f;
        s_particles = 0;
        s_hits = 0;
    }
    __syncthreads();

    // Once the consumer is gone (PERDIX_CLOSED) stop emitting, but still reach every
    // __syncthreads below.
    bool open = true;
    const perdix_u32 i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < count) {
        Particle q = frame == 0 ? particle_init(i, half) : particles[i];
        q.x += q.vx * dt;
        q.y += q.vy * dt;
        perdix_u32 hits = 0;
        // Walls: 0 left, 1 right, 2 bottom, 3 top; reflect the overshoot.
        for (perdix_u32 wall = 0; wall < 4; wall++) {
            const bool x_axis = wall < 2;
            const float sign = (wall & 1u) ? 1.0f : -1.0f;
            float* pos = x_axis ? &q.x : &q.y;
            float* vel = x_axis ? &q.vx : &q.vy;
            if (sign * *pos > half) {
                *pos = sign * (2.0f * half) - *pos;
                *vel = -*vel;
                WallHit hit = { i, wall, sqrtf(q.vx * q.vx + q.vy * q.vy), frame };
                if (open && perdix_emit(p, KIND_WALL_HIT, &hit, sizeof hit) == PERDIX_CLOSED) open = false;
                hits++;
            }
        }
        // Bumpers: reflect the velocity about the normal when moving inwards.
        for (perdix_u32 b = 0; b < BUMPERS; b++) {
            float bx, by, r;
            bumper(b, half, &bx, &by, &r);
            const float dx = q.x - bx, dy = q.y - by;
            const float d2 = dx * dx + dy * dy;
            const float approach = dx * q.vx + dy * q.vy;
            if (d2 < r * r && d2 > 0.0f && approach < 0.0f) {
                const float k = 2.0f * approach / d2;
                q.vx -= k * dx;
                q.vy -= k * dy;
                BumperHit hit = { i, b, sqrtf(q.vx * q.vx + q.vy * q.vy), frame };
                if (open && perdix_emit(p, KIND_BUMPER_HIT, &hit, sizeof hit) == PERDIX_CLOSED) open = false;
                hits++;
            }
        }
        particles[i] = q;
        const float speed2 = q.vx * q.vx + q.vy * q.vy;
        atomicAdd(&s_kinetic, 0.5f * speed2);
        // Non-negative floats order as their bit patterns.
        atomicMax((perdix_u32*)&s_max_speed, __float_as_uint(sqrtf(speed2)));
        atomicAdd(&s_particles, 1u);
        atomicAdd(&s_hits, hits);
    }
    __syncthreads();
    if (threadIdx.x == 0 && s_particles > 0) {
        BlockStats stats = { blockIdx.x, frame, s_particles, s_kinetic, s_max_speed, s_hits };
        perdix_emit(p, KIND_BLOCK_STATS, &stats, sizeof stats);
    }
}
