//! `history` on a long log where the matching events are sparse: one
//! `SiteCreated` after 60,000 session events is on the first page, alone,
//! with no next page and its count, because the page reads the history
//! index and not the log.

use std::path::Path;

use serde_json::{json, Value};
use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent, SledEventStore, StoreOptions};
use srs_domain::model::testing::fixtures::T0;
use srs_domain::model::DomainEvent;
use uuid::Uuid;

use crate::common::log::append_recordings;
use crate::common::{Client, Srs};

/// Appends `recordings` recordings of 100 events each (a start, 98 session
/// events, an end), then one site; returns the head position.
async fn append_history(dir: &Path, recordings: u64, site: Uuid) -> u64 {
    let store = SledEventStore::<DomainEvent>::open(dir, StoreOptions::default()).unwrap();
    append_recordings(&store, recordings).await;
    let created = DomainEvent::SiteCreated {
        site_id: site,
        name: "Late".into(),
        at: T0,
    };
    let _ = store
        .append(
            &format!("site-{site}"),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(Actor::system("generator"), created)],
        )
        .await
        .unwrap();
    store.flush().unwrap();
    EventStore::head(&store).position
}

const HISTORY: &str = "query($filter: HistoryFilter, $after: String, $at: Int) {
  history(filter: $filter, first: 1, after: $after, atLeast: $at) {
    totalCount pageInfo { hasNextPage endCursor } edges { cursor node { type stream position } }
  }
}";

/// The page of `filter`, once the read models have the whole log (the
/// server catches up on start: `atLeast` is asked again until it answers).
async fn page(admin: &Client, filter: Value, head: u64) -> Value {
    for _ in 0..600 {
        let response = admin
            .run(HISTORY, json!({ "filter": filter, "at": head }))
            .await;
        let failed = response
            .body
            .get("errors")
            .is_some_and(|e| e.as_array().is_some_and(|e| !e.is_empty()));
        if !failed {
            return response.data()["history"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    panic!("the read models never reached {head}");
}

#[tokio::test]
async fn a_sparse_event_type_is_on_the_first_page_of_a_long_log() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // A first start writes the admin token; the history is appended while
    // the server is down.
    let srs = Srs::start(&data).await;
    let token = srs.admin_token();
    srs.stop();
    let site = Uuid::from_u128(0x5175_0002);
    let head = append_history(&data, 600, site).await;
    assert!(head > 60_000, "{head}");
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&token));

    for filter in [
        json!({ "types": ["SiteCreated"] }),
        json!({ "types": ["SiteCreated", "NoSuchEvent"], "actor": "system:generator" }),
        json!({ "siteId": site.to_string() }),
        json!({ "stream": format!("site-{site}") }),
    ] {
        let history = page(&admin, filter.clone(), head).await;
        let edges = history["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 1, "{filter}: {history}");
        assert_eq!(
            edges[0]["node"]["type"], "SiteCreated",
            "{filter}: {history}"
        );
        assert_eq!(edges[0]["node"]["position"], head, "{filter}: {history}");
        assert_eq!(
            history["pageInfo"]["hasNextPage"], false,
            "{filter}: {history}"
        );
        assert_eq!(history["totalCount"], 1, "{filter}: {history}");
    }
    // A dense filter pages by position: full pages, then the next.
    let recording = Uuid::from_u128(0x7ec0_0000_0000 + 599);
    let filter = json!({ "recordingId": recording.to_string(), "types": ["RecordingEnded"] });
    let history = page(&admin, filter, head).await;
    assert_eq!(
        history["edges"][0]["node"]["position"],
        head - 1,
        "{history}"
    );
    assert_eq!(history["totalCount"], 1, "{history}");
    let filter = json!({ "types": ["RecordingEnded"] });
    let first = page(&admin, filter.clone(), head).await;
    // The generated history starts after the first start's events.
    let base = head - 60_001;
    assert_eq!(first["edges"][0]["node"]["position"], base + 100, "{first}");
    assert_eq!(first["pageInfo"]["hasNextPage"], true, "{first}");
    assert_eq!(first["totalCount"], 600, "{first}");
    let after = first["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let second = admin
        .data(HISTORY, json!({ "filter": filter, "after": after }))
        .await;
    let second = &second["history"];
    let (a, b) = (
        first["edges"][0]["node"]["position"].as_u64().unwrap(),
        second["edges"][0]["node"]["position"].as_u64().unwrap(),
    );
    assert_eq!(b, a + 100, "{second}");
    srs.stop();
}
