//! The read models' runners, as the projection set reports them.

use srs_domain::model::{Action, Principal};
use srs_projections::ProjectionStatus;

use super::access;
use crate::error::ApiResult;
use crate::state::Core;

/// Every runner's position, lag and state (`projections`: an unscoped
/// ADMIN).
pub async fn statuses(core: &Core, caller: &Principal) -> ApiResult<Vec<ProjectionStatus>> {
    access::authorize_global(core, caller, Action::ReadConfiguration).await?;
    Ok(core.reads.statuses())
}
