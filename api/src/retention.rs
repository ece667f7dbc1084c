//! The retention scheduler: runs each site's retention policy once a day
//! at its `runAt` (UTC), by the injected clock.
//!
//! A run of a site ([`run_site`]) asks the dashboard read model which
//! recordings are due ([`srs_domain::model::due`]: by age from their end,
//! whole sessions, live sessions never, restricted ones exempt when the
//! policy says so), archives and deletes them as the system actor
//! `retention` (the same session-wide moves as the admin mutations), waits
//! until the content store has followed (chunks moved to the archive area,
//! keys shredded), and records the run with its counts
//! (`RetentionRunCompletedV2`).
//!
//! Legal holds: a recording due for deletion that a hold covers (it, or
//! another part of its session) is not deleted; the write side refuses the
//! deletion (see `srs_domain::model::hold`), and the run counts it as
//! `held`. When the policy archives, such a session is archived instead
//! (its content kept, in the archive area).
//!
//! [`tick`] runs every site whose next run time (the first `runAt` after
//! its last run, or after the policy was set) has come. `srs serve` calls
//! it every [`TICK`] of wall time with the clock's now (on a JetStream
//! log shared by several nodes, only the node holding the `retention`
//! lease does: see [`crate::cluster`]); tests call it with
//! a manual clock and run a year of days in milliseconds. A site whose run
//! times were missed (the service was down) runs once when it is next
//! checked: one run catches up everything due.

use std::sync::Arc;
use std::time::Duration;

use srs_domain::actor::Actor;
use srs_domain::app::AppError;
use srs_domain::log::EventStore as _;
use srs_domain::model::{DomainEvent, HoldError, Transition};
use srs_domain::time::Timestamp;
use srs_projections::models::dashboard::DashboardProjection;
use srs_projections::models::policies::PoliciesProjection;
use srs_projections::Which;
use tokio::sync::watch;
use uuid::Uuid;

use crate::cluster::{while_held, Job};
use crate::content::SETTLE_TIMEOUT;
use crate::error::ApiError;
use crate::state::Services;

/// How often `srs serve` checks whether a run is due.
pub const TICK: Duration = Duration::from_secs(30);

/// How long a run waits for the read models it decides on.
const CATCH_UP: Duration = Duration::from_secs(30);

/// What one run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOutcome {
    pub archived: u64,
    pub deleted: u64,
    /// Due for deletion but kept by a legal hold.
    pub held: u64,
    /// The log position of the run's `RetentionRunCompletedV2`.
    pub position: u64,
}

fn actor() -> Actor {
    Actor::system("retention")
}

async fn caught_up(services: &Services) -> Result<(), ApiError> {
    let head = services.store.head().position;
    services
        .reads
        .wait_for(
            Which::Only(&[DashboardProjection::NAME, PoliciesProjection::NAME]),
            head,
            CATCH_UP,
        )
        .await
        .map_err(|e| ApiError::timeout(format!("the read models are behind: {e}")))
}

/// Runs `site_id`'s retention policy now (NOT_FOUND without one). The
/// caller has authorized it.
pub async fn run_site(services: &Services, site_id: Uuid) -> Result<RunOutcome, ApiError> {
    caught_up(services).await?;
    let policy = services
        .reads
        .policies()?
        .retention(site_id)?
        .ok_or_else(|| ApiError::not_found(format!("site {site_id} has no retention policy")))?
        .policy;
    let now = services.service.now();
    let due = services.reads.dashboard()?.due(site_id, &policy, now)?;
    let mut outcome = RunOutcome::default();
    let mut last = 0;
    for (ids, via) in [
        (&due.to_delete, Transition::Delete),
        (&due.to_archive, Transition::Archive),
    ] {
        for &id in ids {
            // `due` lists every part of a session; the first move covers all.
            let mut moved = services.service.apply_to_session(id, via, &actor()).await;
            if let Err(AppError::Hold(HoldError::Held { .. })) = &moved {
                outcome.held += 1;
                moved = match policy.archive_after_days {
                    // Due for deletion is past the archive age: archive it.
                    Some(_) => {
                        services
                            .service
                            .apply_to_session(id, Transition::Archive, &actor())
                            .await
                    }
                    None => Ok(Default::default()),
                };
            }
            match moved {
                Ok(done) => {
                    last = last.max(done.last_position);
                    for event in &done.events {
                        match event {
                            DomainEvent::RecordingDeleted { .. } => outcome.deleted += 1,
                            DomainEvent::RecordingArchived { .. } => outcome.archived += 1,
                            _ => {}
                        }
                    }
                }
                // One recording that moved meanwhile does not stop the run.
                Err(e) => tracing::warn!(error = %e, recording = %id, ?via, "retention: skipped"),
            }
        }
    }
    if !services.content_effects.settled(last, SETTLE_TIMEOUT).await {
        return Err(ApiError::timeout(
            "the content store did not follow the retention run in time",
        ));
    }
    let done = services
        .service
        .complete_retention_run(
            site_id,
            outcome.archived,
            outcome.deleted,
            outcome.held,
            &actor(),
        )
        .await?;
    outcome.position = done.last_position;
    tracing::info!(site = %site_id, archived = outcome.archived, deleted = outcome.deleted, held = outcome.held, "retention run completed");
    Ok(outcome)
}

/// The sites whose run is due at `now`.
pub fn due_sites(services: &Services, now: Timestamp) -> Result<Vec<Uuid>, ApiError> {
    Ok(services
        .reads
        .policies()?
        .retentions()?
        .into_iter()
        .filter(|row| {
            let anchor = row.last_run.as_ref().map_or(row.set_at, |run| run.ran_at);
            row.policy.next_run(anchor) <= now
        })
        .map(|row| row.site_id)
        .collect())
}

/// Runs every site whose run time has come by the service's clock;
/// returns what each did.
pub async fn tick(services: &Services) -> Result<Vec<(Uuid, RunOutcome)>, ApiError> {
    caught_up(services).await?;
    let now = services.service.now();
    let mut runs = Vec::new();
    for site_id in due_sites(services, now)? {
        runs.push((site_id, run_site(services, site_id).await?));
    }
    Ok(runs)
}

/// The scheduler task of `srs serve`: [`tick`] every [`TICK`] until
/// shutdown; with a JetStream log only while this node holds the
/// `retention` lease, so one node of a cluster runs retention, and a run
/// is cut off the moment the lease is lost (see [`crate::cluster`]).
pub async fn schedule(services: Arc<Services>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(TICK);
    let lease = services
        .cluster
        .as_ref()
        .map(|c| c.lease(Job::Retention).watch());
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Some(Err(e)) = while_held(lease.clone(), tick(&services)).await {
            tracing::warn!(code = %e.code, message = %e.message, "retention tick failed");
        }
    }
}
