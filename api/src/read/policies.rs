//! A site's policies, its retention policy and the playback permissions,
//! as the policies and access read models hold them.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::access::PermissionRow;
use srs_projections::models::policies::{RetentionRow, SitePolicies};
use uuid::Uuid;

use super::access;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// The policies of each kind of `site`, all of them and the active one
/// (`policies`); `NOT_FOUND` for a site that does not exist.
pub async fn site_policies(
    services: &Services,
    caller: &Principal,
    site: Uuid,
    at_least: Option<i32>,
) -> ApiResult<SitePolicies> {
    access::authorize(
        services,
        caller,
        Action::ReadConfiguration,
        Target::Site(site),
    )
    .await?;
    services.at_least(at_least).await?;
    if services.reads.servers()?.site(site)?.is_none() {
        return Err(ApiError::not_found(format!("site {site} not found")));
    }
    Ok(services.reads.policies()?.site(site)?)
}

/// The retention policy of `site`, if it has one (`retentionPolicy`).
pub async fn retention_policy(
    services: &Services,
    caller: &Principal,
    site: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Option<RetentionRow>> {
    access::authorize(
        services,
        caller,
        Action::ReadConfiguration,
        Target::Site(site),
    )
    .await?;
    services.at_least(at_least).await?;
    Ok(services.reads.policies()?.retention(site)?)
}

/// The playback permissions of `site`, or of every site `caller` may see
/// (`playbackPermissions`).
pub async fn playback_permissions(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
    at_least: Option<i32>,
) -> ApiResult<Vec<PermissionRow>> {
    access::authorize_listing(services, caller, Action::ReadConfiguration, site).await?;
    services.at_least(at_least).await?;
    Ok(services
        .reads
        .access()?
        .permissions(site)?
        .into_iter()
        .filter(|p| access::sees_site(caller, p.site_id))
        .collect())
}
