//! When each token was last used, to the minute, without a write per
//! request.
//!
//! # Why not the log
//!
//! "Token X was used" is not an admin action and it happens on almost
//! every request: thousands of agents heartbeating every 10 s would put a
//! fact per agent per minute into the hash-chained log (millions a day,
//! never removed) if it were one. So it is not an event. It is kept:
//!
//! - in memory, per token, as the minute of the last successful
//!   authentication with it ([`LastUsed::touch`]: a map lookup; nothing is
//!   written when the minute has not changed);
//! - in a small tree of the data directory's store (`token-last-used`, key:
//!   the token id, value: the minute), written by [`LastUsed::flush`],
//!   which `srs serve` runs once a minute ([`FLUSH_EVERY`]) and at
//!   shutdown: one batch holding the tokens whose minute moved since the
//!   previous flush, so each token is written at most once a minute
//!   however many requests it makes.
//!
//! The tree is not a read model: a projection rebuild does not touch it
//! and the log does not know it. After a crash the last minute of use may
//! be lost (the value is approximate by design); after a graceful stop
//! nothing is. Reading ([`LastUsed::get`]) merges memory and tree.
//!
//! A use is a request (HTTP, content route, WebSocket `connection_init`)
//! that authenticates with the token, and the periodic check of an open
//! WebSocket's credential: a socket held open is the token in use.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use srs_domain::time::Timestamp;
use srs_projections::store::{Changes, Keyspace, StoreError, Tree};
use uuid::Uuid;

/// The tree the minutes are kept in.
pub const LAST_USED_TREE: &str = "token-last-used";

/// The tree servers' last heartbeats are kept in, the same way (key:
/// the server id): an agent heartbeats every few seconds, so a heartbeat
/// is not an event either; `Server.lastHeartbeat` reads it.
pub const LAST_HEARTBEAT_TREE: &str = "server-last-heartbeat";

/// How often the minutes that moved are written to the tree.
pub const FLUSH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct Minutes {
    /// The last minute (Unix seconds / 60) each token was used, as seen
    /// by this process.
    used: HashMap<Uuid, i64>,
    /// The tokens whose minute moved since the last flush.
    dirty: HashSet<Uuid>,
}

/// The last-used minutes of tokens (see the module docs).
#[derive(Debug)]
pub struct LastUsed {
    tree: Tree,
    minutes: Mutex<Minutes>,
}

fn minute_of(t: Timestamp) -> i64 {
    t.as_secs().div_euclid(60)
}

fn decode(bytes: &[u8]) -> Option<i64> {
    Some(i64::from_be_bytes(bytes.try_into().ok()?))
}

impl LastUsed {
    pub fn new(tree: Tree) -> Self {
        LastUsed {
            tree,
            minutes: Mutex::new(Minutes::default()),
        }
    }

    fn minutes(&self) -> std::sync::MutexGuard<'_, Minutes> {
        // Entries are replaced whole: a poisoned map is still sound.
        self.minutes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Token `token_id` authenticated a request at `now`.
    pub fn touch(&self, token_id: Uuid, now: Timestamp) {
        let minute = minute_of(now);
        let mut minutes = self.minutes();
        if minutes.used.get(&token_id).is_some_and(|&m| m >= minute) {
            return;
        }
        minutes.used.insert(token_id, minute);
        minutes.dirty.insert(token_id);
    }

    /// The start of the minute token `token_id` was last used in, if ever
    /// (since the tree was created).
    pub fn get(&self, token_id: Uuid) -> Option<Timestamp> {
        let in_memory = self.minutes().used.get(&token_id).copied();
        let stored = self
            .tree
            .get(token_id.as_bytes())
            .ok()
            .flatten()
            .and_then(|v| decode(&v));
        in_memory
            .max(stored)
            .map(|minute| Timestamp::from_secs(minute.saturating_mul(60)))
    }

    /// Writes the minutes that moved since the last flush, in one batch,
    /// and flushes the tree; returns how many tokens were written. On a
    /// failure they stay due for the next flush.
    pub fn flush(&self) -> Result<usize, StoreError> {
        let due: Vec<(Uuid, i64)> = {
            let mut minutes = self.minutes();
            let dirty: Vec<Uuid> = minutes.dirty.drain().collect();
            dirty
                .into_iter()
                .filter_map(|id| minutes.used.get(&id).map(|&m| (id, m)))
                .collect()
        };
        if due.is_empty() {
            return Ok(0);
        }
        let mut batch = Changes::new();
        for (id, minute) in &due {
            // Never move a stored minute back (another process's, or a
            // clock stepped back).
            let stored = self
                .tree
                .get(id.as_bytes())?
                .and_then(|v| decode(&v))
                .unwrap_or(i64::MIN);
            if *minute > stored {
                batch.insert(id.as_bytes().to_vec(), Some(minute.to_be_bytes().to_vec()));
            }
        }
        let written = self
            .tree
            .apply(&batch, None)
            .and_then(|()| self.tree.flush());
        if let Err(e) = written {
            let mut minutes = self.minutes();
            minutes.dirty.extend(due.iter().map(|(id, _)| *id));
            return Err(e);
        }
        Ok(due.len())
    }

    /// How many tokens wait for the next flush (for tests).
    pub fn due(&self) -> usize {
        self.minutes().dirty.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use srs_projections::store::{Db, Store};

    fn tree() -> (Db, Tree) {
        let db = Db::temporary().unwrap();
        let tree = db.open(LAST_USED_TREE).unwrap();
        (db, tree)
    }

    const T: Timestamp = Timestamp(1_767_225_600_000_000);

    #[test]
    fn many_uses_in_a_minute_are_one_write_and_the_minute_is_what_is_kept() {
        let (_db, tree) = tree();
        let used = LastUsed::new(tree.clone());
        let token = Uuid::from_u128(7);
        assert_eq!(used.get(token), None);
        for n in 0..1_000 {
            used.touch(token, T.plus_micros(n * 1_000));
        }
        assert_eq!(used.due(), 1);
        assert_eq!(used.get(token), Some(T), "per minute");
        assert!(tree.is_empty(), "nothing written per use");
        assert_eq!(used.flush().unwrap(), 1);
        assert_eq!(used.flush().unwrap(), 0, "nothing moved since");
        used.touch(token, T.plus_secs(30));
        assert_eq!(used.due(), 0, "same minute");
        used.touch(token, T.plus_secs(61));
        assert_eq!(used.flush().unwrap(), 1);
        assert_eq!(used.get(token), Some(T.plus_secs(60)));
    }

    #[test]
    fn flushed_minutes_survive_a_new_process() {
        let (_db, tree) = tree();
        let token = Uuid::from_u128(8);
        let first = LastUsed::new(tree.clone());
        first.touch(token, T.plus_secs(125));
        first.flush().unwrap();
        drop(first);
        let second = LastUsed::new(tree);
        assert_eq!(second.get(token), Some(T.plus_secs(120)));
        // An older use seen later never moves the stored minute back.
        second.touch(token, T);
        second.flush().unwrap();
        assert_eq!(second.get(token), Some(T.plus_secs(120)));
    }
}
