//! The recordings catalogue: search with every `RecordingFilter` field,
//! newest first or longest first, keyset pagination, total count.
//!
//! | key | value |
//! |---|---|
//! | `r/` id | [`RecordingRow`] |
//! | `t/` id, comment id | a comment's text, lowercase (text search) |
//!
//! The tree holds the rows only. Searches are answered by
//! [`CatalogueIndex`], an in-memory index derived from the rows (postings
//! per field value as bitmaps, start and duration columns, both page
//! orders) that the projection keeps fresh after every commit and a query
//! reloads when it reflects another tree; only the rows of the page
//! returned are read, from a bounded cache of decoded rows kept fresh by
//! the same hook (`rows`), else from the tree. Filter values match
//! exactly, ignoring case; deleted recordings are in no search: only
//! `recording(id)` still answers them.
//!
//! **Cursors** are the order key of the last item, `(started desc, id)`
//! or `(duration desc, started desc, id)`: a page never repeats or skips
//! an item that existed when the previous page was read, whatever is
//! inserted meanwhile (new recordings sort before the cursor).

mod index;
mod rows;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    DataPoints, DomainEvent, Lifecycle, RecordingDecision, RecordingFacts, RecordingMode, Severity,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::access::{Viewer, Visibility};
use super::util::{cursor_decode, cursor_encode, get, norm, page_size, TreeRef};
use crate::codec::Key;
use crate::engine::{Changes, Overlay, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Tree;

pub use index::{CatalogueIndex, IndexSnapshot, PagePlan};
pub use rows::DEFAULT_ROW_CACHE;

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
}

/// `DOMAIN\user` or `user@domain` without the domain.
fn bare_user(user: &str) -> &str {
    let user = user.rsplit('\\').next().unwrap_or(user);
    user.split('@').next().unwrap_or(user)
}

fn row_key(id: Uuid) -> Vec<u8> {
    Key::new(b"r/").uuid(id).build()
}

/// Overlay `row`: the tree holds the rows only (the index is in memory).
fn store_row(w: &mut Overlay, row: &RecordingRow) -> Result<()> {
    w.put_value(row_key(row.id), row)
}

/// The projection that maintains [`Catalogue`], and keeps its shared
/// [`CatalogueIndex`] fresh after each commit.
#[derive(Clone, Default)]
pub struct CatalogueProjection {
    index: Arc<CatalogueIndex>,
}

impl CatalogueProjection {
    pub const NAME: &'static str = "catalogue";

    /// A projection with an index of its own.
    pub fn new() -> Self {
        Self::default()
    }

    /// A projection that keeps `index` fresh (the one queries read).
    pub fn with_index(index: Arc<CatalogueIndex>) -> Self {
        CatalogueProjection { index }
    }

    pub fn index(&self) -> &Arc<CatalogueIndex> {
        &self.index
    }
}

impl Projection<DomainEvent> for CatalogueProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: the tree holds rows and comment texts only.
        2
    }

    fn committed(&self, tree: &Tree, changes: &Changes, checkpoint: u64) {
        self.index.apply(tree, changes, checkpoint);
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
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
            return store_row(w, &row);
        }
        // Declined sessions have no recording; a part assignment precedes
        // its recording's start.
        if matches!(
            event,
            E::RecordingDeclined { .. } | E::RecordingPartAssigned { .. }
        ) {
            return Ok(());
        }
        let Some(id) = event.recording_id() else {
            return Ok(());
        };
        let unknown =
            || ProjectionError::Invariant(format!("{} for unknown recording {id}", event.name()));
        let key = row_key(id);
        match event {
            E::CommentAdded {
                comment_id, text, ..
            } => {
                w.update_value(&key, |row: &mut RecordingRow| {
                    row.comment_count += 1;
                    Ok(true)
                })?
                .ok_or_else(unknown)?;
                w.insert(
                    Key::new(b"t/").uuid(id).uuid(*comment_id).build(),
                    norm(text).into_bytes(),
                )?;
            }
            E::CommentDeleted { comment_id, .. } => {
                let comment = Key::new(b"t/").uuid(id).uuid(*comment_id).build();
                let known = w.contains(&comment)?;
                w.update_value(&key, |row: &mut RecordingRow| {
                    let before = row.comment_count;
                    if known {
                        row.comment_count = row.comment_count.saturating_sub(1);
                    }
                    Ok(row.comment_count != before)
                })?
                .ok_or_else(unknown)?;
                if known {
                    w.remove(comment)?;
                }
            }
            _ => {
                w.update_value(&key, |row: &mut RecordingRow| Ok(fold_into_row(row, event)))?
                    .ok_or_else(unknown)?;
            }
        }
        Ok(())
    }
}

