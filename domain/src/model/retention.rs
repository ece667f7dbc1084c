//! Retention (stream `retention-<site uuid>`): when a site's recordings are
//! archived and deleted, and the pure [`due`] that picks them at a time T.
//!
//! Ages count from a recording's end. A session that rolled over into
//! several recordings is handled as one: when any of its recordings is due,
//! all of them are (and a session with a live part is never due). When
//! restricted recordings are exempt, a session with a restricted part is.
//! Deletion wins over archiving when both are due.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use super::aggregate::{Aggregate, Coded, CommandFor, ErrorCode};
use super::event::DomainEvent;
use super::recording::{Lifecycle, RecordingId};
use crate::time::Timestamp;

/// A time of day, UTC.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct TimeOfDay {
    pub hour: u8,
    pub minute: u8,
}

impl TimeOfDay {
    /// Parses `HH:MM` (24 h).
    pub fn parse(text: &str) -> Result<Self, String> {
        let bad = || format!("`{text}` is not a time of day (HH:MM, UTC)");
        let (h, m) = text.trim().split_once(':').ok_or_else(bad)?;
        let time = TimeOfDay {
            hour: h.parse().map_err(|_| bad())?,
            minute: m.parse().map_err(|_| bad())?,
        };
        if time.hour > 23 || time.minute > 59 {
            return Err(bad());
        }
        Ok(time)
    }

    fn micros(self) -> i64 {
        (i64::from(self.hour) * 3_600 + i64::from(self.minute) * 60) * Timestamp::MICROS_PER_SEC
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A site's retention policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionPolicy {
    /// Archive recordings this many days after they end (at least 2);
    /// `None`: never archive.
    pub archive_after_days: Option<u32>,
    /// Delete recordings this many days after they end (more than the
    /// archive days); `None`: never delete.
    pub delete_after_days: Option<u32>,
    /// When the daily run happens (UTC).
    pub run_at: TimeOfDay,
    /// Restricted recordings are neither archived nor deleted.
    pub exclude_restricted: bool,
}

impl RetentionPolicy {
    /// The shortest archive age.
    pub const MIN_ARCHIVE_DAYS: u32 = 2;

    /// Why the policy is invalid, if it is.
    pub fn problem(&self) -> Option<String> {
        match (self.archive_after_days, self.delete_after_days) {
            (Some(n), _) if n < Self::MIN_ARCHIVE_DAYS => Some(format!(
                "archiveAfterDays must be at least {}",
                Self::MIN_ARCHIVE_DAYS
            )),
            (Some(n), Some(m)) if m <= n => {
                Some("deleteAfterDays must be more than archiveAfterDays".into())
            }
            (None, Some(0)) => Some("deleteAfterDays must be at least 1".into()),
            _ if self.run_at.hour > 23 || self.run_at.minute > 59 => {
                Some("runAt is not a time of day".into())
            }
            _ => None,
        }
    }

    /// The first run strictly after `after`.
    pub fn next_run(&self, after: Timestamp) -> Timestamp {
        let day = after.day_number();
        let today = Timestamp(day * Timestamp::MICROS_PER_DAY + self.run_at.micros());
        if today > after {
            today
        } else {
            today.plus_days(1)
        }
    }
}

/// What [`due`] looks at per recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionCandidate {
    pub recording_id: RecordingId,
    pub server_id: Uuid,
    /// With `server_id`, groups the parts of a rolled-over session.
    pub session_id: String,
    pub lifecycle: Lifecycle,
    pub ended_at: Option<Timestamp>,
    pub restricted: bool,
}

/// The recordings to archive and to delete now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Due {
    pub to_archive: Vec<RecordingId>,
    pub to_delete: Vec<RecordingId>,
}

/// Which recordings are due at `now` under `policy`; see the module docs.
pub fn due(recordings: &[RetentionCandidate], policy: &RetentionPolicy, now: Timestamp) -> Due {
    let mut sessions: BTreeMap<(Uuid, &str), Vec<&RetentionCandidate>> = BTreeMap::new();
    for r in recordings {
        sessions
            .entry((r.server_id, r.session_id.as_str()))
            .or_default()
            .push(r);
    }
    let older_than = |days: u32, r: &RetentionCandidate| {
        r.ended_at
            .is_some_and(|end| end.plus_days(i64::from(days)) <= now)
    };
    let mut result = Due::default();
    for parts in sessions.values() {
        if parts.iter().any(|r| r.lifecycle == Lifecycle::Live) {
            continue;
        }
        if policy.exclude_restricted && parts.iter().any(|r| r.restricted) {
            continue;
        }
        let kept = |r: &&&RetentionCandidate| {
            matches!(r.lifecycle, Lifecycle::Ended | Lifecycle::Archived)
        };
        if let Some(days) = policy.delete_after_days {
            if parts.iter().filter(kept).any(|r| older_than(days, r)) {
                result
                    .to_delete
                    .extend(parts.iter().filter(kept).map(|r| r.recording_id));
                continue;
            }
        }
        if let Some(days) = policy.archive_after_days {
            let ended = |r: &&&RetentionCandidate| r.lifecycle == Lifecycle::Ended;
            if parts.iter().filter(ended).any(|r| older_than(days, r)) {
                result
                    .to_archive
                    .extend(parts.iter().filter(ended).map(|r| r.recording_id));
            }
        }
    }
    result
}

