//! [`CatalogueIndex`]: the catalogue's search index, in memory, derived
//! from the rows of the catalogue tree (the tree stays the truth).
//!
//! Each recording the index sees gets a dense `u32` ordinal. Per
//! `(field, lowercase value)` a [`RoaringBitmap`] lists the ordinals of
//! the recordings that are not deleted and carry that value; per ordinal
//! compact columns hold what ranges and orders need (id, start, duration);
//! two ordered sets hold the listed recordings in page order (newest first,
//! longest first) for the walks of large result sets.
//!
//! **Freshness.** The index knows which tree (by name, hence generation)
//! and checkpoint it reflects. The projection's
//! [`committed`](crate::engine::Projection::committed) hook applies each
//! committed batch's changed rows to it, before the runner publishes the
//! position, so read-your-writes holds for searches. A batch of another
//! tree (a rebuild's) is ignored; a query over a tree the index does not
//! reflect (after a swap, at start, offline) reloads it from that tree's
//! rows. Applying a row sets the recording's entry from the row alone, so
//! applying it twice, or racing a load, leaves the same index.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasher as _, RandomState};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use hashbrown::HashTable;
use roaring::RoaringBitmap;
use srs_domain::model::Role;
use uuid::Uuid;

use super::rows::{superseded, Lookup, RowCache, DEFAULT_ROW_CACHE};
use super::{bare_user, RecordingFilter, RecordingOrder, RecordingRow};
use crate::codec;
use crate::engine::Changes;
use crate::error::{ProjectionError, Result};
use crate::models::access::Viewer;
use crate::models::util::{get, norm, severity_code};
use crate::store::{Keyspace, Tree};

/// The indexed fields, by their one-byte tag: filter fields `s` site,
/// `v` server, `u` user (and the bare name without domain), `c` client IP,
/// `h` host, `a` application, `g` delivery group, `l` live, `x`
/// restricted, `e` has detections, `m` highest severity; and for text
/// search only `U` the user as recorded, `D` domain, `N` client name.
const FIELDS: &[u8] = b"svuchaglxemUDN";

/// The fields text search looks into (comments aside).
const TEXT_FIELDS: &[u8] = b"UDhNca";

/// Below this many matches a page is taken by sorting the matches rather
/// than by walking the page order.
const SMALL_MATCH_SET: u64 = 4096;

fn slot(field: u8) -> usize {
    FIELDS
        .iter()
        .position(|f| *f == field)
        .unwrap_or_else(|| unreachable!("field {} is not indexed", field as char))
}

/// Newest first: `(started desc, id)`, as today's cursors hold it.
type StartKey = [u8; 24];
/// Longest first: `(duration desc, started desc, id)`.
type DurationKey = [u8; 32];

/// One recording the index has seen (its start and duration are columns
/// of [`State`], dense for range scans; whether it is listed is
/// [`State::listed`]).
#[derive(Clone, Debug)]
struct Doc {
    id: Uuid,
    /// Posting ids this recording is listed under (empty when not listed).
    postings: Box<[u32]>,
}

/// The `(field, value)` entries of a row; none for a deleted one.
fn entries(row: &RecordingRow) -> BTreeSet<(u8, String)> {
    let mut out = BTreeSet::new();
    if row.deleted() {
        return out;
    }
    out.insert((b's', row.site_id.to_string()));
    out.insert((b'v', row.server_id.to_string()));
    out.insert((b'u', norm(&row.user)));
    out.insert((b'u', norm(bare_user(&row.user))));
    out.insert((b'U', norm(&row.user)));
    if let Some(d) = &row.domain {
        out.insert((b'D', norm(d)));
    }
    if let Some(n) = &row.client_name {
        out.insert((b'N', norm(n)));
    }
    if let Some(ip) = &row.client_ip {
        out.insert((b'c', norm(ip)));
    }
    out.insert((b'h', norm(&row.host)));
    for app in &row.points.applications {
        out.insert((b'a', norm(app)));
    }
    if let Some(g) = &row.delivery_group {
        out.insert((b'g', norm(g)));
    }
    if row.live() {
        out.insert((b'l', "1".into()));
    }
    if row.restricted() {
        out.insert((b'x', "1".into()));
    }
    if row.points.detection_count > 0 {
        out.insert((b'e', "1".into()));
    }
    if let Some(s) = row.max_severity {
        out.insert((b'm', severity_code(s).to_string()));
    }
    out
}

/// One value's recordings. Most values of a high-cardinality field (a
/// client IP, a client name) list a single recording: it is kept inline,
/// without a bitmap's allocations.
#[derive(Clone, Debug)]
enum Posting {
    One(u32),
    Many(RoaringBitmap),
}

impl Posting {
    fn insert(&mut self, o: u32) {
        match self {
            Posting::One(x) if *x == o => {}
            Posting::One(x) => {
                let mut b = RoaringBitmap::new();
                b.insert(*x);
                b.insert(o);
                *self = Posting::Many(b);
            }
            Posting::Many(b) if b.is_empty() => *self = Posting::One(o),
            Posting::Many(b) => {
                b.insert(o);
            }
        }
    }

