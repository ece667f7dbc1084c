//! The application layer against the real sled log.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use uuid::Uuid;

use super::*;
use crate::actor::Actor;
use crate::log::{
    AppendError, Appended, Envelope, EventStore, EventStream, ExpectedVersion, Head, LogError,
    NewEvent, SledEventStore, StoreOptions,
};
use crate::model::testing::fixtures::{app_start, session, web};
use crate::model::*;
use crate::time::{ManualClock, Timestamp};

/// The sled log, with a record of stream reads and an optional rival that
/// appends to a stream just before we do.
struct Spy {
    inner: SledEventStore<DomainEvent>,
    reads: Mutex<Vec<(String, u64)>>,
    /// (stream, event to slip in, how many times)
    rival: Mutex<Option<(String, DomainEvent, u32)>>,
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

struct World {
    _dir: tempfile::TempDir,
    spy: Arc<Spy>,
    clock: ManualClock,
    permissions: Arc<InMemoryPermissions>,
    service: Service,
    admin: Principal,
}

impl World {
    fn new() -> World {
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
    async fn grant(&self, site_id: Uuid, principal: &str, scope: PlaybackScope) -> Uuid {
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

    async fn all_events(&self) -> Vec<Envelope<DomainEvent>> {
        self.spy.read_all(1, 100_000).await.expect("read_all")
    }

    async fn site(&self) -> Uuid {
        self.service
            .create_site(&self.admin, "Head office")
            .await
            .expect("site")
            .id
    }

    async fn server(&self, site_id: Uuid) -> (Uuid, Principal) {
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
    async fn recording_site(&self) -> (Uuid, Uuid, Principal) {
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

    async fn start(
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

fn person(role: Role, name: &str) -> Principal {
    Principal {
        token_id: Uuid::now_v7(),
        name: name.into(),
        role,
        site_ids: BTreeSet::new(),
        groups: Vec::new(),
        server_id: None,
    }
}

fn names(events: &[DomainEvent]) -> Vec<&'static str> {
    events.iter().map(DomainEvent::name).collect()
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let w = World::new();
    let site_id = w.site().await;
    let renamed = w
        .service
        .rename_site(&w.admin, site_id, "Branch", Some(1))
        .await
        .expect("rename");
    assert_eq!(renamed.version, 2);
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Again", Some(1))
        .await
        .expect_err("stale");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    assert_eq!(error.code_str(), "CONFLICT");
}

#[tokio::test]
async fn a_conflicting_append_is_decided_again_when_no_version_was_expected() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "Head office".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 1));
    let executed = w
        .service
        .rename_site(&w.admin, site_id, "Mine", None)
        .await
        .expect("retried");
    assert_eq!(executed.version, 3);
    match &executed.events[..] {
        [DomainEvent::SiteRenamed { previous_name, .. }] => assert_eq!(previous_name, "Rival"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn retries_are_bounded() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "x".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 100));
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Mine", None)
        .await
        .expect_err("gives up");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    let left = w.spy.rival.lock().unwrap().as_ref().map(|r| r.2);
    assert_eq!(left, Some(100 - 4), "one attempt plus three retries");
}

#[tokio::test]
async fn a_long_recording_is_loaded_incrementally() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    for batch in 0..5u64 {
        let events = (0..10)
            .map(|i| web("https://example.com", batch * 100 + i))
            .collect();
        w.service
            .record_session_events(&agent, recording, events)
            .await
            .expect("batch");
    }
    w.spy.reads.lock().unwrap().clear();
    let loaded = w.service.load::<Recording>(recording).await.expect("load");
    assert_eq!(loaded.state.data_points.event_count, 50);
    let stream = Recording::stream(recording);
    let reads: Vec<u64> = w
        .spy
        .reads
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| *s == stream)
        .map(|(_, from)| *from)
        .collect();
    assert_eq!(
        reads,
        vec![loaded.version + 1],
        "only what follows the cached version is read"
    );
}

#[tokio::test]
async fn a_new_site_does_not_record() {
    let w = World::new();
    let site_id = w.site().await;
    let (server_id, agent) = w.server(site_id).await;
    let started = w.start(server_id, &agent, "s1").await;
    assert!(!started.recorded);
    assert_eq!(started.decision.map(|d| d.policy_id), Some(DO_NOT_RECORD));
    let error = w
        .service
        .record_session_events(&agent, started.recording_id, vec![app_start("cmd.exe", 1)])
        .await
        .expect_err("not recorded");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
}

#[tokio::test]
async fn session_events_detections_and_responses_are_one_idempotent_append() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let batch = vec![
        app_start("cmd.exe", 1_000),
        web("https://example.com", 2_000),
    ];
    let first = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("batch");
    assert_eq!(
        (
            first.accepted,
            first.duplicates,
            first.detections,
            first.responses
        ),
        // WEB_BROWSING is logged but has no rule: stored, not detected.
        (2, 0, 1, 1)
    );
    let positions = &first.executed.positions;
    assert!(
        positions.windows(2).all(|p| p[1] == p[0] + 1),
        "one append: {positions:?}"
    );
    assert_eq!(
        names(&first.executed.events),
        vec![
            "SessionEventRecorded",
            "EventDetected",
            "ResponseTriggered",
            "SessionEventRecorded",
        ]
    );

    let again = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("repeat");
    assert_eq!((again.accepted, again.duplicates), (0, 2));
    assert!(again.executed.positions.is_empty());

    let mut mixed = batch;
    mixed.push(app_start("notepad.exe", 3_000));
    let third = w
        .service
        .record_session_events(&agent, recording, mixed)
        .await
        .expect("partial repeat");
    assert_eq!((third.accepted, third.duplicates), (1, 2));
    let stored = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(stored.data_points.event_count, 3);
}

#[tokio::test]
async fn agents_ingest_only_for_their_own_server() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let (_, other_agent) = w.server(site_id).await;
    let error = w
        .service
        .record_session_events(&other_agent, recording, vec![app_start("a", 1)])
        .await
        .expect_err("foreign agent");
    // Another server's recording is as unknown to an agent as an absent one.
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    assert_eq!(
        error.to_string(),
        format!("recording {recording} not found")
    );
}

#[tokio::test]
async fn a_repeated_start_returns_the_same_recording_and_a_later_one_rolls_over() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let first = w.start(server_id, &agent, "s1").await;
    assert!(first.recorded && !first.repeated);
    let repeated = w.start(server_id, &agent, "s1").await;
    assert_eq!(
        (repeated.recording_id, repeated.repeated),
        (first.recording_id, true)
    );

    w.service
        .end_recording(&agent, first.recording_id, None)
        .await
        .expect("end");
    let second = w.start(server_id, &agent, "s1").await;
    assert_eq!(second.part, 2);
    assert_ne!(second.recording_id, first.recording_id);
    let state = w
        .service
        .load::<Recording>(second.recording_id)
        .await
        .expect("load")
        .state;
    assert_eq!(state.previous_recording_id, Some(first.recording_id));

    // Archiving one part of a rolled-over session archives them all, but
    // not while a part is live.
    let error = w
        .service
        .archive_recording(&w.admin, first.recording_id)
        .await
        .expect_err("live part");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    w.service
        .end_recording(&agent, second.recording_id, None)
        .await
        .expect("end");
    let archived = w
        .service
        .archive_recording(&w.admin, first.recording_id)
        .await
        .expect("archive");
    assert_eq!(
        names(&archived.events),
        vec!["RecordingArchived", "RecordingArchived"]
    );
    for id in [first.recording_id, second.recording_id] {
        let state = w.service.load::<Recording>(id).await.expect("load").state;
        assert_eq!(state.lifecycle, Lifecycle::Archived);
    }
    let deleted = w
        .service
        .delete_recording(&w.admin, second.recording_id)
        .await
        .expect("delete");
    assert_eq!(deleted.events.len(), 2);
}

