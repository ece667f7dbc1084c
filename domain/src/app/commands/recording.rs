//! The recording commands of people: restrict, comment, acknowledge responses, play, archive, restore, delete.

use uuid::Uuid;

use crate::actor::Actor;
use crate::app::error::AppError;
use crate::app::service::{Executed, Loaded, Service};
use crate::log::{ExpectedVersion, NewEvent};
use crate::model::{
    can_unrestrict_recording, can_view_recording, derived_id, may, Action, Aggregate,
    CommentSeverity, DomainEvent, LegalHolds, Lifecycle, PlaybackKind, PlaybackScope, Principal,
    Recording, RecordingCommand, RecordingError, Target, Transition, LEGAL_HOLDS_STREAM,
};

use super::{not_found, Created};

/// The window within which one principal's plays of one recording are one
/// `RecordingPlayed` fact.
pub const PLAYBACK_WINDOW_SECS: i64 = 60;

impl Service {
    // ---- recordings: people -------------------------------------------------

    /// Runs a recording command that judges `by` inside the aggregate,
    /// recording a refusal as `AccessDenied`.
    pub(super) async fn judged(
        &self,
        by: &Principal,
        action: Action,
        recording_id: Uuid,
        command: impl FnOnce(Vec<PlaybackScope>) -> RecordingCommand,
    ) -> Result<Executed, AppError> {
        let (_, facts, grants) = self.recording_for(by, action, recording_id, false).await?;
        let outcome = self
            .execute::<Recording>(recording_id, command(grants), &by.actor(), None)
            .await;
        self.recording_denials(
            by,
            action,
            &format!("recording:{recording_id}"),
            Some(facts.site_id),
            outcome,
        )
        .await
    }

