//! One-time migrations of the log's meaning, each recorded as a fact on
//! its own stream `migration-<name>` (appended with `NoStream`, so it runs
//! once however often or however concurrently `srs serve` starts).
//!
//! # Explicit playback permissions ([`EXPLICIT_GRANTS_STREAM`])
//!
//! Before this rule an AUDITOR without any playback permission on a site
//! saw every unrestricted recording of it; now it sees only what its
//! permissions grant (`model::permission`). So that nobody gains or loses
//! access when a log written under the old rule is served by the new one,
//! the first start gives every live AUDITOR token a whole-site permission
//! on each site where it held none and so saw the whole site: the sites
//! of its scope, or every site that exists then when it is scoped to all
//! sites. Auditors that held permissions on a site keep exactly those.
//! The grants name the token itself (`token:<id>`, see
//! [`super::token_principal`]), so they reach no other token, even one of
//! the same name; their ids are derived from token and site, so a start
//! interrupted half-way and run again grants nothing twice. Then
//! [`DomainEvent::PlaybackPermissionsMigrated`] lists what was granted,
//! and marks the log as migrated: it is written on a new, empty log too, so
//! that an auditor issued later under the new rule is never taken for an
//! old one.
//!
//! Choices where the old rule is not a guide: an unscoped auditor gets
//! grants for the sites that exist at the migration; a site created later
//! is not granted to it (the old rule would have shown it). Revoked tokens
//! get nothing. The grants and the marker are written by the actor
//! `system:migration` and appear in the audit trail as
//! `permission.granted` and `permissions.migrated`.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::aggregate::{derived_id, Aggregate};
use super::event::DomainEvent;
use super::permission::{grants_for, PermissionId, PlaybackPermission};
use super::token::{Role, Token, TokenId};
use crate::time::Timestamp;

/// The stream of the explicit-permissions migration's marker.
pub const EXPLICIT_GRANTS_STREAM: &str = "migration-explicit-playback-permissions";

/// The actor component of migration facts (`system:migration`).
pub const MIGRATION_ACTOR: &str = "migration";

/// One whole-site permission the migration issues.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct WholeSiteGrant {
    pub permission_id: PermissionId,
    pub token_id: TokenId,
    pub site_id: Uuid,
}

/// The id of the migration's whole-site permission of `token_id` on
/// `site_id`: derived, so a rerun finds it instead of granting again.
pub fn whole_site_grant_id(token_id: TokenId, site_id: Uuid) -> PermissionId {
    derived_id(
        "srs:migration-whole-site-grant",
        &[token_id.as_bytes(), site_id.as_bytes()],
    )
}

/// What the old rule showed and the new one would not: the state of the
/// tokens, sites and permissions folded from a log written under the old
/// rule.
#[derive(Clone, Debug, Default)]
pub struct OldAccess {
    pub tokens: BTreeMap<TokenId, Token>,
    pub sites: BTreeSet<Uuid>,
    pub permissions: BTreeMap<PermissionId, PlaybackPermission>,
}

