//! The recordings catalogue: search with every `RecordingFilter` field,
//! newest first or longest first, keyset pagination, total count.
//!
//! | key | value |
//! |---|---|
//! | `r/` id | [`RecordingRow`] |
//! | `o/` started desc, id | - (every recording not deleted, newest first) |
//! | `d/` duration desc, started desc, id | - (longest first) |
//! | `i/` field, value, started desc, id | - (secondary indexes) |
//! | `n/` field, value | how many recordings the index entry lists |
//! | `t/` id, comment id | a comment's text, lowercase (text search) |
//!
//! Index fields: `s` site, `v` server, `u` user (and the bare name without
//! domain), `c` client IP, `h` host, `a` application, `g` delivery group,
//! `l` live, `x` restricted, `e` has detections, `m` highest severity.
//! Values are lowercase; a filter value matches exactly, ignoring case.
//!
//! **Query plan.** Every index key ends with the same order suffix
//! `(started desc, id)`, so the filter's indexed constraints are answered
//! from the keys alone: the values of one constraint are merged (a union,
//! e.g. two users), and the constraints are joined by a merge-join that
//! seeks each to the largest current suffix (an intersection), in page
//! order, from the cursor and within the time range. The constraint
//! listing the fewest recordings (from the `n/` counters) leads. A row is
//! decoded only for the page it returns, or when the keys cannot decide:
//! the filter sets a field no key holds (duration, text, `live`,
//! `restricted` or `hasDetections` false), or the viewer's visibility
//! depends on more than the site scope (which is itself a constraint). So
//! the total of an indexed filter for ADMIN and PRIVILEGED_PLAYER is
//! counted from the keys. Without an indexed field the `o/` order is
//! walked; ordered by duration the `d/` order is walked, or with a
//! selective index (at most [`SMALL_CANDIDATE_SET`] entries) the joined
//! candidates are collected and sorted instead. Deleted recordings are in
//! no index: only `recording(id)` still answers them.
//!
//! **Cursors** are the order key of the last item: a page never repeats or
//! skips an item that existed when the previous page was read, whatever is
//! inserted meanwhile (new recordings sort before the cursor).

use std::collections::BTreeSet;
use std::ops::Bound;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    DataPoints, DomainEvent, Lifecycle, RecordingDecision, RecordingFacts, RecordingMode, Role,
    Severity,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::access::{Viewer, Visibility};
use super::util::{
    counter, cursor_decode, cursor_encode, get, merged, norm, page_size, severity_code,
    SuffixBounds, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{Projection, Writes};
use crate::error::{ProjectionError, Result};

/// Below this many index entries a duration-ordered query sorts the
/// candidates instead of walking the duration order.
pub const SMALL_CANDIDATE_SET: i64 = 4096;

/// Why and by whom a recording is restricted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestrictionInfo {
    pub reason: String,
    pub by: String,
    pub at: Timestamp,
}

/// A recording as the catalogue holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordingRow {
    pub id: Uuid,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub part: u32,
    pub previous_recording_id: Option<Uuid>,
    pub user: String,
    pub domain: Option<String>,
    pub groups: Vec<String>,
    pub client_name: Option<String>,
    pub client_ip: Option<String>,
    pub host: String,
    pub delivery_group: Option<String>,
    pub mode: RecordingMode,
    pub decision: RecordingDecision,
    pub lifecycle: Lifecycle,
    pub started_at: Timestamp,
    pub restriction: Option<RestrictionInfo>,
    /// The highest severity detected, if any.
    pub max_severity: Option<Severity>,
    pub comment_count: u64,
    pub plays: u64,
    /// Figures derived by the domain's fold: duration, events by type,
    /// detections, size, applications (published and started).
    pub points: DataPoints,
}

impl RecordingRow {
    pub fn live(&self) -> bool {
        self.lifecycle == Lifecycle::Live
    }

    pub fn restricted(&self) -> bool {
        self.restriction.is_some()
    }

    pub fn archived(&self) -> bool {
        self.lifecycle == Lifecycle::Archived
    }

    pub fn deleted(&self) -> bool {
        self.lifecycle == Lifecycle::Deleted
    }

    pub fn ended_at(&self) -> Option<Timestamp> {
        self.points.ended_at
    }

    pub fn duration_sec(&self) -> u64 {
        self.points.duration_ms / 1000
    }

    /// Published applications and every application started.
    pub fn applications(&self) -> Vec<String> {
        self.points.applications.iter().cloned().collect()
    }

