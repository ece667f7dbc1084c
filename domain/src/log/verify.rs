//! Walks the log and checks what the log promises: positions gapless from
//! 1, each record decodable (envelope and payload), each record's hash
//! matching its bytes, each `prev_hash` matching the hash before it, stream
//! versions gapless, the indexes pointing at the right records, and the head
//! matching the last record.
//!
//! Memory stays flat: stream gaplessness is checked through the stream index
//! (version `v` of a stream must have an indexed `v - 1` at an earlier
//! position), not by remembering every stream.

use std::fmt;

use super::backend::{read_record, LogBackend};
use super::codec::{self, chain_hash, split_record};
use super::envelope::{Event, Hash, Head};
use super::error::LogError;

/// What kind of damage was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreachKind {
    /// A position is not stored (deleted, or never written).
    Missing,
    /// The record's bytes or payload do not decode.
    Undecodable,
    /// The record's bytes do not hash to its stored hash (rewritten).
    HashMismatch,
    /// The record's `prev_hash` is not the previous record's hash.
    ChainBroken,
    /// A stream version is missing or repeated.
    StreamGap,
    /// An index does not point at this record.
    IndexMismatch,
    /// The stored head does not match the last record.
    HeadMismatch,
}

/// The first place where the log is not what it promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    pub position: u64,
    pub kind: BreachKind,
    pub reason: String,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "position {}: {}", self.position, self.reason)
    }
}

/// The outcome of a walk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records checked.
    pub checked: u64,
    /// The last position checked and its hash.
    pub last: Head,
    /// The first breach, if any. The walk stops there.
    pub breach: Option<Breach>,
}

impl VerifyReport {
    pub fn is_intact(&self) -> bool {
        self.breach.is_none()
    }
}

/// Verifies the log stored in `backend` from position `from` (1 for the
/// whole log), decoding every payload as `E`. `progress` is called every
/// 10,000 records with the position reached. It reads what the backend
/// stores, durable or not: run it on a log no one is writing, or ignore a
/// breach past the head seen before the walk.
pub fn verify<E: Event>(
    backend: &(impl LogBackend + ?Sized),
    from: u64,
    mut progress: impl FnMut(u64),
) -> Result<VerifyReport, LogError> {
    let from = from.max(1);
    let prev = if from == 1 {
        Head::default()
    } else {
        let before = from - 1;
        let found = read_record(backend, before, |bytes| {
            Ok(split_record(before, bytes).map(|(_, _, hash)| hash))
        })?;
        match found {
            Some(Ok(hash)) => Head {
                position: before,
                hash,
            },
            Some(Err(e)) => {
                return Ok(broken(
                    0,
                    Head::default(),
                    before,
                    BreachKind::Undecodable,
                    e.to_string(),
                ))
            }
            None => {
                return Ok(broken(
                    0,
                    Head::default(),
                    before,
                    BreachKind::Missing,
                    format!("position {before} is not stored"),
                ))
            }
        }
    };
    let mut walk = Walk {
        checked: 0,
        prev,
        breach: None,
    };
    let scanned = backend.scan(from, u64::MAX, &mut |position, bytes| {
        let expected = walk.prev.position + 1;
        if position != expected {
            walk.breach = Some(Breach {
                position: expected,
                kind: BreachKind::Missing,
                reason: format!("position {expected} is missing (the next stored is {position})"),
            });
            return Ok(false);
        }
        if let Some(breach) = check_record::<E>(backend, position, bytes, walk.prev.hash)? {
            walk.breach = Some(breach);
            return Ok(false);
        }
        let (_, _, hash) = split_record(position, bytes).map_err(LogError::from)?;
        walk.prev = Head { position, hash };
        walk.checked += 1;
        if walk.checked % 10_000 == 0 {
            progress(position);
        }
        Ok(true)
    });
    match scanned {
        // The backend found a record it cannot even place (a malformed key).
        Err(LogError::Corrupt(reason)) if walk.breach.is_none() => {
            walk.breach = Some(Breach {
                position: walk.prev.position + 1,
                kind: BreachKind::Undecodable,
                reason,
            });
        }
        other => other?,
    }
    let Walk {
        checked,
        prev,
        breach,
    } = walk;
    if breach.is_some() {
        return Ok(VerifyReport {
            checked,
            last: prev,
            breach,
        });
    }

    let stored_head = match backend.head() {
        Ok(head) => Some(head),
        Err(LogError::Corrupt(_)) => None,
        Err(other) => return Err(other),
    };
    match stored_head {
        Some(head) if head == prev => {}
        Some(head) if head.position > prev.position => {
            return Ok(broken(
                checked,
                prev,
                prev.position + 1,
                BreachKind::Missing,
                format!(
                    "positions {} to {} are missing (the head says {})",
                    prev.position + 1,
                    head.position,
                    head.position
                ),
            ))
        }
        Some(head) => {
            return Ok(broken(
                checked,
                prev,
                head.position.max(1),
                BreachKind::HeadMismatch,
                format!(
                "the head records position {} hash {} but the last record is position {} hash {}",
                head.position, head.hash, prev.position, prev.hash
            ),
            ))
        }
        None => {
            return Ok(broken(
                checked,
                prev,
                prev.position,
                BreachKind::HeadMismatch,
                "the head record is malformed".into(),
            ))
        }
    }
    Ok(VerifyReport {
        checked,
        last: prev,
        breach: None,
    })
}

