//! The catalogue's search against a brute-force filter over every row:
//! random recordings, random filters, every role and scope, both orders,
//! paged with cursors, with and without totals.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use srs_domain::model::{DomainEvent, PlaybackScope, Role, SessionEventType, Severity};
use srs_projections::models::catalogue::{
    Catalogue, CatalogueIndex, PagePlan, RecordingFilter, RecordingOrder, RecordingQuery,
    RecordingRow,
};
use srs_projections::models::Viewer;
use uuid::Uuid;

use crate::fixtures::*;

const USERS: [&str; 6] = [
    "CORP\\alice",
    "bob@corp.example",
    "carol",
    "CORP\\Bob",
    "dave",
    "OTHER\\alice",
];
const USER_FILTERS: [&str; 10] = [
    "zed",
    "ZED",
    "alice",
    "corp\\ALICE",
    "bob",
    "BOB@corp.example",
    "carol",
    "dave",
    "nobody",
    "other\\alice",
];
const HOSTS: [&str; 3] = ["VDA-01", "VDA-02", "vda-03"];
const IPS: [&str; 3] = ["10.0.0.1", "10.0.0.2", "10.0.1.1"];
const GROUPS: [&str; 2] = ["Trading", "Support"];
const APPS: [&str; 3] = ["Desktop", "Outlook", "Excel"];
const APP_FILTERS: [&str; 5] = ["desktop", "OUTLOOK", "excel", "cmd.exe", "none"];
const TEXTS: [&str; 7] = ["alice", "review", "vda-0", "10.0.0", "corp", "pc", "zzz"];
const MINUTES: i64 = 120;

fn pick<'a>(rng: &mut SmallRng, from: &[&'a str]) -> &'a str {
    from[rng.gen_range(0..from.len())]
}

fn some_of(rng: &mut SmallRng, from: &[&str]) -> Vec<String> {
    (0..rng.gen_range(1..=2))
        .map(|_| pick(rng, from).to_string())
        .collect()
}

fn severity(rng: &mut SmallRng) -> Severity {
    Severity::ALL[rng.gen_range(0..Severity::ALL.len())]
}

/// A catalogue of `n` random recordings and the comment texts of each.
fn random_catalogue(
    rng: &mut SmallRng,
    n: u128,
) -> (Folded, Vec<Uuid>, BTreeMap<Uuid, Vec<String>>) {
    let mut events = vec![DomainEvent::PlaybackPermissionGranted {
        permission_id: Uuid::from_u128(900),
        site_id: SITE,
        principal: "CORP\\Auditors".into(),
        scope: PlaybackScope {
            applications: vec!["cmd.exe".into()],
            ..Default::default()
        },
        at: T0,
    }];
    // ann sees SITE2 whole (and SITE through her group's narrow grant);
    // max holds a narrow and a whole-site grant on SITE.
    for (n, site_id, principal, scope) in [
        (901, SITE2, "ann", PlaybackScope::whole_site()),
        (902, SITE, "max", PlaybackScope::whole_site()),
        (
            903,
            SITE,
            "max",
            PlaybackScope {
                recorded_users: vec!["CORP\\zed".into()],
                ..Default::default()
            },
        ),
    ] {
        events.push(DomainEvent::PlaybackPermissionGranted {
            permission_id: Uuid::from_u128(n),
            site_id,
            principal: principal.into(),
            scope,
            at: T0,
        });
    }
    let mut ids = Vec::new();
    let mut comments: BTreeMap<Uuid, Vec<String>> = BTreeMap::new();
    let mut seq = 0u128;
    for i in 1..=n {
        let r = Rec {
            site: if rng.gen_bool(0.5) { SITE } else { SITE2 },
            server: if rng.gen_bool(0.5) { SERVER } else { SERVER2 },
            // A rare user: its few recordings lead the join and the
            // other constraints are probed per candidate.
            user: if rng.gen_bool(0.04) {
                "CORP\\zed".into()
            } else {
                pick(rng, &USERS).into()
            },
            host: pick(rng, &HOSTS).into(),
            ip: rng.gen_bool(0.8).then(|| pick(rng, &IPS).into()),
            client: rng.gen_bool(0.5).then(|| "ALICE-PC".into()),
            dg: rng.gen_bool(0.7).then(|| pick(rng, &GROUPS).into()),
            apps: (0..rng.gen_range(0..=2))
                .map(|_| pick(rng, &APPS).into())
                .collect(),
            // Few distinct start times: ties are ordered by id.
            at: at_min(rng.gen_range(0..MINUTES)),
            ..Rec::new(i)
        };
        ids.push(r.id);
        events.push(r.started());
        if rng.gen_bool(0.2) {
            seq += 1;
            events.push(r.app_started(seq, "cmd.exe", 1_000));
        }
        for _ in 0..rng.gen_range(0..=2) {
            if rng.gen_bool(0.3) {
                seq += 1;
                events.push(r.detected(
                    seq,
                    SessionEventType::AppStart,
                    severity(rng),
                    "rule",
                    2_000,
                ));
            }
        }
        if rng.gen_bool(0.15) {
            events.push(r.restricted("root", "case", r.at));
        }
        if rng.gen_bool(0.2) {
            seq += 1;
            let text = if rng.gen_bool(0.5) {
                "Needs REVIEW"
            } else {
                "fine"
            };
            events.push(r.commented(Uuid::from_u128(0xc000_0000 + seq), text));
            comments.entry(r.id).or_default().push(text.to_lowercase());
        }
        if rng.gen_bool(0.7) {
            events.push(r.ended_after_secs(rng.gen_range(0..1_200)));
            if rng.gen_bool(0.2) {
                events.push(r.archived());
            }
        }
        if rng.gen_bool(0.05) {
            events.push(r.deleted());
        }
    }
    (Folded::given(events), ids, comments)
}

