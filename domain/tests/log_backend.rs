//! The log's core over a backend that is not sled: a map in memory that
//! does only what `LogBackend` asks (store a commit whole, find records
//! and index entries again). Positions, versions, the hash chain,
//! expected versions, guards, idempotency, verification and import all
//! come from the core, so they hold here as they do over sled.
//!
//! The checks themselves are `srs_domain::log::contract`, which every
//! backend's tests run.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use srs_domain::log::contract::{self, ContractEvent};
use srs_domain::log::{verify, BreachKind, Commit, Head, LogBackend, LogError, Visit};
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

fn backend() -> (Arc<MemoryBackend>, Arc<dyn LogBackend>) {
    let backend = Arc::new(MemoryBackend::default());
    let dyn_backend: Arc<dyn LogBackend> = backend.clone();
    (backend, dyn_backend)
}

#[tokio::test]
async fn the_core_keeps_its_promises_over_another_backend() {
    let (memory, backend) = backend();
    contract::core_keeps_its_promises(backend).await;
    // Three appends were written, one commit each; the refused and the
    // deduplicated ones wrote nothing.
    assert_eq!(*memory.commits.lock().unwrap(), 3);
}

#[tokio::test]
async fn verify_and_import_work_over_another_backend() {
    let (source, source_backend) = backend();
    let (_, target) = backend();
    contract::verify_and_import(source_backend, target).await;

    // A record altered in the backend is named by its position.
    {
        let mut stored = source.stored();
        let bytes = stored.records.get_mut(&9).unwrap();
        let last = bytes.len() - 40;
        bytes[last] ^= 1;
    }
    let breach = verify::<ContractEvent>(&*source, 1, |_| {})
        .unwrap()
        .breach
        .expect("a breach");
    assert_eq!(breach.position, 9);
    assert_eq!(breach.kind, BreachKind::HashMismatch);
}
