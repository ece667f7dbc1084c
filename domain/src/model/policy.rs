//! The three kinds of site policy and the pure functions that apply them.
//!
//! # Layout
//!
//! - Shared: [`PolicyKind`], [`Severity`], [`Scope`] (users / groups / hosts),
//!   name matching ([`name_matches`]).
//! - Recording policy: [`RecordingPolicyBody`] of ordered [`RecordingRule`]s
//!   and [`evaluate`]: session attributes -> [`RecordingDecision`]. The first
//!   matching rule wins; otherwise the fallback applies.
//! - Event detection policy: [`DetectionPolicyBody`] and [`detect`]: one
//!   session event -> an optional [`Detection`].
//! - Event response policy: [`ResponsePolicyBody`] and [`responses_to`]:
//!   a session start or a detection -> the rules it fires.
//! - System policies: built-in constants with fixed ids, the same for every
//!   site, never stored, never editable ([`system_policy`]).
//! - The [`Policy`] aggregate (stream `policy-<uuid>`): create and update a
//!   site's own policies. Activation and deletion are decided on the site
//!   (see `site.rs`), because "exactly one active per kind" and "the active
//!   one cannot be deleted" must be checked on one stream.
//!
//! # Matching rules
//!
//! Names (users, groups, applications, delivery groups, hosts) compare
//! ignoring case and accept `*` / `?` globs. A user or group written
//! `DOMAIN\name` or `name@domain.tld` matches the same account in the other
//! form (the domain compares by its first label, `CORP` = `corp.example.com`);
//! an entry without a domain matches the name in any domain. Within one
//! criterion any entry may match; criteria combine with AND; an empty
//! criterion matches anything.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::glob;
use super::net::{ip_in_any, IpRange};
use super::session_event::{SessionEvent, SessionEventType};
use crate::time::Timestamp;

/// Policy id.
pub type PolicyId = Uuid;

/// The three kinds of site policy; one of each is active per site.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PolicyKind {
    Recording,
    EventDetection,
    EventResponse,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Recording => "recording",
            PolicyKind::EventDetection => "event detection",
            PolicyKind::EventResponse => "event response",
        })
    }
}

/// How serious a detected event is. Ordered: `Info < Low < ... < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Every severity, least serious first.
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];
}

/// A user, group or host matcher. Empty lists match anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub hosts: Vec<String>,
}

impl Scope {
    /// Users-or-groups AND hosts, as for the recording criteria.
    pub fn matches(&self, user: &str, groups: &[String], host: &str) -> bool {
        user_or_group_matches(&self.users, &self.groups, user, groups)
            && glob::any_matches(&self.hosts, host)
    }

    fn validate(&self, what: &str) -> Result<(), String> {
        non_blank_entries(&self.users, &format!("{what} users"))?;
        non_blank_entries(&self.groups, &format!("{what} groups"))?;
        non_blank_entries(&self.hosts, &format!("{what} hosts"))
    }
}

/// Whether `entry` (from a policy) names `account` (from a session).
/// See the module docs for the rules.
pub fn name_matches(entry: &str, account: &str) -> bool {
    let (entry_name, entry_domain) = split_account(entry);
    let (name, domain) = split_account(account);
    glob::matches(entry_name, name)
        && match (entry_domain, domain) {
            (Some(a), Some(b)) => glob::matches(a, b),
            _ => true,
        }
}

/// `DOMAIN\name` and `name@domain.tld` -> (`name`, first domain label).
fn split_account(account: &str) -> (&str, Option<&str>) {
    let account = account.trim();
    if let Some((domain, name)) = account.split_once('\\') {
        return (name, Some(domain));
    }
    if let Some((name, domain)) = account.rsplit_once('@') {
        return (name, Some(domain.split('.').next().unwrap_or(domain)));
    }
    (account, None)
}

/// The "users or groups" criterion: empty when both lists are.
fn user_or_group_matches(
    users: &[String],
    groups: &[String],
    user: &str,
    user_groups: &[String],
) -> bool {
    if users.is_empty() && groups.is_empty() {
        return true;
    }
    users.iter().any(|u| name_matches(u, user))
        || groups
            .iter()
            .any(|g| user_groups.iter().any(|ug| name_matches(g, ug)))
}

fn non_blank_entries(entries: &[String], what: &str) -> Result<(), String> {
    if entries.iter().any(|e| e.trim().is_empty()) {
        return Err(format!("{what} must not contain blank entries"));
    }
    Ok(())
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err(format!("{what} name must not be empty"));
    }
    if name.chars().count() > 200 {
        return Err(format!("{what} name is longer than 200 characters"));
    }
    Ok(())
}

// ----------------------------------------------------------------------------
// Recording policy
// ----------------------------------------------------------------------------

/// What a recording rule does with a matching session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordingAction {
    DoNotRecord,
    RecordScreenAndEvents,
    RecordEventsOnly,
}

impl RecordingAction {
    /// The recording mode, `None` for [`RecordingAction::DoNotRecord`].
    pub fn mode(self) -> Option<RecordingMode> {
        match self {
            RecordingAction::DoNotRecord => None,
            RecordingAction::RecordScreenAndEvents => Some(RecordingMode::ScreenAndEvents),
            RecordingAction::RecordEventsOnly => Some(RecordingMode::EventsOnly),
        }
    }
}

/// What a recording captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RecordingMode {
    ScreenAndEvents,
    EventsOnly,
}

/// Which sessions a recording rule applies to; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingCriteria {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    /// Published applications or desktops.
    pub applications: Vec<String>,
    pub delivery_groups: Vec<String>,
    /// VDA hosts.
    pub hosts: Vec<String>,
    /// Client addresses: single IPs or CIDR ranges, stored canonical
    /// (`10.1.0.0/16`).
    pub client_ip_ranges: Vec<String>,
}

impl RecordingCriteria {
    /// Whether every criterion admits the session.
    pub fn matches(&self, session: &SessionAttributes) -> bool {
        let ranges: Vec<IpRange> = self
            .client_ip_ranges
            .iter()
            .filter_map(|r| r.parse().ok())
            .collect();
        user_or_group_matches(&self.users, &self.groups, &session.user, &session.groups)
            && (self.applications.is_empty()
                || session
                    .applications
                    .iter()
                    .any(|app| glob::any_matches(&self.applications, app)))
            && (self.delivery_groups.is_empty()
                || session
                    .delivery_group
                    .as_deref()
                    .is_some_and(|dg| glob::any_matches(&self.delivery_groups, dg)))
            && glob::any_matches(&self.hosts, &session.host)
            // A list whose entries all failed to parse must not become "any".
            && (self.client_ip_ranges.is_empty()
                || (!ranges.is_empty() && ip_in_any(&ranges, session.client_ip.as_deref())))
    }

