//! The catalogue's cache of decoded rows: what a search or `get` answers
//! from it equals what the tree holds after every kind of change, across
//! a rebuild's tree swap, and it never holds more rows than its bound.

use std::collections::BTreeMap;
use std::sync::Arc;

use srs_domain::model::{DomainEvent, Role, SessionEventType, Severity};
use srs_projections::models::catalogue::{
    Catalogue, CatalogueIndex, CatalogueProjection, PagePlan, RecordingFilter, RecordingOrder,
    RecordingPage, RecordingQuery,
};
use srs_projections::models::Viewer;
use srs_projections::store::{Db, Store, Tree};
use srs_projections::{apply_events, checkpoint_of};
use uuid::Uuid;

use crate::fixtures::*;

/// One catalogue tree folded by a projection that shares its index (and
/// so its row cache) with the catalogue queried, as a server runs them.
struct Live {
    db: Db,
    tree: Arc<Tree>,
    projection: CatalogueProjection,
    position: u64,
}

impl Live {
    fn new(db: &Db, name: &str, index: Arc<CatalogueIndex>) -> Live {
        Live {
            db: db.clone(),
            tree: Arc::new(db.open(name).unwrap()),
            projection: CatalogueProjection::with_index(index),
            position: 0,
        }
    }

    fn apply(&mut self, events: impl IntoIterator<Item = DomainEvent>) {
        let envelopes = envelopes(&mut self.position, &admin(), events);
        let checkpoint = checkpoint_of(&self.tree).unwrap();
        let applied = apply_events(&self.projection, &self.tree, checkpoint, &envelopes).unwrap();
        assert!(applied.stopped.is_none(), "{:?}", applied.stopped);
    }

    /// The catalogue the queries read: through the shared index.
    fn cached(&self) -> Catalogue {
        Catalogue::with_index(self.tree.clone(), self.projection.index().clone())
    }

    /// The same tree read without any cache.
    fn uncached(&self) -> Catalogue {
        Catalogue::with_index(
            self.tree.clone(),
            Arc::new(CatalogueIndex::with_options(PagePlan::Auto, 0)),
        )
    }
}

fn admin_viewer() -> Viewer {
    Viewer::new(principal(Role::Admin, "root"), BTreeMap::new())
}

fn every_page(
    c: &Catalogue,
    filter: &RecordingFilter,
    order: RecordingOrder,
) -> Vec<RecordingPage> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = c
            .search(
                &admin_viewer(),
                &RecordingQuery {
                    filter: filter.clone(),
                    order,
                    first: Some(2),
                    after: after.clone(),
                    with_total: true,
                },
            )
            .unwrap();
        let more = page.has_next_page;
        after = page.end_cursor.clone();
        pages.push(page);
        if !more {
            return pages;
        }
    }
}

/// Every answer through the cache equals the answer without it.
#[track_caller]
fn assert_same_answers(live: &Live, ids: &[Uuid]) {
    let (cached, uncached) = (live.cached(), live.uncached());
    for id in ids {
        assert_eq!(
            cached.get(*id).unwrap(),
            uncached.get_stored(*id).unwrap(),
            "recording {id}"
        );
    }
    for filter in [
        RecordingFilter::default(),
        RecordingFilter {
            has_detections: Some(true),
            ..Default::default()
        },
        RecordingFilter {
            live: Some(false),
            ..Default::default()
        },
    ] {
        for order in [RecordingOrder::NewestFirst, RecordingOrder::LongestFirst] {
            assert_eq!(
                every_page(&cached, &filter, order),
                every_page(&uncached, &filter, order),
                "{filter:?} {order:?}"
            );
        }
    }
}

