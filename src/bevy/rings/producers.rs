//! The producers' side of [`PerdixRings`]: host rings for CPU producers, where the app's
//! producers run (the plugin's choice, then each started producer's), and how they launch.
#![forbid(unsafe_code)]

use super::PerdixRings;
use crate::bevy::backend::{BackendChoice, ProducerBackend};
use crate::bevy::status::{ProducerStatus, Statuses};
use crate::{Buffer, Error, Producer};

impl PerdixRings {
    /// A new host ring of the plugin's capacity, drained by this resource; returns its
    /// producer (policy and timestamps from the plugin, producer id = the ring's index).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidCapacity`] or [`Error::Alloc`] from the ring.
    pub fn add_producer(&mut self, name: &str) -> Result<Producer, Error> {
        let id = u32::try_from(self.rings.len()).unwrap_or(u32::MAX);
        self.add_producer_with_id(name, id)
    }

    /// [`add_producer`](Self::add_producer) with a chosen producer id.
    ///
    /// # Errors
    ///
    /// As [`add_producer`](Self::add_producer).
    pub fn add_producer_with_id(&mut self, name: &str, id: u32) -> Result<Producer, Error> {
        let (producer, consumer) = Buffer::builder(self.config.capacity)
            .policy(self.config.policy)
            .mode(self.config.mode)
            .producer_id(id)
            .timestamps(self.config.timestamps)
            .build()?
            .into_split();
        self.add_consumer(name, consumer);
        Ok(producer)
    }

    /// Where this app's producers run. The plugin's choice, decided (and logged) on first use
    /// from any reader of the resource (the plugin decides it at `Startup` when it has
    /// producers to start): [`ProducerBackend::Gpu`] when its devices opened,
    /// [`ProducerBackend::Cpu`] with the reason when not (no device, no `cuda` feature, a
    /// capacity below the GPU's minimum). Once producers started, what they do: `Cpu` when
    /// every GPU producer fell back to its CPU fallback, [`ProducerBackend::Mixed`] when some
    /// did (each reported as
    /// [`PerdixEvent::ProducerFellBack`](crate::bevy::PerdixEvent::ProducerFellBack));
    /// [`producers`](Self::producers) has each one's.
    ///
    /// # Examples
    ///
    /// ```
    /// use bevy_app::prelude::*;
    /// use perdix_transport::bevy::{PerdixPlugin, PerdixRings};
    ///
    /// let mut app = App::new();
    /// app.add_plugins(PerdixPlugin::default().capacity(16));
    /// let backend = app.world().resource::<PerdixRings>().producer_backend();
    /// // GPU rings need 32 slots or more: 16-slot rings are for CPU producers only.
    /// assert_eq!(backend.name(), "cpu");
    /// ```
    pub fn producer_backend(&self) -> ProducerBackend {
        self.statuses.summary(self.chosen_backend())
    }

    /// The producers the plugin started from registered
    /// [`GpuProducerSpec`](crate::bevy::GpuProducerSpec)s, in the order they started: where
    /// each runs and the launches it skipped (its example is
    /// [`ProducerStatus`]'s).
    #[must_use]
    pub fn producers(&self) -> &[ProducerStatus] {
        self.statuses.list()
    }

    /// Launches the plugin's producers skipped so far because their previous launch was
    /// still running (a GPU kernel still running, a CPU fallback two launches behind), over
    /// all of them: the `perdix/launches_skipped` diagnostic. A run of
    /// [`STALL_FRAMES`](crate::bevy::STALL_FRAMES) is reported as a
    /// [`PerdixEvent::LaunchesSkipped`](crate::bevy::PerdixEvent::LaunchesSkipped).
    #[must_use]
    pub fn launches_skipped(&self) -> u64 {
        self.statuses.launches_skipped()
    }

    /// The backend the plugin chose (decided on the first call): where producers start, before
    /// any of them fell back.
    pub(crate) fn chosen_backend(&self) -> &ProducerBackend {
        self.backend.get_or_decide(&self.config)
    }

    /// The backend as decided so far, with the devices it opened.
    pub(crate) fn backend(&self) -> &BackendChoice {
        &self.backend
    }

    /// Where the app's producers run, if decided yet (deciding nothing).
    pub(crate) fn backend_so_far(&self) -> Option<ProducerBackend> {
        self.backend
            .get()
            .map(|chosen| self.statuses.summary(chosen))
    }

    /// The started producers, for the launch system.
    pub(crate) fn statuses_mut(&mut self) -> &mut Statuses {
        &mut self.statuses
    }

    /// Sets the messages lost on the way to ring `ring` (a remote stream's gaps, from its
    /// source's counters; monotonic there, so this only moves forward).
    #[cfg(feature = "zenoh")]
    pub(crate) fn set_lost(&mut self, ring: u32, lost: u64) {
        if let Some(ring) = self.rings.get_mut(ring as usize) {
            ring.lost = ring.lost.max(lost);
        }
    }
}
