//! The query root. Every query answers from the read models; `atLeast`
//! waits (bounded) until they have applied that log position, else
//! `TIMEOUT`. Who may ask what, and which recordings (and what reveals
//! them: detections, history) a caller sees, is decided in
//! [`crate::read::access`].

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use srs_domain::log::EventStore;
use srs_domain::model::{self as dm, Action, Target};
use srs_projections::models::catalogue::RecordingQuery;
use srs_projections::models::dashboard::{DashboardQuery, SiteScope};
use srs_projections::models::HistoryQuery;
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, long, non_negative, opt_uuid, page, timestamp, uuid};
use super::enums::RecordingOrder;
use super::inputs::{
    AuditFilter, DetectionFilter, HistoryFilter, RecordingFilter, SessionAttributesInput,
    TokenFilter,
};
use super::reports::{site_visualization, Dashboard, SiteVisualizationBucket};
use super::types::*;
use crate::error::{ApiError, ApiResult};
use crate::read::access::{self, authorize, authorize_listing, authorize_recordings, Sight};
use crate::state::Core;

pub struct QueryRoot;

/// The most events one `history` page reads and does not show (events the
/// filter selects about recordings the caller may not see, or after the
/// history index) before it answers with what it found: a page may then
/// be short, with `hasNextPage`.
const HISTORY_SCAN_LIMIT: usize = 50_000;

