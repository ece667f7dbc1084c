//! Detection means a rule matched, unlogged events are refused, and the
//! dashboard and reports count by session time: against the real binary.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use srs_domain::time::Timestamp;

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const START_AT: &str = "mutation($serverId: ID!, $sessionId: String!, $user: String!, $host: String!, $group: String, $at: DateTime) {
  startRecording(input: {serverId: $serverId, sessionId: $sessionId, startedAt: $at,
      session: {user: $user, host: $host, deliveryGroup: $group, applications: [\"Desktop\"]}}) {
    position recordingId recorded
  }
}";

const RECORD: &str = "mutation($id: ID!, $events: [SessionEventInput!]!) {
  recordSessionEvents(recordingId: $id, events: $events) { position accepted duplicates ignored detections }
}";

const END_AT: &str = "mutation($id: ID!, $at: DateTime) { endRecording(recordingId: $id, endedAt: $at) { position } }";

/// Creates and activates an event detection policy from its input (JSON).
async fn detection_policy(admin: &Client, site: &str, input: Value) -> i64 {
    let created = admin
        .data(
            "mutation($site: ID!, $input: EventDetectionPolicyInput!) { createEventDetectionPolicy(siteId: $site, input: $input) { policyId } }",
            json!({ "site": site, "input": input }),
        )
        .await;
    let id = created["createEventDetectionPolicy"]["policyId"].clone();
    position(
        &admin
            .data(
                "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }",
                json!({ "id": id }),
            )
            .await["activatePolicy"],
    )
}

async fn start_at(
    agent: &Client,
    server: &str,
    session: &str,
    user: &str,
    host: &str,
    at: Timestamp,
) -> String {
    let started = agent
        .data(
            START_AT,
            json!({ "serverId": server, "sessionId": session, "user": user, "host": host,
                    "group": "Finance", "at": at.to_rfc3339() }),
        )
        .await;
    assert_eq!(started["startRecording"]["recorded"], true, "{started}");
    started["startRecording"]["recordingId"]
        .as_str()
        .expect("an id")
        .to_owned()
}

async fn record(agent: &Client, id: &str, events: &[Value]) -> Value {
    agent
        .data(RECORD, json!({ "id": id, "events": events }))
        .await["recordSessionEvents"]
        .clone()
}

#[tokio::test]
async fn a_rule_detects_its_application_and_unlogged_events_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "rec-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    // An empty monitored list: only the rule can detect regedit.
    let at = detection_policy(
        &admin,
        &site,
        json!({ "name": "Registry editor", "logged": ["LOGON", "APP_START"], "monitoredApps": [],
                "rules": [{ "type": "APP_START", "severity": "CRITICAL", "patterns": ["regedit*"] }] }),
    )
    .await;
    let recording = start_recording(&agent, &server, "s1", "CORP\\alice", &[]).await;
    let id = recording["recordingId"].as_str().unwrap().to_owned();
    let print = event("PRINT", 4_000, json!({ "printer": "HP", "pages": "3" }));
    let batch = vec![
        event("LOGON", 0, json!({})),
        event("APP_START", 1_000, json!({ "app": "regedit.exe" })),
        event("APP_START", 2_000, json!({ "app": "notepad.exe" })),
        print.clone(),
    ];
    let recorded = record(&agent, &id, &batch).await;
    assert_eq!(
        (
            &recorded["accepted"],
            &recorded["ignored"],
            &recorded["detections"]
        ),
        (&json!(3), &json!(1), &json!(1)),
        "{recorded}"
    );
    // The refused event was never stored: sent again, it is refused again,
    // not a duplicate.
    let again = record(&agent, &id, &[print]).await;
    assert_eq!(
        (&again["accepted"], &again["duplicates"], &again["ignored"]),
        (&json!(0), &json!(0), &json!(1))
    );
    let at = at.max(position(&recorded));
    let seen = admin
        .data(
            "query($id: ID!, $at: Int) {
               detectedEvents(filter: {recordingId: $id}, atLeast: $at) { edges { node { type severity subject rule } } }
               recording(id: $id, atLeast: $at) { eventCount events(first: 50) { edges { node { type } } } }
             }",
            json!({ "id": id, "at": at }),
        )
        .await;
    let detected = seen["detectedEvents"]["edges"].as_array().unwrap();
    assert_eq!(detected.len(), 1, "{seen}");
    assert_eq!(detected[0]["node"]["type"], "APP_START");
    assert_eq!(detected[0]["node"]["severity"], "CRITICAL");
    assert_eq!(detected[0]["node"]["subject"], "regedit.exe");
    // The LOGON (logged, no rule) is in the timeline, not a detection; the
    // PRINT is nowhere.
    let types: Vec<&str> = seen["recording"]["events"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["LOGON", "APP_START", "APP_START"]);
    assert_eq!(seen["recording"]["eventCount"], 3);
}