fn random_filter(rng: &mut SmallRng) -> RecordingFilter {
    let mut f = RecordingFilter::default();
    let p = 0.25;
    if rng.gen_bool(p) {
        f.site_id = Some([SITE, SITE2, Uuid::from_u128(77)][rng.gen_range(0..3)]);
    }
    if rng.gen_bool(p) {
        f.server_id = Some(if rng.gen_bool(0.5) { SERVER } else { SERVER2 });
    }
    if rng.gen_bool(0.4) {
        f.users = some_of(rng, &USER_FILTERS);
    }
    if rng.gen_bool(p) {
        f.client_ips = some_of(rng, &IPS);
    }
    if rng.gen_bool(p) {
        f.hosts = some_of(rng, &["vda-01", "VDA-02", "VDA-03", "vda-09"]);
    }
    if rng.gen_bool(p) {
        f.applications = some_of(rng, &APP_FILTERS);
    }
    if rng.gen_bool(p) {
        f.delivery_groups = some_of(rng, &["trading", "SUPPORT", "none"]);
    }
    if rng.gen_bool(p) {
        f.started_after = Some(at_min(rng.gen_range(0..MINUTES)));
    }
    if rng.gen_bool(p) {
        f.started_before = Some(at_min(rng.gen_range(0..MINUTES)));
    }
    if rng.gen_bool(0.15) {
        f.min_duration_sec = Some(rng.gen_range(0..1_000));
    }
    if rng.gen_bool(0.15) {
        f.max_duration_sec = Some(rng.gen_range(0..1_200));
    }
    if rng.gen_bool(p) {
        f.live = Some(rng.gen_bool(0.5));
    }
    if rng.gen_bool(0.4) {
        f.has_detections = Some(rng.gen_bool(0.6));
    }
    if rng.gen_bool(p) {
        f.min_severity = Some(severity(rng));
    }
    if rng.gen_bool(p) {
        f.restricted = Some(rng.gen_bool(0.5));
    }
    if rng.gen_bool(0.1) {
        f.text = Some(pick(rng, &TEXTS).to_uppercase());
    }
    f
}

fn lower(s: &str) -> String {
    s.trim().to_lowercase()
}

fn without_domain(user: &str) -> &str {
    let user = user.rsplit('\\').next().unwrap_or(user);
    user.split('@').next().unwrap_or(user)
}

/// The filter's meaning, written out field by field.
fn brute_matches(f: &RecordingFilter, row: &RecordingRow, comments: &[String]) -> bool {
    let any = |list: &[String], value: Option<&str>| {
        list.is_empty() || value.is_some_and(|v| list.iter().any(|x| lower(x) == lower(v)))
    };
    let apps: Vec<String> = row.points.applications.iter().map(|a| lower(a)).collect();
    let text_ok = match f.text.as_deref().map(lower).filter(|t| !t.is_empty()) {
        None => true,
        Some(t) => {
            [
                Some(row.user.as_str()),
                row.domain.as_deref(),
                Some(row.host.as_str()),
                row.client_name.as_deref(),
                row.client_ip.as_deref(),
            ]
            .into_iter()
            .flatten()
            .any(|v| lower(v).contains(&t))
                || apps.iter().any(|a| a.contains(&t))
                || comments.iter().any(|c| c.contains(&t))
        }
    };
    !row.deleted()
        && f.site_id.is_none_or(|s| s == row.site_id)
        && f.server_id.is_none_or(|s| s == row.server_id)
        && (f.users.is_empty()
            || f.users.iter().any(|u| {
                lower(u) == lower(&row.user) || lower(u) == lower(without_domain(&row.user))
            }))
        && any(&f.client_ips, row.client_ip.as_deref())
        && any(&f.hosts, Some(&row.host))
        && (f.applications.is_empty() || f.applications.iter().any(|a| apps.contains(&lower(a))))
        && any(&f.delivery_groups, row.delivery_group.as_deref())
        && f.started_after.is_none_or(|t| row.started_at >= t)
        && f.started_before.is_none_or(|t| row.started_at < t)
        && f.min_duration_sec.is_none_or(|d| row.duration_sec() >= d)
        && f.max_duration_sec.is_none_or(|d| row.duration_sec() <= d)
        && f.live.is_none_or(|l| row.live() == l)
        && f.has_detections
            .is_none_or(|h| (row.points.detection_count > 0) == h)
        && f.min_severity
            .is_none_or(|m| row.max_severity.is_some_and(|s| s >= m))
        && f.restricted.is_none_or(|r| row.restricted() == r)
        && text_ok
}

