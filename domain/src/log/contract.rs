//! The log's contract over any [`LogBackend`], as checks a backend's tests
//! run (feature `testing`): the in-memory backend of the domain's tests
//! and the JetStream backend run the same ones, so every backend is held
//! to the same promises. Each check starts from an empty backend.

use std::sync::Arc;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    verify, AppendError, EventLog, EventStore, ExpectedVersion, LogBackend, LogImporter, NewEvent,
    StoreOptions,
};
use crate::actor::Actor;

/// A payload type that knows nothing of the product: the log is generic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ContractEvent {
    Happened { n: u64, note: String },
}

impl super::Event for ContractEvent {
    fn event_type(&self) -> &'static str {
        "Happened"
    }
}

/// Event `n` with a fresh id.
pub fn event(n: u64) -> NewEvent<ContractEvent> {
    NewEvent::new(
        Actor::system("test"),
        ContractEvent::Happened {
            n,
            note: format!("event {n}"),
        },
    )
}

/// Event `n` with id `id`.
pub fn event_with_id(n: u64, id: Uuid) -> NewEvent<ContractEvent> {
    event(n).with_id(id)
}

/// The log over `backend` with default options.
pub fn log_over(backend: &Arc<dyn LogBackend>) -> EventLog<ContractEvent> {
    EventLog::new(backend.clone(), StoreOptions::default()).expect("log")
}

/// Positions, versions, expected versions, guards, idempotency, reads,
/// subscriptions and the hash chain, all from the core, over `backend`
/// (empty). Panics on the first broken promise.
pub async fn core_keeps_its_promises(backend: Arc<dyn LogBackend>) {
    let log = log_over(&backend);

    let first = log
        .append("a", ExpectedVersion::NoStream, vec![event(1), event(2)])
        .await
        .unwrap();
    assert_eq!(first.positions, vec![1, 2]);
    assert_eq!(first.stream_version, 2);
    let second = log
        .append("b", ExpectedVersion::Any, vec![event(3)])
        .await
        .unwrap();
    assert_eq!(second.positions, vec![3]);

    // Expected versions are checked by the core.
    let stale = log
        .append("a", ExpectedVersion::Exact(1), vec![event(4)])
        .await;
    assert!(matches!(stale, Err(AppendError::Conflict(_))), "{stale:?}");
    // So are guards.
    let guarded = log
        .append_guarded(
            "a",
            ExpectedVersion::Exact(2),
            vec![event(4)],
            vec![("b".into(), ExpectedVersion::Exact(7))],
        )
        .await;
    assert!(
        matches!(&guarded, Err(AppendError::Conflict(c)) if c.stream == "b"),
        "{guarded:?}"
    );

    // A retried append is answered from the id index, nothing written.
    let id = Uuid::now_v7();
    let stored = log
        .append("c", ExpectedVersion::Any, vec![event_with_id(5, id)])
        .await
        .unwrap();
    let head = backend.head().unwrap();
    let retried = log
        .append("c", ExpectedVersion::Any, vec![event_with_id(5, id)])
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.positions, stored.positions);
    assert_eq!(backend.head().unwrap(), head);
    let mut after = 0;
    backend
        .scan(head.position + 1, u64::MAX, &mut |_, _| {
            after += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(after, 0, "a deduplicated append wrote records");

    // Reads, by position, stream and id, and a subscription.
    let all = log.read_all(1, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    let a = log.read_stream("a", 2, 10).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].position, 2);
    assert_eq!(log.stream_version("a").await.unwrap(), Some(2));
    assert_eq!(log.read_event(id).await.unwrap().unwrap().position, 4);
    let followed: Vec<u64> = log
        .subscribe(2)
        .take(3)
        .map(|e| e.unwrap().position)
        .collect()
        .await;
    assert_eq!(followed, vec![2, 3, 4]);

    // The chain the core wrote checks out.
    let report = verify::<ContractEvent>(&*backend, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.last, EventStore::head(&log));
}

/// Appends 20 events to `source` (empty), checks `verify` over it, imports
/// them into `target` (empty) and checks the result: the same records,
/// head and versions, and a second import refused.
pub async fn verify_and_import(source: Arc<dyn LogBackend>, target: Arc<dyn LogBackend>) {
    let log = log_over(&source);
    for n in 0..20 {
        let _ = log
            .append(
                &format!("s-{}", n % 3),
                ExpectedVersion::Any,
                vec![event(n)],
            )
            .await
            .unwrap();
    }
    let records = log.read_raw(1, 100).unwrap();
    assert_eq!(records.len(), 20);
    let report = verify::<ContractEvent>(&*source, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.checked, 20);

    // An import into an empty backend gives the same records and head.
    let mut importer = LogImporter::new(target.clone()).unwrap();
    for record in &records {
        importer.push(record).unwrap();
    }
    let head = importer.finish().unwrap();
    assert_eq!(head, EventStore::head(&log));
    let imported = log_over(&target);
    assert_eq!(imported.read_raw(1, 100).unwrap(), records);
    assert_eq!(imported.stream_version("s-1").await.unwrap(), Some(7));
    // A second import into it is refused.
    assert!(LogImporter::new(target.clone()).is_err());
}
