//! The mutation root. Each mutation checks its input (`VALIDATION`, nothing
//! written), runs one use case of `app::Service` (which checks `may` and
//! records refusals), and returns `position`: the log position of its last
//! event. A payload's entity fields (`site`, `server`, ...) read the read
//! models after waiting for that position, so they show the mutation's effect.

use std::collections::BTreeSet;

use async_graphql::{ComplexObject, Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use srs_domain::app::{ConnectServer, Executed, StartRecordingInput as AppStartRecording};
use srs_domain::model::{self as dm};

use super::context::ContextExt;
use super::convert::{id, int, name, non_negative, text, timestamp, uuid, uuids};
use super::enums::*;
use super::inputs::*;
use super::types::*;
use crate::error::{ApiError, ApiResult};
use crate::state::Services;

pub struct MutationRoot;

/// After a rotation: when `<data>/admin.token` held the rotated secret
/// (the first ADMIN token), the new secret goes there too. A failure is
/// logged: the new secret is in the answer either way.
fn keep_admin_token_file(services: &Services, rotated: &srs_domain::app::RotatedToken) {
    match crate::server::replace_admin_token_file(
        &services.data_dir,
        &rotated.previous_secret_sha256,
        &rotated.secret,
    ) {
        Ok(true) => tracing::info!(
            token_id = %rotated.token_id,
            "the rotated ADMIN token's new secret is in admin.token"
        ),
        Ok(false) => {}
        Err(e) => tracing::warn!(
            error = %e,
            "could not write the rotated ADMIN token to admin.token; it is in the answer only"
        ),
    }
}

fn executed(services: &Services, executed: &Executed) -> i32 {
    if !executed.positions.is_empty() {
        services.metrics.appended();
    }
    int(executed.last_position)
}

fn parse_uuid_field(value: &ID, what: &str) -> ApiResult<uuid::Uuid> {
    uuid(value, what)
}

/// `createSite` result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct SitePayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The site's id.
    pub site_id: ID,
}

#[ComplexObject]
impl SitePayload {
    /// The site, as the read models show it once they caught up.
    async fn site(&self, ctx: &Context<'_>) -> ApiResult<Option<Site>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .servers()?
            .site(parse_uuid_field(&self.site_id, "site")?)?
            .map(Site))
    }
}

/// A server mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ServerPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The server.
    pub server_id: ID,
}

async fn server_after(
    ctx: &Context<'_>,
    position: i32,
    server_id: &ID,
) -> ApiResult<Option<Server>> {
    let services = ctx.services()?;
    services.at_least(Some(position)).await?;
    Ok(services
        .reads
        .servers()?
        .server(parse_uuid_field(server_id, "server")?)?
        .map(Server))
}

#[ComplexObject]
impl ServerPayload {
    /// The server, as the read models show it once they caught up.
    async fn server(&self, ctx: &Context<'_>) -> ApiResult<Option<Server>> {
        server_after(ctx, self.position, &self.server_id).await
    }
    /// The server's settings version after the mutation: an agent whose
    /// `heartbeat` answers a new one fetches `agentConfig`.
    async fn settings_version(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        super::agent::payload_settings_version(ctx, self.position, &self.server_id).await
    }
    /// The tag of the server's configuration (`AgentConfig.configTag`):
    /// it moves when the settings or the site's active policies change
    /// (the server's AGENT, or an ADMIN).
    async fn config_tag(&self, ctx: &Context<'_>) -> ApiResult<String> {
        super::agent::payload_config_tag(ctx, self.position, &self.server_id).await
    }
    /// How many response actions wait for the server's agent (the
    /// server's AGENT, or an ADMIN): fetch them with `pendingResponses`,
    /// or receive them over the `responses` subscription.
    async fn pending_response_count(&self, ctx: &Context<'_>) -> ApiResult<i32> {
        super::agent::payload_pending_count(ctx, self.position, &self.server_id).await
    }
}

/// `connectServer` result: the server and its AGENT token, shown once.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ConnectServerPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The new server's id.
    pub server_id: ID,
    /// The agent's bearer token. Shown once; only its hash is stored.
    pub agent_token: String,
    /// The id of the agent token (in `tokens`; the server's id for its
    /// first token).
    pub agent_token_id: ID,
}

#[ComplexObject]
impl ConnectServerPayload {
    /// The server, as the read models show it once they caught up.
    async fn server(&self, ctx: &Context<'_>) -> ApiResult<Option<Server>> {
        server_after(ctx, self.position, &self.server_id).await
    }
}

