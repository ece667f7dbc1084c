//! The key layout of the one log tree. Every key starts with a one-byte
//! prefix, so one `apply_batch` covers an append's event records and every
//! index it touches.
//!
//! | prefix | key | value |
//! |---|---|---|
//! | `e` | position (u64 BE) | the record (see `codec`) |
//! | `s` | stream length (u16 BE), stream, version (u64 BE) | position (u64 BE) |
//! | `v` | stream | the stream's last version (u64 BE) |
//! | `i` | event id (16 bytes) | position (u64 BE) |
//! | `h` | - | head: position (u64 BE) and hash (32 bytes) |

use uuid::Uuid;

use crate::log::{Hash, Head};

pub const EVENT: u8 = b'e';
pub const STREAM_EVENT: u8 = b's';
pub const STREAM_HEAD: u8 = b'v';
pub const EVENT_ID: u8 = b'i';
pub const HEAD: &[u8] = b"h";

pub fn event(position: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = EVENT;
    key[1..].copy_from_slice(&position.to_be_bytes());
    key
}

/// The position of an `e` key, if it is one.
pub fn event_position(key: &[u8]) -> Option<u64> {
    if key.len() == 9 && key[0] == EVENT {
        Some(u64::from_be_bytes(key[1..].try_into().ok()?))
    } else {
        None
    }
}

pub fn stream_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(3 + stream.len() + 8);
    key.push(STREAM_EVENT);
    // Stream names are at most `MAX_STREAM_LEN` bytes, checked before any write.
    key.extend_from_slice(&(stream.len() as u16).to_be_bytes());
    key.extend_from_slice(stream.as_bytes());
    key
}

pub fn stream_event(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

pub fn stream_head(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.len());
    key.push(STREAM_HEAD);
    key.extend_from_slice(stream.as_bytes());
    key
}

pub fn event_id(id: Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = EVENT_ID;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

pub fn u64_value(value: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(value.try_into().ok()?))
}

pub fn head_value(head: &Head) -> [u8; 40] {
    let mut value = [0u8; 40];
    value[..8].copy_from_slice(&head.position.to_be_bytes());
    value[8..].copy_from_slice(&head.hash.0);
    value
}

pub fn decode_head(value: &[u8]) -> Option<Head> {
    if value.len() != 40 {
        return None;
    }
    Some(Head {
        position: u64_value(&value[..8])?,
        hash: Hash(value[8..].try_into().ok()?),
    })
}
