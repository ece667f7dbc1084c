//! [`Generations`]: which keyspace is a projection's current one.
//!
//! A projection's data lives in a keyspace (a tree) named
//! `projection/<name>#<generation>`. The registry tree (`projections`)
//! maps each name to its current tree (key `current/<name>`, value the
//! tree's name).
//! A rebuild writes a new generation and flips the pointer only when the
//! new tree is complete; any tree of a projection that the pointer does not
//! name (an interrupted rebuild, an old generation whose drop a crash
//! interrupted) is dropped on start.

use super::{Db, Keyspace, Store, Tree};
use crate::error::Result;

/// The tree that maps projection names to their current trees.
pub const REGISTRY_TREE: &str = "projections";

/// The keyspace name of `name`'s tree of `generation`.
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

/// The generations of every projection's keyspace and which one is
/// current, over one database.
#[derive(Clone, Debug)]
pub struct Generations {
    db: Db,
    /// The registry tree: the current generation of each projection.
    tree: Tree,
}

/// A projection's current tree, as opened on start.
pub struct CurrentTree {
    pub tree: Tree,
    pub generation: u64,
    /// True when the stored version differed from the code's: the tree is
    /// a fresh one to be filled from position 1.
    pub rebuilding: bool,
}

impl Generations {
    /// The generations kept in `db`.
    pub fn open(db: &Db) -> Result<Self> {
        Ok(Generations {
            db: db.clone(),
            tree: db.open(REGISTRY_TREE)?,
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
        let pointer = [(
            current_key(name),
            Some(tree_name(name, generation).into_bytes()),
        )];
        self.tree.apply(&pointer.into_iter().collect(), None)?;
        self.tree.flush()?;
        Ok(())
    }

    /// The generations of `name` present in the database.
    fn generations(&self, name: &str) -> Vec<u64> {
        self.db
            .names()
            .iter()
            .filter_map(|t| generation_of(name, t.as_bytes()))
            .collect()
    }

    /// A fresh, empty tree for `name` with a generation never used before.
    pub fn fresh(&self, name: &str) -> Result<(Tree, u64)> {
        let generation = self
            .generations(name)
            .into_iter()
            .chain(self.current(name)?)
            .max()
            .unwrap_or(0)
            + 1;
        let tree = self.db.open(&tree_name(name, generation))?;
        Ok((tree, generation))
    }

    /// Drops `name`'s tree of `generation`. Only for trees no reader holds.
    pub fn drop_generation(&self, name: &str, generation: u64) -> Result<()> {
        self.db.drop_keyspace(&tree_name(name, generation))?;
        Ok(())
    }

    /// Opens `name`'s current tree, creating it on first start and
    /// replacing it by a fresh one when its stored version is not
    /// `version`; drops every other tree of `name`.
    pub fn open_current(&self, name: &str, version: u32) -> Result<CurrentTree> {
        let (tree, generation, rebuilding) = match self.current(name)? {
            Some(generation) => {
                let tree = self.db.open(&tree_name(name, generation))?;
                match tree.checkpoint()?.map(|c| c.version) {
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
        Ok(CurrentTree {
            tree,
            generation,
            rebuilding,
        })
    }
}
