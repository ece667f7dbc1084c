//! The admin audit trail: every admin action with who, what, target, when
//! and log position. Which events are admin actions, and their category,
//! action and target, is the domain's [`classify`]; the actor and the time
//! come from the envelope.
//!
//! | key | value |
//! |---|---|
//! | `e/` position desc | [`AuditRow`] |
//! | `c/` category, block desc | posting block |
//! | `a/` actor label (lowercase), block desc | posting block |
//! | `s/` site, block desc | posting block |
//! | `n/` | count of entries (u64 BE) |
//! | `n/` index tag and value (`c/` category, `a/` actor, `s/` site) | count of that value's entries (u64 BE) |
//!
//! The counts answer `totalCount` without a walk when the filter names at
//! most one index value (or only categories) and nothing else; any other
//! filter is counted by walking the most specific index, as a page is.
//!
//! The secondary indexes are posting blocks: one key per index value and
//! span of [`BLOCK_SPAN`] log positions (block = position >> 8), whose value
//! is the low bytes (position & 0xff) of that span's entries, ascending and
//! without repeats. Each distinct key a rebuilt tree ends with costs an
//! insert in sled whatever its value, so an index of dense entries costs
//! one key per 256 positions instead of one per entry; positions arrive in
//! increasing order, so keeping a block is a read-modify-write that pushes
//! one byte.
//!
//! Newest first; the cursor is the position (inside a block, a walk skips
//! to the cursor's block and then past the cursor). Time bounds are checked
//! on the rows of the walked index.

use std::ops::Bound;

use serde::{Deserialize, Serialize};
use srs_domain::actor::Actor;
use srs_domain::log::Envelope;
use srs_domain::model::{classify, AuditCategory, AuditEntry, DomainEvent};
use srs_domain::time::Timestamp;
use uuid::Uuid;

use super::util::{
    cursor_decode, cursor_encode, get, merged, norm, page_size, SuffixBounds, TreeRef,
};
use crate::codec::{self, Key};
use crate::engine::{Overlay, Projection};
use crate::error::Result;
use crate::store::{Keyspace, Tree};

/// One admin-log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub position: u64,
    pub at: Timestamp,
    pub actor: Actor,
    pub category: AuditCategory,
    /// A stable dotted name, e.g. `policy.activated`.
    pub action: String,
    /// `kind:<id>`.
    pub target: String,
    pub site_id: Option<Uuid>,
    pub detail: String,
    pub event_type: String,
    pub event_id: Uuid,
    pub correlation_id: Uuid,
}

impl AuditRow {
    /// The entry of an audited event, as [`classify`] describes it.
    pub fn of(e: &Envelope<DomainEvent>, entry: AuditEntry) -> Self {
        AuditRow {
            position: e.position,
            at: e.recorded_at,
            actor: e.actor.clone(),
            category: entry.category,
            action: entry.action.to_string(),
            target: entry.target,
            site_id: entry.site_id,
            detail: entry.detail,
            event_type: e.payload.name().to_string(),
            event_id: e.event_id,
            correlation_id: e.correlation_id,
        }
    }
}

/// What `auditTrail(filter)` filters by; every set field must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Any of these (empty: all).
    pub categories: Vec<AuditCategory>,
    /// An actor label (`principal:ann`, `agent:<id>`, `system:retention`)
    /// or a bare principal name, case-insensitive.
    pub actor: Option<String>,
    pub site_id: Option<Uuid>,
    pub target: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// A page of entries, newest first.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditPage {
    pub items: Vec<(String, AuditRow)>,
    pub has_next_page: bool,
    pub end_cursor: Option<String>,
}

fn category_code(c: AuditCategory) -> u8 {
    match c {
        AuditCategory::Configuration => 0,
        AuditCategory::RecordingReason => 1,
        AuditCategory::Playback => 2,
        AuditCategory::Access => 3,
    }
}

fn actor_keys(actor: &Actor) -> Vec<String> {
    let mut keys = vec![norm(&actor.label())];
    if let Actor::Principal { name, .. } = actor {
        keys.push(norm(name));
    }
    keys
}

/// How many log positions one posting block spans (a power of two: the
/// block is `position >> BLOCK_BITS`, the entry its low byte).
pub const BLOCK_SPAN: u64 = 1 << BLOCK_BITS;
const BLOCK_BITS: u32 = 8;

