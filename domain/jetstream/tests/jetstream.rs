//! The JetStream backend against a real three-node nats-server cluster
//! (`srs_log_jetstream::testing::Cluster`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use srs_domain::log::contract::{self, event, event_with_id, ContractEvent};
use srs_domain::log::{
    verify, AppendError, Appended, Commit, CommitRecord, EventLog, EventStore, ExpectedVersion,
    Hash, Head, LogBackend, NewEvent, StoreOptions,
};
use srs_log_jetstream::testing::Cluster;
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};
use uuid::Uuid;

fn open(cluster: &Cluster, stream: &str) -> Arc<JetStreamBackend> {
    let options = JetStreamOptions {
        // Room for a loaded machine (the tests run beside others); a
        // lost quorum still answers within it.
        timeout: Duration::from_secs(15),
        ..JetStreamOptions::new(&cluster.urls(), stream)
    };
    Arc::new(JetStreamBackend::open(&options).expect("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_keeps_its_promises_over_jetstream() {
    let cluster = Cluster::start();
    let backend: Arc<dyn LogBackend> = open(&cluster, "contract");
    contract::core_keeps_its_promises(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_import_work_over_jetstream() {
    let cluster = Cluster::start();
    let source: Arc<dyn LogBackend> = open(&cluster, "source");
    let target: Arc<dyn LogBackend> = open(&cluster, "target");
    contract::verify_and_import(source, target).await;
}

fn log_over(backend: &Arc<JetStreamBackend>) -> EventLog<ContractEvent> {
    let backend: Arc<dyn LogBackend> = backend.clone();
    EventLog::new(backend, StoreOptions::default()).expect("log")
}

/// How long a test waits for the cluster to settle after a fault; a bound
/// so a broken test fails instead of hanging, not a timing claim.
const SETTLE: Duration = Duration::from_secs(60);

/// Appends, retrying with the same event ids while the log answers
/// unavailable (what a client is told to do), until [`SETTLE`].
async fn append_retrying(
    log: &EventLog<ContractEvent>,
    stream: &str,
    events: Vec<NewEvent<ContractEvent>>,
) -> Appended {
    let deadline = Instant::now() + SETTLE;
    loop {
        match log
            .append(stream, ExpectedVersion::Any, events.clone())
            .await
        {
            Ok(appended) => return appended,
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("append to {stream} failed: {e}"),
        }
    }
}

async fn wait_writable(log: &EventLog<ContractEvent>) {
    let mut writability = log.watch_writability();
    tokio::time::timeout(SETTLE, writability.wait_for(|w| w.is_writable()))
        .await
        .expect("the log is writable again")
        .expect("the writer runs");
}

/// Every position from 1 to the head is there once, the chain checks out,
/// and a backend opened afresh (indexes rebuilt from the stream) agrees.
async fn assert_gapless_and_intact(cluster: &Cluster, stream: &str, head: u64) {
    let reopened = open(cluster, stream);
    assert_eq!(reopened.head().unwrap().position, head);
    let log = log_over(&reopened);
    let all = log.read_all(1, usize::MAX).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (1..=head).collect::<Vec<_>>()
    );
    let report = verify::<ContractEvent>(&*reopened, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.checked, head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_event_append_is_stored_whole_or_not_at_all() {
    let cluster = Cluster::start();
    let backend = open(&cluster, "atomic");
    let log = log_over(&backend);
    let first = log
        .append("a", ExpectedVersion::NoStream, (1..=5).map(event).collect())
        .await
        .unwrap();
    assert_eq!(first.positions, vec![1, 2, 3, 4, 5]);

    // An event over the servers' largest message is refused as invalid,
    // nothing written, the log writable.
    let mut big = event(7);
    big.payload = ContractEvent::Happened {
        n: 7,
        note: "x".repeat(9 * 1024 * 1024),
    };
    let refused = log
        .append("a", ExpectedVersion::Exact(5), vec![event(6), big])
        .await;
    assert!(
        matches!(&refused, Err(AppendError::Invalid(_))),
        "{refused:?}"
    );
    assert!(log.writability().is_writable());
    assert_eq!(backend.head().unwrap().position, 5);

    // A batch broken off after two of its three messages reached the
    // server (the third is over the client's limit) is never committed:
    // nothing of it is stored. (Straight to the backend, the log idle.)
    let record = |position: u64, size: usize| CommitRecord {
        position,
        stream: "a".into(),
        version: position,
        event_id: Uuid::now_v7(),
        bytes: vec![1; size],
    };
    let broken_off = backend.commit(Commit {
        records: vec![record(6, 100), record(7, 100), record(8, 9 * 1024 * 1024)],
        streams: vec![("a".into(), 8)],
        head: Some(Head {
            position: 8,
            hash: Hash([1; 32]),
        }),
    });
    assert!(
        matches!(&broken_off, Err(e) if e.is_unavailable()),
        "{broken_off:?}"
    );
    let resynced = backend.resync().expect("the backend resyncs").unwrap();
    assert_eq!(resynced.position, 5);
    assert_eq!(open(&cluster, "atomic").head().unwrap().position, 5);
    assert_eq!(log.stream_version("a").await.unwrap(), Some(5));

    // A second handle that missed a commit is refused by the stream
    // (expected last sequence), with nothing of its batch stored; it reads
    // back what the stream holds and decides again, after the other
    // handle's record.
    let stale = open(&cluster, "atomic");
    let next = log
        .append("a", ExpectedVersion::Exact(5), vec![event(9)])
        .await
        .unwrap();
    assert_eq!(next.positions, vec![6]);
    let stale_log = log_over(&stale);
    let decided_again = stale_log
        .append("b", ExpectedVersion::Any, (10..13).map(event).collect())
        .await
        .unwrap();
    assert_eq!(decided_again.positions, vec![7, 8, 9]);
    assert!(stale_log.writability().is_writable());
    drop((log, stale_log));
    assert_gapless_and_intact(&cluster, "atomic", 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_event_id_is_answered_after_reopening() {
    let cluster = Cluster::start();
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
    let events: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| event_with_id(n as u64, *id))
        .collect();
    let stored = {
        let backend = open(&cluster, "ids");
        let log = log_over(&backend);
        let _ = log
            .append("x", ExpectedVersion::Any, vec![event(100)])
            .await
            .unwrap();
        log.append("s", ExpectedVersion::Any, events.clone())
            .await
            .unwrap()
    };
    assert_eq!(stored.positions, vec![2, 3, 4]);

    // A new handle rebuilds the id index from the stream's records.
    let backend = open(&cluster, "ids");
    let head = backend.head().unwrap();
    let log = log_over(&backend);
    let again = log
        .append("s", ExpectedVersion::Any, events.clone())
        .await
        .unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.positions, stored.positions);
    assert_eq!(again.stream_version, 3);
    assert_eq!(backend.head().unwrap(), head);
    assert_eq!(open(&cluster, "ids").head().unwrap(), head);
    // Part of a stored append with new ids is refused, nothing written.
    let mixed = log
        .append("s", ExpectedVersion::Any, vec![events[0].clone(), event(9)])
        .await;
    assert!(matches!(mixed, Err(AppendError::Invalid(_))), "{mixed:?}");
    assert_eq!(open(&cluster, "ids").head().unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_stream_leader_loses_no_acknowledged_event() {
    let mut cluster = Cluster::start();
    let backend = open(&cluster, "leader");
    let log = log_over(&backend);
    // Writers append in the background, each retrying with the same ids
    // while the log is unavailable, and keep what was acknowledged.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..60u64 {
                    let events: Vec<_> = (0..=(n % 3))
                        .map(|k| event(w * 1000 + n * 10 + k))
                        .collect();
                    let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
                    let appended = append_retrying(&log, &format!("w{w}"), events).await;
                    acknowledged.push((ids, appended.positions));
                }
                acknowledged
            })
        })
        .collect();
    // Kill -9 the leader once appends are flowing.
    let deadline = Instant::now() + SETTLE;
    while EventStore::head(&log).position < 40 {
        assert!(Instant::now() < deadline, "no appends went through");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let leader = cluster.stream_leader("leader").expect("a stream leader");
    assert_eq!(
        backend.stream_leader().unwrap().as_deref(),
        Some(leader.as_str())
    );
    let killed = cluster.index_of(&leader).unwrap();
    cluster.kill(killed);

    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.unwrap());
    }
    assert_eq!(acknowledged.len(), 240);
    let new_leader = cluster.stream_leader("leader").expect("a new leader");
    assert_ne!(new_leader, leader);

    // Every acknowledged event is where its acknowledgement said.
    for (ids, positions) in &acknowledged {
        for (id, position) in ids.iter().zip(positions) {
            let stored = log
                .read_event(*id)
                .await
                .unwrap()
                .expect("an acknowledged event");
            assert_eq!(stored.position, *position);
        }
    }
    let head = EventStore::head(&log).position;
    let events: usize = acknowledged.iter().map(|(ids, _)| ids.len()).sum();
    assert_eq!(
        head, events as u64,
        "each acknowledged event once, nothing else"
    );
    drop(log);
    assert_gapless_and_intact(&cluster, "leader", head).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_appends_fail_and_resume_after_a_restart() {
    let mut cluster = Cluster::start();
    let backend = open(&cluster, "quorum");
    let log = log_over(&backend);
    let _ = log
        .append("a", ExpectedVersion::Any, (0..3).map(event).collect())
        .await
        .unwrap();

    cluster.kill(0);
    cluster.kill(1);
    let events: Vec<_> = (3..6).map(event).collect();
    let failed = tokio::time::timeout(
        SETTLE,
        log.append("a", ExpectedVersion::Any, events.clone()),
    )
    .await
    .expect("an answer, not a hang");
    let error = failed.expect_err("no quorum, no append");
    assert!(error.is_unavailable(), "{error}");
    // Later appends are refused at once while the writer waits for storage.
    let refused = log
        .append("a", ExpectedVersion::Any, vec![event(9)])
        .await
        .expect_err("refused");
    assert!(refused.is_unavailable(), "{refused}");
    assert!(!log.writability().is_writable());

    cluster.start_node(0);
    wait_writable(&log).await;
    // The failed append is whole or absent: retried with the same ids it
    // lands (or is answered) at 4, 5, 6.
    let retried = append_retrying(&log, "a", events).await;
    assert_eq!(retried.positions, vec![4, 5, 6]);
    let next = log
        .append("a", ExpectedVersion::Exact(6), vec![event(7)])
        .await
        .unwrap();
    assert_eq!(next.positions, vec![7]);
    drop(log);
    cluster.start_node(1);
    assert_gapless_and_intact(&cluster, "quorum", 7).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writers_on_one_stream_never_store_a_stale_decision() {
    let cluster = Cluster::start();
    let (a, b) = (open(&cluster, "two"), open(&cluster, "two"));
    let (log_a, log_b) = (log_over(&a), log_over(&b));
    // Taking turns, with no retry: a handle that missed the other's commit
    // has its commit refused by the stream (expected last sequence), reads
    // the stream back and decides again on it, within the one append.
    for turn in 0..10u64 {
        for (log, version) in [(&log_a, 2 * turn), (&log_b, 2 * turn + 1)] {
            let appended = log
                .append("s", ExpectedVersion::Any, vec![event(version)])
                .await
                .unwrap();
            assert_eq!(appended.stream_version, version + 1);
            assert_eq!(appended.positions, vec![version + 1]);
        }
    }
    // A decides on version 19 (what it last wrote); the stream is at 20:
    // the conflict names the stored version, never A's stale view.
    let stale = log_a
        .append("s", ExpectedVersion::Exact(19), vec![event(99)])
        .await;
    assert!(
        matches!(&stale, Err(AppendError::Conflict(c)) if c.actual == Some(20)),
        "{stale:?}"
    );
    // An event id B stored is answered as stored through A, even when A
    // has not seen it yet.
    let id = Uuid::now_v7();
    let stored = log_b
        .append("s", ExpectedVersion::Any, vec![event_with_id(20, id)])
        .await
        .unwrap();
    assert_eq!(stored.positions, vec![21]);
    let again = log_a
        .append("s", ExpectedVersion::Any, vec![event_with_id(20, id)])
        .await
        .unwrap();
    assert!(again.deduplicated, "{again:?}");
    assert_eq!(again.positions, vec![21]);
    drop((log_a, log_b));
    assert_gapless_and_intact(&cluster, "two", 21).await;
}

/// Waits until `log`'s durable head is at least `position`.
async fn wait_for_head(log: &EventLog<ContractEvent>, position: u64) {
    let deadline = Instant::now() + SETTLE;
    while EventStore::head(log).position < position {
        assert!(
            Instant::now() < deadline,
            "the head stayed at {} (waiting for {position})",
            EventStore::head(log).position
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_follows_what_another_node_appends() {
    let cluster = Cluster::start();
    let (a, b) = (open(&cluster, "follow"), open(&cluster, "follow"));
    let (log_a, log_b) = (log_over(&a), log_over(&b));
    let written = log_a
        .append("x", ExpectedVersion::NoStream, (1..=3).map(event).collect())
        .await
        .unwrap();
    assert_eq!(written.positions, vec![1, 2, 3]);
    // B appends nothing: its head, reads and stream versions follow A's.
    wait_for_head(&log_b, 3).await;
    let read = log_b.read_all(1, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(log_b.stream_version("x").await.unwrap(), Some(3));
    // B never sees part of a commit: every head it publishes ends one of
    // A's three-event appends.
    let mut heads = EventStore::watch_head(&log_b);
    let watcher = tokio::spawn(async move {
        let mut seen = Vec::new();
        while heads.changed().await.is_ok() {
            let head = heads.borrow_and_update().position;
            seen.push(head);
            if head >= 63 {
                break;
            }
        }
        seen
    });
    for n in 0..20u64 {
        let appended = log_a
            .append(
                "z",
                ExpectedVersion::Any,
                (0..3).map(|k| event(100 + n * 3 + k)).collect(),
            )
            .await
            .unwrap();
        assert_eq!(appended.positions.last(), Some(&(3 + n * 3 + 3)));
    }
    let seen = tokio::time::timeout(SETTLE, watcher)
        .await
        .unwrap()
        .unwrap();
    assert!(seen.iter().all(|head| head % 3 == 0), "{seen:?}");
    assert_eq!(seen.last(), Some(&63));
    // And the other way round, many times over.
    for n in 64..=100 {
        let appended = log_b
            .append("y", ExpectedVersion::Any, vec![event(n)])
            .await
            .unwrap();
        assert_eq!(appended.positions, vec![n]);
    }
    wait_for_head(&log_a, 100).await;
    assert_eq!(log_a.stream_version("y").await.unwrap(), Some(37));
    drop((log_a, log_b));
    assert_gapless_and_intact(&cluster, "follow", 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_appends_from_two_nodes_one_wins_the_other_conflicts() {
    let cluster = Cluster::start();
    let (a, b) = (open(&cluster, "race"), open(&cluster, "race"));
    let (log_a, log_b) = (log_over(&a), log_over(&b));
    let mut wins = [0u32; 2];
    for round in 0..30u64 {
        // Both decided on version `round`, at the same time.
        let expected = if round == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(round)
        };
        let (from_a, from_b) = tokio::join!(
            log_a.append("s", expected, vec![event(1000 + round)]),
            log_b.append("s", expected, vec![event(2000 + round)]),
        );
        let winner = match (&from_a, &from_b) {
            (Ok(_), Err(AppendError::Conflict(c))) | (Err(AppendError::Conflict(c)), Ok(_)) => {
                assert_eq!(
                    c.actual,
                    Some(round + 1),
                    "the conflict names the winner's version"
                );
                usize::from(from_b.is_ok())
            }
            other => panic!("round {round}: not one win and one conflict: {other:?}"),
        };
        wins[winner] += 1;
        let stored = [&log_a, &log_b][winner];
        wait_for_head(stored, round + 1).await;
    }
    assert_eq!(wins[0] + wins[1], 30);
    drop((log_a, log_b));
    assert_gapless_and_intact(&cluster, "race", 30).await;
}
