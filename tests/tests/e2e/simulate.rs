//! `srs simulate` and `srs serve --demo` against the real binary: what the
//! simulator reports is what the server stores, the same seed sends the
//! same sessions, a token without the right writes nothing; the demo fills
//! an empty directory and refuses a used one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

/// Waits until every read model has reached the log head; returns the head.
async fn settled(srs: &Srs) -> u64 {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let response = http.get(srs.url("/readyz")).send().await.unwrap();
        let ok = response.status().is_success();
        let body: Value = response.json().await.unwrap();
        if ok && body["ready"] == true {
            return body["log_head"].as_u64().expect("log_head");
        }
        assert!(Instant::now() < deadline, "never settled: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `srs simulate --json` off the async runtime: (exit code, report, stderr).
async fn simulate(srs: &Srs, token: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let url = srs.url("");
    let token = token.to_owned();
    let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let mut args = vec![
            "simulate",
            "--url",
            &url,
            "--token",
            &token,
            "--json",
            "--max-events",
            "80",
        ];
        args.extend(extra.iter().map(String::as_str));
        let (code, stdout, stderr) = run_srs(&args, &[("RUST_LOG", "warn")]);
        let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
        (code, report, stderr)
    })
    .await
    .unwrap()
}

const SITE_RECORDINGS: &str = r#"query($site: ID!) {
  recordings(filter: {siteId: $site}, first: 500) {
    totalCount
    edges { node { user host deliveryGroup eventCount server { id } } }
  }
  detectedEvents(filter: {siteId: $site}, first: 500) { edges { node { id } } pageInfo { hasNextPage } }
  dashboard(siteId: $site) { recordingsTotal detectionsTotal }
  servers(siteId: $site) { id status }
}"#;

