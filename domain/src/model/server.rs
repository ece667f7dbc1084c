//! The server aggregate (stream `server-<uuid>`): a Session Recording
//! server of a site, its install job, its settings and its liveness.
//!
//! - `connect` registers a running server and keeps the SHA-256 of its
//!   agent credential (the secret itself is returned once by the app layer
//!   and never stored).
//! - `install` registers a server the service installs; the installer
//!   reports steps `QUEUED -> DOWNLOADING -> INSTALLING -> CONFIGURING ->
//!   CONNECTED` (never backwards) or fails with a message.
//! - Settings are one versioned record: every change writes the whole new
//!   record with `version + 1`, and a change may name the version it was
//!   based on (stale -> CONFLICT). Connecting writes version 1 (defaults).
//! - `rotate_agent_token` replaces the agent credential: one
//!   `AgentTokenRotated` event revokes the old credential and installs the
//!   new one (the first credential's token id is the server's id). A
//!   disconnected server's credential stays revoked: it is not rotated.
//! - Liveness: heartbeats are not events (they would flood the log). The
//!   app layer remembers the last heartbeat per server and asks
//!   [`liveness`] whether a transition is due; only transitions are events.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::policy::looks_like_email;
use crate::time::Timestamp;

/// Server id.
pub type ServerId = Uuid;

/// Where a server runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Deployment {
    OnPremises,
    Cloud,
}

/// What the admin asked the installer for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallOptions {
    /// The server's display name; defaults to the host.
    pub name: Option<String>,
    /// The server version to install; `None`: the latest.
    pub version: Option<String>,
    pub deployment: Deployment,
    /// Installer options passed through as given.
    pub extra: BTreeMap<String, String>,
}

/// The steps of an install job, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstallStep {
    Queued,
    Downloading,
    Installing,
    Configuring,
    Connected,
}

impl FromStr for InstallStep {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().to_ascii_uppercase().as_str() {
            "QUEUED" => InstallStep::Queued,
            "DOWNLOADING" => InstallStep::Downloading,
            "INSTALLING" => InstallStep::Installing,
            "CONFIGURING" => InstallStep::Configuring,
            "CONNECTED" => InstallStep::Connected,
            _ => {
                return Err(format!(
                    "unknown install step `{s}` (QUEUED, DOWNLOADING, INSTALLING, CONFIGURING, CONNECTED)"
                ))
            }
        })
    }
}

impl fmt::Display for InstallStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InstallStep::Queued => "QUEUED",
            InstallStep::Downloading => "DOWNLOADING",
            InstallStep::Installing => "INSTALLING",
            InstallStep::Configuring => "CONFIGURING",
            InstallStep::Connected => "CONNECTED",
        })
    }
}

/// How a reported step went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InstallStatus {
    InProgress,
    Succeeded,
    Failed,
}

/// A language's recording notification text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalizedMessage {
    pub language: String,
    pub text: String,
}

/// A server's settings: one record, replaced as a whole on each change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// Where recordings are written, used round-robin; at least one.
    pub storage_paths: Vec<String>,
    /// Where archived files are restored to.
    pub restore_directory: String,
    /// Roll over to a new file at this size (10..=300 MB) ...
    pub max_file_size_mb: u32,
    /// ... or after this long (1..=24 h), whichever comes first.
    pub max_recording_hours: u32,
    pub live_playback_enabled: bool,
    /// Encrypt files downloaded for playback.
    pub encrypt_downloads: bool,
    pub recording_enabled: bool,
    pub digital_signing_enabled: bool,
    /// Required when signing is on; hex, uppercase, no separators.
    pub signing_certificate_thumbprint: Option<String>,
    pub notification_messages: Vec<LocalizedMessage>,
    /// Sender address of alert emails.
    pub alert_sender: Option<String>,
    pub admin_logging_enabled: bool,
    /// When on, recording stops if the admin log cannot be written.
    pub admin_logging_mandatory: bool,
}

impl ServerSettings {
    /// Allowed `max_file_size_mb`.
    pub const FILE_SIZE_MB: std::ops::RangeInclusive<u32> = 10..=300;
    /// Allowed `max_recording_hours`.
    pub const RECORDING_HOURS: std::ops::RangeInclusive<u32> = 1..=24;

