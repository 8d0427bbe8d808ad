//! A producer's control block in device memory (`cuda::control` has its layout) and the
//! streams that write into it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cudarc::driver::CudaStream;

use super::clock::ClockMapping;
use super::counters::GpuCounters;
use super::words::DeviceWords;
use super::{control, driver, GpuContext};
use crate::Error;

/// The control block in device memory and the streams that write into it.
pub(super) struct ControlBlock {
    pub(super) gpu: GpuContext,
    /// The block itself ([`control::block_bytes`] long).
    pub(super) words: DeviceWords,
    /// Counters, stop flag, clock mapping, closing.
    pub(super) side: Arc<CudaStream>,
    /// Consumers' head pushes (ring `i` uses `push[i % len]`).
    pub(super) push: Vec<Arc<CudaStream>>,
    /// Fault injection: every head push (and push of CLOSED) fails from now on (set only by
    /// the `testing` tooling's `GpuProducer::inject_head_push_failure`; checked in every build,
    /// so the head push costs the same with and without the tooling).
    pub(super) fail_head_pushes: AtomicBool,
}

impl core::fmt::Debug for ControlBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlBlock")
            .field("words", &self.words)
            .field("push_streams", &self.push.len())
            .finish_non_exhaustive()
    }
}

impl ControlBlock {
    /// Writes one 64-bit word at `offset` from `stream` (does not wait for kernels).
    pub(super) fn write_word(
        &self,
        offset: usize,
        value: u64,
        stream: &CudaStream,
    ) -> Result<(), Error> {
        self.gpu.bind()?;
        // SAFETY: the context is current; `offset + 8` is inside the block (every caller passes a
        // control offset of a ring this block holds) and 8-aligned; the block outlives the write
        // because `Drop` synchronizes every stream before freeing it.
        unsafe {
            driver::stream_write_u64(stream.cu_stream(), self.words.dptr() + offset as u64, value)
        }
        .map_err(driver::classify)
    }

    /// Reads `out.len()` 64-bit words at `offset` (a copy on the side stream, then its sync).
    pub(super) fn read_words(&self, offset: usize, out: &mut [u64]) -> Result<(), Error> {
        debug_assert!(offset.is_multiple_of(8));
        self.gpu.bind()?;
        self.words.read(&self.side, offset / 8, out)
    }

    pub(super) fn counters(&self, ring: usize) -> Result<GpuCounters, Error> {
        // emitted, dropped, stalls, extra: one copy (`control` asserts they are adjacent).
        let mut words = [0u64; 4];
        self.read_words(
            control::ring_offset(ring) + control::RING_EMITTED,
            &mut words,
        )?;
        Ok(GpuCounters {
            emitted: words[0],
            drops: words[1],
            stalls: words[2],
            // Words a kernel wrote: no arithmetic on them may overflow.
            positions: words[0].saturating_add(words[3]),
        })
    }
}

impl Drop for ControlBlock {
    fn drop(&mut self) {
        if self.gpu.bind().is_err() {
            // The streams cannot be synchronized: leave the block allocated.
            self.words.leak();
            return;
        }
        // Wait for the pending writes into the block; every kernel using it has finished (the
        // producer waits for its stream before dropping its last reference, or leaks the block).
        // `words` is freed after this body, on the side stream.
        for stream in core::iter::once(&self.side).chain(self.push.iter()) {
            let _ = stream.synchronize();
        }
    }
}

/// Installs clock mappings into a producer's control block (from any thread).
#[derive(Debug, Clone)]
pub(crate) struct ClockSetter {
    pub(super) block: Arc<ControlBlock>,
}

impl ClockSetter {
    /// Writes the mapping's three words (`g0`, `slope`, then `offset`) and waits for them. A
    /// stamp taken in the microseconds between the writes mixes old and new words: an error of
    /// the drift since the previous mapping, for that stamp.
    pub(crate) fn set(&self, mapping: &ClockMapping) -> Result<(), Error> {
        let block = &self.block;
        let side = &block.side;
        block.write_word(control::HDR_CLOCK_G0, mapping.g0, side)?;
        block.write_word(control::HDR_CLOCK_SLOPE, mapping.slope as u64, side)?;
        block.write_word(control::HDR_CLOCK_OFFSET, mapping.offset as u64, side)?;
        block.gpu.bind()?;
        side.synchronize().map_err(driver::classify)
    }
}
