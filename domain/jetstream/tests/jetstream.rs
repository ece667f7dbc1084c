//! The JetStream backend against a real three-node nats-server cluster
//! (`srs_log_jetstream::testing::Cluster`).

use std::sync::Arc;

use srs_domain::log::contract;
use srs_domain::log::LogBackend;
use srs_log_jetstream::testing::Cluster;
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};

fn open(cluster: &Cluster, stream: &str) -> Arc<JetStreamBackend> {
    Arc::new(JetStreamBackend::open(&JetStreamOptions::new(&cluster.urls(), stream)).expect("open"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_core_keeps_its_promises_over_jetstream() {
    let cluster = Cluster::start();
    let backend: Arc<dyn LogBackend> = open(&cluster, "contract");
    contract::core_keeps_its_promises(backend).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_import_work_over_jetstream() {
    let cluster = Cluster::start();
    let source: Arc<dyn LogBackend> = open(&cluster, "source");
    let target: Arc<dyn LogBackend> = open(&cluster, "target");
    contract::verify_and_import(source, target).await;
}