/// `installServer` result: the install job and the installer's token, shown once.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct InstallServerPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The server's id.
    pub server_id: ID,
    /// The install job's id.
    pub job_id: Option<ID>,
    /// The installer's (then the agent's) bearer token. Shown once.
    pub agent_token: String,
    /// The id of the agent token (in `tokens`; the server's id for its
    /// first token).
    pub agent_token_id: ID,
}

#[ComplexObject]
impl InstallServerPayload {
    /// The server, as the read models show it once they caught up.
    async fn server(&self, ctx: &Context<'_>) -> ApiResult<Option<Server>> {
        server_after(ctx, self.position, &self.server_id).await
    }
}

/// A policy mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PolicyPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The policy's id.
    pub policy_id: ID,
}

#[ComplexObject]
impl PolicyPayload {
    /// The policy, as the read models show it once they caught up.
    async fn policy(&self, ctx: &Context<'_>) -> ApiResult<Option<Policy>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .policies()?
            .policy(parse_uuid_field(&self.policy_id, "policy")?)?
            .as_ref()
            .map(Policy::from))
    }
}

/// A playback permission mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct PlaybackPermissionPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The permission's id.
    pub permission_id: ID,
}

#[ComplexObject]
impl PlaybackPermissionPayload {
    /// The permission; null once revoked.
    async fn permission(&self, ctx: &Context<'_>) -> ApiResult<Option<PlaybackPermission>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .access()?
            .permission(parse_uuid_field(&self.permission_id, "permission")?)?
            .as_ref()
            .map(PlaybackPermission::from))
    }
}

/// A recording mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RecordingPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The recording's id.
    pub recording_id: ID,
    /// `startRecording`: false when the policy said DO_NOT_RECORD (send nothing further).
    pub recorded: bool,
    /// `startRecording`: why it is (not) recorded.
    pub decision: Option<RecordingDecision>,
    /// `startRecording`: the recording's part (1, or n+1 after a rollover).
    pub part: Option<i32>,
    /// `startRecording`, `endRecording`: the request repeated an earlier
    /// one; nothing new was written and the answer is the earlier one's.
    pub repeated: bool,
}

#[ComplexObject]
impl RecordingPayload {
    /// The recording as the caller may see it (null otherwise).
    async fn recording(&self, ctx: &Context<'_>) -> ApiResult<Option<Recording>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        visible_recording(ctx, parse_uuid_field(&self.recording_id, "recording")?).await
    }
}

/// `recordSessionEvents` result.
#[derive(SimpleObject)]
pub struct RecordSessionEventsPayload {
    /// The log position of the last event written (the recording's last
    /// one when nothing new was written).
    pub position: i32,
    /// Session events newly stored.
    pub accepted: i32,
    /// Session events already stored (or repeated in the batch), skipped.
    pub duplicates: i32,
    /// Session events refused because the site's active event detection
    /// policy does not log their type: never stored, not an error.
    pub ignored: i32,
    /// Detections the new events caused: events a detection rule (or the
    /// monitored applications list) matched.
    pub detections: i32,
    /// Response actions triggered.
    pub responses: i32,
}

/// `setRetentionPolicy` result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RetentionPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The site.
    pub site_id: ID,
}

#[ComplexObject]
impl RetentionPayload {
    /// The policy, as the read models show it once they caught up.
    async fn retention_policy(&self, ctx: &Context<'_>) -> ApiResult<Option<RetentionPolicy>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .policies()?
            .retention(parse_uuid_field(&self.site_id, "site")?)?
            .as_ref()
            .map(RetentionPolicy::from))
    }
}

/// `runRetentionNow` result.
#[derive(SimpleObject)]
pub struct RetentionRunPayload {
    /// The log position of `RetentionRunCompleted`.
    pub position: i32,
    /// The site.
    pub site_id: ID,
    /// Recordings archived by this run.
    pub archived: i32,
    /// Recordings deleted (content keys destroyed) by this run.
    pub deleted: i32,
    /// Recordings due for deletion that legal holds kept (their session
    /// was archived instead when the policy archives).
    pub held: i32,
}

/// A comment mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct CommentPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The comment's id.
    pub comment_id: ID,
}

#[ComplexObject]
impl CommentPayload {
    /// The comment; null once deleted.
    async fn comment(&self, ctx: &Context<'_>) -> ApiResult<Option<Comment>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .comments()?
            .get(parse_uuid_field(&self.comment_id, "comment")?)?
            .as_ref()
            .map(Comment::from))
    }
}

