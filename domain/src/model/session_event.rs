//! What happens inside a recorded session: the session event types of the
//! API (`SessionEventType`), their typed data, and the data points a
//! recording's events add up to.
//!
//! Stored events are encoded with bincode, which numbers enum variants by
//! position: new types and new data shapes are only ever appended at the
//! end of their enum.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::event::DomainEvent;
use super::policy::Severity;
use crate::time::Timestamp;

/// The kinds of session events agents report (API `SessionEventType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
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

impl SessionEventType {
    /// Every type, in declaration order.
    pub const ALL: [SessionEventType; 26] = [
        SessionEventType::Logon,
        SessionEventType::Logoff,
        SessionEventType::Disconnect,
        SessionEventType::Reconnect,
        SessionEventType::AppStart,
        SessionEventType::AppEnd,
        SessionEventType::TopMostWindow,
        SessionEventType::WebBrowsing,
        SessionEventType::FileCreate,
        SessionEventType::FileRename,
        SessionEventType::FileDelete,
        SessionEventType::FileMove,
        SessionEventType::UsbMassStorage,
        SessionEventType::Clipboard,
        SessionEventType::Print,
        SessionEventType::RegistryChange,
        SessionEventType::Idle,
        SessionEventType::RdpConnection,
        SessionEventType::PerformanceSample,
        SessionEventType::Custom,
        SessionEventType::AppFailure,
        SessionEventType::AppInstall,
        SessionEventType::AppUninstall,
        SessionEventType::FileTransfer,
        SessionEventType::UserAccountChange,
        SessionEventType::PopupWindow,
    ];

    /// The API name, e.g. `WEB_BROWSING`.
    pub fn as_str(self) -> &'static str {
        use SessionEventType::*;
        match self {
            Logon => "LOGON",
            Logoff => "LOGOFF",
            Disconnect => "DISCONNECT",
            Reconnect => "RECONNECT",
            AppStart => "APP_START",
            AppEnd => "APP_END",
            TopMostWindow => "TOP_MOST_WINDOW",
            WebBrowsing => "WEB_BROWSING",
            FileCreate => "FILE_CREATE",
            FileRename => "FILE_RENAME",
            FileDelete => "FILE_DELETE",
            FileMove => "FILE_MOVE",
            UsbMassStorage => "USB_MASS_STORAGE",
            Clipboard => "CLIPBOARD",
            Print => "PRINT",
            RegistryChange => "REGISTRY_CHANGE",
            Idle => "IDLE",
            RdpConnection => "RDP_CONNECTION",
            PerformanceSample => "PERFORMANCE_SAMPLE",
            Custom => "CUSTOM",
            AppFailure => "APP_FAILURE",
            AppInstall => "APP_INSTALL",
            AppUninstall => "APP_UNINSTALL",
            FileTransfer => "FILE_TRANSFER",
            UserAccountChange => "USER_ACCOUNT_CHANGE",
            PopupWindow => "POPUP_WINDOW",
        }
    }

    /// The shape of data this type carries.
    pub fn data_kind(self) -> DataKind {
        use SessionEventType::*;
        match self {
            Logon | Logoff | Disconnect | Reconnect => DataKind::Session,
            AppStart | AppEnd | AppFailure | AppInstall | AppUninstall | TopMostWindow
            | PopupWindow => DataKind::App,
            WebBrowsing => DataKind::Web,
            FileCreate | FileRename | FileDelete | FileMove => DataKind::File,
            FileTransfer => DataKind::FileTransfer,
            UsbMassStorage => DataKind::Device,
            Clipboard => DataKind::Clipboard,
            Print => DataKind::Print,
            RegistryChange => DataKind::Registry,
            Idle => DataKind::Idle,
            RdpConnection => DataKind::Rdp,
            PerformanceSample => DataKind::Performance,
            Custom => DataKind::Custom,
            UserAccountChange => DataKind::Account,
        }
    }
}

impl fmt::Display for SessionEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionEventType {
    type Err = String;

    /// Parses the API name, ignoring case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionEventType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown session event type `{s}`"))
    }
}

/// The data shapes session events come in; [`SessionEventType::data_kind`]
/// says which one a type uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataKind {
    Session,
    App,
    Web,
    File,
    FileTransfer,
    Device,
    Clipboard,
    Print,
    Registry,
    Idle,
    Rdp,
    Performance,
    Custom,
    Account,
}

