//! The dashboard panel inside a windowed Bevy app (`overlay` feature, bevy_egui).
//!
//! Particles bounce around the window. Every wall hit is sent as a typed message through a
//! perdix ring by a CPU producer, drained by [`PerdixPlugin`] into Bevy's `Messages<Hit>` and
//! counted by an ordinary `MessageReader`; a second ring carries paced stress messages
//! (`--rate`) so the plots have something to show. [`PerdixOverlayPlugin`] draws the
//! [`PerdixPanel`](perdix_transport::dashboard::PerdixPanel) on top; **F1** shows and hides it.
//! Beside it, Bevy's own `DiagnosticsOverlayPlugin` (bevy_dev_tools) shows the transport's
//! preset, [`PerdixDiagnostics::overlay`]: what an app with no egui would use.
//!
//! ```text
//! cargo run --release --example simulation_overlay --features overlay
//! cargo run --release --example simulation_overlay --features overlay -- --screenshot assets/overlay.png
//! ```
//!
//! The particles are drawn with egui's painter on the background layer (over the clear colour,
//! so Bevy's UI overlay stays visible), so the example needs no sprite or mesh pipeline beyond
//! what bevy_egui already pulls in.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bevy_window_app as bevy;

use bevy::prelude::*;
use bevy::render::view::screenshot::{save_to_disk, Screenshot};
use bevy::window::PrimaryWindow;
use bevy_dev_tools::diagnostics_overlay::{DiagnosticsOverlay, DiagnosticsOverlayPlugin};
use bevy_egui::{egui, EguiContexts, EguiPrimaryContextPass};
use bytemuck::{Pod, Zeroable};
use clap::Parser;
use perdix_transport::bevy::{
    Emitter, PerdixAppExt, PerdixDiagnostics, PerdixMessage, PerdixPlugin, PerdixRings,
};
use perdix_transport::dashboard::PerdixOverlayPlugin;
use perdix_transport::testing::stress::{StressSender, Verifier};
use perdix_transport::Producer;

/// Particles in a Bevy window, their wall hits carried by perdix, the dashboard on top.
#[derive(Debug, Parser, Resource, Clone)]
struct Args {
    /// Particles.
    #[arg(long, default_value_t = 400)]
    particles: usize,
    /// Stress messages per second on the second ring (0: none).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Save a PNG of the window after `--screenshot-after` seconds, then exit.
    #[arg(long)]
    screenshot: Option<PathBuf>,
    /// Seconds to run before the screenshot.
    #[arg(long, default_value_t = 10.0)]
    screenshot_after: f32,
    /// Exit after this many seconds (0: when the window closes).
    #[arg(long, default_value_t = 0.0)]
    exit_after: f32,
}

/// A wall hit, as sent through the ring (kind [`Hit::KIND`]).
#[derive(Message, Debug, Clone, Copy, Pod, Zeroable)]
#[repr(C)]
struct Hit {
    particle: u32,
    wall: u32,
    speed: f32,
    _pad: u32,
}

impl Hit {
    const KIND: u32 = 1;
}

/// Kind of the stress messages (routed raw, as [`PerdixMessage`], and verified).
const STRESS_KIND: u32 = 2;
/// Producer id of the stress ring (the id the verifier keys its sequences on).
const STRESS_PRODUCER: u32 = 1;

/// Checks every stress message that arrives.
#[derive(Resource, Debug)]
struct StressCheck(Verifier);

#[derive(Component, Debug)]
struct Particle {
    id: u32,
    pos: Vec2,
    vel: Vec2,
    /// Seconds since its last hit, for the flash.
    since_hit: f32,
}

/// The producer of hits (the simulation's side of the ring).
#[derive(Resource, Debug)]
struct HitSender(Emitter);

#[derive(Resource, Debug, Default)]
struct HitCount {
    total: u64,
    last_frame: u64,
}

/// Stops the stress thread when the app ends.
#[derive(Resource, Debug)]
struct StressThread {
    stop: Arc<AtomicBool>,
}

