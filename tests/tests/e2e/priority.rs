//! Answers people wait for before work nobody watches, against the real
//! binary: a running `srs serve` keeps its serving threads at the
//! process's own scheduling priority and runs the background work (the
//! background runtime with the projections and agents' requests, the
//! log's writer, sled's I/O threads) at nice 10; `SRS_BACKGROUND_NICE=0`
//! turns that off. Read from `/proc`, as an operator would check it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const RECORD: &str = "mutation($recording: ID!, $events: [SessionEventInput!]!) {
    recordSessionEvents(recordingId: $recording, events: $events) { position } }";

/// Each thread of `pid` as (name, nice value).
fn threads(pid: u32) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the process's tasks") {
        let Ok(task) = task else { continue };
        // A thread may end between the listing and the read.
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // `tid (comm) state ...`: the name may hold spaces and parentheses,
        // so it ends at the last `)`; nice is the 19th field.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let nice = stat[close + 1..]
            .split_whitespace()
            .nth(16)
            .and_then(|n| n.parse().ok())
            .expect("a nice value");
        out.push((name, nice));
    }
    out
}

/// The nice values of `pid`'s threads, by kind of thread.
fn by_kind(pid: u32) -> BTreeMap<&'static str, Vec<i32>> {
    let mut kinds: BTreeMap<&'static str, Vec<i32>> = BTreeMap::new();
    for (name, nice) in threads(pid) {
        let kind = match name.as_str() {
            "srs-background" => "background runtime",
            "srs-log-apply" | "srs-log-flush" => "log writer",
            n if n.starts_with("sled-io-") || n == "log flusher" => "sled I/O",
            // The serving runtime's workers and blocking threads (tokio's
            // default names, as the kernel keeps them: at most 15 bytes).
            "tokio-rt-worker" | "tokio-runtime-w" => "serving runtime",
            _ => continue,
        };
        kinds.entry(kind).or_default().push(nice);
    }
    kinds
}

/// This test process's own nice value: what a thread of a child starts at.
fn own_nice() -> i32 {
    threads(std::process::id())
        .first()
        .map(|(_, nice)| *nice)
        .expect("this process's main thread")
}

/// Starts a server, connects a server to it and has its agent record a
/// batch, so every kind of thread has run.
async fn busy_server(data: &std::path::Path, env: &[(&str, &str)]) -> Srs {
    let srs = Srs::start_with_env(data, env).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "Priority").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "vda-prio").await;
    let agent = admin.with_token(&agent_token);
    let started = start_recording(&agent, &server, "s-prio", "alice", &[]).await;
    let recording = started["recordingId"].as_str().expect("a recording id");
    let events: Vec<_> = (0..50)
        .map(|i| {
            event(
                "WEB_BROWSING",
                i * 100,
                json!({ "url": "https://example.com/a" }),
            )
        })
        .collect();
    agent
        .data(RECORD, json!({ "recording": recording, "events": events }))
        .await;
    srs
}

#[tokio::test]
async fn background_work_runs_below_the_threads_that_answer() {
    let dir = tempfile::tempdir().unwrap();
    let srs = busy_server(&dir.path().join("data"), &[]).await;
    let base = own_nice();
    let background = 10.max(base);
    // sled starts its I/O threads itself; they are lowered within 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    let kinds = loop {
        let kinds = by_kind(srs.pid());
        let settled = kinds
            .get("sled I/O")
            .is_some_and(|nice| nice.iter().all(|n| *n == background));
        if settled || Instant::now() > deadline {
            break kinds;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for kind in ["background runtime", "log writer", "sled I/O"] {
        let nice = kinds
            .get(kind)
            .unwrap_or_else(|| panic!("no {kind} threads: {kinds:?}"));
        assert!(
            nice.iter().all(|n| *n == background),
            "{kind} threads run at nice {nice:?}, not {background}: {kinds:?}"
        );
    }
    let serving = kinds
        .get("serving runtime")
        .unwrap_or_else(|| panic!("no serving threads: {kinds:?}"));
    assert!(
        serving.iter().all(|n| *n == base),
        "the serving threads run at nice {serving:?}, not the process's {base}: {kinds:?}"
    );
    srs.stop();
}

#[tokio::test]
async fn background_nice_0_keeps_every_thread_at_the_process_priority() {
    let dir = tempfile::tempdir().unwrap();
    let srs = busy_server(&dir.path().join("data"), &[("SRS_BACKGROUND_NICE", "0")]).await;
    let base = own_nice();
    // Past the 5 s in which sled's threads would have been lowered.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let kinds = by_kind(srs.pid());
    assert!(kinds.contains_key("background runtime"), "{kinds:?}");
    for (kind, nice) in &kinds {
        assert!(
            nice.iter().all(|n| *n == base),
            "{kind} threads run at nice {nice:?} with SRS_BACKGROUND_NICE=0: {kinds:?}"
        );
    }
    srs.stop();
}
