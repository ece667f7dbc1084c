//! The log's core over a backend that is not sled: a map in memory that
//! does only what `LogBackend` asks (store a commit whole, find records
//! and index entries again). Positions, versions, the hash chain,
//! expected versions, guards, idempotency, verification and import all
//! come from the core, so they hold here as they do over sled.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use common::{event, event_with_id, TestEvent};
use futures_util::StreamExt as _;
use srs_domain::log::{
    verify, AppendError, BreachKind, Commit, EventLog, EventStore, ExpectedVersion, Head,
    LogBackend, LogError, LogImporter, StoreOptions, Visit,
};
use uuid::Uuid;

#[derive(Default)]
struct Stored {
    records: BTreeMap<u64, Vec<u8>>,
    ids: HashMap<Uuid, u64>,
    /// Per stream: version -> position.
    streams: HashMap<String, BTreeMap<u64, u64>>,
    versions: HashMap<String, u64>,
    head: Head,
}

/// Everything under one lock: a commit is seen whole or not at all.
#[derive(Default)]
struct MemoryBackend {
    stored: Mutex<Stored>,
    commits: Mutex<u64>,
}

impl MemoryBackend {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap()
    }
}

impl LogBackend for MemoryBackend {
    fn head(&self) -> Result<Head, LogError> {
        Ok(self.stored().head)
    }

    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        // Copied out first: `visit` may call back into the backend.
        let records: Vec<(u64, Vec<u8>)> = self
            .stored()
            .records
            .range(from..=to)
            .map(|(p, bytes)| (*p, bytes.clone()))
            .collect();
        for (position, bytes) in records {
            if !visit(position, &bytes)? {
                break;
            }
        }
        Ok(())
    }

    fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError> {
        Ok(self.stored().ids.get(&event_id).copied())
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        Ok(self.stored().versions.get(stream).copied())
    }

    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>, LogError> {
        Ok(self
            .stored()
            .streams
            .get(stream)
            .and_then(|versions| versions.get(&version).copied()))
    }

    fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<u64>, LogError> {
        Ok(self
            .stored()
            .streams
            .get(stream)
            .map(|versions| {
                versions
                    .range(from_version..)
                    .take(max)
                    .map(|(_, p)| *p)
                    .collect()
            })
            .unwrap_or_default())
    }

    fn commit(&self, commit: Commit) -> Result<(), LogError> {
        let mut stored = self.stored();
        for record in commit.records {
            stored.ids.insert(record.event_id, record.position);
            stored
                .streams
                .entry(record.stream)
                .or_default()
                .insert(record.version, record.position);
            stored.records.insert(record.position, record.bytes);
        }
        for (stream, version) in commit.streams {
            stored.versions.insert(stream, version);
        }
        if let Some(head) = commit.head {
            stored.head = head;
        }
        *self.commits.lock().unwrap() += 1;
        Ok(())
    }

    fn flush(&self) -> Result<(), LogError> {
        Ok(())
    }
}

fn log_over(backend: &Arc<MemoryBackend>) -> EventLog<TestEvent> {
    EventLog::new(backend.clone(), StoreOptions::default()).expect("log")
}

#[tokio::test]
async fn the_core_keeps_its_promises_over_another_backend() {
    let backend = Arc::new(MemoryBackend::default());
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
    let commits = *backend.commits.lock().unwrap();
    let retried = log
        .append("c", ExpectedVersion::Any, vec![event_with_id(5, id)])
        .await
        .unwrap();
    assert!(retried.deduplicated);
    assert_eq!(retried.positions, stored.positions);
    assert_eq!(*backend.commits.lock().unwrap(), commits);

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
    let report = verify::<TestEvent>(&*backend, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert_eq!(report.last, EventStore::head(&log));
}

#[tokio::test]
async fn verify_and_import_work_over_another_backend() {
    let source = Arc::new(MemoryBackend::default());
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

    // An import into an empty backend gives the same records and head.
    let target = Arc::new(MemoryBackend::default());
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

    // A record altered in the backend is named by its position.
    {
        let mut stored = source.stored();
        let bytes = stored.records.get_mut(&9).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
    }
    let breach = verify::<TestEvent>(&*source, 1, |_| {})
        .unwrap()
        .breach
        .expect("a breach");
    assert_eq!(breach.position, 9);
    assert_eq!(breach.kind, BreachKind::HashMismatch);
}
