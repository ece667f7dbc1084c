//! Backups that keep content, against the real binary: `srs backup`
//! through a running server (`--url`) and offline (`--data`), `srs
//! restore` into an empty directory and `srs serve` on it (bytes equal,
//! Range works, `srs verify` passes); a flipped chunk byte, a wrong
//! passphrase and a non-empty target are refused with nothing written;
//! content the disk lacks answers 409 `CONTENT_MISSING`; `export` and
//! `state` through `--url` and while the server holds the directory.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

struct Reply {
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    fn code(&self) -> Option<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
    }
}

async fn put(base: &str, token: &str, path: &str, body: &[u8]) -> Reply {
    let response = reqwest::Client::new()
        .put(format!("{base}{path}"))
        .bearer_auth(token)
        .header("x-content-sha256", sha(body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    Reply {
        status: response.status().as_u16(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

async fn content(base: &str, token: &str, id: &str, range: Option<&str>) -> Reply {
    let mut request = reqwest::Client::new()
        .get(format!("{base}/recordings/{id}/content"))
        .bearer_auth(token);
    if let Some(range) = range {
        request = request.header("range", range);
    }
    let response = request.send().await.unwrap();
    Reply {
        status: response.status().as_u16(),
        body: response.bytes().await.unwrap().to_vec(),
    }
}

/// Distinctive bytes.
fn payload(tag: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("{tag}-{n:08}|").as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            out.push(path);
        }
    }
    out
}

fn absent_or_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn backups_keep_content_and_restore_only_what_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let base = srs.url("");
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));
    let site = create_site(&admin, "Backups").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "rec-backup").await;
    let agent = admin.with_token(&agent_token);

    // A screen recording of three chunks, an asciicast, and a recording
    // deleted before the backup.
    let screen = start_recording(&agent, &server, "s-1", "CORP\\alice", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let chunks: Vec<Vec<u8>> = (0..3)
        .map(|i| payload(&format!("screen{i}"), 200_000 + i * 1000))
        .collect();
    for (seq, chunk) in chunks.iter().enumerate() {
        let reply = put(
            &base,
            &agent_token,
            &format!("/recordings/{screen}/chunks/{seq}"),
            chunk,
        )
        .await;
        assert_eq!(
            reply.status,
            201,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let whole: Vec<u8> = chunks.concat();
    let cast_id = start_recording(&agent, &server, "tty-1", "CORP\\bob", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let cast = "{\"version\": 2, \"width\": 80, \"height\": 24}\n[0.25, \"o\", \"$ ls backup-e2e\\r\\n\"]\n[1.5, \"i\", \"q\"]\n";
    let reply = put(
        &base,
        &agent_token,
        &format!("/recordings/{cast_id}/asciicast"),
        cast.as_bytes(),
    )
    .await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // A large one (6 x 4 MiB) for the body that breaks off mid-stream.
    let big = start_recording(&agent, &server, "s-big", "CORP\\dave", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let big_chunks: Vec<Vec<u8>> = (0..6)
        .map(|i| payload(&format!("big{i}"), 4 * 1024 * 1024))
        .collect();
    for (seq, chunk) in big_chunks.iter().enumerate() {
        let reply = put(
            &base,
            &agent_token,
            &format!("/recordings/{big}/chunks/{seq}"),
            chunk,
        )
        .await;
        assert_eq!(
            reply.status,
            201,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    let gone = start_recording(&agent, &server, "s-gone", "CORP\\carol", &[]).await["recordingId"]
        .as_str()
        .unwrap()
        .to_owned();
    let gone_chunk = payload("gone", 5000);
    assert_eq!(
        put(
            &base,
            &agent_token,
            &format!("/recordings/{gone}/chunks/0"),
            &gone_chunk
        )
        .await
        .status,
        201
    );
    for id in [&screen, &cast_id, &gone, &big] {
        agent
            .data(
                "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
                json!({ "id": id }),
            )
            .await;
    }
    admin
        .data(
            "mutation($id: ID!) { deleteRecording(recordingId: $id) { position } }",
            json!({ "id": gone }),
        )
        .await;
    // The asciicast is archived: the restore keeps it so.
    admin
        .data(
            "mutation($id: ID!) { archiveRecording(recordingId: $id) { position } }",
            json!({ "id": cast_id }),
        )
        .await;
    let archived_dir = |root: &Path| root.join("content/archive").join(&cast_id);
    for _ in 0..100 {
        if archived_dir(&data).is_dir() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(archived_dir(&data).is_dir());
    let key_files: Vec<Vec<u8>> = files(&data.join("content/keys"))
        .iter()
        .map(|f| std::fs::read(f).unwrap())
        .collect();
    assert_eq!(key_files.len(), 3, "the deleted recording's key is gone");

    let passphrase_file = dir.path().join("passphrase");
    std::fs::write(&passphrase_file, "a long backup passphrase\n").unwrap();
    let kdf = ["--kdf-memory-mib", "8"];

    // ---- through the running server ----------------------------------------
    // Offline, a held directory is refused with a hint.
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--data",
            s(&data),
            "--passphrase-file",
            s(&passphrase_file),
            s(&dir.path().join("held.srsbak")),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("in use") && stderr.contains("--url"),
        "{stderr}"
    );
    assert!(!dir.path().join("held.srsbak").exists());

    let by_url = dir.path().join("by-url.srsbak");
    let mut args = vec!["backup", "--url", &base, "--token", &token];
    args.extend(["--passphrase-file", s(&passphrase_file)]);
    args.extend(kdf);
    args.push(s(&by_url));
    let (code, _, stderr) = run_srs(&args, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let bytes = std::fs::read(&by_url).unwrap();
    for key in &key_files {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_slice()),
            "no key in plain in the backup"
        );
    }
    assert!(
        !bytes
            .windows(gone_chunk.len().min(64))
            .any(|w| w == &gone_chunk[..64]),
        "nothing of the deleted recording"
    );
    // Another role may not take a backup (and the refusal is a fact).
    let auditor = issue_token(&admin, "auditor-backup", "AUDITOR", &[], &[]).await;
    let refused = dir.path().join("refused.srsbak");
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--url",
            &base,
            "--token",
            &auditor,
            "--passphrase-file",
            s(&passphrase_file),
            s(&refused),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("FORBIDDEN"), "{stderr}");
    assert!(!refused.exists());
    routes_by_role(&admin, &base, &token, &site, &agent_token).await;
    // The backup is an audit fact.
    let (code, stdout, stderr) = run_srs(
        &[
            "replay",
            "--url",
            &base,
            "--token",
            &token,
            "--type",
            "BackupTaken",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    // The CLI's backup and the admin's call of the route in the matrix.
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(stdout.contains("\"by\":\"admin\""), "{stdout}");

    // ---- export and state through the server, and while it holds the directory
    let exported = dir.path().join("log.export");
    let (code, _, stderr) = run_srs(
        &["export", "--url", &base, "--token", &token, s(&exported)],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, _, stderr) = run_srs(
        &[
            "import",
            "--data",
            s(&dir.path().join("imported")),
            s(&exported),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let held_export = dir.path().join("held.export");
    let (code, _, stderr) = run_srs(&["export", "--data", s(&data), s(&held_export)], &[]);
    assert_eq!(
        code,
        Some(0),
        "export while the server holds the directory: {stderr}"
    );
    let (code, _, stderr) = run_srs(
        &[
            "import",
            "--data",
            s(&dir.path().join("held-import")),
            s(&held_export),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "the copy's export verifies: {stderr}");
    for source in [
        vec!["--url", &base, "--token", &token],
        vec!["--data", s(&data)],
    ] {
        let mut args = vec![
            "state",
            "--as-of",
            "5",
            "--projection",
            "access-restrictions",
        ];
        args.extend(source.iter().copied());
        let (code, stdout, stderr) = run_srs(&args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(serde_json::from_str::<Value>(&stdout).is_ok(), "{stdout}");
    }
    let (code, _, stderr) = run_srs(
        &[
            "export",
            "--url",
            &base,
            "--token",
            "not-a-token",
            s(&dir.path().join("x.export")),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");

    // ---- offline ---------------------------------------------------------------
    assert!(srs.stop().success());
    let by_data = dir.path().join("by-data.srsbak");
    let mut args = vec!["backup", "--data", s(&data)];
    args.extend(kdf);
    args.push(s(&by_data));
    let (code, _, stderr) = run_srs(
        &args,
        &[("SRS_BACKUP_PASSPHRASE", "a long backup passphrase")],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let key_file = dir.path().join("wrap.key");
    std::fs::write(&key_file, [42u8; 32]).unwrap();
    let by_key = dir.path().join("by-key.srsbak");
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--data",
            s(&data),
            "--key-file",
            s(&key_file),
            s(&by_key),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");

    // ---- restore and serve ---------------------------------------------------
    let restored = dir.path().join("restored");
    let (code, stdout, stderr) = run_srs(
        &[
            "restore",
            s(&by_url),
            "--data",
            s(&restored),
            "--passphrase-file",
            s(&passphrase_file),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("10 chunks"), "{stdout}");
    let (code, stdout, stderr) = run_srs(&["verify", "--data", s(&restored)], &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let copy = Srs::start(&restored).await;
    let copy_base = copy.url("");
    let played = content(&copy_base, &token, &screen, None).await;
    assert_eq!(played.status, 200);
    assert_eq!(played.body, whole, "bytes equal");
    let part = content(&copy_base, &token, &screen, Some("bytes=199990-200020")).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &whole[199_990..=200_020]);
    assert!(archived_dir(&restored).is_dir(), "still archived");
    let played = content(&copy_base, &token, &cast_id, None).await;
    assert_eq!(
        (played.status, played.body.as_slice()),
        (200, cast.as_bytes())
    );
    assert_eq!(content(&copy_base, &token, &gone, None).await.status, 404);
    assert!(copy.stop().success());
    let (code, _, stderr) = run_srs(&["verify", "--data", s(&restored)], &[]);
    assert_eq!(code, Some(0), "{stderr}");

    // The offline backups restore too (passphrase from the environment, key file).
    for (file, secret, env) in [
        (
            &by_data,
            vec![],
            vec![("SRS_BACKUP_PASSPHRASE", "a long backup passphrase")],
        ),
        (&by_key, vec!["--key-file", s(&key_file)], vec![]),
    ] {
        let target = dir.path().join(format!(
            "from-{}",
            file.file_stem().unwrap().to_str().unwrap()
        ));
        let mut args = vec!["restore", s(file), "--data", s(&target)];
        args.extend(secret);
        let (code, _, stderr) = run_srs(&args, &env);
        assert_eq!(code, Some(0), "{stderr}");
        let (code, _, stderr) = run_srs(&["verify", "--data", s(&target)], &[]);
        assert_eq!(code, Some(0), "{stderr}");
    }

    // ---- refusals: nothing written -------------------------------------------------
    let target = dir.path().join("target");
    // One flipped byte inside a chunk.
    let mut bytes = std::fs::read(&by_data).unwrap();
    let stored = std::fs::read(
        files(&data.join("content/live"))
            .into_iter()
            .next()
            .unwrap(),
    )
    .unwrap();
    let at = bytes
        .windows(64)
        .position(|w| w == &stored[100..164])
        .expect("the stored chunk is in the backup as it is");
    bytes[at + 10] ^= 0x01;
    let flipped = dir.path().join("flipped.srsbak");
    std::fs::write(&flipped, &bytes).unwrap();
    let (code, _, stderr) = run_srs(
        &[
            "restore",
            s(&flipped),
            "--data",
            s(&target),
            "--passphrase-file",
            s(&passphrase_file),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("does not hash"), "{stderr}");
    assert!(absent_or_empty(&target));
    // A wrong passphrase.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase").unwrap();
    let (code, _, stderr) = run_srs(
        &[
            "restore",
            s(&by_data),
            "--data",
            s(&target),
            "--passphrase-file",
            s(&wrong),
        ],
        &[],
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("wrong passphrase"), "{stderr}");
    assert!(absent_or_empty(&target));
    // No passphrase at all.
    let (code, _, stderr) = run_srs(&["restore", s(&by_data), "--data", s(&target)], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(absent_or_empty(&target));
    // A non-empty target.
    let (code, _, stderr) = run_srs(
        &[
            "restore",
            s(&by_url),
            "--data",
            s(&restored),
            "--passphrase-file",
            s(&passphrase_file),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("not empty"), "{stderr}");

    // ---- content the disk lacks ----------------------------------------------------
    // A log imported without its content (`export` + `import`): the
    // recording says it has content, and playing it says it is missing
    // (it used to answer 200 with no bytes).
    let imported = Srs::start(&dir.path().join("imported")).await;
    let reply = content(&imported.url(""), &token, &screen, None).await;
    assert_eq!(
        (reply.status, reply.code().as_deref()),
        (409, Some("CONTENT_MISSING")),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(imported.stop().success());
    let copy = Srs::start(&restored).await;
    let copy_base = copy.url("");
    let chunk_file = restored
        .join("content/live")
        .join(&screen)
        .join(format!("{:020}.chunk", 1));
    std::fs::remove_file(&chunk_file).unwrap();
    for range in [None, Some("bytes=0-99")] {
        let reply = content(&copy_base, &token, &screen, range).await;
        assert_eq!(
            (reply.status, reply.code().as_deref()),
            (409, Some("CONTENT_MISSING")),
            "{range:?}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // A chunk that vanishes after the headers went out: the connection is
    // aborted, never a complete-looking short body.
    let response = reqwest::Client::new()
        .get(format!("{copy_base}/recordings/{big}/content"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.content_length(), Some(6 * 4 * 1024 * 1024));
    std::fs::remove_file(
        restored
            .join("content/live")
            .join(&big)
            .join(format!("{:020}.chunk", 5)),
    )
    .unwrap();
    let body = response.bytes().await;
    assert!(body.is_err(), "the body must break off, not end short");
    // The key missing is the same answer.
    std::fs::remove_file(restored.join("content/keys").join(format!("{cast_id}.key"))).unwrap();
    let reply = content(&copy_base, &token, &cast_id, None).await;
    assert_eq!(
        (reply.status, reply.code().as_deref()),
        (409, Some("CONTENT_MISSING"))
    );
    // A backup of a directory that lacks content refuses, and writes no file.
    let broken = dir.path().join("broken.srsbak");
    let copy_token = token.clone();
    let (code, _, stderr) = run_srs(
        &[
            "backup",
            "--url",
            &copy_base,
            "--token",
            &copy_token,
            "--passphrase-file",
            s(&passphrase_file),
            "--kdf-memory-mib",
            "8",
            s(&broken),
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("CONTENT_MISSING"), "{stderr}");
    assert!(!broken.exists());
    assert!(copy.stop().success());
}

/// `POST /backup` and `GET /log/export` for every kind of caller: a backup
/// is the ADMIN of all sites' alone, an export whoever reads the whole
/// history; each refusal is one `AccessDenied` fact.
async fn routes_by_role(admin: &Client, base: &str, token: &str, site: &str, agent_token: &str) {
    let site_admin = issue_token(admin, "site-admin-backup", "ADMIN", &[site], &[]).await;
    let privileged = issue_token(admin, "privileged-backup", "PRIVILEGED_PLAYER", &[], &[]).await;
    let auditor = issue_token(admin, "auditor-routes", "AUDITOR", &[], &[]).await;
    let site_auditor = issue_token(admin, "site-auditor-routes", "AUDITOR", &[site], &[]).await;
    let viewer = issue_token(admin, "viewer-backup", "VIEWER", &[], &[]).await;
    let denials = || {
        let (code, stdout, stderr) = run_srs(
            &[
                "replay",
                "--url",
                base,
                "--token",
                token,
                "--type",
                "AccessDenied",
            ],
            &[],
        );
        assert_eq!(code, Some(0), "{stderr}");
        stdout.lines().count()
    };
    let before = denials();
    let http = reqwest::Client::new();
    let body = json!({ "wrapping": { "kind": "key-file" }, "wrapping_key": "11".repeat(32) });
    // (caller, backup status, export status)
    let cells: [(&str, Option<&str>, u16, u16); 8] = [
        ("admin", Some(token), 200, 200),
        ("site_admin", Some(&site_admin), 403, 403),
        ("privileged", Some(&privileged), 403, 403),
        ("auditor", Some(&auditor), 403, 200),
        ("site_auditor", Some(&site_auditor), 403, 403),
        ("viewer", Some(&viewer), 403, 403),
        ("agent", Some(agent_token), 403, 403),
        ("anonymous", None, 401, 401),
    ];
    let mut refused = 0;
    for (who, secret, backup_status, export_status) in cells {
        let mut backup = http.post(format!("{base}/backup")).json(&body);
        let mut export = http.get(format!("{base}/log/export"));
        if let Some(secret) = secret {
            backup = backup.bearer_auth(secret);
            export = export.bearer_auth(secret);
        }
        let backup = backup.send().await.unwrap();
        assert_eq!(backup.status().as_u16(), backup_status, "{who} backup");
        let bytes = backup.bytes().await.unwrap();
        if backup_status == 200 {
            assert!(bytes.starts_with(b"SRS-BAK\n"), "{who}");
        }
        let export = export.send().await.unwrap();
        assert_eq!(export.status().as_u16(), export_status, "{who} export");
        let text = export.text().await.unwrap();
        if export_status == 200 {
            assert!(text.contains("\"trailer\""), "{who}");
        }
        refused += usize::from(backup_status == 403) + usize::from(export_status == 403);
    }
    // A body that is not a backup request.
    let bad = http
        .post(format!("{base}/backup"))
        .bearer_auth(token)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    assert_eq!(denials() - before, refused, "one AccessDenied per refusal");
}