    /// `restrictRecording`.
    pub async fn restrict_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
        reason: &str,
    ) -> Result<Executed, AppError> {
        let now = self.now();
        self.judged(by, Action::RestrictRecording, recording_id, |grants| {
            RecordingCommand::Restrict {
                reason: reason.to_string(),
                by: by.clone(),
                grants,
                now,
            }
        })
        .await
    }

    /// `removeRecordingRestriction`: only who may play the recording with
    /// the restriction as the only obstacle (`can_unrestrict_recording`).
    /// Who may not even see the recording as it is (an AUDITOR and a
    /// restricted recording) gets the answer an absent one gets, whether
    /// its permissions miss the recording or something else keeps it from
    /// playing it (archived): a refusal tells it nothing of the recording.
    pub async fn remove_recording_restriction(
        &self,
        by: &Principal,
        recording_id: Uuid,
        reason: &str,
    ) -> Result<Executed, AppError> {
        let action = Action::RestrictRecording;
        let label = format!("recording:{recording_id}");
        let (_, facts, grants) = self.recording_for(by, action, recording_id, true).await?;
        if !can_view_recording(by, &facts, &grants)
            && !can_unrestrict_recording(by, &facts, &grants)
            && !may(
                by,
                Action::Ingest,
                Target::Recording {
                    recording: &facts,
                    grants: &grants,
                },
            )
        {
            let _ = self.deny(by, action, &label, Some(facts.site_id)).await;
            return Err(not_found("recording", recording_id));
        }
        let command = RecordingCommand::RemoveRestriction {
            reason: reason.to_string(),
            by: by.clone(),
            grants,
            now: self.now(),
        };
        let outcome = self
            .execute::<Recording>(recording_id, command, &by.actor(), None)
            .await;
        self.recording_denials(by, action, &label, Some(facts.site_id), outcome)
            .await
    }

    /// `addComment`.
    pub async fn add_comment(
        &self,
        by: &Principal,
        recording_id: Uuid,
        text: &str,
        severity: CommentSeverity,
        offset_ms: Option<u64>,
    ) -> Result<Created, AppError> {
        let id = Uuid::now_v7();
        let now = self.now();
        let executed = self
            .judged(by, Action::Comment, recording_id, |grants| {
                RecordingCommand::AddComment {
                    comment_id: id,
                    text: text.to_string(),
                    severity,
                    offset_ms,
                    by: by.clone(),
                    grants,
                    now,
                }
            })
            .await?;
        Ok(Created { id, executed })
    }

    /// `deleteComment`: by its author or an admin.
    pub async fn delete_comment(
        &self,
        by: &Principal,
        comment_id: Uuid,
    ) -> Result<Executed, AppError> {
        let envelope = self
            .store
            .read_event(comment_id)
            .await?
            .ok_or_else(|| not_found("comment", comment_id))?;
        let DomainEvent::CommentAdded { recording_id, .. } = envelope.payload else {
            return Err(not_found("comment", comment_id));
        };
        let now = self.now();
        let outcome = self
            .judged(by, Action::Comment, recording_id, |_| {
                RecordingCommand::DeleteComment {
                    comment_id,
                    by: by.clone(),
                    now,
                }
            })
            .await;
        match outcome {
            // A comment on a recording the caller may not see is unknown
            // to it: the answer names the comment, not its recording.
            Err(AppError::NotFound(_)) => Err(not_found("comment", comment_id)),
            other => other,
        }
    }

    /// Checks that `by` may play (or download) the recording, and records
    /// the playback. Call before serving content.
    ///
    /// One fact per principal, recording, kind and [`PLAYBACK_WINDOW_SECS`]:
    /// the event's log id is derived from them and it is appended without
    /// an expected version, so concurrent requests of one player (a video
    /// player's parallel `Range` requests) neither conflict nor multiply
    /// the fact; the answer is the fact's position either way.
    pub async fn record_played(
        &self,
        by: &Principal,
        recording_id: Uuid,
        kind: PlaybackKind,
    ) -> Result<Executed, AppError> {
        let loaded = self.playable(by, recording_id, kind).await?;
        if kind == PlaybackKind::Live {
            self.check_live_playback(by, &loaded.state).await?;
        }
        let now = self.now();
        let grants = match loaded.state.facts() {
            Some(facts) => self.permissions.grants(by, facts.site_id).await?,
            None => Vec::new(),
        };
        let events = loaded.state.decide(RecordingCommand::Play {
            kind,
            by: by.clone(),
            grants,
            now,
        })?;
        let window = now.as_micros().div_euclid(PLAYBACK_WINDOW_SECS * 1_000_000);
        let kind_tag: &[u8] = match kind {
            PlaybackKind::Play => b"play",
            PlaybackKind::Download => b"download",
            PlaybackKind::Live => b"live",
        };
        let event_id = derived_id(
            "srs:played",
            &[
                by.token_id.as_bytes(),
                by.name.as_bytes(),
                recording_id.as_bytes(),
                kind_tag,
                &window.to_be_bytes(),
            ],
        );
        let new_events = events
            .iter()
            .cloned()
            .map(|event| NewEvent::new(by.actor(), event).with_id(event_id))
            .collect();
        let appended = self
            .store
            .append(&loaded.stream, ExpectedVersion::Any, new_events)
            .await?;
        Ok(Executed {
            last_position: appended.last_position(),
            positions: appended.positions,
            version: appended.stream_version,
            events: if appended.deduplicated {
                Vec::new()
            } else {
                events
            },
            deduplicated: appended.deduplicated,
        })
    }

    /// Watching live obeys the recording's server: with
    /// `livePlaybackEnabled: false` it is refused (`FORBIDDEN`), and the
    /// refusal is recorded like every other.
    pub(super) async fn check_live_playback(
        &self,
        by: &Principal,
        recording: &Recording,
    ) -> Result<(), AppError> {
        let server_id = recording.server_id;
        let (server, _) = self.server(server_id).await?;
        if server.state.settings.live_playback_enabled {
            return Ok(());
        }
        let recording_id = recording.id.unwrap_or_default();
        let _ = self
            .deny(
                by,
                Action::PlayRecording,
                &format!("recording:{recording_id}"),
                Some(recording.site_id),
            )
            .await;
        Err(AppError::Forbidden(format!(
            "live playback is disabled on server {server_id} (livePlaybackEnabled is false): \
             recording {recording_id} cannot be watched live"
        )))
    }

    /// The recording, once `by` may play it: `NOT_FOUND` when `by` may not
    /// see it (absent and deleted alike), `NOT_FOUND` "was deleted" when it
    /// may, `FORBIDDEN` when it sees it but may not play it (an archived
    /// one for an AUDITOR). Records nothing when allowed: a request that
    /// serves nothing (a range outside the content) checks this first and
    /// records the playback only once it will answer with content.
    pub async fn playable(
        &self,
        by: &Principal,
        recording_id: Uuid,
        kind: PlaybackKind,
    ) -> Result<Loaded<Recording>, AppError> {
        let (loaded, facts, grants) = self
            .recording_for(by, Action::PlayRecording, recording_id, false)
            .await?;
        if loaded.state.lifecycle == Lifecycle::Deleted {
            return Err(AppError::NotFound(format!(
                "recording {recording_id} was deleted; its content is destroyed"
            )));
        }
        // The rules of `Play` (restrictions, grants, archive), without
        // writing: a refusal is recorded as `AccessDenied`.
        let probe = loaded.state.decide(RecordingCommand::Play {
            kind,
            by: by.clone(),
            grants,
            now: self.now(),
        });
        self.recording_denials(
            by,
            Action::PlayRecording,
            &format!("recording:{recording_id}"),
            Some(facts.site_id),
            probe.map_err(AppError::from),
        )
        .await?;
        Ok(loaded)
    }

    /// Archives a recording and every other recording of its session.
    pub async fn archive_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Archive)
            .await
    }

    /// Restores an archived recording and the rest of its session.
    pub async fn restore_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Restore)
            .await
    }

    /// Deletes a recording and every other recording of its session.
    pub async fn delete_recording(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<Executed, AppError> {
        self.manage_session(by, recording_id, Transition::Delete)
            .await
    }

    pub(super) async fn manage_session(
        &self,
        by: &Principal,
        recording_id: Uuid,
        via: Transition,
    ) -> Result<Executed, AppError> {
        let (_, facts, _) = self
            .recording_for(by, Action::ManageRecordings, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::ManageRecordings,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        self.apply_to_session(recording_id, via, &by.actor()).await
    }

    /// Applies a lifecycle move to every recording of `recording_id`'s
    /// session (the retention scheduler calls this with a system actor).
    /// All parts are checked first, so a session with a live part is left
    /// untouched; parts already where the move leads are skipped. Parts
    /// are separate streams: a failure midway leaves a prefix done, and
    /// repeating the call completes it.
    ///
    /// A deletion is refused (`CONFLICT`, naming the hold) when a legal
    /// hold covers any part, and each part's deletion is appended guarded
    /// by the legal holds' stream version; a hold placed or released
    /// meanwhile makes it decide again on the holds as they now are.
    pub async fn apply_to_session(
        &self,
        recording_id: Uuid,
        via: Transition,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        let mut retries = 0;
        loop {
            match self.apply_to_session_once(recording_id, via, actor).await {
                Err(AppError::Conflict(conflict))
                    if conflict.stream == LEGAL_HOLDS_STREAM
                        && retries < self.config.max_retries =>
                {
                    tracing::debug!(%conflict, retries, "the legal holds moved during a deletion; deciding again");
                    retries += 1;
                }
                outcome => return outcome,
            }
        }
    }

    pub(super) async fn apply_to_session_once(
        &self,
        recording_id: Uuid,
        via: Transition,
        actor: &Actor,
    ) -> Result<Executed, AppError> {
        // Loaded first: the version every deletion below is guarded by.
        let holds = match via {
            Transition::Delete => Some(self.load::<LegalHolds>(Uuid::nil()).await?),
            _ => None,
        };
        let (recording, _) = self.recording(recording_id).await?;
        let (server_id, session_id) = (
            recording.state.server_id,
            recording.state.session_id.clone(),
        );
        let (_, ids) = self.session_parts(server_id, &session_id).await?;
        let mut parts = Vec::new();
        for id in ids.ids {
            let loaded = if id == recording_id {
                recording.clone()
            } else {
                self.load::<Recording>(id).await?
            };
            if loaded.state.lifecycle == Lifecycle::NotStarted {
                // Assigned but never started: nothing to move.
                continue;
            }
            parts.push((id, loaded.state.lifecycle, loaded.state.facts()));
        }
        if !parts.iter().any(|(id, _, _)| *id == recording_id) {
            // A recording the session's index does not list.
            parts.push((
                recording_id,
                recording.state.lifecycle,
                recording.state.facts(),
            ));
        }
        let target = match via {
            Transition::Archive => Lifecycle::Archived,
            Transition::Restore => Lifecycle::Ended,
            Transition::Delete => Lifecycle::Deleted,
            Transition::Start | Transition::Decline | Transition::End => {
                return Err(AppError::Validation(format!(
                    "{via:?} is not applied to whole sessions"
                )))
            }
        };
        let mut todo = Vec::new();
        let mut todo_facts = Vec::new();
        for (id, lifecycle, facts) in parts {
            let legal = crate::model::transition(lifecycle, via).is_some();
            // The other parts follow the one asked for: those already past
            // the move (or never recorded) are skipped, a live one stops it.
            let skip = lifecycle == target
                || lifecycle == Lifecycle::Declined
                || (id != recording_id && !legal && lifecycle != Lifecycle::Live);
            if skip {
                continue;
            }
            if !legal {
                return Err(if lifecycle == Lifecycle::Deleted {
                    RecordingError::Deleted
                } else {
                    RecordingError::IllegalTransition {
                        from: lifecycle,
                        via,
                    }
                }
                .into());
            }
            todo.push(id);
            todo_facts.extend(facts);
        }
        if let Some(holds) = &holds {
            holds.state.check_deletable(&todo_facts)?;
        }
        let now = self.now();
        let mut outcomes = Vec::new();
        for id in todo {
            let command = match via {
                Transition::Archive => RecordingCommand::Archive { now },
                Transition::Restore => RecordingCommand::Restore { now },
                _ => RecordingCommand::Delete { now },
            };
            let outcome = match &holds {
                Some(holds) => {
                    let guard = (holds.stream.clone(), holds.version);
                    self.execute_guarded::<Recording>(id, command, actor, guard)
                        .await?
                }
                None => self.execute::<Recording>(id, command, actor, None).await?,
            };
            outcomes.push(outcome);
        }
        if outcomes.is_empty() {
            return Ok(Executed {
                last_position: recording.last_position,
                version: recording.version,
                ..Executed::default()
            });
        }
        Ok(Executed::merge(outcomes))
    }
}

#[cfg(test)]
mod tests;
