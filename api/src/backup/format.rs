//! The backup file's records, header, trailer and key wrapping (see the
//! module docs of `backup` for the layout).

use std::io::{Read, Write};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// The first bytes of every backup file.
pub const MAGIC: &[u8; 8] = b"SRS-BAK\n";
/// The `format` of the header.
pub const FORMAT_NAME: &str = "srs-backup";
/// The `version` of the header this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The largest record body (a chunk of 8 MiB and its envelope fit).
pub const MAX_RECORD: u32 = 16 * 1024 * 1024;

pub const TAG_HEADER: u8 = b'H';
pub const TAG_LOG: u8 = b'L';
pub const TAG_KEY: u8 = b'K';
pub const TAG_CHUNK: u8 = b'C';
pub const TAG_TRAILER: u8 = b'T';

pub const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// A wrapped key record: id, nonce, sealed key with its tag.
pub const KEY_RECORD_LEN: usize = 16 + NONCE_LEN + KEY_LEN + 16;
/// A chunk record's fields before the stored file.
pub const CHUNK_PREFIX_LEN: usize = 16 + 8 + 1 + 32;

const KEY_AAD: &[u8] = b"srs-backup key";
const CHECK_AAD: &[u8] = b"srs-backup key check";

/// Argon2id defaults: 64 MiB, 3 passes, 1 lane (RFC 9106's second
/// recommendation, for machines with less memory).
pub const DEFAULT_M_COST_KIB: u32 = 64 * 1024;
pub const DEFAULT_T_COST: u32 = 3;
pub const DEFAULT_P_COST: u32 = 1;
/// What a header may ask of the reader's machine (a crafted header must
/// not make `restore` allocate terabytes).
const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
const MAX_T_COST: u32 = 64;
const MAX_P_COST: u32 = 16;

