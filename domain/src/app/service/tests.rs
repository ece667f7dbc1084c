//! Load, decide, append: expected versions, retries, the state cache and
//! the bound of one append, against the real sled log.

use crate::model::testing::fixtures::web;
use crate::model::*;
use crate::time::Timestamp;

use crate::app::testing::*;

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let w = World::new();
    let site_id = w.site().await;
    let renamed = w
        .service
        .rename_site(&w.admin, site_id, "Branch", Some(1))
        .await
        .expect("rename");
    assert_eq!(renamed.version, 2);
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Again", Some(1))
        .await
        .expect_err("stale");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    assert_eq!(error.code_str(), "CONFLICT");
}

#[tokio::test]
async fn a_conflicting_append_is_decided_again_when_no_version_was_expected() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "Head office".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 1));
    let executed = w
        .service
        .rename_site(&w.admin, site_id, "Mine", None)
        .await
        .expect("retried");
    assert_eq!(executed.version, 3);
    match &executed.events[..] {
        [DomainEvent::SiteRenamed { previous_name, .. }] => assert_eq!(previous_name, "Rival"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "x".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 100));
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Mine", None)
        .await
        .expect_err("gives up");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    let left = w.spy.rival.lock().unwrap().as_ref().map(|r| r.2);
    assert_eq!(left, Some(100 - 4), "one attempt plus three retries");
}

#[tokio::test]
async fn a_long_recording_is_loaded_incrementally() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    for batch in 0..5u64 {
        let events = (0..10)
            .map(|i| web("https://example.com", batch * 100 + i))
            .collect();
        w.service
            .record_session_events(&agent, recording, events)
            .await
            .expect("batch");
    }
    w.spy.reads.lock().unwrap().clear();
    let loaded = w.service.load::<Recording>(recording).await.expect("load");
    assert_eq!(loaded.state.data_points.event_count, 50);
    let stream = Recording::stream(recording);
    let reads: Vec<u64> = w
        .spy
        .reads
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == stream)
        .map(|(_, from)| *from)
        .collect();
    assert_eq!(
        reads,
        vec![loaded.version + 1],
        "only what follows the cached version is read"
    );
}

#[tokio::test]
async fn a_conflict_is_not_retried_when_the_caller_named_a_version() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "Head office".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 1));
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Mine", Some(1))
        .await
        .expect_err("the version the caller saw is gone");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    let site = w.service.load::<Site>(site_id).await.expect("load").state;
    assert_eq!(site.name, "Rival");
}

#[tokio::test]
async fn a_command_whose_consequences_exceed_one_append_is_refused_whole() {
    let w = World::new();
    let site_id = w.site().await;
    let head = w.all_events().await.len();
    let loaded = w
        .service
        .load::<crate::model::Site>(site_id)
        .await
        .expect("load");
    let too_many: Vec<DomainEvent> = (0..=crate::log::MAX_EVENTS_PER_APPEND)
        .map(|n| DomainEvent::SiteRenamed {
            site_id,
            name: format!("site {n}"),
            previous_name: format!("site {}", n.saturating_sub(1)),
            at: Timestamp::from_secs(1_767_225_600),
        })
        .collect();
    let error = w
        .service
        .append(&loaded, too_many, &w.admin.actor())
        .await
        .expect_err("over the bound");
    assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    assert_eq!(w.all_events().await.len(), head, "nothing was written");
}
