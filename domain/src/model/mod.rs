//! Every aggregate of srs as pure decide / evolve code. No I/O: "now" and
//! facts owned by other aggregates come in with the commands.
//!
//! # Layout
//!
//! - `aggregate`: the [`Aggregate`] trait, [`ErrorCode`], stream naming.
//! - `event`: [`DomainEvent`], the log's one payload type (grows only at the end).
//! - `site`: sites; which policy of each kind is active; policy deletion.
//! - `server`: servers, install jobs, versioned settings, [`liveness`].
//! - `policy`: recording / event detection / event response policies,
//!   system policies, [`evaluate`], [`detect`], [`responses_to`].
//! - `recording`: one recorded session: lifecycle table, session events,
//!   detections, responses with cool-down, restriction, comments, playback.
//! - `session`: the session index: which recording is each part of a
//!   server's session (random recording ids, idempotent starts).
//! - `session_event`: session event types, typed data, [`DataPoints`].
//! - `permission`: playback permissions: the only way an auditor sees a recording.
//! - `migration`: one-time migrations of the log's meaning (explicit permissions).
//! - `retention`: retention policy and the pure [`due`].
//! - `hold`: legal holds that keep recordings from deletion ([`LegalHolds`]).
//! - `token`: roles, principals, tokens, and [`may`].
//! - `audit`: the admin log's categories ([`classify`]).
//! - `glob`, `net`: name globs and IP / CIDR matching.
//! - `testing` (tests and feature `testing`): given / when / then and fixtures.
//!
//! # Streams
//!
//! | aggregate | stream |
//! |---|---|
//! | [`Site`] | `site-<uuid>` |
//! | [`Server`] | `server-<uuid>` |
//! | [`Policy`] | `policy-<uuid>` |
//! | [`Recording`] | `recording-<uuid>` |
//! | [`PlaybackPermission`] | `permission-<uuid>` |
//! | [`Retention`] | `retention-<site uuid>` |
//! | [`Token`] | `token-<uuid>` |
//! | [`SessionParts`] | `session-<uuid derived from server and session>` |
//! | [`LegalHolds`] | [`LEGAL_HOLDS_STREAM`] (`legal-holds`, every hold) |
//! | `AccessDenied`, `AccessDeniedRepeated` events | [`ACCESS_DENIED_STREAM`] |
//! | `PlaybackPermissionsMigrated` | [`EXPLICIT_GRANTS_STREAM`] |

mod aggregate;
mod audit;
mod event;
/// Case-insensitive `*` / `?` globs.
pub mod glob;
mod hold;
mod migration;
/// IP addresses and CIDR ranges.
pub mod net;
mod permission;
mod policy;
mod recording;
mod retention;
mod server;
mod session;
mod session_event;
mod site;
mod token;

/// Given / when / then and fixtures (tests, feature `testing`).
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use aggregate::{
    derived_id, parse_stream_name, stream_name, Aggregate, Coded, CommandFor, ErrorCode,
};
pub use audit::{classify, AuditCategory, AuditEntry};
pub use event::{chunk_event_id, recording_ended_event_id, DomainEvent};
pub use hold::{
    HoldCommand, HoldError, HoldId, HoldRelease, HoldScope, LegalHold, LegalHolds,
    LEGAL_HOLDS_STREAM, MAX_HOLD_REASON_CHARS, MAX_HOLD_RECORDINGS, MAX_HOLD_USERS,
};
pub use migration::{
    whole_site_grant_id, OldAccess, WholeSiteGrant, EXPLICIT_GRANTS_STREAM, MIGRATION_ACTOR,
};
pub use permission::{
    grants_for, is_reserved_principal_name, principal_token, token_principal, PermissionCommand,
    PermissionError, PermissionId, PlaybackPermission, PlaybackScope, RecordingFacts,
    TOKEN_PRINCIPAL_PREFIX,
};
pub use policy::{
    default_policy, detect, evaluate, is_system_policy, looks_like_email, name_matches,
    responses_to, system_policies, system_policy, AnyPolicy, Detection, DetectionPolicyBody,
    DetectionRule, Policy, PolicyBody, PolicyCommand, PolicyDef, PolicyError, PolicyId, PolicyKind,
    RecordingAction, RecordingCriteria, RecordingDecision, RecordingMode, RecordingPolicyBody,
    RecordingRule, ResponseAction, ResponseActionKind, ResponseCause, ResponsePolicyBody,
    ResponseRule, ResponseTrigger, Scope, SessionAttributes, SessionSubject, Severity, TriggerOn,
    DEFAULT_MONITORED_APPS, DO_NOT_DETECT, DO_NOT_RECORD, DO_NOT_RESPOND, MONITORED_APP_RULE,
    RECORD_EVENTS_FOR_EVERYONE_WITHOUT_NOTIFICATION, RECORD_EVENTS_FOR_EVERYONE_WITH_NOTIFICATION,
    RECORD_EVERYONE_WITHOUT_NOTIFICATION, RECORD_EVERYONE_WITH_NOTIFICATION, SYSTEM_POLICY_IDS,
};
pub use recording::{
    transition, Comment, CommentSeverity, Lifecycle, PendingResponse, PlaybackKind, Recording,
    RecordingCommand, RecordingError, RecordingId, Restriction, StartRecording, StoredChunk,
    Transition, BYTES_PER_MB, DEFAULT_CONTENT_TYPE, MAX_CHUNKS_AHEAD, MAX_COMMENT_CHARS,
};
pub use retention::{
    due, Due, Retention, RetentionCandidate, RetentionCommand, RetentionError, RetentionPolicy,
    TimeOfDay,
};
pub use server::{
    liveness, Deployment, InstallJob, InstallOptions, InstallStatus, InstallStep, Liveness,
    LocalizedMessage, Server, ServerCommand, ServerError, ServerId, ServerSettings, ServerStatus,
    SettingsPatch,
};
pub use session::{legacy_recording_id, session_key, SessionCommand, SessionError, SessionParts};
pub use session_event::{
    data_points, url_host, DataKind, DataPoints, MeasureSummary, PerformanceSummary, PlainFacts,
    SessionEvent, SessionEventData, SessionEventType, TransferDirection, MAX_BATCH,
};
pub use site::{PolicyFacts, Site, SiteCommand, SiteError, SiteId};
pub use token::{
    can_play_recording, can_unrestrict_recording, can_view_recording, check_expiry, hash_secret,
    may, verify_secret, Action, Principal, Role, Target, Token, TokenCommand, TokenError, TokenId,
    MAX_TOKEN_LIFETIME_DAYS,
};

/// The stream refusal facts (`AccessDenied`, `AccessDeniedRepeated`) are appended to (no aggregate decides
/// on them; they are appended with `ExpectedVersion::Any`).
pub const ACCESS_DENIED_STREAM: &str = "access-denied";

/// The stream `LogExported` events are appended to (with
/// `ExpectedVersion::Any`).
pub const LOG_EXPORTS_STREAM: &str = "log-exports";

/// The stream `BackupTaken` events are appended to (with
/// `ExpectedVersion::Any`).
pub const BACKUPS_STREAM: &str = "backups";