    fn remove(&mut self, o: u32) {
        match self {
            Posting::One(x) if *x == o => *self = Posting::Many(RoaringBitmap::new()),
            Posting::One(_) => {}
            Posting::Many(b) => {
                b.remove(o);
            }
        }
    }

    /// Adds this posting's recordings to `out`.
    fn union_into(&self, out: &mut RoaringBitmap) {
        match self {
            Posting::One(x) => {
                out.insert(*x);
            }
            Posting::Many(b) => *out |= b,
        }
    }

    /// Takes this posting's recordings out of `m`.
    fn subtract_from(&self, m: &mut RoaringBitmap) {
        match self {
            Posting::One(x) => {
                m.remove(*x);
            }
            Posting::Many(b) => *m -= b,
        }
    }

    /// The recordings of `m` in this posting.
    fn and(&self, m: &RoaringBitmap) -> RoaringBitmap {
        match self {
            Posting::One(x) => {
                let mut out = RoaringBitmap::new();
                if m.contains(*x) {
                    out.insert(*x);
                }
                out
            }
            Posting::Many(b) => m & b,
        }
    }

    fn ordinals(&self) -> Vec<u32> {
        match self {
            Posting::One(x) => vec![*x],
            Posting::Many(b) => b.iter().collect(),
        }
    }
}

/// Which ordinal a recording id has: a hash table of ordinals, each
/// found by its doc's id, so an id is held once (in [`Doc`]) rather than
/// again as a map's key. At 1M recordings that is 2^21 slots of 5 bytes
/// against 21 for a `HashMap<Uuid, u32>`: ~33 MB of resident memory.
#[derive(Default)]
struct Ordinals {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl Ordinals {
    fn get(&self, docs: &[Doc], id: &Uuid) -> Option<u32> {
        let hash = self.hasher.hash_one(id);
        self.table
            .find(hash, |o| docs[*o as usize].id == *id)
            .copied()
    }

    /// Records `o` as the ordinal of `docs[o]`'s id (not yet recorded).
    fn insert(&mut self, docs: &[Doc], o: u32) {
        let Ordinals { table, hasher } = self;
        let hash = hasher.hash_one(docs[o as usize].id);
        table.insert_unique(hash, o, |o| hasher.hash_one(docs[*o as usize].id));
    }
}

/// The index proper, behind the lock of [`CatalogueIndex`].
#[derive(Default)]
struct State {
    /// The name of the tree reflected; `None` until loaded.
    tree: Option<Vec<u8>>,
    checkpoint: u64,
    ordinals: Ordinals,
    docs: Vec<Doc>,
    /// Per ordinal: start (µs) and duration (ms).
    started: Vec<i64>,
    duration_ms: Vec<u64>,
    /// Per field (see [`FIELDS`]), each value's posting id.
    dict: Vec<HashMap<Box<str>, u32>>,
    postings: Vec<Posting>,
    listed: RoaringBitmap,
    by_start: BTreeSet<(StartKey, u32)>,
    by_duration: BTreeSet<(DurationKey, u32)>,
    /// While loading, the orders are built once at the end.
    loading: bool,
}

impl State {
    fn empty(tree: Option<Vec<u8>>) -> State {
        State {
            tree,
            dict: vec![HashMap::new(); FIELDS.len()],
            ..State::default()
        }
    }

    fn start_key(&self, o: u32) -> StartKey {
        let mut k = [0u8; 24];
        k[..8].copy_from_slice(&codec::i64_desc_key(self.started[o as usize]));
        k[8..].copy_from_slice(self.docs[o as usize].id.as_bytes());
        k
    }

    fn duration_key(&self, o: u32) -> DurationKey {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&codec::u64_desc_key(self.duration_ms[o as usize]));
        k[8..16].copy_from_slice(&codec::i64_desc_key(self.started[o as usize]));
        k[16..].copy_from_slice(self.docs[o as usize].id.as_bytes());
        k
    }

    /// [`State::start_key`] without its id, as a number: keys order as
    /// their ranks, then their ids. Read from a dense column alone.
    fn start_rank(&self, o: u32) -> u128 {
        u128::from(u64::from_be_bytes(codec::i64_desc_key(
            self.started[o as usize],
        )))
    }

    /// [`State::duration_key`] without its id, as a number.
    fn duration_rank(&self, o: u32) -> u128 {
        let duration = u64::from_be_bytes(codec::u64_desc_key(self.duration_ms[o as usize]));
        (u128::from(duration) << 64) | self.start_rank(o)
    }

    fn posting(&self, field: u8, value: &str) -> Option<&Posting> {
        let id = *self.dict.get(slot(field))?.get(value)?;
        self.postings.get(id as usize)
    }

    fn intern(&mut self, field: u8, value: &str) -> u32 {
        let values = &mut self.dict[slot(field)];
        if let Some(id) = values.get(value) {
            return *id;
        }
        let id = self.postings.len() as u32;
        self.postings.push(Posting::Many(RoaringBitmap::new()));
        values.insert(value.into(), id);
        id
    }

