//! Session event data as it reads back: one GraphQL object type per data
//! shape (the domain's `SessionEventData`), gathered in the union
//! `SessionEventData`, plus [`ShreddedData`] for data that can no longer
//! be read because its recording was deleted and its key destroyed.
//!
//! Agents send the data as a JSON object with the same camelCase keys
//! (`SessionEventInput.data`); each member type below names the event
//! types that carry it. Sizes and durations are 64-bit `Int`s.

use async_graphql::{SimpleObject, Union};
use srs_domain::model::SessionEventData as Data;

use super::convert::long;
use super::enums::TransferDirection;

/// What a session event carries, by event type (see each member), or
/// `ShreddedData` once its recording is deleted. Agents send the same
/// fields as a JSON object with these camelCase keys.
#[derive(Union, Clone, Debug)]
pub enum SessionEventData {
    Session(SessionData),
    App(AppData),
    Web(WebData),
    File(FileData),
    FileTransfer(FileTransferData),
    Device(DeviceData),
    Clipboard(ClipboardData),
    Print(PrintData),
    Registry(RegistryData),
    Idle(IdleData),
    Rdp(RdpData),
    Performance(PerformanceData),
    Custom(CustomData),
    Account(AccountData),
    Shredded(ShreddedData),
}

/// LOGON, LOGOFF, DISCONNECT, RECONNECT: the client the session is used from.
#[derive(SimpleObject, Clone, Debug)]
pub struct SessionData {
    /// The client machine's name.
    pub client_name: Option<String>,
    /// The client's address.
    pub client_ip: Option<String>,
}

/// APP_START, APP_END, APP_FAILURE, APP_INSTALL, APP_UNINSTALL,
/// TOP_MOST_WINDOW, POPUP_WINDOW: an application and its window.
#[derive(SimpleObject, Clone, Debug)]
pub struct AppData {
    /// The application (executable or display name).
    pub app: String,
    /// Its process id.
    pub pid: Option<i64>,
    /// The window title.
    pub title: Option<String>,
    /// More about it (a failure's reason, an installed version, ...).
    pub detail: Option<String>,
}

/// WEB_BROWSING: a page visited.
#[derive(SimpleObject, Clone, Debug)]
pub struct WebData {
    /// The URL as the browser reported it.
    pub url: String,
    /// The browser.
    pub browser: Option<String>,
    /// The page title.
    pub title: Option<String>,
}

/// FILE_CREATE, FILE_RENAME, FILE_DELETE, FILE_MOVE: a file operation.
#[derive(SimpleObject, Clone, Debug)]
pub struct FileData {
    /// The file's path (before a rename or move).
    pub path: String,
    /// The path after a rename or move.
    pub new_path: Option<String>,
    /// The file's size in bytes (64-bit).
    pub size_bytes: Option<i64>,
}

/// FILE_TRANSFER: a file copied between the client's drive and the session host.
#[derive(SimpleObject, Clone, Debug)]
pub struct FileTransferData {
    /// The file's path.
    pub path: String,
    /// Which way it went.
    pub direction: TransferDirection,
    /// The file's size in bytes (64-bit).
    pub size_bytes: Option<i64>,
}

/// USB_MASS_STORAGE: a storage device.
#[derive(SimpleObject, Clone, Debug)]
pub struct DeviceData {
    /// The device's name.
    pub device: String,
    /// What happened (e.g. `inserted`, `removed`).
    pub action: Option<String>,
}

/// CLIPBOARD: a clipboard copy.
#[derive(SimpleObject, Clone, Debug)]
pub struct ClipboardData {
    /// The application copied from.
    pub app: Option<String>,
    /// The clipboard format (e.g. `text`, `image`).
    pub format: Option<String>,
    /// The size of what was copied, in bytes (64-bit).
    pub size_bytes: Option<i64>,
}

/// PRINT: a print job.
#[derive(SimpleObject, Clone, Debug)]
pub struct PrintData {
    /// The printer.
    pub printer: String,
    /// The document's name.
    pub document: Option<String>,
    /// How many pages.
    pub pages: Option<i64>,
}

/// REGISTRY_CHANGE: a registry change.
#[derive(SimpleObject, Clone, Debug)]
pub struct RegistryData {
    /// The registry key.
    pub key: String,
    /// The value's name.
    pub value: Option<String>,
    /// What was done (e.g. `set`, `delete`).
    pub operation: Option<String>,
}

