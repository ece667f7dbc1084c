//! Legal holds (one stream, [`LEGAL_HOLDS_STREAM`]): recordings that must
//! not be deleted, by hand or by retention, until the hold is released.
//!
//! A hold belongs to one site and covers, while it is active:
//!
//! | scope | covers |
//! |---|---|
//! | [`HoldScope::Recordings`] | the named recordings (all of the hold's site) |
//! | [`HoldScope::Users`] | every recording of the site whose recorded user matches one of the names (`DOMAIN\user`, `user@domain`, `*` / `?` globs, as in recording policies), started before or after the hold was placed |
//! | [`HoldScope::Site`] | every recording of the site, started before or after the hold was placed |
//!
//! A session that rolled over into several recordings is deleted as one
//! (see `app::Service::apply_to_session`), so a deletion is refused when
//! any of its parts is covered. Archiving is not affected: an archived
//! recording keeps its content, so retention may still archive a held one.
//!
//! # Why one stream
//!
//! All holds are one aggregate, [`LegalHolds`], on one stream. A deletion
//! decides on the holds as loaded at some stream version and appends its
//! `RecordingDeleted` **guarded** by that version (the log checks the
//! guard stream's version in the same commit, `EventStore::append_guarded`).
//! A hold placed (or released) in between moves the version, so the
//! deletion's append fails and is decided again on the new holds: of a
//! concurrent hold and deletion one wins, and a recording is never deleted
//! while a hold placed before the deletion covers it. Holds are few and
//! small, so the whole set is cheap to fold and the service caches it.
//!
//! A hold placed while a deletion of a recording it names is committing
//! may name a recording that is deleted by the time it is stored (the
//! deletion came first); the hold then covers nothing more of it.
//!
//! # Validation
//!
//! A reason is required (1 to [`MAX_HOLD_REASON_CHARS`] characters); a
//! recordings scope names 1 to [`MAX_HOLD_RECORDINGS`] recordings (repeats
//! are folded), which the application layer has checked exist, are not
//! deleted and belong to the hold's site; a users scope names 1 to
//! [`MAX_HOLD_USERS`] non-blank names. Releasing needs an active hold: a
//! missing one is `NOT_FOUND`, a released one `VALIDATION`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::permission::RecordingFacts;
use super::policy::name_matches;
use crate::time::Timestamp;

/// The one stream of [`LegalHolds`].
pub const LEGAL_HOLDS_STREAM: &str = "legal-holds";

/// The most recordings one hold names.
pub const MAX_HOLD_RECORDINGS: usize = 1_000;

/// The most user names one hold names.
pub const MAX_HOLD_USERS: usize = 100;

/// The longest reason, in characters.
pub const MAX_HOLD_REASON_CHARS: usize = 1_024;

/// Legal hold id.
pub type HoldId = Uuid;

/// What a legal hold covers on its site (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldScope {
    /// These recordings, sorted, without repeats.
    Recordings { recording_ids: Vec<Uuid> },
    /// Every recording of these recorded users.
    Users { users: Vec<String> },
    /// Every recording of the site.
    Site,
}

impl HoldScope {
    /// Whether the scope covers `recording` (of the hold's site).
    fn covers(&self, recording: &RecordingFacts) -> bool {
        match self {
            HoldScope::Recordings { recording_ids } => {
                recording_ids.binary_search(&recording.recording_id).is_ok()
            }
            HoldScope::Users { users } => users.iter().any(|u| name_matches(u, &recording.user)),
            HoldScope::Site => true,
        }
    }

    /// The scope in its stored form: recording ids sorted without
    /// repeats, names trimmed; or why it is invalid.
    pub fn normalized(self) -> Result<HoldScope, HoldError> {
        match self {
            HoldScope::Recordings { mut recording_ids } => {
                recording_ids.sort_unstable();
                recording_ids.dedup();
                if recording_ids.is_empty() {
                    return Err(HoldError::Invalid(
                        "a hold on recordings names at least one recording".into(),
                    ));
                }
                if recording_ids.len() > MAX_HOLD_RECORDINGS {
                    return Err(HoldError::Invalid(format!(
                        "a hold names at most {MAX_HOLD_RECORDINGS} recordings, not {}; \
                         hold the site or its users instead",
                        recording_ids.len()
                    )));
                }
                Ok(HoldScope::Recordings { recording_ids })
            }
            HoldScope::Users { users } => {
                let users: Vec<String> = users.iter().map(|u| u.trim().to_string()).collect();
                if users.is_empty() {
                    return Err(HoldError::Invalid(
                        "a hold on users names at least one user".into(),
                    ));
                }
                if users.len() > MAX_HOLD_USERS {
                    return Err(HoldError::Invalid(format!(
                        "a hold names at most {MAX_HOLD_USERS} users, not {}",
                        users.len()
                    )));
                }
                if users.iter().any(String::is_empty) {
                    return Err(HoldError::Invalid("user names must not be blank".into()));
                }
                Ok(HoldScope::Users { users })
            }
            HoldScope::Site => Ok(HoldScope::Site),
        }
    }
}

