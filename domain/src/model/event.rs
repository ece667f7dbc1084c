//! [`DomainEvent`]: the one payload type of the log, one variant per fact.
//!
//! # Evolution
//!
//! Stored events are bincode-encoded, which identifies a variant by its
//! position and a field by its order. So the enum only ever grows **at the
//! end**: a stored variant is never reordered, renamed in meaning, or given
//! other fields. A changed fact gets a new variant (`FooV2`) and
//! [`Event::upcast`] maps the old one to it at read time: the log's codec
//! upcasts every payload it decodes into an envelope (see `log::codec`),
//! so the old variant is only ever decoded, never seen by a reader of the
//! log nor written. The same holds for every type a variant contains.
//!
//! | stored variant | read as | since |
//! |---|---|---|
//! | `RetentionRunCompleted` | `RetentionRunCompletedV2` with `held: 0` | legal holds |
//!
//! # Self-contained facts
//!
//! Each variant carries the ids a read model needs (`site_id`, `server_id`,
//! the recording's user and host, ...) so that projections fold events
//! without loading anything else. Who caused an event is in the envelope's
//! `actor`; variants only repeat it where the fact is about a person (the
//! restricting principal, a comment's author, the viewer).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::aggregate::derived_id;
use super::hold::HoldScope;
use super::permission::PlaybackScope;
use super::policy::{
    PolicyBody, PolicyKind, RecordingDecision, RecordingMode, ResponseAction, Severity,
};
use super::recording::{CommentSeverity, PlaybackKind};
use super::retention::RetentionPolicy;
use super::server::{Deployment, InstallOptions, InstallStatus, InstallStep, ServerSettings};
use super::session_event::{PlainFacts, SessionEvent, SessionEventType};
use super::token::Role;
use crate::log::Event;
use crate::seal::Sealed;
use crate::time::Timestamp;

