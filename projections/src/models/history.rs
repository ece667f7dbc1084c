//! The history index: every log position by event type, stream, actor,
//! site, recording and time, so that a filtered `history` page reads the
//! events it shows by position instead of scanning the log for them.
//!
//! | key | value |
//! |---|---|
//! | `t/` event type, block | posting block |
//! | `s/` stream, block | posting block |
//! | `a/` actor label, block | posting block |
//! | `i/` site, block | posting block |
//! | `r/` recording, block | posting block |
//! | `w/` block | earliest and latest `recorded_at` of the block's events (i64 BE each) |
//! | `n/` index tag and value | count of that value's events (u64 BE): types, actors and sites only |
//!
//! Every event is indexed (positions are gapless), so the whole log needs
//! no list of its own: it is every position up to the checkpoint.
//!
//! A posting block is one key per index value and span of [`BLOCK_SPAN`]
//! positions (block = position >> 8, big-endian, so blocks are in log
//! order), whose value is the low bytes (position & 0xff) of that span's
//! entries, ascending and without repeats (as in the audit trail).
//!
//! A query ([`HistoryQuery`]) is a tree of ordered position lists: each
//! filter's list (a union for a list of types or of sites), intersected,
//! walked oldest first by seeking each list to the next candidate. Time
//! bounds keep the blocks whose span of `recorded_at` meets them: a
//! superset of the matching events when the clock went back, so readers
//! check the time of the events they read, as they check every filter.
//!
//! The index covers the log up to its checkpoint ([`History::indexed`]);
//! events after it are for the reader to take from the log itself.

use std::ops::Bound;

use srs_domain::log::Envelope;
use srs_domain::model::DomainEvent;
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::TreeRef;
use crate::codec::{self, Key};
use crate::engine::{Overlay, Projection};
use crate::error::Result;
use crate::store::Keyspace;

/// How many log positions one posting block spans.
pub const BLOCK_SPAN: u64 = 1 << BLOCK_BITS;
const BLOCK_BITS: u32 = 8;

fn type_index(name: &str) -> Key {
    Key::new(b"t/").str(name)
}

fn stream_index(stream: &str) -> Key {
    Key::new(b"s/").str(stream)
}

fn actor_index(label: &str) -> Key {
    Key::new(b"a/").str(label)
}

fn site_index(site: Uuid) -> Key {
    Key::new(b"i/").uuid(site)
}

fn recording_index(recording: Uuid) -> Key {
    Key::new(b"r/").uuid(recording)
}

fn count_key(index: &[u8]) -> Vec<u8> {
    [b"n/".as_slice(), index].concat()
}

