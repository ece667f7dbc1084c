//! The audit and operations part of the schema: the `verify` query and the
//! `rebuildProjections` mutation (both ADMIN only, and only an ADMIN not
//! scoped to sites: both reach the whole log), the same powers as
//! `srs verify` and `srs rebuild` for a running server.
//!
//! `verify` walks the live log while it grows (see [`crate::read::chain`]).
//!
//! `rebuildProjections` builds fresh trees beside the served ones and swaps
//! each in when complete (`ProjectionSet::rebuild`): queries keep answering
//! throughout.

use async_graphql::SimpleObject;
use srs_domain::log::EventStore;
use srs_domain::model::{Action, Principal};

use super::convert::int;
use crate::error::{ApiError, ApiResult};
use crate::read::access::authorize_global;
use crate::state::Services;

/// The outcome of a chain walk.
#[derive(SimpleObject, Clone, Debug)]
pub struct ChainVerification {
    /// True when nothing was found broken.
    pub intact: bool,
    /// The first position checked.
    pub from_position: i32,
    /// Records checked.
    pub checked: i32,
    /// The last position checked and its hash (hex).
    pub last_position: i32,
    /// The hash of the last event walked (hex).
    pub last_hash: String,
    /// The first breach, if any: the walk stops there.
    pub breach: Option<ChainBreach>,
}

/// Where and how the chain breaks.
#[derive(SimpleObject, Clone, Debug)]
pub struct ChainBreach {
    /// The first log position where the chain breaks.
    pub position: i32,
    /// MISSING, UNDECODABLE, HASH_MISMATCH, CHAIN_BROKEN, STREAM_GAP,
    /// INDEX_MISMATCH or HEAD_MISMATCH.
    pub kind: String,
    /// Why it is broken.
    pub reason: String,
}

/// What a rebuild did.
#[derive(SimpleObject, Clone, Debug)]
pub struct RebuildProjectionsPayload {
    /// The log head when the rebuild ended.
    pub position: i32,
    /// Events read from the log.
    pub events: i32,
    /// The log head the fresh trees were built to before the swap.
    pub target: i32,
    /// How long the rebuild took, in ms.
    pub elapsed_ms: f64,
    /// Events applied per second.
    pub events_per_sec: f64,
    /// Each rebuilt read model.
    pub projections: Vec<RebuiltProjection>,
}

/// One projection of a rebuild.
#[derive(SimpleObject, Clone, Debug)]
pub struct RebuiltProjection {
    /// The read model's name.
    pub name: String,
    /// The position its new tree reached, when it succeeded.
    pub position: Option<i32>,
    /// Why it failed (it then keeps its old tree).
    pub error: Option<String>,
}

fn kind_name(kind: srs_domain::log::BreachKind) -> &'static str {
    use srs_domain::log::BreachKind as K;
    match kind {
        K::Missing => "MISSING",
        K::Undecodable => "UNDECODABLE",
        K::HashMismatch => "HASH_MISMATCH",
        K::ChainBroken => "CHAIN_BROKEN",
        K::StreamGap => "STREAM_GAP",
        K::IndexMismatch => "INDEX_MISMATCH",
        K::HeadMismatch => "HEAD_MISMATCH",
    }
}

/// `verify(fromPosition)`.
pub(crate) async fn verify_chain(
    services: &Services,
    caller: &Principal,
    from: u64,
) -> ApiResult<ChainVerification> {
    let from = from.max(1);
    let report = crate::read::chain::verify_chain(services, caller, from).await?;
    let breach = report.breach;
    Ok(ChainVerification {
        intact: breach.is_none(),
        from_position: int(from),
        checked: int(report.checked),
        last_position: int(report.last.position),
        last_hash: report.last.hash.to_hex(),
        breach: breach.map(|b| ChainBreach {
            position: int(b.position),
            kind: kind_name(b.kind).to_string(),
            reason: b.reason,
        }),
    })
}

/// `rebuildProjections(names)`.
pub(crate) async fn rebuild_projections(
    services: &Services,
    caller: &Principal,
    names: Option<Vec<String>>,
) -> ApiResult<RebuildProjectionsPayload> {
    authorize_global(services, caller, Action::ManageServers).await?;
    let set = services.reads.set();
    let known = set.names();
    let names = names.unwrap_or_default();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(ApiError::validation(format!(
            "no projection named `{unknown}`; known: {}",
            known.join(", ")
        )));
    }
    let mut reports = Vec::new();
    if names.is_empty() {
        reports.push(set.rebuild_all().await.map_err(rebuild_error)?);
    } else {
        for name in &names {
            reports.push(set.rebuild(name).await.map_err(rebuild_error)?);
        }
    }
    let events: u64 = reports.iter().map(|r| r.events).sum();
    let elapsed: f64 = reports.iter().map(|r| r.elapsed.as_secs_f64()).sum();
    Ok(RebuildProjectionsPayload {
        position: int(EventStore::head(&services.store).position),
        events: int(events),
        target: int(reports.iter().map(|r| r.target).max().unwrap_or(0)),
        elapsed_ms: elapsed * 1000.0,
        events_per_sec: events as f64 / elapsed.max(1e-9),
        projections: reports
            .into_iter()
            .flat_map(|r| r.projections)
            .map(|(name, outcome)| RebuiltProjection {
                name,
                position: outcome.as_ref().ok().map(|p| int(*p)),
                error: outcome.err(),
            })
            .collect(),
    })
}

fn rebuild_error(e: srs_projections::ProjectionError) -> ApiError {
    match e {
        srs_projections::ProjectionError::RebuildRunning(name) => ApiError::new(
            crate::error::Code::Conflict,
            format!("a rebuild of `{name}` is already running"),
        ),
        other => ApiError::from(other),
    }
}
