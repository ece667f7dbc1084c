//! The replay tools on their own, over a log written through the domain
//! (the application service and the log's append), in a temporary
//! directory: history paging and filters, an aggregate as of a point,
//! export then import into a fresh directory, and the chain walk naming
//! the first record that was altered.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;
use srs_domain::actor::Actor;
use srs_domain::app::{InMemoryPermissions, Service};
use srs_domain::log::{
    verify, BreachKind, EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions,
};
use srs_domain::model::{Aggregate, DomainEvent, Principal, Role, Site};
use srs_domain::time::{Clock as _, ManualClock, Timestamp};
use srs_replay::{
    aggregate_state, export, export_up_to, import, replay, AsOf, DataDir, Filter, Format,
    ReplayError,
};
use uuid::Uuid;

/// 2026-01-01T00:00:00Z.
const T0: Timestamp = Timestamp(1_767_225_600_000_000);
/// Renames appended at once after the sites: the log then spans several
/// of the tools' read batches (`READ_BATCH`, 512).
const BULK: u64 = 600;

/// A log in a temporary directory and what was written to it.
struct World {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    log: SledEventStore<DomainEvent>,
    admin: Principal,
    /// Sites "Alpha", "Beta", "Gamma" (created at T0, positions 1 to 3).
    sites: [Uuid; 3],
    /// The position of Alpha's rename to "Alpha 2" (at T0 + 1 h).
    renamed_at: u64,
}

impl World {
    /// Three sites created by `root` at T0, Alpha renamed an hour later,
    /// then [`BULK`] renames of Beta by `system:bulk` in one append.
    async fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data");
        let clock = ManualClock::new(T0);
        let log = SledEventStore::<DomainEvent>::open(
            &path,
            StoreOptions {
                clock: Arc::new(clock.clone()),
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let service = Service::new(
            Arc::new(log.clone()),
            Arc::new(clock.clone()),
            Arc::new(InMemoryPermissions::default()),
        );
        let admin = Principal {
            token_id: Uuid::now_v7(),
            name: "root".into(),
            role: Role::Admin,
            site_ids: BTreeSet::new(),
            groups: Vec::new(),
            server_id: None,
        };
        let mut sites = [Uuid::nil(); 3];
        for (site, name) in sites.iter_mut().zip(["Alpha", "Beta", "Gamma"]) {
            *site = service.create_site(&admin, name).await.unwrap().id;
        }
        clock.advance_secs(3_600);
        let renamed = service
            .rename_site(&admin, sites[0], "Alpha 2", None)
            .await
            .unwrap();
        clock.advance_secs(3_600);
        let beta = Site::stream(sites[1]);
        let renames = (0..BULK)
            .map(|n| {
                let previous = if n == 0 {
                    "Beta".to_string()
                } else {
                    format!("Beta {}", n - 1)
                };
                NewEvent::new(
                    Actor::system("bulk"),
                    DomainEvent::SiteRenamed {
                        site_id: sites[1],
                        name: format!("Beta {n}"),
                        previous_name: previous,
                        at: clock.now(),
                    },
                )
            })
            .collect();
        let bulk = log
            .append(&beta, ExpectedVersion::Exact(1), renames)
            .await
            .unwrap();
        assert_eq!(bulk.positions.len() as u64, BULK);
        World {
            _dir: dir,
            path,
            log,
            admin,
            sites,
            renamed_at: renamed.last_position,
        }
    }

    fn head(&self) -> u64 {
        EventStore::head(&self.log).position
    }

    /// The history `filter` admits, as the JSON lines `srs replay` writes.
    fn history(&self, filter: &Filter) -> Vec<Value> {
        let mut out = Vec::new();
        let written = replay(&self.log, filter, Format::Jsonl, &mut out).unwrap();
        let lines: Vec<Value> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len() as u64, written);
        lines
    }
}

