//! `PerdixPanel` laid out headlessly (no window, no GPU) over synthetic snapshots: empty, normal
//! and extreme (zero throughput, 100 % occupancy, huge and non-finite values), and the message
//! sizes it shows.
#![cfg(feature = "dashboard")]

use perdix_transport::dashboard::egui::{self, Context, RawInput, Rect};
use perdix_transport::dashboard::{Health, PerdixPanel};
use perdix_transport::telemetry::{
    Counters, LatencyBucket, LatencySummary, Sample, Telemetry, TelemetrySnapshot,
};
use perdix_transport::testing::HeadlessFrame;

/// Lays the panel out for a few frames in a `width` × `height` screen, tessellates what it
/// drew, and returns the panel's rect and the number of triangles.
fn lay_out(snapshot: &TelemetrySnapshot, width: f32, height: f32) -> (Rect, usize) {
    let ctx = Context::default();
    let mut rect = Rect::NOTHING;
    let mut triangles = 0;
    for frame in 0..3 {
        triangles = HeadlessFrame::run(&ctx, [width, height], frame, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                rect = ui.add(PerdixPanel::new(snapshot)).rect;
            });
        })
        .triangles(&ctx);
    }
    (rect, triangles)
}

fn check(snapshot: &TelemetrySnapshot) {
    for (w, h) in [(1280.0, 900.0), (320.0, 240.0), (40.0, 30.0)] {
        let (rect, triangles) = lay_out(snapshot, w, h);
        assert!(rect.is_finite(), "panel rect not finite: {rect:?}");
        assert!(
            rect.width() > 0.0 && rect.height() > 0.0,
            "empty panel: {rect:?}"
        );
        assert!(triangles > 0, "panel drew nothing at {w}x{h}");
    }
}

/// A transport that ran for `secs` seconds at 10 Hz sampling.
fn normal_snapshot(secs: usize) -> TelemetrySnapshot {
    let mut telemetry = Telemetry::new("host", 600);
    telemetry.set_device("cpu");
    let mut totals = Counters {
        capacity: 4096,
        ..Counters::default()
    };
    for i in 0..=secs * 10 {
        let t = i as f64 / 10.0;
        let rate = 2_000_000 + (i as u64 % 17) * 100_000;
        totals.messages += rate / 10;
        totals.bytes += rate / 10 * 64;
        totals.stalls += if i.is_multiple_of(5) { 3 } else { 0 };
        totals.occupancy = (i as u64 * 97) % 4096;
        telemetry.update(t, totals);
    }
    for ns in (200..20_000).step_by(7) {
        telemetry.record_latency(ns);
    }
    telemetry.snapshot()
}

#[test]
fn empty_snapshot_lays_out() {
    let snapshot = TelemetrySnapshot::default();
    assert_eq!(Health::of(&snapshot), Health::Idle);
    check(&snapshot);
    // A recorder that has not seen a second update yet.
    let mut telemetry = Telemetry::new("host", 600);
    telemetry.update(0.0, Counters::default());
    check(&telemetry.snapshot());
}

#[test]
fn normal_snapshot_lays_out() {
    let snapshot = normal_snapshot(90);
    assert_eq!(snapshot.history.len(), 600);
    assert!(snapshot.latency.p50_ns > 0);
    assert!(!snapshot.latency_buckets.is_empty());
    check(&snapshot);
}

#[test]
fn zero_throughput_full_ring_lays_out() {
    // Producers blocked on a ring that stays 100 % full: no messages move, stalls climb.
    let mut telemetry = Telemetry::new("cuda-pinned", 600);
    telemetry.set_device("NVIDIA H100 80GB HBM3");
    for i in 0..=100u64 {
        telemetry.update(
            i as f64 * 0.1,
            Counters {
                stalls: i * 1_000,
                occupancy: 65_536,
                capacity: 65_536,
                ..Counters::default()
            },
        );
    }
    let snapshot = telemetry.snapshot();
    let latest = snapshot.latest();
    assert_eq!(latest.msgs_per_sec, 0.0);
    assert_eq!(latest.occupancy, 1.0);
    assert_eq!(Health::of(&snapshot), Health::Backpressure);
    check(&snapshot);
}

