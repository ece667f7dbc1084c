//! `srs serve --demo` seeds at any time of day and for any seed: with
//! sessions still live at "now" (which a restriction reaches too), terminal
//! sessions whose content is an asciicast, the auditor's token kept beside
//! the admin's, and an auditor that sees what its playback permission
//! grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use srs_api::server::{ServeOptions, Server};
use srs_api::state::Limits;
use srs_domain::time::{ManualClock, Timestamp};
use srs_projections::models::catalogue::{RecordingFilter, RecordingQuery};
use srs_sim::demo::{seed, DemoOptions, SEEDING_MARKER};

/// Seeds `recordings` with `seed` at `now` into a fresh directory.
async fn seeded(
    now: &str,
    demo_seed: u64,
    recordings: u64,
    days: i64,
) -> (tempfile::TempDir, Server, String, srs_sim::demo::Seeded) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    srs_sim::demo::prepare_dir(&data).unwrap();
    assert!(data.join(SEEDING_MARKER).is_file());
    let now = Timestamp::parse_rfc3339(now).unwrap();
    let server = Server::open_with_clock(
        ServeOptions {
            data: data.clone(),
            listen: "127.0.0.1:0".into(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
            cluster_key_file: None,
            cache_mb: srs_api::server::DEFAULT_CACHE_MB,
        },
        Arc::new(ManualClock::new(now)),
    )
    .await
    .unwrap();
    let secret = server.bootstrap_secret().unwrap().to_owned();
    let seeded = seed(
        server.state(),
        &secret,
        &DemoOptions {
            recordings,
            seed: demo_seed,
            days,
        },
    )
    .await
    .unwrap_or_else(|e| panic!("the demo seeds at {now} with seed {demo_seed}: {e}"));
    assert!(
        !data.join(SEEDING_MARKER).exists(),
        "a finished demo is no longer marked as seeding"
    );
    (dir, server, secret, seeded)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_at_any_time_of_day_and_for_any_seed() {
    // A Wednesday afternoon, a Sunday night, midnight, a Saturday morning.
    for (now, demo_seed) in [
        ("2026-03-18T15:30:00Z", 1),
        ("2026-03-22T23:10:00Z", 2),
        ("2026-03-19T00:00:00Z", 3),
        ("2026-03-21T08:05:00Z", 77),
    ] {
        let (dir, _server, _, seeded) = seeded(now, demo_seed, 120, 30).await;
        let summary = &seeded.summary;
        assert!(summary.recordings > 0, "{now}: {summary:?}");
        assert!(summary.terminal > 0, "{now}: {summary:?}");
        assert_eq!(seeded.fleet.live_sessions() as u64, summary.live);
        let token = std::fs::read_to_string(dir.path().join("data/auditor.token")).unwrap();
        assert_eq!(token.trim(), summary.auditor_token);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_with_live_sessions_restricted_and_its_auditor_sees_some() {
    // A Wednesday, 12:30 UTC: today's sessions are in full swing.
    let (_dir, server, secret, seeded) = seeded("2026-03-18T12:30:00Z", 1, 400, 1).await;
    let summary = seeded.summary;
    assert!(summary.live > 0, "{summary:?}");
    assert!(summary.restricted > 0, "{summary:?}");

    let services = server.state().services();
    let catalogue = services.reads.catalogue().unwrap();
    let search = |viewer, filter| {
        catalogue
            .search(
                viewer,
                &RecordingQuery {
                    filter,
                    first: Some(500),
                    with_total: true,
                    ..Default::default()
                },
            )
            .unwrap()
    };
    let admin = services.authenticate(&secret).await.unwrap().unwrap();
    let admin = services.reads.access().unwrap().viewer(&admin).unwrap();
    let live_restricted = search(
        &admin,
        RecordingFilter {
            live: Some(true),
            restricted: Some(true),
            ..Default::default()
        },
    );
    assert!(
        !live_restricted.items.is_empty(),
        "a live recording was restricted: {summary:?}"
    );
    // Nothing starts after "now", however late in the day it is.
    let now = services.service.now();
    let live = search(
        &admin,
        RecordingFilter {
            live: Some(true),
            ..Default::default()
        },
    );
    assert!(!live.items.is_empty());

    let auditor = services
        .authenticate(&summary.auditor_token)
        .await
        .unwrap()
        .unwrap();
    let auditor = services.reads.access().unwrap().viewer(&auditor).unwrap();
    let seen = search(&auditor, RecordingFilter::default());
    assert!(!seen.items.is_empty(), "the demo auditor sees something");
    let mut groups = BTreeMap::new();
    for hit in &seen.items {
        assert!(!hit.row.restricted());
        assert!(hit.row.started_at <= now);
        *groups
            .entry(hit.row.delivery_group.clone().unwrap_or_default())
            .or_insert(0) += 1;
    }
    for group in groups.keys() {
        assert!(
            ["Finance Desktops", "Contractor Desktops"].contains(&group.as_str()),
            "only its permission's delivery groups: {groups:?}"
        );
    }
}
