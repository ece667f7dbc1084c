//! Output types. Each wraps a read-model row; fields that need more (the
//! caller's rights, another read model) are resolvers.

use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::Value as GqlValue;
use async_graphql::{
    ComplexObject, Context, ContextSelectionSet, Json, Object, ScalarType, SimpleObject, ID,
};
use chrono::{DateTime, Utc};
use serde_json::Value;
use srs_domain::log::Envelope;
use srs_domain::model::{
    self as dm, Action, DataPoints as DomainDataPoints, DomainEvent, Principal as DomainPrincipal,
    Target,
};
use srs_domain::seal::{self, KeyRing};
use srs_projections::models::access::PermissionRow;
use srs_projections::models::audit::AuditRow;
use srs_projections::models::catalogue::RecordingRow;
use srs_projections::models::comments::CommentRow;
use srs_projections::models::detections::{DetectionRow, ResponseRow, VisualBucket as Bucket};
use srs_projections::models::policies::{KindPolicies as KindRows, PolicyRow, RetentionRow};
use srs_projections::models::servers::{InstallJobRow, ServerRow, SiteRow};
use srs_projections::models::Visibility as DomainVisibility;
use srs_projections::ProjectionStatus as Status;

use super::boxed::Boxed;
use super::context::ContextExt;
use super::convert::{id, int, long, page, time};
use super::enums::*;
use super::event_data::SessionEventData;
use super::plain::{self, Plain, PlainFields};
use super::policies::PolicyDefinition;
use crate::error::{ApiError, ApiResult};
use crate::read::{self, access::authorize};
use crate::state::Services;

/// Relay page information.
#[derive(SimpleObject, Clone, Debug, Default)]
#[graphql(serial)]
pub struct PageInfo {
    /// Whether another page follows: ask again with `after: endCursor`.
    pub has_next_page: bool,
    /// The cursor of this page's last item (`null` for an empty page).
    pub end_cursor: Option<String>,
}

