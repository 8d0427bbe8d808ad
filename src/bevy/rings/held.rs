//! [`PerdixRings::held_bytes`]: the gauge of what the plugin holds outside its rings, in bytes.
#![forbid(unsafe_code)]

use std::sync::Arc;

use super::PerdixRings;
use crate::bevy::drain::{DrainedRing, HeldBytes};

impl PerdixRings {
    /// Bytes the plugin holds now outside the rings, over all rings: in
    /// [`DrainMode::Thread`](crate::bevy::DrainMode::Thread), the messages the drain threads
    /// took and the frame has not yet written into ECS messages (or read with
    /// [`drain_with`](Self::drain_with)), and in either mode the messages of every
    /// [`PerdixBatch`](crate::bevy::PerdixBatch) not yet dropped (other shapes are let go
    /// before the frame ends). Each message counts as its payload plus the size of a
    /// [`PerdixMessage`](crate::bevy::PerdixMessage); each ring's share is at most
    /// [`PerdixPlugin::held_limit`](crate::bevy::PerdixPlugin::held_limit).
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use perdix_transport::bevy::{DrainMode, PerdixPlugin, PerdixRings};
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default().drain(DrainMode::Thread));
    /// let mut producer = app.world_mut().resource_mut::<PerdixRings>().add_producer("cpu")?;
    /// producer.try_produce(&[7; 1000])?;
    /// // The drain thread takes the message and holds it until a frame writes it.
    /// let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    /// while app.world().resource::<PerdixRings>().held_bytes() == 0 {
    ///     assert!(std::time::Instant::now() < deadline, "the drain thread took nothing");
    ///     std::thread::yield_now();
    /// }
    /// let held = app.world().resource::<PerdixRings>().held_bytes();
    /// assert!(held > 1000 && held <= PerdixPlugin::default().held_limit() as u64);
    /// app.update();
    /// assert_eq!(app.world().resource::<PerdixRings>().held_bytes(), 0);
    /// # Ok::<(), perdix_transport::Error>(())
    /// ```
    #[must_use]
    pub fn held_bytes(&self) -> u64 {
        self.rings.iter().map(DrainedRing::held_bytes).sum()
    }

    /// The count of what the plugin holds of ring `ring`, for the batches delivered from it
    /// (a count of its own for a ring that is not there).
    pub(crate) fn ring_held(&self, ring: usize) -> Arc<HeldBytes> {
        self.rings
            .get(ring)
            .map_or_else(Arc::default, |r| Arc::clone(r.held()))
    }
}
