//! [`Overlay`]: the uncommitted writes of a batch over a projection's
//! tree, which its `apply` reads and writes through.
//!
//! A batch of events is applied into an in-memory overlay over the
//! projection's tree: reads see the tree plus everything written earlier in
//! the batch (by this event or by the ones before it). Nothing reaches the store
//! until the runner turns the overlay into one atomic write together with
//! the new checkpoint. An event whose `apply` fails has its own writes
//! discarded, so the batch still holds exactly the events before it.
//!
//! The overlay is one hash map (a read or write of the overlay costs one
//! hash, whatever its size; it is put in key order once, at the commit;
//! the hash is foldhash's, seeded per process, as the keys come from what
//! agents report);
//! the writes of the event being applied are undone from a log of what
//! they replaced, so a read looks in one map and a successful event costs
//! nothing to keep. Decoding reads borrow the
//! stored bytes instead of copying them.
//!
//! Rows that many events update (a recording's catalogue row, a tally)
//! are kept decoded: [`Overlay::update_value`] and [`Overlay::read_value`]
//! decode a value once, keep it in the overlay, and later events of the
//! batch change it in place; it is encoded once, at the commit.
//!
//! A rebuild keeps one overlay over many read batches (see
//! [`Overlay::for_rebuild`] and [`Overlay::commit_unserved`]): keys written many
//! times (counters, rows updated by each event, moved rank keys) reach
//! the store once, and while its new tree holds nothing yet, reads never look
//! in the store at all. [`Overlay::bytes`] tells it when to commit. A rebuild
//! stops at the first failing event and drops its tree, so its overlay
//! keeps no undo log: a discarded event leaves it unable to commit.
//!
//! A prefix scan ([`Overlay::scan_prefix`]) walks the overlay's keys in
//! order: the first one of a batch puts them in order once, and the
//! overlay keeps that order up to the commit, so a scan costs the keys
//! it finds, not everything the overlay holds (a rebuild's overlay holds
//! hundreds of thousands of keys, and every deleted recording scans).

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec;
use crate::error::{ProjectionError, Result};
use crate::store::{Checkpoint, Keyspace, Tree, META_PREFIX};

pub use crate::store::Changes;

/// A read-model value the overlay can keep decoded.
pub trait Row: Serialize + DeserializeOwned + Clone + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + 'static> Row for T {}

