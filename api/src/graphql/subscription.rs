//! The subscription root, over the log's `subscribe` (no polling). Each
//! subscription is authorized when it starts (watching a recording live is
//! a playback fact, `RecordingPlayed` of kind LIVE); recordings' events pass the
//! same visibility decision as queries, checked per event once the read
//! models have caught up with it, so a recording restricted meanwhile
//! stops showing. Every subscription ends when the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::{Context, Subscription, ID};
use futures_util::future;
use futures_util::stream::{Stream, StreamExt};
use srs_domain::log::{Envelope, EventStore};
use srs_domain::model::{Action, DomainEvent, PlaybackKind, Principal as DomainPrincipal, Target};
use srs_projections::models::access::AccessProjection;
use srs_projections::models::catalogue::CatalogueProjection;
use srs_projections::models::Visibility as DomainVisibility;
use srs_projections::Which;
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, long, non_negative, opt_uuid, time, uuid};
use super::types::{DetectedEvent, LoggedEvent, SessionEvent};
use crate::error::ApiError;
use crate::read::access::authorize;
use crate::state::Services;

pub struct SubscriptionRoot;

/// A recording that started or ended (`liveRecordings`).
#[derive(async_graphql::SimpleObject)]
pub struct LiveRecordingChange {
    /// The recording.
    pub recording_id: ID,
    /// Its site.
    pub site_id: ID,
    /// The recording server it is recorded on.
    pub server_id: ID,
    /// `true`: it started and is live now; `false`: it ended.
    pub live: bool,
    /// The log position of the start or end (64-bit; `atLeast` for reads).
    pub position: i64,
    /// When the start or end was logged.
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How long a subscription waits for the read models to reach an event
/// before deciding its visibility on what they hold.
const CATCH_UP: Duration = Duration::from_secs(2);

/// Completes when the server shuts down.
fn shutdown(services: &Services) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = services.shutdown.clone();
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

/// Where a subscription starts: `fromPosition` when given (at least 1),
/// else the position after `head` (from now).
fn start_at(from_position: Option<i32>, head: u64) -> Result<u64, ApiError> {
    match from_position {
        Some(p) => Ok(non_negative(p, "fromPosition")?.max(1)),
        None => Ok(head + 1),
    }
}

/// The envelopes from `from` on, ending on a log error or at shutdown.
pub(super) fn follow(
    services: &Services,
    from: u64,
) -> impl Stream<Item = Envelope<DomainEvent>> + Send + 'static {
    services
        .store
        .subscribe(from)
        .take_until(shutdown(services))
        .take_while(|item| future::ready(item.is_ok()))
        .filter_map(|item| future::ready(item.ok()))
}

/// What `caller` may do with `recording_id`, once the read models reached `position`.
async fn visibility_at(
    services: &Services,
    caller: &DomainPrincipal,
    recording_id: Uuid,
    position: u64,
) -> DomainVisibility {
    let _ = services
        .reads
        .wait_for(
            Which::Only(&[CatalogueProjection::NAME, AccessProjection::NAME]),
            position,
            CATCH_UP,
        )
        .await;
    let decide = || -> Result<DomainVisibility, srs_projections::ProjectionError> {
        let viewer = services.reads.access()?.viewer(caller)?;
        Ok(match services.reads.catalogue()?.get(recording_id)? {
            Some(row) => viewer.visibility(&row.facts()),
            None => DomainVisibility::Hidden,
        })
    };
    decide().unwrap_or_else(|e| {
        tracing::error!(error = %e, "subscription: cannot decide visibility");
        DomainVisibility::Hidden
    })
}

