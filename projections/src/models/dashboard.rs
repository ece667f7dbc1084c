//! Dashboard insights, per site and over all sites.
//!
//! Every figure is kept for the recording's site and for `*` (all sites):
//!
//! | key | value |
//! |---|---|
//! | `c/` scope, name | counter: `recordings` (not deleted), `live`, `restricted`, `archived`, `deleted`, `storage` (bytes, not deleted), `detections` |
//! | `day/` scope, day | recordings started that UTC day |
//! | `dday/` scope, day | detections that day |
//! | `u/` scope, user / `ut/` scope, count desc, user | recordings (not deleted) per user, and the same ordered by count |
//! | `a/` scope, app / `at/` scope, count desc, app | recordings (not deleted) per application |
//! | `pu/`, `put/`, `pa/`, `pat/` | the same over recordings neither deleted nor restricted |
//! | `sv/` scope, server state | servers in that state |
//! | `dt/` scope, type / `dv/` scope, severity | detections by type / severity |
//! | `rec/` recording | [`DashRecording`] |
//! | `srv/` server | [`DashServer`] |
//! | `ret/` site | the site's `RetentionPolicy` |
//! | `ec/` site, ended at, recording | - (ended or archived: retention candidates) |
//! | `ses/` server, session, recording | - (the parts of a session) |
//!
//! # Who sees what
//!
//! The top lists name people and applications, so they count only
//! recordings the asker could see: a deleted recording drops out of them
//! for everyone, and a restricted one counts only for the roles that see
//! restricted recordings (ADMIN, PRIVILEGED_PLAYER:
//! [`DashboardQuery::sees_restricted`]); an AUDITOR or a VIEWER gets the
//! lists of unrestricted recordings. The other figures are counts that
//! name nobody (totals, storage, restricted and deleted counts, per day,
//! detections by type and severity) and are the same for every role that
//! reads the dashboard; "recordings per day" counts recordings started
//! that day, deleted ones included (it is activity, like the detections).
//!
//! "Recordings due for archive/delete" applies the domain's `due` at the
//! query's `now` to the sessions that have a part older than the policy's
//! shortest age, so it agrees with what the retention run will do.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    due, DomainEvent, InstallStatus, InstallStep, Lifecycle, RetentionCandidate, RetentionPolicy,
    SessionEventType, Severity,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{
    counter, get, norm, scope_key, severity_code, severity_from_code, trailing_uuid, type_code,
    type_from_code, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{read_counter, Projection, Writes};
use crate::error::{ProjectionError, Result};

/// A server's state as dashboards count it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerState {
    Installing,
    InstallFailed,
    /// Connected and heartbeating.
    Online,
    /// Connected but silent for the liveness period.
    Offline,
    Disconnected,
}

impl ServerState {
    fn code(self) -> u8 {
        self as u8
    }

    fn from_code(c: u8) -> Option<Self> {
        [
            ServerState::Installing,
            ServerState::InstallFailed,
            ServerState::Online,
            ServerState::Offline,
            ServerState::Disconnected,
        ]
        .get(c as usize)
        .copied()
    }
}

/// What the dashboard keeps of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashRecording {
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub lifecycle: Lifecycle,
    pub ended_at: Option<Timestamp>,
    pub restricted: bool,
    pub size_bytes: u64,
    /// Applications counted for it (lowercase).
    pub applications: BTreeSet<String>,
    /// The user counted for it (lowercase).
    pub user: String,
}

impl DashRecording {
    /// Whether it counts in the lists of roles that do not see restricted
    /// recordings.
    fn public(&self) -> bool {
        !self.restricted && self.lifecycle != Lifecycle::Deleted
    }
}

/// What the dashboard keeps of a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashServer {
    pub site_id: Uuid,
    pub state: ServerState,
}

fn scopes(site: Uuid) -> [String; 2] {
    [scope_key(Some(site)), scope_key(None)]
}

fn c_key(scope: &str, name: &str) -> Vec<u8> {
    Key::new(b"c/").str(scope).str(name).build()
}

fn bump(w: &mut Writes, site: Uuid, name: &str, delta: i64) -> Result<()> {
    for s in scopes(site) {
        w.add(c_key(&s, name), delta)?;
    }
    Ok(())
}

