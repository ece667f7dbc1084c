//! The application layer: loads an aggregate from the log, decides, and
//! appends with the expected version. Thin on purpose: every business rule
//! lives in `model`; this layer gathers the facts a command needs (the
//! site's active policies, the caller's playback permissions, ...), checks
//! the caller's role, and writes.
//!
//! # Layout
//!
//! - `service`: [`Service`] with [`Service::execute`] / [`Service::load`],
//!   the [`PermissionSource`] it asks for playback permissions, [`Executed`].
//! - `commands`: one `Service` method per API mutation, one module per aggregate.
//! - `migrations`: the one-time migrations `srs serve` runs on start.
//! - `denials`: refusal facts at most one per request and at a bounded
//!   rate per principal ([`Service::deny`], [`Service::coalescing_denials`]).
//! - `cache`: the bounded cache of folded states that makes loading a long
//!   recording incremental.
//! - `error`: [`AppError`] and its stable codes.
//! - `testing` (tests only): the real sled log behind a spy and a service
//!   over it; each aggregate's tests sit beside its commands
//!   (`commands/<aggregate>/tests.rs`), the machinery's beside `service`.
//!
//! # Concurrency
//!
//! Every append names the stream version the decision was based on. When
//! the caller passed an `expectedVersion` and it is stale, the answer is
//! `CONFLICT`. Otherwise a conflicting append is decided again on the fresh
//! state, at most [`ServiceConfig::max_retries`] times.
//!
//! # Secrets
//!
//! Agent credentials and tokens are 32 random bytes from the OS, returned
//! once as `srs_<hex>`; only their SHA-256 reaches the log.

mod cache;
mod commands;
mod denials;
mod error;
mod migrations;
mod service;

#[cfg(test)]
mod testing;

pub use commands::{
    bootstrap_token_id, ActivePolicies, ConnectServer, ContentTarget, Created, IssuedToken,
    RecordedEvents, RotatedToken, ServerCredential, StartRecordingInput, StartedRecording,
    MAX_PARTS, PLAYBACK_WINDOW_SECS,
};
pub use denials::DenialCounts;
pub use error::AppError;
pub use migrations::Migrated;
pub use service::{
    Executed, InMemoryPermissions, Loaded, PermissionSource, Service, ServiceConfig,
    DENIAL_FACTS_PER_MINUTE,
};
