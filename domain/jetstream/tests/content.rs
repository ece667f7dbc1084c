//! The recordings' content and keys in a real three-node nats-server
//! cluster (`srs_log_jetstream::testing::Cluster`): what one server
//! stores another reads, a key is never in the clear in NATS, and a
//! shredded key is gone from the key bucket's stream, history included.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use srs_domain::seal::{Field, KeyRing, KeyStore, SealError, KEY_LEN};
use srs_log_jetstream::testing::Cluster;
use srs_log_jetstream::{
    keys_bucket, ClusterContent, ClusterKey, JetStreamOptions, StoreError, WRAPPED_LEN,
};
use uuid::Uuid;

const STREAM: &str = "srs-content-test";

fn options(cluster: &Cluster) -> JetStreamOptions {
    JetStreamOptions {
        // Room for a loaded machine (the tests run beside others).
        timeout: Duration::from_secs(15),
        ..JetStreamOptions::new(&cluster.urls(), STREAM)
    }
}

fn random_key() -> [u8; KEY_LEN] {
    let mut key = [0u8; KEY_LEN];
    key[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    key
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every message the stream `name` still holds: payload and headers, as
/// text where they are.
fn stream_messages(options: &JetStreamOptions, name: &str) -> Vec<(u64, Vec<u8>, String)> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(options.urls.as_slice()).await.unwrap();
        let js = jetstream::new(client);
        let mut stream = js.get_stream(name).await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut out = Vec::new();
        for seq in 1..=state.last_sequence {
            // A message removed by a purge is not found: that is the point.
            if let Ok(message) = stream.get_raw_message(seq).await {
                let headers = message
                    .headers
                    .iter()
                    .map(|(k, v)| format!("{k}: {v:?}"))
                    .collect::<Vec<_>>()
                    .join("; ");
                out.push((seq, message.payload.to_vec(), headers));
            }
        }
        out
    })
}

