//! Policies as they read back: each kind's content in the shape of its
//! input (`RecordingPolicyInput`, `EventDetectionPolicyInput`,
//! `EventResponsePolicyInput`), field for field, so a client reads a
//! policy, changes what it wants and sends the object back to
//! `updatePolicy` (or a `create*Policy`) as it is. Sending a policy back
//! unchanged stores an equal policy.
//!
//! An event response rule is stored as triggers (a session start, detected
//! events of some types from a severity up) and actions that carry their
//! data (an e-mail alert its recipients, a lock its message); the input
//! names these flat (`onSessionStart`, `types`, `minSeverity`,
//! `recipients`, `message`), and so does the read form.

use async_graphql::SimpleObject;
use srs_domain::model as dm;

use super::convert::int;
use super::enums::{RecordingAction, ResponseAction, SessionEventType, Severity};

/// A policy's content, in the shape of `PolicyUpdateInput`: exactly the
/// member of the policy's kind is set. Send it back as `updatePolicy`'s
/// `input` (changed or not).
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PolicyDefinition {
    /// A RECORDING policy's content (as `RecordingPolicyInput`).
    pub recording: Option<RecordingPolicyDefinition>,
    /// An EVENT_DETECTION policy's content (as `EventDetectionPolicyInput`).
    pub event_detection: Option<EventDetectionPolicyDefinition>,
    /// An EVENT_RESPONSE policy's content (as `EventResponsePolicyInput`).
    pub event_response: Option<EventResponsePolicyDefinition>,
}

impl PolicyDefinition {
    /// The definition of a policy named `name` with content `body`.
    pub fn new(name: &str, body: &dm::PolicyBody) -> Self {
        match body {
            dm::PolicyBody::Recording(body) => PolicyDefinition {
                recording: Some(RecordingPolicyDefinition::new(name, body)),
                ..Self::default()
            },
            dm::PolicyBody::EventDetection(body) => PolicyDefinition {
                event_detection: Some(EventDetectionPolicyDefinition::new(name, body)),
                ..Self::default()
            },
            dm::PolicyBody::EventResponse(body) => PolicyDefinition {
                event_response: Some(EventResponsePolicyDefinition::new(name, body)),
                ..Self::default()
            },
        }
    }
}

/// A recording policy, as `RecordingPolicyInput`: ordered rules, the first
/// rule that matches a session decides; else the fallback.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordingPolicyDefinition {
    /// The policy's name.
    pub name: String,
    /// The rules, in the order they are tried.
    pub rules: Vec<RecordingRule>,
    /// What happens to sessions no rule matches.
    pub fallback: RecordingAction,
    /// Whether the fallback notifies the user.
    pub fallback_notify: bool,
}

impl RecordingPolicyDefinition {
    fn new(name: &str, body: &dm::RecordingPolicyBody) -> Self {
        RecordingPolicyDefinition {
            name: name.to_owned(),
            rules: body
                .rules
                .iter()
                .map(|r| RecordingRule {
                    name: r.name.clone(),
                    action: r.action.into(),
                    notify: r.notify,
                    lossy: r.lossy,
                    audio: r.audio,
                    users: r.criteria.users.clone(),
                    groups: r.criteria.groups.clone(),
                    applications: r.criteria.applications.clone(),
                    delivery_groups: r.criteria.delivery_groups.clone(),
                    hosts: r.criteria.hosts.clone(),
                    client_ip_ranges: r.criteria.client_ip_ranges.clone(),
                })
                .collect(),
            fallback: body.fallback.into(),
            fallback_notify: body.fallback_notify,
        }
    }
}

