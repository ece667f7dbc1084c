//! What a runner shows of itself: [`ProjectionStatus`].

use serde::Serialize;

/// Where a projection's runner is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunnerState {
    /// Applying the events that were in the log when it started.
    CatchingUp,
    /// Caught up once; following new commits as they become durable.
    Live,
    /// Its tree is being rebuilt from position 1 (after a version change,
    /// queries answer from the partial tree) or a shadow tree is being
    /// built (queries keep answering from the live one); see `rebuild`.
    Rebuilding,
    /// Stopped at the event in `last_error`; it is not skipped. A rebuild
    /// (after a fix) starts it again.
    Failed,
}

/// How far a running rebuild is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RebuildProgress {
    /// The generation of the tree being built.
    pub generation: u64,
    /// The last position applied to it (the rebuild commits it to the
    /// tree in larger steps; nothing reads the tree before the swap).
    pub position: u64,
    /// The log head when the rebuild started; it then catches up the rest.
    pub target: u64,
}

/// A snapshot of one projection's runner; cheap to read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProjectionStatus {
    pub name: String,
    /// The code's version of the projection.
    pub version: u32,
    /// The generation of the tree queries are served from.
    pub generation: u64,
    /// The last log position applied (the checkpoint).
    pub position: u64,
    /// The durable log head when this snapshot was taken.
    pub head: u64,
    /// `head - position`.
    pub lag: u64,
    /// Events applied per second over the last measuring window (0 when idle).
    pub events_per_sec: f64,
    pub state: RunnerState,
    /// The error that stopped the projection (or the last rebuild), with the
    /// position and type of the event it stopped at.
    pub last_error: Option<String>,
    /// Set while a rebuild runs.
    pub rebuild: Option<RebuildProgress>,
}

impl ProjectionStatus {
    pub(crate) fn new(
        name: &str,
        version: u32,
        generation: u64,
        position: u64,
        state: RunnerState,
    ) -> Self {
        ProjectionStatus {
            name: name.to_string(),
            version,
            generation,
            position,
            head: position,
            lag: 0,
            events_per_sec: 0.0,
            state,
            last_error: None,
            rebuild: None,
        }
    }
}
