//! [`JetStreamBackend`]: the [`LogBackend`] over one JetStream stream (see
//! the crate docs for the layout and the failure semantics).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, RwLock};
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, HeaderMap};
use futures_util::StreamExt as _;
use serde::Deserialize;
use srs_domain::log::{
    decode_record, Commit, Head, LogBackend, LogError, StorageError, Visit, Wake,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::nats::OPEN_WAIT;

/// The most messages one JetStream atomic batch holds by default (the
/// servers' `jetstream { limits { batch { max_msgs } } }`), so the most
/// records one commit of this backend holds unless
/// [`JetStreamOptions::max_batch`] says the servers take more.
pub const MAX_BATCH: usize = 1_000;

/// The header every message of a commit carries: the position of the
/// commit's last record. A batch is stored whole, so a reader that has
/// one of its records can read on to its end and never stops inside a
/// commit (records stored before this header existed count as commits of
/// their own).
const COMMIT_END: &str = "Srs-Commit-End";

/// A stored record: its position, its bytes and the position of the last
/// record of its commit.
type Stored = (u64, Vec<u8>, u64);

/// How long the stream's follower waits before it subscribes again after
/// its subscription failed (no leader, a lost connection).
const FOLLOW_RETRY: Duration = Duration::from_millis(250);

/// What a record leaves of a server's largest message for the headers of
/// its batch.
const HEADER_ROOM: usize = 1024;

/// How many records one direct get asks for.
const READ_BATCH: usize = 256;

/// The most bytes one direct get asks for (it always answers at least one
/// message).
const READ_MAX_BYTES: usize = 8 * 1024 * 1024;

/// How long a read waits before asking again for positions a replica
/// that answered has not applied yet.
const READ_RETRY: Duration = Duration::from_millis(5);

/// Where the log is and how long to wait for it.
#[derive(Clone, Debug)]
pub struct JetStreamOptions {
    /// The servers of the cluster (`nats://host:port`); the client
    /// connects to one and fails over to the others.
    pub urls: Vec<String>,
    /// The stream's name (`srs` by default).
    pub stream: String,
    /// Replicas of a stream this backend creates (3: one server may be
    /// lost). An existing stream keeps its own.
    pub replicas: usize,
    /// How long one request (a commit's acknowledgement, a read, an API
    /// call) may take before it fails as unavailable.
    pub timeout: Duration,
    /// The most messages the servers take in one atomic batch (their
    /// `jetstream { limits { batch { max_msgs } } }`, 1,000 by default):
    /// the most records of one commit, so of one append.
    pub max_batch: usize,
}

impl JetStreamOptions {
    /// Options for `urls`, a comma-separated list of server URLs, and the
    /// stream `stream`.
    pub fn new(urls: &str, stream: &str) -> Self {
        JetStreamOptions {
            urls: urls
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect(),
            stream: stream.to_owned(),
            replicas: 3,
            timeout: Duration::from_secs(5),
            max_batch: MAX_BATCH,
        }
    }
}

/// The log stored in a JetStream stream (see the crate docs).
pub struct JetStreamBackend {
    runtime: OwnRuntime,
    nats: Nats,
    index: RwLock<Index>,
    /// Set when a commit failed: storage may hold more than the index
    /// until [`LogBackend::resync`] has read it back.
    unsure: AtomicBool,
    /// The stream's name and creation time (see [`JetStreamBackend::identity`]).
    identity: String,
    /// [`JetStreamOptions::max_batch`].
    max_batch: usize,
}

/// The backend's runtime, shut down in the background when dropped, so
/// dropping it on a tokio worker (a failed open in an async caller, the
/// last handle of a log) is fine.
struct OwnRuntime(Option<Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The connection and what every request needs; cloned into each request
/// spawned on the backend's runtime.
#[derive(Clone)]
struct Nats {
    client: Client,
    js: jetstream::Context,
    stream: String,
    subject: String,
    timeout: Duration,
}

/// The indexes, rebuilt from the records at open.
#[derive(Default)]
struct Index {
    head: Head,
    ids: HashMap<Uuid, u64>,
    /// Per stream, the position of version `v` at `v - 1`.
    streams: HashMap<String, Vec<u64>>,
}

impl Index {
    /// Adds the record at the position after the head.
    fn add(
        &mut self,
        position: u64,
        stream: &str,
        version: u64,
        event_id: Uuid,
    ) -> Result<(), LogError> {
        if position != self.head.position + 1 {
            return Err(LogError::Corrupt(format!(
                "the stream holds position {position} after {}",
                self.head.position
            )));
        }
        let versions = self.streams.entry(stream.to_owned()).or_default();
        if version != versions.len() as u64 + 1 {
            return Err(LogError::Corrupt(format!(
                "position {position}: {stream} version {version} does not follow version {}",
                versions.len()
            )));
        }
        versions.push(position);
        self.ids.insert(event_id, position);
        self.head.position = position;
        Ok(())
    }

    /// Adds stored records, decoding each.
    fn add_stored(&mut self, records: &[Stored]) -> Result<(), LogError> {
        for (position, bytes, _) in records {
            let record = decode_record(*position, bytes)?;
            self.add(*position, &record.stream, record.version, record.event_id)?;
            self.head.hash = record.hash;
        }
        Ok(())
    }
}

fn unavailable(what: impl std::fmt::Display) -> LogError {
    LogError::Unavailable {
        reason: format!("the JetStream log: {what}"),
    }
}

fn other(what: impl std::fmt::Display) -> LogError {
    LogError::Storage(StorageError::Other(format!("the JetStream log: {what}")))
}

/// A JetStream API answer: the value or an error.
#[derive(Deserialize)]
#[serde(untagged)]
enum ApiAnswer<T> {
    Err { error: ApiError },
    Ok(T),
}

#[derive(Debug, Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    err_code: u16,
    #[serde(default)]
    description: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (code {}, error {})",
            self.description, self.code, self.err_code
        )
    }
}

