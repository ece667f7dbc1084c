//! Sealing what is recorded inside a session under its recording's key,
//! so that destroying the key (crypto-shredding) makes it unreadable
//! wherever it was stored: in the log, in read models, in copies of them.
//!
//! # Keys
//!
//! A [`KeyRing`] holds one key per recording, the same key files the
//! content store seals chunks with:
//!
//! ```text
//! <data>/content/keys/<recording>.key   32 random bytes, mode 0600
//! ```
//!
//! A key is created when the recording starts (`startRecording`, before its
//! `RecordingStarted` is appended), written to a temporary file (0600),
//! synced, renamed into place and its directory synced. Sealing afterwards
//! only loads it (a recording started by an earlier version, which made
//! keys with the first content chunk only, gets its key with its first
//! sealed event, while the aggregate still has it live). [`KeyRing::shred`] overwrites the file with zeros, syncs
//! it, unlinks it and syncs the directory; a zeroed file left by an
//! interrupted shredding counts as no key. A recording shredded by this
//! ring never gets a key again from it ([`KeyRing::create`] refuses), so a
//! command racing the deletion cannot bring a destroyed key back. Keys
//! never enter the log nor sled: sled keeps superseded values in its
//! segment files, so a key stored there could outlive its deletion.
//!
//! Loaded keys are cached in memory (at most [`CACHE_CAPACITY`], the
//! oldest evicted first), in buffers zeroed when evicted or dropped;
//! shredding evicts the recording's key before it destroys the file.
//!
//! # Where keys are stored
//!
//! The ring keeps its keys in a [`KeyStore`], which only gets, creates
//! and destroys the 32 bytes of one recording: the key files above
//! ([`KeyRing::open_dir`], the default), memory ([`KeyRing::in_memory`]),
//! or a store that several servers share ([`KeyRing::with_store`]; the
//! JetStream one is `srs_log_jetstream::ClusterKeys`). Caching, what a
//! ring shredded, and sealing stay here, above the store. A shared store
//! creates a key only where the recording has none and was never
//! destroyed (two servers starting one recording agree on one key), the
//! ring remembers no absent key from it (another server may create it),
//! and it tells the ring of keys destroyed through other servers
//! ([`KeyStore::watch_destroyed`]), which the ring then treats as its own
//! shreddings.
//!
//! # Sealed values
//!
//! A [`Sealed`] value is XChaCha20-Poly1305 under a subkey of the
//! recording's key (SHA-256 of a label and the key: the content store's
//! ChaCha20-Poly1305 chunks and sealed values never share a key), with a
//! fresh random 192-bit nonce, and as associated data the recording id,
//! the id of the event that carries it and the field ([`Field`]): a sealed
//! value copied into another recording, event or field does not open.
//!
//! [`KeyRing::open`] answers `Ok(None)` when the recording's key is gone:
//! the value is shredded, which every read path shows as such (never an
//! error, never old text). A value that does not open under a key that is
//! there (tampered, or moved) is an error.
//!
//! # What is sealed (see `model::event`)
//!
//! The whole data of every session event (window titles, URLs, paths,
//! clipboard and asciicast text, registry keys, custom data), and the
//! subject of every detection. What stays plain is what the audit record
//! and the read models need: ids, times, offsets, event types, the site,
//! server, user and host, and of the data only [`PlainFacts`]: the
//! application an `APP_*` event names (applications are attributes of the
//! session, listed and searched in the catalogue) and an idle spell's
//! seconds (a data point). Sizes and performance numbers stay sealed: no
//! read model needs them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::model::{DomainEvent, SessionEvent, SessionEventData};

/// Bytes of a recording key.
pub const KEY_LEN: usize = 32;
/// Bytes of a [`Sealed`] nonce (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;
/// The most keys a [`KeyRing`] keeps loaded.
pub const CACHE_CAPACITY: usize = 1_024;
/// What read paths show in place of a value whose key is destroyed.
pub const SHREDDED: &str = "[shredded]";

/// A recording key, zeroed when dropped.
pub type RecordingKey = Zeroizing<[u8; KEY_LEN]>;

/// A value sealed under a recording's key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    pub nonce: [u8; NONCE_LEN],
    /// The ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

