//! `srs simulate`: a fleet of Session Recording servers against a running
//! srs, speaking only the public API, as real agents do.
//!
//! With an ADMIN token the simulator creates (or reuses, by name) a site,
//! gives it recording, event detection and event response policies (so
//! some sessions are screen-recorded, some declined, and some events are
//! detections), connects `N` servers and takes each server's AGENT token
//! from `connectServer`. Then every server, as its own agent: heartbeats,
//! starts recordings (the policy decides the mode), sends the session
//! events in `recordSessionEvents` batches, uploads content chunks
//! (`PUT /recordings/{id}/chunks/{seq}`, when `--content-bytes` > 0 and the
//! recording records the screen) and ends the recording.
//!
//! The report counts what was sent and what the server answered:
//! recordings, events, detections, chunks and bytes; requests per second;
//! p50/p99 request latency; errors by `extensions.code` (or HTTP status).
//! Any error makes the run fail (exit 1).
//!
//! # Layout
//!
//! - [`generator`]: the plausible users, hosts, applications and events
//!   (shared with `srs serve --demo`), deterministic from `--seed`.
//! - this module: the site
//!   set-up shared with the demo ([`ensure_site`], [`ensure_policies`]),
//!   the fleet driver ([`run`]) and its [`Report`].

pub mod generator;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use generator::{event_id, Population, ServerSpec, SessionPlan};

/// The site the simulator creates (or reuses) unless told otherwise.
pub const DEFAULT_SITE: &str = "Simulated fleet";
/// The names of the policies the simulator (and the demo) sets.
pub const RECORDING_POLICY: &str = "Fleet recording";
pub const DETECTION_POLICY: &str = "Fleet detection";
pub const RESPONSE_POLICY: &str = "Fleet response";

/// The largest content chunk uploaded in one request.
const CHUNK_BYTES: usize = 1024 * 1024;
/// How often every server heartbeats while it runs.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);
/// One request's limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a call answered 429 (`RATE_LIMITED`) is sent again after its
/// `Retry-After`.
const MAX_RATE_LIMITED_RETRIES: u32 = 5;

/// What `srs simulate` does.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// The srs base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    /// An ADMIN token.
    pub token: String,
    pub servers: usize,
    /// Sessions in all, spread round-robin over the servers.
    pub sessions: u64,
    /// At most this many session events per second over the whole fleet.
    pub rate: Option<f64>,
    pub seed: u64,
    /// Content bytes per screen recording (0: no content upload).
    pub content_bytes: u64,
    /// At most this many session events per session.
    pub max_events: usize,
    /// Session events per `recordSessionEvents` call.
    pub batch: usize,
    /// Sessions in flight per server.
    pub concurrency: usize,
    pub site: String,
}

/// Why the simulation could not run at all (errors during the run are
/// counted in the [`Report`] instead).
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("bad options: {0}")]
    Options(String),
    #[error("setting up the site: {0}")]
    Setup(GqlError),
    #[error("the HTTP client: {0}")]
    Client(String),
}

pub use srs_client::{Gql, GqlError};

fn field<'a>(data: &'a Value, path: &[&str]) -> Result<&'a Value, GqlError> {
    let mut at = data;
    for key in path {
        at = at.get(key).ok_or_else(|| {
            GqlError::new("BAD_RESPONSE", format!("no `{}` in {data}", path.join(".")))
        })?;
    }
    Ok(at)
}

fn text(data: &Value, path: &[&str]) -> Result<String, GqlError> {
    field(data, path)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| GqlError::new("BAD_RESPONSE", format!("`{}` is not text", path.join("."))))
}

// ---- site set-up (shared with the demo) -------------------------------------

/// The site named `name`, created when there is none: its id and the log
/// position that holds it (pass it on as `atLeast`).
pub async fn ensure_site(gql: &dyn Gql, name: &str) -> Result<(String, i64), GqlError> {
    let sites = gql.call("{ sites { id name } }", json!({})).await?;
    if let Some(site) = sites["sites"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name))
    {
        return Ok((text(site, &["id"])?, 0));
    }
    let created = gql
        .call(
            "mutation($name: String!) { createSite(input: {name: $name}) { siteId position } }",
            json!({ "name": name }),
        )
        .await?;
    Ok((
        text(&created, &["createSite", "siteId"])?,
        created["createSite"]["position"].as_i64().unwrap_or(0),
    ))
}