    /// What access rules look at.
    pub fn facts(&self) -> RecordingFacts {
        RecordingFacts {
            recording_id: self.id,
            site_id: self.site_id,
            server_id: self.server_id,
            user: self.user.clone(),
            groups: self.groups.clone(),
            host: self.host.clone(),
            delivery_group: self.delivery_group.clone(),
            applications: self.applications(),
            restricted: self.restricted(),
            archived: self.archived(),
            deleted: self.deleted(),
        }
    }

    /// The index entries of this row: `(field, value)`.
    fn index_entries(&self) -> BTreeSet<(u8, String)> {
        let mut out = BTreeSet::new();
        if self.deleted() {
            return out;
        }
        out.insert((b's', self.site_id.to_string()));
        out.insert((b'v', self.server_id.to_string()));
        out.insert((b'u', norm(&self.user)));
        out.insert((b'u', norm(bare_user(&self.user))));
        if let Some(ip) = &self.client_ip {
            out.insert((b'c', norm(ip)));
        }
        out.insert((b'h', norm(&self.host)));
        for app in &self.points.applications {
            out.insert((b'a', norm(app)));
        }
        if let Some(g) = &self.delivery_group {
            out.insert((b'g', norm(g)));
        }
        if self.live() {
            out.insert((b'l', "1".into()));
        }
        if self.restricted() {
            out.insert((b'x', "1".into()));
        }
        if self.points.detection_count > 0 {
            out.insert((b'e', "1".into()));
        }
        if let Some(s) = self.max_severity {
            out.insert((b'm', severity_code(s).to_string()));
        }
        out
    }

    fn order_keys(&self) -> Vec<Vec<u8>> {
        if self.deleted() {
            return Vec::new();
        }
        vec![
            Key::new(b"o/")
                .i64_desc(self.started_at.0)
                .uuid(self.id)
                .build(),
            Key::new(b"d/")
                .u64_desc(self.points.duration_ms)
                .i64_desc(self.started_at.0)
                .uuid(self.id)
                .build(),
        ]
    }

    fn order_suffix(&self) -> Vec<u8> {
        Key::new(b"")
            .i64_desc(self.started_at.0)
            .uuid(self.id)
            .build()
    }

    fn duration_suffix(&self) -> Vec<u8> {
        Key::new(b"")
            .u64_desc(self.points.duration_ms)
            .i64_desc(self.started_at.0)
            .uuid(self.id)
            .build()
    }
}

/// `DOMAIN\user` or `user@domain` without the domain.
fn bare_user(user: &str) -> &str {
    let user = user.rsplit('\\').next().unwrap_or(user);
    user.split('@').next().unwrap_or(user)
}

fn row_key(id: Uuid) -> Vec<u8> {
    Key::new(b"r/").uuid(id).build()
}

fn index_prefix(field: u8, value: &str) -> Vec<u8> {
    Key::new(b"i/").u8(field).str(value).build()
}

fn count_key(field: u8, value: &str) -> Vec<u8> {
    Key::new(b"n/").u8(field).str(value).build()
}

/// Every key `row` puts in the tree besides its own.
fn row_index_keys(row: &RecordingRow) -> (BTreeSet<Vec<u8>>, BTreeSet<(u8, String)>) {
    let entries = row.index_entries();
    let suffix = row.order_suffix();
    let mut keys: BTreeSet<Vec<u8>> = entries
        .iter()
        .map(|(f, v)| [index_prefix(*f, v), suffix.clone()].concat())
        .collect();
    keys.extend(row.order_keys());
    (keys, entries)
}

/// Writes `new` (replacing `old`), moving only the index entries that changed.
fn store_row(w: &mut Writes, old: Option<&RecordingRow>, new: &RecordingRow) -> Result<()> {
    let (old_keys, old_entries) = old.map(row_index_keys).unwrap_or_default();
    let (new_keys, new_entries) = row_index_keys(new);
    for k in old_keys.difference(&new_keys) {
        w.remove(k.clone())?;
    }
    for k in new_keys.difference(&old_keys) {
        w.insert(k.clone(), Vec::new())?;
    }
    for (f, v) in old_entries.difference(&new_entries) {
        w.add(count_key(*f, v), -1)?;
    }
    for (f, v) in new_entries.difference(&old_entries) {
        w.add(count_key(*f, v), 1)?;
    }
    let all_before = old.is_some_and(|r| !r.deleted());
    match (all_before, !new.deleted()) {
        (false, true) => {
            w.add(b"n/*".to_vec(), 1)?;
        }
        (true, false) => {
            w.add(b"n/*".to_vec(), -1)?;
        }
        _ => {}
    }
    w.put_value(row_key(new.id), new)
}