// The objects of pages resolve their fields in order (`serial`):
// async-graphql otherwise gives every object its own set of concurrent
// field futures, for fields that do not wait (they read a row in memory).
// In order, a page of 50 recordings takes about a fifth less CPU (`srs
// bench graphql`, recordings_page_throughput against the plain handler).
// A field that waits (a recording's `events`, read from the log) still
// works; its siblings only wait for it.
macro_rules! connection {
    ($(#[$doc:meta])* $conn:ident, $edge:ident, $node:ty
        $(, $(#[$field_doc:meta])* $field:ident: $field_ty:ty)*) => {
        $(#[$doc])*
        #[derive(SimpleObject)]
        #[graphql(serial)]
        pub struct $conn {
            /// This page's items, in order.
            pub edges: Vec<$edge>,
            /// Where this page ends and whether another follows.
            pub page_info: PageInfo,
            /// How many items match in all (every page, this one included),
            /// counted only when this field is selected (64-bit).
            pub total_count: Option<i64>,
            $($(#[$field_doc])* pub $field: $field_ty,)*
        }

        /// One item of a page, with its cursor.
        #[derive(SimpleObject)]
        #[graphql(serial)]
        pub struct $edge {
            /// Pass it as `after` to continue after this item.
            pub cursor: String,
            /// The item.
            pub node: $node,
        }
    };
}

connection!(
    /// A page of recordings.
    RecordingConnection, RecordingEdge, Plain<Recording>,
    /// The log position this page reflects: every event up to it is in
    /// it (later ones may be too). Follow the changes after it with
    /// `liveRecordings(fromPosition: asOf + 1)`, and no start or end
    /// falls between the page and the subscription (64-bit).
    as_of: i64);

// A page of recordings whose selection is plain (the nodes' fields read
// from their rows) is answered in one pass (`super::plain`).
impl PlainFields for PageInfo {
    fn plain(&self, _: &ContextSelectionSet<'_>, field: &Field) -> Option<GqlValue> {
        Some(match field.name.node.as_str() {
            "hasNextPage" => GqlValue::Boolean(self.has_next_page),
            "endCursor" => self
                .end_cursor
                .clone()
                .map_or(GqlValue::Null, GqlValue::String),
            _ => return None,
        })
    }
}

impl PlainFields for RecordingEdge {
    fn plain(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<GqlValue> {
        match field.name.node.as_str() {
            "cursor" => Some(GqlValue::String(self.cursor.clone())),
            "node" => plain::object(&self.node.0, ctx, field),
            _ => None,
        }
    }
}

impl PlainFields for RecordingConnection {
    fn plain(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<GqlValue> {
        match field.name.node.as_str() {
            "edges" => plain::list(&self.edges, ctx, field),
            "pageInfo" => plain::object(&self.page_info, ctx, field),
            "totalCount" => Some(self.total_count.map_or(GqlValue::Null, GqlValue::from)),
            "asOf" => Some(GqlValue::from(self.as_of)),
            _ => None,
        }
    }
}
connection!(
    /// A page of detected events.
    DetectedEventConnection, DetectedEventEdge, DetectedEvent);
connection!(
    /// A page of the admin audit trail.
    AuditEntryConnection, AuditEntryEdge, AuditEntry);
connection!(
    /// A page of the raw event history.
    LoggedEventConnection, LoggedEventEdge, LoggedEvent);
connection!(
    /// A page of a recording's session events.
    SessionEventConnection, SessionEventEdge, SessionEvent);
connection!(
    /// A page of tokens.
    TokenConnection, TokenEdge, Token);

/// A token, as the admins who manage tokens see it: who holds it, what it
/// may do, and its life (issued, last used, expiry, revocation). Never its
/// secret, nor the secret's hash. AGENT tokens are servers' credentials
/// (`connectServer`, `installServer`, `rotateAgentToken`).
pub struct Token(pub srs_projections::models::tokens::TokenRow);

/// A token: who holds it, what it may do, and its life; never its secret.
#[Object(serial)]
impl Token {
    /// Its id (a UUID; `node(id)` finds it).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// The principal's name (for an AGENT token: `agent:<server id>`).
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// What its holder may do.
    async fn role(&self) -> Role {
        self.0.role.into()
    }
    /// The sites it acts on; empty: all sites.
    async fn site_ids(&self) -> Vec<ID> {
        self.0.site_ids.iter().copied().map(id).collect()
    }
    /// The sites it acts on that exist; empty: all sites.
    async fn sites(&self, ctx: &Context<'_>) -> ApiResult<Vec<Site>> {
        let sites =
            read::servers::existing_sites(ctx.services()?, self.0.site_ids.iter().copied())?;
        Ok(sites.into_iter().map(Site).collect())
    }
    /// Its principal's groups.
    async fn groups(&self) -> &[String] {
        &self.0.groups
    }
    /// When it was issued.
    async fn issued_at(&self) -> DateTime<Utc> {
        time(self.0.issued_at)
    }
    /// The actor that issued it: `principal:<name>`, or `system:bootstrap`
    /// for the first ADMIN token srs created on its first start.
    async fn issued_by(&self) -> &str {
        &self.0.issued_by
    }
    /// The token the issuing principal used (`null` when srs issued it).
    async fn issued_by_token_id(&self) -> Option<ID> {
        self.0.issued_by_token.map(id)
    }
    /// The start of the minute it last authenticated a request in (kept
    /// per minute, outside the log; after a crash the last minute may be
    /// lost); `null`: never used.
    async fn last_used_at(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        Ok(ctx.services()?.last_used.get(self.0.id).map(time))
    }
    /// When it stops authenticating; `null`: never.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at.map(time)
    }
    /// Whether it has expired by now.
    async fn expired(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        Ok(self.0.expired(ctx.services()?.service.now()))
    }
    /// Whether it was revoked.
    async fn revoked(&self) -> bool {
        self.0.revoked_at.is_some()
    }
    /// When it was revoked.
    async fn revoked_at(&self) -> Option<DateTime<Utc>> {
        self.0.revoked_at.map(time)
    }
    /// For an AGENT token: its server.
    async fn server_id(&self) -> Option<ID> {
        self.0.server_id.map(id)
    }
    /// The token this one replaced by rotation.
    async fn rotated_from(&self) -> Option<ID> {
        self.0.rotated_from.map(id)
    }
    /// The token that replaced this one by rotation.
    async fn replaced_by(&self) -> Option<ID> {
        self.0.replaced_by.map(id)
    }
}

/// Who is asking.
#[derive(SimpleObject, Clone, Debug)]
pub struct Principal {
    /// The principal's name (for an agent: `agent:<server id>`).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The sites the principal acts on; empty: all sites.
    pub site_ids: Vec<ID>,
    /// Its groups (playback permissions may name them).
    pub groups: Vec<String>,
    /// The token used (for an agent: its agent token, whose id is the
    /// server's id until a rotation).
    pub token_id: ID,
    /// For an AGENT: its server.
    pub server_id: Option<ID>,
}

impl From<&DomainPrincipal> for Principal {
    fn from(p: &DomainPrincipal) -> Self {
        Principal {
            name: p.name.clone(),
            role: p.role.into(),
            site_ids: p.site_ids.iter().copied().map(id).collect(),
            groups: p.groups.clone(),
            token_id: id(p.token_id),
            server_id: p.server_id.map(id),
        }
    }
}

/// A site: a group of servers with its own policies.
pub struct Site(pub SiteRow);

/// A site: a group of servers with its own policies.
#[Object]
impl Site {
    /// Its id (a UUID; `node(id)` finds it).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Its name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// When it was created.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// The site's servers (needs the right to read server status).
    async fn servers(&self, ctx: &Context<'_>) -> ApiResult<Vec<Server>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        Ok(read::servers::site_servers(services, caller, self.0.id)
            .await?
            .into_iter()
            .map(Server)
            .collect())
    }
}

/// A Session Recording server.
pub struct Server(pub ServerRow);

/// A Session Recording server connected to srs.
#[Object]
impl Server {
    /// Its id (a UUID; `node(id)` finds it).
    pub async fn id(&self) -> ID {
        id(self.0.id)
    }
    /// Its site.
    async fn site_id(&self) -> ID {
        id(self.0.site_id)
    }
    /// Its site, when it exists.
    async fn site(&self, ctx: &Context<'_>) -> ApiResult<Option<Site>> {
        Ok(read::servers::site(ctx.services()?, self.0.site_id)?.map(Site))
    }
    /// Its display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Its host name.
    async fn host(&self) -> &str {
        &self.0.host
    }
    /// Where it runs.
    async fn deployment(&self) -> Deployment {
        self.0.deployment.into()
    }
    /// The Session Recording version it runs.
    async fn version(&self) -> &str {
        &self.0.version
    }
    /// Its connection status.
    async fn status(&self) -> ServerStatus {
        self.0.status.into()
    }
    /// Whether heartbeats arrive.
    async fn online(&self) -> bool {
        self.0.online
    }
    /// Since when it is online (or offline).
    async fn online_since(&self) -> DateTime<Utc> {
        time(self.0.online_since)
    }
    /// When the server last heartbeated (online or not); null when it
    /// never did since srs keeps it. Kept per minute outside the log, so
    /// after a restart it may trail by up to a minute.
    async fn last_heartbeat(&self, ctx: &Context<'_>) -> ApiResult<Option<DateTime<Utc>>> {
        Ok(super::agent::last_heartbeat(ctx.services()?, &self.0))
    }
    /// The server's settings (needs the right to read configuration).
    async fn settings(&self, ctx: &Context<'_>) -> ApiResult<ServerSettings> {
        let services = ctx.services()?;
        authorize(
            services,
            ctx.caller()?,
            Action::ReadConfiguration,
            Target::Site(self.0.site_id),
        )
        .await?;
        Ok(ServerSettings::from(&self.0.settings))
    }
    /// The settings' version: pass it as `expectedVersion` to `updateServerSettings`.
    async fn settings_version(&self) -> i32 {
        int(self.0.settings_version)
    }
    /// The install job, for servers srs installs.
    async fn install(&self) -> Option<InstallJob> {
        self.0.install.as_ref().map(InstallJob::from)
    }
    /// When it was connected.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// When it last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at)
    }
}

/// A message shown to recorded users, in one language.
#[derive(SimpleObject, Clone, Debug)]
pub struct LocalizedMessage {
    /// The language (e.g. `en`, `de-CH`).
    pub language: String,
    /// The message.
    pub text: String,
}

/// A server's settings.
#[derive(SimpleObject, Clone, Debug)]
pub struct ServerSettings {
    /// Where it stores recordings.
    pub storage_paths: Vec<String>,
    /// Where archived recordings are restored to.
    pub restore_directory: String,
    /// The largest recording file, in MB (10..300); a larger one rolls over.
    pub max_file_size_mb: i32,
    /// The longest recording, in hours (1..24); a longer one rolls over.
    pub max_recording_hours: i32,
    /// Whether live sessions may be watched.
    pub live_playback_enabled: bool,
    /// Whether downloads are encrypted.
    pub encrypt_downloads: bool,
    /// Whether the server records at all.
    pub recording_enabled: bool,
    /// Whether recordings are signed.
    pub digital_signing_enabled: bool,
    /// The signing certificate's thumbprint.
    pub signing_certificate_thumbprint: Option<String>,
    /// The messages shown to recorded users, per language.
    pub notification_messages: Vec<LocalizedMessage>,
    /// The sender of e-mail alerts.
    pub alert_sender: Option<String>,
    /// Whether administration is logged.
    pub admin_logging_enabled: bool,
    /// Whether administration fails when it cannot be logged.
    pub admin_logging_mandatory: bool,
}

impl From<&dm::ServerSettings> for ServerSettings {
    fn from(s: &dm::ServerSettings) -> Self {
        ServerSettings {
            storage_paths: s.storage_paths.clone(),
            restore_directory: s.restore_directory.clone(),
            max_file_size_mb: int(u64::from(s.max_file_size_mb)),
            max_recording_hours: int(u64::from(s.max_recording_hours)),
            live_playback_enabled: s.live_playback_enabled,
            encrypt_downloads: s.encrypt_downloads,
            recording_enabled: s.recording_enabled,
            digital_signing_enabled: s.digital_signing_enabled,
            signing_certificate_thumbprint: s.signing_certificate_thumbprint.clone(),
            notification_messages: s
                .notification_messages
                .iter()
                .map(|m| LocalizedMessage {
                    language: m.language.clone(),
                    text: m.text.clone(),
                })
                .collect(),
            alert_sender: s.alert_sender.clone(),
            admin_logging_enabled: s.admin_logging_enabled,
            admin_logging_mandatory: s.admin_logging_mandatory,
        }
    }
}

/// One reported install step.
#[derive(SimpleObject, Clone, Debug)]
pub struct InstallProgress {
    /// The step.
    pub step: InstallStep,
    /// How it went.
    pub status: InstallStatus,
    /// What the installer said.
    pub message: Option<String>,
    /// When it was reported.
    pub at: DateTime<Utc>,
}

/// An install job and its progress.
#[derive(SimpleObject, Clone, Debug)]
pub struct InstallJob {
    /// The job's id.
    pub job_id: ID,
    /// When the install was asked for.
    pub requested_at: DateTime<Utc>,
    /// The step reached.
    pub step: InstallStep,
    /// How that step is going.
    pub status: InstallStatus,
    /// The last message reported.
    pub message: Option<String>,
    /// Every reported step, oldest first.
    pub history: Vec<InstallProgress>,
}

impl From<&InstallJobRow> for InstallJob {
    fn from(j: &InstallJobRow) -> Self {
        InstallJob {
            job_id: id(j.job_id),
            requested_at: time(j.requested_at),
            step: j.step.into(),
            status: j.status.into(),
            message: j.message.clone(),
            history: j
                .history
                .iter()
                .map(|p| InstallProgress {
                    step: p.step.into(),
                    status: p.status.into(),
                    message: p.message.clone(),
                    at: time(p.at),
                })
                .collect(),
        }
    }
}

/// Why a session is (not) recorded.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordingDecision {
    /// The recording policy that decided.
    pub policy_id: ID,
    /// That policy's name.
    pub policy_name: String,
    /// The rule that matched; `null` when the fallback applied.
    pub rule: Option<String>,
    /// What it decided.
    pub action: RecordingAction,
    /// Whether the user is notified.
    pub notify: bool,
    /// Lossy (smaller) screen recording.
    pub lossy: bool,
    /// Whether audio is recorded.
    pub audio: bool,
    /// Whether anything is recorded.
    pub records: bool,
}

impl From<&dm::RecordingDecision> for RecordingDecision {
    fn from(d: &dm::RecordingDecision) -> Self {
        RecordingDecision {
            policy_id: id(d.policy_id),
            policy_name: d.policy_name.clone(),
            rule: d.rule.clone(),
            action: d.action.into(),
            notify: d.notify,
            lossy: d.lossy,
            audio: d.audio,
            records: d.records(),
        }
    }
}

/// A recording's restriction.
#[derive(SimpleObject, Clone, Debug)]
pub struct Restriction {
    /// Why it was restricted.
    pub reason: String,
    /// Who restricted it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// A count per session event type.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct TypeCount {
    /// The session event type.
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// How many.
    pub count: i32,
}

/// A count per severity.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct SeverityCount {
    /// The severity.
    pub severity: Severity,
    /// How many.
    pub count: i32,
}

/// A count per name (user, application).
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct NameCount {
    /// The user or application.
    pub name: String,
    /// How many.
    pub count: i32,
}

plain::plain_object!(TypeCount { "type": enumeration event_type, "count": scalar count });
plain::plain_object!(SeverityCount { "severity": enumeration severity, "count": scalar count });
plain::plain_object!(NameCount { "name": scalar name, "count": scalar count });

fn type_counts<'a>(
    map: impl IntoIterator<Item = (&'a dm::SessionEventType, &'a u64)>,
) -> Vec<TypeCount> {
    map.into_iter()
        .map(|(t, n)| TypeCount {
            event_type: (*t).into(),
            count: int(*n),
        })
        .collect()
}

/// Figures about one recording.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct DataPoints {
    /// The recording and whether it is deleted (for `performance`).
    #[graphql(skip)]
    pub recording: Option<(uuid::Uuid, bool)>,
    /// The recording's duration in ms (so far, when live; 64-bit).
    pub duration_ms: i64,
    /// Session events recorded.
    pub event_count: i32,
    /// Session events per type.
    pub events_by_type: Vec<TypeCount>,
    /// Detected events.
    pub detection_count: i32,
    /// Detected events per severity.
    pub detections_by_severity: Vec<SeverityCount>,
    /// Bytes of stored content (64-bit).
    pub size_bytes: i64,
    /// Published applications at the start and every application started.
    pub applications: Vec<String>,
    /// Time spent idle, in ms (64-bit).
    pub idle_ms: i64,
    /// The offset of the latest session event, in ms (64-bit).
    pub last_offset_ms: i64,
}

// Every field but `performance`, which reads the recording's events.
plain::plain_object!(DataPoints {
    "durationMs": scalar duration_ms,
    "eventCount": scalar event_count,
    "eventsByType": list events_by_type,
    "detectionCount": scalar detection_count,
    "detectionsBySeverity": list detections_by_severity,
    "sizeBytes": scalar size_bytes,
    "applications": strings applications,
    "idleMs": scalar idle_ms,
    "lastOffsetMs": scalar last_offset_ms,
});

impl From<&DomainDataPoints> for DataPoints {
    fn from(p: &DomainDataPoints) -> Self {
        DataPoints {
            recording: None,
            duration_ms: long(p.duration_ms),
            event_count: int(p.event_count),
            events_by_type: type_counts(&p.events_by_type),
            detection_count: int(p.detection_count),
            detections_by_severity: p
                .detections_by_severity
                .iter()
                .map(|(s, n)| SeverityCount {
                    severity: (*s).into(),
                    count: int(*n),
                })
                .collect(),
            size_bytes: long(p.size_bytes),
            applications: p.applications.iter().cloned().collect(),
            idle_ms: long(p.idle_ms),
            last_offset_ms: long(p.last_offset_ms),
        }
    }
}

/// One bucket of an event visualization.
#[derive(SimpleObject, Clone, Debug)]
pub struct VisualizationBucket {
    /// The bucket's start: seconds from the session start (recording) or
    /// since the epoch (site).
    pub start: i64,
    /// Session events per type in the bucket.
    pub events: Vec<TypeCount>,
    /// Detected events per type in the bucket.
    pub detections: Vec<TypeCount>,
}

impl From<&Bucket> for VisualizationBucket {
    fn from(b: &Bucket) -> Self {
        VisualizationBucket {
            start: b.start,
            events: type_counts(&b.events),
            detections: type_counts(&b.detections),
        }
    }
}

/// One event inside a recorded session.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct SessionEvent {
    /// The event's id, as the agent sent it (its idempotency key).
    pub event_id: ID,
    /// The recording it belongs to.
    pub recording_id: ID,
    /// What kind of event it is.
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// Milliseconds from the session's start (64-bit).
    pub offset_ms: i64,
    /// The type's data (see the members of `SessionEventData`);
    /// `ShreddedData` once the recording is deleted; `null` for an event
    /// that carries none.
    pub data: Option<SessionEventData>,
    /// The recording was deleted and its key destroyed: the event's data
    /// (sealed under that key) can no longer be read. Its id, type and
    /// offset remain.
    pub shredded: bool,
    /// The log position it is stored at (64-bit).
    pub position: i64,
}

