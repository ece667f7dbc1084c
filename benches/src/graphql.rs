//! The GraphQL API under load: the dashboard query and a filtered
//! recordings page, each compared with a plain axum JSON handler served by
//! the same server, runtime and middleware, hit by the same client.
//!
//! This module holds what does not need the server: [`load_history`]
//! generates a realistic history straight into a data directory's log, and
//! [`measure`] drives `connections` keep-alive HTTP/1.1 connections on
//! loopback, each sending its next request as soon as the previous answer
//! is read (closed loop), recording every request's latency. The measuring
//! client is a bare hyper connection on purpose: the figures are the
//! server's, not a client's per-request work (the answers' data are checked
//! beforehand with `srs_client`). `srs bench graphql`
//! ([`crate::graphql_server`]) starts the server on that directory and
//! passes its address in.
//!
//! # Figures
//!
//! For `dashboard` and `recordings_page`, and for `graphql_floor` (`{
//! __typename }`: the transport, authentication and GraphQL execution
//! with no read model asked, the floor of every answer): `_p50` and
//! `_p99` (ms) and `_throughput` (requests/s). Every request is sent with `Cache-Control:
//! no-cache`, so every answer is computed (nothing kept from an earlier
//! identical request is served): what a changing log or ever-new requests
//! (cursors, filters) cost. Each latency figure's baseline is the plain
//! handler's latency at the same percentile and its ratio is
//! `baseline / value` (see [`Figure::against_latency`]), so for every
//! figure a higher ratio is better and 1.0 means "as fast as the plain
//! handler". Targets: p99 <= 5 ms and a throughput ratio >= 0.3.
//!
//! # The generated history
//!
//! Four sites with two servers each; recordings spread over the last 60
//! days, 2,000 users of whom 100 busy ones own half of the recordings, 200
//! session hosts, 12 published applications, 5 delivery groups. Each
//! recording is its start and its end (the newest 0.5% are still live);
//! one in eight also holds one session event and a detection on it, so the
//! `hasDetections` filter selects a real fraction.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use srs_domain::actor::Actor;
use srs_domain::log::StoreOptions;
use srs_domain::log::{EventStore as _, ExpectedVersion, LogError, NewEvent, SledEventStore};
use srs_domain::model::{
    Deployment, DomainEvent, RecordingAction, RecordingDecision, RecordingMode, SessionEvent,
    SessionEventData, SessionEventType, Severity,
};
use srs_domain::time::Timestamp;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::Figure;

