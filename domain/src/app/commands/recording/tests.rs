//! What people do to recordings, against the real sled log.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::app::*;
use crate::model::testing::fixtures::app_start;
use crate::model::*;

use crate::app::testing::*;

#[tokio::test]
async fn responses_and_comments_are_found_by_their_own_ids() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    for auditor in ["ann", "bob"] {
        w.grant(site_id, auditor, PlaybackScope::whole_site()).await;
    }
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let recorded = w
        .service
        .record_session_events(&agent, recording, vec![app_start("cmd.exe", 5)])
        .await
        .expect("batch");
    let response_id = recorded
        .executed
        .events
        .iter()
        .find_map(|e| match e {
            DomainEvent::ResponseTriggered { response_id, .. } => Some(*response_id),
            _ => None,
        })
        .expect("a response");
    let acked = w
        .service
        .acknowledge_response(&agent, response_id, "locked")
        .await
        .expect("ack");
    assert_eq!(names(&acked.events), vec!["ResponseDelivered"]);
    assert!(w
        .service
        .acknowledge_response(&agent, response_id, "again")
        .await
        .expect("repeat")
        .events
        .is_empty());

    let ann = person(Role::Auditor, "ann");
    let comment = w
        .service
        .add_comment(&ann, recording, "look", CommentSeverity::Medium, Some(5))
        .await
        .expect("comment");
    let bob = person(Role::Auditor, "bob");
    let error = w
        .service
        .delete_comment(&bob, comment.id)
        .await
        .expect_err("not the author");
    assert_eq!(error.code(), Some(ErrorCode::Forbidden));
    w.service
        .delete_comment(&ann, comment.id)
        .await
        .expect("author deletes");
}

#[tokio::test]
async fn an_auditor_plays_only_what_its_playback_permissions_grant() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    let ann = person(Role::Auditor, "ann");
    let error = w
        .service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect_err("no permission: no recording");
    // Out of her grants, the recording is as unknown to her as an absent one.
    assert_eq!(error.code(), Some(ErrorCode::NotFound));

    let narrow = w
        .grant(
            site_id,
            "ann",
            PlaybackScope {
                recorded_users: vec!["CORP\\bob".into()],
                ..Default::default()
            },
        )
        .await;
    let error = w
        .service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect_err("narrowed to bob");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let whole = w.grant(site_id, "ann", PlaybackScope::whole_site()).await;
    w.service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect("a whole-site permission");
    // Revoking her permissions, one by one, never opens more.
    for permission in [whole, narrow] {
        let revoked = w
            .service
            .revoke_playback_permission(&w.admin, permission)
            .await
            .expect("revoke");
        for event in &revoked.events {
            w.permissions.apply(event);
        }
        let error = w
            .service
            .record_played(&ann, recording, PlaybackKind::Play)
            .await
            .expect_err("revoked");
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
    }

    w.service
        .restrict_recording(&w.admin, recording, "HR")
        .await
        .expect("restrict");
    let pp = person(Role::PrivilegedPlayer, "pp");
    let played = w
        .service
        .record_played(&pp, recording, PlaybackKind::Download)
        .await
        .expect("pp plays");
    assert_eq!(names(&played.events), vec!["RecordingPlayed"]);
}

