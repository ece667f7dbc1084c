//! One `srs serve` node among several on one JetStream log (`--log-url`):
//! which of the scheduled jobs it runs, and how far behind the log its
//! read models are. Without `--log-url` there is one node: every job
//! runs, no lease is taken, and the lag is the log head less what the
//! read models applied.
//!
//! # Scheduled jobs
//!
//! | job | appends to the log | runs |
//! |---|---|---|
//! | retention ([`crate::retention::schedule`]) | archives, deletions, `RetentionRunCompletedV2` | once per cluster: on the holder of lease `retention` |
//! | liveness check (`watch_liveness` in [`crate::server`]) | a server marked offline | once per cluster: on the holder of lease `liveness` |
//! | last-used flush (`flush_last_used` in [`crate::server`]) | nothing: the node's own tree of when tokens were used and servers heartbeated | on every node: each keeps what it saw |
//!
//! A job that appends facts on a timer would append them once per node
//! if every node ran it (two retention runs at once archive and delete
//! the same recordings and record two runs; two liveness checks mark a
//! server offline twice), so it runs only while its node holds the job's
//! lease (`srs_log_jetstream::lease`, whose docs give the failure
//! semantics): a lost lease cancels a run in progress at once, a dead
//! holder's lease is taken by another node after the TTL
//! ([`crate::state::Limits::lease_ttl`]), and while nobody can hold it
//! (the cluster unreachable) the job pauses; it never runs twice at once.
//!
//! The liveness check judges a server by its newest heartbeat on any
//! node: heartbeats are kept per node, in memory (not in the log), and
//! every node shares what it saw each liveness interval in the
//! `<stream>-heartbeats` bucket (`srs_log_jetstream::heartbeats`) and
//! takes the others', so the lease holder's check and `Server.lastHeartbeat`
//! on every node go by the newest heartbeat (at most one interval late).
//!
//! # Lag
//!
//! A node's lag is the log stream's last position (asked of the stream's
//! leader every [`POLL`]) less the lowest position its read models (and
//! the content effects) have applied. `/metrics` shows it
//! (`srs_node_lag_positions`, `srs_log_stream_last_position`); `/readyz`
//! answers 503 while it is over [`MAX_READY_LAG`] or while the stream
//! does not answer.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use srs_domain::app::Service;
use srs_domain::time::Timestamp;
use srs_log_jetstream::{ClusterClient, Heartbeats, JetStreamOptions, Lease};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// How long a node's shared heartbeats are kept after its last share (a
/// node gone for good drops out after that).
const HEARTBEATS_KEPT: Duration = Duration::from_secs(3600);

/// How often the stream's last position is asked.
pub const POLL: Duration = Duration::from_secs(1);

/// The most positions a node's read models may be behind the log stream
/// while `/readyz` answers 200: about a second of a busy cluster's
/// appends, so a node that keeps up stays ready under load and one that
/// rebuilds or fell behind is taken out of rotation.
pub const MAX_READY_LAG: u64 = 1_000;

/// The scheduled jobs that run once per cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Retention,
    Liveness,
}

impl Job {
    /// The job's lease key.
    pub fn key(self) -> &'static str {
        match self {
            Job::Retention => "retention",
            Job::Liveness => "liveness",
        }
    }
}

/// The node's part in the cluster: its leases and the stream's position.
pub struct Cluster {
    retention: Lease,
    liveness: Lease,
    heartbeats: Heartbeats,
    /// This node's key among the shared heartbeats.
    node: String,
    stream: Arc<StreamPosition>,
    poller: Mutex<Option<JoinHandle<()>>>,
}

/// The stream's last position as last asked.
#[derive(Default)]
struct StreamPosition {
    last: AtomicU64,
    /// Why the last question went unanswered, if it did.
    error: Mutex<Option<String>>,
}

impl StreamPosition {
    fn set(&self, answer: Result<u64, String>) {
        let mut error = self.error.lock().unwrap_or_else(|e| e.into_inner());
        match answer {
            Ok(last) => {
                self.last.fetch_max(last, Ordering::Relaxed);
                *error = None;
            }
            Err(e) => *error = Some(e),
        }
    }
}