    /// Every problem with these settings, in field order; empty when valid.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.storage_paths.is_empty() {
            problems.push("storagePaths: at least one storage directory is required".to_string());
        }
        let mut seen = Vec::<String>::new();
        for path in &self.storage_paths {
            let key = path.trim().to_lowercase();
            if key.is_empty() {
                problems.push("storagePaths: directories must not be blank".into());
            } else if seen.contains(&key) {
                problems.push(format!("storagePaths: `{path}` is listed twice"));
            }
            seen.push(key);
        }
        let restore = self.restore_directory.trim().to_lowercase();
        if restore.is_empty() {
            problems.push("restoreDirectory: a restore directory is required".into());
        } else if seen.contains(&restore) {
            problems.push("restoreDirectory: must differ from the storage directories".into());
        }
        if !Self::FILE_SIZE_MB.contains(&self.max_file_size_mb) {
            problems.push(format!(
                "maxFileSizeMb: {} is outside 10..300",
                self.max_file_size_mb
            ));
        }
        if !Self::RECORDING_HOURS.contains(&self.max_recording_hours) {
            problems.push(format!(
                "maxRecordingHours: {} is outside 1..24",
                self.max_recording_hours
            ));
        }
        match &self.signing_certificate_thumbprint {
            Some(t)
                if !(t.len() == 40 || t.len() == 64)
                    || !t.chars().all(|c| c.is_ascii_hexdigit()) =>
            {
                problems.push(
                    "signingCertificateThumbprint: must be 40 (SHA-1) or 64 (SHA-256) hex digits"
                        .into(),
                )
            }
            None if self.digital_signing_enabled => problems.push(
                "signingCertificateThumbprint: digital signing needs a certificate thumbprint"
                    .into(),
            ),
            _ => {}
        }
        let mut languages = Vec::<String>::new();
        for message in &self.notification_messages {
            let language = message.language.trim().to_lowercase();
            if language.is_empty() {
                problems.push("notificationMessages: language must not be blank".into());
            } else if languages.contains(&language) {
                problems.push(format!(
                    "notificationMessages: language `{}` is given twice",
                    message.language
                ));
            }
            if message.text.trim().is_empty() || message.text.chars().count() > 2_000 {
                problems.push(format!(
                    "notificationMessages: the `{}` text must be 1 to 2000 characters",
                    message.language
                ));
            }
            languages.push(language);
        }
        if let Some(sender) = &self.alert_sender {
            if !looks_like_email(sender) {
                problems.push(format!("alertSender: `{sender}` is not an email address"));
            }
        }
        if self.admin_logging_mandatory && !self.admin_logging_enabled {
            problems.push(
                "adminLoggingMandatory: administrator logging must be on to be mandatory".into(),
            );
        }
        problems
    }

    /// These settings with `patch` applied (not validated).
    pub fn patched(&self, patch: SettingsPatch) -> ServerSettings {
        let mut next = self.clone();
        let blank_to_none = |value: String| {
            let value = value.trim().to_string();
            (!value.is_empty()).then_some(value)
        };
        if let Some(v) = patch.storage_paths {
            next.storage_paths = v.into_iter().map(|p| p.trim().to_string()).collect();
        }
        if let Some(v) = patch.restore_directory {
            next.restore_directory = v.trim().to_string();
        }
        if let Some(v) = patch.max_file_size_mb {
            next.max_file_size_mb = v;
        }
        if let Some(v) = patch.max_recording_hours {
            next.max_recording_hours = v;
        }
        if let Some(v) = patch.live_playback_enabled {
            next.live_playback_enabled = v;
        }
        if let Some(v) = patch.encrypt_downloads {
            next.encrypt_downloads = v;
        }
        if let Some(v) = patch.recording_enabled {
            next.recording_enabled = v;
        }
        if let Some(v) = patch.digital_signing_enabled {
            next.digital_signing_enabled = v;
        }
        if let Some(v) = patch.signing_certificate_thumbprint {
            next.signing_certificate_thumbprint = blank_to_none(v).map(|t| {
                t.chars()
                    .filter(|c| !matches!(c, ' ' | ':'))
                    .collect::<String>()
                    .to_ascii_uppercase()
            });
        }
        if let Some(v) = patch.notification_messages {
            next.notification_messages = v;
        }
        if let Some(v) = patch.alert_sender {
            next.alert_sender = blank_to_none(v);
        }
        if let Some(v) = patch.admin_logging_enabled {
            next.admin_logging_enabled = v;
        }
        if let Some(v) = patch.admin_logging_mandatory {
            next.admin_logging_mandatory = v;
        }
        next
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            storage_paths: vec![r"C:\SessionRecordings".into()],
            restore_directory: r"C:\SessionRecordingsRestore".into(),
            max_file_size_mb: 50,
            max_recording_hours: 12,
            live_playback_enabled: true,
            encrypt_downloads: true,
            recording_enabled: true,
            digital_signing_enabled: false,
            signing_certificate_thumbprint: None,
            notification_messages: vec![LocalizedMessage {
                language: "en".into(),
                text: "Your activity with one or more of the programs you recently started is \
                       being recorded. If you object to this condition, close the programs."
                    .into(),
            }],
            alert_sender: None,
            admin_logging_enabled: true,
            admin_logging_mandatory: false,
        }
    }
}

