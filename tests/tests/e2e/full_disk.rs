//! A full disk heals without a restart: the real `srs serve` on a small
//! tmpfs, filled up and freed again.
//!
//! Needs `mount -t tmpfs` (root, or a user namespace that allows it); where
//! mounting is not permitted the test says so and passes without running.
//! The writer's own fault handling is covered without a mount by
//! `domain/tests/log_faults.rs`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

/// A tmpfs mounted for one test, unmounted (lazily) when dropped.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).map_err(|e| e.to_string())?;
        let output = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(&mount)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
        }
        Ok(SmallDisk { mount, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

/// Fills the file system holding `dir` to the last byte; returns the
/// filler file (outside the content directories srs scans).
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    for block in [1024 * 1024, 64 * 1024, 4096, 512, 1] {
        let bytes = vec![0x5a_u8; block];
        while file.write_all(&bytes).is_ok() {}
    }
    let _ = file.sync_all();
    path
}

fn tmp_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        } else if path.extension().is_some_and(|e| e == "tmp") {
            found.push(path);
        }
    }
    found
}

async fn put_chunk(srs: &Srs, token: &str, recording: &str, seq: u64, body: &[u8]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .put(srs.url(&format!("/recordings/{recording}/chunks/{seq}")))
        .bearer_auth(token)
        .header("x-content-sha256", hex::encode(Sha256::digest(body)))
        .body(body.to_vec())
        .send()
        .await
        .expect("HTTP request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn readyz(srs: &Srs) -> (u16, Value) {
    let response = reqwest::get(srs.url("/readyz")).await.expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn metrics(srs: &Srs) -> String {
    reqwest::get(srs.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_full_disk_refuses_writes_then_heals_without_a_restart() {
    let disk = match SmallDisk::mount("24m") {
        Ok(disk) => disk,
        Err(why) => {
            println!("SKIPPED a_full_disk_refuses_writes_then_heals_without_a_restart: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    // The data directory is the mount itself, so that the server's log
    // (`<data>.log`) is outside the full disk.
    let data = disk.mount.clone();
    let srs = Srs::start(&data).await;
    let admin_token = srs.admin_token();
    let admin = Client::new(&srs, Some(&admin_token));
    let site = create_site(&admin, "before").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let (status, body) = put_chunk(&srs, &agent_token, &recording, 0, b"chunk zero").await;
    assert_eq!(status, 201, "{body}");
    let mut acknowledged = vec!["before".to_owned()];

    // ---- the disk fills up ---------------------------------------------------
    let filler = fill(&disk.mount);
    // A write may still fit in a page sled already holds; soon one fails.
    let mut refused = None;
    for n in 0..50 {
        let name = format!("during-{n}");
        let response = admin.run(CREATE_SITE, json!({ "name": name })).await;
        if response.body["data"]["createSite"]["position"].is_u64() {
            // Stored (reading it back may fail while the disk is full).
            acknowledged.push(name);
            continue;
        }
        refused = Some(response);
        break;
    }
    let refused = refused.expect("a write fails once the disk is full");
    assert_eq!(
        refused.code(),
        Some("UNAVAILABLE"),
        "{}\nlog:\n{}",
        refused.body,
        srs.log_text()
    );
    let message = refused.body["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("retry later"), "{message}");
    assert!(
        !message.contains(disk.mount.to_str().unwrap()),
        "no path leaks: {message}"
    );
    // Every later write is refused the same way, promptly.
    let again = admin.run(CREATE_SITE, json!({ "name": "refused" })).await;
    assert_eq!(
        again.code(),
        Some("UNAVAILABLE"),
        "{}\nlog:\n{}",
        again.body,
        srs.log_text()
    );
    let (status, body) = readyz(&srs).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["writable"], false, "{body}");
    assert!(
        body["reason"]
            .as_str()
            .unwrap()
            .starts_with("log not writable"),
        "{body}"
    );
    assert!(metrics(&srs).await.contains("srs_log_writable 0"));
    // Content: 503 UNAVAILABLE and no partial file.
    let (status, body) = put_chunk(&srs, &agent_token, &recording, 1, &[7u8; 64 * 1024]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE", "{body}");
    assert_eq!(tmp_files(&data), Vec::<PathBuf>::new());
    // Reads keep working.
    let sites = admin.data("{ sites { name } }", json!({})).await;
    assert!(sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "before"));

    // ---- space is back: writes resume by themselves ---------------------------
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (status, body) = match tokio::time::timeout(Duration::from_secs(5), readyz(&srs)).await
        {
            Ok(answer) => answer,
            Err(_) => (0, Value::Null),
        };
        if status == 200 {
            assert_eq!(body["writable"], true, "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "srs did not become writable again: {body}; log:\n{}",
            srs.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(metrics(&srs).await.contains("srs_log_writable 1"));
    let after = admin.data(CREATE_SITE, json!({ "name": "after" })).await;
    acknowledged.push("after".to_owned());
    let at = position(&after["createSite"]);
    let (status, body) = put_chunk(&srs, &agent_token, &recording, 1, &[7u8; 64 * 1024]).await;
    assert_eq!(status, 201, "{body}");

    // Every acknowledged write is there.
    let sites = admin
        .data(
            "query($at: Int) { sites(atLeast: $at) { name } }",
            json!({ "at": at }),
        )
        .await;
    let names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for name in &acknowledged {
        assert!(names.contains(&name.as_str()), "{name} is lost: {names:?}");
    }
    assert!(!names.contains(&"refused"));
    let log = srs.log_text();
    assert!(
        log.contains("reopen"),
        "the server says what it did:\n{log}"
    );
    assert!(
        !log.contains(&admin_token),
        "the admin secret is not in the log"
    );

    // ---- a clean stop ---------------------------------------------------------
    let status = srs.stop();
    assert_eq!(status.code(), Some(0), "SIGTERM exits 0");
    assert_eq!(tmp_files(&data), Vec::<PathBuf>::new());
    let (code, stdout, stderr) = run_srs(&["verify", "--data", data.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("intact"), "{stdout}");
}

#[tokio::test]
async fn sigterm_while_the_disk_is_full_exits_cleanly_and_leaves_no_partial_file() {
    let disk = match SmallDisk::mount("24m") {
        Ok(disk) => disk,
        Err(why) => {
            println!("SKIPPED sigterm_while_the_disk_is_full_exits_cleanly_and_leaves_no_partial_file: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    // The data directory is the mount itself, so that the server's log
    // (`<data>.log`) is outside the full disk.
    let data = disk.mount.clone();
    let srs = Srs::start(&data).await;
    let admin_token = srs.admin_token();
    let admin = Client::new(&srs, Some(&admin_token));
    let site = create_site(&admin, "before").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-2", "CORP\\bob", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();

    fill(&disk.mount);
    // The first upload of a recording creates its key file: refused whole.
    let (status, body) = put_chunk(&srs, &agent_token, &recording, 0, &[1u8; 32 * 1024]).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "UNAVAILABLE", "{body}");
    for n in 0..50 {
        if admin
            .run(CREATE_SITE, json!({ "name": format!("full-{n}") }))
            .await
            .code()
            .is_some()
        {
            break;
        }
    }
    assert_eq!(tmp_files(&data), Vec::<PathBuf>::new());

    let log = srs.data.with_extension("log");
    let status = srs.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "SIGTERM exits 0 with the disk still full; log:\n{}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
    assert_eq!(tmp_files(&data), Vec::<PathBuf>::new());
}
