//! Recording content over HTTP against the real binary: chunked upload
//! (idempotent, conflicts, corrupt and interrupted uploads), Range
//! playback gated by access, archive and restore, deletion that leaves the
//! content unrecoverable in the data directory while `srs verify` passes,
//! asciicast uploads, and retention run on demand.

use std::path::Path;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

/// A raw HTTP caller for the content routes.
struct Http {
    base: String,
    http: reqwest::Client,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    #[track_caller]
    fn expect(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.json()["code"].as_str()),
            (status, Some(code)),
            "{}",
            String::from_utf8_lossy(&self.body)
        );
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Http {
    fn new(srs: &Srs) -> Http {
        Http {
            base: srs.url(""),
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("HTTP request");
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.bytes().await.expect("body").to_vec(),
        }
    }

    async fn put(&self, token: Option<&str>, path: &str, body: &[u8], sha: Option<&str>) -> Reply {
        let mut request = self
            .http
            .put(format!("{}{path}", self.base))
            .body(body.to_vec());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(sha) = sha {
            request = request.header("x-content-sha256", sha);
        }
        self.send(request).await
    }

    async fn chunk(&self, token: &str, recording: &str, seq: u32, body: &[u8]) -> Reply {
        let path = format!("/recordings/{recording}/chunks/{seq}");
        self.put(Some(token), &path, body, Some(&sha(body))).await
    }

    async fn content(&self, token: Option<&str>, recording: &str, range: Option<&str>) -> Reply {
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

const PLAYBACK: &str = "query($id: ID!) { recording(id: $id) { playback {
  contentUrl contentType contentSize chunks { seq size sha256 } } } }";

