//! The admin log: which events are admin-log entries, in which category,
//! with which action and target. Only ADMIN reads it (`Action::ReadAdminLog`).
//!
//! | category | events |
//! |---|---|
//! | CONFIGURATION | sites, servers (connect, install, settings, disconnect), policies, retention, archive / restore / delete of recordings, legal holds placed and released |
//! | RECORDING_REASON | why a session was or was not recorded (`RecordingStarted`, `RecordingDeclined`) |
//! | PLAYBACK | every play and download |
//! | ACCESS | restrictions, playback permissions (and their one-time migration), tokens, denied attempts (one entry per fact: a coalesced `AccessDeniedRepeated` says how many refusals it stands for) |
//!
//! Session events, detections, responses, comments, liveness and install
//! progress are not admin actions and are not classified. The actor comes
//! from the log envelope.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::DomainEvent;
use super::hold::HoldScope;
use super::policy::RecordingAction;

/// What the admin log filters by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuditCategory {
    Configuration,
    RecordingReason,
    Playback,
    Access,
}

impl fmt::Display for AuditCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuditCategory::Configuration => "CONFIGURATION",
            AuditCategory::RecordingReason => "RECORDING_REASON",
            AuditCategory::Playback => "PLAYBACK",
            AuditCategory::Access => "ACCESS",
        })
    }
}

/// One admin-log entry, as derived from one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    pub category: AuditCategory,
    /// A stable dotted name, e.g. `policy.activated`.
    pub action: &'static str,
    /// `kind:<id>`, e.g. `recording:0190...`.
    pub target: String,
    pub site_id: Option<Uuid>,
    /// A human-readable summary.
    pub detail: String,
}

