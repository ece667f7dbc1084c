//! What a server's agent gets from srs, against the real binary: its
//! configuration (`agentConfig`) for itself and ADMINs only, heartbeats
//! that answer the settings version, the configuration's tag and the count
//! of pending responses, response actions pushed over the `responses`
//! subscription as they are decided, `endRecording` retried without a
//! second end, the chunks of its recordings listed to resume an upload
//! (never a playback), and `lastHeartbeat` kept without writing to the log.

use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const AGENT_CONFIG: &str = "query($server: ID!) { agentConfig(serverId: $server) {
    serverId siteId settingsVersion settings { maxRecordingHours }
    recordingPolicy { id name } detectionPolicy { id name } logged responsePolicy { id name }
    configTag pendingResponseCount } }";

const HEARTBEAT: &str = "mutation($server: ID!) { heartbeat(serverId: $server) {
    position settingsVersion configTag pendingResponseCount } }";

const RESPONSES: &str = "subscription($server: ID!) { responses(serverId: $server) {
    id recordingId serverId action message } }";

const CHUNKS: &str = "query($recording: ID!) { recordingChunks(recordingId: $recording) {
    recordingId contentType chunks { seq size sha256 } storedBytes nextSeq ended } }";

const END: &str = "mutation($id: ID!) { endRecording(recordingId: $id) { position repeated } }";

/// A site recording everyone, logging USB and web browsing, flagging USB
/// as HIGH and locking the session on it.
async fn site_with_policies(admin: &Client) -> String {
    let site = create_site(admin, "Agents").await;
    record_everyone(admin, &site).await;
    let activate = "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }";
    let detection = admin
        .data(
            "mutation($site: ID!) { createEventDetectionPolicy(siteId: $site, input: {
                name: \"USB\", logged: [LOGON, APP_START, WEB_BROWSING, USB_MASS_STORAGE],
                rules: [{type: USB_MASS_STORAGE, severity: HIGH}] }) { policyId } }",
            json!({ "site": site }),
        )
        .await["createEventDetectionPolicy"]["policyId"]
        .clone();
    admin.data(activate, json!({ "id": detection })).await;
    let response = admin
        .data(
            "mutation($site: ID!) { createEventResponsePolicy(siteId: $site, input: {
                name: \"Lock on USB\", rules: [{name: \"usb\", types: [USB_MASS_STORAGE], minSeverity: HIGH,
                actions: [LOCK_SESSION], message: \"Locked by policy\"}] }) { policyId } }",
            json!({ "site": site }),
        )
        .await["createEventResponsePolicy"]["policyId"]
        .clone();
    admin.data(activate, json!({ "id": response })).await;
    site
}

fn recording_id(started: &Value) -> String {
    started["recordingId"].as_str().unwrap().to_owned()
}

/// How many `RecordingPlayed` and `RecordingEnded` facts the log holds
/// about `recording`.
async fn facts(admin: &Client, recording: &str, event_type: &str) -> usize {
    admin
        .data(
            "query($id: ID!, $type: String!) { history(filter: {recordingId: $id, types: [$type]}) { edges { cursor } } }",
            json!({ "id": recording, "type": event_type }),
        )
        .await["history"]["edges"]
        .as_array()
        .unwrap()
        .len()
}

/// Uploads chunk `seq` of `recording` as `token` (the agent).
async fn put_chunk(srs: &Srs, token: &str, recording: &str, seq: u32, body: &[u8]) -> u16 {
    reqwest::Client::new()
        .put(srs.url(&format!("/recordings/{recording}/chunks/{seq}")))
        .bearer_auth(token)
        .header("x-content-sha256", hex::encode(Sha256::digest(body)))
        .body(body.to_vec())
        .send()
        .await
        .expect("PUT chunk")
        .status()
        .as_u16()
}