/// What may be followed live, over graphql-ws at `/graphql/ws`.
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Live event-detection alerts, of one site or of every site the
    /// caller may see, for recordings the caller may see, from
    /// `fromPosition` (a `recordings` page's `asOf` + 1, so that nothing
    /// falls between the page and its alerts; default: from now).
    async fn detections(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        from_position: Option<i32>,
    ) -> Result<impl Stream<Item = DetectedEvent>, ApiError> {
        let (services, caller) = (ctx.services()?.clone(), ctx.caller()?.clone());
        let site = opt_uuid(site_id.as_ref(), "site")?;
        let target = match site.or_else(|| caller.site_ids.first().copied()) {
            Some(site) => Target::Site(site),
            None => Target::Global,
        };
        authorize(&services, &caller, Action::ReadDetections, target).await?;
        let from = start_at(from_position, services.store.head().position)?;
        let stream = follow(&services, from).filter_map(move |envelope| {
            let (services, caller) = (services.clone(), caller.clone());
            async move {
                let (
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
                    plain_subject,
                    sealed_subject,
                    at_offset_ms,
                ) = match envelope.payload {
                    DomainEvent::EventDetected {
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
                    } => (
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
                        None,
                        at_offset_ms,
                    ),
                    DomainEvent::EventDetectedSealed {
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
                    } => (
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
                        None,
                        subject,
                        at_offset_ms,
                    ),
                    _ => return None,
                };
                if site.is_some_and(|s| s != site_id)
                    || !crate::read::access::sees_site(&caller, site_id)
                {
                    return None;
                }
                if visibility_at(&services, &caller, recording_id, envelope.position).await
                    == DomainVisibility::Hidden
                {
                    return None;
                }
                // A live alert: its recording is being recorded, so only a
                // destroyed key (a deletion since) shreds the subject.
                let subject = srs_domain::seal::detection_subject(
                    services.content.keys(),
                    recording_id,
                    detection_id,
                    plain_subject.as_deref(),
                    sealed_subject.as_ref(),
                    false,
                );
                let shredded = matches!(subject, Some(srs_domain::seal::Revealed::Shredded));
                let subject = subject.and_then(srs_domain::seal::Revealed::plain);
                Some(DetectedEvent {
                    id: id(detection_id),
                    recording_id: id(recording_id),
                    site_id: id(site_id),
                    server_id: id(server_id),
                    user,
                    host,
                    event_id: id(event_id),
                    event_type: event_type.into(),
                    severity: severity.into(),
                    rule,
                    policy_id: id(policy_id),
                    subject,
                    shredded,
                    offset_ms: long(at_offset_ms),
                    at: time(envelope.recorded_at),
                    position: long(envelope.position),
                })
            }
        });
        Ok(stream)
    }

    /// Recordings starting and ending, of one site or of every site the
    /// caller may see, for recordings the caller may see: what a list of
    /// sessions in progress follows (each change says which recording and
    /// whether it is live now; read it with `recording(id, atLeast:
    /// position)`), from `fromPosition` (a `recordings` page's `asOf` + 1,
    /// so that nothing falls between the page and its changes; default:
    /// from now). A VIEWER or AGENT, or a site the caller does not
    /// cover, is `FORBIDDEN` (recorded as a refusal); an auditor follows
    /// the recordings its grants admit.
    async fn live_recordings(
        &self,
        ctx: &Context<'_>,
        site_id: Option<ID>,
        from_position: Option<i32>,
    ) -> Result<impl Stream<Item = LiveRecordingChange>, ApiError> {
        let (services, caller) = (ctx.services()?.clone(), ctx.caller()?.clone());
        let site = opt_uuid(site_id.as_ref(), "site")?;
        let target = match site.or_else(|| caller.site_ids.first().copied()) {
            Some(site) => Target::Site(site),
            None => Target::Global,
        };
        // Roles that see no recording, and a site the caller does not
        // cover, are refused (and the refusal recorded); everyone else
        // follows a list filtered by what it may see (an auditor sees
        // what its grants admit, recording by recording).
        let sees_recordings = crate::read::access::sees_recordings(&caller);
        if !sees_recordings || site.is_some_and(|s| !crate::read::access::sees_site(&caller, s)) {
            authorize(&services, &caller, Action::ViewRecording, target).await?;
            if !sees_recordings {
                return Err(ApiError::forbidden(format!(
                    "{} may not follow recordings",
                    caller.name
                )));
            }
        }
        let from = start_at(from_position, services.store.head().position)?;
        let stream = follow(&services, from).filter_map(move |envelope| {
            let (services, caller) = (services.clone(), caller.clone());
            async move {
                let (recording_id, site_id, server_id, live) = match envelope.payload {
                    DomainEvent::RecordingStarted {
                        recording_id,
                        site_id,
                        server_id,
                        ..
                    } => (recording_id, site_id, server_id, true),
                    DomainEvent::RecordingEnded {
                        recording_id,
                        site_id,
                        server_id,
                        ..
                    } => (recording_id, site_id, server_id, false),
                    _ => return None,
                };
                if site.is_some_and(|s| s != site_id)
                    || !crate::read::access::sees_site(&caller, site_id)
                {
                    return None;
                }
                if visibility_at(&services, &caller, recording_id, envelope.position).await
                    == DomainVisibility::Hidden
                {
                    return None;
                }
                Some(LiveRecordingChange {
                    recording_id: id(recording_id),
                    site_id: id(site_id),
                    server_id: id(server_id),
                    live,
                    position: long(envelope.position),
                    at: time(envelope.recorded_at),
                })
            }
        });
        Ok(stream)
    }

    /// Live playback of a session's events, from `fromPosition` (a
    /// playback's `followFrom` + 1; default: from now). Needs the right to
    /// play the recording; completes once the session has ended (after
    /// every event recorded before its end), and ends when the caller
    /// loses the right (restricted, archived, deleted, or the playback
    /// permission it played under revoked). Starting it is a `RecordingPlayed` fact of kind LIVE (one per
    /// viewer, recording and minute, like every playback); it is refused
    /// (`FORBIDDEN`, recorded as a refusal) when the recording's server has
    /// `livePlaybackEnabled: false`.
    async fn recording_events(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        from_position: Option<i32>,
    ) -> Result<impl Stream<Item = SessionEvent>, ApiError> {
        let (services, caller) = (ctx.services()?.clone(), ctx.caller()?.clone());
        let recording = uuid(&recording_id, "recording")?;
        let head = services.store.head().position;
        // The write side decides (visibility, restrictions, grants, the
        // server's setting) and records the fact, or the refusal.
        services
            .service
            .record_played(&caller, recording, PlaybackKind::Live)
            .await?;
        services.metrics.appended();
        let from = start_at(from_position, head)?;
        let keys = services.content.keys().clone();
        let stream = follow(&services, from)
            .filter(move |envelope| {
                // The recording's events, and revoked permissions: an
                // auditor whose permission for it is revoked stops seeing it.
                future::ready(
                    envelope.payload.recording_id() == Some(recording)
                        || matches!(
                            envelope.payload,
                            DomainEvent::PlaybackPermissionRevoked { .. }
                        ),
                )
            })
            .then(move |envelope| {
                let (services, caller) = (services.clone(), caller.clone());
                async move {
                    let changes_access = matches!(
                        envelope.payload,
                        DomainEvent::RecordingRestricted { .. }
                            | DomainEvent::RecordingArchived { .. }
                            | DomainEvent::RecordingDeleted { .. }
                            | DomainEvent::PlaybackPermissionRevoked { .. }
                    );
                    let allowed = !changes_access
                        || visibility_at(&services, &caller, recording, envelope.position).await
                            == DomainVisibility::Playable;
                    let ended = matches!(envelope.payload, DomainEvent::RecordingEnded { .. });
                    (allowed && !ended, envelope)
                }
            })
            .take_while(|(going_on, _)| future::ready(*going_on))
            .filter_map(move |(_, envelope)| {
                // Shown while the caller may play the recording, so never
                // after its deletion: only a destroyed key shreds.
                future::ready(SessionEvent::from_envelope(&envelope, &keys, false))
            });
        Ok(stream)
    }

    /// Response actions for server `serverId` to carry out (its AGENT, or
    /// an ADMIN of its site): first those pending when the subscription
    /// starts, then each one as it is decided. Acknowledge each with
    /// `acknowledgeResponse`; `pendingResponses` answers the same to an
    /// agent that polls.
    async fn responses(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The server whose response actions are pushed.")] server_id: ID,
    ) -> Result<impl Stream<Item = super::types::PendingResponse>, ApiError> {
        let (services, caller) = (ctx.services()?.clone(), ctx.caller()?.clone());
        super::agent::responses(services, caller, &server_id).await
    }

    /// The tail of the whole log (ADMIN, not scoped to sites), from
    /// `fromPosition` (default: from now).
    async fn log(
        &self,
        ctx: &Context<'_>,
        from_position: Option<i32>,
    ) -> Result<impl Stream<Item = LoggedEvent>, ApiError> {
        let (services, caller): (Arc<Services>, DomainPrincipal) =
            (ctx.services()?.clone(), ctx.caller()?.clone());
        authorize(&services, &caller, Action::ReadAdminLog, Target::Global).await?;
        let from = start_at(from_position, services.store.head().position)?;
        Ok(follow(&services, from).map(move |envelope| {
            let deleted = envelope.payload.recording_id().is_some_and(|recording_id| {
                crate::read::recordings::deleted(&services, recording_id).unwrap_or(true)
            });
            LoggedEvent::shown(&envelope, services.content.keys(), deleted)
        }))
    }
}
