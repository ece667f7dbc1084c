//! Token commands against the real sled log.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::app::*;
use crate::log::EventStore;
use crate::model::*;

use crate::app::testing::*;

#[tokio::test]
async fn secrets_are_returned_once_and_only_their_hashes_are_stored() {
    let w = World::new();
    let site_id = w.site().await;
    let credential = w
        .service
        .connect_server(
            &w.admin,
            ConnectServer {
                site_id,
                name: "SR".into(),
                host: "h".into(),
                deployment: Deployment::Cloud,
                version: "1".into(),
            },
        )
        .await
        .expect("connect");
    let token = w
        .service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            BTreeSet::from([site_id]),
            vec![],
            None,
        )
        .await
        .expect("token");
    assert!(credential.secret.starts_with("srs_") && credential.secret.len() == 4 + 64);
    assert!(
        !format!("{token:?}").contains(&token.secret),
        "Debug redacts the secret"
    );
    let log = format!("{:?}", w.all_events().await);
    assert!(!log.contains(&credential.secret) && !log.contains(&token.secret));
    assert!(
        log.contains(&hash_secret(&credential.secret)) && log.contains(&hash_secret(&token.secret))
    );
}

#[tokio::test]
async fn rotating_a_token_is_one_append_and_its_successor_is_managed_by_its_own_id() {
    let w = World::new();
    let issued = w
        .service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            BTreeSet::new(),
            vec![],
            None,
        )
        .await
        .expect("issue");
    let head = w.spy.head().position;
    let rotated = w
        .service
        .rotate_token(&w.admin, issued.token_id, None)
        .await
        .expect("rotate");
    // One event at one position: the revocation and the successor.
    assert_eq!(rotated.executed.positions, vec![head + 1]);
    assert_eq!(w.spy.head().position, head + 1);
    assert_eq!(rotated.previous_token_id, issued.token_id);
    assert_eq!(rotated.previous_secret_sha256, hash_secret(&issued.secret));
    let last = w.all_events().await.pop().expect("an event");
    assert_eq!(
        last.event_id, rotated.token_id,
        "stored under the successor's id"
    );
    assert_eq!(last.stream, Token::stream(issued.token_id));
    match &last.payload {
        DomainEvent::TokenRotated {
            token_id,
            new_token_id,
            secret_sha256,
            ..
        } => {
            assert_eq!(*token_id, issued.token_id);
            assert_eq!(*new_token_id, rotated.token_id);
            assert_eq!(*secret_sha256, hash_secret(&rotated.secret));
        }
        other => panic!("not a rotation: {other:?}"),
    }
    // The old token is gone for good; the successor is found by its id.
    let again = w
        .service
        .rotate_token(&w.admin, issued.token_id, None)
        .await
        .expect_err("rotated already");
    assert_eq!(again.code(), Some(ErrorCode::Validation));
    let second = w
        .service
        .rotate_token(&w.admin, rotated.token_id, None)
        .await
        .expect("the successor rotates");
    w.service
        .revoke_token(&w.admin, second.token_id)
        .await
        .expect("the successor's successor is revoked");
    let unknown = w
        .service
        .revoke_token(&w.admin, Uuid::now_v7())
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Some(ErrorCode::NotFound));
    // Only ADMINs not scoped to sites rotate.
    let refused = w
        .service
        .rotate_token(&person(Role::Auditor, "aud"), second.token_id, None)
        .await
        .expect_err("auditor");
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused_and_writes_nothing() {
    let w = World::new();
    let head = w.spy.head().position;
    let error = w
        .service
        .issue_token(
            &w.admin,
            "late",
            Role::Viewer,
            BTreeSet::new(),
            vec![],
            Some(w.service.now().plus_secs(-1)),
        )
        .await
        .expect_err("in the past");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    assert_eq!(w.spy.head().position, head);
}

