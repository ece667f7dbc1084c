//! The recording aggregate (stream `recording-<uuid>`): one recorded
//! session (or one part of it, after a rollover).
//!
//! # Lifecycle
//!
//! ```text
//! (none) --start--> LIVE --end--> ENDED --archive--> ARCHIVED --delete--> DELETED
//!    |                              |  ^---restore------'                    ^
//!    '--decline--> DECLINED         '-------------delete---------------------'
//! ```
//!
//! [`transition`] is that table as one exhaustive `match`; `decide` asks it
//! whether a lifecycle command is legal and `evolve` asks it where an event
//! leads. DECLINED (the policy said DO_NOT_RECORD) and DELETED are final.
//!
//! # Rollover
//!
//! A server rolls a long session over into several recordings. They share
//! `(server_id, session_id)`; each part has a random id, and the session's
//! index stream (`model::session`) says which recording is part `n`, so a
//! retried start finds its recording and all parts of a session can be
//! enumerated. Archiving or deleting one part is applied by the app layer
//! to every part.
//!
//! # Session events
//!
//! A batch of session events becomes one `SessionEventRecorded` per event
//! (its log id is the session event's id), plus an `EventDetected` per
//! event the site's active detection policy flags, plus a
//! `ResponseTriggered` per action of each response rule a detection fires,
//! unless that rule fired in this recording less than its cool-down ago
//! (measured in session time, so a replayed burst decides the same way).
//! Detection and response ids derive from the session event's id, so a
//! retried batch is idempotent in the log. The aggregate decides plain
//! events; the service stores session events and detections sealed under
//! the recording's key (`SessionEventSealed`, `EventDetectedSealed`, see
//! `crate::seal`), which `evolve` folds alike: it only reads their plain
//! facts.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{derived_id, Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::permission::{PlaybackScope, RecordingFacts};
use super::policy::{
    detect, responses_to, DetectionPolicyBody, PolicyDef, PolicyId, RecordingDecision,
    RecordingMode, ResponseAction, ResponseActionKind, ResponseCause, ResponsePolicyBody,
    SessionAttributes, SessionSubject,
};
use super::session_event::{DataPoints, SessionEvent, MAX_BATCH};
use super::token::{can_unrestrict_recording, may, Action, Principal, Role, Target};
use crate::time::Timestamp;

/// Recording id.
pub type RecordingId = Uuid;

/// Where a recording is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lifecycle {
    #[default]
    NotStarted,
    /// The policy said DO_NOT_RECORD: final.
    Declined,
    Live,
    Ended,
    Archived,
    /// Final: only the facts remain.
    Deleted,
}

/// A lifecycle move.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Transition {
    Start,
    Decline,
    End,
    Archive,
    Restore,
    Delete,
}

impl Transition {
    /// The move an event makes, if it is a lifecycle event.
    pub fn of(event: &DomainEvent) -> Option<Transition> {
        Some(match event {
            DomainEvent::RecordingStarted { .. } => Transition::Start,
            DomainEvent::RecordingDeclined { .. } => Transition::Decline,
            DomainEvent::RecordingEnded { .. } => Transition::End,
            DomainEvent::RecordingArchived { .. } => Transition::Archive,
            DomainEvent::RecordingRestored { .. } => Transition::Restore,
            DomainEvent::RecordingDeleted { .. } => Transition::Delete,
            _ => return None,
        })
    }
}

/// The legal lifecycle moves: where `via` leads from `from`, or `None` when
/// it is not allowed. No catch-all arm: adding a state or a move does not
/// compile until every pair is decided.
pub fn transition(from: Lifecycle, via: Transition) -> Option<Lifecycle> {
    use Lifecycle::*;
    use Transition::*;
    match (from, via) {
        (NotStarted, Start) => Some(Live),
        (NotStarted, Decline) => Some(Declined),
        (NotStarted, End | Archive | Restore | Delete) => None,
        (Declined, Start | Decline | End | Archive | Restore | Delete) => None,
        (Live, End) => Some(Ended),
        (Live, Start | Decline | Archive | Restore | Delete) => None,
        (Ended, Archive) => Some(Archived),
        (Ended, Delete) => Some(Deleted),
        (Ended, Start | Decline | End | Restore) => None,
        (Archived, Restore) => Some(Ended),
        (Archived, Delete) => Some(Deleted),
        (Archived, Start | Decline | End | Archive) => None,
        (Deleted, Start | Decline | End | Archive | Restore | Delete) => None,
    }
}

fn detection_id_for(event_id: Uuid) -> Uuid {
    derived_id("srs:detection", &[event_id.as_bytes()])
}

fn response_id_for(
    cause: Uuid,
    policy_id: PolicyId,
    rule: &str,
    action: ResponseActionKind,
) -> Uuid {
    derived_id(
        "srs:response",
        &[
            cause.as_bytes(),
            policy_id.as_bytes(),
            rule.as_bytes(),
            &[action as u8],
        ],
    )
}

/// How serious a comment is.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CommentSeverity {
    #[default]
    Normal,
    Medium,
    Critical,
}

/// How a recording was consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlaybackKind {
    Play,
    Download,
    /// Watching a live session as it happens (`recordingEvents`).
    Live,
}

/// Why and by whom a recording is restricted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Restriction {
    pub reason: String,
    pub by: String,
    pub at: Timestamp,
}

/// A comment on a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Comment {
    pub author: String,
    pub text: String,
    pub severity: CommentSeverity,
    pub offset_ms: Option<u64>,
    pub at: Timestamp,
}

/// A response action sent to the recording's server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PendingResponse {
    pub action: ResponseAction,
    pub delivered: bool,
}

/// The longest comment, in characters: the one comment limit (the API
/// checks the same bound and answers `VALIDATION`; nothing is cut).
pub const MAX_COMMENT_CHARS: usize = 4_096;

/// A recording as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Recording {
    pub id: Option<RecordingId>,
    pub lifecycle: Lifecycle,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub part: u32,
    pub previous_recording_id: Option<RecordingId>,
    pub user: String,
    pub domain: Option<String>,
    pub groups: Vec<String>,
    pub client_name: Option<String>,
    pub client_ip: Option<String>,
    pub host: String,
    pub delivery_group: Option<String>,
    pub applications: Vec<String>,
    pub mode: Option<RecordingMode>,
    /// Why it was (or was not) recorded.
    pub decision: Option<RecordingDecision>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub restriction: Option<Restriction>,
    pub comments: BTreeMap<Uuid, Comment>,
    pub responses: BTreeMap<Uuid, PendingResponse>,
    /// Last firing (session offset, ms) per (response policy, rule name).
    #[serde(serialize_with = "last_fired_entries")]
    pub last_fired: BTreeMap<(PolicyId, String), u64>,
    pub data_points: DataPoints,
    pub plays: u64,
    /// The stored chunks of its content by seq (see `StoreChunk`).
    pub chunks: BTreeMap<u64, StoredChunk>,
    /// Declared with a chunk; `None`: [`DEFAULT_CONTENT_TYPE`].
    pub content_type: Option<String>,
}

/// The content type of a recording that declared none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// One stored chunk of a recording's content, as the log knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredChunk {
    /// The chunk's size before encryption, in bytes.
    pub size: u64,
    /// Hex SHA-256 of the chunk as stored (encrypted).
    pub sha256: String,
}

/// JSON has no tuple keys: the cool-down table is shown as
/// `[policy, rule, offset_ms]` entries.
fn last_fired_entries<S: serde::Serializer>(
    map: &BTreeMap<(PolicyId, String), u64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(map.iter().map(|((policy, rule), at)| (policy, rule, at)))
}

impl Recording {
    /// What access rules look at, once the recording exists.
    pub fn facts(&self) -> Option<RecordingFacts> {
        Some(RecordingFacts {
            recording_id: self.id?,
            site_id: self.site_id,
            server_id: self.server_id,
            user: self.user.clone(),
            groups: self.groups.clone(),
            host: self.host.clone(),
            delivery_group: self.delivery_group.clone(),
            applications: self.applications.clone(),
            restricted: self.restriction.is_some(),
            archived: self.lifecycle == Lifecycle::Archived,
            deleted: self.lifecycle == Lifecycle::Deleted,
        })
    }