impl SessionEvent {
    /// The session event an envelope carries, if it carries one, its data
    /// opened under the recording's key; shredded once the recording is
    /// `deleted` or its key gone.
    pub fn from_envelope(
        envelope: &Envelope<DomainEvent>,
        keys: &KeyRing,
        deleted: bool,
    ) -> Option<Self> {
        let (recording_id, _, shown) = seal::session_event(keys, &envelope.payload, deleted)?;
        Some(Self::shown(recording_id, shown, envelope.position))
    }

    /// A session event of `recording_id` as the read side shows it, stored
    /// at log position `position`.
    pub fn shown(recording_id: uuid::Uuid, shown: seal::SessionEventShown, position: u64) -> Self {
        let (data, shredded) = match shown.data {
            seal::Revealed::Plain(data) => (SessionEventData::from_domain(data), false),
            seal::Revealed::Shredded => (Some(SessionEventData::shredded()), true),
        };
        SessionEvent {
            event_id: id(shown.event_id),
            recording_id: id(recording_id),
            event_type: shown.event_type.into(),
            offset_ms: long(shown.offset_ms),
            shredded,
            data,
            position: long(position),
        }
    }
}

/// A comment on a recording.
#[derive(SimpleObject, Clone, Debug)]
pub struct Comment {
    /// Its id (a UUID; `node(id)` finds it).
    #[graphql(owned)]
    pub id: ID,
    /// The recording it is on.
    pub recording_id: ID,
    /// Who wrote it.
    pub author: String,
    /// Its text (1 to 4096 characters, lines allowed).
    pub text: String,
    /// How important it is.
    pub severity: CommentSeverity,
    /// Where in the recording it points (ms from the start; 64-bit).
    pub offset_ms: Option<i64>,
    /// When it was written.
    pub at: DateTime<Utc>,
}

