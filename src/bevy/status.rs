//! The producers the plugin started, as they run ([`ProducerStatus`]): where each one runs (a
//! GPU producer that fell back to its CPU fallback says so) and the launches it skipped; the
//! stall rule ([`STALL_FRAMES`] skipped launches in a row over at least [`STALL_TIME`]: one
//! [`PerdixEvent::LaunchesSkipped`] per stall); and what the app's backend is once they run
//! (`PerdixRings::producer_backend`).
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use super::backend::ProducerBackend;
use super::event::PerdixEvent;

/// Launches a producer skips in a row (its previous launch still running) before the stall
/// is reported as a [`PerdixEvent::LaunchesSkipped`], if they also span [`STALL_TIME`]: 120,
/// two seconds at 60 frames a second.
///
/// Every skipped launch is counted whatever the threshold.
pub const STALL_FRAMES: u64 = 120;

/// The least time a run of [`STALL_FRAMES`] skipped launches must span (from the first skip)
/// to be reported: one second. Frames alone would call a 120 ms kernel stalled in an app at
/// 1,000 frames a second; time alone would report a stall that skipped two launches in an app
/// at 1 frame a second. Both must hold.
pub const STALL_TIME: Duration = Duration::from_secs(1);

/// A producer the plugin started from a registered
/// [`GpuProducerSpec`](super::GpuProducerSpec)
/// ([`PerdixRings::producers`](super::PerdixRings::producers)).
///
/// # Examples
///
/// Without a GPU (or without the `cuda` feature), a GPU producer with a CPU fallback runs on
/// the CPU, and says why:
///
/// ```
/// use bevy_app::prelude::*;
/// use perdix_transport::bevy::{GpuProducerSpec, PerdixAppExt, PerdixPlugin, PerdixRings};
///
/// // SAFETY: the kernel takes only the producer pointer (`A = ()`) and touches no memory.
/// let spec = unsafe {
///     GpuProducerSpec::<()>::new(
///         "ticks",
///         "#include \"perdix.cuh\"\nextern \"C\" __global__ void tick(const perdix_producer* p) {}",
///         "tick",
///     )
/// }
/// .cpu_fallback(|(), emit| {
///     let _ = emit.emit_bytes(1, b"tick");
/// });
/// let mut app = App::new();
/// app.add_plugins(PerdixPlugin::default()).add_gpu_producer(spec);
/// app.update();
/// let rings = app.world().resource::<PerdixRings>();
/// let status = &rings.producers()[0];
/// assert_eq!(status.name, "ticks");
/// // On the GPU when there is one; else on the CPU, with the same reason as the app's.
/// assert_eq!(status.backend.is_gpu(), rings.producer_backend().is_gpu());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducerStatus {
    /// The producer's name.
    pub name: String,
    /// Where it runs: [`ProducerBackend::Gpu`], or [`ProducerBackend::Cpu`] (its CPU
    /// fallback) with the reason: why the plugin's producers run on the CPU, or the error its
    /// GPU start failed with (also reported as [`PerdixEvent::ProducerFellBack`]).
    pub backend: ProducerBackend,
    /// Launches it skipped because its previous launch was still running.
    pub launches_skipped: u64,
}

/// The started producers (in the order they started, the launch system's order), with each
/// one's current run of skipped launches.
#[derive(Debug, Default)]
pub(crate) struct Statuses {
    list: Vec<ProducerStatus>,
    /// Per producer: its current run of skipped launches.
    streaks: Vec<Streak>,
}

/// A run of skipped launches: how many, since when, whether reported.
#[derive(Debug, Default, Clone, Copy)]
struct Streak {
    skipped: u64,
    /// When its first launch was skipped (`None`: no run now).
    since: Option<Instant>,
    reported: bool,
}

impl Statuses {
    /// Records a started producer; returns its index.
    pub(crate) fn started(&mut self, name: &str, backend: ProducerBackend) -> usize {
        self.list.push(ProducerStatus {
            name: name.to_owned(),
            backend,
            launches_skipped: 0,
        });
        self.streaks.push(Streak::default());
        self.list.len() - 1
    }

    /// The started producers.
    pub(crate) fn list(&self) -> &[ProducerStatus] {
        &self.list
    }

    /// Launches skipped so far, over all producers.
    pub(crate) fn launches_skipped(&self) -> u64 {
        self.list.iter().map(|status| status.launches_skipped).sum()
    }

    /// Producer `idx` has skipped `skipped` launches in all after this frame's launch, at
    /// `now`: a skip lengthens its stall, a launch that ran (no new skip) ends it. The stall
    /// as an event once it is [`STALL_FRAMES`] long and spans [`STALL_TIME`] (once per
    /// stall).
    pub(crate) fn launched(
        &mut self,
        idx: usize,
        skipped: u64,
        now: Instant,
    ) -> Option<PerdixEvent> {
        let (status, streak) = self.list.get_mut(idx).zip(self.streaks.get_mut(idx))?;
        let new = skipped.saturating_sub(status.launches_skipped);
        status.launches_skipped = status.launches_skipped.max(skipped);
        if new == 0 {
            *streak = Streak::default();
            return None;
        }
        streak.skipped = streak.skipped.saturating_add(new);
        let since = *streak.since.get_or_insert(now);
        let stalled = streak.skipped >= STALL_FRAMES && now.duration_since(since) >= STALL_TIME;
        if !stalled || streak.reported {
            return None;
        }
        streak.reported = true;
        Some(PerdixEvent::LaunchesSkipped {
            name: status.name.clone(),
            frames: streak.skipped,
        })
    }