impl Drop for StressThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn main() -> AppExit {
    let args = Args::parse();
    let mut app = App::new();
    app.add_plugins(DefaultPlugins.set(WindowPlugin {
        primary_window: Some(Window {
            title: "perdix overlay".into(),
            resolution: (1280u32, 800u32).into(),
            ..default()
        }),
        ..default()
    }))
    .add_plugins((
        PerdixPlugin::default().capacity(65_536),
        PerdixOverlayPlugin::default(),
        DiagnosticsOverlayPlugin,
    ))
    .insert_resource(ClearColor(Color::srgb_u8(14, 18, 28)))
    .add_perdix_message::<Hit>(Hit::KIND)
    .add_perdix_raw(STRESS_KIND)
    .insert_resource(StressCheck(Verifier::new(false)))
    .insert_resource(args)
    .init_resource::<HitCount>()
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (
            place_overlay,
            step,
            count_hits,
            verify_stress,
            screenshot_and_exit,
        ),
    )
    .add_systems(EguiPrimaryContextPass, draw_particles);
    app.run()
}

fn setup(mut commands: Commands, mut rings: ResMut<PerdixRings>, args: Res<Args>) -> Result {
    commands.spawn(Camera2d);
    // Bevy's built-in overlay of the `perdix/*` diagnostics (draggable, collapsible).
    commands.spawn(PerdixDiagnostics::overlay());
    let producer = rings.add_producer("particles")?;
    commands.insert_resource(HitSender(Emitter::new(producer)));
    if args.rate > 0 {
        let producer = rings.add_producer_with_id("stress", STRESS_PRODUCER)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, rate) = (Arc::clone(&stop), args.rate);
        std::thread::Builder::new()
            .name("perdix-stress".into())
            .spawn(move || paced_stress(producer, rate, &flag))?;
        commands.insert_resource(StressThread { stop });
    }
    // A small deterministic generator: the same particles every run.
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f32 / (1u64 << 53) as f32
    };
    for id in 0..args.particles {
        let angle = rand() * std::f32::consts::TAU;
        commands.spawn(Particle {
            id: id as u32,
            pos: Vec2::new(rand() * 1200.0 + 40.0, rand() * 700.0 + 50.0),
            vel: Vec2::from_angle(angle) * (80.0 + rand() * 320.0),
            since_hit: 1.0,
        });
    }
    Ok(())
}

/// Moves Bevy's diagnostics overlay beside the egui panel (it opens at the top left, where the
/// panel is); it stays draggable by its header.
fn place_overlay(
    mut overlays: Query<&mut Node, (With<DiagnosticsOverlay>, Added<Node>)>,
    windows: Query<&Window, With<PrimaryWindow>>,
) {
    let Ok(window) = windows.single() else {
        return;
    };
    for mut node in &mut overlays {
        node.left = Val::Px(window.width() - 330.0);
        node.top = Val::Px(16.0);
    }
}

/// Stress messages at `rate` per second until `stop`; blocks on a full ring (the plugin's
/// default policy), so the overlay shows backpressure when the frame drain falls behind.
fn paced_stress(mut producer: Producer, rate: u64, stop: &AtomicBool) {
    let start = Instant::now();
    // The library's stress loop (a refused message is retried with its sequence).
    let Ok(mut sender) = StressSender::new(STRESS_PRODUCER, STRESS_KIND, 64) else {
        return;
    };
    while !stop.load(Ordering::Relaxed) {
        let allowed = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        if allowed <= sender.sent() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        if sender
            .send(&mut producer, (allowed - sender.sent()).min(4096))
            .is_err()
        {
            return;
        }
    }
}