    fn normalise(mut self, rule: &str) -> Result<Self, String> {
        let what = format!("rule `{rule}`");
        non_blank_entries(&self.users, &format!("{what} users"))?;
        non_blank_entries(&self.groups, &format!("{what} groups"))?;
        non_blank_entries(&self.applications, &format!("{what} applications"))?;
        non_blank_entries(&self.delivery_groups, &format!("{what} delivery groups"))?;
        non_blank_entries(&self.hosts, &format!("{what} hosts"))?;
        self.client_ip_ranges = self
            .client_ip_ranges
            .iter()
            .map(|r| {
                r.parse::<IpRange>()
                    .map(|r| r.to_string())
                    .map_err(|e| format!("{what}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(self)
    }
}

/// One ordered rule of a recording policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRule {
    pub name: String,
    pub action: RecordingAction,
    /// Show the users a recording notification.
    pub notify: bool,
    /// Lossy (smaller) screen recording.
    pub lossy: bool,
    pub audio: bool,
    pub criteria: RecordingCriteria,
}

/// A recording policy's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPolicyBody {
    pub rules: Vec<RecordingRule>,
    /// Applies when no rule matches.
    pub fallback: RecordingAction,
    /// Whether a fallback recording notifies the user.
    pub fallback_notify: bool,
}

impl RecordingPolicyBody {
    /// The most rules one policy may have.
    pub const MAX_RULES: usize = 100;

    fn normalise(mut self) -> Result<Self, String> {
        if self.rules.len() > Self::MAX_RULES {
            return Err(format!(
                "a recording policy has at most {} rules",
                Self::MAX_RULES
            ));
        }
        let mut names = BTreeSet::new();
        for rule in &mut self.rules {
            check_name(&rule.name, "rule")?;
            if !names.insert(rule.name.trim().to_lowercase()) {
                return Err(format!("rule name `{}` is used twice", rule.name));
            }
            rule.criteria = std::mem::take(&mut rule.criteria).normalise(&rule.name)?;
        }
        Ok(self)
    }
}

/// What srs knows about a session when it starts (API `SessionAttributesInput`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionAttributes {
    /// `DOMAIN\user` or `user@domain`.
    pub user: String,
    pub groups: Vec<String>,
    pub client_name: Option<String>,
    pub client_ip: Option<String>,
    /// The VDA machine.
    pub host: String,
    pub delivery_group: Option<String>,
    /// Published applications or desktop name.
    pub applications: Vec<String>,
}

impl SessionAttributes {
    /// The domain part of the user name, if it has one.
    pub fn domain(&self) -> Option<String> {
        split_account(&self.user).1.map(str::to_string)
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.user.trim().is_empty() {
            return Err("the session's user must not be empty".into());
        }
        if self.host.trim().is_empty() {
            return Err("the session's host must not be empty".into());
        }
        Ok(())
    }
}

/// Why a session is (or is not) recorded: the outcome of [`evaluate`],
/// kept on the recording for the admin log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingDecision {
    pub policy_id: PolicyId,
    pub policy_name: String,
    /// The matching rule's name; `None` when the fallback applied.
    pub rule: Option<String>,
    /// The matching rule's position (0-based).
    pub rule_index: Option<u32>,
    pub action: RecordingAction,
    pub notify: bool,
    pub lossy: bool,
    pub audio: bool,
}

impl RecordingDecision {
    /// Whether the session is recorded at all.
    pub fn records(&self) -> bool {
        self.action != RecordingAction::DoNotRecord
    }
}

/// A policy's id and name with its content: the form in which a policy is
/// handed to pure functions and commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyDef<B> {
    pub id: PolicyId,
    pub name: String,
    pub body: B,
}

/// Applies a recording policy to a session: the first matching rule wins,
/// else the fallback.
pub fn evaluate(
    policy: &PolicyDef<RecordingPolicyBody>,
    session: &SessionAttributes,
) -> RecordingDecision {
    let matched = policy
        .body
        .rules
        .iter()
        .enumerate()
        .find(|(_, rule)| rule.criteria.matches(session));
    match matched {
        Some((index, rule)) => RecordingDecision {
            policy_id: policy.id,
            policy_name: policy.name.clone(),
            rule: Some(rule.name.clone()),
            rule_index: u32::try_from(index).ok(),
            action: rule.action,
            notify: rule.notify && rule.action != RecordingAction::DoNotRecord,
            lossy: rule.lossy,
            audio: rule.audio,
        },
        None => RecordingDecision {
            policy_id: policy.id,
            policy_name: policy.name.clone(),
            rule: None,
            rule_index: None,
            action: policy.body.fallback,
            notify: policy.body.fallback_notify
                && policy.body.fallback != RecordingAction::DoNotRecord,
            lossy: false,
            audio: false,
        },
    }
}

// ----------------------------------------------------------------------------
// Event detection policy
// ----------------------------------------------------------------------------

/// The application monitoring list of a new detection policy.
pub const DEFAULT_MONITORED_APPS: [&str; 3] = ["cmd.exe", "powershell.exe", "wsl.exe"];

/// A filter and severity for one session event type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionRule {
    /// Shown as the rule that hit; defaults to the type's name.
    pub name: Option<String>,
    pub event_type: SessionEventType,
    pub severity: Severity,
    /// Globs on the event's subject (app, URL host, path, device, ...);
    /// empty = any.
    pub patterns: Vec<String>,
    /// For IDLE: flag only idle periods at least this long.
    pub idle_seconds: Option<u64>,
    /// Limit the rule to some users, groups or hosts.
    pub scope: Scope,
}

impl DetectionRule {
    /// The name shown for detections by this rule.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.event_type.to_string())
    }
}

/// An event detection policy's content: what is logged, and what of it is
/// a detection.
///
/// - Only the `logged` types are stored at all: the events of any other
///   type are refused (counted as ignored, never written).
/// - A logged event is a **detection** when a rule matched it: some rule of
///   its type whose scope, patterns and idle threshold fit; the most severe
///   matching rule names the detection. A rule naming an application
///   (`APP_START regedit*`) detects it whatever `monitored_apps` holds.
/// - `monitored_apps` only adds monitoring where no rule matched: an
///   APP_START / APP_END / APP_FAILURE of a monitored application is an
///   INFO detection named [`MONITORED_APP_RULE`].
/// - Any other logged event is stored in the session's timeline and is
///   not a detection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetectionPolicyBody {
    pub logged: BTreeSet<SessionEventType>,
    pub rules: Vec<DetectionRule>,
    /// Globs of the applications whose lifecycle is flagged INFO when no
    /// rule matched it.
    pub monitored_apps: Vec<String>,
}

/// The rule name of a detection made by the monitored applications list.
pub const MONITORED_APP_RULE: &str = "Monitored application";

