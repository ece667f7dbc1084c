//! The commands of the retention policy and its runs.

use uuid::Uuid;

use crate::actor::Actor;
use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{Action, Principal, Retention, RetentionCommand, RetentionPolicy, Target};

impl Service {
    // ---- retention ----------------------------------------------------------

    /// `setRetentionPolicy`.
    pub async fn set_retention_policy(
        &self,
        by: &Principal,
        site_id: Uuid,
        policy: RetentionPolicy,
    ) -> Result<Executed, AppError> {
        self.authorize(by, Action::ManageRetention, Target::Site(site_id))
            .await?;
        self.site(site_id).await?;
        let command = RetentionCommand::Set {
            site_id,
            policy,
            now: self.now(),
        };
        self.execute::<Retention>(site_id, command, &Self::principal_actor(by), None)
            .await
    }

    /// Records a finished retention run of `site_id` (the scheduler, or
    /// `runRetentionNow` after its own authorization).
    /// `held`: recordings due for deletion that legal holds kept.
    pub async fn complete_retention_run(
        &self,
        site_id: Uuid,
        archived: u64,
        deleted: u64,
        held: u64,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        let command = RetentionCommand::CompleteRun {
            archived,
            deleted,
            held,
            now: self.now(),
        };
        self.execute::<Retention>(site_id, command, actor, None)
            .await
    }
}
