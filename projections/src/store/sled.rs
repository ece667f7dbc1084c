//! The sled implementation of [`Store`] and [`Keyspace`].
//!
//! A keyspace is a sled tree of the same name; a checkpoint is two keys
//! of that tree, `\x00checkpoint` (the position, u64 big-endian) and
//! `\x00version` (u32 big-endian), written in the same `apply_batch` as
//! the data. This is the layout data directories already hold.

use std::ops::RangeBounds;

use super::{Changes, Checkpoint, Keyspace, Store, StoreError, StoreResult};

/// The last applied log position (u64 BE).
const CHECKPOINT_KEY: &[u8] = b"\x00checkpoint";
/// The code version the tree's data was written by (u32 BE).
const VERSION_KEY: &[u8] = b"\x00version";

impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Io(io) => StoreError::Io(io),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// A sled database as a [`Store`] (shared with the event log, which keeps
/// its own trees in it).
#[derive(Clone, Debug)]
pub struct SledDb {
    db: sled::Db,
}

impl SledDb {
    /// The store over an open sled database.
    pub fn new(db: sled::Db) -> Self {
        SledDb { db }
    }

    /// The sled database underneath (the event log opens its trees in it).
    pub fn sled(&self) -> &sled::Db {
        &self.db
    }
}

impl From<sled::Db> for SledDb {
    fn from(db: sled::Db) -> Self {
        SledDb::new(db)
    }
}

impl From<&sled::Db> for SledDb {
    fn from(db: &sled::Db) -> Self {
        SledDb::new(db.clone())
    }
}

impl From<&SledDb> for SledDb {
    fn from(db: &SledDb) -> Self {
        db.clone()
    }
}

impl Store for SledDb {
    type Keyspace = SledTree;

    fn temporary() -> StoreResult<Self> {
        Ok(SledDb::new(sled::Config::new().temporary(true).open()?))
    }

    fn open(&self, name: &str) -> StoreResult<SledTree> {
        Ok(SledTree {
            tree: self.db.open_tree(name)?,
            name: name.into(),
        })
    }

    fn drop_keyspace(&self, name: &str) -> StoreResult<()> {
        self.db.drop_tree(name)?;
        Ok(())
    }

    fn names(&self) -> Vec<String> {
        self.db
            .tree_names()
            .iter()
            .filter_map(|n| std::str::from_utf8(n).ok().map(str::to_owned))
            .collect()
    }

    fn flush(&self) -> StoreResult<()> {
        self.db.flush()?;
        Ok(())
    }
}

/// A sled tree as a [`Keyspace`].
#[derive(Clone, Debug)]
pub struct SledTree {
    tree: sled::Tree,
    name: std::sync::Arc<str>,
}

impl From<sled::Tree> for SledTree {
    fn from(tree: sled::Tree) -> Self {
        let name = String::from_utf8_lossy(&tree.name()).into();
        SledTree { tree, name }
    }
}

/// Bytes read from a sled tree (shared, not copied).
pub type SledBytes = sled::IVec;

/// An ordered scan of a sled tree.
pub struct SledIter(sled::Iter);

impl Iterator for SledIter {
    type Item = StoreResult<(SledBytes, SledBytes)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(|kv| kv.map_err(StoreError::from))
    }
}

impl DoubleEndedIterator for SledIter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back().map(|kv| kv.map_err(StoreError::from))
    }
}

fn batch(changes: &Changes) -> sled::Batch {
    let mut batch = sled::Batch::default();
    // sled copies keys and values into its own buffers either way.
    for (k, v) in changes {
        match v {
            Some(v) => batch.insert(k.as_slice(), v.as_slice()),
            None => batch.remove(k.as_slice()),
        }
    }
    batch
}

fn add_checkpoint(batch: &mut sled::Batch, checkpoint: Checkpoint) {
    batch.insert(CHECKPOINT_KEY, &checkpoint.position.to_be_bytes());
    batch.insert(VERSION_KEY, &checkpoint.version.to_be_bytes());
}

impl Keyspace for SledTree {
    type Bytes = SledBytes;
    type Iter = SledIter;

    fn name(&self) -> &str {
        &self.name
    }

    fn get<K: AsRef<[u8]>>(&self, key: K) -> StoreResult<Option<SledBytes>> {
        Ok(self.tree.get(key)?)
    }

