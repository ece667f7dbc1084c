//! Helpers shared by the log's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::{Event, NewEvent, SledEventStore, StoreOptions};
use srs_domain::time::{Clock, ManualClock, Timestamp};
use uuid::Uuid;

/// A payload type that knows nothing of the product: the log is generic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TestEvent {
    Happened { n: u64, note: String },
    Other(Vec<u8>),
}

impl Event for TestEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TestEvent::Happened { .. } => "Happened",
            TestEvent::Other(_) => "Other",
        }
    }
}

pub type Store = SledEventStore<TestEvent>;

pub fn open(dir: &Path) -> Store {
    open_with(dir, StoreOptions::default())
}

/// Opens the log in `dir`, again while the previous handles' database is
/// still being released (sled drops its file lock when its background
/// threads have exited, which may lag the last handle's drop on a loaded
/// machine: `srs serve`'s reopen waits the same way).
fn open_with(dir: &Path, options: StoreOptions) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        match SledEventStore::open(dir, options.clone()) {
            Err(srs_domain::log::LogError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            opened => return opened.expect("open log"),
        }
    }
}

pub fn open_with_clock(dir: &Path, clock: Arc<dyn Clock>) -> Store {
    let options = StoreOptions {
        clock,
        ..StoreOptions::default()
    };
    open_with(dir, options)
}

pub fn fixed_clock() -> ManualClock {
    ManualClock::new(Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap())
}

pub fn event(n: u64) -> NewEvent<TestEvent> {
    NewEvent::new(
        Actor::system("test"),
        TestEvent::Happened {
            n,
            note: format!("event {n}"),
        },
    )
}

pub fn event_with_id(n: u64, id: Uuid) -> NewEvent<TestEvent> {
    event(n).with_id(id)
}

pub fn events(range: std::ops::Range<u64>) -> Vec<NewEvent<TestEvent>> {
    range.map(event).collect()
}
