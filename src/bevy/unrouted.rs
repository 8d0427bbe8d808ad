//! Kinds no route takes: the first message of each such kind on each ring is reported once
//! ([`PerdixEvent::Unrouted`](super::PerdixEvent::Unrouted) and a `warn!` line), then only
//! counted (`Counters::unrouted`, `perdix/unrouted_per_sec`).
//!
//! The routing path does not change: a stage counts its unrouted messages as before, and
//! only a stage that staged some is looked at again, after the frame's drain and before its
//! raw messages are written ([`report`]): its raw messages' kinds against the route table,
//! each run of one kind once. A kind is a `u32` the producer wrote (a kernel may send any of
//! 2^32), so what is kept is bounded: a ring remembers at most [`UNROUTED_KINDS_PER_RING`]
//! kinds ([`SeenKinds`]), and once it has, its stages are not looked at again.
#![forbid(unsafe_code)]

use super::event::PerdixEvent;
use super::header::ring_index;
use super::rings::PerdixRings;
use super::stage::{RouteTable, Stage};

/// The unrouted kinds a ring reports one by one (64: 256 bytes a ring); later kinds on that
/// ring are only counted (the 64th's `warn!` line says so).
pub const UNROUTED_KINDS_PER_RING: usize = 64;

/// Per ring, the unrouted kinds already reported.
#[derive(Debug, Default)]
pub(crate) struct SeenKinds {
    /// Indexed by ring: its reported kinds, at most [`UNROUTED_KINDS_PER_RING`].
    rings: Vec<Vec<u32>>,
}

impl SeenKinds {
    /// Whether ring `ring` reported all the kinds it reports (nothing more to look for).
    fn is_full(&self, ring: usize) -> bool {
        self.rings
            .get(ring)
            .is_some_and(|seen| seen.len() >= UNROUTED_KINDS_PER_RING)
    }

    /// Whether `kind` is new on ring `ring` (to be reported): `false` once reported, and for
    /// every kind once the ring reported [`UNROUTED_KINDS_PER_RING`] (logged with the last).
    fn first(&mut self, ring: usize, name: &str, kind: u32) -> bool {
        if self.rings.len() <= ring {
            self.rings.resize_with(ring + 1, Vec::new);
        }
        let seen = &mut self.rings[ring];
        if seen.len() >= UNROUTED_KINDS_PER_RING || seen.contains(&kind) {
            return false;
        }
        seen.push(kind);
        if seen.len() == UNROUTED_KINDS_PER_RING {
            tracing::warn!(
                ring,
                name,
                "perdix: {UNROUTED_KINDS_PER_RING} unrouted kinds reported on this ring; \
                 later kinds are only counted"
            );
        }
        true
    }
}

/// Reports the first message of each unrouted kind on each ring among `stages` (each with
/// its ring's index), by `table`, as a [`PerdixEvent::Unrouted`]. Call it before the stages'
/// raw messages are written (they are read here, not taken).
pub(crate) fn report(
    rings: &mut PerdixRings,
    seen: &mut SeenKinds,
    table: &RouteTable,
    stages: &[(usize, &mut Stage)],
) {
    for (ring, stage) in stages {
        let ring = *ring;
        if !stage.has_unrouted() || seen.is_full(ring) {
            continue;
        }
        let mut last = None;
        for msg in &stage.raw {
            let kind = msg.kind();
            if last == Some(kind) {
                continue; // runs of one kind: looked at once
            }
            last = Some(kind);
            if table.is_unrouted(kind)
                && seen.first(
                    ring,
                    rings.ring_name(ring_index(ring)).unwrap_or_default(),
                    kind,
                )
            {
                let name = rings
                    .ring_name(ring_index(ring))
                    .unwrap_or_default()
                    .to_owned();
                rings.faults_mut().report(PerdixEvent::Unrouted {
                    ring: ring_index(ring),
                    name,
                    kind,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ring_reports_a_kind_once_and_remembers_a_bounded_set() {
        let mut seen = SeenKinds::default();
        assert!(seen.first(3, "r", 7));
        assert!(!seen.first(3, "r", 7), "reported once");
        assert!(seen.first(0, "q", 7), "per ring");
        let more =
            (100..100 + 2 * UNROUTED_KINDS_PER_RING as u32).filter(|&k| seen.first(3, "r", k));
        assert_eq!(more.count(), UNROUTED_KINDS_PER_RING - 1);
        assert!(seen.is_full(3));
        assert!(!seen.first(3, "r", u32::MAX), "the ring's set is full");
        assert_eq!(seen.rings[3].len(), UNROUTED_KINDS_PER_RING);
        assert!(!seen.is_full(0));
    }
}
