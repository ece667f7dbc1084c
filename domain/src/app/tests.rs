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
        (2, 0, 2, 1)
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
            "EventDetected"
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
    let error = w
        .service
        .activate_policy(&w.admin, DO_NOT_DETECT, Some(site_id))
        .await
        .expect_err("response policy needs APP_START");
    assert_eq!(error.code(), Some(ErrorCode::Validation));
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
    let (_, server_id, agent) = w.recording_site().await;
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
async fn playback_permissions_narrow_what_an_auditor_may_play() {
    let w = World::new();
    let (site_id, server_id, agent) = w.recording_site().await;
    let recording = w.start(server_id, &agent, "s1").await.recording_id;
    w.service
        .end_recording(&agent, recording, None)
        .await
        .expect("end");
    let ann = person(Role::Auditor, "ann");
    w.service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect("no permissions: every unrestricted recording");

    let granted = w
        .service
        .grant_playback_permission(
            &w.admin,
            site_id,
            "ann",
            PlaybackScope {
                recorded_users: vec!["CORP\\bob".into()],
                ..Default::default()
            },
        )
        .await
        .expect("grant");
    for event in &granted.executed.events {
        w.permissions.apply(event);
    }
    let error = w
        .service
        .record_played(&ann, recording, PlaybackKind::Play)
        .await
        .expect_err("narrowed to bob");
    // Out of her grants, the recording is as unknown to her as an absent one.
    assert_eq!(error.code(), Some(ErrorCode::NotFound));

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
    let (_, server_id, agent) = w.recording_site().await;
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
