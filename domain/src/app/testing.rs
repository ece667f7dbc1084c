//! The application layer's test world: the real sled log behind a spy, a
//! service over it, and helpers the per-aggregate tests share.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::*;
use crate::log::{
    AppendError, Appended, Envelope, EventStore, EventStream, ExpectedVersion, Head, LogError,
    NewEvent, SledEventStore, StoreOptions,
};
use crate::model::testing::fixtures::session;
use crate::model::*;
use crate::time::{ManualClock, Timestamp};

/// The sled log, with a record of stream reads and an optional rival that
/// appends to a stream just before we do.
pub(crate) struct Spy {
    pub(crate) inner: SledEventStore<DomainEvent>,
    pub(crate) reads: Mutex<Vec<(String, u64)>>,
    /// (stream, event to slip in, how many times)
    pub(crate) rival: Mutex<Option<(String, DomainEvent, u32)>>,
}

#[async_trait]
impl EventStore<DomainEvent> for Spy {
    async fn append(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<DomainEvent>>,
    ) -> Result<Appended, AppendError> {
        let rival = {
            let mut rival = self.rival.lock().unwrap();
            match rival.as_mut() {
                Some((s, event, times)) if s == stream && *times > 0 => {
                    *times -= 1;
                    Some(event.clone())
                }
                _ => None,
            }
        };
        if let Some(event) = rival {
            let _ = self
                .inner
                .append(
                    stream,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(Actor::system("rival"), event)],
                )
                .await?;
        }
        self.inner.append(stream, expected, events).await
    }

    async fn append_guarded(
        &self,
        stream: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent<DomainEvent>>,
        guards: Vec<(String, ExpectedVersion)>,
    ) -> Result<Appended, AppendError> {
        // A rival aimed at a guard stream slips in just before the append.
        let rival = {
            let mut rival = self.rival.lock().unwrap();
            match rival.as_mut() {
                Some((s, event, times)) if guards.iter().any(|(g, _)| g == s) && *times > 0 => {
                    *times -= 1;
                    Some((s.clone(), event.clone()))
                }
                _ => None,
            }
        };
        if let Some((guard, event)) = rival {
            let _ = self
                .inner
                .append(
                    &guard,
                    ExpectedVersion::Any,
                    vec![NewEvent::new(Actor::system("rival"), event)],
                )
                .await?;
        }
        if guards.is_empty() {
            return self.append(stream, expected, events).await;
        }
        self.inner
            .append_guarded(stream, expected, events, guards)
            .await
    }

    async fn read_all(
        &self,
        from: u64,
        max: usize,
    ) -> Result<Vec<Envelope<DomainEvent>>, LogError> {
        self.inner.read_all(from, max).await
    }

    async fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        max: usize,
    ) -> Result<Vec<Envelope<DomainEvent>>, LogError> {
        self.reads
            .lock()
            .unwrap()
            .push((stream.to_string(), from_version));
        self.inner.read_stream(stream, from_version, max).await
    }

    async fn stream_version(&self, stream: &str) -> Result<Option<u64>, LogError> {
        self.inner.stream_version(stream).await
    }

    async fn read_event(&self, event_id: Uuid) -> Result<Option<Envelope<DomainEvent>>, LogError> {
        self.inner.read_event(event_id).await
    }

    fn head(&self) -> Head {
        self.inner.head()
    }

    fn watch_head(&self) -> watch::Receiver<Head> {
        self.inner.watch_head()
    }

    fn subscribe(&self, from: u64) -> EventStream<DomainEvent> {
        self.inner.subscribe(from)
    }
}

pub(crate) struct World {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) spy: Arc<Spy>,
    pub(crate) clock: ManualClock,
    pub(crate) permissions: Arc<InMemoryPermissions>,
    pub(crate) service: Service,
    pub(crate) admin: Principal,
}

impl World {
    pub(crate) fn new() -> World {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = ManualClock::new(Timestamp::from_secs(1_767_225_600));
        let options = StoreOptions {
            clock: Arc::new(clock.clone()),
            ..StoreOptions::default()
        };
        let inner = SledEventStore::open(dir.path(), options).expect("open log");
        let spy = Arc::new(Spy {
            inner,
            reads: Mutex::new(Vec::new()),
            rival: Mutex::new(None),
        });
        let permissions = Arc::new(InMemoryPermissions::default());
        let service = Service::new(spy.clone(), Arc::new(clock.clone()), permissions.clone());
        World {
            _dir: dir,
            spy,
            clock,
            permissions,
            service,
            admin: person(Role::Admin, "root"),
        }
    }

    /// Grants `scope` on `site_id` to `principal` and folds the grant into
    /// the permissions the service asks.
    pub(crate) async fn grant(&self, site_id: Uuid, principal: &str, scope: PlaybackScope) -> Uuid {
        let granted = self
            .service
            .grant_playback_permission(&self.admin, site_id, principal, scope)
            .await
            .expect("grant");
        for event in &granted.executed.events {
            self.permissions.apply(event);
        }
        granted.id
    }

