//! The event log's rules, one test each.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use srs_domain::actor::Actor;
use srs_domain::log::{
    verify, AppendError, BreachKind, Conflict, EventStore, ExpectedVersion, Hash, LogError,
    NewEvent, LOG_TREE,
};
use uuid::Uuid;

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test]
async fn positions_and_stream_versions_are_gapless_from_one() {
    let dir = tempdir();
    let log = open(dir.path());
    let a = log
        .append("a", ExpectedVersion::NoStream, events(0..2))
        .await
        .unwrap();
    let b = log
        .append("b", ExpectedVersion::Any, events(2..3))
        .await
        .unwrap();
    let a2 = log
        .append("a", ExpectedVersion::Exact(2), events(3..4))
        .await
        .unwrap();
    assert_eq!(a.positions, vec![1, 2]);
    assert_eq!(a.stream_version, 2);
    assert_eq!(b.positions, vec![3]);
    assert_eq!(b.stream_version, 1);
    assert_eq!(a2.positions, vec![4]);
    assert_eq!(a2.stream_version, 3);

    let all = log.read_all(1, 100).await.unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position).collect();
    assert_eq!(positions, vec![1, 2, 3, 4]);
    let versions: Vec<(String, u64)> = all.iter().map(|e| (e.stream.clone(), e.version)).collect();
    assert_eq!(
        versions,
        vec![
            ("a".into(), 1),
            ("a".into(), 2),
            ("b".into(), 1),
            ("a".into(), 3)
        ]
    );
    assert_eq!(log.head().position, 4);
    assert_eq!(log.head().hash, all[3].hash);
}

#[tokio::test]
async fn each_record_chains_to_the_one_before() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..5))
        .await
        .unwrap();
    let all = log.read_all(1, 10).await.unwrap();
    assert_eq!(all[0].prev_hash, Hash::GENESIS);
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_ne!(pair[1].hash, pair[0].hash);
    }
    let report = verify::<TestEvent>(log.tree(), 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.checked, 5);
}

#[tokio::test]
async fn the_envelope_keeps_every_field_the_writer_was_given() {
    let dir = tempdir();
    let clock = fixed_clock();
    let log = open_with_clock(dir.path(), Arc::new(clock.clone()));
    let id = Uuid::now_v7();
    let correlation = Uuid::now_v7();
    let cause = Uuid::now_v7();
    let actor = Actor::Principal {
        token_id: Uuid::now_v7(),
        name: "alice".into(),
    };
    let new = NewEvent::new(actor.clone(), TestEvent::Other(vec![1, 2, 3]))
        .with_id(id)
        .correlated(correlation, Some(cause));
    let _ = log
        .append("s", ExpectedVersion::Any, vec![new])
        .await
        .unwrap();
    let stored = log.read_event(id).await.unwrap().expect("stored");
    assert_eq!(stored.event_id, id);
    assert_eq!(stored.actor, actor);
    assert_eq!(stored.correlation_id, correlation);
    assert_eq!(stored.causation_id, Some(cause));
    assert_eq!(stored.payload, TestEvent::Other(vec![1, 2, 3]));
    assert_eq!(stored.recorded_at, clock_now(&clock));
}

fn clock_now(clock: &srs_domain::time::ManualClock) -> srs_domain::time::Timestamp {
    use srs_domain::time::Clock;
    clock.now()
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict_naming_the_actual_version() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..3))
        .await
        .unwrap();
    let err = log
        .append("a", ExpectedVersion::Exact(2), events(3..4))
        .await
        .unwrap_err();
    match err {
        AppendError::Conflict(Conflict {
            stream,
            expected,
            actual,
        }) => {
            assert_eq!(stream, "a");
            assert_eq!(expected, ExpectedVersion::Exact(2));
            assert_eq!(actual, Some(3));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    let err = log
        .append("a", ExpectedVersion::NoStream, events(3..4))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::Conflict(Conflict {
            actual: Some(3),
            ..
        })
    ));
    let err = log
        .append("missing", ExpectedVersion::Exact(1), events(3..4))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::Conflict(Conflict { actual: None, .. })
    ));
    assert_eq!(log.head().position, 3, "refused appends write nothing");
}

