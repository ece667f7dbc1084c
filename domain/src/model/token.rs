//! Principals, their tokens (stream `token-<uuid>`) and what roles may do.
//!
//! A token is issued to a principal (its `name`) with one [`Role`], an
//! optional site scope (empty: all sites) and groups. Only the SHA-256 of
//! its secret is ever stored. Server agents do not hold issued tokens: a
//! server's credential is kept (hashed) on the server aggregate (its first
//! one under the server's id, a rotated one under a token id of its own,
//! see `AgentTokenRotated`), and the API builds a [`Principal::agent_token`]
//! for it.
//!
//! [`may`] is the one place that says what a principal may do; it is pure
//! and deny-by-default (the match has no catch-all arm that allows).
//!
//! # Expiry
//!
//! A token may be issued with an expiry (`TokenExpirySet`, in the same
//! append as its `TokenIssued`): it must lie in the future and at most
//! [`MAX_TOKEN_LIFETIME_DAYS`] ahead (a typo such as year 20260 is
//! refused rather than stored). From that instant on the token
//! authenticates nobody; the API says it expired, and when. Expiry is not
//! an event (nothing happens at that instant): it is a fact of the token,
//! checked against the clock at every authentication. AGENT credentials do
//! not expire: they are replaced by rotation.
//!
//! # Rotation
//!
//! Rotating a token revokes it and issues its successor (same principal,
//! role, sites, groups; a new secret) in one event, `TokenRotated`, so
//! the old secret stops and the new one starts at the same log position.
//! The successor has an id of its own (what it does is told apart from
//! what the old secret did, in the log and in the admin trail); its events
//! go on the stream of the first token of the lineage, so every rule of a
//! lineage is checked against one stream's version (two concurrent
//! rotations of one token cannot both succeed). The successor keeps the
//! expiry unless the rotation gives a new one; rotating an expired token
//! needs a new one. Rotating or revoking one's own token is allowed: the
//! caller's request finishes, its next one needs the new secret.
//!
//! | role | may |
//! |---|---|
//! | ADMIN | everything but ingesting for a server; global actions (tokens, sites, admin log, history) only when not scoped to sites; places and releases legal holds (of its sites) |
//! | PRIVILEGED_PLAYER | sees and plays every recording of its sites, restricted and archived included; comments, restricts; dashboards, detections, server status |
//! | AUDITOR | reads configuration, dashboards, detections, the history and the legal holds of its sites; sees only the unrestricted recordings of its sites that one of its playback permissions grants (no permission: none); plays those not archived; comments, restricts; lifts a restriction only where a permission of its own covers the recording |
//! | VIEWER | dashboards and server status |
//! | AGENT | ingest, heartbeat, install progress, pending responses, its own configuration (settings and the site's active policies), for its own server only |

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::permission::{
    is_reserved_principal_name, PlaybackScope, RecordingFacts, TOKEN_PRINCIPAL_PREFIX,
};
use crate::actor::Actor;
use crate::time::Timestamp;

/// Token id.
pub type TokenId = Uuid;

/// What a principal is allowed to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    PrivilegedPlayer,
    Auditor,
    Viewer,
    Agent,
}

impl Role {
    /// The API name, e.g. `PRIVILEGED_PLAYER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "ADMIN",
            Role::PrivilegedPlayer => "PRIVILEGED_PLAYER",
            Role::Auditor => "AUDITOR",
            Role::Viewer => "VIEWER",
            Role::Agent => "AGENT",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is asking: an authenticated token holder or a server agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    pub token_id: TokenId,
    pub name: String,
    pub role: Role,
    /// The sites the principal acts on; empty: all sites.
    pub site_ids: BTreeSet<Uuid>,
    pub groups: Vec<String>,
    /// For [`Role::Agent`]: the server whose credential this is.
    pub server_id: Option<Uuid>,
}

impl Principal {
    /// The principal of a server's first agent credential (whose token
    /// id is the server's id).
    pub fn agent(server_id: Uuid, site_id: Uuid) -> Self {
        Self::agent_token(server_id, server_id, site_id)
    }

    /// The principal of the server's agent credential `token_id` (after a
    /// rotation it is not the server's id).
    pub fn agent_token(token_id: Uuid, server_id: Uuid, site_id: Uuid) -> Self {
        Principal {
            token_id,
            name: format!("agent:{server_id}"),
            role: Role::Agent,
            site_ids: BTreeSet::from([site_id]),
            groups: Vec::new(),
            server_id: Some(server_id),
        }
    }

    /// The actor recorded on the events this principal causes.
    pub fn actor(&self) -> Actor {
        match (self.role, self.server_id) {
            (Role::Agent, Some(server_id)) => Actor::Agent { server_id },
            _ => Actor::Principal {
                token_id: self.token_id,
                name: self.name.clone(),
            },
        }
    }

    /// Whether `site_id` is within the principal's scope.
    pub fn covers_site(&self, site_id: Uuid) -> bool {
        self.site_ids.is_empty() || self.site_ids.contains(&site_id)
    }

