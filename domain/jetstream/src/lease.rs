//! Leases: a scheduled job that appends facts on a timer (retention, the
//! liveness check) runs on one `srs serve` node of a cluster at a time,
//! the one holding the job's lease.
//!
//! # Layout
//!
//! One JetStream key-value bucket per log, `<stream>-leases` (file
//! storage, the log's replicas, history 1), one key per job. Its
//! `max_age` is the lease's TTL: a key not written for that long is
//! removed by the servers. A lease is held by the node whose write is the
//! key's last one:
//!
//! * **taken** with `create` (stored only if the key is absent or
//!   deleted: of two nodes asking at once, one gets it);
//! * **renewed** every fifth of the TTL with `update` on the revision the
//!   holder wrote last (stored only if nobody wrote the key since);
//! * **released** at a clean stop with a delete on that revision, so
//!   another node takes it at its next try instead of after the TTL.
//!
//! # Failure semantics
//!
//! The rule is that two nodes never hold one lease at once, so a job
//! never runs twice at the same time; when in doubt a job pauses.
//!
//! * A holder believes it holds the lease until four fifths of the TTL
//!   after it *sent* its last acknowledged write. The servers stored that
//!   write after it was sent and remove the key no sooner than the TTL
//!   after storing it, so the holder lets go (its [`Lease::watch`] turns
//!   `false`, its job is cancelled) at least a fifth of the TTL before
//!   any other node can take the key.
//! * **A renewal refused** (someone else wrote the key: the lease expired
//!   and was taken, or an operator removed it): the lease is lost at
//!   once.
//! * **The cluster unreachable, or too slow** (no quorum, no connection):
//!   renewals fail or go unanswered; the holder keeps the lease only
//!   until the deadline above, then lets go. The job pauses on every
//!   node until the cluster answers again and one of them takes the
//!   lease. Nothing runs twice; something may run late.
//! * **The holder dies** (killed, its machine gone, [`Lease`] dropped
//!   without [`Lease::release`]): nobody renews the key, the servers
//!   remove it after the TTL, and the next node to try (every fifth of
//!   the TTL) takes it. The job pauses for at most a TTL and a fifth.
//! * **A write whose answer is lost** (stored, but its acknowledgement
//!   timed out): the node does not count on it; its next renewal is
//!   refused (the revision moved) or its next take finds the key held, so
//!   the lease lies unused until the servers remove the key: a pause of
//!   at most a TTL, never a second holder.
//! * A job is cancelled where it stands when the lease is lost (its
//!   future dropped); the next holder's run redoes what is still due.
//!   So a job must be safe to cut off between any two appends, as
//!   retention and the liveness check are (each append decides again on
//!   what is stored).
//!
//! The deadline is measured on the holder's monotonic clock and the key's
//! age on the servers' clocks: a server clock that jumps forward by more
//! than a fifth of the TTL may remove a key early. Without `--log-url`
//! there is one node and no lease.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Why the leases' bucket could not be opened.
#[derive(Debug)]
pub struct LeaseError(String);

impl std::fmt::Display for LeaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the leases of the JetStream cluster: {}", self.0)
    }
}

impl std::error::Error for LeaseError {}

/// The bucket holding the leases of the log in stream `stream`.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}-leases")
}

/// The leases' bucket of one log (see the module docs).
#[derive(Clone)]
pub struct Leases {
    kv: kv::Store,
    ttl: Duration,
    timeout: Duration,
}

