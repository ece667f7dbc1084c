//! Session events ingested through the GraphQL API as agents send them:
//! `agents` Session Recording servers, each with its own AGENT token (from
//! `connectServer`) and its own recording (from `startRecording`), each
//! on one keep-alive HTTP/1.1 connection sending `recordSessionEvents`
//! batches of [`BATCH`] new WEB_BROWSING events, the next batch as soon as
//! the previous answer is read (closed loop). Every answer is checked: a
//! 200 whose `accepted` is the whole batch (a duplicate, an ignored event
//! or an error stops the run), so only stored events are counted.
//!
//! The agents' client is the bare hyper connection of [`crate::graphql`]
//! and each batch's body is written straight into a string: the figure is
//! the server's, not a client's per-request work.
//!
//! [`enrol`] sets the agents up through the API ([`srs_client`], as `srs
//! simulate` does): a site of their own that records everyone, its
//! servers and one recording per server. [`drive`] runs them until told to
//! stop, alone (`ingest_graphql`) or while the read figures are measured
//! (`*_ingesting`, see [`crate::graphql_server`]).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use srs_client::Gql as _;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::graphql::{Connection, Endpoint, GraphqlBenchError};

/// Session events per `recordSessionEvents` call (`srs simulate`'s
/// default batch).
pub const BATCH: u64 = 50;

/// The built-in "Record everyone with notification" recording policy.
const RECORD_EVERYONE: &str = "00000000-0000-8000-8000-000000000002";

const RECORD_EVENTS: &str = "mutation($id: ID!, $events: [SessionEventInput!]!) { recordSessionEvents(recordingId: $id, events: $events) { accepted } }";

/// One agent: its token and the recording it sends events for.
#[derive(Clone, Debug)]
pub struct Agent {
    /// Which agent (part of its events' ids).
    pub index: u64,
    pub token: String,
    pub recording_id: Uuid,
    /// Events sent so far (the next event's number).
    pub sent: u64,
}

/// Sets up `agents` agents through the API with the ADMIN `admin_token`:
/// a site named `site_name` that records everyone, one server per agent
/// (its AGENT token) and one recording per server.
pub async fn enrol(
    addr: SocketAddr,
    admin_token: &str,
    agents: usize,
    site_name: &str,
) -> anyhow::Result<Vec<Agent>> {
    let url = format!("http://{addr}");
    let admin = srs_client::Client::new(&url, Some(admin_token));
    let call = |client: &srs_client::Client, what: &'static str, query: &str, vars| {
        let client = client.clone();
        let query = query.to_owned();
        async move {
            client
                .call(&query, vars)
                .await
                .map_err(|e| anyhow::anyhow!("{what}: {e}"))
        }
    };
    let site = call(
        &admin,
        "createSite",
        "mutation($name: String!) { createSite(input: {name: $name}) { siteId } }",
        serde_json::json!({ "name": site_name }),
    )
    .await?;
    let site_id = site["createSite"]["siteId"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("createSite gave no site id: {site}"))?
        .to_owned();
    call(
        &admin,
        "activatePolicy",
        "mutation($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }",
        serde_json::json!({ "id": RECORD_EVERYONE, "site": site_id }),
    )
    .await?;
    let mut enrolled = Vec::with_capacity(agents);
    for index in 0..agents as u64 {
        let server = call(
            &admin,
            "connectServer",
            "mutation($input: ConnectServerInput!) { connectServer(input: $input) { serverId agentToken } }",
            serde_json::json!({ "input": {
                "siteId": site_id,
                "name": format!("BENCH-SR-{index:03}"),
                "host": format!("bench-sr{index:03}.corp"),
                "deployment": "ON_PREMISES",
                "version": "2411",
            }}),
        )
        .await?;
        let (Some(server_id), Some(token)) = (
            server["connectServer"]["serverId"].as_str(),
            server["connectServer"]["agentToken"].as_str(),
        ) else {
            anyhow::bail!("connectServer gave no server id or token: {server}");
        };
        let agent = admin.with_token(token);
        let started = call(
            &agent,
            "startRecording",
            "mutation($input: StartRecordingInput!) { startRecording(input: $input) { recordingId recorded } }",
            serde_json::json!({ "input": {
                "serverId": server_id,
                "sessionId": format!("bench-session-{index}"),
                "session": {
                    "user": format!("CORP\\bench{index:03}"),
                    "host": format!("VDA-B{index:03}"),
                    "applications": ["Desktop"],
                },
            }}),
        )
        .await?;
        let recording_id = started["startRecording"]["recordingId"]
            .as_str()
            .and_then(|id| Uuid::parse_str(id).ok())
            .filter(|_| started["startRecording"]["recorded"] == true)
            .ok_or_else(|| anyhow::anyhow!("startRecording did not record: {started}"))?;
        enrolled.push(Agent {
            index,
            token: token.to_owned(),
            recording_id,
            sent: 0,
        });
    }
    Ok(enrolled)
}

