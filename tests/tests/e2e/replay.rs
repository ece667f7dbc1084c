//! The audit and operations subcommands against data directories written
//! by a real `srs serve` and against a generated 100,000-event history:
//! `srs replay`, `state`, `projections`, `rebuild`, `export`, `import`,
//! through the server (`--url`) while it runs and offline after it stops,
//! and the GraphQL `verify` query and `rebuildProjections` mutation.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
use srs_domain::model::testing::fixtures::{SITE, T0};
use srs_domain::model::DomainEvent;

use crate::common::fixtures::*;
use crate::common::log::append_recordings;
use crate::common::server::{run_srs, SRS};
use crate::common::{Client, Srs};

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["position"].as_u64().expect("a position"))
        .collect()
}

const VERIFY: &str = "query($from: Int) { verify(fromPosition: $from) { intact checked lastPosition lastHash breach { position kind reason } } }";
const REBUILD: &str = "mutation($names: [String!]) { rebuildProjections(names: $names) { position events target projections { name position error } } }";

#[tokio::test]
async fn audit_tools_replay_state_export_import_and_rebuild_a_real_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let srs = Srs::start(&data).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));

    // A small history: two sites, a server, a recording, a restriction.
    let site = create_site(&admin, "HQ").await;
    create_site(&admin, "Branch").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "SR-01").await;
    let agent = admin.with_token(&agent_token);
    let started = start_recording(&agent, &server, "s-1", "CORP\\alice", &[]).await;
    let recording = started["recordingId"].as_str().unwrap().to_owned();
    let ended = agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": recording }),
        )
        .await;
    let before_restriction = position(&ended["endRecording"]) as u64;
    let restricted = admin
        .data(
            "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"HR case 7\") { position } }",
            json!({ "id": recording }),
        )
        .await;
    let restricted_at = position(&restricted["restrictRecording"]) as u64;
    let auditor = admin.with_token(&issue_token(&admin, "audra", "AUDITOR", &[], &[]).await);

    // GraphQL: verify and rebuild are ADMIN's; bad names are refused.
    let verified = admin.data(VERIFY, json!({})).await;
    assert_eq!(verified["verify"]["intact"], true, "{verified}");
    assert!(verified["verify"]["checked"].as_u64().unwrap() >= restricted_at);
    auditor
        .run(VERIFY, json!({}))
        .await
        .expect_code("FORBIDDEN");
    auditor
        .run(REBUILD, json!({ "names": ["access"] }))
        .await
        .expect_code("FORBIDDEN");
    admin
        .run(REBUILD, json!({ "names": ["nope"] }))
        .await
        .expect_code("VALIDATION");
    admin
        .run(VERIFY, json!({ "from": -1 }))
        .await
        .expect_code("VALIDATION");

    // While the server holds the directory: offline tools that would need
    // it to themselves refuse (exit 2), the same commands go through the
    // server with --url; `export` and `state` read a checked private copy.
    for args in [
        vec!["replay", "--data", data_arg],
        vec!["projections", "--data", data_arg],
        vec!["rebuild", "--all", "--data", data_arg],
    ] {
        let (code, _, stderr) = run_srs(&args, &[]);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("in use"), "{args:?}: {stderr}");
    }
    for args in [
        vec!["export", "--data", data_arg, "/dev/null"],
        vec![
            "state",
            "--data",
            data_arg,
            "--as-of",
            "1",
            "--projection",
            "access-restrictions",
        ],
    ] {
        let (code, _, stderr) = run_srs(&args, &[]);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains("private copy"), "{args:?}: {stderr}");
    }
    let url = srs.url("");
    let (code, stdout, stderr) = run_srs(&["replay", "--url", &url, "--token", &token], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let online = lines(&stdout);
    assert_eq!(
        positions(&online),
        (1..=online.len() as u64).collect::<Vec<_>>()
    );
    assert!(online.len() as u64 >= restricted_at);
    let to = restricted_at.to_string();
    let (code, online_table, stderr) = run_srs(
        &[
            "replay", "--url", &url, "--token", &token, "--to", &to, "--format", "table",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = run_srs(
        &[
            "rebuild",
            "access",
            "catalogue",
            "--url",
            &url,
            "--token",
            &token,
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("access: at position"), "{stdout}");
    assert!(stdout.contains("catalogue: at position"), "{stdout}");
    // The rebuilt read models answer as before.
    let seen = admin
        .data(
            "query($id: ID!) { recording(id: $id) { restricted } }",
            json!({ "id": recording }),
        )
        .await;
    assert_eq!(seen["recording"]["restricted"], true);
    let (code, stdout, _) = run_srs(
        &["projections", "--url", &url, "--token", &token, "--json"],
        &[],
    );
    assert_eq!(code, Some(0));
    // Eleven read models (the history index among them) and the content
    // effects' reactor.
    assert_eq!(lines(&stdout).len(), 12, "{stdout}");
    assert!(stdout.contains("\"content-effects\""), "{stdout}");
    assert!(stdout.contains("\"history\""), "{stdout}");
    let (code, _, stderr) = run_srs(
        &[
            "rebuild",
            "--all",
            "--url",
            &url,
            "--token",
            auditor.token().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("FORBIDDEN"), "{stderr}");
    let (code, _, stderr) = run_srs(&["replay", "--follow", "--data", data_arg], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--url"), "{stderr}");
    assert!(srs.stop().success());

    // Offline replay: every envelope field, filters.
    let (code, stdout, stderr) = run_srs(&["replay", "--data", data_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let all = lines(&stdout);
    let head = all.len() as u64;
    assert_eq!(positions(&all), (1..=head).collect::<Vec<_>>());
    // Refusals were recorded after the online replay; it is a prefix.
    assert!(head > online.len() as u64);
    for (offline, online) in all.iter().zip(&online) {
        assert_eq!(offline["hash"], online["hash"]);
        assert_eq!(
            offline["payload"]["SiteCreated"],
            online["payload"]["SiteCreated"]
        );
    }
    for field in [
        "position",
        "stream",
        "version",
        "event_id",
        "recorded_at",
        "actor",
        "correlation_id",
        "causation_id",
        "type",
        "payload",
        "prev_hash",
        "hash",
    ] {
        assert!(all[0].get(field).is_some(), "{field} missing: {}", all[0]);
    }
    // One shape online and offline: every envelope field the same, the
    // actor as the label `--actor` takes (agents, principals, system).
    let mut actors = std::collections::BTreeSet::new();
    for (offline, online) in all.iter().zip(&online) {
        for field in [
            "position",
            "stream",
            "version",
            "event_id",
            "recorded_at",
            "actor",
            "correlation_id",
            "causation_id",
            "type",
            "hash",
        ] {
            assert_eq!(
                offline[field], online[field],
                "{field}: {offline} / {online}"
            );
        }
        let actor = offline["actor"].as_str().expect("the actor is a label");
        actors.insert(actor.split(':').next().unwrap().to_owned());
    }
    assert!(
        actors.contains("principal") && actors.contains("agent"),
        "{actors:?}"
    );
    // The same table, aligned, from the server and from the directory.
    let (code, offline_table, stderr) = run_srs(
        &[
            "replay", "--data", data_arg, "--to", &to, "--format", "table",
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(offline_table, online_table);
    let table: Vec<&str> = offline_table.lines().collect();
    assert_eq!(table.len() as u64, restricted_at + 1, "{offline_table}");
    assert!(
        table[0].starts_with("POSITION  RECORDED_AT"),
        "{offline_table}"
    );
    // Text starts under its header, numbers end under theirs.
    for (column, right) in [
        ("POSITION", true),
        ("RECORDED_AT", false),
        ("STREAM", false),
        ("VERSION", true),
        ("TYPE", false),
        ("ACTOR", false),
    ] {
        let at = table[0].find(column).unwrap();
        let end = at + column.len();
        for row in &table[1..] {
            let row = row.as_bytes();
            let aligned = if right {
                row[end - 1] != b' ' && row[end] == b' '
            } else {
                row[at] != b' ' && row[at - 1] == b' '
            };
            assert!(aligned, "{column} is not aligned:\n{offline_table}");
        }
    }
    for pair in all.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    let stream = format!("recording-{recording}");
    let (_, stdout, _) = run_srs(&["replay", "--data", data_arg, "--stream", &stream], &[]);
    let of_stream = lines(&stdout);
    assert!(!of_stream.is_empty());
    assert!(of_stream.iter().all(|e| e["stream"] == stream.as_str()));
    let (_, stdout, _) = run_srs(
        &[
            "replay",
            "--data",
            data_arg,
            "--type",
            "SiteCreated",
            "--type",
            "RecordingRestricted",
        ],
        &[],
    );
    let typed = lines(&stdout);
    assert_eq!(typed.len(), 3, "{stdout}");
    let (_, stdout, _) = run_srs(
        &["replay", "--data", data_arg, "--from", "2", "--to", "3"],
        &[],
    );
    assert_eq!(positions(&lines(&stdout)), vec![2, 3]);
    let (_, stdout, _) = run_srs(
        &[
            "replay",
            "--data",
            data_arg,
            "--actor",
            &format!("agent:{server}"),
        ],
        &[],
    );
    let by_agent = lines(&stdout);
    assert!(!by_agent.is_empty());
    assert!(by_agent
        .iter()
        .all(|e| e["actor"] == format!("agent:{server}").as_str()));
    let last_time = all.last().unwrap()["recorded_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, stdout, _) = run_srs(&["replay", "--data", data_arg, "--since", &last_time], &[]);
    assert_eq!(lines(&stdout).last().unwrap()["position"], head);
    let (_, stdout, _) = run_srs(&["replay", "--data", data_arg, "--until", &last_time], &[]);
    assert!(lines(&stdout)
        .iter()
        .all(|e| e["position"].as_u64() < Some(head)));
    let (code, stdout, _) = run_srs(&["replay", "--data", data_arg, "--format", "table"], &[]);
    assert_eq!(code, Some(0));
    assert_eq!(stdout.lines().count() as u64, head + 1);
    assert!(stdout.contains("RecordingRestricted"));
    let (code, _, stderr) = run_srs(&["replay", "--data", data_arg, "--since", "yesterday"], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("RFC 3339"), "{stderr}");

    // Point in time: the recording and the restriction list before and
    // after the restriction.
    let state_at = |at: u64| {
        let (code, stdout, stderr) = run_srs(
            &[
                "state",
                "--data",
                data_arg,
                "--as-of",
                &at.to_string(),
                &stream,
            ],
            &[],
        );
        assert_eq!(code, Some(0), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    let earlier = state_at(before_restriction);
    assert_eq!(earlier["state"]["restriction"], Value::Null, "{earlier}");
    assert_eq!(earlier["state"]["user"], "CORP\\alice");
    let later = state_at(restricted_at);
    assert_eq!(
        later["state"]["restriction"]["reason"], "HR case 7",
        "{later}"
    );
    let list_at = |at: &str| {
        let (code, stdout, stderr) = run_srs(
            &[
                "state",
                "--data",
                data_arg,
                "--as-of",
                at,
                "--projection",
                "access-restrictions",
            ],
            &[],
        );
        assert_eq!(code, Some(0), "{stderr}");
        serde_json::from_str::<Value>(&stdout).unwrap()
    };
    assert_eq!(
        list_at(&before_restriction.to_string())["restricted"],
        json!([])
    );
    let restricted_then = list_at(&restricted_at.to_string());
    assert_eq!(
        restricted_then["restricted"][0]["recording_id"],
        recording.as_str()
    );
    assert_eq!(restricted_then["restricted"][0]["reason"], "HR case 7");
    let by_time = list_at(&last_time);
    assert_eq!(by_time["restricted"].as_array().unwrap().len(), 1);
    for (args, why) in [
        (vec!["--as-of", "0", stream.as_str()], "no events"),
        (vec!["--as-of", "soon", stream.as_str()], "RFC 3339"),
        (vec!["--as-of", "5", "site-x"], "not an aggregate stream"),
        (
            vec!["--as-of", "5", "--projection", "nope"],
            "access-restrictions",
        ),
    ] {
        let mut full = vec!["state", "--data", data_arg];
        full.extend(args);
        let (code, _, stderr) = run_srs(&full, &[]);
        assert_eq!(code, Some(2), "{full:?}");
        assert!(stderr.contains(why), "{full:?}: {stderr}");
    }

    // Projections and rebuild offline.
    let (code, stdout, _) = run_srs(&["projections", "--data", data_arg, "--json"], &[]);
    assert_eq!(code, Some(0));
    let statuses = lines(&stdout);
    assert_eq!(
        statuses.len(),
        11,
        "the read models, the history index among them: {stdout}"
    );
    assert!(
        statuses
            .iter()
            .all(|s| s["lag"] == 0 && s["state"] == "UP_TO_DATE"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run_srs(&["rebuild", "--all", "--data", data_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.matches(&format!("at position {head}")).count(),
        11,
        "{stdout}"
    );
    let (code, _, stderr) = run_srs(&["rebuild", "nope", "--data", data_arg], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no projection named `nope`"), "{stderr}");

    // Export, import into a new directory: same events, same hashes.
    let file = dir.path().join("log.srs.jsonl");
    let file_arg = file.to_str().unwrap();
    let (code, _, stderr) = run_srs(&["export", "--data", data_arg, file_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    let exported = std::fs::read_to_string(&file).unwrap();
    let header: Value = serde_json::from_str(exported.lines().next().unwrap()).unwrap();
    assert_eq!(header["format"], "srs-log-export");
    assert_eq!(header["version"], 1);
    let trailer: Value = serde_json::from_str(exported.lines().last().unwrap()).unwrap();
    assert_eq!(trailer["trailer"]["count"], head);
    let copy = dir.path().join("copy");
    let copy_arg = copy.to_str().unwrap();
    let (code, stdout, stderr) = run_srs(&["import", "--data", copy_arg, file_arg], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains(&format!("imported {head} events")),
        "{stdout}"
    );
    let (code, stdout, _) = run_srs(&["verify", "--data", copy_arg], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    let (_, copied, _) = run_srs(&["replay", "--data", copy_arg], &[]);
    let (_, original, _) = run_srs(&["replay", "--data", data_arg], &[]);
    // The source went on by one fact: the export itself, after the history
    // it exported.
    let mut original: Vec<&str> = original.lines().collect();
    let recorded: Value = serde_json::from_str(original.pop().unwrap()).unwrap();
    assert_eq!(recorded["type"], "LogExported", "{recorded}");
    assert_eq!(recorded["position"], json!(head + 1));
    assert_eq!(recorded["stream"], "log-exports");
    assert_eq!(recorded["payload"]["LogExported"]["to_position"], head);
    assert_eq!(recorded["payload"]["LogExported"]["events"], head);
    assert_eq!(
        recorded["payload"]["LogExported"]["file_sha256"],
        trailer["trailer"]["sha256"]
    );
    assert_eq!(
        copied.lines().collect::<Vec<_>>(),
        original,
        "the imported log differs from the source"
    );
    // A second import into the same (now non-empty) directory is refused.
    let (code, _, stderr) = run_srs(&["import", "--data", copy_arg, file_arg], &[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("already holds a log"), "{stderr}");

    // Altered, truncated or reordered files are refused and write nothing.
    let mut event_lines: Vec<String> = exported.lines().map(str::to_owned).collect();
    // The line (after the header: its position) of the site's creation.
    let n = event_lines
        .iter()
        .position(|l| l.contains("\"type\":\"SiteCreated\""))
        .expect("a SiteCreated line");
    let altered_payload = {
        let mut l = event_lines.clone();
        l[n] = l[n].replace("\"HQ\"", "\"HX\"");
        assert_ne!(l[n], event_lines[n], "position {n} creates the site");
        l
    };
    let altered_bytes = {
        let mut l = event_lines.clone();
        let mut line: Value = serde_json::from_str(&l[n]).unwrap();
        let stored = line["payload_bincode"]
            .as_str()
            .unwrap()
            .replacen("024851", "024858", 1);
        line["payload_bincode"] = json!(stored);
        line["payload"]["SiteCreated"]["name"] = json!("HX");
        l[n] = line.to_string();
        l
    };
    let without_event = {
        let mut l = event_lines.clone();
        l.remove(n);
        l
    };
    let truncated = event_lines[..event_lines.len() - 1].to_vec();
    event_lines.swap(n, n + 1);
    let missing = format!("position {n} is missing");
    for (name, content, why) in [
        (
            "payload",
            altered_payload,
            "differs from the stored payload",
        ),
        ("bytes", altered_bytes, "does not hash"),
        ("deleted", without_event, missing.as_str()),
        ("truncated", truncated, "without a trailer"),
        ("reordered", event_lines, "missing"),
    ] {
        let bad = dir.path().join(format!("{name}.jsonl"));
        std::fs::write(&bad, content.join("\n") + "\n").unwrap();
        let target = dir.path().join(format!("target-{name}"));
        let (code, _, stderr) = run_srs(
            &[
                "import",
                "--data",
                target.to_str().unwrap(),
                bad.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(code, Some(1), "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            !target.exists(),
            "{name}: the import wrote before verifying"
        );
    }

    // The imported directory serves: the server builds its read models.
    let restarted = Srs::start(&copy).await;
    let copy_admin = admin.rebase(&restarted);
    let sites = copy_admin.data("{ sites { name } }", json!({})).await;
    assert_eq!(sites["sites"].as_array().unwrap().len(), 2, "{sites}");
    let seen = copy_admin
        .data(
            &format!("{{ recording(id: \"{recording}\") {{ restricted }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(seen["recording"]["restricted"], true);
    assert!(restarted.stop().success());
}

#[tokio::test]
async fn verify_finds_a_deleted_event() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    for n in 0..3 {
        create_site(&admin, &format!("site {n}")).await;
    }
    let verified = admin.data(VERIFY, json!({})).await;
    assert_eq!(verified["verify"]["intact"], true);
    assert!(srs.stop().success());
    {
        let db = sled::open(&data).unwrap();
        let tree = db.open_tree("log").unwrap();
        tree.remove([b'e', 0, 0, 0, 0, 0, 0, 0, 2]).unwrap();
        db.flush().unwrap();
    }
    let (code, stdout, _) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("broken at position 2 (Missing)"),
        "{stdout}"
    );
    // An export of a damaged log stops at the hole instead of writing a
    // file that would not verify.
    let file = dir.path().join("x.jsonl");
    let (code, _, stderr) = run_srs(&["export", "--data", data_arg, file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!file.exists());
}

/// Writes a generated history of `recordings` recordings (a start, 98
/// session events and an end each: 100 events) plus one site.
async fn generate(dir: &Path, recordings: u64) -> u64 {
    let store = SledEventStore::<DomainEvent>::open(dir, StoreOptions::default()).unwrap();
    let actor = Actor::system("generator");
    let site = DomainEvent::SiteCreated {
        site_id: SITE,
        name: "Generated".into(),
        at: T0,
    };
    let _ = store
        .append(
            &format!("site-{SITE}"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(actor.clone(), site)],
        )
        .await
        .unwrap();
    append_recordings(&store, recordings).await;
    store.flush().unwrap();
    EventStore::head(&store).position
}

/// Runs `srs` with stdout discarded (a child that kept its output would
/// measure the pipe, not itself); returns (exit code, stderr).
fn run_quiet(args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(SRS)
        .args(args)
        .env_remove("SRS_DATA")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap().code(), stderr)
}

/// The peak memory `srs` reports on stderr, in KiB.
fn peak_kib(stderr: &str) -> u64 {
    let at = stderr.find("peak memory ").expect("a peak memory note") + "peak memory ".len();
    stderr[at..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a number of KiB")
}

/// Replay and export of a 100,000-event log stream: from 10,000 to
/// 100,000 events their peak memory grows by far less than the history's
/// size; the export imports and verifies with the source's head hash.
#[tokio::test]
async fn replay_and_export_of_100k_events_keep_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    let large = dir.path().join("large");
    assert_eq!(generate(&small, 100).await, 10_001);
    assert_eq!(generate(&large, 1_000).await, 100_001);

    let measure = |data: &Path| {
        let data = data.to_str().unwrap();
        let (code, stderr) = run_quiet(&["replay", "--data", data]);
        assert_eq!(code, Some(0), "{stderr}");
        let replay = peak_kib(&stderr);
        let file = Path::new(data).with_extension("jsonl");
        let (code, stderr) = run_quiet(&["export", "--data", data, file.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{stderr}");
        (replay, peak_kib(&stderr), file)
    };
    let (small_replay, small_export, _) = measure(&small);
    let (large_replay, large_export, large_file) = measure(&large);
    eprintln!(
        "peak KiB: replay 10k {small_replay}, 100k {large_replay}; export 10k {small_export}, 100k {large_export}"
    );
    // Holding the events would cost at least what they take in the file
    // (~1 KiB each as JSON, more as decoded values). Streaming leaves only
    // sled's own page cache to grow with the log (a raw chain walk,
    // `srs verify`, grows as much over the same range).
    let file_kib = std::fs::metadata(&large_file).unwrap().len() / 1024;
    for (what, small, large) in [
        ("replay", small_replay, large_replay),
        ("export", small_export, large_export),
    ] {
        assert!(
            large.saturating_sub(small) < file_kib * 6 / 10,
            "{what} grew from {small} KiB to {large} KiB for a {file_kib} KiB history"
        );
    }

    let copy = dir.path().join("copy");
    let (code, stdout, stderr) = run_srs(
        &[
            "import",
            "--data",
            copy.to_str().unwrap(),
            large_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("imported 100001 events"), "{stdout}");
    let (code, stdout, _) = run_srs(&["verify", "--data", copy.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    // The source has since recorded its exports; the copy ends where the
    // exported history did, with its head hash.
    let exported = std::fs::read_to_string(&large_file).unwrap();
    let trailer: Value = serde_json::from_str(exported.lines().last().unwrap()).unwrap();
    let head_hash = trailer["trailer"]["head"]["hash"].as_str().unwrap();
    let hash = |s: &str| s.split(" hash ").nth(1).map(str::trim).map(str::to_owned);
    assert_eq!(
        hash(&stdout).as_deref(),
        Some(head_hash),
        "head hashes differ"
    );
}
