//! Writing a log that was recorded elsewhere, record by record, with its
//! original positions, times and hashes (`srs import`).
//!
//! The normal write path assigns positions, versions and `recorded_at`
//! itself; an imported log must keep the source's, or its hashes would
//! change. [`rehash`] recomputes a record's hash from its fields, so a
//! caller can check a whole file *before* writing anything;
//! [`LogImporter`] then writes records through the same encoder and the
//! same backend commits as the writer, so the result is indistinguishable from the source
//! and `verify` passes on it.
//!
//! The importer writes into an empty log, or onto a log that holds the
//! first records of the same log ([`LogImporter::onto`]: an earlier import
//! of a shorter export, or an import that was interrupted). The head
//! record is written last, in the final batch: an interrupted import
//! leaves records without a head, which `verify` reports until the import
//! is run again.

use std::collections::HashMap;
use std::sync::Arc;

use super::backend::{Commit, CommitRecord, LogBackend};
use super::codec::{encode_record, RawRecord, RecordFields};
use super::envelope::{Hash, Head};
use super::error::LogError;

/// How many records one commit of an import holds.
const IMPORT_BATCH: usize = 2_048;

/// The hash `record` has when it follows `prev` in a chain: what the
/// writer would have computed for these fields at this position.
pub fn rehash(record: &RawRecord, prev_hash: Hash) -> Result<Hash, LogError> {
    let (_, hash) = encode_record(record.position, &fields(record, prev_hash))?;
    Ok(hash)
}

fn fields(record: &RawRecord, prev_hash: Hash) -> RecordFields<'_> {
    RecordFields {
        stream: &record.stream,
        version: record.version,
        event_id: record.event_id,
        recorded_at: record.recorded_at,
        actor: &record.actor,
        correlation_id: record.correlation_id,
        causation_id: record.causation_id,
        event_type: &record.event_type,
        payload: &record.payload,
        prev_hash,
    }
}

/// Writes records, in position order, into an empty log. No writer may
/// append to the backend meanwhile.
pub struct LogImporter {
    backend: Arc<dyn LogBackend>,
    head: Head,
    commit: Commit,
    /// Each stream's last version so far: versions must be gapless.
    versions: HashMap<String, u64>,
}

impl LogImporter {
    /// Writes into `backend`; refuses a log that holds anything (a head,
    /// or a first record left by an interrupted import).
    pub fn new(backend: Arc<dyn LogBackend>) -> Result<Self, LogError> {
        let mut holds_record = false;
        backend.scan(1, u64::MAX, &mut |_, _| {
            holds_record = true;
            Ok(false)
        })?;
        if holds_record || backend.head()? != Head::default() {
            return Err(LogError::Corrupt(
                "the target log is not empty; import only into a new data directory".into(),
            ));
        }
        Ok(LogImporter::onto(backend))
    }

    /// Writes into `backend`, which may already hold the first records of
    /// what is imported (an earlier import of a shorter export of the same
    /// log): the caller hands each of those to [`LogImporter::stored`]
    /// first, having compared it with what the log holds, then the rest to
    /// [`LogImporter::push`].
    pub fn onto(backend: Arc<dyn LogBackend>) -> Self {
        LogImporter {
            backend,
            head: Head::default(),
            commit: Commit::default(),
            versions: HashMap::new(),
        }
    }

    /// Takes the next record as one the log already holds (at its
    /// position, with its hash): checked like [`LogImporter::push`], not
    /// written again.
    pub fn stored(&mut self, record: &RawRecord) -> Result<(), LogError> {
        self.next(record).map(drop)
    }

    /// Adds the next record. Its position must follow the last one, its
    /// version its stream's last, and its fields must hash to its `hash`
    /// after the previous record's hash.
    pub fn push(&mut self, record: &RawRecord) -> Result<(), LogError> {
        let bytes = self.next(record)?;
        self.commit.records.push(CommitRecord {
            position: record.position,
            stream: record.stream.clone(),
            version: record.version,
            event_id: record.event_id,
            bytes,
        });
        if self.commit.records.len() >= IMPORT_BATCH.min(self.backend.max_commit_records()) {
            let commit = self.take_commit();
            self.backend.commit(commit)?;
        }
        Ok(())
    }

    /// Checks `record` as the next one and moves past it; its encoding.
    fn next(&mut self, record: &RawRecord) -> Result<Vec<u8>, LogError> {
        let position = self.head.position + 1;
        if record.position != position {
            return Err(LogError::Corrupt(format!(
                "expected position {position}, got {}",
                record.position
            )));
        }
        let last = self.versions.get(&record.stream).copied().unwrap_or(0);
        if record.version != last + 1 {
            return Err(LogError::Corrupt(format!(
                "position {position}: {} version {} does not follow version {last}",
                record.stream, record.version
            )));
        }
        let (bytes, hash) = encode_record(position, &fields(record, self.head.hash))?;
        if hash != record.hash || record.prev_hash != self.head.hash {
            return Err(LogError::Corrupt(format!(
                "position {position}: the record does not hash to its stored hash"
            )));
        }
        self.versions.insert(record.stream.clone(), record.version);
        self.head = Head { position, hash };
        Ok(bytes)
    }

    /// Writes what is left and the head, flushes, and returns the head.
    pub fn finish(mut self) -> Result<Head, LogError> {
        if self.commit.records.is_empty() && self.backend.head()? == self.head {
            // Everything was stored already, the head too.
            self.backend.flush()?;
            return Ok(self.head);
        }
        let mut commit = self.take_commit();
        commit.head = Some(self.head);
        self.backend.commit(commit)?;
        self.backend.flush()?;
        Ok(self.head)
    }

    /// The records so far with their streams' versions (the head is
    /// written by the last commit only).
    fn take_commit(&mut self) -> Commit {
        let mut commit = std::mem::take(&mut self.commit);
        let mut streams: HashMap<&str, u64> = HashMap::new();
        for record in &commit.records {
            streams.insert(&record.stream, record.version);
        }
        commit.streams = streams
            .into_iter()
            .map(|(stream, version)| (stream.to_owned(), version))
            .collect();
        commit
    }
}
