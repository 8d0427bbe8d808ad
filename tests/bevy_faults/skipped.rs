//! Item 9 of issue 20, on the CPU: launches a producer skips are not invisible. A CPU
//! fallback whose thread is stuck skips every launch once `FALLBACK_QUEUE` launches wait; the
//! skips are counted (`PerdixRings::launches_skipped`, `ProducerStatus::launches_skipped`,
//! `perdix/launches_skipped`) and a run of `STALL_FRAMES` of them over `STALL_TIME` is one
//! `PerdixEvent::LaunchesSkipped` per stall.
//!
//! Before: a `warn!` on the first skip ever, and nothing else.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_diagnostic::DiagnosticsStore;
use perdix_transport::bevy::{
    GpuProducerSpec, PerdixAppExt, PerdixDiagnostics, PerdixEvent, PerdixPlugin, PerdixRings,
    STALL_FRAMES, STALL_TIME,
};

use super::{all_events, app};

/// Lets the fallback run while open; it waits while closed.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    changed: Condvar,
}

impl Gate {
    fn set(&self, open: bool) {
        *self.open.lock().unwrap_or_else(PoisonError::into_inner) = open;
        self.changed.notify_all();
    }

    fn pass(&self) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        while !*open {
            open = self
                .changed
                .wait(open)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

fn skipped(app: &App) -> u64 {
    app.world().resource::<PerdixRings>().launches_skipped()
}

fn skipped_diagnostic(app: &App) -> Option<f64> {
    app.world()
        .resource::<DiagnosticsStore>()
        .get(&PerdixDiagnostics::LAUNCHES_SKIPPED)
        .and_then(|d| d.value())
}

/// Whether `events` are `count` stalls of `stuck`, each `STALL_FRAMES` long or longer.
fn stalls(events: &[PerdixEvent], count: usize) -> bool {
    events.len() == count
        && events.iter().all(|event| {
            matches!(event, PerdixEvent::LaunchesSkipped { name, frames }
                if name == "stuck" && *frames >= STALL_FRAMES)
        })
}

/// Runs frames until `done` holds (or fails after 10 s).
fn frames_until(app: &mut App, what: &str, mut done: impl FnMut(&App) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done(app) {
        assert!(Instant::now() < deadline, "{what}: not within 10 s");
        app.update();
    }
}

#[test]
fn a_stuck_cpu_fallback_s_skipped_launches_are_counted_and_its_stall_reported() {
    const TICK_CU: &str = "extern \"C\" __global__ void tick(const perdix_producer* p) {}";
    let gate = Arc::new(Gate::default());
    let fallback_gate = Arc::clone(&gate);
    // SAFETY: `tick` takes only the producer pointer (`A = ()`) and touches no memory.
    let spec = unsafe { GpuProducerSpec::<()>::new("stuck", TICK_CU, "tick") }.cpu_fallback(
        move |(), emit| {
            fallback_gate.pass();
            let _ = emit.emit_bytes(0, b"ran");
        },
    );
    // 16-slot rings: no GPU ring can have them, so the fallback runs on any machine.
    let mut app = app(PerdixPlugin::default().capacity(16));
    app.add_gpu_producer(spec);
    // The thread takes the first launch and waits; two more queue; every launch after that
    // is skipped.
    let stuck = Instant::now();
    frames_until(&mut app, "the first stall", |app| {
        !all_events(app).is_empty()
    });
    assert!(stuck.elapsed() >= STALL_TIME);
    assert!(stalls(&all_events(&app), 1), "{:?}", all_events(&app));
    for _ in 0..STALL_FRAMES {
        app.update();
    }
    assert!(stalls(&all_events(&app), 1), "once per stall");
    assert!(skipped(&app) >= 2 * STALL_FRAMES);
    let rings = app.world().resource::<PerdixRings>();
    assert_eq!((rings.errors(), rings.warnings()), (0, 1));
    assert_eq!(
        rings.producers()[0].launches_skipped,
        rings.launches_skipped()
    );
    assert_eq!(skipped_diagnostic(&app), Some(skipped(&app) as f64));
    // Open: the thread catches up and launches run again; the skips stop.
    gate.set(true);
    let mut last = skipped(&app);
    frames_until(&mut app, "launches running again", |app| {
        let now = skipped(app);
        let ran = now == last;
        last = now;
        ran
    });
    let after = skipped(&app);
    for _ in 0..10 {
        app.update();
    }
    assert!(stalls(&all_events(&app), 1), "one event per stall");
    // Stuck again: a new stall, reported again.
    gate.set(false);
    frames_until(&mut app, "the second stall", |app| {
        all_events(app).len() == 2
    });
    assert!(stalls(&all_events(&app), 2), "{:?}", all_events(&app));
    assert!(skipped(&app) >= after + STALL_FRAMES);
    gate.set(true);
}
