//! The read models srs serves, over [`DomainEvent`].
//!
//! # Layout
//!
//! - [`catalogue`]: recordings search with every filter, indexes, cursors.
//! - [`access`]: restrictions, playback permissions, [`visibility`].
//! - [`detections`]: detected events, response actions, visualization.
//! - [`dashboard`]: insights per site and overall, retention backlog.
//! - [`servers`]: sites and servers (status, liveness, settings, install).
//! - [`policies`]: policies, the active one per kind, retention policies.
//! - [`comments`]: comments on recordings.
//! - [`audit`]: the admin audit trail.
//! - [`tokens`]: credentials by secret hash, for authentication.
//! - [`holds`]: legal holds by id and site, and what they cover.
//! - [`history`]: the log's positions by event type, stream, actor, site,
//!   recording and time, for the raw `history`.
//! - `util`: shared helpers (normalisation, codes, cursors, index merge).
//!
//! [`ReadModels`] starts them all and hands out typed query handles.

pub mod access;
pub mod audit;
pub mod catalogue;
pub mod comments;
pub mod dashboard;
pub mod dashboard_days;
pub mod detections;
pub mod history;
pub mod holds;
pub mod policies;
pub mod servers;
pub mod tokens;
mod util;

use std::sync::Arc;
use std::time::Duration;

use srs_domain::log::EventStore;
use srs_domain::model::DomainEvent;

pub use access::{visibility, Access, Viewer, Visibility};
pub use audit::AuditTrail;
pub use catalogue::{Catalogue, CatalogueIndex};
pub use comments::Comments;
pub use dashboard::DashboardReader;
pub use dashboard_days::DashboardDays;
pub use detections::Detections;
pub use history::{History, HistoryQuery};
pub use holds::Holds;
pub use policies::Policies;
pub use servers::Servers;
pub use tokens::Tokens;

use crate::engine::{
    rebuild_all, Projection, ProjectionSet, ProjectionStatus, Reactor, RebuildReport, SetOptions,
    WaitError, Which,
};
use crate::error::Result;
use crate::store::Db;

/// Every read model's projection, in a fixed order (the catalogue's with
/// an index of its own).
pub fn all_projections() -> Vec<Arc<dyn Projection<DomainEvent>>> {
    projections_with(
        Arc::new(CatalogueIndex::new()),
        Arc::new(DashboardDays::new()),
    )
}

/// Every read model's projection, the catalogue's keeping `index` fresh
/// and the dashboard's `days`.
fn projections_with(
    index: Arc<CatalogueIndex>,
    days: Arc<DashboardDays>,
) -> Vec<Arc<dyn Projection<DomainEvent>>> {
    vec![
        Arc::new(catalogue::CatalogueProjection::with_index(index)),
        Arc::new(access::AccessProjection),
        Arc::new(detections::DetectionsProjection),
        Arc::new(dashboard::DashboardProjection::with_days(days)),
        Arc::new(servers::ServersProjection),
        Arc::new(policies::PoliciesProjection),
        Arc::new(comments::CommentsProjection),
        Arc::new(audit::AuditProjection),
        Arc::new(tokens::TokensProjection),
        Arc::new(holds::HoldsProjection),
        Arc::new(history::HistoryProjection),
    ]
}

/// Rebuilds every read model from the whole log while nothing serves them
/// (`srs rebuild --all`, `srs bench rebuild`); see [`rebuild_all`].
pub async fn rebuild_all_models(
    store: Arc<dyn EventStore<DomainEvent>>,
    db: impl Into<Db>,
) -> Result<RebuildReport> {
    rebuild_all(
        store,
        db,
        &all_projections(),
        SetOptions::default().rebuild_batch_size,
    )
    .await
}

/// The running read models: the API's one entry point for queries,
/// read-your-writes and projection operations. Cheap to clone.
#[derive(Clone)]
pub struct ReadModels {
    set: ProjectionSet<DomainEvent>,
    /// The catalogue's search index, kept fresh by its projection.
    catalogue_index: Arc<CatalogueIndex>,
    /// The dashboard's per-day counters, kept fresh by its projection.
    dashboard_days: Arc<DashboardDays>,
}

