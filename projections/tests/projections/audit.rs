//! The audit trail's posting-block indexes: every filter's pages, walked
//! with cursors, equal a scan of all rows filtered; a long run of one
//! category and actor costs a few index keys, not one per entry.

use std::sync::Arc;
use std::time::Duration;

use srs_domain::actor::Actor;
use srs_domain::log::Envelope;
use srs_domain::model::{classify, AuditCategory, DomainEvent, PlaybackKind};
use srs_projections::codec::Key;
use srs_projections::models::audit::{AuditFilter, AuditProjection, AuditRow, AuditTrail};
use srs_projections::store::{Keyspace, Tree};
use srs_projections::{Overlay, Projection, ProjectionSet, SetOptions, Which};
use uuid::Uuid;

use crate::common::{open_store, store_dyn};
use crate::fixtures::*;
use crate::props::append_all;

const ALL_CATEGORIES: [AuditCategory; 4] = [
    AuditCategory::Configuration,
    AuditCategory::RecordingReason,
    AuditCategory::Playback,
    AuditCategory::Access,
];

fn ann() -> Actor {
    Actor::Principal {
        token_id: Uuid::from_u128(2),
        name: "Ann".into(),
    }
}

fn bob() -> Actor {
    Actor::Principal {
        token_id: Uuid::from_u128(3),
        name: "bob".into(),
    }
}

/// A small deterministic generator (the same history every run).
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

/// About 1,200 log positions (five blocks of 256): dense recording starts
/// by two agents at two sites, sparse playbacks, restrictions and token
/// revocations by principals and the system, unaudited ends in between,
/// and a stretch (positions ~520-800) of one agent's starts alone, so that
/// the other index values have no entry in a whole block.
fn history() -> Folded {
    let mut f = Folded::new();
    let mut rng = Lcg(7);
    let mut started: Vec<Rec> = Vec::new();
    let mut n = 0u128;
    let mut position = 0u64;
    let start = |site, server, n: &mut u128, started: &mut Vec<Rec>| {
        *n += 1;
        let rec = Rec {
            site,
            server,
            ..Rec::new(*n)
        };
        started.push(rec.clone());
        rec.started()
    };
    while position < 1_200 {
        let (actor, event) = if (520..800).contains(&position) {
            (
                Actor::Agent { server_id: SERVER },
                start(SITE, SERVER, &mut n, &mut started),
            )
        } else {
            let pick = rng.next();
            let some = |rng: &mut Lcg| started[rng.next() as usize % started.len()].clone();
            match pick % 10 {
                _ if started.is_empty() => (
                    Actor::Agent { server_id: SERVER },
                    start(SITE, SERVER, &mut n, &mut started),
                ),
                0..=2 => (
                    Actor::Agent { server_id: SERVER },
                    start(SITE, SERVER, &mut n, &mut started),
                ),
                3 | 4 => (
                    Actor::Agent { server_id: SERVER2 },
                    start(SITE2, SERVER2, &mut n, &mut started),
                ),
                5 => {
                    let r = some(&mut rng);
                    (
                        Actor::Agent {
                            server_id: r.server,
                        },
                        r.ended_after_secs(9),
                    )
                }
                6 => {
                    let r = some(&mut rng);
                    let actor = if pick % 20 < 10 { ann() } else { bob() };
                    (
                        actor,
                        DomainEvent::RecordingPlayed {
                            recording_id: r.id,
                            site_id: r.site,
                            by: "ann".into(),
                            kind: PlaybackKind::Play,
                            at: T0,
                        },
                    )
                }
                7 => {
                    let r = some(&mut rng);
                    (bob(), r.restricted("bob", "hold", T0))
                }
                8 => (
                    if pick % 20 < 10 {
                        ann()
                    } else {
                        Actor::system("retention")
                    },
                    DomainEvent::TokenRevoked {
                        token_id: Uuid::from_u128(u128::from(position)),
                        name: "t".into(),
                        at: T0,
                    },
                ),
                _ => (
                    bob(),
                    DomainEvent::SiteRenamed {
                        site_id: SITE2,
                        name: format!("site {position}"),
                        previous_name: "site".into(),
                        at: T0,
                    },
                ),
            }
        };
        f.apply(actor, [event]);
        position += 1;
    }
    f
}

/// The filter applied to a row, written independently of the trail.
fn reference_matches(f: &AuditFilter, row: &AuditRow) -> bool {
    let actor_ok = f.actor.as_ref().is_none_or(|a| {
        let a = a.trim().to_lowercase();
        row.actor.label().to_lowercase() == a
            || matches!(&row.actor, Actor::Principal { name, .. } if name.to_lowercase() == a)
    });
    (f.categories.is_empty() || f.categories.contains(&row.category))
        && actor_ok
        && f.site_id.is_none_or(|s| row.site_id == Some(s))
        && f.target
            .as_ref()
            .is_none_or(|t| row.target.eq_ignore_ascii_case(t.trim()))
        && f.from.is_none_or(|from| row.at >= from)
        && f.to.is_none_or(|to| row.at < to)
}

