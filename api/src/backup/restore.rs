//! [`restore`]: checks a backup file completely, then writes it into a new
//! data directory (see the module docs of `backup`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use srs_domain::log::decode_payload;
use srs_domain::model::DomainEvent;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::format::{
    BackupError, ChunkRecord, Header, RecordReader, Trailer, Wrapping, WrappingKey, FORMAT_NAME,
    FORMAT_VERSION, TAG_CHUNK, TAG_HEADER, TAG_KEY, TAG_LOG, TAG_TRAILER,
};
use super::write::BackupSummary;
use crate::content::{Area, ContentStore};

/// What opens a backup's keys.
pub enum Secret {
    /// A passphrase (the header's Argon2id parameters derive the key).
    Passphrase(Zeroizing<Vec<u8>>),
    /// The wrapping key itself (a key file).
    Key(WrappingKey),
    /// The wrapping key already derived from the header's parameters
    /// (`srs backup --url` checking what it received).
    Derived(WrappingKey),
}

/// What a restore wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreSummary {
    pub position: u64,
    pub head_hash: String,
    pub events: u64,
    pub keys: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    /// The trailer's checksum (hex).
    pub sha256: String,
}

/// Checks a backup file completely, as [`restore`] does before writing,
/// and writes nothing (`srs backup --url` checks what it received).
pub fn check_only(file: &Path, secret: Secret) -> Result<BackupSummary, BackupError> {
    let checked = check(file, secret)?;
    let s = checked.summary;
    Ok(BackupSummary {
        position: s.position,
        head_hash: s.head_hash,
        events: s.events,
        keys: s.keys,
        chunks: s.chunks,
        chunk_bytes: s.chunk_bytes,
        sha256: s.sha256,
    })
}

/// What the first pass learnt: the checked file, ready to write.
struct Checked {
    key: WrappingKey,
    /// The log, as an export file (private temporary file).
    export: tempfile::NamedTempFile,
    summary: RestoreSummary,
    /// (recording, seq) to the hex SHA-256 the log holds.
    chunks: BTreeMap<(Uuid, u64), String>,
    /// The recordings archived as of the backup's position.
    archived: BTreeSet<Uuid>,
}

