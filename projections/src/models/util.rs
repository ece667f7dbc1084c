//! Small helpers the read models share.

use std::ops::Bound;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use srs_domain::model::{SessionEventType, Severity};
use uuid::Uuid;

use crate::codec;
use crate::error::{ProjectionError, Result};
use crate::store::{Keyspace, Tree};

/// How names are compared: trimmed, lowercase (accounts, hosts and apps
/// are case-insensitive on Windows).
pub fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

/// The scope key of per-site aggregates: a site id, or `*` for all sites.
pub fn scope_key(site: Option<Uuid>) -> String {
    site.map_or_else(|| "*".to_string(), |s| s.to_string())
}

/// A stable one-byte code of a session event type (its declaration index).
pub fn type_code(t: SessionEventType) -> u8 {
    SessionEventType::ALL
        .iter()
        .position(|x| *x == t)
        .unwrap_or(0) as u8
}

/// The inverse of [`type_code`].
pub fn type_from_code(code: u8) -> Option<SessionEventType> {
    SessionEventType::ALL.get(code as usize).copied()
}

/// A one-byte code of a severity, ordered like the severities.
pub fn severity_code(s: Severity) -> u8 {
    Severity::ALL.iter().position(|x| *x == s).unwrap_or(0) as u8
}

/// The inverse of [`severity_code`].
pub fn severity_from_code(code: u8) -> Option<Severity> {
    Severity::ALL.get(code as usize).copied()
}

/// Reads and decodes one value of a read-model tree.
pub fn get<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>> {
    tree.get(key)?.map(|v| codec::decode(&v)).transpose()
}

/// Every decoded value under `prefix`, in key order.
pub fn values<T: DeserializeOwned>(tree: &Tree, prefix: &[u8]) -> Result<Vec<T>> {
    tree.scan_prefix(prefix)
        .map(|kv| {
            let (_, v) = kv?;
            codec::decode(&v)
        })
        .collect()
}

/// A counter of a read-model tree (absent: 0).
pub fn counter(tree: &Tree, key: &[u8]) -> Result<i64> {
    Ok(crate::engine::read_counter(tree.get(key)?.as_deref()))
}

/// The last 16 bytes of a key as a uuid.
pub fn trailing_uuid(key: &[u8]) -> Result<Uuid> {
    key.len()
        .checked_sub(16)
        .and_then(|start| codec::uuid_from_key(&key[start..]))
        .ok_or_else(|| ProjectionError::Codec(format!("key {key:?} does not end with an id")))
}

/// A read-model handle: the tree current when it was taken.
pub type TreeRef = Arc<Tree>;

/// Encodes a page cursor.
pub fn cursor_encode(tag: &str, bytes: &[u8]) -> String {
    let mut s = String::with_capacity(tag.len() + 1 + bytes.len() * 2);
    s.push_str(tag);
    s.push(':');
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

/// Decodes a cursor made by [`cursor_encode`] with the same tag.
pub fn cursor_decode(tag: &str, cursor: &str) -> Result<Vec<u8>> {
    let hex = cursor
        .strip_prefix(tag)
        .and_then(|r| r.strip_prefix(':'))
        .ok_or(ProjectionError::InvalidCursor)?;
    if hex.len() % 2 != 0 {
        return Err(ProjectionError::InvalidCursor);
    }
    fn nibble(c: u8) -> Result<u8> {
        match c {
            b'0'..=b'9' => Ok(c - b'0'),
            b'a'..=b'f' => Ok(c - b'a' + 10),
            b'A'..=b'F' => Ok(c - b'A' + 10),
            _ => Err(ProjectionError::InvalidCursor),
        }
    }
    hex.as_bytes()
        .chunks_exact(2)
        .map(|pair| Ok(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// The first `first` items and whether more exist, with the page limits of
/// the API (default 50, max 500).
pub fn page_size(first: Option<usize>) -> usize {
    first.unwrap_or(50).clamp(1, 500)
}

/// Suffix bounds (after an index prefix) of a walk.
#[derive(Clone, Debug, Default)]
pub struct SuffixBounds {
    /// Inclusive lower bound.
    pub lower: Option<Vec<u8>>,
    /// Exclusive upper bound.
    pub upper: Option<Vec<u8>>,
}

/// The key suffixes under each of `prefixes`, merged in order without
/// repeats, starting after `after` and within `bounds`.
pub fn merged<'a>(
    tree: &'a Tree,
    prefixes: &[Vec<u8>],
    after: Option<&[u8]>,
    bounds: &SuffixBounds,
) -> impl Iterator<Item = Result<Vec<u8>>> + 'a {
    let mut heads: Vec<(usize, std::iter::Peekable<crate::store::Iter>)> = prefixes
        .iter()
        .map(|p| {
            let mut lower = Bound::Included(p.clone());
            if let Some(l) = &bounds.lower {
                lower = Bound::Included([p.as_slice(), l].concat());
            }
            if let Some(a) = after {
                let a = [p.as_slice(), a].concat();
                let later = match &lower {
                    Bound::Included(l) => a >= *l,
                    _ => true,
                };
                if later {
                    lower = Bound::Excluded(a);
                }
            }
            let upper = match (&bounds.upper, codec::prefix_end(p)) {
                (Some(u), _) => Bound::Excluded([p.as_slice(), u].concat()),
                (None, Some(end)) => Bound::Excluded(end),
                (None, None) => Bound::Unbounded,
            };
            (p.len(), tree.range::<Vec<u8>, _>((lower, upper)).peekable())
        })
        .collect();
    let mut last: Option<Vec<u8>> = None;
    std::iter::from_fn(move || loop {
        let mut best: Option<(usize, Vec<u8>)> = None;
        for (i, (plen, it)) in heads.iter_mut().enumerate() {
            match it.peek() {
                Some(Ok((k, _))) => {
                    let suffix = &k[*plen..];
                    if best.as_ref().is_none_or(|(_, b)| suffix < b.as_slice()) {
                        best = Some((i, suffix.to_vec()));
                    }
                }
                Some(Err(_)) => {
                    if let Some(Err(e)) = it.next() {
                        return Some(Err(e.into()));
                    }
                }
                None => {}
            }
        }
        let (i, suffix) = best?;
        heads[i].1.next();
        if last.as_ref() == Some(&suffix) {
            continue;
        }
        last = Some(suffix.clone());
        return Some(Ok(suffix));
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_others() {
        let c = cursor_encode("n", &[0, 255, 7]);
        assert_eq!(cursor_decode("n", &c).unwrap(), vec![0, 255, 7]);
        assert!(cursor_decode("d", &c).is_err());
        assert!(cursor_decode("n", "n:zz").is_err());
        assert_eq!(cursor_decode("n", "n:00FF07").unwrap(), vec![0, 255, 7]);
        let every: Vec<u8> = (0..=255).collect();
        assert_eq!(
            cursor_decode("n", &cursor_encode("n", &every)).unwrap(),
            every
        );
        assert_eq!(cursor_encode("n", &[0xab, 0x01]), "n:ab01");
    }

    #[test]
    fn malformed_cursors_are_rejected_without_panicking() {
        for bad in [
            "n:+f",
            "n:-1",
            "n:a\u{e9}a",
            "n:\u{e9}\u{e9}",
            "n:0",
            "n: 1",
            "x",
        ] {
            assert!(cursor_decode("n", bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn codes_round_trip() {
        for t in SessionEventType::ALL {
            assert_eq!(type_from_code(type_code(t)), Some(t));
        }
        for s in Severity::ALL {
            assert_eq!(severity_from_code(severity_code(s)), Some(s));
        }
    }
}