/// A site's retention as its stream folds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Retention {
    pub site_id: Option<Uuid>,
    pub policy: Option<RetentionPolicy>,
    pub last_run: Option<Timestamp>,
}

/// Why a retention command is refused.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum RetentionError {
    #[error("the site has no retention policy")]
    NoPolicy,
    #[error("invalid retention policy: {0}")]
    Invalid(String),
}

impl Coded for RetentionError {
    fn code(&self) -> ErrorCode {
        match self {
            RetentionError::NoPolicy => ErrorCode::NotFound,
            RetentionError::Invalid(_) => ErrorCode::Validation,
        }
    }
}

/// What may be asked of a site's retention.
#[derive(Clone, Debug, PartialEq)]
pub enum RetentionCommand {
    Set {
        site_id: Uuid,
        policy: RetentionPolicy,
        now: Timestamp,
    },
    /// The scheduler finished a run; `held` recordings were due for
    /// deletion but kept by a legal hold.
    CompleteRun {
        archived: u64,
        deleted: u64,
        held: u64,
        now: Timestamp,
    },
}

impl CommandFor for RetentionCommand {
    type Aggregate = Retention;
}

impl Aggregate for Retention {
    type Command = RetentionCommand;
    type Error = RetentionError;
    const STREAM_PREFIX: &'static str = "retention";

    fn decide(&self, command: RetentionCommand) -> Result<Vec<DomainEvent>, RetentionError> {
        match command {
            RetentionCommand::Set {
                site_id,
                policy,
                now,
            } => {
                if let Some(problem) = policy.problem() {
                    return Err(RetentionError::Invalid(problem));
                }
                if self.policy.as_ref() == Some(&policy) {
                    return Ok(vec![]);
                }
                Ok(vec![DomainEvent::RetentionPolicySet {
                    site_id,
                    policy,
                    at: now,
                }])
            }
            RetentionCommand::CompleteRun {
                archived,
                deleted,
                held,
                now,
            } => {
                let site_id = self.site_id.ok_or(RetentionError::NoPolicy)?;
                Ok(vec![DomainEvent::RetentionRunCompletedV2 {
                    site_id,
                    archived,
                    deleted,
                    held,
                    ran_at: now,
                }])
            }
        }
    }

