//! srs-projections: the projection engine and the read models of srs.
//!
//! # Contract
//!
//! * **One tree per projection, checkpoint inside.** A projection's data
//!   and its checkpoint (the last log position it applied) live in the same
//!   tree of the [`store`] and are written by the same atomic
//!   [`Keyspace::apply`](store::Keyspace::apply). After a crash at
//!   any moment the tree holds the effects of exactly the events up to its
//!   checkpoint: none applied twice, none skipped. Unflushed batches may be
//!   lost in a crash, together with their checkpoint; the runner then
//!   re-applies them from the log. Projections only ever see durable events.
//! * **Stop, never skip.** An event whose `apply` fails stops that
//!   projection at that event (the events before it in the batch are
//!   committed); its status shows the error; the other projections go on.
//! * **Versioned.** A tree written by another version of a projection's
//!   code is replaced by a fresh one filled from position 1 on start (its
//!   old layout cannot be read by the new code, so queries answer from the
//!   partial new tree and `wait_for` holds them until it catches up).
//! * **Rebuild beside, swap atomically.** A rebuild fills a new tree
//!   generation while queries keep answering from the current one, catches
//!   it up to the live position, flips the pointer (persisted in the
//!   `projections` registry tree) and drops the old tree once no query
//!   holds it. A rebuild interrupted by a crash leaves the old tree current;
//!   the partial one is dropped on the next start.
//! * **Read your writes.** [`ProjectionSet::wait_for`] returns once the
//!   chosen projections have applied a position (woken by each commit).
//! * **Reactors follow the same way.** A [`Reactor`] (an effect outside the
//!   store: content moved or shredded) is run by the same engine: its
//!   checkpoint in the store, catch-up, status and `wait_for`; its effect
//!   is retried until it succeeds, never skipped, and must be idempotent
//!   per position.
//!
//! # Layout
//!
//! - [`store`]: where the data is kept: the [`Store`](store::Store) and
//!   [`Keyspace`](store::Keyspace) traits, tree generations, and their
//!   sled implementation (the layout data directories already hold).
//! - [`engine`]: the generic engine: [`Projection`], [`Overlay`],
//!   [`ProjectionSet`], [`Rebuild`], [`rebuild_all`], statuses.
//! - [`models`]: the read models over `DomainEvent` (catalogue, access,
//!   detections, dashboard, servers, policies, comments, audit, tokens,
//!   legal holds, the history index) and
//!   [`ReadModels`], the typed entry point the API uses.
//! - [`codec`]: value encoding (bincode) and ordered key building.
//! - `error`: [`ProjectionError`].
#![forbid(unsafe_code)]

pub mod codec;
pub mod engine;
mod error;
pub mod models;
pub mod store;

pub use engine::{
    apply_events, checkpoint_of, dump, rebuild_all, version_of, Changes, Overlay, Projection,
    ProjectionSet, ProjectionStatus, ReactError, Reactor, Rebuild, RebuildProgress, RebuildReport,
    RunnerState, SetOptions, WaitError, Which,
};
pub use error::{ProjectionError, Result};
pub use models::{all_projections, rebuild_all_models, ReadModels};