    /// Response actions not yet acknowledged by the server.
    pub fn pending_responses(&self) -> impl Iterator<Item = (&Uuid, &PendingResponse)> {
        self.responses.iter().filter(|(_, r)| !r.delivered)
    }

    fn subject(&self) -> SessionSubject<'_> {
        SessionSubject {
            user: &self.user,
            groups: &self.groups,
            host: &self.host,
        }
    }
}

/// Why a recording command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RecordingError {
    #[error("recording not found")]
    NotFound,
    #[error("recording {0} has already started")]
    AlreadyStarted(RecordingId),
    #[error("the session is not recorded (the recording policy said DO_NOT_RECORD)")]
    NotRecorded,
    #[error("the recording is not live ({0:?})")]
    NotLive(Lifecycle),
    #[error("a batch holds at most {MAX_BATCH} session events, not {0}")]
    TooManyEvents(usize),
    #[error("invalid session event: {0}")]
    InvalidEvent(String),
    #[error("the recording is already restricted")]
    AlreadyRestricted,
    #[error("the recording is not restricted")]
    NotRestricted,
    #[error("the recording has been deleted")]
    Deleted,
    #[error("a recording cannot go from {from:?} via {via:?}")]
    IllegalTransition { from: Lifecycle, via: Transition },
    #[error("comment not found")]
    CommentNotFound,
    #[error("response not found")]
    ResponseNotFound,
    #[error("chunk {0} of this recording is already stored with other content")]
    ChunkExists(u64),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
    /// The content would exceed the server's `maxFileSizeMb` (HTTP 413).
    #[error(
        "recording {recording_id} would hold {would_hold} bytes of content, over its server's \
         maxFileSizeMb of {max_mb} MB ({max_bytes} bytes): end this recording and send the rest \
         to its next part (endRecording, then startRecording rolls the session over)"
    )]
    ContentTooLarge {
        recording_id: RecordingId,
        would_hold: u64,
        max_mb: u32,
        max_bytes: u64,
    },
    /// New content after `endRecording`.
    #[error(
        "recording {0} has ended: it takes no new content, only chunks missing below the last \
         one stored; send further content to the next part (startRecording rolls the session over)"
    )]
    ContentClosed(RecordingId),
}

impl Coded for RecordingError {
    fn code(&self) -> ErrorCode {
        match self {
            RecordingError::NotFound
            | RecordingError::CommentNotFound
            | RecordingError::ResponseNotFound => ErrorCode::NotFound,
            RecordingError::AlreadyStarted(_)
            | RecordingError::ChunkExists(_)
            | RecordingError::ContentClosed(_) => ErrorCode::Conflict,
            RecordingError::Forbidden(_) => ErrorCode::Forbidden,
            RecordingError::NotRecorded
            | RecordingError::NotLive(_)
            | RecordingError::TooManyEvents(_)
            | RecordingError::InvalidEvent(_)
            | RecordingError::AlreadyRestricted
            | RecordingError::NotRestricted
            | RecordingError::Deleted
            | RecordingError::IllegalTransition { .. }
            | RecordingError::Invalid(_)
            | RecordingError::ContentTooLarge { .. } => ErrorCode::Validation,
        }
    }
}

/// Starting a recording: what the server reported plus the policy outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRecording {
    pub recording_id: RecordingId,
    pub site_id: Uuid,
    pub server_id: Uuid,
    pub session_id: String,
    pub part: u32,
    pub previous_recording_id: Option<RecordingId>,
    pub session: SessionAttributes,
    /// The outcome of the site's active recording policy (fact).
    pub decision: RecordingDecision,
    /// The site's active response policy, for session-start triggers (fact).
    pub response_policy: Option<PolicyDef<ResponsePolicyBody>>,
    pub started_at: Timestamp,
}

/// What may be asked of a recording.
#[derive(Clone, Debug, PartialEq)]
pub enum RecordingCommand {
    Start(Box<StartRecording>),
    /// A batch of session events (already stripped of ids the log holds).
    RecordEvents {
        events: Vec<SessionEvent>,
        /// The site's active detection policy (fact).
        detection_policy: Option<PolicyDef<DetectionPolicyBody>>,
        /// The site's active response policy (fact).
        response_policy: Option<PolicyDef<ResponsePolicyBody>>,
        now: Timestamp,
    },
    End {
        ended_at: Timestamp,
    },
    AcknowledgeResponse {
        response_id: Uuid,
        outcome: String,
        now: Timestamp,
    },
    Restrict {
        reason: String,
        by: Principal,
        /// The scopes of `by`'s playback permissions on the site (fact).
        grants: Vec<PlaybackScope>,
        now: Timestamp,
    },
    RemoveRestriction {
        reason: String,
        by: Principal,
        grants: Vec<PlaybackScope>,
        now: Timestamp,
    },
    AddComment {
        comment_id: Uuid,
        text: String,
        severity: CommentSeverity,
        offset_ms: Option<u64>,
        by: Principal,
        grants: Vec<PlaybackScope>,
        now: Timestamp,
    },
    DeleteComment {
        comment_id: Uuid,
        by: Principal,
        now: Timestamp,
    },
    Play {
        kind: PlaybackKind,
        by: Principal,
        grants: Vec<PlaybackScope>,
        now: Timestamp,
    },
    Archive {
        now: Timestamp,
    },
    Restore {
        now: Timestamp,
    },
    Delete {
        now: Timestamp,
    },
    /// A chunk of content was written (encrypted) to the content store.
    /// Legal while the recording is live or ended; one chunk per seq.
    StoreChunk {
        seq: u64,
        size: u64,
        /// Hex SHA-256 of the stored (encrypted) chunk.
        sha256: String,
        /// Declared with the chunk when the content is not
        /// [`DEFAULT_CONTENT_TYPE`] and differs from the declared one.
        content_type: Option<String>,
        /// The server's `maxFileSizeMb` (fact): the most content, in MB of
        /// 2^20 bytes, one recording may hold.
        max_file_size_mb: u32,
    },
}

impl CommandFor for RecordingCommand {
    type Aggregate = Recording;
}

impl Recording {
    fn id(&self) -> Result<RecordingId, RecordingError> {
        match (self.id, self.lifecycle) {
            (None, _) | (_, Lifecycle::NotStarted) => Err(RecordingError::NotFound),
            (Some(_), Lifecycle::Declined) => Err(RecordingError::NotRecorded),
            (Some(id), _) => Ok(id),
        }
    }

    /// The id of a recording whose content still exists.
    fn existing(&self) -> Result<RecordingId, RecordingError> {
        let id = self.id()?;
        if self.lifecycle == Lifecycle::Deleted {
            return Err(RecordingError::Deleted);
        }
        Ok(id)
    }

    fn authorize(
        &self,
        by: &Principal,
        action: Action,
        grants: &[PlaybackScope],
        facts: RecordingFacts,
    ) -> Result<(), RecordingError> {
        if may(
            by,
            action,
            Target::Recording {
                recording: &facts,
                grants,
            },
        ) {
            Ok(())
        } else {
            Err(RecordingError::Forbidden(format!(
                "{} may not {} recording {}",
                by.name,
                action.as_str().to_lowercase().replace('_', " "),
                facts.recording_id
            )))
        }
    }

    fn facts_or_not_found(&self) -> Result<RecordingFacts, RecordingError> {
        self.facts().ok_or(RecordingError::NotFound)
    }

    fn lifecycle_move(&self, via: Transition) -> Result<RecordingId, RecordingError> {
        let id = self.id()?;
        match transition(self.lifecycle, via) {
            Some(_) => Ok(id),
            None if self.lifecycle == Lifecycle::Deleted => Err(RecordingError::Deleted),
            None => Err(RecordingError::IllegalTransition {
                from: self.lifecycle,
                via,
            }),
        }
    }