/// Between which drives a file was transferred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferDirection {
    /// From the client's drive into the session host.
    ClientToHost,
    /// From the session host to the client's drive.
    HostToClient,
}

/// Typed data of a session event. `None` is accepted for every type whose
/// fields are all optional (session lifecycle events).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum SessionEventData {
    None,
    /// LOGON, LOGOFF, DISCONNECT, RECONNECT.
    Session {
        client_name: Option<String>,
        client_ip: Option<String>,
    },
    /// APP_START, APP_END, APP_FAILURE, APP_INSTALL, APP_UNINSTALL,
    /// TOP_MOST_WINDOW, POPUP_WINDOW.
    App {
        app: String,
        pid: Option<u32>,
        title: Option<String>,
        detail: Option<String>,
    },
    /// WEB_BROWSING.
    Web {
        url: String,
        browser: Option<String>,
        title: Option<String>,
    },
    /// FILE_CREATE, FILE_RENAME, FILE_DELETE, FILE_MOVE.
    File {
        path: String,
        new_path: Option<String>,
        size_bytes: Option<u64>,
    },
    /// FILE_TRANSFER.
    FileTransfer {
        path: String,
        direction: TransferDirection,
        size_bytes: Option<u64>,
    },
    /// USB_MASS_STORAGE.
    Device {
        device: String,
        action: Option<String>,
    },
    /// CLIPBOARD.
    Clipboard {
        app: Option<String>,
        format: Option<String>,
        size_bytes: Option<u64>,
    },
    /// PRINT.
    Print {
        printer: String,
        document: Option<String>,
        pages: Option<u32>,
    },
    /// REGISTRY_CHANGE.
    Registry {
        key: String,
        value: Option<String>,
        operation: Option<String>,
    },
    /// IDLE: how long the session had been idle.
    Idle {
        seconds: u64,
    },
    /// RDP_CONNECTION: an RDP connection opened from inside the session.
    Rdp {
        target: String,
    },
    /// PERFORMANCE_SAMPLE.
    Performance {
        cpu_percent: Option<f64>,
        memory_mb: Option<u64>,
        latency_ms: Option<u64>,
    },
    /// CUSTOM: a name and opaque data (JSON text as the agent sent it).
    Custom {
        name: String,
        data: String,
    },
    /// USER_ACCOUNT_CHANGE.
    Account {
        account: String,
        change: String,
    },
}

impl SessionEventData {
    /// The shape of this data; `None` for [`SessionEventData::None`].
    pub fn kind(&self) -> Option<DataKind> {
        Some(match self {
            SessionEventData::None => return None,
            SessionEventData::Session { .. } => DataKind::Session,
            SessionEventData::App { .. } => DataKind::App,
            SessionEventData::Web { .. } => DataKind::Web,
            SessionEventData::File { .. } => DataKind::File,
            SessionEventData::FileTransfer { .. } => DataKind::FileTransfer,
            SessionEventData::Device { .. } => DataKind::Device,
            SessionEventData::Clipboard { .. } => DataKind::Clipboard,
            SessionEventData::Print { .. } => DataKind::Print,
            SessionEventData::Registry { .. } => DataKind::Registry,
            SessionEventData::Idle { .. } => DataKind::Idle,
            SessionEventData::Rdp { .. } => DataKind::Rdp,
            SessionEventData::Performance { .. } => DataKind::Performance,
            SessionEventData::Custom { .. } => DataKind::Custom,
            SessionEventData::Account { .. } => DataKind::Account,
        })
    }

