//! What answers reveal, what playback records, and what content a
//! recording takes, against the real binary:
//!
//! - existence probes: for every kind of caller who may not see a
//!   recording (another site's AUDITOR, an AUDITOR whose grants do not
//!   cover it, a VIEWER, another server's AGENT, no token), a recording that
//!   exists, one that was deleted and one that never existed get the same
//!   answer (code and message, modulo the id) from every route and mutation
//!   that takes a recording id; likewise servers for agents and callers of
//!   other sites; ADMIN and PRIVILEGED_PLAYER (who see it) learn that it was
//!   deleted;
//! - parallel `Range` requests on one recording all succeed and make one
//!   playback fact, and a 416 records none;
//! - the content rules: `maxFileSizeMb`, a strict decimal `seq` within a
//!   window, and no new content after `endRecording`.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A raw HTTP caller of the content routes.
#[derive(Clone)]
struct Http {
    base: String,
    http: reqwest::Client,
}

/// An HTTP answer: status, `code`, `message` (or the body's length).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    code: Option<String>,
    message: String,
}

impl Answer {
    /// The same answer with `id` written as `<id>`.
    fn without(&self, id: &str) -> Answer {
        Answer {
            message: self.message.replace(id, "<id>"),
            ..self.clone()
        }
    }
}

