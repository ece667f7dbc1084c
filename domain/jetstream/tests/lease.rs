//! Leases of scheduled jobs against a real three-node nats-server cluster
//! (`srs_log_jetstream::testing::Cluster`): one holder at a time, a dead
//! holder's lease taken by another after its TTL, a holder that cannot
//! renew lets go.

use std::time::Duration;

use async_nats::jetstream;
use srs_log_jetstream::lease::bucket_name;
use srs_log_jetstream::testing::Cluster;
use srs_log_jetstream::{ClusterClient, JetStreamOptions, Lease, Leases};
use tokio::time::Instant;

/// The leases' TTL in these tests: short, so a test waits seconds.
const TTL: Duration = Duration::from_secs(3);

/// How long a test waits for something to happen; a bound so a broken
/// test fails instead of hanging, not a timing claim.
const SETTLE: Duration = Duration::from_secs(60);

fn options(cluster: &Cluster, stream: &str) -> JetStreamOptions {
    JetStreamOptions {
        timeout: Duration::from_secs(5),
        ..JetStreamOptions::new(&cluster.urls(), stream)
    }
}

async fn leases(cluster: &Cluster, stream: &str) -> Leases {
    let client = ClusterClient::connect(&options(cluster, stream))
        .await
        .expect("connect");
    let leases = client.leases(TTL).await.expect("the leases' bucket");
    assert_eq!(leases.ttl(), TTL);
    leases
}

/// The bucket as another client sees it (an operator, an intruder).
async fn bucket(cluster: &Cluster, stream: &str) -> jetstream::kv::Store {
    let client = async_nats::connect(cluster.urls().split(',').next().unwrap())
        .await
        .expect("connect");
    jetstream::new(client)
        .get_key_value(bucket_name(stream))
        .await
        .expect("the bucket")
}

async fn wait_until(lease: &Lease, held: bool) {
    let mut watch = lease.watch();
    tokio::time::timeout(SETTLE, watch.wait_for(|h| *h == held))
        .await
        .unwrap_or_else(|_| panic!("lease {} held: {held} in time", lease.key()))
        .expect("the keeper runs");
}

/// Waits for either lease to be held, checking at every change that the
/// two are never held at once, for `watching`.
async fn never_both(a: &Lease, b: &Lease, watching: Duration) -> usize {
    let (mut wa, mut wb) = (a.watch(), b.watch());
    let deadline = Instant::now() + watching;
    let mut changes = 0;
    loop {
        let both = *wa.borrow_and_update() && *wb.borrow_and_update();
        assert!(!both, "two nodes hold one lease");
        tokio::select! {
            _ = wa.changed() => {}
            _ = wb.changed() => {}
            () = tokio::time::sleep_until(deadline) => return changes,
        }
        changes += 1;
    }
}

async fn holder_named(kv: &jetstream::kv::Store, key: &str) -> Option<String> {
    kv.get(key)
        .await
        .expect("read the key")
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_holders_never_hold_one_lease_at_once() {
    let cluster = Cluster::start();
    let (first, second) = (
        leases(&cluster, "leases-one").await,
        leases(&cluster, "leases-one").await,
    );
    let a = first.hold("retention", "node a");
    let b = second.hold("retention", "node b");
    // One of them takes it; over several renewals they never both hold it.
    let deadline = Instant::now() + SETTLE;
    while !a.is_held() && !b.is_held() {
        assert!(Instant::now() < deadline, "nobody took the lease");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    never_both(&a, &b, TTL * 3).await;
    assert!(a.is_held() ^ b.is_held(), "exactly one holds the lease");
    let (holder, other, name) = if a.is_held() {
        (&a, &b, "node a")
    } else {
        (&b, &a, "node b")
    };
    let kv = bucket(&cluster, "leases-one").await;
    assert_eq!(holder_named(&kv, "retention").await.as_deref(), Some(name));

    // Another job's lease is another key: held independently.
    let other_job = first.hold("liveness", "node a");
    wait_until(&other_job, true).await;

    // A clean release hands the lease over at the other's next try.
    holder.release().await;
    assert!(!holder.is_held());
    wait_until(other, true).await;
    assert_ne!(holder_named(&kv, "retention").await.as_deref(), Some(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_goes_to_the_other_after_its_ttl() {
    let cluster = Cluster::start();
    let (first, second) = (
        leases(&cluster, "leases-dead").await,
        leases(&cluster, "leases-dead").await,
    );
    let a = first.hold("retention", "node a");
    wait_until(&a, true).await;
    let b = second.hold("retention", "node b");
    never_both(&a, &b, TTL).await;
    assert!(a.is_held() && !b.is_held());

    // The holder dies: nothing renews or releases the key. Until the
    // servers remove it the other does not hold the lease; then it does.
    let kv = bucket(&cluster, "leases-dead").await;
    drop(a);
    assert!(!b.is_held());
    assert_eq!(
        holder_named(&kv, "retention").await.as_deref(),
        Some("node a")
    );
    wait_until(&b, true).await;
    assert_eq!(
        holder_named(&kv, "retention").await.as_deref(),
        Some("node b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_renewal_stops_the_holder_at_once() {
    let cluster = Cluster::start();
    let leases = leases(&cluster, "leases-refused").await;
    let a = leases.hold("retention", "node a");
    wait_until(&a, true).await;

    // Someone else writes the key: the holder's next renewal is refused
    // and it lets go; it does not take the lease back while the other's
    // write lives, and takes it again once that expired.
    let kv = bucket(&cluster, "leases-refused").await;
    kv.put("retention", "intruder".into()).await.expect("put");
    wait_until(&a, false).await;
    assert_eq!(
        holder_named(&kv, "retention").await.as_deref(),
        Some("intruder")
    );
    wait_until(&a, true).await;
    assert_eq!(
        holder_named(&kv, "retention").await.as_deref(),
        Some("node a")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_cut_off_from_the_quorum_lets_go() {
    let mut cluster = Cluster::start();
    let leases = leases(&cluster, "leases-quorum").await;
    let a = leases.hold("retention", "node a");
    wait_until(&a, true).await;

    // Two of three servers gone: no renewal can be stored. The holder
    // lets go by itself (before the key could expire and be taken).
    cluster.kill(1);
    cluster.kill(2);
    wait_until(&a, false).await;

    // The quorum back: the lease is taken again.
    cluster.start_node(1);
    cluster.start_node(2);
    wait_until(&a, true).await;
}