/// Every fact srs records. See the module docs before adding one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub enum DomainEvent {
    // ---- site (stream `site-<id>`) -----------------------------------------
    SiteCreated {
        site_id: Uuid,
        name: String,
        at: Timestamp,
    },
    SiteRenamed {
        site_id: Uuid,
        name: String,
        previous_name: String,
        at: Timestamp,
    },

    // ---- server (stream `server-<id>`) -------------------------------------
    /// A server joined; only the SHA-256 (hex) of its agent secret is kept.
    ServerConnected {
        server_id: Uuid,
        site_id: Uuid,
        name: String,
        host: String,
        deployment: Deployment,
        version: String,
        credential_sha256: String,
        at: Timestamp,
    },
    /// The service was asked to install a server; the installer reports
    /// progress with the credential whose hash is kept here.
    ServerInstallRequested {
        server_id: Uuid,
        site_id: Uuid,
        job_id: Uuid,
        host: String,
        options: InstallOptions,
        credential_sha256: String,
        at: Timestamp,
    },
    InstallProgressReported {
        server_id: Uuid,
        site_id: Uuid,
        job_id: Uuid,
        step: InstallStep,
        status: InstallStatus,
        message: Option<String>,
        at: Timestamp,
    },
    /// The full new settings; `version` counts settings changes from 1.
    ServerSettingsChanged {
        server_id: Uuid,
        site_id: Uuid,
        settings: ServerSettings,
        version: u64,
        at: Timestamp,
    },
    ServerDisconnected {
        server_id: Uuid,
        site_id: Uuid,
        at: Timestamp,
    },
    /// No heartbeat for the liveness period.
    ServerWentOffline {
        server_id: Uuid,
        site_id: Uuid,
        last_heartbeat: Timestamp,
        at: Timestamp,
    },
    ServerCameOnline {
        server_id: Uuid,
        site_id: Uuid,
        at: Timestamp,
    },

    // ---- policies (content on `policy-<id>`, activation on the site) -------
    PolicyCreated {
        policy_id: Uuid,
        site_id: Uuid,
        kind: PolicyKind,
        name: String,
        body: PolicyBody,
        at: Timestamp,
    },
    PolicyUpdated {
        policy_id: Uuid,
        site_id: Uuid,
        kind: PolicyKind,
        name: String,
        body: PolicyBody,
        at: Timestamp,
    },
    /// On the site stream: `policy_id` is now the site's active policy of
    /// `kind`, replacing `previous_policy_id`.
    PolicyActivated {
        site_id: Uuid,
        kind: PolicyKind,
        policy_id: Uuid,
        policy_name: String,
        previous_policy_id: Uuid,
        at: Timestamp,
    },
    /// On the site stream.
    PolicyDeleted {
        site_id: Uuid,
        kind: PolicyKind,
        policy_id: Uuid,
        at: Timestamp,
    },

    // ---- playback permissions (stream `permission-<id>`) -------------------
    PlaybackPermissionGranted {
        permission_id: Uuid,
        site_id: Uuid,
        /// A principal name or one of a principal's groups.
        principal: String,
        scope: PlaybackScope,
        at: Timestamp,
    },
    PlaybackPermissionRevoked {
        permission_id: Uuid,
        site_id: Uuid,
        principal: String,
        at: Timestamp,
    },

    // ---- recordings (stream `recording-<id>`) ------------------------------
    /// A session is being recorded, and why (`decision`).
    RecordingStarted {
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        /// The session's id on the server.
        session_id: String,
        /// 1 for the first recording of a session, n+1 after each rollover.
        part: u32,
        previous_recording_id: Option<Uuid>,
        user: String,
        domain: Option<String>,
        groups: Vec<String>,
        client_name: Option<String>,
        client_ip: Option<String>,
        host: String,
        delivery_group: Option<String>,
        applications: Vec<String>,
        mode: RecordingMode,
        decision: RecordingDecision,
        started_at: Timestamp,
    },
    /// A session started but the policy said DO_NOT_RECORD: the decision
    /// is a fact for the admin log; there is no recording.
    RecordingDeclined {
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        session_id: String,
        part: u32,
        user: String,
        host: String,
        client_ip: Option<String>,
        decision: RecordingDecision,
        at: Timestamp,
    },
    /// One session event; the log event's id is the session event's id.
    SessionEventRecorded {
        recording_id: Uuid,
        site_id: Uuid,
        event: SessionEvent,
    },
    /// The detection policy flagged a session event.
    EventDetected {
        detection_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        user: String,
        host: String,
        /// The session event.
        event_id: Uuid,
        event_type: SessionEventType,
        severity: Severity,
        rule: String,
        policy_id: Uuid,
        /// The app, URL host, path, ... the rule looked at.
        subject: Option<String>,
        at_offset_ms: u64,
    },
    /// A response action is due on the recording's server (pending until
    /// `ResponseDelivered`).
    ResponseTriggered {
        response_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        session_id: String,
        user: String,
        host: String,
        policy_id: Uuid,
        rule: String,
        trigger: String,
        action: ResponseAction,
        /// The detection that fired it; `None` when a session start did.
        detection_id: Option<Uuid>,
        event_type: Option<SessionEventType>,
        severity: Option<Severity>,
        /// Where to play the recording from (alert links).
        at_offset_ms: u64,
        at: Timestamp,
    },
    /// The agent carried out (or reported failing) a response action.
    ResponseDelivered {
        response_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        outcome: String,
        at: Timestamp,
    },
    RecordingEnded {
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        ended_at: Timestamp,
    },
    RecordingRestricted {
        recording_id: Uuid,
        site_id: Uuid,
        reason: String,
        by: String,
        at: Timestamp,
    },
    RecordingRestrictionRemoved {
        recording_id: Uuid,
        site_id: Uuid,
        reason: String,
        by: String,
        at: Timestamp,
    },
    /// The log event's id is the comment's id.
    CommentAdded {
        comment_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        author: String,
        text: String,
        severity: CommentSeverity,
        offset_ms: Option<u64>,
        at: Timestamp,
    },
    CommentDeleted {
        comment_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        by: String,
        at: Timestamp,
    },
    /// Every playback and download is a fact.
    RecordingPlayed {
        recording_id: Uuid,
        site_id: Uuid,
        by: String,
        kind: PlaybackKind,
        at: Timestamp,
    },
    RecordingArchived {
        recording_id: Uuid,
        site_id: Uuid,
        at: Timestamp,
    },
    RecordingRestored {
        recording_id: Uuid,
        site_id: Uuid,
        at: Timestamp,
    },
    /// The content key is destroyed with it (crypto-shredding); the facts stay.
    RecordingDeleted {
        recording_id: Uuid,
        site_id: Uuid,
        at: Timestamp,
    },
    /// A piece of recorded content was stored (content store, later issue).
    ContentChunkStored {
        recording_id: Uuid,
        site_id: Uuid,
        seq: u64,
        size: u64,
        /// Hex SHA-256 of the chunk.
        sha256: String,
    },

    // ---- retention (stream `retention-<site id>`) --------------------------
    RetentionPolicySet {
        site_id: Uuid,
        policy: RetentionPolicy,
        at: Timestamp,
    },
    /// A retention run before legal holds. Superseded: no longer written,
    /// read as [`DomainEvent::RetentionRunCompletedV2`] with `held: 0`.
    RetentionRunCompleted {
        site_id: Uuid,
        archived: u64,
        deleted: u64,
        ran_at: Timestamp,
    },

    // ---- principals and tokens (stream `token-<id>`) -----------------------
    /// Only the SHA-256 (hex) of the secret is kept. Empty `site_ids`: all sites.
    TokenIssued {
        token_id: Uuid,
        name: String,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        secret_sha256: String,
        at: Timestamp,
    },
    TokenRevoked {
        token_id: Uuid,
        name: String,
        at: Timestamp,
    },

    // ---- access (stream `access-denied`) -----------------------------------
    /// A refused attempt: an audit fact of its own.
    AccessDenied {
        principal: String,
        token_id: Option<Uuid>,
        role: Option<Role>,
        action: String,
        target: String,
        site_id: Option<Uuid>,
        at: Timestamp,
    },

    // ---- recordings, continued (stream `recording-<id>`) -------------------
    /// What the recording's content is (a MIME type), declared with its
    /// first chunk when it is not the default `application/octet-stream`,
    /// e.g. `application/x-asciicast` for an uploaded terminal session.
    ContentTypeDeclared {
        recording_id: Uuid,
        site_id: Uuid,
        content_type: String,
    },

    // ---- the log itself (stream `log-exports`) -----------------------------
    /// The log up to `to_position` was exported (`srs export`): who took a
    /// copy of the history, when, and which file (its SHA-256) it was.
    LogExported {
        to_position: u64,
        head_hash: String,
        file_sha256: String,
        events: u64,
        by: String,
        at: Timestamp,
    },

    // ---- session index (stream `session-<derived id>`) ---------------------
    /// Part `part` of a server's session is (or will be) recording
    /// `recording_id`. The session stream is the index that keeps
    /// `startRecording` idempotent by server and session while recording
    /// ids are random (see `model::session`). It is appended before the
    /// recording's `RecordingStarted`, so read models skip it: the
    /// recording it names may not have started yet.
    RecordingPartAssigned {
        site_id: Uuid,
        server_id: Uuid,
        session_id: String,
        part: u32,
        recording_id: Uuid,
        at: Timestamp,
    },

    // ---- access, continued (stream `access-denied`) ------------------------
    /// Several refusals of one principal as one fact: the `refused` fields
    /// and operations one request was refused (the first one's action,
    /// target and site are named), plus the `suppressed` earlier refusals
    /// of the same principal that were not written down because it was
    /// over its rate of refusal facts (see `app::denials`). A single
    /// refusal with nothing suppressed is still an [`DomainEvent::AccessDenied`].
    AccessDeniedRepeated {
        principal: String,
        token_id: Option<Uuid>,
        role: Option<Role>,
        action: String,
        target: String,
        site_id: Option<Uuid>,
        refused: u32,
        suppressed: u64,
        at: Timestamp,
    },

    // ---- legal holds (stream `legal-holds`, see `model::hold`) -------------
    /// Recordings of `site_id` that `scope` covers may not be deleted, by
    /// hand or by retention, until the hold is released. `by` is the
    /// principal who placed it.
    LegalHoldPlaced {
        hold_id: Uuid,
        site_id: Uuid,
        scope: HoldScope,
        reason: String,
        by: String,
        at: Timestamp,
    },
    /// The hold no longer covers anything; `scope` repeats what it covered.
    LegalHoldReleased {
        hold_id: Uuid,
        site_id: Uuid,
        scope: HoldScope,
        reason: Option<String>,
        by: String,
        at: Timestamp,
    },

    // ---- retention, continued (stream `retention-<site id>`) ---------------
    /// A retention run, with `held`: the recordings due for deletion that
    /// it did not delete because a legal hold covers them (or another part
    /// of their session). Runs write this since legal holds; older runs
    /// are [`DomainEvent::RetentionRunCompleted`], read as this with
    /// `held: 0` ([`Event::upcast`]).
    RetentionRunCompletedV2 {
        site_id: Uuid,
        archived: u64,
        deleted: u64,
        held: u64,
        ran_at: Timestamp,
    },
    // ---- the log itself, continued (stream `backups`) ----------------------
    /// A backup (`srs backup`) was taken as of `to_position`: the log up to
    /// there, `chunks` content chunks and the keys of `keys` recordings
    /// (encrypted under the backup's passphrase or key file) left the data
    /// directory in one file, whose trailer checksum is `file_sha256`.
    BackupTaken {
        to_position: u64,
        head_hash: String,
        file_sha256: String,
        events: u64,
        keys: u64,
        chunks: u64,
        by: String,
        at: Timestamp,
    },

    // ---- tokens, continued (stream `token-<id>`) ---------------------------
    /// The token stops authenticating at `expires_at`. Appended with its
    /// `TokenIssued`, in the same append (a token never exists without
    /// the expiry it was issued with).
    TokenExpirySet {
        token_id: Uuid,
        expires_at: Timestamp,
        at: Timestamp,
    },
    /// Token `token_id` is revoked and `new_token_id` takes its place: the
    /// same principal, role, sites and groups under a new secret (only its
    /// SHA-256 kept). One event, so the switch is atomic: there is no
    /// moment with both secrets valid or neither. It is stored on the
    /// stream of the first token of the lineage (`token-<first id>`), under
    /// the log id `new_token_id`, which is how the new token's stream is
    /// found (see `app::commands::token`). `expires_at`: the new token's expiry.
    TokenRotated {
        token_id: Uuid,
        new_token_id: Uuid,
        name: String,
        role: Role,
        site_ids: BTreeSet<Uuid>,
        groups: Vec<String>,
        secret_sha256: String,
        expires_at: Option<Timestamp>,
        at: Timestamp,
    },

    // ---- server, continued (stream `server-<id>`) --------------------------
    /// The server's agent credential `previous_token_id` is revoked and
    /// `token_id` (secret SHA-256 `credential_sha256`) replaces it, in one
    /// event. The first credential of a server (from `ServerConnected` or
    /// `ServerInstallRequested`) has the server's id as its token id. The
    /// log id of this event is `token_id`.
    AgentTokenRotated {
        server_id: Uuid,
        site_id: Uuid,
        token_id: Uuid,
        previous_token_id: Uuid,
        credential_sha256: String,
        at: Timestamp,
    },

    // ---- migrations (stream `migration-<name>`) ----------------------------
    /// The log was moved to explicit playback permissions (an AUDITOR sees
    /// only what a permission grants): the whole-site permissions
    /// `permission_ids` were granted to the AUDITOR tokens `token_ids`, which
    /// held none on those sites and so saw them whole under the old rule.
    /// Written once, empty lists on a new log (see `model::migration`).
    PlaybackPermissionsMigrated {
        permission_ids: Vec<Uuid>,
        token_ids: Vec<Uuid>,
        at: Timestamp,
    },

    // ---- recordings, sealed (stream `recording-<id>`) ----------------------
    /// One session event whose data is sealed under the recording's key
    /// (`crate::seal`): what the service stores for a
    /// [`DomainEvent::SessionEventRecorded`] the aggregate decided. The
    /// log event's id is `event_id`. Only the ids, type, offset and the
    /// [`PlainFacts`] stay plain; once the recording is deleted and its key
    /// destroyed, `data` can no longer be opened.
    SessionEventSealed {
        recording_id: Uuid,
        site_id: Uuid,
        event_id: Uuid,
        event_type: SessionEventType,
        /// Milliseconds from the session's start.
        offset_ms: u64,
        facts: PlainFacts,
        /// The bincode of the event's `SessionEventData`, sealed.
        data: Sealed,
    },
    /// [`DomainEvent::EventDetected`] with its subject (the app, URL host,
    /// path, ... the rule looked at) sealed under the recording's key.
    EventDetectedSealed {
        detection_id: Uuid,
        recording_id: Uuid,
        site_id: Uuid,
        server_id: Uuid,
        user: String,
        host: String,
        event_id: Uuid,
        event_type: SessionEventType,
        severity: Severity,
        rule: String,
        policy_id: Uuid,
        /// The subject's UTF-8, sealed.
        subject: Option<Sealed>,
        at_offset_ms: u64,
    },
}