fn count(report: &Value, key: &str) -> u64 {
    report[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no {key} in {report}"))
}

#[tokio::test]
async fn simulated_fleet_is_stored_as_reported_and_replays_by_seed() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));

    let (code, first, stderr) = simulate(
        &srs,
        &token,
        &[
            "--servers",
            "3",
            "--sessions",
            "24",
            "--seed",
            "42",
            "--site",
            "Fleet A",
            "--content-bytes",
            "150000",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "report {first}; stderr {stderr}");
    assert_eq!(first["errors"], json!({}), "{first}");
    assert_eq!(count(&first, "sessions"), 24);
    let recordings = count(&first, "recordings");
    assert_eq!(recordings + count(&first, "declined"), 24);
    assert!(
        recordings > 0 && count(&first, "screen_recordings") > 0,
        "{first}"
    );
    // The fleet's detection policy does not log registry writes: the
    // server refuses them, counts them, and stores everything else.
    assert!(count(&first, "events_ignored") > 0, "{first}");
    assert_eq!(
        count(&first, "events_sent"),
        count(&first, "events_accepted") + count(&first, "events_ignored")
    );
    assert!(count(&first, "detections") > 0, "{first}");
    assert!(count(&first, "heartbeats") >= 3, "{first}");
    assert!(first["requests_per_sec"].as_f64().unwrap() > 0.0);
    assert!(first["latency_p99_ms"].as_f64().unwrap() >= first["latency_p50_ms"].as_f64().unwrap());

    // What the server stores is what the simulator reported.
    settled(&srs).await;
    let site = first["site_id"].as_str().unwrap();
    let stored = admin.data(SITE_RECORDINGS, json!({ "site": site })).await;
    let edges = stored["recordings"]["edges"].as_array().unwrap();
    assert_eq!(stored["recordings"]["totalCount"], json!(recordings));
    let events: u64 = edges
        .iter()
        .map(|e| e["node"]["eventCount"].as_u64().unwrap())
        .sum();
    assert_eq!(events, count(&first, "events_accepted"));
    let detections = count(&first, "detections");
    assert_eq!(stored["detectedEvents"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        stored["detectedEvents"]["edges"].as_array().unwrap().len() as u64,
        detections
    );
    assert_eq!(stored["dashboard"]["detectionsTotal"], json!(detections));
    assert_eq!(stored["dashboard"]["recordingsTotal"], json!(recordings));

    // Every screen recording's content arrived whole, through chunk upload.
    let chunks = count(&first, "chunks");
    assert!(chunks > 0, "{first}");
    assert_eq!(
        count(&first, "content_bytes"),
        150_000 * count(&first, "screen_recordings"),
        "{first}"
    );
    let played = admin
        .data(
            r#"query($site: ID!) { recordings(filter: {siteId: $site}, first: 500) {
                 edges { node { playback { contentSize chunks { seq } } } } } }"#,
            json!({ "site": first["site_id"] }),
        )
        .await;
    let (mut size, mut stored_chunks) = (0.0, 0);
    for edge in played["recordings"]["edges"].as_array().unwrap() {
        let playback = &edge["node"]["playback"];
        size += playback["contentSize"].as_f64().unwrap_or(0.0);
        stored_chunks += playback["chunks"].as_array().map_or(0, Vec::len);
    }
    assert_eq!(size as u64, count(&first, "content_bytes"));
    assert_eq!(stored_chunks as u64, chunks);
    let mut server_ids: Vec<&str> = stored["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    server_ids.sort_unstable();
    let mut reported: Vec<&str> = first["server_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    reported.sort_unstable();
    assert_eq!(server_ids, reported);
    assert!(edges
        .iter()
        .all(|e| reported.contains(&e["node"]["server"]["id"].as_str().unwrap())));

    // The same seed on a fresh site sends the same sessions.
    let (code, second, stderr) = simulate(
        &srs,
        &token,
        &[
            "--servers",
            "3",
            "--sessions",
            "24",
            "--seed",
            "42",
            "--site",
            "Fleet B",
        ],
    )
    .await;
    assert_eq!(code, Some(0), "{stderr}");
    for key in [
        "sessions",
        "recordings",
        "screen_recordings",
        "declined",
        "events_accepted",
        "detections",
        "responses",
    ] {
        assert_eq!(
            first[key], second[key],
            "{key} differs between two runs of seed 42"
        );
    }
    assert_ne!(first["site_id"], second["site_id"]);
    settled(&srs).await;
    let who = |stored: &Value| {
        let mut seen = BTreeMap::new();
        for e in stored["recordings"]["edges"].as_array().unwrap() {
            let n = &e["node"];
            let key = format!(
                "{} {} {} {}",
                n["user"], n["host"], n["deliveryGroup"], n["eventCount"]
            );
            *seen.entry(key).or_insert(0) += 1;
        }
        seen
    };
    let again = admin
        .data(SITE_RECORDINGS, json!({ "site": second["site_id"] }))
        .await;
    assert_eq!(who(&stored), who(&again));

    // A different seed is a different fleet.
    let (code, other, _) = simulate(
        &srs,
        &token,
        &[
            "--servers",
            "1",
            "--sessions",
            "24",
            "--seed",
            "43",
            "--site",
            "Fleet C",
        ],
    )
    .await;
    assert_eq!(code, Some(0));
    assert_ne!(first["events_accepted"], other["events_accepted"]);
}

#[tokio::test]
async fn simulate_without_an_admin_token_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let viewer = issue_token(&admin, "viewer@corp.example", "VIEWER", &[], &[]).await;
    let head = settled(&srs).await;

    for (token, code) in [
        ("srs_not_a_token", "UNAUTHENTICATED"),
        (viewer.as_str(), "FORBIDDEN"),
    ] {
        let (exit, report, stderr) =
            simulate(&srs, token, &["--servers", "1", "--sessions", "2"]).await;
        assert_eq!(exit, Some(2), "{report} {stderr}");
        assert!(stderr.contains(code), "expected {code}: {stderr}");
        settled(&srs).await;
        assert_only_refusals_since(&admin, head).await;
    }

    // Bad flags: refused before anything is sent.
    let (exit, _, stderr) = simulate(
        &srs,
        &srs.admin_token(),
        &["--servers", "0", "--sessions", "2"],
    )
    .await;
    assert_eq!(exit, Some(2), "{stderr}");
    assert!(stderr.contains("--servers"), "{stderr}");
    settled(&srs).await;
    assert_only_refusals_since(&admin, head).await;
    let left = admin
        .data("{ sites { id } servers { id } }", json!({}))
        .await;
    assert_eq!(left, json!({ "sites": [], "servers": [] }));
}

