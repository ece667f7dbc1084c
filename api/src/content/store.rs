//! [`ContentStore`]: encrypted chunks, sealed with the recordings' keys of
//! its [`KeyRing`] (`srs_domain::seal`, which owns the keys and their
//! shredding), kept in a [`ChunkStore`]: files under `<data>/content/`
//! (the default), or a JetStream object store shared by the servers of a
//! cluster (`srs_log_jetstream::ClusterContent`). Sealing, hashing, the
//! per-recording locks and the errors are the same whichever stores the
//! bytes. Blocking I/O: async callers use `spawn_blocking`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};
use srs_domain::seal::{KeyRing, RecordingKey, SealError};
use tokio::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// The largest chunk accepted, in bytes (8 MiB).
pub const MAX_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// The first bytes of every chunk file: the format, so a later one can
/// read older files.
const MAGIC: &[u8; 4] = b"SRC1";
const NONCE_LEN: usize = 12;
/// Per-recording locks, striped: two recordings rarely share one.
const LOCK_STRIPES: usize = 64;

/// Where a recording's chunks are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    Live,
    Archive,
}

impl Area {
    fn dir(self) -> &'static str {
        match self {
            Area::Live => "live",
            Area::Archive => "archive",
        }
    }
}

/// Why the content store failed.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("content store I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The recording's key is gone: its content was shredded.
    #[error("the content key of recording {0} is destroyed")]
    NoKey(Uuid),
    /// The chunk file is missing.
    #[error("chunk {seq} of recording {recording_id} is not in the content store")]
    Missing { recording_id: Uuid, seq: u64 },
    /// The file does not hash to what the log recorded, or does not decrypt.
    #[error("chunk {seq} of recording {recording_id} is corrupt: {why}")]
    Corrupt {
        recording_id: Uuid,
        seq: u64,
        why: &'static str,
    },
    /// A shared store cannot be reached now (a cluster without a quorum,
    /// a timeout): a temporary condition.
    #[error("the content store is unavailable: {0}")]
    Unavailable(String),
}

impl ContentError {
    /// Whether the file system refused to store (full, over quota,
    /// read-only): a temporary condition answered `UNAVAILABLE`, not a bug.
    pub fn is_unavailable(&self) -> bool {
        const ENOSPC: i32 = 28;
        const EROFS: i32 = 30;
        const EDQUOT: i32 = 122;
        match self {
            ContentError::Io { source, .. } => {
                matches!(source.raw_os_error(), Some(ENOSPC | EROFS | EDQUOT))
                    || matches!(
                        source.kind(),
                        ErrorKind::StorageFull | ErrorKind::ReadOnlyFilesystem
                    )
            }
            ContentError::Unavailable(_) => true,
            _ => false,
        }
    }
}