/// The id of event `n` of agent `agent`: unique in the run.
fn event_id(agent: u64, n: u64) -> Uuid {
    Uuid::from_u128((0xbe7c_u128 << 112) | (u128::from(agent) << 64) | u128::from(n))
}

/// The `recordSessionEvents` request body for events `first..first +
/// BATCH` of `agent`: WEB_BROWSING events of the size a browser's visit
/// has, a quarter of a second apart.
pub fn batch_body(agent: &Agent, first: u64) -> Bytes {
    let mut body = String::with_capacity(256 + BATCH as usize * 230);
    let _ = write!(
        body,
        r#"{{"query":"{RECORD_EVENTS}","variables":{{"id":"{}","events":["#,
        agent.recording_id
    );
    for n in first..first + BATCH {
        if n > first {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"eventId":"{}","type":"WEB_BROWSING","offsetMs":{},"data":{{"url":"https://intranet.example.com/page/{n}?q=quarterly+report","browser":"msedge.exe","title":"Quarterly report {n} - Intranet"}}}}"#,
            event_id(agent.index, n),
            (n * 250) % (i32::MAX as u64),
        );
    }
    body.push_str("]}}");
    Bytes::from(body)
}

/// The `accepted` count of a `recordSessionEvents` answer.
pub fn accepted(body: &[u8]) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    if value.get("errors").is_some() {
        return None;
    }
    value["data"]["recordSessionEvents"]["accepted"].as_u64()
}

/// What the agents stored in one [`drive`].
#[derive(Clone, Debug)]
pub struct Ingested {
    /// Events stored in the measured window.
    pub events: u64,
    /// From the window's start to the last answer.
    pub elapsed: Duration,
    /// Each batch's request latency (µs), sorted.
    pub latencies_us: Vec<u64>,
    /// What the agents' own work took in the window (writing the bodies,
    /// reading the answers; not the HTTP exchange): the client's share.
    pub client_work: Duration,
}

impl Ingested {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The agents' own work as a share of one core over the window.
    pub fn client_cores(&self) -> f64 {
        self.client_work.as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// A batch's latency at quantile `q`, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        crate::quantile_ms(&self.latencies_us, q).unwrap_or(f64::NAN)
    }
}