/// The key of the posting block of index value `index` (a key builder
/// holding the tag and the value) that holds `position`.
fn block_key(index: Key, position: u64) -> Vec<u8> {
    index.u64_desc(position >> BLOCK_BITS).build()
}

/// Adds `position` to its posting block under `index`: in sorted place,
/// once (a replayed or repeated entry changes nothing), and counts it.
fn post(w: &mut Overlay, index: Key, position: u64) -> Result<()> {
    let count = count_key(&index.clone().build());
    let key = block_key(index, position);
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
    bump(w, count)
}

/// The key of the count of index value `index` (its tag and value), or
/// of all entries for an empty one.
fn count_key(index: &[u8]) -> Vec<u8> {
    [b"n/".as_slice(), index].concat()
}

fn bump(w: &mut Overlay, key: Vec<u8>) -> Result<()> {
    let n = read_count(w.get(&key)?.as_deref());
    w.insert(key, (n + 1).to_be_bytes().to_vec())
}

fn read_count(value: Option<&[u8]>) -> u64 {
    value
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .map_or(0, u64::from_be_bytes)
}

/// The positions of the posting blocks under `prefix` (an index tag and
/// value), newest first, below `before` when given.
fn postings<'a>(
    tree: &'a Tree,
    prefix: Vec<u8>,
    before: Option<u64>,
) -> impl Iterator<Item = Result<u64>> + 'a {
    // The walk starts at the block holding `before`: the blocks before it
    // in key order hold only later positions.
    let lower = match before {
        Some(b) => [prefix.as_slice(), &codec::u64_desc_key(b >> BLOCK_BITS)].concat(),
        None => prefix.clone(),
    };
    let upper = match codec::prefix_end(&prefix) {
        Some(end) => Bound::Excluded(end),
        None => Bound::Unbounded,
    };
    let mut blocks = tree.range::<Vec<u8>, _>((Bound::Included(lower), upper));
    let mut pending: Vec<u64> = Vec::new();
    std::iter::from_fn(move || loop {
        // `pending` holds the rest of the current block, oldest first.
        if let Some(pos) = pending.pop() {
            return Some(Ok(pos));
        }
        let (key, value) = match blocks.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(e.into())),
        };
        let Some(block) = key
            .get(prefix.len()..)
            .filter(|suffix| suffix.len() == 8)
            .and_then(codec::u64_from_desc_key)
        else {
            // Not a block of this index value (none are written).
            continue;
        };
        let base = block << BLOCK_BITS;
        pending.extend(
            value
                .iter()
                .map(|low| base | u64::from(*low))
                .filter(|pos| before.is_none_or(|b| *pos < b)),
        );
    })
}

/// Several [`postings`] walks merged: positions newest first, each once.
fn merged_postings<'a>(
    tree: &'a Tree,
    prefixes: Vec<Vec<u8>>,
    before: Option<u64>,
) -> impl Iterator<Item = Result<u64>> + 'a {
    let mut heads: Vec<_> = prefixes
        .into_iter()
        .map(|p| postings(tree, p, before).peekable())
        .collect();
    let mut last: Option<u64> = None;
    std::iter::from_fn(move || loop {
        let mut best: Option<(usize, u64)> = None;
        for (i, head) in heads.iter_mut().enumerate() {
            match head.peek() {
                Some(Ok(pos)) if best.is_none_or(|(_, b)| *pos > b) => {
                    best = Some((i, *pos));
                }
                Some(Err(_)) => {
                    if let Some(Err(e)) = head.next() {
                        return Some(Err(e));
                    }
                }
                _ => {}
            }
        }
        let (i, pos) = best?;
        heads[i].next();
        if last == Some(pos) {
            continue;
        }
        last = Some(pos);
        return Some(Ok(pos));
    })
}

/// The projection that maintains [`AuditTrail`].
pub struct AuditProjection;

impl AuditProjection {
    pub const NAME: &'static str = "audit";
}

impl Projection<DomainEvent> for AuditProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        // 2: the secondary indexes are posting blocks; 3: counts.
        3
    }

    fn apply(&self, w: &mut Overlay, e: &Envelope<DomainEvent>) -> Result<()> {
        let Some(entry) = classify(&e.payload) else {
            return Ok(());
        };
        let pos = e.position;
        let row_key = Key::new(b"e/").u64_desc(pos).build();
        if w.get(&row_key)?.is_some() {
            // Applied before: its postings and counts are there.
            return Ok(());
        }
        bump(w, count_key(&[]))?;
        post(w, Key::new(b"c/").u8(category_code(entry.category)), pos)?;
        for actor in actor_keys(&e.actor) {
            post(w, Key::new(b"a/").str(&actor), pos)?;
        }
        if let Some(site) = entry.site_id {
            post(w, Key::new(b"s/").uuid(site), pos)?;
        }
        w.put_value(row_key, &AuditRow::of(e, entry))
    }
}

