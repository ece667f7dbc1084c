//! A bounded cache of folded aggregate states, keyed by stream.
//!
//! Loading an aggregate reads only the events after the cached version, so
//! a recording that receives thousands of batches is folded once, not once
//! per batch. The cache is only an accelerator: an entry is never newer
//! than the log (it is filled from reads and from our own acknowledged
//! appends), and a conflict drops it.

use std::any::Any;
use std::collections::HashMap;

/// A cached state with the stream version it reflects.
pub(crate) struct Cached<A> {
    pub state: A,
    pub version: u64,
    /// The global position of the stream's last event (0: no stream).
    pub last_position: u64,
}

struct Entry {
    state: Box<dyn Any + Send + Sync>,
    version: u64,
    last_position: u64,
    last_used: u64,
}

pub(crate) struct StateCache {
    entries: HashMap<String, Entry>,
    capacity: usize,
    clock: u64,
}

impl StateCache {
    pub fn new(capacity: usize) -> Self {
        StateCache {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            clock: 0,
        }
    }

    pub fn get<A: Clone + 'static>(&mut self, stream: &str) -> Option<Cached<A>> {
        self.clock += 1;
        let entry = self.entries.get_mut(stream)?;
        entry.last_used = self.clock;
        let state = entry.state.downcast_ref::<A>()?.clone();
        Some(Cached {
            state,
            version: entry.version,
            last_position: entry.last_position,
        })
    }

    /// Stores `state`, unless the cache already holds a newer version.
    pub fn put<A: Send + Sync + 'static>(&mut self, stream: &str, cached: Cached<A>) {
        self.clock += 1;
        if let Some(existing) = self.entries.get(stream) {
            if existing.version > cached.version {
                return;
            }
        }
        self.entries.insert(
            stream.to_string(),
            Entry {
                state: Box::new(cached.state),
                version: cached.version,
                last_position: cached.last_position,
                last_used: self.clock,
            },
        );
        if self.entries.len() > self.capacity {
            self.evict();
        }
    }

    pub fn invalidate(&mut self, stream: &str) {
        self.entries.remove(stream);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops the least recently used eighth, so the O(n) scan is paid once
    /// per many inserts.
    fn evict(&mut self) {
        let drop_count = (self.capacity / 8).max(1);
        let mut by_age: Vec<(u64, String)> = self
            .entries
            .iter()
            .map(|(stream, e)| (e.last_used, stream.clone()))
            .collect();
        by_age.sort_unstable();
        for (_, stream) in by_age.into_iter().take(drop_count) {
            self.entries.remove(&stream);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(state: u32, version: u64) -> Cached<u32> {
        Cached {
            state,
            version,
            last_position: version,
        }
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let mut cache = StateCache::new(4);
        cache.put("s", cached(2, 2));
        cache.put("s", cached(1, 1));
        assert_eq!(cache.get::<u32>("s").map(|c| c.state), Some(2));
    }

    #[test]
    fn the_least_recently_used_entries_go_first() {
        let mut cache = StateCache::new(8);
        for i in 0..8 {
            cache.put(&format!("s{i}"), cached(i, 1));
        }
        assert!(cache.get::<u32>("s0").is_some());
        cache.put("s8", cached(8, 1));
        assert_eq!(cache.len(), 8);
        assert!(cache.get::<u32>("s0").is_some(), "recently used");
        assert!(cache.get::<u32>("s1").is_none(), "least recently used");
    }

    #[test]
    fn a_state_of_another_type_is_a_miss() {
        let mut cache = StateCache::new(2);
        cache.put("s", cached(1, 1));
        assert!(cache.get::<String>("s").is_none());
    }
}