/// The ranked counters: per user and per application, over recordings not
/// deleted (`u`, `a`) and over those neither deleted nor restricted (`pu`,
/// `pa`), each counter under its first tag and its rank key under the second.
const RANKED: [(&[u8], &[u8]); 4] = [
    (b"u/", b"ut/"),
    (b"a/", b"at/"),
    (b"pu/", b"put/"),
    (b"pa/", b"pat/"),
];

/// Adds `delta` to a ranked counter (`u`, `a`, `pu`, `pa`); its rank key
/// follows at the commit ([`rank_changed_counters`]).
fn bump_ranked(w: &mut Writes, tag: &[u8], site: Uuid, item: &str, delta: i64) -> Result<()> {
    for s in scopes(site) {
        w.add(Key::new(tag).str(&s).str(item).build(), delta)?;
    }
    Ok(())
}

/// Counts `r`'s user and applications `delta` times in the lists over
/// recordings not deleted (`all`) and over public ones (`public`).
fn count_in_lists(
    w: &mut Writes,
    r: &DashRecording,
    all: bool,
    public: bool,
    delta: i64,
) -> Result<()> {
    let tags: &[(&[u8], &[u8], bool)] = &[(b"u/", b"a/", all), (b"pu/", b"pa/", public)];
    for (users, apps, counted) in tags {
        if !counted {
            continue;
        }
        bump_ranked(w, users, r.site_id, &r.user, delta)?;
        for app in &r.applications {
            bump_ranked(w, apps, r.site_id, app, delta)?;
        }
    }
    Ok(())
}

/// Moves the rank key of every ranked counter the batch changed from its
/// stored count to its new one: once per counter and batch, however many
/// events bumped it.
fn rank_changed_counters(w: &mut Writes) -> Result<()> {
    for (counter_tag, rank_tag) in RANKED {
        for key in w.written_keys(counter_tag) {
            let before = read_counter(w.stored(&key)?.as_deref());
            let now = read_counter(w.get(&key)?.as_deref());
            if before == now {
                continue;
            }
            // The counter key is `tag scope\0 item\0`; its rank key puts
            // the count (descending) between the scope and the item.
            let rest = &key[counter_tag.len()..];
            let Some(split) = rest.iter().position(|b| *b == 0).map(|i| i + 1) else {
                return Err(ProjectionError::Invariant(format!(
                    "ranked counter key {key:?} has no scope"
                )));
            };
            let (scope, item) = rest.split_at(split);
            let rank = |count: i64| {
                Key::new(rank_tag)
                    .bytes(scope)
                    .u64_desc(count as u64)
                    .bytes(item)
                    .build()
            };
            if before > 0 {
                w.remove(rank(before))?;
            }
            if now > 0 {
                w.insert(rank(now), Vec::new())?;
            }
        }
    }
    Ok(())
}

fn rec_key(id: Uuid) -> Vec<u8> {
    Key::new(b"rec/").uuid(id).build()
}

fn candidate_key(r: &DashRecording, id: Uuid) -> Option<Vec<u8>> {
    let kept = matches!(r.lifecycle, Lifecycle::Ended | Lifecycle::Archived);
    r.ended_at
        .filter(|_| kept)
        .map(|end| Key::new(b"ec/").uuid(r.site_id).i64(end.0).uuid(id).build())
}

/// The projection that maintains [`Dashboard`].
pub struct DashboardProjection;

impl DashboardProjection {
    pub const NAME: &'static str = "dashboard";
}

fn set_server(w: &mut Writes, server: Uuid, site: Uuid, state: ServerState) -> Result<()> {
    let key = Key::new(b"srv/").uuid(server).build();
    if let Some(old) = w.get_value::<DashServer>(&key)? {
        if old.state == state {
            return Ok(());
        }
        for s in scopes(old.site_id) {
            w.add(Key::new(b"sv/").str(&s).u8(old.state.code()).build(), -1)?;
        }
    }
    for s in scopes(site) {
        w.add(Key::new(b"sv/").str(&s).u8(state.code()).build(), 1)?;
    }
    w.put_value(
        key,
        &DashServer {
            site_id: site,
            state,
        },
    )
}