/// IDLE: an idle spell.
#[derive(SimpleObject, Clone, Debug)]
pub struct IdleData {
    /// How long the session had been idle, in seconds (64-bit).
    pub seconds: i64,
}

/// RDP_CONNECTION: an RDP connection opened from inside the session.
#[derive(SimpleObject, Clone, Debug)]
pub struct RdpData {
    /// The machine connected to.
    pub target: String,
}

/// PERFORMANCE_SAMPLE: the session's resource use at one moment.
#[derive(SimpleObject, Clone, Debug)]
pub struct PerformanceData {
    /// CPU use in percent.
    pub cpu_percent: Option<f64>,
    /// Memory use in MB (64-bit).
    pub memory_mb: Option<i64>,
    /// Round-trip latency in milliseconds (64-bit).
    pub latency_ms: Option<i64>,
}

/// CUSTOM: an event the agent names itself (asciicast events are
/// `asciicast.o`, `asciicast.i`, ...).
#[derive(SimpleObject, Clone, Debug)]
pub struct CustomData {
    /// The custom event's name.
    pub name: String,
    /// Its data, as the agent sent it (often JSON text); empty when none.
    pub data: String,
}

/// USER_ACCOUNT_CHANGE: a user account changed.
#[derive(SimpleObject, Clone, Debug)]
pub struct AccountData {
    /// The account.
    pub account: String,
    /// What changed (e.g. `created`, `password reset`).
    pub change: String,
}

/// The data of an event whose recording was deleted: it was sealed under
/// the recording's key, which is destroyed, so it can no longer be read.
/// The event's id, type and offset remain.
#[derive(SimpleObject, Clone, Debug)]
pub struct ShreddedData {
    /// Always true.
    pub shredded: bool,
}

impl SessionEventData {
    /// The shredded marker.
    pub fn shredded() -> Self {
        SessionEventData::Shredded(ShreddedData { shredded: true })
    }

    /// The typed form of plain data; `None` for an event without data.
    pub fn from_domain(data: Data) -> Option<Self> {
        Some(match data {
            Data::None => return None,
            Data::Session {
                client_name,
                client_ip,
            } => SessionEventData::Session(SessionData {
                client_name,
                client_ip,
            }),
            Data::App {
                app,
                pid,
                title,
                detail,
            } => SessionEventData::App(AppData {
                app,
                pid: pid.map(i64::from),
                title,
                detail,
            }),
            Data::Web {
                url,
                browser,
                title,
            } => SessionEventData::Web(WebData {
                url,
                browser,
                title,
            }),
            Data::File {
                path,
                new_path,
                size_bytes,
            } => SessionEventData::File(FileData {
                path,
                new_path,
                size_bytes: size_bytes.map(long),
            }),
            Data::FileTransfer {
                path,
                direction,
                size_bytes,
            } => SessionEventData::FileTransfer(FileTransferData {
                path,
                direction: direction.into(),
                size_bytes: size_bytes.map(long),
            }),
            Data::Device { device, action } => {
                SessionEventData::Device(DeviceData { device, action })
            }
            Data::Clipboard {
                app,
                format,
                size_bytes,
            } => SessionEventData::Clipboard(ClipboardData {
                app,
                format,
                size_bytes: size_bytes.map(long),
            }),
            Data::Print {
                printer,
                document,
                pages,
            } => SessionEventData::Print(PrintData {
                printer,
                document,
                pages: pages.map(i64::from),
            }),
            Data::Registry {
                key,
                value,
                operation,
            } => SessionEventData::Registry(RegistryData {
                key,
                value,
                operation,
            }),
            Data::Idle { seconds } => SessionEventData::Idle(IdleData {
                seconds: long(seconds),
            }),
            Data::Rdp { target } => SessionEventData::Rdp(RdpData { target }),
            Data::Performance {
                cpu_percent,
                memory_mb,
                latency_ms,
            } => SessionEventData::Performance(PerformanceData {
                cpu_percent,
                memory_mb: memory_mb.map(long),
                latency_ms: latency_ms.map(long),
            }),
            Data::Custom { name, data } => SessionEventData::Custom(CustomData { name, data }),
            Data::Account { account, change } => {
                SessionEventData::Account(AccountData { account, change })
            }
        })
    }
}
