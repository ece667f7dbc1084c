//! The dashboard and the site-wide event visualization, as the dashboard
//! and detections read models count them, over the sites the caller may
//! see.

use std::collections::BTreeMap;

use srs_domain::model::{Action, Principal};
use srs_domain::time::Timestamp;
use srs_projections::models::dashboard::{
    DashboardParts, DashboardQuery, DashboardView, ServerFigures, SiteScope,
};
use srs_projections::models::detections::VisualBucket;
use srs_projections::models::servers::ServerRow;
use uuid::Uuid;

use super::access;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

/// The length of the dashboard's top lists.
const TOP: usize = 10;
/// The longest range a site visualization covers.
const MAX_VISUALIZATION_DAYS: i64 = 366;
/// The most buckets one site visualization returns.
const MAX_VISUALIZATION_BUCKETS: i64 = 10_000;

/// A dashboard's figures with the sites and the UTC days they cover.
pub struct ScopedDashboard {
    pub figures: DashboardView,
    pub sites: SiteScope,
    /// The first and last UTC day numbers of the range.
    pub days: (i64, i64),
}

/// The dashboard of `site`, or of every site `caller` may see, over
/// `from`..`to` (see `DashboardQuery::days` for the defaults), computed
/// from the read model now (`dashboard`); of the costlier figures only
/// `parts` (what the client asked for).
pub async fn dashboard(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
    (from, to): (Option<Timestamp>, Option<Timestamp>),
    parts: DashboardParts,
    at_least: Option<i32>,
) -> ApiResult<ScopedDashboard> {
    access::authorize_listing(services, caller, Action::ReadDashboard, site).await?;
    if let (Some(from), Some(to)) = (from, to) {
        if to <= from {
            return Err(ApiError::validation("`to` must be after `from`"));
        }
    }
    services.at_least(at_least).await?;
    let sites = match access::sites_in_scope(caller, site) {
        Some(sites) => SiteScope::Sites(sites),
        None => SiteScope::All,
    };
    let query = DashboardQuery {
        sites: sites.clone(),
        from,
        to,
        now: services.service.now(),
        top: TOP,
        // The top lists name users: restricted recordings count only for
        // the roles that see them.
        sees_restricted: access::sees_every_recording(caller),
    };
    let figures = services.reads.dashboard()?.view_of(&query, parts)?;
    Ok(ScopedDashboard {
        figures,
        sites,
        days: query.days(),
    })
}

/// Every server of `sites` with its figures over the UTC days `days`
/// (`Dashboard.servers`: the dashboard authorized its sites).
pub fn server_health(
    services: &Services,
    sites: &SiteScope,
    days: (i64, i64),
) -> ApiResult<Vec<(ServerRow, ServerFigures)>> {
    let servers = services.reads.servers()?;
    let rows = match sites {
        SiteScope::All => servers.servers(None)?,
        SiteScope::Sites(sites) => {
            let mut rows = Vec::new();
            for site in sites {
                rows.extend(servers.servers(Some(*site))?);
            }
            rows
        }
    };
    let dashboard = services.reads.dashboard()?;
    rows.into_iter()
        .map(|row| {
            let figures = dashboard.server_figures(row.id, days.0, days.1)?;
            Ok((row, figures))
        })
        .collect()
}

/// The site visualization of `site`, or of every site `caller` may see:
/// session events and detections per type in buckets of `bucket_sec`
/// seconds over `from`..`to` (default: the 24 hours before `to`, which
/// defaults to now), empty buckets left out (`siteVisualization`).
pub async fn site_visualization(
    services: &Services,
    caller: &Principal,
    site: Option<Uuid>,
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    bucket_sec: i64,
    at_least: Option<i32>,
) -> ApiResult<Vec<VisualBucket>> {
    access::authorize_listing(services, caller, Action::ReadDashboard, site).await?;
    services.at_least(at_least).await?;
    let to = to.unwrap_or_else(|| services.service.now());
    let from = from.unwrap_or_else(|| to.plus_days(-1));
    let sites = access::sites_in_scope(caller, site);
    if to <= from {
        return Err(ApiError::validation("`to` must be after `from`"));
    }
    if to.as_secs() - from.as_secs() > MAX_VISUALIZATION_DAYS * 86_400 {
        return Err(ApiError::validation(format!(
            "a site visualization covers at most {MAX_VISUALIZATION_DAYS} days"
        )));
    }
    if !(60..=31 * 86_400).contains(&bucket_sec) {
        return Err(ApiError::validation(
            "bucketSec must be between 60 and 2678400 (31 days)",
        ));
    }
    if (to.as_secs() - from.as_secs()) / bucket_sec > MAX_VISUALIZATION_BUCKETS {
        return Err(ApiError::validation(format!(
            "at most {MAX_VISUALIZATION_BUCKETS} buckets: widen bucketSec or narrow the range"
        )));
    }
    let detections = services.reads.detections()?;
    let mut merged: BTreeMap<i64, VisualBucket> = BTreeMap::new();
    let scopes: Vec<Option<Uuid>> = match sites {
        None => vec![None],
        Some(sites) => sites.into_iter().map(Some).collect(),
    };
    for site in scopes {
        for bucket in detections.site_visualization(site, from, to, bucket_sec)? {
            let into = merged.entry(bucket.start).or_insert_with(|| VisualBucket {
                start: bucket.start,
                ..VisualBucket::default()
            });
            for (t, n) in bucket.events {
                *into.events.entry(t).or_default() += n;
            }
            for (t, n) in bucket.detections {
                *into.detections.entry(t).or_default() += n;
            }
        }
    }
    Ok(merged.into_values().collect())
}