#[tokio::test]
async fn secrets_are_returned_once_and_only_their_hashes_are_stored() {
    let w = World::new();
    let site_id = w.site().await;
    let credential = w
        .service
        .connect_server(
            &w.admin,
            ConnectServer {
                site_id,
                name: "SR".into(),
                host: "h".into(),
                deployment: Deployment::Cloud,
                version: "1".into(),
            },
        )
        .await
        .expect("connect");
    let token = w
        .service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            BTreeSet::from([site_id]),
            vec![],
            None,
        )
        .await
        .expect("token");
    assert!(credential.secret.starts_with("srs_") && credential.secret.len() == 4 + 64);
    assert!(
        !format!("{token:?}").contains(&token.secret),
        "Debug redacts the secret"
    );
    let log = format!("{:?}", w.all_events().await);
    assert!(!log.contains(&credential.secret) && !log.contains(&token.secret));
    assert!(
        log.contains(&hash_secret(&credential.secret)) && log.contains(&hash_secret(&token.secret))
    );
}

#[tokio::test]
async fn refused_attempts_are_recorded_as_access_denied() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let error = w
        .service
        .create_policy(
            &viewer,
            site_id,
            "p",
            PolicyBody::EventResponse(ResponsePolicyBody::default()),
        )
        .await
        .expect_err("viewer");
    assert_eq!(error.code(), Some(ErrorCode::Forbidden));
    let last = w.all_events().await.pop().expect("an event");
    assert_eq!(last.stream, ACCESS_DENIED_STREAM);
    match last.payload {
        DomainEvent::AccessDenied {
            principal, action, ..
        } => {
            assert_eq!(
                (principal.as_str(), action.as_str()),
                ("vic", "MANAGE_POLICIES")
            );
        }
        other => panic!("{other:?}"),
    }
}

/// The refusal facts written since `from` (a position).
async fn refusal_facts(w: &World, from: usize) -> Vec<DomainEvent> {
    w.all_events()
        .await
        .into_iter()
        .skip(from)
        .filter(|e| e.stream == ACCESS_DENIED_STREAM)
        .map(|e| e.payload)
        .collect()
}

#[tokio::test]
async fn the_refusals_of_one_request_are_one_fact_with_their_count() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let before = w.all_events().await.len();
    let refused = w
        .service
        .coalescing_denials(async {
            let mut codes = Vec::new();
            for _ in 0..1000 {
                let error = w
                    .service
                    .authorize(&viewer, Action::ManagePolicies, Target::Site(site_id))
                    .await
                    .expect_err("a viewer manages no policies");
                codes.push(error.code());
            }
            codes
        })
        .await;
    assert!(refused.iter().all(|c| *c == Some(ErrorCode::Forbidden)));
    match refusal_facts(&w, before).await.as_slice() {
        [DomainEvent::AccessDeniedRepeated {
            principal,
            action,
            refused,
            suppressed,
            site_id: site,
            ..
        }] => {
            assert_eq!(
                (principal.as_str(), action.as_str()),
                ("vic", "MANAGE_POLICIES")
            );
            assert_eq!((*refused, *suppressed, *site), (1000, 0, Some(site_id)));
        }
        other => panic!("one coalesced fact, not {other:?}"),
    }
}

#[tokio::test]
async fn a_principal_gets_its_rate_of_refusal_facts_and_the_next_window_says_what_was_left_out() {
    let w = World::new();
    let site_id = w.site().await;
    let viewer = person(Role::Viewer, "vic");
    let before = w.all_events().await.len();
    let refuse = || async {
        w.service
            .authorize(&viewer, Action::ManagePolicies, Target::Site(site_id))
            .await
            .expect_err("refused")
    };
    let rate = crate::app::DENIAL_FACTS_PER_MINUTE as usize;
    for _ in 0..rate + 7 {
        refuse().await;
    }
    assert_eq!(refusal_facts(&w, before).await.len(), rate);
    let counts = w.service.denial_counts();
    assert_eq!((counts.facts, counts.unrecorded), (rate as u64, 7));
    w.clock.advance_secs(60);
    refuse().await;
    match refusal_facts(&w, before).await.last() {
        Some(DomainEvent::AccessDeniedRepeated {
            refused,
            suppressed,
            ..
        }) => assert_eq!((*refused, *suppressed), (1, 7)),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_active_policy_cannot_be_deleted_until_another_is_activated() {
    let w = World::new();
    let site_id = w.site().await;
    let created = w
        .service
        .create_policy(
            &w.admin,
            site_id,
            "Mine",
            PolicyBody::Recording(RecordingPolicyBody {
                rules: vec![],
                fallback: RecordingAction::RecordEventsOnly,
                fallback_notify: true,
            }),
        )
        .await
        .expect("create");
    w.service
        .activate_policy(&w.admin, created.id, None)
        .await
        .expect("activate");
    let error = w
        .service
        .delete_policy(&w.admin, created.id)
        .await
        .expect_err("active");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    w.service
        .activate_policy(&w.admin, DO_NOT_RECORD, Some(site_id))
        .await
        .expect("back to default");
    w.service
        .delete_policy(&w.admin, created.id)
        .await
        .expect("delete");
    let error = w
        .service
        .update_policy(
            &w.admin,
            created.id,
            "x",
            PolicyBody::Recording(RecordingPolicyBody {
                rules: vec![],
                fallback: RecordingAction::DoNotRecord,
                fallback_notify: false,
            }),
            None,
        )
        .await
        .expect_err("deleted");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let error = w
        .service
        .delete_policy(&w.admin, DO_NOT_RECORD)
        .await
        .expect_err("system");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
}

#[tokio::test]
async fn events_of_unlogged_types_are_refused_one_by_one_and_counted() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let print = SessionEvent {
        event_id: Uuid::now_v7(),
        event_type: SessionEventType::Print,
        offset_ms: 500,
        data: SessionEventData::Print {
            printer: "HP".into(),
            document: None,
            pages: Some(2),
        },
    };
    let recorded = w
        .service
        .record_session_events(
            &agent,
            recording,
            vec![print.clone(), web("https://example.com", 2_000)],
        )
        .await
        .expect("batch");
    assert_eq!(
        (recorded.accepted, recorded.ignored, recorded.detections),
        (1, 1, 0)
    );
    assert!(w
        .spy
        .inner
        .read_event(print.event_id)
        .await
        .expect("read")
        .is_none());
    let stored = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(stored.data_points.event_count, 1);
}

#[tokio::test]
async fn the_active_detection_policy_keeps_logging_what_responses_need() {
    let w = World::new();
    let (site_id, _, _) = w.recording_site().await;
    let site = w.service.load::<Site>(site_id).await.expect("site").state;
    let detection = site.active_policy(PolicyKind::EventDetection);
    let error = w
        .service
        .update_policy(
            &w.admin,
            detection,
            "Shells",
            PolicyBody::EventDetection(DetectionPolicyBody::default()),
            None,
        )
        .await
        .expect_err("would drop APP_START");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    let logons = w
        .service
        .create_policy(
            &w.admin,
            site_id,
            "Logons",
            PolicyBody::EventDetection(DetectionPolicyBody {
                logged: BTreeSet::from([SessionEventType::Logon]),
                ..DetectionPolicyBody::default()
            }),
        )
        .await
        .expect("created");
    let error = w
        .service
        .activate_policy(&w.admin, logons.id, Some(site_id))
        .await
        .expect_err("response policy needs APP_START");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    // "Do not detect" logs every type: the response policy's types stay logged.
    w.service
        .activate_policy(&w.admin, DO_NOT_DETECT, Some(site_id))
        .await
        .expect("logs everything");
}

#[tokio::test]
async fn a_silent_server_goes_offline_and_a_heartbeat_brings_it_back() {
    let w = World::new();
    let site_id = w.site().await;
    let (server_id, agent) = w.server(site_id).await;
    assert!(w
        .service
        .check_liveness(&[server_id])
        .await
        .expect("check")
        .events
        .is_empty());
    w.clock.advance_secs(91);
    let offline = w.service.check_liveness(&[server_id]).await.expect("check");
    assert_eq!(names(&offline.events), vec!["ServerWentOffline"]);
    assert!(w
        .service
        .check_liveness(&[server_id])
        .await
        .expect("check")
        .events
        .is_empty());
    let online = w
        .service
        .heartbeat(&agent, server_id)
        .await
        .expect("heartbeat");
    assert_eq!(names(&online.events), vec!["ServerCameOnline"]);
    let quiet = w
        .service
        .heartbeat(&agent, server_id)
        .await
        .expect("heartbeat");
    assert!(
        quiet.events.is_empty(),
        "heartbeats themselves are not events"
    );
}

#[tokio::test]
async fn responses_and_comments_are_found_by_their_own_ids() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    for auditor in ["ann", "bob"] {
        w.grant(site_id, auditor, PlaybackScope::whole_site()).await;
    }
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    let recorded = w
        .service
        .record_session_events(&agent, recording, vec![app_start("cmd.exe", 5)])
        .await
        .expect("batch");
    let response_id = recorded
        .executed
        .events
        .iter()
        .find_map(|e| match e {
            DomainEvent::ResponseTriggered { response_id, .. } => Some(*response_id),
            _ => None,
        })
        .expect("a response");
    let acked = w
        .service
        .acknowledge_response(&agent, response_id, "locked")
        .await
        .expect("ack");
    assert_eq!(names(&acked.events), vec!["ResponseDelivered"]);
    assert!(w
        .service
        .acknowledge_response(&agent, response_id, "again")
        .await
        .expect("repeat")
        .events
        .is_empty());

    let ann = person(Role::Auditor, "ann");
    let comment = w
        .service
        .add_comment(&ann, recording, "look", CommentSeverity::Medium, Some(5))
        .await
        .expect("comment");
    let bob = person(Role::Auditor, "bob");
    let error = w
        .service
        .delete_comment(&bob, comment.id)
        .await
        .expect_err("not the author");
    assert_eq!(error.code(), Some(ErrorCode::Forbidden));
    w.service
        .delete_comment(&ann, comment.id)
        .await
        .expect("author deletes");
}