#[tokio::test]
async fn several_events_in_one_refused_append_write_nothing() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let before = log.head();
    let err = log
        .append("a", ExpectedVersion::NoStream, events(1..50))
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Conflict(_)));
    let dup = Uuid::now_v7();
    let err = log
        .append(
            "a",
            ExpectedVersion::Any,
            vec![event_with_id(1, dup), event_with_id(2, dup)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Invalid(_)));
    assert_eq!(log.head(), before);
    assert_eq!(log.read_all(1, 100).await.unwrap().len(), 1);
    assert_eq!(log.stream_version("a").await.unwrap(), Some(1));
}

#[tokio::test]
async fn bad_appends_are_refused_with_a_reason() {
    let dir = tempdir();
    let log = open(dir.path());
    for (stream, batch) in [
        ("", events(0..1)),
        ("a\nb", events(0..1)),
        ("a", Vec::new()),
        ("a", events(0..10_001)),
    ] {
        let err = log
            .append(stream, ExpectedVersion::Any, batch)
            .await
            .unwrap_err();
        assert!(matches!(err, AppendError::Invalid(_)), "{err:?}");
    }
    let long = "x".repeat(257);
    assert!(matches!(
        log.append(&long, ExpectedVersion::Any, events(0..1)).await,
        Err(AppendError::Invalid(_))
    ));
    assert_eq!(log.head().position, 0);
}

#[tokio::test]
async fn appending_stored_event_ids_returns_the_stored_positions_and_writes_nothing() {
    let dir = tempdir();
    let log = open(dir.path());
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let batch = || -> Vec<_> {
        ids.iter()
            .enumerate()
            .map(|(n, id)| event_with_id(n as u64, *id))
            .collect()
    };
    let first = log
        .append("a", ExpectedVersion::NoStream, batch())
        .await
        .unwrap();
    let _ = log
        .append("b", ExpectedVersion::Any, events(9..10))
        .await
        .unwrap();
    let head = log.head();
    // The retry's expected version is stale, yet it is the same append.
    let again = log
        .append("a", ExpectedVersion::NoStream, batch())
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert!(!first.deduplicated);
    assert_eq!(again.positions, first.positions);
    assert_eq!(again.stream_version, 3);
    assert_eq!(log.head(), head);
}

#[tokio::test]
async fn a_stored_event_id_mixed_with_new_ones_is_refused() {
    let dir = tempdir();
    let log = open(dir.path());
    let id = Uuid::now_v7();
    let _ = log
        .append("a", ExpectedVersion::Any, vec![event_with_id(0, id)])
        .await
        .unwrap();
    let err = log
        .append(
            "a",
            ExpectedVersion::Any,
            vec![event_with_id(0, id), event(1)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Invalid(_)));
    let err = log
        .append("b", ExpectedVersion::Any, vec![event_with_id(0, id)])
        .await
        .unwrap_err();
    assert!(matches!(err, AppendError::Invalid(m) if m.contains("stream a")));
    assert_eq!(log.head().position, 1);
}

#[tokio::test]
async fn idempotency_survives_a_restart() {
    let dir = tempdir();
    let id = Uuid::now_v7();
    {
        let log = open(dir.path());
        let _ = log
            .append("a", ExpectedVersion::Any, events(0..2))
            .await
            .unwrap();
        let _ = log
            .append("a", ExpectedVersion::Any, vec![event_with_id(2, id)])
            .await
            .unwrap();
    }
    let log = open(dir.path());
    let again = log
        .append("a", ExpectedVersion::Any, vec![event_with_id(2, id)])
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.positions, vec![3]);
    assert_eq!(log.head().position, 3);
}

