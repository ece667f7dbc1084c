//! Helpers shared by the projection tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::{
    Envelope, Event, EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions,
};
use srs_projections::store::{Keyspace, Tree};
use srs_projections::{Overlay, Projection};

/// A payload that knows nothing of the product: the engine is generic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TestEvent {
    Happened { n: u64, note: String },
    Poison,
}

impl Event for TestEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TestEvent::Happened { .. } => "Happened",
            TestEvent::Poison => "Poison",
        }
    }
}

pub fn open_store<E: Event>(dir: &Path) -> Arc<SledEventStore<E>> {
    Arc::new(SledEventStore::open(dir, StoreOptions::default()).expect("open log"))
}

pub async fn append_happened(
    store: &SledEventStore<TestEvent>,
    range: std::ops::Range<u64>,
) -> u64 {
    let events: Vec<_> = range
        .map(|n| {
            NewEvent::new(
                Actor::system("test"),
                TestEvent::Happened {
                    n,
                    note: format!("event {n}"),
                },
            )
        })
        .collect();
    let mut last = 0;
    for chunk in events.chunks(1000) {
        last = store
            .append("test-1", ExpectedVersion::Any, chunk.to_vec())
            .await
            .expect("append")
            .last_position();
    }
    last
}

pub async fn append_poison(store: &SledEventStore<TestEvent>) -> u64 {
    store
        .append(
            "test-1",
            ExpectedVersion::Any,
            vec![NewEvent::new(Actor::system("test"), TestEvent::Poison)],
        )
        .await
        .expect("append")
        .last_position()
}

/// Counts events per `n % 10` and keeps every note by position.
pub struct Tally {
    pub version: u32,
    /// When set, `Poison` fails this projection.
    pub strict: bool,
    pub name: &'static str,
}

impl Tally {
    pub fn new(name: &'static str) -> Arc<Self> {
        Arc::new(Tally {
            version: 1,
            strict: false,
            name,
        })
    }

    pub fn strict(name: &'static str) -> Arc<Self> {
        Arc::new(Tally {
            version: 1,
            strict: true,
            name,
        })
    }
}

impl Projection<TestEvent> for Tally {
    fn name(&self) -> &'static str {
        self.name
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<TestEvent>) -> srs_projections::Result<()> {
        match &e.payload {
            TestEvent::Happened { n, note } => {
                w.add(format!("count/{}", n % 10).into_bytes(), 1)?;
                w.add(b"total".to_vec(), 1)?;
                w.insert(
                    format!("note/{:020}", e.position).into_bytes(),
                    note.as_bytes().to_vec(),
                )?;
                Ok(())
            }
            TestEvent::Poison if self.strict => {
                // Half-written on purpose: the failing event must leave no trace.
                w.add(b"total".to_vec(), 1000)?;
                Err(srs_projections::ProjectionError::Invariant("poison".into()))
            }
            TestEvent::Poison => Ok(()),
        }
    }
}

pub fn total(tree: &Tree) -> i64 {
    srs_projections::engine::read_counter(tree.get(b"total").unwrap().as_deref())
}

pub fn store_dyn<E: Event>(store: &Arc<SledEventStore<E>>) -> Arc<dyn EventStore<E>> {
    store.clone()
}
