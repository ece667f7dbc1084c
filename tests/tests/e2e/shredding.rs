//! Crypto-shredding of a whole recording, against the real binary: what a
//! session recorded (an asciicast's terminal output, a URL, a window
//! title, a detection's subject) is readable while the recording exists;
//! once it is deleted, and across a restart and a rebuild of every read
//! model, no API answer, no CLI output and no file under the data
//! directory holds it, while `srs verify` still passes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

/// The files under `dir` whose bytes hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let needle = needle.as_bytes();
    files(dir)
        .into_iter()
        .filter(|file| {
            std::fs::read(file).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
        })
        .collect()
}

/// `recording(id)` with every session event's data whole.
fn recording_query() -> String {
    format!(
        "query($id: ID!) {{ recording(id: $id) {{
  id user host applications lifecycle deleted eventCount
  events(first: 100) {{ edges {{ node {{ eventId type offsetMs {EVENT_DATA} shredded }} }} }}
  detections {{ id type subject shredded }}
  dataPoints {{ eventCount applications idleMs }}
}} }}"
    )
}

const DETECTIONS: &str =
    "query($id: ID!) { detectedEvents(filter: {recordingId: $id}, first: 100) {
  edges { node { id type subject shredded recordingId } } } }";

const HISTORY: &str = "query($id: ID!) { history(filter: {recordingId: $id}, first: 500) {
  edges { node { position type payload } } } }";

/// Every GraphQL answer about recording `id`, as one text.
async fn answers(admin: &Client, id: &str) -> String {
    let mut all = String::new();
    for query in [recording_query().as_str(), DETECTIONS, HISTORY] {
        let response = admin.run(query, json!({ "id": id })).await;
        response.data();
        all.push_str(&response.body.to_string());
    }
    all
}

