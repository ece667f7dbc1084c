//! The dashboard's per-day counters in memory, so a dashboard is answered
//! without reading sled.
//!
//! Every key of the dashboard tree under a per-day tag (`day/`, `dday/`,
//! `md/`, `dt/`, `dv/`, `ld/` and the top lists' `ud/` `ad/` `hd/` `gd/`
//! `rd/` and their `p..` twins) is `tag scope 0 day rest`. [`DashboardDays`]
//! holds them as one [`DayTable`] per `tag scope`: the days with a count,
//! in order, each with the items (`rest`, interned per tag as a dense `u32`)
//! counted that day and their counts, sorted by item.
//!
//! A top list over a range of days is then one pass over rows that cover
//! the range, adding each count into a dense array indexed by item (no
//! hashing, no allocation per item, memory read in order), and a
//! selection of the `n` largest; only those `n` items' names are turned
//! into strings. Beside the day rows each table keeps, per block of
//! [`BLOCK_DAYS`] aligned days, the sum of the block's rows: a range is
//! covered by its days up to the first whole block, the whole blocks,
//! and its days after the last one, so a 31-day range (the dashboard's
//! default) reads about 10 rows instead of 31. Its cost is the number of
//! `(row, item)` counters read, independent of how many recordings they
//! count: at 2,000 users about 20,000 additions instead of 62,000.
//!
//! The projection keeps it fresh from its commit hook
//! ([`crate::engine::Projection::committed`]) with the values the batch
//! wrote (absolute values: applying a batch the load already saw changes
//! nothing), before the runner publishes its position, so `wait_for`
//! implies fresh figures. It follows one tree (by name): a query on another
//! tree (after a rebuild's swap) loads that one from sled first, under the
//! write lock, so no batch's hook runs in between.
//!
//! Memory: 16 bytes per counter (item and count), the blocks' sums about
//! as many again at most (fewer where the same items are counted on
//! several days of a block), plus each distinct item's name once per tag
//! ([`DashboardDays::entries`] counts the day counters). An
//! item's name stays interned after its last counter is gone (until the
//! next load): names are bounded by the distinct users, hosts,
//! applications, groups and rules ever counted.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use crate::codec;
use crate::engine::{read_counter, Changes};
use crate::error::Result;
use crate::store::{Keyspace, Tree};

/// The tags kept in memory (every per-day counter the dashboard sums).
pub(crate) const DAY_TAGS: [&[u8]; 16] = [
    b"day/", b"dday/", b"md/", b"dt/", b"dv/", b"ld/", b"ud/", b"ad/", b"hd/", b"gd/", b"rd/",
    b"pud/", b"pad/", b"phd/", b"pgd/", b"prd/",
];

/// The items of one tag: each distinct `rest` of its keys, by dense id.
#[derive(Debug, Default)]
struct Items {
    ids: HashMap<Box<[u8]>, u32>,
    names: Vec<Box<[u8]>>,
}

impl Items {
    fn id(&self, rest: &[u8]) -> Option<u32> {
        self.ids.get(rest).copied()
    }

    fn intern(&mut self, rest: &[u8]) -> u32 {
        if let Some(id) = self.id(rest) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(u32::MAX);
        self.names.push(rest.into());
        self.ids.insert(rest.into(), id);
        id
    }

    fn name(&self, id: u32) -> &[u8] {
        self.names.get(id as usize).map_or(&[], |n| n)
    }
}

/// Days summed per block in [`DayTable`]: blocks are the days `8b ..=
/// 8b + 7`.
pub(crate) const BLOCK_DAYS: i64 = 8;

/// Sorted `(item, count)` pairs, counts above 0.
type Row = Vec<(u32, u64)>;

/// The counters of one `tag scope`: the days with a count, in order, and
/// per day the `(item, count)` pairs, sorted by item, counts above 0; and
/// the same per block of [`BLOCK_DAYS`] days, each the sum of its days.
#[derive(Debug, Default)]
pub(crate) struct DayTable {
    days: Vec<i64>,
    rows: Vec<Row>,
    /// Block numbers (`day.div_euclid(BLOCK_DAYS)`) with a count, in order.
    blocks: Vec<i64>,
    block_rows: Vec<Row>,
}