fn viewers(f: &Folded) -> Vec<Viewer> {
    let mut out = Vec::new();
    for (role, sites, name) in [
        (Role::Admin, vec![], "ann"),
        (Role::Admin, vec![SITE2], "ann"),
        (Role::PrivilegedPlayer, vec![SITE], "ann"),
        (Role::PrivilegedPlayer, vec![], "ann"),
        (Role::Auditor, vec![], "ann"),
        (Role::Auditor, vec![SITE2], "ann"),
        (Role::Auditor, vec![], "max"),
        // No grant of its own: nothing.
        (Role::Auditor, vec![], "nobody"),
        (Role::Viewer, vec![], "ann"),
    ] {
        let mut p = principal(role, name);
        if name == "ann" {
            p.groups = vec!["corp\\auditors".into()];
        }
        p.site_ids = sites.into_iter().collect();
        out.push(f.access().viewer(&p).unwrap());
    }
    out
}

#[test]
fn search_lists_exactly_what_a_brute_force_filter_finds_in_order_on_every_page() {
    brute_force_search(PagePlan::Auto);
}

/// Both ways of taking a page (walking the order from the cursor, sorting
/// the matches) give the same pages, whatever the size of the match set.
#[test]
fn walking_the_order_and_sorting_the_matches_give_the_same_pages() {
    brute_force_search(PagePlan::Walk);
    brute_force_search(PagePlan::Sort);
}

fn brute_force_search(plan: PagePlan) {
    let mut rng = SmallRng::seed_from_u64(0x5e4c);
    let (f, ids, comments) = random_catalogue(&mut rng, 400);
    let catalogue = Catalogue::with_index(
        f.catalogue().tree().clone(),
        Arc::new(CatalogueIndex::with_plan(plan)),
    );
    let rows: Vec<RecordingRow> = ids
        .iter()
        .map(|id| catalogue.get(*id).unwrap().unwrap())
        .collect();
    let viewers = viewers(&f);
    let no_comments = Vec::new();
    let mut nonempty = 0;
    for case in 0..600 {
        let filter = random_filter(&mut rng);
        let viewer = &viewers[rng.gen_range(0..viewers.len())];
        let order = if rng.gen_bool(0.7) {
            RecordingOrder::NewestFirst
        } else {
            RecordingOrder::LongestFirst
        };
        let mut expected: Vec<&RecordingRow> = rows
            .iter()
            .filter(|r| {
                brute_matches(&filter, r, comments.get(&r.id).unwrap_or(&no_comments))
                    && !matches!(viewer.principal().role, Role::Viewer | Role::Agent)
                    && viewer.visibility(&r.facts()).is_visible()
            })
            .collect();
        expected.sort_by_key(|r| {
            let newest = (std::cmp::Reverse(r.started_at), r.id);
            match order {
                RecordingOrder::NewestFirst => (0, newest),
                RecordingOrder::LongestFirst => (u64::MAX - r.points.duration_ms, newest),
            }
        });
        let expected: Vec<Uuid> = expected.iter().map(|r| r.id).collect();
        if !expected.is_empty() {
            nonempty += 1;
        }
        let first = [1, 2, 3, 7, 50][rng.gen_range(0..5)];
        let mut got = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let with_total = rng.gen_bool(0.5);
            let page = catalogue
                .search(
                    viewer,
                    &RecordingQuery {
                        filter: filter.clone(),
                        order,
                        first: Some(first),
                        after: after.clone(),
                        with_total,
                    },
                )
                .unwrap();
            let page_no = pages;
            let ctx = || {
                format!(
                    "case {case}: {filter:?} {order:?} page {page_no} as {:?}",
                    viewer.principal()
                )
            };
            if with_total {
                assert_eq!(page.total_count, Some(expected.len() as u64), "{}", ctx());
            } else {
                assert_eq!(page.total_count, None, "{}", ctx());
            }
            assert!(page.items.len() <= first, "{}", ctx());
            for hit in &page.items {
                assert_eq!(
                    hit.visibility,
                    viewer.visibility(&hit.row.facts()),
                    "{}",
                    ctx()
                );
            }
            got.extend(page.items.iter().map(|h| h.row.id));
            pages += 1;
            assert!(
                pages <= expected.len() + 1,
                "{}: paging does not end",
                ctx()
            );
            if !page.has_next_page {
                break;
            }
            assert_eq!(
                page.items.len(),
                first,
                "{}: a short page claims more",
                ctx()
            );
            after = page.end_cursor.clone();
        }
        assert_eq!(got, expected, "case {case}: {filter:?} {order:?}");
    }
    // The random filters are not all trivially empty.
    assert!(nonempty > 200, "only {nonempty} filters matched anything");
}
