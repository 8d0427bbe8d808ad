//! The atomics and cells the ring protocol is built from.
//!
//! A private shim in the manner of crossbeam's `primitive` module: under `cfg(perdix_loom)` every
//! protocol atomic and the slot body cell come from [loom], so `tests/loom/` model-checks the
//! same code that ships; otherwise they are `core`'s, with no cost.
//!
//! [loom]: https://docs.rs/loom

#[cfg(not(perdix_loom))]
pub(crate) use core::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};
#[cfg(perdix_loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, Ordering};

#[cfg(perdix_loom)]
pub(crate) use loom::sync::Arc;
#[cfg(not(perdix_loom))]
pub(crate) use std::sync::Arc;

/// `core::cell::UnsafeCell` with loom's closure API, so one body of code serves both.
#[cfg(not(perdix_loom))]
#[derive(Debug)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

#[cfg(not(perdix_loom))]
impl<T> UnsafeCell<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(core::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a pointer for reading.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a pointer for writing.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(perdix_loom)]
pub(crate) use loom::cell::UnsafeCell;
