//! The session index (stream `session-<derived id>`): which recording is
//! each part of a server's session.
//!
//! # Why an index
//!
//! `startRecording` is idempotent by server and session: a retried start
//! finds the recording it made, and a start after the last part ended
//! rolls over into the next part. Recording ids used to be derived from
//! `(server, session, part)` for that, but a server id is visible to a
//! VIEWER and session ids are guessable, so anyone could compute a
//! recording's id and probe whether a session existed. Recording ids are
//! now random (UUID v7: a millisecond time and 74 random bits), and this
//! small stream, keyed by a hash of `(server, session)`, remembers them.
//! Its key is derivable, but nothing outside the log's own readers (ADMINs
//! reading `history`) can name a stream; the API only takes recording ids.
//!
//! # Why it is sound
//!
//! Assigning part `n` appends `RecordingPartAssigned { part: n, .. }`
//! expecting the stream's version, before the recording's own
//! `RecordingStarted`:
//!
//! - Two concurrent starts of the same new part: one append wins, the
//!   other is a version conflict, re-reads the index and uses the winner's
//!   id (both then start that recording; one `RecordingStarted` wins, the
//!   other finds it started and answers it as a repeated start).
//! - A crash (or a failed request) between the assignment and the start
//!   leaves a part assigned but not started; the next start of the session
//!   finds it and starts that very recording, so no part is ever skipped.
//! - After a restart the index is read back from the log like any stream.
//!
//! # Recordings from before the index
//!
//! Sessions started before the index existed have recordings at the old
//! derived ids ([`legacy_recording_id`]) and no session stream. When the
//! stream is empty the app layer probes those ids, and the first part it
//! assigns copies the found ones into the stream in the same append, so
//! from then on the stream alone is the truth. Stored recordings keep
//! their ids.

use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{derived_id, Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::recording::RecordingId;
use crate::time::Timestamp;

/// The id of the index stream of a server's session.
pub fn session_key(server_id: Uuid, session_id: &str) -> Uuid {
    derived_id(
        "srs:session",
        &[server_id.as_bytes(), session_id.as_bytes()],
    )
}

/// The id part `part` (from 1) of a session had before recording ids were
/// random. Only read, to find recordings stored back then.
pub fn legacy_recording_id(server_id: Uuid, session_id: &str, part: u32) -> RecordingId {
    derived_id(
        "srs:recording",
        &[
            server_id.as_bytes(),
            session_id.as_bytes(),
            &part.to_be_bytes(),
        ],
    )
}

/// A session's parts as its index stream folds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SessionParts {
    /// Part `n` is `parts[n - 1]`.
    pub parts: Vec<RecordingId>,
}

/// Why a part cannot be assigned.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// Another start assigned it first; read the index again.
    #[error("part {0} of the session is already assigned")]
    PartTaken(u32),
    #[error("{0}")]
    Invalid(String),
}

impl Coded for SessionError {
    fn code(&self) -> ErrorCode {
        match self {
            SessionError::PartTaken(_) => ErrorCode::Conflict,
            SessionError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// What may be asked of a session index.
#[derive(Clone, Debug, PartialEq)]
pub enum SessionCommand {
    /// Assigns the next parts, in order: `recordings[i]` becomes part
    /// `len + i + 1`. Several at once only when copying the parts found at
    /// legacy ids, followed by the new one.
    Assign {
        site_id: Uuid,
        server_id: Uuid,
        session_id: String,
        /// The part the first of `recordings` is meant to be.
        first_part: u32,
        recordings: Vec<RecordingId>,
        now: Timestamp,
    },
}

impl CommandFor for SessionCommand {
    type Aggregate = SessionParts;
}

impl Aggregate for SessionParts {
    type Command = SessionCommand;
    type Error = SessionError;
    const STREAM_PREFIX: &'static str = "session";

    fn decide(&self, command: SessionCommand) -> Result<Vec<DomainEvent>, SessionError> {
        let SessionCommand::Assign {
            site_id,
            server_id,
            session_id,
            first_part,
            recordings,
            now,
        } = command;
        let next = self.parts.len() as u32 + 1;
        if first_part != next {
            return Err(SessionError::PartTaken(first_part));
        }
        if recordings.is_empty() {
            return Err(SessionError::Invalid("no recording to assign".into()));
        }
        if let Some(taken) = recordings.iter().find(|id| self.parts.contains(id)) {
            return Err(SessionError::Invalid(format!(
                "recording {taken} is already a part of the session"
            )));
        }
        Ok(recordings
            .into_iter()
            .zip(first_part..)
            .map(|(recording_id, part)| DomainEvent::RecordingPartAssigned {
                site_id,
                server_id,
                session_id: session_id.clone(),
                part,
                recording_id,
                at: now,
            })
            .collect())
    }

    fn evolve(&mut self, event: &DomainEvent) {
        if let DomainEvent::RecordingPartAssigned {
            part, recording_id, ..
        } = event
        {
            // Parts arrive in order (decide checks it); anything else is
            // not this stream's.
            if *part as usize == self.parts.len() + 1 {
                self.parts.push(*recording_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::{fixtures::T0, given};

    const SERVER: Uuid = Uuid::from_u128(0x5e);
    const SITE: Uuid = Uuid::from_u128(0x51);

    fn assign(first_part: u32, recordings: &[Uuid]) -> SessionCommand {
        SessionCommand::Assign {
            site_id: SITE,
            server_id: SERVER,
            session_id: "42".into(),
            first_part,
            recordings: recordings.to_vec(),
            now: T0,
        }
    }

    fn assigned(part: u32, recording_id: Uuid) -> DomainEvent {
        DomainEvent::RecordingPartAssigned {
            site_id: SITE,
            server_id: SERVER,
            session_id: "42".into(),
            part,
            recording_id,
            at: T0,
        }
    }

    #[test]
    fn parts_are_assigned_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        given([]).when(assign(1, &[a])).then([assigned(1, a)]);
        given([assigned(1, a)])
            .when(assign(2, &[b]))
            .then([assigned(2, b)]);
        // Legacy parts copied ahead of the new one, in one append.
        given([])
            .when(assign(1, &[a, b]))
            .then([assigned(1, a), assigned(2, b)]);
    }

    #[test]
    fn a_part_assigned_by_a_concurrent_start_is_taken() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        given([assigned(1, a)])
            .when(assign(1, &[b]))
            .then_err(|e| *e == SessionError::PartTaken(1));
    }

    #[test]
    fn the_index_folds_to_the_parts_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let state = SessionParts::from_events(&[assigned(1, a), assigned(2, b)]);
        assert_eq!(state.parts, vec![a, b]);
    }

    #[test]
    fn session_keys_and_legacy_ids_are_stable_and_distinct() {
        assert_eq!(session_key(SERVER, "42"), session_key(SERVER, "42"));
        assert_ne!(session_key(SERVER, "42"), session_key(SERVER, "43"));
        assert_ne!(
            legacy_recording_id(SERVER, "42", 1),
            legacy_recording_id(SERVER, "42", 2)
        );
        assert_ne!(
            session_key(SERVER, "42"),
            legacy_recording_id(SERVER, "42", 1)
        );
    }
}
