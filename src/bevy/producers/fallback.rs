//! [`Fallback`]: a GPU producer's CPU fallback on its worker thread, fed one launch (its
//! number and arguments) a frame while it keeps up.
#![forbid(unsafe_code)]

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use bevy_ecs::world::World;

use super::emitter::Emitter;
use super::launch::Launches;
use super::running::Running;
use super::spec::{ArgsFn, FallbackFn};
use crate::bevy::event::spawn_error;
use crate::bevy::rings::PerdixRings;
use crate::Error;

/// Launches a CPU fallback may fall behind (queued, not yet taken by its thread) before
/// launches are skipped (a GPU stream's queue, in small).
const FALLBACK_QUEUE: usize = 2;

/// A CPU fallback on its worker thread, fed one launch a frame while it keeps up.
pub(super) struct Fallback<A> {
    name: String,
    args: Launches<A>,
    launches: SyncSender<(u64, A)>,
    /// Launches sent to the thread.
    sent: u64,
    /// Launches the thread took off the queue (it counts them as it takes them).
    taken: Arc<AtomicU64>,
    skipped: u64,
    /// Its ring's index in the resource (failed with it if the fallback panics).
    ring: Range<usize>,
    /// Joined only once it ended by itself (its ring's consumer is gone, or the fallback
    /// panicked); else the thread ends when the launches stop (this is dropped).
    thread: Option<JoinHandle<()>>,
}

impl<A: bytemuck::Pod + Send + Sync> Fallback<A> {
    /// Starts `fallback` on its thread, with a new host ring of `rings` named `name`.
    ///
    /// # Errors
    ///
    /// The ring's ([`PerdixRings::add_producer`]), or [`Error::Spawn`] for the thread.
    pub(super) fn start(
        name: &str,
        mut fallback: FallbackFn<A>,
        args: Option<ArgsFn<A>>,
        rings: &mut PerdixRings,
    ) -> Result<Self, Error> {
        let ring = rings.rings();
        let producer = rings.add_producer(name)?;
        let (launches, queue) = mpsc::sync_channel::<(u64, A)>(FALLBACK_QUEUE);
        let taken = Arc::new(AtomicU64::new(0));
        let thread_taken = Arc::clone(&taken);
        let thread = thread::Builder::new()
            .name(format!("perdix-cpu-{name}"))
            .spawn(move || {
                let mut emitter = Emitter::new(producer);
                for (launch, args) in queue {
                    // Release: room in the queue is seen with the launch gone from it.
                    thread_taken.fetch_add(1, Ordering::Release);
                    emitter.frame = launch;
                    fallback(&args, &mut emitter);
                    if emitter.producer.is_abandoned() {
                        break;
                    }
                }
            })
            .map_err(|err| spawn_error(&err))?;
        Ok(Self {
            name: name.to_owned(),
            args: Launches::new(args),
            launches,
            sent: 0,
            taken,
            skipped: 0,
            ring: ring..ring + 1,
            thread: Some(thread),
        })
    }

    /// Whether the queue has room for a launch (only this side sends, so it still has room
    /// when the launch is sent).
    fn has_room(&self) -> bool {
        let queued = self.sent - self.taken.load(Ordering::Acquire);
        queued < FALLBACK_QUEUE as u64
    }

    /// A skipped launch: counted (the launch system reports a stall, as for the GPU).
    fn skip(&mut self) {
        self.skipped += 1;
    }
}

impl<A: bytemuck::Pod + Send + Sync> Running for Fallback<A> {
    fn name(&self) -> &str {
        &self.name
    }

    /// Launches skipped while the thread was [`FALLBACK_QUEUE`] launches behind.
    fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Its ring, which fails with it if the fallback panics.
    fn rings(&self) -> Range<usize> {
        self.ring.clone()
    }

    /// Fails once, with [`Error::Panicked`], if the fallback panicked (its ring reports its
    /// own faults). The `args` closure is called only for a launch the queue has room for,
    /// and not once the thread has ended.
    fn launch(&mut self, world: &World) -> Result<(), Error> {
        let Some(thread) = &self.thread else {
            return Ok(());
        };
        if thread.is_finished() {
            return match self.thread.take().map(JoinHandle::join) {
                Some(Err(_)) => Err(Error::Panicked(format!(
                    "the CPU fallback of {}",
                    self.name
                ))),
                _ => Ok(()),
            };
        }
        if !self.has_room() {
            self.skip();
            return Ok(());
        }
        let launch = self.args.next(world);
        match self.launches.try_send(launch) {
            Ok(()) => self.sent += 1,
            // The thread ended after the check above: nothing runs any more.
            Err(TrySendError::Disconnected(_)) => {}
            // Not reached: the queue had room and nothing else sends.
            Err(TrySendError::Full(_)) => self.skip(),
        }
        Ok(())
    }
}