/// The projection that maintains [`Catalogue`].
pub struct CatalogueProjection;

impl CatalogueProjection {
    pub const NAME: &'static str = "catalogue";
}

impl Projection<DomainEvent> for CatalogueProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Writes, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        let event = &e.payload;
        if let E::RecordingStarted {
            recording_id,
            site_id,
            server_id,
            session_id,
            part,
            previous_recording_id,
            user,
            domain,
            groups,
            client_name,
            client_ip,
            host,
            delivery_group,
            mode,
            decision,
            started_at,
            ..
        } = event
        {
            if w.contains(&row_key(*recording_id))? {
                return Err(ProjectionError::Invariant(format!(
                    "recording {recording_id} started twice"
                )));
            }
            let mut points = DataPoints::default();
            points.apply(event);
            let row = RecordingRow {
                id: *recording_id,
                site_id: *site_id,
                server_id: *server_id,
                session_id: session_id.clone(),
                part: *part,
                previous_recording_id: *previous_recording_id,
                user: user.clone(),
                domain: domain.clone(),
                groups: groups.clone(),
                client_name: client_name.clone(),
                client_ip: client_ip.clone(),
                host: host.clone(),
                delivery_group: delivery_group.clone(),
                mode: *mode,
                decision: decision.clone(),
                lifecycle: Lifecycle::Live,
                started_at: *started_at,
                restriction: None,
                max_severity: None,
                comment_count: 0,
                plays: 0,
                points,
            };
            return store_row(w, None, &row);
        }
        // Declined sessions have no recording.
        if matches!(event, E::RecordingDeclined { .. }) {
            return Ok(());
        }
        let Some(id) = event.recording_id() else {
            return Ok(());
        };
        let old: RecordingRow = w.get_value(&row_key(id))?.ok_or_else(|| {
            ProjectionError::Invariant(format!("{} for unknown recording {id}", event.name()))
        })?;
        let mut row = old.clone();
        match event {
            E::SessionEventRecorded { .. } | E::ContentChunkStored { .. } => {
                row.points.apply(event)
            }
            E::EventDetected { severity, .. } => {
                row.points.apply(event);
                row.max_severity = row.max_severity.max(Some(*severity));
            }
            E::RecordingEnded { .. } => {
                row.points.apply(event);
                row.lifecycle = Lifecycle::Ended;
            }
            E::RecordingRestricted { reason, by, at, .. } => {
                row.restriction = Some(RestrictionInfo {
                    reason: reason.clone(),
                    by: by.clone(),
                    at: *at,
                })
            }
            E::RecordingRestrictionRemoved { .. } => row.restriction = None,
            E::CommentAdded {
                comment_id, text, ..
            } => {
                row.comment_count += 1;
                w.insert(
                    Key::new(b"t/").uuid(id).uuid(*comment_id).build(),
                    norm(text).into_bytes(),
                )?;
            }
            E::CommentDeleted { comment_id, .. } => {
                let key = Key::new(b"t/").uuid(id).uuid(*comment_id).build();
                if w.contains(&key)? {
                    row.comment_count = row.comment_count.saturating_sub(1);
                    w.remove(key)?;
                }
            }
            E::RecordingPlayed { .. } => row.plays += 1,
            E::RecordingArchived { .. } => row.lifecycle = Lifecycle::Archived,
            E::RecordingRestored { .. } => row.lifecycle = Lifecycle::Ended,
            E::RecordingDeleted { .. } => row.lifecycle = Lifecycle::Deleted,
            _ => return Ok(()),
        }
        if row != old {
            store_row(w, Some(&old), &row)?;
        }
        Ok(())
    }
}

/// API `RecordingFilter`. Lists match any of their values; set fields
/// combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingFilter {
    pub site_id: Option<Uuid>,
    pub server_id: Option<Uuid>,
    pub users: Vec<String>,
    pub client_ips: Vec<String>,
    pub hosts: Vec<String>,
    pub applications: Vec<String>,
    pub delivery_groups: Vec<String>,
    /// Started at or after.
    pub started_after: Option<Timestamp>,
    /// Started before.
    pub started_before: Option<Timestamp>,
    pub min_duration_sec: Option<u64>,
    pub max_duration_sec: Option<u64>,
    pub live: Option<bool>,
    pub has_detections: Option<bool>,
    pub min_severity: Option<Severity>,
    pub restricted: Option<bool>,
    /// Case-insensitive substring of user, domain, host, applications,
    /// client name or IP, or a comment.
    pub text: Option<String>,
}