impl From<&CommentRow> for Comment {
    fn from(c: &CommentRow) -> Self {
        Comment {
            id: id(c.id),
            recording_id: id(c.recording_id),
            author: c.author.clone(),
            text: c.text.clone(),
            severity: c.severity.into(),
            offset_ms: c.offset_ms.map(long),
            at: time(c.at),
        }
    }
}

/// A session event the detection policy flagged.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex, serial)]
pub struct DetectedEvent {
    /// Its id (a UUID; `node(id)` finds it).
    #[graphql(owned)]
    pub id: ID,
    /// The recording it was detected in.
    pub recording_id: ID,
    /// The recording's site.
    pub site_id: ID,
    /// The recording's server.
    pub server_id: ID,
    /// The recorded user.
    pub user: String,
    /// The VDA machine.
    pub host: String,
    /// The session event.
    pub event_id: ID,
    /// The session event's type.
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// How severe the matching rule says it is.
    pub severity: Severity,
    /// The rule that matched.
    pub rule: String,
    /// The event detection policy that detected it.
    pub policy_id: ID,
    /// The app, URL host, path, ... the rule looked at; null when it has
    /// none or when `shredded`.
    pub subject: Option<String>,
    /// The recording was deleted and its key destroyed: the subject
    /// (sealed under that key) can no longer be read.
    pub shredded: bool,
    /// Where in the recording (ms from its start): play from here.
    pub offset_ms: i64,
    /// When it happened (the session's start plus its offset).
    pub at: DateTime<Utc>,
    /// The log position of the detection (64-bit).
    pub position: i64,
}

impl DetectedEvent {
    /// A detection row as shown: its subject opened under the recording's
    /// key, or shredded once the recording is `deleted` or its key gone.
    pub fn shown(d: &DetectionRow, keys: &KeyRing, deleted: bool) -> Self {
        let subject = seal::detection_subject(
            keys,
            d.recording_id,
            d.detection_id,
            d.subject.as_deref(),
            d.sealed_subject.as_ref(),
            deleted,
        );
        let shredded = matches!(subject, Some(seal::Revealed::Shredded));
        DetectedEvent {
            subject: subject.and_then(seal::Revealed::plain),
            shredded,
            ..DetectedEvent::from(d)
        }
    }
}

impl From<&DetectionRow> for DetectedEvent {
    /// The row's plain fields only: its subject is left out (see
    /// [`DetectedEvent::shown`]).
    fn from(d: &DetectionRow) -> Self {
        DetectedEvent {
            id: id(d.detection_id),
            recording_id: id(d.recording_id),
            site_id: id(d.site_id),
            server_id: id(d.server_id),
            user: d.user.clone(),
            host: d.host.clone(),
            event_id: id(d.event_id),
            event_type: d.event_type.into(),
            severity: d.severity.into(),
            rule: d.rule.clone(),
            policy_id: id(d.policy_id),
            subject: None,
            shredded: false,
            offset_ms: long(d.at_offset_ms),
            at: time(d.at),
            position: long(d.position),
        }
    }
}

#[ComplexObject]
impl DetectedEvent {
    /// The recording, when the caller may see it.
    async fn recording(&self, ctx: &Context<'_>) -> ApiResult<Option<Recording>> {
        let recording_id = super::convert::uuid(&self.recording_id, "recording")?;
        visible_recording(ctx, recording_id).await
    }
}

/// A recording the caller may see, with what the caller may do with it.
pub async fn visible_recording(
    ctx: &Context<'_>,
    recording_id: uuid::Uuid,
) -> ApiResult<Option<Recording>> {
    Ok(
        read::recordings::visible(ctx.services()?, ctx.caller()?, recording_id)?
            .map(|(row, visibility)| Recording::new(row, visibility)),
    )
}

/// A recorded session.
pub struct Recording {
    pub row: Arc<RecordingRow>,
    pub visibility: DomainVisibility,
}

impl Recording {
    pub fn new(row: Arc<RecordingRow>, visibility: DomainVisibility) -> Self {
        Recording { row, visibility }
    }

    // The bodies of the resolvers that wait on the log, boxed by their
    // resolvers: async-graphql resolves every field of a `Recording`
    // through one future type, as large as its largest field's state, that
    // it allocates and copies per field; without the boxes each plain
    // field of a page would pay for these.

    async fn events_page(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        types: Option<Vec<SessionEventType>>,
    ) -> ApiResult<SessionEventConnection> {
        let services = ctx.services()?;
        let limit = page(first, &services.limits)?;
        let from_version = match after {
            Some(cursor) => cursor
                .parse::<u64>()
                .map_err(|_| ApiError::validation("invalid cursor"))?
                .saturating_add(1),
            None => 1,
        };
        let types: Option<Vec<dm::SessionEventType>> =
            types.map(|t| t.into_iter().map(Into::into).collect());
        let page = read::recordings::session_events(
            services,
            &self.row,
            from_version,
            types.as_deref(),
            limit,
        )
        .await?;
        let has_next_page = page.has_next_page;
        let edges: Vec<SessionEventEdge> = page
            .items
            .into_iter()
            .map(|stored| SessionEventEdge {
                cursor: stored.version.to_string(),
                node: SessionEvent::shown(stored.recording_id, stored.shown, stored.position),
            })
            .collect();
        let end_cursor = edges.last().map(|e| e.cursor.clone());
        // Counted only when asked for, from the recording's counts per type
        // (as of the read models' position).
        let total_count = ctx.look_ahead().field("totalCount").exists().then(|| {
            let by_type = &self.row.points.events_by_type;
            long(match &types {
                None => by_type.values().sum(),
                Some(types) => types
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter_map(|t| by_type.get(t))
                    .sum(),
            })
        });
        Ok(SessionEventConnection {
            edges,
            page_info: PageInfo {
                has_next_page,
                end_cursor,
            },
            total_count,
        })
    }
    /// The playback as a read: the caller must be allowed to play the
    /// recording, nothing is recorded and no ticket is issued.
    async fn timeline(&self, ctx: &Context<'_>) -> ApiResult<Playback> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let timeline =
            read::recordings::playback(services, caller, &self.row, self.visibility).await?;
        Ok(Playback::new(
            services,
            self.row.id,
            self.row.live(),
            self.row.deleted(),
            &timeline,
            None,
        ))
    }
}

/// A ticket handed out with an audited playback.
pub struct PlaybackTicket {
    /// The log position of the `RecordingPlayed` fact.
    pub position: u64,
    /// The ticket itself (see `crate::content::Tickets`).
    pub ticket: String,
    /// When it stops opening the content.
    pub expires: srs_domain::time::Timestamp,
}

