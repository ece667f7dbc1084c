//! Input types and their checked conversion into domain values. Every
//! conversion checks lengths and IDs, so a bad input is `VALIDATION` before
//! the service sees it; the domain then checks its own rules.

use std::collections::{BTreeMap, BTreeSet};

use async_graphql::{InputObject, Json, ID};
use chrono::{DateTime, Utc};
use serde_json::Value;
use srs_domain::model as dm;
use srs_projections::models::audit::AuditFilter as AuditQuery;
use srs_projections::models::catalogue::RecordingFilter as RecordingQueryFilter;
use srs_projections::models::detections::DetectionFilter as DetectionQuery;

use super::convert::{
    name, names, non_negative, opt_name, opt_uuid, recorded, text, timestamp, uuid, uuids,
};
use super::enums::*;
use crate::error::{ApiError, ApiResult};
use crate::state::Limits;

/// `createSite` input.
#[derive(InputObject)]
pub struct CreateSiteInput {
    /// The site's name.
    pub name: String,
}

/// `connectServer` input.
#[derive(InputObject)]
pub struct ConnectServerInput {
    /// The site it joins.
    pub site_id: ID,
    /// Its display name.
    pub name: String,
    /// Its host name.
    pub host: String,
    /// Where it runs.
    pub deployment: Deployment,
    /// The Session Recording version it runs.
    pub version: String,
}

/// Installer options.
#[derive(InputObject, Default)]
pub struct InstallOptionsInput {
    /// The server's display name; defaults to the host.
    pub name: Option<String>,
    /// The version to install; default: the latest.
    pub version: Option<String>,
    /// Where it runs (default ON_PREMISES).
    #[graphql(default_with = "Deployment::OnPremises")]
    pub deployment: Deployment,
    /// Installer options passed through as given (an object of strings).
    pub extra: Option<Json<Value>>,
}

/// `installServer` input.
#[derive(InputObject)]
pub struct InstallServerInput {
    /// The site it joins.
    pub site_id: ID,
    /// The host to install on.
    pub host: String,
    /// Installer options.
    pub options: Option<InstallOptionsInput>,
}

impl InstallOptionsInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<dm::InstallOptions> {
        let mut extra = BTreeMap::new();
        match self.extra.map(|j| j.0) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let value = scalar_text(&value).ok_or_else(|| {
                        ApiError::validation(format!("options.extra.{key} must be a string"))
                    })?;
                    extra.insert(
                        name("options.extra", &key, limits)?,
                        text("options.extra", &value, limits)?,
                    );
                }
            }
            Some(_) => return Err(ApiError::validation("options.extra must be an object")),
        }
        Ok(dm::InstallOptions {
            name: opt_name("options.name", self.name.as_deref(), limits)?,
            version: opt_name("options.version", self.version.as_deref(), limits)?,
            deployment: self.deployment.into(),
            extra,
        })
    }
}

/// A message in one language.
#[derive(InputObject)]
pub struct LocalizedMessageInput {
    /// The language (e.g. `en`, `de-CH`).
    pub language: String,
    /// The message.
    pub text: String,
}

/// A change of server settings: only the given fields change.
/// `maxFileSizeMb` 10..300 (default 50), `maxRecordingHours` 1..24 (default 12).
#[derive(InputObject, Default)]
pub struct ServerSettingsInput {
    /// Where it stores recordings.
    pub storage_paths: Option<Vec<String>>,
    /// The largest recording file, in MB (10..300).
    pub max_file_size_mb: Option<i32>,
    /// The longest recording, in hours (1..24).
    pub max_recording_hours: Option<i32>,
    /// Whether live sessions may be watched.
    pub live_playback_enabled: Option<bool>,
    /// Whether downloads are encrypted.
    pub encrypt_downloads: Option<bool>,
    /// The messages shown to recorded users, per language.
    pub notification_messages: Option<Vec<LocalizedMessageInput>>,
    /// The signing certificate's thumbprint.
    pub signing_certificate_thumbprint: Option<String>,
    /// Whether recordings are signed.
    pub digital_signing_enabled: Option<bool>,
    /// Whether administration is logged.
    pub admin_logging_enabled: Option<bool>,
    /// Whether administration fails when it cannot be logged.
    pub admin_logging_mandatory: Option<bool>,
    /// Where archived recordings are restored to.
    pub restore_directory: Option<String>,
    /// Whether the server records at all.
    pub recording_enabled: Option<bool>,
    /// The sender of e-mail alerts.
    pub alert_sender: Option<String>,
}

