//! What every request shares: the [`Services`] (log, service, read models,
//! metrics, limits) and the schema built over it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use srs_domain::app::{AppError, PermissionSource, Service};
use srs_domain::log::{EventLog, EventStore};
use srs_domain::model::{hash_secret, DomainEvent, PlaybackScope, Principal};
use srs_domain::time::Timestamp;
use srs_projections::models::access::AccessProjection;
use srs_projections::models::tokens::TokensProjection;
use srs_projections::store::Keyspace;
use srs_projections::{ReadModels, RunnerState, WaitError, Which};
use tokio::sync::watch;
use uuid::Uuid;

use crate::cluster::{Cluster, MAX_READY_LAG};
use crate::content::{ContentEffects, ContentStore};
use crate::error::ApiError;
use crate::graphql::{self, Documents, SrsSchema};
use crate::last_used::LastUsed;
use crate::metrics::{Gauges, Metrics};
use crate::sockets::Sockets;
pub use crate::throttle::Rate;
use crate::throttle::Throttle;

/// Limits against abuse. A document or input over a limit gives
/// `VALIDATION` (or 413 for the body), a request over its time budget
/// `TIMEOUT`, a caller over its rate `RATE_LIMITED` (429 and
/// `Retry-After`); none of them writes anything.
///
/// The GraphQL budgets (`max_query_bytes` to `max_introspection`) are
/// checked on the parsed document before async-graphql validates or runs
/// it (see `graphql::cost`); they are far above what the console, agents
/// and scripts send (tens of fields, a handful of aliases, one
/// `__schema` for GraphiQL) and far below what makes validation costly
/// (the fragment fan-outs of a few KB that expand to billions of fields).
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body read, in bytes.
    pub max_body_bytes: usize,
    /// The longest GraphQL query text, in bytes. Bounded apart from the
    /// body, which may be large because of variables (a
    /// `recordSessionEvents` batch).
    pub max_query_bytes: usize,
    /// The most selections (fields, fragment spreads, inline fragments) a
    /// document may have once every fragment spread is expanded, all its
    /// operations together.
    pub max_selections: u64,
    /// The most aliased fields a document may have, fragments expanded.
    pub max_aliases: u64,
    /// The most `__schema` / `__type` fields a document may have,
    /// fragments expanded (each answers a large part of the schema).
    pub max_introspection: u64,
    /// The deepest selection set a query may nest.
    pub max_depth: usize,
    /// The most a query may cost (async-graphql complexity: one per field,
    /// list fields multiplied by their page size).
    pub max_complexity: usize,
    /// `first` when a connection query gives none.
    pub default_page: usize,
    /// The largest `first` accepted.
    pub max_page: usize,
    /// The size of the batches an uploaded asciicast is indexed in: the
    /// domain's `MAX_BATCH`, the most session events one
    /// `recordSessionEvents` call may carry (the domain refuses more).
    pub max_batch: usize,
    /// The longest name-like string input (names, hosts, users), in characters.
    pub max_name_len: usize,
    /// The longest free-text input (comments, reasons, messages), in characters.
    pub max_text_len: usize,
    /// How long a query with `atLeast` waits for the read models.
    pub at_least_timeout: Duration,
    /// The most refusal facts written per principal and minute (not a
    /// `VALIDATION` limit: past it refusals are still `FORBIDDEN`, only
    /// counted instead of written; see `srs_domain::app` `denials`).
    pub denial_facts_per_minute: u32,
    /// A connected server silent (no heartbeat) for longer than this is
    /// marked offline (not a `VALIDATION` limit either; checked every
    /// third of it, at most every 30 s).
    pub liveness_period: Duration,
    /// With a JetStream log: how long a scheduled job's lease outlives its
    /// holder's last renewal (see [`crate::cluster`]), when the leases'
    /// bucket is created (an existing bucket keeps its own).
    pub lease_ttl: Duration,
    /// The time budget of a GraphQL request of an authenticated caller
    /// (`TIMEOUT` past it).
    pub request_timeout: Duration,
    /// The time budget of a GraphQL request without a principal: it can
    /// only introspect or be refused, so it needs little.
    pub anonymous_request_timeout: Duration,
    /// The time budget of a request whose root fields include `verify` or
    /// `rebuildProjections` (ADMIN only; they walk the whole log).
    pub long_request_timeout: Duration,
    /// How long a WebSocket may stay open without a `connection_init`
    /// (closed with 4408 then).
    pub ws_init_timeout: Duration,
    /// How often an open WebSocket's credential is checked again: a socket
    /// whose token was revoked (or whose server was disconnected) closes
    /// within this much of the read model applying it.
    pub ws_recheck: Duration,
    /// The most open (initialised) WebSockets one principal may hold.
    pub ws_connections_per_principal: usize,
    /// The most subscriptions one principal may run, over all its sockets.
    pub ws_subscriptions_per_principal: usize,
    /// The most WebSockets one client address may hold open before
    /// `connection_init`.
    pub ws_pending_per_ip: usize,
    /// The most WebSockets open before `connection_init` in all.
    pub ws_pending_total: usize,
    /// GraphQL requests of one principal (`None`: no limit).
    pub rate_principal: Option<Rate>,
    /// GraphQL requests without a valid token, and WebSocket upgrades, of
    /// one client address (IPv6: one /64) (`None`: no limit).
    pub rate_anonymous_ip: Option<Rate>,
}

