//! Dashboard insights, per site and over all sites, counted by **session
//! time**: a recording counts on the UTC day its session started, a
//! detection on the day of its event (the recording's start plus the
//! event's offset), whenever either was ingested. So a day backfilled
//! later (sessions of yesterday uploaded today) shows on yesterday.
//!
//! Every figure is kept for the recording's site and for `*` (all sites):
//!
//! | key | value |
//! |---|---|
//! | `c/` scope, name | counter: `recordings` (not deleted), `live`, `restricted`, `archived`, `deleted`, `storage` (bytes, not deleted), `detections` |
//! | `day/` scope, day | recordings started that UTC day |
//! | `md/` scope, day, mode | recordings started that day per recording mode |
//! | `dday/` scope, day | detections of events that day |
//! | `dt/` scope, day, type / `dv/` scope, day, severity | detections of events that day by type / severity |
//! | `ld/` scope, day, rule | detections of events that day by the rule that hit (the top alerts) |
//! | `ud/` `ad/` `hd/` `gd/` scope, day, item | recordings (not deleted) started that day per user / application / host / delivery group |
//! | `rd/` scope, day, user | risk of the user's detections of events that day (severity weights, [`risk_weight`]), recordings not deleted |
//! | `pud/` `pad/` `phd/` `pgd/` `prd/` | the same over recordings neither deleted nor restricted |
//! | `srd/` server, day | recordings the server started that day |
//! | `sb/` server | bytes the server stored (recordings not deleted) |
//! | `sv/` scope, status, online | servers with that [`ServerStatus`] (and liveness) |
//! | `rec/` recording | [`DashRecording`] |
//! | `srv/` server | [`DashServer`] |
//! | `ret/` site | the site's `RetentionPolicy` |
//! | `ps/` server, session | [`SessionParts`]: each part's lifecycle, end and restriction |
//! | `pk/` site, restricted, earliest kept end, server, session | kept parts (ended or archived) of a session without a live part |
//! | `pe/` site, restricted, earliest ended end, server, session | ended parts of a session without a live part, and its earliest kept end |
//!
//! Items of the top lists are lowercased. A query reads the day keys of
//! its range (whole UTC days: `from`'s day up to the day before `to`) and
//! sums them per item: the lists, counts and series of a dashboard all
//! honour `from`/`to`; only the totals (`recordings`, `live`, storage,
//! restricted, archived, deleted, all-time detections) are of all time.
//!
//! # Who sees what
//!
//! The top lists that name people or what they used (users, risky users,
//! applications, hosts, delivery groups) count only recordings the asker
//! could see: a deleted recording drops out of them for everyone, and a
//! restricted one counts only for the roles that see restricted
//! recordings (ADMIN, PRIVILEGED_PLAYER: [`DashboardQuery::sees_restricted`]);
//! an AUDITOR or a VIEWER gets the lists of unrestricted recordings. The
//! other figures are counts that name nobody (totals, storage, per day,
//! per mode, detections by type, severity and rule) and are the same for
//! every role that reads the dashboard; they count activity, so a deleted
//! recording's start and detections stay counted.
//!
//! "Recordings due for archive/delete" counts what the domain's `due`
//! picks at the query's `now`, so it agrees with what the retention run
//! will do, at a cost in proportion to what is due (the run archives and
//! deletes it daily), not to all old recordings. A session (its parts
//! grouped by server and session id, `ps/`) without a live part has one
//! `pk/` entry keyed by the earliest end of its kept parts (ended or
//! archived) and, while it has ended parts, one `pe/` entry keyed by the
//! earliest end of those, each under the session's site and whether a
//! part is restricted. Due for delete: the kept parts of the sessions
//! whose `pk/` end is at least `delete_after_days` old; due for archive:
//! the ended parts of the sessions whose `pe/` end is at least
//! `archive_after_days` old and that are not due for delete. A policy
//! exempting restricted sessions reads only the unrestricted entries. The
//! parts of a session share their server's site (the site of its first
//! part is the session's). [`DashboardReader::due`] (the run's list of ids)
//! reads the same entries up to the nearer cutoff and the parts of their
//! sessions (`ps/`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    due, DomainEvent, InstallStatus, InstallStep, Lifecycle, RecordingMode, RetentionCandidate,
    RetentionPolicy, ServerStatus, SessionEventType, Severity,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::dashboard_days::{DashboardDays, DaysState};
use super::util::{
    counter, get, norm, scope_key, severity_code, severity_from_code, trailing_uuid, type_code,
    type_from_code, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{read_counter, Changes, Overlay, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::{Keyspace, Tree};

/// How much one detection of each severity adds to its user's risk in the
/// "top risky users" list: the weight doubles with each level, so one
/// CRITICAL detection outweighs eight LOW ones.
///
/// | severity | weight |
/// |---|---|
/// | INFO | 1 |
/// | LOW | 2 |
/// | MEDIUM | 4 |
/// | HIGH | 8 |
/// | CRITICAL | 16 |
pub fn risk_weight(severity: Severity) -> u64 {
    match severity {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 4,
        Severity::High => 8,
        Severity::Critical => 16,
    }
}

/// The server statuses in code order (their one-byte code is the index).
const STATUSES: [ServerStatus; 5] = [
    ServerStatus::Unknown,
    ServerStatus::Installing,
    ServerStatus::InstallFailed,
    ServerStatus::Connected,
    ServerStatus::Disconnected,
];

fn status_code(status: ServerStatus) -> u8 {
    STATUSES.iter().position(|s| *s == status).unwrap_or(0) as u8
}

fn mode_code(mode: RecordingMode) -> u8 {
    match mode {
        RecordingMode::ScreenAndEvents => 0,
        RecordingMode::EventsOnly => 1,
    }
}

fn mode_from_code(code: u8) -> Option<RecordingMode> {
    match code {
        0 => Some(RecordingMode::ScreenAndEvents),
        1 => Some(RecordingMode::EventsOnly),
        _ => None,
    }
}

/// What the dashboard keeps of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashRecording {
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub lifecycle: Lifecycle,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub restricted: bool,
    pub size_bytes: u64,
    /// Applications counted for it (lowercase).
    pub applications: BTreeSet<String>,
    /// The user counted for it (lowercase).
    pub user: String,
    /// The session host counted for it (lowercase).
    pub host: String,
    /// The delivery group counted for it (lowercase), if any.
    pub delivery_group: Option<String>,
    /// Risk of its detections per UTC day of their events.
    pub risk: BTreeMap<i64, u64>,
}

impl DashRecording {
    /// Whether it counts in the lists of roles that do not see restricted
    /// recordings.
    fn public(&self) -> bool {
        !self.restricted && self.lifecycle != Lifecycle::Deleted
    }

    fn started_day(&self) -> i64 {
        self.started_at.day_number()
    }
}

/// What the dashboard keeps of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashServer {
    pub site_id: Uuid,
    /// [`ServerStatus`] code.
    pub status: u8,
    pub online: bool,
}