/// `GET /recordings/{id}/chunks` as `token`: the status and the JSON body.
async fn get_chunks(srs: &Srs, token: &str, recording: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(srs.url(&format!("/recordings/{recording}/chunks")))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET chunks");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_agent_reads_its_configuration_receives_pushed_responses_and_resumes_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = site_with_policies(&admin).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-agent").await;
    let (other_server, other_token) = connect_server(&admin, &site, "sr-other").await;
    let agent = admin.with_token(&agent_token);
    let other_agent = admin.with_token(&other_token);
    let privileged =
        admin.with_token(&issue_token(&admin, "pp", "PRIVILEGED_PLAYER", &[], &[]).await);
    let auditor = admin.with_token(&issue_token(&admin, "aud", "AUDITOR", &[], &[]).await);
    let viewer = admin.with_token(&issue_token(&admin, "view", "VIEWER", &[], &[]).await);
    let of_server = json!({ "server": server });

    // ---- agentConfig: the agent and ADMINs; nobody else ---------------------
    let config = agent.data(AGENT_CONFIG, of_server.clone()).await["agentConfig"].clone();
    assert_eq!(config["serverId"], server.as_str(), "{config}");
    assert_eq!(config["siteId"], site.as_str(), "{config}");
    assert_eq!(config["recordingPolicy"]["id"], RECORD_EVERYONE, "{config}");
    assert_eq!(config["detectionPolicy"]["name"], "USB", "{config}");
    assert_eq!(config["responsePolicy"]["name"], "Lock on USB", "{config}");
    assert_eq!(
        config["logged"],
        json!(["LOGON", "APP_START", "WEB_BROWSING", "USB_MASS_STORAGE"]),
        "{config}"
    );
    assert_eq!(config["pendingResponseCount"], 0, "{config}");
    let tag = config["configTag"].as_str().unwrap().to_owned();
    let as_admin = admin.data(AGENT_CONFIG, of_server.clone()).await["agentConfig"].clone();
    assert_eq!(as_admin, config, "an ADMIN reads the same configuration");
    for (who, client) in [
        ("privileged", &privileged),
        ("auditor", &auditor),
        ("viewer", &viewer),
    ] {
        let refused = client.run(AGENT_CONFIG, of_server.clone()).await;
        assert_eq!(refused.code(), Some("FORBIDDEN"), "{who}: {}", refused.body);
    }
    // Another server's agent may not know this server exists.
    let refused = other_agent.run(AGENT_CONFIG, of_server.clone()).await;
    assert_eq!(refused.code(), Some("NOT_FOUND"), "{}", refused.body);
    // Its own configuration it reads.
    let own = other_agent
        .data(AGENT_CONFIG, json!({ "server": other_server }))
        .await;
    assert_eq!(own["agentConfig"]["serverId"], other_server.as_str());

    // ---- the heartbeat answers what the agent checks ------------------------
    let beat = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_eq!(beat["settingsVersion"], config["settingsVersion"], "{beat}");
    assert_eq!(beat["configTag"], tag.as_str(), "{beat}");
    assert_eq!(beat["pendingResponseCount"], 0, "{beat}");
    admin
        .data(
            "mutation($server: ID!) { updateServerSettings(serverId: $server, settings: {maxRecordingHours: 6}) { position } }",
            of_server.clone(),
        )
        .await;
    let beat = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_ne!(beat["settingsVersion"], config["settingsVersion"], "{beat}");
    assert_ne!(
        beat["configTag"],
        tag.as_str(),
        "a settings change moves the tag"
    );
    let config = agent.data(AGENT_CONFIG, of_server.clone()).await["agentConfig"].clone();
    assert_eq!(config["settings"]["maxRecordingHours"], 6, "{config}");
    assert_eq!(config["configTag"], beat["configTag"], "{config}");
    // A policy change moves it too ("Record everyone without notification").
    let activate = "mutation($id: ID!, $site: ID) { activatePolicy(policyId: $id, siteId: $site) { position } }";
    admin
        .data(
            activate,
            json!({ "id": "00000000-0000-8000-8000-000000000003", "site": site }),
        )
        .await;
    let after_policy = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_ne!(
        after_policy["configTag"], beat["configTag"],
        "{after_policy}"
    );
    record_everyone(&admin, &site).await;

    // ---- responses are pushed as they are decided ---------------------------
    let mut pushed = agent.subscribe(RESPONSES, of_server.clone()).await;
    assert_eq!(pushed.ack["type"], "connection_ack", "{}", pushed.ack);
    let mut spying = other_agent.subscribe(RESPONSES, of_server.clone()).await;
    let message = spying
        .next(Duration::from_secs(15))
        .await
        .expect("an answer");
    let code = match message["type"].as_str() {
        Some("error") => message["payload"][0]["extensions"]["code"].clone(),
        _ => message["payload"]["errors"][0]["extensions"]["code"].clone(),
    };
    assert_eq!(code, "NOT_FOUND", "another server's agent: {message}");
    spying.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let recording = recording_id(&start_recording(&agent, &server, "s-1", "CORP\\kim", &[]).await);
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": suspicious_batch() }),
        )
        .await;
    assert_eq!(
        recorded["recordSessionEvents"]["responses"], 1,
        "{recorded}"
    );
    let response = pushed.next_data(Duration::from_secs(15)).await["responses"].clone();
    assert_eq!(response["recordingId"], recording.as_str(), "{response}");
    assert_eq!(response["serverId"], server.as_str(), "{response}");
    assert_eq!(response["action"], "LOCK_SESSION", "{response}");
    assert_eq!(response["message"], "Locked by policy", "{response}");
    pushed.close().await;

    // ---- the heartbeat counts pending responses ------------------------------
    let beat = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_eq!(beat["pendingResponseCount"], 1, "{beat}");
    let other_beat = other_agent
        .data(HEARTBEAT, json!({ "server": other_server }))
        .await;
    assert_eq!(
        other_beat["heartbeat"]["pendingResponseCount"], 0,
        "another server's responses are not counted: {other_beat}"
    );
    agent
        .data(
            "mutation($id: ID!) { acknowledgeResponse(responseId: $id, outcome: \"locked\") { position } }",
            json!({ "id": response["id"] }),
        )
        .await;
    let beat = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_eq!(beat["pendingResponseCount"], 0, "{beat}");
    // Decided while no socket was open: the next subscription starts with it.
    let second = recording_id(&start_recording(&agent, &server, "s-2", "CORP\\kim", &[]).await);
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": second, "events": suspicious_batch() }),
        )
        .await;
    let beat = agent.data(HEARTBEAT, of_server.clone()).await["heartbeat"].clone();
    assert_eq!(beat["pendingResponseCount"], 1, "{beat}");
    let mut resumed = agent.subscribe(RESPONSES, of_server.clone()).await;
    let waiting = resumed.next_data(Duration::from_secs(15)).await["responses"].clone();
    assert_eq!(waiting["recordingId"], second.as_str(), "{waiting}");
    resumed.close().await;

    // ---- chunks: the agent lists them to resume; listing is no playback -----
    assert_eq!(
        put_chunk(&srs, &agent_token, &recording, 0, b"first chunk").await,
        201
    );
    assert_eq!(
        put_chunk(&srs, &agent_token, &recording, 1, b"second").await,
        201
    );
    let of_recording = json!({ "recording": recording });
    let listed = agent.data(CHUNKS, of_recording.clone()).await["recordingChunks"].clone();
    let seqs: Vec<i64> = listed["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [0, 1], "{listed}");
    assert_eq!(listed["chunks"][0]["size"], 11, "{listed}");
    assert_eq!(listed["storedBytes"], 17, "{listed}");
    assert_eq!(listed["nextSeq"], 2, "{listed}");
    assert_eq!(listed["ended"], false, "{listed}");
    let refused = other_agent.run(CHUNKS, of_recording.clone()).await;
    assert_eq!(refused.code(), Some("NOT_FOUND"), "{}", refused.body);
    let refused = viewer.run(CHUNKS, of_recording.clone()).await;
    assert_eq!(refused.code(), Some("NOT_FOUND"), "{}", refused.body);
    // The same over HTTP, beside the upload route.
    let (status, listing) = get_chunks(&srs, &agent_token, &recording).await;
    assert_eq!(status, 200, "{listing}");
    assert_eq!(listing["nextSeq"], 2, "{listing}");
    assert_eq!(
        listing["chunks"][1]["sha256"], listed["chunks"][1]["sha256"],
        "{listing}"
    );
    let (status, listing) = get_chunks(&srs, &other_token, &recording).await;
    assert_eq!(
        (status, listing["code"].as_str()),
        (404, Some("NOT_FOUND")),
        "{listing}"
    );
    let by_admin = admin.data(CHUNKS, of_recording.clone()).await["recordingChunks"].clone();
    assert_eq!(by_admin["chunks"], listed["chunks"], "{by_admin}");
    assert_eq!(
        facts(&admin, &recording, "RecordingPlayed").await,
        0,
        "listing chunks is not a playback, for the agent or an ADMIN"
    );

    // ---- endRecording retried answers the first end --------------------------
    let first = agent.run(END, json!({ "id": recording })).await;
    assert!(first.body["errors"].is_null(), "{}", first.body);
    let first = first.body["data"]["endRecording"].clone();
    assert_eq!(first["repeated"], false, "{first}");
    let retried = agent.run(END, json!({ "id": recording })).await;
    assert!(retried.body["errors"].is_null(), "{}", retried.body);
    let retried = retried.body["data"]["endRecording"].clone();
    assert_eq!(retried["position"], first["position"], "{retried}");
    assert_eq!(retried["repeated"], true, "{retried}");
    // After more facts on the stream, a retry still answers the first end.
    admin
        .data(
            "mutation($id: ID!) { archiveRecording(recordingId: $id) { position } }",
            json!({ "id": recording }),
        )
        .await;
    let late = agent.data(END, json!({ "id": recording })).await["endRecording"].clone();
    assert_eq!(late["position"], first["position"], "{late}");
    assert_eq!(facts(&admin, &recording, "RecordingEnded").await, 1);
    let listed = agent
        .data(
            "query($recording: ID!, $at: Int) { recordingChunks(recordingId: $recording, atLeast: $at) { ended nextSeq } }",
            json!({ "recording": recording, "at": first["position"] }),
        )
        .await;
    assert_eq!(listed["recordingChunks"]["ended"], true, "{listed}");
    assert!(srs.stop().success());
}

