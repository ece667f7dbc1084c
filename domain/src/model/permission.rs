//! Playback permissions (stream `permission-<uuid>`): per site and
//! principal, which recordings an AUDITOR may see and play.
//!
//! # The rule
//!
//! An AUDITOR sees (and plays, when not archived) exactly the unrestricted
//! recordings of the sites in its scope that at least one of the
//! permissions it holds admits. No permission: no recording. A permission's
//! scope is either the whole site (no criteria: [`PlaybackScope::is_whole_site`],
//! `wholeSite: true` in the API) or criteria combined with AND. What an
//! auditor sees is therefore the union of what its permissions admit, and
//! granting can only add to it while revoking can only take away. (The rule
//! this replaced let an auditor without any permission on a site see the
//! whole site, so revoking its last, narrow permission widened its access.)
//! Permissions never open restricted recordings: those stay with ADMIN and
//! PRIVILEGED_PLAYER.
//!
//! # Who holds a permission
//!
//! A permission names a principal (a token's name, matched as recording
//! policies match accounts), a group a token carries, or exactly one token
//! as `token:<token id>` (see [`token_principal`]): the form the upgrade
//! migration (`model::migration`) uses so that the whole-site grant it
//! gives one token reaches no other token of a similar name. Token names
//! may not take that form (a token that was named so before this rule
//! holds no `token:` permission by its name).

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::glob;
use super::policy::name_matches;
use super::token::Principal;
use crate::time::Timestamp;

/// Permission id.
pub type PermissionId = Uuid;

/// Which recordings a permission opens; empty lists match anything, the
/// lists combine with AND (API `PlaybackScopeInput`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaybackScope {
    pub recorded_users: Vec<String>,
    pub recorded_groups: Vec<String>,
    pub server_ids: Vec<Uuid>,
    pub hosts: Vec<String>,
    pub delivery_groups: Vec<String>,
    pub applications: Vec<String>,
}

/// What access rules look at on a recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordingFacts {
    pub recording_id: Uuid,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub user: String,
    pub groups: Vec<String>,
    pub host: String,
    pub delivery_group: Option<String>,
    pub applications: Vec<String>,
    pub restricted: bool,
    pub archived: bool,
    pub deleted: bool,
}

impl PlaybackScope {
    /// Whether this scope admits the recording. Recorded users and groups
    /// form one "users or groups" criterion, as in recording policies.
    pub fn admits(&self, recording: &RecordingFacts) -> bool {
        let who = (self.recorded_users.is_empty() && self.recorded_groups.is_empty())
            || self
                .recorded_users
                .iter()
                .any(|u| name_matches(u, &recording.user))
            || self
                .recorded_groups
                .iter()
                .any(|g| recording.groups.iter().any(|rg| name_matches(g, rg)));
        who && (self.server_ids.is_empty() || self.server_ids.contains(&recording.server_id))
            && glob::any_matches(&self.hosts, &recording.host)
            && (self.delivery_groups.is_empty()
                || recording
                    .delivery_group
                    .as_deref()
                    .is_some_and(|dg| glob::any_matches(&self.delivery_groups, dg)))
            && (self.applications.is_empty()
                || recording
                    .applications
                    .iter()
                    .any(|a| glob::any_matches(&self.applications, a)))
    }

    /// The whole-site scope: no criteria, so it admits every recording of
    /// its site (API `wholeSite: true`).
    pub fn whole_site() -> Self {
        PlaybackScope::default()
    }

    /// Whether this scope has no criteria and so admits the whole site.
    pub fn is_whole_site(&self) -> bool {
        self.recorded_users.is_empty()
            && self.recorded_groups.is_empty()
            && self.server_ids.is_empty()
            && self.hosts.is_empty()
            && self.delivery_groups.is_empty()
            && self.applications.is_empty()
    }

    fn validate(&self) -> Result<(), PermissionError> {
        let blank = |v: &[String]| v.iter().any(|s| s.trim().is_empty());
        if blank(&self.recorded_users)
            || blank(&self.recorded_groups)
            || blank(&self.hosts)
            || blank(&self.delivery_groups)
            || blank(&self.applications)
        {
            return Err(PermissionError::Invalid(
                "scope entries must not be blank".into(),
            ));
        }
        Ok(())
    }
}

/// A permission as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct PlaybackPermission {
    pub id: Option<PermissionId>,
    pub site_id: Option<Uuid>,
    pub principal: String,
    pub scope: PlaybackScope,
    pub granted_at: Option<Timestamp>,
    pub revoked: bool,
}

/// The prefix of a permission principal that names one token by id.
pub const TOKEN_PRINCIPAL_PREFIX: &str = "token:";

/// The permission principal that names exactly the token `token_id`.
pub fn token_principal(token_id: Uuid) -> String {
    format!("{TOKEN_PRINCIPAL_PREFIX}{token_id}")
}