/// One rule of a recording policy, as `RecordingRuleInput`. Its criteria
/// combine with AND; an empty list matches any session; names compare
/// ignoring case and take `*` / `?` globs.
#[derive(SimpleObject, Clone, Debug)]
pub struct RecordingRule {
    /// The rule's name, unique within the policy.
    pub name: String,
    /// What the rule does with a matching session.
    pub action: RecordingAction,
    /// Whether the recorded user is notified.
    pub notify: bool,
    /// Lossy (smaller) screen recording.
    pub lossy: bool,
    /// Whether audio is recorded.
    pub audio: bool,
    /// Users (`DOMAIN\user` or `user@domain`); with `groups`, either may match.
    pub users: Vec<String>,
    /// The users' groups; with `users`, either may match.
    pub groups: Vec<String>,
    /// Published applications or desktops.
    pub applications: Vec<String>,
    /// Delivery groups.
    pub delivery_groups: Vec<String>,
    /// VDA machines.
    pub hosts: Vec<String>,
    /// Client addresses: single IPs or CIDR ranges, as stored (canonical,
    /// e.g. `10.1.0.0/16`).
    pub client_ip_ranges: Vec<String>,
}

/// An event detection policy, as `EventDetectionPolicyInput`.
#[derive(SimpleObject, Clone, Debug)]
pub struct EventDetectionPolicyDefinition {
    /// The policy's name.
    pub name: String,
    /// The session event types it logs, in the enum's order.
    pub logged: Vec<SessionEventType>,
    /// The detection rules.
    pub rules: Vec<DetectionRule>,
    /// Application globs whose start, end and failure are watched.
    pub monitored_apps: Vec<String>,
}

impl EventDetectionPolicyDefinition {
    fn new(name: &str, body: &dm::DetectionPolicyBody) -> Self {
        EventDetectionPolicyDefinition {
            name: name.to_owned(),
            logged: body.logged.iter().map(|t| (*t).into()).collect(),
            rules: body
                .rules
                .iter()
                .map(|r| DetectionRule {
                    event_type: r.event_type.into(),
                    severity: r.severity.into(),
                    patterns: r.patterns.clone(),
                    idle_seconds: r.idle_seconds.map(int),
                    name: r.name.clone(),
                    users: r.scope.users.clone(),
                    groups: r.scope.groups.clone(),
                    hosts: r.scope.hosts.clone(),
                })
                .collect(),
            monitored_apps: body.monitored_apps.clone(),
        }
    }
}

/// One detection rule, as `DetectionRuleInput`.
#[derive(SimpleObject, Clone, Debug)]
pub struct DetectionRule {
    /// The session event type it applies to.
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// The severity of what it detects.
    pub severity: Severity,
    /// Globs on the type's main field (app, URL host, path, device, ...);
    /// empty: any.
    pub patterns: Vec<String>,
    /// For IDLE: only idle spells at least this long (seconds).
    pub idle_seconds: Option<i32>,
    /// The name detections show; `null`: the type's name.
    pub name: Option<String>,
    /// Only sessions of these users; empty: anyone.
    pub users: Vec<String>,
    /// Only sessions of users in these groups; empty: anyone.
    pub groups: Vec<String>,
    /// Only sessions on these VDA machines; empty: any.
    pub hosts: Vec<String>,
}

/// An event response policy, as `EventResponsePolicyInput`.
#[derive(SimpleObject, Clone, Debug)]
pub struct EventResponsePolicyDefinition {
    /// The policy's name.
    pub name: String,
    /// The response rules.
    pub rules: Vec<ResponseRule>,
}

impl EventResponsePolicyDefinition {
    fn new(name: &str, body: &dm::ResponsePolicyBody) -> Self {
        EventResponsePolicyDefinition {
            name: name.to_owned(),
            rules: body.rules.iter().map(ResponseRule::new).collect(),
        }
    }
}