/// A decoded [`Row`] of any type, as the overlay holds it.
trait Decoded: Send {
    fn encode(&self) -> Result<Vec<u8>>;
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl<T: Row> Decoded for T {
    fn encode(&self) -> Result<Vec<u8>> {
        codec::encode(self)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// What the overlay holds under a key: bytes written, or a value kept
/// decoded.
enum Staged {
    /// Bytes this batch wrote, or `None`: removed.
    Bytes(Option<Vec<u8>>),
    /// A decoded value: written by this batch, or (`written` false) as
    /// the tree holds it, kept for later reads. `size` is what it counts
    /// for in [`Overlay::bytes`].
    Decoded {
        value: Box<dyn Decoded>,
        written: bool,
        size: usize,
    },
}

impl Staged {
    /// Whether the commit writes it (a decoded value read but never
    /// changed is not a write).
    fn is_write(&self) -> bool {
        !matches!(self, Staged::Decoded { written: false, .. })
    }

    /// Whether it holds a value (not a removal).
    fn is_some(&self) -> bool {
        !matches!(self, Staged::Bytes(None))
    }

    /// The value as stored bytes (decoded values are encoded).
    fn to_bytes(&self) -> Result<Option<Vec<u8>>> {
        match self {
            Staged::Bytes(v) => Ok(v.clone()),
            Staged::Decoded { value, .. } => value.encode().map(Some),
        }
    }

    /// The value as type `T`: a decoded value of another type (a model
    /// reading one key as two types) goes through its bytes.
    fn to_value<T: Row>(&self) -> Result<Option<T>> {
        match self {
            Staged::Bytes(v) => v.as_deref().map(codec::decode).transpose(),
            Staged::Decoded { value, .. } => match value.as_any().downcast_ref::<T>() {
                Some(v) => Ok(Some(v.clone())),
                None => codec::decode(&value.encode()?).map(Some),
            },
        }
    }
}

type StagedMap = HashMap<Vec<u8>, Staged, foldhash::fast::RandomState>;

/// What a key held in the overlay before the current event changed it:
/// `None` when the overlay did not hold it.
type Undo = Vec<(Vec<u8>, Option<Staged>)>;

/// What an overlay entry is counted as beyond its key and value bytes
/// (the map's node share and the two vectors' headers).
const ENTRY_OVERHEAD: usize = 64;

/// What a key in the overlay's key order ([`Overlay::scan_prefix`]) is
/// counted as beyond its bytes.
const ORDERED_OVERHEAD: usize = 32;

fn entry_bytes(key: &[u8], slot: &Staged) -> usize {
    let value = match slot {
        Staged::Bytes(v) => v.as_ref().map_or(0, Vec::len),
        Staged::Decoded { size, .. } => *size,
    };
    key.len() + value + ENTRY_OVERHEAD
}

/// What a decoded value of `encoded` bytes counts for: strings and maps
/// decoded take about twice their encoded size.
fn decoded_size(encoded: usize) -> usize {
    2 * encoded + ENTRY_OVERHEAD
}

/// The writes of one projection's batch (or a rebuild's run of batches),
/// held in memory over its tree until they are committed with the
/// checkpoint; reads see the tree with the writes on top.
pub struct Overlay {
    tree: Tree,
    /// Overlay of this batch (of the events applied successfully and of the
    /// event being applied) and values kept decoded.
    staged: StagedMap,
    /// How to take the current event's writes out of `staged` again.
    undo: Undo,
    /// Whether `undo` is kept: not for a rebuild, which never commits
    /// after a failed event.
    undoable: bool,
    /// An event's writes were discarded without an undo log: the overlay
    /// no longer matches the events it was given and must not commit.
    poisoned: bool,
    /// Roughly the memory `staged` holds ([`Overlay::bytes`]).
    bytes: usize,
    /// The tree holds no data: a rebuild's new tree before its first
    /// commit. Reads then answer from `staged` alone.
    empty_tree: bool,
    /// `staged`'s keys in order, from the first [`Overlay::scan_prefix`]
    /// up to the commit (`None` until then). It may still hold keys
    /// `staged` no longer does; a scan skips them.
    ordered: Option<BTreeSet<Vec<u8>>>,
}

impl Overlay {
    pub(crate) fn new(tree: Tree) -> Self {
        Overlay {
            tree,
            staged: StagedMap::default(),
            undo: Undo::new(),
            undoable: true,
            poisoned: false,
            bytes: 0,
            empty_tree: false,
            ordered: None,
        }
    }

    /// An overlay a rebuild keeps over many batches (committed with
    /// [`Overlay::commit_unserved`]). When `tree` holds no data yet, reads skip
    /// it until the first commit. It keeps no undo log: after
    /// [`Overlay::discard_event`] it refuses to commit.
    pub(crate) fn for_rebuild(tree: Tree) -> Self {
        // An error reading counts as data: reads then go to the tree.
        let empty_tree = tree
            .range::<&[u8], _>([META_PREFIX + 1].as_slice()..)
            .next()
            .is_none();
        let mut writes = Overlay::new(tree);
        writes.empty_tree = empty_tree;
        writes.undoable = false;
        writes
    }

    /// The value under `key`, as the batch so far has left it.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        match self.staged.get(key) {
            Some(slot) => slot.to_bytes(),
            None => self.stored(key),
        }
    }

    /// Calls `f` with the bytes the tree holds under `key` (none while a
    /// rebuild's tree is empty), without copying them.
    fn with_stored<T>(&self, key: &[u8], f: impl FnOnce(Option<&[u8]>) -> Result<T>) -> Result<T> {
        if self.empty_tree {
            return f(None);
        }
        f(self.tree.get(key)?.as_deref())
    }

    /// Whether the tree itself (not the overlay) holds `key`.
    fn tree_holds(&self, key: &[u8]) -> Result<bool> {
        Ok(!self.empty_tree && self.tree.contains_key(key)?)
    }

    /// Puts `slot` under `key` in `staged` (and in the key order, once
    /// there is one), returning what it replaces.
    fn put_staged(&mut self, key: Vec<u8>, slot: Staged) -> Option<Staged> {
        if let Some(ordered) = &mut self.ordered {
            if !ordered.contains(&key) {
                self.bytes += key.len() + ORDERED_OVERHEAD;
                ordered.insert(key.clone());
            }
        }
        self.staged.insert(key, slot)
    }

    /// Puts `slot` under `key`, keeping what it replaces in the undo log.
    fn stage(&mut self, key: Vec<u8>, slot: Staged) {
        self.bytes += entry_bytes(&key, &slot);
        if self.undoable {
            let before = self.put_staged(key.clone(), slot);
            self.bytes -= before.as_ref().map_or(0, |b| entry_bytes(&key, b));
            self.undo.push((key, before));
        } else {
            let key_len = key.len();
            if let Some(before) = self.put_staged(key, slot) {
                self.bytes -= entry_bytes(&[], &before) + key_len;
            }
        }
    }

    fn write(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) -> Result<()> {
        check_key(&key)?;
        if value.is_none() {
            match self.staged.get(&key) {
                // A key this batch created and now removes again leaves no
                // tombstone: moved index keys (a counter's rank) would
                // otherwise make up most of a commit.
                Some(slot) if slot.is_write() && slot.is_some() && !self.tree_holds(&key)? => {
                    if let Some(before) = self.staged.remove(&key) {
                        self.bytes -= entry_bytes(&key, &before);
                        if self.undoable {
                            self.undo.push((key, Some(before)));
                        }
                    }
                    return Ok(());
                }
                // Nothing to remove, in the overlay or below it.
                None if self.empty_tree => return Ok(()),
                _ => {}
            }
        }
        self.stage(key, Staged::Bytes(value));
        Ok(())
    }

    /// What the tree holds under `key`, whatever the overlay holds: the
    /// value as of the last commit.
    pub fn stored(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with_stored(key, |v| Ok(v.map(<[u8]>::to_vec)))
    }

    /// The keys under `prefix` that the overlay writes (or removes), in no
    /// particular order.
    pub fn written_keys(&self, prefix: &[u8]) -> Vec<Vec<u8>> {
        self.staged
            .iter()
            .filter(|(k, slot)| slot.is_write() && k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether `key` holds a value.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        match self.staged.get(key) {
            Some(slot) => Ok(slot.is_some()),
            None => Ok(self.tree_holds(key)?),
        }
    }

    /// Sets `key` to `value`. Keys starting with 0x00 are the engine's.
    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Result<()> {
        self.write(key.into(), Some(value.into()))
    }

    /// Removes `key` (a no-op when absent).
    pub fn remove(&mut self, key: impl Into<Vec<u8>>) -> Result<()> {
        self.write(key.into(), None)
    }

    /// The decoded value under `key` (a copy of the kept value when the
    /// batch holds it decoded).
    pub fn get_value<T: Row>(&self, key: &[u8]) -> Result<Option<T>> {
        match self.staged.get(key) {
            Some(slot) => slot.to_value(),
            None => self.with_stored(key, |v| v.map(codec::decode).transpose()),
        }
    }

    /// Overlay `value` under `key`, kept decoded until the commit.
    pub fn put_value<T: Row>(&mut self, key: impl Into<Vec<u8>>, value: &T) -> Result<()> {
        let key = key.into();
        check_key(&key)?;
        // It keeps the size of the decoded value it replaces; a new value
        // is measured (counting its encoded bytes, not making them).
        let size = match self.staged.get(&key) {
            Some(Staged::Decoded { size, .. }) => *size,
            _ => decoded_size(codec::encoded_len(value)?),
        };
        self.stage(
            key,
            Staged::Decoded {
                value: Box::new(value.clone()),
                written: true,
                size,
            },
        );
        Ok(())
    }

    /// Makes sure the overlay holds the value under `key` decoded as a
    /// `T` (reading the tree once if it has to); `false` when there is
    /// no value.
    fn load<T: Row>(&mut self, key: &[u8]) -> Result<bool> {
        let (value, written, encoded) = match self.staged.get(key) {
            Some(Staged::Decoded { value, .. }) if value.as_any().is::<T>() => return Ok(true),
            Some(Staged::Bytes(None)) => return Ok(false),
            Some(Staged::Bytes(Some(b))) => (codec::decode::<T>(b)?, true, b.len()),
            Some(Staged::Decoded { value, written, .. }) => {
                let b = value.encode()?;
                (codec::decode::<T>(&b)?, *written, b.len())
            }
            None => {
                let stored = self.with_stored(key, |v| {
                    v.map(|b| Ok((codec::decode::<T>(b)?, b.len()))).transpose()
                })?;
                let Some((value, encoded)) = stored else {
                    return Ok(false);
                };
                (value, false, encoded)
            }
        };
        let slot = Staged::Decoded {
            value: Box::new(value),
            written,
            size: decoded_size(encoded),
        };
        // The same value in another form: no undo needed.
        let before = self.put_staged(key.to_vec(), slot);
        self.bytes += entry_bytes(key, &self.staged[key]);
        self.bytes -= before.as_ref().map_or(0, |b| entry_bytes(key, b));
        Ok(true)
    }

    /// Calls `f` with the value under `key` (`None` when there is none),
    /// decoding it at most once per batch: the overlay keeps it decoded
    /// for later reads and updates.
    pub fn read_value<T: Row, R>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&T) -> R,
    ) -> Result<Option<R>> {
        if !self.load::<T>(key)? {
            return Ok(None);
        }
        match self.staged.get(key) {
            Some(Staged::Decoded { value, .. }) => Ok(value.as_any().downcast_ref::<T>().map(f)),
            _ => Ok(None),
        }
    }