/// Why the GraphQL bench could not measure.
#[derive(Debug, thiserror::Error)]
pub enum GraphqlBenchError {
    #[error("writing the history: {0}")]
    Log(#[from] LogError),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("building a request: {0}")]
    Request(#[from] hyper::http::Error),
    /// An answer that is not the expected success: measuring it would
    /// measure an error path.
    #[error("{what}: unexpected answer (HTTP {status}): {body}")]
    Answer {
        what: String,
        status: u16,
        body: String,
    },
}

const SITES: u64 = 4;
const SERVERS_PER_SITE: u64 = 2;
const USERS: u64 = 2_000;
/// The busy users own half of the recordings.
const BUSY_USERS: u64 = 100;
const HOSTS: u64 = 200;
const APPS: [&str; 12] = [
    "Desktop",
    "Excel",
    "Word",
    "Outlook",
    "Edge",
    "SAP GUI",
    "Teams",
    "PowerShell",
    "Visual Studio",
    "Bloomberg",
    "Citrix Workspace",
    "Notepad++",
];
const DELIVERY_GROUPS: [&str; 5] = ["Office", "Trading", "Support", "Engineering", "Finance"];
/// One recording in this many has a detection.
const DETECTION_EVERY: u64 = 8;
/// Appends in flight while loading (the log's writer commits them in groups).
const LOAD_CONCURRENCY: usize = 512;

/// What [`load_history`] wrote.
#[derive(Clone, Debug)]
pub struct History {
    pub recordings: u64,
    pub events: u64,
    /// Two busy users, for the filtered page.
    pub filter_users: Vec<String>,
    /// Writing the log.
    pub elapsed: Duration,
    /// Folding it into every read model (offline rebuild).
    pub rebuilt: Duration,
}

fn site_id(site: u64) -> Uuid {
    Uuid::from_u128(0x5173_0000 + u128::from(site))
}

fn server_id(server: u64) -> Uuid {
    Uuid::from_u128(0x5e7e_0000 + u128::from(server))
}

/// A cheap deterministic hash, so the history is the same on every run.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn user_name(index: u64) -> String {
    format!("CORP\\user{index:04}")
}

fn user_of(n: u64) -> u64 {
    let h = mix(n);
    if h % 2 == 0 {
        (h >> 8) % BUSY_USERS
    } else {
        (h >> 8) % USERS
    }
}

/// The events of recording `n` of `total`, newest last, ending an hour
/// before `now`.
fn recording(n: u64, total: u64, now: Timestamp) -> Vec<DomainEvent> {
    let h = mix(n ^ 0xa5a5);
    let recording_id = Uuid::from_u128(0x7ec0_0000_0000_0000 + u128::from(n));
    let server = n % (SITES * SERVERS_PER_SITE);
    let site = site_id(server / SERVERS_PER_SITE);
    let span_secs = 60 * 86_400;
    let started_at = now.plus_secs(-3_600 - span_secs + (span_secs * n as i64) / total as i64);
    let user = user_name(user_of(n));
    let host = format!("VDA-{:03}", h % HOSTS);
    let apps: Vec<String> = (0..1 + (h >> 12) % 3)
        .map(|i| APPS[((h >> 16) + i * 5) as usize % APPS.len()].to_owned())
        .collect();
    let mut events = vec![DomainEvent::RecordingStarted {
        recording_id,
        site_id: site,
        server_id: server_id(server),
        session_id: format!("session-{n}"),
        part: 1,
        previous_recording_id: None,
        user: user.clone(),
        domain: Some("CORP".into()),
        groups: vec!["CORP\\Staff".into()],
        client_name: Some(format!("PC-{:04}", (h >> 20) % 5_000)),
        client_ip: Some(format!(
            "10.{}.{}.{}",
            site.as_u128() % 4,
            (h >> 24) % 250,
            (h >> 32) % 250
        )),
        host: host.clone(),
        delivery_group: Some(DELIVERY_GROUPS[((h >> 40) % 5) as usize].into()),
        applications: apps,
        mode: RecordingMode::ScreenAndEvents,
        decision: RecordingDecision {
            policy_id: Uuid::from_u128(0x9011),
            policy_name: "Record all".into(),
            rule: Some("Everyone".into()),
            rule_index: Some(0),
            action: RecordingAction::RecordScreenAndEvents,
            notify: true,
            lossy: false,
            audio: false,
        },
        started_at,
    }];
    if n % DETECTION_EVERY == 3 {
        let event_id = Uuid::from_u128(0xe7e0_0000_0000_0000 + u128::from(n));
        events.push(DomainEvent::SessionEventRecorded {
            recording_id,
            site_id: site,
            event: SessionEvent {
                event_id,
                event_type: SessionEventType::AppStart,
                offset_ms: 60_000,
                data: SessionEventData::App {
                    app: "cmd.exe".into(),
                    pid: None,
                    title: None,
                    detail: None,
                },
            },
        });
        events.push(DomainEvent::EventDetected {
            detection_id: Uuid::from_u128(0xde70_0000_0000_0000 + u128::from(n)),
            recording_id,
            site_id: site,
            server_id: server_id(server),
            user,
            host,
            event_id,
            event_type: SessionEventType::AppStart,
            severity: [Severity::Low, Severity::Medium, Severity::High][(h % 3) as usize],
            rule: "Monitored app".into(),
            policy_id: Uuid::from_u128(0xde7),
            subject: Some("cmd.exe".into()),
            at_offset_ms: 60_000,
        });
    }
    // The newest 0.5% are still being recorded.
    if n < total - total / 200 {
        events.push(DomainEvent::RecordingEnded {
            recording_id,
            site_id: site,
            server_id: server_id(server),
            ended_at: started_at.plus_secs(300 + (h % (8 * 3_600)) as i64),
        });
    }
    events
}

fn setup(now: Timestamp) -> Vec<(String, DomainEvent)> {
    let mut events = Vec::new();
    let at = now.plus_days(-61);
    for site in 0..SITES {
        events.push((
            format!("site-{}", site_id(site)),
            DomainEvent::SiteCreated {
                site_id: site_id(site),
                name: format!("Site {site}"),
                at,
            },
        ));
        for s in 0..SERVERS_PER_SITE {
            let server = site * SERVERS_PER_SITE + s;
            events.push((
                format!("server-{}", server_id(server)),
                DomainEvent::ServerConnected {
                    server_id: server_id(server),
                    site_id: site_id(site),
                    name: format!("SR-{server:02}"),
                    host: format!("sr{server:02}.corp"),
                    deployment: Deployment::OnPremises,
                    version: "2411".into(),
                    credential_sha256: format!("{:064x}", mix(server)),
                    at,
                },
            ));
        }
    }
    events
}

/// Writes `recordings` generated recordings (and their sites and servers)
/// into the log in `data`, through the log's own append path, rebuilds
/// every read model from it, and closes the directory again so a server
/// can open it.
pub async fn load_history(data: &Path, recordings: u64) -> Result<History, GraphqlBenchError> {
    let started = Instant::now();
    let store = SledEventStore::<DomainEvent>::open(data, StoreOptions::default())?;
    let actor = Actor::system("bench");
    let now = Timestamp::now();
    let mut events = 0u64;
    for (stream, event) in setup(now) {
        let _ = store
            .append(
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent::new(actor.clone(), event)],
            )
            .await
            .map_err(|e| LogError::Corrupt(e.to_string()))?;
        events += 1;
    }
    let mut in_flight = JoinSet::new();
    let keys = srs_domain::seal::KeyRing::in_memory();
    for n in 0..recordings {
        if in_flight.len() >= LOAD_CONCURRENCY {
            if let Some(done) = in_flight.join_next().await {
                events += append_result(done)?;
            }
        }
        let batch: Vec<_> = crate::rebuild::sealed(&keys, recording(n, recordings, now))?
            .into_iter()
            .map(|e| NewEvent::new(actor.clone(), e))
            .collect();
        let store = store.clone();
        in_flight.spawn(async move {
            let count = batch.len() as u64;
            let stream = format!(
                "recording-{}",
                Uuid::from_u128(0x7ec0_0000_0000_0000 + u128::from(n))
            );
            store
                .append(&stream, ExpectedVersion::NoStream, batch)
                .await
                .map(|_| count)
                .map_err(|e| LogError::Corrupt(e.to_string()))
        });
    }
    while let Some(done) = in_flight.join_next().await {
        events += append_result(done)?;
    }
    store.flush()?;
    let elapsed = started.elapsed();

