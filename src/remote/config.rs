//! [`RemoteConfig`]: the node name, the zenoh session (peer mode, explicit endpoints, no
//! multicast scouting, shared memory) and how the stream batches and meets congestion.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::time::Duration;

use super::key::check_name;
use super::RemoteError;
use crate::Policy;

/// The smallest batch target, in bytes.
pub const MIN_BATCH_BYTES: usize = 4 * 1024;
/// The largest batch target, in bytes (and the default).
pub const MAX_BATCH_BYTES: usize = 64 * 1024;
/// Batches from this size on go through shared memory between peers on one host (when on).
pub const SHM_THRESHOLD: usize = 4 * 1024;
/// The shared-memory pool each session allocates for its batches (when on).
pub const SHM_POOL_BYTES: usize = 32 * 1024 * 1024;
/// The largest batch a receiver accepts (a ring's largest message, 512 KiB, alone in its
/// batch, fits): zenoh's defragmentation buffer, so one batch never holds more.
pub const MAX_RECEIVED_BATCH: usize = 1024 * 1024;
/// The default listen endpoint: loopback only.
pub const DEFAULT_LISTEN: &str = "tcp/127.0.0.1:7447";

/// Settings of a remote publisher or receiver.
///
/// The zenoh session runs in peer mode with the endpoints given here (default: listen on
/// [`DEFAULT_LISTEN`], connect nowhere) and multicast scouting off, so nothing leaves the
/// hosts named. [`from_file`](Self::from_file) takes a zenoh json5 config file instead, used
/// as written (its mode, endpoints, scouting and shared memory); the stream's own settings
/// (node, batch size, policy, linger, queue) still come from here.
///
/// # Examples
///
/// ```
/// use perdix_transport::remote::{RemoteConfig, RemoteError};
/// use perdix_transport::Policy;
///
/// let config = RemoteConfig::new("host-a")?
///     .listen("tcp/127.0.0.1:17447")
///     .batch_bytes(16 * 1024)?
///     .policy(Policy::DropNewest);
/// assert_eq!(config.node(), "host-a");
/// assert!(matches!(config.clone().batch_bytes(100), Err(RemoteError::BatchBytes(100))));
/// assert!(RemoteConfig::new("a/b").is_err());
/// # Ok::<(), RemoteError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RemoteConfig {
    node: String,
    listen: Vec<String>,
    connect: Vec<String>,
    shared_memory: bool,
    batch_bytes: usize,
    policy: Policy,
    linger: Duration,
    queue: usize,
    from: Option<String>,
    file: Option<PathBuf>,
    extra: Vec<(String, String)>,
}

