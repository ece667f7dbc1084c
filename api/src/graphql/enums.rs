//! GraphQL enums: the domain's enums under the contract's names
//! (`SCREAMING_SNAKE_CASE`), converted both ways by async-graphql's
//! `remote` derive, so a new domain variant fails to compile here rather
//! than slipping through.

use async_graphql::Enum;
use srs_domain::model;

/// What a principal is allowed to be.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::Role")]
pub enum Role {
    /// Everything of its sites (all sites when unscoped): configuration,
    /// tokens, permissions, retention; sees and plays every recording.
    Admin,
    /// Sees and plays every recording of its sites, restricted and archived
    /// included; comments; restricts and lifts restrictions.
    PrivilegedPlayer,
    /// A read-only admin: configuration, dashboards, detections and the
    /// history of its sites. Sees and plays only the unrestricted
    /// recordings that one of its playback permissions admits (a
    /// permission may cover a whole site); without one, none. So revoking a
    /// permission never widens what it sees. Comments and restricts what it
    /// sees; lifts a restriction only where a permission of its own covers
    /// the recording.
    Auditor,
    /// Dashboards and server status only.
    Viewer,
    /// A server's own credential: ingests for that server only.
    Agent,
}

/// How severe a detection is.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::Severity")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

/// What a recording policy rule does with a session.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::RecordingAction")]
pub enum RecordingAction {
    DoNotRecord,
    RecordScreenAndEvents,
    RecordEventsOnly,
}

/// What a recording holds.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::RecordingMode")]
pub enum RecordingMode {
    ScreenAndEvents,
    EventsOnly,
}

/// Where a server runs.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[graphql(remote = "model::Deployment")]
pub enum Deployment {
    #[default]
    OnPremises,
    Cloud,
}

/// How an install step went.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::InstallStatus")]
pub enum InstallStatus {
    InProgress,
    Succeeded,
    Failed,
}

/// The steps of an install job, in order.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::InstallStep")]
pub enum InstallStep {
    Queued,
    Downloading,
    Installing,
    Configuring,
    Connected,
}

/// A server's connection status (liveness is `online`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::ServerStatus")]
pub enum ServerStatus {
    Unknown,
    Installing,
    InstallFailed,
    Connected,
    Disconnected,
}

/// A comment's severity.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::CommentSeverity")]
pub enum CommentSeverity {
    Normal,
    Medium,
    Critical,
}

/// The three kinds of site policies.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::PolicyKind")]
pub enum PolicyKind {
    Recording,
    EventDetection,
    EventResponse,
}

/// What a response rule does.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::ResponseActionKind")]
pub enum ResponseAction {
    EmailAlert,
    StartScreenRecording,
    LockSession,
    LogOffSession,
    DisconnectSession,
}

/// Where a recording is in its life.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::Lifecycle")]
pub enum Lifecycle {
    NotStarted,
    Declined,
    Live,
    Ended,
    Archived,
    Deleted,
}

/// The admin audit trail's categories.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::AuditCategory")]
pub enum AuditCategory {
    Configuration,
    RecordingReason,
    Playback,
    Access,
}

/// Playback, download, or watching live.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::PlaybackKind")]
pub enum PlaybackKind {
    Play,
    Download,
    /// A `recordingEvents` subscription.
    Live,
}

/// The order of a recordings page.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecordingOrder {
    /// By start time, newest first.
    #[default]
    NewestFirst,
    /// By duration, longest first (then newest first).
    LongestFirst,
}

impl From<RecordingOrder> for srs_projections::models::catalogue::RecordingOrder {
    fn from(value: RecordingOrder) -> Self {
        match value {
            RecordingOrder::NewestFirst => {
                srs_projections::models::catalogue::RecordingOrder::NewestFirst
            }
            RecordingOrder::LongestFirst => {
                srs_projections::models::catalogue::RecordingOrder::LongestFirst
            }
        }
    }
}

/// What a principal may do with a recording (the access decision).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "srs_projections::models::Visibility")]
pub enum Visibility {
    Hidden,
    Listed,
    Playable,
}

/// Session event types, as agents send them.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::SessionEventType")]
pub enum SessionEventType {
    Logon,
    Logoff,
    Disconnect,
    Reconnect,
    AppStart,
    AppEnd,
    TopMostWindow,
    WebBrowsing,
    FileCreate,
    FileRename,
    FileDelete,
    FileMove,
    UsbMassStorage,
    Clipboard,
    Print,
    RegistryChange,
    Idle,
    RdpConnection,
    PerformanceSample,
    Custom,
    AppFailure,
    AppInstall,
    AppUninstall,
    FileTransfer,
    UserAccountChange,
    PopupWindow,
}
