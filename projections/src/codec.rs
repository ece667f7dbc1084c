//! How read-model values and keys are encoded.
//!
//! Values are bincode 2 (standard configuration, serde), like the log:
//! compact and fast. Keys are built so that sled's byte order is the order
//! a query wants: integers big-endian, signed ones with the sign bit
//! flipped, "newest first" by inverting the bits, strings terminated by a
//! 0x00 byte (stripped from the string first) so that one value is never a
//! prefix of another.

use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::error::Result;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes a read-model value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// How many bytes [`encode`] makes of `value`, without making them.
pub fn encoded_len<T: Serialize>(value: &T) -> Result<usize> {
    let mut size = bincode::enc::write::SizeWriter::default();
    bincode::serde::encode_into_writer(value, &mut size, config())?;
    Ok(size.bytes_written)
}

/// Decodes a read-model value.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    let (value, _) = bincode::serde::decode_from_slice(bytes, config())?;
    Ok(value)
}

/// An `i64` as 8 bytes whose byte order is the numeric order.
pub fn i64_key(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`i64_key`].
pub fn i64_from_key(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some((u64::from_be_bytes(arr) ^ (1 << 63)) as i64)
}

/// An `i64` as 8 bytes in descending order (newest first).
pub fn i64_desc_key(v: i64) -> [u8; 8] {
    let k = i64_key(v);
    (!u64::from_be_bytes(k)).to_be_bytes()
}

/// The inverse of [`i64_desc_key`].
pub fn i64_from_desc_key(bytes: &[u8]) -> Option<i64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    i64_from_key(&(!u64::from_be_bytes(arr)).to_be_bytes())
}

/// A `u64` as 8 bytes in descending order.
pub fn u64_desc_key(v: u64) -> [u8; 8] {
    (!v).to_be_bytes()
}

/// The inverse of [`u64_desc_key`].
pub fn u64_from_desc_key(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(!u64::from_be_bytes(arr))
}

/// A `u64` read back from 8 big-endian bytes.
pub fn u64_from_key(bytes: &[u8]) -> Option<u64> {
    let arr: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(arr))
}

/// A uuid read back from 16 bytes.
pub fn uuid_from_key(bytes: &[u8]) -> Option<Uuid> {
    let arr: [u8; 16] = bytes.get(..16)?.try_into().ok()?;
    Some(Uuid::from_bytes(arr))
}

/// Builds a key from parts.
#[derive(Debug, Default, Clone)]
pub struct Key(Vec<u8>);

impl Key {
    /// A key that starts with `prefix` (one of a model's ASCII tags).
    pub fn new(prefix: &[u8]) -> Self {
        let mut v = Vec::with_capacity(48);
        v.extend_from_slice(prefix);
        Key(v)
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    pub fn u8(mut self, b: u8) -> Self {
        self.0.push(b);
        self
    }

    /// A string followed by the 0x00 terminator (0x00 bytes inside are dropped).
    pub fn str(mut self, s: &str) -> Self {
        self.0.extend(s.bytes().filter(|b| *b != 0));
        self.0.push(0);
        self
    }

    pub fn uuid(self, id: Uuid) -> Self {
        self.bytes(id.as_bytes())
    }

    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_be_bytes())
    }

    pub fn u64_desc(self, v: u64) -> Self {
        self.bytes(&u64_desc_key(v))
    }

    pub fn i64(self, v: i64) -> Self {
        self.bytes(&i64_key(v))
    }

    pub fn i64_desc(self, v: i64) -> Self {
        self.bytes(&i64_desc_key(v))
    }

    pub fn build(self) -> Vec<u8> {
        self.0
    }
}

impl From<Key> for Vec<u8> {
    fn from(value: Key) -> Self {
        value.0
    }
}

/// The smallest key greater than every key starting with `prefix`, `None`
/// when there is none (all 0xff).
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_is_the_length_of_the_encoding() {
        let values = (
            "a string of some length".to_string(),
            vec![1u64, 300, u64::MAX],
            Some(Uuid::from_u128(7)),
            -5i64,
        );
        assert_eq!(
            encoded_len(&values).unwrap(),
            encode(&values).unwrap().len()
        );
        assert_eq!(encoded_len(&()).unwrap(), 0);
    }

    #[test]
    fn integer_keys_sort_like_numbers() {
        let values = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        for w in values.windows(2) {
            assert!(i64_key(w[0]) < i64_key(w[1]));
            assert!(i64_desc_key(w[0]) > i64_desc_key(w[1]));
        }
        for v in values {
            assert_eq!(i64_from_key(&i64_key(v)), Some(v));
            assert_eq!(i64_from_desc_key(&i64_desc_key(v)), Some(v));
        }
        assert_eq!(u64_from_desc_key(&u64_desc_key(42)), Some(42));
    }

    #[test]
    fn string_parts_are_never_prefixes_of_each_other() {
        let a = Key::new(b"u").str("ann").build();
        let b = Key::new(b"u").str("anna").build();
        assert!(!b.starts_with(&a));
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
    }
}
