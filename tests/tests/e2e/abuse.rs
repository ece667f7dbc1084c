//! The abuse suite: requests an attacker sends to stop the server, and
//! sessions that try to outlive their credentials.
//!
//! One server runs the whole suite (starts are expensive on a small
//! machine), with a 1 s `connection_init` timeout, a low per-principal
//! rate so the floods are short, and low per-principal socket bounds. A prober asks `/healthz` every 50 ms
//! throughout: every answer must come within [`HEALTH_BOUND`]. Before the
//! document sizing pass, the first fan-out document pinned a worker for
//! minutes and `/healthz` timed out for everyone; 2 s (not the 100 ms a
//! quiet machine shows) keeps the bound meaningful against that while
//! robust on a loaded two-core machine. Each refusal must likewise come
//! within [`REFUSAL_BOUND`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// The slowest `/healthz` answer accepted while the attacks run.
const HEALTH_BOUND: Duration = Duration::from_secs(2);
/// The slowest refusal of an attack document accepted.
const REFUSAL_BOUND: Duration = Duration::from_secs(5);
/// How soon a socket must close once its credential is revoked (the
/// server re-checks every 250 ms; the rest is margin for a loaded machine).
const REVOKED_CLOSE_BOUND: Duration = Duration::from_secs(2);
/// The `connection_init` timeout this suite's server runs with.
const INIT_TIMEOUT: &str = "1";
/// Requests per second of one principal on this suite's server (burst 40).
const PRINCIPAL_RATE: &str = "20";

/// Asks `/healthz` every 50 ms until stopped; the slowest answer.
struct Prober {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(Duration, usize)>,
}

impl Prober {
    fn start(srs: &Srs) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let url = srs.url("/healthz");
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let (mut slowest, mut probes) = (Duration::ZERO, 0);
            while !flag.load(Ordering::Relaxed) {
                let started = Instant::now();
                let ok = http
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                let took = if ok { started.elapsed() } else { Duration::MAX };
                slowest = slowest.max(took);
                probes += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (slowest, probes)
        });
        Prober { stop, task }
    }

    async fn finish(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap()
    }
}

/// `levels` fragments, each spreading the next `fan` times; the last
/// selects `__typename`: `fan^levels` fields after expansion.
fn fan_out(levels: usize, fan: usize) -> String {
    let mut text = String::from("query { ...F0 }\n");
    for level in 0..levels {
        let body = if level + 1 == levels {
            "__typename".to_owned()
        } else {
            format!("...F{} ", level + 1).repeat(fan)
        };
        text.push_str(&format!("fragment F{level} on Query {{ {body} }}\n"));
    }
    text
}

/// The variant on aliased `__typename`s: each level selects `fan` aliases
/// and spreads the next level `fan` times.
fn aliased_fan_out(levels: usize, fan: usize) -> String {
    let mut text = String::from("query { ...T0 }\n");
    for level in 0..levels {
        let mut body: String = (0..fan).map(|n| format!("t{n}: __typename ")).collect();
        if level + 1 < levels {
            body.push_str(&format!("...T{} ", level + 1).repeat(fan));
        }
        text.push_str(&format!("fragment T{level} on Query {{ {body} }}\n"));
    }
    text
}

fn schema_aliases(n: usize) -> String {
    let fields: String = (0..n)
        .map(|i| format!("s{i}: __schema {{ types {{ name fields {{ name }} }} }} "))
        .collect();
    format!("{{ {fields} }}")
}

/// Sends `query` and checks it is refused with `VALIDATION` in time.
async fn refused(client: &Client, what: &str, query: &str) {
    let started = Instant::now();
    let response = client.run(query, json!({})).await;
    let took = started.elapsed();
    assert_eq!(
        response.code(),
        Some("VALIDATION"),
        "{what}: expected VALIDATION, got HTTP {} {}",
        response.status,
        truncate(&response.body.to_string())
    );
    assert!(took < REFUSAL_BOUND, "{what}: refused only after {took:?}");
    eprintln!(
        "abuse: {what} ({} bytes) refused in {took:?}: {}",
        query.len(),
        response.body["errors"][0]["message"]
    );
}

