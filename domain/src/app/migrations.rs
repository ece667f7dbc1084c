//! The one-time migrations `srs serve` runs on start, before it serves
//! (what they do and why: `model::migration`).
//!
//! [`Service::migrate_to_explicit_grants`] is safe to run on every start
//! and from several processes at once: the marker stream is appended with
//! `NoStream` (a second writer gets a conflict and backs off), and each
//! whole-site permission is created on a stream whose id is derived from
//! token and site, with `NoStream` too, so a start interrupted after some
//! grants continues where it stopped on the next one and grants nothing
//! twice.

use super::error::AppError;
use super::service::{Executed, Service};
use crate::actor::Actor;
use crate::log::{ExpectedVersion, NewEvent};
use crate::model::{
    token_principal, DomainEvent, OldAccess, PermissionCommand, PermissionError,
    PlaybackPermission, PlaybackScope, EXPLICIT_GRANTS_STREAM, MIGRATION_ACTOR,
};

/// How many events one read of the log asks for while folding it.
const READ_BATCH: usize = 1_024;

/// What a migration did on this start.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Migrated {
    /// The whole-site permissions granted now (a rerun after an
    /// interruption grants only the missing ones).
    pub granted: usize,
    /// The marker's position.
    pub position: u64,
}

impl Service {
    /// Moves a log written when an AUDITOR without permissions saw whole
    /// sites to explicit permissions, once (see `model::migration`):
    /// `None` when the log was migrated already (or a concurrent start did
    /// it just now).
    pub async fn migrate_to_explicit_grants(&self) -> Result<Option<Migrated>, AppError> {
        if self
            .store
            .stream_version(EXPLICIT_GRANTS_STREAM)
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let mut old = OldAccess::default();
        let mut from = 1;
        loop {
            let batch = self.store.read_all(from, READ_BATCH).await?;
            let Some(last) = batch.last() else { break };
            from = last.position + 1;
            for envelope in &batch {
                old.apply(&envelope.payload);
            }
        }
        let actor = Actor::system(MIGRATION_ACTOR);
        let plan = old.whole_site_grants(self.now());
        let mut granted = 0;
        for grant in &plan {
            let command = PermissionCommand::Grant {
                permission_id: grant.permission_id,
                site_id: grant.site_id,
                principal: token_principal(grant.token_id),
                scope: PlaybackScope::whole_site(),
                now: self.now(),
            };
            match self
                .execute::<PlaybackPermission>(grant.permission_id, command, &actor, Some(0))
                .await
            {
                Ok(Executed { events, .. }) if !events.is_empty() => granted += 1,
                Ok(_) => {}
                // Granted by a concurrent start: nothing to add.
                Err(AppError::Conflict(_))
                | Err(AppError::Permission(PermissionError::AlreadyExists(_))) => {}
                Err(e) => return Err(e),
            }
        }
        let marker = DomainEvent::PlaybackPermissionsMigrated {
            permission_ids: plan.iter().map(|g| g.permission_id).collect(),
            token_ids: plan.iter().map(|g| g.token_id).collect(),
            at: self.now(),
        };
        match self
            .store
            .append(
                EXPLICIT_GRANTS_STREAM,
                ExpectedVersion::NoStream,
                vec![NewEvent::new(actor, marker)],
            )
            .await
        {
            Ok(appended) => Ok(Some(Migrated {
                granted,
                position: appended.last_position(),
            })),
            Err(crate::log::AppendError::Conflict(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
