//! A site's policies, its retention policy and the playback permissions,
//! as the policies and access read models hold them.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::access::PermissionRow;
use srs_projections::models::policies::{RetentionRow, SitePolicies};
use uuid::Uuid;

use super::access;
use crate::error::{ApiError, ApiResult};
use crate::state::Core;

/// The policies of each kind of `site`, all of them and the active one
/// (`policies`); `NOT_FOUND` for a site that does not exist.
pub async fn site_policies(
    core: &Core,
    caller: &Principal,
    site: Uuid,
    at_least: Option<i32>,
) -> ApiResult<SitePolicies> {
    access::authorize(core, caller, Action::ReadConfiguration, Target::Site(site)).await?;
    core.at_least(at_least).await?;
    if core.reads.servers()?.site(site)?.is_none() {
        return Err(ApiError::not_found(format!("site {site} not found")));
    }
    Ok(core.reads.policies()?.site(site)?)
}

/// The retention policy of `site`, if it has one (`retentionPolicy`).
pub async fn retention_policy(
    core: &Core,
    caller: &Principal,
    site: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Option<RetentionRow>> {
    access::authorize(core, caller, Action::ReadConfiguration, Target::Site(site)).await?;
    core.at_least(at_least).await?;
    Ok(core.reads.policies()?.retention(site)?)
}

/// The playback permissions of `site`, or of every site `caller` may see
/// (`playbackPermissions`).
pub async fn playback_permissions(
    core: &Core,
    caller: &Principal,
    site: Option<Uuid>,
    at_least: Option<i32>,
) -> ApiResult<Vec<PermissionRow>> {
    access::authorize_listing(core, caller, Action::ReadConfiguration, site).await?;
    core.at_least(at_least).await?;
    Ok(core
        .reads
        .access()?
        .permissions(site)?
        .into_iter()
        .filter(|p| access::sees_site(caller, p.site_id))
        .collect())
}
