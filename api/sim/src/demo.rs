//! `srs serve --demo`: fills an EMPTY data directory with a plausible
//! organisation so the dashboard, searches, detections and the player have
//! something real to show, then serves as usual with a small fleet of
//! servers still at work.
//!
//! # What is seeded
//!
//! Two sites ("Headquarters", "Branch Office"), four connected servers, the
//! fleet's recording, event detection and event response policies on both
//! sites (see [`crate::simulate`]), an AUDITOR token with a playback
//! permission (an auditor sees only what one grants: here the HQ finance
//! and contractor desktops), a retention policy, and `--demo-recordings`
//! recordings (default 3000) spread over the last 30 days with their
//! session events, detections, some comments and a few restrictions. About
//! one session in six is a terminal session (cmd.exe, PowerShell, or ssh
//! from PowerShell): its content is an asciicast v2 file stored through the
//! content store like an agent's upload (encrypted chunks, a
//! `ContentChunkStored` in the log), and its lines are CUSTOM session
//! events (`asciicast.o`, `asciicast.i`), as `PUT /recordings/{id}/asciicast`
//! indexes them. Users, hosts, events and casts come from the simulator's
//! [`generator`](crate::simulate::generator), deterministic from the seed.
//!
//! Sessions that are still running at the service's "now" stay live: they
//! hold only the events (and cast lines) of their past, and the
//! [`Fleet`] plays the rest of them once the server serves. So the demo
//! seeds at any time of day: on a weekday afternoon many sessions are
//! live, on a Sunday night none.
//!
//! Configuration goes through the GraphQL schema in-process, exactly as an
//! admin would send it. Recordings go straight to the application layer
//! ([`srs_domain::app::Service`]) as their agents (the calls the GraphQL
//! resolvers make): one append for the start, one for a session's events
//! (with the detections they cause), one for the content, one for the
//! end; several sessions at once, so the writer's group commit gathers
//! them.
//!
//! # All or nothing
//!
//! On a directory that already holds anything, `--demo` refuses to start
//! (exit 2) rather than mix invented recordings into real ones; with one
//! exception: [`prepare_dir`] writes a marker ([`SEEDING_MARKER`]) into the
//! empty directory before anything else, and [`seed`] removes it only once
//! everything is seeded and the token files are written. A directory
//! holding the marker is a demo whose seeding never finished (it failed,
//! or the process was killed): the next `--demo` start empties it and
//! seeds again. A seeding that fails with an error empties the directory
//! at once ([`discard`]). (So a directory still marked must not be given
//! real data by a plain `srs serve`: the marker says what it is.)
//!
//! # Tokens
//!
//! Every token the demo prints is also written beside `admin.token` as
//! `<name>.token`, mode 0600: `auditor.token`.
//!
//! # The fleet
//!
//! While the server runs, [`Fleet`] keeps the demo's servers working as
//! their agents would, through the same use cases the API calls: each
//! server heartbeats (every third of the liveness period, at most every
//! 10 s, so it stays ONLINE); [`FLEET_LANES`] sessions are live at any time,
//! each sending its session events (and, for a terminal session, its
//! asciicast in chunks through the content store) every
//! [`FLEET_TICK`] over a minute or two, then ending, and the next one
//! starts. The seeded sessions still live at start are finished first.
//! Recording times are the service clock's: an event's offset is the time
//! since its recording started when it is sent. The fleet runs as its own
//! tasks (it never holds up a request) and stops before the server drains:
//! the sessions in progress are ended (an agent closing its sessions), so
//! the directory holds no session left live forever.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use srs_domain::app::{AppError, Service, StartRecordingInput};
use srs_domain::log::EventStore as _;
use srs_domain::model::{
    CommentSeverity, Principal, SessionAttributes, SessionEvent, SessionEventData,
};
use srs_domain::time::Timestamp;
use srs_projections::Which;
use tokio::sync::watch;
use uuid::Uuid;

use crate::simulate::generator::{
    cast_header, event_id, make_terminal, terminal_cast, terminal_shell, CastLine, PlannedEvent,
    Population, SessionPlan, Shell,
};
use crate::simulate::{connect_server, ensure_policies, ensure_site};
use srs_api::content::{parse_asciicast_lines, store_chunk, ASCIICAST_CONTENT_TYPE};
use srs_api::graphql::{RequestContext, SrsSchema};
use srs_api::state::{HttpState, Services};
use srs_client::{Gql, GqlError};

/// The file that marks a data directory whose demo is being seeded (see
/// the module docs: a directory holding it may be emptied by `--demo`).
pub const SEEDING_MARKER: &str = "demo.seeding";

/// The file a finished demo leaves in its data directory: its seed and
/// how many sessions it seeded (nothing secret), so that `--demo` on it
/// again puts the same fleet back to work ([`resume`]).
pub const DEMO_FILE: &str = "demo.json";

/// At most this many session events per seeded session (the generator's
/// sessions have up to this many; fewer keeps seeding fast).
const EVENTS_PER_SESSION: usize = 60;

/// What the demo seeds.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    pub recordings: u64,
    pub seed: u64,
    /// Recordings start within this many days before now.
    pub days: i64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            recordings: 3000,
            seed: 1,
            days: 30,
        }
    }
}

