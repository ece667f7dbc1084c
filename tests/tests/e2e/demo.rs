//! `srs serve --demo` against the real binary: it starts at any time of
//! day (the service clock set with `--clock-start`) and for any seed, keeps
//! every printed token in a file beside `admin.token`, and keeps working
//! while it runs: its servers stay ONLINE past the liveness window
//! (`--liveness-secs`), a few recordings are live and grow, and terminal
//! recordings play as asciicast files; `--demo` on its own directory
//! again resumes the fleet.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::{Client, Srs};

/// Starts a demo of `recordings` with `seed` at the service time `now`.
async fn demo(data: &std::path::Path, now: &str, seed: &str, recordings: &str) -> Srs {
    Srs::start_with_env(
        data,
        &[
            ("SRS_DEMO", "true"),
            ("SRS_DEMO_RECORDINGS", recordings),
            ("SRS_DEMO_SEED", seed),
            ("SRS_CLOCK_START", now),
            ("SRS_LIVENESS_SECS", "3"),
        ],
    )
    .await
}

/// The token in `<data>/<name>.token`, checked to be the owner's only.
fn token_file(data: &std::path::Path, name: &str) -> String {
    let path = data.join(format!("{name}.token"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{path:?}");
    }
    text.trim().to_owned()
}

async fn servers(admin: &Client) -> Vec<Value> {
    admin
        .data("{ servers { id name status online } }", json!({}))
        .await["servers"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_demo_starts_at_any_time_of_day_and_for_any_seed() {
    // A Sunday night and midnight (a Wednesday afternoon is the next test).
    for (now, seed) in [("2026-03-22T23:10:00Z", "2"), ("2026-03-19T00:00:00Z", "5")] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let srs = demo(&data, now, seed, "120").await;
        let admin = Client::new(&srs, Some(&token_file(&data, "admin")));
        let board = admin
            .data("{ dashboard { recordingsTotal } }", json!({}))
            .await;
        assert!(
            board["dashboard"]["recordingsTotal"].as_u64().unwrap() > 0,
            "{now}: {board}"
        );
        assert!(!data.join("demo.seeding").exists());
        assert!(srs.stop().success());
    }
}

#[tokio::test]
async fn a_killed_seeding_is_started_again_and_the_demo_stays_alive() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // A seeding killed half-way leaves a marked directory that the next
    // --demo start empties and seeds again.
    let mut child = std::process::Command::new(crate::common::server::SRS)
        .args([
            "serve",
            "--demo",
            "--demo-recordings",
            "3000",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--data")
        .arg(&data)
        .env_remove("SRS_DATA")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !data.join("admin.token").exists() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(data.join("demo.seeding").exists(), "killed while seeding");

    // A Wednesday afternoon: many sessions are live.
    let srs = demo(&data, "2026-03-18T15:30:00Z", "1", "200").await;
    let admin_token = token_file(&data, "admin");
    assert_eq!(Some(&admin_token), srs.printed_admin_token.as_ref());
    let admin = Client::new(&srs, Some(&admin_token));
    let auditor = Client::new(&srs, Some(&token_file(&data, "auditor")));
    let me = auditor.data("{ me { role } }", json!({})).await;
    assert_eq!(me["me"]["role"], "AUDITOR", "auditor.token authenticates");

    // The servers heartbeat: still ONLINE after several liveness windows
    // (3 s, checked every second).
    let before = servers(&admin).await;
    assert_eq!(before.len(), 4);
    tokio::time::sleep(Duration::from_secs(10)).await;
    for server in servers(&admin).await {
        assert_eq!(server["status"], "CONNECTED", "{server}");
        assert_eq!(server["online"], true, "{server}");
    }

    // Live recordings exist and their events grow.
    let live_query = "{ recordings(filter: {live: true}, first: 100) \
                      { edges { node { id eventCount } } } }";
    let counts = |data: &Value| -> Vec<(String, u64)> {
        data["recordings"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["node"]["id"].as_str().unwrap().to_owned(),
                    e["node"]["eventCount"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let first = counts(&admin.data(live_query, json!({})).await);
    assert!(!first.is_empty(), "live recordings after start");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let now = counts(&admin.data(live_query, json!({})).await);
        let grew = now.iter().any(|(id, count)| {
            first
                .iter()
                .any(|(before, was)| before == id && count > was)
        });
        if grew {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no live recording grew: {first:?} then {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A terminal recording plays as an asciicast of its announced size.
    let terminals = admin
        .data(
            "{ recordings(filter: {applications: [\"powershell.exe\", \"cmd.exe\", \"ssh.exe\"], \
               live: false}, first: 20) { edges { node { id applications \
               playback { contentType contentSize } } } } }",
            json!({}),
        )
        .await;
    let node = terminals["recordings"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .find(|n| n["playback"]["contentType"] == "application/x-asciicast")
        .unwrap_or_else(|| panic!("a terminal recording with a cast: {terminals}"))
        .clone();
    let body = reqwest::Client::new()
        .get(srs.url(&format!(
            "/recordings/{}/content",
            node["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    let body = body.text().await.unwrap();
    assert_eq!(
        body.len() as f64,
        node["playback"]["contentSize"].as_f64().unwrap()
    );
    let mut lines = body.lines();
    let header: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["version"], 2, "{header}");
    let mut last = 0.0;
    let mut events = 0;
    for line in lines {
        let (at, code, _data): (f64, String, String) =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert!(at >= last, "times never go back: {line}");
        assert!(code == "o" || code == "i");
        last = at;
        events += 1;
    }
    assert!(events > 3, "{body}");

    // It stops cleanly while its fleet is at work, ending its sessions.
    let total = admin
        .data("{ recordings(first: 1) { totalCount } }", json!({}))
        .await;
    assert!(srs.stop().success());

    // `--demo` again on the same directory puts the fleet back to work.
    let srs = demo(&data, "2026-03-18T16:00:00Z", "1", "200").await;
    assert_eq!(srs.printed_admin_token, None, "nothing seeded again");
    let admin = Client::new(&srs, Some(&admin_token));
    tokio::time::sleep(Duration::from_secs(10)).await;
    for server in servers(&admin).await {
        assert_eq!(server["online"], true, "resumed: {server}");
    }
    let later = admin
        .data("{ recordings(first: 1) { totalCount } }", json!({}))
        .await;
    assert!(
        later["recordings"]["totalCount"].as_u64() > total["recordings"]["totalCount"].as_u64(),
        "the resumed fleet records new sessions: {total} then {later}"
    );
    assert!(srs.stop().success());
}
