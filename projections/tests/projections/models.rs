//! Given events, expected answers: access, detections, dashboard, servers,
//! policies, comments, audit, tokens, legal holds.

use srs_domain::actor::Actor;
use srs_domain::model::{
    default_policy, AuditCategory, Deployment, DomainEvent, HoldScope, InstallOptions,
    InstallStatus, InstallStep, PolicyBody, PolicyKind, RecordingAction, RecordingPolicyBody,
    ResponseAction, RetentionPolicy, Role, ServerSettings, ServerStatus, SessionEventData,
    SessionEventType, Severity, TimeOfDay,
};
use srs_projections::models::audit::AuditFilter;
use srs_projections::models::dashboard::{risk_weight, DashboardQuery, SiteScope, StatusCount};
use srs_projections::models::detections::DetectionFilter;
use srs_projections::models::tokens::TokenFilter;
use uuid::Uuid;

use crate::fixtures::*;

const SHA_A: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const SHA_B: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

#[test]
fn restrictions_say_who_when_why_and_keep_their_history() {
    let r = Rec::new(1);
    let mut f = Folded::given([
        r.started(),
        r.ended_after_secs(5),
        r.restricted("pat", "legal hold", at_min(10)),
    ]);
    let row = f.access().restriction(r.id).unwrap().unwrap();
    assert_eq!(
        (row.by.as_str(), row.reason.as_str(), row.at),
        ("pat", "legal hold", at_min(10))
    );
    assert_eq!(f.access().restricted(Some(SITE), 10).unwrap().len(), 1);
    assert!(f.access().restricted(Some(SITE2), 10).unwrap().is_empty());
    f.apply(
        admin(),
        [DomainEvent::RecordingRestrictionRemoved {
            recording_id: r.id,
            site_id: SITE,
            reason: "released".into(),
            by: "root".into(),
            at: at_min(20),
        }],
    );
    assert!(f.access().restriction(r.id).unwrap().is_none());
    assert!(f.access().restricted(None, 10).unwrap().is_empty());
    let history = f.access().restriction_history(r.id).unwrap();
    assert_eq!(
        history.iter().map(|h| h.restricted).collect::<Vec<_>>(),
        vec![true, false]
    );
}

#[test]
fn playback_permissions_are_listed_per_site_until_revoked() {
    let grant = |n: u128, site| DomainEvent::PlaybackPermissionGranted {
        permission_id: Uuid::from_u128(n),
        site_id: site,
        principal: "ann".into(),
        scope: Default::default(),
        at: T0,
    };
    let mut f = Folded::given([grant(1, SITE), grant(2, SITE2)]);
    assert_eq!(f.access().permissions(Some(SITE)).unwrap().len(), 1);
    assert_eq!(f.access().permissions(None).unwrap().len(), 2);
    assert_eq!(
        f.access()
            .permission(Uuid::from_u128(1))
            .unwrap()
            .unwrap()
            .granted_by,
        "principal:root"
    );
    f.apply(
        admin(),
        [DomainEvent::PlaybackPermissionRevoked {
            permission_id: Uuid::from_u128(1),
            site_id: SITE,
            principal: "ann".into(),
            at: T0,
        }],
    );
    assert!(f.access().permissions(Some(SITE)).unwrap().is_empty());
    let viewer = f.access().viewer(&principal(Role::Auditor, "Ann")).unwrap();
    assert!(viewer.grants(SITE).is_empty());
    assert_eq!(viewer.grants(SITE2).len(), 1);
}

fn detection_world() -> (Folded, Rec, Rec) {
    let a = Rec::new(1);
    let b = Rec {
        user: "CORP\\bob".into(),
        site: SITE2,
        ..Rec::new(2)
    };
    let f = Folded::given([
        a.started(),
        a.event(1, SessionEventType::AppStart, 1_000, SessionEventData::None),
        a.event(2, SessionEventType::AppStart, 1_500, SessionEventData::None),
        a.event(
            3,
            SessionEventType::WebBrowsing,
            70_000,
            SessionEventData::None,
        ),
        a.detected(
            1,
            SessionEventType::AppStart,
            Severity::High,
            "shell",
            1_000,
        ),
        a.detected(
            3,
            SessionEventType::WebBrowsing,
            Severity::Low,
            "web",
            70_000,
        ),
        b.started(),
        b.detected(
            4,
            SessionEventType::UsbMassStorage,
            Severity::Critical,
            "usb",
            5_000,
        ),
        DomainEvent::ResponseTriggered {
            response_id: Uuid::from_u128(55),
            recording_id: b.id,
            site_id: SITE2,
            server_id: SERVER,
            session_id: b.session.clone(),
            user: b.user.clone(),
            host: b.host.clone(),
            policy_id: Uuid::from_u128(0x7e5),
            rule: "lock".into(),
            trigger: "usb".into(),
            action: ResponseAction::LogOffSession,
            detection_id: Some(Uuid::from_u128(0xd000_0004)),
            event_type: Some(SessionEventType::UsbMassStorage),
            severity: Some(Severity::Critical),
            at_offset_ms: 5_000,
            at: b.at,
        },
    ]);
    (f, a, b)
}

