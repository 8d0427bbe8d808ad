//! `GpuProducerBuilder`: a GPU producer's options, and the allocation of its rings and
//! control block.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::block::ControlBlock;
use super::head::DeviceHead;
use super::memory::{CudaManaged, CudaPinned, DeviceMemory, GpuMemory, Window};
use super::producer::GpuProducer;
use super::watch::{self, FaultWatch};
use super::words::DeviceWords;
use super::{control, GpuContext};
use crate::ring::Ring;
use crate::sync::Arc as RingArc;
use crate::{Consumer, Error, Policy, RingMode};

/// The smallest ring a GPU producer accepts: one warp's batch of positions.
pub const MIN_CAPACITY: usize = 32;

impl GpuProducer {
    /// A builder: 1 ring of 65,536 slots in pinned memory, policy `Block`, no timestamps.
    pub fn builder(gpu: &GpuContext) -> GpuProducerBuilder {
        GpuProducerBuilder {
            gpu: gpu.clone(),
            capacity: 65_536,
            rings: 1,
            memory: GpuMemory::default(),
            policy: Policy::Block,
            timestamps: false,
            mode: RingMode::Throughput,
        }
    }

    /// One ring of `capacity` slots in pinned memory, with its consumer.
    ///
    /// # Errors
    ///
    /// As [`GpuProducerBuilder::build`].
    pub fn new(gpu: &GpuContext, capacity: usize) -> Result<(Self, Consumer), Error> {
        let (producer, mut consumers) = Self::builder(gpu).capacity(capacity).build()?;
        let consumer = consumers
            .pop()
            .ok_or_else(|| Error::InvalidConfig("the builder made no ring".into()))?;
        Ok((producer, consumer))
    }
}

/// Options for a [`GpuProducer`]; from [`GpuProducer::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct GpuProducerBuilder {
    pub(super) gpu: GpuContext,
    pub(super) capacity: usize,
    pub(super) rings: usize,
    pub(super) memory: GpuMemory,
    pub(super) policy: Policy,
    pub(super) timestamps: bool,
    pub(super) mode: RingMode,
}

impl GpuProducerBuilder {
    /// Slots per ring, a power of two from [`MIN_CAPACITY`] (default 65,536: 16 MiB per ring).
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// Number of rings (default 1). Block `b` of a launch writes ring `b % rings`; give each
    /// consumer thread its own ring(s), or one ring per block for small messages.
    pub fn rings(mut self, rings: usize) -> Self {
        self.rings = rings;
        self
    }

    /// Which memory the rings live in (default [`GpuMemory::Pinned`]).
    pub fn memory(mut self, memory: GpuMemory) -> Self {
        self.memory = memory;
        self
    }

    /// What `perdix_send` (and the stress kernel) does on a full ring (default
    /// [`Policy::Block`]); `perdix_emit` always blocks and `perdix_try_emit` always drops.
    ///
    /// A `DropNewest` warp decides "full" against the head the consumer last pushed to the
    /// device, which trails the consumer by less than capacity / 8 releases while it is busy
    /// (it pushes every capacity / 8, and once capacity / 64 behind whenever it finds the ring
    /// empty): up to capacity / 8 - 1 slots may be free on the host while a warp drops. A
    /// consumer that keeps up finds the ring empty and keeps the pushed head fresh (the bound and
    /// its measurement: `docs/DESIGN-NOTES.md`, "DropNewest decides against a pushed head").
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Stamp every message with the GPU clock mapped onto [`clock::now_ns`](crate::clock::now_ns)
    /// (default off). Call [`GpuProducer::calibrate_clock`] before relying on the stamps.
    pub fn timestamps(mut self, on: bool) -> Self {
        self.timestamps = on;
        self
    }

    /// How the rings lay out their messages (default [`RingMode::Throughput`]).
    /// [`RingMode::LowLatency`] rings carry messages of up to 104 bytes sent with
    /// `perdix_emit`, `perdix_try_emit` or `perdix_send`, with no system-scope fence per
    /// message (the claim and whole-warp calls return `PERDIX_TOO_LARGE` on them).
    pub fn mode(mut self, mode: RingMode) -> Self {
        self.mode = mode;
        self
    }