/// The admin-log entry of `event`, if it is one.
pub fn classify(event: &DomainEvent) -> Option<AuditEntry> {
    use AuditCategory::*;
    use DomainEvent as E;
    let (category, action, target, detail) = match event {
        E::SiteCreated { site_id, name, .. } => (
            Configuration,
            "site.created",
            format!("site:{site_id}"),
            format!("site `{name}` created"),
        ),
        E::SiteRenamed {
            site_id,
            name,
            previous_name,
            ..
        } => (
            Configuration,
            "site.renamed",
            format!("site:{site_id}"),
            format!("site `{previous_name}` renamed to `{name}`"),
        ),
        E::ServerConnected {
            server_id,
            name,
            host,
            ..
        } => (
            Configuration,
            "server.connected",
            format!("server:{server_id}"),
            format!("server `{name}` ({host}) connected"),
        ),
        E::ServerInstallRequested {
            server_id, host, ..
        } => (
            Configuration,
            "server.install_requested",
            format!("server:{server_id}"),
            format!("install requested on {host}"),
        ),
        E::ServerSettingsChanged {
            server_id, version, ..
        } => (
            Configuration,
            "server.settings_changed",
            format!("server:{server_id}"),
            format!("settings version {version}"),
        ),
        E::ServerDisconnected { server_id, .. } => (
            Configuration,
            "server.disconnected",
            format!("server:{server_id}"),
            "server disconnected".into(),
        ),
        E::PolicyCreated {
            policy_id,
            kind,
            name,
            ..
        } => (
            Configuration,
            "policy.created",
            format!("policy:{policy_id}"),
            format!("{kind} policy `{name}` created"),
        ),
        E::PolicyUpdated {
            policy_id,
            kind,
            name,
            ..
        } => (
            Configuration,
            "policy.updated",
            format!("policy:{policy_id}"),
            format!("{kind} policy `{name}` updated"),
        ),
        E::PolicyActivated {
            policy_id,
            kind,
            policy_name,
            ..
        } => (
            Configuration,
            "policy.activated",
            format!("policy:{policy_id}"),
            format!("{kind} policy `{policy_name}` activated"),
        ),
        E::PolicyDeleted {
            policy_id, kind, ..
        } => (
            Configuration,
            "policy.deleted",
            format!("policy:{policy_id}"),
            format!("{kind} policy deleted"),
        ),
        E::RetentionPolicySet {
            site_id, policy, ..
        } => (
            Configuration,
            "retention.set",
            format!("site:{site_id}"),
            format!(
                "archive after {} days, delete after {} days, daily at {} UTC",
                policy
                    .archive_after_days
                    .map_or("never".into(), |d| d.to_string()),
                policy
                    .delete_after_days
                    .map_or("never".into(), |d| d.to_string()),
                policy.run_at
            ),
        ),
        E::RecordingArchived { recording_id, .. } => (
            Configuration,
            "recording.archived",
            format!("recording:{recording_id}"),
            "archived".into(),
        ),
        E::RecordingRestored { recording_id, .. } => (
            Configuration,
            "recording.restored",
            format!("recording:{recording_id}"),
            "restored".into(),
        ),
        E::RecordingDeleted { recording_id, .. } => (
            Configuration,
            "recording.deleted",
            format!("recording:{recording_id}"),
            "deleted".into(),
        ),
        E::RecordingStarted {
            recording_id,
            user,
            decision,
            ..
        }
        | E::RecordingDeclined {
            recording_id,
            user,
            decision,
            ..
        } => (
            RecordingReason,
            if decision.action == RecordingAction::DoNotRecord {
                "recording.declined"
            } else {
                "recording.started"
            },
            format!("recording:{recording_id}"),
            format!(
                "{user}: {:?} by policy `{}`, {}",
                decision.action,
                decision.policy_name,
                decision
                    .rule
                    .as_ref()
                    .map_or("fallback".to_string(), |r| format!("rule `{r}`"))
            ),
        ),
        E::RecordingPlayed {
            recording_id,
            by,
            kind,
            ..
        } => (
            Playback,
            "recording.played",
            format!("recording:{recording_id}"),
            format!("{kind:?} by {by}"),
        ),
        E::RecordingRestricted {
            recording_id,
            reason,
            by,
            ..
        } => (
            Access,
            "recording.restricted",
            format!("recording:{recording_id}"),
            format!("restricted by {by}: {reason}"),
        ),
        E::RecordingRestrictionRemoved {
            recording_id,
            reason,
            by,
            ..
        } => (
            Access,
            "recording.restriction_removed",
            format!("recording:{recording_id}"),
            format!("restriction removed by {by}: {reason}"),
        ),
        E::PlaybackPermissionGranted {
            permission_id,
            principal,
            ..
        } => (
            Access,
            "permission.granted",
            format!("permission:{permission_id}"),
            format!("playback permission granted to {principal}"),
        ),
        E::PlaybackPermissionRevoked {
            permission_id,
            principal,
            ..
        } => (
            Access,
            "permission.revoked",
            format!("permission:{permission_id}"),
            format!("playback permission of {principal} revoked"),
        ),
        E::TokenIssued {
            token_id,
            name,
            role,
            ..
        } => (
            Access,
            "token.issued",
            format!("token:{token_id}"),
            format!("{role} token issued to {name}"),
        ),
        E::TokenRevoked { token_id, name, .. } => (
            Access,
            "token.revoked",
            format!("token:{token_id}"),
            format!("token of {name} revoked"),
        ),
        E::TokenExpirySet {
            token_id,
            expires_at,
            ..
        } => (
            Access,
            "token.expiry_set",
            format!("token:{token_id}"),
            format!("token expires at {}", expires_at.to_rfc3339()),
        ),
        E::TokenRotated {
            token_id,
            new_token_id,
            name,
            role,
            ..
        } => (
            Access,
            "token.rotated",
            format!("token:{token_id}"),
            format!("{role} token of {name} rotated: revoked, replaced by token {new_token_id}"),
        ),
        E::AgentTokenRotated {
            server_id,
            token_id,
            previous_token_id,
            ..
        } => (
            Access,
            "agent_token.rotated",
            format!("server:{server_id}"),
            format!(
                "agent token {previous_token_id} of server {server_id} revoked, replaced by token {token_id}"
            ),
        ),
        E::AccessDenied {
            principal,
            action,
            target,
            ..
        } => (
            Access,
            "access.denied",
            target.clone(),
            format!("{principal} was denied {action}"),
        ),
        E::AccessDeniedRepeated {
            principal,
            action,
            target,
            refused,
            suppressed,
            ..
        } => (
            Access,
            "access.denied",
            target.clone(),
            denied_detail(principal, action, *refused, *suppressed),
        ),
        E::PlaybackPermissionsMigrated {
            permission_ids,
            token_ids,
            ..
        } => (
            Access,
            "permissions.migrated",
            "permissions".into(),
            format!(
                "explicit playback permissions: {} whole-site permissions granted to {} auditor tokens that held none",
                permission_ids.len(),
                token_ids
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            ),
        ),
        E::LogExported {
            to_position,
            events,
            by,
            file_sha256,
            ..
        } => (
            Playback,
            "log.exported",
            format!("log:1..{to_position}"),
            format!("{events} events exported by {by} (file sha256 {file_sha256})"),
        ),
        E::LegalHoldPlaced {
            hold_id,
            scope,
            reason,
            by,
            ..
        } => (
            Configuration,
            "legal_hold.placed",
            format!("legal-hold:{hold_id}"),
            format!(
                "legal hold on {} placed by {by}: {reason}",
                scope_summary(scope)
            ),
        ),
        E::LegalHoldReleased {
            hold_id,
            scope,
            reason,
            by,
            ..
        } => (
            Configuration,
            "legal_hold.released",
            format!("legal-hold:{hold_id}"),
            match reason {
                Some(reason) => format!(
                    "legal hold on {} released by {by}: {reason}",
                    scope_summary(scope)
                ),
                None => format!("legal hold on {} released by {by}", scope_summary(scope)),
            },
        ),
        E::BackupTaken {
            to_position,
            keys,
            chunks,
            by,
            file_sha256,
            ..
        } => (
            Playback,
            "log.backed_up",
            format!("log:1..{to_position}"),
            format!(
                "backup by {by}: the log up to {to_position}, {chunks} content chunks, {keys} recording keys (file sha256 {file_sha256})"
            ),
        ),
        E::InstallProgressReported { .. }
        | E::ServerWentOffline { .. }
        | E::ServerCameOnline { .. }
        | E::SessionEventRecorded { .. }
        | E::SessionEventSealed { .. }
        | E::EventDetected { .. }
        | E::EventDetectedSealed { .. }
        | E::ResponseTriggered { .. }
        | E::ResponseDelivered { .. }
        | E::RecordingEnded { .. }
        | E::CommentAdded { .. }
        | E::CommentDeleted { .. }
        | E::ContentChunkStored { .. }
        | E::ContentTypeDeclared { .. }
        | E::RetentionRunCompleted { .. }
        | E::RetentionRunCompletedV2 { .. }
        | E::RecordingPartAssigned { .. } => return None,
    };
    Some(AuditEntry {
        category,
        action,
        target,
        site_id: event.site_id(),
        detail,
    })
}

