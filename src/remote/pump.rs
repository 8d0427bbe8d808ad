//! [`PublisherThread`]: a consumer thread of its own that drains one ring into a
//! [`RemotePublisher`], bounded, stoppable, joined in `Drop`.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::counters::{PublisherCounters, PublisherTally};
use super::{RemoteError, RemotePublisher};
use crate::{Consumer, Error};

/// Messages one drain call takes before the thread looks at its linger and stop flag.
const DRAIN_MAX: usize = 4096;
/// How long the thread sleeps when the ring is empty.
const IDLE_SLEEP: Duration = Duration::from_micros(50);

/// A thread draining one ring into a [`RemotePublisher`] (from
/// [`RemotePublisher::spawn_for`]). It ends when the ring's producer is gone (after sending
/// everything and each stream's END batch), on [`stop`](Self::stop), or on a failure it
/// returns; `Drop` stops and joins it. Stopping takes at most one more drain of 4096
/// messages, even while the producer keeps producing: what is still in the ring then stays
/// there (the ring's producer sees [`Error::Disconnected`] once the thread is gone).
#[derive(Debug)]
pub struct PublisherThread {
    stop: Arc<AtomicBool>,
    tally: Arc<PublisherTally>,
    handle: Option<JoinHandle<Result<(), RemoteError>>>,
}

impl RemotePublisher {
    /// Moves this publisher to a thread of its own that drains `consumer` (ring `ring`) into
    /// it: a message at a time into its stream's batch, batches older than the linger time
    /// sent whenever the ring is empty or every 4096 messages.
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidName`] for `ring`; [`RemoteError::Spawn`].
    pub fn spawn_for(
        mut self,
        ring: &str,
        mut consumer: Consumer,
    ) -> Result<PublisherThread, RemoteError> {
        let id = self.ring(ring)?;
        let stop = Arc::new(AtomicBool::new(false));
        let tally = self.tally();
        let stopping = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name(format!("perdix-remote-{ring}"))
            .spawn(move || {
                loop {
                    match self.publish_from(id, &mut consumer, DRAIN_MAX) {
                        Ok(0) => {
                            self.flush_due()?;
                            if stopping.load(Ordering::Acquire) {
                                break;
                            }
                            std::thread::sleep(IDLE_SLEEP);
                        }
                        Ok(_) => {
                            self.flush_due()?;
                            if stopping.load(Ordering::Acquire) {
                                break; // under load too: at most one drain more
                            }
                        }
                        Err(RemoteError::Ring(Error::Disconnected)) => break,
                        Err(error @ RemoteError::Ring(_)) => {
                            self.finish()?;
                            return Err(error);
                        }
                        Err(error) => return Err(error),
                    }
                }
                self.finish()
            })?;
        Ok(PublisherThread {
            stop,
            tally,
            handle: Some(handle),
        })
    }
}

impl PublisherThread {
    /// What the publisher sent so far.
    #[must_use]
    pub fn counters(&self) -> PublisherCounters {
        self.tally.snapshot()
    }

    /// Whether the thread has ended.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.handle.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Waits up to `timeout` for the thread to end by itself (its ring's producer gone, every
    /// message sent, each stream's END batch sent), then stops it as [`stop`](Self::stop)
    /// does; returns what it sent.
    ///
    /// # Errors
    ///
    /// What ended the thread, if it failed.
    pub fn wait(mut self, timeout: Duration) -> Result<PublisherCounters, RemoteError> {
        let deadline = Instant::now() + timeout;
        while !self.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.join()?;
        Ok(self.tally.snapshot())
    }

    /// Stops the thread after its current drain, and joins it (the open batches and each
    /// stream's END batch sent); returns what it sent.
    ///
    /// # Errors
    ///
    /// What ended the thread, if it failed.
    pub fn stop(mut self) -> Result<PublisherCounters, RemoteError> {
        self.join()?;
        Ok(self.tally.snapshot())
    }

    fn join(&mut self) -> Result<(), RemoteError> {
        self.stop.store(true, Ordering::Release);
        match self.handle.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(RemoteError::Ring(Error::Panicked(
                "the remote publisher thread".into(),
            ))),
            None => Ok(()),
        }
    }
}

impl Drop for PublisherThread {
    fn drop(&mut self) {
        if let Err(error) = self.join() {
            tracing::warn!(%error, "perdix remote: publisher thread failed");
        }
    }
}