/// The recording policy: finance desktops and contractors are screen
/// recorded (the user is told), the test lab is not recorded, everything
/// else is recorded as events only.
pub fn recording_policy() -> Value {
    json!({
        "name": RECORDING_POLICY,
        "rules": [
            { "name": "Finance desktops: screen", "action": "RECORD_SCREEN_AND_EVENTS",
              "notify": true, "deliveryGroups": ["Finance Desktops"] },
            { "name": "Contractors: screen", "action": "RECORD_SCREEN_AND_EVENTS",
              "notify": true, "groups": [r"CORP\Contractors"] },
            { "name": "Engineering build hosts: not recorded", "action": "DO_NOT_RECORD",
              "notify": false, "hosts": ["VDA-ENG-08"] }
        ],
        "fallback": "RECORD_EVENTS_ONLY"
    })
}

/// The detection policy. It logs every kind of activity the fleet reports
/// (the sessions' timelines) except registry writes, which agents send and
/// the server refuses (counted as ignored). Detections are what a rule
/// matched: USB storage, file-sharing sites, the confidential share, admin
/// tools and long idle spells; every other logged event is timeline only.
/// The rules name the admin tools, so no monitored applications list is
/// needed (an empty one adds no INFO detections).
pub fn detection_policy() -> Value {
    let share = format!(r"{}\*", generator::CONFIDENTIAL_SHARE);
    json!({
        "name": DETECTION_POLICY,
        "logged": ["LOGON", "LOGOFF", "DISCONNECT", "RECONNECT", "APP_START", "TOP_MOST_WINDOW",
                   "WEB_BROWSING", "FILE_CREATE", "FILE_RENAME", "FILE_DELETE", "FILE_MOVE",
                   "FILE_TRANSFER", "USB_MASS_STORAGE", "CLIPBOARD", "PRINT", "IDLE",
                   "PERFORMANCE_SAMPLE"],
        "monitoredApps": [],
        "rules": [
            { "type": "USB_MASS_STORAGE", "severity": "HIGH", "name": "USB mass storage" },
            { "type": "WEB_BROWSING", "severity": "MEDIUM", "name": "File sharing site",
              "patterns": generator::RISKY_SITE_HOSTS },
            { "type": "FILE_CREATE", "severity": "HIGH", "name": "Confidential file copied",
              "patterns": [share] },
            { "type": "FILE_MOVE", "severity": "CRITICAL", "name": "Confidential file moved",
              "patterns": [share] },
            { "type": "APP_START", "severity": "MEDIUM", "name": "Admin tool started",
              "patterns": generator::ADMIN_TOOLS },
            { "type": "IDLE", "severity": "LOW", "name": "Idle over 30 minutes",
              "idleSeconds": 1800 }
        ]
    })
}

/// The response policy: USB storage and confidential files mail the SOC.
pub fn response_policy() -> Value {
    json!({
        "name": RESPONSE_POLICY,
        "rules": [
            { "name": "Alert the SOC", "types": ["USB_MASS_STORAGE", "FILE_CREATE", "FILE_MOVE"],
              "minSeverity": "HIGH", "actions": ["EMAIL_ALERT"],
              "recipients": ["soc@corp.example"], "cooldownSec": 300 }
        ]
    })
}

/// Gives the site the three fleet policies and activates them, unless its
/// active detection policy already is the fleet's. `at_least`: the log
/// position that created the site.
pub async fn ensure_policies(gql: &dyn Gql, site_id: &str, at_least: i64) -> Result<(), GqlError> {
    let current = gql
        .call(
            "query($site: ID!, $at: Int) { policies(siteId: $site, atLeast: $at) \
             { eventDetection { active { name } } } }",
            json!({ "site": site_id, "at": at_least }),
        )
        .await?;
    if current["policies"]["eventDetection"]["active"]["name"] == DETECTION_POLICY {
        return Ok(());
    }
    // The detection policy first: the response policy names its types.
    for (mutation, input) in [
        ("createRecordingPolicy", recording_policy()),
        ("createEventDetectionPolicy", detection_policy()),
        ("createEventResponsePolicy", response_policy()),
    ] {
        let input_type = match mutation {
            "createRecordingPolicy" => "RecordingPolicyInput",
            "createEventDetectionPolicy" => "EventDetectionPolicyInput",
            _ => "EventResponsePolicyInput",
        };
        let created = gql
            .call(
                &format!(
                    "mutation($site: ID!, $input: {input_type}!) \
                     {{ {mutation}(siteId: $site, input: $input) {{ policyId }} }}"
                ),
                json!({ "site": site_id, "input": input }),
            )
            .await?;
        let policy_id = text(&created, &[mutation, "policyId"])?;
        gql.call(
            "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }",
            json!({ "id": policy_id }),
        )
        .await?;
    }
    Ok(())
}

