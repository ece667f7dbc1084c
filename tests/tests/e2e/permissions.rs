//! Permissions that never widen, against the real binary:
//! - an AUDITOR narrowed to some recordings whose only permission is
//!   revoked sees fewer (none), not the whole site as it used to;
//! - an AUDITOR lifts a restriction only where a permission of its own
//!   covers the recording (otherwise `NOT_FOUND`, the restriction stays);
//! - `wholeSite` scopes are explicit and validated;
//! - a site-scoped AUDITOR reads the `history` of its sites (and
//!   `srs replay --url`), nothing global and nothing of other sites;
//! - a log written under the old rule, served by this one, is migrated
//!   once on start so that nobody gains or loses a recording.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{json, Value};
use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
use srs_domain::model::testing::fixtures::{started_event, T0};
use srs_domain::model::{hash_secret, DomainEvent, PlaybackScope, Role};
use uuid::Uuid;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

const RECORDINGS: &str = "query($at: Int) { recordings(first: 500, atLeast: $at) {
  totalCount edges { node { id user restricted } } } }";
const RECORDING: &str =
    "query($id: ID!, $at: Int) { recording(id: $id, atLeast: $at) { id restricted } }";
const GRANT: &str = "mutation($site: ID!, $who: String!, $scope: PlaybackScopeInput!) {
  grantPlaybackPermission(input: {siteId: $site, principal: $who, scope: $scope}) { position permissionId }
}";
const REVOKE: &str = "mutation($id: ID!) { revokePlaybackPermission(id: $id) { position } }";
const UNRESTRICT: &str = "mutation($id: ID!) { removeRecordingRestriction(recordingId: $id, reason: \"let me see\") { position } }";
const HISTORY: &str = "query($after: String, $at: Int) { history(first: 500, after: $after, atLeast: $at) {
  edges { node { position type siteId recordingId stream } } pageInfo { hasNextPage endCursor } } }";

/// The ids an auditor lists once the read models reached `at`.
async fn listed(client: &Client, at: i64) -> BTreeSet<String> {
    let data = client.data(RECORDINGS, json!({ "at": at })).await;
    let ids: BTreeSet<String> = data["recordings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        data["recordings"]["totalCount"].as_u64(),
        Some(ids.len() as u64),
        "{data}"
    );
    ids
}

fn id_of(payload: &Value) -> String {
    payload["recordingId"].as_str().unwrap().to_owned()
}

