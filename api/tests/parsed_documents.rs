//! The parsed documents `POST /graphql` keeps by their text change nothing
//! a client can see: the same errors every time, the same authorization
//! and scope for each caller. Driven through the HTTP app without a socket.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use srs_api::http::app;
use srs_api::server::{ServeOptions, Server};
use srs_api::state::Limits;
use tower::ServiceExt as _;

const DASHBOARD: &str = "query Dashboard($at: Int) { dashboard(atLeast: $at) { recordingsTotal serversByStatus { status count online } topUsers { name count } pendingArchive pendingDelete } }";

async fn server(dir: &std::path::Path) -> (Server, String) {
    let server = Server::open(ServeOptions {
        data: dir.join("data"),
        listen: "127.0.0.1:0".into(),
        limits: Limits::default(),
        cors_origins: Vec::new(),
        cluster_key_file: None,
        cache_mb: srs_api::server::DEFAULT_CACHE_MB,
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
async fn a_request_that_fails_validation_fails_the_same_way_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let (server, admin) = server(dir.path()).await;
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
}

#[tokio::test]
async fn a_cached_document_is_authorized_and_scoped_for_each_caller() {
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

    // The admin's dashboard shows every site; the same body from a viewer
    // of site B shows site B only.
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