    /// Builds typed data from the flat fields of the API's `data` JSON
    /// object (camelCase keys, values as text): `{app}`, `{url, browser}`,
    /// `{path, newPath}`, `{device}`, `{seconds}`, `{name, data}`, ...
    /// Unknown keys are ignored; missing required ones are an error.
    pub fn parse(
        event_type: SessionEventType,
        fields: &BTreeMap<String, String>,
    ) -> Result<SessionEventData, String> {
        let get = |key: &str| {
            fields
                .get(key)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let need =
            |key: &str| get(key).ok_or_else(|| format!("{event_type} events need `data.{key}`"));
        fn number<T: FromStr>(key: &str, value: Option<String>) -> Result<Option<T>, String> {
            value
                .map(|v| {
                    v.parse::<T>()
                        .map_err(|_| format!("`data.{key}` must be a number"))
                })
                .transpose()
        }
        Ok(match event_type.data_kind() {
            DataKind::Session => SessionEventData::Session {
                client_name: get("clientName"),
                client_ip: get("clientIp"),
            },
            DataKind::App => SessionEventData::App {
                app: need("app")?,
                pid: number("pid", get("pid"))?,
                title: get("title"),
                detail: get("detail"),
            },
            DataKind::Web => SessionEventData::Web {
                url: need("url")?,
                browser: get("browser"),
                title: get("title"),
            },
            DataKind::File => SessionEventData::File {
                path: need("path")?,
                new_path: get("newPath"),
                size_bytes: number("sizeBytes", get("sizeBytes"))?,
            },
            DataKind::FileTransfer => SessionEventData::FileTransfer {
                path: need("path")?,
                direction: match need("direction")?.to_ascii_uppercase().as_str() {
                    "CLIENT_TO_HOST" | "UPLOAD" => TransferDirection::ClientToHost,
                    "HOST_TO_CLIENT" | "DOWNLOAD" => TransferDirection::HostToClient,
                    other => {
                        return Err(format!(
                        "`data.direction` must be CLIENT_TO_HOST or HOST_TO_CLIENT, not `{other}`"
                    ))
                    }
                },
                size_bytes: number("sizeBytes", get("sizeBytes"))?,
            },
            DataKind::Device => SessionEventData::Device {
                device: need("device")?,
                action: get("action"),
            },
            DataKind::Clipboard => SessionEventData::Clipboard {
                app: get("app"),
                format: get("format"),
                size_bytes: number("sizeBytes", get("sizeBytes"))?,
            },
            DataKind::Print => SessionEventData::Print {
                printer: need("printer")?,
                document: get("document"),
                pages: number("pages", get("pages"))?,
            },
            DataKind::Registry => SessionEventData::Registry {
                key: need("key")?,
                value: get("value"),
                operation: get("operation"),
            },
            DataKind::Idle => SessionEventData::Idle {
                seconds: number("seconds", Some(need("seconds")?))?.unwrap_or_default(),
            },
            DataKind::Rdp => SessionEventData::Rdp {
                target: need("target")?,
            },
            DataKind::Performance => SessionEventData::Performance {
                cpu_percent: number("cpuPercent", get("cpuPercent"))?,
                memory_mb: number("memoryMb", get("memoryMb"))?,
                latency_ms: number("latencyMs", get("latencyMs"))?,
            },
            DataKind::Custom => SessionEventData::Custom {
                name: need("name")?,
                data: get("data").unwrap_or_default(),
            },
            DataKind::Account => SessionEventData::Account {
                account: need("account")?,
                change: need("change")?,
            },
        })
    }
}

/// The most session events one batch may carry.
pub const MAX_BATCH: usize = 1_000;

/// One event inside a recorded session. Its `event_id` is also the id of
/// the log event that stores it, so a replayed batch is idempotent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub event_id: Uuid,
    pub event_type: SessionEventType,
    /// Milliseconds from the session's start.
    pub offset_ms: u64,
    pub data: SessionEventData,
}

impl SessionEvent {
    /// Checks that the data fits the type.
    pub fn validate(&self) -> Result<(), String> {
        let expected = self.event_type.data_kind();
        match self.data.kind() {
            None if expected == DataKind::Session => Ok(()),
            None => Err(format!(
                "{} event {} has no data; it needs {:?} data",
                self.event_type, self.event_id, expected
            )),
            Some(kind) if kind == expected => Ok(()),
            Some(kind) => Err(format!(
                "{} event {} carries {:?} data; it needs {:?} data",
                self.event_type, self.event_id, kind, expected
            )),
        }
    }

