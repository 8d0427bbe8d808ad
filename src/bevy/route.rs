//! Routing by kind into ECS messages: the kind table, per-ring staging (filled in parallel, one
//! task per ring, or continuously by drain threads), and the flush into `Messages<T>` in ring
//! order.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bevy_ecs::message::{Message as BevyMessage, Messages};
use bevy_ecs::resource::Resource;
use bevy_ecs::world::{Mut, World};

use super::drain::PerdixRing;
use super::envelope::Envelope;
use super::message::PerdixMessage;
use super::plugin::DrainMode;
use super::thread::Batch;
use crate::Message;

/// Raw kinds below this are looked up in a table, the rest in a map.
const KIND_TABLE: usize = 256;

/// Where a kind goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Unrouted,
    Raw,
    Typed(usize),
}

/// Kind → destination.
#[derive(Debug, Default, Clone)]
struct Lookup {
    table: Vec<Route>,
    map: HashMap<u32, Route>,
}

impl Lookup {
    #[inline]
    fn route(&self, kind: u32) -> Route {
        match self.table.get(kind as usize) {
            Some(&route) => route,
            None => self.map.get(&kind).copied().unwrap_or(Route::Unrouted),
        }
    }

    fn set(&mut self, kind: u32, route: Route) {
        if (kind as usize) < KIND_TABLE {
            if self.table.len() <= kind as usize {
                self.table.resize(kind as usize + 1, Route::Unrouted);
            }
            self.table[kind as usize] = route;
        } else {
            self.map.insert(kind, route);
        }
    }
}

/// A typed destination: one ring's messages of one type, staged for a frame, then written
/// into `Messages<M>`.
trait TypedRoute: Send + Sync {
    /// Stages `msg` from ring `ring`; `false` if its length is not the type's.
    fn accept(&mut self, ring: usize, msg: &Message<'_>) -> bool;
    fn flush(&mut self, world: &mut World);
    fn clear(&mut self);
}

/// The staging buffer of one type on one ring, with the function that turns a slot into `M`.
struct Staged<M> {
    buf: Vec<M>,
    decode: fn(usize, &Message<'_>) -> Option<M>,
}

impl<M: BevyMessage> TypedRoute for Staged<M> {
    #[inline]
    fn accept(&mut self, ring: usize, msg: &Message<'_>) -> bool {
        match (self.decode)(ring, msg) {
            Some(value) => {
                self.buf.push(value);
                true
            }
            None => false,
        }
    }

    fn flush(&mut self, world: &mut World) {
        if self.buf.is_empty() {
            return;
        }
        match world.get_resource_mut::<Messages<M>>() {
            Some(mut messages) => {
                messages.write_batch(self.buf.drain(..));
            }
            None => self.buf.clear(),
        }
    }

    fn clear(&mut self) {
        self.buf.clear();
    }
}

/// The payload as a `T`, if it is exactly `T`'s size.
#[inline]
fn decode_plain<T: bytemuck::Pod>(_ring: usize, msg: &Message<'_>) -> Option<T> {
    let payload = msg.payload();
    (payload.len() == core::mem::size_of::<T>()).then(|| bytemuck::pod_read_unaligned(payload))
}

/// The payload as a `T` with the slot's header, if it is exactly `T`'s size.
#[inline]
fn decode_envelope<T: bytemuck::Pod + Send + Sync>(
    ring: usize,
    msg: &Message<'_>,
) -> Option<Envelope<T>> {
    decode_plain::<T>(ring, msg).map(|value| Envelope {
        value,
        kind: msg.kind(),
        producer: msg.producer(),
        ring: u32::try_from(ring).unwrap_or(u32::MAX),
        seq: msg.seq(),
        stamp_ns: msg.stamp_ns(),
    })
}

/// A registered message type: its name and how to make an empty staging buffer for it.
#[derive(Clone)]
struct TypedKind {
    name: &'static str,
    make: fn() -> Box<dyn TypedRoute>,
}

fn make_plain<T: BevyMessage + bytemuck::Pod>() -> Box<dyn TypedRoute> {
    Box::new(Staged::<T> {
        buf: Vec::new(),
        decode: decode_plain::<T>,
    })
}

fn make_envelope<T: bytemuck::Pod + Send + Sync>() -> Box<dyn TypedRoute> {
    Box::new(Staged::<Envelope<T>> {
        buf: Vec::new(),
        decode: decode_envelope::<T>,
    })
}

/// One ring's share of a frame (or a drain thread's batch): staged typed and raw messages and
/// its counts.
#[derive(Default)]
pub(crate) struct Stage {
    typed: Vec<Box<dyn TypedRoute>>,
    pub(crate) raw: Vec<PerdixMessage>,
    unrouted: u64,
    malformed: u64,
    /// The last kind looked up and its route: messages come in runs of one kind.
    last: Option<(u32, Route)>,
}

impl core::fmt::Debug for Stage {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Stage")
            .field("types", &self.typed.len())
            .field("raw", &self.raw.len())
            .finish_non_exhaustive()
    }
}

impl Stage {
    /// Makes sure there is a buffer for every type of `table` (types are only ever added).
    pub(crate) fn prepare(&mut self, table: &RouteTable) {
        // A kind's route may have changed since the last use.
        self.last = None;
        while let Some(kind) = table.kinds.get(self.typed.len()) {
            self.typed.push((kind.make)());
        }
    }

