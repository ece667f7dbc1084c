//! [`Rebuild`]: fresh trees for one or more projections, built in one pass
//! over the log.
//!
//! Each event is read and decoded once and handed to every projection
//! being rebuilt (in parallel over the available cores); each projection
//! commits its own tree with its own checkpoint per batch, exactly as a
//! runner does, so an interrupted rebuild leaves consistent (partial) trees
//! that the next start drops. The trees it builds are not served until
//! swapped in: by the running [`ProjectionSet`](super::ProjectionSet)
//! (which first applies whatever the live tree got meanwhile), or by
//! [`rebuild_all`] when nothing is running.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use srs_domain::log::{Envelope, Event, EventStore};
use tokio::sync::watch;

use super::registry::Registry;
use super::runner::Shadow;
use super::status::{ProjectionStatus, RebuildProgress};
use super::{apply_events, Applied, Projection};
use crate::error::{ProjectionError, Result};

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

struct Target<E: Event> {
    projection: Arc<dyn Projection<E>>,
    shadow: Option<Shadow>,
    error: Option<String>,
    progress: Option<watch::Sender<ProjectionStatus>>,
}

/// A rebuild in preparation: fresh trees are created; [`Rebuild::run`]
/// fills them.
pub struct Rebuild<E: Event> {
    store: Arc<dyn EventStore<E>>,
    registry: Registry,
    targets: Vec<Target<E>>,
    batch_size: usize,
}

/// A projection to rebuild, with the status its progress goes to.
pub(crate) type ToRebuild<E> = (
    Arc<dyn Projection<E>>,
    Option<watch::Sender<ProjectionStatus>>,
);

/// A tree a rebuild completed, with its projection.
pub(crate) struct Built<E: Event> {
    pub projection: Arc<dyn Projection<E>>,
    pub shadow: Shadow,
}

impl<E: Event> Rebuild<E> {
    /// Creates a fresh tree (a new generation) for each projection.
    pub fn new(
        store: Arc<dyn EventStore<E>>,
        db: &sled::Db,
        projections: &[Arc<dyn Projection<E>>],
        batch_size: usize,
    ) -> Result<Self> {
        let registry = Registry::open(db)?;
        Self::prepare(
            store,
            registry,
            projections.iter().map(|p| (p.clone(), None)).collect(),
            batch_size,
        )
    }

