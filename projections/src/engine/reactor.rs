//! [`Reactor`]: a follower of the log whose effect lies outside the
//! store (files moved, keys destroyed), driven by the engine beside the
//! projections.
//!
//! A reactor gets what a projection gets: a checkpoint in the store
//! (keyspace `reactor/<name>`, the same checkpoint keys as a projection's
//! tree), a runner that subscribes to the log from it, catches up and then
//! follows durable commits, a [`ProjectionStatus`] in
//! [`ProjectionSet::statuses`](super::ProjectionSet::statuses) (so
//! `srs projections`, `/metrics` and `/readyz` show it), and
//! [`ProjectionSet::wait_for`](super::ProjectionSet::wait_for) (so a
//! caller can wait until its effects are done, as `atLeast` waits for the
//! read models).
//!
//! What differs is failure. Its effect is not a pure function of the
//! event: an effect that fails (a full disk, a file held) is retried with
//! a pause (100 ms doubling to 5 s) until it succeeds, and never skipped,
//! because a skipped deletion would leave content behind. Meanwhile the
//! status says why in `last_error` and the position does not move past
//! the event. The checkpoint is committed once per batch, after the
//! effects of the batch are done: after a crash the effects since the last
//! checkpoint run again, so a reactor's effect must be idempotent per
//! position. A reactor is never rebuilt: its effects are not redone from
//! position 1.

use std::error::Error as StdError;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use srs_domain::log::{Envelope, Event, EventStore};
use tokio::sync::watch;

use super::runner::{next_batch, RateMeter, COMMIT_RETRY_MAX, COMMIT_RETRY_MIN};
use super::status::{ProjectionStatus, RunnerState};
use crate::error::Result;
use crate::store::{Changes, Checkpoint, Db, Keyspace, Store, Tree};

/// Why a reaction failed (it is retried).
pub type ReactError = Box<dyn StdError + Send + Sync>;

/// A follower of the log whose effect is outside the store. See the
/// module docs for what the engine guarantees it and what it must
/// guarantee in turn.
pub trait Reactor<E: Event>: Send + Sync + 'static {
    /// A stable name: it names the checkpoint's keyspace and the status.
    fn name(&self) -> &'static str;

    /// Does what `event` calls for (most events call for nothing). It must
    /// be idempotent: the events after the last checkpoint are handed
    /// again after a crash. An error is retried after a pause, never
    /// skipped.
    fn react<'a>(
        &'a self,
        event: &'a Envelope<E>,
    ) -> BoxFuture<'a, std::result::Result<(), ReactError>>;
}

/// The version a reactor's checkpoint is stored with (and its status
/// shows): a reactor has no data to rebuild, so no version to compare.
pub const REACTOR_VERSION: u32 = 0;

/// The keyspace of reactor `name`'s checkpoint.
pub fn reactor_tree_name(name: &str) -> String {
    format!("reactor/{name}")
}

/// Sets reactor `name`'s checkpoint to `position` unless it has one:
/// carries over a checkpoint that was kept elsewhere before the reactor
/// ran on the engine. `true` when it was set.
pub fn seed_reactor_checkpoint(db: &Db, name: &str, position: u64) -> Result<bool> {
    let tree = db.open(&reactor_tree_name(name))?;
    if tree.checkpoint()?.is_some() {
        return Ok(false);
    }
    let checkpoint = Checkpoint {
        position,
        version: REACTOR_VERSION,
    };
    tree.apply(&Changes::new(), Some(checkpoint))?;
    tree.flush()?;
    Ok(true)
}

/// A reactor as it runs: its status, shared by its runner and the set.
pub(crate) struct RunningReactor<E: Event> {
    pub reactor: Arc<dyn Reactor<E>>,
    pub status: watch::Sender<ProjectionStatus>,
}

/// The task that hands the log to one reactor and keeps its checkpoint.
pub(crate) struct ReactorRunner<E: Event> {
    pub running: Arc<RunningReactor<E>>,
    pub store: Arc<dyn EventStore<E>>,
    /// Where its checkpoint is kept.
    pub tree: Tree,
    pub batch_size: usize,
    /// The last position whose effect is done.
    pub position: u64,
    /// The last position whose checkpoint is committed.
    pub committed: u64,
    /// Caught up to this head, the runner is live.
    pub catch_up_target: u64,
}

/// Whether the stop signal has come (or the set is gone).
fn stopped(stop: &watch::Receiver<bool>) -> bool {
    stop.has_changed().unwrap_or(true) || *stop.borrow()
}

impl<E: Event> ReactorRunner<E> {
    /// Opens reactor `running`'s checkpoint in `db` and its status.
    pub fn open(
        db: &Db,
        reactor: Arc<dyn Reactor<E>>,
        store: Arc<dyn EventStore<E>>,
        batch_size: usize,
        catch_up_target: u64,
    ) -> Result<Self> {
        let tree = db.open(&reactor_tree_name(reactor.name()))?;
        let position = tree.checkpoint()?.map_or(0, |c| c.position);
        let (status, _) = watch::channel(ProjectionStatus::new(
            reactor.name(),
            REACTOR_VERSION,
            0,
            position,
            RunnerState::CatchingUp,
        ));
        Ok(ReactorRunner {
            running: Arc::new(RunningReactor { reactor, status }),
            store,
            tree,
            batch_size: batch_size.max(1),
            position,
            committed: position,
            catch_up_target,
        })
    }

