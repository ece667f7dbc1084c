//! What srs leaves on disk: a private data directory, private files, the
//! admin secret nowhere but the terminal and its 0600 file, and reading
//! commands that work on a read-only copy.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        found.push(path.clone());
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    found.sort();
    found
}

/// A read-only bind mount of a directory, unmounted when dropped.
struct ReadOnly {
    path: PathBuf,
}

impl ReadOnly {
    fn mount(source: &Path, target: &Path) -> Result<ReadOnly, String> {
        std::fs::create_dir_all(target).map_err(|e| e.to_string())?;
        let run = |args: &[&str]| -> Result<(), String> {
            let output = Command::new("mount")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if output.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
            }
        };
        let (source, target_text) = (source.to_str().unwrap(), target.to_str().unwrap());
        run(&["--bind", source, target_text])?;
        let mounted = ReadOnly {
            path: target.to_path_buf(),
        };
        run(&["-o", "remount,bind,ro", target_text])?;
        Ok(mounted)
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn data_files_are_private_and_reading_commands_work_on_a_read_only_copy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let srs = Srs::start(&data).await;
    let admin_token = srs.admin_token();
    let admin = Client::new(&srs, Some(&admin_token));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "sr-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    let started = start_recording(&agent, &server, "s-1", "CORP\\ann", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let body = b"some screen".to_vec();
    let response = reqwest::Client::new()
        .put(srs.url(&format!("/recordings/{recording}/chunks/0")))
        .bearer_auth(&agent_token)
        .header("x-content-sha256", hex::encode(Sha256::digest(&body)))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);

    // ---- private files ----------------------------------------------------
    assert_eq!(mode(&data), 0o700, "the data directory srs created");
    for name in ["db", "conf", "admin.token"] {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    for sub in ["content", "content/keys", "content/live", "content/archive"] {
        assert_eq!(mode(&data.join(sub)), 0o700, "{sub}");
    }
    let key = data.join("content/keys").join(format!("{recording}.key"));
    assert_eq!(mode(&key), 0o600);
    let chunks = data.join("content/live").join(&recording);
    assert_eq!(mode(&chunks), 0o700);
    for chunk in std::fs::read_dir(&chunks).unwrap() {
        assert_eq!(mode(&chunk.unwrap().path()), 0o600);
    }
    // The secret went to stdout and the 0600 file only, never to the log.
    assert_eq!(
        srs.printed_admin_token.as_deref(),
        Some(admin_token.as_str())
    );
    assert!(
        !srs.log_text().contains(&admin_token),
        "the admin secret is in the server log"
    );
    assert!(srs.stop().success());

    // ---- a read-only copy ---------------------------------------------------
    let copy = dir.path().join("copy");
    let status = Command::new("cp")
        .arg("-a")
        .arg(&data)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(status.success());
    let ro = match ReadOnly::mount(&copy, &dir.path().join("ro")) {
        Ok(ro) => ro,
        Err(why) => {
            println!("SKIPPED the read-only part of data_files_are_private_and_reading_commands_work_on_a_read_only_copy: cannot mount read-only here ({why})");
            return;
        }
    };
    let ro_arg = ro.path.to_str().unwrap();
    let before = files(&ro.path);
    let (code, stdout, stderr) = run_srs(&["verify", "--data", ro_arg], &[]);
    assert_eq!(code, Some(0), "verify: {stdout}{stderr}");
    assert!(stdout.starts_with("intact"), "{stdout}");
    assert!(
        stderr.contains("read-only"),
        "it says it read a copy: {stderr}"
    );
    let (code, stdout, stderr) = run_srs(&["replay", "--data", ro_arg], &[]);
    assert_eq!(code, Some(0), "replay: {stderr}");
    assert!(stdout.lines().count() > 5, "{stdout}");
    let (code, stdout, stderr) = run_srs(
        &[
            "state",
            "--data",
            ro_arg,
            "--as-of",
            "1",
            "--projection",
            "access-restrictions",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "state: {stdout}{stderr}");
    let (code, _, stderr) = run_srs(&["export", "--data", ro_arg, "/dev/null"], &[]);
    assert_eq!(code, Some(0), "export: {stderr}");
    assert!(stderr.contains("not recorded"), "{stderr}");
    // Exporting into a device writes into it, never renames over it.
    use std::os::unix::fs::FileTypeExt as _;
    assert!(
        std::fs::metadata("/dev/null")
            .unwrap()
            .file_type()
            .is_char_device(),
        "export replaced /dev/null with a file"
    );
    let (code, stdout, stderr) = run_srs(&["projections", "--data", ro_arg], &[]);
    assert_eq!(code, Some(0), "projections: {stdout}{stderr}");
    assert_eq!(
        files(&ro.path),
        before,
        "nothing was written to the read-only copy"
    );
}
