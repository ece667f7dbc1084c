//! The recordings catalogue at scale: `recordings` recordings (start and
//! end) are folded straight into a catalogue tree by the catalogue
//! projection, then filtered pages of 50 (with their total count) are timed
//! as an ADMIN sees them. The baseline, in the same run and on the same
//! tree, is reading 50 recordings by key: what any page costs at least.
//! Latency ratios are `baseline / value`, so higher is better, as for rates.
//!
//! Also reported: how long the fold into the tree took, flushed (events per
//! second), how long loading the in-memory search index from the tree
//! takes, and how much the process's resident size grew by it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_domain::actor::Actor;
use srs_domain::log::{Envelope, Hash};
use srs_domain::model::testing::fixtures::{decision, SERVER, SITE, T0};
use srs_domain::model::{DomainEvent, Principal, RecordingAction, RecordingMode, Role};
use srs_domain::time::Timestamp;
use srs_projections::engine::apply_events;
use srs_projections::models::access::Viewer;
use srs_projections::models::catalogue::{
    Catalogue, CatalogueProjection, RecordingFilter, RecordingQuery,
};
use srs_projections::store::{Keyspace, StoreError, Tree};
use srs_projections::ProjectionError;
use uuid::Uuid;

use crate::rebuild::APPS;
use crate::Figure;

const USERS: u64 = 500;
const HOSTS: u64 = 40;
const GROUPS: [&str; 3] = ["Office", "Trading", "Support"];
/// Events folded per catalogue commit.
const BATCH: usize = 8192;
/// Timed queries per figure.
const QUERIES: usize = 300;

fn recording_id(n: u64) -> Uuid {
    Uuid::from_u128(0xca7a_0000_0000_0000 + u128::from(n))
}

fn envelope(
    position: u64,
    stream: &str,
    version: u64,
    payload: DomainEvent,
) -> Envelope<DomainEvent> {
    Envelope {
        position,
        stream: stream.to_owned(),
        version,
        event_id: Uuid::from_u128(u128::from(position)),
        recorded_at: T0,
        actor: Actor::system("bench"),
        correlation_id: Uuid::nil(),
        causation_id: None,
        payload,
        prev_hash: Hash([0; 32]),
        hash: Hash([0; 32]),
    }
}

/// The start and end of recording `n`, at log positions `2n+1`, `2n+2`:
/// one recording every 3 seconds, users, hosts, applications and delivery
/// groups spread evenly, durations from 1 minute to 2 hours.
fn recording(n: u64) -> [Envelope<DomainEvent>; 2] {
    let id = recording_id(n);
    let stream = format!("recording-{id}");
    let started_at = T0.plus_secs(n as i64 * 3);
    let start = DomainEvent::RecordingStarted {
        recording_id: id,
        site_id: SITE,
        server_id: SERVER,
        session_id: format!("session-{n}"),
        part: 1,
        previous_recording_id: None,
        user: format!("CORP\\user{:03}", n % USERS),
        domain: Some("CORP".into()),
        groups: vec!["CORP\\Staff".into()],
        client_name: Some(format!("PC-{}", n % 5000)),
        client_ip: Some(format!(
            "10.{}.{}.{}",
            (n >> 16) % 250,
            (n >> 8) % 250,
            n % 250
        )),
        host: format!("VDA-{:02}", (n / 7) % HOSTS),
        delivery_group: Some(GROUPS[(n / 3) as usize % GROUPS.len()].into()),
        applications: vec![APPS[(n / 11) as usize % APPS.len()].into()],
        mode: RecordingMode::EventsOnly,
        decision: decision(RecordingAction::RecordEventsOnly),
        started_at,
    };
    let end = DomainEvent::RecordingEnded {
        recording_id: id,
        site_id: SITE,
        server_id: SERVER,
        ended_at: started_at.plus_secs(60 + ((n * 7919) % 7140) as i64),
    };
    [
        envelope(2 * n + 1, &stream, 1, start),
        envelope(2 * n + 2, &stream, 2, end),
    ]
}

fn admin() -> Viewer {
    Viewer::new(
        Principal {
            token_id: Uuid::nil(),
            name: "bench".into(),
            role: Role::Admin,
            site_ids: Default::default(),
            groups: Vec::new(),
            server_id: None,
        },
        BTreeMap::new(),
    )
}