impl Http {
    fn new(srs: &Srs) -> Http {
        Http {
            base: srs.url(""),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("HTTP request");
        let status = response.status().as_u16();
        let body = response.bytes().await.expect("body");
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Answer {
            status,
            code: json["code"].as_str().map(str::to_owned),
            message: json["message"]
                .as_str()
                .map_or_else(|| format!("{} bytes", body.len()), str::to_owned),
        }
    }

    async fn put(&self, token: Option<&str>, path: &str, body: &[u8]) -> Answer {
        let mut request = self
            .http
            .put(format!("{}{path}", self.base))
            .header("x-content-sha256", sha(body))
            .body(body.to_vec());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn chunk(&self, token: Option<&str>, recording: &str, seq: &str, body: &[u8]) -> Answer {
        self.put(
            token,
            &format!("/recordings/{recording}/chunks/{seq}"),
            body,
        )
        .await
    }

    async fn content(&self, token: Option<&str>, recording: &str, range: Option<&str>) -> Answer {
        let mut request = self
            .http
            .get(format!("{}/recordings/{recording}/content", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(range) = range {
            request = request.header("range", range);
        }
        self.send(request).await
    }
}

const CAST: &str =
    "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.5, \"o\", \"$ ls\\r\\n\"]\n";

/// The answer of a GraphQL call: the first error's code and message (id
/// written as `<id>`), or the data.
fn graphql_answer(response: &crate::common::client::Response, id: &str) -> String {
    match response.body["errors"].get(0) {
        Some(error) => format!(
            "{}: {}",
            error["extensions"]["code"].as_str().unwrap_or("<none>"),
            error["message"].as_str().unwrap_or_default()
        ),
        None => format!("data: {}", response.body["data"]),
    }
    .replace(id, "<id>")
}

/// Every route and mutation that takes a recording id, as `who` calls it.
async fn recording_probes(
    http: &Http,
    client: &Client,
    token: Option<&str>,
    id: &str,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let text = |a: Answer| format!("{a:?}");
    out.push((
        "GET content",
        text(http.content(token, id, None).await.without(id)),
    ));
    out.push((
        "GET content range",
        text(http.content(token, id, Some("bytes=0-3")).await.without(id)),
    ));
    out.push((
        "PUT chunk",
        text(http.chunk(token, id, "1", b"probe").await.without(id)),
    ));
    out.push((
        "PUT asciicast",
        text(
            http.put(
                token,
                &format!("/recordings/{id}/asciicast"),
                CAST.as_bytes(),
            )
            .await
            .without(id),
        ),
    ));
    let mutations: [(&'static str, &str); 7] = [
        ("addComment", "mutation($id: ID!) { addComment(recordingId: $id, text: \"probe\") { position } }"),
        ("restrictRecording", "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"probe\") { position } }"),
        ("removeRecordingRestriction", "mutation($id: ID!) { removeRecordingRestriction(recordingId: $id, reason: \"probe\") { position } }"),
        ("recordSessionEvents", "mutation($id: ID!, $events: [SessionEventInput!]!) { recordSessionEvents(recordingId: $id, events: $events) { position } }"),
        ("endRecording", "mutation($id: ID!) { endRecording(recordingId: $id) { position } }"),
        ("archiveRecording", "mutation($id: ID!) { archiveRecording(recordingId: $id) { position } }"),
        ("recording", "query($id: ID!) { recording(id: $id) { id deleted } }"),
    ];
    for (name, document) in mutations {
        let response = client
            .run(
                document,
                json!({ "id": id, "events": [event("LOGON", 0, json!({}))] }),
            )
            .await;
        out.push((name, graphql_answer(&response, id)));
    }
    out
}

/// Every agent operation that takes a server id.
async fn server_probes(client: &Client, id: &str) -> Vec<(&'static str, String)> {
    let operations: [(&'static str, &str); 5] = [
        ("heartbeat", "mutation($id: ID!) { heartbeat(serverId: $id) { position } }"),
        ("startRecording", "mutation($id: ID!) { startRecording(input: {serverId: $id, sessionId: \"probe\", session: {user: \"CORP\\\\p\", host: \"h\"}}) { recordingId } }"),
        ("reportInstallProgress", "mutation($id: ID!) { reportInstallProgress(serverId: $id, step: \"DOWNLOADING\", status: IN_PROGRESS) { position } }"),
        ("pendingResponses", "query($id: ID!) { pendingResponses(serverId: $id) { id } }"),
        ("server", "query($id: ID!) { server(id: $id) { id } }"),
    ];
    let mut out = Vec::new();
    for (name, document) in operations {
        let response = client.run(document, json!({ "id": id })).await;
        out.push((name, graphql_answer(&response, id)));
    }
    out
}

/// How many `type` facts the log holds (as the admin reads the history).
async fn count(admin: &Client, event_type: &str) -> usize {
    let page = admin
        .data(
            "query($types: [String!]) { history(filter: {types: $types}, first: 500) { edges { cursor } } }",
            json!({ "types": [event_type] }),
        )
        .await;
    page["history"]["edges"].as_array().unwrap().len()
}

#[tokio::test]
async fn answers_reveal_nothing_to_who_may_not_see_a_recording_or_server() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin_token = srs.admin_token();
    let admin = Client::new(&srs, Some(&admin_token));
    let http = Http::new(&srs);
    let site = create_site(&admin, "A").await;
    let other_site = create_site(&admin, "B").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "a-1").await;
    let (_, other_agent_token) = connect_server(&admin, &site, "a-2").await;
    let agent = admin.with_token(&agent_token);

    // A recording that exists, one deleted, one that never existed.
    let end = "mutation($id: ID!) { endRecording(recordingId: $id) { position } }";
    let mut ids = Vec::new();
    for session in ["kept", "gone"] {
        let id = start_recording(&agent, &server, session, "CORP\\ann", &[]).await["recordingId"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            http.chunk(Some(&agent_token), &id, "0", b"secret screen")
                .await
                .status,
            201
        );
        agent.data(end, json!({ "id": id })).await;
        ids.push(id);
    }
    let (kept, gone) = (ids[0].clone(), ids[1].clone());
    admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": gone }),
        )
        .await;
    let absent = uuid::Uuid::now_v7().to_string();

    let grant_token = issue_token(&admin, "narrow", "AUDITOR", &[&site], &[]).await;
    admin
        .data(
            "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"narrow\", scope: {recordedUsers: [\"CORP\\\\bob\"]}}) { position } }",
            json!({ "site": site }),
        )
        .await;
    let callers: Vec<(&str, Option<String>)> = vec![
        (
            "AUDITOR of another site",
            Some(issue_token(&admin, "far", "AUDITOR", &[&other_site], &[]).await),
        ),
        ("AUDITOR without a grant for it", Some(grant_token)),
        (
            "VIEWER",
            Some(issue_token(&admin, "vic", "VIEWER", &[], &[]).await),
        ),
        ("AGENT of another server", Some(other_agent_token.clone())),
        ("no token", None),
    ];
    let denied_before = count(&admin, "AccessDenied").await;
    for (who, token) in &callers {
        let client = match token {
            Some(token) => admin.with_token(token),
            None => Client::new(&srs, None),
        };
        let seen = recording_probes(&http, &client, token.as_deref(), &kept).await;
        for id in [&gone, &absent] {
            let other = recording_probes(&http, &client, token.as_deref(), id).await;
            for ((name, a), (_, b)) in seen.iter().zip(&other) {
                assert_eq!(
                    a, b,
                    "{who}: {name} tells an existing recording from another"
                );
            }
        }
        // Nothing says "forbidden" or "deleted", or shows data: a caller
        // with a token is told the recording is not found (the `recording`
        // query answers null, or refuses a role that sees no recordings
        // whatever the id).
        for (name, answer) in &seen {
            assert!(!answer.contains("deleted"), "{who}: {name}: {answer}");
            if token.is_some() && *name != "recording" {
                assert!(answer.contains("NOT_FOUND"), "{who}: {name}: {answer}");
                assert!(
                    answer.contains("recording <id> not found"),
                    "{who}: {name}: {answer}"
                );
            }
        }
    }
    // The refusals are still audit facts (the answers just do not say so).
    assert!(count(&admin, "AccessDenied").await > denied_before);

    // Who may see it learns that it was deleted, and that an absent one is absent.
    let privileged = issue_token(&admin, "pp", "PRIVILEGED_PLAYER", &[], &[]).await;
    for token in [&admin_token, &privileged] {
        let deleted = http.content(Some(token), &gone, None).await;
        assert_eq!(
            (deleted.status, deleted.code.as_deref()),
            (404, Some("NOT_FOUND"))
        );
        assert!(deleted.message.contains("was deleted"), "{deleted:?}");
        let missing = http
            .content(Some(token), &absent, None)
            .await
            .without(&absent);
        assert_eq!(missing.message, "recording <id> not found");
        let row = admin
            .with_token(token)
            .data(
                "query($id: ID!) { recording(id: $id) { deleted } }",
                json!({ "id": gone }),
            )
            .await;
        assert_eq!(row["recording"]["deleted"], true, "{row}");
        let client = admin.with_token(token);
        let on_deleted = recording_probes(&http, &client, Some(token), &gone).await;
        for name in ["addComment", "restrictRecording"] {
            let (_, answer) = on_deleted.iter().find(|(n, _)| *n == name).unwrap();
            assert!(answer.contains("deleted"), "{name}: {answer}");
        }
        for (name, answer) in recording_probes(&http, &client, Some(token), &absent).await {
            if name == "recording" {
                assert_eq!(answer, "data: {\"recording\":null}");
            } else {
                assert!(
                    answer.contains("recording <id> not found"),
                    "{name}: {answer}"
                );
            }
        }
    }

    // Servers: another server's agent and callers of another site cannot
    // tell a server from an absent one.
    let absent_server = uuid::Uuid::now_v7().to_string();
    let server_callers: Vec<(&str, Client)> = vec![
        (
            "AGENT of another server",
            admin.with_token(&other_agent_token),
        ),
        (
            "AUDITOR of another site",
            admin.with_token(&issue_token(&admin, "far2", "AUDITOR", &[&other_site], &[]).await),
        ),
        (
            "VIEWER of another site",
            admin.with_token(&issue_token(&admin, "vic2", "VIEWER", &[&other_site], &[]).await),
        ),
        (
            "ADMIN of another site",
            admin.with_token(&issue_token(&admin, "adm2", "ADMIN", &[&other_site], &[]).await),
        ),
        ("no token", Client::new(&srs, None)),
    ];
    for (who, client) in &server_callers {
        let seen = server_probes(client, &server).await;
        let other = server_probes(client, &absent_server).await;
        assert_eq!(seen, other, "{who}");
        for (name, answer) in &seen {
            assert!(!answer.contains("FORBIDDEN"), "{who}: {name}: {answer}");
        }
    }
    assert!(srs.stop().success());
}

#[tokio::test]
async fn parallel_ranges_all_play_and_make_one_fact_and_a_416_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let http = Http::new(&srs);
    let site = create_site(&admin, "A").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "a-1").await;
    let agent = admin.with_token(&agent_token);
    let id = start_recording(&agent, &server, "video", "CORP\\ann", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let body: Vec<u8> = (0..64 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(
        http.chunk(Some(&agent_token), &id, "0", &body).await.status,
        201
    );
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    let auditor = issue_token(&admin, "audrey", "AUDITOR", &[&site], &[]).await;
    grant_whole_site(&admin, &site, "audrey").await;
    let before = count(&admin, "RecordingPlayed").await;

    let ranges = (0..64).map(|n| {
        let (http, auditor, id) = (http.clone(), auditor.clone(), id.clone());
        tokio::spawn(async move {
            let from = n * 1024;
            http.content(
                Some(&auditor),
                &id,
                Some(&format!("bytes={from}-{}", from + 1023)),
            )
            .await
        })
    });
    let answers = futures_util::future::join_all(ranges).await;
    let statuses: Vec<u16> = answers.into_iter().map(|a| a.unwrap().status).collect();
    assert!(statuses.iter().all(|&s| s == 206), "{statuses:?}");
    let played = count(&admin, "RecordingPlayed").await - before;
    // One fact per player and minute: two if the burst straddled a minute.
    assert!(
        (1..=2).contains(&played),
        "{played} playback facts for one burst"
    );

    // A range outside the content plays nothing and records nothing (a
    // caller who has not played it yet, so no earlier fact stands in).
    let privileged = issue_token(&admin, "pp", "PRIVILEGED_PLAYER", &[], &[]).await;
    let before = count(&admin, "RecordingPlayed").await;
    let outside = http
        .content(Some(&privileged), &id, Some("bytes=999999-"))
        .await;
    assert_eq!(outside.status, 416);
    assert_eq!(count(&admin, "RecordingPlayed").await, before);
    assert_eq!(
        http.content(Some(&privileged), &id, Some("bytes=0-9"))
            .await
            .status,
        206
    );
    assert_eq!(count(&admin, "RecordingPlayed").await, before + 1);
    assert!(srs.stop().success());
}

#[tokio::test]
async fn content_stays_within_max_file_size_strict_seqs_and_the_recordings_end() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let http = Http::new(&srs);
    let site = create_site(&admin, "A").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "a-1").await;
    let agent = admin.with_token(&agent_token);
    let token = Some(agent_token.as_str());
    admin
        .data(
            "mutation($id: ID!) { updateServerSettings(serverId: $id, settings: {maxFileSizeMb: 10}) { position } }",
            json!({ "id": server }),
        )
        .await;
    let start = |session: &'static str| {
        let agent = agent.clone();
        let server = server.clone();
        async move {
            start_recording(&agent, &server, session, "CORP\\ann", &[]).await["recordingId"]
                .as_str()
                .unwrap()
                .to_owned()
        }
    };
    const MB: usize = 1 << 20;

