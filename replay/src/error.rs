//! The crate's one error type.

use std::path::PathBuf;

use srs_domain::log::LogError;
use srs_projections::ProjectionError;
use thiserror::Error;

/// Why a tool could not do its job.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// A running `srs serve` (or another tool) holds the directory.
    #[error("the data directory {0} is in use by another process (is `srs serve` running on it?)")]
    Locked(PathBuf),
    /// The directory holds no srs data.
    #[error("{0} holds no srs data")]
    NoData(PathBuf),
    /// The request itself is invalid (a bad position, time, stream, name).
    #[error("{0}")]
    Invalid(String),
    /// What was asked for does not exist (at that point in time).
    #[error("{0}")]
    NotFound(String),
    /// An export file is malformed, altered or truncated.
    #[error("the export file is not valid: {0}")]
    BadFile(String),
    /// The target of an import already holds data.
    #[error("{0}")]
    NotEmpty(String),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    #[error("storage error: {0}")]
    Storage(#[from] sled::Error),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl ReplayError {
    pub(crate) fn from_open(dir: &std::path::Path, e: LogError) -> Self {
        match e {
            LogError::Locked { .. } => ReplayError::Locked(dir.to_path_buf()),
            other => ReplayError::Log(other),
        }
    }
}
