//! The history index: every filter (each key alone and together) selects,
//! oldest first and from any position, exactly the events a scan of the
//! log selects; the counts say the same; a walk never stops short of a
//! matching event; applying in any batches, or twice, writes the same tree.

use std::sync::Arc;

use srs_domain::actor::Actor;
use srs_domain::log::{Envelope, Hash};
use srs_domain::model::DomainEvent;
use srs_domain::time::Timestamp;
use srs_projections::models::history::{History, HistoryProjection};
use srs_projections::models::HistoryQuery;
use srs_projections::store::{Db, Keyspace, Store, Tree};
use srs_projections::{apply_events, checkpoint_of, dump, Projection};
use uuid::Uuid;

use crate::fixtures::*;

/// A small deterministic generator (the same log every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn ann() -> Actor {
    Actor::Principal {
        token_id: Uuid::from_u128(2),
        name: "ann".into(),
    }
}

/// About 1,500 events: dense session events of a few recordings at two
/// sites, sparse site renames, playbacks by ann and token revocations (no
/// site), a long stretch of one recording alone, and a clock that goes
/// back a minute once.
fn log() -> Vec<Envelope<DomainEvent>> {
    let mut rng = Lcg(11);
    let recs: Vec<Rec> = (1..=6u128)
        .map(|n| Rec {
            site: if n % 2 == 0 { SITE2 } else { SITE },
            server: if n % 2 == 0 { SERVER2 } else { SERVER },
            ..Rec::new(n)
        })
        .collect();
    let mut out = Vec::new();
    let mut clock = T0.0;
    for position in 1..=1_500u64 {
        let pick = rng.next();
        let rec = if (600..900).contains(&position) {
            &recs[0]
        } else {
            &recs[pick as usize % recs.len()]
        };
        let agent = Actor::Agent {
            server_id: rec.server,
        };
        let (actor, payload) = match pick % 40 {
            _ if position <= 6 => (agent, recs[position as usize - 1].started()),
            0 => (
                Actor::Principal {
                    token_id: Uuid::from_u128(3),
                    name: "bob".into(),
                },
                DomainEvent::SiteRenamed {
                    site_id: SITE2,
                    name: format!("site {position}"),
                    previous_name: "site".into(),
                    at: T0,
                },
            ),
            1 | 2 => (
                ann(),
                DomainEvent::RecordingPlayed {
                    recording_id: rec.id,
                    site_id: rec.site,
                    by: "ann".into(),
                    kind: srs_domain::model::PlaybackKind::Play,
                    at: T0,
                },
            ),
            3 => (
                Actor::system("retention"),
                DomainEvent::TokenRevoked {
                    token_id: Uuid::from_u128(u128::from(position)),
                    name: "t".into(),
                    at: T0,
                },
            ),
            _ => (agent, rec.chunk(position, 10)),
        };
        let stream = match payload.recording_id() {
            Some(r) => format!("recording-{r}"),
            None => match payload.site_id() {
                Some(s) => format!("site-{s}"),
                None => "tokens".to_string(),
            },
        };
        clock += if position == 700 {
            -60_000_000
        } else {
            1_000_000
        };
        out.push(Envelope {
            position,
            stream,
            version: position,
            event_id: Uuid::from_u128(0xf000_0000 + u128::from(position)),
            recorded_at: Timestamp(clock),
            actor,
            correlation_id: Uuid::nil(),
            causation_id: None,
            payload,
            prev_hash: Hash::GENESIS,
            hash: Hash::GENESIS,
        });
    }
    out
}

/// `events` applied in batches of `batch` to a fresh tree of `db`.
fn indexed(db: &Db, name: &str, events: &[Envelope<DomainEvent>], batch: usize) -> Arc<Tree> {
    let tree = db.open(name).unwrap();
    for chunk in events.chunks(batch) {
        let checkpoint = checkpoint_of(&tree).unwrap();
        let applied = apply_events(&HistoryProjection, &tree, checkpoint, chunk).unwrap();
        assert!(applied.stopped.is_none());
    }
    Arc::new(tree)
}

