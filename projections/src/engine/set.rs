//! [`ProjectionSet`]: the running projections over one log and database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use srs_domain::log::{Event, EventStore};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::overlay::stored_checkpoint;
use super::reactor::{Reactor, ReactorRunner, RunningReactor};
use super::rebuild::{Rebuild, RebuildReport};
use super::runner::{Command, ProjectionRunner, RunningProjection};
use super::status::{ProjectionStatus, RunnerState};
use super::Projection;
use crate::error::{ProjectionError, Result};
use crate::store::Generations;
use crate::store::{Db, Tree};

/// Tuning of a [`ProjectionSet`].
#[derive(Clone, Debug)]
pub struct SetOptions {
    /// The most events a runner applies per commit.
    pub batch_size: usize,
    /// The most events a rebuild reads per batch.
    pub rebuild_batch_size: usize,
}

impl Default for SetOptions {
    fn default() -> Self {
        SetOptions {
            batch_size: 512,
            rebuild_batch_size: 2048,
        }
    }
}

/// Which projections a [`ProjectionSet::wait_for`] waits on.
#[derive(Clone, Copy, Debug)]
pub enum Which<'a> {
    All,
    Only(&'a [&'a str]),
}

/// Why a [`ProjectionSet::wait_for`] returned without the position.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WaitError {
    /// The projection had not reached the position in time.
    #[error("projection `{name}` is at position {at}, not yet {wanted}")]
    Timeout { name: String, at: u64, wanted: u64 },
    /// The projection is stopped at an event and will not get there.
    #[error("projection `{name}` has failed: {error}")]
    Failed { name: String, error: String },
    #[error("no projection named `{0}`")]
    Unknown(String),
}

struct Inner<E: Event> {
    store: Arc<dyn EventStore<E>>,
    generations: Generations,
    running: BTreeMap<&'static str, Arc<RunningProjection<E>>>,
    reactors: BTreeMap<&'static str, Arc<RunningReactor<E>>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    options: SetOptions,
}

impl<E: Event> Drop for Inner<E> {
    fn drop(&mut self) {
        // Runners hold no reference to the set; tell them to end.
        let _ = self.stop.send(true);
    }
}

/// The projections of one log, each with its runner task, sharing one
/// database. Cheap to clone.
pub struct ProjectionSet<E: Event> {
    inner: Arc<Inner<E>>,
}

impl<E: Event> Clone for ProjectionSet<E> {
    fn clone(&self) -> Self {
        ProjectionSet {
            inner: self.inner.clone(),
        }
    }
}

impl<E: Event> ProjectionSet<E> {
    /// Opens each projection's current tree (rebuilding from position 1 the
    /// ones whose stored version differs from the code's) and starts its
    /// runner. Must be called inside a tokio runtime.
    pub fn start(
        store: Arc<dyn EventStore<E>>,
        db: impl Into<Db>,
        projections: Vec<Arc<dyn Projection<E>>>,
        options: SetOptions,
    ) -> Result<Self> {
        Self::start_with_reactors(store, db, projections, Vec::new(), options)
    }

