//! The stress-message format and its verifier, shared by the bins, the examples, the Bevy
//! plugin's CPU fallback and the GPU stress kernel (`kernels/stress.cu` writes the same words).
//!
//! A stress message from producer `p` with per-producer sequence `s` is `size` bytes (a multiple
//! of 8, at least 16, at most the ring's [`crate::layout::max_message`]), read as
//! little-endian 64-bit words:
//!
//! | word | value |
//! |---|---|
//! | 0 | `s` |
//! | 1 | `tag = mix(p, s)` |
//! | 2 .. n-2 | `tag ^ (w * 0x9E37_79B9_7F4A_7C15)` |
//! | n-2, n-1 (when n ≥ 4) | `tag`, `!s` |
//!
//! A run sends one size, or mixed sizes ([`Sizes`]): each message's size a function of
//! `(p, s)`, so the verifier knows every message's expected length. The quick check reads the
//! first and last 16 bytes; the full check reads every word. Each producer's sequence runs 0, 1,
//! 2, ... so a gap is a loss, a repeat a duplicate, and a step back a reorder.

use crate::layout::max_message;
use crate::Error;

mod send;
mod sizes;

pub use send::StressSender;
pub use sizes::Sizes;

/// Smallest stress message: sequence and tag.
pub const MIN_SIZE: usize = 16;

/// Whether `size` is a valid stress-message size: a multiple of 8, at least [`MIN_SIZE`], and
/// no more than a header's length field holds. Whether a ring carries it is
/// [`crate::layout::max_message`]'s to say (the stress runs check it before they start).
#[must_use]
pub const fn valid_size(size: usize) -> bool {
    size >= MIN_SIZE && size <= u32::MAX as usize && size.is_multiple_of(8)
}

/// `Ok` for a [`valid_size`] of at most `max` bytes (a ring's
/// [`max_message`](crate::layout::max_message)); otherwise [`Error::InvalidConfig`] saying what a
/// stress size must be (a size of 20 fits a slot, so it is a bad configuration, not a message too
/// large).
pub(crate) fn check_size(size: usize, max: usize) -> Result<(), Error> {
    if valid_size(size) && size <= max {
        Ok(())
    } else {
        Err(Error::InvalidConfig(format!(
            "stress size {size}: must be a multiple of 8 from {MIN_SIZE} to {max}"
        )))
    }
}

/// [`check_size`] against the largest message of a `capacity`-slot ring.
pub(crate) fn check_size_for(size: usize, capacity: usize) -> Result<(), Error> {
    check_size(size, max_message(capacity))
}

/// The 64-bit tag of message `seq` from `producer` (splitmix64's finaliser).
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::stress::tag;
/// assert_ne!(tag(0, 0), tag(0, 1));
/// assert_ne!(tag(0, 1), tag(1, 1));
/// ```
#[must_use]
#[inline]
pub const fn tag(producer: u32, seq: u64) -> u64 {
    let mut z = seq ^ ((producer as u64) << 40) ^ 0x9E37_79B9_7F4A_7C15;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `w` of an `n`-word message (see the module table).
#[must_use]
#[inline]
pub const fn word(producer: u32, seq: u64, w: usize, n: usize) -> u64 {
    word_with_tag(tag(producer, seq), seq, w, n)
}

/// [`word`] with the message's tag already computed (one `tag` per message, not per word).
#[must_use]
#[inline]
const fn word_with_tag(t: u64, seq: u64, w: usize, n: usize) -> u64 {
    if w == 0 {
        seq
    } else if w == 1 {
        t
    } else if n >= 4 && w == n - 1 {
        !seq
    } else if n >= 4 && w == n - 2 {
        t
    } else {
        t ^ (w as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

/// Fills `buf` (its whole length, a valid size) with message `seq` of `producer`; returns the
/// length, for [`Producer::try_produce_with`](crate::Producer::try_produce_with).
///
/// # Panics
///
/// If `buf.len()` is not a [`valid_size`] (a caller contract).
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::stress::{fill, Verifier};
///
/// let mut buf = [0u8; 64];
/// fill(&mut buf, 3, 0);
/// let mut verifier = Verifier::new(true);
/// verifier.check(3, &buf);
/// assert!(verifier.report().is_clean());
/// ```
#[inline]
pub fn fill(buf: &mut [u8], producer: u32, seq: u64) -> usize {
    assert!(valid_size(buf.len()), "invalid stress size {}", buf.len());
    let n = buf.len() / 8;
    let t = tag(producer, seq);
    for (w, chunk) in buf.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&word_with_tag(t, seq, w, n).to_le_bytes());
    }
    buf.len()
}

/// The verifier stream of producer `producer` on ring `ring`, for
/// [`Verifier::check_stream`]: `ring << 16 | producer`. Producer ids must be below 2^16 (a GPU
/// stress grid has 132 × 256 threads; CPU producers count from 0).
///
/// # Examples
///
/// ```
/// assert_eq!(perdix_transport::testing::stress::stream(2, 7), 0x2_0007);
/// ```
#[must_use]
#[inline]
pub const fn stream(ring: u32, producer: u32) -> u32 {
    ring << 16 | (producer & 0xFFFF)
}

/// Everything a verification run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyReport {
    /// Messages checked.
    pub messages: u64,
    /// Payload bytes checked.
    pub bytes: u64,
    /// Messages missing: gaps in a producer's sequence, plus (after [`Verifier::finish`]) the
    /// ones producers sent that never arrived.
    pub lost: u64,
    /// Messages seen twice.
    pub duplicates: u64,
    /// Messages that arrived after a later one from the same producer.
    pub reordered: u64,
    /// Messages whose bytes do not match their sequence (torn or corrupt), or of a bad length.
    pub corrupt: u64,
}

impl VerifyReport {
    /// No loss, duplicate, reorder or corruption.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.lost == 0 && self.duplicates == 0 && self.reordered == 0 && self.corrupt == 0
    }

    /// Adds another report's counts (one verifier per consumer thread).
    pub fn merge(&mut self, other: &Self) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.reordered += other.reordered;
        self.corrupt += other.corrupt;
    }
}

