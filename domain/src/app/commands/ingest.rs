//! The recording commands of a server's AGENT: start (with the session's parts), record session events, end.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::app::error::AppError;
use crate::app::service::{Executed, Loaded, Service};
use crate::model::{
    evaluate, legacy_recording_id, session_key, Action, Aggregate, DomainEvent, Lifecycle,
    Principal, Recording, RecordingAction, RecordingCommand, RecordingDecision, RecordingError,
    Role, SessionAttributes, SessionCommand, SessionEvent, SessionParts, StartRecording, Target,
    MAX_BATCH,
};
use crate::time::Timestamp;

use super::{not_found, policy::ActivePolicies, sees_all_servers, sees_server};

/// The most parts (rollovers) one session may have.
pub const MAX_PARTS: u32 = 1_000;

/// `startRecording` input.
#[derive(Clone, Debug, PartialEq)]
pub struct StartRecordingInput {
    pub server_id: Uuid,
    /// The session's id on the server; with `server_id` the idempotency key.
    pub session_id: String,
    pub session: SessionAttributes,
    /// Defaults to now.
    pub started_at: Option<Timestamp>,
}

/// What `startRecording` did.
#[derive(Clone, Debug, PartialEq)]
pub struct StartedRecording {
    pub recording_id: Uuid,
    pub part: u32,
    /// Why it is (not) recorded.
    pub decision: Option<RecordingDecision>,
    /// False when the policy said DO_NOT_RECORD: send nothing further.
    pub recorded: bool,
    /// The request repeated an earlier start; nothing new was written.
    pub repeated: bool,
    pub executed: Executed,
}

/// What `recordSessionEvents` did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedEvents {
    /// Session events newly stored.
    pub accepted: usize,
    /// Session events already stored (or repeated in the batch), skipped.
    pub duplicates: usize,
    /// Session events of types the site's active detection policy does not
    /// log: refused one by one, never stored.
    pub ignored: usize,
    pub detections: usize,
    pub responses: usize,
    pub executed: Executed,
}

/// The recordings of a session's parts, in order.
#[derive(Clone, Debug, Default)]
pub(super) struct SessionPartIds {
    pub(super) ids: Vec<Uuid>,
    /// Parts found at legacy ids (the session has no index yet).
    pub(super) legacy: Vec<Uuid>,
}

impl Service {
    // ---- recordings: ingest (AGENT) -----------------------------------------

    /// `startRecording`: applies the site's active recording policy. A
    /// repeated start (same server and session, the part still live, or
    /// the same start time) returns the existing recording. After the
    /// previous part ended, a start is a rollover into the next part.
    pub async fn start_recording(
        &self,
        by: &Principal,
        input: StartRecordingInput,
    ) -> Result<StartedRecording, AppError> {
        let (server, site_id) = self.server_for(by, Action::Ingest, input.server_id).await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Server {
                site_id,
                server_id: input.server_id,
            },
        )
        .await?;
        if !server.state.accepts_recordings() {
            return Err(AppError::Validation(format!(
                "server {} does not accept recordings ({:?})",
                input.server_id, server.state.status
            )));
        }
        let site = self.site(site_id).await?;
        let active = self.active_policies(&site.state).await?;
        let decision = if server.state.settings.recording_enabled {
            evaluate(&active.recording, &input.session)
        } else {
            RecordingDecision {
                policy_id: Uuid::nil(),
                policy_name: "Recording disabled in the server settings".into(),
                rule: None,
                rule_index: None,
                action: RecordingAction::DoNotRecord,
                notify: false,
                lossy: false,
                audio: false,
            }
        };