#[tokio::test]
async fn a_recording_the_caller_may_not_see_answers_like_an_absent_or_deleted_one() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let (_, other_agent) = w.server(site_id).await;
    let hidden = w.start(server_id, &agent, "hidden").await.recording_id;
    let deleted = w.start(server_id, &agent, "deleted").await.recording_id;
    for id in [hidden, deleted] {
        w.service
            .end_recording(&agent, id, None)
            .await
            .expect("end");
    }
    w.service
        .delete_recording(&w.admin, deleted)
        .await
        .expect("delete");
    let absent = Uuid::now_v7();
    let viewer = person(Role::Viewer, "vic");
    let mut scoped_auditor = person(Role::Auditor, "sam");
    scoped_auditor.site_ids = BTreeSet::from([Uuid::now_v7()]);

    let callers: [(&str, &Principal); 3] = [
        ("viewer", &viewer),
        ("other site's auditor", &scoped_auditor),
        ("other server's agent", &other_agent),
    ];
    for (who, by) in callers {
        let mut answers = Vec::new();
        for id in [hidden, deleted, absent] {
            // A fresh minute: each target's refusals fit the principal's
            // rate of refusal facts, so every one of them is written.
            w.clock.advance_secs(61);
            let head = w.all_events().await.len();
            let outcomes = [
                w.service
                    .add_comment(by, id, "x", CommentSeverity::Normal, None)
                    .await
                    .map(|c| c.executed),
                w.service.restrict_recording(by, id, "x").await,
                w.service.remove_recording_restriction(by, id, "x").await,
                w.service.record_played(by, id, PlaybackKind::Play).await,
                w.service
                    .record_session_events(by, id, vec![app_start("a", 1)])
                    .await
                    .map(|r| r.executed),
                w.service.end_recording(by, id, None).await,
                w.service.archive_recording(by, id).await,
                w.service
                    .content_target(by, id)
                    .await
                    .map(|_| Executed::default()),
            ];
            let refused: Vec<_> = outcomes
                .iter()
                .map(|o| answer(o.as_ref().expect_err(who), id))
                .collect();
            for (code, message) in &refused {
                assert_eq!(*code, Some(ErrorCode::NotFound), "{who}: {message}");
                assert_eq!(message, "recording <id> not found", "{who}");
            }
            // Every attempt is recorded, absent ids too, and nothing else.
            let written = w.all_events().await;
            assert!(
                written[head..]
                    .iter()
                    .all(|e| e.payload.name() == "AccessDenied"),
                "{who}"
            );
            assert_eq!(written.len() - head, outcomes.len(), "{who}");
            answers.push(refused);
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{who}: {answers:?}"
        );
    }

    // Who may see it learns that it was deleted; an absent id is absent.
    let error = w
        .service
        .add_comment(&w.admin, deleted, "x", CommentSeverity::Normal, None)
        .await
        .expect_err("deleted");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    assert!(error.to_string().contains("deleted"), "{error}");
    let error = w
        .service
        .record_played(&w.admin, deleted, PlaybackKind::Play)
        .await
        .expect_err("deleted");
    assert!(error.to_string().contains("was deleted"), "{error}");
    let head = w.all_events().await.len();
    let error = w
        .service
        .add_comment(&w.admin, absent, "x", CommentSeverity::Normal, None)
        .await
        .expect_err("absent");
    assert_eq!(answer(&error, absent).1, "recording <id> not found");
    assert_eq!(
        w.all_events().await.len(),
        head,
        "an admin's miss is no refusal"
    );
}

#[tokio::test]
async fn parallel_plays_by_one_principal_are_one_fact_per_minute() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    w.grant(site_id, "ann", PlaybackScope::whole_site()).await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    let ann = person(Role::Auditor, "ann");
    let plays = (0..32).map(|_| w.service.record_played(&ann, recording, PlaybackKind::Play));
    let outcomes = futures_util::future::join_all(plays).await;
    let positions: BTreeSet<u64> = outcomes
        .iter()
        .map(|o| o.as_ref().expect("no conflict").last_position)
        .collect();
    assert_eq!(positions.len(), 1, "one fact, named by every answer");
    let played = || async {
        w.all_events()
            .await
            .iter()
            .filter(|e| e.payload.name() == "RecordingPlayed")
            .count()
    };
    assert_eq!(played().await, 1);
    // Another principal, or another minute, is another fact.
    w.service
        .record_played(&w.admin, recording, PlaybackKind::Play)
        .await
        .expect("admin");
    w.clock.advance_secs(PLAYBACK_WINDOW_SECS);
    w.service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect("later");
    assert_eq!(played().await, 3);
    let state = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(state.plays, 3);
}

