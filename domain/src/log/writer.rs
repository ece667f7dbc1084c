//! The group-commit writer: one **apply** thread and one **flush** thread
//! over a [`LogBackend`].
//!
//! Appends are queued to a single **apply** thread. It takes every request
//! waiting in the queue (group commit), checks each one's expected version
//! (and its guards', see `EventStore::append_guarded`) and idempotency
//! against the stored state plus what earlier requests of the same group
//! will write, assigns positions and versions, chains the
//! hashes, and hands everything (events, stream index, stream heads, id
//! index, head) to the backend as one [`Commit`]. It then hands the group's answers to
//! the **flush** thread and goes on with the next group. The flush thread
//! takes every group handed to it so far, calls the backend's `flush` once (which
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
//! ([`EventLog::watch_writability`]). What follows holds for any backend;
//! the sled specifics are where sled is named.
//!
//! [`EventLog::watch_writability`]: super::EventLog::watch_writability
//!
//! * **A failed flush.** Every request waiting for that flush, and every one
//!   applied behind it, is answered [`LogError::Unavailable`]: its events
//!   are committed in the backend's memory but not known to be on disk, so they
//!   **may or may not** be stored. The durable head does not move, so no
//!   reader sees them. New appends are refused at once with the same error
//!   (nothing is applied on top). The flush thread retries the flush with
//!   backoff (50 ms doubling to 2 s); the first one that succeeds makes
//!   every applied batch durable: the durable head moves over them (they
//!   were applied gapless, in order) and appends are taken again. A client
//!   that retries a refused append with the same event ids then gets the
//!   stored answer (`deduplicated`), or a fresh append if it was not stored.
//! * **A failed commit.** The backend may have applied part of the batch in memory,
//!   so this handle can no longer be trusted to write: it refuses every later
//!   append for good, and only reopening the database recovers (sled then
//!   reads back from disk a prefix of the commits, each whole or absent).
//!   A backend that can find out what storage holds ([`LogBackend::resync`],
//!   a replicated stream whose publish timed out) is asked to, with the same
//!   backoff, until it answers: the writer resumes from the stored head it
//!   returns (the failed commit stored whole, or not at all), with no reopen.
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
//! # Storage shared with other writers
//!
//! Over a backend that other writers append to (several nodes on one
//! replicated stream, see [`LogBackend::follow`]) the apply thread also
//! catches up: when the backend wakes it with a position past its head,
//! between groups, it reads back what the others stored and hands the new
//! head to the flush thread, which publishes it in order (readers see the
//! other nodes' appends). A commit refused as behind
//! ([`StorageError::Behind`]: nothing of it stored) is followed by a
//! catch-up and the same group is decided again, up to [`MAX_REPLANS`]
//! times; a group that answered a conflict is decided again once after a
//! catch-up, so no conflict is answered on a view the others had moved.
//!
//! [`Faults`] injects commit and flush failures (tests and drills).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::backend::{read_record, Commit, CommitRecord, LogBackend, Wake};
use super::codec::{self, encode_record, RecordFields};
use super::core::{StoreOptions, Writability};
use super::envelope::{Appended, ExpectedVersion, Head};
use super::error::{AppendError, Conflict, LogError, StorageError};
use crate::actor::Actor;
use crate::time::Clock;

/// The first wait before retrying a failed flush; it doubles up to
/// [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// How many times one group is decided again because another writer of
/// the same storage appended first, before its appends are answered
/// unavailable (retry with the same event ids).
const MAX_REPLANS: usize = 32;

/// How often an idle flush thread checks that sled still takes writes.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// What the write probe writes (and removes) in the data directory.
const PROBE_BYTES: usize = 1024 * 1024;
const PROBE_FILE: &str = ".srs-write-probe";

