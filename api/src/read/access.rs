//! Who may read what: every authorization decision of the read path.
//!
//! - The role table is the domain's `model::may`; on the read path only
//!   this module asks it ([`allows`], [`authorize`]).
//! - A principal scoped to sites reads those sites only: a listing without
//!   a site is judged on the caller's first site ([`authorize_listing`]),
//!   and the history of several sites on each of them ([`authorize_history`]).
//! - Recordings are seen through the access read model's one visibility
//!   function ([`Sight`]): an AUDITOR sees only the unrestricted recordings
//!   one of its playback permissions grants; restrictions hide from all
//!   but ADMIN and PRIVILEGED_PLAYER.
//! - A legal hold on recordings shows to a caller only the recordings it
//!   sees ([`Sight::visible_of`]); in the history a hold event shows only
//!   when every recording it names is seen ([`Sight::shows_hold`]).
//!
//! A refusal is written as the domain writes any: [`authorize`] through
//! `Service::authorize` (which records it), [`deny`] for a refusal
//! decided here. Within a request the refusals are one fact
//! (`srs_domain::app::Service::coalescing_denials`).

use std::sync::Arc;

use srs_domain::model::{self as dm, Action, DomainEvent, HoldScope, Principal, Role, Target};
use srs_projections::models::catalogue::RecordingRow;
use srs_projections::models::servers::ServerRow;
use srs_projections::models::{Catalogue, Viewer, Visibility};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// `may` (the domain's role table), without recording anything: for
/// answers that leave out what the caller may not read (`node`).
pub fn allows(caller: &Principal, action: Action, target: Target<'_>) -> bool {
    dm::may(caller, action, target)
}

/// `may`, with a refusal recorded as `AccessDenied` and reported FORBIDDEN.
pub async fn authorize(
    services: &Services,
    caller: &Principal,
    action: Action,
    target: Target<'_>,
) -> ApiResult<()> {
    services
        .service
        .authorize(caller, action, target)
        .await
        .map_err(ApiError::from)
}

/// Records a refusal decided here (not by `may` on a concrete target) and
/// returns FORBIDDEN.
pub async fn deny(
    services: &Services,
    caller: &Principal,
    action: Action,
    target: &str,
    site: Option<Uuid>,
) -> ApiError {
    ApiError::from(services.service.deny(caller, action, target, site).await)
}

/// Checks `action` for a listing: on `site` when given, else on the
/// caller's first site (a scoped principal) or globally.
pub async fn authorize_listing(
    services: &Services,
    caller: &Principal,
    action: Action,
    site: Option<Uuid>,
) -> ApiResult<()> {
    let target = match site.or_else(|| caller.site_ids.first().copied()) {
        Some(site) => Target::Site(site),
        None => Target::Global,
    };
    authorize(services, caller, action, target).await
}

/// Global operations (`verify`, `rebuildProjections`, the projections'
/// status): `may` on [`Target::Global`], so only an ADMIN not scoped to
/// sites passes for what reaches every site's data.
pub async fn authorize_global(
    services: &Services,
    caller: &Principal,
    action: Action,
) -> ApiResult<()> {
    authorize(services, caller, action, Target::Global).await
}

/// The history of `site`, or of every site in scope: the whole log for
/// an unscoped caller, its sites' events for a scoped one (which it may
/// read site by site anyway).
pub async fn authorize_history(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
) -> ApiResult<()> {
    match site {
        Some(site) => authorize(services, caller, Action::ReadHistory, Target::Site(site)).await,
        None if caller.unscoped() => {
            authorize(services, caller, Action::ReadHistory, Target::Global).await
        }
        None => {
            for &site in &caller.site_ids {
                authorize(services, caller, Action::ReadHistory, Target::Site(site)).await?;
            }
            Ok(())
        }
    }
}

/// Roles that may see recordings at all (ADMIN, PRIVILEGED_PLAYER,
/// AUDITOR); which ones is [`Sight`]'s decision.
pub fn sees_recordings(caller: &Principal) -> bool {
    matches!(
        caller.role,
        Role::Admin | Role::PrivilegedPlayer | Role::Auditor
    )
}

