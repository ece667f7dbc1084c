//! The log's figures: durable append throughput with 1, 8 and 64
//! concurrent single-event writers against raw sled batches of 1000 values
//! plus a flush (same value size), and the full-scan read rate (decoded
//! envelopes) against a raw sled iteration of the same tree; and what
//! sealing costs the ingest path: session events appended as the service
//! does (batches of 50 per request, 8 agents, each on its own recording)
//! stored plain against the same events sealed under their recording's
//! key first (`srs_domain::seal`, keys on disk as `srs serve` keeps them,
//! created before the clock starts as `startRecording` does).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::{
    AppendError, Event, EventLog, EventStore, ExpectedVersion, LogError, NewEvent, SledEventStore,
    StoreOptions, LOG_TREE,
};

use srs_domain::model::{DomainEvent, SessionEvent, SessionEventData, SessionEventType};
use srs_domain::seal::{self, KeyRing};

use crate::resources::dir_size;
use crate::Figure;

/// How long and how big.
#[derive(Clone, Debug)]
pub struct LogBenchOptions {
    /// Measuring time per append figure.
    pub seconds: f64,
    /// Events in the log that is scanned.
    pub scan_events: u64,
}

impl Default for LogBenchOptions {
    fn default() -> Self {
        LogBenchOptions {
            seconds: 3.0,
            scan_events: 200_000,
        }
    }
}

/// A payload of the size of a typical session event.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenchEvent {
    pub recording: uuid::Uuid,
    pub kind: String,
    pub offset_ms: u64,
    pub data: String,
}

impl Event for BenchEvent {
    fn event_type(&self) -> &'static str {
        "BenchEvent"
    }
}

pub fn bench_event(n: u64) -> BenchEvent {
    BenchEvent {
        recording: uuid::Uuid::from_u128(n as u128 / 64),
        kind: "WEB_BROWSING".into(),
        offset_ms: n * 250,
        data: format!(
            "{{\"url\":\"https://intranet.example.com/page/{n}\",\"browser\":\"msedge.exe\"}}"
        ),
    }
}

fn actor() -> Actor {
    Actor::Agent {
        server_id: uuid::Uuid::from_u128(42),
    }
}

/// Runs the log figures.
pub async fn run(options: &LogBenchOptions) -> Result<Vec<Figure>, LogError> {
    let measure = Duration::from_secs_f64(options.seconds);
    let mut figures = Vec::new();

    let (one, record_len) = append_rate(1, measure).await?;
    let baseline = raw_batch_rate(record_len, 1000, measure)?;
    // The ceiling for 64 single-event writers: each flush can carry at most
    // one event per writer.
    let ceiling_64 = raw_batch_rate(record_len, 64, measure)?;
    figures.push(
        Figure::new("log", "append_1_writer", one, "events/s")
            .against("sled_batch_flush", baseline),
    );
    for (writers, name) in [(8, "append_8_writers"), (64, "append_64_writers")] {
        let (rate, _) = append_rate(writers, measure).await?;
        figures
            .push(Figure::new("log", name, rate, "events/s").against("sled_batch_flush", baseline));
    }
    figures.push(
        Figure::new("log", "append_64_vs_1_writer", figures[2].value, "events/s")
            .against("append_1_writer", one),
    );
    figures.push(
        Figure::new("log", "append_64_vs_batch_64", figures[2].value, "events/s")
            .against("sled_batch64_flush", ceiling_64),
    );

    let plain = session_append_rate(false, measure).await?;
    let sealed = session_append_rate(true, measure).await?;
    figures.push(
        Figure::new("log", "session_events_sealed", sealed, "events/s")
            .against("session_events_plain", plain),
    );

    let (scan, raw_scan, bytes_per_event) = scan_rates(options.scan_events).await?;
    figures.push(Figure::new("log", "scan", scan, "events/s").against("sled_iter", raw_scan));
    figures.push(Figure::new(
        "resources",
        "disk_bytes_per_event",
        bytes_per_event,
        "bytes",
    ));
    Ok(figures)
}