fn truncate(text: &str) -> &str {
    &text[..text.len().min(400)]
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A raw `graphql-transport-ws` socket that sends nothing.
async fn idle_socket(srs: &Srs) -> Socket {
    let mut request = srs.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    tokio_tungstenite::connect_async(request).await.unwrap().0
}

/// Reads `socket` until it closes (skipping other messages), within
/// `bound`; the close code.
async fn closed_within(socket: &mut Socket, bound: Duration) -> Option<u16> {
    tokio::time::timeout(bound, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    })
    .await
    .expect("the socket closes in time")
}

/// Reads a subscription until it closes (skipping other messages), within
/// `bound`; the close message.
async fn subscription_closed_within(
    subscription: &mut crate::common::client::Subscription,
    bound: Duration,
) -> Value {
    let deadline = Instant::now() + bound;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = subscription
            .next(left)
            .await
            .unwrap_or_else(|| panic!("the subscription was not closed within {bound:?}"));
        if message["type"] == "closed" {
            return message;
        }
    }
}

/// The `extensions.code` of a subscription's first error.
fn subscription_error_code(message: &Value) -> Option<&str> {
    let payload = &message["payload"];
    payload["errors"][0]["extensions"]["code"]
        .as_str()
        .or_else(|| payload[0]["extensions"]["code"].as_str())
}

