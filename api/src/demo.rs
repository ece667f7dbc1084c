//! `srs serve --demo`: fills an EMPTY data directory with a plausible
//! organisation so the dashboard, searches and detections have something
//! real to show, then serves as usual.
//!
//! Seeded: two sites ("Headquarters", "Branch Office"), four connected and
//! heartbeating servers, the fleet's recording, event detection and event
//! response policies on both sites (see [`crate::simulate`]), an AUDITOR
//! token with a playback permission (an auditor sees only what one grants:
//! here the HQ finance and contractor desktops), a retention policy, and
//! `--demo-recordings` recordings (default 3000) spread over the last 30
//! days with their session events, detections, some comments and a few
//! restrictions (live recordings among them: a session in progress at the
//! time of seeding can be restricted). Users, hosts and events come from the simulator's
//! [`generator`](crate::simulate::generator), deterministic from the seed.
//!
//! Configuration goes through the GraphQL schema in-process, exactly as an
//! admin would send it. Recordings go straight to the application layer
//! ([`srs_domain::app::Service`]) as their agents: one append for the
//! start, one for all of a session's events (a batch, with the detections
//! it causes), one for the end; several sessions at once, so the writer's
//! group commit gathers them.
//!
//! On a directory that already holds anything, `--demo` refuses to start
//! (exit 2) rather than mix invented recordings into real ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use srs_domain::app::{AppError, Service, StartRecordingInput};
use srs_domain::log::EventStore as _;
use srs_domain::model::{
    CommentSeverity, Principal, SessionAttributes, SessionEvent, SessionEventData,
};
use srs_domain::time::Timestamp;
use srs_projections::Which;
use uuid::Uuid;

use crate::graphql::{RequestContext, SrsSchema};
use crate::simulate::generator::{event_id, Population, SessionPlan};
use crate::simulate::{connect_server, ensure_policies, ensure_site, Gql, GqlError};
use crate::state::AppState;

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
    pub events: u64,
    pub detections: u64,
    pub comments: u64,
    pub restricted: u64,
    /// An AUDITOR's secret, to try the auditor's view.
    pub auditor_token: String,
    pub seconds: f64,
}

/// Why the demo could not be seeded.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--demo needs an empty data directory, and {} already holds data; start without --demo, or give --data a new directory", .0.display())]
    NotEmpty(PathBuf),
    #[error("reading the data directory {}: {source}", path.display())]
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
    #[error("the read models did not catch up with the demo: {0}")]
    CatchUp(String),
}