/// Which field a sealed value is: part of its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    /// A session event's [`SessionEventData`] (bincode).
    SessionEventData,
    /// A detection's subject (UTF-8).
    DetectionSubject,
}

impl Field {
    fn tag(self) -> u8 {
        match self {
            Field::SessionEventData => 1,
            Field::DetectionSubject => 2,
        }
    }
}

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("key store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The recording's key is destroyed (it was deleted), or it never had one.
    #[error("the key of recording {0} is destroyed")]
    NoKey(Uuid),
    /// A sealed value does not open under its recording's key.
    #[error("a sealed value of recording {0} does not open: tampered with or moved")]
    Corrupt(Uuid),
    #[error("sealing failed: {0}")]
    Encode(String),
    /// A ring opened with [`KeyRing::read_only`] neither creates nor shreds.
    #[error("this key ring is read-only")]
    ReadOnly,
    /// A shared key store cannot be reached now (a cluster without a
    /// quorum, a timeout): a temporary condition.
    #[error("the key store is unavailable: {0}")]
    Unavailable(String),
    /// A shared key store holds a key this server cannot open (another
    /// cluster key), or something that is not a key.
    #[error("the key store: {0}")]
    Store(String),
}

impl SealError {
    /// Whether the file system refused to store (full, over quota,
    /// read-only): a temporary condition, not a bug.
    pub fn is_unavailable(&self) -> bool {
        const ENOSPC: i32 = 28;
        const EROFS: i32 = 30;
        const EDQUOT: i32 = 122;
        match self {
            SealError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(ENOSPC | EROFS | EDQUOT))
                    || matches!(
                        source.kind(),
                        ErrorKind::StorageFull | ErrorKind::ReadOnlyFilesystem
                    )
            }
            SealError::Unavailable(_) => true,
            _ => false,
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SealError + '_ {
    move |source| SealError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Where a [`KeyRing`] keeps its keys (see the module docs): gets,
/// creates and destroys the 32 bytes of one recording, durably. The ring
/// above it caches, remembers its shreddings and seals.
pub trait KeyStore: Send + Sync {
    /// The recording's key, `None` when it has none (never had one, or
    /// it was destroyed).
    fn get(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError>;

    /// Stores `key` as the recording's key, durably, when it has none,
    /// and answers the key it has: `key`, or the one another handle
    /// created first. [`SealError::NoKey`] when the store knows that the
    /// recording's key was destroyed.
    fn create(&self, recording_id: Uuid, key: &RecordingKey) -> Result<RecordingKey, SealError>;

    /// Destroys the recording's key for good: no copy of it is left in
    /// the store. Idempotent.
    fn destroy(&self, recording_id: Uuid) -> Result<(), SealError>;

    /// Whether other handles (other servers) create and destroy keys in
    /// this store: the ring then remembers no absent key, and learns of
    /// their destructions through [`KeyStore::watch_destroyed`].
    fn shared(&self) -> bool {
        false
    }

    /// From now on, calls `destroyed` with each recording whose key
    /// another handle destroys (only a [`KeyStore::shared`] store does).
    fn watch_destroyed(&self, destroyed: Box<dyn Fn(Uuid) + Send + Sync>) {
        let _ = destroyed;
    }

    /// What the store is, for `Debug`.
    fn describe(&self) -> String;
}

/// Key files in a directory (see the module docs).
struct DirKeys {
    dir: PathBuf,
    writable: bool,
}

impl DirKeys {
    fn key_path(&self, recording_id: Uuid) -> PathBuf {
        self.dir.join(format!("{recording_id}.key"))
    }
}

impl KeyStore for DirKeys {
    fn get(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError> {
        let path = self.key_path(recording_id);
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        file.read_exact(key.as_mut()).map_err(io(&path))?;
        if key.iter().all(|&b| b == 0) {
            // A shredding interrupted between overwrite and unlink.
            return Ok(None);
        }
        Ok(Some(key))
    }

    fn create(&self, recording_id: Uuid, key: &RecordingKey) -> Result<RecordingKey, SealError> {
        if !self.writable {
            return Err(SealError::ReadOnly);
        }
        // The ring creates one key at a time and only where it found none.
        write_durably(&self.key_path(recording_id), key.as_ref())?;
        Ok(key.clone())
    }

    /// Overwrites the file with zeros, syncs it, unlinks it and syncs the
    /// directory.
    fn destroy(&self, recording_id: Uuid) -> Result<(), SealError> {
        if !self.writable {
            return Err(SealError::ReadOnly);
        }
        let path = self.key_path(recording_id);
        match OpenOptions::new().write(true).open(&path) {
            Ok(mut file) => {
                let mut zeros = [0u8; KEY_LEN];
                file.write_all(&zeros).map_err(io(&path))?;
                file.sync_all().map_err(io(&path))?;
                zeros.zeroize();
                drop(file);
                fs::remove_file(&path).map_err(io(&path))?;
                sync_dir(&self.dir)
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
}

/// Keys in memory only (tests, benches).
#[derive(Default)]
struct MemoryKeys(Mutex<HashMap<Uuid, RecordingKey>>);

impl KeyStore for MemoryKeys {
    fn get(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError> {
        Ok(lock(&self.0).get(&recording_id).cloned())
    }

    fn create(&self, recording_id: Uuid, key: &RecordingKey) -> Result<RecordingKey, SealError> {
        Ok(lock(&self.0)
            .entry(recording_id)
            .or_insert_with(|| key.clone())
            .clone())
    }

    fn destroy(&self, recording_id: Uuid) -> Result<(), SealError> {
        lock(&self.0).remove(&recording_id);
        Ok(())
    }

    fn describe(&self) -> String {
        "memory".into()
    }
}

/// Loaded keys, oldest first out; `None` remembers a key that is not there.
#[derive(Default)]
struct Cache {
    keys: HashMap<Uuid, Option<RecordingKey>>,
    order: VecDeque<Uuid>,
}

impl Cache {
    fn put(&mut self, id: Uuid, key: Option<RecordingKey>) {
        if self.keys.insert(id, key).is_none() {
            self.order.push_back(id);
        }
        while self.order.len() > CACHE_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                // Dropping a `Zeroizing` key zeroes it.
                self.keys.remove(&old);
            }
        }
    }

    fn evict(&mut self, id: Uuid) {
        if self.keys.remove(&id).is_some() {
            self.order.retain(|k| *k != id);
        }
    }
}

/// The recordings' keys; see the module docs. Share it behind an `Arc`:
/// every user of one data directory must go through the same ring, so
/// that a shredding evicts the key from the one cache.
pub struct KeyRing {
    store: Arc<dyn KeyStore>,
    cache: Arc<Mutex<Cache>>,
    /// Recordings this ring shredded (or learnt were shredded through
    /// another server sharing its store): never given a key again, nor a
    /// destroyed key cached again (16 bytes per deletion since the start).
    /// Lock order: `shredded`, then `cache`.
    shredded: Arc<Mutex<HashSet<Uuid>>>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyRing({})", self.store.describe())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Entries are replaced whole: a panic cannot leave one half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeyRing {
    /// The ring over `dir` (`<data>/content/keys`), created (mode 0700).
    pub fn open_dir(dir: &Path) -> Result<KeyRing, SealError> {
        crate::log::create_private_dir(dir).map_err(io(dir))?;
        Ok(Self::with_store(Arc::new(DirKeys {
            dir: dir.to_owned(),
            writable: true,
        })))
    }

    /// The ring of data directory `data`, for tools that only read: it
    /// creates nothing (a missing directory holds no keys) and refuses to
    /// create or shred keys.
    pub fn read_only(data: &Path) -> KeyRing {
        Self::with_store(Arc::new(DirKeys {
            dir: Self::dir_of(data),
            writable: false,
        }))
    }

    /// Where the keys of data directory `data` are.
    pub fn dir_of(data: &Path) -> PathBuf {
        data.join("content").join("keys")
    }

    /// A ring that keeps its keys in memory only.
    pub fn in_memory() -> KeyRing {
        Self::with_store(Arc::new(MemoryKeys::default()))
    }

    /// The ring over `store` (see the module docs). A shared store's
    /// destructions through other handles count as this ring's own
    /// shreddings from when it is called on.
    pub fn with_store(store: Arc<dyn KeyStore>) -> KeyRing {
        let ring = KeyRing {
            store,
            cache: Arc::new(Mutex::new(Cache::default())),
            shredded: Arc::new(Mutex::new(HashSet::new())),
        };
        if ring.store.shared() {
            let (shredded, cache) = (ring.shredded.clone(), ring.cache.clone());
            ring.store.watch_destroyed(Box::new(move |recording_id| {
                let mut shredded = lock(&shredded);
                shredded.insert(recording_id);
                lock(&cache).evict(recording_id);
            }));
        }
        ring
    }

    /// The recording's key, `None` when it has none (never had, or shredded).
    pub fn key(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError> {
        if let Some(cached) = lock(&self.cache).keys.get(&recording_id) {
            return Ok(cached.clone());
        }
        let key = self.store.get(recording_id)?;
        // A shredding may have run since the key was read: the key it
        // destroyed must not enter the cache after its eviction. Checked
        // and cached under the lock shredding takes first.
        let shredded = lock(&self.shredded);
        if shredded.contains(&recording_id) {
            return Ok(None);
        }
        // Another server may create a key the shared store lacks now.
        if key.is_some() || !self.store.shared() {
            lock(&self.cache).put(recording_id, key.clone());
        }
        drop(shredded);
        Ok(key)
    }

    /// Whether this ring shredded the recording's key, or learnt that
    /// another server sharing its store did (since this ring was opened).
    pub fn was_shredded(&self, recording_id: Uuid) -> bool {
        lock(&self.shredded).contains(&recording_id)
    }

    /// The recording's key as its store holds it now, past this ring's
    /// cache (a backup copies what is stored, under the recording's
    /// content lock); `None` when it has none.
    pub fn stored_key(&self, recording_id: Uuid) -> Result<Option<RecordingKey>, SealError> {
        self.store.get(recording_id)
    }

    /// Whether the recording has a key.
    pub fn has_key(&self, recording_id: Uuid) -> bool {
        matches!(self.key(recording_id), Ok(Some(_)))
    }

    /// The recording's key, created (durably) when it has none. Refused
    /// ([`SealError::NoKey`]) for a recording this ring shredded, or whose
    /// key the store knows was destroyed.
    pub fn create(&self, recording_id: Uuid) -> Result<RecordingKey, SealError> {
        // One creation at a time: two concurrent first uses agree on one key.
        let shredded = lock(&self.shredded);
        if shredded.contains(&recording_id) {
            return Err(SealError::NoKey(recording_id));
        }
        let cached = lock(&self.cache).keys.get(&recording_id).cloned();
        let existing = match cached {
            Some(cached) => cached,
            None => self.store.get(recording_id)?,
        };
        if let Some(key) = existing {
            lock(&self.cache).put(recording_id, Some(key.clone()));
            return Ok(key);
        }
        let mut fresh = Zeroizing::new([0u8; KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(fresh.as_mut());
        let key = self.store.create(recording_id, &fresh)?;
        lock(&self.cache).put(recording_id, Some(key.clone()));
        drop(shredded);
        Ok(key)
    }

    /// Crypto-shredding: evicts the key and destroys it in the store (the
    /// key files: overwritten with zeros, synced, unlinked, the directory
    /// synced). Idempotent.
    pub fn shred(&self, recording_id: Uuid) -> Result<(), SealError> {
        {
            // Marked first: from here no creation and no cached read of
            // the key succeeds. Not held while the store destroys it (a
            // shared store's watch takes it when it sees the destruction).
            let mut shredded = lock(&self.shredded);
            shredded.insert(recording_id);
            lock(&self.cache).evict(recording_id);
        }
        self.store.destroy(recording_id)?;
        // A read racing the shredding may have cached the key again.
        lock(&self.cache).evict(recording_id);
        Ok(())
    }

    /// Seals `plain` as `field` of event `event_id` of the recording.
    /// [`SealError::NoKey`] when the recording has no key.
    pub fn seal(
        &self,
        recording_id: Uuid,
        event_id: Uuid,
        field: Field,
        plain: &[u8],
    ) -> Result<Sealed, SealError> {
        let key = self
            .key(recording_id)?
            .ok_or(SealError::NoKey(recording_id))?;
        seal_with(&key, recording_id, event_id, field, plain)
    }

    /// Opens a sealed value: `Ok(None)` when the recording's key is gone
    /// (the value is shredded); [`SealError::Corrupt`] when it does not
    /// open under the key that is there.
    pub fn open(
        &self,
        recording_id: Uuid,
        event_id: Uuid,
        field: Field,
        sealed: &Sealed,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, SealError> {
        let Some(key) = self.key(recording_id)? else {
            return Ok(None);
        };
        open_with(&key, recording_id, event_id, field, sealed).map(Some)
    }
}

/// The subkey sealed values use (never the content chunks' key itself).
fn value_key(key: &RecordingKey) -> Zeroizing<[u8; KEY_LEN]> {
    let mut hasher = Sha256::new();
    hasher.update(b"srs:seal:values:v1");
    hasher.update(key.as_ref());
    Zeroizing::new(hasher.finalize().into())
}

fn associated_data(recording_id: Uuid, event_id: Uuid, field: Field) -> [u8; 40] {
    let mut aad = [0u8; 40];
    aad[..7].copy_from_slice(b"srs:v1:");
    aad[7] = field.tag();
    aad[8..24].copy_from_slice(recording_id.as_bytes());
    aad[24..].copy_from_slice(event_id.as_bytes());
    aad
}

fn seal_with(
    key: &RecordingKey,
    recording_id: Uuid,
    event_id: Uuid,
    field: Field,
    plain: &[u8],
) -> Result<Sealed, SealError> {
    let subkey = value_key(key);
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&subkey[..]));
    let mut nonce = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut nonce);
    let ciphertext = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plain,
                aad: &associated_data(recording_id, event_id, field),
            },
        )
        .map_err(|_| SealError::Encode("encryption failed".into()))?;
    Ok(Sealed { nonce, ciphertext })
}

fn open_with(
    key: &RecordingKey,
    recording_id: Uuid,
    event_id: Uuid,
    field: Field,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    let subkey = value_key(key);
    let cipher = XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&subkey[..]));
    cipher
        .decrypt(
            XNonce::from_slice(&sealed.nonce),
            Payload {
                msg: &sealed.ciphertext,
                aad: &associated_data(recording_id, event_id, field),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| SealError::Corrupt(recording_id))
}

/// Writes `bytes` to a temporary file (mode 0600), syncs it, renames it
/// over `path` and syncs the directory. On failure the temporary file is
/// removed and `path` is untouched.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(io(&tmp))?;
        file.write_all(bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        fs::rename(&tmp, path).map_err(io(path))
    })();
    if let Err(e) = written {
        match fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(gone) if gone.kind() == ErrorKind::NotFound => {}
            Err(other) => {
                tracing::warn!(path = %tmp.display(), error = %other, "cannot remove a temporary file")
            }
        }
        return Err(e);
    }
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), SealError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