/// The token a permission principal names by id (`token:<uuid>`), if it
/// has that form (the prefix in any case).
pub fn principal_token(principal: &str) -> Option<Uuid> {
    let principal = principal.trim();
    let prefix = principal.get(..TOKEN_PRINCIPAL_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(TOKEN_PRINCIPAL_PREFIX) {
        return None;
    }
    principal[TOKEN_PRINCIPAL_PREFIX.len()..].parse().ok()
}

/// Whether `name` starts like a `token:<id>` principal (refused as a token
/// name, so that no token holds another's permissions by name).
pub fn is_reserved_principal_name(name: &str) -> bool {
    name.trim()
        .get(..TOKEN_PRINCIPAL_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(TOKEN_PRINCIPAL_PREFIX))
}

impl PlaybackPermission {
    /// Whether this (live) permission is held by `principal`: the one token
    /// it names as `token:<id>`, or else by name or through one of the
    /// principal's groups.
    pub fn held_by(&self, principal: &Principal) -> bool {
        if self.revoked {
            return false;
        }
        if let Some(token_id) = principal_token(&self.principal) {
            return token_id == principal.token_id;
        }
        if is_reserved_principal_name(&self.principal) {
            // `token:` and no id: names nobody.
            return false;
        }
        name_matches(&self.principal, &principal.name)
            || principal
                .groups
                .iter()
                .any(|g| name_matches(&self.principal, g))
    }
}

/// The scopes of the permissions `principal` holds on `site_id`: the
/// `grants` argument of the visibility checks in `token.rs`.
pub fn grants_for<'a>(
    principal: &Principal,
    site_id: Uuid,
    permissions: impl IntoIterator<Item = &'a PlaybackPermission>,
) -> Vec<PlaybackScope> {
    permissions
        .into_iter()
        .filter(|p| p.site_id == Some(site_id) && p.held_by(principal))
        .map(|p| p.scope.clone())
        .collect()
}

/// Why a permission command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PermissionError {
    #[error("playback permission not found")]
    NotFound,
    #[error("playback permission {0} already exists")]
    AlreadyExists(PermissionId),
    #[error("the playback permission is already revoked")]
    AlreadyRevoked,
    #[error("{0}")]
    Invalid(String),
}