/// A settings change: `None` keeps the current value. For the optional
/// text settings an empty string clears the value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub storage_paths: Option<Vec<String>>,
    pub restore_directory: Option<String>,
    pub max_file_size_mb: Option<u32>,
    pub max_recording_hours: Option<u32>,
    pub live_playback_enabled: Option<bool>,
    pub encrypt_downloads: Option<bool>,
    pub recording_enabled: Option<bool>,
    pub digital_signing_enabled: Option<bool>,
    pub signing_certificate_thumbprint: Option<String>,
    pub notification_messages: Option<Vec<LocalizedMessage>>,
    pub alert_sender: Option<String>,
    pub admin_logging_enabled: Option<bool>,
    pub admin_logging_mandatory: Option<bool>,
}

/// A liveness transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    WentOffline,
    CameOnline,
}

/// Whether a server's liveness changes: it is alive when its last
/// heartbeat is at most `period_secs` old. `None` when nothing changes.
pub fn liveness(
    last_heartbeat: Option<Timestamp>,
    now: Timestamp,
    period_secs: i64,
    currently_online: bool,
) -> Option<Liveness> {
    let alive = last_heartbeat.is_some_and(|beat| {
        now.as_micros().saturating_sub(beat.as_micros())
            <= period_secs.saturating_mul(Timestamp::MICROS_PER_SEC)
    });
    match (currently_online, alive) {
        (true, false) => Some(Liveness::WentOffline),
        (false, true) => Some(Liveness::CameOnline),
        (true, true) | (false, false) => None,
    }
}

/// Where a server is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ServerStatus {
    /// No such server.
    #[default]
    Unknown,
    Installing,
    InstallFailed,
    Connected,
    Disconnected,
}

/// The install job of a server installed by the service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InstallJob {
    pub job_id: Uuid,
    pub step: InstallStep,
    pub status: InstallStatus,
    pub message: Option<String>,
}

/// A server as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Server {
    pub id: Option<ServerId>,
    pub site_id: Option<Uuid>,
    pub name: String,
    pub host: String,
    pub deployment: Option<Deployment>,
    pub version: String,
    pub status: ServerStatus,
    pub online: bool,
    /// Never shown: a credential's hash is nobody's business but the log's.
    #[serde(skip_serializing)]
    pub credential_sha256: String,
    /// The token id of the agent credential (the server's id until a
    /// rotation).
    pub agent_token_id: Option<Uuid>,
    pub settings: ServerSettings,
    pub settings_version: u64,
    pub install: Option<InstallJob>,
}

/// Why a server command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ServerError {
    #[error("server not found")]
    NotFound,
    #[error("server {0} already exists")]
    AlreadyExists(ServerId),
    #[error("the server is disconnected")]
    Disconnected,
    #[error("{0}")]
    Invalid(String),
    #[error("invalid settings: {}", .0.join("; "))]
    InvalidSettings(Vec<String>),
    #[error("the settings changed meanwhile: expected version {expected}, actual {actual}")]
    StaleSettings { expected: u64, actual: u64 },
    #[error("the server has no install job")]
    NoInstallJob,
    #[error("the install job has finished ({0:?})")]
    InstallFinished(InstallStatus),
    #[error("install step {reported} comes before the current step {current}")]
    StepBackwards {
        current: InstallStep,
        reported: InstallStep,
    },
}

impl Coded for ServerError {
    fn code(&self) -> ErrorCode {
        match self {
            ServerError::NotFound => ErrorCode::NotFound,
            ServerError::AlreadyExists(_) | ServerError::StaleSettings { .. } => {
                ErrorCode::Conflict
            }
            ServerError::Disconnected
            | ServerError::Invalid(_)
            | ServerError::InvalidSettings(_)
            | ServerError::NoInstallJob
            | ServerError::InstallFinished(_)
            | ServerError::StepBackwards { .. } => ErrorCode::Validation,
        }
    }
}

