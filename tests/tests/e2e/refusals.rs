//! Refusals cost the caller, not the log; scoped admins stay in their
//! sites; names hold no control characters; dashboards name no one a role
//! may not see; comments have one limit.
//!
//! - one request with many refused fields writes one refusal fact with
//!   their count, and a principal gets at most the documented rate of
//!   refusal facts per minute (the rest is counted in `/metrics` and in
//!   its next fact);
//! - many `playRecording` aliases of one recording in one request are one
//!   `RecordingPlayed`;
//! - an ADMIN scoped to sites is refused `verify` and `rebuildProjections`;
//! - control characters in names are `VALIDATION` and write nothing;
//! - a VIEWER's top users leave out restricted and deleted recordings;
//! - a comment is kept whole up to 4096 characters and refused beyond.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// The server's default rate of refusal facts per principal and minute
/// (`srs_domain::app::DENIAL_FACTS_PER_MINUTE`).
const FACTS_PER_MINUTE: usize = 20;

/// How many times one request repeats a field.
const ALIASES: usize = 1000;

/// `(type, actor, payload)` of every event after `head`, but the scheduler's.
async fn written_since(admin: &Client, head: i64) -> Vec<(String, String, Value)> {
    let page = admin
        .data(
            "query($from: Int!) { history(filter: {fromPosition: $from}, first: 500) { edges { node { type actor payload } } } }",
            json!({ "from": head + 1 }),
        )
        .await;
    page["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let node = &e["node"];
            (
                node["type"].as_str().unwrap().to_owned(),
                node["actor"].as_str().unwrap().to_owned(),
                node["payload"].clone(),
            )
        })
        .filter(|(_, actor, _)| !actor.starts_with("system:"))
        .collect()
}

/// One document asking for `field` `n` times under aliases.
fn aliased(n: usize, field: &str) -> String {
    let fields: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
    let variables = if field.contains("$id") {
        "($id: ID!)"
    } else {
        ""
    };
    format!("query{variables} {{ {} }}", fields.join(" "))
}

/// [`aliased`] as a mutation.
fn aliased_mutation(n: usize, field: &str) -> String {
    format!("mutation{}", aliased(n, field).trim_start_matches("query"))
}