    /// Empties the stage, keeping its buffers.
    pub(crate) fn clear(&mut self) {
        for typed in &mut self.typed {
            typed.clear();
        }
        self.raw.clear();
        (self.unrouted, self.malformed, self.last) = (0, 0, None);
    }

    /// Stages `msg` of ring `ring` by the routes of `table`.
    #[inline]
    pub(crate) fn route(&mut self, table: &RouteTable, ring: usize, msg: &Message<'_>) {
        let kind = msg.kind();
        let route = match self.last {
            Some((k, route)) if k == kind => route,
            _ => {
                let route = table.lookup.route(kind);
                self.last = Some((kind, route));
                route
            }
        };
        match route {
            Route::Typed(t) => {
                let accepted = self
                    .typed
                    .get_mut(t)
                    .is_some_and(|typed| typed.accept(ring, msg));
                if !accepted {
                    self.malformed += 1;
                }
            }
            Route::Raw | Route::Unrouted => {
                if route == Route::Unrouted {
                    self.unrouted += 1;
                }
                self.raw.push(PerdixMessage::new(ring, msg));
            }
        }
    }
}

/// Kind → destination, and the registered types (index = `Route::Typed`): what the drain
/// system and the drain threads stage by.
#[derive(Default, Clone)]
pub(crate) struct RouteTable {
    lookup: Lookup,
    kinds: Vec<TypedKind>,
}

/// The current [`RouteTable`], shared with the drain threads; they reload it when the
/// generation moves (a kind registered after they started).
#[derive(Default)]
pub(crate) struct RouteShare {
    generation: AtomicU64,
    table: Mutex<Arc<RouteTable>>,
}

impl core::fmt::Debug for RouteShare {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RouteShare")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl RouteShare {
    /// Changes with every registration (one atomic load: a drain thread checks it per batch).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The generation and the table it names.
    pub(crate) fn load(&self) -> (u64, Arc<RouteTable>) {
        let table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        (self.generation(), Arc::clone(&table))
    }

    fn publish(&self, table: RouteTable) {
        let mut current = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }
}

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
}