    fn contains_key<K: AsRef<[u8]>>(&self, key: K) -> StoreResult<bool> {
        Ok(self.tree.contains_key(key)?)
    }

    fn scan_prefix<P: AsRef<[u8]>>(&self, prefix: P) -> SledIter {
        SledIter(self.tree.scan_prefix(prefix))
    }

    fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> SledIter {
        SledIter(self.tree.range(range))
    }

    fn iter(&self) -> SledIter {
        SledIter(self.tree.iter())
    }

    fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    fn apply(&self, changes: &Changes, checkpoint: Option<Checkpoint>) -> StoreResult<()> {
        let mut batch = batch(changes);
        if let Some(checkpoint) = checkpoint {
            add_checkpoint(&mut batch, checkpoint);
        }
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn fill(&self, changes: &Changes, checkpoint: Checkpoint) -> StoreResult<()> {
        // sled runs one batch at a time across all trees; single writes
        // of several trees run side by side.
        for (k, v) in changes {
            match v {
                Some(v) => self.tree.insert(k.as_slice(), v.as_slice())?,
                None => self.tree.remove(k.as_slice())?,
            };
        }
        let mut batch = sled::Batch::default();
        add_checkpoint(&mut batch, checkpoint);
        self.tree.apply_batch(batch)?;
        Ok(())
    }

    fn checkpoint(&self) -> StoreResult<Option<Checkpoint>> {
        let Some(version) = self
            .tree
            .get(VERSION_KEY)?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes)
        else {
            return Ok(None);
        };
        let position = self
            .tree
            .get(CHECKPOINT_KEY)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(0, u64::from_be_bytes);
        Ok(Some(Checkpoint { position, version }))
    }

    fn flush(&self) -> StoreResult<()> {
        self.tree.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Generations, Keyspace, Store};
    use super::*;

    /// A data directory written before the store existed (raw sled: the
    /// registry's pointer, a generation's tree with its checkpoint keys)
    /// opens as it is: same tree, same data, same checkpoint.
    #[test]
    fn the_layout_data_directories_hold_opens_unchanged() {
        let raw = sled::Config::new().temporary(true).open().unwrap();
        let registry = raw.open_tree("projections").unwrap();
        registry
            .insert("current/tally", "projection/tally#3")
            .unwrap();
        let tree = raw.open_tree("projection/tally#3").unwrap();
        tree.insert(b"total", &7i64.to_be_bytes()).unwrap();
        tree.insert(b"\x00checkpoint", &42u64.to_be_bytes())
            .unwrap();
        tree.insert(b"\x00version", &2u32.to_be_bytes()).unwrap();

        let db = SledDb::new(raw.clone());
        let opened = Generations::open(&db)
            .unwrap()
            .open_current("tally", 2)
            .unwrap();
        assert_eq!(opened.generation, 3);
        assert!(!opened.rebuilding);
        assert_eq!(opened.tree.name(), "projection/tally#3");
        assert_eq!(
            opened.tree.checkpoint().unwrap(),
            Some(Checkpoint {
                position: 42,
                version: 2
            })
        );
        assert_eq!(
            opened.tree.get(b"total").unwrap().as_deref(),
            Some(&7i64.to_be_bytes()[..])
        );

        // And what the store writes, raw sled reads the old way.
        let changes = [(b"total".to_vec(), Some(8i64.to_be_bytes().to_vec()))];
        let next = Checkpoint {
            position: 43,
            version: 2,
        };
        opened
            .tree
            .apply(&changes.into_iter().collect(), Some(next))
            .unwrap();
        assert_eq!(
            tree.get(b"\x00checkpoint").unwrap().as_deref(),
            Some(&43u64.to_be_bytes()[..])
        );
        assert_eq!(
            tree.get(b"total").unwrap().as_deref(),
            Some(&8i64.to_be_bytes()[..])
        );
        assert!(db.names().contains(&"projection/tally#3".to_owned()));
    }

    #[test]
    fn a_fresh_tree_has_no_checkpoint_and_io_errors_say_so() {
        let db = SledDb::temporary().unwrap();
        assert_eq!(db.open("t").unwrap().checkpoint().unwrap(), None);
        let io = StoreError::from(sled::Error::Io(std::io::Error::other("full")));
        assert!(io.is_io());
        assert!(!StoreError::from(sled::Error::Unsupported("x".into())).is_io());
    }
}