    fn name(&self) -> &'static str {
        self.running.reactor.name()
    }

    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut stream = self.store.subscribe(self.position + 1);
        let mut rate = RateMeter::new(self.position);
        let mut pause = COMMIT_RETRY_MIN;
        self.mark_caught_up_if_there();
        loop {
            let next = tokio::select! {
                biased;
                _ = stop.changed() => break,
                next = next_batch(&mut stream, self.batch_size) => next,
            };
            let Some((events, log_error)) = next else {
                break;
            };
            let from = self.position;
            for event in events.iter().filter(|e| e.position > from) {
                if event.position != self.position + 1 {
                    // A gap: read again from where the effects are.
                    tracing::error!(
                        reactor = self.name(),
                        expected = self.position + 1,
                        got = event.position,
                        "events out of order; reading the log again"
                    );
                    break;
                }
                if !self.react(event, &mut stop).await {
                    self.commit().await;
                    return;
                }
                self.position = event.position;
                let events_per_sec = rate.record(self.position);
                let position = self.position;
                self.running.status.send_modify(|s| {
                    s.position = position;
                    if let Some(r) = events_per_sec {
                        s.events_per_sec = r;
                    }
                });
            }
            self.commit().await;
            self.mark_caught_up_if_there();
            let gap = events.last().is_some_and(|e| e.position > self.position);
            if let Some(error) = log_error.as_ref().map(ToString::to_string) {
                let message = format!(
                    "reading the log after position {}: {error}; retrying",
                    self.position
                );
                tracing::warn!(reactor = self.name(), error = %message);
                self.running
                    .status
                    .send_modify(|s| s.last_error = Some(message));
            }
            if log_error.is_some() || gap {
                tokio::select! {
                    _ = stop.changed() => break,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(COMMIT_RETRY_MAX);
                stream = self.store.subscribe(self.position + 1);
                rate = RateMeter::new(self.position);
            } else if pause > COMMIT_RETRY_MIN {
                // Reading the log works again.
                pause = COMMIT_RETRY_MIN;
                self.running.status.send_modify(|s| s.last_error = None);
            }
        }
        self.commit().await;
        tracing::debug!(
            reactor = self.name(),
            position = self.position,
            "reactor stopped"
        );
    }

    /// Runs `event`'s effect until it succeeds; `false` when the stop
    /// signal came first.
    async fn react(&self, event: &Envelope<E>, stop: &mut watch::Receiver<bool>) -> bool {
        let mut pause = COMMIT_RETRY_MIN;
        let mut failed = false;
        loop {
            match self.running.reactor.react(event).await {
                Ok(()) => {
                    if failed {
                        tracing::info!(
                            reactor = self.name(),
                            position = event.position,
                            "effect done after retrying"
                        );
                        self.running.status.send_modify(|s| s.last_error = None);
                    }
                    return true;
                }
                Err(error) => {
                    let message = format!(
                        "the effect of position {} ({}) failed; retrying: {error}",
                        event.position,
                        event.payload.event_type()
                    );
                    if !failed {
                        tracing::error!(reactor = self.name(), error = %message);
                    }
                    failed = true;
                    self.running.status.send_modify(|s| {
                        s.events_per_sec = 0.0;
                        s.last_error = Some(message);
                    });
                }
            }
            if stopped(stop) {
                return false;
            }
            tokio::select! {
                _ = stop.changed() => return false,
                () = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(COMMIT_RETRY_MAX);
        }
    }

    /// Commits the checkpoint if the effects went past it. A failure only
    /// delays it (the effects are done and idempotent); the next batch
    /// commits again.
    async fn commit(&mut self) {
        if self.position == self.committed {
            return;
        }
        let tree = self.tree.clone();
        let checkpoint = Checkpoint {
            position: self.position,
            version: REACTOR_VERSION,
        };
        let done =
            tokio::task::spawn_blocking(move || tree.apply(&Changes::new(), Some(checkpoint)))
                .await;
        match done {
            Ok(Ok(())) => self.committed = checkpoint.position,
            Ok(Err(error)) => {
                tracing::warn!(reactor = self.name(), %error, "cannot commit the checkpoint; its effects run again after a crash");
            }
            Err(join) => {
                tracing::warn!(reactor = self.name(), error = %join, "committing the checkpoint panicked");
            }
        }
    }

    fn mark_caught_up_if_there(&self) {
        if self.position >= self.catch_up_target {
            self.running.status.send_modify(|s| {
                if s.state == RunnerState::CatchingUp {
                    s.state = RunnerState::Live;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seeded_checkpoint_is_kept_and_never_overwritten() {
        let db = Db::temporary().unwrap();
        assert!(seed_reactor_checkpoint(&db, "effects", 41).unwrap());
        assert!(!seed_reactor_checkpoint(&db, "effects", 7).unwrap());
        let tree = db.open(&reactor_tree_name("effects")).unwrap();
        assert_eq!(tree.checkpoint().unwrap().map(|c| c.position), Some(41));
    }
}
