//! Sites, servers and the response actions a server has to carry out, as
//! the servers and detections read models hold them.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::detections::ResponseRow;
use srs_projections::models::servers::{ServerRow, SiteRow};
use uuid::Uuid;

use super::access;
use crate::error::ApiResult;
use crate::state::Core;

/// The sites `caller` may see (`sites`).
pub async fn sites(
    core: &Core,
    caller: &Principal,
    at_least: Option<i32>,
) -> ApiResult<Vec<SiteRow>> {
    access::authorize_listing(core, caller, Action::ReadServerStatus, None).await?;
    core.at_least(at_least).await?;
    Ok(core
        .reads
        .servers()?
        .sites()?
        .into_iter()
        .filter(|s| access::sees_site(caller, s.id))
        .collect())
}

/// The servers of `site`, or of every site `caller` may see (`servers`).
pub async fn servers(
    core: &Core,
    caller: &Principal,
    site: Option<Uuid>,
    at_least: Option<i32>,
) -> ApiResult<Vec<ServerRow>> {
    access::authorize_listing(core, caller, Action::ReadServerStatus, site).await?;
    core.at_least(at_least).await?;
    Ok(core
        .reads
        .servers()?
        .servers(site)?
        .into_iter()
        .filter(|s| access::sees_site(caller, s.site_id))
        .collect())
}

/// One server; `None` when absent or not visible to `caller` (`server`).
pub async fn server(
    core: &Core,
    caller: &Principal,
    server: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Option<ServerRow>> {
    core.at_least(at_least).await?;
    access::visible_server(core, caller, server).await
}

/// The servers of one site, for who may read its server status
/// (`Site.servers`).
pub async fn site_servers(
    core: &Core,
    caller: &Principal,
    site: Uuid,
) -> ApiResult<Vec<ServerRow>> {
    access::authorize(core, caller, Action::ReadServerStatus, Target::Site(site)).await?;
    Ok(core.reads.servers()?.servers(Some(site))?)
}

/// A site by id, when it exists: what a row the caller already sees names
/// (a recording's, a server's, a token's, a hold's site).
pub fn site(core: &Core, site: Uuid) -> ApiResult<Option<SiteRow>> {
    Ok(core.reads.servers()?.site(site)?)
}

/// The sites of `ids` that exist, in that order (`Token.sites`).
pub fn existing_sites(core: &Core, ids: impl IntoIterator<Item = Uuid>) -> ApiResult<Vec<SiteRow>> {
    let servers = core.reads.servers()?;
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
pub fn named_server(core: &Core, server: Uuid) -> ApiResult<Option<ServerRow>> {
    Ok(core.reads.servers()?.server(server)?)
}

/// The response actions `server` has to carry out, for its AGENT or an
/// ADMIN (`pendingResponses`).
pub async fn pending_responses(
    core: &Core,
    caller: &Principal,
    server: Uuid,
    at_least: Option<i32>,
) -> ApiResult<Vec<ResponseRow>> {
    core.at_least(at_least).await?;
    access::server(core, caller, Action::HandleResponses, server).await?;
    Ok(core.reads.detections()?.pending_responses(server)?)
}
