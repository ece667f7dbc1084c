//! The scope of one API request's execution, set by `POST /graphql`
//! around it ([`in_request`]):
//!
//! - refusals are gathered into at most one fact per request
//!   ([`srs_domain::app::Service::coalescing_denials`]);
//! - a recording is played at most once per request: every
//!   `playRecording` of the same recording in one request (aliases)
//!   shares one `RecordingPlayed` fact and one answer. A failed playback is not kept, so each alias that is
//!   refused counts as a refusal of its own (into the one fact).
//!
//! Outside a scope (subscriptions over WebSocket, tests that run the schema
//! directly) each playback records its own fact and each refusal is
//! written at once, still within the per-principal rate of refusal facts.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;
use uuid::Uuid;

use super::types::Playback;
use crate::error::ApiResult;
use crate::state::Services;

type Playbacks = Arc<Mutex<HashMap<Uuid, Arc<OnceCell<Arc<Playback>>>>>>;

tokio::task_local! {
    /// The playbacks of the request being executed on this task.
    static PLAYBACKS: Playbacks;
}

/// Runs `work`, the execution of one request, in a request scope (see the
/// module docs); the request's refusal fact is written before it returns.
pub async fn in_request<F: Future>(services: &Services, work: F) -> F::Output {
    services
        .service
        .coalescing_denials(PLAYBACKS.scope(Playbacks::default(), work))
        .await
}

/// The playback of `recording` in this request: `play` runs for the
/// first one that succeeds, later ones share its answer.
pub(super) async fn play_once<F, Fut>(recording: Uuid, play: F) -> ApiResult<Arc<Playback>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ApiResult<Playback>>,
{
    let cell = PLAYBACKS
        .try_with(|playbacks| {
            playbacks
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(recording)
                .or_default()
                .clone()
        })
        .ok();
    match cell {
        Some(cell) => cell
            .get_or_try_init(|| async { play().await.map(Arc::new) })
            .await
            .cloned(),
        None => play().await.map(Arc::new),
    }
}
