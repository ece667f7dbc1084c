//! Given / when / then for aggregates, plus shared fixtures. Compiled for
//! this crate's tests and, behind the `testing` feature, for other crates'.
//!
//! ```
//! # #[cfg(feature = "testing")] {
//! use srs_domain::model::testing::{fixtures::*, given};
//! use srs_domain::model::{ErrorCode, RecordingCommand};
//!
//! given([started_event(RECORDING, T0)])
//!     .when(RecordingCommand::Archive { now: T1 })
//!     .then_err_code(ErrorCode::Validation); // only ended recordings archive
//! # }
//! ```
//!
//! The command names its aggregate (through [`CommandFor`]), so no type
//! annotations are needed. Every assertion is `#[track_caller]`: a failure
//! points at the test line, with the history, the command and the outcome.

use std::fmt;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;

/// A history of events, before a command.
#[must_use = "follow with .when(command) or .state::<A>()"]
pub struct Given {
    history: Vec<DomainEvent>,
}

/// Starts a scenario from a history.
pub fn given(history: impl IntoIterator<Item = DomainEvent>) -> Given {
    Given {
        history: history.into_iter().collect(),
    }
}

impl Given {
    /// Decides `command` on the aggregate the history folds into.
    pub fn when<C>(self, command: C) -> When<C::Aggregate>
    where
        C: CommandFor + Clone + fmt::Debug,
    {
        let state = <C::Aggregate as Aggregate>::from_events(&self.history);
        let described = format!("{command:?}");
        let outcome = state.decide(command);
        When {
            history: self.history,
            command: described,
            outcome,
        }
    }

    /// The state the history folds into.
    pub fn state<A: Aggregate>(&self) -> A {
        A::from_events(&self.history)
    }
}

/// The outcome of a command, to assert on.
#[must_use = "assert with .then(..), .then_err(..) or friends"]
pub struct When<A: Aggregate> {
    history: Vec<DomainEvent>,
    command: String,
    outcome: Result<Vec<DomainEvent>, A::Error>,
}

impl<A: Aggregate> When<A> {
    fn context(&self) -> String {
        format!(
            "\n  given: {:#?}\n  when: {}\n  outcome: {:#?}",
            self.history, self.command, self.outcome
        )
    }

    /// Asserts the command yields exactly `expected`, in order.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = DomainEvent>) {
        let expected: Vec<DomainEvent> = expected.into_iter().collect();
        match &self.outcome {
            Ok(events) if *events == expected => {}
            Ok(_) => panic!(
                "unexpected events; expected {expected:#?}{}",
                self.context()
            ),
            Err(_) => panic!(
                "expected events {expected:#?}, got an error{}",
                self.context()
            ),
        }
    }

    /// Asserts the command succeeds, whatever it yields.
    #[track_caller]
    pub fn then_ok(self) {
        if self.outcome.is_err() {
            panic!("expected success{}", self.context());
        }
    }

    /// Asserts the command succeeds with events that satisfy `check`.
    #[track_caller]
    pub fn then_matches(self, check: impl FnOnce(&[DomainEvent]) -> bool) {
        match &self.outcome {
            Ok(events) if check(events) => {}
            _ => panic!("events do not match{}", self.context()),
        }
    }

    /// Asserts the command fails with an error satisfying `check`
    /// (typically `|e| matches!(e, RecordingError::NotLive(_))`).
    #[track_caller]
    pub fn then_err(self, check: impl FnOnce(&A::Error) -> bool) {
        match &self.outcome {
            Err(error) if check(error) => {}
            _ => panic!("expected a matching error{}", self.context()),
        }
    }

    /// Asserts the command fails with an error of `code`.
    #[track_caller]
    pub fn then_err_code(self, code: ErrorCode) {
        match &self.outcome {
            Err(error) if error.code() == code => {}
            _ => panic!("expected a {code} error{}", self.context()),
        }
    }

    /// The events, asserting success (to build longer histories).
    #[track_caller]
    pub fn events(self) -> Vec<DomainEvent> {
        match self.outcome {
            Ok(events) => events,
            Err(ref error) => panic!("expected success, got {error}{}", self.context()),
        }
    }
}