impl Coded for PermissionError {
    fn code(&self) -> ErrorCode {
        match self {
            PermissionError::NotFound => ErrorCode::NotFound,
            PermissionError::AlreadyExists(_) => ErrorCode::Conflict,
            PermissionError::AlreadyRevoked | PermissionError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// What may be asked of a playback permission.
#[derive(Clone, Debug, PartialEq)]
pub enum PermissionCommand {
    Grant {
        permission_id: PermissionId,
        site_id: Uuid,
        principal: String,
        scope: PlaybackScope,
        now: Timestamp,
    },
    Revoke {
        now: Timestamp,
    },
}

impl CommandFor for PermissionCommand {
    type Aggregate = PlaybackPermission;
}

impl Aggregate for PlaybackPermission {
    type Command = PermissionCommand;
    type Error = PermissionError;
    const STREAM_PREFIX: &'static str = "permission";

    fn decide(&self, command: PermissionCommand) -> Result<Vec<DomainEvent>, PermissionError> {
        match command {
            PermissionCommand::Grant {
                permission_id,
                site_id,
                principal,
                scope,
                now,
            } => {
                if self.id.is_some() {
                    return Err(PermissionError::AlreadyExists(permission_id));
                }
                let principal = principal.trim().to_string();
                if principal.is_empty() {
                    return Err(PermissionError::Invalid(
                        "the principal must not be empty".into(),
                    ));
                }
                if is_reserved_principal_name(&principal) && principal_token(&principal).is_none() {
                    return Err(PermissionError::Invalid(format!(
                        "a principal starting with `{TOKEN_PRINCIPAL_PREFIX}` names one token: \
                         `{TOKEN_PRINCIPAL_PREFIX}<token id>`"
                    )));
                }
                scope.validate()?;
                Ok(vec![DomainEvent::PlaybackPermissionGranted {
                    permission_id,
                    site_id,
                    principal,
                    scope,
                    at: now,
                }])
            }
            PermissionCommand::Revoke { now } => {
                let (Some(permission_id), Some(site_id)) = (self.id, self.site_id) else {
                    return Err(PermissionError::NotFound);
                };
                if self.revoked {
                    return Err(PermissionError::AlreadyRevoked);
                }
                Ok(vec![DomainEvent::PlaybackPermissionRevoked {
                    permission_id,
                    site_id,
                    principal: self.principal.clone(),
                    at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::PlaybackPermissionGranted {
                permission_id,
                site_id,
                principal,
                scope,
                at,
            } => {
                self.id = Some(*permission_id);
                self.site_id = Some(*site_id);
                self.principal = principal.clone();
                self.scope = scope.clone();
                self.granted_at = Some(*at);
            }
            DomainEvent::PlaybackPermissionRevoked { .. } => self.revoked = true,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;
    use crate::model::token::Role;

    fn granted(scope: PlaybackScope) -> DomainEvent {
        DomainEvent::PlaybackPermissionGranted {
            permission_id: PERMISSION,
            site_id: SITE,
            principal: "auditor-ann".into(),
            scope,
            at: T0,
        }
    }

    #[test]
    fn a_permission_is_granted_and_revoked_once() {
        given([])
            .when(PermissionCommand::Grant {
                permission_id: PERMISSION,
                site_id: SITE,
                principal: " auditor-ann ".into(),
                scope: PlaybackScope::default(),
                now: T0,
            })
            .then([granted(PlaybackScope::default())]);
        let revoked = DomainEvent::PlaybackPermissionRevoked {
            permission_id: PERMISSION,
            site_id: SITE,
            principal: "auditor-ann".into(),
            at: T1,
        };
        given([granted(PlaybackScope::default())])
            .when(PermissionCommand::Revoke { now: T1 })
            .then([revoked.clone()]);
        given([granted(PlaybackScope::default()), revoked])
            .when(PermissionCommand::Revoke { now: T2 })
            .then_err(|e| *e == PermissionError::AlreadyRevoked);
    }

    #[test]
    fn revoking_a_missing_permission_is_not_found() {
        given([])
            .when(PermissionCommand::Revoke { now: T1 })
            .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn scopes_combine_criteria_with_and() {
        let recording = recording_facts();
        let scope = PlaybackScope {
            recorded_groups: vec!["corp\\finance".into()],
            hosts: vec!["vda-*".into()],
            ..Default::default()
        };
        assert!(scope.admits(&recording));
        let scope = PlaybackScope {
            server_ids: vec![Uuid::from_u128(5)],
            ..scope
        };
        assert!(!scope.admits(&recording));
        assert!(PlaybackScope::default().admits(&recording));
    }

    #[test]
    fn grants_are_held_by_name_or_group_on_their_site_only() {
        let mut permission =
            given([granted(PlaybackScope::default())]).state::<PlaybackPermission>();
        let ann = principal(Role::Auditor, "Auditor-Ann");
        assert_eq!(grants_for(&ann, SITE, [&permission]).len(), 1);
        assert!(grants_for(&ann, Uuid::from_u128(77), [&permission]).is_empty());
        permission.principal = "CORP\\Auditors".into();
        let mut bob = principal(Role::Auditor, "bob");
        assert!(grants_for(&bob, SITE, [&permission]).is_empty());
        bob.groups = vec!["corp\\auditors".into()];
        assert_eq!(grants_for(&bob, SITE, [&permission]).len(), 1);
        permission.revoked = true;
        assert!(grants_for(&bob, SITE, [&permission]).is_empty());
    }

    #[test]
    fn a_token_principal_is_held_by_that_token_only() {
        let mut permission =
            given([granted(PlaybackScope::default())]).state::<PlaybackPermission>();
        let ann = principal(Role::Auditor, "ann");
        permission.principal = token_principal(ann.token_id);
        assert_eq!(grants_for(&ann, SITE, [&permission]).len(), 1);
        let mut twin = principal(Role::Auditor, "ann");
        twin.token_id = Uuid::from_u128(0x7717);
        assert!(grants_for(&twin, SITE, [&permission]).is_empty());
        // Neither by a name nor by a group that spells the principal.
        let mut named = principal(Role::Auditor, &permission.principal);
        named.token_id = Uuid::from_u128(0x7718);
        named.groups = vec![permission.principal.clone()];
        assert!(grants_for(&named, SITE, [&permission]).is_empty());
        assert_eq!(
            principal_token(&format!("TOKEN:{}", ann.token_id)),
            Some(ann.token_id)
        );
    }

    #[test]
    fn a_malformed_token_principal_is_refused() {
        given([])
            .when(PermissionCommand::Grant {
                permission_id: PERMISSION,
                site_id: SITE,
                principal: "token:not-a-uuid".into(),
                scope: PlaybackScope::default(),
                now: T0,
            })
            .then_err_code(ErrorCode::Validation);
    }

    #[test]
    fn the_whole_site_is_the_scope_without_criteria() {
        assert!(PlaybackScope::whole_site().is_whole_site());
        assert!(PlaybackScope::whole_site().admits(&recording_facts()));
        let narrow = PlaybackScope {
            hosts: vec!["vda-*".into()],
            ..Default::default()
        };
        assert!(!narrow.is_whole_site());
    }
}