    /// [`ProjectionSet::start`], and a runner for each of `reactors` from
    /// its checkpoint: they show in the statuses and
    /// [`ProjectionSet::wait_for`] waits for them like for projections.
    pub fn start_with_reactors(
        store: Arc<dyn EventStore<E>>,
        db: impl Into<Db>,
        projections: Vec<Arc<dyn Projection<E>>>,
        reactors: Vec<Arc<dyn Reactor<E>>>,
        options: SetOptions,
    ) -> Result<Self> {
        let db = db.into();
        let generations = Generations::open(&db)?;
        let (stop, _) = watch::channel(false);
        let head = store.head().position;
        let mut running = BTreeMap::new();
        let mut tasks = Vec::new();
        for projection in projections {
            let name = projection.name();
            let opened = generations.open_current(name, projection.version())?;
            let position = stored_checkpoint(&opened.tree)?;
            let state = if opened.rebuilding {
                RunnerState::Rebuilding
            } else {
                RunnerState::CatchingUp
            };
            let (status, _) = watch::channel(ProjectionStatus::new(
                name,
                projection.version(),
                opened.generation,
                position,
                state,
            ));
            let (commands_tx, commands_rx) = mpsc::channel(4);
            let slot = Arc::new(RunningProjection {
                projection,
                tree: RwLock::new((Arc::new(opened.tree), opened.generation)),
                status,
                commands: commands_tx,
            });
            let runner = ProjectionRunner {
                running: slot.clone(),
                store: store.clone(),
                generations: generations.clone(),
                batch_size: options.batch_size.max(1),
                position,
                catch_up_target: head,
                failed: false,
                retired: Vec::new(),
            };
            tasks.push(tokio::spawn(runner.run(commands_rx, stop.subscribe())));
            if running.insert(name, slot).is_some() {
                return Err(ProjectionError::Invariant(format!(
                    "two projections are named `{name}`"
                )));
            }
        }
        let mut reacting = BTreeMap::new();
        for reactor in reactors {
            let name = reactor.name();
            if running.contains_key(name) || reacting.contains_key(name) {
                return Err(ProjectionError::Invariant(format!(
                    "two followers are named `{name}`"
                )));
            }
            let runner =
                ReactorRunner::open(&db, reactor, store.clone(), options.batch_size, head)?;
            reacting.insert(name, runner.running.clone());
            tasks.push(tokio::spawn(runner.run(stop.subscribe())));
        }
        Ok(ProjectionSet {
            inner: Arc::new(Inner {
                store,
                generations,
                running,
                reactors: reacting,
                stop,
                tasks: Mutex::new(tasks),
                options,
            }),
        })
    }

