//! Permissions never widen on revoke: for random sequences of grants,
//! revokes, restrictions and their removal, what an AUDITOR sees (in a
//! catalogue search and recording by recording) after a revoke is a subset
//! of what it saw before; and it sees nothing a grant of its does not admit.

use std::collections::BTreeSet;

use proptest::prelude::*;
use srs_domain::model::{token_principal, DomainEvent, PlaybackScope, Principal, Role};
use srs_projections::models::catalogue::{RecordingFilter, RecordingQuery};
use uuid::Uuid;

use crate::fixtures::*;

/// What happens next.
#[derive(Clone, Debug)]
enum Op {
    /// A permission on site `site` (0, 1) to holder `holder`, scope `scope`.
    Grant {
        site: u8,
        holder: u8,
        scope: u8,
    },
    /// Revoke the `n`-th live permission (modulo how many there are).
    Revoke(usize),
    Restrict(usize),
    Unrestrict(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..2, 0u8..4, 0u8..5).prop_map(|(site, holder, scope)| Op::Grant { site, holder, scope }),
        3 => any::<usize>().prop_map(Op::Revoke),
        1 => any::<usize>().prop_map(Op::Restrict),
        1 => any::<usize>().prop_map(Op::Unrestrict),
    ]
}

/// The auditor under test: by name, by group and by token id.
fn ann() -> Principal {
    let mut p = principal(Role::Auditor, "ann");
    p.groups = vec!["CORP\\Auditors".into()];
    p
}

fn holder(n: u8) -> String {
    match n {
        0 => "ann".into(),
        1 => "CORP\\Auditors".into(),
        2 => token_principal(ann().token_id),
        // Somebody else's permission: never ann's.
        _ => "bob".into(),
    }
}

fn scope(n: u8) -> PlaybackScope {
    match n {
        0 => PlaybackScope::whole_site(),
        1 => PlaybackScope {
            recorded_users: vec!["CORP\\alice".into()],
            ..Default::default()
        },
        2 => PlaybackScope {
            applications: vec!["cmd*".into()],
            ..Default::default()
        },
        3 => PlaybackScope {
            hosts: vec!["VDA-02".into()],
            ..Default::default()
        },
        _ => PlaybackScope {
            server_ids: vec![SERVER2],
            recorded_users: vec!["bob@corp.example".into()],
            ..Default::default()
        },
    }
}

/// Eight recordings over two sites, two servers, users, hosts and apps.
fn recordings() -> Vec<Rec> {
    (0..8u128)
        .map(|n| Rec {
            site: if n % 2 == 0 { SITE } else { SITE2 },
            server: if n % 3 == 0 { SERVER } else { SERVER2 },
            user: if n % 4 < 2 {
                "CORP\\alice".into()
            } else {
                "bob@corp.example".into()
            },
            host: if n < 4 {
                "VDA-01".into()
            } else {
                "VDA-02".into()
            },
            apps: if n % 3 == 1 {
                vec!["cmd.exe".into()]
            } else {
                vec!["Outlook".into()]
            },
            ..Rec::new(n + 1)
        })
        .collect()
}

/// What ann sees: the search's answer, checked against asking recording by
/// recording.
fn seen(f: &Folded, all: &[Rec]) -> BTreeSet<Uuid> {
    let viewer = f.access().viewer(&ann()).unwrap();
    let page = f
        .catalogue()
        .search(
            &viewer,
            &RecordingQuery {
                filter: RecordingFilter::default(),
                first: Some(500),
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    let listed: BTreeSet<Uuid> = page.items.iter().map(|h| h.row.id).collect();
    let one_by_one: BTreeSet<Uuid> = all
        .iter()
        .filter(|r| f.catalogue().get_visible(&viewer, r.id).unwrap().is_some())
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, one_by_one, "the search and recording(id) agree");
    listed
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn revoking_a_permission_never_widens_what_an_auditor_sees(
        ops in proptest::collection::vec(op(), 1..40)
    ) {
        let all = recordings();
        let mut f = Folded::given(all.iter().map(Rec::started));
        prop_assert!(seen(&f, &all).is_empty(), "no permission, no recording");
        // Live permissions: (id, site, principal, scope).
        let mut live: Vec<(Uuid, Uuid, String, PlaybackScope)> = Vec::new();
        let mut restricted: BTreeSet<usize> = BTreeSet::new();
        let mut next = 0u128;
        for op in ops {
            let before = seen(&f, &all);
            match op {
                Op::Grant { site, holder: h, scope: s } => {
                    next += 1;
                    let permission_id = Uuid::from_u128(0x9000 + next);
                    let site_id = if site == 0 { SITE } else { SITE2 };
                    f.apply(admin(), [DomainEvent::PlaybackPermissionGranted {
                        permission_id,
                        site_id,
                        principal: holder(h),
                        scope: scope(s),
                        at: T0,
                    }]);
                    live.push((permission_id, site_id, holder(h), scope(s)));
                    prop_assert!(before.is_subset(&seen(&f, &all)), "a grant takes nothing away");
                }
                Op::Revoke(n) => {
                    if live.is_empty() {
                        continue;
                    }
                    let (permission_id, site_id, principal, _) = live.remove(n % live.len());
                    f.apply(admin(), [DomainEvent::PlaybackPermissionRevoked {
                        permission_id,
                        site_id,
                        principal,
                        at: T0,
                    }]);
                    let after = seen(&f, &all);
                    prop_assert!(
                        after.is_subset(&before),
                        "a revoke widened: {:?} -> {:?}", before, after
                    );
                }
                Op::Restrict(n) => {
                    let i = n % all.len();
                    if restricted.insert(i) {
                        f.apply(admin(), [all[i].restricted("root", "HR", T0)]);
                    }
                }
                Op::Unrestrict(n) => {
                    let i = n % all.len();
                    if restricted.remove(&i) {
                        f.apply(admin(), [DomainEvent::RecordingRestrictionRemoved {
                            recording_id: all[i].id,
                            site_id: all[i].site,
                            reason: "closed".into(),
                            by: "root".into(),
                            at: T0,
                        }]);
                    }
                }
            }
            // Exactly the unrestricted recordings one of ann's live
            // permissions admits.
            let ann_holds = |p: &str| p == "ann" || p == "CORP\\Auditors" || *p == token_principal(ann().token_id);
            let expected: BTreeSet<Uuid> = all
                .iter()
                .enumerate()
                .filter(|(i, r)| {
                    !restricted.contains(i)
                        && live.iter().any(|(_, site, p, s)| {
                            *site == r.site
                                && ann_holds(p)
                                && s.admits(&f.catalogue().get(r.id).unwrap().unwrap().facts())
                        })
                })
                .map(|(_, r)| r.id)
                .collect();
            prop_assert_eq!(seen(&f, &all), expected);
        }
    }
}