impl From<GqlError> for DemoError {
    fn from(value: GqlError) -> Self {
        DemoError::Setup(value)
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

/// Seeds the demo through `state` with the first admin's `admin_secret`.
pub async fn seed(
    state: &AppState,
    admin_secret: &str,
    options: &DemoOptions,
) -> Result<DemoSummary, DemoError> {
    let started = Instant::now();
    let core = state.core().clone();
    let admin_principal = core
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
        let principal = core
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
        core.service.heartbeat(&principal, server_id).await?;
        agents.push((server_id, principal));
    }
    summary.servers = agents.len();
    summary.sites = sites;

    // Recordings, several at a time, before the service's "now": those
    // still running then stay live (and may be restricted while live).
    let agents = Arc::new(agents);
    let now = core.service.now();
    let mut tasks = tokio::task::JoinSet::new();
    let mut totals = Vec::new();
    for index in 0..options.recordings {
        if tasks.len() >= IN_FLIGHT {
            if let Some(done) = tasks.join_next().await {
                totals.push(done.map_err(|e| AppError::Internal(e.to_string()))??);
            }
        }
        let service = core.service.clone();
        let population = population.clone();
        let agents = agents.clone();
        let admin = admin_principal.clone();
        let days = options.days;
        let seed = options.seed;
        tasks.spawn(async move {
            let plan = population.session(index, 60);
            let (server_id, agent) = &agents[(index % agents.len() as u64) as usize];
            let started_at = start_time(seed, index, now, days);
            seed_session(
                &service, agent, &admin, *server_id, &plan, started_at, now, index,
            )
            .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        totals.push(done.map_err(|e| AppError::Internal(e.to_string()))??);
    }
    for seeded in totals {
        summary.recordings += u64::from(seeded.recorded);
        summary.declined += u64::from(!seeded.recorded);
        summary.live += u64::from(seeded.live);
        summary.events += seeded.events;
        summary.detections += seeded.detections;
        summary.comments += u64::from(seeded.commented);
        summary.restricted += u64::from(seeded.restricted);
    }

    // Serve only once the read models show all of it.
    let head = core.store.head().position;
    core.reads
        .wait_for(Which::All, head, Duration::from_secs(600))
        .await
        .map_err(|e| DemoError::CatchUp(e.to_string()))?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
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
    // Never in the future (today's late hours): then an hour ago.
    Timestamp::from_micros(micros.min(now.as_micros() - 3_600 * Timestamp::MICROS_PER_SEC))
}

/// What one seeded session came to.
struct Seeded {
    recorded: bool,
    live: bool,
    events: u64,
    detections: u64,
    commented: bool,
    restricted: bool,
}

const COMMENTS: [&str; 4] = [
    "Reviewed: matches the change ticket, no action needed.",
    "USB copy looks deliberate; asked the team lead to follow up.",
    "Confidential file touched outside business need. Escalated.",
    "False positive: admin tool used by IT support.",
];

#[allow(clippy::too_many_arguments)]
async fn seed_session(
    service: &Service,
    agent: &Principal,
    admin: &Principal,
    server_id: Uuid,
    plan: &SessionPlan,
    started_at: Timestamp,
    now: Timestamp,
    index: u64,
) -> Result<Seeded, AppError> {
    let started = service
        .start_recording(
            agent,
            StartRecordingInput {
                server_id,
                session_id: plan.session_id.clone(),
                session: SessionAttributes {
                    user: plan.user.clone(),
                    groups: plan.groups.clone(),
                    client_name: Some(plan.client_name.clone()),
                    client_ip: Some(plan.client_ip.clone()),
                    host: plan.host.clone(),
                    delivery_group: Some(plan.delivery_group.clone()),
                    applications: plan.applications.clone(),
                },
                started_at: Some(started_at),
            },
        )
        .await?;
    let mut seeded = Seeded {
        recorded: started.recorded,
        live: false,
        events: 0,
        detections: 0,
        commented: false,
        restricted: false,
    };
    if !started.recorded {
        return Ok(seeded);
    }
    let recording_id = started.recording_id;
    let events = plan
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let data = SessionEventData::parse(e.event_type, &e.data)
                .map_err(|m| AppError::Internal(format!("generated event: {m}")))?;
            Ok(SessionEvent {
                event_id: event_id(recording_id, i),
                event_type: e.event_type,
                offset_ms: e.offset_ms,
                data,
            })
        })
        .collect::<Result<Vec<_>, AppError>>()?;
    let recorded = service
        .record_session_events(agent, recording_id, events)
        .await?;
    seeded.events = recorded.accepted as u64;
    seeded.detections = recorded.detections as u64;
    let ended_at = started_at.plus_micros(plan.duration_ms as i64 * 1000);
    if ended_at < now {
        service
            .end_recording(agent, recording_id, Some(ended_at))
            .await?;
    } else {
        seeded.live = true;
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

/// What `srs serve --demo` prints once the demo is seeded and served.
pub fn banner(summary: &DemoSummary, url: &str, admin_secret: &str) -> String {
    let sites: Vec<String> = summary
        .sites
        .iter()
        .map(|(name, id)| format!("{name} ({id})"))
        .collect();
    format!(
        "srs: demo seeded in {:.1} s: sites {}; {} servers; {} recordings ({} live, {} not recorded by policy); \
         {} session events; {} detections; {} comments; {} restricted\n\
         srs: demo admin token: {admin_secret}\n\
         srs: demo auditor token: {}\n\
         srs: try:\n\
         curl -s {url}/graphql -H 'Authorization: Bearer {admin_secret}' -H 'content-type: application/json' \
         -d '{{\"query\":\"{{ dashboard {{ recordingsTotal recordingsLive detectionsTotal topUsers {{ name count }} }} \
         recordings(filter: {{hasDetections: true}}, first: 5) {{ totalCount edges {{ node {{ user host startedAt }} }} }} }}\"}}'",
        summary.seconds,
        sites.join(", "),
        summary.servers,
        summary.recordings + summary.declined,
        summary.live,
        summary.declined,
        summary.events,
        summary.detections,
        summary.comments,
        summary.restricted,
        summary.auditor_token,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_fall_in_the_window_and_mostly_on_working_days() {
        let now = Timestamp::parse_rfc3339("2025-03-15T12:00:00Z").unwrap();
        let mut weekend = 0;
        for index in 0..1000 {
            let t = start_time(9, index, now, 30);
            assert!(t < now, "{t:?} is not before now");
            assert!(t > now.plus_days(-31));
            assert_eq!(t, start_time(9, index, now, 30));
            weekend += usize::from(matches!(t.day_number().rem_euclid(7), 2 | 3));
        }
        assert!(weekend < 150, "{weekend} of 1000 sessions on weekends");
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
