//! Detected events of the recordings a caller sees, as the detections read
//! model holds them.

use std::collections::HashMap;

use srs_domain::model::Principal;
use srs_projections::models::detections::{DetectionFilter, DetectionRow};
use uuid::Uuid;

use super::access::{self, Sight};
use super::Page;
use crate::error::ApiResult;
use crate::state::Services;

/// A detection as shown: its row and whether its recording was deleted
/// (its subject shredded).
pub struct SeenDetection {
    pub row: DetectionRow,
    pub deleted: bool,
}

/// A page of the detections of `filter` about recordings `caller` sees,
/// newest first, after the cursor `after`; counted in full when
/// `with_total` (`detectedEvents`). Every site asked for must be the
/// caller's; none asked for means the caller's sites.
pub async fn detected_events(
    services: &Services,
    caller: &Principal,
    mut filter: DetectionFilter,
    limit: usize,
    after: Option<String>,
    with_total: bool,
    at_least: Option<i32>,
) -> ApiResult<Page<SeenDetection>> {
    access::authorize_detections(services, caller, &filter.site_ids).await?;
    services.at_least(at_least).await?;
    if filter.site_ids.is_empty() {
        filter.site_ids = access::sites_in_scope(caller, None).unwrap_or_default();
    }
    let sight = Sight::of(services, caller)?;
    let detections = services.reads.detections()?;
    let mut items = Vec::new();
    let mut cursor = after;
    let mut has_next_page = false;
    'pages: loop {
        let page = detections.search(&filter, Some(limit), cursor.as_deref())?;
        for (item_cursor, row) in page.items {
            cursor = Some(item_cursor.clone());
            let Some(deleted) = sight.seen(row.recording_id)? else {
                continue;
            };
            if items.len() == limit {
                has_next_page = true;
                break 'pages;
            }
            items.push((item_cursor, SeenDetection { row, deleted }));
        }
        if !page.has_next_page {
            break;
        }
    }
    // Counted only when asked for: every detection of the filter the
    // caller may see, each recording's visibility decided once.
    let total_count = if with_total {
        let mut seen: HashMap<Uuid, bool> = HashMap::new();
        let mut count = 0u64;
        let mut cursor: Option<String> = None;
        loop {
            let page = detections.search(&filter, Some(500), cursor.as_deref())?;
            for (_, row) in &page.items {
                let visible = match seen.get(&row.recording_id) {
                    Some(visible) => *visible,
                    None => {
                        let visible = sight.seen(row.recording_id)?.is_some();
                        seen.insert(row.recording_id, visible);
                        visible
                    }
                };
                count += u64::from(visible);
            }
            if !page.has_next_page {
                break;
            }
            cursor = page.end_cursor;
        }
        Some(count)
    } else {
        None
    };
    let end_cursor = items.last().map(|(cursor, _)| cursor.clone());
    Ok(Page {
        items,
        has_next_page,
        end_cursor,
        total_count,
    })
}
