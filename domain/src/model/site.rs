//! The site aggregate (stream `site-<uuid>`): a named group of servers that
//! share policies, permissions and retention.
//!
//! The site also owns which policy of each kind is active and which of its
//! policies are deleted. Both rules that span policies ("exactly one active
//! per kind", "the active one cannot be deleted") are thereby decided on
//! this one stream under its expected version, so an activation and a
//! deletion racing each other cannot both win.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::policy::{default_policy, is_system_policy, PolicyId, PolicyKind};
use super::session_event::SessionEventType;
use crate::time::Timestamp;

/// Site id.
pub type SiteId = Uuid;

/// Why a site command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SiteError {
    #[error("site not found")]
    NotFound,
    #[error("site {0} already exists")]
    AlreadyExists(SiteId),
    #[error("site name must be 1 to 200 characters")]
    InvalidName,
    #[error("policy {0} does not belong to this site")]
    PolicyNotFound(PolicyId),
    #[error("policy {0} has been deleted")]
    PolicyDeleted(PolicyId),
    #[error("system policies cannot be deleted")]
    SystemPolicy,
    #[error("the active {0} policy cannot be deleted; activate another one first")]
    ActivePolicyCannotBeDeleted(PolicyKind),
    #[error("{0}")]
    Incompatible(String),
}

impl Coded for SiteError {
    fn code(&self) -> ErrorCode {
        match self {
            SiteError::NotFound | SiteError::PolicyNotFound(_) | SiteError::PolicyDeleted(_) => {
                ErrorCode::NotFound
            }
            SiteError::AlreadyExists(_) => ErrorCode::Conflict,
            SiteError::InvalidName
            | SiteError::SystemPolicy
            | SiteError::ActivePolicyCannotBeDeleted(_)
            | SiteError::Incompatible(_) => ErrorCode::Validation,
        }
    }
}

/// A site as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Site {
    pub id: Option<SiteId>,
    pub name: String,
    pub created_at: Option<Timestamp>,
    /// The active policy per kind; system defaults until changed.
    pub active: BTreeMap<PolicyKind, PolicyId>,
    pub deleted_policies: BTreeSet<PolicyId>,
}

impl Site {
    /// The active policy of `kind` (the system default on a new site).
    pub fn active_policy(&self, kind: PolicyKind) -> PolicyId {
        self.active
            .get(&kind)
            .copied()
            .unwrap_or_else(|| default_policy(kind))
    }

    /// Whether the site deleted policy `id`.
    pub fn is_deleted_policy(&self, id: PolicyId) -> bool {
        self.deleted_policies.contains(&id)
    }
}

/// The policy an activation or deletion is about, as loaded by the caller.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyFacts {
    pub policy_id: PolicyId,
    pub name: String,
    pub kind: PolicyKind,
    /// The owning site; `None` for system policies.
    pub site_id: Option<SiteId>,
}

/// What may be asked of a site.
#[derive(Clone, Debug, PartialEq)]
pub enum SiteCommand {
    Create {
        site_id: SiteId,
        name: String,
        now: Timestamp,
    },
    Rename {
        name: String,
        now: Timestamp,
    },
    /// Make `policy` the active one of its kind.
    ActivatePolicy {
        policy: PolicyFacts,
        /// What the detection policy active *after* this activation logs.
        detection_logged: BTreeSet<SessionEventType>,
        /// The types the response policy active *after* this activation
        /// triggers on; they must all be logged.
        response_types: BTreeSet<SessionEventType>,
        now: Timestamp,
    },
    DeletePolicy {
        policy: PolicyFacts,
        now: Timestamp,
    },
}

impl CommandFor for SiteCommand {
    type Aggregate = Site;
}

fn check_name(name: &str) -> Result<String, SiteError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(SiteError::InvalidName);
    }
    Ok(name.to_string())
}

impl Site {
    fn check_owns(&self, site_id: SiteId, policy: &PolicyFacts) -> Result<(), SiteError> {
        let system = is_system_policy(policy.policy_id);
        if !system && policy.site_id != Some(site_id) {
            return Err(SiteError::PolicyNotFound(policy.policy_id));
        }
        if self.is_deleted_policy(policy.policy_id) {
            return Err(SiteError::PolicyDeleted(policy.policy_id));
        }
        Ok(())
    }
}

impl Aggregate for Site {
    type Command = SiteCommand;
    type Error = SiteError;
    const STREAM_PREFIX: &'static str = "site";