fn small(value: Option<i32>, field: &str) -> ApiResult<Option<u32>> {
    value
        .map(|v| {
            u32::try_from(v)
                .map_err(|_| ApiError::validation(format!("`{field}` must not be negative")))
        })
        .transpose()
}

impl ServerSettingsInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<dm::SettingsPatch> {
        Ok(dm::SettingsPatch {
            storage_paths: self
                .storage_paths
                .map(|p| names("storagePaths", &p, limits))
                .transpose()?,
            restore_directory: opt_name(
                "restoreDirectory",
                self.restore_directory.as_deref(),
                limits,
            )?,
            max_file_size_mb: small(self.max_file_size_mb, "maxFileSizeMb")?,
            max_recording_hours: small(self.max_recording_hours, "maxRecordingHours")?,
            live_playback_enabled: self.live_playback_enabled,
            encrypt_downloads: self.encrypt_downloads,
            recording_enabled: self.recording_enabled,
            digital_signing_enabled: self.digital_signing_enabled,
            signing_certificate_thumbprint: opt_name(
                "signingCertificateThumbprint",
                self.signing_certificate_thumbprint.as_deref(),
                limits,
            )?,
            notification_messages: self
                .notification_messages
                .map(|messages| {
                    messages
                        .into_iter()
                        .map(|m| {
                            Ok(dm::LocalizedMessage {
                                language: name(
                                    "notificationMessages.language",
                                    &m.language,
                                    limits,
                                )?,
                                text: text("notificationMessages.text", &m.text, limits)?,
                            })
                        })
                        .collect::<ApiResult<Vec<_>>>()
                })
                .transpose()?,
            alert_sender: opt_name("alertSender", self.alert_sender.as_deref(), limits)?,
            admin_logging_enabled: self.admin_logging_enabled,
            admin_logging_mandatory: self.admin_logging_mandatory,
        })
    }
}

/// A session's attributes, as the server reports them.
#[derive(InputObject)]
pub struct SessionAttributesInput {
    /// `DOMAIN\user` or `user@domain`.
    pub user: String,
    /// The user's groups.
    pub groups: Option<Vec<String>>,
    /// The client machine's name.
    pub client_name: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
    /// The VDA machine.
    pub host: String,
    /// The delivery group.
    pub delivery_group: Option<String>,
    /// Published apps or the desktop name.
    pub applications: Option<Vec<String>>,
}

impl SessionAttributesInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<dm::SessionAttributes> {
        Ok(dm::SessionAttributes {
            user: name("session.user", &self.user, limits)?,
            groups: names("session.groups", &self.groups.unwrap_or_default(), limits)?,
            client_name: opt_name("session.clientName", self.client_name.as_deref(), limits)?,
            client_ip: opt_name("session.clientIp", self.client_ip.as_deref(), limits)?,
            host: name("session.host", &self.host, limits)?,
            delivery_group: opt_name(
                "session.deliveryGroup",
                self.delivery_group.as_deref(),
                limits,
            )?,
            applications: names(
                "session.applications",
                &self.applications.unwrap_or_default(),
                limits,
            )?,
        })
    }
}

/// `startRecording` input.
#[derive(InputObject)]
pub struct StartRecordingInput {
    /// The recording server.
    pub server_id: ID,
    /// The session's id on the server; with `serverId` the idempotency key.
    pub session_id: String,
    /// The session's attributes.
    pub session: SessionAttributesInput,
    /// When the session started; absent: now.
    pub started_at: Option<DateTime<Utc>>,
}