#[tokio::test]
async fn an_auditor_plays_only_what_its_playback_permissions_grant() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    let ann = person(Role::Auditor, "ann");
    let error = w
        .service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect_err("no permission: no recording");
    // Out of her grants, the recording is as unknown to her as an absent one.
    assert_eq!(error.code(), Some(ErrorCode::NotFound));

    let narrow = w
        .grant(
            site_id,
            "ann",
            PlaybackScope {
                recorded_users: vec!["CORP\\bob".into()],
                ..Default::default()
            },
        )
        .await;
    let error = w
        .service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect_err("narrowed to bob");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let whole = w.grant(site_id, "ann", PlaybackScope::whole_site()).await;
    w.service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect("a whole-site permission");
    // Revoking her permissions, one by one, never opens more.
    for permission in [whole, narrow] {
        let revoked = w
            .service
            .revoke_playback_permission(&w.admin, permission)
            .await
            .expect("revoke");
        for event in &revoked.events {
            w.permissions.apply(event);
        }
        let error = w
            .service
            .record_played(&ann, recording, PlaybackKind::Play)
            .await
            .expect_err("revoked");
        assert_eq!(error.code(), Some(ErrorCode::NotFound));
    }

    w.service
        .restrict_recording(&w.admin, recording, "HR")
        .await
        .expect("restrict");
    let pp = person(Role::PrivilegedPlayer, "pp");
    let played = w
        .service
        .record_played(&pp, recording, PlaybackKind::Download)
        .await
        .expect("pp plays");
    assert_eq!(names(&played.events), vec!["RecordingPlayed"]);
}

#[tokio::test]
async fn a_conflict_is_not_retried_when_the_caller_named_a_version() {
    let w = World::new();
    let site_id = w.site().await;
    let rival = DomainEvent::SiteRenamed {
        site_id,
        name: "Rival".into(),
        previous_name: "Head office".into(),
        at: w.service.now(),
    };
    *w.spy.rival.lock().unwrap() = Some((Site::stream(site_id), rival, 1));
    let error = w
        .service
        .rename_site(&w.admin, site_id, "Mine", Some(1))
        .await
        .expect_err("the version the caller saw is gone");
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    let site = w.service.load::<Site>(site_id).await.expect("load").state;
    assert_eq!(site.name, "Rival");
}

#[tokio::test]
async fn a_command_whose_consequences_exceed_one_append_is_refused_whole() {
    let w = World::new();
    let site_id = w.site().await;
    let head = w.all_events().await.len();
    let loaded = w
        .service
        .load::<crate::model::Site>(site_id)
        .await
        .expect("load");
    let too_many: Vec<DomainEvent> = (0..=crate::log::MAX_EVENTS_PER_APPEND)
        .map(|n| DomainEvent::SiteRenamed {
            site_id,
            name: format!("site {n}"),
            previous_name: format!("site {}", n.saturating_sub(1)),
            at: Timestamp::from_secs(1_767_225_600),
        })
        .collect();
    let error = w
        .service
        .append(&loaded, too_many, &w.admin.actor())
        .await
        .expect_err("over the bound");
    assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    assert_eq!(w.all_events().await.len(), head, "nothing was written");
}

/// The answer to a refused call, with the recording id written as `<id>`.
fn answer(error: &AppError, id: Uuid) -> (Option<ErrorCode>, String) {
    (
        error.code(),
        error.to_string().replace(&id.to_string(), "<id>"),
    )
}

#[tokio::test]
async fn a_recording_the_caller_may_not_see_answers_like_an_absent_or_deleted_one() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let (_, other_agent) = w.server(site_id).await;
    let hidden = w.start(server_id, &agent, "hidden").await.recording_id;
    let deleted = w.start(server_id, &agent, "deleted").await.recording_id;
    for id in [hidden, deleted] {
        w.service
            .end_recording(&agent, id, None)
            .await
            .expect("end");
    }
    w.service
        .delete_recording(&w.admin, deleted)
        .await
        .expect("delete");
    let absent = Uuid::now_v7();
    let viewer = person(Role::Viewer, "vic");
    let mut scoped_auditor = person(Role::Auditor, "sam");
    scoped_auditor.site_ids = BTreeSet::from([Uuid::now_v7()]);

    let callers: [(&str, &Principal); 3] = [
        ("viewer", &viewer),
        ("other site's auditor", &scoped_auditor),
        ("other server's agent", &other_agent),
    ];
    for (who, by) in callers {
        let mut answers = Vec::new();
        for id in [hidden, deleted, absent] {
            // A fresh minute: each target's refusals fit the principal's
            // rate of refusal facts, so every one of them is written.
            w.clock.advance_secs(61);
            let head = w.all_events().await.len();
            let outcomes = [
                w.service
                    .add_comment(by, id, "x", CommentSeverity::Normal, None)
                    .await
                    .map(|c| c.executed),
                w.service.restrict_recording(by, id, "x").await,
                w.service.remove_recording_restriction(by, id, "x").await,
                w.service.record_played(by, id, PlaybackKind::Play).await,
                w.service
                    .record_session_events(by, id, vec![app_start("a", 1)])
                    .await
                    .map(|r| r.executed),
                w.service.end_recording(by, id, None).await,
                w.service.archive_recording(by, id).await,
                w.service
                    .content_target(by, id)
                    .await
                    .map(|_| Executed::default()),
            ];
            let refused: Vec<_> = outcomes
                .iter()
                .map(|o| answer(o.as_ref().expect_err(who), id))
                .collect();
            for (code, message) in &refused {
                assert_eq!(*code, Some(ErrorCode::NotFound), "{who}: {message}");
                assert_eq!(message, "recording <id> not found", "{who}");
            }
            // Every attempt is recorded, absent ids too, and nothing else.
            let written = w.all_events().await;
            assert!(
                written[head..]
                    .iter()
                    .all(|e| e.payload.name() == "AccessDenied"),
                "{who}"
            );
            assert_eq!(written.len() - head, outcomes.len(), "{who}");
            answers.push(refused);
        }
        assert!(
            answers.windows(2).all(|w| w[0] == w[1]),
            "{who}: {answers:?}"
        );
    }

    // Who may see it learns that it was deleted; an absent id is absent.
    let error = w
        .service
        .add_comment(&w.admin, deleted, "x", CommentSeverity::Normal, None)
        .await
        .expect_err("deleted");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    assert!(error.to_string().contains("deleted"), "{error}");
    let error = w
        .service
        .record_played(&w.admin, deleted, PlaybackKind::Play)
        .await
        .expect_err("deleted");
    assert!(error.to_string().contains("was deleted"), "{error}");
    let head = w.all_events().await.len();
    let error = w
        .service
        .add_comment(&w.admin, absent, "x", CommentSeverity::Normal, None)
        .await
        .expect_err("absent");
    assert_eq!(answer(&error, absent).1, "recording <id> not found");
    assert_eq!(
        w.all_events().await.len(),
        head,
        "an admin's miss is no refusal"
    );
}

