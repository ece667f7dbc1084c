//! The commands of legal holds: place and release.

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Loaded, Service};
use crate::model::{
    may, Action, HoldCommand, HoldError, HoldScope, LegalHolds, Lifecycle, Principal, Target,
};

use super::Created;

impl Service {
    // ---- legal holds --------------------------------------------------------

    /// The legal holds as the write side knows them (every hold, released
    /// ones too).
    pub async fn legal_holds(&self) -> Result<Loaded<LegalHolds>, AppError> {
        self.load::<LegalHolds>(Uuid::nil()).await
    }

    /// `placeLegalHold` (ADMIN of the hold's site). `site_id` is required
    /// for a users or site scope; for a recordings scope it is optional and
    /// must then be the recordings' site. Everything is checked before the
    /// one event is written.
    pub async fn place_legal_hold(
        &self,
        by: &Principal,
        site_id: Option<Uuid>,
        scope: HoldScope,
        reason: &str,
    ) -> Result<Created, AppError> {
        // Shape first (counts, blanks): cheap, and before any loading.
        let scope = scope.normalized()?;
        let site_id = match &scope {
            HoldScope::Recordings { recording_ids } => {
                self.hold_recordings_site(by, site_id, recording_ids)
                    .await?
            }
            HoldScope::Users { .. } | HoldScope::Site => site_id.ok_or_else(|| {
                HoldError::Invalid("a hold on a site or on users needs a siteId".into())
            })?,
        };
        self.authorize(by, Action::ManageLegalHolds, Target::Site(site_id))
            .await?;
        self.site(site_id).await?;
        let hold_id = Uuid::now_v7();
        let command = HoldCommand::Place {
            hold_id,
            site_id,
            scope,
            reason: reason.to_string(),
            by: by.name.clone(),
            now: self.now(),
        };
        let executed = self
            .execute::<LegalHolds>(hold_id, command, &by.actor(), None)
            .await?;
        Ok(Created {
            id: hold_id,
            executed,
        })
    }

    /// The one site of the recordings a hold names, once each exists, is
    /// visible to `by` (else `NOT_FOUND`, as everywhere) and not deleted.
    pub(super) async fn hold_recordings_site(
        &self,
        by: &Principal,
        site_id: Option<Uuid>,
        recording_ids: &[Uuid],
    ) -> Result<Uuid, AppError> {
        let mut site = site_id;
        for &recording_id in recording_ids {
            let (recording, facts, _) = self
                .recording_for(by, Action::ManageLegalHolds, recording_id, false)
                .await?;
            match recording.state.lifecycle {
                Lifecycle::Deleted => {
                    return Err(HoldError::Invalid(format!(
                        "recording {recording_id} was deleted: there is nothing left to hold"
                    ))
                    .into())
                }
                Lifecycle::Declined => {
                    return Err(HoldError::Invalid(format!(
                        "session {recording_id} was not recorded: there is nothing to hold"
                    ))
                    .into())
                }
                _ => {}
            }
            match site {
                Some(site) if site != facts.site_id => {
                    return Err(HoldError::Invalid(format!(
                        "recording {recording_id} belongs to site {}, not {site}: one hold \
                         covers recordings of one site (place one hold per site)",
                        facts.site_id
                    ))
                    .into())
                }
                Some(_) => {}
                None => site = Some(facts.site_id),
            }
        }
        site.ok_or_else(|| {
            HoldError::Invalid("a hold on recordings names at least one recording".into()).into()
        })
    }

    /// `releaseLegalHold` (ADMIN of the hold's site). A hold the caller may
    /// not read is `NOT_FOUND`, as an absent one.
    pub async fn release_legal_hold(
        &self,
        by: &Principal,
        hold_id: Uuid,
        reason: Option<&str>,
    ) -> Result<Executed, AppError> {
        let holds = self.legal_holds().await?;
        let site_id = holds.state.holds.get(&hold_id).map(|h| h.site_id);
        let readable = match site_id {
            Some(site_id) => may(by, Action::ReadLegalHolds, Target::Site(site_id)),
            None => may(by, Action::ReadLegalHolds, Target::Global),
        };
        if !readable {
            let _ = self
                .deny(
                    by,
                    Action::ManageLegalHolds,
                    &format!("legal-hold:{hold_id}"),
                    site_id,
                )
                .await;
            return Err(HoldError::NotFound(hold_id).into());
        }
        let Some(site_id) = site_id else {
            return Err(HoldError::NotFound(hold_id).into());
        };
        self.authorize(by, Action::ManageLegalHolds, Target::Site(site_id))
            .await?;
        let command = HoldCommand::Release {
            hold_id,
            reason: reason.map(str::to_string),
            by: by.name.clone(),
            now: self.now(),
        };
        self.execute::<LegalHolds>(hold_id, command, &by.actor(), None)
            .await
    }
}

#[cfg(test)]
mod tests;
