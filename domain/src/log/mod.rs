//! The append-only event log.
//!
//! # Guarantees
//!
//! * **Durable.** An append is acknowledged only after the backend's flush
//!   that contains it has returned. After a crash at any moment every acknowledged
//!   event is there.
//! * **Gapless.** Positions start at 1 and increase by one per event; each
//!   stream's versions start at 1 and increase by one. Positions are assigned
//!   by the single writer inside the commit, never by a counter outside it.
//! * **Atomic.** The events of one append are written in one backend commit: all
//!   of them or none, also across a crash. A guarded append
//!   ([`EventStore::append_guarded`]) also checks other streams' versions
//!   in that commit.
//! * **Idempotent.** Every event carries an id. Appending ids that are already
//!   stored returns the stored positions and writes nothing, also after a
//!   restart: the id index is persisted in the same batch as the events.
//! * **Tamper-evident.** Every record carries `hash = SHA-256(prev_hash ||
//!   position || body)`; [`verify`] walks the chain and names the first
//!   position where it breaks.
//! * **Readers see only durable events.** Reads and subscriptions stop at the
//!   durable head, so no reader (and no projection) ever sees an event that a
//!   crash could still take back.
//! * **A full disk refuses, never loses, and heals.** When storage fails an
//!   append is answered [`LogError::Unavailable`] (it may or may not be
//!   stored; a retry with the same event ids is answered from the store),
//!   later appends are refused at once, and the writer recovers by itself
//!   (in place, or by a reopen of the database); its state is
//!   [`Writability`]. `writer` documents the design.
//!
//! # Layout
//!
//! - `envelope`: [`Envelope`], [`NewEvent`], [`ExpectedVersion`], [`Head`], [`Hash`].
//! - `error`: [`LogError`], [`AppendError`], [`Conflict`], [`CodecError`].
//! - `codec`: the one place that knows the stored byte format (bincode 2
//!   behind a format byte) and upcasts older records.
//! - `backend`: [`LogBackend`], the narrow storage contract (what a backend
//!   must guarantee), and the [`Commit`] the writer hands it.
//! - `core`: [`EventLog`], the log over any backend: durable-only reads,
//!   subscriptions, appends queued to the writer.
//! - `writer`: the group-commit writer (positions, versions, hash chain,
//!   expected versions and guards, idempotency by event id, durability,
//!   healing after storage failures).
//! - `sled`: the embedded backend, [`SledEventStore`], [`open_db`].
//! - `verify`: the chain and invariant walk used by `srs verify` and the tests.
//! - `import`: [`LogImporter`] and [`rehash`], writing a log recorded
//!   elsewhere with its own positions, times and hashes (`srs import`).
//! - `contract` (feature `testing`): the checks every backend's tests run.

mod backend;
mod codec;
#[cfg(any(test, feature = "testing"))]
pub mod contract;
mod core;
mod envelope;
mod error;
mod import;
mod sled;
mod verify;
mod writer;

use std::pin::Pin;

use async_trait::async_trait;
use futures_util::Stream;
use tokio::sync::watch;

pub use self::core::{EventLog, StoreOptions, Writability, MAX_EVENTS_PER_APPEND, MAX_STREAM_LEN};
pub use self::sled::{create_private_dir, open_db, SledEventStore, LOG_TREE};
pub use backend::{Commit, CommitRecord, LogBackend, Visit, Wake};
pub use codec::{
    decode_envelope, decode_event, decode_payload, decode_record, encode_payload, RawRecord, FORMAT,
};
pub use envelope::{Appended, Envelope, Event, ExpectedVersion, Hash, Head, NewEvent};
pub use error::{AppendError, CodecError, Conflict, LogError, StorageError};
pub use import::{rehash, LogImporter};
pub use verify::{verify, Breach, BreachKind, VerifyReport};
pub use writer::Faults;

/// A live stream of envelopes: first the stored ones from the requested
/// position, then each new commit as it becomes durable. It is pulled, so a
/// slow consumer slows the reads (back-pressure) and never misses an event.
pub type EventStream<E> = Pin<Box<dyn Stream<Item = Result<Envelope<E>, LogError>> + Send>>;

/// The event log as the rest of srs uses it. [`EventLog`] implements it
/// over any [`LogBackend`] (sled is the embedded one); a test double or a
/// wholly different log implements it without touching callers.
#[async_trait]
pub trait EventStore<E: Event>: Send + Sync + 'static {
    /// Appends `events` to `stream` if it is at `expected`. All or nothing.
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
    ) -> Result<Appended, AppendError>;

    /// Appends `events` to `stream` if it is at `expected` **and** every
    /// guard stream is at its expected version, checked in the same commit
    /// (a guard is only read, never written). A guard that moved fails the
    /// append with a [`Conflict`] naming the guard stream. This is how a
    /// decision that rests on another aggregate (a deletion on the legal
    /// holds) stays true when it is written. All or nothing; with no
    /// guards it is [`EventStore::append`].
    ///
    /// The default refuses guards: a backend must check them inside its
    /// commit, or not claim to.
    async fn append_guarded(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Appended, AppendError> {
        if guards.is_empty() {
            return self.append(stream, expected, events).await;
        }
        Err(AppendError::Invalid(
            "this log backend cannot check other streams' versions in an append".into(),
        ))
    }

    /// Up to `max` events from global position `from` (inclusive), durable only.
    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope<E>>, LogError>;

    /// Up to `max` events of `stream` from version `from_version` (inclusive).
    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Envelope<E>>, LogError>;

    /// The stream's current version, `None` if it has no events.
    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError>;

    /// One event by its id, if stored.
    async fn read_event(&self, event_id: uuid::Uuid) -> Result<Option<Envelope<E>>, LogError>;

    /// The durable head.
    fn head(&self) -> Head;

    /// Follows the durable head as it moves.
    fn watch_head(&self) -> watch::Receiver<Head>;

    /// Every event from position `from` (inclusive) on, then new ones as they
    /// commit. Never skips, never repeats.
    fn subscribe(&self, from: u64) -> EventStream<E>;
}
