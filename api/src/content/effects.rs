//! [`ContentEffects`]: follows the log and makes the content store match
//! the recordings' lifecycle: `RecordingArchived` moves the chunks to the
//! archive area, `RecordingRestored` moves them back, `RecordingDeleted`
//! shreds the key and removes the chunks.
//!
//! Whoever appended the event (a mutation, the retention scheduler, a
//! future tool), the effect follows. The effects are idempotent, so the
//! checkpoint (in the `content` sled tree) may lag: after a crash the
//! follower applies some events again, never skips one. A failing effect
//! is retried (with a pause) until it succeeds; it is never skipped, since
//! a skipped delete would leave a key behind. Callers that must answer only
//! once the effect is done (the delete mutation, a retention run) wait with
//! [`ContentEffects::settled`].

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use srs_domain::log::EventStore;
use srs_domain::model::DomainEvent;
use srs_projections::store::{Keyspace, StoreError, Tree};
use tokio::sync::watch;
use uuid::Uuid;

use super::store::{Area, ContentError, ContentStore};

const CHECKPOINT_KEY: &[u8] = b"effects/checkpoint";
/// The checkpoint is written at least this often (in events) without effects.
const CHECKPOINT_EVERY: u64 = 4_096;
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// The follower's progress; cheap to clone.
#[derive(Clone, Debug)]
pub struct ContentEffects {
    applied: watch::Receiver<u64>,
}

/// The effect an event has on the content store, if any.
fn effect(event: &DomainEvent) -> Option<(Uuid, Effect)> {
    match event {
        DomainEvent::RecordingArchived { recording_id, .. } => {
            Some((*recording_id, Effect::Move(Area::Archive)))
        }
        DomainEvent::RecordingRestored { recording_id, .. } => {
            Some((*recording_id, Effect::Move(Area::Live)))
        }
        DomainEvent::RecordingDeleted { recording_id, .. } => Some((*recording_id, Effect::Shred)),
        _ => None,
    }
}

#[derive(Clone, Copy, Debug)]
enum Effect {
    Move(Area),
    Shred,
}

async fn apply(content: &Arc<ContentStore>, id: Uuid, effect: Effect) -> Result<(), ContentError> {
    let _guard = content.lock(id).await;
    let content = content.clone();
    tokio::task::spawn_blocking(move || match effect {
        Effect::Move(area) => content.move_to(id, area),
        Effect::Shred => content.shred(id),
    })
    .await
    .unwrap_or_else(|join| {
        Err(ContentError::Io {
            path: Default::default(),
            source: std::io::Error::other(join.to_string()),
        })
    })
}

impl ContentEffects {
    /// Starts the follower from its checkpoint. It stops when `shutdown`
    /// turns true.
    pub fn start(
        store: Arc<dyn EventStore<DomainEvent>>,
        content: Arc<ContentStore>,
        tree: Tree,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<ContentEffects, StoreError> {
        let checkpoint = tree
            .get(CHECKPOINT_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        let (applied_tx, applied) = watch::channel(checkpoint);
        tokio::spawn(async move {
            let mut events = store.subscribe(checkpoint + 1);
            let mut unsaved = 0u64;
            loop {
                let next = tokio::select! {
                    next = events.next() => next,
                    _ = shutdown.wait_for(|stop| *stop) => return,
                };
                let envelope = match next {
                    Some(Ok(envelope)) => envelope,
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "content effects: reading the log failed; resubscribing");
                        tokio::time::sleep(RETRY_PAUSE).await;
                        events = store.subscribe(*applied_tx.borrow() + 1);
                        continue;
                    }
                    None => return,
                };
                let position = envelope.position;
                if let Some((id, effect)) = effect(&envelope.payload) {
                    while let Err(e) = apply(&content, id, effect).await {
                        tracing::error!(error = %e, recording = %id, ?effect, "content effect failed; retrying");
                        tokio::select! {
                            () = tokio::time::sleep(RETRY_PAUSE) => {}
                            _ = shutdown.wait_for(|stop| *stop) => return,
                        }
                    }
                    unsaved = CHECKPOINT_EVERY;
                } else {
                    unsaved += 1;
                }
                if unsaved >= CHECKPOINT_EVERY {
                    let saved = [(
                        CHECKPOINT_KEY.to_vec(),
                        Some(position.to_be_bytes().to_vec()),
                    )];
                    if let Err(e) = tree.apply(&saved.into_iter().collect(), None) {
                        tracing::warn!(error = %e, "content effects: cannot save the checkpoint");
                    }
                    unsaved = 0;
                }
                let _ = applied_tx.send(position);
            }
        });
        Ok(ContentEffects { applied })
    }

    /// The last log position whose effect is done.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the effects of every event up to `position` are done;
    /// false when `timeout` passed first.
    pub async fn settled(&self, position: u64, timeout: Duration) -> bool {
        let mut applied = self.applied.clone();
        tokio::time::timeout(timeout, applied.wait_for(|&at| at >= position))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}
