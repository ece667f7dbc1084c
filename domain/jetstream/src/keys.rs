//! [`ClusterKeys`]: the recordings' keys in the JetStream KV bucket
//! `<stream>-keys`, each wrapped under the [`ClusterKey`] (see the crate
//! docs, "Content and keys").

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation, UpdateErrorKind};
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use futures_util::StreamExt as _;
use srs_domain::seal::{KeyStore, RecordingKey, SealError, KEY_LEN};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::content::{unavailable, OwnRuntime, StoreError};

/// The first bytes of a wrapped key: the format.
const MAGIC: &[u8; 4] = b"SRK1";
const NONCE_LEN: usize = 12;
/// Bytes of a wrapped key: magic, nonce, the key and the AEAD tag.
pub const WRAPPED_LEN: usize = MAGIC.len() + NONCE_LEN + KEY_LEN + 16;

/// The KV entry that proves which cluster key the bucket's keys are
/// wrapped under (not a recording id, so never a recording's key).
pub const CHECK_ENTRY: &str = "cluster-key-check";

/// How many times a creation that lost a race reads the winner back.
const CREATE_ATTEMPTS: usize = 20;

/// The cluster key-encryption key: 32 random bytes from a file that every
/// `srs serve` of one cluster is given and that NATS never holds. It wraps
/// (ChaCha20-Poly1305) each recording key before the key enters the KV
/// bucket, so a copy of the bucket's stream reveals no recording key.
#[derive(Clone)]
pub struct ClusterKey(Zeroizing<[u8; KEY_LEN]>);

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterKey(..)")
    }
}

/// How to make a cluster key file (what `srs serve` says when it has none).
pub fn how_to_create(path: &Path) -> String {
    format!(
        "create it once, on one node, with `(umask 077; head -c 32 /dev/urandom > {0})`, and copy that same file (mode 0600) to every `srs serve` of the cluster: it wraps the recordings' keys and is never stored in NATS; losing it loses every recording's content",
        path.display()
    )
}

impl ClusterKey {
    /// The key in `path`: exactly 32 bytes, not all zeros, readable by
    /// its owner only. A missing file is refused with how to create one
    /// (srs never creates it: a node that made its own would wrap keys
    /// that no other node opens).
    pub fn load(path: &Path) -> Result<ClusterKey, StoreError> {
        let refused = |why: String| {
            StoreError::Refused(format!("the cluster key file {}: {why}", path.display()))
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => Zeroizing::new(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(refused(format!("does not exist; {}", how_to_create(path))))
            }
            Err(e) => return Err(refused(e.to_string())),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(path)
                .map_err(|e| refused(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(refused(format!(
                    "is readable by other users (mode {:o}); `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        if bytes.len() != KEY_LEN {
            return Err(refused(format!(
                "holds {} bytes, not {KEY_LEN}; {}",
                bytes.len(),
                how_to_create(path)
            )));
        }
        if bytes.iter().all(|&b| b == 0) {
            return Err(refused("is all zeros".into()));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&bytes);
        Ok(ClusterKey(key))
    }

    /// A key from its bytes (tests).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> ClusterKey {
        ClusterKey(Zeroizing::new(bytes))
    }

    /// A key for another use (`purpose`, e.g. `b"srs playback tickets"`)
    /// that every node holding this cluster key derives alike:
    /// SHA-256(purpose | 0 | key). The cluster key is 32 random bytes, so
    /// the hash of it under a distinct label is a key of its own, and
    /// learning it reveals neither the cluster key nor another purpose's.
    pub fn derive(&self, purpose: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        use sha2::{Digest as _, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(purpose);
        hasher.update([0u8]);
        hasher.update(self.0.as_ref());
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&hasher.finalize());
        key
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()))
    }

    /// `plain` wrapped for the KV entry `entry`: "SRK1" | nonce |
    /// ChaCha20-Poly1305(plain), the entry's name as associated data (a
    /// wrapped key copied to another recording does not open).
    pub fn wrap(&self, entry: &str, plain: &[u8; KEY_LEN]) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: &associated_data(entry),
                },
            )
            // 32 bytes always encrypt.
            .unwrap_or_default();
        let mut out = Vec::with_capacity(WRAPPED_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The key wrapped for `entry`; `None` when it does not open under
    /// this cluster key (another key, or tampered with).
    pub fn unwrap(&self, entry: &str, wrapped: &[u8]) -> Option<RecordingKey> {
        if wrapped.len() != WRAPPED_LEN || &wrapped[..MAGIC.len()] != MAGIC {
            return None;
        }
        let (nonce, sealed) = wrapped[MAGIC.len()..].split_at(NONCE_LEN);
        let plain = Zeroizing::new(
            self.cipher()
                .decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &associated_data(entry),
                    },
                )
                .ok()?,
        );
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(plain.get(..KEY_LEN)?);
        Some(key)
    }
}