    /// The field detection patterns look at: the application, the URL's
    /// host, the file path, the device, the printer, the registry key, the
    /// RDP target, the custom event's name, the account.
    pub fn subject(&self) -> Option<String> {
        match &self.data {
            SessionEventData::App { app, .. } => Some(app.clone()),
            SessionEventData::Web { url, .. } => Some(url_host(url)),
            SessionEventData::File { path, .. } | SessionEventData::FileTransfer { path, .. } => {
                Some(path.clone())
            }
            SessionEventData::Device { device, .. } => Some(device.clone()),
            SessionEventData::Clipboard { app, .. } => app.clone(),
            SessionEventData::Print { printer, .. } => Some(printer.clone()),
            SessionEventData::Registry { key, .. } => Some(key.clone()),
            SessionEventData::Rdp { target } => Some(target.clone()),
            SessionEventData::Custom { name, .. } => Some(name.clone()),
            SessionEventData::Account { account, .. } => Some(account.clone()),
            SessionEventData::Session { client_name, .. } => client_name.clone(),
            SessionEventData::Idle { .. }
            | SessionEventData::Performance { .. }
            | SessionEventData::None => None,
        }
    }

    /// The application this event names, if it names one.
    pub fn application(&self) -> Option<&str> {
        match &self.data {
            SessionEventData::App { app, .. } => Some(app),
            _ => None,
        }
    }
}

/// What stays plain of a sealed session event's data (see `crate::seal`):
/// what the read models fold without keys.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlainFacts {
    /// The application an `APP_START`, `APP_END`, `APP_FAILURE`,
    /// `APP_INSTALL` or `APP_UNINSTALL` event names: applications are
    /// attributes of the session (data points, catalogue search).
    pub application: Option<String>,
    /// An `IDLE` event's seconds (the idle data point).
    pub idle_seconds: Option<u64>,
}

impl SessionEvent {
    /// The facts of its data that stay plain when it is sealed.
    pub fn plain_facts(&self) -> PlainFacts {
        use SessionEventType as T;
        let application = match (self.event_type, &self.data) {
            (
                T::AppStart | T::AppEnd | T::AppFailure | T::AppInstall | T::AppUninstall,
                SessionEventData::App { app, .. },
            ) => Some(app.clone()),
            _ => None,
        };
        let idle_seconds = match self.data {
            SessionEventData::Idle { seconds } => Some(seconds),
            _ => None,
        };
        PlainFacts {
            application,
            idle_seconds,
        }
    }
}

/// The host of a URL, lowercased, without scheme, credentials, port, path.
/// Tolerates what browsers report (`example.com/x` without a scheme).
pub fn url_host(url: &str) -> String {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.to_ascii_lowercase()
}

/// A recording's figures, derived from its events alone (pure fold).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DataPoints {
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Ended minus started when ended; else the offset of the latest event.
    pub duration_ms: u64,
    pub event_count: u64,
    pub events_by_type: BTreeMap<SessionEventType, u64>,
    pub detections_by_severity: BTreeMap<Severity, u64>,
    pub detection_count: u64,
    /// Bytes of stored content.
    pub size_bytes: u64,
    /// Published applications at start plus every application started,
    /// first spelling kept, compared ignoring case.
    pub applications: BTreeSet<String>,
    pub idle_ms: u64,
    pub last_offset_ms: u64,
}

