//! The task that folds the log into one projection's tree.
//!
//! It subscribes to the log from its checkpoint + 1 (the subscription
//! catches up, then follows durable commits without polling), takes what
//! is ready up to a batch, applies it off the async threads and commits
//! data and checkpoint in one atomic write. A failing event stops it there
//! with the error in its status; only a swap (a completed rebuild) starts
//! it again. Old trees replaced by a swap are dropped once no query holds
//! them any more.
//!
//! A commit that the store refuses (a storage error: a full disk) is not the
//! event's fault: the batch wrote nothing (data and checkpoint are one
//! atomic batch), so the runner keeps its position, says so in
//! `last_error`, and reads the same events again after a backoff (100 ms
//! doubling to 5 s) until a commit succeeds; it never stops for good on a
//! storage error. A read of the log that storage refuses is retried the
//! same way. Meanwhile it is behind the log, so `/readyz` says so.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use srs_domain::log::{Envelope, Event, EventStore, EventStream, LogError};
use tokio::sync::{mpsc, oneshot, watch};

use super::status::{ProjectionStatus, RunnerState};
use super::{apply_events, Applied, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Generations;
use crate::store::Tree;

/// A new generation of a projection's tree: filled by a rebuild, then
/// caught up and swapped in by the runner.
pub(crate) struct NewGeneration {
    pub tree: Tree,
    pub generation: u64,
    pub checkpoint: u64,
}

/// What a runner can be asked between batches.
pub(crate) enum Command {
    /// Catch the new generation up to the runner's position, make it current, and
    /// answer with the new position.
    Swap {
        built: NewGeneration,
        reply: oneshot::Sender<Result<u64>>,
    },
}

/// A projection as it runs: its current tree (what queries read), its
/// status and its runner's command channel, shared by the runner and the
/// set.
pub(crate) struct RunningProjection<E: Event> {
    pub projection: Arc<dyn Projection<E>>,
    /// The current tree and its generation; replaced only by a swap.
    pub tree: RwLock<(Arc<Tree>, u64)>,
    pub status: watch::Sender<ProjectionStatus>,
    pub commands: mpsc::Sender<Command>,
}

impl<E: Event> RunningProjection<E> {
    pub fn current(&self) -> Arc<Tree> {
        // A poisoned lock only means a panic elsewhere while swapping a
        // pointer; the pointer itself is always whole.
        match self.tree.read() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    fn replace(&self, tree: Arc<Tree>, generation: u64) -> (Arc<Tree>, u64) {
        let mut guard = match self.tree.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        std::mem::replace(&mut *guard, (tree, generation))
    }
}

/// Events per second over windows of at least a quarter second.
pub(super) struct RateMeter {
    window_start: Instant,
    window_position: u64,
}

impl RateMeter {
    pub(super) fn new(position: u64) -> Self {
        RateMeter {
            window_start: Instant::now(),
            window_position: position,
        }
    }

    pub(super) fn record(&mut self, position: u64) -> Option<f64> {
        let elapsed = self.window_start.elapsed();
        if elapsed < Duration::from_millis(250) {
            return None;
        }
        let rate = position.saturating_sub(self.window_position) as f64 / elapsed.as_secs_f64();
        self.window_start = Instant::now();
        self.window_position = position;
        Some(rate)
    }
}

/// The first wait before retrying a commit the store refused; it doubles up to
/// [`COMMIT_RETRY_MAX`].
pub(super) const COMMIT_RETRY_MIN: Duration = Duration::from_millis(100);
pub(super) const COMMIT_RETRY_MAX: Duration = Duration::from_secs(5);

/// The task that folds the log into one projection's current tree (see
/// the module docs).
pub(crate) struct ProjectionRunner<E: Event> {
    pub running: Arc<RunningProjection<E>>,
    pub store: Arc<dyn EventStore<E>>,
    pub generations: Generations,
    pub batch_size: usize,
    pub position: u64,
    /// Caught up to this head, the runner is live.
    pub catch_up_target: u64,
    pub failed: bool,
    pub retired: Vec<(Arc<Tree>, u64)>,
}

impl<E: Event> ProjectionRunner<E> {
    fn name(&self) -> &'static str {
        self.running.projection.name()
    }

    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut stream = self.store.subscribe(self.position + 1);
        let mut rate = RateMeter::new(self.position);
        self.mark_caught_up_if_there();
        // Set while commits fail on storage: the current wait, and when to
        // read the refused events again.
        let mut backoff: Option<Duration> = None;
        let mut retry_at: Option<tokio::time::Instant> = None;
        loop {
            self.drop_unused_retired();
            let batch_size = self.batch_size;
            let has_retired = !self.retired.is_empty();
            let retry_deadline = retry_at.unwrap_or_else(tokio::time::Instant::now);
            tokio::select! {
                biased;
                _ = stop.changed() => break,
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Swap { built, reply }) => {
                        let result = self.swap(built).await;
                        if result.is_ok() {
                            stream = self.store.subscribe(self.position + 1);
                            rate = RateMeter::new(self.position);
                        }
                        // The requester may have given up; the swap stands.
                        let _ = reply.send(result);
                    }
                },
                _ = tokio::time::sleep(Duration::from_millis(200)), if has_retired => {}
                () = tokio::time::sleep_until(retry_deadline), if retry_at.is_some() => {
                    retry_at = None;
                    stream = self.store.subscribe(self.position + 1);
                    rate = RateMeter::new(self.position);
                }
                next = next_batch(&mut stream, batch_size), if !self.failed && retry_at.is_none() => match next {
                    None => break,
                    Some((events, log_error)) => {
                        if !events.is_empty() {
                            match self.apply(events, &mut rate).await {
                                Some(storage) => {
                                    let wait = backoff.map_or(COMMIT_RETRY_MIN, |b| (b * 2).min(COMMIT_RETRY_MAX));
                                    if backoff.is_none() {
                                        tracing::warn!(projection = self.name(), error = %storage, "a commit failed on storage; retrying");
                                    }
                                    backoff = Some(wait);
                                    retry_at = Some(tokio::time::Instant::now() + wait);
                                    let message = format!("committing after position {} failed on storage; retrying: {storage}", self.position);
                                    self.running.status.send_modify(|s| {
                                        s.events_per_sec = 0.0;
                                        s.last_error = Some(message);
                                    });
                                    continue;
                                }
                                None if backoff.take().is_some() => {
                                    tracing::info!(projection = self.name(), position = self.position, "commits succeed again");
                                    if !self.failed {
                                        self.running.status.send_modify(|s| s.last_error = None);
                                    }
                                }
                                None => {}
                            }
                        }
                        match (log_error, self.failed) {
                            (Some(error), false) if error.is_unavailable() => {
                                // Storage refused a read (sled after a failed
                                // write): read again after a while.
                                let wait = backoff.map_or(COMMIT_RETRY_MIN, |b| (b * 2).min(COMMIT_RETRY_MAX));
                                backoff = Some(wait);
                                retry_at = Some(tokio::time::Instant::now() + wait);
                                let message = format!("reading the log after position {} failed on storage; retrying: {error}", self.position);
                                self.running.status.send_modify(|s| s.last_error = Some(message));
                            }
                            (Some(error), false) => {
                                self.fail(format!("reading the log after position {}: {error}", self.position));
                            }
                            _ => {}
                        }
                    }
                },
            }
        }
        tracing::debug!(
            projection = self.name(),
            position = self.position,
            "runner stopped"
        );
    }

    /// Applies and commits `events`. A commit that the store refused is handed
    /// back (the caller retries); nothing was written then.
    async fn apply(
        &mut self,
        events: Vec<Envelope<E>>,
        rate: &mut RateMeter,
    ) -> Option<ProjectionError> {
        let projection = self.running.projection.clone();
        let tree = self.running.current();
        let checkpoint = self.position;
        let result = tokio::task::spawn_blocking(move || {
            apply_events(&*projection, &tree, checkpoint, &events)
        })
        .await;
        match result {
            Ok(Ok(Applied {
                position, stopped, ..
            })) => {
                self.position = position;
                let events_per_sec = rate.record(position);
                self.running.status.send_modify(|s| {
                    s.position = position;
                    if let Some(r) = events_per_sec {
                        s.events_per_sec = r;
                    }
                });
                self.mark_caught_up_if_there();
                if let Some(stopped) = stopped {
                    self.fail(stopped.to_string());
                }
            }
            Ok(Err(ProjectionError::Storage(error))) if error.is_io() => {
                return Some(ProjectionError::Storage(error))
            }
            Ok(Err(error)) => self.fail(format!("committing after position {checkpoint}: {error}")),
            Err(join) => self.fail(format!(
                "applying after position {checkpoint} panicked: {join}"
            )),
        }
        None
    }

    fn mark_caught_up_if_there(&mut self) {
        if self.position >= self.catch_up_target {
            self.running.status.send_modify(|s| {
                if matches!(s.state, RunnerState::CatchingUp | RunnerState::Rebuilding) {
                    s.state = RunnerState::Live;
                }
            });
        }
    }

    fn fail(&mut self, message: String) {
        tracing::error!(projection = self.name(), error = %message, "projection stopped");
        self.failed = true;
        self.running.status.send_modify(|s| {
            s.state = RunnerState::Failed;
            s.events_per_sec = 0.0;
            s.last_error = Some(message);
        });
    }

    async fn swap(&mut self, mut built: NewGeneration) -> Result<u64> {
        let name = self.name();
        let caught_up = self.catch_up_built(&mut built).await;
        if let Err(error) = caught_up {
            // Nobody but this call holds the built: drop it now.
            let generation = built.generation;
            drop(built);
            self.generations.drop_generation(name, generation)?;
            return Err(error);
        }
        self.generations.set_current(name, built.generation)?;
        let old = self.running.replace(Arc::new(built.tree), built.generation);
        self.retired.push(old);
        self.position = built.checkpoint;
        self.failed = false;
        let live = self.position >= self.catch_up_target;
        let (position, generation) = (self.position, built.generation);
        self.running.status.send_modify(|s| {
            s.position = position;
            s.generation = generation;
            s.last_error = None;
            s.state = if live {
                RunnerState::Live
            } else {
                RunnerState::CatchingUp
            };
        });
        tracing::info!(
            projection = name,
            generation,
            position,
            "rebuilt tree swapped in"
        );
        Ok(position)
    }

    /// Applies to the built what the live tree has and it lacks, so that
    /// the position a query has seen never goes back.
    async fn catch_up_built(&self, built: &mut NewGeneration) -> Result<()> {
        while built.checkpoint < self.position {
            let want = (self.position - built.checkpoint).min(self.batch_size as u64) as usize;
            let events = self.store.read_all(built.checkpoint + 1, want).await?;
            if events.is_empty() {
                return Err(ProjectionError::Invariant(format!(
                    "the log ends before position {}",
                    self.position
                )));
            }
            let projection = self.running.projection.clone();
            let tree = built.tree.clone();
            let checkpoint = built.checkpoint;
            let applied = tokio::task::spawn_blocking(move || {
                apply_events(&*projection, &tree, checkpoint, &events)
            })
            .await
            .map_err(|e| ProjectionError::Invariant(format!("apply panicked: {e}")))??;
            if let Some(stopped) = applied.stopped {
                return Err(ProjectionError::Invariant(stopped.to_string()));
            }
            built.checkpoint = applied.position;
        }
        Ok(())
    }

    fn drop_unused_retired(&mut self) {
        let name = self.running.projection.name();
        let generations = &self.generations;
        self.retired.retain(|(tree, generation)| {
            if Arc::strong_count(tree) > 1 {
                return true;
            }
            if let Err(error) = generations.drop_generation(name, *generation) {
                // A leftover tree is dropped on the next start.
                tracing::warn!(projection = name, generation, %error, "could not drop a replaced tree");
            }
            false
        });
    }
}

/// The next events that are ready, at least one and at most `max`; a log
/// error that follows them is handed back too so it is never lost. `None`
/// when the log has closed.
pub(super) async fn next_batch<E: Event>(
    stream: &mut EventStream<E>,
    max: usize,
) -> Option<(Vec<Envelope<E>>, Option<LogError>)> {
    let first = stream.next().await?;
    let mut batch = Vec::with_capacity(max.min(1024));
    match first {
        Ok(e) => batch.push(e),
        Err(error) => return Some((batch, Some(error))),
    }
    while batch.len() < max {
        // Only what is ready now: a batch never waits for the next commit.
        match stream.next().now_or_never() {
            Some(Some(Ok(e))) => batch.push(e),
            Some(Some(Err(error))) => return Some((batch, Some(error))),
            Some(None) | None => break,
        }
    }
    Some((batch, None))
}