impl Playback {
    /// The playback of `recording` from its `timeline`, with the ticket of
    /// an audited playback (`playRecording`) or none (`Recording.playback`).
    pub fn new(
        services: &Services,
        recording: uuid::Uuid,
        live: bool,
        deleted: bool,
        timeline: &crate::read::playback::Timeline,
        ticket: Option<PlaybackTicket>,
    ) -> Self {
        let mut events = Vec::new();
        let mut truncated = false;
        for envelope in &timeline.envelopes {
            if let Some(event) =
                SessionEvent::from_envelope(envelope, services.content.keys(), deleted)
            {
                if events.len() < PLAYBACK_MAX_EVENTS {
                    events.push(event);
                } else {
                    truncated = true;
                }
            }
        }
        let content_url = format!("/recordings/{recording}/content");
        Playback {
            recording_id: id(recording),
            position: ticket.as_ref().map(|t| long(t.position)),
            live,
            follow_from: long(timeline.follow_from),
            events,
            truncated,
            ticket_url: ticket
                .as_ref()
                .map(|t| format!("{content_url}?ticket={}", t.ticket)),
            ticket_expires_at: ticket.as_ref().map(|t| time(t.expires)),
            content_url,
            content_type: timeline.content_type.clone(),
            content_size: long(timeline.content_size()),
            chunks: timeline
                .chunks
                .iter()
                .map(|(&seq, c)| ContentChunk {
                    seq: long(seq),
                    size: long(c.size),
                    sha256: c.sha256.clone(),
                })
                .collect(),
        }
    }
}

/// The most session events `playback` returns in its timeline.
const PLAYBACK_MAX_EVENTS: usize = 10_000;

impl PlainFields for Recording {
    fn plain(&self, ctx: &ContextSelectionSet<'_>, field: &Field) -> Option<GqlValue> {
        match field.name.node.as_str() {
            "dataPoints" => plain::object(&self.data_points_value(), ctx, field),
            name => self.plain_value(name),
        }
    }
}

impl Recording {
    /// Its `dataPoints`.
    fn data_points_value(&self) -> DataPoints {
        DataPoints {
            recording: Some((self.row.id, self.row.deleted())),
            ..DataPoints::from(&self.row.points)
        }
    }

    /// The fields of a recording read from its row alone, as their
    /// resolvers below answer them (each converted by the scalar type its
    /// resolver returns; `plain::tests` holds them to it).
    pub fn plain_value(&self, name: &str) -> Option<GqlValue> {
        use async_graphql::resolver_utils::enum_value;
        use async_graphql::Value;
        fn value<T: ScalarType>(v: T) -> Value {
            v.to_value()
        }
        fn maybe<T: ScalarType>(v: Option<T>) -> Value {
            v.map_or(Value::Null, value)
        }
        fn text(v: &str) -> Value {
            Value::String(v.to_owned())
        }
        fn texts<'a>(v: impl Iterator<Item = &'a String>) -> Value {
            Value::List(v.map(|s| text(s)).collect())
        }
        let row = &self.row;
        Some(match name {
            "id" => value(id(row.id)),
            "siteId" => value(id(row.site_id)),
            "serverId" => value(id(row.server_id)),
            "sessionId" => text(&row.session_id),
            "part" => value(int(u64::from(row.part))),
            "previousRecordingId" => maybe(row.previous_recording_id.map(id)),
            "user" => text(&row.user),
            "domain" => row.domain.as_deref().map_or(Value::Null, text),
            "groups" => texts(row.groups.iter()),
            "clientName" => row.client_name.as_deref().map_or(Value::Null, text),
            "clientIp" => row.client_ip.as_deref().map_or(Value::Null, text),
            "host" => text(&row.host),
            "deliveryGroup" => row.delivery_group.as_deref().map_or(Value::Null, text),
            "applications" => texts(row.points.applications.iter()),
            "startedAt" => value(time(row.started_at)),
            "endedAt" => maybe(row.ended_at().map(time)),
            "durationSec" => value(long(row.duration_sec())),
            "live" => value(row.live()),
            "sizeBytes" => value(long(row.points.size_bytes)),
            "restricted" => value(row.restricted()),
            "archived" => value(row.archived()),
            "deleted" => value(row.deleted()),
            "eventCount" => value(int(row.points.event_count)),
            "commentCount" => value(int(row.comment_count)),
            "plays" => value(int(row.plays)),
            "mode" => enum_value(RecordingMode::from(row.mode)),
            "lifecycle" => enum_value(Lifecycle::from(row.lifecycle)),
            "maxSeverity" => row
                .max_severity
                .map_or(Value::Null, |s| enum_value(Severity::from(s))),
            _ => return None,
        })
    }
}

