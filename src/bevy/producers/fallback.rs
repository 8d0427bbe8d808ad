//! [`Fallback`]: a GPU producer's CPU fallback on its worker thread, fed one launch (the
//! frame's arguments) a frame.
#![forbid(unsafe_code)]

use std::ops::Range;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::{self, JoinHandle};

use bevy_ecs::world::World;

use super::emitter::Emitter;
use super::running::Running;
use super::spec::{ArgsFn, FallbackFn};
use crate::bevy::event::spawn_error;
use crate::bevy::rings::PerdixRings;
use crate::Error;

/// Frames of launches a CPU fallback may fall behind before launches are skipped (a GPU
/// stream's queue, in small).
const FALLBACK_QUEUE: usize = 2;

/// A CPU fallback on its worker thread, fed one launch (the frame's arguments) a frame.
pub(super) struct Fallback<A> {
    name: String,
    args: Option<ArgsFn<A>>,
    launches: SyncSender<A>,
    skipped: u64,
    /// Never joined: the thread ends when the launches stop (this is dropped) or its ring's
    /// consumer is gone.
    _thread: JoinHandle<()>,
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
        let producer = rings.add_producer(name)?;
        let (launches, frames) = mpsc::sync_channel::<A>(FALLBACK_QUEUE);
        let thread = thread::Builder::new()
            .name(format!("perdix-cpu-{name}"))
            .spawn(move || {
                let mut emitter = Emitter::new(producer);
                for args in frames {
                    fallback(&args, &mut emitter);
                    emitter.frame += 1;
                    if emitter.producer.is_abandoned() {
                        break;
                    }
                }
            })
            .map_err(|err| spawn_error(&err))?;
        Ok(Self {
            name: name.to_owned(),
            args,
            launches,
            skipped: 0,
            _thread: thread,
        })
    }
}

impl<A: bytemuck::Pod + Send + Sync> Running for Fallback<A> {
    fn name(&self) -> &str {
        &self.name
    }

    /// None: a fallback never fails as a producer (its ring reports its own faults).
    fn rings(&self) -> Range<usize> {
        0..0
    }

    /// Never fails: the fallback's ring reports its own faults.
    fn launch(&mut self, world: &World) -> Result<(), Error> {
        let args = self
            .args
            .as_ref()
            .map_or_else(A::zeroed, |args| args(world));
        match self.launches.try_send(args) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.skipped += 1;
                if self.skipped == 1 {
                    tracing::warn!(
                        producer = %self.name,
                        "perdix: CPU fallback is {FALLBACK_QUEUE} frames behind; skipping launches"
                    );
                }
            }
        }
        Ok(())
    }
}
