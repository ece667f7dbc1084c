//! The log on a JetStream cluster (`srs bench log --log-url URLS`):
//! `append_64_writers` through [`EventLog`] over
//! [`JetStreamBackend`] (64 concurrent single-event appends, the whole
//! core: ids, versions, the hash chain, group commit into atomic batches)
//! against
//!
//! * raw JetStream publishes of the same message size from 64 concurrent
//!   tasks, each publishing one message and waiting for its
//!   acknowledgement, on a stream of the same configuration (R3, file
//!   storage, the log stream's flags): no chain, no checks, the ceiling
//!   the log's appends can approach (`raw_publish_64`);
//! * the embedded sled log's `append_64_writers` of the same run;
//!
//! and the same 64 writers spread over two [`EventLog`] handles on one
//! stream (two nodes) against one handle.
//!
//! Each case has a stream of its own, named `srs-bench-<case>-<time>`,
//! deleted when the bench ends (also when a case fails). What bounds the
//! figures is the cluster's: with `sync_interval: always` every server
//! syncs every message it stores, so an acknowledgement waits for the
//! leader's and a follower's fsync of each record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, stream};
use srs_domain::log::{EventLog, EventStore, LogBackend, LogError, StoreOptions};
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};

use crate::log::{drive_appends, Appended, BenchEvent};
use crate::Figure;

/// Concurrent writers of every case.
const WRITERS: u64 = 64;

/// Runs the JetStream figures on the cluster at `urls` (comma-separated),
/// each case for `measure`; `sled_64` is the embedded log's
/// `append_64_writers` of the same run, if measured.
pub async fn run(
    urls: &str,
    measure: Duration,
    sled_64: Option<f64>,
) -> anyhow::Result<Vec<Figure>> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let names = Names {
        log: format!("srs-bench-log-{stamp}"),
        raw: format!("srs-bench-raw-{stamp}"),
        nodes: format!("srs-bench-nodes-{stamp}"),
    };
    let client = async_nats::connect(
        urls.split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect::<Vec<_>>(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("cannot connect to {urls}: {e}"))?;
    let js = jetstream::new(client);
    let figures = measure_all(urls, &js, &names, measure, sled_64).await;
    for name in [&names.log, &names.raw, &names.nodes] {
        // Absent when its case did not get that far.
        let _ = js.delete_stream(name).await;
    }
    figures
}

/// The streams of one run.
struct Names {
    log: String,
    raw: String,
    nodes: String,
}

async fn measure_all(
    urls: &str,
    js: &jetstream::Context,
    names: &Names,
    measure: Duration,
    sled_64: Option<f64>,
) -> anyhow::Result<Vec<Figure>> {
    // One handle, 64 writers.
    let (one, record_len) = {
        let (log, backend) = open_log(urls, &names.log).await?;
        let appended = drive_appends(std::slice::from_ref(&log), WRITERS, measure).await?;
        check_head(&log, &appended)?;
        let mut record_len = 0;
        backend.scan(1, 1, &mut |_, bytes| {
            record_len = bytes.len();
            Ok(false)
        })?;
        (appended, record_len)
    };
    // Raw publishes of the same size.
    let raw = raw_publish_rate(js, &names.raw, record_len, measure).await?;
    // Two handles (two nodes) on one stream, 32 writers each.
    let two = {
        let (first, _) = open_log(urls, &names.nodes).await?;
        let (second, _) = open_log(urls, &names.nodes).await?;
        let logs = [first, second];
        let appended = drive_appends(&logs, WRITERS, measure).await?;
        // A third handle reads back what the two stored.
        let (reader, _) = open_log(urls, &names.nodes).await?;
        check_head(&reader, &appended)?;
        appended
    };

    let mut figures =
        vec![
            Figure::new("log", "append_64_writers_jetstream", one.rate(), "events/s")
                .against("raw_publish_64", raw),
        ];
    if let Some(sled) = sled_64 {
        figures.push(
            Figure::new("log", "append_64_jetstream_vs_sled", one.rate(), "events/s")
                .against("append_64_writers", sled),
        );
    }
    figures.push(
        Figure::new("log", "append_64_writers_2_nodes", two.rate(), "events/s")
            .against("append_64_writers_jetstream", one.rate()),
    );
    figures.push(Figure::new(
        "log",
        "retries_per_append_2_nodes",
        retries_per_append(&two),
        "retries",
    ));
    figures.push(Figure::new(
        "log",
        "jetstream_record_bytes",
        record_len as f64,
        "bytes",
    ));
    Ok(figures)
}

/// Attempts answered `Unavailable` per acknowledged append, two decimals.
fn retries_per_append(appended: &Appended) -> f64 {
    (appended.retries as f64 / appended.events.max(1) as f64 * 100.0).round() / 100.0
}

/// A log on a fresh stream (created R3 by the backend), and its backend.
async fn open_log(
    urls: &str,
    stream: &str,
) -> anyhow::Result<(EventLog<BenchEvent>, Arc<dyn LogBackend>)> {
    let options = JetStreamOptions::new(urls, stream);
    let backend: Arc<dyn LogBackend> =
        Arc::new(tokio::task::spawn_blocking(move || JetStreamBackend::open(&options)).await??);
    let log = EventLog::new(backend.clone(), StoreOptions::default())?;
    Ok((log, backend))
}

/// Every acknowledged append is stored once: the stream's head is the count.
fn check_head(log: &EventLog<BenchEvent>, appended: &Appended) -> Result<(), LogError> {
    let head = EventStore::head(log).position;
    if head != appended.events {
        return Err(LogError::Corrupt(format!(
            "{} appends were acknowledged but the stream holds {head} records",
            appended.events
        )));
    }
    Ok(())
}

/// Raw JetStream: [`WRITERS`] tasks, each publishing one `len`-byte
/// message to a stream of the log's configuration and waiting for its
/// acknowledgement, for `measure`; messages/s.
async fn raw_publish_rate(
    js: &jetstream::Context,
    name: &str,
    len: usize,
    measure: Duration,
) -> anyhow::Result<f64> {
    let subject = format!("{name}.log");
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.clone()],
        storage: stream::StorageType::File,
        num_replicas: 3,
        allow_atomic_publish: true,
        allow_direct: true,
        deny_delete: true,
        deny_purge: true,
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating stream {name}: {e}"))?;
    // The stream's leader is elected after its creation: wait for it.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stream = js.get_stream(name).await?;
        let info = stream.info().await?;
        if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) {
            break;
        }
        anyhow::ensure!(Instant::now() < deadline, "stream {name} elected no leader");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let payload = bytes_of(len);
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let stop = start + measure;
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let (js, subject, payload, done) =
            (js.clone(), subject.clone(), payload.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < stop {
                js.publish(subject.clone(), payload.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("publishing: {e}"))?
                    .await
                    .map_err(|e| anyhow::anyhow!("waiting for an acknowledgement: {e}"))?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64())
}

fn bytes_of(len: usize) -> hyper::body::Bytes {
    vec![0x5a; len.max(1)].into()
}
