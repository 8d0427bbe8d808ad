//! [`RemotePlugin`], [`RemoteDiagnostics`] and [`RemoteAppExt::add_perdix_remote`]: remote
//! streams in a Bevy app, with `perdix/remote/*` diagnostics.
#![forbid(unsafe_code)]

use std::time::Instant;

use bevy_app::{App, Last, Plugin, PreUpdate};
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::prelude::*;

use super::source::RemoteSource;
use super::{RemoteConfig, RemoteError};
use crate::bevy::{PerdixRings, PerdixSystems};

/// The paths of the remote stream's diagnostics.
#[derive(Debug, Clone, Copy, Default)]
pub struct RemoteDiagnostics;

impl RemoteDiagnostics {
    /// Messages received per second (over ~100 ms windows).
    pub const MSGS_PER_SEC: DiagnosticPath =
        DiagnosticPath::const_new("perdix/remote/msgs_per_sec");
    /// Messages lost on the way, in total (from the streams' message indexes).
    pub const LOST_MESSAGES: DiagnosticPath =
        DiagnosticPath::const_new("perdix/remote/lost_messages");
    /// Batches lost on the way, in total (from the streams' batch numbers).
    pub const LOST_BATCHES: DiagnosticPath =
        DiagnosticPath::const_new("perdix/remote/lost_batches");
    /// Messages received but not delivered ([`RemoteSource::dropped`]), in total.
    pub const DROPPED: DiagnosticPath = DiagnosticPath::const_new("perdix/remote/dropped");
    /// Mean publish-to-receive latency over the window, µs (the publisher's clock against
    /// this host's: meaningful across hosts only with synchronized clocks).
    pub const LATENCY_US: DiagnosticPath = DiagnosticPath::const_new("perdix/remote/latency_us");
}

/// Registers the remote source's systems and diagnostics (`build()` only registers; the
/// source itself comes from [`RemoteAppExt::add_perdix_remote`]). Needs
/// [`PerdixPlugin`](crate::bevy::PerdixPlugin).
#[derive(Debug, Clone, Copy, Default)]
pub struct RemotePlugin;

impl Plugin for RemotePlugin {
    fn build(&self, app: &mut App) {
        for (path, suffix, smoothed) in [
            (RemoteDiagnostics::MSGS_PER_SEC, "msg/s", true),
            (RemoteDiagnostics::LOST_MESSAGES, "", false),
            (RemoteDiagnostics::LOST_BATCHES, "", false),
            (RemoteDiagnostics::DROPPED, "", false),
            (RemoteDiagnostics::LATENCY_US, "µs", true),
        ] {
            let diagnostic = Diagnostic::new(path).with_suffix(suffix);
            // Totals: an average over frames would be nonsensical.
            let diagnostic = if smoothed {
                diagnostic
            } else {
                diagnostic.with_smoothing_factor(0.0)
            };
            app.register_diagnostic(diagnostic);
        }
        app.add_systems(
            PreUpdate,
            attach_streams
                .before(PerdixSystems::Launch)
                .run_if(resource_exists::<RemoteSource>),
        )
        .add_systems(Last, measure.run_if(resource_exists::<RemoteSource>));
    }
}

/// Gives the source's thread the rings it asked for.
fn attach_streams(mut source: ResMut<RemoteSource>, mut rings: ResMut<PerdixRings>) {
    source.attach(&mut rings);
}

/// The previous sample: when, messages, latency sum, latency samples.
#[derive(Default)]
struct Baseline(Option<(Instant, u64, u64, u64)>);

/// Every ~100 ms: the `perdix/remote/*` diagnostics, and each remote ring's `lost` counter in
/// [`PerdixRings::counters`] (the messages its streams lost on the way).
fn measure(
    mut diagnostics: Diagnostics,
    source: Res<RemoteSource>,
    mut rings: ResMut<PerdixRings>,
    mut last: Local<Baseline>,
) {
    let now = Instant::now();
    if last
        .0
        .is_some_and(|(t, ..)| now.duration_since(t).as_millis() < 100)
    {
        return;
    }
    let counters = source.counters();
    for (ring, lost) in source.lost_per_ring(&counters) {
        rings.set_lost(ring, lost);
    }
    let total = counters.total();
    if let Some((t, messages, sum, samples)) = last.0 {
        let dt = now.duration_since(t).as_secs_f64();
        let dm = total.messages.saturating_sub(messages);
        diagnostics.add_measurement(&RemoteDiagnostics::MSGS_PER_SEC, || dm as f64 / dt);
        let ds = total.latency_samples.saturating_sub(samples);
        if ds > 0 {
            let dl = total.latency_sum_ns.saturating_sub(sum);
            diagnostics.add_measurement(&RemoteDiagnostics::LATENCY_US, || {
                dl as f64 / ds as f64 / 1e3
            });
        }
    }
    diagnostics.add_measurement(&RemoteDiagnostics::LOST_MESSAGES, || {
        total.lost_messages as f64
    });
    diagnostics.add_measurement(&RemoteDiagnostics::LOST_BATCHES, || {
        total.lost_batches as f64
    });
    let dropped = source.dropped();
    diagnostics.add_measurement(&RemoteDiagnostics::DROPPED, || dropped as f64);
    last.0 = Some((
        now,
        total.messages,
        total.latency_sum_ns,
        total.latency_samples,
    ));
}

/// Remote streams in an [`App`].
pub trait RemoteAppExt {
    /// Starts a [`RemoteSource`] with `config` (a zenoh session, subscribed) and adds
    /// [`RemotePlugin`]: remote messages arrive in the same `Messages<T>`, envelopes and
    /// batches as local ones, routed by kind. Add [`PerdixPlugin`](crate::bevy::PerdixPlugin)
    /// first.
    ///
    /// # Errors
    ///
    /// As [`RemoteSource::start`].
    fn add_perdix_remote(&mut self, config: &RemoteConfig) -> Result<&mut Self, RemoteError>;
}

impl RemoteAppExt for App {
    fn add_perdix_remote(&mut self, config: &RemoteConfig) -> Result<&mut Self, RemoteError> {
        let source = RemoteSource::start(config)?;
        self.insert_resource(source);
        if !self.is_plugin_added::<RemotePlugin>() {
            self.add_plugins(RemotePlugin);
        }
        Ok(self)
    }
}
