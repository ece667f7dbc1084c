//! Appends per second of the JetStream log against raw JetStream
//! publishes of the same size, on a local three-node cluster
//! (`sync_interval: always`, R3):
//!
//! `cargo run -p srs-log-jetstream --example throughput [EVENTS]`
//!
//! Each case runs with 1 and with 32 concurrent writers. "raw" publishes
//! one message per request and waits for its acknowledgement; "log"
//! appends one event per request through the whole core (ids, versions,
//! the hash chain, group commit into atomic batches).

use std::sync::Arc;
use std::time::Instant;

use async_nats::jetstream::{self, stream};
use srs_domain::log::contract::{event, ContractEvent};
use srs_domain::log::{EventLog, EventStore, ExpectedVersion, LogBackend, StoreOptions};
use srs_log_jetstream::testing::Cluster;
use srs_log_jetstream::{JetStreamBackend, JetStreamOptions};

#[tokio::main]
async fn main() {
    let events: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse().expect("a number of events"))
        .unwrap_or(3000);
    let cluster = Cluster::start();
    // The size of one stored record of the events appended below.
    let size = {
        let backend: Arc<dyn LogBackend> = Arc::new(
            JetStreamBackend::open(&JetStreamOptions::new(&cluster.urls(), "probe")).unwrap(),
        );
        let log: EventLog<ContractEvent> =
            EventLog::new(backend.clone(), StoreOptions::default()).unwrap();
        let _ = log
            .append("s", ExpectedVersion::Any, vec![event(1)])
            .await
            .unwrap();
        let mut size = 0;
        backend
            .scan(1, 1, &mut |_, bytes| {
                size = bytes.len();
                Ok(false)
            })
            .unwrap();
        size
    };
    println!("{events} events of {size} bytes per case; 3 servers on this machine, R3, sync_interval always");
    for writers in [1usize, 32] {
        let raw = raw(&cluster, &format!("raw{writers}"), events, writers, size).await;
        let log = log(&cluster, &format!("log{writers}"), events, writers).await;
        println!(
            "{writers:>2} writers: raw publishes {raw:>8.0}/s, log appends {log:>8.0}/s ({:.0}%)",
            100.0 * log / raw
        );
    }
}

async fn raw(cluster: &Cluster, name: &str, events: usize, writers: usize, size: usize) -> f64 {
    let urls: Vec<String> = cluster.urls().split(',').map(str::to_owned).collect();
    let client = async_nats::connect(urls.as_slice()).await.unwrap();
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![format!("{name}.log")],
        num_replicas: 3,
        ..Default::default()
    })
    .await
    .unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let js = js.clone();
            let subject = format!("{name}.log");
            tokio::spawn(async move {
                for _ in 0..events / writers {
                    js.publish(subject.clone(), vec![7u8; size].into())
                        .await
                        .unwrap()
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (events / writers * writers) as f64 / started.elapsed().as_secs_f64()
}

async fn log(cluster: &Cluster, name: &str, events: usize, writers: usize) -> f64 {
    let backend =
        Arc::new(JetStreamBackend::open(&JetStreamOptions::new(&cluster.urls(), name)).unwrap());
    let log: EventLog<ContractEvent> = EventLog::new(backend, StoreOptions::default()).unwrap();
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                for n in 0..events / writers {
                    let _ = log
                        .append(
                            &format!("w{w}"),
                            ExpectedVersion::Any,
                            vec![event(n as u64)],
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        EventStore::head(&log).position as usize,
        events / writers * writers
    );
    (events / writers * writers) as f64 / elapsed
}
