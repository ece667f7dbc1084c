//! Watching a session live (`recordingEvents` over WebSocket) is audited
//! like any playback, obeys the server's `livePlaybackEnabled` and
//! completes when the session ends.

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
            "query($at: Int!) { auditTrail(filter: {categories: [PLAYBACK]}, atLeast: $at) { edges { node { action target detail } } } }",
            json!({ "at": log_head(&admin).await }),
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

#[tokio::test]
async fn watching_live_completes_once_the_session_ends_after_its_last_event() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Live").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-end").await;
    let agent = admin.with_token(&agent_token);
    let recording = start_recording(&agent, &server, "end-1", "CORP\\ed", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut live = admin
        .subscribe(WATCH, json!({ "recording": recording }))
        .await;
    assert_eq!(live.ack["type"], "connection_ack", "{}", live.ack);
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": [
                event("APP_START", 1_000, json!({ "app": "cmd.exe" })),
                event("APP_END", 2_000, json!({ "app": "cmd.exe" })),
            ] }),
        )
        .await;
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": recording }),
        )
        .await;
    // Every event before the end, then `complete`: a player knows the
    // session is over and stops asking.
    let wait = Duration::from_secs(15);
    for expected in ["APP_START", "APP_END"] {
        let seen = live.next_data(wait).await;
        assert_eq!(seen["recordingEvents"]["type"], expected, "{seen}");
    }
    let last = live.next(wait).await.expect("the end of the feed");
    assert_eq!(last["type"], "complete", "{last}");
    live.close().await;
    assert!(srs.stop().success());
}

const LIVE_RECORDINGS: &str =
    "subscription { liveRecordings { recordingId siteId live position } }";

#[tokio::test]
async fn live_recordings_follow_starts_and_ends_the_caller_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let (site_a, site_b) = (
        create_site(&admin, "A").await,
        create_site(&admin, "B").await,
    );
    record_everyone(&admin, &site_a).await;
    record_everyone(&admin, &site_b).await;
    let (server_a, agent_a) = connect_server(&admin, &site_a, "sr-a").await;
    let (server_b, agent_b) = connect_server(&admin, &site_b, "sr-b").await;
    let (agent_a, agent_b) = (admin.with_token(&agent_a), admin.with_token(&agent_b));
    let granted = admin.with_token(&issue_token(&admin, "aud", "AUDITOR", &[], &[]).await);
    grant_whole_site(&admin, &site_a, "aud").await;
    let ungranted = admin.with_token(&issue_token(&admin, "nog", "AUDITOR", &[], &[]).await);

    let mut as_admin = admin.subscribe(LIVE_RECORDINGS, json!({})).await;
    let mut as_granted = granted.subscribe(LIVE_RECORDINGS, json!({})).await;
    let mut as_ungranted = ungranted.subscribe(LIVE_RECORDINGS, json!({})).await;
    // A site filter the caller does not cover is refused.
    let mut foreign = admin
        .with_token(&issue_token(&admin, "only-b", "AUDITOR", &[&site_b], &[]).await)
        .subscribe(
            "subscription($site: ID) { liveRecordings(siteId: $site) { recordingId } }",
            json!({ "site": site_a }),
        )
        .await;
    let refused = foreign
        .next(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(error_of(&refused).0, Some("FORBIDDEN"), "{refused}");
    // So is a role that sees no recordings.
    let viewer = admin.with_token(&issue_token(&admin, "vic", "VIEWER", &[], &[]).await);
    let mut as_viewer = viewer.subscribe(LIVE_RECORDINGS, json!({})).await;
    let refused = as_viewer
        .next(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(error_of(&refused).0, Some("FORBIDDEN"), "{refused}");

    let wait = Duration::from_secs(20);
    let on_b = start_recording(&agent_b, &server_b, "b-1", "CORP\\bo", &[]).await;
    let on_a = start_recording(&agent_a, &server_a, "a-1", "CORP\\al", &[]).await;
    let (on_a, on_b) = (
        on_a["recordingId"].as_str().unwrap().to_owned(),
        on_b["recordingId"].as_str().unwrap().to_owned(),
    );
    let change = |data: Value| data["liveRecordings"].clone();

    // The admin sees both starts, in log order.
    let first = change(as_admin.next_data(wait).await);
    assert_eq!(
        (first["recordingId"].as_str(), first["live"].as_bool()),
        (Some(on_b.as_str()), Some(true)),
        "{first}"
    );
    let second = change(as_admin.next_data(wait).await);
    assert_eq!(second["recordingId"], on_a.as_str(), "{second}");
    assert_eq!(second["siteId"], site_a.as_str());
    // The auditor granted site A sees A's start only.
    let seen = change(as_granted.next_data(wait).await);
    assert_eq!(
        (seen["recordingId"].as_str(), seen["live"].as_bool()),
        (Some(on_a.as_str()), Some(true)),
        "{seen}"
    );

    agent_a
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": on_a }),
        )
        .await;
    let ended = change(as_admin.next_data(wait).await);
    assert_eq!(
        (ended["recordingId"].as_str(), ended["live"].as_bool()),
        (Some(on_a.as_str()), Some(false)),
        "{ended}"
    );
    let ended = change(as_granted.next_data(wait).await);
    assert_eq!(ended["live"], false, "{ended}");
    assert!(ended["position"].as_i64().unwrap() > seen["position"].as_i64().unwrap());

    // An auditor without a grant learns of none of them.
    assert!(
        as_ungranted.next(Duration::from_secs(1)).await.is_none(),
        "an ungranted auditor saw a recording start or end"
    );
}

