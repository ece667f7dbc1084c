//! The projection engine, generic over the log's payload type.
//!
//! # Layout
//!
//! - `overlay`: [`Overlay`], the uncommitted writes `apply` reads and
//!   writes through.
//! - `status`: [`ProjectionStatus`], [`RunnerState`], [`RebuildProgress`].
//! - `runner`: the task that folds the log into one projection's tree.
//! - `reactor`: [`Reactor`], a follower whose effect is outside the store
//!   (content deletion), run like a projection.
//! - `rebuild`: [`Rebuild`], building fresh trees in one pass over the log,
//!   and the offline [`rebuild_all`].
//! - `set`: [`ProjectionSet`], the running projections: statuses,
//!   [`ProjectionSet::wait_for`], rebuild, the current trees.

mod overlay;
mod reactor;
mod rebuild;
mod runner;
mod set;
mod status;

use srs_domain::log::{Envelope, Event};

use crate::error::{ProjectionError, Result};
use crate::store::{Keyspace, Tree, META_PREFIX};

pub use crate::store::{parse_tree_name, tree_name, REGISTRY_TREE};
pub use overlay::{read_counter, Changes, Overlay};
pub use reactor::{
    reactor_tree_name, seed_reactor_checkpoint, ReactError, Reactor, REACTOR_VERSION,
};
pub use rebuild::{rebuild_all, Rebuild, RebuildReport, OVERLAY_BUDGET};
pub use set::{ProjectionSet, SetOptions, WaitError, Which};
pub use status::{ProjectionStatus, RebuildProgress, RunnerState};

/// A read model: how each event changes the data in its tree.
///
/// `apply` must be deterministic: the same events in the same order give
/// the same tree, whether applied live, in other batch sizes, or by a
/// rebuild. It must not read the clock or anything outside `writes` and the
/// envelope. An `Err` stops the projection at that event (its writes are
/// discarded); it is never skipped.
pub trait Projection<E: Event>: Send + Sync + 'static {
    /// A stable name: it names the tree and the status.
    fn name(&self) -> &'static str;

    /// Bumped whenever `apply` or the tree's layout changes: a stored tree
    /// of another version is rebuilt from position 1 on start.
    fn version(&self) -> u32;

    /// Folds one event into the read model.
    fn apply(&self, writes: &mut Overlay, event: &Envelope<E>) -> Result<()>;

    /// Called with a batch's overlay right before it is committed (live,
    /// catching up, or a rebuild's commit): a read model can derive keys
    /// from what the batch changed ([`Overlay::written_keys`],
    /// [`Overlay::stored`]) once per batch instead of once per event. Its
    /// writes join the same commit. It must be deterministic: it sees
    /// only the tree and the overlay, and the tree it leaves after the
    /// last commit must not depend on where the batches were cut. An
    /// error fails the commit. By default it does nothing.
    fn before_commit(&self, _writes: &mut Overlay) -> Result<()> {
        Ok(())
    }

    /// Called after a batch is committed to `tree` (live, catching up, or a
    /// rebuild's tree: the tree's name tells which generation), with what
    /// the batch changed and the new checkpoint, before the runner
    /// publishes that position: a read model that keeps derived state in
    /// memory refreshes it here, so `wait_for(position)` implies it is
    /// fresh. It must not fail; by default it does nothing.
    fn committed(&self, _tree: &Tree, _changes: &Changes, _checkpoint: u64) {}
}

/// Where a projection stopped inside a batch.
#[derive(Debug)]
pub struct Stopped {
    pub position: u64,
    pub event_type: &'static str,
    pub error: ProjectionError,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "stopped at position {} ({}): {}",
            self.position, self.event_type, self.error
        )
    }
}

/// The outcome of [`apply_events`].
#[derive(Debug)]
pub struct Applied {
    /// The checkpoint after the batch.
    pub position: u64,
    /// How many events were applied.
    pub count: u64,
    /// Set when an event failed: the batch was committed up to the event
    /// before it.
    pub stopped: Option<Stopped>,
}

/// Applies `events` to `tree` after its checkpoint `checkpoint` and commits
/// data and checkpoint in one atomic write. Events at or before the
/// checkpoint are ignored (they are already in); a gap is an error that
/// stops the batch. `Err` means the commit itself failed and nothing of the
/// batch was written.
pub fn apply_events<E: Event>(
    projection: &dyn Projection<E>,
    tree: &Tree,
    checkpoint: u64,
    events: &[Envelope<E>],
) -> Result<Applied> {
    let mut writes = Overlay::new(tree.clone());
    let (position, stopped) = fold_events(projection, &mut writes, checkpoint, events);
    let count = position - checkpoint;
    if count > 0 || !writes.is_empty() {
        projection.before_commit(&mut writes)?;
        let changes = writes.commit(position, projection.version())?;
        projection.committed(tree, &changes, position);
    }
    Ok(Applied {
        position,
        count,
        stopped,
    })
}

/// Applies `events` after `checkpoint` into `writes` without committing:
/// the position reached, and where it stopped if an event failed (that
/// event's writes are discarded, the ones before it stay in `writes`).
pub(crate) fn fold_events<E: Event>(
    projection: &dyn Projection<E>,
    writes: &mut Overlay,
    checkpoint: u64,
    events: &[Envelope<E>],
) -> (u64, Option<Stopped>) {
    let mut position = checkpoint;
    for event in events.iter().filter(|e| e.position > checkpoint) {
        if event.position != position + 1 {
            let stopped = Stopped {
                position: event.position,
                event_type: event.payload.event_type(),
                error: ProjectionError::OutOfOrder {
                    expected: position + 1,
                    got: event.position,
                },
            };
            return (position, Some(stopped));
        }
        match projection.apply(writes, event) {
            Ok(()) => {
                writes.seal_event();
                position = event.position;
            }
            Err(error) => {
                writes.discard_event();
                let stopped = Stopped {
                    position: event.position,
                    event_type: event.payload.event_type(),
                    error,
                };
                return (position, Some(stopped));
            }
        }
    }
    (position, None)
}

/// The stored checkpoint of a projection tree (0 for a fresh one).
pub fn checkpoint_of(tree: &Tree) -> Result<u64> {
    overlay::stored_checkpoint(tree)
}

/// The projection version that wrote a tree (`None` for a fresh one):
/// offline tools compare it with the code's to tell a stale tree.
pub fn version_of(tree: &Tree) -> Result<Option<u32>> {
    overlay::stored_version(tree)
}

/// Every data entry of a projection tree (the checkpoint and version left
/// out), in key order: what tests compare between live and rebuilt trees.
pub fn dump(tree: &Tree) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut out = Vec::new();
    for kv in tree.iter() {
        let (k, v) = kv?;
        if k.first() != Some(&META_PREFIX) {
            out.push((k.to_vec(), v.to_vec()));
        }
    }
    Ok(out)
}
