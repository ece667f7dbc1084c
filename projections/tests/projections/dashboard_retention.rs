//! The dashboard's counts due for archive and delete are what the
//! domain's `due` picks over every part of the site's sessions, whatever
//! the history (parts started, ended, archived, restored, deleted,
//! restricted and unrestricted, in any order the write side allows), the
//! policy, `now` and the batches the events were folded in.

use std::collections::BTreeSet;
use std::sync::Arc;

use proptest::prelude::*;
use srs_domain::model::{
    due, DomainEvent, Due, Lifecycle, RetentionCandidate, RetentionPolicy, TimeOfDay,
};
use srs_domain::time::Timestamp;
use srs_projections::models::dashboard::{DashboardProjection, DashboardReader};
use srs_projections::store::{Db, Store};
use srs_projections::{apply_events, checkpoint_of};
use uuid::Uuid;

use crate::fixtures::*;

/// Recordings of the history: each belongs to one of the sessions.
const PARTS: usize = 8;
/// Sessions 0..3 are on `SERVER` of `SITE`, session 3 on `SERVER2` of `SITE2`.
const SESSIONS: usize = 4;
const HALF_DAY: i64 = 12 * 3_600;

#[derive(Clone, Copy, Debug)]
enum Action {
    Start,
    /// Ends it this many half days after T0.
    End(i64),
    Archive,
    Restore,
    Delete,
    Restrict,
    Unrestrict,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Start),
        3 => (0i64..140).prop_map(Action::End),
        2 => Just(Action::Archive),
        1 => Just(Action::Restore),
        1 => Just(Action::Delete),
        1 => Just(Action::Restrict),
        1 => Just(Action::Unrestrict),
    ]
}

fn policy() -> impl Strategy<Value = RetentionPolicy> {
    (
        prop::option::of(2u32..30),
        prop::option::of(1u32..60),
        any::<bool>(),
    )
        .prop_map(|(archive, delete, exclude_restricted)| RetentionPolicy {
            archive_after_days: archive,
            // Deleting comes after archiving.
            delete_after_days: delete.map(|d| d + archive.unwrap_or(0)),
            run_at: TimeOfDay { hour: 2, minute: 0 },
            exclude_restricted,
        })
}

/// A part as the write side knows it.
#[derive(Clone, Debug)]
struct Part {
    rec: Rec,
    lifecycle: Option<Lifecycle>,
    ended_at: Option<Timestamp>,
    restricted: bool,
}

/// The events of `steps` that the write side would allow, in order,
/// and the parts as they end up after each event.
fn history(sessions: &[usize], steps: &[(usize, Action)]) -> (Vec<DomainEvent>, Vec<Vec<Part>>) {
    let mut parts: Vec<Part> = sessions
        .iter()
        .enumerate()
        .map(|(n, &session)| {
            let (site, server) = if session == SESSIONS - 1 {
                (SITE2, SERVER2)
            } else {
                (SITE, SERVER)
            };
            Part {
                rec: Rec {
                    site,
                    server,
                    session: format!("s{session}"),
                    at: T0,
                    ..Rec::new(n as u128)
                },
                lifecycle: None,
                ended_at: None,
                restricted: false,
            }
        })
        .collect();
    let mut events = Vec::new();
    let mut states = Vec::new();
    for &(n, action) in steps {
        let p = &mut parts[n % PARTS];
        let event = match (action, p.lifecycle) {
            (Action::Start, None) => {
                p.lifecycle = Some(Lifecycle::Live);
                p.rec.started()
            }
            (Action::End(halves), Some(Lifecycle::Live)) => {
                p.lifecycle = Some(Lifecycle::Ended);
                let at = T0.plus_secs(halves * HALF_DAY);
                p.ended_at = Some(at);
                DomainEvent::RecordingEnded {
                    recording_id: p.rec.id,
                    site_id: p.rec.site,
                    server_id: p.rec.server,
                    ended_at: at,
                }
            }
            (Action::Archive, Some(Lifecycle::Ended)) => {
                p.lifecycle = Some(Lifecycle::Archived);
                p.rec.archived()
            }
            (Action::Restore, Some(Lifecycle::Archived)) => {
                p.lifecycle = Some(Lifecycle::Ended);
                DomainEvent::RecordingRestored {
                    recording_id: p.rec.id,
                    site_id: p.rec.site,
                    at: T0,
                }
            }
            (Action::Delete, Some(l)) if l != Lifecycle::Deleted => {
                p.lifecycle = Some(Lifecycle::Deleted);
                p.rec.deleted()
            }
            (Action::Restrict, Some(_)) if !p.restricted => {
                p.restricted = true;
                p.rec.restricted("root", "case", T0)
            }
            (Action::Unrestrict, Some(_)) if p.restricted => {
                p.restricted = false;
                DomainEvent::RecordingRestrictionRemoved {
                    recording_id: p.rec.id,
                    site_id: p.rec.site,
                    reason: "closed".into(),
                    by: "root".into(),
                    at: T0,
                }
            }
            _ => continue,
        };
        events.push(event);
        states.push(parts.clone());
    }
    (events, states)
}