    /// Sets the entry of `row.id` from `row` alone (idempotent).
    fn set(&mut self, row: &RecordingRow) {
        let listed = !row.deleted();
        let mut postings: Vec<u32> = entries(row)
            .iter()
            .map(|(f, v)| self.intern(*f, v))
            .collect();
        postings.sort_unstable();
        let started = row.started_at.0;
        let duration_ms = row.points.duration_ms;
        let o = match self.ordinals.get(&self.docs, &row.id) {
            Some(o) => o,
            None => {
                let o = self.docs.len() as u32;
                self.docs.push(Doc {
                    id: row.id,
                    postings: Box::new([]),
                });
                self.started.push(started);
                self.duration_ms.push(duration_ms);
                self.ordinals.insert(&self.docs, o);
                o
            }
        };
        let (i, doc) = (o as usize, &self.docs[o as usize]);
        if self.listed.contains(o) == listed
            && self.started[i] == started
            && self.duration_ms[i] == duration_ms
            && *doc.postings == *postings
        {
            return;
        }
        self.unlist(o);
        self.started[i] = started;
        self.duration_ms[i] = duration_ms;
        if !listed {
            return;
        }
        for p in &postings {
            self.postings[*p as usize].insert(o);
        }
        let doc = &mut self.docs[i];
        doc.postings = postings.into_boxed_slice();
        self.listed.insert(o);
        if !self.loading {
            self.by_start.insert((self.start_key(o), o));
            self.by_duration.insert((self.duration_key(o), o));
        }
    }

    /// Takes recording `id` out of every posting and order.
    fn remove(&mut self, id: Uuid) {
        if let Some(o) = self.ordinals.get(&self.docs, &id) {
            self.unlist(o);
        }
    }

    fn unlist(&mut self, o: u32) {
        let doc = &mut self.docs[o as usize];
        let postings = std::mem::take(&mut doc.postings);
        for p in postings.iter() {
            self.postings[*p as usize].remove(o);
        }
        if self.listed.contains(o) {
            let (start, duration) = (self.start_key(o), self.duration_key(o));
            self.by_start.remove(&(start, o));
            self.by_duration.remove(&(duration, o));
            self.listed.remove(o);
        }
    }

    /// The state of every recording of `tree`.
    fn load(tree: &Tree) -> Result<State> {
        let mut state = State::empty(Some(tree.name().as_bytes().to_vec()));
        state.checkpoint = crate::engine::checkpoint_of(tree)?;
        state.loading = true;
        for kv in tree.scan_prefix(b"r/") {
            let (_, v) = kv?;
            let row: RecordingRow = codec::decode(&v)?;
            state.set(&row);
        }
        state.loading = false;
        // Sorted once and built in bulk rather than inserted one by one.
        let by_start = state
            .listed
            .iter()
            .map(|o| (state.start_key(o), o))
            .collect();
        let by_duration = state
            .listed
            .iter()
            .map(|o| (state.duration_key(o), o))
            .collect();
        state.by_start = by_start;
        state.by_duration = by_duration;
        Ok(state)
    }

    fn apply(&mut self, rows: &[(Uuid, Option<Arc<RecordingRow>>)]) {
        for (id, row) in rows {
            match row {
                Some(row) => self.set(row),
                None => self.remove(*id),
            }
        }
    }

    /// The recordings carrying any of `values` of `field`.
    fn any_of<'a>(&self, field: u8, values: impl IntoIterator<Item = &'a str>) -> AnyOf<'_> {
        AnyOf(
            values
                .into_iter()
                .filter_map(|v| self.posting(field, v))
                .collect(),
        )
    }
}

/// One equality constraint of a filter: the recordings carrying any of
/// these postings (a union, taken only when needed).
struct AnyOf<'a>(Vec<&'a Posting>);

impl AnyOf<'_> {
    /// How many recordings it holds at most (exactly, for one posting).
    fn len(&self) -> u64 {
        self.0
            .iter()
            .map(|p| match p {
                Posting::One(_) => 1,
                Posting::Many(b) => b.len(),
            })
            .sum()
    }

    /// The union; one posting's bitmap is lent, not copied.
    fn union(&self) -> Cow<'_, RoaringBitmap> {
        match self.0.as_slice() {
            [] => Cow::Owned(RoaringBitmap::new()),
            [Posting::One(x)] => Cow::Owned(std::iter::once(*x).collect()),
            [Posting::Many(b)] => Cow::Borrowed(b),
            several => {
                let mut out = RoaringBitmap::new();
                for p in several {
                    p.union_into(&mut out);
                }
                Cow::Owned(out)
            }
        }
    }

    /// The union's recordings that are in `m`, as the union of each
    /// posting's: several small postings against a large `m` (two users'
    /// recordings and every recording with detections) are intersected
    /// one by one rather than merged first and then intersected.
    fn and(&self, m: &RoaringBitmap) -> RoaringBitmap {
        let mut out = RoaringBitmap::new();
        for p in &self.0 {
            out |= p.and(m);
        }
        out
    }
}