impl Default for DetectionPolicyBody {
    fn default() -> Self {
        DetectionPolicyBody {
            logged: BTreeSet::new(),
            rules: Vec::new(),
            monitored_apps: DEFAULT_MONITORED_APPS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

impl DetectionPolicyBody {
    /// Whether events of `event_type` are stored at all.
    pub fn logs(&self, event_type: SessionEventType) -> bool {
        self.logged.contains(&event_type)
    }

    /// What the system policy "Do not detect" holds: every type is logged
    /// (so a site without a detection policy of its own keeps whole
    /// timelines), and there is no rule and no monitored application, so
    /// nothing is a detection.
    pub fn log_everything_detect_nothing() -> Self {
        DetectionPolicyBody {
            logged: SessionEventType::ALL.into_iter().collect(),
            rules: Vec::new(),
            monitored_apps: Vec::new(),
        }
    }

    fn normalise(self) -> Result<Self, String> {
        for rule in &self.rules {
            if !self.logged.contains(&rule.event_type) {
                return Err(format!(
                    "rule `{}` is for {} events, which the policy does not log",
                    rule.label(),
                    rule.event_type
                ));
            }
            if rule.idle_seconds.is_some() && rule.event_type != SessionEventType::Idle {
                return Err(format!(
                    "rule `{}`: idleSeconds applies to IDLE rules only",
                    rule.label()
                ));
            }
            if rule.idle_seconds == Some(0) {
                return Err(format!(
                    "rule `{}`: idleSeconds must be positive",
                    rule.label()
                ));
            }
            if let Some(name) = &rule.name {
                check_name(name, "rule")?;
            }
            non_blank_entries(&rule.patterns, &format!("rule `{}` patterns", rule.label()))?;
            rule.scope.validate(&format!("rule `{}`", rule.label()))?;
        }
        non_blank_entries(&self.monitored_apps, "monitored applications")?;
        Ok(self)
    }
}

/// Who a session belongs to, as detection and response scopes see it.
#[derive(Clone, Copy, Debug)]
pub struct SessionSubject<'a> {
    pub user: &'a str,
    pub groups: &'a [String],
    pub host: &'a str,
}

/// A session event the detection policy flags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detection {
    pub rule: String,
    pub severity: Severity,
    pub subject: Option<String>,
}

/// Applies a detection policy to one session event: the most severe rule
/// of its type that matches it, else (application lifecycle events) the
/// monitored applications list at INFO, else nothing. Unlogged types are
/// never detected (they are not stored either).
pub fn detect(
    policy: &DetectionPolicyBody,
    who: SessionSubject<'_>,
    event: &SessionEvent,
) -> Option<Detection> {
    use SessionEventType::{AppEnd, AppFailure, AppStart};
    if !policy.logs(event.event_type) {
        return None;
    }
    let subject = event.subject();
    let idle_seconds = match event.data {
        super::session_event::SessionEventData::Idle { seconds } => Some(seconds),
        _ => None,
    };
    let mut best: Option<&DetectionRule> = None;
    for rule in policy
        .rules
        .iter()
        .filter(|r| r.event_type == event.event_type)
    {
        let scope_ok = rule.scope.matches(who.user, who.groups, who.host);
        let pattern_ok = rule.patterns.is_empty()
            || subject
                .as_deref()
                .is_some_and(|s| glob::any_matches(&rule.patterns, s));
        let idle_ok = match rule.idle_seconds {
            Some(min) => idle_seconds.is_some_and(|s| s >= min),
            None => true,
        };
        if scope_ok && pattern_ok && idle_ok && best.is_none_or(|b| rule.severity > b.severity) {
            best = Some(rule);
        }
    }
    if let Some(rule) = best {
        return Some(Detection {
            rule: rule.label(),
            severity: rule.severity,
            subject,
        });
    }
    // An empty list monitors nothing (`any_matches` would say "any").
    let monitored = matches!(event.event_type, AppStart | AppEnd | AppFailure)
        && !policy.monitored_apps.is_empty()
        && event
            .application()
            .is_some_and(|app| glob::any_matches(&policy.monitored_apps, app));
    monitored.then(|| Detection {
        rule: MONITORED_APP_RULE.to_string(),
        severity: Severity::Info,
        subject,
    })
}

// ----------------------------------------------------------------------------
// Event response policy
// ----------------------------------------------------------------------------

/// What an event response does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResponseActionKind {
    EmailAlert,
    StartScreenRecording,
    LockSession,
    LogOffSession,
    DisconnectSession,
}

/// One response action with what it needs to be carried out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseAction {
    /// Mail the recipients a link to play the recording at the event.
    EmailAlert {
        recipients: Vec<String>,
    },
    /// Switch an events-only recording to screen recording.
    StartScreenRecording,
    LockSession {
        message: String,
    },
    LogOffSession,
    DisconnectSession,
}

impl ResponseAction {
    /// The action's kind, without its data.
    pub fn kind(&self) -> ResponseActionKind {
        match self {
            ResponseAction::EmailAlert { .. } => ResponseActionKind::EmailAlert,
            ResponseAction::StartScreenRecording => ResponseActionKind::StartScreenRecording,
            ResponseAction::LockSession { .. } => ResponseActionKind::LockSession,
            ResponseAction::LogOffSession => ResponseActionKind::LogOffSession,
            ResponseAction::DisconnectSession => ResponseActionKind::DisconnectSession,
        }
    }
}

/// What fires a response trigger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TriggerOn {
    /// A recorded session starts.
    SessionStart,
    /// A detected event of one of `types` (empty: any detected type) with at
    /// least `min_severity`.
    Detection {
        types: BTreeSet<SessionEventType>,
        min_severity: Severity,
    },
}

/// One of a response rule's triggers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTrigger {
    pub description: String,
    pub on: TriggerOn,
    /// Only for these users / groups / hosts.
    pub scope: Scope,
}

/// Triggers -> actions, with a per-session cool-down.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRule {
    pub name: String,
    /// One to [`ResponseRule::MAX_TRIGGERS`]; any of them fires the rule.
    pub triggers: Vec<ResponseTrigger>,
    /// Any combination, each kind at most once.
    pub actions: Vec<ResponseAction>,
    /// Once fired in a session, the rule stays quiet for this long (in
    /// session time).
    pub cooldown_sec: u32,
}

impl ResponseRule {
    /// The most triggers one rule may have.
    pub const MAX_TRIGGERS: usize = 7;
    /// The cool-down when the input gives none.
    pub const DEFAULT_COOLDOWN_SEC: u32 = 300;
}

/// An event response policy's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponsePolicyBody {
    pub rules: Vec<ResponseRule>,
}

