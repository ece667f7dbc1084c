//! What a server's agent needs from srs, and nothing more.
//!
//! - `agentConfig(serverId)`: the server's settings (with their version)
//!   and its site's active recording, event detection and event response
//!   policies, with a `configTag` that changes whenever any of them does.
//!   For the server's AGENT and ADMINs of its site; another role is
//!   `FORBIDDEN`; an agent of another server (or an ADMIN of another
//!   site) gets the `NOT_FOUND` an absent server gets (a server the
//!   caller may not see answers as an absent one everywhere).
//! - The answer of `heartbeat` (and of every server mutation) carries the
//!   settings version, the `configTag` and the count of pending response
//!   actions: an agent refetches `agentConfig` when the tag moved, and
//!   `pendingResponses` (or keeps the `responses` subscription open) when
//!   the count is not zero.
//! - `responses(serverId)` (subscription, graphql-ws): the response
//!   actions pending when it starts, then each one as it is decided, for
//!   the server's AGENT or an ADMIN. Polling `pendingResponses` stays for
//!   agents that cannot hold a socket.
//! - `recordingChunks(recordingId)` (and `GET /recordings/{id}/chunks`,
//!   `crate::content::http`): the chunks stored of a recording, for its
//!   server's AGENT to resume an upload and for whoever may see the
//!   recording. Listing is never a playback: it writes no
//!   `RecordingPlayed` (only `playback` and content reads are plays).
//! - `Server.lastHeartbeat`: the latest of the last heartbeat this process
//!   saw, the minute kept in the data directory (written at most once a
//!   minute per server, never to the log; see [`crate::last_used`]), and
//!   the one a `ServerWentOffline` fact recorded. It moves without a read
//!   model.
//!
//! Answers about the configuration and pending responses wait (bounded)
//! for the read models they read to reach the log head: a heartbeat's own
//! position may be older than the last policy change or response.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, SimpleObject, ID};
use chrono::{DateTime, Utc};
use futures_util::future;
use futures_util::stream::{self, Stream, StreamExt};
use sha2::{Digest, Sha256};
use srs_domain::log::EventStore as _;
use srs_domain::model::{self as dm, Action, DomainEvent, Principal as DomainPrincipal};
use srs_projections::models::detections::{DetectionsProjection, ResponseRow};
use srs_projections::models::policies::SitePolicies as PolicyRows;
use srs_projections::models::servers::ServerRow;
use srs_projections::Which;
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, int, time, uuid};
use super::enums::SessionEventType;
use super::types::{PendingResponse, Policy, ServerSettings};
use crate::error::ApiResult;
use crate::read;
use crate::state::Services;

/// What a server's agent works by: its settings and its site's active
/// policies.
#[derive(SimpleObject)]
pub struct AgentConfig {
    /// The server.
    pub server_id: ID,
    /// The server's site.
    pub site_id: ID,
    /// The settings' version (the one `heartbeat` answers, and
    /// `updateServerSettings` takes as `expectedVersion`).
    pub settings_version: i32,
    /// The server's settings.
    pub settings: ServerSettings,
    /// The site's active recording policy: whom and what to record.
    pub recording_policy: Policy,
    /// The site's active event detection policy: what to log and what to flag.
    pub detection_policy: Policy,
    /// The event types the active detection policy logs: events of other
    /// types need not be sent.
    pub logged: Vec<SessionEventType>,
    /// The site's active event response policy: what to do when.
    pub response_policy: Policy,
    /// An opaque tag of this configuration: it changes whenever the
    /// settings or an active policy (which one, or its content) change.
    /// `heartbeat` answers it too, so an agent refetches only then.
    pub config_tag: String,
    /// Response actions decided for the server and not yet acknowledged.
    pub pending_response_count: i32,
}

/// One stored chunk of a recording's content.
#[derive(SimpleObject, Clone, Debug)]
pub struct StoredChunk {
    /// The chunk's number (from 0).
    pub seq: i32,
    /// Its size in bytes, before encryption.
    pub size: i32,
    /// Hex SHA-256 of the chunk as stored (encrypted), as the log holds it.
    pub sha256: String,
}

/// The content stored of a recording so far.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordingChunks {
    /// The recording.
    pub recording_id: ID,
    /// The content's MIME type (`application/x-asciicast` for a terminal session).
    pub content_type: String,
    /// The stored chunks in seq order.
    pub chunks: Vec<StoredChunk>,
    /// The sum of the stored chunks' sizes, in bytes.
    pub stored_bytes: i32,
    /// The first seq not stored: where an interrupted upload resumes
    /// (chunks below it play; chunks above it wait for it).
    pub next_seq: i32,
    /// Whether the recording ended (after its end only chunks missing
    /// below the last stored one are taken).
    pub ended: bool,
}

/// The tag of a configuration: settings version and each active
/// policy's id and version, hashed.
fn config_tag(row: &ServerRow, policies: &PolicyRows) -> String {
    let mut hash = Sha256::new();
    hash.update(row.id.as_bytes());
    hash.update(row.settings_version.to_be_bytes());
    for active in [
        &policies.recording.active,
        &policies.event_detection.active,
        &policies.event_response.active,
    ] {
        hash.update(active.id.as_bytes());
        hash.update(active.version.to_be_bytes());
    }
    hex::encode(&hash.finalize()[..12])
}