/// What `due` picks for `site` over every started part of its sessions.
fn expected(parts: &[Part], site: Uuid, policy: &RetentionPolicy, now: Timestamp) -> Due {
    let candidates: Vec<RetentionCandidate> = parts
        .iter()
        .filter(|p| p.rec.site == site)
        .filter_map(|p| {
            Some(RetentionCandidate {
                recording_id: p.rec.id,
                server_id: p.rec.server,
                session_id: p.rec.session.clone(),
                lifecycle: p.lifecycle?,
                ended_at: p.ended_at,
                restricted: p.restricted,
            })
        })
        .collect();
    due(&candidates, policy, now)
}

/// The ids of a `Due`, each list in order.
fn ids(due: Due) -> (BTreeSet<Uuid>, BTreeSet<Uuid>) {
    (
        due.to_archive.into_iter().collect(),
        due.to_delete.into_iter().collect(),
    )
}

fn check(
    sessions: Vec<usize>,
    steps: Vec<(usize, Action)>,
    policy: RetentionPolicy,
    chunk: usize,
    nows: Vec<i64>,
) {
    let (events, states) = history(&sessions, &steps);
    let set = [SITE, SITE2].map(|site| DomainEvent::RetentionPolicySet {
        site_id: site,
        policy: policy.clone(),
        at: T0,
    });
    let db = Db::temporary().unwrap();
    let tree = Arc::new(db.open(DashboardProjection::NAME).unwrap());
    let projection = DashboardProjection::default();
    let mut position = 0;
    let first = envelopes(&mut position, &admin(), set);
    apply_events(&projection, &tree, 0, &first).unwrap();
    let all = envelopes(&mut position, &admin(), events);
    let dashboard = DashboardReader::new(tree.clone());
    for (i, batch) in all.chunks(chunk).enumerate() {
        let checkpoint = checkpoint_of(&tree).unwrap();
        let applied = apply_events(&projection, &tree, checkpoint, batch).unwrap();
        assert!(applied.stopped.is_none(), "{:?}", applied.stopped);
        let parts = &states[(i * chunk + batch.len()) - 1];
        for &halves in &nows {
            let now = T0.plus_secs(halves * HALF_DAY);
            for site in [SITE, SITE2] {
                let want = ids(expected(parts, site, &policy, now));
                let counted = dashboard.pending(site, now).unwrap();
                assert_eq!(
                    counted,
                    (want.0.len() as u64, want.1.len() as u64),
                    "site {site} at {now:?} under {policy:?}"
                );
                let listed = ids(dashboard.due(site, &policy, now).unwrap());
                assert_eq!(listed, want, "site {site} at {now:?} under {policy:?}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_counts_due_are_what_the_retention_rules_pick(
        sessions in prop::collection::vec(0..SESSIONS, PARTS),
        steps in prop::collection::vec((0..PARTS, action()), 0..60),
        policy in policy(),
        chunk in 1usize..12,
        nows in prop::collection::vec(0i64..300, 1..5),
    ) {
        check(sessions, steps, policy, chunk, nows);
    }
}