    fn decide(&self, command: SiteCommand) -> Result<Vec<DomainEvent>, SiteError> {
        // Every command but `Create` needs the site to exist.
        let existing = self.id.ok_or(SiteError::NotFound);
        match command {
            SiteCommand::Create { site_id, name, now } => {
                if self.id.is_some() {
                    return Err(SiteError::AlreadyExists(site_id));
                }
                Ok(vec![DomainEvent::SiteCreated {
                    site_id,
                    name: check_name(&name)?,
                    at: now,
                }])
            }
            SiteCommand::Rename { name, now } => {
                let site_id = existing?;
                let name = check_name(&name)?;
                if name == self.name {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::SiteRenamed {
                    site_id,
                    name,
                    previous_name: self.name.clone(),
                    at: now,
                }])
            }
            SiteCommand::ActivatePolicy {
                policy,
                detection_logged,
                response_types,
                now,
            } => {
                let site_id = existing?;
                self.check_owns(site_id, &policy)?;
                let previous = self.active_policy(policy.kind);
                if previous == policy.policy_id {
                    return Ok(vec![]);
                }
                let missing: Vec<&str> = response_types
                    .difference(&detection_logged)
                    .map(|t| t.as_str())
                    .collect();
                if !missing.is_empty() {
                    return Err(SiteError::Incompatible(format!(
                        "the active event response policy would trigger on types the active \
                         event detection policy does not log: {}",
                        missing.join(", ")
                    )));
                }
                Ok(vec![DomainEvent::PolicyActivated {
                    site_id,
                    kind: policy.kind,
                    policy_id: policy.policy_id,
                    policy_name: policy.name,
                    previous_policy_id: previous,
                    at: now,
                }])
            }
            SiteCommand::DeletePolicy { policy, now } => {
                let site_id = existing?;
                if is_system_policy(policy.policy_id) {
                    return Err(SiteError::SystemPolicy);
                }
                self.check_owns(site_id, &policy)?;
                if self.active_policy(policy.kind) == policy.policy_id {
                    return Err(SiteError::ActivePolicyCannotBeDeleted(policy.kind));
                }
                Ok(vec![DomainEvent::PolicyDeleted {
                    site_id,
                    kind: policy.kind,
                    policy_id: policy.policy_id,
                    at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::SiteCreated { site_id, name, at } => {
                self.id = Some(*site_id);
                self.name = name.clone();
                self.created_at = Some(*at);
            }
            DomainEvent::SiteRenamed { name, .. } => self.name = name.clone(),
            DomainEvent::PolicyActivated {
                kind, policy_id, ..
            } => {
                self.active.insert(*kind, *policy_id);
            }
            DomainEvent::PolicyDeleted { policy_id, .. } => {
                self.deleted_policies.insert(*policy_id);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::{
        DO_NOT_DETECT, DO_NOT_RECORD, DO_NOT_RESPOND, RECORD_EVERYONE_WITH_NOTIFICATION,
    };
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    fn own(kind: PolicyKind) -> PolicyFacts {
        PolicyFacts {
            policy_id: POLICY,
            name: "Mine".into(),
            kind,
            site_id: Some(SITE),
        }
    }

    fn activate(policy: PolicyFacts) -> SiteCommand {
        SiteCommand::ActivatePolicy {
            policy,
            detection_logged: BTreeSet::new(),
            response_types: BTreeSet::new(),
            now: T1,
        }
    }

    fn activated(kind: PolicyKind, previous: PolicyId) -> DomainEvent {
        DomainEvent::PolicyActivated {
            site_id: SITE,
            kind,
            policy_id: POLICY,
            policy_name: "Mine".into(),
            previous_policy_id: previous,
            at: T1,
        }
    }

    #[test]
    fn a_site_is_created_once() {
        given([])
            .when(SiteCommand::Create {
                site_id: SITE,
                name: " Head office ".into(),
                now: T0,
            })
            .then([site_created()]);
        given([site_created()])
            .when(SiteCommand::Create {
                site_id: SITE,
                name: "again".into(),
                now: T0,
            })
            .then_err_code(ErrorCode::Conflict);
    }

    #[test]
    fn blank_site_names_are_refused() {
        given([])
            .when(SiteCommand::Create {
                site_id: SITE,
                name: "  ".into(),
                now: T0,
            })
            .then_err(|e| *e == SiteError::InvalidName);
    }

    #[test]
    fn a_site_is_renamed() {
        given([site_created()])
            .when(SiteCommand::Rename {
                name: "Branch".into(),
                now: T1,
            })
            .then([DomainEvent::SiteRenamed {
                site_id: SITE,
                name: "Branch".into(),
                previous_name: "Head office".into(),
                at: T1,
            }]);
    }

    #[test]
    fn a_new_site_has_the_system_defaults_active() {
        let site = given([site_created()]).state::<Site>();
        assert_eq!(site.active_policy(PolicyKind::Recording), DO_NOT_RECORD);
        assert_eq!(
            site.active_policy(PolicyKind::EventDetection),
            DO_NOT_DETECT
        );
        assert_eq!(
            site.active_policy(PolicyKind::EventResponse),
            DO_NOT_RESPOND
        );
    }

    #[test]
    fn activating_a_policy_replaces_the_previous_one() {
        given([site_created()])
            .when(activate(own(PolicyKind::Recording)))
            .then([activated(PolicyKind::Recording, DO_NOT_RECORD)]);
        let site = given([
            site_created(),
            activated(PolicyKind::Recording, DO_NOT_RECORD),
        ])
        .state::<Site>();
        assert_eq!(site.active_policy(PolicyKind::Recording), POLICY);
        assert_eq!(
            site.active_policy(PolicyKind::EventDetection),
            DO_NOT_DETECT
        );
    }

    #[test]
    fn activating_the_active_policy_changes_nothing() {
        given([
            site_created(),
            activated(PolicyKind::Recording, DO_NOT_RECORD),
        ])
        .when(activate(own(PolicyKind::Recording)))
        .then([]);
    }

    #[test]
    fn system_policies_can_be_activated_on_any_site() {
        given([site_created()])
            .when(activate(PolicyFacts {
                policy_id: RECORD_EVERYONE_WITH_NOTIFICATION,
                name: "Record everyone with notification".into(),
                kind: PolicyKind::Recording,
                site_id: None,
            }))
            .then_ok();
    }

    #[test]
    fn policies_of_another_site_cannot_be_activated() {
        let mut foreign = own(PolicyKind::Recording);
        foreign.site_id = Some(Uuid::from_u128(99));
        given([site_created()])
            .when(activate(foreign))
            .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn active_policy_cannot_be_deleted() {
        given([
            site_created(),
            activated(PolicyKind::EventDetection, DO_NOT_DETECT),
        ])
        .when(SiteCommand::DeletePolicy {
            policy: own(PolicyKind::EventDetection),
            now: T2,
        })
        .then_err(|e| *e == SiteError::ActivePolicyCannotBeDeleted(PolicyKind::EventDetection));
    }

    #[test]
    fn inactive_policy_is_deleted_and_cannot_be_activated_afterwards() {
        let deleted = DomainEvent::PolicyDeleted {
            site_id: SITE,
            kind: PolicyKind::Recording,
            policy_id: POLICY,
            at: T2,
        };
        given([site_created()])
            .when(SiteCommand::DeletePolicy {
                policy: own(PolicyKind::Recording),
                now: T2,
            })
            .then([deleted.clone()]);
        given([site_created(), deleted])
            .when(activate(own(PolicyKind::Recording)))
            .then_err(|e| *e == SiteError::PolicyDeleted(POLICY));
    }

    #[test]
    fn system_policies_cannot_be_deleted() {
        given([site_created()])
            .when(SiteCommand::DeletePolicy {
                policy: PolicyFacts {
                    policy_id: RECORD_EVERYONE_WITH_NOTIFICATION,
                    name: "x".into(),
                    kind: PolicyKind::Recording,
                    site_id: None,
                },
                now: T2,
            })
            .then_err(|e| *e == SiteError::SystemPolicy);
    }

    #[test]
    fn response_policy_needing_unlogged_types_cannot_become_active() {
        given([site_created()])
            .when(SiteCommand::ActivatePolicy {
                policy: own(PolicyKind::EventResponse),
                detection_logged: [SessionEventType::AppStart].into_iter().collect(),
                response_types: [SessionEventType::AppStart, SessionEventType::Print]
                    .into_iter()
                    .collect(),
                now: T1,
            })
            .then_err(|e| matches!(e, SiteError::Incompatible(m) if m.contains("PRINT")));
    }

    #[test]
    fn commands_on_a_missing_site_are_not_found() {
        given([])
            .when(SiteCommand::Rename {
                name: "x".into(),
                now: T0,
            })
            .then_err_code(ErrorCode::NotFound);
    }
}
