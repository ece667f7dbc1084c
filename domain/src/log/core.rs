//! [`EventLog`]: the log over any [`LogBackend`]. Readers stop at the
//! durable head; appends go to the group-commit writer (`writer`), which
//! assigns positions, chains hashes, checks versions and idempotency, and
//! moves the durable head only after the backend's flush.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::backend::{read_record, LogBackend};
use super::codec::{decode_envelope, decode_record, encode_payload, RawRecord};
use super::envelope::{Appended, Envelope, Event, ExpectedVersion, Head, NewEvent};
use super::error::{AppendError, CodecError, LogError, StorageError};
use super::writer::{self, Faults, Job, Prepared, Queue, Request};
use super::{EventStore, EventStream};
use crate::time::{Clock, SystemClock};

/// The most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

/// The longest stream name accepted.
pub const MAX_STREAM_LEN: usize = 256;

/// How many events a subscription reads at a time.
const SUBSCRIBE_BATCH: usize = 512;

/// Tuning and injected dependencies of an [`EventLog`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The backend's page cache size (sled).
    pub cache_capacity_bytes: u64,
    /// The most events the writer puts in one commit (one flush).
    pub max_group_events: usize,
    /// Where `recorded_at` comes from.
    pub clock: Arc<dyn Clock>,
    /// The directory a failed writer probes to tell "the disk is still
    /// full" from "the disk takes writes but this handle does not"
    /// ([`Writability::NeedsReopen`]). `SledEventStore::open` sets it to
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

/// Whether the log takes appends (see `writer`).
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

/// The event log over a backend. Cheap to clone; all clones share one
/// writer. The writer stops when the last clone is dropped, after
/// answering what it took.
pub struct EventLog<E> {
    reader: Arc<Reader>,
    writer: Arc<Writer>,
    _payload: PhantomData<fn() -> E>,
}

impl<E> Clone for EventLog<E> {
    fn clone(&self) -> Self {
        EventLog {
            reader: self.reader.clone(),
            writer: self.writer.clone(),
            _payload: PhantomData,
        }
    }
}

pub(super) struct Reader {
    backend: Arc<dyn LogBackend>,
    head: watch::Receiver<Head>,
    health: watch::Receiver<Writability>,
    shared: bool,
}

struct Writer {
    queue: Queue,
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

impl<E: Event> EventLog<E> {
    /// The log stored in `backend`, resumed from its stored head; starts
    /// the writer's threads.
    pub fn new(backend: Arc<dyn LogBackend>, options: StoreOptions) -> Result<Self, LogError> {
        let head = backend.head()?;
        let started = writer::start(backend.clone(), head, options)
            .map_err(|e| LogError::Storage(StorageError::Io(e)))?;
        Ok(EventLog {
            reader: Arc::new(Reader {
                backend,
                head: started.head,
                health: started.health,
                shared: started.shared,
            }),
            writer: Arc::new(Writer {
                queue: started.queue,
                threads: Mutex::new(started.threads),
            }),
            _payload: PhantomData,
        })
    }

    /// Whether other writers (other nodes) append to this log's storage:
    /// then a position past this handle's head may be stored already, and
    /// the head gets there as this handle follows storage.
    pub fn is_shared(&self) -> bool {
        self.reader.shared
    }

    /// The backend the log is stored in (verification and tooling).
    pub fn backend(&self) -> Arc<dyn LogBackend> {
        self.reader.backend.clone()
    }

    /// Raw records from `from`, payloads still encoded, durable only.
    pub fn read_raw(&self, from: u64, max: usize) -> Result<Vec<RawRecord>, LogError> {
        self.reader.read_range(from, max, decode_record)
    }

    /// Whether the log takes appends now.
    pub fn writability(&self) -> Writability {
        self.reader.health.borrow().clone()
    }

    /// Follows [`EventLog::writability`] as it changes.
    pub fn watch_writability(&self) -> watch::Receiver<Writability> {
        self.reader.health.clone()
    }

    /// Flushes the backend (the writer already flushes every commit; this
    /// is for shutdown paths that wrote beside the log).
    pub fn flush(&self) -> Result<(), LogError> {
        self.reader.backend.flush()
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
            queue
                .send(Job::Append(request))
                .map_err(|_| LogError::WriterStopped)?;
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
        self.backend.scan(from, to, &mut |position, bytes| {
            if position != expected {
                return Err(LogError::Corrupt(format!("position {expected} is missing")));
            }
            out.push(decode(position, bytes)?);
            expected += 1;
            Ok(true)
        })?;
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
        match read_record(&*self.backend, position, |bytes| {
            decode(position, bytes).map_err(LogError::from)
        })? {
            Some(found) => Ok(Some(found)),
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
        let mut positions = self
            .backend
            .stream_positions(stream, from_version.max(1), max)?;
        // Versions of a commit applied but not yet flushed are not shown.
        if let Some(cut) = positions.iter().position(|&p| p > head) {
            positions.truncate(cut);
        }
        Ok(positions)
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        let Some(mut version) = self.backend.stream_version(stream)? else {
            return Ok(None);
        };
        // The stored version may belong to a commit applied but not yet
        // flushed; answer with the last durable version.
        let head = self.durable_head().position;
        while version > 0 {
            let position = self
                .backend
                .stream_position(stream, version)?
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
            .backend
            .position_of(event_id)?
            .filter(|&p| p <= self.durable_head().position))
    }
}

#[async_trait]
impl<E: Event> EventStore<E> for EventLog<E> {
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
        self.reader.read_range(from, max, decode_envelope)
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
                let batch = self
                    .reader
                    .read_range(self.next, SUBSCRIBE_BATCH, decode_envelope);
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
    if stream.is_empty() || stream.len() > MAX_STREAM_LEN {
        return Err(AppendError::Invalid(format!(
            "stream name must be 1 to {MAX_STREAM_LEN} bytes"
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
