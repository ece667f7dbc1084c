//! The server's own counters, rendered in the Prometheus text format.
//!
//! Hand-written on purpose: a handful of counters and one histogram do not
//! justify a metrics framework. Everything here is lock-light (atomics, and a
//! mutex held only to bump a map entry) so that counting never slows the
//! request it counts.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `srs_http_requests_total` | counter | `route`, `status` |
//! | `srs_graphql_requests_total` | counter | `operation`, `status` (`ok` or the first error code) |
//! | `srs_graphql_request_duration_seconds` | histogram | |
//! | `srs_appends_total` | counter | (mutations that committed events) |
//! | `srs_log_head_position` | gauge | |
//! | `srs_log_writable` | gauge | (1 while the log takes appends, 0 while storage fails) |
//! | `srs_projection_position`, `srs_projection_lag` | gauge | `projection` |
//! | `srs_log_stream_last_position` | gauge | (a JetStream log only: the stream's last position) |
//! | `srs_node_lag_positions` | gauge | (the log's last position less the lowest a read model applied) |
//! | `srs_lease_held` | gauge | `job` (a JetStream log only: 1 while this node holds the job's lease) |
//! | `srs_ws_connections` | gauge | |
//! | `srs_access_denials_total`, `srs_access_denial_facts_total`, `srs_access_denials_unrecorded_total` | counter | (refusals; facts written; refusals left out by the per-principal rate) |

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency histogram's buckets, in seconds.
const LATENCY_BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The longest operation name kept as a label; longer ones are cut so that
/// a client cannot blow up the label set with one huge name.
const MAX_OPERATION_LABEL: usize = 64;
/// Distinct operation names kept; the rest are counted as `other`.
const MAX_OPERATIONS: usize = 512;

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// By route, then status: looked up by `&str`, so counting a known
    /// route allocates nothing.
    http: Mutex<BTreeMap<String, BTreeMap<u16, u64>>>,
    /// By operation label, then status.
    graphql: Mutex<BTreeMap<String, BTreeMap<&'static str, u64>>>,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
    appends: AtomicU64,
    ws_connections: AtomicI64,
}

