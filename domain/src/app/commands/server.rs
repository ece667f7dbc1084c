//! The commands of a server: connect, install, settings, disconnect, heartbeats and liveness.

use uuid::Uuid;

use crate::actor::Actor;
use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{
    hash_secret, Action, Deployment, InstallOptions, InstallStatus, InstallStep, Principal, Server,
    ServerCommand, ServerError, SettingsPatch, Target,
};
use crate::time::Timestamp;

use super::new_secret;

/// `connectServer` input.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnectServer {
    pub site_id: Uuid,
    pub name: String,
    pub host: String,
    pub deployment: Deployment,
    pub version: String,
}

/// A server and its agent credential, returned once and never again.
#[derive(Clone, PartialEq)]
pub struct ServerCredential {
    pub server_id: Uuid,
    /// The install job, when the service installs the server.
    pub job_id: Option<Uuid>,
    /// The agent's bearer secret. Only its SHA-256 is stored.
    pub secret: String,
    pub executed: Executed,
}

impl std::fmt::Debug for ServerCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredential")
            .field("server_id", &self.server_id)
            .field("job_id", &self.job_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl Service {
    // ---- servers ------------------------------------------------------------

    /// `connectServer`: registers the server and returns its agent secret once.
    pub async fn connect_server(
        &self,
        by: &Principal,
        input: ConnectServer,
    ) -> Result<ServerCredential, AppError> {
        self.authorize(by, Action::ManageServers, Target::Site(input.site_id))
            .await?;
        self.site(input.site_id).await?;
        let server_id = Uuid::now_v7();
        let secret = new_secret();
        let command = ServerCommand::Connect {
            server_id,
            site_id: input.site_id,
            name: input.name,
            host: input.host,
            deployment: input.deployment,
            version: input.version,
            credential_sha256: hash_secret(&secret),
            now: self.now(),
        };
        let executed = self
            .execute::<Server>(server_id, command, &Self::principal_actor(by), Some(0))
            .await?;
        Ok(ServerCredential {
            server_id,
            job_id: None,
            secret,
            executed,
        })
    }

    /// `installServer`: an install job; the installer reports progress with
    /// the returned credential.
    pub async fn install_server(
        &self,
        by: &Principal,
        site_id: Uuid,
        host: &str,
        options: InstallOptions,
    ) -> Result<ServerCredential, AppError> {
        self.authorize(by, Action::ManageServers, Target::Site(site_id))
            .await?;
        self.site(site_id).await?;
        let (server_id, job_id) = (Uuid::now_v7(), Uuid::now_v7());
        let secret = new_secret();
        let command = ServerCommand::RequestInstall {
            server_id,
            site_id,
            job_id,
            host: host.to_string(),
            options,
            credential_sha256: hash_secret(&secret),
            now: self.now(),
        };
        let executed = self
            .execute::<Server>(server_id, command, &Self::principal_actor(by), Some(0))
            .await?;
        Ok(ServerCredential {
            server_id,
            job_id: Some(job_id),
            secret,
            executed,
        })
    }

    /// `reportInstallProgress` (AGENT).
    pub async fn report_install_progress(
        &self,
        by: &Principal,
        server_id: Uuid,
        step: InstallStep,
        status: InstallStatus,
        message: Option<String>,
    ) -> Result<Executed, AppError> {
        let (_, site_id) = self
            .server_for(by, Action::ReportInstallProgress, server_id)
            .await?;
        self.authorize(
            by,
            Action::ReportInstallProgress,
            Target::Server { site_id, server_id },
        )
        .await?;
        let command = ServerCommand::ReportInstallProgress {
            step,
            status,
            message,
            now: self.now(),
        };
        self.execute::<Server>(server_id, command, &by.actor(), None)
            .await
    }

    /// `updateServerSettings`. `expected_settings_version` is the settings
    /// record's version (not the stream's), so liveness events do not make
    /// an admin's edit stale.
    pub async fn update_server_settings(
        &self,
        by: &Principal,
        server_id: Uuid,
        patch: SettingsPatch,
        expected_settings_version: Option<u64>,
    ) -> Result<Executed, AppError> {
        let (_, site_id) = self
            .server_for(by, Action::ManageServers, server_id)
            .await?;
        self.authorize(by, Action::ManageServers, Target::Site(site_id))
            .await?;
        let command = ServerCommand::UpdateSettings {
            patch,
            expected_version: expected_settings_version,
            now: self.now(),
        };
        self.execute::<Server>(server_id, command, &Self::principal_actor(by), None)
            .await
    }

    /// `disconnectServer`.
    pub async fn disconnect_server(
        &self,
        by: &Principal,
        server_id: Uuid,
    ) -> Result<Executed, AppError> {
        let (_, site_id) = self
            .server_for(by, Action::ManageServers, server_id)
            .await?;
        self.authorize(by, Action::ManageServers, Target::Site(site_id))
            .await?;
        let command = ServerCommand::Disconnect { now: self.now() };
        self.execute::<Server>(server_id, command, &Self::principal_actor(by), None)
            .await
    }

    /// `heartbeat` (AGENT): remembered in memory; an offline server comes
    /// back online (that transition is an event).
    pub async fn heartbeat(&self, by: &Principal, server_id: Uuid) -> Result<Executed, AppError> {
        let (server, site_id) = self.server_for(by, Action::Heartbeat, server_id).await?;
        self.authorize(by, Action::Heartbeat, Target::Server { site_id, server_id })
            .await?;
        let now = self.now();
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(server_id, now);
        if server.state.online {
            return Ok(Executed {
                last_position: server.last_position,
                version: server.version,
                ..Executed::default()
            });
        }
        let command = ServerCommand::ObserveLiveness {
            last_heartbeat: Some(now),
            period_secs: self.config.liveness_period_secs,
            now,
        };
        self.execute::<Server>(server_id, command, &by.actor(), None)
            .await
    }

    /// Every server's last heartbeat this process saw (what a node of a
    /// cluster shares with the others).
    pub fn heartbeats_seen(&self) -> Vec<(Uuid, Timestamp)> {
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(id, at)| (*id, *at))
            .collect()
    }

    /// Takes heartbeats other nodes of a cluster saw: a server's last
    /// heartbeat is the newest any node took (the liveness check then
    /// judges by it).
    pub fn observe_heartbeats(&self, seen: impl IntoIterator<Item = (Uuid, Timestamp)>) {
        let mut heartbeats = self.heartbeats.lock().unwrap_or_else(|e| e.into_inner());
        for (server_id, at) in seen {
            let last = heartbeats.entry(server_id).or_insert(at);
            *last = (*last).max(at);
        }
    }

    /// When server `server_id` last heartbeated, as this process saw it
    /// (kept in memory only; the API keeps a per-minute copy in the data
    /// directory, see `srs_api::last_used`).
    pub fn last_heartbeat(&self, server_id: Uuid) -> Option<Timestamp> {
        self.heartbeats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&server_id)
            .copied()
    }

    /// Records `ServerWentOffline` for every listed server silent for longer
    /// than the liveness period (the caller, a periodic task, lists the
    /// connected servers from the servers read model).
    pub async fn check_liveness(&self, server_ids: &[Uuid]) -> Result<Executed, AppError> {
        let now = self.now();
        let actor = Actor::system("liveness");
        let mut outcomes = Vec::new();
        for &server_id in server_ids {
            let last = self
                .heartbeats
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&server_id)
                .copied()
                .unwrap_or(self.started_at)
                .max(self.started_at);
            let command = ServerCommand::ObserveLiveness {
                last_heartbeat: Some(last),
                period_secs: self.config.liveness_period_secs,
                now,
            };
            match self
                .execute::<Server>(server_id, command, &actor, None)
                .await
            {
                Ok(executed) => outcomes.push(executed),
                Err(AppError::Server(ServerError::NotFound)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Executed::merge(outcomes))
    }
}

#[cfg(test)]
mod tests;