/// Folds an event of a recording's stream (other than its start and its
/// comments) into its row; whether the row changed.
fn fold_into_row(row: &mut RecordingRow, event: &DomainEvent) -> bool {
    use DomainEvent as E;
    let mut set_lifecycle = |lifecycle: Lifecycle| {
        let changed = row.lifecycle != lifecycle;
        row.lifecycle = lifecycle;
        changed
    };
    match event {
        // The data points count every one of these.
        E::SessionEventRecorded { .. }
        | E::SessionEventSealed { .. }
        | E::ContentChunkStored { .. } => {
            row.points.apply(event);
            true
        }
        E::EventDetected { severity, .. } | E::EventDetectedSealed { severity, .. } => {
            row.points.apply(event);
            row.max_severity = row.max_severity.max(Some(*severity));
            true
        }
        E::RecordingEnded { .. } => {
            row.points.apply(event);
            set_lifecycle(Lifecycle::Ended);
            true
        }
        E::RecordingArchived { .. } => set_lifecycle(Lifecycle::Archived),
        E::RecordingRestored { .. } => set_lifecycle(Lifecycle::Ended),
        E::RecordingDeleted { .. } => set_lifecycle(Lifecycle::Deleted),
        E::RecordingRestricted { reason, by, at, .. } => {
            let restriction = Some(RestrictionInfo {
                reason: reason.clone(),
                by: by.clone(),
                at: *at,
            });
            let changed = row.restriction != restriction;
            row.restriction = restriction;
            changed
        }
        E::RecordingRestrictionRemoved { .. } => row.restriction.take().is_some(),
        E::RecordingPlayed { .. } => {
            row.plays += 1;
            true
        }
        _ => false,
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
    /// Shared with the catalogue's cache of decoded rows.
    pub row: Arc<RecordingRow>,
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

/// Queries over the catalogue.
#[derive(Clone, Debug)]
pub struct Catalogue {
    tree: TreeRef,
    index: Arc<CatalogueIndex>,
}

impl Catalogue {
    /// The catalogue of `tree` with an index of its own (loaded by the
    /// first search): for tools and tests that read a tree offline.
    pub fn new(tree: TreeRef) -> Self {
        Self::with_index(tree, Arc::new(CatalogueIndex::new()))
    }

    /// The catalogue of `tree` searched through the shared `index`.
    pub fn with_index(tree: TreeRef, index: Arc<CatalogueIndex>) -> Self {
        Catalogue { tree, index }
    }

    pub fn index(&self) -> &Arc<CatalogueIndex> {
        &self.index
    }

    /// The tree searched.
    pub fn tree(&self) -> &TreeRef {
        &self.tree
    }

    /// One recording, whoever may see it (deleted ones too).
    pub fn get(&self, id: Uuid) -> Result<Option<RecordingRow>> {
        Ok(self.get_shared(id)?.map(Arc::unwrap_or_clone))
    }

    /// [`get`](Self::get), shared with the cache of decoded rows.
    pub fn get_shared(&self, id: Uuid) -> Result<Option<Arc<RecordingRow>>> {
        Ok(self.index.rows(&self.tree, &[id])?.pop().flatten())
    }

    /// One recording if `viewer` may see it (API `recording(id)`).
    pub fn get_visible(
        &self,
        viewer: &Viewer,
        id: Uuid,
    ) -> Result<Option<(Arc<RecordingRow>, Visibility)>> {
        Ok(self.get_shared(id)?.and_then(|row| {
            let v = viewer.visibility(&row.facts());
            v.is_visible().then_some((row, v))
        }))
    }

    /// The row as stored in the tree, bypassing the cache of decoded rows
    /// (what checks compare the cache with).
    pub fn get_stored(&self, id: Uuid) -> Result<Option<RecordingRow>> {
        get(&self.tree, &row_key(id))
    }

    /// Recordings that are not deleted.
    pub fn count(&self) -> Result<u64> {
        self.index.load(&self.tree)
    }

    /// Makes sure the index reflects this catalogue's tree (loading it if
    /// not) and returns how many recordings are listed.
    pub fn load_index(&self) -> Result<u64> {
        self.index.load(&self.tree)
    }

    /// A page of the recordings `viewer` may see that match the query.
    pub fn search(&self, viewer: &Viewer, query: &RecordingQuery) -> Result<RecordingPage> {
        let limit = page_size(query.first);
        let tag = match query.order {
            RecordingOrder::NewestFirst => "n",
            RecordingOrder::LongestFirst => "d",
        };
        let after = query
            .after
            .as_deref()
            .map(|c| cursor_decode(tag, c))
            .transpose()?;
        let found = self.index.search(
            &self.tree,
            viewer,
            &query.filter,
            query.order,
            after.as_deref(),
            limit,
        )?;
        // Only the rows of the page are read, after the index is released.
        let ids: Vec<Uuid> = found.page.iter().map(|(_, id)| *id).collect();
        let rows = self.index.rows(&self.tree, &ids)?;
        let mut items = Vec::with_capacity(found.page.len());
        for ((key, _), row) in found.page.into_iter().zip(rows) {
            let Some(row) = row else { continue };
            let visibility = viewer.visibility(&row.facts());
            if !visibility.is_visible() {
                continue;
            }
            items.push(RecordingHit {
                cursor: cursor_encode(tag, &key),
                row,
                visibility,
            });
        }
        let end_cursor = items.last().map(|h| h.cursor.clone());
        Ok(RecordingPage {
            items,
            has_next_page: found.has_next_page,
            end_cursor,
            total_count: query.with_total.then_some(found.total),
        })
    }
}