/// Fault injection: makes the writer's next applies or flushes fail as a
/// full disk does (`ENOSPC`), before the backend is called. Shared through
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

    fn no_space(what: &str) -> LogError {
        let os = std::io::Error::from_raw_os_error(28);
        LogError::Storage(StorageError::Io(std::io::Error::new(
            os.kind(),
            format!("{os} (injected into the {what})"),
        )))
    }
}

/// An event whose payload the caller already encoded (encoding happens on
/// the caller's task, not on the writer thread).
pub(super) struct Prepared {
    pub(super) event_id: Uuid,
    pub(super) actor: Actor,
    pub(super) correlation_id: Uuid,
    pub(super) causation_id: Option<Uuid>,
    pub(super) event_type: &'static str,
    pub(super) payload: Vec<u8>,
}

/// What the apply thread takes from its queue.
pub(super) enum Job {
    Append(Request),
    /// Storage shared with other writers holds records past this handle's
    /// head (see [`LogBackend::follow`]): catch up.
    Wake,
}

/// The writer's queue, shared with the wake of a backend that follows
/// storage; `None` once the log is closing (dropping the last sender lets
/// the apply thread finish).
pub(super) type Queue = Arc<std::sync::Mutex<Option<mpsc::Sender<Job>>>>;

pub(super) struct Request {
    pub(super) stream: String,
    pub(super) expected: ExpectedVersion,
    pub(super) events: Vec<Prepared>,
    /// Other streams that must be at these versions (read, not written).
    pub(super) guards: Vec<(String, ExpectedVersion)>,
    pub(super) reply: Reply,
}

/// A started writer: the durable head and the writability to watch, the
/// queue that takes requests, the threads to join once the queue is
/// closed, and whether other writers append to the same storage.
pub(super) struct Started {
    pub(super) head: watch::Receiver<Head>,
    pub(super) health: watch::Receiver<Writability>,
    pub(super) queue: Queue,
    pub(super) threads: Vec<JoinHandle<()>>,
    pub(super) shared: bool,
}

/// Starts the threads of a writer over `backend` whose stored head is
/// `head`.
pub(super) fn start(
    backend: Arc<dyn LogBackend>,
    head: Head,
    options: StoreOptions,
) -> std::io::Result<Started> {
    let (head_tx, head_rx) = watch::channel(head);
    let (queue_tx, queue_rx) = mpsc::channel();
    let queue: Queue = Arc::new(std::sync::Mutex::new(Some(queue_tx)));
    let (flush_tx, flush_rx) = mpsc::channel();
    let (health_tx, health_rx) = watch::channel(Writability::Writable);
    let control = Arc::new(Control {
        failed: AtomicBool::new(false),
        resynced: std::sync::Mutex::new(None),
        applied: AtomicU64::new(head.position),
        wake_queued: AtomicBool::new(false),
        wanted: AtomicU64::new(head.position),
        health: health_tx,
        faults: options.faults.clone(),
        probe_dir: options.probe_dir.clone(),
    });
    let follows = backend.follow(wake(&queue, &control));
    let apply = {
        let backend = backend.clone();
        let clock = options.clock.clone();
        let control = control.clone();
        let max_group = options
            .max_group_events
            .max(1)
            .min(backend.max_commit_records().max(1));
        std::thread::Builder::new()
            .name("srs-log-apply".into())
            .spawn(move || {
                crate::priority::background_thread();
                run_apply(
                    Apply {
                        backend,
                        clock,
                        max_group_events: max_group,
                        follows,
                        control,
                        flush: flush_tx,
                    },
                    head,
                    queue_rx,
                )
            })?
    };
    let flush = std::thread::Builder::new()
        .name("srs-log-flush".into())
        .spawn(move || {
            crate::priority::background_thread();
            run_flush(backend, flush_rx, head_tx, control)
        })?;
    Ok(Started {
        head: head_rx,
        health: health_rx,
        queue,
        threads: vec![apply, flush],
        shared: follows,
    })
}

