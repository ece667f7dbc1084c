//! `srs bench log --log-url` on a real three-node cluster: every
//! JetStream figure is measured, with its same-run baseline, and each
//! case's stream held exactly the appends acknowledged (the run fails
//! otherwise); the bench's streams are gone afterwards.

use std::time::Duration;

use srs_log_jetstream::testing::Cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jetstream_figures_come_with_their_baselines() {
    let cluster = Cluster::start();
    let figures = srs_bench::jetstream::run(&cluster.urls(), Duration::from_millis(500), Some(1e4))
        .await
        .unwrap();
    let named = |name: &str| {
        figures
            .iter()
            .find(|f| f.figure == name)
            .unwrap_or_else(|| panic!("no {name} in {figures:?}"))
    };
    let log = named("append_64_writers_jetstream");
    assert!(log.value > 0.0, "{log:?}");
    assert_eq!(log.baseline_name, Some("raw_publish_64"));
    assert!(log.baseline.is_some_and(|b| b > 0.0), "{log:?}");
    assert_eq!(
        named("append_64_jetstream_vs_sled").baseline,
        Some(1e4),
        "the embedded figure handed in"
    );
    let two = named("append_64_writers_2_nodes");
    assert!(two.value > 0.0, "{two:?}");
    assert_eq!(two.baseline, Some(log.value));
    assert!(named("jetstream_record_bytes").value > 100.0);
    let jsz = cluster.monitor(0, "/jsz?streams=true").unwrap();
    let left: Vec<&serde_json::Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
        .map(|s| &s["name"])
        .collect();
    assert!(left.is_empty(), "streams left behind: {left:?}");
}
