//! The history, one event a line: [`Filter`], [`EventLine`], [`replay`].
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
use srs_domain::log::{decode_payload, Hash, LogError, RawRecord, SledEventStore};
use srs_domain::model::DomainEvent;
use srs_domain::seal::{self, KeyRing};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use crate::error::ReplayError;
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
    /// One aligned line per event: position, time, stream, version, type, actor.
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

    /// One aligned line of [`Format::Table`].
    pub fn table_row(&self) -> String {
        format!(
            "{:>10}  {:<27}  {:<46}  {:>6}  {:<28}  {}",
            self.position,
            self.recorded_at,
            self.stream,
            self.version,
            self.event_type,
            self.actor_label()
        )
    }
}

/// The header line of [`Format::Table`].
pub fn table_header() -> String {
    format!(
        "{:>10}  {:<27}  {:<46}  {:>6}  {:<28}  {}",
        "POSITION", "RECORDED_AT", "STREAM", "VERSION", "TYPE", "ACTOR"
    )
}

pub(crate) fn parse_hash(text: &str) -> Option<Hash> {
    let bytes = hex::decode(text).ok()?;
    Some(Hash(bytes.try_into().ok()?))
}

/// The recordings the log has a `RecordingDeleted` for (one pass over the
/// raw records; only those events are decoded).
pub fn deleted_recordings(
    store: &SledEventStore<DomainEvent>,
) -> Result<HashSet<Uuid>, ReplayError> {
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
    store: &SledEventStore<DomainEvent>,
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
    store: &SledEventStore<DomainEvent>,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
) -> Result<u64, ReplayError> {
    replay_lines(store, filter, format, out, |raw| {
        EventLine::from_raw(raw, false)
    })
}

fn replay_lines(
    store: &SledEventStore<DomainEvent>,
    filter: &Filter,
    format: Format,
    out: &mut impl Write,
    line_of: impl Fn(RawRecord) -> Result<EventLine, ReplayError>,
) -> Result<u64, ReplayError> {
    let mut written = 0u64;
    if format == Format::Table {
        writeln!(out, "{}", table_header())?;
    }
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
            let line = line_of(raw)?;
            match format {
                Format::Jsonl => {
                    serde_json::to_writer(&mut *out, &line)?;
                    out.write_all(b"\n")?;
                }
                Format::Table => writeln!(out, "{}", line.table_row())?,
            }
            written += 1;
        }
    }
    out.flush()?;
    Ok(written)
}
