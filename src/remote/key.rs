//! Key expressions of the stream: `perdix/<node>/<ring>/<kind>`, one stream per key.
#![forbid(unsafe_code)]

use super::RemoteError;

/// The first chunk of every key the stream uses.
pub const PREFIX: &str = "perdix";

/// The longest node or ring name, in bytes.
pub const MAX_NAME: usize = 64;

/// Where a stream comes from: its node, ring and message kind (its key's chunks).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    /// The publisher's node name.
    pub node: String,
    /// The ring's name on that node.
    pub ring: String,
    /// The message kind.
    pub kind: u32,
}

impl StreamId {
    /// The key expression of this stream.
    #[must_use]
    pub fn key(&self) -> String {
        stream_key(&self.node, &self.ring, self.kind)
    }

    /// The stream of key expression `key`, or `None` if it is not one of ours
    /// (`perdix/<node>/<ring>/<kind>`, names as [`check_name`] accepts, kind a `u32`).
    #[must_use]
    pub fn parse(key: &str) -> Option<Self> {
        let mut chunks = key.split('/');
        let (Some(PREFIX), Some(node), Some(ring), Some(kind), None) = (
            chunks.next(),
            chunks.next(),
            chunks.next(),
            chunks.next(),
            chunks.next(),
        ) else {
            return None;
        };
        if check_name(node).is_err() || check_name(ring).is_err() {
            return None;
        }
        Some(Self {
            node: node.to_owned(),
            ring: ring.to_owned(),
            kind: kind.parse().ok()?,
        })
    }
}

impl core::fmt::Display for StreamId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}/{}/{}", self.node, self.ring, self.kind)
    }
}

/// `perdix/<node>/<ring>/<kind>`.
#[must_use]
pub fn stream_key(node: &str, ring: &str, kind: u32) -> String {
    format!("{PREFIX}/{node}/{ring}/{kind}")
}

/// The key expression a receiver subscribes to: every node's streams, or one node's.
#[must_use]
pub fn subscription(node: Option<&str>) -> String {
    match node {
        Some(node) => format!("{PREFIX}/{node}/**"),
        None => format!("{PREFIX}/**"),
    }
}

/// Checks that `name` can be a node or ring name: 1 to [`MAX_NAME`] bytes of ASCII letters,
/// digits, `-`, `_` and `.` (so it is one key expression chunk with no wildcard).
///
/// # Errors
///
/// [`RemoteError::InvalidName`] with the reason.
///
/// # Examples
///
/// ```
/// use perdix_transport::remote::{check_name, RemoteError};
///
/// check_name("gpu0")?;
/// assert!(matches!(check_name("a/b"), Err(RemoteError::InvalidName { .. })));
/// # Ok::<(), RemoteError>(())
/// ```
pub fn check_name(name: &str) -> Result<(), RemoteError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > MAX_NAME {
        "longer than 64 bytes"
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        "only ASCII letters, digits, '-', '_' and '.' are allowed"
    } else {
        return Ok(());
    };
    Err(RemoteError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_reject_what_is_not_ours() {
        let id = StreamId {
            node: "host-a".into(),
            ring: "gpu0".into(),
            kind: 7,
        };
        assert_eq!(id.key(), "perdix/host-a/gpu0/7");
        assert_eq!(StreamId::parse(&id.key()), Some(id));
        for bad in [
            "perdix/a/b",
            "perdix/a/b/c",
            "x/a/b/1",
            "perdix/a/b/1/2",
            "perdix/*/b/1",
        ] {
            assert_eq!(StreamId::parse(bad), None, "{bad}");
        }
        assert_eq!(subscription(Some("n")), "perdix/n/**");
        assert!(check_name(&"x".repeat(65)).is_err());
        assert!(check_name("").is_err());
    }
}
