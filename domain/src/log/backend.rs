//! [`LogBackend`]: the narrow storage contract under the log.
//!
//! The log's core (`core` and `writer`) does everything that makes it a
//! log: it assigns positions and stream versions, chains the hashes,
//! checks expected versions and guards, answers repeated event ids from
//! the idempotency index, groups appends into commits, moves the durable
//! head only over flushed commits, and heals after a storage failure. A
//! backend only stores what the core hands it and finds it again. sled is
//! one backend (`log::sled`); another (a replicated stream such as NATS
//! JetStream) is a new module implementing this trait, with the core and
//! every caller unchanged.
//!
//! # What a backend must guarantee
//!
//! * **Atomic commit.** [`LogBackend::commit`] stores all of a [`Commit`]
//!   (its records, their stream and id index entries, the streams' new
//!   versions, the new head) or none of it, also across a crash. Readers
//!   of the backend never see part of a commit.
//! * **Durable on flush.** When [`LogBackend::flush`] returns `Ok`, every
//!   commit that returned before the call survives a crash of the process
//!   and of the machine. (A backend whose commit is durable when it
//!   returns, a replicated publish acknowledged by a quorum, makes `flush`
//!   a no-op.) The core acknowledges an append only after that flush.
//! * **Prefix on failure.** After a crash, or after a failed commit and a
//!   reopen, the stored log is the records of a prefix of the commits, in
//!   commit order, each whole: positions stay gapless from 1 and the head
//!   names the last stored record.
//! * **Gapless positions, in order.** The core hands records with
//!   consecutive positions following the head; a backend stores them at
//!   exactly those positions and [`LogBackend::scan`] yields them in
//!   position order. A backend never assigns positions itself (a stream
//!   store with its own sequence must check that its sequence equals the
//!   position, and refuse the commit otherwise).
//! * **One writer.** The core calls `commit` from one thread, one commit at
//!   a time; reads may come from any thread at any time, and see each
//!   commit wholly or not at all.
//! * **Read your commits.** Reads after a commit returned see it (before it
//!   is flushed, too: the core never shows readers more than its durable
//!   head).
//! * **Indexes agree with records.** `position_of`, `stream_version`,
//!   `stream_position` and `stream_positions` answer from the same
//!   committed state as `scan`. A store that cannot write records and
//!   index entries in one atomic unit (a stream of messages with a
//!   separate key-value index) keeps the records as the truth: on open it
//!   rebuilds the index entries of every record after the last indexed
//!   one before it answers, so a crash between the two loses nothing.
//!
//! Storage failures are [`LogError::Storage`]; an I/O error
//! ([`StorageError::Io`]) is treated as temporary (a full disk): the core
//! refuses appends and retries the flush until it succeeds.
//!
//! # Limits and recovery a backend may declare
//!
//! * [`LogBackend::max_commit_records`]: the most records one atomic
//!   commit can hold (a JetStream atomic batch holds at most 1,000
//!   messages). The writer never hands a larger commit, and refuses an
//!   append of more events than that as invalid.
//! * [`LogBackend::max_record_bytes`]: the largest stored record (a
//!   JetStream server's largest message). The writer refuses an append
//!   with a larger event as invalid, writing nothing.
//! * [`LogBackend::resync`]: after a failed commit whose outcome the
//!   backend cannot know (a replicated publish that timed out), a backend
//!   that can find out reads back what is stored (a prefix of the commits,
//!   each whole) and answers the stored head; the writer then resumes from
//!   that head with no reopen. A backend that cannot (sled, whose handle
//!   keeps its first I/O error) keeps the default, and only a reopen
//!   recovers.
//!
//! # Storage shared by several writers
//!
//! A replicated stream may be written by several nodes, each with its own
//! core over its own backend handle. Such a backend:
//!
//! * refuses a commit whose first position is not the one after what
//!   storage holds with [`StorageError::Behind`], storing nothing of it
//!   (a JetStream publish with an expected last sequence does exactly
//!   this). The writer then calls [`LogBackend::catch_up`] and decides the
//!   commit's appends again on the state it read back: expected versions,
//!   guards and event ids are checked against everything stored, so two
//!   nodes never store a decision made on a stale view;
//! * follows storage ([`LogBackend::follow`]): it calls the given `wake`
//!   with a position storage holds whenever another writer's records may
//!   have been stored, and the writer catches up when that position is
//!   past its head, so readers of this node (projections, subscriptions,
//!   `atLeast`) see the other nodes' appends without appending anything;
//! * before the writer answers a conflict on a stale view, it catches up
//!   once and decides again (a conflict is answered only on the state
//!   storage held after the request arrived).
//!
//! [`StorageError::Io`]: super::StorageError::Io
//! [`StorageError::Behind`]: super::StorageError::Behind