/// Sets the count of `item` in the row of `key` in `keys`/`rows` to
/// `to(its count)` (rows kept sorted, rows and keys without counts
/// removed); returns the count it had.
fn update(
    keys: &mut Vec<i64>,
    rows: &mut Vec<Row>,
    key: i64,
    item: u32,
    to: impl FnOnce(u64) -> u64,
) -> u64 {
    let at = keys.partition_point(|k| *k < key);
    if keys.get(at) != Some(&key) {
        let new = to(0);
        if new > 0 {
            keys.insert(at, key);
            rows.insert(at, vec![(item, new)]);
        }
        return 0;
    }
    let row = &mut rows[at];
    let old = match row.binary_search_by_key(&item, |(i, _)| *i) {
        Ok(i) => {
            let old = row[i].1;
            match to(old) {
                0 => {
                    row.remove(i);
                }
                n => row[i].1 = n,
            }
            old
        }
        Err(i) => {
            let new = to(0);
            if new > 0 {
                row.insert(i, (item, new));
            }
            0
        }
    };
    if row.is_empty() {
        keys.remove(at);
        rows.remove(at);
    }
    old
}

/// The indices of `keys` (sorted) within `first..=last`.
fn span(keys: &[i64], first: i64, last: i64) -> std::ops::Range<usize> {
    let from = keys.partition_point(|k| *k < first);
    from..keys.partition_point(|k| *k <= last).max(from)
}

/// The rows of `keys`/`rows` whose keys are within `first..=last`.
fn rows_within<'a>(keys: &[i64], rows: &'a [Row], first: i64, last: i64) -> &'a [Row] {
    &rows[span(keys, first, last)]
}

impl DayTable {
    /// Sets the count of `item` on `day`; returns how the number of
    /// counters changed (-1, 0 or 1).
    fn set(&mut self, day: i64, item: u32, count: u64) -> isize {
        let old = update(&mut self.days, &mut self.rows, day, item, |_| count);
        if old != count {
            let block = day.div_euclid(BLOCK_DAYS);
            update(&mut self.blocks, &mut self.block_rows, block, item, |sum| {
                sum.saturating_add(count).saturating_sub(old)
            });
        }
        match (old, count) {
            (0, 0) => 0,
            (0, _) => 1,
            (_, 0) => -1,
            _ => 0,
        }
    }

    /// The rows of the days within `first..=last`, with their days.
    fn range(&self, first: i64, last: i64) -> impl Iterator<Item = (i64, &[(u32, u64)])> + '_ {
        let within = span(&self.days, first, last);
        self.days[within.clone()]
            .iter()
            .copied()
            .zip(self.rows[within].iter().map(Vec::as_slice))
    }

    /// Rows whose sum is the sum of the days `first..=last`: the days
    /// before the first whole block of the range, the whole blocks, the
    /// days after the last whole block.
    fn covering(&self, first: i64, last: i64) -> impl Iterator<Item = &[(u32, u64)]> + '_ {
        // Whole blocks: `b` with `first <= 8b` and `8b + 7 <= last`.
        let first_block =
            first.div_euclid(BLOCK_DAYS) + i64::from(first.rem_euclid(BLOCK_DAYS) != 0);
        let last_block =
            last.div_euclid(BLOCK_DAYS) - i64::from(last.rem_euclid(BLOCK_DAYS) != BLOCK_DAYS - 1);
        let (head, blocks, tail): (&[Row], &[Row], &[Row]) = if first_block <= last_block {
            (
                rows_within(
                    &self.days,
                    &self.rows,
                    first,
                    first_block.saturating_mul(BLOCK_DAYS).saturating_sub(1),
                ),
                rows_within(&self.blocks, &self.block_rows, first_block, last_block),
                rows_within(
                    &self.days,
                    &self.rows,
                    last_block.saturating_add(1).saturating_mul(BLOCK_DAYS),
                    last,
                ),
            )
        } else {
            (rows_within(&self.days, &self.rows, first, last), &[], &[])
        };
        head.iter().chain(blocks).chain(tail).map(Vec::as_slice)
    }
}

/// What [`DashboardDays`] holds for one tree.
#[derive(Debug, Default)]
pub(crate) struct DaysState {
    tree: Option<Vec<u8>>,
    /// Per tag (index into [`DAY_TAGS`]).
    items: Vec<Items>,
    /// By `tag scope 0` (the key up to the day).
    tables: HashMap<Vec<u8>, DayTable>,
    entries: usize,
}