impl ResponsePolicyBody {
    /// The event types the triggers name; they must be logged by the
    /// site's active detection policy.
    pub fn trigger_types(&self) -> BTreeSet<SessionEventType> {
        self.rules
            .iter()
            .flat_map(|r| &r.triggers)
            .filter_map(|t| match &t.on {
                TriggerOn::Detection { types, .. } => Some(types.iter().copied()),
                TriggerOn::SessionStart => None,
            })
            .flatten()
            .collect()
    }

    /// Checks the trigger types against what the detection policy logs.
    pub fn check_types_logged(&self, logged: &BTreeSet<SessionEventType>) -> Result<(), String> {
        let missing: Vec<&str> = self
            .trigger_types()
            .difference(logged)
            .map(|t| t.as_str())
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "response triggers name event types the active detection policy does not log: {}",
                missing.join(", ")
            ))
        }
    }

    fn normalise(self, logged: &BTreeSet<SessionEventType>) -> Result<Self, String> {
        let mut names = BTreeSet::new();
        for rule in &self.rules {
            check_name(&rule.name, "rule")?;
            if !names.insert(rule.name.trim().to_lowercase()) {
                return Err(format!("rule name `{}` is used twice", rule.name));
            }
            if rule.triggers.is_empty() || rule.triggers.len() > ResponseRule::MAX_TRIGGERS {
                return Err(format!(
                    "rule `{}` needs 1 to {} triggers",
                    rule.name,
                    ResponseRule::MAX_TRIGGERS
                ));
            }
            for trigger in &rule.triggers {
                trigger
                    .scope
                    .validate(&format!("rule `{}` trigger", rule.name))?;
            }
            if rule.actions.is_empty() {
                return Err(format!("rule `{}` needs at least one action", rule.name));
            }
            let kinds: BTreeSet<_> = rule.actions.iter().map(ResponseAction::kind).collect();
            if kinds.len() != rule.actions.len() {
                return Err(format!("rule `{}` names an action twice", rule.name));
            }
            for action in &rule.actions {
                match action {
                    ResponseAction::EmailAlert { recipients } => {
                        if recipients.is_empty() {
                            return Err(format!(
                                "rule `{}`: EMAIL_ALERT needs recipients",
                                rule.name
                            ));
                        }
                        if let Some(bad) = recipients.iter().find(|r| !looks_like_email(r)) {
                            return Err(format!(
                                "rule `{}`: `{bad}` is not an email address",
                                rule.name
                            ));
                        }
                    }
                    ResponseAction::LockSession { message } if message.trim().is_empty() => {
                        return Err(format!(
                            "rule `{}`: LOCK_SESSION needs a message",
                            rule.name
                        ));
                    }
                    _ => {}
                }
            }
        }
        self.check_types_logged(logged)?;
        Ok(self)
    }
}

/// `local@domain` with both parts present and no spaces: enough to catch
/// typos without pretending to validate RFC 5322.
pub fn looks_like_email(text: &str) -> bool {
    let text = text.trim();
    match text.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !text.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// What a response trigger reacts to.
#[derive(Clone, Copy, Debug)]
pub enum ResponseCause {
    SessionStart,
    Detection {
        event_type: SessionEventType,
        severity: Severity,
    },
}

/// The rules (index into `policy.rules`, with the trigger that fired) a
/// cause fires, before cool-down. A rule fires at most once per cause.
pub fn responses_to<'p>(
    policy: &'p ResponsePolicyBody,
    who: SessionSubject<'_>,
    cause: ResponseCause,
) -> Vec<(usize, &'p ResponseRule, &'p ResponseTrigger)> {
    policy
        .rules
        .iter()
        .enumerate()
        .filter_map(|(index, rule)| {
            rule.triggers
                .iter()
                .find(|trigger| {
                    let fires = match (&trigger.on, cause) {
                        (TriggerOn::SessionStart, ResponseCause::SessionStart) => true,
                        (
                            TriggerOn::Detection {
                                types,
                                min_severity,
                            },
                            ResponseCause::Detection {
                                event_type,
                                severity,
                            },
                        ) => {
                            (types.is_empty() || types.contains(&event_type))
                                && severity >= *min_severity
                        }
                        (TriggerOn::SessionStart, ResponseCause::Detection { .. })
                        | (TriggerOn::Detection { .. }, ResponseCause::SessionStart) => false,
                    };
                    fires && trigger.scope.matches(who.user, who.groups, who.host)
                })
                .map(|trigger| (index, rule, trigger))
        })
        .collect()
}

// ----------------------------------------------------------------------------
// Policy bodies and system policies
// ----------------------------------------------------------------------------

/// A policy's content, of one of the three kinds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyBody {
    Recording(RecordingPolicyBody),
    EventDetection(DetectionPolicyBody),
    EventResponse(ResponsePolicyBody),
}

impl PolicyBody {
    /// Which of the three kinds this body is.
    pub fn kind(&self) -> PolicyKind {
        match self {
            PolicyBody::Recording(_) => PolicyKind::Recording,
            PolicyBody::EventDetection(_) => PolicyKind::EventDetection,
            PolicyBody::EventResponse(_) => PolicyKind::EventResponse,
        }
    }

    /// Validates and canonicalises the body. `detection_logged` is what the
    /// site's active detection policy logs (response triggers must stay
    /// within it).
    pub fn normalise(self, detection_logged: &BTreeSet<SessionEventType>) -> Result<Self, String> {
        Ok(match self {
            PolicyBody::Recording(body) => PolicyBody::Recording(body.normalise()?),
            PolicyBody::EventDetection(body) => PolicyBody::EventDetection(body.normalise()?),
            PolicyBody::EventResponse(body) => {
                PolicyBody::EventResponse(body.normalise(detection_logged)?)
            }
        })
    }
}

/// A policy with its id and name, system or site-owned.
pub type AnyPolicy = PolicyDef<PolicyBody>;

const fn system_id(n: u128) -> Uuid {
    // Version 8, RFC variant: visibly not a generated id.
    Uuid::from_u128(0x0000_0000_0000_8000_8000_0000_0000_0000 | n)
}

/// "Do not record": active on a new site.
pub const DO_NOT_RECORD: PolicyId = system_id(0x01);
/// "Record everyone with notification".
pub const RECORD_EVERYONE_WITH_NOTIFICATION: PolicyId = system_id(0x02);
/// "Record everyone without notification".
pub const RECORD_EVERYONE_WITHOUT_NOTIFICATION: PolicyId = system_id(0x03);
/// "Record only events for everyone with notification".
pub const RECORD_EVENTS_FOR_EVERYONE_WITH_NOTIFICATION: PolicyId = system_id(0x04);
/// "Record only events for everyone without notification".
pub const RECORD_EVENTS_FOR_EVERYONE_WITHOUT_NOTIFICATION: PolicyId = system_id(0x05);
/// "Do not detect": active on a new site.
pub const DO_NOT_DETECT: PolicyId = system_id(0x11);
/// "Do not respond": active on a new site.
pub const DO_NOT_RESPOND: PolicyId = system_id(0x21);