    /// Whether the principal is scoped to all sites.
    pub fn unscoped(&self) -> bool {
        self.site_ids.is_empty()
    }
}

/// Something a principal may try to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Action {
    /// Create sites (global) or rename one (site).
    ManageSites,
    /// Connect, install, configure, disconnect servers.
    ManageServers,
    ManagePolicies,
    ManagePermissions,
    ManageRetention,
    /// Issue and revoke tokens.
    ManageTokens,
    /// Archive, restore and delete recordings.
    ManageRecordings,
    /// Read servers' settings, policies, permissions, retention.
    ReadConfiguration,
    ReadDashboard,
    ReadServerStatus,
    ReadDetections,
    /// The admin audit trail.
    ReadAdminLog,
    /// The raw event history (`history`, `srs replay`).
    ReadHistory,
    /// See that a recording exists and read its metadata and events.
    ViewRecording,
    /// Play or download a recording.
    PlayRecording,
    /// Restrict or unrestrict a recording.
    RestrictRecording,
    Comment,
    /// Start recordings, send their session events, end them.
    Ingest,
    Heartbeat,
    ReportInstallProgress,
    /// Read and acknowledge pending response actions.
    HandleResponses,
    /// Place and release legal holds.
    ManageLegalHolds,
    /// List legal holds.
    ReadLegalHolds,
    /// Read what a server's agent needs to work: its settings and the
    /// site's active policies (`agentConfig`).
    ReadAgentConfig,
}

impl Action {
    /// The action's API-style name, used in `AccessDenied`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::ManageSites => "MANAGE_SITES",
            Action::ManageServers => "MANAGE_SERVERS",
            Action::ManagePolicies => "MANAGE_POLICIES",
            Action::ManagePermissions => "MANAGE_PERMISSIONS",
            Action::ManageRetention => "MANAGE_RETENTION",
            Action::ManageTokens => "MANAGE_TOKENS",
            Action::ManageRecordings => "MANAGE_RECORDINGS",
            Action::ReadConfiguration => "READ_CONFIGURATION",
            Action::ReadDashboard => "READ_DASHBOARD",
            Action::ReadServerStatus => "READ_SERVER_STATUS",
            Action::ReadDetections => "READ_DETECTIONS",
            Action::ReadAdminLog => "READ_ADMIN_LOG",
            Action::ReadHistory => "READ_HISTORY",
            Action::ViewRecording => "VIEW_RECORDING",
            Action::PlayRecording => "PLAY_RECORDING",
            Action::RestrictRecording => "RESTRICT_RECORDING",
            Action::Comment => "COMMENT",
            Action::Ingest => "INGEST",
            Action::Heartbeat => "HEARTBEAT",
            Action::ReportInstallProgress => "REPORT_INSTALL_PROGRESS",
            Action::HandleResponses => "HANDLE_RESPONSES",
            Action::ManageLegalHolds => "MANAGE_LEGAL_HOLDS",
            Action::ReadLegalHolds => "READ_LEGAL_HOLDS",
            Action::ReadAgentConfig => "READ_AGENT_CONFIG",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action is aimed at.
#[derive(Clone, Copy, Debug)]
pub enum Target<'a> {
    /// Not about one site: tokens, creating sites, the whole log.
    Global,
    Site(Uuid),
    Server {
        site_id: Uuid,
        server_id: Uuid,
    },
    /// A recording, with the scopes of the playback permissions the
    /// principal holds on its site (see `permission::grants_for`).
    Recording {
        recording: &'a RecordingFacts,
        grants: &'a [PlaybackScope],
    },
}

impl Target<'_> {
    /// The site aimed at, if any.
    pub fn site_id(&self) -> Option<Uuid> {
        match self {
            Target::Global => None,
            Target::Site(site_id) | Target::Server { site_id, .. } => Some(*site_id),
            Target::Recording { recording, .. } => Some(recording.site_id),
        }
    }

    /// A short label for the admin log: `site:<id>`, `recording:<id>`, ...
    pub fn label(&self) -> String {
        match self {
            Target::Global => "global".into(),
            Target::Site(id) => format!("site:{id}"),
            Target::Server { server_id, .. } => format!("server:{server_id}"),
            Target::Recording { recording, .. } => format!("recording:{}", recording.recording_id),
        }
    }
}

