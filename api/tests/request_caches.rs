//! The per-request caches of `POST /graphql` (parsed and validated
//! documents, dashboard figures) change nothing a client can see: the same
//! answers, the same errors, the same authorization, read-your-writes.
//! Driven through the HTTP app without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use srs_api::http::app;
use srs_api::server::{ServeOptions, Server};
use srs_api::state::Limits;
use srs_domain::log::EventStore as _;
use tower::ServiceExt as _;

/// The tests here run one at a time: whether an answer may be kept is read
/// off a process-wide count of read-model changes, which another test's
/// writes would move in between (costing a kept answer, which these tests
/// assert on).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const DASHBOARD: &str = "query Dashboard($at: Int) { dashboard(atLeast: $at) { recordingsTotal serversByStatus { status count online } topUsers { name count } pendingArchive pendingDelete } }";

async fn server(dir: &std::path::Path) -> (Server, String) {
    let server = Server::open(ServeOptions {
        data: dir.join("data"),
        listen: "127.0.0.1:0".into(),
        limits: Limits::default(),
        cors_origins: Vec::new(),
    })
    .await
    .expect("open a server");
    let secret = server
        .bootstrap_secret()
        .expect("an admin token")
        .to_owned();
    (server, secret)
}

/// Posts `body` as it is; returns the status and the JSON answer.
async fn post_raw(app: &Router, token: &str, body: String) -> (StatusCode, Value) {
    let response = app
        .clone()
        .oneshot(
            Request::post("/graphql")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn post(app: &Router, token: &str, query: &str, variables: Value) -> Value {
    post_raw(
        app,
        token,
        json!({ "query": query, "variables": variables }).to_string(),
    )
    .await
    .1
}

fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {answer}"))
}

async fn create_site(app: &Router, token: &str, name: &str) -> String {
    let answer = post(
        app,
        token,
        "mutation($name: String!) { createSite(input: {name: $name}) { siteId } }",
        json!({ "name": name }),
    )
    .await;
    answer["data"]["createSite"]["siteId"]
        .as_str()
        .unwrap_or_else(|| panic!("no site in {answer}"))
        .to_owned()
}

/// Connects a server; returns the mutation's position and the agent token.
async fn connect_server(app: &Router, token: &str, site: &str, name: &str) -> (i64, String) {
    let answer = post(
        app,
        token,
        "mutation($siteId: ID!, $name: String!) { connectServer(input: {siteId: $siteId, name: $name, host: \"rec.example\", deployment: ON_PREMISES, version: \"2407\"}) { position agentToken } }",
        json!({ "siteId": site, "name": name }),
    )
    .await;
    position_and(&answer, "connectServer", "agentToken")
}

async fn issue_token(app: &Router, token: &str, role: &str, sites: &[&str]) -> (i64, String) {
    let answer = post(
        app,
        token,
        "mutation($role: Role!, $siteIds: [ID!]) { issueToken(input: {name: \"someone\", role: $role, siteIds: $siteIds}) { position secret } }",
        json!({ "role": role, "siteIds": sites }),
    )
    .await;
    position_and(&answer, "issueToken", "secret")
}

/// A mutation payload's position and one of its string fields.
fn position_and(answer: &Value, mutation: &str, field: &str) -> (i64, String) {
    let payload = &answer["data"][mutation];
    (
        payload["position"]
            .as_i64()
            .unwrap_or_else(|| panic!("no position in {answer}")),
        payload[field]
            .as_str()
            .unwrap_or_else(|| panic!("no {field} in {answer}"))
            .to_owned(),
    )
}

fn online(answer: &Value) -> i64 {
    answer["data"]["dashboard"]["serversByStatus"]
        .as_array()
        .unwrap_or_else(|| panic!("no dashboard in {answer}"))
        .iter()
        .filter(|s| s["status"] == "CONNECTED")
        .map(|s| s["online"].as_i64().unwrap())
        .sum()
}

#[tokio::test]
async fn a_repeated_request_answers_as_the_first_and_skips_the_full_validation() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
    let documents = server.state().schemas().documents.clone();
    let app = app(server.state().clone());

    let first = post(&app, &admin, DASHBOARD, json!({})).await;
    assert!(first["errors"].is_null(), "{first}");
    assert_eq!(documents.validated_len(), 1);
    let second = post(&app, &admin, DASHBOARD, json!({})).await;
    assert_eq!(first, second);
    assert_eq!(documents.validated_len(), 1);

    // The same text with other variables is another body: validated on its own.
    let third = post(&app, &admin, DASHBOARD, json!({ "at": 1 })).await;
    assert!(third["errors"].is_null(), "{third}");
    assert_eq!(documents.validated_len(), 2);
}