fn cursor_of(position: u64) -> String {
    format!("a:{position:016x}")
}

fn filters() -> Vec<AuditFilter> {
    let categories = [
        vec![],
        vec![AuditCategory::RecordingReason],
        vec![AuditCategory::Access],
        vec![AuditCategory::Configuration],
        vec![AuditCategory::Access, AuditCategory::Configuration],
        vec![AuditCategory::Playback, AuditCategory::RecordingReason],
        ALL_CATEGORIES.to_vec(),
    ];
    let actors = [
        None,
        Some(Actor::Agent { server_id: SERVER }.label()),
        Some(format!("AGENT:{SERVER2}")),
        Some(" ANN ".to_string()),
        Some("principal:bob".to_string()),
        Some("system:retention".to_string()),
        Some("nobody".to_string()),
    ];
    let sites = [None, Some(SITE), Some(SITE2), Some(Uuid::from_u128(99))];
    let times = [
        (None, None),
        (Some(T0.plus_secs(300)), Some(T0.plus_secs(900))),
    ];
    let mut all = Vec::new();
    for c in &categories {
        for a in &actors {
            for s in sites {
                for (from, to) in times {
                    all.push(AuditFilter {
                        categories: c.clone(),
                        actor: a.clone(),
                        site_id: s,
                        target: None,
                        from,
                        to,
                    });
                }
            }
        }
    }
    all
}

/// Walks every page of `filter` at `size` from `after` and checks each
/// against `expected` (the matching positions, newest first, below the
/// cursor).
fn walk(
    trail: &AuditTrail,
    filter: &AuditFilter,
    size: usize,
    after: Option<String>,
    expected: &[u64],
) {
    let mut cursor = after;
    let mut seen = 0;
    loop {
        let page = trail.search(filter, Some(size), cursor.as_deref()).unwrap();
        let got: Vec<u64> = page.items.iter().map(|(_, r)| r.position).collect();
        let want: Vec<u64> = expected.iter().skip(seen).take(size).copied().collect();
        assert_eq!(got, want, "{filter:?} size {size} after {cursor:?}");
        for (c, r) in &page.items {
            assert_eq!(c, &cursor_of(r.position));
        }
        seen += got.len();
        assert_eq!(
            page.has_next_page,
            seen < expected.len(),
            "{filter:?} size {size} at {seen}"
        );
        assert_eq!(page.end_cursor, got.last().map(|p| cursor_of(*p)));
        if !page.has_next_page {
            break;
        }
        cursor = page.end_cursor;
    }
    assert_eq!(seen, expected.len(), "{filter:?} size {size}");
}

#[test]
fn every_filter_pages_through_the_posting_blocks_like_a_scan_of_all_rows() {
    let f = history();
    let trail = f.audit();
    // Every row, by position (the reference).
    let rows: Vec<AuditRow> = (1..=1_200)
        .filter_map(|p| trail.entry(p).unwrap())
        .collect();
    assert!(rows.len() > 1_000, "{} audited of 1200", rows.len());
    assert!(rows.len() < 1_200, "some positions are not audited");
    let mut checked = 0;
    for filter in filters() {
        let expected: Vec<u64> = rows
            .iter()
            .rev()
            .filter(|r| reference_matches(&filter, r))
            .map(|r| r.position)
            .collect();
        for size in [1, 3, 50] {
            walk(&trail, &filter, size, None, &expected);
        }
        // Cursors at, around and inside blocks, matching or not.
        for after in [
            1, 2, 100, 255, 256, 257, 300, 511, 512, 513, 650, 777, 1_200, 5_000,
        ] {
            let below: Vec<u64> = expected.iter().copied().filter(|p| *p < after).collect();
            walk(&trail, &filter, 3, Some(cursor_of(after)), &below);
        }
        checked += usize::from(!expected.is_empty());
    }
    // The filters are not vacuous: most of them match something.
    assert!(checked > 100, "{checked} filters match rows");
}

#[test]
fn several_categories_merge_newest_first_without_repeats() {
    let f = history();
    let trail = f.audit();
    let every = trail
        .search(
            &AuditFilter {
                categories: ALL_CATEGORIES.to_vec(),
                ..Default::default()
            },
            Some(500),
            None,
        )
        .unwrap();
    let unfiltered = trail
        .search(&AuditFilter::default(), Some(500), None)
        .unwrap();
    assert_eq!(every, unfiltered);
    let positions: Vec<u64> = every.items.iter().map(|(_, r)| r.position).collect();
    assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
    assert!(every.has_next_page);
}

/// Keys of `tree` starting with `prefix`.
fn keys_under(tree: &Tree, prefix: &[u8]) -> usize {
    tree.scan_prefix(prefix).count()
}