macro_rules! accessor {
    ($(#[$doc:meta])* $fn:ident, $ty:ty, $name:expr) => {
        $(#[$doc])*
        pub fn $fn(&self) -> Result<$ty> {
            Ok(<$ty>::new(self.set.tree($name)?))
        }
    };
}

impl ReadModels {
    /// Starts every read model's runner over the log and its database,
    /// and loads the catalogue's search index in the background (a search
    /// that comes first loads it itself).
    pub fn start(
        store: Arc<dyn EventStore<DomainEvent>>,
        db: impl Into<Db>,
        options: SetOptions,
    ) -> Result<Self> {
        Self::start_with_reactors(store, db, Vec::new(), options)
    }

    /// [`ReadModels::start`], with `reactors` run beside the read models
    /// (see [`Reactor`]): their statuses show with the read models', and
    /// [`ReadModels::wait_for`] waits for them too.
    pub fn start_with_reactors(
        store: Arc<dyn EventStore<DomainEvent>>,
        db: impl Into<Db>,
        reactors: Vec<Arc<dyn Reactor<DomainEvent>>>,
        options: SetOptions,
    ) -> Result<Self> {
        let catalogue_index = Arc::new(CatalogueIndex::new());
        let dashboard_days = Arc::new(DashboardDays::new());
        let reads = ReadModels {
            set: ProjectionSet::start_with_reactors(
                store,
                db,
                projections_with(catalogue_index.clone(), dashboard_days.clone()),
                reactors,
                options,
            )?,
            catalogue_index,
            dashboard_days,
        };
        let catalogue = reads.catalogue()?;
        let dashboard = reads.dashboard()?;
        std::thread::Builder::new()
            .name("catalogue-index".into())
            .spawn(move || {
                if let Err(error) = catalogue.load_index() {
                    tracing::warn!(%error, "loading the catalogue index failed; searches retry");
                }
                if let Err(error) = dashboard.load_days() {
                    tracing::warn!(%error, "loading the dashboard's day counters failed; dashboards retry");
                }
            })
            .map_err(|e| crate::error::ProjectionError::Invariant(format!("spawn: {e}")))?;
        Ok(reads)
    }

    /// The engine underneath (statuses, rebuilds, raw trees).
    pub fn set(&self) -> &ProjectionSet<DomainEvent> {
        &self.set
    }

    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        self.set.statuses()
    }

    /// The position every read model and reactor has applied (see
    /// [`ProjectionSet::applied`]).
    pub fn applied(&self) -> u64 {
        self.set.applied()
    }

    /// Read-your-writes: waits until the named read models or reactors
    /// (all, with `Which::All`) have applied `position`.
    pub async fn wait_for(
        &self,
        which: Which<'_>,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.set.wait_for(which, position, timeout).await
    }

    /// The recordings catalogue, searched through the shared index.
    pub fn catalogue(&self) -> Result<Catalogue> {
        Ok(Catalogue::with_index(
            self.set.tree(catalogue::CatalogueProjection::NAME)?,
            self.catalogue_index.clone(),
        ))
    }

    /// The catalogue's search index (what the projection keeps fresh).
    pub fn catalogue_index(&self) -> &Arc<CatalogueIndex> {
        &self.catalogue_index
    }
    accessor!(
        /// Restrictions, permissions and the viewer of a principal.
        access, Access, access::AccessProjection::NAME);
    accessor!(
        /// Detections, responses, visualization.
        detections, Detections, detections::DetectionsProjection::NAME);
    /// Dashboard figures, the per-day counters from memory.
    pub fn dashboard(&self) -> Result<DashboardReader> {
        Ok(DashboardReader::with_days(
            self.set.tree(dashboard::DashboardProjection::NAME)?,
            self.dashboard_days.clone(),
        ))
    }

    /// The dashboard's per-day counters in memory.
    pub fn dashboard_days(&self) -> &Arc<DashboardDays> {
        &self.dashboard_days
    }
    accessor!(
        /// Sites and servers.
        servers, Servers, servers::ServersProjection::NAME);
    accessor!(
        /// Policies and retention policies.
        policies, Policies, policies::PoliciesProjection::NAME);
    accessor!(
        /// Comments.
        comments, Comments, comments::CommentsProjection::NAME);
    accessor!(
        /// The admin audit trail.
        audit, AuditTrail, audit::AuditProjection::NAME);
    accessor!(
        /// Credentials by secret hash.
        tokens, Tokens, tokens::TokensProjection::NAME);
    accessor!(
        /// Legal holds.
        holds, Holds, holds::HoldsProjection::NAME);
    accessor!(
        /// The history index.
        history, History, history::HistoryProjection::NAME);
}