fn scopes(site: Uuid) -> [String; 2] {
    [scope_key(Some(site)), scope_key(None)]
}

fn c_key(scope: &str, name: &str) -> Vec<u8> {
    Key::new(b"c/").str(scope).str(name).build()
}

fn bump(w: &mut Overlay, site: Uuid, name: &str, delta: i64) -> Result<()> {
    for s in scopes(site) {
        w.add(c_key(&s, name), delta)?;
    }
    Ok(())
}

/// Adds `delta` to a per-day counter `tag scope day [suffix]` of the
/// site's scopes.
fn bump_day(
    w: &mut Overlay,
    tag: &[u8],
    site: Uuid,
    day: i64,
    suffix: &[u8],
    delta: i64,
) -> Result<()> {
    for s in scopes(site) {
        w.add(Key::new(tag).str(&s).i64(day).bytes(suffix).build(), delta)?;
    }
    Ok(())
}

/// Adds `delta` to the per-day item counter of one top list.
fn bump_item(
    w: &mut Overlay,
    tag: &[u8],
    site: Uuid,
    day: i64,
    item: &str,
    delta: i64,
) -> Result<()> {
    bump_day(
        w,
        tag,
        site,
        day,
        Key::new(b"").str(item).build().as_slice(),
        delta,
    )
}

/// Counts `r` `delta` times in the top lists over recordings not deleted
/// (`all`) and over public ones (`public`): its user, applications, host
/// and delivery group on its start day, its risk on its detections' days.
fn count_in_lists(
    w: &mut Overlay,
    r: &DashRecording,
    all: bool,
    public: bool,
    delta: i64,
) -> Result<()> {
    type Tags = (
        &'static [u8],
        &'static [u8],
        &'static [u8],
        &'static [u8],
        &'static [u8],
    );
    let tags: [(Tags, bool); 2] = [
        ((b"ud/", b"ad/", b"hd/", b"gd/", b"rd/"), all),
        ((b"pud/", b"pad/", b"phd/", b"pgd/", b"prd/"), public),
    ];
    let day = r.started_day();
    for ((users, apps, hosts, groups, risk), counted) in tags {
        if !counted {
            continue;
        }
        bump_item(w, users, r.site_id, day, &r.user, delta)?;
        for app in &r.applications {
            bump_item(w, apps, r.site_id, day, app, delta)?;
        }
        bump_item(w, hosts, r.site_id, day, &r.host, delta)?;
        if let Some(group) = &r.delivery_group {
            bump_item(w, groups, r.site_id, day, group, delta)?;
        }
        for (risk_day, weight) in &r.risk {
            let weight = i64::try_from(*weight).unwrap_or(i64::MAX);
            bump_item(w, risk, r.site_id, *risk_day, &r.user, delta * weight)?;
        }
    }
    Ok(())
}

fn rec_key(id: Uuid) -> Vec<u8> {
    Key::new(b"rec/").uuid(id).build()
}

fn server_bytes_key(server: Uuid) -> Vec<u8> {
    Key::new(b"sb/").uuid(server).build()
}

/// A part of a session as retention sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPart {
    pub recording_id: Uuid,
    pub lifecycle: Lifecycle,
    pub ended_at: Option<Timestamp>,
    pub restricted: bool,
}

/// The parts of a session (`ps/` server, session): what its `pk/` and
/// `pe/` entries are computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionParts {
    /// The site of its first part.
    pub site_id: Uuid,
    pub parts: Vec<SessionPart>,
}

fn session_key(server: Uuid, session: &str) -> Vec<u8> {
    Key::new(b"ps/").uuid(server).str(session).build()
}

/// The key of a retention entry: `tag site restricted end server session`.
fn retention_key(
    tag: &[u8],
    s: &SessionParts,
    restricted: u8,
    end: Timestamp,
    server: Uuid,
    session: &str,
) -> Vec<u8> {
    Key::new(tag)
        .uuid(s.site_id)
        .u8(restricted)
        .i64(end.0)
        .uuid(server)
        .str(session)
        .build()
}

