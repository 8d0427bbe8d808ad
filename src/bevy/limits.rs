//! The ring-dependent bound on typed routes: a type larger than the largest message of the
//! plugin's rings ([`max_message`](crate::layout::max_message) of its capacity) can never
//! arrive, and is reported as [`PerdixEvent::RouteTooLarge`] (a value the app sees, counted in
//! `perdix/errors`), not only logged.
//!
//! A route registered once the plugin is in the app is checked at once; one registered before
//! waits in [`PendingRoutes`] until the plugin's `build()`. Each route is checked once.
#![forbid(unsafe_code)]

use bevy_ecs::resource::Resource;
use bevy_ecs::world::World;

use super::event::PerdixEvent;
use super::rings::PerdixRings;
use crate::Error;

/// A typed route to check: its kind, its type's name, and the bytes one message of it needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RouteSize {
    pub(crate) kind: u32,
    pub(crate) type_name: &'static str,
    pub(crate) need: usize,
}

/// Routes registered before the plugin, checked by its `build()`.
#[derive(Resource, Debug, Default)]
pub(crate) struct PendingRoutes(Vec<RouteSize>);

/// Checks `route` against the plugin's rings now, or when the plugin is built.
pub(crate) fn check(world: &mut World, route: RouteSize) {
    match world.get_resource_mut::<PerdixRings>() {
        Some(mut rings) => report(&mut rings, route),
        None => world.get_resource_or_init::<PendingRoutes>().0.push(route),
    }
}

/// Checks the routes registered before the plugin (its `build()` calls it, once the rings
/// resource exists).
pub(crate) fn check_pending(world: &mut World) {
    let Some(PendingRoutes(pending)) = world.remove_resource::<PendingRoutes>() else {
        return;
    };
    if let Some(mut rings) = world.get_resource_mut::<PerdixRings>() {
        for route in pending {
            report(&mut rings, route);
        }
    }
}

/// Reports `route` if its type does not fit the rings' largest message.
fn report(rings: &mut PerdixRings, route: RouteSize) {
    let max = rings.max_message();
    if route.need > max {
        rings.faults_mut().report(PerdixEvent::RouteTooLarge {
            kind: route.kind,
            type_name: route.type_name,
            error: Error::MessageTooLarge {
                len: route.need,
                max,
            },
        });
    }
}
