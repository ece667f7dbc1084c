//! A log written straight into a stopped server's data directory, for
//! tests that need a long history faster than the API would take it.

use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore};
use srs_domain::model::testing::fixtures::{decision, SERVER, SITE, T0};
use srs_domain::model::{
    DomainEvent, RecordingAction, RecordingMode, SessionEvent, SessionEventData, SessionEventType,
};
use uuid::Uuid;

/// Appends `recordings` ended recordings on the fixtures' site and server,
/// 100 events each: a start, 98 session events and an end.
pub async fn append_recordings(store: &SledEventStore<DomainEvent>, recordings: u64) {
    let actor = Actor::system("generator");
    for n in 0..recordings {
        let recording_id = Uuid::from_u128(0x7ec0_0000_0000 + n as u128);
        let started_at = T0.plus_secs(n as i64 * 60);
        let mut events = vec![DomainEvent::RecordingStarted {
            recording_id,
            site_id: SITE,
            server_id: SERVER,
            session_id: format!("session-{n}"),
            part: 1,
            previous_recording_id: None,
            user: format!("CORP\\user{}", n % 50),
            domain: Some("CORP".into()),
            groups: vec![],
            client_name: None,
            client_ip: None,
            host: format!("VDA-{}", n % 10),
            delivery_group: None,
            applications: vec!["Desktop".into()],
            mode: RecordingMode::EventsOnly,
            decision: decision(RecordingAction::RecordEventsOnly),
            started_at,
        }];
        for e in 0..98u64 {
            events.push(DomainEvent::SessionEventRecorded {
                recording_id,
                site_id: SITE,
                event: SessionEvent {
                    event_id: Uuid::from_u128(((n as u128) << 16) + e as u128 + 1),
                    event_type: SessionEventType::AppStart,
                    offset_ms: e * 1_000,
                    data: SessionEventData::App {
                        app: format!("app-{}.exe", e % 7),
                        pid: None,
                        title: Some("a window title of some length".into()),
                        detail: None,
                    },
                },
            });
        }
        events.push(DomainEvent::RecordingEnded {
            recording_id,
            site_id: SITE,
            server_id: SERVER,
            ended_at: started_at.plus_secs(600),
        });
        let batch = events
            .into_iter()
            .map(|e| NewEvent::new(actor.clone(), e))
            .collect();
        let _ = store
            .append(
                &format!("recording-{recording_id}"),
                ExpectedVersion::NoStream,
                batch,
            )
            .await
            .unwrap();
    }
}