/// A recorded session (or one part of it, after a rollover), as the caller may see it.
#[Object(serial)]
impl Recording {
    /// Its id (a UUID; `node(id)` finds it).
    pub async fn id(&self) -> ID {
        id(self.row.id)
    }
    /// Its site.
    async fn site_id(&self) -> ID {
        id(self.row.site_id)
    }
    /// Its site, when it exists.
    async fn site(&self, ctx: &Context<'_>) -> ApiResult<Option<Boxed<Site>>> {
        Ok(read::servers::site(ctx.services()?, self.row.site_id)?.map(|s| Boxed::new(Site(s))))
    }
    /// The server that recorded it.
    async fn server_id(&self) -> ID {
        id(self.row.server_id)
    }
    /// That server, when it exists.
    async fn server(&self, ctx: &Context<'_>) -> ApiResult<Option<Boxed<Server>>> {
        Ok(
            read::servers::named_server(ctx.services()?, self.row.server_id)?
                .map(|s| Boxed::new(Server(s))),
        )
    }
    /// The session's id on the server.
    async fn session_id(&self) -> &str {
        &self.row.session_id
    }
    /// 1 for a session's first recording, n+1 after each rollover.
    async fn part(&self) -> i32 {
        int(u64::from(self.row.part))
    }
    /// The session's previous part, after a rollover.
    async fn previous_recording_id(&self) -> Option<ID> {
        self.row.previous_recording_id.map(id)
    }
    /// The recorded user (`DOMAIN\user` or `user@domain`).
    async fn user(&self) -> &str {
        &self.row.user
    }
    /// The user's domain, if the name has one.
    async fn domain(&self) -> Option<&str> {
        self.row.domain.as_deref()
    }
    /// The user's groups.
    async fn groups(&self) -> &[String] {
        &self.row.groups
    }
    /// The client machine's name.
    async fn client_name(&self) -> Option<&str> {
        self.row.client_name.as_deref()
    }
    /// The client's address.
    async fn client_ip(&self) -> Option<&str> {
        self.row.client_ip.as_deref()
    }
    /// The VDA machine.
    async fn host(&self) -> &str {
        &self.row.host
    }
    /// The delivery group.
    async fn delivery_group(&self) -> Option<&str> {
        self.row.delivery_group.as_deref()
    }
    /// Published applications at the start and every application started.
    async fn applications(&self) -> Vec<&str> {
        // Borrowed: the row outlives the field, no copies before the answer's.
        self.row
            .points
            .applications
            .iter()
            .map(String::as_str)
            .collect()
    }
    /// What it holds: screen and events, or events only.
    async fn mode(&self) -> RecordingMode {
        self.row.mode.into()
    }
    /// Why it is recorded.
    async fn decision(&self) -> Boxed<RecordingDecision> {
        Boxed::new(RecordingDecision::from(&self.row.decision))
    }
    /// Where it is in its life.
    async fn lifecycle(&self) -> Lifecycle {
        self.row.lifecycle.into()
    }
    /// When the session started.
    async fn started_at(&self) -> DateTime<Utc> {
        time(self.row.started_at)
    }
    /// When it ended (`null` while live).
    async fn ended_at(&self) -> Option<DateTime<Utc>> {
        self.row.ended_at().map(time)
    }
    /// Its duration in seconds (so far, when live; 64-bit).
    async fn duration_sec(&self) -> i64 {
        long(self.row.duration_sec())
    }
    /// In progress.
    async fn live(&self) -> bool {
        self.row.live()
    }
    /// Bytes of stored content (64-bit).
    async fn size_bytes(&self) -> i64 {
        long(self.row.points.size_bytes)
    }
    /// Whether it is restricted (only ADMIN and PRIVILEGED_PLAYER see it).
    async fn restricted(&self) -> bool {
        self.row.restricted()
    }
    /// Why and by whom it is restricted.
    async fn restriction(&self) -> Option<Boxed<Restriction>> {
        self.row.restriction.as_ref().map(|r| {
            Boxed::new(Restriction {
                reason: r.reason.clone(),
                by: r.by.clone(),
                at: time(r.at),
            })
        })
    }
    /// Whether its content is archived.
    async fn archived(&self) -> bool {
        self.row.archived()
    }
    /// Whether an active legal hold covers it: it cannot be deleted.
    async fn on_legal_hold(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        crate::read::holds::on_legal_hold(ctx.services()?, &self.row.facts())
    }
    /// The active legal holds covering it (ADMIN and AUDITOR of its site;
    /// null with `FORBIDDEN` for others).
    async fn legal_holds(
        &self,
        ctx: &Context<'_>,
    ) -> ApiResult<Option<Boxed<Vec<super::holds::LegalHold>>>> {
        let facts = self.row.facts();
        Box::pin(super::holds::recording_holds(ctx, &facts))
            .await
            .map(|holds| Some(Boxed::new(holds)))
    }
    /// Whether it was deleted (its session data shredded).
    async fn deleted(&self) -> bool {
        self.row.deleted()
    }
    /// Session events recorded.
    async fn event_count(&self) -> i32 {
        int(self.row.points.event_count)
    }
    /// The highest severity detected in it.
    async fn max_severity(&self) -> Option<Severity> {
        self.row.max_severity.map(Into::into)
    }
    /// Comments on it.
    async fn comment_count(&self) -> i32 {
        int(self.row.comment_count)
    }
    /// How often it was played or downloaded.
    async fn plays(&self) -> i32 {
        int(self.row.plays)
    }
    /// What the caller may do with it: LISTED (see) or PLAYABLE (also play).
    async fn visibility(&self) -> Visibility {
        self.visibility.into()
    }
    /// The session events, in order (`types` narrows them).
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        types: Option<Vec<SessionEventType>>,
    ) -> ApiResult<Boxed<SessionEventConnection>> {
        Box::pin(self.events_page(ctx, first, after, types))
            .await
            .map(Boxed::new)
    }
    /// What the detection policy flagged in it.
    async fn detections(&self, ctx: &Context<'_>) -> ApiResult<Boxed<Vec<DetectedEvent>>> {
        let services = ctx.services()?;
        let (keys, deleted) = (services.content.keys(), self.row.deleted());
        Ok(
            read::recordings::detections(services, self.row.id, PLAYBACK_MAX_EVENTS)?
                .iter()
                .map(|row| DetectedEvent::shown(row, keys, deleted))
                .collect(),
        )
    }
    /// The comments on it.
    async fn comments(&self, ctx: &Context<'_>) -> ApiResult<Boxed<Vec<Comment>>> {
        let comments = read::recordings::comments(ctx.services()?, self.row.id)?;
        Ok(comments.iter().map(Comment::from).collect())
    }
    /// Response actions triggered on the session.
    async fn responses(&self, ctx: &Context<'_>) -> ApiResult<Boxed<Vec<PendingResponse>>> {
        let responses = read::recordings::responses(ctx.services()?, self.row.id)?;
        Ok(responses.iter().map(PendingResponse::from).collect())
    }
    /// Figures about it.
    async fn data_points(&self) -> Boxed<DataPoints> {
        Boxed::new(self.data_points_value())
    }
    /// Events and detections per type in buckets of `bucketSec` seconds
    /// (default 60) from the session start.
    async fn event_visualization(
        &self,
        ctx: &Context<'_>,
        bucket_sec: Option<i32>,
    ) -> ApiResult<Boxed<Vec<VisualizationBucket>>> {
        let bucket = bucket_sec.unwrap_or(60);
        if !(1..=86_400).contains(&bucket) {
            return Err(ApiError::validation(
                "bucketSec must be between 1 and 86400",
            ));
        }
        let buckets =
            read::recordings::event_visualization(ctx.services()?, self.row.id, bucket as u64)?;
        Ok(buckets.iter().map(VisualizationBucket::from).collect())
    }
    /// The recording's playback as a read: the timeline (session events
    /// with offsets, detections, comments), the stored content's type,
    /// size and chunks, and the log position to follow it live from
    /// (`recordingEvents` subscription). Nothing is recorded, so `position`,
    /// `ticketUrl` and `ticketExpiresAt` are null: a player plays with the
    /// `playRecording` mutation (the audited playback, with a ticket) or
    /// GETs `contentUrl` with its bearer token (recorded there). FORBIDDEN
    /// when the caller may see but not play it (e.g. an auditor and an
    /// archived recording); the refusal is recorded.
    async fn playback(&self, ctx: &Context<'_>) -> ApiResult<Boxed<Playback>> {
        Box::pin(self.timeline(ctx)).await.map(Boxed::new)
    }
}

/// A playback: the timeline and where to follow it live from.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Playback {
    /// The recording played.
    pub recording_id: ID,
    /// The log position of the `RecordingPlayed` fact (64-bit); null on
    /// `Recording.playback`, which records nothing.
    pub position: Option<i64>,
    /// Whether the session is still being recorded.
    pub live: bool,
    /// Subscribe to `recordingEvents` for what comes after this position (64-bit).
    pub follow_from: i64,
    /// The session events in order (at most 10000).
    pub events: Vec<SessionEvent>,
    /// Whether `events` stopped at its limit.
    pub truncated: bool,
    /// Where to GET the content (relative to the server; Range supported).
    pub content_url: String,
    /// `contentUrl` with a playback ticket: GET it with no bearer header
    /// (a `<video>` or terminal player's `src`) until `ticketExpiresAt`.
    /// It opens this recording's content only, as the caller, who must
    /// still be allowed to play it at each use (a revoked token or grant,
    /// or a restriction placed since, refuses it). The ticket carries no
    /// secret and is forgotten when the server restarts; play again for
    /// a fresh one. Null on `Recording.playback`: only `playRecording`,
    /// the audited playback, hands out a ticket.
    pub ticket_url: Option<String>,
    /// When `ticketUrl` stops opening the content (5 minutes after issue);
    /// null without a ticket.
    pub ticket_expires_at: Option<DateTime<Utc>>,
    /// The content's MIME type (`application/x-asciicast` for a terminal session).
    pub content_type: String,
    /// The content's size in bytes (sum of the stored chunks).
    pub content_size: i64,
    /// The stored chunks in seq order.
    pub chunks: Vec<ContentChunk>,
}

/// One stored chunk of a recording's content.
#[derive(SimpleObject, Clone, Debug)]
pub struct ContentChunk {
    /// The chunk's number, from 0 (64-bit).
    pub seq: i64,
    /// Plain size in bytes.
    pub size: i64,
    /// Hex SHA-256 of the chunk as stored (encrypted), as the log holds it.
    pub sha256: String,
}

#[ComplexObject]
impl Playback {
    /// What the detection policy flagged in it.
    async fn detections(&self, ctx: &Context<'_>) -> ApiResult<Vec<DetectedEvent>> {
        let recording_id = super::convert::uuid(&self.recording_id, "recording")?;
        let services = ctx.services()?;
        let deleted = read::recordings::deleted(services, recording_id)?;
        Ok(read::recordings::first_detections(services, recording_id)?
            .iter()
            .map(|row| DetectedEvent::shown(row, services.content.keys(), deleted))
            .collect())
    }
    /// The comments on it.
    async fn comments(&self, ctx: &Context<'_>) -> ApiResult<Vec<Comment>> {
        let recording_id = super::convert::uuid(&self.recording_id, "recording")?;
        Ok(read::recordings::comments(ctx.services()?, recording_id)?
            .iter()
            .map(Comment::from)
            .collect())
    }
}