/// Queries over the admin log.
#[derive(Clone, Debug)]
pub struct AuditTrail {
    tree: TreeRef,
}

impl AuditTrail {
    pub fn new(tree: TreeRef) -> Self {
        AuditTrail { tree }
    }

    pub fn entry(&self, position: u64) -> Result<Option<AuditRow>> {
        get(&self.tree, &Key::new(b"e/").u64_desc(position).build())
    }

    /// A page of entries matching `filter`, newest first, after `after`.
    pub fn search(
        &self,
        filter: &AuditFilter,
        first: Option<usize>,
        after: Option<&str>,
    ) -> Result<AuditPage> {
        let limit = page_size(first);
        let after = after
            .map(|c| cursor_decode("a", c))
            .transpose()?
            .and_then(|b| codec::u64_from_key(&b));
        // Walk the most specific index; single-valued filters first.
        let index: Option<Vec<Vec<u8>>> = if let Some(actor) = &filter.actor {
            Some(vec![Key::new(b"a/").str(&norm(actor)).build()])
        } else if let Some(site) = filter.site_id {
            Some(vec![Key::new(b"s/").uuid(site).build()])
        } else if !filter.categories.is_empty() {
            Some(
                filter
                    .categories
                    .iter()
                    .map(|c| Key::new(b"c/").u8(category_code(*c)).build())
                    .collect(),
            )
        } else {
            None
        };
        let positions: Box<dyn Iterator<Item = Result<u64>>> = match index {
            Some(prefixes) => Box::new(merged_postings(&self.tree, prefixes, after)),
            None => {
                let after = after.map(codec::u64_desc_key);
                Box::new(
                    merged(
                        &self.tree,
                        &[b"e/".to_vec()],
                        after.as_ref().map(|a| &a[..]),
                        &SuffixBounds::default(),
                    )
                    .map(|suffix| Ok(codec::u64_from_desc_key(&suffix?).unwrap_or(0))),
                )
            }
        };
        let mut items = Vec::new();
        let mut has_next_page = false;
        for pos in positions {
            let pos = pos?;
            let Some(row) = self.entry(pos)? else {
                continue;
            };
            if !matches(filter, &row) {
                continue;
            }
            if items.len() == limit {
                has_next_page = true;
                break;
            }
            items.push((cursor_encode("a", &pos.to_be_bytes()), row));
        }
        let end_cursor = items.last().map(|(c, _)| c.clone());
        Ok(AuditPage {
            items,
            has_next_page,
            end_cursor,
        })
    }
}

impl AuditTrail {
    /// How many entries match `filter`: from the counts when the filter
    /// names one actor, one site or only categories (or nothing), else by
    /// walking the most specific index as [`AuditTrail::search`] does.
    pub fn count(&self, filter: &AuditFilter) -> Result<u64> {
        let count = |index: Vec<u8>| -> Result<u64> {
            Ok(read_count(self.tree.get(count_key(&index))?.as_deref()))
        };
        let others = filter.target.is_some() || filter.from.is_some() || filter.to.is_some();
        let categories = !filter.categories.is_empty();
        if !others {
            match (&filter.actor, filter.site_id, categories) {
                (None, None, false) => return count(Vec::new()),
                (Some(actor), None, false) => {
                    return count(Key::new(b"a/").str(&norm(actor)).build())
                }
                (None, Some(site), false) => return count(Key::new(b"s/").uuid(site).build()),
                (None, None, true) => {
                    let mut distinct = filter.categories.clone();
                    distinct.sort_by_key(|c| category_code(*c));
                    distinct.dedup();
                    let mut total = 0;
                    for c in distinct {
                        total += count(Key::new(b"c/").u8(category_code(c)).build())?;
                    }
                    return Ok(total);
                }
                _ => {}
            }
        }
        let mut total = 0;
        let mut after: Option<String> = None;
        loop {
            let page = self.search(filter, Some(500), after.as_deref())?;
            total += page.items.len() as u64;
            if !page.has_next_page {
                return Ok(total);
            }
            after = page.end_cursor;
        }
    }
}

