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
//! - `util`: shared helpers (normalisation, codes, cursors, index merge).
//!
//! [`ReadModels`] starts them all and hands out typed query handles.

pub mod access;
pub mod audit;
pub mod catalogue;
pub mod comments;
pub mod dashboard;
pub mod detections;
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
pub use catalogue::Catalogue;
pub use comments::Comments;
pub use dashboard::Dashboard;
pub use detections::Detections;
pub use policies::Policies;
pub use servers::Servers;
pub use tokens::Tokens;

use crate::engine::{
    rebuild_all, Projection, ProjectionSet, ProjectionStatus, RebuildReport, SetOptions, WaitError,
    Which,
};
use crate::error::Result;

/// Every read model's projection, in a fixed order.
pub fn all_projections() -> Vec<Arc<dyn Projection<DomainEvent>>> {
    vec![
        Arc::new(catalogue::CatalogueProjection),
        Arc::new(access::AccessProjection),
        Arc::new(detections::DetectionsProjection),
        Arc::new(dashboard::DashboardProjection),
        Arc::new(servers::ServersProjection),
        Arc::new(policies::PoliciesProjection),
        Arc::new(comments::CommentsProjection),
        Arc::new(audit::AuditProjection),
        Arc::new(tokens::TokensProjection),
    ]
}

/// Rebuilds every read model from the whole log while nothing serves them
/// (`srs rebuild --all`, `srs bench rebuild`); see [`rebuild_all`].
pub async fn rebuild_all_models(
    store: Arc<dyn EventStore<DomainEvent>>,
    db: &sled::Db,
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
    /// Starts every read model's runner over the log and its database.
    pub fn start(
        store: Arc<dyn EventStore<DomainEvent>>,
        db: &sled::Db,
        options: SetOptions,
    ) -> Result<Self> {
        Ok(ReadModels {
            set: ProjectionSet::start(store, db, all_projections(), options)?,
        })
    }

    /// The engine underneath (statuses, rebuilds, raw trees).
    pub fn set(&self) -> &ProjectionSet<DomainEvent> {
        &self.set
    }

    pub fn statuses(&self) -> Vec<ProjectionStatus> {
        self.set.statuses()
    }

    /// Read-your-writes: waits until the named read models (all, with
    /// `Which::All`) have applied `position`.
    pub async fn wait_for(
        &self,
        which: Which<'_>,
        position: u64,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        self.set.wait_for(which, position, timeout).await
    }

    accessor!(
        /// The recordings catalogue.
        catalogue, Catalogue, catalogue::CatalogueProjection::NAME);
    accessor!(
        /// Restrictions, permissions and the viewer of a principal.
        access, Access, access::AccessProjection::NAME);
    accessor!(
        /// Detections, responses, visualization.
        detections, Detections, detections::DetectionsProjection::NAME);
    accessor!(
        /// Dashboard figures.
        dashboard, Dashboard, dashboard::DashboardProjection::NAME);
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
}