    // The server waits (bounded) for its read models before it serves; a
    // history this size is folded offline first, as an operator would run
    // `rebuild` before starting on an imported log.
    let rebuilding = Instant::now();
    let db = store.db().clone();
    let shared: Arc<dyn srs_domain::log::EventStore<DomainEvent>> = Arc::new(store);
    let report = srs_projections::rebuild_all_models(shared.clone(), &db)
        .await
        .map_err(|e| LogError::Corrupt(format!("rebuilding the read models: {e}")))?;
    if let Some((name, Err(e))) = report.projections.iter().find(|(_, r)| r.is_err()) {
        return Err(LogError::Corrupt(format!("rebuilding {name}: {e}")).into());
    }
    db.flush().map_err(LogError::from)?;
    drop(shared);
    drop(db);
    Ok(History {
        recordings,
        events,
        filter_users: vec![user_name(1), user_name(2)],
        elapsed,
        rebuilt: rebuilding.elapsed(),
    })
}

fn append_result(
    done: Result<Result<u64, LogError>, tokio::task::JoinError>,
) -> Result<u64, GraphqlBenchError> {
    done.map_err(|e| LogError::Corrupt(format!("an append task failed: {e}")))?
        .map_err(GraphqlBenchError::from)
}

/// The dashboard query as a dashboard sends it: every insight, all sites.
pub const DASHBOARD_QUERY: &str = "query Dashboard { dashboard { recordingsTotal recordingsLive recordingsInRange storageBytes recordingsPerDay { day count } topUsers { name count } topApplications { name count } serversByStatus { status count } detectionsTotal detectionsInRange detectionsByType { type count } detectionsBySeverity { severity count } restrictedCount archivedCount deletedCount pendingArchive pendingDelete } }";

/// The filtered recordings page: two users' recordings with detections,
/// 50 per page, with the total and the Relay edges.
pub const RECORDINGS_PAGE_QUERY: &str = "query RecordingsPage($users: [String!]) { recordings(filter: {users: $users, hasDetections: true}, first: 50) { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id user host clientIp deliveryGroup applications startedAt endedAt durationSec live restricted } } } }";

/// The least a GraphQL request can ask (`{ __typename }`, with the same
/// token): what the HTTP, authentication and GraphQL layers cost before
/// any read model is asked.
pub const FLOOR_QUERY: &str = "{ __typename }";

/// One kind of request the client repeats.
#[derive(Clone, Debug)]
pub struct Endpoint {
    /// What it is, for errors.
    pub name: String,
    /// `None`: GET; `Some(body)`: POST with a JSON body.
    pub body: Option<Bytes>,
    pub path: String,
    pub token: Option<String>,
    /// Sent with `Cache-Control: no-cache`: the server computes every
    /// answer afresh instead of serving a kept one.
    pub fresh: bool,
}