    /// Changes the value under `key` in place: `f` returns whether it
    /// changed it (it must not change it and return `false`), and only a
    /// changed value is written. `None` when there is no value (`f` is
    /// not called). The value stays decoded in the overlay, so a row that
    /// each event of a recording updates is decoded and encoded once per
    /// batch, not once per event.
    pub fn update_value<T: Row>(
        &mut self,
        key: &[u8],
        f: impl FnOnce(&mut T) -> Result<bool>,
    ) -> Result<Option<bool>> {
        check_key(key)?;
        if !self.load::<T>(key)? {
            return Ok(None);
        }
        let Some(Staged::Decoded {
            value,
            written,
            size,
        }) = self.staged.get_mut(key)
        else {
            return Ok(None);
        };
        if !self.undoable {
            // A failing `f` leaves the value half changed: the rebuild
            // stops at this event and drops its tree.
            let Some(v) = value.as_any_mut().downcast_mut::<T>() else {
                return Ok(None);
            };
            let changed = f(v)?;
            *written |= changed;
            return Ok(Some(changed));
        }
        let Some(current) = value.as_any().downcast_ref::<T>() else {
            return Ok(None);
        };
        let mut next = current.clone();
        let size = *size;
        if !f(&mut next)? {
            return Ok(Some(false));
        }
        self.stage(
            key.to_vec(),
            Staged::Decoded {
                value: Box::new(next),
                written: true,
                size,
            },
        );
        Ok(Some(true))
    }