#[tokio::test]
async fn another_servers_agent_cannot_tell_a_server_from_an_absent_one() {
    let w = World::new();
    let (site_id, server_id, _) = w.recording_site().await;
    let (_, other_agent) = w.server(site_id).await;
    let absent = Uuid::now_v7();
    let start = |server_id| StartRecordingInput {
        server_id,
        session_id: "s".into(),
        session: session(),
        started_at: None,
    };
    let mut answers = Vec::new();
    for id in [server_id, absent] {
        let outcomes = [
            w.service.heartbeat(&other_agent, id).await,
            w.service
                .start_recording(&other_agent, start(id))
                .await
                .map(|s| s.executed),
            w.service
                .report_install_progress(
                    &other_agent,
                    id,
                    InstallStep::Downloading,
                    InstallStatus::InProgress,
                    None,
                )
                .await,
        ];
        answers.push(
            outcomes
                .iter()
                .map(|o| answer(o.as_ref().expect_err("refused"), id))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0][0],
        (
            Some(ErrorCode::NotFound),
            "server <id> not found".to_string()
        )
    );
}

#[tokio::test]
async fn recording_ids_are_random_and_a_start_stays_idempotent_through_the_session_index() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    // Concurrent retries of one start: one recording, started once.
    let starts = (0..8).map(|_| w.start(server_id, &agent, "s1"));
    let started = futures_util::future::join_all(starts).await;
    let first = started[0].recording_id;
    assert!(started
        .iter()
        .all(|s| s.recording_id == first && s.part == 1));
    assert_eq!(started.iter().filter(|s| !s.repeated).count(), 1);
    assert_ne!(first, legacy_recording_id(server_id, "s1", 1));
    assert_eq!(first.get_version_num(), 7, "a random (v7) id");
    let events = w.all_events().await;
    let count = |name: &str| events.iter().filter(|e| e.payload.name() == name).count();
    assert_eq!(
        (count("RecordingStarted"), count("RecordingPartAssigned")),
        (1, 1)
    );
    let index = w
        .service
        .load::<SessionParts>(session_key(server_id, "s1"))
        .await
        .expect("index");
    assert_eq!(index.state.parts, vec![first]);
    // The same session on a fresh service (a restart) is still the same.
    let again = Service::new(
        w.spy.clone(),
        Arc::new(w.clock.clone()),
        w.permissions.clone(),
    );
    let repeated = again
        .start_recording(
            &agent,
            StartRecordingInput {
                server_id,
                session_id: "s1".into(),
                session: session(),
                started_at: None,
            },
        )
        .await
        .expect("start");
    assert_eq!((repeated.recording_id, repeated.repeated), (first, true));
    // Another session, the same server: another random id.
    let other = w.start(server_id, &agent, "s2").await.recording_id;
    assert_ne!(other, first);
}

#[tokio::test]
async fn a_part_assigned_but_never_started_is_started_by_the_next_start() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    // As if the service stopped between the two appends.
    let orphan = Uuid::now_v7();
    let assigned = w
        .spy
        .append(
            &SessionParts::stream(session_key(server_id, "s1")),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                agent.actor(),
                DomainEvent::RecordingPartAssigned {
                    site_id,
                    server_id,
                    session_id: "s1".into(),
                    part: 1,
                    recording_id: orphan,
                    at: w.service.now(),
                },
            )],
        )
        .await
        .expect("assign");
    assert!(!assigned.deduplicated);
    let started = w.start(server_id, &agent, "s1").await;
    assert_eq!((started.recording_id, started.part), (orphan, 1));
    assert!(!started.repeated);
    let state = w
        .service
        .load::<Recording>(orphan)
        .await
        .expect("load")
        .state;
    assert_eq!(state.lifecycle, Lifecycle::Live);
}

#[tokio::test]
async fn sessions_recorded_before_the_index_keep_their_ids_and_roll_over() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    // A part stored at the old derived id, with no index.
    let legacy = legacy_recording_id(server_id, "old", 1);
    let mut started = w.start(server_id, &agent, "template").await.executed.events[0].clone();
    if let DomainEvent::RecordingStarted {
        recording_id,
        session_id,
        ..
    } = &mut started
    {
        *recording_id = legacy;
        *session_id = "old".into();
    }
    let stored = w
        .spy
        .append(
            &Recording::stream(legacy),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(agent.actor(), started)],
        )
        .await
        .expect("legacy start");
    assert!(!stored.deduplicated);
    let repeated = w.start(server_id, &agent, "old").await;
    assert_eq!((repeated.recording_id, repeated.repeated), (legacy, true));
    w.service
        .end_recording(&agent, legacy, None)
        .await
        .expect("end");
    let next = w.start(server_id, &agent, "old").await;
    assert_eq!(next.part, 2);
    assert_ne!(next.recording_id, legacy_recording_id(server_id, "old", 2));
    let index = w
        .service
        .load::<SessionParts>(session_key(server_id, "old"))
        .await
        .expect("index");
    assert_eq!(index.state.parts, vec![legacy, next.recording_id]);
    // The whole session moves together.
    w.service
        .end_recording(&agent, next.recording_id, None)
        .await
        .expect("end");
    let archived = w
        .service
        .archive_recording(&w.admin, next.recording_id)
        .await
        .expect("archive");
    assert_eq!(archived.events.len(), 2);
}

#[tokio::test]
async fn parallel_plays_by_one_principal_are_one_fact_per_minute() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    w.grant(site_id, "ann", PlaybackScope::whole_site()).await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    let ann = person(Role::Auditor, "ann");
    let plays = (0..32).map(|_| w.service.record_played(&ann, recording, PlaybackKind::Play));
    let outcomes = futures_util::future::join_all(plays).await;
    let positions: BTreeSet<u64> = outcomes
        .iter()
        .map(|o| o.as_ref().expect("no conflict").last_position)
        .collect();
    assert_eq!(positions.len(), 1, "one fact, named by every answer");
    let played = || async {
        w.all_events()
            .await
            .iter()
            .filter(|e| e.payload.name() == "RecordingPlayed")
            .count()
    };
    assert_eq!(played().await, 1);
    // Another principal, or another minute, is another fact.
    w.service
        .record_played(&w.admin, recording, PlaybackKind::Play)
        .await
        .expect("admin");
    w.clock.advance_secs(PLAYBACK_WINDOW_SECS);
    w.service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect("later");
    assert_eq!(played().await, 3);
    let state = w
        .service
        .load::<Recording>(recording)
        .await
        .expect("load")
        .state;
    assert_eq!(state.plays, 3);
}

#[tokio::test]
async fn a_malformed_start_assigns_no_part() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let head = w.all_events().await.len();
    let mut bad = session();
    bad.user = " ".into();
    for (session_id, attributes) in [("s1", bad), ("  ", session())] {
        let error = w
            .service
            .start_recording(
                &agent,
                StartRecordingInput {
                    server_id,
                    session_id: session_id.into(),
                    session: attributes,
                    started_at: None,
                },
            )
            .await
            .expect_err("malformed");
        assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    }
    assert_eq!(w.all_events().await.len(), head, "nothing written");
}