/// A visualization bucket as the test compares it: events, detections,
/// events per type, detections per type.
type Bucket = (u64, u64, BTreeMap<String, u64>, BTreeMap<String, u64>);

/// One session event as the test keeps it: its type, its time, whether a
/// rule detects it.
struct Sent {
    event_type: &'static str,
    at: Timestamp,
    detected: bool,
}

#[tokio::test]
async fn the_dashboard_and_reports_count_a_backfilled_day_by_session_time() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    let (server, agent_token) = connect_server(&admin, &site, "rec-1").await;
    let agent = Client::new(&srs, Some(&agent_token));
    detection_policy(
        &admin,
        &site,
        json!({ "name": "Exfiltration", "monitoredApps": [],
                "logged": ["LOGON", "USB_MASS_STORAGE", "WEB_BROWSING", "PERFORMANCE_SAMPLE"],
                "rules": [
                  { "type": "USB_MASS_STORAGE", "severity": "HIGH", "name": "USB" },
                  { "type": "WEB_BROWSING", "severity": "MEDIUM", "name": "Sharing", "patterns": ["*.dropbox.com"] }
                ] }),
    )
    .await;
    let today = Timestamp((Timestamp::now().day_number()) * Timestamp::MICROS_PER_DAY);
    let yesterday = today.plus_days(-1);
    let day = |from: Timestamp, to: Timestamp| json!({ "from": from.to_rfc3339(), "to": to.to_rfc3339() });
    let mut sent: Vec<Sent> = Vec::new();

    // Yesterday's sessions, uploaded now.
    let alice_start = yesterday.plus_secs(10 * 3_600);
    let alice = start_at(&agent, &server, "a", "CORP\\alice", "VDA-A", alice_start).await;
    let (cpu, latency) = ([12.5, 80.0, 33.0, 55.5, 20.0], [40, 35, 120, 60, 45]);
    let mut batch = vec![
        event("LOGON", 0, json!({})),
        event("USB_MASS_STORAGE", 60_000, json!({ "device": "Kingston" })),
    ];
    for (i, (c, l)) in cpu.iter().zip(latency).enumerate() {
        batch.push(event(
            "PERFORMANCE_SAMPLE",
            120_000 + i as i64 * 60_000,
            json!({ "cpuPercent": c.to_string(), "latencyMs": l.to_string() }),
        ));
    }
    sent.push(Sent {
        event_type: "LOGON",
        at: alice_start,
        detected: false,
    });
    sent.push(Sent {
        event_type: "USB_MASS_STORAGE",
        at: alice_start.plus_secs(60),
        detected: true,
    });
    for i in 0..5 {
        sent.push(Sent {
            event_type: "PERFORMANCE_SAMPLE",
            at: alice_start.plus_secs(120 + i * 60),
            detected: false,
        });
    }
    let recorded = record(&agent, &alice, &batch).await;
    assert_eq!(
        (&recorded["accepted"], &recorded["detections"]),
        (&json!(7), &json!(1))
    );
    agent
        .data(
            END_AT,
            json!({ "id": alice, "at": alice_start.plus_secs(3_600).to_rfc3339() }),
        )
        .await;

    let bob_start = yesterday.plus_secs(11 * 3_600);
    let bob = start_at(&agent, &server, "b", "CORP\\bob", "VDA-B", bob_start).await;
    let recorded = record(
        &agent,
        &bob,
        &[
            event(
                "WEB_BROWSING",
                30_000,
                json!({ "url": "https://www.dropbox.com/x" }),
            ),
            event("USB_MASS_STORAGE", 90_000, json!({ "device": "SanDisk" })),
        ],
    )
    .await;
    assert_eq!(recorded["detections"], 2);
    sent.push(Sent {
        event_type: "WEB_BROWSING",
        at: bob_start.plus_secs(30),
        detected: true,
    });
    sent.push(Sent {
        event_type: "USB_MASS_STORAGE",
        at: bob_start.plus_secs(90),
        detected: true,
    });
    let ended = agent
        .data(
            END_AT,
            json!({ "id": bob, "at": bob_start.plus_secs(600).to_rfc3339() }),
        )
        .await;
    let at = position(&ended["endRecording"]);

    const DASHBOARD: &str = "query($from: DateTime, $to: DateTime, $at: Int) {
      dashboard(from: $from, to: $to, atLeast: $at) {
        recordingsInRange detectionsInRange detectionsTotal recordingsPerDay { day count } detectionsPerDay { count }
        topUsers { name count } topHosts { name count } topDeliveryGroups { name count } topApplications { name count }
        topRiskyUsers { name risk } topAlerts { name count } recordingsByMode { mode count }
        detectionsByType { type count } detectionsBySeverity { severity count }
        detectionsPerDayBySeverity { severity perDay { count } }
        serversByStatus { status count online }
        servers { name status online recordingsInRange storageBytes }
      } }";
    let dashboard = |range: Value| {
        let admin = admin.clone();
        async move {
            let mut variables = range;
            variables["at"] = json!(at);
            admin.data(DASHBOARD, variables).await["dashboard"].clone()
        }
    };
    let backfilled = dashboard(day(yesterday, today)).await;
    assert_eq!(backfilled["recordingsInRange"], 2, "{backfilled}");
    assert_eq!(backfilled["detectionsInRange"], 3);
    let per_day = backfilled["recordingsPerDay"].as_array().unwrap();
    assert_eq!(per_day.len(), 1);
    assert_eq!(
        Timestamp::parse_rfc3339(per_day[0]["day"].as_str().unwrap()).unwrap(),
        yesterday
    );
    assert_eq!(per_day[0]["count"], 2);
    assert_eq!(backfilled["detectionsPerDay"], json!([{ "count": 3 }]));
    // Split by severity, the series add up to the day's detections and
    // each to its severity's count.
    let split = backfilled["detectionsPerDayBySeverity"].as_array().unwrap();
    let by_severity = backfilled["detectionsBySeverity"].as_array().unwrap();
    assert_eq!(split.len(), by_severity.len(), "{backfilled}");
    let mut day_total = 0;
    for series in split {
        let days = series["perDay"].as_array().unwrap();
        assert_eq!(days.len(), 1, "{backfilled}");
        let n = days[0]["count"].as_i64().unwrap();
        assert!(n > 0, "{backfilled}");
        day_total += n;
        let counted = by_severity
            .iter()
            .find(|c| c["severity"] == series["severity"])
            .expect("the severity is counted");
        assert_eq!(counted["count"].as_i64(), Some(n), "{backfilled}");
    }
    assert_eq!(day_total, 3);
    assert_eq!(
        backfilled["topUsers"],
        json!([{ "name": "corp\\alice", "count": 1 }, { "name": "corp\\bob", "count": 1 }])
    );
    assert_eq!(
        backfilled["topHosts"],
        json!([{ "name": "vda-a", "count": 1 }, { "name": "vda-b", "count": 1 }])
    );
    assert_eq!(
        backfilled["topDeliveryGroups"],
        json!([{ "name": "finance", "count": 2 }])
    );
    // bob: HIGH 8 + MEDIUM 4; alice: HIGH 8.
    assert_eq!(
        backfilled["topRiskyUsers"],
        json!([{ "name": "corp\\bob", "risk": 12 }, { "name": "corp\\alice", "risk": 8 }])
    );
    assert_eq!(
        backfilled["topAlerts"],
        json!([{ "name": "USB", "count": 2 }, { "name": "Sharing", "count": 1 }])
    );
    assert_eq!(
        backfilled["recordingsByMode"],
        json!([{ "mode": "SCREEN_AND_EVENTS", "count": 2 }])
    );
    assert_eq!(
        backfilled["detectionsByType"],
        json!([{ "type": "WEB_BROWSING", "count": 1 }, { "type": "USB_MASS_STORAGE", "count": 2 }])
    );
    assert_eq!(
        backfilled["serversByStatus"],
        json!([{ "status": "CONNECTED", "count": 1, "online": 1 }])
    );
    assert_eq!(backfilled["servers"][0]["recordingsInRange"], 2);
    assert_eq!(backfilled["servers"][0]["status"], "CONNECTED");
    // Ingested today, but nothing of it happened today.
    let now = dashboard(day(today, today.plus_days(1))).await;
    assert_eq!(
        (&now["recordingsInRange"], &now["detectionsInRange"]),
        (&json!(0), &json!(0)),
        "{now}"
    );
    assert_eq!(now["topUsers"], json!([]));
    assert_eq!(now["topRiskyUsers"], json!([]));
    assert_eq!(now["detectionsTotal"], 3);
    assert_eq!(now["servers"][0]["recordingsInRange"], 0);

    // A session today: today's lists name only carl, yesterday's are unchanged.
    let carl_start = Timestamp::now().plus_secs(-60).max(today);
    let carl = start_at(&agent, &server, "c", "CORP\\carl", "VDA-C", carl_start).await;
    let recorded = record(
        &agent,
        &carl,
        &[event(
            "USB_MASS_STORAGE",
            0,
            json!({ "device": "Kingston" }),
        )],
    )
    .await;
    let at = position(&recorded);
    let mut today_range = day(today, today.plus_days(1));
    today_range["at"] = json!(at);
    let now = admin.data(DASHBOARD, today_range).await["dashboard"].clone();
    assert_eq!(
        now["topUsers"],
        json!([{ "name": "corp\\carl", "count": 1 }]),
        "{now}"
    );
    assert_eq!(
        now["topRiskyUsers"],
        json!([{ "name": "corp\\carl", "risk": 8 }])
    );
    assert_eq!(now["topHosts"], json!([{ "name": "vda-c", "count": 1 }]));
    let mut yesterday_range = day(yesterday, today);
    yesterday_range["at"] = json!(at);
    let again = admin.data(DASHBOARD, yesterday_range).await["dashboard"].clone();
    assert_eq!(again["topUsers"], backfilled["topUsers"]);
    assert_eq!(again["topRiskyUsers"], backfilled["topRiskyUsers"]);

    // The site visualization of yesterday, hour by hour, is what was sent.
    let report = admin
        .data(
            "query($site: ID!, $from: DateTime, $to: DateTime, $at: Int) {
               siteVisualization(siteId: $site, from: $from, to: $to, bucketSec: 3600, atLeast: $at) {
                 start eventCount detectionCount events { type count } detections { type count } } }",
            json!({ "site": site, "from": yesterday.to_rfc3339(), "to": today.to_rfc3339(), "at": at }),
        )
        .await["siteVisualization"]
        .clone();
    let mut expected: BTreeMap<String, Bucket> = BTreeMap::new();
    for e in &sent {
        let hour = Timestamp::from_secs(e.at.as_secs().div_euclid(3_600) * 3_600).to_rfc3339();
        let bucket = expected.entry(hour).or_default();
        bucket.0 += 1;
        *bucket.2.entry(e.event_type.to_owned()).or_default() += 1;
        if e.detected {
            bucket.1 += 1;
            *bucket.3.entry(e.event_type.to_owned()).or_default() += 1;
        }
    }
    let counts = |list: &Value| -> BTreeMap<String, u64> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_owned(),
                    c["count"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let got: BTreeMap<String, Bucket> = report
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                Timestamp::parse_rfc3339(b["start"].as_str().unwrap())
                    .unwrap()
                    .to_rfc3339(),
                (
                    b["eventCount"].as_u64().unwrap(),
                    b["detectionCount"].as_u64().unwrap(),
                    counts(&b["events"]),
                    counts(&b["detections"]),
                ),
            )
        })
        .collect();
    assert_eq!(got, expected, "{report}");
    assert_eq!(got.len(), 2, "alice's hour and bob's hour");

    // dataPoints sums up alice's performance samples.
    let points = admin
        .data(
            "query($id: ID!) { recording(id: $id) { dataPoints { performance {
               samples cpuPercent { samples min avg p95 max } latencyMs { min avg p95 max } memoryMb { max } } } } }",
            json!({ "id": alice }),
        )
        .await["recording"]["dataPoints"]["performance"]
        .clone();
    let summary = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = (n * 95).div_ceil(100);
        json!({ "min": values[0], "avg": values.iter().sum::<f64>() / n as f64,
                "p95": values[rank - 1], "max": values[n - 1] })
    };
    assert_eq!(points["samples"], 5, "{points}");
    let mut cpu_expected = summary(cpu.to_vec());
    cpu_expected["samples"] = json!(5);
    assert_eq!(points["cpuPercent"], cpu_expected);
    assert_eq!(
        points["latencyMs"],
        summary(latency.iter().map(|l| f64::from(*l)).collect())
    );
    assert_eq!(points["memoryMb"], Value::Null);

    // Ranges that mean nothing are refused, not answered empty.
    for (query, variables) in [
        (
            "query($from: DateTime, $to: DateTime) { dashboard(from: $from, to: $to) { recordingsInRange } }",
            day(today, yesterday),
        ),
        (
            "query($from: DateTime, $to: DateTime) { siteVisualization(from: $from, to: $to) { start } }",
            day(today, yesterday),
        ),
        (
            "query($from: DateTime, $to: DateTime) { siteVisualization(from: $from, to: $to, bucketSec: 10) { start } }",
            day(yesterday, today),
        ),
    ] {
        admin.run(query, variables).await.expect_code("VALIDATION");
    }
    // Agents read no reports.
    agent
        .run(
            "query($site: ID!) { siteVisualization(siteId: $site) { start } }",
            json!({ "site": site }),
        )
        .await
        .expect_code("FORBIDDEN");
}
