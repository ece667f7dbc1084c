//! srs's event log on a NATS JetStream cluster: [`JetStreamBackend`], a
//! [`LogBackend`] whose records are the messages of one replicated
//! JetStream stream.
//!
//! The log's core (`srs_domain::log`: positions, versions, the hash chain,
//! expected versions, idempotency, group commit) is unchanged; this crate
//! only stores what the core hands it. It is its own crate so that the
//! domain crate, which every other crate builds, does not build a NATS
//! client (about fifty crates: url, regex, rustls without a crypto
//! provider, time, ...).
//!
//! # Layout in JetStream
//!
//! * One stream (`srs` unless told otherwise), file storage, three
//!   replicas, one subject (`<stream>.log`), `allow_atomic` (atomic batch
//!   publish, nats-server 2.12+), `allow_direct` (batched direct gets),
//!   `deny_delete` and `deny_purge`.
//! * One message per record, its payload the record's stored bytes (the
//!   codec's format, hash and `prev_hash` included, so `verify` walks the
//!   chain over this backend as over sled). **The stream sequence is the
//!   position**: a commit is published with `Nats-Expected-Last-Sequence`
//!   set to the position before its first record, so a commit whose
//!   positions are not next is refused by the server, never stored
//!   elsewhere.
//! * One commit is one atomic batch (`Nats-Batch-Id`,
//!   `Nats-Batch-Sequence`, `Nats-Batch-Commit` on the last message): the
//!   server stores all of its messages at consecutive sequences or none.
//!   Every message also carries `Srs-Commit-End`, the position of its
//!   commit's last record, so a node that reads another's records never
//!   stops (and never shows its readers a head) inside a commit.
//!   A batch holds at most the servers' `jetstream { limits { batch {
//!   max_msgs } } }` messages (1,000 by default); this backend caps
//!   commits at [`JetStreamOptions::max_batch`] records (`srs serve
//!   --log-max-batch`, 1,000 by default; set both to 4,000 so a full
//!   `recordSessionEvents` batch of 1,000 events with its detections fits
//!   in one append): an append of more events is refused as invalid.
//! * A record is at most the servers' `max_payload` (1 MiB unless they
//!   set it) less 1 KiB for the batch headers; an append with a larger
//!   event is refused as invalid ([`LogBackend::max_record_bytes`]).
//! * The indexes (event id to position, stream and version to position,
//!   each stream's version) are kept in memory and rebuilt from the stream
//!   at open by reading every record: the records are the only truth, so
//!   there is nothing to repair after a crash. Repeated event ids are
//!   answered from this index however old they are (JetStream's own
//!   duplicate window plays no part). The cost is a full read at open and
//!   about 50 bytes of memory per event.
//!
//! # Failure semantics
//!
//! * **An acknowledgement** (a commit that returned `Ok`) means the
//!   server's stream leader stored the whole batch and a quorum of the
//!   replicas (two of three) had it in their replicated log. With the
//!   servers' `jetstream { sync_interval: always }` each of them wrote it
//!   to disk with an fsync before answering, so an acknowledged append
//!   survives the loss of any one server, and a power cut of all of them.
//!   [`LogBackend::flush`] therefore does nothing: a commit is durable when
//!   it returns. `sync_interval: always` is a server setting this backend
//!   cannot check; without it a replica syncs every two minutes and a
//!   simultaneous crash of two servers can lose acknowledged appends.
//! * **A timeout** (no answer within [`JetStreamOptions::timeout`]) says
//!   nothing: the batch may be stored or not, never in part. The commit
//!   fails, the core answers the append `Unavailable` ("retry with the same
//!   event ids") and refuses appends while it asks [`LogBackend::resync`]
//!   with backoff; resync reads the stream's last sequence from its leader
//!   and indexes whatever is stored past the known head, so a retried
//!   append is answered from the store (`deduplicated`) if the batch
//!   landed, and written if it did not. Readers never saw the unknown
//!   batch: the durable head moves only when resync has read it back.
//! * **One server lost** (killed, its disk gone): the other two are a
//!   quorum. If it led the stream, they elect a new leader within a few
//!   seconds; commits in flight meanwhile time out or are refused, and
//!   are settled as above. No acknowledged record is lost (it was on a
//!   quorum, so on at least one of the two).
//! * **Two servers lost**: no quorum, no leader. Commits time out; the
//!   core answers `Unavailable` within [`JetStreamOptions::timeout`] and
//!   refuses further appends at once; reads of stored positions are
//!   answered while the surviving server serves direct gets, and fail
//!   `Unavailable` after the timeout otherwise. Nothing is half
//!   written (a batch is whole or absent). When a server comes back the
//!   quorum is restored, resync succeeds and writes resume by themselves.
//! * **Several writers on one stream** (several `srs serve` nodes) store
//!   nothing stale and answer no stale conflict. Each handle follows the
//!   stream: an ordered push consumer (headers only) tells it the sequence
//!   of every stored message, and the log's writer catches up (reads the
//!   new records, indexes them, moves its durable head) between its own
//!   commits, so readers on every node (projections, subscriptions,
//!   `atLeast`) see every node's appends, typically within milliseconds.
//!   A commit decided on a view that missed another node's commit is
//!   refused by the stream (wrong expected last sequence, nothing stored);
//!   the writer catches up at least to the position after its head and
//!   decides the same appends again, inside the one append call: expected
//!   versions, guards and event ids are checked against everything
//!   stored. A conflict decided on the node's view is checked once more
//!   after a catch-up, so a conflict is answered on what the stream held
//!   after the request arrived (up to the lag of the stream's own info,
//!   a few milliseconds; a client that retries a conflict decides again).
//!   The cost of this serialisation: under contention a commit may be
//!   decided several times (at most 32, then the append is answered
//!   unavailable: retry with the same event ids), and each node reads
//!   every record once more to index it.
//! * **All three lost**: appends and reads fail `Unavailable`; restarted
//!   servers recover from their disks (synced on every write), and the
//!   writer resumes as above.
//! * **What `sync_interval: always` costs**: the servers sync every
//!   message they store, so a commit waits for the leader's and a
//!   follower's fsyncs, one per record: the core's group commit saves
//!   round trips but not fsyncs. On a 2-core machine with the three
//!   servers on one disk (`cargo run -p srs-log-jetstream --example
//!   throughput`, debug build, one run) single-event appends went from
//!   733/s to 488/s with one writer and from 11,136/s to 1,230/s with 32
//!   writers; raw publishes of the same size from 1,596/s to 520/s and
//!   from 19,732/s to 1,331/s.
//!
//! # Content and keys
//!
//! With its log on JetStream (`srs serve --log-url`) a server keeps the
//! recordings' content and keys in the same cluster, so that several
//! servers, each with its own data directory, serve one cluster: a chunk
//! uploaded through one plays through every other, and a recording
//! deleted through one is unreadable through all. [`ClusterContent`]
//! opens both stores; the sealing, hashing, per-recording locking and
//! errors stay in the application's content store and key ring, above
//! them.
//!
//! * **Chunks**: the object store `<stream>-content` (a stream
//!   `OBJ_<stream>-content`, file storage, the log's replicas), one object
//!   per chunk named `<recording>/<seq>` ([`ContentObjects`]). The bytes
//!   are the sealed chunk exactly as the data directory's chunk files hold
//!   it (ChaCha20-Poly1305 under the recording's key; the log holds its
//!   hash), so nothing in the bucket is readable without the key. A put
//!   returns once the object's messages are acknowledged by a quorum.
//!   Archiving moves nothing (one bucket; archived is a state in the log).
//! * **Keys**: the KV bucket `<stream>-keys` (a stream `KV_<stream>-keys`,
//!   file storage, the log's replicas, history 1), one entry per recording
//!   named by its id ([`ClusterKeys`]). A key is created only where the
//!   entry holds no message at all (expected last subject sequence 0), so
//!   two servers starting one recording agree on one key and a destroyed
//!   key is never created again.
//! * **Wrapping**: an entry holds the recording's key wrapped under the
//!   cluster key ([`ClusterKey`]), ChaCha20-Poly1305 with a random nonce
//!   and the entry's name as associated data ("SRK1" | nonce | sealed key,
//!   [`WRAPPED_LEN`] bytes). The cluster key is 32 random bytes in a file
//!   given to every server (`--cluster-key-file`), never stored in NATS:
//!   a copy of the streams, of the servers' disks or of a NATS backup
//!   holds no recording key in the clear. srs does not create the file (a
//!   node that made its own would wrap keys no other node opens): it
//!   says how to make one ([`how_to_create`]), and refuses one that is
//!   missing, not 32 bytes, all zeros or readable by other users. The
//!   entry [`CHECK_ENTRY`] holds a known value wrapped by the first
//!   server: a server given another cluster key is refused at start.
//! * **Shredding**: deleting a recording purges its KV entry (a purge
//!   removes every earlier message of the entry from the stream and
//!   leaves a marker without a value, which keeps the key from being
//!   created again), then deletes its objects. Every server's key ring
//!   watches the bucket and forgets a purged key it had cached, so it
//!   answers the recording's content as deleted from then on, whether or
//!   not its read models have seen the deletion yet. What this cannot
//!   promise: that the servers' disks keep no old blocks of the purged
//!   message (a purge removes it from the stream, the file store may keep
//!   the bytes until it compacts the block); those bytes are the key
//!   wrapped under the cluster key, so they reveal nothing without the
//!   cluster key file.
//! * **Losing servers**: the buckets are replicated like the log. With
//!   one server lost, content and keys are read and written as before.
//!   With two lost (no quorum), uploads, playbacks of chunks, key
//!   creations (recordings starting) and deletions fail `UNAVAILABLE`
//!   after the timeout and succeed again once a quorum is back; a key a
//!   server has cached still seals and opens meanwhile. A deletion that
//!   failed is retried by the content effects until it succeeds. Losing
//!   the cluster key file everywhere loses every recording's content and
//!   sealed data for good.
//!
//! # Runtime
//!
//! [`LogBackend`] is synchronous (the core calls it from its writer threads
//! and from blocking reads, some of them on the application's tokio
//! worker threads). The backend owns a small tokio runtime (one worker
//! thread, `srs-jetstream`) that drives the NATS connection, and each call
//! spawns its request there and waits on a plain channel. Blocking on the
//! caller's runtime instead (`Handle::block_on`) would panic on a tokio
//! worker and could starve the very connection it waits on; a runtime of
//! its own keeps the connection driven whatever the caller's threads do.
//! [`ClusterContent`] does the same with a runtime of its own
//! (`srs-jetstream-content`), shared by its two stores.
//!
//! [`LogBackend`]: srs_domain::log::LogBackend
//! [`LogBackend::max_commit_records`]: srs_domain::log::LogBackend::max_commit_records
//! [`LogBackend::flush`]: srs_domain::log::LogBackend::flush
//! [`LogBackend::max_record_bytes`]: srs_domain::log::LogBackend::max_record_bytes
//! [`LogBackend::resync`]: srs_domain::log::LogBackend::resync

mod backend;
mod cluster;
mod content;
pub mod heartbeats;
mod keys;
pub mod lease;
mod nats;
mod objects;
mod streams;
#[cfg(feature = "testing")]
pub mod testing;

pub use backend::{JetStreamBackend, JetStreamOptions, MAX_BATCH};
pub use cluster::ClusterClient;
pub use content::{content_bucket, keys_bucket, ClusterContent, StoreError};
pub use heartbeats::Heartbeats;
pub use keys::{how_to_create, ClusterKey, ClusterKeys, CHECK_ENTRY, WRAPPED_LEN};
pub use lease::{Lease, LeaseError, Leases};
pub use objects::{object_name, ContentObjects};
pub use streams::stream_exists;