        // What `Start` would refuse is refused before a part is assigned,
        // so a malformed start leaves nothing in the session's index.
        input.session.validate().map_err(RecordingError::Invalid)?;
        if input.session_id.trim().is_empty() {
            return Err(RecordingError::Invalid("the session id must not be empty".into()).into());
        }
        let mut retries = 0;
        loop {
            let (index, parts) = self
                .session_parts(input.server_id, &input.session_id)
                .await?;
            let mut previous = None;
            for (part, &recording_id) in (1u32..).zip(&parts.ids) {
                let existing = self.load::<Recording>(recording_id).await?;
                let repeated = match existing.state.lifecycle {
                    // Assigned, never started (a crash, or a concurrent
                    // start in flight): this start makes it.
                    Lifecycle::NotStarted => {
                        return self
                            .start_part(
                                by,
                                &input,
                                site_id,
                                part,
                                recording_id,
                                previous,
                                &decision,
                                &active,
                            )
                            .await;
                    }
                    Lifecycle::Live | Lifecycle::Declined => true,
                    Lifecycle::Ended | Lifecycle::Archived | Lifecycle::Deleted => {
                        input.started_at.is_some() && existing.state.started_at == input.started_at
                    }
                };
                if repeated {
                    return Ok(StartedRecording {
                        recording_id,
                        part,
                        decision: existing.state.decision.clone(),
                        recorded: existing.state.lifecycle != Lifecycle::Declined,
                        repeated: true,
                        executed: Executed {
                            last_position: existing.last_position,
                            version: existing.version,
                            ..Executed::default()
                        },
                    });
                }
                previous = Some(recording_id);
            }
            let part = parts.ids.len() as u32 + 1;
            if part > MAX_PARTS {
                return Err(AppError::Validation(format!(
                    "session {} has more than {MAX_PARTS} recordings",
                    input.session_id
                )));
            }
            // A fresh random id; the index makes it the session's part.
            let recording_id = Uuid::now_v7();
            let mut recordings = parts.legacy.clone();
            recordings.push(recording_id);
            let first_part = part + 1 - recordings.len() as u32;
            let assigned = index.state.decide(SessionCommand::Assign {
                site_id,
                server_id: input.server_id,
                session_id: input.session_id.clone(),
                first_part,
                recordings,
                now: self.now(),
            })?;
            match self.append(&index, assigned, &by.actor()).await {
                Ok(_) => {}
                // Another start assigned the part first: use its recording.
                Err(AppError::Conflict(_)) if retries < self.config.max_retries => {
                    retries += 1;
                    continue;
                }
                Err(error) => return Err(error),
            }
            return self
                .start_part(
                    by,
                    &input,
                    site_id,
                    part,
                    recording_id,
                    previous,
                    &decision,
                    &active,
                )
                .await;
        }
    }

    /// The parts of a server's session: its index, and the recording of
    /// each part in order. A session from before the index has no index
    /// stream; its parts are found at their legacy ids (and listed in
    /// `legacy`, to be copied into the index with the next part).
    pub(super) async fn session_parts(
        &self,
        server_id: Uuid,
        session_id: &str,
    ) -> Result<(Loaded<SessionParts>, SessionPartIds), AppError> {
        let index = self
            .load::<SessionParts>(session_key(server_id, session_id))
            .await?;
        if !index.state.parts.is_empty() {
            let ids = index.state.parts.clone();
            return Ok((
                index,
                SessionPartIds {
                    ids,
                    legacy: Vec::new(),
                },
            ));
        }
        let mut legacy = Vec::new();
        for part in 1..=MAX_PARTS {
            let id = legacy_recording_id(server_id, session_id, part);
            let loaded = self.load::<Recording>(id).await?;
            if loaded.state.lifecycle == Lifecycle::NotStarted {
                break;
            }
            legacy.push(id);
        }
        Ok((
            index,
            SessionPartIds {
                ids: legacy.clone(),
                legacy,
            },
        ))
    }

    /// Starts (or declines) part `part` of a session as recording
    /// `recording_id`, which the session's index has assigned to it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn start_part(
        &self,
        by: &Principal,
        input: &StartRecordingInput,
        site_id: Uuid,
        part: u32,
        recording_id: Uuid,
        previous: Option<Uuid>,
        decision: &RecordingDecision,
        active: &ActivePolicies,
    ) -> Result<StartedRecording, AppError> {
        let command = RecordingCommand::Start(Box::new(StartRecording {
            recording_id,
            site_id,
            server_id: input.server_id,
            session_id: input.session_id.clone(),
            part,
            previous_recording_id: previous,
            session: input.session.clone(),
            decision: decision.clone(),
            response_policy: Some(active.response.clone()),
            started_at: input.started_at.unwrap_or_else(|| self.now()),
        }));
        if decision.records() {
            // The key every session event of it is sealed under: created
            // before the recording exists, so sealing only ever loads it.
            self.create_key(recording_id).await?;
        }
        match self
            .execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
        {
            Ok(executed) => Ok(StartedRecording {
                recording_id,
                part,
                recorded: decision.records(),
                decision: Some(decision.clone()),
                repeated: false,
                executed,
            }),
            // A concurrent start of the same session won: it is ours too.
            Err(AppError::Recording(RecordingError::AlreadyStarted(_))) => {
                let existing = self.load::<Recording>(recording_id).await?;
                Ok(StartedRecording {
                    recording_id,
                    part,
                    decision: existing.state.decision.clone(),
                    recorded: existing.state.lifecycle != Lifecycle::Declined,
                    repeated: true,
                    executed: Executed {
                        last_position: existing.last_position,
                        version: existing.version,
                        ..Executed::default()
                    },
                })
            }
            Err(error) => Err(error),
        }
    }

    /// `recordSessionEvents`: up to [`MAX_BATCH`] events. Events of types
    /// the site's active detection policy does not log are refused (counted
    /// as `ignored`, never stored); ids the log already holds are skipped;
    /// the rest, their detections and the responses those trigger go into
    /// one append on the recording stream.
    pub async fn record_session_events(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
    ) -> Result<RecordedEvents, AppError> {
        self.record_events_filtered(by, recording_id, events, true)
            .await
    }

    /// The session events a recording's uploaded content carries (e.g. an
    /// asciicast's lines): they index the content itself, so they are
    /// stored whatever the detection policy logs (and detected as it says).
    pub async fn index_content_events(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
    ) -> Result<RecordedEvents, AppError> {
        self.record_events_filtered(by, recording_id, events, false)
            .await
    }

    pub(super) async fn record_events_filtered(
        &self,
        by: &Principal,
        recording_id: Uuid,
        events: Vec<SessionEvent>,
        refuse_unlogged: bool,
    ) -> Result<RecordedEvents, AppError> {
        if events.len() > MAX_BATCH {
            return Err(RecordingError::TooManyEvents(events.len()).into());
        }
        let (recording, facts) = self.ingest_target(by, recording_id).await?;
        let site = self.site(facts.site_id).await?;
        let active = self.active_policies(&site.state).await?;
        // Each event is checked before any is judged against the log, so a
        // batch mixing logged and unlogged types stores exactly the logged.
        for event in &events {
            event.validate().map_err(RecordingError::InvalidEvent)?;
        }
        let (events, unlogged): (Vec<SessionEvent>, Vec<SessionEvent>) = events
            .into_iter()
            .partition(|e| !refuse_unlogged || active.detection.body.logs(e.event_type));
        let ignored = unlogged.len();
        let total = events.len();
        let actor = by.actor();
        let mut retries = 0;
        let mut loaded = recording;
        loop {
            let mut seen = BTreeSet::new();
            let mut fresh = Vec::with_capacity(events.len());
            for event in &events {
                if seen.insert(event.event_id)
                    && self.store.read_event(event.event_id).await?.is_none()
                {
                    fresh.push(event.clone());
                }
            }
            if fresh.is_empty() {
                return Ok(RecordedEvents {
                    duplicates: total,
                    ignored,
                    executed: Executed {
                        last_position: loaded.last_position,
                        version: loaded.version,
                        ..Executed::default()
                    },
                    ..RecordedEvents::default()
                });
            }
            let accepted = fresh.len();
            let decided = loaded.state.decide(RecordingCommand::RecordEvents {
                events: fresh,
                detection_policy: Some(active.detection.clone()),
                response_policy: Some(active.response.clone()),
                now: self.now(),
            })?;
            match self.append(&loaded, decided, &actor).await {
                Ok(executed) => {
                    let count = |name| executed.events.iter().filter(|e| e.name() == name).count();
                    return Ok(RecordedEvents {
                        accepted,
                        duplicates: total - accepted,
                        ignored,
                        detections: count("EventDetected"),
                        responses: count("ResponseTriggered"),
                        executed,
                    });
                }
                // Another request appended meanwhile (maybe some of these very
                // events): filter again against the log and decide afresh.
                Err(AppError::Conflict(_) | AppError::Internal(_))
                    if retries < self.config.max_retries =>
                {
                    retries += 1;
                    loaded = self.load::<Recording>(recording_id).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// `endRecording` (AGENT). `ended_at` defaults to now.
    ///
    /// Idempotent: a recording ends once, and a retried end (the agent
    /// lost the answer) writes nothing and answers the first end, its
    /// position and stream version, with `deduplicated` set.
    pub async fn end_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
        ended_at: Option<Timestamp>,
    ) -> Result<Executed, AppError> {
        let executed = self.end_once(by, recording_id, ended_at).await?;
        if !executed.positions.is_empty() {
            return Ok(executed);
        }
        // Nothing appended: the recording had ended before. Its end is
        // stored under a derived id; an end written before that id was
        // derived is found on the stream.
        let first = match self
            .store
            .read_event(crate::model::recording_ended_event_id(recording_id))
            .await?
        {
            Some(envelope) => Some((envelope.position, envelope.version)),
            None => self.find_first_end(recording_id).await?,
        };
        let (last_position, version) = first.unwrap_or((executed.last_position, executed.version));
        Ok(Executed {
            last_position,
            version,
            deduplicated: true,
            ..Executed::default()
        })
    }

    /// The position and stream version of the recording's first
    /// `RecordingEnded`, read from its stream.
    pub(super) async fn find_first_end(
        &self,
        recording_id: Uuid,
    ) -> Result<Option<(u64, u64)>, AppError> {
        let stream = crate::model::stream_name("recording", recording_id);
        let mut version = 1;
        loop {
            let batch = self.store.read_stream(&stream, version, 1_024).await?;
            let read = batch.len();
            for envelope in &batch {
                version = envelope.version + 1;
                if matches!(envelope.payload, DomainEvent::RecordingEnded { .. }) {
                    return Ok(Some((envelope.position, envelope.version)));
                }
            }
            if read < 1_024 {
                return Ok(None);
            }
        }
    }

    pub(super) async fn end_once(
        &self,
        by: &Principal,
        recording_id: Uuid,
        ended_at: Option<Timestamp>,
    ) -> Result<Executed, AppError> {
        self.ingest_target(by, recording_id).await?;
        let command = RecordingCommand::End {
            ended_at: ended_at.unwrap_or_else(|| self.now()),
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }

    /// The recording whose stored chunks `by` asks to list
    /// (`recordingChunks`): its server's AGENT (to resume an upload), or
    /// who may see the recording. Listing is not a playback: nothing is
    /// written (but a refusal).
    pub async fn recording_content(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Loaded<Recording>, AppError> {
        let action = if by.role == Role::Agent {
            Action::Ingest
        } else {
            Action::ViewRecording
        };
        let (recording, facts, grants) =
            self.recording_for(by, action, recording_id, false).await?;
        self.authorize(
            by,
            action,
            Target::Recording {
                recording: &facts,
                grants: &grants,
            },
        )
        .await?;
        Ok(recording)
    }

    /// `acknowledgeResponse` (AGENT of the recording's server, or ADMIN).
    pub async fn acknowledge_response(
        &self,
        by: &Principal,
        response_id: Uuid,
        outcome: &str,
    ) -> Result<Executed, AppError> {
        let envelope = self.store.read_event(response_id).await?;
        let label = format!("response:{response_id}");
        let Some(DomainEvent::ResponseTriggered {
            recording_id,
            site_id,
            server_id,
            ..
        }) = envelope.map(|e| e.payload)
        else {
            if !sees_all_servers(by) {
                let _ = self.deny(by, Action::HandleResponses, &label, None).await;
            }
            return Err(not_found("response", response_id));
        };
        if !sees_server(by, site_id, server_id) {
            // Another server's response is as unknown as an absent one.
            let _ = self
                .deny(by, Action::HandleResponses, &label, Some(site_id))
                .await;
            return Err(not_found("response", response_id));
        }
        self.authorize(
            by,
            Action::HandleResponses,
            Target::Server { site_id, server_id },
        )
        .await?;
        let command = RecordingCommand::AcknowledgeResponse {
            response_id,
            outcome: outcome.to_string(),
            now: self.now(),
        };
        self.execute::<Recording>(recording_id, command, &by.actor(), None)
            .await
    }
}

#[cfg(test)]
mod tests;