/// How a hold was released.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRelease {
    pub reason: Option<String>,
    pub by: String,
    pub at: Timestamp,
}

/// One legal hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalHold {
    pub id: HoldId,
    pub site_id: Uuid,
    pub scope: HoldScope,
    pub reason: String,
    pub placed_by: String,
    pub placed_at: Timestamp,
    pub released: Option<HoldRelease>,
}

impl LegalHold {
    /// Not released.
    pub fn active(&self) -> bool {
        self.released.is_none()
    }

    /// Whether this hold, active, covers `recording`.
    pub fn covers(&self, recording: &RecordingFacts) -> bool {
        self.active() && self.site_id == recording.site_id && self.scope.covers(recording)
    }
}

/// Every legal hold, as the stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LegalHolds {
    pub holds: BTreeMap<HoldId, LegalHold>,
}

impl LegalHolds {
    /// The active holds covering `recording`, oldest first.
    pub fn holding<'a>(
        &'a self,
        recording: &'a RecordingFacts,
    ) -> impl Iterator<Item = &'a LegalHold> + 'a {
        self.holds.values().filter(move |h| h.covers(recording))
    }

    /// Whether the recordings (the parts of one session) may be deleted:
    /// refused, naming the first covered part and its holds, when any
    /// active hold covers any of them.
    pub fn check_deletable(&self, parts: &[RecordingFacts]) -> Result<(), HoldError> {
        for part in parts {
            let holds: Vec<HoldId> = self.holding(part).map(|h| h.id).collect();
            if !holds.is_empty() {
                return Err(HoldError::Held {
                    recording_id: part.recording_id,
                    holds,
                });
            }
        }
        Ok(())
    }
}

/// Why a legal hold command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HoldError {
    #[error("legal hold {0} not found")]
    NotFound(HoldId),
    #[error("legal hold {0} already exists")]
    AlreadyExists(HoldId),
    #[error("legal hold {0} is already released")]
    AlreadyReleased(HoldId),
    #[error("{0}")]
    Invalid(String),
    /// A deletion of a held recording (`CONFLICT`).
    #[error(
        "recording {recording_id} is under legal hold {}: it cannot be deleted until the hold \
         is released (releaseLegalHold)",
        holds.iter().map(Uuid::to_string).collect::<Vec<_>>().join(", ")
    )]
    Held {
        recording_id: Uuid,
        holds: Vec<HoldId>,
    },
}

impl Coded for HoldError {
    fn code(&self) -> ErrorCode {
        match self {
            HoldError::NotFound(_) => ErrorCode::NotFound,
            HoldError::AlreadyExists(_) | HoldError::Held { .. } => ErrorCode::Conflict,
            HoldError::AlreadyReleased(_) | HoldError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// What may be asked of the legal holds.
#[derive(Clone, Debug, PartialEq)]
pub enum HoldCommand {
    /// Places a hold. For a recordings scope the application layer has
    /// checked that every recording exists, is not deleted and belongs to
    /// `site_id` (facts).
    Place {
        hold_id: HoldId,
        site_id: Uuid,
        scope: HoldScope,
        reason: String,
        by: String,
        now: Timestamp,
    },
    Release {
        hold_id: HoldId,
        reason: Option<String>,
        by: String,
        now: Timestamp,
    },
}

impl CommandFor for HoldCommand {
    type Aggregate = LegalHolds;
}

fn reason(text: &str) -> Result<String, HoldError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(HoldError::Invalid("a legal hold needs a reason".into()));
    }
    if text.chars().count() > MAX_HOLD_REASON_CHARS {
        return Err(HoldError::Invalid(format!(
            "the reason is longer than {MAX_HOLD_REASON_CHARS} characters"
        )));
    }
    Ok(text.to_string())
}

impl Aggregate for LegalHolds {
    type Command = HoldCommand;
    type Error = HoldError;
    const STREAM_PREFIX: &'static str = LEGAL_HOLDS_STREAM;

