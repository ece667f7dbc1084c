//! Reports: the dashboard (by session time, with its top lists and server
//! health), the site-wide event visualization, and the performance
//! summary of a recording's data points.

use std::collections::BTreeMap;

use async_graphql::{ComplexObject, Context, SimpleObject, ID};
use chrono::{DateTime, Utc};
use srs_domain::model::{self as dm, MeasureSummary, PerformanceSummary};
use srs_domain::time::Timestamp;
use srs_projections::models::dashboard::{DashboardView, SiteScope};
use srs_projections::models::detections::VisualBucket;

use super::context::ContextExt;
use super::convert::{id, int, long, time};
use super::enums::{RecordingMode, ServerStatus, Severity};
use super::types::{DataPoints, NameCount, SeverityCount, TypeCount};
use crate::error::ApiResult;
use crate::read;

fn names(list: &[(String, u64)]) -> Vec<NameCount> {
    list.iter()
        .map(|(name, n)| NameCount {
            name: name.clone(),
            count: int(*n),
        })
        .collect()
}

fn type_counts(map: &BTreeMap<dm::SessionEventType, u64>) -> Vec<TypeCount> {
    map.iter()
        .map(|(t, n)| TypeCount {
            event_type: (*t).into(),
            count: int(*n),
        })
        .collect()
}

// The dashboard's list items resolve their fields in order (`serial`),
// like the objects of pages (`types.rs`, the connections): their fields
// are plain values.

/// Recordings (or detections) on one UTC day.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct DayCount {
    /// Midnight UTC of the day.
    pub day: DateTime<Utc>,
    /// How many on that day.
    pub count: i32,
}

/// Detections of one severity on each day of a range.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct SeverityDays {
    /// The severity.
    pub severity: Severity,
    /// Its detections per UTC day, every day of the range, zeros included.
    pub per_day: Vec<DayCount>,
}

/// Servers with one status.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct ServerStateCount {
    /// The servers' status (the `Server.status` values).
    pub status: ServerStatus,
    /// Servers with that status.
    pub count: i32,
    /// Of those, the servers heartbeating within the liveness period
    /// (`Server.online`).
    pub online: i64,
}

/// Recordings of one recording mode.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct ModeCount {
    /// What the recordings capture.
    pub mode: RecordingMode,
    /// Recordings started within the range in that mode.
    pub count: i64,
}

/// A user ranked by the risk of their detections.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct RiskyUser {
    /// The recorded user (lowercase).
    pub name: String,
    /// The sum of the severity weights of the user's detections in the
    /// range: INFO 1, LOW 2, MEDIUM 4, HIGH 8, CRITICAL 16.
    pub risk: i64,
}

/// One server's health and storage, as the dashboard shows it.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(serial)]
pub struct ServerHealth {
    /// The server's id.
    pub server_id: ID,
    /// The server's site.
    pub site_id: ID,
    /// The server's name.
    pub name: String,
    /// Its connection status.
    pub status: ServerStatus,
    /// Whether it heartbeats within the liveness period.
    pub online: bool,
    /// The last heartbeat the service recorded, if any.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Recordings it started within the dashboard's range (session time).
    pub recordings_in_range: i64,
    /// Bytes of content it stores for recordings not deleted.
    pub storage_bytes: i64,
}