impl DomainEvent {
    /// The variant's name, e.g. `RecordingStarted`.
    pub fn name(&self) -> &'static str {
        match self {
            DomainEvent::SiteCreated { .. } => "SiteCreated",
            DomainEvent::SiteRenamed { .. } => "SiteRenamed",
            DomainEvent::ServerConnected { .. } => "ServerConnected",
            DomainEvent::ServerInstallRequested { .. } => "ServerInstallRequested",
            DomainEvent::InstallProgressReported { .. } => "InstallProgressReported",
            DomainEvent::ServerSettingsChanged { .. } => "ServerSettingsChanged",
            DomainEvent::ServerDisconnected { .. } => "ServerDisconnected",
            DomainEvent::ServerWentOffline { .. } => "ServerWentOffline",
            DomainEvent::ServerCameOnline { .. } => "ServerCameOnline",
            DomainEvent::PolicyCreated { .. } => "PolicyCreated",
            DomainEvent::PolicyUpdated { .. } => "PolicyUpdated",
            DomainEvent::PolicyActivated { .. } => "PolicyActivated",
            DomainEvent::PolicyDeleted { .. } => "PolicyDeleted",
            DomainEvent::PlaybackPermissionGranted { .. } => "PlaybackPermissionGranted",
            DomainEvent::PlaybackPermissionRevoked { .. } => "PlaybackPermissionRevoked",
            DomainEvent::RecordingStarted { .. } => "RecordingStarted",
            DomainEvent::RecordingDeclined { .. } => "RecordingDeclined",
            DomainEvent::SessionEventRecorded { .. } => "SessionEventRecorded",
            DomainEvent::EventDetected { .. } => "EventDetected",
            DomainEvent::ResponseTriggered { .. } => "ResponseTriggered",
            DomainEvent::ResponseDelivered { .. } => "ResponseDelivered",
            DomainEvent::RecordingEnded { .. } => "RecordingEnded",
            DomainEvent::RecordingRestricted { .. } => "RecordingRestricted",
            DomainEvent::RecordingRestrictionRemoved { .. } => "RecordingRestrictionRemoved",
            DomainEvent::CommentAdded { .. } => "CommentAdded",
            DomainEvent::CommentDeleted { .. } => "CommentDeleted",
            DomainEvent::RecordingPlayed { .. } => "RecordingPlayed",
            DomainEvent::RecordingArchived { .. } => "RecordingArchived",
            DomainEvent::RecordingRestored { .. } => "RecordingRestored",
            DomainEvent::RecordingDeleted { .. } => "RecordingDeleted",
            DomainEvent::ContentChunkStored { .. } => "ContentChunkStored",
            DomainEvent::RetentionPolicySet { .. } => "RetentionPolicySet",
            DomainEvent::RetentionRunCompleted { .. } => "RetentionRunCompleted",
            DomainEvent::TokenIssued { .. } => "TokenIssued",
            DomainEvent::TokenRevoked { .. } => "TokenRevoked",
            DomainEvent::AccessDenied { .. } => "AccessDenied",
            DomainEvent::ContentTypeDeclared { .. } => "ContentTypeDeclared",
            DomainEvent::LogExported { .. } => "LogExported",
            DomainEvent::RecordingPartAssigned { .. } => "RecordingPartAssigned",
            DomainEvent::AccessDeniedRepeated { .. } => "AccessDeniedRepeated",
            DomainEvent::LegalHoldPlaced { .. } => "LegalHoldPlaced",
            DomainEvent::LegalHoldReleased { .. } => "LegalHoldReleased",
            DomainEvent::RetentionRunCompletedV2 { .. } => "RetentionRunCompletedV2",
            DomainEvent::BackupTaken { .. } => "BackupTaken",
            DomainEvent::TokenExpirySet { .. } => "TokenExpirySet",
            DomainEvent::TokenRotated { .. } => "TokenRotated",
            DomainEvent::AgentTokenRotated { .. } => "AgentTokenRotated",
            DomainEvent::PlaybackPermissionsMigrated { .. } => "PlaybackPermissionsMigrated",
            DomainEvent::SessionEventSealed { .. } => "SessionEventSealed",
            DomainEvent::EventDetectedSealed { .. } => "EventDetectedSealed",
        }
    }

    /// The id the log stores this event under, when the fact has a natural
    /// one: a session event's id, a detection's, a response's, a comment's,
    /// a chunk's, a recording's end.
    /// Deriving it (instead of a fresh id) makes a retried command
    /// idempotent through the log, and lets `acknowledgeResponse(id)` or
    /// `deleteComment(id)` find the stream by reading the event.
    pub fn natural_id(&self) -> Option<Uuid> {
        match self {
            DomainEvent::SessionEventRecorded { event, .. } => Some(event.event_id),
            DomainEvent::SessionEventSealed { event_id, .. } => Some(*event_id),
            DomainEvent::EventDetected { detection_id, .. }
            | DomainEvent::EventDetectedSealed { detection_id, .. } => Some(*detection_id),
            DomainEvent::ResponseTriggered { response_id, .. } => Some(*response_id),
            DomainEvent::CommentAdded { comment_id, .. } => Some(*comment_id),
            DomainEvent::ContentChunkStored {
                recording_id, seq, ..
            } => Some(chunk_event_id(*recording_id, *seq)),
            DomainEvent::TokenRotated { new_token_id, .. } => Some(*new_token_id),
            DomainEvent::AgentTokenRotated { token_id, .. } => Some(*token_id),
            DomainEvent::RecordingEnded { recording_id, .. } => {
                Some(recording_ended_event_id(*recording_id))
            }
            _ => None,
        }
    }

    /// The site the fact belongs to, when it belongs to one.
    pub fn site_id(&self) -> Option<Uuid> {
        use DomainEvent::*;
        match self {
            SiteCreated { site_id, .. }
            | SiteRenamed { site_id, .. }
            | ServerConnected { site_id, .. }
            | ServerInstallRequested { site_id, .. }
            | InstallProgressReported { site_id, .. }
            | ServerSettingsChanged { site_id, .. }
            | ServerDisconnected { site_id, .. }
            | ServerWentOffline { site_id, .. }
            | ServerCameOnline { site_id, .. }
            | PolicyCreated { site_id, .. }
            | PolicyUpdated { site_id, .. }
            | PolicyActivated { site_id, .. }
            | PolicyDeleted { site_id, .. }
            | PlaybackPermissionGranted { site_id, .. }
            | PlaybackPermissionRevoked { site_id, .. }
            | RecordingStarted { site_id, .. }
            | RecordingDeclined { site_id, .. }
            | SessionEventRecorded { site_id, .. }
            | EventDetected { site_id, .. }
            | ResponseTriggered { site_id, .. }
            | ResponseDelivered { site_id, .. }
            | RecordingEnded { site_id, .. }
            | RecordingRestricted { site_id, .. }
            | RecordingRestrictionRemoved { site_id, .. }
            | CommentAdded { site_id, .. }
            | CommentDeleted { site_id, .. }
            | RecordingPlayed { site_id, .. }
            | RecordingArchived { site_id, .. }
            | RecordingRestored { site_id, .. }
            | RecordingDeleted { site_id, .. }
            | ContentChunkStored { site_id, .. }
            | RetentionPolicySet { site_id, .. }
            | RetentionRunCompleted { site_id, .. }
            | ContentTypeDeclared { site_id, .. }
            | RecordingPartAssigned { site_id, .. }
            | LegalHoldPlaced { site_id, .. }
            | LegalHoldReleased { site_id, .. }
            | RetentionRunCompletedV2 { site_id, .. }
            | AgentTokenRotated { site_id, .. }
            | SessionEventSealed { site_id, .. }
            | EventDetectedSealed { site_id, .. } => Some(*site_id),
            AccessDenied { site_id, .. } | AccessDeniedRepeated { site_id, .. } => *site_id,
            TokenIssued { .. }
            | TokenRevoked { .. }
            | LogExported { .. }
            | BackupTaken { .. }
            | TokenExpirySet { .. }
            | TokenRotated { .. }
            | PlaybackPermissionsMigrated { .. } => None,
        }
    }

    /// The recording the fact is about, if any.
    pub fn recording_id(&self) -> Option<Uuid> {
        use DomainEvent::*;
        match self {
            RecordingStarted { recording_id, .. }
            | RecordingDeclined { recording_id, .. }
            | SessionEventRecorded { recording_id, .. }
            | EventDetected { recording_id, .. }
            | ResponseTriggered { recording_id, .. }
            | ResponseDelivered { recording_id, .. }
            | RecordingEnded { recording_id, .. }
            | RecordingRestricted { recording_id, .. }
            | RecordingRestrictionRemoved { recording_id, .. }
            | CommentAdded { recording_id, .. }
            | CommentDeleted { recording_id, .. }
            | RecordingPlayed { recording_id, .. }
            | RecordingArchived { recording_id, .. }
            | RecordingRestored { recording_id, .. }
            | RecordingDeleted { recording_id, .. }
            | ContentChunkStored { recording_id, .. }
            | ContentTypeDeclared { recording_id, .. }
            | RecordingPartAssigned { recording_id, .. }
            | SessionEventSealed { recording_id, .. }
            | EventDetectedSealed { recording_id, .. } => Some(*recording_id),
            _ => None,
        }
    }
}

