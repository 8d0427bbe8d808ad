//! [`RemoteError`]: why the remote stream could not be set up, or a call on it failed.
#![forbid(unsafe_code)]

use std::path::PathBuf;

/// What went wrong in the remote stream: one meaning per variant. Zenoh's own errors are
/// kept as the source (its text, unchanged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoteError {
    /// A node or ring name that cannot be a key expression chunk.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A batch size outside [`MIN_BATCH_BYTES`](super::MIN_BATCH_BYTES) ..=
    /// [`MAX_BATCH_BYTES`](super::MAX_BATCH_BYTES).
    #[error("batch size {0} bytes is outside 4096..=65536")]
    BatchBytes(usize),
    /// Zenoh refused a configuration value.
    #[error("zenoh config {key}: {source}")]
    Config {
        /// The key set.
        key: String,
        /// Zenoh's reason.
        source: zenoh::Error,
    },
    /// The zenoh config file could not be read or parsed.
    #[error("zenoh config file {path}: {source}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Zenoh's reason.
        source: zenoh::Error,
    },
    /// The zenoh session did not open (e.g. the listen endpoint is taken).
    #[error("zenoh session did not open: {0}")]
    Open(zenoh::Error),
    /// A publisher or subscriber could not be declared on `key`.
    #[error("zenoh declare on {key}: {source}")]
    Declare {
        /// The key expression.
        key: String,
        /// Zenoh's reason.
        source: zenoh::Error,
    },
    /// A batch could not be handed to zenoh (the session closed).
    #[error("zenoh put on {key}: {source}")]
    Put {
        /// The key expression.
        key: String,
        /// Zenoh's reason.
        source: zenoh::Error,
    },
    /// The subscriber's channel is closed (its session is gone).
    #[error("zenoh subscriber closed: {0}")]
    Receive(zenoh::Error),
    /// The ring under a publisher's thread or a source's stream failed.
    #[error("ring: {0}")]
    Ring(#[from] crate::Error),
    /// A thread could not be started; the OS's reason.
    #[error("could not start a thread: {0}")]
    Spawn(#[from] std::io::Error),
    /// The wait for a receiver ran out.
    #[error("no receiver matched within {0:?}")]
    NoReceiver(std::time::Duration),
}