/// The two rates every run report prints, from what it verified and how long it took: one
/// definition for the harness's [`SpscReport`](super::harness::SpscReport) and the GPU stress
/// report.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use perdix_transport::testing::stress::{Throughput, VerifyReport};
///
/// struct Run(VerifyReport, Duration);
/// impl Throughput for Run {
///     fn verified(&self) -> (&VerifyReport, Duration) {
///         (&self.0, self.1)
///     }
/// }
/// let report = VerifyReport { messages: 500, bytes: 32_000, ..VerifyReport::default() };
/// let run = Run(report, Duration::from_millis(250));
/// assert_eq!((run.msgs_per_sec(), run.bytes_per_sec()), (2_000.0, 128_000.0));
/// // No time at all gives a huge rate, not a division by zero.
/// assert!(Run(report, Duration::ZERO).msgs_per_sec().is_finite());
/// ```
pub trait Throughput {
    /// What the run verified, and the wall time it took.
    fn verified(&self) -> (&VerifyReport, core::time::Duration);

    /// Messages verified per second.
    #[must_use]
    fn msgs_per_sec(&self) -> f64 {
        let (report, elapsed) = self.verified();
        report.messages as f64 / elapsed.as_secs_f64().max(1e-9)
    }

    /// Payload bytes verified per second.
    #[must_use]
    fn bytes_per_sec(&self) -> f64 {
        let (report, elapsed) = self.verified();
        report.bytes as f64 / elapsed.as_secs_f64().max(1e-9)
    }
}

/// Checks stress messages as they arrive.
///
/// # Examples
///
/// ```
/// use perdix_transport::testing::stress::{fill, Verifier};
///
/// let mut verifier = Verifier::new(false);
/// let mut buf = [0u8; 32];
/// for seq in [0, 1, 3, 3, 2] {
///     fill(&mut buf, 0, seq);
///     verifier.check(0, &buf);
/// }
/// let report = verifier.report();
/// // 2 came late: a reorder, not a loss.
/// assert_eq!((report.lost, report.duplicates, report.reordered), (0, 1, 1));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Verifier {
    /// Next expected sequence of each producer id.
    next: Vec<u64>,
    full: bool,
    /// The run's sizes, when known: every message's length is checked against them.
    sizes: Option<Sizes>,
    report: VerifyReport,
}

impl Verifier {
    /// A verifier; `full` checks every word, otherwise the first and last 16 bytes.
    #[must_use]
    pub fn new(full: bool) -> Self {
        Self {
            next: Vec::new(),
            full,
            sizes: None,
            report: VerifyReport::default(),
        }
    }

