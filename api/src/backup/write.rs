//! [`write_backup`]: a data directory's log, content and keys as of one log
//! position, into one backup file (see the module docs of `backup`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use sha2::{Digest, Sha256};
use srs_domain::actor::Actor;
use srs_domain::log::{decode_payload, EventLog, EventStore, ExpectedVersion, Head, NewEvent};
use srs_domain::model::{DomainEvent, BACKUPS_STREAM};
use srs_domain::time::Timestamp;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::format::{
    BackupError, ChunkRecord, Header, RecordWriter, Trailer, Wrapping, WrappingKey, FORMAT_NAME,
    FORMAT_VERSION, KEY_LEN, TAG_CHUNK, TAG_HEADER, TAG_KEY, TAG_LOG,
};
use crate::content::{Area, ContentStore};

/// How often a backup starts over when a recording was deleted between
/// choosing its position and reading its key.
const ATTEMPTS: usize = 4;

/// What a backup wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSummary {
    pub position: u64,
    pub head_hash: String,
    pub events: u64,
    pub keys: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// The trailer's checksum (hex).
    pub sha256: String,
}

/// What the log up to a position says the content store must hold.
struct Plan {
    head: Head,
    /// Recordings started and not deleted, with their chunks (seq to the
    /// hex SHA-256 of the stored file).
    recordings: BTreeMap<Uuid, BTreeMap<u64, String>>,
}

fn plan(store: &EventLog<DomainEvent>, head: Head) -> Result<Plan, BackupError> {
    let mut recordings: BTreeMap<Uuid, BTreeMap<u64, String>> = BTreeMap::new();
    let mut deleted = BTreeSet::new();
    let mut next = 1;
    while next <= head.position {
        let want = srs_replay::READ_BATCH.min((head.position - next + 1) as usize);
        let batch = store.read_raw(next, want)?;
        let Some(last) = batch.last().map(|r| r.position) else {
            return Err(BackupError::Source(format!(
                "the log ends before its head {}",
                head.position
            )));
        };
        next = last + 1;
        for raw in batch {
            if !matches!(
                raw.event_type.as_str(),
                "RecordingStarted" | "RecordingDeleted" | "ContentChunkStored"
            ) {
                continue;
            }
            let event: DomainEvent = decode_payload(raw.position, &raw.payload)
                .map_err(srs_domain::log::LogError::from)?;
            match event {
                DomainEvent::RecordingStarted { recording_id, .. } => {
                    recordings.entry(recording_id).or_default();
                }
                DomainEvent::RecordingDeleted { recording_id, .. } => {
                    deleted.insert(recording_id);
                }
                DomainEvent::ContentChunkStored {
                    recording_id,
                    seq,
                    sha256,
                    ..
                } => {
                    recordings
                        .entry(recording_id)
                        .or_default()
                        .insert(seq, sha256);
                }
                _ => {}
            }
        }
    }
    recordings.retain(|id, _| !deleted.contains(id));
    Ok(Plan { head, recordings })
}

/// The recording's key as the content store holds it (a key file, or the
/// cluster's KV entry unwrapped); `None` when it has none.
fn read_key(
    content: &ContentStore,
    recording_id: Uuid,
) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, BackupError> {
    content
        .keys()
        .stored_key(recording_id)
        .map_err(|e| BackupError::Source(format!("reading the key of {recording_id}: {e}")))
}

/// Splits the export's bytes into one `L` record per line.
struct LineRecords<'a, W: Write> {
    writer: &'a mut RecordWriter<W>,
    pending: Vec<u8>,
    lines: u64,
}

impl<W: Write> Write for LineRecords<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.writer
                .record(TAG_LOG, &line)
                .map_err(std::io::Error::other)?;
            self.lines += 1;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes the backup of `store` and `content` as of the log's durable head
