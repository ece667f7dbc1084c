//! The generic engine over a test payload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use srs_domain::log::Envelope;
use srs_projections::store::{Db, Keyspace, Store, Tree};
use srs_projections::{
    apply_events, checkpoint_of, dump, Changes, Overlay, Projection, ProjectionSet, ReactError,
    Reactor, Rebuild, RunnerState, SetOptions, WaitError, Which,
};

use crate::common::*;

const WAIT: Duration = Duration::from_secs(20);

fn set(
    store: &Arc<srs_domain::log::SledEventStore<TestEvent>>,
    projections: Vec<Arc<dyn Projection<TestEvent>>>,
) -> ProjectionSet<TestEvent> {
    ProjectionSet::start(
        store_dyn(store),
        store.db(),
        projections,
        SetOptions::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn runners_catch_up_then_follow_and_wait_for_sees_the_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    append_happened(&store, 0..1500).await;
    let set = set(&store, vec![Tally::new("a"), Tally::new("b")]);
    set.wait_for(Which::All, 1500, WAIT).await.unwrap();
    let last = append_happened(&store, 1500..1510).await;
    set.wait_for(Which::Only(&["a"]), last, WAIT).await.unwrap();
    assert_eq!(total(&set.tree("a").unwrap()), 1510);
    let status = set.status("a").unwrap();
    assert_eq!(
        (status.position, status.lag, status.state),
        (1510, 0, RunnerState::Live)
    );
    assert!(set.ready() || set.wait_for(Which::All, last, WAIT).await.is_ok());
    set.shutdown().await;
}

#[tokio::test]
async fn wait_for_times_out_on_a_position_not_reached() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    append_happened(&store, 0..3).await;
    let set = set(&store, vec![Tally::new("a")]);
    let err = set
        .wait_for(Which::All, 10, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WaitError::Timeout {
            name: "a".into(),
            at: 3,
            wanted: 10
        }
    );
    assert!(matches!(
        set.wait_for(Which::Only(&["zzz"]), 1, WAIT).await,
        Err(WaitError::Unknown(_))
    ));
}

#[tokio::test]
async fn a_failing_event_stops_its_projection_there_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    append_happened(&store, 0..10).await;
    let poison = append_poison(&store).await;
    let last = append_happened(&store, 10..20).await;
    let set = set(&store, vec![Tally::strict("strict"), Tally::new("lenient")]);
    set.wait_for(Which::Only(&["lenient"]), last, WAIT)
        .await
        .unwrap();
    let err = set
        .wait_for(Which::Only(&["strict"]), last, WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, WaitError::Failed { ref error, .. } if error.contains("poison")),
        "{err}"
    );
    let status = set.status("strict").unwrap();
    assert_eq!(status.state, RunnerState::Failed);
    assert_eq!(
        status.position,
        poison - 1,
        "stopped just before the failing event"
    );
    assert!(status
        .last_error
        .unwrap()
        .contains(&format!("position {poison} (Poison)")));
    // The events before it are in; the failed event's own writes are not.
    assert_eq!(total(&set.tree("strict").unwrap()), 10);
    assert_eq!(
        checkpoint_of(&set.tree("strict").unwrap()).unwrap(),
        poison - 1
    );
}

#[test]
fn a_batch_commits_up_to_the_failing_event_and_not_beyond() {
    let db = Db::temporary().unwrap();
    let tree = db.open("t").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let events = rt.block_on(async {
        append_happened(&store, 0..3).await;
        append_poison(&store).await;
        append_happened(&store, 3..5).await;
        srs_domain::log::EventStore::read_all(&*store, 1, 100)
            .await
            .unwrap()
    });
    let applied = apply_events(&*Tally::strict("t"), &tree, 0, &events).unwrap();
    assert_eq!((applied.position, applied.count), (3, 3));
    assert_eq!(applied.stopped.unwrap().position, 4);
    assert_eq!(total(&tree), 3);
    // Re-delivered events at or before the checkpoint are ignored.
    let again = apply_events(&*Tally::new("t"), &tree, 3, &events).unwrap();
    assert_eq!((again.position, again.count), (6, 3));
    assert_eq!(total(&tree), 5);
}

