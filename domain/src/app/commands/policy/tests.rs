//! Policy commands against the real sled log.

use std::collections::BTreeSet;

use crate::model::*;

use crate::app::testing::*;

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
