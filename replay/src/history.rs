//! The history, one event a line: [`Filter`], [`EventLine`], [`ShownEvent`], [`replay`].
//!
//! [`replay`] reads the log in batches of [`READ_BATCH`](crate::READ_BATCH)
//! raw records, checks the envelope filters (positions, time, stream, type,
//! actor) before decoding a payload, and writes each kept event before it
//! reads the next batch: its memory does not grow with the log.
//!
//! # Sealed data
//!
//! What a session recorded is sealed under its recording's key
//! (`srs_domain::seal`). [`replay_shown`] shows it opened with the data
//! directory's keys, and `"[shredded]"` in its place once the recording is
//! deleted (its key destroyed; a legacy plain event of a deleted recording
//! is hidden the same way). [`EventLine::from_raw`] keeps the stored form
//! (ciphertext): export files carry that and never a plain copy.
//!
//! Times: `since` is inclusive, `until` exclusive (the same as the GraphQL
//! `history` filter's `from` / `to`), compared with `recorded_at`.

use std::collections::HashSet;
use std::io::Write;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use srs_domain::actor::Actor;
use srs_domain::log::{decode_payload, EventLog, Hash, LogError, RawRecord};
use srs_domain::model::DomainEvent;
use srs_domain::seal::{self, KeyRing};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use crate::error::ReplayError;
use crate::table::{Align, Table};
use crate::READ_BATCH;

/// Which events to show. The default shows everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// First position (inclusive; 0 and 1 both mean the start).
    pub from: u64,
    /// Last position (inclusive).
    pub to: Option<u64>,
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
    /// One stream, e.g. `recording-<uuid>`.
    pub stream: Option<String>,
    /// Event type names (any of them); empty: every type.
    pub types: Vec<String>,
    /// An actor label: `principal:<name>`, `agent:<server id>`, `system:<component>`.
    pub actor: Option<String>,
}

impl Filter {
    /// Whether a record's envelope passes (the payload is not looked at).
    pub fn admits(&self, raw: &RawRecord) -> bool {
        raw.position >= self.from
            && self.to.is_none_or(|to| raw.position <= to)
            && self.since.is_none_or(|t| raw.recorded_at >= t)
            && self.until.is_none_or(|t| raw.recorded_at < t)
            && self.stream.as_deref().is_none_or(|s| s == raw.stream)
            && (self.types.is_empty() || self.types.contains(&raw.event_type))
            && self.actor.as_deref().is_none_or(|a| a == raw.actor.label())
    }
}

/// How [`replay`] writes events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One [`EventLine`] as JSON per line.
    Jsonl,
    /// An aligned table: position, time, stream, version, type, actor
    /// (see [`crate::table`]).
    Table,
}

/// One stored event with every envelope field, the payload as JSON, and
/// (in export files) the payload's stored bytes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventLine {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    /// RFC 3339, microseconds, UTC.
    pub recorded_at: String,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: Value,
    /// The payload exactly as stored (bincode, hex): export files carry it
    /// so an import rebuilds byte-identical records and hashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload_bincode: Option<String>,
    pub prev_hash: String,
    pub hash: String,
}

impl EventLine {
    /// The line of a stored record; `with_bytes` adds `payload_bincode`.
    pub fn from_raw(raw: RawRecord, with_bytes: bool) -> Result<Self, ReplayError> {
        let payload: DomainEvent =
            decode_payload(raw.position, &raw.payload).map_err(LogError::from)?;
        Ok(EventLine {
            position: raw.position,
            stream: raw.stream,
            version: raw.version,
            event_id: raw.event_id,
            recorded_at: raw.recorded_at.to_rfc3339(),
            actor: raw.actor,
            correlation_id: raw.correlation_id,
            causation_id: raw.causation_id,
            event_type: raw.event_type,
            payload: serde_json::to_value(&payload)?,
            payload_bincode: with_bytes.then(|| hex::encode(&raw.payload)),
            prev_hash: raw.prev_hash.to_hex(),
            hash: raw.hash.to_hex(),
        })
    }