// ---- events ----------------------------------------------------------------

/// The stored form of an event: a session event becomes
/// [`DomainEvent::SessionEventSealed`], a detection
/// [`DomainEvent::EventDetectedSealed`]; every other event is stored as it
/// is. [`SealError::NoKey`] when the recording has no key.
pub fn seal_event(keys: &KeyRing, event: DomainEvent) -> Result<DomainEvent, SealError> {
    Ok(match event {
        DomainEvent::SessionEventRecorded {
            recording_id,
            site_id,
            event,
        } => {
            let plain = Zeroizing::new(
                crate::log::encode_payload(&event.data)
                    .map_err(|e| SealError::Encode(e.to_string()))?,
            );
            let facts = event.plain_facts();
            DomainEvent::SessionEventSealed {
                recording_id,
                site_id,
                event_id: event.event_id,
                event_type: event.event_type,
                offset_ms: event.offset_ms,
                facts,
                data: keys.seal(
                    recording_id,
                    event.event_id,
                    Field::SessionEventData,
                    &plain,
                )?,
            }
        }
        DomainEvent::EventDetected {
            detection_id,
            recording_id,
            site_id,
            server_id,
            user,
            host,
            event_id,
            event_type,
            severity,
            rule,
            policy_id,
            subject,
            at_offset_ms,
        } => DomainEvent::EventDetectedSealed {
            detection_id,
            recording_id,
            site_id,
            server_id,
            user,
            host,
            event_id,
            event_type,
            severity,
            rule,
            policy_id,
            subject: subject
                .map(|s| {
                    keys.seal(
                        recording_id,
                        detection_id,
                        Field::DetectionSubject,
                        s.as_bytes(),
                    )
                })
                .transpose()?,
            at_offset_ms,
        },
        other => other,
    })
}