    /// A verifier for a run of `sizes`: a message whose length is not the one its producer and
    /// sequence give is corrupt. ([`new`](Self::new) accepts any valid size.)
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::testing::stress::{fill, Sizes, Verifier};
    ///
    /// let sizes = Sizes::mixed(16, 4096);
    /// let mut verifier = Verifier::with_sizes(true, sizes);
    /// let mut buf = vec![0u8; sizes.size_of(5, 0)];
    /// fill(&mut buf, 5, 0);
    /// verifier.check(5, &buf);
    /// // Message 1 of producer 5 at message 0's length: the wrong length (unless they agree).
    /// fill(&mut buf, 5, 1);
    /// verifier.check(5, &buf);
    /// let wrong = u64::from(sizes.size_of(5, 1) != buf.len());
    /// assert_eq!(verifier.report().corrupt, wrong);
    /// ```
    #[must_use]
    pub fn with_sizes(full: bool, sizes: Sizes) -> Self {
        Self {
            sizes: Some(sizes),
            ..Self::new(full)
        }
    }

    /// Checks one message from `producer`.
    #[inline]
    pub fn check(&mut self, producer: u32, payload: &[u8]) {
        self.check_stream(producer, producer, payload);
    }

    /// Checks one message from `producer`, tracking its sequence under `stream`: for producers
    /// whose ids repeat across sources (every GPU numbers its threads from 0), e.g.
    /// [`stream(ring, producer)`](stream). [`finish`](Self::finish)'s `sent` is indexed by stream.
    ///
    /// # Examples
    ///
    /// ```
    /// use perdix_transport::testing::stress::{fill, stream, Verifier};
    ///
    /// let mut verifier = Verifier::new(true);
    /// let mut buf = [0u8; 32];
    /// for ring in 0..2u32 {
    ///     fill(&mut buf, 7, 0); // producer 7 of each ring sends its message 0
    ///     verifier.check_stream(stream(ring, 7), 7, &buf);
    /// }
    /// assert_eq!(verifier.report().duplicates, 0);
    /// ```
    #[inline]
    pub fn check_stream(&mut self, stream: u32, producer: u32, payload: &[u8]) {
        self.report.messages += 1;
        self.report.bytes += payload.len() as u64;
        if !valid_size(payload.len()) {
            self.report.corrupt += 1;
            return;
        }
        let n = payload.len() / 8;
        let read = |w: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&payload[w * 8..w * 8 + 8]);
            u64::from_le_bytes(bytes)
        };
        let seq = read(0);
        if let Some(sizes) = self.sizes {
            if sizes.size_of(producer, seq) != payload.len() {
                self.report.corrupt += 1;
                return;
            }
        }
        let t = tag(producer, seq);
        let intact = if self.full {
            (1..n).all(|w| read(w) == word_with_tag(t, seq, w, n))
        } else {
            [1, n - 2, n - 1]
                .iter()
                .all(|&w| w == 0 || read(w) == word_with_tag(t, seq, w, n))
        };
        if !intact {
            self.report.corrupt += 1;
            return;
        }
        let idx = stream as usize;
        if idx >= self.next.len() {
            self.next.resize(idx + 1, 0);
        }
        let expected = self.next[idx];
        if seq == expected {
            self.next[idx] = seq + 1;
        } else if seq > expected {
            self.report.lost += seq - expected;
            self.next[idx] = seq + 1;
        } else if seq + 1 == expected {
            self.report.duplicates += 1;
        } else {
            // An older message than the last one: it was counted lost when the gap opened.
            self.report.reordered += 1;
            self.report.lost = self.report.lost.saturating_sub(1);
        }
    }

    /// The report so far.
    #[must_use]
    pub fn report(&self) -> VerifyReport {
        self.report
    }

    /// Closes the run: `sent[p]` is how many messages producer `p` says it sent; every one not
    /// seen counts as lost. Returns the final report.
    pub fn finish(&mut self, sent: &[u64]) -> VerifyReport {
        for (idx, &count) in sent.iter().enumerate() {
            let seen = self.next.get(idx).copied().unwrap_or(0);
            self.report.lost += count.saturating_sub(seen);
        }
        self.report
    }

    /// Next expected sequence per producer (= messages seen in order, per producer).
    #[must_use]
    pub fn next_expected(&self) -> &[u64] {
        &self.next
    }
}