/// A token mutation's result.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct TokenPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The token issued, revoked, or (`rotateToken`) the new one.
    pub token_id: ID,
    /// `issueToken`, `rotateToken`: the bearer secret. Shown once; only
    /// its hash is stored.
    pub secret: Option<String>,
    /// `rotateToken`: the token it revoked.
    pub previous_token_id: Option<ID>,
}

#[ComplexObject]
impl TokenPayload {
    /// The token, as `tokens` lists it after this mutation.
    async fn token(&self, ctx: &Context<'_>) -> ApiResult<Option<Token>> {
        let services = ctx.services()?;
        services.at_least(Some(self.position)).await?;
        Ok(services
            .reads
            .tokens()?
            .token(parse_uuid_field(&self.token_id, "token")?)?
            .map(Token))
    }
}

/// `rotateAgentToken` result: the server's new AGENT token, shown once.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct RotateAgentTokenPayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The server.
    pub server_id: ID,
    /// The new agent token's bearer secret. Shown once; only its hash is stored.
    pub agent_token: String,
    /// The new agent token's id.
    pub agent_token_id: ID,
    /// The agent token it revoked.
    pub previous_token_id: ID,
}

#[ComplexObject]
impl RotateAgentTokenPayload {
    /// The server, as the read models show it once they caught up.
    async fn server(&self, ctx: &Context<'_>) -> ApiResult<Option<Server>> {
        server_after(ctx, self.position, &self.server_id).await
    }
}

/// After a revocation or rotation: the tokens read model has applied it
/// before the answer goes out, so the old secret is refused from then on.
async fn token_change_applied(services: &Services, executed: &Executed) {
    if !executed.positions.is_empty() {
        services.tokens_caught_up(executed.last_position).await;
    }
}

/// `acknowledgeResponse` result.
#[derive(SimpleObject)]
pub struct ResponsePayload {
    /// The log position of the mutation's last event.
    pub position: i32,
    /// The response's id.
    pub response_id: ID,
}