/// What a search found: the total, and the page as order keys and ids.
pub(super) struct Found {
    pub total: u64,
    pub page: Vec<(Vec<u8>, Uuid)>,
    pub has_next_page: bool,
}

/// How a page is taken from the matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PagePlan {
    /// Sort few matches, walk the page order for many (the cheaper).
    #[default]
    Auto,
    /// Always walk the page order (checks use it to cover that path).
    Walk,
    /// Always sort the matches.
    Sort,
}

/// The catalogue's in-memory search index, shared by the projection (which
/// keeps it fresh) and the queries (which read it).
pub struct CatalogueIndex {
    state: RwLock<State>,
    plan: PagePlan,
    /// Decoded rows, fresh by the same hook as the index.
    rows: RowCache,
}

impl Default for CatalogueIndex {
    fn default() -> Self {
        CatalogueIndex::new()
    }
}

impl std::fmt::Debug for CatalogueIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.read();
        f.debug_struct("CatalogueIndex")
            .field("tree", &state.tree.as_deref().map(String::from_utf8_lossy))
            .field("checkpoint", &state.checkpoint)
            .field("listed", &state.listed.len())
            .finish()
    }
}

/// The index as plain sets of ids, independent of the ordinals the
/// recordings happened to get: what checks compare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSnapshot {
    /// Every non-empty posting: `(field, value)` with its recordings.
    pub postings: BTreeMap<(char, String), BTreeSet<Uuid>>,
    /// The listed (not deleted) recordings, newest first.
    pub newest_first: Vec<Uuid>,
    /// The listed recordings, longest first.
    pub longest_first: Vec<Uuid>,
    /// Every recording seen: start (µs) and duration (ms).
    pub columns: BTreeMap<Uuid, (i64, u64)>,
}

impl CatalogueIndex {
    /// An index that reflects no tree yet (the first query loads it).
    pub fn new() -> Self {
        Self::with_plan(PagePlan::Auto)
    }

    /// An index that takes pages as `plan` says.
    pub fn with_plan(plan: PagePlan) -> Self {
        Self::with_options(plan, DEFAULT_ROW_CACHE)
    }

    /// An index that takes pages as `plan` says and keeps at most
    /// `row_cache` rows decoded (0: none, every row is read from the tree).
    pub fn with_options(plan: PagePlan, row_cache: usize) -> Self {
        CatalogueIndex {
            state: RwLock::new(State::empty(None)),
            plan,
            rows: RowCache::new(row_cache),
        }
    }

    /// How many rows are kept decoded.
    pub fn cached_rows(&self) -> usize {
        self.rows.len()
    }

