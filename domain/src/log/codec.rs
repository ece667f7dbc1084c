//! The stored byte format. This is the only module that knows it.
//!
//! A record is `[format byte][body][hash: 32 bytes]`. Format 1's body is the
//! bincode 2 (standard configuration, serde) encoding of [`BodyV1`]; the
//! payload inside it is itself bincode-encoded, so the envelope can be read,
//! filtered and chain-checked without knowing the payload type.
//!
//! `hash = SHA-256(prev_hash || position (u64 BE) || body)`. The position is
//! the record's key, not part of the body, but it is covered by the hash.
//!
//! # Upcasting: old records, current shapes
//!
//! Reading dispatches on the format byte: each format a srs has ever
//! written keeps its decoder here (today format 1 only), and the record
//! is read into the same [`RawRecord`] whatever its format. A later format
//! adds its byte and its body, and [`FORMAT`] names the one written; old
//! records stay as they are (their hashes cover their bytes) and are read
//! by their own decoder. A format byte this build does not know (a log
//! written by a newer srs) is [`CodecError::UnknownFormat`], naming the
//! position and the byte: a clear refusal, never a guess and never a panic.
//!
//! The payload inside evolves by variants (see `model::event`): a changed
//! fact gets a new variant, the old one stays decodable, and
//! [`Event::upcast`] maps it to its successor. [`decode_envelope`] and
//! [`RawRecord::into_envelope`] (every read through `EventStore`) upcast;
//! [`decode_payload`] gives the payload exactly as stored, for tools that
//! show or copy stored records (verification, export, backup).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::envelope::{Envelope, Event, Hash};
use super::error::CodecError;
use crate::actor::Actor;
use crate::time::Timestamp;

/// Format 1: bincode 2 of `BodyV1`.
pub const FORMAT_V1: u8 = 1;
/// The format records are written in.
pub const FORMAT: u8 = FORMAT_V1;
const HASH_LEN: usize = 32;

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Format 1's body: the definition of the stored layout. Records are
/// written through a borrowed mirror of it and read through [`BodyView`];
/// the tests check both against this owned form.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Serialize, Deserialize)]
struct BodyV1 {
    stream: String,
    version: u64,
    event_id: Uuid,
    recorded_at: i64,
    actor: Actor,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    event_type: String,
    payload: Vec<u8>,
    prev_hash: [u8; 32],
}

