//! Policies (all, and the active one of each kind per site) and each
//! site's retention policy.
//!
//! | key | value |
//! |---|---|
//! | `p/` id | [`PolicyRow`] |
//! | `ps/` site, kind, id | - (a site's policies) |
//! | `a/` site, kind | the active policy id (16 bytes) |
//! | `ret/` site | [`RetentionRow`] |
//!
//! System policies are not events; they are listed from the domain's
//! definitions, and a kind with no activation has the system default active.

use serde::{Deserialize, Serialize};
use srs_domain::log::Envelope;
use srs_domain::model::{
    default_policy, system_policies, DomainEvent, PolicyBody, PolicyId, PolicyKind, RetentionPolicy,
};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{get, TreeRef};
use crate::codec::{self, Key};
use crate::engine::{Overlay, Projection};
use crate::error::{ProjectionError, Result};
use crate::store::Keyspace;

/// A policy as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PolicyRow {
    pub id: PolicyId,
    /// `None` for system policies.
    pub site_id: Option<Uuid>,
    pub kind: PolicyKind,
    pub name: String,
    pub body: PolicyBody,
    pub system: bool,
    /// The policy stream's version (the API's `expectedVersion`); 0 for
    /// system policies.
    pub version: u64,
    pub created_at: Option<Timestamp>,
    pub updated_at: Option<Timestamp>,
    pub deleted: bool,
}

/// A site's retention policy and its last run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRow {
    pub site_id: Uuid,
    pub policy: RetentionPolicy,
    pub set_at: Timestamp,
    pub last_run: Option<RetentionRun>,
}

/// What a retention run did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionRun {
    pub ran_at: Timestamp,
    pub archived: u64,
    pub deleted: u64,
    /// Due for deletion but kept by a legal hold (0 for runs recorded
    /// before legal holds, `RetentionRunCompleted`).
    pub held: u64,
}

/// The policies of one kind on one site.
#[derive(Clone, Debug, PartialEq)]
pub struct KindPolicies {
    /// System policies first, then the site's (not deleted), by name.
    pub all: Vec<PolicyRow>,
    pub active: PolicyRow,
}

/// A site's policies (API `SitePolicies`).
#[derive(Clone, Debug, PartialEq)]
pub struct SitePolicies {
    pub recording: KindPolicies,
    pub event_detection: KindPolicies,
    pub event_response: KindPolicies,
}

fn kind_code(kind: PolicyKind) -> u8 {
    match kind {
        PolicyKind::Recording => 0,
        PolicyKind::EventDetection => 1,
        PolicyKind::EventResponse => 2,
    }
}

fn policy_key(id: PolicyId) -> Vec<u8> {
    Key::new(b"p/").uuid(id).build()
}

fn site_policy_key(site: Uuid, kind: PolicyKind, id: PolicyId) -> Vec<u8> {
    Key::new(b"ps/")
        .uuid(site)
        .u8(kind_code(kind))
        .uuid(id)
        .build()
}

fn active_key(site: Uuid, kind: PolicyKind) -> Vec<u8> {
    Key::new(b"a/").uuid(site).u8(kind_code(kind)).build()
}

fn retention_key(site: Uuid) -> Vec<u8> {
    Key::new(b"ret/").uuid(site).build()
}

/// The projection that maintains [`Policies`].
pub struct PoliciesProjection;

impl PoliciesProjection {
    pub const NAME: &'static str = "policies";
}

impl Projection<DomainEvent> for PoliciesProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: a retention run's row counts what legal holds kept (`held`).
        2
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        use DomainEvent as E;
        match &e.payload {
            E::PolicyCreated {
                policy_id,
                site_id,
                kind,
                name,
                body,
                at,
            } => {
                w.insert(site_policy_key(*site_id, *kind, *policy_id), Vec::new())?;
                w.put_value(
                    policy_key(*policy_id),
                    &PolicyRow {
                        id: *policy_id,
                        site_id: Some(*site_id),
                        kind: *kind,
                        name: name.clone(),
                        body: body.clone(),
                        system: false,
                        version: e.version,
                        created_at: Some(*at),
                        updated_at: Some(*at),
                        deleted: false,
                    },
                )
            }
            E::PolicyUpdated {
                policy_id,
                name,
                body,
                at,
                ..
            } => {
                let mut row: PolicyRow =
                    w.get_value(&policy_key(*policy_id))?.ok_or_else(|| {
                        ProjectionError::Invariant(format!("update of unknown policy {policy_id}"))
                    })?;
                row.name = name.clone();
                row.body = body.clone();
                row.version = e.version;
                row.updated_at = Some(*at);
                w.put_value(policy_key(*policy_id), &row)
            }
            E::PolicyActivated {
                site_id,
                kind,
                policy_id,
                ..
            } => w.insert(active_key(*site_id, *kind), policy_id.as_bytes().to_vec()),
            E::PolicyDeleted {
                site_id,
                kind,
                policy_id,
                ..
            } => {
                w.remove(site_policy_key(*site_id, *kind, *policy_id))?;
                if let Some(mut row) = w.get_value::<PolicyRow>(&policy_key(*policy_id))? {
                    row.deleted = true;
                    w.put_value(policy_key(*policy_id), &row)?;
                }
                Ok(())
            }
            E::RetentionPolicySet {
                site_id,
                policy,
                at,
            } => {
                let last_run = w
                    .get_value::<RetentionRow>(&retention_key(*site_id))?
                    .and_then(|r| r.last_run);
                w.put_value(
                    retention_key(*site_id),
                    &RetentionRow {
                        site_id: *site_id,
                        policy: policy.clone(),
                        set_at: *at,
                        last_run,
                    },
                )
            }
            E::RetentionRunCompleted {
                site_id,
                archived,
                deleted,
                ran_at,
            } => self.run(w, *site_id, *ran_at, *archived, *deleted, 0),
            E::RetentionRunCompletedV2 {
                site_id,
                archived,
                deleted,
                held,
                ran_at,
            } => self.run(w, *site_id, *ran_at, *archived, *deleted, *held),
            _ => Ok(()),
        }
    }
}