impl Limits {
    /// The time budget of a GraphQL request: by whether it has a principal,
    /// and whether it runs a long admin operation (`verify`,
    /// `rebuildProjections`; only an authenticated caller gets the long
    /// budget, and only ADMINs may run them).
    pub fn time_budget(&self, authenticated: bool, long_running: bool) -> Duration {
        match (authenticated, long_running) {
            (false, _) => self.anonymous_request_timeout,
            (true, false) => self.request_timeout,
            (true, true) => self.long_request_timeout.max(self.request_timeout),
        }
    }

    /// [`Limits::default`] without rate limits, for benchmarks and load
    /// tools that mean to push one principal as hard as it goes.
    pub fn unthrottled() -> Self {
        Limits {
            rate_principal: None,
            rate_anonymous_ip: None,
            ..Limits::default()
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 16,
            max_complexity: 50_000,
            default_page: 50,
            max_page: 500,
            max_batch: srs_domain::model::MAX_BATCH,
            max_name_len: 256,
            max_text_len: 4096,
            at_least_timeout: Duration::from_secs(5),
            max_query_bytes: 64 * 1024,
            max_selections: 5_000,
            max_aliases: 1_000,
            max_introspection: 4,
            request_timeout: Duration::from_secs(30),
            anonymous_request_timeout: Duration::from_secs(5),
            long_request_timeout: Duration::from_secs(30 * 60),
            ws_init_timeout: Duration::from_secs(10),
            ws_recheck: Duration::from_millis(250),
            ws_connections_per_principal: 32,
            ws_subscriptions_per_principal: 128,
            ws_pending_per_ip: 32,
            ws_pending_total: 1024,
            rate_principal: Some(Rate::new(500.0, 1000.0)),
            rate_anonymous_ip: Some(Rate::new(30.0, 100.0)),
            denial_facts_per_minute: srs_domain::app::DENIAL_FACTS_PER_MINUTE,
            liveness_period: Duration::from_secs(90),
            lease_ttl: Duration::from_secs(15),
        }
    }
}

