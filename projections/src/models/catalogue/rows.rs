//! [`RowCache`]: decoded catalogue rows kept in memory, bounded, so that a
//! page of recordings is not read and decoded from the tree row by row.
//!
//! **Freshness.** The cache reflects one tree (by name, hence generation),
//! like [`CatalogueIndex`](super::CatalogueIndex), and is kept fresh by the
//! same committed hook: every committed batch of that tree replaces or
//! removes the rows it changed, after the tree holds them and before the
//! runner publishes the position. A row read from the tree on a miss is
//! only kept when no batch was applied since the read began (an `epoch`
//! counter taken before the read says so), so a slow reader never puts
//! back a row that a batch has replaced meanwhile. A query over an older
//! generation than the one cached bypasses the cache; one over a newer
//! generation empties it and binds it to that tree.
//!
//! **Bound.** At most `capacity` rows: new and used rows go into a `hot`
//! map; when it holds half the capacity the previous `cold` map is dropped
//! and `hot` becomes `cold`. A row used while cold moves back to `hot`. So
//! rows used at least once per half-capacity insertions stay cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use uuid::Uuid;

use super::RecordingRow;
use crate::engine::parse_tree_name;

/// How many rows a catalogue keeps decoded by default, whatever the number
/// of recordings. A cached row costs about 1.5 KB of heap (measured at
/// 100,000 recordings with the generated history), so about 25 MB.
pub const DEFAULT_ROW_CACHE: usize = 16_384;

#[derive(Default)]
struct Inner {
    /// The name of the tree whose rows are cached; `None`: none yet.
    tree: Option<Vec<u8>>,
    /// Bumped by every applied batch and every rebinding.
    epoch: u64,
    hot: HashMap<Uuid, Arc<RecordingRow>>,
    cold: HashMap<Uuid, Arc<RecordingRow>>,
}

impl Inner {
    fn insert(&mut self, half: usize, id: Uuid, row: Arc<RecordingRow>) {
        if self.hot.len() >= half && !self.hot.contains_key(&id) {
            self.cold = std::mem::take(&mut self.hot);
        }
        self.cold.remove(&id);
        self.hot.insert(id, row);
    }

    fn get(&mut self, half: usize, id: Uuid) -> Option<Arc<RecordingRow>> {
        if let Some(row) = self.hot.get(&id) {
            return Some(row.clone());
        }
        let row = self.cold.remove(&id)?;
        self.insert(half, id, row.clone());
        Some(row)
    }

    fn rebind(&mut self, tree: Option<Vec<u8>>) {
        self.tree = tree;
        self.epoch += 1;
        self.hot = HashMap::new();
        self.cold = HashMap::new();
    }
}

/// What a lookup found: one slot per id asked, and the epoch to hand back
/// to [`RowCache::fill`] with the rows read for the empty slots (`None`
/// when the cache does not serve that tree).
pub(super) struct Lookup {
    pub rows: Vec<Option<Arc<RecordingRow>>>,
    pub epoch: Option<u64>,
}

/// Decoded rows of one catalogue tree, bounded (see the module docs).
pub(super) struct RowCache {
    inner: Mutex<Inner>,
    /// Half the capacity: the most rows each of `hot` and `cold` holds.
    half: usize,
}

impl RowCache {
    pub fn new(capacity: usize) -> Self {
        RowCache {
            inner: Mutex::new(Inner::default()),
            half: capacity / 2,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                // A panic mid-update may have left a stale row: forget all.
                let mut guard = poisoned.into_inner();
                guard.rebind(None);
                self.inner.clear_poison();
                guard
            }
        }
    }

    /// The cached rows of `ids` in `tree`, binding the cache to `tree`
    /// when it is newer than (or unlike) the one cached.
    pub fn lookup(&self, tree: &[u8], ids: &[Uuid]) -> Lookup {
        let mut inner = self.lock();
        if self.half == 0 {
            return Lookup {
                rows: vec![None; ids.len()],
                epoch: None,
            };
        }
        if inner.tree.as_deref() != Some(tree) {
            if inner
                .tree
                .as_deref()
                .is_some_and(|cached| superseded(tree, cached))
            {
                return Lookup {
                    rows: vec![None; ids.len()],
                    epoch: None,
                };
            }
            inner.rebind(Some(tree.to_vec()));
        }
        let half = self.half;
        Lookup {
            rows: ids.iter().map(|id| inner.get(half, *id)).collect(),
            epoch: Some(inner.epoch),
        }
    }

    /// Keeps rows read from `tree` after a [`lookup`](Self::lookup) that
    /// returned `epoch`, unless a batch was applied since.
    pub fn fill(&self, tree: &[u8], epoch: Option<u64>, rows: &[Arc<RecordingRow>]) {
        let Some(epoch) = epoch else { return };
        if rows.is_empty() {
            return;
        }
        let mut inner = self.lock();
        if inner.epoch != epoch || inner.tree.as_deref() != Some(tree) {
            return;
        }
        for row in rows {
            inner.insert(self.half, row.id, row.clone());
        }
    }

    /// Applies a committed batch of `tree`: its changed rows (`None`:
    /// removed). Ignored unless the cache serves `tree`.
    pub fn apply(&self, tree: &[u8], rows: &[(Uuid, Option<Arc<RecordingRow>>)]) {
        let mut inner = self.lock();
        if inner.tree.as_deref() != Some(tree) {
            return;
        }
        inner.epoch += 1;
        for (id, row) in rows {
            match row {
                Some(row) => inner.insert(self.half, *id, row.clone()),
                None => {
                    inner.hot.remove(id);
                    inner.cold.remove(id);
                }
            }
        }
    }

    /// Whether the cache holds the rows of `tree`.
    pub fn serves(&self, tree: &[u8]) -> bool {
        self.lock().tree.as_deref() == Some(tree)
    }

    /// Forgets every row (a batch that could not be applied).
    pub fn reset(&self) {
        self.lock().rebind(None);
    }

    /// How many rows are cached.
    pub fn len(&self) -> usize {
        let inner = self.lock();
        inner.hot.len() + inner.cold.len()
    }
}