/// Whether `target` is absent or an empty directory.
fn check_target(target: &Path) -> Result<(), BackupError> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(BackupError::NotEmpty(format!(
                    "{} is not empty; restore only into a new or empty directory",
                    target.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Err(BackupError::NotEmpty(
            format!("{} is a file, not a directory", target.display()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// Checks `file` completely (see the module docs), then writes it into
/// `target`, which must not exist or be empty. Nothing is written unless
/// every check passes.
pub fn restore(file: &Path, target: &Path, secret: Secret) -> Result<RestoreSummary, BackupError> {
    check_target(target)?;
    let checked = check(file, secret)?;
    check_target(target)?;
    let existed = target.exists();
    let written = write(file, target, &checked);
    if written.is_err() {
        // The target was empty: leave it so again.
        if existed {
            if let Ok(entries) = std::fs::read_dir(target) {
                for entry in entries.flatten() {
                    let path = entry.path();
                    let _ = if path.is_dir() {
                        std::fs::remove_dir_all(&path)
                    } else {
                        std::fs::remove_file(&path)
                    };
                }
            }
        } else {
            let _ = std::fs::remove_dir_all(target);
        }
    }
    written.map(|()| checked.summary)
}

fn bad(what: impl Into<String>) -> BackupError {
    BackupError::BadFile(what.into())
}

/// The first pass: reads and checks everything, writes nothing but a
/// private temporary copy of the log section.
fn check(file: &Path, secret: Secret) -> Result<Checked, BackupError> {
    let mut reader = RecordReader::new(BufReader::with_capacity(1 << 20, File::open(file)?))?;
    let Some((TAG_HEADER, body)) = reader.next()? else {
        return Err(bad("the file does not start with a header"));
    };
    let header: Header = serde_json::from_slice(&body).map_err(|e| bad(format!("header: {e}")))?;
    if header.format != FORMAT_NAME {
        return Err(bad(format!(
            "not an srs backup (format `{}`)",
            header.format
        )));
    }
    if header.version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} is not supported (this srs reads version {FORMAT_VERSION})",
            header.version
        )));
    }
    let key = match (&header.wrapping, secret) {
        (Wrapping::Argon2id { .. }, Secret::Passphrase(passphrase)) => {
            header.wrapping.derive(&passphrase)?
        }
        (Wrapping::KeyFile, Secret::Key(key)) | (_, Secret::Derived(key)) => key,
        (Wrapping::Argon2id { .. }, Secret::Key(_)) => {
            return Err(BackupError::Invalid(
                "this backup was made with a passphrase: pass --passphrase-file or SRS_BACKUP_PASSPHRASE".into(),
            ))
        }
        (Wrapping::KeyFile, Secret::Passphrase(_)) => {
            return Err(BackupError::Invalid(
                "this backup was made with a key file: pass --key-file".into(),
            ))
        }
    };
    if !key.checks(&header.key_check) {
        return Err(BackupError::WrongKey);
    }

    // The log section, copied aside and checked as an import checks it.
    let mut export = tempfile::Builder::new()
        .prefix("srs-restore-log-")
        .tempfile()?;
    let mut log_lines = 0u64;
    let mut next = {
        let mut out = BufWriter::with_capacity(1 << 20, export.as_file_mut());
        loop {
            match reader.next()? {
                Some((TAG_LOG, line)) => {
                    out.write_all(&line)?;
                    log_lines += 1;
                }
                other => {
                    out.flush()?;
                    break other;
                }
            }
        }
    };
    if log_lines == 0 {
        return Err(bad("the file holds no log"));
    }
    let mut started = BTreeSet::new();
    let mut deleted = BTreeSet::new();
    let mut chunks: BTreeMap<(Uuid, u64), String> = BTreeMap::new();
    let mut archived = BTreeSet::new();
    let log = srs_replay::check_export(export.path(), |line| {
        if !matches!(
            line.event_type.as_str(),
            "RecordingStarted"
                | "RecordingDeleted"
                | "ContentChunkStored"
                | "RecordingArchived"
                | "RecordingRestored"
        ) {
            return Ok(());
        }
        let raw = line.to_raw()?;
        let event: DomainEvent =
            decode_payload(raw.position, &raw.payload).map_err(srs_domain::log::LogError::from)?;
        match event {
            DomainEvent::RecordingStarted { recording_id, .. } => {
                started.insert(recording_id);
            }
            DomainEvent::RecordingDeleted { recording_id, .. } => {
                deleted.insert(recording_id);
            }
            DomainEvent::RecordingArchived { recording_id, .. } => {
                archived.insert(recording_id);
            }
            DomainEvent::RecordingRestored { recording_id, .. } => {
                archived.remove(&recording_id);
            }
            DomainEvent::ContentChunkStored {
                recording_id,
                seq,
                sha256,
                ..
            } => {
                started.insert(recording_id);
                chunks.insert((recording_id, seq), sha256);
            }
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| match e {
        srs_replay::ReplayError::BadFile(why) => bad(format!("its log: {why}")),
        other => other.into(),
    })?;
    if log.head.position != header.position || log.head.hash.to_hex() != header.head_hash {
        return Err(bad(format!(
            "the header says position {}, its log ends at {}",
            header.position, log.head.position
        )));
    }
    chunks.retain(|(id, _), _| !deleted.contains(id));

    let mut keys = BTreeSet::new();
    while let Some((TAG_KEY, body)) = &next {
        let (id, _key) = key.unwrap(body).map_err(|e| match e {
            BackupError::WrongKey => bad("a key record does not open (altered?)"),
            other => other,
        })?;
        if !started.contains(&id) || deleted.contains(&id) {
            return Err(bad(format!(
                "a key for recording {id}, which its log does not hold (or deleted)"
            )));
        }
        if !keys.insert(id) {
            return Err(bad(format!("two keys for recording {id}")));
        }
        next = reader.next()?;
    }
    let mut seen = BTreeSet::new();
    let mut chunk_bytes = 0u64;
    while let Some((TAG_CHUNK, body)) = next {
        let chunk = ChunkRecord::decode(body)?;
        let (id, seq) = (chunk.recording_id, chunk.seq);
        let Some(logged) = chunks.get(&(id, seq)) else {
            return Err(bad(format!(
                "chunk {seq} of recording {id}, which its log does not record"
            )));
        };
        let actual = hex::encode(Sha256::digest(&chunk.file));
        if actual != *logged || chunk.sha256 != *logged {
            return Err(bad(format!(
                "chunk {seq} of recording {id} does not hash to the SHA-256 its log recorded (altered)"
            )));
        }
        if !seen.insert((id, seq)) {
            return Err(bad(format!("chunk {seq} of recording {id} twice")));
        }
        if !keys.contains(&id) {
            return Err(bad(format!(
                "chunk {seq} of recording {id} without its key"
            )));
        }
        chunk_bytes += chunk.file.len() as u64;
        next = reader.next()?;
    }
    let Some((TAG_TRAILER, body)) = next else {
        return Err(match next {
            None => bad("the file ends without a trailer (truncated?)"),
            Some((tag, _)) => bad(format!("a record `{}` out of place", tag as char)),
        });
    };
    let digest = reader.digest();
    let trailer: Trailer =
        serde_json::from_slice(&body).map_err(|e| bad(format!("trailer: {e}")))?;
    if reader.next()?.is_some() {
        return Err(bad("there are records after the trailer"));
    }
    if trailer.sha256 != digest {
        return Err(bad("the checksum does not match the file's content"));
    }
    if let Some(((id, seq), _)) = chunks.iter().find(|(c, _)| !seen.contains(c)) {
        return Err(bad(format!(
            "chunk {seq} of recording {id} is recorded in its log but not in the file"
        )));
    }
    let counts = (
        trailer.position,
        trailer.log_lines,
        trailer.keys,
        trailer.chunks,
        trailer.chunk_bytes,
    );
    let found = (
        header.position,
        log_lines,
        keys.len() as u64,
        seen.len() as u64,
        chunk_bytes,
    );
    if counts != found {
        return Err(bad(format!(
            "the trailer states (position, log lines, keys, chunks, bytes) {counts:?}, the file holds {found:?}"
        )));
    }
    Ok(Checked {
        key,
        export,
        summary: RestoreSummary {
            position: header.position,
            head_hash: header.head_hash,
            events: log.count,
            keys: keys.len() as u64,
            chunks: seen.len() as u64,
            chunk_bytes,
            sha256: digest,
        },
        chunks,
        archived,
    })
}

/// The second pass: the log, then the keys and chunks, each checked again.
fn write(file: &Path, target: &Path, checked: &Checked) -> Result<(), BackupError> {
    let imported = srs_replay::import(checked.export.path(), target)?;
    if imported.head.position != checked.summary.position {
        return Err(bad("the file changed during the restore"));
    }
    let content = ContentStore::open(target)
        .map_err(|e| BackupError::Source(format!("opening the content store: {e}")))?;
    let files = content
        .files()
        .ok_or_else(|| BackupError::Source("the content store keeps no files".into()))?;
    let keys_dir = content.root().join("keys");
    let mut reader = RecordReader::new(BufReader::with_capacity(1 << 20, File::open(file)?))?;
    let mut dirs = BTreeSet::new();
    let (mut keys, mut chunks) = (0u64, 0u64);
    while let Some((tag, body)) = reader.next()? {
        match tag {
            TAG_KEY => {
                let (id, key) = checked.key.unwrap(&body)?;
                write_synced(&keys_dir.join(format!("{id}.key")), key.as_ref())?;
                keys += 1;
            }
            TAG_CHUNK => {
                let chunk = ChunkRecord::decode(body)?;
                let logged = checked.chunks.get(&(chunk.recording_id, chunk.seq));
                if logged != Some(&hex::encode(Sha256::digest(&chunk.file))) {
                    return Err(bad("the file changed during the restore"));
                }
                // Where the log up to the backup's position has it (the
                // record's area is where it was read, which an archive
                // run during an online backup may have changed).
                let area = if checked.archived.contains(&chunk.recording_id) {
                    Area::Archive
                } else {
                    Area::Live
                };
                let path = files.chunk_path(area, chunk.recording_id, chunk.seq);
                if let Some(dir) = path.parent() {
                    if dirs.insert(dir.to_path_buf()) {
                        srs_domain::log::create_private_dir(dir)?;
                    }
                }
                write_synced(&path, &chunk.file)?;
                chunks += 1;
            }
            _ => {}
        }
    }
    if (keys, chunks) != (checked.summary.keys, checked.summary.chunks) {
        return Err(bad("the file changed during the restore"));
    }
    dirs.insert(keys_dir);
    dirs.insert(content.root().join("live"));
    dirs.insert(content.root().join("archive"));
    for dir in dirs {
        File::open(&dir)?.sync_all()?;
    }
    Ok(())
}

/// Writes a new file (mode 0600) and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}
