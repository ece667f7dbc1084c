//! Projection operations on a data directory that no server holds:
//! [`statuses`] (read only) and [`rebuild`].
//!
//! [`rebuild`] runs the projection engine exactly as `srs serve` does
//! ([`ProjectionSet`]: each projection's runner over its current tree, and
//! a rebuild that fills a fresh tree generation and swaps it in), so an
//! interrupted offline rebuild leaves the old trees current, like an
//! interrupted online one. While a server holds the directory, rebuild
//! through it instead (the `rebuildProjections` GraphQL mutation): the
//! server keeps answering from the old trees until the swap.

use std::time::Duration;

use serde::Serialize;
use srs_projections::engine::{tree_name, REGISTRY_TREE};
use srs_projections::{
    all_projections, checkpoint_of, version_of, ProjectionSet, RebuildReport, SetOptions,
};

use crate::data::DataDir;
use crate::error::ReplayError;

/// A projection's stored state, read without running it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OfflineStatus {
    pub name: String,
    /// The code's version of the projection.
    pub version: u32,
    /// The version that wrote the stored tree (`None`: never built).
    pub stored_version: Option<u32>,
    /// The generation of the current tree.
    pub generation: Option<u64>,
    /// The last log position applied (the checkpoint).
    pub position: u64,
    /// The log head.
    pub head: u64,
    /// `head - position`.
    pub lag: u64,
    /// `UP_TO_DATE`, `BEHIND` (the next start catches up), `STALE` (the
    /// stored tree is of another version: the next start rebuilds it) or
    /// `MISSING`.
    pub state: &'static str,
}

/// Every projection's stored position, lag and version. Reads only.
pub fn statuses(data: &DataDir) -> Result<Vec<OfflineStatus>, ReplayError> {
    let head = data.head();
    let registry = data.db.open_tree(REGISTRY_TREE)?;
    let trees: Vec<Vec<u8>> = data.db.tree_names().iter().map(|t| t.to_vec()).collect();
    let mut out = Vec::new();
    for projection in all_projections() {
        let name = projection.name();
        let generation = registry
            .get(format!("current/{name}"))?
            .and_then(|v| String::from_utf8(v.to_vec()).ok())
            .and_then(|t| t.rsplit_once('#').and_then(|(_, g)| g.parse::<u64>().ok()));
        let existing = generation
            .map(|g| tree_name(name, g))
            .filter(|t| trees.iter().any(|n| n == t.as_bytes()));
        let (position, stored_version) = match &existing {
            Some(t) => {
                let tree: srs_projections::store::Tree = data.db.open_tree(t)?.into();
                (checkpoint_of(&tree)?, version_of(&tree)?)
            }
            None => (0, None),
        };
        let state = match (&existing, stored_version) {
            (None, _) => "MISSING",
            (Some(_), Some(v)) if v != projection.version() => "STALE",
            _ if position < head => "BEHIND",
            _ => "UP_TO_DATE",
        };
        out.push(OfflineStatus {
            name: name.to_string(),
            version: projection.version(),
            stored_version,
            generation,
            position,
            head,
            lag: head.saturating_sub(position),
            state,
        });
    }
    Ok(out)
}

/// Progress of a running [`rebuild`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RebuildTick {
    /// Events applied so far (all named projections together, per pass).
    pub position: u64,
    /// The position the pass builds to.
    pub target: u64,
}

/// Rebuilds the named projections (all when `names` is empty) from the
/// whole log into fresh trees and swaps them in, calling `tick` about ten
/// times a second. Unknown names are refused before anything starts.
pub async fn rebuild(
    data: &DataDir,
    names: &[String],
    mut tick: impl FnMut(RebuildTick),
) -> Result<RebuildReport, ReplayError> {
    let known: Vec<&'static str> = all_projections().iter().map(|p| p.name()).collect();
    if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
        return Err(ReplayError::Invalid(format!(
            "no projection named `{unknown}`; known: {}",
            known.join(", ")
        )));
    }
    let set = ProjectionSet::start(
        data.shared_store(),
        &data.db,
        all_projections(),
        SetOptions::default(),
    )?;
    let targets: Vec<&'static str> = if names.is_empty() {
        known.clone()
    } else {
        known
            .iter()
            .copied()
            .filter(|k| names.iter().any(|n| n == k))
            .collect()
    };
    let work = {
        let set = set.clone();
        let all = names.is_empty();
        let targets = targets.clone();
        tokio::spawn(async move {
            if all {
                set.rebuild_all().await
            } else {
                // One pass per projection; each swaps as soon as it is built.
                let mut last = None;
                for name in targets {
                    let report = set.rebuild(name).await?;
                    last = Some(merge(last, report));
                }
                last.ok_or_else(|| {
                    srs_projections::ProjectionError::Invariant("no projection named".into())
                })
            }
        })
    };
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    tokio::pin!(work);
    let report = loop {
        tokio::select! {
            done = &mut work => break done,
            _ = interval.tick() => {
                let progress = targets
                    .iter()
                    .filter_map(|n| set.status(n).ok()?.rebuild)
                    .fold(None, |acc: Option<RebuildTick>, r| {
                        Some(match acc {
                            None => RebuildTick { position: r.position, target: r.target },
                            Some(a) => RebuildTick {
                                position: a.position.min(r.position),
                                target: a.target.max(r.target),
                            },
                        })
                    });
                if let Some(progress) = progress {
                    tick(progress);
                }
            }
        }
    };
    set.shutdown().await;
    data.store.flush()?;
    let report =
        report.map_err(|e| ReplayError::Invalid(format!("the rebuild task failed: {e}")))??;
    tick(RebuildTick {
        position: report.target,
        target: report.target,
    });
    Ok(report)
}

/// One report for several single-projection passes.
fn merge(acc: Option<RebuildReport>, next: RebuildReport) -> RebuildReport {
    match acc {
        None => next,
        Some(mut acc) => {
            acc.events += next.events;
            acc.target = acc.target.max(next.target);
            acc.elapsed += next.elapsed;
            acc.events_per_sec = acc.events as f64 / acc.elapsed.as_secs_f64().max(1e-9);
            acc.projections.extend(next.projections);
            acc
        }
    }
}
