//! A full disk, injected into the log writer of a real server (no mount
//! needed): writes answer `UNAVAILABLE`, `/readyz` and `srs_log_writable`
//! say why, and writes resume without a restart, in place when the flush
//! succeeds again and through an in-process reopen when the handle is
//! spoiled. Nothing acknowledged is lost; the log verifies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use srs_api::server::{ServeOptions, Server};
use srs_api::state::Limits;
use srs_domain::log::{verify, Faults, LOG_TREE};
use srs_domain::model::DomainEvent;

const CREATE_SITE: &str =
    "mutation($name: String!) { createSite(input: {name: $name}) { position siteId } }";

struct Running {
    base: String,
    token: String,
    http: reqwest::Client,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), srs_api::server::ServeError>>,
}

async fn start(data: &std::path::Path, faults: &Arc<Faults>) -> Running {
    let server = Server::open_with_faults(
        ServeOptions {
            data: data.to_path_buf(),
            listen: "127.0.0.1:0".into(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
            cluster_key_file: None,
            cache_mb: srs_api::server::DEFAULT_CACHE_MB,
        },
        faults.clone(),
    )
    .await
    .expect("open a server");
    let token = server
        .bootstrap_secret()
        .expect("an admin token")
        .to_owned();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    Running {
        base,
        token,
        http: reqwest::Client::new(),
        stop,
        task,
    }
}

impl Running {
    async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.graphql_as(&self.token, query, variables).await
    }

    async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.http
            .post(format!("{}/graphql", self.base))
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("POST /graphql")
            .json()
            .await
            .expect("a JSON answer")
    }

    async fn create_site(&self, name: &str) -> Value {
        self.graphql(CREATE_SITE, json!({ "name": name })).await
    }

    /// A recording of a new server on the site `created` made, and the
    /// server's agent token (which uploads its content).
    async fn recording(&self, created: &Value) -> (String, String) {
        let site = created["data"]["createSite"]["siteId"].as_str().unwrap();
        let policy = self
            .graphql(
                "mutation($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }",
                json!({ "id": "00000000-0000-8000-8000-000000000002", "site": site }),
            )
            .await;
        assert!(policy["errors"].is_null(), "{policy}");
        let connected = self
            .graphql(
                "mutation($site: ID!) { connectServer(input: {siteId: $site, name: \"sr-1\", host: \"rec.example\", deployment: ON_PREMISES, version: \"2407\"}) { serverId agentToken } }",
                json!({ "site": site }),
            )
            .await;
        let server = connected["data"]["connectServer"]["serverId"]
            .as_str()
            .unwrap_or_else(|| panic!("{connected}"));
        let agent = connected["data"]["connectServer"]["agentToken"]
            .as_str()
            .unwrap();
        let started = self
            .graphql_as(
                agent,
                "mutation($server: ID!) { startRecording(input: {serverId: $server, sessionId: \"s-1\", session: {user: \"ann\", host: \"vda-01\", clientIp: \"10.0.0.5\", clientName: \"laptop-1\"}}) { recordingId recorded } }",
                json!({ "server": server }),
            )
            .await;
        assert_eq!(
            started["data"]["startRecording"]["recorded"], true,
            "{started}"
        );
        let id = started["data"]["startRecording"]["recordingId"]
            .as_str()
            .unwrap()
            .to_owned();
        (id, agent.to_owned())
    }

    async fn put_chunk(&self, agent: &str, recording: &str, body: &[u8]) -> (u16, Value) {
        use sha2::Digest as _;
        let response = self
            .http
            .put(format!("{}/recordings/{recording}/chunks/0", self.base))
            .bearer_auth(agent)
            .header("x-content-sha256", hex::encode(sha2::Sha256::digest(body)))
            .body(body.to_vec())
            .send()
            .await
            .expect("PUT");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, String) {
        // A pooled connection that the server closed as the client reused
        // it fails to send; an idempotent GET is retried once, as browsers
        // do.
        let mut retried = false;
        let response = loop {
            match self.http.get(format!("{}{path}", self.base)).send().await {
                Ok(response) => break response,
                Err(e) if !retried && e.is_request() => retried = true,
                Err(e) => panic!("GET {path}: {e:?}"),
            }
        };
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// `GET path`, or the transport error (a connection the server drops
    /// while it reopens its database).
    async fn try_get(&self, path: &str) -> Result<u16, reqwest::Error> {
        let response = self.http.get(format!("{}{path}", self.base)).send().await?;
        Ok(response.status().as_u16())
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // While the database is reopened the socket stays bound but
            // unanswered, or a connection is dropped: bound each try and
            // try again.
            let answer =
                tokio::time::timeout(Duration::from_secs(5), self.try_get("/readyz")).await;
            if let Ok(Ok(200)) = answer {
                return;
            }
            assert!(Instant::now() < deadline, "never ready again: {answer:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn site_names(&self, at: u64) -> Vec<String> {
        let data = self
            .graphql(
                "query($at: Int) { sites(atLeast: $at) { name } }",
                json!({ "at": at }),
            )
            .await;
        data["data"]["sites"]
            .as_array()
            .unwrap_or_else(|| panic!("{data}"))
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_owned())
            .collect()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.task
            .await
            .expect("the server task")
            .expect("a clean stop");
    }
}

