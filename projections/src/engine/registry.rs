//! Which sled tree is a projection's current one.
//!
//! A projection's data lives in a tree named `projection/<name>#<generation>`.
//! The registry tree (`projections`) maps each name to its current tree.
//! A rebuild writes a new generation and flips the pointer only when the
//! new tree is complete; any tree of a projection that the pointer does not
//! name (an interrupted rebuild, an old generation whose drop a crash
//! interrupted) is dropped on start.

use crate::engine::writes::stored_version;
use crate::error::Result;

/// The tree that maps projection names to their current trees.
pub const REGISTRY_TREE: &str = "projections";

/// The sled tree name of `name`'s tree of `generation`.
pub fn tree_name(name: &str, generation: u64) -> String {
    format!("projection/{name}#{generation}")
}

/// The projection name and generation a tree name encodes (the inverse of
/// [`tree_name`]); `None` for any other tree.
pub fn parse_tree_name(tree: &[u8]) -> Option<(&str, u64)> {
    let tree = std::str::from_utf8(tree).ok()?;
    let (name, generation) = tree.strip_prefix("projection/")?.rsplit_once('#')?;
    Some((name, generation.parse().ok()?))
}

fn generation_of(name: &str, tree: &[u8]) -> Option<u64> {
    parse_tree_name(tree).and_then(|(n, generation)| (n == name).then_some(generation))
}

fn current_key(name: &str) -> Vec<u8> {
    format!("current/{name}").into_bytes()
}

/// The registry of current trees, over the shared sled database.
#[derive(Clone, Debug)]
pub(crate) struct Registry {
    db: sled::Db,
    tree: sled::Tree,
}

/// A projection's current tree, as opened on start.
pub(crate) struct Opened {
    pub tree: sled::Tree,
    pub generation: u64,
    /// True when the stored version differed from the code's: the tree is
    /// a fresh one to be filled from position 1.
    pub rebuilding: bool,
}

impl Registry {
    pub fn open(db: &sled::Db) -> Result<Self> {
        Ok(Registry {
            db: db.clone(),
            tree: db.open_tree(REGISTRY_TREE)?,
        })
    }

    /// The generation of `name`'s current tree, if it has one.
    pub fn current(&self, name: &str) -> Result<Option<u64>> {
        Ok(self
            .tree
            .get(current_key(name))?
            .and_then(|v| generation_of(name, &v)))
    }

    /// Points `name` at its tree of `generation`, durably: after this
    /// returns, a restart serves that tree.
    pub fn set_current(&self, name: &str, generation: u64) -> Result<()> {
        self.tree
            .insert(current_key(name), tree_name(name, generation).into_bytes())?;
        self.tree.flush()?;
        Ok(())
    }

    /// The generations of `name` present in the database.
    fn generations(&self, name: &str) -> Vec<u64> {
        self.db
            .tree_names()
            .iter()
            .filter_map(|t| generation_of(name, t))
            .collect()
    }

    /// A fresh, empty tree for `name` with a generation never used before.
    pub fn fresh(&self, name: &str) -> Result<(sled::Tree, u64)> {
        let generation = self
            .generations(name)
            .into_iter()
            .chain(self.current(name)?)
            .max()
            .unwrap_or(0)
            + 1;
        let tree = self.db.open_tree(tree_name(name, generation))?;
        Ok((tree, generation))
    }

    /// Drops `name`'s tree of `generation`. Only for trees no reader holds.
    pub fn drop_generation(&self, name: &str, generation: u64) -> Result<()> {
        self.db.drop_tree(tree_name(name, generation))?;
        Ok(())
    }

    /// Opens `name`'s current tree, creating it on first start and
    /// replacing it by a fresh one when its stored version is not
    /// `version`; drops every other tree of `name`.
    pub fn open_current(&self, name: &str, version: u32) -> Result<Opened> {
        let (tree, generation, rebuilding) = match self.current(name)? {
            Some(generation) => {
                let tree = self.db.open_tree(tree_name(name, generation))?;
                match stored_version(&tree)? {
                    Some(stored) if stored != version => {
                        tracing::info!(
                            projection = name,
                            stored,
                            version,
                            "version changed: rebuilding from position 1"
                        );
                        drop(tree);
                        let (fresh, generation) = self.fresh(name)?;
                        self.set_current(name, generation)?;
                        (fresh, generation, true)
                    }
                    _ => (tree, generation, false),
                }
            }
            None => {
                let (fresh, generation) = self.fresh(name)?;
                self.set_current(name, generation)?;
                (fresh, generation, false)
            }
        };
        for other in self.generations(name) {
            if other != generation {
                tracing::info!(
                    projection = name,
                    generation = other,
                    "dropping an orphaned tree"
                );
                self.drop_generation(name, other)?;
            }
        }
        Ok(Opened {
            tree,
            generation,
            rebuilding,
        })
    }
}