#[tokio::test]
async fn a_request_that_fails_validation_fails_the_same_way_every_time() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
    let documents = server.state().schemas().documents.clone();
    let app = app(server.state().clone());

    let unknown_field = "{ me { name shoeSize } }";
    // Deeper than `Limits::max_depth` (16).
    let deep = format!(
        "{{ recordings {{ edges {{ node {{ {} id {} }} }} }} }}",
        "site { servers { ".repeat(8),
        "} } ".repeat(8)
    );
    let ten = "query Page($n: Int) { recordings(first: $n) { totalCount } }";
    for _ in 0..3 {
        let answer = post(&app, &admin, unknown_field, json!({})).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
        assert!(answer["data"].is_null());
        let answer = post(&app, &admin, &deep, json!({})).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
        // A variable of the wrong type, after the same text passed with a right one.
        let good = post(&app, &admin, ten, json!({ "n": 10 })).await;
        assert!(good["errors"].is_null(), "{good}");
        let bad = post(&app, &admin, ten, json!({ "n": "ten" })).await;
        assert_eq!(code(&bad), "VALIDATION", "{bad}");
        // Not GraphQL at all.
        let answer = post(&app, &admin, "this is not graphql", json!({})).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
    }
    // Only the good page was ever marked valid.
    assert_eq!(documents.validated_len(), 1);
}

#[tokio::test]
async fn a_cached_document_is_authorized_and_scoped_for_each_caller() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
    let app = app(server.state().clone());

    let a = create_site(&app, &admin, "A").await;
    let b = create_site(&app, &admin, "B").await;
    connect_server(&app, &admin, &a, "rec-a1").await;
    connect_server(&app, &admin, &a, "rec-a2").await;
    let (_, agent) = connect_server(&app, &admin, &b, "rec-b1").await;
    let (at, viewer_b) = issue_token(&app, &admin, "VIEWER", &[&b]).await;
    let vars = json!({ "at": at });

    // The admin's dashboard is computed and kept; the same body from a
    // viewer of site B shows site B only.
    let all = post(&app, &admin, DASHBOARD, vars.clone()).await;
    assert_eq!(online(&all), 3, "{all}");
    let again = post(&app, &admin, DASHBOARD, vars.clone()).await;
    assert_eq!(all, again);
    let only_b = post(&app, &viewer_b, DASHBOARD, vars.clone()).await;
    assert_eq!(online(&only_b), 1, "{only_b}");

    // An agent may not read dashboards, cached document or not.
    let refused = post(&app, &agent, DASHBOARD, vars.clone()).await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert!(refused["data"].is_null());

    // No token: UNAUTHENTICATED, no token that is not valid either.
    let (status, answer) = post_raw(
        &app,
        "srs_0000",
        json!({ "query": DASHBOARD, "variables": vars }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code(&answer), "UNAUTHENTICATED");
}