/// A stored event with its payload still encoded.
#[derive(Clone, Debug, PartialEq)]
pub struct RawRecord {
    pub position: u64,
    pub stream: String,
    pub version: u64,
    pub event_id: Uuid,
    pub recorded_at: Timestamp,
    pub actor: Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub event_type: String,
    pub payload: Vec<u8>,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl RawRecord {
    /// Decodes the payload into `E`, upcast to its current shape.
    pub fn into_envelope<E: Event>(self) -> Result<Envelope<E>, CodecError> {
        let payload = decode_event(self.position, &self.payload)?;
        Ok(Envelope {
            position: self.position,
            stream: self.stream,
            version: self.version,
            event_id: self.event_id,
            recorded_at: self.recorded_at,
            actor: self.actor,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

/// Encodes a payload for storage.
pub fn encode_payload<E: Serialize>(payload: &E) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(payload, config()).map_err(|e| CodecError::Unencodable {
        reason: e.to_string(),
    })
}

/// Decodes a stored payload; `position` names the record in errors.
pub fn decode_payload<E: DeserializeOwned>(position: u64, bytes: &[u8]) -> Result<E, CodecError> {
    match bincode::serde::decode_from_slice::<E, _>(bytes, config()) {
        Ok((payload, used)) if used == bytes.len() => Ok(payload),
        Ok((_, used)) => Err(CodecError::UndecodablePayload {
            position,
            reason: format!("{} trailing bytes", bytes.len() - used),
        }),
        Err(e) => Err(CodecError::UndecodablePayload {
            position,
            reason: e.to_string(),
        }),
    }
}

/// Decodes a stored payload and upcasts it to its current shape
/// ([`Event::upcast`]); `position` names the record in errors.
pub fn decode_event<E: Event>(position: u64, bytes: &[u8]) -> Result<E, CodecError> {
    decode_payload::<E>(position, bytes).map(Event::upcast)
}

/// What the writer knows about an event before it is encoded.
pub(crate) struct RecordFields<'a> {
    pub stream: &'a str,
    pub version: u64,
    pub event_id: Uuid,
    pub recorded_at: Timestamp,
    pub actor: &'a Actor,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub event_type: &'a str,
    pub payload: &'a [u8],
    pub prev_hash: Hash,
}

/// Encodes a record at `position`; returns the bytes and the record's hash.
pub(crate) fn encode_record(
    position: u64,
    fields: &RecordFields<'_>,
) -> Result<(Vec<u8>, Hash), CodecError> {
    // Borrowed mirror of BodyV1 so encoding does not copy the payload.
    #[derive(Serialize)]
    struct BodyRef<'a> {
        stream: &'a str,
        version: u64,
        event_id: Uuid,
        recorded_at: i64,
        actor: &'a Actor,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        event_type: &'a str,
        #[serde(with = "serde_bytes_ref")]
        payload: &'a [u8],
        prev_hash: [u8; 32],
    }
    let body = BodyRef {
        stream: fields.stream,
        version: fields.version,
        event_id: fields.event_id,
        recorded_at: fields.recorded_at.as_micros(),
        actor: fields.actor,
        correlation_id: fields.correlation_id,
        causation_id: fields.causation_id,
        event_type: fields.event_type,
        payload: fields.payload,
        prev_hash: fields.prev_hash.0,
    };
    let mut bytes = Vec::with_capacity(64 + fields.stream.len() + fields.payload.len());
    bytes.push(FORMAT);
    bincode::serde::encode_into_std_write(&body, &mut bytes, config()).map_err(|e| {
        CodecError::Unencodable {
            reason: e.to_string(),
        }
    })?;
    let hash = chain_hash(&fields.prev_hash, position, &bytes[1..]);
    bytes.extend_from_slice(&hash.0);
    Ok((bytes, hash))
}

/// `SHA-256(prev_hash || position || body)`.
pub(crate) fn chain_hash(prev_hash: &Hash, position: u64, body: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.0);
    hasher.update(position.to_be_bytes());
    hasher.update(body);
    Hash(hasher.finalize().into())
}

/// The parts of a stored record: format byte, body, stored hash.
pub(crate) fn split_record(position: u64, bytes: &[u8]) -> Result<(u8, &[u8], Hash), CodecError> {
    if bytes.len() < 1 + HASH_LEN {
        return Err(CodecError::Truncated {
            position,
            len: bytes.len(),
        });
    }
    let format = bytes[0];
    if !matches!(format, FORMAT_V1) {
        return Err(CodecError::UnknownFormat { position, format });
    }
    let (body, hash) = bytes[1..].split_at(bytes.len() - 1 - HASH_LEN);
    let mut stored = [0u8; HASH_LEN];
    stored.copy_from_slice(hash);
    Ok((format, body, Hash(stored)))
}

/// The body of a format-1 record read in place: the strings and the
/// payload borrow the stored bytes. It reads exactly what [`BodyV1`]
/// reads (bincode writes a `Vec<u8>` and a byte slice the same way: a
/// length, then the bytes), without serde's one call per payload byte.
#[derive(Deserialize)]
struct BodyView<'a> {
    stream: &'a str,
    version: u64,
    event_id: Uuid,
    recorded_at: i64,
    actor: Actor,
    correlation_id: Uuid,
    causation_id: Option<Uuid>,
    event_type: &'a str,
    payload: &'a [u8],
    prev_hash: [u8; 32],
}

/// The body of the record stored at `position`, borrowed from `bytes`,
/// and its stored hash: decoded by the reader of its format byte.
fn view_record(position: u64, bytes: &[u8]) -> Result<(BodyView<'_>, Hash), CodecError> {
    let (format, body, hash) = split_record(position, bytes)?;
    let view = match format {
        FORMAT_V1 => view_v1(position, body)?,
        format => return Err(CodecError::UnknownFormat { position, format }),
    };
    Ok((view, hash))
}

