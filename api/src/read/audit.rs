//! The admin audit trail, as the audit read model holds it.

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::audit::{AuditFilter, AuditRow};

use super::{access, Page};
use crate::error::ApiResult;
use crate::state::Services;

/// A page of the audit trail of `filter`, newest first, after the cursor
/// `after`; counted when `with_total` (`auditTrail`).
pub async fn audit_trail(
    services: &Services,
    caller: &Principal,
    filter: &AuditFilter,
    limit: usize,
    after: Option<&str>,
    with_total: bool,
    at_least: Option<i32>,
) -> ApiResult<Page<AuditRow>> {
    let target = filter.site_id.map_or(Target::Global, Target::Site);
    access::authorize(services, caller, Action::ReadAdminLog, target).await?;
    services.at_least(at_least).await?;
    let audit = services.reads.audit()?;
    let page = audit.search(filter, Some(limit), after)?;
    // Counted only when asked for, from the trail's counts.
    let total_count = if with_total {
        Some(audit.count(filter)?)
    } else {
        None
    };
    Ok(Page {
        items: page.items,
        has_next_page: page.has_next_page,
        end_cursor: page.end_cursor,
        total_count,
    })
}