/// The outputs of `srs replay`, `srs state` and `srs export` (to a file)
/// on the stopped server's directory, as one text; each must succeed.
fn cli_outputs(data: &Path, id: &str, export_to: &Path) -> String {
    let data_arg = data.to_str().unwrap();
    let mut all = String::new();
    let (code, replayed, err) = run_srs(&["replay", "--data", data_arg], &[]);
    assert_eq!(code, Some(0), "replay: {err}");
    all.push_str(&replayed);
    let stream = format!("recording-{id}");
    let (code, state, err) = run_srs(
        &["state", "--data", data_arg, "--as-of", "999999999", &stream],
        &[],
    );
    assert_eq!(code, Some(0), "state: {err}");
    all.push_str(&state);
    let _ = std::fs::remove_file(export_to);
    let (code, out, err) = run_srs(
        &["export", "--data", data_arg, export_to.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, Some(0), "export: {out} {err}");
    all.push_str(&String::from_utf8_lossy(&std::fs::read(export_to).unwrap()));
    all
}

fn verify(data: &Path) {
    let (code, stdout, stderr) = run_srs(&["verify", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout} {stderr}");
    assert!(stdout.starts_with("intact"), "{stdout}");
}

/// The history nodes of the recording's session events and detections
/// (sealed, or plain as logged before sealing).
fn sealed_payloads(history: &Value) -> Vec<Value> {
    history["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .filter(|n| {
            matches!(
                n["type"].as_str(),
                Some(
                    "SessionEventSealed"
                        | "EventDetectedSealed"
                        | "SessionEventRecorded"
                        | "EventDetected"
                )
            )
        })
        .collect()
}

#[tokio::test]
async fn a_deleted_recording_leaves_nothing_readable_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let export_file = dir.path().join("export.jsonl");
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    activate_detection_policy(
        &admin,
        &site,
        "name: \"USB\", logged: [WEB_BROWSING, TOP_MOST_WINDOW, USB_MASS_STORAGE], rules: [{type: USB_MASS_STORAGE, severity: HIGH}]",
    )
    .await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let http = reqwest::Client::new();

    // Live alerts open the sealed subject for who watches.
    let mut alerts = admin
        .subscribe(
            "subscription($site: ID) { detections(siteId: $site) { subject shredded recordingId } }",
            json!({ "site": site }),
        )
        .await;
    assert_eq!(alerts.ack["type"], "connection_ack", "{}", alerts.ack);
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Two sessions, each with its own marker everywhere a session puts
    // text: one is deleted, the other kept (its data must stay readable).
    let mut sessions = Vec::new();
    for name in ["gone", "kept"] {
        let marker = format!("secret-{name}-{}", uuid::Uuid::now_v7().simple());
        let id = start_recording(&agent, &server, name, "CORP\\ann", &[]).await["recordingId"]
            .as_str()
            .unwrap()
            .to_owned();
        let events = vec![
            event(
                "WEB_BROWSING",
                1_000,
                json!({ "url": format!("https://intranet.example/{marker}"), "browser": "Edge" }),
            ),
            event(
                "TOP_MOST_WINDOW",
                2_000,
                json!({ "app": "notepad.exe", "title": format!("{marker}.txt - Notepad") }),
            ),
            event(
                "USB_MASS_STORAGE",
                3_000,
                json!({ "device": format!("Kingston {marker}") }),
            ),
        ];
        let recorded = agent
            .data(
                RECORD_EVENTS,
                json!({ "recordingId": id, "events": events }),
            )
            .await;
        assert_eq!(
            recorded["recordSessionEvents"]["detections"], 1,
            "{recorded}"
        );
        let cast = format!(
            "{{\"version\": 2, \"width\": 80, \"height\": 24}}\n[0.5, \"o\", \"$ cat {marker}.txt\\r\\n\"]\n[0.75, \"o\", \"the {marker} contents\\r\\n\"]\n"
        );
        let uploaded = http
            .put(srs.url(&format!("/recordings/{id}/asciicast")))
            .bearer_auth(&agent_token)
            .header(
                "x-content-sha256",
                hex::encode(Sha256::digest(cast.as_bytes())),
            )
            .body(cast.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(uploaded.status().as_u16(), 201);
        agent
            .data(
                "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
                json!({ "id": id }),
            )
            .await;
        sessions.push((id, marker));
    }
    let (gone, gone_marker) = sessions[0].clone();
    let (kept, kept_marker) = sessions[1].clone();
    let alert = alerts.next_data(Duration::from_secs(15)).await;
    assert_eq!(alert["detections"]["recordingId"], gone.as_str());
    assert_eq!(alert["detections"]["shredded"], false);
    assert_eq!(
        alert["detections"]["subject"],
        format!("Kingston {gone_marker}").as_str()
    );
    alerts.close().await;
    // A live playback's feed, caught up from the start, opens the events.
    let mut feed = admin
        .subscribe(
            &format!("subscription($id: ID!) {{ recordingEvents(recordingId: $id, fromPosition: 1) {{ type {EVENT_DATA} shredded }} }}"),
            json!({ "id": gone }),
        )
        .await;
    let mut fed = String::new();
    for _ in 0..5 {
        fed.push_str(&feed.next_data(Duration::from_secs(15)).await.to_string());
    }
    feed.close().await;
    assert!(fed.matches(gone_marker.as_str()).count() >= 4, "{fed}");

    // ---- before: readable through the API and `srs replay --url` ------------
    for (id, marker) in &sessions {
        let text = answers(&admin, id).await;
        // URL, window title, detection subject, two asciicast lines.
        assert!(text.matches(marker.as_str()).count() >= 5, "{text}");
        assert!(!text.contains("[shredded]"), "{text}");
    }
    let history = admin.data(HISTORY, json!({ "id": gone })).await;
    assert_eq!(sealed_payloads(&history).len(), 6, "{history}");
    let (code, online, err) = run_srs(
        &[
            "replay",
            "--url",
            &srs.url(""),
            "--token",
            &srs.admin_token(),
            "--stream",
            &format!("recording-{gone}"),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(online.contains(&gone_marker), "{online}");
    // The log and the read models hold ciphertext only, even now.
    assert!(srs.stop().success());
    assert_eq!(holding(&data, &gone_marker), Vec::<PathBuf>::new());
    assert_eq!(holding(&data, &kept_marker), Vec::<PathBuf>::new());
    let cli = cli_outputs(&data, &gone, &export_file);
    assert!(
        cli.contains(&gone_marker),
        "offline replay opens with the keys"
    );
    let exported = std::fs::read_to_string(&export_file).unwrap();
    assert!(
        !exported.contains(&gone_marker),
        "an export carries the log's ciphertext, never a plain copy"
    );
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));

    // ---- delete, restart ------------------------------------------------------
    admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": gone }),
        )
        .await;
    assert!(srs.stop().success());
    let mut srs = Srs::start(&data).await;

    for round in ["after the deletion", "after a rebuild"] {
        let admin = Client::new(&srs, Some(&srs.admin_token()));
        // (a) no API answer holds the marker; the sealed parts say shredded.
        let text = answers(&admin, &gone).await;
        assert!(!text.contains(&gone_marker), "{round}: {text}");
        let recording =
            admin.data(&recording_query(), json!({ "id": gone })).await["recording"].clone();
        assert_eq!(recording["deleted"], true);
        let events = recording["events"]["edges"].as_array().unwrap();
        assert_eq!(events.len(), 5, "{round}: ids, types, offsets remain");
        for edge in events {
            assert_eq!(edge["node"]["shredded"], true, "{round}: {edge}");
            assert_eq!(
                edge["node"]["data"],
                json!({ "__typename": "ShreddedData", "shredded": true }),
                "{round}: {edge}"
            );
        }
        assert_eq!(
            recording["detections"],
            json!([{ "id": recording["detections"][0]["id"], "type": "USB_MASS_STORAGE", "subject": null, "shredded": true }]),
            "{round}"
        );
        assert_eq!(recording["dataPoints"]["eventCount"], 5, "{round}");
        let history = admin.data(HISTORY, json!({ "id": gone })).await;
        let sealed = sealed_payloads(&history);
        assert_eq!(sealed.len(), 6, "{round}: {history}");
        assert!(
            sealed
                .iter()
                .all(|n| n["payload"].to_string().contains("[shredded]")),
            "{round}: {history}"
        );
        // The `log` subscription, caught up from the start, shows it shredded.
        let head = admin.data("{ projections { head } }", json!({})).await["projections"][0]
            ["head"]
            .as_u64()
            .unwrap();
        let mut tail = admin
            .subscribe(
                "subscription { log(fromPosition: 1) { position type payload } }",
                json!({}),
            )
            .await;
        let mut tailed = String::new();
        loop {
            let next = tail.next_data(Duration::from_secs(15)).await;
            tailed.push_str(&next.to_string());
            if next["log"]["position"].as_u64() >= Some(head) {
                break;
            }
        }
        tail.close().await;
        assert!(!tailed.contains(&gone_marker), "{round}: {tailed}");
        assert!(tailed.contains("[shredded]"), "{round}");
        assert!(tailed.contains(&kept_marker), "{round}: the kept one opens");
        // `srs replay` through the server says the same.
        let (code, online, err) = run_srs(
            &[
                "replay",
                "--url",
                &srs.url(""),
                "--token",
                &srs.admin_token(),
                "--stream",
                &format!("recording-{gone}"),
            ],
            &[],
        );
        assert_eq!(code, Some(0), "{err}");
        assert!(!online.contains(&gone_marker), "{round}: {online}");
        assert!(online.contains("[shredded]"), "{round}: {online}");
        // The kept recording still reads in full.
        let text = answers(&admin, &kept).await;
        assert!(
            text.matches(kept_marker.as_str()).count() >= 5,
            "{round}: {text}"
        );
        assert!(!text.contains("[shredded]"), "{round}: {text}");
        assert!(srs.stop().success());

        // (a) no CLI output holds it either; (b) no file; (c) verify passes.
        let cli = cli_outputs(&data, &gone, &export_file);
        assert!(!cli.contains(&gone_marker), "{round}: CLI output");
        assert!(cli.contains("[shredded]"), "{round}: replay marks it");
        assert!(cli.contains(&kept_marker), "{round}: the kept one opens");
        assert_eq!(
            holding(&data, &gone_marker),
            Vec::<PathBuf>::new(),
            "{round}"
        );
        verify(&data);

        // (d) a rebuild of every read model from the log, then all again.
        if round == "after the deletion" {
            let (code, out, err) =
                run_srs(&["rebuild", "--data", data.to_str().unwrap(), "--all"], &[]);
            assert_eq!(code, Some(0), "rebuild: {out} {err}");
        }
        srs = Srs::start(&data).await;
    }
    drop(srs);
}