/// The filters timed, in turn, each taken from an existing recording so it
/// matches: its user; its user on its host; its application over its day;
/// its delivery group's long sessions.
fn filter(i: usize, recordings: u64) -> RecordingFilter {
    let n = (i as u64).wrapping_mul(2_654_435_761) % recordings;
    let [start, _] = recording(n);
    let DomainEvent::RecordingStarted {
        user,
        host,
        applications,
        delivery_group,
        started_at,
        ..
    } = start.payload
    else {
        unreachable!("recording() starts with RecordingStarted")
    };
    let day = started_at.0.div_euclid(86_400_000_000);
    match i % 4 {
        0 => RecordingFilter {
            users: vec![user],
            ..Default::default()
        },
        1 => RecordingFilter {
            users: vec![user],
            hosts: vec![host],
            ..Default::default()
        },
        2 => RecordingFilter {
            applications,
            started_after: Some(Timestamp(day * 86_400_000_000)),
            started_before: Some(Timestamp((day + 1) * 86_400_000_000)),
            ..Default::default()
        },
        _ => RecordingFilter {
            delivery_groups: delivery_group.into_iter().collect(),
            min_duration_sec: Some(3600),
            ..Default::default()
        },
    }
}

fn p99(samples: &[Duration]) -> f64 {
    let mut us: Vec<u64> = samples.iter().map(|d| d.as_micros() as u64).collect();
    us.sort_unstable();
    crate::quantile_ms(&us, 0.99).unwrap_or(f64::NAN)
}

/// Builds the catalogue of `recordings` recordings and returns the
/// `catalogue_filtered_page_p99` figure against `sled_get_50_rows`.
pub fn run(recordings: u64) -> Result<Vec<Figure>, ProjectionError> {
    let db = sled::Config::new()
        .temporary(true)
        .cache_capacity(512 * 1024 * 1024)
        .open()
        .map_err(StoreError::from)?;
    let tree: Tree = db.open_tree("catalogue").map_err(StoreError::from)?.into();
    let projection = CatalogueProjection::new();
    let fold_start = Instant::now();
    let mut checkpoint = 0;
    let mut batch = Vec::with_capacity(BATCH);
    for n in 0..recordings {
        batch.extend(recording(n));
        if batch.len() >= BATCH || n + 1 == recordings {
            let applied = apply_events(&projection, &tree, checkpoint, &batch)?;
            if let Some(stopped) = applied.stopped {
                return Err(ProjectionError::Invariant(stopped.to_string()));
            }
            checkpoint = applied.position;
            batch.clear();
        }
    }
    // Written out before anything is timed: sled's background flush of the
    // fold would otherwise compete with the timed reads.
    tree.flush()?;
    let fold = fold_start.elapsed();
    // The rows are read once before measuring, so that the growth measured
    // is the index's, not sled's cache's.
    if tree.scan_prefix(b"r/").count() as u64 != recordings {
        return Err(ProjectionError::Invariant("rows missing".into()));
    }
    let catalogue = Catalogue::new(Arc::new(tree));
    let rss_before = crate::resources::rss_bytes().unwrap_or(0);
    let load_start = Instant::now();
    let listed = catalogue.load_index()?;
    let load = load_start.elapsed();
    let rss_after = crate::resources::rss_bytes().unwrap_or(0);
    if listed != recordings {
        return Err(ProjectionError::Invariant(format!(
            "the index lists {listed} of {recordings} recordings"
        )));
    }
    let viewer = admin();

    let mut pages = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES + 20 {
        let query = RecordingQuery {
            filter: filter(i, recordings),
            first: Some(50),
            with_total: true,
            ..Default::default()
        };
        let start = Instant::now();
        let page = catalogue.search(&viewer, &query)?;
        let took = start.elapsed();
        if page.items.is_empty() {
            return Err(ProjectionError::Invariant(format!(
                "filter {i} matched nothing: the bench measures nothing"
            )));
        }
        // The first queries warm the cache.
        if i >= 20 {
            pages.push(took);
        }
    }

    let mut gets = Vec::with_capacity(QUERIES);
    for i in 0..QUERIES {
        let start = Instant::now();
        for k in 0..50u64 {
            let n = (i as u64 * 50 + k).wrapping_mul(2_654_435_761) % recordings;
            if catalogue.get(recording_id(n))?.is_none() {
                return Err(ProjectionError::Invariant(format!("recording {n} missing")));
            }
        }
        gets.push(start.elapsed());
    }
    let (value, baseline) = (p99(&pages), p99(&gets));
    Ok(vec![
        Figure::new("rebuild", "catalogue_filtered_page_p99", value, "ms")
            .against_latency("sled_get_50_rows", baseline),
        Figure::new(
            "rebuild",
            "catalogue_fold_events_per_sec",
            (2 * recordings) as f64 / fold.as_secs_f64().max(1e-9),
            "events/s",
        ),
        Figure::new(
            "rebuild",
            "catalogue_index_load",
            load.as_secs_f64() * 1000.0,
            "ms",
        ),
        Figure::new(
            "rebuild",
            "catalogue_index_rss_growth",
            rss_after.saturating_sub(rss_before) as f64,
            "bytes",
        ),
    ])
}