impl RemoteConfig {
    /// Settings for node `node`: listen on [`DEFAULT_LISTEN`], shared memory on, 64 KiB
    /// batches, [`Policy::Block`], 1 ms linger, a receive queue of 64 batches.
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidName`] (see [`check_name`](super::check_name)).
    pub fn new(node: &str) -> Result<Self, RemoteError> {
        check_name(node)?;
        Ok(Self {
            node: node.to_owned(),
            listen: vec![DEFAULT_LISTEN.to_owned()],
            connect: Vec::new(),
            shared_memory: true,
            batch_bytes: MAX_BATCH_BYTES,
            policy: Policy::Block,
            linger: Duration::from_millis(1),
            queue: 64,
            from: None,
            file: None,
            extra: Vec::new(),
        })
    }

    /// These settings with the zenoh session of json5 config file `path` (read when the
    /// session opens), used as written: multicast scouting is then what the file says.
    #[must_use]
    pub fn from_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Listens on `endpoint` (e.g. `tcp/127.0.0.1:7447`) instead of the default list the
    /// first time, in addition to the ones given before after that.
    #[must_use]
    pub fn listen(mut self, endpoint: &str) -> Self {
        if self.listen == [DEFAULT_LISTEN] {
            self.listen.clear();
        }
        self.listen.push(endpoint.to_owned());
        self
    }

    /// Listens nowhere (a peer that only connects).
    #[must_use]
    pub fn no_listen(mut self) -> Self {
        self.listen.clear();
        self
    }

    /// Connects to `endpoint` (e.g. `tcp/10.0.0.2:7447`), in addition to the ones given.
    #[must_use]
    pub fn connect(mut self, endpoint: &str) -> Self {
        self.connect.push(endpoint.to_owned());
        self
    }

    /// Shared memory between peers on one host, for batches of [`SHM_THRESHOLD`] bytes or
    /// more (default on; zenoh falls back to the network where the peer has none).
    #[must_use]
    pub fn shared_memory(mut self, on: bool) -> Self {
        self.shared_memory = on;
        self
    }

    /// The batch target in bytes: a batch is sent once the next message would take it past
    /// this (a message larger goes alone).
    ///
    /// # Errors
    ///
    /// [`RemoteError::BatchBytes`] outside [`MIN_BATCH_BYTES`] ..= [`MAX_BATCH_BYTES`].
    pub fn batch_bytes(mut self, bytes: usize) -> Result<Self, RemoteError> {
        if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES).contains(&bytes) {
            return Err(RemoteError::BatchBytes(bytes));
        }
        self.batch_bytes = bytes;
        Ok(self)
    }

    /// Congestion: [`Policy::Block`] (zenoh blocks the put, the publisher's ring fills, its
    /// producers wait: no loss) or [`Policy::DropNewest`] (zenoh drops batches; receivers
    /// count every missing batch and message from the sequence numbers).
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// How long a publisher holds a batch that is not full before sending it (checked at
    /// each [`flush_due`](super::RemotePublisher::flush_due)). Default 1 ms.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Batches a receiver queues (at least 1) before zenoh's receive path waits for the
    /// application: what a receiver holds is at most this many batches of at most
    /// [`MAX_RECEIVED_BATCH`] bytes.
    #[must_use]
    pub fn queue(mut self, batches: usize) -> Self {
        self.queue = batches.max(1);
        self
    }

    /// A receiver takes only node `node`'s streams (default: every node's).
    ///
    /// # Errors
    ///
    /// [`RemoteError::InvalidName`].
    pub fn from_node(mut self, node: &str) -> Result<Self, RemoteError> {
        check_name(node)?;
        self.from = Some(node.to_owned());
        Ok(self)
    }

    /// Sets zenoh config key `key` (e.g. `transport/link/rx/buffer_size`) to the json5 value
    /// `value`, after the settings above (or the file's): for what this builder does not
    /// name. Checked when the session opens.
    #[must_use]
    pub fn zenoh_setting(mut self, key: &str, value: &str) -> Self {
        self.extra.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The node name.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The congestion policy.
    #[must_use]
    pub fn congestion(&self) -> Policy {
        self.policy
    }

    /// The batch target in bytes.
    #[must_use]
    pub fn batch_target(&self) -> usize {
        self.batch_bytes
    }

    /// The linger time.
    #[must_use]
    pub fn linger_time(&self) -> Duration {
        self.linger
    }

    /// The receive queue, in batches.
    #[must_use]
    pub fn queue_batches(&self) -> usize {
        self.queue
    }

    /// The node a receiver is limited to, if any.
    #[must_use]
    pub fn only_node(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// The zenoh configuration these settings give.
    ///
    /// # Errors
    ///
    /// [`RemoteError::ConfigFile`] when the file cannot be read; [`RemoteError::Config`] when
    /// zenoh refuses a value (e.g. a malformed endpoint).
    pub fn zenoh_config(&self) -> Result<zenoh::Config, RemoteError> {
        let mut config = match &self.file {
            Some(path) => {
                zenoh::Config::from_file(path).map_err(|source| RemoteError::ConfigFile {
                    path: path.clone(),
                    source,
                })?
            }
            None => self.builder_config()?,
        };
        for (key, value) in &self.extra {
            config
                .insert_json5(key, value)
                .map_err(|source| RemoteError::Config {
                    key: key.clone(),
                    source,
                })?;
        }
        Ok(config)
    }

    /// The zenoh configuration of the builder's settings (no file).
    fn builder_config(&self) -> Result<zenoh::Config, RemoteError> {
        let mut config = zenoh::Config::default();
        let shm = if self.shared_memory { "true" } else { "false" };
        let settings: [(&'static str, String); 9] = [
            ("mode", "\"peer\"".to_owned()),
            ("listen/endpoints", json_list(&self.listen)),
            ("connect/endpoints", json_list(&self.connect)),
            ("scouting/multicast/enabled", "false".to_owned()),
            ("transport/shared_memory/enabled", shm.to_owned()),
            (
                "transport/shared_memory/transport_optimization/enabled",
                shm.to_owned(),
            ),
            (
                "transport/shared_memory/transport_optimization/message_size_threshold",
                SHM_THRESHOLD.to_string(),
            ),
            (
                "transport/shared_memory/transport_optimization/pool_size",
                SHM_POOL_BYTES.to_string(),
            ),
            (
                "transport/link/rx/max_message_size",
                MAX_RECEIVED_BATCH.to_string(),
            ),
        ];
        for (key, value) in settings {
            config
                .insert_json5(key, &value)
                .map_err(|source| RemoteError::Config {
                    key: key.to_owned(),
                    source,
                })?;
        }
        Ok(config)
    }
}

/// `["a","b"]`, each string escaped as JSON.
fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("[{}]", quoted.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zenoh_config_is_peer_with_explicit_endpoints_and_no_multicast() {
        let config = RemoteConfig::new("n")
            .unwrap()
            .listen("tcp/127.0.0.1:17000")
            .connect("tcp/127.0.0.1:17001")
            .zenoh_config()
            .unwrap();
        assert_eq!(config.get_json("mode").unwrap(), "\"peer\"");
        assert_eq!(
            config.get_json("scouting/multicast/enabled").unwrap(),
            "false"
        );
        assert_eq!(
            config.get_json("listen/endpoints").unwrap(),
            "[\"tcp/127.0.0.1:17000\"]"
        );
        assert_eq!(
            config.get_json("connect/endpoints").unwrap(),
            "[\"tcp/127.0.0.1:17001\"]"
        );
    }

    #[test]
    fn a_bad_endpoint_is_a_config_error() {
        let err = RemoteConfig::new("n")
            .unwrap()
            .listen("nonsense")
            .zenoh_config();
        assert!(
            matches!(&err, Err(RemoteError::Config { key, .. }) if key == "listen/endpoints"),
            "{err:?}"
        );
        let extra = RemoteConfig::new("n")
            .unwrap()
            .zenoh_setting("transport/link/rx/buffer_size", "1048576")
            .zenoh_config()
            .unwrap();
        assert_eq!(
            extra.get_json("transport/link/rx/buffer_size").unwrap(),
            "1048576"
        );
    }

    #[test]
    fn a_zenoh_file_is_used_as_written() {
        let dir = std::env::temp_dir().join(format!("perdix-remote-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zenoh.json5");
        std::fs::write(
            &path,
            r#"{ mode: "peer", listen: { endpoints: ["tcp/127.0.0.1:17999"] },
                 scouting: { multicast: { enabled: false } } }"#,
        )
        .unwrap();
        let config = RemoteConfig::new("n")
            .unwrap()
            .from_file(&path)
            .zenoh_config()
            .unwrap();
        assert_eq!(
            config.get_json("listen/endpoints").unwrap(),
            "[\"tcp/127.0.0.1:17999\"]"
        );
        let missing = RemoteConfig::new("n")
            .unwrap()
            .from_file(dir.join("none.json5"))
            .zenoh_config();
        assert!(
            matches!(missing, Err(RemoteError::ConfigFile { .. })),
            "{missing:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
