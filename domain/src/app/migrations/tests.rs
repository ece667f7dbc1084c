//! The one-time migrations, against the real sled log.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::actor::Actor;
use crate::app::*;
use crate::model::testing::fixtures::session;
use crate::model::*;

use crate::app::testing::*;

/// What an auditor saw under the rule before explicit permissions: with no
/// permission on the site, every unrestricted recording of it.
fn old_rule_sees(p: &Principal, facts: &RecordingFacts, grants: &[PlaybackScope]) -> bool {
    if grants.is_empty() {
        can_view_recording(p, facts, &[PlaybackScope::whole_site()])
    } else {
        can_view_recording(p, facts, grants)
    }
}

#[tokio::test]
async fn the_migration_to_explicit_permissions_keeps_what_every_auditor_saw() {
    let w = World::new();
    let (site_a, server_a, agent_a) = w.recording_site().await;
    let (site_b, server_b, agent_b) = w.recording_site().await;
    let mut recordings = Vec::new();
    for (server, agent) in [(server_a, &agent_a), (server_b, &agent_b)] {
        for session_id in ["s1", "s2"] {
            recordings.push(w.start(server, agent, session_id).await.recording_id);
        }
    }
    // The second recording of site A is someone else's session.
    let bob = w
        .service
        .start_recording(
            &agent_a,
            StartRecordingInput {
                server_id: server_a,
                session_id: "bob".into(),
                session: SessionAttributes {
                    user: "CORP\\bob".into(),
                    ..session()
                },
                started_at: None,
            },
        )
        .await
        .expect("bob")
        .recording_id;
    recordings.push(bob);
    w.service
        .restrict_recording(&w.admin, recordings[1], "HR")
        .await
        .expect("restrict");
    // Tokens as the old rule knew them.
    let issue = |name: &'static str, sites: Vec<Uuid>, groups: Vec<String>| {
        let service = &w.service;
        let admin = &w.admin;
        async move {
            let issued = service
                .issue_token(
                    admin,
                    name,
                    Role::Auditor,
                    sites.into_iter().collect(),
                    groups,
                    None,
                )
                .await
                .expect("issue");
            Principal {
                token_id: issued.token_id,
                name: name.into(),
                role: Role::Auditor,
                site_ids: BTreeSet::new(),
                groups: Vec::new(),
                server_id: None,
            }
        }
    };
    let mut wide = issue("wide", vec![], vec![]).await;
    let mut scoped = issue("scoped", vec![site_b], vec![]).await;
    scoped.site_ids = [site_b].into();
    let mut narrow = issue("narrow", vec![site_a], vec!["CORP\\Audit".into()]).await;
    narrow.site_ids = [site_a].into();
    narrow.groups = vec!["CORP\\Audit".into()];
    // A namesake of `wide` narrowed through a group: must stay narrow.
    let mut twin = issue("wide", vec![], vec!["CORP\\Audit".into()]).await;
    twin.groups = vec!["CORP\\Audit".into()];
    let gone = issue("gone", vec![], vec![]).await;
    w.service
        .revoke_token(&w.admin, gone.token_id)
        .await
        .expect("revoke");
    w.grant(
        site_a,
        "CORP\\Audit",
        PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        },
    )
    .await;
    wide.site_ids = BTreeSet::new();
    let auditors = [&wide, &scoped, &narrow, &twin];

    let facts = |id: Uuid| {
        let service = &w.service;
        async move {
            service
                .load::<Recording>(id)
                .await
                .expect("load")
                .state
                .facts()
                .expect("facts")
        }
    };
    let mut before = Vec::new();
    for p in auditors {
        for &r in &recordings {
            let f = facts(r).await;
            let grants = w.permissions.grants(p, f.site_id).await.expect("grants");
            before.push(old_rule_sees(p, &f, &grants));
        }
    }
    assert!(before.iter().any(|s| *s) && before.iter().any(|s| !*s));

    let head = w.all_events().await.len();
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("a first run migrates");
    // wide: sites A and B; scoped: B; narrow and twin hold a grant on A
    // (through their group) and none on B: twin gets B.
    assert_eq!(migrated.granted, 4);
    let events = w.all_events().await;
    for e in &events[head..] {
        w.permissions.apply(&e.payload);
        assert_eq!(e.actor, Actor::system(MIGRATION_ACTOR));
    }
    let marker = events.last().expect("marker");
    assert_eq!(marker.stream, EXPLICIT_GRANTS_STREAM);
    assert!(matches!(
        &marker.payload,
        DomainEvent::PlaybackPermissionsMigrated { permission_ids, .. } if permission_ids.len() == 4
    ));

    let mut after = Vec::new();
    for p in auditors {
        for &r in &recordings {
            let f = facts(r).await;
            let grants = w.permissions.grants(p, f.site_id).await.expect("grants");
            after.push(can_view_recording(p, &f, &grants));
        }
    }
    assert_eq!(before, after, "nobody gains or loses a recording");

    // Once: a restart finds the marker and writes nothing.
    let len = w.all_events().await.len();
    assert_eq!(
        w.service.migrate_to_explicit_grants().await.expect("again"),
        None
    );
    assert_eq!(w.all_events().await.len(), len);
}

#[tokio::test]
async fn an_interrupted_migration_continues_without_granting_twice() {
    let w = World::new();
    let site_id = w.site().await;
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
    // The grant was written, then the start stopped before the marker.
    let permission_id = whole_site_grant_id(issued.token_id, site_id);
    let granted = w
        .service
        .execute::<PlaybackPermission>(
            permission_id,
            PermissionCommand::Grant {
                permission_id,
                site_id,
                principal: token_principal(issued.token_id),
                scope: PlaybackScope::whole_site(),
                now: w.service.now(),
            },
            &Actor::system(MIGRATION_ACTOR),
            Some(0),
        )
        .await
        .expect("grant");
    assert_eq!(granted.events.len(), 1);
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("the marker is still missing");
    assert_eq!(migrated.granted, 0, "the grant is there already");
    let grants = w
        .all_events()
        .await
        .iter()
        .filter(|e| e.payload.name() == "PlaybackPermissionGranted")
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test]
async fn a_new_log_is_marked_migrated_so_later_auditors_get_nothing_implicitly() {
    let w = World::new();
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("marker");
    assert_eq!(migrated.granted, 0);
    let site_id = w.site().await;
    w.service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            [site_id].into(),
            vec![],
            None,
        )
        .await
        .expect("issue");
    assert_eq!(
        w.service.migrate_to_explicit_grants().await.expect("again"),
        None,
        "an auditor issued under the new rule is never taken for an old one"
    );
}