fn associated_data(entry: &str) -> Vec<u8> {
    let mut aad = b"srs:cluster-key:v1:".to_vec();
    aad.extend_from_slice(entry.as_bytes());
    aad
}

/// The recordings' keys in the KV bucket `<stream>-keys`: a shared
/// [`KeyStore`] (see the crate docs, "Content and keys").
pub struct ClusterKeys {
    runtime: Arc<OwnRuntime>,
    kv: kv::Store,
    key: Arc<ClusterKey>,
    timeout: Duration,
}

fn seal_error(error: StoreError) -> SealError {
    match error {
        StoreError::Unavailable(why) => SealError::Unavailable(why),
        StoreError::Refused(why) => SealError::Store(why),
    }
}

fn not_opening(entry: &str) -> StoreError {
    StoreError::Refused(format!(
        "the key {entry} in the cluster's key bucket does not open under this server's cluster key: is --cluster-key-file the same file on every node?"
    ))
}

impl ClusterKeys {
    pub(crate) fn new(
        runtime: Arc<OwnRuntime>,
        kv: kv::Store,
        key: ClusterKey,
        timeout: Duration,
    ) -> Result<ClusterKeys, StoreError> {
        let keys = ClusterKeys {
            runtime,
            kv,
            key: Arc::new(key),
            timeout,
        };
        keys.check_cluster_key()?;
        Ok(keys)
    }

    /// The bucket's check entry opens under this server's cluster key
    /// (written by the first server to open the bucket).
    fn check_cluster_key(&self) -> Result<(), StoreError> {
        let mut check = Zeroizing::new([0u8; KEY_LEN]);
        check.copy_from_slice(b"srs cluster key check, version 1");
        let created = self.create_entry(CHECK_ENTRY, &check)?;
        match created {
            Created::Stored(_) | Created::Found(_) => Ok(()),
            Created::Destroyed => Err(StoreError::Refused(format!(
                "the cluster's key bucket lost its `{CHECK_ENTRY}` entry: it was purged by hand"
            ))),
        }
    }

    /// Stores `key` wrapped as `entry` unless the entry has a value or a
    /// purge marker: what it holds then.
    fn create_entry(&self, entry: &str, key: &RecordingKey) -> Result<Created, StoreError> {
        let (kv, cluster_key) = (self.kv.clone(), self.key.clone());
        let (entry, key) = (entry.to_owned(), key.clone());
        let timeout = self.timeout;
        self.runtime.run(async move {
            let wrapped = cluster_key.wrap(&entry, &key);
            for _ in 0..CREATE_ATTEMPTS {
                // Revision 0: only where the subject holds no message, not
                // even a purge marker, so a destroyed key never comes back.
                match kv.update(&entry, wrapped.clone().into(), 0).await {
                    Ok(_) => return Ok(Created::Stored(key)),
                    Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => {}
                    Err(e) => return Err(unavailable(format!("storing key {entry}: {e}"))),
                }
                match read_entry(&kv, &entry).await? {
                    Some(Stored::Wrapped(found)) => {
                        let key = cluster_key
                            .unwrap(&entry, &found)
                            .ok_or_else(|| not_opening(&entry))?;
                        return Ok(Created::Found(key));
                    }
                    Some(Stored::Destroyed) => return Ok(Created::Destroyed),
                    // A replica behind the one that refused: ask again.
                    None => tokio::time::sleep(timeout / CREATE_ATTEMPTS as u32).await,
                }
            }
            Err(unavailable(format!(
                "key {entry} is neither stored nor readable"
            )))
        })
    }

