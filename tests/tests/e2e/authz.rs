//! The authorization matrix: every operation x every kind of caller,
//! table-driven. A cell is `allowed` (any answer but FORBIDDEN) or
//! `FORBIDDEN`; a caller without a token always gets UNAUTHENTICATED.

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// The callers of the matrix, in column order.
const CALLERS: [&str; 8] = [
    "admin",
    "privileged",
    "auditor",
    "viewer",
    "agent",
    "other_agent",
    "other_site_admin",
    "anonymous",
];

/// One row: an operation and the callers allowed to run it.
struct Row {
    name: &'static str,
    query: &'static str,
    allowed: &'static [&'static str],
}

const ALL_SIGNED_IN: &[&str] = &[
    "admin",
    "privileged",
    "auditor",
    "viewer",
    "agent",
    "other_agent",
    "other_site_admin",
];
const STATUS_READERS: &[&str] = &[
    "admin",
    "privileged",
    "auditor",
    "viewer",
    "other_site_admin",
];
const RECORDING_READERS: &[&str] = &["admin", "privileged", "auditor", "other_site_admin"];
const CONFIG_READERS: &[&str] = &["admin", "auditor"];
const ADMIN: &[&str] = &["admin"];
const AGENT: &[&str] = &["agent"];

fn rows() -> Vec<Row> {
    vec![
        Row { name: "me", query: "{ me { name } }", allowed: ALL_SIGNED_IN },
        Row { name: "sites", query: "{ sites { id } }", allowed: STATUS_READERS },
        Row { name: "servers", query: "{ servers { id } }", allowed: STATUS_READERS },
        Row {
            name: "server",
            query: "query($server: ID!) { server(id: $server) { id } }",
            allowed: &["admin", "privileged", "auditor", "viewer"],
        },
        Row { name: "recordings", query: "{ recordings { edges { cursor } } }", allowed: RECORDING_READERS },
        Row {
            name: "recording",
            query: "query($recording: ID!) { recording(id: $recording) { id } }",
            allowed: RECORDING_READERS,
        },
        Row {
            name: "policies",
            query: "query($site: ID!) { policies(siteId: $site) { recording { active { id } } } }",
            allowed: CONFIG_READERS,
        },
        Row {
            name: "evaluateRecordingPolicy",
            query: "query($site: ID!) { evaluateRecordingPolicy(siteId: $site, session: {user: \"u\", host: \"h\"}) { action } }",
            allowed: CONFIG_READERS,
        },
        Row {
            name: "playbackPermissions",
            query: "query($site: ID!) { playbackPermissions(siteId: $site) { id } }",
            allowed: CONFIG_READERS,
        },
        Row {
            name: "retentionPolicy",
            query: "query($site: ID!) { retentionPolicy(siteId: $site) { runAt } }",
            allowed: CONFIG_READERS,
        },
        Row {
            name: "dashboard",
            query: "query($site: ID!) { dashboard(siteId: $site) { recordingsTotal } }",
            allowed: &["admin", "privileged", "auditor", "viewer"],
        },
        Row {
            name: "detectedEvents",
            query: "query($site: ID!) { detectedEvents(filter: {siteId: $site}) { edges { cursor } } }",
            allowed: &["admin", "privileged", "auditor"],
        },
        Row { name: "auditTrail", query: "{ auditTrail { edges { cursor } } }", allowed: ADMIN },
        Row { name: "history", query: "{ history(first: 5) { edges { cursor } } }", allowed: CONFIG_READERS },
        Row { name: "projections", query: "{ projections { name } }", allowed: CONFIG_READERS },
        Row {
            name: "pendingResponses",
            query: "query($server: ID!) { pendingResponses(serverId: $server) { id } }",
            allowed: &["admin", "agent"],
        },
        Row {
            name: "createSite",
            query: "mutation { createSite(input: {name: \"matrix\"}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "connectServer",
            query: "mutation($site: ID!) { connectServer(input: {siteId: $site, name: \"m\", host: \"m\", deployment: CLOUD, version: \"1\"}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "updateServerSettings",
            query: "mutation($server: ID!) { updateServerSettings(serverId: $server, settings: {maxRecordingHours: 8}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "createRecordingPolicy",
            query: "mutation($site: ID!) { createRecordingPolicy(siteId: $site, input: {name: \"m\", rules: [], fallback: RECORD_EVENTS_ONLY}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "grantPlaybackPermission",
            query: "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"x\", scope: {}}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "setRetentionPolicy",
            query: "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: {archiveAfterDays: 10}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "issueToken",
            query: "mutation { issueToken(input: {name: \"m\", role: VIEWER}) { position } }",
            allowed: ADMIN,
        },
        Row {
            name: "heartbeat",
            query: "mutation($server: ID!) { heartbeat(serverId: $server) { position } }",
            allowed: AGENT,
        },
        Row {
            name: "startRecording",
            query: "mutation($server: ID!) { startRecording(input: {serverId: $server, sessionId: \"matrix\", session: {user: \"CORP\\\\m\", host: \"vda\"}}) { position } }",
            allowed: AGENT,
        },
        Row {
            name: "recordSessionEvents",
            query: "mutation($recording: ID!, $events: [SessionEventInput!]!) { recordSessionEvents(recordingId: $recording, events: $events) { position } }",
            allowed: AGENT,
        },
        Row {
            name: "addComment",
            query: "mutation($recording: ID!) { addComment(recordingId: $recording, text: \"m\") { position } }",
            allowed: &["admin", "privileged", "auditor"],
        },
    ]
}

