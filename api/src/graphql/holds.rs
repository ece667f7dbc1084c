//! Legal holds in the API: `placeLegalHold` / `releaseLegalHold` (ADMIN of
//! the hold's site), the `legalHolds` query (ADMIN and AUDITOR, of their
//! sites), and the `Recording.onLegalHold` / `Recording.legalHolds` fields.
//!
//! # What each role sees
//!
//! - ADMIN: every hold of its sites, whole.
//! - AUDITOR: the holds of its sites, but a hold's `recordingIds` list
//!   only the recordings it may see; a hold on recordings it sees none of
//!   is left out (a hold must not reveal that a hidden recording exists).
//!   The same rule applies to hold events in `history`.
//! - PRIVILEGED_PLAYER, VIEWER, AGENT: no holds (`FORBIDDEN`). Whoever
//!   sees a recording sees `onLegalHold`, like `restricted`: it explains
//!   why a deletion is refused and reveals nothing of the hold.
//!
//! A deletion of a held recording answers `CONFLICT` with a message that
//! names the hold (no new error code: clients already treat `CONFLICT` as
//! "the state does not allow this now").

use async_graphql::{ComplexObject, Context, Enum, InputObject, SimpleObject, ID};
use chrono::{DateTime, Utc};
use srs_domain::model::{self as dm, Action, HoldScope, Principal as DomainPrincipal, Target};
use srs_projections::models::holds::HoldRow;
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, int, names, opt_uuid, page, time, uuids};
use super::types::{PageInfo, Site};
use crate::error::{ApiError, ApiResult};
use crate::read::access::{authorize, authorize_listing, sees_every_recording, Sight};
use crate::state::{Core, Limits};

/// What a legal hold covers. Give `recordingIds` (recordings of one site;
/// `siteId` optional, and then their site), or `siteId` with `users`
/// (every recording of those recorded users on the site, also ones
/// started later), or `siteId` alone (every recording of the site, also
/// ones started later).
#[derive(InputObject, Default)]
pub struct LegalHoldScopeInput {
    /// 1 to 1000 recordings of one site.
    pub recording_ids: Option<Vec<ID>>,
    /// The site (with `users`, or alone for the whole site).
    pub site_id: Option<ID>,
    /// 1 to 100 recorded users, `DOMAIN\user` or `user@domain`, `*` and `?`
    /// globs allowed (matched as recording policies match users).
    pub users: Option<Vec<String>>,
}

/// `placeLegalHold` input.
#[derive(InputObject)]
pub struct PlaceLegalHoldInput {
    /// What it holds.
    pub scope: LegalHoldScopeInput,
    /// Why (a case, a matter): one line of 1 to 1024 characters.
    pub reason: String,
}

impl PlaceLegalHoldInput {
    /// The site (when given) and the domain scope, checked (`VALIDATION`).
    pub fn into_domain(self, limits: &Limits) -> ApiResult<(Option<Uuid>, HoldScope, String)> {
        let reason = hold_reason(&self.reason)?;
        let LegalHoldScopeInput {
            recording_ids,
            site_id,
            users,
        } = self.scope;
        let site = opt_uuid(site_id.as_ref(), "site")?;
        let scope =
            match (recording_ids, users) {
                (Some(_), Some(_)) => return Err(ApiError::validation(
                    "a hold's scope is recordingIds, or siteId with users, or siteId alone; not \
                     recordingIds and users together",
                )),
                (Some(ids), None) => {
                    if ids.len() > dm::MAX_HOLD_RECORDINGS {
                        return Err(ApiError::validation(format!(
                        "a hold names at most {} recordings, not {}; hold the site or its users \
                         instead",
                        dm::MAX_HOLD_RECORDINGS,
                        ids.len()
                    )));
                    }
                    HoldScope::Recordings {
                        recording_ids: uuids(&ids, "recording")?,
                    }
                }
                (None, Some(users)) => {
                    if users.len() > dm::MAX_HOLD_USERS {
                        return Err(ApiError::validation(format!(
                            "a hold names at most {} users, not {}",
                            dm::MAX_HOLD_USERS,
                            users.len()
                        )));
                    }
                    HoldScope::Users {
                        users: names("users", &users, limits)?,
                    }
                }
                (None, None) => HoldScope::Site,
            };
        if site.is_none() && !matches!(scope, HoldScope::Recordings { .. }) {
            return Err(ApiError::validation(
                "a hold's scope needs recordingIds or a siteId",
            ));
        }
        Ok((site, scope, reason))
    }
}