/// A metric's value from `/metrics`.
async fn metric(srs: &Srs, name: &str) -> u64 {
    let text = reqwest::get(srs.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A site recording everyone, its server's agent, and an ended recording
/// of `CORP\carol`.
struct World {
    admin: Client,
    agent: Client,
    site: String,
    server: String,
    recording: String,
}

impl World {
    async fn new(srs: &Srs) -> World {
        let admin = Client::new(srs, Some(&srs.admin_token()));
        let site = create_site(&admin, "Refusals").await;
        record_everyone(&admin, &site).await;
        let (server, agent) = connect_server(&admin, &site, "rec-1").await;
        let agent = admin.with_token(&agent);
        let world = World {
            admin,
            agent,
            site,
            server,
            recording: String::new(),
        };
        let recording = world.ended_recording("s-1", "CORP\\carol").await;
        World { recording, ..world }
    }

    async fn ended_recording(&self, session: &str, user: &str) -> String {
        let id = start_recording(&self.agent, &self.server, session, user, &[]).await
            ["recordingId"]
            .as_str()
            .unwrap()
            .to_owned();
        self.agent
            .data(
                "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
                json!({ "id": id }),
            )
            .await;
        id
    }
}

#[tokio::test]
async fn refusals_and_playbacks_are_one_fact_per_request_and_refusal_facts_are_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let world = World::new(&srs).await;
    let admin = &world.admin;
    let viewer = admin.with_token(&issue_token(admin, "vic", "VIEWER", &[], &[]).await);
    let auditor = admin.with_token(&issue_token(admin, "aud", "AUDITOR", &[], &[]).await);
    grant_whole_site(admin, &world.site, "aud").await;

    // A VIEWER asking for recordings 1000 times in one request: every
    // alias is refused, and the log gains one fact saying so.
    let before = log_head(admin).await;
    let flood = viewer
        .run(
            &aliased(ALIASES, "recordings(first: 1) { totalCount }"),
            json!({ "id": world.recording }),
        )
        .await;
    let codes = flood.codes();
    assert_eq!(codes.len(), ALIASES, "{}", flood.body);
    assert!(codes.iter().all(|c| c == "FORBIDDEN"), "{codes:?}");
    let written = written_since(admin, before).await;
    assert_eq!(
        written.len(),
        1,
        "one fact for the request, not {} (first: {:?})",
        written.len(),
        written.first()
    );
    let (kind, actor, payload) = &written[0];
    assert_eq!(kind, "AccessDeniedRepeated", "{payload}");
    assert_eq!(actor, "principal:vic");
    assert_eq!(payload[kind]["refused"], ALIASES as u64, "{payload}");
    assert_eq!(payload[kind]["suppressed"], 0, "{payload}");
    assert_eq!(payload[kind]["action"], "VIEW_RECORDING", "{payload}");

    // The admin trail shows it as one ACCESS entry, once its read model
    // has folded the fact (it follows the log on its own).
    let fact = admin
        .data(
            "query($from: Int!) { history(filter: {fromPosition: $from}, first: 1) { edges { node { position } } } }",
            json!({ "from": before + 1 }),
        )
        .await["history"]["edges"][0]["node"]["position"]
        .as_i64()
        .expect("the fact's position");
    let trail = admin
        .data(
            "query($at: Int!) { auditTrail(filter: {categories: [ACCESS]}, first: 1, atLeast: $at) { edges { node { eventType detail } } } }",
            json!({ "at": fact }),
        )
        .await;
    let entry = &trail["auditTrail"]["edges"][0]["node"];
    assert_eq!(entry["eventType"], "AccessDeniedRepeated", "{trail}");
    assert!(
        entry["detail"].as_str().unwrap().contains("999 more"),
        "{trail}"
    );

    // The same VIEWER refused request after request: at most the rate of
    // facts per minute (the flood above was the first), the rest counted.
    let unrecorded_before = metric(&srs, "srs_access_denials_unrecorded_total").await;
    let extra = 5;
    for _ in 0..FACTS_PER_MINUTE - 1 + extra {
        viewer
            .run("{ auditTrail { edges { cursor } } }", json!({}))
            .await
            .expect_code("FORBIDDEN");
    }
    let facts: Vec<_> = written_since(admin, before)
        .await
        .into_iter()
        .filter(|(kind, actor, _)| actor == "principal:vic" && kind.starts_with("AccessDenied"))
        .collect();
    assert_eq!(facts.len(), FACTS_PER_MINUTE, "{facts:?}");
    assert_eq!(
        metric(&srs, "srs_access_denials_unrecorded_total").await - unrecorded_before,
        extra as u64
    );
    // Another principal has a rate of its own.
    let other = log_head(admin).await;
    auditor
        .run("{ auditTrail { edges { cursor } } }", json!({}))
        .await
        .expect_code("FORBIDDEN");
    assert_eq!(written_since(admin, other).await.len(), 1);

    // An AUDITOR playing one recording under many aliases plays it once:
    // one RecordingPlayed, one position for all.
    let before = log_head(admin).await;
    let plays = auditor
        .run(
            &aliased_mutation(300, "playRecording(recordingId: $id) { position }"),
            json!({ "id": world.recording }),
        )
        .await;
    let data = plays.data();
    let positions: std::collections::BTreeSet<i64> = data
        .as_object()
        .unwrap()
        .values()
        .map(|r| r["position"].as_i64().unwrap())
        .collect();
    assert_eq!(positions.len(), 1, "{positions:?}");
    let written = written_since(admin, before).await;
    assert_eq!(
        written
            .iter()
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["RecordingPlayed"]
    );
    // A second request by the same viewer within the minute is the same
    // play: playback facts are one per principal, recording and minute.
    let again = auditor
        .run(
            &aliased_mutation(2, "playRecording(recordingId: $id) { position }"),
            json!({ "id": world.recording }),
        )
        .await;
    assert_eq!(
        again.data()["a0"]["position"].as_i64().unwrap(),
        *positions.first().unwrap()
    );

    // Once the minute is over, the VIEWER's next refusal is written again
    // and says how many were left out meanwhile.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let before = log_head(admin).await;
    viewer
        .run("{ auditTrail { edges { cursor } } }", json!({}))
        .await
        .expect_code("FORBIDDEN");
    let written = written_since(admin, before).await;
    assert_eq!(written.len(), 1, "{written:?}");
    let (kind, _, payload) = &written[0];
    assert_eq!(kind, "AccessDeniedRepeated", "{payload}");
    assert_eq!(payload[kind]["refused"], 1, "{payload}");
    assert_eq!(payload[kind]["suppressed"], extra as u64, "{payload}");
    assert!(srs.stop().success());
}

#[tokio::test]
async fn scoped_admins_names_dashboards_and_comments_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let world = World::new(&srs).await;
    let admin = &world.admin;

    // An ADMIN scoped to the site is refused the global operations; the
    // unscoped one runs them. Its `history` is its site's events only.
    let site_admin =
        admin.with_token(&issue_token(admin, "site-admin", "ADMIN", &[&world.site], &[]).await);
    let history = site_admin
        .data(
            "{ history(first: 500) { edges { node { type siteId } } } }",
            json!({}),
        )
        .await;
    let events = history["history"]["edges"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(
        events
            .iter()
            .all(|e| e["node"]["siteId"] == world.site.as_str()),
        "{history}"
    );
    let verify = "{ verify { intact } }";
    let rebuild = "mutation { rebuildProjections(names: [\"servers\"]) { position } }";
    for query in [verify, rebuild] {
        let before = log_head(admin).await;
        site_admin
            .run(query, json!({}))
            .await
            .expect_code("FORBIDDEN");
        let written = written_since(admin, before).await;
        assert_eq!(written.len(), 1, "{query}: {written:?}");
        assert_eq!(written[0].0, "AccessDenied", "{query}");
    }
    assert_eq!(
        admin.data(verify, json!({})).await["verify"]["intact"],
        true
    );
    admin.data(rebuild, json!({})).await;
    // Within its site it is an ADMIN.
    site_admin
        .data(
            "query($site: ID!) { policies(siteId: $site) { recording { active { id } } } }",
            json!({ "site": world.site }),
        )
        .await;

    // Control characters in any name: VALIDATION, nothing written.
    let attempts: Vec<(&str, Value)> = vec![
        (CREATE_SITE, json!({ "name": "HQ\u{0}" })),
        (CREATE_SITE, json!({ "name": "\u{1b}[2JHQ" })),
        (CREATE_SITE, json!({ "name": "HQ\u{202E}txt.exe" })),
        (CREATE_SITE, json!({ "name": "HQ\nforged line" })),
        (CONNECT_SERVER, json!({ "siteId": world.site, "name": "rec\u{2066}-2" })),
        (ISSUE_TOKEN, json!({ "name": "eve\r\nadmin", "role": "VIEWER" })),
        (
            "mutation($site: ID!, $name: String!) { createRecordingPolicy(siteId: $site, input: {name: $name, rules: [], fallback: RECORD_EVENTS_ONLY}) { position } }",
            json!({ "site": world.site, "name": "p\u{7}" }),
        ),
        (
            "mutation($site: ID!, $name: String!) { createRecordingPolicy(siteId: $site, input: {name: \"p\", rules: [{name: $name, action: DO_NOT_RECORD, notify: false}], fallback: RECORD_EVENTS_ONLY}) { position } }",
            json!({ "site": world.site, "name": "rule\u{202D}" }),
        ),
        (
            "mutation($id: ID!, $text: String!) { addComment(recordingId: $id, text: $text) { position } }",
            json!({ "id": world.recording, "text": "see \u{1b}]0;pwned\u{7}" }),
        ),
    ];
    for (query, variables) in attempts {
        let before = log_head(admin).await;
        let answer = admin.run(query, variables.clone()).await;
        answer.expect_code("VALIDATION");
        assert!(
            answer.body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("control characters"),
            "{variables}: {}",
            answer.body
        );
        assert!(
            written_since(admin, before).await.is_empty(),
            "{variables} wrote"
        );
    }

    // One comment limit: 4096 characters kept whole (lines allowed), one
    // more refused, never cut.
    let add_comment =
        "mutation($id: ID!, $text: String!) { addComment(recordingId: $id, text: $text) { position commentId } }";
    let longest = format!("line one\n\t{}", "x".repeat(4096 - 10));
    assert_eq!(longest.chars().count(), 4096);
    let added = admin
        .data(
            add_comment,
            json!({ "id": world.recording, "text": longest }),
        )
        .await;
    let comments = admin
        .data(
            "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { comments { text } } }",
            json!({ "id": world.recording, "at": position(&added["addComment"]) }),
        )
        .await;
    assert_eq!(
        comments["recording"]["comments"][0]["text"]
            .as_str()
            .unwrap(),
        longest
    );
    let before = log_head(admin).await;
    let refused = admin
        .run(
            add_comment,
            json!({ "id": world.recording, "text": "y".repeat(4097) }),
        )
        .await;
    refused.expect_code("VALIDATION");
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("4096"),
        "{}",
        refused.body
    );
    assert!(written_since(admin, before).await.is_empty());

    // Dashboards: a restricted recording's user is in the top users of
    // those who see restricted recordings only; a deleted one's in nobody's.
    let secret = world.ended_recording("s-2", "CORP\\secret-agent").await;
    let gone = world.ended_recording("s-3", "CORP\\departed").await;
    admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"investigation\") { position } }",
            json!({ "id": secret }),
        )
        .await;
    let deleted = admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": gone }),
        )
        .await;
    let at = position(&deleted["deleteRecording"]);
    let viewer = admin.with_token(&issue_token(admin, "vic", "VIEWER", &[], &[]).await);
    let auditor = admin.with_token(&issue_token(admin, "aud", "AUDITOR", &[], &[]).await);
    let privileged =
        admin.with_token(&issue_token(admin, "pp", "PRIVILEGED_PLAYER", &[], &[]).await);
    let top_users = |client: Client| async move {
        let data = client
            .data(
                "query($at: Int) { dashboard(atLeast: $at) { topUsers { name count } recordingsTotal restrictedCount } }",
                json!({ "at": at }),
            )
            .await;
        let users: Vec<String> = data["dashboard"]["topUsers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect();
        (
            users,
            data["dashboard"]["restrictedCount"].as_i64().unwrap(),
        )
    };
    for (who, client, sees_secret) in [
        ("admin", admin.clone(), true),
        ("privileged", privileged, true),
        ("auditor", auditor, false),
        ("viewer", viewer, false),
    ] {
        let (users, restricted) = top_users(client).await;
        assert!(
            users.contains(&"corp\\carol".to_owned()),
            "{who}: {users:?}"
        );
        assert_eq!(
            users.contains(&"corp\\secret-agent".to_owned()),
            sees_secret,
            "{who}: {users:?}"
        );
        assert!(
            !users.contains(&"corp\\departed".to_owned()),
            "{who}: {users:?}"
        );
        assert_eq!(restricted, 1, "{who}");
    }
    assert!(srs.stop().success());
}
