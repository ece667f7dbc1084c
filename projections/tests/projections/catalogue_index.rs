//! The catalogue's in-memory index: applying a committed batch is
//! idempotent and sets a recording's entry from its row alone; an index
//! reflects one tree and ignores the batches of others.

use srs_domain::model::{SessionEventType, Severity};
use srs_projections::models::catalogue::{
    CatalogueIndex, CatalogueProjection, IndexSnapshot, RecordingRow, RestrictionInfo,
};
use srs_projections::store::{Db, Store, Tree};
use srs_projections::{dump, Changes, Projection};
use uuid::Uuid;

use crate::fixtures::*;

/// Five recordings: ended, restricted, detected, deleted, commented.
fn folded() -> Folded {
    let [r1, r2, r3, r4, r5] = [1, 2, 3, 4, 5].map(Rec::new);
    Folded::given([
        r1.started(),
        r1.ended_after_secs(600),
        r2.started(),
        r2.restricted("root", "legal hold", T0),
        r3.started(),
        r3.detected(1, SessionEventType::AppStart, Severity::High, "r", 5),
        r4.started(),
        r4.deleted(),
        r5.started(),
        r5.commented(Uuid::from_u128(0xc0), "Needs review"),
    ])
}

/// Every row of the tree as one batch's changes.
fn rows_as_changes(tree: &Tree) -> Changes {
    dump(tree)
        .unwrap()
        .into_iter()
        .filter(|(k, _)| k.starts_with(b"r/"))
        .map(|(k, v)| (k, Some(v)))
        .collect()
}

fn row_key(id: Uuid) -> Vec<u8> {
    [b"r/".as_slice(), id.as_bytes()].concat()
}

fn loaded(tree: &Tree) -> IndexSnapshot {
    CatalogueIndex::new().snapshot(tree).unwrap()
}

#[test]
fn a_batch_applied_twice_leaves_the_same_index() {
    let f = folded();
    let tree = f.catalogue().tree().clone();
    let projection = CatalogueProjection::new();
    projection.index().load(&tree).unwrap();
    let before = projection.index().snapshot(&tree).unwrap();
    assert_eq!(
        before.newest_first.len(),
        4,
        "the deleted one is not listed"
    );
    assert_eq!(before.columns.len(), 5, "every recording has its columns");

    let changes = rows_as_changes(&tree);
    assert_eq!(changes.len(), 5);
    projection.committed(&tree, &changes, 99);
    projection.committed(&tree, &changes, 99);
    assert_eq!(projection.index().snapshot(&tree).unwrap(), before);
    assert_eq!(projection.index().checkpoint(), 99);

    // A changed row, applied twice: its entry follows the row alone.
    let mut row: RecordingRow = f.catalogue().get(id(1)).unwrap().unwrap();
    row.restriction = Some(RestrictionInfo {
        reason: "r".into(),
        by: "b".into(),
        at: T0,
    });
    row.user = "CORP\\zed".into();
    let bytes = srs_projections::codec::encode(&row).unwrap();
    let changed: Changes = [(row_key(id(1)), Some(bytes))].into_iter().collect();
    projection.committed(&tree, &changed, 100);
    projection.committed(&tree, &changed, 100);
    let after = projection.index().snapshot(&tree).unwrap();
    let posting = |s: &IndexSnapshot, field: char, value: &str| {
        s.postings
            .get(&(field, value.to_string()))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(
        posting(&after, 'x', "1"),
        [id(1), id(2)].into_iter().collect()
    );
    assert_eq!(posting(&after, 'u', "zed"), [id(1)].into_iter().collect());
    assert!(!posting(&after, 'u', "alice").contains(&id(1)));
    assert_eq!(after.newest_first.len(), 4);

    // The original row again restores the original index, and a removal
    // applied twice takes the recording out of everything.
    projection.committed(&tree, &changes, 101);
    assert_eq!(projection.index().snapshot(&tree).unwrap(), before);
    let removed: Changes = [(row_key(id(3)), None)].into_iter().collect();
    projection.committed(&tree, &removed, 102);
    projection.committed(&tree, &removed, 102);
    let after = projection.index().snapshot(&tree).unwrap();
    assert_eq!(after.newest_first.len(), 3);
    assert!(after.postings.values().all(|ids| !ids.contains(&id(3))));
    assert!(!after.longest_first.contains(&id(3)));
}

#[test]
fn the_index_folded_with_the_rows_equals_the_index_loaded_from_them() {
    // Folded's catalogue projection has an index of its own that reflects
    // no tree: bind a fresh one, then fold more events through it.
    let mut f = folded();
    let tree = f.catalogue().tree().clone();
    let projection = CatalogueProjection::new();
    projection.index().load(&tree).unwrap();
    f.apply(admin(), [Rec::new(6).started(), Rec::new(1).deleted()]);
    // The folded events reached the tree through Folded's own projection;
    // hand their rows to the bound index as the hook would.
    projection.committed(&tree, &rows_as_changes(&tree), 12);
    assert_eq!(projection.index().snapshot(&tree).unwrap(), loaded(&tree));
    let s = loaded(&tree);
    assert_eq!(s.newest_first.len(), 4);
    assert_eq!(s.newest_first[0], id(6), "newest first");
    assert!(!s.newest_first.contains(&id(1)));
}

#[test]
fn an_index_ignores_the_batches_of_another_tree() {
    let f = folded();
    let tree = f.catalogue().tree().clone();
    let projection = CatalogueProjection::new();
    projection.index().load(&tree).unwrap();
    let before = projection.index().snapshot(&tree).unwrap();
    let removed: Changes = [(row_key(id(1)), None)].into_iter().collect();
    // The tree's name (its generation) is what the index knows.
    let db = Db::temporary().unwrap();
    let shadow = db.open("catalogue#2").unwrap();
    projection.committed(&shadow, &removed, 50);
    assert_eq!(projection.index().snapshot(&tree).unwrap(), before);
    assert_eq!(
        projection.index().checkpoint(),
        srs_projections::checkpoint_of(&tree).unwrap()
    );
    // A query over another tree reloads the index from it (empty here).
    assert_eq!(projection.index().load(&shadow).unwrap(), 0);
    assert_eq!(
        projection.index().tree_name().as_deref(),
        Some("catalogue#2")
    );
    // And back.
    assert_eq!(projection.index().load(&tree).unwrap(), 4);
}
