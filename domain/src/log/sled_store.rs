//! The embedded backend: one sled tree and a two-stage writer.
//!
//! Appends are queued to a single **apply** thread. It takes every request
//! waiting in the queue (group commit), checks each one's expected version
//! (and its guards', see `EventStore::append_guarded`) and idempotency
//! against the stored state plus what earlier requests of the same group
//! will write, assigns positions and versions, chains the
//! hashes, and writes everything (events, stream index, stream heads, id
//! index, head) in one `apply_batch`. It then hands the group's answers to
//! the **flush** thread and goes on with the next group. The flush thread
//! takes every group handed to it so far, calls sled's `flush` once (which
//! makes durable everything applied before the call), moves the durable head
//! and only then answers each request. Applying the next group while the
//! previous one is being flushed keeps the disk busy; a slow fsync makes the
//! groups larger instead of making writers wait twice.
//!
//! A request that is refused (conflict, invalid) writes nothing and does not
//! affect the others of its group; its answer, like every answer, is sent
//! after the flush that follows it, so no one is told anything about state
//! that a crash could still take back.
//!
//! # When storage fails (a full disk)
//!
//! The writer never stops for good and never acknowledges what is not
//! durable. Its state is published as [`Writability`]
//! ([`SledEventStore::watch_writability`]).
//!
//! * **A failed flush.** Every request waiting for that flush, and every one
//!   applied behind it, is answered [`LogError::Unavailable`]: its events
//!   are applied in sled's memory but not known to be on disk, so they
//!   **may or may not** be stored. The durable head does not move, so no
//!   reader sees them. New appends are refused at once with the same error
//!   (nothing is applied on top). The flush thread retries the flush with
//!   backoff (50 ms doubling to 2 s); the first one that succeeds makes
//!   every applied batch durable: the durable head moves over them (they
//!   were applied gapless, in order) and appends are taken again. A client
//!   that retries a refused append with the same event ids then gets the
//!   stored answer (`deduplicated`), or a fresh append if it was not stored.
//! * **A failed apply.** sled may have applied part of the batch in memory,
//!   so this handle can no longer be trusted to write: it refuses every later
//!   append for good, and only reopening the database recovers (sled then
//!   reads back from disk a prefix of the batches, each whole or absent).
//! * **sled keeps its first I/O error.** sled 0.34 records the first failed
//!   write of its log as a global error and fails every later write and
//!   flush of that `Db` with it, even once space is back. So after a real
//!   full disk the retried flush keeps failing; when a write probe in the
//!   data directory ([`StoreOptions::probe_dir`], 1 MiB written, synced and
//!   removed) succeeds while the flush still fails, the state becomes
//!   [`Writability::NeedsReopen`]: the disk takes writes, this handle will
//!   not. `srs serve` then closes every handle of the database and opens it
//!   again in the same process (see `api/src/server.rs`); reopening recovers
//!   the log from disk (durable head = the stored head, positions gapless)
//!   and writes resume.
//!
//! Either way the invariants hold: readers stop at the durable head, the
//! head only moves over batches that a flush made durable, and positions
//! stay gapless because an applied batch is either made durable in place or
//! dropped whole by recovery before anything is applied after it.
//!
//! * **A write sled failed in the background** (its periodic flush, a read
//!   model's batch in another tree of the same database) poisons the handle
//!   just the same; an idle flush thread checks every second (a flush with
//!   nothing new costs nothing) so the state is reported, and healed,
//!   without waiting for an append to trip on it.
//!
//! [`Faults`] injects apply and flush failures (tests and drills).

use std::collections::{HashMap, VecDeque};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::codec::{
    self, decode_envelope, decode_record, encode_payload, encode_record, RawRecord, RecordFields,
};
use super::envelope::{Appended, Envelope, Event, ExpectedVersion, Head, NewEvent};
use super::error::{AppendError, CodecError, Conflict, LogError};
use super::keys;
use super::{EventStore, EventStream};
use crate::actor::Actor;
use crate::time::{Clock, SystemClock};

/// The name of the sled tree that holds the log.
pub const LOG_TREE: &str = "log";

/// The most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

/// How many events a subscription reads from the tree at a time.
const SUBSCRIBE_BATCH: usize = 512;

/// The first wait before retrying a failed flush; it doubles up to
/// [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How often an idle flush thread checks that sled still takes writes.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the write probe writes (and removes) in the data directory.
const PROBE_BYTES: usize = 1024 * 1024;
const PROBE_FILE: &str = ".srs-write-probe";

