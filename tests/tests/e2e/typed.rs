//! The typed read side as a client sees it: policies read back in their
//! input's shape and sent back unchanged stay equal; session event data
//! by type (shredded once deleted); `totalCount` is what paging finds;
//! `node(id)` finds each type and only what the caller may see.

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const RECORDING_DEFINITION: &str = "recording { name fallback fallbackNotify
  rules { name action notify lossy audio users groups applications deliveryGroups hosts clientIpRanges } }";
const DETECTION_DEFINITION: &str = "eventDetection { name logged monitoredApps
  rules { type severity patterns idleSeconds name users groups hosts } }";
const RESPONSE_DEFINITION: &str = "eventResponse { name
  rules { name onSessionStart types minSeverity users hosts actions recipients message cooldownSec } }";

/// A policy's `definition`, every field selected.
async fn definition(admin: &Client, policy: &str, at: i64) -> Value {
    let query = format!(
        "query($id: ID!, $at: Int) {{ node(id: $id, atLeast: $at) {{ ... on Policy {{ version
           definition {{ {RECORDING_DEFINITION} {DETECTION_DEFINITION} {RESPONSE_DEFINITION} }} }} }} }}"
    );
    admin.data(&query, json!({ "id": policy, "at": at })).await["node"].clone()
}

/// Creates a policy of `kind` (`Recording`, `EventDetection`,
/// `EventResponse`) from `input`; returns (id, position).
async fn create(admin: &Client, site: &str, kind: &str, input: &Value) -> (String, i64) {
    let input_type = match kind {
        "Recording" => "RecordingPolicyInput",
        "EventDetection" => "EventDetectionPolicyInput",
        _ => "EventResponsePolicyInput",
    };
    let data = admin
        .data(
            &format!(
                "mutation($site: ID!, $input: {input_type}!) {{ create{kind}Policy(siteId: $site, input: $input) {{ position policyId }} }}"
            ),
            json!({ "site": site, "input": input }),
        )
        .await;
    let payload = &data[format!("create{kind}Policy")];
    (
        payload["policyId"].as_str().unwrap().to_owned(),
        position(payload),
    )
}

