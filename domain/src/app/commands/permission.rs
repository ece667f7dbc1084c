//! The commands of playback permissions: grant and revoke.

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{
    Action, PermissionCommand, PlaybackPermission, PlaybackScope, Principal, Target,
};

use super::{not_found, Created};

impl Service {
    // ---- playback permissions ----------------------------------------------

    /// `grantPlaybackPermission`.
    pub async fn grant_playback_permission(
        &self,
        by: &Principal,
        site_id: Uuid,
        principal: &str,
        scope: PlaybackScope,
    ) -> Result<Created, AppError> {
        self.authorize(by, Action::ManagePermissions, Target::Site(site_id))
            .await?;
        self.site(site_id).await?;
        let id = Uuid::now_v7();
        let command = PermissionCommand::Grant {
            permission_id: id,
            site_id,
            principal: principal.to_string(),
            scope,
            now: self.now(),
        };
        let executed = self
            .execute::<PlaybackPermission>(id, command, &Self::principal_actor(by), Some(0))
            .await?;
        Ok(Created { id, executed })
    }

    /// `revokePlaybackPermission`.
    pub async fn revoke_playback_permission(
        &self,
        by: &Principal,
        permission_id: Uuid,
    ) -> Result<Executed, AppError> {
        let permission = self.load::<PlaybackPermission>(permission_id).await?;
        let site_id = permission
            .state
            .site_id
            .ok_or_else(|| not_found("playback permission", permission_id))?;
        self.authorize(by, Action::ManagePermissions, Target::Site(site_id))
            .await?;
        let command = PermissionCommand::Revoke { now: self.now() };
        self.execute::<PlaybackPermission>(permission_id, command, &Self::principal_actor(by), None)
            .await
    }
}
