//! `srs serve --demo` seeds at any time of day: with sessions still live at
//! "now" (which a restriction now reaches too), and an auditor that sees
//! what its playback permission grants.

use std::collections::BTreeMap;
use std::sync::Arc;

use srs_api::demo::{seed, DemoOptions};
use srs_api::server::{ServeOptions, Server};
use srs_api::state::Limits;
use srs_domain::time::{ManualClock, Timestamp};
use srs_projections::models::catalogue::{RecordingFilter, RecordingQuery};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_seeds_with_live_sessions_restricted_and_its_auditor_sees_some() {
    let dir = tempfile::tempdir().unwrap();
    // A Wednesday, 12:30 UTC: today's sessions are in full swing.
    let now = Timestamp::parse_rfc3339("2026-03-18T12:30:00Z").unwrap();
    let server = Server::open_with_clock(
        ServeOptions {
            data: dir.path().join("data"),
            listen: "127.0.0.1:0".into(),
            limits: Limits::default(),
            cors_origins: Vec::new(),
        },
        Arc::new(ManualClock::new(now)),
    )
    .await
    .unwrap();
    let secret = server.bootstrap_secret().unwrap().to_owned();
    let summary = seed(
        server.state(),
        &secret,
        &DemoOptions {
            recordings: 400,
            seed: 1,
            days: 1,
        },
    )
    .await
    .expect("the demo seeds while sessions are live");
    assert!(summary.live > 0, "{summary:?}");
    assert!(summary.restricted > 0, "{summary:?}");

    let core = server.state().core();
    let catalogue = core.reads.catalogue().unwrap();
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
    let admin = core.authenticate(&secret).await.unwrap().unwrap();
    let admin = core.reads.access().unwrap().viewer(&admin).unwrap();
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

    let auditor = core
        .authenticate(&summary.auditor_token)
        .await
        .unwrap()
        .unwrap();
    let auditor = core.reads.access().unwrap().viewer(&auditor).unwrap();
    let seen = search(&auditor, RecordingFilter::default());
    assert!(!seen.items.is_empty(), "the demo auditor sees something");
    let mut groups = BTreeMap::new();
    for hit in &seen.items {
        assert!(!hit.row.restricted());
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
