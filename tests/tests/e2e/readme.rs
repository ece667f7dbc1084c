//! The README's tour runs as written.
//!
//! The test takes every ```` ```sh ```` block of the README's "A short
//! tour" section, in order, and runs them as one bash script (`set -euo
//! pipefail`, so the first command that exits non-zero fails it) against
//! a real server, as a reader following the tour would. What it puts in
//! place of the reader's setup, and nothing else:
//!
//! - the line `srs serve --data data` is the test's own start of the
//!   server: `srs serve --data <tmp>/data --listen 127.0.0.1:0`, so the
//!   tour's `data` directory is `<tmp>/data` and the script runs in
//!   `<tmp>`;
//! - the tour's address `127.0.0.1:8080` becomes the port the server got;
//! - `srs` on the `PATH` is the binary under test.
//!
//! An answer with a GraphQL `errors` member fails the test too (curl
//! exits 0 on those).

use std::process::Command;

use crate::common::server::SRS;
use crate::common::Srs;

const README: &str = include_str!("../../../README.md");
const TOUR_PORT: &str = "127.0.0.1:8080";
const SERVE_LINE: &str = "srs serve --data data";

/// The shell blocks of the section headed `## A short tour`.
fn tour_blocks() -> Vec<String> {
    let start = README
        .find("\n## A short tour\n")
        .expect("the README has a tour");
    let section = &README[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(at) = rest.find("```sh\n") {
        rest = &rest[at + "```sh\n".len()..];
        let end = rest.find("```").expect("a closed block");
        blocks.push(rest[..end].to_owned());
        rest = &rest[end + 3..];
    }
    blocks
}

#[tokio::test]
async fn the_readme_tour_runs_as_written() {
    let blocks = tour_blocks();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let mut script = String::from("set -euo pipefail\nset -x\n");
    let mut served = false;
    for block in &blocks {
        for line in block.lines() {
            if line.trim() == SERVE_LINE {
                served = true;
                continue;
            }
            assert!(
                !line.trim_start().starts_with("srs serve"),
                "a server start the test does not know: {line}"
            );
            script.push_str(line);
            script.push('\n');
        }
    }
    assert!(served, "the tour starts the server with `{SERVE_LINE}`");
    assert!(script.contains(TOUR_PORT), "the tour talks to {TOUR_PORT}");
    assert!(script.contains("\nsrs "), "the tour runs srs commands");

    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let script = script.replace(TOUR_PORT, &srs.addr.to_string());
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(SRS, bin.join("srs")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = tokio::task::spawn_blocking({
        let cwd = dir.path().to_path_buf();
        move || {
            Command::new("bash")
                .arg("-c")
                .arg(&script)
                .current_dir(cwd)
                .env("PATH", path)
                .env_remove("SRS_DATA")
                .env_remove("SRS_URL")
                .env_remove("SRS_TOKEN")
                .output()
                .expect("run bash")
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the tour failed ({}):\nstdout:\n{stdout}\nstderr (each command after `+`):\n{stderr}",
        output.status
    );
    assert!(
        !stdout.contains("\"errors\""),
        "a GraphQL error in the tour:\n{stdout}"
    );
    // It did what it says: the site exists, and the export was written.
    assert!(stdout.contains("\"name\":\"HQ\""), "{stdout}");
    assert!(dir.path().join("log.srs.jsonl").is_file());
    assert!(srs.stop().success());
}
