//! The AGENT's recording commands against the real sled log.

use std::sync::Arc;

use uuid::Uuid;

use crate::app::*;
use crate::log::{EventStore, ExpectedVersion, NewEvent};
use crate::model::testing::fixtures::{app_start, session, web};
use crate::model::*;

use crate::app::testing::*;

#[tokio::test]
async fn a_new_site_does_not_record() {
    let w = World::new();
    let site_id = w.site().await;
    let (server_id, agent) = w.server(site_id).await;
    let started = w.start(server_id, &agent, "s1").await;
    assert!(!started.recorded);
    assert_eq!(started.decision.map(|d| d.policy_id), Some(DO_NOT_RECORD));
    let error = w
        .service
        .record_session_events(&agent, started.recording_id, vec![app_start("cmd.exe", 1)])
        .await
        .expect_err("not recorded");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
}

#[tokio::test]
async fn session_events_detections_and_responses_are_one_idempotent_append() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let batch = vec![
        app_start("cmd.exe", 1_000),
        web("https://example.com", 2_000),
    ];
    let first = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("batch");
    assert_eq!(
        (
            first.accepted,
            first.duplicates,
            first.detections,
            first.responses
        ),
        // WEB_BROWSING is logged but has no rule: stored, not detected.
        (2, 0, 1, 1)
    );
    let positions = &first.executed.positions;
    assert!(
        positions.windows(2).all(|p| p[1] == p[0] + 1),
        "one append: {positions:?}"
    );
    assert_eq!(
        names(&first.executed.events),
        vec![
            "SessionEventRecorded",
            "EventDetected",
            "ResponseTriggered",
            "SessionEventRecorded",
        ]
    );

    let again = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("repeat");
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert!(again.executed.positions.is_empty());

    let mut mixed = batch;
    mixed.push(app_start("notepad.exe", 3_000));
    let third = w
        .service
        .record_session_events(&agent, recording, mixed)
        .await
        .expect("partial repeat");
    assert_eq!((third.accepted, third.duplicates), (1, 2));
    let stored = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(stored.data_points.event_count, 3);
}

#[tokio::test]
async fn agents_ingest_only_for_their_own_server() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let (_, other_agent) = w.server(site_id).await;
    let error = w
        .service
        .record_session_events(&other_agent, recording, vec![app_start("a", 1)])
        .await
        .expect_err("foreign agent");
    // Another server's recording is as unknown to an agent as an absent one.
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    assert_eq!(
        error.to_string(),
        format!("recording {recording} not found")
    );
}

#[tokio::test]
async fn a_repeated_start_returns_the_same_recording_and_a_later_one_rolls_over() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let first = w.start(server_id, &agent, "s1").await;
    assert!(first.recorded && !first.repeated);
    let repeated = w.start(server_id, &agent, "s1").await;
    assert_eq!(
        (repeated.recording_id, repeated.repeated),
        (first.recording_id, true)
    );

    w.service
        .end_recording(&agent, first.recording_id, None)
        .await
        .expect("end");
    let second = w.start(server_id, &agent, "s1").await;
    assert_eq!(second.part, 2);
    assert_ne!(second.recording_id, first.recording_id);
    let state = w
        .service
        .load::<Recording>(second.recording_id)
        .await
        .expect("load")
        .state;
    assert_eq!(state.previous_recording_id, Some(first.recording_id));

    // Archiving one part of a rolled-over session archives them all, but
    // not while a part is live.
    let error = w
        .service
        .archive_recording(&w.admin, first.recording_id)
        .await
        .expect_err("live part");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    w.service
        .end_recording(&agent, second.recording_id, None)
        .await
        .expect("end");
    let archived = w
        .service
        .archive_recording(&w.admin, first.recording_id)
        .await
        .expect("archive");
    assert_eq!(
        names(&archived.events),
        vec!["RecordingArchived", "RecordingArchived"]
    );
    for id in [first.recording_id, second.recording_id] {
        let state = w.service.load::<Recording>(id).await.expect("load").state;
        assert_eq!(state.lifecycle, Lifecycle::Archived);
    }
    let deleted = w
        .service
        .delete_recording(&w.admin, second.recording_id)
        .await
        .expect("delete");
    assert_eq!(deleted.events.len(), 2);
}