/// Every system policy id.
pub const SYSTEM_POLICY_IDS: [PolicyId; 7] = [
    DO_NOT_RECORD,
    RECORD_EVERYONE_WITH_NOTIFICATION,
    RECORD_EVERYONE_WITHOUT_NOTIFICATION,
    RECORD_EVENTS_FOR_EVERYONE_WITH_NOTIFICATION,
    RECORD_EVENTS_FOR_EVERYONE_WITHOUT_NOTIFICATION,
    DO_NOT_DETECT,
    DO_NOT_RESPOND,
];

/// The system policy active for `kind` on a new site.
pub fn default_policy(kind: PolicyKind) -> PolicyId {
    match kind {
        PolicyKind::Recording => DO_NOT_RECORD,
        PolicyKind::EventDetection => DO_NOT_DETECT,
        PolicyKind::EventResponse => DO_NOT_RESPOND,
    }
}

/// Whether `id` is a built-in policy.
pub fn is_system_policy(id: PolicyId) -> bool {
    SYSTEM_POLICY_IDS.contains(&id)
}

/// A built-in policy by id.
pub fn system_policy(id: PolicyId) -> Option<AnyPolicy> {
    let everyone = |name: &str, action, notify| {
        PolicyBody::Recording(RecordingPolicyBody {
            rules: vec![RecordingRule {
                name: name.to_string(),
                action,
                notify,
                lossy: false,
                audio: false,
                criteria: RecordingCriteria::default(),
            }],
            fallback: RecordingAction::DoNotRecord,
            fallback_notify: false,
        })
    };
    let (name, body) = match id {
        DO_NOT_RECORD => (
            "Do not record",
            PolicyBody::Recording(RecordingPolicyBody {
                rules: Vec::new(),
                fallback: RecordingAction::DoNotRecord,
                fallback_notify: false,
            }),
        ),
        RECORD_EVERYONE_WITH_NOTIFICATION => (
            "Record everyone with notification",
            everyone("Everyone", RecordingAction::RecordScreenAndEvents, true),
        ),
        RECORD_EVERYONE_WITHOUT_NOTIFICATION => (
            "Record everyone without notification",
            everyone("Everyone", RecordingAction::RecordScreenAndEvents, false),
        ),
        RECORD_EVENTS_FOR_EVERYONE_WITH_NOTIFICATION => (
            "Record only events for everyone with notification",
            everyone("Everyone", RecordingAction::RecordEventsOnly, true),
        ),
        RECORD_EVENTS_FOR_EVERYONE_WITHOUT_NOTIFICATION => (
            "Record only events for everyone without notification",
            everyone("Everyone", RecordingAction::RecordEventsOnly, false),
        ),
        DO_NOT_DETECT => (
            "Do not detect",
            PolicyBody::EventDetection(DetectionPolicyBody::log_everything_detect_nothing()),
        ),
        DO_NOT_RESPOND => (
            "Do not respond",
            PolicyBody::EventResponse(ResponsePolicyBody::default()),
        ),
        _ => return None,
    };
    Some(PolicyDef {
        id,
        name: name.to_string(),
        body,
    })
}

/// The system policies of one kind.
pub fn system_policies(kind: PolicyKind) -> Vec<AnyPolicy> {
    SYSTEM_POLICY_IDS
        .iter()
        .filter_map(|&id| system_policy(id))
        .filter(|p| p.body.kind() == kind)
        .collect()
}

// ----------------------------------------------------------------------------
// The policy aggregate
// ----------------------------------------------------------------------------

/// Why a policy command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy not found")]
    NotFound,
    #[error("policy {0} already exists")]
    AlreadyExists(PolicyId),
    #[error("the policy has been deleted")]
    Deleted,
    #[error("system policies cannot be edited or deleted")]
    SystemPolicy,
    #[error("a {from} policy cannot become a {to} policy")]
    KindChange { from: PolicyKind, to: PolicyKind },
    #[error("{0}")]
    Invalid(String),
}

impl Coded for PolicyError {
    fn code(&self) -> ErrorCode {
        match self {
            PolicyError::NotFound | PolicyError::Deleted => ErrorCode::NotFound,
            PolicyError::AlreadyExists(_) => ErrorCode::Conflict,
            PolicyError::SystemPolicy
            | PolicyError::KindChange { .. }
            | PolicyError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// A site's own policy, as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Policy {
    pub id: Option<PolicyId>,
    pub site_id: Option<Uuid>,
    pub name: String,
    pub body: Option<PolicyBody>,
    /// How many times it was updated after creation.
    pub revision: u64,
}

impl Policy {
    /// The policy as a [`PolicyDef`], once created.
    pub fn def(&self) -> Option<AnyPolicy> {
        Some(PolicyDef {
            id: self.id?,
            name: self.name.clone(),
            body: self.body.clone()?,
        })
    }
}

/// What may be asked of a policy.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyCommand {
    Create {
        policy_id: PolicyId,
        site_id: Uuid,
        name: String,
        body: PolicyBody,
        /// What the site's active detection policy logs (fact).
        detection_logged: BTreeSet<SessionEventType>,
        now: Timestamp,
    },
    Update {
        name: String,
        body: PolicyBody,
        /// What the site's active detection policy logs (fact).
        detection_logged: BTreeSet<SessionEventType>,
        /// Types a detection policy must keep logging: when it is the
        /// active one, those the active response policy triggers on (fact).
        must_log: BTreeSet<SessionEventType>,
        /// Whether the site has deleted this policy (fact from the site).
        deleted: bool,
        now: Timestamp,
    },
}

impl CommandFor for PolicyCommand {
    type Aggregate = Policy;
}

impl Aggregate for Policy {
    type Command = PolicyCommand;
    type Error = PolicyError;
    const STREAM_PREFIX: &'static str = "policy";

