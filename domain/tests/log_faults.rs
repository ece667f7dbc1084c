//! The log writer under storage failures (a full disk), through injected
//! faults: it refuses with `Unavailable`, never acknowledges what is not
//! durable, and heals by itself (or after a reopen when the handle is
//! spoiled), with positions gapless and every acknowledged event kept.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use srs_domain::log::{
    verify, EventStore, ExpectedVersion, Faults, SledEventStore, StoreOptions, Writability,
    LOG_TREE,
};
use uuid::Uuid;

/// Generous: the writer retries within 2 s at most once it backs off.
const HEAL: Duration = Duration::from_secs(20);

fn open_with_faults(dir: &Path, faults: &Arc<Faults>) -> Store {
    let options = StoreOptions {
        faults: Some(faults.clone()),
        ..StoreOptions::default()
    };
    SledEventStore::open(dir, options).expect("open log")
}

async fn wait_for(log: &Store, wanted: impl Fn(&Writability) -> bool) -> Writability {
    let mut health = log.watch_writability();
    let state = tokio::time::timeout(HEAL, health.wait_for(|w| wanted(w)))
        .await
        .expect("the writer reaches the state in time")
        .expect("the store is open");
    state.clone()
}

fn assert_intact(log: &Store, head: u64) {
    let tree = log.db().open_tree(LOG_TREE).unwrap();
    let report = verify::<TestEvent>(&tree, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.checked, head);
    assert_eq!(report.last.position, head);
}

#[tokio::test]
async fn a_failed_flush_refuses_the_waiters_then_heals_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let log = open_with_faults(dir.path(), &faults);
    let _ = log
        .append("a", ExpectedVersion::NoStream, vec![event(1)])
        .await
        .unwrap();

    faults.fail_next_flushes(u64::MAX);
    let ids = [Uuid::now_v7(), Uuid::now_v7()];
    let refused = log
        .append(
            "b",
            ExpectedVersion::Any,
            vec![event_with_id(2, ids[0]), event_with_id(3, ids[1])],
        )
        .await
        .unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    assert!(refused.to_string().contains("retry later"), "{refused}");
    assert!(!log.writability().is_writable());
    // Nothing unflushed is visible: reads stop at the durable head.
    assert_eq!(log.head().position, 1);
    assert_eq!(log.read_all(1, 10).await.unwrap().len(), 1);
    assert_eq!(log.stream_version("b").await.unwrap(), None);
    // New appends are refused at once, not queued behind the failure.
    let later = tokio::time::timeout(
        Duration::from_secs(10),
        log.append("c", ExpectedVersion::Any, vec![event(4)]),
    )
    .await
    .expect("a refusal does not wait for the disk")
    .unwrap_err();
    assert!(later.is_unavailable(), "{later}");

    // Space is back: the retried flush succeeds without a restart.
    faults.fail_next_flushes(0);
    assert_eq!(
        wait_for(&log, Writability::is_writable).await,
        Writability::Writable
    );
    // The batch applied before the failure became durable in place.
    assert_eq!(log.head().position, 3);
    let retried = log
        .append(
            "b",
            ExpectedVersion::Any,
            vec![event_with_id(2, ids[0]), event_with_id(3, ids[1])],
        )
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.positions, vec![2, 3]);
    let next = log
        .append("c", ExpectedVersion::Any, vec![event(4)])
        .await
        .unwrap();
    assert_eq!(next.positions, vec![4]);
    assert_intact(&log, 4);

    drop(log);
    let log = open(dir.path());
    assert_eq!(log.head().position, 4);
    assert_intact(&log, 4);
}

#[tokio::test]
async fn a_failed_apply_spoils_the_handle_until_a_reopen_and_keeps_what_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let log = open_with_faults(dir.path(), &faults);
    let acknowledged = log
        .append("a", ExpectedVersion::NoStream, events(1..3))
        .await
        .unwrap();
    assert_eq!(acknowledged.positions, vec![1, 2]);

    faults.fail_next_applies(1);
    let id = Uuid::now_v7();
    let refused = log
        .append("b", ExpectedVersion::Any, vec![event_with_id(3, id)])
        .await
        .unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    // The data directory takes writes: the writer says it needs a reopen.
    let state = wait_for(&log, |w| matches!(w, Writability::NeedsReopen { .. })).await;
    assert!(
        state.reason().unwrap().contains("No space left on device"),
        "{state:?}"
    );
    // The fault is gone, yet this handle still refuses: it is spoiled.
    let again = log
        .append("b", ExpectedVersion::Any, vec![event_with_id(3, id)])
        .await
        .unwrap_err();
    assert!(again.is_unavailable(), "{again}");
    assert!(
        !dir.path().join(".srs-write-probe").exists(),
        "the probe file is removed"
    );

    drop(log);
    let log = open(dir.path());
    assert!(log.writability().is_writable());
    assert_eq!(log.head().position, 2);
    let retried = log
        .append("b", ExpectedVersion::Any, vec![event_with_id(3, id)])
        .await
        .unwrap();
    assert!(!retried.deduplicated, "the refused apply stored nothing");
    assert_eq!(retried.positions, vec![3]);
    assert_intact(&log, 3);
}

#[tokio::test]
async fn a_flush_that_keeps_failing_while_the_disk_takes_writes_asks_for_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let faults = Arc::new(Faults::default());
    let log = open_with_faults(dir.path(), &faults);
    let _ = log
        .append("a", ExpectedVersion::NoStream, events(1..2))
        .await
        .unwrap();
    faults.fail_next_flushes(u64::MAX);
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let batch = || {
        ids.iter()
            .enumerate()
            .map(|(i, id)| event_with_id(10 + i as u64, *id))
            .collect::<Vec<_>>()
    };
    let refused = log
        .append("b", ExpectedVersion::Any, batch())
        .await
        .unwrap_err();
    assert!(refused.is_unavailable(), "{refused}");
    wait_for(&log, |w| matches!(w, Writability::NeedsReopen { .. })).await;
    assert_eq!(log.head().position, 1, "nothing unflushed is readable");

    drop(log);
    // Reopened, the refused append is either wholly stored or absent; a
    // retry with the same ids gets the same positions either way.
    let log = open(dir.path());
    let head = log.head().position;
    assert!(head == 1 || head == 4, "whole or absent, got head {head}");
    let retried = log
        .append("b", ExpectedVersion::Any, batch())
        .await
        .unwrap();
    assert_eq!(retried.positions, vec![2, 3, 4]);
    assert_eq!(retried.deduplicated, head == 4);
    assert_intact(&log, 4);
}