/// A format-1 body read in place.
fn view_v1(position: u64, body: &[u8]) -> Result<BodyView<'_>, CodecError> {
    match bincode::serde::borrow_decode_from_slice::<BodyView<'_>, _>(body, config()) {
        Ok((view, used)) if used == body.len() => Ok(view),
        Ok((_, used)) => Err(CodecError::Undecodable {
            position,
            reason: format!("{} trailing bytes", body.len() - used),
        }),
        Err(e) => Err(CodecError::Undecodable {
            position,
            reason: e.to_string(),
        }),
    }
}

/// Decodes the record stored at `position`. Does not check the hash; see
/// `verify` for that.
pub fn decode_record(position: u64, bytes: &[u8]) -> Result<RawRecord, CodecError> {
    let (body, hash) = view_record(position, bytes)?;
    Ok(RawRecord {
        position,
        stream: body.stream.to_owned(),
        version: body.version,
        event_id: body.event_id,
        recorded_at: Timestamp::from_micros(body.recorded_at),
        actor: body.actor,
        correlation_id: body.correlation_id,
        causation_id: body.causation_id,
        event_type: body.event_type.to_owned(),
        payload: body.payload.to_vec(),
        prev_hash: Hash(body.prev_hash),
        hash,
    })
}

/// Decodes the record stored at `position` and its payload in one go:
/// what [`decode_record`] then [`RawRecord::into_envelope`] give, without
/// copying the encoded payload first. Does not check the hash.
pub fn decode_envelope<E: Event>(position: u64, bytes: &[u8]) -> Result<Envelope<E>, CodecError> {
    let (body, hash) = view_record(position, bytes)?;
    Ok(Envelope {
        position,
        stream: body.stream.to_owned(),
        version: body.version,
        event_id: body.event_id,
        recorded_at: Timestamp::from_micros(body.recorded_at),
        actor: body.actor,
        correlation_id: body.correlation_id,
        causation_id: body.causation_id,
        payload: decode_event(position, body.payload)?,
        prev_hash: Hash(body.prev_hash),
        hash,
    })
}

/// Serializes a borrowed byte slice as bincode serializes `Vec<u8>`: a
/// length, then the bytes (written in one go rather than one serde
/// element per byte). The tests hold both encodings to each other.
mod serde_bytes_ref {
    use serde::Serializer;

