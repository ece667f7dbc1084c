//! Tokens as the tokens read model holds them (ADMIN).

use srs_domain::model::{Action, Principal, Target};
use srs_projections::models::tokens::{TokenFilter, TokenRow};
use uuid::Uuid;

use super::{access, Page};
use crate::error::ApiResult;
use crate::state::Services;

/// A page of the tokens of `filter` in id order, after the token `after`
/// (`tokens`, for who may manage tokens).
pub async fn tokens(
    services: &Services,
    caller: &Principal,
    filter: &TokenFilter,
    limit: usize,
    after: Option<Uuid>,
    at_least: Option<i32>,
) -> ApiResult<Page<TokenRow>> {
    access::authorize(services, caller, Action::ManageTokens, Target::Global).await?;
    services.at_least(at_least).await?;
    let rows = services
        .reads
        .tokens()?
        .list(filter, services.service.now())?;
    let total = rows.len();
    let start = after.map_or(0, |after| rows.partition_point(|row| row.id <= after));
    let items: Vec<(String, TokenRow)> = rows
        .into_iter()
        .skip(start)
        .take(limit)
        .map(|row| (row.id.to_string(), row))
        .collect();
    Ok(Page {
        has_next_page: start + items.len() < total,
        end_cursor: items.last().map(|(cursor, _)| cursor.clone()),
        items,
        total_count: Some(total as u64),
    })
}
