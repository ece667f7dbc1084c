//! `srs serve --log-url` and `srs verify --log-url` against a real
//! three-node nats-server cluster: the log lives in the JetStream stream,
//! not in the data directory, so a server on an empty data directory
//! serves what another one wrote, and a data directory built from
//! another log is refused. The recordings' content and keys live in the
//! cluster too: content uploaded through one server plays through
//! another, and a deletion through one shreds it for both.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use srs_log_jetstream::testing::Cluster;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

#[tokio::test]
async fn the_log_on_a_jetstream_cluster_is_served_verified_and_kept() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let key_file = key_file.to_str().unwrap();
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-e2e"),
        ("SRS_CLUSTER_KEY_FILE", key_file),
    ];
    let first = dir.path().join("first");

    let srs = Srs::start_with_env(&first, &env).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));
    for n in 0..3 {
        create_site(&admin, &format!("site {n}")).await;
    }
    let head = log_head(&admin).await;
    assert!(head >= 3, "{head}");

    // The stream's chain checks out, also while the server runs.
    let (code, stdout, stderr) = run_srs(
        &["verify", "--log-url", &urls, "--log-stream", "srs-e2e"],
        &[],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );
    assert!(srs.stop().success());
    // The data directory's own log holds nothing.
    let (code, stdout, _) = run_srs(&["verify", "--data", first.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("intact: 0 events checked"), "{stdout}");

    // A server on an empty data directory serves the same log: the read
    // models are rebuilt from the stream, the first admin's token works.
    let second = dir.path().join("second");
    let srs = Srs::start_with_env(&second, &env).await;
    let admin = Client::new(&srs, Some(&token));
    let sites = admin.data("{ sites { name } }", json!({})).await;
    let mut names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["site 0", "site 1", "site 2"]);
    create_site(&admin, "site 3").await;
    assert!(log_head(&admin).await > head);
    assert!(srs.stop().success());

    // A data directory is bound to the log its read models come from:
    // another stream, or an embedded log, is refused (exit 2).
    let first_arg = first.to_str().unwrap();
    let serve = ["serve", "--data", first_arg, "--listen", "127.0.0.1:0"];
    let other = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-other"),
        ("SRS_CLUSTER_KEY_FILE", key_file),
    ];
    let (code, _, stderr) = run_srs(&serve, &other);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("was built from the log `srs-e2e"),
        "{stderr}"
    );
    let embedded = dir.path().join("embedded");
    let srs = Srs::start(&embedded).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    create_site(&admin, "embedded").await;
    assert!(srs.stop().success());
    let embedded_arg = embedded.to_str().unwrap();
    let (code, _, stderr) = run_srs(
        &["serve", "--data", embedded_arg, "--listen", "127.0.0.1:0"],
        &env,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds an embedded log"), "{stderr}");

    // A cluster that is not there: a clear error, exit 2.
    let (code, _, stderr) = run_srs(
        &[
            "verify",
            "--log-url",
            "nats://127.0.0.1:1",
            "--log-stream",
            "srs-e2e",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}

/// A cluster key file (32 random bytes, mode 0600) in `dir`.
fn cluster_key_file(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join("cluster.key");
    let mut key = Vec::new();
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    key.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    std::fs::write(&path, key).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// Distinctive bytes that cannot appear anywhere by chance.
fn payload(tag: &str, len: usize) -> Vec<u8> {
    let seed = uuid::Uuid::now_v7();
    let mut out = Vec::with_capacity(len);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{tag}:{seed}:{n};").as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

/// Every file under `dir`, recursively (none when it does not exist).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if path.exists() {
            out.push(path);
        }
    }
    out
}

/// `PUT /recordings/{id}/chunks/{seq}`: the status.
async fn upload(srs: &Srs, token: &str, recording: &str, seq: u32, body: &[u8]) -> u16 {
    use sha2::Digest as _;
    reqwest::Client::new()
        .put(srs.url(&format!("/recordings/{recording}/chunks/{seq}")))
        .bearer_auth(token)
        .header("x-content-sha256", hex::encode(sha2::Sha256::digest(body)))
        .body(body.to_vec())
        .send()
        .await
        .expect("upload")
        .status()
        .as_u16()
}

/// `GET /recordings/{id}/content`: the status, the error code if any, the body.
async fn content(srs: &Srs, token: &str, recording: &str) -> (u16, Option<String>, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(srs.url(&format!("/recordings/{recording}/content")))
        .bearer_auth(token)
        .send()
        .await
        .expect("content");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body").to_vec();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned));
    (status, code, body)
}

/// How long a test waits for a server of the cluster to see what another
/// wrote; a bound so a broken test fails instead of hanging, not a timing
/// claim.
const SETTLE: Duration = Duration::from_secs(60);

/// Runs a mutation, again while the log answers UNAVAILABLE: a server
/// whose last commit another server's append overtook answers that once
/// and reads the stream back (see `srs_log_jetstream`).
async fn mutate(client: &Client, query: &str, variables: serde_json::Value) -> serde_json::Value {
    let deadline = Instant::now() + SETTLE;
    loop {
        let response = client.run(query, variables.clone()).await;
        if response.code() == Some("UNAVAILABLE") && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        return response.data().clone();
    }
}

#[tokio::test]
async fn content_uploaded_through_one_server_plays_through_another_and_is_shredded_for_both() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let dir = tempfile::tempdir().unwrap();
    let key_file = cluster_key_file(dir.path());
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-content"),
        ("SRS_CLUSTER_KEY_FILE", key_file.to_str().unwrap()),
    ];

    // Without the cluster key file a JetStream log is refused, saying how
    // to make one.
    let lonely = dir.path().join("lonely");
    let (code, _, stderr) = run_srs(
        &[
            "serve",
            "--data",
            lonely.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &env[..2],
    );
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("--cluster-key-file"), "{stderr}");
    assert!(stderr.contains("head -c 32 /dev/urandom"), "{stderr}");

    // ---- node A: a recording and its content -------------------------------
    let data_a = dir.path().join("a");
    let a = Srs::start_with_env(&data_a, &env).await;
    let admin_token = a.admin_token();
    let admin_a = Client::new(&a, Some(&admin_token));
    let site = create_site(&admin_a, "HQ").await;
    record_everyone(&admin_a, &site).await;
    let (server, agent_token) = connect_server(&admin_a, &site, "sr-1").await;
    let agent = Client::new(&a, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let id = started["recordingId"].as_str().unwrap().to_owned();
    let chunks = [payload("first", 200_000), payload("second", 3_000)];
    for (seq, chunk) in chunks.iter().enumerate() {
        assert_eq!(upload(&a, &agent_token, &id, seq as u32, chunk).await, 201);
    }
    agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": id }),
        )
        .await;
    let whole = chunks.concat();
    let (status, _, body) = content(&a, &admin_token, &id).await;
    assert_eq!(status, 200);
    assert!(body == whole, "A plays what was uploaded");

    // ---- node B: its own data directory, the same cluster and key ---------
    let data_b = dir.path().join("b");
    let b = Srs::start_with_env(&data_b, &env).await;
    let (status, code, body) = content(&b, &admin_token, &id).await;
    assert_eq!(status, 200, "{code:?}");
    assert!(body == whole, "B plays what was uploaded through A");
    // Neither data directory holds a chunk or a key: they are in the cluster.
    for data in [&data_a, &data_b] {
        let held: Vec<PathBuf> = files(&data.join("content"));
        assert!(held.is_empty(), "{held:?}");
    }

    // ---- deleted through A -------------------------------------------------
    mutate(
        &admin_a,
        "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
        json!({ "id": id }),
    )
    .await;
    let (status, _, _) = content(&a, &admin_token, &id).await;
    assert_eq!(status, 404);
    // B never serves it again: its key is purged from the cluster and its
    // chunks deleted before A answered the deletion.
    let (status, code, body) = content(&b, &admin_token, &id).await;
    assert_ne!(status, 200, "{code:?}");
    assert!(
        !body
            .windows(64)
            .any(|w| w == &chunks[0][..64] || w == &chunks[1][..64]),
        "no content bytes"
    );
    // B answers the recording as deleted (404), like A, as soon as its
    // key ring has seen the key's purge in the cluster (before B's read
    // models need to have followed A's appends).
    let deadline = Instant::now() + SETTLE;
    loop {
        let (status, code, _) = content(&b, &admin_token, &id).await;
        if (status, code.as_deref()) == (404, Some("NOT_FOUND")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "B still answers {status} {code:?} for a recording deleted through A"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}
