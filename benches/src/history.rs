//! A filtered `history` page at scale: the rebuild bench's generated log
//! of about `events` events is folded into the history index, then pages
//! of 50 are timed as the `history` resolver reads them: the positions the
//! index selects, then those events from the log by position. Filters: a
//! sparse type (`ServerConnected`, once, at the start), a dense one
//! (`RecordingEnded`, once per recording) and a type of one site.
//!
//! The baseline, in the same run and on the same log, is the page read by
//! scanning the log from the start for the same events (up to 50,000
//! events, as `history` did before the index). Latency ratios are
//! `baseline / value`, so higher is better.

use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_domain::log::{EventStore, LogError, SledEventStore};
use srs_domain::model::testing::fixtures::SITE;
use srs_domain::model::DomainEvent;
use srs_projections::engine::apply_events;
use srs_projections::models::history::{History, HistoryProjection};
use srs_projections::models::HistoryQuery;
use srs_projections::store::{Keyspace, Store};

use crate::Figure;

const PAGE: usize = 50;
const QUERIES: usize = 60;
const SCAN_LIMIT: usize = 50_000;

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(e.to_string())
}

fn queries() -> Vec<HistoryQuery> {
    let types = |t: &[&str]| Some(t.iter().map(|t| t.to_string()).collect());
    vec![
        HistoryQuery {
            types: types(&["ServerConnected"]),
            ..HistoryQuery::default()
        },
        HistoryQuery {
            types: types(&["RecordingEnded"]),
            ..HistoryQuery::default()
        },
        HistoryQuery {
            types: types(&["RecordingStarted", "RecordingEnded"]),
            site: Some(SITE),
            ..HistoryQuery::default()
        },
    ]
}

fn selects(q: &HistoryQuery, name: &str, site: Option<uuid::Uuid>) -> bool {
    q.types.as_ref().is_none_or(|t| t.iter().any(|t| t == name))
        && q.site.is_none_or(|s| site == Some(s))
}

/// One page from the index: its positions, then the events by position.
async fn index_page(
    store: &SledEventStore<DomainEvent>,
    history: &History,
    q: &HistoryQuery,
) -> Result<usize, LogError> {
    let positions: Vec<u64> = history
        .positions(q, 1, u64::MAX)
        .map_err(corrupt)?
        .take(PAGE + 1)
        .collect::<Result<_, _>>()
        .map_err(corrupt)?;
    let mut read = 0;
    for p in positions.iter().take(PAGE) {
        read += store.read_all(*p, 1).await?.len();
    }
    Ok(read)
}

/// One page by scanning the log from the start.
async fn scan_page(
    store: &SledEventStore<DomainEvent>,
    q: &HistoryQuery,
) -> Result<usize, LogError> {
    let (mut from, mut scanned, mut found) = (1, 0, 0);
    loop {
        let batch = store.read_all(from, 1024).await?;
        if batch.is_empty() {
            return Ok(found);
        }
        for e in &batch {
            from = e.position + 1;
            scanned += 1;
            if found > PAGE || scanned >= SCAN_LIMIT {
                return Ok(found);
            }
            found += usize::from(selects(q, e.payload.name(), e.payload.site_id()));
        }
    }
}

fn p99(samples: &[Duration]) -> f64 {
    let mut us: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
    us.sort_unstable();
    crate::quantile_ms(&us, 0.99).unwrap_or(f64::NAN)
}

/// Writes about `events` events, folds the history index, and returns the
/// `history_page_p99` figure against `history_scan_page_p99`.
pub async fn run(events: u64) -> Result<Vec<Figure>, LogError> {
    let dir =
        tempfile::tempdir().map_err(|e| LogError::Storage(srs_domain::log::StorageError::Io(e)))?;
    let store = crate::rebuild::generate(dir.path(), events).await?;
    let db = srs_projections::store::Db::temporary().map_err(corrupt)?;
    let tree = db.open("history").map_err(corrupt)?;
    let mut checkpoint = 0;
    loop {
        let batch = store.read_all(checkpoint + 1, 8192).await?;
        if batch.is_empty() {
            break;
        }
        let applied =
            apply_events(&HistoryProjection, &tree, checkpoint, &batch).map_err(corrupt)?;
        if let Some(stopped) = applied.stopped {
            return Err(corrupt(stopped));
        }
        checkpoint = applied.position;
    }
    tree.flush().map_err(corrupt)?;
    let history = History::new(Arc::new(tree));
    let (mut pages, mut scans) = (Vec::new(), Vec::new());
    for (i, q) in queries().iter().cycle().take(QUERIES * 3).enumerate() {
        let start = Instant::now();
        let read = index_page(&store, &history, q).await?;
        let took = start.elapsed();
        if read == 0 {
            return Err(corrupt(format!(
                "{q:?} matched nothing: the bench measures nothing"
            )));
        }
        let start = Instant::now();
        scan_page(&store, q).await?;
        let scanned = start.elapsed();
        // The first round warms the caches.
        if i >= 3 {
            pages.push(took);
            scans.push(scanned);
        }
    }
    Ok(vec![Figure::new(
        "rebuild",
        "history_page_p99",
        p99(&pages),
        "ms",
    )
    .against_latency("history_scan_page_p99", p99(&scans))])
}