/// The session's `pk/` and `pe/` entries (none with a live part): the
/// `pk/` value is the number of kept parts (u64 big-endian), the `pe/`
/// value the number of ended parts and the earliest kept end (its key
/// bytes).
fn retention_entries(server: Uuid, session: &str, s: &SessionParts) -> Vec<(Vec<u8>, Vec<u8>)> {
    if s.parts.iter().any(|p| p.lifecycle == Lifecycle::Live) {
        return Vec::new();
    }
    let restricted = u8::from(s.parts.iter().any(|p| p.restricted));
    let kept = || {
        s.parts
            .iter()
            .filter(|p| matches!(p.lifecycle, Lifecycle::Ended | Lifecycle::Archived))
    };
    let ended = || s.parts.iter().filter(|p| p.lifecycle == Lifecycle::Ended);
    let Some(kept_end) = kept().filter_map(|p| p.ended_at).min() else {
        return Vec::new();
    };
    let mut entries = vec![(
        retention_key(b"pk/", s, restricted, kept_end, server, session),
        (kept().count() as u64).to_be_bytes().to_vec(),
    )];
    if let Some(ended_end) = ended().filter_map(|p| p.ended_at).min() {
        entries.push((
            retention_key(b"pe/", s, restricted, ended_end, server, session),
            [
                (ended().count() as u64).to_be_bytes(),
                codec::i64_key(kept_end.0),
            ]
            .concat(),
        ));
    }
    entries
}

/// Records `r`'s lifecycle, end and restriction as a part of its session
/// and moves the session's retention entries.
fn set_session_part(w: &mut Overlay, r: &DashRecording, id: Uuid) -> Result<()> {
    let key = session_key(r.server_id, &r.session_id);
    let mut s = w
        .get_value::<SessionParts>(&key)?
        .unwrap_or_else(|| SessionParts {
            site_id: r.site_id,
            parts: Vec::new(),
        });
    let before = retention_entries(r.server_id, &r.session_id, &s);
    let part = SessionPart {
        recording_id: id,
        lifecycle: r.lifecycle,
        ended_at: r.ended_at,
        restricted: r.restricted,
    };
    match s.parts.iter_mut().find(|p| p.recording_id == id) {
        Some(p) => *p = part,
        None => s.parts.push(part),
    }
    let after = retention_entries(r.server_id, &r.session_id, &s);
    for (k, _) in &before {
        if !after.iter().any(|(a, _)| a == k) {
            w.remove(k.clone())?;
        }
    }
    for entry in after {
        if !before.contains(&entry) {
            w.insert(entry.0, entry.1)?;
        }
    }
    w.put_value(key, &s)
}

/// The u64 big-endian at the start of `bytes` (0 when too short).
fn leading_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

/// The projection that maintains [`DashboardReader`].
///
/// It keeps `days` (the per-day counters in memory) fresh from its commit
/// hook.
#[derive(Debug, Default)]
pub struct DashboardProjection {
    days: Arc<DashboardDays>,
}

impl DashboardProjection {
    pub const NAME: &'static str = "dashboard";

    /// The projection keeping `days` fresh.
    pub fn with_days(days: Arc<DashboardDays>) -> Self {
        DashboardProjection { days }
    }
}

fn sv_key(scope: &str, server: &DashServer) -> Vec<u8> {
    Key::new(b"sv/")
        .str(scope)
        .u8(server.status)
        .u8(u8::from(server.online))
        .build()
}

/// Moves a server to `status` (`online` unchanged when `None`; a new
/// server starts online only when connected).
fn set_server(
    w: &mut Overlay,
    server: Uuid,
    site: Uuid,
    status: ServerStatus,
    online: Option<bool>,
) -> Result<()> {
    let key = Key::new(b"srv/").uuid(server).build();
    let old = w.get_value::<DashServer>(&key)?;
    let new = DashServer {
        site_id: site,
        status: status_code(status),
        online: online
            .or(old.map(|o| o.online))
            .unwrap_or(status == ServerStatus::Connected),
    };
    if old == Some(new) {
        return Ok(());
    }
    if let Some(old) = old {
        for s in scopes(old.site_id) {
            w.add(sv_key(&s, &old), -1)?;
        }
    }
    for s in scopes(site) {
        w.add(sv_key(&s, &new), 1)?;
    }
    w.put_value(key, &new)
}