    /// The wrapped bytes the bucket holds for a recording now (tests).
    pub fn wrapped(&self, recording_id: Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        let kv = self.kv.clone();
        self.runtime.run(async move {
            Ok(match read_entry(&kv, &recording_id.to_string()).await? {
                Some(Stored::Wrapped(bytes)) => Some(bytes),
                _ => None,
            })
        })
    }
}

/// What an entry holds.
enum Stored {
    Wrapped(Vec<u8>),
    /// A delete or purge marker: the key was destroyed.
    Destroyed,
}

enum Created {
    Stored(RecordingKey),
    Found(RecordingKey),
    Destroyed,
}

async fn read_entry(kv: &kv::Store, entry: &str) -> Result<Option<Stored>, StoreError> {
    let found = kv
        .entry(entry)
        .await
        .map_err(|e| unavailable(format!("reading key {entry}: {e}")))?;
    Ok(found.map(|found| match found.operation {
        Operation::Put => Stored::Wrapped(found.value.to_vec()),
        Operation::Delete | Operation::Purge => Stored::Destroyed,
    }))
}

impl KeyStore for ClusterKeys {
    fn get(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError> {
        let (kv, cluster_key) = (self.kv.clone(), self.key.clone());
        let entry = recording_id.to_string();
        self.runtime
            .run(async move {
                match read_entry(&kv, &entry).await? {
                    Some(Stored::Wrapped(wrapped)) => cluster_key
                        .unwrap(&entry, &wrapped)
                        .map(Some)
                        .ok_or_else(|| not_opening(&entry)),
                    Some(Stored::Destroyed) | None => Ok(None),
                }
            })
            .map_err(seal_error)
    }

    fn create(&self, recording_id: Uuid, key: &RecordingKey) -> Result<RecordingKey, SealError> {
        match self
            .create_entry(&recording_id.to_string(), key)
            .map_err(seal_error)?
        {
            Created::Stored(key) | Created::Found(key) => Ok(key),
            Created::Destroyed => Err(SealError::NoKey(recording_id)),
        }
    }

    /// A KV purge: the entry's earlier values are removed from the
    /// stream, and its purge marker stays (so no server creates a key for
    /// the recording again).
    fn destroy(&self, recording_id: Uuid) -> Result<(), SealError> {
        let kv = self.kv.clone();
        let entry = recording_id.to_string();
        self.runtime
            .run(async move {
                kv.purge(&entry)
                    .await
                    .map_err(|e| unavailable(format!("purging key {entry}: {e}")))
            })
            .map_err(seal_error)
    }

    fn shared(&self) -> bool {
        true
    }

    /// Watches the bucket for purges and deletes (from now on, resumed
    /// after the last seen revision when the watch breaks).
    fn watch_destroyed(&self, destroyed: Box<dyn Fn(Uuid) + Send + Sync>) {
        let kv = self.kv.clone();
        let destroyed: Arc<dyn Fn(Uuid) + Send + Sync> = Arc::from(destroyed);
        self.runtime.spawn(async move {
            let mut next: Option<u64> = None;
            loop {
                let watch = match next {
                    Some(revision) => kv.watch_all_from_revision(revision).await,
                    None => kv.watch_all().await,
                };
                let mut watch = match watch {
                    Ok(watch) => watch,
                    Err(e) => {
                        tracing::warn!(error = %e, "watching the cluster's key bucket; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                while let Some(entry) = watch.next().await {
                    let entry = match entry {
                        Ok(entry) => entry,
                        Err(e) => {
                            tracing::warn!(error = %e, "watching the cluster's key bucket; resuming");
                            break;
                        }
                    };
                    next = Some(entry.revision + 1);
                    if matches!(entry.operation, Operation::Delete | Operation::Purge) {
                        if let Ok(recording_id) = entry.key.parse::<Uuid>() {
                            // The ring takes its locks: never on this
                            // runtime's one worker, which its own
                            // requests need.
                            let destroyed = destroyed.clone();
                            let _ = tokio::task::spawn_blocking(move || destroyed(recording_id))
                                .await;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    fn describe(&self) -> String {
        format!("JetStream KV {}", self.kv.name)
    }
}
