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
use srs_domain::model::{self as dm, HoldScope};
use uuid::Uuid;

use super::context::ContextExt;
use super::convert::{id, int, names, opt_uuid, page, time, uuids};
use super::types::{PageInfo, Site};
use crate::error::{ApiError, ApiResult};
use crate::read::{self, holds::VisibleHold};
use crate::state::Limits;

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
        Ok(read::servers::site(ctx.services()?, site)?.map(Site))
    }
}

impl From<VisibleHold> for LegalHold {
    /// A hold as the caller sees it (see the module docs).
    fn from(visible: VisibleHold) -> Self {
        let VisibleHold { row, recording_ids } = visible;
        let hold = row.hold;
        let (kind, users) = match &hold.scope {
            HoldScope::Recordings { .. } => (LegalHoldScopeKind::Recordings, Vec::new()),
            HoldScope::Users { users } => (LegalHoldScopeKind::Users, users.clone()),
            HoldScope::Site => (LegalHoldScopeKind::Site, Vec::new()),
        };
        let released = hold.released.as_ref();
        LegalHold {
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
        }
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
    at_least: Option<i32>,
) -> ApiResult<LegalHoldConnection> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let limit = page(first, &services.limits)?;
    let site = opt_uuid(site_id.as_ref(), "site")?;
    let page = read::holds::legal_holds(
        services,
        caller,
        site,
        active,
        limit,
        after.as_deref(),
        at_least,
    )
    .await?;
    Ok(LegalHoldConnection {
        edges: page
            .items
            .into_iter()
            .map(|(cursor, hold)| LegalHoldEdge {
                cursor,
                node: LegalHold::from(hold),
            })
            .collect(),
        page_info: PageInfo {
            has_next_page: page.has_next_page,
            end_cursor: page.end_cursor,
        },
        total_count: page.total_count.map(super::convert::long),
    })
}

/// The active holds covering a recording, for `Recording.legalHolds`
/// (who may read the holds of its site; `FORBIDDEN` otherwise).
pub async fn recording_holds(
    ctx: &Context<'_>,
    facts: &dm::RecordingFacts,
) -> ApiResult<Vec<LegalHold>> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    Ok(read::holds::recording_holds(services, caller, facts)
        .await?
        .into_iter()
        .map(LegalHold::from)
        .collect())
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
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let hold = super::convert::uuid(&self.legal_hold_id, "legal hold")?;
        Ok(read::holds::hold(services, caller, hold, self.position)
            .await?
            .map(LegalHold::from))
    }
}

/// `placeLegalHold`.
pub async fn place_legal_hold(
    ctx: &Context<'_>,
    input: PlaceLegalHoldInput,
) -> ApiResult<LegalHoldPayload> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let (site, scope, reason) = input.into_domain(&services.limits)?;
    let placed = services
        .service
        .place_legal_hold(caller, site, scope, &reason)
        .await?;
    if !placed.executed.positions.is_empty() {
        services.metrics.appended();
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
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let hold = super::convert::uuid(&hold_id, "legal hold")?;
    let reason = reason.as_deref().map(hold_reason).transpose()?;
    let done = services
        .service
        .release_legal_hold(caller, hold, reason.as_deref())
        .await?;
    if !done.positions.is_empty() {
        services.metrics.appended();
    }
    Ok(LegalHoldPayload {
        position: int(done.last_position),
        legal_hold_id: hold_id,
    })
}