#[tokio::test]
async fn events_of_unlogged_types_are_refused_one_by_one_and_counted() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let print = SessionEvent {
        event_id: Uuid::now_v7(),
        event_type: SessionEventType::Print,
        offset_ms: 500,
        data: SessionEventData::Print {
            printer: "HP".into(),
            document: None,
            pages: Some(2),
        },
    };
    let recorded = w
        .service
        .record_session_events(
            &agent,
            recording,
            vec![print.clone(), web("https://example.com", 2_000)],
        )
        .await
        .expect("batch");
    assert_eq!(
        (recorded.accepted, recorded.ignored, recorded.detections),
        (1, 1, 0)
    );
    assert!(w
        .spy
        .inner
        .read_event(print.event_id)
        .await
        .expect("read")
        .is_none());
    let stored = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(stored.data_points.event_count, 1);
}

#[tokio::test]
async fn recording_ids_are_random_and_a_start_stays_idempotent_through_the_session_index() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    // Concurrent retries of one start: one recording, started once.
    let starts = (0..8).map(|_| w.start(server_id, &agent, "s1"));
    let started = futures_util::future::join_all(starts).await;
    let first = started[0].recording_id;
    assert!(started
        .iter()
        .all(|s| s.recording_id == first && s.part == 1));
    assert_eq!(started.iter().filter(|s| !s.repeated).count(), 1);
    assert_ne!(first, legacy_recording_id(server_id, "s1", 1));
    assert_eq!(first.get_version_num(), 7, "a random (v7) id");
    let events = w.all_events().await;
    let count = |name: &str| events.iter().filter(|e| e.payload.name() == name).count();
    assert_eq!(
        (count("RecordingStarted"), count("RecordingPartAssigned")),
        (1, 1)
    );
    let index = w
        .service
        .load::<SessionParts>(session_key(server_id, "s1"))
        .await
        .expect("index");
    assert_eq!(index.state.parts, vec![first]);
    // The same session on a fresh service (a restart) is still the same.
    let again = Service::new(
        w.spy.clone(),
        Arc::new(w.clock.clone()),
        w.permissions.clone(),
    );
    let repeated = again
        .start_recording(
            &agent,
            StartRecordingInput {
                server_id,
                session_id: "s1".into(),
                session: session(),
                started_at: None,
            },
        )
        .await
        .expect("start");
    assert_eq!((repeated.recording_id, repeated.repeated), (first, true));
    // Another session, the same server: another random id.
    let other = w.start(server_id, &agent, "s2").await.recording_id;
    assert_ne!(other, first);
}

#[tokio::test]
async fn a_part_assigned_but_never_started_is_started_by_the_next_start() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    // As if the service stopped between the two appends.
    let orphan = Uuid::now_v7();
    let assigned = w
        .spy
        .append(
            &SessionParts::stream(session_key(server_id, "s1")),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                agent.actor(),
                DomainEvent::RecordingPartAssigned {
                    site_id,
                    server_id,
                    session_id: "s1".into(),
                    part: 1,
                    recording_id: orphan,
                    at: w.service.now(),
                },
            )],
        )
        .await
        .expect("assign");
    assert!(!assigned.deduplicated);
    let started = w.start(server_id, &agent, "s1").await;
    assert_eq!((started.recording_id, started.part), (orphan, 1));
    assert!(!started.repeated);
    let state = w
        .service
        .load::<Recording>(orphan)
        .await
        .expect("load")
        .state;
    assert_eq!(state.lifecycle, Lifecycle::Live);
}

#[tokio::test]
async fn sessions_recorded_before_the_index_keep_their_ids_and_roll_over() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    // A part stored at the old derived id, with no index.
    let legacy = legacy_recording_id(server_id, "old", 1);
    let mut started = w.start(server_id, &agent, "template").await.executed.events[0].clone();
    if let DomainEvent::RecordingStarted {
        recording_id,
        session_id,
        ..
    } = &mut started
    {
        *recording_id = legacy;
        *session_id = "old".into();
    }
    let stored = w
        .spy
        .append(
            &Recording::stream(legacy),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(agent.actor(), started)],
        )
        .await
        .expect("legacy start");
    assert!(!stored.deduplicated);
    let repeated = w.start(server_id, &agent, "old").await;
    assert_eq!((repeated.recording_id, repeated.repeated), (legacy, true));
    w.service
        .end_recording(&agent, legacy, None)
        .await
        .expect("end");
    let next = w.start(server_id, &agent, "old").await;
    assert_eq!(next.part, 2);
    assert_ne!(next.recording_id, legacy_recording_id(server_id, "old", 2));
    let index = w
        .service
        .load::<SessionParts>(session_key(server_id, "old"))
        .await
        .expect("index");
    assert_eq!(index.state.parts, vec![legacy, next.recording_id]);
    // The whole session moves together.
    w.service
        .end_recording(&agent, next.recording_id, None)
        .await
        .expect("end");
    let archived = w
        .service
        .archive_recording(&w.admin, next.recording_id)
        .await
        .expect("archive");
    assert_eq!(archived.events.len(), 2);
}

