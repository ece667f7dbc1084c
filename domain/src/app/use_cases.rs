//! The use cases the API calls, one method each. Every method that acts for
//! a principal checks `may` first (a refusal is recorded as
//! `AccessDenied`), loads the facts the command needs from other
//! aggregates, and runs the command through `execute`.
//!
//! # No existence oracle
//!
//! A recording (or server) id the caller may not see gets the same answer
//! whether it exists, was deleted, or never existed: `NOT_FOUND` with
//! `recording <id> not found` (`server <id> not found`), on every use case
//! that takes the id. "May see" is `ViewRecording` on the recording (its
//! server's AGENT sees its own recordings) and `ReadServerStatus` on a
//! server (an AGENT sees only its own). Only a caller who may see it learns
//! more: that it was deleted, or that its role may not do this
//! (`FORBIDDEN`). An attempt on an id the caller may not see is recorded as
//! `AccessDenied` whether or not the id exists (without a site when it
//! does not), so neither the answer nor the time it takes tells the cases
//! apart; callers who see every recording (or server) of every site simply
//! get `NOT_FOUND` for an absent id.
//!
//! # Playback facts
//!
//! [`Service::record_played`] records at most one `RecordingPlayed` per
//! principal (token), recording, kind and minute: its log id is derived
//! from those, and it is appended without an expected version, so parallel
//! `Range` requests of one player never conflict and the log's idempotency
//! by event id makes a burst of them one fact (the same id twice in one
//! group commit, or in two groups, is stored once and both are answered
//! with its position). A `recordingEvents` subscription is one such fact
//! of kind `Live` when it starts, refused (and recorded as a refusal) when
//! the recording's server has `livePlaybackEnabled: false`.
//!
//! # Legal holds
//!
//! Only an ADMIN (of the hold's site) places and releases holds. A hold
//! on recordings names recordings of one site that exist and are not
//! deleted; an id the caller may not see is `NOT_FOUND` as everywhere. A
//! deletion (`deleteRecording` or retention) loads the holds, refuses a
//! session any part of which is held (`CONFLICT`, naming the hold), and
//! appends each `RecordingDeleted` guarded by the holds stream's version
//! (see `model::hold`): a hold placed meanwhile makes the append fail, and
//! the deletion is decided again on the holds as they now are.

use std::collections::BTreeSet;

use rand::rngs::OsRng;
use rand::RngCore;
use uuid::Uuid;

use super::error::AppError;
use super::service::{Executed, Loaded, Service};
use crate::actor::Actor;
use crate::log::{ExpectedVersion, NewEvent};
use crate::model::{
    can_unrestrict_recording, can_view_recording, derived_id, evaluate, hash_secret,
    is_system_policy, legacy_recording_id, may, session_key, system_policy, Action, Aggregate,
    AnyPolicy, CommentSeverity, Deployment, DetectionPolicyBody, DomainEvent, HoldCommand,
    HoldError, HoldScope, InstallOptions, InstallStatus, InstallStep, LegalHolds, Lifecycle,
    PermissionCommand, PlaybackKind, PlaybackPermission, PlaybackScope, Policy, PolicyBody,
    PolicyCommand, PolicyDef, PolicyFacts, PolicyId, PolicyKind, Principal, Recording,
    RecordingAction, RecordingCommand, RecordingDecision, RecordingError, RecordingFacts as Facts,
    RecordingFacts, RecordingPolicyBody, ResponsePolicyBody, Retention, RetentionCommand,
    RetentionPolicy, Role, Server, ServerCommand, ServerError, SessionAttributes, SessionCommand,
    SessionEvent, SessionEventType, SessionParts, SettingsPatch, Site, SiteCommand, SiteError,
    StartRecording, Target, Token, TokenCommand, TokenError, Transition, LEGAL_HOLDS_STREAM,
    MAX_BATCH,
};
use crate::time::Timestamp;

/// The window within which one principal's plays of one recording are one
/// `RecordingPlayed` fact.
pub const PLAYBACK_WINDOW_SECS: i64 = 60;

/// The most parts (rollovers) one session may have.
pub const MAX_PARTS: u32 = 1_000;

/// A new aggregate and what creating it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub id: Uuid,
    pub executed: Executed,
}

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

/// A token and its secret, returned once and never again.
#[derive(Clone, PartialEq)]
pub struct IssuedToken {
    pub token_id: Uuid,
    pub secret: String,
    pub executed: Executed,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("token_id", &self.token_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// A rotated token: its successor's id and secret (returned once), and
/// what it replaced.
#[derive(Clone, PartialEq)]
pub struct RotatedToken {
    /// The new token.
    pub token_id: Uuid,
    /// The token the rotation revoked.
    pub previous_token_id: Uuid,
    /// The new bearer secret. Only its SHA-256 is stored.
    pub secret: String,
    /// The SHA-256 of the revoked secret (so that the API can tell a file
    /// that held it, `<data>/admin.token`, and write the new one there).
    pub previous_secret_sha256: String,
    /// For an AGENT credential: its server.
    pub server_id: Option<Uuid>,
    pub executed: Executed,
}

impl std::fmt::Debug for RotatedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedToken")
            .field("token_id", &self.token_id)
            .field("previous_token_id", &self.previous_token_id)
            .field("server_id", &self.server_id)
            .field("secret", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// Where a token's events are (see `Service::token_home`).
enum TokenHome {
    /// An issued token: the stream of its lineage's first token.
    Lineage(Uuid),
    /// An AGENT credential, on its server's stream.
    Agent { server_id: Uuid },
}

/// `startRecording` input.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRecordingInput {
    pub server_id: Uuid,
    /// The session's id on the server; with `server_id` the idempotency key.
    pub session_id: String,
    pub session: SessionAttributes,
    /// Defaults to now.
    pub started_at: Option<Timestamp>,
}

/// What `startRecording` did.
#[derive(Clone, Debug, PartialEq)]
pub struct StartedRecording {
    pub recording_id: Uuid,
    pub part: u32,
    /// Why it is (not) recorded.
    pub decision: Option<RecordingDecision>,
    /// False when the policy said DO_NOT_RECORD: send nothing further.
    pub recorded: bool,
    /// The request repeated an earlier start; nothing new was written.
    pub repeated: bool,
    pub executed: Executed,
}

/// What `recordSessionEvents` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedEvents {
    /// Session events newly stored.
    pub accepted: usize,
    /// Session events already stored (or repeated in the batch), skipped.
    pub duplicates: usize,
    /// Session events of types the site's active detection policy does not
    /// log: refused one by one, never stored.
    pub ignored: usize,
    pub detections: usize,
    pub responses: usize,
    pub executed: Executed,
}

/// The recordings of a session's parts, in order.
#[derive(Clone, Debug, Default)]
struct SessionPartIds {
    ids: Vec<Uuid>,
    /// Parts found at legacy ids (the session has no index yet).
    legacy: Vec<Uuid>,
}

/// The three active policies of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivePolicies {
    pub recording: PolicyDef<RecordingPolicyBody>,
    pub detection: PolicyDef<DetectionPolicyBody>,
    pub response: PolicyDef<ResponsePolicyBody>,
}

