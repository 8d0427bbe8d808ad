//! `GpuCounters`: the exact device-side counters the kernels keep.

/// Exact device-side counters of a producer (summed over its rings) or of one ring.
///
/// Kept by the kernels with atomics in device memory and read with a copy that does not wait
/// for them, so they can be read while kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuCounters {
    /// Messages published into the ring(s).
    pub emitted: u64,
    /// Messages drops because the ring was full (`DropNewest`, `perdix_try_emit`).
    pub drops: u64,
    /// Times a warp found its ring full and waited (`Block`), once per wait.
    pub stalls: u64,
    /// Positions (slots) published, pad records included: what the ring's `produced` counts.
    /// Equal to `emitted` while every message fits one slot.
    pub positions: u64,
}

impl GpuCounters {
    /// Messages the kernels tried to send: `emitted + drops` (exact).
    #[must_use]
    pub fn attempted(&self) -> u64 {
        self.emitted.saturating_add(self.drops)
    }

    /// The sum of several producers' (or devices') counters.
    #[must_use]
    pub fn total(all: &[Self]) -> Self {
        let mut total = Self::default();
        for counters in all {
            total.add(counters);
        }
        total
    }

    /// Adds `other` (saturating: the counters are words kernels wrote, not trusted numbers).
    pub(crate) fn add(&mut self, other: &Self) {
        self.emitted = self.emitted.saturating_add(other.emitted);
        self.drops = self.drops.saturating_add(other.drops);
        self.stalls = self.stalls.saturating_add(other.stalls);
        self.positions = self.positions.saturating_add(other.positions);
    }
}

#[cfg(test)]
mod tests {
    use super::GpuCounters;

    /// The counters are words a kernel wrote: summing them must not overflow (a debug build
    /// would panic), whatever they hold.
    #[test]
    fn sums_of_device_words_saturate() {
        let huge = GpuCounters {
            emitted: u64::MAX,
            drops: u64::MAX - 1,
            stalls: u64::MAX,
            positions: u64::MAX,
        };
        assert_eq!(huge.attempted(), u64::MAX);
        let total = GpuCounters::total(&[huge, huge]);
        assert_eq!(
            total,
            GpuCounters {
                drops: u64::MAX,
                ..huge
            }
        );
    }
}