/// The acknowledgement of a committed batch.
#[derive(Debug, Deserialize)]
struct BatchAck {
    seq: u64,
    #[serde(default)]
    batch: String,
    #[serde(default)]
    count: usize,
}

/// How one publish of a batch failed.
enum Attempt {
    /// No stream leader received the commit: nothing of the batch is
    /// stored, it may be published again.
    NoLeader(LogError),
    /// Anything else: the batch may or may not be stored.
    Failed(LogError),
}

/// How long a commit that found no stream leader waits before the next try.
const NO_LEADER_RETRY: Duration = Duration::from_millis(50);

/// JetStream's error code for a publish whose expected last sequence is
/// not the stream's.
const WRONG_LAST_SEQUENCE: u16 = 10071;

impl Nats {
    async fn connect(options: &JetStreamOptions) -> Result<Nats, LogError> {
        let (client, js) = crate::nats::connect(options, "srs")
            .await
            .map_err(unavailable)?;
        Ok(Nats {
            client,
            js,
            stream: options.stream.clone(),
            subject: format!("{}.log", options.stream),
            timeout: options.timeout,
        })
    }

    /// The stream, created if missing, checked if present; its state.
    async fn ensure_stream(&self, replicas: usize) -> Result<stream::Info, LogError> {
        let config = stream::Config {
            name: self.stream.clone(),
            subjects: vec![self.subject.clone()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            allow_atomic_publish: true,
            allow_direct: true,
            deny_delete: true,
            deny_purge: true,
            ..Default::default()
        };
        // The cluster may still be forming, or be slow to answer.
        let deadline = tokio::time::Instant::now() + OPEN_WAIT.max(self.timeout);
        let mut stream = crate::nats::while_forming(self.timeout, "the log's stream", || {
            self.js.get_or_create_stream(config.clone())
        })
        .await
        .map_err(|e| unavailable(format!("stream {}: {e}", self.stream)))?;
        let mut info = stream
            .info()
            .await
            .map_err(|e| unavailable(format!("stream {}: {e}", self.stream)))?
            .clone();
        // A stream just created elects its leader: wait for it, so the
        // first commit finds one.
        while info.cluster.as_ref().is_some_and(|c| c.leader.is_none()) {
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(format!("stream {} has no leader", self.stream)));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            info = stream
                .info()
                .await
                .map_err(|e| unavailable(format!("stream {}: {e}", self.stream)))?
                .clone();
        }
        let found = &info.config;
        if !found.allow_atomic_publish || !found.allow_direct || found.subjects != config.subjects {
            return Err(other(format!(
                "stream {} exists with another configuration (it needs allow_atomic, allow_direct and the one subject {})",
                self.stream, self.subject
            )));
        }
        Ok(info)
    }