#[test]
fn cached_rows_follow_every_kind_of_change() {
    let db = Db::temporary().unwrap();
    let mut live = Live::new(&db, "catalogue", Arc::new(CatalogueIndex::new()));
    let recs: Vec<Rec> = (1..=5).map(Rec::new).collect();
    let ids: Vec<Uuid> = recs.iter().map(|r| r.id).collect();
    live.apply(recs.iter().map(Rec::started));
    // Read once so that every row is cached before it changes.
    assert_same_answers(&live, &ids);
    assert!(live.projection.index().cached_rows() >= ids.len());

    let comment = Uuid::from_u128(0xc0);
    let steps: Vec<Vec<DomainEvent>> = vec![
        vec![recs[0].ended_after_secs(600)],
        vec![recs[1].detected(1, SessionEventType::AppStart, Severity::High, "r", 5)],
        vec![recs[2].restricted("root", "legal hold", T0)],
        vec![DomainEvent::RecordingRestrictionRemoved {
            recording_id: recs[2].id,
            site_id: recs[2].site,
            reason: "released".into(),
            by: "root".into(),
            at: T0,
        }],
        vec![recs[3].commented(comment, "Needs review")],
        vec![DomainEvent::CommentDeleted {
            comment_id: comment,
            recording_id: recs[3].id,
            site_id: recs[3].site,
            by: "root".into(),
            at: T0,
        }],
        vec![recs[4].app_started(7, "Excel", 1_000)],
        vec![recs[1].ended_after_secs(30), recs[1].archived()],
        vec![recs[4].deleted()],
    ];
    for events in steps {
        let before: Vec<_> = ids
            .iter()
            .map(|id| live.uncached().get_stored(*id).unwrap())
            .collect();
        live.apply(events);
        let after: Vec<_> = ids
            .iter()
            .map(|id| live.uncached().get_stored(*id).unwrap())
            .collect();
        assert_ne!(before, after, "each step changes a row");
        assert_same_answers(&live, &ids);
    }
    // A new recording after the others were cached is found too.
    let late = Rec::new(9);
    live.apply([late.started()]);
    assert_same_answers(&live, &[ids.clone(), vec![late.id]].concat());
    assert!(live
        .cached()
        .get(Uuid::from_u128(0xdead))
        .unwrap()
        .is_none());
}

#[test]
fn a_swapped_tree_is_answered_from_its_own_rows() {
    let db = Db::temporary().unwrap();
    let index = Arc::new(CatalogueIndex::new());
    let recs: Vec<Rec> = (1..=3).map(Rec::new).collect();
    let ids: Vec<Uuid> = recs.iter().map(|r| r.id).collect();
    let mut old = Live::new(&db, "projection/catalogue#1", index.clone());
    old.apply(recs.iter().map(Rec::started));
    assert_same_answers(&old, &ids);

    // The rebuild's tree folds the same log plus a restriction; its
    // batches go through a projection of its own, as a rebuild's do.
    let mut new = Live::new(
        &db,
        "projection/catalogue#2",
        Arc::new(CatalogueIndex::new()),
    );
    new.apply(recs.iter().map(Rec::started));
    new.apply([recs[0].restricted("root", "hold", T0)]);
    // The swap: the server's projection folds the new tree from now on.
    new.projection = CatalogueProjection::with_index(index.clone());
    new.position = checkpoint_of(&new.tree).unwrap();
    assert!(new.cached().get(ids[0]).unwrap().unwrap().restricted());
    assert_same_answers(&new, &ids);

    // A query still holding the old tree reads the old tree's rows, and
    // does not take the cache back from the new one.
    assert!(!old.cached().get(ids[0]).unwrap().unwrap().restricted());
    assert!(new.cached().get(ids[0]).unwrap().unwrap().restricted());

    // Batches of the old tree no longer touch what the new one answers.
    old.apply([recs[1].restricted("root", "old", T0)]);
    assert!(!new.cached().get(ids[1]).unwrap().unwrap().restricted());
    new.apply([recs[2].ended_after_secs(60)]);
    assert_same_answers(&new, &ids);
    drop(old.db);
}

#[test]
fn the_cache_holds_at_most_its_capacity() {
    let db = Db::temporary().unwrap();
    let index = Arc::new(CatalogueIndex::with_options(PagePlan::Auto, 8));
    let mut live = Live::new(&db, "catalogue", index.clone());
    let recs: Vec<Rec> = (1..=40).map(Rec::new).collect();
    live.apply(recs.iter().map(Rec::started));
    assert!(index.cached_rows() <= 8, "{}", index.cached_rows());
    let ids: Vec<Uuid> = recs.iter().map(|r| r.id).collect();
    for _ in 0..3 {
        assert_same_answers(&live, &ids);
        assert!(index.cached_rows() <= 8, "{}", index.cached_rows());
    }
    live.apply(recs.iter().map(|r| r.ended_after_secs(5)));
    assert!(index.cached_rows() <= 8, "{}", index.cached_rows());
    assert_same_answers(&live, &ids);

    // A cache of no rows reads every row from the tree.
    let none = Arc::new(CatalogueIndex::with_options(PagePlan::Auto, 0));
    let c = Catalogue::with_index(live.tree.clone(), none.clone());
    assert_eq!(
        c.get(ids[0]).unwrap(),
        live.uncached().get_stored(ids[0]).unwrap()
    );
    assert_eq!(none.cached_rows(), 0);
}
