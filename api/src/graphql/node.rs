//! `node(id)`: any object with an id, found by that id alone (Relay's
//! object identification).
//!
//! # Ids
//!
//! Ids stay what `API.md` says they are: plain UUIDs (v7, random), the
//! same value in `id`, in arguments and in the log. They are unique
//! across types with one exception: a server's first AGENT token has the
//! server's id. `node` therefore takes either
//!
//! - a plain UUID: the types are tried in the order of [`KINDS`]
//!   (recording, server, site, policy, playback permission, comment,
//!   detected event, response, legal hold, token) and the first that holds
//!   the id answers (for a server's id, the server: its token is
//!   `node(id: "Token:<id>")` or `tokens(filter: {serverId})`), or
//! - `Type:<uuid>` with the GraphQL type's name, which looks in that type
//!   only.
//!
//! # Who sees what
//!
//! An object the caller may not see answers exactly as an absent one:
//! `NOT_FOUND`, `node <id> not found`, whatever the reason. What a caller
//! may see is what the type's own query shows it (`recording`, `server`,
//! `sites`, `policies`, `playbackPermissions`, `detectedEvents`,
//! `pendingResponses` or the recording's `responses`, `legalHolds`,
//! `tokens`).

use async_graphql::{Context, Interface, ID};
use srs_domain::model::{Action, Principal as DomainPrincipal, Target};
use uuid::Uuid;

use super::context::ContextExt;
use super::holds::LegalHold;
use super::types::{
    visible_recording, Comment, DetectedEvent, PendingResponse, PlaybackPermission, Policy,
    Recording, Server, Site, Token,
};
use crate::error::{ApiError, ApiResult};
use crate::read::access::allows;
use crate::state::Core;

/// An object with a globally unique id, which `node(id)` finds.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "The object's id: a UUID (see `Query.node` for how ids resolve)."
))]
pub enum Node {
    Recording(Recording),
    Server(Server),
    Site(Site),
    Policy(Policy),
    PlaybackPermission(PlaybackPermission),
    Comment(Comment),
    DetectedEvent(DetectedEvent),
    PendingResponse(PendingResponse),
    LegalHold(LegalHold),
    Token(Token),
}

/// The types `node` looks in, in the order it tries them for a plain UUID.
pub const KINDS: [&str; 10] = [
    "Recording",
    "Server",
    "Site",
    "Policy",
    "PlaybackPermission",
    "Comment",
    "DetectedEvent",
    "PendingResponse",
    "LegalHold",
    "Token",
];

fn not_found(id: &ID) -> ApiError {
    let shown: String = id.as_str().chars().take(80).collect();
    ApiError::not_found(format!("node {shown} not found"))
}

