//! [`DataDir`]: a data directory opened by a tool.
//!
//! # Read-only data directories
//!
//! sled has no read-only mode: it opens its files for writing even to read.
//! The reading commands (`verify`, `replay`, `state`, `export`,
//! `projections`) therefore open through [`DataDir::open_read_only`]: when
//! the directory or its files refuse writing (a read-only mount, a copy
//! owned by someone else, mode 0400 files), sled's files (`db`, `conf`,
//! `snap.*`, `blobs/`) are copied into a private temporary directory, which
//! is opened instead and removed when the tool ends. The original is never
//! written. What cannot be done on such a copy is said so: `export` cannot
//! record its `LogExported` fact in the original's log (it warns), and
//! `rebuild` (which writes) keeps refusing. A directory a running server
//! holds is still refused as in use wherever the lock can be taken; one
//! the tool cannot open for writing at all cannot be lock-checked, and is
//! copied as it is at that moment, which sled reads like the state a crash
//! would have left.
//!
//! # Directories a running server holds
//!
//! `export` and `state` also read a directory a running `srs serve` holds
//! ([`DataDir::open_snapshot`]): its database is copied the same way, and
//! since the server writes while the files are copied, the copy's log is
//! checked with the chain walk of `srs verify` before it is used (a copy
//! torn by a concurrent write is taken again, up to three times). What
//! they read is then the log as the server had made it durable at about
//! the moment of the copy. Such an export is not recorded in the server's
//! log (the tool cannot write there): `srs export --url` goes through the
//! server and is recorded. `verify`, `replay`, `projections` and
//! `rebuild` keep refusing a held directory (exit 2): `verify` must see
//! the files as they are, and the others go through the server with
//! `--url`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use srs_domain::log::{
    open_db, EventLog, EventStore, LogError, SledEventStore, StorageError, StoreOptions,
};
use srs_domain::model::DomainEvent;

use crate::error::ReplayError;

/// sled's page cache for tools: small, so that reading a large log does not
/// grow the process with it (tools read each record once).
const TOOL_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How long opening a data directory waits for a lock to be released (see
/// [`DataDir::open_or_create`]).
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// An opened data directory: its database and its log.
pub struct DataDir {
    pub path: PathBuf,
    pub db: sled::Db,
    pub store: EventLog<DomainEvent>,
    /// The private copy opened instead of a read-only directory (dropped,
    /// and so removed, after the database above).
    copy: Option<tempfile::TempDir>,
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

    /// Opens an existing data directory to read it, also when it is
    /// read-only: then a private copy of its database is opened (see the
    /// module docs; [`DataDir::is_copy`] tells).
    pub fn open_read_only(path: &Path) -> Result<Self, ReplayError> {
        if !holds_data(path) {
            return Err(ReplayError::NoData(path.to_path_buf()));
        }
        match Self::open_or_create(path) {
            Err(ReplayError::Log(LogError::Storage(StorageError::Io(e)))) if refuses_writes(&e) => {
                Self::open_copy(path)
            }
            other => other,
        }
    }

    /// Opens a data directory to read it, also while a running server
    /// holds it: then a private copy of its database is opened once its
    /// log's chain checks out (see the module docs).
    pub fn open_snapshot(path: &Path) -> Result<Self, ReplayError> {
        match Self::open_read_only(path) {
            Err(ReplayError::Locked(_)) => {}
            other => return other,
        }
        let mut last = None;
        for _ in 0..3 {
            let data = match Self::open_copy(path) {
                Ok(data) => data,
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            let report = data
                .db
                .open_tree(srs_domain::log::LOG_TREE)
                .map_err(ReplayError::from)
                .and_then(|tree| {
                    srs_domain::log::verify::<DomainEvent>(&tree, 1, |_| {}).map_err(Into::into)
                });
            match report.map(|r| r.breach) {
                Ok(None) => return Ok(data),
                Err(e) => last = Some(e),
                Ok(Some(breach)) => {
                    last = Some(ReplayError::Invalid(format!(
                        "a copy of {} taken while the server writes is not intact at position {} ({}); use --url to go through the server",
                        path.display(),
                        breach.position,
                        breach.reason
                    )))
                }
            }
        }
        Err(last.unwrap_or_else(|| ReplayError::Locked(path.to_path_buf())))
    }

    /// Whether this is a private copy of a read-only directory.
    pub fn is_copy(&self) -> bool {
        self.copy.is_some()
    }

    fn open_copy(path: &Path) -> Result<Self, ReplayError> {
        let copy = tempfile::Builder::new()
            .prefix("srs-read-only-")
            .tempdir()?;
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name();
            let text = name.to_string_lossy();
            if text == "db" || text == "conf" || text == "blobs" || text.starts_with("snap.") {
                copy_tree(&entry.path(), &copy.path().join(&name))?;
            }
        }
        let mut data = Self::open_or_create(copy.path())?;
        data.path = path.to_path_buf();
        data.copy = Some(copy);
        Ok(data)
    }

    /// Opens a data directory, creating it when absent (for `import`).
    pub fn open_or_create(path: &Path) -> Result<Self, ReplayError> {
        // sled lets go of the directory once its own threads have, a moment
        // after this process drops its last handle (an import that just
        // ended, then its check): a lock still held after that is another
        // process's.
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        let db = loop {
            match open_db(path, TOOL_CACHE_BYTES) {
                Err(LogError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                opened => break opened.map_err(|e| ReplayError::from_open(path, e))?,
            }
        };
        let options = StoreOptions {
            cache_capacity_bytes: TOOL_CACHE_BYTES,
            ..StoreOptions::default()
        };
        let store = SledEventStore::with_db(db.clone(), options)?.into_log();
        Ok(DataDir {
            path: path.to_path_buf(),
            db,
            store,
            copy: None,
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

/// Whether opening failed because the file system or the permissions
/// refuse writing.
fn refuses_writes(e: &std::io::Error) -> bool {
    const EROFS: i32 = 30;
    e.kind() == std::io::ErrorKind::PermissionDenied
        || e.kind() == std::io::ErrorKind::ReadOnlyFilesystem
        || e.raw_os_error() == Some(EROFS)
}

/// Copies a file, or a directory with everything in it, to `to` (files
/// mode 0600, directories 0700).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    if from.is_dir() {
        srs_domain::log::create_private_dir(to)?;
        for entry in std::fs::read_dir(from)? {
            let entry = entry?;
            copy_tree(&entry.path(), &to.join(entry.file_name()))?;
        }
        return Ok(());
    }
    std::fs::copy(from, to)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
