//! What every request shares: the [`Core`] (log, service, read models,
//! metrics, limits) and the schema built over it.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use srs_domain::app::{AppError, PermissionSource, Service};
use srs_domain::log::{EventStore, SledEventStore};
use srs_domain::model::{hash_secret, DomainEvent, PlaybackScope, Principal};
use srs_projections::models::access::AccessProjection;
use srs_projections::models::tokens::{Authenticated, TokensProjection};
use srs_projections::{ReadModels, RunnerState, WaitError, Which};
use tokio::sync::watch;
use uuid::Uuid;

use crate::content::{ContentEffects, ContentStore};
use crate::dashboards::Dashboards;
use crate::error::ApiError;
use crate::graphql::{self, Schemas, SrsSchema};
use crate::metrics::{Gauges, Metrics};

/// Limits against abuse. Every one of them, when hit, gives `VALIDATION`
/// (or 413 for the body) and writes nothing.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest request body read, in bytes.
    pub max_body_bytes: usize,
    /// The deepest selection set a query may nest.
    pub max_depth: usize,
    /// The most a query may cost (async-graphql complexity: one per field,
    /// list fields multiplied by their page size).
    pub max_complexity: usize,
    /// `first` when a connection query gives none.
    pub default_page: usize,
    /// The largest `first` accepted.
    pub max_page: usize,
    /// The most session events one `recordSessionEvents` call may carry.
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body_bytes: 4 * 1024 * 1024,
            max_depth: 16,
            max_complexity: 50_000,
            default_page: 50,
            max_page: 500,
            max_batch: 1000,
            max_name_len: 256,
            max_text_len: 4096,
            at_least_timeout: Duration::from_secs(5),
            denial_facts_per_minute: srs_domain::app::DENIAL_FACTS_PER_MINUTE,
        }
    }
}

/// The services behind the API.
pub struct Core {
    pub store: SledEventStore<DomainEvent>,
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
    /// Dashboard figures kept while the dashboard read model stands still.
    pub dashboards: Dashboards,
}

/// How `/readyz` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    pub ready: bool,
    pub log_head: u64,
    /// Projections that have not reached the head yet, and
    /// `catalogue-index` while the catalogue's search index is loading.
    pub behind: Vec<String>,
}

/// How long authentication waits for the tokens read model to catch up
/// before calling an unknown secret invalid (a token issued a moment ago).
const AUTH_CATCH_UP: Duration = Duration::from_secs(2);

impl Core {
    /// The principal `token` authenticates, if any. A secret not found is
    /// looked up once more after the tokens read model has reached the log
    /// head, so a token works as soon as `issueToken` has answered.
    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        let hash = hash_secret(token);
        if let Some(principal) = self.lookup(&hash)? {
            return Ok(Some(principal));
        }
        let head = self.store.head().position;
        if self
            .reads
            .wait_for(Which::Only(&[TokensProjection::NAME]), head, AUTH_CATCH_UP)
            .await
            .is_ok()
        {
            return self.lookup(&hash);
        }
        Ok(None)
    }

    /// The principal `token` authenticates as the tokens read model
    /// stands now (no wait for a token issued a moment ago).
    pub fn authenticate_now(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        self.lookup(&hash_secret(token))
    }

    fn lookup(&self, hash: &str) -> Result<Option<Principal>, ApiError> {
        Ok(match self.reads.tokens()?.authenticate(hash)? {
            Some(Authenticated::Token(row)) => row.principal(),
            Some(Authenticated::Agent(principal)) => Some(principal),
            None => None,
        })
    }

    /// Waits until every read model has applied `position` (`atLeast`).
    pub async fn at_least(&self, position: Option<i32>) -> Result<(), ApiError> {
        let Some(position) = position else {
            return Ok(());
        };
        let position = u64::try_from(position)
            .map_err(|_| ApiError::validation("atLeast must not be negative"))?;
        let head = self.store.head().position;
        if position > head {
            // Positions are handed out only once durable: this one never was.
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
            Err(WaitError::Timeout { name, at, wanted }) => Err(ApiError::timeout(format!(
                "the read models did not reach position {wanted} in time ({name} is at {at})"
            ))),
            Err(other) => Err(ApiError::internal(other)),
        }
    }

    pub fn readiness(&self) -> Readiness {
        let log_head = self.store.head().position;
        let mut behind: Vec<String> = self
            .reads
            .statuses()
            .into_iter()
            .filter(|s| s.position < log_head || s.state == RunnerState::Failed)
            .map(|s| s.name)
            .collect();
        // Searches answer from the catalogue's in-memory index: until it
        // reflects the catalogue tree being served (loaded at start, and
        // again after a rebuild swaps the tree), the first searches would
        // wait for that load.
        if !self.catalogue_index_loaded() {
            behind.push("catalogue-index".to_owned());
        }
        Readiness {
            ready: behind.is_empty(),
            log_head,
            behind,
        }
    }

    fn catalogue_index_loaded(&self) -> bool {
        let Ok(catalogue) = self.reads.catalogue() else {
            return false;
        };
        let name = catalogue.tree().name();
        self.reads
            .catalogue_index()
            .tree_name()
            .as_deref()
            .map(str::as_bytes)
            == Some(&name[..])
    }

    pub fn gauges(&self) -> Gauges {
        let log_head = self.store.head().position;
        Gauges {
            log_head,
            denials: self.service.denial_counts(),
            projections: self
                .reads
                .statuses()
                .into_iter()
                .map(|s| {
                    let lag = log_head.saturating_sub(s.position);
                    (s.name, s.position, lag)
                })
                .collect(),
        }
    }
}

/// Playback permissions for the app layer, from the access read model.
pub struct ReadModelPermissions {
    pub reads: ReadModels,
    pub store: SledEventStore<DomainEvent>,
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

/// The state of the HTTP app: the core and the schemas over it.
#[derive(Clone)]
pub struct AppState {
    core: Arc<Core>,
    schemas: Schemas,
}

impl AppState {
    pub fn new(core: Arc<Core>) -> Self {
        let schemas = graphql::schemas(core.clone());
        AppState { core, schemas }
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// The schema with the full validation on every request.
    pub fn schema(&self) -> &SrsSchema {
        &self.schemas.strict
    }

    /// The strict and fast schemas and the document cache between them.
    pub fn schemas(&self) -> &Schemas {
        &self.schemas
    }

    pub fn metrics(&self) -> &Metrics {
        &self.core.metrics
    }

    pub fn limits(&self) -> &Limits {
        &self.core.limits
    }

    pub async fn authenticate(&self, token: &str) -> Result<Option<Principal>, ApiError> {
        self.core.authenticate(token).await
    }

    pub fn readiness(&self) -> Readiness {
        self.core.readiness()
    }

    pub fn gauges(&self) -> Gauges {
        self.core.gauges()
    }
}