/// A sealed (or legacy plain) value as a read path shows it.
#[derive(Clone, Debug, PartialEq)]
pub enum Revealed<T> {
    Plain(T),
    /// The recording was deleted and its key destroyed.
    Shredded,
}

impl<T> Revealed<T> {
    /// The value, `None` when shredded.
    pub fn plain(self) -> Option<T> {
        match self {
            Revealed::Plain(value) => Some(value),
            Revealed::Shredded => None,
        }
    }
}

/// A value that does not open under a key that is there is shown as
/// shredded too (and logged): the hash chain, which `verify` walks, is
/// what tells tampering apart.
fn opened(
    keys: &KeyRing,
    recording_id: Uuid,
    event_id: Uuid,
    field: Field,
    sealed: &Sealed,
) -> Option<Zeroizing<Vec<u8>>> {
    match keys.open(recording_id, event_id, field, sealed) {
        Ok(plain) => plain,
        Err(error) => {
            tracing::warn!(%error, recording = %recording_id, event = %event_id, "a sealed value does not open");
            None
        }
    }
}

/// The session event a stored event carries (legacy plain, or sealed),
/// with its data revealed: [`Revealed::Shredded`] once the recording is
/// `deleted` or its key gone.
pub fn session_event(
    keys: &KeyRing,
    event: &DomainEvent,
    deleted: bool,
) -> Option<(Uuid, Uuid, SessionEventShown)> {
    match event {
        DomainEvent::SessionEventRecorded {
            recording_id,
            site_id,
            event,
        } => Some((
            *recording_id,
            *site_id,
            SessionEventShown {
                event_id: event.event_id,
                event_type: event.event_type,
                offset_ms: event.offset_ms,
                data: if deleted {
                    Revealed::Shredded
                } else {
                    Revealed::Plain(event.data.clone())
                },
            },
        )),
        DomainEvent::SessionEventSealed {
            recording_id,
            site_id,
            event_id,
            event_type,
            offset_ms,
            data,
            ..
        } => {
            let data = if deleted {
                None
            } else {
                opened(
                    keys,
                    *recording_id,
                    *event_id,
                    Field::SessionEventData,
                    data,
                )
                .and_then(|plain| crate::log::decode_payload::<SessionEventData>(0, &plain).ok())
            };
            Some((
                *recording_id,
                *site_id,
                SessionEventShown {
                    event_id: *event_id,
                    event_type: *event_type,
                    offset_ms: *offset_ms,
                    data: data.map_or(Revealed::Shredded, Revealed::Plain),
                },
            ))
        }
        _ => None,
    }
}