impl DataPoints {
    /// Folds one event of the recording's stream in; others are ignored.
    pub fn apply(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::RecordingStarted {
                started_at,
                applications,
                ..
            } => {
                self.started_at = Some(*started_at);
                for app in applications {
                    self.add_application(app);
                }
            }
            DomainEvent::SessionEventRecorded { event, .. } => {
                self.event_count += 1;
                *self.events_by_type.entry(event.event_type).or_default() += 1;
                self.last_offset_ms = self.last_offset_ms.max(event.offset_ms);
                if let SessionEventData::Idle { seconds } = event.data {
                    self.idle_ms = self.idle_ms.saturating_add(seconds.saturating_mul(1_000));
                }
                if event.event_type == SessionEventType::AppStart {
                    if let Some(app) = event.application() {
                        self.add_application(app);
                    }
                }
            }
            DomainEvent::SessionEventSealed {
                event_type,
                offset_ms,
                facts,
                ..
            } => {
                self.event_count += 1;
                *self.events_by_type.entry(*event_type).or_default() += 1;
                self.last_offset_ms = self.last_offset_ms.max(*offset_ms);
                if let Some(seconds) = facts.idle_seconds {
                    self.idle_ms = self.idle_ms.saturating_add(seconds.saturating_mul(1_000));
                }
                if *event_type == SessionEventType::AppStart {
                    if let Some(app) = &facts.application {
                        self.add_application(app);
                    }
                }
            }
            DomainEvent::EventDetected { severity, .. }
            | DomainEvent::EventDetectedSealed { severity, .. } => {
                self.detection_count += 1;
                *self.detections_by_severity.entry(*severity).or_default() += 1;
            }
            DomainEvent::ContentChunkStored { size, .. } => {
                self.size_bytes = self.size_bytes.saturating_add(*size);
            }
            DomainEvent::RecordingEnded { ended_at, .. } => {
                self.ended_at = Some(*ended_at);
            }
            _ => {}
        }
        self.duration_ms = match (self.started_at, self.ended_at) {
            (Some(start), Some(end)) => {
                u64::try_from((end.as_micros() - start.as_micros()) / 1_000).unwrap_or(0)
            }
            _ => self.last_offset_ms,
        };
    }

    fn add_application(&mut self, app: &str) {
        let app = app.trim();
        if !app.is_empty()
            && !self
                .applications
                .iter()
                .any(|a| a.eq_ignore_ascii_case(app))
        {
            self.applications.insert(app.to_string());
        }
    }
}

/// Minimum, mean, 95th percentile and maximum of one measure of a
/// session's performance samples (samples that lack the measure are left
/// out). The percentile is the nearest-rank one: the smallest sample that
/// at least 95% of the samples do not exceed.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MeasureSummary {
    /// Samples that carried the measure.
    pub samples: u64,
    pub min: f64,
    pub avg: f64,
    pub p95: f64,
    pub max: f64,
}

impl MeasureSummary {
    /// The summary of `values`; `None` when there are none.
    pub fn of(mut values: Vec<f64>) -> Option<MeasureSummary> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let rank = (n * 95).div_ceil(100).max(1);
        Some(MeasureSummary {
            samples: n as u64,
            min: values[0],
            avg: values.iter().sum::<f64>() / n as f64,
            p95: values[rank - 1],
            max: values[n - 1],
        })
    }
}

/// What a recording's PERFORMANCE_SAMPLE events add up to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PerformanceSummary {
    /// PERFORMANCE_SAMPLE events folded in.
    pub samples: u64,
    /// CPU use, percent.
    pub cpu_percent: Option<MeasureSummary>,
    /// Memory in use, MB.
    pub memory_mb: Option<MeasureSummary>,
    /// Round-trip latency between client and session host, ms.
    pub latency_ms: Option<MeasureSummary>,
}

impl PerformanceSummary {
    /// The summary of the performance samples among `events`.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a SessionEventData>) -> PerformanceSummary {
        let (mut samples, mut cpu, mut memory, mut latency) = (0, vec![], vec![], vec![]);
        for data in events {
            if let SessionEventData::Performance {
                cpu_percent,
                memory_mb,
                latency_ms,
            } = data
            {
                samples += 1;
                cpu.extend(*cpu_percent);
                memory.extend(memory_mb.map(|m| m as f64));
                latency.extend(latency_ms.map(|l| l as f64));
            }
        }
        PerformanceSummary {
            samples,
            cpu_percent: MeasureSummary::of(cpu),
            memory_mb: MeasureSummary::of(memory),
            latency_ms: MeasureSummary::of(latency),
        }
    }
}