/// Moves the particles and sends a [`Hit`] through the ring for every bounce.
fn step(
    time: Res<Time>,
    windows: Query<&Window, With<PrimaryWindow>>,
    mut particles: Query<&mut Particle>,
    mut sender: ResMut<HitSender>,
) {
    let Ok(window) = windows.single() else {
        return;
    };
    let size = Vec2::new(window.width(), window.height());
    let dt = time.delta_secs().min(0.05);
    for mut particle in &mut particles {
        let p = &mut *particle;
        p.pos += p.vel * dt;
        p.since_hit += dt;
        let mut wall = None;
        for axis in 0..2 {
            if p.pos[axis] < 0.0 || p.pos[axis] > size[axis] {
                p.pos[axis] = p.pos[axis].clamp(0.0, size[axis]);
                p.vel[axis] = -p.vel[axis];
                wall = Some(axis as u32 * 2 + u32::from(p.pos[axis] > 0.0));
            }
        }
        if let Some(wall) = wall {
            p.since_hit = 0.0;
            let hit = Hit {
                particle: p.id,
                wall,
                speed: p.vel.length(),
                _pad: 0,
            };
            // A full ring drops the hit (counted by the ring): the frame never waits.
            let _ = sender.0.emit(Hit::KIND, &hit);
        }
    }
}

/// Counts the hits that came back through the ring as Bevy messages.
fn count_hits(mut hits: MessageReader<Hit>, mut count: ResMut<HitCount>) {
    let n = hits.read().count() as u64;
    count.total += n;
    count.last_frame = n;
}

/// Verifies the stress messages that came through the ring.
fn verify_stress(mut raw: MessageReader<PerdixMessage>, mut check: ResMut<StressCheck>) {
    for msg in raw.read() {
        if msg.kind() == STRESS_KIND {
            check.0.check(msg.producer(), msg.payload());
        }
    }
}

/// Particles on egui's background layer, plus a one-line status.
fn draw_particles(
    mut contexts: EguiContexts,
    particles: Query<&Particle>,
    count: Res<HitCount>,
    check: Res<StressCheck>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let painter = ctx.layer_painter(egui::LayerId::background());
    let size = ctx.content_rect().size();
    for p in &particles {
        // Bevy's window y grows upwards in this simulation; egui's downwards.
        let pos = egui::pos2(p.pos.x, size.y - p.pos.y);
        let flash = (1.0 - p.since_hit * 3.0).clamp(0.0, 1.0);
        let color = egui::Color32::from_rgb(
            (90.0 + 165.0 * flash) as u8,
            (160.0 - 60.0 * flash) as u8,
            (240.0 - 170.0 * flash) as u8,
        );
        painter.circle_filled(pos, 3.0 + 3.0 * flash, color);
    }
    egui::Area::new(egui::Id::new("status"))
        .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -12.0])
        .show(ctx, |ui| {
            let report = check.0.report();
            let text = format!(
                "{} particles · hits via perdix: {} ({} this frame) · stress checked: {} ({}) · F1: dashboard",
                particles.iter().len(),
                count.total,
                count.last_frame,
                report.messages,
                if report.is_clean() { "intact" } else { "ERRORS" },
            );
            ui.add(
                egui::Label::new(egui::RichText::new(text).color(egui::Color32::LIGHT_GRAY))
                    .extend(),
            );
        });
    Ok(())
}

/// `--screenshot`: saves the window after the given time, then exits; `--exit-after` exits.
fn screenshot_and_exit(
    mut commands: Commands,
    time: Res<Time>,
    args: Res<Args>,
    mut taken: Local<Option<f32>>,
    mut exit: MessageWriter<AppExit>,
) {
    let now = time.elapsed_secs();
    if let Some(path) = &args.screenshot {
        match *taken {
            None if now >= args.screenshot_after => {
                commands
                    .spawn(Screenshot::primary_window())
                    .observe(save_to_disk(path.clone()));
                *taken = Some(now);
            }
            // Give the capture a second to reach the disk.
            Some(at) if now >= at + 1.5 => {
                exit.write(AppExit::Success);
            }
            _ => {}
        }
    }
    if args.exit_after > 0.0 && now >= args.exit_after {
        exit.write(AppExit::Success);
    }
}
