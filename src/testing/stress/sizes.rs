//! [`Sizes`]: the message sizes of a stress run, one size or a deterministic mix.

use super::{tag, valid_size, MIN_SIZE};

/// The message sizes of a stress run: every message `min` bytes, or (mixed) each message's size
/// a deterministic function of its producer and sequence in `min..=max` (multiples of 8), so the
/// verifier knows every message's expected length. `kernels/stress.cu` (`stress_size`) computes
/// the same function.
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::stress::Sizes;
///
/// assert_eq!(Sizes::fixed(224).size_of(3, 9), 224);
/// let mixed = Sizes::mixed(16, 65_536);
/// let size = mixed.size_of(3, 9);
/// assert!((16..=65_536).contains(&size) && size % 8 == 0);
/// assert_eq!(size, mixed.size_of(3, 9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sizes {
    min: usize,
    max: usize,
}

impl Default for Sizes {
    fn default() -> Self {
        Self::fixed(MIN_SIZE)
    }
}

impl Sizes {
    /// Every message `size` bytes.
    #[must_use]
    pub const fn fixed(size: usize) -> Self {
        Self {
            min: size,
            max: size,
        }
    }

    /// Sizes from `min` to `max` (both included, multiples of 8), mixed per message. `max`
    /// below `min` is `min`.
    #[must_use]
    pub const fn mixed(min: usize, max: usize) -> Self {
        Self {
            min,
            max: if max < min { min } else { max },
        }
    }

    /// The smallest size.
    #[must_use]
    pub const fn min(&self) -> usize {
        self.min
    }

    /// The largest size.
    #[must_use]
    pub const fn max(&self) -> usize {
        self.max
    }

    /// Whether every message has the same size.
    #[must_use]
    pub const fn is_fixed(&self) -> bool {
        self.min == self.max
    }

    /// Whether both ends are [`valid_size`]s (then every size between is one too).
    #[must_use]
    pub const fn is_valid(&self) -> bool {
        valid_size(self.min) && valid_size(self.max)
    }

    /// The size of message `seq` of `producer`: `min + 8 * (tag(producer, seq) % steps)`.
    #[must_use]
    #[inline]
    pub const fn size_of(&self, producer: u32, seq: u64) -> usize {
        if self.max <= self.min {
            return self.min;
        }
        let steps = ((self.max - self.min) / 8 + 1) as u64;
        self.min + 8 * (tag(producer, seq) % steps) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_sizes_cover_the_range_in_steps_of_8() {
        let sizes = Sizes::mixed(16, 64);
        let mut seen = [false; 7];
        for seq in 0..1000 {
            let size = sizes.size_of(1, seq);
            assert!(size.is_multiple_of(8) && (16..=64).contains(&size));
            seen[(size - 16) / 8] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
