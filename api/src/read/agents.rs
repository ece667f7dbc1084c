//! What a server's agent reads: its server and its site's policies (the
//! configuration) and the response actions it has to carry out, once the
//! read models have applied the log as it stands (a heartbeat's own
//! position may be older than the last policy change or response).

use srs_domain::log::EventStore as _;
use srs_domain::model::{Action, Principal};
use srs_projections::models::detections::DetectionsProjection;
use srs_projections::models::policies::{PoliciesProjection, SitePolicies};
use srs_projections::models::servers::{ServerRow, ServersProjection};
use srs_projections::{WaitError, Which};
use uuid::Uuid;

use super::access;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// The read models a configuration is read from.
const CONFIG_MODELS: &[&str] = &[ServersProjection::NAME, PoliciesProjection::NAME];

/// The read model pending responses are counted in.
const RESPONSE_MODELS: &[&str] = &[DetectionsProjection::NAME];

/// Waits (bounded) until the read models `names` have applied the log as
/// it stands now, so an answer includes every change committed before
/// the question, else `TIMEOUT`.
async fn caught_up(services: &Services, names: &[&str]) -> ApiResult<()> {
    let head = services.store.head().position;
    match services
        .reads
        .wait_for(Which::Only(names), head, services.limits.at_least_timeout)
        .await
    {
        Ok(()) => Ok(()),
        Err(WaitError::Timeout { name, at, wanted }) => Err(ApiError::timeout(format!(
            "the read models did not reach position {wanted} in time ({name} is at {at})"
        ))),
        Err(other) => Err(ApiError::internal(other)),
    }
}

/// How many response actions wait for `server`'s agent.
pub async fn pending_response_count(services: &Services, server: Uuid) -> ApiResult<u64> {
    caught_up(services, RESPONSE_MODELS).await?;
    Ok(services
        .reads
        .detections()?
        .pending_responses(server)?
        .len() as u64)
}

/// A server's configuration: its row, its site's policies and how many
/// response actions wait for it.
pub struct AgentConfig {
    pub server: ServerRow,
    pub policies: SitePolicies,
    pub pending_responses: u64,
}

/// The configuration of `server`, for its AGENT or an ADMIN of its site
/// (`agentConfig`; a server the caller may not see is `NOT_FOUND`).
pub async fn agent_config(
    services: &Services,
    caller: &Principal,
    server: Uuid,
    at_least: Option<i32>,
) -> ApiResult<AgentConfig> {
    services.at_least(at_least).await?;
    caught_up(services, CONFIG_MODELS).await?;
    let row = access::server(services, caller, Action::ReadAgentConfig, server).await?;
    let policies = services.reads.policies()?.site(row.site_id)?;
    let pending_responses = pending_response_count(services, row.id).await?;
    Ok(AgentConfig {
        server: row,
        policies,
        pending_responses,
    })
}

/// The server of a server mutation's payload, once the read models
/// reached the mutation's `position`.
pub async fn payload_server(
    services: &Services,
    position: i32,
    server: Uuid,
) -> ApiResult<ServerRow> {
    services.at_least(Some(position)).await?;
    services
        .reads
        .servers()?
        .server(server)?
        .ok_or_else(|| ApiError::not_found(format!("server {server} not found")))
}

/// The server of a payload with its site's policies, for who may read its
/// configuration (its AGENT, or an ADMIN).
pub async fn payload_config(
    services: &Services,
    caller: &Principal,
    position: i32,
    server: Uuid,
) -> ApiResult<(ServerRow, SitePolicies)> {
    caught_up(services, CONFIG_MODELS).await?;
    let row = payload_server(services, position, server).await?;
    access::server(services, caller, Action::ReadAgentConfig, row.id).await?;
    let policies = services.reads.policies()?.site(row.site_id)?;
    Ok((row, policies))
}

/// How many response actions wait for a payload's server, for its AGENT
/// or an ADMIN.
pub async fn payload_pending_count(
    services: &Services,
    caller: &Principal,
    position: i32,
    server: Uuid,
) -> ApiResult<u64> {
    let row = payload_server(services, position, server).await?;
    access::server(services, caller, Action::HandleResponses, row.id).await?;
    pending_response_count(services, row.id).await
}