impl PoliciesProjection {
    /// Records a site's last retention run.
    fn run(
        &self,
        w: &mut Overlay,
        site_id: Uuid,
        ran_at: Timestamp,
        archived: u64,
        deleted: u64,
        held: u64,
    ) -> Result<()> {
        if let Some(mut row) = w.get_value::<RetentionRow>(&retention_key(site_id))? {
            row.last_run = Some(RetentionRun {
                ran_at,
                archived,
                deleted,
                held,
            });
            w.put_value(retention_key(site_id), &row)?;
        }
        Ok(())
    }
}

fn system_rows(kind: PolicyKind) -> Vec<PolicyRow> {
    system_policies(kind)
        .into_iter()
        .map(|p| PolicyRow {
            id: p.id,
            site_id: None,
            kind,
            name: p.name,
            body: p.body,
            system: true,
            version: 0,
            created_at: None,
            updated_at: None,
            deleted: false,
        })
        .collect()
}

/// Queries over policies and retention.
#[derive(Clone, Debug)]
pub struct Policies {
    tree: TreeRef,
}

impl Policies {
    pub fn new(tree: TreeRef) -> Self {
        Policies { tree }
    }

    /// One policy, system or site-owned (deleted ones too, flagged).
    pub fn policy(&self, id: PolicyId) -> Result<Option<PolicyRow>> {
        if let Some(row) = get(&self.tree, &policy_key(id))? {
            return Ok(Some(row));
        }
        Ok([
            PolicyKind::Recording,
            PolicyKind::EventDetection,
            PolicyKind::EventResponse,
        ]
        .into_iter()
        .flat_map(system_rows)
        .find(|p| p.id == id))
    }

    /// The id of the site's active policy of `kind` (the system default
    /// until one is activated).
    pub fn active_id(&self, site: Uuid, kind: PolicyKind) -> Result<PolicyId> {
        Ok(self
            .tree
            .get(active_key(site, kind))?
            .and_then(|v| codec::uuid_from_key(&v))
            .unwrap_or_else(|| default_policy(kind)))
    }

    /// The site's policies of one kind with the active one.
    pub fn of_kind(&self, site: Uuid, kind: PolicyKind) -> Result<KindPolicies> {
        let mut all = system_rows(kind);
        let mut own = Vec::new();
        let prefix = Key::new(b"ps/").uuid(site).u8(kind_code(kind)).build();
        for kv in self.tree.scan_prefix(&prefix) {
            let (k, _) = kv?;
            if let Some(row) =
                get::<PolicyRow>(&self.tree, &policy_key(super::util::trailing_uuid(&k)?))?
            {
                own.push(row);
            }
        }
        own.sort_by(|a, b| {
            a.name
                .to_lowercase()
                .cmp(&b.name.to_lowercase())
                .then(a.id.cmp(&b.id))
        });
        all.extend(own);
        let active_id = self.active_id(site, kind)?;
        let active = match all.iter().find(|p| p.id == active_id) {
            Some(p) => p.clone(),
            None => self.policy(active_id)?.ok_or_else(|| {
                ProjectionError::Invariant(format!("active policy {active_id} is unknown"))
            })?,
        };
        Ok(KindPolicies { all, active })
    }

    /// All three kinds of a site (API `policies(siteId)`).
    pub fn site(&self, site: Uuid) -> Result<SitePolicies> {
        Ok(SitePolicies {
            recording: self.of_kind(site, PolicyKind::Recording)?,
            event_detection: self.of_kind(site, PolicyKind::EventDetection)?,
            event_response: self.of_kind(site, PolicyKind::EventResponse)?,
        })
    }

    /// The site's retention policy, if one was set.
    pub fn retention(&self, site: Uuid) -> Result<Option<RetentionRow>> {
        get(&self.tree, &retention_key(site))
    }

    /// Every site's retention policy.
    pub fn retentions(&self) -> Result<Vec<RetentionRow>> {
        super::util::values(&self.tree, b"ret/")
    }
}