#[tokio::test]
async fn kept_dashboard_figures_follow_every_write() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
    let core = server.state().core().clone();
    let app = app(server.state().clone());

    let site = create_site(&app, &admin, "A").await;
    let (at, _) = connect_server(&app, &admin, &site, "rec-1").await;
    let first = post(&app, &admin, DASHBOARD, json!({ "at": at })).await;
    assert_eq!(online(&first), 1, "{first}");
    assert!(!core.dashboards.is_empty());

    for n in 2..=4 {
        // The same request right after a write sees the write (atLeast),
        // though the figures before it were kept.
        let (at, _) = connect_server(&app, &admin, &site, &format!("rec-{n}")).await;
        let answer = post(&app, &admin, DASHBOARD, json!({ "at": at })).await;
        assert_eq!(online(&answer), n, "{answer}");
        let again = post(&app, &admin, DASHBOARD, json!({ "at": at })).await;
        assert_eq!(answer, again);
    }

    // The figures equal those computed without any cache.
    let fresh = core
        .reads
        .dashboard()
        .unwrap()
        .view(&srs_projections::models::dashboard::DashboardQuery {
            sites: srs_projections::models::dashboard::SiteScope::All,
            from: None,
            to: None,
            now: core.service.now(),
            top: 10,
            sees_restricted: true,
        })
        .unwrap();
    let kept = core
        .dashboards
        .view(
            &core.reads,
            &srs_projections::models::dashboard::DashboardQuery {
                sites: srs_projections::models::dashboard::SiteScope::All,
                from: None,
                to: None,
                now: core.service.now(),
                top: 10,
                sees_restricted: true,
            },
        )
        .unwrap();
    assert_eq!(fresh, kept);
}

const PAGE: &str =
    "query Page { recordings(first: 10) { totalCount edges { node { id user restricted } } } }";

fn total(answer: &Value) -> i64 {
    answer["data"]["recordings"]["totalCount"]
        .as_i64()
        .unwrap_or_else(|| panic!("no recordings in {answer}"))
}

/// Runs `mutation` (the payload's field name) and returns its position.
async fn written(app: &Router, token: &str, query: &str, variables: Value, mutation: &str) -> i64 {
    let answer = post(app, token, query, variables).await;
    answer["data"][mutation]["position"]
        .as_i64()
        .unwrap_or_else(|| panic!("{mutation} wrote nothing: {answer}"))
}

/// Starts a recording as `agent`; returns its position and id.
async fn start_recording(app: &Router, agent: &str, server: &str, session: &str) -> (i64, String) {
    let answer = post(
        app,
        agent,
        "mutation($server: ID!, $session: String!) { startRecording(input: {serverId: $server, sessionId: $session, session: {user: \"CORP\\\\a\", host: \"vda\"}}) { position recordingId recorded } }",
        json!({ "server": server, "session": session }),
    )
    .await;
    assert_eq!(
        answer["data"]["startRecording"]["recorded"], true,
        "{answer}"
    );
    position_and(&answer, "startRecording", "recordingId")
}