/// What may be changed: every mutation appends events and returns the log position of its last one.
#[Object(name = "Mutation")]
impl MutationRoot {
    /// Creates a site (ADMIN, not scoped to sites).
    async fn create_site(
        &self,
        ctx: &Context<'_>,
        input: CreateSiteInput,
    ) -> ApiResult<SitePayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site_name = name("name", &input.name, &services.limits)?;
        let created = services.service.create_site(caller, &site_name).await?;
        Ok(SitePayload {
            position: executed(services, &created.executed),
            site_id: id(created.id),
        })
    }

    /// Registers a server that is already installed, and returns its AGENT token once.
    async fn connect_server(
        &self,
        ctx: &Context<'_>,
        input: ConnectServerInput,
    ) -> ApiResult<ConnectServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let limits = &services.limits;
        let connect = ConnectServer {
            site_id: uuid(&input.site_id, "site")?,
            name: name("name", &input.name, limits)?,
            host: name("host", &input.host, limits)?,
            deployment: input.deployment.into(),
            version: name("version", &input.version, limits)?,
        };
        let credential = services.service.connect_server(caller, connect).await?;
        Ok(ConnectServerPayload {
            position: executed(services, &credential.executed),
            server_id: id(credential.server_id),
            agent_token: credential.secret,
            agent_token_id: id(credential.server_id),
        })
    }

    /// Asks srs to install a server on `host`; the installer reports progress with the returned token.
    async fn install_server(
        &self,
        ctx: &Context<'_>,
        input: InstallServerInput,
    ) -> ApiResult<InstallServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&input.site_id, "site")?;
        let host = name("host", &input.host, &services.limits)?;
        let options = input
            .options
            .unwrap_or_default()
            .into_domain(&services.limits)?;
        let credential = services
            .service
            .install_server(caller, site, &host, options)
            .await?;
        Ok(InstallServerPayload {
            position: executed(services, &credential.executed),
            server_id: id(credential.server_id),
            job_id: credential.job_id.map(id),
            agent_token: credential.secret,
            agent_token_id: id(credential.server_id),
        })
    }

    /// An install step's progress (AGENT of that server). `step`: QUEUED,
    /// DOWNLOADING, INSTALLING, CONFIGURING or CONNECTED.
    async fn report_install_progress(
        &self,
        ctx: &Context<'_>,
        server_id: ID,
        step: String,
        status: InstallStatus,
        message: Option<String>,
    ) -> ApiResult<ServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        let step: dm::InstallStep = step.parse().map_err(ApiError::validation)?;
        let message = message
            .map(|m| text("message", &m, &services.limits))
            .transpose()?;
        let done = services
            .service
            .report_install_progress(caller, server, step, status.into(), message)
            .await?;
        Ok(ServerPayload {
            position: executed(services, &done),
            server_id,
        })
    }

    /// Changes a server's settings. `expectedVersion` is the server's
    /// `settingsVersion` the change is based on; a stale one is CONFLICT.
    async fn update_server_settings(
        &self,
        ctx: &Context<'_>,
        server_id: ID,
        settings: ServerSettingsInput,
        expected_version: Option<i32>,
    ) -> ApiResult<ServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        let patch = settings.into_domain(&services.limits)?;
        let expected = expected_version
            .map(|v| non_negative(v, "expectedVersion"))
            .transpose()?;
        let done = services
            .service
            .update_server_settings(caller, server, patch, expected)
            .await?;
        Ok(ServerPayload {
            position: executed(services, &done),
            server_id,
        })
    }

    /// Rebuilds the named read models (all when `names` is absent or
    /// empty) from the whole log into fresh trees and swaps each in when
    /// complete; queries keep answering meanwhile (ADMIN).
    async fn rebuild_projections(
        &self,
        ctx: &Context<'_>,
        names: Option<Vec<String>>,
    ) -> ApiResult<super::maintenance::RebuildProjectionsPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        super::maintenance::rebuild_projections(services, caller, names).await
    }

    /// Disconnects a server: its agent token stops working.
    async fn disconnect_server(
        &self,
        ctx: &Context<'_>,
        server_id: ID,
    ) -> ApiResult<ServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        let done = services.service.disconnect_server(caller, server).await?;
        Ok(ServerPayload {
            position: executed(services, &done),
            server_id,
        })
    }

    /// Creates a recording policy on a site (inactive until activated).
    async fn create_recording_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        input: RecordingPolicyInput,
    ) -> ApiResult<PolicyPayload> {
        let services = ctx.services()?;
        let (policy_name, body) = input.into_domain(&services.limits)?;
        create_policy(ctx, &site_id, &policy_name, body).await
    }

    /// Creates an event detection policy on a site (inactive until activated).
    async fn create_event_detection_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        input: EventDetectionPolicyInput,
    ) -> ApiResult<PolicyPayload> {
        let services = ctx.services()?;
        let (policy_name, body) = input.into_domain(&services.limits)?;
        create_policy(ctx, &site_id, &policy_name, body).await
    }

    /// Creates an event response policy on a site (inactive until activated).
    async fn create_event_response_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        input: EventResponsePolicyInput,
    ) -> ApiResult<PolicyPayload> {
        let services = ctx.services()?;
        let (policy_name, body) = input.into_domain(&services.limits)?;
        create_policy(ctx, &site_id, &policy_name, body).await
    }

    /// Replaces a policy's name and rules. `expectedVersion` is the
    /// policy's `version`; a stale one is CONFLICT.
    async fn update_policy(
        &self,
        ctx: &Context<'_>,
        policy_id: ID,
        input: PolicyUpdateInput,
        expected_version: Option<i32>,
    ) -> ApiResult<PolicyPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let policy = uuid(&policy_id, "policy")?;
        let (policy_name, body) = input.into_domain(&services.limits)?;
        let expected = expected_version
            .map(|v| non_negative(v, "expectedVersion"))
            .transpose()?;
        let done = services
            .service
            .update_policy(caller, policy, &policy_name, body, expected)
            .await?;
        Ok(PolicyPayload {
            position: executed(services, &done),
            policy_id,
        })
    }

    /// Makes a policy its site's active one of its kind. `siteId` is
    /// needed for system policies (they belong to every site).
    async fn activate_policy(
        &self,
        ctx: &Context<'_>,
        policy_id: ID,
        site_id: Option<ID>,
    ) -> ApiResult<PolicyPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let policy = uuid(&policy_id, "policy")?;
        let site = site_id.as_ref().map(|s| uuid(s, "site")).transpose()?;
        let done = services
            .service
            .activate_policy(caller, policy, site)
            .await?;
        Ok(PolicyPayload {
            position: executed(services, &done),
            policy_id,
        })
    }

    /// Deletes a policy that is not active.
    async fn delete_policy(&self, ctx: &Context<'_>, policy_id: ID) -> ApiResult<PolicyPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let policy = uuid(&policy_id, "policy")?;
        let done = services.service.delete_policy(caller, policy).await?;
        Ok(PolicyPayload {
            position: executed(services, &done),
            policy_id,
        })
    }

    /// Grants a principal (a token's name, a group, or one token as
    /// `token:<id>`) seeing and playing a site's unrestricted recordings
    /// within a scope: the whole site (`scope: {wholeSite: true}`) or the
    /// recordings matching its criteria. An AUDITOR sees only what its
    /// permissions grant, so this is how it sees anything at all.
    async fn grant_playback_permission(
        &self,
        ctx: &Context<'_>,
        input: GrantPlaybackPermissionInput,
    ) -> ApiResult<PlaybackPermissionPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&input.site_id, "site")?;
        let principal = name("principal", &input.principal, &services.limits)?;
        let scope = input.scope.into_domain(&services.limits)?;
        let created = services
            .service
            .grant_playback_permission(caller, site, &principal, scope)
            .await?;
        Ok(PlaybackPermissionPayload {
            position: executed(services, &created.executed),
            permission_id: id(created.id),
        })
    }

    /// Revokes a playback permission. Its holder then sees what its other
    /// permissions grant, never more (no permission left: nothing).
    async fn revoke_playback_permission(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> ApiResult<PlaybackPermissionPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let permission = uuid(&id, "permission")?;
        let done = services
            .service
            .revoke_playback_permission(caller, permission)
            .await?;
        Ok(PlaybackPermissionPayload {
            position: executed(services, &done),
            permission_id: id,
        })
    }

    /// Restricts a recording, live ones too: from then on only ADMIN and
    /// PRIVILEGED_PLAYER see it. An AUDITOR restricts what it sees.
    async fn restrict_recording(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        reason: String,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let reason = name("reason", &reason, &services.limits)?;
        let done = services
            .service
            .restrict_recording(caller, recording, &reason)
            .await?;
        Ok(recording_payload(services, &done, recording_id))
    }

    /// Lifts a recording's restriction. Only who may play the recording
    /// with the restriction as the only obstacle may: ADMIN and
    /// PRIVILEGED_PLAYER; an AUDITOR only where one of its own playback
    /// permissions admits the recording (and it is not archived). To an
    /// AUDITOR whose permissions do not admit it the recording answers
    /// `NOT_FOUND`, as an absent one.
    async fn remove_recording_restriction(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        reason: String,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let reason = name("reason", &reason, &services.limits)?;
        let done = services
            .service
            .remove_recording_restriction(caller, recording, &reason)
            .await?;
        Ok(recording_payload(services, &done, recording_id))
    }

    /// Sets when a site's recordings are archived and deleted.
    async fn set_retention_policy(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
        input: RetentionPolicyInput,
    ) -> ApiResult<RetentionPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        let policy = input.into_domain()?;
        let done = services
            .service
            .set_retention_policy(caller, site, policy)
            .await?;
        Ok(RetentionPayload {
            position: executed(services, &done),
            site_id,
        })
    }

    /// Runs a site's retention policy now (ADMIN), as the daily run would:
    /// archives and deletes what is due, then records the run.
    async fn run_retention_now(
        &self,
        ctx: &Context<'_>,
        site_id: ID,
    ) -> ApiResult<RetentionRunPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let site = uuid(&site_id, "site")?;
        services
            .service
            .authorize(caller, dm::Action::ManageRetention, dm::Target::Site(site))
            .await?;
        let run = crate::retention::run_site(services, site).await?;
        services.metrics.appended();
        Ok(RetentionRunPayload {
            position: int(run.position),
            site_id,
            archived: int(run.archived),
            deleted: int(run.deleted),
            held: int(run.held),
        })
    }

    /// Plays a recording: records a `RecordingPlayed` fact naming the
    /// caller (one per caller, recording and minute) and returns the
    /// playback with what only an audited playback hands out: `position`
    /// (of that fact) and a ticket (`ticketUrl`, `ticketExpiresAt`) that
    /// opens the content without a bearer header; GETs by that ticket are
    /// this playback and record nothing more. Whoever may not see the
    /// recording gets NOT_FOUND, whoever sees but may not play it
    /// FORBIDDEN (both recorded). Within one request a recording is played
    /// once: every `playRecording` of it (aliases included) shares that one
    /// fact, position and answer.
    async fn play_recording(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The recording to play.")] recording_id: ID,
    ) -> ApiResult<std::sync::Arc<Playback>> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        Box::pin(super::scope::play_once(recording, || {
            play(services, caller, recording)
        }))
        .await
    }

    /// Comments on a recording, optionally at an offset (ms from its start).
    /// `text`: 1 to 4096 characters, lines allowed, no other control
    /// characters; longer is VALIDATION (nothing is cut).
    async fn add_comment(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        text: String,
        severity: Option<CommentSeverity>,
        offset_ms: Option<i32>,
    ) -> ApiResult<CommentPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let body = super::convert::comment("text", &text)?;
        let offset = offset_ms.map(|o| non_negative(o, "offsetMs")).transpose()?;
        let created = services
            .service
            .add_comment(
                caller,
                recording,
                &body,
                severity.map_or(dm::CommentSeverity::Normal, Into::into),
                offset,
            )
            .await?;
        Ok(CommentPayload {
            position: executed(services, &created.executed),
            comment_id: id(created.id),
        })
    }

    /// Deletes a comment (its author or an ADMIN).
    async fn delete_comment(&self, ctx: &Context<'_>, comment_id: ID) -> ApiResult<CommentPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let comment = uuid(&comment_id, "comment")?;
        let done = services.service.delete_comment(caller, comment).await?;
        Ok(CommentPayload {
            position: executed(services, &done),
            comment_id,
        })
    }

    /// Issues a token to a principal (`name`); the secret is returned once.
    /// `expiresAt`: when it stops authenticating (then `UNAUTHENTICATED`,
    /// saying it expired); in the future and at most ten years ahead.
    async fn issue_token(
        &self,
        ctx: &Context<'_>,
        input: IssueTokenInput,
    ) -> ApiResult<TokenPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let token_name = name("name", &input.name, &services.limits)?;
        let sites: BTreeSet<uuid::Uuid> = uuids(&input.site_ids.unwrap_or_default(), "site")?
            .into_iter()
            .collect();
        let groups = super::convert::names(
            "groups",
            &input.groups.unwrap_or_default(),
            &services.limits,
        )?;
        let issued = services
            .service
            .issue_token(
                caller,
                &token_name,
                input.role.into(),
                sites,
                groups,
                input.expires_at.map(timestamp),
            )
            .await?;
        Ok(TokenPayload {
            position: executed(services, &issued.executed),
            token_id: id(issued.token_id),
            secret: Some(issued.secret),
            previous_token_id: None,
        })
    }

    /// Revokes a token: it stops authenticating once this answers, and
    /// the WebSockets opened with it close (4403). Revoking one's own
    /// token is allowed (this request still answers). An AGENT token is
    /// not revoked here (`VALIDATION`): disconnect its server or rotate it.
    async fn revoke_token(&self, ctx: &Context<'_>, id: ID) -> ApiResult<TokenPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let token = uuid(&id, "token")?;
        let done = services.service.revoke_token(caller, token).await?;
        token_change_applied(services, &done).await;
        Ok(TokenPayload {
            position: executed(services, &done),
            token_id: id,
            secret: None,
            previous_token_id: None,
        })
    }

    /// Replaces a token (ADMIN not scoped to sites): revokes it and issues
    /// its successor (same name, role, sites, groups) with a new secret,
    /// returned once, in one event: the old secret is refused once this
    /// answers and its WebSockets close (4403). The successor keeps the
    /// expiry unless `expiresAt` gives a new one (an expired token needs
    /// one). Any token: the first ADMIN token too (when
    /// `<data>/admin.token` holds the rotated secret, the new one is
    /// written there as well), one's own too (this request still answers;
    /// the next needs the new secret), and an AGENT token (as
    /// `rotateAgentToken`; no `expiresAt`).
    async fn rotate_token(
        &self,
        ctx: &Context<'_>,
        id: ID,
        expires_at: Option<DateTime<Utc>>,
    ) -> ApiResult<TokenPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let token = uuid(&id, "token")?;
        let rotated = services
            .service
            .rotate_token(caller, token, expires_at.map(timestamp))
            .await?;
        token_change_applied(services, &rotated.executed).await;
        keep_admin_token_file(services, &rotated);
        Ok(TokenPayload {
            position: executed(services, &rotated.executed),
            token_id: super::convert::id(rotated.token_id),
            secret: Some(rotated.secret),
            previous_token_id: Some(super::convert::id(rotated.previous_token_id)),
        })
    }

    /// A new AGENT token for a server (ADMIN of its site), returned once;
    /// the old one is revoked by the same event: refused once this
    /// answers, its WebSockets closed (4403). A disconnected server's
    /// token is not rotated (`VALIDATION`).
    async fn rotate_agent_token(
        &self,
        ctx: &Context<'_>,
        server_id: ID,
    ) -> ApiResult<RotateAgentTokenPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        let rotated = services.service.rotate_agent_token(caller, server).await?;
        token_change_applied(services, &rotated.executed).await;
        Ok(RotateAgentTokenPayload {
            position: executed(services, &rotated.executed),
            server_id,
            agent_token: rotated.secret,
            agent_token_id: id(rotated.token_id),
            previous_token_id: id(rotated.previous_token_id),
        })
    }

    /// The server is alive (its AGENT). Not an event (but for a server
    /// coming back online); `Server.lastHeartbeat` shows it. The answer
    /// carries what the agent checks on every beat: `settingsVersion`,
    /// `configTag` and `pendingResponseCount`.
    async fn heartbeat(&self, ctx: &Context<'_>, server_id: ID) -> ApiResult<ServerPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let server = uuid(&server_id, "server")?;
        let done = services.service.heartbeat(caller, server).await?;
        super::agent::heartbeat_seen(services, server);
        Ok(ServerPayload {
            position: executed(services, &done),
            server_id,
        })
    }

    /// A session started on the server (its AGENT): the site's recording
    /// policy decides whether and how it is recorded. Repeating a start
    /// (same server and session) returns the same recording.
    async fn start_recording(
        &self,
        ctx: &Context<'_>,
        input: StartRecordingInput,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let start = AppStartRecording {
            server_id: uuid(&input.server_id, "server")?,
            session_id: name("sessionId", &input.session_id, &services.limits)?,
            session: input.session.into_domain(&services.limits)?,
            started_at: input.started_at.map(timestamp),
        };
        let started = services.service.start_recording(caller, start).await?;
        Ok(RecordingPayload {
            position: executed(services, &started.executed),
            recording_id: id(started.recording_id),
            recorded: started.recorded,
            decision: started.decision.as_ref().map(RecordingDecision::from),
            part: Some(int(u64::from(started.part))),
            repeated: started.repeated,
        })
    }

    /// A batch of session events (its AGENT), at most 1000; events whose id
    /// is already stored are skipped, so a retried batch is harmless.
    /// Events of types the site's active event detection policy does not
    /// log are refused one by one and counted in `ignored`.
    async fn record_session_events(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        events: Vec<SessionEventInput>,
    ) -> ApiResult<RecordSessionEventsPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let events = events
            .into_iter()
            .map(|e| e.into_domain(&services.limits))
            .collect::<ApiResult<Vec<_>>>()?;
        let recorded = services
            .service
            .record_session_events(caller, recording, events)
            .await?;
        Ok(RecordSessionEventsPayload {
            position: executed(services, &recorded.executed),
            accepted: int(recorded.accepted as u64),
            duplicates: int(recorded.duplicates as u64),
            ignored: int(recorded.ignored as u64),
            detections: int(recorded.detections as u64),
            responses: int(recorded.responses as u64),
        })
    }

    /// The session ended (its AGENT). Idempotent: a retry (after the
    /// recording ended, or was archived) writes nothing and answers the
    /// first end's position, with `repeated: true`.
    async fn end_recording(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
        #[graphql(desc = "When the session ended, if not now (an agent catching up).")]
        ended_at: Option<DateTime<Utc>>,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let done = services
            .service
            .end_recording(caller, recording, ended_at.map(Into::into))
            .await?;
        Ok(RecordingPayload {
            repeated: done.deduplicated,
            ..recording_payload(services, &done, recording_id)
        })
    }

    /// The agent carried out (or failed) a response action.
    async fn acknowledge_response(
        &self,
        ctx: &Context<'_>,
        response_id: ID,
        outcome: String,
    ) -> ApiResult<ResponsePayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let response = uuid(&response_id, "response")?;
        let outcome = name("outcome", &outcome, &services.limits)?;
        let done = services
            .service
            .acknowledge_response(caller, response, &outcome)
            .await?;
        Ok(ResponsePayload {
            position: executed(services, &done),
            response_id,
        })
    }

    /// Places a legal hold (ADMIN of the site): the recordings it covers
    /// cannot be deleted, by `deleteRecording` (`CONFLICT`, naming the
    /// hold) or by retention (counted as `held`), until it is released.
    /// Archiving is still allowed.
    async fn place_legal_hold(
        &self,
        ctx: &Context<'_>,
        input: super::holds::PlaceLegalHoldInput,
    ) -> ApiResult<super::holds::LegalHoldPayload> {
        super::holds::place_legal_hold(ctx, input).await
    }

    /// Releases an active legal hold (ADMIN of its site); `reason` is
    /// optional (one line, up to 1024 characters). Releasing a released
    /// hold is `VALIDATION`; an unknown one (or one the caller may not
    /// read) `NOT_FOUND`.
    async fn release_legal_hold(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: Option<String>,
    ) -> ApiResult<super::holds::LegalHoldPayload> {
        super::holds::release_legal_hold(ctx, id, reason).await
    }

    /// Archives a recording and the rest of its session (ADMIN).
    async fn archive_recording(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let done = services
            .service
            .archive_recording(caller, recording)
            .await?;
        settle_content(services, &done).await?;
        Ok(recording_payload(services, &done, recording_id))
    }

    /// Restores an archived recording and the rest of its session (ADMIN).
    async fn restore_recording(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let done = services
            .service
            .restore_recording(caller, recording)
            .await?;
        settle_content(services, &done).await?;
        Ok(recording_payload(services, &done, recording_id))
    }

    /// Deletes a recording and the rest of its session (ADMIN): its content
    /// key is destroyed; the facts stay in the log. Refused with `CONFLICT`
    /// (the message names the hold) while a legal hold covers any part of
    /// the session.
    async fn delete_recording(
        &self,
        ctx: &Context<'_>,
        recording_id: ID,
    ) -> ApiResult<RecordingPayload> {
        let (services, caller) = (ctx.services()?, ctx.caller()?);
        let recording = uuid(&recording_id, "recording")?;
        let done = services.service.delete_recording(caller, recording).await?;
        settle_content(services, &done).await?;
        Ok(recording_payload(services, &done, recording_id))
    }
}