    pub(crate) fn prepare(
        store: Arc<dyn EventStore<E>>,
        registry: Registry,
        projections: Vec<ToRebuild<E>>,
        batch_size: usize,
    ) -> Result<Self> {
        let mut targets = Vec::with_capacity(projections.len());
        for (projection, progress) in projections {
            let (tree, generation) = registry.fresh(projection.name())?;
            targets.push(Target {
                projection,
                shadow: Some(Shadow {
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
            registry,
            targets,
            batch_size: batch_size.max(1),
        })
    }

    /// Builds every tree up to the log head as it is now. A projection
    /// whose event fails is left out of the result (its fresh tree is
    /// dropped) and reported; the others go on.
    pub(crate) async fn run(mut self) -> Result<(RebuildReport, Vec<Built<E>>)> {
        let started = Instant::now();
        let target = self.store.head().position;
        for t in &self.targets {
            let generation = t.shadow.as_ref().map_or(0, |s| s.generation);
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
        let mut next = 1;
        let mut events_read = 0u64;
        while next <= target && self.targets.iter().any(|t| t.shadow.is_some()) {
            let want = (target - next + 1).min(self.batch_size as u64) as usize;
            let events = self.store.read_all(next, want).await?;
            let Some(last) = events.last().map(|e| e.position) else {
                return Err(ProjectionError::Invariant(format!(
                    "the log ends before its head {target}"
                )));
            };
            events_read += events.len() as u64;
            next = last + 1;
            self.apply_to_all(events).await?;
        }
        let elapsed = started.elapsed();
        let mut built = Vec::new();
        let mut projections = Vec::new();
        for t in self.targets {
            if let Some(progress) = &t.progress {
                progress.send_modify(|s| {
                    s.rebuild = None;
                    if let Some(e) = &t.error {
                        s.last_error = Some(format!("rebuild failed: {e}"));
                    }
                });
            }
            let name = t.projection.name().to_string();
            match (t.shadow, t.error) {
                (Some(shadow), None) => {
                    projections.push((name, Ok(shadow.checkpoint)));
                    built.push(Built {
                        projection: t.projection,
                        shadow,
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
        Ok((report, built))
    }

    /// Runs the rebuild and makes each completed tree current, dropping the
    /// tree it replaces. Only when nothing serves these projections (see
    /// [`rebuild_all`]).
    pub async fn install(self) -> Result<RebuildReport> {
        let registry = self.registry.clone();
        let (report, built) = self.run().await?;
        for b in built {
            let name = b.projection.name();
            let old = registry.current(name)?;
            registry.set_current(name, b.shadow.generation)?;
            if let Some(old) = old.filter(|g| *g != b.shadow.generation) {
                registry.drop_generation(name, old)?;
            }
        }
        Ok(report)
    }

    /// Applies one batch to every target still going, in parallel.
    async fn apply_to_all(&mut self, events: Vec<Envelope<E>>) -> Result<()> {
        let jobs: Vec<Job<E>> = self
            .targets
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.shadow
                    .as_ref()
                    .map(|s| (i, t.projection.clone(), s.tree.clone(), s.checkpoint))
            })
            .collect();
        let results = tokio::task::spawn_blocking(move || apply_parallel(jobs, &events))
            .await
            .map_err(|e| ProjectionError::Invariant(format!("rebuild worker panicked: {e}")))?;
        for (i, result) in results {
            let t = &mut self.targets[i];
            let outcome = match result {
                Ok(Applied {
                    position,
                    stopped: None,
                    ..
                }) => Ok(position),
                Ok(Applied {
                    stopped: Some(stopped),
                    ..
                }) => Err(stopped.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(position) => {
                    if let Some(shadow) = &mut t.shadow {
                        shadow.checkpoint = position;
                    }
                    if let Some(progress) = &t.progress {
                        progress.send_modify(|s| {
                            if let Some(r) = &mut s.rebuild {
                                r.position = position;
                            }
                        });
                    }
                }
                Err(error) => {
                    tracing::error!(projection = t.projection.name(), %error, "rebuild failed");
                    t.error = Some(error);
                    if let Some(shadow) = t.shadow.take() {
                        let generation = shadow.generation;
                        drop(shadow);
                        self.registry
                            .drop_generation(t.projection.name(), generation)?;
                    }
                }
            }
        }
        Ok(())
    }
}

type Job<E> = (usize, Arc<dyn Projection<E>>, sled::Tree, u64);

fn apply_parallel<E: Event>(
    jobs: Vec<Job<E>>,
    events: &[Envelope<E>],
) -> Vec<(usize, Result<Applied>)> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len())
        .max(1);
    if threads == 1 {
        return jobs
            .into_iter()
            .map(|(i, p, tree, checkpoint)| (i, apply_events(&*p, &tree, checkpoint, events)))
            .collect();
    }
    let mut groups: Vec<Vec<Job<E>>> = (0..threads).map(|_| Vec::new()).collect();
    for (n, job) in jobs.into_iter().enumerate() {
        groups[n % threads].push(job);
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = groups
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    group
                        .into_iter()
                        .map(|(i, p, tree, checkpoint)| {
                            (i, apply_events(&*p, &tree, checkpoint, events))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![(
                        usize::MAX,
                        Err(ProjectionError::Invariant("apply panicked".into())),
                    )]
                })
            })
            .filter(|(i, _)| *i != usize::MAX)
            .collect()
    })
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
    db: &sled::Db,
    projections: &[Arc<dyn Projection<E>>],
    batch_size: usize,
) -> Result<RebuildReport> {
    Rebuild::new(store, db, projections, batch_size)?
        .install()
        .await
}