/// The services behind the API.
pub struct Services {
    pub store: EventLog<DomainEvent>,
    /// Writes: every mutation is one of its use cases.
    pub service: Arc<Service>,
    /// Reads: every query answers from these.
    pub reads: ReadModels,
    pub metrics: Metrics,
    pub limits: Limits,
    /// Turns `true` when the server shuts down: subscriptions end then.
    pub shutdown: watch::Receiver<bool>,
    /// Recording content beside the log.
    pub content: Arc<ContentStore>,
    /// How far the content store has followed the log.
    pub content_effects: ContentEffects,
    /// When each token was last used, per minute (not in the log).
    pub last_used: LastUsed,
    /// When each server last heartbeated, per minute (not in the log).
    pub heartbeats: LastUsed,
    /// The data directory (where `admin.token` is).
    pub data_dir: std::path::PathBuf,
    /// The browser origins allowed to call `/graphql` and the content
    /// routes from their pages (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Playback tickets (`Playback.ticketUrl`), under a key of this
    /// process, or of the cluster (derived from its key file).
    pub tickets: crate::content::Tickets,
    /// With a JetStream log: this node's leases and the stream's last
    /// position (see [`crate::cluster`]); `None` for the embedded log.
    pub cluster: Option<Arc<Cluster>>,
    /// Where the projections run and agents' requests execute, at lower
    /// priority than people's requests (see [`crate::background`]).
    pub background: crate::background::Background,
}

/// What a presented secret is, as the tokens read model stands.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    /// It authenticates this principal.
    Valid(Principal),
    /// An unrevoked token that expired at this time.
    Expired(Timestamp),
    /// Unknown, or revoked.
    Invalid,
}

impl Credential {
    /// The principal, or `UNAUTHENTICATED` saying that the token expired
    /// (and when); `Ok(None)` for an unknown or revoked secret.
    pub fn into_principal(self) -> Result<Option<Principal>, ApiError> {
        match self {
            Credential::Valid(principal) => Ok(Some(principal)),
            Credential::Expired(at) => Err(expired(at)),
            Credential::Invalid => Ok(None),
        }
    }
}

/// The `UNAUTHENTICATED` of a token that expired at `at`.
pub fn expired(at: Timestamp) -> ApiError {
    ApiError::unauthenticated(format!(
        "the bearer token expired at {}; ask an admin for a new one",
        at.to_rfc3339()
    ))
}

/// How `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub log_head: u64,
    /// Projections that have not reached the head yet, and
    /// `catalogue-index` while the catalogue's search index is loading.
    pub behind: Vec<String>,
    /// Whether the log takes appends (false while storage fails, e.g. a
    /// full disk); not ready then.
    pub writable: bool,
    /// With a JetStream log: the stream's last position, as last asked of
    /// its leader.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_last_position: Option<u64>,
    /// Positions the read models are behind the log: its last position
    /// (the stream's with a JetStream log, else the head) less the lowest
    /// position a read model applied. With a JetStream log, not ready
    /// while over [`MAX_READY_LAG`].
    pub lag: u64,
    /// Why it is not ready: the log not writable, the stream not
    /// answering, or the read models too far behind the stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// How long authentication waits for the tokens read model to catch up
/// before calling an unknown secret invalid (a token issued a moment ago).
const AUTH_CATCH_UP: Duration = Duration::from_secs(2);