/// The data points of one recording's events.
pub fn data_points<'a>(events: impl IntoIterator<Item = &'a DomainEvent>) -> DataPoints {
    let mut points = DataPoints::default();
    for event in events {
        points.apply(event);
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;

    #[test]
    fn type_names_round_trip_ignoring_case() {
        for t in SessionEventType::ALL {
            assert_eq!(t.as_str().to_lowercase().parse::<SessionEventType>(), Ok(t));
        }
        assert!("NOPE".parse::<SessionEventType>().is_err());
    }

    #[test]
    fn data_is_parsed_from_api_fields_by_type() {
        let fields: BTreeMap<String, String> = [
            ("url", "https://Mail.Example.com:8443/inbox"),
            ("browser", "Edge"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let data = SessionEventData::parse(SessionEventType::WebBrowsing, &fields).unwrap();
        let event = SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::WebBrowsing,
            offset_ms: 5,
            data,
        };
        assert_eq!(event.validate(), Ok(()));
        assert_eq!(event.subject().as_deref(), Some("mail.example.com"));
    }

    #[test]
    fn missing_required_data_is_refused() {
        let err =
            SessionEventData::parse(SessionEventType::AppStart, &BTreeMap::new()).unwrap_err();
        assert!(err.contains("data.app"), "{err}");
        let seconds = [("seconds".to_string(), "soon".to_string())]
            .into_iter()
            .collect();
        assert!(SessionEventData::parse(SessionEventType::Idle, &seconds).is_err());
    }

    #[test]
    fn data_of_another_type_is_invalid() {
        let mut event = app_start("cmd.exe", 1);
        event.event_type = SessionEventType::WebBrowsing;
        assert!(event.validate().is_err());
        let logon = SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::Logon,
            offset_ms: 0,
            data: SessionEventData::None,
        };
        assert_eq!(logon.validate(), Ok(()));
    }

    #[test]
    fn url_hosts_drop_scheme_credentials_port_and_path() {
        assert_eq!(
            url_host("https://u:p@WWW.Example.com:443/a?b#c"),
            "www.example.com"
        );
        assert_eq!(url_host("example.com/path"), "example.com");
        assert_eq!(url_host("http://[2001:db8::1]:80/"), "2001:db8::1");
    }

    #[test]
    fn data_points_derive_from_the_recording_events() {
        let started = started_event(RECORDING, T0);
        let idle = SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::Idle,
            offset_ms: 9_000,
            data: SessionEventData::Idle { seconds: 120 },
        };
        let events = vec![
            started,
            recorded(RECORDING, app_start("cmd.exe", 1_000)),
            recorded(RECORDING, app_start("CMD.EXE", 2_000)),
            recorded(RECORDING, idle),
            detected(RECORDING, Severity::High),
            DomainEvent::ContentChunkStored {
                recording_id: RECORDING,
                site_id: SITE,
                seq: 0,
                size: 4_096,
                sha256: "00".repeat(32),
            },
            DomainEvent::RecordingEnded {
                recording_id: RECORDING,
                site_id: SITE,
                server_id: SERVER,
                ended_at: Timestamp(T0.0 + 60_000_000),
            },
        ];
        let points = data_points(&events);
        assert_eq!(points.duration_ms, 60_000);
        assert_eq!(points.event_count, 3);
        assert_eq!(points.events_by_type[&SessionEventType::AppStart], 2);
        assert_eq!(points.detections_by_severity[&Severity::High], 1);
        assert_eq!(points.size_bytes, 4_096);
        assert_eq!(points.idle_ms, 120_000);
        assert_eq!(
            points
                .applications
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            vec!["Desktop", "cmd.exe"]
        );
    }

    #[test]
    fn performance_samples_sum_up_to_min_avg_p95_max() {
        let sample = |cpu: Option<f64>, latency: u64| SessionEventData::Performance {
            cpu_percent: cpu,
            memory_mb: None,
            latency_ms: Some(latency),
        };
        let mut data: Vec<SessionEventData> =
            (1..=20).map(|i| sample(Some(i as f64), i * 10)).collect();
        data.push(sample(None, 1_000));
        data.push(SessionEventData::Idle { seconds: 5 });
        let summary = PerformanceSummary::of(&data);
        assert_eq!(summary.samples, 21);
        let cpu = summary.cpu_percent.unwrap();
        assert_eq!((cpu.samples, cpu.min, cpu.max), (20, 1.0, 20.0));
        assert_eq!((cpu.avg, cpu.p95), (10.5, 19.0));
        let latency = summary.latency_ms.unwrap();
        assert_eq!(
            (latency.samples, latency.p95, latency.max),
            (21, 200.0, 1_000.0)
        );
        assert_eq!(summary.memory_mb, None);
        assert_eq!(PerformanceSummary::of(&[]), PerformanceSummary::default());
    }

    #[test]
    fn live_recording_duration_is_its_latest_offset() {
        let events = [
            started_event(RECORDING, T0),
            recorded(RECORDING, app_start("x", 7_500)),
        ];
        assert_eq!(data_points(&events).duration_ms, 7_500);
    }
}
