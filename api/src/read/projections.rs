//! The read models' runners, as the projection set reports them.

use srs_domain::model::{Action, Principal};
use srs_projections::ProjectionStatus;

use super::access;
use crate::error::ApiResult;
use crate::state::Services;

/// Every runner's position, lag and state (`projections`: an unscoped
/// ADMIN).
pub async fn statuses(services: &Services, caller: &Principal) -> ApiResult<Vec<ProjectionStatus>> {
    access::authorize_global(services, caller, Action::ReadConfiguration).await?;
    Ok(services.reads.statuses())
}