/// Insights over recordings, servers and detections, counted by session
/// time: a recording on the day its session started, a detection on the
/// day of its event (the recording's start plus the event's offset), not
/// when either was ingested. Range figures cover whole UTC days: `from`'s
/// day up to the day before `to`.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Dashboard", complex)]
pub struct DashboardReport {
    /// Start of the range the figures cover (midnight UTC of its first day).
    pub from: DateTime<Utc>,
    /// End of the range, exclusive (midnight UTC after its last day).
    pub to: DateTime<Utc>,
    /// Recordings not deleted, of all time.
    pub recordings_total: i32,
    /// Recordings in progress now.
    pub recordings_live: i32,
    /// Recordings started within the range.
    pub recordings_in_range: i32,
    /// Bytes of content stored for recordings not deleted, of all time.
    pub storage_bytes: i64,
    /// Recordings started on each day of the range (at most 366 days),
    /// zeros included.
    pub recordings_per_day: Vec<DayCount>,
    /// Recordings started within the range per recording mode.
    pub recordings_by_mode: Vec<ModeCount>,
    /// Users with the most recordings started within the range.
    pub top_users: Vec<NameCount>,
    /// Applications in the most recordings started within the range.
    pub top_applications: Vec<NameCount>,
    /// Session hosts (VDAs) with the most recordings started within the
    /// range.
    pub top_hosts: Vec<NameCount>,
    /// Delivery groups with the most recordings started within the range.
    pub top_delivery_groups: Vec<NameCount>,
    /// Users whose detections within the range weigh most (severity
    /// weights: INFO 1, LOW 2, MEDIUM 4, HIGH 8, CRITICAL 16).
    pub top_risky_users: Vec<RiskyUser>,
    /// Detection rules that hit most within the range (`count`: detections).
    pub top_alerts: Vec<NameCount>,
    /// Servers per status, now.
    pub servers_by_status: Vec<ServerStateCount>,
    /// Detections of all time.
    pub detections_total: i32,
    /// Detections of events within the range.
    pub detections_in_range: i32,
    /// Detections of events on each day of the range (at most 366 days),
    /// zeros included.
    pub detections_per_day: Vec<DayCount>,
    /// `detectionsPerDay` split by severity: one series per severity with
    /// a detection in the range (most severe last), each over every day
    /// of the range, zeros included.
    pub detections_per_day_by_severity: Vec<SeverityDays>,
    /// Detections of events within the range per session event type.
    pub detections_by_type: Vec<TypeCount>,
    /// Detections of events within the range per severity.
    pub detections_by_severity: Vec<SeverityCount>,
    /// Restricted recordings (not deleted), now.
    pub restricted_count: i32,
    /// Archived recordings, now.
    pub archived_count: i32,
    /// Deleted recordings, of all time.
    pub deleted_count: i32,
    /// Recordings the retention policy will archive at its next run.
    pub pending_archive: i32,
    /// Recordings the retention policy will delete at its next run.
    pub pending_delete: i32,
    #[graphql(skip)]
    pub sites: SiteScope,
    #[graphql(skip)]
    pub days: (i64, i64),
}

impl DashboardReport {
    /// The API shape of `v`, computed for `sites` over the days `days`.
    pub fn new(v: &DashboardView, sites: SiteScope, days: (i64, i64)) -> Self {
        let series = |list: &[srs_projections::models::dashboard::DayCount]| {
            list.iter()
                .map(|d| DayCount {
                    day: time(d.day),
                    count: int(d.count),
                })
                .collect()
        };
        DashboardReport {
            from: time(Timestamp(days.0 * Timestamp::MICROS_PER_DAY)),
            to: time(Timestamp((days.1 + 1) * Timestamp::MICROS_PER_DAY)),
            recordings_total: int(v.recordings_total),
            recordings_live: int(v.recordings_live),
            recordings_in_range: int(v.recordings_in_range),
            storage_bytes: long(v.storage_bytes),
            recordings_per_day: series(&v.recordings_per_day),
            recordings_by_mode: v
                .recordings_by_mode
                .iter()
                .filter_map(|(mode, n)| {
                    Some(ModeCount {
                        mode: mode.mode()?.into(),
                        count: long(*n),
                    })
                })
                .collect(),
            top_users: names(&v.top_users),
            top_applications: names(&v.top_applications),
            top_hosts: names(&v.top_hosts),
            top_delivery_groups: names(&v.top_delivery_groups),
            top_risky_users: v
                .top_risky_users
                .iter()
                .map(|(name, risk)| RiskyUser {
                    name: name.clone(),
                    risk: long(*risk),
                })
                .collect(),
            top_alerts: names(&v.top_alerts),
            servers_by_status: v
                .servers_by_status
                .iter()
                .map(|s| ServerStateCount {
                    status: s.status.into(),
                    count: int(s.count),
                    online: long(s.online),
                })
                .collect(),
            detections_total: int(v.detections_total),
            detections_in_range: int(v.detections_in_range),
            detections_per_day: series(&v.detections_per_day),
            detections_per_day_by_severity: v
                .detections_per_day_by_severity
                .iter()
                .map(|(sev, days)| SeverityDays {
                    severity: Severity::from(*sev),
                    per_day: series(days),
                })
                .collect(),
            detections_by_type: type_counts(&v.detections_by_type),
            detections_by_severity: v
                .detections_by_severity
                .iter()
                .map(|(s, n)| SeverityCount {
                    severity: Severity::from(*s),
                    count: int(*n),
                })
                .collect(),
            restricted_count: int(v.restricted_count),
            archived_count: int(v.archived_count),
            deleted_count: int(v.deleted_count),
            pending_archive: int(v.pending_archive),
            pending_delete: int(v.pending_delete),
            sites,
            days,
        }
    }
}