    /// The rows of `ids` in `tree` (`None` for an id it does not hold),
    /// from the cache where it has them, else read from the tree and kept.
    pub(super) fn rows(&self, tree: &Tree, ids: &[Uuid]) -> Result<Vec<Option<Arc<RecordingRow>>>> {
        let name = tree.name().as_bytes();
        let Lookup { mut rows, epoch } = self.rows.lookup(name, ids);
        let mut read = Vec::new();
        for (slot, id) in rows.iter_mut().zip(ids) {
            if slot.is_none() {
                let row: Option<RecordingRow> = get(tree, &super::row_key(*id))?;
                if let Some(row) = row {
                    let row = Arc::new(row);
                    read.push(row.clone());
                    *slot = Some(row);
                }
            }
        }
        self.rows.fill(name, epoch, &read);
        Ok(rows)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while the lock was held may have left the index half
        // updated: the writer side resets it (see `write`), and a reader
        // seeing a poisoned lock still gets the pointer-consistent state.
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        match self.state.write() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                // Forget the tree: the next query reloads it whole.
                *guard = State::empty(None);
                self.state.clear_poison();
                guard
            }
        }
    }

    /// The name of the tree the index reflects, if any.
    pub fn tree_name(&self) -> Option<String> {
        self.read()
            .tree
            .as_deref()
            .map(|n| String::from_utf8_lossy(n).into_owned())
    }

    /// The checkpoint of the last batch the index applied (or loaded).
    pub fn checkpoint(&self) -> u64 {
        self.read().checkpoint
    }

    /// Applies a committed batch of `tree` (ignored unless the index
    /// reflects that tree). A row that does not decode leaves the index
    /// unbound, so the next query reloads it from the tree.
    pub fn apply(&self, tree: &Tree, changes: &Changes, checkpoint: u64) {
        let name = tree.name().as_bytes();
        // A batch of a tree neither reflects (a rebuild's) is not even
        // decoded. Whichever binds to `tree` later reads it after this
        // batch, which the tree already holds.
        if self.read().tree.as_deref() != Some(name) && !self.rows.serves(name) {
            return;
        }
        // Decoded once, before taking the lock, for the index and the rows.
        let rows = match changed_rows(changes) {
            Ok(rows) => Some(rows),
            Err(error) => {
                tracing::error!(%error, "catalogue index update failed; it reloads on the next query");
                None
            }
        };
        let mut state = self.write();
        match &rows {
            Some(rows) => self.rows.apply(name, rows),
            None => self.rows.reset(),
        }
        if state.tree.as_deref() != Some(name) {
            return;
        }
        match rows {
            Some(rows) => {
                state.apply(&rows);
                state.checkpoint = state.checkpoint.max(checkpoint);
            }
            None => *state = State::empty(None),
        }
    }

    /// The index for `tree`, loading it when it reflects another tree.
    /// A query still holding a tree that a rebuild has replaced is
    /// answered from the index of its successor rather than loading the
    /// old tree back (its rows are still read from its own tree).
    fn fresh(&self, tree: &Tree) -> Result<RwLockReadGuard<'_, State>> {
        let name = tree.name().as_bytes();
        let usable = |state: &State| {
            state
                .tree
                .as_deref()
                .is_some_and(|t| t == name || superseded(name, t))
        };
        loop {
            {
                let state = self.read();
                if usable(&state) {
                    return Ok(state);
                }
            }
            let mut state = self.write();
            if !usable(&state) {
                let start = Instant::now();
                *state = State::load(tree)?;
                tracing::info!(
                    tree = %String::from_utf8_lossy(name),
                    recordings = state.docs.len(),
                    listed = state.listed.len(),
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "catalogue index loaded"
                );
            }
        }
    }

    /// Makes sure the index reflects `tree` (loading it if not); returns
    /// how many recordings are listed.
    pub fn load(&self, tree: &Tree) -> Result<u64> {
        Ok(self.fresh(tree)?.listed.len())
    }

    /// The index as sets of ids (after loading it from `tree` if needed).
    pub fn snapshot(&self, tree: &Tree) -> Result<IndexSnapshot> {
        let state = self.fresh(tree)?;
        let mut postings = BTreeMap::new();
        for (i, values) in state.dict.iter().enumerate() {
            for (value, id) in values {
                let ids: BTreeSet<Uuid> = state.postings[*id as usize]
                    .ordinals()
                    .into_iter()
                    .map(|o| state.docs[o as usize].id)
                    .collect();
                if !ids.is_empty() {
                    postings.insert((FIELDS[i] as char, value.to_string()), ids);
                }
            }
        }
        Ok(IndexSnapshot {
            postings,
            newest_first: state
                .by_start
                .iter()
                .map(|(_, o)| state.docs[*o as usize].id)
                .collect(),
            longest_first: state
                .by_duration
                .iter()
                .map(|(_, o)| state.docs[*o as usize].id)
                .collect(),
            columns: state
                .docs
                .iter()
                .enumerate()
                .map(|(i, d)| (d.id, (state.started[i], state.duration_ms[i])))
                .collect(),
        })
    }

    /// The matches of `f` that `viewer` may see, counted, and one page of
    /// them in `order` after the cursor key `after`.
    pub(super) fn search(
        &self,
        tree: &Tree,
        viewer: &Viewer,
        f: &RecordingFilter,
        order: RecordingOrder,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Found> {
        let state = self.fresh(tree)?;
        let matches = matches(&state, tree, viewer, f)?;
        let total = matches.len();
        let (page, has_next_page) = match order {
            RecordingOrder::NewestFirst => {
                let bounds = (
                    f.started_before
                        .map(|t| codec::i64_desc_key(t.0.saturating_sub(1)).to_vec()),
                    f.started_after
                        .map(|t| codec::i64_desc_key(t.0.saturating_sub(1)).to_vec()),
                );
                page(
                    &state,
                    self.plan,
                    &matches,
                    &state.by_start,
                    (State::start_key, State::start_rank),
                    after,
                    bounds,
                    limit,
                )
            }
            RecordingOrder::LongestFirst => {
                let bounds = (
                    f.max_duration_sec.map(|d| {
                        codec::u64_desc_key(
                            d.saturating_add(1).saturating_mul(1000).saturating_sub(1),
                        )
                        .to_vec()
                    }),
                    f.min_duration_sec
                        .filter(|d| *d > 0)
                        .map(|d| codec::u64_desc_key(d.saturating_mul(1000) - 1).to_vec()),
                );
                page(
                    &state,
                    self.plan,
                    &matches,
                    &state.by_duration,
                    (State::duration_key, State::duration_rank),
                    after,
                    bounds,
                    limit,
                )
            }
        };
        Ok(Found {
            total,
            page,
            has_next_page,
        })
    }
}

