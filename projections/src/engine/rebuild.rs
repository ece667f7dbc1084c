//! [`Rebuild`]: fresh trees for one or more projections, built in one pass
//! over the log.
//!
//! Each event is read and decoded once and handed to every projection
//! being rebuilt; each projection fills its own new tree and checkpoint.
//! That tree is not served before the swap, and an interrupted rebuild's
//! tree is never current and is dropped on the next start, so unlike a
//! runner a rebuild worker neither commits each read batch nor commits
//! atomically: it folds many read batches into one overlay and commits it
//! when the overlays together exceed [`OVERLAY_BUDGET`] and its own holds
//! at least an equal share of it (and at the end), key by
//! key and then the checkpoint (sled, the store in use, runs one atomic batch at a time
//! across every tree; single writes of several trees run side by side).
//! Counters and rows that many events update reach sled once, and memory
//! stays bounded by the budget.
//!
//! The work is a pipeline: one task reads and decodes the log batch after
//! batch, and each projection has its own worker thread that applies the
//! batches in order, up to [`READ_AHEAD`] batches behind the
//! reader. Nothing waits for the slowest projection at each batch, reading
//! overlaps applying, and the cores share whatever is left to do (sled
//! serialises commits across all trees, so a fixed split of projections
//! over threads would leave a core idle while the other commits). A
//! [`Gate`] lets only as many workers apply at once as there are cores:
//! more would only queue on sled's lock and switch threads. The trees it builds are not served until
//! swapped in: by the running [`ProjectionSet`](super::ProjectionSet)
//! (which first applies whatever the live tree got meanwhile), or by
//! [`rebuild_all`] when nothing is running.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde::Serialize;
use srs_domain::log::{Envelope, Event, EventStore};
use tokio::sync::{mpsc, watch};