#[test]
fn detections_are_found_by_recording_type_severity_rule_user_site_and_time() {
    let (f, a, b) = detection_world();
    let d = f.detections();
    let rules = |filter: DetectionFilter| -> Vec<String> {
        d.search(&filter, None, None)
            .unwrap()
            .items
            .into_iter()
            .map(|(_, r)| r.rule)
            .collect()
    };
    assert_eq!(
        rules(DetectionFilter::default()),
        vec!["usb", "web", "shell"],
        "newest first"
    );
    assert_eq!(
        rules(DetectionFilter {
            recording_id: Some(a.id),
            ..Default::default()
        }),
        vec!["web", "shell"]
    );
    assert_eq!(
        rules(DetectionFilter {
            types: vec![SessionEventType::UsbMassStorage, SessionEventType::AppStart],
            ..Default::default()
        }),
        vec!["usb", "shell"]
    );
    assert_eq!(
        rules(DetectionFilter {
            min_severity: Some(Severity::High),
            ..Default::default()
        }),
        vec!["usb", "shell"]
    );
    assert_eq!(
        rules(DetectionFilter {
            rule: Some("WEB".into()),
            ..Default::default()
        }),
        vec!["web"]
    );
    assert_eq!(
        rules(DetectionFilter {
            user: Some("corp\\bob".into()),
            ..Default::default()
        }),
        vec!["usb"]
    );
    assert_eq!(
        rules(DetectionFilter {
            site_ids: vec![SITE],
            ..Default::default()
        }),
        vec!["web", "shell"]
    );
    assert_eq!(
        rules(DetectionFilter {
            from: Some(a.at.plus_secs(66)),
            to: Some(a.at.plus_secs(71)),
            ..Default::default()
        }),
        vec!["web"]
    );
    let page = d
        .search(&DetectionFilter::default(), Some(1), None)
        .unwrap();
    assert!(page.has_next_page);
    let next = d
        .search(
            &DetectionFilter::default(),
            Some(5),
            page.end_cursor.as_deref(),
        )
        .unwrap();
    assert_eq!(
        next.items
            .iter()
            .map(|(_, r)| r.rule.as_str())
            .collect::<Vec<_>>(),
        vec!["web", "shell"]
    );
    let first = &page.items[0].1;
    assert_eq!(
        d.detection(first.detection_id).unwrap().as_ref(),
        Some(first)
    );
    assert_eq!(first.at, b.at.plus_secs(5), "session start + offset");
}

#[test]
fn responses_are_pending_until_delivered() {
    let (mut f, _, b) = detection_world();
    assert_eq!(f.detections().pending_responses(SERVER).unwrap().len(), 1);
    f.apply(
        Actor::Agent { server_id: SERVER },
        [DomainEvent::ResponseDelivered {
            response_id: Uuid::from_u128(55),
            recording_id: b.id,
            site_id: SITE2,
            server_id: SERVER,
            outcome: "logged off".into(),
            at: b.at.plus_secs(6),
        }],
    );
    assert!(f.detections().pending_responses(SERVER).unwrap().is_empty());
    let all = f.detections().responses_for_recording(b.id).unwrap();
    assert_eq!(all[0].delivered.as_ref().unwrap().outcome, "logged off");
}

#[test]
fn the_visualization_counts_types_per_bucket_per_recording_and_per_site() {
    let (f, a, _) = detection_world();
    let buckets = f.detections().recording_visualization(a.id, 60).unwrap();
    assert_eq!(buckets.len(), 2);
    assert_eq!(
        (
            buckets[0].start,
            buckets[0].events[&SessionEventType::AppStart]
        ),
        (0, 2)
    );
    assert_eq!(buckets[0].detections[&SessionEventType::AppStart], 1);
    assert_eq!(
        (
            buckets[1].start,
            buckets[1].events[&SessionEventType::WebBrowsing]
        ),
        (60, 1)
    );
    let site = f
        .detections()
        .site_visualization(Some(SITE), T0, T0.plus_days(1), 3600)
        .unwrap();
    assert_eq!(site.len(), 1);
    assert_eq!(site[0].events.values().sum::<u64>(), 3);
    let everywhere = f
        .detections()
        .site_visualization(None, T0, T0.plus_days(1), 86_400)
        .unwrap();
    assert_eq!(everywhere[0].detections.values().sum::<u64>(), 3);
    assert!(f
        .detections()
        .site_visualization(Some(SITE), T0.plus_days(1), T0.plus_days(2), 60)
        .unwrap()
        .is_empty());
}

/// Every bucket of a visualization as `(start, type, detection, count)`.
fn flat(
    buckets: &[srs_projections::models::detections::VisualBucket],
) -> Vec<(i64, SessionEventType, bool, u64)> {
    let mut out = Vec::new();
    for b in buckets {
        for (t, n) in &b.events {
            out.push((b.start, *t, false, *n));
        }
        for (t, n) in &b.detections {
            out.push((b.start, *t, true, *n));
        }
    }
    out.sort();
    out
}

#[test]
fn the_visualization_counts_across_many_seconds_minutes_and_hours_like_a_plain_count() {
    use std::collections::BTreeMap;
    // Two recordings of one site, a few minutes apart, with events spread
    // over more than an hour of session time at uneven offsets.
    let a = Rec::new(1);
    let b = Rec::new(7);
    let offsets_ms: Vec<u64> = vec![
        0, 999, 1_000, 59_999, 60_000, 299_000, 300_000, 301_500, 599_999, 600_000, 650_000,
        1_300_000, 3_599_000, 3_600_000, 3_700_000, 4_000_000,
    ];
    let types = [
        SessionEventType::AppStart,
        SessionEventType::WebBrowsing,
        SessionEventType::UsbMassStorage,
    ];
    let mut events = vec![a.started(), b.started()];
    // (recording, offset ms, type, detection)
    let mut truth: Vec<(Uuid, u64, SessionEventType, bool)> = Vec::new();
    let mut n = 0u128;
    for (i, offset) in offsets_ms.iter().enumerate() {
        for r in [&a, &b] {
            n += 1;
            let t = types[(i + n as usize) % types.len()];
            events.push(r.event(n, t, *offset, SessionEventData::None));
            truth.push((r.id, *offset, t, false));
            if i % 3 == 0 {
                events.push(r.detected(n, t, Severity::Medium, "rule", *offset));
                truth.push((r.id, *offset, t, true));
            }
        }
    }
    let f = Folded::given(events);
    let d = f.detections();
    for bucket in [1u64, 7, 60, 300, 3600] {
        let mut expected: BTreeMap<(i64, SessionEventType, bool), u64> = BTreeMap::new();
        for (r, offset, t, det) in &truth {
            if *r == a.id {
                let start = (offset / 1000 / bucket * bucket) as i64;
                *expected.entry((start, *t, *det)).or_default() += 1;
            }
        }
        let expected: Vec<_> = expected
            .into_iter()
            .map(|((s, t, d), n)| (s, t, d, n))
            .collect();
        assert_eq!(
            flat(&d.recording_visualization(a.id, bucket).unwrap()),
            expected,
            "recording, bucket {bucket}"
        );
    }
    // Windows that start and end inside minutes, chunks and hours.
    let windows = [
        (a.at, a.at.plus_secs(7200), 60),
        (a.at.plus_secs(61), a.at.plus_secs(4_001), 60),
        (a.at.plus_secs(299), a.at.plus_secs(3_650), 600),
        (a.at.plus_secs(-3_000), a.at.plus_secs(10_000), 3_600),
        (a.at.plus_secs(650), a.at.plus_secs(651), 60),
        (a.at.plus_secs(20_000), a.at.plus_secs(30_000), 60),
    ];
    for (from, to, bucket) in windows {
        let from_minute = from.as_secs().div_euclid(60) * 60;
        let mut expected: BTreeMap<(i64, SessionEventType, bool), u64> = BTreeMap::new();
        for (r, offset, t, det) in &truth {
            let start = if *r == a.id { a.at } else { b.at };
            let at = start.plus_micros(*offset as i64 * 1000);
            let minute = at.as_secs().div_euclid(60) * 60;
            if minute < from_minute || srs_domain::time::Timestamp::from_secs(minute) >= to {
                continue;
            }
            let s = from_minute + (minute - from_minute).div_euclid(bucket) * bucket;
            *expected.entry((s, *t, *det)).or_default() += 1;
        }
        let expected: Vec<_> = expected
            .into_iter()
            .map(|((s, t, d), n)| (s, t, d, n))
            .collect();
        for scope in [Some(SITE), None] {
            assert_eq!(
                flat(&d.site_visualization(scope, from, to, bucket).unwrap()),
                expected,
                "site {scope:?}, {from:?}..{to:?} by {bucket}"
            );
        }
    }
}