/// Connects one server to the site: its id and AGENT token.
pub async fn connect_server(
    gql: &dyn Gql,
    site_id: &str,
    spec: &ServerSpec,
) -> Result<(String, String), GqlError> {
    let data = gql
        .call(
            "mutation($input: ConnectServerInput!) { connectServer(input: $input) { serverId agentToken } }",
            json!({ "input": {
                "siteId": site_id,
                "name": spec.name,
                "host": spec.host,
                "deployment": if spec.cloud { "CLOUD" } else { "ON_PREMISES" },
                "version": spec.version,
            }}),
        )
        .await?;
    Ok((
        text(&data, &["connectServer", "serverId"])?,
        text(&data, &["connectServer", "agentToken"])?,
    ))
}

/// The API's `SessionAttributesInput` for a plan.
pub fn session_input(plan: &SessionPlan) -> Value {
    json!({
        "user": plan.user,
        "groups": plan.groups,
        "clientName": plan.client_name,
        "clientIp": plan.client_ip,
        "host": plan.host,
        "deliveryGroup": plan.delivery_group,
        "applications": plan.applications,
    })
}

// ---- the run ----------------------------------------------------------------

/// What a run sent and what the server answered.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Report {
    pub site_id: String,
    pub server_ids: Vec<String>,
    /// Sessions started.
    pub sessions: u64,
    /// Sessions the policy recorded (screen or events).
    pub recordings: u64,
    pub screen_recordings: u64,
    /// Sessions the policy declined (DO_NOT_RECORD): nothing more sent.
    pub declined: u64,
    /// Session events sent and newly stored.
    pub events_sent: u64,
    pub events_accepted: u64,
    /// Session events the server refused because the site's detection
    /// policy does not log their type.
    pub events_ignored: u64,
    /// Detections and responses the server reported for those events.
    pub detections: u64,
    pub responses: u64,
    pub chunks: u64,
    pub content_bytes: u64,
    pub heartbeats: u64,
    pub requests: u64,
    pub seconds: f64,
    pub requests_per_sec: f64,
    pub events_per_sec: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    /// Errors by code (`extensions.code`, `HTTP_<status>`, `TRANSPORT`).
    pub errors: BTreeMap<String, u64>,
}

impl Report {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "site                {}", self.site_id)?;
        writeln!(f, "servers             {}", self.server_ids.len())?;
        writeln!(
            f,
            "sessions            {} ({} recorded, {} with screen, {} declined)",
            self.sessions, self.recordings, self.screen_recordings, self.declined
        )?;
        writeln!(
            f,
            "session events      {} sent, {} stored, {} not logged",
            self.events_sent, self.events_accepted, self.events_ignored
        )?;
        writeln!(
            f,
            "detections          {} ({} responses)",
            self.detections, self.responses
        )?;
        writeln!(
            f,
            "content             {} chunks, {} bytes",
            self.chunks, self.content_bytes
        )?;
        writeln!(f, "heartbeats          {}", self.heartbeats)?;
        writeln!(
            f,
            "requests            {} in {:.2} s: {:.0} requests/s, {:.0} events/s",
            self.requests, self.seconds, self.requests_per_sec, self.events_per_sec
        )?;
        writeln!(
            f,
            "latency             p50 {:.2} ms, p99 {:.2} ms",
            self.latency_p50_ms, self.latency_p99_ms
        )?;
        if self.errors.is_empty() {
            write!(f, "errors              none")
        } else {
            let list: Vec<String> = self
                .errors
                .iter()
                .map(|(code, n)| format!("{code} {n}"))
                .collect();
            write!(f, "errors              {}", list.join(", "))
        }
    }
}

