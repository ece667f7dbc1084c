//! The `srs` command line as a shell user meets it: output piped into a
//! reader that stops early (`| head`), and `serve` on a port that is taken.

use std::process::{Command, Stdio};

use serde_json::json;

use crate::common::fixtures::*;
use crate::common::server::SRS;
use crate::common::{Client, Srs};

/// Runs `srs args` with its stdout a pipe whose reading end is closed as
/// soon as the process has started, as `srs ... | head -0` does: every
/// write to stdout fails with EPIPE. Returns (exit code, stderr).
fn run_into_closed_pipe(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(SRS)
        .args(args)
        .env_remove("SRS_DATA")
        .env_remove("SRS_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn srs");
    // `spawn` returns once the program runs; it has written nothing yet
    // (it still parses flags, opens a directory or connects).
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for srs");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn piped_output_ends_quietly_and_a_taken_port_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let srs = Srs::start(&data).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "SR-01").await;
    let agent = admin.with_token(&agent_token);
    let started = start_recording(&agent, &server, "s-1", "CORP\\alice", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let stream = format!("recording-{recording}");
    let url = srs.url("");

    // A reader that went away ends the command quietly with exit 0: no
    // panic, no backtrace, no error message.
    for args in [
        vec!["replay", "--url", &url, "--token", &token],
        vec![
            "replay", "--url", &url, "--token", &token, "--format", "table",
        ],
        vec!["projections", "--url", &url, "--token", &token],
        vec!["state", "--data", data_arg, "--as-of", "1000", &stream],
        vec![
            "state",
            "--url",
            &url,
            "--token",
            &token,
            "--as-of",
            "1000",
            "--projection",
            "access-restrictions",
        ],
        vec!["schema"],
    ] {
        let (code, stderr) = run_into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }

    // Without --cors-origin no response carries CORS headers, whatever
    // the origin.
    let http = reqwest::Client::new();
    let preflight = http
        .request(reqwest::Method::OPTIONS, srs.url("/graphql"))
        .header("origin", "https://dashboard.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    let answer = http
        .post(srs.url("/graphql"))
        .header("origin", "https://dashboard.example")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let addr = srs.addr.to_string();
    // `serve` on the port the running server holds: exit 2 naming the
    // address, and neither a data directory nor an admin token created.
    let fresh = dir.path().join("fresh");
    let output = Command::new(SRS)
        .args([
            "serve",
            "--data",
            fresh.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .env_remove("SRS_DATA")
        .env_remove("SRS_LISTEN")
        .env_remove("SRS_DEMO")
        .stdin(Stdio::null())
        .output()
        .expect("run srs serve");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
    assert!(!fresh.exists(), "serve created {}", fresh.display());
    assert!(
        !String::from_utf8_lossy(&output.stdout).contains("admin token"),
        "a token was printed"
    );
    // The same with --demo: the demo needs an empty directory, and still
    // nothing is created when the port is taken.
    let output = Command::new(SRS)
        .args([
            "serve",
            "--demo",
            "--data",
            fresh.to_str().unwrap(),
            "--listen",
            &addr,
        ])
        .env_remove("SRS_DATA")
        .env_remove("SRS_LISTEN")
        .stdin(Stdio::null())
        .output()
        .expect("run srs serve --demo");
    assert_eq!(output.status.code(), Some(2));
    assert!(!fresh.exists(), "serve --demo created {}", fresh.display());

    // Offline, after the stop: the same into a closed pipe.
    assert!(srs.stop().success());
    for args in [
        vec!["replay", "--data", data_arg],
        vec!["replay", "--data", data_arg, "--format", "table"],
        vec!["projections", "--data", data_arg],
    ] {
        let (code, stderr) = run_into_closed_pipe(&args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}
