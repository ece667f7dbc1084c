//! `srs backup` and `srs restore`: one file that holds everything a data
//! directory needs to serve its recordings again, as of one log position.
//!
//! # What a backup holds
//!
//! As of one durable log position `P` (the head when the backup starts):
//!
//! - the log from position 1 to `P`, in the `srs export` format
//!   ([`srs_replay::export_up_to`]), so the chain is checked by the same
//!   code as an import;
//! - every content chunk the log up to `P` records (`ContentChunkStored`)
//!   for the recordings not deleted by `P`, exactly as stored on disk: the
//!   chunks are already encrypted under their recording's key, and the
//!   SHA-256 the log holds is the hash of those bytes;
//! - the keys of the recordings started and not deleted by `P` that have
//!   one, each encrypted (ChaCha20-Poly1305, the recording id as associated
//!   data) under a *wrapping key*: derived with Argon2id from a passphrase
//!   (`--passphrase-file F`, or `SRS_BACKUP_PASSPHRASE`; there is no flag
//!   taking the passphrase itself, which `ps` would show), or read from a
//!   32-byte key file (`--key-file`). A key is never in the file in plain.
//!
//! Recordings deleted by `P` are absent: their keys were destroyed and
//! their chunks removed, and a backup cannot bring them back. Their facts
//! stay in the log. Content of recordings deleted *after* a backup stays
//! readable in that backup to whoever holds its passphrase: that is what a
//! backup is for, and why its passphrase is kept apart (the README's
//! deletion guarantee says so).
//!
//! Not in a backup: the read models (`srs serve` rebuilds them from the
//! log on the restored directory's first start), the content effects'
//! checkpoint (the restored server applies the log's archive, restore and
//! delete effects again, which are idempotent), and `admin.token` (the
//! tokens are facts in the log: every token valid at `P` authenticates on
//! the restored instance, and none is written in plain anywhere).
//! Restoring a backup taken before a deletion brings the deleted
//! recording back, content included: deletion cannot reach copies made
//! before it.
//!
//! # Consistency
//!
//! Offline (`--data`), nothing moves under the backup. Through a running
//! server (`--url`, the ADMIN route `POST /backup`), the server reads the
//! keys first, each under the recording's content lock (the lock the
//! archive, restore and shred effects take); a recording deleted after `P`
//! whose key is already gone makes the server start over at the new head
//! (a few times, then it gives up). Each chunk file is read under the same
//! lock, wherever (live or archive) it is at that moment, and written out
//! after the lock is released (a slow client holds up no upload). `restore`
//! puts every chunk where the log up to `P` has its recording (archived or
//! live), whatever an archive run meanwhile did to the files. A chunk that
//! vanishes meanwhile (its recording deleted after `P` while the backup
//! ran) fails the backup: the stream is aborted and the client removes its
//! partial file. Whatever the log gets after `P` is not in the backup.
//!
//! # In a cluster
//!
//! A server on a JetStream log (`srs serve --log-url`) backs up the same
//! way through its route (`srs backup --url` to any node): the log from
//! the cluster's stream, the chunks from its object store and the keys
//! from its KV bucket (unwrapped with the cluster key, then wrapped under
//! the backup's key like any other). The recording lock is the node's
//! own: a recording deleted through another node during the backup makes
//! it start over at the new head or fail (its key or chunks are gone; run
//! it again); it never yields a backup that misses content its log holds.
//! The file is the same format and restores into a data directory (`srs
//! restore`), which then serves on its own; `srs import --log-url` moves
//! that log back into a cluster, but not its content and keys.
//!
//! # Format (version 1)
//!
//! ```text
//! "SRS-BAK\n"                      8 bytes of magic
//! record*                          tag (1 byte) | length (u32 BE) | body
//! ```
//!
//! Records, in this order (a file out of order is refused):
//!
//! | tag | count | body |
//! |---|---|---|
//! | `H` | 1 | the header, JSON: `format` ("srs-backup"), `version` (1), `created_at`, `position` (`P`), `head_hash`, `wrapping` (`{"kind":"argon2id","salt","m_cost_kib","t_cost","p_cost"}` or `{"kind":"key-file"}`), `key_check` (hex nonce and seal of 32 zero bytes under the wrapping key, so a wrong passphrase is told apart from a damaged key record) |
//! | `L` | 1 per line | one line of the `srs export` file of the log up to `P` (header, events, trailer), newline included |
//! | `K` | 1 per key | recording id (16) \| nonce (12) \| ChaCha20-Poly1305(wrapping key, recording key (32), aad = `"srs-backup key"` \| recording id) (48) |
//! | `C` | 1 per chunk | recording id (16) \| seq (u64 BE) \| area it was read from (0 live, 1 archive; informative) \| SHA-256 of the stored file (32) \| the stored file |
//! | `T` | 1, last | the trailer, JSON: `position`, `log_lines`, `keys`, `chunks`, `chunk_bytes`, `sha256` (hex SHA-256 of every byte before the trailer's tag) |
//!
//! Nothing may follow the trailer. A record is at most [`MAX_RECORD`]
//! bytes. A reader refuses a `version` it does not know.
//!
//! # Restore
//!
//! [`restore`] reads the file twice. The first pass writes nothing: magic,
//! header, record order, the log through the import's own check (positions,
//! stream versions, every record re-hashed along the chain, the export's
//! trailer), every chunk's SHA-256 against the `ContentChunkStored.sha256`
//! the log holds for it, every chunk and key the log needs present (and
//! none it does not), the key check and every key unwrapped with the
//! wrapping key, then the trailer's counts and checksum. Only then, into a
//! target that must not exist or be empty, the log is imported and the keys
//! (mode 0600) and chunks written, each checked again as it is written
//! (the file could change between the passes; then what was written is
//! removed). Read models are built by `srs serve` on its first start.
//!
//! # Memory
//!
//! Both sides stream the log and the chunks (one chunk in memory at a
//! time). They keep in memory what the log says of the content: one entry
//! per stored chunk (its seq and hash) and, while writing, the keys of the
//! recordings backed up (32 bytes each, zeroed when dropped): about 100
//! bytes per chunk and 50 per recording.
//!
//! # Through a running server
//!
//! The wrapping key derived on the client is what `srs backup --url`
//! sends to the server (never the passphrase): it travels in the request
//! body, so the connection must be confidential (TLS in production; a
//! plain `http://` URL is fine only on the loopback or a trusted network).

mod format;
mod http;
mod restore;
#[cfg(test)]
mod tests;
mod write;

pub use format::{BackupError, Wrapping, WrappingKey, DEFAULT_M_COST_KIB, MAGIC, MAX_RECORD};
pub use http::routes;
pub use restore::{check_only, restore, RestoreSummary, Secret};
pub use write::{record_backup, write_backup, BackupSummary};