/// Every event the client's `history` answers (once the read models
/// reached `at`), all pages.
async fn whole_history(client: &Client, at: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = Value::Null;
    loop {
        let page = client
            .data(HISTORY, json!({ "after": after, "at": at }))
            .await;
        let history = &page["history"];
        out.extend(
            history["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if history["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = history["pageInfo"]["endCursor"].clone();
    }
}

#[tokio::test]
async fn revoking_an_auditors_only_permission_leaves_it_nothing_not_everything() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    let other_site = create_site(&admin, "Branch").await;
    let mut agents = Vec::new();
    for (s, name) in [(&site, "hq-1"), (&other_site, "br-1")] {
        record_everyone(&admin, s).await;
        let (server, secret) = connect_server(&admin, s, name).await;
        agents.push((server, admin.with_token(&secret)));
    }
    activate_detection_policy(
        &admin,
        &site,
        "name: \"USB\", logged: [LOGON, APP_START, WEB_BROWSING, USB_MASS_STORAGE], rules: [{type: USB_MASS_STORAGE, severity: HIGH}]",
    )
    .await;
    let (server, agent) = &agents[0];
    let mut alice = Vec::new();
    for n in 0..3 {
        alice.push(id_of(
            &start_recording(agent, server, &format!("a{n}"), "CORP\\alice", &[]).await,
        ));
    }
    let bob = id_of(&start_recording(agent, server, "b0", "CORP\\bob", &[]).await);
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": alice[0], "events": suspicious_batch() }),
        )
        .await;
    let (other_server, other_agent) = &agents[1];
    start_recording(other_agent, other_server, "c0", "CORP\\carol", &[]).await;

    let auditor = admin.with_token(&issue_token(&admin, "narrowed", "AUDITOR", &[], &[]).await);
    // No permission: nothing at all (the old rule showed all 5).
    assert!(listed(&auditor, log_head(&admin).await).await.is_empty());
    let granted = admin
        .data(
            GRANT,
            json!({ "site": site, "who": "narrowed", "scope": { "recordedUsers": ["CORP\\alice"] } }),
        )
        .await;
    let permission = granted["grantPlaybackPermission"]["permissionId"].clone();
    let alice_set: BTreeSet<String> = alice.iter().cloned().collect();
    assert_eq!(listed(&auditor, log_head(&admin).await).await, alice_set);
    let detections =
        "query($at: Int) { detectedEvents(atLeast: $at) { edges { node { recordingId } } } }";
    let at = position(&recorded["recordSessionEvents"]);
    let seen = auditor.data(detections, json!({ "at": at })).await;
    assert!(
        !seen["detectedEvents"]["edges"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{seen}"
    );
    let content = reqwest::Client::new();
    let content_status = |id: &str| {
        let request = content
            .get(srs.url(&format!("/recordings/{id}/content")))
            .bearer_auth(auditor.token().unwrap());
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_ne!(
        content_status(&alice[0]).await,
        404,
        "alice's is hers to play"
    );

    // Her only permission revoked: fewer (none), not the whole site.
    admin.data(REVOKE, json!({ "id": permission })).await;
    assert!(
        listed(&auditor, log_head(&admin).await).await.is_empty(),
        "a revoke widened access"
    );
    for id in alice.iter().chain([&bob]) {
        let one = auditor
            .data(RECORDING, json!({ "id": id, "at": log_head(&admin).await }))
            .await;
        assert!(one["recording"].is_null(), "{one}");
    }
    let seen = auditor
        .data(detections, json!({ "at": log_head(&admin).await }))
        .await;
    assert_eq!(seen["detectedEvents"]["edges"], json!([]), "{seen}");
    assert_eq!(content_status(&alice[0]).await, 404);
    assert!(whole_history(&auditor, log_head(&admin).await)
        .await
        .iter()
        .all(|e| e["recordingId"].is_null()));

    // An ADMIN's restriction: an auditor without a permission covering the
    // recording cannot lift it, and learns nothing of it.
    admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case\") { position } }",
            json!({ "id": bob }),
        )
        .await;
    auditor
        .run(UNRESTRICT, json!({ "id": bob }))
        .await
        .expect_code("NOT_FOUND");
    let still = admin
        .data(
            RECORDING,
            json!({ "id": bob, "at": log_head(&admin).await }),
        )
        .await;
    assert_eq!(still["recording"]["restricted"], true, "{still}");
    admin
        .data(
            GRANT,
            json!({ "site": site, "who": "narrowed", "scope": { "recordedUsers": ["CORP\\alice"] } }),
        )
        .await;
    auditor
        .run(UNRESTRICT, json!({ "id": bob }))
        .await
        .expect_code("NOT_FOUND");
    // A whole-site permission covers bob's recording: now she may.
    admin
        .data(
            GRANT,
            json!({ "site": site, "who": "narrowed", "scope": { "wholeSite": true } }),
        )
        .await;
    auditor.data(UNRESTRICT, json!({ "id": bob })).await;
    let mut whole_site = alice_set.clone();
    whole_site.insert(bob.clone());
    assert_eq!(
        listed(&auditor, log_head(&admin).await).await,
        whole_site,
        "the other site stays out"
    );
    let permissions = admin
        .data(
            "query($site: ID!) { playbackPermissions(siteId: $site) { principal scope { wholeSite recordedUsers } } }",
            json!({ "site": site }),
        )
        .await;
    let whole: Vec<bool> = permissions["playbackPermissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["scope"]["wholeSite"].as_bool().unwrap())
        .collect();
    assert_eq!(whole.iter().filter(|w| **w).count(), 1, "{permissions}");

    // Whole-site scopes are explicit: contradictions are refused, nothing written.
    let before = log_head(&admin).await;
    for scope in [
        json!({ "wholeSite": true, "recordedUsers": ["CORP\\alice"] }),
        json!({ "wholeSite": false }),
        json!({ "wholeSite": false, "hosts": [] }),
    ] {
        admin
            .run(GRANT, json!({ "site": site, "who": "x", "scope": scope }))
            .await
            .expect_code("VALIDATION");
    }
    assert_eq!(log_head(&admin).await, before);
    assert!(srs.stop().success());
}

#[tokio::test]
async fn a_site_scoped_auditor_reads_the_history_of_its_sites_only() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    let other_site = create_site(&admin, "Branch").await;
    let mut recordings = Vec::new();
    for (s, name) in [(&site, "hq-1"), (&other_site, "br-1")] {
        record_everyone(&admin, s).await;
        let (server, secret) = connect_server(&admin, s, name).await;
        let agent = admin.with_token(&secret);
        recordings.push(id_of(
            &start_recording(&agent, &server, "s1", "CORP\\alice", &[]).await,
        ));
    }
    let secret = issue_token(&admin, "scoped", "AUDITOR", &[&site], &[]).await;
    let scoped = admin.with_token(&secret);
    admin
        .data(
            GRANT,
            json!({ "site": site, "who": "scoped", "scope": { "wholeSite": true } }),
        )
        .await;
    let ungranted = admin.with_token(&issue_token(&admin, "bare", "AUDITOR", &[&site], &[]).await);

    // Without a site filter: its site's events (it used to be FORBIDDEN).
    let events = whole_history(&scoped, log_head(&admin).await).await;
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["siteId"], site.as_str(), "only its site: {e}");
    }
    let types: BTreeSet<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    for wanted in [
        "SiteCreated",
        "ServerConnected",
        "RecordingStarted",
        "PlaybackPermissionGranted",
    ] {
        assert!(types.contains(wanted), "{wanted} missing: {types:?}");
    }
    // Tokens (no site) and the migration marker are global: left out.
    for global in ["TokenIssued", "PlaybackPermissionsMigrated"] {
        assert!(!types.contains(global), "{global} shown: {types:?}");
    }
    assert!(events
        .iter()
        .any(|e| e["recordingId"] == recordings[0].as_str()));
    assert!(events
        .iter()
        .all(|e| e["recordingId"] != recordings[1].as_str()));
    // The same history without a permission: the site's, no recording's.
    let bare = whole_history(&ungranted, log_head(&admin).await).await;
    assert!(!bare.is_empty());
    assert!(bare
        .iter()
        .all(|e| e["siteId"] == site.as_str() && e["recordingId"].is_null()));
    // Another site named explicitly is still refused.
    scoped
        .run(
            "query($site: ID!) { history(filter: {siteId: $site}) { edges { cursor } } }",
            json!({ "site": other_site }),
        )
        .await
        .expect_code("FORBIDDEN");

    // `srs replay --url` as the scoped auditor: the same events.
    let url = srs.url("");
    let (code, stdout, stderr) = run_srs(&["replay", "--url", &url, "--token", &secret], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let replayed: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(replayed.len() >= events.len(), "{stdout}");
    let other = other_site.as_str();
    for line in &replayed {
        let text = line.to_string();
        assert!(!text.contains(other), "another site's event: {text}");
        assert!(!text.contains("TokenIssued"), "a global event: {text}");
    }
    assert!(srs.stop().success());
}

