//! The query root. Every query answers from the read models, through the
//! read side's application layer ([`crate::read`]): a resolver parses its
//! arguments, calls one function there and converts what it returns.
//! `atLeast` waits (bounded) until the read models have applied that log
//! position, else `TIMEOUT`. Who may ask what, and which recordings (and
//! what reveals them: detections, history) a caller sees, is decided in
//! [`crate::read::access`].

use async_graphql::{Context, Object, ID};
use chrono::{DateTime, Utc};
use srs_projections::models::catalogue::RecordingQuery;
use srs_projections::models::dashboard::DashboardParts;
use srs_projections::models::HistoryQuery;
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, long, non_negative, opt_uuid, page, timestamp, uuid};
use super::enums::RecordingOrder;
use super::inputs::{
    AuditFilter, DetectionFilter, HistoryFilter, RecordingFilter, SessionAttributesInput,
    TokenFilter,
};
use super::plain::Plain;
use super::reports::{DashboardReport, SiteVisualizationBucket};
use super::types::*;
use crate::error::{ApiError, ApiResult};
use crate::read;

pub struct QueryRoot;

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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        Ok(read::servers::sites(services, caller, at_least)
            .await?
            .into_iter()
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        Ok(read::servers::servers(services, caller, site, at_least)
            .await?
            .into_iter()
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server_id = uuid(&id, "server")?;
        Ok(read::servers::server(services, caller, server_id, at_least)
            .await?
            .map(Server))
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
    ) -> ApiResult<Plain<RecordingConnection>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limit = page(first, &services.limits)?;
        let filter = filter.unwrap_or_default().into_query(&services.limits)?;
        let query = RecordingQuery {
            filter,
            order: order_by.unwrap_or_default().into(),
            first: Some(limit),
            after,
            with_total: ctx.look_ahead().field("totalCount").exists(),
        };
        let (page, as_of) =
            read::recordings::recordings(services, caller, &query, at_least).await?;
        Ok(Plain(RecordingConnection {
            as_of: long(as_of),
            edges: page
                .items
                .into_iter()
                .map(|hit| RecordingEdge {
                    cursor: hit.cursor,
                    node: Plain(Recording::new(hit.row, hit.visibility)),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.map(long),
        }))
    }

    /// One recording; null when absent or not visible to the caller.
    async fn recording(
        &self,
        ctx: &Context<'_>,
        id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Option<Recording>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording_id = uuid(&id, "recording")?;
        Ok(
            read::recordings::recording(services, caller, recording_id, at_least)
                .await?
                .map(|(row, visibility)| Recording::new(row, visibility)),
        )
    }

    /// A site's policies of each kind: all of them and the active one.
    async fn policies(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<SitePolicies> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        let policies = read::policies::site_policies(services, caller, site, at_least).await?;
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        let session = session.into_domain(&services.limits)?;
        let decision = services
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        Ok(
            read::policies::playback_permissions(services, caller, site, at_least)
                .await?
                .iter()
                .map(PlaybackPermission::from)
                .collect(),
        )
    }

    /// A site's retention policy; null when it has none.
    async fn retention_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        at_least: Option<i32>,
    ) -> ApiResult<Option<RetentionPolicy>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        Ok(
            read::policies::retention_policy(services, caller, site, at_least)
                .await?
                .as_ref()
                .map(RetentionPolicy::from),
        )
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
    ) -> ApiResult<Plain<DashboardReport>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        let (from, to) = (from.map(timestamp), to.map(timestamp));
        // Only the top lists and retention counts asked for are computed.
        let asked = ctx.look_ahead();
        let parts = DashboardParts {
            top_lists: [
                "topUsers",
                "topApplications",
                "topHosts",
                "topDeliveryGroups",
                "topRiskyUsers",
                "topAlerts",
            ]
            .map(|field| asked.field(field).exists()),
            pending: asked.field("pendingArchive").exists()
                || asked.field("pendingDelete").exists(),
        };
        let dashboard =
            read::dashboard::dashboard(services, caller, site, (from, to), parts, at_least).await?;
        Ok(Plain(DashboardReport::new(
            &dashboard.figures,
            dashboard.sites,
            dashboard.days,
        )))
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = opt_uuid(site_id.as_ref(), "site")?;
        let (from, to) = (from.map(timestamp), to.map(timestamp));
        let bucket_sec = i64::from(bucket_sec.unwrap_or(3_600));
        Ok(read::dashboard::site_visualization(
            services, caller, site, from, to, bucket_sec, at_least,
        )
        .await?
        .iter()
        .map(SiteVisualizationBucket::from)
        .collect())
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limit = page(first, &services.limits)?;
        let filter = filter.unwrap_or_default().into_query(&services.limits)?;
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let page = read::detections::detected_events(
            services, caller, filter, limit, after, with_total, at_least,
        )
        .await?;
        let keys = services.content.keys();
        Ok(DetectedEventConnection {
            edges: page
                .items
                .iter()
                .map(|(cursor, seen)| DetectedEventEdge {
                    cursor: cursor.clone(),
                    node: DetectedEvent::shown(&seen.row, keys, seen.deleted),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.map(long),
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limit = page(first, &services.limits)?;
        let filter = filter.unwrap_or_default().into_query(&services.limits)?;
        let after = after
            .map(|cursor| {
                Uuid::parse_str(&cursor).map_err(|_| ApiError::validation("invalid cursor"))
            })
            .transpose()?;
        let page = read::tokens::tokens(services, caller, &filter, limit, after, at_least).await?;
        Ok(TokenConnection {
            edges: page
                .items
                .into_iter()
                .map(|(cursor, row)| TokenEdge {
                    cursor,
                    node: Token(row),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.map(long),
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limit = page(first, &services.limits)?;
        let filter = filter.unwrap_or_default().into_query(&services.limits)?;
        let with_total = ctx.look_ahead().field("totalCount").exists();
        let page = read::audit::audit_trail(
            services,
            caller,
            &filter,
            limit,
            after.as_deref(),
            with_total,
            at_least,
        )
        .await?;
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
            total_count: page.total_count.map(long),
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limit = page(first, &services.limits)?;
        let filter = filter.unwrap_or_default();
        let site = opt_uuid(filter.site_id.as_ref(), "site")?;
        let recording = opt_uuid(filter.recording_id.as_ref(), "recording")?;
        let position = |p: Option<i32>, name: &str| p.map(|p| non_negative(p, name)).transpose();
        let from_position = position(filter.from_position, "fromPosition")?;
        let to_position = position(filter.to_position, "toPosition")?;
        let after = after
            .map(|after| {
                after
                    .parse::<u64>()
                    .map_err(|_| ApiError::validation("invalid cursor"))
            })
            .transpose()?;
        let asked = read::history::HistoryPage {
            query: HistoryQuery {
                types: filter.types,
                stream: filter.stream,
                actor: filter.actor,
                site,
                recording,
                within_sites: None,
                from: filter.from.map(timestamp),
                to: filter.to.map(timestamp),
            },
            from_position,
            to_position,
            after,
            limit,
            with_total: ctx.look_ahead().field("totalCount").exists(),
        };
        let page = read::history::history(services, caller, asked, at_least).await?;
        let keys = services.content.keys();
        Ok(LoggedEventConnection {
            edges: page
                .items
                .into_iter()
                .map(|(cursor, shown)| LoggedEventEdge {
                    cursor,
                    node: LoggedEvent::shown(&shown.envelope, keys, shown.deleted),
                })
                .collect(),
            page_info: PageInfo {
                has_next_page: page.has_next_page,
                end_cursor: page.end_cursor,
            },
            total_count: page.total_count.map(long),
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
        super::holds::legal_holds(ctx, site_id, active, first, after, at_least).await
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
        ctx.services()?.at_least(at_least).await?;
        super::node::node(ctx, &id).await
    }

    /// The read models' runners: position, lag, state.
    async fn projections(&self, ctx: &Context<'_>) -> ApiResult<Vec<ProjectionStatus>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        Ok(read::projections::statuses(services, caller)
            .await?
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let from = from_position
            .map(|p| non_negative(p, "fromPosition"))
            .transpose()?
            .unwrap_or(1);
        super::maintenance::verify_chain(services, caller, from).await
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        Ok(
            read::servers::pending_responses(services, caller, server, at_least)
                .await?
                .iter()
                .map(PendingResponse::from)
                .collect(),
        )
    }
}