    /// The stream's configuration, state and cluster, from its leader.
    async fn info(&self) -> Result<stream::Info, LogError> {
        let stream = self
            .js
            .get_stream(&self.stream)
            .await
            .map_err(|e| unavailable(format!("stream {}: {e}", self.stream)))?;
        Ok(stream.cached_info().clone())
    }

    /// The stream's last sequence, from its leader.
    async fn last_sequence(&self) -> Result<u64, LogError> {
        let info = self.info().await?;
        check_gapless(&self.stream, &info.state)?;
        Ok(info.state.last_sequence)
    }

    /// Every record from `from` to `to` (both stored: the caller knows),
    /// in order. Direct gets may be answered by a replica that has not
    /// applied the newest records yet: what it lacks is asked again until
    /// the timeout.
    async fn read(&self, from: u64, to: u64) -> Result<Vec<Stored>, LogError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut out = Vec::with_capacity((to - from + 1) as usize);
        let mut next = from;
        while next <= to {
            let want = ((to - next + 1) as usize).min(READ_BATCH);
            let got = self.direct_get(next, want, deadline).await?;
            if got.is_empty() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(unavailable(format!(
                        "position {next} is stored but no server answered it in time"
                    )));
                }
                tokio::time::sleep(READ_RETRY).await;
                continue;
            }
            for (position, bytes, end) in got {
                if position != next {
                    return Err(LogError::Corrupt(format!(
                        "the stream answered position {position} for {next}"
                    )));
                }
                out.push((position, bytes, end));
                next += 1;
                if next > to {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// One batched direct get: up to `batch` messages from `seq`, fewer if
    /// the answering replica has fewer.
    async fn direct_get(
        &self,
        seq: u64,
        batch: usize,
        deadline: tokio::time::Instant,
    ) -> Result<Vec<Stored>, LogError> {
        let inbox = self.client.new_inbox();
        let mut replies = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| unavailable(format!("subscribing for a read: {e}")))?;
        let request =
            serde_json::json!({ "seq": seq, "batch": batch, "max_bytes": READ_MAX_BYTES });
        self.client
            .publish_with_reply(
                format!("$JS.API.DIRECT.GET.{}", self.stream),
                inbox,
                request.to_string().into(),
            )
            .await
            .map_err(|e| unavailable(format!("asking for position {seq}: {e}")))?;
        let mut out = Vec::new();
        loop {
            let message = match tokio::time::timeout_at(deadline, replies.next()).await {
                Ok(Some(message)) => message,
                Ok(None) => return Err(unavailable("the connection closed during a read")),
                Err(_) => {
                    return Err(unavailable(format!(
                        "no server answered a read of position {seq} in time"
                    )))
                }
            };
            if let Some(status) = message.status {
                match status.as_u16() {
                    // End of the batch, or nothing at or after `seq`.
                    204 | 404 => break,
                    // No one serves direct gets right now (no replica).
                    503 => break,
                    code => {
                        return Err(unavailable(format!(
                            "a read of position {seq} answered {code} {}",
                            message.description.unwrap_or_default()
                        )))
                    }
                }
            }
            let header = |name: &str| {
                message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get(name))
                    .and_then(|v| v.as_str().parse::<u64>().ok())
            };
            let position = header("Nats-Sequence")
                .ok_or_else(|| other("a direct get answered a message without its sequence"))?;
            let end = header(COMMIT_END).unwrap_or(position).max(position);
            out.push((position, message.payload.to_vec(), end));
            if out.len() >= batch {
                // The end-of-batch marker follows; it is not needed.
                break;
            }
        }
        let _ = replies.unsubscribe().await;
        Ok(out)
    }

    /// Follows the stream from position `from` for as long as the
    /// backend's runtime runs: calls `wake` with the sequence of every
    /// message stored from there on (its headers only: the records are
    /// read by the catch-up that follows). An ordered consumer, created
    /// again from the next sequence after any failure.
    async fn follow(&self, mut from: u64, wake: Wake) {
        loop {
            if let Err(e) = self.tail(&mut from, &wake).await {
                tracing::debug!(error = %e, from, "following the JetStream log failed; subscribing again");
            }
            // What was stored meanwhile is delivered from `from` on.
            tokio::time::sleep(FOLLOW_RETRY).await;
        }
    }

    async fn tail(&self, from: &mut u64, wake: &Wake) -> Result<(), async_nats::Error> {
        use jetstream::consumer::{push, DeliverPolicy};
        let stream = self.js.get_stream(&self.stream).await?;
        let consumer = stream
            .create_consumer(push::OrderedConfig {
                deliver_subject: self.client.new_inbox(),
                filter_subject: self.subject.clone(),
                headers_only: true,
                deliver_policy: DeliverPolicy::ByStartSequence {
                    start_sequence: (*from).max(1),
                },
                ..Default::default()
            })
            .await?;
        let mut messages = consumer.messages().await?;
        while let Some(message) = messages.next().await {
            let sequence = message?.info()?.stream_sequence;
            *from = sequence + 1;
            wake(sequence);
        }
        Ok(())
    }

    /// Publishes `records` (bytes at consecutive positions after
    /// `after`) as one atomic batch and waits for its acknowledgement.
    /// While no stream leader takes the commit (no responders: none
    /// received it, so nothing of the batch is committed) it publishes the
    /// batch again, under a new id, until the timeout.
    async fn publish_batch(&self, after: u64, records: Vec<Vec<u8>>) -> Result<(), LogError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match self.publish_batch_once(after, &records).await {
                Ok(()) => return Ok(()),
                Err(Attempt::NoLeader(_))
                    if tokio::time::Instant::now() + NO_LEADER_RETRY < deadline =>
                {
                    tokio::time::sleep(NO_LEADER_RETRY).await;
                }
                Err(Attempt::NoLeader(e) | Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    async fn publish_batch_once(&self, after: u64, records: &[Vec<u8>]) -> Result<(), Attempt> {
        let count = records.len();
        let batch_id = Uuid::new_v4().simple().to_string();
        let end = (after + count as u64).to_string();
        let mut commit = None;
        for (i, bytes) in records.iter().cloned().enumerate() {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Batch-Id", batch_id.as_str());
            headers.insert("Nats-Batch-Sequence", (i + 1).to_string().as_str());
            headers.insert(COMMIT_END, end.as_str());
            if i == 0 {
                headers.insert("Nats-Expected-Last-Sequence", after.to_string().as_str());
            }
            if i + 1 == count {
                headers.insert("Nats-Batch-Commit", "1");
                commit = Some((headers, bytes));
            } else {
                self.client
                    .publish_with_headers(self.subject.clone(), headers, bytes.into())
                    .await
                    .map_err(|e| {
                        Attempt::Failed(unavailable(format!("publishing a batch: {e}")))
                    })?;
            }
        }
        let (headers, bytes) = commit.ok_or_else(|| Attempt::Failed(other("an empty batch")))?;
        let request = async_nats::Request::new()
            .headers(headers)
            .payload(bytes.into())
            .timeout(Some(self.timeout));
        let answer = self
            .client
            .send_request(self.subject.clone(), request)
            .await
            .map_err(|e| {
                let error = unavailable(format!(
                    "no acknowledgement of positions {} to {}: {e}",
                    after + 1,
                    after + count as u64
                ));
                if e.kind() == async_nats::RequestErrorKind::NoResponders {
                    Attempt::NoLeader(error)
                } else {
                    Attempt::Failed(error)
                }
            })?;
        if let Some(status) = answer.status {
            let error = unavailable(format!(
                "the stream answered {} {} to a commit",
                status.as_u16(),
                answer.description.unwrap_or_default()
            ));
            // 503: no responders, the stream has no leader now.
            return Err(if status.as_u16() == 503 {
                Attempt::NoLeader(error)
            } else {
                Attempt::Failed(error)
            });
        }
        let ack: ApiAnswer<BatchAck> = serde_json::from_slice(&answer.payload).map_err(|e| {
            Attempt::Failed(other(format!("an acknowledgement does not parse: {e}")))
        })?;
        match ack {
            ApiAnswer::Ok(ack) => {
                let last = after + count as u64;
                if ack.seq != last || ack.count != count || ack.batch != batch_id {
                    return Err(Attempt::Failed(other(format!(
                        "batch {batch_id} of {count} records after {after} was acknowledged as {} records ending at {} (batch {})",
                        ack.count, ack.seq, ack.batch
                    ))));
                }
                Ok(())
            }
            ApiAnswer::Err { error } if error.err_code == WRONG_LAST_SEQUENCE => {
                Err(Attempt::Failed(LogError::Storage(StorageError::Behind {
                    head: after,
                    // "wrong last sequence: N" names where the stream ends.
                    stored: error
                        .description
                        .rsplit(':')
                        .next()
                        .and_then(|n| n.trim().parse().ok())
                        .filter(|&n| n > after),
                    reason: error.to_string(),
                })))
            }
            ApiAnswer::Err { error } => Err(Attempt::Failed(other(format!(
                "a commit was refused: {error}"
            )))),
        }
    }
}

/// Positions are gapless only if the stream never lost a message.
fn check_gapless(name: &str, state: &stream::State) -> Result<(), LogError> {
    let last = state.last_sequence;
    let gapless =
        (last == 0 && state.messages == 0) || (state.first_sequence == 1 && state.messages == last);
    if gapless {
        Ok(())
    } else {
        Err(LogError::Corrupt(format!(
            "stream {name} holds {} messages from sequence {} to {last}: messages were removed",
            state.messages, state.first_sequence
        )))
    }
}

impl JetStreamBackend {
    /// Connects to the cluster, creates the stream if missing (see the
    /// crate docs for its configuration) and rebuilds the indexes from
    /// its records.
    pub fn open(options: &JetStreamOptions) -> Result<Self, LogError> {
        let runtime = OwnRuntime(Some(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("srs-jetstream")
                .enable_all()
                .build()
                .map_err(|e| LogError::Storage(StorageError::Io(e)))?,
        ));
        let nats = run_on(runtime.0.as_ref().ok_or(LogError::WriterStopped)?, {
            let options = options.clone();
            async move { Nats::connect(&options).await }
        })?;
        let backend = JetStreamBackend {
            runtime,
            nats,
            index: RwLock::new(Index::default()),
            unsure: AtomicBool::new(false),
            identity: String::new(),
            max_batch: options.max_batch.max(1),
        };
        let info = backend.run({
            let nats = backend.nats.clone();
            let replicas = options.replicas;
            async move { nats.ensure_stream(replicas).await }
        })?;
        check_gapless(&options.stream, &info.state)?;
        backend.index_up_to(info.state.last_sequence)?;
        Ok(JetStreamBackend {
            identity: format!(
                "{} created {}",
                options.stream,
                info.created.unix_timestamp_nanos()
            ),
            ..backend
        })
    }

    /// The stream's name.
    pub fn stream(&self) -> &str {
        &self.nats.stream
    }

    /// Which log this is: the stream's name and creation time. A stream
    /// deleted and created again under the same name is another log (what
    /// was built from the old one, read models, must not be kept).
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The name of the server leading the stream now (tests and drills).
    pub fn stream_leader(&self) -> Result<Option<String>, LogError> {
        let nats = self.nats.clone();
        self.run(async move {
            let info = nats.info().await?;
            Ok(info.cluster.as_ref().and_then(|c| c.leader.clone()))
        })
    }

    /// Runs `request` on the backend's runtime and waits for it.
    fn run<T: Send + 'static>(
        &self,
        request: impl Future<Output = Result<T, LogError>> + Send + 'static,
    ) -> Result<T, LogError> {
        let runtime = self.runtime.0.as_ref().ok_or(LogError::WriterStopped)?;
        run_on(runtime, request)
    }

    /// Reads and indexes every record after the index's head up to `last`
    /// and on to the end of the commit that holds it.
    fn index_up_to(&self, last: u64) -> Result<Head, LogError> {
        let mut from = self.read_index().head.position + 1;
        let mut last = last;
        while from <= last {
            let to = last.min(from + READ_BATCH as u64 * 16 - 1);
            let records = self.read_stored(from, to)?;
            if let Some((_, _, end)) = records.last() {
                last = last.max(*end);
            }
            self.index
                .write()
                .map_err(|_| other("the index lock is poisoned"))?
                .add_stored(&records)?;
            from = to + 1;
        }
        Ok(self.read_index().head)
    }

    fn read_stored(&self, from: u64, to: u64) -> Result<Vec<Stored>, LogError> {
        let nats = self.nats.clone();
        self.run(async move { nats.read(from, to).await })
    }

    fn read_index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        // A panic while holding the lock leaves whole entries only.
        self.index.read().unwrap_or_else(|e| e.into_inner())
    }
}