fn code(answer: &Value) -> Option<&str> {
    answer["errors"][0]["extensions"]["code"].as_str()
}

fn position(answer: &Value) -> u64 {
    answer["data"]["createSite"]["position"]
        .as_u64()
        .unwrap_or_else(|| panic!("{answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_disk_answers_unavailable_and_heals_in_place_and_by_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let faults = Arc::new(Faults::default());
    let srs = start(&data, &faults).await;
    let first = srs.create_site("before").await;
    let mut last = position(&first);
    let (recording, agent) = srs.recording(&first).await;
    let chunk = b"the screen, second by second".to_vec();

    // ---- the disk is full: flushes fail, and so does the probe -------------
    faults.fail_probes(true);
    faults.fail_next_flushes(u64::MAX);
    // An upload whose event is applied but not flushed: 503 UNAVAILABLE,
    // and its file stays, since the event may be stored once the log heals.
    let (status, body) = srs.put_chunk(&agent, &recording, &chunk).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE", "{body}");
    // Later writes are refused at once, before anything is applied.
    let refused = srs.create_site("refused-1").await;
    assert_eq!(code(&refused), Some("UNAVAILABLE"), "{refused}");
    let message = refused["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("retry later"), "{message}");
    let again = srs.create_site("refused-2").await;
    assert_eq!(code(&again), Some("UNAVAILABLE"), "{again}");
    let (status, body) = srs.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["writable"], false);
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .contains("log not writable")
            && body["reason"].as_str().unwrap().contains("No space left"),
        "{body}"
    );
    let (_, metrics) = srs.get("/metrics").await;
    assert!(metrics.contains("srs_log_writable 0"), "{metrics}");
    // Reads go on.
    assert!(srs.site_names(last).await.contains(&"before".to_owned()));

    // ---- the flush succeeds again: healed in place ---------------------------
    faults.fail_next_flushes(0);
    srs.wait_ready().await;
    let (_, metrics) = srs.get("/metrics").await;
    assert!(metrics.contains("srs_log_writable 1"), "{metrics}");
    let after = srs.create_site("after-in-place").await;
    last = position(&after);
    let names = srs.site_names(last).await;
    assert!(names.contains(&"before".to_owned()), "{names:?}");
    assert!(names.contains(&"after-in-place".to_owned()), "{names:?}");
    // Refused before being applied: not stored.
    assert!(!names.contains(&"refused-1".to_owned()), "{names:?}");
    // The upload's event was applied before the failed flush: the flush that
    // succeeded made it durable, so the retried upload is answered from the
    // log (200) and the content plays.
    let (status, body) = srs.put_chunk(&agent, &recording, &chunk).await;
    assert_eq!(status, 200, "{body}");
    let played = srs
        .http
        .get(format!("{}/recordings/{recording}/content", srs.base))
        .bearer_auth(&srs.token)
        .send()
        .await
        .unwrap();
    assert_eq!(played.status().as_u16(), 200);
    assert_eq!(played.bytes().await.unwrap().as_ref(), chunk.as_slice());

    // ---- the disk takes writes but the handle does not: a reopen ------------
    faults.fail_probes(false);
    faults.fail_next_flushes(2);
    let refused = srs.create_site("refused-3").await;
    assert_eq!(code(&refused), Some("UNAVAILABLE"), "{refused}");
    srs.wait_ready().await;
    let after = srs.create_site("after-reopen").await;
    last = position(&after);
    let names = srs.site_names(last).await;
    for name in ["before", "after-in-place", "after-reopen"] {
        assert!(names.contains(&name.to_owned()), "{name}: {names:?}");
    }
    // A reopened server counts from zero: the counters show it happened
    // (seven GraphQL requests were answered before it).
    let (_, metrics) = srs.get("/metrics").await;
    let answered: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("srs_http_requests_total{route=\"/graphql\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert!(answered <= 3, "the server was not reopened: {metrics}");
    srs.stop().await;

    // Gapless and intact on disk.
    // The stopped server's threads release their handles as they end.
    let mut tries = 0;
    let db = loop {
        match srs_domain::log::open_db(&data, 16 << 20) {
            Err(srs_domain::log::LogError::Locked { .. }) if tries < 100 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            opened => break opened.unwrap(),
        }
    };
    let tree = db.open_tree(LOG_TREE).unwrap();
    let report = verify::<DomainEvent>(&tree, 1, |_| {}).unwrap();
    assert!(report.is_intact(), "{:?}", report.breach);
    assert!(report.last.position >= last);
}