/// A malformed index entry is no entry: the check that wants it reports
/// the breach.
fn malformed_is_absent(error: LogError) -> Result<Option<u64>, LogError> {
    match error {
        LogError::Corrupt(_) => Ok(None),
        other => Err(other),
    }
}

/// How far a walk got.
struct Walk {
    checked: u64,
    prev: Head,
    breach: Option<Breach>,
}

fn broken(
    checked: u64,
    last: Head,
    position: u64,
    kind: BreachKind,
    reason: String,
) -> VerifyReport {
    VerifyReport {
        checked,
        last,
        breach: Some(Breach {
            position,
            kind,
            reason,
        }),
    }
}

fn check_record<E: Event>(
    backend: &(impl LogBackend + ?Sized),
    position: u64,
    bytes: &[u8],
    prev_hash: Hash,
) -> Result<Option<Breach>, LogError> {
    let breach = |kind, reason: String| {
        Ok(Some(Breach {
            position,
            kind,
            reason,
        }))
    };
    let (_, body, stored_hash) = match split_record(position, bytes) {
        Ok(parts) => parts,
        Err(e) => return breach(BreachKind::Undecodable, e.to_string()),
    };
    if chain_hash(&prev_hash, position, body) != stored_hash {
        // Tell a rewritten record from a broken link: if the record's own
        // prev_hash hashes to its stored hash, the bytes are intact and the
        // link is what broke.
        let own = codec::decode_record(position, bytes)
            .ok()
            .map(|raw| chain_hash(&raw.prev_hash, position, body) == stored_hash);
        return match own {
            Some(true) => breach(
                BreachKind::ChainBroken,
                format!("its prev_hash is not the hash of position {}", position - 1),
            ),
            _ => breach(
                BreachKind::HashMismatch,
                "its bytes do not match its hash (the record was altered)".into(),
            ),
        };
    }
    let raw = match codec::decode_record(position, bytes) {
        Ok(raw) => raw,
        Err(e) => return breach(BreachKind::Undecodable, e.to_string()),
    };
    if raw.prev_hash != prev_hash {
        return breach(
            BreachKind::ChainBroken,
            format!("its prev_hash is not the hash of position {}", position - 1),
        );
    }
    if let Err(e) = codec::decode_payload::<E>(position, &raw.payload) {
        return breach(BreachKind::Undecodable, e.to_string());
    }

    let indexed = backend
        .stream_position(&raw.stream, raw.version)
        .or_else(malformed_is_absent)?;
    if indexed != Some(position) {
        return breach(
            BreachKind::StreamGap,
            format!(
                "{} version {} is indexed at {:?}, not here",
                raw.stream, raw.version, indexed
            ),
        );
    }
    if raw.version > 1 {
        let before = backend
            .stream_position(&raw.stream, raw.version - 1)
            .or_else(malformed_is_absent)?;
        if !matches!(before, Some(p) if p < position) {
            return breach(
                BreachKind::StreamGap,
                format!(
                    "{} has no version {} before this one",
                    raw.stream,
                    raw.version - 1
                ),
            );
        }
    }
    let by_id = backend
        .position_of(raw.event_id)
        .or_else(malformed_is_absent)?;
    if by_id != Some(position) {
        return breach(
            BreachKind::IndexMismatch,
            format!("event id {} is indexed at {:?}", raw.event_id, by_id),
        );
    }
    Ok(None)
}