#[test]
fn a_thousand_entries_of_one_category_actor_and_site_take_four_keys_per_index() {
    let agent = Actor::Agent { server_id: SERVER };
    let mut f = Folded::new();
    f.apply(agent.clone(), (1..=1_000).map(|n| Rec::new(n).started()));
    let tree = f.tree("audit");
    assert_eq!(keys_under(&tree, b"e/"), 1_000);
    // Positions 1..=1000 fall in the blocks 0 to 3.
    assert_eq!(keys_under(&tree, b"c/"), 4);
    assert_eq!(keys_under(&tree, b"a/"), 4);
    assert_eq!(keys_under(&tree, b"s/"), 4);
    // And each index still finds all of them, newest first.
    let trail = f.audit();
    for filter in [
        AuditFilter {
            categories: vec![AuditCategory::RecordingReason],
            ..Default::default()
        },
        AuditFilter {
            actor: Some(agent.label()),
            ..Default::default()
        },
        AuditFilter {
            site_id: Some(SITE),
            ..Default::default()
        },
    ] {
        let first = trail.search(&filter, Some(500), None).unwrap();
        let rest = trail
            .search(&filter, Some(500), first.end_cursor.as_deref())
            .unwrap();
        let positions: Vec<u64> = first
            .items
            .iter()
            .chain(&rest.items)
            .map(|(_, r)| r.position)
            .collect();
        assert_eq!(
            positions,
            (1..=1_000).rev().collect::<Vec<_>>(),
            "{filter:?}"
        );
        assert!(first.has_next_page && !rest.has_next_page);
    }
}

/// The trail as its version 1 wrote it: one empty index key per entry
/// (`<tag><value><position desc>`), and the same rows.
struct AuditV1;

impl Projection<DomainEvent> for AuditV1 {
    fn name(&self) -> &'static str {
        AuditProjection::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> srs_projections::Result<()> {
        let Some(entry) = classify(&e.payload) else {
            return Ok(());
        };
        let pos = e.position;
        w.insert(Key::new(b"c/").u8(1).u64_desc(pos).build(), Vec::new())?;
        let label = e.actor.label().to_lowercase();
        w.insert(
            Key::new(b"a/").str(&label).u64_desc(pos).build(),
            Vec::new(),
        )?;
        if let Some(site) = entry.site_id {
            w.insert(Key::new(b"s/").uuid(site).u64_desc(pos).build(), Vec::new())?;
        }
        w.put_value(
            Key::new(b"e/").u64_desc(pos).build(),
            &AuditRow::of(e, entry),
        )
    }
}

#[tokio::test]
async fn a_trail_stored_by_version_1_is_rebuilt_into_blocks_on_start() {
    const WAIT: Duration = Duration::from_secs(20);
    let dir = tempfile::tempdir().unwrap();
    let store = open_store::<DomainEvent>(dir.path());
    let agent = Actor::Agent { server_id: SERVER };
    let events = (1..=600)
        .map(|n| (agent.clone(), Rec::new(n).started()))
        .collect();
    let last = append_all(&store, events, &[100]).await;
    let by_site = AuditFilter {
        site_id: Some(SITE),
        ..Default::default()
    };
    {
        let set = ProjectionSet::start(
            store_dyn(&store),
            store.db(),
            vec![Arc::new(AuditV1) as Arc<dyn Projection<DomainEvent>>],
            SetOptions::default(),
        )
        .unwrap();
        set.wait_for(Which::All, last, WAIT).await.unwrap();
        let tree = set.tree(AuditProjection::NAME).unwrap();
        assert_eq!(keys_under(&tree, b"s/"), 600);
        // The blocks' reader finds nothing in one-key-per-entry indexes:
        // only a rebuild makes them answer.
        let page = AuditTrail::new(tree).search(&by_site, None, None).unwrap();
        assert!(page.items.is_empty());
        set.shutdown().await;
    }
    let set = ProjectionSet::start(
        store_dyn(&store),
        store.db(),
        vec![Arc::new(AuditProjection) as Arc<dyn Projection<DomainEvent>>],
        SetOptions::default(),
    )
    .unwrap();
    set.wait_for(Which::All, last, WAIT).await.unwrap();
    let status = set.status(AuditProjection::NAME).unwrap();
    // Rebuilt to the current version (2 brought the blocks).
    assert_eq!(
        (status.version, status.position),
        (AuditProjection.version(), last)
    );
    assert!(status.version >= 2);
    let tree = set.tree(AuditProjection::NAME).unwrap();
    // Positions 1..=600: the blocks 0 to 2.
    assert_eq!(keys_under(&tree, b"s/"), 3);
    assert_eq!(keys_under(&tree, b"e/"), 600);
    let page = AuditTrail::new(tree)
        .search(&by_site, Some(500), None)
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert_eq!(page.items[0].1.position, last);
    assert!(page.has_next_page);
    set.shutdown().await;
}