/// Durable single-event appends from `writers` concurrent tasks for
/// `measure`; returns events/s and the stored record size (`append_64_writers`
/// with 64).
pub async fn append_rate(writers: u64, measure: Duration) -> Result<(f64, usize), LogError> {
    let dir = tempfile::tempdir().map_err(io)?;
    let log = SledEventStore::<BenchEvent>::open(dir.path(), StoreOptions::default())?;
    let appended = drive_appends(std::slice::from_ref(log.log()), writers, measure).await?;
    let record_len = log
        .tree()
        .get([b'e', 0, 0, 0, 0, 0, 0, 0, 1])?
        .map(|v| v.len())
        .unwrap_or(256);
    Ok((appended.rate(), record_len))
}

/// What [`drive_appends`] did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Appended {
    /// Appends acknowledged.
    pub events: u64,
    /// Attempts answered `Unavailable` and made again with the same event.
    pub retries: u64,
    pub elapsed: Duration,
}

impl Appended {
    /// Acknowledged events per second.
    pub fn rate(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// How long one append may be retried (answered `Unavailable`) before the
/// run fails.
const RETRY_FOR: Duration = Duration::from_secs(30);

/// `writers` concurrent tasks, spread round-robin over the handles in
/// `logs` (one log, or several nodes on one stored log), each appending
/// one event at a time to a stream of its own until `measure` has passed.
/// An append answered `Unavailable` (its outcome unknown: a backend
/// catching up with what another handle stored) is made again with the
/// same event, as a client does, so it is stored once; only acknowledged
/// appends count, and a task finishes the append it started.
pub async fn drive_appends(
    logs: &[EventLog<BenchEvent>],
    writers: u64,
    measure: Duration,
) -> Result<Appended, LogError> {
    let done = Arc::new(AtomicU64::new(0));
    let retries = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + measure;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let log = logs[w as usize % logs.len()].clone();
        let (done, retries) = (done.clone(), retries.clone());
        tasks.push(tokio::spawn(async move {
            let stream = format!("recording-{w}");
            let mut n = w << 32;
            while Instant::now() < deadline {
                let event = NewEvent::new(actor(), bench_event(n));
                let first = Instant::now();
                loop {
                    match log
                        .append(&stream, ExpectedVersion::Any, vec![event.clone()])
                        .await
                    {
                        Ok(_) => break,
                        Err(AppendError::Log(LogError::Unavailable { .. }))
                            if first.elapsed() < RETRY_FOR =>
                        {
                            retries.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(e) => return Err(e),
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                n += 1;
            }
            Ok::<_, AppendError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| LogError::Corrupt(format!("writer task failed: {e}")))?
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
    }
    Ok(Appended {
        events: done.load(Ordering::Relaxed),
        retries: retries.load(Ordering::Relaxed),
        elapsed: start.elapsed(),
    })
}

/// Agents recording session events at once in [`session_append_rate`].
const SESSION_WRITERS: u64 = 8;
/// Session events per append (`srs simulate`'s default batch).
const SESSION_BATCH: u64 = 50;

/// A WEB_BROWSING session event of recording `recording`.
fn session_event(recording: uuid::Uuid, n: u64) -> DomainEvent {
    DomainEvent::SessionEventRecorded {
        recording_id: recording,
        site_id: uuid::Uuid::from_u128(7),
        event: SessionEvent {
            event_id: uuid::Uuid::now_v7(),
            event_type: SessionEventType::WebBrowsing,
            offset_ms: n * 250,
            data: SessionEventData::Web {
                url: format!("https://intranet.example.com/page/{n}?q=quarterly+report"),
                browser: Some("msedge.exe".into()),
                title: Some(format!("Quarterly report {n} - Intranet")),
            },
        },
    }
}

/// Durable appends of [`SESSION_BATCH`] session events from
/// [`SESSION_WRITERS`] concurrent agents for `measure`, each event sealed
/// first when `sealed`; events/s.
async fn session_append_rate(sealed: bool, measure: Duration) -> Result<f64, LogError> {
    let dir = tempfile::tempdir().map_err(io)?;
    let log = SledEventStore::<DomainEvent>::open(&dir.path().join("db"), StoreOptions::default())?;
    let keys = Arc::new(
        KeyRing::open_dir(&KeyRing::dir_of(dir.path()))
            .map_err(|e| LogError::Corrupt(e.to_string()))?,
    );
    let mut recordings = Vec::new();
    for _ in 0..SESSION_WRITERS {
        let recording = uuid::Uuid::now_v7();
        keys.create(recording)
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        recordings.push(recording);
    }
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    let deadline = start + measure;
    for recording in recordings {
        let (log, keys, done) = (log.clone(), keys.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let stream = format!("recording-{recording}");
            let mut n = 0;
            while Instant::now() < deadline {
                let mut batch = Vec::with_capacity(SESSION_BATCH as usize);
                for _ in 0..SESSION_BATCH {
                    let mut event = session_event(recording, n);
                    if sealed {
                        event = seal::seal_event(&keys, event)
                            .map_err(|e| LogError::Corrupt(e.to_string()))?;
                    }
                    batch.push(NewEvent::new(actor(), event));
                    n += 1;
                }
                let _ = log
                    .append(&stream, ExpectedVersion::Any, batch)
                    .await
                    .map_err(|e| LogError::Corrupt(e.to_string()))?;
                done.fetch_add(SESSION_BATCH, Ordering::Relaxed);
            }
            Ok::<_, LogError>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| LogError::Corrupt(format!("writer task failed: {e}")))??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

/// Raw sled: batches of `per_batch` values of `value_len` bytes, each
/// applied and flushed, for `measure`; values/s.
fn raw_batch_rate(value_len: usize, per_batch: usize, measure: Duration) -> Result<f64, LogError> {
    let dir = tempfile::tempdir().map_err(io)?;
    let db = sled::Config::new().path(dir.path()).open()?;
    let tree = db.open_tree(LOG_TREE)?;
    let value = vec![0x5au8; value_len];
    let start = Instant::now();
    let mut key = 0u64;
    while start.elapsed() < measure {
        let mut batch = sled::Batch::default();
        for _ in 0..per_batch {
            key += 1;
            batch.insert(&key.to_be_bytes()[..], value.clone());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    Ok(key as f64 / start.elapsed().as_secs_f64())
}

/// Fills a log with `events` events, then times a full decoded scan and a
/// raw iteration of the same tree; also returns bytes on disk per event.
async fn scan_rates(events: u64) -> Result<(f64, f64, f64), LogError> {
    let dir = tempfile::tempdir().map_err(io)?;
    let log = SledEventStore::<BenchEvent>::open(dir.path(), StoreOptions::default())?;
    let mut n = 0;
    while n < events {
        let count = (events - n).min(1000);
        let batch = (n..n + count)
            .map(|i| NewEvent::new(actor(), bench_event(i)))
            .collect();
        let _ = log
            .append(
                &format!("recording-{}", n / 1000),
                ExpectedVersion::Any,
                batch,
            )
            .await
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        n += count;
    }
    log.flush()?;

    let start = Instant::now();
    let mut from = 1;
    let mut seen = 0u64;
    loop {
        let page = log.read_all(from, 1024).await?;
        if page.is_empty() {
            break;
        }
        seen += page.len() as u64;
        from += page.len() as u64;
    }
    let scan = seen as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut raw = 0u64;
    let mut bytes = 0usize;
    for entry in log.tree().range([b'e'].as_slice()..[b'f'].as_slice()) {
        let (_, v) = entry?;
        bytes += v.len();
        raw += 1;
    }
    let raw_scan = raw as f64 / start.elapsed().as_secs_f64();
    debug_assert!(bytes > 0);
    let per_event = dir_size(dir.path()) as f64 / events.max(1) as f64;
    Ok((scan, raw_scan, per_event))
}

fn io(e: std::io::Error) -> LogError {
    LogError::Storage(srs_domain::log::StorageError::Io(e))
}