/// Whether tree `old` is an earlier generation of the same projection as
/// tree `new` (`projection/<name>#<generation>`).
pub(super) fn superseded(old: &[u8], new: &[u8]) -> bool {
    match (parse_tree_name(old), parse_tree_name(new)) {
        (Some((a, g)), Some((b, h))) => a == b && g < h,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use srs_domain::model::testing::fixtures::decision;
    use srs_domain::model::{DataPoints, Lifecycle, RecordingAction, RecordingMode};
    use srs_domain::time::Timestamp;

    use super::*;

    fn row(n: u128, user: &str) -> Arc<RecordingRow> {
        Arc::new(RecordingRow {
            id: Uuid::from_u128(n),
            site_id: Uuid::from_u128(1),
            server_id: Uuid::from_u128(2),
            session_id: "s".into(),
            part: 1,
            previous_recording_id: None,
            user: user.into(),
            domain: None,
            groups: vec![],
            client_name: None,
            client_ip: None,
            host: "h".into(),
            delivery_group: None,
            mode: RecordingMode::ScreenAndEvents,
            decision: decision(RecordingAction::RecordScreenAndEvents),
            lifecycle: Lifecycle::Live,
            started_at: Timestamp(0),
            restriction: None,
            max_severity: None,
            comment_count: 0,
            plays: 0,
            points: DataPoints::default(),
        })
    }

    const TREE: &[u8] = b"projection/catalogue#2";

    #[test]
    fn a_row_read_before_a_batch_is_not_kept_after_it() {
        let cache = RowCache::new(16);
        let id = Uuid::from_u128(7);
        let lookup = cache.lookup(TREE, &[id]);
        assert!(lookup.rows[0].is_none());
        // A batch replaces the row while the reader is still reading the
        // old one from the tree: the old one must not come back.
        cache.apply(TREE, &[(id, Some(row(7, "new")))]);
        cache.fill(TREE, lookup.epoch, &[row(7, "old")]);
        let again = cache.lookup(TREE, &[id]);
        assert_eq!(
            again.rows[0].as_deref().map(|r| r.user.as_str()),
            Some("new")
        );
        // Without a batch in between, what was read is kept.
        let other = Uuid::from_u128(8);
        let lookup = cache.lookup(TREE, &[other]);
        cache.fill(TREE, lookup.epoch, &[row(8, "read")]);
        assert!(cache.lookup(TREE, &[other]).rows[0].is_some());
        // A removal forgets the row.
        cache.apply(TREE, &[(other, None)]);
        assert!(cache.lookup(TREE, &[other]).rows[0].is_none());
    }

    #[test]
    fn an_older_generation_bypasses_the_cache_and_a_newer_one_empties_it() {
        let cache = RowCache::new(16);
        let id = Uuid::from_u128(7);
        let lookup = cache.lookup(TREE, &[id]);
        cache.fill(TREE, lookup.epoch, &[row(7, "two")]);
        let old = cache.lookup(b"projection/catalogue#1", &[id]);
        assert!(old.rows[0].is_none() && old.epoch.is_none());
        cache.fill(b"projection/catalogue#1", old.epoch, &[row(7, "one")]);
        cache.apply(b"projection/catalogue#1", &[(id, Some(row(7, "one")))]);
        assert_eq!(
            cache.lookup(TREE, &[id]).rows[0]
                .as_deref()
                .map(|r| r.user.as_str()),
            Some("two")
        );
        assert!(cache.serves(TREE));
        let newer = cache.lookup(b"projection/catalogue#3", &[id]);
        assert!(newer.rows[0].is_none() && newer.epoch.is_some());
        assert!(!cache.serves(TREE));
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn used_rows_survive_and_the_size_stays_bounded() {
        let cache = RowCache::new(8);
        let hot = Uuid::from_u128(1);
        for n in 1..100u128 {
            let lookup = cache.lookup(TREE, &[hot]);
            assert!(
                n == 1 || lookup.rows[0].is_some(),
                "the used row was evicted at {n}"
            );
            let fill = if n == 1 {
                vec![row(1, "hot"), row(n + 1000, "x")]
            } else {
                vec![row(n + 1000, "x")]
            };
            cache.fill(TREE, lookup.epoch, &fill);
            assert!(cache.len() <= 8, "{} rows", cache.len());
        }
    }
}