#[tokio::test]
async fn a_version_change_rebuilds_from_position_one_on_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..700).await;
    {
        let set = set(&store, vec![Tally::new("a")]);
        set.wait_for(Which::All, last, WAIT).await.unwrap();
        // Tamper with the data: only a rebuild restores it.
        let tampered = [(b"total".to_vec(), Some(1i64.to_be_bytes().to_vec()))];
        set.tree("a")
            .unwrap()
            .apply(&tampered.into_iter().collect(), None)
            .unwrap();
        set.shutdown().await;
    }
    // Same version: the tampered tree stays.
    {
        let set = set(&store, vec![Tally::new("a")]);
        set.wait_for(Which::All, last, WAIT).await.unwrap();
        assert_eq!(total(&set.tree("a").unwrap()), 1);
        assert_eq!(set.status("a").unwrap().generation, 1);
        set.shutdown().await;
    }
    let v2 = Arc::new(Tally {
        version: 2,
        strict: false,
        name: "a",
    });
    let set = set(&store, vec![v2]);
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    assert_eq!(total(&set.tree("a").unwrap()), 700);
    let status = set.status("a").unwrap();
    assert_eq!((status.generation, status.version), (2, 2));
    let names: Vec<_> = store
        .db()
        .tree_names()
        .into_iter()
        .map(|n| String::from_utf8_lossy(&n).into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n == "projection/a#1"),
        "the old tree is dropped: {names:?}"
    );
}

#[tokio::test]
async fn a_rebuild_swaps_in_a_tree_equal_to_the_live_one_while_queries_answer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..5000).await;
    let set = set(&store, vec![Tally::new("a"), Tally::new("b")]);
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    let before = dump(&set.tree("a").unwrap()).unwrap();
    let held = set.tree("a").unwrap();
    // Appends keep coming during the rebuild.
    let writer = {
        let store = store.clone();
        tokio::spawn(async move { append_happened(&store, 5000..6000).await })
    };
    let rebuild = {
        let set = set.clone();
        tokio::spawn(async move { set.rebuild("a").await })
    };
    // Progress is observable while the old tree keeps answering.
    let mut saw_progress = false;
    while !rebuild.is_finished() {
        if set.status("a").unwrap().rebuild.is_some() {
            saw_progress = true;
        }
        assert!(total(&held) >= 5000);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = rebuild.await.unwrap().unwrap();
    assert!(
        report.projections.iter().all(|(_, r)| r.is_ok()),
        "{report:?}"
    );
    assert!(saw_progress || report.events > 0);
    let last = writer.await.unwrap();
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    let status = set.status("a").unwrap();
    assert_eq!(status.generation, 2);
    assert_eq!(
        dump(&set.tree("a").unwrap()).unwrap(),
        dump(&set.tree("b").unwrap()).unwrap()
    );
    assert!(dump(&set.tree("a").unwrap()).unwrap().len() > before.len());
    // The old tree is dropped once the last query lets go of it.
    drop(held);
    let gone = async {
        loop {
            let names = store.db().tree_names();
            if !names.iter().any(|n| n.as_ref() == b"projection/a#1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, gone)
        .await
        .expect("old tree dropped");
}

#[tokio::test]
async fn an_offline_rebuild_all_reads_the_log_once_for_every_projection() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..3000).await;
    let live = {
        let set = set(&store, vec![Tally::new("a"), Tally::new("b")]);
        set.wait_for(Which::All, last, WAIT).await.unwrap();
        let d = dump(&set.tree("a").unwrap()).unwrap();
        set.shutdown().await;
        d
    };
    let projections: Vec<Arc<dyn Projection<TestEvent>>> = vec![Tally::new("a"), Tally::new("b")];
    let report = srs_projections::rebuild_all(store_dyn(&store), store.db(), &projections, 1024)
        .await
        .unwrap();
    assert_eq!(report.events, 3000);
    assert_eq!(
        report.projections,
        vec![("a".into(), Ok(3000)), ("b".into(), Ok(3000))]
    );
    let set = set(&store, projections);
    assert_eq!(set.status("a").unwrap().generation, 2);
    assert_eq!(dump(&set.tree("a").unwrap()).unwrap(), live);
}

/// A [`Tally`] that records the checkpoint of each commit.
struct Commits {
    tally: Arc<Tally>,
    checkpoints: Mutex<Vec<u64>>,
}

impl Projection<TestEvent> for Commits {
    fn name(&self) -> &'static str {
        self.tally.name()
    }

    fn version(&self) -> u32 {
        self.tally.version()
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<TestEvent>) -> srs_projections::Result<()> {
        self.tally.apply(w, e)
    }

    fn committed(&self, _tree: &Tree, _changes: &Changes, checkpoint: u64) {
        self.checkpoints.lock().unwrap().push(checkpoint);
    }
}