#[test]
fn dropping_snapshot_lays_out() {
    let mut snapshot = normal_snapshot(10);
    if let Some(last) = snapshot.history.last_mut() {
        last.drops_per_sec = 12_345.0;
        last.occupancy = 1.0;
    }
    assert_eq!(Health::of(&snapshot), Health::Dropping);
    check(&snapshot);
}

#[test]
fn huge_values_lay_out() {
    let huge = Sample {
        t_s: 1e9,
        msgs_per_sec: f64::MAX,
        bytes_per_sec: 1e300,
        occupancy: 1.0,
        stalls_per_sec: 1e18,
        drops_per_sec: 1e18,
        unrouted_per_sec: 1e18,
    };
    let snapshot = TelemetrySnapshot {
        backend: "x".repeat(500),
        device: "GPU ".repeat(100),
        history: (0..10_000)
            .map(|i| Sample {
                t_s: 1e9 - 60.0 + f64::from(i) * 0.006,
                ..huge
            })
            .collect(),
        latency: LatencySummary {
            count: u64::MAX,
            mean_ns: f64::MAX,
            p50_ns: u64::MAX / 2,
            p99_ns: u64::MAX - 1,
            p999_ns: u64::MAX,
            max_ns: u64::MAX,
        },
        latency_buckets: vec![
            LatencyBucket {
                lo_ns: 1,
                hi_ns: 2,
                count: u64::MAX,
            },
            LatencyBucket {
                lo_ns: u64::MAX - 1,
                hi_ns: u64::MAX,
                count: 1,
            },
        ],
        totals: Counters {
            messages: u64::MAX,
            bytes: u64::MAX,
            stalls: u64::MAX,
            drops: u64::MAX,
            corrupt: u64::MAX,
            lost: u64::MAX,
            unrouted: u64::MAX,
            malformed: u64::MAX,
            occupancy: u64::MAX,
            capacity: 1 << 31,
        },
    };
    assert_eq!(Health::of(&snapshot), Health::Dropping);
    check(&snapshot);
}

#[test]
fn non_finite_values_lay_out() {
    // Rates a buggy producer of snapshots could hand over: the panel zeroes them.
    let bad = Sample {
        t_s: f64::NAN,
        msgs_per_sec: f64::NAN,
        bytes_per_sec: f64::INFINITY,
        occupancy: f64::NAN,
        stalls_per_sec: f64::NEG_INFINITY,
        drops_per_sec: f64::NAN,
        unrouted_per_sec: f64::INFINITY,
    };
    let mut snapshot = normal_snapshot(5);
    snapshot.history.push(bad);
    snapshot.history.insert(0, bad);
    snapshot.latency.mean_ns = f64::NAN;
    assert_eq!(Health::of(&snapshot), Health::Idle);
    check(&snapshot);
}

#[test]
fn one_sample_and_backwards_time_lay_out() {
    let mut snapshot = TelemetrySnapshot::default();
    snapshot.history.push(Sample {
        t_s: 5.0,
        msgs_per_sec: 1.0,
        ..Sample::default()
    });
    check(&snapshot);
    // Time running backwards (a reset mid-history) must not break the plots.
    snapshot.history.push(Sample {
        t_s: 0.0,
        msgs_per_sec: 2.0,
        ..Sample::default()
    });
    check(&snapshot);
}

#[test]
fn two_panels_side_by_side() {
    let a = normal_snapshot(3);
    let b = TelemetrySnapshot::default();
    let ctx = Context::default();
    let output = ctx.run_ui(RawInput::default(), |ui| {
        ui.columns(2, |cols| {
            cols[0].add(PerdixPanel::new(&a).id_salt("a"));
            cols[1].add(PerdixPanel::new(&b).id_salt("b").histogram(false));
        });
    });
    assert!(!output.shapes.is_empty());
    output.drop_without_applying_deltas();
}

/// Every text the panel over `snapshot` drew in one frame.
fn texts(snapshot: &TelemetrySnapshot) -> Vec<String> {
    fn walk(shape: &egui::Shape, out: &mut Vec<String>) {
        match shape {
            egui::Shape::Text(text) => out.push(text.galley.text().to_owned()),
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| walk(s, out)),
            _ => {}
        }
    }
    let ctx = Context::default();
    let output = ctx.run_ui(RawInput::default(), |ui| {
        ui.add(PerdixPanel::new(snapshot));
    });
    let mut out = Vec::new();
    for clipped in &output.shapes {
        walk(&clipped.shape, &mut out);
    }
    output.drop_without_applying_deltas();
    out
}

