//! Live incremental processing and a full rebuild produce identical read
//! models, for random valid event sequences appended in random chunks
//! while the runners follow.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore};
use srs_domain::model::DomainEvent;
use srs_domain::model::Role;
use srs_projections::models::catalogue::{
    CatalogueIndex, CatalogueProjection, IndexSnapshot, RecordingQuery,
};
use srs_projections::models::Viewer;
use srs_projections::store::Keyspace;
use srs_projections::{dump, ReadModels, SetOptions, Which};

use crate::common::open_store;
use crate::gen::{self, Op};

pub type Dumps = Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)>;

/// Every read model's tree, minus checkpoint and version.
pub fn dumps(models: &ReadModels) -> Dumps {
    models
        .set()
        .names()
        .into_iter()
        .map(|n| (n.to_string(), dump(&models.set().tree(n).unwrap()).unwrap()))
        .collect()
}

pub async fn append_all(
    store: &SledEventStore<DomainEvent>,
    events: Vec<(Actor, DomainEvent)>,
    chunks: &[usize],
) -> u64 {
    let mut last = 0;
    let mut rest = events.as_slice();
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(50)
            .clamp(1, rest.len());
        let (now, later) = rest.split_at(n);
        let batch: Vec<_> = now
            .iter()
            .map(|(a, e)| NewEvent::new(a.clone(), e.clone()))
            .collect();
        last = store
            .append(&format!("s-{i}"), ExpectedVersion::Any, batch)
            .await
            .unwrap()
            .last_position();
        rest = later;
        i += 1;
    }
    last
}

fn check(ops: Vec<Op>, chunks: Vec<usize>, batch: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = open_store::<DomainEvent>(dir.path());
        let models = ReadModels::start(
            store.clone() as Arc<dyn EventStore<DomainEvent>>,
            store.db(),
            SetOptions {
                batch_size: batch,
                rebuild_batch_size: 97,
            },
        )
        .unwrap();
        // Bound to the live tree before anything is appended: every event
        // then reaches the index through the commit hook.
        models.catalogue().unwrap().load_index().unwrap();
        let last = append_all(&store, gen::events(&ops), &chunks).await;
        models
            .wait_for(Which::All, last, Duration::from_secs(30))
            .await
            .unwrap();
        for s in models.statuses() {
            assert!(s.last_error.is_none(), "{s:?}");
        }
        let live = dumps(&models);
        let live_index = live_index_equals_loaded(&models, last);
        let report = models.set().rebuild_all().await.unwrap();
        assert!(
            report.projections.iter().all(|(_, r)| r.is_ok()),
            "{report:?}"
        );
        let rebuilt = dumps(&models);
        for ((name, a), (_, b)) in live.iter().zip(&rebuilt) {
            assert!(
                a == b,
                "{name}: live has {} entries, rebuilt {}",
                a.len(),
                b.len()
            );
        }
        rebuilt_index_answers_from_the_new_tree(&models, &live_index);
        models.set().shutdown().await;
    });
}

/// The index kept fresh by the commit hook equals the index loaded from
/// the tree's rows.
fn live_index_equals_loaded(models: &ReadModels, last: u64) -> IndexSnapshot {
    let tree = models.set().tree(CatalogueProjection::NAME).unwrap();
    let index = models.catalogue_index();
    assert_eq!(
        index.tree_name().as_deref(),
        Some(tree.name()),
        "the index still reflects the live tree"
    );
    assert_eq!(index.checkpoint(), last, "every batch reached the index");
    let live = index.snapshot(&tree).unwrap();
    assert_eq!(live, CatalogueIndex::new().snapshot(&tree).unwrap());
    live
}

/// After a rebuild swaps in a new tree, a search reloads the shared index
/// from it, and it is the same index.
fn rebuilt_index_answers_from_the_new_tree(models: &ReadModels, live: &IndexSnapshot) {
    let tree = models.set().tree(CatalogueProjection::NAME).unwrap();
    let index = models.catalogue_index();
    let new_name = tree.name().to_owned();
    let admin = Viewer::new(
        crate::fixtures::principal(Role::Admin, "root"),
        Default::default(),
    );
    let page = models
        .catalogue()
        .unwrap()
        .search(
            &admin,
            &RecordingQuery {
                with_total: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(index.tree_name().as_deref(), Some(new_name.as_str()));
    assert_eq!(page.total_count, Some(live.newest_first.len() as u64));
    assert_eq!(&index.snapshot(&tree).unwrap(), live);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn live_processing_and_a_full_rebuild_give_identical_read_models(
        ops in prop::collection::vec(any::<Op>(), 0..160),
        chunks in prop::collection::vec(1usize..40, 1..6),
        batch in 1usize..64,
    ) {
        check(ops, chunks, batch);
    }
}

#[test]
fn a_long_random_history_rebuilds_to_the_same_read_models() {
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let ops = gen::random_ops(&mut rng, 3000);
    let events = gen::events(&ops);
    assert!(events.len() > 2500, "the script makes a real history");
    assert!(events
        .iter()
        .any(|(_, e)| matches!(e, DomainEvent::RecordingDeleted { .. })));
    check(ops, vec![1, 7, 300, 64], 200);
}