#[tokio::test]
async fn every_operation_for_every_caller_is_allowed_or_forbidden_by_the_role_table() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Site A").await;
    let other_site = create_site(&admin, "Site B").await;
    record_everyone(&admin, &site).await;
    let (server, agent_secret) = connect_server(&admin, &site, "a-1").await;
    let (_, other_agent_secret) = connect_server(&admin, &other_site, "b-1").await;
    let agent = admin.with_token(&agent_secret);
    let recording = start_recording(&agent, &server, "matrix-0", "CORP\\carol", &[]).await;
    let recording_id = recording["recordingId"].as_str().unwrap().to_owned();

    let mut clients: Vec<(&str, Client)> = vec![("admin", admin.clone())];
    for (caller, role, sites) in [
        ("privileged", "PRIVILEGED_PLAYER", vec![]),
        ("auditor", "AUDITOR", vec![]),
        ("viewer", "VIEWER", vec![]),
        ("other_site_admin", "ADMIN", vec![other_site.as_str()]),
    ] {
        clients.push((
            caller,
            admin.with_token(&issue_token(&admin, caller, role, &sites, &[]).await),
        ));
    }
    clients.push(("agent", agent.clone()));
    clients.push(("other_agent", admin.with_token(&other_agent_secret)));
    clients.push(("anonymous", Client::new(&srs, None)));

    let mut mismatches = Vec::new();
    for row in rows() {
        for caller in CALLERS {
            let client = &clients.iter().find(|(name, _)| *name == caller).unwrap().1;
            let variables: Value = json!({
                "site": site,
                "server": server,
                "recording": recording_id,
                "events": [event("LOGON", 0, json!({}))],
            });
            // Only pass the variables the document declares.
            let declared: serde_json::Map<String, Value> = variables
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| row.query.contains(&format!("${k}:")))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let response = client.run(row.query, Value::Object(declared)).await;
            let codes = response.codes();
            let outcome = if caller == "anonymous" {
                if codes.first().map(String::as_str) == Some("UNAUTHENTICATED") {
                    continue;
                }
                "not UNAUTHENTICATED"
            } else {
                let forbidden = codes.iter().any(|c| c == "FORBIDDEN");
                let expected_allowed = row.allowed.contains(&caller);
                if forbidden != expected_allowed {
                    continue;
                }
                if expected_allowed {
                    "FORBIDDEN but should be allowed"
                } else {
                    "allowed but should be FORBIDDEN"
                }
            };
            mismatches.push(format!(
                "{} as {caller}: {outcome}: {}",
                row.name, response.body
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "authorization mismatches:\n{}",
        mismatches.join("\n")
    );
    // Refusals are audit facts.
    let denied = admin
        .data("{ auditTrail(filter: {categories: [ACCESS]}, first: 5) { edges { node { eventType } } } }", json!({}))
        .await;
    assert!(
        !denied["auditTrail"]["edges"].as_array().unwrap().is_empty(),
        "{denied}"
    );
    assert!(srs.stop().success());
}