fn key_error(error: SealError) -> ContentError {
    match error {
        SealError::Io { path, source } => ContentError::Io { path, source },
        SealError::NoKey(id) => ContentError::NoKey(id),
        SealError::Unavailable(why) => ContentError::Unavailable(why),
        other => ContentError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A chunk as written: what the log records of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrittenChunk {
    /// The plain size.
    pub size: u64,
    /// Hex SHA-256 of the stored (encrypted) file.
    pub sha256: String,
}

/// Where a [`ContentStore`] keeps its chunks, sealed already: puts, gets
/// and deletes the bytes of one chunk by recording and seq. Sealing,
/// hashing and locking are the [`ContentStore`]'s, above it.
pub trait ChunkStore: Send + Sync {
    /// Stores chunk `seq` durably (in the live area), replacing an
    /// earlier one of the same seq.
    fn put(&self, recording_id: Uuid, seq: u64, sealed: &[u8]) -> Result<(), ContentError>;

    /// Chunk `seq`'s bytes, `None` when it is not stored (in any area).
    fn get(&self, recording_id: Uuid, seq: u64) -> Result<Option<Vec<u8>>, ContentError>;

    /// Whether chunk `seq` is stored (in any area).
    fn contains(&self, recording_id: Uuid, seq: u64) -> Result<bool, ContentError>;

    /// Removes chunk `seq` from the live area. Missing is fine.
    fn delete(&self, recording_id: Uuid, seq: u64) -> Result<(), ContentError>;

    /// Removes every chunk of the recording. Missing is fine.
    fn delete_recording(&self, recording_id: Uuid) -> Result<(), ContentError>;

    /// Moves the recording's chunks to `to` (archive or back), where the
    /// store has areas. Idempotent.
    fn move_to(&self, recording_id: Uuid, to: Area) -> Result<(), ContentError>;

    /// The chunk files of a store in the data directory (backups read
    /// them, restores write them); `None` for a store elsewhere.
    fn files(&self) -> Option<&FileChunks> {
        None
    }

    /// What the store is, for `Debug`.
    fn describe(&self) -> String;
}

/// Chunk files under `<data>/content/{live,archive}/<recording>/` (see the
/// module docs of `content`).
#[derive(Debug)]
pub struct FileChunks {
    root: PathBuf,
}

impl FileChunks {
    /// The chunk files under `root` (`<data>/content`), its areas created
    /// (mode 0700).
    pub fn open(root: &Path) -> Result<FileChunks, ContentError> {
        // Mode 0700: the keys and the chunks are their owner's only.
        for dir in [Area::Live.dir(), Area::Archive.dir()] {
            let path = root.join(dir);
            srs_domain::log::create_private_dir(&path).map_err(io(&path))?;
        }
        Ok(FileChunks {
            root: root.to_owned(),
        })
    }

    fn recording_dir(&self, area: Area, recording_id: Uuid) -> PathBuf {
        self.root.join(area.dir()).join(recording_id.to_string())
    }

    fn chunk_name(seq: u64) -> String {
        format!("{seq:020}.chunk")
    }

    /// Where the recording's chunks are, if any were written.
    pub fn area(&self, recording_id: Uuid) -> Option<Area> {
        [Area::Live, Area::Archive]
            .into_iter()
            .find(|&area| self.recording_dir(area, recording_id).is_dir())
    }

    /// The file of chunk `seq` and its area, when it is on disk. Callers
    /// that must not race an archive move or a shred hold
    /// [`ContentStore::lock`].
    pub fn chunk_file(&self, recording_id: Uuid, seq: u64) -> Option<(Area, PathBuf)> {
        [Area::Live, Area::Archive].into_iter().find_map(|area| {
            let path = self.chunk_path(area, recording_id, seq);
            path.is_file().then_some((area, path))
        })
    }

    /// Where chunk `seq` of a recording is stored in `area` (`srs restore`
    /// writes a backup's chunks there).
    pub fn chunk_path(&self, area: Area, recording_id: Uuid, seq: u64) -> PathBuf {
        self.recording_dir(area, recording_id)
            .join(Self::chunk_name(seq))
    }
}

impl ChunkStore for FileChunks {
    /// Written to a temporary file, synced, renamed into place and its
    /// directory synced. An earlier file for the seq (an orphan of a
    /// crash before its event was appended) is replaced.
    fn put(&self, recording_id: Uuid, seq: u64, sealed: &[u8]) -> Result<(), ContentError> {
        let dir = self.recording_dir(Area::Live, recording_id);
        if !dir.is_dir() {
            srs_domain::log::create_private_dir(&dir).map_err(io(&dir))?;
            sync_dir(&self.root.join(Area::Live.dir()))?;
        }
        write_durably(&dir.join(Self::chunk_name(seq)), sealed)
    }

    fn get(&self, recording_id: Uuid, seq: u64) -> Result<Option<Vec<u8>>, ContentError> {
        let Some(area) = self.area(recording_id) else {
            return Ok(None);
        };
        let path = self.chunk_path(area, recording_id, seq);
        match fs::read(&path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn contains(&self, recording_id: Uuid, seq: u64) -> Result<bool, ContentError> {
        Ok(self.chunk_file(recording_id, seq).is_some())
    }

    fn delete(&self, recording_id: Uuid, seq: u64) -> Result<(), ContentError> {
        let path = self.chunk_path(Area::Live, recording_id, seq);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    fn delete_recording(&self, recording_id: Uuid) -> Result<(), ContentError> {
        for area in [Area::Live, Area::Archive] {
            let dir = self.recording_dir(area, recording_id);
            match fs::remove_dir_all(&dir) {
                Ok(()) => sync_dir(&self.root.join(area.dir()))?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io(&dir)(e)),
            }
        }
        Ok(())
    }

    fn move_to(&self, recording_id: Uuid, to: Area) -> Result<(), ContentError> {
        let from = match to {
            Area::Live => Area::Archive,
            Area::Archive => Area::Live,
        };
        let (src, dst) = (
            self.recording_dir(from, recording_id),
            self.recording_dir(to, recording_id),
        );
        if !src.is_dir() {
            return Ok(());
        }
        if dst.is_dir() {
            // Both exist only after chunks were written meanwhile: merge.
            for entry in fs::read_dir(&src).map_err(io(&src))? {
                let entry = entry.map_err(io(&src))?;
                let target = dst.join(entry.file_name());
                fs::rename(entry.path(), &target).map_err(io(&target))?;
            }
            fs::remove_dir(&src).map_err(io(&src))?;
        } else {
            fs::rename(&src, &dst).map_err(io(&dst))?;
        }
        sync_dir(&self.root.join(from.dir()))?;
        sync_dir(&self.root.join(to.dir()))
    }

    fn files(&self) -> Option<&FileChunks> {
        Some(self)
    }

    fn describe(&self) -> String {
        self.root.display().to_string()
    }
}

/// Encrypted content beside the log; see the module docs of `content`.
pub struct ContentStore {
    root: PathBuf,
    chunks: Arc<dyn ChunkStore>,
    keys: Arc<KeyRing>,
    locks: Vec<Mutex<()>>,
}

impl std::fmt::Debug for ContentStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContentStore")
            .field("chunks", &self.chunks.describe())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl ContentStore {
    /// Opens (creating) the content store under `data/content`: chunk
    /// files and key files.
    pub fn open(data: &Path) -> Result<Self, ContentError> {
        let root = data.join("content");
        let chunks = FileChunks::open(&root)?;
        let keys = KeyRing::open_dir(&KeyRing::dir_of(data)).map_err(key_error)?;
        Ok(Self::with_stores(data, Arc::new(chunks), keys))
    }

    /// The content store of data directory `data` over `chunks` and the
    /// ring `keys` (a cluster's shared stores).
    pub fn with_stores(data: &Path, chunks: Arc<dyn ChunkStore>, keys: KeyRing) -> Self {
        ContentStore {
            root: data.join("content"),
            chunks,
            keys: Arc::new(keys),
            locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// The recordings' keys (shared with the service, which seals session
    /// events under the same keys: one ring per data directory).
    pub fn keys(&self) -> &Arc<KeyRing> {
        &self.keys
    }

    /// The root directory (`<data>/content`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The chunk files, when the chunks are in the data directory.
    pub fn files(&self) -> Option<&FileChunks> {
        self.chunks.files()
    }

    /// Chunk `seq` as stored (sealed), with the area it is in (informative:
    /// a store without areas says live); `None` when it is not stored.
    pub fn stored_chunk(
        &self,
        recording_id: Uuid,
        seq: u64,
    ) -> Result<Option<(Area, Vec<u8>)>, ContentError> {
        let area = self
            .files()
            .and_then(|files| files.area(recording_id))
            .unwrap_or(Area::Live);
        Ok(self
            .chunks
            .get(recording_id, seq)?
            .map(|bytes| (area, bytes)))
    }

    /// Serialises writes and moves of one recording's content.
    pub async fn lock(&self, recording_id: Uuid) -> MutexGuard<'_, ()> {
        let stripe = (recording_id.as_u128() % LOCK_STRIPES as u128) as usize;
        self.locks[stripe].lock().await
    }

    /// Whether the recording's key exists.
    pub fn has_key(&self, recording_id: Uuid) -> bool {
        self.keys.has_key(recording_id)
    }

    fn load_key(&self, recording_id: Uuid) -> Result<RecordingKey, ContentError> {
        self.keys
            .key(recording_id)
            .map_err(key_error)?
            .ok_or(ContentError::NoKey(recording_id))
    }

    /// The recording's key; created for a recording that started before
    /// keys were created at the start (the upload path checked that the
    /// recording is not deleted, and the ring never gives a recording it
    /// shredded a key again).
    fn key_or_create(&self, recording_id: Uuid) -> Result<RecordingKey, ContentError> {
        match self.keys.create(recording_id) {
            Ok(key) => Ok(key),
            Err(SealError::NoKey(id)) => Err(ContentError::NoKey(id)),
            Err(e) => Err(key_error(e)),
        }
    }

    /// Encrypts `plain` under the recording's key and writes it as chunk
    /// `seq` in the live area, durably (file and directory synced) before
    /// returning. An earlier file for the seq (an orphan of a crash before
    /// its event was appended) is replaced.
    pub fn write_chunk(
        &self,
        recording_id: Uuid,
        seq: u64,
        plain: &[u8],
    ) -> Result<WrittenChunk, ContentError> {
        let key = self.key_or_create(recording_id)?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        let aad = associated_data(recording_id, seq);
        let nonce = synthetic_nonce(&key, &aad, plain);
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .map_err(|_| ContentError::Corrupt {
                recording_id,
                seq,
                why: "encryption failed",
            })?;
        let mut file = Vec::with_capacity(MAGIC.len() + NONCE_LEN + sealed.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&sealed);
        self.chunks.put(recording_id, seq, &file)?;
        Ok(WrittenChunk {
            size: plain.len() as u64,
            sha256: hex::encode(Sha256::digest(&file)),
        })
    }

    /// Reads chunk `seq`, checks it against the hash the log holds
    /// (`sha256`) and decrypts it.
    pub fn read_chunk(
        &self,
        recording_id: Uuid,
        seq: u64,
        sha256: &str,
    ) -> Result<Vec<u8>, ContentError> {
        let key = self.load_key(recording_id)?;
        let file = self
            .chunks
            .get(recording_id, seq)?
            .ok_or(ContentError::Missing { recording_id, seq })?;
        let corrupt = |why| ContentError::Corrupt {
            recording_id,
            seq,
            why,
        };
        if hex::encode(Sha256::digest(&file)) != sha256 {
            return Err(corrupt("its hash differs from the log's"));
        }
        if file.len() < MAGIC.len() + NONCE_LEN || &file[..MAGIC.len()] != MAGIC {
            return Err(corrupt("unknown format"));
        }
        let (nonce, sealed) = file[MAGIC.len()..].split_at(NONCE_LEN);
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_ref()));
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(recording_id, seq),
                },
            )
            .map_err(|_| corrupt("it does not decrypt"))
    }

    /// Whether chunk `seq` is stored (live or archived). Callers that must
    /// not race an archive move or a shred hold [`ContentStore::lock`].
    pub fn has_chunk(&self, recording_id: Uuid, seq: u64) -> Result<bool, ContentError> {
        self.chunks.contains(recording_id, seq)
    }

    /// Removes chunk `seq` from the live area (an upload whose event was
    /// refused). Missing is fine.
    pub fn discard_chunk(&self, recording_id: Uuid, seq: u64) -> Result<(), ContentError> {
        self.chunks.delete(recording_id, seq)
    }

    /// Moves the recording's chunks to `to` (archive or back). Idempotent:
    /// content already there, or none at all, is left as it is.
    pub fn move_to(&self, recording_id: Uuid, to: Area) -> Result<(), ContentError> {
        self.chunks.move_to(recording_id, to)
    }

    /// Crypto-shredding: destroys the recording's key (the ring destroys
    /// it in its store: a key file is overwritten with zeros, synced,
    /// unlinked and its directory synced); then removes the chunks.
    /// Idempotent.
    pub fn shred(&self, recording_id: Uuid) -> Result<(), ContentError> {
        self.keys.shred(recording_id).map_err(key_error)?;
        self.chunks.delete_recording(recording_id)
    }
}

/// The nonce a chunk is sealed with: the same for the same key, recording,
/// seq and bytes (see the module docs, "On disk").
fn synthetic_nonce(key: &RecordingKey, aad: &[u8; 24], plain: &[u8]) -> [u8; NONCE_LEN] {
    let digest = Sha256::new()
        .chain_update(b"srs chunk nonce\0")
        .chain_update(key.as_ref())
        .chain_update(aad)
        .chain_update(plain)
        .finalize();
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&digest[..NONCE_LEN]);
    nonce
}