fn read_count(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Whether an index keeps a count per value (`n/`): those whose values
/// are few (event types, actors, sites). A stream's (`s/`) or a
/// recording's (`r/`) events are counted from its posting blocks instead
/// ([`History::count`]), which saves two keys per recording.
fn counted(index: &[u8]) -> bool {
    !(index.starts_with(b"s/") || index.starts_with(b"r/"))
}

/// Adds `position` to its posting block under `index`, once (a replayed
/// event changes nothing), and counts it where the index keeps counts.
fn post(w: &mut Overlay, index: Key, position: u64) -> Result<()> {
    let index = index.build();
    let key = Key::new(&index).u64(position >> BLOCK_BITS).build();
    let low = (position & (BLOCK_SPAN - 1)) as u8;
    let mut block = w.get(&key)?.unwrap_or_default();
    // Positions arrive in increasing order: the common case is a push.
    if block.last().is_some_and(|last| *last >= low) {
        match block.binary_search(&low) {
            Ok(_) => return Ok(()),
            Err(at) => block.insert(at, low),
        }
    } else {
        block.push(low);
    }
    w.insert(key, block)?;
    if !counted(&index) {
        return Ok(());
    }
    let count = count_key(&index);
    let n = read_count(w.get(&count)?.as_deref());
    w.insert(count, (n + 1).to_be_bytes().to_vec())
}

/// Widens the time span of `position`'s block to `at`.
fn stamp(w: &mut Overlay, position: u64, at: Timestamp) -> Result<()> {
    let key = Key::new(b"w/").u64(position >> BLOCK_BITS).build();
    let (lo, hi) = match w.get(&key)?.as_deref().and_then(span_of) {
        Some((lo, hi)) => (lo.min(at.0), hi.max(at.0)),
        None => (at.0, at.0),
    };
    w.insert(key, [lo.to_be_bytes(), hi.to_be_bytes()].concat())
}

fn span_of(value: &[u8]) -> Option<(i64, i64)> {
    let lo = i64::from_be_bytes(value.get(..8)?.try_into().ok()?);
    let hi = i64::from_be_bytes(value.get(8..16)?.try_into().ok()?);
    Some((lo, hi))
}

/// The projection that maintains [`History`].
pub struct HistoryProjection;

impl HistoryProjection {
    pub const NAME: &'static str = "history";
}

impl Projection<DomainEvent> for HistoryProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    /// 2: streams and recordings are counted from their blocks (no `n/`
    /// key of theirs).
    fn version(&self) -> u32 {
        2
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        let pos = e.position;
        post(w, type_index(e.payload.name()), pos)?;
        post(w, stream_index(&e.stream), pos)?;
        post(w, actor_index(&e.actor.label()), pos)?;
        if let Some(site) = e.payload.site_id() {
            post(w, site_index(site), pos)?;
        }
        if let Some(recording) = e.payload.recording_id() {
            post(w, recording_index(recording), pos)?;
        }
        stamp(w, pos, e.recorded_at)
    }
}

/// What a history walk selects; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Any of these event type names (`None`: all; empty: none).
    pub types: Option<Vec<String>>,
    /// One stream.
    pub stream: Option<String>,
    /// One actor label, exactly (`principal:ann`).
    pub actor: Option<String>,
    /// Events of this site.
    pub site: Option<Uuid>,
    /// Events about this recording.
    pub recording: Option<Uuid>,
    /// Events of any of these sites (`None`: of any site or none; empty:
    /// none), e.g. the sites a scoped caller may read.
    pub within_sites: Option<Vec<Uuid>>,
    /// Recorded from this time (inclusive), by the blocks' time spans.
    pub from: Option<Timestamp>,
    /// Recorded before this time, by the blocks' time spans.
    pub to: Option<Timestamp>,
}

/// Queries over the history index.
#[derive(Clone, Debug)]
pub struct History {
    tree: TreeRef,
}

impl History {
    pub fn new(tree: TreeRef) -> Self {
        History { tree }
    }

    /// The last log position the index covers (0: none).
    pub fn indexed(&self) -> Result<u64> {
        Ok(self.tree.checkpoint()?.map_or(0, |c| c.position))
    }

