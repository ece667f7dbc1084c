//! The dashboard's per-day counters in memory, so a dashboard is answered
//! without reading sled.
//!
//! Every key of the dashboard tree under a per-day tag (`day/`, `dday/`,
//! `md/`, `dt/`, `dv/`, `ld/` and the top lists' `ud/` `ad/` `hd/` `gd/`
//! `rd/` and their `p..` twins) is `tag scope 0 day rest`. [`DashboardDays`]
//! holds them as one [`Series`] per `(tag scope, rest)`: the days with a
//! count, in order, with running sums, so the sum over a range of days is
//! two binary searches. A top list over a range is then one subtraction per
//! item, not one read per item and day.
//!
//! The projection keeps it fresh from its commit hook
//! ([`crate::engine::Projection::committed`]) with the values the batch
//! wrote (absolute values: applying a batch the load already saw changes
//! nothing), before the runner publishes its position, so `wait_for`
//! implies fresh figures. It follows one tree (by name): a query on another
//! tree (after a rebuild's swap) loads that one from sled first, under the
//! write lock, so no batch's hook runs in between.
//!
//! Memory: one entry per key of those tags (about 40 bytes of item and 24
//! of day, count and running sum each), [`DashboardDays::entries`].

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

/// One counter's days: sorted, with their counts and running sums.
#[derive(Debug, Default)]
pub(crate) struct Series {
    days: Vec<i64>,
    counts: Vec<u64>,
    /// `sums[i]` = `counts[..=i]` summed.
    sums: Vec<u64>,
}

impl Series {
    fn set(&mut self, day: i64, count: u64) {
        let at = self.days.partition_point(|d| *d < day);
        let present = self.days.get(at) == Some(&day);
        match (present, count) {
            (true, 0) => {
                self.days.remove(at);
                self.counts.remove(at);
                self.sums.remove(at);
            }
            (true, n) => self.counts[at] = n,
            (false, 0) => return,
            (false, n) => {
                self.days.insert(at, day);
                self.counts.insert(at, n);
                self.sums.insert(at, 0);
            }
        }
        let mut sum = if at == 0 { 0 } else { self.sums[at - 1] };
        for i in at..self.counts.len() {
            sum += self.counts[i];
            self.sums[i] = sum;
        }
    }

    /// The sum over the days `first..=last`.
    pub(crate) fn sum(&self, first: i64, last: i64) -> u64 {
        let below = |day: i64| -> u64 {
            let n = self.days.partition_point(|d| *d < day);
            if n == 0 {
                0
            } else {
                self.sums[n - 1]
            }
        };
        below(last.saturating_add(1)) - below(first)
    }

    /// Each day within `first..=last` with its count.
    pub(crate) fn days(&self, first: i64, last: i64) -> impl Iterator<Item = (i64, u64)> + '_ {
        let from = self.days.partition_point(|d| *d < first);
        let to = self.days.partition_point(|d| *d <= last);
        self.days[from..to]
            .iter()
            .copied()
            .zip(self.counts[from..to].iter().copied())
    }

    fn is_empty(&self) -> bool {
        self.days.is_empty()
    }
}

/// The counters of one tag and scope, by the rest of their key.
pub(crate) type Group = HashMap<Vec<u8>, Series>;

/// What [`DashboardDays`] holds for one tree.
#[derive(Debug, Default)]
pub(crate) struct DaysState {
    tree: Option<Vec<u8>>,
    /// By `tag scope 0` (the key up to the day).
    groups: HashMap<Vec<u8>, Group>,
    entries: usize,
}

/// The key split as `(tag scope 0, day, rest)`, for a key under a kept tag.
fn split(key: &[u8]) -> Option<(&[u8], i64, &[u8])> {
    if !DAY_TAGS.iter().any(|tag| key.starts_with(tag)) {
        return None;
    }
    let end = key.iter().position(|b| *b == 0)? + 1;
    let day = codec::i64_from_key(key.get(end..)?)?;
    Some((&key[..end], day, key.get(end + 8..).unwrap_or_default()))
}

impl DaysState {
    fn load(tree: &Tree) -> Result<DaysState> {
        let mut state = DaysState {
            tree: Some(tree.name().as_bytes().to_vec()),
            ..DaysState::default()
        };
        for tag in DAY_TAGS {
            for kv in tree.scan_prefix(tag) {
                let (key, value) = kv?;
                state.set(&key, read_counter(Some(&value)).max(0) as u64);
            }
        }
        Ok(state)
    }

    fn set(&mut self, key: &[u8], count: u64) {
        let Some((group, day, rest)) = split(key) else {
            return;
        };
        let series = match self.groups.get_mut(group) {
            Some(g) => g,
            None if count == 0 => return,
            None => self.groups.entry(group.to_vec()).or_default(),
        };
        let item = match series.get_mut(rest) {
            Some(s) => s,
            None if count == 0 => return,
            None => series.entry(rest.to_vec()).or_default(),
        };
        let before = item.days.len();
        item.set(day, count);
        self.entries = self.entries + item.days.len() - before;
        if item.is_empty() {
            series.remove(rest);
        }
    }

    /// The counters under `tag scope`.
    pub(crate) fn group(&self, tag: &[u8], scope: &str) -> Option<&Group> {
        self.groups.get(&codec::Key::new(tag).str(scope).build())
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
                *guard = DaysState::default();
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

    #[test]
    fn a_series_sums_any_range_of_days() {
        let mut s = Series::default();
        s.set(10, 3);
        s.set(12, 5);
        s.set(11, 2);
        s.set(20, 1);
        assert_eq!(s.sum(10, 12), 10);
        assert_eq!(s.sum(11, 19), 7);
        assert_eq!(s.sum(0, 9), 0);
        assert_eq!(s.sum(0, 100), 11);
        s.set(11, 0);
        s.set(12, 7);
        assert_eq!(s.sum(10, 20), 11);
        assert_eq!(s.days(11, 20).collect::<Vec<_>>(), vec![(12, 7), (20, 1)]);
    }

    #[test]
    fn keys_split_into_group_day_and_item() {
        let key = codec::Key::new(b"ud/")
            .str("*")
            .bytes(&codec::i64_key(19_000))
            .str("corp\\alice")
            .build();
        let (group, day, rest) = split(&key).expect("a day key");
        assert_eq!(group, b"ud/*\0");
        assert_eq!(day, 19_000);
        assert_eq!(rest, b"corp\\alice\0");
        assert!(split(b"srd/x").is_none());
        assert!(split(b"c/*\0recordings").is_none());
    }
}
