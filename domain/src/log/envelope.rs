//! What the log stores and hands back: envelopes around payloads.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::actor::Actor;
use crate::time::Timestamp;

/// A payload type the log can carry. The log never looks inside a payload;
/// `event_type` is only used to label and filter.
pub trait Event: Serialize + DeserializeOwned + Clone + Send + Sync + fmt::Debug + 'static {
    /// A stable name for this payload's variant, e.g. `RecordingStarted`.
    fn event_type(&self) -> &'static str;

    /// The current shape of a payload as it was stored: a variant the
    /// payload type keeps only for old records (a changed fact got a new
    /// variant) is mapped to the variant that replaced it. The codec calls
    /// it on every payload it decodes into an [`Envelope`], so nothing
    /// that reads the log through envelopes sees a superseded shape. The
    /// default keeps every payload as stored.
    fn upcast(self) -> Self {
        self
    }
}

/// A SHA-256 digest in the hash chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev_hash` of position 1.
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The last committed (durable) event: position 0 and the genesis hash for
/// an empty log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Head {
    pub position: u64,
    pub hash: Hash,
}

/// The optimistic-concurrency check of an append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version is.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last version must be exactly this (`Exact(0)` is the
    /// same as `NoStream`).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` (`None`: no stream) satisfies this.
    pub fn admits(self, actual: Option<u64>) -> bool {
        match (self, actual) {
            (ExpectedVersion::Any, _) => true,
            (ExpectedVersion::NoStream | ExpectedVersion::Exact(0), None) => true,
            (ExpectedVersion::NoStream | ExpectedVersion::Exact(0), Some(_)) => false,
            (ExpectedVersion::Exact(n), Some(v)) => n == v,
            (ExpectedVersion::Exact(_), None) => false,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no stream"),
            ExpectedVersion::Exact(n) => write!(f, "version {n}"),
        }
    }
}

/// An event to append. The log adds position, version, time and hashes.
#[derive(Clone, Debug, PartialEq)]
pub struct NewEvent<E> {
    /// The idempotency key: appending an id already stored writes nothing.
    pub event_id: Uuid,
    pub actor: Actor,
    /// Follows one request through everything it caused; defaults to the
    /// event id when the caller has none.
    pub correlation_id: Uuid,
    /// The event (or request) that caused this one.
    pub causation_id: Option<Uuid>,
    pub payload: E,
}

impl<E> NewEvent<E> {
    /// A new event with a fresh time-ordered id, correlated to itself.
    pub fn new(actor: Actor, payload: E) -> Self {
        let event_id = Uuid::now_v7();
        NewEvent {
            event_id,
            actor,
            correlation_id: event_id,
            causation_id: None,
            payload,
        }
    }

    pub fn with_id(mut self, event_id: Uuid) -> Self {
        if self.correlation_id == self.event_id {
            self.correlation_id = event_id;
        }
        self.event_id = event_id;
        self
    }

    pub fn correlated(mut self, correlation_id: Uuid, causation_id: Option<Uuid>) -> Self {
        self.correlation_id = correlation_id;
        self.causation_id = causation_id;
        self
    }
}

/// A stored event, decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope<E> {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    pub recorded_at: Timestamp,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub payload: E,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl<E> Envelope<E> {
    /// The same envelope with another payload (used by upcasting and by
    /// tools that show payloads in another shape).
    pub fn map<F>(self, f: impl FnOnce(E) -> F) -> Envelope<F> {
        Envelope {
            position: self.position,
            stream: self.stream,
            version: self.version,
            event_id: self.event_id,
            recorded_at: self.recorded_at,
            actor: self.actor,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload: f(self.payload),
            prev_hash: self.prev_hash,
            hash: self.hash,
        }
    }
}

/// The result of an accepted append.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use = "an append's positions tell the caller what to wait for"]
pub struct Appended {
    /// The positions of the request's events, in order.
    pub positions: Vec<u64>,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when every event id was already stored: nothing was written and
    /// `positions` are the stored ones.
    pub deduplicated: bool,
}

impl Appended {
    /// The position of the last event of the append.
    pub fn last_position(&self) -> u64 {
        self.positions.last().copied().unwrap_or(0)
    }
}