/// The key split as `(tag index, tag scope 0, day, rest)`, for a key
/// under a kept tag.
fn split(key: &[u8]) -> Option<(usize, &[u8], i64, &[u8])> {
    let tag = DAY_TAGS.iter().position(|tag| key.starts_with(tag))?;
    let end = key.iter().position(|b| *b == 0)? + 1;
    let day = codec::i64_from_key(key.get(end..)?)?;
    Some((
        tag,
        &key[..end],
        day,
        key.get(end + 8..).unwrap_or_default(),
    ))
}

fn tag_index(tag: &[u8]) -> Option<usize> {
    DAY_TAGS.iter().position(|t| *t == tag)
}

impl DaysState {
    fn empty(tree: Option<Vec<u8>>) -> DaysState {
        DaysState {
            tree,
            items: DAY_TAGS.iter().map(|_| Items::default()).collect(),
            tables: HashMap::new(),
            entries: 0,
        }
    }

    fn load(tree: &Tree) -> Result<DaysState> {
        let mut state = DaysState::empty(Some(tree.name().as_bytes().to_vec()));
        for tag in DAY_TAGS {
            for kv in tree.scan_prefix(tag) {
                let (key, value) = kv?;
                state.set(&key, read_counter(Some(&value)).max(0) as u64);
            }
        }
        Ok(state)
    }

    fn set(&mut self, key: &[u8], count: u64) {
        let Some((tag, group, day, rest)) = split(key) else {
            return;
        };
        let Some(items) = self.items.get_mut(tag) else {
            return;
        };
        let item = match (items.id(rest), count) {
            (Some(id), _) => id,
            (None, 0) => return,
            (None, _) => items.intern(rest),
        };
        let table = match self.tables.get_mut(group) {
            Some(t) => t,
            None if count == 0 => return,
            None => self.tables.entry(group.to_vec()).or_default(),
        };
        self.entries = self
            .entries
            .saturating_add_signed(table.set(day, item, count));
    }

    fn table(&self, tag: &[u8], scope: &str) -> Option<&DayTable> {
        self.tables.get(&codec::Key::new(tag).str(scope).build())
    }

    /// Calls `f(day, rest, count)` for every counter under `tag scope`
    /// whose day is within `first..=last`, in day order.
    pub(crate) fn each_day(
        &self,
        tag: &[u8],
        scope: &str,
        first: i64,
        last: i64,
        mut f: impl FnMut(i64, &[u8], u64),
    ) {
        let (Some(table), Some(items)) = (
            self.table(tag, scope),
            tag_index(tag).and_then(|t| self.items.get(t)),
        ) else {
            return;
        };
        for (day, row) in table.range(first, last) {
            for (item, n) in row {
                f(day, items.name(*item), *n);
            }
        }
    }

    /// The `n` items of `tag` with the largest sums over the days
    /// `first..=last` and the scopes `scopes` (ties by name), largest
    /// first, each with its sum: the item's `rest` without its trailing
    /// terminator.
    pub(crate) fn top(
        &self,
        tag: &[u8],
        scopes: &[String],
        first: i64,
        last: i64,
        n: usize,
    ) -> Vec<(String, u64)> {
        let Some(items) = tag_index(tag).and_then(|t| self.items.get(t)) else {
            return Vec::new();
        };
        let mut sums = vec![0u64; items.names.len()];
        for scope in scopes {
            let Some(table) = self.table(tag, scope) else {
                continue;
            };
            for row in table.covering(first, last) {
                for (item, count) in row {
                    if let Some(sum) = sums.get_mut(*item as usize) {
                        *sum += count;
                    }
                }
            }
        }
        let name = |id: u32| {
            let rest = items.name(id);
            &rest[..rest.len().saturating_sub(1)]
        };
        let mut found: Vec<(u32, u64)> = sums
            .iter()
            .enumerate()
            .filter(|(_, sum)| **sum > 0)
            .map(|(id, sum)| (id as u32, *sum))
            .collect();
        let order =
            |a: &(u32, u64), b: &(u32, u64)| b.1.cmp(&a.1).then_with(|| name(a.0).cmp(name(b.0)));
        if n == 0 {
            return Vec::new();
        }
        if found.len() > n {
            // By count alone first (integer compares): the items counted
            // above the n-th count are in; names decide only among the
            // items tied at it, which fill the places left.
            found.select_nth_unstable_by(n - 1, |a, b| b.1.cmp(&a.1));
            let nth = found[n - 1].1;
            let (mut chosen, mut tied): (Vec<_>, Vec<_>) = found
                .into_iter()
                .filter(|(_, sum)| *sum >= nth)
                .partition(|(_, sum)| *sum > nth);
            // At least one place is left: the n-th item itself is tied.
            let room = n - chosen.len();
            if tied.len() > room {
                tied.select_nth_unstable_by(room - 1, |a, b| name(a.0).cmp(name(b.0)));
                tied.truncate(room);
            }
            chosen.append(&mut tied);
            found = chosen;
        }
        found.sort_by(order);
        found
            .into_iter()
            .map(|(id, sum)| (String::from_utf8_lossy(name(id)).into_owned(), sum))
            .collect()
    }
}

