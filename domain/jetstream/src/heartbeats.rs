//! [`Heartbeats`]: the servers' last heartbeats as every `srs serve` node
//! of a cluster saw them, so the node running the liveness check (the
//! holder of its lease, [`crate::lease`]) judges a server by the newest
//! heartbeat any node took, not by its own alone (agents heartbeat to
//! whichever node they reach).
//!
//! One JetStream key-value bucket per log, `<stream>-heartbeats` (file
//! storage, the log's replicas, history 1), one key per node: the
//! heartbeats that node saw, written every liveness interval. Keys of
//! nodes gone for good expire after the bucket's `max_age`. A heartbeat
//! is at most one interval late on the checking node; the liveness period
//! is at least three intervals, so a live server is never marked offline
//! for it. When the bucket cannot be read the check runs on what the node
//! knows (a server may then be marked offline and come back online with
//! its next heartbeat: facts, never a lost write).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv};
use futures_util::StreamExt as _;
use uuid::Uuid;

/// The bucket of `stream`'s heartbeats.
pub fn bucket_name(stream: &str) -> String {
    format!("{stream}-heartbeats")
}

/// The nodes' heartbeats of one log.
#[derive(Clone)]
pub struct Heartbeats {
    kv: kv::Store,
    timeout: Duration,
}

impl Heartbeats {
    /// Opens the bucket of `stream`'s heartbeats, created if missing with
    /// keys kept for `keep`.
    pub(crate) async fn open(
        js: jetstream::Context,
        stream: &str,
        replicas: usize,
        keep: Duration,
        timeout: Duration,
    ) -> Result<Heartbeats, String> {
        let config = kv::Config {
            bucket: bucket_name(stream),
            description: format!("the servers' heartbeats each node of srs log {stream} saw"),
            history: 1,
            max_age: keep,
            num_replicas: replicas,
            storage: jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let kv = crate::nats::key_value(&js, config, timeout).await?;
        Ok(Heartbeats { kv, timeout })
    }

    /// Stores what node `node` saw: each server's last heartbeat
    /// (milliseconds since the epoch).
    pub async fn publish(&self, node: &str, seen: &[(Uuid, i64)]) -> Result<(), String> {
        let body = serde_json::to_vec(&seen.iter().copied().collect::<HashMap<_, _>>())
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(self.timeout, self.kv.put(node, body.into()))
            .await
            .map_err(|_| "no answer in time".to_owned())?
            .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// Every server's newest heartbeat over all nodes' keys.
    pub async fn collect(&self) -> Result<HashMap<Uuid, i64>, String> {
        let read = async {
            let mut newest: HashMap<Uuid, i64> = HashMap::new();
            let mut keys = self.kv.keys().await.map_err(|e| e.to_string())?;
            while let Some(key) = keys.next().await {
                let key = key.map_err(|e| e.to_string())?;
                let Some(body) = self.kv.get(&key).await.map_err(|e| e.to_string())? else {
                    continue;
                };
                let seen: HashMap<Uuid, i64> = serde_json::from_slice(&body)
                    .map_err(|e| format!("node {key}'s heartbeats: {e}"))?;
                for (server, at) in seen {
                    let entry = newest.entry(server).or_insert(at);
                    *entry = (*entry).max(at);
                }
            }
            Ok(newest)
        };
        tokio::time::timeout(self.timeout, read)
            .await
            .map_err(|_| "no answer in time".to_owned())?
    }
}
