//! The application layer's one error type. Every domain error keeps its own
//! variant (and so its message and code); log failures are internal.

use thiserror::Error;

use crate::log::{AppendError, Conflict, LogError};
use crate::model::{
    Coded, ErrorCode, HoldError, PermissionError, PolicyError, RecordingError, RetentionError,
    ServerError, SessionError, SiteError, TokenError,
};

/// Why a use case failed. [`AppError::code`] is what the API reports.
#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Site(#[from] SiteError),
    #[error(transparent)]
    Server(#[from] ServerError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Permission(#[from] PermissionError),
    #[error(transparent)]
    Retention(#[from] RetentionError),
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Session(#[from] SessionError),
    /// Legal holds; a deletion of a held recording is `CONFLICT`.
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The stream moved on: a stale expected version, or retries exhausted.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Validation(String),
    /// Refused by role or scope; the attempt is recorded as `AccessDenied`.
    #[error("{0}")]
    Forbidden(String),
    /// The log failed; details are for the server log, not for clients.
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    /// The stable code, or `None` for internal failures (`INTERNAL`).
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            AppError::Site(e) => e.code(),
            AppError::Server(e) => e.code(),
            AppError::Policy(e) => e.code(),
            AppError::Recording(e) => e.code(),
            AppError::Permission(e) => e.code(),
            AppError::Retention(e) => e.code(),
            AppError::Token(e) => e.code(),
            AppError::Session(e) => e.code(),
            AppError::Hold(e) => e.code(),
            AppError::Conflict(_) => ErrorCode::Conflict,
            AppError::NotFound(_) => ErrorCode::NotFound,
            AppError::Validation(_) => ErrorCode::Validation,
            AppError::Forbidden(_) => ErrorCode::Forbidden,
            AppError::Log(_) | AppError::Internal(_) => return None,
        })
    }

    /// The code as the API spells it: `NOT_FOUND`, ..., or `INTERNAL`.
    pub fn code_str(&self) -> &'static str {
        self.code().map_or("INTERNAL", ErrorCode::as_str)
    }

    /// Whether the message must not reach clients.
    pub fn is_internal(&self) -> bool {
        self.code().is_none()
    }
}

impl From<AppendError> for AppError {
    fn from(value: AppendError) -> Self {
        match value {
            AppendError::Conflict(conflict) => AppError::Conflict(conflict),
            AppendError::Log(log) => AppError::Log(log),
            // The app layer builds every append; an invalid one is a bug here.
            AppendError::Invalid(reason) => AppError::Internal(format!("invalid append: {reason}")),
        }
    }
}