    pub fn serialize<S: Serializer>(bytes: &&[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(actor: &'a Actor, payload: &'a [u8]) -> RecordFields<'a> {
        RecordFields {
            stream: "site-1",
            version: 3,
            event_id: Uuid::from_u128(7),
            recorded_at: Timestamp::from_secs(1_700_000_000),
            actor,
            correlation_id: Uuid::from_u128(8),
            causation_id: Some(Uuid::from_u128(9)),
            event_type: "SiteCreated",
            payload,
            prev_hash: Hash([5; 32]),
        }
    }

    #[test]
    fn a_record_decodes_to_what_was_encoded() {
        let actor = Actor::system("test");
        let payload = encode_payload(&("hello".to_string(), 42u32)).unwrap();
        let (bytes, hash) = encode_record(12, &fields(&actor, &payload)).unwrap();
        let raw = decode_record(12, &bytes).unwrap();
        assert_eq!(raw.stream, "site-1");
        assert_eq!(raw.version, 3);
        assert_eq!(raw.event_id, Uuid::from_u128(7));
        assert_eq!(raw.causation_id, Some(Uuid::from_u128(9)));
        assert_eq!(raw.event_type, "SiteCreated");
        assert_eq!(raw.prev_hash, Hash([5; 32]));
        assert_eq!(raw.hash, hash);
        let payload: (String, u32) = decode_payload(12, &raw.payload).unwrap();
        assert_eq!(payload, ("hello".to_string(), 42));
    }

    fn owned_body(payload: &[u8]) -> BodyV1 {
        BodyV1 {
            stream: "site-1".into(),
            version: 3,
            event_id: Uuid::from_u128(7),
            recorded_at: Timestamp::from_secs(1_700_000_000).as_micros(),
            actor: Actor::system("test"),
            correlation_id: Uuid::from_u128(8),
            causation_id: Some(Uuid::from_u128(9)),
            event_type: "SiteCreated".into(),
            payload: payload.to_vec(),
            prev_hash: [5; 32],
        }
    }

    #[test]
    fn the_written_body_is_the_owned_format_1_body_byte_for_byte() {
        let actor = Actor::system("test");
        // Long enough for a multi-byte length prefix.
        let payload: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        let (bytes, _) = encode_record(12, &fields(&actor, &payload)).unwrap();
        let owned = bincode::serde::encode_to_vec(owned_body(&payload), config()).unwrap();
        assert_eq!(&bytes[1..bytes.len() - HASH_LEN], owned.as_slice());
    }

    #[test]
    fn a_body_written_in_the_owned_form_reads_back_in_place() {
        let payload = encode_payload(&("hello".to_string(), 42u32)).unwrap();
        let body = bincode::serde::encode_to_vec(owned_body(&payload), config()).unwrap();
        let mut bytes = vec![FORMAT_V1];
        bytes.extend_from_slice(&body);
        bytes.extend_from_slice(&[1; 32]);
        let raw = decode_record(12, &bytes).unwrap();
        assert_eq!(raw.stream, "site-1");
        assert_eq!(raw.actor, Actor::system("test"));
        assert_eq!(raw.payload, payload);
        assert_eq!(raw.hash, Hash([1; 32]));
        let (owned, used): (BodyV1, usize) =
            bincode::serde::decode_from_slice(&body, config()).unwrap();
        assert_eq!(used, body.len());
        assert_eq!(owned.payload, payload);
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Greeting(String, u32);

    impl Event for Greeting {
        fn event_type(&self) -> &'static str {
            "Greeting"
        }
    }

    #[test]
    fn an_envelope_decoded_in_one_go_equals_the_two_step_one() {
        let actor = Actor::system("test");
        let payload = encode_payload(&Greeting("hi".into(), 7)).unwrap();
        let (bytes, _) = encode_record(12, &fields(&actor, &payload)).unwrap();
        let direct: Envelope<Greeting> = decode_envelope(12, &bytes).unwrap();
        let two_step = decode_record(12, &bytes).unwrap().into_envelope().unwrap();
        assert_eq!(direct, two_step);
        assert_eq!(direct.payload, Greeting("hi".into(), 7));
        // A payload that is not a Greeting is the payload's error.
        let (other, _) = encode_record(12, &fields(&actor, b"\xff\xff")).unwrap();
        assert!(matches!(
            decode_envelope::<Greeting>(12, &other),
            Err(CodecError::UndecodablePayload { position: 12, .. })
        ));
        let mut trailing = bytes.clone();
        trailing.insert(trailing.len() - HASH_LEN, 0);
        assert!(matches!(
            decode_envelope::<Greeting>(12, &trailing),
            Err(CodecError::Undecodable { position: 12, .. })
        ));
    }

    #[test]
    fn the_hash_covers_the_position() {
        let actor = Actor::system("test");
        let (_, at_1) = encode_record(1, &fields(&actor, b"x")).unwrap();
        let (_, at_2) = encode_record(2, &fields(&actor, b"x")).unwrap();
        assert_ne!(at_1, at_2);
    }

    #[test]
    fn an_unknown_format_byte_is_a_typed_error_naming_the_position() {
        let actor = Actor::system("test");
        let (mut bytes, _) = encode_record(4, &fields(&actor, b"x")).unwrap();
        bytes[0] = 0x7f;
        assert_eq!(
            decode_record(4, &bytes),
            Err(CodecError::UnknownFormat {
                position: 4,
                format: 0x7f
            })
        );
    }

    #[test]
    fn garbage_and_truncated_records_are_errors_not_panics() {
        assert!(matches!(
            decode_record(9, &[1, 2]),
            Err(CodecError::Truncated {
                position: 9,
                len: 2
            })
        ));
        let mut garbage = vec![FORMAT_V1];
        garbage.extend_from_slice(&[0xff; 80]);
        assert!(matches!(
            decode_record(9, &garbage),
            Err(CodecError::Undecodable { position: 9, .. })
        ));
        assert!(matches!(
            decode_payload::<(String, u32)>(9, &[0xff, 0xff]),
            Err(CodecError::UndecodablePayload { position: 9, .. })
        ));
    }
}