/// Whether `principal` may do `action` on `target`. Pure; deny by default.
pub fn may(principal: &Principal, action: Action, target: Target<'_>) -> bool {
    use Action::*;
    // Site scope first: nothing outside it, and global actions only for
    // principals scoped to all sites (a scoped admin must not mint tokens
    // for other sites).
    let in_scope = match target.site_id() {
        Some(site_id) => principal.covers_site(site_id),
        None => principal.unscoped(),
    };
    if !in_scope {
        return false;
    }
    match principal.role {
        Role::Admin => !matches!(action, Ingest | Heartbeat | ReportInstallProgress),
        Role::PrivilegedPlayer => match action {
            ViewRecording | RestrictRecording | Comment => true,
            PlayRecording => {
                matches!(target, Target::Recording { recording, .. } if !recording.deleted)
            }
            ReadDashboard | ReadServerStatus | ReadDetections => true,
            ManageSites
            | ManageServers
            | ManagePolicies
            | ManagePermissions
            | ManageRetention
            | ManageTokens
            | ManageRecordings
            | ReadConfiguration
            | ReadAdminLog
            | ReadHistory
            | Ingest
            | Heartbeat
            | ReportInstallProgress
            | HandleResponses
            | ManageLegalHolds
            | ReadLegalHolds
            | ReadAgentConfig => false,
        },
        Role::Auditor => match action {
            ReadConfiguration | ReadDashboard | ReadServerStatus | ReadDetections | ReadHistory
            | ReadLegalHolds => true,
            ViewRecording | RestrictRecording | Comment => auditor_sees(target),
            PlayRecording => {
                auditor_sees(target)
                    && matches!(target, Target::Recording { recording, .. } if !recording.archived && !recording.deleted)
            }
            ManageSites
            | ManageServers
            | ManagePolicies
            | ManagePermissions
            | ManageRetention
            | ManageTokens
            | ManageRecordings
            | ReadAdminLog
            | Ingest
            | Heartbeat
            | ReportInstallProgress
            | HandleResponses
            | ManageLegalHolds
            | ReadAgentConfig => false,
        },
        Role::Viewer => matches!(action, ReadDashboard | ReadServerStatus),
        Role::Agent => {
            let own_server = match target {
                Target::Server { server_id, .. } => principal.server_id == Some(server_id),
                Target::Recording { recording, .. } => {
                    principal.server_id == Some(recording.server_id)
                }
                Target::Global | Target::Site(_) => false,
            };
            own_server
                && matches!(
                    action,
                    Ingest | Heartbeat | ReportInstallProgress | HandleResponses | ReadAgentConfig
                )
        }
    }
}

/// An auditor sees an unrestricted recording that one of its grants on the
/// site admits, and nothing else: no grant, no recording; a restricted one
/// never, grant or not. What it sees is the union of what its grants admit,
/// so a revoked grant can only take recordings away (never "no grant left,
/// so everything", the rule this replaced).
fn auditor_sees(target: Target<'_>) -> bool {
    match target {
        Target::Recording { recording, grants } => {
            !recording.restricted && grants.iter().any(|g| g.admits(recording))
        }
        // Restricting and commenting are aimed at recordings only.
        Target::Global | Target::Site(_) | Target::Server { .. } => false,
    }
}

/// Whether `principal` may see `recording` at all (the `recording(id)`
/// query answers null otherwise, and lists leave it out).
pub fn can_view_recording(
    principal: &Principal,
    recording: &RecordingFacts,
    grants: &[PlaybackScope],
) -> bool {
    may(
        principal,
        Action::ViewRecording,
        Target::Recording { recording, grants },
    )
}

/// Whether `principal` may play or download `recording`.
pub fn can_play_recording(
    principal: &Principal,
    recording: &RecordingFacts,
    grants: &[PlaybackScope],
) -> bool {
    may(
        principal,
        Action::PlayRecording,
        Target::Recording { recording, grants },
    )
}

/// Whether `principal` may lift the restriction of `recording`: it may play
/// the recording with the restriction as the only obstacle, i.e. play it
/// were it unrestricted. ADMIN and PRIVILEGED_PLAYER always (of their
/// sites, not deleted); an AUDITOR only where one of its grants admits the
/// recording and nothing else keeps it from playing (an archived recording
/// stays restricted for it); nobody else.
pub fn can_unrestrict_recording(
    principal: &Principal,
    recording: &RecordingFacts,
    grants: &[PlaybackScope],
) -> bool {
    let unrestricted = RecordingFacts {
        restricted: false,
        ..recording.clone()
    };
    can_play_recording(principal, &unrestricted, grants)
}