    /// The line of a stored record as readers see it: what is sealed
    /// opened under `keys`, or shown as shredded when its recording is in
    /// `deleted` or its key is gone.
    pub fn shown(
        raw: RawRecord,
        keys: &KeyRing,
        deleted: &HashSet<Uuid>,
    ) -> Result<Self, ReplayError> {
        let payload: DomainEvent =
            decode_payload(raw.position, &raw.payload).map_err(LogError::from)?;
        let gone = payload
            .recording_id()
            .is_some_and(|id| deleted.contains(&id));
        let shown = seal::shown_payload(keys, &payload, gone);
        let mut line = EventLine::from_raw(raw, false)?;
        line.payload = shown;
        Ok(line)
    }

    /// The stored record this line describes. Needs `payload_bincode`, and
    /// checks that the JSON payload says the same as the stored bytes (so
    /// an edit of the readable part is caught, not silently ignored).
    pub fn to_raw(&self) -> Result<RawRecord, ReplayError> {
        let at = self.position;
        let bad = |what: &str| ReplayError::BadFile(format!("position {at}: {what}"));
        let bytes = self
            .payload_bincode
            .as_deref()
            .ok_or_else(|| bad("no payload_bincode"))
            .and_then(|h| hex::decode(h).map_err(|_| bad("payload_bincode is not hex")))?;
        let payload: DomainEvent =
            decode_payload(at, &bytes).map_err(|e| bad(&format!("payload: {e}")))?;
        if serde_json::to_value(&payload)? != self.payload {
            return Err(bad("the JSON payload differs from the stored payload"));
        }
        if payload.name() != self.event_type {
            return Err(bad("the type differs from the payload's"));
        }
        Ok(RawRecord {
            position: at,
            stream: self.stream.clone(),
            version: self.version,
            event_id: self.event_id,
            recorded_at: Timestamp::parse_rfc3339(&self.recorded_at)
                .map_err(|_| bad("recorded_at is not RFC 3339"))?,
            actor: self.actor.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            event_type: self.event_type.clone(),
            payload: bytes,
            prev_hash: parse_hash(&self.prev_hash).ok_or_else(|| bad("bad prev_hash"))?,
            hash: parse_hash(&self.hash).ok_or_else(|| bad("bad hash"))?,
        })
    }

    /// The actor as `--actor` spells it.
    pub fn actor_label(&self) -> String {
        self.actor.label()
    }

    /// The line as `srs replay` prints it ([`ShownEvent`]).
    pub fn shown_event(self) -> ShownEvent {
        ShownEvent {
            position: self.position,
            stream: self.stream,
            version: self.version,
            event_id: self.event_id.to_string(),
            recorded_at: self.recorded_at,
            actor: self.actor.label(),
            correlation_id: self.correlation_id.to_string(),
            causation_id: self.causation_id.map(|id| id.to_string()),
            event_type: self.event_type,
            payload: self.payload,
            prev_hash: Some(self.prev_hash),
            hash: self.hash,
        }
    }
}

/// One event as `srs replay` prints it, the same read from a data
/// directory and through a server (`--url`, from GraphQL `history`):
/// `actor` is the label `--actor` takes and GraphQL answers
/// (`principal:<name>`, `agent:<server id>`, `system:<component>`), never
/// the stored structure (export files keep that, with the token id, since
/// an import rebuilds the stored bytes). `prev_hash` is there when read
/// from a data directory (GraphQL does not serve it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShownEvent {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: String,
    /// RFC 3339, microseconds, UTC.
    pub recorded_at: String,
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    #[serde(rename = "type")]
    pub event_type: String,
    pub payload: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev_hash: Option<String>,
    pub hash: String,
}

impl ShownEvent {
    /// The cells of its [`Format::Table`] row, under [`TABLE_COLUMNS`].
    pub fn table_cells(&self) -> Vec<String> {
        vec![
            self.position.to_string(),
            self.recorded_at.clone(),
            self.stream.clone(),
            self.version.to_string(),
            self.event_type.clone(),
            self.actor.clone(),
        ]
    }
}