/// Small builders shared by the model's tests and other crates' tests.
pub mod fixtures {
    use std::collections::BTreeSet;

    use uuid::Uuid;

    use crate::model::event::DomainEvent;
    use crate::model::permission::RecordingFacts;
    use crate::model::policy::{
        RecordingAction, RecordingDecision, ResponseAction, ResponsePolicyBody, ResponseRule,
        ResponseTrigger, Scope, SessionAttributes, Severity, TriggerOn,
    };
    use crate::model::server::Deployment;
    use crate::model::session_event::{SessionEvent, SessionEventData, SessionEventType};
    use crate::model::token::{Principal, Role};
    use crate::time::Timestamp;

    /// Fixed ids, so expected events can be written out.
    pub const SITE: Uuid = Uuid::from_u128(0x5173);
    pub const SERVER: Uuid = Uuid::from_u128(0x5e7e);
    pub const RECORDING: Uuid = Uuid::from_u128(0x7ec0);
    pub const POLICY: Uuid = Uuid::from_u128(0x9011);
    pub const DETECTION_POLICY: Uuid = Uuid::from_u128(0xde7);
    pub const RESPONSE_POLICY: Uuid = Uuid::from_u128(0x7e5);
    pub const PERMISSION: Uuid = Uuid::from_u128(0x9e7);
    pub const TOKEN: Uuid = Uuid::from_u128(0x70c);
    pub const COMMENT: Uuid = Uuid::from_u128(0xc0);
    pub const JOB: Uuid = Uuid::from_u128(0x10b);
    /// A well-formed SHA-256 (of nothing in particular).
    pub const CREDENTIAL: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    /// 2026-01-01T00:00:00Z.
    pub const T0: Timestamp = Timestamp(1_767_225_600_000_000);
    /// One hour after [`T0`].
    pub const T1: Timestamp = Timestamp(T0.0 + 3_600_000_000);
    /// Two hours after [`T0`].
    pub const T2: Timestamp = Timestamp(T0.0 + 7_200_000_000);

    /// Alice on VDA-01, in CORP\Finance, from 10.20.30.40, on the
    /// "Trading Desk" delivery group's "Desktop".
    pub fn session() -> SessionAttributes {
        SessionAttributes {
            user: "CORP\\alice".into(),
            groups: vec!["CORP\\Finance".into()],
            client_name: Some("ALICE-LAPTOP".into()),
            client_ip: Some("10.20.30.40".into()),
            host: "VDA-01".into(),
            delivery_group: Some("Trading Desk".into()),
            applications: vec!["Desktop".into()],
        }
    }

    /// The decision of rule "Everyone" (index 0) of [`POLICY`].
    pub fn decision(action: RecordingAction) -> RecordingDecision {
        RecordingDecision {
            policy_id: POLICY,
            policy_name: "Record all".into(),
            rule: Some("Everyone".into()),
            rule_index: Some(0),
            action,
            notify: action != RecordingAction::DoNotRecord,
            lossy: false,
            audio: false,
        }
    }

    fn started(recording_id: Uuid, at: Timestamp, action: RecordingAction) -> DomainEvent {
        let s = session();
        DomainEvent::RecordingStarted {
            recording_id,
            site_id: SITE,
            server_id: SERVER,
            session_id: "42".into(),
            part: 1,
            previous_recording_id: None,
            domain: s.domain(),
            user: s.user,
            groups: s.groups,
            client_name: s.client_name,
            client_ip: s.client_ip,
            host: s.host,
            delivery_group: s.delivery_group,
            applications: s.applications,
            mode: action
                .mode()
                .unwrap_or(crate::model::policy::RecordingMode::ScreenAndEvents),
            decision: decision(action),
            started_at: at,
        }
    }

    /// [`session`]'s screen-and-events recording, session "42" part 1.
    pub fn started_event(recording_id: Uuid, at: Timestamp) -> DomainEvent {
        started(recording_id, at, RecordingAction::RecordScreenAndEvents)
    }

