//! Event detection: detected events by recording, type, severity, rule,
//! user, site and time; response actions triggered and delivered; and the
//! event visualization report (counts per event type per time bucket).
//!
//! | key | value |
//! |---|---|
//! | `rec/` recording | [`SessionMeta`] (what detections need of their recording, and the counts of its first chunk) |
//! | `d/` position desc | [`DetectionRow`] |
//! | `i/` field, value, position desc | - (`r` recording, `t` type, `v` severity, `q` rule, `u` user, `s` site) |
//! | `r/` response | [`ResponseRow`] |
//! | `rr/` recording, response | - |
//! | `rp/` server, position, response | - (pending, i.e. not delivered) |
//! | `vr/` recording, chunk start (second offset) | [`Tally`]: session events and detections per second of the session and type, after the first chunk |
//! | `vs/` site or `*`, chunk start (Unix second) | [`Tally`]: likewise per minute (UTC) |
//!
//! A detection's (and a session event's) time is its recording's start plus
//! its offset in the session.
//!
//! The visualization counters are folded into one value per chunk of time
//! ([`RECORDING_CHUNK_SEC`] of a session, [`SITE_CHUNK_SEC`] of a site)
//! rather than one key per second or minute and type: a session event then
//! rewrites a value the batch already holds instead of adding a key to the
//! tree, which is what rebuilding and ingesting cost most. The first chunk
//! of a recording (most sessions' events) lives in its [`SessionMeta`],
//! which every event of the recording reads anyway.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{DomainEvent, ResponseAction, SessionEventType, Severity};
use srs_domain::seal::Sealed;
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{
    cursor_decode, cursor_encode, get, merged, norm, page_size, scope_key, severity_code,
    trailing_uuid, type_code, type_from_code, SuffixBounds, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{Overlay, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Keyspace;

/// Resolution of the per-recording visualization counters.
pub const RECORDING_RESOLUTION_SEC: u64 = 1;
/// Resolution of the per-site visualization counters.
pub const SITE_RESOLUTION_SEC: i64 = 60;
/// Session time covered by one per-recording [`Tally`].
pub const RECORDING_CHUNK_SEC: u64 = 300;
/// Time covered by one per-site [`Tally`].
pub const SITE_CHUNK_SEC: i64 = 600;

/// Visualization counters of one chunk of time: `(time, type code,
/// detection, count)`, sorted by the first three, counts above zero. The
/// time is a second of the session (per recording) or the Unix second a
/// minute starts at (per site).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally(pub Vec<(i64, u8, bool, u64)>);

impl Tally {
    fn bump(&mut self, at: i64, t: SessionEventType, detection: bool) {
        let id = (at, type_code(t), detection);
        match self
            .0
            .binary_search_by(|(a, c, d, _)| (*a, *c, *d).cmp(&id))
        {
            Ok(i) => self.0[i].3 += 1,
            Err(i) => self.0.insert(i, (id.0, id.1, id.2, 1)),
        }
    }
}

/// Adds one to the tally under `key`.
fn tally(
    w: &mut Overlay,
    key: Vec<u8>,
    at: i64,
    t: SessionEventType,
    detection: bool,
) -> Result<()> {
    let bump = |tally: &mut Tally| {
        tally.bump(at, t, detection);
        Ok(true)
    };
    if w.update_value(&key, bump)?.is_none() {
        let mut tally = Tally::default();
        bump(&mut tally)?;
        w.put_value(key, &tally)?;
    }
    Ok(())
}

/// What the model keeps of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionMeta {
    pub site_id: Uuid,
    pub started_at: Timestamp,
    /// Visualization counts of the first [`RECORDING_CHUNK_SEC`] of the
    /// session.
    pub first: Tally,
}

/// A detected event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionRow {
    pub detection_id: Uuid,
    pub recording_id: Uuid,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub user: String,
    pub host: String,
    /// The session event.
    pub event_id: Uuid,
    pub event_type: SessionEventType,
    pub severity: Severity,
    pub rule: String,
    pub policy_id: Uuid,
    /// The subject of a detection logged before subjects were sealed
    /// (`EventDetected`); read paths hide it once the recording is deleted.
    pub subject: Option<String>,
    pub at_offset_ms: u64,
    /// Session start + offset.
    pub at: Timestamp,
    pub position: u64,
    /// The subject of an `EventDetectedSealed`, still sealed under the
    /// recording's key: this read model holds no plain copy of it, so
    /// destroying the key shreds it here too (sled's old segments included).
    pub sealed_subject: Option<Sealed>,
}