#[tokio::test]
async fn a_policy_read_and_sent_back_unchanged_stays_equal() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    let detection = json!({
        "name": "Watch", "logged": ["WEB_BROWSING", "APP_START", "IDLE", "USB_MASS_STORAGE"],
        "monitoredApps": ["regedit*"],
        "rules": [
            {"type": "APP_START", "severity": "CRITICAL", "patterns": ["regedit*"], "name": "registry editor",
             "users": ["CORP\\ann"], "groups": ["Finance"], "hosts": ["vda-*"]},
            {"type": "IDLE", "severity": "LOW", "idleSeconds": 600},
            {"type": "WEB_BROWSING", "severity": "MEDIUM", "patterns": ["*.dropbox.com"]}
        ]
    });
    let (detection_id, _) = create(&admin, &site, "EventDetection", &detection).await;
    admin
        .data(
            "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }",
            json!({ "id": detection_id }),
        )
        .await;
    let inputs = [
        (
            "Recording",
            json!({
                "name": "Finance", "fallback": "RECORD_EVENTS_ONLY", "fallbackNotify": true,
                "rules": [
                    {"name": "no recording of the board", "action": "DO_NOT_RECORD", "notify": false,
                     "users": ["CORP\\ceo"], "groups": ["Board*"]},
                    {"name": "finance", "action": "RECORD_SCREEN_AND_EVENTS", "notify": true, "lossy": true,
                     "audio": true, "applications": ["Excel"], "deliveryGroups": ["Finance DG"],
                     "hosts": ["vda-0?"], "clientIpRanges": ["10.1.0.0/16", "192.168.1.7"]}
                ]
            }),
        ),
        ("EventDetection", detection.clone()),
        (
            "EventResponse",
            json!({
                "name": "Respond",
                "rules": [
                    {"name": "usb", "types": ["USB_MASS_STORAGE"], "minSeverity": "HIGH",
                     "actions": ["EMAIL_ALERT", "LOCK_SESSION"], "recipients": ["soc@example.com"],
                     "message": "Locked: USB storage", "users": ["CORP\\ann"], "hosts": ["vda-01"], "cooldownSec": 60},
                    {"name": "greet", "onSessionStart": true, "minSeverity": "INFO", "actions": ["START_SCREEN_RECORDING"]},
                    {"name": "both", "onSessionStart": true, "types": ["WEB_BROWSING", "APP_START"],
                     "minSeverity": "MEDIUM", "actions": ["DISCONNECT_SESSION"]}
                ]
            }),
        ),
    ];
    for (kind, input) in inputs {
        let member = match kind {
            "Recording" => "recording",
            "EventDetection" => "eventDetection",
            _ => "eventResponse",
        };
        let (id, at) = create(&admin, &site, kind, &input).await;
        let read = definition(&admin, &id, at).await;
        let first = read["definition"].clone();
        assert_eq!(first[member]["name"], input["name"], "{first}");
        for other in ["recording", "eventDetection", "eventResponse"] {
            if other != member {
                assert_eq!(
                    first[other],
                    Value::Null,
                    "{kind}: only its own member: {first}"
                );
            }
        }
        // Enums read as enums, rules with their fields.
        assert!(first[member]["rules"][0]["name"].is_string(), "{first}");

        // Sent back unchanged through `updatePolicy`: an equal policy.
        let updated = admin
            .data(
                "mutation($id: ID!, $input: PolicyUpdateInput!, $v: Int) { updatePolicy(policyId: $id, input: $input, expectedVersion: $v) { position } }",
                json!({ "id": id, "input": first, "v": read["version"] }),
            )
            .await;
        let again = definition(&admin, &id, position(&updated["updatePolicy"])).await;
        assert_eq!(
            again["definition"], first,
            "{kind}: updated with what it read"
        );
        assert_ne!(again["version"], read["version"], "the update was stored");

        // And through `create*Policy`: an equal policy under a new id.
        let mut copy = first[member].clone();
        copy["name"] = json!(format!("{} copy", input["name"].as_str().unwrap()));
        let (copy_id, at) = create(&admin, &site, kind, &copy).await;
        let copied = definition(&admin, &copy_id, at).await["definition"].clone();
        assert_eq!(copied[member], copy, "{kind}: created from what it read");

        // Changed, it reads back changed.
        let mut changed = first.clone();
        changed[member]["rules"][0]["name"] = json!("renamed rule");
        let updated = admin
            .data(
                "mutation($id: ID!, $input: PolicyUpdateInput!) { updatePolicy(policyId: $id, input: $input) { position } }",
                json!({ "id": id, "input": changed }),
            )
            .await;
        let after = definition(&admin, &id, position(&updated["updatePolicy"])).await;
        assert_eq!(after["definition"], changed, "{kind}");
    }
    assert!(srs.stop().success());
}