/// The columns of [`Format::Table`].
pub const TABLE_COLUMNS: &[(&str, Align)] = &[
    ("POSITION", Align::Right),
    ("RECORDED_AT", Align::Left),
    ("STREAM", Align::Left),
    ("VERSION", Align::Right),
    ("TYPE", Align::Left),
    ("ACTOR", Align::Left),
];

/// Writes [`ShownEvent`]s in a [`Format`]: JSON lines as they come, or an
/// aligned [`Table`].
pub enum EventWriter<W: Write> {
    Jsonl(W),
    Table(Table<W>),
}

impl<W: Write> EventWriter<W> {
    pub fn new(out: W, format: Format) -> Self {
        match format {
            Format::Jsonl => EventWriter::Jsonl(out),
            Format::Table => EventWriter::Table(Table::new(out, TABLE_COLUMNS)),
        }
    }

    /// Writes (or, in a table, holds) one event.
    pub fn event(&mut self, event: &ShownEvent) -> Result<(), ReplayError> {
        match self {
            EventWriter::Jsonl(out) => {
                // Encoded first, so a closed output is an I/O error
                // (`srs replay | head` ends quietly on it).
                let mut line = serde_json::to_vec(event)?;
                line.push(b'\n');
                out.write_all(&line)?;
            }
            EventWriter::Table(table) => table.row(event.table_cells())?,
        }
        Ok(())
    }

    /// Writes what is held and flushes the output.
    pub fn flush(&mut self) -> Result<(), ReplayError> {
        match self {
            EventWriter::Jsonl(out) => out.flush()?,
            EventWriter::Table(table) => table.flush()?,
        }
        Ok(())
    }
}

pub(crate) fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// The recordings the log has a `RecordingDeleted` for (one pass over the
/// raw records; only those events are decoded).
pub fn deleted_recordings(store: &EventLog<DomainEvent>) -> Result<HashSet<Uuid>, ReplayError> {
    let mut deleted = HashSet::new();
    let mut next = 1;
    loop {
        let batch = store.read_raw(next, READ_BATCH)?;
        let Some(last) = batch.last().map(|r| r.position) else {
            break;
        };
        next = last + 1;
        for raw in batch {
            if raw.event_type != "RecordingDeleted" {
                continue;
            }
            let event: DomainEvent =
                decode_payload(raw.position, &raw.payload).map_err(LogError::from)?;
            if let Some(id) = event.recording_id() {
                deleted.insert(id);
            }
        }
    }
    Ok(deleted)
}

/// [`replay`] showing what is sealed: opened under `keys` (the data
/// directory's, `KeyRing::read_only`), shredded for deleted recordings.
pub fn replay_shown(
    store: &EventLog<DomainEvent>,
    keys: &KeyRing,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    let deleted = deleted_recordings(store)?;
    replay_lines(store, filter, format, out, |raw| {
        EventLine::shown(raw, keys, &deleted)
    })
}

/// Writes the events that pass `filter`, in log order, to `out`; returns
/// how many were written. Stops at the durable head as it was when called.
/// Payloads are shown as stored (sealed parts as ciphertext; see
/// [`replay_shown`]).
pub fn replay(
    store: &EventLog<DomainEvent>,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    replay_lines(store, filter, format, out, |raw| {
        EventLine::from_raw(raw, false)
    })
}

fn replay_lines(
    store: &EventLog<DomainEvent>,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
    line_of: impl Fn(RawRecord) -> Result<EventLine, ReplayError>,
) -> Result<u64, ReplayError> {
    let mut written = 0u64;
    let mut writer = EventWriter::new(out, format);
    let mut next = filter.from.max(1);
    loop {
        if filter.to.is_some_and(|to| next > to) {
            break;
        }
        let batch = store.read_raw(next, READ_BATCH)?;
        let Some(last) = batch.last().map(|r| r.position) else {
            break;
        };
        next = last + 1;
        for raw in batch {
            if !filter.admits(&raw) {
                continue;
            }
            writer.event(&line_of(raw)?.shown_event())?;
            written += 1;
        }
    }
    writer.flush()?;
    Ok(written)
}