/// Tuning and injected dependencies of a [`SledEventStore`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled's page cache size.
    pub cache_capacity_bytes: u64,
    /// The most events the writer puts in one batch (one flush).
    pub max_group_events: usize,
    /// Where `recorded_at` comes from.
    pub clock: Arc<dyn Clock>,
    /// The directory a failed writer probes to tell "the disk is still
    /// full" from "the disk takes writes but this handle does not"
    /// ([`Writability::NeedsReopen`]). [`SledEventStore::open`] sets it to
    /// the database's directory; without one the writer keeps retrying.
    pub probe_dir: Option<PathBuf>,
    /// Injected storage failures (tests and drills); `None` in production.
    pub faults: Option<Arc<Faults>>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity_bytes: 512 * 1024 * 1024,
            max_group_events: 8_192,
            clock: Arc::new(SystemClock),
            probe_dir: None,
            faults: None,
        }
    }
}

/// Whether the log takes appends (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Writability {
    /// Appends are taken.
    Writable,
    /// A write to storage failed; appends are refused with
    /// [`LogError::Unavailable`] while the writer retries by itself.
    Retrying { reason: String },
    /// The data directory takes writes again but this database handle
    /// refuses them for good: close every handle and open the database
    /// again (`srs serve` does so by itself).
    NeedsReopen { reason: String },
}

impl Writability {
    /// Whether appends are taken.
    pub fn is_writable(&self) -> bool {
        matches!(self, Writability::Writable)
    }

    /// Why appends are refused, when they are.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Writability::Writable => None,
            Writability::Retrying { reason } | Writability::NeedsReopen { reason } => Some(reason),
        }
    }
}

/// Fault injection: makes the writer's next applies or flushes fail as a
/// full disk does (`ENOSPC`), before sled is called. Shared through
/// [`StoreOptions::faults`]; counts are consumed one per attempt, so
/// `fail_next_flushes(u64::MAX)` fails until `fail_next_flushes(0)`.
#[derive(Debug, Default)]
pub struct Faults {
    applies: AtomicU64,
    flushes: AtomicU64,
    probes: AtomicBool,
}

impl Faults {
    /// Fails the next `n` batch applies (a failed apply needs a reopen).
    pub fn fail_next_applies(&self, n: u64) {
        self.applies.store(n, Ordering::SeqCst);
    }

    /// Fails the next `n` flushes, retries included.
    pub fn fail_next_flushes(&self, n: u64) {
        self.flushes.store(n, Ordering::SeqCst);
    }

    /// Makes the write probe fail (the disk is still full) while `fail`.
    pub fn fail_probes(&self, fail: bool) {
        self.probes.store(fail, Ordering::SeqCst);
    }

    fn take(counter: &AtomicU64) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn no_space(what: &str) -> sled::Error {
        let os = std::io::Error::from_raw_os_error(28);
        sled::Error::Io(std::io::Error::new(
            os.kind(),
            format!("{os} (injected into the {what})"),
        ))
    }
}

/// Opens (or creates) the sled database in `dir`. A directory held by
/// another process gives [`LogError::Locked`].
///
/// A directory it creates is mode 0700, and sled's files in it (`db`,
/// `conf`, `snap.*`, `blobs/`) are made 0600 (0700 for directories) after
/// the open: the log is readable by its owner only. sled creates later
/// snapshot files with the process's umask; the 0700 directory keeps them
/// private. Files that cannot be changed (a read-only copy, another owner)
/// are left as they are.
pub fn open_db(dir: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, LogError> {
    if !dir.exists() {
        create_private_dir(dir).map_err(|e| LogError::Storage(sled::Error::Io(e)))?;
    }
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity_bytes)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if is_lock_error(&io) => LogError::Locked {
                path: PathBuf::from(dir),
            },
            other => LogError::Storage(other),
        })?;
    make_sled_files_private(dir);
    Ok(db)
}

/// Creates `dir` and its missing parents with mode 0700 (on Unix). An
/// existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn make_sled_files_private(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours =
                name == "db" || name == "conf" || name == "blobs" || name.starts_with("snap.");
            let Ok(meta) = entry.metadata() else { continue };
            if !ours {
                continue;
            }
            let mode = if meta.is_dir() { 0o700 } else { 0o600 };
            if meta.permissions().mode() & 0o777 != mode {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock")
}

/// The sled event log. Cheap to clone; all clones share one writer. The
/// writer stops when the last clone is dropped, after answering what it took.
pub struct SledEventStore<E> {
    reader: Arc<Reader>,
    writer: Arc<Writer>,
    _payload: PhantomData<fn() -> E>,
}