    /// The positions from `from` to `to` (inclusive, and no further than
    /// [`History::indexed`] when the walk starts) the query selects,
    /// oldest first. Every keyed filter is exact; time bounds select whole
    /// blocks (see the module docs).
    pub fn positions(
        &self,
        query: &HistoryQuery,
        from: u64,
        to: u64,
    ) -> Result<impl Iterator<Item = Result<u64>> + Send + 'static> {
        let to = to.min(self.indexed()?);
        let mut list = self.list(query);
        let mut next = from.max(1);
        let mut done = false;
        Ok(std::iter::from_fn(move || {
            if done || next > to {
                return None;
            }
            match list.seek(next) {
                Ok(Some(pos)) if pos <= to => {
                    next = pos + 1;
                    Some(Ok(pos))
                }
                Ok(_) => {
                    done = true;
                    None
                }
                Err(e) => {
                    done = true;
                    Some(Err(e))
                }
            }
        }))
    }

    /// How many events the query selects, from the counts, when it names
    /// at most one keyed value (or only types) and no time bound: `None`
    /// when it must be counted by a walk. Covers the index only (up to
    /// [`History::indexed`] as it was when counted).
    pub fn count(&self, query: &HistoryQuery) -> Result<Option<u64>> {
        if query.from.is_some() || query.to.is_some() {
            return Ok(None);
        }
        let count = |index: Key| -> Result<u64> {
            let index = index.build();
            if counted(&index) {
                Ok(read_count(self.tree.get(count_key(&index))?.as_deref()))
            } else {
                self.count_blocks(&index)
            }
        };
        let mut keyed: Vec<Key> = Vec::new();
        keyed.extend(query.stream.as_deref().map(stream_index));
        keyed.extend(query.actor.as_deref().map(actor_index));
        keyed.extend(query.site.map(site_index));
        keyed.extend(query.recording.map(recording_index));
        let sites = query.within_sites.is_some();
        match (&query.types, keyed.len(), sites) {
            (None, 0, false) => self.indexed().map(Some),
            (None, 1, false) => count(keyed.remove(0)).map(Some),
            (Some(types), 0, false) => {
                let mut distinct: Vec<&String> = types.iter().collect();
                distinct.sort();
                distinct.dedup();
                let mut total = 0;
                for t in distinct {
                    total += count(type_index(t))?;
                }
                Ok(Some(total))
            }
            (None, 0, true) => {
                let mut distinct = query.within_sites.clone().unwrap_or_default();
                distinct.sort();
                distinct.dedup();
                let mut total = 0;
                for s in distinct {
                    total += count(site_index(s))?;
                }
                Ok(Some(total))
            }
            _ => Ok(None),
        }
    }

    /// The entries of `index`'s posting blocks: a stream's or a
    /// recording's events (one key per 256 positions it has events in).
    fn count_blocks(&self, prefix: &[u8]) -> Result<u64> {
        let mut n = 0;
        for kv in self.tree.scan_prefix(prefix) {
            let (key, value) = kv?;
            // Another value that extends this one's bytes is not counted
            // (the same check as the walk's).
            if key.len() == prefix.len() + 8 {
                n += value.len() as u64;
            }
        }
        Ok(n)
    }

    /// The ordered list a query walks.
    fn list(&self, query: &HistoryQuery) -> List {
        let postings = |index: Key| List::Postings(Postings::new(self.tree.clone(), index));
        let mut all: Vec<List> = Vec::new();
        if let Some(types) = &query.types {
            all.push(List::Any(
                types.iter().map(|t| postings(type_index(t))).collect(),
            ));
        }
        all.extend(query.stream.as_deref().map(stream_index).map(postings));
        all.extend(query.actor.as_deref().map(actor_index).map(postings));
        all.extend(query.site.map(site_index).map(postings));
        all.extend(query.recording.map(recording_index).map(postings));
        if let Some(sites) = &query.within_sites {
            all.push(List::Any(
                sites.iter().map(|s| postings(site_index(*s))).collect(),
            ));
        }
        if query.from.is_some() || query.to.is_some() {
            all.push(List::Time(Spans {
                tree: self.tree.clone(),
                from: query.from.map_or(i64::MIN, |t| t.0),
                to: query.to.map_or(i64::MAX, |t| t.0),
                hit: None,
            }));
        }
        match all.len() {
            0 => List::Every,
            1 => all.remove(0),
            _ => List::All(all),
        }
    }
}

/// An ordered list of positions that can skip ahead.
enum List {
    /// Every position.
    Every,
    /// One index value's positions.
    Postings(Postings),
    /// The positions of any of these lists.
    Any(Vec<List>),
    /// The positions of all of these lists.
    All(Vec<List>),
    /// The positions of the blocks whose time span meets the bounds.
    Time(Spans),
}

