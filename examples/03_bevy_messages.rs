//! 03 — typed messages into Bevy, and the plugin's diagnostics read by a system.
//!
//! [`PerdixPlugin`] drains rings into Bevy messages each frame. Here a CPU thread owns the
//! producer half of one of the plugin's rings and sends `Reading`s; `add_perdix_message` routes
//! their kind into `Messages<Reading>`, which an ordinary system reads with a `MessageReader`.
//! Every 100 readings it also sends a histogram of them in 16 to 128 `u32` bins (up to 512
//! bytes: a multi-slot message); `add_perdix_slice` delivers each as a `PerdixSlice<u32>`, its
//! bins a `Vec<u32>`. A last system prints what arrived with the plugin's `perdix/*`
//! diagnostics; after two seconds the app exits, its rings close, and the sending thread sees
//! `Disconnected` and ends. `cargo run --example 03_bevy_messages`
//!
//! A GPU kernel feeds the plugin the same way (`add_gpu_producer`, see the `simulation` example).
//! Next: `04_dashboard` draws these figures live.

use std::thread;
use std::time::{Duration, Instant};

use bevy_app::prelude::*;
use bevy_app::{ScheduleRunnerPlugin, TaskPoolPlugin};
use bevy_diagnostic::{DiagnosticsPlugin, DiagnosticsStore};
use bevy_ecs::prelude::*;
use bytemuck::{Pod, Zeroable};
use perdix_transport::bevy::{PerdixAppExt, PerdixDiagnostics, PerdixPlugin};
use perdix_transport::bevy::{PerdixRings, PerdixSlice};

/// One sensor reading, as it travels in a slot: `#[repr(C)]` and `Pod`, so its bytes are the
/// message. A `Message` too, so Bevy can deliver it.
#[derive(Message, Clone, Copy, Debug, Pod, Zeroable)]
#[repr(C)]
struct Reading {
    sensor: u32,
    value: f32,
}

/// The message kinds of `Reading`s and of histograms (a slice of `u32` bins).
const KIND_READING: u32 = 1;
const KIND_HISTOGRAM: u32 = 2;
const RUN_FOR: Duration = Duration::from_secs(2); // how long the app runs

/// What the readers have seen.
#[derive(Resource, Debug, Default)]
struct Seen {
    readings: u64,
    sum: f64,
    histograms: u64,
    bins: u64,
}

fn main() -> AppExit {
    App::new()
        .add_plugins((
            TaskPoolPlugin::default(),
            ScheduleRunnerPlugin::run_loop(Duration::from_millis(5)),
            DiagnosticsPlugin,
            PerdixPlugin::default().capacity(4096),
        ))
        .add_perdix_message::<Reading>(KIND_READING)
        .add_perdix_slice::<u32>(KIND_HISTOGRAM)
        .init_resource::<Seen>()
        .add_systems(Startup, start_sensor)
        // The plugin drains in `PreUpdate`: `Update` systems see this frame's messages.
        .add_systems(Update, ((read_readings, read_histograms), report).chain())
        .run()
}

/// A ring for a sensor thread: about 100 readings a millisecond until the app is gone.
fn start_sensor(mut rings: ResMut<PerdixRings>) -> Result {
    let mut producer = rings.add_producer("sensor")?;
    thread::Builder::new()
        .name("sensor".into())
        .spawn(move || {
            for n in 0u32.. {
                let reading = Reading {
                    sensor: n % 4,
                    value: (n % 1000) as f32,
                };
                // Waits while the ring is full; `Err(Disconnected)` once the app has exited.
                let mut sent = producer.produce_kind(KIND_READING, bytemuck::bytes_of(&reading));
                if n % 100 == 99 {
                    // The last 100 values (0..1000) in 16 to 128 bins.
                    let count = 16 + (n / 100 % 113) as usize;
                    let mut bins = vec![0u32; count];
                    for v in n - 99..=n {
                        bins[(v % 1000) as usize * count / 1000] += 1;
                    }
                    let histogram = bytemuck::cast_slice(&bins);
                    sent = sent.and(producer.produce_kind(KIND_HISTOGRAM, histogram));
                    thread::sleep(Duration::from_millis(1));
                }
                if sent.is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}

/// Reads this frame's readings, typed.
fn read_readings(mut readings: MessageReader<Reading>, mut seen: ResMut<Seen>) {
    for reading in readings.read() {
        seen.readings += 1;
        seen.sum += f64::from(reading.value);
    }
}

/// Reads this frame's histograms: each a `Vec<u32>` of however many bins it was sent with.
fn read_histograms(mut histograms: MessageReader<PerdixSlice<u32>>, mut seen: ResMut<Seen>) {
    for histogram in histograms.read() {
        seen.histograms += 1;
        seen.bins += histogram.values.len() as u64;
    }
}

/// Twice a second: what arrived, and the plugin's view of it; then exits.
fn report(
    store: Res<DiagnosticsStore>,
    seen: Res<Seen>,
    mut last: Local<Option<(Instant, Instant)>>,
    mut exit: MessageWriter<AppExit>,
) {
    let now = Instant::now();
    let (start, printed) = last.get_or_insert((now, now));
    if now - *printed < Duration::from_millis(500) {
        return;
    }
    *printed = now;
    // Diagnostics are `Option`: none before the plugin's first ~100 ms sample.
    let value = |path| store.get(path).and_then(|d| d.smoothed()).unwrap_or(0.0);
    println!(
        "[{:.1} s] {} readings (mean {:.1}), {} histograms (mean {:.0} bins) | perdix/msgs_per_sec {:.0} | perdix/message_bytes {:.0} | perdix/occupancy {:.1}% | perdix/errors {}",
        (now - *start).as_secs_f64(),
        seen.readings,
        seen.sum / seen.readings.max(1) as f64,
        seen.histograms,
        seen.bins as f64 / seen.histograms.max(1) as f64,
        value(&PerdixDiagnostics::MSGS_PER_SEC),
        value(&PerdixDiagnostics::MESSAGE_BYTES),
        value(&PerdixDiagnostics::OCCUPANCY),
        value(&PerdixDiagnostics::ERRORS),
    );
    if now - *start >= RUN_FOR {
        exit.write(if seen.readings > 0 {
            AppExit::Success
        } else {
            AppExit::from_code(1)
        });
    }
}