/// A response action due on a session.
#[derive(SimpleObject, Clone, Debug)]
pub struct PendingResponse {
    /// Its id (a UUID; `node(id)` finds it).
    #[graphql(owned)]
    pub id: ID,
    /// The recording of the session.
    pub recording_id: ID,
    /// The server that carries it out.
    pub server_id: ID,
    /// The session's id on the server.
    pub session_id: String,
    /// The recorded user.
    pub user: String,
    /// The VDA machine.
    pub host: String,
    /// The event response policy.
    pub policy_id: ID,
    /// The rule that fired.
    pub rule: String,
    /// What fired it (e.g. `session start`, a detection).
    pub trigger: String,
    /// What to do.
    pub action: ResponseAction,
    /// For EMAIL_ALERT.
    pub recipients: Vec<String>,
    /// For LOCK_SESSION.
    pub message: Option<String>,
    /// The detection that fired it, if one did.
    pub detection_id: Option<ID>,
    /// The detected event's type, if a detection fired it.
    pub event_type: Option<SessionEventType>,
    /// The detection's severity, if a detection fired it.
    pub severity: Option<Severity>,
    /// Where in the session it fired (ms from the start; 64-bit).
    pub offset_ms: i64,
    /// When it fired.
    pub triggered_at: DateTime<Utc>,
    /// Set once the agent acknowledged it.
    pub outcome: Option<String>,
    /// When the agent acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<&ResponseRow> for PendingResponse {
    fn from(r: &ResponseRow) -> Self {
        let (recipients, message) = match &r.action {
            dm::ResponseAction::EmailAlert { recipients } => (recipients.clone(), None),
            dm::ResponseAction::LockSession { message } => (Vec::new(), Some(message.clone())),
            _ => (Vec::new(), None),
        };
        PendingResponse {
            id: id(r.response_id),
            recording_id: id(r.recording_id),
            server_id: id(r.server_id),
            session_id: r.session_id.clone(),
            user: r.user.clone(),
            host: r.host.clone(),
            policy_id: id(r.policy_id),
            rule: r.rule.clone(),
            trigger: r.trigger.clone(),
            action: r.action.kind().into(),
            recipients,
            message,
            detection_id: r.detection_id.map(id),
            event_type: r.event_type.map(Into::into),
            severity: r.severity.map(Into::into),
            offset_ms: long(r.at_offset_ms),
            triggered_at: time(r.triggered_at),
            outcome: r.delivered.as_ref().map(|d| d.outcome.clone()),
            delivered_at: r.delivered.as_ref().map(|d| time(d.at)),
        }
    }
}

/// A policy of a site (or a built-in system policy).
#[derive(SimpleObject, Clone, Debug)]
pub struct Policy {
    /// The policy's id (system policies have fixed ids, the same on every
    /// site); `node(id)` finds it.
    #[graphql(owned)]
    pub id: ID,
    /// `null` for system policies (they belong to every site).
    pub site_id: Option<ID>,
    /// Which of the three kinds it is.
    pub kind: PolicyKind,
    /// The policy's name.
    pub name: String,
    /// A built-in policy: never stored, never editable.
    pub system: bool,
    /// The policy stream's version: pass it as `expectedVersion` to `updatePolicy`.
    pub version: i32,
    /// Whether it was deleted.
    pub deleted: bool,
    /// When it was created (`null` for system policies).
    pub created_at: Option<DateTime<Utc>>,
    /// When it last changed (`null` for system policies).
    pub updated_at: Option<DateTime<Utc>>,
    /// Its content, typed, in the shape of `PolicyUpdateInput`: send it
    /// back to `updatePolicy` (changed or not) as it reads.
    pub definition: PolicyDefinition,
}

impl From<&PolicyRow> for Policy {
    fn from(p: &PolicyRow) -> Self {
        Policy {
            id: id(p.id),
            site_id: p.site_id.map(id),
            kind: p.kind.into(),
            name: p.name.clone(),
            system: p.system,
            version: int(p.version),
            deleted: p.deleted,
            created_at: p.created_at.map(time),
            updated_at: p.updated_at.map(time),
            definition: PolicyDefinition::new(&p.name, &p.body),
        }
    }
}

/// The policies of one kind: all of them and the active one.
#[derive(SimpleObject, Clone, Debug)]
pub struct KindPolicies {
    /// Every policy of the kind: the system ones, then the site's own.
    pub all: Vec<Policy>,
    /// The one in force.
    pub active: Policy,
}

impl From<&KindRows> for KindPolicies {
    fn from(k: &KindRows) -> Self {
        KindPolicies {
            all: k.all.iter().map(Policy::from).collect(),
            active: Policy::from(&k.active),
        }
    }
}

/// A site's policies of each kind.
#[derive(SimpleObject, Clone, Debug)]
pub struct SitePolicies {
    /// The site.
    pub site_id: ID,
    /// Recording policies.
    pub recording: KindPolicies,
    /// Event detection policies.
    pub event_detection: KindPolicies,
    /// Event response policies.
    pub event_response: KindPolicies,
}

/// What a playback permission admits: the whole site (`wholeSite`, no
/// criteria), or the recordings matching every non-empty list.
#[derive(SimpleObject, Clone, Debug)]
pub struct PlaybackScope {
    /// Every recording of the site: the scope has no criteria.
    pub whole_site: bool,
    /// Recorded users; empty: any.
    pub recorded_users: Vec<String>,
    /// Groups of the recorded users; empty: any.
    pub recorded_groups: Vec<String>,
    /// Servers; empty: any.
    pub server_ids: Vec<ID>,
    /// VDA machines; empty: any.
    pub hosts: Vec<String>,
    /// Delivery groups; empty: any.
    pub delivery_groups: Vec<String>,
    /// Applications; empty: any.
    pub applications: Vec<String>,
}

/// A permission to see and play recordings of a site (ADMIN grants and
/// revokes them). An AUDITOR sees and plays only the unrestricted
/// recordings that one of its permissions admits; without one on a site it
/// sees none of the site. So granting can only add to what it sees, and
/// revoking can only take away. Restricted recordings stay with ADMIN and
/// PRIVILEGED_PLAYER whatever the permissions.
#[derive(SimpleObject, Clone, Debug)]
pub struct PlaybackPermission {
    /// Its id (a UUID; `node(id)` finds it).
    #[graphql(owned)]
    pub id: ID,
    /// The site it covers.
    pub site_id: ID,
    /// A principal name, one of a principal's groups, or one token as
    /// `token:<token id>` (what the upgrade to explicit permissions grants).
    pub principal: String,
    /// Which of the site's recordings it admits.
    pub scope: PlaybackScope,
    /// When it was granted.
    pub granted_at: DateTime<Utc>,
    /// Who granted it.
    pub granted_by: String,
}

impl From<&PermissionRow> for PlaybackPermission {
    fn from(p: &PermissionRow) -> Self {
        PlaybackPermission {
            id: id(p.id),
            site_id: id(p.site_id),
            principal: p.principal.clone(),
            scope: PlaybackScope {
                whole_site: p.scope.is_whole_site(),
                recorded_users: p.scope.recorded_users.clone(),
                recorded_groups: p.scope.recorded_groups.clone(),
                server_ids: p.scope.server_ids.iter().copied().map(id).collect(),
                hosts: p.scope.hosts.clone(),
                delivery_groups: p.scope.delivery_groups.clone(),
                applications: p.scope.applications.clone(),
            },
            granted_at: time(p.granted_at),
            granted_by: p.granted_by.clone(),
        }
    }
}