/// One event response rule, as `ResponseRuleInput`: what fires it and the
/// actions it takes.
#[derive(SimpleObject, Clone, Debug)]
pub struct ResponseRule {
    /// The rule's name, unique within the policy.
    pub name: String,
    /// Whether a session start fires it (besides detected events).
    pub on_session_start: bool,
    /// Detected event types that fire it; empty with `onSessionStart`:
    /// none (the session start only); empty without it: any type.
    pub types: Vec<SessionEventType>,
    /// The least severity of a detection that fires it.
    pub min_severity: Severity,
    /// Only sessions of these users; empty: anyone.
    pub users: Vec<String>,
    /// Only sessions on these VDA machines; empty: any.
    pub hosts: Vec<String>,
    /// What it does, each action once.
    pub actions: Vec<ResponseAction>,
    /// EMAIL_ALERT's recipients (empty without that action).
    pub recipients: Vec<String>,
    /// LOCK_SESSION's message (`null` without that action).
    pub message: Option<String>,
    /// Minimum seconds between two firings on one session.
    pub cooldown_sec: i32,
}

impl ResponseRule {
    fn new(rule: &dm::ResponseRule) -> Self {
        let mut on_session_start = false;
        let mut types = Vec::new();
        let mut min_severity: Option<dm::Severity> = None;
        for trigger in &rule.triggers {
            match &trigger.on {
                dm::TriggerOn::SessionStart => on_session_start = true,
                dm::TriggerOn::Detection {
                    types: these,
                    min_severity: least,
                } => {
                    types.extend(these.iter().copied());
                    min_severity = Some(min_severity.map_or(*least, |m| m.min(*least)));
                }
            }
        }
        types.sort();
        types.dedup();
        // The input gives every trigger the same scope.
        let scope = rule
            .triggers
            .first()
            .map(|t| t.scope.clone())
            .unwrap_or_default();
        let mut recipients = Vec::new();
        let mut message = None;
        for action in &rule.actions {
            match action {
                dm::ResponseAction::EmailAlert { recipients: r } => recipients.clone_from(r),
                dm::ResponseAction::LockSession { message: m } => message = Some(m.clone()),
                _ => {}
            }
        }
        ResponseRule {
            name: rule.name.clone(),
            on_session_start,
            types: types.into_iter().map(Into::into).collect(),
            min_severity: min_severity.unwrap_or(dm::Severity::Info).into(),
            users: scope.users,
            hosts: scope.hosts,
            actions: rule.actions.iter().map(|a| a.kind().into()).collect(),
            recipients,
            message,
            cooldown_sec: int(u64::from(rule.cooldown_sec)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use async_graphql::parser::types::{TypeKind, TypeSystemDefinition};

    /// Each read type has exactly its input's fields, so what a client
    /// reads it can send back: a field added to an input must be added to
    /// its read type (and the other way round).
    #[test]
    fn policy_read_types_have_exactly_their_inputs_fields() {
        let sdl = crate::graphql::sdl();
        let document = async_graphql::parser::parse_schema(&sdl).unwrap();
        let mut fields: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for definition in &document.definitions {
            let TypeSystemDefinition::Type(ty) = definition else {
                continue;
            };
            let names: BTreeSet<String> = match &ty.node.kind {
                TypeKind::Object(o) => o
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                TypeKind::InputObject(i) => i
                    .fields
                    .iter()
                    .map(|f| f.node.name.node.to_string())
                    .collect(),
                _ => continue,
            };
            fields.insert(ty.node.name.node.to_string(), names);
        }
        for (input, read) in [
            ("PolicyUpdateInput", "PolicyDefinition"),
            ("RecordingPolicyInput", "RecordingPolicyDefinition"),
            ("RecordingRuleInput", "RecordingRule"),
            (
                "EventDetectionPolicyInput",
                "EventDetectionPolicyDefinition",
            ),
            ("DetectionRuleInput", "DetectionRule"),
            ("EventResponsePolicyInput", "EventResponsePolicyDefinition"),
            ("ResponseRuleInput", "ResponseRule"),
        ] {
            assert_eq!(fields[input], fields[read], "{input} and {read} differ");
        }
    }
}