/// A response action and whether the server carried it out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRow {
    pub response_id: Uuid,
    pub recording_id: Uuid,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub user: String,
    pub host: String,
    pub policy_id: Uuid,
    pub rule: String,
    pub trigger: String,
    pub action: ResponseAction,
    pub detection_id: Option<Uuid>,
    pub event_type: Option<SessionEventType>,
    pub severity: Option<Severity>,
    pub at_offset_ms: u64,
    pub triggered_at: Timestamp,
    pub delivered: Option<Delivery>,
    pub position: u64,
}

impl ResponseRow {
    /// The row of a `ResponseTriggered` fact at `position` (pending);
    /// `None` for any other event.
    pub fn triggered(position: u64, event: &DomainEvent) -> Option<ResponseRow> {
        let DomainEvent::ResponseTriggered {
            response_id,
            recording_id,
            site_id,
            server_id,
            session_id,
            user,
            host,
            policy_id,
            rule,
            trigger,
            action,
            detection_id,
            event_type,
            severity,
            at_offset_ms,
            at,
        } = event
        else {
            return None;
        };
        Some(ResponseRow {
            response_id: *response_id,
            recording_id: *recording_id,
            site_id: *site_id,
            server_id: *server_id,
            session_id: session_id.clone(),
            user: user.clone(),
            host: host.clone(),
            policy_id: *policy_id,
            rule: rule.clone(),
            trigger: trigger.clone(),
            action: action.clone(),
            detection_id: *detection_id,
            event_type: *event_type,
            severity: *severity,
            at_offset_ms: *at_offset_ms,
            triggered_at: *at,
            delivered: None,
            position,
        })
    }
}

/// The server's acknowledgement of a response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub outcome: String,
    pub at: Timestamp,
}

fn index_keys(row: &DetectionRow) -> Vec<Vec<u8>> {
    let p = row.position;
    let idx = |field: u8, value: &str| Key::new(b"i/").u8(field).str(value).u64_desc(p).build();
    vec![
        idx(b'r', &row.recording_id.to_string()),
        idx(b't', &type_code(row.event_type).to_string()),
        idx(b'v', &severity_code(row.severity).to_string()),
        idx(b'q', &norm(&row.rule)),
        idx(b'u', &norm(&row.user)),
        idx(b's', &row.site_id.to_string()),
    ]
}

fn meta_key(recording: Uuid) -> Vec<u8> {
    Key::new(b"rec/").uuid(recording).build()
}

fn response_key(id: Uuid) -> Vec<u8> {
    Key::new(b"r/").uuid(id).build()
}

fn pending_key(row: &ResponseRow) -> Vec<u8> {
    Key::new(b"rp/")
        .uuid(row.server_id)
        .u64(row.position)
        .uuid(row.response_id)
        .build()
}

/// A session event's (or detection's) time: its recording's start plus
/// its offset, or `fallback` for a recording the model does not know.
fn session_time(
    w: &mut Overlay,
    recording: Uuid,
    offset_ms: u64,
    fallback: Timestamp,
) -> Result<Timestamp> {
    let started_at = w.read_value(&meta_key(recording), |m: &SessionMeta| m.started_at)?;
    Ok(match started_at {
        Some(started_at) => started_at.plus_micros(
            i64::try_from(offset_ms)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000),
        ),
        None => fallback,
    })
}