use super::overlay::Overlay;
use super::runner::NewGeneration;
use super::status::{ProjectionStatus, RebuildProgress};
use super::{fold_events, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Db;
use crate::store::Generations;

/// What a rebuild did.
#[derive(Clone, Debug, Serialize)]
pub struct RebuildReport {
    /// Events read from the log (once each, whatever the projection count).
    pub events: u64,
    /// The log head the rebuild built to.
    pub target: u64,
    pub elapsed: Duration,
    /// `events / elapsed`.
    pub events_per_sec: f64,
    /// Each projection with the position its new tree reached, or why it
    /// failed (a failed projection keeps its old tree).
    pub projections: Vec<(String, std::result::Result<u64, String>)>,
}

/// Batches a projection's worker may lag behind the reader: enough for
/// the other workers to go on while one commits (the batches are shared
/// by all workers; one holds up to `rebuild_batch_size` decoded events,
/// about a megabyte).
pub const READ_AHEAD: usize = 32;

/// Roughly the memory (bytes) the uncommitted overlays of one rebuild may
/// hold together. Once they exceed it, each projection whose overlay holds
/// at least an equal share of it commits, so the read models that hold
/// little never commit early and the ones that hold much commit seldom.
pub const OVERLAY_BUDGET: usize = 128 << 20;

/// What the overlays of one rebuild hold together, in bytes.
#[derive(Default)]
struct OverlayBytes(AtomicUsize);

impl OverlayBytes {
    /// Records that one overlay went from `before` to `now` bytes.
    fn moved(&self, before: usize, now: usize) {
        if now >= before {
            self.0.fetch_add(now - before, Ordering::Relaxed);
        } else {
            self.0.fetch_sub(before - now, Ordering::Relaxed);
        }
    }

    fn total(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// A counting gate: at most `free` holders at once.
struct Gate {
    free: Mutex<usize>,
    released: Condvar,
}

/// A place through a [`Gate`], given back when dropped.
struct Pass<'a>(&'a Gate);

impl Gate {
    fn new(places: usize) -> Self {
        Gate {
            free: Mutex::new(places.max(1)),
            released: Condvar::new(),
        }
    }

    fn enter(&self) -> Pass<'_> {
        // The count stays whole even if a holder panicked.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .released
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Pass(self)
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.0.released.notify_one();
    }
}

/// One projection of a rebuild: the new generation it fills (dropped
/// and `None` once it failed), and where its progress shows.
struct RebuildTarget<E: Event> {
    projection: Arc<dyn Projection<E>>,
    built: Option<NewGeneration>,
    error: Option<String>,
    progress: Option<watch::Sender<ProjectionStatus>>,
}

/// A rebuild in preparation: fresh trees are created; [`Rebuild::install`] (or a running set)
/// fills them.
pub struct Rebuild<E: Event> {
    store: Arc<dyn EventStore<E>>,
    generations: Generations,
    targets: Vec<RebuildTarget<E>>,
    batch_size: usize,
    overlay_budget: usize,
}

/// A projection to rebuild, with the status its progress goes to.
pub(crate) type ToRebuild<E> = (
    Arc<dyn Projection<E>>,
    Option<watch::Sender<ProjectionStatus>>,
);

/// A tree a rebuild completed, with its projection.
pub(crate) struct Built<E: Event> {
    pub projection: Arc<dyn Projection<E>>,
    pub built: NewGeneration,
}

impl<E: Event> Rebuild<E> {
    /// Creates a fresh tree (a new generation) for each projection.
    pub fn new(
        store: Arc<dyn EventStore<E>>,
        db: impl Into<Db>,
        projections: &[Arc<dyn Projection<E>>],
        batch_size: usize,
    ) -> Result<Self> {
        let generations = Generations::open(&db.into())?;
        Self::prepare(
            store,
            generations,
            projections.iter().map(|p| (p.clone(), None)).collect(),
            batch_size,
        )
    }

    pub(crate) fn prepare(
        store: Arc<dyn EventStore<E>>,
        generations: Generations,
        projections: Vec<ToRebuild<E>>,
        batch_size: usize,
    ) -> Result<Self> {
        let mut targets = Vec::with_capacity(projections.len());
        for (projection, progress) in projections {
            let (tree, generation) = generations.fresh(projection.name())?;
            targets.push(RebuildTarget {
                projection,
                built: Some(NewGeneration {
                    tree,
                    generation,
                    checkpoint: 0,
                }),
                error: None,
                progress,
            });
        }
        Ok(Rebuild {
            store,
            generations,
            targets,
            batch_size: batch_size.max(1),
            overlay_budget: OVERLAY_BUDGET,
        })
    }

    /// Sets the memory (bytes) the projections' uncommitted overlays may
    /// hold together ([`OVERLAY_BUDGET`] by default). A smaller budget
    /// commits more often; the trees built are the same.
    pub fn with_overlay_budget(mut self, bytes: usize) -> Self {
        self.overlay_budget = bytes;
        self
    }

    /// Builds every tree up to the log head as it is now. A projection
    /// whose event fails is left out of the result (its fresh tree is
    /// dropped) and reported; the others go on.
    pub(crate) async fn run(self) -> Result<(RebuildReport, Vec<Built<E>>)> {
        let started = Instant::now();
        let target = self.store.head().position;
        for t in &self.targets {
            let generation = t.built.as_ref().map_or(0, |s| s.generation);
            if let Some(progress) = &t.progress {
                progress.send_modify(|s| {
                    s.rebuild = Some(RebuildProgress {
                        generation,
                        position: 0,
                        target,
                    })
                });
            }
        }
        let Rebuild {
            store,
            generations,
            targets,
            batch_size,
            overlay_budget,
        } = self;
        let gate = Arc::new(Gate::new(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
        ));
        let budget = Budget {
            total: overlay_budget,
            share: overlay_budget / targets.len().max(1),
            held: Arc::new(OverlayBytes::default()),
        };
        let mut workers = Vec::with_capacity(targets.len());
        for t in targets {
            let (tx, rx) = mpsc::channel::<Arc<[Envelope<E>]>>(READ_AHEAD);
            let gate = gate.clone();
            let budget = budget.clone();
            workers.push((
                Some(tx),
                tokio::task::spawn_blocking(move || work(t, rx, &gate, &budget)),
            ));
        }
        let mut next = 1;
        let mut events_read = 0u64;
        while next <= target && workers.iter().any(|(tx, _)| tx.is_some()) {
            let want = (target - next + 1).min(batch_size as u64) as usize;
            let events = store.read_all(next, want).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Err(ProjectionError::Invariant(format!(
                    "the log ends before its head {target}"
                )));
            };
            events_read += events.len() as u64;
            next = last + 1;
            let events: Arc<[Envelope<E>]> = events.into();
            for (tx, _) in &mut workers {
                // A worker that hung up has stopped on an error.
                if let Some(sender) = tx {
                    if sender.send(events.clone()).await.is_err() {
                        *tx = None;
                    }
                }
            }
        }
        // Every worker learns at once that the log is read, so their last
        // commits run side by side rather than one after the other.
        let handles: Vec<_> = workers.into_iter().map(|(_, handle)| handle).collect();
        let mut targets = Vec::with_capacity(handles.len());
        for handle in handles {
            let mut t = handle
                .await
                .map_err(|e| ProjectionError::Invariant(format!("rebuild worker panicked: {e}")))?;
            if t.error.is_some() {
                if let Some(built) = t.built.take() {
                    let generation = built.generation;
                    drop(built);
                    generations.drop_generation(t.projection.name(), generation)?;
                }
            }
            targets.push(t);
        }
        let elapsed = started.elapsed();
        let mut completed = Vec::new();
        let mut projections = Vec::new();
        for t in targets {
            if let Some(progress) = &t.progress {
                progress.send_modify(|s| {
                    s.rebuild = None;
                    if let Some(e) = &t.error {
                        s.last_error = Some(format!("rebuild failed: {e}"));
                    }
                });
            }
            let name = t.projection.name().to_string();
            match (t.built, t.error) {
                (Some(built), None) => {
                    projections.push((name, Ok(built.checkpoint)));
                    completed.push(Built {
                        projection: t.projection,
                        built,
                    });
                }
                (_, error) => projections.push((name, Err(error.unwrap_or_default()))),
            }
        }
        let report = RebuildReport {
            events: events_read,
            target,
            elapsed,
            events_per_sec: events_read as f64 / elapsed.as_secs_f64().max(1e-9),
            projections,
        };
        Ok((report, completed))
    }

    /// Runs the rebuild and makes each completed tree current, dropping the
    /// tree it replaces. Only when nothing serves these projections (see
    /// [`rebuild_all`]).
    pub async fn install(self) -> Result<RebuildReport> {
        let generations = self.generations.clone();
        let (report, built) = self.run().await?;
        for b in built {
            let name = b.projection.name();
            let old = generations.current(name)?;
            generations.set_current(name, b.built.generation)?;
            if let Some(old) = old.filter(|g| *g != b.built.generation) {
                generations.drop_generation(name, old)?;
            }
        }
        Ok(report)
    }
}