#[tokio::test]
async fn event_data_is_typed_and_reads_shredded_after_deletion() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let events = vec![
        event(
            "WEB_BROWSING",
            5_000,
            json!({ "url": "https://mail.example.com/inbox", "browser": "Edge" }),
        ),
        event(
            "FILE_TRANSFER",
            6_000,
            json!({ "path": "C:\\out.zip", "direction": "HOST_TO_CLIENT", "sizeBytes": "5000000000" }),
        ),
        event("IDLE", 7_000, json!({ "seconds": 90 })),
    ];
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": events }),
        )
        .await;
    let query = format!(
        "query($id: ID!, $at: Int) {{ recording(id: $id, atLeast: $at) {{
           events {{ totalCount edges {{ node {{ type offsetMs shredded {EVENT_DATA} }} }} }} }} }}"
    );
    let read = admin
        .data(
            &query,
            json!({ "id": recording, "at": position(&recorded["recordSessionEvents"]) }),
        )
        .await;
    let nodes: Vec<&Value> = read["recording"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    assert_eq!(read["recording"]["events"]["totalCount"], 3, "{read}");
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[0]["type"], "WEB_BROWSING");
    assert_eq!(nodes[0]["offsetMs"], 5_000, "an Int, not a Float");
    assert_eq!(nodes[0]["data"]["__typename"], "WebData");
    assert_eq!(nodes[0]["data"]["url"], "https://mail.example.com/inbox");
    assert_eq!(nodes[0]["data"]["browser"], "Edge");
    assert_eq!(nodes[1]["data"]["__typename"], "FileTransferData");
    assert_eq!(nodes[1]["data"]["direction"], "HOST_TO_CLIENT");
    assert_eq!(nodes[1]["data"]["sizeBytes"], 5_000_000_000_i64, "64-bit");
    assert_eq!(
        nodes[2]["data"],
        json!({ "__typename": "IdleData", "seconds": 90 })
    );

    // Deleted: the data reads as shredded, the rest remains.
    let ended = agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": recording }),
        )
        .await;
    let deleted = admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": recording }),
        )
        .await;
    let at = position(&deleted["deleteRecording"]).max(position(&ended["endRecording"]));
    let read = admin
        .data(&query, json!({ "id": recording, "at": at }))
        .await;
    let edges = read["recording"]["events"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3, "{read}");
    for edge in edges {
        assert_eq!(edge["node"]["shredded"], true, "{edge}");
        assert_eq!(
            edge["node"]["data"],
            json!({ "__typename": "ShreddedData", "shredded": true }),
            "{edge}"
        );
    }
    assert!(!read.to_string().contains("mail.example.com"), "{read}");
    assert!(srs.stop().success());
}

