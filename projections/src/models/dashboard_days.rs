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
//! A top list over a range of days is then one pass over the rows of the
//! range's days, adding each count into a dense array indexed by item (no
//! hashing, no allocation per item, memory read in order), and a
//! selection of the `n` largest; only those `n` items' names are turned
//! into strings. Its cost is the number of `(day, item)` counters in the
//! range, independent of how many recordings they count: at 2,000 users
//! and 30 days at most 60,000 additions.
//!
//! The projection keeps it fresh from its commit hook
//! ([`crate::engine::Projection::committed`]) with the values the batch
//! wrote (absolute values: applying a batch the load already saw changes
//! nothing), before the runner publishes its position, so `wait_for`
//! implies fresh figures. It follows one tree (by name): a query on another
//! tree (after a rebuild's swap) loads that one from sled first, under the
//! write lock, so no batch's hook runs in between.
//!
//! Memory: 12 bytes per counter (item and count) plus each distinct item's
//! name once per tag ([`DashboardDays::entries`] counts the counters). An
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

/// The counters of one `tag scope`: the days with a count, in order, and
/// per day the `(item, count)` pairs, sorted by item, counts above 0.
#[derive(Debug, Default)]
pub(crate) struct DayTable {
    days: Vec<i64>,
    rows: Vec<Vec<(u32, u64)>>,
}

impl DayTable {
    /// Sets the count of `item` on `day`; returns how the number of
    /// counters changed (-1, 0 or 1).
    fn set(&mut self, day: i64, item: u32, count: u64) -> isize {
        let at = self.days.partition_point(|d| *d < day);
        if self.days.get(at) != Some(&day) {
            if count == 0 {
                return 0;
            }
            self.days.insert(at, day);
            self.rows.insert(at, Vec::new());
        }
        let row = &mut self.rows[at];
        let change = match (row.binary_search_by_key(&item, |(i, _)| *i), count) {
            (Ok(i), 0) => {
                row.remove(i);
                -1
            }
            (Ok(i), n) => {
                row[i].1 = n;
                0
            }
            (Err(_), 0) => 0,
            (Err(i), n) => {
                row.insert(i, (item, n));
                1
            }
        };
        if row.is_empty() {
            self.days.remove(at);
            self.rows.remove(at);
        }
        change
    }

    /// The rows of the days within `first..=last`, with their days.
    fn range(&self, first: i64, last: i64) -> impl Iterator<Item = (i64, &[(u32, u64)])> + '_ {
        let from = self.days.partition_point(|d| *d < first);
        let to = self.days.partition_point(|d| *d <= last);
        self.days[from..to]
            .iter()
            .copied()
            .zip(self.rows[from..to].iter().map(Vec::as_slice))
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
            for (_, row) in table.range(first, last) {
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
