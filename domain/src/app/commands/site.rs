//! The commands of a site: create it, rename it.

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{Action, Principal, Site, SiteCommand, Target};

use super::Created;

impl Service {
    // ---- sites --------------------------------------------------------------

    /// `createSite`.
    pub async fn create_site(&self, by: &Principal, name: &str) -> Result<Created, AppError> {
        self.authorize(by, Action::ManageSites, Target::Global)
            .await?;
        let id = Uuid::now_v7();
        let command = SiteCommand::Create {
            site_id: id,
            name: name.to_string(),
            now: self.now(),
        };
        let executed = self
            .execute::<Site>(id, command, &Self::principal_actor(by), Some(0))
            .await?;
        Ok(Created { id, executed })
    }

    /// Renames a site.
    pub async fn rename_site(
        &self,
        by: &Principal,
        site_id: Uuid,
        name: &str,
        expected: Option<u64>,
    ) -> Result<Executed, AppError> {
        self.authorize(by, Action::ManageSites, Target::Site(site_id))
            .await?;
        let command = SiteCommand::Rename {
            name: name.to_string(),
            now: self.now(),
        };
        self.execute::<Site>(site_id, command, &Self::principal_actor(by), expected)
            .await
    }
}