/// A fresh secret: 32 random bytes from the OS, hex, with a prefix that
/// secret scanners can recognise.
fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("srs_{}", hex::encode(bytes))
}

fn not_found(what: &str, id: Uuid) -> AppError {
    AppError::NotFound(format!("{what} {id} not found"))
}

/// What a recording's content target is: the recording and its server's
/// content limit.
#[derive(Clone, Debug)]
pub struct ContentTarget {
    pub recording: Loaded<Recording>,
    /// The server's `maxFileSizeMb`.
    pub max_file_size_mb: u32,
}

/// Whether `by` sees every recording of every site (an unscoped ADMIN or
/// PRIVILEGED_PLAYER): an absent id is then simply absent.
fn sees_all_recordings(by: &Principal) -> bool {
    may(by, Action::ViewRecording, Target::Global)
}

/// Whether `by` sees every server of every site.
fn sees_all_servers(by: &Principal) -> bool {
    may(by, Action::ReadServerStatus, Target::Global)
}

/// Whether `by` may know that the recording exists: `ViewRecording`, or
/// being its server's AGENT. A declined session has no recording anyone
/// lists: only its AGENT and ADMINs know it.
fn sees_recording(by: &Principal, facts: &Facts, grants: &[PlaybackScope], declined: bool) -> bool {
    let target = Target::Recording {
        recording: facts,
        grants,
    };
    if may(by, Action::Ingest, target) {
        return true;
    }
    if declined {
        return by.role == Role::Admin && by.covers_site(facts.site_id);
    }
    can_view_recording(by, facts, grants)
}

/// Whether `by` may know that the server exists.
fn sees_server(by: &Principal, site_id: Uuid, server_id: Uuid) -> bool {
    let target = Target::Server { site_id, server_id };
    may(by, Action::ReadServerStatus, target) || may(by, Action::Heartbeat, target)
}

fn narrow<B>(
    policy: AnyPolicy,
    pick: impl FnOnce(PolicyBody) -> Option<B>,
) -> Result<PolicyDef<B>, AppError> {
    let PolicyDef { id, name, body } = policy;
    let body = pick(body)
        .ok_or_else(|| AppError::Internal(format!("policy {id} is not of the expected kind")))?;
    Ok(PolicyDef { id, name, body })
}

impl Service {
    fn principal_actor(by: &Principal) -> Actor {
        by.actor()
    }

    async fn site(&self, site_id: Uuid) -> Result<Loaded<Site>, AppError> {
        let site = self.load::<Site>(site_id).await?;
        if site.state.id.is_none() {
            return Err(SiteError::NotFound.into());
        }
        Ok(site)
    }

    async fn server(&self, server_id: Uuid) -> Result<(Loaded<Server>, Uuid), AppError> {
        let server = self.load::<Server>(server_id).await?;
        let site_id = server.state.site_id.ok_or(ServerError::NotFound)?;
        Ok((server, site_id))
    }

    /// Server `server_id` once `by` may know it exists; otherwise (absent
    /// too) `NOT_FOUND` `server <id> not found`, the attempt recorded.
    async fn server_for(
        &self,
        by: &Principal,
        action: Action,
        server_id: Uuid,
    ) -> Result<(Loaded<Server>, Uuid), AppError> {
        let server = self.load::<Server>(server_id).await?;
        let site_id = self
            .known_server(by, action, server_id, server.state.site_id)
            .await?;
        Ok((server, site_id))
    }

    /// Whether `by` may know that server `server_id` exists, given its site
    /// (`None`: it does not exist), for use cases and for the API's reads
    /// of servers from read models: its site when it may; otherwise the
    /// `NOT_FOUND` an absent server gets, the attempt recorded (see the
    /// module docs).
    pub async fn known_server(
        &self,
        by: &Principal,
        action: Action,
        server_id: Uuid,
        site_id: Option<Uuid>,
    ) -> Result<Uuid, AppError> {
        match site_id {
            Some(site_id) if sees_server(by, site_id, server_id) => return Ok(site_id),
            None if sees_all_servers(by) => return Err(not_found("server", server_id)),
            _ => {}
        }
        let _ = self
            .deny(by, action, &format!("server:{server_id}"), site_id)
            .await;
        Err(not_found("server", server_id))
    }

    /// Recording `recording_id` once `by` may know it exists, with the
    /// scopes of `by`'s permissions on its site; otherwise (absent or
    /// deleted too) `NOT_FOUND` `recording <id> not found`, the attempt
    /// recorded. `as_unrestricted` judges visibility as if the recording
    /// were not restricted (who may lift a restriction).
    async fn recording_for(
        &self,
        by: &Principal,
        action: Action,
        recording_id: Uuid,
        as_unrestricted: bool,
    ) -> Result<(Loaded<Recording>, Facts, Vec<PlaybackScope>), AppError> {
        let recording = self.load::<Recording>(recording_id).await?;
        let label = format!("recording:{recording_id}");
        let Some(facts) = recording.state.facts() else {
            if !sees_all_recordings(by) {
                let _ = self.deny(by, action, &label, None).await;
            }
            return Err(not_found("recording", recording_id));
        };
        let grants = self.permissions.grants(by, facts.site_id).await?;
        let judged = Facts {
            restricted: facts.restricted && !as_unrestricted,
            ..facts.clone()
        };
        let declined = recording.state.lifecycle == Lifecycle::Declined;
        if !sees_recording(by, &judged, &grants, declined) {
            let _ = self.deny(by, action, &label, Some(facts.site_id)).await;
            return Err(not_found("recording", recording_id));
        }
        Ok((recording, facts, grants))
    }

    async fn recording(
        &self,
        recording_id: Uuid,
    ) -> Result<(Loaded<Recording>, RecordingFacts), AppError> {
        let recording = self.load::<Recording>(recording_id).await?;
        let facts = recording.state.facts().ok_or(RecordingError::NotFound)?;
        Ok((recording, facts))
    }

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

    // ---- policies -----------------------------------------------------------

    /// A policy by id: a system policy or a site's own (deleted ones too).
    pub async fn policy(&self, policy_id: PolicyId) -> Result<(AnyPolicy, Option<Uuid>), AppError> {
        if let Some(system) = system_policy(policy_id) {
            return Ok((system, None));
        }
        let policy = self.load::<Policy>(policy_id).await?;
        let def = policy
            .state
            .def()
            .ok_or_else(|| not_found("policy", policy_id))?;
        Ok((def, policy.state.site_id))
    }

    /// The site's active policies.
    pub async fn active_policies(&self, site: &Site) -> Result<ActivePolicies, AppError> {
        let (recording, _) = self
            .policy(site.active_policy(PolicyKind::Recording))
            .await?;
        let (detection, _) = self
            .policy(site.active_policy(PolicyKind::EventDetection))
            .await?;
        let (response, _) = self
            .policy(site.active_policy(PolicyKind::EventResponse))
            .await?;
        Ok(ActivePolicies {
            recording: narrow(recording, |b| match b {
                PolicyBody::Recording(b) => Some(b),
                _ => None,
            })?,
            detection: narrow(detection, |b| match b {
                PolicyBody::EventDetection(b) => Some(b),
                _ => None,
            })?,
            response: narrow(response, |b| match b {
                PolicyBody::EventResponse(b) => Some(b),
                _ => None,
            })?,
        })
    }