/// Queries about recordings: roles that never see any (VIEWER, AGENT)
/// are refused; for the others visibility decides which they see.
pub async fn authorize_recordings(services: &Services, caller: &Principal) -> ApiResult<()> {
    if sees_recordings(caller) {
        Ok(())
    } else {
        Err(deny(services, caller, Action::ViewRecording, "recordings", None).await)
    }
}

/// Detections: every site asked for must be the caller's, not only the
/// first; none asked for is a listing.
pub async fn authorize_detections(
    services: &Services,
    caller: &Principal,
    sites: &[Uuid],
) -> ApiResult<()> {
    if sites.is_empty() {
        authorize_listing(services, caller, Action::ReadDetections, None).await?;
    }
    for &site in sites {
        authorize(services, caller, Action::ReadDetections, Target::Site(site)).await?;
    }
    Ok(())
}

/// ADMIN and PRIVILEGED_PLAYER see every recording of their sites,
/// restricted ones included (the dashboard's top lists, holds).
pub fn sees_every_recording(caller: &Principal) -> bool {
    matches!(caller.role, Role::Admin | Role::PrivilegedPlayer)
}

/// Whether `caller` reads every event of the log (an unscoped ADMIN):
/// what lets the history count by positions.
pub fn sees_whole_log(caller: &Principal) -> bool {
    caller.role == Role::Admin && caller.unscoped()
}

/// Whether `caller` reads what belongs to `site`.
pub fn sees_site(caller: &Principal, site: Uuid) -> bool {
    caller.covers_site(site)
}

/// The sites a report or listing covers: `site` when asked for (already
/// authorized), else the caller's sites, or `None` (every site) for an
/// unscoped caller.
pub fn sites_in_scope(caller: &Principal, site: Option<Uuid>) -> Option<Vec<Uuid>> {
    match site {
        Some(site) => Some(vec![site]),
        None if caller.unscoped() => None,
        None => Some(caller.site_ids.iter().copied().collect()),
    }
}

/// Whether `caller` covers what belongs to `site` (`None`: to no site,
/// which only an unscoped caller covers).
pub fn covers(caller: &Principal, site: Option<Uuid>) -> bool {
    match site {
        Some(site) => caller.covers_site(site),
        None => caller.unscoped(),
    }
}

/// A server the caller may do `action` on: `NOT_FOUND` when it may not
/// see the server (or it does not exist), `FORBIDDEN` when it sees it but
/// may not do this (both recorded).
pub async fn server(
    services: &Services,
    caller: &Principal,
    action: Action,
    server: Uuid,
) -> ApiResult<ServerRow> {
    let row = services.reads.servers()?.server(server)?;
    services
        .service
        .known_server(caller, action, server, row.as_ref().map(|r| r.site_id))
        .await?;
    let row = row.ok_or_else(|| ApiError::not_found(format!("server {server} not found")))?;
    authorize_server(services, caller, action, &row).await?;
    Ok(row)
}

/// [`server`] for `server(id)`: absent or unknown to the caller is
/// `None` rather than an error (the refusal is still recorded).
pub async fn visible_server(
    services: &Services,
    caller: &Principal,
    server: Uuid,
) -> ApiResult<Option<ServerRow>> {
    let action = Action::ReadServerStatus;
    let row = services.reads.servers()?.server(server)?;
    let known = services
        .service
        .known_server(caller, action, server, row.as_ref().map(|r| r.site_id))
        .await;
    let (Some(row), Ok(_)) = (row, known) else {
        return Ok(None);
    };
    authorize_server(services, caller, action, &row).await?;
    Ok(Some(row))
}

async fn authorize_server(
    services: &Services,
    caller: &Principal,
    action: Action,
    row: &ServerRow,
) -> ApiResult<()> {
    let target = Target::Server {
        site_id: row.site_id,
        server_id: row.id,
    };
    authorize(services, caller, action, target).await
}