/// What the caller may see: `Some(node)`; `None` when the id is not of
/// `kind`; `Err(NOT_FOUND)` when it is but the caller may not see it.
async fn lookup(
    ctx: &Context<'_>,
    core: &Core,
    caller: &DomainPrincipal,
    kind: &str,
    uuid: Uuid,
) -> ApiResult<Option<Result<Node, ()>>> {
    let reads = &core.reads;
    let seen = |allowed: bool, node: Node| Some(if allowed { Ok(node) } else { Err(()) });
    Ok(match kind {
        "Recording" => {
            if core.reads.catalogue()?.get(uuid)?.is_none() {
                return Ok(None);
            }
            let sees = crate::read::access::sees_recordings(caller);
            match visible_recording(ctx, uuid).await? {
                Some(recording) if sees => Some(Ok(Node::Recording(recording))),
                _ => Some(Err(())),
            }
        }
        "Server" => match reads.servers()?.server(uuid)? {
            Some(row) => {
                let target = Target::Server {
                    site_id: row.site_id,
                    server_id: row.id,
                };
                seen(
                    allows(caller, Action::ReadServerStatus, target),
                    Node::Server(Server(row)),
                )
            }
            None => None,
        },
        "Site" => match reads.servers()?.site(uuid)? {
            Some(row) => seen(
                allows(caller, Action::ReadServerStatus, Target::Site(row.id)),
                Node::Site(Site(row)),
            ),
            None => None,
        },
        "Policy" => match reads.policies()?.policy(uuid)? {
            Some(row) => {
                let target = match row.site_id.or_else(|| caller.site_ids.first().copied()) {
                    Some(site) => Target::Site(site),
                    None => Target::Global,
                };
                seen(
                    allows(caller, Action::ReadConfiguration, target),
                    Node::Policy(Policy::from(&row)),
                )
            }
            None => None,
        },
        "PlaybackPermission" => match reads.access()?.permission(uuid)? {
            Some(row) => seen(
                allows(caller, Action::ReadConfiguration, Target::Site(row.site_id)),
                Node::PlaybackPermission(PlaybackPermission::from(&row)),
            ),
            None => None,
        },
        "Comment" => match reads.comments()?.get(uuid)? {
            Some(row) => {
                let visible = visible_recording(ctx, row.recording_id).await?.is_some();
                seen(visible, Node::Comment(Comment::from(&row)))
            }
            None => None,
        },
        "DetectedEvent" => match reads.detections()?.detection(uuid)? {
            Some(row) => {
                let recording = visible_recording(ctx, row.recording_id).await?;
                let allowed = recording.is_some()
                    && allows(caller, Action::ReadDetections, Target::Site(row.site_id));
                let deleted = recording.is_some_and(|r| r.row.deleted());
                seen(
                    allowed,
                    Node::DetectedEvent(DetectedEvent::shown(&row, core.content.keys(), deleted)),
                )
            }
            None => None,
        },
        "PendingResponse" => match reads.detections()?.response(uuid)? {
            Some(row) => {
                let target = Target::Server {
                    site_id: row.site_id,
                    server_id: row.server_id,
                };
                let allowed = allows(caller, Action::HandleResponses, target)
                    || visible_recording(ctx, row.recording_id).await?.is_some();
                seen(allowed, Node::PendingResponse(PendingResponse::from(&row)))
            }
            None => None,
        },
        "LegalHold" => match reads.holds()?.get(uuid)? {
            Some(row) => {
                let site = row.hold.site_id;
                let shown = if allows(caller, Action::ReadLegalHolds, Target::Site(site)) {
                    crate::read::holds::visible(core, caller, row)?.map(LegalHold::from)
                } else {
                    None
                };
                Some(shown.map(Node::LegalHold).ok_or(()))
            }
            None => None,
        },
        "Token" => match reads.tokens()?.token(uuid)? {
            Some(row) => seen(
                allows(caller, Action::ManageTokens, Target::Global),
                Node::Token(Token(row)),
            ),
            None => None,
        },
        _ => None,
    })
}

/// `node(id)`: see the module docs.
pub async fn node(ctx: &Context<'_>, id: &ID) -> ApiResult<Node> {
    let (core, caller) = (ctx.core()?, ctx.caller()?);
    let (kinds, uuid): (&[&str], &str) = match id.as_str().split_once(':') {
        Some((kind, uuid)) => match KINDS.iter().position(|k| *k == kind) {
            Some(at) => (&KINDS[at..=at], uuid),
            None => return Err(not_found(id)),
        },
        None => (&KINDS[..], id.as_str()),
    };
    let uuid = Uuid::parse_str(uuid)
        .map_err(|_| ApiError::validation(format!("`{}` is not a valid ID", clip(id))))?;
    for kind in kinds {
        match lookup(ctx, core, caller, kind, uuid).await? {
            Some(Ok(node)) => return Ok(node),
            Some(Err(())) => return Err(not_found(id)),
            None => {}
        }
    }
    Err(not_found(id))
}

fn clip(id: &ID) -> String {
    id.as_str().chars().take(80).collect()
}