/// A hold's reason: one line (a name's characters), 1 to
/// [`dm::MAX_HOLD_REASON_CHARS`] characters.
pub fn hold_reason(reason: &str) -> ApiResult<String> {
    let limits = Limits {
        max_name_len: dm::MAX_HOLD_REASON_CHARS,
        ..Limits::default()
    };
    super::convert::name("reason", reason, &limits)
}

/// What a hold's scope is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LegalHoldScopeKind {
    /// The recordings in `recordingIds`.
    Recordings,
    /// Every recording of `users` on the site, also ones started later.
    Users,
    /// Every recording of the site, also ones started later.
    Site,
}

/// What a legal hold covers.
#[derive(SimpleObject, Clone, Debug)]
pub struct LegalHoldScope {
    /// Recordings, users of a site, or a whole site.
    pub kind: LegalHoldScopeKind,
    /// The site.
    pub site_id: ID,
    /// RECORDINGS: the recordings (those the caller may see).
    pub recording_ids: Vec<ID>,
    /// USERS: the recorded users.
    pub users: Vec<String>,
}

/// A legal hold: while active, the recordings it covers cannot be deleted,
/// by `deleteRecording` or by retention.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(complex)]
pub struct LegalHold {
    /// Its id (a UUID; `node(id)` finds it).
    #[graphql(owned)]
    pub id: ID,
    /// The site it belongs to.
    pub site_id: ID,
    /// What it holds.
    pub scope: LegalHoldScope,
    /// Why it was placed.
    pub reason: String,
    /// Who placed it.
    pub placed_by: String,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// The log position of `LegalHoldPlaced`.
    pub position: i32,
    /// Not released.
    pub active: bool,
    /// Who released it.
    pub released_by: Option<String>,
    /// When it was released.
    pub released_at: Option<DateTime<Utc>>,
    /// Why it was released.
    pub release_reason: Option<String>,
    /// The log position of `LegalHoldReleased`.
    pub released_position: Option<i32>,
}

#[ComplexObject]
impl LegalHold {
    /// The site, when it exists.
    async fn site(&self, ctx: &Context<'_>) -> ApiResult<Option<Site>> {
        let site = super::convert::uuid(&self.site_id, "site")?;
        Ok(ctx.core()?.reads.servers()?.site(site)?.map(Site))
    }
}

impl LegalHold {
    /// The hold as `caller` may see it (see the module docs): `None` when
    /// it names only recordings the caller may not see.
    pub fn visible(
        core: &Core,
        caller: &DomainPrincipal,
        row: &HoldRow,
    ) -> ApiResult<Option<Self>> {
        let hold = &row.hold;
        let (kind, recording_ids, users) = match &hold.scope {
            HoldScope::Recordings { recording_ids } => {
                let ids = if sees_every_recording(caller) {
                    recording_ids.clone()
                } else {
                    Sight::of(core, caller)?.visible_of(recording_ids)?
                };
                if ids.is_empty() {
                    return Ok(None);
                }
                (LegalHoldScopeKind::Recordings, ids, Vec::new())
            }
            HoldScope::Users { users } => (LegalHoldScopeKind::Users, Vec::new(), users.clone()),
            HoldScope::Site => (LegalHoldScopeKind::Site, Vec::new(), Vec::new()),
        };
        let released = hold.released.as_ref();
        Ok(Some(LegalHold {
            id: id(hold.id),
            site_id: id(hold.site_id),
            scope: LegalHoldScope {
                kind,
                site_id: id(hold.site_id),
                recording_ids: recording_ids.into_iter().map(id).collect(),
                users,
            },
            reason: hold.reason.clone(),
            placed_by: hold.placed_by.clone(),
            placed_at: time(hold.placed_at),
            position: int(row.placed_position),
            active: hold.active(),
            released_by: released.map(|r| r.by.clone()),
            released_at: released.map(|r| time(r.at)),
            release_reason: released.and_then(|r| r.reason.clone()),
            released_position: row.released_position.map(int),
        }))
    }
}

/// A page of legal holds.
#[derive(SimpleObject)]
pub struct LegalHoldConnection {
    /// This page's holds, in order.
    pub edges: Vec<LegalHoldEdge>,
    /// Where this page ends and whether another follows.
    pub page_info: PageInfo,
    /// Every hold that matches (the caller may see), not just this page.
    pub total_count: Option<i64>,
}

/// One hold of a page, with its cursor.
#[derive(SimpleObject)]
pub struct LegalHoldEdge {
    /// Pass it as `after` to continue after this hold.
    pub cursor: String,
    /// The hold.
    pub node: LegalHold,
}