/// Gauges read at scrape time from the log and the projections.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    pub log_head: u64,
    /// Whether the log takes appends.
    pub log_writable: bool,
    /// The service's refusal counters.
    pub denials: srs_domain::app::DenialCounts,
    /// `(projection, position, lag)`.
    pub projections: Vec<(String, u64, u64)>,
    /// With a JetStream log: the stream's last position.
    pub stream_last_position: Option<u64>,
    /// The log's last position (the stream's, else the head) less the
    /// lowest position a read model applied.
    pub node_lag: u64,
    /// With a JetStream log: each scheduled job's lease and whether this
    /// node holds it.
    pub leases: Vec<(String, bool)>,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// One HTTP response on `route` (the matched path, never the raw URI).
    pub fn http_request(&self, route: &str, status: u16) {
        if let Ok(mut map) = self.http.lock() {
            let statuses = match map.get_mut(route) {
                Some(statuses) => statuses,
                None => map.entry(route.to_owned()).or_default(),
            };
            *statuses.entry(status).or_default() += 1;
        }
    }

    /// One GraphQL operation with its outcome and latency.
    pub fn graphql_request(&self, operation: &str, status: &'static str, elapsed: Duration) {
        let clean = |c: char| c.is_ascii_alphanumeric() || c == '_';
        // Most names are clean already: label them without allocating.
        let cleaned: String;
        let mut label: &str =
            if operation.len() <= MAX_OPERATION_LABEL && operation.chars().all(clean) {
                operation
            } else {
                cleaned = operation
                    .chars()
                    .filter(|c| clean(*c))
                    .take(MAX_OPERATION_LABEL)
                    .collect();
                &cleaned
            };
        if label.is_empty() {
            label = "anonymous";
        }
        if let Ok(mut map) = self.graphql.lock() {
            let known = map
                .get(label)
                .is_some_and(|statuses| statuses.contains_key(status));
            if !known && map.values().map(BTreeMap::len).sum::<usize>() >= MAX_OPERATIONS {
                label = "other";
            }
            let statuses = match map.get_mut(label) {
                Some(statuses) => statuses,
                None => map.entry(label.to_owned()).or_default(),
            };
            *statuses.entry(status).or_default() += 1;
        }
        let secs = elapsed.as_secs_f64();
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// A mutation committed events.
    pub fn appended(&self) {
        self.appends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ws_opened(&self) {
        self.ws_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ws_closed(&self) {
        self.ws_connections.fetch_sub(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of everything above plus `gauges`.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        // `write!` into a String cannot fail; the results are ignored.
        let _ = writeln!(
            out,
            "# HELP srs_http_requests_total HTTP responses by route and status."
        );
        let _ = writeln!(out, "# TYPE srs_http_requests_total counter");
        if let Ok(map) = self.http.lock() {
            for (route, status, n) in map
                .iter()
                .flat_map(|(route, s)| s.iter().map(move |(status, n)| (route, status, n)))
            {
                let _ = writeln!(
                    out,
                    "srs_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP srs_graphql_requests_total GraphQL operations by name and outcome."
        );
        let _ = writeln!(out, "# TYPE srs_graphql_requests_total counter");
        if let Ok(map) = self.graphql.lock() {
            for (operation, status, n) in map
                .iter()
                .flat_map(|(op, s)| s.iter().map(move |(status, n)| (op, status, n)))
            {
                let _ = writeln!(
                    out,
                    "srs_graphql_requests_total{{operation=\"{}\",status=\"{status}\"}} {n}",
                    escape(operation)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP srs_graphql_request_duration_seconds GraphQL operation latency."
        );
        let _ = writeln!(out, "# TYPE srs_graphql_request_duration_seconds histogram");
        for (bucket, bound) in self.latency_buckets.iter().zip(LATENCY_BUCKETS) {
            let _ = writeln!(
                out,
                "srs_graphql_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.latency_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "srs_graphql_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.latency_sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "srs_graphql_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "srs_graphql_request_duration_seconds_count {count}");
        let _ = writeln!(
            out,
            "# HELP srs_appends_total Mutations that committed events to the log."
        );
        let _ = writeln!(out, "# TYPE srs_appends_total counter");
        let _ = writeln!(
            out,
            "srs_appends_total {}",
            self.appends.load(Ordering::Relaxed)
        );
        for (name, help, value) in [
            (
                "srs_access_denials_total",
                "Refusals (FORBIDDEN), written down or not.",
                gauges.denials.refused,
            ),
            (
                "srs_access_denial_facts_total",
                "Refusal facts written to the log (at most one per request).",
                gauges.denials.facts,
            ),
            (
                "srs_access_denials_unrecorded_total",
                "Refusals not written because their principal was over its rate of refusal facts.",
                gauges.denials.unrecorded,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {value}");
        }
        let _ = writeln!(
            out,
            "# HELP srs_log_head_position The durable head of the event log."
        );
        let _ = writeln!(out, "# TYPE srs_log_head_position gauge");
        let _ = writeln!(out, "srs_log_head_position {}", gauges.log_head);
        let _ = writeln!(
            out,
            "# HELP srs_log_writable 1 while the event log takes appends, 0 while storage fails (e.g. a full disk)."
        );
        let _ = writeln!(out, "# TYPE srs_log_writable gauge");
        let _ = writeln!(out, "srs_log_writable {}", u8::from(gauges.log_writable));
        let _ = writeln!(
            out,
            "# HELP srs_projection_position The last log position a projection applied."
        );
        let _ = writeln!(out, "# TYPE srs_projection_position gauge");
        for (name, position, _) in &gauges.projections {
            let _ = writeln!(
                out,
                "srs_projection_position{{projection=\"{}\"}} {position}",
                escape(name)
            );
        }
        let _ = writeln!(
            out,
            "# HELP srs_projection_lag Events a projection is behind the log head."
        );
        let _ = writeln!(out, "# TYPE srs_projection_lag gauge");
        for (name, _, lag) in &gauges.projections {
            let _ = writeln!(
                out,
                "srs_projection_lag{{projection=\"{}\"}} {lag}",
                escape(name)
            );
        }
        if let Some(last) = gauges.stream_last_position {
            let _ = writeln!(
                out,
                "# HELP srs_log_stream_last_position The JetStream log stream's last position, as its leader answered."
            );
            let _ = writeln!(out, "# TYPE srs_log_stream_last_position gauge");
            let _ = writeln!(out, "srs_log_stream_last_position {last}");
        }
        let _ = writeln!(
            out,
            "# HELP srs_node_lag_positions Positions this node's read models are behind the log's last position."
        );
        let _ = writeln!(out, "# TYPE srs_node_lag_positions gauge");
        let _ = writeln!(out, "srs_node_lag_positions {}", gauges.node_lag);
        if !gauges.leases.is_empty() {
            let _ = writeln!(
                out,
                "# HELP srs_lease_held 1 while this node holds the lease of a scheduled job (runs it), else 0."
            );
            let _ = writeln!(out, "# TYPE srs_lease_held gauge");
            for (job, held) in &gauges.leases {
                let _ = writeln!(
                    out,
                    "srs_lease_held{{job=\"{}\"}} {}",
                    escape(job),
                    u8::from(*held)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP srs_ws_connections Open GraphQL WebSocket connections."
        );
        let _ = writeln!(out, "# TYPE srs_ws_connections gauge");
        let _ = writeln!(
            out,
            "srs_ws_connections {}",
            self.ws_connections.load(Ordering::Relaxed)
        );
        out
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let metrics = Metrics::new();
        metrics.http_request("/graphql", 200);
        metrics.graphql_request("Dashboard", "ok", Duration::from_millis(3));
        metrics.graphql_request("Dashboard", "ok", Duration::from_millis(300));
        metrics.appended();
        let text = metrics.render(&Gauges {
            log_head: 7,
            log_writable: true,
            projections: vec![("catalogue".into(), 5, 2)],
            ..Gauges::default()
        });
        assert!(text.contains("srs_http_requests_total{route=\"/graphql\",status=\"200\"} 1"));
        assert!(
            text.contains("srs_graphql_requests_total{operation=\"Dashboard\",status=\"ok\"} 2")
        );
        assert!(text.contains("srs_graphql_request_duration_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("srs_graphql_request_duration_seconds_bucket{le=\"0.5\"} 2"));
        assert!(text.contains("srs_graphql_request_duration_seconds_count 2"));
        assert!(text.contains("srs_log_head_position 7"));
        assert!(text.contains("srs_log_writable 1"));
        assert!(text.contains("srs_projection_lag{projection=\"catalogue\"} 2"));
        assert!(text.contains("srs_appends_total 1"));
        assert!(text.contains("srs_node_lag_positions 0"));
        assert!(!text.contains("srs_log_stream_last_position"));
        assert!(!text.contains("srs_lease_held"));
        let text = metrics.render(&Gauges {
            stream_last_position: Some(9),
            node_lag: 4,
            leases: vec![("retention".into(), true), ("liveness".into(), false)],
            ..Gauges::default()
        });
        assert!(text.contains("srs_log_stream_last_position 9"));
        assert!(text.contains("srs_node_lag_positions 4"));
        assert!(text.contains("srs_lease_held{job=\"retention\"} 1"));
        assert!(text.contains("srs_lease_held{job=\"liveness\"} 0"));
    }

    #[test]
    fn operation_labels_are_sanitised() {
        let metrics = Metrics::new();
        metrics.graphql_request("a\"b}\n", "ok", Duration::ZERO);
        metrics.graphql_request("", "VALIDATION", Duration::ZERO);
        let text = metrics.render(&Gauges::default());
        assert!(text.contains("operation=\"ab\""));
        assert!(text.contains("operation=\"anonymous\",status=\"VALIDATION\""));
    }
}