/// What a backend that follows storage calls: queues one [`Job::Wake`]
/// when `position` is past what the apply thread has, unless one is
/// queued already.
fn wake(queue: &Queue, control: &Arc<Control>) -> Wake {
    let queue = Arc::downgrade(queue);
    let control = control.clone();
    Arc::new(move |position| {
        control.wanted.fetch_max(position, Ordering::AcqRel);
        if position <= control.applied.load(Ordering::Acquire)
            || control.wake_queued.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let Some(queue) = queue.upgrade() else {
            return;
        };
        let queued = queue.lock();
        if let Ok(Some(sender)) = queued.as_deref() {
            let _ = sender.send(Job::Wake);
        }
    })
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

pub(super) type Reply = oneshot::Sender<Result<Appended, AppendError>>;

/// State shared by the two writer threads.
struct Control {
    /// Set while appends are refused; the apply thread then applies nothing.
    failed: AtomicBool,
    /// The stored head a backend's `resync` answered after a failed
    /// commit: the apply thread resumes from it.
    resynced: std::sync::Mutex<Option<Head>>,
    /// The position the apply thread has applied or caught up to.
    applied: AtomicU64,
    /// Whether a [`Job::Wake`] is queued or a catch-up is wanted.
    wake_queued: AtomicBool,
    /// The highest position storage is known to hold (from the backend's
    /// wakes and from commits refused as behind).
    wanted: AtomicU64,
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

    fn take_resynced(&self) -> Option<Head> {
        self.resynced.lock().ok().and_then(|mut head| head.take())
    }

    fn recovered(&self) {
        self.failed.store(false, Ordering::Release);
        self.health.send_replace(Writability::Writable);
    }

    fn commit(&self, backend: &dyn LogBackend, commit: Commit) -> Result<(), LogError> {
        match &self.faults {
            Some(faults) if Faults::take(&faults.applies) => Err(Faults::no_space("apply")),
            _ => backend.commit(commit),
        }
    }

    fn flush(&self, backend: &dyn LogBackend) -> Result<(), LogError> {
        match &self.faults {
            Some(faults) if Faults::take(&faults.flushes) => Err(Faults::no_space("flush")),
            _ => backend.flush(),
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

/// An error as a reason inside [`LogError::Unavailable`] (an unavailable
/// error is not wrapped twice).
fn describe(error: &LogError) -> String {
    match error {
        LogError::Unavailable { reason } => reason.clone(),
        other => other.to_string(),
    }
}

fn refuse_all(answers: impl IntoIterator<Item = Reply>, error: impl Fn() -> LogError) {
    for reply in answers {
        let _ = reply.send(Err(error().into()));
    }
}

/// What the apply thread works with.
struct Apply {
    backend: Arc<dyn LogBackend>,
    clock: Arc<dyn Clock>,
    max_group_events: usize,
    /// Whether other writers may append to the storage (see
    /// [`LogBackend::follow`]).
    follows: bool,
    control: Arc<Control>,
    flush: mpsc::Sender<Stage>,
}

impl Apply {
    /// Reads back what other writers stored past `head` and, if storage
    /// moved, hands the new head to the flush thread (it publishes it in
    /// order after the groups applied before) so readers see it.
    fn catch_up(&self, head: &mut Head) -> Result<(), LogError> {
        // Cleared first: a wake after this point queues another catch-up.
        self.control.wake_queued.store(false, Ordering::Release);
        let stored = self
            .backend
            .catch_up(self.control.wanted.load(Ordering::Acquire))?;
        if stored.position > head.position {
            *head = stored;
            self.control
                .applied
                .store(stored.position, Ordering::Release);
            let _ = self.flush.send(Stage::Applied(Applied {
                head: stored,
                answers: Vec::new(),
            }));
        }
        Ok(())
    }

    /// Decides every request of `group` on the stored state from `head`
    /// and commits what they write, deciding again on what storage holds
    /// when another writer appended first. Returns each request's outcome
    /// and the new head; an error when the commit failed (the handle is
    /// then broken, see the module docs) or when catching up failed
    /// (nothing was stored: `Ok` with every outcome unavailable).
    fn decide_and_commit(
        &self,
        group: &[Request],
        head: &mut Head,
        limit: usize,
    ) -> Result<Vec<Result<Appended, AppendError>>, LogError> {
        let mut replans = 0;
        let mut conflicts_checked = !self.follows;
        loop {
            let now = self.clock.now();
            let mut commit = Commit::default();
            let mut pending = Pending::default();
            let mut next = *head;
            let outcomes: Vec<_> = group
                .iter()
                .map(|request| {
                    if request.events.len() > limit {
                        Err(AppendError::Invalid(format!(
                            "this log stores at most {limit} events in one append"
                        )))
                    } else {
                        plan(
                            &*self.backend,
                            &mut pending,
                            &mut next,
                            &mut commit,
                            now,
                            request,
                        )
                    }
                })
                .collect();
            // A conflict is answered on what storage holds now, not on a
            // view another writer may have moved: catch up once, and
            // decide again if storage moved.
            if !conflicts_checked
                && outcomes
                    .iter()
                    .any(|o| matches!(o, Err(AppendError::Conflict(_))))
            {
                conflicts_checked = true;
                let before = *head;
                match self.catch_up(head) {
                    Ok(()) if *head != before => continue,
                    Ok(()) => {}
                    Err(e) => return Ok(unavailable_all(group.len(), &e)),
                }
            }
            if next == *head {
                return Ok(outcomes);
            }
            commit.streams = pending.versions.into_iter().collect();
            commit.head = Some(next);
            match self.control.commit(&*self.backend, commit) {
                Ok(()) => {
                    *head = next;
                    self.control.applied.store(next.position, Ordering::Release);
                    return Ok(outcomes);
                }
                Err(LogError::Storage(StorageError::Behind { stored, .. }))
                    if replans < MAX_REPLANS =>
                {
                    // Nothing of the commit was stored: read what the other
                    // writer stored (at least the position after the head,
                    // up to where storage said it ends) and decide again.
                    replans += 1;
                    let stored = stored.unwrap_or(0).max(head.position + 1);
                    self.control.wanted.fetch_max(stored, Ordering::AcqRel);
                    if let Err(e) = self.catch_up(head) {
                        return Ok(unavailable_all(group.len(), &e));
                    }
                }
                Err(LogError::Storage(StorageError::Behind { head: at, .. })) => {
                    return Ok(unavailable_all(
                        group.len(),
                        &LogError::Unavailable {
                            reason: format!(
                                "other writers appended first {MAX_REPLANS} times in a row (last past position {at})"
                            ),
                        },
                    ));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Every outcome of a group that was not stored because `error` kept it
/// from being decided.
fn unavailable_all(count: usize, error: &LogError) -> Vec<Result<Appended, AppendError>> {
    (0..count)
        .map(|_| {
            Err(AppendError::Log(LogError::Unavailable {
                reason: describe(error),
            }))
        })
        .collect()
}

fn run_apply(apply: Apply, mut head: Head, queue: mpsc::Receiver<Job>) {
    let backend = &apply.backend;
    let control = &apply.control;
    // After a failed apply sled's memory may hold part of the batch: this
    // handle never applies again (only a reopen recovers), unless the
    // backend resyncs (then the flush thread hands over the stored head).
    let mut broken = false;
    let limit = backend.max_commit_records().max(1);
    // A request that did not fit in the previous group's commit.
    let mut carry: Option<Request> = None;
    loop {
        let first = match carry.take() {
            Some(request) => Some(request),
            None => match queue.recv() {
                Ok(Job::Append(request)) => Some(request),
                Ok(Job::Wake) => None,
                Err(_) => break,
            },
        };
        let mut group = Vec::new();
        if let Some(first) = first {
            let mut events = first.events.len();
            group.push(first);
            while events < apply.max_group_events {
                match queue.try_recv() {
                    Ok(Job::Append(request)) => {
                        if events + request.events.len() > limit {
                            carry = Some(request);
                            break;
                        }
                        events += request.events.len();
                        group.push(request);
                    }
                    // Handled below: the flag says a catch-up is wanted.
                    Ok(Job::Wake) => {}
                    Err(_) => break,
                }
            }
        }
        if broken {
            if let Some(stored) = control.take_resynced() {
                head = stored;
                control.applied.store(head.position, Ordering::Release);
                broken = false;
            }
        }
        if broken || control.failed.load(Ordering::Acquire) {
            refuse_all(group.into_iter().map(|r| r.reply), || control.unavailable());
            continue;
        }
        if apply.follows && control.wake_queued.load(Ordering::Acquire) {
            if let Err(e) = apply.catch_up(&mut head) {
                // The next commit finds out again (storage refuses a commit
                // that is not next); readers keep the last head meanwhile.
                tracing::debug!(error = %e, "catching up with the shared log failed");
            }
        }
        if group.is_empty() {
            continue;
        }

        let outcomes = match apply.decide_and_commit(&group, &mut head, limit) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                let reason = format!("applying a log batch failed: {}", describe(&e));
                tracing::error!(error = %e, "applying a log batch failed; appends are refused until storage answers again or the database is reopened");
                broken = true;
                control.fail(reason);
                refuse_all(group.into_iter().map(|r| r.reply), || control.unavailable());
                let _ = apply.flush.send(Stage::ApplyFailed);
                continue;
            }
        };
        let answers = group.into_iter().map(|r| r.reply).zip(outcomes).collect();
        if let Err(mpsc::SendError(Stage::Applied(applied))) =
            apply.flush.send(Stage::Applied(Applied { head, answers }))
        {
            refuse_all(applied.answers.into_iter().map(|(reply, _)| reply), || {
                LogError::WriterStopped
            });
        }
    }
}

fn run_flush(
    backend: Arc<dyn LogBackend>,
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
                if let Err(e) = backend.flush() {
                    tracing::error!(error = %e, "storage failed a write in the background; appends are refused while the flush is retried");
                    control.fail(format!("flushing the log failed: {e}"));
                    match recover(&*backend, &stages, &head_tx, &control, durable, false) {
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
            if let Err(e) = control.flush(&*backend) {
                tracing::error!(error = %e, "flushing the log failed; appends are refused while the flush is retried");
                control.fail(format!("flushing the log failed: {e}"));
                refuse_all(
                    groups
                        .into_iter()
                        .flat_map(|g| g.answers)
                        .map(|(reply, _)| reply),
                    || control.unavailable(),
                );
                match recover(&*backend, &stages, &head_tx, &control, target, apply_failed) {
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
        if apply_failed && recover(&*backend, &stages, &head_tx, &control, durable, true).is_none()
        {
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
    backend: &dyn LogBackend,
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
        let mut resyncs = false;
        let reason = if broken {
            let resynced = backend.resync();
            resyncs = resynced.is_some();
            match resynced {
                Some(Ok(stored)) if stored.position >= applied.position => {
                    // The apply thread resumes from the stored head; the
                    // failed commit is in it whole, or not at all.
                    if let Ok(mut resynced) = control.resynced.lock() {
                        *resynced = Some(stored);
                    }
                    head_tx.send_replace(stored);
                    control.recovered();
                    tracing::info!(
                        attempts,
                        head = stored.position,
                        "the log is writable again (storage answered after a failed commit)"
                    );
                    return Some(stored);
                }
                Some(Ok(stored)) => format!(
                    "storage holds the log up to position {} but {} was acknowledged",
                    stored.position, applied.position
                ),
                Some(Err(e)) => format!(
                    "applying a log batch failed; storage still fails: {}",
                    describe(&e)
                ),
                None => control
                    .health
                    .borrow()
                    .reason()
                    .unwrap_or("applying a log batch failed")
                    .to_owned(),
            }
        } else {
            match control.flush(backend) {
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
        // A backend that resyncs recovers in place: a reopen would not help.
        let health = if !resyncs && control.probe() {
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
/// adds its writes to `commit`. On refusal nothing is added.
fn plan(
    backend: &dyn LogBackend,
    pending: &mut Pending,
    next: &mut Head,
    commit: &mut Commit,
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
        if let Some(found) = lookup_id(backend, pending, event.event_id)? {
            known.push((event.event_id, found));
        }
    }
    // Part of the ids known is a misuse, unless the request was decided on
    // a state that has moved (a caller that decided on a stale view and
    // included some events another request stored meanwhile): that is a
    // conflict, and the caller decides again on the new state.
    let partly_known = !known.is_empty() && known.len() != request.events.len();
    if partly_known {
        check_versions(backend, pending, stream, request)?;
        return Err(AppendError::Invalid(format!(
            "{} of {} event ids are already stored; resend exactly the stored append or only new events",
            known.len(),
            request.events.len()
        )));
    }
    if !known.is_empty() {
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

    let actual = check_versions(backend, pending, stream, request)?;

    // Encode everything first so a failure leaves `commit` and `next` untouched.
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
        let most = backend.max_record_bytes();
        if bytes.len() > most {
            return Err(AppendError::Invalid(format!(
                "event {} takes {} bytes stored, over the {most} bytes this log stores in one record",
                event.event_id,
                bytes.len()
            )));
        }
        writes.push((position, version, event.event_id, bytes));
        cursor = Head { position, hash };
    }

    let mut positions = Vec::with_capacity(writes.len());
    for (position, version, event_id, bytes) in writes {
        commit.records.push(CommitRecord {
            position,
            stream: stream.to_owned(),
            version,
            event_id,
            bytes,
        });
        pending
            .ids
            .insert(event_id, (position, version, stream.to_owned()));
        positions.push(position);
    }
    pending.versions.insert(stream.to_owned(), version);
    *next = cursor;
    Ok(Appended {
        positions,
        stream_version: version,
        deduplicated: false,
    })
}

/// Checks the request's guards and expected version against the stored
/// state as the group so far leaves it (a request earlier in the group
/// that moved a stream counts); the stream's version.
fn check_versions(
    backend: &dyn LogBackend,
    pending: &Pending,
    stream: &str,
    request: &Request,
) -> Result<Option<u64>, AppendError> {
    for (guard, expected) in &request.guards {
        let actual = stream_version_now(backend, pending, guard)?;
        if !expected.admits(actual) {
            return Err(Conflict {
                stream: guard.clone(),
                expected: *expected,
                actual,
            }
            .into());
        }
    }
    let actual = stream_version_now(backend, pending, stream)?;
    if !request.expected.admits(actual) {
        return Err(Conflict {
            stream: stream.to_owned(),
            expected: request.expected,
            actual,
        }
        .into());
    }
    Ok(actual)
}

/// A stream's version as the group being built leaves it (`None`: no stream).
fn stream_version_now(
    backend: &dyn LogBackend,
    pending: &Pending,
    stream: &str,
) -> Result<Option<u64>, LogError> {
    match pending.versions.get(stream) {
        Some(&v) => Ok(Some(v)),
        None => backend.stream_version(stream),
    }
}

/// Where an event id is stored: (position, version, stream).
fn lookup_id(
    backend: &dyn LogBackend,
    pending: &Pending,
    event_id: Uuid,
) -> Result<Option<(u64, u64, String)>, LogError> {
    if let Some(found) = pending.ids.get(&event_id) {
        return Ok(Some(found.clone()));
    }
    let Some(position) = backend.position_of(event_id)? else {
        return Ok(None);
    };
    let raw = read_record(backend, position, |bytes| {
        codec::decode_record(position, bytes).map_err(LogError::from)
    })?
    .ok_or_else(|| LogError::Corrupt(format!("position {position} is missing")))?;
    Ok(Some((position, raw.version, raw.stream)))
}
