//! The API's one error type and its stable codes.
//!
//! Every resolver returns [`ApiError`]; it becomes a GraphQL error whose
//! `extensions.code` is one of [`Code`]. Internal causes are logged here,
//! with the request id of the span they happen in, and replaced by a generic
//! message: a client never sees a storage path or a panic text.
//!
//! Errors that async-graphql raises itself (parse errors, unknown fields,
//! bad input values, depth / complexity limits) carry no code when they leave
//! the executor; [`ensure_codes`] labels them `VALIDATION`, since each of
//! them is a malformed request.

use std::fmt;

use async_graphql::{ErrorExtensions, ServerError};
use srs_domain::app::AppError;
use srs_domain::log::{AppendError, LogError};
use srs_domain::model::ErrorCode;

/// The stable error codes of the contract (`extensions.code`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    Validation,
    Timeout,
    Internal,
    /// Over a rate or concurrency limit; HTTP answers carry `Retry-After`.
    RateLimited,
    /// Storage cannot take writes now (a full disk); nothing was
    /// acknowledged. Retry later (with the same ids: idempotent). HTTP 503.
    Unavailable,
    /// The log says a recording has content that is not on disk (its key
    /// or a chunk file is missing, e.g. a data directory copied without
    /// its `content/`): HTTP 409, never a short 200. 409 rather than 410:
    /// nothing says the content is gone for good (restoring the files
    /// heals it), and a deleted recording answers otherwise.
    ContentMissing,
}

impl Code {
    /// The code as clients see it, e.g. `NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::Unauthenticated => "UNAUTHENTICATED",
            Code::Forbidden => "FORBIDDEN",
            Code::NotFound => "NOT_FOUND",
            Code::Conflict => "CONFLICT",
            Code::Validation => "VALIDATION",
            Code::Timeout => "TIMEOUT",
            Code::Internal => "INTERNAL",
            Code::RateLimited => "RATE_LIMITED",
            Code::Unavailable => "UNAVAILABLE",
            Code::ContentMissing => "CONTENT_MISSING",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<ErrorCode> for Code {
    fn from(value: ErrorCode) -> Self {
        match value {
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::Conflict => Code::Conflict,
            ErrorCode::Validation => Code::Validation,
            ErrorCode::Forbidden => Code::Forbidden,
        }
    }
}

/// An error as the API reports it: a code and a message safe for clients.
///
/// Deliberately not `Display`: async-graphql turns any `Display` error into
/// a GraphQL error without a code, and that conversion must not be the one
/// `?` picks. Resolvers return [`ApiResult`], so every error reaching a
/// client went through one of the explicit `From` impls below.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: Code,
    pub message: String,
}

/// The message every internal failure is reported with.
const INTERNAL_MESSAGE: &str = "internal error; the server log has the details";

/// The message of [`Code::Unavailable`]: the cause (a path, an OS error)
/// goes to the server log only.
pub const UNAVAILABLE_MESSAGE: &str = "storage cannot take writes right now (the disk may be full); nothing was acknowledged: retry later, with the same ids where the request has them";

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        ApiError {
            code,
            message: message.into(),
        }
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthenticated, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(Code::Validation, message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(Code::Timeout, message)
    }

    /// Storage refused a write: `cause` goes to the server log only.
    pub fn unavailable(cause: impl fmt::Display) -> Self {
        tracing::warn!(cause = %cause, "storage unavailable");
        Self::new(Code::Unavailable, UNAVAILABLE_MESSAGE)
    }

    /// An internal failure: `cause` goes to the server log only.
    pub fn internal(cause: impl fmt::Display) -> Self {
        tracing::error!(cause = %cause, "internal error");
        Self::new(Code::Internal, INTERNAL_MESSAGE)
    }
}

impl From<AppError> for ApiError {
    fn from(value: AppError) -> Self {
        match value.code() {
            Some(code) => ApiError::new(code.into(), value.to_string()),
            None if matches!(&value, AppError::Log(log) if log.is_unavailable()) => {
                ApiError::unavailable(value)
            }
            None => ApiError::internal(value),
        }
    }
}

impl From<LogError> for ApiError {
    fn from(value: LogError) -> Self {
        if value.is_unavailable() {
            return ApiError::unavailable(value);
        }
        ApiError::internal(value)
    }
}

impl From<AppendError> for ApiError {
    fn from(value: AppendError) -> Self {
        match value {
            AppendError::Conflict(conflict) => ApiError::new(Code::Conflict, conflict.to_string()),
            AppendError::Log(log) => log.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<srs_projections::ProjectionError> for ApiError {
    fn from(value: srs_projections::ProjectionError) -> Self {
        match value {
            srs_projections::ProjectionError::InvalidCursor => {
                ApiError::validation("invalid cursor")
            }
            srs_projections::ProjectionError::Storage(ref storage) if storage.is_io() => {
                ApiError::unavailable(value)
            }
            srs_projections::ProjectionError::Log(log) => log.into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<ApiError> for async_graphql::Error {
    fn from(value: ApiError) -> Self {
        let code = value.code;
        async_graphql::Error::new(value.message)
            .extend_with(|_, ext| ext.set("code", code.as_str()))
    }
}

/// Gives every error of a response a code: those async-graphql raised
/// itself (parse, validation, input coercion, limits) are `VALIDATION`.
pub fn ensure_codes(errors: &mut [ServerError]) {
    for error in errors {
        let has_code = error
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if !has_code {
            error
                .extensions
                .get_or_insert_with(Default::default)
                .set("code", Code::Validation.as_str());
        }
    }
}

/// The first error code of a response, for metrics (`ok` when none).
pub fn first_code(errors: &[ServerError]) -> &'static str {
    let Some(first) = errors.first() else {
        return "ok";
    };
    let code = first.extensions.as_ref().and_then(|ext| ext.get("code"));
    match code {
        Some(async_graphql::Value::String(code)) => match code.as_str() {
            "UNAUTHENTICATED" => "UNAUTHENTICATED",
            "FORBIDDEN" => "FORBIDDEN",
            "NOT_FOUND" => "NOT_FOUND",
            "CONFLICT" => "CONFLICT",
            "VALIDATION" => "VALIDATION",
            "TIMEOUT" => "TIMEOUT",
            "RATE_LIMITED" => "RATE_LIMITED",
            "UNAVAILABLE" => "UNAVAILABLE",
            _ => "INTERNAL",
        },
        _ => "VALIDATION",
    }
}

/// A resolver's result.
pub type ApiResult<T> = Result<T, ApiError>;
