//! Writing a log that was recorded elsewhere, record by record, with its
//! original positions, times and hashes (`srs import`).
//!
//! The normal write path assigns positions, versions and `recorded_at`
//! itself; an imported log must keep the source's, or its hashes would
//! change. [`rehash`] recomputes a record's hash from its fields, so a
//! caller can check a whole file *before* writing anything;
//! [`LogImporter`] then writes records through the same encoder and key
//! layout as the writer, so the result is indistinguishable from the source
//! and `verify` passes on it.
//!
//! The importer only writes into an empty log. The head record is written
//! last, in the final batch: an interrupted import leaves records without a
//! head, which `verify` reports, and the target is no longer empty, so it
//! must be removed before importing again.

use std::collections::HashMap;

use super::codec::{encode_record, RawRecord, RecordFields};
use super::envelope::{Hash, Head};
use super::error::LogError;
use super::keys;
use super::sled_store::LOG_TREE;

/// How many records one sled batch of an import holds.
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

/// Writes records, in position order, into an empty log tree.
pub struct LogImporter {
    db: sled::Db,
    tree: sled::Tree,
    head: Head,
    batch: sled::Batch,
    in_batch: usize,
    /// Each stream's last version so far: versions must be gapless.
    versions: HashMap<String, u64>,
}

impl LogImporter {
    /// Opens the log tree of `db`; refuses a log that holds anything.
    pub fn new(db: &sled::Db) -> Result<Self, LogError> {
        let tree = db.open_tree(LOG_TREE)?;
        if !tree.is_empty() {
            return Err(LogError::Corrupt(
                "the target log is not empty; import only into a new data directory".into(),
            ));
        }
        Ok(LogImporter {
            db: db.clone(),
            tree,
            head: Head::default(),
            batch: sled::Batch::default(),
            in_batch: 0,
            versions: HashMap::new(),
        })
    }

    /// Adds the next record. Its position must follow the last one, its
    /// version its stream's last, and its fields must hash to its `hash`
    /// after the previous record's hash.
    pub fn push(&mut self, record: &RawRecord) -> Result<(), LogError> {
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
        self.batch.insert(&keys::event(position)[..], bytes);
        self.batch.insert(
            keys::stream_event(&record.stream, record.version),
            &position.to_be_bytes()[..],
        );
        self.batch.insert(
            &keys::event_id(record.event_id)[..],
            &position.to_be_bytes()[..],
        );
        self.batch.insert(
            keys::stream_head(&record.stream),
            &record.version.to_be_bytes()[..],
        );
        self.versions.insert(record.stream.clone(), record.version);
        self.head = Head { position, hash };
        self.in_batch += 1;
        if self.in_batch >= IMPORT_BATCH {
            self.tree.apply_batch(std::mem::take(&mut self.batch))?;
            self.in_batch = 0;
        }
        Ok(())
    }

    /// Writes what is left and the head, flushes, and returns the head.
    pub fn finish(mut self) -> Result<Head, LogError> {
        let mut batch = std::mem::take(&mut self.batch);
        batch.insert(keys::HEAD, &keys::head_value(&self.head)[..]);
        self.tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(self.head)
    }
}