#[tokio::test]
async fn a_rebuild_commits_when_its_overlay_is_full_and_builds_the_same_tree_either_way() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..3000).await;
    let live = {
        let set = set(&store, vec![Tally::new("a")]);
        set.wait_for(Which::All, last, WAIT).await.unwrap();
        let d = dump(&set.tree("a").unwrap()).unwrap();
        set.shutdown().await;
        d
    };
    // A budget of one byte commits after every read batch; the default
    // holds the whole log and commits once, at the end.
    let every_batch: Vec<u64> = (1..=3000 / 256).map(|n| n * 256).chain([3000]).collect();
    for (budget, expected) in [(1, every_batch), (usize::MAX, vec![3000])] {
        let commits = Arc::new(Commits {
            tally: Tally::new("a"),
            checkpoints: Mutex::new(Vec::new()),
        });
        let projections: Vec<Arc<dyn Projection<TestEvent>>> = vec![commits.clone()];
        let report = Rebuild::new(store_dyn(&store), store.db(), &projections, 256)
            .unwrap()
            .with_overlay_budget(budget)
            .install()
            .await
            .unwrap();
        assert_eq!(report.projections, vec![("a".into(), Ok(3000))]);
        assert_eq!(*commits.checkpoints.lock().unwrap(), expected, "{budget}");
        let set = set(&store, vec![Tally::new("a")]);
        let tree = set.tree("a").unwrap();
        assert_eq!(checkpoint_of(&tree).unwrap(), 3000);
        assert_eq!(dump(&tree).unwrap(), live, "{budget}");
        set.shutdown().await;
    }
}

#[tokio::test]
async fn a_rebuild_drops_the_tree_of_a_failing_projection_and_builds_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    append_happened(&store, 0..2500).await;
    let poison = append_poison(&store).await;
    let last = append_happened(&store, 2500..5000).await;
    let projections: Vec<Arc<dyn Projection<TestEvent>>> = vec![
        Tally::strict("strict"),
        Tally::new("a"),
        Tally::new("b"),
        Tally::new("c"),
    ];
    // Small batches: the failing projection's worker stops while the
    // reader still has many batches to hand to the others.
    let report = srs_projections::rebuild_all(store_dyn(&store), store.db(), &projections, 64)
        .await
        .unwrap();
    assert_eq!(report.events, last);
    assert_eq!(report.projections.len(), 4);
    let (name, outcome) = &report.projections[0];
    assert_eq!(name, "strict");
    let error = outcome.as_ref().unwrap_err();
    assert!(
        error.contains(&format!("position {poison} (Poison)")),
        "{error}"
    );
    for (name, outcome) in &report.projections[1..] {
        assert_eq!(outcome.as_ref(), Ok(&last), "{name}");
    }
    // The failed fresh tree is gone; the built ones are current and whole.
    let names = store.db().tree_names();
    assert!(
        !names
            .iter()
            .any(|n| String::from_utf8_lossy(n).contains("strict")),
        "{names:?}"
    );
    let set = set(
        &store,
        vec![Tally::new("a"), Tally::new("b"), Tally::new("c")],
    );
    for name in ["a", "b", "c"] {
        let tree = set.tree(name).unwrap();
        assert_eq!(checkpoint_of(&tree).unwrap(), last, "{name}");
        assert_eq!(total(&tree), 5000, "{name}");
    }
}

/// A [`Tally`] whose first `failures` commits sled refuses as a full disk
/// does (the error comes from `before_commit`, which fails the commit).
struct FullDisk {
    tally: Arc<Tally>,
    failures: std::sync::atomic::AtomicU32,
}

impl Projection<TestEvent> for FullDisk {
    fn name(&self) -> &'static str {
        self.tally.name()
    }

    fn version(&self) -> u32 {
        self.tally.version()
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<TestEvent>) -> srs_projections::Result<()> {
        self.tally.apply(w, e)
    }

    fn before_commit(&self, _writes: &mut Overlay) -> srs_projections::Result<()> {
        use std::sync::atomic::Ordering;
        let left = self.failures.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.failures.store(left - 1, Ordering::SeqCst);
        Err(srs_projections::ProjectionError::Storage(
            srs_projections::store::StoreError::Io(std::io::Error::from_raw_os_error(28)),
        ))
    }
}

