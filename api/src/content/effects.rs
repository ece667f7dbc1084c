//! [`ContentEffects`]: follows the log and makes the content store match
//! the recordings' lifecycle: `RecordingArchived` moves the chunks to the
//! archive area, `RecordingRestored` moves them back, `RecordingDeleted`
//! shreds the key and removes the chunks.
//!
//! Whoever appended the event (a mutation, the retention scheduler, a
//! future tool), the effect follows. It is a [`Reactor`] run by the
//! projection engine beside the read models (`content-effects` in the
//! statuses of `srs projections` and `/metrics`): its checkpoint is kept
//! in the store like a projection's, and may lag the effects: they are
//! idempotent, so after a crash the reactor applies some events again,
//! never skips one. A failing effect is retried (with a pause) until it
//! succeeds; it is never skipped, since a skipped delete would leave a key
//! behind. Callers that must answer only once the effect is done (the
//! delete mutation, a retention run) wait with [`ContentEffects::settled`]
//! (and `atLeast` waits for it like for the read models).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use srs_domain::log::Envelope;
use srs_domain::model::DomainEvent;
use srs_projections::engine::seed_reactor_checkpoint;
use srs_projections::store::{Db, Keyspace, Tree};
use srs_projections::{ProjectionError, ReactError, Reactor, ReadModels, Which};
use uuid::Uuid;

use super::store::{Area, ContentError, ContentStore};

/// The reactor's name (its status and checkpoint).
pub const CONTENT_EFFECTS: &str = "content-effects";

/// Where the checkpoint was kept before the effects ran as a reactor
/// (in the `content` tree).
const LEGACY_CHECKPOINT_KEY: &[u8] = b"effects/checkpoint";

/// The effects the content store follows, as a reactor.
struct ContentReactor {
    content: Arc<ContentStore>,
}

/// The reactor's progress, for callers that wait for it; cheap to clone.
#[derive(Clone)]
pub struct ContentEffects {
    reads: ReadModels,
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

impl Reactor<DomainEvent> for ContentReactor {
    fn name(&self) -> &'static str {
        CONTENT_EFFECTS
    }

    fn react<'a>(
        &'a self,
        event: &'a Envelope<DomainEvent>,
    ) -> BoxFuture<'a, Result<(), ReactError>> {
        Box::pin(async move {
            if let Some((id, effect)) = effect(&event.payload) {
                apply(&self.content, id, effect).await?;
            }
            Ok(())
        })
    }
}

impl ContentEffects {
    /// The reactor to run with the read models (see
    /// [`ReadModels::start_with_reactors`]) over `content`.
    pub fn reactor(content: Arc<ContentStore>) -> Arc<dyn Reactor<DomainEvent>> {
        Arc::new(ContentReactor { content })
    }

    /// Carries over the checkpoint the content effects kept in `legacy`
    /// (the `content` tree, key `effects/checkpoint`) before they ran as a
    /// reactor, so that a data directory written then does not run every
    /// effect again from position 1. Does nothing once the reactor has a
    /// checkpoint of its own.
    pub fn carry_over_checkpoint(db: &Db, legacy: &Tree) -> Result<(), ProjectionError> {
        let Some(position) = legacy
            .get(LEGACY_CHECKPOINT_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map(u64::from_be_bytes)
        else {
            return Ok(());
        };
        if seed_reactor_checkpoint(db, CONTENT_EFFECTS, position)? {
            tracing::info!(position, "content effects: checkpoint carried over");
        }
        Ok(())
    }

    /// The handle of the reactor running in `reads`.
    pub fn new(reads: ReadModels) -> Self {
        ContentEffects { reads }
    }

    /// The last log position whose effect is done.
    pub fn applied(&self) -> u64 {
        self.reads
            .set()
            .status(CONTENT_EFFECTS)
            .map_or(0, |s| s.position)
    }

    /// Waits until the effects of every event up to `position` are done;
    /// false when `timeout` passed first.
    pub async fn settled(&self, position: u64, timeout: Duration) -> bool {
        self.reads
            .wait_for(Which::Only(&[CONTENT_EFFECTS]), position, timeout)
            .await
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use srs_projections::engine::reactor_tree_name;
    use srs_projections::store::{Changes, Store};

    use super::*;

    fn checkpoint(db: &Db) -> Option<u64> {
        let tree = db.open(&reactor_tree_name(CONTENT_EFFECTS)).unwrap();
        tree.checkpoint().unwrap().map(|c| c.position)
    }

    /// A data directory whose effects kept their checkpoint in the
    /// `content` tree resumes from it, once.
    #[test]
    fn the_old_checkpoint_is_carried_over_once() {
        let db = Db::temporary().unwrap();
        let legacy = db.open("content").unwrap();
        ContentEffects::carry_over_checkpoint(&db, &legacy).unwrap();
        assert_eq!(checkpoint(&db), None, "nothing to carry over");
        let old: Changes = [(
            LEGACY_CHECKPOINT_KEY.to_vec(),
            Some(42u64.to_be_bytes().to_vec()),
        )]
        .into_iter()
        .collect();
        legacy.apply(&old, None).unwrap();
        ContentEffects::carry_over_checkpoint(&db, &legacy).unwrap();
        assert_eq!(checkpoint(&db), Some(42));
        let older: Changes = [(
            LEGACY_CHECKPOINT_KEY.to_vec(),
            Some(7u64.to_be_bytes().to_vec()),
        )]
        .into_iter()
        .collect();
        legacy.apply(&older, None).unwrap();
        ContentEffects::carry_over_checkpoint(&db, &legacy).unwrap();
        assert_eq!(checkpoint(&db), Some(42), "the reactor's own one stands");
    }
}
