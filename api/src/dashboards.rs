//! Dashboard figures kept while the dashboard read model stands still.
//!
//! A dashboard is a dozen sled range scans; dashboards are read far more
//! often than a quiet log moves. [`Dashboards`] keeps the figures of a
//! request (`Dashboard::figures`: everything but the retention counts)
//! under the dashboard tree's name and **stored checkpoint**, which the
//! projection writes in the same atomic batch as every change to its
//! figures. So a kept entry is served only while the tree holds exactly
//! the data it was computed from:
//!
//! - the checkpoint is read before and after computing, and the figures
//!   are kept only when both readings agree (no batch landed in between,
//!   so they are one consistent state);
//! - any later event the projection applies moves the checkpoint, and the
//!   next request computes afresh; a rebuild swaps in a tree of another
//!   name, which misses too;
//! - `atLeast` waits for the projection's position before the lookup, and
//!   the stored checkpoint is never behind that position, so
//!   read-your-writes holds.
//!
//! The retention counts ("due for archive/delete") depend on the exact
//! `now`, so they are computed on every request. Who may see which sites
//! is decided before (the sites are part of the key, and so is whether
//! the asker sees restricted recordings in the top lists).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use srs_projections::models::dashboard::{
    DashboardProjection, DashboardQuery, DashboardView, SiteScope,
};
use srs_projections::store::Keyspace;
use srs_projections::{checkpoint_of, ReadModels, Result};

/// The most figure sets kept for one checkpoint (sites x ranges x tops).
const MAX_ENTRIES: usize = 256;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    sites: Vec<Option<uuid::Uuid>>,
    days: (i64, i64),
    top: usize,
    sees_restricted: bool,
}

impl Key {
    fn of(query: &DashboardQuery) -> Key {
        Key {
            sites: match &query.sites {
                SiteScope::All => vec![None],
                SiteScope::Sites(sites) => sites.iter().copied().map(Some).collect(),
            },
            days: query.days(),
            top: query.top,
            sees_restricted: query.sees_restricted,
        }
    }
}

/// The figures kept for one state of the dashboard tree.
#[derive(Debug, Default)]
struct Kept {
    tree: String,
    checkpoint: u64,
    figures: HashMap<Key, Arc<DashboardView>>,
}

/// The cache of dashboard figures (see the module docs).
#[derive(Debug, Default)]
pub struct Dashboards {
    kept: Mutex<Kept>,
}

impl Dashboards {
    pub fn new() -> Self {
        Self::default()
    }

    /// `Dashboard::view` of `query`, its figures from the cache when the
    /// dashboard tree has not changed since they were computed.
    pub fn view(&self, reads: &ReadModels, query: &DashboardQuery) -> Result<DashboardView> {
        let tree = reads.set().tree(DashboardProjection::NAME)?;
        let name = tree.name().to_owned();
        let checkpoint = checkpoint_of(&tree)?;
        let key = Key::of(query);
        let kept = self.kept.lock().ok().and_then(|kept| {
            (kept.tree == name && kept.checkpoint == checkpoint)
                .then(|| kept.figures.get(&key).cloned())
                .flatten()
        });
        let dashboard = reads.dashboard()?;
        let mut view = match kept {
            Some(figures) => DashboardView::clone(&figures),
            None => {
                let figures = dashboard.figures(query)?;
                if checkpoint_of(&tree)? == checkpoint {
                    self.keep(name, checkpoint, key, Arc::new(figures.clone()));
                }
                figures
            }
        };
        let (archive, delete) = dashboard.pending_in(&query.sites, query.now)?;
        view.pending_archive = archive;
        view.pending_delete = delete;
        Ok(view)
    }

    /// `Dashboard::view` of `query`, computed now (nothing kept is read
    /// or kept): what a client asking for a fresh answer gets.
    pub fn computed(&self, reads: &ReadModels, query: &DashboardQuery) -> Result<DashboardView> {
        reads.dashboard()?.view(query)
    }

    fn keep(&self, tree: String, checkpoint: u64, key: Key, figures: Arc<DashboardView>) {
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        if kept.tree != tree || kept.checkpoint != checkpoint {
            // A newer state replaces an older one; an older one (a reader
            // that computed slowly) never replaces a newer one.
            if kept.tree == tree && kept.checkpoint > checkpoint {
                return;
            }
            kept.tree = tree;
            kept.checkpoint = checkpoint;
            kept.figures.clear();
        }
        if kept.figures.len() >= MAX_ENTRIES {
            kept.figures.clear();
        }
        kept.figures.insert(key, figures);
    }

    /// The figure sets kept now (for tests).
    pub fn len(&self) -> usize {
        self.kept.lock().map_or(0, |kept| kept.figures.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