async fn playback(client: &Client, id: &str) -> Value {
    client.data(PLAYBACK, json!({ "id": id })).await["recording"]["playback"].clone()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether any file under `dir` holds `needle`.
fn anywhere(dir: &Path, needle: &[u8]) -> bool {
    files(dir).iter().any(|file| {
        std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

#[tokio::test]
async fn content_uploads_play_with_ranges_and_are_shredded_for_good() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let admin_token = srs.admin_token();
    let admin = Client::new(&srs, Some(&admin_token));
    let http = Http::new(&srs);
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let (_, other_agent) = connect_server(&admin, &site, "sr-2").await;
    let auditor_token = issue_token(&admin, "audrey", "AUDITOR", &[&site], &[]).await;
    grant_whole_site(&admin, &site, "audrey").await;
    let auditor = Client::new(&srs, Some(&auditor_token));
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let id = started["recordingId"].as_str().unwrap().to_owned();

    // ---- upload -------------------------------------------------------------
    let chunks = [payload("a", 1_000), payload("b", 2_500), payload("c", 700)];
    let first = http.chunk(&agent_token, &id, 0, &chunks[0]).await;
    assert_eq!(
        first.status,
        201,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let receipt = first.json();
    assert_eq!(receipt["seq"], 0);
    assert_eq!(receipt["size"], 1_000);
    assert_eq!(receipt["sha256"], sha(&chunks[0]));
    let position = receipt["position"].as_u64().unwrap();
    assert!(position > 0);

    // Identical again: 200, the same position, nothing new.
    let again = http.chunk(&agent_token, &id, 0, &chunks[0]).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["position"].as_u64(), Some(position));

    // A corrupted chunk (hash mismatch) is refused and nothing is stored.
    let path1 = format!("/recordings/{id}/chunks/1");
    http.put(Some(&agent_token), &path1, &chunks[1], Some(&sha(b"other")))
        .await
        .expect(400, "VALIDATION");
    http.put(Some(&agent_token), &path1, &chunks[1], None)
        .await
        .expect(400, "VALIDATION");

    // An upload interrupted mid-body stores nothing ...
    {
        let mut socket = tokio::net::TcpStream::connect(srs.addr).await.unwrap();
        let head = format!(
            "PUT {path1} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {agent_token}\r\nx-content-sha256: {}\r\ncontent-length: {}\r\n\r\n",
            srs.addr,
            sha(&chunks[1]),
            chunks[1].len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        socket.write_all(&chunks[1][..1_000]).await.unwrap();
        socket.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            socket.read_to_end(&mut rest),
        )
        .await;
    }
    let seen = playback(&admin, &id).await;
    assert_eq!(seen["chunks"].as_array().unwrap().len(), 1, "{seen}");
    assert!(!anywhere(&data, &chunks[1][..64]), "no plain bytes on disk");
    // ... and resuming it stores the chunk.
    assert_eq!(
        http.chunk(&agent_token, &id, 1, &chunks[1]).await.status,
        201
    );
    assert_eq!(
        http.chunk(&agent_token, &id, 2, &chunks[2]).await.status,
        201
    );
    // A different body for a stored seq is a conflict.
    http.chunk(&agent_token, &id, 1, &chunks[0])
        .await
        .expect(409, "CONFLICT");

    // Who may upload, and what is malformed.
    let path3 = format!("/recordings/{id}/chunks/3");
    let body = b"x";
    http.put(None, &path3, body, Some(&sha(body)))
        .await
        .expect(401, "UNAUTHENTICATED");
    http.put(Some("srs_nope"), &path3, body, Some(&sha(body)))
        .await
        .expect(401, "UNAUTHENTICATED");
    http.put(Some(&auditor_token), &path3, body, Some(&sha(body)))
        .await
        .expect(403, "FORBIDDEN");
    // Another server's agent may not know the recording exists.
    http.put(Some(&other_agent), &path3, body, Some(&sha(body)))
        .await
        .expect(404, "NOT_FOUND");
    let unknown = format!("/recordings/{}/chunks/0", uuid::Uuid::now_v7());
    http.put(Some(&admin_token), &unknown, body, Some(&sha(body)))
        .await
        .expect(404, "NOT_FOUND");
    for bad in [
        "/recordings/nope/chunks/0",
        &format!("/recordings/{id}/chunks/x"),
        &format!("/recordings/{id}/chunks/4294967296"),
    ] {
        http.put(Some(&agent_token), bad, body, Some(&sha(body)))
            .await
            .expect(400, "VALIDATION");
    }
    http.put(Some(&agent_token), &path3, b"", Some(&sha(b"")))
        .await
        .expect(400, "VALIDATION");
    let huge = vec![7u8; 8 * 1024 * 1024 + 1];
    http.put(Some(&agent_token), &path3, &huge, Some(&sha(&huge)))
        .await
        .expect(400, "VALIDATION");
    let seen = playback(&admin, &id).await;
    assert_eq!(
        seen["chunks"].as_array().unwrap().len(),
        3,
        "refusals stored nothing"
    );
    assert_eq!(seen["contentSize"], 4_200);
    assert_eq!(seen["contentType"], "application/octet-stream");
    assert_eq!(seen["contentUrl"], format!("/recordings/{id}/content"));

    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;

    // ---- playback with Range ------------------------------------------------
    let whole: Vec<u8> = chunks.concat();
    let full = http.content(Some(&auditor_token), &id, None).await;
    assert_eq!(full.status, 200);
    assert_eq!(full.body, whole);
    assert_eq!(full.headers["accept-ranges"], "bytes");
    let part = http
        .content(Some(&auditor_token), &id, Some("bytes=990-3509"))
        .await;
    assert_eq!(part.status, 206);
    assert_eq!(part.headers["content-range"], "bytes 990-3509/4200");
    assert_eq!(part.body, whole[990..3510]);
    let tail = http
        .content(Some(&auditor_token), &id, Some("bytes=-5"))
        .await;
    assert_eq!(tail.body, whole[4_195..]);
    let outside = http
        .content(Some(&auditor_token), &id, Some("bytes=5000-"))
        .await;
    assert_eq!(outside.status, 416);
    assert_eq!(outside.headers["content-range"], "bytes */4200");
    http.content(None, &id, None)
        .await
        .expect(401, "UNAUTHENTICATED");
    let plays = admin
        .data(
            "query($id: ID!) { recording(id: $id) { plays } }",
            json!({ "id": id }),
        )
        .await;
    // One playback fact per player and minute (two if the requests
    // straddled a minute); the 416 recorded none.
    assert!(
        (1..=2).contains(&plays["recording"]["plays"].as_i64().unwrap()),
        "{plays}"
    );

    // ---- restricted: playback refused ---------------------------------------
    admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case\") { position } }",
            json!({ "id": id }),
        )
        .await;
    // A restricted recording is hidden from the auditor: not found.
    http.content(Some(&auditor_token), &id, None)
        .await
        .expect(404, "NOT_FOUND");
    assert_eq!(
        http.content(Some(&admin_token), &id, None).await.body,
        whole
    );
    admin
        .data(
            "mutation($id: ID!) { removeRecordingRestriction(recordingId: $id, reason: \"closed\") { position } }",
            json!({ "id": id }),
        )
        .await;

    // ---- archive and restore ------------------------------------------------
    let live_dir = data.join("content/live").join(&id);
    let archive_dir = data.join("content/archive").join(&id);
    assert!(live_dir.is_dir());
    admin
        .data(
            "mutation($id: ID!) { archiveRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        archive_dir.is_dir() && !live_dir.exists(),
        "moved to the archive area"
    );
    assert_eq!(
        http.content(Some(&admin_token), &id, None).await.body,
        whole
    );
    http.content(Some(&auditor_token), &id, None)
        .await
        .expect(403, "FORBIDDEN");
    admin
        .data(
            "mutation($id: ID!) { restoreRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    assert!(live_dir.is_dir() && !archive_dir.exists(), "restored");
    assert_eq!(
        http.content(Some(&auditor_token), &id, None).await.body,
        whole
    );

    // ---- asciicast -----------------------------------------------------------
    let cast_id = start_recording(&agent, &server, "tty-1", "CORP\\bob", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cast = format!(
        "{{\"version\": 2, \"width\": 80, \"height\": 24}}\n[0.25, \"o\", \"$ cat /etc/shadow-{}\\r\\n\"]\n[1.5, \"i\", \"q\"]\n",
        uuid::Uuid::now_v7().simple()
    );
    let cast_path = format!("/recordings/{cast_id}/asciicast");
    http.put(
        Some(&agent_token),
        &cast_path,
        b"not a cast",
        Some(&sha(b"not a cast")),
    )
    .await
    .expect(400, "VALIDATION");
    let stored = http
        .put(
            Some(&agent_token),
            &cast_path,
            cast.as_bytes(),
            Some(&sha(cast.as_bytes())),
        )
        .await;
    assert_eq!(
        stored.status,
        201,
        "{}",
        String::from_utf8_lossy(&stored.body)
    );
    let repeated = http
        .put(
            Some(&agent_token),
            &cast_path,
            cast.as_bytes(),
            Some(&sha(cast.as_bytes())),
        )
        .await;
    assert_eq!(repeated.status, 200);
    let played = http.content(Some(&auditor_token), &cast_id, None).await;
    assert_eq!(played.headers["content-type"], "application/x-asciicast");
    assert_eq!(played.body, cast.as_bytes());
    let events = admin
        .data(
            "query($id: ID!) { recording(id: $id) { events { edges { node { type offsetMs } } } } }",
            json!({ "id": cast_id }),
        )
        .await;
    let edges = events["recording"]["events"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 2, "indexed once: {events}");
    assert_eq!(edges[0]["node"]["type"], "CUSTOM");
    assert_eq!(edges[0]["node"]["offsetMs"], 250);

    // ---- retention on demand --------------------------------------------------
    let old = agent
        .data(
            "mutation($server: ID!, $at: DateTime!) { startRecording(input: {serverId: $server, sessionId: \"old-1\",
               session: {user: \"CORP\\\\carl\", host: \"vda-09\"}, startedAt: $at}) { recordingId } }",
            json!({ "server": server, "at": "2020-01-01T08:00:00Z" }),
        )
        .await["startRecording"]["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let old_chunk = payload("old", 300);
    assert_eq!(
        http.chunk(&agent_token, &old, 0, &old_chunk).await.status,
        201
    );
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id, endedAt: \"2020-01-01T09:00:00Z\") { position } }",
            json!({ "id": old }),
        )
        .await;
    auditor
        .run(
            "mutation($site: ID!) { runRetentionNow(siteId: $site) { position } }",
            json!({ "site": site }),
        )
        .await
        .expect_code("FORBIDDEN");
    admin
        .run(
            "mutation($site: ID!) { runRetentionNow(siteId: $site) { position } }",
            json!({ "site": site }),
        )
        .await
        .expect_code("NOT_FOUND");
    admin
        .data(
            "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: {archiveAfterDays: 30, deleteAfterDays: 365}) { position } }",
            json!({ "site": site }),
        )
        .await;
    let run = admin
        .data(
            "mutation($site: ID!) { runRetentionNow(siteId: $site) { position archived deleted } }",
            json!({ "site": site }),
        )
        .await["runRetentionNow"]
        .clone();
    assert_eq!(
        (run["archived"].as_i64(), run["deleted"].as_i64()),
        (Some(0), Some(1)),
        "{run}"
    );
    http.content(Some(&admin_token), &old, None)
        .await
        .expect(404, "NOT_FOUND");
    assert!(!data.join(format!("content/keys/{old}.key")).exists());

    // ---- delete: unrecoverable ---------------------------------------------------
    let key_path = data.join(format!("content/keys/{id}.key"));
    let key = std::fs::read(&key_path).unwrap();
    assert_eq!(key.len(), 32);
    let ciphertext = std::fs::read(live_dir.join(format!("{:020}.chunk", 1))).unwrap();
    assert!(
        !anywhere(&data, &chunks[1][..64]),
        "only ciphertext on disk"
    );
    admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    http.content(Some(&admin_token), &id, None)
        .await
        .expect(404, "NOT_FOUND");
    http.chunk(&agent_token, &id, 3, b"late")
        .await
        .expect(404, "NOT_FOUND");
    assert!(srs.stop().success());
    // A copy of the data directory taken now holds neither the key nor
    // the chunks, anywhere (sled's files included).
    assert!(!key_path.exists() && !live_dir.exists());
    assert!(!anywhere(&data, &key), "the key survives nowhere");
    assert!(!anywhere(&data, &ciphertext[16..80]), "the chunks are gone");
    let (code, stdout, _) = run_srs(&["verify", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("intact"), "{stdout}");
}

const TICKET: &str =
    "mutation($id: ID!) { playRecording(recordingId: $id) { ticketUrl ticketExpiresAt } }";

/// `playRecording { ticketUrl }` of `id` as `client` plays it.
async fn ticket_url(client: &Client, id: &str) -> String {
    let data = client.data(TICKET, json!({ "id": id })).await;
    let playback = &data["playRecording"];
    assert!(playback["ticketExpiresAt"].is_string(), "{data}");
    playback["ticketUrl"]
        .as_str()
        .expect("a ticket URL")
        .to_owned()
}

#[tokio::test]
async fn a_playback_ticket_opens_one_recording_for_its_holder_without_a_header() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let http = Http::new(&srs);
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let auditor_token = issue_token(&admin, "audrey", "AUDITOR", &[&site], &[]).await;
    grant_whole_site(&admin, &site, "audrey").await;
    let auditor = Client::new(&srs, Some(&auditor_token));
    let mut ids = Vec::new();
    let mut bodies = Vec::new();
    for (session, tag) in [("s-1", "one"), ("s-2", "two")] {
        let started = start_recording(&agent, &server, session, "CORP\\ann", &[]).await;
        let id = started["recordingId"].as_str().unwrap().to_owned();
        let body = payload(tag, 4_000);
        assert_eq!(http.chunk(&agent_token, &id, 0, &body).await.status, 201);
        ids.push(id);
        bodies.push(body);
    }
    let get = |url: String, range: Option<&'static str>| {
        let mut request = http.http.get(format!("{}{url}", http.base));
        if let Some(range) = range {
            request = request.header("range", range);
        }
        http.send(request)
    };

    // The ticket plays its recording with no header, ranges included, and
    // carries no part of the caller's secret.
    let url = ticket_url(&auditor, &ids[0]).await;
    assert!(url.starts_with(&format!("/recordings/{}/content?ticket=", ids[0])));
    assert!(!url.contains(&auditor_token));
    let whole = get(url.clone(), None).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, bodies[0]);
    let part = get(url.clone(), Some("bytes=100-199")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &bodies[0][100..200]);

    // A player following a live recording's tail asks the ticket URL for
    // the bytes after those it has: none yet is a 416 naming the size (and
    // no playback), then a new chunk comes alone as a 206.
    let after_end = |from: usize| {
        http.send(
            http.http
                .get(format!("{}{url}", http.base))
                .header("range", format!("bytes={from}-")),
        )
    };
    let none = after_end(bodies[0].len()).await;
    assert_eq!(none.status, 416);
    assert_eq!(none.headers["content-range"], "bytes */4000");
    let more = payload("more", 1_000);
    assert_eq!(
        http.chunk(&agent_token, &ids[0], 1, &more).await.status,
        201
    );
    let grown = after_end(bodies[0].len()).await;
    assert_eq!(grown.status, 206);
    assert_eq!(grown.headers["content-range"], "bytes 4000-4999/5000");
    assert_eq!(grown.body, more);

    // Not for another recording, and not when altered.
    let ticket = url.split("ticket=").nth(1).unwrap().to_owned();
    get(
        format!("/recordings/{}/content?ticket={ticket}", ids[1]),
        None,
    )
    .await
    .expect(401, "UNAUTHENTICATED");
    let mut altered = ticket.clone().into_bytes();
    altered[70] = if altered[70] == b'a' { b'b' } else { b'a' };
    let altered = String::from_utf8(altered).unwrap();
    get(
        format!("/recordings/{}/content?ticket={altered}", ids[0]),
        None,
    )
    .await
    .expect(401, "UNAUTHENTICATED");

    // It stands for its holder at each use: a restriction placed since
    // refuses it as it refuses the holder.
    admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case\") { position } }",
            json!({ "id": ids[0] }),
        )
        .await;
    let refused = get(url, None).await;
    assert!(
        matches!(refused.status, 403 | 404),
        "{} {}",
        refused.status,
        String::from_utf8_lossy(&refused.body)
    );

    // A revoked token ends its tickets.
    let url = ticket_url(&auditor, &ids[1]).await;
    assert_eq!(get(url.clone(), None).await.status, 200);
    let token_id = auditor.data("{ me { tokenId } }", json!({})).await["me"]["tokenId"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .data(
            "mutation($id: ID!) { revokeToken(id: $id) { position } }",
            json!({ "id": token_id }),
        )
        .await;
    get(url, None).await.expect(401, "UNAUTHENTICATED");

    // A bearer header still wins over a ticket in the URL.
    let url = ticket_url(&admin, &ids[1]).await;
    let with_header = http
        .send(
            http.http
                .get(format!("{}{url}", http.base))
                .bearer_auth("not-a-token"),
        )
        .await;
    assert_eq!(with_header.status, 401);
}

#[tokio::test]
async fn the_first_chunks_content_type_declares_what_the_content_is() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let http = Http::new(&srs);
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let id = started["recordingId"].as_str().unwrap().to_owned();
    // The admin reads what the read models have followed: wait for the start.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while playback(&admin, &id).await.is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "the recording never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let body = payload("webm", 2_000);
    let put = |content_type: &'static str| {
        http.send(
            http.http
                .put(format!("{}/recordings/{id}/chunks/0", http.base))
                .bearer_auth(&agent_token)
                .header("x-content-sha256", sha(&body))
                .header("content-type", content_type)
                .body(body.clone()),
        )
    };

    // A type srs cannot play is refused and stores nothing.
    put("text/html").await.expect(400, "VALIDATION");
    assert_eq!(
        playback(&admin, &id).await["chunks"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    assert_eq!(put("video/webm").await.status, 201);
    let mut seen = playback(&admin, &id).await;
    while seen["chunks"].as_array().is_none_or(Vec::is_empty) {
        assert!(
            std::time::Instant::now() < deadline,
            "the chunk never showed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        seen = playback(&admin, &id).await;
    }
    assert_eq!(seen["contentType"], "video/webm", "{seen}");
    let content = http.content(Some(&srs.admin_token()), &id, None).await;
    assert_eq!(content.status, 200);
    assert_eq!(content.headers["content-type"], "video/webm");
    assert_eq!(content.body, body);
}

#[tokio::test]
async fn reading_a_playback_appends_nothing_and_playing_appends_one_fact() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let http = Http::new(&srs);
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let auditor_token = issue_token(&admin, "audrey", "AUDITOR", &[&site], &[]).await;
    grant_whole_site(&admin, &site, "audrey").await;
    let auditor = Client::new(&srs, Some(&auditor_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let id = started["recordingId"].as_str().unwrap().to_owned();
    let body = payload("read", 3_000);
    assert_eq!(http.chunk(&agent_token, &id, 0, &body).await.status, 201);

    // ---- the read: the timeline and content, no fact, no ticket -------------
    let before = log_head(&admin).await;
    let read = auditor
        .data(
            "query($id: ID!) { recording(id: $id) { playback {
               position ticketUrl ticketExpiresAt contentUrl contentSize
               chunks { seq } events { type } } } }",
            json!({ "id": id }),
        )
        .await;
    let playback = &read["recording"]["playback"];
    assert!(playback["position"].is_null(), "{read}");
    assert!(playback["ticketUrl"].is_null(), "{read}");
    assert!(playback["ticketExpiresAt"].is_null(), "{read}");
    assert_eq!(playback["contentSize"].as_i64(), Some(3_000), "{read}");
    assert_eq!(playback["chunks"].as_array().unwrap().len(), 1, "{read}");
    assert_eq!(
        playback["contentUrl"],
        format!("/recordings/{id}/content").as_str()
    );
    assert_eq!(written_since(&admin, before).await, Vec::new());
    assert_eq!(log_head(&admin).await, before, "a read moved the log");

    // ---- the play: exactly one RecordingPlayed, and a ticket ----------------
    let played = auditor
        .data(
            "mutation($id: ID!) { playRecording(recordingId: $id) {
               position ticketUrl contentSize } }",
            json!({ "id": id }),
        )
        .await;
    let play = &played["playRecording"];
    assert_eq!(play["contentSize"].as_i64(), Some(3_000), "{played}");
    let written = written_since(&admin, before).await;
    assert_eq!(
        written,
        [("RecordingPlayed".to_owned(), "principal:audrey".to_owned())]
    );
    assert!(play["position"].as_i64().unwrap() > before, "{played}");

    // ---- fetching by the ticket is that playback: nothing more --------------
    let after_play = log_head(&admin).await;
    let url = play["ticketUrl"].as_str().expect("a ticket URL").to_owned();
    let fetched = http
        .send(http.http.get(format!("{}{url}", http.base)))
        .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(fetched.body, body);
    assert_eq!(written_since(&admin, after_play).await, Vec::new());

    // ---- a direct fetch with a bearer token is a playback of its own --------
    let direct = http.content(Some(&srs.admin_token()), &id, None).await;
    assert_eq!(direct.status, 200);
    assert_eq!(direct.body, body);
    let written = written_since(&admin, after_play).await;
    assert_eq!(
        written,
        [("RecordingPlayed".to_owned(), "principal:admin".to_owned())],
        "{written:?}"
    );
}
