//! [`DataDir`]: a data directory opened by a tool.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use srs_domain::log::{open_db, EventStore, SledEventStore, StoreOptions};
use srs_domain::model::DomainEvent;

use crate::error::ReplayError;

/// sled's page cache for tools: small, so that reading a large log does not
/// grow the process with it (tools read each record once).
const TOOL_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// An opened data directory: its database and its log.
pub struct DataDir {
    pub path: PathBuf,
    pub db: sled::Db,
    pub store: SledEventStore<DomainEvent>,
}

impl DataDir {
    /// Opens an existing data directory. A directory without srs data is
    /// [`ReplayError::NoData`] (nothing is created), one held by a running
    /// server is [`ReplayError::Locked`].
    pub fn open(path: &Path) -> Result<Self, ReplayError> {
        if !holds_data(path) {
            return Err(ReplayError::NoData(path.to_path_buf()));
        }
        Self::open_or_create(path)
    }

    /// Opens a data directory, creating it when absent (for `import`).
    pub fn open_or_create(path: &Path) -> Result<Self, ReplayError> {
        let db = open_db(path, TOOL_CACHE_BYTES).map_err(|e| ReplayError::from_open(path, e))?;
        let options = StoreOptions {
            cache_capacity_bytes: TOOL_CACHE_BYTES,
            ..StoreOptions::default()
        };
        let store = SledEventStore::with_db(db.clone(), options)?;
        Ok(DataDir {
            path: path.to_path_buf(),
            db,
            store,
        })
    }

    /// The log as the projection engine takes it.
    pub fn shared_store(&self) -> Arc<dyn EventStore<DomainEvent>> {
        Arc::new(self.store.clone())
    }

    /// The durable head position.
    pub fn head(&self) -> u64 {
        EventStore::head(&self.store).position
    }
}

/// Whether `path` looks like a sled database (so a typo does not create one).
pub fn holds_data(path: &Path) -> bool {
    path.join("db").exists() || path.join("conf").exists()
}
