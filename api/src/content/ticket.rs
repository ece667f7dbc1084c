//! Playback tickets: what a `<video>` element or a terminal player sends
//! in place of a bearer token, which it cannot put in a header.
//!
//! `playRecording`'s `ticketUrl` is the content URL with `?ticket=<hex>`. A ticket
//! is sealed (XChaCha20-Poly1305) under a key this process draws at start
//! and never writes anywhere, or, on a JetStream cluster, under a key
//! every node derives from the cluster key file ([`Tickets::with_key`]),
//! so a ticket one node issued opens content on any node behind the same
//! address; it holds the id of the token it was issued
//! to and when it expires ([`TICKET_TTL`] after issue), and is bound to
//! its recording as associated data, so it opens for that recording's
//! content only. It carries no secret: whoever reads a ticket from a log
//! or a browser history can play that one recording, as its holder, for
//! at most a few minutes, and nothing else.
//!
//! A ticket stands for its token, not beside it: at every use the token
//! is looked up again (revoked or expired: refused) and the recording is
//! judged playable again (a revoked grant or a restriction placed since
//! takes effect at once). Without a cluster, a restart forgets the key,
//! which ends every ticket; a player plays again (`playRecording`) for a
//! fresh one.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use srs_domain::time::Timestamp;
use uuid::Uuid;

use crate::error::ApiError;

/// How long a ticket opens content after it is issued.
pub const TICKET_TTL_SECS: i64 = 300;

const NONCE: usize = 24;
/// Token id (16 bytes) and expiry in µs (8 bytes, little-endian).
const PLAIN: usize = 24;
const TAG: usize = 16;

/// Issues and opens playback tickets (see the module docs).
pub struct Tickets {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Tickets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tickets(..)")
    }
}

impl Default for Tickets {
    fn default() -> Self {
        Self::new()
    }
}

impl Tickets {
    /// Tickets under a key drawn now.
    pub fn new() -> Self {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Self::with_key(&key)
    }

    /// Tickets under `key` (the cluster's ticket key: every node opens
    /// what any node issued).
    pub fn with_key(key: &[u8; 32]) -> Self {
        Tickets {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A ticket for `token`'s playback of `recording`, valid until
    /// `expires`.
    pub fn issue(&self, recording: Uuid, token: Uuid, expires: Timestamp) -> String {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let mut plain = [0u8; PLAIN];
        plain[..16].copy_from_slice(token.as_bytes());
        plain[16..].copy_from_slice(&expires.as_micros().to_le_bytes());
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: recording.as_bytes(),
                },
            )
            .expect("sealing a fixed-size buffer cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        hex::encode(out)
    }

    /// The token a ticket was issued to, if it is one of ours, for
    /// `recording`, and unexpired at `now`; `UNAUTHENTICATED` otherwise
    /// (which of these failed is not told).
    pub fn open(&self, ticket: &str, recording: Uuid, now: Timestamp) -> Result<Uuid, ApiError> {
        let refused = || {
            ApiError::unauthenticated(
                "the playback ticket is not valid for this recording or has expired; \
                 ask `playRecording { ticketUrl }` again",
            )
        };
        let bytes = hex::decode(ticket).map_err(|_| refused())?;
        if bytes.len() != NONCE + PLAIN + TAG {
            return Err(refused());
        }
        let (nonce, sealed) = bytes.split_at(NONCE);
        let plain = self
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: recording.as_bytes(),
                },
            )
            .map_err(|_| refused())?;
        let token = Uuid::from_slice(&plain[..16]).map_err(|_| refused())?;
        let expires = i64::from_le_bytes(plain[16..].try_into().map_err(|_| refused())?);
        if now.as_micros() >= expires {
            return Err(refused());
        }
        Ok(token)
    }
}

/// When a ticket issued at `now` expires.
pub fn expiry(now: Timestamp) -> Timestamp {
    now.plus_micros(TICKET_TTL_SECS * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_micros(secs * 1_000_000)
    }

    #[test]
    fn a_ticket_opens_for_its_recording_until_it_expires() {
        let tickets = Tickets::new();
        let (recording, token) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = tickets.issue(recording, token, expiry(at(1000)));
        assert_eq!(tickets.open(&ticket, recording, at(1000)).unwrap(), token);
        assert_eq!(
            tickets
                .open(&ticket, recording, at(1000 + TICKET_TTL_SECS - 1))
                .unwrap(),
            token
        );
        assert!(tickets
            .open(&ticket, recording, at(1000 + TICKET_TTL_SECS))
            .is_err());
        // Another recording, another process's key, a changed byte, junk.
        assert!(tickets.open(&ticket, Uuid::new_v4(), at(1000)).is_err());
        assert!(Tickets::new().open(&ticket, recording, at(1000)).is_err());
        let mut altered = ticket.clone().into_bytes();
        altered[60] = if altered[60] == b'0' { b'1' } else { b'0' };
        let altered = String::from_utf8(altered).unwrap();
        assert!(tickets.open(&altered, recording, at(1000)).is_err());
        assert!(tickets.open("zz", recording, at(1000)).is_err());
        assert!(tickets.open("", recording, at(1000)).is_err());
    }

    #[test]
    fn tickets_under_one_key_open_on_every_node_that_holds_it() {
        let key = srs_log_jetstream::ClusterKey::from_bytes([7; 32]);
        let purpose = b"srs playback tickets v1";
        let (a, b) = (
            Tickets::with_key(&key.derive(purpose)),
            Tickets::with_key(&key.derive(purpose)),
        );
        let (recording, token) = (Uuid::new_v4(), Uuid::new_v4());
        let ticket = a.issue(recording, token, expiry(at(1000)));
        assert_eq!(b.open(&ticket, recording, at(1001)).unwrap(), token);
        // Another cluster's key, or the same key for another purpose, or
        // the cluster key itself: refused.
        let other = srs_log_jetstream::ClusterKey::from_bytes([8; 32]);
        assert!(Tickets::with_key(&other.derive(purpose))
            .open(&ticket, recording, at(1001))
            .is_err());
        assert!(Tickets::with_key(&key.derive(b"another use"))
            .open(&ticket, recording, at(1001))
            .is_err());
        assert!(Tickets::with_key(&[7; 32])
            .open(&ticket, recording, at(1001))
            .is_err());
    }
}
