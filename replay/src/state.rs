//! Point-in-time state: an aggregate, or a read model, as it was at a log
//! position or a time.
//!
//! [`aggregate_state`] folds the stream's events up to the point with the
//! domain's own `Aggregate::evolve`: the state is exactly what `decide` saw
//! then (`<kind>-<uuid>` streams, and `legal-holds`, which holds every
//! legal hold). [`projection_state`] folds the log's prefix up to the point into a
//! temporary read-model tree with the projection's own `apply`, then asks
//! it the read model's questions (for `access-restrictions`: which
//! recordings were restricted, by whom and why, and which playback
//! permissions were live).
//!
//! "As of a time" means every event recorded at or before that time. For a
//! read model it is the log prefix up to the last such event (positions are
//! assigned in commit order, so the prefix is what the service had then).

use std::str::FromStr;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use srs_domain::log::{EventLog, EventStore};
use srs_domain::model::{
    parse_stream_name, Aggregate, DomainEvent, LegalHolds, PlaybackPermission, Policy, Recording,
    Retention, Server, SessionParts, Site, Token, LEGAL_HOLDS_STREAM,
};
use srs_domain::time::Timestamp;
use srs_projections::apply_events;
use srs_projections::models::access::{Access, AccessProjection};

use crate::error::ReplayError;
use crate::READ_BATCH;

/// A point in the log's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AsOf {
    /// Every event up to this position (inclusive).
    Position(u64),
    /// Every event recorded at or before this time.
    Time(Timestamp),
}

impl AsOf {
    fn admits(self, position: u64, recorded_at: Timestamp) -> bool {
        match self {
            AsOf::Position(p) => position <= p,
            AsOf::Time(t) => recorded_at <= t,
        }
    }

    fn to_json(self) -> Value {
        match self {
            AsOf::Position(p) => json!({ "position": p }),
            AsOf::Time(t) => json!({ "time": t.to_rfc3339() }),
        }
    }
}

impl FromStr for AsOf {
    type Err = ReplayError;

    /// A position (digits) or an RFC 3339 time.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(position) = text.parse::<u64>() {
            return Ok(AsOf::Position(position));
        }
        Timestamp::parse_rfc3339(text).map(AsOf::Time).map_err(|_| {
            ReplayError::Invalid(format!(
                "`{text}` is neither a log position nor an RFC 3339 time"
            ))
        })
    }
}

/// The read models [`projection_state`] can show as of a point.
pub const PROJECTION_STATES: &[&str] = &["access-restrictions"];

/// The aggregate of `stream` as it was at `as_of`, as JSON: `stream`,
/// `as_of`, `version` and `position` of the last event folded, `state`.
pub async fn aggregate_state(
    store: &EventLog<DomainEvent>,
    stream: &str,
    as_of: AsOf,
) -> Result<Value, ReplayError> {
    if stream == LEGAL_HOLDS_STREAM {
        // Every legal hold is on this one stream (no id in its name).
        return fold::<LegalHolds>(store, stream, as_of).await;
    }
    let Some((prefix, _)) = parse_stream_name(stream) else {
        return Err(ReplayError::Invalid(format!(
            "`{stream}` is not an aggregate stream (`<kind>-<uuid>`)"
        )));
    };
    match prefix {
        Site::STREAM_PREFIX => fold::<Site>(store, stream, as_of).await,
        Server::STREAM_PREFIX => fold::<Server>(store, stream, as_of).await,
        Policy::STREAM_PREFIX => fold::<Policy>(store, stream, as_of).await,
        Recording::STREAM_PREFIX => fold::<Recording>(store, stream, as_of).await,
        PlaybackPermission::STREAM_PREFIX => fold::<PlaybackPermission>(store, stream, as_of).await,
        Retention::STREAM_PREFIX => fold::<Retention>(store, stream, as_of).await,
        Token::STREAM_PREFIX => fold::<Token>(store, stream, as_of).await,
        SessionParts::STREAM_PREFIX => fold::<SessionParts>(store, stream, as_of).await,
        other => Err(ReplayError::Invalid(format!(
            "no aggregate has streams named `{other}-<uuid>`"
        ))),
    }
}

async fn fold<A: Aggregate + Serialize>(
    store: &EventLog<DomainEvent>,
    stream: &str,
    as_of: AsOf,
) -> Result<Value, ReplayError> {
    let mut state = A::default();
    let mut last: Option<(u64, u64)> = None;
    let mut next_version = 1;
    'read: loop {
        let batch = store.read_stream(stream, next_version, READ_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        for envelope in batch {
            if !as_of.admits(envelope.position, envelope.recorded_at) {
                break 'read;
            }
            state.evolve(&envelope.payload);
            last = Some((envelope.version, envelope.position));
            next_version = envelope.version + 1;
        }
    }
    let Some((version, position)) = last else {
        return Err(ReplayError::NotFound(format!(
            "stream {stream} has no events {}",
            match as_of {
                AsOf::Position(p) => format!("at or before position {p}"),
                AsOf::Time(t) => format!("recorded at or before {t}"),
            }
        )));
    };
    Ok(json!({
        "stream": stream,
        "as_of": as_of.to_json(),
        "version": version,
        "position": position,
        "state": serde_json::to_value(&state)?,
    }))
}

/// The read model `name` (one of [`PROJECTION_STATES`]) as it was at
/// `as_of`, as JSON. Built in a temporary database; the data directory's
/// own read models are not touched.
pub async fn projection_state(
    store: &EventLog<DomainEvent>,
    name: &str,
    as_of: AsOf,
) -> Result<Value, ReplayError> {
    if !PROJECTION_STATES.contains(&name) {
        return Err(ReplayError::Invalid(format!(
            "no point-in-time view of `{name}`; known: {}",
            PROJECTION_STATES.join(", ")
        )));
    }
    let scratch = sled::Config::new().temporary(true).open()?;
    let tree: srs_projections::store::Tree = scratch.open_tree(AccessProjection::NAME)?.into();
    let projection = AccessProjection;
    let mut checkpoint = 0u64;
    let head = EventStore::head(store).position;
    'read: while checkpoint < head {
        let mut batch = store.read_all(checkpoint + 1, READ_BATCH * 4).await?;
        if batch.is_empty() {
            break;
        }
        let keep = batch
            .iter()
            .position(|e| !as_of.admits(e.position, e.recorded_at))
            .unwrap_or(batch.len());
        let done = keep < batch.len();
        batch.truncate(keep);
        let applied = apply_events(&projection, &tree, checkpoint, &batch)?;
        if let Some(stopped) = applied.stopped {
            return Err(ReplayError::Invalid(format!(
                "the read model cannot fold the log: {stopped}"
            )));
        }
        checkpoint = applied.position;
        if done {
            break 'read;
        }
    }
    let access = Access::new(Arc::new(tree));
    Ok(json!({
        "projection": name,
        "as_of": as_of.to_json(),
        "position": checkpoint,
        "restricted": serde_json::to_value(access.restricted(None, usize::MAX)?)?,
        "permissions": serde_json::to_value(access.permissions(None)?)?,
    }))
}