impl Projection<DomainEvent> for DashboardProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: top lists leave deleted recordings out, and have twins over
        // unrestricted ones.
        // 3: counted by session time per day (detections on their event's
        // day), top lists per day (honouring from/to), risky users, alerts,
        // hosts, delivery groups, modes, per-server figures, servers by
        // `ServerStatus`.
        // 4: retention entries per session (`ps/`, `pk/`, `pe/`) for the
        // counts due for archive and delete.
        // 5: the retention run's list reads those entries too: no more
        // `ec/` and `ses/` keys (two fewer per recording).
        5
    }

    fn committed(&self, tree: &Tree, changes: &Changes, _checkpoint: u64) {
        self.days.apply(tree, changes);
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        let event = &e.payload;
        match event {
            E::ServerConnected {
                server_id, site_id, ..
            } => return set_server(w, *server_id, *site_id, ServerStatus::Connected, Some(true)),
            E::ServerInstallRequested {
                server_id, site_id, ..
            } => {
                return set_server(
                    w,
                    *server_id,
                    *site_id,
                    ServerStatus::Installing,
                    Some(false),
                )
            }
            E::InstallProgressReported {
                server_id,
                site_id,
                step,
                status,
                ..
            } => {
                let state = match (step, status) {
                    (_, InstallStatus::Failed) => Some((ServerStatus::InstallFailed, false)),
                    (InstallStep::Connected, InstallStatus::Succeeded) => {
                        Some((ServerStatus::Connected, true))
                    }
                    _ => None,
                };
                return match state {
                    Some((s, online)) => set_server(w, *server_id, *site_id, s, Some(online)),
                    None => Ok(()),
                };
            }
            E::ServerDisconnected {
                server_id, site_id, ..
            } => {
                return set_server(
                    w,
                    *server_id,
                    *site_id,
                    ServerStatus::Disconnected,
                    Some(false),
                )
            }
            E::ServerWentOffline {
                server_id, site_id, ..
            }
            | E::ServerCameOnline {
                server_id, site_id, ..
            } => {
                let key = Key::new(b"srv/").uuid(*server_id).build();
                let Some(old) = w.get_value::<DashServer>(&key)? else {
                    return Ok(());
                };
                let online = matches!(event, E::ServerCameOnline { .. });
                let status = STATUSES[old.status as usize % STATUSES.len()];
                return set_server(w, *server_id, *site_id, status, Some(online));
            }
            E::RetentionPolicySet {
                site_id, policy, ..
            } => return w.put_value(Key::new(b"ret/").uuid(*site_id).build(), policy),
            E::RecordingStarted {
                recording_id,
                site_id,
                server_id,
                session_id,
                user,
                host,
                delivery_group,
                applications,
                mode,
                started_at,
                ..
            } => {
                bump(w, *site_id, "recordings", 1)?;
                bump(w, *site_id, "live", 1)?;
                let day = started_at.day_number();
                bump_day(w, b"day/", *site_id, day, &[], 1)?;
                bump_day(w, b"md/", *site_id, day, &[mode_code(*mode)], 1)?;
                w.add(Key::new(b"srd/").uuid(*server_id).i64(day).build(), 1)?;
                let apps: BTreeSet<String> = applications
                    .iter()
                    .map(|app| norm(app))
                    .filter(|app| !app.is_empty())
                    .collect();
                let recording = DashRecording {
                    site_id: *site_id,
                    server_id: *server_id,
                    session_id: session_id.clone(),
                    lifecycle: Lifecycle::Live,
                    started_at: *started_at,
                    ended_at: None,
                    restricted: false,
                    size_bytes: 0,
                    applications: apps,
                    user: norm(user),
                    host: norm(host),
                    delivery_group: delivery_group
                        .as_deref()
                        .map(norm)
                        .filter(|g| !g.is_empty()),
                    risk: BTreeMap::new(),
                };
                count_in_lists(w, &recording, true, true, 1)?;
                set_session_part(w, &recording, *recording_id)?;
                return w.put_value(rec_key(*recording_id), &recording);
            }
            _ => {}
        }
        let Some(id) = event.recording_id() else {
            return Ok(());
        };
        if matches!(
            event,
            E::RecordingDeclined { .. } | E::RecordingPartAssigned { .. }
        ) {
            return Ok(());
        }
        let unknown =
            || ProjectionError::Invariant(format!("{} for unknown recording {id}", event.name()));
        let started_app = match event {
            E::SessionEventRecorded { event: se, .. } => Some(match se.event_type {
                SessionEventType::AppStart => se.application().map(norm),
                _ => None,
            }),
            E::SessionEventSealed {
                event_type, facts, ..
            } => Some(match event_type {
                SessionEventType::AppStart => facts.application.as_deref().map(norm),
                _ => None,
            }),
            _ => None,
        };
        if let Some(app) = started_app {
            // The bulk of the log: only a new application changes anything,
            // so the recording is neither copied nor compared.
            let app = app.filter(|a| !a.is_empty());
            let mut counted = None;
            w.update_value(&rec_key(id), |r: &mut DashRecording| {
                let Some(app) = &app else {
                    return Ok(false);
                };
                if r.lifecycle == Lifecycle::Deleted || r.applications.contains(app) {
                    return Ok(false);
                }
                r.applications.insert(app.clone());
                counted = Some((r.site_id, r.public(), r.started_day()));
                Ok(true)
            })?
            .ok_or_else(unknown)?;
            if let (Some((site, public, day)), Some(app)) = (counted, app) {
                bump_item(w, b"ad/", site, day, &app, 1)?;
                if public {
                    bump_item(w, b"pad/", site, day, &app, 1)?;
                }
            }
            return Ok(());
        }
        let old: DashRecording = w.get_value(&rec_key(id))?.ok_or_else(unknown)?;
        let mut r = old.clone();
        let site = r.site_id;
        let not_deleted = r.lifecycle != Lifecycle::Deleted;
        match event {
            E::EventDetected {
                event_type,
                severity,
                rule,
                at_offset_ms,
                ..
            }
            | E::EventDetectedSealed {
                event_type,
                severity,
                rule,
                at_offset_ms,
                ..
            } => {
                // Session time: the event's own day, not the ingestion's.
                let at = r
                    .started_at
                    .plus_micros(i64::try_from(*at_offset_ms).unwrap_or(i64::MAX / 1_000) * 1_000);
                let day = at.day_number();
                bump(w, site, "detections", 1)?;
                bump_day(w, b"dday/", site, day, &[], 1)?;
                bump_day(w, b"dt/", site, day, &[type_code(*event_type)], 1)?;
                bump_day(w, b"dv/", site, day, &[severity_code(*severity)], 1)?;
                bump_item(w, b"ld/", site, day, rule, 1)?;
                if not_deleted {
                    let weight = risk_weight(*severity);
                    *r.risk.entry(day).or_default() += weight;
                    bump_item(w, b"rd/", site, day, &r.user, weight as i64)?;
                    if r.public() {
                        bump_item(w, b"prd/", site, day, &r.user, weight as i64)?;
                    }
                }
            }
            E::ContentChunkStored { size, .. } if not_deleted => {
                r.size_bytes = r.size_bytes.saturating_add(*size);
                let size = i64::try_from(*size).unwrap_or(i64::MAX);
                bump(w, site, "storage", size)?;
                w.add(server_bytes_key(r.server_id), size)?;
            }
            E::RecordingEnded { ended_at, .. } => {
                bump(w, site, "live", -1)?;
                r.lifecycle = Lifecycle::Ended;
                r.ended_at = Some(*ended_at);
            }
            E::RecordingRestricted { .. } if !r.restricted => {
                r.restricted = true;
                bump(w, site, "restricted", 1)?;
                count_in_lists(w, &old, false, old.public(), -1)?;
            }
            E::RecordingRestrictionRemoved { .. } if r.restricted => {
                r.restricted = false;
                bump(w, site, "restricted", -1)?;
                count_in_lists(w, &r, false, r.public(), 1)?;
            }
            E::RecordingArchived { .. } => {
                r.lifecycle = Lifecycle::Archived;
                bump(w, site, "archived", 1)?;
            }
            E::RecordingRestored { .. } => {
                r.lifecycle = Lifecycle::Ended;
                bump(w, site, "archived", -1)?;
            }
            E::RecordingDeleted { .. } if not_deleted => {
                if old.lifecycle == Lifecycle::Archived {
                    bump(w, site, "archived", -1)?;
                }
                if old.lifecycle == Lifecycle::Live {
                    bump(w, site, "live", -1)?;
                }
                if old.restricted {
                    bump(w, site, "restricted", -1)?;
                }
                bump(w, site, "recordings", -1)?;
                bump(w, site, "deleted", 1)?;
                // Nobody sees it any more: out of every top list.
                count_in_lists(w, &old, true, old.public(), -1)?;
                // The content is destroyed: its bytes no longer count.
                let size = i64::try_from(r.size_bytes).unwrap_or(i64::MAX);
                bump(w, site, "storage", -size)?;
                w.add(server_bytes_key(r.server_id), -size)?;
                r.lifecycle = Lifecycle::Deleted;
                r.size_bytes = 0;
                r.risk.clear();
            }
            _ => return Ok(()),
        }
        if r != old {
            if (r.lifecycle, r.ended_at, r.restricted)
                != (old.lifecycle, old.ended_at, old.restricted)
            {
                set_session_part(w, &r, id)?;
            }
            w.put_value(rec_key(id), &r)?;
        }
        Ok(())
    }
}