// ---- legal holds ------------------------------------------------------------

/// An ended recording of `session` (user CORP\alice).
async fn ended(w: &World, server_id: Uuid, agent: &Principal, session: &str) -> Uuid {
    let id = w.start(server_id, agent, session).await.recording_id;
    w.service.end_recording(agent, id, None).await.expect("end");
    id
}

fn deleted_ids(events: &[Envelope<DomainEvent>]) -> Vec<Uuid> {
    events
        .iter()
        .filter_map(|e| match e.payload {
            DomainEvent::RecordingDeleted { recording_id, .. } => Some(recording_id),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_held_recording_cannot_be_deleted_until_the_hold_is_released() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let held = ended(&w, server_id, &agent, "held").await;
    let free = ended(&w, server_id, &agent, "free").await;
    let hold = w
        .service
        .place_legal_hold(
            &w.admin,
            None,
            HoldScope::Recordings {
                recording_ids: vec![held],
            },
            "Case 2026-17",
        )
        .await
        .expect("place");
    assert_eq!(names(&hold.executed.events), ["LegalHoldPlaced"]);

    let refused = w
        .service
        .delete_recording(&w.admin, held)
        .await
        .expect_err("held");
    assert_eq!(refused.code(), Some(ErrorCode::Conflict));
    assert!(
        refused.to_string().contains(&hold.id.to_string()),
        "the refusal names the hold: {refused}"
    );
    // The other recordings are not held.
    w.service
        .delete_recording(&w.admin, free)
        .await
        .expect("delete");
    assert_eq!(deleted_ids(&w.all_events().await), [free]);

    let released = w
        .service
        .release_legal_hold(&w.admin, hold.id, Some("case closed"))
        .await
        .expect("release");
    assert_eq!(names(&released.events), ["LegalHoldReleased"]);
    w.service
        .delete_recording(&w.admin, held)
        .await
        .expect("delete after release");
    assert_eq!(deleted_ids(&w.all_events().await), [free, held]);
}

#[tokio::test]
async fn a_user_or_site_hold_covers_recordings_started_after_it() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let users = w
        .service
        .place_legal_hold(
            &w.admin,
            Some(site_id),
            HoldScope::Users {
                users: vec!["alice".into()],
            },
            "Case 18",
        )
        .await
        .expect("place");
    // Started after the hold, by CORP\alice: covered.
    let later = ended(&w, server_id, &agent, "later").await;
    let refused = w
        .service
        .delete_recording(&w.admin, later)
        .await
        .expect_err("held by user");
    assert!(matches!(
        refused,
        AppError::Hold(HoldError::Held { recording_id, ref holds }) if recording_id == later && holds == &[users.id]
    ));
    w.service
        .release_legal_hold(&w.admin, users.id, None)
        .await
        .expect("release");
    let site = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "Audit 2026")
        .await
        .expect("place");
    let after_site_hold = ended(&w, server_id, &agent, "after").await;
    for id in [later, after_site_hold] {
        let refused = w
            .service
            .delete_recording(&w.admin, id)
            .await
            .expect_err("held by site");
        assert!(refused.to_string().contains(&site.id.to_string()));
    }
    // Archiving is no deletion: a held recording may still be archived.
    w.service
        .archive_recording(&w.admin, later)
        .await
        .expect("archive");
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test]
async fn a_rolled_over_session_with_one_held_part_is_not_deleted() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let first = ended(&w, server_id, &agent, "rolled").await;
    let second = ended(&w, server_id, &agent, "rolled").await;
    assert_ne!(first, second, "a second part");
    w.service
        .place_legal_hold(
            &w.admin,
            None,
            HoldScope::Recordings {
                recording_ids: vec![second],
            },
            "Case 19",
        )
        .await
        .expect("place");
    let refused = w
        .service
        .delete_recording(&w.admin, first)
        .await
        .expect_err("its session is held");
    assert!(
        refused.to_string().contains(&second.to_string()),
        "{refused}"
    );
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test]
async fn bad_hold_requests_are_refused_and_write_nothing() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "r").await;
    let gone = ended(&w, server_id, &agent, "gone").await;
    w.service
        .delete_recording(&w.admin, gone)
        .await
        .expect("delete");
    let other_site = w.site().await;
    let (other_server, other_agent) = w.server(other_site).await;
    w.service
        .activate_policy(
            &w.admin,
            RECORD_EVERYONE_WITH_NOTIFICATION,
            Some(other_site),
        )
        .await
        .expect("record everyone");
    let elsewhere = ended(&w, other_server, &other_agent, "e").await;
    let before = w.all_events().await.len();
    let recordings = |ids: Vec<Uuid>| HoldScope::Recordings { recording_ids: ids };
    let cases: Vec<(&str, Option<Uuid>, HoldScope, &str, ErrorCode)> = vec![
        (
            "blank reason",
            Some(site_id),
            HoldScope::Site,
            "  ",
            ErrorCode::Validation,
        ),
        (
            "reason too long",
            Some(site_id),
            HoldScope::Site,
            &*"x".repeat(MAX_HOLD_REASON_CHARS + 1).leak(),
            ErrorCode::Validation,
        ),
        (
            "no recordings",
            None,
            recordings(vec![]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "too many recordings",
            None,
            recordings(
                (0..=MAX_HOLD_RECORDINGS as u128)
                    .map(Uuid::from_u128)
                    .collect(),
            ),
            "r",
            ErrorCode::Validation,
        ),
        (
            "absent recording",
            None,
            recordings(vec![Uuid::now_v7()]),
            "r",
            ErrorCode::NotFound,
        ),
        (
            "deleted recording",
            None,
            recordings(vec![gone]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "recordings of two sites",
            None,
            recordings(vec![recording, elsewhere]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "another site named",
            Some(other_site),
            recordings(vec![recording]),
            "r",
            ErrorCode::Validation,
        ),
        (
            "site scope without site",
            None,
            HoldScope::Site,
            "r",
            ErrorCode::Validation,
        ),
        (
            "absent site",
            Some(Uuid::now_v7()),
            HoldScope::Site,
            "r",
            ErrorCode::NotFound,
        ),
        (
            "no users",
            Some(site_id),
            HoldScope::Users { users: vec![] },
            "r",
            ErrorCode::Validation,
        ),
        (
            "blank user",
            Some(site_id),
            HoldScope::Users {
                users: vec![" ".into()],
            },
            "r",
            ErrorCode::Validation,
        ),
    ];
    for (case, site, scope, reason, code) in cases {
        let error = w
            .service
            .place_legal_hold(&w.admin, site, scope, reason)
            .await
            .expect_err(case);
        assert_eq!(error.code(), Some(code), "{case}: {error}");
    }
    let missing = w
        .service
        .release_legal_hold(&w.admin, Uuid::now_v7(), None)
        .await
        .expect_err("missing hold");
    assert_eq!(missing.code(), Some(ErrorCode::NotFound), "{missing}");
    assert_eq!(w.all_events().await.len(), before, "nothing was written");

    let hold = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "r")
        .await
        .expect("place");
    w.service
        .release_legal_hold(&w.admin, hold.id, None)
        .await
        .expect("release");
    let twice = w
        .service
        .release_legal_hold(&w.admin, hold.id, None)
        .await
        .expect_err("released already");
    assert_eq!(twice.code(), Some(ErrorCode::Validation), "{twice}");
    assert!(twice.to_string().contains("already released"), "{twice}");
}

#[tokio::test]
async fn only_an_admin_of_the_site_places_and_releases_holds() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "r").await;
    let hold = w
        .service
        .place_legal_hold(&w.admin, Some(site_id), HoldScope::Site, "r")
        .await
        .expect("place");
    let mut other_admin = person(Role::Admin, "other");
    other_admin.site_ids = BTreeSet::from([Uuid::now_v7()]);
    for by in [
        person(Role::PrivilegedPlayer, "pp"),
        person(Role::Auditor, "aud"),
        person(Role::Viewer, "vic"),
        other_admin.clone(),
    ] {
        let placed = w
            .service
            .place_legal_hold(&by, Some(site_id), HoldScope::Site, "r")
            .await
            .expect_err("not an admin of the site");
        assert_eq!(placed.code(), Some(ErrorCode::Forbidden), "{}", by.name);
        let released = w
            .service
            .release_legal_hold(&by, hold.id, None)
            .await
            .expect_err("not an admin of the site");
        // Who may not read the site's holds learns nothing of this one.
        let expected = if by.role == Role::Auditor {
            ErrorCode::Forbidden
        } else {
            ErrorCode::NotFound
        };
        assert_eq!(released.code(), Some(expected), "{}", by.name);
    }
    let by_recording = w
        .service
        .place_legal_hold(
            &person(Role::PrivilegedPlayer, "pp"),
            None,
            HoldScope::Recordings {
                recording_ids: vec![recording],
            },
            "r",
        )
        .await
        .expect_err("not an admin");
    assert_eq!(by_recording.code(), Some(ErrorCode::Forbidden));
    let denials = w
        .all_events()
        .await
        .iter()
        .filter(|e| matches!(e.payload, DomainEvent::AccessDenied { .. }))
        .count();
    assert_eq!(denials, 9, "every refusal is a fact");
}