/// What a legal hold covers, in a few words (ids are in the event).
fn scope_summary(scope: &HoldScope) -> String {
    match scope {
        HoldScope::Recordings { recording_ids } if recording_ids.len() == 1 => {
            format!("recording {}", recording_ids[0])
        }
        HoldScope::Recordings { recording_ids } => format!("{} recordings", recording_ids.len()),
        HoldScope::Users { users } => format!("the recordings of {}", users.join(", ")),
        HoldScope::Site => "every recording of the site".into(),
    }
}

/// The summary of a coalesced refusal fact.
fn denied_detail(principal: &str, action: &str, refused: u32, suppressed: u64) -> String {
    let mut detail = format!("{principal} was denied {action}");
    if refused > 1 {
        detail.push_str(&format!(" and {} more in the same request", refused - 1));
    }
    if suppressed > 0 {
        detail.push_str(&format!(
            "; {suppressed} earlier refusals over the rate limit were not written down"
        ));
    }
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::PolicyKind;
    use crate::model::recording::PlaybackKind;
    use crate::model::testing::fixtures::*;

    fn category(event: &DomainEvent) -> Option<AuditCategory> {
        classify(event).map(|e| e.category)
    }

    #[test]
    fn configuration_changes_are_configuration() {
        let activated = DomainEvent::PolicyActivated {
            site_id: SITE,
            kind: PolicyKind::Recording,
            policy_id: POLICY,
            policy_name: "p".into(),
            previous_policy_id: POLICY,
            at: T0,
        };
        let entry = classify(&activated).expect("entry");
        assert_eq!(entry.category, AuditCategory::Configuration);
        assert_eq!(entry.action, "policy.activated");
        assert_eq!(entry.target, format!("policy:{POLICY}"));
        assert_eq!(entry.site_id, Some(SITE));
        assert_eq!(
            category(&server_connected()),
            Some(AuditCategory::Configuration)
        );
    }

    #[test]
    fn why_a_session_was_recorded_is_the_recording_reason() {
        let entry = classify(&started_event(RECORDING, T0)).expect("entry");
        assert_eq!(entry.category, AuditCategory::RecordingReason);
        assert!(entry.detail.contains("rule `Everyone`"), "{}", entry.detail);
    }

    #[test]
    fn every_play_is_playback() {
        let played = DomainEvent::RecordingPlayed {
            recording_id: RECORDING,
            site_id: SITE,
            by: "ann".into(),
            kind: PlaybackKind::Download,
            at: T0,
        };
        assert_eq!(category(&played), Some(AuditCategory::Playback));
    }

    #[test]
    fn denied_attempts_and_tokens_are_access() {
        let denied = DomainEvent::AccessDenied {
            principal: "eve".into(),
            token_id: None,
            role: None,
            action: "MANAGE_TOKENS".into(),
            target: "global".into(),
            site_id: None,
            at: T0,
        };
        assert_eq!(category(&denied), Some(AuditCategory::Access));
        let coalesced = DomainEvent::AccessDeniedRepeated {
            principal: "eve".into(),
            token_id: None,
            role: None,
            action: "VIEW_RECORDING".into(),
            target: "recordings".into(),
            site_id: None,
            refused: 1000,
            suppressed: 3,
            at: T0,
        };
        let entry = classify(&coalesced).expect("an entry");
        assert_eq!(entry.category, AuditCategory::Access);
        assert_eq!(entry.action, "access.denied");
        assert!(entry.detail.contains("999 more"), "{}", entry.detail);
        assert!(entry.detail.contains("3 earlier"), "{}", entry.detail);
        let revoked = DomainEvent::TokenRevoked {
            token_id: TOKEN,
            name: "ann".into(),
            at: T0,
        };
        assert_eq!(category(&revoked), Some(AuditCategory::Access));
    }

    #[test]
    fn legal_holds_are_configuration_with_their_reason() {
        let placed = DomainEvent::LegalHoldPlaced {
            hold_id: COMMENT,
            site_id: SITE,
            scope: HoldScope::Users {
                users: vec!["CORP\\ann".into()],
            },
            reason: "Case 17".into(),
            by: "root".into(),
            at: T0,
        };
        let entry = classify(&placed).expect("an entry");
        assert_eq!(entry.category, AuditCategory::Configuration);
        assert_eq!(entry.action, "legal_hold.placed");
        assert_eq!(entry.target, format!("legal-hold:{COMMENT}"));
        assert_eq!(entry.site_id, Some(SITE));
        assert!(entry.detail.contains("Case 17"), "{}", entry.detail);
        let released = DomainEvent::LegalHoldReleased {
            hold_id: COMMENT,
            site_id: SITE,
            scope: HoldScope::Site,
            reason: Some("closed".into()),
            by: "root".into(),
            at: T1,
        };
        let entry = classify(&released).expect("an entry");
        assert_eq!(entry.action, "legal_hold.released");
        assert!(entry.detail.contains("closed"), "{}", entry.detail);
    }

    #[test]
    fn session_activity_is_not_an_admin_action() {
        assert_eq!(
            category(&recorded(RECORDING, app_start("cmd.exe", 1))),
            None
        );
        assert_eq!(
            category(&detected(RECORDING, crate::model::policy::Severity::Low)),
            None
        );
    }
}
