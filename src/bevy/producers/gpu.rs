//! GPU producers (feature `cuda`): a registered kernel compiled, given its rings on each of
//! the plugin's devices, and launched once a frame ([`Launcher`]); the ring set the stress
//! producers share ([`producer`]).
// The kernel of a `GpuProducerSpec` is built with the `unsafe` `GpuKernel::from_source` and
// `GpuKernel::arg`, under the contract `GpuProducerSpec::new`'s caller accepted (`start`), and
// launched with the `unsafe` `GpuProducerSet::launch`, with the arguments `GpuProducerSpec::args`'
// caller vouched for (`Launcher::launch`): those two functions alone allow it.
#![deny(unsafe_code)]

use std::ops::Range;

use bevy_ecs::world::World;

use super::launch::Launches;
use super::running::Running;
use super::spec::GpuProducerSpec;
use crate::bevy::rings::PerdixRings;
use crate::cuda::{ArgSplit, GpuContext, GpuKernel, GpuMemory, GpuProducerSet};
use crate::{Backend, Error};

/// Clock calibration rounds before a producer with timestamps starts.
const CLOCK_ROUNDS: u32 = 100;

fn memory(choice: Option<Backend>) -> GpuMemory {
    match choice {
        Some(Backend::CudaManaged) => GpuMemory::Managed,
        _ => GpuMemory::default(),
    }
}

/// A producer of `count` rings on each of the devices of `rings`, with the plugin's settings;
/// its consumers are added to `rings` as `name-<idx>` (one device) or `name-gpu<N>-<idx>`.
pub(crate) fn producer(
    rings: &mut PerdixRings,
    name: &str,
    count: usize,
) -> Result<GpuProducerSet, Error> {
    let config = rings.config().clone();
    // Calibrate before any ring exists: a calibration that fails (a GPU that other kernels
    // fill) then leaves no ring memory to free, and freeing device or pinned memory waits for
    // every kernel on the device, an app's own included.
    let clocks = if config.timestamps {
        rings
            .backend()
            .devices()
            .iter()
            .map(|gpu| crate::cuda::clock::calibrate(gpu, CLOCK_ROUNDS))
            .collect::<Result<Vec<_>, _>>()?
    } else {
        Vec::new()
    };
    let (mut set, consumers) = GpuProducerSet::build_on(rings.backend().devices(), |builder| {
        builder
            .capacity(config.capacity)
            .rings(count)
            .memory(memory(config.memory))
            .policy(config.policy)
            .mode(config.mode)
            .timestamps(config.timestamps)
    })?;
    // `build_on` made one producer a device, in the devices' order.
    for (producer, mapping) in set.producers_mut().iter_mut().zip(&clocks) {
        producer.set_clock(mapping)?;
    }
    let several = consumers.len() > 1;
    for (entry, device_rings) in consumers.into_iter().enumerate() {
        for (idx, consumer) in device_rings.into_iter().enumerate() {
            let ring_name = if several {
                let device = consumer.device().unwrap_or(0);
                format!("{name}-gpu{device}.{entry}-{idx}")
            } else {
                format!("{name}-{idx}")
            };
            rings.add_consumer(&ring_name, consumer);
        }
    }
    Ok(set)
}

/// The first device opened for the producers of `rings` (every device of a choice has the
/// same kernels).
pub(crate) fn first_device(rings: &PerdixRings) -> Result<GpuContext, Error> {
    rings
        .backend()
        .devices()
        .first()
        .cloned()
        .ok_or(Error::NoDevice("no CUDA device was opened"))
}