/// The ordinals of the recordings that match `f` and `viewer` may see.
fn matches(
    state: &State,
    tree: &Tree,
    viewer: &Viewer,
    f: &RecordingFilter,
) -> Result<RoaringBitmap> {
    let role = viewer.principal().role;
    // VIEWER and AGENT never see recordings.
    if matches!(role, Role::Viewer | Role::Agent) {
        return Ok(RoaringBitmap::new());
    }
    // Equality constraints, each a union over its values; the smallest
    // leads the intersection.
    let mut all: Vec<AnyOf<'_>> = Vec::new();
    let sites: Option<Vec<Uuid>> = match (f.site_id, viewer.site_scope()) {
        (Some(s), Some(scope)) => Some(if scope.contains(&s) { vec![s] } else { vec![] }),
        (Some(s), None) => Some(vec![s]),
        (None, Some(scope)) => Some(scope.iter().copied().collect()),
        (None, None) => None,
    };
    if let Some(sites) = sites {
        let names: Vec<String> = sites.iter().map(Uuid::to_string).collect();
        all.push(state.any_of(b's', names.iter().map(String::as_str)));
    }
    if let Some(s) = f.server_id {
        all.push(state.any_of(b'v', [s.to_string().as_str()]));
    }
    for (field, list) in [
        (b'u', &f.users),
        (b'c', &f.client_ips),
        (b'h', &f.hosts),
        (b'a', &f.applications),
        (b'g', &f.delivery_groups),
    ] {
        if !list.is_empty() {
            let values: Vec<String> = list.iter().map(|v| norm(v)).collect();
            all.push(state.any_of(field, values.iter().map(String::as_str)));
        }
    }
    for (field, on) in [
        (b'l', f.live),
        (b'x', f.restricted),
        (b'e', f.has_detections),
    ] {
        if on == Some(true) {
            all.push(state.any_of(field, ["1"]));
        }
    }
    if let Some(min) = f.min_severity {
        let codes: Vec<String> = srs_domain::model::Severity::ALL
            .iter()
            .filter(|s| **s >= min)
            .map(|s| severity_code(*s).to_string())
            .collect();
        all.push(state.any_of(b'm', codes.iter().map(String::as_str)));
    }
    all.sort_by_key(AnyOf::len);
    let (mut m, rest) = match all.as_slice() {
        // Postings hold listed recordings only.
        [] => (state.listed.clone(), &all[..]),
        // Several postings led by a single larger one: each intersected
        // with it, then united.
        [first, second, ..] if first.0.len() > 1 && second.0.len() == 1 => {
            (first.and(&second.union()), &all[2..])
        }
        [first, ..] => (first.union().into_owned(), &all[1..]),
    };
    for other in rest {
        if m.is_empty() {
            break;
        }
        m &= other.union().as_ref();
    }
    // Negated flags.
    for (field, on) in [
        (b'l', f.live),
        (b'x', f.restricted),
        (b'e', f.has_detections),
    ] {
        if on == Some(false) {
            if let Some(p) = state.posting(field, "1") {
                p.subtract_from(&mut m);
            }
        }
    }
    // Ranges. A time range holding fewer recordings than the matches is
    // read from the newest-first order; then (or else) the columns of the
    // matches are tested, which is exact.
    if (f.started_after.is_some() || f.started_before.is_some()) && !m.is_empty() {
        if let Some(in_range) = time_range_within(state, f, &m) {
            m = in_range;
        }
    }
    let ranged = f.started_after.is_some()
        || f.started_before.is_some()
        || f.min_duration_sec.is_some()
        || f.max_duration_sec.is_some();
    if ranged && !m.is_empty() {
        m = m
            .iter()
            .filter(|o| {
                let started = state.started[*o as usize];
                let secs = state.duration_ms[*o as usize] / 1000;
                f.started_after.is_none_or(|t| started >= t.0)
                    && f.started_before.is_none_or(|t| started < t.0)
                    && f.min_duration_sec.is_none_or(|min| secs >= min)
                    && f.max_duration_sec.is_none_or(|max| secs <= max)
            })
            .collect();
    }
    // Text: the dictionary values that contain it, and the comments.
    if let Some(text) = f.text.as_deref().map(norm).filter(|t| !t.is_empty()) {
        if !m.is_empty() {
            let mut hits = RoaringBitmap::new();
            for field in TEXT_FIELDS {
                for (value, id) in &state.dict[slot(*field)] {
                    if value.contains(&text) {
                        state.postings[*id as usize].union_into(&mut hits);
                    }
                }
            }
            for kv in tree.scan_prefix(b"t/") {
                let (k, v) = kv?;
                if String::from_utf8_lossy(&v).contains(&text) {
                    if let Some(o) = k
                        .get(2..18)
                        .and_then(codec::uuid_from_key)
                        .and_then(|id| state.ordinals.get(&state.docs, &id))
                    {
                        hits.insert(o);
                    }
                }
            }
            m &= hits;
        }
    }
    // Visibility, exactly as `Viewer::visibility` decides it: ADMIN and
    // PRIVILEGED_PLAYER see every recording of the sites in their scope
    // (a constraint above); an AUDITOR no restricted one, none of a site
    // where it holds no grant, all of a site where it holds a whole-site
    // grant, and elsewhere those its grants admit (decided per row).
    match role {
        Role::Admin | Role::PrivilegedPlayer => {}
        Role::Auditor => {
            if let Some(p) = state.posting(b'x', "1") {
                p.subtract_from(&mut m);
            }
            let mut seen_sites = RoaringBitmap::new();
            for (site, id) in &state.dict[slot(b's')] {
                let on_site = state.postings[*id as usize].and(&m);
                seen_sites |= &on_site;
                let Ok(site) = site.parse::<Uuid>() else {
                    m -= on_site;
                    continue;
                };
                if viewer.grants(site).is_empty() {
                    m -= on_site;
                    continue;
                }
                if viewer.holds_whole_site(site) {
                    continue;
                }
                for o in &on_site {
                    let doc = &state.docs[o as usize];
                    let row: Option<RecordingRow> =
                        crate::models::util::get(tree, &super::row_key(doc.id))?;
                    if !row.is_some_and(|r| viewer.visibility(&r.facts()).is_visible()) {
                        m.remove(o);
                    }
                }
            }
            // Deny by default: a recording on no known site is nobody's grant.
            m &= seen_sites;
        }
        Role::Viewer | Role::Agent => return Ok(RoaringBitmap::new()),
    }
    Ok(m)
}

