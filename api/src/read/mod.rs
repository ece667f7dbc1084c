//! The read side's application layer: what the GraphQL resolvers ask of
//! the read models, and who may ask it. Each function takes the
//! [`Services`](crate::state::Services), the caller and the query's arguments
//! (already parsed into domain and read-model values), decides through
//! [`access`] what the caller may see, waits for `atLeast` where the query
//! has one, and returns read-model rows or domain values; the resolvers
//! only parse GraphQL input, call one of these and convert the result to
//! GraphQL types. Every answer is computed from the read models (or the
//! log) when asked: nothing is kept between requests.
//!
//! Reads never append to the log and never load a write-side aggregate;
//! the one thing they may write is a refusal (`AccessDenied`), through
//! [`access::deny`] or the domain's `Service::authorize`, exactly as a
//! command's refusal is written.
//!
//! # Layout
//!
//! - [`access`]: every read authorization decision: the role table
//!   (`model::may`, the domain's, asked only from here on the read path),
//!   site scopes, grant-only auditor visibility, restrictions, hold
//!   visibility, and the recording of refusals.
//! - [`agents`]: what a server's agent reads (its configuration, the
//!   count of its pending responses).
//! - [`servers`]: sites, servers, a server's pending responses.
//! - [`recordings`]: the recordings a caller sees, and what belongs to
//!   one (session events, performance, detections, comments, responses).
//! - [`detections`]: detected events of the recordings a caller sees.
//! - [`dashboard`]: the dashboard, its server health, the site
//!   visualization.
//! - [`policies`]: a site's policies, retention policy, playback
//!   permissions.
//! - [`holds`]: legal holds as a caller may see them.
//! - [`nodes`]: `node(id)`: one object of one kind, as the caller may
//!   see it.
//! - [`tokens`]: tokens (ADMIN).
//! - [`audit`]: the admin audit trail.
//! - [`chain`]: `verify`, the log's hash chain walked from a position.
//! - [`history`]: the raw event history, as a caller may see it.
//! - [`projections`]: the read models' runners' statuses.
//! - [`playback`]: a recording's timeline and stored content as its log
//!   stream holds them, for `Recording.playback` (a read: nothing is
//!   recorded) and `playRecording` (the audited playback).

pub mod access;
pub mod agents;
pub mod audit;
pub mod chain;
pub mod dashboard;
pub mod detections;
pub mod history;
pub mod holds;
pub mod nodes;
pub mod playback;
pub mod policies;
pub mod projections;
pub mod recordings;
pub mod servers;
pub mod tokens;

/// One page of a listing: its items with their cursors, whether another
/// page follows and where this one ends, and the total when it was asked
/// for.
pub struct Page<T> {
    pub items: Vec<(String, T)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
    pub total_count: Option<u64>,
}