#[tokio::test]
async fn a_hold_placed_while_a_deletion_commits_stops_the_deletion() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = ended(&w, server_id, &agent, "raced").await;
    // Between the deletion's look at the holds and its append, a hold on
    // the whole site is placed.
    let rival_hold = Uuid::now_v7();
    *w.spy.rival.lock().unwrap() = Some((
        LEGAL_HOLDS_STREAM.to_string(),
        DomainEvent::LegalHoldPlaced {
            hold_id: rival_hold,
            site_id,
            scope: HoldScope::Site,
            reason: "raced".into(),
            by: "root".into(),
            at: w.service.now(),
        },
        1,
    ));
    let refused = w
        .service
        .delete_recording(&w.admin, recording)
        .await
        .expect_err("the hold came first");
    assert!(
        matches!(&refused, AppError::Hold(HoldError::Held { holds, .. }) if holds == &[rival_hold]),
        "{refused}"
    );
    assert!(deleted_ids(&w.all_events().await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_holds_and_deletions_never_delete_a_held_recording() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let mut recordings = Vec::new();
    for n in 0..12 {
        recordings.push(ended(&w, server_id, &agent, &format!("s{n}")).await);
    }
    // Each recording gets a hold and a deletion at the same time; a few
    // site holds race them too.
    let service = &w.service;
    let admin = &w.admin;
    let holds = recordings.iter().map(|&id| async move {
        let _ = service
            .place_legal_hold(
                admin,
                None,
                HoldScope::Recordings {
                    recording_ids: vec![id],
                },
                "race",
            )
            .await;
    });
    let deletions = recordings.iter().map(|&id| async move {
        let _ = service.delete_recording(admin, id).await;
    });
    let site_holds = (0..3).map(|_| async move {
        let _ = service
            .place_legal_hold(admin, Some(site_id), HoldScope::Site, "race")
            .await;
    });
    futures_util::future::join3(
        futures_util::future::join_all(holds),
        futures_util::future::join_all(deletions),
        futures_util::future::join_all(site_holds),
    )
    .await;
    // In log order: no recording is deleted after a hold covering it.
    let mut held: BTreeSet<Uuid> = BTreeSet::new();
    let mut site_held = false;
    for envelope in w.all_events().await {
        match envelope.payload {
            DomainEvent::LegalHoldPlaced { scope, .. } => match scope {
                HoldScope::Recordings { recording_ids } => held.extend(recording_ids),
                HoldScope::Site => site_held = true,
                HoldScope::Users { .. } => unreachable!(),
            },
            DomainEvent::RecordingDeleted { recording_id, .. } => {
                assert!(
                    !site_held && !held.contains(&recording_id),
                    "recording {recording_id} was deleted while held"
                );
            }
            _ => {}
        }
    }
}

// ---- live playback ------------------------------------------------------------

#[tokio::test]
async fn watching_live_is_a_fact_and_obeys_the_servers_setting() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let live = w.start(server_id, &agent, "live").await.recording_id;
    let auditor = person(Role::Auditor, "aud");
    w.grant(site_id, "aud", PlaybackScope::whole_site()).await;
    let first = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect("live");
    let again = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect("live again");
    assert_eq!(names(&first.events), ["RecordingPlayed"]);
    assert!(
        again.deduplicated,
        "one fact per player, recording, kind and minute"
    );
    assert_eq!(again.last_position, first.last_position);
    assert!(matches!(
        first.events[0],
        DomainEvent::RecordingPlayed {
            kind: PlaybackKind::Live,
            ..
        }
    ));

    w.service
        .update_server_settings(
            &w.admin,
            server_id,
            SettingsPatch {
                live_playback_enabled: Some(false),
                ..SettingsPatch::default()
            },
            None,
        )
        .await
        .expect("disable live playback");
    w.clock.advance_secs(61);
    let before = w.all_events().await.len();
    let refused = w
        .service
        .record_played(&auditor, live, PlaybackKind::Live)
        .await
        .expect_err("live playback is disabled");
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
    assert!(
        refused.to_string().contains("livePlaybackEnabled"),
        "{refused}"
    );
    let written = w.all_events().await;
    assert_eq!(written.len(), before + 1, "one refusal fact, no playback");
    assert!(matches!(
        written[before].payload,
        DomainEvent::AccessDenied { ref action, .. } if action == "PLAY_RECORDING"
    ));
    // Playing what is stored is not watching live.
    w.service
        .record_played(&auditor, live, PlaybackKind::Play)
        .await
        .expect("play");
}

#[tokio::test]
async fn rotating_a_token_is_one_append_and_its_successor_is_managed_by_its_own_id() {
    let w = World::new();
    let issued = w
        .service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            BTreeSet::new(),
            vec![],
            None,
        )
        .await
        .expect("issue");
    let head = w.spy.head().position;
    let rotated = w
        .service
        .rotate_token(&w.admin, issued.token_id, None)
        .await
        .expect("rotate");
    // One event at one position: the revocation and the successor.
    assert_eq!(rotated.executed.positions, vec![head + 1]);
    assert_eq!(w.spy.head().position, head + 1);
    assert_eq!(rotated.previous_token_id, issued.token_id);
    assert_eq!(rotated.previous_secret_sha256, hash_secret(&issued.secret));
    let last = w.all_events().await.pop().expect("an event");
    assert_eq!(
        last.event_id, rotated.token_id,
        "stored under the successor's id"
    );
    assert_eq!(last.stream, Token::stream(issued.token_id));
    match &last.payload {
        DomainEvent::TokenRotated {
            token_id,
            new_token_id,
            secret_sha256,
            ..
        } => {
            assert_eq!(*token_id, issued.token_id);
            assert_eq!(*new_token_id, rotated.token_id);
            assert_eq!(*secret_sha256, hash_secret(&rotated.secret));
        }
        other => panic!("not a rotation: {other:?}"),
    }
    // The old token is gone for good; the successor is found by its id.
    let again = w
        .service
        .rotate_token(&w.admin, issued.token_id, None)
        .await
        .expect_err("rotated already");
    assert_eq!(again.code(), Some(ErrorCode::Validation));
    let second = w
        .service
        .rotate_token(&w.admin, rotated.token_id, None)
        .await
        .expect("the successor rotates");
    w.service
        .revoke_token(&w.admin, second.token_id)
        .await
        .expect("the successor's successor is revoked");
    let unknown = w
        .service
        .revoke_token(&w.admin, Uuid::now_v7())
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Some(ErrorCode::NotFound));
    // Only ADMINs not scoped to sites rotate.
    let refused = w
        .service
        .rotate_token(&person(Role::Auditor, "aud"), second.token_id, None)
        .await
        .expect_err("auditor");
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));
}

