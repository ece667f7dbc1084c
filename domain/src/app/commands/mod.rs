//! The use cases the API calls, one method each. Every method that acts for
//! a principal checks `may` first (a refusal is recorded as
//! `AccessDenied`), loads the facts the command needs from other
//! aggregates, and runs the command through `execute`.
//!
//! One module per aggregate, each holding that aggregate's commands:
//! `site`, `server`, `policy`, `permission`, `ingest` (a recording as its
//! server's AGENT writes it), `recording` (what people do to a recording),
//! `content`, `retention`, `hold`, `token`. This module keeps what they
//! share: who may know that a recording or server exists, and loading one.
//!
//! # No existence oracle
//!
//! A recording (or server) id the caller may not see gets the same answer
//! whether it exists, was deleted, or never existed: `NOT_FOUND` with
//! `recording <id> not found` (`server <id> not found`), on every use case
//! that takes the id. "May see" is `ViewRecording` on the recording (its
//! server's AGENT sees its own recordings) and `ReadServerStatus` on a
//! server (an AGENT sees only its own). Only a caller who may see it learns
//! more: that it was deleted, or that its role may not do this
//! (`FORBIDDEN`). An attempt on an id the caller may not see is recorded as
//! `AccessDenied` whether or not the id exists (without a site when it
//! does not), so neither the answer nor the time it takes tells the cases
//! apart; callers who see every recording (or server) of every site simply
//! get `NOT_FOUND` for an absent id.
//!
//! # Playback facts
//!
//! [`Service::record_played`] records at most one `RecordingPlayed` per
//! principal (token), recording, kind and minute: its log id is derived
//! from those, and it is appended without an expected version, so parallel
//! `Range` requests of one player never conflict and the log's idempotency
//! by event id makes a burst of them one fact (the same id twice in one
//! group commit, or in two groups, is stored once and both are answered
//! with its position). A `recordingEvents` subscription is one such fact
//! of kind `Live` when it starts, refused (and recorded as a refusal) when
//! the recording's server has `livePlaybackEnabled: false`.
//!
//! # Legal holds
//!
//! Only an ADMIN (of the hold's site) places and releases holds. A hold
//! on recordings names recordings of one site that exist and are not
//! deleted; an id the caller may not see is `NOT_FOUND` as everywhere. A
//! deletion (`deleteRecording` or retention) loads the holds, refuses a
//! session any part of which is held (`CONFLICT`, naming the hold), and
//! appends each `RecordingDeleted` guarded by the holds stream's version
//! (see `model::hold`): a hold placed meanwhile makes the append fail, and
//! the deletion is decided again on the holds as they now are.

use rand::rngs::OsRng;
use rand::RngCore;
use uuid::Uuid;

use crate::actor::Actor;
use crate::app::error::AppError;
use crate::app::service::{Executed, Loaded, Service};
use crate::model::{
    can_view_recording, may, Action, Lifecycle, PlaybackScope, Principal, Recording,
    RecordingError, RecordingFacts as Facts, RecordingFacts, Role, Server, ServerError, Site,
    SiteError, Target,
};

mod content;
mod hold;
mod ingest;
mod permission;
mod policy;
mod recording;
mod retention;
mod server;
mod site;
mod token;

pub use content::ContentTarget;
pub use ingest::{RecordedEvents, StartRecordingInput, StartedRecording, MAX_PARTS};
pub use policy::ActivePolicies;
pub use recording::PLAYBACK_WINDOW_SECS;
pub use server::{ConnectServer, ServerCredential};
pub use token::{bootstrap_token_id, IssuedToken, RotatedToken};

/// A new aggregate and what creating it did.
#[derive(Clone, Debug, PartialEq)]
pub struct Created {
    pub id: Uuid,
    pub executed: Executed,
}

/// A fresh secret: 32 random bytes from the OS, hex, with a prefix that
/// secret scanners can recognise.
pub(super) fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("srs_{}", hex::encode(bytes))
}

pub(super) fn not_found(what: &str, id: Uuid) -> AppError {
    AppError::NotFound(format!("{what} {id} not found"))
}

/// Whether `by` sees every recording of every site (an unscoped ADMIN or
/// PRIVILEGED_PLAYER): an absent id is then simply absent.
pub(super) fn sees_all_recordings(by: &Principal) -> bool {
    may(by, Action::ViewRecording, Target::Global)
}

/// Whether `by` sees every server of every site.
pub(super) fn sees_all_servers(by: &Principal) -> bool {
    may(by, Action::ReadServerStatus, Target::Global)
}

/// Whether `by` may know that the recording exists: `ViewRecording`, or
/// being its server's AGENT. A declined session has no recording anyone
/// lists: only its AGENT and ADMINs know it.
pub(super) fn sees_recording(
    by: &Principal,
    facts: &Facts,
    grants: &[PlaybackScope],
    declined: bool,
) -> bool {
    let target = Target::Recording {
        recording: facts,
        grants,
    };
    if may(by, Action::Ingest, target) {
        return true;
    }
    if declined {
        return by.role == Role::Admin && by.covers_site(facts.site_id);
    }
    can_view_recording(by, facts, grants)
}