impl Services {
    /// The principal `token` authenticates, if any. A secret not found is
    /// looked up once more after the tokens read model has reached the log
    /// head, so a token works as soon as `issueToken` has answered. An
    /// expired token is `UNAUTHENTICATED` with a message saying so.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        let hash = hash_secret(token);
        let found = self.lookup(&hash)?;
        if found != Credential::Invalid {
            return found.into_principal();
        }
        let head = self.store.head().position;
        if self
            .reads
            .wait_for(Which::Only(&[TokensProjection::NAME]), head, AUTH_CATCH_UP)
            .await
            .is_ok()
        {
            return self.lookup(&hash)?.into_principal();
        }
        Ok(None)
    }

    /// The principal a playback ticket for `recording` stands for: its
    /// token as the tokens read model stands now (revoked or expired since
    /// the ticket was issued: `UNAUTHENTICATED`). A use counts as a use of
    /// the token.
    pub fn ticket_principal(&self, ticket: &str, recording: Uuid) -> Result<Principal, ApiError> {
        let now = self.service.now();
        let token = self.tickets.open(ticket, recording, now)?;
        let refused = || {
            ApiError::unauthenticated(
                "the token the playback ticket was issued to is no longer valid",
            )
        };
        let row = self.reads.tokens()?.token(token)?.ok_or_else(refused)?;
        if row.expired(now) {
            return Err(refused());
        }
        let principal = row.principal().ok_or_else(refused)?;
        self.last_used.touch(row.id, now);
        Ok(principal)
    }

    /// The principal `token` authenticates as the tokens read model
    /// stands now (no wait for a token issued a moment ago); `None` for
    /// an expired one too.
    pub fn authenticate_now(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        Ok(match self.lookup(&hash_secret(token))? {
            Credential::Valid(principal) => Some(principal),
            Credential::Expired(_) | Credential::Invalid => None,
        })
    }

    /// What the secret of SHA-256 `hash` is, as the tokens read model
    /// stands now (an open WebSocket checks its credential with it,
    /// without keeping the secret).
    pub fn credential_of_hash(&self, hash: &str) -> Result<Credential, ApiError> {
        self.lookup(hash)
    }

    /// The one lookup: unrevoked, then unexpired by the service's clock;
    /// a valid one counts as a use of the token ([`LastUsed`]).
    fn lookup(&self, hash: &str) -> Result<Credential, ApiError> {
        let Some(row) = self.reads.tokens()?.authenticate(hash)? else {
            return Ok(Credential::Invalid);
        };
        let now = self.service.now();
        if let Some(at) = row.expires_at.filter(|&at| at <= now) {
            return Ok(Credential::Expired(at));
        }
        Ok(match row.principal() {
            Some(principal) => {
                self.last_used.touch(row.id, now);
                Credential::Valid(principal)
            }
            None => Credential::Invalid,
        })
    }

    /// Waits (at most a moment) until the tokens read model has applied
    /// `position`: after a revocation or rotation, so that the old secret
    /// is refused as soon as the mutation has answered. A read model that
    /// does not get there in time is logged; the answer still goes out
    /// (it may carry a new secret that must not be lost).
    pub async fn tokens_caught_up(&self, position: u64) {
        if let Err(e) = self
            .reads
            .wait_for(
                Which::Only(&[TokensProjection::NAME]),
                position,
                AUTH_CATCH_UP,
            )
            .await
        {
            tracing::warn!(error = %e, position, "the tokens read model lags behind a token change");
        }
    }

    /// Waits until every read model has applied `position` (`atLeast`).
    pub async fn at_least(&self, position: Option<i32>) -> Result<(), ApiError> {
        let Some(position) = position else {
            return Ok(());
        };
        let position = u64::try_from(position)
            .map_err(|_| ApiError::validation("atLeast must not be negative"))?;
        let head = self.store.head().position;
        // Positions are handed out only once durable: past the head, this
        // one never was, unless another node appended it (a shared log:
        // the head gets there as this node follows the stream).
        if position > head && !self.store.is_shared() {
            return Err(ApiError::timeout(format!(
                "position {position} is beyond the log head {head}"
            )));
        }
        match self
            .reads
            .wait_for(Which::All, position, self.limits.at_least_timeout)
            .await
        {
            Ok(()) => Ok(()),
            // The read models cannot commit while storage fails.
            Err(e) if !self.store.writability().is_writable() => Err(ApiError::unavailable(e)),
            Err(WaitError::Timeout { name, at, wanted }) => Err(ApiError::timeout(format!(
                "the read models did not reach position {wanted} in time ({name} is at {at})"
            ))),
            Err(other) => Err(ApiError::internal(other)),
        }
    }

    pub fn readiness(&self) -> Readiness {
        let statuses: Vec<(String, u64, bool)> = self
            .reads
            .statuses()
            .into_iter()
            .map(|s| (s.name, s.position, s.state == RunnerState::Failed))
            .collect();
        let writability = self.store.writability();
        let mut readiness = judge_readiness(
            self.store.head().position,
            &statuses,
            self.cluster.as_ref().map(|c| c.stream_last_position()),
            writability.reason().map(str::to_owned),
        );
        // Searches answer from the catalogue's in-memory index: until it
        // reflects the catalogue tree being served (loaded at start, and
        // again after a rebuild swaps the tree), the first searches would
        // wait for that load.
        if !self.catalogue_index_loaded() {
            readiness.behind.push("catalogue-index".to_owned());
            readiness.ready = false;
        }
        readiness
    }

    fn catalogue_index_loaded(&self) -> bool {
        let Ok(catalogue) = self.reads.catalogue() else {
            return false;
        };
        let name = catalogue.tree().name();
        self.reads.catalogue_index().tree_name().as_deref() == Some(name)
    }

    pub fn gauges(&self) -> Gauges {
        let log_head = self.store.head().position;
        let statuses = self.reads.statuses();
        let stream_last = self
            .cluster
            .as_ref()
            .and_then(|c| c.stream_last_position().ok());
        let last = stream_last.map_or(log_head, |last| last.max(log_head));
        Gauges {
            log_head,
            log_writable: self.store.writability().is_writable(),
            denials: self.service.denial_counts(),
            stream_last_position: stream_last,
            node_lag: node_lag(last, statuses.iter().map(|s| s.position)),
            leases: self
                .cluster
                .as_ref()
                .map(|c| c.leases())
                .unwrap_or_default(),
            projections: statuses
                .into_iter()
                .map(|s| {
                    let lag = log_head.saturating_sub(s.position);
                    (s.name, s.position, lag)
                })
                .collect(),
        }
    }
}

