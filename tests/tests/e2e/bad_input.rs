//! Bad input gets the right code, writes nothing, and the server keeps
//! serving. Also the operational endpoints and the data-directory lock.

use serde_json::json;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

#[tokio::test]
async fn bad_input_gets_the_right_code_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let http = reqwest::Client::new();
    let admin = Client::new(&srs, Some(&srs.admin_token()));

    // Operational endpoints.
    let health = http.get(srs.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(health.headers().contains_key("x-request-id"));
    assert_eq!(
        http.get(srs.url("/readyz")).send().await.unwrap().status(),
        200
    );
    let graphiql = http
        .get(srs.url("/graphql"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(graphiql.contains("GraphiQL"));

    // A second server on the same data directory: a clear message, exit code 2.
    let data_arg = data.to_str().unwrap();
    let (code, _, stderr) = run_srs(
        &["serve", "--data", data_arg, "--listen", "127.0.0.1:0"],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");

    let site = create_site(&admin, "Bad input").await;
    record_everyone(&admin, &site).await;
    let (server, agent_secret) = connect_server(&admin, &site, "rec-x").await;
    let agent = admin.with_token(&agent_secret);
    let recording = start_recording(&agent, &server, "s-bad", "CORP\\eve", &[]).await;
    let recording_id = recording["recordingId"].as_str().unwrap().to_owned();

    // Malformed JSON.
    let response = admin.post_raw(b"{\"query\": ".to_vec()).await;
    assert_eq!(response.status, 400);
    response.expect_code("VALIDATION");
    // Unknown fields and arguments.
    admin
        .run("{ me { name shoeSize } }", json!({}))
        .await
        .expect_code("VALIDATION");
    admin
        .run("{ sites(color: RED) { id } }", json!({}))
        .await
        .expect_code("VALIDATION");
    // Not GraphQL at all.
    admin
        .run("this is not graphql", json!({}))
        .await
        .expect_code("VALIDATION");
    // Bad IDs.
    admin
        .run("{ recording(id: \"not-a-uuid\") { id } }", json!({}))
        .await
        .expect_code("VALIDATION");
    admin
        .run("{ server(id: \"42\") { id } }", json!({}))
        .await
        .expect_code("VALIDATION");
    // An unknown (well-formed) id: null, not an error.
    let absent = admin
        .data(
            "query($id: ID!) { recording(id: $id) { id } }",
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await;
    assert!(absent["recording"].is_null());
    admin
        .run(
            "mutation($id: ID!) { disconnectServer(serverId: $id) { position } }",
            json!({ "id": uuid::Uuid::now_v7().to_string() }),
        )
        .await
        .expect_code("NOT_FOUND");
    // Over-deep query.
    let deep = format!(
        "{{ __schema {{ types {{ {}name{} }} }} }}",
        "fields { type { ofType { ".repeat(6),
        " } } }".repeat(6)
    );
    admin.run(&deep, json!({})).await.expect_code("VALIDATION");
    // Page size over 500.
    admin
        .run("{ recordings(first: 501) { edges { cursor } } }", json!({}))
        .await
        .expect_code("VALIDATION");
    // Oversize batch: VALIDATION, nothing written.
    let batch: Vec<_> = (0..1001).map(|i| event("LOGON", i, json!({}))).collect();
    agent
        .run(
            RECORD_EVENTS,
            json!({ "recordingId": recording_id, "events": batch }),
        )
        .await
        .expect_code("VALIDATION");
    // A bad event in a batch: VALIDATION, the good ones are not written either.
    let mixed = vec![
        event("LOGON", 0, json!({})),
        event("APP_START", 10, json!({})),
    ];
    agent
        .run(
            RECORD_EVENTS,
            json!({ "recordingId": recording_id, "events": mixed }),
        )
        .await
        .expect_code("VALIDATION");
    let count = admin
        .data(
            "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { eventCount } }",
            json!({ "id": recording_id, "at": position(&recording) }),
        )
        .await;
    assert_eq!(count["recording"]["eventCount"], 0);
    // Over-long strings.
    admin
        .run(CREATE_SITE, json!({ "name": "x".repeat(10_000) }))
        .await
        .expect_code("VALIDATION");
    // Oversize body: 413 with a VALIDATION error.
    // The server may answer before reading the rest and close the
    // connection, so the client sees either the 413 or the close. A client
    // of its own: the closed connection must not go back to the pool the
    // later requests reuse (a reused closed connection fails them).
    let huge = reqwest::Client::new()
        .post(srs.url("/graphql"))
        .header("content-type", "application/json")
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await;
    if let Ok(response) = huge {
        assert_eq!(response.status(), 413);
    }
    // Wrong or missing token.
    let wrong = admin.with_token("srs_0000");
    let response = wrong.run("{ me { name } }", json!({})).await;
    assert_eq!(response.status, 401);
    response.expect_code("UNAUTHENTICATED");
    Client::new(&srs, None)
        .run("{ me { name } }", json!({}))
        .await
        .expect_code("UNAUTHENTICATED");
    // A stale atLeast far ahead: TIMEOUT.
    admin
        .run(
            "{ recordings(atLeast: 2000000000) { totalCount } }",
            json!({}),
        )
        .await
        .expect_code("TIMEOUT");

    // Still serving, and the metrics counted it all.
    assert_eq!(
        admin.data("{ me { role } }", json!({})).await["me"]["role"],
        "ADMIN"
    );
    let metrics = http
        .get(srs.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("srs_graphql_requests_total{operation=\"anonymous\",status=\"VALIDATION\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("srs_log_head_position"), "{metrics}");
    assert!(
        metrics.contains("srs_projection_lag{projection=\"catalogue\"}"),
        "{metrics}"
    );
    assert!(srs.stop().success());
}
