//! What every aggregate has in common: the [`Aggregate`] trait the
//! application layer and the test harness are generic over, the stable
//! [`ErrorCode`] every domain error maps to, and stream naming.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::event::DomainEvent;

/// The stable class of a domain error. The API turns it into
/// `extensions.code`; clients branch on it, so variants are never renamed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The aggregate (or the thing inside it) does not exist.
    NotFound,
    /// A stale expected version, or the thing already exists.
    Conflict,
    /// The command is malformed or not allowed in the aggregate's current state.
    Validation,
    /// The caller's role or scope does not allow the command.
    Forbidden,
}

impl ErrorCode {
    /// The code as the API spells it, e.g. `NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::Validation => "VALIDATION",
            ErrorCode::Forbidden => "FORBIDDEN",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain error that knows its stable code.
pub trait Coded {
    fn code(&self) -> ErrorCode;
}

/// One consistency boundary: a stream of [`DomainEvent`]s folded into a state.
///
/// `decide` holds every business rule and is pure: "now" and facts owned by
/// other aggregates arrive inside the command. `evolve` only applies facts
/// and never fails, so any stored history can be folded.
pub trait Aggregate: Default + Clone + fmt::Debug + Send + Sync + 'static {
    /// What may be asked of this aggregate.
    type Command: Clone + fmt::Debug + Send + Sync;
    /// Why a command is refused.
    type Error: std::error::Error + Coded + Send + Sync + 'static;
    /// The stream name prefix, e.g. `recording`.
    const STREAM_PREFIX: &'static str;

    /// The stream holding the aggregate with this id.
    fn stream(id: Uuid) -> String {
        stream_name(Self::STREAM_PREFIX, id)
    }

    /// The events that carry out `command`, or why it is refused.
    fn decide(&self, command: Self::Command) -> Result<Vec<DomainEvent>, Self::Error>;

    /// Applies one stored event. Events of other aggregates are ignored.
    fn evolve(&mut self, event: &DomainEvent);

    /// Folds a history into a state.
    fn from_events<'a>(events: impl IntoIterator<Item = &'a DomainEvent>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.evolve(event);
        }
        state
    }
}

/// Ties a command type to its aggregate so that `given(..).when(command)`
/// needs no type annotation.
pub trait CommandFor {
    type Aggregate: Aggregate<Command = Self>;
}

/// `<prefix>-<uuid>`, the stream naming scheme of every aggregate.
pub fn stream_name(prefix: &str, id: Uuid) -> String {
    format!("{prefix}-{id}")
}

/// Splits a stream name into its prefix and id, if it follows the scheme.
pub fn parse_stream_name(stream: &str) -> Option<(&str, Uuid)> {
    // A UUID's hyphenated form is 36 characters; the prefix is what precedes it.
    let split = stream.len().checked_sub(37)?;
    let (prefix, rest) = stream.split_at(split);
    let id = rest.strip_prefix('-')?;
    Some((prefix, Uuid::parse_str(id).ok()?))
}

/// A UUID derived from `parts` (SHA-256, version 8 "custom"). Used where a
/// retried command must produce the same id again, so that the log's
/// idempotency by event id covers the retry: the detection of a session
/// event, a response to it, the recording of a session part.
pub fn derived_id(namespace: &str, parts: &[&[u8]]) -> Uuid {
    let mut hasher = Sha256::new();
    hasher.update(namespace.as_bytes());
    for part in parts {
        // Length-prefix each part so that ("ab", "c") and ("a", "bc") differ.
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names_round_trip() {
        let id = Uuid::now_v7();
        let name = stream_name("recording", id);
        assert_eq!(parse_stream_name(&name), Some(("recording", id)));
        assert_eq!(parse_stream_name("recording-nope"), None);
    }

    #[test]
    fn derived_ids_are_stable_and_separate_parts() {
        let a = derived_id("ns", &[b"ab", b"c"]);
        assert_eq!(a, derived_id("ns", &[b"ab", b"c"]));
        assert_ne!(a, derived_id("ns", &[b"a", b"bc"]));
        assert_ne!(a, derived_id("other", &[b"ab", b"c"]));
        assert_eq!(a.get_version_num(), 8);
    }
}