/// What was seeded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DemoSummary {
    pub sites: Vec<(String, String)>,
    pub servers: usize,
    pub recordings: u64,
    pub declined: u64,
    pub live: u64,
    /// Terminal sessions, each with an asciicast as its content.
    pub terminal: u64,
    pub events: u64,
    pub detections: u64,
    pub comments: u64,
    pub restricted: u64,
    /// An AUDITOR's secret, to try the auditor's view (also in
    /// `<data>/auditor.token`).
    pub auditor_token: String,
    pub seconds: f64,
}

/// A seeded demo: what it holds, and the fleet that carries on.
pub struct Seeded {
    pub summary: DemoSummary,
    pub fleet: FleetPlan,
}

/// Why the demo could not be seeded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--demo needs an empty data directory, and {} already holds data; start without --demo, or give --data a new directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("the data directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the demo's admin token does not authenticate")]
    NoAdmin,
    #[error("configuring the demo: {0}")]
    Setup(GqlError),
    #[error("seeding recordings: {0}")]
    App(#[from] AppError),
    #[error("storing a terminal session's content: {0}")]
    Content(String),
    #[error("the read models did not catch up with the demo: {0}")]
    CatchUp(String),
}

impl From<GqlError> for DemoError {
    fn from(value: GqlError) -> Self {
        DemoError::Setup(value)
    }
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DemoError + '_ {
    move |source| DemoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Refuses a directory that holds anything (a missing one is empty).
pub fn check_empty(data: &Path) -> Result<(), DemoError> {
    match std::fs::read_dir(data) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(DemoError::NotEmpty(data.to_path_buf())),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DemoError::Io {
            path: data.to_path_buf(),
            source,
        }),
    }
}

/// What `--demo` finds in its data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prepared {
    /// Nothing (or an unfinished demo, emptied): seed it.
    Fresh,
    /// A demo seeded before: put its fleet back to work.
    Resume,
}

/// Readies `data` for `--demo`: an empty (or missing) directory, or one
/// holding an unfinished demo (its [`SEEDING_MARKER`]: emptied), gets the
/// marker and is [`Prepared::Fresh`]; a finished demo (its [`DEMO_FILE`])
/// is [`Prepared::Resume`]; any other is [`DemoError::NotEmpty`],
/// untouched.
pub fn prepare_dir(data: &Path) -> Result<Prepared, DemoError> {
    if data.join(SEEDING_MARKER).is_file() {
        tracing::warn!(data = %data.display(), "an unfinished demo: emptying it to seed again");
        discard(data)?;
    } else if data.join(DEMO_FILE).is_file() {
        return Ok(Prepared::Resume);
    }
    check_empty(data)?;
    srs_domain::log::create_private_dir(data).map_err(io_error(data))?;
    srs_api::server::write_secret(
        &data.join(SEEDING_MARKER),
        "srs serve --demo is seeding this directory; a --demo start may empty it",
    )
    .map_err(io_error(data))?;
    Ok(Prepared::Fresh)
}

/// The fleet of a demo seeded before (its [`DEMO_FILE`]), back at work:
/// the first admin (`admin.token`) gives each connected server a new AGENT
/// token (`rotateAgentToken`, as an admin replacing a lost credential
/// would), and the fleet plays sessions after the seeded ones.
pub async fn resume(state: &HttpState) -> Result<FleetPlan, DemoError> {
    let services = state.services().clone();
    let file = services.data_dir.join(DEMO_FILE);
    let text = std::fs::read_to_string(&file).map_err(io_error(&file))?;
    let saved: Value = serde_json::from_str(&text).map_err(|e| DemoError::Io {
        path: file.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    let seed = saved["seed"].as_u64().unwrap_or(1);
    let next_index = saved["recordings"].as_u64().unwrap_or(0);
    let token_file = services.data_dir.join(srs_api::server::ADMIN_TOKEN_FILE);
    let secret = std::fs::read_to_string(&token_file).map_err(io_error(&token_file))?;
    let admin_principal = services
        .authenticate(secret.trim())
        .await
        .map_err(|_| DemoError::NoAdmin)?
        .ok_or(DemoError::NoAdmin)?;
    let admin = InProcess {
        schema: state.schema().clone(),
        principal: admin_principal,
    };
    services
        .reads
        .wait_for(
            Which::All,
            services.store.head().position,
            Duration::from_secs(600),
        )
        .await
        .map_err(|e| DemoError::CatchUp(e.to_string()))?;
    let servers = services
        .reads
        .servers()
        .and_then(|servers| servers.servers(None))
        .map_err(|e| DemoError::CatchUp(e.to_string()))?;
    let mut agents = Vec::new();
    for server in servers
        .iter()
        .filter(|s| s.status == srs_domain::model::ServerStatus::Connected)
    {
        let rotated = admin
            .call(
                "mutation($id: ID!) { rotateAgentToken(serverId: $id) { agentToken } }",
                json!({ "id": server.id }),
            )
            .await?;
        let token = rotated["rotateAgentToken"]["agentToken"]
            .as_str()
            .unwrap_or_default();
        let principal = services
            .authenticate(token)
            .await
            .map_err(|_| DemoError::NoAdmin)?
            .ok_or(DemoError::NoAdmin)?;
        services.service.heartbeat(&principal, server.id).await?;
        agents.push(Agent {
            server_id: server.id,
            principal,
        });
    }
    Ok(FleetPlan {
        agents: Arc::new(agents),
        population: Arc::new(Population::new(seed)),
        seed,
        next_index,
        continuations: Vec::new(),
    })
}

/// Empties a demo directory whose seeding failed or never finished (a
/// missing one is fine). The directory itself stays (it may be a mount
/// point the user made); the [`SEEDING_MARKER`] goes last, so whatever
/// stops this half-way leaves a directory the next `--demo` empties again.
pub fn discard(data: &Path) -> Result<(), DemoError> {
    let entries = match std::fs::read_dir(data) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(DemoError::Io {
                path: data.to_path_buf(),
                source,
            })
        }
    };
    for entry in entries {
        let entry = entry.map_err(io_error(data))?;
        let path = entry.path();
        if entry.file_name() == SEEDING_MARKER {
            continue;
        }
        let removed = if entry.file_type().map_err(io_error(&path))?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(io_error(&path))?;
    }
    match std::fs::remove_file(data.join(SEEDING_MARKER)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DemoError::Io {
            path: data.join(SEEDING_MARKER),
            source,
        }),
    }
}