/// The actor of the old log's facts.
fn old_actor() -> Actor {
    Actor::system("old-release")
}

async fn append(store: &SledEventStore<DomainEvent>, stream: String, event: DomainEvent) {
    let _ = store
        .append(
            &stream,
            ExpectedVersion::Any,
            vec![NewEvent::new(old_actor(), event)],
        )
        .await
        .unwrap();
}

fn token(id: u128, name: &str, role: Role, sites: &[Uuid], secret: &str) -> DomainEvent {
    DomainEvent::TokenIssued {
        token_id: Uuid::from_u128(id),
        name: name.into(),
        role,
        site_ids: sites.iter().copied().collect(),
        groups: vec![],
        secret_sha256: hash_secret(secret),
        at: T0,
    }
}

fn recording(id: u128, site: Uuid, user: &str) -> DomainEvent {
    let mut event = started_event(Uuid::from_u128(id), T0);
    if let DomainEvent::RecordingStarted {
        site_id,
        user: u,
        session_id,
        ..
    } = &mut event
    {
        *site_id = site;
        *u = user.into();
        *session_id = format!("s{id}");
    }
    event
}

const SITE_A: Uuid = Uuid::from_u128(0xa);
const SITE_B: Uuid = Uuid::from_u128(0xb);

/// A log as the release before explicit permissions wrote it: two sites,
/// five recordings (one restricted), an admin and four auditors.
async fn old_log(data: &Path) {
    std::fs::create_dir_all(data).unwrap();
    let store = SledEventStore::<DomainEvent>::open(data, StoreOptions::default()).unwrap();
    for (site, name) in [(SITE_A, "A"), (SITE_B, "B")] {
        append(
            &store,
            format!("site-{site}"),
            DomainEvent::SiteCreated {
                site_id: site,
                name: name.into(),
                at: T0,
            },
        )
        .await;
    }
    for (id, site, user) in [
        (0x100, SITE_A, "CORP\\alice"),
        (0x101, SITE_A, "CORP\\bob"),
        (0x102, SITE_A, "CORP\\alice"),
        (0x103, SITE_B, "CORP\\carol"),
        (0x104, SITE_B, "CORP\\alice"),
    ] {
        append(
            &store,
            format!("recording-{}", Uuid::from_u128(id)),
            recording(id, site, user),
        )
        .await;
    }
    append(
        &store,
        format!("recording-{}", Uuid::from_u128(0x102)),
        DomainEvent::RecordingRestricted {
            recording_id: Uuid::from_u128(0x102),
            site_id: SITE_A,
            reason: "HR".into(),
            by: "root".into(),
            at: T0,
        },
    )
    .await;
    for (id, name, role, sites, secret) in [
        (1, "root", Role::Admin, vec![], "old-admin-secret"),
        (2, "wide", Role::Auditor, vec![], "old-wide-secret"),
        (
            3,
            "site-a",
            Role::Auditor,
            vec![SITE_A],
            "old-site-a-secret",
        ),
        (4, "narrow", Role::Auditor, vec![], "old-narrow-secret"),
        (5, "gone", Role::Auditor, vec![], "old-gone-secret"),
    ] {
        append(
            &store,
            format!("token-{}", Uuid::from_u128(id)),
            token(id, name, role, &sites, secret),
        )
        .await;
    }
    append(
        &store,
        format!("token-{}", Uuid::from_u128(5)),
        DomainEvent::TokenRevoked {
            token_id: Uuid::from_u128(5),
            name: "gone".into(),
            at: T0,
        },
    )
    .await;
    // narrow: alice on site A, and (no permission on B) the whole of B.
    append(
        &store,
        format!("permission-{}", Uuid::from_u128(0x900)),
        DomainEvent::PlaybackPermissionGranted {
            permission_id: Uuid::from_u128(0x900),
            site_id: SITE_A,
            principal: "narrow".into(),
            scope: PlaybackScope {
                recorded_users: vec!["CORP\\alice".into()],
                ..Default::default()
            },
            at: T0,
        },
    )
    .await;
    store.flush().unwrap();
}

