//! Server commands against the real sled log.

use uuid::Uuid;

use crate::app::*;
use crate::model::testing::fixtures::session;
use crate::model::*;

use crate::app::testing::*;

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
