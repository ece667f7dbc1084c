//! Two `srs serve` nodes on one log in a real three-node JetStream
//! cluster, with agents ingesting through both while servers are killed:
//! the cluster crash test.
//!
//! Each cycle kills with SIGKILL either the NATS server leading the log's
//! stream (found through the servers' monitoring endpoints) or one of the
//! srs nodes, lets the agents go on against what is left, and restarts
//! it. Afterwards every acknowledged session event is in the stream
//! exactly once, positions are gapless, `srs verify --log-url` exits 0,
//! and both nodes answer what a fresh node rebuilt from the stream
//! answers. Before the cycles: one append of 1,000 events with their
//! detections through node A, seen by a subscription and by `atLeast` on
//! node B. `SRS_CLUSTER_CYCLES` sets the cycles (default 5).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use srs_domain::log::{decode_record, LogBackend};
use srs_log_jetstream::testing::{Cluster, MAX_BATCH_MSGS};
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};
use uuid::Uuid;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

const STREAM: &str = "srs-cluster";

/// How long an agent retries one batch (the same event ids) before the
/// test fails: a bound for a broken cluster, not a timing claim.
const RETRY_FOR: Duration = Duration::from_secs(90);

fn cycles() -> usize {
    std::env::var("SRS_CLUSTER_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5)
}

/// The base URLs of the two nodes, changed when a node restarts on a new
/// port.
type Nodes = Arc<RwLock<[String; 2]>>;

/// One agent: sends batches of fresh events for its recording, each
/// retried with the same ids (through either node) until acknowledged.
/// Returns the acknowledged event ids.
async fn agent(
    n: usize,
    nodes: Nodes,
    token: String,
    recording_id: String,
    stop: Arc<AtomicBool>,
) -> Vec<Uuid> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut acknowledged = Vec::new();
    let mut offset = 0;
    let mut attempt = n;
    while !stop.load(Ordering::Relaxed) {
        let ids: Vec<Uuid> = (0..2).map(|_| Uuid::now_v7()).collect();
        offset += 1_000;
        let events = json!([
            { "eventId": ids[0].to_string(), "type": "APP_START", "offsetMs": offset, "data": { "app": "excel.exe" } },
            { "eventId": ids[1].to_string(), "type": "WEB_BROWSING", "offsetMs": offset + 500,
              "data": { "url": "https://www.dropbox.com/upload", "browser": "Edge" } },
        ]);
        let body = json!({
            "query": RECORD_EVENTS,
            "variables": { "recordingId": recording_id, "events": events },
        });
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let url = nodes.read().unwrap()[attempt % 2].clone();
            attempt += 1;
            let answer = http
                .post(format!("{url}/graphql"))
                .bearer_auth(&token)
                .json(&body)
                .send()
                .await;
            let answer = match answer {
                Ok(response) => response.json::<Value>().await.ok(),
                Err(_) => None,
            };
            if let Some(answer) = &answer {
                if answer["data"]["recordSessionEvents"].is_object() {
                    acknowledged.extend(&ids);
                    break;
                }
                let code = answer["errors"][0]["extensions"]["code"].as_str();
                assert!(
                    matches!(code, Some("UNAVAILABLE") | Some("CONFLICT") | None),
                    "agent {n}: a retried batch was refused for good: {answer}"
                );
            }
            assert!(
                Instant::now() < deadline,
                "agent {n}: a batch was not acknowledged in {RETRY_FOR:?}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    acknowledged
}

async fn start_node(data: &std::path::Path, env: &[(&str, &str)]) -> Srs {
    Srs::start_with_env(data, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_on_two_nodes_lose_nothing_when_servers_and_nodes_are_killed() {
    let mut cluster = Cluster::start();
    let urls = cluster.urls();
    let max_batch = MAX_BATCH_MSGS.to_string();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", STREAM),
        ("SRS_LOG_MAX_BATCH", max_batch.as_str()),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let data = [dir.path().join("a"), dir.path().join("b")];
    let mut nodes = vec![
        start_node(&data[0], &env).await,
        start_node(&data[1], &env).await,
    ];
    // One first admin for the cluster: the second node found it.
    let token = nodes[0].admin_token();
    assert!(nodes[1].printed_admin_token.is_none());
    let admin = Client::new(&nodes[1], Some(&token));
    let site = create_site(&admin, "cluster").await;
    record_everyone(&admin, &site).await;
    activate_detection_policy(
        &admin,
        &site,
        "name: \"Web\", logged: [APP_START, WEB_BROWSING], rules: [{type: WEB_BROWSING, severity: MEDIUM}]",
    )
    .await;
    let (server, agent_token) = connect_server(&admin, &site, "vda").await;

    // A full batch of 1,000 events with a detection each is one append
    // through node A, and a subscription on node B sees its detections.
    let agent_a = Client::new(&nodes[0], Some(&agent_token));
    let big = start_recording(&agent_a, &server, "big", "alice", &[]).await;
    let mut alerts = admin
        .subscribe(
            "subscription($site: ID) { detections(siteId: $site) { type recordingId } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(alerts.ack["type"], "connection_ack", "{}", alerts.ack);
    // Give the server a moment to register the subscription before sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events: Vec<Value> = (0..1_000)
        .map(|i| {
            event(
                "WEB_BROWSING",
                i * 10,
                json!({ "url": "https://www.dropbox.com/upload", "browser": "Edge" }),
            )
        })
        .collect();
    let recorded = agent_a
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": big["recordingId"], "events": events }),
        )
        .await;
    assert_eq!(
        recorded["recordSessionEvents"]["accepted"], 1_000,
        "{recorded}"
    );
    assert_eq!(
        recorded["recordSessionEvents"]["detections"], 1_000,
        "{recorded}"
    );
    let alert = alerts.next_data(Duration::from_secs(30)).await;
    assert_eq!(alert["detections"]["type"], "WEB_BROWSING");
    assert_eq!(alert["detections"]["recordingId"], big["recordingId"]);
    alerts.close().await;
    // A position a mutation on A answered is honoured on B (`atLeast`):
    // asked at once, B waits for it instead of refusing it as unknown.
    let at = position(&recorded["recordSessionEvents"]);
    let on_b = admin
        .data(
            "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { eventCount } }",
            json!({ "id": big["recordingId"], "at": at }),
        )
        .await;
    assert_eq!(on_b["recording"]["eventCount"], 1_000, "{on_b}");

    let shared: Nodes = Arc::new(RwLock::new([nodes[0].url(""), nodes[1].url("")]));
    let stop = Arc::new(AtomicBool::new(false));
    let mut agents = Vec::new();
    for n in 0..4 {
        let through = Client::new(&nodes[n % 2], Some(&agent_token));
        let started =
            start_recording(&through, &server, &format!("s{n}"), &format!("u{n}"), &[]).await;
        let recording = started["recordingId"].as_str().unwrap().to_owned();
        agents.push(tokio::spawn(agent(
            n,
            shared.clone(),
            agent_token.clone(),
            recording,
            stop.clone(),
        )));
    }

    for cycle in 0..cycles() {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        if cycle % 2 == 0 {
            let leader = cluster.stream_leader(STREAM).expect("a stream leader");
            let killed = cluster.index_of(&leader).expect("a known server");
            cluster.kill(killed);
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            cluster.start_node(killed);
            cluster.wait_for_meta_leader();
        } else {
            let which = (cycle / 2) % 2;
            // Drop kills with SIGKILL: no shutdown of any kind.
            let killed = nodes.remove(which);
            drop(killed);
            tokio::time::sleep(Duration::from_millis(1_000)).await;
            let restarted = start_node(&data[which], &env).await;
            shared.write().unwrap()[which] = restarted.url("");
            nodes.insert(which, restarted);
        }
    }
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for agent in agents {
        acknowledged.extend(agent.await.expect("an agent"));
    }
    assert!(acknowledged.len() > 20, "{}", acknowledged.len());

    // Every acknowledged event is stored exactly once, positions gapless.
    let backend = tokio::task::spawn_blocking({
        let urls = urls.clone();
        move || JetStreamBackend::open(&JetStreamOptions::new(&urls, STREAM)).expect("open")
    })
    .await
    .unwrap();
    let head = backend.head().unwrap().position;
    let mut stored: HashMap<Uuid, u32> = HashMap::new();
    let mut next = 1;
    backend
        .scan(1, head, &mut |position, bytes| {
            assert_eq!(position, next, "positions are gapless");
            next += 1;
            *stored
                .entry(decode_record(position, bytes)?.event_id)
                .or_default() += 1;
            Ok(true)
        })
        .unwrap();
    assert_eq!(next, head + 1);
    assert!(stored.values().all(|&n| n == 1), "an event id stored twice");
    for id in &acknowledged {
        assert_eq!(stored.get(id), Some(&1), "acknowledged event {id}");
    }
    drop(backend);

    let (code, stdout, stderr) =
        run_srs(&["verify", "--log-url", &urls, "--log-stream", STREAM], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );

    // Both nodes answer what a node rebuilt from the stream answers.
    let fresh = start_node(&dir.path().join("fresh"), &env).await;
    assert!(fresh.printed_admin_token.is_none());
    let query = "query($site: ID!, $at: Int) {
      recordings(filter: {siteId: $site}, first: 50, atLeast: $at) { totalCount edges { node { id user eventCount } } }
      dashboard(siteId: $site, atLeast: $at) { recordingsTotal detectionsTotal topUsers { name count } }
      servers(siteId: $site, atLeast: $at) { id name }
    }";
    let variables = json!({ "site": site, "at": head });
    let expected = Client::new(&fresh, Some(&token))
        .data(query, variables.clone())
        .await;
    let events: i64 = expected["recordings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["eventCount"].as_i64().unwrap())
        .sum();
    assert_eq!(events, 1_000 + acknowledged.len() as i64);
    for node in &nodes {
        let answer = Client::new(node, Some(&token))
            .data(query, variables.clone())
            .await;
        assert_eq!(
            answer, expected,
            "node {} against a fresh rebuild",
            node.addr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_mutations_answer_unavailable_and_resume() {
    let mut cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-quorum"),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let node = start_node(&dir.path().join("a"), &env).await;
    let admin = Client::new(&node, Some(&node.admin_token()));
    create_site(&admin, "before").await;

    // Two of three servers gone: no quorum, no leader.
    cluster.kill(1);
    cluster.kill(2);
    let asked = Instant::now();
    let refused = admin.run(CREATE_SITE, json!({ "name": "during" })).await;
    refused.expect_code("UNAVAILABLE");
    // Bounded by the log's request timeout and the writer's retries, not
    // by the cluster coming back (a bound for a hang, not a speed claim).
    assert!(
        asked.elapsed() < Duration::from_secs(60),
        "{:?}",
        asked.elapsed()
    );
    // Reads of what is stored still answer.
    let sites = admin.data("{ sites { name } }", json!({})).await;
    assert!(sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "before"));

    // A quorum again: writes resume by themselves.
    cluster.start_node(1);
    cluster.start_node(2);
    cluster.wait_for_meta_leader();
    let deadline = Instant::now() + RETRY_FOR;
    loop {
        let answer = admin.run(CREATE_SITE, json!({ "name": "after" })).await;
        if answer.body["data"]["createSite"].is_object() {
            break;
        }
        answer.expect_code("UNAVAILABLE");
        assert!(Instant::now() < deadline, "writes did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Nothing half-written: the chain checks out, positions gapless. (The
    // refused "during" may or may not be stored, as an UNAVAILABLE says:
    // a leader that had it in its own log can commit it once re-elected.)
    let (code, stdout, stderr) = run_srs(
        &["verify", "--log-url", &urls, "--log-stream", "srs-quorum"],
        &[],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
}