/// Bumps the visualization counters of one event or detection of
/// `recording` (the first chunk in its meta, when the model knows it).
#[allow(clippy::too_many_arguments)]
fn count_visual(
    w: &mut Overlay,
    detection: bool,
    recording: Uuid,
    site: Uuid,
    t: SessionEventType,
    offset_ms: u64,
    at: Timestamp,
) -> Result<()> {
    let second = offset_ms / 1000 / RECORDING_RESOLUTION_SEC * RECORDING_RESOLUTION_SEC;
    let chunk = second / RECORDING_CHUNK_SEC * RECORDING_CHUNK_SEC;
    let second = i64::try_from(second).unwrap_or(i64::MAX);
    let in_meta = chunk == 0
        && w.update_value(&meta_key(recording), |meta: &mut SessionMeta| {
            meta.first.bump(second, t, detection);
            Ok(true)
        })?
        .is_some();
    if !in_meta {
        tally(
            w,
            Key::new(b"vr/").uuid(recording).u64(chunk).build(),
            second,
            t,
            detection,
        )?;
    }
    let minute = at.as_secs().div_euclid(SITE_RESOLUTION_SEC) * SITE_RESOLUTION_SEC;
    let chunk = minute.div_euclid(SITE_CHUNK_SEC) * SITE_CHUNK_SEC;
    for scope in [Some(site), None] {
        tally(
            w,
            Key::new(b"vs/").str(&scope_key(scope)).i64(chunk).build(),
            minute,
            t,
            detection,
        )?;
    }
    Ok(())
}

/// The projection that maintains [`Detections`].
pub struct DetectionsProjection;

impl DetectionsProjection {
    pub const NAME: &'static str = "detections";
}

/// Stores a detection's row (its `at` computed here) with its indexes
/// and counts it in the visualization.
fn detected(w: &mut Overlay, e: &Envelope<DomainEvent>, mut row: DetectionRow) -> Result<()> {
    row.at = session_time(w, row.recording_id, row.at_offset_ms, e.recorded_at)?;
    for k in index_keys(&row) {
        w.insert(k, Vec::new())?;
    }
    w.insert(
        Key::new(b"id/").uuid(row.detection_id).build(),
        e.position.to_be_bytes().to_vec(),
    )?;
    count_visual(
        w,
        true,
        row.recording_id,
        row.site_id,
        row.event_type,
        row.at_offset_ms,
        row.at,
    )?;
    w.put_value(Key::new(b"d/").u64_desc(e.position).build(), &row)
}