/// Spawns `request` on `runtime` and waits on a plain channel, so the
/// caller may be any thread, a tokio worker included.
fn run_on<T: Send + 'static>(
    runtime: &Runtime,
    request: impl Future<Output = Result<T, LogError>> + Send + 'static,
) -> Result<T, LogError> {
    let (tx, rx) = mpsc::sync_channel(1);
    runtime.spawn(async move {
        let _ = tx.send(request.await);
    });
    rx.recv().map_err(|_| LogError::WriterStopped)?
}

impl LogBackend for JetStreamBackend {
    fn head(&self) -> Result<Head, LogError> {
        Ok(self.read_index().head)
    }

    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        // Positions past the indexed head are not stored, as far as this
        // handle knows.
        let to = to.min(self.read_index().head.position);
        let mut next = from.max(1);
        while next <= to {
            let last = to.min(next + READ_BATCH as u64 - 1);
            // Read first, visit after: `visit` may call back into the backend.
            for (position, bytes, _) in self.read_stored(next, last)? {
                if !visit(position, &bytes)? {
                    return Ok(());
                }
            }
            next = last + 1;
        }
        Ok(())
    }

    fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError> {
        Ok(self.read_index().ids.get(&event_id).copied())
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        Ok(self
            .read_index()
            .streams
            .get(stream)
            .map(|versions| versions.len() as u64))
    }

    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>, LogError> {
        Ok(version.checked_sub(1).and_then(|i| {
            self.read_index()
                .streams
                .get(stream)
                .and_then(|versions| versions.get(i as usize).copied())
        }))
    }

    fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<u64>, LogError> {
        let index = self.read_index();
        let Some(versions) = index.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let start = (from_version.max(1) - 1) as usize;
        Ok(versions.iter().skip(start).take(max).copied().collect())
    }

    fn commit(&self, commit: Commit) -> Result<(), LogError> {
        if self.unsure.load(Ordering::Acquire) {
            return Err(unavailable("a commit failed; storage is not read back yet"));
        }
        let head = self.read_index().head;
        let Some(last) = commit.records.last() else {
            // Nothing to publish: the head is the last record's.
            return match commit.head {
                Some(wanted) if wanted != head => Err(other(format!(
                    "a commit without records names head {} but the stream ends at {}",
                    wanted.position, head.position
                ))),
                _ => Ok(()),
            };
        };
        if commit.records.len() > self.max_batch {
            return Err(other(format!(
                "a commit of {} records is over the {} of one atomic batch",
                commit.records.len(),
                self.max_batch
            )));
        }
        for (i, record) in commit.records.iter().enumerate() {
            if record.position != head.position + 1 + i as u64 {
                return Err(other(format!(
                    "a commit holds position {} where {} is next",
                    record.position,
                    head.position + 1 + i as u64
                )));
            }
        }
        let new_hash = match commit.head {
            Some(wanted) if wanted.position == last.position => wanted.hash,
            Some(wanted) => {
                return Err(other(format!(
                    "a commit names head {} but its last record is {}",
                    wanted.position, last.position
                )))
            }
            None => decode_record(last.position, &last.bytes)?.hash,
        };
        let entries: Vec<(u64, String, u64, Uuid)> = commit
            .records
            .iter()
            .map(|r| (r.position, r.stream.clone(), r.version, r.event_id))
            .collect();
        let bytes: Vec<Vec<u8>> = commit.records.into_iter().map(|r| r.bytes).collect();

        let published = {
            let nats = self.nats.clone();
            let after = head.position;
            self.run(async move { nats.publish_batch(after, bytes).await })
        };
        if let Err(e) = published {
            // Refused as not next: nothing stored, and the handle is fine.
            // Otherwise stored whole or not at all, but which is unknown
            // until resync.
            if !matches!(e, LogError::Storage(StorageError::Behind { .. })) {
                self.unsure.store(true, Ordering::Release);
            }
            return Err(e);
        }

        let indexed = self
            .index
            .write()
            .map_err(|_| other("the index lock is poisoned"))
            .and_then(|mut index| {
                for (position, stream, version, event_id) in &entries {
                    index.add(*position, stream, *version, *event_id)?;
                }
                index.head.hash = new_hash;
                Ok(())
            });
        if indexed.is_err() {
            // Stored, but not indexed: resync reads it back.
            self.unsure.store(true, Ordering::Release);
        }
        indexed
    }

    fn flush(&self) -> Result<(), LogError> {
        // A commit returns once a quorum stored it (see the crate docs).
        Ok(())
    }

    fn max_commit_records(&self) -> usize {
        self.max_batch
    }

    fn max_record_bytes(&self) -> usize {
        // The last server's limit the client saw (its default, 1 MiB,
        // before any); the batch headers travel in the same message.
        self.nats.client.max_payload().saturating_sub(HEADER_ROOM)
    }

    fn resync(&self) -> Option<Result<Head, LogError>> {
        let resynced = self.catch_up(0);
        if resynced.is_ok() {
            self.unsure.store(false, Ordering::Release);
        }
        Some(resynced)
    }

    fn follow(&self, wake: Wake) -> bool {
        let Some(runtime) = self.runtime.0.as_ref() else {
            return false;
        };
        let nats = self.nats.clone();
        let from = self.read_index().head.position + 1;
        runtime.spawn(async move { nats.follow(from, wake).await });
        true
    }

    fn catch_up(&self, stored: u64) -> Result<Head, LogError> {
        let head = self.read_index().head;
        // A position known stored past the head (the follower saw it, or a
        // commit was refused behind) is read up to without asking the
        // stream's leader; what follows it comes with the next wake.
        // Otherwise the stream's info says where it ends (it may lag what
        // the leader acknowledged by a few milliseconds).
        let last = if stored > head.position {
            stored
        } else {
            let nats = self.nats.clone();
            self.run(async move { nats.last_sequence().await })?
                .max(stored)
        };
        if last < head.position {
            return Err(LogError::Corrupt(format!(
                "the stream ends at {last} but {} was stored",
                head.position
            )));
        }
        self.index_up_to(last)
    }
}