/// What may be asked of a server.
#[derive(Clone, Debug, PartialEq)]
pub enum ServerCommand {
    Connect {
        server_id: ServerId,
        site_id: Uuid,
        name: String,
        host: String,
        deployment: Deployment,
        version: String,
        /// Hex SHA-256 of the agent secret.
        credential_sha256: String,
        now: Timestamp,
    },
    RequestInstall {
        server_id: ServerId,
        site_id: Uuid,
        job_id: Uuid,
        host: String,
        options: InstallOptions,
        credential_sha256: String,
        now: Timestamp,
    },
    ReportInstallProgress {
        step: InstallStep,
        status: InstallStatus,
        message: Option<String>,
        now: Timestamp,
    },
    UpdateSettings {
        patch: SettingsPatch,
        /// The settings version the change is based on; stale -> CONFLICT.
        expected_version: Option<u64>,
        now: Timestamp,
    },
    Disconnect {
        now: Timestamp,
    },
    /// Replaces the agent credential with `token_id` (secret SHA-256
    /// `credential_sha256`), revoking the current one.
    RotateAgentToken {
        token_id: Uuid,
        credential_sha256: String,
        now: Timestamp,
    },
    /// Records a liveness transition if one is due (see [`liveness`]).
    ObserveLiveness {
        last_heartbeat: Option<Timestamp>,
        period_secs: i64,
        now: Timestamp,
    },
}

impl CommandFor for ServerCommand {
    type Aggregate = Server;
}

fn required(value: &str, what: &str) -> Result<String, ServerError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > 255 {
        return Err(ServerError::Invalid(format!(
            "{what} must be 1 to 255 characters"
        )));
    }
    Ok(value.to_string())
}

fn check_credential(hash: &str) -> Result<(), ServerError> {
    if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(ServerError::Invalid(
            "the agent credential must be a hex SHA-256".into(),
        ));
    }
    Ok(())
}

impl Aggregate for Server {
    type Command = ServerCommand;
    type Error = ServerError;
    const STREAM_PREFIX: &'static str = "server";