/// Waits until `done` holds; a bound so a broken test fails instead of
/// hanging, not a timing claim.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn content_and_keys_are_shared_by_the_servers_and_a_shredded_key_is_gone_for_good() {
    let cluster = Cluster::start();
    let options = options(&cluster);
    let cluster_key = random_key();
    let a = ClusterContent::open(&options, ClusterKey::from_bytes(cluster_key)).unwrap();
    let b = ClusterContent::open(&options, ClusterKey::from_bytes(cluster_key)).unwrap();

    // ---- chunks: put through A, read through B -----------------------------
    let recording = Uuid::now_v7();
    let small = b"sealed chunk zero".to_vec();
    // Several of the object store's own chunks (128 KiB each).
    let large: Vec<u8> = (0..300_000u32).flat_map(|n| n.to_le_bytes()).collect();
    a.objects.put(recording, 0, &small).unwrap();
    a.objects.put(recording, 2, &large).unwrap();
    assert_eq!(b.objects.get(recording, 0).unwrap(), Some(small.clone()));
    assert_eq!(b.objects.get(recording, 2).unwrap(), Some(large.clone()));
    assert!(b.objects.contains(recording, 2).unwrap());
    assert!(!b.objects.contains(recording, 1).unwrap());
    assert_eq!(b.objects.get(recording, 1).unwrap(), None);
    // A chunk put again replaces the first.
    b.objects.put(recording, 0, b"replaced").unwrap();
    assert_eq!(
        a.objects.get(recording, 0).unwrap().as_deref(),
        Some(&b"replaced"[..])
    );

    // ---- keys: created through A's ring, used through B's ------------------
    let keys_a = Arc::new(a.keys);
    let keys_b = Arc::new(b.keys);
    let ring_a = KeyRing::with_store(keys_a.clone());
    let ring_b = KeyRing::with_store(keys_b.clone());
    // B asks first: no key yet, and none remembered as absent.
    assert!(!ring_b.has_key(recording));
    let key = ring_a.create(recording).unwrap();
    assert_eq!(ring_b.key(recording).unwrap().as_deref(), Some(&*key));
    // Both creating agree on the first key.
    assert_eq!(*ring_b.create(recording).unwrap(), *key);
    let event = Uuid::now_v7();
    let sealed = ring_a
        .seal(recording, event, Field::DetectionSubject, b"secret subject")
        .unwrap();
    let opened = ring_b
        .open(recording, event, Field::DetectionSubject, &sealed)
        .unwrap()
        .unwrap();
    assert_eq!(opened.as_slice(), b"secret subject");

    // The bucket holds the key wrapped, never the plain key.
    let wrapped = keys_a.wrapped(recording).unwrap().unwrap();
    assert_eq!(wrapped.len(), WRAPPED_LEN);
    assert!(
        !holds(&wrapped, key.as_ref()),
        "the wrapped key holds the key"
    );
    let kv_stream = format!("KV_{}", keys_bucket(STREAM));
    let before = stream_messages(&options, &kv_stream);
    assert!(
        before.iter().any(|(_, payload, _)| payload == &wrapped),
        "the stream holds the wrapped key before the shredding"
    );
    assert!(before
        .iter()
        .all(|(_, payload, _)| !holds(payload, key.as_ref())));

    // A server with another cluster key is refused at open.
    match ClusterContent::open(&options, ClusterKey::from_bytes(random_key())) {
        Err(StoreError::Refused(why)) => assert!(why.contains("cluster key"), "{why}"),
        Err(other) => panic!("another cluster key: {other}"),
        Ok(_) => panic!("another cluster key was accepted"),
    }

    // ---- shredding through A -----------------------------------------------
    let other = Uuid::now_v7();
    let other_key = ring_b.create(other).unwrap();
    // A creation that lost the race answers the key stored first.
    assert_eq!(
        *keys_a
            .create(other, &zeroize::Zeroizing::new(random_key()))
            .unwrap(),
        *other_key
    );
    ring_a.shred(recording).unwrap();
    a.objects.delete_recording(recording, 64).unwrap();
    // B's store has no key, B's ring forgets the one it had cached, and no
    // server gives the recording a key again.
    assert!(keys_b.get(recording).unwrap().is_none());
    eventually("B's ring forgets the shredded key", || {
        matches!(ring_b.key(recording), Ok(None))
    });
    assert!(matches!(
        ring_b.create(recording),
        Err(SealError::NoKey(id)) if id == recording
    ));
    assert!(matches!(
        keys_b.create(recording, &zeroize::Zeroizing::new(random_key())),
        Err(SealError::NoKey(_))
    ));
    assert_eq!(
        ring_b
            .open(recording, event, Field::DetectionSubject, &sealed)
            .unwrap(),
        None,
        "sealed values of the recording show as shredded"
    );
    // B's chunks are gone; the other recording keeps its key.
    assert!(!b.objects.contains(recording, 0).unwrap());
    assert!(!b.objects.contains(recording, 2).unwrap());
    assert_eq!(b.objects.get(recording, 2).unwrap(), None);
    assert_eq!(ring_a.key(other).unwrap().as_deref(), Some(&*other_key));

    // No message left in the key bucket's stream holds the shredded key,
    // plain or wrapped: the purge removed its history, its marker stays.
    let after = stream_messages(&options, &kv_stream);
    for (seq, payload, _) in &after {
        assert!(!holds(payload, key.as_ref()), "message {seq} holds the key");
        assert!(payload != &wrapped, "message {seq} holds the wrapped key");
    }
    let marker = after
        .iter()
        .find(|(_, _, headers)| headers.contains("PURGE"))
        .expect("the purge marker");
    assert!(marker.1.is_empty(), "a purge marker carries no value");
    assert!(
        after.len() >= 3,
        "the check entry, the other recording's key and the marker: {after:?}"
    );
}

#[test]
fn a_missing_or_loose_cluster_key_file_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cluster.key");
    let error = ClusterKey::load(&path).unwrap_err().to_string();
    assert!(error.contains("does not exist"), "{error}");
    assert!(error.contains("head -c 32 /dev/urandom"), "{error}");
    assert!(error.contains("every"), "{error}");

    std::fs::write(&path, [7u8; 16]).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let error = ClusterKey::load(&path).unwrap_err().to_string();
    assert!(error.contains("holds 16 bytes"), "{error}");

    std::fs::write(&path, random_key()).unwrap();
    ClusterKey::load(&path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = ClusterKey::load(&path).unwrap_err().to_string();
        assert!(error.contains("chmod 600"), "{error}");
    }
}