/// A session event as read paths show it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionEventShown {
    pub event_id: Uuid,
    pub event_type: crate::model::SessionEventType,
    pub offset_ms: u64,
    pub data: Revealed<SessionEventData>,
}

impl SessionEventShown {
    /// The plain session event, when not shredded.
    pub fn into_plain(self) -> Option<SessionEvent> {
        let data = self.data.plain()?;
        Some(SessionEvent {
            event_id: self.event_id,
            event_type: self.event_type,
            offset_ms: self.offset_ms,
            data,
        })
    }
}

/// A detection's subject (sealed, or legacy plain) as read paths show it:
/// `None` when it has none.
pub fn detection_subject(
    keys: &KeyRing,
    recording_id: Uuid,
    detection_id: Uuid,
    plain: Option<&str>,
    sealed: Option<&Sealed>,
    deleted: bool,
) -> Option<Revealed<String>> {
    if let Some(plain) = plain {
        return Some(if deleted {
            Revealed::Shredded
        } else {
            Revealed::Plain(plain.to_owned())
        });
    }
    let sealed = sealed?;
    if deleted {
        return Some(Revealed::Shredded);
    }
    Some(
        opened(
            keys,
            recording_id,
            detection_id,
            Field::DetectionSubject,
            sealed,
        )
        .and_then(|plain| String::from_utf8(plain.to_vec()).ok())
        .map_or(Revealed::Shredded, Revealed::Plain),
    )
}

