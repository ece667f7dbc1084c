//! `verify`: the log's hash chain and invariants walked from a position,
//! on the live log (an unscoped ADMIN: it reaches every site's events).
//!
//! sled iteration is not a snapshot, so a record committed during the
//! walk can make the tail look short of the head. The walk is therefore
//! judged only up to the durable head seen when it started; what was
//! appended later is left to the next call.

use srs_domain::log::{verify, EventStore, VerifyReport};
use srs_domain::model::{Action, DomainEvent, Principal};

use super::access;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// The walk from `from` (at least 1): its report, with a breach past the
/// head seen at the start left out (the log growing under the walk, not
/// damage).
pub async fn verify_chain(
    services: &Services,
    caller: &Principal,
    from: u64,
) -> ApiResult<VerifyReport> {
    access::authorize_global(services, caller, Action::ReadAdminLog).await?;
    let head = EventStore::head(&services.store).position;
    let tree = services.store.backend();
    let from = from.max(1);
    let mut report: VerifyReport =
        tokio::task::spawn_blocking(move || verify::<DomainEvent>(&*tree, from, |_| {}))
            .await
            .map_err(ApiError::internal)??;
    report.breach = report.breach.filter(|b| b.position <= head);
    Ok(report)
}
