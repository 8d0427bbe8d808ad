//! What routing stages by: the route table (kind → destination, and the registered types) and
//! the per-kind [`Stage`] of one ring's share of a frame (or of a drain thread's batch), which
//! the routing system then writes into `Messages<T>`.
//!
//! The table and the stage are one idea: a stage holds one buffer per registered type of the
//! table, and the table says which buffer a kind goes to.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bevy_ecs::message::Messages;
use bevy_ecs::world::World;

use super::delivery::{Delivery, Raw};
use super::drain::HeldBytes;
use super::message::PerdixMessage;
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

/// A typed destination: one ring's messages of one shape, staged for a frame, then written
/// into the shape's `Messages<Output>`.
trait TypedRoute: Send + Sync {
    /// Stages `msg` from ring `ring`; `false` if the shape does not take its length.
    fn accept(&mut self, ring: u32, msg: &Message<'_>) -> bool;
    /// Writes what is staged (ring `ring`'s); returns the bytes its messages keep in `held`.
    fn flush(&mut self, world: &mut World, ring: u32, held: &Arc<HeldBytes>) -> u64;
    fn clear(&mut self);
}

/// The staging buffer of one shape on one ring.
struct Staged<D: Delivery> {
    buf: D::Buffer,
}

impl<D: Delivery> TypedRoute for Staged<D> {
    #[inline]
    fn accept(&mut self, ring: u32, msg: &Message<'_>) -> bool {
        D::decode(&mut self.buf, ring, msg)
    }

    fn flush(&mut self, world: &mut World, ring: u32, held: &Arc<HeldBytes>) -> u64 {
        match world.get_resource_mut::<Messages<D::Output>>() {
            Some(mut messages) => D::flush(&mut self.buf, ring, held, &mut messages),
            None => {
                D::clear(&mut self.buf);
                0
            }
        }
    }

    fn clear(&mut self) {
        D::clear(&mut self.buf);
    }
}

/// A registered shape: its name and how to make an empty staging buffer for it (sharing the
/// route's pools).
#[derive(Clone)]
struct TypedKind {
    name: &'static str,
    make: Arc<dyn Fn() -> Box<dyn TypedRoute> + Send + Sync>,
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
    pub(crate) fn route(&mut self, table: &RouteTable, ring: u32, msg: &Message<'_>) {
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
                Raw::decode(&mut self.raw, ring, msg);
            }
        }
    }

    /// Whether unrouted messages were staged since the last flush (they are among
    /// [`raw`](Self::raw)).
    pub(crate) fn has_unrouted(&self) -> bool {
        self.unrouted > 0
    }

    /// Writes the staged typed messages of ring `ring` into their `Messages<T>` (a type whose
    /// messages were removed from the world is dropped) and returns the unrouted and malformed
    /// counts and the bytes the written messages keep counted in `held` (batches, until
    /// dropped); all emptied. The raw messages are the caller's: it writes every stage's
    /// first, in ring order.
    pub(crate) fn flush_typed(
        &mut self,
        world: &mut World,
        ring: u32,
        held: &Arc<HeldBytes>,
    ) -> Flushed {
        let mut kept = 0;
        for typed in &mut self.typed {
            kept += typed.flush(world, ring, held);
        }
        Flushed {
            unrouted: core::mem::take(&mut self.unrouted),
            malformed: core::mem::take(&mut self.malformed),
            kept,
        }
    }
}

/// What [`Stage::flush_typed`] counted.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Flushed {
    pub(crate) unrouted: u64,
    pub(crate) malformed: u64,
    /// Bytes the written messages keep counted as held (batches, until dropped).
    pub(crate) kept: u64,
}

/// Kind → destination, and the registered types (index = `Route::Typed`): what the drain
/// system and the drain threads stage by.
#[derive(Default, Clone)]
pub(crate) struct RouteTable {
    lookup: Lookup,
    kinds: Vec<TypedKind>,
}

impl RouteTable {
    /// The names of the registered types, in registration order.
    pub(crate) fn type_names(&self) -> Vec<&'static str> {
        self.kinds.iter().map(|t| t.name).collect()
    }

    /// Whether no route takes `kind` (its messages are staged raw and counted as unrouted).
    pub(crate) fn is_unrouted(&self, kind: u32) -> bool {
        self.lookup.route(kind) == Route::Unrouted
    }

    fn describe(&self, route: Route) -> &'static str {
        match route {
            Route::Unrouted => "nothing",
            Route::Raw => "PerdixMessage",
            Route::Typed(idx) => self.kinds.get(idx).map_or("?", |t| t.name),
        }
    }

    /// Routes `kind` to `route`.
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another destination (an app misconfiguration).
    fn set(&mut self, kind: u32, route: Route) {
        let old = self.lookup.route(kind);
        let name = self.describe(route);
        assert!(
            old == Route::Unrouted || self.describe(old) == name,
            "perdix message kind {kind} is already routed to {}; cannot route it to {name}",
            self.describe(old),
        );
        self.lookup.set(kind, route);
    }

    /// Routes `kind` to shape `D` (named `name` in messages; kinds of one shape share its
    /// buffers).
    ///
    /// # Panics
    ///
    /// If `kind` is already routed to another destination (an app misconfiguration).
    pub(crate) fn register<D: Delivery>(&mut self, kind: u32, name: &'static str) {
        if D::RAW {
            self.set(kind, Route::Raw);
            return;
        }
        let kinds = &mut self.kinds;
        let idx = match kinds.iter().position(|t| t.name == name) {
            Some(idx) => idx,
            None => {
                let shared = D::Shared::default();
                let make = move || -> Box<dyn TypedRoute> {
                    Box::new(Staged::<D> {
                        buf: D::buffer(&shared),
                    })
                };
                kinds.push(TypedKind {
                    name,
                    make: Arc::new(make),
                });
                kinds.len() - 1
            }
        };
        self.set(kind, Route::Typed(idx));
    }
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

    /// Makes `table` the current one (a new generation).
    pub(crate) fn publish(&self, table: RouteTable) {
        let mut current = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        *current = Arc::new(table);
        self.generation.fetch_add(1, Ordering::Release);
    }
}