/// Starts `spec` on the plugin's devices: compiles its kernel, then gives it one ring on each
/// device.
///
/// # Errors
///
/// The kernel's compile error, the device's, or [`Error::InvalidConfig`] when `A` is not the
/// `#[repr(C)]` struct of the kernel's parameters after the producer pointer, before any ring
/// exists; a ring's or the clock calibration's after.
pub(super) fn start<A: bytemuck::Pod + Send + Sync>(
    spec: &mut GpuProducerSpec<A>,
    rings: &mut PerdixRings,
) -> Result<Box<dyn Running>, Error> {
    #[allow(unsafe_code)]
    // SAFETY: `from_source`'s contract is the source half of `GpuProducerSpec::new`'s (items
    // 1-4: the producer pointer first, the ring only through `perdix.cuh`, no memory it was not
    // given, under any grid and block), which the spec's caller accepted for this source.
    let kernel = unsafe { GpuKernel::from_source(spec.source.clone(), spec.entry.clone()) }
        .name(format!("{}.cu", spec.name))
        .grid(spec.grid)
        .block(spec.block);
    // Compile before any ring exists, so a compile error (or arguments that disagree with
    // the kernel's parameters) leaves nothing behind.
    let gpu = first_device(rings)?;
    let ptx = kernel.compile(&gpu.arch())?;
    let split = ArgSplit::new(
        &ptx,
        &spec.entry,
        core::mem::size_of::<A>(),
        core::mem::align_of::<A>(),
    )?;
    #[allow(unsafe_code)]
    // SAFETY: `with_args`' contract: (1) `split` cut `A::zeroed()` at the offsets and sizes
    // of the kernel's parameters as its PTX declares them, and `GpuProducerSpec::new`'s
    // caller promised that `A`'s fields are those parameters in order and type (its item 5);
    // (2) a zeroed argument holds no address but 0, which the kernel must take as none (item
    // 3 there); these are replaced before every launch (`Launcher::launch`).
    let kernel = unsafe { kernel.with_args(split.zeroed()) };
    let first = rings.rings();
    let producer = producer(rings, &spec.name, 1)?;
    let written = first..rings.rings();
    producer.prepare(&kernel)?;
    tracing::info!(producer = %spec.name, "perdix: GPU producer started");
    Ok(Box::new(Launcher {
        name: spec.name.clone(),
        rings: written,
        producer,
        kernel,
        split,
        args: Launches::new(spec.args.take()),
        skipped: 0,
        failed: false,
    }))
}

/// A GPU producer launched once a frame, never more than one launch in flight.
struct Launcher<A> {
    name: String,
    /// Its rings' indices in the resource.
    rings: Range<usize>,
    producer: GpuProducerSet,
    kernel: GpuKernel,
    /// How `A`'s bytes become the kernel's arguments (from its PTX).
    split: ArgSplit,
    /// The `args` closure, called for launches that run (see `launch.rs`).
    args: Launches<A>,
    /// Frames whose launch was skipped (the kernel still running): the launch system counts
    /// them and reports a stall (`PerdixEvent::LaunchesSkipped`).
    skipped: u64,
    failed: bool,
}

impl<A: bytemuck::Pod + Send + Sync> Running for Launcher<A> {
    fn name(&self) -> &str {
        &self.name
    }

    fn rings(&self) -> Range<usize> {
        self.rings.clone()
    }

    /// Frames whose launch was skipped because the kernel was still running.
    fn skipped(&self) -> u64 {
        self.skipped
    }

    fn launch(&mut self, world: &World) -> Result<(), Error> {
        if self.failed {
            return Ok(());
        }
        // A stream query, not a sync: a kernel still running (e.g. waiting for room)
        // skips this frame's launch instead of queueing launches without bound.
        match self.producer.is_idle() {
            Ok(true) => {}
            Ok(false) => {
                self.skipped += 1;
                return Ok(());
            }
            Err(err) => return self.fail(err),
        }
        // The launch runs (unless it fails, which stops the producer): it takes a number.
        let (_launch, args) = self.args.next(world);
        self.split
            .fill(bytemuck::bytes_of(&args), self.kernel.args_mut());
        #[allow(unsafe_code)]
        // SAFETY: `GpuProducerSet::launch`'s contract: (1) the source was given under
        // `GpuProducerSpec::new`'s contract (see `start`), and these arguments are the bytes of
        // this launch's `A`, cut at the kernel's parameters (`split`), whose fields are those
        // parameters in order and type (`new`'s item 5); (2) every address among them came
        // from the `args` closure, whose caller (`GpuProducerSpec::args`) vouched that it is
        // valid for what the kernel does with it until the producer stops, and the producer
        // set stops only after its kernels (`finish` or teardown); (3) the app's writes to
        // those buffers are ordered before the closure returns them (the same contract).
        let launched = unsafe { self.producer.launch(&self.kernel) };
        launched.or_else(|err| self.fail(err))
    }
}

impl<A> Launcher<A> {
    /// The producer stopped (its launch failed, or its kernel faulted): never launched
    /// again; `err` goes to the app as a `PerdixEvent::ProducerFailed` (and its rings
    /// report the fault once drained to it).
    fn fail(&mut self, err: Error) -> Result<(), Error> {
        self.failed = true;
        Err(err)
    }
}
