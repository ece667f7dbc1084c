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
    /// Worth knowing; no concern.
    Info,
    /// Minor.
    Low,
    /// Worth a look.
    Medium,
    /// Serious.
    High,
    /// Act now.
    Critical,
}

/// What a recording policy rule does with a session.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::RecordingAction")]
pub enum RecordingAction {
    /// The session is not recorded.
    DoNotRecord,
    /// The screen and the session events are recorded.
    RecordScreenAndEvents,
    /// Only the session events are recorded.
    RecordEventsOnly,
}

/// What a recording holds.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::RecordingMode")]
pub enum RecordingMode {
    /// The screen and the session events.
    ScreenAndEvents,
    /// The session events only.
    EventsOnly,
}

/// Where a server runs.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[graphql(remote = "model::Deployment")]
pub enum Deployment {
    /// In the organisation's own data centre.
    #[default]
    OnPremises,
    /// In a cloud.
    Cloud,
}

/// How an install step went.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::InstallStatus")]
pub enum InstallStatus {
    /// Running.
    InProgress,
    /// Done.
    Succeeded,
    /// Failed (see the message).
    Failed,
}

/// The steps of an install job, in order.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::InstallStep")]
pub enum InstallStep {
    /// Waiting to start.
    Queued,
    /// Fetching the installer.
    Downloading,
    /// Installing the server.
    Installing,
    /// Applying its settings.
    Configuring,
    /// Installed and connected to srs.
    Connected,
}

/// A server's connection status (liveness is `online`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::ServerStatus")]
pub enum ServerStatus {
    /// Not known yet.
    Unknown,
    /// Being installed by srs.
    Installing,
    /// Its installation failed.
    InstallFailed,
    /// Connected to srs.
    Connected,
    /// Disconnected from srs (`disconnectServer`).
    Disconnected,
}

/// A comment's severity.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::CommentSeverity")]
pub enum CommentSeverity {
    /// An ordinary remark.
    Normal,
    /// Worth a look.
    Medium,
    /// Needs attention.
    Critical,
}

/// The three kinds of site policies.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::PolicyKind")]
pub enum PolicyKind {
    /// Which sessions are recorded, and how.
    Recording,
    /// Which session events are logged and which are detected.
    EventDetection,
    /// What is done when a session starts or an event is detected.
    EventResponse,
}

/// What a response rule does.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::ResponseActionKind")]
pub enum ResponseAction {
    /// Mail the recipients a link to play the recording at the event.
    EmailAlert,
    /// Switch an events-only recording to screen recording.
    StartScreenRecording,
    /// Lock the session, showing a message.
    LockSession,
    /// Log the user off.
    LogOffSession,
    /// Disconnect the session.
    DisconnectSession,
}

/// Where a recording is in its life.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::Lifecycle")]
pub enum Lifecycle {
    /// Not started yet.
    NotStarted,
    /// The recording policy decided not to record it.
    Declined,
    /// Being recorded.
    Live,
    /// Ended; its content is in the store.
    Ended,
    /// Its content moved to the archive.
    Archived,
    /// Deleted: its key is destroyed, its session data shredded.
    Deleted,
}

/// The admin audit trail's categories.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::AuditCategory")]
pub enum AuditCategory {
    /// Configuration changes (servers, settings, policies, tokens, permissions, retention).
    Configuration,
    /// Why sessions were (not) recorded, restrictions.
    RecordingReason,
    /// Playbacks, downloads and live viewing.
    Playback,
    /// Refused requests.
    Access,
}

/// Playback, download, or watching live.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::PlaybackKind")]
pub enum PlaybackKind {
    /// Played through `playback` or the content route.
    Play,
    /// Downloaded.
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
    /// The caller may not see it.
    Hidden,
    /// The caller sees it but may not play it.
    Listed,
    /// The caller sees and plays it.
    Playable,
}

/// Session event types, as agents send them.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::SessionEventType")]
pub enum SessionEventType {
    /// The user logged on (`SessionData`).
    Logon,
    /// The user logged off (`SessionData`).
    Logoff,
    /// The session was disconnected (`SessionData`).
    Disconnect,
    /// The session was reconnected (`SessionData`).
    Reconnect,
    /// An application started (`AppData`).
    AppStart,
    /// An application ended (`AppData`).
    AppEnd,
    /// A window came to the front (`AppData`, with its title).
    TopMostWindow,
    /// A web page was visited (`WebData`).
    WebBrowsing,
    /// A file was created (`FileData`).
    FileCreate,
    /// A file was renamed (`FileData`, with `newPath`).
    FileRename,
    /// A file was deleted (`FileData`).
    FileDelete,
    /// A file was moved (`FileData`, with `newPath`).
    FileMove,
    /// A USB storage device was used (`DeviceData`).
    UsbMassStorage,
    /// Something was copied to the clipboard (`ClipboardData`).
    Clipboard,
    /// A document was printed (`PrintData`).
    Print,
    /// The registry was changed (`RegistryData`).
    RegistryChange,
    /// The session was idle (`IdleData`).
    Idle,
    /// An RDP connection was opened from the session (`RdpData`).
    RdpConnection,
    /// A sample of the session's resource use (`PerformanceData`).
    PerformanceSample,
    /// An event the agent names itself (`CustomData`).
    Custom,
    /// An application failed (`AppData`).
    AppFailure,
    /// An application was installed (`AppData`).
    AppInstall,
    /// An application was uninstalled (`AppData`).
    AppUninstall,
    /// A file was copied between the client and the host (`FileTransferData`).
    FileTransfer,
    /// A user account was changed (`AccountData`).
    UserAccountChange,
    /// A pop-up window appeared (`AppData`, with its title).
    PopupWindow,
}

/// Which way a file transfer went.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[graphql(remote = "model::TransferDirection")]
pub enum TransferDirection {
    /// From the client's drive into the session host.
    ClientToHost,
    /// From the session host to the client's drive.
    HostToClient,
}