    fn evolve(&mut self, event: &DomainEvent) {
        match event {
            DomainEvent::RetentionPolicySet {
                site_id, policy, ..
            } => {
                self.site_id = Some(*site_id);
                self.policy = Some(policy.clone());
            }
            DomainEvent::RetentionRunCompleted { ran_at, .. }
            | DomainEvent::RetentionRunCompletedV2 { ran_at, .. } => self.last_run = Some(*ran_at),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::testing::fixtures::*;
    use crate::model::testing::given;

    const DAY: i64 = 86_400;

    fn policy(archive: Option<u32>, delete: Option<u32>) -> RetentionPolicy {
        RetentionPolicy {
            archive_after_days: archive,
            delete_after_days: delete,
            run_at: TimeOfDay {
                hour: 2,
                minute: 30,
            },
            exclude_restricted: false,
        }
    }

    fn candidate(
        n: u128,
        session: &str,
        lifecycle: Lifecycle,
        ended_days_ago: Option<i64>,
    ) -> RetentionCandidate {
        RetentionCandidate {
            recording_id: Uuid::from_u128(n),
            server_id: SERVER,
            session_id: session.into(),
            lifecycle,
            ended_at: ended_days_ago.map(|d| now().plus_secs(-d * DAY)),
            restricted: false,
        }
    }

    fn now() -> Timestamp {
        T0.plus_days(100)
    }

    fn ids(ns: &[u128]) -> Vec<Uuid> {
        ns.iter().map(|&n| Uuid::from_u128(n)).collect()
    }

    #[test]
    fn archive_needs_at_least_two_days_and_delete_must_come_later() {
        let set = |p| RetentionCommand::Set {
            site_id: SITE,
            policy: p,
            now: T0,
        };
        given([])
            .when(set(policy(Some(1), None)))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(set(policy(Some(30), Some(30))))
            .then_err_code(ErrorCode::Validation);
        given([])
            .when(set(policy(None, Some(0))))
            .then_err_code(ErrorCode::Validation);
        given([]).when(set(policy(None, Some(7)))).then_ok();
        given([])
            .when(set(policy(Some(2), Some(3))))
            .then([DomainEvent::RetentionPolicySet {
                site_id: SITE,
                policy: policy(Some(2), Some(3)),
                at: T0,
            }]);
    }

    #[test]
    fn setting_the_same_policy_again_writes_nothing() {
        let set = DomainEvent::RetentionPolicySet {
            site_id: SITE,
            policy: policy(Some(2), Some(3)),
            at: T0,
        };
        given([set])
            .when(RetentionCommand::Set {
                site_id: SITE,
                policy: policy(Some(2), Some(3)),
                now: T1,
            })
            .then([]);
    }

    #[test]
    fn a_run_needs_a_policy() {
        given([])
            .when(RetentionCommand::CompleteRun {
                archived: 0,
                deleted: 0,
                held: 0,
                now: T0,
            })
            .then_err(|e| *e == RetentionError::NoPolicy);
    }

    #[test]
    fn a_run_records_what_legal_holds_kept() {
        let set = DomainEvent::RetentionPolicySet {
            site_id: SITE,
            policy: policy(None, Some(1)),
            at: T0,
        };
        given([set.clone()])
            .when(RetentionCommand::CompleteRun {
                archived: 1,
                deleted: 2,
                held: 3,
                now: T1,
            })
            .then([DomainEvent::RetentionRunCompletedV2 {
                site_id: SITE,
                archived: 1,
                deleted: 2,
                held: 3,
                ran_at: T1,
            }]);
        // Runs recorded before legal holds still count as runs.
        let old_run = DomainEvent::RetentionRunCompleted {
            site_id: SITE,
            archived: 0,
            deleted: 0,
            ran_at: T1,
        };
        assert_eq!(
            given([set, old_run]).state::<Retention>().last_run,
            Some(T1)
        );
    }

    #[test]
    fn recordings_are_archived_then_deleted_by_age() {
        let recordings = [
            candidate(1, "a", Lifecycle::Ended, Some(1)),
            candidate(2, "b", Lifecycle::Ended, Some(10)),
            candidate(3, "c", Lifecycle::Archived, Some(40)),
            candidate(4, "d", Lifecycle::Ended, Some(40)),
            candidate(5, "e", Lifecycle::Archived, Some(10)),
        ];
        let result = due(&recordings, &policy(Some(7), Some(30)), now());
        assert_eq!(result.to_archive, ids(&[2]));
        assert_eq!(result.to_delete, ids(&[3, 4]));
    }

    #[test]
    fn the_age_boundary_is_inclusive() {
        let recordings = [candidate(1, "a", Lifecycle::Ended, Some(7))];
        assert_eq!(
            due(&recordings, &policy(Some(7), None), now()).to_archive,
            ids(&[1])
        );
    }

    #[test]
    fn rollover_applies_archive_to_all_recordings_of_the_session() {
        let recordings = [
            candidate(1, "s", Lifecycle::Ended, Some(9)),
            candidate(2, "s", Lifecycle::Ended, Some(1)),
            candidate(3, "t", Lifecycle::Ended, Some(1)),
        ];
        let result = due(&recordings, &policy(Some(7), None), now());
        assert_eq!(result.to_archive, ids(&[1, 2]));
    }

    #[test]
    fn a_session_with_a_live_part_is_never_due() {
        let recordings = [
            candidate(1, "s", Lifecycle::Ended, Some(90)),
            candidate(2, "s", Lifecycle::Live, None),
        ];
        assert_eq!(
            due(&recordings, &policy(Some(7), Some(30)), now()),
            Due::default()
        );
    }

    #[test]
    fn restricted_sessions_can_be_exempt() {
        let mut restricted = candidate(2, "s", Lifecycle::Ended, Some(1));
        restricted.restricted = true;
        let recordings = [candidate(1, "s", Lifecycle::Ended, Some(90)), restricted];
        let mut exempting = policy(Some(7), Some(30));
        assert_eq!(due(&recordings, &exempting, now()).to_delete, ids(&[1, 2]));
        exempting.exclude_restricted = true;
        assert_eq!(due(&recordings, &exempting, now()), Due::default());
    }

    #[test]
    fn deleted_and_declined_recordings_are_left_alone() {
        let recordings = [
            candidate(1, "a", Lifecycle::Deleted, Some(90)),
            candidate(2, "b", Lifecycle::Declined, None),
        ];
        assert_eq!(
            due(&recordings, &policy(Some(7), Some(30)), now()),
            Due::default()
        );
    }

    #[test]
    fn without_archiving_recordings_go_straight_to_deletion() {
        let recordings = [candidate(1, "a", Lifecycle::Ended, Some(8))];
        let result = due(&recordings, &policy(None, Some(7)), now());
        assert_eq!(result.to_delete, ids(&[1]));
        assert!(result.to_archive.is_empty());
    }

    #[test]
    fn the_next_run_is_the_next_run_time_of_day() {
        let p = policy(Some(7), None);
        let midnight = Timestamp::from_secs(DAY * 20_000);
        assert_eq!(
            p.next_run(midnight),
            midnight.plus_secs(2 * 3_600 + 30 * 60)
        );
        let after = midnight.plus_secs(3 * 3_600);
        assert_eq!(
            p.next_run(after),
            midnight.plus_secs(DAY + 2 * 3_600 + 30 * 60)
        );
        assert_eq!(
            TimeOfDay::parse("02:30"),
            Ok(TimeOfDay {
                hour: 2,
                minute: 30
            })
        );
        assert!(TimeOfDay::parse("24:00").is_err());
    }
}
