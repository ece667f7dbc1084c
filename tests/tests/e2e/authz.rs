//! The authorization matrix: every query, mutation and subscription of the
//! schema x every kind of caller (each role, an agent of another server, an
//! ADMIN scoped to the shared site, an ADMIN scoped to another site, no
//! token), table-driven. An ADMIN scoped to sites runs what is aimed at its
//! sites and nothing global (`verify`, `rebuildProjections`, `auditTrail` of
//! every site, `projections`, tokens, new sites, the `log`); its `history`
//! without a site is that of its sites (as a scoped AUDITOR's).
//!
//! A cell is either allowed or denied, and both are checked precisely:
//! - allowed: the operation succeeds (no error at all; each row gets fresh
//!   targets where an earlier caller's success would change the answer);
//! - denied: the first error is `FORBIDDEN`, and the log gained nothing but
//!   the `AccessDenied` fact recording the refusal (no effect of the
//!   operation itself); when the target is a recording or server the
//!   caller may not even see (another site's, another server's, a VIEWER's
//!   view of a recording), the error is `NOT_FOUND` instead, the answer an
//!   absent one gets (see `existence.rs`), still recorded as one refusal fact (the server runs with a rate of
//!   refusal facts high enough that every refusal of the matrix is written);
//! - no token: `UNAUTHENTICATED`, and the log gained nothing at all.
//!
//! An AUDITOR sees and plays only what a playback permission grants: the
//! `auditor` column holds a whole-site permission on the shared site, the
//! `auditor_no_grant` column none at all, so every recording is to it as an
//! absent one (`NOT_FOUND` on recording mutations, null or nothing in
//! reads), and it may not lift a restriction (the bug where an auditor
//! without a permission lifted an ADMIN's restriction on a recording it
//! could not see).
//!
//! Events the server's own scheduler may append meanwhile (actor
//! `system:...`) are not the caller's doing and are ignored.
//!
//! Left out of the matrix: nothing of the schema's `Query`, `Mutation` and
//! `Subscription` roots; of the field-level checks, `Recording.playback`
//! (a read; `playRecording` is the playback) and `Recording.legalHolds` are rows; `Site.servers` and
//! `Server.settings` repeat the `servers` and `policies` rules. The HTTP
//! routes `POST /backup` and `GET /log/export` have their per-caller
//! table in `backup.rs`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::fixtures::*;
use crate::common::{Client, Srs};

/// The callers of the matrix, in column order.
const CALLERS: [&str; 10] = [
    "admin",
    "site_admin",
    "privileged",
    "auditor",
    "auditor_no_grant",
    "viewer",
    "agent",
    "other_agent",
    "other_site_admin",
    "anonymous",
];

/// One row: an operation, the callers allowed to run it, and what fresh
/// target each caller's attempt needs.
struct Row {
    name: &'static str,
    query: &'static str,
    allowed: &'static [&'static str],
    fixture: Fixture,
}

/// A fresh target made (by the admin, or the agent for recordings) before
/// each cell, passed as `$target` (or `$server`), so that one caller's
/// success does not change what the next caller meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fixture {
    /// The shared site, server and recording only.
    Shared,
    /// A live recording on the shared server.
    Recording,
    /// An ended recording.
    EndedRecording,
    /// An ended, archived recording.
    ArchivedRecording,
    /// An ended, restricted recording.
    RestrictedRecording,
    /// A live, restricted recording.
    LiveRestrictedRecording,
    /// An inactive recording policy of the shared site.
    Policy,
    /// An unrevoked VIEWER token.
    Token,
    /// A playback permission on the shared site.
    Permission,
    /// A comment by the admin on the shared recording.
    Comment,
    /// A pending response action on the shared server.
    Response,
    /// A second server of the shared site, as `$server`.
    Server,
    /// A server being installed, as `$server`; the `agent` column uses its
    /// installer token (the agent of *that* server).
    InstalledServer,
    /// An active legal hold on a fresh ended recording.
    LegalHold,
}

