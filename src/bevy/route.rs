//! The systems of [`PerdixSystems::Drain`](super::PerdixSystems::Drain): routing by kind into
//! ECS messages (each ring's share staged, in parallel when the rings are busy, or taken as the
//! batches drain threads staged, then written into `Messages<T>` in ring order), and the faults
//! of the frame written as [`PerdixEvent`]s.
#![forbid(unsafe_code)]

use std::sync::Arc;

use bevy_ecs::message::Messages;
use bevy_ecs::resource::Resource;
use bevy_ecs::system::Res;
use bevy_ecs::world::{Mut, World};

use super::config::DrainMode;
use super::delivery::Delivery;
use super::drain::Batch;
use super::event::PerdixEvent;
use super::header::ring_index;
use super::message::PerdixMessage;
use super::rings::PerdixRings;
use super::stage::{RouteShare, RouteTable, Stage};
use super::unrouted::{self, SeenKinds};
use crate::Message;

/// The route table (published to the drain threads on every change) and one staging area per
/// ring (reused every frame, never allocated per message).
#[derive(Resource, Default)]
pub(crate) struct Routes {
    table: RouteTable,
    stages: Vec<Stage>,
    /// Batches drain threads handed over, taken this frame (ring, batch).
    handed: Vec<(usize, Batch)>,
    share: Arc<RouteShare>,
    malformed_warned: bool,
    /// The unrouted kinds each ring has reported.
    seen: SeenKinds,
}

impl core::fmt::Debug for Routes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Routes")
            .field("typed", &self.table.type_names())
            .finish_non_exhaustive()
    }
}

impl Routes {
    /// The table drain threads stage by.
    pub(crate) fn share(&self) -> Arc<RouteShare> {
        Arc::clone(&self.share)
    }

    /// Routes `kind` to delivery shape `D` (named `name`).
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another destination.
    pub(crate) fn register<D: Delivery>(&mut self, kind: u32, name: &'static str) {
        self.table.register::<D>(kind, name);
        self.share.publish(self.table.clone());
    }

    /// One stage per ring, each with a buffer for every registered type.
    fn prepare(&mut self, rings: usize) {
        if self.stages.len() < rings {
            self.stages.resize_with(rings, Stage::default);
        }
        for stage in &mut self.stages {
            stage.prepare(&self.table);
        }
    }
}

/// The run condition of [`route_messages`]: the plugin routes (`PerdixPlugin::route`).
pub(crate) fn routing_on(rings: Option<Res<PerdixRings>>) -> bool {
    rings.is_some_and(|rings| rings.config().route)
}

/// The drain system: up to the budget from the rings into ECS messages.
///
/// Each ring is drained into its own stage (in parallel on Bevy's compute task pool when the
/// rings are busy), or its drain thread has staged whole batches already; then the stages are
/// written into `Messages<T>` / `Messages<PerdixMessage>` in ring order, one batch per type and
/// stage.
pub(crate) fn route_messages(world: &mut World) {
    world.try_resource_scope(|world, mut rings: Mut<PerdixRings>| {
        world.try_resource_scope(|world, mut routes: Mut<Routes>| {
            let routes = &mut *routes;
            match rings.config().drain {
                DrainMode::System => route_frame(&mut rings, routes),
                DrainMode::Thread => {
                    let budget = rings.config().budget;
                    rings.take_batches(budget, &mut routes.handed);
                    // Ring order, each ring's batches oldest first (the sort is stable).
                    routes.handed.sort_by_key(|(idx, _)| *idx);
                }
            }
            let Routes {
                table,
                stages,
                handed,
                seen,
                ..
            } = routes;
            // Each stage with its ring's index (a System stage's is its place).
            let mut all: Vec<(usize, &mut Stage)> = stages.iter_mut().enumerate().collect();
            all.extend(handed.iter_mut().map(|(idx, batch)| (*idx, batch.stage_mut())));
            unrouted::report(&mut rings, seen, table, &all);
            write_raw(world, &mut all);
            drop(all);
            let mut malformed = 0;
            // The frame's own stages: a batch written keeps its bytes held from now on.
            for (idx, stage) in stages.iter_mut().enumerate() {
                let held = rings.ring_held(idx);
                let flushed = stage.flush_typed(world, ring_index(idx), &held);
                held.add(flushed.kept);
                rings.count_routing(idx, flushed.unrouted, flushed.malformed);
                malformed += flushed.malformed;
            }
            // A drain thread's batches: their bytes are held already; what a written batch
            // keeps is let go when it is dropped, not when the batch goes back to the thread.
            for (idx, batch) in handed.iter_mut() {
                let held = rings.ring_held(*idx);
                let flushed = batch.stage_mut().flush_typed(world, ring_index(*idx), &held);
                batch.cost -= flushed.kept;
                rings.count_routing(*idx, flushed.unrouted, flushed.malformed);
                malformed += flushed.malformed;
            }
            rings.give_back(handed);
            if malformed > 0 && !routes.malformed_warned {
                routes.malformed_warned = true;
                tracing::warn!(
                    malformed,
                    "perdix: messages whose length does not match their registered type were dropped"
                );
            }
        });
    });
}

/// Writes the raw messages of `stages` (in ring order) into `Messages<PerdixMessage>` and
/// empties them (drops them if someone removed that resource).
fn write_raw(world: &mut World, stages: &mut [(usize, &mut Stage)]) {
    let flushed = world.try_resource_scope(|_, mut raw: Mut<Messages<PerdixMessage>>| {
        for (_, stage) in stages.iter_mut() {
            raw.write_batch(stage.raw.drain(..));
        }
    });
    if flushed.is_none() {
        for (_, stage) in stages.iter_mut() {
            stage.raw.clear();
        }
    }
}

fn route_frame(rings: &mut PerdixRings, routes: &mut Routes) {
    let count = rings.rings();
    routes.prepare(count);
    let Routes { table, stages, .. } = routes;
    let table = &*table;
    let mut sinks: Vec<_> = stages
        .iter_mut()
        .take(count)
        .map(|stage| move |idx: usize, msg: Message<'_>| stage.route(table, ring_index(idx), &msg))
        .collect();
    let budget = rings.config().budget;
    rings.drain_parallel(budget, &mut sinks);
}

/// [`PerdixSystems::Drain`](super::PerdixSystems::Drain), after the drain: writes the faults
/// recorded since the last frame (by the drain,
/// [`PerdixRings::drain_with`](super::PerdixRings::drain_with), producers at `Startup` and
/// launches) as [`PerdixEvent`]s.
pub(crate) fn write_events(world: &mut World) {
    let events = match world.get_resource_mut::<PerdixRings>() {
        Some(mut rings) => rings.faults_mut().take(),
        None => return,
    };
    if events.is_empty() {
        return;
    }
    if let Some(mut messages) = world.get_resource_mut::<Messages<PerdixEvent>>() {
        messages.write_batch(events);
    }
}