impl Endpoint {
    /// A GET of `path` (the baseline).
    pub fn get(name: &str, path: &str) -> Endpoint {
        Endpoint {
            name: name.into(),
            body: None,
            path: path.into(),
            token: None,
            fresh: false,
        }
    }

    /// A GraphQL POST to `/graphql`.
    pub fn graphql(name: &str, token: &str, query: &str, variables: serde_json::Value) -> Endpoint {
        let body = serde_json::json!({ "query": query, "variables": variables }).to_string();
        Endpoint {
            name: name.into(),
            body: Some(Bytes::from(body)),
            path: "/graphql".into(),
            token: Some(token.into()),
            fresh: false,
        }
    }

    /// The same request, asking for a fresh answer every time.
    pub fn fresh(mut self) -> Endpoint {
        self.name.push_str(" (fresh)");
        self.fresh = true;
        self
    }

    fn request(&self, addr: SocketAddr) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
        let builder = hyper::Request::builder()
            .uri(self.path.as_str())
            .header(hyper::header::HOST, addr.to_string());
        let builder = match &self.token {
            Some(token) => builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}")),
            None => builder,
        };
        let builder = if self.fresh {
            builder.header(hyper::header::CACHE_CONTROL, "no-cache")
        } else {
            builder
        };
        match &self.body {
            None => builder.method("GET").body(Full::new(Bytes::new())),
            Some(body) => builder
                .method("POST")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone())),
        }
    }
}

/// Per-request latencies of one measured run.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Sorted, in microseconds.
    latencies_us: Vec<u64>,
    elapsed: Duration,
}

impl Sample {
    pub fn requests(&self) -> usize {
        self.latencies_us.len()
    }

    /// The latency at quantile `q` (0..=1) in milliseconds (nearest rank).
    pub fn quantile_ms(&self, q: f64) -> f64 {
        crate::quantile_ms(&self.latencies_us, q).unwrap_or(f64::NAN)
    }

    /// Answered requests per second.
    pub fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }
}

/// Checks one answer of `endpoint` in full: a 200 whose body is JSON
/// without `errors` (for GraphQL, with `data`). Returns the parsed body.
pub async fn check(
    addr: SocketAddr,
    endpoint: &Endpoint,
) -> Result<serde_json::Value, GraphqlBenchError> {
    let mut connection = Connection::open(addr).await?;
    let (status, body) = connection.send(addr, endpoint).await?;
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    let ok = status == 200
        && parsed.as_ref().is_some_and(|v| {
            v.get("errors").is_none()
                && (endpoint.body.is_none() || v.get("data").is_some_and(|d| !d.is_null()))
        });
    match parsed {
        Some(value) if ok => Ok(value),
        _ => Err(GraphqlBenchError::Answer {
            what: endpoint.name.clone(),
            status,
            body: String::from_utf8_lossy(&body).chars().take(500).collect(),
        }),
    }
}

/// One keep-alive HTTP/1.1 connection of the measuring client.
pub(crate) struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Connection, GraphqlBenchError> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| GraphqlBenchError::Connect { addr, source })?;
        stream
            .set_nodelay(true)
            .map_err(|source| GraphqlBenchError::Connect { addr, source })?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // Ends when the sender is dropped or the server closes.
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    pub(crate) async fn send(
        &mut self,
        addr: SocketAddr,
        endpoint: &Endpoint,
    ) -> Result<(u16, Bytes), GraphqlBenchError> {
        self.sender.ready().await?;
        let response = self.sender.send_request(endpoint.request(addr)?).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// Whether a body holds a GraphQL `errors` key (a cheap scan instead of a
/// parse on every measured request). The client shares the server's cores,
/// so the scan is a vectorised one: a byte-by-byte scan of a page's answer
/// took an eighth of the machine's CPU away from the server.
fn has_errors(body: &[u8]) -> bool {
    memchr::memmem::find(body, b"\"errors\":").is_some()
}

/// Drives `connections` keep-alive connections against `endpoint` for
/// `warmup` (not recorded) and then `seconds`, each connection sending its
/// next request as soon as the previous answer is read. Any failed answer
/// stops the run with an error.
pub async fn measure(
    addr: SocketAddr,
    endpoint: &Endpoint,
    connections: usize,
    warmup: Duration,
    seconds: Duration,
) -> Result<Sample, GraphqlBenchError> {
    let endpoint = Arc::new(endpoint.clone());
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        open.push(Connection::open(addr).await?);
    }
    let start = Instant::now() + warmup;
    let end = start + seconds;
    let mut workers = JoinSet::new();
    for mut connection in open {
        let endpoint = endpoint.clone();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(4_096);
            loop {
                let sent = Instant::now();
                if sent >= end {
                    return Ok(latencies);
                }
                let (status, body) = connection.send(addr, &endpoint).await?;
                if status != 200 || has_errors(&body) {
                    return Err(GraphqlBenchError::Answer {
                        what: endpoint.name.clone(),
                        status,
                        body: String::from_utf8_lossy(&body).chars().take(500).collect(),
                    });
                }
                if sent >= start {
                    latencies.push(sent.elapsed().as_micros() as u64);
                }
            }
        });
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = workers.join_next().await {
        let done = done.map_err(|e| GraphqlBenchError::Answer {
            what: endpoint.name.clone(),
            status: 0,
            body: format!("a client task failed: {e}"),
        })?;
        latencies_us.extend(done?);
    }
    // Requests sent before `end` may finish after it: the window is from
    // `start` to the last answer.
    let elapsed = start.elapsed();
    latencies_us.sort_unstable();
    Ok(Sample {
        latencies_us,
        elapsed,
    })
}