/// The matches `m` within the filter's time range (or a little wider at
/// the extremes of `i64`), read from the newest-first order; `None` when
/// the range holds more recordings than `m` (testing the columns of `m` is
/// cheaper then).
fn time_range_within(
    state: &State,
    f: &RecordingFilter,
    m: &RoaringBitmap,
) -> Option<RoaringBitmap> {
    // Newest first: the newest admitted start is the smallest key.
    let from = f
        .started_before
        .map(|t| pad::<24>(&codec::i64_desc_key(t.0.saturating_sub(1))))
        .unwrap_or([0; 24]);
    let upper = f
        .started_after
        .filter(|t| t.0 > i64::MIN)
        .map(|t| codec::i64_desc_key(t.0 - 1));
    let budget = m.len();
    let mut steps = 0u64;
    let mut out = Vec::new();
    for (k, o) in state
        .by_start
        .range((Bound::Included((from, 0)), Bound::Unbounded))
    {
        if upper.is_some_and(|u| k[..8] >= u[..]) {
            break;
        }
        steps += 1;
        if steps > budget {
            return None;
        }
        if m.contains(*o) {
            out.push(*o);
        }
    }
    out.sort_unstable();
    Some(out.into_iter().collect())
}

/// The rows a committed batch changed, decoded (`None`: removed).
fn changed_rows(changes: &Changes) -> Result<Vec<(Uuid, Option<Arc<RecordingRow>>)>> {
    let mut out = Vec::new();
    for (key, value) in changes.range::<[u8], _>((Bound::Included(&b"r/"[..]), Bound::Unbounded)) {
        if !key.starts_with(b"r/") {
            break;
        }
        let id = codec::uuid_from_key(&key[2..])
            .ok_or_else(|| ProjectionError::Codec(format!("row key {key:?} holds no id")))?;
        let row = match value {
            Some(v) => Some(Arc::new(codec::decode::<RecordingRow>(v)?)),
            None => None,
        };
        out.push((id, row));
    }
    Ok(out)
}

/// A page order's key of a recording, and its rank (the key without the
/// id, as a number).
type OrderKey<const N: usize> = (fn(&State, u32) -> [u8; N], fn(&State, u32) -> u128);

/// Up to `limit` matches after `after` in the order of `set`, and whether
/// more follow. Few matches are sorted; many are found by walking the order
/// from the cursor (within `bounds`: inclusive lower, exclusive upper key
/// prefixes), testing membership, until the walk would cost more than
/// sorting them.
#[allow(clippy::too_many_arguments)]
fn page<const N: usize>(
    state: &State,
    plan: PagePlan,
    m: &RoaringBitmap,
    set: &BTreeSet<([u8; N], u32)>,
    (key, rank): OrderKey<N>,
    after: Option<&[u8]>,
    bounds: (Option<Vec<u8>>, Option<Vec<u8>>),
    limit: usize,
) -> (Vec<(Vec<u8>, Uuid)>, bool) {
    let past = |k: &[u8]| after.is_none_or(|a| k > a);
    let n = m.len();
    let want = limit as u64 + 1;
    let listed = state.listed.len().max(1);
    // Walking visits about `want * listed / n` entries; sorting `n`.
    let walk = match plan {
        PagePlan::Auto => {
            n > SMALL_MATCH_SET && n.saturating_mul(n) > want.saturating_mul(listed) * 4
        }
        PagePlan::Walk => true,
        PagePlan::Sort => false,
    };
    if walk {
        let mut from = pad::<N>(bounds.0.as_deref().unwrap_or(&[]));
        if let Some(a) = after {
            from = from.max(pad::<N>(a));
        }
        let upper = bounds.1;
        let budget = match plan {
            PagePlan::Walk => u64::MAX,
            _ => n.saturating_mul(2),
        };
        let mut steps = 0u64;
        let mut out = Vec::with_capacity(limit);
        let mut complete = true;
        for (k, o) in set.range((Bound::Included((from, 0)), Bound::Unbounded)) {
            if upper.as_deref().is_some_and(|u| k.as_slice() >= u) {
                break;
            }
            steps += 1;
            if steps > budget {
                complete = false;
                break;
            }
            if !past(k.as_slice()) || !m.contains(*o) {
                continue;
            }
            if out.len() == limit {
                return (out, true);
            }
            out.push((k.to_vec(), state.docs[*o as usize].id));
        }
        if complete {
            return (out, false);
        }
    }
    // Sorting: by rank (the key before its id, from dense columns), so
    // that only the page's candidates pay for their ids (a random read
    // each, in a table of every recording).
    let ranked_bytes = N - 16;
    let mut ranked: Vec<(u128, u32)> = m
        .iter()
        .map(|o| (rank(state, o), o))
        .filter(|&(r, o)| {
            let Some(a) = after else { return true };
            let r = r.to_be_bytes();
            let r = &r[16 - ranked_bytes..];
            let p = ranked_bytes.min(a.len());
            match r[..p].cmp(&a[..p]) {
                std::cmp::Ordering::Greater => true,
                std::cmp::Ordering::Less => false,
                std::cmp::Ordering::Equal => past(key(state, o).as_slice()),
            }
        })
        .collect();
    let has_next = ranked.len() > limit;
    if has_next {
        // The page and the one after it rank at most the (limit+1)-th
        // rank; ties at it are decided by id below.
        ranked.select_nth_unstable(limit);
        let cut = ranked[limit].0;
        ranked.retain(|&(r, _)| r <= cut);
    }
    let mut keys: Vec<([u8; N], u32)> = ranked.iter().map(|&(_, o)| (key(state, o), o)).collect();
    keys.sort_unstable();
    keys.truncate(limit);
    (
        keys.into_iter()
            .map(|(k, o)| (k.to_vec(), state.docs[o as usize].id))
            .collect(),
        has_next,
    )
}