/// The last run of a site's retention.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetentionRun {
    /// When it ran.
    pub ran_at: DateTime<Utc>,
    /// Recordings archived.
    pub archived: i32,
    /// Recordings deleted.
    pub deleted: i32,
    /// Due for deletion but kept by a legal hold.
    pub held: i32,
}

/// When a site's recordings are archived and deleted.
#[derive(SimpleObject, Clone, Debug)]
pub struct RetentionPolicy {
    /// The site.
    pub site_id: ID,
    /// Days after a recording's end before it is archived; `null`: never.
    pub archive_after_days: Option<i32>,
    /// Days after a recording's end before it is deleted; `null`: never.
    pub delete_after_days: Option<i32>,
    /// The daily run time, `HH:MM` UTC.
    pub run_at: String,
    /// Whether restricted recordings are spared.
    pub exclude_restricted: bool,
    /// When it was set.
    pub set_at: DateTime<Utc>,
    /// The last run, if any.
    pub last_run: Option<RetentionRun>,
}

impl From<&RetentionRow> for RetentionPolicy {
    fn from(r: &RetentionRow) -> Self {
        RetentionPolicy {
            site_id: id(r.site_id),
            archive_after_days: r.policy.archive_after_days.map(|d| int(u64::from(d))),
            delete_after_days: r.policy.delete_after_days.map(|d| int(u64::from(d))),
            run_at: format!("{:02}:{:02}", r.policy.run_at.hour, r.policy.run_at.minute),
            exclude_restricted: r.policy.exclude_restricted,
            set_at: time(r.set_at),
            last_run: r.last_run.as_ref().map(|run| RetentionRun {
                ran_at: time(run.ran_at),
                archived: int(run.archived),
                deleted: int(run.deleted),
                held: int(run.held),
            }),
        }
    }
}

/// One entry of the admin audit trail.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct AuditEntry {
    /// The log position of the audited event (64-bit).
    pub position: i64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `principal:<name>`, `agent:<server id>` or `system:<component>`.
    pub actor: String,
    /// Its category.
    pub category: AuditCategory,
    /// A stable dotted name, e.g. `policy.activated`.
    pub action: String,
    /// What it acted on: `kind:<id>`.
    pub target: String,
    /// The site it concerns, if any.
    pub site_id: Option<ID>,
    /// A human-readable summary.
    pub detail: String,
    /// The logged event's type name.
    pub event_type: String,
    /// The logged event's id.
    pub event_id: ID,
    /// The request that caused it.
    pub correlation_id: ID,
}

impl From<&AuditRow> for AuditEntry {
    fn from(a: &AuditRow) -> Self {
        AuditEntry {
            position: long(a.position),
            at: time(a.at),
            actor: a.actor.label(),
            category: a.category.into(),
            action: a.action.clone(),
            target: a.target.clone(),
            site_id: a.site_id.map(id),
            detail: a.detail.clone(),
            event_type: a.event_type.clone(),
            event_id: id(a.event_id),
            correlation_id: id(a.correlation_id),
        }
    }
}

/// One stored event of the log, as the history and the `log` subscription show it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct LoggedEvent {
    /// Its log position: global, gapless, from 1 (64-bit).
    pub position: i64,
    /// The aggregate's stream, e.g. `recording-<id>`.
    pub stream: String,
    /// Its number within the stream, from 1 (64-bit).
    pub version: i64,
    /// The event's id (its idempotency key).
    pub event_id: ID,
    /// The event type's name, e.g. `RecordingPlayed` (the payload's one key).
    #[graphql(name = "type")]
    pub event_type: String,
    /// When the log writer stored it.
    pub recorded_at: DateTime<Utc>,
    /// Who caused it: `principal:<name>`, `agent:<server id>` or `system:<component>`.
    pub actor: String,
    /// The request that caused it.
    pub correlation_id: ID,
    /// The event that caused it, if one did.
    pub causation_id: Option<ID>,
    /// The site it belongs to, if any.
    pub site_id: Option<ID>,
    /// The recording it is about, if any.
    pub recording_id: Option<ID>,
    /// The event's fields: `{"<type>": {<field>: ...}}` with camelCase
    /// field names (`siteId`, `holdId`, ...). Session data sealed under a
    /// recording's key is shown opened, or as `"[shredded]"` once the
    /// recording is deleted; hashes of secrets as `"<redacted>"`.
    pub payload: Json<Value>,
    /// The chain hash (hex).
    pub hash: String,
}

impl LoggedEvent {
    /// An event as history readers see it: what is sealed under its
    /// recording's key opened, or `"[shredded]"` in its place once the
    /// recording is `deleted` or its key gone (`srs_domain::seal::shown_payload`),
    /// hashes of secrets redacted, field names in camelCase
    /// ([`super::payload`]).
    pub fn shown(e: &Envelope<DomainEvent>, keys: &KeyRing, deleted: bool) -> Self {
        let mut payload = seal::shown_payload(keys, &e.payload, deleted);
        super::query::redact(&mut payload);
        LoggedEvent {
            payload: Json(super::payload::camel_keys(payload)),
            ..LoggedEvent::from(e)
        }
    }
}

impl From<&Envelope<DomainEvent>> for LoggedEvent {
    /// The event's stored fields: sealed parts as ciphertext (see
    /// [`LoggedEvent::shown`]).
    fn from(e: &Envelope<DomainEvent>) -> Self {
        LoggedEvent {
            position: long(e.position),
            stream: e.stream.clone(),
            version: long(e.version),
            event_id: id(e.event_id),
            event_type: e.payload.name().to_owned(),
            recorded_at: time(e.recorded_at),
            actor: e.actor.label(),
            correlation_id: id(e.correlation_id),
            causation_id: e.causation_id.map(id),
            site_id: e.payload.site_id().map(id),
            recording_id: e.payload.recording_id().map(id),
            payload: Json(serde_json::to_value(&e.payload).unwrap_or(Value::Null)),
            hash: e.hash.to_hex(),
        }
    }
}

/// A projection's runner.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectionStatus {
    /// The read model's name.
    pub name: String,
    /// Its code's version (a change rebuilds it).
    pub version: i32,
    /// Which build of its tree answers.
    pub generation: i32,
    /// The last log position applied.
    pub position: i32,
    /// The log's head position.
    pub head: i32,
    /// Positions it is behind the head.
    pub lag: i32,
    /// How fast it applies events.
    pub events_per_sec: f64,
    /// CATCHING_UP, LIVE, REBUILDING or FAILED.
    pub state: String,
    /// Its last failure, if any.
    pub last_error: Option<String>,
    /// Set while a rebuild of this projection runs.
    pub rebuild: Option<ProjectionRebuild>,
}

/// How far a running rebuild is.
#[derive(SimpleObject, Clone, Debug)]
pub struct ProjectionRebuild {
    /// The generation of the tree being built.
    pub generation: i32,
    /// The last position applied to it.
    pub position: i32,
    /// The log head when the rebuild started.
    pub target: i32,
}

impl From<&Status> for ProjectionStatus {
    fn from(s: &Status) -> Self {
        ProjectionStatus {
            name: s.name.clone(),
            version: int(u64::from(s.version)),
            generation: int(s.generation),
            position: int(s.position),
            head: int(s.head),
            lag: int(s.lag),
            events_per_sec: s.events_per_sec,
            state: serde_json::to_value(s.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
            last_error: s.last_error.clone(),
            rebuild: s.rebuild.as_ref().map(|r| ProjectionRebuild {
                generation: int(r.generation),
                position: int(r.position),
                target: int(r.target),
            }),
        }
    }
}
