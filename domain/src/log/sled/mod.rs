//! The sled backend: the log in one sled tree ([`LOG_TREE`]), its key
//! layout in `keys`.
//!
//! [`LogBackend`] is implemented for the tree itself: a commit is one
//! `apply_batch` (atomic in memory and across a crash: sled recovers a
//! prefix of the batches, each whole), a flush is sled's `flush`, which
//! makes everything applied before it durable. [`SledEventStore`] is the
//! log's core ([`EventLog`]) over such a tree, with the database at hand for
//! the components that keep their own trees beside the log.
//!
//! sled 0.34 keeps the first I/O error of its log and fails every later
//! write and flush of that `Db` with it, even once space is back; the
//! writer then reports [`Writability::NeedsReopen`] and `srs serve`
//! reopens the database (see `log::writer`).

mod keys;

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use super::backend::{Commit, LogBackend, Visit};
use super::core::{EventLog, StoreOptions};
use super::envelope::{Appended, Envelope, Event, ExpectedVersion, Head, NewEvent};
use super::error::{AppendError, LogError, StorageError};
#[cfg(doc)]
use super::Writability;
use super::{EventStore, EventStream};

/// The name of the sled tree that holds the log.
pub const LOG_TREE: &str = "log";

/// Opens (or creates) the sled database in `dir`. A directory held by
/// another process gives [`LogError::Locked`].
///
/// A directory it creates is mode 0700, and sled's files in it (`db`,
/// `conf`, `snap.*`, `blobs/`) are made 0600 (0700 for directories) after
/// the open: the log is readable by its owner only. sled creates later
/// snapshot files with the process's umask; the 0700 directory keeps them
/// private. Files that cannot be changed (a read-only copy, another owner)
/// are left as they are.
pub fn open_db(dir: &Path, cache_capacity_bytes: u64) -> Result<sled::Db, LogError> {
    if !dir.exists() {
        create_private_dir(dir).map_err(|e| LogError::Storage(StorageError::Io(e)))?;
    }
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(cache_capacity_bytes)
        .open()
        .map_err(|e| match e {
            sled::Error::Io(io) if is_lock_error(&io) => LogError::Locked {
                path: PathBuf::from(dir),
            },
            other => LogError::from(other),
        })?;
    make_sled_files_private(dir);
    Ok(db)
}

/// Creates `dir` and its missing parents with mode 0700 (on Unix). An
/// existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(dir)
}

fn make_sled_files_private(dir: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let ours =
                name == "db" || name == "conf" || name == "blobs" || name.starts_with("snap.");
            let Ok(meta) = entry.metadata() else { continue };
            if !ours {
                continue;
            }
            let mode = if meta.is_dir() { 0o700 } else { 0o600 };
            if meta.permissions().mode() & 0o777 != mode {
                let _ =
                    std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn is_lock_error(io: &std::io::Error) -> bool {
    io.kind() == std::io::ErrorKind::WouldBlock || io.to_string().contains("could not acquire lock")
}

impl From<sled::Error> for StorageError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(io) => StorageError::Io(io),
            other => StorageError::Other(other.to_string()),
        }
    }
}

impl From<sled::Error> for LogError {
    fn from(error: sled::Error) -> Self {
        LogError::Storage(error.into())
    }
}

impl From<sled::Error> for AppendError {
    fn from(error: sled::Error) -> Self {
        AppendError::Log(error.into())
    }
}

fn corrupt(what: String) -> LogError {
    LogError::Corrupt(what)
}

impl LogBackend for sled::Tree {
    fn head(&self) -> Result<Head, LogError> {
        match self.get(keys::HEAD)? {
            Some(value) => keys::decode_head(&value)
                .ok_or_else(|| corrupt("the head record is malformed".into())),
            None => Ok(Head::default()),
        }
    }

    fn scan(&self, from: u64, to: u64, visit: &mut Visit<'_>) -> Result<(), LogError> {
        if from > to {
            return Ok(());
        }
        for entry in self.range(keys::event(from)..=keys::event(to)) {
            let (key, value) = entry?;
            let position =
                keys::event_position(&key).ok_or_else(|| corrupt("malformed event key".into()))?;
            if !visit(position, &value)? {
                break;
            }
        }
        Ok(())
    }

    fn position_of(&self, event_id: Uuid) -> Result<Option<u64>, LogError> {
        self.get(keys::event_id(event_id))?
            .map(|value| {
                keys::u64_value(&value)
                    .ok_or_else(|| corrupt(format!("bad id index entry for {event_id}")))
            })
            .transpose()
    }

    fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        self.get(keys::stream_head(stream))?
            .map(|value| {
                keys::u64_value(&value)
                    .ok_or_else(|| corrupt(format!("bad stream head for {stream}")))
            })
            .transpose()
    }

    fn stream_position(&self, stream: &str, version: u64) -> Result<Option<u64>, LogError> {
        self.get(keys::stream_event(stream, version))?
            .map(|value| {
                keys::u64_value(&value)
                    .ok_or_else(|| corrupt(format!("bad index entry for {stream}")))
            })
            .transpose()
    }

    fn stream_positions(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<u64>, LogError> {
        let prefix = keys::stream_prefix(stream);
        let start = keys::stream_event(stream, from_version.max(1));
        let mut positions = Vec::new();
        for entry in self.range(start..) {
            let (key, value) = entry?;
            if !key.starts_with(&prefix) || key.len() != prefix.len() + 8 || positions.len() >= max
            {
                break;
            }
            let position = keys::u64_value(&value)
                .ok_or_else(|| corrupt(format!("bad index entry for {stream}")))?;
            positions.push(position);
        }
        Ok(positions)
    }

    fn commit(&self, commit: Commit) -> Result<(), LogError> {
        let mut batch = sled::Batch::default();
        for record in commit.records {
            let position = record.position.to_be_bytes();
            batch.insert(&keys::event(record.position)[..], record.bytes);
            batch.insert(
                keys::stream_event(&record.stream, record.version),
                &position[..],
            );
            batch.insert(&keys::event_id(record.event_id)[..], &position[..]);
        }
        for (stream, version) in &commit.streams {
            batch.insert(keys::stream_head(stream), &version.to_be_bytes()[..]);
        }
        if let Some(head) = &commit.head {
            batch.insert(keys::HEAD, &keys::head_value(head)[..]);
        }
        self.apply_batch(batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), LogError> {
        // One page cache under every tree: this makes the whole database
        // durable, as `Db::flush` does.
        sled::Tree::flush(self)?;
        Ok(())
    }
}

/// The log in a sled database: [`EventLog`] over its [`LOG_TREE`]. Cheap
/// to clone; derefs to the [`EventLog`] (what the rest of srs holds, see
/// [`SledEventStore::log`]).
pub struct SledEventStore<E> {
    log: EventLog<E>,
    db: sled::Db,
    tree: sled::Tree,
}

impl<E> Clone for SledEventStore<E> {
    fn clone(&self) -> Self {
        SledEventStore {
            log: self.log.clone(),
            db: self.db.clone(),
            tree: self.tree.clone(),
        }
    }
}

impl<E> Deref for SledEventStore<E> {
    type Target = EventLog<E>;

    fn deref(&self) -> &EventLog<E> {
        &self.log
    }
}

impl<E: Event> SledEventStore<E> {
    /// Opens the log in directory `dir`, creating it if needed, and resumes
    /// from what is stored there.
    pub fn open(dir: &Path, mut options: StoreOptions) -> Result<Self, LogError> {
        let db = open_db(dir, options.cache_capacity_bytes)?;
        options.probe_dir.get_or_insert_with(|| dir.to_path_buf());
        Self::with_db(db, options)
    }

    /// Uses an already opened database (shared with the projections).
    pub fn with_db(db: sled::Db, options: StoreOptions) -> Result<Self, LogError> {
        let tree = db.open_tree(LOG_TREE)?;
        let log = EventLog::new(Arc::new(tree.clone()), options)?;
        Ok(SledEventStore { log, db, tree })
    }

    /// The backend-neutral log.
    pub fn log(&self) -> &EventLog<E> {
        &self.log
    }

    /// The backend-neutral log, without the sled handles.
    pub fn into_log(self) -> EventLog<E> {
        self.log
    }

    /// The database, for components that keep their own trees beside the log.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// The log tree (for verification and tooling).
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }
}

#[async_trait]
impl<E: Event> EventStore<E> for SledEventStore<E> {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
    ) -> Result<Appended, AppendError> {
        self.log.append(stream, expected, events).await
    }

    async fn append_guarded(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<E>>,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Appended, AppendError> {
        self.log
            .append_guarded(stream, expected, events, guards)
            .await
    }

    async fn read_all(&self, from: u64, max: usize) -> Result<Vec<Envelope<E>>, LogError> {
        self.log.read_all(from, max).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Envelope<E>>, LogError> {
        self.log.read_stream(stream, from_version, max).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        self.log.stream_version(stream).await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<Envelope<E>>, LogError> {
        self.log.read_event(event_id).await
    }

    fn head(&self) -> Head {
        EventStore::head(&self.log)
    }

    fn watch_head(&self) -> watch::Receiver<Head> {
        self.log.watch_head()
    }

    fn subscribe(&self, from: u64) -> EventStream<E> {
        self.log.subscribe(from)
    }
}