use uuid::Uuid;

use super::envelope::Head;
use super::error::LogError;

/// One record of a [`Commit`], already encoded and hashed by the codec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitRecord {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    /// The stored record (see `codec`): the backend keeps these bytes as
    /// they are and hands them back unchanged.
    pub bytes: Vec<u8>,
}

/// What one commit writes, all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// New records, at consecutive positions following the stored ones.
    /// Each is indexed by its stream and version and by its event id.
    pub records: Vec<CommitRecord>,
    /// The new version of each stream the records extend (once per stream).
    pub streams: Vec<(String, u64)>,
    /// The new head (the last record's position and hash); `None` leaves
    /// the stored head as it is (an import writes it with its last commit).
    pub head: Option<Head>,
}

impl Commit {
    /// Whether the commit writes nothing.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.streams.is_empty() && self.head.is_none()
    }
}

/// What [`LogBackend::scan`] calls with each record (its position and
/// stored bytes): `Ok(true)` to go on, `Ok(false)` to stop.
pub type Visit<'a> = dyn FnMut(u64, &[u8]) -> Result<bool, LogError> + 'a;

/// Where the log's records and indexes are stored (see the module docs
/// for what an implementation must guarantee). Synchronous: the core calls
/// it from its writer threads and from blocking reads.
pub trait LogBackend: Send + Sync + 'static {
    /// The stored head: the last committed record's position and hash
    /// (`Head::default()` for an empty log). A malformed head is
    /// [`LogError::Corrupt`].
    fn head(&self) -> Result<Head, LogError>;

    /// Calls `visit` with each stored record from position `from` to `to`
    /// (both inclusive), in position order, until `visit` returns
    /// `Ok(false)` or an error (returned as is). A position that is not
    /// stored is skipped: the caller sees the gap.
    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError>;

    /// The position of the record with `event_id`, if stored.
    fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError>;

    /// The stream's last committed version (`None`: no such stream).
    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError>;

    /// The position of version `version` of `stream`, if stored.
    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>, LogError>;

    /// The positions of `stream`'s versions from `from_version` on, in
    /// version order, at most `max`.
    fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<u64>, LogError>;

    /// Stores `commit` atomically (see the module docs). On an error the
    /// backend may hold part of it in memory: the core writes nothing more
    /// through this handle until it is reopened.
    fn commit(&self, commit: Commit) -> Result<(), LogError>;

    /// Makes every commit that returned before this call durable.
    fn flush(&self) -> Result<(), LogError>;

    /// The most records one [`Commit`] may hold (see the module docs).
    fn max_commit_records(&self) -> usize {
        usize::MAX
    }

    /// The most bytes one stored record may take (see the module docs).
    fn max_record_bytes(&self) -> usize {
        usize::MAX
    }

    /// After a failed commit: brings this handle back to what storage
    /// holds (records, indexes and head of a prefix of the commits, each
    /// whole) and returns the stored head; an error while storage is still
    /// out of reach. `None`: this backend cannot, only a reopen recovers.
    fn resync(&self) -> Option<Result<Head, LogError>> {
        None
    }

    /// Whether other writers may append to this storage (see "Storage
    /// shared by several writers" in the module docs). When they may, the
    /// backend calls `wake(position)` whenever storage holds records up
    /// to `position` that this handle may not have read, for as long as it
    /// lives, and answers `true`. The default: this handle is storage's
    /// only writer.
    fn follow(&self, wake: Wake) -> bool {
        let _ = wake;
        false
    }

    /// Reads back what other writers stored past this handle's head, at
    /// least up to position `stored` (a position storage is known to hold:
    /// one a wake named, or the one after a head a commit was refused
    /// behind; a replicated store's own "last position" may lag what it
    /// acknowledged), records and index entries, whole commits only, and
    /// returns the new head. Called by the writer's apply thread only,
    /// between its commits. The default: nothing else writes, the head is
    /// this handle's.
    fn catch_up(&self, stored: u64) -> Result<Head, LogError> {
        let _ = stored;
        self.head()
    }
}

/// What a backend that follows storage calls with a position storage
/// holds (see [`LogBackend::follow`]).
pub type Wake = std::sync::Arc<dyn Fn(u64) + Send + Sync>;

/// Reads one stored record through [`LogBackend::scan`], decoded by
/// `decode` (`None`: not stored).
pub(crate) fn read_record<T>(
    backend: &(impl LogBackend + ?Sized),
    position: u64,
    decode: impl Fn(&[u8]) -> Result<T, LogError>,
) -> Result<Option<T>, LogError> {
    let mut found = None;
    backend.scan(position, position, &mut |_, bytes| {
        found = Some(decode(bytes)?);
        Ok(false)
    })?;
    Ok(found)
}