/// Pages through `field` (a connection selected by `selection`, which
/// takes `$first` and `$after`), `first` at a time; returns (nodes seen,
/// the totalCount of every page).
async fn page_through(
    client: &Client,
    field: &str,
    args: &str,
    first: i64,
    at: i64,
) -> (usize, Vec<Value>) {
    let query = format!(
        "query($first: Int, $after: String, $at: Int) {{ {field}({args} first: $first, after: $after, atLeast: $at) {{
           totalCount pageInfo {{ hasNextPage endCursor }} edges {{ cursor }} }} }}"
    );
    let mut after: Option<String> = None;
    let mut seen = 0;
    let mut totals = Vec::new();
    loop {
        let data = client
            .data(&query, json!({ "first": first, "after": after, "at": at }))
            .await;
        let page = &data[field];
        seen += page["edges"].as_array().unwrap().len();
        totals.push(page["totalCount"].clone());
        if page["pageInfo"]["hasNextPage"] != true {
            return (seen, totals);
        }
        after = page["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
}

#[tokio::test]
async fn total_count_is_the_number_of_nodes_paged_through() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    activate_detection_policy(
        &admin,
        &site,
        "name: \"USB\", logged: [USB_MASS_STORAGE, WEB_BROWSING, APP_START, LOGON], rules: [{type: USB_MASS_STORAGE, severity: HIGH}, {type: WEB_BROWSING, severity: MEDIUM, patterns: [\"*.dropbox.com\"]}]",
    )
    .await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let mut at = 0;
    let mut recordings = Vec::new();
    for n in 0..5 {
        let started = start_recording(&agent, &server, &format!("s-{n}"), "CORP\\ann", &[]).await;
        let recording = started["recordingId"].as_str().unwrap().to_owned();
        let recorded = agent
            .data(
                RECORD_EVENTS,
                json!({ "recordingId": recording, "events": suspicious_batch() }),
            )
            .await;
        at = at.max(position(&recorded["recordSessionEvents"]));
        recordings.push(recording);
    }
    let recording_filter = format!("filter: {{siteId: \"{site}\"}},");
    for (field, args) in [
        ("recordings", recording_filter.as_str()),
        ("detectedEvents", ""),
        ("auditTrail", ""),
        ("history", ""),
        ("tokens", ""),
        ("legalHolds", ""),
    ] {
        for first in [1, 2, 500] {
            let (seen, totals) = page_through(&admin, field, args, first, at).await;
            assert!(
                seen > 0 || field == "legalHolds",
                "{field}: nothing to page through"
            );
            for total in &totals {
                assert_eq!(total, &json!(seen), "{field} by {first}: {totals:?}");
            }
        }
    }
    // Filtered: the audit trail of one site, history of one recording.
    let by_site = format!("filter: {{siteId: \"{site}\"}},");
    let (seen, totals) = page_through(&admin, "auditTrail", &by_site, 2, at).await;
    assert!(seen > 0);
    assert!(totals.iter().all(|t| t == &json!(seen)), "{totals:?}");
    let one = format!("filter: {{recordingId: \"{}\"}},", recordings[0]);
    let (seen, totals) = page_through(&admin, "history", &one, 3, at).await;
    assert!(seen > 4, "{seen}");
    assert!(totals.iter().all(|t| t == &json!(seen)), "{totals:?}");

    // A recording's events, all and narrowed by type.
    for (types, expected) in [("", 4), ("types: [USB_MASS_STORAGE, LOGON]", 2)] {
        let query = format!(
            "query($id: ID!, $at: Int) {{ recording(id: $id, atLeast: $at) {{
               events(first: 1 {types}) {{ totalCount edges {{ cursor }} }} }} }}"
        );
        let data = admin
            .data(&query, json!({ "id": recordings[1], "at": at }))
            .await;
        assert_eq!(
            data["recording"]["events"]["totalCount"], expected,
            "{data}"
        );
    }

    // An auditor who may see one recording counts only what it sees.
    let auditor = Client::new(
        &srs,
        Some(&issue_token(&admin, "aud", "AUDITOR", &[&site], &[]).await),
    );
    let granted = admin
        .data(
            "mutation($site: ID!, $rec: String!) { grantPlaybackPermission(input: {siteId: $site, principal: \"aud\", scope: {recordedUsers: [$rec]}}) { position } }",
            json!({ "site": site, "rec": "CORP\\nobody" }),
        )
        .await;
    let at = position(&granted["grantPlaybackPermission"]);
    let (seen, totals) = page_through(&auditor, "detectedEvents", "", 1, at).await;
    assert_eq!(seen, 0);
    assert_eq!(totals, vec![json!(0)]);
    assert!(srs.stop().success());
}