impl Projection<DomainEvent> for DetectionsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 5: detection rows carry `sealed_subject`.
        5
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        match &e.payload {
            E::RecordingStarted {
                recording_id,
                site_id,
                started_at,
                ..
            } => {
                // A start seen again keeps the counts made so far.
                let first = w
                    .get_value::<SessionMeta>(&meta_key(*recording_id))?
                    .map(|m| m.first)
                    .unwrap_or_default();
                w.put_value(
                    meta_key(*recording_id),
                    &SessionMeta {
                        site_id: *site_id,
                        started_at: *started_at,
                        first,
                    },
                )
            }
            E::SessionEventRecorded {
                recording_id,
                site_id,
                event,
            } => {
                let at = session_time(w, *recording_id, event.offset_ms, e.recorded_at)?;
                count_visual(
                    w,
                    false,
                    *recording_id,
                    *site_id,
                    event.event_type,
                    event.offset_ms,
                    at,
                )
            }
            E::SessionEventSealed {
                recording_id,
                site_id,
                event_type,
                offset_ms,
                ..
            } => {
                let at = session_time(w, *recording_id, *offset_ms, e.recorded_at)?;
                count_visual(
                    w,
                    false,
                    *recording_id,
                    *site_id,
                    *event_type,
                    *offset_ms,
                    at,
                )
            }
            E::EventDetected {
                detection_id,
                recording_id,
                site_id,
                server_id,
                user,
                host,
                event_id,
                event_type,
                severity,
                rule,
                policy_id,
                subject,
                at_offset_ms,
            } => detected(
                w,
                e,
                DetectionRow {
                    detection_id: *detection_id,
                    recording_id: *recording_id,
                    site_id: *site_id,
                    server_id: *server_id,
                    user: user.clone(),
                    host: host.clone(),
                    event_id: *event_id,
                    event_type: *event_type,
                    severity: *severity,
                    rule: rule.clone(),
                    policy_id: *policy_id,
                    subject: subject.clone(),
                    at_offset_ms: *at_offset_ms,
                    at: Timestamp(0),
                    position: e.position,
                    sealed_subject: None,
                },
            ),
            E::EventDetectedSealed {
                detection_id,
                recording_id,
                site_id,
                server_id,
                user,
                host,
                event_id,
                event_type,
                severity,
                rule,
                policy_id,
                subject,
                at_offset_ms,
            } => detected(
                w,
                e,
                DetectionRow {
                    detection_id: *detection_id,
                    recording_id: *recording_id,
                    site_id: *site_id,
                    server_id: *server_id,
                    user: user.clone(),
                    host: host.clone(),
                    event_id: *event_id,
                    event_type: *event_type,
                    severity: *severity,
                    rule: rule.clone(),
                    policy_id: *policy_id,
                    subject: None,
                    at_offset_ms: *at_offset_ms,
                    at: Timestamp(0),
                    position: e.position,
                    sealed_subject: subject.clone(),
                },
            ),

            event @ E::ResponseTriggered {
                response_id,
                recording_id,
                ..
            } => {
                let row = ResponseRow::triggered(e.position, event)
                    .expect("a ResponseTriggered fact has a row");
                w.insert(pending_key(&row), Vec::new())?;
                w.insert(
                    Key::new(b"rr/")
                        .uuid(*recording_id)
                        .uuid(*response_id)
                        .build(),
                    Vec::new(),
                )?;
                w.put_value(response_key(*response_id), &row)
            }
            E::RecordingDeleted { recording_id, .. } => {
                // Detections logged before subjects were sealed keep a plain
                // subject in their row: dropped in the deletion's commit.
                // (Sealed subjects are shredded with the key.)
                let prefix = Key::new(b"i/")
                    .u8(b'r')
                    .str(&recording_id.to_string())
                    .build();
                for (key, _) in w.scan_prefix(&prefix)? {
                    let Some(position) = codec::u64_from_desc_key(&key[prefix.len()..]) else {
                        continue;
                    };
                    let row = Key::new(b"d/").u64_desc(position).build();
                    w.update_value(&row, |row: &mut DetectionRow| {
                        Ok(row.subject.take().is_some())
                    })?;
                }
                Ok(())
            }
            E::ResponseDelivered {
                response_id,
                outcome,
                at,
                ..
            } => {
                let mut row: ResponseRow =
                    w.get_value(&response_key(*response_id))?.ok_or_else(|| {
                        ProjectionError::Invariant(format!(
                            "delivery of unknown response {response_id}"
                        ))
                    })?;
                w.remove(pending_key(&row))?;
                row.delivered = Some(Delivery {
                    outcome: outcome.clone(),
                    at: *at,
                });
                w.put_value(response_key(*response_id), &row)
            }
            _ => Ok(()),
        }
    }
}

/// API `DetectionFilter`; set fields combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetectionFilter {
    /// Limit to these sites (the caller's scope); empty: all.
    pub site_ids: Vec<Uuid>,
    pub recording_id: Option<Uuid>,
    /// Any of these types; empty: all.
    pub types: Vec<SessionEventType>,
    pub min_severity: Option<Severity>,
    /// A rule name, case-insensitive.
    pub rule: Option<String>,
    pub user: Option<String>,
    /// Detected at or after.
    pub from: Option<Timestamp>,
    /// Detected before.
    pub to: Option<Timestamp>,
}

/// A page of detections, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionPage {
    pub items: Vec<(String, DetectionRow)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

/// One time bucket of the event visualization report.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VisualBucket {
    /// Seconds from the session start (per recording) or Unix seconds (per site).
    pub start: i64,
    pub events: BTreeMap<SessionEventType, u64>,
    pub detections: BTreeMap<SessionEventType, u64>,
}

/// Queries over detections, responses and visualization counters.
#[derive(Clone, Debug)]
pub struct Detections {
    tree: TreeRef,
}