const ALL_SIGNED_IN: &[&str] = &[
    "admin",
    "site_admin",
    "privileged",
    "auditor",
    "auditor_no_grant",
    "viewer",
    "agent",
    "other_agent",
    "other_site_admin",
];
const STATUS_READERS: &[&str] = &[
    "admin",
    "site_admin",
    "privileged",
    "auditor",
    "auditor_no_grant",
    "viewer",
    "other_site_admin",
];
/// Who may ask for recordings: the ones it may not see answer null (the
/// other site's admin, an auditor without a permission).
const RECORDING_READERS: &[&str] = &[
    "admin",
    "site_admin",
    "privileged",
    "auditor",
    "auditor_no_grant",
    "other_site_admin",
];
/// Who may act on a recording it sees (comment, restrict).
const RECORDING_ACTORS: &[&str] = &["admin", "site_admin", "privileged", "auditor"];
/// Reading configuration of the shared site.
const CONFIG_READERS: &[&str] = &["admin", "site_admin", "auditor", "auditor_no_grant"];
/// Reading configuration of every site.
const GLOBAL_CONFIG_READERS: &[&str] = &["admin", "auditor", "auditor_no_grant"];
/// The history of every site in the caller's scope: the whole log for an
/// unscoped caller, its sites' events for a scoped one.
const HISTORY_READERS: &[&str] = &[
    "admin",
    "site_admin",
    "auditor",
    "auditor_no_grant",
    "other_site_admin",
];
/// ADMIN operations aimed at the shared site.
const ADMIN: &[&str] = &["admin", "site_admin"];
/// ADMIN operations on every site at once.
const GLOBAL_ADMIN: &[&str] = &["admin"];
const AGENT: &[&str] = &["agent"];