fn matches(f: &AuditFilter, row: &AuditRow) -> bool {
    (f.categories.is_empty() || f.categories.contains(&row.category))
        && f.actor
            .as_ref()
            .is_none_or(|a| actor_keys(&row.actor).contains(&norm(a)))
        && f.site_id.is_none_or(|s| row.site_id == Some(s))
        && f.target
            .as_ref()
            .is_none_or(|t| row.target.eq_ignore_ascii_case(t.trim()))
        && f.from.is_none_or(|from| row.at >= from)
        && f.to.is_none_or(|to| row.at < to)
}

#[cfg(test)]
mod tests {
    use crate::store::{Db, Store};
    use std::sync::Arc;

    use srs_domain::log::Hash;

    use super::*;

    fn site_created(position: u64, site: Uuid, by: &str) -> Envelope<DomainEvent> {
        Envelope {
            position,
            stream: format!("site-{site}"),
            version: 1,
            event_id: Uuid::now_v7(),
            recorded_at: Timestamp(position as i64 * 1_000_000),
            actor: Actor::Principal {
                token_id: Uuid::nil(),
                name: by.into(),
            },
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            payload: DomainEvent::SiteCreated {
                site_id: site,
                name: format!("site {position}"),
                at: Timestamp(0),
            },
            prev_hash: Hash::default(),
            hash: Hash::default(),
        }
    }

    /// The counts say what walking the trail finds, for every filter, and
    /// an event applied twice is counted once.
    #[test]
    fn counts_match_what_a_walk_finds() {
        let db = Db::temporary().unwrap();
        let tree = db.open("audit").unwrap();
        let mut w = Overlay::new(tree.clone());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        for position in 1..=700u64 {
            let site = if position % 3 == 0 { a } else { b };
            let by = if position % 5 == 0 { "ann" } else { "bob" };
            let event = site_created(position, site, by);
            AuditProjection.apply(&mut w, &event).unwrap();
            if position % 7 == 0 {
                AuditProjection.apply(&mut w, &event).unwrap();
            }
        }
        w.commit(700, AuditProjection.version()).unwrap();
        let trail = AuditTrail::new(Arc::new(tree));
        let walked = |filter: &AuditFilter| {
            let mut n = 0;
            let mut after: Option<String> = None;
            loop {
                let page = trail.search(filter, Some(100), after.as_deref()).unwrap();
                n += page.items.len() as u64;
                if !page.has_next_page {
                    return n;
                }
                after = page.end_cursor;
            }
        };
        for filter in [
            AuditFilter::default(),
            AuditFilter {
                site_id: Some(a),
                ..AuditFilter::default()
            },
            AuditFilter {
                actor: Some("principal:ann".into()),
                ..AuditFilter::default()
            },
            AuditFilter {
                actor: Some("Bob".into()),
                ..AuditFilter::default()
            },
            AuditFilter {
                categories: vec![AuditCategory::Configuration, AuditCategory::Configuration],
                ..AuditFilter::default()
            },
            AuditFilter {
                categories: vec![AuditCategory::Playback],
                ..AuditFilter::default()
            },
            AuditFilter {
                site_id: Some(b),
                actor: Some("ann".into()),
                ..AuditFilter::default()
            },
            AuditFilter {
                from: Some(Timestamp(100_000_000)),
                ..AuditFilter::default()
            },
        ] {
            assert_eq!(trail.count(&filter).unwrap(), walked(&filter), "{filter:?}");
        }
        assert_eq!(trail.count(&AuditFilter::default()).unwrap(), 700);
        assert_eq!(
            trail
                .count(&AuditFilter {
                    site_id: Some(a),
                    ..AuditFilter::default()
                })
                .unwrap(),
            233
        );
    }

    #[test]
    fn a_block_keeps_its_entries_sorted_and_once_whatever_the_order() {
        let db = Db::temporary().unwrap();
        let mut w = Overlay::new(db.open("audit").unwrap());
        let index = || Key::new(b"c/").u8(1);
        for pos in [5, 3, 5, 300, 1, 255, 3, 256 + 7] {
            post(&mut w, index(), pos).unwrap();
        }
        assert_eq!(
            w.get(&block_key(index(), 0)).unwrap(),
            Some(vec![1, 3, 5, 255])
        );
        // 300 and 263 are the block 1's entries 44 and 7.
        assert_eq!(w.get(&block_key(index(), 256)).unwrap(), Some(vec![7, 44]));
        assert!(
            block_key(index(), 256) < block_key(index(), 255),
            "newest first"
        );
    }
}
