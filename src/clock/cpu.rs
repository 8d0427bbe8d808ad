//! The CPU clock: monotonic nanoseconds since a fixed point taken once per process.

use std::sync::OnceLock;
use std::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Monotonic nanoseconds since this process first asked (never 0 after the first call).
///
/// # Examples
///
/// ```
/// let a = perdix_transport::clock::now_ns();
/// let b = perdix_transport::clock::now_ns();
/// assert!(b >= a);
/// ```
#[must_use]
#[inline]
pub fn now_ns() -> u64 {
    let elapsed = epoch().elapsed();
    // 2^64 ns is 584 years of uptime: the saturating cast never bites.
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX).max(1)
}