#[tokio::test]
async fn an_expiry_in_the_past_is_refused_and_writes_nothing() {
    let w = World::new();
    let head = w.spy.head().position;
    let error = w
        .service
        .issue_token(
            &w.admin,
            "late",
            Role::Viewer,
            BTreeSet::new(),
            vec![],
            Some(w.service.now().plus_secs(-1)),
        )
        .await
        .expect_err("in the past");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
    assert_eq!(w.spy.head().position, head);
}

#[tokio::test]
async fn rotating_an_agent_token_revokes_the_old_credential_in_the_same_event() {
    let w = World::new();
    let site_id = w.site().await;
    let (server_id, _) = w.server(site_id).await;
    let head = w.spy.head().position;
    let rotated = w
        .service
        .rotate_agent_token(&w.admin, server_id)
        .await
        .expect("rotate");
    assert_eq!(rotated.executed.positions, vec![head + 1]);
    assert_eq!(rotated.previous_token_id, server_id);
    assert_eq!(rotated.server_id, Some(server_id));
    let server = w.service.load::<Server>(server_id).await.expect("server");
    assert_eq!(server.state.agent_token_id, Some(rotated.token_id));
    assert_eq!(server.state.credential_sha256, hash_secret(&rotated.secret));
    // rotateToken finds the agent credential by its id, and refuses the
    // one rotated away.
    let stale = w
        .service
        .rotate_token(&w.admin, server_id, None)
        .await
        .expect_err("the first credential was rotated");
    assert_eq!(stale.code(), Some(ErrorCode::Validation));
    let next = w
        .service
        .rotate_token(&w.admin, rotated.token_id, None)
        .await
        .expect("rotateToken on the current agent credential");
    assert_eq!(next.previous_token_id, rotated.token_id);
    assert_eq!(next.server_id, Some(server_id));
    let revoke = w
        .service
        .revoke_token(&w.admin, next.token_id)
        .await
        .expect_err("agent credentials are not revoked by hand");
    assert_eq!(revoke.code(), Some(ErrorCode::Validation));
    // A server nobody may see (another site's, for a scoped admin) is NOT_FOUND.
    let mut scoped = person(Role::Admin, "scoped");
    scoped.site_ids = BTreeSet::from([Uuid::now_v7()]);
    let hidden = w
        .service
        .rotate_agent_token(&scoped, server_id)
        .await
        .expect_err("scoped elsewhere");
    assert_eq!(hidden.code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn an_auditor_lifts_only_a_restriction_its_own_permission_covers() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    // A live recording is restricted at once, not after its end.
    w.service
        .restrict_recording(&w.admin, recording, "HR case")
        .await
        .expect("a live recording is restricted");
    let eve = person(Role::Auditor, "eve");
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("no permission of hers covers it");
    // As unknown to her as an absent recording.
    assert_eq!(
        answer(&error, recording),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    w.grant(
        site_id,
        "eve",
        PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        },
    )
    .await;
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("her permission covers bob only");
    assert_eq!(error.code(), Some(ErrorCode::NotFound));
    let restricted = w.service.load::<Recording>(recording).await.expect("load");
    assert!(restricted.state.restriction.is_some(), "still restricted");

    w.grant(site_id, "eve", PlaybackScope::whole_site()).await;
    w.service
        .remove_recording_restriction(&eve, recording, "case closed")
        .await
        .expect("covered by her whole-site permission");
    let pp = person(Role::PrivilegedPlayer, "pp");
    w.service
        .restrict_recording(&pp, recording, "again")
        .await
        .expect("restrict");
    w.service
        .remove_recording_restriction(&pp, recording, "pp may")
        .await
        .expect("a privileged player always may");
}

/// What an auditor saw under the rule before explicit permissions: with no
/// permission on the site, every unrestricted recording of it.
fn old_rule_sees(p: &Principal, facts: &RecordingFacts, grants: &[PlaybackScope]) -> bool {
    if grants.is_empty() {
        can_view_recording(p, facts, &[PlaybackScope::whole_site()])
    } else {
        can_view_recording(p, facts, grants)
    }
}

#[tokio::test]
async fn the_migration_to_explicit_permissions_keeps_what_every_auditor_saw() {
    let w = World::new();
    let (site_a, server_a, agent_a) = w.recording_site().await;
    let (site_b, server_b, agent_b) = w.recording_site().await;
    let mut recordings = Vec::new();
    for (server, agent) in [(server_a, &agent_a), (server_b, &agent_b)] {
        for session_id in ["s1", "s2"] {
            recordings.push(w.start(server, agent, session_id).await.recording_id);
        }
    }
    // The second recording of site A is someone else's session.
    let bob = w
        .service
        .start_recording(
            &agent_a,
            StartRecordingInput {
                server_id: server_a,
                session_id: "bob".into(),
                session: SessionAttributes {
                    user: "CORP\\bob".into(),
                    ..session()
                },
                started_at: None,
            },
        )
        .await
        .expect("bob")
        .recording_id;
    recordings.push(bob);
    w.service
        .restrict_recording(&w.admin, recordings[1], "HR")
        .await
        .expect("restrict");
    // Tokens as the old rule knew them.
    let issue = |name: &'static str, sites: Vec<Uuid>, groups: Vec<String>| {
        let service = &w.service;
        let admin = &w.admin;
        async move {
            let issued = service
                .issue_token(
                    admin,
                    name,
                    Role::Auditor,
                    sites.into_iter().collect(),
                    groups,
                    None,
                )
                .await
                .expect("issue");
            Principal {
                token_id: issued.token_id,
                name: name.into(),
                role: Role::Auditor,
                site_ids: BTreeSet::new(),
                groups: Vec::new(),
                server_id: None,
            }
        }
    };
    let mut wide = issue("wide", vec![], vec![]).await;
    let mut scoped = issue("scoped", vec![site_b], vec![]).await;
    scoped.site_ids = [site_b].into();
    let mut narrow = issue("narrow", vec![site_a], vec!["CORP\\Audit".into()]).await;
    narrow.site_ids = [site_a].into();
    narrow.groups = vec!["CORP\\Audit".into()];
    // A namesake of `wide` narrowed through a group: must stay narrow.
    let mut twin = issue("wide", vec![], vec!["CORP\\Audit".into()]).await;
    twin.groups = vec!["CORP\\Audit".into()];
    let gone = issue("gone", vec![], vec![]).await;
    w.service
        .revoke_token(&w.admin, gone.token_id)
        .await
        .expect("revoke");
    w.grant(
        site_a,
        "CORP\\Audit",
        PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        },
    )
    .await;
    wide.site_ids = BTreeSet::new();
    let auditors = [&wide, &scoped, &narrow, &twin];

    let facts = |id: Uuid| {
        let service = &w.service;
        async move {
            service
                .load::<Recording>(id)
                .await
                .expect("load")
                .state
                .facts()
                .expect("facts")
        }
    };
    let mut before = Vec::new();
    for p in auditors {
        for &r in &recordings {
            let f = facts(r).await;
            let grants = w.permissions.grants(p, f.site_id).await.expect("grants");
            before.push(old_rule_sees(p, &f, &grants));
        }
    }
    assert!(before.iter().any(|s| *s) && before.iter().any(|s| !*s));

    let head = w.all_events().await.len();
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("a first run migrates");
    // wide: sites A and B; scoped: B; narrow and twin hold a grant on A
    // (through their group) and none on B: twin gets B.
    assert_eq!(migrated.granted, 4);
    let events = w.all_events().await;
    for e in &events[head..] {
        w.permissions.apply(&e.payload);
        assert_eq!(e.actor, Actor::system(MIGRATION_ACTOR));
    }
    let marker = events.last().expect("marker");
    assert_eq!(marker.stream, EXPLICIT_GRANTS_STREAM);
    assert!(matches!(
        &marker.payload,
        DomainEvent::PlaybackPermissionsMigrated { permission_ids, .. } if permission_ids.len() == 4
    ));

    let mut after = Vec::new();
    for p in auditors {
        for &r in &recordings {
            let f = facts(r).await;
            let grants = w.permissions.grants(p, f.site_id).await.expect("grants");
            after.push(can_view_recording(p, &f, &grants));
        }
    }
    assert_eq!(before, after, "nobody gains or loses a recording");

    // Once: a restart finds the marker and writes nothing.
    let len = w.all_events().await.len();
    assert_eq!(
        w.service.migrate_to_explicit_grants().await.expect("again"),
        None
    );
    assert_eq!(w.all_events().await.len(), len);
}

