//! [`ProjectionSet`]: the running projections over one log and database.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use srs_domain::log::{Event, EventStore};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::overlay::stored_checkpoint;
use super::rebuild::{Rebuild, RebuildReport};
use super::runner::{Command, Runner, RunningProjection};
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
        let generations = Generations::open(&db.into())?;
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
            let runner = Runner {
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
        Ok(ProjectionSet {
            inner: Arc::new(Inner {
                store,
                generations,
                running,
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

    /// One projection's status, with lag against the current log head.
    pub fn status(&self, name: &str) -> Result<ProjectionStatus> {
        let head = self.inner.store.head().position;
        Ok(snapshot(self.slot(name)?, head))
    }

    /// Every projection's status, by name.
    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        let head = self.inner.store.head().position;
        self.inner
            .running
            .values()
            .map(|s| snapshot(s, head))
            .collect()
    }

    /// Whether every projection is live and at the log head (`/readyz`).
    pub fn ready(&self) -> bool {
        self.statuses()
            .iter()
            .all(|s| s.state == RunnerState::Live && s.lag == 0)
    }

    /// Returns once the chosen projections have applied `position`
    /// (read-your-writes), or fails after `timeout`, or at once for a
    /// failed projection. Wakes on each commit; never polls.
    pub async fn wait_for(
        &self,
        which: Which<'_>,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let slots: Vec<&Arc<RunningProjection<E>>> = match which {
            Which::All => self.inner.running.values().collect(),
            Which::Only(names) => names
                .iter()
                .map(|n| {
                    self.inner
                        .running
                        .get(n)
                        .ok_or_else(|| WaitError::Unknown(n.to_string()))
                })
                .collect::<Result<_, _>>()?,
        };
        for slot in slots {
            let mut rx = slot.status.subscribe();
            let reached = tokio::time::timeout_at(
                deadline,
                rx.wait_for(|s| s.position >= position || s.state == RunnerState::Failed),
            )
            .await
            .map(|r| r.map(|s| (s.position, s.last_error.clone())));
            let name = slot.projection.name().to_string();
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

fn snapshot<E: Event>(slot: &RunningProjection<E>, head: u64) -> ProjectionStatus {
    let mut s = slot.status.borrow().clone();
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
