//! The portable log file of `srs export` / `srs import`.
//!
//! # Format (version 1)
//!
//! UTF-8 JSON lines:
//!
//! 1. A header:
//!    `{"format":"srs-log-export","version":1,"exported_at":"<RFC 3339>","head":{"position":N,"hash":"<hex>"}}`
//! 2. One line per event, positions 1 to N in order, each an
//!    [`EventLine`](crate::EventLine): `position`, `stream`, `version`,
//!    `event_id`, `recorded_at` (RFC 3339, microseconds), `actor`,
//!    `correlation_id`, `causation_id`, `type`, `payload` (JSON, for people
//!    and tools), `payload_bincode` (the payload exactly as stored, hex),
//!    `prev_hash`, `hash` (the log's SHA-256 chain, hex).
//! 3. A trailer:
//!    `{"trailer":{"count":N,"head":{"position":N,"hash":"<hex>"},"sha256":"<hex>"}}`
//!    where `sha256` is the SHA-256 of every byte before the trailer line
//!    (header and event lines, newlines included).
//!
//! A reader that does not know `version` must refuse the file. The chain
//! hashes are the log's own: `hash = SHA-256(prev_hash || position (u64 BE)
//! || body)`, `body` being the record's stored encoding, which the payload's
//! stored bytes and the other fields determine.
//!
//! # Import
//!
//! [`import`] reads the file twice. The first pass writes nothing: it checks
//! the header, that positions run 1..N without gaps, that stream versions
//! are gapless, that each JSON payload says what its stored bytes say, that
//! each record re-hashes to its `hash` after its predecessor's, and that the
//! trailer's count, head and checksum match. Only then does the second pass
//! write, into a log that must be empty, through the log's own encoder
//! ([`LogImporter`]): the imported log has the source's positions, times and
//! hashes, and `srs verify` passes on it. Read models are not imported;
//! `srs serve` builds them from the log on its first start. [`import`]
//! writes into a data directory; [`import_with`] is the same import into
//! any [`LogBackend`] (a JetStream stream, `srs import --log-url`).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use srs_domain::actor::Actor;
use srs_domain::log::{
    decode_record, rehash, EventLog, Hash, Head, LogBackend, LogError, LogImporter,
};
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent};
use srs_domain::model::{DomainEvent, LOG_EXPORTS_STREAM};
use srs_domain::time::Timestamp;

use crate::data::DataDir;
use crate::error::ReplayError;
use crate::history::{parse_hash, EventLine};
use crate::READ_BATCH;

/// The `format` of the header line.
pub const FORMAT_NAME: &str = "srs-log-export";
/// The `version` of the header line this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    exported_at: String,
    head: HeadLine,
}

#[derive(Serialize, Deserialize, Clone, PartialEq, Eq)]
struct HeadLine {
    position: u64,
    hash: String,
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    trailer: TrailerBody,
}

#[derive(Serialize, Deserialize)]
struct TrailerBody {
    count: u64,
    head: HeadLine,
    sha256: String,
}

/// What an export wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportSummary {
    pub count: u64,
    pub head: Head,
    /// The trailer's checksum (hex).
    pub sha256: String,
}

/// Records the export as a fact of its own (`LogExported`, stream
/// `log-exports`): who took a copy of the history up to which position and
/// which file it was. Appended after the file is complete, so the export
/// covers the history before it. Returns the fact's position.
pub async fn record_export(
    store: &EventLog<DomainEvent>,
    summary: &ExportSummary,
    by: &str,
) -> Result<u64, ReplayError> {
    let event = DomainEvent::LogExported {
        to_position: summary.head.position,
        head_hash: summary.head.hash.to_string(),
        file_sha256: summary.sha256.clone(),
        events: summary.count,
        by: by.to_owned(),
        at: Timestamp::now(),
    };
    let appended = EventStore::append(
        store,
        LOG_EXPORTS_STREAM,
        ExpectedVersion::Any,
        vec![NewEvent::new(Actor::system("export"), event)],
    )
    .await
    .map_err(|e| ReplayError::Invalid(format!("recording the export: {e}")))?;
    Ok(appended.last_position())
}

/// What an import wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportSummary {
    pub count: u64,
    pub head: Head,
}

/// Writes the whole log (up to the durable head when called) to `out` in
/// the format above, reading it in batches.
pub fn export(
    store: &EventLog<DomainEvent>,
    out: &mut impl Write,
) -> Result<ExportSummary, ReplayError> {
    let head = srs_domain::log::EventStore::head(store);
    export_up_to(store, head, out)
}

