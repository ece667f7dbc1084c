//! Principals, their tokens (stream `token-<uuid>`) and what roles may do.
//!
//! A token is issued to a principal (its `name`) with one [`Role`], an
//! optional site scope (empty: all sites) and groups. Only the SHA-256 of
//! its secret is ever stored. Server agents do not hold issued tokens: a
//! server's credential is kept (hashed) on the server aggregate, and the
//! API builds a [`Principal::agent`] for it.
//!
//! [`may`] is the one place that says what a principal may do; it is pure
//! and deny-by-default (the match has no catch-all arm that allows).
//!
//! | role | may |
//! |---|---|
//! | ADMIN | everything but ingesting for a server; global actions (tokens, sites, admin log, history) only when not scoped to sites |
//! | PRIVILEGED_PLAYER | sees and plays every recording of its sites, restricted and archived included; comments, restricts; dashboards, detections, server status |
//! | AUDITOR | reads configuration, dashboards, detections, the history of its sites; sees only the unrestricted recordings of its sites that one of its playback permissions grants (no permission: none); plays those not archived; comments, restricts; lifts a restriction only where a permission of its own covers the recording |
//! | VIEWER | dashboards and server status |
//! | AGENT | ingest, heartbeat, install progress, pending responses, for its own server only |

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
    /// The principal of a server's agent credential.
    pub fn agent(server_id: Uuid, site_id: Uuid) -> Self {
        Principal {
            token_id: server_id,
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
            | HandleResponses => false,
        },
        Role::Auditor => match action {
            ReadConfiguration | ReadDashboard | ReadServerStatus | ReadDetections | ReadHistory => {
                true
            }
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
            | HandleResponses => false,
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
                    Ingest | Heartbeat | ReportInstallProgress | HandleResponses
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

/// A token as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Token {
    pub id: Option<TokenId>,
    pub name: String,
    pub role: Option<Role>,
    pub site_ids: BTreeSet<Uuid>,
    pub groups: Vec<String>,
    /// Never shown: a credential's hash is nobody's business but the log's.
    #[serde(skip_serializing)]
    pub secret_sha256: String,
    pub issued_at: Option<Timestamp>,
    pub revoked: bool,
}

impl Token {
    /// The principal this token authenticates, unless revoked.
    pub fn principal(&self) -> Option<Principal> {
        if self.revoked {
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
            TokenError::AlreadyRevoked | TokenError::AgentRole | TokenError::Invalid(_) => {
                ErrorCode::Validation
            }
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
        now: Timestamp,
    },
    Revoke {
        now: Timestamp,
    },
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
                if secret_sha256.len() != 64
                    || !secret_sha256.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(TokenError::Invalid(
                        "only a hex SHA-256 of the secret may be stored".into(),
                    ));
                }
                Ok(vec![DomainEvent::TokenIssued {
                    token_id,
                    name,
                    role,
                    site_ids,
                    groups: groups.into_iter().map(|g| g.trim().to_string()).collect(),
                    secret_sha256,
                    at: now,
                }])
            }
            TokenCommand::Revoke { now } => {
                let token_id = self.id.ok_or(TokenError::NotFound)?;
                if self.revoked {
                    return Err(TokenError::AlreadyRevoked);
                }
                Ok(vec![DomainEvent::TokenRevoked {
                    token_id,
                    name: self.name.clone(),
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
        TokenCommand::Issue {
            token_id: TOKEN,
            name: " ann ".into(),
            role,
            site_ids: BTreeSet::from([SITE]),
            groups: vec!["CORP\\Auditors".into()],
            secret_sha256: secret_sha256.into(),
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
            .when(TokenCommand::Revoke { now: T1 })
            .then([revoked.clone()]);
        assert!(given([issued()]).state::<Token>().principal().is_some());
        assert!(given([issued(), revoked.clone()])
            .state::<Token>()
            .principal()
            .is_none());
        given([issued(), revoked])
            .when(TokenCommand::Revoke { now: T2 })
            .then_err(|e| *e == TokenError::AlreadyRevoked);
    }
}