/// Counters shared by every server task.
#[derive(Default)]
struct Stats {
    sessions: AtomicU64,
    recordings: AtomicU64,
    screen: AtomicU64,
    declined: AtomicU64,
    events_sent: AtomicU64,
    events_accepted: AtomicU64,
    events_ignored: AtomicU64,
    detections: AtomicU64,
    responses: AtomicU64,
    chunks: AtomicU64,
    bytes: AtomicU64,
    heartbeats: AtomicU64,
    requests: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn request(&self, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut all) = self.latencies_us.lock() {
            all.push(took.as_micros() as u64);
        }
    }

    fn error(&self, error: &GqlError) {
        tracing::warn!(code = %error.code, "{}", error.message);
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(error.code.clone()).or_default() += 1;
        }
    }
}

/// Spaces session events out to at most `rate` per second, fleet-wide.
struct Pacer {
    per_event: Option<Duration>,
    next: tokio::sync::Mutex<Instant>,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Pacer {
        Pacer {
            per_event: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn take(&self, events: usize) {
        let Some(per_event) = self.per_event else {
            return;
        };
        let at = {
            let mut next = self.next.lock().await;
            let at = (*next).max(Instant::now());
            *next = at + per_event * events as u32;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// One connected server as its agent sees itself.
struct Agent {
    server_id: String,
    gql: srs_client::Client,
    /// For content uploads.
    http: reqwest::Client,
    base: String,
    token: String,
    stats: Arc<Stats>,
}

impl Agent {
    /// One timed GraphQL call; errors are counted.
    async fn call(&self, query: &str, variables: Value) -> Result<Value, GqlError> {
        let started = Instant::now();
        let result = self.gql.call(query, variables).await;
        self.stats.request(started.elapsed());
        if let Err(e) = &result {
            self.stats.error(e);
        }
        result
    }

    async fn heartbeat(&self) {
        if self
            .call(
                "mutation($id: ID!) { heartbeat(serverId: $id) { position } }",
                json!({ "id": self.server_id }),
            )
            .await
            .is_ok()
        {
            Stats::add(&self.stats.heartbeats, 1);
        }
    }

    /// Records one session; errors end the session early (counted).
    async fn session(&self, plan: &SessionPlan, options: &SimulateOptions, pacer: &Pacer) {
        let started = self
            .call(
                "mutation($input: StartRecordingInput!) { startRecording(input: $input) \
                 { recordingId recorded decision { action } } }",
                json!({ "input": {
                    "serverId": self.server_id,
                    "sessionId": plan.session_id,
                    "session": session_input(plan),
                }}),
            )
            .await;
        let Ok(started) = started else { return };
        Stats::add(&self.stats.sessions, 1);
        let payload = &started["startRecording"];
        if payload["recorded"] != true {
            Stats::add(&self.stats.declined, 1);
            return;
        }
        Stats::add(&self.stats.recordings, 1);
        let Some(recording_id) = payload["recordingId"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
        else {
            self.stats.error(&GqlError::new(
                "BAD_RESPONSE",
                format!("startRecording gave no recording id: {payload}"),
            ));
            return;
        };
        let screen = payload["decision"]["action"] == "RECORD_SCREEN_AND_EVENTS";
        if screen {
            Stats::add(&self.stats.screen, 1);
        }
        for (batch_no, batch) in plan.events.chunks(options.batch.max(1)).enumerate() {
            pacer.take(batch.len()).await;
            let first = batch_no * options.batch.max(1);
            let events: Vec<Value> = batch
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    json!({
                        "eventId": event_id(recording_id, first + i),
                        "type": e.event_type.as_str(),
                        "offsetMs": e.offset_ms,
                        "data": e.data,
                    })
                })
                .collect();
            Stats::add(&self.stats.events_sent, events.len() as u64);
            let Ok(recorded) = self
                .call(
                    "mutation($id: ID!, $events: [SessionEventInput!]!) { \
                     recordSessionEvents(recordingId: $id, events: $events) \
                     { accepted ignored detections responses } }",
                    json!({ "id": recording_id, "events": events }),
                )
                .await
            else {
                return;
            };
            let r = &recorded["recordSessionEvents"];
            Stats::add(
                &self.stats.events_accepted,
                r["accepted"].as_u64().unwrap_or(0),
            );
            Stats::add(
                &self.stats.events_ignored,
                r["ignored"].as_u64().unwrap_or(0),
            );
            Stats::add(
                &self.stats.detections,
                r["detections"].as_u64().unwrap_or(0),
            );
            Stats::add(&self.stats.responses, r["responses"].as_u64().unwrap_or(0));
        }
        if screen && options.content_bytes > 0 {
            let body = generator::content(recording_id, options.content_bytes as usize);
            for (seq, chunk) in body.chunks(CHUNK_BYTES).enumerate() {
                if self
                    .upload_chunk(recording_id, seq as u32, chunk)
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
        let _ = self
            .call(
                "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
                json!({ "id": recording_id }),
            )
            .await;
    }

    /// `PUT /recordings/{id}/chunks/{seq}` with the body's SHA-256.
    async fn upload_chunk(&self, recording_id: Uuid, seq: u32, chunk: &[u8]) -> Result<(), ()> {
        let started = Instant::now();
        let sha = hex::encode(Sha256::digest(chunk));
        let result = self
            .http
            .put(format!(
                "{}/recordings/{recording_id}/chunks/{seq}",
                self.base
            ))
            .bearer_auth(&self.token)
            .header("x-content-sha256", sha)
            .header("content-type", "application/octet-stream")
            .body(chunk.to_vec())
            .send()
            .await;
        self.stats.request(started.elapsed());
        let error = match result {
            Ok(response) if response.status().is_success() => {
                Stats::add(&self.stats.chunks, 1);
                Stats::add(&self.stats.bytes, chunk.len() as u64);
                return Ok(());
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                GqlError::new(
                    body["code"]
                        .as_str()
                        .map_or_else(|| format!("HTTP_{status}"), str::to_string)
                        .as_str(),
                    format!(
                        "chunk {seq} of {recording_id}: {}",
                        body["message"].as_str().unwrap_or("no message")
                    ),
                )
            }
            Err(e) => GqlError::new("TRANSPORT", e.to_string()),
        };
        self.stats.error(&error);
        Err(())
    }
}

/// The nearest-rank `p` quantile (0 < p <= 1) of latencies in
/// microseconds, sorted ascending, in milliseconds; 0 without samples.
fn percentile(sorted_us: &[u64], p: f64) -> f64 {
    let rank = ((p * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len().max(1));
    sorted_us
        .get(rank - 1)
        .map_or(0.0, |us| *us as f64 / 1_000.0)
}

/// Runs the fleet to the end and reports. Only a failed set-up (site,
/// policies, connecting the servers) is an `Err`; errors during the run
/// are counted in the report.
pub async fn run(options: SimulateOptions) -> Result<Report, SimulateError> {
    if options.servers == 0 {
        return Err(SimulateError::Options(
            "--servers must be at least 1".into(),
        ));
    }
    if let Some(rate) = options.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(SimulateError::Options("--rate must be positive".into()));
        }
    }
    if options.batch == 0 || options.batch > 1000 {
        return Err(SimulateError::Options("--batch must be 1..=1000".into()));
    }
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(options.servers * options.concurrency.max(1) + 4)
        .build()
        .map_err(|e| SimulateError::Client(e.to_string()))?;
    // Content goes over its own connections: a refused upload may leave
    // its connection closed by the server mid-body, which must not fail
    // the GraphQL request that happens to reuse it next.
    let content_http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| SimulateError::Client(e.to_string()))?;
    let admin = srs_client::Client::with_http(http.clone(), &options.url, Some(&options.token))
        .retry_rate_limited(MAX_RATE_LIMITED_RETRIES);
    let (site_id, at) = ensure_site(&admin, &options.site)
        .await
        .map_err(SimulateError::Setup)?;
    ensure_policies(&admin, &site_id, at)
        .await
        .map_err(SimulateError::Setup)?;
    let population = Arc::new(Population::new(options.seed));
    let stats = Arc::new(Stats::default());
    let mut agents = Vec::with_capacity(options.servers);
    for spec in population.servers(options.servers) {
        let (server_id, token) = connect_server(&admin, &site_id, &spec)
            .await
            .map_err(SimulateError::Setup)?;
        agents.push(Arc::new(Agent {
            gql: admin.with_token(&token),
            server_id,
            http: content_http.clone(),
            base: options.url.trim_end_matches('/').to_string(),
            token,
            stats: stats.clone(),
        }));
    }

    let started = Instant::now();
    let pacer = Arc::new(Pacer::new(options.rate));
    let options = Arc::new(options);
    let servers = agents.len() as u64;
    let mut tasks = tokio::task::JoinSet::new();
    let mut heartbeats = Vec::with_capacity(agents.len());
    for (n, agent) in agents.iter().enumerate() {
        // Every server heartbeats on its own schedule while the run lasts.
        let beating = agent.clone();
        heartbeats.push(AbortOnDrop(tokio::spawn(async move {
            loop {
                beating.heartbeat().await;
                tokio::time::sleep(HEARTBEAT_EVERY).await;
            }
        })));
        for lane in 0..options.concurrency.max(1) as u64 {
            let agent = agent.clone();
            let options = options.clone();
            let population = population.clone();
            let pacer = pacer.clone();
            let lanes = options.concurrency.max(1) as u64;
            tasks.spawn(async move {
                // Server n takes sessions n, n+N, n+2N, ...; its lanes share them.
                let mut index = n as u64 + lane * servers;
                while index < options.sessions {
                    let plan = population.session(index, options.max_events);
                    agent.session(&plan, &options, &pacer).await;
                    index += servers * lanes;
                }
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined {
            stats.error(&GqlError::new("INTERNAL", format!("a task failed: {e}")));
        }
    }
    drop(heartbeats);
    let seconds = started.elapsed().as_secs_f64();

    let mut latencies = stats
        .latencies_us
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    latencies.sort_unstable();
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let requests = load(&stats.requests);
    let accepted = load(&stats.events_accepted);
    Ok(Report {
        site_id,
        server_ids: agents.iter().map(|a| a.server_id.clone()).collect(),
        sessions: load(&stats.sessions),
        recordings: load(&stats.recordings),
        screen_recordings: load(&stats.screen),
        declined: load(&stats.declined),
        events_sent: load(&stats.events_sent),
        events_accepted: accepted,
        events_ignored: load(&stats.events_ignored),
        detections: load(&stats.detections),
        responses: load(&stats.responses),
        chunks: load(&stats.chunks),
        content_bytes: load(&stats.bytes),
        heartbeats: load(&stats.heartbeats),
        requests,
        seconds,
        requests_per_sec: requests as f64 / seconds.max(1e-9),
        events_per_sec: accepted as f64 / seconds.max(1e-9),
        latency_p50_ms: percentile(&latencies, 0.50),
        latency_p99_ms: percentile(&latencies, 0.99),
        errors: stats.errors.lock().map(|e| e.clone()).unwrap_or_default(),
    })
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_ranked_sample() {
        let samples: Vec<u64> = (1..=100).map(|ms| ms * 1000).collect();
        assert_eq!(percentile(&samples, 0.5), 50.0);
        assert_eq!(percentile(&samples, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn graphql_errors_give_their_code() {
        let body = json!({"errors":[{"message":"no","extensions":{"code":"FORBIDDEN"}}]});
        assert_eq!(
            GqlError::from_body(&body),
            Some(GqlError::new("FORBIDDEN", "no"))
        );
        assert_eq!(GqlError::from_body(&json!({"data":{}})), None);
    }

    #[test]
    fn policies_name_what_the_generator_produces() {
        // The recording policy's groups and delivery groups exist in the fleet.
        let policy = recording_policy();
        let groups: Vec<&str> = generator::DELIVERY_GROUPS.iter().map(|g| g.name).collect();
        assert!(groups.contains(&policy["rules"][0]["deliveryGroups"][0].as_str().unwrap()));
        let population = Population::new(1);
        assert!(population
            .users()
            .iter()
            .any(|u| u.groups.iter().any(|g| g == r"CORP\Contractors")));
    }
}