impl<E> Clone for SledEventStore<E> {
    fn clone(&self) -> Self {
        SledEventStore {
            reader: self.reader.clone(),
            writer: self.writer.clone(),
            _payload: PhantomData,
        }
    }
}

struct Reader {
    db: sled::Db,
    tree: sled::Tree,
    head: watch::Receiver<Head>,
    health: watch::Receiver<Writability>,
}

struct Writer {
    queue: Mutex<Option<mpsc::Sender<Request>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue lets the thread finish what it holds and exit.
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        // The apply thread exits first and closes the flush queue, so the
        // flush thread answers everything it holds before it exits.
        if let Ok(mut threads) = self.threads.lock() {
            for handle in threads.drain(..) {
                let _ = handle.join();
            }
        }
    }
}

/// An event whose payload the caller already encoded (encoding happens on
/// the caller's task, not on the writer thread).
struct Prepared {
    event_id: Uuid,
    actor: Actor,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    event_type: &'static str,
    payload: Vec<u8>,
}

struct Request {
    stream: String,
    expected: ExpectedVersion,
    events: Vec<Prepared>,
    /// Other streams that must be at these versions (read, not written).
    guards: Vec<(String, ExpectedVersion)>,
    reply: Reply,
}

impl<E: Event> SledEventStore<E> {
    /// Opens the log in directory `dir`, creating it if needed, and resumes
    /// from what is stored there.
    pub fn open(dir: &Path, mut options: StoreOptions) -> Result<Self, LogError> {
        let db = open_db(dir, options.cache_capacity_bytes)?;
        options.probe_dir.get_or_insert_with(|| dir.to_path_buf());
        Self::with_db(db, options)
    }

    /// Uses an already opened database (shared with the projections).
    pub fn with_db(db: sled::Db, options: StoreOptions) -> Result<Self, LogError> {
        let tree = db.open_tree(LOG_TREE)?;
        let head = match tree.get(keys::HEAD)? {
            Some(value) => keys::decode_head(&value)
                .ok_or_else(|| LogError::Corrupt("the head record is malformed".into()))?,
            None => Head::default(),
        };
        let (head_tx, head_rx) = watch::channel(head);
        let (queue_tx, queue_rx) = mpsc::channel();
        let (flush_tx, flush_rx) = mpsc::channel();
        let (health_tx, health_rx) = watch::channel(Writability::Writable);
        let control = Arc::new(Control {
            failed: AtomicBool::new(false),
            health: health_tx,
            faults: options.faults.clone(),
            probe_dir: options.probe_dir.clone(),
        });
        let spawn_error = |e| LogError::Storage(sled::Error::Io(e));
        let apply = {
            let tree = tree.clone();
            let clock = options.clock.clone();
            let control = control.clone();
            let max_group = options.max_group_events.max(1);
            std::thread::Builder::new()
                .name("srs-log-apply".into())
                .spawn(move || run_apply(tree, head, queue_rx, flush_tx, clock, max_group, control))
                .map_err(spawn_error)?
        };
        let flush = {
            let db = db.clone();
            std::thread::Builder::new()
                .name("srs-log-flush".into())
                .spawn(move || run_flush(db, flush_rx, head_tx, control))
                .map_err(spawn_error)?
        };
        Ok(SledEventStore {
            reader: Arc::new(Reader {
                db,
                tree,
                head: head_rx,
                health: health_rx,
            }),
            writer: Arc::new(Writer {
                queue: Mutex::new(Some(queue_tx)),
                threads: Mutex::new(vec![apply, flush]),
            }),
            _payload: PhantomData,
        })
    }

    /// The database, for components that keep their own trees beside the log.
    pub fn db(&self) -> &sled::Db {
        &self.reader.db
    }

    /// The log tree (for verification and tooling).
    pub fn tree(&self) -> &sled::Tree {
        &self.reader.tree
    }

    /// Raw records from `from`, payloads still encoded, durable only.
    pub fn read_raw(&self, from: u64, max: usize) -> Result<Vec<RawRecord>, LogError> {
        self.reader.read_raw(from, max)
    }

    /// Whether the log takes appends now.
    pub fn writability(&self) -> Writability {
        self.reader.health.borrow().clone()
    }

    /// Follows [`SledEventStore::writability`] as it changes.
    pub fn watch_writability(&self) -> watch::Receiver<Writability> {
        self.reader.health.clone()
    }

    /// Flushes sled (the writer already flushes every batch; this is for
    /// shutdown paths that wrote other trees).
    pub fn flush(&self) -> Result<(), LogError> {
        self.reader.db.flush()?;
        Ok(())
    }