    pub(crate) async fn all_events(&self) -> Vec<Envelope<DomainEvent>> {
        self.spy.read_all(1, 100_000).await.expect("read_all")
    }

    pub(crate) async fn site(&self) -> Uuid {
        self.service
            .create_site(&self.admin, "Head office")
            .await
            .expect("site")
            .id
    }

    pub(crate) async fn server(&self, site_id: Uuid) -> (Uuid, Principal) {
        let connected = self
            .service
            .connect_server(
                &self.admin,
                ConnectServer {
                    site_id,
                    name: "SR-01".into(),
                    host: "sr-01.corp".into(),
                    deployment: Deployment::OnPremises,
                    version: "2411".into(),
                },
            )
            .await
            .expect("connect");
        (
            connected.server_id,
            Principal::agent(connected.server_id, site_id),
        )
    }

    /// A site recording everyone, detecting shells (HIGH), locking on them.
    pub(crate) async fn recording_site(&self) -> (Uuid, Uuid, Principal) {
        let site_id = self.site().await;
        let (server_id, agent) = self.server(site_id).await;
        let admin = &self.admin;
        self.service
            .activate_policy(admin, RECORD_EVERYONE_WITH_NOTIFICATION, Some(site_id))
            .await
            .expect("record everyone");
        let detection = self
            .service
            .create_policy(
                admin,
                site_id,
                "Shells",
                PolicyBody::EventDetection(DetectionPolicyBody {
                    logged: BTreeSet::from([
                        SessionEventType::AppStart,
                        SessionEventType::WebBrowsing,
                    ]),
                    rules: vec![DetectionRule {
                        name: Some("shell".into()),
                        event_type: SessionEventType::AppStart,
                        severity: Severity::High,
                        patterns: vec![],
                        idle_seconds: None,
                        scope: Scope::default(),
                    }],
                    ..Default::default()
                }),
            )
            .await
            .expect("detection policy");
        self.service
            .activate_policy(admin, detection.id, None)
            .await
            .expect("activate detection");
        let response = self
            .service
            .create_policy(
                admin,
                site_id,
                "Lock",
                PolicyBody::EventResponse(crate::model::testing::fixtures::response_body(
                    &[SessionEventType::AppStart],
                    60,
                )),
            )
            .await
            .expect("response policy");
        self.service
            .activate_policy(admin, response.id, None)
            .await
            .expect("activate response");
        (site_id, server_id, agent)
    }

    pub(crate) async fn start(
        &self,
        server_id: Uuid,
        agent: &Principal,
        session_id: &str,
    ) -> StartedRecording {
        self.service
            .start_recording(
                agent,
                StartRecordingInput {
                    server_id,
                    session_id: session_id.into(),
                    session: session(),
                    started_at: None,
                },
            )
            .await
            .expect("start")
    }
}

pub(crate) fn person(role: Role, name: &str) -> Principal {
    Principal {
        token_id: Uuid::now_v7(),
        name: name.into(),
        role,
        site_ids: BTreeSet::new(),
        groups: Vec::new(),
        server_id: None,
    }
}

pub(crate) fn names(events: &[DomainEvent]) -> Vec<&'static str> {
    events.iter().map(DomainEvent::name).collect()
}

/// The refusal facts written since `from` (a position).
pub(crate) async fn refusal_facts(w: &World, from: usize) -> Vec<DomainEvent> {
    w.all_events()
        .await
        .into_iter()
        .skip(from)
        .filter(|e| e.stream == ACCESS_DENIED_STREAM)
        .map(|e| e.payload)
        .collect()
}

/// The answer to a refused call, with the recording id written as `<id>`.
pub(crate) fn answer(error: &AppError, id: Uuid) -> (Option<ErrorCode>, String) {
    (
        error.code(),
        error.to_string().replace(&id.to_string(), "<id>"),
    )
}

/// An ended recording of `session` (user CORP\alice).
pub(crate) async fn ended(w: &World, server_id: Uuid, agent: &Principal, session: &str) -> Uuid {
    let id = w.start(server_id, agent, session).await.recording_id;
    w.service.end_recording(agent, id, None).await.expect("end");
    id
}

pub(crate) fn deleted_ids(events: &[Envelope<DomainEvent>]) -> Vec<Uuid> {
    events
        .iter()
        .filter_map(|e| match e.payload {
            DomainEvent::RecordingDeleted { recording_id, .. } => Some(recording_id),
            _ => None,
        })
        .collect()
}

/// The site of a recording, from its stream.
pub(crate) async fn legacy_site(w: &World, recording_id: Uuid) -> Uuid {
    w.service
        .load::<Recording>(recording_id)
        .await
        .expect("load")
        .state
        .site_id
}