/// Walks the log events `query` selects from position `from` to `to`
/// (inclusive), oldest first, until `visit` says stop: with `index`, the
/// positions the history index selects, read by position, then every event
/// after the index from the log; without, only the latter.
async fn walk_history(
    core: &Core,
    query: &HistoryQuery,
    from: u64,
    to: Option<u64>,
    index: bool,
    visit: &mut (dyn FnMut(&srs_domain::log::Envelope<dm::DomainEvent>) -> ApiResult<bool> + Send),
) -> ApiResult<()> {
    let history = core.reads.history()?;
    let indexed = history.indexed()?;
    let to = to.unwrap_or(u64::MAX);
    if index {
        let mut positions = history.positions(query, from, to.min(indexed))?;
        loop {
            let chunk = positions
                .by_ref()
                .take(256)
                .collect::<Result<Vec<u64>, _>>()?;
            if chunk.is_empty() {
                break;
            }
            // Consecutive positions are read together.
            let mut i = 0;
            while i < chunk.len() {
                let mut j = i + 1;
                while j < chunk.len() && chunk[j] == chunk[j - 1] + 1 {
                    j += 1;
                }
                for envelope in &core.store.read_all(chunk[i], j - i).await? {
                    if !visit(envelope)? {
                        return Ok(());
                    }
                }
                i = j;
            }
        }
    }
    let mut at = from.max(indexed.saturating_add(1));
    while at <= to {
        let batch = core.store.read_all(at, 1024).await?;
        if batch.is_empty() {
            break;
        }
        for envelope in &batch {
            if envelope.position > to {
                return Ok(());
            }
            at = envelope.position + 1;
            if !visit(envelope)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Removes hashes of secrets from an event's JSON (they are not secrets,
/// but nobody outside needs them).
pub(crate) fn redact(payload: &mut serde_json::Value) {
    if let Some(fields) = payload
        .as_object_mut()
        .and_then(|o| o.values_mut().next())
        .and_then(|v| v.as_object_mut())
    {
        for key in ["secret_sha256", "credential_sha256"] {
            if fields.contains_key(key) {
                fields.insert(key.into(), serde_json::Value::String("<redacted>".into()));
            }
        }
    }
}

/// What may be read: every query answers from the read models.
#[Object(name = "Query")]
impl QueryRoot {
    /// The caller.
    async fn me(&self, ctx: &Context<'_>) -> ApiResult<Principal> {
        Ok(Principal::from(ctx.caller()?))
    }

    /// The sites the caller may see.
    async fn sites(&self, ctx: &Context<'_>, at_least: Option<i32>) -> ApiResult<Vec<Site>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        authorize_listing(core, caller, Action::ReadServerStatus, None).await?;
        core.at_least(at_least).await?;
        Ok(core
            .reads
            .servers()?
            .sites()?
            .into_iter()
            .filter(|s| access::sees_site(caller, s.id))
            .map(Site)
            .collect())
    }

    /// Servers, of one site or of every site the caller may see.
    async fn servers(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        at_least: Option<i32>,
    ) -> ApiResult<Vec<Server>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        authorize_listing(core, caller, Action::ReadServerStatus, site).await?;
        core.at_least(at_least).await?;
        Ok(core
            .reads
            .servers()?
            .servers(site)?
            .into_iter()
            .filter(|s| access::sees_site(caller, s.site_id))
            .map(Server)
            .collect())
    }

    /// One server; null when absent or not visible to the caller (another
    /// site's, or another server's for an AGENT).
    async fn server(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Option<Server>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let server_id = uuid(&id, "server")?;
        core.at_least(at_least).await?;
        let Some(row) = access::visible_server(core, caller, server_id).await? else {
            return Ok(None);
        };
        Ok(Some(Server(row)))
    }

    /// Recordings the caller may see, filtered and paged (newest first by default).
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn recordings(
        &self,
        ctx: &Context<'_>,
        filter: Option<RecordingFilter>,
        first: Option<i32>,
        after: Option<String>,
        order_by: Option<RecordingOrder>,
        at_least: Option<i32>,
    ) -> ApiResult<RecordingConnection> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        authorize_recordings(core, caller).await?;
        let limit = page(first, &core.limits)?;
        let filter = filter.unwrap_or_default().into_query(&core.limits)?;
        core.at_least(at_least).await?;
        let sight = Sight::of(core, caller)?;
        let query = RecordingQuery {
            filter,
            order: order_by.unwrap_or_default().into(),
            first: Some(limit),
            after,
            with_total: ctx.look_ahead().field("totalCount").exists(),
        };
        let page = sight.catalogue().search(sight.viewer(), &query)?;
        Ok(RecordingConnection {
            edges: page
                .items
                .into_iter()
                .map(|hit| RecordingEdge {
                    cursor: hit.cursor,
                    node: Recording::new(hit.row, hit.visibility),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.map(long),
        })
    }

    /// One recording; null when absent or not visible to the caller.
    async fn recording(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Option<Recording>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        authorize_recordings(core, caller).await?;
        let recording_id = uuid(&id, "recording")?;
        core.at_least(at_least).await?;
        visible_recording(ctx, recording_id).await
    }

    /// A site's policies of each kind: all of them and the active one.
    async fn policies(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<SitePolicies> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        authorize(core, caller, Action::ReadConfiguration, Target::Site(site)).await?;
        core.at_least(at_least).await?;
        if core.reads.servers()?.site(site)?.is_none() {
            return Err(ApiError::not_found(format!("site {site} not found")));
        }
        let policies = core.reads.policies()?.site(site)?;
        Ok(SitePolicies {
            site_id: id(site),
            recording: KindPolicies::from(&policies.recording),
            event_detection: KindPolicies::from(&policies.event_detection),
            event_response: KindPolicies::from(&policies.event_response),
        })
    }

    /// What the site's active recording policy decides for a session.
    async fn evaluate_recording_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        session: SessionAttributesInput,
    ) -> ApiResult<RecordingDecision> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        let session = session.into_domain(&core.limits)?;
        let decision = core
            .service
            .evaluate_recording_policy(caller, site, &session)
            .await?;
        Ok(RecordingDecision::from(&decision))
    }

    /// Playback permissions, of one site or of every site the caller may see.
    async fn playback_permissions(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        at_least: Option<i32>,
    ) -> ApiResult<Vec<PlaybackPermission>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        authorize_listing(core, caller, Action::ReadConfiguration, site).await?;
        core.at_least(at_least).await?;
        Ok(core
            .reads
            .access()?
            .permissions(site)?
            .iter()
            .filter(|p| access::sees_site(caller, p.site_id))
            .map(PlaybackPermission::from)
            .collect())
    }

    /// A site's retention policy; null when it has none.
    async fn retention_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Option<RetentionPolicy>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        authorize(core, caller, Action::ReadConfiguration, Target::Site(site)).await?;
        core.at_least(at_least).await?;
        Ok(core
            .reads
            .policies()?
            .retention(site)?
            .as_ref()
            .map(RetentionPolicy::from))
    }

    /// Insights of one site or of every site the caller may see, over
    /// `from`..`to` (default: the 30 days before `to`, which defaults to
    /// now), counted by session time (see `Dashboard`).
    async fn dashboard(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        at_least: Option<i32>,
    ) -> ApiResult<Dashboard> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        authorize_listing(core, caller, Action::ReadDashboard, site).await?;
        if let (Some(from), Some(to)) = (from, to) {
            if to <= from {
                return Err(ApiError::validation("`to` must be after `from`"));
            }
        }
        core.at_least(at_least).await?;
        let sites = match access::sites_in_scope(caller, site) {
            Some(sites) => SiteScope::Sites(sites),
            None => SiteScope::All,
        };
        let query = DashboardQuery {
            sites: sites.clone(),
            from: from.map(timestamp),
            to: to.map(timestamp),
            now: core.service.now(),
            top: 10,
            // The top lists name users: restricted recordings count
            // only for the roles that see them.
            sees_restricted: access::sees_every_recording(caller),
        };
        let view = core.reads.dashboard()?.view(&query)?;
        Ok(Dashboard::new(&view, sites, query.days()))
    }

    /// The site-wide event visualization report: session events and
    /// detections per type in buckets of `bucketSec` seconds (whole
    /// minutes, 60 to 2678400; default 3600) over `from`..`to` (default:
    /// the 24 hours before `to`, which defaults to now; at most 366 days),
    /// by the events' session time (the recording's start plus the event's
    /// offset). Empty buckets are left out. Without `siteId`: every site
    /// the caller may see.
    async fn site_visualization(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The site; without it, every site the caller may see.")] site_id: Option<
            ID,
        >,
        #[graphql(desc = "Start of the report (default: 24 hours before `to`).")] from: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "End of the report, exclusive (default: now).")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "Bucket length in seconds, whole minutes, 60 to 2678400 (default 3600).")]
        bucket_sec: Option<i32>,
        #[graphql(desc = "Answer once the read models reached this log position.")]
        at_least: Option<i32>,
    ) -> ApiResult<Vec<SiteVisualizationBucket>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        authorize_listing(core, caller, Action::ReadDashboard, site).await?;
        core.at_least(at_least).await?;
        let to = to.map_or_else(|| core.service.now(), timestamp);
        let from = from.map_or_else(|| to.plus_days(-1), timestamp);
        let sites = access::sites_in_scope(caller, site);
        site_visualization(ctx, sites, from, to, i64::from(bucket_sec.unwrap_or(3_600)))
    }

    /// Detected events of recordings the caller may see, newest first.
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn detected_events(
        &self,
        ctx: &Context<'_>,
        filter: Option<DetectionFilter>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<i32>,
    ) -> ApiResult<DetectedEventConnection> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let limit = page(first, &core.limits)?;
        let mut filter = filter.unwrap_or_default().into_query(&core.limits)?;
        access::authorize_detections(core, caller, &filter.site_ids).await?;
        core.at_least(at_least).await?;
        if filter.site_ids.is_empty() {
            filter.site_ids = access::sites_in_scope(caller, None).unwrap_or_default();
        }
        let sight = Sight::of(core, caller)?;
        let detections = core.reads.detections()?;
        let mut edges = Vec::new();
        let mut cursor = after;
        let mut has_next_page = false;
        'pages: loop {
            let page = detections.search(&filter, Some(limit), cursor.as_deref())?;
            for (item_cursor, row) in &page.items {
                cursor = Some(item_cursor.clone());
                let Some(deleted) = sight.seen(row.recording_id)? else {
                    continue;
                };
                if edges.len() == limit {
                    has_next_page = true;
                    break 'pages;
                }
                edges.push(DetectedEventEdge {
                    cursor: item_cursor.clone(),
                    node: DetectedEvent::shown(row, core.content.keys(), deleted),
                });
            }
            if !page.has_next_page {
                break;
            }
        }
        // Counted only when asked for: every detection of the filter the
        // caller may see, each recording's visibility decided once.
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            let mut seen: std::collections::HashMap<Uuid, bool> = Default::default();
            let mut count = 0u64;
            let mut cursor: Option<String> = None;
            loop {
                let page = detections.search(&filter, Some(500), cursor.as_deref())?;
                for (_, row) in &page.items {
                    let visible = match seen.get(&row.recording_id) {
                        Some(visible) => *visible,
                        None => {
                            let visible = sight.seen(row.recording_id)?.is_some();
                            seen.insert(row.recording_id, visible);
                            visible
                        }
                    };
                    count += u64::from(visible);
                }
                if !page.has_next_page {
                    break;
                }
                cursor = page.end_cursor;
            }
            Some(long(count))
        } else {
            None
        };
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        Ok(DetectedEventConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            total_count,
        })
    }

    /// Every token srs knows, revoked and expired ones included, AGENT
    /// tokens (servers' credentials) too, in the order they were issued
    /// (ADMIN not scoped to sites). Never a secret or its hash. `after`
    /// is a token id (an edge's cursor).
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn tokens(
        &self,
        ctx: &Context<'_>,
        filter: Option<TokenFilter>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<i32>,
    ) -> ApiResult<TokenConnection> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let limit = page(first, &core.limits)?;
        let filter = filter.unwrap_or_default().into_query(&core.limits)?;
        let after = after
            .map(|cursor| {
                Uuid::parse_str(&cursor).map_err(|_| ApiError::validation("invalid cursor"))
            })
            .transpose()?;
        authorize(core, caller, Action::ManageTokens, Target::Global).await?;
        core.at_least(at_least).await?;
        let rows = core.reads.tokens()?.list(&filter, core.service.now())?;
        let total = rows.len();
        let start = after.map_or(0, |after| rows.partition_point(|row| row.id <= after));
        let edges: Vec<TokenEdge> = rows
            .into_iter()
            .skip(start)
            .take(limit)
            .map(|row| TokenEdge {
                cursor: row.id.to_string(),
                node: Token(row),
            })
            .collect();
        let has_next_page = start + edges.len() < total;
        Ok(TokenConnection {
            page_info: PageInfo {
                has_next_page,
                end_cursor: edges.last().map(|e| e.cursor.clone()),
            },
            edges,
            total_count: Some(long(total as u64)),
        })
    }

    /// The admin audit trail, newest first (ADMIN).
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn audit_trail(
        &self,
        ctx: &Context<'_>,
        filter: Option<AuditFilter>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<i32>,
    ) -> ApiResult<AuditEntryConnection> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let limit = page(first, &core.limits)?;
        let filter = filter.unwrap_or_default().into_query(&core.limits)?;
        let target = filter.site_id.map_or(Target::Global, Target::Site);
        authorize(core, caller, Action::ReadAdminLog, target).await?;
        core.at_least(at_least).await?;
        let audit = core.reads.audit()?;
        let page = audit.search(&filter, Some(limit), after.as_deref())?;
        // Counted only when asked for, from the trail's counts.
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            Some(long(audit.count(&filter)?))
        } else {
            None
        };
        Ok(AuditEntryConnection {
            edges: page
                .items
                .iter()
                .map(|(cursor, row)| AuditEntryEdge {
                    cursor: cursor.clone(),
                    node: AuditEntry::from(row),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count,
        })
    }

    /// The raw event history in log order (ADMIN, AUDITOR). Events about
    /// recordings the caller may not see are left out. A caller scoped to
    /// sites (without `siteId`, e.g. `srs replay --url`) gets the events of
    /// its sites only: events that belong to no site (tokens issued and
    /// revoked, log exports, the permissions migration, refusals aimed at
    /// nothing of a site) and events of other sites are left out.
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn history(
        &self,
        ctx: &Context<'_>,
        filter: Option<HistoryFilter>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<i32>,
    ) -> ApiResult<LoggedEventConnection> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let limit = page(first, &core.limits)?;
        let filter = filter.unwrap_or_default();
        let site = opt_uuid(filter.site_id.as_ref(), "site")?;
        let recording = opt_uuid(filter.recording_id.as_ref(), "recording")?;
        access::authorize_history(core, caller, site).await?;
        core.at_least(at_least).await?;
        let mut from = filter
            .from_position
            .map(|p| non_negative(p, "fromPosition"))
            .transpose()?
            .unwrap_or(1)
            .max(1);
        if let Some(after) = after {
            let after: u64 = after
                .parse()
                .map_err(|_| ApiError::validation("invalid cursor"))?;
            from = from.max(after + 1);
        }
        let to = filter
            .to_position
            .map(|p| non_negative(p, "toPosition"))
            .transpose()?;
        let (time_from, time_to) = (filter.from.map(timestamp), filter.to.map(timestamp));
        let sight = Sight::of(core, caller)?;
        // Whether the caller's history shows `envelope`, and with which
        // recording state (deleted or not).
        let shows =
            |envelope: &srs_domain::log::Envelope<dm::DomainEvent>| -> ApiResult<Option<bool>> {
                let event = &envelope.payload;
                let event_site = event.site_id();
                let keep = filter
                    .stream
                    .as_deref()
                    .is_none_or(|s| s == envelope.stream)
                    && filter
                        .types
                        .as_ref()
                        .is_none_or(|t| t.iter().any(|t| t == event.name()))
                    && filter
                        .actor
                        .as_deref()
                        .is_none_or(|a| a == envelope.actor.label())
                    && site.is_none_or(|s| event_site == Some(s))
                    && recording.is_none_or(|r| event.recording_id() == Some(r))
                    && time_from.is_none_or(|t| envelope.recorded_at >= t)
                    && time_to.is_none_or(|t| envelope.recorded_at < t);
                if !keep {
                    return Ok(None);
                }
                sight.shows_event(event)
            };
        // What the index can narrow the walk to; `shows` still checks
        // every filter and rule on each event read.
        let query = HistoryQuery {
            types: filter.types.clone(),
            stream: filter.stream.clone(),
            actor: filter.actor.clone(),
            site,
            recording,
            within_sites: (!caller.unscoped()).then(|| caller.site_ids.iter().copied().collect()),
            from: time_from,
            to: time_to,
        };
        let mut edges = Vec::new();
        let mut has_next_page = false;
        let mut unshown = 0usize;
        let mut last_read = None;
        {
            let mut visit =
                |envelope: &srs_domain::log::Envelope<dm::DomainEvent>| -> ApiResult<bool> {
                    if unshown >= HISTORY_SCAN_LIMIT {
                        has_next_page = true;
                        return Ok(false);
                    }
                    let Some(deleted) = shows(envelope)? else {
                        unshown += 1;
                        last_read = Some(envelope.position);
                        return Ok(true);
                    };
                    if edges.len() == limit {
                        has_next_page = true;
                        return Ok(false);
                    }
                    last_read = Some(envelope.position);
                    edges.push(LoggedEventEdge {
                        cursor: envelope.position.to_string(),
                        node: LoggedEvent::shown(envelope, core.content.keys(), deleted),
                    });
                    Ok(true)
                };
            walk_history(core, &query, from, to, true, &mut visit).await?;
        }
        // Counted only when asked for: every event from the filter's
        // `fromPosition` (not the cursor) to its `toPosition` the page
        // would show.
        let whole_log = access::sees_whole_log(caller)
            && filter.stream.is_none()
            && filter.types.is_none()
            && filter.actor.is_none()
            && site.is_none()
            && recording.is_none()
            && time_from.is_none()
            && time_to.is_none();
        let total_count = if ctx.look_ahead().field("totalCount").exists() {
            let start = filter
                .from_position
                .map(|p| non_negative(p, "fromPosition"))
                .transpose()?
                .unwrap_or(1)
                .max(1);
            let mut count = 0u64;
            if whole_log {
                // An unscoped ADMIN sees every event (every event about a
                // recording follows its start, which the catalogue keeps,
                // deleted or not), and positions are gapless: the range
                // is the count.
                let head = core.store.head().position;
                let last = to.map_or(head, |to| to.min(head));
                count = last.saturating_add(1).saturating_sub(start);
            } else {
                // The same holds for one filter value over the whole log:
                // the index's count of it, and the events after the index.
                let indexed = (caller.role == dm::Role::Admin
                    && caller.unscoped()
                    && start == 1
                    && to.is_none())
                .then(|| core.reads.history()?.count(&query))
                .transpose()?
                .flatten();
                let mut counter = |envelope: &srs_domain::log::Envelope<dm::DomainEvent>| {
                    if shows(envelope)?.is_some() {
                        count += 1;
                    }
                    Ok(true)
                };
                walk_history(core, &query, start, to, indexed.is_none(), &mut counter).await?;
                count += indexed.unwrap_or(0);
            }
            Some(long(count))
        } else {
            None
        };
        // A short page that stopped on events it does not show continues
        // after them.
        let end_cursor = if has_next_page && edges.len() < limit {
            last_read.map(|p| p.to_string())
        } else {
            edges.last().map(|e| e.cursor.clone())
        };
        Ok(LoggedEventConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            total_count,
        })
    }

    /// Legal holds of one site or of every site the caller may read
    /// (ADMIN and AUDITOR), oldest first; `active` narrows to active
    /// (true) or released (false) holds. An AUDITOR's view of a hold lists
    /// only the recordings it may see, and leaves out a hold on recordings
    /// it sees none of.
    #[graphql(complexity = "first.unwrap_or(50).clamp(1, 500) as usize * child_complexity")]
    async fn legal_holds(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        active: Option<bool>,
        first: Option<i32>,
        after: Option<String>,
        at_least: Option<i32>,
    ) -> ApiResult<super::holds::LegalHoldConnection> {
        ctx.core()?.at_least(at_least).await?;
        super::holds::legal_holds(ctx, site_id, active, first, after).await
    }

    /// Any object with an id: a recording, server, site, policy, playback
    /// permission, comment, detected event, response, legal hold or token.
    /// `id` is its UUID (types tried in that order; a server's first AGENT
    /// token shares the server's id and is `Token:<id>`), or
    /// `<Type>:<uuid>` to look in one type. What the caller may not see
    /// answers as an absent id: `NOT_FOUND`.
    async fn node(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<super::node::Node> {
        ctx.core()?.at_least(at_least).await?;
        super::node::node(ctx, &id).await
    }

    /// The read models' runners: position, lag, state.
    async fn projections(&self, ctx: &Context<'_>) -> ApiResult<Vec<ProjectionStatus>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        access::authorize_global(core, caller, Action::ReadConfiguration).await?;
        Ok(core
            .reads
            .statuses()
            .iter()
            .map(ProjectionStatus::from)
            .collect())
    }

    /// Walks the log's hash chain and invariants from `fromPosition`
    /// (default 1) and names the first breach (ADMIN).
    async fn verify(
        &self,
        ctx: &Context<'_>,
        from_position: Option<i32>,
    ) -> ApiResult<super::maintenance::ChainVerification> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let from = from_position
            .map(|p| non_negative(p, "fromPosition"))
            .transpose()?
            .unwrap_or(1);
        super::maintenance::verify_chain(core, caller, from).await
    }

    /// What server `serverId`'s agent works by: its settings with their
    /// version and its site's active recording, event detection and event
    /// response policies (its AGENT, or an ADMIN of its site).
    async fn agent_config(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The server whose configuration is read.")] server_id: ID,
        #[graphql(desc = "Answer once the read models reached this log position.")]
        at_least: Option<i32>,
    ) -> ApiResult<super::agent::AgentConfig> {
        super::agent::agent_config(ctx, &server_id, at_least).await
    }

    /// The chunks stored of a recording's content, for its server's AGENT
    /// to resume an upload and for whoever may see the recording. Not a
    /// playback: nothing is recorded (`playback` and content reads are).
    async fn recording_chunks(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The recording whose stored chunks are listed.")] recording_id: ID,
        #[graphql(desc = "Answer once the read models reached this log position.")]
        at_least: Option<i32>,
    ) -> ApiResult<super::agent::RecordingChunks> {
        super::agent::recording_chunks(ctx, &recording_id, at_least).await
    }

    /// Response actions a server has to carry out (its AGENT, or ADMIN).
    async fn pending_responses(
        &self,
        ctx: &Context<'_>,
        server_id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Vec<PendingResponse>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        core.at_least(at_least).await?;
        access::server(core, caller, Action::HandleResponses, server).await?;
        Ok(core
            .reads
            .detections()?
            .pending_responses(server)?
            .iter()
            .map(PendingResponse::from)
            .collect())
    }
}