/// Why a backup or restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The file is malformed, altered, truncated, or does not match its log.
    #[error("the backup file is not valid: {0}")]
    BadFile(String),
    /// The passphrase or key file does not open the backup's keys.
    #[error("the passphrase or key file does not open this backup (wrong passphrase?)")]
    WrongKey,
    /// The restore target holds something.
    #[error("{0}")]
    NotEmpty(String),
    /// Bad flags or input.
    #[error("{0}")]
    Invalid(String),
    /// The data directory does not hold what its log says (a chunk or key
    /// missing or altered), or changed under the backup.
    #[error("{0}")]
    Source(String),
    #[error(transparent)]
    Replay(#[from] srs_replay::ReplayError),
    #[error(transparent)]
    Log(#[from] srs_domain::log::LogError),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

/// How the wrapping key was made, as the header records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Wrapping {
    /// Argon2id over the passphrase with these parameters.
    Argon2id {
        /// Hex, 16 bytes.
        salt: String,
        m_cost_kib: u32,
        t_cost: u32,
        p_cost: u32,
    },
    /// A raw 32-byte key file.
    KeyFile,
}

impl Wrapping {
    /// Fresh Argon2id parameters (a random salt) with `m_cost_kib`.
    pub fn new_argon2id(m_cost_kib: u32) -> Self {
        let mut salt = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut salt);
        Wrapping::Argon2id {
            salt: hex::encode(salt),
            m_cost_kib,
            t_cost: DEFAULT_T_COST,
            p_cost: DEFAULT_P_COST,
        }
    }

    /// Whether a restore can derive a key from these parameters (what
    /// `POST /backup` checks before it writes them into a header).
    pub fn validate(&self) -> Result<(), BackupError> {
        let Wrapping::Argon2id {
            salt,
            m_cost_kib,
            t_cost,
            p_cost,
        } = self
        else {
            return Ok(());
        };
        let salt_ok = hex::decode(salt).is_ok_and(|s| (16..=64).contains(&s.len()));
        let limits_ok =
            *m_cost_kib <= MAX_M_COST_KIB && *t_cost <= MAX_T_COST && *p_cost <= MAX_P_COST;
        let params_ok = argon2::Params::new(*m_cost_kib, *t_cost, *p_cost, Some(KEY_LEN)).is_ok();
        if salt_ok && limits_ok && params_ok {
            Ok(())
        } else {
            Err(BackupError::Invalid(format!(
                "Argon2id parameters out of range (salt 16-64 bytes hex, m <= {MAX_M_COST_KIB} KiB, t <= {MAX_T_COST}, p <= {MAX_P_COST})"
            )))
        }
    }

    /// Derives the wrapping key from `passphrase`; a key-file wrapping
    /// takes no passphrase.
    pub fn derive(&self, passphrase: &[u8]) -> Result<WrappingKey, BackupError> {
        let Wrapping::Argon2id {
            salt,
            m_cost_kib,
            t_cost,
            p_cost,
        } = self
        else {
            return Err(BackupError::Invalid(
                "this backup was made with a key file: pass --key-file".into(),
            ));
        };
        if *m_cost_kib > MAX_M_COST_KIB || *t_cost > MAX_T_COST || *p_cost > MAX_P_COST {
            return Err(BackupError::BadFile(format!(
                "the header asks for Argon2id m={m_cost_kib} KiB t={t_cost} p={p_cost}, over this srs's limits"
            )));
        }
        let salt = hex::decode(salt).map_err(|_| BackupError::BadFile("salt is not hex".into()))?;
        let params = argon2::Params::new(*m_cost_kib, *t_cost, *p_cost, Some(KEY_LEN))
            .map_err(|e| BackupError::BadFile(format!("Argon2id parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase, &salt, key.as_mut())
            .map_err(|e| BackupError::Invalid(format!("deriving the key: {e}")))?;
        Ok(WrappingKey(key))
    }
}

/// The key that wraps the recordings' keys in a backup.
#[derive(Clone)]
pub struct WrappingKey(pub Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for WrappingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappingKey(..)")
    }
}

impl WrappingKey {
    /// From hex (the `--url` request body).
    pub fn from_hex(text: &str) -> Result<Self, BackupError> {
        let bytes = Zeroizing::new(
            hex::decode(text.trim())
                .map_err(|_| BackupError::Invalid("the wrapping key is not hex".into()))?,
        );
        Self::from_bytes(&bytes)
    }

    /// Exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BackupError> {
        let key: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            BackupError::Invalid(format!(
                "a wrapping key is exactly {KEY_LEN} bytes, not {}",
                bytes.len()
            ))
        })?;
        Ok(WrappingKey(Zeroizing::new(key)))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.as_ref())
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.0.as_ref()))
    }

    fn seal(&self, plain: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .expect("ChaCha20-Poly1305 encrypts any message under 256 GiB");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, sealed: &[u8], aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher()
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
            .ok()
            .map(Zeroizing::new)
    }

    /// The header's `key_check` (hex).
    pub fn key_check(&self) -> String {
        hex::encode(self.seal(&[0u8; KEY_LEN], CHECK_AAD))
    }

    /// Whether `check` (the header's `key_check`) opens under this key.
    pub fn checks(&self, check: &str) -> bool {
        hex::decode(check)
            .ok()
            .and_then(|sealed| self.open(&sealed, CHECK_AAD))
            .is_some_and(|plain| plain.as_slice() == [0u8; KEY_LEN])
    }

    /// A `K` record's body for the recording's key.
    pub fn wrap(&self, recording_id: Uuid, key: &[u8; KEY_LEN]) -> Vec<u8> {
        let mut body = recording_id.as_bytes().to_vec();
        body.extend_from_slice(&self.seal(key, &key_aad(recording_id)));
        body
    }

    /// The recording id and key of a `K` record's body;
    /// [`BackupError::WrongKey`] when it does not open.
    pub fn unwrap(&self, body: &[u8]) -> Result<(Uuid, Zeroizing<[u8; KEY_LEN]>), BackupError> {
        if body.len() != KEY_RECORD_LEN {
            return Err(BackupError::BadFile(format!(
                "a key record is {KEY_RECORD_LEN} bytes, not {}",
                body.len()
            )));
        }
        let id = Uuid::from_slice(&body[..16]).expect("16 bytes");
        let plain = self
            .open(&body[16..], &key_aad(id))
            .ok_or(BackupError::WrongKey)?;
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&plain);
        Ok((id, key))
    }
}

fn key_aad(recording_id: Uuid) -> Vec<u8> {
    let mut aad = KEY_AAD.to_vec();
    aad.extend_from_slice(recording_id.as_bytes());
    aad
}

/// The `H` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    pub created_at: String,
    pub position: u64,
    pub head_hash: String,
    pub wrapping: Wrapping,
    pub key_check: String,
}

/// The `T` record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trailer {
    pub position: u64,
    pub log_lines: u64,
    pub keys: u64,
    pub chunks: u64,
    pub chunk_bytes: u64,
    pub sha256: String,
}

/// A `C` record's fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkRecord {
    pub recording_id: Uuid,
    pub seq: u64,
    pub archived: bool,
    /// Hex SHA-256 of `file`, as recorded.
    pub sha256: String,
    pub file: Vec<u8>,
}

impl ChunkRecord {
    pub fn encode(&self) -> Result<Vec<u8>, BackupError> {
        let mut body = Vec::with_capacity(CHUNK_PREFIX_LEN + self.file.len());
        body.extend_from_slice(self.recording_id.as_bytes());
        body.extend_from_slice(&self.seq.to_be_bytes());
        body.push(u8::from(self.archived));
        let sha = hex::decode(&self.sha256)
            .ok()
            .filter(|s| s.len() == 32)
            .ok_or_else(|| BackupError::Source(format!("`{}` is not a SHA-256", self.sha256)))?;
        body.extend_from_slice(&sha);
        body.extend_from_slice(&self.file);
        Ok(body)
    }