    /// Allocates the rings and the control block; returns the producer and one consumer per
    /// ring.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] for a capacity that is not a power of two;
    /// [`Error::InvalidConfig`] for one below [`MIN_CAPACITY`] or for zero rings;
    /// [`Error::ManagedUnsupported`] for [`GpuMemory::Managed`] on a device without concurrent
    /// managed access; [`Error::Alloc`] when the memory cannot be had; [`Error::Driver`] for
    /// driver failures; [`Error::Spawn`] when the fault watch thread (which passes a kernel's
    /// fault on to the consumers without a call on the producer) cannot start.
    pub fn build(self) -> Result<(GpuProducer, Vec<Consumer>), Error> {
        let ring_bytes = Ring::bytes_for(self.capacity)?;
        // A warp reserves up to 32 positions at once and waits until all of them fit: a ring
        // smaller than a warp's batch would wait forever.
        if self.capacity < MIN_CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "capacity {}: GPU rings need at least {MIN_CAPACITY} slots",
                self.capacity
            )));
        }
        if self.rings == 0 || self.rings > u32::MAX as usize {
            return Err(Error::InvalidConfig(format!(
                "{} rings: a GPU producer needs from 1 to 2^32 - 1",
                self.rings
            )));
        }
        let total = ring_bytes
            .checked_mul(self.rings)
            .ok_or(Error::InvalidCapacity(self.capacity))?;
        let gpu = self.gpu.clone();
        let memory: Arc<dyn DeviceMemory> = match self.memory {
            GpuMemory::Pinned => Arc::new(CudaPinned::alloc(&gpu, total)?),
            GpuMemory::Managed => Arc::new(CudaManaged::alloc(&gpu, total)?),
        };
        let stream = gpu.new_stream()?;
        let side = gpu.new_stream()?;
        let push = (0..self.rings.min(8))
            .map(|_| gpu.new_stream())
            .collect::<Result<Vec<_>, _>>()?;
        let mut image = control::Image::new(self.rings);
        let policy = match self.policy {
            Policy::Block => 0u64,
            Policy::DropNewest => 1u64,
        };
        image.set(control::HDR_NRINGS, self.rings as u64 | (policy << 32));
        let flags = if self.timestamps {
            control::FLAG_TIMESTAMPS
        } else {
            0
        };
        image.set(control::HDR_FLAGS, flags);
        let mut windows = Vec::with_capacity(self.rings);
        for idx in 0..self.rings {
            let window = Window::new(Arc::clone(&memory), idx * ring_bytes, ring_bytes)
                .ok_or(Error::InvalidCapacity(self.capacity))?;
            let base = control::ring_offset(idx);
            image.set(base + control::RING_SLOTS, window.device_ptr());
            image.set(base + control::RING_MASK, self.capacity as u64 - 1);
            image.set(base + control::RING_CAPACITY, self.capacity as u64);
            image.set(base + control::RING_INDEX, idx as u64);
            image.set(
                base + control::RING_MODE,
                u64::from(self.mode == RingMode::LowLatency),
            );
            windows.push(window);
        }
        let mut words = DeviceWords::zeroed(&gpu, &side, image.words().len())?;
        words.write(&side, image.words())?;
        let block = Arc::new(ControlBlock {
            gpu: gpu.clone(),
            words,
            side,
            push,
            fail_head_pushes: AtomicBool::new(false),
        });

        let mut rings = Vec::with_capacity(self.rings);
        let mut consumers = Vec::with_capacity(self.rings);
        for (idx, window) in windows.into_iter().enumerate() {
            let sink = DeviceHead::new(Arc::clone(&block), idx);
            let ring = RingArc::new(
                Ring::with_sink(self.capacity, Box::new(window), Some(Box::new(sink)))?
                    .with_mode(self.mode)?,
            );
            consumers.push(Consumer::new(RingArc::clone(&ring)));
            rings.push(ring);
        }
        let watch = FaultWatch::start(
            rings.iter().map(RingArc::clone).collect(),
            watch::stream_query(gpu.clone(), Arc::clone(&stream)),
        )?;
        tracing::info!(
            rings = self.rings,
            capacity = self.capacity,
            memory = %self.memory,
            policy = %self.policy,
            mode = %self.mode,
            "perdix: GPU producer ready"
        );
        Ok((
            GpuProducer {
                gpu,
                stream,
                block,
                rings,
                capacity: self.capacity,
                memory: self.memory,
                policy: self.policy,
                timestamps: self.timestamps,
                launches: 0,
                finished: false,
                device_closed: (0..self.rings).map(|_| AtomicBool::new(false)).collect(),
                watch,
            },
            consumers,
        ))
    }
}
