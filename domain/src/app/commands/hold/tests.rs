//! Legal holds against the real sled log.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::app::*;
use crate::model::*;

use crate::app::testing::*;

#[tokio::test]
async fn a_held_recording_cannot_be_deleted_until_the_hold_is_released() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let held = ended(&w, server_id, &agent, "held").await;
    let free = ended(&w, server_id, &agent, "free").await;
    let hold = w
        .service
        .place_legal_hold(
            &w.admin,
            None,
            HoldScope::Recordings {
                recording_ids: vec![held],
            },
            "Case 2026-17",
        )
        .await
        .expect("place");
    assert_eq!(names(&hold.executed.events), ["LegalHoldPlaced"]);

    let refused = w
        .service
        .delete_recording(&w.admin, held)
        .await
        .expect_err("held");
    assert_eq!(refused.code(), Some(ErrorCode::Conflict));
    assert!(
        refused.to_string().contains(&hold.id.to_string()),
        "the refusal names the hold: {refused}"
    );
    // The other recordings are not held.
    w.service
        .delete_recording(&w.admin, free)
        .await
        .expect("delete");
    assert_eq!(deleted_ids(&w.all_events().await), [free]);

    let released = w
        .service
        .release_legal_hold(&w.admin, hold.id, Some("case closed"))
        .await
        .expect("release");
    assert_eq!(names(&released.events), ["LegalHoldReleased"]);
    w.service
        .delete_recording(&w.admin, held)
        .await
        .expect("delete after release");
    assert_eq!(deleted_ids(&w.all_events().await), [free, held]);
}

#[tokio::test]
async fn a_user_or_site_hold_covers_recordings_started_after_it() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let users = w
        .service
        .place_legal_hold(
            &w.admin,
            Some(site_id),
            HoldScope::Users {
                users: vec!["alice".into()],
            },
            "Case 18",
        )
        .await
        .expect("place");
    // Started after the hold, by CORP\alice: covered.
    let later = ended(&w, server_id, &agent, "later").await;
    let refused = w
        .service
        .delete_recording(&w.admin, later)
        .await
        .expect_err("held by user");
    assert!(matches!(
        refused,
        AppError::Hold(HoldError::Held { recording_id, ref holds }) if recording_id == later && holds == &[users.id]
    ));
    w.service
        .release_legal_hold(&w.admin, users.id, None)
        .await
        .expect("release");
    let site = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "Audit 2026")
        .await
        .expect("place");
    let after_site_hold = ended(&w, server_id, &agent, "after").await;
    for id in [later, after_site_hold] {
        let refused = w
            .service
            .delete_recording(&w.admin, id)
            .await
            .expect_err("held by site");
        assert!(refused.to_string().contains(&site.id.to_string()));
    }
    // Archiving is no deletion: a held recording may still be archived.
    w.service
        .archive_recording(&w.admin, later)
        .await
        .expect("archive");
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test]
async fn a_rolled_over_session_with_one_held_part_is_not_deleted() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let first = ended(&w, server_id, &agent, "rolled").await;
    let second = ended(&w, server_id, &agent, "rolled").await;
    assert_ne!(first, second, "a second part");
    w.service
        .place_legal_hold(
            &w.admin,
            None,
            HoldScope::Recordings {
                recording_ids: vec![second],
            },
            "Case 19",
        )
        .await
        .expect("place");
    let refused = w
        .service
        .delete_recording(&w.admin, first)
        .await
        .expect_err("its session is held");
    assert!(
        refused.to_string().contains(&second.to_string()),
        "{refused}"
    );
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test]
async fn bad_hold_requests_are_refused_and_write_nothing() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "r").await;
    let gone = ended(&w, server_id, &agent, "gone").await;
    w.service
        .delete_recording(&w.admin, gone)
        .await
        .expect("delete");
    let other_site = w.site().await;
    let (other_server, other_agent) = w.server(other_site).await;
    w.service
        .activate_policy(
            &w.admin,
            RECORD_EVERYONE_WITH_NOTIFICATION,
            Some(other_site),
        )
        .await
        .expect("record everyone");
    let elsewhere = ended(&w, other_server, &other_agent, "e").await;
    let before = w.all_events().await.len();
    let recordings = |ids: Vec<Uuid>| HoldScope::Recordings { recording_ids: ids };
    let cases: Vec<(&str, Option<Uuid>, HoldScope, &str, ErrorCode)> = vec![
        (
            "blank reason",
            Some(site_id),
            HoldScope::Site,
            "  ",
            ErrorCode::Validation,
        ),
        (
            "reason too long",
            Some(site_id),
            HoldScope::Site,
            &*"x".repeat(MAX_HOLD_REASON_CHARS + 1).leak(),
            ErrorCode::Validation,
        ),
        (
            "no recordings",
            None,
            recordings(vec![]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "too many recordings",
            None,
            recordings(
                (0..=MAX_HOLD_RECORDINGS as u128)
                    .map(Uuid::from_u128)
                    .collect(),
            ),
            "r",
            ErrorCode::Validation,
        ),
        (
            "absent recording",
            None,
            recordings(vec![Uuid::now_v7()]),
            "r",
            ErrorCode::NotFound,
        ),
        (
            "deleted recording",
            None,
            recordings(vec![gone]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "recordings of two sites",
            None,
            recordings(vec![recording, elsewhere]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "another site named",
            Some(other_site),
            recordings(vec![recording]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "site scope without site",
            None,
            HoldScope::Site,
            "r",
            ErrorCode::Validation,
        ),
        (
            "absent site",
            Some(Uuid::now_v7()),
            HoldScope::Site,
            "r",
            ErrorCode::NotFound,
        ),
        (
            "no users",
            Some(site_id),
            HoldScope::Users { users: vec![] },
            "r",
            ErrorCode::Validation,
        ),
        (
            "blank user",
            Some(site_id),
            HoldScope::Users {
                users: vec![" ".into()],
            },
            "r",
            ErrorCode::Validation,
        ),
    ];
    for (case, site, scope, reason, code) in cases {
        let error = w
            .service
            .place_legal_hold(&w.admin, site, scope, reason)
            .await
            .expect_err(case);
        assert_eq!(error.code(), Some(code), "{case}: {error}");
    }
    let missing = w
        .service
        .release_legal_hold(&w.admin, Uuid::now_v7(), None)
        .await
        .expect_err("missing hold");
    assert_eq!(missing.code(), Some(ErrorCode::NotFound), "{missing}");
    assert_eq!(w.all_events().await.len(), before, "nothing was written");

    let hold = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "r")
        .await
        .expect("place");
    w.service
        .release_legal_hold(&w.admin, hold.id, None)
        .await
        .expect("release");
    let twice = w
        .service
        .release_legal_hold(&w.admin, hold.id, None)
        .await
        .expect_err("released already");
    assert_eq!(twice.code(), Some(ErrorCode::Validation), "{twice}");
    assert!(twice.to_string().contains("already released"), "{twice}");
}

#[tokio::test]
async fn only_an_admin_of_the_site_places_and_releases_holds() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "r").await;
    let hold = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "r")
        .await
        .expect("place");
    let mut other_admin = person(Role::Admin, "other");
    other_admin.site_ids = BTreeSet::from([Uuid::now_v7()]);
    for by in [
        person(Role::PrivilegedPlayer, "pp"),
        person(Role::Auditor, "aud"),
        person(Role::Viewer, "vic"),
        other_admin.clone(),
    ] {
        let placed = w
            .service
            .place_legal_hold(&by, Some(site_id), HoldScope::Site, "r")
            .await
            .expect_err("not an admin of the site");
        assert_eq!(placed.code(), Some(ErrorCode::Forbidden), "{}", by.name);
        let released = w
            .service
            .release_legal_hold(&by, hold.id, None)
            .await
            .expect_err("not an admin of the site");
        // Who may not read the site's holds learns nothing of this one.
        let expected = if by.role == Role::Auditor {
            ErrorCode::Forbidden
        } else {
            ErrorCode::NotFound
        };
        assert_eq!(released.code(), Some(expected), "{}", by.name);
    }
    let by_recording = w
        .service
        .place_legal_hold(
            &person(Role::PrivilegedPlayer, "pp"),
            None,
            HoldScope::Recordings {
                recording_ids: vec![recording],
            },
            "r",
        )
        .await
        .expect_err("not an admin");
    assert_eq!(by_recording.code(), Some(ErrorCode::Forbidden));
    let denials = w
        .all_events()
        .await
        .iter()
        .filter(|e| matches!(e.payload, DomainEvent::AccessDenied { .. }))
        .count();
    assert_eq!(denials, 9, "every refusal is a fact");
}