/// Which sites a dashboard covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteScope {
    All,
    /// One or more sites (a principal scoped to sites, or `siteId`).
    Sites(Vec<Uuid>),
}

/// A dashboard request.
/// Which of a dashboard's costlier figures to compute: each top list
/// (one pass over its per-day counters) and the retention counts (the
/// retention rules over the recordings old enough). The rest is a few
/// counters and always computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DashboardParts {
    /// Top users, applications, hosts, delivery groups, risky users,
    /// alerts, in this order.
    pub top_lists: [bool; 6],
    /// `pending_archive` and `pending_delete`.
    pub pending: bool,
}

impl DashboardParts {
    /// Everything.
    pub const ALL: DashboardParts = DashboardParts {
        top_lists: [true; 6],
        pending: true,
    };
}

#[derive(Clone, Debug)]
pub struct DashboardQuery {
    pub sites: SiteScope,
    /// Start of the range (default: 30 days before `to`).
    pub from: Option<Timestamp>,
    /// End of the range, exclusive (default: `now`).
    pub to: Option<Timestamp>,
    /// The time "due for archive/delete" is judged at.
    pub now: Timestamp,
    /// Length of the top lists.
    pub top: usize,
    /// Whether the asker sees restricted recordings (ADMIN,
    /// PRIVILEGED_PLAYER): else the top lists count only unrestricted ones.
    pub sees_restricted: bool,
}

impl DashboardQuery {
    /// The first and last UTC day numbers of the range: `from` (default:
    /// 30 days before `to`) up to `to` exclusive (default: `now`).
    pub fn days(&self) -> (i64, i64) {
        let to = self.to.unwrap_or(self.now);
        let from = self.from.unwrap_or_else(|| to.plus_days(-30));
        let first_day = from.day_number();
        (first_day, to.plus_micros(-1).day_number().max(first_day))
    }
}

/// A count on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    /// Midnight UTC of the day.
    pub day: Timestamp,
    pub count: u64,
}

/// Servers with one status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCount {
    pub status: ServerStatus,
    pub count: u64,
    /// Of those, how many heartbeat within the liveness period.
    pub online: u64,
}

/// API `Dashboard`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DashboardView {
    /// Recordings not deleted.
    pub recordings_total: u64,
    pub recordings_live: u64,
    /// Started within the range.
    pub recordings_in_range: u64,
    pub storage_bytes: u64,
    /// Every day of the range (at most 366), zeros included.
    pub recordings_per_day: Vec<DayCount>,
    /// Recordings started within the range per recording mode.
    pub recordings_by_mode: BTreeMap<RecordingModeKey, u64>,
    pub top_users: Vec<(String, u64)>,
    pub top_applications: Vec<(String, u64)>,
    pub top_hosts: Vec<(String, u64)>,
    pub top_delivery_groups: Vec<(String, u64)>,
    /// Users by the risk of their detections in the range ([`risk_weight`]).
    pub top_risky_users: Vec<(String, u64)>,
    /// Detection rules by their detections in the range.
    pub top_alerts: Vec<(String, u64)>,
    pub servers_by_status: Vec<StatusCount>,
    pub detections_total: u64,
    pub detections_in_range: u64,
    /// Every day of the range (at most 366), zeros included.
    pub detections_per_day: Vec<DayCount>,
    /// Per severity with a detection in the range: every day of the range
    /// (at most 366), zeros included.
    pub detections_per_day_by_severity: BTreeMap<Severity, Vec<DayCount>>,
    pub detections_by_type: BTreeMap<SessionEventType, u64>,
    pub detections_by_severity: BTreeMap<Severity, u64>,
    pub restricted_count: u64,
    pub archived_count: u64,
    pub deleted_count: u64,
    pub pending_archive: u64,
    pub pending_delete: u64,
}

/// [`RecordingMode`] as an ordered map key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordingModeKey(u8);

impl RecordingModeKey {
    pub fn of(mode: RecordingMode) -> Self {
        RecordingModeKey(mode_code(mode))
    }

