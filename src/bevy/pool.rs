//! [`Pool`]: the buffers batches are delivered in, reused. A [`PerdixBatch`](super::PerdixBatch)
//! gives its buffers back when it is dropped, and the next frame's batch is filled in them, so
//! a steady stream allocates nothing once the buffers have grown to a frame's size.
//!
//! The pool is bounded in bytes ([`POOL_MAX_BYTES`] of free buffers, by their capacity): a
//! buffer given back beyond that is freed, so a burst does not pin its memory for good. Buffers
//! in use are not the pool's: while a batch holds them, its bytes count toward
//! `max_held_bytes` (`batch.rs`).
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// The most bytes of free buffers (their capacity) one pool keeps: 16 MiB.
pub(crate) const POOL_MAX_BYTES: u64 = 16 << 20;

/// Free buffers of `T`, shared by every stage of one route and every batch it delivered.
#[derive(Debug)]
pub(crate) struct Pool<T> {
    inner: Arc<Inner<T>>,
}

#[derive(Debug)]
struct Inner<T> {
    /// Free buffers, empty, with their capacity.
    free: Mutex<Vec<Vec<T>>>,
    /// Their capacity in bytes, at most `max_bytes`.
    free_bytes: AtomicU64,
    max_bytes: u64,
    /// Buffers handed out that came from `free` (reused), for tests and docs.
    reused: AtomicU64,
}

impl<T> Clone for Pool<T> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new(POOL_MAX_BYTES)
    }
}

impl<T> Pool<T> {
    /// An empty pool that keeps at most `max_bytes` of free buffers.
    pub(crate) fn new(max_bytes: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                free: Mutex::new(Vec::new()),
                free_bytes: AtomicU64::new(0),
                max_bytes,
                reused: AtomicU64::new(0),
            }),
        }
    }

    /// The bytes a buffer of `capacity` elements takes.
    fn bytes(capacity: usize) -> u64 {
        (capacity as u64).saturating_mul(core::mem::size_of::<T>() as u64)
    }

    /// An empty buffer: the largest free one, or a new one (no allocation until it is filled).
    pub(crate) fn take(&self) -> Vec<T> {
        let mut free = self
            .inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match free.pop() {
            Some(buf) => {
                self.inner
                    .free_bytes
                    .fetch_sub(Self::bytes(buf.capacity()), Ordering::Relaxed);
                self.inner.reused.fetch_add(1, Ordering::Relaxed);
                buf
            }
            None => Vec::new(),
        }
    }

    /// Takes `buf` back (emptied) if the pool has room for its capacity; frees it otherwise.
    pub(crate) fn give(&self, mut buf: Vec<T>) {
        let bytes = Self::bytes(buf.capacity());
        if bytes == 0 {
            return;
        }
        buf.clear();
        let mut free = self
            .inner
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let held = self.inner.free_bytes.load(Ordering::Relaxed);
        if held.saturating_add(bytes) > self.inner.max_bytes {
            return; // dropped: the pool is full
        }
        self.inner.free_bytes.fetch_add(bytes, Ordering::Relaxed);
        free.push(buf);
        // Largest last: `take` hands out the one most likely to need no growth.
        free.sort_unstable_by_key(Vec::capacity);
    }

    /// Bytes of free buffers now (at most the pool's bound).
    #[cfg(test)]
    pub(crate) fn free_bytes(&self) -> u64 {
        self.inner.free_bytes.load(Ordering::Relaxed)
    }

    /// Buffers handed out again after they were given back.
    #[cfg(test)]
    pub(crate) fn reused(&self) -> u64 {
        self.inner.reused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::Pool;

    #[test]
    fn a_given_buffer_is_handed_out_again() {
        let pool = Pool::<u64>::new(1 << 20);
        let mut buf = pool.take();
        buf.extend(0..1000);
        let (ptr, cap) = (buf.as_ptr(), buf.capacity());
        pool.give(buf);
        assert_eq!(pool.free_bytes(), cap as u64 * 8);
        let again = pool.take();
        assert_eq!(
            (again.as_ptr(), again.capacity(), again.len()),
            (ptr, cap, 0)
        );
        assert_eq!((pool.reused(), pool.free_bytes()), (1, 0));
    }

    #[test]
    fn the_pool_is_bounded_in_bytes() {
        let pool = Pool::<u64>::new(8 * 1024);
        for _ in 0..4 {
            pool.give(Vec::with_capacity(1000)); // 8,000 bytes each: one fits
        }
        assert_eq!(pool.free_bytes(), 8_000);
        pool.give(Vec::new()); // nothing to keep
        assert_eq!(pool.free_bytes(), 8_000);
        let _ = pool.take();
        assert_eq!((pool.free_bytes(), pool.take().capacity()), (0, 0));
    }
}