/// The log id of chunk `seq` of a recording's content: one chunk per seq,
/// so a retried upload finds the stored event (and its position) by id.
pub fn chunk_event_id(recording_id: Uuid, seq: u64) -> Uuid {
    derived_id(
        "srs:content-chunk",
        &[recording_id.as_bytes(), &seq.to_be_bytes()],
    )
}

/// The log id of a recording's `RecordingEnded`: a recording ends once,
/// so a retried `endRecording` finds the first end (and its position) by
/// id. (Ends written before this id was derived have random ids; see
/// `Service::end_recording`.)
pub fn recording_ended_event_id(recording_id: Uuid) -> Uuid {
    derived_id("srs:recording-ended", &[recording_id.as_bytes()])
}

impl Event for DomainEvent {
    fn event_type(&self) -> &'static str {
        self.name()
    }

    /// The superseded variants (see the module docs) as their successors.
    fn upcast(self) -> Self {
        match self {
            // A run recorded before legal holds held nothing back.
            DomainEvent::RetentionRunCompleted {
                site_id,
                archived,
                deleted,
                ran_at,
            } => DomainEvent::RetentionRunCompletedV2 {
                site_id,
                archived,
                deleted,
                held: 0,
                ran_at,
            },
            current => current,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::log::{decode_payload, encode_payload};
    use crate::model::policy::{
        system_policy, DetectionPolicyBody, RecordingAction, DO_NOT_RECORD,
    };
    use crate::model::retention::TimeOfDay;
    use crate::model::session_event::SessionEventData;
    use crate::model::testing::fixtures::*;

    fn samples() -> Vec<DomainEvent> {
        let performance = SessionEvent {
            event_id: Uuid::from_u128(1),
            event_type: SessionEventType::PerformanceSample,
            offset_ms: 9,
            data: SessionEventData::Performance {
                cpu_percent: Some(12.5),
                memory_mb: None,
                latency_ms: Some(30),
            },
        };
        let policy = system_policy(DO_NOT_RECORD).expect("system policy");
        vec![
            site_created(),
            server_connected(),
            DomainEvent::ServerInstallRequested {
                server_id: SERVER,
                site_id: SITE,
                job_id: JOB,
                host: "h".into(),
                options: InstallOptions {
                    name: None,
                    version: Some("2411".into()),
                    deployment: Deployment::Cloud,
                    extra: BTreeMap::from([("port".to_string(), "443".to_string())]),
                },
                credential_sha256: CREDENTIAL.into(),
                at: T0,
            },
            DomainEvent::ServerSettingsChanged {
                server_id: SERVER,
                site_id: SITE,
                settings: ServerSettings::default(),
                version: 1,
                at: T0,
            },
            DomainEvent::PolicyCreated {
                policy_id: POLICY,
                site_id: SITE,
                kind: PolicyKind::Recording,
                name: policy.name,
                body: policy.body,
                at: T0,
            },
            DomainEvent::PolicyUpdated {
                policy_id: POLICY,
                site_id: SITE,
                kind: PolicyKind::EventDetection,
                name: "d".into(),
                body: PolicyBody::EventDetection(DetectionPolicyBody::default()),
                at: T0,
            },
            DomainEvent::PolicyCreated {
                policy_id: POLICY,
                site_id: SITE,
                kind: PolicyKind::EventResponse,
                name: "r".into(),
                body: PolicyBody::EventResponse(response_body(&[SessionEventType::AppStart], 60)),
                at: T0,
            },
            started_event(RECORDING, T0),
            DomainEvent::RecordingDeclined {
                recording_id: RECORDING,
                site_id: SITE,
                server_id: SERVER,
                session_id: "1".into(),
                part: 1,
                user: "u".into(),
                host: "h".into(),
                client_ip: None,
                decision: decision(RecordingAction::DoNotRecord),
                at: T0,
            },
            recorded(RECORDING, performance),
            recorded(RECORDING, web("https://example.com", 3)),
            detected(RECORDING, Severity::Critical),
            DomainEvent::RetentionPolicySet {
                site_id: SITE,
                policy: RetentionPolicy {
                    archive_after_days: Some(2),
                    delete_after_days: None,
                    run_at: TimeOfDay { hour: 1, minute: 5 },
                    exclude_restricted: true,
                },
                at: T0,
            },
            DomainEvent::TokenIssued {
                token_id: TOKEN,
                name: "ann".into(),
                role: Role::Auditor,
                site_ids: BTreeSet::from([SITE]),
                groups: vec!["g".into()],
                secret_sha256: CREDENTIAL.into(),
                at: T0,
            },
            DomainEvent::PlaybackPermissionGranted {
                permission_id: PERMISSION,
                site_id: SITE,
                principal: "ann".into(),
                scope: PlaybackScope {
                    server_ids: vec![SERVER],
                    ..Default::default()
                },
                at: T0,
            },
            DomainEvent::CommentAdded {
                comment_id: COMMENT,
                recording_id: RECORDING,
                site_id: SITE,
                author: "ann".into(),
                text: "t".into(),
                severity: CommentSeverity::Medium,
                offset_ms: None,
                at: T0,
            },
            DomainEvent::RecordingPlayed {
                recording_id: RECORDING,
                site_id: SITE,
                by: "ann".into(),
                kind: PlaybackKind::Play,
                at: T0,
            },
            DomainEvent::AccessDenied {
                principal: "eve".into(),
                token_id: None,
                role: Some(Role::Viewer),
                action: "PLAY_RECORDING".into(),
                target: "recording:x".into(),
                site_id: Some(SITE),
                at: T0,
            },
            DomainEvent::TokenExpirySet {
                token_id: TOKEN,
                expires_at: T1,
                at: T0,
            },
            DomainEvent::TokenRotated {
                token_id: TOKEN,
                new_token_id: Uuid::from_u128(77),
                name: "ann".into(),
                role: Role::Auditor,
                site_ids: BTreeSet::from([SITE]),
                groups: vec!["g".into()],
                secret_sha256: CREDENTIAL.into(),
                expires_at: Some(T2),
                at: T1,
            },
            DomainEvent::AgentTokenRotated {
                server_id: SERVER,
                site_id: SITE,
                token_id: Uuid::from_u128(78),
                previous_token_id: SERVER,
                credential_sha256: CREDENTIAL.into(),
                at: T1,
            },
            DomainEvent::AccessDeniedRepeated {
                principal: "eve".into(),
                token_id: Some(TOKEN),
                role: Some(Role::Viewer),
                action: "VIEW_RECORDING".into(),
                target: "recordings".into(),
                site_id: None,
                refused: 1000,
                suppressed: 7,
                at: T0,
            },
            DomainEvent::RecordingPlayed {
                recording_id: RECORDING,
                site_id: SITE,
                by: "ann".into(),
                kind: PlaybackKind::Live,
                at: T0,
            },
            DomainEvent::LegalHoldPlaced {
                hold_id: COMMENT,
                site_id: SITE,
                scope: HoldScope::Recordings {
                    recording_ids: vec![RECORDING],
                },
                reason: "Case 17".into(),
                by: "root".into(),
                at: T0,
            },
            DomainEvent::LegalHoldPlaced {
                hold_id: COMMENT,
                site_id: SITE,
                scope: HoldScope::Users {
                    users: vec!["CORP\\ann".into()],
                },
                reason: "Case 17".into(),
                by: "root".into(),
                at: T0,
            },
            DomainEvent::LegalHoldReleased {
                hold_id: COMMENT,
                site_id: SITE,
                scope: HoldScope::Site,
                reason: None,
                by: "root".into(),
                at: T1,
            },
            DomainEvent::RetentionRunCompletedV2 {
                site_id: SITE,
                archived: 1,
                deleted: 2,
                held: 3,
                ran_at: T1,
            },
            DomainEvent::PlaybackPermissionsMigrated {
                permission_ids: vec![PERMISSION],
                token_ids: vec![TOKEN],
                at: T0,
            },
        ]
    }

    #[test]
    fn events_survive_the_log_codec() {
        for event in samples() {
            let bytes = encode_payload(&event).expect("encode");
            let back: DomainEvent = decode_payload(1, &bytes).expect("decode");
            assert_eq!(back, event);
        }
    }

    #[test]
    fn events_survive_json_for_replay() {
        for event in samples() {
            let json = serde_json::to_string(&event).expect("to json");
            let back: DomainEvent = serde_json::from_str(&json).expect("from json");
            assert_eq!(back, event, "{json}");
        }
    }

    #[test]
    fn the_event_type_is_the_variant_name() {
        for event in samples() {
            let json = serde_json::to_value(&event).expect("to json");
            let tag = json
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .expect("externally tagged");
            assert_eq!(crate::log::Event::event_type(&event), tag);
        }
    }

    /// A format-1 record at position 1 as a run before legal holds stored
    /// it: a `RetentionRunCompleted` (site `…5175`, 4 archived, 2 deleted,
    /// ran at 1,700,000,000 s) by `system:retention`, encoded with the
    /// variant as it was then and committed here as bytes, so that a
    /// change of the codec or of the enum that stops reading it fails.
    const OLD_RETENTION_RUN: &str = concat!(
        "012e726574656e74696f6e2d30303030303030302d303030302d303030302d30",
        "3030302d30303030303030303531373501100000000000000000000000000000",
        "00e1fd80045b3048140c000209726574656e74696f6e10000000000000000000",
        "000000000000e10015526574656e74696f6e52756e436f6d706c657465641d20",
        "10000000000000000000000000000051750402fd00803c3048140c0000000000",
        "00000000000000000000000000000000000000000000000000000000e2f43b6f",
        "6a1fc992afd059deadd4ad7c2c42d1e4aeb5126c23859caa3eeb87ef",
    );

    #[test]
    fn a_stored_record_of_a_superseded_variant_is_read_in_its_current_shape() {
        let bytes = hex::decode(OLD_RETENTION_RUN).unwrap();
        assert_eq!(bytes[0], crate::log::FORMAT);
        let site_id = Uuid::from_u128(0x5175);
        let ran_at = Timestamp::from_secs(1_700_000_000);

        // Stored as it was: the old variant, intact under its hash.
        let raw = crate::log::decode_record(1, &bytes).unwrap();
        assert_eq!(raw.event_type, "RetentionRunCompleted");
        assert_eq!(
            crate::log::rehash(&raw, crate::log::Hash::GENESIS).unwrap(),
            raw.hash
        );
        let stored: DomainEvent = decode_payload(1, &raw.payload).unwrap();
        assert_eq!(
            stored,
            DomainEvent::RetentionRunCompleted {
                site_id,
                archived: 4,
                deleted: 2,
                ran_at,
            }
        );

        // Read as it is now, by every envelope path.
        let current = DomainEvent::RetentionRunCompletedV2 {
            site_id,
            archived: 4,
            deleted: 2,
            held: 0,
            ran_at,
        };
        let envelope = crate::log::decode_envelope::<DomainEvent>(1, &bytes).unwrap();
        assert_eq!(envelope.payload, current);
        assert_eq!(
            envelope.stream,
            "retention-00000000-0000-0000-0000-000000005175"
        );
        assert_eq!(raw.into_envelope::<DomainEvent>().unwrap().payload, current);
    }

    #[test]
    fn a_record_of_a_format_this_build_does_not_know_is_refused_by_name() {
        let mut bytes = hex::decode(OLD_RETENTION_RUN).unwrap();
        bytes[0] = crate::log::FORMAT + 1;
        let refused = crate::log::CodecError::UnknownFormat {
            position: 1,
            format: crate::log::FORMAT + 1,
        };
        assert_eq!(
            crate::log::decode_envelope::<DomainEvent>(1, &bytes).unwrap_err(),
            refused
        );
        assert_eq!(crate::log::decode_record(1, &bytes).unwrap_err(), refused);
    }

    #[test]
    fn upcasting_leaves_current_variants_as_they_are() {
        for event in samples() {
            if matches!(event, DomainEvent::RetentionRunCompleted { .. }) {
                continue;
            }
            assert_eq!(event.clone().upcast(), event);
        }
    }

    #[tokio::test]
    async fn the_log_reads_a_stored_superseded_variant_in_its_current_shape() {
        use crate::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
        use futures_util::StreamExt as _;

        let dir = tempfile::tempdir().unwrap();
        let log = SledEventStore::<DomainEvent>::open(dir.path(), StoreOptions::default()).unwrap();
        let old = DomainEvent::RetentionRunCompleted {
            site_id: Uuid::from_u128(1),
            archived: 1,
            deleted: 1,
            ran_at: Timestamp::from_secs(1),
        };
        let actor = crate::actor::Actor::system("retention");
        let appended = log
            .append(
                "retention-1",
                ExpectedVersion::NoStream,
                vec![NewEvent::new(actor, old.clone())],
            )
            .await
            .unwrap();
        let current = old.clone().upcast();
        assert!(matches!(
            current,
            DomainEvent::RetentionRunCompletedV2 { held: 0, .. }
        ));
        assert_eq!(log.read_all(1, 10).await.unwrap()[0].payload, current);
        assert_eq!(
            log.read_stream("retention-1", 1, 10).await.unwrap()[0].payload,
            current
        );
        let first = log.subscribe(1).next().await.unwrap().unwrap();
        assert_eq!(first.payload, current);
        // The stored bytes keep the old variant (and so their hash).
        let raw = log.read_raw(appended.last_position(), 1).unwrap();
        assert_eq!(
            decode_payload::<DomainEvent>(1, &raw[0].payload).unwrap(),
            old
        );
    }
}