#[tokio::test]
async fn watching_live_is_a_fact_and_obeys_the_servers_setting() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let live = w.start(server_id, &agent, "live").await.recording_id;
    let auditor = person(Role::Auditor, "aud");
    w.grant(site_id, "aud", PlaybackScope::whole_site()).await;
    let first = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect("live");
    let again = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect("live again");
    assert_eq!(names(&first.events), ["RecordingPlayed"]);
    assert!(
        again.deduplicated,
        "one fact per player, recording, kind and minute"
    );
    assert_eq!(again.last_position, first.last_position);
    assert!(matches!(
        first.events[0],
        DomainEvent::RecordingPlayed {
            kind: PlaybackKind::Live,
            ..
        }
    ));

    w.service
        .update_server_settings(
            &w.admin,
            server_id,
            SettingsPatch {
                live_playback_enabled: Some(false),
                ..SettingsPatch::default()
            },
            None,
        )
        .await
        .expect("disable live playback");
    w.clock.advance_secs(61);
    let before = w.all_events().await.len();
    let refused = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect_err("live playback is disabled");
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    assert!(
        refused.to_string().contains("livePlaybackEnabled"),
        "{refused}"
    );
    let written = w.all_events().await;
    assert_eq!(written.len(), before + 1, "one refusal fact, no playback");
    assert!(matches!(
        written[before].payload,
        DomainEvent::AccessDenied { ref action, .. } if action == "PLAY_RECORDING"
    ));
    // Playing what is stored is not watching live.
    w.service
        .record_played(&auditor, live, PlaybackKind::Play)
        .await
        .expect("play");
}

#[tokio::test]
async fn an_auditor_lifts_only_a_restriction_its_own_permission_covers() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    // A live recording is restricted at once, not after its end.
    w.service
        .restrict_recording(&w.admin, recording, "HR case")
        .await
        .expect("a live recording is restricted");
    let eve = person(Role::Auditor, "eve");
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("no permission of hers covers it");
    // As unknown to her as an absent recording.
    assert_eq!(
        answer(&error, recording),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    w.grant(
        site_id,
        "eve",
        PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        },
    )
    .await;
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("her permission covers bob only");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let restricted = w.service.load::<Recording>(recording).await.expect("load");
    assert!(restricted.state.restriction.is_some(), "still restricted");

    w.grant(site_id, "eve", PlaybackScope::whole_site()).await;
    w.service
        .remove_recording_restriction(&eve, recording, "case closed")
        .await
        .expect("covered by her whole-site permission");
    let pp = person(Role::PrivilegedPlayer, "pp");
    w.service
        .restrict_recording(&pp, recording, "again")
        .await
        .expect("restrict");
    w.service
        .remove_recording_restriction(&pp, recording, "pp may")
        .await
        .expect("a privileged player always may");
}

#[tokio::test]
async fn an_auditor_refused_a_restriction_it_cannot_see_learns_nothing_of_it() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    w.service
        .restrict_recording(&w.admin, recording, "HR case")
        .await
        .expect("restrict");
    w.service
        .archive_recording(&w.admin, recording)
        .await
        .expect("archive");
    w.grant(site_id, "eve", PlaybackScope::whole_site()).await;
    let eve = person(Role::Auditor, "eve");
    // Her permission covers it, but archived she could not play it anyway;
    // restricted, she cannot see it: the answer of an absent recording.
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("archived: not hers to lift");
    assert_eq!(
        answer(&error, recording),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    let absent = Uuid::now_v7();
    let error = w
        .service
        .remove_recording_restriction(&eve, absent, "let me see")
        .await
        .expect_err("absent");
    assert_eq!(
        answer(&error, absent),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    let pp = person(Role::PrivilegedPlayer, "pp");
    w.service
        .remove_recording_restriction(&pp, recording, "case closed")
        .await
        .expect("a privileged player may");
}
