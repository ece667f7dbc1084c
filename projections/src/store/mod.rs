//! Where read models keep their data: a small storage interface and its
//! sled implementation.
//!
//! The engine and the read models see storage only through two traits:
//!
//! - [`Store`]: one database of named keyspaces (open, drop, list);
//! - [`Keyspace`]: one ordered map of byte keys to byte values: point
//!   reads, ordered scans by prefix or range (both directions), and
//!   [`Keyspace::apply`], an atomic batch of writes that can carry the
//!   [`Checkpoint`] of the projection writing it, so data and checkpoint
//!   are never out of step.
//!
//! On top of them, [`Generations`] keeps each projection's data in
//! numbered generations of a keyspace (`projection/<name>#<generation>`)
//! and a pointer to the current one: a rebuild fills a new generation and
//! swaps it in.
//!
//! The backend in use is [`sled`] ([`Db`] and [`Tree`] name its types).
//! Its layout is the one srs has always written (the same trees, keys and
//! checkpoint keys), so an existing data directory opens unchanged. Another
//! backend is another module implementing the two traits, and these
//! aliases pointing at it.

mod generations;
pub mod sled;

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Deref, RangeBounds};

use thiserror::Error;

pub use generations::{parse_tree_name, tree_name, CurrentTree, Generations, REGISTRY_TREE};

/// The database the read models are kept in (the backend in use).
pub type Db = self::sled::SledDb;

/// One keyspace of [`Db`]: a projection's tree of one generation, or any
/// other small tree kept beside the log.
pub type Tree = <Db as Store>::Keyspace;

/// A value (or key) read from a [`Tree`]: it dereferences to its bytes.
pub type Bytes = <Tree as Keyspace>::Bytes;

/// An ordered scan of a [`Tree`].
pub type Iter = <Tree as Keyspace>::Iter;

/// Writes to apply together: each key with its new value, or `None` to
/// remove it. Key order is the order they are applied in.
pub type Changes = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Keys starting with this byte are the store's own (the checkpoint): the
/// engine refuses data under it, and dumps of data skip it.
pub const META_PREFIX: u8 = 0x00;

/// How far a projection's data in a keyspace goes, stored with the data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last log position applied.
    pub position: u64,
    /// The code version of the projection that wrote the data.
    pub version: u32,
}

/// Why storage refused a read or a write.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The disk refused (full, read-only, gone): nothing of the write
    /// happened, and the same write may succeed later.
    #[error("I/O: {0}")]
    Io(#[source] std::io::Error),
    /// Anything else the backend reports (corruption, a bug, an
    /// unsupported operation): retrying does not help.
    #[error("{0}")]
    Backend(String),
}

impl StoreError {
    /// Whether the failure is the disk's (a retry may succeed).
    pub fn is_io(&self) -> bool {
        matches!(self, StoreError::Io(_))
    }
}

/// The store's result type.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One database of named keyspaces.
pub trait Store: Clone + Send + Sync + 'static {
    type Keyspace: Keyspace;

    /// A fresh database that is gone once dropped (tests, scratch read
    /// models).
    fn temporary() -> StoreResult<Self>;

    /// Opens the keyspace `name`, creating it empty if it does not exist.
    fn open(&self, name: &str) -> StoreResult<Self::Keyspace>;

    /// Drops the keyspace `name` and its data (a no-op when absent). Only
    /// for keyspaces no reader uses any more.
    fn drop_keyspace(&self, name: &str) -> StoreResult<()>;

    /// The names of every keyspace present.
    fn names(&self) -> Vec<String>;

    /// Makes every write applied so far durable.
    fn flush(&self) -> StoreResult<()>;
}

/// One ordered map of byte keys to byte values. Cheap to clone (clones
/// share the data).
pub trait Keyspace: Clone + Send + Sync + 'static {
    /// A value or key read back; borrowing its bytes costs no copy.
    type Bytes: Deref<Target = [u8]> + AsRef<[u8]> + Clone + Debug + Send + Sync;
    /// An ordered scan, front to back or (`rev`) back to front.
    type Iter: DoubleEndedIterator<Item = StoreResult<(Self::Bytes, Self::Bytes)>> + Send;

    /// The name it was opened under.
    fn name(&self) -> &str;

    /// The value under `key`.
    fn get<K: AsRef<[u8]>>(&self, key: K) -> StoreResult<Option<Self::Bytes>>;

    /// Whether `key` holds a value.
    fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> StoreResult<bool>;

    /// Every entry whose key starts with `prefix`, in key order.
    fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> Self::Iter;

    /// Every entry whose key is within `range`, in key order.
    fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Self::Iter;

    /// Every entry, the store's own included, in key order.
    fn iter(&self) -> Self::Iter;

    /// Whether it holds no entry at all.
    fn is_empty(&self) -> bool;

    /// Applies `changes`, and `checkpoint` if given, as one atomic write:
    /// after a crash either all of it is there or none.
    fn apply(&self, changes: &Changes, checkpoint: Option<Checkpoint>) -> StoreResult<()>;

    /// Applies `changes` key by key, then `checkpoint`: not atomic, and
    /// faster where the backend serialises atomic batches. Only for a
    /// keyspace nothing reads before it is complete (a rebuild's new
    /// generation, dropped if the rebuild is interrupted).
    fn fill(&self, changes: &Changes, checkpoint: Checkpoint) -> StoreResult<()>;

    /// The stored checkpoint (`None`: none was ever written).
    fn checkpoint(&self) -> StoreResult<Option<Checkpoint>>;

    /// Makes every write applied so far to this keyspace durable.
    fn flush(&self) -> StoreResult<()>;
}