fn fields(json: &mut serde_json::Value) -> Option<&mut serde_json::Map<String, serde_json::Value>> {
    json.as_object_mut()?.values_mut().next()?.as_object_mut()
}

/// An event's payload as JSON the way history readers see it: the sealed
/// parts opened, or [`SHREDDED`] in their place once the recording is
/// `deleted` or its key gone (legacy plain events of a deleted recording
/// too). Every other event is its plain JSON.
pub fn shown_payload(keys: &KeyRing, event: &DomainEvent, deleted: bool) -> serde_json::Value {
    use serde_json::Value;
    let mut json = serde_json::to_value(event).unwrap_or(Value::Null);
    let shredded = || Value::String(SHREDDED.to_owned());
    match event {
        DomainEvent::SessionEventRecorded { .. } if deleted => {
            if let Some(inner) = fields(&mut json)
                .and_then(|f| f.get_mut("event"))
                .and_then(Value::as_object_mut)
            {
                inner.insert("data".into(), shredded());
            }
        }
        DomainEvent::SessionEventSealed { .. } => {
            let data = session_event(keys, event, deleted)
                .and_then(|(_, _, shown)| shown.data.plain())
                .and_then(|data| serde_json::to_value(data).ok())
                .unwrap_or_else(shredded);
            if let Some(f) = fields(&mut json) {
                f.insert("data".into(), data);
            }
        }
        DomainEvent::EventDetected {
            subject: Some(_), ..
        } if deleted => {
            if let Some(f) = fields(&mut json) {
                f.insert("subject".into(), shredded());
            }
        }
        DomainEvent::EventDetectedSealed {
            recording_id,
            detection_id,
            subject: Some(sealed),
            ..
        } => {
            let shown = detection_subject(
                keys,
                *recording_id,
                *detection_id,
                None,
                Some(sealed),
                deleted,
            );
            let value = match shown {
                Some(Revealed::Plain(s)) => Value::String(s),
                _ => shredded(),
            };
            if let Some(f) = fields(&mut json) {
                f.insert("subject".into(), value);
            }
        }
        _ => {}
    }
    json
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SessionEventType;

    fn web(url: &str) -> SessionEvent {
        SessionEvent {
            event_id: Uuid::now_v7(),
            event_type: SessionEventType::WebBrowsing,
            offset_ms: 5,
            data: SessionEventData::Web {
                url: url.into(),
                browser: None,
                title: Some("the title".into()),
            },
        }
    }

    #[test]
    fn values_seal_and_open_under_the_recording_key() {
        let keys = KeyRing::in_memory();
        let (rec, ev) = (Uuid::now_v7(), Uuid::now_v7());
        keys.create(rec).unwrap();
        let sealed = keys
            .seal(rec, ev, Field::SessionEventData, b"secret-marker")
            .unwrap();
        assert!(!sealed
            .ciphertext
            .windows(6)
            .any(|w| w == b"secret".as_slice()));
        let plain = keys
            .open(rec, ev, Field::SessionEventData, &sealed)
            .unwrap()
            .unwrap();
        assert_eq!(plain.as_slice(), b"secret-marker");
        let again = keys
            .seal(rec, ev, Field::SessionEventData, b"secret-marker")
            .unwrap();
        assert_ne!(again.nonce, sealed.nonce, "a fresh nonce each time");
    }

    #[test]
    fn a_value_moved_to_another_event_field_or_recording_does_not_open() {
        let keys = KeyRing::in_memory();
        let (rec, other, ev) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        keys.create(rec).unwrap();
        keys.create(other).unwrap();
        let sealed = keys.seal(rec, ev, Field::DetectionSubject, b"x").unwrap();
        assert!(matches!(
            keys.open(rec, Uuid::now_v7(), Field::DetectionSubject, &sealed),
            Err(SealError::Corrupt(_))
        ));
        assert!(matches!(
            keys.open(rec, ev, Field::SessionEventData, &sealed),
            Err(SealError::Corrupt(_))
        ));
        assert!(matches!(
            keys.open(other, ev, Field::DetectionSubject, &sealed),
            Err(SealError::Corrupt(_))
        ));
        let mut flipped = sealed.clone();
        flipped.ciphertext[0] ^= 1;
        assert!(matches!(
            keys.open(rec, ev, Field::DetectionSubject, &flipped),
            Err(SealError::Corrupt(_))
        ));
    }

    #[test]
    fn a_shredded_recording_opens_as_shredded_and_never_gets_a_key_again() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::open_dir(dir.path()).unwrap();
        let rec = Uuid::now_v7();
        keys.create(rec).unwrap();
        let event = web("https://example.com/secret-path");
        let stored = seal_event(
            &keys,
            DomainEvent::SessionEventRecorded {
                recording_id: rec,
                site_id: Uuid::nil(),
                event: event.clone(),
            },
        )
        .unwrap();
        let shown = session_event(&keys, &stored, false).unwrap().2;
        assert_eq!(shown.into_plain(), Some(event.clone()));
        let key_file = dir.path().join(format!("{rec}.key"));
        let key_bytes = fs::read(&key_file).unwrap();
        keys.shred(rec).unwrap();
        keys.shred(rec).unwrap();
        assert!(!key_file.exists());
        // A key read just before the shredding (put back here by hand)
        // never enters this ring's cache again.
        fs::write(&key_file, &key_bytes).unwrap();
        assert!(!keys.has_key(rec));
        assert!(KeyRing::open_dir(dir.path()).unwrap().has_key(rec));
        fs::remove_file(&key_file).unwrap();
        assert_eq!(
            session_event(&keys, &stored, false).unwrap().2.data,
            Revealed::Shredded
        );
        assert!(matches!(keys.create(rec), Err(SealError::NoKey(_))));
        assert!(matches!(
            keys.seal(rec, event.event_id, Field::SessionEventData, b"x"),
            Err(SealError::NoKey(_))
        ));
        let json = shown_payload(&keys, &stored, false).to_string();
        assert!(json.contains(SHREDDED), "{json}");
        assert!(!json.contains("secret-path"), "{json}");
        // A fresh ring over the same files (a restart) finds no key either.
        let reopened = KeyRing::open_dir(dir.path()).unwrap();
        assert!(!reopened.has_key(rec));
    }

    #[test]
    fn a_zeroed_key_file_is_no_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::open_dir(dir.path()).unwrap();
        let rec = Uuid::now_v7();
        keys.create(rec).unwrap();
        fs::write(dir.path().join(format!("{rec}.key")), [0u8; KEY_LEN]).unwrap();
        assert!(!KeyRing::open_dir(dir.path()).unwrap().has_key(rec));
    }

    #[test]
    fn key_files_are_private_and_read_only_rings_write_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyRing::open_dir(&KeyRing::dir_of(dir.path())).unwrap();
        let rec = Uuid::now_v7();
        keys.create(rec).unwrap();
        let path = KeyRing::dir_of(dir.path()).join(format!("{rec}.key"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let reader = KeyRing::read_only(dir.path());
        assert!(reader.has_key(rec));
        assert!(reader.shred(rec).is_err());
        assert!(path.exists());
        assert!(reader.create(Uuid::now_v7()).is_err());
    }

    #[test]
    fn the_cache_is_bounded() {
        let keys = KeyRing::in_memory();
        for _ in 0..CACHE_CAPACITY + 10 {
            keys.create(Uuid::now_v7()).unwrap();
        }
        assert_eq!(lock(&keys.cache).keys.len(), CACHE_CAPACITY);
        assert_eq!(lock(&keys.cache).order.len(), CACHE_CAPACITY);
    }

    #[test]
    fn legacy_plain_events_of_a_deleted_recording_show_as_shredded() {
        let keys = KeyRing::in_memory();
        let event = DomainEvent::SessionEventRecorded {
            recording_id: Uuid::now_v7(),
            site_id: Uuid::nil(),
            event: web("https://legacy.example/marker"),
        };
        let live = shown_payload(&keys, &event, false).to_string();
        assert!(live.contains("marker"));
        let gone = shown_payload(&keys, &event, true).to_string();
        assert!(!gone.contains("marker"), "{gone}");
        assert!(gone.contains(SHREDDED));
    }
}