/// API `RecordingOrder`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RecordingOrder {
    /// By start time, newest first.
    #[default]
    NewestFirst,
    /// By duration, longest first (then newest first).
    LongestFirst,
}

/// One search: filter, order, page.
#[derive(Clone, Debug, Default)]
pub struct RecordingQuery {
    pub filter: RecordingFilter,
    pub order: RecordingOrder,
    /// Page size: default 50, at most 500.
    pub first: Option<usize>,
    /// A cursor from a previous page of the same order.
    pub after: Option<String>,
    /// Count every match (costs a walk of the candidates unless the filter
    /// is at most a site and the viewer sees every recording of it).
    pub with_total: bool,
}

/// One recording of a page.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingHit {
    pub cursor: String,
    pub row: RecordingRow,
    pub visibility: Visibility,
}

/// A page of a search (API `RecordingConnection`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingPage {
    pub items: Vec<RecordingHit>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
    pub total_count: Option<u64>,
}

/// An indexed field constraint: any of `values`.
struct Constraint {
    field: u8,
    values: Vec<String>,
}

/// `next` steps a seek tries before it reopens the range further on:
/// neighbours are cheaper to step to, far keys cheaper to jump to.
const SEEK_STEPS: usize = 8;

/// A constraint listing this many times more recordings than the leading
/// one is probed per candidate rather than walked: its matches lie further
/// apart than a seek steps, so walking it would reopen a range (at least
/// a lookup) per candidate anyway.
const PROBE_RATIO: i64 = SEEK_STEPS as i64;

/// The order suffixes under one index prefix, ascending, with seeking.
struct Run {
    prefix: Vec<u8>,
    upper: Bound<Vec<u8>>,
    iter: sled::Iter,
    head: Option<Vec<u8>>,
}

impl Run {
    /// The suffixes under `prefix` from `lower` (a suffix and whether it is
    /// included) and below `bounds.upper`.
    fn open(
        tree: &sled::Tree,
        prefix: Vec<u8>,
        lower: Option<&(Vec<u8>, bool)>,
        bounds: &SuffixBounds,
    ) -> Result<Run> {
        let from = match lower {
            Some((l, true)) => Bound::Included([prefix.as_slice(), l].concat()),
            Some((l, false)) => Bound::Excluded([prefix.as_slice(), l].concat()),
            None => Bound::Included(prefix.clone()),
        };
        let upper = match (&bounds.upper, codec::prefix_end(&prefix)) {
            (Some(u), _) => Bound::Excluded([prefix.as_slice(), u].concat()),
            (None, Some(end)) => Bound::Excluded(end),
            (None, None) => Bound::Unbounded,
        };
        let iter = tree.range::<Vec<u8>, _>((from, upper.clone()));
        let mut run = Run {
            prefix,
            upper,
            iter,
            head: None,
        };
        run.advance()?;
        Ok(run)
    }

    fn advance(&mut self) -> Result<()> {
        self.head = match self.iter.next() {
            Some(kv) => Some(kv?.0[self.prefix.len()..].to_vec()),
            None => None,
        };
        Ok(())
    }

    /// Moves to the first suffix at or after `target`.
    fn seek(&mut self, tree: &sled::Tree, target: &[u8]) -> Result<()> {
        for _ in 0..SEEK_STEPS {
            match &self.head {
                Some(h) if h.as_slice() < target => self.advance()?,
                _ => return Ok(()),
            }
        }
        if self.head.as_deref().is_some_and(|h| h < target) {
            let from = Bound::Included([self.prefix.as_slice(), target].concat());
            self.iter = tree.range::<Vec<u8>, _>((from, self.upper.clone()));
            self.advance()?;
        }
        Ok(())
    }
}

/// The union of one constraint's values: the suffixes under any of them.
struct AnyOf {
    runs: Vec<Run>,
}

impl AnyOf {
    fn head(&self) -> Option<&[u8]> {
        self.runs.iter().filter_map(|r| r.head.as_deref()).min()
    }

    /// Past the current head (in every run holding it: a recording can be
    /// under two values, e.g. `CORP\bob` and `bob`).
    fn advance(&mut self) -> Result<()> {
        let Some(head) = self.head().map(<[u8]>::to_vec) else {
            return Ok(());
        };
        for run in &mut self.runs {
            if run.head.as_deref() == Some(head.as_slice()) {
                run.advance()?;
            }
        }
        Ok(())
    }

    fn seek(&mut self, tree: &sled::Tree, target: &[u8]) -> Result<()> {
        for run in &mut self.runs {
            run.seek(tree, target)?;
        }
        Ok(())
    }
}

