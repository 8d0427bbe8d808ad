//! A producer's control block in device memory (`cuda::control` has its layout) and the
//! streams that write into it.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use cudarc::driver::sys::CUdeviceptr;
use cudarc::driver::CudaStream;

use super::clock::ClockMapping;
use super::counters::GpuCounters;
use super::{control, driver, GpuContext};
use crate::Error;

/// The control block in device memory and the streams that write into it.
pub(super) struct ControlBlock {
    pub(super) gpu: GpuContext,
    pub(super) dptr: CUdeviceptr,
    pub(super) bytes: usize,
    /// Counters, stop flag, clock mapping, closing.
    pub(super) side: Arc<CudaStream>,
    /// Consumers' head pushes (ring `i` uses `push[i % len]`).
    pub(super) push: Vec<Arc<CudaStream>>,
    /// Fault injection: every head push (and push of CLOSED) fails from now on
    /// ([`GpuProducer::inject_head_push_failure`](super::GpuProducer::inject_head_push_failure)).
    pub(super) fail_head_pushes: AtomicBool,
}

impl core::fmt::Debug for ControlBlock {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ControlBlock")
            .field("bytes", &self.bytes)
            .field("push_streams", &self.push.len())
            .finish_non_exhaustive()
    }
}

impl ControlBlock {
    /// Writes one 64-bit word at `offset` from the side stream (does not wait for kernels).
    pub(super) fn write_word(
        &self,
        offset: usize,
        value: u64,
        stream: &CudaStream,
    ) -> Result<(), Error> {
        self.gpu.bind()?;
        // SAFETY: the context is current; `offset + 8 <= bytes` (every caller passes a control
        // offset of a ring this block holds), 8-aligned; the block outlives the write because
        // `Drop` synchronizes every stream before freeing it.
        unsafe { driver::stream_write_u64(stream.cu_stream(), self.dptr + offset as u64, value) }
            .map_err(driver::classify)
    }

    /// Reads `words` 64-bit words at `offset` (a copy on the side stream, then its sync).
    pub(super) fn read_words(&self, offset: usize, out: &mut [u64]) -> Result<(), Error> {
        self.gpu.bind()?;
        let bytes = core::mem::size_of_val(out);
        debug_assert!(offset + bytes <= self.bytes);
        // SAFETY: the context is current; `out` is `bytes` of host memory that outlives the copy
        // (we synchronize the stream below before returning); the range is inside the block.
        unsafe {
            driver::memcpy_dtoh_async(
                out.as_mut_ptr().cast(),
                self.dptr + offset as u64,
                bytes,
                self.side.cu_stream(),
            )
        }
        .map_err(driver::classify)?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(self.side.cu_stream()) }.map_err(driver::classify)
    }

    pub(super) fn counters(&self, ring: usize) -> Result<GpuCounters, Error> {
        let mut words = [0u64; 3];
        self.read_words(
            control::ring_offset(ring) + control::RING_EMITTED,
            &mut words,
        )?;
        Ok(GpuCounters {
            emitted: words[0],
            dropped: words[1],
            stalls: words[2],
        })
    }
}

impl Drop for ControlBlock {
    fn drop(&mut self) {
        if self.gpu.bind().is_err() {
            return;
        }
        for stream in core::iter::once(&self.side).chain(self.push.iter()) {
            // SAFETY: the stream is live; waiting for its pending writes into the block.
            let _ = unsafe { driver::stream_synchronize(stream.cu_stream()) };
        }
        // SAFETY: `dptr` came from `mem_alloc`, is freed only here, and every kernel using it has
        // finished (the producer waits for its stream before dropping its last reference) and
        // every stream writing it has been synchronized above.
        if let Err(err) = unsafe { driver::mem_free(self.dptr) } {
            tracing::warn!(%err, "perdix: freeing a producer's control block failed");
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
    /// the drift since the previous mapping (~0.4 µs after 20 ms at 20 ppm), for that stamp.
    pub(crate) fn set(&self, mapping: &ClockMapping) -> Result<(), Error> {
        let block = &self.block;
        let side = &block.side;
        block.write_word(control::HDR_CLOCK_G0, mapping.g0, side)?;
        block.write_word(control::HDR_CLOCK_SLOPE, mapping.slope as u64, side)?;
        block.write_word(control::HDR_CLOCK_OFFSET, mapping.offset as u64, side)?;
        block.gpu.bind()?;
        // SAFETY: the side stream is live.
        unsafe { driver::stream_synchronize(side.cu_stream()) }.map_err(driver::classify)
    }
}
