//! The recordings catalogue: every filter, both orders, cursors, totals,
//! and visibility on every path.

use std::collections::BTreeMap;

use srs_domain::model::{PlaybackScope, Role, SessionEventType, Severity};
use srs_projections::models::catalogue::{RecordingFilter, RecordingOrder, RecordingQuery};
use srs_projections::models::{Viewer, Visibility};
use uuid::Uuid;

use crate::fixtures::*;

fn admin_viewer() -> Viewer {
    Viewer::new(principal(Role::Admin, "root"), BTreeMap::new())
}

fn ids(f: &Folded, viewer: &Viewer, filter: RecordingFilter) -> Vec<Uuid> {
    let page = f
        .catalogue()
        .search(
            viewer,
            &RecordingQuery {
                filter,
                first: Some(500),
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    let ids: Vec<Uuid> = page.items.iter().map(|h| h.row.id).collect();
    assert_eq!(
        page.total_count,
        Some(ids.len() as u64),
        "the total counts the same matches"
    );
    ids
}

/// Four recordings that differ in every filtered field; newest is 4.
fn four() -> (Folded, [Rec; 4]) {
    let r1 = Rec::new(1);
    let r2 = Rec {
        user: "bob@corp.example".into(),
        host: "VDA-02".into(),
        ip: Some("10.0.0.2".into()),
        dg: Some("Support".into()),
        apps: vec!["Outlook".into()],
        server: SERVER2,
        ..Rec::new(2)
    };
    let r3 = Rec {
        site: SITE2,
        user: "CORP\\carol".into(),
        ip: None,
        dg: None,
        ..Rec::new(3)
    };
    let r4 = Rec::new(4);
    let f = Folded::given([
        r1.started(),
        r1.app_started(1, "cmd.exe", 10_000),
        r1.detected(
            1,
            SessionEventType::AppStart,
            Severity::High,
            "shell",
            10_000,
        ),
        r1.ended_after_secs(600),
        r2.started(),
        r2.ended_after_secs(60),
        r2.restricted("root", "HR case", at_min(9)),
        r3.started(),
        r3.detected(
            2,
            SessionEventType::WebBrowsing,
            Severity::Low,
            "web",
            1_000,
        ),
        r3.commented(Uuid::from_u128(77), "Suspicious Transfer at 10:02"),
        r3.ended_after_secs(3600),
        r4.started(),
        r4.app_started(2, "notepad.exe", 30_000),
    ]);
    (f, [r1, r2, r3, r4])
}

#[test]
fn every_filter_selects_exactly_its_recordings() {
    let (f, [r1, r2, r3, r4]) = four();
    let v = admin_viewer();
    let all = ids(&f, &v, RecordingFilter::default());
    assert_eq!(all, vec![r4.id, r3.id, r2.id, r1.id], "newest first");
    let cases: Vec<(RecordingFilter, Vec<Uuid>)> = vec![
        (
            RecordingFilter {
                site_id: Some(SITE2),
                ..Default::default()
            },
            vec![r3.id],
        ),
        (
            RecordingFilter {
                server_id: Some(SERVER2),
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                users: vec!["alice".into()],
                ..Default::default()
            },
            vec![r4.id, r1.id],
        ),
        (
            RecordingFilter {
                users: vec!["corp\\ALICE".into(), "bob".into()],
                ..Default::default()
            },
            vec![r4.id, r2.id, r1.id],
        ),
        (
            RecordingFilter {
                client_ips: vec!["10.0.0.2".into()],
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                hosts: vec!["vda-02".into()],
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                applications: vec!["CMD.EXE".into()],
                ..Default::default()
            },
            vec![r1.id],
        ),
        (
            RecordingFilter {
                applications: vec!["outlook".into(), "notepad.exe".into()],
                ..Default::default()
            },
            vec![r4.id, r2.id],
        ),
        (
            RecordingFilter {
                delivery_groups: vec!["support".into()],
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                started_after: Some(at_min(2)),
                ..Default::default()
            },
            vec![r4.id, r3.id, r2.id],
        ),
        (
            RecordingFilter {
                started_before: Some(at_min(2)),
                ..Default::default()
            },
            vec![r1.id],
        ),
        (
            RecordingFilter {
                started_after: Some(at_min(2)),
                started_before: Some(at_min(4)),
                ..Default::default()
            },
            vec![r3.id, r2.id],
        ),
        (
            RecordingFilter {
                min_duration_sec: Some(600),
                ..Default::default()
            },
            vec![r3.id, r1.id],
        ),
        (
            RecordingFilter {
                max_duration_sec: Some(60),
                ..Default::default()
            },
            vec![r4.id, r2.id],
        ),
        (
            RecordingFilter {
                live: Some(true),
                ..Default::default()
            },
            vec![r4.id],
        ),
        (
            RecordingFilter {
                live: Some(false),
                ..Default::default()
            },
            vec![r3.id, r2.id, r1.id],
        ),
        (
            RecordingFilter {
                has_detections: Some(true),
                ..Default::default()
            },
            vec![r3.id, r1.id],
        ),
        (
            RecordingFilter {
                has_detections: Some(false),
                ..Default::default()
            },
            vec![r4.id, r2.id],
        ),
        (
            RecordingFilter {
                min_severity: Some(Severity::Medium),
                ..Default::default()
            },
            vec![r1.id],
        ),
        (
            RecordingFilter {
                min_severity: Some(Severity::Info),
                ..Default::default()
            },
            vec![r3.id, r1.id],
        ),
        (
            RecordingFilter {
                restricted: Some(true),
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                restricted: Some(false),
                ..Default::default()
            },
            vec![r4.id, r3.id, r1.id],
        ),
        (
            RecordingFilter {
                text: Some("carol".into()),
                ..Default::default()
            },
            vec![r3.id],
        ),
        (
            RecordingFilter {
                text: Some("vda-0".into()),
                ..Default::default()
            },
            vec![r4.id, r3.id, r2.id, r1.id],
        ),
        (
            RecordingFilter {
                text: Some("notepad".into()),
                ..Default::default()
            },
            vec![r4.id],
        ),
        (
            RecordingFilter {
                text: Some("alice-pc".into()),
                ..Default::default()
            },
            vec![r4.id, r3.id, r2.id, r1.id],
        ),
        (
            RecordingFilter {
                text: Some("10.0.0.2".into()),
                ..Default::default()
            },
            vec![r2.id],
        ),
        (
            RecordingFilter {
                text: Some("suspicious transfer".into()),
                ..Default::default()
            },
            vec![r3.id],
        ),
        (
            RecordingFilter {
                users: vec!["alice".into()],
                live: Some(false),
                has_detections: Some(true),
                ..Default::default()
            },
            vec![r1.id],
        ),
        (
            RecordingFilter {
                users: vec!["nobody".into()],
                ..Default::default()
            },
            vec![],
        ),
    ];
    for (filter, expected) in cases {
        assert_eq!(ids(&f, &v, filter.clone()), expected, "{filter:?}");
    }
}

#[test]
fn longest_first_orders_by_duration_with_and_without_a_selective_index() {
    let (f, [r1, r2, r3, r4]) = four();
    let v = admin_viewer();
    let by_duration = |filter: RecordingFilter| -> Vec<Uuid> {
        let page = f
            .catalogue()
            .search(
                &v,
                &RecordingQuery {
                    filter,
                    order: RecordingOrder::LongestFirst,
                    first: Some(2),
                    ..Default::default()
                },
            )
            .unwrap();
        let mut out: Vec<Uuid> = page.items.iter().map(|h| h.row.id).collect();
        let mut after = page.end_cursor;
        let mut more = page.has_next_page;
        while more {
            let next = f
                .catalogue()
                .search(
                    &v,
                    &RecordingQuery {
                        order: RecordingOrder::LongestFirst,
                        first: Some(2),
                        after: after.clone(),
                        ..Default::default()
                    },
                )
                .unwrap();
            out.extend(next.items.iter().map(|h| h.row.id));
            after = next.end_cursor;
            more = next.has_next_page;
        }
        out
    };
    // 3600 s, 600 s, 60 s, and the live one at 30 s of events.
    assert_eq!(
        by_duration(RecordingFilter::default()),
        vec![r3.id, r1.id, r2.id, r4.id]
    );
    let small = f
        .catalogue()
        .search(
            &v,
            &RecordingQuery {
                filter: RecordingFilter {
                    users: vec!["alice".into()],
                    ..Default::default()
                },
                order: RecordingOrder::LongestFirst,
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        small.items.iter().map(|h| h.row.id).collect::<Vec<_>>(),
        vec![r1.id, r4.id]
    );
    assert_eq!(small.total_count, Some(2));
}

#[test]
fn pages_neither_repeat_nor_skip_while_newer_recordings_arrive() {
    let mut f = Folded::given((0..120).map(|n| Rec::new(n).started()));
    let v = admin_viewer();
    let mut seen = Vec::new();
    let mut after = None;
    let mut next_new = 1000;
    loop {
        let page = f
            .catalogue()
            .search(
                &v,
                &RecordingQuery {
                    first: Some(50),
                    after: after.clone(),
                    ..Default::default()
                },
            )
            .unwrap();
        seen.extend(page.items.iter().map(|h| h.row.id));
        if !page.has_next_page {
            break;
        }
        after = page.end_cursor;
        // Concurrent inserts: newer than everything listed so far.
        f.apply(
            admin(),
            (0..5).map(|_| {
                next_new += 1;
                Rec::new(next_new).started()
            }),
        );
    }
    let expected: Vec<Uuid> = (0..120).rev().map(id).collect();
    assert_eq!(seen, expected);
    assert_eq!(f.catalogue().count().unwrap(), 130);
}

#[test]
fn a_filtered_page_walks_the_selective_index_and_counts_fast_for_admins() {
    // 300 recordings on SITE, 3 on SITE2: a SITE2 page is served from its index.
    let mut events: Vec<_> = (0..300).map(|n| Rec::new(n).started()).collect();
    events.extend((300..303).map(|n| {
        Rec {
            site: SITE2,
            ..Rec::new(n)
        }
        .started()
    }));
    let f = Folded::given(events);
    let v = admin_viewer();
    let page = f
        .catalogue()
        .search(
            &v,
            &RecordingQuery {
                filter: RecordingFilter {
                    site_id: Some(SITE2),
                    ..Default::default()
                },
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.total_count, Some(3));
    let page = f
        .catalogue()
        .search(
            &v,
            &RecordingQuery {
                first: Some(10),
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (page.items.len(), page.total_count, page.has_next_page),
        (10, Some(303), true)
    );
}

#[test]
fn restricted_recordings_are_hidden_from_auditors_and_shown_to_admins_and_privileged_players() {
    let (mut f, [r1, r2, r3, r4]) = four();
    // Without a grant an auditor sees nothing at all.
    let auditor = f.access().viewer(&principal(Role::Auditor, "ann")).unwrap();
    assert!(ids(&f, &auditor, RecordingFilter::default()).is_empty());
    assert!(f
        .catalogue()
        .get_visible(&auditor, r1.id)
        .unwrap()
        .is_none());
    f.apply(
        admin(),
        [SITE, SITE2].into_iter().enumerate().map(|(n, site_id)| {
            srs_domain::model::DomainEvent::PlaybackPermissionGranted {
                permission_id: Uuid::from_u128(800 + n as u128),
                site_id,
                principal: "ann".into(),
                scope: PlaybackScope::whole_site(),
                at: T0,
            }
        }),
    );
    let auditor = f.access().viewer(&principal(Role::Auditor, "ann")).unwrap();
    assert_eq!(
        ids(&f, &auditor, RecordingFilter::default()),
        vec![r4.id, r3.id, r1.id]
    );
    assert!(f
        .catalogue()
        .get_visible(&auditor, r2.id)
        .unwrap()
        .is_none());
    let player = f
        .access()
        .viewer(&principal(Role::PrivilegedPlayer, "pp"))
        .unwrap();
    assert_eq!(ids(&f, &player, RecordingFilter::default()).len(), 4);
    assert_eq!(
        f.catalogue()
            .get_visible(&player, r2.id)
            .unwrap()
            .unwrap()
            .1,
        Visibility::Playable
    );
    for role in [Role::Viewer, Role::Agent] {
        let v = f.access().viewer(&principal(role, "v")).unwrap();
        assert!(
            ids(&f, &v, RecordingFilter::default()).is_empty(),
            "{role:?}"
        );
        assert!(f.catalogue().get_visible(&v, r1.id).unwrap().is_none());
    }
}

#[test]
fn auditors_see_per_site_what_their_permissions_grant_and_archived_recordings_are_listed_not_playable(
) {
    let (mut f, [r1, _r2, r3, r4]) = four();
    f.apply(
        admin(),
        [
            srs_domain::model::DomainEvent::PlaybackPermissionGranted {
                permission_id: Uuid::from_u128(900),
                site_id: SITE,
                principal: "CORP\\Auditors".into(),
                scope: PlaybackScope {
                    applications: vec!["cmd.exe".into()],
                    ..Default::default()
                },
                at: T0,
            },
            r1.archived(),
        ],
    );
    let mut ann = principal(Role::Auditor, "ann");
    ann.groups = vec!["corp\\auditors".into()];
    let viewer = f.access().viewer(&ann).unwrap();
    // SITE: the recordings with cmd.exe; SITE2 (no permission there): none.
    assert_eq!(ids(&f, &viewer, RecordingFilter::default()), vec![r1.id]);
    f.apply(
        admin(),
        [srs_domain::model::DomainEvent::PlaybackPermissionGranted {
            permission_id: Uuid::from_u128(901),
            site_id: SITE2,
            principal: "CORP\\Auditors".into(),
            scope: PlaybackScope::whole_site(),
            at: T0,
        }],
    );
    let viewer = f.access().viewer(&ann).unwrap();
    // SITE2 whole now.
    assert_eq!(
        ids(&f, &viewer, RecordingFilter::default()),
        vec![r3.id, r1.id]
    );
    assert_eq!(
        f.catalogue()
            .get_visible(&viewer, r1.id)
            .unwrap()
            .unwrap()
            .1,
        Visibility::Listed
    );
    assert!(f.catalogue().get_visible(&viewer, r4.id).unwrap().is_none());
    // A site-scoped auditor sees only its site.
    let mut scoped = principal(Role::Auditor, "sam");
    scoped.site_ids = [SITE2].into();
    let viewer = f.access().viewer(&scoped).unwrap();
    assert!(
        ids(&f, &viewer, RecordingFilter::default()).is_empty(),
        "no grant"
    );
    scoped.groups = ann.groups.clone();
    let viewer = f.access().viewer(&scoped).unwrap();
    assert_eq!(ids(&f, &viewer, RecordingFilter::default()), vec![r3.id]);
    assert!(ids(
        &f,
        &viewer,
        RecordingFilter {
            site_id: Some(SITE),
            ..Default::default()
        }
    )
    .is_empty());
}

#[test]
fn deleted_recordings_leave_every_list_but_keep_their_row() {
    let (mut f, [r1, ..]) = four();
    f.apply(admin(), [r1.chunk(1, 100), r1.deleted()]);
    let v = admin_viewer();
    assert!(!ids(&f, &v, RecordingFilter::default()).contains(&r1.id));
    assert!(
        ids(
            &f,
            &v,
            RecordingFilter {
                has_detections: Some(true),
                ..Default::default()
            }
        )
        .len()
            == 1
    );
    let row = f.catalogue().get(r1.id).unwrap().unwrap();
    assert!(row.deleted());
    assert_eq!(row.points.size_bytes, 100);
    assert_eq!(f.catalogue().count().unwrap(), 3);
}