/// The schema in-process, as one principal.
struct InProcess {
    schema: SrsSchema,
    principal: Principal,
}

#[async_trait::async_trait]
impl Gql for InProcess {
    async fn call(&self, query: &str, variables: Value) -> Result<Value, GqlError> {
        let request = async_graphql::Request::new(query)
            .variables(async_graphql::Variables::from_json(variables))
            .data(RequestContext::new(Some(self.principal.clone())));
        let response = self.schema.execute(request).await;
        let body = serde_json::to_value(&response).map_err(|e| GqlError {
            code: "INTERNAL".into(),
            message: e.to_string(),
        })?;
        match GqlError::from_body(&body) {
            Some(error) => Err(error),
            None => Ok(body["data"].clone()),
        }
    }
}

/// Sessions seeded at once: enough for the group commit to batch them.
const IN_FLIGHT: usize = 16;

/// Seeds the demo through `state` with the first admin's `admin_secret`,
/// writes the token files, and removes the [`SEEDING_MARKER`].
pub async fn seed(
    state: &HttpState,
    admin_secret: &str,
    options: &DemoOptions,
) -> Result<Seeded, DemoError> {
    let started = Instant::now();
    let services = state.services().clone();
    let admin_principal = services
        .authenticate(admin_secret)
        .await
        .map_err(|_| DemoError::NoAdmin)?
        .ok_or(DemoError::NoAdmin)?;
    let admin = InProcess {
        schema: state.schema().clone(),
        principal: admin_principal.clone(),
    };
    let mut summary = DemoSummary::default();

    // Sites, policies, retention and permissions: as an admin would.
    let mut sites = Vec::new();
    for name in ["Headquarters", "Branch Office"] {
        let (id, at) = ensure_site(&admin, name).await?;
        ensure_policies(&admin, &id, at).await?;
        admin
            .call(
                "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: \
                 {archiveAfterDays: 21, deleteAfterDays: 365, runAt: \"02:00\", excludeRestricted: true}) \
                 { position } }",
                json!({ "site": id }),
            )
            .await?;
        sites.push((name.to_string(), id));
    }
    let hq = sites[0].1.clone();
    let auditor = admin
        .call(
            "mutation($sites: [ID!]) { issueToken(input: {name: \"auditor@corp.example\", \
             role: AUDITOR, siteIds: $sites, groups: [\"SOC\"]}) { secret } }",
            json!({ "sites": [hq] }),
        )
        .await?;
    summary.auditor_token = auditor["issueToken"]["secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    admin
        .call(
            "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, \
             principal: \"auditor@corp.example\", scope: {deliveryGroups: \
             [\"Finance Desktops\", \"Contractor Desktops\"]}}) { position } }",
            json!({ "site": hq }),
        )
        .await?;

    // Servers: three at headquarters, one at the branch.
    let population = Arc::new(Population::new(options.seed));
    let mut agents = Vec::new();
    for (n, spec) in population.servers(4).iter().enumerate() {
        let site = if n < 3 { &sites[0].1 } else { &sites[1].1 };
        let (server_id, token) = connect_server(&admin, site, spec).await?;
        let principal = services
            .authenticate(&token)
            .await
            .map_err(|e| {
                DemoError::Setup(GqlError {
                    code: "INTERNAL".into(),
                    message: format!("{e:?}"),
                })
            })?
            .ok_or(DemoError::NoAdmin)?;
        let server_id = Uuid::parse_str(&server_id).map_err(|e| GqlError {
            code: "BAD_RESPONSE".into(),
            message: e.to_string(),
        })?;
        services.service.heartbeat(&principal, server_id).await?;
        agents.push(Agent {
            server_id,
            principal,
        });
    }
    summary.servers = agents.len();
    summary.sites = sites;

    // Recordings, several at a time, before the service's "now": those
    // still running then stay live with their past only.
    let agents = Arc::new(agents);
    let now = services.service.now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut totals = Vec::new();
    for index in 0..options.recordings {
        if tasks.len() >= IN_FLIGHT {
            if let Some(done) = tasks.join_next().await {
                totals.push(done.map_err(|e| AppError::Internal(e.to_string()))??);
            }
        }
        let services = services.clone();
        let population = population.clone();
        let agents = agents.clone();
        let admin = admin_principal.clone();
        let days = options.days;
        let seed = options.seed;
        tasks.spawn(async move {
            let session = DemoSession::new(&population, seed, index);
            let agent_no = (index % agents.len() as u64) as usize;
            let started_at = start_time(seed, index, now, days);
            seed_session(
                &services, &agents, agent_no, &admin, session, started_at, now, index,
            )
            .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        totals.push(done.map_err(|e| AppError::Internal(e.to_string()))??);
    }
    let mut continuations = Vec::new();
    for seeded in totals {
        summary.recordings += u64::from(seeded.recorded);
        summary.declined += u64::from(!seeded.recorded);
        summary.live += u64::from(seeded.rest.is_some());
        summary.terminal += u64::from(seeded.terminal);
        summary.events += seeded.events;
        summary.detections += seeded.detections;
        summary.comments += u64::from(seeded.commented);
        summary.restricted += u64::from(seeded.restricted);
        continuations.extend(seeded.rest);
    }

    // Every printed token is kept beside admin.token.
    let token_file = services.data_dir.join("auditor.token");
    srs_api::server::write_secret(&token_file, &summary.auditor_token)
        .map_err(io_error(&token_file))?;

    // Serve only once the read models show all of it.
    let head = services.store.head().position;
    services
        .reads
        .wait_for(Which::All, head, Duration::from_secs(600))
        .await
        .map_err(|e| DemoError::CatchUp(e.to_string()))?;
    let demo_file = services.data_dir.join(DEMO_FILE);
    std::fs::write(
        &demo_file,
        json!({ "seed": options.seed, "recordings": options.recordings }).to_string(),
    )
    .map_err(io_error(&demo_file))?;
    let marker = services.data_dir.join(SEEDING_MARKER);
    match std::fs::remove_file(&marker) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(DemoError::Io {
                path: marker,
                source,
            })
        }
    }
    summary.seconds = started.elapsed().as_secs_f64();
    let fleet = FleetPlan {
        agents,
        population,
        seed: options.seed,
        next_index: options.recordings,
        continuations,
    };
    Ok(Seeded { summary, fleet })
}

/// When session `index` started: a working day (Monday to Friday, more
/// often), office hours, within the last `days` days.
fn start_time(seed: u64, index: u64, now: Timestamp, days: i64) -> Timestamp {
    let mut rng = SmallRng::seed_from_u64(seed.rotate_left(17) ^ index.wrapping_mul(0x9E37_79B9));
    let today = now.day_number();
    // 1970-01-01 was a Thursday: day 2 (mod 7) is Saturday, 3 Sunday.
    // A weekend day is drawn again once: few people work then.
    let mut day = today - rng.gen_range(0..days.max(1));
    if matches!(day.rem_euclid(7), 2 | 3) {
        day = today - rng.gen_range(0..days.max(1));
    }
    let hour = rng.gen_range(7..19);
    let micros = day * Timestamp::MICROS_PER_DAY
        + hour * 3_600 * Timestamp::MICROS_PER_SEC
        + rng.gen_range(0..3_600) * Timestamp::MICROS_PER_SEC;
    // Not later than now (today's hours still to come, or the small hours
    // of the night): the same hour a week earlier (a day with a window
    // shorter than a week), so sessions never pile up at one instant.
    let back = days.clamp(1, 7) * Timestamp::MICROS_PER_DAY;
    let mut at = micros;
    while at > now.as_micros() - 60 * Timestamp::MICROS_PER_SEC {
        at -= back;
    }
    Timestamp::from_micros(at)
}

/// A connected demo server, as its agent.
pub struct Agent {
    server_id: Uuid,
    principal: Principal,
}

/// One session of the demo: the generator's plan, made a terminal session
/// for some, with the cast's lines.
struct DemoSession {
    plan: SessionPlan,
    /// A terminal session's shell and its cast's event lines.
    cast: Option<(Shell, Vec<CastLine>)>,
}

impl DemoSession {
    fn new(population: &Population, seed: u64, index: u64) -> Self {
        let mut plan = population.session(index, EVENTS_PER_SESSION);
        let cast = terminal_shell(seed, index).map(|shell| {
            make_terminal(&mut plan, shell);
            let lines = terminal_cast(seed, index, shell, &plan.user, plan.duration_ms);
            (shell, lines)
        });
        DemoSession { plan, cast }
    }

    fn shell(&self) -> Option<Shell> {
        self.cast.as_ref().map(|(shell, _)| *shell)
    }

    fn attributes(&self) -> SessionAttributes {
        let plan = &self.plan;
        SessionAttributes {
            user: plan.user.clone(),
            groups: plan.groups.clone(),
            client_name: Some(plan.client_name.clone()),
            client_ip: Some(plan.client_ip.clone()),
            host: plan.host.clone(),
            delivery_group: Some(plan.delivery_group.clone()),
            applications: plan.applications.clone(),
        }
    }
}

/// What one seeded session came to.
struct SeededSession {
    recorded: bool,
    terminal: bool,
    events: u64,
    detections: u64,
    commented: bool,
    restricted: bool,
    /// A session still running at "now": what the fleet sends later.
    rest: Option<Continuation>,
}

/// The rest of a live session, for the fleet to send.
pub struct Continuation {
    recording_id: Uuid,
    agent: usize,
    started_at: Timestamp,
    /// Session events not sent yet, with their index in the plan.
    events: Vec<(usize, PlannedEvent)>,
    /// Cast lines not sent yet, with their line number in the file.
    cast: Vec<(usize, CastLine)>,
    /// The next content chunk's seq.
    next_seq: u64,
    /// Where the rest starts on the plan's timeline (ms from the start).
    from_ms: u64,
    /// The plan's end (ms from the start).
    until_ms: u64,
}

const COMMENTS: [&str; 4] = [
    "Reviewed: matches the change ticket, no action needed.",
    "USB copy looks deliberate; asked the team lead to follow up.",
    "Confidential file touched outside business need. Escalated.",
    "False positive: admin tool used by IT support.",
];

/// A plan's events as the API takes them, `index` their place in the plan.
fn session_events(
    recording_id: Uuid,
    events: &[(usize, PlannedEvent)],
) -> Result<Vec<SessionEvent>, AppError> {
    events
        .iter()
        .map(|(i, e)| {
            let data = SessionEventData::parse(e.event_type, &e.data)
                .map_err(|m| AppError::Internal(format!("generated event: {m}")))?;
            Ok(SessionEvent {
                event_id: event_id(recording_id, *i),
                event_type: e.event_type,
                offset_ms: e.offset_ms,
                data,
            })
        })
        .collect()
}

/// Stores cast lines as content chunk `seq` (the header first in chunk 0)
/// through the content store, as an agent's upload, and indexes them as
/// session events (what `PUT /recordings/{id}/asciicast` does for a whole
/// file). `lines` carry their line number in the file.
async fn store_cast_part(
    services: &Arc<Services>,
    agent: &Principal,
    recording_id: Uuid,
    seq: u64,
    header: Option<&str>,
    lines: &[(usize, CastLine)],
) -> Result<u64, DemoError> {
    let mut text = String::new();
    if let Some(header) = header {
        text.push_str(header);
        text.push('\n');
    }
    let json: Vec<(usize, String)> = lines.iter().map(|(n, l)| (*n, l.to_json())).collect();
    for (_, line) in &json {
        text.push_str(line);
        text.push('\n');
    }
    if text.is_empty() {
        return Ok(0);
    }
    let sha256 = hex::encode(Sha256::digest(text.as_bytes()));
    store_chunk(
        services,
        agent,
        recording_id,
        seq,
        Bytes::from(text),
        sha256,
        Some(ASCIICAST_CONTENT_TYPE.to_string()),
    )
    .await
    .map_err(|refused| DemoError::Content(refused.error.message))?;
    let events = parse_asciicast_lines(recording_id, json.iter().map(|(n, l)| (*n, l.as_str())))
        .map_err(DemoError::Content)?;
    if events.is_empty() {
        return Ok(0);
    }
    let recorded = services
        .service
        .record_session_events(agent, recording_id, events)
        .await?;
    Ok(recorded.accepted as u64)
}

#[allow(clippy::too_many_arguments)]
async fn seed_session(
    services: &Arc<Services>,
    agents: &[Agent],
    agent_no: usize,
    admin: &Principal,
    session: DemoSession,
    started_at: Timestamp,
    now: Timestamp,
    index: u64,
) -> Result<SeededSession, DemoError> {
    let service: &Service = &services.service;
    let agent = &agents[agent_no].principal;
    let started = service
        .start_recording(
            agent,
            StartRecordingInput {
                server_id: agents[agent_no].server_id,
                session_id: session.plan.session_id.clone(),
                session: session.attributes(),
                started_at: Some(started_at),
            },
        )
        .await?;
    let mut seeded = SeededSession {
        recorded: started.recorded,
        terminal: false,
        events: 0,
        detections: 0,
        commented: false,
        restricted: false,
        rest: None,
    };
    if !started.recorded {
        return Ok(seeded);
    }
    let recording_id = started.recording_id;
    // What happened before "now" is recorded; a live session's rest waits.
    let elapsed_ms = (now.as_micros() - started_at.as_micros()).max(0) as u64 / 1_000;
    let plan = &session.plan;
    let (past, future): (Vec<_>, Vec<_>) = plan
        .events
        .iter()
        .cloned()
        .enumerate()
        .partition(|(_, e)| e.offset_ms <= elapsed_ms);
    let recorded = service
        .record_session_events(agent, recording_id, session_events(recording_id, &past)?)
        .await?;
    seeded.events = recorded.accepted as u64;
    seeded.detections = recorded.detections as u64;
    let mut cast_rest = Vec::new();
    if let (Some(shell), Some((_, lines))) = (session.shell(), session.cast.as_ref()) {
        let header = cast_header(shell, &plan.user, &plan.host, started_at.as_secs());
        let (cast_past, rest): (Vec<_>, Vec<_>) = lines
            .iter()
            .cloned()
            .enumerate()
            .map(|(i, line)| (i + 1, line))
            .partition(|(_, l)| l.at_ms <= elapsed_ms);
        seeded.events +=
            store_cast_part(services, agent, recording_id, 0, Some(&header), &cast_past).await?;
        seeded.terminal = true;
        cast_rest = rest;
    }
    let ended_at = started_at.plus_micros(plan.duration_ms as i64 * 1000);
    if ended_at < now {
        service
            .end_recording(agent, recording_id, Some(ended_at))
            .await?;
    } else {
        seeded.rest = Some(Continuation {
            recording_id,
            agent: agent_no,
            started_at,
            events: future,
            next_seq: u64::from(seeded.terminal),
            cast: cast_rest,
            from_ms: elapsed_ms,
            until_ms: plan.duration_ms,
        });
    }
    if recorded.detections > 0 && index % 7 == 0 {
        let text = COMMENTS[(index / 7) as usize % COMMENTS.len()];
        let severity = if recorded.detections > 2 {
            CommentSeverity::Critical
        } else {
            CommentSeverity::Medium
        };
        service
            .add_comment(admin, recording_id, text, severity, Some(1_000))
            .await?;
        seeded.commented = true;
    }
    if recorded.detections > 2 && index % 5 == 0 {
        service
            .restrict_recording(admin, recording_id, "Under investigation by the SOC")
            .await?;
        seeded.restricted = true;
    }
    Ok(seeded)
}

// ---- the fleet --------------------------------------------------------------

/// Sessions the fleet keeps live at once.
pub const FLEET_LANES: usize = 4;
/// How often a live fleet session sends what is due.
pub const FLEET_TICK: Duration = Duration::from_millis(1_500);
/// A fleet session lasts this long (wall time), a seeded one's rest too.
const FLEET_SESSION_SECS: std::ops::Range<u64> = 45..120;
/// Session events per fleet session.
const FLEET_EVENTS: usize = 30;
/// The longest the fleet may take to end its sessions when it stops.
const FLEET_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the fleet starts from: the demo's servers and the seeded sessions
/// still live.
pub struct FleetPlan {
    agents: Arc<Vec<Agent>>,
    population: Arc<Population>,
    seed: u64,
    /// The first session index the fleet plays (after the seeded ones).
    next_index: u64,
    continuations: Vec<Continuation>,
}

impl FleetPlan {
    /// The seeded sessions still live, which the fleet finishes first.
    pub fn live_sessions(&self) -> usize {
        self.continuations.len()
    }
}

/// The demo's servers at work while the server runs (module docs).
pub struct Fleet {
    stop: watch::Sender<bool>,
    tasks: tokio::task::JoinSet<()>,
    shared: Arc<FleetShared>,
}

/// What the fleet's tasks share.
struct FleetShared {
    services: Arc<Services>,
    /// This run's mark in the fleet's session ids: a resumed demo plays
    /// the same plans again under new session ids.
    run: u32,
    agents: Arc<Vec<Agent>>,
    population: Arc<Population>,
    seed: u64,
    next_index: AtomicU64,
    continuations: Mutex<Vec<Continuation>>,
}

impl Fleet {
    /// Starts the heartbeats and the [`FLEET_LANES`] session lanes.
    pub fn start(state: &HttpState, plan: FleetPlan) -> Fleet {
        let (stop, stopped) = watch::channel(false);
        let services = state.services().clone();
        let beat_every = (services.limits.liveness_period / 3)
            .clamp(Duration::from_millis(500), Duration::from_secs(10));
        let mut continuations = plan.continuations;
        // The earliest planned end first: they end soonest.
        continuations.sort_by_key(|c| std::cmp::Reverse(c.until_ms.saturating_sub(c.from_ms)));
        let shared = Arc::new(FleetShared {
            services,
            run: rand::random(),
            agents: plan.agents,
            population: plan.population,
            seed: plan.seed,
            next_index: AtomicU64::new(plan.next_index),
            continuations: Mutex::new(continuations),
        });
        let mut tasks = tokio::task::JoinSet::new();
        {
            let shared = shared.clone();
            let mut stopped = stopped.clone();
            tasks.spawn(async move {
                loop {
                    for agent in shared.agents.iter() {
                        if let Err(e) = shared
                            .services
                            .service
                            .heartbeat(&agent.principal, agent.server_id)
                            .await
                        {
                            tracing::warn!(error = %e, server = %agent.server_id, "demo fleet: heartbeat failed");
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(beat_every) => {}
                        _ = stopped.wait_for(|stop| *stop) => return,
                    }
                }
            });
        }
        for lane in 0..FLEET_LANES {
            let shared = shared.clone();
            let stopped = stopped.clone();
            tasks.spawn(async move { shared.lane(lane, stopped).await });
        }
        Fleet {
            stop,
            tasks,
            shared,
        }
    }

    /// Stops the fleet: the heartbeats end, every live session (those
    /// being played and the seeded ones still waiting for a lane) is
    /// ended; waits [`FLEET_STOP_TIMEOUT`] at most.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        let shared = self.shared.clone();
        let all = async {
            while self.tasks.join_next().await.is_some() {}
            let waiting: Vec<Continuation> = std::mem::take(
                &mut *shared
                    .continuations
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()),
            );
            for rest in waiting {
                let agent = &shared.agents[rest.agent].principal;
                if let Err(e) = shared
                    .services
                    .service
                    .end_recording(agent, rest.recording_id, None)
                    .await
                {
                    tracing::warn!(error = %e, recording = %rest.recording_id, "demo fleet: cannot end a session");
                }
            }
        };
        if tokio::time::timeout(FLEET_STOP_TIMEOUT, all).await.is_err() {
            tracing::warn!("the demo fleet did not stop in time");
            self.tasks.abort_all();
        }
    }
}