/// Posts `{ __typename }` with `token` until a 429; (requests sent, the
/// 429's body, its Retry-After).
async fn flood(srs: &Srs, token: Option<&str>, at_most: usize) -> (usize, Value, Option<u64>) {
    let http = reqwest::Client::new();
    let url = srs.url("/graphql");
    flood_with(at_most, || {
        let request = http
            .post(&url)
            .header("content-type", "application/json")
            .body(r#"{"query":"{ __typename }"}"#);
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    })
    .await
}

/// Sends what `request` builds until a 429 (any other answer is fine);
/// (requests sent, the 429's body, its Retry-After).
async fn flood_with(
    at_most: usize,
    request: impl Fn() -> reqwest::RequestBuilder,
) -> (usize, Value, Option<u64>) {
    for sent in 1..=at_most {
        let response = request().send().await.unwrap();
        if response.status() == 429 {
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok());
            let body: Value = response.json().await.unwrap();
            return (sent, body, retry_after);
        }
    }
    panic!("no 429 after {at_most} requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_is_refused_cheaply_and_sessions_end_with_their_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start_with_env(
        &dir.path().join("data"),
        &[
            ("SRS_WS_INIT_TIMEOUT", INIT_TIMEOUT),
            ("SRS_RATE_LIMIT_PRINCIPAL", PRINCIPAL_RATE),
            ("SRS_WS_CONNECTIONS_PER_PRINCIPAL", "3"),
            ("SRS_WS_SUBSCRIPTIONS_PER_PRINCIPAL", "2"),
        ],
    )
    .await;
    let prober = Prober::start(&srs);
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let anonymous = Client::new(&srs, None);

    // ---- documents that cost more than they weigh ---------------------------
    let ten_to_the_ten = fan_out(11, 10);
    assert!(ten_to_the_ten.len() < 2_000, "{}", ten_to_the_ten.len());
    refused(&anonymous, "fragment fan-out 10^10", &ten_to_the_ten).await;
    refused(
        &admin,
        "fragment fan-out 10^10 with a token",
        &ten_to_the_ten,
    )
    .await;
    refused(
        &anonymous,
        "7-level __typename fan-out",
        &aliased_fan_out(7, 10),
    )
    .await;
    refused(&anonymous, "1000 __schema aliases", &schema_aliases(1000)).await;
    refused(
        &admin,
        "1000 __schema aliases with a token",
        &schema_aliases(1000),
    )
    .await;
    let huge = format!("{{ {} }}", "__typename ".repeat(330_000));
    assert!(huge.len() > 3_500_000 && huge.len() < 4 * 1024 * 1024);
    refused(&anonymous, "3.6 MB of 330k selections", &huge).await;
    refused(
        &anonymous,
        "10k selections in 20 KB",
        &format!("{{ {} }}", "x ".repeat(10_000)),
    )
    .await;
    refused(
        &anonymous,
        "brackets nested 20k deep",
        &format!("{{ me(x: {}1{}) }}", "[".repeat(20_000), "]".repeat(20_000)),
    )
    .await;
    refused(
        &anonymous,
        "a fragment cycle",
        "query { ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }",
    )
    .await;
    // The same documents over a WebSocket are refused the same way.
    let mut over_ws = admin.subscribe(&ten_to_the_ten, json!({})).await;
    assert_eq!(over_ws.ack["type"], "connection_ack", "{}", over_ws.ack);
    let message = over_ws
        .next(REFUSAL_BOUND)
        .await
        .expect("an answer over the socket in time");
    assert_eq!(
        subscription_error_code(&message),
        Some("VALIDATION"),
        "{message}"
    );
    over_ws.close().await;
    // What legitimate clients send still works.
    let introspection = anonymous
        .data(
            "{ __schema { queryType { name } types { name fields { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(introspection["__schema"]["queryType"]["name"], "Query");
    assert_eq!(
        admin.data("{ me { role } }", json!({})).await["me"]["role"],
        "ADMIN"
    );

    // ---- sockets end with their credentials ---------------------------------
    let issue = |name: &'static str, role: &'static str| {
        let admin = admin.clone();
        async move {
            let data = admin
                .data(ISSUE_TOKEN, json!({ "name": name, "role": role }))
                .await;
            let token = &data["issueToken"];
            (
                token["tokenId"].as_str().unwrap().to_owned(),
                token["secret"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (ops_id, ops_secret) = issue("ops", "ADMIN").await;
    let (auditor_id, auditor_secret) = issue("auditor", "AUDITOR").await;
    let mut log = admin
        .with_token(&ops_secret)
        .subscribe("subscription { log { position type } }", json!({}))
        .await;
    assert_eq!(log.ack["type"], "connection_ack", "{}", log.ack);
    let mut detections = admin
        .with_token(&auditor_secret)
        .subscribe("subscription { detections { id severity } }", json!({}))
        .await;
    assert_eq!(
        detections.ack["type"], "connection_ack",
        "{}",
        detections.ack
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Live: the log subscription sees a new site.
    let site = create_site(&admin, "Abuse").await;
    let seen = log.next_data(Duration::from_secs(10)).await;
    assert!(seen["log"]["position"].as_i64().is_some(), "{seen}");
    let revoke = "mutation($id: ID!) { revokeToken(id: $id) { position } }";
    admin.data(revoke, json!({ "id": ops_id })).await;
    let revoked_at = Instant::now();
    admin.data(revoke, json!({ "id": auditor_id })).await;
    let closed = subscription_closed_within(&mut log, REVOKED_CLOSE_BOUND).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    let closed = subscription_closed_within(&mut detections, REVOKED_CLOSE_BOUND).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    eprintln!(
        "abuse: revoked sockets closed {:?} after the revocation",
        revoked_at.elapsed()
    );
    // A disconnected server's agent socket closes too.
    let (server_id, agent_secret) = connect_server(&admin, &site, "rec-abuse").await;
    let mut agent = admin
        .with_token(&agent_secret)
        .subscribe("subscription { log { position } }", json!({}))
        .await;
    assert_eq!(agent.ack["type"], "connection_ack", "{}", agent.ack);
    admin
        .data(
            "mutation($id: ID!) { disconnectServer(serverId: $id) { position } }",
            json!({ "id": server_id }),
        )
        .await;
    let closed = subscription_closed_within(&mut agent, REVOKED_CLOSE_BOUND).await;
    assert_eq!(closed["code"], 4403, "{closed}");
    // A socket that never sends connection_init closes after the timeout.
    let opened = Instant::now();
    let mut idle = idle_socket(&srs).await;
    let code = closed_within(&mut idle, Duration::from_secs(10)).await;
    let after = opened.elapsed();
    assert_eq!(code, Some(4408));
    assert!(
        after >= Duration::from_millis(900),
        "closed after {after:?}"
    );
    eprintln!("abuse: an idle socket closed after {after:?}");

    // One principal's sockets (3 here) and subscriptions (2 here) are bounded.
    let (_, watcher) = issue("watcher", "AUDITOR").await;
    let watcher = admin.with_token(&watcher);
    let detections_query = "subscription { detections { id } }";
    let mut held = Vec::new();
    for _ in 0..3 {
        let socket = watcher.subscribe(detections_query, json!({})).await;
        assert_eq!(socket.ack["type"], "connection_ack", "{}", socket.ack);
        held.push(socket);
    }
    // Each socket's `subscribe` is handled by its own task, so which of the
    // three the server counts third is its scheduling's choice: exactly one
    // is refused, and the other two run (no detection arrives meanwhile).
    let answers = futures_util::future::join_all(
        held.iter_mut()
            .map(|socket| socket.next(Duration::from_secs(5))),
    )
    .await;
    let answered: Vec<&Value> = answers.iter().flatten().collect();
    assert_eq!(answered.len(), 1, "{answers:?}");
    assert_eq!(
        subscription_error_code(answered[0]),
        Some("RATE_LIMITED"),
        "{}",
        answered[0]
    );
    let fourth = watcher.subscribe(detections_query, json!({})).await;
    assert_eq!(fourth.ack["type"], "closed", "{}", fourth.ack);
    assert_eq!(fourth.ack["code"], 4429, "{}", fourth.ack);
    for socket in held {
        socket.close().await;
    }

    // ---- rate limits ---------------------------------------------------------
    // Without a token: per client address (burst 100).
    let (sent, body, retry_after) = flood(&srs, None, 400).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    eprintln!("abuse: anonymous requests limited after {sent}");
    // A principal (burst 40 at 20/s): its own bucket.
    let viewer = issue_token(&admin, "viewer", "VIEWER", &[], &[]).await;
    let (sent, body, retry_after) = flood(&srs, Some(&viewer), 400).await;
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body}"
    );
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert!(sent <= 200, "limited only after {sent} requests");
    eprintln!("abuse: one principal's requests limited after {sent}");
    // Content routes count against the same buckets.
    let reader = issue_token(&admin, "reader", "VIEWER", &[], &[]).await;
    let http = reqwest::Client::new();
    let content = srs.url(&format!("/recordings/{}/content", uuid::Uuid::now_v7()));
    let (sent, body, retry_after) =
        flood_with(400, || http.get(&content).bearer_auth(&reader)).await;
    assert_eq!(body["code"], "RATE_LIMITED", "{body}");
    assert!(retry_after.is_some_and(|s| s >= 1), "{retry_after:?}");
    assert!(sent <= 200, "limited only after {sent} requests");
    // Others are not affected.
    assert_eq!(
        admin.data("{ me { role } }", json!({})).await["me"]["role"],
        "ADMIN"
    );

    let (slowest, probes) = prober.finish().await;
    eprintln!("abuse: {probes} /healthz probes, the slowest {slowest:?}");
    assert!(probes > 0);
    assert!(
        slowest < HEALTH_BOUND,
        "/healthz took {slowest:?} during the attacks"
    );
    assert!(srs.stop().success());
}