impl List {
    /// The first position at or after `at`.
    fn seek(&mut self, at: u64) -> Result<Option<u64>> {
        match self {
            List::Every => Ok(Some(at)),
            List::Postings(p) => p.seek(at),
            List::Time(t) => t.seek(at),
            List::Any(lists) => {
                let mut best: Option<u64> = None;
                for list in lists {
                    if let Some(pos) = list.seek(at)? {
                        best = Some(best.map_or(pos, |b| b.min(pos)));
                    }
                }
                Ok(best)
            }
            List::All(lists) => {
                // Leapfrog: raise the candidate until every list has it.
                let mut candidate = at;
                loop {
                    let mut agreed = true;
                    for list in lists.iter_mut() {
                        match list.seek(candidate)? {
                            None => return Ok(None),
                            Some(pos) if pos > candidate => {
                                candidate = pos;
                                agreed = false;
                            }
                            Some(_) => {}
                        }
                    }
                    if agreed {
                        return Ok(Some(candidate));
                    }
                }
            }
        }
    }
}

/// One index value's posting blocks, read a block at a time.
struct Postings {
    tree: TreeRef,
    prefix: Vec<u8>,
    /// The block read last and its entries; `None` before the first read.
    block: Option<(u64, Vec<u8>)>,
    /// No block at or after the last one read.
    exhausted: bool,
}

impl Postings {
    fn new(tree: TreeRef, index: Key) -> Self {
        Postings {
            tree,
            prefix: index.build(),
            block: None,
            exhausted: false,
        }
    }

    /// The first block at or after `block`.
    fn read_from(&mut self, block: u64) -> Result<()> {
        let lower = [self.prefix.as_slice(), &block.to_be_bytes()].concat();
        let upper = match codec::prefix_end(&self.prefix) {
            Some(end) => Bound::Excluded(end),
            None => Bound::Unbounded,
        };
        for kv in self
            .tree
            .range::<Vec<u8>, _>((Bound::Included(lower), upper))
        {
            let (key, value) = kv?;
            // A longer value of the same tag (e.g. stream `a` and `a-b`)
            // ends with its own terminator and block: skip what is not
            // this value's 8-byte block number.
            let Some(n) = key
                .get(self.prefix.len()..)
                .filter(|suffix| suffix.len() == 8)
                .and_then(codec::u64_from_key)
            else {
                continue;
            };
            self.block = Some((n, value.to_vec()));
            return Ok(());
        }
        self.exhausted = true;
        Ok(())
    }

    fn seek(&mut self, at: u64) -> Result<Option<u64>> {
        let wanted = at >> BLOCK_BITS;
        loop {
            if self.exhausted {
                return Ok(None);
            }
            match &self.block {
                Some((n, lows)) if *n >= wanted => {
                    let base = n << BLOCK_BITS;
                    let floor = if *n == wanted {
                        at & (BLOCK_SPAN - 1)
                    } else {
                        0
                    };
                    if let Some(low) = lows.iter().find(|low| u64::from(**low) >= floor) {
                        return Ok(Some(base | u64::from(*low)));
                    }
                    let next = n + 1;
                    self.read_from(next)?;
                }
                _ => self.read_from(wanted)?,
            }
        }
    }
}

/// The blocks whose time span meets `[from, to)`.
struct Spans {
    tree: TreeRef,
    from: i64,
    to: i64,
    /// The block found last, whose span meets the bounds.
    hit: Option<u64>,
}

impl Spans {
    fn seek(&mut self, at: u64) -> Result<Option<u64>> {
        if self.hit == Some(at >> BLOCK_BITS) {
            return Ok(Some(at));
        }
        let lower = Key::new(b"w/").u64(at >> BLOCK_BITS).build();
        let upper = codec::prefix_end(b"w/").unwrap_or_default();
        for kv in self.tree.range::<Vec<u8>, _>(lower..upper) {
            let (key, value) = kv?;
            let (Some(block), Some((lo, hi))) =
                (key.get(2..).and_then(codec::u64_from_key), span_of(&value))
            else {
                continue;
            };
            if hi >= self.from && lo < self.to {
                self.hit = Some(block);
                return Ok(Some(at.max(block << BLOCK_BITS)));
            }
        }
        Ok(None)
    }
}