fn rows() -> Vec<Row> {
    vec![
        Row { name: "me", query: "{ me { name } }", allowed: ALL_SIGNED_IN, fixture: Fixture::Shared },
        Row { name: "sites", query: "{ sites { id } }", allowed: STATUS_READERS, fixture: Fixture::Shared },
        Row { name: "servers", query: "{ servers { id } }", allowed: STATUS_READERS, fixture: Fixture::Shared },
        Row {
            name: "server",
            query: "query($server: ID!) { server(id: $server) { id } }",
            allowed: &["admin", "site_admin", "privileged", "auditor", "auditor_no_grant", "viewer", "other_agent", "other_site_admin"],
            fixture: Fixture::Shared,
        },
        Row { name: "recordings", query: "{ recordings { edges { cursor } } }", allowed: RECORDING_READERS, fixture: Fixture::Shared },
        Row {
            name: "recording",
            query: "query($recording: ID!) { recording(id: $recording) { id } }",
            allowed: RECORDING_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "policies",
            query: "query($site: ID!) { policies(siteId: $site) { recording { active { id } } } }",
            allowed: CONFIG_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "evaluateRecordingPolicy",
            query: "query($site: ID!) { evaluateRecordingPolicy(siteId: $site, session: {user: \"u\", host: \"h\"}) { action } }",
            allowed: CONFIG_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "playbackPermissions",
            query: "query($site: ID!) { playbackPermissions(siteId: $site) { id } }",
            allowed: CONFIG_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "retentionPolicy",
            query: "query($site: ID!) { retentionPolicy(siteId: $site) { runAt } }",
            allowed: CONFIG_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "dashboard",
            query: "query($site: ID!) { dashboard(siteId: $site) { recordingsTotal } }",
            allowed: &["admin", "site_admin", "privileged", "auditor", "auditor_no_grant", "viewer"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "detectedEvents",
            query: "query($site: ID!) { detectedEvents(filter: {siteId: $site}) { edges { cursor } } }",
            allowed: &["admin", "site_admin", "privileged", "auditor", "auditor_no_grant"],
            fixture: Fixture::Shared,
        },
        Row { name: "auditTrail", query: "{ auditTrail { edges { cursor } } }", allowed: GLOBAL_ADMIN, fixture: Fixture::Shared },
        Row { name: "history", query: "{ history(first: 5) { edges { cursor } } }", allowed: HISTORY_READERS, fixture: Fixture::Shared },
        Row { name: "projections", query: "{ projections { name } }", allowed: GLOBAL_CONFIG_READERS, fixture: Fixture::Shared },
        Row {
            name: "pendingResponses",
            query: "query($server: ID!) { pendingResponses(serverId: $server) { id } }",
            allowed: &["admin", "site_admin", "agent"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "agentConfig",
            query: "query($server: ID!) { agentConfig(serverId: $server) { settingsVersion configTag recordingPolicy { id } pendingResponseCount } }",
            allowed: &["admin", "site_admin", "agent"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "recordingChunks",
            query: "query($recording: ID!) { recordingChunks(recordingId: $recording) { nextSeq chunks { seq } } }",
            // The server's agent (to resume an upload) and who may see the
            // recording; never a playback.
            allowed: &["admin", "site_admin", "privileged", "auditor", "agent"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "createSite",
            query: "mutation { createSite(input: {name: \"matrix\"}) { position } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "connectServer",
            query: "mutation($site: ID!) { connectServer(input: {siteId: $site, name: \"m\", host: \"m\", deployment: CLOUD, version: \"1\"}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "updateServerSettings",
            query: "mutation($server: ID!) { updateServerSettings(serverId: $server, settings: {maxRecordingHours: 8}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "createRecordingPolicy",
            query: "mutation($site: ID!) { createRecordingPolicy(siteId: $site, input: {name: \"m\", rules: [], fallback: RECORD_EVENTS_ONLY}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "grantPlaybackPermission",
            query: "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"x\", scope: {wholeSite: true}}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "setRetentionPolicy",
            query: "mutation($site: ID!) { setRetentionPolicy(siteId: $site, input: {archiveAfterDays: 10}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "issueToken",
            query: "mutation { issueToken(input: {name: \"m\", role: VIEWER}) { position } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "heartbeat",
            query: "mutation($server: ID!) { heartbeat(serverId: $server) { position settingsVersion configTag pendingResponseCount } }",
            allowed: AGENT,
            fixture: Fixture::Shared,
        },
        Row {
            name: "startRecording",
            query: "mutation($server: ID!) { startRecording(input: {serverId: $server, sessionId: \"matrix\", session: {user: \"CORP\\\\m\", host: \"vda\"}}) { position } }",
            allowed: AGENT,
            fixture: Fixture::Shared,
        },
        Row {
            name: "recordSessionEvents",
            query: "mutation($recording: ID!, $events: [SessionEventInput!]!) { recordSessionEvents(recordingId: $recording, events: $events) { position } }",
            allowed: AGENT,
            fixture: Fixture::Shared,
        },
        Row {
            name: "addComment",
            query: "mutation($recording: ID!) { addComment(recordingId: $recording, text: \"m\") { position } }",
            allowed: RECORDING_ACTORS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "recording.playback",
            query: "query($recording: ID!) { recording(id: $recording) { playback { position } } }",
            // The other site's admin gets null: the recording is not visible to it.
            allowed: RECORDING_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "playRecording",
            query: "mutation($recording: ID!) { playRecording(recordingId: $recording) { position } }",
            // Who sees the recording and may play it; the others find no such recording.
            allowed: RECORDING_ACTORS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "installServer",
            query: "mutation($site: ID!) { installServer(input: {siteId: $site, host: \"inst.example\"}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "reportInstallProgress",
            query: "mutation($server: ID!) { reportInstallProgress(serverId: $server, step: \"DOWNLOADING\", status: IN_PROGRESS) { position } }",
            allowed: AGENT,
            fixture: Fixture::InstalledServer,
        },
        Row {
            name: "disconnectServer",
            query: "mutation($server: ID!) { disconnectServer(serverId: $server) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Server,
        },
        Row {
            name: "createEventDetectionPolicy",
            query: "mutation($site: ID!) { createEventDetectionPolicy(siteId: $site, input: {name: \"m\", logged: [LOGON], rules: []}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "createEventResponsePolicy",
            query: "mutation($site: ID!) { createEventResponsePolicy(siteId: $site, input: {name: \"m\", rules: []}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "updatePolicy",
            query: "mutation($target: ID!) { updatePolicy(policyId: $target, input: {recording: {name: \"m2\", rules: [], fallback: RECORD_SCREEN_AND_EVENTS}}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Policy,
        },
        Row {
            name: "activatePolicy",
            query: "mutation($target: ID!) { activatePolicy(policyId: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Policy,
        },
        Row {
            name: "deletePolicy",
            query: "mutation($target: ID!) { deletePolicy(policyId: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Policy,
        },
        Row {
            name: "revokePlaybackPermission",
            query: "mutation($target: ID!) { revokePlaybackPermission(id: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Permission,
        },
        Row {
            name: "restrictRecording",
            query: "mutation($target: ID!) { restrictRecording(recordingId: $target, reason: \"m\") { position } }",
            allowed: RECORDING_ACTORS,
            fixture: Fixture::EndedRecording,
        },
        Row {
            name: "restrictRecording (live)",
            query: "mutation($target: ID!) { restrictRecording(recordingId: $target, reason: \"m\") { position } }",
            allowed: RECORDING_ACTORS,
            fixture: Fixture::Recording,
        },
        Row {
            name: "removeRecordingRestriction",
            query: "mutation($target: ID!) { removeRecordingRestriction(recordingId: $target, reason: \"m\") { position } }",
            // Who may play it but for the restriction: an auditor only
            // where its own permission covers the recording.
            allowed: RECORDING_ACTORS,
            fixture: Fixture::RestrictedRecording,
        },
        Row {
            name: "removeRecordingRestriction (live)",
            query: "mutation($target: ID!) { removeRecordingRestriction(recordingId: $target, reason: \"m\") { position } }",
            allowed: RECORDING_ACTORS,
            fixture: Fixture::LiveRestrictedRecording,
        },
        Row {
            name: "deleteComment",
            query: "mutation($target: ID!) { deleteComment(commentId: $target) { position } }",
            // Its author (the admin here) or an ADMIN.
            allowed: ADMIN,
            fixture: Fixture::Comment,
        },
        Row {
            name: "revokeToken",
            query: "mutation($target: ID!) { revokeToken(id: $target) { position } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Token,
        },
        Row {
            name: "tokens",
            query: "{ tokens { totalCount edges { node { id lastUsedAt } } } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "rotateToken",
            query: "mutation($target: ID!) { rotateToken(id: $target) { position } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Token,
        },
        Row {
            name: "rotateAgentToken",
            query: "mutation($server: ID!) { rotateAgentToken(serverId: $server) { position } }",
            // An ADMIN of the server's site, like disconnectServer.
            allowed: ADMIN,
            fixture: Fixture::Server,
        },
        Row {
            name: "endRecording",
            query: "mutation($target: ID!) { endRecording(recordingId: $target) { position } }",
            allowed: AGENT,
            fixture: Fixture::Recording,
        },
        Row {
            name: "acknowledgeResponse",
            query: "mutation($target: ID!) { acknowledgeResponse(responseId: $target, outcome: \"locked\") { position } }",
            allowed: &["admin", "site_admin", "agent"],
            fixture: Fixture::Response,
        },
        Row {
            name: "archiveRecording",
            query: "mutation($target: ID!) { archiveRecording(recordingId: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::EndedRecording,
        },
        Row {
            name: "restoreRecording",
            query: "mutation($target: ID!) { restoreRecording(recordingId: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::ArchivedRecording,
        },
        Row {
            name: "verify",
            query: "{ verify { intact } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "rebuildProjections",
            query: "mutation { rebuildProjections(names: [\"servers\"]) { position } }",
            allowed: GLOBAL_ADMIN,
            fixture: Fixture::Shared,
        },
        Row {
            name: "deleteRecording",
            query: "mutation($target: ID!) { deleteRecording(recordingId: $target) { position } }",
            allowed: ADMIN,
            fixture: Fixture::EndedRecording,
        },
        Row {
            name: "legalHolds",
            query: "query($site: ID!) { legalHolds(siteId: $site) { edges { cursor } totalCount } }",
            allowed: CONFIG_READERS,
            fixture: Fixture::Shared,
        },
        Row {
            name: "legalHoldsOfEverySite",
            query: "{ legalHolds { edges { node { id scope { kind recordingIds } } } } }",
            // A scoped ADMIN reads the holds of its own sites; an AUDITOR
            // without a grant reads them too, without the recordings it
            // may not see.
            allowed: &["admin", "site_admin", "auditor", "auditor_no_grant", "other_site_admin"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "recording.legalHolds",
            query: "query($recording: ID!) { recording(id: $recording) { onLegalHold legalHolds { id } } }",
            // The other site's admin and the auditor without a grant get
            // null: the recording is not visible to them.
            allowed: &["admin", "site_admin", "auditor", "auditor_no_grant", "other_site_admin"],
            fixture: Fixture::Shared,
        },
        Row {
            name: "placeLegalHold",
            query: "mutation($target: ID!) { placeLegalHold(input: {scope: {recordingIds: [$target]}, reason: \"matrix\"}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::EndedRecording,
        },
        Row {
            name: "releaseLegalHold",
            query: "mutation($target: ID!) { releaseLegalHold(id: $target, reason: \"done\") { position } }",
            allowed: ADMIN,
            fixture: Fixture::LegalHold,
        },
        // Last: a hold on the whole shared site covers every recording of
        // it, so no later row may need to delete one.
        Row {
            name: "placeLegalHoldOnSite",
            query: "mutation($site: ID!) { placeLegalHold(input: {scope: {siteId: $site}, reason: \"matrix\"}) { position } }",
            allowed: ADMIN,
            fixture: Fixture::Shared,
        },
    ]
}

/// One subscription row: the document, the callers allowed to follow it,
/// and those allowed to follow it who are delivered nothing of the shared
/// recording (it is not theirs to see).
struct SubscriptionRow {
    name: &'static str,
    query: &'static str,
    allowed: &'static [&'static str],
    silent: &'static [&'static str],
    /// What the test does for the subscription to deliver.
    cause: Cause,
}

/// What makes a subscription deliver.
#[derive(Clone, Copy)]
enum Cause {
    /// The agent records a suspicious batch into the live recording.
    Events,
    /// The agent starts a new recording on site A.
    Start,
}

fn subscription_rows() -> Vec<SubscriptionRow> {
    vec![
        SubscriptionRow {
            name: "detections",
            query: "subscription($site: ID) { detections(siteId: $site) { id severity } }",
            allowed: &["admin", "site_admin", "privileged", "auditor"],
            silent: &["auditor_no_grant"],
            cause: Cause::Events,
        },
        SubscriptionRow {
            name: "recordingEvents",
            query: "subscription($recording: ID!) { recordingEvents(recordingId: $recording) { type } }",
            allowed: &["admin", "site_admin", "privileged", "auditor"],
            silent: &[],
            cause: Cause::Events,
        },
        SubscriptionRow {
            name: "responses",
            query: "subscription($server: ID!) { responses(serverId: $server) { id action } }",
            allowed: &["admin", "site_admin", "agent"],
            silent: &[],
            cause: Cause::Events,
        },
        SubscriptionRow {
            name: "log",
            query: "subscription { log { position type } }",
            allowed: GLOBAL_ADMIN,
            silent: &[],
            cause: Cause::Events,
        },
        SubscriptionRow {
            name: "liveRecordings",
            query: "subscription($site: ID) { liveRecordings(siteId: $site) { recordingId live } }",
            // A list of what the caller may see: those who see no recording
            // of site A are delivered nothing rather than refused.
            allowed: &["admin", "site_admin", "privileged", "auditor"],
            silent: &["auditor_no_grant"],
            cause: Cause::Start,
        },
    ]
}

/// The shared world every cell runs in: two sites, a server on each, the
/// callers' clients, a live recording on site A, a detection policy
/// flagging USB and a response policy locking the session on it.
struct World {
    admin: Client,
    agent: Client,
    site: String,
    server: String,
    recording: String,
    clients: Vec<(&'static str, Client)>,
}

impl World {
    /// Does what makes a subscription of `cause` deliver.
    async fn cause(&self, cause: Cause) {
        match cause {
            Cause::Events => {
                self.agent
                    .data(
                        RECORD_EVENTS,
                        json!({ "recordingId": self.recording, "events": suspicious_batch() }),
                    )
                    .await;
            }
            Cause::Start => {
                static STARTS: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(0);
                let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                start_recording(
                    &self.agent,
                    &self.server,
                    &format!("matrix-start-{n}"),
                    "CORP\\dave",
                    &[],
                )
                .await;
            }
        }
    }

    async fn new(srs: &Srs) -> World {
        let admin = Client::new(srs, Some(&srs.admin_token()));
        let site = create_site(&admin, "Site A").await;
        let other_site = create_site(&admin, "Site B").await;
        record_everyone(&admin, &site).await;
        let activate = "mutation($id: ID!) { activatePolicy(policyId: $id) { position } }";
        let detection = admin
            .data(
                "mutation($site: ID!) { createEventDetectionPolicy(siteId: $site, input: {
                    name: \"USB\", logged: [LOGON, APP_START, WEB_BROWSING, USB_MASS_STORAGE],
                    rules: [{type: USB_MASS_STORAGE, severity: HIGH}] }) { policyId } }",
                json!({ "site": site }),
            )
            .await["createEventDetectionPolicy"]["policyId"]
            .clone();
        admin.data(activate, json!({ "id": detection })).await;
        let response = admin
            .data(
                "mutation($site: ID!) { createEventResponsePolicy(siteId: $site, input: {
                    name: \"Lock on USB\", rules: [{name: \"usb\", types: [USB_MASS_STORAGE], minSeverity: HIGH,
                    actions: [LOCK_SESSION], message: \"Locked\"}] }) { policyId } }",
                json!({ "site": site }),
            )
            .await["createEventResponsePolicy"]["policyId"]
            .clone();
        admin.data(activate, json!({ "id": response })).await;
        let (server, agent_secret) = connect_server(&admin, &site, "a-1").await;
        let (_, other_agent_secret) = connect_server(&admin, &other_site, "b-1").await;
        let agent = admin.with_token(&agent_secret);
        let recording = start_recording(&agent, &server, "matrix-0", "CORP\\carol", &[]).await
            ["recordingId"]
            .as_str()
            .unwrap()
            .to_owned();

        let mut clients: Vec<(&'static str, Client)> = vec![("admin", admin.clone())];
        for (caller, role, sites) in [
            ("privileged", "PRIVILEGED_PLAYER", vec![]),
            ("auditor", "AUDITOR", vec![]),
            ("auditor_no_grant", "AUDITOR", vec![]),
            ("viewer", "VIEWER", vec![]),
            ("site_admin", "ADMIN", vec![site.as_str()]),
            ("other_site_admin", "ADMIN", vec![other_site.as_str()]),
        ] {
            clients.push((
                caller,
                admin.with_token(&issue_token(&admin, caller, role, &sites, &[]).await),
            ));
        }
        // The auditor sees the shared site whole; auditor_no_grant nothing.
        admin
            .data(
                "mutation($site: ID!) { grantPlaybackPermission(input: {siteId: $site, principal: \"auditor\", scope: {wholeSite: true}}) { position } }",
                json!({ "site": site }),
            )
            .await;
        clients.push(("agent", agent.clone()));
        clients.push(("other_agent", admin.with_token(&other_agent_secret)));
        clients.push(("anonymous", Client::new(srs, None)));
        World {
            admin,
            agent,
            site,
            server,
            recording,
            clients,
        }
    }

    fn client(&self, caller: &str) -> &Client {
        &self
            .clients
            .iter()
            .find(|(name, _)| *name == caller)
            .unwrap()
            .1
    }

    /// A fresh recording on the shared server (`session` must be new).
    async fn recording(&self, session: &str) -> String {
        start_recording(&self.agent, &self.server, session, "CORP\\dave", &[]).await["recordingId"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Makes the cell's fresh target: extra variables, and the token the
    /// `agent` column uses when it is not the shared server's agent.
    async fn prepare(&self, fixture: Fixture, cell: &str) -> (Value, Option<String>) {
        let admin = &self.admin;
        let recording_mutation = |name: &str| {
            format!("mutation($id: ID!) {{ {name}(recordingId: $id) {{ position }} }}")
        };
        let target = match fixture {
            Fixture::Shared => return (json!({}), None),
            Fixture::Recording => self.recording(cell).await,
            Fixture::EndedRecording | Fixture::ArchivedRecording => {
                let id = self.recording(cell).await;
                self.agent
                    .data(&recording_mutation("endRecording"), json!({ "id": id }))
                    .await;
                if fixture == Fixture::ArchivedRecording {
                    admin
                        .data(&recording_mutation("archiveRecording"), json!({ "id": id }))
                        .await;
                }
                id
            }
            Fixture::RestrictedRecording | Fixture::LiveRestrictedRecording => {
                let id = self.recording(cell).await;
                if fixture == Fixture::RestrictedRecording {
                    self.agent
                        .data(&recording_mutation("endRecording"), json!({ "id": id }))
                        .await;
                }
                admin
                    .data(
                        "mutation($id: ID!) { restrictRecording(recordingId: $id, reason: \"case\") { position } }",
                        json!({ "id": id }),
                    )
                    .await;
                id
            }
            Fixture::Policy => {
                admin
                    .data(
                        "mutation($site: ID!) { createRecordingPolicy(siteId: $site, input: {name: \"fresh\", rules: [], fallback: RECORD_SCREEN_AND_EVENTS}) { policyId } }",
                        json!({ "site": self.site }),
                    )
                    .await["createRecordingPolicy"]["policyId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Fixture::Token => admin
                .data(ISSUE_TOKEN, json!({ "name": cell, "role": "VIEWER" }))
                .await["issueToken"]["tokenId"]
                .as_str()
                .unwrap()
                .to_owned(),
            Fixture::Permission => admin
                .data(
                    "mutation($site: ID!, $who: String!) { grantPlaybackPermission(input: {siteId: $site, principal: $who, scope: {}}) { permissionId } }",
                    json!({ "site": self.site, "who": cell }),
                )
                .await["grantPlaybackPermission"]["permissionId"]
                .as_str()
                .unwrap()
                .to_owned(),
            Fixture::Comment => admin
                .data(
                    "mutation($id: ID!) { addComment(recordingId: $id, text: \"fresh\") { commentId } }",
                    json!({ "id": self.recording }),
                )
                .await["addComment"]["commentId"]
                .as_str()
                .unwrap()
                .to_owned(),
            Fixture::Response => {
                let id = self.recording(cell).await;
                let recorded = self
                    .agent
                    .data(RECORD_EVENTS, json!({ "recordingId": id, "events": suspicious_batch() }))
                    .await;
                let pending = admin
                    .data(
                        "query($server: ID!, $at: Int) { pendingResponses(serverId: $server, atLeast: $at) { id recordingId } }",
                        json!({ "server": self.server, "at": position(&recorded["recordSessionEvents"]) }),
                    )
                    .await;
                pending["pendingResponses"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["recordingId"] == id.as_str())
                    .unwrap_or_else(|| panic!("a pending response on {id}: {pending}"))["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Fixture::LegalHold => {
                let id = self.recording(cell).await;
                self.agent
                    .data(&recording_mutation("endRecording"), json!({ "id": id }))
                    .await;
                admin
                    .data(
                        "mutation($id: ID!) { placeLegalHold(input: {scope: {recordingIds: [$id]}, reason: \"case\"}) { legalHoldId } }",
                        json!({ "id": id }),
                    )
                    .await["placeLegalHold"]["legalHoldId"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            Fixture::Server => {
                let (server, _) = connect_server(admin, &self.site, cell).await;
                return (json!({ "server": server }), None);
            }
            Fixture::InstalledServer => {
                let installed = admin
                    .data(
                        "mutation($site: ID!, $host: String!) { installServer(input: {siteId: $site, host: $host}) { serverId agentToken } }",
                        json!({ "site": self.site, "host": format!("{cell}.example") }),
                    )
                    .await;
                let installed = &installed["installServer"];
                return (
                    json!({ "server": installed["serverId"] }),
                    Some(installed["agentToken"].as_str().unwrap().to_owned()),
                );
            }
        };
        (json!({ "target": target }), None)
    }
}

/// Rows aimed at one recording, and rows aimed at one server.
const RECORDING_ROWS: &[&str] = &[
    "recordSessionEvents",
    "recordingChunks",
    "playRecording",
    "addComment",
    "restrictRecording",
    "restrictRecording (live)",
    "removeRecordingRestriction",
    "removeRecordingRestriction (live)",
    "deleteComment",
    "endRecording",
    "archiveRecording",
    "restoreRecording",
    "deleteRecording",
    "placeLegalHold",
];
const SERVER_ROWS: &[&str] = &[
    "heartbeat",
    "agentConfig",
    "startRecording",
    "pendingResponses",
    "updateServerSettings",
    "disconnectServer",
    "rotateAgentToken",
    "reportInstallProgress",
    "acknowledgeResponse",
];

/// Whether the row's target is one `caller` may not see at all: a refusal
/// is then `NOT_FOUND`, like an absent target.
fn hidden(row: &Row, caller: &str) -> bool {
    if row.name == "releaseLegalHold" {
        // Only who may read the site's holds (its ADMINs and AUDITORs)
        // learns that a hold exists.
        !matches!(
            caller,
            "admin" | "site_admin" | "auditor" | "auditor_no_grant"
        )
    } else if RECORDING_ROWS.contains(&row.name) {
        // Only an AGENT of its server, and who may view it, see a recording
        // (an auditor: where a permission of its own admits it).
        matches!(
            caller,
            "viewer" | "other_agent" | "other_site_admin" | "auditor_no_grant"
        )
    } else if SERVER_ROWS.contains(&row.name) {
        // A fresh second server is another server for the shared agent too.
        matches!(caller, "other_agent" | "other_site_admin")
            || (caller == "agent" && row.fixture == Fixture::Server)
    } else {
        false
    }
}

/// Whether `written` is exactly one refusal fact (a request's refusals are
/// one fact, whatever their number).
fn one_refusal_fact(written: &[(String, String)]) -> bool {
    matches!(written, [(event, _)] if event == "AccessDenied" || event == "AccessDeniedRepeated")
}

/// The server of a matrix: every refusal of the matrix is written (the
/// default rate of refusal facts per principal would leave some out).
async fn matrix_server(data: &std::path::Path) -> Srs {
    Srs::start_with_env(data, &[("SRS_DENIAL_FACTS_PER_MINUTE", "1000000")]).await
}

/// What is wrong with a cell's outcome, if anything.
fn judge(
    caller: &str,
    allowed: bool,
    hidden: bool,
    codes: &[String],
    written: &[(String, String)],
) -> Option<&'static str> {
    if caller == "anonymous" {
        if codes.first().map(String::as_str) != Some("UNAUTHENTICATED") {
            return Some("not UNAUTHENTICATED");
        }
        if !written.is_empty() {
            return Some("UNAUTHENTICATED but wrote to the log");
        }
        return None;
    }
    if allowed {
        if codes
            .iter()
            .any(|c| c == "FORBIDDEN" || c == "UNAUTHENTICATED")
        {
            return Some("FORBIDDEN but should be allowed");
        }
        if !codes.is_empty() {
            return Some("allowed but failed");
        }
        return None;
    }
    if hidden {
        if codes.first().map(String::as_str) != Some("NOT_FOUND") {
            return Some("not visible to the caller but not NOT_FOUND");
        }
    } else if codes.first().map(String::as_str) != Some("FORBIDDEN") {
        return Some("allowed but should be FORBIDDEN");
    }
    if written.is_empty() {
        return Some("FORBIDDEN but the refusal was not recorded");
    }
    if !one_refusal_fact(written) {
        return Some("FORBIDDEN but wrote more than the one refusal fact");
    }
    None
}

/// Only the variables `query` declares, from `available`.
fn declared(query: &str, available: &Value) -> Value {
    Value::Object(
        available
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| query.contains(&format!("${k}:")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

#[tokio::test]
async fn every_operation_for_every_caller_is_allowed_or_forbidden_by_the_role_table() {
    let dir = tempfile::tempdir().unwrap();
    let srs = matrix_server(&dir.path().join("data")).await;
    let world = World::new(&srs).await;

    let mut mismatches = Vec::new();
    let mut cells = 0;
    for row in rows() {
        for caller in CALLERS {
            let cell = format!("{}-{caller}", row.name).replace(['.', ' ', '(', ')'], "-");
            let (extra, agent_token) = world.prepare(row.fixture, &cell).await;
            let client = match (&agent_token, caller) {
                (Some(token), "agent") => world.client(caller).with_token(token),
                _ => world.client(caller).clone(),
            };
            let mut variables = json!({
                "site": world.site,
                "server": world.server,
                "recording": world.recording,
                "events": [event("LOGON", 0, json!({}))],
            });
            for (k, v) in extra.as_object().unwrap() {
                variables[k] = v.clone();
            }
            let before = log_head(&world.admin).await;
            let response = client.run(row.query, declared(row.query, &variables)).await;
            let written = written_since(&world.admin, before).await;
            let allowed = row.allowed.contains(&caller);
            let hidden = hidden(&row, caller);
            if let Some(outcome) = judge(caller, allowed, hidden, &response.codes(), &written) {
                mismatches.push(format!(
                    "{} as {caller}: {outcome}: {} (wrote {written:?})",
                    row.name, response.body
                ));
            }
            cells += 1;
        }
    }
    assert!(
        mismatches.is_empty(),
        "authorization mismatches:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(cells, rows().len() * CALLERS.len());
    // Refusals are audit facts the admin reads.
    let denied = world
        .admin
        .data(
            "query($at: Int!) { auditTrail(filter: {categories: [ACCESS]}, first: 5, atLeast: $at) { edges { node { eventType } } } }",
            json!({ "at": log_head(&world.admin).await }),
        )
        .await;
    assert_eq!(
        denied["auditTrail"]["edges"][0]["node"]["eventType"], "AccessDenied",
        "{denied}"
    );
    assert!(srs.stop().success());
}

/// The `extensions.code` of a subscription's first error, whether it came
/// as an `error` message or as a `next` carrying errors.
fn subscription_error_code(message: &Value) -> Option<&str> {
    match message["type"].as_str()? {
        "error" => message["payload"][0]["extensions"]["code"].as_str(),
        "next" => message["payload"]["errors"][0]["extensions"]["code"].as_str(),
        _ => None,
    }
}

#[tokio::test]
async fn every_subscription_for_every_caller_is_delivered_or_forbidden_by_the_role_table() {
    let dir = tempfile::tempdir().unwrap();
    let srs = matrix_server(&dir.path().join("data")).await;
    let world = World::new(&srs).await;
    let variables =
        json!({ "site": world.site, "recording": world.recording, "server": world.server });
    let wait = Duration::from_secs(10);

    let mut mismatches = Vec::new();
    for row in subscription_rows() {
        for caller in CALLERS {
            let before = log_head(&world.admin).await;
            let mut subscription = world
                .client(caller)
                .subscribe(row.query, declared(row.query, &variables))
                .await;
            let outcome = if caller == "anonymous" {
                let written = written_since(&world.admin, before).await;
                if subscription.ack["type"] == "connection_ack" {
                    Some(format!(
                        "acknowledged without a token: {}",
                        subscription.ack
                    ))
                } else if !written.is_empty() {
                    Some(format!("refused but wrote {written:?}"))
                } else {
                    None
                }
            } else if subscription.ack["type"] != "connection_ack" {
                Some(format!("not acknowledged: {}", subscription.ack))
            } else if row.silent.contains(&caller) {
                tokio::time::sleep(Duration::from_millis(300)).await;
                world.cause(row.cause).await;
                // Nothing of it may arrive (an absence: a short wait can
                // only miss a late delivery, never invent one).
                subscription
                    .next(Duration::from_secs(3))
                    .await
                    .map(|message| format!("should be delivered nothing, received {message}"))
            } else if row.allowed.contains(&caller) {
                // Let the server start the stream, then cause what it must deliver.
                tokio::time::sleep(Duration::from_millis(300)).await;
                world.cause(row.cause).await;
                match subscription.next(wait).await {
                    Some(message)
                        if message["type"] == "next" && message["payload"]["errors"].is_null() =>
                    {
                        None
                    }
                    other => Some(format!("allowed but received {other:?}")),
                }
            } else {
                let message = subscription.next(wait).await;
                let code = message.as_ref().and_then(subscription_error_code);
                let written = written_since(&world.admin, before).await;
                // A recording the caller may not see answers as an absent
                // one (see `existence.rs`); its own server's agent sees it.
                let expected = if row.name == "recordingEvents"
                    && matches!(
                        caller,
                        "viewer" | "other_agent" | "other_site_admin" | "auditor_no_grant"
                    )
                    || row.name == "responses"
                        && matches!(caller, "other_agent" | "other_site_admin")
                {
                    "NOT_FOUND"
                } else {
                    "FORBIDDEN"
                };
                if code != Some(expected) {
                    Some(format!("allowed but should be {expected}: {message:?}"))
                } else if written.is_empty() {
                    Some("FORBIDDEN but the refusal was not recorded".to_owned())
                } else if !one_refusal_fact(&written) {
                    Some(format!("FORBIDDEN but wrote {written:?}"))
                } else {
                    None
                }
            };
            if let Some(outcome) = outcome {
                mismatches.push(format!("{} as {caller}: {outcome}", row.name));
            }
            subscription.close().await;
        }
    }
    assert!(
        mismatches.is_empty(),
        "subscription authorization mismatches:\n{}",
        mismatches.join("\n")
    );
    assert!(srs.stop().success());
}