    /// `evaluateRecordingPolicy`: what the site's active recording policy
    /// would decide for a session.
    pub async fn evaluate_recording_policy(
        &self,
        by: &Principal,
        site_id: Uuid,
        session: &SessionAttributes,
    ) -> Result<RecordingDecision, AppError> {
        self.authorize(by, Action::ReadConfiguration, Target::Site(site_id))
            .await?;
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        Ok(evaluate(&active.recording, session))
    }

    /// `create*Policy`.
    pub async fn create_policy(
        &self,
        by: &Principal,
        site_id: Uuid,
        name: &str,
        body: PolicyBody,
    ) -> Result<Created, AppError> {
        self.authorize(by, Action::ManagePolicies, Target::Site(site_id))
            .await?;
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        let id = Uuid::now_v7();
        let command = PolicyCommand::Create {
            policy_id: id,
            site_id,
            name: name.to_string(),
            body,
            detection_logged: active.detection.body.logged,
            now: self.now(),
        };
        let executed = self
            .execute::<Policy>(id, command, &Self::principal_actor(by), Some(0))
            .await?;
        Ok(Created { id, executed })
    }

    /// `updatePolicy`. `expected` is the policy stream's version.
    pub async fn update_policy(
        &self,
        by: &Principal,
        policy_id: PolicyId,
        name: &str,
        body: PolicyBody,
        expected: Option<u64>,
    ) -> Result<Executed, AppError> {
        if is_system_policy(policy_id) {
            return Err(crate::model::PolicyError::SystemPolicy.into());
        }
        let (_, site_id) = self.policy(policy_id).await?;
        let site_id = site_id.ok_or_else(|| not_found("policy", policy_id))?;
        self.authorize(by, Action::ManagePolicies, Target::Site(site_id))
            .await?;
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        let is_active = site.state.active_policy(body.kind()) == policy_id;
        // An edit of the active detection policy must keep logging what
        // the active response policy triggers on.
        let must_log = if is_active && body.kind() == PolicyKind::EventDetection {
            active.response.body.trigger_types()
        } else {
            BTreeSet::new()
        };
        let command = PolicyCommand::Update {
            name: name.to_string(),
            body,
            detection_logged: active.detection.body.logged,
            must_log,
            deleted: site.state.is_deleted_policy(policy_id),
            now: self.now(),
        };
        self.execute::<Policy>(policy_id, command, &Self::principal_actor(by), expected)
            .await
    }

    /// `activatePolicy`. `site_id` is required for system policies (they
    /// belong to every site) and checked against the policy's otherwise.
    pub async fn activate_policy(
        &self,
        by: &Principal,
        policy_id: PolicyId,
        site_id: Option<Uuid>,
    ) -> Result<Executed, AppError> {
        let (policy, owner) = self.policy(policy_id).await?;
        let site_id = match (owner, site_id) {
            (Some(owner), Some(asked)) if owner != asked => {
                return Err(not_found("policy", policy_id))
            }
            (Some(owner), _) => owner,
            (None, Some(asked)) => asked,
            (None, None) => {
                return Err(AppError::Validation(
                    "activating a system policy needs the site it is activated on".into(),
                ))
            }
        };
        self.authorize(by, Action::ManagePolicies, Target::Site(site_id))
            .await?;
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        let (detection_logged, response_types) = match &policy.body {
            PolicyBody::EventDetection(body) => {
                (body.logged.clone(), active.response.body.trigger_types())
            }
            PolicyBody::EventResponse(body) => {
                (active.detection.body.logged.clone(), body.trigger_types())
            }
            PolicyBody::Recording(_) => (BTreeSet::new(), BTreeSet::new()),
        };
        let command = SiteCommand::ActivatePolicy {
            policy: PolicyFacts {
                policy_id,
                name: policy.name,
                kind: policy.body.kind(),
                site_id: owner,
            },
            detection_logged,
            response_types,
            now: self.now(),
        };
        self.execute::<Site>(site_id, command, &Self::principal_actor(by), None)
            .await
    }

    /// `deletePolicy`: decided on the site, which knows what is active.
    pub async fn delete_policy(
        &self,
        by: &Principal,
        policy_id: PolicyId,
    ) -> Result<Executed, AppError> {
        if is_system_policy(policy_id) {
            return Err(SiteError::SystemPolicy.into());
        }
        let (policy, owner) = self.policy(policy_id).await?;
        let site_id = owner.ok_or_else(|| not_found("policy", policy_id))?;
        self.authorize(by, Action::ManagePolicies, Target::Site(site_id))
            .await?;
        let command = SiteCommand::DeletePolicy {
            policy: PolicyFacts {
                policy_id,
                name: policy.name,
                kind: policy.body.kind(),
                site_id: owner,
            },
            now: self.now(),
        };
        self.execute::<Site>(site_id, command, &Self::principal_actor(by), None)
            .await
    }

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

    // ---- recordings: ingest (AGENT) -----------------------------------------

    /// `startRecording`: applies the site's active recording policy. A
    /// repeated start (same server and session, the part still live, or
    /// the same start time) returns the existing recording. After the
    /// previous part ended, a start is a rollover into the next part.
    pub async fn start_recording(
        &self,
        by: &Principal,
        input: StartRecordingInput,
    ) -> Result<StartedRecording, AppError> {
        let (server, site_id) = self.server_for(by, Action::Ingest, input.server_id).await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Server {
                site_id,
                server_id: input.server_id,
            },
        )
        .await?;
        if !server.state.accepts_recordings() {
            return Err(AppError::Validation(format!(
                "server {} does not accept recordings ({:?})",
                input.server_id, server.state.status
            )));
        }
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        let decision = if server.state.settings.recording_enabled {
            evaluate(&active.recording, &input.session)
        } else {
            RecordingDecision {
                policy_id: Uuid::nil(),
                policy_name: "Recording disabled in the server settings".into(),
                rule: None,
                rule_index: None,
                action: RecordingAction::DoNotRecord,
                notify: false,
                lossy: false,
                audio: false,
            }
        };