#[test]
fn message_sizes_shown() {
    // 10 Hz samples of 1,000 messages: 4 KiB each, then one sample of 64-byte ones.
    let mut telemetry = Telemetry::new("host", 600);
    let mut totals = Counters::default();
    for i in 0..=10u64 {
        totals.messages += 1_000;
        totals.bytes += 1_000 * 4_096;
        telemetry.update(i as f64 * 0.1, totals);
    }
    let big = texts(&telemetry.snapshot());
    assert!(big.iter().any(|t| t == "message size"), "{big:?}");
    assert!(big.iter().any(|t| t == "mean size"), "{big:?}");
    // The latest sample's mean and the run's mean, both 4,096 B.
    assert_eq!(big.iter().filter(|t| *t == "4.10 kB").count(), 2, "{big:?}");
    assert!(big.iter().any(|t| t == "40.96 MB/s"), "bandwidth: {big:?}");

    totals.messages += 1_000;
    totals.bytes += 1_000 * 64;
    telemetry.update(1.1, totals);
    let mixed = texts(&telemetry.snapshot());
    assert!(mixed.iter().any(|t| t == "64 B"), "latest: {mixed:?}");
    // (11,000 * 4,096 + 1,000 * 64) / 12,000 messages.
    assert!(mixed.iter().any(|t| t == "3.76 kB"), "run: {mixed:?}");

    // No messages: no size.
    let empty = texts(&TelemetrySnapshot::default());
    assert!(empty.iter().filter(|t| *t == "-").count() >= 2, "{empty:?}");
}

/// The overlay plugin in a headless app (no window, no renderer): it registers, F1 flips its
/// visibility, and frames run with the panel's system scheduled.
#[cfg(feature = "overlay")]
#[test]
fn overlay_plugin_toggles_headless() {
    use bevy_app::App;
    use bevy_ecs::entity::Entity;
    use bevy_input::keyboard::{Key, KeyCode, KeyboardInput};
    use bevy_input::{ButtonInput, ButtonState};
    use perdix_transport::bevy::PerdixPlugin;
    use perdix_transport::dashboard::{PerdixOverlay, PerdixOverlayPlugin};

    use bevy_window_app::asset::{AssetApp, AssetPlugin};
    use bevy_window_app::image::Image;
    use bevy_window_app::shader::Shader;
    use bevy_window_app::window::{ExitCondition, WindowPlugin};

    let mut app = App::new();
    app.add_plugins((
        bevy_app::TaskPoolPlugin::default(),
        bevy_time::TimePlugin,
        bevy_input::InputPlugin,
        AssetPlugin::default(),
        // Window messages bevy_egui reads; no window is opened.
        WindowPlugin {
            primary_window: None,
            exit_condition: ExitCondition::DontExit,
            ..WindowPlugin::default()
        },
    ));
    // bevy_egui loads its shader at `finish` and keeps its font atlas as an `Image`; no renderer
    // is added, so nothing draws.
    app.init_asset::<Shader>().init_asset::<Image>();
    app.add_plugins((
        PerdixPlugin::default().capacity(64),
        PerdixOverlayPlugin::default().toggle_key(KeyCode::F2),
    ));
    app.finish();
    app.cleanup();
    app.update();
    assert!(app.world().resource::<PerdixOverlay>().visible);
    let key = |state| KeyboardInput {
        key_code: KeyCode::F2,
        logical_key: Key::F2,
        state,
        text: None,
        repeat: false,
        window: Entity::PLACEHOLDER,
    };
    app.world_mut().write_message(key(ButtonState::Pressed));
    app.update();
    assert!(app
        .world()
        .resource::<ButtonInput<KeyCode>>()
        .pressed(KeyCode::F2));
    assert!(!app.world().resource::<PerdixOverlay>().visible);
    app.update();
    assert!(
        !app.world().resource::<PerdixOverlay>().visible,
        "a held key toggled twice"
    );
    app.world_mut().write_message(key(ButtonState::Released));
    app.update();
    app.world_mut().write_message(key(ButtonState::Pressed));
    app.update();
    assert!(app.world().resource::<PerdixOverlay>().visible);
}