impl core::fmt::Debug for Routes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Routes")
            .field(
                "typed",
                &self.table.kinds.iter().map(|t| t.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Routes {
    fn describe(&self, route: Route) -> &'static str {
        match route {
            Route::Unrouted => "nothing",
            Route::Raw => "PerdixMessage",
            Route::Typed(idx) => self.table.kinds.get(idx).map_or("?", |t| t.name),
        }
    }

    fn set(&mut self, kind: u32, route: Route) {
        let old = self.table.lookup.route(kind);
        let name = self.describe(route);
        assert!(
            old == Route::Unrouted || self.describe(old) == name,
            "perdix message kind {kind} is already routed to {}; cannot route it to {name}",
            self.describe(old),
        );
        self.table.lookup.set(kind, route);
        self.share.publish(self.table.clone());
    }

    /// The table drain threads stage by.
    pub(crate) fn share(&self) -> Arc<RouteShare> {
        Arc::clone(&self.share)
    }

    fn register(&mut self, kind: u32, name: &'static str, make: fn() -> Box<dyn TypedRoute>) {
        let kinds = &mut self.table.kinds;
        let idx = match kinds.iter().position(|t| t.name == name) {
            Some(idx) => idx,
            None => {
                kinds.push(TypedKind { name, make });
                kinds.len() - 1
            }
        };
        self.set(kind, Route::Typed(idx));
    }

    /// Routes `kind` into `Messages<T>`.
    pub(crate) fn register_typed<T: BevyMessage + bytemuck::Pod>(&mut self, kind: u32) {
        self.register(kind, core::any::type_name::<T>(), make_plain::<T>);
    }

    /// Routes `kind` into `Messages<Envelope<T>>`.
    pub(crate) fn register_envelope<T: bytemuck::Pod + Send + Sync>(&mut self, kind: u32) {
        self.register(
            kind,
            core::any::type_name::<Envelope<T>>(),
            make_envelope::<T>,
        );
    }

    pub(crate) fn register_raw(&mut self, kind: u32) {
        self.set(kind, Route::Raw);
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

/// The drain system: up to the budget from the rings into ECS messages.
///
/// Each ring is drained into its own stage (in parallel on Bevy's compute task pool when the
/// rings are busy), or its drain thread has staged whole batches already; then the stages are
/// written into `Messages<T>` / `Messages<PerdixMessage>` in ring order, one batch per type and
/// stage.
pub(crate) fn route_messages(world: &mut World) {
    world.try_resource_scope(|world, mut ring: Mut<PerdixRing>| {
        world.try_resource_scope(|world, mut routes: Mut<Routes>| {
            let routes = &mut *routes;
            match ring.config().drain {
                DrainMode::System => route_frame(&mut ring, routes),
                DrainMode::Thread => {
                    let budget = ring.config().budget;
                    ring.take_batches(budget, &mut routes.handed);
                    // Ring order, each ring's batches oldest first (the sort is stable).
                    routes.handed.sort_by_key(|(idx, _)| *idx);
                }
            }
            let Routes { stages, handed, .. } = routes;
            let mut all: Vec<&mut Stage> = stages.iter_mut().collect();
            all.extend(handed.iter_mut().map(|(_, batch)| batch.stage_mut()));
            let (unrouted, malformed) = flush(world, &mut all);
            ring.give_back(handed);
            ring.count_routing(unrouted, malformed);
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

/// Writes `stages` (in ring order) into ECS messages and empties them; returns the unrouted and
/// malformed counts they held.
fn flush(world: &mut World, stages: &mut [&mut Stage]) -> (u64, u64) {
    let flushed = world.try_resource_scope(|_, mut raw: Mut<Messages<PerdixMessage>>| {
        for stage in stages.iter_mut() {
            raw.write_batch(stage.raw.drain(..));
        }
    });
    let (mut unrouted, mut malformed) = (0, 0);
    for stage in stages.iter_mut() {
        if flushed.is_none() {
            // Only if someone removed the raw messages: drop them.
            stage.raw.clear();
        }
        for typed in &mut stage.typed {
            typed.flush(world);
        }
        unrouted += core::mem::take(&mut stage.unrouted);
        malformed += core::mem::take(&mut stage.malformed);
    }
    (unrouted, malformed)
}

fn route_frame(ring: &mut PerdixRing, routes: &mut Routes) {
    let rings = ring.rings();
    routes.prepare(rings);
    let Routes { table, stages, .. } = routes;
    let table = &*table;
    let mut sinks: Vec<_> = stages
        .iter_mut()
        .take(rings)
        .map(|stage| move |idx: usize, msg: Message<'_>| stage.route(table, idx, &msg))
        .collect();
    let budget = ring.config().budget;
    ring.drain_parallel(budget, &mut sinks);
}