    fn decide(&self, command: ServerCommand) -> Result<Vec<DomainEvent>, ServerError> {
        match command {
            ServerCommand::Connect {
                server_id,
                site_id,
                name,
                host,
                deployment,
                version,
                credential_sha256,
                now,
            } => {
                if self.id.is_some() {
                    return Err(ServerError::AlreadyExists(server_id));
                }
                check_credential(&credential_sha256)?;
                Ok(vec![
                    DomainEvent::ServerConnected {
                        server_id,
                        site_id,
                        name: required(&name, "the server name")?,
                        host: required(&host, "the host")?,
                        deployment,
                        version: required(&version, "the version")?,
                        credential_sha256,
                        at: now,
                    },
                    DomainEvent::ServerSettingsChanged {
                        server_id,
                        site_id,
                        settings: ServerSettings::default(),
                        version: 1,
                        at: now,
                    },
                ])
            }
            ServerCommand::RequestInstall {
                server_id,
                site_id,
                job_id,
                host,
                options,
                credential_sha256,
                now,
            } => {
                if self.id.is_some() {
                    return Err(ServerError::AlreadyExists(server_id));
                }
                check_credential(&credential_sha256)?;
                let host = required(&host, "the host")?;
                if let Some(name) = &options.name {
                    required(name, "the server name")?;
                }
                Ok(vec![
                    DomainEvent::ServerInstallRequested {
                        server_id,
                        site_id,
                        job_id,
                        host,
                        options,
                        credential_sha256,
                        at: now,
                    },
                    DomainEvent::ServerSettingsChanged {
                        server_id,
                        site_id,
                        settings: ServerSettings::default(),
                        version: 1,
                        at: now,
                    },
                ])
            }
            ServerCommand::ReportInstallProgress {
                step,
                status,
                message,
                now,
            } => {
                let (server_id, site_id) = self.ids()?;
                let job = self.install.as_ref().ok_or(ServerError::NoInstallJob)?;
                let finished = job.status == InstallStatus::Failed
                    || (job.step == InstallStep::Connected
                        && job.status == InstallStatus::Succeeded);
                if finished {
                    return Err(ServerError::InstallFinished(job.status));
                }
                if step < job.step {
                    return Err(ServerError::StepBackwards {
                        current: job.step,
                        reported: step,
                    });
                }
                let message = message
                    .map(|m| m.trim().to_string())
                    .filter(|m| !m.is_empty());
                if status == InstallStatus::Failed && message.is_none() {
                    return Err(ServerError::Invalid(
                        "a failed install step needs a message".into(),
                    ));
                }
                Ok(vec![DomainEvent::InstallProgressReported {
                    server_id,
                    site_id,
                    job_id: job.job_id,
                    step,
                    status,
                    message,
                    at: now,
                }])
            }
            ServerCommand::UpdateSettings {
                patch,
                expected_version,
                now,
            } => {
                let (server_id, site_id) = self.ids()?;
                self.check_not_disconnected()?;
                if let Some(expected) = expected_version {
                    if expected != self.settings_version {
                        return Err(ServerError::StaleSettings {
                            expected,
                            actual: self.settings_version,
                        });
                    }
                }
                let settings = self.settings.patched(patch);
                let problems = settings.problems();
                if !problems.is_empty() {
                    return Err(ServerError::InvalidSettings(problems));
                }
                if settings == self.settings {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::ServerSettingsChanged {
                    server_id,
                    site_id,
                    settings,
                    version: self.settings_version + 1,
                    at: now,
                }])
            }
            ServerCommand::Disconnect { now } => {
                let (server_id, site_id) = self.ids()?;
                self.check_not_disconnected()?;
                Ok(vec![DomainEvent::ServerDisconnected {
                    server_id,
                    site_id,
                    at: now,
                }])
            }
            ServerCommand::RotateAgentToken {
                token_id,
                credential_sha256,
                now,
            } => {
                let (server_id, site_id) = self.ids()?;
                self.check_not_disconnected()?;
                check_credential(&credential_sha256)?;
                let previous_token_id = self.agent_token_id.unwrap_or(server_id);
                if token_id == previous_token_id || token_id == server_id {
                    return Err(ServerError::Invalid(
                        "a rotated agent credential needs a new token id".into(),
                    ));
                }
                Ok(vec![DomainEvent::AgentTokenRotated {
                    server_id,
                    site_id,
                    token_id,
                    previous_token_id,
                    credential_sha256,
                    at: now,
                }])
            }
            ServerCommand::ObserveLiveness {
                last_heartbeat,
                period_secs,
                now,
            } => {
                let (server_id, site_id) = self.ids()?;
                // Only a connected server can be offline; an installing one
                // reports through its install job instead.
                if self.status != ServerStatus::Connected {
                    return Ok(vec![]);
                }
                Ok(
                    match liveness(last_heartbeat, now, period_secs, self.online) {
                        Some(Liveness::WentOffline) => vec![DomainEvent::ServerWentOffline {
                            server_id,
                            site_id,
                            last_heartbeat: last_heartbeat.unwrap_or(Timestamp::EPOCH),
                            at: now,
                        }],
                        Some(Liveness::CameOnline) => vec![DomainEvent::ServerCameOnline {
                            server_id,
                            site_id,
                            at: now,
                        }],
                        None => vec![],
                    },
                )
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::ServerConnected {
                server_id,
                site_id,
                name,
                host,
                deployment,
                version,
                credential_sha256,
                ..
            } => {
                self.id = Some(*server_id);
                self.site_id = Some(*site_id);
                self.name = name.clone();
                self.host = host.clone();
                self.deployment = Some(*deployment);
                self.version = version.clone();
                self.credential_sha256 = credential_sha256.clone();
                self.agent_token_id = Some(*server_id);
                self.status = ServerStatus::Connected;
                self.online = true;
            }
            DomainEvent::ServerInstallRequested {
                server_id,
                site_id,
                job_id,
                host,
                options,
                credential_sha256,
                ..
            } => {
                self.id = Some(*server_id);
                self.site_id = Some(*site_id);
                self.name = options.name.clone().unwrap_or_else(|| host.clone());
                self.host = host.clone();
                self.deployment = Some(options.deployment);
                self.version = options.version.clone().unwrap_or_default();
                self.credential_sha256 = credential_sha256.clone();
                self.agent_token_id = Some(*server_id);
                self.status = ServerStatus::Installing;
                self.install = Some(InstallJob {
                    job_id: *job_id,
                    step: InstallStep::Queued,
                    status: InstallStatus::InProgress,
                    message: None,
                });
            }
            DomainEvent::InstallProgressReported {
                step,
                status,
                message,
                ..
            } => {
                if let Some(job) = &mut self.install {
                    job.step = *step;
                    job.status = *status;
                    job.message = message.clone();
                }
                match (step, status) {
                    (_, InstallStatus::Failed) => self.status = ServerStatus::InstallFailed,
                    (InstallStep::Connected, InstallStatus::Succeeded) => {
                        self.status = ServerStatus::Connected;
                        self.online = true;
                    }
                    _ => {}
                }
            }
            DomainEvent::ServerSettingsChanged {
                settings, version, ..
            } => {
                self.settings = settings.clone();
                self.settings_version = *version;
            }
            DomainEvent::ServerDisconnected { .. } => {
                self.status = ServerStatus::Disconnected;
                self.online = false;
            }
            DomainEvent::AgentTokenRotated {
                token_id,
                credential_sha256,
                ..
            } => {
                self.agent_token_id = Some(*token_id);
                self.credential_sha256 = credential_sha256.clone();
            }
            DomainEvent::ServerWentOffline { .. } => self.online = false,
            DomainEvent::ServerCameOnline { .. } => self.online = true,
            _ => {}
        }
    }
}