#[ComplexObject]
impl DashboardReport {
    /// Every server of the dashboard's sites: status, liveness, last
    /// heartbeat, recordings started within the range and bytes stored.
    async fn servers(&self, ctx: &Context<'_>) -> ApiResult<Vec<ServerHealth>> {
        Ok(
            read::dashboard::server_health(ctx.services()?, &self.sites, self.days)?
                .into_iter()
                .map(|(row, figures)| ServerHealth {
                    server_id: id(row.id),
                    site_id: id(row.site_id),
                    name: row.name,
                    status: row.status.into(),
                    online: row.online,
                    last_heartbeat: row.last_heartbeat.map(time),
                    recordings_in_range: long(figures.recordings_in_range),
                    storage_bytes: long(figures.storage_bytes),
                })
                .collect(),
        )
    }
}

/// One time bucket of the site-wide event visualization report.
#[derive(SimpleObject, Clone, Debug)]
pub struct SiteVisualizationBucket {
    /// The bucket's start; buckets are aligned to the report's `from`
    /// (rounded down to the minute).
    pub start: DateTime<Utc>,
    /// Session events in the bucket.
    pub event_count: i64,
    /// Detections in the bucket.
    pub detection_count: i64,
    /// Session events in the bucket per type.
    pub events: Vec<TypeCount>,
    /// Detections in the bucket per type.
    pub detections: Vec<TypeCount>,
}

impl From<&VisualBucket> for SiteVisualizationBucket {
    fn from(b: &VisualBucket) -> Self {
        SiteVisualizationBucket {
            start: time(Timestamp::from_secs(b.start)),
            event_count: long(b.events.values().sum()),
            detection_count: long(b.detections.values().sum()),
            events: type_counts(&b.events),
            detections: type_counts(&b.detections),
        }
    }
}

/// Minimum, mean, 95th percentile (nearest rank) and maximum of one
/// measure over a recording's performance samples.
#[derive(SimpleObject, Clone, Debug)]
pub struct MeasureStats {
    /// Samples that carried this measure.
    pub samples: i64,
    /// The lowest sample.
    pub min: f64,
    /// The mean of the samples.
    pub avg: f64,
    /// The smallest sample that at least 95% of the samples do not exceed.
    pub p95: f64,
    /// The highest sample.
    pub max: f64,
}

impl From<&MeasureSummary> for MeasureStats {
    fn from(m: &MeasureSummary) -> Self {
        MeasureStats {
            samples: long(m.samples),
            min: m.min,
            avg: m.avg,
            p95: m.p95,
            max: m.max,
        }
    }
}

/// What a recording's PERFORMANCE_SAMPLE events add up to; a measure is
/// null when no sample carried it.
#[derive(SimpleObject, Clone, Debug)]
pub struct PerformanceStats {
    /// PERFORMANCE_SAMPLE events of the recording.
    pub samples: i64,
    /// CPU use, percent (`data.cpuPercent`).
    pub cpu_percent: Option<MeasureStats>,
    /// Memory in use, MB (`data.memoryMb`).
    pub memory_mb: Option<MeasureStats>,
    /// Round-trip latency between client and session host, ms
    /// (`data.latencyMs`).
    pub latency_ms: Option<MeasureStats>,
}

impl From<&PerformanceSummary> for PerformanceStats {
    fn from(p: &PerformanceSummary) -> Self {
        PerformanceStats {
            samples: long(p.samples),
            cpu_percent: p.cpu_percent.as_ref().map(MeasureStats::from),
            memory_mb: p.memory_mb.as_ref().map(MeasureStats::from),
            latency_ms: p.latency_ms.as_ref().map(MeasureStats::from),
        }
    }
}

#[ComplexObject]
impl DataPoints {
    /// The recording's performance samples summed up (CPU, memory,
    /// round-trip latency: min/avg/p95/max). Read from the recording's own
    /// events when asked; null once the recording is deleted (its samples
    /// are shredded).
    async fn performance(&self, ctx: &Context<'_>) -> ApiResult<Option<PerformanceStats>> {
        let Some((recording, deleted)) = self.recording else {
            return Ok(None);
        };
        if deleted {
            return Ok(None);
        }
        let summary = read::recordings::performance(ctx.services()?, recording).await?;
        Ok(Some(PerformanceStats::from(&summary)))
    }
}
