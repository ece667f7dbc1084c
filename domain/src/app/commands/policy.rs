//! The commands of recording, detection and response policies, and the active policies of a site.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Service};
use crate::model::{
    evaluate, is_system_policy, system_policy, Action, AnyPolicy, DetectionPolicyBody, Policy,
    PolicyBody, PolicyCommand, PolicyDef, PolicyFacts, PolicyId, PolicyKind, Principal,
    RecordingDecision, RecordingPolicyBody, ResponsePolicyBody, SessionAttributes, Site,
    SiteCommand, SiteError, Target,
};

use super::{not_found, Created};

/// The three active policies of a site.
#[derive(Clone, Debug, PartialEq)]
pub struct ActivePolicies {
    pub recording: PolicyDef<RecordingPolicyBody>,
    pub detection: PolicyDef<DetectionPolicyBody>,
    pub response: PolicyDef<ResponsePolicyBody>,
}

pub(super) fn narrow<B>(
    policy: AnyPolicy,
    pick: impl FnOnce(PolicyBody) -> Option<B>,
) -> Result<PolicyDef<B>, AppError> {
    let PolicyDef { id, name, body } = policy;
    let body = pick(body)
        .ok_or_else(|| AppError::Internal(format!("policy {id} is not of the expected kind")))?;
    Ok(PolicyDef { id, name, body })
}

impl Service {
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
}

#[cfg(test)]
mod tests;