impl Server {
    fn ids(&self) -> Result<(ServerId, Uuid), ServerError> {
        match (self.id, self.site_id) {
            (Some(id), Some(site)) => Ok((id, site)),
            _ => Err(ServerError::NotFound),
        }
    }

    fn check_not_disconnected(&self) -> Result<(), ServerError> {
        if self.status == ServerStatus::Disconnected {
            return Err(ServerError::Disconnected);
        }
        Ok(())
    }

    /// Whether the server may ingest recordings now.
    pub fn accepts_recordings(&self) -> bool {
        self.status == ServerStatus::Connected
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    fn settings_v1() -> DomainEvent {
        DomainEvent::ServerSettingsChanged {
            server_id: SERVER,
            site_id: SITE,
            settings: ServerSettings::default(),
            version: 1,
            at: T0,
        }
    }

    fn update(patch: SettingsPatch, expected_version: Option<u64>) -> ServerCommand {
        ServerCommand::UpdateSettings {
            patch,
            expected_version,
            now: T1,
        }
    }

    fn installing() -> DomainEvent {
        DomainEvent::ServerInstallRequested {
            server_id: SERVER,
            site_id: SITE,
            job_id: JOB,
            host: "sr-02.corp".into(),
            options: InstallOptions {
                name: None,
                version: None,
                deployment: Deployment::Cloud,
                extra: BTreeMap::new(),
            },
            credential_sha256: CREDENTIAL.into(),
            at: T0,
        }
    }

    fn progress(step: InstallStep, status: InstallStatus, message: Option<&str>) -> ServerCommand {
        ServerCommand::ReportInstallProgress {
            step,
            status,
            message: message.map(str::to_string),
            now: T1,
        }
    }

    #[test]
    fn connecting_registers_the_server_with_default_settings() {
        given([])
            .when(ServerCommand::Connect {
                server_id: SERVER,
                site_id: SITE,
                name: "SR-01".into(),
                host: "sr-01.corp".into(),
                deployment: Deployment::OnPremises,
                version: "2411".into(),
                credential_sha256: CREDENTIAL.into(),
                now: T0,
            })
            .then([server_connected(), settings_v1()]);
    }

    #[test]
    fn a_server_only_keeps_a_hash_of_its_credential() {
        given([])
            .when(ServerCommand::Connect {
                server_id: SERVER,
                site_id: SITE,
                name: "SR-01".into(),
                host: "sr-01.corp".into(),
                deployment: Deployment::OnPremises,
                version: "2411".into(),
                credential_sha256: "plain secret".into(),
                now: T0,
            })
            .then_err_code(ErrorCode::Validation);
    }

    #[test]
    fn settings_change_with_the_current_version() {
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    max_file_size_mb: Some(100),
                    ..Default::default()
                },
                Some(1),
            ))
            .then([DomainEvent::ServerSettingsChanged {
                server_id: SERVER,
                site_id: SITE,
                settings: ServerSettings {
                    max_file_size_mb: 100,
                    ..ServerSettings::default()
                },
                version: 2,
                at: T1,
            }]);
    }

    #[test]
    fn stale_settings_version_is_a_conflict() {
        given([server_connected(), settings_v1()])
            .when(update(SettingsPatch::default(), Some(0)))
            .then_err(|e| {
                *e == ServerError::StaleSettings {
                    expected: 0,
                    actual: 1,
                }
            });
    }

    #[test]
    fn out_of_range_rollover_limits_are_refused_with_clear_errors() {
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    max_file_size_mb: Some(301),
                    max_recording_hours: Some(0),
                    ..Default::default()
                },
                None,
            ))
            .then_err(|e| {
                matches!(e, ServerError::InvalidSettings(p)
                    if p.len() == 2 && p[0].starts_with("maxFileSizeMb") && p[1].starts_with("maxRecordingHours"))
            });
    }

    #[test]
    fn rollover_limits_accept_their_bounds() {
        for (mb, hours) in [(10, 1), (300, 24)] {
            given([server_connected(), settings_v1()])
                .when(update(
                    SettingsPatch {
                        max_file_size_mb: Some(mb),
                        max_recording_hours: Some(hours),
                        ..Default::default()
                    },
                    None,
                ))
                .then_ok();
        }
    }

    #[test]
    fn storage_needs_a_directory_and_a_distinct_restore_directory() {
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    storage_paths: Some(vec![]),
                    ..Default::default()
                },
                None,
            ))
            .then_err(|e| e.to_string().contains("storagePaths"));
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    storage_paths: Some(vec![r"D:\rec".into(), r"E:\rec".into()]),
                    restore_directory: Some(r"d:\REC".into()),
                    ..Default::default()
                },
                None,
            ))
            .then_err(|e| e.to_string().contains("restoreDirectory"));
    }

    #[test]
    fn signing_needs_a_thumbprint_and_mandatory_logging_needs_logging() {
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    digital_signing_enabled: Some(true),
                    admin_logging_enabled: Some(false),
                    admin_logging_mandatory: Some(true),
                    ..Default::default()
                },
                None,
            ))
            .then_err(|e| {
                let text = e.to_string();
                text.contains("signingCertificateThumbprint")
                    && text.contains("adminLoggingMandatory")
            });
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    digital_signing_enabled: Some(true),
                    signing_certificate_thumbprint: Some("ab:cd".repeat(8) + "abcdefab"),
                    ..Default::default()
                },
                None,
            ))
            .then_ok();
    }

    #[test]
    fn notification_languages_are_unique_and_alert_sender_is_an_address() {
        let message = |language: &str| LocalizedMessage {
            language: language.into(),
            text: "You are recorded".into(),
        };
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    notification_messages: Some(vec![message("en"), message("EN")]),
                    alert_sender: Some("nobody".into()),
                    ..Default::default()
                },
                None,
            ))
            .then_err(|e| {
                let text = e.to_string();
                text.contains("given twice") && text.contains("alertSender")
            });
    }

    #[test]
    fn unchanged_settings_write_nothing() {
        given([server_connected(), settings_v1()])
            .when(update(
                SettingsPatch {
                    max_file_size_mb: Some(50),
                    ..Default::default()
                },
                None,
            ))
            .then([]);
    }

    #[test]
    fn a_disconnected_server_takes_no_settings() {
        let disconnected = DomainEvent::ServerDisconnected {
            server_id: SERVER,
            site_id: SITE,
            at: T1,
        };
        given([server_connected(), settings_v1()])
            .when(ServerCommand::Disconnect { now: T1 })
            .then([disconnected.clone()]);
        given([server_connected(), settings_v1(), disconnected])
            .when(update(SettingsPatch::default(), None))
            .then_err(|e| *e == ServerError::Disconnected);
    }

    #[test]
    fn install_steps_move_forward_until_connected() {
        let step = |step, status| DomainEvent::InstallProgressReported {
            server_id: SERVER,
            site_id: SITE,
            job_id: JOB,
            step,
            status,
            message: None,
            at: T1,
        };
        given([installing()])
            .when(progress(
                InstallStep::Downloading,
                InstallStatus::InProgress,
                None,
            ))
            .then([step(InstallStep::Downloading, InstallStatus::InProgress)]);
        given([
            installing(),
            step(InstallStep::Installing, InstallStatus::InProgress),
        ])
        .when(progress(
            InstallStep::Downloading,
            InstallStatus::InProgress,
            None,
        ))
        .then_err(|e| matches!(e, ServerError::StepBackwards { .. }));
        let server = given([
            installing(),
            step(InstallStep::Connected, InstallStatus::Succeeded),
        ])
        .state::<Server>();
        assert_eq!(server.status, ServerStatus::Connected);
        assert_eq!(server.name, "sr-02.corp");
        given([
            installing(),
            step(InstallStep::Connected, InstallStatus::Succeeded),
        ])
        .when(progress(
            InstallStep::Connected,
            InstallStatus::Succeeded,
            None,
        ))
        .then_err(|e| matches!(e, ServerError::InstallFinished(_)));
    }

    #[test]
    fn a_failed_install_step_needs_a_message_and_ends_the_job() {
        given([installing()])
            .when(progress(
                InstallStep::Installing,
                InstallStatus::Failed,
                None,
            ))
            .then_err_code(ErrorCode::Validation);
        given([installing()])
            .when(progress(InstallStep::Installing, InstallStatus::Failed, Some("disk full")))
            .then_matches(|events| {
                matches!(events, [DomainEvent::InstallProgressReported { message: Some(m), .. }] if m == "disk full")
            });
    }

    #[test]
    fn install_progress_needs_an_install_job() {
        given([server_connected()])
            .when(progress(
                InstallStep::Queued,
                InstallStatus::InProgress,
                None,
            ))
            .then_err(|e| *e == ServerError::NoInstallJob);
    }

    #[test]
    fn liveness_changes_only_on_transitions() {
        let period = 60;
        let now = Timestamp::from_secs(1_000);
        assert_eq!(
            liveness(Some(Timestamp::from_secs(950)), now, period, true),
            None
        );
        assert_eq!(
            liveness(Some(Timestamp::from_secs(939)), now, period, true),
            Some(Liveness::WentOffline)
        );
        assert_eq!(
            liveness(None, now, period, true),
            Some(Liveness::WentOffline)
        );
        assert_eq!(
            liveness(Some(Timestamp::from_secs(999)), now, period, false),
            Some(Liveness::CameOnline)
        );
        assert_eq!(liveness(None, now, period, false), None);
    }

    #[test]
    fn a_silent_server_goes_offline_once() {
        let offline = DomainEvent::ServerWentOffline {
            server_id: SERVER,
            site_id: SITE,
            last_heartbeat: T0,
            at: T2,
        };
        let observe = ServerCommand::ObserveLiveness {
            last_heartbeat: Some(T0),
            period_secs: 60,
            now: T2,
        };
        given([server_connected()])
            .when(observe.clone())
            .then([offline.clone()]);
        given([server_connected(), offline]).when(observe).then([]);
    }

    #[test]
    fn a_heartbeat_brings_an_offline_server_back() {
        given([
            server_connected(),
            DomainEvent::ServerWentOffline {
                server_id: SERVER,
                site_id: SITE,
                last_heartbeat: T0,
                at: T1,
            },
        ])
        .when(ServerCommand::ObserveLiveness {
            last_heartbeat: Some(T2),
            period_secs: 60,
            now: T2,
        })
        .then([DomainEvent::ServerCameOnline {
            server_id: SERVER,
            site_id: SITE,
            at: T2,
        }]);
    }

    const NEW_TOKEN: Uuid = Uuid::from_u128(0xa6e);
    const NEW_HASH: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    fn rotate_agent(token_id: Uuid) -> ServerCommand {
        ServerCommand::RotateAgentToken {
            token_id,
            credential_sha256: NEW_HASH.into(),
            now: T1,
        }
    }

    fn agent_rotated(token_id: Uuid, previous_token_id: Uuid) -> DomainEvent {
        DomainEvent::AgentTokenRotated {
            server_id: SERVER,
            site_id: SITE,
            token_id,
            previous_token_id,
            credential_sha256: NEW_HASH.into(),
            at: T1,
        }
    }

    #[test]
    fn rotating_the_agent_token_revokes_the_old_one_in_the_same_event() {
        given([server_connected()])
            .when(rotate_agent(NEW_TOKEN))
            .then([agent_rotated(NEW_TOKEN, SERVER)]);
        let server =
            given([server_connected(), agent_rotated(NEW_TOKEN, SERVER)]).state::<Server>();
        assert_eq!(server.agent_token_id, Some(NEW_TOKEN));
        assert_eq!(server.credential_sha256, NEW_HASH);
        // The next rotation names this one as the revoked credential.
        let third = Uuid::from_u128(0xa6f);
        given([server_connected(), agent_rotated(NEW_TOKEN, SERVER)])
            .when(rotate_agent(third))
            .then_matches(|events| {
                matches!(events, [DomainEvent::AgentTokenRotated { previous_token_id, .. }] if *previous_token_id == NEW_TOKEN)
            });
    }

    #[test]
    fn a_disconnected_or_unknown_server_has_no_agent_token_to_rotate() {
        let disconnected = DomainEvent::ServerDisconnected {
            server_id: SERVER,
            site_id: SITE,
            at: T1,
        };
        given([server_connected(), disconnected])
            .when(rotate_agent(NEW_TOKEN))
            .then_err(|e| *e == ServerError::Disconnected);
        given([])
            .when(rotate_agent(NEW_TOKEN))
            .then_err(|e| *e == ServerError::NotFound);
        given([server_connected()])
            .when(ServerCommand::RotateAgentToken {
                token_id: NEW_TOKEN,
                credential_sha256: "plain".into(),
                now: T1,
            })
            .then_err_code(ErrorCode::Validation);
        given([server_connected()])
            .when(rotate_agent(SERVER))
            .then_err_code(ErrorCode::Validation);
    }
}