#[tokio::test]
async fn a_hold_placed_while_a_deletion_commits_stops_the_deletion() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "raced").await;
    // Between the deletion's look at the holds and its append, a hold on
    // the whole site is placed.
    let rival_hold = Uuid::now_v7();
    *w.spy.rival.lock().unwrap() = Some((
        LEGAL_HOLDS_STREAM.to_string(),
        DomainEvent::LegalHoldPlaced {
            hold_id: rival_hold,
            site_id,
            scope: HoldScope::Site,
            reason: "raced".into(),
            by: "root".into(),
            at: w.service.now(),
        },
        1,
    ));
    let refused = w
        .service
        .delete_recording(&w.admin, recording)
        .await
        .expect_err("the hold came first");
    assert!(
        matches!(&refused, AppError::Hold(HoldError::Held { holds, .. }) if holds == &[rival_hold]),
        "{refused}"
    );
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_and_deletions_never_delete_a_held_recording() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let mut recordings = Vec::new();
    for n in 0..12 {
        recordings.push(ended(&w, server_id, &agent, &format!("s{n}")).await);
    }
    // Each recording gets a hold and a deletion at the same time; a few
    // site holds race them too.
    let service = &w.service;
    let admin = &w.admin;
    let holds = recordings.iter().map(|&id| async move {
        let _ = service
            .place_legal_hold(
                admin,
                None,
                HoldScope::Recordings {
                    recording_ids: vec![id],
                },
                "race",
            )
            .await;
    });
    let deletions = recordings.iter().map(|&id| async move {
        let _ = service.delete_recording(admin, id).await;
    });
    let site_holds = (0..3).map(|_| async move {
        let _ = service
            .place_legal_hold(admin, Some(site_id), HoldScope::Site, "race")
            .await;
    });
    futures_util::future::join3(
        futures_util::future::join_all(holds),
        futures_util::future::join_all(deletions),
        futures_util::future::join_all(site_holds),
    )
    .await;
    // In log order: no recording is deleted after a hold covering it.
    let mut held: BTreeSet<Uuid> = BTreeSet::new();
    let mut site_held = false;
    for envelope in w.all_events().await {
        match envelope.payload {
            DomainEvent::LegalHoldPlaced { scope, .. } => match scope {
                HoldScope::Recordings { recording_ids } => held.extend(recording_ids),
                HoldScope::Site => site_held = true,
                HoldScope::Users { .. } => unreachable!(),
            },
            DomainEvent::RecordingDeleted { recording_id, .. } => {
                assert!(
                    !site_held && !held.contains(&recording_id),
                    "recording {recording_id} was deleted while held"
                );
            }
            _ => {}
        }
    }
}