/// The figures of one operation against the plain handler's sample.
pub fn figures(operation: &'static str, sample: &Sample, baseline: &Sample) -> Vec<Figure> {
    let (p50, p99, throughput) = match operation {
        "dashboard" => ("dashboard_p50", "dashboard_p99", "dashboard_throughput"),
        "graphql_floor" => (
            "graphql_floor_p50",
            "graphql_floor_p99",
            "graphql_floor_throughput",
        ),
        _ => (
            "recordings_page_p50",
            "recordings_page_p99",
            "recordings_page_throughput",
        ),
    };
    vec![
        Figure::new("graphql", p50, sample.quantile_ms(0.50), "ms")
            .against_latency("axum_json_p50", baseline.quantile_ms(0.50)),
        Figure::new("graphql", p99, sample.quantile_ms(0.99), "ms")
            .against_latency("axum_json_p99", baseline.quantile_ms(0.99)),
        Figure::new("graphql", throughput, sample.throughput(), "requests/s")
            .against("axum_json_throughput", baseline.throughput()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(latencies_us: Vec<u64>, secs: u64) -> Sample {
        Sample {
            latencies_us,
            elapsed: Duration::from_secs(secs),
        }
    }

    #[test]
    fn quantiles_are_nearest_rank_over_sorted_latencies() {
        let s = sample((1..=100).map(|ms| ms * 1_000).collect(), 2);
        assert_eq!(s.quantile_ms(0.5), 50.0);
        assert_eq!(s.quantile_ms(0.99), 99.0);
        assert_eq!(s.quantile_ms(1.0), 100.0);
        assert_eq!(s.throughput(), 50.0);
    }

    #[test]
    fn latency_ratios_read_higher_is_better() {
        let baseline = sample(vec![500; 100], 1);
        let slower = sample(vec![2_000; 50], 1);
        let figures = figures("dashboard", &slower, &baseline);
        assert_eq!(figures[1].figure, "dashboard_p99");
        assert_eq!(figures[1].ratio, Some(0.25));
        assert_eq!(figures[2].figure, "dashboard_throughput");
        assert_eq!(figures[2].ratio, Some(0.5));
    }

    #[test]
    fn the_history_has_detections_live_recordings_and_busy_users() {
        let now = Timestamp::now();
        let total = 1_000;
        let all: Vec<_> = (0..total).flat_map(|n| recording(n, total, now)).collect();
        let detected = all
            .iter()
            .filter(|e| matches!(e, DomainEvent::EventDetected { .. }))
            .count() as u64;
        let ended = all
            .iter()
            .filter(|e| matches!(e, DomainEvent::RecordingEnded { .. }))
            .count() as u64;
        assert_eq!(detected, total / DETECTION_EVERY);
        assert_eq!(ended, total - total / 200);
        let busy = (0..total).filter(|n| user_of(*n) < BUSY_USERS).count() as u64;
        assert!(busy > total / 2 && busy < total * 6 / 10, "{busy}");
    }

    #[test]
    fn an_errors_key_is_spotted_without_parsing() {
        assert!(has_errors(br#"{"data":null,"errors":[{"message":"x"}]}"#));
        assert!(!has_errors(
            br#"{"data":{"dashboard":{"recordingsTotal":3}}}"#
        ));
    }
}
