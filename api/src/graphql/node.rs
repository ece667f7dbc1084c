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
use srs_domain::seal::KeyRing;
use uuid::Uuid;

use super::context::ContextExt;
use super::holds::LegalHold;
use super::types::{
    Comment, DetectedEvent, PendingResponse, PlaybackPermission, Policy, Recording, Server, Site,
    Token,
};
use crate::error::{ApiError, ApiResult};
use crate::read::{
    self,
    nodes::{Found, Kind, Lookup},
};

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
pub const KINDS: [(&str, Kind); 10] = [
    ("Recording", Kind::Recording),
    ("Server", Kind::Server),
    ("Site", Kind::Site),
    ("Policy", Kind::Policy),
    ("PlaybackPermission", Kind::PlaybackPermission),
    ("Comment", Kind::Comment),
    ("DetectedEvent", Kind::DetectedEvent),
    ("PendingResponse", Kind::PendingResponse),
    ("LegalHold", Kind::LegalHold),
    ("Token", Kind::Token),
];

fn not_found(id: &ID) -> ApiError {
    let shown: String = id.as_str().chars().take(80).collect();
    ApiError::not_found(format!("node {shown} not found"))
}

/// The API shape of an object found.
fn node_of(found: Found, keys: &KeyRing) -> Node {
    match found {
        Found::Recording((row, visibility)) => Node::Recording(Recording::new(row, visibility)),
        Found::Server(row) => Node::Server(Server(row)),
        Found::Site(row) => Node::Site(Site(row)),
        Found::Policy(row) => Node::Policy(Policy::from(&row)),
        Found::PlaybackPermission(row) => Node::PlaybackPermission(PlaybackPermission::from(&row)),
        Found::Comment(row) => Node::Comment(Comment::from(&row)),
        Found::DetectedEvent(row, deleted) => {
            Node::DetectedEvent(DetectedEvent::shown(&row, keys, deleted))
        }
        Found::PendingResponse(row) => Node::PendingResponse(PendingResponse::from(&row)),
        Found::LegalHold(hold) => Node::LegalHold(LegalHold::from(hold)),
        Found::Token(row) => Node::Token(Token(row)),
    }
}

/// `node(id)`: see the module docs.
pub async fn node(ctx: &Context<'_>, id: &ID) -> ApiResult<Node> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let (kinds, uuid): (&[(&str, Kind)], &str) = match id.as_str().split_once(':') {
        Some((kind, uuid)) => match KINDS.iter().position(|(name, _)| *name == kind) {
            Some(at) => (&KINDS[at..=at], uuid),
            None => return Err(not_found(id)),
        },
        None => (&KINDS[..], id.as_str()),
    };
    let uuid = Uuid::parse_str(uuid)
        .map_err(|_| ApiError::validation(format!("`{}` is not a valid ID", clip(id))))?;
    for (_, kind) in kinds {
        match read::nodes::lookup(services, caller, *kind, uuid).await? {
            Lookup::Found(found) => return Ok(node_of(*found, services.content.keys())),
            Lookup::Hidden => return Err(not_found(id)),
            Lookup::Absent => {}
        }
    }
    Err(not_found(id))
}

fn clip(id: &ID) -> String {
    id.as_str().chars().take(80).collect()
}