/// One session event.
#[derive(InputObject)]
pub struct SessionEventInput {
    /// The idempotency key.
    pub event_id: ID,
    /// What kind of event it is (it decides the shape of `data`).
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// From the session's start.
    pub offset_ms: i32,
    /// The type's data: a JSON object of scalars under the camelCase keys
    /// of the `SessionEventData` member the type reads back as (required
    /// ones marked `!`): LOGON, LOGOFF, DISCONNECT, RECONNECT
    /// `{clientName, clientIp}`; APP_START, APP_END, APP_FAILURE,
    /// APP_INSTALL, APP_UNINSTALL, TOP_MOST_WINDOW, POPUP_WINDOW
    /// `{app!, pid, title, detail}`; WEB_BROWSING `{url!, browser, title}`;
    /// FILE_CREATE, FILE_RENAME, FILE_DELETE, FILE_MOVE `{path!, newPath,
    /// sizeBytes}`; FILE_TRANSFER `{path!, direction! (CLIENT_TO_HOST |
    /// HOST_TO_CLIENT), sizeBytes}`; USB_MASS_STORAGE `{device!, action}`;
    /// CLIPBOARD `{app, format, sizeBytes}`; PRINT `{printer!, document,
    /// pages}`; REGISTRY_CHANGE `{key!, value, operation}`; IDLE
    /// `{seconds!}`; RDP_CONNECTION `{target!}`; PERFORMANCE_SAMPLE
    /// `{cpuPercent, memoryMb, latencyMs}`; CUSTOM `{name!, data}`;
    /// USER_ACCOUNT_CHANGE `{account!, change!}`. Other keys are ignored.
    pub data: Option<Json<Value>>,
}

/// A JSON scalar as text (strings as they are, numbers and booleans printed).
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl SessionEventInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<dm::SessionEvent> {
        let event_id = uuid(&self.event_id, "event")?;
        let event_type: dm::SessionEventType = self.event_type.into();
        let mut fields = BTreeMap::new();
        match self.data.map(|j| j.0) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let Some(value) = scalar_text(&value) else {
                        return Err(ApiError::validation(format!(
                            "event {event_id}: data.{key} must be a scalar"
                        )));
                    };
                    fields.insert(key, recorded("data", &value, limits)?);
                }
            }
            Some(_) => {
                return Err(ApiError::validation(format!(
                    "event {event_id}: data must be an object"
                )))
            }
        }
        let data = dm::SessionEventData::parse(event_type, &fields)
            .map_err(|e| ApiError::validation(format!("event {event_id}: {e}")))?;
        Ok(dm::SessionEvent {
            event_id,
            event_type,
            offset_ms: non_negative(self.offset_ms, "offsetMs")?,
            data,
        })
    }
}

/// One rule of a recording policy; empty criteria lists match anyone.
#[derive(InputObject)]
pub struct RecordingRuleInput {
    /// The rule's name, unique within the policy.
    pub name: String,
    /// What it does with a matching session.
    pub action: RecordingAction,
    /// Whether the recorded user is notified.
    pub notify: bool,
    /// Lossy (smaller) screen recording (default false).
    pub lossy: Option<bool>,
    /// Whether audio is recorded (default false).
    pub audio: Option<bool>,
    /// Users; with `groups`, either may match.
    pub users: Option<Vec<String>>,
    /// The users' groups; with `users`, either may match.
    pub groups: Option<Vec<String>>,
    /// Published applications or desktops.
    pub applications: Option<Vec<String>>,
    /// Delivery groups.
    pub delivery_groups: Option<Vec<String>>,
    /// VDA machines.
    pub hosts: Option<Vec<String>>,
    /// CIDR or single IP.
    pub client_ip_ranges: Option<Vec<String>>,
}

/// A recording policy.
#[derive(InputObject)]
pub struct RecordingPolicyInput {
    /// The policy's name.
    pub name: String,
    /// The rules, in the order they are tried.
    pub rules: Vec<RecordingRuleInput>,
    /// What happens to sessions no rule matches.
    pub fallback: RecordingAction,
    /// Whether the fallback notifies the user.
    #[graphql(default)]
    pub fallback_notify: bool,
}