/// Answers a lifecycle move only once the content store has followed it
/// (chunks moved, or the key destroyed).
async fn settle_content(services: &Services, done: &Executed) -> ApiResult<()> {
    if services
        .content_effects
        .settled(done.last_position, crate::content::SETTLE_TIMEOUT)
        .await
    {
        Ok(())
    } else {
        Err(ApiError::timeout(
            "the content store did not follow in time; it will catch up",
        ))
    }
}

fn recording_payload(services: &Services, done: &Executed, recording_id: ID) -> RecordingPayload {
    RecordingPayload {
        position: executed(services, done),
        recording_id,
        recorded: true,
        decision: None,
        part: None,
        repeated: false,
    }
}

async fn create_policy(
    ctx: &Context<'_>,
    site_id: &ID,
    policy_name: &str,
    body: dm::PolicyBody,
) -> ApiResult<PolicyPayload> {
    let (services, caller) = (ctx.services()?, ctx.caller()?);
    let site = uuid(site_id, "site")?;
    let created = services
        .service
        .create_policy(caller, site, policy_name, body)
        .await?;
    Ok(PolicyPayload {
        position: executed(services, &created.executed),
        policy_id: id(created.id),
    })
}

/// `playRecording`: the playback fact, then the timeline and a ticket.
async fn play(
    services: &Services,
    caller: &dm::Principal,
    recording: uuid::Uuid,
) -> ApiResult<Playback> {
    let played = services
        .service
        .record_played(caller, recording, dm::PlaybackKind::Play)
        .await?;
    if !played.positions.is_empty() && !played.deduplicated {
        services.metrics.appended();
    }
    // A playable recording is not deleted; whether it is still live is
    // the aggregate's word (the read models may not have its start yet).
    let live = services
        .service
        .load::<dm::Recording>(recording)
        .await?
        .state
        .lifecycle
        == dm::Lifecycle::Live;
    let timeline =
        crate::read::playback::timeline(services, recording, played.last_position).await?;
    let expires = crate::content::ticket_expiry(services.service.now());
    let ticket = PlaybackTicket {
        position: played.last_position,
        ticket: services.tickets.issue(recording, caller.token_id, expires),
        expires,
    };
    Ok(Playback::new(
        services,
        recording,
        live,
        false,
        &timeline,
        Some(ticket),
    ))
}
