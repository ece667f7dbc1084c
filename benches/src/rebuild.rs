//! Rebuilding every read model from the log: a generated history of
//! recordings (start, session events, end) is rebuilt by all projections
//! at once; the figure is compared with a raw sled iteration of the same log
//! tree in the same run.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use srs_domain::actor::Actor;
use srs_domain::log::{
    EventStore, ExpectedVersion, LogError, NewEvent, SledEventStore, StoreOptions, LOG_TREE,
};
use srs_domain::model::testing::fixtures::{decision, CREDENTIAL, SERVER, SITE, T0};
use srs_domain::model::{
    Deployment, DomainEvent, RecordingAction, RecordingMode, SessionEvent, SessionEventData,
    SessionEventType,
};
use uuid::Uuid;

use crate::Figure;

/// Session events per generated recording (plus its start and end).
const EVENTS_PER_RECORDING: u64 = 8;

const USERS: [&str; 8] = [
    "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi",
];
/// Applications of the generated sessions (shared with the catalogue bench).
pub(crate) const APPS: [&str; 6] = [
    "excel.exe",
    "winword.exe",
    "msedge.exe",
    "cmd.exe",
    "outlook.exe",
    "sap.exe",
];

fn recording(n: u64) -> Vec<DomainEvent> {
    let recording_id = Uuid::from_u128(0x7ec0_0000_0000 + n as u128);
    let started_at = T0.plus_secs(n as i64 * 30);
    let user = format!("CORP\\{}", USERS[n as usize % USERS.len()]);
    let mut events = vec![DomainEvent::RecordingStarted {
        recording_id,
        site_id: SITE,
        server_id: SERVER,
        session_id: format!("session-{n}"),
        part: 1,
        previous_recording_id: None,
        user,
        domain: Some("CORP".into()),
        groups: vec!["CORP\\Staff".into()],
        client_name: Some(format!("PC-{}", n % 500)),
        client_ip: Some(format!("10.1.{}.{}", (n / 250) % 250, n % 250)),
        host: format!("VDA-{:02}", n % 40),
        delivery_group: Some(["Office", "Trading", "Support"][n as usize % 3].into()),
        applications: vec!["Desktop".into()],
        mode: RecordingMode::ScreenAndEvents,
        decision: decision(RecordingAction::RecordScreenAndEvents),
        started_at,
    }];
    for e in 0..EVENTS_PER_RECORDING {
        events.push(DomainEvent::SessionEventRecorded {
            recording_id,
            site_id: SITE,
            event: SessionEvent {
                event_id: Uuid::from_u128(((n as u128) << 16) + e as u128 + 1),
                event_type: SessionEventType::AppStart,
                offset_ms: e * 15_000,
                data: SessionEventData::App {
                    app: APPS[(n + e) as usize % APPS.len()].into(),
                    pid: None,
                    title: None,
                    detail: None,
                },
            },
        });
    }
    events.push(DomainEvent::RecordingEnded {
        recording_id,
        site_id: SITE,
        server_id: SERVER,
        ended_at: started_at.plus_secs(60 + (n % 3600) as i64),
    });
    events
}

fn corrupt(e: impl std::fmt::Display) -> LogError {
    LogError::Corrupt(e.to_string())
}

/// Writes the generated history of about `events` events into a fresh log
/// in `dir`: a site, a server, then recordings of
/// `EVENTS_PER_RECORDING + 2` events each.
pub async fn generate(
    dir: &std::path::Path,
    events: u64,
) -> Result<SledEventStore<DomainEvent>, LogError> {
    let store = SledEventStore::<DomainEvent>::open(dir, StoreOptions::default())?;
    let actor = Actor::system("bench");
    let setup = vec![
        (
            format!("site-{SITE}"),
            DomainEvent::SiteCreated {
                site_id: SITE,
                name: "Bench".into(),
                at: T0,
            },
        ),
        (
            format!("server-{SERVER}"),
            DomainEvent::ServerConnected {
                server_id: SERVER,
                site_id: SITE,
                name: "SR-01".into(),
                host: "sr01.corp".into(),
                deployment: Deployment::OnPremises,
                version: "2411".into(),
                credential_sha256: CREDENTIAL.into(),
                at: T0,
            },
        ),
    ];
    for (stream, event) in setup {
        let _ = store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(actor.clone(), event)],
            )
            .await
            .map_err(corrupt)?;
    }
    let recordings = events / (EVENTS_PER_RECORDING + 2);
    for n in 0..recordings {
        let batch = recording(n)
            .into_iter()
            .map(|e| NewEvent::new(actor.clone(), e))
            .collect();
        let _ = store
            .append(&format!("recording-{n}"), ExpectedVersion::NoStream, batch)
            .await
            .map_err(corrupt)?;
    }
    store.flush()?;
    Ok(store)
}