fn ids(ns: &[u128]) -> BTreeSet<String> {
    ns.iter().map(|n| Uuid::from_u128(*n).to_string()).collect()
}

/// How many events of `kind` the log holds.
async fn count(admin: &Client, kind: &str) -> usize {
    admin
        .data(
            "query($types: [String!]) { history(filter: {types: $types}, first: 500) { edges { cursor } } }",
            json!({ "types": [kind] }),
        )
        .await["history"]["edges"]
        .as_array()
        .unwrap()
        .len()
}

#[tokio::test]
async fn serving_a_log_of_the_old_rule_keeps_what_every_auditor_saw() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    old_log(&data).await;
    // What the old rule showed each of them (unrestricted only).
    let expected = [
        ("old-wide-secret", ids(&[0x100, 0x101, 0x103, 0x104])),
        ("old-site-a-secret", ids(&[0x100, 0x101])),
        ("old-narrow-secret", ids(&[0x100, 0x103, 0x104])),
    ];
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some("old-admin-secret"));
    for (secret, seen) in &expected {
        let auditor = admin.with_token(secret);
        assert_eq!(
            &listed(&auditor, log_head(&admin).await).await,
            seen,
            "{secret}"
        );
    }
    assert_eq!(count(&admin, "PlaybackPermissionsMigrated").await, 1);
    // wide: A and B; site-a: A; narrow: B (it keeps its grant on A).
    assert_eq!(count(&admin, "PlaybackPermissionGranted").await, 1 + 4);
    let trail = admin
        .data(
            "query($at: Int!) { auditTrail(filter: {categories: [ACCESS]}, first: 50, atLeast: $at) { edges { node { action actor } } } }",
            json!({ "at": log_head(&admin).await }),
        )
        .await;
    let entries: Vec<(String, String)> = trail["auditTrail"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["node"]["action"].as_str().unwrap().to_owned(),
                e["node"]["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        entries.contains(&("permissions.migrated".into(), "system:migration".into())),
        "{entries:?}"
    );
    assert_eq!(
        entries
            .iter()
            .filter(|(action, actor)| action == "permission.granted" && actor == "system:migration")
            .count(),
        4,
        "{entries:?}"
    );
    assert!(srs.stop().success());

    // Once: a restart migrates nothing again, and everyone still sees the same.
    let srs = Srs::start(&data).await;
    let admin = admin.rebase(&srs);
    assert_eq!(count(&admin, "PlaybackPermissionsMigrated").await, 1);
    assert_eq!(count(&admin, "PlaybackPermissionGranted").await, 5);
    for (secret, seen) in &expected {
        assert_eq!(
            &listed(&admin.with_token(secret), log_head(&admin).await).await,
            seen,
            "{secret}"
        );
    }
    // An auditor issued under the new rule starts with nothing.
    let fresh = admin.with_token(&issue_token(&admin, "fresh", "AUDITOR", &[], &[]).await);
    assert!(listed(&fresh, log_head(&admin).await).await.is_empty());
    assert!(srs.stop().success());
}

