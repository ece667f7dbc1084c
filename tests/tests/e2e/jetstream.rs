//! `srs serve --log-url` and `srs verify --log-url` against a real
//! three-node nats-server cluster: the log lives in the JetStream stream,
//! not in the data directory, so a server on an empty data directory
//! serves what another one wrote, and a data directory built from
//! another log is refused. `srs import --log-url` moves an embedded log
//! into a stream, and `replay`, `state` and `export` answer over the
//! stream what they answer over the data directory. The recordings'
//! content and keys live in the cluster too: content uploaded through one server plays through
//! another, and a deletion through one shreds it for both.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use srs_log_jetstream::testing::Cluster;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

#[tokio::test]
async fn the_log_on_a_jetstream_cluster_is_served_verified_and_kept() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let key_file = key_file.to_str().unwrap();
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-e2e"),
        ("SRS_CLUSTER_KEY_FILE", key_file),
    ];
    let first = dir.path().join("first");

    let srs = Srs::start_with_env(&first, &env).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));
    for n in 0..3 {
        create_site(&admin, &format!("site {n}")).await;
    }
    let head = log_head(&admin).await;
    assert!(head >= 3, "{head}");

    // The stream's chain checks out, also while the server runs.
    let (code, stdout, stderr) = run_srs(
        &["verify", "--log-url", &urls, "--log-stream", "srs-e2e"],
        &[],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );
    assert!(srs.stop().success());
    // The data directory's own log holds nothing.
    let (code, stdout, _) = run_srs(&["verify", "--data", first.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("intact: 0 events checked"), "{stdout}");

    // A server on an empty data directory serves the same log: the read
    // models are rebuilt from the stream, the first admin's token works.
    let second = dir.path().join("second");
    let srs = Srs::start_with_env(&second, &env).await;
    let admin = Client::new(&srs, Some(&token));
    let sites = admin.data("{ sites { name } }", json!({})).await;
    let mut names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["site 0", "site 1", "site 2"]);
    create_site(&admin, "site 3").await;
    assert!(log_head(&admin).await > head);
    assert!(srs.stop().success());

    // A data directory is bound to the log its read models come from:
    // another stream, or an embedded log, is refused (exit 2).
    let first_arg = first.to_str().unwrap();
    let serve = ["serve", "--data", first_arg, "--listen", "127.0.0.1:0"];
    let other = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-other"),
        ("SRS_CLUSTER_KEY_FILE", key_file),
    ];
    let (code, _, stderr) = run_srs(&serve, &other);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("was built from the log `srs-e2e"),
        "{stderr}"
    );
    let embedded = dir.path().join("embedded");
    let srs = Srs::start(&embedded).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    create_site(&admin, "embedded").await;
    assert!(srs.stop().success());
    let embedded_arg = embedded.to_str().unwrap();
    let (code, _, stderr) = run_srs(
        &["serve", "--data", embedded_arg, "--listen", "127.0.0.1:0"],
        &env,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds an embedded log"), "{stderr}");

    // A cluster that is not there: a clear error, exit 2.
    let (code, _, stderr) = run_srs(
        &[
            "verify",
            "--log-url",
            "nats://127.0.0.1:1",
            "--log-stream",
            "srs-e2e",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// The event lines of an export file (no header, no trailer).
fn event_lines(export: &str) -> Vec<&str> {
    let lines: Vec<&str> = export.lines().collect();
    assert!(lines.len() >= 2, "{export}");
    lines[1..lines.len() - 1].to_vec()
}

#[tokio::test]
async fn an_embedded_log_moves_into_a_stream_and_reads_the_same_there() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();

    // An embedded log with a site, a server, a recording and its sealed
    // session events (detections among them).
    let source = dir.path().join("source");
    let srs = Srs::start(&source).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "vda-01").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "alice", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": suspicious_batch() }),
        )
        .await;
    assert_eq!(recorded["recordSessionEvents"]["accepted"], 4, "{recorded}");
    assert!(srs.stop().success());
    let source_arg = source.to_str().unwrap();

    let exported = dir.path().join("embedded.jsonl");
    let exported_arg = exported.to_str().unwrap();
    let (code, _, stderr) = run_srs(&["export", "--data", source_arg, exported_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let embedded = std::fs::read_to_string(&exported).unwrap();
    let head = event_lines(&embedded).len();
    assert!(head > 5, "{embedded}");

    // Into a stream: imported, then its chain verified.
    let stream = ["--log-url", urls.as_str(), "--log-stream", "srs-moved"];
    let (code, stdout, stderr) =
        run_srs(&[&["import"][..], &stream, &[exported_arg]].concat(), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("imported {head} events")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("intact: {head} events checked")),
        "{stdout}"
    );
    let (code, stdout, _) = run_srs(&[&["verify"][..], &stream].concat(), &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );

    // A stream that holds anything is refused, and nothing is written.
    let (code, _, stderr) = run_srs(&[&["import"][..], &stream, &[exported_arg]].concat(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("stream srs-moved") && stderr.contains("already holds a log"),
        "{stderr}"
    );
    let (_, stdout, _) = run_srs(&[&["verify"][..], &stream].concat(), &[]);
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );
    // A stream holding the start of the same log goes on from its end:
    // a later export (the first one is a fact of the source's log now)
    // imported where the first one was.
    let later = dir.path().join("later.jsonl");
    let later_arg = later.to_str().unwrap();
    let (code, _, stderr) = run_srs(&["export", "--data", source_arg, later_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let step = ["--log-url", urls.as_str(), "--log-stream", "srs-step"];
    for file in [exported_arg, later_arg] {
        let (code, stdout, stderr) = run_srs(&[&["import"][..], &step, &[file]].concat(), &[]);
        assert_eq!(code, Some(0), "{file}: {stdout}{stderr}");
    }
    let (code, stdout, _) = run_srs(&[&["verify"][..], &step].concat(), &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        stdout.starts_with(&format!("intact: {} events checked", head + 1)),
        "{stdout}"
    );
    // The earlier export onto it is refused: the stream holds more.
    let (code, _, stderr) = run_srs(&[&["import"][..], &step, &[exported_arg]].concat(), &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("longer than the file"), "{stderr}");

    // A file that does not check out creates no stream.
    let truncated = dir.path().join("truncated.jsonl");
    let mut lines: Vec<&str> = embedded.lines().collect();
    lines.pop();
    std::fs::write(&truncated, lines.join("\n") + "\n").unwrap();
    let bad_stream = ["--log-url", urls.as_str(), "--log-stream", "srs-bad"];
    let (code, _, stderr) = run_srs(
        &[&["import"][..], &bad_stream, &[truncated.to_str().unwrap()]].concat(),
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("without a trailer"), "{stderr}");
    // Reading commands never create a stream either.
    for command in [
        &["verify"][..],
        &["replay"],
        &[
            "state",
            "--as-of",
            "1",
            "--projection",
            "access-restrictions",
        ],
    ] {
        let (code, _, stderr) = run_srs(&[command, &bad_stream].concat(), &[]);
        assert_eq!(code, Some(2), "{command:?}: {stderr}");
        assert!(
            stderr.contains("there is no stream srs-bad"),
            "{command:?}: {stderr}"
        );
    }

    // replay and state answer over the stream what they answer over the
    // data directory (the source's keys open the sealed session data).
    let to = head.to_string();
    let (code, over_dir, stderr) = run_srs(&["replay", "--data", source_arg, "--to", &to], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, over_stream, stderr) = run_srs(
        &[
            &["replay"][..],
            &stream,
            &["--data", source_arg, "--to", &to],
        ]
        .concat(),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(over_stream.lines().count(), head);
    assert_eq!(over_stream, over_dir);
    assert!(over_stream.contains("dropbox.com"), "session data opened");
    let table = |args: &[&str]| {
        let (code, stdout, stderr) = run_srs(args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        stdout
    };
    let recording_stream = format!("recording-{recording}");
    // The recording as it was before its last event.
    let before = (head - 1).to_string();
    for what in [
        vec!["--as-of", to.as_str(), recording_stream.as_str()],
        vec!["--as-of", before.as_str(), recording_stream.as_str()],
        vec![
            "--as-of",
            to.as_str(),
            "--projection",
            "access-restrictions",
        ],
    ] {
        let over_dir = table(&[&["state", "--data", source_arg][..], &what].concat());
        let over_stream = table(&[&["state"][..], &stream, &what].concat());
        let state: Value = serde_json::from_str(&over_stream).unwrap();
        assert!(state.is_object(), "{over_stream}");
        assert_eq!(over_stream, over_dir, "{what:?}");
    }

    // Exported back out: record for record the embedded export, and the
    // export is a fact of the stream's log.
    let back = dir.path().join("back.jsonl");
    let (code, _, stderr) = run_srs(
        &[&["export"][..], &stream, &[back.to_str().unwrap()]].concat(),
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let cluster_export = std::fs::read_to_string(&back).unwrap();
    assert_eq!(event_lines(&cluster_export), event_lines(&embedded));
    let header =
        |text: &str| -> Value { serde_json::from_str(text.lines().next().unwrap()).unwrap() };
    assert_eq!(header(&cluster_export)["head"], header(&embedded)["head"]);
    let from = (head + 1).to_string();
    let (_, stdout, _) = run_srs(
        &[&["replay"][..], &stream, &["--from", &from]].concat(),
        &[],
    );
    let fact: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(fact["type"], "LogExported", "{stdout}");
    assert_eq!(fact["payload"]["LogExported"]["to_position"], head);

    // Flags that name two logs at once are refused before anything runs.
    let (code, _, stderr) = run_srs(
        &[
            &["import"][..],
            &stream,
            &["--data", source_arg, exported_arg],
        ]
        .concat(),
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// The value of the sample `name` (with its labels, as printed) on
/// `srs`'s `/metrics`, if it shows.
async fn metric(srs: &Srs, name: &str) -> Option<u64> {
    let text = reqwest::get(srs.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

/// How long the test waits for the nodes to settle; a bound so a broken
/// test fails instead of hanging, not a timing claim.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(60);

/// Which of `nodes` hold the lease of `job`, once exactly one does; never
/// two at once meanwhile (as sampled).
async fn one_holder(nodes: &[&Srs], job: &str) -> usize {
    let sample = format!("srs_lease_held{{job=\"{job}\"}}");
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let mut holders = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            if metric(node, &sample).await == Some(1) {
                holders.push(i);
            }
        }
        assert!(holders.len() <= 1, "{job} held by nodes {holders:?}");
        if let [holder] = holders[..] {
            return holder;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nobody took the {job} lease"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_stream_create_one_admin_and_run_each_job_once() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-nodes"),
        ("SRS_LEASE_SECS", "3"),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];

    // Two nodes start at once on an empty stream: one creates the first
    // admin, the other finds it.
    let starts: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|name| {
            let data = dir.path().join(name);
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            tokio::spawn(async move {
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                Srs::start_with_env(&data, &env).await
            })
        })
        .collect();
    let mut nodes = Vec::new();
    for start in starts {
        nodes.push(start.await.unwrap());
    }
    let creators: Vec<&Srs> = nodes
        .iter()
        .filter(|n| n.data.join("admin.token").exists())
        .collect();
    assert_eq!(creators.len(), 1, "exactly one node has admin.token");
    let token = creators[0].admin_token();
    assert_eq!(
        nodes
            .iter()
            .filter(|n| n.printed_admin_token.is_some())
            .count(),
        1
    );
    let admin = Client::new(creators[0], Some(&token));
    let issued = admin
        .data("{ tokens { edges { node { role name } } } }", json!({}))
        .await;
    let admins = issued["tokens"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["node"]["role"] == "ADMIN")
        .count();
    assert_eq!(admins, 1, "{issued}");

    // The writer's read models reach the stream's last position: lag 0,
    // ready, and the stream's position is the log head.
    create_site(&admin, "site").await;
    let head = log_head(&admin).await as u64;
    let writer = creators[0];
    let deadline = std::time::Instant::now() + SETTLE;
    while metric(writer, "srs_node_lag_positions").await != Some(0)
        || metric(writer, "srs_log_stream_last_position").await != Some(head)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the writer never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let ready: serde_json::Value = reqwest::get(writer.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    assert_eq!(ready["lag"], 0, "{ready}");
    assert_eq!(ready["stream_last_position"], head, "{ready}");
    // The other node asks the stream too: it sees the writer's appends.
    let other = nodes.iter().find(|n| !std::ptr::eq(*n, writer)).unwrap();
    while metric(other, "srs_log_stream_last_position").await < Some(head) {
        assert!(
            std::time::Instant::now() < deadline,
            "the stream's position is not asked"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    // Each scheduled job runs on one node; the holder of retention killed
    // (no release), the other takes it after the lease's TTL.
    let node_refs: Vec<&Srs> = nodes.iter().collect();
    one_holder(&node_refs, "liveness").await;
    let holder = one_holder(&node_refs, "retention").await;
    let survivor = nodes.remove(1 - holder);
    drop(nodes);
    assert_eq!(one_holder(&[&survivor], "retention").await, 0);
    assert_eq!(one_holder(&[&survivor], "liveness").await, 0);
    assert!(survivor.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_heartbeating_to_one_node_stays_online_on_the_cluster() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-liveness"),
        ("SRS_LIVENESS_SECS", "3"),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];
    let a = Srs::start_with_env(&dir.path().join("a"), &env).await;
    let b = Srs::start_with_env(&dir.path().join("b"), &env).await;
    let token = a.admin_token();
    let admin = Client::new(&a, Some(&token));
    let site = create_site(&admin, "live").await;
    let (server, agent_token) = connect_server(&admin, &site, "vda").await;
    let start = log_head(&admin).await;

    // The agent heartbeats only to the node that does not run the check,
    // for several liveness periods: the checking node takes the other
    // node's heartbeats and never marks the server offline.
    let nodes = [&a, &b];
    let holder = one_holder(&nodes, "liveness").await;
    let heartbeat = "mutation($server: ID!) { heartbeat(serverId: $server) { position } }";
    // A heartbeat taken by one node shows on the other.
    Client::new(nodes[holder], Some(&agent_token))
        .data(heartbeat, json!({ "server": server }))
        .await;
    let other = Client::new(nodes[1 - holder], Some(&token));
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let servers = other
            .data("{ servers { id lastHeartbeat } }", json!({}))
            .await;
        let seen = servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == server.as_str() && s["lastHeartbeat"].is_string());
        if seen {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the other node never showed the heartbeat: {servers}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let agent = Client::new(nodes[1 - holder], Some(&agent_token));
    let until = std::time::Instant::now() + std::time::Duration::from_secs(12);
    while std::time::Instant::now() < until {
        agent.data(heartbeat, json!({ "server": server })).await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let checker = Client::new(nodes[holder], Some(&token));
    let history = checker
        .data(
            "query($from: Int!) { history(filter: {fromPosition: $from}, first: 500) { edges { node { type } } } }",
            json!({ "from": start + 1 }),
        )
        .await;
    let types: Vec<&str> = history["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["type"].as_str().unwrap())
        .collect();
    assert!(!types.contains(&"ServerWentOffline"), "{types:?}");

    // Silent on every node: the check marks it offline.
    let deadline = std::time::Instant::now() + SETTLE;
    loop {
        let servers = checker.data("{ servers { id online } }", json!({})).await;
        let online = servers["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == server.as_str())
            .map(|s| s["online"].clone());
        if online == Some(Value::Bool(false)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never marked offline: {servers}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// `PUT /recordings/{id}/chunks/{seq}`: the status.
async fn upload(srs: &Srs, token: &str, recording: &str, seq: u32, body: &[u8]) -> u16 {
    use sha2::Digest as _;
    reqwest::Client::new()
        .put(srs.url(&format!("/recordings/{recording}/chunks/{seq}")))
        .bearer_auth(token)
        .header("x-content-sha256", hex::encode(sha2::Sha256::digest(body)))
        .body(body.to_vec())
        .send()
        .await
        .expect("upload")
        .status()
        .as_u16()
}

/// `GET /recordings/{id}/content`: the status, the error code if any, the body.
async fn content(srs: &Srs, token: &str, recording: &str) -> (u16, Option<String>, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(srs.url(&format!("/recordings/{recording}/content")))
        .bearer_auth(token)
        .send()
        .await
        .expect("content");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body").to_vec();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned));
    (status, code, body)
}

/// Runs a mutation, again while the log answers UNAVAILABLE: a server
/// whose last commit another server's append overtook answers that once
/// and reads the stream back (see `srs_log_jetstream`).
async fn mutate(client: &Client, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let response = client.run(query, variables.clone()).await;
        if response.code() == Some("UNAVAILABLE") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return response.data().clone();
    }
}

#[tokio::test]
async fn content_uploaded_through_one_server_plays_through_another_and_is_shredded_for_both() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-content"),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];

    // Without the cluster key file a JetStream log is refused, saying how
    // to make one.
    let lonely = dir.path().join("lonely");
    let (code, _, stderr) = run_srs(
        &[
            "serve",
            "--data",
            lonely.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &env[..2],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--cluster-key-file"), "{stderr}");
    assert!(stderr.contains("head -c 32 /dev/urandom"), "{stderr}");
    // So is a key file that is not a key, or that others may read; in
    // every case nothing is created.
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"not thirty-two bytes").unwrap();
    let open = dir.path().join("open.key");
    std::fs::copy(&key_file, &open).unwrap();
    std::fs::set_permissions(&open, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&short, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    for (file, says) in [(&short, "holds 20 bytes"), (&open, "chmod 600")] {
        let (code, _, stderr) = run_srs(
            &[
                "serve",
                "--data",
                lonely.to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                "--cluster-key-file",
                file.to_str().unwrap(),
            ],
            &env[..2],
        );
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    assert!(
        !lonely.exists(),
        "a refused start created its data directory"
    );

    // ---- node A: a recording and its content -------------------------------
    let data_a = dir.path().join("a");
    let a = Srs::start_with_env(&data_a, &env).await;
    let admin_token = a.admin_token();
    let admin_a = Client::new(&a, Some(&admin_token));
    let site = create_site(&admin_a, "HQ").await;
    record_everyone(&admin_a, &site).await;
    let (server, agent_token) = connect_server(&admin_a, &site, "sr-1").await;
    let agent = Client::new(&a, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let id = started["recordingId"].as_str().unwrap().to_owned();
    let chunks = [payload("first", 200_000), payload("second", 3_000)];
    for (seq, chunk) in chunks.iter().enumerate() {
        assert_eq!(upload(&a, &agent_token, &id, seq as u32, chunk).await, 201);
    }
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": id, "events": suspicious_batch() }),
        )
        .await;
    assert_eq!(recorded["recordSessionEvents"]["accepted"], 4, "{recorded}");
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    // `srs replay` over the stream opens the sealed session data with the
    // cluster's keys and the cluster key file; without the file (a node's
    // data directory holds no key files) it shows it as shredded.
    let recording_stream = format!("recording-{id}");
    let replay = |extra: &[&str]| {
        let args = [
            &[
                "replay",
                "--log-url",
                urls.as_str(),
                "--log-stream",
                "srs-content",
                "--data",
                data_a.to_str().unwrap(),
                "--stream",
            ][..],
            &[recording_stream.as_str()][..],
            extra,
        ]
        .concat();
        let (code, stdout, stderr) = run_srs(&args, &[]);
        assert_eq!(code, Some(0), "{stderr}");
        stdout
    };
    assert!(replay(&["--cluster-key-file", key_file.to_str().unwrap()]).contains("dropbox.com"));
    assert!(!replay(&[]).contains("dropbox.com"));
    let whole = chunks.concat();
    let (status, _, body) = content(&a, &admin_token, &id).await;
    assert_eq!(status, 200);
    assert!(body == whole, "A plays what was uploaded");

    // ---- node B: its own data directory, the same cluster and key ---------
    let data_b = dir.path().join("b");
    let b = Srs::start_with_env(&data_b, &env).await;
    let (status, code, body) = content(&b, &admin_token, &id).await;
    assert_eq!(status, 200, "{code:?}");
    assert!(body == whole, "B plays what was uploaded through A");
    // A playback ticket A issued opens the content on B too (a player
    // behind one address reaching either node).
    let played = admin_a
        .data(
            "mutation($id: ID!) { playRecording(recordingId: $id) { ticketUrl } }",
            json!({ "id": id }),
        )
        .await;
    let ticket_url = played["playRecording"]["ticketUrl"].as_str().unwrap();
    let by_ticket = reqwest::get(b.url(ticket_url)).await.unwrap();
    assert_eq!(by_ticket.status(), 200);
    assert!(
        by_ticket.bytes().await.unwrap() == whole,
        "B plays by A's ticket"
    );
    // An agent's retry through the other node while the first upload is
    // still under way: both take the same chunk at once, both answer it
    // as stored, and the content the log names plays on both.
    let raced = start_recording(&agent, &server, "s-race", "CORP\\ann", &[]).await;
    let raced = raced["recordingId"].as_str().unwrap().to_owned();
    let race_chunks: Vec<Vec<u8>> = (0..8)
        .map(|seq| payload(&format!("race-{seq}"), 50_000))
        .collect();
    let deadline = Instant::now() + SETTLE;
    // The first through B alone, once B knows the recording.
    while upload(&b, &agent_token, &raced, 0, &race_chunks[0]).await != 201 {
        assert!(Instant::now() < deadline, "B never took the first chunk");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (seq, chunk) in race_chunks.iter().enumerate().skip(1) {
        let (on_a, on_b) = tokio::join!(
            upload(&a, &agent_token, &raced, seq as u32, chunk),
            upload(&b, &agent_token, &raced, seq as u32, chunk)
        );
        assert!(
            [200, 201].contains(&on_a) && [200, 201].contains(&on_b),
            "chunk {seq}: A answered {on_a}, B {on_b}"
        );
    }
    let whole_race = race_chunks.concat();
    for node in [&a, &b] {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (status, code, body) = content(node, &admin_token, &raced).await;
            if status == 200 && body.len() == whole_race.len() {
                assert!(body == whole_race, "the raced chunks play as uploaded");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the raced recording answers {status} {code:?} with {} bytes",
                body.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Neither data directory holds a chunk or a key: they are in the cluster.
    for data in [&data_a, &data_b] {
        let held: Vec<PathBuf> = files(&data.join("content"));
        assert!(held.is_empty(), "{held:?}");
    }

    // ---- a backup through B, restored into a data directory of its own ----
    let passphrase_file = dir.path().join("passphrase");
    std::fs::write(&passphrase_file, "a long backup passphrase\n").unwrap();
    let backup = dir.path().join("cluster.srsbak");
    // A node's data directory holds no log, content nor keys: refused
    // offline, with the way that works.
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--data",
            data_a.to_str().unwrap(),
            "--passphrase-file",
            passphrase_file.to_str().unwrap(),
            backup.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--url"), "{stderr}");
    assert!(!backup.exists());
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--url",
            &b.url(""),
            "--token",
            &admin_token,
            "--passphrase-file",
            passphrase_file.to_str().unwrap(),
            "--kdf-memory-mib",
            "8",
            backup.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("10 chunks"), "{stderr}");
    let restored = dir.path().join("restored");
    let (code, _, stderr) = run_srs(
        &[
            "restore",
            backup.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--passphrase-file",
            passphrase_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = run_srs(&["verify", "--data", restored.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let copy = Srs::start(&restored).await;
    for (recording, uploaded) in [(&id, &whole), (&raced, &whole_race)] {
        let (status, code, body) = content(&copy, &admin_token, recording).await;
        assert_eq!(status, 200, "{code:?}");
        assert!(
            body == *uploaded,
            "the restored copy plays what was uploaded"
        );
    }
    assert!(copy.stop().success());

    // ---- deleted through A -------------------------------------------------
    mutate(
        &admin_a,
        "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
        json!({ "id": id }),
    )
    .await;
    let (status, _, _) = content(&a, &admin_token, &id).await;
    assert_eq!(status, 404);
    // B never serves it again: its key is purged from the cluster and its
    // chunks deleted before A answered the deletion.
    let (status, code, body) = content(&b, &admin_token, &id).await;
    assert_ne!(status, 200, "{code:?}");
    assert!(
        !body
            .windows(64)
            .any(|w| w == &chunks[0][..64] || w == &chunks[1][..64]),
        "no content bytes"
    );
    // B answers the recording as deleted (404), like A, as soon as its
    // key ring has seen the key's purge in the cluster (before B's read
    // models need to have followed A's appends).
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, code, _) = content(&b, &admin_token, &id).await;
        if (status, code.as_deref()) == (404, Some("NOT_FOUND")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still answers {status} {code:?} for a recording deleted through A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}