#[tokio::test]
async fn rotating_an_agent_token_revokes_the_old_credential_in_the_same_event() {
    let w = World::new();
    let site_id = w.site().await;
    let (server_id, _) = w.server(site_id).await;
    let head = w.spy.head().position;
    let rotated = w
        .service
        .rotate_agent_token(&w.admin, server_id)
        .await
        .expect("rotate");
    assert_eq!(rotated.executed.positions, vec![head + 1]);
    assert_eq!(rotated.previous_token_id, server_id);
    assert_eq!(rotated.server_id, Some(server_id));
    let server = w.service.load::<Server>(server_id).await.expect("server");
    assert_eq!(server.state.agent_token_id, Some(rotated.token_id));
    assert_eq!(server.state.credential_sha256, hash_secret(&rotated.secret));
    // rotateToken finds the agent credential by its id, and refuses the
    // one rotated away.
    let stale = w
        .service
        .rotate_token(&w.admin, server_id, None)
        .await
        .expect_err("the first credential was rotated");
    assert_eq!(stale.code(), Some(ErrorCode::Validation));
    let next = w
        .service
        .rotate_token(&w.admin, rotated.token_id, None)
        .await
        .expect("rotateToken on the current agent credential");
    assert_eq!(next.previous_token_id, rotated.token_id);
    assert_eq!(next.server_id, Some(server_id));
    let revoke = w
        .service
        .revoke_token(&w.admin, next.token_id)
        .await
        .expect_err("agent credentials are not revoked by hand");
    assert_eq!(revoke.code(), Some(ErrorCode::Validation));
    // A server nobody may see (another site's, for a scoped admin) is NOT_FOUND.
    let mut scoped = person(Role::Admin, "scoped");
    scoped.site_ids = BTreeSet::from([Uuid::now_v7()]);
    let hidden = w
        .service
        .rotate_agent_token(&scoped, server_id)
        .await
        .expect_err("scoped elsewhere");
    assert_eq!(hidden.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn of_two_bootstraps_racing_on_one_log_exactly_one_issues_the_round_token() {
    let w = World::new();
    // A second node's service on the same log.
    let other = Service::new(
        w.spy.clone(),
        std::sync::Arc::new(w.clock.clone()),
        w.permissions.clone(),
    );
    let (a_round, b_round) = (
        w.service.bootstrap_round().await.unwrap(),
        other.bootstrap_round().await.unwrap(),
    );
    assert_eq!((a_round, b_round), (0, 0));
    let (a, b) = tokio::join!(
        w.service.issue_bootstrap_token("admin", a_round),
        other.issue_bootstrap_token("admin", b_round),
    );
    let (issued, refused) = match (a, b) {
        (Ok(issued), Err(refused)) | (Err(refused), Ok(issued)) => (issued, refused),
        (a, b) => panic!("exactly one bootstrap issues the token: {a:?} {b:?}"),
    };
    assert!(matches!(refused, AppError::Conflict(_)), "{refused:?}");
    assert_eq!(issued.token_id, bootstrap_token_id(0));
    let admins: Vec<_> = w
        .all_events()
        .await
        .into_iter()
        .filter(|e| matches!(e.payload, DomainEvent::TokenIssued { .. }))
        .collect();
    assert_eq!(admins.len(), 1, "one token in the log");
    assert_eq!(admins[0].actor, crate::actor::Actor::system("bootstrap"));

    // The round is spent: a later start (every admin revoked) takes the
    // next one, again once, with another id.
    assert_eq!(other.bootstrap_round().await.unwrap(), 1);
    let again = other.issue_bootstrap_token("admin", 0).await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "{again:?}");
    let next = w.service.issue_bootstrap_token("admin", 1).await.unwrap();
    assert_eq!(next.token_id, bootstrap_token_id(1));
    assert_ne!(next.token_id, issued.token_id);
    assert_eq!(w.service.bootstrap_round().await.unwrap(), 2);
}
