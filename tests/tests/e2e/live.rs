//! Watching a session live (`recordingEvents` over WebSocket) is audited
//! like any playback and obeys the server's `livePlaybackEnabled`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const WATCH: &str =
    "subscription($recording: ID!) { recordingEvents(recordingId: $recording) { type offsetMs } }";

/// The `RecordingPlayed` facts of `recording` in the history: (kind, by).
async fn plays(admin: &Client, recording: &str) -> Vec<(String, String)> {
    let page = admin
        .data(
            "query($id: ID!) { history(filter: {recordingId: $id, types: [\"RecordingPlayed\"]}) { edges { node { payload } } } }",
            json!({ "id": recording }),
        )
        .await;
    page["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let fact = &e["node"]["payload"]["RecordingPlayed"];
            (
                fact["kind"].as_str().unwrap().to_owned(),
                fact["by"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn error_of(message: &Value) -> (Option<&str>, String) {
    let error = match message["type"].as_str() {
        Some("error") => &message["payload"][0],
        _ => &message["payload"]["errors"][0],
    };
    (
        error["extensions"]["code"].as_str(),
        error["message"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn watching_live_is_a_playback_fact_and_obeys_the_servers_setting() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Live").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-live").await;
    let agent = admin.with_token(&agent_token);
    let auditor = admin.with_token(&issue_token(&admin, "watcher", "AUDITOR", &[], &[]).await);
    grant_whole_site(&admin, &site, "watcher").await;
    let recording = start_recording(&agent, &server, "live-1", "CORP\\lena", &[]).await
        ["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();

    // ---- watching starts with one LIVE playback fact --------------------------
    let mut live = auditor
        .subscribe(WATCH, json!({ "recording": recording }))
        .await;
    assert_eq!(live.ack["type"], "connection_ack", "{}", live.ack);
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": [event("APP_START", 1_000, json!({ "app": "cmd.exe" }))] }),
        )
        .await;
    let seen = live.next_data(Duration::from_secs(15)).await;
    assert_eq!(seen["recordingEvents"]["type"], "APP_START", "{seen}");
    live.close().await;
    assert_eq!(
        plays(&admin, &recording).await,
        [("LIVE".to_owned(), "watcher".to_owned())]
    );
    let trail = admin
        .data(
            "{ auditTrail(filter: {categories: [PLAYBACK]}) { edges { node { action target detail } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        trail["auditTrail"]["edges"][0]["node"]["target"],
        format!("recording:{recording}").as_str(),
        "{trail}"
    );
    assert!(
        trail["auditTrail"]["edges"][0]["node"]["detail"]
            .as_str()
            .unwrap()
            .contains("Live by watcher"),
        "{trail}"
    );

    // ---- the server says no live playback: refused, and the refusal is a fact -
    admin
        .data(
            "mutation($server: ID!) { updateServerSettings(serverId: $server, settings: {livePlaybackEnabled: false}) { position } }",
            json!({ "server": server }),
        )
        .await;
    let mut refused = auditor
        .subscribe(WATCH, json!({ "recording": recording }))
        .await;
    assert_eq!(refused.ack["type"], "connection_ack", "{}", refused.ack);
    let message = refused
        .next(Duration::from_secs(15))
        .await
        .expect("an answer to the subscription");
    let (code, text) = error_of(&message);
    assert_eq!(code, Some("FORBIDDEN"), "{message}");
    assert!(text.contains("livePlaybackEnabled"), "{message}");
    refused.close().await;
    let denied = admin
        .data(
            "{ history(filter: {types: [\"AccessDenied\", \"AccessDeniedRepeated\"]}) { edges { node { payload } } } }",
            json!({}),
        )
        .await;
    let facts = denied["history"]["edges"].as_array().unwrap();
    assert_eq!(facts.len(), 1, "{denied}");
    assert_eq!(
        facts[0]["node"]["payload"]["AccessDenied"]["target"],
        format!("recording:{recording}").as_str(),
        "{denied}"
    );
    // No second playback fact.
    assert_eq!(plays(&admin, &recording).await.len(), 1);
    assert!(srs.stop().success());
}