/// The `recordedAt` of the newest event in the log, as the server's clock.
async fn server_now(admin: &Client) -> String {
    let page = admin
        .data(
            "{ history(first: 500) { edges { node { recordedAt } } } }",
            json!({}),
        )
        .await;
    page["history"]["edges"].as_array().unwrap().last().unwrap()["node"]["recordedAt"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn last_heartbeat(admin: &Client, server: &str) -> Value {
    admin
        .data(
            "query($id: ID!) { server(id: $id) { online lastHeartbeat } }",
            json!({ "id": server }),
        )
        .await["server"]
        .clone()
}

/// Every event after `head`.
async fn events_after(admin: &Client, head: i64) -> Vec<Value> {
    admin
        .data(
            "query($from: Int!) { history(filter: {fromPosition: $from}, first: 500) { edges { node { type actor } } } }",
            json!({ "from": head + 1 }),
        )
        .await["history"]["edges"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn last_heartbeat_is_kept_and_heartbeats_do_not_flood_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Beats").await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-beat").await;
    let agent = admin.with_token(&agent_token);
    let before = last_heartbeat(&admin, &server).await;
    assert_eq!(before["online"], true, "{before}");
    assert!(
        before["lastHeartbeat"].is_null(),
        "no heartbeat yet: {before}"
    );

    let connected_at = server_now(&admin).await;
    let start = log_head(&admin).await;
    for _ in 0..60 {
        agent
            .data(
                "mutation($id: ID!) { heartbeat(serverId: $id) { position } }",
                json!({ "id": server }),
            )
            .await;
    }
    let written = events_after(&admin, start).await;
    assert!(
        written.is_empty(),
        "60 heartbeats of an online server wrote {written:?}"
    );
    let shown = last_heartbeat(&admin, &server).await;
    let beat = shown["lastHeartbeat"]
        .as_str()
        .unwrap_or_else(|| panic!("{shown}"));
    // To the second: at or after the server's connection.
    assert!(beat[..19] >= connected_at[..19], "{beat} vs {connected_at}");

    // A restart keeps it (to the minute).
    assert!(srs.stop().success());
    let srs = Srs::start(&data).await;
    let admin = admin.rebase(&srs);
    let kept = last_heartbeat(&admin, &server).await;
    let kept_beat = kept["lastHeartbeat"]
        .as_str()
        .unwrap_or_else(|| panic!("kept across a restart: {kept}"));
    assert_eq!(kept_beat[..16], beat[..16], "{kept_beat} vs {beat}");
    assert!(srs.stop().success());
}
