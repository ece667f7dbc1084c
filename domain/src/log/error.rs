//! The log's errors. A conflict is its own error type so it cannot be
//! mistaken for an I/O failure, and `AppendError` is `#[must_use]` through
//! `Result`.

use std::path::PathBuf;

use thiserror::Error;

use super::envelope::ExpectedVersion;

/// A stored record could not be turned back into an envelope.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    #[error("record at position {position} has unknown format byte {format:#04x}")]
    UnknownFormat { position: u64, format: u8 },
    #[error("record at position {position} is truncated ({len} bytes)")]
    Truncated { position: u64, len: usize },
    #[error("record at position {position} does not decode: {reason}")]
    Undecodable { position: u64, reason: String },
    #[error("payload at position {position} does not decode: {reason}")]
    UndecodablePayload { position: u64, reason: String },
    #[error("payload could not be encoded: {reason}")]
    Unencodable { reason: String },
}

/// Reading or opening the log failed.
#[derive(Debug, Error)]
pub enum LogError {
    #[error(
        "the data directory {path} is in use by another process (is `srs serve` running on it?)"
    )]
    Locked { path: PathBuf },
    #[error(transparent)]
    Codec(#[from] CodecError),
    #[error("storage error: {0}")]
    Storage(#[from] StorageError),
    #[error("the log is corrupt: {0}")]
    Corrupt(String),
    /// The store was closed (the server is shutting down).
    #[error("the log writer has stopped (the store is closing)")]
    WriterStopped,
    /// Storage failed to take a write (a full disk, an I/O error). The log
    /// refuses appends until its writer has recovered, which it does by
    /// itself; what was asked **may or may not** be stored: retry with the
    /// same event ids and the answer is the stored one if it was.
    #[error("the log cannot store writes now ({reason}); retry later with the same event ids")]
    Unavailable { reason: String },
}

impl LogError {
    /// Whether storage refused: [`LogError::Unavailable`], or an I/O error
    /// from the backend (after a failed write sled refuses even some reads). Both
    /// are temporary: the writer heals by itself, and a retry (with the
    /// same event ids) may then succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            LogError::Unavailable { .. } | LogError::Storage(StorageError::Io(_))
        )
    }
}

impl AppendError {
    /// Whether the log refused the append because storage is not writable.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AppendError::Log(e) if e.is_unavailable())
    }
}

/// An append was refused. Nothing of it was written.
#[derive(Debug, Error)]
pub enum AppendError {
    /// The stream was not at the expected version.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// The request itself is invalid (empty, bad stream name, an event id
    /// reused with other content, ...).
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error(transparent)]
    Log(#[from] LogError),
}

/// The stream's version was not the expected one.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("conflict on stream {stream}: expected {expected}, actual {}", actual.map(|v| format!("version {v}")).unwrap_or_else(|| "no stream".into()))]
pub struct Conflict {
    pub stream: String,
    pub expected: ExpectedVersion,
    /// The stream's current version, `None` when it does not exist.
    pub actual: Option<u64>,
}

impl From<CodecError> for AppendError {
    fn from(value: CodecError) -> Self {
        AppendError::Log(LogError::Codec(value))
    }
}

/// A failure of the storage under the log, as its backend reports it
/// (each backend maps its own errors to these).
#[derive(Debug, Error)]
pub enum StorageError {
    /// An I/O error (a full disk, a read-only file system, a lost device):
    /// temporary, the writer retries.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Anything else the backend reports (damage it found, an operation it
    /// does not support, ...).
    #[error("{0}")]
    Other(String),
    /// Storage shared with other writers (several nodes on one replicated
    /// stream) already holds records past this handle's head: nothing of
    /// the refused commit was stored. The writer catches up
    /// ([`LogBackend::catch_up`]) and decides the commit's appends again.
    ///
    /// [`LogBackend::catch_up`]: super::LogBackend::catch_up
    #[error("another writer appended past position {head}: {reason}")]
    Behind {
        /// This handle's head when the commit was refused.
        head: u64,
        /// Where storage ends, when the refusal says so.
        stored: Option<u64>,
        reason: String,
    },
}