/// Since `head`, the log holds at most the audit of refused requests.
async fn assert_only_refusals_since(admin: &Client, head: u64) {
    let log = admin
        .data(
            "{ history(first: 500) { edges { node { position type } } } }",
            json!({}),
        )
        .await;
    let after: Vec<&Value> = log["history"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["position"].as_u64().unwrap() > head)
        .collect();
    assert!(
        after
            .iter()
            .all(|n| n["type"] == "AccessDenied" || n["type"] == "AccessDeniedRepeated"),
        "a refused simulation wrote: {after:?}"
    );
}

#[tokio::test]
async fn demo_fills_an_empty_directory_and_refuses_a_used_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start_with_env(
        &data,
        &[("SRS_DEMO", "true"), ("SRS_DEMO_RECORDINGS", "150")],
    )
    .await;
    let token = srs
        .printed_admin_token
        .clone()
        .expect("the demo prints the admin token");
    assert_eq!(token, srs.admin_token());
    let admin = Client::new(&srs, Some(&token));

    let board = admin
        .data(
            "{ dashboard { recordingsTotal detectionsTotal restrictedCount pendingArchive \
               recordingsPerDay { count } topUsers { name count } serversByStatus { status count } } \
               sites { id name } }",
            json!({}),
        )
        .await;
    let d = &board["dashboard"];
    let total = d["recordingsTotal"].as_u64().unwrap();
    // 150 seeded (some declined by policy), and the demo's fleet starts a
    // few more while it runs.
    assert!((100..=150 + 20).contains(&total), "{d}");
    assert!(d["detectionsTotal"].as_u64().unwrap() > 0, "{d}");
    assert!(d["restrictedCount"].as_u64().unwrap() > 0, "{d}");
    assert!(!d["topUsers"].as_array().unwrap().is_empty());
    let busy_days = d["recordingsPerDay"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|day| day["count"].as_u64().unwrap() > 0)
        .count();
    assert!(
        busy_days >= 15,
        "recordings spread over {busy_days} days: {d}"
    );
    assert_eq!(board["sites"].as_array().unwrap().len(), 2);

    // Searchable: a top user's recordings are found by user, with events and detections.
    let user = d["topUsers"][0]["name"].as_str().unwrap();
    let found = admin
        .data(
            "query($u: [String!]) { recordings(filter: {users: $u}) { totalCount \
               edges { node { user live eventCount comments { text } } } } \
               detected: recordings(filter: {hasDetections: true, minSeverity: HIGH}) { totalCount } }",
            json!({ "u": [user] }),
        )
        .await;
    // At least as many as the dashboard counted (the fleet may add one).
    assert!(
        found["recordings"]["totalCount"].as_u64() >= d["topUsers"][0]["count"].as_u64(),
        "{found}"
    );
    assert!(found["recordings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        // A session the fleet just started may hold nothing yet.
        .filter(|e| e["node"]["live"] == false)
        .all(|e| e["node"]["eventCount"].as_u64().unwrap() >= 2));
    assert!(
        found["detected"]["totalCount"].as_u64().unwrap() > 0,
        "{found}"
    );
    assert!(srs.stop().success());

    // On a directory that holds data and is not a demo's, --demo refuses
    // and changes nothing (a demo's own directory is resumed instead).
    std::fs::remove_file(data.join("demo.json")).expect("the demo leaves demo.json");
    let data_arg = data.to_str().unwrap();
    let (code, before, _) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(code, Some(0), "{before}");
    let (code, _, stderr) = run_srs(
        &[
            "serve",
            "--demo",
            "--data",
            data_arg,
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("empty data directory"), "{stderr}");
    let (_, after, _) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(before, after);
}