    pub fn mode(self) -> Option<RecordingMode> {
        mode_from_code(self.0)
    }
}

/// A server's figures in a dashboard's range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerFigures {
    /// Recordings the server started within the range.
    pub recordings_in_range: u64,
    /// Bytes of content it stores (recordings not deleted).
    pub storage_bytes: u64,
}

/// Queries over the dashboard figures.
#[derive(Clone, Debug)]
pub struct DashboardReader {
    tree: TreeRef,
    /// The per-day counters in memory (else they are read from the tree).
    days: Option<Arc<DashboardDays>>,
}

/// Where [`DashboardReader::figures`] reads the per-day counters.
enum DaySource<'a> {
    Tree(&'a Tree),
    Memory(std::sync::RwLockReadGuard<'a, DaysState>),
}

impl DaySource<'_> {
    /// Calls `f(day, rest of the key, count)` for every counter under
    /// `tag scope` whose day is within `first..=last`.
    fn each_day(
        &self,
        tag: &[u8],
        scope: &str,
        first: i64,
        last: i64,
        f: impl FnMut(i64, &[u8], u64),
    ) -> Result<()> {
        match self {
            DaySource::Tree(tree) => each_day_in(tree, tag, scope, first, last, f),
            DaySource::Memory(state) => {
                state.each_day(tag, scope, first, last, f);
                Ok(())
            }
        }
    }

    /// The `n` items under `tag` with the most counted within the days
    /// `first..=last` over `scopes`, most first (ties by name).
    fn top(
        &self,
        tag: &[u8],
        scopes: &[String],
        first: i64,
        last: i64,
        n: usize,
    ) -> Result<Vec<(String, u64)>> {
        match self {
            DaySource::Tree(tree) => {
                let mut counted: HashMap<String, u64> = HashMap::new();
                for scope in scopes {
                    each_day_in(tree, tag, scope, first, last, |_, rest, n| {
                        let item = String::from_utf8_lossy(
                            rest.get(..rest.len().saturating_sub(1)).unwrap_or_default(),
                        );
                        *counted.entry(item.into_owned()).or_default() += n;
                    })?;
                }
                Ok(top(counted, n))
            }
            DaySource::Memory(state) => Ok(state.top(tag, scopes, first, last, n)),
        }
    }
}

/// Calls `f(day, rest of the key, count)` for every counter of `tree`
/// under `tag scope` whose day is within `first..=last`.
fn each_day_in(
    tree: &Tree,
    tag: &[u8],
    scope: &str,
    first: i64,
    last: i64,
    mut f: impl FnMut(i64, &[u8], u64),
) -> Result<()> {
    let prefix = Key::new(tag).str(scope).build();
    let start = [prefix.as_slice(), &codec::i64_key(first)].concat();
    let end = [prefix.as_slice(), &codec::i64_key(last.saturating_add(1))].concat();
    for kv in tree.range(start..end) {
        let (k, val) = kv?;
        let rest = &k[prefix.len()..];
        let day = codec::i64_from_key(rest).unwrap_or(0);
        let n = read_counter(Some(&val)).max(0) as u64;
        if n > 0 {
            f(day, rest.get(8..).unwrap_or_default(), n);
        }
    }
    Ok(())
}

impl DashboardReader {
    /// Queries reading everything from `tree`.
    pub fn new(tree: TreeRef) -> Self {
        DashboardReader { tree, days: None }
    }

    /// Queries reading the per-day counters from `days` (loaded from
    /// `tree` when they hold another tree).
    pub fn with_days(tree: TreeRef, days: Arc<DashboardDays>) -> Self {
        DashboardReader {
            tree,
            days: Some(days),
        }
    }

    /// Loads the per-day counters into memory now (a query would
    /// otherwise load them first).
    pub fn load_days(&self) -> Result<()> {
        if let Some(days) = &self.days {
            drop(days.fresh(&self.tree)?);
        }
        Ok(())
    }

    /// The dashboard of `query.sites` (several sites: the sum of each).
    pub fn view(&self, query: &DashboardQuery) -> Result<DashboardView> {
        self.view_of(query, DashboardParts::ALL)
    }

    /// [`DashboardReader::view`] with only `parts` of the costlier figures
    /// computed (the others left empty or 0): what a client asked for.
    pub fn view_of(&self, query: &DashboardQuery, parts: DashboardParts) -> Result<DashboardView> {
        let mut v = self.figures_of(query, parts)?;
        if parts.pending {
            let (archive, delete) = self.pending_in(&query.sites, query.now)?;
            v.pending_archive = archive;
            v.pending_delete = delete;
        }
        Ok(v)
    }

    /// [`DashboardReader::view`] without `pending_archive` and `pending_delete`
    /// (left 0): everything here depends only on the tree, the sites, the
    /// range's days ([`DashboardQuery::days`]) and `top`, never on `now`
    /// itself, so a reader may keep it for as long as the tree's
    /// checkpoint has not moved.
    pub fn figures(&self, query: &DashboardQuery) -> Result<DashboardView> {
        self.figures_of(query, DashboardParts::ALL)
    }