/// Binds a chunk to its recording and place: a file copied to another
/// recording or seq does not decrypt.
fn associated_data(recording_id: Uuid, seq: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(recording_id.as_bytes());
    aad[16..].copy_from_slice(&seq.to_be_bytes());
    aad
}

/// Writes `bytes` to a temporary file (mode 0600), syncs it, renames it
/// over `path` and syncs the directory: after return the file survives a
/// crash whole. If any step fails (a full disk) the temporary file is
/// removed, so no partial file is left behind, and `path` is untouched.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), ContentError> {
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

fn sync_dir(dir: &Path) -> Result<(), ContentError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, ContentStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn chunks_round_trip_encrypted() {
        let (_dir, store) = store();
        let id = Uuid::now_v7();
        let plain = b"the quick brown fox jumps over the lazy dog".repeat(10);
        let written = store.write_chunk(id, 0, &plain).unwrap();
        assert_eq!(written.size, plain.len() as u64);
        let file = fs::read(store.files().unwrap().chunk_path(Area::Live, id, 0)).unwrap();
        assert!(
            !file.windows(9).any(|w| w == b"brown fox"),
            "the file holds ciphertext only"
        );
        assert_eq!(hex::encode(Sha256::digest(&file)), written.sha256);
        assert_eq!(store.read_chunk(id, 0, &written.sha256).unwrap(), plain);
    }

    #[test]
    fn the_same_chunk_seals_to_the_same_bytes_and_no_other_chunk_does() {
        let (_dir, store) = store();
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        let path = |id, seq| store.files().unwrap().chunk_path(Area::Live, id, seq);
        let first = store.write_chunk(id, 0, b"frame").unwrap();
        let file = fs::read(path(id, 0)).unwrap();
        // An agent's retry (through this or another server) writes the same
        // file: the hash the log holds still names it.
        assert_eq!(store.write_chunk(id, 0, b"frame").unwrap(), first);
        assert_eq!(fs::read(path(id, 0)).unwrap(), file);
        let nonce = |file: &[u8]| file[MAGIC.len()..MAGIC.len() + NONCE_LEN].to_vec();
        // Other bytes, another seq or another recording (another key): another nonce.
        let mut nonces = vec![nonce(&file)];
        store.write_chunk(id, 0, b"framf").unwrap();
        nonces.push(nonce(&fs::read(path(id, 0)).unwrap()));
        store.write_chunk(id, 1, b"frame").unwrap();
        nonces.push(nonce(&fs::read(path(id, 1)).unwrap()));
        store.write_chunk(other, 0, b"frame").unwrap();
        nonces.push(nonce(&fs::read(path(other, 0)).unwrap()));
        let distinct: std::collections::BTreeSet<_> = nonces.iter().collect();
        assert_eq!(distinct.len(), nonces.len(), "{nonces:?}");
    }

    #[test]
    fn a_tampered_or_moved_chunk_is_refused() {
        let (_dir, store) = store();
        let id = Uuid::now_v7();
        let written = store.write_chunk(id, 0, b"hello").unwrap();
        let path = store.files().unwrap().chunk_path(Area::Live, id, 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            store.read_chunk(id, 0, &written.sha256),
            Err(ContentError::Corrupt { .. })
        ));
        // Same bytes, right hash, wrong seq: the AEAD binding refuses it.
        let written = store.write_chunk(id, 1, b"hello").unwrap();
        fs::copy(
            store.files().unwrap().chunk_path(Area::Live, id, 1),
            store.files().unwrap().chunk_path(Area::Live, id, 2),
        )
        .unwrap();
        assert!(matches!(
            store.read_chunk(id, 2, &written.sha256),
            Err(ContentError::Corrupt { .. })
        ));
    }

    fn tmp_files(dir: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else if path.extension().is_some_and(|e| e == "tmp") {
                found.push(path);
            }
        }
        found
    }

    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let (dir, store) = store();
        let id = Uuid::now_v7();
        store.write_chunk(id, 0, b"first").unwrap();
        // The rename into place fails: a directory holds the chunk's name.
        let target = store.files().unwrap().chunk_path(Area::Live, id, 1);
        fs::create_dir_all(target.join("in-the-way")).unwrap();
        let err = store.write_chunk(id, 1, b"second").unwrap_err();
        assert!(matches!(err, ContentError::Io { .. }), "{err}");
        assert_eq!(tmp_files(dir.path()), Vec::<PathBuf>::new());
        assert!(
            target.join("in-the-way").is_dir(),
            "the target is untouched"
        );
    }

    #[test]
    fn a_full_or_read_only_disk_is_unavailable_other_failures_are_not() {
        let failure = |code| ContentError::Io {
            path: PathBuf::from("x"),
            source: std::io::Error::from_raw_os_error(code),
        };
        assert!(failure(28).is_unavailable(), "ENOSPC");
        assert!(failure(122).is_unavailable(), "EDQUOT");
        assert!(failure(30).is_unavailable(), "EROFS");
        assert!(!failure(5).is_unavailable(), "EIO");
        assert!(!ContentError::NoKey(Uuid::nil()).is_unavailable());
    }

    #[test]
    fn archive_and_restore_move_the_chunks() {
        let (_dir, store) = store();
        let id = Uuid::now_v7();
        let written = store.write_chunk(id, 0, b"abc").unwrap();
        store.move_to(id, Area::Archive).unwrap();
        assert_eq!(store.files().unwrap().area(id), Some(Area::Archive));
        assert_eq!(store.read_chunk(id, 0, &written.sha256).unwrap(), b"abc");
        store.move_to(id, Area::Archive).unwrap();
        store.move_to(id, Area::Live).unwrap();
        assert_eq!(store.files().unwrap().area(id), Some(Area::Live));
    }

    #[test]
    fn shredding_destroys_the_key_and_the_content_for_good() {
        let (dir, store) = store();
        let id = Uuid::now_v7();
        let written = store.write_chunk(id, 0, b"secret session").unwrap();
        let key = fs::read(KeyRing::dir_of(dir.path()).join(format!("{id}.key"))).unwrap();
        let chunk = fs::read(store.files().unwrap().chunk_path(Area::Live, id, 0)).unwrap();
        store.shred(id).unwrap();
        store.shred(id).unwrap();
        assert!(!store.has_key(id));
        assert_eq!(store.files().unwrap().area(id), None);
        assert!(matches!(
            store.read_chunk(id, 0, &written.sha256),
            Err(ContentError::NoKey(_))
        ));
        // No file left under the data directory holds the key's bytes.
        let mut stack = vec![dir.path().to_path_buf()];
        while let Some(path) = stack.pop() {
            if path.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                let bytes = fs::read(&path).unwrap();
                assert!(!bytes.windows(key.len()).any(|w| w == key.as_slice()));
                assert!(!bytes.windows(chunk.len()).any(|w| w == chunk.as_slice()));
            }
        }
        // Even the ciphertext kept aside does not open without the key.
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&[0u8; 32]));
        let (nonce, sealed) = chunk[MAGIC.len()..].split_at(NONCE_LEN);
        assert!(cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &associated_data(id, 0)
                }
            )
            .is_err());
    }
}
