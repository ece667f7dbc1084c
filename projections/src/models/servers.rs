//! Sites and servers: status, liveness, settings with their version,
//! install job progress.
//!
//! | key | value |
//! |---|---|
//! | `site/` id | [`SiteRow`] |
//! | `s/` id | [`ServerRow`] |
//! | `ss/` site, id | - (servers of a site) |

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    Deployment, DomainEvent, InstallStatus, InstallStep, ServerSettings, ServerStatus,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, values, TreeRef};
use crate::codec::Key;
use crate::engine::{Overlay, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Keyspace;

/// A site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRow {
    pub id: Uuid,
    pub name: String,
    pub created_at: Timestamp,
}

/// One reported install step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallProgress {
    pub step: InstallStep,
    pub status: InstallStatus,
    pub message: Option<String>,
    pub at: Timestamp,
}

/// A server's install job and every step it reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallJobRow {
    pub job_id: Uuid,
    pub requested_at: Timestamp,
    pub step: InstallStep,
    pub status: InstallStatus,
    pub message: Option<String>,
    pub history: Vec<InstallProgress>,
}

/// A server as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServerRow {
    pub id: Uuid,
    pub site_id: Uuid,
    pub name: String,
    pub host: String,
    pub deployment: Deployment,
    pub version: String,
    pub status: ServerStatus,
    /// Liveness: heartbeats arrive within the liveness period.
    pub online: bool,
    /// When `online` last changed (or the server joined).
    pub online_since: Timestamp,
    /// The last heartbeat a `ServerWentOffline` reported.
    pub last_heartbeat: Option<Timestamp>,
    pub settings: ServerSettings,
    /// Counts settings changes from 1 (0: defaults); `expectedVersion`.
    pub settings_version: u64,
    pub install: Option<InstallJobRow>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn site_key(id: Uuid) -> Vec<u8> {
    Key::new(b"site/").uuid(id).build()
}

fn server_key(id: Uuid) -> Vec<u8> {
    Key::new(b"s/").uuid(id).build()
}

fn by_site_key(site: Uuid, id: Uuid) -> Vec<u8> {
    Key::new(b"ss/").uuid(site).uuid(id).build()
}

/// The projection that maintains [`Servers`].
pub struct ServersProjection;

impl ServersProjection {
    pub const NAME: &'static str = "servers";
}

fn load(w: &Overlay, id: Uuid) -> Result<ServerRow> {
    w.get_value(&server_key(id))?
        .ok_or_else(|| ProjectionError::Invariant(format!("event for unknown server {id}")))
}

