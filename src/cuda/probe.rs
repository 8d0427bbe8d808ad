//! Self-checks on a real device: the slot layout as the device compiler laid it out.

use core::sync::atomic::{AtomicU64, Ordering};

use super::kernel::GpuKernel;
use super::memory::{CudaPinned, DeviceMemory};
use super::module::PROBE_CU;
use super::producer::GpuProducer;
use super::teardown::kernels_finished;
use super::GpuContext;
use crate::{layout, Error, RingMemory};

/// The slot layout as the device sees it, next to the host's; from [`layout_probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayoutProbe {
    /// Offsets of `seq`, `len`, `kind`, `producer`, `flags`, `stamp_ns`, `payload`, measured on
    /// the device (address differences), then the slot size and alignment, then the multi-slot
    /// numbers as `perdix.cuh` computes them: a slot's payload bytes, the largest message of the
    /// probe's 1,024-slot ring, the slots of a 4 KiB message and the pad flag.
    pub device: [u64; 13],
    /// The same thirteen numbers from [`layout`].
    pub host: [u64; 13],
    /// Control words the device read back: capacity, mask, rings, policy, flags, ring index.
    pub control: [u64; 6],
}

impl LayoutProbe {
    /// Whether the device's layout equals the host's.
    #[must_use]
    pub fn matches(&self) -> bool {
        self.device == self.host
    }
}

/// Runs `perdix_layout_probe` on `gpu` against a 2-ring producer of 1,024 slots and returns both
/// views of the layout.
///
/// # Errors
///
/// Compile, allocation and driver errors; [`Error::KernelFault`].
pub fn layout_probe(gpu: &GpuContext) -> Result<LayoutProbe, Error> {
    let (mut producer, _consumers) = GpuProducer::builder(gpu).capacity(1024).rings(2).build()?;
    let out = CudaPinned::alloc(gpu, 4096)?;
    let base = out.as_ptr().as_ptr().cast::<u64>();
    for idx in 0..32 {
        // SAFETY: 32 aligned words inside the 4096-byte allocation `out` owns; the kernel has not
        // been launched yet.
        unsafe { AtomicU64::from_ptr(base.add(idx)) }.store(u64::MAX, Ordering::Relaxed);
    }
    let kernel = GpuKernel::builtin(PROBE_CU, "probe.cu", "perdix_layout_probe")
        .grid(1)
        .block(1);
    // SAFETY: `arg`'s contract for the one launch below: (1) `perdix_layout_probe(p, out)`
    // takes a `perdix_u64*` after `p`; (2) `out` is the 4096-byte allocation above, of which
    // the kernel writes words 0..19, alive until the wait below shows the kernel finished (or
    // leaked); (3) the host's stores to it were made before the launch, on this thread.
    let kernel = unsafe { kernel.arg(out.device_ptr()) };
    // SAFETY: `GpuProducer::launch`'s contract: (1) the crate's own probe, which reads the
    // ring's control words and writes only `out` (one thread: grid 1, block 1), with its
    // parameter's argument (above); (2) `out` outlives the kernel: it is read and freed only
    // once the wait below shows the kernel finished, and leaked otherwise; (3) the host's
    // writes to `out` precede the launch.
    unsafe { producer.launch(&kernel) }?;
    let waited = producer.wait(None);
    if !kernels_finished(&waited) {
        // The probe may still be writing `out`: never free it under the kernel (its words stay
        // readable, as atomics, below).
        core::mem::forget(out);
    }
    waited?;
    let read = |idx: usize| {
        // SAFETY: as above; the kernel has finished (waited for), and its stores are visible
        // after the stream synchronization.
        unsafe { AtomicU64::from_ptr(base.add(idx)) }.load(Ordering::Acquire)
    };
    let mut device = [0u64; 13];
    for (idx, word) in device.iter_mut().enumerate() {
        // Words 0..9: the slot; 9..15: the control words; 15..19: the multi-slot numbers.
        *word = read(if idx < 9 { idx } else { idx + 6 });
    }
    let mut control = [0u64; 6];
    for (idx, word) in control.iter_mut().enumerate() {
        *word = read(9 + idx);
    }
    let host = [
        layout::OFFSET_SEQ,
        layout::OFFSET_LEN,
        layout::OFFSET_KIND,
        layout::OFFSET_PRODUCER,
        layout::OFFSET_FLAGS,
        layout::OFFSET_STAMP_NS,
        layout::OFFSET_PAYLOAD,
        layout::SLOT_SIZE,
        layout::SLOT_ALIGN,
        layout::SLOT_PAYLOAD,
        layout::max_message(1024),
        layout::slots_for(4096),
        layout::FLAG_PAD as usize,
    ]
    .map(|v| v as u64);
    Ok(LayoutProbe {
        device,
        host,
        control,
    })
}
