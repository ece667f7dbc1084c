//! The recordings page and `recording(id)` answer what the log says after
//! each kind of change to a recording, however often the same rows were
//! read before, and after the catalogue is rebuilt and swapped.

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

const FIELDS: &str =
    "id user live endedAt durationSec restricted commentCount maxSeverity applications";

/// The node of `id` on the first page and `recording(id)`, read twice each
/// (the second read answers from whatever the first one kept), after the
/// read models reached `at`. Both reads and both paths must agree.
async fn read(admin: &Client, id: &str, at: i64) -> Value {
    let page = format!(
        "query($at: Int) {{ recordings(first: 50, atLeast: $at) {{ edges {{ cursor node {{ {FIELDS} }} }} }} }}"
    );
    let one =
        format!("query($id: ID!, $at: Int) {{ recording(id: $id, atLeast: $at) {{ {FIELDS} }} }}");
    let mut seen = Vec::new();
    for _ in 0..2 {
        let listed = admin.data(&page, json!({ "at": at })).await;
        let node = listed["recordings"]["edges"]
            .as_array()
            .expect("edges")
            .iter()
            .map(|e| e["node"].clone())
            .find(|n| n["id"] == id)
            .unwrap_or_else(|| panic!("{id} is not on the page: {listed}"));
        let single = admin.data(&one, json!({ "id": id, "at": at })).await["recording"].clone();
        assert_eq!(node, single, "the page and recording(id) disagree");
        seen.push(node);
    }
    assert_eq!(seen[0], seen[1], "a second read differs from the first");
    seen.pop().unwrap()
}

#[tokio::test]
async fn recordings_answer_every_change_before_and_after_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let srs = Srs::start(&dir.path().join("data")).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    let site = create_site(&admin, "HQ").await;
    record_everyone(&admin, &site).await;
    activate_detection_policy(
        &admin,
        &site,
        "name: \"USB\", logged: [LOGON, APP_START, WEB_BROWSING, USB_MASS_STORAGE], rules: [{type: USB_MASS_STORAGE, severity: HIGH}]",
    )
    .await;
    let (server, agent_token) = connect_server(&admin, &site, "SR-01").await;
    let agent = admin.with_token(&agent_token);

    let alice = start_recording(&agent, &server, "s-1", "CORP\\alice", &[]).await;
    let (alice, at) = (
        alice["recordingId"].as_str().unwrap().to_owned(),
        position(&alice),
    );
    let r = read(&admin, &alice, at).await;
    assert_eq!(
        (r["live"].clone(), r["restricted"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(r["maxSeverity"], Value::Null);

    // A second recording, inserted after the first was read.
    let bob = start_recording(&agent, &server, "s-2", "CORP\\bob", &[]).await;
    let (bob, at) = (
        bob["recordingId"].as_str().unwrap().to_owned(),
        position(&bob),
    );
    assert_eq!(read(&admin, &bob, at).await["user"], "CORP\\bob");
    assert_eq!(read(&admin, &alice, at).await["live"], true);

    // Detections and a started application.
    let recorded = agent
        .data(
            RECORD_EVENTS,
            json!({ "recordingId": alice, "events": suspicious_batch() }),
        )
        .await;
    let r = read(&admin, &alice, position(&recorded["recordSessionEvents"])).await;
    assert_eq!(r["maxSeverity"], "HIGH", "{r}");
    assert!(
        r["applications"]
            .as_array()
            .unwrap()
            .contains(&json!("excel.exe")),
        "{r}"
    );

    // Ended.
    let ended = agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": alice }),
        )
        .await;
    let r = read(&admin, &alice, position(&ended["endRecording"])).await;
    assert_eq!(r["live"], false);
    assert!(r["endedAt"].is_string(), "{r}");

    // Restricted, then unrestricted.
    let restrict = |mutation: &'static str| {
        format!("mutation($id: ID!) {{ {mutation}(recordingId: $id, reason: \"case 7\") {{ position }} }}")
    };
    let done = admin
        .data(&restrict("restrictRecording"), json!({ "id": alice }))
        .await;
    assert_eq!(
        read(&admin, &alice, position(&done["restrictRecording"])).await["restricted"],
        true
    );
    let done = admin
        .data(
            &restrict("removeRecordingRestriction"),
            json!({ "id": alice }),
        )
        .await;
    let r = read(
        &admin,
        &alice,
        position(&done["removeRecordingRestriction"]),
    )
    .await;
    assert_eq!(r["restricted"], false);

    // Commented, then the comment deleted.
    let added = admin
        .data(
            "mutation($id: ID!) { addComment(recordingId: $id, text: \"look at 0:09\") { position commentId } }",
            json!({ "id": alice }),
        )
        .await;
    let r = read(&admin, &alice, position(&added["addComment"])).await;
    assert_eq!(r["commentCount"], 1);
    let deleted = admin
        .data(
            "mutation($id: ID!) { deleteComment(commentId: $id) { position } }",
            json!({ "id": added["addComment"]["commentId"] }),
        )
        .await;
    let before_rebuild = read(&admin, &alice, position(&deleted["deleteComment"])).await;
    assert_eq!(before_rebuild["commentCount"], 0);

    // The catalogue rebuilt into a new tree and swapped in: the same
    // answers, and changes after the swap show.
    let rebuilt = admin
        .data(
            "mutation { rebuildProjections(names: [\"catalogue\"]) { position projections { name error } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        rebuilt["rebuildProjections"]["projections"][0]["error"],
        Value::Null,
        "{rebuilt}"
    );
    let at = position(&rebuilt["rebuildProjections"]);
    assert_eq!(read(&admin, &alice, at).await, before_rebuild);
    let ended = agent
        .data(
            "mutation($id: ID!) { endRecording(recordingId: $id) { position } }",
            json!({ "id": bob }),
        )
        .await;
    assert_eq!(
        read(&admin, &bob, position(&ended["endRecording"])).await["live"],
        false
    );
    let done = admin
        .data(&restrict("restrictRecording"), json!({ "id": bob }))
        .await;
    let r = read(&admin, &bob, position(&done["restrictRecording"])).await;
    assert_eq!(
        (r["restricted"].clone(), r["live"].clone()),
        (json!(true), json!(false))
    );
    assert_eq!(
        read(&admin, &alice, position(&done["restrictRecording"])).await,
        before_rebuild
    );
}