#[tokio::test]
async fn watching_a_live_session_ends_when_the_permission_it_played_under_is_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, secret) = connect_server(&admin, &site, "hq-1").await;
    let agent = admin.with_token(&secret);
    let recording = id_of(&start_recording(&agent, &server, "live", "CORP\\alice", &[]).await);
    let watcher = admin.with_token(&issue_token(&admin, "watcher", "AUDITOR", &[], &[]).await);
    let mine = grant_whole_site(&admin, &site, "watcher").await;
    let theirs = grant_whole_site(&admin, &site, "someone-else").await;
    // The permission must be in the read models before the subscription asks.
    let at = log_head(&admin).await;
    assert!(!listed(&watcher, at).await.is_empty());

    let mut live = watcher
        .subscribe(
            "subscription($id: ID!) { recordingEvents(recordingId: $id) { type } }",
            json!({ "id": recording }),
        )
        .await;
    assert_eq!(live.ack["type"], "connection_ack", "{}", live.ack);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let send = |n: i64| {
        let agent = agent.clone();
        let recording = recording.clone();
        async move {
            agent
                .data(
                    RECORD_EVENTS,
                    json!({ "recordingId": recording, "events": [event("APP_START", n * 1_000, json!({ "app": "notepad.exe" }))] }),
                )
                .await;
        }
    };
    let wait = std::time::Duration::from_secs(15);
    send(1).await;
    assert_eq!(
        live.next_data(wait).await["recordingEvents"]["type"],
        "APP_START"
    );
    // Somebody else's permission revoked: the watcher keeps watching.
    admin.data(REVOKE, json!({ "id": theirs })).await;
    send(2).await;
    assert_eq!(
        live.next_data(wait).await["recordingEvents"]["type"],
        "APP_START"
    );
    // Its own: the stream ends, nothing more is delivered.
    admin.data(REVOKE, json!({ "id": mine })).await;
    send(3).await;
    let last = live.next(wait).await.expect("the stream ends");
    assert_eq!(last["type"], "complete", "{last}");
    live.close().await;
    assert!(srs.stop().success());
}