impl Projection<DomainEvent> for ServersProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        match &e.payload {
            E::SiteCreated { site_id, name, at } => w.put_value(
                site_key(*site_id),
                &SiteRow {
                    id: *site_id,
                    name: name.clone(),
                    created_at: *at,
                },
            ),
            E::SiteRenamed { site_id, name, .. } => {
                if let Some(mut site) = w.get_value::<SiteRow>(&site_key(*site_id))? {
                    site.name = name.clone();
                    w.put_value(site_key(*site_id), &site)?;
                }
                Ok(())
            }
            E::ServerConnected {
                server_id,
                site_id,
                name,
                host,
                deployment,
                version,
                at,
                ..
            } => {
                let previous: Option<ServerRow> = w.get_value(&server_key(*server_id))?;
                let row = ServerRow {
                    id: *server_id,
                    site_id: *site_id,
                    name: name.clone(),
                    host: host.clone(),
                    deployment: *deployment,
                    version: version.clone(),
                    status: ServerStatus::Connected,
                    online: true,
                    online_since: *at,
                    last_heartbeat: None,
                    settings: previous
                        .as_ref()
                        .map(|p| p.settings.clone())
                        .unwrap_or_default(),
                    settings_version: previous.as_ref().map_or(0, |p| p.settings_version),
                    install: previous.as_ref().and_then(|p| p.install.clone()),
                    created_at: previous.as_ref().map_or(*at, |p| p.created_at),
                    updated_at: *at,
                };
                w.insert(by_site_key(*site_id, *server_id), Vec::new())?;
                w.put_value(server_key(*server_id), &row)
            }
            E::ServerInstallRequested {
                server_id,
                site_id,
                job_id,
                host,
                options,
                at,
                ..
            } => {
                let row = ServerRow {
                    id: *server_id,
                    site_id: *site_id,
                    name: options.name.clone().unwrap_or_else(|| host.clone()),
                    host: host.clone(),
                    deployment: options.deployment,
                    version: options.version.clone().unwrap_or_default(),
                    status: ServerStatus::Installing,
                    online: false,
                    online_since: *at,
                    last_heartbeat: None,
                    settings: ServerSettings::default(),
                    settings_version: 0,
                    install: Some(InstallJobRow {
                        job_id: *job_id,
                        requested_at: *at,
                        step: InstallStep::Queued,
                        status: InstallStatus::InProgress,
                        message: None,
                        history: Vec::new(),
                    }),
                    created_at: *at,
                    updated_at: *at,
                };
                w.insert(by_site_key(*site_id, *server_id), Vec::new())?;
                w.put_value(server_key(*server_id), &row)
            }
            E::InstallProgressReported {
                server_id,
                step,
                status,
                message,
                at,
                ..
            } => {
                let mut row = load(w, *server_id)?;
                if let Some(job) = &mut row.install {
                    job.step = *step;
                    job.status = *status;
                    job.message = message.clone();
                    job.history.push(InstallProgress {
                        step: *step,
                        status: *status,
                        message: message.clone(),
                        at: *at,
                    });
                }
                match (step, status) {
                    (_, InstallStatus::Failed) => row.status = ServerStatus::InstallFailed,
                    (InstallStep::Connected, InstallStatus::Succeeded) => {
                        row.status = ServerStatus::Connected;
                        row.online = true;
                        row.online_since = *at;
                    }
                    _ => {}
                }
                row.updated_at = *at;
                w.put_value(server_key(*server_id), &row)
            }
            E::ServerSettingsChanged {
                server_id,
                settings,
                version,
                at,
                ..
            } => {
                let mut row = load(w, *server_id)?;
                row.settings = settings.clone();
                row.settings_version = *version;
                row.updated_at = *at;
                w.put_value(server_key(*server_id), &row)
            }
            E::ServerDisconnected { server_id, at, .. } => {
                let mut row = load(w, *server_id)?;
                row.status = ServerStatus::Disconnected;
                if row.online {
                    row.online = false;
                    row.online_since = *at;
                }
                row.updated_at = *at;
                w.put_value(server_key(*server_id), &row)
            }
            E::ServerWentOffline {
                server_id,
                last_heartbeat,
                at,
                ..
            } => {
                let mut row = load(w, *server_id)?;
                row.online = false;
                row.online_since = *at;
                row.last_heartbeat = Some(*last_heartbeat);
                row.updated_at = *at;
                w.put_value(server_key(*server_id), &row)
            }
            E::ServerCameOnline { server_id, at, .. } => {
                let mut row = load(w, *server_id)?;
                row.online = true;
                row.online_since = *at;
                row.updated_at = *at;
                w.put_value(server_key(*server_id), &row)
            }
            _ => Ok(()),
        }
    }
}

/// Queries over sites and servers.
#[derive(Clone, Debug)]
pub struct Servers {
    tree: TreeRef,
}

impl Servers {
    pub fn new(tree: TreeRef) -> Self {
        Servers { tree }
    }

    /// Every site, by id.
    pub fn sites(&self) -> Result<Vec<SiteRow>> {
        values(&self.tree, b"site/")
    }

    pub fn site(&self, id: Uuid) -> Result<Option<SiteRow>> {
        get(&self.tree, &site_key(id))
    }

    pub fn server(&self, id: Uuid) -> Result<Option<ServerRow>> {
        get(&self.tree, &server_key(id))
    }

    /// The servers of one site, or of every site.
    pub fn servers(&self, site: Option<Uuid>) -> Result<Vec<ServerRow>> {
        match site {
            None => values(&self.tree, b"s/"),
            Some(site) => {
                let prefix = Key::new(b"ss/").uuid(site).build();
                let mut out = Vec::new();
                for kv in self.tree.scan_prefix(&prefix) {
                    let (k, _) = kv?;
                    let id = super::util::trailing_uuid(&k)?;
                    if let Some(row) = self.server(id)? {
                        out.push(row);
                    }
                }
                Ok(out)
            }
        }
    }
}