/// How `/readyz` answers (but for the catalogue's index), from the log head, each read model's
/// `(name, applied position, failed)`, with a JetStream log the stream's
/// last position (or why it is unknown), and why the log does not take
/// writes (`None`: it does).
///
/// The embedded log: ready when every read model is at the head. A
/// JetStream log, which other nodes append to all the time: when every
/// read model is within [`MAX_READY_LAG`] of the stream's last position.
pub fn judge_readiness(
    log_head: u64,
    statuses: &[(String, u64, bool)],
    stream: Option<Result<u64, String>>,
    not_writable: Option<String>,
) -> Readiness {
    let last = match &stream {
        Some(Ok(last)) => (*last).max(log_head),
        _ => log_head,
    };
    let lag = node_lag(last, statuses.iter().map(|(_, position, _)| *position));
    let allowance = if stream.is_some() { MAX_READY_LAG } else { 0 };
    let behind: Vec<String> = statuses
        .iter()
        .filter(|(_, position, failed)| *failed || position.saturating_add(allowance) < last)
        .map(|(name, _, _)| name.clone())
        .collect();
    let stream_error = match &stream {
        Some(Err(e)) => Some(format!("the log stream's last position is unknown: {e}")),
        _ => None,
    };
    let writable = not_writable.is_none();
    let reason = not_writable
        .map(|why| format!("log not writable: {why}"))
        .or(stream_error)
        .or_else(|| {
            (stream.is_some() && lag > MAX_READY_LAG).then(|| {
                format!(
                    "the read models are {lag} positions behind the log stream (ready at {MAX_READY_LAG} or fewer)"
                )
            })
        });
    Readiness {
        ready: behind.is_empty() && reason.is_none(),
        log_head,
        behind,
        writable,
        stream_last_position: stream.and_then(Result::ok),
        lag,
        reason,
    }
}

/// A node's lag: `last` (the log's last position) less the lowest of the
/// read models' `applied` positions.
pub fn node_lag(last: u64, applied: impl Iterator<Item = u64>) -> u64 {
    last.saturating_sub(applied.min().unwrap_or(last))
}

/// Playback permissions for the app layer, from the access read model.
pub struct ReadModelPermissions {
    pub reads: ReadModels,
    pub store: EventLog<DomainEvent>,
}

#[async_trait::async_trait]
impl PermissionSource for ReadModelPermissions {
    async fn grants(
        &self,
        principal: &Principal,
        site_id: Uuid,
    ) -> Result<Vec<PlaybackScope>, AppError> {
        // A grant committed a moment ago must count: catch up first (cheap
        // when the access model is already at the head).
        let head = self.store.head().position;
        let _ = self
            .reads
            .wait_for(Which::Only(&[AccessProjection::NAME]), head, AUTH_CATCH_UP)
            .await;
        let viewer = self
            .reads
            .access()
            .and_then(|access| access.viewer(principal))
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(viewer.grants(site_id).to_vec())
    }
}

