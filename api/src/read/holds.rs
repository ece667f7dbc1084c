//! Legal holds as the holds read model holds them, as one caller may see
//! them: an ADMIN every hold of its sites whole; an AUDITOR the holds of
//! its sites with only the recordings it sees, and no hold on recordings
//! it sees none of (a hold must not reveal that a hidden recording
//! exists).

use srs_domain::model::{Action, HoldScope, Principal, RecordingFacts, Target};
use srs_projections::models::holds::HoldRow;
use uuid::Uuid;

use super::access::{self, Sight};
use super::Page;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// A hold as the caller sees it: the row, and the recordings of a hold on
/// recordings the caller sees (empty for other scopes).
pub struct VisibleHold {
    pub row: HoldRow,
    pub recording_ids: Vec<Uuid>,
}

/// `row` as `caller` may see it: `None` when it names only recordings the
/// caller may not see.
pub fn visible(
    services: &Services,
    caller: &Principal,
    row: HoldRow,
) -> ApiResult<Option<VisibleHold>> {
    let recording_ids = match &row.hold.scope {
        HoldScope::Recordings { recording_ids } => {
            let ids = if access::sees_every_recording(caller) {
                recording_ids.clone()
            } else {
                Sight::of(services, caller)?.visible_of(recording_ids)?
            };
            if ids.is_empty() {
                return Ok(None);
            }
            ids
        }
        HoldScope::Users { .. } | HoldScope::Site => Vec::new(),
    };
    Ok(Some(VisibleHold { row, recording_ids }))
}

/// A page of the holds of `site`, or of every site `caller` may read,
/// oldest first, `active` narrowing to active or released ones, after the
/// hold with id `after` (`legalHolds`), once the read models reached
/// `at_least`.
pub async fn legal_holds(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
    active: Option<bool>,
    limit: usize,
    after: Option<&str>,
    at_least: Option<i32>,
) -> ApiResult<Page<VisibleHold>> {
    services.at_least(at_least).await?;
    access::authorize_listing(services, caller, Action::ReadLegalHolds, site).await?;
    let after = after
        .map(|cursor| Uuid::parse_str(cursor).map_err(|_| ApiError::validation("invalid cursor")))
        .transpose()?;
    let mut holds = Vec::new();
    for row in services.reads.holds()?.list(site, active)? {
        if !access::sees_site(caller, row.hold.site_id) {
            continue;
        }
        if let Some(hold) = visible(services, caller, row)? {
            holds.push(hold);
        }
    }
    let total = holds.len();
    let start = after.map_or(0, |after| holds.partition_point(|h| h.row.hold.id <= after));
    let rest = total - start;
    let items: Vec<(String, VisibleHold)> = holds
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|hold| (hold.row.hold.id.to_string(), hold))
        .collect();
    Ok(Page {
        has_next_page: rest > items.len(),
        end_cursor: items.last().map(|(cursor, _)| cursor.clone()),
        items,
        total_count: Some(total as u64),
    })
}

/// The active holds covering a recording, for who may read the holds of
/// its site (`Recording.legalHolds`).
pub async fn recording_holds(
    services: &Services,
    caller: &Principal,
    facts: &RecordingFacts,
) -> ApiResult<Vec<VisibleHold>> {
    access::authorize(
        services,
        caller,
        Action::ReadLegalHolds,
        Target::Site(facts.site_id),
    )
    .await?;
    let mut holds = Vec::new();
    for row in services.reads.holds()?.holding(facts)? {
        if let Some(hold) = visible(services, caller, row)? {
            holds.push(hold);
        }
    }
    Ok(holds)
}

/// Whether an active hold covers the recording (`Recording.onLegalHold`:
/// whoever sees the recording sees this, like `restricted`).
pub fn on_legal_hold(services: &Services, facts: &RecordingFacts) -> ApiResult<bool> {
    Ok(!services.reads.holds()?.holding(facts)?.is_empty())
}

/// One hold by id as `caller` may see it, once the read models reached
/// `position` (a hold mutation's payload).
pub async fn hold(
    services: &Services,
    caller: &Principal,
    hold: Uuid,
    position: i32,
) -> ApiResult<Option<VisibleHold>> {
    services.at_least(Some(position)).await?;
    match services.reads.holds()?.get(hold)? {
        Some(row) => visible(services, caller, row),
        None => Ok(None),
    }
}