    // ---- maxFileSizeMb: 10 MB per recording ---------------------------------
    let big = start("big").await;
    let eight = vec![1u8; 8 * MB];
    assert_eq!(http.chunk(token, &big, "0", &eight).await.status, 201);
    let over = http.chunk(token, &big, "1", &vec![2u8; 2 * MB + 1]).await;
    assert_eq!(
        (over.status, over.code.as_deref()),
        (413, Some("VALIDATION")),
        "{over:?}"
    );
    assert!(
        over.message.contains("maxFileSizeMb") && over.message.contains("next part"),
        "{over:?}"
    );
    assert_eq!(
        http.chunk(token, &big, "1", &vec![2u8; 2 * MB])
            .await
            .status,
        201,
        "10 MB exactly"
    );
    assert_eq!(http.chunk(token, &big, "2", b"x").await.status, 413);
    // The next part takes the rest.
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": big }),
        )
        .await;
    let next = agent
        .data(START_RECORDING, json!({ "serverId": server, "sessionId": "big", "user": "CORP\\ann", "host": "vda-01" }))
        .await["startRecording"]
        .clone();
    assert_eq!(next["part"], 2, "{next}");
    let part2 = next["recordingId"].as_str().unwrap();
    assert_ne!(part2, big);
    assert_eq!(http.chunk(token, part2, "0", b"x").await.status, 201);

    // An asciicast is the chunk at seq 0 and counts too.
    let cast = start("cast").await;
    assert_eq!(http.chunk(token, &cast, "1", &eight).await.status, 201);
    let mut long_cast = String::from("{\"version\": 2, \"width\": 80, \"height\": 24}\n");
    while long_cast.len() <= 2 * MB + 1 {
        long_cast.push_str(&format!("[0.5, \"o\", \"{}\"]\n", "y".repeat(4_000)));
    }
    let refused = http
        .put(
            token,
            &format!("/recordings/{cast}/asciicast"),
            long_cast.as_bytes(),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code.as_deref()),
        (413, Some("VALIDATION")),
        "{refused:?}"
    );

    // ---- strict decimal seq, within a window ---------------------------------
    let seqs = start("seqs").await;
    for bad in [
        "+3",
        "000",
        "01",
        "-1",
        "1e3",
        "4294967296",
        "99999999999",
        "%203",
    ] {
        let answer = http.chunk(token, &seqs, bad, b"x").await;
        assert_eq!(
            (answer.status, answer.code.as_deref()),
            (400, Some("VALIDATION")),
            "{bad}: {answer:?}"
        );
    }
    assert_eq!(http.chunk(token, &seqs, "0", b"a").await.status, 201);
    // At most 64 past the first missing chunk (1).
    let far = http.chunk(token, &seqs, "66", b"x").await;
    assert_eq!(
        (far.status, far.code.as_deref()),
        (400, Some("VALIDATION")),
        "{far:?}"
    );
    assert_eq!(
        http.chunk(token, &seqs, "4294967295", b"x").await.status,
        400
    );
    assert_eq!(http.chunk(token, &seqs, "65", b"c").await.status, 201);
    assert_eq!(http.chunk(token, &seqs, "2", b"b").await.status, 201);

    // ---- nothing new after endRecording ---------------------------------------
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": seqs }),
        )
        .await;
    let late = http.chunk(token, &seqs, "66", b"late").await;
    assert_eq!(
        (late.status, late.code.as_deref()),
        (409, Some("CONFLICT")),
        "{late:?}"
    );
    assert!(late.message.contains("ended"), "{late:?}");
    // The grace: a chunk missing below the last one stored (a failed
    // upload retried) is still taken, and a repeated one is the same write.
    assert_eq!(http.chunk(token, &seqs, "1", b"gap").await.status, 201);
    assert_eq!(http.chunk(token, &seqs, "0", b"a").await.status, 200);
    let cast_late = http
        .put(
            token,
            &format!("/recordings/{seqs}/asciicast"),
            CAST.as_bytes(),
        )
        .await;
    assert!(
        cast_late.status == 400 || cast_late.status == 409,
        "{cast_late:?}"
    );
    assert!(srs.stop().success());
}