    /// One stream for every hold, whatever the id.
    fn stream(_id: Uuid) -> String {
        LEGAL_HOLDS_STREAM.to_string()
    }

    fn decide(&self, command: HoldCommand) -> Result<Vec<DomainEvent>, HoldError> {
        match command {
            HoldCommand::Place {
                hold_id,
                site_id,
                scope,
                reason: text,
                by,
                now,
            } => {
                if self.holds.contains_key(&hold_id) {
                    return Err(HoldError::AlreadyExists(hold_id));
                }
                let reason = reason(&text)?;
                let scope = scope.normalized()?;
                Ok(vec![DomainEvent::LegalHoldPlaced {
                    hold_id,
                    site_id,
                    scope,
                    reason,
                    by,
                    at: now,
                }])
            }
            HoldCommand::Release {
                hold_id,
                reason: text,
                by,
                now,
            } => {
                let hold = self
                    .holds
                    .get(&hold_id)
                    .ok_or(HoldError::NotFound(hold_id))?;
                if !hold.active() {
                    return Err(HoldError::AlreadyReleased(hold_id));
                }
                let reason = text.as_deref().map(reason).transpose()?;
                Ok(vec![DomainEvent::LegalHoldReleased {
                    hold_id,
                    site_id: hold.site_id,
                    scope: hold.scope.clone(),
                    reason,
                    by,
                    at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::LegalHoldPlaced {
                hold_id,
                site_id,
                scope,
                reason,
                by,
                at,
            } => {
                self.holds.insert(
                    *hold_id,
                    LegalHold {
                        id: *hold_id,
                        site_id: *site_id,
                        scope: scope.clone(),
                        reason: reason.clone(),
                        placed_by: by.clone(),
                        placed_at: *at,
                        released: None,
                    },
                );
            }
            DomainEvent::LegalHoldReleased {
                hold_id,
                reason,
                by,
                at,
                ..
            } => {
                if let Some(hold) = self.holds.get_mut(hold_id) {
                    hold.released = Some(HoldRelease {
                        reason: reason.clone(),
                        by: by.clone(),
                        at: *at,
                    });
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    const HOLD: Uuid = Uuid::from_u128(0x401d);
    const OTHER_SITE: Uuid = Uuid::from_u128(0x07e5);

    fn place(scope: HoldScope) -> HoldCommand {
        HoldCommand::Place {
            hold_id: HOLD,
            site_id: SITE,
            scope,
            reason: "Case 2026-17".into(),
            by: "root".into(),
            now: T0,
        }
    }

    fn placed(scope: HoldScope) -> DomainEvent {
        DomainEvent::LegalHoldPlaced {
            hold_id: HOLD,
            site_id: SITE,
            scope,
            reason: "Case 2026-17".into(),
            by: "root".into(),
            at: T0,
        }
    }

    fn released() -> DomainEvent {
        DomainEvent::LegalHoldReleased {
            hold_id: HOLD,
            site_id: SITE,
            scope: HoldScope::Site,
            reason: Some("case closed".into()),
            by: "root".into(),
            at: T1,
        }
    }

    fn release() -> HoldCommand {
        HoldCommand::Release {
            hold_id: HOLD,
            reason: Some("case closed".into()),
            by: "root".into(),
            now: T1,
        }
    }

    fn recording(n: u128, site_id: Uuid, user: &str) -> RecordingFacts {
        RecordingFacts {
            recording_id: Uuid::from_u128(n),
            site_id,
            user: user.into(),
            ..recording_facts()
        }
    }

    #[test]
    fn a_hold_is_placed_with_its_scope_in_stored_form() {
        let ids = [Uuid::from_u128(3), Uuid::from_u128(1), Uuid::from_u128(3)];
        given([])
            .when(place(HoldScope::Recordings {
                recording_ids: ids.to_vec(),
            }))
            .then([placed(HoldScope::Recordings {
                recording_ids: vec![Uuid::from_u128(1), Uuid::from_u128(3)],
            })]);
        given([])
            .when(place(HoldScope::Users {
                users: vec!["  CORP\\ann ".into()],
            }))
            .then([placed(HoldScope::Users {
                users: vec!["CORP\\ann".into()],
            })]);
    }

    #[test]
    fn a_hold_needs_a_bounded_reason_and_a_non_empty_scope() {
        let with_reason = |reason: &str| HoldCommand::Place {
            hold_id: HOLD,
            site_id: SITE,
            scope: HoldScope::Site,
            reason: reason.into(),
            by: "root".into(),
            now: T0,
        };
        given([])
            .when(with_reason("  "))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(with_reason(&"x".repeat(MAX_HOLD_REASON_CHARS + 1)))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(with_reason(&"x".repeat(MAX_HOLD_REASON_CHARS)))
            .then_ok();
        given([])
            .when(place(HoldScope::Recordings {
                recording_ids: vec![],
            }))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(place(HoldScope::Recordings {
                recording_ids: (0..=MAX_HOLD_RECORDINGS as u128)
                    .map(Uuid::from_u128)
                    .collect(),
            }))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(place(HoldScope::Users { users: vec![] }))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(place(HoldScope::Users {
                users: vec!["ann".into(), " ".into()],
            }))
            .then_err_code(ErrorCode::Validation);
        given([placed(HoldScope::Site)])
            .when(place(HoldScope::Site))
            .then_err(|e| *e == HoldError::AlreadyExists(HOLD));
    }

    #[test]
    fn a_hold_is_released_once() {
        given([placed(HoldScope::Site)])
            .when(release())
            .then([released()]);
        given([placed(HoldScope::Site), released()])
            .when(release())
            .then_err(|e| *e == HoldError::AlreadyReleased(HOLD));
        given([])
            .when(release())
            .then_err(|e| *e == HoldError::NotFound(HOLD));
    }

    #[test]
    fn a_held_recording_cannot_be_deleted_until_the_hold_is_released() {
        let held = recording(1, SITE, "CORP\\ann");
        let holds = given([placed(HoldScope::Recordings {
            recording_ids: vec![held.recording_id],
        })])
        .state::<LegalHolds>();
        assert_eq!(
            holds.check_deletable(std::slice::from_ref(&held)),
            Err(HoldError::Held {
                recording_id: held.recording_id,
                holds: vec![HOLD],
            })
        );
        let error = holds
            .check_deletable(std::slice::from_ref(&held))
            .unwrap_err();
        assert_eq!(error.code(), ErrorCode::Conflict);
        assert!(error.to_string().contains(&HOLD.to_string()), "{error}");
        assert!(holds
            .check_deletable(&[recording(2, SITE, "CORP\\ann")])
            .is_ok());
        let after_release = given([
            placed(HoldScope::Recordings {
                recording_ids: vec![held.recording_id],
            }),
            released(),
        ])
        .state::<LegalHolds>();
        assert!(after_release.check_deletable(&[held]).is_ok());
    }

    #[test]
    fn a_user_hold_covers_that_users_recordings_of_its_site_only() {
        let holds = given([placed(HoldScope::Users {
            users: vec!["ann".into(), "CORP\\b*".into()],
        })])
        .state::<LegalHolds>();
        let covered = |r: RecordingFacts| holds.holding(&r).count() == 1;
        assert!(covered(recording(1, SITE, "CORP\\ann")));
        assert!(covered(recording(2, SITE, "ann@corp.example")));
        assert!(covered(recording(3, SITE, "CORP\\bob")));
        assert!(!covered(recording(4, SITE, "OTHER\\bob")));
        assert!(!covered(recording(5, SITE, "CORP\\carl")));
        assert!(!covered(recording(6, OTHER_SITE, "CORP\\ann")));
    }

    #[test]
    fn a_site_hold_covers_every_recording_of_the_site_whenever_it_started() {
        let holds = given([placed(HoldScope::Site)]).state::<LegalHolds>();
        // Recordings are judged by their facts, not by when they started:
        // one started after the hold is covered as much as one before.
        assert_eq!(holds.holding(&recording(1, SITE, "anyone")).count(), 1);
        assert_eq!(
            holds.holding(&recording(2, OTHER_SITE, "anyone")).count(),
            0
        );
    }

    #[test]
    fn one_covered_part_holds_the_whole_session() {
        let holds = given([placed(HoldScope::Recordings {
            recording_ids: vec![Uuid::from_u128(2)],
        })])
        .state::<LegalHolds>();
        let parts = [recording(1, SITE, "ann"), recording(2, SITE, "ann")];
        assert_eq!(
            holds.check_deletable(&parts),
            Err(HoldError::Held {
                recording_id: Uuid::from_u128(2),
                holds: vec![HOLD],
            })
        );
    }

    #[test]
    fn every_hold_is_on_one_stream() {
        assert_eq!(LegalHolds::stream(Uuid::now_v7()), LEGAL_HOLDS_STREAM);
        assert_eq!(LegalHolds::stream(Uuid::nil()), LEGAL_HOLDS_STREAM);
    }
}