/// Writes the log from position 1 up to `head` (a durable position and its
/// hash, e.g. the head as `srs backup` saw it) to `out` in the format
/// above: a copy of the log as of that position, whatever was appended
/// since.
pub fn export_up_to(
    store: &EventLog<DomainEvent>,
    head: Head,
    out: &mut impl Write,
) -> Result<ExportSummary, ReplayError> {
    let mut hasher = Sha256::new();
    let mut emit = |out: &mut dyn Write, bytes: &[u8]| -> std::io::Result<()> {
        hasher.update(bytes);
        out.write_all(bytes)
    };
    let header = Header {
        format: FORMAT_NAME.into(),
        version: FORMAT_VERSION,
        exported_at: Timestamp::now().to_rfc3339(),
        head: head_line(head),
    };
    emit(out, &line_bytes(&header)?)?;
    let mut next = 1;
    let mut count = 0;
    while next <= head.position {
        let want = READ_BATCH.min((head.position - next + 1) as usize);
        let batch = store.read_raw(next, want)?;
        let Some(last) = batch.last().map(|r| r.position) else {
            return Err(ReplayError::NotFound(format!(
                "the log ends before its head {}",
                head.position
            )));
        };
        next = last + 1;
        for raw in batch {
            emit(out, &line_bytes(&EventLine::from_raw(raw, true)?)?)?;
            count += 1;
        }
    }
    let sha256 = hex::encode(hasher.finalize());
    let trailer = Trailer {
        trailer: TrailerBody {
            count,
            head: head_line(head),
            sha256: sha256.clone(),
        },
    };
    out.write_all(&line_bytes(&trailer)?)?;
    out.flush()?;
    Ok(ExportSummary {
        count,
        head,
        sha256,
    })
}

fn head_line(head: Head) -> HeadLine {
    HeadLine {
        position: head.position,
        hash: head.hash.to_hex(),
    }
}