    /// Adds `delta` to the counter under `key` and returns the new value.
    /// A counter that reaches zero is removed, so a read model holds no
    /// empty entries (and top-N scans never see them).
    pub fn add(&mut self, key: impl Into<Vec<u8>>, delta: i64) -> Result<i64> {
        let key = key.into();
        let now = match self.staged.get(&key) {
            Some(Staged::Bytes(v)) => read_counter(v.as_deref()),
            Some(slot) => read_counter(slot.to_bytes()?.as_deref()),
            None => self.with_stored(&key, |v| Ok(read_counter(v)))?,
        }
        .saturating_add(delta);
        if now == 0 {
            self.remove(key)?;
        } else {
            self.insert(key, now.to_be_bytes().to_vec())?;
        }
        Ok(now)
    }

    /// Every live entry whose key starts with `prefix`, in key order, as the
    /// batch so far has left them.
    pub fn scan_prefix(&mut self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut merged: BTreeMap<Vec<u8>, Option<Vec<u8>>> = BTreeMap::new();
        if !self.empty_tree {
            for kv in self.tree.scan_prefix(prefix) {
                let (k, v) = kv?;
                merged.insert(k.to_vec(), Some(v.to_vec()));
            }
        }
        let staged = &self.staged;
        let ordered = self.ordered.get_or_insert_with(|| {
            self.bytes += staged
                .keys()
                .map(|k| k.len() + ORDERED_OVERHEAD)
                .sum::<usize>();
            staged.keys().cloned().collect()
        });
        let under = ordered
            .range::<[u8], _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|k| k.starts_with(prefix));
        for k in under {
            if let Some(slot) = staged.get(k) {
                merged.insert(k.clone(), slot.to_bytes()?);
            }
        }
        Ok(merged
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .collect())
    }

    /// Keeps the current event's writes in the batch.
    pub(crate) fn seal_event(&mut self) {
        self.undo.clear();
    }

    /// Drops the current event's writes (its `apply` failed). Without an
    /// undo log (a rebuild's overlay) the overlay can no longer commit.
    pub(crate) fn discard_event(&mut self) {
        if !self.undoable {
            self.poisoned = true;
            return;
        }
        // Newest first, so a key written twice gets its oldest value back.
        while let Some((key, before)) = self.undo.pop() {
            self.bytes += before.as_ref().map_or(0, |v| entry_bytes(&key, v));
            let undone = match before {
                Some(value) => self.put_staged(key.clone(), value),
                None => self.staged.remove(&key),
            };
            self.bytes -= undone.as_ref().map_or(0, |v| entry_bytes(&key, v));
        }
    }

    /// Roughly the memory the overlay holds, in bytes: what a rebuild
    /// bounds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Whether the batch holds no writes (once the last event is sealed
    /// or discarded).
    pub(crate) fn is_empty(&self) -> bool {
        !self.staged.values().any(Staged::is_write)
    }

    /// Applies the batch's writes and the checkpoint in one atomic
    /// batch: data and checkpoint are never out of step. Hands back what
    /// the batch changed (for [`Projection::committed`](super::Projection::committed)).
    pub(crate) fn commit(mut self, checkpoint: u64, version: u32) -> Result<Changes> {
        self.commit_now(checkpoint, version)
    }

    /// [`Overlay::commit`], keeping the overlay for more events: it starts
    /// again empty, over the tree as committed.
    pub(crate) fn commit_now(&mut self, checkpoint: u64, version: u32) -> Result<Changes> {
        let staged = self.take_staged()?;
        let checkpoint = Checkpoint {
            position: checkpoint,
            version,
        };
        self.tree.apply(&staged, Some(checkpoint))?;
        self.empty_tree = false;
        Ok(staged)
    }

    /// Like [`Overlay::commit_now`], but writes the data key by key and
    /// then the checkpoint and version, not as one atomic batch ([`Keyspace::fill`]): sled
    /// runs one batch at a time across all trees, single writes side by
    /// side. Only for a rebuild's tree: nothing reads it before it is
    /// complete and swapped in, and an interrupted rebuild's tree is
    /// never current and is dropped on the next start, so it is never
    /// seen half written.
    pub(crate) fn commit_unserved(&mut self, checkpoint: u64, version: u32) -> Result<Changes> {
        let staged = self.take_staged()?;
        let checkpoint = Checkpoint {
            position: checkpoint,
            version,
        };
        self.tree.fill(&staged, checkpoint)?;
        self.empty_tree = false;
        Ok(staged)
    }

    /// The overlay's writes in key order, decoded values encoded, leaving
    /// it empty.
    fn take_staged(&mut self) -> Result<Changes> {
        if self.poisoned {
            return Err(ProjectionError::Invariant(
                "an overlay without undo log lost a failed event's writes: it cannot commit".into(),
            ));
        }
        self.seal_event();
        self.bytes = 0;
        self.ordered = None;
        let mut changes = Vec::with_capacity(self.staged.len());
        for (k, slot) in std::mem::take(&mut self.staged) {
            if slot.is_write() {
                let v = match slot {
                    Staged::Bytes(v) => v,
                    Staged::Decoded { value, .. } => Some(value.encode()?),
                };
                changes.push((k, v));
            }
        }
        // A map collected from a vector is sorted once and built in one
        // pass, rather than key by key.
        Ok(changes.into_iter().collect())
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.first() == Some(&META_PREFIX) || key.is_empty() {
        return Err(ProjectionError::ReservedKey(key.to_vec()));
    }
    Ok(())
}