/// Whether `by` may know that the server exists.
pub(super) fn sees_server(by: &Principal, site_id: Uuid, server_id: Uuid) -> bool {
    let target = Target::Server { site_id, server_id };
    may(by, Action::ReadServerStatus, target) || may(by, Action::Heartbeat, target)
}

impl Service {
    pub(super) fn principal_actor(by: &Principal) -> Actor {
        by.actor()
    }

    pub(super) async fn site(&self, site_id: Uuid) -> Result<Loaded<Site>, AppError> {
        let site = self.load::<Site>(site_id).await?;
        if site.state.id.is_none() {
            return Err(SiteError::NotFound.into());
        }
        Ok(site)
    }

    pub(super) async fn server(&self, server_id: Uuid) -> Result<(Loaded<Server>, Uuid), AppError> {
        let server = self.load::<Server>(server_id).await?;
        let site_id = server.state.site_id.ok_or(ServerError::NotFound)?;
        Ok((server, site_id))
    }

    /// Server `server_id` once `by` may know it exists; otherwise (absent
    /// too) `NOT_FOUND` `server <id> not found`, the attempt recorded.
    pub(super) async fn server_for(
        &self,
        by: &Principal,
        action: Action,
        server_id: Uuid,
    ) -> Result<(Loaded<Server>, Uuid), AppError> {
        let server = self.load::<Server>(server_id).await?;
        let site_id = self
            .known_server(by, action, server_id, server.state.site_id)
            .await?;
        Ok((server, site_id))
    }

    /// Whether `by` may know that server `server_id` exists, given its site
    /// (`None`: it does not exist), for use cases and for the API's reads
    /// of servers from read models: its site when it may; otherwise the
    /// `NOT_FOUND` an absent server gets, the attempt recorded (see the
    /// module docs).
    pub async fn known_server(
        &self,
        by: &Principal,
        action: Action,
        server_id: Uuid,
        site_id: Option<Uuid>,
    ) -> Result<Uuid, AppError> {
        match site_id {
            Some(site_id) if sees_server(by, site_id, server_id) => return Ok(site_id),
            None if sees_all_servers(by) => return Err(not_found("server", server_id)),
            _ => {}
        }
        let _ = self
            .deny(by, action, &format!("server:{server_id}"), site_id)
            .await;
        Err(not_found("server", server_id))
    }

    /// Recording `recording_id` once `by` may know it exists, with the
    /// scopes of `by`'s permissions on its site; otherwise (absent or
    /// deleted too) `NOT_FOUND` `recording <id> not found`, the attempt
    /// recorded. `as_unrestricted` judges visibility as if the recording
    /// were not restricted (who may lift a restriction).
    pub(super) async fn recording_for(
        &self,
        by: &Principal,
        action: Action,
        recording_id: Uuid,
        as_unrestricted: bool,
    ) -> Result<(Loaded<Recording>, Facts, Vec<PlaybackScope>), AppError> {
        let recording = self.load::<Recording>(recording_id).await?;
        let label = format!("recording:{recording_id}");
        let Some(facts) = recording.state.facts() else {
            if !sees_all_recordings(by) {
                let _ = self.deny(by, action, &label, None).await;
            }
            return Err(not_found("recording", recording_id));
        };
        let grants = self.permissions.grants(by, facts.site_id).await?;
        let judged = Facts {
            restricted: facts.restricted && !as_unrestricted,
            ..facts.clone()
        };
        let declined = recording.state.lifecycle == Lifecycle::Declined;
        if !sees_recording(by, &judged, &grants, declined) {
            let _ = self.deny(by, action, &label, Some(facts.site_id)).await;
            return Err(not_found("recording", recording_id));
        }
        Ok((recording, facts, grants))
    }

    /// Recording `recording_id` as its server's AGENT may write to it:
    /// known to `by` ([`Service::recording_for`]) and `Ingest` allowed on
    /// it; otherwise the refusal, recorded.
    pub(super) async fn ingest_target(
        &self,
        by: &Principal,
        recording_id: Uuid,
    ) -> Result<(Loaded<Recording>, Facts), AppError> {
        let (recording, facts, _) = self
            .recording_for(by, Action::Ingest, recording_id, false)
            .await?;
        self.authorize(
            by,
            Action::Ingest,
            Target::Recording {
                recording: &facts,
                grants: &[],
            },
        )
        .await?;
        Ok((recording, facts))
    }

    pub(super) async fn recording(
        &self,
        recording_id: Uuid,
    ) -> Result<(Loaded<Recording>, RecordingFacts), AppError> {
        let recording = self.load::<Recording>(recording_id).await?;
        let facts = recording.state.facts().ok_or(RecordingError::NotFound)?;
        Ok((recording, facts))
    }
}