#[tokio::test]
async fn node_finds_each_type_and_only_what_the_caller_may_see() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    let other_site = create_site(&admin, "Branch").await;
    record_everyone(&admin, &site).await;
    let policy = admin
        .data(
            "mutation($site: ID!) { createEventDetectionPolicy(siteId: $site, input: {
                name: \"USB\", logged: [USB_MASS_STORAGE, WEB_BROWSING, APP_START, LOGON],
                rules: [{type: USB_MASS_STORAGE, severity: HIGH}]
             }) { policyId } }",
            json!({ "site": site }),
        )
        .await["createEventDetectionPolicy"]["policyId"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .data(
            "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }",
            json!({ "id": policy }),
        )
        .await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": recording, "events": suspicious_batch() }),
        )
        .await;
    let comment = admin
        .data(
            "mutation($id: ID!) { addComment(recordingId: $id, text: \"look\") { commentId } }",
            json!({ "id": recording }),
        )
        .await["addComment"]["commentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let permission = grant_whole_site(&admin, &site, "aud").await;
    let hold = admin
        .data(
            "mutation($id: ID!) { placeLegalHold(input: {scope: {recordingIds: [$id]}, reason: \"case 7\"}) { position legalHoldId } }",
            json!({ "id": recording }),
        )
        .await["placeLegalHold"]
        .clone();
    let at = position(&hold);
    let hold = hold["legalHoldId"].as_str().unwrap().to_owned();
    let found = admin
        .data(
            "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { detections { id } responses { id } } }",
            json!({ "id": recording, "at": at }),
        )
        .await;
    let detection = found["recording"]["detections"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = found["recording"]["responses"][0]["id"]
        .as_str()
        .map(str::to_owned);
    let issued = admin
        .data(
            ISSUE_TOKEN,
            json!({ "name": "aud", "role": "AUDITOR", "siteIds": [site], "groups": [] }),
        )
        .await["issueToken"]
        .clone();
    let auditor = Client::new(&srs, Some(issued["secret"].as_str().unwrap()));
    let token = issued["tokenId"].as_str().unwrap().to_owned();
    // Every object below is in the read models from here on.
    let at = position(&issued);
    let node = |client: &Client, id: String| {
        let client = client.clone();
        async move {
            client
                .run(
                    "query($id: ID!, $at: Int) { node(id: $id, atLeast: $at) { __typename id } }",
                    json!({ "id": id, "at": at }),
                )
                .await
        }
    };
    let mut expected = vec![
        ("Recording", recording.clone()),
        ("Server", server.clone()),
        ("Site", site.clone()),
        ("Policy", policy.clone()),
        ("PlaybackPermission", permission.clone()),
        ("Comment", comment.clone()),
        ("DetectedEvent", detection.clone()),
        ("LegalHold", hold.clone()),
        ("Token", token.clone()),
    ];
    if let Some(response) = response {
        expected.push(("PendingResponse", response));
    }
    for (kind, id) in &expected {
        let answer = node(&admin, id.clone()).await;
        assert_eq!(
            answer.data()["node"],
            json!({ "__typename": kind, "id": id }),
            "{kind}"
        );
        let typed = node(&admin, format!("{kind}:{id}")).await;
        assert_eq!(typed.data()["node"]["__typename"], *kind);
    }
    // A server's id is its first AGENT token's too: the server answers,
    // `Token:<id>` the token.
    let agent_token_node = node(&admin, format!("Token:{server}")).await;
    assert_eq!(agent_token_node.data()["node"]["__typename"], "Token");

    // The auditor of the site sees the recording and what hangs on it,
    // not tokens; nobody sees another site's objects or absent ids, and
    // the refusal reads exactly as an absent id.
    for (kind, id) in &expected {
        let answer = node(&auditor, id.clone()).await;
        match *kind {
            "Token" => {
                answer.expect_code("NOT_FOUND");
                assert!(
                    answer.body["errors"][0]["message"]
                        .as_str()
                        .unwrap()
                        .starts_with("node "),
                    "{}",
                    answer.body
                );
            }
            _ => assert_eq!(
                answer.data()["node"]["__typename"],
                *kind,
                "{}",
                answer.body
            ),
        }
    }
    let outsider = Client::new(
        &srs,
        Some(&issue_token(&admin, "out", "AUDITOR", &[&other_site], &[]).await),
    );
    let absent = uuid::Uuid::now_v7().to_string();
    let absent_answer = node(&outsider, absent.clone()).await;
    absent_answer.expect_code("NOT_FOUND");
    for (kind, id) in &expected {
        let answer = node(&outsider, id.clone()).await;
        answer.expect_code("NOT_FOUND");
        assert_eq!(
            answer.body["errors"][0]["message"],
            json!(format!("node {id} not found")),
            "{kind}: no more than an absent id"
        );
        assert_eq!(answer.body["data"], Value::Null, "{kind}");
    }
    // An auditor without a permission on a recording does not see it.
    let bare = Client::new(
        &srs,
        Some(&issue_token(&admin, "bare", "AUDITOR", &[&site], &[]).await),
    );
    for id in [&recording, &comment, &detection, &hold] {
        node(&bare, id.clone()).await.expect_code("NOT_FOUND");
    }
    node(&bare, "not-a-uuid".into())
        .await
        .expect_code("VALIDATION");
    assert!(srs.stop().success());
}