impl FleetShared {
    /// One lane: a session after another until the fleet stops.
    async fn lane(&self, lane: usize, mut stopped: watch::Receiver<bool>) {
        while !*stopped.borrow() {
            let next = self
                .continuations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop();
            let result = match next {
                Some(rest) => self.play(rest, &mut stopped).await,
                None => self.new_session(lane, &mut stopped).await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, lane, "demo fleet: a session failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                    _ = stopped.wait_for(|stop| *stop) => return,
                }
            }
        }
    }

    /// Starts the next generated session on its server and plays it.
    async fn new_session(
        &self,
        lane: usize,
        stopped: &mut watch::Receiver<bool>,
    ) -> Result<(), DemoError> {
        let index = self.next_index.fetch_add(1, Ordering::Relaxed);
        let mut session = DemoSession::new(&self.population, self.seed, index);
        session.plan.events.truncate(FLEET_EVENTS);
        let agent_no = (index % self.agents.len() as u64) as usize;
        let agent = &self.agents[agent_no];
        let started_at = self.services.service.now();
        let started = self
            .services
            .service
            .start_recording(
                &agent.principal,
                StartRecordingInput {
                    server_id: agent.server_id,
                    session_id: format!("{}-{:08x}", session.plan.session_id, self.run),
                    session: session.attributes(),
                    started_at: Some(started_at),
                },
            )
            .await?;
        if !started.recorded {
            // Declined by policy: nothing to send; a pause before the next.
            tokio::select! {
                () = tokio::time::sleep(FLEET_TICK) => {}
                _ = stopped.wait_for(|stop| *stop) => {}
            }
            return Ok(());
        }
        tracing::debug!(lane, recording = %started.recording_id, "demo fleet: session started");
        let plan = &session.plan;
        let mut cast = Vec::new();
        let mut next_seq = 0;
        if let (Some(shell), Some((_, lines))) = (session.shell(), session.cast.as_ref()) {
            // The header goes first, alone: the content is a playable cast
            // from the first chunk on.
            let header = cast_header(shell, &plan.user, &plan.host, started_at.as_secs());
            store_cast_part(
                &self.services,
                &agent.principal,
                started.recording_id,
                0,
                Some(&header),
                &[],
            )
            .await?;
            next_seq = 1;
            cast = lines
                .iter()
                .cloned()
                .enumerate()
                .map(|(i, l)| (i + 1, l))
                .collect();
        }
        let until_ms = plan
            .events
            .last()
            .map_or(0, |e| e.offset_ms)
            .max(cast.last().map_or(0, |(_, l): &(usize, CastLine)| l.at_ms))
            + 1_000;
        let rest = Continuation {
            recording_id: started.recording_id,
            agent: agent_no,
            started_at,
            events: plan.events.iter().cloned().enumerate().collect(),
            cast,
            next_seq,
            from_ms: 0,
            until_ms,
        };
        self.play(rest, stopped).await
    }

    /// Sends a session's rest over [`FLEET_SESSION_SECS`] of wall time, what
    /// is due every [`FLEET_TICK`], each event stamped with the time since
    /// its recording started; then ends it. When the fleet stops meanwhile,
    /// the recording is ended at once.
    async fn play(
        &self,
        mut rest: Continuation,
        stopped: &mut watch::Receiver<bool>,
    ) -> Result<(), DemoError> {
        let agent = &self.agents[rest.agent].principal;
        let seconds = {
            let mut rng = SmallRng::seed_from_u64(rest.recording_id.as_u64_pair().0);
            rng.gen_range(FLEET_SESSION_SECS)
        };
        let span_ms = rest.until_ms.saturating_sub(rest.from_ms).max(1);
        let wall = Duration::from_secs(seconds);
        let began = Instant::now();
        // The plan's time `t` is due when this share of the wall time passed.
        let due = |t: u64| -> Duration {
            wall.mul_f64(t.saturating_sub(rest.from_ms) as f64 / span_ms as f64)
        };
        rest.events.reverse();
        rest.cast.reverse();
        loop {
            let stop = tokio::select! {
                () = tokio::time::sleep(FLEET_TICK) => false,
                _ = stopped.wait_for(|stop| *stop) => true,
            };
            if stop {
                break;
            }
            let elapsed = began.elapsed();
            let offset_ms = (self.services.service.now().as_micros() - rest.started_at.as_micros())
                .max(0) as u64
                / 1_000;
            let mut events = Vec::new();
            while rest
                .events
                .last()
                .is_some_and(|(_, e)| due(e.offset_ms) <= elapsed)
            {
                let (i, mut event) = rest.events.pop().expect("checked above");
                event.offset_ms = offset_ms;
                events.push((i, event));
            }
            let mut lines = Vec::new();
            while rest
                .cast
                .last()
                .is_some_and(|(_, l)| due(l.at_ms) <= elapsed)
            {
                let (n, mut line) = rest.cast.pop().expect("checked above");
                line.at_ms = offset_ms;
                lines.push((n, line));
            }
            if !events.is_empty() {
                let events = session_events(rest.recording_id, &events)?;
                self.services
                    .service
                    .record_session_events(agent, rest.recording_id, events)
                    .await?;
            }
            if !lines.is_empty() {
                store_cast_part(
                    &self.services,
                    agent,
                    rest.recording_id,
                    rest.next_seq,
                    None,
                    &lines,
                )
                .await?;
                rest.next_seq += 1;
            }
            if rest.events.is_empty() && rest.cast.is_empty() && elapsed >= wall {
                break;
            }
        }
        self.services
            .service
            .end_recording(agent, rest.recording_id, None)
            .await?;
        tracing::debug!(recording = %rest.recording_id, "demo fleet: session ended");
        Ok(())
    }
}