/// `legalHolds`: the holds of one site or of every site the caller may
/// read, oldest first, `active` narrowing to active or released ones.
pub async fn legal_holds(
    ctx: &Context<'_>,
    site_id: Option<ID>,
    active: Option<bool>,
    first: Option<i32>,
    after: Option<String>,
) -> ApiResult<LegalHoldConnection> {
    let (core, caller) = (ctx.core()?, ctx.caller()?);
    let limit = page(first, &core.limits)?;
    let site = opt_uuid(site_id.as_ref(), "site")?;
    authorize_listing(core, caller, Action::ReadLegalHolds, site).await?;
    let after = after
        .map(|cursor| Uuid::parse_str(&cursor).map_err(|_| ApiError::validation("invalid cursor")))
        .transpose()?;
    let mut holds = Vec::new();
    for row in core.reads.holds()?.list(site, active)? {
        if !crate::read::access::sees_site(caller, row.hold.site_id) {
            continue;
        }
        if let Some(hold) = LegalHold::visible(core, caller, &row)? {
            holds.push((row.hold.id, hold));
        }
    }
    let total = holds.len();
    let start = after.map_or(0, |after| holds.partition_point(|(id, _)| *id <= after));
    let rest = holds.len() - start;
    let edges: Vec<LegalHoldEdge> = holds
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|(hold_id, node)| LegalHoldEdge {
            cursor: hold_id.to_string(),
            node,
        })
        .collect();
    Ok(LegalHoldConnection {
        page_info: PageInfo {
            has_next_page: rest > edges.len(),
            end_cursor: edges.last().map(|e| e.cursor.clone()),
        },
        edges,
        total_count: Some(super::convert::long(total as u64)),
    })
}

/// The active holds covering a recording, for `Recording.legalHolds`
/// (who may read the holds of its site; `FORBIDDEN` otherwise).
pub async fn recording_holds(
    ctx: &Context<'_>,
    facts: &dm::RecordingFacts,
) -> ApiResult<Vec<LegalHold>> {
    let (core, caller) = (ctx.core()?, ctx.caller()?);
    authorize(
        core,
        caller,
        Action::ReadLegalHolds,
        Target::Site(facts.site_id),
    )
    .await?;
    let mut holds = Vec::new();
    for row in core.reads.holds()?.holding(facts)? {
        if let Some(hold) = LegalHold::visible(core, caller, &row)? {
            holds.push(hold);
        }
    }
    Ok(holds)
}

/// Whether an active hold covers the recording (`Recording.onLegalHold`).
pub fn on_legal_hold(core: &Core, facts: &dm::RecordingFacts) -> ApiResult<bool> {
    Ok(!core.reads.holds()?.holding(facts)?.is_empty())
}

/// A legal hold mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LegalHoldPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The hold's id.
    pub legal_hold_id: ID,
}

#[ComplexObject]
impl LegalHoldPayload {
    /// The hold, as the caller may see it.
    async fn legal_hold(&self, ctx: &Context<'_>) -> ApiResult<Option<LegalHold>> {
        let (core, caller) = (ctx.core()?, ctx.caller()?);
        core.at_least(Some(self.position)).await?;
        let hold = super::convert::uuid(&self.legal_hold_id, "legal hold")?;
        match core.reads.holds()?.get(hold)? {
            Some(row) => LegalHold::visible(core, caller, &row),
            None => Ok(None),
        }
    }
}

/// `placeLegalHold`.
pub async fn place_legal_hold(
    ctx: &Context<'_>,
    input: PlaceLegalHoldInput,
) -> ApiResult<LegalHoldPayload> {
    let (core, caller) = (ctx.core()?, ctx.caller()?);
    let (site, scope, reason) = input.into_domain(&core.limits)?;
    let placed = core
        .service
        .place_legal_hold(caller, site, scope, &reason)
        .await?;
    if !placed.executed.positions.is_empty() {
        core.metrics.appended();
    }
    Ok(LegalHoldPayload {
        position: int(placed.executed.last_position),
        legal_hold_id: id(placed.id),
    })
}

/// `releaseLegalHold`.
pub async fn release_legal_hold(
    ctx: &Context<'_>,
    hold_id: ID,
    reason: Option<String>,
) -> ApiResult<LegalHoldPayload> {
    let (core, caller) = (ctx.core()?, ctx.caller()?);
    let hold = super::convert::uuid(&hold_id, "legal hold")?;
    let reason = reason.as_deref().map(hold_reason).transpose()?;
    let done = core
        .service
        .release_legal_hold(caller, hold, reason.as_deref())
        .await?;
    if !done.positions.is_empty() {
        core.metrics.appended();
    }
    Ok(LegalHoldPayload {
        position: int(done.last_position),
        legal_hold_id: hold_id,
    })
}