impl OldAccess {
    /// Folds one event in; events about anything else are ignored.
    pub fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::SiteCreated { site_id, .. } => {
                self.sites.insert(*site_id);
            }
            DomainEvent::TokenIssued { token_id, .. }
            | DomainEvent::TokenRevoked { token_id, .. } => {
                self.tokens.entry(*token_id).or_default().evolve(event);
            }
            DomainEvent::PlaybackPermissionGranted { permission_id, .. }
            | DomainEvent::PlaybackPermissionRevoked { permission_id, .. } => {
                self.permissions
                    .entry(*permission_id)
                    .or_default()
                    .evolve(event);
            }
            _ => {}
        }
    }

    /// The whole-site grants that keep every live AUDITOR seeing what the
    /// old rule showed it: one per token and site in its scope on which it
    /// holds no permission (module docs). Ordered by token, then site.
    /// A token that has expired by `now` authenticates nobody and gets none.
    pub fn whole_site_grants(&self, now: Timestamp) -> Vec<WholeSiteGrant> {
        let mut out = Vec::new();
        for token in self.tokens.values() {
            let Some(principal) = token.principal(now) else {
                continue;
            };
            if principal.role != Role::Auditor {
                continue;
            }
            for &site_id in &self.sites {
                if !principal.covers_site(site_id) {
                    continue;
                }
                if grants_for(&principal, site_id, self.permissions.values()).is_empty() {
                    out.push(WholeSiteGrant {
                        permission_id: whole_site_grant_id(principal.token_id, site_id),
                        token_id: principal.token_id,
                        site_id,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::model::permission::{token_principal, PlaybackScope, RecordingFacts};
    use crate::model::testing::fixtures::*;
    use crate::model::token::{can_view_recording, Principal};

    const SITE_B: Uuid = Uuid::from_u128(0xb);

    fn issued(n: u128, name: &str, role: Role, sites: &[Uuid], groups: &[&str]) -> DomainEvent {
        DomainEvent::TokenIssued {
            token_id: Uuid::from_u128(n),
            name: name.into(),
            role,
            site_ids: sites.iter().copied().collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            secret_sha256: CREDENTIAL.into(),
            at: T0,
        }
    }

    fn site(id: Uuid) -> DomainEvent {
        DomainEvent::SiteCreated {
            site_id: id,
            name: format!("{id}"),
            at: T0,
        }
    }

    fn granted(n: u128, site_id: Uuid, principal: &str, scope: PlaybackScope) -> DomainEvent {
        DomainEvent::PlaybackPermissionGranted {
            permission_id: Uuid::from_u128(n),
            site_id,
            principal: principal.into(),
            scope,
            at: T0,
        }
    }

    fn fold(events: &[DomainEvent]) -> OldAccess {
        let mut access = OldAccess::default();
        for e in events {
            access.apply(e);
        }
        access
    }

    /// The rule this migration replaces: no grant on the site, the whole site.
    fn old_rule_sees(p: &Principal, r: &RecordingFacts, grants: &[PlaybackScope]) -> bool {
        if grants.is_empty() {
            can_view_recording(p, r, &[PlaybackScope::whole_site()])
        } else {
            can_view_recording(p, r, grants)
        }
    }

    #[test]
    fn auditors_without_a_grant_get_the_whole_site_and_the_others_keep_theirs() {
        let narrow = PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        };
        let log = vec![
            site(SITE),
            site(SITE_B),
            issued(1, "wide", Role::Auditor, &[], &[]),
            issued(2, "narrow", Role::Auditor, &[SITE], &[]),
            issued(
                3,
                "grouped",
                Role::Auditor,
                &[SITE, SITE_B],
                &["CORP\\Audit"],
            ),
            issued(4, "player", Role::PrivilegedPlayer, &[], &[]),
            issued(5, "gone", Role::Auditor, &[], &[]),
            DomainEvent::TokenRevoked {
                token_id: Uuid::from_u128(5),
                name: "gone".into(),
                at: T0,
            },
            granted(10, SITE, "narrow", narrow.clone()),
            granted(11, SITE_B, "CORP\\Audit", narrow.clone()),
        ];
        let plan = fold(&log).whole_site_grants(Timestamp::now());
        let pairs: BTreeSet<(u128, Uuid)> = plan
            .iter()
            .map(|g| (g.token_id.as_u128(), g.site_id))
            .collect();
        assert_eq!(
            pairs,
            BTreeSet::from([(1, SITE), (1, SITE_B), (3, SITE)]),
            "{plan:?}"
        );
        assert!(plan
            .iter()
            .all(|g| g.permission_id == whole_site_grant_id(g.token_id, g.site_id)));
    }

    #[test]
    fn after_the_migration_everyone_sees_under_the_new_rule_what_the_old_one_showed() {
        let narrow = PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        };
        let mut log = vec![
            site(SITE),
            site(SITE_B),
            issued(1, "ann", Role::Auditor, &[], &[]),
            // A twin by name, narrowed: must not be widened by ann's grant.
            issued(2, "ann", Role::Auditor, &[SITE], &["CORP\\Audit"]),
            issued(3, "CORP\\ann", Role::Auditor, &[SITE_B], &[]),
            granted(10, SITE, "CORP\\Audit", narrow),
        ];
        let before = fold(&log);
        for g in before.whole_site_grants(Timestamp::now()) {
            log.push(DomainEvent::PlaybackPermissionGranted {
                permission_id: g.permission_id,
                site_id: g.site_id,
                principal: token_principal(g.token_id),
                scope: PlaybackScope::whole_site(),
                at: T1,
            });
        }
        let after = fold(&log);
        assert!(
            after.whole_site_grants(Timestamp::now()).is_empty(),
            "nothing left to do"
        );
        let users = ["alice@corp.example.com", "CORP\\bob"];
        for token in before.tokens.values() {
            let p = token.principal(Timestamp::now()).unwrap();
            for &site_id in &before.sites {
                for user in users {
                    let r = RecordingFacts {
                        site_id,
                        user: user.into(),
                        ..recording_facts()
                    };
                    let old = old_rule_sees(
                        &p,
                        &r,
                        &grants_for(&p, site_id, before.permissions.values()),
                    );
                    let new = can_view_recording(
                        &p,
                        &r,
                        &grants_for(&p, site_id, after.permissions.values()),
                    );
                    assert_eq!(old, new, "{} on {site_id} for {user}", p.name);
                }
            }
        }
    }

    #[test]
    fn a_new_log_needs_nothing() {
        assert!(OldAccess::default()
            .whole_site_grants(Timestamp::now())
            .is_empty());
    }
}