/// The hex SHA-256 of a secret: what tokens and credentials are stored as.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` hashes to `expected_sha256`, compared in constant time
/// so that response timing reveals nothing about stored hashes.
pub fn verify_secret(secret: &str, expected_sha256: &str) -> bool {
    let actual = hash_secret(secret);
    let (a, b) = (actual.as_bytes(), expected_sha256.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The furthest ahead a token's expiry may lie, in days (ten years).
pub const MAX_TOKEN_LIFETIME_DAYS: i64 = 3_653;

/// Whether `expires_at` is an expiry a token may be given at `now`: in
/// the future, and at most [`MAX_TOKEN_LIFETIME_DAYS`] ahead.
pub fn check_expiry(expires_at: Timestamp, now: Timestamp) -> Result<(), TokenError> {
    if expires_at <= now {
        return Err(TokenError::Invalid(format!(
            "expiresAt must be in the future: {} is not after now ({})",
            expires_at.to_rfc3339(),
            now.to_rfc3339()
        )));
    }
    if expires_at > now.plus_days(MAX_TOKEN_LIFETIME_DAYS) {
        return Err(TokenError::Invalid(format!(
            "expiresAt must be at most {MAX_TOKEN_LIFETIME_DAYS} days ahead, not {}",
            expires_at.to_rfc3339()
        )));
    }
    Ok(())
}

/// A token lineage as its stream folds: the token first issued on the
/// stream, then each successor a rotation put in its place.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Token {
    /// The current token of the lineage (the last successor).
    pub id: Option<TokenId>,
    /// The tokens rotation replaced, oldest first (all revoked).
    pub replaced: Vec<TokenId>,
    pub name: String,
    pub role: Option<Role>,
    pub site_ids: BTreeSet<Uuid>,
    pub groups: Vec<String>,
    /// Never shown: a credential's hash is nobody's business but the log's.
    #[serde(skip_serializing)]
    pub secret_sha256: String,
    pub issued_at: Option<Timestamp>,
    /// When the token stops authenticating; `None`: never.
    pub expires_at: Option<Timestamp>,
    pub revoked: bool,
}

impl Token {
    /// Whether the token has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The principal this token authenticates at `now`, unless revoked
    /// or expired.
    pub fn principal(&self, now: Timestamp) -> Option<Principal> {
        if self.revoked || self.expired(now) {
            return None;
        }
        Some(Principal {
            token_id: self.id?,
            name: self.name.clone(),
            role: self.role?,
            site_ids: self.site_ids.clone(),
            groups: self.groups.clone(),
            server_id: None,
        })
    }
}

/// Why a token command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("token not found")]
    NotFound,
    #[error("token {0} already exists")]
    AlreadyExists(TokenId),
    #[error("the token is already revoked")]
    AlreadyRevoked,
    #[error("the token was rotated and is revoked; its successor is token {0}")]
    Rotated(TokenId),
    #[error("agent credentials come from connecting or installing a server")]
    AgentRole,
    #[error("{0}")]
    Invalid(String),
}