    /// Where the app's producers run, given the backend the plugin chose (`decided`): the
    /// choice while every started producer runs on it; [`ProducerBackend::Cpu`] when the
    /// choice was the GPU and every producer fell back; [`ProducerBackend::Mixed`] when some
    /// did.
    pub(crate) fn summary(&self, decided: &ProducerBackend) -> ProducerBackend {
        let ProducerBackend::Gpu { device } = decided else {
            return decided.clone();
        };
        let cpu: Vec<&ProducerStatus> = self.list.iter().filter(|s| !s.backend.is_gpu()).collect();
        let Some(first) = cpu.first() else {
            return decided.clone();
        };
        if cpu.len() == self.list.len() {
            let reason = match &first.backend {
                ProducerBackend::Cpu { reason } => reason.as_str(),
                _ => "",
            };
            return ProducerBackend::Cpu {
                reason: format!(
                    "every GPU producer fell back to its CPU fallback ({}: {reason})",
                    first.name
                ),
            };
        }
        ProducerBackend::Mixed {
            device: device.clone(),
            cpu: cpu.iter().map(|status| status.name.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gpu() -> ProducerBackend {
        ProducerBackend::Gpu {
            device: "H100 (sm_90)".into(),
        }
    }

    fn fell_back() -> ProducerBackend {
        ProducerBackend::Cpu {
            reason: "compile error".into(),
        }
    }

    /// Frame `k`'s time in an app at 100 frames a second.
    fn frame(start: Instant, k: u64) -> Instant {
        start + Duration::from_millis(10 * k)
    }

    #[test]
    fn a_stall_is_reported_once_when_it_is_long_enough_in_frames_and_time() {
        let start = Instant::now();
        let mut statuses = Statuses::default();
        let idx = statuses.started("hang", gpu());
        assert_eq!(
            statuses.launched(idx, 0, start),
            None,
            "the first launch ran"
        );
        // 100 frames a second: STALL_FRAMES (1.2 s) spans STALL_TIME.
        let stall = PerdixEvent::LaunchesSkipped {
            name: "hang".into(),
            frames: STALL_FRAMES,
        };
        let mut got = Vec::new();
        for k in 1..=3 * STALL_FRAMES {
            got.extend(statuses.launched(idx, k, frame(start, k)).map(|e| (k, e)));
        }
        assert_eq!(got, [(STALL_FRAMES, stall)], "once per stall");
        assert_eq!(statuses.launches_skipped(), 3 * STALL_FRAMES);
        // A launch that runs ends the stall; the next stall is reported again.
        let total = 3 * STALL_FRAMES;
        let t = frame(start, total);
        assert_eq!(statuses.launched(idx, total, t), None);
        let again =
            (1..=STALL_FRAMES).filter_map(|k| statuses.launched(idx, total + k, frame(t, k)));
        assert_eq!(again.count(), 1);
        assert_eq!(statuses.list()[0].launches_skipped, total + STALL_FRAMES);
    }

    #[test]
    fn a_short_stall_at_a_high_frame_rate_is_counted_not_reported() {
        // 10,000 frames a second: STALL_FRAMES is 12 ms, a kernel's normal length.
        let start = Instant::now();
        let mut statuses = Statuses::default();
        let idx = statuses.started("busy", gpu());
        let at = |k: u64| start + Duration::from_micros(100 * k);
        let mut skipped = 0;
        for _ in 0..10 {
            for _ in 0..5 * STALL_FRAMES {
                skipped += 1;
                assert_eq!(statuses.launched(idx, skipped, at(skipped)), None);
            }
            assert_eq!(
                statuses.launched(idx, skipped, at(skipped)),
                None,
                "a launch ran"
            );
        }
        assert_eq!(statuses.launches_skipped(), 50 * STALL_FRAMES);
        // Until it spans a second.
        let long =
            (1..=10_001).filter_map(|k| statuses.launched(idx, skipped + k, at(skipped + k)));
        assert_eq!(long.count(), 1);
        assert_eq!(statuses.launched(7, 1, start), None, "no such producer");
    }

    #[test]
    fn a_long_stall_of_few_frames_is_not_reported() {
        // One frame a second: 60 skipped launches in a minute are not STALL_FRAMES.
        let start = Instant::now();
        let mut statuses = Statuses::default();
        let idx = statuses.started("slow", gpu());
        for k in 1..STALL_FRAMES {
            let t = start + Duration::from_secs(k);
            assert_eq!(statuses.launched(idx, k, t), None);
        }
    }

    #[test]
    fn the_app_backend_says_where_producers_run() {
        let mut statuses = Statuses::default();
        assert_eq!(statuses.summary(&gpu()), gpu(), "before any producer");
        statuses.started("a", gpu());
        assert_eq!(statuses.summary(&gpu()), gpu());
        statuses.started("b", fell_back());
        assert_eq!(
            statuses.summary(&gpu()),
            ProducerBackend::Mixed {
                device: "H100 (sm_90)".into(),
                cpu: vec!["b".into()]
            }
        );
        let mut all = Statuses::default();
        all.started("b", fell_back());
        let summary = all.summary(&gpu());
        assert_eq!(summary.name(), "cpu");
        assert_eq!(
            summary.to_string(),
            "cpu (every GPU producer fell back to its CPU fallback (b: compile error))"
        );
        // Producers on the CPU because the plugin chose it: the choice, as it was.
        let cpu = ProducerBackend::Cpu {
            reason: "no CUDA device".into(),
        };
        assert_eq!(all.summary(&cpu), cpu);
    }
}