    fn decide(&self, command: PolicyCommand) -> Result<Vec<DomainEvent>, PolicyError> {
        match command {
            PolicyCommand::Create {
                policy_id,
                site_id,
                name,
                body,
                detection_logged,
                now,
            } => {
                if is_system_policy(policy_id) {
                    return Err(PolicyError::SystemPolicy);
                }
                if self.id.is_some() {
                    return Err(PolicyError::AlreadyExists(policy_id));
                }
                check_name(&name, "policy").map_err(PolicyError::Invalid)?;
                let body = body
                    .normalise(&detection_logged)
                    .map_err(PolicyError::Invalid)?;
                Ok(vec![DomainEvent::PolicyCreated {
                    policy_id,
                    site_id,
                    kind: body.kind(),
                    name: name.trim().to_string(),
                    body,
                    at: now,
                }])
            }
            PolicyCommand::Update {
                name,
                body,
                detection_logged,
                must_log,
                deleted,
                now,
            } => {
                let (Some(policy_id), Some(site_id), Some(current)) =
                    (self.id, self.site_id, &self.body)
                else {
                    return Err(PolicyError::NotFound);
                };
                if deleted {
                    return Err(PolicyError::Deleted);
                }
                if current.kind() != body.kind() {
                    return Err(PolicyError::KindChange {
                        from: current.kind(),
                        to: body.kind(),
                    });
                }
                check_name(&name, "policy").map_err(PolicyError::Invalid)?;
                let body = body
                    .normalise(&detection_logged)
                    .map_err(PolicyError::Invalid)?;
                if let PolicyBody::EventDetection(detection) = &body {
                    let dropped: Vec<&str> = must_log
                        .difference(&detection.logged)
                        .map(|t| t.as_str())
                        .collect();
                    if !dropped.is_empty() {
                        return Err(PolicyError::Invalid(format!(
                            "the active event response policy triggers on types this policy would stop logging: {}",
                            dropped.join(", ")
                        )));
                    }
                }
                Ok(vec![DomainEvent::PolicyUpdated {
                    policy_id,
                    site_id,
                    kind: body.kind(),
                    name: name.trim().to_string(),
                    body,
                    at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::PolicyCreated {
                policy_id,
                site_id,
                name,
                body,
                ..
            } => {
                self.id = Some(*policy_id);
                self.site_id = Some(*site_id);
                self.name = name.clone();
                self.body = Some(body.clone());
            }
            DomainEvent::PolicyUpdated { name, body, .. } => {
                self.name = name.clone();
                self.body = Some(body.clone());
                self.revision += 1;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::session_event::SessionEventData;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    fn rule(name: &str, action: RecordingAction, criteria: RecordingCriteria) -> RecordingRule {
        RecordingRule {
            name: name.into(),
            action,
            notify: true,
            lossy: false,
            audio: false,
            criteria,
        }
    }

    fn policy(
        rules: Vec<RecordingRule>,
        fallback: RecordingAction,
    ) -> PolicyDef<RecordingPolicyBody> {
        PolicyDef {
            id: POLICY,
            name: "Custom".into(),
            body: RecordingPolicyBody {
                rules,
                fallback,
                fallback_notify: true,
            },
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn first_matching_rule_wins() {
        let p = policy(
            vec![
                rule(
                    "finance",
                    RecordingAction::RecordScreenAndEvents,
                    RecordingCriteria {
                        groups: strings(&["CORP\\Finance"]),
                        ..Default::default()
                    },
                ),
                rule(
                    "everyone",
                    RecordingAction::RecordEventsOnly,
                    RecordingCriteria::default(),
                ),
            ],
            RecordingAction::DoNotRecord,
        );
        let decision = evaluate(&p, &session());
        assert_eq!(decision.rule.as_deref(), Some("finance"));
        assert_eq!(decision.rule_index, Some(0));
        assert_eq!(decision.action, RecordingAction::RecordScreenAndEvents);
    }

    #[test]
    fn fallback_applies_when_no_rule_matches() {
        let p = policy(
            vec![rule(
                "bob only",
                RecordingAction::RecordScreenAndEvents,
                RecordingCriteria {
                    users: strings(&["CORP\\bob"]),
                    ..Default::default()
                },
            )],
            RecordingAction::RecordEventsOnly,
        );
        let decision = evaluate(&p, &session());
        assert_eq!(decision.rule, None);
        assert_eq!(decision.action, RecordingAction::RecordEventsOnly);
        assert!(decision.notify);
    }

    #[test]
    fn empty_criteria_match_any_session() {
        assert!(RecordingCriteria::default().matches(&session()));
        assert!(RecordingCriteria::default().matches(&SessionAttributes {
            user: "x".into(),
            host: "y".into(),
            ..Default::default()
        }));
    }

    #[test]
    fn names_match_ignoring_case_and_account_form() {
        assert!(name_matches("corp\\ALICE", "CORP\\alice"));
        assert!(name_matches("CORP\\alice", "alice@corp.example.com"));
        assert!(name_matches("alice", "CORP\\Alice"));
        assert!(!name_matches("OTHER\\alice", "CORP\\alice"));
        assert!(name_matches("CORP\\adm-*", "adm-bob@corp.example.com"));
    }

    #[test]
    fn criteria_combine_with_and() {
        let criteria = RecordingCriteria {
            users: strings(&["CORP\\alice"]),
            hosts: strings(&["vda-9*"]),
            ..Default::default()
        };
        assert!(!criteria.matches(&session()), "host does not match");
        let criteria = RecordingCriteria {
            hosts: strings(&["VDA-*"]),
            ..criteria
        };
        assert!(criteria.matches(&session()));
    }

    #[test]
    fn users_or_groups_is_one_criterion() {
        let criteria = RecordingCriteria {
            users: strings(&["CORP\\bob"]),
            groups: strings(&["corp\\finance"]),
            ..Default::default()
        };
        assert!(
            criteria.matches(&session()),
            "group matches although user does not"
        );
    }

    #[test]
    fn applications_and_delivery_groups_match_case_insensitively() {
        let criteria = RecordingCriteria {
            applications: strings(&["desktop"]),
            delivery_groups: strings(&["TRADING*"]),
            ..Default::default()
        };
        assert!(criteria.matches(&session()));
        let mut no_dg = session();
        no_dg.delivery_group = None;
        assert!(
            !criteria.matches(&no_dg),
            "a delivery group criterion needs one"
        );
    }

    #[test]
    fn client_ip_criteria_match_cidr_ranges_and_single_addresses() {
        let criteria = |ranges: &[&str]| {
            RecordingCriteria {
                client_ip_ranges: strings(ranges),
                ..Default::default()
            }
            .normalise("r")
            .unwrap()
        };
        assert!(criteria(&["10.0.0.0/8"]).matches(&session()));
        assert!(criteria(&["192.168.0.0/16", "10.20.30.40"]).matches(&session()));
        assert!(!criteria(&["10.20.30.41"]).matches(&session()));
        let mut unknown_ip = session();
        unknown_ip.client_ip = None;
        assert!(!criteria(&["10.0.0.0/8"]).matches(&unknown_ip));
    }

    #[test]
    fn invalid_cidr_is_a_validation_error() {
        let body = PolicyBody::Recording(RecordingPolicyBody {
            rules: vec![rule(
                "r",
                RecordingAction::RecordEventsOnly,
                RecordingCriteria {
                    client_ip_ranges: strings(&["10.0.0.0/40"]),
                    ..Default::default()
                },
            )],
            fallback: RecordingAction::DoNotRecord,
            fallback_notify: false,
        });
        given([])
            .when(PolicyCommand::Create {
                policy_id: POLICY,
                site_id: SITE,
                name: "p".into(),
                body,
                detection_logged: BTreeSet::new(),
                now: T0,
            })
            .then_err(|e| matches!(e, PolicyError::Invalid(m) if m.contains("10.0.0.0/40")));
    }

    #[test]
    fn do_not_record_never_notifies() {
        let p = policy(
            vec![rule(
                "nobody",
                RecordingAction::DoNotRecord,
                RecordingCriteria::default(),
            )],
            RecordingAction::DoNotRecord,
        );
        let decision = evaluate(&p, &session());
        assert!(!decision.records());
        assert!(!decision.notify);
    }

    #[test]
    fn system_policies_are_fixed_and_complete() {
        assert_eq!(system_policies(PolicyKind::Recording).len(), 5);
        assert_eq!(system_policies(PolicyKind::EventDetection).len(), 1);
        assert_eq!(system_policies(PolicyKind::EventResponse).len(), 1);
        let everyone = system_policy(RECORD_EVENTS_FOR_EVERYONE_WITHOUT_NOTIFICATION).unwrap();
        let PolicyBody::Recording(body) = everyone.body else {
            panic!("kind")
        };
        let decision = evaluate(
            &PolicyDef {
                id: everyone.id,
                name: everyone.name,
                body,
            },
            &session(),
        );
        assert_eq!(decision.action, RecordingAction::RecordEventsOnly);
        assert!(!decision.notify);
        let do_not_record = system_policy(DO_NOT_RECORD).unwrap();
        assert_eq!(do_not_record.name, "Do not record");
    }

    #[test]
    fn detection_policy_defaults_to_monitoring_shells() {
        let body = DetectionPolicyBody::default();
        assert_eq!(
            body.monitored_apps,
            ["cmd.exe", "powershell.exe", "wsl.exe"]
        );
    }

    fn who() -> SessionSubject<'static> {
        SessionSubject {
            user: "CORP\\alice",
            groups: &[],
            host: "VDA-01",
        }
    }

    fn detection_body(rules: Vec<DetectionRule>) -> DetectionPolicyBody {
        DetectionPolicyBody {
            logged: [
                SessionEventType::AppStart,
                SessionEventType::WebBrowsing,
                SessionEventType::Idle,
            ]
            .into_iter()
            .collect(),
            rules,
            ..Default::default()
        }
    }

    fn detection_rule(
        event_type: SessionEventType,
        severity: Severity,
        patterns: &[&str],
    ) -> DetectionRule {
        DetectionRule {
            name: None,
            event_type,
            severity,
            patterns: strings(patterns),
            idle_seconds: None,
            scope: Scope::default(),
        }
    }

    #[test]
    fn unlogged_types_are_never_detected() {
        let body = detection_body(vec![]);
        let print = SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::Print,
            offset_ms: 0,
            data: SessionEventData::Print {
                printer: "p".into(),
                document: None,
                pages: None,
            },
        };
        assert_eq!(detect(&body, who(), &print), None);
    }

    #[test]
    fn monitored_apps_are_flagged_info_when_no_rule_matched() {
        let body = detection_body(vec![]);
        assert_eq!(detect(&body, who(), &app_start("notepad.exe", 1)), None);
        let hit = detect(&body, who(), &app_start("PowerShell.exe", 1)).unwrap();
        assert_eq!(hit.severity, Severity::Info);
        assert_eq!(hit.rule, MONITORED_APP_RULE);
        assert_eq!(hit.subject.as_deref(), Some("PowerShell.exe"));
    }

    #[test]
    fn a_rule_naming_an_application_detects_it_whatever_the_monitored_list_holds() {
        let rule = detection_rule(
            SessionEventType::AppStart,
            Severity::Critical,
            &["regedit*"],
        );
        for monitored in [vec![], strings(&["cmd.exe"])] {
            let mut body = detection_body(vec![rule.clone()]);
            body.monitored_apps = monitored;
            let hit = detect(&body, who(), &app_start("regedit.exe", 1)).unwrap();
            assert_eq!(hit.severity, Severity::Critical);
            assert_eq!(hit.rule, "APP_START");
            assert_eq!(detect(&body, who(), &app_start("notepad.exe", 1)), None);
        }
    }

    #[test]
    fn a_logged_event_without_a_rule_is_not_a_detection() {
        let body = detection_body(vec![]);
        assert_eq!(detect(&body, who(), &web("https://example.com", 1)), None);
        let mut no_monitoring = detection_body(vec![]);
        no_monitoring.monitored_apps.clear();
        assert_eq!(
            detect(&no_monitoring, who(), &app_start("cmd.exe", 1)),
            None
        );
    }

    #[test]
    fn do_not_detect_logs_every_type_and_detects_nothing() {
        let Some(PolicyDef {
            body: PolicyBody::EventDetection(body),
            ..
        }) = system_policy(DO_NOT_DETECT)
        else {
            panic!("a detection policy")
        };
        assert!(SessionEventType::ALL.iter().all(|t| body.logs(*t)));
        assert_eq!(detect(&body, who(), &app_start("cmd.exe", 1)), None);
    }

    #[test]
    fn the_most_severe_matching_rule_names_the_detection() {
        let body = detection_body(vec![
            detection_rule(SessionEventType::WebBrowsing, Severity::Low, &[]),
            detection_rule(
                SessionEventType::WebBrowsing,
                Severity::Critical,
                &["*.evil.example"],
            ),
        ]);
        assert_eq!(
            detect(&body, who(), &web("https://www.evil.example/x", 1)).map(|d| d.severity),
            Some(Severity::Critical)
        );
        assert_eq!(
            detect(&body, who(), &web("https://intranet/x", 1)).map(|d| d.severity),
            Some(Severity::Low)
        );
    }

    #[test]
    fn typed_rules_only_flag_matching_events() {
        let body = detection_body(vec![detection_rule(
            SessionEventType::WebBrowsing,
            Severity::High,
            &["*.evil.example"],
        )]);
        assert_eq!(detect(&body, who(), &web("https://good.example", 1)), None);
    }

    #[test]
    fn idle_rules_flag_only_long_idle_periods() {
        let mut rule = detection_rule(SessionEventType::Idle, Severity::Medium, &[]);
        rule.idle_seconds = Some(600);
        let body = detection_body(vec![rule]);
        let idle = |seconds| SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::Idle,
            offset_ms: 0,
            data: SessionEventData::Idle { seconds },
        };
        assert_eq!(detect(&body, who(), &idle(599)), None);
        assert!(detect(&body, who(), &idle(600)).is_some());
    }

    #[test]
    fn detection_rules_can_be_limited_to_users_and_hosts() {
        let mut rule = detection_rule(SessionEventType::AppStart, Severity::High, &[]);
        rule.scope.hosts = strings(&["build-*"]);
        let body = detection_body(vec![rule]);
        assert_eq!(detect(&body, who(), &app_start("notepad.exe", 1)), None);
    }

    #[test]
    fn detection_rules_for_unlogged_types_are_invalid() {
        let body = DetectionPolicyBody {
            rules: vec![detection_rule(SessionEventType::Print, Severity::Low, &[])],
            ..Default::default()
        };
        assert!(PolicyBody::EventDetection(body)
            .normalise(&BTreeSet::new())
            .is_err());
    }

    #[test]
    fn response_trigger_types_must_be_logged_by_the_active_detection_policy() {
        let body = PolicyBody::EventResponse(response_body(&[SessionEventType::Print], 60));
        given([])
            .when(PolicyCommand::Create {
                policy_id: POLICY,
                site_id: SITE,
                name: "respond".into(),
                body: body.clone(),
                detection_logged: [SessionEventType::AppStart].into_iter().collect(),
                now: T0,
            })
            .then_err(|e| matches!(e, PolicyError::Invalid(m) if m.contains("PRINT")));
        given([])
            .when(PolicyCommand::Create {
                policy_id: POLICY,
                site_id: SITE,
                name: "respond".into(),
                body,
                detection_logged: [SessionEventType::Print].into_iter().collect(),
                now: T0,
            })
            .then_ok();
    }

    #[test]
    fn response_rules_have_one_to_seven_triggers_and_distinct_actions() {
        let mut body = response_body(&[], 60);
        body.rules[0].triggers = vec![body.rules[0].triggers[0].clone(); 8];
        assert!(PolicyBody::EventResponse(body.clone())
            .normalise(&BTreeSet::new())
            .is_err());
        body.rules[0].triggers.truncate(7);
        assert!(PolicyBody::EventResponse(body.clone())
            .normalise(&BTreeSet::new())
            .is_ok());
        body.rules[0].actions.push(ResponseAction::LogOffSession);
        body.rules[0].actions.push(ResponseAction::LogOffSession);
        assert!(PolicyBody::EventResponse(body)
            .normalise(&BTreeSet::new())
            .is_err());
    }

    #[test]
    fn email_alerts_need_valid_recipients() {
        let mut body = response_body(&[], 60);
        body.rules[0].actions = vec![ResponseAction::EmailAlert {
            recipients: strings(&["not an address"]),
        }];
        assert!(PolicyBody::EventResponse(body)
            .normalise(&BTreeSet::new())
            .is_err());
        assert!(looks_like_email("soc@example.com"));
        assert!(!looks_like_email("soc@example"));
    }

    #[test]
    fn responses_fire_on_matching_severity_and_type() {
        let body = response_body(&[SessionEventType::AppStart], 60);
        let fire = |event_type, severity| {
            responses_to(
                &body,
                who(),
                ResponseCause::Detection {
                    event_type,
                    severity,
                },
            )
            .len()
        };
        assert_eq!(fire(SessionEventType::AppStart, Severity::High), 1);
        assert_eq!(fire(SessionEventType::AppStart, Severity::Low), 0);
        assert_eq!(fire(SessionEventType::WebBrowsing, Severity::Critical), 0);
        assert!(responses_to(&body, who(), ResponseCause::SessionStart).is_empty());
    }

    #[test]
    fn policies_are_created_and_updated() {
        let body = PolicyBody::EventDetection(DetectionPolicyBody::default());
        let created = DomainEvent::PolicyCreated {
            policy_id: POLICY,
            site_id: SITE,
            kind: PolicyKind::EventDetection,
            name: "Watch shells".into(),
            body: body.clone(),
            at: T0,
        };
        given([created.clone()])
            .when(PolicyCommand::Update {
                name: " Watch shells v2 ".into(),
                body: body.clone(),
                detection_logged: BTreeSet::new(),
                must_log: BTreeSet::new(),
                deleted: false,
                now: T1,
            })
            .then([DomainEvent::PolicyUpdated {
                policy_id: POLICY,
                site_id: SITE,
                kind: PolicyKind::EventDetection,
                name: "Watch shells v2".into(),
                body: body.clone(),
                at: T1,
            }]);
        given([created.clone()])
            .when(PolicyCommand::Create {
                policy_id: POLICY,
                site_id: SITE,
                name: "again".into(),
                body: body.clone(),
                detection_logged: BTreeSet::new(),
                now: T1,
            })
            .then_err_code(ErrorCode::Conflict);
        given([created])
            .when(PolicyCommand::Update {
                name: "x".into(),
                body: PolicyBody::EventResponse(ResponsePolicyBody::default()),
                detection_logged: BTreeSet::new(),
                must_log: BTreeSet::new(),
                deleted: false,
                now: T1,
            })
            .then_err(|e| matches!(e, PolicyError::KindChange { .. }));
    }

    #[test]
    fn the_active_detection_policy_cannot_stop_logging_what_responses_trigger_on() {
        let created = DomainEvent::PolicyCreated {
            policy_id: POLICY,
            site_id: SITE,
            kind: PolicyKind::EventDetection,
            name: "d".into(),
            body: PolicyBody::EventDetection(DetectionPolicyBody {
                logged: [SessionEventType::AppStart].into_iter().collect(),
                ..Default::default()
            }),
            at: T0,
        };
        given([created])
            .when(PolicyCommand::Update {
                name: "d".into(),
                body: PolicyBody::EventDetection(DetectionPolicyBody::default()),
                detection_logged: BTreeSet::new(),
                must_log: [SessionEventType::AppStart].into_iter().collect(),
                deleted: false,
                now: T1,
            })
            .then_err(|e| matches!(e, PolicyError::Invalid(m) if m.contains("APP_START")));
    }

    #[test]
    fn deleted_policies_cannot_be_updated() {
        given([DomainEvent::PolicyCreated {
            policy_id: POLICY,
            site_id: SITE,
            kind: PolicyKind::EventResponse,
            name: "r".into(),
            body: PolicyBody::EventResponse(ResponsePolicyBody::default()),
            at: T0,
        }])
        .when(PolicyCommand::Update {
            name: "r".into(),
            body: PolicyBody::EventResponse(ResponsePolicyBody::default()),
            detection_logged: BTreeSet::new(),
            must_log: BTreeSet::new(),
            deleted: true,
            now: T1,
        })
        .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn system_policies_cannot_be_created_over() {
        given([])
            .when(PolicyCommand::Create {
                policy_id: DO_NOT_RECORD,
                site_id: SITE,
                name: "mine".into(),
                body: PolicyBody::EventResponse(ResponsePolicyBody::default()),
                detection_logged: BTreeSet::new(),
                now: T0,
            })
            .then_err(|e| *e == PolicyError::SystemPolicy);
    }
}