    /// Queues one append (with its guards) to the writer and waits for
    /// its answer, which comes after the flush that made it durable.
    async fn enqueue(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Appended, AppendError> {
        validate_append(stream, events.len())?;
        for (guard, _) in &guards {
            validate_append(guard, 1)?;
        }
        let events = Self::prepare(events)?;
        let (reply, answer) = oneshot::channel();
        let request = Request {
            stream: stream.to_owned(),
            expected,
            events,
            guards,
            reply,
        };
        {
            let queue = self
                .writer
                .queue
                .lock()
                .map_err(|_| LogError::WriterStopped)?;
            let queue = queue.as_ref().ok_or(LogError::WriterStopped)?;
            queue.send(request).map_err(|_| LogError::WriterStopped)?;
        }
        answer.await.map_err(|_| LogError::WriterStopped)?
    }

    fn prepare(events: Vec<NewEvent<E>>) -> Result<Vec<Prepared>, AppendError> {
        events
            .into_iter()
            .map(|event| {
                Ok(Prepared {
                    event_id: event.event_id,
                    event_type: event.payload.event_type(),
                    payload: encode_payload(&event.payload)?,
                    actor: event.actor,
                    correlation_id: event.correlation_id,
                    causation_id: event.causation_id,
                })
            })
            .collect()
    }
}

impl Reader {
    fn durable_head(&self) -> Head {
        *self.head.borrow()
    }

    fn read_raw(&self, from: u64, max: usize) -> Result<Vec<RawRecord>, LogError> {
        self.read_range(from, max, decode_record)
    }

    /// Durable events from `from` (at most `max`), decoded straight from
    /// the stored bytes.
    fn read_envelopes<E: Event>(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<Envelope<E>>, LogError> {
        self.read_range(from, max, decode_envelope)
    }

    /// Up to `max` durable records from `from`, each decoded by `decode`;
    /// a gap in the positions is corruption.
    fn read_range<T>(
        &self,
        from: u64,
        max: usize,
        decode: impl Fn(u64, &[u8]) -> Result<T, CodecError>,
    ) -> Result<Vec<T>, LogError> {
        let from = from.max(1);
        let head = self.durable_head().position;
        if from > head || max == 0 {
            return Ok(Vec::new());
        }
        let to = head.min(from.saturating_add(max as u64 - 1));
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        let mut expected = from;
        for entry in self.tree.range(keys::event(from)..=keys::event(to)) {
            let (key, value) = entry?;
            let position = keys::event_position(&key)
                .ok_or_else(|| LogError::Corrupt("malformed event key".into()))?;
            if position != expected {
                return Err(LogError::Corrupt(format!("position {expected} is missing")));
            }
            out.push(decode(position, &value)?);
            expected += 1;
        }
        if expected != to + 1 {
            return Err(LogError::Corrupt(format!("position {expected} is missing")));
        }
        Ok(out)
    }

    /// The durable record at `position` decoded by `decode` (`None` past
    /// the head).
    fn read_one<T>(
        &self,
        position: u64,
        decode: impl Fn(u64, &[u8]) -> Result<T, CodecError>,
    ) -> Result<Option<T>, LogError> {
        if position == 0 || position > self.durable_head().position {
            return Ok(None);
        }
        match self.tree.get(keys::event(position))? {
            Some(bytes) => Ok(Some(decode(position, &bytes)?)),
            None => Err(LogError::Corrupt(format!("position {position} is missing"))),
        }
    }

    fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<u64>, LogError> {
        let head = self.durable_head().position;
        let prefix = keys::stream_prefix(stream);
        let start = keys::stream_event(stream, from_version.max(1));
        let mut positions = Vec::new();
        for entry in self.tree.range(start..) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) || key.len() != prefix.len() + 8 || positions.len() >= max
            {
                break;
            }
            let position = keys::u64_value(&value)
                .ok_or_else(|| LogError::Corrupt(format!("bad index entry for {stream}")))?;
            if position > head {
                break;
            }
            positions.push(position);
        }
        Ok(positions)
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        let Some(value) = self.tree.get(keys::stream_head(stream))? else {
            return Ok(None);
        };
        let mut version = keys::u64_value(&value)
            .ok_or_else(|| LogError::Corrupt(format!("bad stream head for {stream}")))?;
        // The stored head may belong to a batch applied but not yet flushed;
        // answer with the last durable version.
        let head = self.durable_head().position;
        while version > 0 {
            let position = self
                .tree
                .get(keys::stream_event(stream, version))?
                .and_then(|v| keys::u64_value(&v))
                .ok_or_else(|| LogError::Corrupt(format!("{stream} version {version} missing")))?;
            if position <= head {
                return Ok(Some(version));
            }
            version -= 1;
        }
        Ok(None)
    }

    fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError> {
        Ok(self
            .tree
            .get(keys::event_id(event_id))?
            .and_then(|v| keys::u64_value(&v))
            .filter(|&p| p <= self.durable_head().position))
    }
}

#[async_trait]
impl<E: Event> EventStore<E> for SledEventStore<E> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
    ) -> Result<Appended, AppendError> {
        self.enqueue(stream, expected, events, Vec::new()).await
    }

    async fn append_guarded(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Appended, AppendError> {
        self.enqueue(stream, expected, events, guards).await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope<E>>, LogError> {
        self.reader.read_envelopes(from, max)
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Envelope<E>>, LogError> {
        let positions = self.reader.stream_positions(stream, from_version, max)?;
        let mut out = Vec::with_capacity(positions.len());
        for position in positions {
            let envelope = self
                .reader
                .read_one(position, decode_envelope)?
                .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
            out.push(envelope);
        }
        Ok(out)
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        self.reader.stream_version(stream)
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<Envelope<E>>, LogError> {
        match self.reader.position_of(event_id)? {
            Some(position) => self.reader.read_one(position, decode_envelope),
            None => Ok(None),
        }
    }

    fn head(&self) -> Head {
        self.reader.durable_head()
    }

    fn watch_head(&self) -> watch::Receiver<Head> {
        self.reader.head.clone()
    }

    fn subscribe(&self, from: u64) -> EventStream<E> {
        let state = Subscription::<E> {
            reader: self.reader.clone(),
            head: self.reader.head.clone(),
            next: from.max(1),
            buffer: VecDeque::new(),
            failed: false,
        };
        Box::pin(futures_util::stream::unfold(state, Subscription::next))
    }
}

/// The state of one subscription. It reads lazily: the next batch is read
/// only when the consumer has taken the previous one.
struct Subscription<E> {
    reader: Arc<Reader>,
    head: watch::Receiver<Head>,
    next: u64,
    buffer: VecDeque<Envelope<E>>,
    failed: bool,
}

impl<E: Event> Subscription<E> {
    async fn next(mut self) -> Option<(Result<Envelope<E>, LogError>, Self)> {
        loop {
            if self.failed {
                return None;
            }
            if let Some(envelope) = self.buffer.pop_front() {
                return Some((Ok(envelope), self));
            }
            // Mark the current head seen before reading, so a commit that
            // lands after this point wakes `changed()` below.
            let head = self.head.borrow_and_update().position;
            if head >= self.next {
                let batch = self.reader.read_envelopes(self.next, SUBSCRIBE_BATCH);
                match batch {
                    Ok(envelopes) => {
                        self.next += envelopes.len() as u64;
                        self.buffer.extend(envelopes);
                    }
                    Err(e) => {
                        self.failed = true;
                        return Some((Err(e), self));
                    }
                }
                continue;
            }
            if self.head.changed().await.is_err() {
                // The store was closed; nothing more will come.
                return None;
            }
        }
    }
}

fn validate_append(stream: &str, count: usize) -> Result<(), AppendError> {
    if stream.is_empty() || stream.len() > keys::MAX_STREAM_LEN {
        return Err(AppendError::Invalid(format!(
            "stream name must be 1 to {} bytes",
            keys::MAX_STREAM_LEN
        )));
    }
    if stream.chars().any(char::is_control) {
        return Err(AppendError::Invalid(
            "stream name must not contain control characters".into(),
        ));
    }
    if count == 0 {
        return Err(AppendError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    if count > MAX_EVENTS_PER_APPEND {
        return Err(AppendError::Invalid(format!(
            "an append may carry at most {MAX_EVENTS_PER_APPEND} events"
        )));
    }
    Ok(())
}

/// What the requests of the group being built will have written, so later
/// requests of the same group see earlier ones.
#[derive(Default)]
struct Pending {
    versions: HashMap<String, u64>,
    ids: HashMap<Uuid, (u64, u64, String)>,
}

/// One applied group on its way to the flush thread.
struct Applied {
    /// The head after this group's batch (unchanged if it wrote nothing).
    head: Head,
    answers: Vec<(Reply, Result<Appended, AppendError>)>,
}

/// What the apply thread hands the flush thread, in apply order.
enum Stage {
    Applied(Applied),
    /// An apply failed: this handle writes no more (see the module docs).
    ApplyFailed,
}

type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// State shared by the two writer threads.
struct Control {
    /// Set while appends are refused; the apply thread then applies nothing.
    failed: AtomicBool,
    health: watch::Sender<Writability>,
    faults: Option<Arc<Faults>>,
    probe_dir: Option<PathBuf>,
}

impl Control {
    /// The error refused appends get while the writer is failed.
    fn unavailable(&self) -> LogError {
        let reason = self
            .health
            .borrow()
            .reason()
            .unwrap_or("a write to storage failed")
            .to_owned();
        LogError::Unavailable { reason }
    }

    fn fail(&self, reason: String) {
        self.health.send_replace(Writability::Retrying { reason });
        self.failed.store(true, Ordering::Release);
    }

    fn recovered(&self) {
        self.failed.store(false, Ordering::Release);
        self.health.send_replace(Writability::Writable);
    }

    fn apply(&self, tree: &sled::Tree, batch: sled::Batch) -> sled::Result<()> {
        match &self.faults {
            Some(faults) if Faults::take(&faults.applies) => Err(Faults::no_space("apply")),
            _ => tree.apply_batch(batch),
        }
    }

    fn flush(&self, db: &sled::Db) -> sled::Result<()> {
        match &self.faults {
            Some(faults) if Faults::take(&faults.flushes) => Err(Faults::no_space("flush")),
            _ => db.flush().map(drop),
        }
    }

    /// Whether the probe directory takes a synced write of [`PROBE_BYTES`].
    fn probe(&self) -> bool {
        let Some(dir) = &self.probe_dir else {
            return false;
        };
        if let Some(faults) = &self.faults {
            if faults.probes.load(Ordering::SeqCst) {
                return false;
            }
        }
        let path = dir.join(PROBE_FILE);
        let written = (|| {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&path)?;
            file.write_all(&vec![0u8; PROBE_BYTES])?;
            file.sync_all()
        })();
        let _ = std::fs::remove_file(&path);
        written.is_ok()
    }
}

fn refuse_all(answers: impl IntoIterator<Item = Reply>, error: impl Fn() -> LogError) {
    for reply in answers {
        let _ = reply.send(Err(error().into()));
    }
}

fn run_apply(
    tree: sled::Tree,
    mut head: Head,
    queue: mpsc::Receiver<Request>,
    flush: mpsc::Sender<Stage>,
    clock: Arc<dyn Clock>,
    max_group_events: usize,
    control: Arc<Control>,
) {
    // After a failed apply sled's memory may hold part of the batch: this
    // handle never applies again (only a reopen recovers).
    let mut broken = false;
    while let Ok(first) = queue.recv() {
        let mut events = first.events.len();
        let mut group = vec![first];
        while events < max_group_events {
            match queue.try_recv() {
                Ok(request) => {
                    events += request.events.len();
                    group.push(request);
                }
                Err(_) => break,
            }
        }
        if broken || control.failed.load(Ordering::Acquire) {
            refuse_all(group.into_iter().map(|r| r.reply), || control.unavailable());
            continue;
        }

        let now = clock.now();
        let mut batch = sled::Batch::default();
        let mut pending = Pending::default();
        let mut next = head;
        let mut answers = Vec::with_capacity(group.len());
        for request in group {
            let outcome = plan(&tree, &mut pending, &mut next, &mut batch, now, &request);
            answers.push((request.reply, outcome));
        }

        if next != head {
            batch.insert(keys::HEAD, &keys::head_value(&next)[..]);
            if let Err(e) = control.apply(&tree, batch) {
                let reason = format!("applying a log batch failed: {e}");
                tracing::error!(error = %e, "applying a log batch failed; appends are refused until the database is reopened");
                broken = true;
                control.fail(reason);
                refuse_all(answers.into_iter().map(|(reply, _)| reply), || {
                    control.unavailable()
                });
                let _ = flush.send(Stage::ApplyFailed);
                continue;
            }
            head = next;
        }
        if let Err(mpsc::SendError(Stage::Applied(applied))) =
            flush.send(Stage::Applied(Applied { head, answers }))
        {
            refuse_all(applied.answers.into_iter().map(|(reply, _)| reply), || {
                LogError::WriterStopped
            });
        }
    }
}

fn run_flush(
    db: sled::Db,
    stages: mpsc::Receiver<Stage>,
    head_tx: watch::Sender<Head>,
    control: Arc<Control>,
) {
    let mut durable = *head_tx.borrow();
    loop {
        let first = match stages.recv_timeout(IDLE_CHECK) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: a flush with nothing new is free, and it surfaces a
                // write sled failed in the background (its own periodic
                // flush, another tree's batch) before an append trips on it.
                if let Err(e) = db.flush() {
                    tracing::error!(error = %e, "sled failed a write in the background; appends are refused while the flush is retried");
                    control.fail(format!("flushing the log failed: {e}"));
                    match recover(&db, &stages, &head_tx, &control, durable, false) {
                        Some(head) => durable = head,
                        None => return,
                    }
                }
                continue;
            }
        };
        let mut groups = Vec::new();
        let mut apply_failed = false;
        for stage in std::iter::once(first).chain(stages.try_iter()) {
            match stage {
                Stage::Applied(group) => groups.push(group),
                Stage::ApplyFailed => {
                    apply_failed = true;
                    break;
                }
            }
        }
        // Groups arrive in apply order, so the last one holds the newest head.
        let target = groups.last().map_or(durable, |g| g.head);
        if target != durable {
            // Everything applied before this call is durable when it returns.
            if let Err(e) = control.flush(&db) {
                tracing::error!(error = %e, "flushing the log failed; appends are refused while the flush is retried");
                control.fail(format!("flushing the log failed: {e}"));
                refuse_all(
                    groups
                        .into_iter()
                        .flat_map(|g| g.answers)
                        .map(|(reply, _)| reply),
                    || control.unavailable(),
                );
                match recover(&db, &stages, &head_tx, &control, target, apply_failed) {
                    Some(head) => {
                        durable = head;
                        continue;
                    }
                    None => return,
                }
            }
            durable = target;
            head_tx.send_replace(durable);
        }
        for (reply, outcome) in groups.into_iter().flat_map(|g| g.answers) {
            // A requester that went away still had its events written.
            let _ = reply.send(outcome);
        }
        if apply_failed && recover(&db, &stages, &head_tx, &control, durable, true).is_none() {
            return;
        }
    }
}

/// Retries the flush with backoff until it succeeds (then the durable head
/// moves to `applied`, the newest applied head, and it is returned), or
/// until the store is closed (`None`). Groups that reach the flush thread
/// meanwhile were applied before the failure was seen: they are refused
/// like the others and made durable by the flush that succeeds. After a
/// failed apply (`broken`) no flush is trusted to recover this handle: only
/// the probe runs, to report [`Writability::NeedsReopen`].
fn recover(
    db: &sled::Db,
    stages: &mpsc::Receiver<Stage>,
    head_tx: &watch::Sender<Head>,
    control: &Control,
    mut applied: Head,
    mut broken: bool,
) -> Option<Head> {
    control.failed.store(true, Ordering::Release);
    let mut wait = RETRY_MIN;
    let mut attempts = 0u64;
    loop {
        match stages.recv_timeout(wait) {
            Ok(Stage::Applied(group)) => {
                applied = group.head;
                refuse_all(group.answers.into_iter().map(|(reply, _)| reply), || {
                    control.unavailable()
                });
                continue;
            }
            Ok(Stage::ApplyFailed) => {
                broken = true;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return None,
        }
        wait = (wait * 2).min(RETRY_MAX);
        attempts += 1;
        let reason = if broken {
            control
                .health
                .borrow()
                .reason()
                .unwrap_or("applying a log batch failed")
                .to_owned()
        } else {
            match control.flush(db) {
                Ok(()) => {
                    head_tx.send_replace(applied);
                    control.recovered();
                    tracing::info!(
                        attempts,
                        head = applied.position,
                        "the log is writable again"
                    );
                    return Some(applied);
                }
                Err(e) => {
                    tracing::debug!(error = %e, attempts, "retrying the log flush failed");
                    format!("flushing the log failed: {e}")
                }
            }
        };
        let health = if control.probe() {
            Writability::NeedsReopen { reason }
        } else {
            Writability::Retrying { reason }
        };
        if *control.health.borrow() != health {
            if let Writability::NeedsReopen { reason } = &health {
                tracing::warn!(%reason, "the data directory takes writes again but this database handle does not; it must be reopened");
            }
            control.health.send_replace(health);
        }
    }
}

/// Checks one request against the stored state and the group so far, and
/// adds its writes to `batch`. On refusal nothing is added.
fn plan(
    tree: &sled::Tree,
    pending: &mut Pending,
    next: &mut Head,
    batch: &mut sled::Batch,
    now: crate::time::Timestamp,
    request: &Request,
) -> Result<Appended, AppendError> {
    let stream = request.stream.as_str();

    let mut seen = std::collections::HashSet::with_capacity(request.events.len());
    if !request.events.iter().all(|e| seen.insert(e.event_id)) {
        return Err(AppendError::Invalid(
            "the same event id appears twice in one append".into(),
        ));
    }

    // Idempotency: all ids known -> the stored answer; some known -> refuse.
    let mut known = Vec::new();
    for event in &request.events {
        if let Some(found) = lookup_id(tree, pending, event.event_id)? {
            known.push((event.event_id, found));
        }
    }
    if !known.is_empty() {
        if known.len() != request.events.len() {
            return Err(AppendError::Invalid(format!(
                "{} of {} event ids are already stored; resend exactly the stored append or only new events",
                known.len(),
                request.events.len()
            )));
        }
        if let Some((id, (_, _, other))) = known.iter().find(|(_, (_, _, s))| s != stream) {
            return Err(AppendError::Invalid(format!(
                "event id {id} is already stored in stream {other}"
            )));
        }
        let stream_version = known.iter().map(|(_, (_, v, _))| *v).max().unwrap_or(0);
        return Ok(Appended {
            positions: known.into_iter().map(|(_, (p, _, _))| p).collect(),
            stream_version,
            deduplicated: true,
        });
    }

    // Guards: other streams as this group has left them so far (a request
    // earlier in the group that moved a guard stream counts).
    for (guard, expected) in &request.guards {
        let actual = stream_version_now(tree, pending, guard)?;
        if !expected.admits(actual) {
            return Err(Conflict {
                stream: guard.clone(),
                expected: *expected,
                actual,
            }
            .into());
        }
    }

    let actual = stream_version_now(tree, pending, stream)?;
    if !request.expected.admits(actual) {
        return Err(Conflict {
            stream: stream.to_owned(),
            expected: request.expected,
            actual,
        }
        .into());
    }

    // Encode everything first so a failure leaves `batch` and `next` untouched.
    let mut version = actual.unwrap_or(0);
    let mut cursor = *next;
    let mut writes = Vec::with_capacity(request.events.len());
    for event in &request.events {
        let position = cursor.position + 1;
        version += 1;
        let (bytes, hash) = encode_record(
            position,
            &RecordFields {
                stream,
                version,
                event_id: event.event_id,
                recorded_at: now,
                actor: &event.actor,
                correlation_id: event.correlation_id,
                causation_id: event.causation_id,
                event_type: event.event_type,
                payload: &event.payload,
                prev_hash: cursor.hash,
            },
        )?;
        writes.push((position, version, event.event_id, bytes));
        cursor = Head { position, hash };
    }

    let mut positions = Vec::with_capacity(writes.len());
    for (position, version, event_id, bytes) in writes {
        batch.insert(&keys::event(position)[..], bytes);
        batch.insert(
            keys::stream_event(stream, version),
            &position.to_be_bytes()[..],
        );
        batch.insert(&keys::event_id(event_id)[..], &position.to_be_bytes()[..]);
        pending
            .ids
            .insert(event_id, (position, version, stream.to_owned()));
        positions.push(position);
    }
    batch.insert(keys::stream_head(stream), &version.to_be_bytes()[..]);
    pending.versions.insert(stream.to_owned(), version);
    *next = cursor;
    Ok(Appended {
        positions,
        stream_version: version,
        deduplicated: false,
    })
}

/// A stream's version as the group being built leaves it (`None`: no stream).
fn stream_version_now(
    tree: &sled::Tree,
    pending: &Pending,
    stream: &str,
) -> Result<Option<u64>, LogError> {
    match pending.versions.get(stream) {
        Some(&v) => Ok(Some(v)),
        None => tree
            .get(keys::stream_head(stream))?
            .map(|v| {
                keys::u64_value(&v)
                    .ok_or_else(|| LogError::Corrupt(format!("bad stream head for {stream}")))
            })
            .transpose(),
    }
}

/// Where an event id is stored: (position, version, stream).
fn lookup_id(
    tree: &sled::Tree,
    pending: &Pending,
    event_id: Uuid,
) -> Result<Option<(u64, u64, String)>, LogError> {
    if let Some(found) = pending.ids.get(&event_id) {
        return Ok(Some(found.clone()));
    }
    let Some(value) = tree.get(keys::event_id(event_id))? else {
        return Ok(None);
    };
    let position = keys::u64_value(&value)
        .ok_or_else(|| LogError::Corrupt(format!("bad id index entry for {event_id}")))?;
    let bytes = tree
        .get(keys::event(position))?
        .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
    let raw = codec::decode_record(position, &bytes)?;
    Ok(Some((position, raw.version, raw.stream)))
}