#[tokio::test]
async fn kept_answers_follow_writes_restrictions_and_callers() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
    let core = server.state().core().clone();
    let answers = server.state().schemas().answers.clone();
    let app = app(server.state().clone());
    let caught_up = |at: i64| {
        let core = core.clone();
        async move {
            core.reads
                .wait_for(
                    srs_projections::Which::All,
                    at as u64,
                    std::time::Duration::from_secs(10),
                )
                .await
                .unwrap()
        }
    };

    let site = create_site(&app, &admin, "A").await;
    let connected = post(
        &app,
        &admin,
        "mutation($siteId: ID!) { connectServer(input: {siteId: $siteId, name: \"rec\", host: \"rec.example\", deployment: ON_PREMISES, version: \"2407\"}) { position serverId agentToken } }",
        json!({ "siteId": site }),
    )
    .await;
    let (_, agent) = position_and(&connected, "connectServer", "agentToken");
    let (_, server_id) = position_and(&connected, "connectServer", "serverId");
    let (_, auditor) = issue_token(&app, &admin, "AUDITOR", &[]).await;
    // An auditor sees what a permission grants: here the whole site.
    written(
        &app,
        &admin,
        "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"someone\", scope: {wholeSite: true}}) { position } }",
        json!({ "site": site }),
        "grantPlaybackPermission",
    )
    .await;
    // The built-in "record everyone" policy (a new site records none).
    let activated = post(
        &app,
        &admin,
        "mutation($site: ID) { activatePolicy(policyId: \"00000000-0000-8000-8000-000000000002\", siteId: $site) { position } }",
        json!({ "site": site }),
    )
    .await;
    assert!(activated["errors"].is_null(), "{activated}");
    let (at, first) = start_recording(&app, &agent, &server_id, "s-1").await;
    caught_up(at).await;

    // Asked twice, answered the same, and the answer is kept.
    let before = post(&app, &auditor, PAGE, json!({})).await;
    assert_eq!(total(&before), 1, "{before}");
    assert_eq!(post(&app, &auditor, PAGE, json!({})).await, before);
    assert!(!answers.is_empty());

    // The same body after a write sees the write once the read models
    // have it, though the answer before it was kept.
    let (at, _) = start_recording(&app, &agent, &server_id, "s-2").await;
    caught_up(at).await;
    assert_eq!(total(&post(&app, &auditor, PAGE, json!({})).await), 2);

    // A restriction (of an ended recording) hides it from the auditor at
    // once; the admin, asking with the same body, still sees both.
    let ended = post(
        &app,
        &agent,
        "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
        json!({ "id": first }),
    )
    .await;
    assert!(ended["errors"].is_null(), "{ended}");
    let at = written(
        &app,
        &admin,
        "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"legal hold\") { position } }",
        json!({ "id": first }),
        "restrictRecording",
    )
    .await;
    caught_up(at).await;
    let hidden = post(&app, &auditor, PAGE, json!({})).await;
    assert_eq!(total(&hidden), 1, "{hidden}");
    assert_ne!(
        hidden["data"]["recordings"]["edges"][0]["node"]["id"],
        first
    );
    assert_eq!(total(&post(&app, &admin, PAGE, json!({})).await), 2);

    // Every play is answered with its own fact, never a kept answer: the
    // same playback body from two callers names two facts; from the same
    // caller within the minute it names the same one (one fact per player,
    // recording and minute).
    let play = "mutation($id: ID!) { playRecording(recordingId: $id) { position } }";
    let played = |answer: Value| {
        answer["data"]["playRecording"]["position"]
            .as_i64()
            .unwrap_or_else(|| panic!("not played: {answer}"))
    };
    let (_, privileged) = issue_token(&app, &admin, "PRIVILEGED_PLAYER", &[]).await;
    let one = played(post(&app, &admin, play, json!({ "id": first })).await);
    let two = played(post(&app, &privileged, play, json!({ "id": first })).await);
    assert!(two > one, "{one} then {two}");
    let again = played(post(&app, &admin, play, json!({ "id": first })).await);
    assert!(again == one || again > two, "{one}, {two}, then {again}");

    // A denial is never kept: each one is refused and recorded, one fact
    // per request however many of its fields were refused.
    let head = core.store.head().position;
    for n in 1..=2 {
        let refused = post(&app, &agent, PAGE, json!({})).await;
        assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
        assert_eq!(core.store.head().position, head + n);
    }
    let twice = "query Twice { a: recordings(first: 1) { totalCount } b: recordings(first: 1) { totalCount } }";
    let refused = post(&app, &agent, twice, json!({})).await;
    assert_eq!(
        refused["errors"].as_array().map(Vec::len),
        Some(2),
        "{refused}"
    );
    assert_eq!(core.store.head().position, head + 3);

    // A revoked token gets nothing, though its answer was kept.
    let issued = post(
        &app,
        &admin,
        // Named as the holder of the whole-site permission above.
        "mutation { issueToken(input: {name: \"someone\", role: AUDITOR}) { tokenId secret } }",
        json!({}),
    )
    .await;
    let secret = issued["data"]["issueToken"]["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("no secret in {issued}"))
        .to_owned();
    let token_id = issued["data"]["issueToken"]["tokenId"].clone();
    assert_eq!(total(&post(&app, &secret, PAGE, json!({})).await), 1);
    assert_eq!(total(&post(&app, &secret, PAGE, json!({})).await), 1);
    let at = written(
        &app,
        &admin,
        "mutation($id: ID!) { revokeToken(id: $id) { position } }",
        json!({ "id": token_id }),
        "revokeToken",
    )
    .await;
    caught_up(at).await;
    let (status, answer) = post_raw(
        &app,
        &secret,
        json!({ "query": PAGE, "variables": {} }).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(code(&answer), "UNAUTHENTICATED");
}