#[tokio::test]
async fn an_interrupted_migration_continues_without_granting_twice() {
    let w = World::new();
    let site_id = w.site().await;
    let issued = w
        .service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            BTreeSet::new(),
            vec![],
            None,
        )
        .await
        .expect("issue");
    // The grant was written, then the start stopped before the marker.
    let permission_id = whole_site_grant_id(issued.token_id, site_id);
    let granted = w
        .service
        .execute::<PlaybackPermission>(
            permission_id,
            PermissionCommand::Grant {
                permission_id,
                site_id,
                principal: token_principal(issued.token_id),
                scope: PlaybackScope::whole_site(),
                now: w.service.now(),
            },
            &Actor::system(MIGRATION_ACTOR),
            Some(0),
        )
        .await
        .expect("grant");
    assert_eq!(granted.events.len(), 1);
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("the marker is still missing");
    assert_eq!(migrated.granted, 0, "the grant is there already");
    let grants = w
        .all_events()
        .await
        .iter()
        .filter(|e| e.payload.name() == "PlaybackPermissionGranted")
        .count();
    assert_eq!(grants, 1);
}

#[tokio::test]
async fn a_new_log_is_marked_migrated_so_later_auditors_get_nothing_implicitly() {
    let w = World::new();
    let migrated = w
        .service
        .migrate_to_explicit_grants()
        .await
        .expect("migrate")
        .expect("marker");
    assert_eq!(migrated.granted, 0);
    let site_id = w.site().await;
    w.service
        .issue_token(
            &w.admin,
            "ann",
            Role::Auditor,
            [site_id].into(),
            vec![],
            None,
        )
        .await
        .expect("issue");
    assert_eq!(
        w.service.migrate_to_explicit_grants().await.expect("again"),
        None,
        "an auditor issued under the new rule is never taken for an old one"
    );
}

#[tokio::test]
async fn an_auditor_refused_a_restriction_it_cannot_see_learns_nothing_of_it() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    w.service
        .restrict_recording(&w.admin, recording, "HR case")
        .await
        .expect("restrict");
    w.service
        .archive_recording(&w.admin, recording)
        .await
        .expect("archive");
    w.grant(site_id, "eve", PlaybackScope::whole_site()).await;
    let eve = person(Role::Auditor, "eve");
    // Her permission covers it, but archived she could not play it anyway;
    // restricted, she cannot see it: the answer of an absent recording.
    let error = w
        .service
        .remove_recording_restriction(&eve, recording, "let me see")
        .await
        .expect_err("archived: not hers to lift");
    assert_eq!(
        answer(&error, recording),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    let absent = Uuid::now_v7();
    let error = w
        .service
        .remove_recording_restriction(&eve, absent, "let me see")
        .await
        .expect_err("absent");
    assert_eq!(
        answer(&error, absent),
        (Some(ErrorCode::NotFound), "recording <id> not found".into())
    );
    let pp = person(Role::PrivilegedPlayer, "pp");
    w.service
        .remove_recording_restriction(&pp, recording, "case closed")
        .await
        .expect("a privileged player may");
}

#[tokio::test]
async fn session_events_and_detections_are_stored_sealed_under_the_recording_key() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "sealed").await.recording_id;
    assert!(
        w.service.keys().has_key(recording),
        "the key exists from the start"
    );
    let marker = "https://marker-7d1f.example.com/secret";
    let batch = vec![app_start("cmd.exe", 1_000), web(marker, 2_000)];
    let recorded = w
        .service
        .record_session_events(&agent, recording, batch.clone())
        .await
        .expect("batch");
    assert!(recorded.detections > 0);
    let stored: Vec<DomainEvent> = w
        .spy
        .read_stream(&Recording::stream(recording), 1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.payload)
        .collect();
    let names: Vec<&str> = stored.iter().map(DomainEvent::name).collect();
    assert!(names.contains(&"SessionEventSealed"), "{names:?}");
    assert!(names.contains(&"EventDetectedSealed"), "{names:?}");
    assert!(!names.contains(&"SessionEventRecorded"), "{names:?}");
    // Nothing of the data is in the stored bytes; the plain facts are.
    for envelope in w.all_events().await {
        let bytes = crate::log::encode_payload(&envelope.payload).unwrap();
        assert!(!bytes.windows(6).any(|b| b == b"marker"), "{envelope:?}");
    }
    let keys = w.service.keys().clone();
    let shown: Vec<_> = stored
        .iter()
        .filter_map(|e| crate::seal::session_event(&keys, e, false))
        .map(|(_, _, shown)| shown.into_plain().expect("opens"))
        .collect();
    assert_eq!(shown, batch);
    // The aggregate folds the sealed events as it folded plain ones.
    let fresh = Service::new(
        w.spy.clone(),
        Arc::new(w.clock.clone()),
        w.permissions.clone(),
    );
    let state = fresh.load::<Recording>(recording).await.unwrap().state;
    assert_eq!(state.data_points.event_count, 2);
    assert!(state.data_points.applications.contains("cmd.exe"));

    // Shredded: every sealed part reads as shredded, and no new key comes back.
    keys.shred(recording).unwrap();
    for event in &stored {
        if let Some((_, _, shown)) = crate::seal::session_event(&keys, event, false) {
            assert_eq!(shown.data, crate::seal::Revealed::Shredded);
        }
        let json = crate::seal::shown_payload(&keys, event, false).to_string();
        assert!(!json.contains("marker"), "{json}");
    }
    let error = w
        .service
        .record_session_events(&agent, recording, vec![web(marker, 3_000)])
        .await
        .expect_err("a shredded recording takes no more events");
    assert_eq!(error.code(), Some(ErrorCode::Validation), "{error}");
    assert!(!keys.has_key(recording));
}

#[tokio::test]
async fn a_retried_end_answers_the_first_end_and_writes_nothing() {
    let w = World::new();
    let (_, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "ends-once").await.recording_id;
    let first = w
        .service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    assert!(!first.deduplicated);
    w.clock.advance_secs(60);
    w.service
        .archive_recording(&w.admin, recording)
        .await
        .expect("archive");
    let before = w.all_events().await.len();
    let retried = w
        .service
        .end_recording(&agent, recording, None)
        .await
        .expect("a retried end is no error");
    assert!(retried.deduplicated);
    assert_eq!(
        (retried.last_position, retried.version),
        (first.last_position, first.version),
        "the first end's position and version"
    );
    assert!(retried.events.is_empty());
    assert_eq!(w.all_events().await.len(), before, "nothing written");

    // An end stored before its id was derived (a random id) is found on
    // the stream.
    let legacy = w.start(server_id, &agent, "old-end").await;
    let ended = DomainEvent::RecordingEnded {
        recording_id: legacy.recording_id,
        site_id: legacy_site(&w, legacy.recording_id).await,
        server_id,
        ended_at: w.service.now(),
    };
    let stored = w
        .spy
        .append(
            &Recording::stream(legacy.recording_id),
            ExpectedVersion::Exact(legacy.executed.version),
            vec![NewEvent::new(agent.actor(), ended)],
        )
        .await
        .expect("an end under a random id");
    let retried = w
        .service
        .end_recording(&agent, legacy.recording_id, None)
        .await
        .expect("retried end");
    assert!(retried.deduplicated);
    assert_eq!(retried.last_position, stored.last_position());
}

/// The site of a recording, from its stream.
async fn legacy_site(w: &World, recording_id: Uuid) -> Uuid {
    w.service
        .load::<Recording>(recording_id)
        .await
        .expect("load")
        .state
        .site_id
}