    fn start(&self, start: StartRecording) -> Result<Vec<DomainEvent>, RecordingError> {
        if self.lifecycle != Lifecycle::NotStarted {
            return Err(RecordingError::AlreadyStarted(start.recording_id));
        }
        start.session.validate().map_err(RecordingError::Invalid)?;
        if start.session_id.trim().is_empty() {
            return Err(RecordingError::Invalid(
                "the session id must not be empty".into(),
            ));
        }
        if start.part == 0 {
            return Err(RecordingError::Invalid("parts are numbered from 1".into()));
        }
        let StartRecording {
            recording_id,
            site_id,
            server_id,
            session_id,
            part,
            previous_recording_id,
            session,
            decision,
            response_policy,
            started_at,
        } = start;
        let Some(mode) = decision.action.mode() else {
            return Ok(vec![DomainEvent::RecordingDeclined {
                recording_id,
                site_id,
                server_id,
                session_id,
                part,
                user: session.user,
                host: session.host,
                client_ip: session.client_ip,
                decision,
                at: started_at,
            }]);
        };
        let mut events = Vec::new();
        if let Some(policy) = &response_policy {
            let who = SessionSubject {
                user: &session.user,
                groups: &session.groups,
                host: &session.host,
            };
            for (_, rule, trigger) in responses_to(&policy.body, who, ResponseCause::SessionStart) {
                for action in &rule.actions {
                    if action.kind() == ResponseActionKind::StartScreenRecording
                        && mode == RecordingMode::ScreenAndEvents
                    {
                        continue;
                    }
                    events.push(DomainEvent::ResponseTriggered {
                        response_id: response_id_for(
                            recording_id,
                            policy.id,
                            &rule.name,
                            action.kind(),
                        ),
                        recording_id,
                        site_id,
                        server_id,
                        session_id: session_id.clone(),
                        user: session.user.clone(),
                        host: session.host.clone(),
                        policy_id: policy.id,
                        rule: rule.name.clone(),
                        trigger: trigger.description.clone(),
                        action: action.clone(),
                        detection_id: None,
                        event_type: None,
                        severity: None,
                        at_offset_ms: 0,
                        at: started_at,
                    });
                }
            }
        }
        events.insert(
            0,
            DomainEvent::RecordingStarted {
                recording_id,
                site_id,
                server_id,
                session_id,
                part,
                previous_recording_id,
                domain: session.domain(),
                user: session.user,
                groups: session.groups,
                client_name: session.client_name,
                client_ip: session.client_ip,
                host: session.host,
                delivery_group: session.delivery_group,
                applications: session.applications,
                mode,
                decision,
                started_at,
            },
        );
        Ok(events)
    }