/// The overlay memory of one rebuild: see [`OVERLAY_BUDGET`].
#[derive(Clone)]
struct Budget {
    total: usize,
    /// An equal share of `total`: an overlay holding less never commits
    /// before the end.
    share: usize,
    held: Arc<OverlayBytes>,
}

impl Budget {
    /// Whether an overlay holding `bytes` should commit now.
    fn full(&self, bytes: usize) -> bool {
        bytes >= self.share && self.held.total() > self.total
    }
}

/// One projection's worker: folds the batches it is handed, in order,
/// into one overlay and commits it when the [`Budget`] says so, and at
/// the end. Nothing serves the tree before the swap, so committing less
/// often changes nothing a query sees; keys written many times reach sled
/// once. Stops at the first failing event (the error is kept, the tree is
/// left for the caller to drop).
fn work<E: Event>(
    mut t: RebuildTarget<E>,
    mut batches: mpsc::Receiver<Arc<[Envelope<E>]>>,
    gate: &Gate,
    budget: &Budget,
) -> RebuildTarget<E> {
    let Some(built) = &mut t.built else {
        return t;
    };
    let projection = &*t.projection;
    let mut writes = Overlay::for_rebuild(built.tree.clone());
    let mut position = built.checkpoint;
    let mut error = None;
    let commit = |writes: &mut Overlay, built: &mut NewGeneration, position: u64| -> Result<()> {
        projection.before_commit(writes)?;
        let changes = writes.commit_unserved(position, projection.version())?;
        built.checkpoint = position;
        projection.committed(&built.tree, &changes, position);
        Ok(())
    };
    while let Some(events) = batches.blocking_recv() {
        let pass = gate.enter();
        let before = writes.bytes();
        let (reached, stopped) = fold_events(projection, &mut writes, position, &events);
        budget.held.moved(before, writes.bytes());
        position = reached;
        if let Some(stopped) = stopped {
            error = Some(stopped.to_string());
            break;
        }
        if budget.full(writes.bytes()) {
            let before = writes.bytes();
            let committed = commit(&mut writes, built, position);
            budget.held.moved(before, writes.bytes());
            if let Err(e) = committed {
                error = Some(e.to_string());
                break;
            }
        }
        drop(pass);
        if let Some(progress) = &t.progress {
            progress.send_modify(|s| {
                if let Some(r) = &mut s.rebuild {
                    r.position = position;
                }
            });
        }
    }
    // Its overlay is committed or dropped now: the others may hold more.
    budget.held.moved(writes.bytes(), 0);
    if error.is_none() && (position > built.checkpoint || !writes.is_empty()) {
        let _pass = gate.enter();
        if let Err(e) = commit(&mut writes, built, position) {
            error = Some(e.to_string());
        }
    }
    if let Some(error) = error {
        tracing::error!(projection = t.projection.name(), %error, "rebuild failed");
        t.error = Some(error);
    }
    t
}

/// Rebuilds `projections` from the whole log into fresh trees and makes
/// them current, dropping the trees they replace: the offline rebuild of
/// `srs rebuild --all` and of `srs bench rebuild` (its report's
/// `events_per_sec` is the bench's `rebuild_all` figure).
///
/// Nothing may be serving these projections meanwhile (no running
/// [`ProjectionSet`](super::ProjectionSet) over `db`): their old trees are
/// dropped at the end. While `srs serve` runs, use
/// [`ProjectionSet::rebuild_all`](super::ProjectionSet::rebuild_all).
pub async fn rebuild_all<E: Event>(
    store: Arc<dyn EventStore<E>>,
    db: impl Into<Db>,
    projections: &[Arc<dyn Projection<E>>],
    batch_size: usize,
) -> Result<RebuildReport> {
    Rebuild::new(store, db, projections, batch_size)?
        .install()
        .await
}