/// The smallest `N`-byte key that is not below `prefix`'s successors:
/// every `N`-byte key greater than `prefix` is at least this.
fn pad<const N: usize>(prefix: &[u8]) -> [u8; N] {
    let mut k = [0u8; N];
    let n = prefix.len().min(N);
    k[..n].copy_from_slice(&prefix[..n]);
    k
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Db, Store};

    fn tree() -> Tree {
        let db = Db::temporary().unwrap();
        db.open("catalogue").unwrap()
    }

    #[test]
    fn a_rank_is_its_key_without_the_id() {
        let mut state = State::empty(None);
        let values = [
            (i64::MIN, 0u64),
            (-1, 1),
            (0, 999),
            (1, u64::MAX),
            (1_700_000_000_000_000, 3_600_000),
            (i64::MAX, 42),
        ];
        for (n, &(started, duration)) in values.iter().enumerate() {
            state.docs.push(Doc {
                id: Uuid::from_u128(u128::MAX - n as u128),
                postings: Box::new([]),
            });
            state.started.push(started);
            state.duration_ms.push(duration);
        }
        for a in 0..values.len() as u32 {
            assert_eq!(
                state.start_rank(a).to_be_bytes()[8..],
                state.start_key(a)[..8]
            );
            assert_eq!(
                state.duration_rank(a).to_be_bytes(),
                state.duration_key(a)[..16]
            );
            for b in 0..values.len() as u32 {
                let by_rank = state.start_rank(a).cmp(&state.start_rank(b));
                let by_key = state.start_key(a)[..8].cmp(&state.start_key(b)[..8]);
                assert_eq!(by_rank, by_key);
            }
        }
    }

    #[test]
    fn pad_bounds_every_greater_key() {
        let a = [5u8, 7];
        let p: [u8; 4] = pad(&a);
        assert_eq!(p, [5, 7, 0, 0]);
        for k in [[5u8, 7, 0, 1], [5, 8, 0, 0], [5, 7, 0, 0]] {
            assert!(k.as_slice() > a.as_slice() && k >= p);
        }
        let long = [1u8, 2, 3, 4, 5];
        let p: [u8; 4] = pad(&long);
        assert_eq!(p, [1, 2, 3, 4]);
        // A key equal to the truncation is not after the cursor.
        assert!([1u8, 2, 3, 4].as_slice() < long.as_slice());
    }

    #[test]
    fn only_an_earlier_generation_of_the_same_projection_is_superseded() {
        let t = |s: &str| s.as_bytes().to_vec();
        assert!(superseded(
            &t("projection/catalogue#3"),
            &t("projection/catalogue#4")
        ));
        assert!(!superseded(
            &t("projection/catalogue#4"),
            &t("projection/catalogue#3")
        ));
        assert!(!superseded(
            &t("projection/catalogue#4"),
            &t("projection/catalogue#4")
        ));
        assert!(!superseded(
            &t("projection/access#3"),
            &t("projection/catalogue#4")
        ));
        assert!(!superseded(&t("catalogue"), &t("projection/catalogue#4")));
    }

    #[test]
    fn an_index_of_another_tree_ignores_its_batches() {
        let t = tree();
        let index = CatalogueIndex::new();
        index.apply(&t, &Changes::new(), 9);
        assert_eq!(index.tree_name(), None);
        assert_eq!(index.checkpoint(), 0);
        assert_eq!(index.load(&t).unwrap(), 0);
        assert_eq!(index.tree_name().as_deref(), Some("catalogue"));
    }
}