/// `Recording.playback`, a read: the caller must be allowed to play the
/// recording it sees (`visibility`, from [`Sight`]), else FORBIDDEN and
/// the refusal recorded; a deleted recording has no content to show.
pub async fn authorize_playback(
    services: &Services,
    caller: &Principal,
    row: &RecordingRow,
    visibility: Visibility,
) -> ApiResult<()> {
    if row.deleted() {
        return Err(ApiError::not_found(format!(
            "recording {} was deleted; its content is destroyed",
            row.id
        )));
    }
    if visibility == Visibility::Playable {
        return Ok(());
    }
    Err(deny(
        services,
        caller,
        Action::PlayRecording,
        &format!("recording:{}", row.id),
        Some(row.site_id),
    )
    .await)
}

/// The recordings as one caller sees them, for one query: the access
/// read model's visibility of each catalogue row.
pub struct Sight<'a> {
    caller: &'a Principal,
    viewer: Viewer,
    catalogue: Catalogue,
}

impl<'a> Sight<'a> {
    pub fn of(services: &Services, caller: &'a Principal) -> ApiResult<Self> {
        Ok(Sight {
            caller,
            viewer: services.reads.access()?.viewer(caller)?,
            catalogue: services.reads.catalogue()?,
        })
    }

    /// The viewer the catalogue's searches filter by.
    pub fn viewer(&self) -> &Viewer {
        &self.viewer
    }

    /// The catalogue the rows come from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// One recording if the caller sees it, with what it may do with it.
    pub fn recording(&self, id: Uuid) -> ApiResult<Option<(Arc<RecordingRow>, Visibility)>> {
        Ok(self.catalogue.get_visible(&self.viewer, id)?)
    }

    /// Whether the caller sees `id`, and whether it was deleted (`None`:
    /// hidden or unknown).
    pub fn seen(&self, id: Uuid) -> ApiResult<Option<bool>> {
        Ok(self.recording(id)?.map(|(row, _)| row.deleted()))
    }

    /// The recordings of `ids` the caller sees.
    pub fn visible_of(&self, ids: &[Uuid]) -> ApiResult<Vec<Uuid>> {
        if sees_every_recording(self.caller) {
            return Ok(ids.to_vec());
        }
        let mut visible = Vec::new();
        for &id in ids {
            if self.recording(id)?.is_some() {
                visible.push(id);
            }
        }
        Ok(visible)
    }

    /// Whether a hold event of the history shows: one on recordings only
    /// when the caller sees every one of them.
    pub fn shows_hold(&self, event: &DomainEvent) -> ApiResult<bool> {
        match event {
            DomainEvent::LegalHoldPlaced { scope, .. }
            | DomainEvent::LegalHoldReleased { scope, .. } => match scope {
                HoldScope::Recordings { recording_ids } => {
                    Ok(self.visible_of(recording_ids)?.len() == recording_ids.len())
                }
                _ => Ok(true),
            },
            _ => Ok(true),
        }
    }

    /// Whether an event of the history shows to the caller, and with which
    /// recording state (`Some(deleted)`), as far as who may see it goes:
    /// the caller's sites (an event of no site only to an unscoped caller),
    /// the recording it is about, the recordings a hold names.
    pub fn shows_event(&self, event: &DomainEvent) -> ApiResult<Option<bool>> {
        if !covers(self.caller, event.site_id()) {
            return Ok(None);
        }
        let mut deleted = false;
        if let Some(recording_id) = event.recording_id() {
            let row = self.catalogue.get_shared(recording_id)?;
            deleted = row.as_ref().is_some_and(|r| r.deleted());
            let visible =
                row.is_some_and(|r| self.viewer.visibility(&r.facts()) != Visibility::Hidden);
            // Declined sessions have no catalogue row, and a part
            // assignment may precede its recording: admins only.
            let declined = matches!(
                event,
                DomainEvent::RecordingDeclined { .. } | DomainEvent::RecordingPartAssigned { .. }
            );
            if !(visible || declined && self.caller.role == Role::Admin) {
                return Ok(None);
            }
        }
        if !self.shows_hold(event)? {
            return Ok(None);
        }
        Ok(Some(deleted))
    }
}
