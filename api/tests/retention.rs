//! The retention scheduler in process, on a manual clock: a year of daily
//! runs in a moment, with real content in the store.

use std::sync::Arc;

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use srs_api::content::{store_chunk, ContentError};
use srs_api::retention::{run_site, tick};
use srs_api::server::{ServeOptions, Server};
use srs_api::state::{Limits, Services};
use srs_domain::app::{ConnectServer, StartRecordingInput};
use srs_domain::log::{verify, EventStore as _};
use srs_domain::model::{
    Deployment, DomainEvent, HoldScope, Lifecycle, Principal, Recording, RetentionPolicy,
    SessionAttributes, TimeOfDay, RECORD_EVERYONE_WITH_NOTIFICATION,
};
use srs_domain::time::{Clock as _, ManualClock, Timestamp};
use uuid::Uuid;

const DAY: i64 = 86_400;

struct World {
    _dir: tempfile::TempDir,
    server: Server,
    clock: ManualClock,
    admin: Principal,
    agent: Principal,
    site: Uuid,
    server_id: Uuid,
}

impl World {
    fn services(&self) -> &Arc<Services> {
        self.server.state().services()
    }

    async fn open() -> World {
        let dir = tempfile::tempdir().unwrap();
        // Midnight UTC of a day in 2026.
        let clock = ManualClock::new(Timestamp::from_secs(20_400 * DAY));
        let server = Server::open_with_clock(
            ServeOptions {
                data: dir.path().join("data"),
                listen: "127.0.0.1:0".into(),
                limits: Limits::default(),
                cors_origins: Vec::new(),
                cluster_key_file: None,
                cache_mb: srs_api::server::DEFAULT_CACHE_MB,
            },
            Arc::new(clock.clone()),
        )
        .await
        .unwrap();
        let services = server.state().services().clone();
        let secret = server.bootstrap_secret().unwrap().to_owned();
        let admin = services.authenticate(&secret).await.unwrap().unwrap();
        let site = services.service.create_site(&admin, "HQ").await.unwrap().id;
        let credential = services
            .service
            .connect_server(
                &admin,
                ConnectServer {
                    site_id: site,
                    name: "sr-1".into(),
                    host: "sr-1.example".into(),
                    deployment: Deployment::OnPremises,
                    version: "2411".into(),
                },
            )
            .await
            .unwrap();
        services
            .service
            .activate_policy(&admin, RECORD_EVERYONE_WITH_NOTIFICATION, Some(site))
            .await
            .unwrap();
        let agent = services
            .authenticate(&credential.secret)
            .await
            .unwrap()
            .unwrap();
        World {
            _dir: dir,
            server,
            clock,
            admin,
            agent,
            site,
            server_id: credential.server_id,
        }
    }

    /// A recording that ended now, with `content` as its one chunk.
    async fn recording(&self, session: &str, content: &[u8]) -> Uuid {
        self.recording_of(session, "CORP\\ann", content).await
    }

    /// A recording of `user` that ended now, with `content` as its one chunk.
    async fn recording_of(&self, session: &str, user: &str, content: &[u8]) -> Uuid {
        let services = self.services();
        let started = services
            .service
            .start_recording(
                &self.agent,
                StartRecordingInput {
                    server_id: self.server_id,
                    session_id: session.into(),
                    session: SessionAttributes {
                        user: user.into(),
                        groups: vec![],
                        client_name: None,
                        client_ip: None,
                        host: "vda-01".into(),
                        delivery_group: None,
                        applications: vec![],
                    },
                    started_at: None,
                },
            )
            .await
            .unwrap();
        let id = started.recording_id;
        if !content.is_empty() {
            let sha = hex::encode(Sha256::digest(content));
            store_chunk(
                services,
                &self.agent,
                id,
                0,
                Bytes::copy_from_slice(content),
                sha,
                None,
            )
            .await
            .unwrap();
        }
        services
            .service
            .end_recording(&self.agent, id, None)
            .await
            .unwrap();
        id
    }

    async fn lifecycle(&self, id: Uuid) -> Lifecycle {
        self.services()
            .service
            .load::<Recording>(id)
            .await
            .unwrap()
            .state
            .lifecycle
    }