impl Detections {
    pub fn new(tree: TreeRef) -> Self {
        Detections { tree }
    }

    pub fn detection(&self, id: Uuid) -> Result<Option<DetectionRow>> {
        match self.tree.get(Key::new(b"id/").uuid(id).build())? {
            Some(pos) => get(
                &self.tree,
                &Key::new(b"d/")
                    .u64_desc(codec::u64_from_key(&pos).unwrap_or(0))
                    .build(),
            ),
            None => Ok(None),
        }
    }

    /// A page of detections matching `filter`, newest first. Walks the most
    /// specific of the filter's indexes (recording, user, rule, type,
    /// severity, site) and checks the rest on each row.
    pub fn search(
        &self,
        filter: &DetectionFilter,
        first: Option<usize>,
        after: Option<&str>,
    ) -> Result<DetectionPage> {
        let limit = page_size(first);
        let after = after
            .map(|c| cursor_decode("x", c))
            .transpose()?
            .and_then(|b| codec::u64_from_key(&b));
        let prefixes: Vec<Vec<u8>> = {
            let idx = |field: u8, value: String| Key::new(b"i/").u8(field).str(&value).build();
            if let Some(r) = filter.recording_id {
                vec![idx(b'r', r.to_string())]
            } else if let Some(u) = &filter.user {
                vec![idx(b'u', norm(u))]
            } else if let Some(q) = &filter.rule {
                vec![idx(b'q', norm(q))]
            } else if !filter.types.is_empty() {
                filter
                    .types
                    .iter()
                    .map(|t| idx(b't', type_code(*t).to_string()))
                    .collect()
            } else if let Some(min) = filter.min_severity.filter(|m| *m > Severity::Info) {
                Severity::ALL
                    .iter()
                    .filter(|s| **s >= min)
                    .map(|s| idx(b'v', severity_code(*s).to_string()))
                    .collect()
            } else if !filter.site_ids.is_empty() {
                filter
                    .site_ids
                    .iter()
                    .map(|s| idx(b's', s.to_string()))
                    .collect()
            } else {
                vec![b"d/".to_vec()]
            }
        };
        let after = after.map(codec::u64_desc_key);
        let mut items = Vec::new();
        let mut has_next_page = false;
        for suffix in merged(
            &self.tree,
            &prefixes,
            after.as_ref().map(|a| &a[..]),
            &SuffixBounds::default(),
        ) {
            let pos = codec::u64_from_desc_key(&suffix?).unwrap_or(0);
            let Some(row) =
                get::<DetectionRow>(&self.tree, &Key::new(b"d/").u64_desc(pos).build())?
            else {
                continue;
            };
            if !detection_matches(filter, &row) {
                continue;
            }
            if items.len() == limit {
                has_next_page = true;
                break;
            }
            items.push((cursor_encode("x", &pos.to_be_bytes()), row));
        }
        let end_cursor = items.last().map(|(c, _)| c.clone());
        Ok(DetectionPage {
            items,
            has_next_page,
            end_cursor,
        })
    }

    pub fn response(&self, id: Uuid) -> Result<Option<ResponseRow>> {
        get(&self.tree, &response_key(id))
    }