#[tokio::test]
async fn a_live_list_followed_from_its_as_of_misses_no_start() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "A").await;
    record_everyone(&admin, &site).await;
    activate_detection_policy(
        &admin,
        &site,
        "name: \"USB\", logged: [LOGON, USB_MASS_STORAGE], rules: [{type: USB_MASS_STORAGE, severity: HIGH}]",
    )
    .await;
    let (server, agent) = connect_server(&admin, &site, "sr-a").await;
    let agent = admin.with_token(&agent);

    let before = start_recording(&agent, &server, "s-1", "CORP\\al", &[]).await;
    let list = admin
        .data(
            "query($at: Int) { recordings(filter: {live: true}, atLeast: $at) { asOf edges { node { id } } } }",
            json!({ "at": before["position"] }),
        )
        .await;
    let as_of = list["recordings"]["asOf"].as_i64().unwrap();
    assert!(as_of >= before["position"].as_i64().unwrap(), "{list}");
    assert_eq!(
        list["recordings"]["edges"][0]["node"]["id"],
        before["recordingId"]
    );
    // A session that starts between the list and the subscriptions, and
    // an event detected in it.
    let between = start_recording(&agent, &server, "s-2", "CORP\\bo", &[]).await;
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": between["recordingId"], "events": suspicious_batch() }),
        )
        .await;
    let mut detections = admin
        .subscribe(
            "subscription($from: Int) { detections(fromPosition: $from) { recordingId severity } }",
            json!({ "from": as_of + 1 }),
        )
        .await;
    let alert = detections.next_data(Duration::from_secs(20)).await;
    assert_eq!(
        (
            &alert["detections"]["recordingId"],
            &alert["detections"]["severity"]
        ),
        (&between["recordingId"], &json!("HIGH")),
        "{alert}"
    );
    detections.close().await;
    let mut changes = admin
        .subscribe(
            "subscription($from: Int) { liveRecordings(fromPosition: $from) { recordingId live } }",
            json!({ "from": as_of + 1 }),
        )
        .await;
    let first = changes.next_data(Duration::from_secs(20)).await;
    assert_eq!(
        (
            &first["liveRecordings"]["recordingId"],
            &first["liveRecordings"]["live"]
        ),
        (&between["recordingId"], &json!(true)),
        "{first}"
    );
    // A negative position is refused.
    let mut refused = admin
        .subscribe(
            "subscription { liveRecordings(fromPosition: -1) { recordingId } }",
            json!({}),
        )
        .await;
    let refused = refused
        .next(Duration::from_secs(10))
        .await
        .expect("an answer");
    assert_eq!(error_of(&refused).0, Some("VALIDATION"), "{refused}");
}
