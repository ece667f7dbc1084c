//! Sites, servers and the response actions a server has to carry out, as
//! the servers and detections read models hold them.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::detections::ResponseRow;
use srs_projections::models::servers::{ServerRow, SiteRow};
use uuid::Uuid;

use super::access;
use crate::error::ApiResult;
use crate::state::Services;

/// The sites `caller` may see (`sites`).
pub async fn sites(
    services: &Services,
    caller: &Principal,
    at_least: Option<i32>,
) -> ApiResult<Vec<SiteRow>> {
    access::authorize_listing(services, caller, Action::ReadServerStatus, None).await?;
    services.at_least(at_least).await?;
    Ok(services
        .reads
        .servers()?
        .sites()?
        .into_iter()
        .filter(|s| access::sees_site(caller, s.id))
        .collect())
}

/// The servers of `site`, or of every site `caller` may see (`servers`).
pub async fn servers(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
    at_least: Option<i32>,
) -> ApiResult<Vec<ServerRow>> {
    access::authorize_listing(services, caller, Action::ReadServerStatus, site).await?;
    services.at_least(at_least).await?;
    Ok(services
        .reads
        .servers()?
        .servers(site)?
        .into_iter()
        .filter(|s| access::sees_site(caller, s.site_id))
        .collect())
}

/// One server; `None` when absent or not visible to `caller` (`server`).
pub async fn server(
    services: &Services,
    caller: &Principal,
    server: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Option<ServerRow>> {
    services.at_least(at_least).await?;
    access::visible_server(services, caller, server).await
}

/// The servers of one site, for who may read its server status
/// (`Site.servers`).
pub async fn site_servers(
    services: &Services,
    caller: &Principal,
    site: Uuid,
) -> ApiResult<Vec<ServerRow>> {
    access::authorize(
        services,
        caller,
        Action::ReadServerStatus,
        Target::Site(site),
    )
    .await?;
    Ok(services.reads.servers()?.servers(Some(site))?)
}

/// A site by id, when it exists: what a row the caller already sees names
/// (a recording's, a server's, a token's, a hold's site).
pub fn site(services: &Services, site: Uuid) -> ApiResult<Option<SiteRow>> {
    Ok(services.reads.servers()?.site(site)?)
}

/// The sites of `ids` that exist, in that order (`Token.sites`).
pub fn existing_sites(
    services: &Services,
    ids: impl IntoIterator<Item = Uuid>,
) -> ApiResult<Vec<SiteRow>> {
    let servers = services.reads.servers()?;
    let mut sites = Vec::new();
    for id in ids {
        if let Some(site) = servers.site(id)? {
            sites.push(site);
        }
    }
    Ok(sites)
}

/// A server by id, when it exists: the one a recording the caller sees
/// names (`Recording.server`).
pub fn named_server(services: &Services, server: Uuid) -> ApiResult<Option<ServerRow>> {
    Ok(services.reads.servers()?.server(server)?)
}

/// The response actions `server` has to carry out, for its AGENT or an
/// ADMIN (`pendingResponses`).
pub async fn pending_responses(
    services: &Services,
    caller: &Principal,
    server: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Vec<ResponseRow>> {
    services.at_least(at_least).await?;
    access::server(services, caller, Action::HandleResponses, server).await?;
    Ok(services.reads.detections()?.pending_responses(server)?)
}