    fn figures_of(&self, query: &DashboardQuery, parts: DashboardParts) -> Result<DashboardView> {
        let scopes: Vec<String> = match &query.sites {
            SiteScope::All => vec![scope_key(None)],
            SiteScope::Sites(s) => s.iter().map(|id| scope_key(Some(*id))).collect(),
        };
        let mut v = DashboardView::default();
        let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
        let mut detections_per_day: BTreeMap<i64, u64> = BTreeMap::new();
        let mut severity_days: BTreeMap<Severity, BTreeMap<i64, u64>> = BTreeMap::new();
        let lists: [(&[u8], &[u8]); 6] = [
            (b"ud/", b"pud/"),
            (b"ad/", b"pad/"),
            (b"hd/", b"phd/"),
            (b"gd/", b"pgd/"),
            (b"rd/", b"prd/"),
            (b"ld/", b"ld/"),
        ];
        let (first_day, last_day) = query.days();
        let mut statuses: BTreeMap<u8, (u64, u64)> = BTreeMap::new();
        let source = match &self.days {
            Some(days) => DaySource::Memory(days.fresh(&self.tree)?),
            None => DaySource::Tree(&self.tree),
        };
        for s in &scopes {
            let c = |name: &str| -> Result<u64> {
                Ok(counter(&self.tree, &c_key(s, name))?.max(0) as u64)
            };
            v.recordings_total += c("recordings")?;
            v.recordings_live += c("live")?;
            v.storage_bytes += c("storage")?;
            v.restricted_count += c("restricted")?;
            v.archived_count += c("archived")?;
            v.deleted_count += c("deleted")?;
            v.detections_total += c("detections")?;
            source.each_day(b"day/", s, first_day, last_day, |day, _, n| {
                *per_day.entry(day).or_default() += n;
            })?;
            source.each_day(b"dday/", s, first_day, last_day, |day, _, n| {
                *detections_per_day.entry(day).or_default() += n;
            })?;
            source.each_day(b"md/", s, first_day, last_day, |_, rest, n| {
                if let Some(code) = rest.first() {
                    *v.recordings_by_mode
                        .entry(RecordingModeKey(*code))
                        .or_default() += n;
                }
            })?;
            source.each_day(b"dt/", s, first_day, last_day, |_, rest, n| {
                if let Some(t) = rest.first().and_then(|c| type_from_code(*c)) {
                    *v.detections_by_type.entry(t).or_default() += n;
                }
            })?;
            source.each_day(b"dv/", s, first_day, last_day, |day, rest, n| {
                if let Some(sev) = rest.first().and_then(|c| severity_from_code(*c)) {
                    *v.detections_by_severity.entry(sev).or_default() += n;
                    *severity_days
                        .entry(sev)
                        .or_default()
                        .entry(day)
                        .or_default() += n;
                }
            })?;
            for kv in self.tree.scan_prefix(Key::new(b"sv/").str(s).build()) {
                let (k, val) = kv?;
                let n = read_counter(Some(&val)).max(0) as u64;
                if let [.., status, online] = k.as_ref() {
                    let entry = statuses.entry(*status).or_default();
                    entry.0 += n;
                    if *online == 1 {
                        entry.1 += n;
                    }
                }
            }
        }
        let series = |counts: &BTreeMap<i64, u64>| {
            let days = (last_day - first_day + 1).min(366);
            (0..days)
                .map(|i| {
                    let day = last_day - days + 1 + i;
                    DayCount {
                        day: Timestamp(day * Timestamp::MICROS_PER_DAY),
                        count: counts.get(&day).copied().unwrap_or(0),
                    }
                })
                .collect::<Vec<_>>()
        };
        v.recordings_per_day = series(&per_day);
        v.detections_per_day = series(&detections_per_day);
        v.detections_per_day_by_severity = severity_days
            .iter()
            .filter(|(_, days)| days.values().any(|n| *n > 0))
            .map(|(sev, days)| (*sev, series(days)))
            .collect();
        v.recordings_in_range = per_day.values().sum();
        v.detections_in_range = detections_per_day.values().sum();
        v.recordings_by_mode.retain(|_, n| *n > 0);
        v.detections_by_type.retain(|_, n| *n > 0);
        v.detections_by_severity.retain(|_, n| *n > 0);
        let wanted = parts.top_lists;
        let [users, apps, hosts, groups, risky, alerts] = [0, 1, 2, 3, 4, 5].map(|i| {
            let (all, public) = lists[i];
            let tag = if query.sees_restricted { all } else { public };
            if wanted[i] {
                source.top(tag, &scopes, first_day, last_day, query.top)
            } else {
                Ok(Vec::new())
            }
        });
        v.top_users = users?;
        v.top_applications = apps?;
        v.top_hosts = hosts?;
        v.top_delivery_groups = groups?;
        v.top_risky_users = risky?;
        v.top_alerts = alerts?;
        v.servers_by_status = statuses
            .into_iter()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(code, (count, online))| StatusCount {
                status: STATUSES[code as usize % STATUSES.len()],
                count,
                online,
            })
            .collect();
        Ok(v)
    }

    /// A server's recordings started within the days `first..=last` and
    /// the bytes it stores.
    pub fn server_figures(&self, server: Uuid, first: i64, last: i64) -> Result<ServerFigures> {
        let prefix = Key::new(b"srd/").uuid(server).build();
        let start = [prefix.as_slice(), &codec::i64_key(first)].concat();
        let end = [prefix.as_slice(), &codec::i64_key(last.saturating_add(1))].concat();
        let mut recordings_in_range = 0;
        for kv in self.tree.range(start..end) {
            recordings_in_range += read_counter(Some(&kv?.1)).max(0) as u64;
        }
        Ok(ServerFigures {
            recordings_in_range,
            storage_bytes: counter(&self.tree, &server_bytes_key(server))?.max(0) as u64,
        })
    }

    /// Recordings of `sites` due for archive and for delete at `now`.
    pub fn pending_in(&self, sites: &SiteScope, now: Timestamp) -> Result<(u64, u64)> {
        let sites: Vec<Uuid> = match sites {
            SiteScope::All => self.retention_sites()?,
            SiteScope::Sites(s) => s.clone(),
        };
        let (mut to_archive, mut to_delete) = (0, 0);
        for site in sites {
            let (archive, delete) = self.pending(site, now)?;
            to_archive += archive;
            to_delete += delete;
        }
        Ok((to_archive, to_delete))
    }

    fn retention_sites(&self) -> Result<Vec<Uuid>> {
        self.tree
            .scan_prefix(b"ret/")
            .map(|kv| trailing_uuid(&kv?.0))
            .collect()
    }

    /// The site's retention policy as the dashboard knows it.
    pub fn retention_policy(&self, site: Uuid) -> Result<Option<RetentionPolicy>> {
        get(&self.tree, &Key::new(b"ret/").uuid(site).build())
    }

    /// How many recordings of `site` are due for archive and for delete at
    /// `now` (0, 0 without a retention policy): what [`DashboardReader::due`]
    /// lists, read from the sessions' retention entries up to the
    /// policy's cutoffs.
    pub fn pending(&self, site: Uuid, now: Timestamp) -> Result<(u64, u64)> {
        let Some(policy) = self.retention_policy(site)? else {
            return Ok((0, 0));
        };
        let cutoff = |days: Option<u32>| days.map(|d| now.plus_days(-i64::from(d)));
        let (delete_cutoff, archive_cutoff) = (
            cutoff(policy.delete_after_days),
            cutoff(policy.archive_after_days),
        );
        let restricted: &[u8] = if policy.exclude_restricted {
            &[0]
        } else {
            &[0, 1]
        };
        let (mut to_archive, mut to_delete) = (0, 0);
        for &flag in restricted {
            if let Some(cut) = delete_cutoff {
                self.each_retention_entry(b"pk/", site, flag, cut, |_, value| {
                    to_delete += leading_u64(value);
                })?;
            }
            if let Some(cut) = archive_cutoff {
                self.each_retention_entry(b"pe/", site, flag, cut, |_, value| {
                    let kept_end = value.get(8..).and_then(codec::i64_from_key);
                    let deleting = delete_cutoff
                        .zip(kept_end)
                        .is_some_and(|(d, end)| end <= d.0);
                    if !deleting {
                        to_archive += leading_u64(value);
                    }
                })?;
            }
        }
        Ok((to_archive, to_delete))
    }

    /// Calls `f` with the key and value of every `tag site restricted`
    /// retention entry whose end is at or before `cutoff`.
    fn each_retention_entry(
        &self,
        tag: &[u8],
        site: Uuid,
        restricted: u8,
        cutoff: Timestamp,
        mut f: impl FnMut(&[u8], &[u8]),
    ) -> Result<()> {
        for kv in self
            .tree
            .range(retention_range(tag, site, restricted, cutoff))
        {
            let (key, value) = kv?;
            f(&key, &value);
        }
        Ok(())
    }

    /// The domain's `due` over the sessions of `site` whose `pk/` entry
    /// (earliest kept end) is old enough to matter: what a retention run at
    /// `now` would archive and delete. A session with a live part has no
    /// entry and `due` skips it anyway; a policy exempting restricted
    /// sessions reads only the unrestricted entries.
    pub fn due(
        &self,
        site: Uuid,
        policy: &RetentionPolicy,
        now: Timestamp,
    ) -> Result<srs_domain::model::Due> {
        let Some(days) = [policy.archive_after_days, policy.delete_after_days]
            .into_iter()
            .flatten()
            .min()
        else {
            return Ok(Default::default());
        };
        // Any part due (kept and older than the delete days, or ended and
        // older than the archive days) makes the session's earliest kept
        // end at least as old as the nearer of the two cutoffs.
        let cutoff = now.plus_days(-i64::from(days));
        let restricted: &[u8] = if policy.exclude_restricted {
            &[0]
        } else {
            &[0, 1]
        };
        let mut candidates = Vec::new();
        for &flag in restricted {
            let mut sessions = Vec::new();
            self.each_retention_entry(b"pk/", site, flag, cutoff, |key, _| {
                sessions.push(key.to_vec());
            })?;
            for key in sessions {
                let (server, session) = retention_session(&key)?;
                let Some(s) = get::<SessionParts>(&self.tree, &session_key(server, &session))?
                else {
                    continue;
                };
                candidates.extend(s.parts.into_iter().map(|p| RetentionCandidate {
                    recording_id: p.recording_id,
                    server_id: server,
                    session_id: session.clone(),
                    lifecycle: p.lifecycle,
                    ended_at: p.ended_at,
                    restricted: p.restricted,
                }));
            }
        }
        Ok(due(&candidates, policy, now))
    }
}