fn list(field: &str, values: Option<Vec<String>>, limits: &Limits) -> ApiResult<Vec<String>> {
    names(field, &values.unwrap_or_default(), limits)
}

impl RecordingPolicyInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<(String, dm::PolicyBody)> {
        let rules = self
            .rules
            .into_iter()
            .map(|r| {
                Ok(dm::RecordingRule {
                    name: name("rules.name", &r.name, limits)?,
                    action: r.action.into(),
                    notify: r.notify,
                    lossy: r.lossy.unwrap_or(false),
                    audio: r.audio.unwrap_or(false),
                    criteria: dm::RecordingCriteria {
                        users: list("rules.users", r.users, limits)?,
                        groups: list("rules.groups", r.groups, limits)?,
                        applications: list("rules.applications", r.applications, limits)?,
                        delivery_groups: list("rules.deliveryGroups", r.delivery_groups, limits)?,
                        hosts: list("rules.hosts", r.hosts, limits)?,
                        client_ip_ranges: list("rules.clientIpRanges", r.client_ip_ranges, limits)?,
                    },
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((
            name("name", &self.name, limits)?,
            dm::PolicyBody::Recording(dm::RecordingPolicyBody {
                rules,
                fallback: self.fallback.into(),
                fallback_notify: self.fallback_notify,
            }),
        ))
    }
}

/// One detection rule.
#[derive(InputObject)]
pub struct DetectionRuleInput {
    /// The session event type it applies to.
    #[graphql(name = "type")]
    pub event_type: SessionEventType,
    /// The severity of what it detects.
    pub severity: Severity,
    /// Globs on the type's main field (app, URL host, path, device); empty: any.
    pub patterns: Option<Vec<String>>,
    /// For IDLE.
    pub idle_seconds: Option<i32>,
    /// The name detections show; absent: the type's name.
    pub name: Option<String>,
    /// Limit to these users / groups / hosts; empty: anyone.
    pub users: Option<Vec<String>>,
    /// Only sessions of users in these groups; empty: anyone.
    pub groups: Option<Vec<String>>,
    /// Only sessions on these VDA machines; empty: any.
    pub hosts: Option<Vec<String>>,
}

/// An event detection policy.
#[derive(InputObject)]
pub struct EventDetectionPolicyInput {
    /// The policy's name.
    pub name: String,
    /// The session event types stored at all; events of other types are
    /// refused (counted in `recordSessionEvents.ignored`).
    pub logged: Vec<SessionEventType>,
    /// What is a detection: a logged event is one only when a rule of its
    /// type matches it (the most severe matching rule names it).
    pub rules: Vec<DetectionRuleInput>,
    /// Globs of applications whose APP_START / APP_END / APP_FAILURE is an
    /// INFO detection ("Monitored application") where no rule matched; an
    /// empty list adds none. Rules naming applications detect them whatever
    /// this holds. Default: cmd.exe, powershell.exe, wsl.exe.
    pub monitored_apps: Option<Vec<String>>,
}

impl EventDetectionPolicyInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<(String, dm::PolicyBody)> {
        let rules = self
            .rules
            .into_iter()
            .map(|r| {
                Ok(dm::DetectionRule {
                    name: opt_name("rules.name", r.name.as_deref(), limits)?,
                    event_type: r.event_type.into(),
                    severity: r.severity.into(),
                    patterns: list("rules.patterns", r.patterns, limits)?,
                    idle_seconds: r
                        .idle_seconds
                        .map(|s| non_negative(s, "idleSeconds"))
                        .transpose()?,
                    scope: dm::Scope {
                        users: list("rules.users", r.users, limits)?,
                        groups: list("rules.groups", r.groups, limits)?,
                        hosts: list("rules.hosts", r.hosts, limits)?,
                    },
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        let monitored_apps = match self.monitored_apps {
            Some(apps) => names("monitoredApps", &apps, limits)?,
            None => dm::DEFAULT_MONITORED_APPS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        };
        Ok((
            name("name", &self.name, limits)?,
            dm::PolicyBody::EventDetection(dm::DetectionPolicyBody {
                logged: self.logged.into_iter().map(Into::into).collect(),
                rules,
                monitored_apps,
            }),
        ))
    }
}

/// One event response rule.
#[derive(InputObject)]
pub struct ResponseRuleInput {
    /// The rule's name, unique within the policy.
    pub name: String,
    /// Trigger when a session starts (besides detected events).
    pub on_session_start: Option<bool>,
    /// Detected event types that trigger it (must be types the active detection policy logs).
    pub types: Option<Vec<SessionEventType>>,
    /// The least severity of a detection that fires it.
    pub min_severity: Severity,
    /// Only sessions of these users; empty: anyone.
    pub users: Option<Vec<String>>,
    /// Only sessions on these VDA machines; empty: any.
    pub hosts: Option<Vec<String>>,
    /// What it does, each action once.
    pub actions: Vec<ResponseAction>,
    /// For EMAIL_ALERT.
    pub recipients: Option<Vec<String>>,
    /// For LOCK_SESSION.
    pub message: Option<String>,
    /// Minimum seconds between two firings on one session.
    pub cooldown_sec: Option<i32>,
}

/// An event response policy.
#[derive(InputObject)]
pub struct EventResponsePolicyInput {
    /// The policy's name.
    pub name: String,
    /// The response rules.
    pub rules: Vec<ResponseRuleInput>,
}

impl EventResponsePolicyInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<(String, dm::PolicyBody)> {
        let rules = self
            .rules
            .into_iter()
            .map(|r| {
                let scope = dm::Scope {
                    users: list("rules.users", r.users, limits)?,
                    groups: Vec::new(),
                    hosts: list("rules.hosts", r.hosts, limits)?,
                };
                let min_severity: dm::Severity = r.min_severity.into();
                let mut triggers = Vec::new();
                if r.on_session_start.unwrap_or(false) {
                    triggers.push(dm::ResponseTrigger {
                        description: "session start".into(),
                        on: dm::TriggerOn::SessionStart,
                        scope: scope.clone(),
                    });
                }
                let types: BTreeSet<dm::SessionEventType> = r
                    .types
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect();
                if !types.is_empty() || triggers.is_empty() {
                    let listed: Vec<&str> = types.iter().map(|t| t.as_str()).collect();
                    triggers.push(dm::ResponseTrigger {
                        description: format!(
                            "{} at {:?} or above",
                            listed.join(", "),
                            min_severity
                        ),
                        on: dm::TriggerOn::Detection {
                            types,
                            min_severity,
                        },
                        scope,
                    });
                }
                let recipients = list("rules.recipients", r.recipients, limits)?;
                let message = text(
                    "rules.message",
                    r.message.as_deref().unwrap_or_default(),
                    limits,
                )?;
                let actions = r
                    .actions
                    .into_iter()
                    .map(|a| match a {
                        ResponseAction::EmailAlert => dm::ResponseAction::EmailAlert {
                            recipients: recipients.clone(),
                        },
                        ResponseAction::StartScreenRecording => {
                            dm::ResponseAction::StartScreenRecording
                        }
                        ResponseAction::LockSession => dm::ResponseAction::LockSession {
                            message: message.clone(),
                        },
                        ResponseAction::LogOffSession => dm::ResponseAction::LogOffSession,
                        ResponseAction::DisconnectSession => dm::ResponseAction::DisconnectSession,
                    })
                    .collect();
                Ok(dm::ResponseRule {
                    name: name("rules.name", &r.name, limits)?,
                    triggers,
                    actions,
                    cooldown_sec: u32::try_from(r.cooldown_sec.unwrap_or(0))
                        .map_err(|_| ApiError::validation("cooldownSec must not be negative"))?,
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        Ok((
            name("name", &self.name, limits)?,
            dm::PolicyBody::EventResponse(dm::ResponsePolicyBody { rules }),
        ))
    }
}

/// A policy's new content: exactly one of the three, of the policy's kind.
#[derive(InputObject)]
pub struct PolicyUpdateInput {
    /// A RECORDING policy's new content.
    pub recording: Option<RecordingPolicyInput>,
    /// An EVENT_DETECTION policy's new content.
    pub event_detection: Option<EventDetectionPolicyInput>,
    /// An EVENT_RESPONSE policy's new content.
    pub event_response: Option<EventResponsePolicyInput>,
}

impl PolicyUpdateInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<(String, dm::PolicyBody)> {
        match (self.recording, self.event_detection, self.event_response) {
            (Some(r), None, None) => r.into_domain(limits),
            (None, Some(d), None) => d.into_domain(limits),
            (None, None, Some(e)) => e.into_domain(limits),
            _ => Err(ApiError::validation(
                "give exactly one of `recording`, `eventDetection`, `eventResponse`",
            )),
        }
    }
}

/// Which recordings of its site a playback permission admits: either the
/// whole site (`wholeSite: true` and no criteria, or no criteria at all) or
/// the recordings that match every criterion given (a list matches when
/// any of its entries does). An AUDITOR sees and plays only the
/// unrestricted recordings one of its permissions admits: without a
/// permission on a site, none of it.
#[derive(InputObject, Default)]
pub struct PlaybackScopeInput {
    /// `true`: every recording of the site; takes no criteria. `false`:
    /// needs at least one criterion. Absent: the whole site exactly when no
    /// criterion is given.
    pub whole_site: Option<bool>,
    /// Recorded users; empty: any.
    pub recorded_users: Option<Vec<String>>,
    /// Groups of the recorded users; empty: any.
    pub recorded_groups: Option<Vec<String>>,
    /// Servers; empty: any.
    pub server_ids: Option<Vec<ID>>,
    /// VDA machines; empty: any.
    pub hosts: Option<Vec<String>>,
    /// Delivery groups; empty: any.
    pub delivery_groups: Option<Vec<String>>,
    /// Applications; empty: any.
    pub applications: Option<Vec<String>>,
}

/// `grantPlaybackPermission` input.
#[derive(InputObject)]
pub struct GrantPlaybackPermissionInput {
    /// The site it covers.
    pub site_id: ID,
    /// Who holds it: a principal (a token's name), a group a token
    /// carries, or exactly one token as `token:<token id>`.
    pub principal: String,
    /// Which of the site's recordings it admits.
    pub scope: PlaybackScopeInput,
}

impl PlaybackScopeInput {
    pub fn into_domain(self, limits: &Limits) -> ApiResult<dm::PlaybackScope> {
        let whole_site = self.whole_site;
        let scope = dm::PlaybackScope {
            recorded_users: list("scope.recordedUsers", self.recorded_users, limits)?,
            recorded_groups: list("scope.recordedGroups", self.recorded_groups, limits)?,
            server_ids: uuids(&self.server_ids.unwrap_or_default(), "server")?,
            hosts: list("scope.hosts", self.hosts, limits)?,
            delivery_groups: list("scope.deliveryGroups", self.delivery_groups, limits)?,
            applications: list("scope.applications", self.applications, limits)?,
        };
        match (whole_site, scope.is_whole_site()) {
            (Some(true), false) => Err(ApiError::validation(
                "scope.wholeSite: true admits the whole site and takes no criteria: \
                 leave recordedUsers, recordedGroups, serverIds, hosts, deliveryGroups and \
                 applications empty, or drop wholeSite",
            )),
            (Some(false), true) => Err(ApiError::validation(
                "scope.wholeSite: false needs at least one criterion (recordedUsers, \
                 recordedGroups, serverIds, hosts, deliveryGroups, applications); \
                 a scope without any admits the whole site",
            )),
            _ => Ok(scope),
        }
    }
}

/// `setRetentionPolicy` input.
#[derive(InputObject)]
pub struct RetentionPolicyInput {
    /// Days after a recording's end before it is archived; absent: never.
    pub archive_after_days: Option<i32>,
    /// Days after a recording's end before it is deleted; absent: never.
    pub delete_after_days: Option<i32>,
    /// The daily run time, `HH:MM` UTC (default 02:00).
    pub run_at: Option<String>,
    /// Spare restricted recordings (default true).
    #[graphql(default = true)]
    pub exclude_restricted: bool,
}

impl RetentionPolicyInput {
    pub fn into_domain(self) -> ApiResult<dm::RetentionPolicy> {
        let run_at = match self.run_at.as_deref() {
            Some(text) => dm::TimeOfDay::parse(text).map_err(ApiError::validation)?,
            None => dm::TimeOfDay { hour: 2, minute: 0 },
        };
        Ok(dm::RetentionPolicy {
            archive_after_days: small(self.archive_after_days, "archiveAfterDays")?,
            delete_after_days: small(self.delete_after_days, "deleteAfterDays")?,
            run_at,
            exclude_restricted: self.exclude_restricted,
        })
    }
}

/// `issueToken` input.
#[derive(InputObject)]
pub struct IssueTokenInput {
    /// The principal the token is issued to.
    pub name: String,
    /// What its holder may do.
    pub role: Role,
    /// The sites it acts on; empty or absent: all sites.
    pub site_ids: Option<Vec<ID>>,
    /// The principal's groups (playback permissions may name them).
    pub groups: Option<Vec<String>>,
    /// When the token stops authenticating: in the future, at most ten
    /// years ahead (else `VALIDATION`); absent: never.
    pub expires_at: Option<DateTime<Utc>>,
}

/// What `tokens` lists; set fields combine with AND.
#[derive(InputObject, Default)]
pub struct TokenFilter {
    /// Tokens of this role.
    pub role: Option<Role>,
    /// Tokens that act on this site: scoped to it, or to all sites.
    pub site_id: Option<ID>,
    /// The AGENT tokens of this server (the current one and those
    /// rotated away).
    pub server_id: Option<ID>,
    /// A part of the principal's name, case-insensitive.
    pub name: Option<String>,
    /// Revoked (true) or not (false).
    pub revoked: Option<bool>,
    /// Expired now (revoked ones included).
    pub expired: Option<bool>,
}

impl TokenFilter {
    /// The read model's filter; `VALIDATION` for a malformed id or name.
    pub fn into_query(
        self,
        limits: &Limits,
    ) -> ApiResult<srs_projections::models::tokens::TokenFilter> {
        Ok(srs_projections::models::tokens::TokenFilter {
            role: self.role.map(Into::into),
            site_id: opt_uuid(self.site_id.as_ref(), "site")?,
            server_id: opt_uuid(self.server_id.as_ref(), "server")?,
            name: self.name.map(|n| name("name", &n, limits)).transpose()?,
            revoked: self.revoked,
            expired: self.expired,
        })
    }
}

/// What `recordings` filters by; set fields combine with AND, lists match any value.
#[derive(InputObject, Default)]
pub struct RecordingFilter {
    /// One site's recordings.
    pub site_id: Option<ID>,
    /// One server's recordings.
    pub server_id: Option<ID>,
    /// Any of these users.
    pub users: Option<Vec<String>>,
    /// Any of these client addresses.
    pub client_ips: Option<Vec<String>>,
    /// VDA machines.
    pub hosts: Option<Vec<String>>,
    /// Any of these applications.
    pub applications: Option<Vec<String>>,
    /// Any of these delivery groups.
    pub delivery_groups: Option<Vec<String>>,
    /// Started at or after this time.
    pub started_after: Option<DateTime<Utc>>,
    /// Started before this time.
    pub started_before: Option<DateTime<Utc>>,
    /// At least this long (seconds).
    pub min_duration_sec: Option<i32>,
    /// At most this long (seconds).
    pub max_duration_sec: Option<i32>,
    /// In progress.
    pub live: Option<bool>,
    /// With (true) or without (false) detections.
    pub has_detections: Option<bool>,
    /// With a detection of this severity or above.
    pub min_severity: Option<Severity>,
    /// Restricted (true) or not (false).
    pub restricted: Option<bool>,
    /// Case-insensitive substring of user, host, applications, client, or a comment.
    pub text: Option<String>,
}

impl RecordingFilter {
    pub fn into_query(self, limits: &Limits) -> ApiResult<RecordingQueryFilter> {
        Ok(RecordingQueryFilter {
            site_id: opt_uuid(self.site_id.as_ref(), "site")?,
            server_id: opt_uuid(self.server_id.as_ref(), "server")?,
            users: list("users", self.users, limits)?,
            client_ips: list("clientIps", self.client_ips, limits)?,
            hosts: list("hosts", self.hosts, limits)?,
            applications: list("applications", self.applications, limits)?,
            delivery_groups: list("deliveryGroups", self.delivery_groups, limits)?,
            started_after: self.started_after.map(timestamp),
            started_before: self.started_before.map(timestamp),
            min_duration_sec: self
                .min_duration_sec
                .map(|d| non_negative(d, "minDurationSec"))
                .transpose()?,
            max_duration_sec: self
                .max_duration_sec
                .map(|d| non_negative(d, "maxDurationSec"))
                .transpose()?,
            live: self.live,
            has_detections: self.has_detections,
            min_severity: self.min_severity.map(Into::into),
            restricted: self.restricted,
            text: opt_name("text", self.text.as_deref(), limits)?,
        })
    }
}

/// What `detectedEvents` filters by.
#[derive(InputObject, Default)]
pub struct DetectionFilter {
    /// One site's detections.
    pub site_id: Option<ID>,
    /// One recording's detections.
    pub recording_id: Option<ID>,
    /// Any of these event types; absent: all.
    pub types: Option<Vec<SessionEventType>>,
    /// From this severity up.
    pub min_severity: Option<Severity>,
    /// Detections of this rule.
    pub rule: Option<String>,
    /// Detections in this user's sessions.
    pub user: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
}

impl DetectionFilter {
    pub fn into_query(self, limits: &Limits) -> ApiResult<DetectionQuery> {
        Ok(DetectionQuery {
            site_ids: opt_uuid(self.site_id.as_ref(), "site")?
                .into_iter()
                .collect(),
            recording_id: opt_uuid(self.recording_id.as_ref(), "recording")?,
            types: self
                .types
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            min_severity: self.min_severity.map(Into::into),
            rule: opt_name("rule", self.rule.as_deref(), limits)?,
            user: opt_name("user", self.user.as_deref(), limits)?,
            from: self.from.map(timestamp),
            to: self.to.map(timestamp),
        })
    }
}

/// What `auditTrail` filters by.
#[derive(InputObject, Default)]
pub struct AuditFilter {
    /// Any of these categories; absent: all.
    pub categories: Option<Vec<AuditCategory>>,
    /// `principal:<name>`, `agent:<server id>` or `system:<component>`.
    pub actor: Option<String>,
    /// One site's entries.
    pub site_id: Option<ID>,
    /// e.g. `recording:<id>`.
    pub target: Option<String>,
    /// From this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Before this time.
    pub to: Option<DateTime<Utc>>,
}

impl AuditFilter {
    pub fn into_query(self, limits: &Limits) -> ApiResult<AuditQuery> {
        Ok(AuditQuery {
            categories: self
                .categories
                .unwrap_or_default()
                .into_iter()
                .map(Into::into)
                .collect(),
            actor: opt_name("actor", self.actor.as_deref(), limits)?,
            site_id: opt_uuid(self.site_id.as_ref(), "site")?,
            target: opt_name("target", self.target.as_deref(), limits)?,
            from: self.from.map(timestamp),
            to: self.to.map(timestamp),
        })
    }
}

/// What `history` filters by.
#[derive(InputObject, Default)]
pub struct HistoryFilter {
    /// From this log position (inclusive).
    pub from_position: Option<i32>,
    /// Up to this log position (inclusive).
    pub to_position: Option<i32>,
    /// One stream, e.g. `recording-<id>`.
    pub stream: Option<String>,
    /// Event type names, e.g. `RecordingPlayed`.
    pub types: Option<Vec<String>>,
    /// `principal:<name>`, `agent:<server id>` or `system:<component>`.
    pub actor: Option<String>,
    /// One site's events.
    pub site_id: Option<ID>,
    /// One recording's events.
    pub recording_id: Option<ID>,
    /// Recorded from this time (inclusive).
    pub from: Option<DateTime<Utc>>,
    /// Recorded before this time.
    pub to: Option<DateTime<Utc>>,
}
