//! The ECS side: walls and bumpers as entities, systems that read the kernel's events and a
//! report each second, and the summary at the end.

use std::collections::BTreeMap;
use std::sync::PoisonError;
use std::time::Instant;

use bevy_app::prelude::*;
use bevy_ecs::prelude::*;
use perdix_transport::bevy::{PerdixRings, ProducerBackend};

use crate::run::Run;
use crate::step::{BlockStats, BumperHit, WallHit, BLOCK, BUMPERS};

#[derive(Component, Debug, Default)]
pub struct Wall {
    id: u32,
    hits: u64,
}

#[derive(Component, Debug, Default)]
pub struct Bumper {
    id: u32,
    hits: u64,
    /// Sum of the speeds of the particles that hit it.
    heat: f64,
}

/// The frame counter the kernel's arguments come from.
#[derive(Resource, Debug, Default)]
pub struct SimClock {
    pub frame: u32,
}

/// What the systems learned from the events.
#[derive(Resource, Debug, Default)]
pub struct SimStats {
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

pub fn spawn_arena(mut commands: Commands) {
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

pub fn tick(mut clock: ResMut<SimClock>) {
    clock.frame += 1;
}

pub fn wall_hits(
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

pub fn bumper_hits(
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

pub fn block_stats(
    mut reports: MessageReader<BlockStats>,
    mut stats: ResMut<SimStats>,
    run: Res<Run>,
) {
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

pub fn report(
    mut run: ResMut<Run>,
    stats: Res<SimStats>,
    clock: Res<SimClock>,
    walls: Query<&Wall>,
    bumpers: Query<&Bumper>,
    rings: ResMut<PerdixRings>,
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
    let backend: ProducerBackend = rings.producer_backend();
    let drain = rings.counters().total();
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