/// The suffixes in every one of several unions, ascending: a merge-join
/// that seeks each union to the largest head until all agree, so a
/// selective constraint skips over the bulk of a large one.
///
/// A constraint much larger than the leading one is probed instead: one
/// point lookup per candidate is cheaper than seeking through it.
struct AllOf<'a> {
    tree: &'a sled::Tree,
    parts: Vec<AnyOf>,
    /// Per probed constraint, the index prefixes of its values.
    probes: Vec<Vec<Vec<u8>>>,
}

impl AllOf<'_> {
    fn step(&mut self) -> Result<Option<Vec<u8>>> {
        'candidates: loop {
            let Some(suffix) = self.walk()? else {
                return Ok(None);
            };
            for prefixes in &self.probes {
                let mut found = false;
                for p in prefixes {
                    if self.tree.contains_key([p.as_slice(), &suffix].concat())? {
                        found = true;
                        break;
                    }
                }
                if !found {
                    continue 'candidates;
                }
            }
            return Ok(Some(suffix));
        }
    }

    /// The next suffix in every walked constraint.
    fn walk(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(first) = self.parts.first() else {
            return Ok(None);
        };
        let Some(mut target) = first.head().map(<[u8]>::to_vec) else {
            return Ok(None);
        };
        let n = self.parts.len();
        // How many parts in a row (ending at `i`) stand at `target`.
        let (mut i, mut agreed) = (0, 1);
        while agreed < n {
            i = (i + 1) % n;
            let part = &mut self.parts[i];
            part.seek(self.tree, &target)?;
            match part.head() {
                None => return Ok(None),
                Some(h) if h == target.as_slice() => agreed += 1,
                Some(h) => {
                    target = h.to_vec();
                    agreed = 1;
                }
            }
        }
        for part in &mut self.parts {
            part.advance()?;
        }
        Ok(Some(target))
    }
}

impl Iterator for AllOf<'_> {
    type Item = Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}

/// Queries over the catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    tree: TreeRef,
}

impl Catalogue {
    pub fn new(tree: TreeRef) -> Self {
        Catalogue { tree }
    }

    /// One recording, whoever may see it (deleted ones too).
    pub fn get(&self, id: Uuid) -> Result<Option<RecordingRow>> {
        get(&self.tree, &row_key(id))
    }

    /// One recording if `viewer` may see it (API `recording(id)`).
    pub fn get_visible(
        &self,
        viewer: &Viewer,
        id: Uuid,
    ) -> Result<Option<(RecordingRow, Visibility)>> {
        Ok(self.get(id)?.and_then(|row| {
            let v = viewer.visibility(&row.facts());
            v.is_visible().then_some((row, v))
        }))
    }

    /// Recordings that are not deleted.
    pub fn count(&self) -> Result<u64> {
        Ok(counter(&self.tree, b"n/*")?.max(0) as u64)
    }

    fn index_count(&self, field: u8, value: &str) -> Result<i64> {
        counter(&self.tree, &count_key(field, value))
    }

    /// The indexed constraints of `filter` and of the viewer's site scope;
    /// `None` when they exclude everything.
    fn constraints(&self, viewer: &Viewer, f: &RecordingFilter) -> Option<Vec<Constraint>> {
        let mut out = Vec::new();
        let sites: Option<Vec<Uuid>> = match (f.site_id, viewer.site_scope()) {
            (Some(s), Some(scope)) => Some(if scope.contains(&s) { vec![s] } else { vec![] }),
            (Some(s), None) => Some(vec![s]),
            (None, Some(scope)) => Some(scope.iter().copied().collect()),
            (None, None) => None,
        };
        if let Some(sites) = sites {
            if sites.is_empty() {
                return None;
            }
            out.push(Constraint {
                field: b's',
                values: sites.iter().map(Uuid::to_string).collect(),
            });
        }
        if let Some(s) = f.server_id {
            out.push(Constraint {
                field: b'v',
                values: vec![s.to_string()],
            });
        }
        for (field, list) in [
            (b'u', &f.users),
            (b'c', &f.client_ips),
            (b'h', &f.hosts),
            (b'a', &f.applications),
            (b'g', &f.delivery_groups),
        ] {
            if !list.is_empty() {
                out.push(Constraint {
                    field,
                    values: list.iter().map(|v| norm(v)).collect(),
                });
            }
        }
        for (field, on) in [
            (b'l', f.live),
            (b'x', f.restricted),
            (b'e', f.has_detections),
        ] {
            if on == Some(true) {
                out.push(Constraint {
                    field,
                    values: vec!["1".into()],
                });
            }
        }
        if let Some(min) = f.min_severity {
            out.push(Constraint {
                field: b'm',
                values: Severity::ALL
                    .iter()
                    .filter(|s| **s >= min)
                    .map(|s| severity_code(*s).to_string())
                    .collect(),
            });
        }
        Some(out)
    }