    pub fn decode(body: Vec<u8>) -> Result<Self, BackupError> {
        if body.len() <= CHUNK_PREFIX_LEN {
            return Err(BackupError::BadFile("a chunk record is too short".into()));
        }
        let recording_id = Uuid::from_slice(&body[..16]).expect("16 bytes");
        let seq = u64::from_be_bytes(body[16..24].try_into().expect("8 bytes"));
        let archived = match body[24] {
            0 => false,
            1 => true,
            other => {
                return Err(BackupError::BadFile(format!(
                    "chunk {seq} of recording {recording_id}: unknown area {other}"
                )))
            }
        };
        let sha256 = hex::encode(&body[25..CHUNK_PREFIX_LEN]);
        let file = body[CHUNK_PREFIX_LEN..].to_vec();
        Ok(ChunkRecord {
            recording_id,
            seq,
            archived,
            sha256,
            file,
        })
    }
}

/// Writes records, hashing every byte for the trailer.
pub struct RecordWriter<W: Write> {
    out: W,
    hasher: Sha256,
}

impl<W: Write> RecordWriter<W> {
    /// Writes the magic.
    pub fn new(mut out: W) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        out.write_all(MAGIC)?;
        hasher.update(MAGIC);
        Ok(RecordWriter { out, hasher })
    }

    pub fn record(&mut self, tag: u8, body: &[u8]) -> Result<(), BackupError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|&l| l <= MAX_RECORD)
            .ok_or_else(|| BackupError::Source(format!("a record of {} bytes", body.len())))?;
        let mut head = [0u8; 5];
        head[0] = tag;
        head[1..].copy_from_slice(&len.to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(body)?;
        self.hasher.update(head);
        self.hasher.update(body);
        Ok(())
    }

    /// Writes the trailer (its `sha256` filled in) and flushes; returns
    /// the writer and the checksum.
    pub fn finish(mut self, mut trailer: Trailer) -> Result<(W, String), BackupError> {
        let sha256 = hex::encode(self.hasher.finalize_reset());
        trailer.sha256 = sha256.clone();
        let body = serde_json::to_vec(&trailer)?;
        let mut head = [0u8; 5];
        head[0] = TAG_TRAILER;
        head[1..].copy_from_slice(&(body.len() as u32).to_be_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&body)?;
        self.out.flush()?;
        Ok((self.out, sha256))
    }
}

/// Reads records, hashing every byte before the trailer.
pub struct RecordReader<R: Read> {
    input: R,
    hasher: Sha256,
    /// Bytes read so far (for messages).
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// Reads and checks the magic.
    pub fn new(mut input: R) -> Result<Self, BackupError> {
        let mut magic = [0u8; 8];
        read_full(&mut input, &mut magic, "the magic")?;
        if &magic != MAGIC {
            return Err(BackupError::BadFile(
                "not an srs backup (the magic bytes differ)".into(),
            ));
        }
        let mut hasher = Sha256::new();
        hasher.update(magic);
        Ok(RecordReader {
            input,
            hasher,
            offset: 8,
        })
    }

    /// The next record; `None` at the end of the file. The trailer's bytes
    /// are not hashed; [`RecordReader::digest`] then gives the checksum
    /// of everything before it.
    pub fn next(&mut self) -> Result<Option<(u8, Vec<u8>)>, BackupError> {
        let mut head = [0u8; 5];
        let got = read_some(&mut self.input, &mut head)?;
        if got == 0 {
            return Ok(None);
        }
        if got < head.len() {
            return Err(BackupError::BadFile(format!(
                "the file ends inside a record at byte {} (truncated?)",
                self.offset
            )));
        }
        let tag = head[0];
        let len = u32::from_be_bytes(head[1..].try_into().expect("4 bytes"));
        if len > MAX_RECORD {
            return Err(BackupError::BadFile(format!(
                "a record of {len} bytes at byte {} (at most {MAX_RECORD})",
                self.offset
            )));
        }
        let mut body = vec![0u8; len as usize];
        read_full(&mut self.input, &mut body, "a record")?;
        if tag != TAG_TRAILER {
            self.hasher.update(head);
            self.hasher.update(&body);
        }
        self.offset += 5 + u64::from(len);
        Ok(Some((tag, body)))
    }

    /// Hex SHA-256 of every byte read before the trailer.
    pub fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

fn read_some(input: &mut impl Read, buf: &mut [u8]) -> Result<usize, BackupError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}

fn read_full(input: &mut impl Read, buf: &mut [u8], what: &str) -> Result<(), BackupError> {
    if read_some(input, buf)? < buf.len() {
        return Err(BackupError::BadFile(format!(
            "the file ends inside {what} (truncated?)"
        )));
    }
    Ok(())
}