impl Cluster {
    /// Connects to the cluster of `log` (a connection of its own on the
    /// current runtime), starts trying for the jobs' leases as `holder`
    /// (a name for this node, stored with the lease) and asking for the
    /// stream's last position.
    pub async fn join(
        log: &JetStreamOptions,
        holder: &str,
        ttl: Duration,
    ) -> Result<Cluster, String> {
        let client = ClusterClient::connect(log)
            .await
            .map_err(|e| e.to_string())?;
        let leases = client.leases(ttl).await.map_err(|e| e.to_string())?;
        let heartbeats = client.heartbeats(HEARTBEATS_KEPT).await?;
        if leases.ttl() != ttl {
            tracing::info!(
                bucket = %srs_log_jetstream::lease::bucket_name(client.stream()),
                ttl = ?leases.ttl(),
                "the leases' bucket keeps the TTL it was created with"
            );
        }
        let stream = Arc::new(StreamPosition::default());
        stream.set(client.last_position().await.map_err(|e| e.to_string()));
        let poller = tokio::spawn({
            let stream = stream.clone();
            async move {
                let mut ticker = tokio::time::interval(POLL);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    stream.set(client.last_position().await.map_err(|e| e.to_string()));
                }
            }
        });
        Ok(Cluster {
            retention: leases.hold(Job::Retention.key(), holder),
            liveness: leases.hold(Job::Liveness.key(), holder),
            heartbeats,
            // A key-value key (letters, digits, `-`), unique per start.
            node: format!("node-{}", Uuid::new_v4().simple()),
            stream,
            poller: Mutex::new(Some(poller)),
        })
    }

    /// The lease of `job`.
    pub fn lease(&self, job: Job) -> &Lease {
        match job {
            Job::Retention => &self.retention,
            Job::Liveness => &self.liveness,
        }
    }

    /// Shares the servers' heartbeats this node saw with the other nodes
    /// (see [`srs_log_jetstream::heartbeats`]).
    pub async fn share_heartbeats(&self, service: &Service) {
        let seen: Vec<(Uuid, i64)> = service
            .heartbeats_seen()
            .into_iter()
            .map(|(id, at)| (id, at.0))
            .collect();
        if let Err(e) = self.heartbeats.publish(&self.node, &seen).await {
            tracing::warn!(error = %e, "sharing the servers' heartbeats with the cluster failed");
        }
    }

    /// Takes the heartbeats every node shared.
    pub async fn take_heartbeats(&self, service: &Service) {
        match self.heartbeats.collect().await {
            Ok(seen) => {
                service.observe_heartbeats(seen.into_iter().map(|(id, at)| (id, Timestamp(at))))
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the nodes' heartbeats failed; checking liveness on this node's own")
            }
        }
    }

    /// The leases and whether this node holds each.
    pub fn leases(&self) -> Vec<(String, bool)> {
        [Job::Retention, Job::Liveness]
            .into_iter()
            .map(|job| (job.key().to_owned(), self.lease(job).is_held()))
            .collect()
    }

    /// The stream's last position as last asked, or why the last question
    /// went unanswered.
    pub fn stream_last_position(&self) -> Result<u64, String> {
        match &*self.stream.error.lock().unwrap_or_else(|e| e.into_inner()) {
            None => Ok(self.stream.last.load(Ordering::Relaxed)),
            Some(e) => Err(e.clone()),
        }
    }

    /// Leaves at a clean stop: releases the leases held (another node
    /// takes them at its next try) and stops asking for the position.
    pub async fn leave(&self) {
        self.retention.release().await;
        self.liveness.release().await;
        if let Some(poller) = self.poller.lock().unwrap_or_else(|e| e.into_inner()).take() {
            poller.abort();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(poller) = self.poller.lock().unwrap_or_else(|e| e.into_inner()).take() {
            poller.abort();
        }
    }
}

/// Runs `work` if `lease` is held (always without a lease), and cancels
/// it (drops it where it stands) the moment the lease is lost. `None`
/// when it did not run or was cut off.
pub async fn while_held<T>(
    lease: Option<watch::Receiver<bool>>,
    work: impl Future<Output = T>,
) -> Option<T> {
    let Some(mut lease) = lease else {
        return Some(work.await);
    };
    if !*lease.borrow_and_update() {
        return None;
    }
    tokio::select! {
        done = work => Some(done),
        _ = lease.wait_for(|held| !*held) => {
            tracing::warn!("a scheduled job was cut off: this node lost its lease");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_only_while_the_lease_is_held() {
        assert_eq!(while_held(None, async { 1 }).await, Some(1));
        let (held, lease) = watch::channel(false);
        assert_eq!(while_held(Some(lease.clone()), async { 2 }).await, None);
        held.send(true).unwrap();
        assert_eq!(while_held(Some(lease.clone()), async { 3 }).await, Some(3));
        // Lost while running: cut off at once.
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let running = tokio::spawn(while_held(Some(lease), async move {
            let _ = started_tx.send(());
            std::future::pending::<()>().await;
        }));
        started.await.unwrap();
        held.send(false).unwrap();
        assert_eq!(running.await.unwrap(), None);
    }
}
