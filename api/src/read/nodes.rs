//! `node(id)`: one object by its id, of one kind, as far as the caller
//! may see it. What a caller may see is what the kind's own query shows
//! it; an object it may not see is told apart from an absent one only
//! here ([`Lookup::Hidden`]): the API answers both as `NOT_FOUND`.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::access::PermissionRow;
use srs_projections::models::comments::CommentRow;
use srs_projections::models::detections::{DetectionRow, ResponseRow};
use srs_projections::models::policies::PolicyRow;
use srs_projections::models::servers::{ServerRow, SiteRow};
use srs_projections::models::tokens::TokenRow;
use uuid::Uuid;

use super::access::{self, allows};
use super::holds::{self, VisibleHold};
use super::recordings::{self, Seen};
use crate::error::ApiResult;
use crate::state::Services;

/// The kinds of object `node` looks in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Recording,
    Server,
    Site,
    Policy,
    PlaybackPermission,
    Comment,
    DetectedEvent,
    PendingResponse,
    LegalHold,
    Token,
}

/// An object found, as the caller sees it.
pub enum Found {
    Recording(Seen),
    Server(ServerRow),
    Site(SiteRow),
    Policy(PolicyRow),
    PlaybackPermission(PermissionRow),
    Comment(CommentRow),
    /// The detection and whether its recording was deleted.
    DetectedEvent(DetectionRow, bool),
    PendingResponse(ResponseRow),
    LegalHold(VisibleHold),
    Token(TokenRow),
}

/// What looking in one kind found.
pub enum Lookup {
    /// No object of this kind has the id.
    Absent,
    /// One has, and the caller may not see it.
    Hidden,
    Found(Box<Found>),
}

fn seen(allowed: bool, found: Found) -> Lookup {
    if allowed {
        Lookup::Found(Box::new(found))
    } else {
        Lookup::Hidden
    }
}

/// The object of `kind` with id `id`, as `caller` may see it.
pub async fn lookup(
    services: &Services,
    caller: &Principal,
    kind: Kind,
    id: Uuid,
) -> ApiResult<Lookup> {
    let reads = &services.reads;
    Ok(match kind {
        Kind::Recording => {
            if reads.catalogue()?.get(id)?.is_none() {
                return Ok(Lookup::Absent);
            }
            let sees = access::sees_recordings(caller);
            match recordings::visible(services, caller, id)? {
                Some(recording) if sees => Lookup::Found(Box::new(Found::Recording(recording))),
                _ => Lookup::Hidden,
            }
        }
        Kind::Server => match reads.servers()?.server(id)? {
            Some(row) => {
                let target = Target::Server {
                    site_id: row.site_id,
                    server_id: row.id,
                };
                seen(
                    allows(caller, Action::ReadServerStatus, target),
                    Found::Server(row),
                )
            }
            None => Lookup::Absent,
        },
        Kind::Site => match reads.servers()?.site(id)? {
            Some(row) => seen(
                allows(caller, Action::ReadServerStatus, Target::Site(row.id)),
                Found::Site(row),
            ),
            None => Lookup::Absent,
        },
        Kind::Policy => match reads.policies()?.policy(id)? {
            Some(row) => {
                let target = match row.site_id.or_else(|| caller.site_ids.first().copied()) {
                    Some(site) => Target::Site(site),
                    None => Target::Global,
                };
                seen(
                    allows(caller, Action::ReadConfiguration, target),
                    Found::Policy(row),
                )
            }
            None => Lookup::Absent,
        },
        Kind::PlaybackPermission => match reads.access()?.permission(id)? {
            Some(row) => seen(
                allows(caller, Action::ReadConfiguration, Target::Site(row.site_id)),
                Found::PlaybackPermission(row),
            ),
            None => Lookup::Absent,
        },
        Kind::Comment => match reads.comments()?.get(id)? {
            Some(row) => {
                let visible = recordings::visible(services, caller, row.recording_id)?.is_some();
                seen(visible, Found::Comment(row))
            }
            None => Lookup::Absent,
        },
        Kind::DetectedEvent => match reads.detections()?.detection(id)? {
            Some(row) => {
                let recording = recordings::visible(services, caller, row.recording_id)?;
                let allowed = recording.is_some()
                    && allows(caller, Action::ReadDetections, Target::Site(row.site_id));
                let deleted = recording.is_some_and(|(r, _)| r.deleted());
                seen(allowed, Found::DetectedEvent(row, deleted))
            }
            None => Lookup::Absent,
        },
        Kind::PendingResponse => match reads.detections()?.response(id)? {
            Some(row) => {
                let target = Target::Server {
                    site_id: row.site_id,
                    server_id: row.server_id,
                };
                let allowed = allows(caller, Action::HandleResponses, target)
                    || recordings::visible(services, caller, row.recording_id)?.is_some();
                seen(allowed, Found::PendingResponse(row))
            }
            None => Lookup::Absent,
        },
        Kind::LegalHold => match reads.holds()?.get(id)? {
            Some(row) => {
                let site = row.hold.site_id;
                let shown = if allows(caller, Action::ReadLegalHolds, Target::Site(site)) {
                    holds::visible(services, caller, row)?
                } else {
                    None
                };
                match shown {
                    Some(hold) => Lookup::Found(Box::new(Found::LegalHold(hold))),
                    None => Lookup::Hidden,
                }
            }
            None => Lookup::Absent,
        },
        Kind::Token => match reads.tokens()?.token(id)? {
            Some(row) => seen(
                allows(caller, Action::ManageTokens, Target::Global),
                Found::Token(row),
            ),
            None => Lookup::Absent,
        },
    })
}