#[tokio::test]
async fn a_commit_refused_by_storage_is_retried_and_the_runner_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let flaky = Arc::new(FullDisk {
        tally: Tally::new("flaky"),
        failures: std::sync::atomic::AtomicU32::new(3),
    });
    let first = append_happened(&store, 0..10).await;
    let set = set(&store, vec![flaky.clone()]);
    // While commits fail the runner stays behind, says why, and is not failed.
    let mut status = set.status("flaky").unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while status.last_error.is_none() && status.position < first {
        assert!(std::time::Instant::now() < deadline, "{status:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
        status = set.status("flaky").unwrap();
    }
    if let Some(error) = &status.last_error {
        assert!(error.contains("retrying"), "{error}");
        assert_ne!(status.state, RunnerState::Failed);
    }
    set.wait_for(Which::All, first, WAIT).await.unwrap();
    let last = append_happened(&store, 10..20).await;
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    let status = set.status("flaky").unwrap();
    assert_ne!(status.state, RunnerState::Failed);
    assert_eq!(status.last_error, None);
    assert_eq!(flaky.failures.load(std::sync::atomic::Ordering::SeqCst), 0);
    // Every event counted exactly once: the refused commits wrote nothing.
    assert_eq!(total(&set.tree("flaky").unwrap()), 20);
    set.shutdown().await;
}

/// A reactor that records the positions it handled, failing its first
/// `failures` attempts at `fail_at`.
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
    fail_at: u64,
    failures: Mutex<u32>,
}

impl Recorder {
    fn new(fail_at: u64, failures: u32) -> (Arc<Self>, Arc<Mutex<Vec<u64>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            seen: seen.clone(),
            fail_at,
            failures: Mutex::new(failures),
        };
        (Arc::new(recorder), seen)
    }
}

impl Reactor<TestEvent> for Recorder {
    fn name(&self) -> &'static str {
        "effects"
    }

    fn react<'a>(
        &'a self,
        event: &'a Envelope<TestEvent>,
    ) -> futures_util::future::BoxFuture<'a, Result<(), ReactError>> {
        Box::pin(async move {
            if event.position == self.fail_at {
                let mut left = self.failures.lock().unwrap();
                if *left > 0 {
                    *left -= 1;
                    return Err("the disk is full".into());
                }
            }
            self.seen.lock().unwrap().push(event.position);
            Ok(())
        })
    }
}

fn set_with_reactor(
    store: &Arc<srs_domain::log::SledEventStore<TestEvent>>,
    reactor: Arc<Recorder>,
) -> ProjectionSet<TestEvent> {
    ProjectionSet::start_with_reactors(
        store_dyn(store),
        store.db(),
        vec![Tally::new("a")],
        vec![reactor],
        SetOptions::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_reactor_retries_a_failed_effect_and_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..100).await;
    {
        let (recorder, seen) = Recorder::new(50, 3);
        let set = set_with_reactor(&store, recorder);
        assert_eq!(set.names(), vec!["a"]);
        assert_eq!(set.reactor_names(), vec!["effects"]);
        set.wait_for(Which::Only(&["effects"]), last, WAIT)
            .await
            .unwrap();
        // Every effect once, in order: the failed one retried, never skipped.
        assert_eq!(*seen.lock().unwrap(), (1..=last).collect::<Vec<_>>());
        let status = set.status("effects").unwrap();
        assert_eq!((status.position, status.last_error), (last, None));
        let names: Vec<String> = set.statuses().into_iter().map(|s| s.name).collect();
        assert_eq!(names, vec!["a", "effects"]);
        // A reactor is not rebuilt.
        assert!(set.rebuild("effects").await.is_err());
        let report = set.rebuild_all().await.unwrap();
        assert_eq!(report.projections.len(), 1);
        set.shutdown().await;
    }
    let last = append_happened(&store, 100..110).await;
    let (recorder, seen) = Recorder::new(0, 0);
    let set = set_with_reactor(&store, recorder);
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    // The checkpoint was committed: only the new events are handed.
    assert_eq!(*seen.lock().unwrap(), (101..=last).collect::<Vec<_>>());
    set.shutdown().await;
}

#[tokio::test]
async fn wait_for_all_waits_for_a_reactor_whose_effect_keeps_failing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<TestEvent>(dir.path());
    let last = append_happened(&store, 0..10).await;
    let (recorder, seen) = Recorder::new(5, u32::MAX);
    let set = set_with_reactor(&store, recorder);
    set.wait_for(Which::Only(&["a"]), last, WAIT).await.unwrap();
    let err = set
        .wait_for(Which::All, last, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        WaitError::Timeout {
            name: "effects".into(),
            at: 4,
            wanted: last
        }
    );
    let status = set.status("effects").unwrap();
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("position 5") && e.contains("the disk is full")),
        "{status:?}"
    );
    assert!(!set.ready());
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
    set.shutdown().await;
}