/// The dashboard's per-day counters of one tree in memory (module docs).
#[derive(Debug, Default)]
pub struct DashboardDays {
    state: RwLock<DaysState>,
}

impl DashboardDays {
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> RwLockReadGuard<'_, DaysState> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, DaysState> {
        match self.state.write() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                // Half applied: forget it, the next query reloads.
                *guard = DaysState::empty(None);
                self.state.clear_poison();
                guard
            }
        }
    }

    /// Applies a committed batch of `tree` (ignored unless it is the tree
    /// held).
    pub fn apply(&self, tree: &Tree, changes: &Changes) {
        let name = tree.name().as_bytes();
        if self.read().tree.as_deref() != Some(name) {
            return;
        }
        let mut state = self.write();
        if state.tree.as_deref() != Some(name) {
            return;
        }
        for (key, value) in changes {
            if split(key).is_some() {
                let count = value
                    .as_deref()
                    .map_or(0, |v| read_counter(Some(v)).max(0) as u64);
                state.set(key, count);
            }
        }
    }

    /// The counters of `tree`, loaded first when another tree is held.
    pub(crate) fn fresh(&self, tree: &Tree) -> Result<RwLockReadGuard<'_, DaysState>> {
        let name = tree.name().as_bytes();
        loop {
            {
                let state = self.read();
                if state.tree.as_deref() == Some(name) {
                    return Ok(state);
                }
            }
            let mut state = self.write();
            if state.tree.as_deref() != Some(name) {
                let start = Instant::now();
                *state = DaysState::load(tree)?;
                tracing::info!(
                    tree = %tree.name(),
                    entries = state.entries,
                    elapsed_ms = start.elapsed().as_millis() as u64,
                    "dashboard day counters loaded"
                );
            }
        }
    }

    /// The day counters held (one per key of the per-day tags).
    pub fn entries(&self) -> usize {
        self.read().entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(tag: &[u8], scope: &str, day: i64, item: &str) -> Vec<u8> {
        codec::Key::new(tag)
            .str(scope)
            .bytes(&codec::i64_key(day))
            .str(item)
            .build()
    }

    #[test]
    fn a_top_list_sums_any_range_of_days_over_scopes() {
        let mut s = DaysState::empty(None);
        s.set(&key(b"ud/", "a", 10, "alice"), 3);
        s.set(&key(b"ud/", "a", 12, "alice"), 5);
        s.set(&key(b"ud/", "a", 11, "bob"), 2);
        s.set(&key(b"ud/", "b", 11, "bob"), 7);
        s.set(&key(b"ud/", "b", 20, "carol"), 1);
        let scopes = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let top = |st: &DaysState, sc: &[&str], first, last, n| {
            st.top(b"ud/", &scopes(sc), first, last, n)
        };
        assert_eq!(
            top(&s, &["a"], 10, 12, 10),
            vec![("alice".to_string(), 8), ("bob".to_string(), 2)]
        );
        assert_eq!(
            top(&s, &["a", "b"], 0, 100, 10),
            vec![
                ("bob".to_string(), 9),
                ("alice".to_string(), 8),
                ("carol".to_string(), 1)
            ]
        );
        assert_eq!(
            top(&s, &["a", "b"], 0, 100, 1),
            vec![("bob".to_string(), 9)]
        );
        assert_eq!(top(&s, &["a"], 13, 19, 10), vec![]);
        // Ties go by name; a count set to 0 is gone.
        s.set(&key(b"ud/", "a", 12, "alice"), 0);
        s.set(&key(b"ud/", "a", 10, "alice"), 2);
        assert_eq!(
            top(&s, &["a"], 0, 100, 10),
            vec![("alice".to_string(), 2), ("bob".to_string(), 2)]
        );
        assert_eq!(s.entries, 4);
        let mut days = Vec::new();
        s.each_day(b"ud/", "a", 0, 100, |day, rest, n| {
            days.push((day, rest.to_vec(), n))
        });
        assert_eq!(
            days,
            vec![(10, b"alice\0".to_vec(), 2), (11, b"bob\0".to_vec(), 2)]
        );
    }

    #[test]
    fn a_top_list_is_the_first_n_by_count_then_name() {
        // Many ties at every count, as with many users of similar use.
        let mut s = DaysState::empty(None);
        let mut all: Vec<(String, u64)> = Vec::new();
        for i in 0..300u64 {
            let name = format!("user-{:03}", (i * 7919) % 300);
            let count = 1 + (i * 31) % 9;
            s.set(&key(b"ud/", "a", 10 + (i % 5) as i64, &name), count);
            all.push((name, count));
        }
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        for n in [1, 2, 10, 33, 34, 35, 299, 300, 301] {
            let top = s.top(b"ud/", &["a".to_string()], 0, 100, n);
            assert_eq!(top, all[..n.min(all.len())].to_vec(), "n = {n}");
        }
    }

    proptest::proptest! {
        /// Counters set, changed and cleared on random days (negative ones
        /// too): every range's top list (read through the blocks) is the
        /// sum of its days, and the days and counters held are the ones
        /// set.
        #[test]
        fn a_top_list_over_blocks_is_the_sum_of_its_days(
            sets in proptest::collection::vec((-20i64..40, 0u32..6, 0u64..4), 1..120),
            ranges in proptest::collection::vec((-30i64..50, 0i64..45), 1..12),
        ) {
            let name = |item: u32| format!("u{item}");
            let mut s = DaysState::empty(None);
            let mut held: std::collections::BTreeMap<(i64, u32), u64> = Default::default();
            for (day, item, count) in sets {
                s.set(&key(b"ud/", "a", day, &name(item)), count);
                if count == 0 {
                    held.remove(&(day, item));
                } else {
                    held.insert((day, item), count);
                }
            }
            proptest::prop_assert_eq!(s.entries, held.len());
            for (first, len) in ranges {
                let last = first + len;
                let mut sums: std::collections::BTreeMap<String, u64> = Default::default();
                let mut days = Vec::new();
                for ((day, item), count) in held.range((first, 0)..=(last, u32::MAX)) {
                    *sums.entry(name(*item)).or_default() += count;
                    days.push((*day, format!("{}\0", name(*item)).into_bytes(), *count));
                }
                let mut want: Vec<(String, u64)> = sums.into_iter().collect();
                want.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let got = s.top(b"ud/", &["a".to_string()], first, last, 10);
                proptest::prop_assert_eq!(&got, &want, "days {}..={}", first, last);
                let mut seen = Vec::new();
                s.each_day(b"ud/", "a", first, last, |day, rest, n| {
                    seen.push((day, rest.to_vec(), n))
                });
                // Within a day, in the order items were first counted.
                seen.sort();
                proptest::prop_assert_eq!(seen, days);
            }
        }
    }

    #[test]
    fn keys_split_into_tag_group_day_and_item() {
        let key = key(b"ud/", "*", 19_000, "corp\\alice");
        let (tag, group, day, rest) = split(&key).expect("a day key");
        assert_eq!(DAY_TAGS[tag], b"ud/");
        assert_eq!(group, b"ud/*\0");
        assert_eq!(day, 19_000);
        assert_eq!(rest, b"corp\\alice\0");
        assert!(split(b"srd/x").is_none());
        assert!(split(b"c/*\0recordings").is_none());
    }
}