    /// Like [`started_event`] but events only.
    pub fn events_only_started() -> DomainEvent {
        started(RECORDING, T0, RecordingAction::RecordEventsOnly)
    }

    /// Site [`SITE`] "Head office" at [`T0`].
    pub fn site_created() -> DomainEvent {
        DomainEvent::SiteCreated {
            site_id: SITE,
            name: "Head office".into(),
            at: T0,
        }
    }

    /// Server [`SERVER`] "SR-01" of [`SITE`] at [`T0`].
    pub fn server_connected() -> DomainEvent {
        DomainEvent::ServerConnected {
            server_id: SERVER,
            site_id: SITE,
            name: "SR-01".into(),
            host: "sr-01.corp".into(),
            deployment: Deployment::OnPremises,
            version: "2411".into(),
            credential_sha256: CREDENTIAL.into(),
            at: T0,
        }
    }

    /// An APP_START of `app` at `offset_ms`, with a fresh id.
    pub fn app_start(app: &str, offset_ms: u64) -> SessionEvent {
        SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::AppStart,
            offset_ms,
            data: SessionEventData::App {
                app: app.into(),
                pid: None,
                title: None,
                detail: None,
            },
        }
    }

    /// A WEB_BROWSING of `url` at `offset_ms`, with a fresh id.
    pub fn web(url: &str, offset_ms: u64) -> SessionEvent {
        SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::WebBrowsing,
            offset_ms,
            data: SessionEventData::Web {
                url: url.into(),
                browser: Some("Edge".into()),
                title: None,
            },
        }
    }

    /// `event` stored on `recording_id`.
    pub fn recorded(recording_id: Uuid, event: SessionEvent) -> DomainEvent {
        DomainEvent::SessionEventRecorded {
            recording_id,
            site_id: SITE,
            event,
        }
    }

    /// A detection of `severity` on `recording_id`.
    pub fn detected(recording_id: Uuid, severity: Severity) -> DomainEvent {
        DomainEvent::EventDetected {
            detection_id: Uuid::now_v7(),
            recording_id,
            site_id: SITE,
            server_id: SERVER,
            user: "CORP\\alice".into(),
            host: "VDA-01".into(),
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::AppStart,
            severity,
            rule: "shell".into(),
            policy_id: DETECTION_POLICY,
            subject: Some("cmd.exe".into()),
            at_offset_ms: 1,
        }
    }

    /// One rule "Lock on detections": detections of `types` (empty: any)
    /// of at least MEDIUM lock the session, with `cooldown_sec`.
    pub fn response_body(types: &[SessionEventType], cooldown_sec: u32) -> ResponsePolicyBody {
        ResponsePolicyBody {
            rules: vec![ResponseRule {
                name: "Lock on detections".into(),
                triggers: vec![ResponseTrigger {
                    description: "a serious detection".into(),
                    on: TriggerOn::Detection {
                        types: types.iter().copied().collect::<BTreeSet<_>>(),
                        min_severity: Severity::Medium,
                    },
                    scope: Scope::default(),
                }],
                actions: vec![ResponseAction::LockSession {
                    message: "Your session is locked for review.".into(),
                }],
                cooldown_sec,
            }],
        }
    }

    /// The access facts of [`started_event`]'s recording.
    pub fn recording_facts() -> RecordingFacts {
        let s = session();
        RecordingFacts {
            recording_id: RECORDING,
            site_id: SITE,
            server_id: SERVER,
            user: s.user,
            groups: s.groups,
            host: s.host,
            delivery_group: s.delivery_group,
            applications: s.applications,
            restricted: false,
            archived: false,
            deleted: false,
        }
    }

    /// An unscoped principal of `role` named `name`.
    pub fn principal(role: Role, name: &str) -> Principal {
        Principal {
            token_id: TOKEN,
            name: name.into(),
            role,
            site_ids: BTreeSet::new(),
            groups: Vec::new(),
            server_id: None,
        }
    }
}