/// to `out`. `runtime`: a running server's runtime, to take each
/// recording's content lock while its files are read (offline, `None`).
pub fn write_backup<W: Write>(
    store: &EventLog<DomainEvent>,
    content: &ContentStore,
    runtime: Option<&tokio::runtime::Handle>,
    wrapping: &Wrapping,
    key: &WrappingKey,
    out: W,
) -> Result<(W, BackupSummary), BackupError> {
    let lock = |id: Uuid| runtime.map(|rt| rt.block_on(content.lock(id)));
    // The keys first: a recording deleted after the chosen position has
    // lost its key; start over from the new head then.
    let (plan, keys) = 'attempts: {
        let mut lost = Vec::new();
        for _ in 0..ATTEMPTS {
            let plan = plan(store, EventStore::head(store))?;
            let mut keys = Vec::new();
            lost.clear();
            for (&id, chunks) in &plan.recordings {
                let _guard = lock(id);
                match read_key(content, id)? {
                    Some(k) => keys.push((id, k)),
                    None if !chunks.is_empty() => lost.push(id),
                    None => {}
                }
            }
            if lost.is_empty() {
                break 'attempts (plan, keys);
            }
        }
        return Err(BackupError::Source(format!(
            "the content key of recording {} is missing, though the log records its content and no deletion",
            lost[0]
        )));
    };

    let mut writer = RecordWriter::new(out)?;
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        created_at: Timestamp::now().to_rfc3339(),
        position: plan.head.position,
        head_hash: plan.head.hash.to_hex(),
        wrapping: wrapping.clone(),
        key_check: key.key_check(),
    };
    writer.record(TAG_HEADER, &serde_json::to_vec(&header)?)?;
    let mut lines = LineRecords {
        writer: &mut writer,
        pending: Vec::new(),
        lines: 0,
    };
    let exported = srs_replay::export_up_to(store, plan.head, &mut lines)?;
    if !lines.pending.is_empty() {
        return Err(BackupError::Source(
            "the export ended without a newline".into(),
        ));
    }
    let log_lines = lines.lines;
    let key_count = keys.len() as u64;
    for (id, recording_key) in &keys {
        writer.record(TAG_KEY, &key.wrap(*id, recording_key))?;
    }
    drop(keys);
    let (mut chunks, mut chunk_bytes) = (0u64, 0u64);
    for (&recording_id, recording_chunks) in &plan.recordings {
        for (&seq, sha256) in recording_chunks {
            // Under the recording's lock while the file is read (an archive
            // move or a shred waits), not while it is written out (a slow
            // client must not hold up uploads).
            let read = {
                let _guard = lock(recording_id);
                content.stored_chunk(recording_id, seq).map_err(|e| {
                    BackupError::Source(format!(
                        "reading chunk {seq} of recording {recording_id}: {e}"
                    ))
                })?
            };
            let Some((area, file)) = read else {
                return Err(BackupError::Source(format!(
                    "chunk {seq} of recording {recording_id} is not stored (was the recording deleted during the backup? run it again)"
                )));
            };
            if hex::encode(Sha256::digest(&file)) != *sha256 {
                return Err(BackupError::Source(format!(
                    "chunk {seq} of recording {recording_id} on disk does not hash to what the log recorded (altered?)"
                )));
            }
            chunk_bytes += file.len() as u64;
            let record = ChunkRecord {
                recording_id,
                seq,
                archived: area == Area::Archive,
                sha256: sha256.clone(),
                file,
            };
            writer.record(TAG_CHUNK, &record.encode()?)?;
            chunks += 1;
        }
    }
    let (out, sha256) = writer.finish(Trailer {
        position: plan.head.position,
        log_lines,
        keys: key_count,
        chunks,
        chunk_bytes,
        sha256: String::new(),
    })?;
    Ok((
        out,
        BackupSummary {
            position: plan.head.position,
            head_hash: plan.head.hash.to_hex(),
            events: exported.count,
            keys: key_count,
            chunks,
            chunk_bytes,
            sha256,
        },
    ))
}

/// Records the backup as a fact (`BackupTaken`, stream `backups`), after
/// the file is complete. Returns the fact's position.
pub async fn record_backup(
    store: &EventLog<DomainEvent>,
    summary: &BackupSummary,
    actor: Actor,
    by: &str,
) -> Result<u64, BackupError> {
    let event = DomainEvent::BackupTaken {
        to_position: summary.position,
        head_hash: summary.head_hash.clone(),
        file_sha256: summary.sha256.clone(),
        events: summary.events,
        keys: summary.keys,
        chunks: summary.chunks,
        by: by.to_owned(),
        at: Timestamp::now(),
    };
    let appended = EventStore::append(
        store,
        BACKUPS_STREAM,
        ExpectedVersion::Any,
        vec![NewEvent::new(actor, event)],
    )
    .await
    .map_err(|e| BackupError::Source(format!("recording the backup: {e}")))?;
    Ok(appended.last_position())
}