#[tokio::test]
async fn reopening_resumes_head_hash_and_stream_versions() {
    let dir = tempdir();
    let head = {
        let log = open(dir.path());
        let _ = log
            .append("a", ExpectedVersion::Any, events(0..3))
            .await
            .unwrap();
        let _ = log
            .append("b", ExpectedVersion::Any, events(3..4))
            .await
            .unwrap();
        log.head()
    };
    let log = open(dir.path());
    assert_eq!(log.head(), head);
    assert_eq!(log.stream_version("a").await.unwrap(), Some(3));
    assert_eq!(log.stream_version("b").await.unwrap(), Some(1));
    assert_eq!(log.stream_version("c").await.unwrap(), None);
    let next = log
        .append("a", ExpectedVersion::Exact(3), events(4..5))
        .await
        .unwrap();
    assert_eq!(next.positions, vec![5]);
    let fifth = log.read_all(5, 1).await.unwrap().remove(0);
    assert_eq!(
        fifth.prev_hash, head.hash,
        "the chain continues across restarts"
    );
    assert!(verify::<TestEvent>(log.tree(), 1, |_| {})
        .unwrap()
        .is_intact());
}

#[tokio::test]
async fn a_directory_in_use_gives_a_clear_error() {
    let dir = tempdir();
    let _log = open(dir.path());
    let err = srs_domain::log::SledEventStore::<TestEvent>::open(dir.path(), Default::default())
        .err()
        .expect("second open must fail");
    assert!(matches!(err, LogError::Locked { .. }), "{err:?}");
    assert!(err.to_string().contains("in use by another process"));
}