/// The state of the HTTP app: the services, the schema over them, the parsed
/// documents, the rate limits and the open WebSockets.
#[derive(Clone)]
pub struct HttpState {
    services: Arc<Services>,
    schema: SrsSchema,
    documents: Arc<Documents>,
    throttle: Arc<Throttle>,
    sockets: Arc<Sockets>,
}

impl HttpState {
    pub fn new(services: Arc<Services>) -> Self {
        let schema = graphql::schema(services.clone());
        let throttle = Arc::new(Throttle::new(&services.limits));
        let sockets = Arc::new(Sockets::new(&services.limits));
        HttpState {
            services,
            schema,
            documents: Documents::new(),
            throttle,
            sockets,
        }
    }

    /// The rate limits.
    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// The open WebSockets, counted.
    pub fn sockets(&self) -> &Arc<Sockets> {
        &self.sockets
    }

    pub fn services(&self) -> &Arc<Services> {
        &self.services
    }

    /// The schema requests run on.
    pub fn schema(&self) -> &SrsSchema {
        &self.schema
    }

    /// Parsed and sized documents, kept by their text.
    pub fn documents(&self) -> &Documents {
        &self.documents
    }

    pub fn metrics(&self) -> &Metrics {
        &self.services.metrics
    }

    pub fn limits(&self) -> &Limits {
        &self.services.limits
    }

    /// The origins allowed by CORS (`--cors-origin`).
    pub fn cors_origins(&self) -> &[String] {
        &self.services.cors_origins
    }

    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        self.services.authenticate(token).await
    }

    pub fn readiness(&self) -> Readiness {
        self.services.readiness()
    }

    pub fn gauges(&self) -> Gauges {
        self.services.gauges()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn models(positions: &[u64]) -> Vec<(String, u64, bool)> {
        positions
            .iter()
            .enumerate()
            .map(|(i, &p)| (format!("model{i}"), p, false))
            .collect()
    }

    #[test]
    fn the_embedded_log_is_ready_with_every_read_model_at_the_head() {
        let ready = judge_readiness(10, &models(&[10, 10]), None, None);
        assert!(ready.ready && ready.lag == 0 && ready.reason.is_none());
        let behind = judge_readiness(10, &models(&[10, 9]), None, None);
        assert!(!behind.ready);
        assert_eq!(behind.behind, vec!["model1"]);
        assert_eq!(behind.lag, 1);
        let full = judge_readiness(10, &models(&[10]), None, Some("disk full".into()));
        assert!(!full.ready && !full.writable);
        assert_eq!(full.reason.as_deref(), Some("log not writable: disk full"));
    }

    #[test]
    fn a_jetstream_node_is_ready_within_the_lag_bound_of_the_stream() {
        let last = 5_000;
        // Its own head behind the stream: the stream's position counts.
        let within = judge_readiness(
            3_000,
            &models(&[last - MAX_READY_LAG, last]),
            Some(Ok(last)),
            None,
        );
        assert!(within.ready, "{within:?}");
        assert_eq!(within.lag, MAX_READY_LAG);
        assert_eq!(within.stream_last_position, Some(last));
        let over = judge_readiness(
            3_000,
            &models(&[last - MAX_READY_LAG - 1, last]),
            Some(Ok(last)),
            None,
        );
        assert!(!over.ready);
        assert_eq!(over.lag, MAX_READY_LAG + 1);
        assert_eq!(over.behind, vec!["model0"]);
        assert!(
            over.reason
                .as_deref()
                .unwrap()
                .contains("1001 positions behind the log stream"),
            "{over:?}"
        );
        let unknown = judge_readiness(last, &models(&[last]), Some(Err("no quorum".into())), None);
        assert!(!unknown.ready && unknown.stream_last_position.is_none());
        assert!(unknown.reason.as_deref().unwrap().contains("no quorum"));
        let failed = judge_readiness(
            last,
            &[("model0".to_owned(), last, true)],
            Some(Ok(last)),
            None,
        );
        assert!(!failed.ready);
    }
}