/// A counter as [`Overlay::add`] stores it (absent: 0).
pub fn read_counter(bytes: Option<&[u8]>) -> i64 {
    bytes
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(i64::from_be_bytes)
        .unwrap_or(0)
}

/// The checkpoint stored in a projection tree (0: nothing applied).
pub(crate) fn stored_checkpoint(tree: &Tree) -> Result<u64> {
    Ok(tree.checkpoint()?.map_or(0, |c| c.position))
}

/// The code version stored in a projection tree, `None` for a fresh tree.
pub(crate) fn stored_version(tree: &Tree) -> Result<Option<u32>> {
    Ok(tree.checkpoint()?.map(|c| c.version))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::store::{Db, Store};

    fn tree() -> Tree {
        Db::temporary().unwrap().open("t").unwrap()
    }

    /// Writes one key straight to the tree.
    fn put(t: &Tree, key: &[u8], value: Option<Vec<u8>>) {
        t.apply(&[(key.to_vec(), value)].into_iter().collect(), None)
            .unwrap();
    }

    #[test]
    fn reads_see_earlier_writes_of_the_batch() {
        let t = tree();
        put(&t, b"a", Some(b"1".to_vec()));
        let mut w = Overlay::new(t.clone());
        w.insert(b"b".to_vec(), b"2".to_vec()).unwrap();
        w.seal_event();
        w.remove(b"a".to_vec()).unwrap();
        assert_eq!(w.get(b"a").unwrap(), None);
        assert_eq!(w.get(b"b").unwrap(), Some(b"2".to_vec()));
        assert_eq!(
            w.scan_prefix(b"").unwrap(),
            vec![(b"b".to_vec(), b"2".to_vec())]
        );
        // Nothing reached the tree yet.
        assert_eq!(t.get(b"b").unwrap(), None);
        w.commit(7, 3).unwrap();
        assert_eq!(t.get(b"a").unwrap(), None);
        assert_eq!(stored_checkpoint(&t).unwrap(), 7);
        assert_eq!(stored_version(&t).unwrap(), Some(3));
    }

    /// Random writes, removals, sealed and discarded events and commits
    /// over three prefixes, with prefix scans at random steps compared
    /// with a model (the overlay's key order is made at a batch's first
    /// scan and kept up to its commit, through writes and undone events).
    fn prefix_scans_follow_a_model(rebuild: bool) {
        let t = tree();
        let mut w = if rebuild {
            Overlay::for_rebuild(t.clone())
        } else {
            Overlay::new(t.clone())
        };
        // Sealed events, and with the current event's writes.
        let mut sealed: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut now = sealed.clone();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..20_000u64 {
            let key = vec![b'a' + next(3) as u8, b'0' + next(4) as u8];
            match next(12) {
                0..=4 => {
                    let value = step.to_string().into_bytes();
                    w.insert(key.clone(), value.clone()).unwrap();
                    now.insert(key, value);
                }
                5..=7 => {
                    w.remove(key.clone()).unwrap();
                    now.remove(&key);
                }
                8 | 9 => {
                    w.seal_event();
                    sealed = now.clone();
                }
                10 if !rebuild => {
                    w.discard_event();
                    now = sealed.clone();
                }
                _ => {
                    w.seal_event();
                    sealed = now.clone();
                    if rebuild {
                        w.commit_unserved(step + 1, 1).unwrap();
                    } else {
                        w.commit_now(step + 1, 1).unwrap();
                    }
                }
            }
            // Scans at random moments: the key order is made at the first.
            if next(3) != 0 {
                continue;
            }
            let prefix = [b'a' + next(3) as u8];
            let want: Vec<(Vec<u8>, Vec<u8>)> = now
                .range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(w.scan_prefix(&prefix).unwrap(), want, "step {step}");
        }
    }

    #[test]
    fn a_scan_sees_what_an_undone_event_gives_back() {
        let mut w = Overlay::new(tree());
        w.insert(b"k1".to_vec(), b"1".to_vec()).unwrap();
        w.seal_event();
        w.insert(b"k2".to_vec(), b"2".to_vec()).unwrap();
        w.seal_event();
        // Made by this batch, so removed without a tombstone.
        w.remove(b"k1".to_vec()).unwrap();
        let unordered = w.bytes();
        assert_eq!(
            w.scan_prefix(b"k").unwrap(),
            vec![(b"k2".to_vec(), b"2".to_vec())]
        );
        // The key order counts towards what a rebuild's overlay holds.
        assert!(w.bytes() > unordered, "{} <= {unordered}", w.bytes());
        w.discard_event();
        assert_eq!(
            w.scan_prefix(b"k").unwrap(),
            vec![
                (b"k1".to_vec(), b"1".to_vec()),
                (b"k2".to_vec(), b"2".to_vec())
            ]
        );
    }

    #[test]
    fn prefix_scans_see_the_batch_in_order() {
        prefix_scans_follow_a_model(false);
    }

    #[test]
    fn prefix_scans_of_a_rebuild_see_its_overlay_in_order() {
        prefix_scans_follow_a_model(true);
    }

    #[test]
    fn a_discarded_event_leaves_no_trace() {
        let t = tree();
        let mut w = Overlay::new(t.clone());
        w.add(b"n".to_vec(), 2).unwrap();
        w.seal_event();
        w.add(b"n".to_vec(), 5).unwrap();
        w.discard_event();
        assert_eq!(read_counter(w.get(b"n").unwrap().as_deref()), 2);
        assert_eq!(w.add(b"n".to_vec(), -2).unwrap(), 0);
        assert_eq!(w.get(b"n").unwrap(), None);
    }

    #[test]
    fn a_discarded_event_gives_back_what_it_overwrote() {
        let t = tree();
        put(&t, b"t", Some(b"tree".to_vec()));
        let mut w = Overlay::new(t.clone());
        w.insert(b"k".to_vec(), b"1".to_vec()).unwrap();
        w.seal_event();
        w.insert(b"k".to_vec(), b"2".to_vec()).unwrap();
        w.insert(b"k".to_vec(), b"3".to_vec()).unwrap();
        w.remove(b"k".to_vec()).unwrap();
        w.insert(b"new".to_vec(), b"x".to_vec()).unwrap();
        w.remove(b"t".to_vec()).unwrap();
        assert_eq!(w.get(b"k").unwrap(), None);
        assert_eq!(w.get(b"t").unwrap(), None);
        w.discard_event();
        assert_eq!(w.get(b"k").unwrap(), Some(b"1".to_vec()));
        assert_eq!(w.get(b"new").unwrap(), None);
        assert_eq!(w.get(b"t").unwrap(), Some(b"tree".to_vec()));
        assert_eq!(
            w.scan_prefix(b"").unwrap(),
            vec![
                (b"k".to_vec(), b"1".to_vec()),
                (b"t".to_vec(), b"tree".to_vec())
            ]
        );
        w.commit(2, 1).unwrap();
        assert_eq!(t.get(b"k").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(t.get(b"new").unwrap(), None);
        assert_eq!(t.get(b"t").unwrap().as_deref(), Some(&b"tree"[..]));
    }

    #[test]
    fn a_key_created_and_removed_in_one_batch_leaves_no_tombstone() {
        let t = tree();
        put(&t, b"old", Some(b"1".to_vec()));
        let mut w = Overlay::new(t.clone());
        w.insert(b"new".to_vec(), b"1".to_vec()).unwrap();
        w.insert(b"old".to_vec(), b"2".to_vec()).unwrap();
        w.seal_event();
        w.remove(b"new".to_vec()).unwrap();
        w.remove(b"old".to_vec()).unwrap();
        // The stored key still needs its tombstone; the new one needs none.
        assert_eq!(w.staged.len(), 1);
        assert_eq!(w.get(b"new").unwrap(), None);
        assert_eq!(w.get(b"old").unwrap(), None);
        w.discard_event();
        assert_eq!(w.get(b"new").unwrap(), Some(b"1".to_vec()));
        assert_eq!(w.get(b"old").unwrap(), Some(b"2".to_vec()));
        w.remove(b"new".to_vec()).unwrap();
        w.remove(b"old".to_vec()).unwrap();
        w.seal_event();
        w.commit(3, 1).unwrap();
        assert_eq!(t.get(b"new").unwrap(), None);
        assert_eq!(t.get(b"old").unwrap(), None);
    }

    #[test]
    fn a_rebuild_overlay_answers_alone_until_its_first_commit_then_reads_the_tree() {
        let t = tree();
        let mut w = Overlay::for_rebuild(t.clone());
        assert!(w.empty_tree);
        // Removing what nothing holds stages nothing.
        w.remove(b"ghost".to_vec()).unwrap();
        assert!(w.is_empty());
        assert_eq!(w.bytes(), 0);
        w.add(b"n".to_vec(), 2).unwrap();
        w.insert(b"k".to_vec(), b"v".to_vec()).unwrap();
        w.seal_event();
        assert!(w.bytes() > 0);
        w.insert(b"k".to_vec(), b"longer value".to_vec()).unwrap();
        w.insert(b"k".to_vec(), b"v".to_vec()).unwrap();
        w.seal_event();
        assert_eq!(w.get(b"k").unwrap(), Some(b"v".to_vec()));
        let changes = w.commit_now(5, 1).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(w.bytes(), 0);
        assert!(w.is_empty());
        assert_eq!(stored_checkpoint(&t).unwrap(), 5);
        // The tree now holds data: reads and removes see it.
        assert!(!w.empty_tree);
        assert_eq!(read_counter(w.get(b"n").unwrap().as_deref()), 2);
        w.remove(b"k".to_vec()).unwrap();
        w.insert(b"m".to_vec(), b"1".to_vec()).unwrap();
        w.seal_event();
        let changes = w.commit_unserved(6, 1).unwrap();
        assert_eq!(changes.len(), 2);
        assert_eq!(t.get(b"m").unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(stored_version(&t).unwrap(), Some(1));
        assert_eq!(t.get(b"k").unwrap(), None);
        assert_eq!(stored_checkpoint(&t).unwrap(), 6);
    }

    #[test]
    fn a_rebuild_overlay_that_lost_a_failed_event_refuses_to_commit() {
        let t = tree();
        let mut w = Overlay::for_rebuild(t.clone());
        w.insert(b"k".to_vec(), b"v".to_vec()).unwrap();
        w.seal_event();
        w.put_value(b"row".to_vec(), &7u64).unwrap();
        w.discard_event();
        assert!(matches!(
            w.commit_unserved(2, 1),
            Err(ProjectionError::Invariant(_))
        ));
        assert!(t.is_empty());
    }

    #[test]
    fn decoded_values_are_read_updated_and_encoded_once_at_the_commit() {
        let t = tree();
        put(&t, b"stored", Some(codec::encode(&vec![1u32]).unwrap()));
        for mut w in [Overlay::new(t.clone()), Overlay::for_rebuild(t.clone())] {
            // A value read but not changed is no write.
            assert_eq!(
                w.read_value(b"stored", |v: &Vec<u32>| v.len()).unwrap(),
                Some(1)
            );
            assert_eq!(
                w.update_value(b"stored", |_: &mut Vec<u32>| Ok(false))
                    .unwrap(),
                Some(false)
            );
            assert!(w.is_empty());
            assert_eq!(
                w.update_value(b"absent", |_: &mut Vec<u32>| Ok(true))
                    .unwrap(),
                None
            );
            // Changed in place: later reads, of either kind, see it.
            let grow = |v: &mut Vec<u32>| {
                v.push(2);
                Ok(true)
            };
            assert_eq!(w.update_value(b"stored", grow).unwrap(), Some(true));
            w.put_value(b"new".to_vec(), &vec![9u32]).unwrap();
            assert_eq!(w.update_value(b"new", grow).unwrap(), Some(true));
            w.seal_event();
            assert_eq!(
                w.get_value::<Vec<u32>>(b"stored").unwrap(),
                Some(vec![1, 2])
            );
            assert_eq!(
                w.get(b"new").unwrap(),
                Some(codec::encode(&vec![9u32, 2]).unwrap())
            );
            assert!(w.contains(b"new").unwrap());
            let changes = w.commit_now(3, 1).unwrap();
            assert_eq!(changes.len(), 2);
            assert_eq!(
                changes[&b"stored"[..]],
                Some(codec::encode(&vec![1u32, 2]).unwrap())
            );
            assert_eq!(
                codec::decode::<Vec<u32>>(&t.get(b"new").unwrap().unwrap()).unwrap(),
                vec![9, 2]
            );
            put(&t, b"stored", Some(codec::encode(&vec![1u32]).unwrap()));
            put(&t, b"new", None);
        }
    }

    #[test]
    fn a_discarded_event_gives_back_a_decoded_value_it_changed() {
        let t = tree();
        put(&t, b"row", Some(codec::encode(&vec![1u32]).unwrap()));
        let mut w = Overlay::new(t.clone());
        let push = |n: u32| {
            move |v: &mut Vec<u32>| {
                v.push(n);
                Ok(true)
            }
        };
        w.update_value(b"row", push(2)).unwrap();
        w.seal_event();
        w.update_value(b"row", push(3)).unwrap();
        w.remove(b"row".to_vec()).unwrap();
        assert_eq!(w.get(b"row").unwrap(), None);
        w.discard_event();
        assert_eq!(w.get_value::<Vec<u32>>(b"row").unwrap(), Some(vec![1, 2]));
        // A failing update changes nothing either.
        let fail = |v: &mut Vec<u32>| {
            v.clear();
            Err(ProjectionError::Invariant("no".into()))
        };
        assert!(w.update_value(b"row", fail).is_err());
        w.discard_event();
        assert_eq!(w.get_value::<Vec<u32>>(b"row").unwrap(), Some(vec![1, 2]));
        w.commit(4, 1).unwrap();
        assert_eq!(
            codec::decode::<Vec<u32>>(&t.get(b"row").unwrap().unwrap()).unwrap(),
            vec![1, 2]
        );
    }

    #[test]
    fn a_rebuild_overlay_over_a_tree_with_data_reads_it() {
        let t = tree();
        put(&t, b"k", Some(b"stored".to_vec()));
        let mut w = Overlay::for_rebuild(t);
        assert!(!w.empty_tree);
        assert_eq!(w.get(b"k").unwrap(), Some(b"stored".to_vec()));
        assert_eq!(w.scan_prefix(b"k").unwrap().len(), 1);
    }

    #[test]
    fn the_meta_prefix_is_reserved() {
        let mut w = Overlay::new(tree());
        assert!(matches!(
            w.insert(b"\x00checkpoint".to_vec(), b"x".to_vec()),
            Err(ProjectionError::ReservedKey(_))
        ));
    }
}
