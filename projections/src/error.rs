//! The crate's one error type. Storage failures, undecodable stored values
//! and broken invariants are kept apart so a status line says which it was.

use srs_domain::log::LogError;
use thiserror::Error;

use crate::store::StoreError;

/// Why a projection, a rebuild or a query failed.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// The store refused a read or a write.
    #[error("storage error: {0}")]
    Storage(#[from] StoreError),
    /// Reading the event log failed.
    #[error("event log: {0}")]
    Log(#[from] LogError),
    /// A value stored in a read model does not decode (or encode).
    #[error("codec: {0}")]
    Codec(String),
    /// An event contradicts what the read model holds; the projection stops
    /// at it rather than guess.
    #[error("invariant broken: {0}")]
    Invariant(String),
    /// A projection wrote under the reserved meta prefix.
    #[error("key {0:?} is reserved for the engine")]
    ReservedKey(Vec<u8>),
    /// The log handed an event out of order (a gap or a repeat).
    #[error("expected position {expected}, got {got}")]
    OutOfOrder { expected: u64, got: u64 },
    /// No projection has this name.
    #[error("no projection named `{0}`")]
    UnknownProjection(String),
    /// The projection's runner has stopped (the set is shutting down).
    #[error("the runner of `{0}` has stopped")]
    RunnerStopped(String),
    /// A query's cursor is not one this service handed out.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A rebuild of this projection is already running.
    #[error("a rebuild of `{0}` is already running")]
    RebuildRunning(String),
}

impl From<bincode::error::EncodeError> for ProjectionError {
    fn from(value: bincode::error::EncodeError) -> Self {
        ProjectionError::Codec(value.to_string())
    }
}

impl From<bincode::error::DecodeError> for ProjectionError {
    fn from(value: bincode::error::DecodeError) -> Self {
        ProjectionError::Codec(value.to_string())
    }
}

/// The crate's result type.
pub type Result<T, E = ProjectionError> = std::result::Result<T, E>;