/// The query applied to one event, written independently of the index
/// (exact in time).
fn selects(q: &HistoryQuery, e: &Envelope<DomainEvent>) -> bool {
    q.types
        .as_ref()
        .is_none_or(|t| t.iter().any(|t| t == e.payload.name()))
        && q.stream.as_deref().is_none_or(|s| s == e.stream)
        && q.actor.as_deref().is_none_or(|a| a == e.actor.label())
        && q.site.is_none_or(|s| e.payload.site_id() == Some(s))
        && q.recording
            .is_none_or(|r| e.payload.recording_id() == Some(r))
        && q.within_sites
            .as_ref()
            .is_none_or(|sites| e.payload.site_id().is_some_and(|s| sites.contains(&s)))
        && q.from.is_none_or(|t| e.recorded_at >= t)
        && q.to.is_none_or(|t| e.recorded_at < t)
}

fn queries(events: &[Envelope<DomainEvent>]) -> Vec<HistoryQuery> {
    let rec1 = Rec::new(1).id;
    let rec4 = Rec::new(4).id;
    let types = [
        None,
        Some(vec!["SiteRenamed".to_string()]),
        Some(vec![
            "RecordingPlayed".to_string(),
            "TokenRevoked".to_string(),
        ]),
        Some(vec!["SiteRenamed".to_string(), "SiteRenamed".to_string()]),
        Some(vec![]),
        Some(vec!["NoSuchEvent".to_string()]),
    ];
    let streams = [
        None,
        Some(format!("recording-{rec1}")),
        Some("tokens".to_string()),
        Some("recording".to_string()),
    ];
    let actors = [
        None,
        Some(ann().label()),
        Some(Actor::Agent { server_id: SERVER }.label()),
        Some("system:retention".to_string()),
    ];
    let places = [
        (None, None, None),
        (Some(SITE), None, None),
        (Some(SITE2), None, None),
        (None, Some(rec1), None),
        (None, Some(rec4), None),
        (Some(SITE), Some(rec4), None),
        (None, None, Some(vec![SITE2])),
        (None, None, Some(vec![SITE, SITE2])),
        (None, None, Some(vec![])),
    ];
    let at = |p: usize| events[p - 1].recorded_at;
    let times = [
        (None, None),
        (Some(at(650)), None),
        (None, Some(at(400))),
        (Some(at(300)), Some(at(720))),
    ];
    let mut all = Vec::new();
    for t in &types {
        for s in &streams {
            for a in &actors {
                for (site, recording, within) in &places {
                    for (from, to) in times {
                        all.push(HistoryQuery {
                            types: t.clone(),
                            stream: s.clone(),
                            actor: a.clone(),
                            site: *site,
                            recording: *recording,
                            within_sites: within.clone(),
                            from,
                            to,
                        });
                    }
                }
            }
        }
    }
    all
}

/// The positions a walk of the index selects from `from` to `to`, with the
/// events' time checked as a reader does.
fn walked(
    history: &History,
    q: &HistoryQuery,
    from: u64,
    to: u64,
    events: &[Envelope<DomainEvent>],
) -> Vec<u64> {
    history
        .positions(q, from, to)
        .unwrap()
        .map(|p| p.unwrap())
        .filter(|p| {
            let e = &events[*p as usize - 1];
            q.from.is_none_or(|t| e.recorded_at >= t) && q.to.is_none_or(|t| e.recorded_at < t)
        })
        .collect()
}

#[test]
fn every_filter_and_combination_selects_what_a_scan_selects() {
    let events = log();
    let db = Db::temporary().unwrap();
    let history = History::new(indexed(&db, "history", &events, 200));
    assert_eq!(history.indexed().unwrap(), 1_500);
    let mut matched = 0;
    for q in queries(&events) {
        let expected: Vec<u64> = events
            .iter()
            .filter(|e| selects(&q, e))
            .map(|e| e.position)
            .collect();
        // What the index selects before the time check is a superset.
        let raw: Vec<u64> = history
            .positions(&q, 1, u64::MAX)
            .unwrap()
            .map(|p| p.unwrap())
            .collect();
        assert!(
            expected.iter().all(|p| raw.contains(p)),
            "{q:?} misses events"
        );
        assert!(raw.windows(2).all(|w| w[0] < w[1]), "{q:?} in order");
        if q.from.is_none() && q.to.is_none() {
            assert_eq!(raw, expected, "{q:?}");
        }
        assert_eq!(
            walked(&history, &q, 1, u64::MAX, &events),
            expected,
            "{q:?}"
        );
        // From any position (a cursor), to any position (`toPosition`).
        for (from, to) in [
            (2, 1_500),
            (255, 257),
            (256, 900),
            (513, 1_499),
            (777, 5_000),
            (1_501, 2_000),
        ] {
            let part: Vec<u64> = expected
                .iter()
                .copied()
                .filter(|p| (from..=to).contains(p))
                .collect();
            assert_eq!(
                walked(&history, &q, from, to, &events),
                part,
                "{q:?} {from}..={to}"
            );
        }
        if let Some(n) = history.count(&q).unwrap() {
            assert_eq!(n, expected.len() as u64, "count of {q:?}");
        }
        matched += usize::from(!expected.is_empty());
    }
    // The queries are not vacuous.
    assert!(matched > 200, "{matched} queries match events");
    // The counts answer single filters.
    let one_type = HistoryQuery {
        types: Some(vec!["SiteRenamed".into()]),
        ..HistoryQuery::default()
    };
    let renames = events.iter().filter(|e| selects(&one_type, e)).count() as u64;
    assert!(renames > 10);
    assert_eq!(history.count(&one_type).unwrap(), Some(renames));
    assert_eq!(
        history.count(&HistoryQuery::default()).unwrap(),
        Some(1_500)
    );
}

