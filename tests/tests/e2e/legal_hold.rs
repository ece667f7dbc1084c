//! Legal holds against the real binary: a held recording survives
//! `deleteRecording` and retention (which counts it as held), holds are
//! listed by `legalHolds`, in the audit trail and in the history, bad
//! input writes nothing, and once released the recording can be deleted.

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

const START_AT: &str = "mutation($server: ID!, $session: String!, $user: String!, $at: DateTime!) {
  startRecording(input: {serverId: $server, sessionId: $session, session: {user: $user, host: \"vda-07\"}, startedAt: $at}) { recordingId } }";
const END_AT: &str =
    "mutation($id: ID!, $at: DateTime!) { endRecording(recordingId: $id, endedAt: $at) { position } }";
const PLACE: &str = "mutation($scope: LegalHoldScopeInput!, $reason: String!) {
  placeLegalHold(input: {scope: $scope, reason: $reason}) {
    position legalHoldId legalHold { id active reason placedBy scope { kind siteId recordingIds users } } } }";
const RELEASE: &str = "mutation($id: ID!, $reason: String) {
  releaseLegalHold(id: $id, reason: $reason) { position legalHold { active releasedBy releaseReason } } }";
const DELETE: &str = "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }";
const RUN: &str =
    "mutation($site: ID!) { runRetentionNow(siteId: $site) { position archived deleted held } }";

/// A recording of `user` that started and ended on 1 Jan 2020.
async fn old_recording(agent: &Client, server: &str, session: &str, user: &str) -> String {
    let id = agent
        .data(
            START_AT,
            json!({ "server": server, "session": session, "user": user, "at": "2020-01-01T08:00:00Z" }),
        )
        .await["startRecording"]["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    agent
        .data(END_AT, json!({ "id": id, "at": "2020-01-01T09:00:00Z" }))
        .await;
    id
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_legal_hold_keeps_recordings_from_deletion_by_hand_and_by_retention() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Legal").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-legal").await;
    let agent = admin.with_token(&agent_token);
    let auditor = admin.with_token(&issue_token(&admin, "aud", "AUDITOR", &[], &[]).await);
    grant_whole_site(&admin, &site, "aud").await;

    let held = old_recording(&agent, &server, "held", "CORP\\carl").await;
    let free = old_recording(&agent, &server, "free", "CORP\\dora").await;

    // ---- place a hold on one recording ---------------------------------------
    let placed = admin
        .data(
            PLACE,
            json!({ "scope": { "recordingIds": [held] }, "reason": "Case 2026-17: litigation" }),
        )
        .await["placeLegalHold"]
        .clone();
    let hold = placed["legalHoldId"].as_str().unwrap().to_owned();
    assert_eq!(placed["legalHold"]["active"], true, "{placed}");
    assert_eq!(placed["legalHold"]["placedBy"], "admin", "{placed}");
    assert_eq!(placed["legalHold"]["scope"]["kind"], "RECORDINGS");
    assert_eq!(placed["legalHold"]["scope"]["siteId"], site.as_str());
    assert_eq!(
        ids(&placed["legalHold"]["scope"]["recordingIds"]),
        [held.as_str()]
    );

    // ---- deleteRecording is refused, naming the hold ---------------------------
    let refused = admin.run(DELETE, json!({ "id": held })).await;
    refused.expect_code("CONFLICT");
    assert!(
        refused.body.to_string().contains(&hold),
        "the refusal names the hold: {}",
        refused.body
    );
    let recording = admin
        .data(
            "query($id: ID!) { recording(id: $id) { deleted onLegalHold legalHolds { id reason } } }",
            json!({ "id": held }),
        )
        .await["recording"]
        .clone();
    assert_eq!(recording["deleted"], false);
    assert_eq!(recording["onLegalHold"], true);
    assert_eq!(
        recording["legalHolds"][0]["id"],
        hold.as_str(),
        "{recording}"
    );

    // ---- a hold on a site's users covers a recording started after it ----------
    let users_hold = admin
        .data(
            PLACE,
            json!({ "scope": { "siteId": site, "users": ["CORP\\eve"] }, "reason": "Case 2026-18" }),
        )
        .await["placeLegalHold"]["legalHoldId"]
        .as_str()
        .unwrap()
        .to_owned();
    let later = old_recording(&agent, &server, "later", "CORP\\eve").await;
    admin
        .run(DELETE, json!({ "id": later }))
        .await
        .expect_code("CONFLICT");

    // ---- retention skips the held recordings and counts them -------------------
    admin
        .data(
            "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: {deleteAfterDays: 1}) { position } }",
            json!({ "site": site }),
        )
        .await;
    let run = admin.data(RUN, json!({ "site": site })).await["runRetentionNow"].clone();
    assert_eq!(
        (run["deleted"].as_i64(), run["held"].as_i64()),
        (Some(1), Some(2)),
        "{run}"
    );
    // Root fields resolve side by side, so the wait for the run's position
    // is a query of its own before the one that reads its effects.
    admin
        .data(
            "query($a: ID!, $at: Int) { recording(id: $a, atLeast: $at) { id } }",
            json!({ "a": held, "at": position(&run) }),
        )
        .await;
    let states = admin
        .data(
            "query($a: ID!, $b: ID!, $c: ID!, $site: ID!) {
               a: recording(id: $a) { deleted } b: recording(id: $b) { deleted } c: recording(id: $c) { deleted }
               retentionPolicy(siteId: $site) { lastRun { deleted held } } }",
            json!({ "a": held, "b": free, "c": later, "site": site }),
        )
        .await;
    assert_eq!(states["a"]["deleted"], false, "{states}");
    assert_eq!(states["c"]["deleted"], false, "{states}");
    // The deleted one is gone from every list (null for its id).
    assert!(
        states["b"].is_null() || states["b"]["deleted"] == true,
        "{states}"
    );
    assert_eq!(states["retentionPolicy"]["lastRun"]["held"], 2, "{states}");

    // ---- holds are listed, in the audit trail and in the history ---------------
    let listed = admin
        .data(
            "query($site: ID!) { legalHolds(siteId: $site, active: true) { totalCount edges { node { id reason scope { kind users } } } } }",
            json!({ "site": site }),
        )
        .await["legalHolds"]
        .clone();
    assert_eq!(listed["totalCount"], 2, "{listed}");
    assert_eq!(listed["edges"][0]["node"]["id"], hold.as_str());
    assert_eq!(listed["edges"][1]["node"]["scope"]["kind"], "USERS");
    let seen_by_auditor = auditor
        .data("{ legalHolds { totalCount } }", json!({}))
        .await;
    assert_eq!(
        seen_by_auditor["legalHolds"]["totalCount"], 2,
        "{seen_by_auditor}"
    );
    let trail = admin
        .data(
            "query($at: Int!) { auditTrail(filter: {categories: [CONFIGURATION]}, first: 50, atLeast: $at) { edges { node { action target detail eventType } } } }",
            json!({ "at": log_head(&admin).await }),
        )
        .await;
    let placed_entries: Vec<&Value> = trail["auditTrail"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["action"] == "legal_hold.placed")
        .collect();
    assert_eq!(placed_entries.len(), 2, "{trail}");
    assert!(placed_entries
        .iter()
        .any(|n| n["target"] == format!("legal-hold:{hold}").as_str()
            && n["detail"].as_str().unwrap().contains("Case 2026-17")));
    let history = admin
        .data(
            "{ history(filter: {types: [\"LegalHoldPlaced\", \"RetentionRunCompletedV2\"]}) { edges { node { type stream payload } } } }",
            json!({}),
        )
        .await;
    let nodes = history["history"]["edges"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{history}");
    assert_eq!(nodes[0]["node"]["stream"], "legal-holds");
    assert_eq!(
        nodes[2]["node"]["payload"]["RetentionRunCompletedV2"]["held"],
        2
    );

    // ---- bad input is refused and writes nothing --------------------------------
    let before = log_head(&admin).await;
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    for (scope, reason, code) in [
        (json!({ "siteId": site }), "", "VALIDATION"),
        (json!({ "siteId": site }), "two\nlines", "VALIDATION"),
        (json!({ "siteId": site }), &*"x".repeat(1025), "VALIDATION"),
        (json!({ "recordingIds": [] }), "r", "VALIDATION"),
        (json!({ "recordingIds": too_many }), "r", "VALIDATION"),
        (
            json!({ "recordingIds": [held], "users": ["x"] }),
            "r",
            "VALIDATION",
        ),
        (json!({ "siteId": site, "users": [] }), "r", "VALIDATION"),
        (json!({ "users": ["CORP\\eve"] }), "r", "VALIDATION"),
        (json!({}), "r", "VALIDATION"),
        (json!({ "recordingIds": ["not-an-id"] }), "r", "VALIDATION"),
        (
            json!({ "recordingIds": [uuid::Uuid::now_v7().to_string()] }),
            "r",
            "NOT_FOUND",
        ),
        (json!({ "recordingIds": [free] }), "r", "VALIDATION"),
        (
            json!({ "siteId": uuid::Uuid::now_v7().to_string() }),
            "r",
            "NOT_FOUND",
        ),
    ] {
        let refused = admin
            .run(PLACE, json!({ "scope": scope, "reason": reason }))
            .await;
        assert_eq!(
            refused.code(),
            Some(code),
            "{scope} {reason:?}: {}",
            refused.body
        );
    }
    admin
        .run(RELEASE, json!({ "id": uuid::Uuid::now_v7().to_string() }))
        .await
        .expect_code("NOT_FOUND");
    assert_eq!(log_head(&admin).await, before, "bad input wrote nothing");

    // ---- release, then the recording can be deleted -----------------------------
    let released = admin
        .data(RELEASE, json!({ "id": hold, "reason": "case closed" }))
        .await["releaseLegalHold"]
        .clone();
    assert_eq!(released["legalHold"]["active"], false, "{released}");
    assert_eq!(released["legalHold"]["releasedBy"], "admin");
    assert_eq!(released["legalHold"]["releaseReason"], "case closed");
    admin
        .run(RELEASE, json!({ "id": hold }))
        .await
        .expect_code("VALIDATION");
    admin.data(DELETE, json!({ "id": held })).await;
    // The users hold still keeps eve's recording.
    admin
        .run(DELETE, json!({ "id": later }))
        .await
        .expect_code("CONFLICT");
    admin.data(RELEASE, json!({ "id": users_hold })).await;
    admin.data(DELETE, json!({ "id": later })).await;
    let released_list = admin
        .data(
            "query($site: ID!) { legalHolds(siteId: $site, active: false) { totalCount } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(
        released_list["legalHolds"]["totalCount"], 2,
        "{released_list}"
    );
    let released_trail = admin
        .data(
            "query($at: Int!) { auditTrail(filter: {categories: [CONFIGURATION]}, first: 50, atLeast: $at) { edges { node { action } } } }",
            json!({ "at": log_head(&admin).await }),
        )
        .await;
    let released_entries = released_trail["auditTrail"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"]["action"] == "legal_hold.released")
        .count();
    assert_eq!(released_entries, 2, "{released_trail}");

    // ---- an auditor learns nothing of a hold on a recording hidden from it ---------
    let secret = old_recording(&agent, &server, "secret", "CORP\\hr").await;
    admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case\") { position } }",
            json!({ "id": secret }),
        )
        .await;
    let secret_hold = admin
        .data(
            PLACE,
            json!({ "scope": { "recordingIds": [secret] }, "reason": "HR matter" }),
        )
        .await["placeLegalHold"]
        .clone();
    let secret_hold_id = secret_hold["legalHoldId"].as_str().unwrap().to_owned();
    let holds_of = |page: &Value| -> Vec<String> {
        page["legalHolds"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let listing =
        "query($at: Int) { legalHolds(active: true, atLeast: $at) { edges { node { id } } } }";
    let at = json!({ "at": position(&secret_hold) });
    assert_eq!(
        holds_of(&admin.data(listing, at.clone()).await),
        [secret_hold_id.as_str()]
    );
    assert!(holds_of(&auditor.data(listing, at).await).is_empty());
    let placed_in_history = |page: &Value| -> Vec<String> {
        page["history"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                e["node"]["payload"]["LegalHoldPlaced"]["holdId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let history_of_holds =
        "{ history(filter: {types: [\"LegalHoldPlaced\"]}) { edges { node { payload } } } }";
    assert!(
        placed_in_history(&admin.data(history_of_holds, json!({})).await).contains(&secret_hold_id)
    );
    let audited = placed_in_history(&auditor.data(history_of_holds, json!({})).await);
    assert_eq!(
        audited.len(),
        2,
        "the auditor sees the other holds: {audited:?}"
    );
    assert!(!audited.contains(&secret_hold_id));

    // ---- a restart keeps the holds and their history ----------------------------
    assert!(srs.stop().success());
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = admin.rebase(&srs);
    let after = admin
        .data(
            "{ legalHolds { totalCount edges { node { active } } } }",
            json!({}),
        )
        .await;
    assert_eq!(after["legalHolds"]["totalCount"], 3, "{after}");
    assert_eq!(after["legalHolds"]["edges"][0]["node"]["active"], false);
    let placed_at = placed["position"].as_i64().unwrap().to_string();
    assert!(srs.stop().success());

    // ---- `srs state` shows the holds as they were ------------------------------
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run_srs(
        &[
            "state",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            &placed_at,
            "legal-holds",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let state: Value = serde_json::from_str(&stdout).unwrap();
    let then = &state["state"]["holds"][hold.as_str()];
    assert_eq!(then["reason"], "Case 2026-17: litigation", "{state}");
    assert_eq!(then["released"], Value::Null, "{state}");
}