    /// A page of the recordings `viewer` may see that match the query.
    pub fn search(&self, viewer: &Viewer, query: &RecordingQuery) -> Result<RecordingPage> {
        let f = &query.filter;
        let limit = page_size(query.first);
        let empty = RecordingPage {
            items: Vec::new(),
            has_next_page: false,
            end_cursor: None,
            total_count: query.with_total.then_some(0),
        };
        // VIEWER and AGENT never see recordings: no need to walk anything.
        if matches!(viewer.principal().role, Role::Viewer | Role::Agent) {
            return Ok(empty);
        }
        let Some(constraints) = self.constraints(viewer, f) else {
            return Ok(empty);
        };
        // Most selective first: the merge-join seeks the others to its keys.
        let mut ordered: Vec<(i64, &Constraint)> = Vec::with_capacity(constraints.len());
        for c in &constraints {
            let mut n = 0;
            for v in &c.values {
                n += self.index_count(c.field, v)?;
            }
            ordered.push((n, c));
        }
        ordered.sort_by_key(|(n, _)| *n);
        let best = ordered.first().copied();
        // Whether a candidate that is in every index must still be decoded
        // to know whether it is listed: for the filter's fields that no key
        // holds, and for visibility unless the viewer sees every recording
        // of the sites in scope (ADMIN and PRIVILEGED_PLAYER, per the
        // domain's `may`; the site scope is one of the constraints).
        let sees_all_in_scope = matches!(
            viewer.principal().role,
            Role::Admin | Role::PrivilegedPlayer
        );
        let needs_row = !sees_all_in_scope || !keys_decide(f);
        let accept = |row: &RecordingRow| -> Result<Option<Visibility>> {
            if !self.matches(f, row)? {
                return Ok(None);
            }
            let v = viewer.visibility(&row.facts());
            Ok(v.is_visible().then_some(v))
        };
        let fast_total = || -> Result<Option<u64>> {
            // ADMIN and PRIVILEGED_PLAYER see every recording of their sites
            // (the domain's `may`), so a site-only filter is counted by the
            // index counters alone.
            let sees_all = matches!(
                viewer.principal().role,
                Role::Admin | Role::PrivilegedPlayer
            );
            let site_only = RecordingFilter {
                site_id: f.site_id,
                ..RecordingFilter::default()
            } == *f;
            if !(sees_all && site_only) {
                return Ok(None);
            }
            Ok(Some(match constraints.first() {
                Some(c) => {
                    let mut n = 0;
                    for v in &c.values {
                        n += self.index_count(c.field, v)?;
                    }
                    n.max(0) as u64
                }
                None => self.count()?,
            }))
        };
        match query.order {
            RecordingOrder::NewestFirst => {
                let after = query
                    .after
                    .as_deref()
                    .map(|c| cursor_decode("n", c))
                    .transpose()?;
                let bounds = time_bounds(f);
                let mut items = Vec::new();
                let mut has_next_page = false;
                let mut total = 0u64;
                let counting = query.with_total;
                let known_total = if counting { fast_total()? } else { None };
                let walk_all = counting && known_total.is_none();
                // The total counts from the start of the order, so the walk
                // for it does not start at the cursor.
                let from = if walk_all { None } else { after.clone() };
                for suffix in self.candidates(&ordered, from.as_deref(), &bounds)? {
                    let suffix = suffix?;
                    if !in_time_range(f, &suffix) {
                        continue;
                    }
                    let on_page = after.as_deref().is_none_or(|a| suffix.as_slice() > a);
                    let wanted = on_page && items.len() < limit;
                    // Rows are decoded only when the keys cannot decide or
                    // the row is returned.
                    let mut hit = None;
                    if needs_row || wanted {
                        let id = super::util::trailing_uuid(&suffix)?;
                        let Some(row) = self.get(id)? else { continue };
                        let Some(v) = accept(&row)? else { continue };
                        hit = Some((row, v));
                    }
                    total += 1;
                    if !on_page {
                        continue;
                    }
                    if items.len() == limit {
                        has_next_page = true;
                        if !walk_all {
                            break;
                        }
                        continue;
                    }
                    if let Some((row, visibility)) = hit {
                        items.push(RecordingHit {
                            cursor: cursor_encode("n", &suffix),
                            row,
                            visibility,
                        });
                    }
                }
                let end_cursor = items.last().map(|h| h.cursor.clone());
                Ok(RecordingPage {
                    items,
                    has_next_page,
                    end_cursor,
                    total_count: if counting {
                        Some(known_total.unwrap_or(total))
                    } else {
                        None
                    },
                })
            }
            RecordingOrder::LongestFirst => {
                let after = query
                    .after
                    .as_deref()
                    .map(|c| cursor_decode("d", c))
                    .transpose()?;
                let mut matched: Vec<(Vec<u8>, RecordingRow, Visibility)> = Vec::new();
                let mut has_next_page = false;
                let mut total = 0u64;
                let known_total = if query.with_total {
                    fast_total()?
                } else {
                    None
                };
                match best {
                    Some((n, _)) if n <= SMALL_CANDIDATE_SET => {
                        for suffix in self.candidates(&ordered, None, &time_bounds(f))? {
                            let suffix = suffix?;
                            if !in_time_range(f, &suffix) {
                                continue;
                            }
                            let id = super::util::trailing_uuid(&suffix)?;
                            let Some(row) = self.get(id)? else { continue };
                            if let Some(v) = accept(&row)? {
                                matched.push((row.duration_suffix(), row, v));
                            }
                        }
                        matched.sort_by(|a, b| a.0.cmp(&b.0));
                        total = matched.len() as u64;
                        matched
                            .retain(|(k, _, _)| after.as_deref().is_none_or(|a| k.as_slice() > a));
                        if matched.len() > limit {
                            matched.truncate(limit);
                            has_next_page = true;
                        }
                    }
                    _ => {
                        let bounds = duration_bounds(f);
                        let walk_all = query.with_total && known_total.is_none();
                        let from = if walk_all { None } else { after.clone() };
                        for suffix in
                            merged(&self.tree, &[b"d/".to_vec()], from.as_deref(), &bounds)
                        {
                            let suffix = suffix?;
                            let id = super::util::trailing_uuid(&suffix)?;
                            let Some(row) = self.get(id)? else { continue };
                            let Some(v) = accept(&row)? else { continue };
                            total += 1;
                            if after.as_deref().is_some_and(|a| suffix.as_slice() <= a) {
                                continue;
                            }
                            if matched.len() == limit {
                                has_next_page = true;
                                if !walk_all {
                                    break;
                                }
                                continue;
                            }
                            matched.push((suffix, row, v));
                        }
                    }
                }
                let items: Vec<RecordingHit> = matched
                    .into_iter()
                    .map(|(k, row, visibility)| RecordingHit {
                        cursor: cursor_encode("d", &k),
                        row,
                        visibility,
                    })
                    .collect();
                let end_cursor = items.last().map(|h| h.cursor.clone());
                Ok(RecordingPage {
                    items,
                    has_next_page,
                    end_cursor,
                    total_count: query.with_total.then(|| known_total.unwrap_or(total)),
                })
            }
        }
    }