/// Pages of `size` from the index as the `history` resolver cuts them: a
/// page is the next `size` positions after the cursor, with another page
/// when one more follows; none is empty but the last, and no page is
/// short while another follows.
#[test]
fn pages_are_full_until_the_last_and_never_empty_with_a_next_page() {
    let events = log();
    let db = Db::temporary().unwrap();
    let history = History::new(indexed(&db, "history", &events, 500));
    for q in queries(&events).into_iter().step_by(7) {
        let expected: Vec<u64> = walked(&history, &q, 1, u64::MAX, &events);
        for size in [1usize, 2, 50] {
            let mut after = 0u64;
            let mut seen: Vec<u64> = Vec::new();
            loop {
                let mut page: Vec<u64> = walked(&history, &q, after + 1, u64::MAX, &events)
                    .into_iter()
                    .take(size + 1)
                    .collect();
                let has_next = page.len() > size;
                page.truncate(size);
                assert!(!(page.is_empty() && has_next), "{q:?}");
                if has_next {
                    assert_eq!(page.len(), size, "{q:?}");
                }
                seen.extend(&page);
                if !has_next {
                    break;
                }
                after = *page.last().unwrap();
            }
            assert_eq!(seen, expected, "{q:?} by {size}");
        }
    }
}

#[test]
fn one_sparse_type_among_many_events_is_found_at_once_and_counted() {
    let db = Db::temporary().unwrap();
    let rec = Rec::new(1);
    let mut position = 0;
    let mut events = envelopes(&mut position, &admin(), [rec.started()]);
    events.extend(envelopes(
        &mut position,
        &admin(),
        (0..5_000).map(|n| rec.chunk(n, 1)),
    ));
    events.extend(envelopes(
        &mut position,
        &admin(),
        [DomainEvent::SiteCreated {
            site_id: SITE2,
            name: "late".into(),
            at: T0,
        }],
    ));
    events.extend(envelopes(
        &mut position,
        &admin(),
        (5_000..6_000).map(|n| rec.chunk(n, 1)),
    ));
    let tree = indexed(&db, "history", &events, 1_000);
    let q = HistoryQuery {
        types: Some(vec!["SiteCreated".into()]),
        ..HistoryQuery::default()
    };
    let history = History::new(tree.clone());
    let found: Vec<u64> = history
        .positions(&q, 1, u64::MAX)
        .unwrap()
        .map(|p| p.unwrap())
        .collect();
    assert_eq!(found, vec![5_002]);
    assert_eq!(history.count(&q).unwrap(), Some(1));
    // The dense index value costs one key per block of 256 positions.
    let blocks = tree.scan_prefix(b"t/ContentChunkStored\0").count();
    assert!(blocks <= 6_002 / 256 + 2, "{blocks} keys");
}

#[test]
fn any_batching_and_a_replay_write_the_same_index() {
    let events = log();
    let db = Db::temporary().unwrap();
    let whole = dump(&indexed(&db, "whole", &events, events.len())).unwrap();
    for batch in [1, 7, 256, 333] {
        assert_eq!(
            dump(&indexed(&db, &format!("by-{batch}"), &events, batch)).unwrap(),
            whole
        );
    }
    // Every event applied again (a crash before the checkpoint was kept)
    // changes nothing.
    let tree = db.open("twice").unwrap();
    apply_events(&HistoryProjection, &tree, 0, &events).unwrap();
    apply_events(&HistoryProjection, &tree, 0, &events).unwrap();
    assert_eq!(dump(&tree).unwrap(), whole);
    assert_eq!(HistoryProjection.name(), "history");
}