/// The server and session a retention entry's key names (`tag site
/// restricted end server session`, the tag 3 bytes).
fn retention_session(key: &[u8]) -> Result<(Uuid, String)> {
    let bad = || ProjectionError::Codec(format!("retention entry key {key:?}"));
    let rest = key.get(3 + 16 + 1 + 8..).ok_or_else(bad)?;
    let server = codec::uuid_from_key(rest).ok_or_else(bad)?;
    let session = rest
        .get(16..rest.len().saturating_sub(1))
        .and_then(|s| std::str::from_utf8(s).ok())
        .ok_or_else(bad)?;
    Ok((server, session.to_string()))
}

/// The keys of the `tag site restricted` retention entries whose end is at
/// or before `cutoff`.
fn retention_range(
    tag: &[u8],
    site: Uuid,
    restricted: u8,
    cutoff: Timestamp,
) -> std::ops::Range<Vec<u8>> {
    let prefix = Key::new(tag).uuid(site).u8(restricted).build();
    let end = match cutoff.0.checked_add(1) {
        Some(after) => [prefix.as_slice(), &codec::i64_key(after)].concat(),
        None => codec::prefix_end(&prefix).unwrap_or_default(),
    };
    prefix..end
}

fn top(counts: HashMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    let order = |a: &(String, u64), b: &(String, u64)| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0));
    if n > 0 && v.len() > n {
        v.select_nth_unstable_by(n - 1, order);
        v.truncate(n);
    }
    v.sort_by(order);
    v.truncate(n);
    v
}