    /// The projections' names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.inner.running.keys().copied().collect()
    }

    fn slot(&self, name: &str) -> Result<&Arc<RunningProjection<E>>> {
        self.inner
            .running
            .get(name)
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_string()))
    }

    /// The current tree of `name`, for queries. Hold it for one query: a
    /// tree replaced by a rebuild is dropped once nobody holds it.
    pub fn tree(&self, name: &str) -> Result<Arc<Tree>> {
        Ok(self.slot(name)?.current())
    }

    /// The reactors' names, sorted.
    pub fn reactor_names(&self) -> Vec<&'static str> {
        self.inner.reactors.keys().copied().collect()
    }

    /// The status of a projection or a reactor: its runner's, whichever it is.
    fn status_sender(&self, name: &str) -> Option<&watch::Sender<ProjectionStatus>> {
        match self.inner.running.get(name) {
            Some(p) => Some(&p.status),
            None => self.inner.reactors.get(name).map(|r| &r.status),
        }
    }

    /// One projection's (or reactor's) status, with lag against the
    /// current log head.
    pub fn status(&self, name: &str) -> Result<ProjectionStatus> {
        let head = self.inner.store.head().position;
        let status = self
            .status_sender(name)
            .ok_or_else(|| ProjectionError::UnknownProjection(name.to_string()))?;
        Ok(snapshot(status, head))
    }

    /// Every projection's status by name, then every reactor's.
    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        let head = self.inner.store.head().position;
        let projections = self.inner.running.values().map(|p| &p.status);
        let reactors = self.inner.reactors.values().map(|r| &r.status);
        projections
            .chain(reactors)
            .map(|s| snapshot(s, head))
            .collect()
    }

    /// The position every projection and reactor has applied (the lowest
    /// of theirs): a read that starts after this call sees every event up
    /// to it, as after `wait_for(Which::All, ..)`.
    pub fn applied(&self) -> u64 {
        let projections = self.inner.running.values().map(|p| &p.status);
        let reactors = self.inner.reactors.values().map(|r| &r.status);
        projections
            .chain(reactors)
            .map(|s| s.borrow().position)
            .min()
            .unwrap_or(0)
    }

    /// Whether every projection and reactor is live and at the log head
    /// (`/readyz`).
    pub fn ready(&self) -> bool {
        self.statuses()
            .iter()
            .all(|s| s.state == RunnerState::Live && s.lag == 0)
    }

    /// Returns once the chosen projections (`Which::All`: every projection
    /// and every reactor) have applied `position` (read-your-writes), or
    /// fails after `timeout`, or at once for a failed projection. Wakes on
    /// each commit; never polls.
    pub async fn wait_for(
        &self,
        which: Which<'_>,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let statuses: Vec<&watch::Sender<ProjectionStatus>> = match which {
            Which::All => {
                let projections = self.inner.running.values().map(|p| &p.status);
                let reactors = self.inner.reactors.values().map(|r| &r.status);
                projections.chain(reactors).collect()
            }
            Which::Only(names) => names
                .iter()
                .map(|n| {
                    self.status_sender(n)
                        .ok_or_else(|| WaitError::Unknown(n.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        for status in statuses {
            let mut rx = status.subscribe();
            let reached = tokio::time::timeout_at(
                deadline,
                rx.wait_for(|s| s.position >= position || s.state == RunnerState::Failed),
            )
            .await
            .map(|r| r.map(|s| (s.position, s.last_error.clone())));
            let name = rx.borrow().name.clone();
            match reached {
                Err(_) => {
                    let at = rx.borrow().position;
                    return Err(WaitError::Timeout {
                        name,
                        at,
                        wanted: position,
                    });
                }
                Ok(Err(_)) => {
                    return Err(WaitError::Failed {
                        name,
                        error: "the runner has stopped".into(),
                    })
                }
                Ok(Ok((at, error))) if at < position => {
                    return Err(WaitError::Failed {
                        name,
                        error: error.unwrap_or_default(),
                    })
                }
                Ok(Ok(_)) => {}
            }
        }
        Ok(())
    }

    /// Rebuilds `name` into a fresh tree while the current one keeps
    /// answering, then swaps it in. Progress shows in the status.
    pub async fn rebuild(&self, name: &str) -> Result<RebuildReport> {
        self.rebuild_many(&[name]).await
    }

    /// Rebuilds every projection in one pass over the log, then swaps each.
    pub async fn rebuild_all(&self) -> Result<RebuildReport> {
        let names = self.names();
        self.rebuild_many(&names).await
    }

    async fn rebuild_many(&self, names: &[&str]) -> Result<RebuildReport> {
        let mut targets = Vec::new();
        for name in names {
            let slot = self.slot(name)?;
            if slot.status.borrow().rebuild.is_some() {
                return Err(ProjectionError::RebuildRunning(name.to_string()));
            }
            targets.push((slot.projection.clone(), Some(slot.status.clone())));
        }
        let rebuild = Rebuild::prepare(
            self.inner.store.clone(),
            self.inner.generations.clone(),
            targets,
            self.inner.options.rebuild_batch_size,
        )?;
        let (mut report, built) = rebuild.run().await?;
        for b in built {
            let name = b.projection.name();
            let slot = self.slot(name)?;
            let (reply, answer) = oneshot::channel();
            let generation = b.built.generation;
            if slot
                .commands
                .send(Command::Swap {
                    built: b.built,
                    reply,
                })
                .await
                .is_err()
            {
                // The runner is gone; the new generation came back with the error.
                self.inner.generations.drop_generation(name, generation)?;
                return Err(ProjectionError::RunnerStopped(name.to_string()));
            }
            let outcome = answer
                .await
                .map_err(|_| ProjectionError::RunnerStopped(name.to_string()))?;
            if let Some(entry) = report.projections.iter_mut().find(|(n, _)| n == name) {
                entry.1 = outcome.map_err(|e| e.to_string());
            }
        }
        Ok(report)
    }

    /// Stops every runner and waits for them to finish their batch.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let tasks = match self.inner.tasks.lock() {
            Ok(mut guard) => std::mem::take(&mut *guard),
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}

fn snapshot(status: &watch::Sender<ProjectionStatus>, head: u64) -> ProjectionStatus {
    let mut s = status.borrow().clone();
    s.head = head.max(s.position);
    s.lag = s.head - s.position;
    if s.rebuild.is_some() && s.state != RunnerState::Failed {
        s.state = RunnerState::Rebuilding;
    }
    if s.lag == 0 && s.state == RunnerState::Live {
        // Nothing to do is not a throughput figure.
        s.events_per_sec = 0.0;
    }
    s
}