        // What `Start` would refuse is refused before a part is assigned,
        // so a malformed start leaves nothing in the session's index.
        input.session.validate().map_err(RecordingError::Invalid)?;
        if input.session_id.trim().is_empty() {
            return Err(RecordingError::Invalid("the session id must not be empty".into()).into());
        }
        let mut retries = 0;
        loop {
            let (index, parts) = self
                .session_parts(input.server_id, &input.session_id)
                .await?;
            let mut previous = None;
            for (part, &recording_id) in (1u32..).zip(&parts.ids) {
                let existing = self.load::<Recording>(recording_id).await?;
                let repeated = match existing.state.lifecycle {
                    // Assigned, never started (a crash, or a concurrent
                    // start in flight): this start makes it.
                    Lifecycle::NotStarted => {
                        return self
                            .start_part(
                                by,
                                &input,
                                site_id,
                                part,
                                recording_id,
                                previous,
                                &decision,
                                &active,
                            )
                            .await;
                    }
                    Lifecycle::Live | Lifecycle::Declined => true,
                    Lifecycle::Ended | Lifecycle::Archived | Lifecycle::Deleted => {
                        input.started_at.is_some() && existing.state.started_at == input.started_at
                    }
                };
                if repeated {
                    return Ok(StartedRecording {
                        recording_id,
                        part,
                        decision: existing.state.decision.clone(),
                        recorded: existing.state.lifecycle != Lifecycle::Declined,
                        repeated: true,
                        executed: Executed {
                            last_position: existing.last_position,
                            version: existing.version,
                            ..Executed::default()
                        },
                    });
                }
                previous = Some(recording_id);
            }
            let part = parts.ids.len() as u32 + 1;
            if part > MAX_PARTS {
                return Err(AppError::Validation(format!(
                    "session {} has more than {MAX_PARTS} recordings",
                    input.session_id
                )));
            }
            // A fresh random id; the index makes it the session's part.
            let recording_id = Uuid::now_v7();
            let mut recordings = parts.legacy.clone();
            recordings.push(recording_id);
            let first_part = part + 1 - recordings.len() as u32;
            let assigned = index.state.decide(SessionCommand::Assign {
                site_id,
                server_id: input.server_id,
                session_id: input.session_id.clone(),
                first_part,
                recordings,
                now: self.now(),
            })?;
            match self.append(&index, assigned, &by.actor()).await {
                Ok(_) => {}
                // Another start assigned the part first: use its recording.
                Err(AppError::Conflict(_)) if retries < self.config.max_retries => {
                    retries += 1;
                    continue;
                }
                Err(error) => return Err(error),
            }
            return self
                .start_part(
                    by,
                    &input,
                    site_id,
                    part,
                    recording_id,
                    previous,
                    &decision,
                    &active,
                )
                .await;
        }
    }

    /// The parts of a server's session: its index, and the recording of
    /// each part in order. A session from before the index has no index
    /// stream; its parts are found at their legacy ids (and listed in
    /// `legacy`, to be copied into the index with the next part).
    async fn session_parts(
        &self,
        server_id: Uuid,
        session_id: &str,
    ) -> Result<(Loaded<SessionParts>, SessionPartIds), AppError> {
        let index = self
            .load::<SessionParts>(session_key(server_id, session_id))
            .await?;
        if !index.state.parts.is_empty() {
            let ids = index.state.parts.clone();
            return Ok((
                index,
                SessionPartIds {
                    ids,
                    legacy: Vec::new(),
                },
            ));
        }
        let mut legacy = Vec::new();
        for part in 1..=MAX_PARTS {
            let id = legacy_recording_id(server_id, session_id, part);
            let loaded = self.load::<Recording>(id).await?;
            if loaded.state.lifecycle == Lifecycle::NotStarted {
                break;
            }
            legacy.push(id);
        }
        Ok((
            index,
            SessionPartIds {
                ids: legacy.clone(),
                legacy,
            },
        ))
    }

    /// Starts (or declines) part `part` of a session as recording
    /// `recording_id`, which the session's index has assigned to it.
    #[allow(clippy::too_many_arguments)]
    async fn start_part(
        &self,
        by: &Principal,
        input: &StartRecordingInput,
        site_id: Uuid,
        part: u32,
        recording_id: Uuid,
        previous: Option<Uuid>,
        decision: &RecordingDecision,
        active: &ActivePolicies,
    ) -> Result<StartedRecording, AppError> {
        let command = RecordingCommand::Start(Box::new(StartRecording {
            recording_id,
            site_id,
            server_id: input.server_id,
            session_id: input.session_id.clone(),
            part,
            previous_recording_id: previous,
            session: input.session.clone(),
            decision: decision.clone(),
            response_policy: Some(active.response.clone()),
            started_at: input.started_at.unwrap_or_else(|| self.now()),
        }));
        if decision.records() {
            // The key every session event of it is sealed under: created
            // before the recording exists, so sealing only ever loads it.
            self.create_key(recording_id).await?;
        }
        match self
            .execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
        {
            Ok(executed) => Ok(StartedRecording {
                recording_id,
                part,
                recorded: decision.records(),
                decision: Some(decision.clone()),
                repeated: false,
                executed,
            }),
            // A concurrent start of the same session won: it is ours too.
            Err(AppError::Recording(RecordingError::AlreadyStarted(_))) => {
                let existing = self.load::<Recording>(recording_id).await?;
                Ok(StartedRecording {
                    recording_id,
                    part,
                    decision: existing.state.decision.clone(),
                    recorded: existing.state.lifecycle != Lifecycle::Declined,
                    repeated: true,
                    executed: Executed {
                        last_position: existing.last_position,
                        version: existing.version,
                        ..Executed::default()
                    },
                })
            }
            Err(error) => Err(error),
        }
    }

    /// `recordSessionEvents`: up to [`MAX_BATCH`] events. Events of types
    /// the site's active detection policy does not log are refused (counted
    /// as `ignored`, never stored); ids the log already holds are skipped;
    /// the rest, their detections and the responses those trigger go into
    /// one append on the recording stream.
    pub async fn record_session_events(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
    ) -> Result<RecordedEvents, AppError> {
        self.record_events_filtered(by, recording_id, events, true)
            .await
    }

    /// The session events a recording's uploaded content carries (e.g. an
    /// asciicast's lines): they index the content itself, so they are
    /// stored whatever the detection policy logs (and detected as it says).
    pub async fn index_content_events(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
    ) -> Result<RecordedEvents, AppError> {
        self.record_events_filtered(by, recording_id, events, false)
            .await
    }

    async fn record_events_filtered(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
        refuse_unlogged: bool,
    ) -> Result<RecordedEvents, AppError> {
        if events.len() > MAX_BATCH {
            return Err(RecordingError::TooManyEvents(events.len()).into());
        }
        let (recording, facts, _) = self
            .recording_for(by, Action::Ingest, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        let site = self.site(facts.site_id).await?;
        let active = self.active_policies(&site.state).await?;
        // Each event is checked before any is judged against the log, so a
        // batch mixing logged and unlogged types stores exactly the logged.
        for event in &events {
            event.validate().map_err(RecordingError::InvalidEvent)?;
        }
        let (events, unlogged): (Vec<SessionEvent>, Vec<SessionEvent>) = events
            .into_iter()
            .partition(|e| !refuse_unlogged || active.detection.body.logs(e.event_type));
        let ignored = unlogged.len();
        let total = events.len();
        let actor = by.actor();
        let mut retries = 0;
        let mut loaded = recording;
        loop {
            let mut seen = BTreeSet::new();
            let mut fresh = Vec::with_capacity(events.len());
            for event in &events {
                if seen.insert(event.event_id)
                    && self.store.read_event(event.event_id).await?.is_none()
                {
                    fresh.push(event.clone());
                }
            }
            if fresh.is_empty() {
                return Ok(RecordedEvents {
                    duplicates: total,
                    ignored,
                    executed: Executed {
                        last_position: loaded.last_position,
                        version: loaded.version,
                        ..Executed::default()
                    },
                    ..RecordedEvents::default()
                });
            }
            let accepted = fresh.len();
            let decided = loaded.state.decide(RecordingCommand::RecordEvents {
                events: fresh,
                detection_policy: Some(active.detection.clone()),
                response_policy: Some(active.response.clone()),
                now: self.now(),
            })?;
            match self.append(&loaded, decided, &actor).await {
                Ok(executed) => {
                    let count = |name| executed.events.iter().filter(|e| e.name() == name).count();
                    return Ok(RecordedEvents {
                        accepted,
                        duplicates: total - accepted,
                        ignored,
                        detections: count("EventDetected"),
                        responses: count("ResponseTriggered"),
                        executed,
                    });
                }
                // Another request appended meanwhile (maybe some of these very
                // events): filter again against the log and decide afresh.
                Err(AppError::Conflict(_) | AppError::Internal(_))
                    if retries < self.config.max_retries =>
                {
                    retries += 1;
                    loaded = self.load::<Recording>(recording_id).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `endRecording` (AGENT). `ended_at` defaults to now.
    ///
    /// Idempotent: a recording ends once, and a retried end (the agent
    /// lost the answer) writes nothing and answers the first end, its
    /// position and stream version, with `deduplicated` set.
    pub async fn end_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
        ended_at: Option<Timestamp>,
    ) -> Result<Executed, AppError> {
        let executed = self.end_once(by, recording_id, ended_at).await?;
        if !executed.positions.is_empty() {
            return Ok(executed);
        }
        // Nothing appended: the recording had ended before. Its end is
        // stored under a derived id; an end written before that id was
        // derived is found on the stream.
        let first = match self
            .store
            .read_event(crate::model::recording_ended_event_id(recording_id))
            .await?
        {
            Some(envelope) => Some((envelope.position, envelope.version)),
            None => self.find_first_end(recording_id).await?,
        };
        let (last_position, version) = first.unwrap_or((executed.last_position, executed.version));
        Ok(Executed {
            last_position,
            version,
            deduplicated: true,
            ..Executed::default()
        })
    }

    /// The position and stream version of the recording's first
    /// `RecordingEnded`, read from its stream.
    async fn find_first_end(&self, recording_id: Uuid) -> Result<Option<(u64, u64)>, AppError> {
        let stream = crate::model::stream_name("recording", recording_id);
        let mut version = 1;
        loop {
            let batch = self.store.read_stream(&stream, version, 1_024).await?;
            let read = batch.len();
            for envelope in &batch {
                version = envelope.version + 1;
                if matches!(envelope.payload, DomainEvent::RecordingEnded { .. }) {
                    return Ok(Some((envelope.position, envelope.version)));
                }
            }
            if read < 1_024 {
                return Ok(None);
            }
        }
    }

    async fn end_once(
        &self,
        by: &Principal,
        recording_id: Uuid,
        ended_at: Option<Timestamp>,
    ) -> Result<Executed, AppError> {
        let (_, facts, _) = self
            .recording_for(by, Action::Ingest, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        let command = RecordingCommand::End {
            ended_at: ended_at.unwrap_or_else(|| self.now()),
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }

    /// The recording whose stored chunks `by` asks to list
    /// (`recordingChunks`): its server's AGENT (to resume an upload), or
    /// who may see the recording. Listing is not a playback: nothing is
    /// written (but a refusal).
    pub async fn recording_content(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Loaded<Recording>, AppError> {
        let action = if by.role == Role::Agent {
            Action::Ingest
        } else {
            Action::ViewRecording
        };
        let (recording, facts, grants) =
            self.recording_for(by, action, recording_id, false).await?;
        self.authorize(
            by,
            action,
            Target::Recording {
                recording: &facts,
                grants: &grants,
            },
        )
        .await?;
        Ok(recording)
    }

    /// `acknowledgeResponse` (AGENT of the recording's server, or ADMIN).
    pub async fn acknowledge_response(
        &self,
        by: &Principal,
        response_id: Uuid,
        outcome: &str,
    ) -> Result<Executed, AppError> {
        let envelope = self.store.read_event(response_id).await?;
        let label = format!("response:{response_id}");
        let Some(DomainEvent::ResponseTriggered {
            recording_id,
            site_id,
            server_id,
            ..
        }) = envelope.map(|e| e.payload)
        else {
            if !sees_all_servers(by) {
                let _ = self.deny(by, Action::HandleResponses, &label, None).await;
            }
            return Err(not_found("response", response_id));
        };
        if !sees_server(by, site_id, server_id) {
            // Another server's response is as unknown as an absent one.
            let _ = self
                .deny(by, Action::HandleResponses, &label, Some(site_id))
                .await;
            return Err(not_found("response", response_id));
        }
        self.authorize(
            by,
            Action::HandleResponses,
            Target::Server { site_id, server_id },
        )
        .await?;
        let command = RecordingCommand::AcknowledgeResponse {
            response_id,
            outcome: outcome.to_string(),
            now: self.now(),
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }

    // ---- recordings: people -------------------------------------------------

    /// Runs a recording command that judges `by` inside the aggregate,
    /// recording a refusal as `AccessDenied`.
    async fn judged(
        &self,
        by: &Principal,
        action: Action,
        recording_id: Uuid,
        command: impl FnOnce(Vec<PlaybackScope>) -> RecordingCommand,
    ) -> Result<Executed, AppError> {
        let (_, facts, grants) = self.recording_for(by, action, recording_id, false).await?;
        let outcome = self
            .execute::<Recording>(recording_id, command(grants), &by.actor(), None)
            .await;
        self.recording_denials(
            by,
            action,
            &format!("recording:{recording_id}"),
            Some(facts.site_id),
            outcome,
        )
        .await
    }

    /// `restrictRecording`.
    pub async fn restrict_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
        reason: &str,
    ) -> Result<Executed, AppError> {
        let now = self.now();
        self.judged(by, Action::RestrictRecording, recording_id, |grants| {
            RecordingCommand::Restrict {
                reason: reason.to_string(),
                by: by.clone(),
                grants,
                now,
            }
        })
        .await
    }

    /// `removeRecordingRestriction`: only who may play the recording with
    /// the restriction as the only obstacle (`can_unrestrict_recording`).
    /// Who may not even see the recording as it is (an AUDITOR and a
    /// restricted recording) gets the answer an absent one gets, whether
    /// its permissions miss the recording or something else keeps it from
    /// playing it (archived): a refusal tells it nothing of the recording.
    pub async fn remove_recording_restriction(
        &self,
        by: &Principal,
        recording_id: Uuid,
        reason: &str,
    ) -> Result<Executed, AppError> {
        let action = Action::RestrictRecording;
        let label = format!("recording:{recording_id}");
        let (_, facts, grants) = self.recording_for(by, action, recording_id, true).await?;
        if !can_view_recording(by, &facts, &grants)
            && !can_unrestrict_recording(by, &facts, &grants)
            && !may(
                by,
                Action::Ingest,
                Target::Recording {
                    recording: &facts,
                    grants: &grants,
                },
            )
        {
            let _ = self.deny(by, action, &label, Some(facts.site_id)).await;
            return Err(not_found("recording", recording_id));
        }
        let command = RecordingCommand::RemoveRestriction {
            reason: reason.to_string(),
            by: by.clone(),
            grants,
            now: self.now(),
        };
        let outcome = self
            .execute::<Recording>(recording_id, command, &by.actor(), None)
            .await;
        self.recording_denials(by, action, &label, Some(facts.site_id), outcome)
            .await
    }

    /// `addComment`.
    pub async fn add_comment(
        &self,
        by: &Principal,
        recording_id: Uuid,
        text: &str,
        severity: CommentSeverity,
        offset_ms: Option<u64>,
    ) -> Result<Created, AppError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let executed = self
            .judged(by, Action::Comment, recording_id, |grants| {
                RecordingCommand::AddComment {
                    comment_id: id,
                    text: text.to_string(),
                    severity,
                    offset_ms,
                    by: by.clone(),
                    grants,
                    now,
                }
            })
            .await?;
        Ok(Created { id, executed })
    }

    /// `deleteComment`: by its author or an admin.
    pub async fn delete_comment(
        &self,
        by: &Principal,
        comment_id: Uuid,
    ) -> Result<Executed, AppError> {
        let envelope = self
            .store
            .read_event(comment_id)
            .await?
            .ok_or_else(|| not_found("comment", comment_id))?;
        let DomainEvent::CommentAdded { recording_id, .. } = envelope.payload else {
            return Err(not_found("comment", comment_id));
        };
        let now = self.now();
        let outcome = self
            .judged(by, Action::Comment, recording_id, |_| {
                RecordingCommand::DeleteComment {
                    comment_id,
                    by: by.clone(),
                    now,
                }
            })
            .await;
        match outcome {
            // A comment on a recording the caller may not see is unknown
            // to it: the answer names the comment, not its recording.
            Err(AppError::NotFound(_)) => Err(not_found("comment", comment_id)),
            other => other,
        }
    }

    /// Checks that `by` may play (or download) the recording, and records
    /// the playback. Call before serving content.
    ///
    /// One fact per principal, recording, kind and [`PLAYBACK_WINDOW_SECS`]:
    /// the event's log id is derived from them and it is appended without
    /// an expected version, so concurrent requests of one player (a video
    /// player's parallel `Range` requests) neither conflict nor multiply
    /// the fact; the answer is the fact's position either way.
    pub async fn record_played(
        &self,
        by: &Principal,
        recording_id: Uuid,
        kind: PlaybackKind,
    ) -> Result<Executed, AppError> {
        let loaded = self.playable(by, recording_id, kind).await?;
        if kind == PlaybackKind::Live {
            self.check_live_playback(by, &loaded.state).await?;
        }
        let now = self.now();
        let grants = match loaded.state.facts() {
            Some(facts) => self.permissions.grants(by, facts.site_id).await?,
            None => Vec::new(),
        };
        let events = loaded.state.decide(RecordingCommand::Play {
            kind,
            by: by.clone(),
            grants,
            now,
        })?;
        let window = now.as_micros().div_euclid(PLAYBACK_WINDOW_SECS * 1_000_000);
        let kind_tag: &[u8] = match kind {
            PlaybackKind::Play => b"play",
            PlaybackKind::Download => b"download",
            PlaybackKind::Live => b"live",
        };
        let event_id = derived_id(
            "srs:played",
            &[
                by.token_id.as_bytes(),
                by.name.as_bytes(),
                recording_id.as_bytes(),
                kind_tag,
                &window.to_be_bytes(),
            ],
        );
        let new_events = events
            .iter()
            .cloned()
            .map(|event| NewEvent::new(by.actor(), event).with_id(event_id))
            .collect();
        let appended = self
            .store
            .append(&loaded.stream, ExpectedVersion::Any, new_events)
            .await?;
        Ok(Executed {
            last_position: appended.last_position(),
            positions: appended.positions,
            version: appended.stream_version,
            events: if appended.deduplicated {
                Vec::new()
            } else {
                events
            },
            deduplicated: appended.deduplicated,
        })
    }

    /// Watching live obeys the recording's server: with
    /// `livePlaybackEnabled: false` it is refused (`FORBIDDEN`), and the
    /// refusal is recorded like every other.
    async fn check_live_playback(
        &self,
        by: &Principal,
        recording: &Recording,
    ) -> Result<(), AppError> {
        let server_id = recording.server_id;
        let (server, _) = self.server(server_id).await?;
        if server.state.settings.live_playback_enabled {
            return Ok(());
        }
        let recording_id = recording.id.unwrap_or_default();
        let _ = self
            .deny(
                by,
                Action::PlayRecording,
                &format!("recording:{recording_id}"),
                Some(recording.site_id),
            )
            .await;
        Err(AppError::Forbidden(format!(
            "live playback is disabled on server {server_id} (livePlaybackEnabled is false): \
             recording {recording_id} cannot be watched live"
        )))
    }

    /// The recording, once `by` may play it: `NOT_FOUND` when `by` may not
    /// see it (absent and deleted alike), `NOT_FOUND` "was deleted" when it
    /// may, `FORBIDDEN` when it sees it but may not play it (an archived
    /// one for an AUDITOR). Records nothing when allowed: a request that
    /// serves nothing (a range outside the content) checks this first and
    /// records the playback only once it will answer with content.
    pub async fn playable(
        &self,
        by: &Principal,
        recording_id: Uuid,
        kind: PlaybackKind,
    ) -> Result<Loaded<Recording>, AppError> {
        let (loaded, facts, grants) = self
            .recording_for(by, Action::PlayRecording, recording_id, false)
            .await?;
        if loaded.state.lifecycle == Lifecycle::Deleted {
            return Err(AppError::NotFound(format!(
                "recording {recording_id} was deleted; its content is destroyed"
            )));
        }
        // The rules of `Play` (restrictions, grants, archive), without
        // writing: a refusal is recorded as `AccessDenied`.
        let probe = loaded.state.decide(RecordingCommand::Play {
            kind,
            by: by.clone(),
            grants,
            now: self.now(),
        });
        self.recording_denials(
            by,
            Action::PlayRecording,
            &format!("recording:{recording_id}"),
            Some(facts.site_id),
            probe.map_err(AppError::from),
        )
        .await?;
        Ok(loaded)
    }

    /// Archives a recording and every other recording of its session.
    pub async fn archive_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Archive)
            .await
    }

    /// Restores an archived recording and the rest of its session.
    pub async fn restore_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Restore)
            .await
    }

    /// Deletes a recording and every other recording of its session.
    pub async fn delete_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Delete)
            .await
    }

    async fn manage_session(
        &self,
        by: &Principal,
        recording_id: Uuid,
        via: Transition,
    ) -> Result<Executed, AppError> {
        let (_, facts, _) = self
            .recording_for(by, Action::ManageRecordings, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::ManageRecordings,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        self.apply_to_session(recording_id, via, &by.actor()).await
    }

    /// Applies a lifecycle move to every recording of `recording_id`'s
    /// session (the retention scheduler calls this with a system actor).
    /// All parts are checked first, so a session with a live part is left
    /// untouched; parts already where the move leads are skipped. Parts
    /// are separate streams: a failure midway leaves a prefix done, and
    /// repeating the call completes it.
    ///
    /// A deletion is refused (`CONFLICT`, naming the hold) when a legal
    /// hold covers any part, and each part's deletion is appended guarded
    /// by the legal holds' stream version; a hold placed or released
    /// meanwhile makes it decide again on the holds as they now are.
    pub async fn apply_to_session(
        &self,
        recording_id: Uuid,
        via: Transition,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        let mut retries = 0;
        loop {
            match self.apply_to_session_once(recording_id, via, actor).await {
                Err(AppError::Conflict(conflict))
                    if conflict.stream == LEGAL_HOLDS_STREAM
                        && retries < self.config.max_retries =>
                {
                    tracing::debug!(%conflict, retries, "the legal holds moved during a deletion; deciding again");
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn apply_to_session_once(
        &self,
        recording_id: Uuid,
        via: Transition,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        // Loaded first: the version every deletion below is guarded by.
        let holds = match via {
            Transition::Delete => Some(self.load::<LegalHolds>(Uuid::nil()).await?),
            _ => None,
        };
        let (recording, _) = self.recording(recording_id).await?;
        let (server_id, session_id) = (
            recording.state.server_id,
            recording.state.session_id.clone(),
        );
        let (_, ids) = self.session_parts(server_id, &session_id).await?;
        let mut parts = Vec::new();
        for id in ids.ids {
            let loaded = if id == recording_id {
                recording.clone()
            } else {
                self.load::<Recording>(id).await?
            };
            if loaded.state.lifecycle == Lifecycle::NotStarted {
                // Assigned but never started: nothing to move.
                continue;
            }
            parts.push((id, loaded.state.lifecycle, loaded.state.facts()));
        }
        if !parts.iter().any(|(id, _, _)| *id == recording_id) {
            // A recording the session's index does not list.
            parts.push((
                recording_id,
                recording.state.lifecycle,
                recording.state.facts(),
            ));
        }
        let target = match via {
            Transition::Archive => Lifecycle::Archived,
            Transition::Restore => Lifecycle::Ended,
            Transition::Delete => Lifecycle::Deleted,
            Transition::Start | Transition::Decline | Transition::End => {
                return Err(AppError::Validation(format!(
                    "{via:?} is not applied to whole sessions"
                )))
            }
        };
        let mut todo = Vec::new();
        let mut todo_facts = Vec::new();
        for (id, lifecycle, facts) in parts {
            let legal = crate::model::transition(lifecycle, via).is_some();
            // The other parts follow the one asked for: those already past
            // the move (or never recorded) are skipped, a live one stops it.
            let skip = lifecycle == target
                || lifecycle == Lifecycle::Declined
                || (id != recording_id && !legal && lifecycle != Lifecycle::Live);
            if skip {
                continue;
            }
            if !legal {
                return Err(if lifecycle == Lifecycle::Deleted {
                    RecordingError::Deleted
                } else {
                    RecordingError::IllegalTransition {
                        from: lifecycle,
                        via,
                    }
                }
                .into());
            }
            todo.push(id);
            todo_facts.extend(facts);
        }
        if let Some(holds) = &holds {
            holds.state.check_deletable(&todo_facts)?;
        }
        let now = self.now();
        let mut outcomes = Vec::new();
        for id in todo {
            let command = match via {
                Transition::Archive => RecordingCommand::Archive { now },
                Transition::Restore => RecordingCommand::Restore { now },
                _ => RecordingCommand::Delete { now },
            };
            let outcome = match &holds {
                Some(holds) => {
                    let guard = (holds.stream.clone(), holds.version);
                    self.execute_guarded::<Recording>(id, command, actor, guard)
                        .await?
                }
                None => self.execute::<Recording>(id, command, actor, None).await?,
            };
            outcomes.push(outcome);
        }
        if outcomes.is_empty() {
            return Ok(Executed {
                last_position: recording.last_position,
                version: recording.version,
                ..Executed::default()
            });
        }
        Ok(Executed::merge(outcomes))
    }

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
    async fn hold_recordings_site(
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

    // ---- content ------------------------------------------------------------

    /// The recording an upload of content is for, once `by` may ingest for
    /// its server (its AGENT), with the server's content limit. An id `by`
    /// may not see is `NOT_FOUND` (absent and deleted alike); a deleted
    /// recording is `NOT_FOUND` for its agent too: its content is gone for
    /// good.
    pub async fn content_target(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<ContentTarget, AppError> {
        let (recording, facts, _) = self
            .recording_for(by, Action::Ingest, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        if recording.state.lifecycle == Lifecycle::Deleted {
            return Err(AppError::NotFound(format!(
                "recording {recording_id} was deleted; its content is destroyed"
            )));
        }
        let (server, _) = self.server(facts.server_id).await?;
        Ok(ContentTarget {
            recording,
            max_file_size_mb: server.state.settings.max_file_size_mb,
        })
    }

    /// Records that chunk `seq` (encrypted, hashing to `sha256`) is in the
    /// content store. Call only once the chunk is durably written there,
    /// after [`Service::content_target`]. The content rules
    /// ([`Recording::check_new_chunk`]) are checked again here, on the
    /// recording as the append finds it.
    pub async fn store_content_chunk(
        &self,
        by: &Principal,
        recording_id: Uuid,
        seq: u64,
        size: u64,
        sha256: String,
        content_type: Option<String>,
    ) -> Result<Executed, AppError> {
        let target = self.content_target(by, recording_id).await?;
        let command = RecordingCommand::StoreChunk {
            seq,
            size,
            sha256,
            content_type,
            max_file_size_mb: target.max_file_size_mb,
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }

    // ---- tokens -------------------------------------------------------------

    /// `issueToken`: the secret is returned once; only its hash is stored.
    /// `expires_at`: when it stops authenticating (in the future, at most
    /// ten years ahead; `None`: never).
    pub async fn issue_token(
        &self,
        by: &Principal,
        name: &str,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedToken, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        self.issue(&by.actor(), name, role, site_ids, groups, expires_at)
            .await
    }

    /// The first admin token, issued by srs itself on first start.
    pub async fn issue_bootstrap_token(&self, name: &str) -> Result<IssuedToken, AppError> {
        self.issue(
            &Actor::system("bootstrap"),
            name,
            Role::Admin,
            BTreeSet::new(),
            Vec::new(),
            None,
        )
        .await
    }

    async fn issue(
        &self,
        actor: &Actor,
        name: &str,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        expires_at: Option<Timestamp>,
    ) -> Result<IssuedToken, AppError> {
        for &site_id in &site_ids {
            self.site(site_id).await?;
        }
        let token_id = Uuid::now_v7();
        let secret = new_secret();
        let command = TokenCommand::Issue {
            token_id,
            name: name.to_string(),
            role,
            site_ids,
            groups,
            secret_sha256: hash_secret(&secret),
            expires_at,
            now: self.now(),
        };
        let executed = self
            .execute::<Token>(token_id, command, actor, Some(0))
            .await?;
        Ok(IssuedToken {
            token_id,
            secret,
            executed,
        })
    }

    /// Where the events of token `token_id` are: an issued token's lineage
    /// stream (its own, or the first token's for a rotation's successor,
    /// found by the `TokenRotated` event stored under the successor's id),
    /// or the server stream of an AGENT credential (a server's first
    /// credential has the server's id; a rotated one is found by its
    /// `AgentTokenRotated` event).
    async fn token_home(&self, token_id: Uuid) -> Result<TokenHome, AppError> {
        if self
            .store
            .stream_version(&Token::stream(token_id))
            .await?
            .is_some()
        {
            return Ok(TokenHome::Lineage(token_id));
        }
        if let Some(envelope) = self.store.read_event(token_id).await? {
            match envelope.payload {
                DomainEvent::TokenRotated { new_token_id, .. } if new_token_id == token_id => {
                    let lineage = envelope
                        .stream
                        .strip_prefix("token-")
                        .and_then(|id| Uuid::parse_str(id).ok())
                        .ok_or_else(|| {
                            AppError::Internal(format!(
                                "a token rotation on stream {}",
                                envelope.stream
                            ))
                        })?;
                    return Ok(TokenHome::Lineage(lineage));
                }
                DomainEvent::AgentTokenRotated {
                    server_id,
                    token_id: rotated,
                    ..
                } if rotated == token_id => return Ok(TokenHome::Agent { server_id }),
                _ => {}
            }
        }
        if self
            .store
            .stream_version(&Server::stream(token_id))
            .await?
            .is_some()
        {
            return Ok(TokenHome::Agent {
                server_id: token_id,
            });
        }
        Err(TokenError::NotFound.into())
    }

    /// `revokeToken`. An AGENT credential is not revoked here: its server
    /// is disconnected (`disconnectServer`) or its credential rotated.
    pub async fn revoke_token(&self, by: &Principal, token_id: Uuid) -> Result<Executed, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        let lineage = match self.token_home(token_id).await? {
            TokenHome::Lineage(lineage) => lineage,
            TokenHome::Agent { server_id } => {
                return Err(AppError::Validation(format!(
                    "token {token_id} is the AGENT credential of server {server_id}: \
                     disconnect the server (disconnectServer) or replace the credential \
                     (rotateAgentToken)"
                )))
            }
        };
        let command = TokenCommand::Revoke {
            token_id,
            now: self.now(),
        };
        self.execute::<Token>(lineage, command, &by.actor(), None)
            .await
    }

    /// `rotateToken` (ADMIN, not scoped to sites): revokes token
    /// `token_id` and issues its successor with a new secret, returned
    /// once, in one event. An AGENT credential is rotated like
    /// [`Service::rotate_agent_token`] does (it takes no expiry).
    pub async fn rotate_token(
        &self,
        by: &Principal,
        token_id: Uuid,
        expires_at: Option<Timestamp>,
    ) -> Result<RotatedToken, AppError> {
        self.authorize(by, Action::ManageTokens, Target::Global)
            .await?;
        let lineage = match self.token_home(token_id).await? {
            TokenHome::Lineage(lineage) => lineage,
            TokenHome::Agent { server_id } => {
                if expires_at.is_some() {
                    return Err(AppError::Validation(
                        "AGENT tokens do not expire: rotate them without expiresAt".into(),
                    ));
                }
                return self.rotate_agent(by, server_id, Some(token_id)).await;
            }
        };
        let new_token_id = Uuid::now_v7();
        let secret = new_secret();
        let secret_sha256 = hash_secret(&secret);
        let now = self.now();
        let mut previous_secret_sha256 = String::new();
        let executed = self
            .execute_with::<Token, _>(lineage, &by.actor(), None, |state| {
                previous_secret_sha256 = state.secret_sha256.clone();
                state
                    .decide(TokenCommand::Rotate {
                        token_id,
                        new_token_id,
                        secret_sha256: secret_sha256.clone(),
                        expires_at,
                        now,
                    })
                    .map_err(AppError::from)
            })
            .await?;
        Ok(RotatedToken {
            token_id: new_token_id,
            previous_token_id: token_id,
            secret,
            previous_secret_sha256,
            server_id: None,
            executed,
        })
    }

    /// `rotateAgentToken` (ADMIN of the server's site): a new AGENT secret
    /// for the server, returned once; the old credential is revoked by the
    /// same event. A server the caller may not see is `NOT_FOUND`.
    pub async fn rotate_agent_token(
        &self,
        by: &Principal,
        server_id: Uuid,
    ) -> Result<RotatedToken, AppError> {
        self.rotate_agent(by, server_id, None).await
    }

    /// Rotates the server's agent credential; with `expected`, only if
    /// that is the current credential (`rotateToken` of a rotated one is
    /// refused like a rotated issued token).
    async fn rotate_agent(
        &self,
        by: &Principal,
        server_id: Uuid,
        expected: Option<Uuid>,
    ) -> Result<RotatedToken, AppError> {
        let (_, site_id) = self
            .server_for(by, Action::ManageServers, server_id)
            .await?;
        self.authorize(by, Action::ManageServers, Target::Site(site_id))
            .await?;
        let token_id = Uuid::now_v7();
        let secret = new_secret();
        let credential_sha256 = hash_secret(&secret);
        let now = self.now();
        let mut previous = (server_id, String::new());
        let executed = self
            .execute_with::<Server, _>(server_id, &Self::principal_actor(by), None, |state| {
                let current = state.agent_token_id.unwrap_or(server_id);
                if let Some(expected) = expected {
                    if expected != current {
                        return Err(TokenError::Rotated(current).into());
                    }
                }
                previous = (current, state.credential_sha256.clone());
                state
                    .decide(ServerCommand::RotateAgentToken {
                        token_id,
                        credential_sha256: credential_sha256.clone(),
                        now,
                    })
                    .map_err(AppError::from)
            })
            .await?;
        Ok(RotatedToken {
            token_id,
            previous_token_id: previous.0,
            secret,
            previous_secret_sha256: previous.1,
            server_id: Some(server_id),
            executed,
        })
    }

    /// The session event types the site's active detection policy logs.
    pub async fn logged_types(
        &self,
        site_id: Uuid,
    ) -> Result<BTreeSet<SessionEventType>, AppError> {
        let site = self.site(site_id).await?;
        Ok(self
            .active_policies(&site.state)
            .await?
            .detection
            .body
            .logged)
    }
}