fn positions(lines: &[Value]) -> Vec<u64> {
    lines
        .iter()
        .map(|line| line["position"].as_u64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_history_pages_through_the_whole_log_in_order() {
    let w = World::new().await;
    assert_eq!(w.head(), 3 + 1 + BULK);
    let all = w.history(&Filter::default());
    assert_eq!(positions(&all), (1..=w.head()).collect::<Vec<_>>());
    assert_eq!(all[0]["type"], "SiteCreated");
    assert_eq!(all[0]["payload"]["SiteCreated"]["name"], "Alpha");

    // A window across the boundary between two read batches.
    let window = w.history(&Filter {
        from: 500,
        to: Some(530),
        ..Filter::default()
    });
    assert_eq!(positions(&window), (500..=530).collect::<Vec<_>>());
    // Past the head: nothing.
    let past = w.history(&Filter {
        from: w.head() + 1,
        ..Filter::default()
    });
    assert!(past.is_empty());
}

#[tokio::test]
async fn the_history_filters_by_stream_type_actor_and_time() {
    let w = World::new().await;
    let alpha = w.history(&Filter {
        stream: Some(Site::stream(w.sites[0])),
        ..Filter::default()
    });
    assert_eq!(positions(&alpha), vec![1, w.renamed_at]);

    let created = w.history(&Filter {
        types: vec!["SiteCreated".into()],
        ..Filter::default()
    });
    assert_eq!(positions(&created), vec![1, 2, 3]);

    let by_root = w.history(&Filter {
        actor: Some(w.admin.actor().label()),
        ..Filter::default()
    });
    assert_eq!(positions(&by_root), vec![1, 2, 3, w.renamed_at]);
    let bulk = w.history(&Filter {
        actor: Some("system:bulk".into()),
        ..Filter::default()
    });
    assert_eq!(bulk.len() as u64, BULK);
    assert!(bulk.iter().all(|line| line["actor"] == "system:bulk"));

    // Recorded before T0 + 1 h: the creations only; from then on, the rest.
    let first_hour = w.history(&Filter {
        until: Some(T0.plus_secs(3_600)),
        ..Filter::default()
    });
    assert_eq!(positions(&first_hour), vec![1, 2, 3]);
    let later = w.history(&Filter {
        since: Some(T0.plus_secs(3_600)),
        types: vec!["SiteRenamed".into()],
        stream: Some(Site::stream(w.sites[0])),
        ..Filter::default()
    });
    assert_eq!(positions(&later), vec![w.renamed_at]);
}

#[tokio::test]
async fn an_aggregate_is_shown_as_it_was_before_and_after_an_event() {
    let w = World::new().await;
    let alpha = Site::stream(w.sites[0]);
    let name = |state: &Value| state["state"]["name"].as_str().unwrap().to_string();

    let before = aggregate_state(&w.log, &alpha, AsOf::Position(w.renamed_at - 1))
        .await
        .unwrap();
    assert_eq!(name(&before), "Alpha");
    assert_eq!(before["version"], 1);
    assert_eq!(before["position"], 1);
    let after = aggregate_state(&w.log, &alpha, AsOf::Position(w.renamed_at))
        .await
        .unwrap();
    assert_eq!(name(&after), "Alpha 2");
    assert_eq!(after["version"], 2);
    assert_eq!(after["position"], w.renamed_at);

    // By time: the rename was recorded at T0 + 1 h.
    let at_t0 = aggregate_state(&w.log, &alpha, AsOf::Time(T0.plus_secs(3_599)))
        .await
        .unwrap();
    assert_eq!(name(&at_t0), "Alpha");
    let later = aggregate_state(&w.log, &alpha, AsOf::Time(T0.plus_secs(3_600)))
        .await
        .unwrap();
    assert_eq!(name(&later), "Alpha 2");

    // Beta after its last bulk rename, and before it existed.
    let beta = Site::stream(w.sites[1]);
    let last = aggregate_state(&w.log, &beta, AsOf::Position(w.head()))
        .await
        .unwrap();
    assert_eq!(name(&last), format!("Beta {}", BULK - 1));
    let none = aggregate_state(&w.log, &beta, AsOf::Position(1)).await;
    assert!(matches!(none, Err(ReplayError::NotFound(_))), "{none:?}");
}

/// Every stored record of the log in `path`, read back as raw records.
fn raw_records(path: &Path) -> Vec<srs_domain::log::RawRecord> {
    let data = DataDir::open(path).unwrap();
    let mut records = Vec::new();
    loop {
        let batch = data.store.read_raw(records.len() as u64 + 1, 256).unwrap();
        if batch.is_empty() {
            break;
        }
        records.extend(batch);
    }
    records
}

#[tokio::test]
async fn an_import_goes_on_after_the_start_of_the_same_log_and_refuses_any_other() {
    let w = World::new().await;
    let whole = w.path.with_file_name("whole.srs-export");
    let exported = export(&w.log, &mut std::fs::File::create(&whole).unwrap()).unwrap();
    // An export of the log's first third, as a migration's first copy.
    let cut = exported.count / 3;
    let at_cut = w.log.read_raw(cut, 1).unwrap()[0].hash;
    let start = w.path.with_file_name("start.srs-export");
    let head = srs_domain::log::Head {
        position: cut,
        hash: at_cut,
    };
    export_up_to(&w.log, head, &mut std::fs::File::create(&start).unwrap()).unwrap();
    let source = w.log.read_raw(1, usize::MAX).unwrap();

    // The start, then the whole: the second import adds what follows.
    let target = w.path.with_file_name("migrated");
    assert_eq!(import(&start, &target).unwrap().head, head);
    assert_eq!(raw_records(&target).len() as u64, cut);
    let imported = import(&whole, &target).unwrap();
    assert_eq!(imported.head, exported.head);
    assert_eq!(raw_records(&target), source);
    {
        let data = DataDir::open(&target).unwrap();
        let report = verify::<DomainEvent>(&*data.store.backend(), 1, |_| {}).unwrap();
        assert!(report.is_intact(), "{:?}", report.breach);
        assert_eq!(report.last, exported.head);
    }
    // Nothing is left to import: refused, nothing written.
    let again = import(&whole, &target);
    assert!(
        matches!(&again, Err(ReplayError::NotEmpty(m)) if m.contains("nothing to import")),
        "{again:?}"
    );
    // A log longer than the file is refused too.
    let longer = import(&start, &target);
    assert!(
        matches!(&longer, Err(ReplayError::NotEmpty(m)) if m.contains("longer than the file")),
        "{longer:?}"
    );
    assert_eq!(raw_records(&target), source);

    // An import cut short (its records stored, the head not): run again,
    // it completes.
    let cut_short = w.path.with_file_name("cut-short");
    import(&whole, &cut_short).unwrap();
    {
        let data = DataDir::open(&cut_short).unwrap();
        let log = data.db.open_tree(srs_domain::log::LOG_TREE).unwrap();
        assert!(log.remove(b"h").unwrap().is_some(), "the head record");
        data.db.flush().unwrap();
    }
    assert_eq!(import(&whole, &cut_short).unwrap().head, exported.head);
    let data = DataDir::open(&cut_short).unwrap();
    let report = verify::<DomainEvent>(&*data.store.backend(), 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    drop(data);

    // Another log's export onto this one: refused at its first position,
    // nothing written.
    let other = World::new().await;
    let theirs = other.path.with_file_name("theirs.srs-export");
    export(&other.log, &mut std::fs::File::create(&theirs).unwrap()).unwrap();
    let refused = import(&theirs, &target);
    assert!(
        matches!(&refused, Err(ReplayError::NotEmpty(m)) if m.contains("position 1 is not the file's")),
        "{refused:?}"
    );
    assert_eq!(raw_records(&target), source);
}

#[tokio::test]
async fn an_export_imported_into_a_fresh_directory_is_the_same_log() {
    let w = World::new().await;
    let file = w.path.with_file_name("log.srs-export");
    let exported = {
        let mut out = std::fs::File::create(&file).unwrap();
        export(&w.log, &mut out).unwrap()
    };
    assert_eq!(exported.count, w.head());
    assert_eq!(exported.head, EventStore::head(&w.log));

    let target = w.path.with_file_name("imported");
    let imported = import(&file, &target).unwrap();
    assert_eq!(imported.count, exported.count);
    assert_eq!(imported.head, exported.head);

    // Record for record the same: positions, streams, versions, ids,
    // times, actors, payload bytes, and so the same hash chain.
    let source = w.log.read_raw(1, usize::MAX).unwrap();
    assert_eq!(raw_records(&target), source);
    let data = DataDir::open(&target).unwrap();
    let report = verify::<DomainEvent>(&*data.store.backend(), 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.last, exported.head);
    // Its aggregates fold the same.
    let alpha = Site::stream(w.sites[0]);
    assert_eq!(
        aggregate_state(&data.store, &alpha, AsOf::Position(w.head()))
            .await
            .unwrap(),
        aggregate_state(&w.log, &alpha, AsOf::Position(w.head()))
            .await
            .unwrap()
    );

    // A second import into the same directory is refused, nothing added.
    drop(data);
    let again = import(&file, &target);
    assert!(matches!(again, Err(ReplayError::NotEmpty(_))), "{again:?}");
    assert_eq!(raw_records(&target).len() as u64, exported.count);
}

#[tokio::test]
async fn an_altered_record_is_named_by_its_position() {
    let w = World::new().await;
    assert!(verify::<DomainEvent>(w.log.tree(), 1, |_| {})
        .unwrap()
        .is_intact());
    // An export taken while the log was intact, to alter as a file below.
    let file = w.path.with_file_name("log.srs-export");
    export(&w.log, &mut std::fs::File::create(&file).unwrap()).unwrap();

    // Position 7's stored bytes rewritten in place (its length kept): the
    // record no longer hashes to its hash.
    let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 7];
    let mut bytes = w.log.tree().get(key).unwrap().unwrap().to_vec();
    let name_at = bytes
        .windows(4)
        .position(|window| window == b"Beta")
        .expect("position 7 renames Beta");
    bytes[name_at] = b'Z';
    w.log.tree().insert(key, bytes).unwrap();
    let report = verify::<DomainEvent>(w.log.tree(), 1, |_| {}).unwrap();
    let breach = report.breach.expect("a breach");
    assert_eq!(breach.position, 7);
    assert_eq!(breach.kind, BreachKind::HashMismatch);
    assert_eq!(report.checked, 6);
    assert_eq!(report.last.position, 6);

    // The same edit in an export file: the import refuses it, naming the
    // position, and writes nothing.
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let line = lines
        .iter_mut()
        .find(|line| line.contains("\"position\":7,"))
        .expect("the line of position 7");
    *line = line.replacen("Beta", "Zeta", 1);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let target = w.path.with_file_name("imported");
    match import(&file, &target) {
        Err(ReplayError::BadFile(reason)) => assert!(reason.contains("position 7"), "{reason}"),
        other => panic!("an altered file was imported: {other:?}"),
    }
    assert!(!DataDir::open(&target).is_ok_and(|data| data.head() > 0));
}