/// Entries per second of a raw sled iteration over the log's events: the
/// baseline of `rebuild_all`.
pub fn sled_iter_rate(store: &SledEventStore<DomainEvent>) -> Result<f64, LogError> {
    let start = Instant::now();
    let mut raw = 0u64;
    let tree = store.db().open_tree(LOG_TREE)?;
    for entry in tree.range([b'e'].as_slice()..[b'f'].as_slice()) {
        let (_, value) = entry?;
        raw += u64::from(!value.is_empty());
    }
    Ok(raw as f64 / start.elapsed().as_secs_f64())
}

/// Writes about `events` events, rebuilds all read models, and returns the
/// `rebuild_all` figure against `sled_iter` over the same log tree, with
/// the storage's floor under it ([`write_floor`]) and the entries rebuilt.
pub async fn run(events: u64) -> Result<Vec<Figure>, LogError> {
    let dir = tempfile::tempdir().map_err(|e| LogError::Storage(sled::Error::Io(e)))?;
    let store = generate(dir.path(), events).await?;
    let raw_rate = sled_iter_rate(&store)?;

    let db = store.db().clone();
    let shared: Arc<dyn EventStore<DomainEvent>> = Arc::new(store);
    let report = srs_projections::rebuild_all_models(shared, &db)
        .await
        .map_err(corrupt)?;
    if let Some((name, Err(e))) = report.projections.iter().find(|(_, r)| r.is_err()) {
        return Err(corrupt(format!("projection {name} failed: {e}")));
    }
    let floor = write_floor(&db)?;
    Ok(vec![
        Figure::new("rebuild", "rebuild_all", report.events_per_sec, "events/s")
            .against("sled_iter", raw_rate),
        Figure::new(
            "rebuild",
            "rebuild_write_floor",
            report.events as f64 / floor.elapsed.as_secs_f64().max(1e-9),
            "events/s",
        )
        .against("sled_iter", raw_rate),
        Figure::new(
            "rebuild",
            "rebuilt_entries",
            floor.entries as f64,
            "entries",
        ),
    ])
}

/// What writing the rebuilt trees' entries alone took: see [`write_floor`].
#[derive(Clone, Copy, Debug)]
pub struct WriteFloor {
    /// Entries in all rebuilt trees (data, checkpoint and version).
    pub entries: u64,
    pub elapsed: Duration,
}

/// The storage's floor under a rebuild: the entries the rebuilt projection
/// trees of `db` hold, inserted key by key in key order into fresh trees,
/// one tree per thread and as many threads as cores: what a rebuild does
/// at least (every key it ends with reaches sled once), with nothing
/// decoded, folded or encoded. Events per second at this pace, against
/// `sled_iter`, bounds what `rebuild_all` can reach on this machine with
/// these read models. The fresh trees are dropped again.
pub fn write_floor(db: &sled::Db) -> Result<WriteFloor, LogError> {
    let mut trees = Vec::new();
    for name in db.tree_names() {
        if srs_projections::engine::parse_tree_name(&name).is_none() {
            continue;
        }
        let tree = db.open_tree(&name)?;
        // sled's own buffers, shared rather than copied.
        let entries = tree.iter().collect::<Result<Vec<_>, _>>()?;
        trees.push(entries);
    }
    let entries = trees.iter().map(|t| t.len() as u64).sum();
    // Largest first, so the last tree a thread takes is a small one.
    trees.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let names: Vec<String> = (0..trees.len())
        .map(|i| format!("bench-floor-{i}"))
        .collect();
    let queue = Mutex::new(trees.into_iter().zip(names.iter().cloned()));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> Result<(), LogError> {
                    loop {
                        let next = queue.lock().unwrap_or_else(PoisonError::into_inner).next();
                        let Some((entries, name)) = next else {
                            return Ok(());
                        };
                        let tree = db.open_tree(name)?;
                        for (k, v) in entries {
                            tree.insert(k, v)?;
                        }
                    }
                })
            })
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|_| Err(corrupt("floor writer panicked")))
        })
    })?;
    let elapsed = start.elapsed();
    for name in names {
        db.drop_tree(name)?;
    }
    Ok(WriteFloor { entries, elapsed })
}