    /// Response actions of a recording, by id.
    pub fn responses_for_recording(&self, recording: Uuid) -> Result<Vec<ResponseRow>> {
        let mut out = Vec::new();
        for kv in self
            .tree
            .scan_prefix(Key::new(b"rr/").uuid(recording).build())
        {
            let (k, _) = kv?;
            if let Some(r) = self.response(trailing_uuid(&k)?)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Response actions a server has not acknowledged, oldest first
    /// (API `pendingResponses(serverId)`).
    pub fn pending_responses(&self, server: Uuid) -> Result<Vec<ResponseRow>> {
        let mut out = Vec::new();
        for kv in self.tree.scan_prefix(Key::new(b"rp/").uuid(server).build()) {
            let (k, _) = kv?;
            if let Some(r) = self.response(trailing_uuid(&k)?)? {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Counts per event type per `bucket_sec` of one recording's session
    /// time (API `Recording.eventVisualization(bucketSec)`); empty buckets
    /// are left out.
    pub fn recording_visualization(
        &self,
        recording: Uuid,
        bucket_sec: u64,
    ) -> Result<Vec<VisualBucket>> {
        let bucket = bucket_sec.max(RECORDING_RESOLUTION_SEC) as i64;
        let mut buckets: BTreeMap<i64, VisualBucket> = BTreeMap::new();
        let first = get::<SessionMeta>(&self.tree, &meta_key(recording))?.map(|m| m.first);
        let chunks = self
            .tree
            .scan_prefix(Key::new(b"vr/").uuid(recording).build())
            .map(|kv| codec::decode::<Tally>(&kv?.1));
        for tally in first.map(Ok).into_iter().chain(chunks) {
            for (second, code, detection, n) in tally?.0 {
                let Some(t) = type_from_code(code) else {
                    continue;
                };
                add(&mut buckets, second / bucket * bucket, detection, t, n);
            }
        }
        Ok(buckets.into_values().collect())
    }

    /// Counts per event type per `bucket_sec` (rounded up to whole
    /// minutes) of one site's (or, `None`, every site's) sessions in
    /// `[from, to)`; empty buckets are left out.
    pub fn site_visualization(
        &self,
        site: Option<Uuid>,
        from: Timestamp,
        to: Timestamp,
        bucket_sec: i64,
    ) -> Result<Vec<VisualBucket>> {
        let bucket = bucket_sec
            .max(SITE_RESOLUTION_SEC)
            .div_euclid(SITE_RESOLUTION_SEC)
            * SITE_RESOLUTION_SEC;
        let mut buckets: BTreeMap<i64, VisualBucket> = BTreeMap::new();
        let from_minute = from.as_secs().div_euclid(SITE_RESOLUTION_SEC) * SITE_RESOLUTION_SEC;
        let prefix = Key::new(b"vs/").str(&scope_key(site)).build();
        let first_chunk = from_minute.div_euclid(SITE_CHUNK_SEC) * SITE_CHUNK_SEC;
        let start = [prefix.as_slice(), &codec::i64_key(first_chunk)].concat();
        let end = [
            prefix.as_slice(),
            &codec::i64_key(to.as_secs().saturating_add(1)),
        ]
        .concat();
        for kv in self.tree.range(start..end) {
            let (_, v) = kv?;
            let tally: Tally = codec::decode(&v)?;
            for (minute, code, detection, n) in tally.0 {
                let Some(t) = type_from_code(code) else {
                    continue;
                };
                if minute < from_minute || Timestamp::from_secs(minute) >= to {
                    continue;
                }
                // Buckets are aligned to `from`.
                let start = from_minute + (minute - from_minute).div_euclid(bucket) * bucket;
                add(&mut buckets, start, detection, t, n);
            }
        }
        Ok(buckets.into_values().collect())
    }
}

fn add(
    buckets: &mut BTreeMap<i64, VisualBucket>,
    start: i64,
    detection: bool,
    t: SessionEventType,
    n: u64,
) {
    let b = buckets.entry(start).or_insert_with(|| VisualBucket {
        start,
        ..VisualBucket::default()
    });
    let map = if detection {
        &mut b.detections
    } else {
        &mut b.events
    };
    *map.entry(t).or_default() += n;
}

fn detection_matches(f: &DetectionFilter, row: &DetectionRow) -> bool {
    (f.site_ids.is_empty() || f.site_ids.contains(&row.site_id))
        && f.recording_id.is_none_or(|r| r == row.recording_id)
        && (f.types.is_empty() || f.types.contains(&row.event_type))
        && f.min_severity.is_none_or(|m| row.severity >= m)
        && f.rule.as_ref().is_none_or(|q| norm(q) == norm(&row.rule))
        && f.user.as_ref().is_none_or(|u| norm(u) == norm(&row.user))
        && f.from.is_none_or(|t| row.at >= t)
        && f.to.is_none_or(|t| row.at < t)
}