impl Leases {
    /// Opens the bucket of `stream`'s leases, created with `ttl` if
    /// missing.
    pub(crate) async fn open(
        js: jetstream::Context,
        stream: &str,
        replicas: usize,
        ttl: Duration,
        timeout: Duration,
    ) -> Result<Leases, LeaseError> {
        let bucket = bucket_name(stream);
        let config = kv::Config {
            bucket: bucket.clone(),
            description: format!("the leases of the scheduled jobs of srs log {stream}"),
            history: 1,
            max_age: ttl,
            num_replicas: replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        // It may exist (with another TTL, or created meanwhile).
        let kv = crate::nats::key_value(&js, config, timeout)
            .await
            .map_err(LeaseError)?;
        let ttl = kv.stream.cached_info().config.max_age;
        if ttl.is_zero() {
            return Err(LeaseError(format!(
                "bucket {bucket} keeps keys for ever (no max_age): a dead holder's lease would never expire"
            )));
        }
        Ok(Leases { kv, ttl, timeout })
    }

    /// How long a lease outlives its holder's last renewal (the bucket's
    /// `max_age`).
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts trying to hold `key` as `holder` (a name saying which node
    /// holds it, stored as the key's value): a task on the current
    /// runtime takes the lease when it is free, renews it, and reports
    /// whether it is held ([`Lease::watch`]).
    pub fn hold(&self, key: &str, holder: &str) -> Lease {
        let (held_tx, held) = watch::channel(false);
        let held_tx = Arc::new(held_tx);
        let (stop, stop_rx) = watch::channel(false);
        let keeper = Keeper {
            kv: self.kv.clone(),
            key: key.to_owned(),
            holder: holder.to_owned(),
            ttl: self.ttl,
            timeout: self.timeout,
            held: held_tx.clone(),
        };
        let task = tokio::spawn(keeper.run(stop_rx));
        Lease {
            key: key.to_owned(),
            held,
            held_tx,
            stop,
            task: Mutex::new(Some(task)),
        }
    }
}

/// One lease, held or tried for by a task (see [`Leases::hold`]).
/// Dropped, the task stops without releasing: the lease expires after
/// its TTL.
pub struct Lease {
    key: String,
    held: watch::Receiver<bool>,
    /// The keeper's sender, to say `false` when the keeper is stopped.
    held_tx: Arc<watch::Sender<bool>>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Lease {
    /// The lease's key (the job's name).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether this node holds the lease now.
    pub fn is_held(&self) -> bool {
        *self.held.borrow()
    }

    /// Whether this node holds the lease, as it changes: `true` from the
    /// moment it is taken, `false` as soon as it is lost or may be lost.
    pub fn watch(&self) -> watch::Receiver<bool> {
        self.held.clone()
    }

    /// Stops holding: deletes the key if held (on the revision held, so a
    /// lease taken by another meanwhile is left alone) and ends the task.
    /// Another node then takes the lease at its next try.
    pub async fn release(&self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
        // Whoever still watches it (a job) stops now.
        self.held_tx.send_replace(false);
    }
}

/// The task behind a [`Lease`].
struct Keeper {
    kv: kv::Store,
    key: String,
    holder: String,
    ttl: Duration,
    timeout: Duration,
    held: Arc<watch::Sender<bool>>,
}

/// The lease as its keeper holds it.
#[derive(Clone, Copy)]
struct Held {
    /// The revision of the key this node wrote last.
    revision: u64,
    /// When this node stops believing it holds the lease, unless a
    /// renewal is acknowledged before.
    until: Instant,
}

impl Keeper {
    /// How often the lease is renewed, and how often a node that does not
    /// hold it tries to take it.
    fn period(&self) -> Duration {
        self.ttl / 5
    }

    /// How long after the write it sent the holder believes it holds the
    /// lease: a fifth of the TTL short of the earliest removal.
    fn validity(&self) -> Duration {
        self.ttl - self.ttl / 5
    }

    fn set_held(&self, held: bool) {
        self.held
            .send_if_modified(|h| std::mem::replace(h, held) != held);
    }

    async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut held: Option<Held> = None;
        loop {
            held = match held {
                None => self.take().await,
                Some(current) => self.renew(current).await,
            };
            self.set_held(held.is_some());
            let next = Instant::now() + self.period();
            let wake = held.map_or(next, |h| next.min(h.until));
            // `Some(true)`: released; `Some(false)`: the lease was dropped.
            let stopped = tokio::select! {
                () = tokio::time::sleep_until(wake) => None,
                stopped = stop.wait_for(|stop| *stop) => Some(stopped.is_ok()),
            };
            if let Some(release) = stopped {
                self.set_held(false);
                if let (true, Some(current)) = (release, held) {
                    self.release(current).await;
                }
                return;
            }
            if let Some(current) = held {
                if Instant::now() >= current.until {
                    tracing::warn!(lease = %self.key, "lease not renewed in time (the cluster does not answer): letting go");
                    held = None;
                    self.set_held(false);
                }
            }
        }
    }

    /// Takes the lease if the key is free.
    async fn take(&self) -> Option<Held> {
        let sent = Instant::now();
        match tokio::time::timeout(
            self.timeout,
            self.kv.create(&self.key, self.holder.clone().into()),
        )
        .await
        {
            Ok(Ok(revision)) => {
                tracing::info!(lease = %self.key, holder = %self.holder, "lease taken");
                Some(Held {
                    revision,
                    until: sent + self.validity(),
                })
            }
            Ok(Err(e)) if e.kind() == kv::CreateErrorKind::AlreadyExists => None,
            Ok(Err(e)) => {
                tracing::debug!(lease = %self.key, error = %e, "cannot take the lease now");
                None
            }
            Err(_) => {
                tracing::debug!(lease = %self.key, "taking the lease went unanswered");
                None
            }
        }
    }

    /// Renews the lease held; `None` when it is lost. A renewal may wait
    /// no longer than the lease is believed held.
    async fn renew(&self, current: Held) -> Option<Held> {
        let sent = Instant::now();
        let update = self
            .kv
            .update(&self.key, self.holder.clone().into(), current.revision);
        match tokio::time::timeout_at(current.until, update).await {
            Ok(Ok(revision)) => Some(Held {
                revision,
                until: sent + self.validity(),
            }),
            Ok(Err(e)) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                tracing::warn!(lease = %self.key, "lease renewal refused (another node holds it): letting go");
                None
            }
            Ok(Err(e)) => {
                tracing::debug!(lease = %self.key, error = %e, "lease renewal failed; trying again");
                Some(current).filter(|h| Instant::now() < h.until)
            }
            Err(_) => {
                tracing::warn!(lease = %self.key, "lease not renewed in time (the cluster does not answer): letting go");
                None
            }
        }
    }

    /// Deletes the key on the revision held.
    async fn release(&self, current: Held) {
        let delete = self
            .kv
            .delete_expect_revision(&self.key, Some(current.revision));
        match tokio::time::timeout(self.timeout, delete).await {
            Ok(Ok(())) => tracing::info!(lease = %self.key, "lease released"),
            Ok(Err(e)) => {
                tracing::warn!(lease = %self.key, error = %e, "could not release the lease; it expires by itself")
            }
            Err(_) => {
                tracing::warn!(lease = %self.key, "releasing the lease went unanswered; it expires by itself")
            }
        }
    }
}
