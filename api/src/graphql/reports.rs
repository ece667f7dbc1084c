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
use super::plain::plain_object;
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

plain_object!(DayCount { "day": scalar day, "count": scalar count });
plain_object!(SeverityDays { "severity": enumeration severity, "perDay": list per_day });
plain_object!(ServerStateCount {
    "status": enumeration status, "count": scalar count, "online": scalar online,
});
plain_object!(ModeCount { "mode": enumeration mode, "count": scalar count });
plain_object!(RiskyUser { "name": scalar name, "risk": scalar risk });
// Every field but `servers`, which reads the servers' read model.
plain_object!(DashboardReport {
    "from": scalar from,
    "to": scalar to,
    "recordingsTotal": scalar recordings_total,
    "recordingsLive": scalar recordings_live,
    "recordingsInRange": scalar recordings_in_range,
    "storageBytes": scalar storage_bytes,
    "recordingsPerDay": list recordings_per_day,
    "recordingsByMode": list recordings_by_mode,
    "topUsers": list top_users,
    "topApplications": list top_applications,
    "topHosts": list top_hosts,
    "topDeliveryGroups": list top_delivery_groups,
    "topRiskyUsers": list top_risky_users,
    "topAlerts": list top_alerts,
    "serversByStatus": list servers_by_status,
    "detectionsTotal": scalar detections_total,
    "detectionsInRange": scalar detections_in_range,
    "detectionsPerDay": list detections_per_day,
    "detectionsPerDayBySeverity": list detections_per_day_by_severity,
    "detectionsByType": list detections_by_type,
    "detectionsBySeverity": list detections_by_severity,
    "restrictedCount": scalar restricted_count,
    "archivedCount": scalar archived_count,
    "deletedCount": scalar deleted_count,
    "pendingArchive": scalar pending_archive,
    "pendingDelete": scalar pending_delete,
});

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

#[cfg(test)]
mod tests {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};
    use srs_domain::model::{
        RecordingMode as DomainMode, ServerStatus, SessionEventType, Severity,
    };
    use srs_projections::models::dashboard::{
        DashboardView, DayCount as DayFigure, RecordingModeKey, SiteScope, StatusCount,
    };

    use super::*;
    use crate::graphql::plain::{Plain, PlainFields};

    fn report() -> DashboardReport {
        let day = |d: i64, count| DayFigure {
            day: Timestamp(d * Timestamp::MICROS_PER_DAY),
            count,
        };
        let named = |n: &str, c| (n.to_owned(), c);
        let view = DashboardView {
            recordings_total: 12,
            recordings_live: 2,
            recordings_in_range: 9,
            storage_bytes: 5_000_000_000,
            recordings_per_day: vec![day(20_000, 4), day(20_001, 0), day(20_002, 5)],
            recordings_by_mode: [(RecordingModeKey::of(DomainMode::ScreenAndEvents), 9)].into(),
            top_users: vec![named("CORP\\ann \"a\"", 5), named("CORP\\bo", 4)],
            top_applications: vec![named("Excel", 9)],
            top_hosts: vec![named("VDA-1", 9)],
            top_delivery_groups: vec![named("Finance", 3)],
            top_risky_users: vec![named("CORP\\bo", 24)],
            top_alerts: vec![named("USB", 3)],
            servers_by_status: vec![StatusCount {
                status: ServerStatus::Connected,
                count: 2,
                online: 1,
            }],
            detections_total: 7,
            detections_in_range: 3,
            detections_per_day: vec![day(20_000, 3), day(20_001, 0), day(20_002, 0)],
            detections_per_day_by_severity: [(
                Severity::High,
                vec![day(20_000, 3), day(20_001, 0), day(20_002, 0)],
            )]
            .into(),
            detections_by_type: [(SessionEventType::UsbMassStorage, 3)].into(),
            detections_by_severity: [(Severity::High, 3)].into(),
            restricted_count: 1,
            archived_count: 2,
            deleted_count: 3,
            pending_archive: 4,
            pending_delete: u64::MAX,
        };
        DashboardReport::new(&view, SiteScope::All, (20_000, 20_002))
    }

    struct Reports;

    #[Object]
    impl Reports {
        async fn plain(&self) -> Plain<DashboardReport> {
            Plain(report())
        }
        async fn resolved(&self) -> DashboardReport {
            report()
        }
    }

    async fn run(q: &str) -> serde_json::Value {
        let schema = Schema::new(Reports, EmptyMutation, EmptySubscription);
        let response = schema.execute(q).await;
        assert!(response.errors.is_empty(), "{q}: {:?}", response.errors);
        response.data.into_json().unwrap()
    }

    /// The names of GraphQL type `name`'s fields.
    async fn fields_of(name: &str) -> Vec<String> {
        let q = format!("{{ __type(name: \"{name}\") {{ fields {{ name }} }} }}");
        let answer = run(&q).await;
        let fields = answer["__type"]["fields"].as_array().expect(name).iter();
        fields
            .map(|f| f["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Every field of every type the dashboard answers in one pass is
    /// listed as plain (but `servers`, which reads a read model), and the
    /// one-pass answer is the resolvers' answer.
    #[tokio::test]
    async fn a_plain_dashboard_answers_what_its_resolvers_answer() {
        let listed: [(&str, &[&str]); 9] = [
            ("Dashboard", DashboardReport::FIELDS),
            ("DayCount", DayCount::FIELDS),
            ("SeverityDays", SeverityDays::FIELDS),
            ("ServerStateCount", ServerStateCount::FIELDS),
            ("ModeCount", ModeCount::FIELDS),
            ("RiskyUser", RiskyUser::FIELDS),
            ("NameCount", NameCount::FIELDS),
            ("TypeCount", TypeCount::FIELDS),
            ("SeverityCount", SeverityCount::FIELDS),
        ];
        let mut selection = String::new();
        for (name, plain) in listed {
            let mut fields = fields_of(name).await;
            fields.retain(|f| f != "servers");
            let mut plain = plain.to_vec();
            plain.sort_unstable();
            fields.sort_unstable();
            assert_eq!(plain, fields, "{name}");
        }
        for field in DashboardReport::FIELDS {
            selection.push_str(field);
            selection.push_str(match *field {
                "recordingsPerDay" | "detectionsPerDay" => " { day count __typename } ",
                "detectionsPerDayBySeverity" => " { severity perDay { day count } } ",
                "recordingsByMode" => " { mode count } ",
                "topRiskyUsers" => " { name risk } ",
                "serversByStatus" => " { status count online } ",
                "detectionsByType" => " { type count } ",
                "detectionsBySeverity" => " { severity count } ",
                f if f.starts_with("top") => " { name count } ",
                _ => " ",
            });
        }
        for q in [
            format!("{{ plain {{ {selection} __typename }} resolved {{ {selection} __typename }} }}"),
            // An alias, a list asked for part of its fields.
            "{ plain { a: recordingsTotal topUsers { name } } resolved { a: recordingsTotal topUsers { name } } }".into(),
        ] {
            let answer = run(&q).await;
            assert_eq!(answer["plain"], answer["resolved"], "{q}");
            assert!(answer["plain"].as_object().is_some_and(|o| !o.is_empty()));
        }
        let answer = run(&format!("{{ plain {{ {selection} }} }}")).await;
        assert_eq!(answer["plain"]["pendingDelete"], i32::MAX, "{answer}");
        assert_eq!(
            answer["plain"]["recordingsByMode"][0]["mode"],
            "SCREEN_AND_EVENTS"
        );
    }
}