fn line_bytes(value: &impl Serialize) -> Result<Vec<u8>, ReplayError> {
    let mut bytes = serde_json::to_vec(value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Checks the export file at `file` completely, then writes it into the
/// data directory `target` (new, or holding the start of the same log:
/// see [`import_with`]). Nothing is written unless the whole file checks
/// out.
pub fn import(file: &Path, target: &Path) -> Result<ImportSummary, ReplayError> {
    import_with(file, &target.display().to_string(), || {
        let data = DataDir::open_or_create(target)?;
        Ok(data.store.backend())
    })
}

/// Checks the export file at `file` completely, then opens the target log
/// with `open` and writes the file into it, through the log's own encoder
/// ([`LogImporter`]); the one import of every backend (a data directory's
/// sled log, a JetStream stream), named `what` in its errors. `open` is
/// called only once the whole file checks out, so a bad file creates
/// nothing.
///
/// The target may hold the start of the file's log: an import that was
/// interrupted, or the import of an earlier, shorter export of the same
/// log (a migration that imports a copy first and the rest at the
/// switch-over). Its records are compared with the file's, position by
/// position and hash by hash, before anything is written, and the import
/// goes on after them. A target holding anything else (another log, a
/// record that differs, more than the file) is refused with
/// [`ReplayError::NotEmpty`], as is one that holds the whole file already
/// (nothing to import); nothing is written then.
pub fn import_with(
    file: &Path,
    what: &str,
    open: impl FnOnce() -> Result<Arc<dyn LogBackend>, ReplayError>,
) -> Result<ImportSummary, ReplayError> {
    let checked = check_file(file, |_| Ok(()))?;
    let backend = open()?;
    let mut held = Held::new(backend.clone());
    let mut importer = LogImporter::onto(backend.clone());
    let mut writing = false;
    let another = |position: u64| {
        ReplayError::NotEmpty(format!(
            "{what} already holds a log whose position {position} is not the file's: import only into an empty log or onto the start of the same log"
        ))
    };
    let written = check_file(file, |line| {
        let raw = line.to_raw()?;
        if !writing {
            match held.next()? {
                Some((position, hash)) if position == raw.position && hash == raw.hash => {
                    return importer.stored(&raw).map_err(Into::into);
                }
                Some((position, _)) => return Err(another(position.min(raw.position))),
                None => writing = true,
            }
        }
        importer.push(&raw).map_err(Into::into)
    })?;
    if !writing {
        if let Some((position, _)) = held.next()? {
            return Err(ReplayError::NotEmpty(format!(
                "{what} already holds a log longer than the file (position {position} is past its head {}): import only into an empty log or onto the start of the same log",
                checked.head.position
            )));
        }
        if backend.head()? == checked.head {
            return Err(ReplayError::NotEmpty(format!(
                "{what} already holds a log: this file's, to its head position {}; nothing to import",
                checked.head.position
            )));
        }
    }
    if written != checked {
        return Err(ReplayError::BadFile(
            "the file changed during the import".into(),
        ));
    }
    let head = importer.finish()?;
    if head != checked.head {
        return Err(ReplayError::BadFile(
            "the file changed during the import".into(),
        ));
    }
    Ok(ImportSummary {
        count: checked.count,
        head,
    })
}

/// The records a log holds, from position 1, read in batches: each one's
/// position and hash.
struct Held {
    backend: Arc<dyn LogBackend>,
    next: u64,
    batch: std::collections::VecDeque<(u64, Hash)>,
    done: bool,
}

impl Held {
    fn new(backend: Arc<dyn LogBackend>) -> Held {
        Held {
            backend,
            next: 1,
            batch: Default::default(),
            done: false,
        }
    }

    fn next(&mut self) -> Result<Option<(u64, Hash)>, ReplayError> {
        if self.batch.is_empty() && !self.done {
            let (from, to) = (self.next, self.next + READ_BATCH as u64 - 1);
            let batch = &mut self.batch;
            self.backend.scan(from, to, &mut |position, bytes| {
                let record = decode_record(position, bytes).map_err(LogError::from)?;
                batch.push_back((position, record.hash));
                Ok(true)
            })?;
            self.done = self.batch.len() < READ_BATCH;
            self.next = to + 1;
        }
        Ok(self.batch.pop_front())
    }
}

/// Checks an export file completely without writing anything (what
/// [`import`] checks before it writes), handing each checked event line
/// to `each` (which may refuse it); returns the trailer's count and head.
pub fn check_export(
    file: &Path,
    each: impl FnMut(&EventLine) -> Result<(), ReplayError>,
) -> Result<ImportSummary, ReplayError> {
    check_file(file, each)
}

/// Reads and checks the whole file, handing each checked event line to
/// `each`; returns the trailer's count and head.
fn check_file(
    file: &Path,
    mut each: impl FnMut(&EventLine) -> Result<(), ReplayError>,
) -> Result<ImportSummary, ReplayError> {
    let bad = |what: String| ReplayError::BadFile(what);
    let mut reader = BufReader::new(File::open(file)?);
    let mut hasher = Sha256::new();
    let mut text = String::new();
    let mut read_line = |text: &mut String| -> Result<bool, ReplayError> {
        text.clear();
        Ok(reader.read_line(text)? > 0)
    };

    if !read_line(&mut text)? {
        return Err(bad("the file is empty".into()));
    }
    let header: Header = serde_json::from_str(&text).map_err(|e| bad(format!("header: {e}")))?;
    if header.format != FORMAT_NAME {
        return Err(bad(format!(
            "not an srs export (format `{}`)",
            header.format
        )));
    }
    if header.version != FORMAT_VERSION {
        return Err(bad(format!(
            "format version {} is not supported (this srs reads version {FORMAT_VERSION})",
            header.version
        )));
    }
    hasher.update(text.as_bytes());

    let mut prev = Head::default();
    let mut versions: HashMap<String, u64> = HashMap::new();
    let trailer = loop {
        if !read_line(&mut text)? {
            return Err(bad(format!(
                "the file ends after position {} without a trailer (truncated?)",
                prev.position
            )));
        }
        if text.starts_with("{\"trailer\"") {
            let trailer: Trailer =
                serde_json::from_str(&text).map_err(|e| bad(format!("trailer: {e}")))?;
            break trailer.trailer;
        }
        hasher.update(text.as_bytes());
        let line: EventLine = serde_json::from_str(&text)
            .map_err(|e| bad(format!("the line after position {}: {e}", prev.position)))?;
        let raw = line.to_raw()?;
        let position = prev.position + 1;
        if raw.position != position {
            return Err(bad(format!(
                "position {position} is missing (the next line is position {})",
                raw.position
            )));
        }
        let last = versions.get(&raw.stream).copied().unwrap_or(0);
        if raw.version != last + 1 {
            return Err(bad(format!(
                "position {position}: {} version {} does not follow version {last}",
                raw.stream, raw.version
            )));
        }
        if raw.prev_hash != prev.hash {
            return Err(bad(format!(
                "position {position}: its prev_hash is not the hash of position {}",
                prev.position
            )));
        }
        if rehash(&raw, prev.hash)? != raw.hash {
            return Err(bad(format!(
                "position {position}: the event does not hash to its hash (it was altered)"
            )));
        }
        versions.insert(raw.stream.clone(), raw.version);
        prev = Head {
            position,
            hash: raw.hash,
        };
        each(&line)?;
    };
    if read_line(&mut text)? {
        return Err(bad("there are lines after the trailer".into()));
    }
    let sha256 = hex::encode(hasher.finalize());
    if trailer.sha256 != sha256 {
        return Err(bad("the checksum does not match the file's content".into()));
    }
    let stated = Head {
        position: trailer.head.position,
        hash: parse_hash(&trailer.head.hash).unwrap_or(Hash::GENESIS),
    };
    if trailer.count != prev.position || stated != prev || header.head != trailer.head {
        return Err(bad(format!(
            "the trailer states {} events up to position {}, the file holds {}",
            trailer.count, trailer.head.position, prev.position
        )));
    }
    Ok(ImportSummary {
        count: trailer.count,
        head: prev,
    })
}
