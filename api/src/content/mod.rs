//! Recording content: the bytes of a screen recording (or an asciicast)
//! beside the log, encrypted per recording, and what deletes them for good.
//!
//! # Layout
//!
//! - `store`: [`ContentStore`], over a [`ChunkStore`] (the files under
//!   `<data>/content/` by default) and a key ring.
//! - `cluster`: the content store of `srs serve --log-url`, in the
//!   JetStream cluster ([`open_cluster_content`]).
//! - `effects`: [`ContentEffects`], the follower that archives, restores
//!   and shreds content as the log says.
//! - `http`: the upload and playback routes ([`routes`]).
//! - `asciicast`: parsing asciicast v2 files into session events.
//!
//! # On disk
//!
//! ```text
//! <data>/content/keys/<recording>.key               32 random bytes, mode 0600 (`srs_domain::seal`)
//! <data>/content/live/<recording>/<seq>.chunk       "SRC1" | nonce | ChaCha20-Poly1305(chunk)
//! <data>/content/archive/<recording>/<seq>.chunk    the same, once archived
//! ```
//!
//! Each chunk is sealed with ChaCha20-Poly1305 under its recording's key,
//! a synthetic nonce, and the recording id and seq as associated data (a
//! file moved to another recording or seq does not open). The nonce is the
//! first 12 bytes of SHA-256(label | key | recording | seq | chunk): the
//! same chunk seals to the same bytes wherever and however often it is
//! uploaded (an agent's retry through another server of a cluster writes
//! what the first one wrote, and the log's hash of it still holds), while
//! two different chunks share a nonce under one key only if 96 bits of the
//! hash collide. Sealing the same bytes twice reveals only that they are
//! the same chunk, which the log's hash says anyway. The log's
//! `ContentChunkStored` holds the chunk's plain size and the SHA-256 of the
//! *encrypted* file, so the hash chain covers the content without holding
//! anything that reveals it, and a file changed on disk is detected on read.
//!
//! # What an upload promises
//!
//! The encrypted file is written to a temporary name, synced, renamed into
//! place and its directory synced; only then is `ContentChunkStored`
//! appended, and the upload is answered once that append is durable. A
//! crash between the two leaves an orphan file that the log does not know:
//! it is never served (reads go by the log) and the retried upload writes
//! over it. A refused append removes the file it had written. Uploads and
//! moves of one recording are serialised by a per-recording lock.
//!
//! # What deletion guarantees
//!
//! The keys are the recordings' keys of `srs_domain::seal::KeyRing`, one
//! per recording for its content and for the session events and
//! detection subjects sealed in the log (see that module). The server
//! shares one ring between this store and the service, so a shredding
//! evicts the one cache. `RecordingDeleted` destroys the recording's key:
//! the key file is overwritten with zeros, synced, unlinked and its
//! directory synced; then the chunk files are removed. The delete mutation
//! and the retention run answer only after that is done. Keys never enter
//! the log nor sled (sled keeps superseded values in its segment files
//! until it compacts them, so a key kept there could outlive its deletion
//! in a copy of the data directory); they live only in their own key
//! files. A copy of the data directory taken after the deletion therefore
//! holds no key, and ciphertext kept from before (chunks, sealed events)
//! cannot be opened. What this cannot promise: that the storage device
//! itself keeps no old blocks (copy-on-write file systems, SSD wear
//! levelling, backups taken before the deletion); a deployment that needs
//! that puts the data directory on an encrypted volume whose key is
//! managed outside srs. The log keeps every fact and `srs verify` still
//! passes: nothing in it is rewritten.
//!
//! # In a cluster
//!
//! With the log on JetStream (`srs serve --log-url`) the chunks (the same
//! sealed bytes) are objects of the cluster's object store and the keys
//! entries of its KV bucket, each wrapped under the cluster key that the
//! servers read from `--cluster-key-file` and NATS never holds
//! ([`open_cluster_content`]; `srs_log_jetstream`, "Content and keys").
//! `RecordingDeleted` then purges the key's entry (no history keeps it)
//! and deletes the objects; every server's ring forgets a purged key, and
//! its content GET answers the recording as deleted even before its read
//! models have seen the deletion. Uploads are serialised per recording
//! within one server only. Two servers taking the same chunk at the same
//! moment (an agent retrying through another server) are safe: the same
//! bytes seal to the same object, so whichever append the log takes names
//! the bytes both wrote, and the other server answers the chunk as stored.
//! Two *different* bodies for one chunk at the same moment through two
//! servers may leave the loser's bytes under the winner's name; a read then
//! finds the digest the log names does not match and refuses the chunk, it
//! never serves other content.

mod asciicast;
mod cluster;
mod effects;
mod http;
mod store;
mod ticket;

pub use asciicast::{
    parse as parse_asciicast, parse_lines as parse_asciicast_lines,
    CONTENT_TYPE as ASCIICAST_CONTENT_TYPE,
};
pub use cluster::open_cluster_content;
pub use effects::ContentEffects;
pub use http::{
    parse_range, parse_seq, routes, store_asciicast, store_chunk, ByteRange, Receipt, Refused,
    SETTLE_TIMEOUT, SHA256_HEADER,
};
pub use store::{
    Area, ChunkStore, ContentError, ContentStore, FileChunks, WrittenChunk, MAX_CHUNK_BYTES,
};
pub use ticket::{expiry as ticket_expiry, Tickets, TICKET_TTL_SECS};