/// Runs `agents` in a closed loop against the server at `addr`, each on
/// its own connection, until `stop` is set; counts the events of the
/// batches sent from `start` on. Returns what was stored and the agents
/// (their counts moved on, for the next drive).
pub async fn drive(
    addr: SocketAddr,
    agents: Vec<Agent>,
    start: Instant,
    stop: Arc<AtomicBool>,
) -> Result<(Ingested, Vec<Agent>), GraphqlBenchError> {
    let mut workers = JoinSet::new();
    for mut agent in agents {
        let mut connection = Connection::open(addr).await?;
        let stop = stop.clone();
        workers.spawn(async move {
            let mut endpoint = Endpoint::graphql(
                "recordSessionEvents",
                &agent.token,
                RECORD_EVENTS,
                serde_json::json!({}),
            );
            let (mut events, mut latencies) = (0u64, Vec::with_capacity(4_096));
            let mut work = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                let writing = Instant::now();
                endpoint.body = Some(batch_body(&agent, agent.sent));
                let sent = Instant::now();
                let (status, body) = connection.send(addr, &endpoint).await?;
                let (answered, reading) = (sent.elapsed(), Instant::now());
                let stored = accepted(&body);
                if sent >= start {
                    work += (sent - writing) + reading.elapsed();
                }
                if status != 200 || stored != Some(BATCH) {
                    return Err(GraphqlBenchError::Answer {
                        what: format!("agent {}: recordSessionEvents", agent.index),
                        status,
                        body: String::from_utf8_lossy(&body).chars().take(500).collect(),
                    });
                }
                agent.sent += BATCH;
                if sent >= start {
                    events += BATCH;
                    latencies.push(answered.as_micros() as u64);
                }
            }
            Ok((agent, events, latencies, work))
        });
    }
    let (mut events, mut latencies_us, mut agents) = (0, Vec::new(), Vec::new());
    let mut client_work = Duration::ZERO;
    let mut failed = None;
    while let Some(done) = workers.join_next().await {
        match done {
            Ok(Ok((agent, count, latencies, work))) => {
                events += count;
                client_work += work;
                latencies_us.extend(latencies);
                agents.push(agent);
            }
            Ok(Err(e)) => {
                // The others stop too, then the first error is returned.
                stop.store(true, Ordering::Relaxed);
                failed.get_or_insert(e);
            }
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                failed.get_or_insert(GraphqlBenchError::Answer {
                    what: "an agent".into(),
                    status: 0,
                    body: format!("its task failed: {e}"),
                });
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    let elapsed = start.elapsed();
    agents.sort_by_key(|a| a.index);
    latencies_us.sort_unstable();
    Ok((
        Ingested {
            events,
            elapsed,
            latencies_us,
            client_work,
        },
        agents,
    ))
}

/// [`drive`] for `warmup` (not counted) and then `seconds`.
pub async fn drive_for(
    addr: SocketAddr,
    agents: Vec<Agent>,
    warmup: Duration,
    seconds: Duration,
) -> Result<(Ingested, Vec<Agent>), GraphqlBenchError> {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now() + warmup;
    let timer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until((start + seconds).into()).await;
            stop.store(true, Ordering::Relaxed);
        })
    };
    let result = drive(addr, agents, start, stop).await;
    timer.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(index: u64) -> Agent {
        Agent {
            index,
            token: "t".into(),
            recording_id: Uuid::from_u128(7),
            sent: 0,
        }
    }

    #[test]
    fn a_batch_is_the_mutation_with_fifty_new_web_events() {
        let body = batch_body(&agent(3), 100);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(value["query"], RECORD_EVENTS);
        assert_eq!(value["variables"]["id"], Uuid::from_u128(7).to_string());
        let events = value["variables"]["events"].as_array().expect("events");
        assert_eq!(events.len(), BATCH as usize);
        assert_eq!(events[0]["type"], "WEB_BROWSING");
        assert_eq!(events[0]["offsetMs"], 25_000);
        assert_eq!(events[0]["data"]["browser"], "msedge.exe");
        assert_eq!(events[0]["eventId"], event_id(3, 100).to_string());
        assert_eq!(events[49]["eventId"], event_id(3, 149).to_string());
    }

    #[test]
    fn event_ids_differ_between_agents_and_batches() {
        let ids: std::collections::BTreeSet<Uuid> = (0..64)
            .flat_map(|a| (0..200).map(move |n| event_id(a, n)))
            .collect();
        assert_eq!(ids.len(), 64 * 200);
    }

    #[test]
    fn only_a_clean_answer_counts_its_events() {
        assert_eq!(
            accepted(br#"{"data":{"recordSessionEvents":{"accepted":50}}}"#),
            Some(50)
        );
        assert_eq!(
            accepted(br#"{"data":null,"errors":[{"message":"FORBIDDEN"}]}"#),
            None
        );
        assert_eq!(accepted(b"not json"), None);
    }
}