    async fn read(&self, id: Uuid) -> Result<Vec<u8>, ContentError> {
        let state = self
            .services()
            .service
            .load::<Recording>(id)
            .await
            .unwrap()
            .state;
        let sha = state.chunks[&0].sha256.clone();
        self.services().content.read_chunk(id, 0, &sha)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_daily_runs_archives_then_deletes_and_spares_restricted_sessions() {
    let w = World::open().await;
    let services = w.services().clone();
    services
        .service
        .set_retention_policy(
            &w.admin,
            w.site,
            RetentionPolicy {
                archive_after_days: Some(30),
                delete_after_days: Some(90),
                run_at: TimeOfDay { hour: 2, minute: 0 },
                exclude_restricted: true,
            },
        )
        .await
        .unwrap();
    let empty = w.recording("empty", b"").await;
    let doomed = w.recording("doomed", b"secret screen content").await;
    let restricted = w.recording("restricted", b"hr case").await;
    services
        .service
        .restrict_recording(&w.admin, restricted, "HR case")
        .await
        .unwrap();
    let start = w.clock.now();
    let mut runs = Vec::new();
    let mut live = None;
    for day in 0..365 {
        // Twice a day: the run happens once, at or after 02:00.
        for at in [60, 3 * 3_600] {
            w.clock.set(start.plus_secs(day * DAY + at));
            for (site, outcome) in tick(&services).await.unwrap() {
                assert_eq!(site, w.site);
                runs.push((day, outcome));
            }
        }
        if day == 200 {
            // A live recording is never touched, whatever its age.
            let started = services
                .service
                .start_recording(
                    &w.agent,
                    StartRecordingInput {
                        server_id: w.server_id,
                        session_id: "live".into(),
                        session: SessionAttributes {
                            user: "CORP\\bob".into(),
                            groups: vec![],
                            client_name: None,
                            client_ip: None,
                            host: "vda-02".into(),
                            delivery_group: None,
                            applications: vec![],
                        },
                        started_at: None,
                    },
                )
                .await
                .unwrap();
            live = Some(started.recording_id);
        }
        if day == 60 {
            assert_eq!(w.lifecycle(doomed).await, Lifecycle::Archived);
            assert_eq!(w.read(doomed).await.unwrap(), b"secret screen content");
        }
    }
    assert_eq!(runs.len(), 365, "one run a day");
    let archived: Vec<_> = runs.iter().filter(|(_, o)| o.archived > 0).collect();
    let deleted: Vec<_> = runs.iter().filter(|(_, o)| o.deleted > 0).collect();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].0, 30, "archived 30 days after the end");
    assert_eq!(archived[0].1.archived, 2);
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].0, 90, "deleted 90 days after the end");
    assert_eq!(deleted[0].1.deleted, 2);

    assert_eq!(w.lifecycle(empty).await, Lifecycle::Deleted);
    assert_eq!(w.lifecycle(doomed).await, Lifecycle::Deleted);
    assert_eq!(w.lifecycle(restricted).await, Lifecycle::Ended);
    assert_eq!(w.lifecycle(live.unwrap()).await, Lifecycle::Live);
    assert!(matches!(w.read(doomed).await, Err(ContentError::NoKey(_))));
    assert!(!services.content.has_key(doomed));
    assert_eq!(w.read(restricted).await.unwrap(), b"hr case");

    // Every run is a fact in the log, and the chain still verifies.
    let mut completed = 0;
    let mut from = 1;
    loop {
        let batch = services.store.read_all(from, 1_000).await.unwrap();
        if batch.is_empty() {
            break;
        }
        from = batch.last().unwrap().position + 1;
        completed += batch
            .iter()
            .filter(|e| {
                matches!(
                    e.payload,
                    DomainEvent::RetentionRunCompleted { .. }
                        | DomainEvent::RetentionRunCompletedV2 { .. }
                )
            })
            .count();
    }
    assert_eq!(completed, 365);
    services.store.flush().unwrap();
    let backend = services.store.backend();
    let report = verify::<DomainEvent>(&*backend, 1, |_| {}).unwrap();
    assert!(report.breach.is_none(), "{:?}", report.breach);

    // Running on demand is the same run.
    let again = run_site(&services, w.site).await.unwrap();
    assert_eq!((again.archived, again.deleted), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_never_deletes_held_recordings_archives_them_and_counts_them_as_held() {
    let w = World::open().await;
    let services = w.services().clone();
    services
        .service
        .set_retention_policy(
            &w.admin,
            w.site,
            RetentionPolicy {
                archive_after_days: Some(30),
                delete_after_days: Some(90),
                run_at: TimeOfDay { hour: 2, minute: 0 },
                exclude_restricted: false,
            },
        )
        .await
        .unwrap();
    // A hold on carl's recordings, placed before any of them exists.
    let users_hold = services
        .service
        .place_legal_hold(
            &w.admin,
            Some(w.site),
            HoldScope::Users {
                users: vec!["CORP\\carl".into()],
            },
            "Case 2026-20",
        )
        .await
        .unwrap();
    let carls = w.recording_of("carl", "CORP\\carl", b"carl's screen").await;
    let doras = w.recording_of("dora", "CORP\\dora", b"dora's screen").await;
    let eves = w.recording_of("eve", "CORP\\eve", b"eve's screen").await;
    services
        .service
        .place_legal_hold(
            &w.admin,
            None,
            HoldScope::Recordings {
                recording_ids: vec![doras],
            },
            "Case 2026-21",
        )
        .await
        .unwrap();
    let start = w.clock.now();
    let mut runs = Vec::new();
    for day in 0..=120 {
        w.clock.set(start.plus_secs(day * DAY + 3 * 3_600));
        for (_, outcome) in tick(&services).await.unwrap() {
            runs.push((day, outcome));
        }
    }
    let on = |d: i64| runs.iter().find(|(day, _)| *day == d).unwrap().1;
    assert_eq!((on(30).archived, on(30).deleted, on(30).held), (3, 0, 0));
    assert_eq!(
        (on(90).deleted, on(90).held),
        (1, 2),
        "eve's deleted, carl's and dora's held"
    );
    // Every later run reports them held again, and deletes nothing.
    assert_eq!((on(120).deleted, on(120).held), (0, 2));
    assert_eq!(w.lifecycle(eves).await, Lifecycle::Deleted);
    for held in [carls, doras] {
        assert_eq!(w.lifecycle(held).await, Lifecycle::Archived);
        assert!(w.read(held).await.is_ok(), "its content is kept");
    }
    let last = services
        .reads
        .policies()
        .unwrap()
        .retention(w.site)
        .unwrap()
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(last.held, 2);

    // Released, the next run deletes carl's recording.
    services
        .service
        .release_legal_hold(&w.admin, users_hold.id, Some("closed"))
        .await
        .unwrap();
    let after = run_site(&services, w.site).await.unwrap();
    assert_eq!((after.deleted, after.held), (1, 1));
    assert_eq!(w.lifecycle(carls).await, Lifecycle::Deleted);
    assert_eq!(w.lifecycle(doras).await, Lifecycle::Archived);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_archiving_a_held_recording_is_left_as_it_is() {
    let w = World::open().await;
    let services = w.services().clone();
    services
        .service
        .set_retention_policy(
            &w.admin,
            w.site,
            RetentionPolicy {
                archive_after_days: None,
                delete_after_days: Some(1),
                run_at: TimeOfDay { hour: 2, minute: 0 },
                exclude_restricted: false,
            },
        )
        .await
        .unwrap();
    let held = w.recording("held", b"kept").await;
    services
        .service
        .place_legal_hold(&w.admin, Some(w.site), HoldScope::Site, "Audit")
        .await
        .unwrap();
    w.clock.set(w.clock.now().plus_secs(2 * DAY));
    let run = run_site(&services, w.site).await.unwrap();
    assert_eq!((run.archived, run.deleted, run.held), (0, 0, 1));
    assert_eq!(w.lifecycle(held).await, Lifecycle::Ended);
}