#[test]
fn the_dashboard_counts_per_site_and_overall() {
    let r1 = Rec::new(1);
    let r2 = Rec {
        user: "CORP\\bob".into(),
        ..Rec::new(2)
    };
    let r3 = Rec {
        site: SITE2,
        session: "s1".into(),
        ..Rec::new(3)
    };
    let f = Folded::given([
        server_connected(SERVER, SITE, SHA_A),
        server_connected(SERVER2, SITE2, SHA_B),
        DomainEvent::ServerWentOffline {
            server_id: SERVER2,
            site_id: SITE2,
            last_heartbeat: T0,
            at: T0,
        },
        r1.started(),
        r1.app_started(1, "cmd.exe", 1_000),
        r1.app_started(2, "CMD.exe", 2_000),
        r1.chunk(1, 1_000),
        r1.detected(
            1,
            SessionEventType::AppStart,
            Severity::High,
            "shell",
            1_000,
        ),
        r1.ended_after_secs(60),
        r2.started(),
        r2.chunk(1, 500),
        r3.started(),
        r3.ended_after_secs(60),
        r3.restricted("root", "hold", at_min(5)),
    ]);
    let q = |sites| DashboardQuery {
        sites,
        from: None,
        to: None,
        now: T0.plus_days(1),
        top: 5,
        sees_restricted: true,
    };
    let all = f.dashboard().view(&q(SiteScope::All)).unwrap();
    assert_eq!(
        (
            all.recordings_total,
            all.recordings_live,
            all.recordings_in_range
        ),
        (3, 1, 3)
    );
    assert_eq!(all.storage_bytes, 1_500);
    assert_eq!(
        all.top_users,
        vec![("corp\\alice".to_string(), 2), ("corp\\bob".to_string(), 1)]
    );
    assert_eq!(
        all.top_applications,
        vec![("desktop".to_string(), 3), ("cmd.exe".to_string(), 1)]
    );
    // One status enum: both servers are CONNECTED, one of them silent.
    assert_eq!(
        all.servers_by_status,
        vec![StatusCount {
            status: ServerStatus::Connected,
            count: 2,
            online: 1
        }]
    );
    assert_eq!(
        all.detections_by_type.get(&SessionEventType::AppStart),
        Some(&1)
    );
    assert_eq!(all.detections_by_severity.get(&Severity::High), Some(&1));
    assert_eq!(all.restricted_count, 1);
    assert_eq!(all.recordings_per_day.len(), 30, "30 days up to now");
    assert_eq!(
        all.recordings_per_day.iter().map(|d| d.count).sum::<u64>(),
        3
    );
    let site2 = f
        .dashboard()
        .view(&q(SiteScope::Sites(vec![SITE2])))
        .unwrap();
    assert_eq!(
        (
            site2.recordings_total,
            site2.restricted_count,
            site2.storage_bytes
        ),
        (1, 1, 0)
    );
    let both = f
        .dashboard()
        .view(&q(SiteScope::Sites(vec![SITE, SITE2])))
        .unwrap();
    assert_eq!(both.recordings_total, 3);
    assert_eq!(both.top_users, all.top_users);
}