#[tokio::test]
async fn a_malformed_start_assigns_no_part() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let head = w.all_events().await.len();
    let mut bad = session();
    bad.user = " ".into();
    for (session_id, attributes) in [("s1", bad), ("  ", session())] {
        let error = w
            .service
            .start_recording(
                &agent,
                StartRecordingInput {
                    server_id,
                    session_id: session_id.into(),
                    session: attributes,
                    started_at: None,
                },
            )
            .await
            .expect_err("malformed");
        assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    }
    assert_eq!(w.all_events().await.len(), head, "nothing written");
}

#[tokio::test]
async fn session_events_and_detections_are_stored_sealed_under_the_recording_key() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "sealed").await.recording_id;
    assert!(
        w.service.keys().has_key(recording),
        "the key exists from the start"
    );
    let marker = "https://marker-7d1f.example.com/secret";
    let batch = vec![app_start("cmd.exe", 1_000), web(marker, 2_000)];
    let recorded = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("batch");
    assert!(recorded.detections > 0);
    let stored: Vec<DomainEvent> = w
        .spy
        .read_stream(&Recording::stream(recording), 1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let names: Vec<&str> = stored.iter().map(DomainEvent::name).collect();
    assert!(names.contains(&"SessionEventSealed"), "{names:?}");
    assert!(names.contains(&"EventDetectedSealed"), "{names:?}");
    assert!(!names.contains(&"SessionEventRecorded"), "{names:?}");
    // Nothing of the data is in the stored bytes; the plain facts are.
    for envelope in w.all_events().await {
        let bytes = crate::log::encode_payload(&envelope.payload).unwrap();
        assert!(!bytes.windows(6).any(|b| b == b"marker"), "{envelope:?}");
    }
    let keys = w.service.keys().clone();
    let shown: Vec<_> = stored
        .iter()
        .filter_map(|e| crate::seal::session_event(&keys, e, false))
        .map(|(_, _, shown)| shown.into_plain().expect("opens"))
        .collect();
    assert_eq!(shown, batch);
    // The aggregate folds the sealed events as it folded plain ones.
    let fresh = Service::new(
        w.spy.clone(),
        Arc::new(w.clock.clone()),
        w.permissions.clone(),
    );
    let state = fresh.load::<Recording>(recording).await.unwrap().state;
    assert_eq!(state.data_points.event_count, 2);
    assert!(state.data_points.applications.contains("cmd.exe"));

    // Shredded: every sealed part reads as shredded, and no new key comes back.
    keys.shred(recording).unwrap();
    for event in &stored {
        if let Some((_, _, shown)) = crate::seal::session_event(&keys, event, false) {
            assert_eq!(shown.data, crate::seal::Revealed::Shredded);
        }
        let json = crate::seal::shown_payload(&keys, event, false).to_string();
        assert!(!json.contains("marker"), "{json}");
    }
    let error = w
        .service
        .record_session_events(&agent, recording, vec![web(marker, 3_000)])
        .await
        .expect_err("a shredded recording takes no more events");
    assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    assert!(!keys.has_key(recording));
}

#[tokio::test]
async fn a_retried_end_answers_the_first_end_and_writes_nothing() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "ends-once").await.recording_id;
    let first = w
        .service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    assert!(!first.deduplicated);
    w.clock.advance_secs(60);
    w.service
        .archive_recording(&w.admin, recording)
        .await
        .expect("archive");
    let before = w.all_events().await.len();
    let retried = w
        .service
        .end_recording(&agent, recording, None)
        .await
        .expect("a retried end is no error");
    assert!(retried.deduplicated);
    assert_eq!(
        (retried.last_position, retried.version),
        (first.last_position, first.version),
        "the first end's position and version"
    );
    assert!(retried.events.is_empty());
    assert_eq!(w.all_events().await.len(), before, "nothing written");

    // An end stored before its id was derived (a random id) is found on
    // the stream.
    let legacy = w.start(server_id, &agent, "old-end").await;
    let ended = DomainEvent::RecordingEnded {
        recording_id: legacy.recording_id,
        site_id: legacy_site(&w, legacy.recording_id).await,
        server_id,
        ended_at: w.service.now(),
    };
    let stored = w
        .spy
        .append(
            &Recording::stream(legacy.recording_id),
            ExpectedVersion::Exact(legacy.executed.version),
            vec![NewEvent::new(agent.actor(), ended)],
        )
        .await
        .expect("an end under a random id");
    let retried = w
        .service
        .end_recording(&agent, legacy.recording_id, None)
        .await
        .expect("retried end");
    assert!(retried.deduplicated);
    assert_eq!(retried.last_position, stored.last_position());
}