    fn record_events(
        &self,
        batch: Vec<SessionEvent>,
        detection_policy: Option<PolicyDef<DetectionPolicyBody>>,
        response_policy: Option<PolicyDef<ResponsePolicyBody>>,
        now: Timestamp,
    ) -> Result<Vec<DomainEvent>, RecordingError> {
        let recording_id = self.id()?;
        if self.lifecycle != Lifecycle::Live {
            return Err(RecordingError::NotLive(self.lifecycle));
        }
        if batch.len() > MAX_BATCH {
            return Err(RecordingError::TooManyEvents(batch.len()));
        }
        for event in &batch {
            event.validate().map_err(RecordingError::InvalidEvent)?;
        }
        let mut seen = BTreeSet::new();
        let mut last_fired = self.last_fired.clone();
        let mut screen_requested = self.mode == Some(RecordingMode::ScreenAndEvents)
            || self
                .responses
                .values()
                .any(|r| r.action.kind() == ResponseActionKind::StartScreenRecording);
        let mut out = Vec::with_capacity(batch.len());
        for event in batch {
            if !seen.insert(event.event_id) {
                continue;
            }
            let detection = detection_policy
                .as_ref()
                .and_then(|p| detect(&p.body, self.subject(), &event).map(|d| (p.id, d)));
            let (event_id, event_type, offset_ms) =
                (event.event_id, event.event_type, event.offset_ms);
            out.push(DomainEvent::SessionEventRecorded {
                recording_id,
                site_id: self.site_id,
                event,
            });
            let Some((detection_policy_id, detection)) = detection else {
                continue;
            };
            let detection_id = detection_id_for(event_id);
            out.push(DomainEvent::EventDetected {
                detection_id,
                recording_id,
                site_id: self.site_id,
                server_id: self.server_id,
                user: self.user.clone(),
                host: self.host.clone(),
                event_id,
                event_type,
                severity: detection.severity,
                rule: detection.rule.clone(),
                policy_id: detection_policy_id,
                subject: detection.subject.clone(),
                at_offset_ms: offset_ms,
            });
            let Some(policy) = &response_policy else {
                continue;
            };
            let cause = ResponseCause::Detection {
                event_type,
                severity: detection.severity,
            };
            for (_, rule, trigger) in responses_to(&policy.body, self.subject(), cause) {
                let key = (policy.id, rule.name.clone());
                let cooldown_ms = u64::from(rule.cooldown_sec) * 1_000;
                if let Some(&last) = last_fired.get(&key) {
                    if last.abs_diff(offset_ms) < cooldown_ms {
                        continue;
                    }
                }
                last_fired.insert(key, offset_ms);
                for action in &rule.actions {
                    if action.kind() == ResponseActionKind::StartScreenRecording {
                        if screen_requested {
                            continue;
                        }
                        screen_requested = true;
                    }
                    out.push(DomainEvent::ResponseTriggered {
                        response_id: response_id_for(
                            event_id,
                            policy.id,
                            &rule.name,
                            action.kind(),
                        ),
                        recording_id,
                        site_id: self.site_id,
                        server_id: self.server_id,
                        session_id: self.session_id.clone(),
                        user: self.user.clone(),
                        host: self.host.clone(),
                        policy_id: policy.id,
                        rule: rule.name.clone(),
                        trigger: trigger.description.clone(),
                        action: action.clone(),
                        detection_id: Some(detection_id),
                        event_type: Some(event_type),
                        severity: Some(detection.severity),
                        at_offset_ms: offset_ms,
                        at: now,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// How far past the first missing chunk a new chunk's seq may be: room for
/// an agent uploading a window of chunks in parallel, not for sparse seqs.
pub const MAX_CHUNKS_AHEAD: u64 = 64;

/// One MB as `maxFileSizeMb` counts it.
pub const BYTES_PER_MB: u64 = 1 << 20;

impl Recording {
    /// The plain bytes of content stored so far (every stored chunk).
    pub fn content_bytes(&self) -> u64 {
        self.chunks.values().map(|c| c.size).sum()
    }

    /// The first seq not stored: where the playable content stops.
    pub fn next_chunk_seq(&self) -> u64 {
        (0u64..)
            .zip(self.chunks.keys())
            .find(|(expected, &seq)| seq != *expected)
            .map_or(self.chunks.len() as u64, |(expected, _)| expected)
    }

    /// Whether a new chunk `seq` of `size` bytes (one not stored yet) may
    /// be stored. The content rules, checked before anything is written
    /// and again when the chunk is recorded:
    ///
    /// - a recording takes content while live, and archived or deleted
    ///   ones never;
    /// - after `endRecording` only a chunk below the last one stored (one
    ///   that failed and is retried) is taken: the content's extent was
    ///   fixed while live. Rolling over needs no other grace, since a
    ///   server sends a part's chunks before it ends that part and starts
    ///   the next one;
    /// - a seq is at most [`MAX_CHUNKS_AHEAD`] past the first missing one;
    /// - all chunks together stay within the server's `maxFileSizeMb`
    ///   (MB of 2^20 bytes): Session Recording rolls a file over at that
    ///   size, so one recording (one part) never holds more.
    pub fn check_new_chunk(
        &self,
        seq: u64,
        size: u64,
        max_file_size_mb: u32,
    ) -> Result<(), RecordingError> {
        let recording_id = self.existing()?;
        match self.lifecycle {
            Lifecycle::Live => {}
            Lifecycle::Ended => {
                if self.chunks.range(seq..).next().is_none() {
                    return Err(RecordingError::ContentClosed(recording_id));
                }
            }
            Lifecycle::Archived => {
                return Err(RecordingError::Invalid(
                    "an archived recording takes no content; restore it first".into(),
                ))
            }
            other => return Err(RecordingError::NotLive(other)),
        }
        if size == 0 {
            return Err(RecordingError::Invalid("a chunk is not empty".into()));
        }
        let next = self.next_chunk_seq();
        if seq > next.saturating_add(MAX_CHUNKS_AHEAD) {
            return Err(RecordingError::Invalid(format!(
                "chunk {seq} is too far ahead: chunk {next} is the first one missing, and a \
                 chunk may be at most {MAX_CHUNKS_AHEAD} past it"
            )));
        }
        let max_bytes = u64::from(max_file_size_mb) * BYTES_PER_MB;
        let would_hold = self.content_bytes().saturating_add(size);
        if would_hold > max_bytes {
            return Err(RecordingError::ContentTooLarge {
                recording_id,
                would_hold,
                max_mb: max_file_size_mb,
                max_bytes,
            });
        }
        Ok(())
    }

    fn store_chunk(
        &self,
        seq: u64,
        size: u64,
        sha256: String,
        content_type: Option<String>,
        max_file_size_mb: u32,
    ) -> Result<Vec<DomainEvent>, RecordingError> {
        let recording_id = self.existing()?;
        if self.lifecycle == Lifecycle::Archived {
            return Err(RecordingError::Invalid(
                "an archived recording takes no content; restore it first".into(),
            ));
        }
        if let Some(stored) = self.chunks.get(&seq) {
            // The content store decides idempotency on the plain content
            // before it writes; an identical stored form is the same write
            // (answered as before even once the recording has ended).
            if stored.sha256 == sha256 {
                return Ok(vec![]);
            }
            return Err(RecordingError::ChunkExists(seq));
        }
        self.check_new_chunk(seq, size, max_file_size_mb)?;
        let mut events = Vec::with_capacity(2);
        if let Some(content_type) = content_type {
            let declared = self.content_type.as_deref().unwrap_or(DEFAULT_CONTENT_TYPE);
            if content_type != declared {
                events.push(DomainEvent::ContentTypeDeclared {
                    recording_id,
                    site_id: self.site_id,
                    content_type,
                });
            }
        }
        events.push(DomainEvent::ContentChunkStored {
            recording_id,
            site_id: self.site_id,
            seq,
            size,
            sha256,
        });
        Ok(events)
    }
}

fn reason(reason: &str) -> Result<String, RecordingError> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 1_000 {
        return Err(RecordingError::Invalid(
            "a reason of 1 to 1000 characters is required".into(),
        ));
    }
    Ok(reason.to_string())
}

impl Aggregate for Recording {
    type Command = RecordingCommand;
    type Error = RecordingError;
    const STREAM_PREFIX: &'static str = "recording";

    fn decide(&self, command: RecordingCommand) -> Result<Vec<DomainEvent>, RecordingError> {
        match command {
            RecordingCommand::Start(start) => self.start(*start),
            RecordingCommand::RecordEvents {
                events,
                detection_policy,
                response_policy,
                now,
            } => self.record_events(events, detection_policy, response_policy, now),
            RecordingCommand::End { ended_at } => {
                // A recording ends once: a retried end (the agent missed
                // the answer), after an archive too, changes nothing and
                // is answered with the first end (`Service::end_recording`).
                if self.ended_at.is_some()
                    && matches!(self.lifecycle, Lifecycle::Ended | Lifecycle::Archived)
                {
                    return Ok(vec![]);
                }
                let recording_id = self.lifecycle_move(Transition::End)?;
                // A server clock behind ours must not make a negative duration.
                let ended_at = ended_at.max(self.started_at.unwrap_or(ended_at));
                Ok(vec![DomainEvent::RecordingEnded {
                    recording_id,
                    site_id: self.site_id,
                    server_id: self.server_id,
                    ended_at,
                }])
            }
            RecordingCommand::AcknowledgeResponse {
                response_id,
                outcome,
                now,
            } => {
                let recording_id = self.id()?;
                let response = self
                    .responses
                    .get(&response_id)
                    .ok_or(RecordingError::ResponseNotFound)?;
                if response.delivered {
                    // The agent retried its acknowledgement.
                    return Ok(vec![]);
                }
                let outcome = outcome.trim();
                Ok(vec![DomainEvent::ResponseDelivered {
                    response_id,
                    recording_id,
                    site_id: self.site_id,
                    server_id: self.server_id,
                    outcome: if outcome.is_empty() {
                        "DONE".into()
                    } else {
                        outcome.to_string()
                    },
                    at: now,
                }])
            }
            RecordingCommand::Restrict {
                reason: why,
                by,
                grants,
                now,
            } => {
                let recording_id = self.existing()?;
                self.authorize(
                    &by,
                    Action::RestrictRecording,
                    &grants,
                    self.facts_or_not_found()?,
                )?;
                // A live recording can be restricted: a sensitive session
                // need not wait for its end to be hidden.
                if self.restriction.is_some() {
                    return Err(RecordingError::AlreadyRestricted);
                }
                Ok(vec![DomainEvent::RecordingRestricted {
                    recording_id,
                    site_id: self.site_id,
                    reason: reason(&why)?,
                    by: by.name,
                    at: now,
                }])
            }
            RecordingCommand::RemoveRestriction {
                reason: why,
                by,
                grants,
                now,
            } => {
                let recording_id = self.existing()?;
                // Lifting a restriction takes being able to play the
                // recording with the restriction as the only obstacle:
                // ADMIN and PRIVILEGED_PLAYER; an AUDITOR only where one of
                // its grants admits the recording (and it is not archived).
                let facts = self.facts_or_not_found()?;
                if !can_unrestrict_recording(&by, &facts, &grants) {
                    return Err(RecordingError::Forbidden(format!(
                        "{} may not remove the restriction of recording {}: only who may play \
                         it but for the restriction may",
                        by.name, facts.recording_id
                    )));
                }
                if self.restriction.is_none() {
                    return Err(RecordingError::NotRestricted);
                }
                Ok(vec![DomainEvent::RecordingRestrictionRemoved {
                    recording_id,
                    site_id: self.site_id,
                    reason: reason(&why)?,
                    by: by.name,
                    at: now,
                }])
            }
            RecordingCommand::AddComment {
                comment_id,
                text,
                severity,
                offset_ms,
                by,
                grants,
                now,
            } => {
                let recording_id = self.existing()?;
                self.authorize(&by, Action::Comment, &grants, self.facts_or_not_found()?)?;
                let text = text.trim();
                if text.is_empty() || text.chars().count() > MAX_COMMENT_CHARS {
                    return Err(RecordingError::Invalid(format!(
                        "a comment is 1 to {MAX_COMMENT_CHARS} characters"
                    )));
                }
                if self.comments.contains_key(&comment_id) {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::CommentAdded {
                    comment_id,
                    recording_id,
                    site_id: self.site_id,
                    author: by.name,
                    text: text.to_string(),
                    severity,
                    offset_ms,
                    at: now,
                }])
            }
            RecordingCommand::DeleteComment {
                comment_id,
                by,
                now,
            } => {
                let recording_id = self.id()?;
                let comment = self
                    .comments
                    .get(&comment_id)
                    .ok_or(RecordingError::CommentNotFound)?;
                let is_author = comment.author.eq_ignore_ascii_case(by.name.trim());
                if !(is_author || by.role == Role::Admin) || !by.covers_site(self.site_id) {
                    return Err(RecordingError::Forbidden(
                        "only its author or an admin may delete a comment".into(),
                    ));
                }
                Ok(vec![DomainEvent::CommentDeleted {
                    comment_id,
                    recording_id,
                    site_id: self.site_id,
                    by: by.name,
                    at: now,
                }])
            }
            RecordingCommand::Play {
                kind,
                by,
                grants,
                now,
            } => {
                let recording_id = self.existing()?;
                self.authorize(
                    &by,
                    Action::PlayRecording,
                    &grants,
                    self.facts_or_not_found()?,
                )?;
                Ok(vec![DomainEvent::RecordingPlayed {
                    recording_id,
                    site_id: self.site_id,
                    by: by.name,
                    kind,
                    at: now,
                }])
            }
            RecordingCommand::Archive { now } => {
                let recording_id = self.lifecycle_move(Transition::Archive)?;
                Ok(vec![DomainEvent::RecordingArchived {
                    recording_id,
                    site_id: self.site_id,
                    at: now,
                }])
            }
            RecordingCommand::Restore { now } => {
                let recording_id = self.lifecycle_move(Transition::Restore)?;
                Ok(vec![DomainEvent::RecordingRestored {
                    recording_id,
                    site_id: self.site_id,
                    at: now,
                }])
            }
            RecordingCommand::Delete { now } => {
                let recording_id = self.lifecycle_move(Transition::Delete)?;
                Ok(vec![DomainEvent::RecordingDeleted {
                    recording_id,
                    site_id: self.site_id,
                    at: now,
                }])
            }
            RecordingCommand::StoreChunk {
                seq,
                size,
                sha256,
                content_type,
                max_file_size_mb,
            } => self.store_chunk(seq, size, sha256, content_type, max_file_size_mb),
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        if let Some(via) = Transition::of(event) {
            self.lifecycle = transition(self.lifecycle, via).unwrap_or(self.lifecycle);
        }
        self.data_points.apply(event);
        match event {
            DomainEvent::RecordingStarted {
                recording_id,
                site_id,
                server_id,
                session_id,
                part,
                previous_recording_id,
                user,
                domain,
                groups,
                client_name,
                client_ip,
                host,
                delivery_group,
                applications,
                mode,
                decision,
                started_at,
            } => {
                self.id = Some(*recording_id);
                self.site_id = *site_id;
                self.server_id = *server_id;
                self.session_id = session_id.clone();
                self.part = *part;
                self.previous_recording_id = *previous_recording_id;
                self.user = user.clone();
                self.domain = domain.clone();
                self.groups = groups.clone();
                self.client_name = client_name.clone();
                self.client_ip = client_ip.clone();
                self.host = host.clone();
                self.delivery_group = delivery_group.clone();
                self.applications = applications.clone();
                self.mode = Some(*mode);
                self.decision = Some(decision.clone());
                self.started_at = Some(*started_at);
            }
            DomainEvent::RecordingDeclined {
                recording_id,
                site_id,
                server_id,
                session_id,
                part,
                user,
                host,
                client_ip,
                decision,
                at,
            } => {
                self.id = Some(*recording_id);
                self.site_id = *site_id;
                self.server_id = *server_id;
                self.session_id = session_id.clone();
                self.part = *part;
                self.user = user.clone();
                self.host = host.clone();
                self.client_ip = client_ip.clone();
                self.decision = Some(decision.clone());
                self.started_at = Some(*at);
            }
            DomainEvent::ResponseTriggered {
                response_id,
                policy_id,
                rule,
                action,
                at_offset_ms,
                ..
            } => {
                self.responses.insert(
                    *response_id,
                    PendingResponse {
                        action: action.clone(),
                        delivered: false,
                    },
                );
                self.last_fired
                    .insert((*policy_id, rule.clone()), *at_offset_ms);
            }
            DomainEvent::ResponseDelivered { response_id, .. } => {
                if let Some(response) = self.responses.get_mut(response_id) {
                    response.delivered = true;
                    if response.action.kind() == ResponseActionKind::StartScreenRecording {
                        self.mode = Some(RecordingMode::ScreenAndEvents);
                    }
                }
            }
            DomainEvent::RecordingEnded { ended_at, .. } => self.ended_at = Some(*ended_at),
            DomainEvent::RecordingRestricted { reason, by, at, .. } => {
                self.restriction = Some(Restriction {
                    reason: reason.clone(),
                    by: by.clone(),
                    at: *at,
                });
            }
            DomainEvent::RecordingRestrictionRemoved { .. } => self.restriction = None,
            DomainEvent::CommentAdded {
                comment_id,
                author,
                text,
                severity,
                offset_ms,
                at,
                ..
            } => {
                self.comments.insert(
                    *comment_id,
                    Comment {
                        author: author.clone(),
                        text: text.clone(),
                        severity: *severity,
                        offset_ms: *offset_ms,
                        at: *at,
                    },
                );
            }
            DomainEvent::CommentDeleted { comment_id, .. } => {
                self.comments.remove(comment_id);
            }
            DomainEvent::RecordingPlayed { .. } => self.plays += 1,
            DomainEvent::ContentChunkStored {
                seq, size, sha256, ..
            } => {
                self.chunks.insert(
                    *seq,
                    StoredChunk {
                        size: *size,
                        sha256: sha256.clone(),
                    },
                );
            }
            DomainEvent::ContentTypeDeclared { content_type, .. } => {
                self.content_type = Some(content_type.clone());
            }
            _ => {}
        }
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lifecycle::NotStarted => "NOT_STARTED",
            Lifecycle::Declined => "DECLINED",
            Lifecycle::Live => "LIVE",
            Lifecycle::Ended => "ENDED",
            Lifecycle::Archived => "ARCHIVED",
            Lifecycle::Deleted => "DELETED",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::policy::{
        DetectionRule, RecordingAction, ResponseTrigger, Scope, Severity, TriggerOn,
    };
    use crate::model::session_event::SessionEventType;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    fn started() -> DomainEvent {
        started_event(RECORDING, T0)
    }

    fn ended() -> DomainEvent {
        DomainEvent::RecordingEnded {
            recording_id: RECORDING,
            site_id: SITE,
            server_id: SERVER,
            ended_at: T1,
        }
    }

    fn archived() -> DomainEvent {
        DomainEvent::RecordingArchived {
            recording_id: RECORDING,
            site_id: SITE,
            at: T2,
        }
    }

    fn deleted() -> DomainEvent {
        DomainEvent::RecordingDeleted {
            recording_id: RECORDING,
            site_id: SITE,
            at: T2,
        }
    }

    fn restricted() -> DomainEvent {
        DomainEvent::RecordingRestricted {
            recording_id: RECORDING,
            site_id: SITE,
            reason: "HR case".into(),
            by: "root".into(),
            at: T2,
        }
    }

    fn start_command(
        decision: RecordingDecision,
        response_policy: Option<PolicyDef<ResponsePolicyBody>>,
    ) -> RecordingCommand {
        RecordingCommand::Start(Box::new(StartRecording {
            recording_id: RECORDING,
            site_id: SITE,
            server_id: SERVER,
            session_id: "42".into(),
            part: 1,
            previous_recording_id: None,
            session: session(),
            decision,
            response_policy,
            started_at: T0,
        }))
    }

    fn detection_policy() -> PolicyDef<DetectionPolicyBody> {
        PolicyDef {
            id: DETECTION_POLICY,
            name: "Shells".into(),
            body: DetectionPolicyBody {
                logged: [SessionEventType::AppStart, SessionEventType::WebBrowsing]
                    .into_iter()
                    .collect(),
                rules: vec![DetectionRule {
                    name: Some("shell".into()),
                    event_type: SessionEventType::AppStart,
                    severity: Severity::High,
                    patterns: vec![],
                    idle_seconds: None,
                    scope: Scope::default(),
                }],
                ..Default::default()
            },
        }
    }

    fn response_policy(cooldown_sec: u32) -> PolicyDef<ResponsePolicyBody> {
        PolicyDef {
            id: RESPONSE_POLICY,
            name: "Alert".into(),
            body: response_body(&[SessionEventType::AppStart], cooldown_sec),
        }
    }

    fn record(events: Vec<SessionEvent>, cooldown_sec: u32) -> RecordingCommand {
        RecordingCommand::RecordEvents {
            events,
            detection_policy: Some(detection_policy()),
            response_policy: Some(response_policy(cooldown_sec)),
            now: T1,
        }
    }

    fn count(events: &[DomainEvent], name: &str) -> usize {
        events.iter().filter(|e| e.name() == name).count()
    }

    #[test]
    fn the_lifecycle_table_allows_exactly_the_documented_moves() {
        use Lifecycle::*;
        use Transition::*;
        let states = [NotStarted, Declined, Live, Ended, Archived, Deleted];
        let moves = [Start, Decline, End, Archive, Restore, Delete];
        let legal = [
            (NotStarted, Start, Live),
            (NotStarted, Decline, Declined),
            (Live, End, Ended),
            (Ended, Archive, Archived),
            (Ended, Delete, Deleted),
            (Archived, Restore, Ended),
            (Archived, Delete, Deleted),
        ];
        for from in states {
            for via in moves {
                let expected = legal
                    .iter()
                    .find(|(f, v, _)| *f == from && *v == via)
                    .map(|(_, _, to)| *to);
                assert_eq!(transition(from, via), expected, "{from:?} via {via:?}");
            }
        }
    }

    #[test]
    fn start_records_the_decision_of_the_policy() {
        given([])
            .when(start_command(
                decision(RecordingAction::RecordScreenAndEvents),
                None,
            ))
            .then([started()]);
    }

    #[test]
    fn a_do_not_record_decision_is_recorded_and_goes_no_further() {
        let declined = DomainEvent::RecordingDeclined {
            recording_id: RECORDING,
            site_id: SITE,
            server_id: SERVER,
            session_id: "42".into(),
            part: 1,
            user: "CORP\\alice".into(),
            host: "VDA-01".into(),
            client_ip: Some("10.20.30.40".into()),
            decision: decision(RecordingAction::DoNotRecord),
            at: T0,
        };
        given([])
            .when(start_command(decision(RecordingAction::DoNotRecord), None))
            .then([declined.clone()]);
        given([declined.clone()])
            .when(record(vec![app_start("cmd.exe", 1)], 60))
            .then_err(|e| *e == RecordingError::NotRecorded);
        given([declined])
            .when(RecordingCommand::End { ended_at: T1 })
            .then_err(|e| *e == RecordingError::NotRecorded);
    }

    #[test]
    fn a_recording_starts_once() {
        given([started()])
            .when(start_command(
                decision(RecordingAction::RecordEventsOnly),
                None,
            ))
            .then_err_code(ErrorCode::Conflict);
    }

    #[test]
    fn session_start_triggers_fire_when_the_recording_starts() {
        let mut policy = response_policy(60);
        policy.body.rules[0].triggers.push(ResponseTrigger {
            description: "any session".into(),
            on: TriggerOn::SessionStart,
            scope: Scope::default(),
        });
        given([])
            .when(start_command(decision(RecordingAction::RecordScreenAndEvents), Some(policy)))
            .then_matches(|events| {
                matches!(events, [DomainEvent::RecordingStarted { .. }, DomainEvent::ResponseTriggered { detection_id: None, trigger, .. }] if trigger == "any session")
            });
    }

    #[test]
    fn each_session_event_is_one_log_event_with_its_own_id() {
        let first = app_start("notepad.exe", 1_000);
        let second = web("https://example.com", 2_000);
        given([started()])
            .when(RecordingCommand::RecordEvents {
                events: vec![first.clone(), second.clone(), first.clone()],
                detection_policy: None,
                response_policy: None,
                now: T1,
            })
            .then([
                recorded(RECORDING, first.clone()),
                recorded(RECORDING, second),
            ]);
        assert_eq!(
            recorded(RECORDING, first.clone()).natural_id(),
            Some(first.event_id)
        );
    }

    #[test]
    fn detected_events_carry_severity_and_rule() {
        let event = app_start("cmd.exe", 1_000);
        given([started()])
            .when(RecordingCommand::RecordEvents {
                events: vec![event.clone()],
                detection_policy: Some(detection_policy()),
                response_policy: None,
                now: T1,
            })
            .then_matches(|events| match events {
                [DomainEvent::SessionEventRecorded { .. }, DomainEvent::EventDetected {
                    severity,
                    rule,
                    event_id,
                    policy_id,
                    user,
                    ..
                }] => {
                    *severity == Severity::High
                        && rule == "shell"
                        && *event_id == event.event_id
                        && *policy_id == DETECTION_POLICY
                        && user == "CORP\\alice"
                }
                _ => false,
            });
    }

    #[test]
    fn detected_events_trigger_responses() {
        given([started()])
            .when(record(vec![app_start("cmd.exe", 1_000)], 60))
            .then_matches(|events| {
                count(events, "ResponseTriggered") == 1
                    && matches!(
                        events.last(),
                        Some(DomainEvent::ResponseTriggered {
                            action: ResponseAction::LockSession { .. },
                            severity: Some(Severity::High),
                            at_offset_ms: 1_000,
                            ..
                        })
                    )
            });
    }

    #[test]
    fn responses_respect_the_per_session_cool_down() {
        let burst: Vec<SessionEvent> = (0..100)
            .map(|i| app_start("cmd.exe", 1_000 + i * 100))
            .collect();
        let events = given([started()]).when(record(burst, 60)).events();
        assert_eq!(count(&events, "EventDetected"), 100);
        assert_eq!(
            count(&events, "ResponseTriggered"),
            1,
            "one burst fires once"
        );

        let later = vec![app_start("cmd.exe", 30_000), app_start("cmd.exe", 61_000)];
        let mut history = vec![started()];
        history.extend(events);
        given(history)
            .when(record(later, 60))
            .then_matches(|events| {
                count(events, "ResponseTriggered") == 1
                    && matches!(
                        events.last(),
                        Some(DomainEvent::ResponseTriggered {
                            at_offset_ms: 61_000,
                            ..
                        })
                    )
            });
    }

    #[test]
    fn a_zero_cool_down_fires_every_time() {
        let burst = vec![app_start("cmd.exe", 1), app_start("cmd.exe", 2)];
        given([started()])
            .when(record(burst, 0))
            .then_matches(|events| count(events, "ResponseTriggered") == 2);
    }

    #[test]
    fn retried_batches_derive_the_same_ids() {
        let batch = vec![app_start("cmd.exe", 1_000)];
        let once = given([started()]).when(record(batch.clone(), 60)).events();
        let twice = given([started()]).when(record(batch, 60)).events();
        let ids = |events: &[DomainEvent]| {
            events
                .iter()
                .map(DomainEvent::natural_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&once), ids(&twice));
        assert!(ids(&once).iter().all(Option::is_some));
    }

    #[test]
    fn start_screen_recording_is_asked_once_and_switches_mode_when_delivered() {
        let mut history = vec![events_only_started()];
        let mut policy = response_policy(0);
        policy.body.rules[0].actions = vec![ResponseAction::StartScreenRecording];
        let command = |offset| RecordingCommand::RecordEvents {
            events: vec![app_start("cmd.exe", offset)],
            detection_policy: Some(detection_policy()),
            response_policy: Some(policy.clone()),
            now: T1,
        };
        let first = given(history.clone()).when(command(1)).events();
        let response_id = first.iter().find_map(|e| match e {
            DomainEvent::ResponseTriggered { response_id, .. } => Some(*response_id),
            _ => None,
        });
        let response_id = response_id.expect("a screen recording response");
        history.extend(first);
        given(history.clone())
            .when(command(2))
            .then_matches(|events| count(events, "ResponseTriggered") == 0);
        history.push(DomainEvent::ResponseDelivered {
            response_id,
            recording_id: RECORDING,
            site_id: SITE,
            server_id: SERVER,
            outcome: "DONE".into(),
            at: T1,
        });
        assert_eq!(
            given(history).state::<Recording>().mode,
            Some(RecordingMode::ScreenAndEvents)
        );
    }

    #[test]
    fn a_response_is_acknowledged_once() {
        let mut history = vec![started()];
        history.extend(
            given([started()])
                .when(record(vec![app_start("cmd.exe", 1)], 60))
                .events(),
        );
        let recording = given(history.clone()).state::<Recording>();
        let (&response_id, _) = recording.pending_responses().next().expect("pending");
        let ack = RecordingCommand::AcknowledgeResponse {
            response_id,
            outcome: "locked".into(),
            now: T1,
        };
        let delivered = given(history.clone()).when(ack.clone()).events();
        assert_eq!(delivered.len(), 1);
        history.extend(delivered);
        given(history.clone()).when(ack).then([]);
        assert_eq!(
            given(history)
                .state::<Recording>()
                .pending_responses()
                .count(),
            0
        );
        given([started()])
            .when(RecordingCommand::AcknowledgeResponse {
                response_id: Uuid::from_u128(1),
                outcome: "x".into(),
                now: T1,
            })
            .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn batches_are_limited_and_validated() {
        let too_many: Vec<SessionEvent> =
            (0..=MAX_BATCH as u64).map(|i| app_start("a", i)).collect();
        given([started()])
            .when(record(too_many, 60))
            .then_err(|e| matches!(e, RecordingError::TooManyEvents(1_001)));
        let mut wrong = app_start("a", 1);
        wrong.event_type = SessionEventType::Print;
        given([started()])
            .when(record(vec![wrong], 60))
            .then_err_code(ErrorCode::Validation);
    }

    #[test]
    fn events_after_the_end_are_refused() {
        given([started(), ended()])
            .when(record(vec![app_start("a", 1)], 60))
            .then_err(|e| *e == RecordingError::NotLive(Lifecycle::Ended));
    }

    #[test]
    fn a_live_recording_ends() {
        given([started()])
            .when(RecordingCommand::End { ended_at: T1 })
            .then([ended()]);
        // A retried end changes nothing (and is no error).
        given([started(), ended()])
            .when(RecordingCommand::End { ended_at: T2 })
            .then([]);
    }

    fn restrict(by: Principal) -> RecordingCommand {
        RecordingCommand::Restrict {
            reason: "HR case".into(),
            by,
            grants: vec![],
            now: T2,
        }
    }

    #[test]
    fn a_live_recording_can_be_restricted() {
        given([started()])
            .when(restrict(principal(Role::Admin, "root")))
            .then([restricted()]);
        // ... and it keeps recording.
        let mut history = vec![started(), restricted()];
        history.extend(
            given(history.clone())
                .when(record(vec![app_start("a", 1)], 60))
                .events(),
        );
        assert_eq!(
            given(history).state::<Recording>().lifecycle,
            Lifecycle::Live
        );
    }

    #[test]
    fn admins_privileged_players_and_auditors_restrict() {
        for role in [Role::Admin, Role::PrivilegedPlayer] {
            given([started(), ended()])
                .when(restrict(principal(role, "root")))
                .then([restricted()]);
        }
        // An auditor restricts what it sees: what a grant of its admits.
        given([started(), ended()])
            .when(RecordingCommand::Restrict {
                reason: "HR case".into(),
                by: principal(Role::Auditor, "root"),
                grants: vec![PlaybackScope::whole_site()],
                now: T2,
            })
            .then([restricted()]);
        given([started(), ended()])
            .when(restrict(principal(Role::Auditor, "root")))
            .then_err_code(ErrorCode::Forbidden);
        given([started(), ended()])
            .when(restrict(principal(Role::Viewer, "v")))
            .then_err_code(ErrorCode::Forbidden);
    }

    #[test]
    fn restricting_needs_a_reason_and_happens_once() {
        given([started(), ended()])
            .when(RecordingCommand::Restrict {
                reason: " ".into(),
                by: principal(Role::Admin, "root"),
                grants: vec![],
                now: T2,
            })
            .then_err_code(ErrorCode::Validation);
        given([started(), ended(), restricted()])
            .when(restrict(principal(Role::Admin, "root")))
            .then_err(|e| *e == RecordingError::AlreadyRestricted);
    }

    #[test]
    fn a_restriction_is_removed_with_a_reason_by_whom() {
        given([started(), ended(), restricted()])
            .when(RecordingCommand::RemoveRestriction {
                reason: "case closed".into(),
                by: principal(Role::Auditor, "ann"),
                grants: vec![PlaybackScope::whole_site()],
                now: T2,
            })
            .then([DomainEvent::RecordingRestrictionRemoved {
                recording_id: RECORDING,
                site_id: SITE,
                reason: "case closed".into(),
                by: "ann".into(),
                at: T2,
            }]);
        given([started(), ended()])
            .when(RecordingCommand::RemoveRestriction {
                reason: "x".into(),
                by: principal(Role::Admin, "root"),
                grants: vec![],
                now: T2,
            })
            .then_err(|e| *e == RecordingError::NotRestricted);
    }

    #[test]
    fn only_who_may_play_it_but_for_the_restriction_removes_a_restriction() {
        let remove = |by, grants| RecordingCommand::RemoveRestriction {
            reason: "case closed".into(),
            by,
            grants,
            now: T2,
        };
        for role in [Role::Admin, Role::PrivilegedPlayer] {
            given([started(), ended(), restricted()])
                .when(remove(principal(role, "x"), vec![]))
                .then_ok();
        }
        // An auditor without a grant that covers the recording may not.
        let other_user = PlaybackScope {
            recorded_users: vec!["CORP\\bob".into()],
            ..Default::default()
        };
        for grants in [vec![], vec![other_user]] {
            given([started(), ended(), restricted()])
                .when(remove(principal(Role::Auditor, "ann"), grants))
                .then_err_code(ErrorCode::Forbidden);
        }
        // Nor one whose grant covers it when it could not play it anyway.
        given([started(), ended(), restricted(), archived()])
            .when(remove(
                principal(Role::Auditor, "ann"),
                vec![PlaybackScope::whole_site()],
            ))
            .then_err_code(ErrorCode::Forbidden);
        given([started(), ended(), restricted()])
            .when(remove(principal(Role::Viewer, "v"), vec![]))
            .then_err_code(ErrorCode::Forbidden);
    }

    fn comment_added(author: &str) -> DomainEvent {
        DomainEvent::CommentAdded {
            comment_id: COMMENT,
            recording_id: RECORDING,
            site_id: SITE,
            author: author.into(),
            text: "look here".into(),
            severity: CommentSeverity::Critical,
            offset_ms: Some(5_000),
            at: T1,
        }
    }

    #[test]
    fn comments_are_added_with_severity_and_offset() {
        given([started()])
            .when(RecordingCommand::AddComment {
                comment_id: COMMENT,
                text: " look here ".into(),
                severity: CommentSeverity::Critical,
                offset_ms: Some(5_000),
                by: principal(Role::Auditor, "ann"),
                grants: vec![PlaybackScope::whole_site()],
                now: T1,
            })
            .then([comment_added("ann")]);
    }

    #[test]
    fn comments_are_deleted_only_by_their_author_or_an_admin() {
        let delete = |by| RecordingCommand::DeleteComment {
            comment_id: COMMENT,
            by,
            now: T2,
        };
        given([started(), comment_added("ann")])
            .when(delete(principal(Role::Auditor, "bob")))
            .then_err_code(ErrorCode::Forbidden);
        given([started(), comment_added("ann")])
            .when(delete(principal(Role::Auditor, "ANN")))
            .then_ok();
        given([started(), comment_added("ann")])
            .when(delete(principal(Role::Admin, "root")))
            .then([DomainEvent::CommentDeleted {
                comment_id: COMMENT,
                recording_id: RECORDING,
                site_id: SITE,
                by: "root".into(),
                at: T2,
            }]);
        given([started()])
            .when(delete(principal(Role::Admin, "root")))
            .then_err(|e| *e == RecordingError::CommentNotFound);
    }

    #[test]
    fn every_playback_is_a_fact() {
        given([started(), ended()])
            .when(RecordingCommand::Play {
                kind: PlaybackKind::Download,
                by: principal(Role::PrivilegedPlayer, "pp"),
                grants: vec![],
                now: T2,
            })
            .then([DomainEvent::RecordingPlayed {
                recording_id: RECORDING,
                site_id: SITE,
                by: "pp".into(),
                kind: PlaybackKind::Download,
                at: T2,
            }]);
    }

    #[test]
    fn restricted_recording_cannot_be_played_by_an_auditor() {
        given([started(), ended(), restricted()])
            .when(RecordingCommand::Play {
                kind: PlaybackKind::Play,
                by: principal(Role::Auditor, "ann"),
                grants: vec![PlaybackScope::default()],
                now: T2,
            })
            .then_err_code(ErrorCode::Forbidden);
    }

    #[test]
    fn only_ended_recordings_are_archived() {
        given([started()])
            .when(RecordingCommand::Archive { now: T2 })
            .then_err(|e| {
                *e == RecordingError::IllegalTransition {
                    from: Lifecycle::Live,
                    via: Transition::Archive,
                }
            });
        given([started(), ended()])
            .when(RecordingCommand::Archive { now: T2 })
            .then([archived()]);
    }

    #[test]
    fn archived_recordings_are_restored_to_ended() {
        let restored = DomainEvent::RecordingRestored {
            recording_id: RECORDING,
            site_id: SITE,
            at: T2,
        };
        given([started(), ended(), archived()])
            .when(RecordingCommand::Restore { now: T2 })
            .then([restored.clone()]);
        assert_eq!(
            given([started(), ended(), archived(), restored])
                .state::<Recording>()
                .lifecycle,
            Lifecycle::Ended
        );
    }

    #[test]
    fn nothing_happens_after_deletion_but_reads() {
        let history = [started(), ended(), archived(), deleted()];
        assert_eq!(
            given(history.clone()).state::<Recording>().lifecycle,
            Lifecycle::Deleted
        );
        for command in [
            RecordingCommand::Restore { now: T2 },
            RecordingCommand::Archive { now: T2 },
            RecordingCommand::Delete { now: T2 },
            restrict(principal(Role::Admin, "root")),
            RecordingCommand::Play {
                kind: PlaybackKind::Play,
                by: principal(Role::Admin, "root"),
                grants: vec![],
                now: T2,
            },
        ] {
            given(history.clone())
                .when(command)
                .then_err(|e| *e == RecordingError::Deleted);
        }
    }

    #[test]
    fn commands_on_a_missing_recording_are_not_found() {
        given([])
            .when(RecordingCommand::End { ended_at: T1 })
            .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn the_recording_keeps_why_it_was_recorded() {
        let recording = given([started()]).state::<Recording>();
        let decision = recording.decision.expect("decision");
        assert_eq!(decision.policy_id, POLICY);
        assert_eq!(decision.rule.as_deref(), Some("Everyone"));
    }

    fn chunk(seq: u64, sha: &str) -> RecordingCommand {
        sized_chunk(seq, 10, 50).with_sha(sha)
    }

    fn sized_chunk(seq: u64, size: u64, max_file_size_mb: u32) -> RecordingCommand {
        RecordingCommand::StoreChunk {
            seq,
            size,
            sha256: "aa".into(),
            content_type: None,
            max_file_size_mb,
        }
    }

    impl RecordingCommand {
        fn with_sha(self, sha: &str) -> Self {
            match self {
                RecordingCommand::StoreChunk {
                    seq,
                    size,
                    content_type,
                    max_file_size_mb,
                    ..
                } => RecordingCommand::StoreChunk {
                    seq,
                    size,
                    sha256: sha.into(),
                    content_type,
                    max_file_size_mb,
                },
                other => other,
            }
        }
    }

    fn chunk_stored(seq: u64, sha: &str) -> DomainEvent {
        DomainEvent::ContentChunkStored {
            recording_id: RECORDING,
            site_id: SITE,
            seq,
            size: 10,
            sha256: sha.into(),
        }
    }

    #[test]
    fn chunks_are_stored_while_live() {
        given([started()])
            .when(chunk(0, "aa"))
            .then([chunk_stored(0, "aa")]);
        given([started(), chunk_stored(0, "aa")])
            .when(chunk(1, "bb"))
            .then([chunk_stored(1, "bb")]);
    }

    #[test]
    fn an_ended_recording_takes_only_chunks_missing_below_its_last() {
        // New content after the end: refused, the next part takes it.
        given([started(), chunk_stored(0, "aa"), ended()])
            .when(chunk(1, "bb"))
            .then_err(|e| *e == RecordingError::ContentClosed(RECORDING));
        given([started(), ended()])
            .when(chunk(0, "bb"))
            .then_err_code(ErrorCode::Conflict);
        // A failed chunk retried after the end fills its gap ...
        given([
            started(),
            chunk_stored(0, "aa"),
            chunk_stored(2, "cc"),
            ended(),
        ])
        .when(chunk(1, "bb"))
        .then([chunk_stored(1, "bb")]);
        // ... and an identical re-upload is still the same write.
        given([started(), chunk_stored(0, "aa"), ended()])
            .when(chunk(0, "aa"))
            .then([]);
    }

    #[test]
    fn a_chunk_seq_is_at_most_a_window_past_the_first_missing_one() {
        given([started(), chunk_stored(0, "aa")])
            .when(chunk(1 + MAX_CHUNKS_AHEAD, "bb"))
            .then([chunk_stored(1 + MAX_CHUNKS_AHEAD, "bb")]);
        given([started(), chunk_stored(0, "aa")])
            .when(chunk(2 + MAX_CHUNKS_AHEAD, "bb"))
            .then_err_code(ErrorCode::Validation);
        given([started()])
            .when(chunk(u64::from(u32::MAX), "bb"))
            .then_err_code(ErrorCode::Validation);
        let state =
            given([started(), chunk_stored(0, "aa"), chunk_stored(2, "cc")]).state::<Recording>();
        assert_eq!(state.next_chunk_seq(), 1);
        assert_eq!(given([started()]).state::<Recording>().next_chunk_seq(), 0);
    }

    #[test]
    fn a_recording_holds_at_most_its_servers_max_file_size() {
        let mb = BYTES_PER_MB;
        let first = DomainEvent::ContentChunkStored {
            recording_id: RECORDING,
            site_id: SITE,
            seq: 0,
            size: 8 * mb,
            sha256: "aa".into(),
        };
        // 8 MB + 2 MB fit in 10 MB exactly; one byte more does not.
        given([started(), first.clone()])
            .when(sized_chunk(1, 2 * mb, 10))
            .then([DomainEvent::ContentChunkStored {
                recording_id: RECORDING,
                site_id: SITE,
                seq: 1,
                size: 2 * mb,
                sha256: "aa".into(),
            }]);
        given([started(), first])
            .when(sized_chunk(1, 2 * mb + 1, 10))
            .then_err(|e| {
                matches!(e, RecordingError::ContentTooLarge { max_mb: 10, would_hold, .. }
                    if *would_hold == 10 * mb + 1)
                    && e.to_string().contains("next part")
            });
    }

    #[test]
    fn a_different_chunk_for_a_stored_seq_is_a_conflict() {
        given([started(), chunk_stored(0, "aa")])
            .when(chunk(0, "bb"))
            .then_err(|e| *e == RecordingError::ChunkExists(0));
        given([started(), chunk_stored(0, "aa")])
            .when(chunk(0, "aa"))
            .then([]);
    }

    #[test]
    fn archived_and_deleted_recordings_take_no_content() {
        given([started(), ended(), archived()])
            .when(chunk(0, "aa"))
            .then_err_code(ErrorCode::Validation);
        given([started(), ended(), deleted()])
            .when(chunk(0, "aa"))
            .then_err(|e| *e == RecordingError::Deleted);
        given([])
            .when(chunk(0, "aa"))
            .then_err_code(ErrorCode::NotFound);
    }

    #[test]
    fn a_content_type_is_declared_once_with_a_chunk() {
        let typed = |seq| RecordingCommand::StoreChunk {
            seq,
            size: 10,
            sha256: "aa".into(),
            content_type: Some("application/x-asciicast".into()),
            max_file_size_mb: 50,
        };
        let declared = DomainEvent::ContentTypeDeclared {
            recording_id: RECORDING,
            site_id: SITE,
            content_type: "application/x-asciicast".into(),
        };
        given([started()])
            .when(typed(0))
            .then([declared.clone(), chunk_stored(0, "aa")]);
        let state =
            given([started(), declared.clone(), chunk_stored(0, "aa")]).state::<Recording>();
        assert_eq!(
            state.content_type.as_deref(),
            Some("application/x-asciicast")
        );
        assert_eq!(state.chunks[&0].size, 10);
        given([started(), declared, chunk_stored(0, "aa")])
            .when(typed(1))
            .then([DomainEvent::ContentChunkStored {
                recording_id: RECORDING,
                site_id: SITE,
                seq: 1,
                size: 10,
                sha256: "aa".into(),
            }]);
    }

    #[test]
    fn chunk_events_have_one_id_per_recording_and_seq() {
        use crate::model::chunk_event_id;
        assert_eq!(
            chunk_stored(3, "aa").natural_id(),
            Some(chunk_event_id(RECORDING, 3))
        );
        assert_eq!(
            chunk_stored(3, "bb").natural_id(),
            chunk_stored(3, "aa").natural_id()
        );
        assert_ne!(
            chunk_stored(4, "aa").natural_id(),
            chunk_stored(3, "aa").natural_id()
        );
    }
}
