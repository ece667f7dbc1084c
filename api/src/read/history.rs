//! The raw event history in log order, narrowed by the history index and
//! shown as far as the caller may see it ([`Sight::shows_event`]).

use srs_domain::log::{Envelope, EventStore as _};
use srs_domain::model::{DomainEvent, Principal, Role};
use srs_projections::models::HistoryQuery;

use super::access::{self, Sight};
use super::Page;
use crate::error::ApiResult;
use crate::state::Services;

/// The most events one page reads and does not show (events the filter
/// selects about recordings the caller may not see, or after the history
/// index) before it answers with what it found: a page may then be short,
/// with `has_next_page`.
const HISTORY_SCAN_LIMIT: usize = 50_000;

/// A logged event as shown: the envelope and whether the recording it is
/// about was deleted.
pub struct ShownEvent {
    pub envelope: Envelope<DomainEvent>,
    pub deleted: bool,
}

/// What a history page asks for.
pub struct HistoryPage {
    /// The filter (its `within_sites` is the caller's, set here).
    pub query: HistoryQuery,
    /// From this log position (inclusive; default 1).
    pub from_position: Option<u64>,
    /// Up to this log position (inclusive).
    pub to_position: Option<u64>,
    /// After this position (the cursor).
    pub after: Option<u64>,
    pub limit: usize,
    /// Whether to count every event the filter shows.
    pub with_total: bool,
}

/// A page of the history (`history`): events about recordings `caller`
/// may not see are left out, and a caller scoped to sites gets the events
/// of its sites only.
pub async fn history(
    services: &Services,
    caller: &Principal,
    asked: HistoryPage,
    at_least: Option<i32>,
) -> ApiResult<Page<ShownEvent>> {
    let HistoryPage {
        mut query,
        from_position,
        to_position: to,
        after,
        limit,
        with_total,
    } = asked;
    access::authorize_history(services, caller, query.site).await?;
    services.at_least(at_least).await?;
    let start = from_position.unwrap_or(1).max(1);
    let from = after.map_or(start, |after| start.max(after + 1));
    query.within_sites = (!caller.unscoped()).then(|| caller.site_ids.iter().copied().collect());
    let sight = Sight::of(services, caller)?;
    // Whether the caller's history shows `envelope`, and with which
    // recording state (deleted or not); the index only narrows the walk.
    let shows = |envelope: &Envelope<DomainEvent>| -> ApiResult<Option<bool>> {
        let event = &envelope.payload;
        let keep = query.stream.as_deref().is_none_or(|s| s == envelope.stream)
            && query
                .types
                .as_ref()
                .is_none_or(|t| t.iter().any(|t| t == event.name()))
            && query
                .actor
                .as_deref()
                .is_none_or(|a| a == envelope.actor.label())
            && query.site.is_none_or(|s| event.site_id() == Some(s))
            && query
                .recording
                .is_none_or(|r| event.recording_id() == Some(r))
            && query.from.is_none_or(|t| envelope.recorded_at >= t)
            && query.to.is_none_or(|t| envelope.recorded_at < t);
        if !keep {
            return Ok(None);
        }
        sight.shows_event(event)
    };
    let mut items = Vec::new();
    let mut has_next_page = false;
    let mut unshown = 0usize;
    let mut last_read = None;
    {
        let mut visit = |envelope: &Envelope<DomainEvent>| -> ApiResult<bool> {
            if unshown >= HISTORY_SCAN_LIMIT {
                has_next_page = true;
                return Ok(false);
            }
            let Some(deleted) = shows(envelope)? else {
                unshown += 1;
                last_read = Some(envelope.position);
                return Ok(true);
            };
            if items.len() == limit {
                has_next_page = true;
                return Ok(false);
            }
            last_read = Some(envelope.position);
            items.push((
                envelope.position.to_string(),
                ShownEvent {
                    envelope: envelope.clone(),
                    deleted,
                },
            ));
            Ok(true)
        };
        walk(services, &query, from, to, true, &mut visit).await?;
    }
    // Counted only when asked for: every event from the filter's
    // `fromPosition` (not the cursor) to its `toPosition` the page would
    // show.
    let whole_log = access::sees_whole_log(caller)
        && query.stream.is_none()
        && query.types.is_none()
        && query.actor.is_none()
        && query.site.is_none()
        && query.recording.is_none()
        && query.from.is_none()
        && query.to.is_none();
    let total_count = if with_total {
        let mut count = 0u64;
        if whole_log {
            // An unscoped ADMIN sees every event (every event about a
            // recording follows its start, which the catalogue keeps,
            // deleted or not), and positions are gapless: the range is
            // the count.
            let head = services.store.head().position;
            let last = to.map_or(head, |to| to.min(head));
            count = last.saturating_add(1).saturating_sub(start);
        } else {
            // The same holds for one filter value over the whole log: the
            // index's count of it, and the events after the index.
            let indexed =
                (caller.role == Role::Admin && caller.unscoped() && start == 1 && to.is_none())
                    .then(|| services.reads.history()?.count(&query))
                    .transpose()?
                    .flatten();
            let mut counter = |envelope: &Envelope<DomainEvent>| {
                if shows(envelope)?.is_some() {
                    count += 1;
                }
                Ok(true)
            };
            walk(services, &query, start, to, indexed.is_none(), &mut counter).await?;
            count += indexed.unwrap_or(0);
        }
        Some(count)
    } else {
        None
    };
    // A short page that stopped on events it does not show continues
    // after them.
    let end_cursor = if has_next_page && items.len() < limit {
        last_read.map(|p| p.to_string())
    } else {
        items.last().map(|(cursor, _)| cursor.clone())
    };
    Ok(Page {
        items,
        has_next_page,
        end_cursor,
        total_count,
    })
}

/// Walks the log events `query` selects from position `from` to `to`
/// (inclusive), oldest first, until `visit` says stop: with `index`, the
/// positions the history index selects, read by position, then every event
/// after the index from the log; without, only the latter.
async fn walk(
    services: &Services,
    query: &HistoryQuery,
    from: u64,
    to: Option<u64>,
    index: bool,
    visit: &mut (dyn FnMut(&Envelope<DomainEvent>) -> ApiResult<bool> + Send),
) -> ApiResult<()> {
    let history = services.reads.history()?;
    let indexed = history.indexed()?;
    let to = to.unwrap_or(u64::MAX);
    if index {
        let mut positions = history.positions(query, from, to.min(indexed))?;
        loop {
            let chunk = positions
                .by_ref()
                .take(256)
                .collect::<Result<Vec<u64>, _>>()?;
            if chunk.is_empty() {
                break;
            }
            // Consecutive positions are read together.
            let mut i = 0;
            while i < chunk.len() {
                let mut j = i + 1;
                while j < chunk.len() && chunk[j] == chunk[j - 1] + 1 {
                    j += 1;
                }
                for envelope in &services.store.read_all(chunk[i], j - i).await? {
                    if !visit(envelope)? {
                        return Ok(());
                    }
                }
                i = j;
            }
        }
    }
    let mut at = from.max(indexed.saturating_add(1));
    while at <= to {
        let batch = services.store.read_all(at, 1024).await?;
        if batch.is_empty() {
            break;
        }
        for envelope in &batch {
            if envelope.position > to {
                return Ok(());
            }
            at = envelope.position + 1;
            if !visit(envelope)? {
                return Ok(());
            }
        }
    }
    Ok(())
}