impl Coded for TokenError {
    fn code(&self) -> ErrorCode {
        match self {
            TokenError::NotFound => ErrorCode::NotFound,
            TokenError::AlreadyExists(_) => ErrorCode::Conflict,
            TokenError::AlreadyRevoked
            | TokenError::Rotated(_)
            | TokenError::AgentRole
            | TokenError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// What may be asked of a token.
#[derive(Clone, Debug, PartialEq)]
pub enum TokenCommand {
    Issue {
        token_id: TokenId,
        name: String,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        /// Hex SHA-256 of the secret handed out once.
        secret_sha256: String,
        /// When the token stops authenticating; `None`: never.
        expires_at: Option<Timestamp>,
        now: Timestamp,
    },
    /// Revokes `token_id`, the lineage's current token.
    Revoke { token_id: TokenId, now: Timestamp },
    /// Revokes `token_id` (the lineage's current token) and issues
    /// `new_token_id` in its place with the secret of SHA-256
    /// `secret_sha256`; `expires_at` `None` keeps the current expiry.
    Rotate {
        token_id: TokenId,
        new_token_id: TokenId,
        secret_sha256: String,
        expires_at: Option<Timestamp>,
        now: Timestamp,
    },
}

fn check_hash(secret_sha256: &str) -> Result<(), TokenError> {
    if secret_sha256.len() != 64 || !secret_sha256.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(TokenError::Invalid(
            "only a hex SHA-256 of the secret may be stored".into(),
        ));
    }
    Ok(())
}

impl Token {
    /// The lineage's current token, if it is `token_id`; why not otherwise.
    fn current(&self, token_id: TokenId) -> Result<TokenId, TokenError> {
        let current = self.id.ok_or(TokenError::NotFound)?;
        if current == token_id {
            if self.revoked {
                return Err(TokenError::AlreadyRevoked);
            }
            return Ok(current);
        }
        if self.replaced.contains(&token_id) {
            return Err(TokenError::Rotated(current));
        }
        Err(TokenError::NotFound)
    }
}

impl CommandFor for TokenCommand {
    type Aggregate = Token;
}

impl Aggregate for Token {
    type Command = TokenCommand;
    type Error = TokenError;
    const STREAM_PREFIX: &'static str = "token";

    fn decide(&self, command: TokenCommand) -> Result<Vec<DomainEvent>, TokenError> {
        match command {
            TokenCommand::Issue {
                token_id,
                name,
                role,
                site_ids,
                groups,
                secret_sha256,
                expires_at,
                now,
            } => {
                if self.id.is_some() {
                    return Err(TokenError::AlreadyExists(token_id));
                }
                if role == Role::Agent {
                    return Err(TokenError::AgentRole);
                }
                let name = name.trim().to_string();
                if name.is_empty() || name.chars().count() > 200 {
                    return Err(TokenError::Invalid(
                        "the principal name must be 1 to 200 characters".into(),
                    ));
                }
                if is_reserved_principal_name(&name) {
                    return Err(TokenError::Invalid(format!(
                        "a principal name may not start with `{TOKEN_PRINCIPAL_PREFIX}` (that \
                         form names one token in playback permissions)"
                    )));
                }
                if groups.iter().any(|g| g.trim().is_empty()) {
                    return Err(TokenError::Invalid("groups must not be blank".into()));
                }
                check_hash(&secret_sha256)?;
                if let Some(expires_at) = expires_at {
                    check_expiry(expires_at, now)?;
                }
                let mut events = vec![DomainEvent::TokenIssued {
                    token_id,
                    name,
                    role,
                    site_ids,
                    groups: groups.into_iter().map(|g| g.trim().to_string()).collect(),
                    secret_sha256,
                    at: now,
                }];
                if let Some(expires_at) = expires_at {
                    events.push(DomainEvent::TokenExpirySet {
                        token_id,
                        expires_at,
                        at: now,
                    });
                }
                Ok(events)
            }
            TokenCommand::Revoke { token_id, now } => {
                let token_id = self.current(token_id)?;
                Ok(vec![DomainEvent::TokenRevoked {
                    token_id,
                    name: self.name.clone(),
                    at: now,
                }])
            }
            TokenCommand::Rotate {
                token_id,
                new_token_id,
                secret_sha256,
                expires_at,
                now,
            } => {
                let token_id = self.current(token_id)?;
                if new_token_id == token_id || self.replaced.contains(&new_token_id) {
                    return Err(TokenError::AlreadyExists(new_token_id));
                }
                let role = self.role.ok_or(TokenError::NotFound)?;
                check_hash(&secret_sha256)?;
                let expires_at = match (expires_at, self.expires_at) {
                    (Some(given), _) => {
                        check_expiry(given, now)?;
                        Some(given)
                    }
                    (None, Some(kept)) if kept <= now => {
                        return Err(TokenError::Invalid(format!(
                            "the token expired at {}; rotating it needs a new expiresAt",
                            kept.to_rfc3339()
                        )))
                    }
                    (None, kept) => kept,
                };
                Ok(vec![DomainEvent::TokenRotated {
                    token_id,
                    new_token_id,
                    name: self.name.clone(),
                    role,
                    site_ids: self.site_ids.clone(),
                    groups: self.groups.clone(),
                    secret_sha256,
                    expires_at,
                    at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::TokenIssued {
                token_id,
                name,
                role,
                site_ids,
                groups,
                secret_sha256,
                at,
            } => {
                self.id = Some(*token_id);
                self.name = name.clone();
                self.role = Some(*role);
                self.site_ids = site_ids.clone();
                self.groups = groups.clone();
                self.secret_sha256 = secret_sha256.clone();
                self.issued_at = Some(*at);
            }
            DomainEvent::TokenExpirySet { expires_at, .. } => self.expires_at = Some(*expires_at),
            DomainEvent::TokenRotated {
                token_id,
                new_token_id,
                secret_sha256,
                expires_at,
                at,
                ..
            } => {
                self.replaced.push(*token_id);
                self.id = Some(*new_token_id);
                self.secret_sha256 = secret_sha256.clone();
                self.expires_at = *expires_at;
                self.issued_at = Some(*at);
            }
            DomainEvent::TokenRevoked { .. } => self.revoked = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    const ROLES: [Role; 5] = [
        Role::Admin,
        Role::PrivilegedPlayer,
        Role::Auditor,
        Role::Viewer,
        Role::Agent,
    ];

    fn agent() -> Principal {
        Principal::agent(SERVER, SITE)
    }

    fn who(role: Role) -> Principal {
        match role {
            Role::Agent => agent(),
            role => principal(role, "someone"),
        }
    }

    /// One row per action: (action, target kind, allowed roles).
    #[test]
    fn role_matrix() {
        use Action::*;
        let recording = recording_facts();
        // A whole-site grant: what an auditor needs to see any recording.
        let whole_site = [PlaybackScope::default()];
        let rec = Target::Recording {
            recording: &recording,
            grants: &whole_site,
        };
        let site = Target::Site(SITE);
        let server = Target::Server {
            site_id: SITE,
            server_id: SERVER,
        };
        let a = Role::Admin;
        let p = Role::PrivilegedPlayer;
        let u = Role::Auditor;
        let v = Role::Viewer;
        let g = Role::Agent;
        let matrix: Vec<(Action, Target<'_>, Vec<Role>)> = vec![
            (ManageSites, Target::Global, vec![a]),
            (ManageSites, site, vec![a]),
            (ManageServers, site, vec![a]),
            (ManagePolicies, site, vec![a]),
            (ManagePermissions, site, vec![a]),
            (ManageRetention, site, vec![a]),
            (ManageTokens, Target::Global, vec![a]),
            (ManageRecordings, rec, vec![a]),
            (ReadConfiguration, site, vec![a, u]),
            (ReadDashboard, site, vec![a, p, u, v]),
            (ReadServerStatus, server, vec![a, p, u, v]),
            (ReadDetections, site, vec![a, p, u]),
            (ReadAdminLog, Target::Global, vec![a]),
            (ReadHistory, Target::Global, vec![a, u]),
            (ViewRecording, rec, vec![a, p, u]),
            (PlayRecording, rec, vec![a, p, u]),
            (RestrictRecording, rec, vec![a, p, u]),
            (Comment, rec, vec![a, p, u]),
            (Ingest, server, vec![g]),
            (Heartbeat, server, vec![g]),
            (ReportInstallProgress, server, vec![g]),
            (HandleResponses, server, vec![a, g]),
            (ReadAgentConfig, server, vec![a, g]),
            (ManageLegalHolds, site, vec![a]),
            (ManageLegalHolds, rec, vec![a]),
            (ReadLegalHolds, site, vec![a, u]),
            (ReadLegalHolds, Target::Global, vec![a, u]),
        ];
        for (action, target, allowed) in matrix {
            for role in ROLES {
                assert_eq!(
                    may(&who(role), action, target),
                    allowed.contains(&role),
                    "{role} {action} on {}",
                    target.label()
                );
            }
        }
    }

    #[test]
    fn restricted_recording_is_hidden_from_auditors_even_with_a_grant() {
        let recording = RecordingFacts {
            restricted: true,
            ..recording_facts()
        };
        let grant = [PlaybackScope::default()];
        let auditor = principal(Role::Auditor, "ann");
        assert!(!can_view_recording(&auditor, &recording, &[]));
        assert!(!can_view_recording(&auditor, &recording, &grant));
        assert!(can_view_recording(
            &principal(Role::Admin, "root"),
            &recording,
            &[]
        ));
        assert!(can_play_recording(
            &principal(Role::PrivilegedPlayer, "pp"),
            &recording,
            &[]
        ));
    }

    #[test]
    fn auditors_see_only_what_their_playback_permissions_grant() {
        let recording = recording_facts();
        let auditor = principal(Role::Auditor, "ann");
        let other_user = [PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        }];
        let this_user = [
            other_user[0].clone(),
            PlaybackScope {
                recorded_users: vec!["alice@corp.example.com".into()],
                ..Default::default()
            },
        ];
        // No grant: nothing (the old rule showed the whole site here).
        assert!(!can_view_recording(&auditor, &recording, &[]));
        assert!(!can_play_recording(&auditor, &recording, &[]));
        assert!(!can_view_recording(&auditor, &recording, &other_user));
        assert!(can_play_recording(&auditor, &recording, &this_user));
        assert!(can_view_recording(
            &auditor,
            &recording,
            &[PlaybackScope::default()]
        ));
    }

    #[test]
    fn only_a_player_with_the_restriction_as_its_only_obstacle_unrestricts() {
        let restricted = RecordingFacts {
            restricted: true,
            ..recording_facts()
        };
        let whole_site = [PlaybackScope::default()];
        let other_user = [PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        }];
        for role in [Role::Admin, Role::PrivilegedPlayer] {
            assert!(can_unrestrict_recording(
                &principal(role, "x"),
                &restricted,
                &[]
            ));
        }
        let auditor = principal(Role::Auditor, "ann");
        assert!(can_unrestrict_recording(&auditor, &restricted, &whole_site));
        assert!(!can_unrestrict_recording(&auditor, &restricted, &[]));
        assert!(!can_unrestrict_recording(
            &auditor,
            &restricted,
            &other_user
        ));
        let archived = RecordingFacts {
            archived: true,
            ..restricted.clone()
        };
        assert!(!can_unrestrict_recording(&auditor, &archived, &whole_site));
        for role in [Role::Viewer, Role::Agent] {
            assert!(!can_unrestrict_recording(
                &who(role),
                &restricted,
                &whole_site
            ));
        }
    }

    #[test]
    fn auditors_see_but_do_not_play_archived_recordings() {
        let recording = RecordingFacts {
            archived: true,
            ..recording_facts()
        };
        let auditor = principal(Role::Auditor, "ann");
        let grants = [PlaybackScope::default()];
        assert!(can_view_recording(&auditor, &recording, &grants));
        assert!(!can_play_recording(&auditor, &recording, &grants));
        assert!(can_play_recording(
            &principal(Role::PrivilegedPlayer, "pp"),
            &recording,
            &[]
        ));
    }

    #[test]
    fn deleted_recordings_are_not_played_by_anyone_but_remain_visible_facts() {
        let recording = RecordingFacts {
            deleted: true,
            ..recording_facts()
        };
        for role in [Role::PrivilegedPlayer, Role::Auditor] {
            assert!(
                !can_play_recording(&principal(role, "x"), &recording, &[]),
                "{role}"
            );
        }
        assert!(can_view_recording(
            &principal(Role::PrivilegedPlayer, "x"),
            &recording,
            &[]
        ));
    }

    #[test]
    fn site_scope_limits_every_role() {
        let recording = recording_facts();
        let mut auditor = principal(Role::Auditor, "ann");
        auditor.site_ids = BTreeSet::from([Uuid::from_u128(42)]);
        assert!(!can_view_recording(&auditor, &recording, &[]));
        let mut admin = principal(Role::Admin, "site admin");
        admin.site_ids = BTreeSet::from([SITE]);
        assert!(may(&admin, Action::ManagePolicies, Target::Site(SITE)));
        assert!(
            !may(&admin, Action::ManageTokens, Target::Global),
            "scoped admins mint no tokens"
        );
        assert!(!may(&admin, Action::ReadAdminLog, Target::Global));
    }

    #[test]
    fn agents_act_for_their_own_server_only() {
        let other = Target::Server {
            site_id: SITE,
            server_id: Uuid::from_u128(9),
        };
        assert!(!may(&agent(), Action::Ingest, other));
        let mut recording = recording_facts();
        assert!(may(
            &agent(),
            Action::Ingest,
            Target::Recording {
                recording: &recording,
                grants: &[]
            }
        ));
        recording.server_id = Uuid::from_u128(9);
        assert!(!may(
            &agent(),
            Action::Ingest,
            Target::Recording {
                recording: &recording,
                grants: &[]
            }
        ));
        assert_eq!(agent().actor(), Actor::Agent { server_id: SERVER });
    }

    #[test]
    fn secrets_are_stored_and_checked_as_hashes() {
        let hash = hash_secret("s3cret");
        assert_eq!(hash.len(), 64);
        assert!(verify_secret("s3cret", &hash));
        assert!(!verify_secret("s3cret!", &hash));
        assert!(!verify_secret("s3cret", "short"));
    }

    fn issued() -> DomainEvent {
        DomainEvent::TokenIssued {
            token_id: TOKEN,
            name: "ann".into(),
            role: Role::Auditor,
            site_ids: BTreeSet::from([SITE]),
            groups: vec!["CORP\\Auditors".into()],
            secret_sha256: CREDENTIAL.into(),
            at: T0,
        }
    }

    fn issue(role: Role, secret_sha256: &str) -> TokenCommand {
        issue_expiring(role, secret_sha256, None)
    }

    fn issue_expiring(
        role: Role,
        secret_sha256: &str,
        expires_at: Option<Timestamp>,
    ) -> TokenCommand {
        TokenCommand::Issue {
            token_id: TOKEN,
            name: " ann ".into(),
            role,
            site_ids: BTreeSet::from([SITE]),
            groups: vec!["CORP\\Auditors".into()],
            secret_sha256: secret_sha256.into(),
            expires_at,
            now: T0,
        }
    }

    #[test]
    fn a_token_is_issued_with_only_the_hash_of_its_secret() {
        given([])
            .when(issue(Role::Auditor, CREDENTIAL))
            .then([issued()]);
        given([])
            .when(issue(Role::Auditor, "the-plain-secret"))
            .then_err_code(ErrorCode::Validation);
    }

    #[test]
    fn a_token_name_may_not_spell_a_token_principal() {
        let mut command = issue(Role::Auditor, CREDENTIAL);
        if let TokenCommand::Issue { name, .. } = &mut command {
            *name = format!("Token:{TOKEN}");
        }
        given([]).when(command).then_err_code(ErrorCode::Validation);
    }

    #[test]
    fn agent_tokens_are_not_issued_by_hand() {
        given([])
            .when(issue(Role::Agent, CREDENTIAL))
            .then_err(|e| *e == TokenError::AgentRole);
    }

    #[test]
    fn a_revoked_token_authenticates_nobody() {
        let revoked = DomainEvent::TokenRevoked {
            token_id: TOKEN,
            name: "ann".into(),
            at: T1,
        };
        given([issued()])
            .when(TokenCommand::Revoke {
                token_id: TOKEN,
                now: T1,
            })
            .then([revoked.clone()]);
        assert!(given([issued()]).state::<Token>().principal(T1).is_some());
        assert!(given([issued(), revoked.clone()])
            .state::<Token>()
            .principal(T1)
            .is_none());
        given([issued(), revoked])
            .when(TokenCommand::Revoke {
                token_id: TOKEN,
                now: T2,
            })
            .then_err(|e| *e == TokenError::AlreadyRevoked);
    }

    fn expiry(expires_at: Timestamp) -> DomainEvent {
        DomainEvent::TokenExpirySet {
            token_id: TOKEN,
            expires_at,
            at: T0,
        }
    }

    #[test]
    fn a_token_issued_with_an_expiry_records_it_in_the_same_append() {
        let command = issue_expiring(Role::Auditor, CREDENTIAL, Some(T1));
        given([]).when(command).then([issued(), expiry(T1)]);
    }

    #[test]
    fn an_expiry_must_be_in_the_future_and_within_ten_years() {
        for bad in [
            T0,
            Timestamp(T0.0 - 1),
            T0.plus_days(MAX_TOKEN_LIFETIME_DAYS + 1),
        ] {
            given([])
                .when(issue_expiring(Role::Auditor, CREDENTIAL, Some(bad)))
                .then_err_code(ErrorCode::Validation);
        }
        given([])
            .when(issue_expiring(
                Role::Auditor,
                CREDENTIAL,
                Some(T0.plus_days(MAX_TOKEN_LIFETIME_DAYS)),
            ))
            .then_ok();
    }

    #[test]
    fn an_expired_token_authenticates_nobody_from_its_expiry_on() {
        let token = given([issued(), expiry(T1)]).state::<Token>();
        assert!(token.principal(Timestamp(T1.0 - 1)).is_some());
        assert!(token.principal(T1).is_none(), "expired at the instant");
        assert!(token.expired(T2));
        let forever = given([issued()]).state::<Token>();
        assert!(!forever.expired(Timestamp(i64::MAX)));
    }

    const SUCCESSOR: Uuid = Uuid::from_u128(0x5cc);
    const NEW_HASH: &str = "1111111111111111111111111111111111111111111111111111111111111111";

    fn rotate(token_id: Uuid, expires_at: Option<Timestamp>, now: Timestamp) -> TokenCommand {
        TokenCommand::Rotate {
            token_id,
            new_token_id: SUCCESSOR,
            secret_sha256: NEW_HASH.into(),
            expires_at,
            now,
        }
    }

    fn rotated(expires_at: Option<Timestamp>) -> DomainEvent {
        DomainEvent::TokenRotated {
            token_id: TOKEN,
            new_token_id: SUCCESSOR,
            name: "ann".into(),
            role: Role::Auditor,
            site_ids: BTreeSet::from([SITE]),
            groups: vec!["CORP\\Auditors".into()],
            secret_sha256: NEW_HASH.into(),
            expires_at,
            at: T1,
        }
    }

    #[test]
    fn rotating_revokes_the_token_and_issues_its_successor_in_one_event() {
        given([issued()])
            .when(rotate(TOKEN, None, T1))
            .then([rotated(None)]);
        let state = given([issued(), rotated(None)]).state::<Token>();
        assert_eq!(state.id, Some(SUCCESSOR));
        assert_eq!(state.secret_sha256, NEW_HASH);
        assert_eq!(state.replaced, vec![TOKEN]);
        let principal = state.principal(T1).expect("the successor authenticates");
        assert_eq!(principal.token_id, SUCCESSOR);
        assert_eq!(principal.name, "ann");
        assert_eq!(principal.role, Role::Auditor);
    }

    #[test]
    fn a_rotated_token_cannot_be_rotated_or_revoked_again() {
        // The second of two rotations of one token meets the first's
        // event: one successor only.
        given([issued(), rotated(None)])
            .when(rotate(TOKEN, None, T2))
            .then_err(|e| *e == TokenError::Rotated(SUCCESSOR));
        given([issued(), rotated(None)])
            .when(TokenCommand::Revoke {
                token_id: TOKEN,
                now: T2,
            })
            .then_err(|e| *e == TokenError::Rotated(SUCCESSOR));
        // The successor itself is revoked on the lineage's stream.
        given([issued(), rotated(None)])
            .when(TokenCommand::Revoke {
                token_id: SUCCESSOR,
                now: T2,
            })
            .then([DomainEvent::TokenRevoked {
                token_id: SUCCESSOR,
                name: "ann".into(),
                at: T2,
            }]);
        given([issued()])
            .when(rotate(Uuid::from_u128(404), None, T1))
            .then_err(|e| *e == TokenError::NotFound);
    }

    #[test]
    fn a_revoked_token_is_not_rotated() {
        let revoked = DomainEvent::TokenRevoked {
            token_id: TOKEN,
            name: "ann".into(),
            at: T1,
        };
        given([issued(), revoked])
            .when(rotate(TOKEN, None, T2))
            .then_err(|e| *e == TokenError::AlreadyRevoked);
    }

    #[test]
    fn rotation_keeps_the_expiry_unless_given_one_and_an_expired_token_needs_one() {
        let later = T2.plus_days(1);
        given([issued(), expiry(T2)])
            .when(rotate(TOKEN, None, T1))
            .then([rotated(Some(T2))]);
        given([issued(), expiry(T2)])
            .when(rotate(TOKEN, Some(later), T1))
            .then([rotated(Some(later))]);
        given([issued(), expiry(T1)])
            .when(rotate(TOKEN, None, T1))
            .then_err_code(ErrorCode::Validation);
        given([issued(), expiry(T1)])
            .when(rotate(TOKEN, Some(T0), T1))
            .then_err_code(ErrorCode::Validation);
        let renewed = given([issued(), expiry(T1), rotated(Some(later))]).state::<Token>();
        assert!(renewed.principal(T2).is_some());
    }
}