/// What `srs serve --demo` prints once the demo is seeded and served.
pub fn banner(summary: &DemoSummary, url: &str, admin_secret: &str) -> String {
    let sites: Vec<String> = summary
        .sites
        .iter()
        .map(|(name, id)| format!("{name} ({id})"))
        .collect();
    format!(
        "srs: demo seeded in {:.1} s: sites {}; {} servers; {} recordings ({} live, {} terminal sessions with an asciicast, {} not recorded by policy); \
         {} session events; {} detections; {} comments; {} restricted\n\
         srs: demo admin token: {admin_secret}\n\
         srs: demo auditor token (also in auditor.token): {}\n\
         srs: the demo fleet keeps {} sessions live while srs runs\n\
         srs: try:\n\
         curl -s {url}/graphql -H 'Authorization: Bearer {admin_secret}' -H 'content-type: application/json' \
         -d '{{\"query\":\"{{ dashboard {{ recordingsTotal recordingsLive detectionsTotal topUsers {{ name count }} }} \
         recordings(filter: {{hasDetections: true}}, first: 5) {{ totalCount edges {{ node {{ user host startedAt }} }} }} }}\"}}'",
        summary.seconds,
        sites.join(", "),
        summary.servers,
        summary.recordings + summary.declined,
        summary.live,
        summary.terminal,
        summary.declined,
        summary.events,
        summary.detections,
        summary.comments,
        summary.restricted,
        summary.auditor_token,
        FLEET_LANES,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_fall_in_the_window_and_mostly_on_working_days() {
        for now in [
            "2025-03-15T12:00:00Z",
            "2026-03-19T00:00:00Z",
            "2026-03-22T23:10:00Z",
            "2026-03-18T15:30:00Z",
        ] {
            let now = Timestamp::parse_rfc3339(now).unwrap();
            let mut weekend = 0;
            for index in 0..1000 {
                let t = start_time(9, index, now, 30);
                assert!(t < now, "{t:?} is not before {now:?}");
                assert!(t > now.plus_days(-38));
                assert_eq!(t, start_time(9, index, now, 30));
                weekend += usize::from(matches!(t.day_number().rem_euclid(7), 2 | 3));
            }
            assert!(weekend < 150, "{weekend} of 1000 sessions on weekends");
        }
    }

    #[test]
    fn an_unfinished_demo_is_emptied_and_anything_else_refused() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        assert_eq!(prepare_dir(&data).unwrap(), Prepared::Fresh);
        assert!(data.join(SEEDING_MARKER).is_file());
        std::fs::write(data.join("db"), b"half a demo").unwrap();
        assert_eq!(prepare_dir(&data).unwrap(), Prepared::Fresh);
        assert!(!data.join("db").exists(), "the unfinished demo was emptied");
        std::fs::create_dir(data.join("content")).unwrap();
        std::fs::write(data.join("content/x"), b"x").unwrap();
        discard(&data).unwrap();
        assert!(check_empty(&data).is_ok(), "emptied, marker and all");
        assert_eq!(prepare_dir(&data).unwrap(), Prepared::Fresh);
        assert!(data.join(SEEDING_MARKER).is_file());
        std::fs::remove_file(data.join(SEEDING_MARKER)).unwrap();
        std::fs::write(data.join("db"), b"real data").unwrap();
        assert!(matches!(prepare_dir(&data), Err(DemoError::NotEmpty(_))));
        assert_eq!(std::fs::read(data.join("db")).unwrap(), b"real data");
        std::fs::write(data.join(DEMO_FILE), b"{}").unwrap();
        assert_eq!(prepare_dir(&data).unwrap(), Prepared::Resume);
    }

    #[test]
    fn a_directory_with_anything_in_it_is_not_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_empty(&dir.path().join("absent")).is_ok());
        assert!(check_empty(dir.path()).is_ok());
        std::fs::write(dir.path().join("x"), b"x").unwrap();
        assert!(matches!(
            check_empty(dir.path()),
            Err(DemoError::NotEmpty(_))
        ));
    }
}
