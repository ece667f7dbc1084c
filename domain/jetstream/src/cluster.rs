//! [`ClusterClient`]: what an `srs serve` node asks the cluster besides
//! the log's records: the stream's last position (how far behind the
//! node's read models are) and the leases of scheduled jobs
//! ([`crate::lease`]).
//!
//! It is async and runs on the caller's runtime with a connection of its
//! own: unlike the backend (synchronous, called from any thread, see the
//! crate docs' *Runtime*), its callers are tasks of the server's runtime.

use std::time::Duration;

use async_nats::jetstream;
use srs_domain::log::LogError;

use crate::backend::JetStreamOptions;
use crate::heartbeats::Heartbeats;
use crate::lease::{LeaseError, Leases};

/// A connection to the cluster for the stream's state and the leases.
#[derive(Clone)]
pub struct ClusterClient {
    js: jetstream::Context,
    stream: String,
    replicas: usize,
    timeout: Duration,
}

fn unavailable(what: impl std::fmt::Display) -> LogError {
    LogError::Unavailable {
        reason: format!("the JetStream cluster: {what}"),
    }
}

impl ClusterClient {
    /// Connects to the servers of `options` (failing over between them,
    /// reconnecting for ever once connected).
    pub async fn connect(options: &JetStreamOptions) -> Result<ClusterClient, LogError> {
        let (_, js) = crate::nats::connect(options, "srs-cluster")
            .await
            .map_err(unavailable)?;
        Ok(ClusterClient {
            js,
            stream: options.stream.clone(),
            replicas: options.replicas,
            timeout: options.timeout,
        })
    }

    /// The log stream's name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// The log stream's last position (its last sequence), as its leader
    /// answers now: what every node's read models are to reach.
    pub async fn last_position(&self) -> Result<u64, LogError> {
        let ask = async {
            let stream = self
                .js
                .get_stream(&self.stream)
                .await
                .map_err(|e| unavailable(format!("stream {}: {e}", self.stream)))?;
            Ok(stream.cached_info().state.last_sequence)
        };
        tokio::time::timeout(self.timeout, ask)
            .await
            .unwrap_or_else(|_| {
                Err(unavailable(format!(
                    "stream {} did not answer its state within {:?}",
                    self.stream, self.timeout
                )))
            })
    }

    /// The leases of the log's scheduled jobs, in the bucket
    /// `<stream>-leases` (created if missing; see [`crate::lease`]). `ttl`
    /// is how long a lease outlives its holder's last renewal when the
    /// bucket is created; an existing bucket keeps its own.
    pub async fn leases(&self, ttl: Duration) -> Result<Leases, LeaseError> {
        Leases::open(
            self.js.clone(),
            &self.stream,
            self.replicas,
            ttl,
            self.timeout,
        )
        .await
    }

    /// The servers' heartbeats every node saw, in the bucket
    /// `<stream>-heartbeats` (created if missing, a node's key kept for
    /// `keep`; see [`crate::heartbeats`]).
    pub async fn heartbeats(&self, keep: Duration) -> Result<Heartbeats, String> {
        Heartbeats::open(
            self.js.clone(),
            &self.stream,
            self.replicas,
            keep,
            self.timeout,
        )
        .await
    }
}