#[tokio::test]
async fn a_stream_reads_from_a_version() {
    let dir = tempdir();
    let log = open(dir.path());
    for n in 0..10 {
        let stream = if n % 2 == 0 { "even" } else { "odd" };
        let _ = log
            .append(stream, ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
    }
    let odd = log.read_stream("odd", 3, 10).await.unwrap();
    let ns: Vec<u64> = odd
        .iter()
        .map(|e| match e.payload {
            TestEvent::Happened { n, .. } => n,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(ns, vec![5, 7, 9]);
    assert_eq!(odd[0].version, 3);
    assert_eq!(log.read_stream("odd", 1, 2).await.unwrap().len(), 2);
    assert!(log.read_stream("none", 1, 10).await.unwrap().is_empty());
    // A stream whose name is a prefix of another's reads only its own.
    let _ = log
        .append("od", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    assert_eq!(log.read_stream("od", 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_global_range_reads_from_a_position() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..20))
        .await
        .unwrap();
    let page = log.read_all(7, 5).await.unwrap();
    assert_eq!(page.first().unwrap().position, 7);
    assert_eq!(page.last().unwrap().position, 11);
    assert!(log.read_all(21, 5).await.unwrap().is_empty());
    assert_eq!(log.read_all(0, 3).await.unwrap()[0].position, 1);
}

#[tokio::test]
async fn a_guarded_append_commits_only_while_its_guard_stream_stands_still() {
    let dir = tempdir();
    let log = open(dir.path());
    // No guard stream yet: version 0 admits it.
    let first = log
        .append_guarded(
            "target",
            ExpectedVersion::Any,
            events(0..1),
            vec![("guard".into(), ExpectedVersion::Exact(0))],
        )
        .await
        .unwrap();
    assert_eq!(first.positions, vec![1]);
    let _ = log
        .append("guard", ExpectedVersion::NoStream, events(1..2))
        .await
        .unwrap();
    // The guard moved to version 1: an append still expecting 0 is refused,
    // naming the guard, and writes nothing.
    let stale = log
        .append_guarded(
            "target",
            ExpectedVersion::Any,
            events(2..3),
            vec![("guard".into(), ExpectedVersion::Exact(0))],
        )
        .await
        .unwrap_err();
    match stale {
        AppendError::Conflict(conflict) => assert_eq!(
            conflict,
            Conflict {
                stream: "guard".into(),
                expected: ExpectedVersion::Exact(0),
                actual: Some(1),
            }
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(log.head().position, 2);
    assert_eq!(log.stream_version("guard").await.unwrap(), Some(1));
    let fresh = log
        .append_guarded(
            "target",
            ExpectedVersion::Exact(1),
            events(3..4),
            vec![("guard".into(), ExpectedVersion::Exact(1))],
        )
        .await
        .unwrap();
    assert_eq!((fresh.positions, fresh.stream_version), (vec![3], 2));
    // The guard is read, not written.
    assert_eq!(log.stream_version("guard").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_a_guard_move_and_a_guarded_append_in_one_group_only_one_view_wins() {
    // Many rounds of a racing pair: a write to the guard stream and an
    // append guarded by the guard's version before that write. Whatever
    // the group commit does, the guarded append never commits after the
    // guard moved.
    let dir = tempdir();
    let log = open(dir.path());
    for round in 0..50u64 {
        let guard = format!("guard-{round}");
        let (mover, guarded) = (log.clone(), log.clone());
        let (g1, g2) = (guard.clone(), guard.clone());
        let move_guard = tokio::spawn(async move {
            mover
                .append(&g1, ExpectedVersion::NoStream, events(round..round + 1))
                .await
        });
        let append = tokio::spawn(async move {
            guarded
                .append_guarded(
                    &format!("target-{round}"),
                    ExpectedVersion::NoStream,
                    events(round..round + 1),
                    vec![(g2, ExpectedVersion::NoStream)],
                )
                .await
        });
        let moved = move_guard.await.unwrap().unwrap();
        match append.await.unwrap() {
            Ok(appended) => assert!(
                appended.positions[0] < moved.positions[0],
                "round {round}: the guarded append committed after its guard moved"
            ),
            Err(AppendError::Conflict(conflict)) => assert_eq!(conflict.stream, guard),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert!(verify::<TestEvent>(log.tree(), 1, |_| {})
        .unwrap()
        .is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_conflicting_append_fails_alone_and_the_rest_of_its_group_commits() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("contested", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..64u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            if n % 8 == 0 {
                // Stale on purpose: the stream is at version >= 1.
                log.append("contested", ExpectedVersion::NoStream, events(n..n + 1))
                    .await
            } else {
                log.append(
                    &format!("s{n}"),
                    ExpectedVersion::NoStream,
                    events(n..n + 1),
                )
                .await
            }
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(AppendError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (56, 8));
    assert_eq!(log.head().position, 57);
    assert!(verify::<TestEvent>(log.tree(), 1, |_| {})
        .unwrap()
        .is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_subscriber_started_midway_sees_every_event_once_in_order_while_writers_append() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("warmup", ExpectedVersion::Any, events(0..100))
        .await
        .unwrap();
    let total_writes = 8 * 50;
    let mut writers = Vec::new();
    for w in 0..8u64 {
        let log = log.clone();
        writers.push(tokio::spawn(async move {
            for n in 0..50 {
                let _ = log
                    .append(&format!("w{w}"), ExpectedVersion::Any, events(n..n + 1))
                    .await
                    .unwrap();
            }
        }));
    }
    // Start part-way through the history while the writers run.
    let from = 40;
    let mut stream = log.subscribe(from);
    let expected_last = 100 + total_writes;
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < expected_last {
        let envelope = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("the subscription keeps up")
            .expect("the subscription does not end")
            .expect("no read error");
        seen.push(envelope.position);
    }
    for w in writers {
        w.await.unwrap();
    }
    let wanted: Vec<u64> = (from..=expected_last).collect();
    assert_eq!(seen, wanted);
    // Nothing more arrives without a new commit.
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err()
    );
    let _ = log
        .append("late", ExpectedVersion::Any, events(0..1))
        .await
        .unwrap();
    let late = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(late.position, expected_last + 1);
}

#[tokio::test]
async fn a_slow_subscriber_holds_back_only_itself() {
    let dir = tempdir();
    let log = open(dir.path());
    let mut stream = log.subscribe(1);
    for n in 0..2_000u64 {
        let _ = log
            .append("a", ExpectedVersion::Any, events(n..n + 1))
            .await
            .unwrap();
    }
    // The subscriber has taken nothing yet; appends were not blocked, and it
    // still gets everything in order when it reads.
    let mut n = 0;
    while n < 2_000 {
        let e = stream.next().await.unwrap().unwrap();
        n += 1;
        assert_eq!(e.position, n);
    }
}

#[tokio::test]
async fn verify_finds_a_rewritten_record() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..10))
        .await
        .unwrap();
    let tree = log.db().open_tree(LOG_TREE).unwrap();
    let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 6];
    let mut bytes = tree.get(key).unwrap().unwrap().to_vec();
    // Flip one byte inside the payload area (before the trailing hash).
    let at = bytes.len() - 40;
    bytes[at] ^= 0x01;
    tree.insert(key, bytes).unwrap();
    let report = verify::<TestEvent>(log.tree(), 1, |_| {}).unwrap();
    let breach = report.breach.expect("tampering is found");
    assert_eq!(breach.position, 6);
    assert!(matches!(
        breach.kind,
        BreachKind::HashMismatch | BreachKind::Undecodable
    ));
    assert_eq!(report.checked, 5);
}

#[tokio::test]
async fn verify_finds_a_deleted_record() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..10))
        .await
        .unwrap();
    log.tree().remove([b'e', 0, 0, 0, 0, 0, 0, 0, 4]).unwrap();
    let breach = verify::<TestEvent>(log.tree(), 1, |_| {})
        .unwrap()
        .breach
        .expect("deletion is found");
    assert_eq!((breach.position, breach.kind), (4, BreachKind::Missing));
    // Deleting the last record is found through the head.
    log.tree().remove([b'e', 0, 0, 0, 0, 0, 0, 0, 10]).unwrap();
    let breach = verify::<TestEvent>(log.tree(), 6, |_| {})
        .unwrap()
        .breach
        .expect("deletion of the tail is found");
    assert_eq!((breach.position, breach.kind), (10, BreachKind::Missing));
}

#[tokio::test]
async fn a_record_with_an_unknown_format_byte_is_a_typed_read_error() {
    let dir = tempdir();
    let log = open(dir.path());
    let _ = log
        .append("a", ExpectedVersion::Any, events(0..3))
        .await
        .unwrap();
    let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 2];
    let mut bytes = log.tree().get(key).unwrap().unwrap().to_vec();
    bytes[0] = 9;
    log.tree().insert(key, bytes).unwrap();
    let err = log.read_all(1, 10).await.unwrap_err();
    assert!(
        err.to_string().contains("position 2") && err.to_string().contains("format"),
        "{err}"
    );
}

#[tokio::test]
async fn a_payload_of_another_type_is_a_typed_error_not_a_panic() {
    #[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Narrow(u8);
    impl srs_domain::log::Event for Narrow {
        fn event_type(&self) -> &'static str {
            "Narrow"
        }
    }
    let dir = tempdir();
    {
        let log = open(dir.path());
        let _ = log
            .append(
                "a",
                ExpectedVersion::Any,
                vec![NewEvent::new(
                    Actor::system("t"),
                    TestEvent::Other(vec![7; 300]),
                )],
            )
            .await
            .unwrap();
    }
    let log =
        srs_domain::log::SledEventStore::<Narrow>::open(dir.path(), Default::default()).unwrap();
    let err = log.read_all(1, 1).await.unwrap_err();
    assert!(err.to_string().contains("position 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_share_flushes() {
    // Group commit: 64 concurrent single-event appends need far fewer than
    // 64 flushes. Observable as: all complete, positions unique and gapless.
    let dir = tempdir();
    let log = open(dir.path());
    let mut tasks = Vec::new();
    for w in 0..64u64 {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for n in 0..20 {
                let a = log
                    .append(&format!("w{w}"), ExpectedVersion::Any, events(n..n + 1))
                    .await
                    .unwrap();
                mine.extend(a.positions);
            }
            mine
        }));
    }
    let mut all = HashSet::new();
    for t in tasks {
        for p in t.await.unwrap() {
            assert!(all.insert(p), "position {p} handed out twice");
        }
    }
    assert_eq!(all.len(), 64 * 20);
    assert_eq!(*all.iter().max().unwrap(), 64 * 20);
}