fn server_state(w: &Writes, server: Uuid) -> Result<Option<ServerState>> {
    Ok(
        w.get_value::<DashServer>(&Key::new(b"srv/").uuid(server).build())?
            .map(|s| s.state),
    )
}

impl Projection<DomainEvent> for DashboardProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: top lists leave deleted recordings out, and have twins over
        // unrestricted ones.
        2
    }

    fn before_commit(&self, w: &mut Writes) -> Result<()> {
        rank_changed_counters(w)
    }

    fn apply(&self, w: &mut Writes, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        let event = &e.payload;
        match event {
            E::ServerConnected {
                server_id, site_id, ..
            } => return set_server(w, *server_id, *site_id, ServerState::Online),
            E::ServerInstallRequested {
                server_id, site_id, ..
            } => return set_server(w, *server_id, *site_id, ServerState::Installing),
            E::InstallProgressReported {
                server_id,
                site_id,
                step,
                status,
                ..
            } => {
                let state = match (step, status) {
                    (_, InstallStatus::Failed) => Some(ServerState::InstallFailed),
                    (InstallStep::Connected, InstallStatus::Succeeded) => Some(ServerState::Online),
                    _ => None,
                };
                return match state {
                    Some(s) => set_server(w, *server_id, *site_id, s),
                    None => Ok(()),
                };
            }
            E::ServerDisconnected {
                server_id, site_id, ..
            } => return set_server(w, *server_id, *site_id, ServerState::Disconnected),
            E::ServerWentOffline {
                server_id, site_id, ..
            } => {
                return match server_state(w, *server_id)? {
                    Some(ServerState::Online) => {
                        set_server(w, *server_id, *site_id, ServerState::Offline)
                    }
                    _ => Ok(()),
                };
            }
            E::ServerCameOnline {
                server_id, site_id, ..
            } => {
                return match server_state(w, *server_id)? {
                    Some(ServerState::Offline) => {
                        set_server(w, *server_id, *site_id, ServerState::Online)
                    }
                    _ => Ok(()),
                };
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
                applications,
                started_at,
                ..
            } => {
                bump(w, *site_id, "recordings", 1)?;
                bump(w, *site_id, "live", 1)?;
                for s in scopes(*site_id) {
                    w.add(
                        Key::new(b"day/")
                            .str(&s)
                            .i64(started_at.day_number())
                            .build(),
                        1,
                    )?;
                }
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
                    ended_at: None,
                    restricted: false,
                    size_bytes: 0,
                    applications: apps,
                    user: norm(user),
                };
                count_in_lists(w, &recording, true, true, 1)?;
                w.insert(
                    Key::new(b"ses/")
                        .uuid(*server_id)
                        .str(session_id)
                        .uuid(*recording_id)
                        .build(),
                    Vec::new(),
                )?;
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
                counted = Some((r.site_id, r.public()));
                Ok(true)
            })?
            .ok_or_else(unknown)?;
            if let (Some((site, public)), Some(app)) = (counted, app) {
                bump_ranked(w, b"a/", site, &app, 1)?;
                if public {
                    bump_ranked(w, b"pa/", site, &app, 1)?;
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
                ..
            }
            | E::EventDetectedSealed {
                event_type,
                severity,
                ..
            } => {
                bump(w, site, "detections", 1)?;
                for s in scopes(site) {
                    w.add(
                        Key::new(b"dt/").str(&s).u8(type_code(*event_type)).build(),
                        1,
                    )?;
                    w.add(
                        Key::new(b"dv/")
                            .str(&s)
                            .u8(severity_code(*severity))
                            .build(),
                        1,
                    )?;
                    w.add(
                        Key::new(b"dday/")
                            .str(&s)
                            .i64(e.recorded_at.day_number())
                            .build(),
                        1,
                    )?;
                }
            }
            E::ContentChunkStored { size, .. } if not_deleted => {
                r.size_bytes = r.size_bytes.saturating_add(*size);
                bump(w, site, "storage", i64::try_from(*size).unwrap_or(i64::MAX))?;
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
                bump(
                    w,
                    site,
                    "storage",
                    -i64::try_from(r.size_bytes).unwrap_or(i64::MAX),
                )?;
                r.lifecycle = Lifecycle::Deleted;
                r.size_bytes = 0;
            }
            _ => return Ok(()),
        }
        if r != old {
            if let Some(k) = candidate_key(&old, id) {
                w.remove(k)?;
            }
            if let Some(k) = candidate_key(&r, id) {
                w.insert(k, Vec::new())?;
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

/// Recordings started on one UTC day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DayCount {
    /// Midnight UTC of the day.
    pub day: Timestamp,
    pub count: u64,
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
    pub top_users: Vec<(String, u64)>,
    pub top_applications: Vec<(String, u64)>,
    pub servers_by_status: BTreeMap<ServerState, u64>,
    pub detections_total: u64,
    pub detections_in_range: u64,
    pub detections_by_type: BTreeMap<SessionEventType, u64>,
    pub detections_by_severity: BTreeMap<Severity, u64>,
    pub restricted_count: u64,
    pub archived_count: u64,
    pub deleted_count: u64,
    pub pending_archive: u64,
    pub pending_delete: u64,
}

/// Queries over the dashboard figures.
#[derive(Clone, Debug)]
pub struct Dashboard {
    tree: TreeRef,
}

impl Dashboard {
    pub fn new(tree: TreeRef) -> Self {
        Dashboard { tree }
    }

    /// The dashboard of `query.sites` (several sites: the sum of each;
    /// their top lists are merged from each site's top `4 * top`).
    pub fn view(&self, query: &DashboardQuery) -> Result<DashboardView> {
        let mut v = self.figures(query)?;
        let (archive, delete) = self.pending_in(&query.sites, query.now)?;
        v.pending_archive = archive;
        v.pending_delete = delete;
        Ok(v)
    }

    /// [`Dashboard::view`] without `pending_archive` and `pending_delete`
    /// (left 0): everything here depends only on the tree, the sites, the
    /// range's days ([`DashboardQuery::days`]) and `top`, never on `now`
    /// itself, so a reader may keep it for as long as the tree's
    /// checkpoint has not moved.
    pub fn figures(&self, query: &DashboardQuery) -> Result<DashboardView> {
        let scopes: Vec<String> = match &query.sites {
            SiteScope::All => vec![scope_key(None)],
            SiteScope::Sites(s) => s.iter().map(|id| scope_key(Some(*id))).collect(),
        };
        let mut v = DashboardView::default();
        let mut users: BTreeMap<String, u64> = BTreeMap::new();
        let mut apps: BTreeMap<String, u64> = BTreeMap::new();
        let mut per_day: BTreeMap<i64, u64> = BTreeMap::new();
        let (first_day, last_day) = query.days();
        let fetch = if scopes.len() == 1 {
            query.top
        } else {
            query.top * 4
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
            for (tag, target) in [(&b"day/"[..], &mut per_day)] {
                let prefix = Key::new(tag).str(s).build();
                let start = [prefix.as_slice(), &codec::i64_key(first_day)].concat();
                let end = [prefix.as_slice(), &codec::i64_key(last_day + 1)].concat();
                for kv in self.tree.range(start..end) {
                    let (k, val) = kv?;
                    let day = codec::i64_from_key(&k[prefix.len()..]).unwrap_or(0);
                    *target.entry(day).or_default() += read_counter(Some(&val)).max(0) as u64;
                }
            }
            v.detections_in_range += self.sum_days(b"dday/", s, first_day, last_day)?;
            let (user_ranks, app_ranks): (&[u8], &[u8]) = if query.sees_restricted {
                (b"ut/", b"at/")
            } else {
                (b"put/", b"pat/")
            };
            for (tag, target) in [(user_ranks, &mut users), (app_ranks, &mut apps)] {
                let prefix = Key::new(tag).str(s).build();
                for kv in self.tree.scan_prefix(&prefix).take(fetch) {
                    let (k, _) = kv?;
                    let rest = &k[prefix.len()..];
                    let n = codec::u64_from_desc_key(rest).unwrap_or(0);
                    let name = String::from_utf8_lossy(
                        rest.get(8..rest.len().saturating_sub(1))
                            .unwrap_or_default(),
                    )
                    .into_owned();
                    *target.entry(name).or_default() += n;
                }
            }
            for kv in self.tree.scan_prefix(Key::new(b"sv/").str(s).build()) {
                let (k, val) = kv?;
                if let Some(state) = k.last().and_then(|c| ServerState::from_code(*c)) {
                    *v.servers_by_status.entry(state).or_default() +=
                        read_counter(Some(&val)).max(0) as u64;
                }
            }
            for kv in self.tree.scan_prefix(Key::new(b"dt/").str(s).build()) {
                let (k, val) = kv?;
                if let Some(t) = k.last().and_then(|c| type_from_code(*c)) {
                    *v.detections_by_type.entry(t).or_default() +=
                        read_counter(Some(&val)).max(0) as u64;
                }
            }
            for kv in self.tree.scan_prefix(Key::new(b"dv/").str(s).build()) {
                let (k, val) = kv?;
                if let Some(sev) = k.last().and_then(|c| severity_from_code(*c)) {
                    *v.detections_by_severity.entry(sev).or_default() +=
                        read_counter(Some(&val)).max(0) as u64;
                }
            }
        }
        let days = (last_day - first_day + 1).min(366);
        v.recordings_per_day = (0..days)
            .map(|i| {
                let day = last_day - days + 1 + i;
                DayCount {
                    day: Timestamp(day * Timestamp::MICROS_PER_DAY),
                    count: per_day.get(&day).copied().unwrap_or(0),
                }
            })
            .collect();
        v.recordings_in_range = per_day.values().sum();
        v.top_users = top(users, query.top);
        v.top_applications = top(apps, query.top);
        Ok(v)
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

    fn sum_days(&self, tag: &[u8], scope: &str, first: i64, last: i64) -> Result<u64> {
        let prefix = Key::new(tag).str(scope).build();
        let start = [prefix.as_slice(), &codec::i64_key(first)].concat();
        let end = [prefix.as_slice(), &codec::i64_key(last + 1)].concat();
        let mut n = 0;
        for kv in self.tree.range(start..end) {
            let (_, val) = kv?;
            n += read_counter(Some(&val)).max(0) as u64;
        }
        Ok(n)
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
    /// `now` (0, 0 without a retention policy).
    pub fn pending(&self, site: Uuid, now: Timestamp) -> Result<(u64, u64)> {
        let Some(policy) = self.retention_policy(site)? else {
            return Ok((0, 0));
        };
        let due = self.due(site, &policy, now)?;
        Ok((due.to_archive.len() as u64, due.to_delete.len() as u64))
    }

    /// The domain's `due` over the sessions of `site` that have a part old
    /// enough to matter: what a retention run at `now` would archive and
    /// delete.
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
        let cutoff = now.plus_days(-i64::from(days));
        let prefix = Key::new(b"ec/").uuid(site).build();
        let end = [
            prefix.as_slice(),
            &codec::i64_key(cutoff.0.saturating_add(1)),
        ]
        .concat();
        let mut sessions: BTreeSet<(Uuid, String)> = BTreeSet::new();
        for kv in self.tree.range(prefix.clone()..end) {
            let id = trailing_uuid(&kv?.0)?;
            if let Some(r) = get::<DashRecording>(&self.tree, &rec_key(id))? {
                sessions.insert((r.server_id, r.session_id));
            }
        }
        let mut candidates = Vec::new();
        for (server, session) in sessions {
            for kv in self
                .tree
                .scan_prefix(Key::new(b"ses/").uuid(server).str(&session).build())
            {
                let id = trailing_uuid(&kv?.0)?;
                if let Some(r) = get::<DashRecording>(&self.tree, &rec_key(id))? {
                    candidates.push(RetentionCandidate {
                        recording_id: id,
                        server_id: r.server_id,
                        session_id: r.session_id,
                        lifecycle: r.lifecycle,
                        ended_at: r.ended_at,
                        restricted: r.restricted,
                    });
                }
            }
        }
        Ok(due(&candidates, policy, now))
    }
}

fn top(counts: BTreeMap<String, u64>, n: usize) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = counts.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(n);
    v
}