/// `agentConfig(serverId)`.
pub(crate) async fn agent_config(
    ctx: &Context<'_>,
    server_id: &ID,
    at_least: Option<i32>,
) -> ApiResult<AgentConfig> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let server = uuid(server_id, "server")?;
    let read::agents::AgentConfig {
        server: row,
        policies,
        pending_responses,
    } = read::agents::agent_config(services, caller, server, at_least).await?;
    let logged = match &policies.event_detection.active.body {
        dm::PolicyBody::EventDetection(body) => body.logged.iter().map(|&t| t.into()).collect(),
        _ => Vec::new(),
    };
    Ok(AgentConfig {
        server_id: id(row.id),
        site_id: id(row.site_id),
        settings_version: int(row.settings_version),
        settings: ServerSettings::from(&row.settings),
        recording_policy: Policy::from(&policies.recording.active),
        detection_policy: Policy::from(&policies.event_detection.active),
        logged,
        response_policy: Policy::from(&policies.event_response.active),
        config_tag: config_tag(&row, &policies),
        pending_response_count: int(pending_responses),
    })
}

/// `ServerPayload.settingsVersion`.
pub(crate) async fn payload_settings_version(
    ctx: &Context<'_>,
    position: i32,
    server_id: &ID,
) -> ApiResult<i32> {
    let services = ctx.services()?;
    let server = uuid(server_id, "server")?;
    Ok(int(read::agents::payload_server(
        services, position, server,
    )
    .await?
    .settings_version))
}

/// `ServerPayload.configTag` (who may read the configuration: the
/// server's AGENT, or an ADMIN).
pub(crate) async fn payload_config_tag(
    ctx: &Context<'_>,
    position: i32,
    server_id: &ID,
) -> ApiResult<String> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let server = uuid(server_id, "server")?;
    let (row, policies) = read::agents::payload_config(services, caller, position, server).await?;
    Ok(config_tag(&row, &policies))
}

/// `ServerPayload.pendingResponseCount` (the server's AGENT, or an ADMIN).
pub(crate) async fn payload_pending_count(
    ctx: &Context<'_>,
    position: i32,
    server_id: &ID,
) -> ApiResult<i32> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let server = uuid(server_id, "server")?;
    Ok(int(read::agents::payload_pending_count(
        services, caller, position, server,
    )
    .await?))
}

/// `Server.lastHeartbeat`: the latest of what this process saw, the
/// minute kept in the data directory, and what the log recorded when the
/// server went offline.
pub(crate) fn last_heartbeat(services: &Services, row: &ServerRow) -> Option<DateTime<Utc>> {
    [
        services.service.last_heartbeat(row.id),
        services.heartbeats.get(row.id),
        row.last_heartbeat,
    ]
    .into_iter()
    .flatten()
    .max()
    .map(time)
}

/// Notes a heartbeat of `server` (at most one write per server and minute).
pub(crate) fn heartbeat_seen(services: &Services, server: Uuid) {
    let at = services
        .service
        .last_heartbeat(server)
        .unwrap_or_else(|| services.service.now());
    services.heartbeats.touch(server, at);
}

/// `recordingChunks(recordingId)`.
pub(crate) async fn recording_chunks(
    ctx: &Context<'_>,
    recording_id: &ID,
    at_least: Option<i32>,
) -> ApiResult<RecordingChunks> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let recording = uuid(recording_id, "recording")?;
    services.at_least(at_least).await?;
    let loaded = services
        .service
        .recording_content(caller, recording)
        .await?;
    let state = &loaded.state;
    let next_seq = (0u64..)
        .find(|seq| !state.chunks.contains_key(seq))
        .unwrap_or(0);
    Ok(RecordingChunks {
        recording_id: id(recording),
        content_type: state
            .content_type
            .clone()
            .unwrap_or_else(|| dm::DEFAULT_CONTENT_TYPE.to_string()),
        chunks: state
            .chunks
            .iter()
            .map(|(&seq, chunk)| StoredChunk {
                seq: int(seq),
                size: int(chunk.size),
                sha256: chunk.sha256.clone(),
            })
            .collect(),
        stored_bytes: int(state.chunks.values().map(|c| c.size).sum()),
        next_seq: int(next_seq),
        ended: state.ended_at.is_some(),
    })
}

/// How long the `responses` subscription waits for the read models to
/// list the pending actions before it starts.
const CATCH_UP: Duration = Duration::from_secs(2);

/// `responses(serverId)`: the pending actions, then each new one.
pub(crate) async fn responses(
    services: Arc<Services>,
    caller: DomainPrincipal,
    server_id: &ID,
) -> ApiResult<impl Stream<Item = PendingResponse> + Send + 'static> {
    let server = uuid(server_id, "server")?;
    crate::read::access::server(&services, &caller, Action::HandleResponses, server).await?;
    // What is pending as of `head`, then what the log decides after it;
    // a response the read model already had past `head` is not sent twice.
    let head = services.store.head().position;
    let _ = services
        .reads
        .wait_for(Which::Only(&[DetectionsProjection::NAME]), head, CATCH_UP)
        .await;
    let pending = services.reads.detections()?.pending_responses(server)?;
    let sent: HashSet<Uuid> = pending.iter().map(|r| r.response_id).collect();
    let first: Vec<PendingResponse> = pending.iter().map(PendingResponse::from).collect();
    let later = super::subscription::follow(&services, head + 1).filter_map(move |envelope| {
        let row = match &envelope.payload {
            DomainEvent::ResponseTriggered {
                server_id,
                response_id,
                ..
            } if *server_id == server && !sent.contains(response_id) => {
                ResponseRow::triggered(envelope.position, &envelope.payload)
            }
            _ => None,
        };
        future::ready(row.map(|row| PendingResponse::from(&row)))
    });
    Ok(stream::iter(first).chain(later))
}
