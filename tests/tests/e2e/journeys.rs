//! The journeys of issue 5 on one server: admin, agent, auditor, live
//! detections, then a restart on the same data.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// What the restart must not change, read as the admin.
// Every root field waits for `$at`: root fields resolve side by side, so an
// `atLeast` on one does not hold back the others.
const SNAPSHOT: &str = "query($siteId: ID!, $at: Int) {
  recordings(filter: {siteId: $siteId}, atLeast: $at) { totalCount edges { node { id user mode restricted eventCount comments { text } } } }
  policies(siteId: $siteId, atLeast: $at) { recording { active { id } } eventDetection { active { id } } eventResponse { active { id } } }
  retentionPolicy(siteId: $siteId, atLeast: $at) { archiveAfterDays deleteAfterDays runAt }
  servers(siteId: $siteId, atLeast: $at) { id name settings { maxFileSizeMb } }
  dashboard(siteId: $siteId, atLeast: $at) { recordingsTotal detectionsTotal restrictedCount topUsers { name count } }
}";

#[tokio::test]
async fn admin_agent_auditor_live_and_restart_journeys() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;

    // First start: the admin token is printed once and kept in admin.token (0600).
    let admin_secret = srs.admin_token();
    assert_eq!(
        srs.printed_admin_token.as_deref(),
        Some(admin_secret.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin.token"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let admin = Client::new(&srs, Some(&admin_secret));
    assert_eq!(
        admin.data("{ me { name role } }", json!({})).await["me"]["role"],
        "ADMIN"
    );

    // ---- admin journey -----------------------------------------------------
    let site = create_site(&admin, "Headquarters").await;
    let (server, agent_secret) = connect_server(&admin, &site, "rec-1").await;

    let server_view = admin
        .data(
            "query($id: ID!) { server(id: $id, atLeast: 0) { settingsVersion status } }",
            json!({ "id": server }),
        )
        .await;
    let settings_version = server_view["server"]["settingsVersion"].as_i64().unwrap();
    let update = "mutation($id: ID!, $v: Int) {
      updateServerSettings(serverId: $id, settings: {maxFileSizeMb: 100, livePlaybackEnabled: true}, expectedVersion: $v) {
        position server { settings { maxFileSizeMb livePlaybackEnabled } settingsVersion }
      }
    }";
    let updated = admin
        .data(update, json!({ "id": server, "v": settings_version }))
        .await;
    assert_eq!(
        updated["updateServerSettings"]["server"]["settings"]["maxFileSizeMb"],
        100
    );
    // The same expected version again is stale now.
    admin
        .run(update, json!({ "id": server, "v": settings_version }))
        .await
        .expect_code("CONFLICT");
    // Out of range is VALIDATION.
    admin
        .run(
            "mutation($id: ID!) { updateServerSettings(serverId: $id, settings: {maxFileSizeMb: 5000}) { position } }",
            json!({ "id": server }),
        )
        .await
        .expect_code("VALIDATION");

    let recording_policy = admin
        .data(
            "mutation($site: ID!) { createRecordingPolicy(siteId: $site, input: {
                name: \"Finance on screen\", fallback: RECORD_EVENTS_ONLY,
                rules: [{name: \"finance\", action: RECORD_SCREEN_AND_EVENTS, notify: true, groups: [\"FINANCE\"]}]
             }) { position policyId } }",
            json!({ "site": site }),
        )
        .await["createRecordingPolicy"]["policyId"]
        .clone();
    let detection_policy = admin
        .data(
            "mutation($site: ID!) { createEventDetectionPolicy(siteId: $site, input: {
                name: \"Exfiltration\",
                logged: [LOGON, APP_START, WEB_BROWSING, USB_MASS_STORAGE, FILE_CREATE],
                rules: [{type: USB_MASS_STORAGE, severity: HIGH},
                        {type: WEB_BROWSING, severity: MEDIUM, patterns: [\"*dropbox.com\"]}]
             }) { position policyId } }",
            json!({ "site": site }),
        )
        .await["createEventDetectionPolicy"]["policyId"]
        .clone();
    let activate =
        "mutation($id: ID!) { activatePolicy(policyId: $id) { position policy { id name } } }";
    for policy in [&recording_policy, &detection_policy] {
        admin.data(activate, json!({ "id": policy })).await;
    }
    // Response rules may only trigger on types the active detection policy logs.
    let response_policy = admin
        .data(
            "mutation($site: ID!) { createEventResponsePolicy(siteId: $site, input: {
                name: \"Lock on USB\",
                rules: [{name: \"usb\", types: [USB_MASS_STORAGE], minSeverity: HIGH,
                         actions: [LOCK_SESSION, EMAIL_ALERT], recipients: [\"soc@example.com\"], message: \"Locked\"}]
             }) { position policyId } }",
            json!({ "site": site }),
        )
        .await["createEventResponsePolicy"]["policyId"]
        .clone();
    admin.data(activate, json!({ "id": response_policy })).await;
    let grant = admin
        .data(
            "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"auditor-1\", scope: {hosts: [\"vda-01\"]}}) {
                position permissionId permission { principal scope { hosts } } } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(
        grant["grantPlaybackPermission"]["permission"]["principal"],
        "auditor-1"
    );
    let retention = admin
        .data(
            "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: {archiveAfterDays: 30, deleteAfterDays: 365, runAt: \"03:00\", excludeRestricted: true}) {
                position retentionPolicy { archiveAfterDays deleteAfterDays runAt } } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(
        retention["setRetentionPolicy"]["retentionPolicy"]["runAt"],
        "03:00"
    );
    let policies = admin
        .data(
            "query($site: ID!, $at: Int) { policies(siteId: $site, atLeast: $at) { recording { active { id } } eventDetection { active { id } } eventResponse { active { id } all { id } } } }",
            json!({ "site": site, "at": position(&retention["setRetentionPolicy"]) }),
        )
        .await;
    assert_eq!(
        policies["policies"]["recording"]["active"]["id"],
        recording_policy
    );
    assert_eq!(
        policies["policies"]["eventDetection"]["active"]["id"],
        detection_policy
    );
    assert_eq!(
        policies["policies"]["eventResponse"]["active"]["id"],
        response_policy
    );

    let auditor_1 =
        admin.with_token(&issue_token(&admin, "auditor-1", "AUDITOR", &[&site], &[]).await);
    let auditor_2 = admin.with_token(&issue_token(&admin, "auditor-2", "AUDITOR", &[], &[]).await);
    // An auditor sees only what a permission grants: auditor-2 the whole site.
    grant_whole_site(&admin, &site, "auditor-2").await;

    // ---- agent journey -----------------------------------------------------
    let agent = admin.with_token(&agent_secret);
    assert_eq!(
        agent.data("{ me { role serverId } }", json!({})).await["me"]["serverId"],
        server.as_str()
    );
    agent
        .data(
            "mutation($id: ID!) { heartbeat(serverId: $id) { position } }",
            json!({ "id": server }),
        )
        .await;
    let alice = start_recording(&agent, &server, "session-1", "CORP\\alice", &["FINANCE"]).await;
    assert_eq!(alice["recorded"], true);
    assert_eq!(alice["decision"]["action"], "RECORD_SCREEN_AND_EVENTS");
    let alice_id = alice["recordingId"].as_str().unwrap().to_owned();
    // A repeated start is the same recording.
    let again = start_recording(&agent, &server, "session-1", "CORP\\alice", &["FINANCE"]).await;
    assert_eq!(again["recordingId"], alice_id.as_str());
    assert_eq!(again["repeated"], true);
    let bob = start_recording(&agent, &server, "session-2", "CORP\\bob", &[]).await;
    assert_eq!(bob["decision"]["action"], "RECORD_EVENTS_ONLY");
    let bob_id = bob["recordingId"].as_str().unwrap().to_owned();

    let batch = suspicious_batch();
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": alice_id, "events": batch }),
        )
        .await["recordSessionEvents"]
        .clone();
    assert_eq!(recorded["accepted"], 4);
    assert!(recorded["detections"].as_i64().unwrap() >= 2, "{recorded}");
    assert!(recorded["responses"].as_i64().unwrap() >= 1, "{recorded}");
    // The same batch again changes nothing.
    let retried = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": alice_id, "events": batch }),
        )
        .await["recordSessionEvents"]
        .clone();
    assert_eq!(
        (retried["accepted"].as_i64(), retried["duplicates"].as_i64()),
        (Some(0), Some(4))
    );

    let pending = agent
        .data(
            "query($id: ID!, $at: Int) { pendingResponses(serverId: $id, atLeast: $at) { id action message recipients outcome } }",
            json!({ "id": server, "at": position(&recorded) }),
        )
        .await["pendingResponses"]
        .clone();
    let lock = pending
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "LOCK_SESSION")
        .unwrap_or_else(|| panic!("a LOCK_SESSION response: {pending}"))
        .clone();
    agent
        .data(
            "mutation($id: ID!) { acknowledgeResponse(responseId: $id, outcome: \"locked\") { position } }",
            json!({ "id": lock["id"] }),
        )
        .await;
    let ended = agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": alice_id }),
        )
        .await;
    let ended_at = position(&ended["endRecording"]);

    // ---- auditor journey ---------------------------------------------------
    let search = "query($f: RecordingFilter, $at: Int) { recordings(filter: $f, atLeast: $at) { totalCount edges { node { id user live } } } }";
    let found = auditor_1
        .data(
            search,
            json!({ "f": { "siteId": site, "users": ["CORP\\alice"], "hasDetections": true, "minSeverity": "HIGH" }, "at": ended_at }),
        )
        .await;
    let edges = found["recordings"]["edges"].as_array().unwrap().clone();
    assert_eq!(edges.len(), 1, "{found}");
    assert_eq!(edges[0]["node"]["id"], alice_id.as_str());
    let opened = auditor_1
        .data(
            "query($id: ID!) { recording(id: $id) { user mode live eventCount visibility
                detections { type severity rule } events(first: 2) { edges { node { type offsetMs } } pageInfo { hasNextPage } } } }",
            json!({ "id": alice_id }),
        )
        .await;
    let recording = &opened["recording"];
    assert_eq!(recording["mode"], "SCREEN_AND_EVENTS");
    assert_eq!(recording["eventCount"], 4);
    assert_eq!(recording["visibility"], "PLAYABLE");
    assert_eq!(recording["events"]["pageInfo"]["hasNextPage"], true);
    assert!(recording["detections"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["type"] == "USB_MASS_STORAGE" && d["severity"] == "HIGH"));

    let played = auditor_1
        .data(
            "mutation($id: ID!) { playRecording(recordingId: $id) { position followFrom events { type offsetMs } detections { type } comments { text } } }",
            json!({ "id": alice_id }),
        )
        .await;
    let playback = &played["playRecording"];
    assert_eq!(playback["events"].as_array().unwrap().len(), 4);
    let played_at = position(playback);
    let trail = admin
        .data(
            "query($at: Int) { auditTrail(filter: {categories: [PLAYBACK]}, atLeast: $at) { edges { node { eventType actor target } } } }",
            json!({ "at": played_at }),
        )
        .await;
    assert!(
        trail["auditTrail"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["eventType"] == "RecordingPlayed"
                && e["node"]["actor"].as_str().unwrap().contains("auditor-1")),
        "RecordingPlayed by auditor-1 in the audit trail: {trail}"
    );

    let comment = auditor_1
        .data(
            "mutation($id: ID!) { addComment(recordingId: $id, text: \"USB stick at 0:09\", severity: MEDIUM, offsetMs: 9000) { position comment { text author severity } } }",
            json!({ "id": alice_id }),
        )
        .await;
    assert_eq!(comment["addComment"]["comment"]["author"], "auditor-1");

    // auditor-2 (a whole-site permission) sees it until it is restricted.
    let probe = "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { id } }";
    let before = auditor_2
        .data(
            probe,
            json!({ "id": alice_id, "at": position(&comment["addComment"]) }),
        )
        .await;
    assert_eq!(before["recording"]["id"], alice_id.as_str());
    let restricted = auditor_1
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case 42\") { position } }",
            json!({ "id": alice_id }),
        )
        .await;
    let restricted_at = position(&restricted["restrictRecording"]);
    let after = auditor_2
        .data(probe, json!({ "id": alice_id, "at": restricted_at }))
        .await;
    assert!(
        after["recording"].is_null(),
        "restricted recording still visible: {after}"
    );
    let listed = auditor_2
        .data(
            search,
            json!({ "f": { "siteId": site }, "at": restricted_at }),
        )
        .await;
    assert!(
        !listed["recordings"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["node"]["id"] == alice_id.as_str()),
        "{listed}"
    );
    // The admin still sees it, with its restriction.
    let admin_view = admin
        .data(
            "query($id: ID!) { recording(id: $id) { restricted restriction { reason by } } }",
            json!({ "id": alice_id }),
        )
        .await;
    assert_eq!(
        admin_view["recording"]["restriction"]["reason"],
        "HR case 42"
    );

    // ---- live: a subscription receives detections -------------------------
    let mut live = auditor_2
        .subscribe(
            "subscription($site: ID) { detections(siteId: $site) { type severity recordingId user } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(live.ack["type"], "connection_ack", "{}", live.ack);
    // Give the server a moment to register the subscription before sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": bob_id, "events": [event("USB_MASS_STORAGE", 2_000, json!({ "device": "SanDisk" }))] }),
        )
        .await;
    let alert = live.next_data(Duration::from_secs(15)).await;
    assert_eq!(alert["detections"]["type"], "USB_MASS_STORAGE");
    assert_eq!(alert["detections"]["recordingId"], bob_id.as_str());
    live.close().await;

    // ---- restart: same answers, the tokens still work -----------------------
    // The log head, not a read model's position: the alert above comes
    // from the log, possibly before every read model has applied it.
    let head = admin.data("{ projections { head } }", json!({})).await["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["head"].as_i64().unwrap())
        .max()
        .unwrap();
    let before: Value = admin
        .data(SNAPSHOT, json!({ "siteId": site, "at": head }))
        .await;
    let status = srs.stop();
    assert!(status.success(), "graceful stop: {status:?}");

    let srs = Srs::start(&data).await;
    assert!(
        srs.printed_admin_token.is_none(),
        "no second admin token on restart"
    );
    let admin = Client::new(&srs, Some(&admin_secret));
    let after: Value = admin
        .data(SNAPSHOT, json!({ "siteId": site, "at": head }))
        .await;
    assert_eq!(before, after);
    let auditor_1 = auditor_1.rebase(&srs);
    assert_eq!(
        auditor_1.data("{ me { name } }", json!({})).await["me"]["name"],
        "auditor-1"
    );
    let agent = agent.rebase(&srs);
    agent
        .data(
            "mutation($id: ID!) { heartbeat(serverId: $id) { position } }",
            json!({ "id": server }),
        )
        .await;
    assert!(srs.stop().success());
}