    /// The order suffixes (`started desc, id`) of the recordings under
    /// every constraint (every recording when there is none), ascending,
    /// after `after` and within `bounds`: a union over each constraint's
    /// values, joined across constraints, from the keys alone.
    fn candidates<'a>(
        &'a self,
        constraints: &[(i64, &Constraint)],
        after: Option<&[u8]>,
        bounds: &SuffixBounds,
    ) -> Result<AllOf<'a>> {
        let mut lower = bounds.lower.clone().map(|l| (l, true));
        if let Some(a) = after {
            if lower.as_ref().is_none_or(|(l, _)| a >= l.as_slice()) {
                lower = Some((a.to_vec(), false));
            }
        }
        let lead = constraints.first().map_or(0, |(n, _)| *n);
        let mut walked: Vec<Vec<Vec<u8>>> = Vec::new();
        let mut probes = Vec::new();
        for (n, c) in constraints {
            let prefixes = c.values.iter().map(|v| index_prefix(c.field, v)).collect();
            if !walked.is_empty() && *n > lead.saturating_mul(PROBE_RATIO) {
                probes.push(prefixes);
            } else {
                walked.push(prefixes);
            }
        }
        if walked.is_empty() {
            walked.push(vec![b"o/".to_vec()]);
        }
        let mut parts = Vec::with_capacity(walked.len());
        for values in walked {
            let mut runs = Vec::with_capacity(values.len());
            for p in values {
                runs.push(Run::open(&self.tree, p, lower.as_ref(), bounds)?);
            }
            parts.push(AnyOf { runs });
        }
        Ok(AllOf {
            tree: &self.tree,
            parts,
            probes,
        })
    }

    /// The whole filter, checked on a row.
    fn matches(&self, f: &RecordingFilter, row: &RecordingRow) -> Result<bool> {
        let any = |list: &[String], value: Option<&str>| {
            list.is_empty() || value.is_some_and(|v| list.iter().any(|x| norm(x) == norm(v)))
        };
        let apps: Vec<String> = row.points.applications.iter().map(|a| norm(a)).collect();
        let duration = row.duration_sec();
        let basic = !row.deleted()
            && f.site_id.is_none_or(|s| s == row.site_id)
            && f.server_id.is_none_or(|s| s == row.server_id)
            && (f.users.is_empty()
                || f.users
                    .iter()
                    .any(|u| norm(u) == norm(&row.user) || norm(u) == norm(bare_user(&row.user))))
            && any(&f.client_ips, row.client_ip.as_deref())
            && any(&f.hosts, Some(&row.host))
            && (f.applications.is_empty()
                || f.applications.iter().any(|a| apps.contains(&norm(a))))
            && any(&f.delivery_groups, row.delivery_group.as_deref())
            && f.started_after.is_none_or(|t| row.started_at >= t)
            && f.started_before.is_none_or(|t| row.started_at < t)
            && f.min_duration_sec.is_none_or(|d| duration >= d)
            && f.max_duration_sec.is_none_or(|d| duration <= d)
            && f.live.is_none_or(|l| row.live() == l)
            && f.has_detections
                .is_none_or(|h| (row.points.detection_count > 0) == h)
            && f.min_severity
                .is_none_or(|m| row.max_severity.is_some_and(|s| s >= m))
            && f.restricted.is_none_or(|r| row.restricted() == r);
        if !basic {
            return Ok(false);
        }
        let Some(text) = f.text.as_deref().map(norm).filter(|t| !t.is_empty()) else {
            return Ok(true);
        };
        let fields = [
            Some(row.user.as_str()),
            row.domain.as_deref(),
            Some(row.host.as_str()),
            row.client_name.as_deref(),
            row.client_ip.as_deref(),
        ];
        if fields
            .into_iter()
            .flatten()
            .any(|v| norm(v).contains(&text))
            || apps.iter().any(|a| a.contains(&text))
        {
            return Ok(true);
        }
        for kv in self.tree.scan_prefix(Key::new(b"t/").uuid(row.id).build()) {
            let (_, v) = kv?;
            if String::from_utf8_lossy(&v).contains(&text) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// Whether the index keys alone decide `f` for a recording under every
/// one of its constraints: every set field is an index or the time range.
fn keys_decide(f: &RecordingFilter) -> bool {
    f.min_duration_sec.is_none()
        && f.max_duration_sec.is_none()
        && f.live != Some(false)
        && f.has_detections != Some(false)
        && f.restricted != Some(false)
        && f.text.as_deref().map(norm).is_none_or(|t| t.is_empty())
}

/// Whether the start time in an order suffix is within the filter's range
/// (the range bounds are exact but for the extremes of `i64`).
fn in_time_range(f: &RecordingFilter, suffix: &[u8]) -> bool {
    let Some(started) = suffix.get(..8).and_then(codec::i64_from_desc_key) else {
        return false;
    };
    f.started_after.is_none_or(|t| started >= t.0) && f.started_before.is_none_or(|t| started < t.0)
}

/// `(started desc, id)` bounds of the filter's time range.
fn time_bounds(f: &RecordingFilter) -> SuffixBounds {
    SuffixBounds {
        // Newest first: the newest admitted start is the smallest key.
        lower: f
            .started_before
            .map(|t| codec::i64_desc_key(t.0.saturating_sub(1)).to_vec()),
        upper: f
            .started_after
            .map(|t| codec::i64_desc_key(t.0.saturating_sub(1)).to_vec()),
    }
}

/// `(duration desc, ...)` bounds of the filter's duration range.
fn duration_bounds(f: &RecordingFilter) -> SuffixBounds {
    SuffixBounds {
        lower: f.max_duration_sec.map(|d| {
            codec::u64_desc_key(d.saturating_add(1).saturating_mul(1000).saturating_sub(1)).to_vec()
        }),
        upper: f
            .min_duration_sec
            .filter(|d| *d > 0)
            .map(|d| codec::u64_desc_key(d.saturating_mul(1000) - 1).to_vec()),
    }
}