#[test]
fn the_dashboard_top_lists_leave_out_deleted_recordings_and_restricted_ones_for_who_cannot_see_them(
) {
    let rec = |n: u128, user: &str, app: &str| Rec {
        user: user.into(),
        apps: vec![app.into()],
        ..Rec::new(n)
    };
    let (kept, secret, gone) = (
        rec(1, "CORP\\ann", "Excel"),
        rec(2, "CORP\\spy", "Tor"),
        rec(3, "CORP\\old", "Fax"),
    );
    let mut f = Folded::given([
        kept.started(),
        kept.ended_after_secs(60),
        secret.started(),
        secret.app_started(1, "keylogger.exe", 1_000),
        secret.ended_after_secs(60),
        secret.restricted("root", "investigation", at_min(5)),
        gone.started(),
        gone.ended_after_secs(60),
        gone.deleted(),
    ]);
    let view = |f: &Folded, sees_restricted| {
        f.dashboard()
            .view(&DashboardQuery {
                sites: SiteScope::All,
                from: None,
                to: None,
                now: T0.plus_days(1),
                top: 10,
                sees_restricted,
            })
            .unwrap()
    };
    let names = |list: &[(String, u64)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    // Who sees restricted recordings sees them in the lists; nobody sees
    // the deleted one there.
    let full = view(&f, true);
    assert_eq!(names(&full.top_users), ["corp\\ann", "corp\\spy"]);
    assert_eq!(
        names(&full.top_applications),
        ["excel", "keylogger.exe", "tor"]
    );
    // An AUDITOR or VIEWER: neither the restricted nor the deleted one.
    let viewer = view(&f, false);
    assert_eq!(names(&viewer.top_users), ["corp\\ann"]);
    assert_eq!(names(&viewer.top_applications), ["excel"]);
    // The counts that name nobody are the same for both.
    assert_eq!(
        (
            viewer.recordings_total,
            viewer.restricted_count,
            viewer.deleted_count
        ),
        (2, 1, 1)
    );
    // Lifting the restriction brings it back; deleting it takes it out for all.
    f.apply(
        admin(),
        [DomainEvent::RecordingRestrictionRemoved {
            recording_id: secret.id,
            site_id: SITE,
            reason: "closed".into(),
            by: "root".into(),
            at: at_min(30),
        }],
    );
    assert_eq!(
        names(&view(&f, false).top_users),
        ["corp\\ann", "corp\\spy"]
    );
    f.apply(admin(), [secret.deleted()]);
    for sees_restricted in [true, false] {
        let after = view(&f, sees_restricted);
        assert_eq!(names(&after.top_users), ["corp\\ann"]);
        assert_eq!(names(&after.top_applications), ["excel"]);
    }
}

#[test]
fn the_dashboard_counts_what_retention_will_archive_and_delete() {
    let old = Rec {
        session: "x".into(),
        ..Rec::new(1)
    };
    let old_restricted = Rec {
        session: "y".into(),
        ..Rec::new(2)
    };
    let young = Rec {
        session: "z".into(),
        ..Rec::new(3)
    };
    let f = Folded::given([
        DomainEvent::RetentionPolicySet {
            site_id: SITE,
            policy: RetentionPolicy {
                archive_after_days: Some(2),
                delete_after_days: Some(10),
                run_at: TimeOfDay { hour: 1, minute: 0 },
                exclude_restricted: true,
            },
            at: T0,
        },
        old.started(),
        old.ended_after_secs(1),
        old_restricted.started(),
        old_restricted.ended_after_secs(1),
        old_restricted.restricted("root", "hold", T0),
        young.started(),
    ]);
    let d = f.dashboard();
    assert_eq!(d.pending(SITE, T0.plus_days(1)).unwrap(), (0, 0));
    assert_eq!(d.pending(SITE, T0.plus_days(3)).unwrap(), (1, 0));
    assert_eq!(d.pending(SITE, T0.plus_days(11)).unwrap(), (0, 1));
    assert_eq!(d.pending(SITE2, T0.plus_days(11)).unwrap(), (0, 0));
    let view = d
        .view(&DashboardQuery {
            sites: SiteScope::All,
            from: None,
            to: None,
            now: T0.plus_days(3),
            top: 3,
            sees_restricted: true,
        })
        .unwrap();
    assert_eq!((view.pending_archive, view.pending_delete), (1, 0));
}

#[test]
fn servers_show_status_liveness_settings_version_and_install_progress() {
    let installed = Uuid::from_u128(0x1);
    let settings = ServerSettings {
        max_file_size_mb: 100,
        ..Default::default()
    };
    let f = Folded::given([
        DomainEvent::SiteCreated {
            site_id: SITE,
            name: "HQ".into(),
            at: T0,
        },
        DomainEvent::SiteRenamed {
            site_id: SITE,
            name: "Head office".into(),
            previous_name: "HQ".into(),
            at: T0,
        },
        server_connected(SERVER, SITE, SHA_A),
        DomainEvent::ServerSettingsChanged {
            server_id: SERVER,
            site_id: SITE,
            settings: settings.clone(),
            version: 1,
            at: T0,
        },
        DomainEvent::ServerWentOffline {
            server_id: SERVER,
            site_id: SITE,
            last_heartbeat: T0,
            at: at_min(5),
        },
        DomainEvent::ServerInstallRequested {
            server_id: installed,
            site_id: SITE,
            job_id: Uuid::from_u128(0x10b),
            host: "sr-02".into(),
            options: InstallOptions {
                name: None,
                version: None,
                deployment: Deployment::Cloud,
                extra: Default::default(),
            },
            credential_sha256: SHA_B.into(),
            at: T0,
        },
        DomainEvent::InstallProgressReported {
            server_id: installed,
            site_id: SITE,
            job_id: Uuid::from_u128(0x10b),
            step: InstallStep::Downloading,
            status: InstallStatus::InProgress,
            message: None,
            at: at_min(1),
        },
    ]);
    let s = f.servers();
    assert_eq!(s.sites().unwrap()[0].name, "Head office");
    let sr = s.server(SERVER).unwrap().unwrap();
    assert_eq!(
        (sr.status, sr.online, sr.settings_version),
        (ServerStatus::Connected, false, 1)
    );
    assert_eq!(sr.settings, settings);
    assert_eq!(sr.last_heartbeat, Some(T0));
    let job = s.server(installed).unwrap().unwrap();
    assert_eq!(job.status, ServerStatus::Installing);
    assert_eq!(job.install.as_ref().unwrap().step, InstallStep::Downloading);
    assert_eq!(job.install.unwrap().history.len(), 1);
    assert_eq!(s.servers(Some(SITE)).unwrap().len(), 2);
    assert!(s.servers(Some(SITE2)).unwrap().is_empty());
}

#[test]
fn policies_list_system_and_site_policies_with_the_active_one_per_kind() {
    let p = Uuid::from_u128(0x9011);
    let body = PolicyBody::Recording(RecordingPolicyBody {
        rules: vec![],
        fallback: RecordingAction::RecordEventsOnly,
        fallback_notify: false,
    });
    let f = Folded::given([
        DomainEvent::PolicyCreated {
            policy_id: p,
            site_id: SITE,
            kind: PolicyKind::Recording,
            name: "Mine".into(),
            body: body.clone(),
            at: T0,
        },
        DomainEvent::PolicyUpdated {
            policy_id: p,
            site_id: SITE,
            kind: PolicyKind::Recording,
            name: "Mine v2".into(),
            body,
            at: T0,
        },
        DomainEvent::PolicyActivated {
            site_id: SITE,
            kind: PolicyKind::Recording,
            policy_id: p,
            policy_name: "Mine v2".into(),
            previous_policy_id: default_policy(PolicyKind::Recording),
            at: T0,
        },
    ]);
    let site = f.policies().site(SITE).unwrap();
    assert_eq!(site.recording.active.name, "Mine v2");
    assert!(site.recording.all.iter().any(|r| r.system));
    assert_eq!(site.recording.all.last().unwrap().id, p);
    assert_eq!(
        site.event_detection.active.id,
        default_policy(PolicyKind::EventDetection)
    );
    assert_eq!(
        f.policies().site(SITE2).unwrap().recording.active.id,
        default_policy(PolicyKind::Recording)
    );
    assert_eq!(
        f.policies().policy(p).unwrap().unwrap().version,
        2,
        "the policy stream's version"
    );
}

#[test]
fn comments_are_added_and_deleted() {
    let r = Rec::new(1);
    let c = Uuid::from_u128(0xc0);
    let mut f = Folded::given([
        r.started(),
        r.commented(c, "look here"),
        r.commented(Uuid::from_u128(0xc1), "and here"),
    ]);
    assert_eq!(f.comments().for_recording(r.id).unwrap().len(), 2);
    assert_eq!(f.comments().get(c).unwrap().unwrap().text, "look here");
    f.apply(
        admin(),
        [DomainEvent::CommentDeleted {
            comment_id: c,
            recording_id: r.id,
            site_id: SITE,
            by: "root".into(),
            at: T0,
        }],
    );
    assert_eq!(f.comments().for_recording(r.id).unwrap().len(), 1);
    assert!(f.comments().get(c).unwrap().is_none());
    assert_eq!(f.catalogue().get(r.id).unwrap().unwrap().comment_count, 1);
}

#[test]
fn the_audit_trail_holds_admin_actions_filterable_by_category_actor_and_time() {
    let r = Rec::new(1);
    let mut f = Folded::given([DomainEvent::SiteCreated {
        site_id: SITE,
        name: "HQ".into(),
        at: T0,
    }]);
    f.apply(
        Actor::Agent { server_id: SERVER },
        [r.started(), r.ended_after_secs(1)],
    );
    f.apply(
        Actor::Principal {
            token_id: Uuid::from_u128(2),
            name: "Pat".into(),
        },
        [r.restricted("Pat", "hold", T0)],
    );
    let a = f.audit();
    let all = a.search(&AuditFilter::default(), None, None).unwrap();
    let actions: Vec<&str> = all.items.iter().map(|(_, r)| r.action.as_str()).collect();
    assert_eq!(
        actions,
        vec!["recording.restricted", "recording.started", "site.created"]
    );
    let access = a
        .search(
            &AuditFilter {
                categories: vec![AuditCategory::Access],
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(access.items.len(), 1);
    let by_pat = a
        .search(
            &AuditFilter {
                actor: Some("pat".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(by_pat.items[0].1.target, format!("recording:{}", r.id));
    let by_label = a
        .search(
            &AuditFilter {
                actor: Some("principal:root".into()),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(by_label.items.len(), 1);
    let early = a
        .search(
            &AuditFilter {
                to: Some(T0.plus_secs(2)),
                ..Default::default()
            },
            None,
            None,
        )
        .unwrap();
    assert_eq!(early.items.len(), 1);
    let page = a.search(&AuditFilter::default(), Some(2), None).unwrap();
    let rest = a
        .search(&AuditFilter::default(), Some(2), page.end_cursor.as_deref())
        .unwrap();
    assert_eq!(
        (page.has_next_page, rest.items.len(), rest.has_next_page),
        (true, 1, false)
    );
}

#[test]
fn tokens_and_agent_credentials_authenticate_by_hash_until_revoked() {
    let t = Uuid::from_u128(0x70c);
    let mut f = Folded::given([
        DomainEvent::TokenIssued {
            token_id: t,
            name: "ann".into(),
            role: Role::Auditor,
            site_ids: [SITE].into(),
            groups: vec!["g".into()],
            secret_sha256: SHA_A.into(),
            at: T0,
        },
        server_connected(SERVER, SITE, SHA_B),
    ]);
    let token = f.tokens().authenticate(SHA_A).unwrap().expect("the token");
    assert_eq!(token.principal().unwrap().role, Role::Auditor);
    let agent = f.tokens().authenticate(SHA_B).unwrap().expect("the agent");
    let principal = agent.principal().unwrap();
    assert_eq!(principal.server_id, Some(SERVER));
    assert_eq!(
        principal.token_id, SERVER,
        "a server's first credential has its id"
    );
    assert_eq!(principal.role, Role::Agent);
    assert!(f.tokens().authenticate("00").unwrap().is_none());
    assert!(!f.tokens().has_admin(T0).unwrap());
    f.apply(
        admin(),
        [
            DomainEvent::TokenRevoked {
                token_id: t,
                name: "ann".into(),
                at: T0,
            },
            DomainEvent::ServerDisconnected {
                server_id: SERVER,
                site_id: SITE,
                at: T0,
            },
        ],
    );
    assert!(f.tokens().authenticate(SHA_A).unwrap().is_none());
    assert!(f.tokens().authenticate(SHA_B).unwrap().is_none());
    // Both stay listed, revoked.
    let rows = f.tokens().tokens().unwrap();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.revoked_at == Some(T0)));
}

#[test]
fn rotations_revoke_the_old_row_and_add_the_successor_in_one_commit() {
    const SHA_C: &str = "cc00000000000000000000000000000000000000000000000000000000000003";
    const SHA_D: &str = "dd00000000000000000000000000000000000000000000000000000000000004";
    let t = Uuid::from_u128(0x70c);
    let successor = Uuid::from_u128(0x70d);
    let agent_successor = Uuid::from_u128(0x70e);
    let mut f = Folded::given([
        DomainEvent::TokenIssued {
            token_id: t,
            name: "ann".into(),
            role: Role::Admin,
            site_ids: [].into(),
            groups: vec![],
            secret_sha256: SHA_A.into(),
            at: T0,
        },
        DomainEvent::TokenExpirySet {
            token_id: t,
            expires_at: T0.plus_days(2),
            at: T0,
        },
        server_connected(SERVER, SITE, SHA_B),
    ]);
    let now = T0.plus_days(1);
    assert!(f.tokens().has_admin(now).unwrap());
    assert!(!f.tokens().has_admin(T0.plus_days(2)).unwrap(), "expired");
    f.apply(
        admin(),
        [
            DomainEvent::TokenRotated {
                token_id: t,
                new_token_id: successor,
                name: "ann".into(),
                role: Role::Admin,
                site_ids: [].into(),
                groups: vec![],
                secret_sha256: SHA_C.into(),
                expires_at: Some(T0.plus_days(30)),
                at: now,
            },
            DomainEvent::AgentTokenRotated {
                server_id: SERVER,
                site_id: SITE,
                token_id: agent_successor,
                previous_token_id: SERVER,
                credential_sha256: SHA_D.into(),
                at: now,
            },
        ],
    );
    let tokens = f.tokens();
    assert!(tokens.authenticate(SHA_A).unwrap().is_none());
    assert!(tokens.authenticate(SHA_B).unwrap().is_none());
    let new = tokens.authenticate(SHA_C).unwrap().expect("the successor");
    assert_eq!((new.id, new.rotated_from), (successor, Some(t)));
    assert_eq!(new.expires_at, Some(T0.plus_days(30)));
    assert_eq!(new.issued_by, "principal:root");
    assert_eq!(new.issued_by_token, Some(Uuid::from_u128(1)));
    let agent = tokens
        .authenticate(SHA_D)
        .unwrap()
        .expect("the new agent credential");
    assert_eq!(agent.principal().unwrap().token_id, agent_successor);
    assert_eq!(
        tokens.agent_token_id(SERVER).unwrap(),
        Some(agent_successor)
    );
    let old = tokens.token(t).unwrap().unwrap();
    assert_eq!(
        (old.revoked_at, old.replaced_by),
        (Some(now), Some(successor))
    );
    // The listing's filters.
    let listed = |filter: TokenFilter| -> Vec<Uuid> {
        tokens
            .list(&filter, now)
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(listed(TokenFilter::default()).len(), 4);
    assert_eq!(
        listed(TokenFilter {
            revoked: Some(false),
            ..Default::default()
        }),
        vec![successor, agent_successor]
    );
    assert_eq!(
        listed(TokenFilter {
            server_id: Some(SERVER),
            revoked: Some(false),
            ..Default::default()
        }),
        vec![agent_successor]
    );
    assert_eq!(
        listed(TokenFilter {
            role: Some(Role::Admin),
            name: Some("AN".into()),
            ..Default::default()
        }),
        vec![t, successor]
    );
    assert_eq!(
        listed(TokenFilter {
            site_id: Some(Uuid::from_u128(0xe15e)),
            ..Default::default()
        }),
        vec![t, successor],
        "tokens of all sites act on every site; the agent only on its own"
    );
    // Disconnecting the server revokes its current credential.
    f.apply(
        admin(),
        [DomainEvent::ServerDisconnected {
            server_id: SERVER,
            site_id: SITE,
            at: now,
        }],
    );
    assert!(f.tokens().authenticate(SHA_D).unwrap().is_none());
}

#[test]
fn the_dashboard_is_the_same_whatever_the_batches() {
    let recs: Vec<Rec> = (1..=5)
        .map(|n| Rec {
            user: ["CORP\\alice", "CORP\\bob"][n as usize % 2].into(),
            ..Rec::new(n)
        })
        .collect();
    let events = || {
        recs.iter()
            .flat_map(|r| [r.started(), r.app_started(1, "cmd.exe", 1_000)])
            .collect::<Vec<_>>()
    };
    let mut one_by_one = Folded::new();
    for e in events() {
        one_by_one.apply(admin(), [e]);
    }
    let at_once = Folded::given(events());
    let dump = |f: &Folded| srs_projections::dump(&f.tree("dashboard")).unwrap();
    assert_eq!(dump(&one_by_one), dump(&at_once));
    let view = one_by_one
        .dashboard()
        .view(&DashboardQuery {
            sites: SiteScope::All,
            from: None,
            to: None,
            now: T0.plus_days(1),
            top: 5,
            sees_restricted: true,
        })
        .unwrap();
    assert_eq!(
        view.top_users,
        vec![("corp\\bob".to_string(), 3), ("corp\\alice".to_string(), 2)]
    );
    assert_eq!(
        view.top_applications,
        vec![("cmd.exe".to_string(), 5), ("desktop".to_string(), 5)]
    );
}

fn range(
    from: srs_domain::time::Timestamp,
    to: srs_domain::time::Timestamp,
    sees_restricted: bool,
) -> DashboardQuery {
    DashboardQuery {
        sites: SiteScope::All,
        from: Some(from),
        to: Some(to),
        now: to.plus_days(30),
        top: 10,
        sees_restricted,
    }
}

#[test]
fn the_dashboard_counts_by_session_time_not_ingestion_time() {
    // A session of yesterday, started at 23:00, ingested today: its
    // detection 2 h into the session falls on today.
    let yesterday = T0.plus_days(-1);
    let late = Rec {
        at: yesterday.plus_secs(23 * 3_600),
        ..Rec::new(1)
    };
    let f = Folded::given([
        late.started(),
        late.detected(
            1,
            SessionEventType::AppStart,
            Severity::High,
            "shell",
            60_000,
        ),
        late.detected(
            2,
            SessionEventType::Idle,
            Severity::Low,
            "idle",
            2 * 3_600_000,
        ),
        late.ended_after_secs(3 * 3_600),
    ]);
    let d = f.dashboard();
    let day_before = d
        .view(&range(yesterday.plus_days(-1), yesterday, true))
        .unwrap();
    assert_eq!(
        (
            day_before.recordings_in_range,
            day_before.detections_in_range
        ),
        (0, 0)
    );
    let first = d.view(&range(yesterday, T0, true)).unwrap();
    assert_eq!(
        (first.recordings_in_range, first.detections_in_range),
        (1, 1)
    );
    assert_eq!(
        first.detections_by_type.get(&SessionEventType::AppStart),
        Some(&1)
    );
    assert_eq!(first.detections_by_type.get(&SessionEventType::Idle), None);
    assert_eq!(first.top_alerts, vec![("shell".to_string(), 1)]);
    assert_eq!(
        first
            .detections_per_day
            .iter()
            .map(|d| d.count)
            .collect::<Vec<_>>(),
        vec![1]
    );
    let second = d.view(&range(T0, T0.plus_days(1), true)).unwrap();
    assert_eq!(
        (second.recordings_in_range, second.detections_in_range),
        (0, 1)
    );
    assert_eq!(second.top_users, vec![]);
    assert_eq!(second.top_alerts, vec![("idle".to_string(), 1)]);
    assert_eq!(
        second.top_risky_users,
        vec![("corp\\alice".to_string(), risk_weight(Severity::Low))]
    );
    let both = d.view(&range(yesterday, T0.plus_days(1), true)).unwrap();
    assert_eq!((both.recordings_in_range, both.detections_in_range), (1, 2));
    assert_eq!(both.detections_total, 2);
}

#[test]
fn every_top_list_honours_the_range_and_risk_weighs_severity() {
    let day1 = Rec {
        user: "CORP\\ann".into(),
        host: "VDA-A".into(),
        dg: Some("Finance".into()),
        apps: vec!["Excel".into()],
        ..Rec::new(1)
    };
    let day2 = |n: u128, user: &str| Rec {
        user: user.into(),
        host: "VDA-B".into(),
        dg: Some("Trading".into()),
        apps: vec!["Word".into()],
        at: T0.plus_days(1).plus_secs(n as i64 * 60),
        ..Rec::new(n)
    };
    let (bob, carl) = (day2(2, "CORP\\bob"), day2(3, "CORP\\carl"));
    let f = Folded::given([
        day1.started(),
        day1.detected(
            1,
            SessionEventType::UsbMassStorage,
            Severity::Critical,
            "usb",
            1_000,
        ),
        bob.started(),
        bob.app_started(2, "regedit.exe", 500),
        bob.detected(
            2,
            SessionEventType::AppStart,
            Severity::High,
            "regedit",
            500,
        ),
        carl.started(),
        carl.detected(
            3,
            SessionEventType::WebBrowsing,
            Severity::Low,
            "web",
            1_000,
        ),
        carl.detected(
            4,
            SessionEventType::WebBrowsing,
            Severity::Low,
            "web",
            2_000,
        ),
        carl.restricted("root", "case", T0.plus_days(1)),
    ]);
    let d = f.dashboard();
    let first = d.view(&range(T0, T0.plus_days(1), true)).unwrap();
    assert_eq!(first.top_users, vec![("corp\\ann".to_string(), 1)]);
    assert_eq!(first.top_applications, vec![("excel".to_string(), 1)]);
    assert_eq!(first.top_hosts, vec![("vda-a".to_string(), 1)]);
    assert_eq!(first.top_delivery_groups, vec![("finance".to_string(), 1)]);
    assert_eq!(first.top_risky_users, vec![("corp\\ann".to_string(), 16)]);
    assert_eq!(first.top_alerts, vec![("usb".to_string(), 1)]);
    let second = d
        .view(&range(T0.plus_days(1), T0.plus_days(2), true))
        .unwrap();
    assert_eq!(
        second.top_users,
        vec![("corp\\bob".to_string(), 1), ("corp\\carl".to_string(), 1)]
    );
    assert_eq!(
        second.top_applications,
        vec![("word".to_string(), 2), ("regedit.exe".to_string(), 1)]
    );
    assert_eq!(second.top_hosts, vec![("vda-b".to_string(), 2)]);
    assert_eq!(second.top_delivery_groups, vec![("trading".to_string(), 2)]);
    // HIGH (8) outweighs two LOW (2 + 2).
    assert_eq!(
        second.top_risky_users,
        vec![("corp\\bob".to_string(), 8), ("corp\\carl".to_string(), 4)]
    );
    assert_eq!(
        second.top_alerts,
        vec![("web".to_string(), 2), ("regedit".to_string(), 1)]
    );
    assert_eq!(second.recordings_by_mode.values().sum::<u64>(), 2);
    // Who does not see restricted recordings does not see carl in lists.
    let viewer = d
        .view(&range(T0.plus_days(1), T0.plus_days(2), false))
        .unwrap();
    assert_eq!(viewer.top_users, vec![("corp\\bob".to_string(), 1)]);
    assert_eq!(viewer.top_risky_users, vec![("corp\\bob".to_string(), 8)]);
    // Rules name nobody: the same for every role.
    assert_eq!(viewer.top_alerts, second.top_alerts);
    let server = d
        .server_figures(
            SERVER,
            T0.plus_days(1).day_number(),
            T0.plus_days(1).day_number(),
        )
        .unwrap();
    assert_eq!(server.recordings_in_range, 2);
}

fn hold_placed(n: u128, site_id: Uuid, scope: HoldScope) -> DomainEvent {
    DomainEvent::LegalHoldPlaced {
        hold_id: Uuid::from_u128(0x401d_0000 + n),
        site_id,
        scope,
        reason: format!("case {n}"),
        by: "root".into(),
        at: T0,
    }
}

#[test]
fn legal_holds_are_listed_by_site_and_state_and_say_what_they_cover() {
    let alice = Rec::new(1);
    let bob = Rec {
        user: "CORP\\bob".into(),
        ..Rec::new(2)
    };
    let elsewhere = Rec {
        site: SITE2,
        ..Rec::new(3)
    };
    let hold = |n: u128| Uuid::from_u128(0x401d_0000 + n);
    let mut f = Folded::given([
        alice.started(),
        bob.started(),
        elsewhere.started(),
        hold_placed(
            1,
            SITE,
            HoldScope::Recordings {
                recording_ids: vec![bob.id],
            },
        ),
        hold_placed(
            2,
            SITE,
            HoldScope::Users {
                users: vec!["alice".into()],
            },
        ),
        hold_placed(3, SITE2, HoldScope::Site),
    ]);
    let ids = |rows: Vec<srs_projections::models::holds::HoldRow>| -> Vec<Uuid> {
        rows.iter().map(|r| r.hold.id).collect()
    };
    let holds = f.holds();
    assert_eq!(
        ids(holds.list(None, None).unwrap()),
        [hold(1), hold(2), hold(3)]
    );
    assert_eq!(
        ids(holds.list(Some(SITE), None).unwrap()),
        [hold(1), hold(2)]
    );
    let facts = |f: &Folded, r: &Rec| f.catalogue().get(r.id).unwrap().unwrap().facts();
    assert_eq!(ids(holds.holding(&facts(&f, &alice)).unwrap()), [hold(2)]);
    assert_eq!(ids(holds.holding(&facts(&f, &bob)).unwrap()), [hold(1)]);
    assert_eq!(
        ids(holds.holding(&facts(&f, &elsewhere)).unwrap()),
        [hold(3)]
    );

    f.apply(
        admin(),
        [DomainEvent::LegalHoldReleased {
            hold_id: hold(2),
            site_id: SITE,
            scope: HoldScope::Users {
                users: vec!["alice".into()],
            },
            reason: Some("closed".into()),
            by: "root".into(),
            at: T0,
        }],
    );
    let holds = f.holds();
    assert_eq!(ids(holds.list(Some(SITE), Some(true)).unwrap()), [hold(1)]);
    let released = holds.list(Some(SITE), Some(false)).unwrap();
    assert_eq!(ids(released.clone()), [hold(2)]);
    assert_eq!(released[0].released_position, Some(7));
    assert_eq!(
        released[0].hold.released.as_ref().map(|r| r.by.as_str()),
        Some("root")
    );
    assert!(holds.holding(&facts(&f, &alice)).unwrap().is_empty());
    // A recording started after a site hold is covered by it.
    let later = Rec {
        site: SITE2,
        ..Rec::new(9)
    };
    f.apply(admin(), [later.started()]);
    assert_eq!(
        ids(f.holds().holding(&facts(&f, &later)).unwrap()),
        [hold(3)]
    );
}

#[test]
fn a_retention_run_shows_what_legal_holds_kept() {
    let set = DomainEvent::RetentionPolicySet {
        site_id: SITE,
        policy: RetentionPolicy {
            archive_after_days: None,
            delete_after_days: Some(1),
            run_at: TimeOfDay { hour: 2, minute: 0 },
            exclude_restricted: false,
        },
        at: T0,
    };
    let mut f = Folded::given([
        set,
        DomainEvent::RetentionRunCompleted {
            site_id: SITE,
            archived: 1,
            deleted: 2,
            ran_at: T0,
        },
    ]);
    let run = |f: &Folded| {
        f.policies()
            .retention(SITE)
            .unwrap()
            .unwrap()
            .last_run
            .unwrap()
    };
    assert_eq!((run(&f).deleted, run(&f).held), (2, 0));
    f.apply(
        admin(),
        [DomainEvent::RetentionRunCompletedV2 {
            site_id: SITE,
            archived: 0,
            deleted: 1,
            held: 4,
            ran_at: T0.plus_days(1),
        }],
    );
    assert_eq!((run(&f).deleted, run(&f).held), (1, 4));
}

#[test]
fn the_dashboard_in_memory_answers_what_the_tree_answers_and_only_what_is_asked() {
    use srs_projections::models::dashboard::DashboardParts;
    use srs_projections::models::{DashboardDays, DashboardReader};
    use std::sync::Arc;
    let users = ["CORP\\alice", "CORP\\bob", "CORP\\carol", "CORP\\dave"];
    let mut events = vec![
        server_connected(SERVER, SITE, SHA_A),
        server_connected(SERVER2, SITE2, SHA_B),
    ];
    for n in 1..=40u128 {
        let r = Rec {
            site: if n % 3 == 0 { SITE2 } else { SITE },
            server: if n % 3 == 0 { SERVER2 } else { SERVER },
            user: users[(n * 7 % 4) as usize].into(),
            host: format!("VDA-{}", n % 5),
            dg: Some(["Office", "Trading"][(n % 2) as usize].into()),
            apps: vec![format!("app{}", n % 6)],
            at: T0.plus_days(-((n % 9) as i64)),
            ..Rec::new(n)
        };
        events.push(r.started());
        events.push(r.app_started(1, &format!("tool{}", n % 4), 1_000));
        if n % 4 == 0 {
            events.push(r.detected(
                1,
                SessionEventType::AppStart,
                Severity::High,
                "shell",
                1_000,
            ));
        }
        if n % 5 == 0 {
            events.push(r.restricted("root", "hold", r.at.plus_days(0)));
        }
        if n % 2 == 0 {
            events.push(r.ended_after_secs(60));
        }
    }
    let f = Folded::given(events);
    let tree = f.tree("dashboard");
    let from_tree = DashboardReader::new(tree.clone());
    let from_memory = DashboardReader::with_days(tree, Arc::new(DashboardDays::new()));
    let scopes = [
        SiteScope::All,
        SiteScope::Sites(vec![SITE]),
        SiteScope::Sites(vec![SITE, SITE2]),
    ];
    for sites in scopes {
        for (from, to) in [
            (None, None),
            (Some(T0.plus_days(-5)), Some(T0.plus_days(-1))),
            (Some(T0.plus_days(-2)), Some(T0.plus_days(1))),
        ] {
            for (top, sees_restricted) in [(10, true), (2, false), (1, true)] {
                let q = DashboardQuery {
                    sites: sites.clone(),
                    from,
                    to,
                    now: T0.plus_days(1),
                    top,
                    sees_restricted,
                };
                let expected = from_tree.view(&q).unwrap();
                assert_eq!(from_memory.view(&q).unwrap(), expected, "{q:?}");
                assert!(!expected.top_users.is_empty(), "{q:?}");
                let only_users = DashboardParts {
                    top_lists: [true, false, false, false, false, false],
                    pending: false,
                };
                let partial = from_memory.view_of(&q, only_users).unwrap();
                assert_eq!(partial.top_users, expected.top_users);
                assert!(partial.top_applications.is_empty() && partial.top_hosts.is_empty());
                assert_eq!(partial.recordings_per_day, expected.recordings_per_day);
            }
        }
    }
}
